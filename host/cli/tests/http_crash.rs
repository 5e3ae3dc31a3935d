//! `canister-host serve` killed with SIGKILL while ic-agent clients send
//! updates: after a restart every acknowledged update is in the state,
//! finished request statuses are still certified, and a resubmitted
//! request is answered from its status instead of running twice.

use std::path::Path;
use std::process::Command;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Duration;

use candid::{Decode, Encode, Principal};
use ic_agent::Agent;
use ic_agent::agent::{CallResponse, RequestStatusResponse};

mod common;

const COUNTER: &str = concat!(env!("CARGO_MANIFEST_DIR"), "/../../canisters/wasm/counter.wasm");

fn cli(dir: &Path, args: &[&str]) -> String {
    let out = Command::new(common::bin()).args(args).env("CANISTER_HOST_DIR", dir).output().unwrap();
    assert!(out.status.success(), "{args:?}: {}", String::from_utf8_lossy(&out.stderr));
    String::from_utf8(out.stdout).unwrap()
}

async fn agent(url: &str) -> Agent {
    let agent = Agent::builder().with_url(url).build().unwrap();
    agent.fetch_root_key().await.unwrap();
    agent
}

async fn count(agent: &Agent, counter: Principal) -> u64 {
    let reply = agent.query(&counter, "get").with_arg(Encode!().unwrap()).call().await.unwrap();
    Decode!(&reply, u64).unwrap()
}

#[tokio::test(flavor = "multi_thread")]
async fn acknowledged_updates_and_request_statuses_survive_kill_9_of_the_server() {
    let tmp = tempfile::tempdir().unwrap();
    let dir = tmp.path();
    let id = cli(dir, &["create", "--name", "counter"]).split_whitespace().next().unwrap().to_string();
    let counter = Principal::from_text(&id).unwrap();
    cli(dir, &["install", "counter", "--wasm", COUNTER]);

    let server = common::Server::start(dir);
    let url = server.url();
    let first = agent(&url).await;
    // One update whose request id the test keeps, to ask about later.
    let signed = first.update(&counter, "inc").with_arg(Encode!().unwrap()).sign().unwrap();
    let reply = match first.update_signed(counter, signed.signed_update.clone()).await.unwrap() {
        CallResponse::Response(reply) => reply,
        CallResponse::Poll(rid) => first.wait(&rid, counter).await.unwrap().0,
    };
    assert_eq!(Decode!(&reply, u64).unwrap(), 1);

    // Eight clients send updates until the server dies under them; each
    // remembers the highest count it was acknowledged.
    let acked = Arc::new(AtomicU64::new(1));
    let mut clients = Vec::new();
    for _ in 0..8 {
        let (agent, acked) = (agent(&url).await, acked.clone());
        clients.push(tokio::spawn(async move {
            for _ in 0..10_000 {
                match agent.update(&counter, "inc").with_arg(Encode!().unwrap()).await {
                    Ok(reply) => drop(acked.fetch_max(Decode!(&reply, u64).unwrap(), Ordering::SeqCst)),
                    Err(_) => return,
                }
            }
        }));
    }
    while acked.load(Ordering::SeqCst) < 50 {
        tokio::time::sleep(Duration::from_millis(5)).await;
    }
    drop(server); // SIGKILL, mid-stream
    for client in clients {
        client.await.unwrap();
    }
    let acked = acked.load(Ordering::SeqCst);

    let server = common::Server::start(dir);
    let after = agent(&server.url()).await;
    let recovered = count(&after, counter).await;
    assert!(recovered >= acked, "acknowledged count {acked}, but only {recovered} after the restart");

    // The first call's status survived, certified by the same root key.
    assert_eq!(after.read_root_key(), first.read_root_key());
    let (status, _) = after.request_status_raw(&signed.request_id, counter).await.unwrap();
    match status {
        RequestStatusResponse::Replied(reply) => assert_eq!(Decode!(&reply.arg, u64).unwrap(), 1),
        other => panic!("the first call's status after the restart: {other:?}"),
    }
    // Sending that request again answers it from its status: it does not run.
    let again = match after.update_signed(counter, signed.signed_update.clone()).await.unwrap() {
        CallResponse::Response(reply) => reply,
        CallResponse::Poll(rid) => after.wait(&rid, counter).await.unwrap().0,
    };
    assert_eq!(Decode!(&again, u64).unwrap(), 1);
    assert_eq!(count(&after, counter).await, recovered);
}
