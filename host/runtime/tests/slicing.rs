//! Deterministic time slicing: a long message runs a slice per round, so
//! it holds no other canister up for more than about a slice; its result
//! is the one an unsliced run gives, and a restart (replay, or recovery from
//! a checkpoint taken while it runs) reproduces it.

use std::sync::Arc;

use candid::Principal;
use canister_host::*;

const OWNER: Principal = Principal::from_slice(&[0xaa; 29]);
const USER: Principal = Principal::anonymous();
/// Small slices, so a message of a few hundred million instructions spans
/// tens of rounds.
const SLICE: u64 = 10_000_000;

/// `spin` loops until its limit; `sum(n)` sums i*i below `n`, stores the
/// sum and replies with it; `get` replies with the stored sum; `bump`
/// counts calls, and `bumps` replies with the count.
const WAT: &str = r#"(module
    (import "ic0" "msg_reply" (func $reply))
    (import "ic0" "msg_reply_data_append" (func $append (param i32 i32)))
    (import "ic0" "msg_arg_data_copy" (func $arg (param i32 i32 i32)))
    (memory 1)
    (func (export "canister_update spin") (loop $l (br $l)))
    (func (export "canister_update sum") (local $i i64) (local $acc i64) (local $n i64)
        (call $arg (i32.const 16) (i32.const 0) (i32.const 8))
        (local.set $n (i64.load (i32.const 16)))
        (block $done (loop $l
            (br_if $done (i64.ge_u (local.get $i) (local.get $n)))
            (local.set $acc (i64.add (local.get $acc) (i64.mul (local.get $i) (local.get $i))))
            (local.set $i (i64.add (local.get $i) (i64.const 1)))
            (br $l)))
        (i64.store (i32.const 0) (local.get $acc))
        (call $append (i32.const 0) (i32.const 8)) (call $reply))
    (func (export "canister_update bump")
        (i64.store (i32.const 8) (i64.add (i64.load (i32.const 8)) (i64.const 1)))
        (call $append (i32.const 8) (i32.const 8)) (call $reply))
    (func (export "canister_query get") (call $append (i32.const 0) (i32.const 8)) (call $reply))
    (func (export "canister_query bumps") (call $append (i32.const 8) (i32.const 8)) (call $reply)))"#;

/// The same, with a heartbeat that runs until its limit.
fn with_heartbeat() -> String {
    WAT.replacen("(memory 1)", "(memory 1) (func (export \"canister_heartbeat\") (loop $l (br $l)))", 1)
}

fn config(slice: u64) -> HostConfig {
    HostConfig {
        workers: 2,
        checkpoint_interval: 1_000_000,
        time: TimeSource::Deterministic { start: 1_000_000_000, step: 1_000 },
        execution: ExecutionConfig {
            slice_instructions: slice,
            update_instruction_limit: 400_000_000,
            ..ExecutionConfig::default()
        },
        ..HostConfig::default()
    }
}

fn install(host: &Host, wasm: &[u8]) -> Principal {
    let id = host.create_canister(OWNER, vec![], None).unwrap();
    host.install_code(OWNER, id, InstallMode::Install, wasm.to_vec(), vec![]).unwrap();
    id
}

fn u64_reply(bytes: &[u8]) -> u64 {
    u64::from_le_bytes(bytes.try_into().unwrap())
}

fn expected_sum(n: u64) -> u64 {
    (0..n).fold(0u64, |acc, i| acc.wrapping_add(i.wrapping_mul(i)))
}

/// While one canister spins through tens of slices, another's calls each
/// complete within a couple of rounds: the spinning canister holds each
/// round for one slice, not for its whole message.
#[test]
fn a_long_message_holds_other_canisters_up_for_about_a_slice() {
    let tmp = tempfile::tempdir().unwrap();
    let host = Host::open(tmp.path(), config(SLICE)).unwrap();
    let wasm = wat::parse_str(WAT).unwrap();
    let (spinner, other) = (install(&host, &wasm), install(&host, &wasm));
    let spin = host.submit_update(spinner, USER, "spin", vec![]);
    for i in 1..=5 {
        let before = host.height().height;
        assert_eq!(u64_reply(&host.update_call(other, USER, "bump", vec![]).unwrap()), i);
        let rounds = host.height().height - before;
        assert!(rounds <= 3, "a call took {rounds} rounds beside a long message");
        assert!(!spin.is_ready(), "the long message finished too early");
    }
    let err = spin.wait().unwrap_err();
    assert_eq!(err.error_code(), Some(ErrorCode::CanisterInstructionLimitExceeded), "{err}");
    // Its 400 million instructions took about 40 slices, a round each.
    assert!(host.height().height >= 40, "only {} rounds", host.height().height);
}

