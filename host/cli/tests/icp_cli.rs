//! icp-cli (`icp` 1.5.0, npm `@icp-sdk/icp-cli-linux-x64`, pinned by
//! `tests/js/package-lock.json`) against `canister-host serve`: create,
//! install (plain and chunked), call and status, exactly as a user types them against a
//! network given by URL with a fetched root key. icp-cli creates canisters
//! through the cycles ledger, which the server stands in for.

use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};

use sha2::{Digest, Sha256};

mod common;

const COUNTER: &str = concat!(env!("CARGO_MANIFEST_DIR"), "/../../canisters/wasm/counter.wasm");
/// Over 2 MiB: icp-cli installs it in chunks (upload_chunk, install_chunked_code).
const INTERNET_IDENTITY: &str = concat!(env!("CARGO_MANIFEST_DIR"), "/../../canisters/fixtures/internet_identity.wasm");

fn icp_bin() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("../../tests/js/node_modules/@icp-sdk/icp-cli-linux-x64/bin/icp")
}

/// Runs `icp` with its own home, telemetry off, and no update check.
struct Icp {
    home: PathBuf,
    url: String,
}

impl Icp {
    fn command(&self, args: &[&str]) -> Command {
        let mut command = Command::new(icp_bin());
        command
            .args(args)
            .env("ICP_HOME", &self.home)
            .env("HOME", &self.home)
            .env("DO_NOT_TRACK", "1")
            .env("NO_COLOR", "1")
            .stdin(Stdio::null());
        command
    }

    /// Run a command that needs no network.
    fn local(&self, args: &[&str]) -> String {
        let out = self.command(args).output().unwrap();
        assert!(out.status.success(), "icp {args:?}: {}", String::from_utf8_lossy(&out.stderr));
        String::from_utf8(out.stdout).unwrap()
    }

    /// Run a command against the server.
    fn run(&self, args: &[&str]) -> String {
        let mut all = args.to_vec();
        all.extend(["-n", self.url.as_str(), "-k", "fetch"]);
        self.local(&all)
    }
}

#[test]
fn icp_cli_creates_installs_calls_and_reads_status() {
    if !common::client_available("icp-cli", icp_bin().is_file(), "npm ci --prefix tests/js") {
        return;
    }
    let tmp = tempfile::tempdir().unwrap();
    let server = common::Server::start(&tmp.path().join("state"));
    let icp = Icp { home: tmp.path().join("icp"), url: server.url() };
    icp.local(&["settings", "update-check", "disabled"]);
    let seed = tmp.path().join("seed.txt");
    icp.local(&["identity", "new", "ci", "--storage", "plaintext", "--output-seed", seed.to_str().unwrap()]);
    icp.local(&["identity", "default", "ci"]);
    let me = icp.local(&["identity", "principal"]).trim().to_string();

    // Create (through the cycles ledger stand-in), install, call.
    let id = icp.run(&["canister", "create", "--detached", "-q"]).trim().to_string();
    assert!(id.ends_with("-cai"), "icp canister create printed {id:?}");
    icp.run(&["canister", "install", &id, "--wasm", COUNTER, "-m", "install", "-y"]);
    assert_eq!(icp.run(&["canister", "call", &id, "inc", "()"]).trim(), "(1 : nat64)");
    assert_eq!(icp.run(&["canister", "call", &id, "inc", "()"]).trim(), "(2 : nat64)");
    assert_eq!(icp.run(&["canister", "call", &id, "get", "()", "--query"]).trim(), "(2 : nat64)");

    // Status, as the management canister reports it to a controller.
    let status: serde_json::Value = serde_json::from_str(&icp.run(&["canister", "status", &id, "--json"])).unwrap();
    let hash = hex::encode(Sha256::digest(std::fs::read(COUNTER).unwrap()));
    let text = status.to_string();
    assert!(text.contains(&hash), "the module hash {hash} is missing from {text}");
    assert!(text.contains(&me), "the controller {me} is missing from {text}");
    assert!(text.to_lowercase().contains("running"), "{text}");

    // A module over the 2 MiB ingress limit goes through the chunk store.
    let wasm = std::fs::read(INTERNET_IDENTITY).unwrap();
    assert!(wasm.len() > 2 << 20);
    let ii = icp.run(&["canister", "create", "--detached", "-q"]).trim().to_string();
    icp.run(&["canister", "install", &ii, "--wasm", INTERNET_IDENTITY, "-m", "install", "-y"]);
    let status: serde_json::Value = serde_json::from_str(&icp.run(&["canister", "status", &ii, "--json"])).unwrap();
    let hash = hex::encode(Sha256::digest(&wasm));
    assert!(status.to_string().contains(&hash), "the module hash {hash} is missing from {status}");
    drop(server);
}
