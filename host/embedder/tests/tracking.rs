//! Dirty-page tracking: exact, rolled back on failure, never persisted by
//! queries, and cheap where the design says it is.

use candid::Encode;
use embedder::*;
use proptest::prelude::*;
use testkit::*;

const REGION_PAGES: u64 = 64;

#[derive(Debug, Clone)]
enum Write {
    /// Fresh bytes at an offset in the test region.
    Bytes { offset: u64, data: Vec<u8> },
    /// Bytes the region already holds, written back unchanged.
    Same { offset: u64, len: usize },
}

fn write() -> impl Strategy<Value = Write> {
    let region = REGION_PAGES * 4096;
    prop_oneof![
        3 => (0..region, prop::collection::vec(any::<u8>(), 1..9000))
            .prop_map(move |(o, d)| Write::Bytes { offset: HEAP_START + o.min(region - d.len() as u64), data: d }),
        1 => (0..region, 1..9000usize)
            .prop_map(move |(o, len)| Write::Same { offset: HEAP_START + o.min(region - len as u64), len }),
    ]
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(24))]
    /// The reported dirty set equals the byte diff of the whole heap before
    /// and after, in every mode, with fresh and with reused instances.
    #[test]
    fn dirty_tracking_is_exact(writes in prop::collection::vec(write(), 1..8), mode in 0..3usize, reuse: bool) {
        let exec = executor(ALL_MODES[mode], reuse);
        let mut c = stress_canister(&exec, REGION_PAGES * 4096);
        for w in writes {
            let (offset, data) = match w {
                Write::Bytes { offset, data } => (offset, data),
                Write::Same { offset, len } => (offset, heap_bytes(&c, offset, len)),
            };
            let before = c.state().heap.clone();
            let r = update(&exec, &mut c, "write_bytes", Encode!(&offset, &data).unwrap());
            prop_assert!(r.outcome.is_ok(), "{:?}", r.outcome);
            let diff = diff_pages(&before, &c.state().heap, heap_page_count(&c));
            prop_assert_eq!(&r.dirty.heap, &diff);
            prop_assert_eq!(r.stats.dirty_pages, diff.len() as u64);
            prop_assert_eq!(heap_bytes(&c, offset, data.len()), data);
        }
    }
}

#[test]
fn a_trap_leaves_the_heap_exactly_as_before() {
    for mode in ALL_MODES {
        for reuse in [false, true] {
            let exec = executor(mode, reuse);
            let mut c = stress_canister(&exec, 1 << 20);
            update(&exec, &mut c, "write_pages", sweep(HEAP_START, 256, 4096, false, 7));
            let before = c.state().heap.clone();
            let pages_before = c.state().heap_pages;
            let r = update(&exec, &mut c, "write_then_trap", Encode!(&HEAP_START, &256u64, &4096u64, &9u8).unwrap());
            match &r.outcome {
                Err(ExecutionError::CalledTrap(m)) => assert!(m.contains("deliberate trap"), "{m}"),
                other => panic!("{mode:?}: expected a trap, got {other:?}"),
            }
            assert!(!r.committed && r.dirty.heap.is_empty());
            assert!(diff_pages(&before, &c.state().heap, heap_page_count(&c)).is_empty(), "{mode:?}");
            assert_eq!(c.state().heap_pages, pages_before);
            // The next message sees the committed bytes, not the trapped ones.
            let sum = reply::<u64>(&update(&exec, &mut c, "read_pages", read_sweep(HEAP_START, 256, 4096, false)));
            assert_eq!(sum, 7 * 256, "{mode:?} reuse {reuse}");
        }
    }
}

