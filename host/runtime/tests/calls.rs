//! Calls between canisters, through the System API directly (the `calls`
//! C canister): many outstanding calls, replies after several awaits,
//! every reject code, traps in callbacks and cleanup, stopping, best-effort
//! timeouts, and determinism under replay.

use std::time::{Duration, Instant};

use candid::{Decode, Encode};
use canister_host::*;

const OWNER: Principal = Principal::from_slice(&[0xaa; 29]);
const USER: Principal = Principal::anonymous();

fn config(workers: usize) -> HostConfig {
    HostConfig {
        workers,
        checkpoint_interval: 1_000_000,
        time: TimeSource::Deterministic { start: 1_000_000_000, step: 1_000 },
        ..HostConfig::default()
    }
}

fn calls_canister(host: &Host) -> Principal {
    let id = host.create_canister(OWNER, vec![], None).unwrap();
    host.install_code(OWNER, id, InstallMode::Install, canisters::CALLS.to_vec(), vec![]).unwrap();
    id
}

/// `relay(callee, method, best_effort)`: the reject code (0: a reply) and
/// the reply or reject message.
fn relay(host: &Host, from: Principal, to: Principal, method: &str, best_effort: u32) -> (u32, String) {
    let arg = Encode!(&to.as_slice().to_vec(), &method, &best_effort).unwrap();
    let reply = host.update_call(from, USER, "relay", arg).unwrap();
    let (code, bytes) = Decode!(&reply, u32, Vec<u8>).unwrap();
    (code, String::from_utf8_lossy(&bytes).into_owned())
}

fn stats(host: &Host, id: Principal) -> (u64, u64, u64) {
    Decode!(&host.query_call(id, USER, "stats", Encode!().unwrap()).unwrap(), u64, u64, u64).unwrap()
}

#[test]
fn many_outstanding_calls_are_answered_and_the_queue_capacity_is_enforced() {
    let dir = tempfile::tempdir().unwrap();
    let host = Host::open(dir.path(), config(2)).unwrap();
    let (a, b) = (calls_canister(&host), calls_canister(&host));
    let fanout = |n: u64| {
        let reply = host.update_call(a, USER, "fanout", Encode!(&b.as_slice().to_vec(), &n).unwrap()).unwrap();
        Decode!(&reply, u64, u64).unwrap()
    };
    assert_eq!(fanout(300), (300, 0), "one reply per call, then the answer");
    // Past the IC's 500 calls per message, call_perform fails (and the
    // call is not made).
    assert_eq!(fanout(600), (500, 100));
    assert_eq!(stats(&host, b).0, 800);
    assert!(host.canister_info(a).unwrap().calls_open == 0);
}

#[test]
fn calls_get_the_ics_reject_codes() {
    let dir = tempfile::tempdir().unwrap();
    let host = Host::open(dir.path(), config(1)).unwrap();
    let (a, b) = (calls_canister(&host), calls_canister(&host));
    assert_eq!(relay(&host, a, b, "echo", 0), (0, "DIDL\0\0".into()));
    // A query method called by a canister runs as a replicated query.
    let (code, text) = relay(&host, a, b, "stats", 0);
    assert_eq!(code, 0, "{text}");
    // ...and so does one called as an update by a user.
    let reply = host.update_call(b, USER, "stats", Encode!().unwrap()).unwrap();
    assert_eq!(Decode!(&reply, u64, u64, u64).unwrap(), (1, 0, 0));
    let (code, text) = relay(&host, a, b, "reject_me", 0);
    assert_eq!((code, text.as_str()), (4, "rejected on purpose"), "CANISTER_REJECT");
    let (code, text) = relay(&host, a, b, "boom", 0);
    assert!(code == 5 && text.contains("boom: deliberate trap"), "CANISTER_ERROR: {code} {text}");
    let (code, text) = relay(&host, a, b, "nope", 0);
    assert!(code == 5 && text.contains("no update method \"nope\""), "{code} {text}");
    let empty = host.create_canister(OWNER, vec![], None).unwrap();
    let (code, text) = relay(&host, a, empty, "echo", 0);
    assert!(code == 5 && text.contains("no code installed"), "{code} {text}");
    host.stop(OWNER, b).unwrap();
    let (code, text) = relay(&host, a, b, "echo", 0);
    assert!(code == 5 && text.contains("is stopped"), "{code} {text}");
    host.delete_canister(OWNER, b).unwrap();
    let (code, text) = relay(&host, a, b, "echo", 0);
    assert!(code == 3 && text.contains("does not exist"), "DESTINATION_INVALID: {code} {text}");
    // The trap rolled the callee back; nothing else ran twice.
    assert_eq!(stats(&host, a), (0, 0, 0));
}

