//! Test driver for the crash loop: runs a host under a stream of updates
//! and checkpoints until it is killed.
//!
//! Usage: `host-torture STATE_DIR ACK_FILE [calls]`
//!
//! Every update whose reply arrived is appended to ACK_FILE as
//! `key value` (hex) and synced, so the file lists exactly what was
//! acknowledged before the kill.
//!
//! With `calls`, every update is a chain of calls between canisters
//! instead: a put that a `calls` canister forwards to the key-value
//! canister (`put key value`), and a fan-out of n calls to another
//! canister's `echo` (`fanout n`). Before each batch the driver appends
//! `intent n` with the calls the batch fans out, so the test knows how many
//! echoes may have run without being acknowledged.

use std::fs::OpenOptions;
use std::io::Write;
use std::path::PathBuf;

use candid::{Decode, Encode};
use canister_host::{Host, HostConfig, InstallMode, Principal};

const OWNER: Principal = Principal::from_slice(&[0x42; 29]);

fn main() -> Result<(), Box<dyn std::error::Error>> {
    let mut args = std::env::args_os().skip(1);
    let (Some(state), Some(acks)) = (args.next(), args.next()) else {
        return Err("usage: host-torture STATE_DIR ACK_FILE".into());
    };
    let config = HostConfig {
        workers: 2,
        checkpoint_interval: 7,
        keep_checkpoints: 2,
        wal_segment_bytes: 16 << 10,
        // Few overlays, so kills also land in checkpoints that rewrite
        // memories whole, not only in ones that add overlays.
        max_overlays: 2,
        ..HostConfig::default()
    };
    let host = Host::open(&PathBuf::from(state), config)?;
    // The canister may be missing, or created but not yet installed, if an
    // earlier run was killed during setup.
    let kv = match host.resolve("kv") {
        Some(id) => id,
        None => host.create_canister(OWNER, vec![], Some("kv".into()))?,
    };
    if host.canister_info(kv)?.state.module.is_none() {
        host.install_code(OWNER, kv, InstallMode::Install, canisters::KV.to_vec(), vec![])?;
    }
    let mut acks = OpenOptions::new().create(true).append(true).open(acks)?;
    if args.next().is_some_and(|mode| mode == "calls") {
        return call_chains(&host, kv, &mut acks);
    }
    let run = std::process::id();
    for batch in 0u64.. {
        let puts: Vec<_> = (0..8)
            .map(|i| {
                let key = format!("{run}-{batch}-{i}").into_bytes();
                let value = format!("value {batch} {i} of run {run}").into_bytes();
                let call = host.submit_update(kv, OWNER, "put", Encode!(&key, &value).unwrap());
                (key, value, call)
            })
            .collect();
        let mut lines = String::new();
        for (key, value, call) in puts {
            call.wait()?;
            lines += &format!("{} {}\n", hex::encode(&key), hex::encode(&value));
        }
        acks.write_all(lines.as_bytes())?;
        acks.sync_data()?;
        if batch % 5 == 4 {
            host.checkpoint()?;
        }
    }
    Ok(())
}

/// The canister named `name` with `wasm` installed, created if needed.
fn canister(host: &Host, name: &str, wasm: &[u8]) -> Result<Principal, Box<dyn std::error::Error>> {
    let id = match host.resolve(name) {
        Some(id) => id,
        None => host.create_canister(OWNER, vec![], Some(name.into()))?,
    };
    if host.canister_info(id)?.state.module.is_none() {
        host.install_code(OWNER, id, InstallMode::Install, wasm.to_vec(), vec![])?;
    }
    Ok(id)
}

/// Chains of calls between canisters, until killed.
fn call_chains(host: &Host, kv: Principal, acks: &mut std::fs::File) -> Result<(), Box<dyn std::error::Error>> {
    let front = canister(host, "front", canisters::CALLS)?;
    let echo = canister(host, "echo", canisters::CALLS)?;
    let run = std::process::id();
    for batch in 0u64.. {
        let fanout = 1 + batch % 7;
        acks.write_all(format!("intent {}\n", 4 * fanout).as_bytes())?;
        acks.sync_data()?;
        let mut puts = Vec::new();
        let mut fanouts = Vec::new();
        for i in 0..4 {
            let key = format!("{run}-{batch}-{i}").into_bytes();
            let value = format!("forwarded {batch} {i} of run {run}").into_bytes();
            let arg = Encode!(&kv.as_slice().to_vec(), &"put", &Encode!(&key, &value).unwrap()).unwrap();
            puts.push((key, value, host.submit_update(front, OWNER, "call_raw", arg)));
            let arg = Encode!(&echo.as_slice().to_vec(), &fanout).unwrap();
            fanouts.push(host.submit_update(front, OWNER, "fanout", arg));
        }
        let mut lines = String::new();
        for (key, value, call) in puts {
            let reply = call.wait()?;
            let (code, _) = Decode!(&reply, u32, Vec<u8>)?;
            if code != 0 {
                return Err(format!("a forwarded put was rejected with code {code}").into());
            }
            lines += &format!("put {} {}\n", hex::encode(&key), hex::encode(&value));
        }
        for call in fanouts {
            let (replies, rejects) = Decode!(&call.wait()?, u64, u64)?;
            if (replies, rejects) != (fanout, 0) {
                return Err(format!("a fan-out of {fanout} came back as {replies} replies, {rejects} rejects").into());
            }
            lines += &format!("fanout {fanout}\n");
        }
        acks.write_all(lines.as_bytes())?;
        acks.sync_data()?;
        if batch % 5 == 4 {
            host.checkpoint()?;
        }
    }
    Ok(())
}
