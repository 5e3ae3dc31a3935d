//! `serve --replicate-to` (a directory store, and S3 on a local
//! `moto_server`) killed with SIGKILL while ic-agent clients send updates
//! and it ships; `restore --from` on a fresh state directory then holds
//! every round the store had been shipped, and exactly the primary's state
//! at that round. And `follow` serving a replica over HTTP.

use std::io::{Read, Write};
use std::path::Path;
use std::process::Command;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{Duration, Instant};

use candid::{Decode, Encode, Principal};
use ic_agent::Agent;

mod common;

const COUNTER: &str = concat!(env!("CARGO_MANIFEST_DIR"), "/../../canisters/wasm/counter.wasm");

fn cli(dir: &Path, args: &[&str]) -> String {
    cli_with(dir, args, &[])
}

/// [`cli`] with environment variables `env` (a store's settings).
fn cli_with(dir: &Path, args: &[&str], env: &[(String, String)]) -> String {
    let out = Command::new(common::bin())
        .args(args)
        .envs(env.iter().cloned())
        .env("CANISTER_HOST_DIR", dir)
        .output()
        .unwrap();
    assert!(out.status.success(), "{args:?}: {}", String::from_utf8_lossy(&out.stderr));
    String::from_utf8(out.stdout).unwrap()
}

/// A gauge from the server's `/metrics`, over plain HTTP/1.1.
fn gauge(port: u16, name: &str) -> Option<u64> {
    let mut stream = std::net::TcpStream::connect(("127.0.0.1", port)).ok()?;
    write!(stream, "GET /metrics HTTP/1.1\r\nHost: localhost\r\nConnection: close\r\n\r\n").ok()?;
    let mut text = String::new();
    stream.read_to_string(&mut text).ok()?;
    let line = text.lines().find(|l| l.starts_with(name) && l[name.len()..].starts_with(' '))?;
    line[name.len()..].trim().parse::<f64>().ok().map(|v| v as u64)
}

#[tokio::test(flavor = "multi_thread")]
async fn a_restore_from_a_directory_store_holds_every_shipped_round_after_kill_9() {
    let store = tempfile::tempdir().unwrap();
    kill_9_while_shipping_then_restore(&format!("file://{}", store.path().display()), &[]).await;
}

#[tokio::test(flavor = "multi_thread")]
async fn a_restore_from_s3_holds_every_shipped_round_after_kill_9_during_uploads() {
    let Some(moto) = testkit::moto::Moto::start(0) else { return };
    let url = format!("s3://{}/primary", testkit::moto::BUCKET);
    kill_9_while_shipping_then_restore(&url, &moto.env()).await;
}

/// Serve a counter shipping to `url` (reached with environment `env`)
/// under 8 ic-agent clients; SIGKILL it while it ships; `restore --from`
/// on a fresh directory then holds at least every round the store had
/// been shipped, and exactly the primary's state at that round.
async fn kill_9_while_shipping_then_restore(url: &str, env: &[(String, String)]) {
    let (primary, fresh) = (tempfile::tempdir().unwrap(), tempfile::tempdir().unwrap());
    let (a, b) = (primary.path(), fresh.path());
    let id = cli(a, &["create", "--name", "counter"]).split_whitespace().next().unwrap().to_string();
    let counter = Principal::from_text(&id).unwrap();
    cli(a, &["install", "counter", "--wasm", COUNTER]);

    // Passes back to back: the kill lands in one, mid-upload.
    let args = ["--replicate-to", url, "--replicate-every", "0.005"];
    let server = common::Server::run("serve", a, &a.join("port"), &args, env);
    let endpoint = server.url();
    let acked = Arc::new(AtomicU64::new(0));
    let mut clients = Vec::new();
    for _ in 0..8 {
        let agent = Agent::builder().with_url(endpoint.as_str()).build().unwrap();
        agent.fetch_root_key().await.unwrap();
        let acked = acked.clone();
        clients.push(tokio::spawn(async move {
            for _ in 0..100_000 {
                match agent.update(&counter, "inc").with_arg(Encode!().unwrap()).await {
                    Ok(reply) => drop(acked.fetch_max(Decode!(&reply, u64).unwrap(), Ordering::SeqCst)),
                    Err(_) => return,
                }
            }
        }));
    }
    // Past a few checkpoints (one per 100 rounds), shipped; uploads go on
    // at every pass (a sealed segment each), so the kill lands among them.
    let deadline = Instant::now() + Duration::from_secs(120);
    let shipped = loop {
        let shipped = gauge(server.port, "canister_host_replication_shipped_height").unwrap_or(0);
        if shipped >= 300 {
            break shipped;
        }
        assert!(Instant::now() < deadline, "the store never reached round 300 (at {shipped})");
        tokio::time::sleep(Duration::from_millis(20)).await;
    };
    drop(server); // SIGKILL, mid-stream and mid-shipment
    for client in clients {
        client.await.unwrap();
    }

    let report: serde_json::Value =
        serde_json::from_str(&cli_with(b, &["--json", "restore", "--from", url], env)).unwrap();
    let height = report["height"].as_u64().unwrap();
    assert!(height >= shipped, "restored to round {height}, but the store had shipped round {shipped}: {report}");
    let restored = cli(b, &["query", "counter", "get"]);
    // The primary, restarted, answers for that round from its own log.
    let then = cli(a, &["query", "counter", "get", "--at-height", &height.to_string()]);
    assert_eq!(restored, then, "the restored state differs from the primary's at round {height}");
    let now: u64 =
        cli(a, &["query", "counter", "get"]).trim().trim_start_matches('(').split(' ').next().unwrap().parse().unwrap();
    assert!(now >= acked.load(Ordering::SeqCst), "the primary lost an acknowledged update");
}