#[test]
fn a_reply_comes_back_up_a_chain_of_awaits() {
    let dir = tempfile::tempdir().unwrap();
    let host = Host::open(dir.path(), config(2)).unwrap();
    let chain: Vec<Principal> = (0..6).map(|_| calls_canister(&host)).collect();
    let rest: Vec<u8> = chain[1..].iter().flat_map(|id| id.as_slice().to_vec()).collect();
    let reply = host.update_call(chain[0], USER, "chain", Encode!(&rest).unwrap()).unwrap();
    assert_eq!(Decode!(&reply, u64).unwrap(), 6);
}

#[test]
fn a_trapping_callback_is_rolled_back_and_its_cleanup_runs() {
    let dir = tempfile::tempdir().unwrap();
    let host = Host::open(dir.path(), config(1)).unwrap();
    let (a, b) = (calls_canister(&host), calls_canister(&host));
    let err = host.update_call(a, USER, "trap_in_callback", Encode!(&b.as_slice().to_vec()).unwrap()).unwrap_err();
    match err {
        CallError::Failed { code, message } => {
            assert_eq!(code, ErrorCode::CanisterCalledTrap);
            assert!(message.contains("the reply callback traps"), "{message}");
        }
        other => panic!("{other:?}"),
    }
    // The callback's change was rolled back; the cleanup's was kept.
    assert_eq!(stats(&host, a), (0, 0, 1));
    assert_eq!(stats(&host, b).0, 1);
}

/// A host whose slices are small, so `spin` takes many rounds.
fn small_slices(workers: usize, step: u64) -> HostConfig {
    let mut config = config(workers);
    config.execution.slice_instructions = 1_000_000;
    config.time = TimeSource::Deterministic { start: 1_000_000_000, step };
    config
}

#[test]
fn stopping_waits_for_open_call_contexts() {
    let dir = tempfile::tempdir().unwrap();
    let host = Host::open(dir.path(), small_slices(2, 1_000)).unwrap();
    let (a, b) = (calls_canister(&host), calls_canister(&host));
    // a's call to b's `spin` stays open for many rounds.
    let pending = host.submit_update(a, USER, "relay", Encode!(&b.as_slice().to_vec(), &"spin", &0u32).unwrap());
    std::thread::scope(|scope| {
        let stop = scope.spawn(|| host.stop(OWNER, a));
        let deadline = Instant::now() + Duration::from_secs(120);
        while host.canister_info(a).unwrap().status != CanisterStatus::Stopping {
            assert!(Instant::now() < deadline, "the canister never became stopping");
            std::thread::sleep(Duration::from_millis(1));
        }
        // While stopping, it takes no new calls.
        match host.update_call(a, USER, "echo", vec![]) {
            Err(CallError::Failed { code, .. }) => assert_eq!(code, ErrorCode::CanisterStopping),
            other => panic!("{other:?}"),
        }
        stop.join().unwrap().unwrap();
    });
    // The stop completed only after the open call was answered.
    let (code, _) = Decode!(&pending.wait().unwrap(), u32, Vec<u8>).unwrap();
    assert_eq!(code, 0);
    assert_eq!(host.canister_info(a).unwrap().status, CanisterStatus::Stopped);
}

#[test]
fn a_best_effort_call_times_out_with_sys_unknown() {
    let dir = tempfile::tempdir().unwrap();
    // Each round advances time by 100 ms: a 1-second timeout passes long
    // before `spin` (many rounds of small slices) answers.
    let host = Host::open(dir.path(), small_slices(1, 100_000_000)).unwrap();
    let (a, b) = (calls_canister(&host), calls_canister(&host));
    let (code, text) = relay(&host, a, b, "spin", 1);
    assert_eq!(code, 6, "SYS_UNKNOWN: {text}");
    // The late reply finds no callback and is dropped; a guaranteed call
    // still gets its reply.
    assert_eq!(relay(&host, a, b, "spin", 0).0, 0);
    assert_eq!(host.canister_info(a).unwrap().calls_open, 0);
}

/// A call-heavy workload: fan-outs, chains, traps and rejects.
fn workload(host: &Host) -> Vec<Principal> {
    let ids: Vec<Principal> = (0..4).map(|_| calls_canister(host)).collect();
    let blob = |id: &Principal| id.as_slice().to_vec();
    for i in 0..6u64 {
        let handles = vec![
            host.submit_update(ids[0], USER, "fanout", Encode!(&blob(&ids[1]), &(20 + i)).unwrap()),
            host.submit_update(ids[1], USER, "fanout", Encode!(&blob(&ids[0]), &(7 * i)).unwrap()),
            host.submit_update(ids[2], USER, "relay", Encode!(&blob(&ids[3]), &"boom", &0u32).unwrap()),
            host.submit_update(ids[3], USER, "trap_in_callback", Encode!(&blob(&ids[2])).unwrap()),
            host.submit_update(
                ids[2],
                USER,
                "chain",
                Encode!(&ids[..2].iter().flat_map(blob).collect::<Vec<u8>>()).unwrap(),
            ),
        ];
        for handle in handles {
            let _ = handle.wait();
        }
    }
    ids
}

