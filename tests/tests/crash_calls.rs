//! A host running chains of calls between canisters is killed with SIGKILL
//! at random moments. After every restart: every acknowledged chain has its
//! full effect in the canister at its end, no call ran more often than it
//! was made (the echoes counted lie between those acknowledged and those
//! ever asked for), no call is left half-way, and the recovered state
//! equals a clean replay of the log.

use std::path::Path;
use std::process::Command;
use std::time::{Duration, Instant};

use candid::{Decode, Encode};
use canister_host::{Host, HostConfig, Principal, VerifyOptions, verify};
use e2e::{KillSchedule, run_then_kill};

const KILLS: usize = 20;

/// What the driver acknowledged: forwarded puts, the echoes of the fan-outs
/// acknowledged, and the echoes of every batch it started (a batch cut by
/// a kill may have run, in part or whole, without being acknowledged).
struct Acks {
    puts: Vec<(Vec<u8>, Vec<u8>)>,
    echoes: u64,
    intended: u64,
}

fn acknowledged(path: &Path) -> Acks {
    let text = std::fs::read_to_string(path).unwrap_or_default();
    let mut lines: Vec<&str> = text.split('\n').collect();
    lines.pop(); // after the last newline: empty or a cut line
    let mut acks = Acks { puts: Vec::new(), echoes: 0, intended: 0 };
    for line in lines {
        let mut words = line.split(' ');
        match (words.next(), words.next(), words.next()) {
            (Some("put"), Some(k), Some(v)) => acks.puts.push((hex::decode(k).unwrap(), hex::decode(v).unwrap())),
            (Some("fanout"), Some(n), None) => acks.echoes += n.parse::<u64>().unwrap(),
            (Some("intent"), Some(n), None) => acks.intended += n.parse::<u64>().unwrap(),
            _ => panic!("unexpected line {line:?}"),
        }
    }
    acks
}

#[test]
fn kill_9_in_the_middle_of_call_chains_loses_and_repeats_nothing() {
    let tmp = tempfile::tempdir().unwrap();
    let state = tmp.path().join("state");
    let acks = tmp.path().join("acks");
    let mut schedule = KillSchedule::new(0x5eed_ca11, 80, 500);
    let mut total_puts = 0;
    for round in 0..KILLS {
        let mut driver = Command::new(env!("CARGO_BIN_EXE_host-torture"));
        driver.arg(&state).arg(&acks).arg("calls");
        run_then_kill(driver, schedule.next_delay(), round);

        let host = Host::open(&state, HostConfig { workers: 2, ..HostConfig::default() })
            .unwrap_or_else(|e| panic!("round {round}: recovery failed: {e}"));
        let acked = acknowledged(&acks);
        // A kill during setup can leave a canister created but empty.
        let installed =
            |name: &str| host.resolve(name).filter(|id| host.canister_info(*id).unwrap().state.module.is_some());
        if let (Some(kv), Some(echo), Some(_)) = (installed("kv"), installed("echo"), installed("front")) {
            // Chains cut by the kill resume from the recovered queues and
            // finish: no call is lost half-way.
            let deadline = Instant::now() + Duration::from_secs(60);
            while host.canisters().iter().any(|c| c.calls_open > 0 || c.calls_outstanding > 0) {
                assert!(Instant::now() < deadline, "round {round}: calls cut by the kill never finished");
                std::thread::sleep(Duration::from_millis(2));
            }
            for (i, (key, value)) in acked.puts.iter().enumerate() {
                let reply = host.query_call(kv, Principal::anonymous(), "get", Encode!(key).unwrap()).unwrap();
                let got = Decode!(&reply, Option<Vec<u8>>).unwrap();
                assert_eq!(got.as_ref(), Some(value), "round {round}: forwarded put {i} was lost");
            }
            let stats = host.query_call(echo, Principal::anonymous(), "stats", Encode!().unwrap()).unwrap();
            let (echoes, _, _) = Decode!(&stats, u64, u64, u64).unwrap();
            assert!(
                acked.echoes <= echoes && echoes <= acked.intended,
                "round {round}: {echoes} echoes ran; {} were acknowledged and {} were ever asked for",
                acked.echoes,
                acked.intended
            );
        } else {
            assert!(acked.puts.is_empty() && acked.echoes == 0, "round {round}: a canister vanished");
        }
        total_puts = acked.puts.len();
        let digest = host.state_digest().unwrap();
        drop(host);
        if std::fs::read_dir(state.join("checkpoints")).unwrap().next().is_some() {
            let report = verify(&state, VerifyOptions { workers: 1, ..VerifyOptions::default() }, &mut |_| {}).unwrap();
            assert_eq!(report.divergence, None, "round {round}");
            assert_eq!(report.final_state, digest, "round {round}: recovery differs from a clean replay of the log");
        }
    }
    assert!(total_puts > 100, "too few acknowledged chains to test anything: {total_puts}");
}
