//! Sliced execution on real code: a message paced by a gate stops within
//! a fraction of a slice of each allowance, whether its loop calls
//! functions or not, and its result is the unsliced one.

use std::sync::Arc;

use embedder::*;
use testkit::*;

const SLICE: u64 = 10_000_000;
const LIMIT: u64 = 100_000_000;

/// `spin` loops without a call; `calls` loops calling a function;
/// `sum` ends after about 35 million instructions with a reply.
const WAT: &str = r#"(module
    (import "ic0" "msg_reply" (func $reply))
    (import "ic0" "msg_reply_data_append" (func $append (param i32 i32)))
    (memory 1)
    (func $nothing)
    (func (export "canister_update spin") (loop $l (br $l)))
    (func (export "canister_update calls") (loop $l (call $nothing) (br $l)))
    (func (export "canister_update sum") (local $i i64) (local $acc i64)
        (block $done (loop $l
            (br_if $done (i64.ge_u (local.get $i) (i64.const 5000000)))
            (local.set $acc (i64.add (local.get $acc) (local.get $i)))
            (local.set $i (i64.add (local.get $i) (i64.const 1)))
            (br $l)))
        (i64.store (i32.const 0) (local.get $acc))
        (call $append (i32.const 0) (i32.const 8)) (call $reply)))"#;

fn sliced_executor() -> Arc<Executor> {
    let config =
        ExecutionConfig { update_instruction_limit: LIMIT, slice_instructions: SLICE, ..ExecutionConfig::default() };
    Arc::new(Executor::new(engine(), config))
}

fn call(method: &str) -> Call<'_> {
    Call::method(method, MethodKind::Update, &[], ANONYMOUS, 1)
}

/// Run `method` sliced on its own thread, allowing one slice at a time and
/// checking where it stops each time. The number of slices it took, and
/// its result.
fn run_sliced(method: &'static str) -> (u64, MessageResult, Executable) {
    let exec = sliced_executor();
    let canister = install(&exec, &wat::parse_str(WAT).unwrap(), &[]);
    let gate = Arc::new(SliceGate::new());
    let thread = {
        let (exec, gate) = (exec.clone(), gate.clone());
        std::thread::spawn(move || {
            let mut canister = canister;
            let result = exec.execute_sliced(&mut canister, call(method), &gate);
            (result, canister)
        })
    };
    let mut slices = 0;
    loop {
        slices += 1;
        let allowance = slices * SLICE;
        gate.allow(allowance);
        if gate.wait_for(allowance) {
            break;
        }
        let used = gate.used();
        // It stops at its allowance, not after it has run to its end.
        assert!(used >= allowance && used <= allowance + SLICE / 8, "{method}: slice {slices} stopped at {used}");
        assert!(slices <= LIMIT / SLICE, "{method}: still running past its limit");
    }
    let (result, canister) = thread.join().unwrap();
    (slices, result, canister)
}

#[test]
fn a_loop_without_calls_is_paused_at_every_slice() {
    let (slices, result, _) = run_sliced("spin");
    assert!(matches!(result.outcome, Err(ExecutionError::InstructionLimit { limit: LIMIT })), "{:?}", result.outcome);
    assert_eq!(slices, LIMIT / SLICE, "one slice per allowance, and the last one ends it");
}

#[test]
fn a_loop_of_calls_is_paused_at_every_slice() {
    let (slices, result, _) = run_sliced("calls");
    assert!(matches!(result.outcome, Err(ExecutionError::InstructionLimit { .. })), "{:?}", result.outcome);
    assert_eq!(slices, LIMIT / SLICE);
}

#[test]
fn a_sliced_message_computes_what_an_unsliced_one_does() {
    let (slices, sliced, sliced_canister) = run_sliced("sum");
    assert!(slices > 1, "the message must span slices to test anything");
    let exec = sliced_executor();
    let mut whole = install(&exec, &wat::parse_str(WAT).unwrap(), &[]);
    let unsliced = exec.execute(&mut whole, call("sum"));
    assert_eq!(sliced.reply(), unsliced.reply());
    assert_eq!(sliced.reply().map(|r| u64::from_le_bytes(r.try_into().unwrap())), Some((0..5_000_000u64).sum()));
    assert_eq!(sliced.stats.instructions, unsliced.stats.instructions);
    assert_eq!(heap_bytes(&sliced_canister, 0, 8), heap_bytes(&whole, 0, 8));
}

#[test]
fn a_cancelled_message_stops_while_paused() {
    let exec = sliced_executor();
    let mut canister = install(&exec, &wat::parse_str(WAT).unwrap(), &[]);
    let gate = Arc::new(SliceGate::new());
    let thread = {
        let gate = gate.clone();
        std::thread::spawn(move || exec.execute_sliced(&mut canister, call("spin"), &gate))
    };
    gate.allow(SLICE);
    assert!(!gate.wait_for(SLICE));
    gate.cancel();
    let result = thread.join().unwrap();
    assert!(result.outcome.is_err(), "a cancelled message has no result: {:?}", result.outcome);
}