/// Many messages to one canister, each under a slice, do not all run in
/// one round: once the canister has used a slice in a round, the rest wait
/// for the next, so a burst cannot hold everyone's round up either. What
/// they compute is what they compute in one round.
#[test]
fn a_burst_to_one_canister_takes_about_a_slice_per_round() {
    // Between half a slice and a slice of instructions each: two fill one.
    let n = 450_000u64;
    let run = |slice: u64| {
        let tmp = tempfile::tempdir().unwrap();
        let host = Host::open(tmp.path(), config(slice)).unwrap();
        let wasm = wat::parse_str(WAT).unwrap();
        let (busy, other) = (install(&host, &wasm), install(&host, &wasm));
        host.checkpoint().unwrap();
        let before = host.height().height;
        let burst: Vec<_> = (0..10).map(|_| host.submit_update(busy, USER, "sum", n.to_le_bytes().to_vec())).collect();
        let bump = host.submit_update(other, USER, "bump", vec![]);
        // Read after submitting: a delay of this thread only makes it later.
        let submitted = host.height().height;
        assert_eq!(u64_reply(&bump.wait().unwrap()), 1);
        for call in burst {
            assert_eq!(u64_reply(&call.wait().unwrap()), expected_sum(n));
        }
        // The round that ran the bump, from the history (timing-free): the
        // first after `submitted` whose state has it.
        let bumps_at = |height: u64| {
            let past = PastState::open(tmp.path(), config(slice).execution, Some(height)).unwrap();
            u64_reply(&past.query(other, USER, "bumps", vec![]).unwrap())
        };
        let ran = (submitted..=host.height().height).find(|h| bumps_at(*h) == 1).unwrap();
        (host.height().height - before, ran.saturating_sub(submitted), host.state_digest().unwrap())
    };
    let (rounds, bump_rounds, state) = run(SLICE);
    assert!(rounds >= 5, "10 messages of over half a slice ran in {rounds} rounds");
    // The round under way when it arrived, then the next: the burst's
    // queued messages never hold it back.
    assert!(bump_rounds <= 2, "another canister's call took {bump_rounds} rounds");
    let (_, _, unbounded_state) = run(u64::MAX);
    assert_eq!(state, unbounded_state, "spreading messages over rounds changed what they computed");
}

/// A sliced message gives exactly what an unsliced one gives: the same
/// reply and the same state, digest for digest.
#[test]
fn slicing_changes_when_a_message_completes_never_what_it_computes() {
    let n = 20_000_000u64;
    let run = |slice: u64| {
        let tmp = tempfile::tempdir().unwrap();
        let host = Host::open(tmp.path(), config(slice)).unwrap();
        let id = install(&host, &wat::parse_str(WAT).unwrap());
        let sum = host.submit_update(id, USER, "sum", n.to_le_bytes().to_vec());
        let bump = host.submit_update(id, USER, "bump", vec![]);
        let replies = (u64_reply(&sum.wait().unwrap()), u64_reply(&bump.wait().unwrap()));
        (replies, host.state_digest().unwrap(), host.height().height)
    };
    let (sliced, sliced_state, sliced_rounds) = run(SLICE);
    let (whole, whole_state, whole_rounds) = run(u64::MAX);
    assert_eq!(sliced, (expected_sum(n), 1));
    assert_eq!(sliced, whole);
    assert_eq!(sliced_state, whole_state);
    assert!(sliced_rounds > whole_rounds + 5, "{sliced_rounds} rounds sliced, {whole_rounds} whole");
}

/// Replay reproduces a sliced history, and a checkpoint taken while a long
/// message runs restarts it after recovery, to the same end.
#[test]
fn replay_and_recovery_from_a_checkpoint_mid_message_agree() {
    let n = 20_000_000u64;
    let tmp = tempfile::tempdir().unwrap();
    let id;
    let reference = {
        let host = Host::open(tmp.path(), config(SLICE)).unwrap();
        id = install(&host, &wat::parse_str(WAT).unwrap());
        let sum = host.submit_update(id, USER, "sum", n.to_le_bytes().to_vec());
        let bump = host.submit_update(id, USER, "bump", vec![]);
        // Checkpoint while the sum is still running (the checkpoint follows
        // the round the sum starts in), then stop as if the process died.
        host.checkpoint().unwrap();
        assert!(!sum.is_ready(), "the checkpoint came too late to catch the message running");
        assert_eq!(u64_reply(&sum.wait().unwrap()), expected_sum(n));
        assert_eq!(u64_reply(&bump.wait().unwrap()), 1);
        host.state_digest().unwrap()
    };
    let host = Host::open(tmp.path(), config(SLICE)).unwrap();
    assert!(host.recovery().replayed_rounds > 5, "{:?}", host.recovery());
    assert_eq!(host.state_digest().unwrap(), reference);
    assert_eq!(u64_reply(&host.query_call(id, USER, "get", vec![]).unwrap()), expected_sum(n));
    drop(host);
    let options = VerifyOptions { workers: 2, execution: config(SLICE).execution, ..Default::default() };
    let report = verify(tmp.path(), options, &mut |_| {}).unwrap();
    assert_eq!(report.divergence, None);
    assert_eq!(report.final_state, reference);
}

/// A heartbeat that always runs to its limit takes a slice per round: other
/// canisters go on, and the canister's own calls run between heartbeats.
#[test]
fn a_heartbeat_that_never_finishes_does_not_monopolise_rounds() {
    let tmp = tempfile::tempdir().unwrap();
    let host = Arc::new(Host::open(tmp.path(), config(SLICE)).unwrap());
    let busy = install(&host, &wat::parse_str(with_heartbeat()).unwrap());
    let other = install(&host, &wat::parse_str(WAT).unwrap());
    for i in 1..=3 {
        assert_eq!(u64_reply(&host.update_call(other, USER, "bump", vec![]).unwrap()), i);
        assert_eq!(u64_reply(&host.update_call(busy, USER, "bump", vec![]).unwrap()), i);
    }
}