#[test]
fn call_heavy_workloads_replay_to_the_same_digests_whatever_the_workers() {
    let dir = tempfile::tempdir().unwrap();
    let digest = {
        let host = Host::open(dir.path(), config(2)).unwrap();
        host.checkpoint().unwrap();
        workload(&host);
        host.state_digest().unwrap()
    };
    // Replaying the log with 1 and with 2 workers reproduces every round's
    // digest and the final state.
    for workers in [1, 2] {
        let options = VerifyOptions { workers, ..VerifyOptions::default() };
        let report = verify(dir.path(), options, &mut |_| {}).unwrap();
        assert_eq!(report.divergence, None, "{workers} workers");
        assert_eq!(report.final_state, digest);
    }
    // And reopening (replaying the log) gives the same state.
    let host = Host::open(dir.path(), config(2)).unwrap();
    assert_eq!(host.state_digest().unwrap(), digest);
}

#[test]
fn a_canisters_stop_canister_is_answered_once_the_target_stopped() {
    let dir = tempfile::tempdir().unwrap();
    let host = Host::open(dir.path(), small_slices(2, 1_000)).unwrap();
    let (a, b, parent) = (calls_canister(&host), calls_canister(&host), calls_canister(&host));
    host.set_controllers(OWNER, a, vec![OWNER, parent]).unwrap();
    // a's call to b's `spin` stays open for many rounds...
    let pending = host.submit_update(a, USER, "relay", Encode!(&b.as_slice().to_vec(), &"spin", &0u32).unwrap());
    // ...so the parent's stop_canister is answered only after it closes.
    let stop_arg = Encode!(&ic_management_canister_types::CanisterIdRecord { canister_id: a }).unwrap();
    let ic = Principal::management_canister().as_slice().to_vec();
    let reply = host.update_call(parent, USER, "call_raw", Encode!(&ic, &"stop_canister", &stop_arg).unwrap()).unwrap();
    let (code, _) = Decode!(&reply, u32, Vec<u8>).unwrap();
    assert_eq!(code, 0);
    assert!(pending.is_ready(), "the stop was answered before the call it waited for");
    assert_eq!(Decode!(&pending.wait().unwrap(), u32, Vec<u8>).unwrap().0, 0);
    assert_eq!(host.canister_info(a).unwrap().status, CanisterStatus::Stopped);
}

#[test]
fn uninstalling_rejects_open_calls_and_drops_their_late_responses() {
    let dir = tempfile::tempdir().unwrap();
    let host = Host::open(dir.path(), small_slices(2, 1_000)).unwrap();
    let (a, b) = (calls_canister(&host), calls_canister(&host));
    let pending = host.submit_update(a, USER, "relay", Encode!(&b.as_slice().to_vec(), &"spin", &0u32).unwrap());
    host.uninstall(OWNER, a).unwrap();
    match pending.wait() {
        Err(CallError::Rejected(text)) => assert_eq!(text, "Canister has been uninstalled."),
        other => panic!("{other:?}"),
    }
    let info = host.canister_info(a).unwrap();
    assert_eq!((info.calls_open, info.calls_outstanding), (0, 0));
    // b's answer comes later, finds no callback, and is dropped; b stays
    // healthy and a takes new code.
    let deadline = Instant::now() + Duration::from_secs(120);
    while host.canister_info(b).unwrap().calls_open > 0 {
        assert!(Instant::now() < deadline, "b never finished its spin");
        std::thread::sleep(Duration::from_millis(1));
    }
    host.install_code(OWNER, a, InstallMode::Install, canisters::CALLS.to_vec(), vec![]).unwrap();
    assert_eq!(relay(&host, a, b, "echo", 0).0, 0);
}

#[test]
fn a_stop_that_waits_five_minutes_times_out_and_the_canister_stays_stopping() {
    let dir = tempfile::tempdir().unwrap();
    // A minute of host time per round: `spin` takes far longer than five.
    let host = Host::open(dir.path(), small_slices(2, 60_000_000_000)).unwrap();
    let (a, b) = (calls_canister(&host), calls_canister(&host));
    let pending = host.submit_update(a, USER, "relay", Encode!(&b.as_slice().to_vec(), &"spin", &0u32).unwrap());
    match host.stop(OWNER, a) {
        Err(HostError::Rejected { code, message }) => {
            assert_eq!(code, ErrorCode::StopCanisterRequestTimeout, "{message}");
            assert!(message.contains("timed out"), "{message}");
        }
        other => panic!("{other:?}"),
    }
    assert!(!pending.is_ready(), "the stop timed out only after the call was answered");
    assert_eq!(host.canister_info(a).unwrap().status, CanisterStatus::Stopping);
    // Once the call is answered, the canister stops.
    assert_eq!(Decode!(&pending.wait().unwrap(), u32, Vec<u8>).unwrap().0, 0);
    assert_eq!(host.canister_info(a).unwrap().status, CanisterStatus::Stopped);
}
