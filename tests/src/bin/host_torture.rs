//! Test driver for the crash loop: runs a host under a stream of updates
//! and checkpoints until it is killed.
//!
//! Usage: `host-torture STATE_DIR ACK_FILE`
//!
//! Every update whose reply arrived is appended to ACK_FILE as
//! `key value` (hex) and synced, so the file lists exactly what was
//! acknowledged before the kill.

use std::fs::OpenOptions;
use std::io::Write;
use std::path::PathBuf;

use candid::Encode;
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