#[test]
fn a_trap_also_undoes_memory_growth_and_globals() {
    let wat = r#"(module
        (import "ic0" "msg_reply" (func $reply))
        (import "ic0" "msg_reply_data_append" (func $append (param i32 i32)))
        (import "ic0" "trap" (func $trap (param i32 i32)))
        (memory 1)
        (global $n (mut i64) (i64.const 0))
        (func (export "canister_update bump") (global.set $n (i64.add (global.get $n) (i64.const 1))) (call $reply))
        (func (export "canister_update bump_grow_trap")
            (global.set $n (i64.add (global.get $n) (i64.const 100)))
            (drop (memory.grow (i32.const 3)))
            (call $trap (i32.const 0) (i32.const 0)))
        (func (export "canister_query get")
            (i64.store (i32.const 0) (global.get $n))
            (i64.store (i32.const 8) (i64.extend_i32_u (memory.size)))
            (call $append (i32.const 0) (i32.const 16)) (call $reply)))"#;
    let wasm = wat::parse_str(wat).unwrap();
    for mode in ALL_MODES {
        let exec = executor(mode, true);
        let mut c = install(&exec, &wasm, &[]);
        update(&exec, &mut c, "bump", vec![]);
        update(&exec, &mut c, "bump", vec![]);
        let r = update(&exec, &mut c, "bump_grow_trap", vec![]);
        assert!(matches!(r.outcome, Err(ExecutionError::CalledTrap(_))), "{:?}", r.outcome);
        let got = query(&exec, &c, "get", vec![]);
        let bytes = got.reply().unwrap();
        assert_eq!(u64::from_le_bytes(bytes[..8].try_into().unwrap()), 2, "{mode:?}: global");
        assert_eq!(u64::from_le_bytes(bytes[8..].try_into().unwrap()), 1, "{mode:?}: memory size");
        assert_eq!(c.state().heap_pages, WasmPages(1));
    }
}

#[test]
fn queries_never_persist_whatever_they_write() {
    for mode in ALL_MODES {
        let exec = executor(mode, true);
        let mut c = stress_canister(&exec, 1 << 20);
        update(&exec, &mut c, "write_pages", sweep(HEAP_START, 16, 4096, false, 1));
        let before = c.state().heap.clone();
        let r = query(&exec, &c, "write_pages_query", sweep(HEAP_START, 256, 4096, false, 5));
        assert_eq!(reply::<u64>(&r), 256);
        assert!(!r.committed);
        let r = query(&exec, &c, "write_bytes_query", Encode!(&HEAP_START, &vec![9u8; 10_000]).unwrap());
        assert!(r.outcome.is_ok(), "{:?}", r.outcome);
        assert!(diff_pages(&before, &c.state().heap, heap_page_count(&c)).is_empty(), "{mode:?}");
        // The live update instance must not have picked up the query's writes.
        let sum = reply::<u64>(&update(&exec, &mut c, "read_pages", read_sweep(HEAP_START, 256, 4096, false)));
        assert_eq!(sum, 16, "{mode:?}");
    }
}

#[test]
fn data_segments_are_in_the_heap_from_the_start() {
    let wat = r#"(module
        (import "ic0" "msg_reply" (func $reply))
        (import "ic0" "msg_reply_data_append" (func $append (param i32 i32)))
        (memory 2)
        (data (i32.const 65530) "hello, world")
        (func (export "canister_query greet") (call $append (i32.const 65530) (i32.const 12)) (call $reply)))"#;
    for mode in ALL_MODES {
        let exec = executor(mode, true);
        let c = install(&exec, &wat::parse_str(wat).unwrap(), &[]);
        assert_eq!(query(&exec, &c, "greet", vec![]).reply().unwrap(), b"hello, world", "{mode:?}");
        assert_eq!(heap_bytes(&c, 65530, 12), b"hello, world");
    }
}

/// A module with a 1 GiB memory whose `write_one` stores one byte on a
/// page it has never touched, using no other memory at all.
const WRITE_ONE: &str = r#"(module
    (import "ic0" "msg_reply" (func $reply))
    (memory 16384)
    (global $at (mut i32) (i32.const 12345))
    (global $value (mut i32) (i32.const 1))
    (func (export "canister_update write_one")
        (i32.store8 (global.get $at) (global.get $value))
        (global.set $value (i32.add (global.get $value) (i32.const 1)))
        (global.set $at (i32.add (global.get $at) (i32.const 40960123)))
        (call $reply)))"#;

#[test]
fn an_update_writing_one_page_of_1_gib_costs_one_dirty_page_and_at_most_two_faults() {
    let wasm = wat::parse_str(WRITE_ONE).unwrap();
    for mode in ALL_MODES {
        for reuse in [false, true] {
            let exec = executor(mode, reuse);
            let mut c = install(&exec, &wasm, &[]);
            for i in 0..3 {
                let r = update(&exec, &mut c, "write_one", vec![]);
                assert!(r.outcome.is_ok(), "{:?}", r.outcome);
                assert_eq!(r.stats.dirty_pages, 1, "{mode:?} reuse {reuse} message {i}");
                assert!(r.stats.memory.faults <= 2, "{mode:?} reuse {reuse}: {} faults", r.stats.memory.faults);
            }
        }
    }
}

