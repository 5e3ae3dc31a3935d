//! A host process is killed with SIGKILL at random moments while it runs
//! updates and checkpoints. After every restart, every acknowledged update
//! is present, and the recovered state equals a clean replay of the log.

use std::path::Path;
use std::process::Command;

use candid::{Decode, Encode};
use canister_host::{Host, HostConfig, Principal, VerifyOptions, verify};
use e2e::{KillSchedule, run_then_kill};

const KILLS: usize = 50;

/// The acknowledged puts: complete lines only (a kill can cut the last).
fn acknowledged(path: &Path) -> Vec<(Vec<u8>, Vec<u8>)> {
    let text = std::fs::read_to_string(path).unwrap_or_default();
    let mut lines: Vec<&str> = text.split('\n').collect();
    lines.pop(); // after the last newline: empty or a cut line
    lines
        .iter()
        .map(|l| l.split_once(' ').unwrap())
        .map(|(k, v)| (hex::decode(k).unwrap(), hex::decode(v).unwrap()))
        .collect()
}

#[test]
fn kill_9_at_random_moments_loses_no_acknowledged_update() {
    let tmp = tempfile::tempdir().unwrap();
    let state = tmp.path().join("state");
    let acks = tmp.path().join("acks");
    let mut schedule = KillSchedule::new(0x00c0_ffee, 60, 400);
    let mut checked = 0;
    for round in 0..KILLS {
        let mut driver = Command::new(env!("CARGO_BIN_EXE_host-torture"));
        driver.args([&state, &acks]);
        run_then_kill(driver, schedule.next_delay(), round);

        let host = Host::open(&state, HostConfig { workers: 2, ..HostConfig::default() })
            .unwrap_or_else(|e| panic!("round {round}: recovery failed: {e}"));
        let acked = acknowledged(&acks);
        // Keys acknowledged since the last check, plus a sample of older
        // ones (each was already checked once); all of them at the end.
        let sample = (0..checked).step_by((checked / 100).max(1));
        let keys: Vec<usize> =
            if round + 1 == KILLS { (0..acked.len()).collect() } else { sample.chain(checked..acked.len()).collect() };
        if let Some(kv) = host.resolve("kv") {
            for &i in &keys {
                let (key, value) = &acked[i];
                let reply = host.query_call(kv, Principal::anonymous(), "get", Encode!(key).unwrap()).unwrap();
                let got = Decode!(&reply, Option<Vec<u8>>).unwrap();
                assert_eq!(got.as_ref(), Some(value), "round {round}: acknowledged update {i} was lost");
            }
        } else {
            assert!(acked.is_empty(), "round {round}: the canister vanished");
        }
        checked = acked.len();
        let digest = host.state_digest().unwrap();
        drop(host);
        if std::fs::read_dir(state.join("checkpoints")).unwrap().next().is_some() {
            let report = verify(&state, VerifyOptions { workers: 2, ..VerifyOptions::default() }, &mut |_| {}).unwrap();
            assert_eq!(report.divergence, None, "round {round}");
            assert_eq!(report.final_state, digest, "round {round}: recovery differs from a clean replay of the log");
        }
    }
    assert!(checked > 200, "too few acknowledged updates to test anything: {checked}");
}
