//! Queries run on instances their thread keeps between queries: whatever a
//! query writes (heap pages, globals) must be gone for the next one, which
//! sees the committed state and nothing else, including after updates,
//! traps and memory growth.

use candid::Encode;
use embedder::*;
use testkit::*;

/// `look` replies with the global and the bytes at 500 and 70000 (two
/// pages apart), then scribbles over all three; `look_then_trap` scribbles
/// and traps; `look_then_grow` scribbles and grows the memory; `set`
/// (an update) commits a byte at 500.
const SCRIBBLER: &str = r#"(module
    (import "ic0" "msg_reply" (func $reply))
    (import "ic0" "msg_reply_data_append" (func $append (param i32 i32)))
    (import "ic0" "trap" (func $trap (param i32 i32)))
    (memory 2 10)
    (global $g (mut i32) (i32.const 0))
    (func $scribble
        (global.set $g (i32.add (global.get $g) (i32.const 1)))
        (i32.store8 (i32.const 500) (i32.const 0x55))
        (i32.store8 (i32.const 70000) (i32.const 0x66)))
    (func $look
        (i32.store (i32.const 1000) (global.get $g))
        (i32.store8 (i32.const 1004) (i32.load8_u (i32.const 500)))
        (i32.store8 (i32.const 1005) (i32.load8_u (i32.const 70000)))
        (call $append (i32.const 1000) (i32.const 6)))
    (func (export "canister_query look") (call $look) (call $scribble) (call $reply))
    (func (export "canister_query look_then_trap") (call $look) (call $scribble) (call $trap (i32.const 0) (i32.const 0)))
    (func (export "canister_query look_then_grow") (call $look) (call $scribble) (drop (memory.grow (i32.const 1))) (call $reply))
    (func (export "canister_update set") (i32.store8 (i32.const 500) (i32.const 7)) (call $reply)))"#;

/// What `look` saw: (global, byte at 500, byte at 70000).
fn look(exec: &Executor, c: &Executable, method: &str) -> (MessageResult, [u8; 6]) {
    let r = query(exec, c, method, vec![]);
    let seen = match &r.outcome {
        Ok(Response::Reply(bytes)) => bytes.as_slice().try_into().expect("six bytes"),
        other => panic!("{method}: {other:?}"),
    };
    (r, seen)
}

const CLEAN: [u8; 6] = [0, 0, 0, 0, 0, 0];

#[test]
fn a_query_never_sees_what_an_earlier_query_wrote() {
    for mode in ALL_MODES {
        let exec = executor(mode, true);
        let mut c = install(&exec, &wat::parse_str(SCRIBBLER).unwrap(), &[]);
        for _ in 0..3 {
            assert_eq!(look(&exec, &c, "look").1, CLEAN, "{mode:?}");
        }
        // A committed change shows; the queries' writes still do not.
        assert!(update(&exec, &mut c, "set", vec![]).outcome.is_ok());
        for _ in 0..2 {
            assert_eq!(look(&exec, &c, "look").1, [0, 0, 0, 0, 7, 0], "{mode:?}");
        }
        // A query that trapped, or grew the memory, leaves nothing either.
        let trapped = query(&exec, &c, "look_then_trap", vec![]);
        assert!(trapped.outcome.is_err(), "{mode:?}");
        assert_eq!(look(&exec, &c, "look").1, [0, 0, 0, 0, 7, 0], "{mode:?}");
        assert_eq!(look(&exec, &c, "look_then_grow").1, [0, 0, 0, 0, 7, 0], "{mode:?}");
        assert_eq!(look(&exec, &c, "look").1, [0, 0, 0, 0, 7, 0], "{mode:?}");
        // An older state, queried after a newer one, is still itself.
        let older = install(&exec, &wat::parse_str(SCRIBBLER).unwrap(), &[]);
        assert_eq!(look(&exec, &older, "look").1, CLEAN, "{mode:?}");
        assert_eq!(look(&exec, &c, "look").1, [0, 0, 0, 0, 7, 0], "{mode:?}");
    }
}

#[test]
fn a_kept_instance_is_used_again() {
    // The evidence: the second query takes no write faults, because the
    // pages the first one wrote are still mapped writable (and were rolled
    // back), where a fresh instance faults on its first write.
    let exec = executor(memory_tracker::TrackingMode::ReadMapped, true);
    let c = install(&exec, &wat::parse_str(SCRIBBLER).unwrap(), &[]);
    let (first, _) = look(&exec, &c, "look");
    let (second, seen) = look(&exec, &c, "look");
    assert_eq!(seen, CLEAN);
    assert!(first.stats.memory.faults > 0);
    assert_eq!(second.stats.memory.faults, 0, "the second query ran on a fresh instance");
    // Without reuse, queries answer the same.
    let fresh = executor(memory_tracker::TrackingMode::ReadMapped, false);
    let c = install(&fresh, &wat::parse_str(SCRIBBLER).unwrap(), &[]);
    assert_eq!(look(&fresh, &c, "look").1, CLEAN);
    assert_eq!(look(&fresh, &c, "look").1, CLEAN);
}

#[test]
fn stable_memory_and_arguments_are_per_query() {
    // The memory-stress canister writes its argument into the heap in a
    // query; the next query reads the committed bytes.
    let exec = executor(memory_tracker::TrackingMode::ReadMapped, true);
    let c = stress_canister(&exec, 64 * 1024);
    let at = HEAP_START + 4096;
    let wrote = query(&exec, &c, "write_bytes_query", Encode!(&at, &vec![9u8; 10]).unwrap());
    assert!(wrote.outcome.is_ok(), "{:?}", wrote.outcome);
    let read: Vec<u8> = reply(&query(&exec, &c, "read_bytes", Encode!(&at, &10u64).unwrap()));
    assert_eq!(read, vec![0u8; 10]);
}

/// Every message calls table entry 0 and replies what it returns (1 as
/// installed), then points entry 0 at a function returning 2.
const TABLE_SWAPPER: &str = r#"(module
    (import "ic0" "msg_reply" (func $reply))
    (import "ic0" "msg_reply_data_append" (func $append (param i32 i32)))
    (memory 1)
    (type $answer (func (result i32)))
    (table 2 funcref)
    (elem (i32.const 0) $one $two)
    (func $one (result i32) (i32.const 1))
    (func $two (result i32) (i32.const 2))
    (func $answer_then_swap
        (i32.store8 (i32.const 0) (call_indirect (type $answer) (i32.const 0)))
        (table.set (i32.const 0) (ref.func $two))
        (call $append (i32.const 0) (i32.const 1)))
    (func (export "canister_update swap") (call $answer_then_swap) (call $reply))
    (func (export "canister_query peek") (call $answer_then_swap) (call $reply)))"#;

#[test]
fn a_table_a_message_changed_is_whole_again_for_the_next() {
    // The IC starts every message on a fresh instance; a kept instance
    // would carry the swapped entry into the next message, and replaying
    // the history on fresh instances would then disagree.
    for mode in ALL_MODES {
        let exec = executor(mode, true);
        let mut c = install(&exec, &wat::parse_str(TABLE_SWAPPER).unwrap(), &[]);
        for _ in 0..3 {
            let r = update(&exec, &mut c, "swap", vec![]);
            assert_eq!(r.outcome, Ok(Response::Reply(vec![1])), "{mode:?}");
            let r = query(&exec, &c, "peek", vec![]);
            assert_eq!(r.outcome, Ok(Response::Reply(vec![1])), "{mode:?}");
        }
    }
}
