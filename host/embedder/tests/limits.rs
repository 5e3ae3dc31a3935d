//! What a canister can ask of the System API is bounded: bytes moved cost
//! instructions, ranges that overflow are refused without a host panic,
//! and printing is capped per message.

use embedder::system_api::MAX_PRINTED_BYTES;
use embedder::*;
use testkit::*;

/// `read(dst, offset, size)` reads stable memory into the heap; `loop_read`
/// does it `count` times; `print(size, count)` prints `size` bytes `count`
/// times. Stable memory and heap are 256 MiB each.
const WAT: &str = r#"(module
    (import "ic0" "msg_reply" (func $reply))
    (import "ic0" "msg_arg_data_copy" (func $arg (param i32 i32 i32)))
    (import "ic0" "stable64_grow" (func $grow (param i64) (result i64)))
    (import "ic0" "stable64_read" (func $read (param i64 i64 i64)))
    (import "ic0" "debug_print" (func $print (param i32 i32)))
    (memory 4096)
    (func $args (call $arg (i32.const 0) (i32.const 0) (i32.const 24)))
    (func (export "canister_init") (drop (call $grow (i64.const 4096))))
    (func (export "canister_update read")
        (call $args)
        (call $read (i64.load (i32.const 0)) (i64.load (i32.const 8)) (i64.load (i32.const 16)))
        (call $reply))
    (func (export "canister_update loop_read") (local $n i64)
        (call $args)
        (local.set $n (i64.load (i32.const 16)))
        (loop $l
            (call $read (i64.const 1024) (i64.const 0) (i64.const 1048576))
            (local.set $n (i64.sub (local.get $n) (i64.const 1)))
            (br_if $l (i64.ne (local.get $n) (i64.const 0))))
        (call $reply))
    (func (export "canister_update print") (local $n i64)
        (call $args)
        (local.set $n (i64.load (i32.const 8)))
        (loop $l
            (call $print (i32.const 4096) (i32.wrap_i64 (i64.load (i32.const 0))))
            (local.set $n (i64.sub (local.get $n) (i64.const 1)))
            (br_if $l (i64.ne (local.get $n) (i64.const 0))))
        (call $reply)))"#;

fn args(a: u64, b: u64, c: u64) -> Vec<u8> {
    [a, b, c].iter().flat_map(|v| v.to_le_bytes()).collect()
}

fn canister(config: ExecutionConfig) -> (Executor, Executable) {
    let exec = Executor::new(engine(), config);
    let c = install(&exec, &wat::parse_str(WAT).unwrap(), &[]);
    (exec, c)
}

#[test]
fn ranges_that_overflow_are_refused_without_a_host_panic() {
    let (exec, mut c) = canister(ExecutionConfig::default());
    for (dst, offset, size) in [(u64::MAX - 4, 0, 16), (0, u64::MAX - 4, 16), (0, 0, u64::MAX)] {
        let r = update(&exec, &mut c, "read", args(dst, offset, size));
        match &r.outcome {
            Err(ExecutionError::ContractViolation(m)) => assert!(m.contains("outside"), "{m}"),
            Err(ExecutionError::InstructionLimit { .. }) => assert_eq!(size, u64::MAX),
            other => panic!("read({dst}, {offset}, {size}): expected a refusal, got {other:?}"),
        }
    }
    assert!(update(&exec, &mut c, "read", args(0, 0, 16)).outcome.is_ok());
}

#[test]
fn bytes_moved_cost_instructions() {
    let (exec, mut c) = canister(ExecutionConfig::default());
    let r = update(&exec, &mut c, "read", args(0, 0, 16 << 20));
    assert!(r.outcome.is_ok(), "{:?}", r.outcome);
    assert!(r.stats.instructions >= 16 << 20, "16 MiB moved for {} instructions", r.stats.instructions);
    // A loop of reads ends at the instruction limit instead of running on.
    let (exec, mut c) = canister(ExecutionConfig { update_instruction_limit: 50 << 20, ..ExecutionConfig::default() });
    let r = update(&exec, &mut c, "loop_read", args(0, 0, 100));
    assert_eq!(r.outcome, Err(ExecutionError::InstructionLimit { limit: 50 << 20 }));
}

#[test]
fn printing_is_capped_per_print_and_per_message() {
    let (exec, mut c) = canister(ExecutionConfig::default());
    let r = update(&exec, &mut c, "print", args(40 << 10, 1, 0));
    assert_eq!(r.debug_prints.iter().map(Vec::len).collect::<Vec<_>>(), vec![32 << 10], "one print, cut to 32 KiB");
    let r = update(&exec, &mut c, "print", args(32 << 10, 64, 0));
    assert!(r.outcome.is_ok(), "{:?}", r.outcome);
    let printed: usize = r.debug_prints.iter().map(Vec::len).sum();
    assert_eq!(printed, MAX_PRINTED_BYTES, "2 MiB printed, the first 1 MiB kept");
}
