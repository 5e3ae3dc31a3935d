//! agent-js (`@dfinity/agent` 3.4.3 under Node, pinned by
//! `tests/js/package-lock.json`) against `canister-host serve`: a client
//! nobody here wrote, with its default verification of certificates and
//! query signatures, and a certified variable read through a query's data
//! certificate. Runs whenever node and the packages are installed
//! (`npm ci --prefix tests/js`; CI does).

use std::path::{Path, PathBuf};
use std::process::Command;

use sha2::{Digest, Sha256};

mod common;

const COUNTER: &str = concat!(env!("CARGO_MANIFEST_DIR"), "/../../canisters/wasm/counter.wasm");
const SYSAPI: &str = concat!(env!("CARGO_MANIFEST_DIR"), "/../../canisters/wasm/sysapi.wasm");

fn js_dir() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("../../tests/js")
}

fn run(dir: &Path, args: &[&str]) -> String {
    let out = Command::new(common::bin()).args(args).env("CANISTER_HOST_DIR", dir).output().unwrap();
    assert!(out.status.success(), "{args:?}: {}", String::from_utf8_lossy(&out.stderr));
    String::from_utf8(out.stdout).unwrap()
}

#[test]
fn agent_js_calls_queries_and_reads_certified_state() {
    let node_ok = Command::new("node").arg("--version").output().is_ok_and(|o| o.status.success());
    let installed = node_ok && js_dir().join("node_modules/@dfinity/agent").is_dir();
    if !common::client_available("agent-js", installed, "npm ci --prefix tests/js") {
        return;
    }
    let tmp = tempfile::tempdir().unwrap();
    let dir = tmp.path();
    let id = run(dir, &["create", "--name", "counter"]).split_whitespace().next().unwrap().to_string();
    run(dir, &["install", "counter", "--wasm", COUNTER]);
    let sysapi = run(dir, &["create", "--name", "sysapi"]).split_whitespace().next().unwrap().to_string();
    run(dir, &["install", "sysapi", "--wasm", SYSAPI]);
    let server = common::Server::start(dir);
    let out = Command::new("node").arg(js_dir().join("agent.mjs")).args([server.url(), id, sysapi]).output().unwrap();
    assert!(out.status.success(), "agent-js failed:\n{}", String::from_utf8_lossy(&out.stderr));
    let report: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();

    // Two identities (Ed25519, secp256k1), each an update and a query.
    let counters = report["counters"].as_array().unwrap();
    assert_eq!(counters.len(), 2);
    for (i, c) in counters.iter().enumerate() {
        let n = (i + 1).to_string();
        assert_eq!((c["inc"].as_str(), c["get"].as_str()), (Some(n.as_str()), Some(n.as_str())), "{c}");
    }
    assert_ne!(counters[0]["sender"], counters[1]["sender"]);
    // The management canister and the certified state tree agree with the module.
    let hash = hex::encode(Sha256::digest(std::fs::read(COUNTER).unwrap()));
    assert_eq!(report["status"], "running");
    assert_eq!(report["status_module_hash"], hash.as_str());
    assert_eq!(report["module_hash"], hash.as_str());
    assert_eq!(report["controllers"], serde_json::json!(["2vxsx-fae"]));
    // Certified time is the wall clock (agents reject stale certificates).
    let now_ms = std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).unwrap().as_millis() as f64;
    assert!((report["time_ms"].as_f64().unwrap() - now_ms).abs() < 60_000.0, "{report}");
    // A certified variable, verified by agent-js against the root key.
    assert_eq!(report["certified_data"], "2a".repeat(32));
    drop(server);
}