/// `counter.get` through `agent`, as a number.
async fn get(agent: &Agent, counter: Principal) -> Result<u64, String> {
    let reply = agent.query(&counter, "get").with_arg(Encode!().unwrap()).call().await.map_err(|e| e.to_string())?;
    Ok(Decode!(&reply, u64).unwrap())
}

#[tokio::test(flavor = "multi_thread")]
async fn a_follower_serves_queries_over_http_and_refuses_updates_naming_the_primary() {
    let (primary, store, replica) =
        (tempfile::tempdir().unwrap(), tempfile::tempdir().unwrap(), tempfile::tempdir().unwrap());
    let a = primary.path();
    let url = format!("file://{}", store.path().display());
    let id = cli(a, &["create", "--name", "counter"]).split_whitespace().next().unwrap().to_string();
    let counter = Principal::from_text(&id).unwrap();
    cli(a, &["install", "counter", "--wasm", COUNTER]);
    let server = common::Server::start_with(a, &["--replicate-to", &url, "--replicate-every", "0.05"]);
    let to_primary = Agent::builder().with_url(server.url()).build().unwrap();
    to_primary.fetch_root_key().await.unwrap();

    let replica_dir = replica.path().join("replica");
    let follower = common::Server::run(
        "follow",
        &replica_dir,
        &replica.path().join("port"),
        &["--from", &url, "--primary", &server.url(), "--every", "0.05"],
        &[],
    );
    let to_replica = Agent::builder().with_url(follower.url()).build().unwrap();
    to_replica.fetch_root_key().await.unwrap();

    // Each acknowledged update shows on the follower, which answers with
    // a signed query response its agent verifies.
    let deadline = Instant::now() + Duration::from_secs(60);
    for round in 1..=3u64 {
        for _ in 0..10 {
            to_primary.update(&counter, "inc").with_arg(Encode!().unwrap()).await.unwrap();
        }
        while get(&to_replica, counter).await.ok() != Some(10 * round) {
            assert!(
                Instant::now() < deadline,
                "the follower never showed {} ({:?})",
                10 * round,
                get(&to_replica, counter).await
            );
            tokio::time::sleep(Duration::from_millis(10)).await;
        }
    }
    // read_state answers from the replayed state.
    let hash = |agent: &Agent| {
        let agent = agent.clone();
        async move { agent.read_state_canister_info(counter, "module_hash").await.unwrap() }
    };
    assert_eq!(hash(&to_replica).await, hash(&to_primary).await);
    assert!(gauge(follower.port, "canister_host_follower_round").is_some_and(|r| r >= 30));
    let shipped_at = gauge(server.port, "canister_host_replication_last_success_timestamp_seconds");
    assert!(shipped_at.is_some_and(|t| t > 1_700_000_000), "{shipped_at:?}");

    // Updates are refused, naming the primary; the state stays as it was.
    let refused = to_replica.update(&counter, "inc").with_arg(Encode!().unwrap()).await.unwrap_err().to_string();
    assert!(refused.contains("read replica") && refused.contains(&server.url()), "{refused}");
    assert_eq!(get(&to_primary, counter).await.unwrap(), 30);

    // The CLI queries the replica's directory beside the follower;
    // commands that open a host refuse it. Once the follower stops and the
    // marker goes, it opens as a primary at the state it had replayed (a
    // failover).
    assert_eq!(cli(&replica_dir, &["query", "counter", "get"]).trim(), "(30 : nat64)");
    let mut call = Command::new(common::bin());
    let out = call.args(["call", "counter", "inc"]).env("CANISTER_HOST_DIR", &replica_dir).output().unwrap();
    assert!(String::from_utf8_lossy(&out.stderr).contains("read replica kept by"), "{out:?}");
    drop(follower);
    std::fs::remove_file(replica_dir.join(replication::REPLICA_MARKER)).unwrap();
    assert_eq!(cli(&replica_dir, &["call", "counter", "inc"]).trim(), "(31 : nat64)");

    // A follower is not pointed at a primary's own directory.
    let out =
        Command::new(common::bin()).args(["follow", "--from", &url]).env("CANISTER_HOST_DIR", a).output().unwrap();
    assert!(!out.status.success());
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(stderr.contains("in use by process"), "{stderr}");
}

#[test]
fn keeping_no_checkpoint_in_the_store_is_a_usage_error() {
    let (dir, store) = (tempfile::tempdir().unwrap(), tempfile::tempdir().unwrap());
    let url = format!("file://{}", store.path().display());
    let out = Command::new(common::bin())
        .args(["serve", "--listen", "127.0.0.1:0", "--replicate-to", &url, "--replicate-keep", "0"])
        .env("CANISTER_HOST_DIR", dir.path())
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(2), "{out:?}");
    assert!(String::from_utf8_lossy(&out.stderr).contains("--replicate-keep must keep at least 1"), "{out:?}");
    assert!(!dir.path().join("checkpoints").exists(), "the host was opened before the options were checked");
}