#[test]
fn a_forward_1_gib_write_sweep_with_prefetch_takes_few_faults() {
    const PAGES: u64 = 262_144;
    for mode in [TrackingMode::Prefetch, TrackingMode::ReadMapped] {
        let exec = executor(mode, false);
        let mut c = stress_canister(&exec, PAGES * 4096);
        let r = update(&exec, &mut c, "write_pages", sweep(HEAP_START, PAGES, 4096, false, 3));
        assert_eq!(reply::<u64>(&r), PAGES);
        assert!(r.stats.memory.faults < PAGES / 32, "{mode:?}: {} faults", r.stats.memory.faults);
        // Every written page is dirty; the stack and argument buffers add a few.
        assert!(r.stats.dirty_pages >= PAGES && r.stats.dirty_pages < PAGES + 16, "{}", r.stats.dirty_pages);
    }
}

#[test]
fn prefetch_doubles_in_both_directions() {
    const PAGES: u64 = 4096;
    let exec = executor(TrackingMode::Prefetch, false);
    let mut c = stress_canister(&exec, PAGES * 4096);
    for backward in [false, true] {
        let r = query(&exec, &c, "read_pages_query", read_sweep(HEAP_START, PAGES, 4096, backward));
        assert!(r.outcome.is_ok());
        // Reads widen over file pages for free, up to the 128-page cap.
        assert!(r.stats.memory.faults < PAGES / 128 + 16, "read backward={backward}: {}", r.stats.memory.faults);
        let r = update(&exec, &mut c, "write_pages", sweep(HEAP_START, PAGES, 4096, backward, 1 + backward as u8));
        assert!(r.outcome.is_ok());
        // Doubling up to 128 pages: about PAGES / 128 + log2(128) faults.
        assert!(r.stats.memory.faults < PAGES / 128 + 24, "write backward={backward}: {}", r.stats.memory.faults);
    }
}

#[test]
fn naive_mode_takes_a_fault_per_page_and_copies_every_page() {
    let exec = executor(TrackingMode::Naive, false);
    let mut c = stress_canister(&exec, 64 * 4096);
    update(&exec, &mut c, "write_pages", sweep(HEAP_START, 64, 4096, false, 1));
    let r = update(&exec, &mut c, "write_pages", sweep(HEAP_START, 64, 4096, false, 2));
    assert!(r.stats.memory.faults >= 128, "{}", r.stats.memory.faults);
    assert!(r.stats.memory.pages_copied >= 64, "{}", r.stats.memory.pages_copied);
}

#[test]
fn hot_pages_stay_writable_and_idle_ones_are_reprotected() {
    let exec = executor(TrackingMode::ReadMapped, true);
    let mut c = stress_canister(&exec, 64 * 4096);
    let page_a = HEAP_START;
    let page_b = HEAP_START + 10 * 4096;
    let write = |c: &mut Executable, at: u64, value: u8| {
        let r = update(&exec, c, "write_pages", sweep(at, 1, 4096, false, value));
        assert!(r.outcome.is_ok(), "{:?}", r.outcome);
        r
    };
    // Warm up: the canister's own pages (stack, argument buffer) and A.
    for v in 1..4 {
        write(&mut c, page_a, v);
    }
    // Steady state: writing the same hot page faults and protects nothing,
    // yet every change is still reported.
    for v in 4..8 {
        let r = write(&mut c, page_a, v);
        assert_eq!((r.stats.memory.faults, r.stats.memory.mprotects), (0, 0), "message {v}");
        assert!(r.dirty.heap.contains(&page_delta::PageIndex(page_a / 4096)));
        assert_eq!(heap_bytes(&c, page_a, 1), vec![v]);
    }
    // A writable page written with its own bytes is not dirty.
    let r = write(&mut c, page_a, 7);
    assert!(!r.dirty.heap.contains(&page_delta::PageIndex(page_a / 4096)));
    // Left alone long enough, A is protected again: the next write faults.
    for v in 0..20 {
        write(&mut c, page_b, v);
    }
    let r = write(&mut c, page_a, 99);
    assert_eq!(r.stats.memory.faults, 1);
    assert_eq!(heap_bytes(&c, page_a, 1), vec![99]);
}
