//! Isolation and limits: out-of-bounds accesses trap, loops end by fuel,
//! memory stops growing at its limit, bad modules are refused, and running
//! out of mappings fails the message, not the process. (That faults which
//! are not the tracker's still crash the process is tested in
//! `memory_tracker`.)

use candid::Encode;
use embedder::*;
use testkit::*;

const PROBE: &str = r#"(module
    (import "ic0" "msg_reply" (func $reply))
    (import "ic0" "msg_reply_data_append" (func $append (param i32 i32)))
    (import "ic0" "msg_reject" (func $reject (param i32 i32)))
    (import "ic0" "msg_arg_data_size" (func $arg_size (result i32)))
    (import "ic0" "msg_arg_data_copy" (func $arg_copy (param i32 i32 i32)))
    (import "ic0" "debug_print" (func $print (param i32 i32)))
    (import "ic0" "call_new" (func $call_new (param i32 i32 i32 i32 i32 i32 i32 i32)))
    (import "ic0" "some_future_import" (func $future (param i64) (result i64)))
    (memory 1 100)
    (data (i32.const 0) "no thanks")
    (func (export "canister_update oob") (drop (i32.load (i32.const 0x7ffffff0))) (call $reply))
    (func (export "canister_update loop") (loop $l (br $l)))
    (func (export "canister_update grow")
        (i32.store (i32.const 100) (memory.grow (i32.load8_u (i32.const 200))))
        (call $append (i32.const 100) (i32.const 4)) (call $reply))
    (func (export "canister_update set_grow_arg") (call $arg_copy (i32.const 200) (i32.const 0) (i32.const 1)) (call $reply))
    (func (export "canister_update reply_twice") (call $reply) (call $reply))
    (func (export "canister_update reject") (call $reject (i32.const 0) (i32.const 9)))
    (func (export "canister_update no_reply") (i32.store8 (i32.const 300) (i32.const 1)))
    (func (export "canister_update echo")
        (call $arg_copy (i32.const 1000) (i32.const 0) (call $arg_size))
        (call $print (i32.const 1000) (call $arg_size))
        (call $append (i32.const 1000) (call $arg_size)) (call $reply))
    (func (export "canister_update arg_oob") (call $arg_copy (i32.const 0) (i32.const 0) (i32.const 1000000)))
    (func (export "canister_update heap_oob") (call $append (i32.const 65000) (i32.const 1000)))
    (func (export "canister_update call_out")
        (call $call_new (i32.const 0) (i32.const 0) (i32.const 0) (i32.const 0) (i32.const 0) (i32.const 0) (i32.const 0) (i32.const 0)))
    (func (export "canister_update future") (drop (call $future (i64.const 1))))
    (func (export "canister_query peek") (call $append (i32.const 300) (i32.const 1)) (call $reply)))"#;

fn probe(exec: &Executor) -> Executable {
    install(exec, &wat::parse_str(PROBE).unwrap(), &[])
}

/// The message of the trap (of any kind) the message ended in.
fn trap_message(r: &MessageResult) -> String {
    match &r.outcome {
        Err(e) if e.trap_message().is_some() => e.trap_message().unwrap_or_default().to_string(),
        other => panic!("expected a trap, got {other:?}"),
    }
}

#[test]
fn out_of_bounds_accesses_trap_in_every_mode() {
    for mode in ALL_MODES {
        let exec = executor(mode, true);
        let mut c = probe(&exec);
        let r = update(&exec, &mut c, "oob", vec![]);
        assert!(trap_message(&r).contains("out of bounds"), "{mode:?}: {:?}", r.outcome);
        // And the canister carries on.
        assert!(update(&exec, &mut c, "reply_twice", vec![]).outcome.is_err());
        assert_eq!(update(&exec, &mut c, "echo", b"still here".to_vec()).reply().unwrap(), b"still here");
    }
}

#[test]
fn an_infinite_loop_ends_at_the_instruction_limit() {
    let config = ExecutionConfig { update_instruction_limit: 5_000_000, ..ExecutionConfig::default() };
    let exec = Executor::new(engine(), config);
    let mut c = probe(&exec);
    let r = update(&exec, &mut c, "loop", vec![]);
    assert_eq!(r.outcome, Err(ExecutionError::InstructionLimit { limit: 5_000_000 }));
    assert!(r.outcome.unwrap_err().to_string().contains("5000000"));
    assert_eq!(r.stats.instructions, 5_000_000);
    // A C canister's loop too, through its own code.
    let mut s = install(&exec, canisters::MEMORY_STRESS, &[]);
    let r = update(&exec, &mut s, "spin", Encode!(&u64::MAX).unwrap());
    assert_eq!(r.outcome, Err(ExecutionError::InstructionLimit { limit: 5_000_000 }));
}

#[test]
fn memory_grow_past_the_limit_returns_minus_one() {
    let config = ExecutionConfig { heap_limit_bytes: 4 * 65536, ..ExecutionConfig::default() };
    let exec = Executor::new(engine(), config);
    let mut c = probe(&exec);
    let grow = |exec: &Executor, c: &mut Executable, pages: u8| {
        update(exec, c, "set_grow_arg", vec![pages]);
        i32::from_le_bytes(update(exec, c, "grow", vec![]).reply().unwrap().try_into().unwrap())
    };
    assert_eq!(grow(&exec, &mut c, 3), 1); // 1 -> 4 pages: at the limit
    assert_eq!(grow(&exec, &mut c, 1), -1);
    assert_eq!(c.state().heap_pages, WasmPages(4));
    // The module's own maximum (100 pages) applies under a larger limit.
    let exec = executor(TrackingMode::ReadMapped, true);
    let mut c = probe(&exec);
    assert_eq!(grow(&exec, &mut c, 99), 1);
    assert_eq!(grow(&exec, &mut c, 1), -1);
}

#[test]
fn the_message_api_enforces_its_rules() {
    let exec = executor(TrackingMode::ReadMapped, true);
    let mut c = probe(&exec);
    let r = update(&exec, &mut c, "echo", b"hi there".to_vec());
    assert_eq!(r.reply().unwrap(), b"hi there");
    assert_eq!(r.debug_prints, vec![b"hi there".to_vec()]);
    assert!(trap_message(&update(&exec, &mut c, "reply_twice", vec![])).contains("at most once"));
    assert_eq!(update(&exec, &mut c, "reject", vec![]).outcome, Ok(Response::Reject("no thanks".into())));
    assert!(trap_message(&update(&exec, &mut c, "arg_oob", vec![1, 2, 3])).contains("exceeds the 3-byte source"));
    assert!(trap_message(&update(&exec, &mut c, "heap_oob", vec![])).contains("outside the memory"));
    // A call started but never performed is not made (and the method did
    // not reply).
    let r = update(&exec, &mut c, "call_out", vec![]);
    assert_eq!((r.outcome, r.calls.len()), (Err(ExecutionError::DidNotReply), 0));
    assert_eq!(
        trap_message(&update(&exec, &mut c, "future", vec![])),
        "unsupported System API: ic0.some_future_import"
    );
    // An update that does not reply is an error, but its changes stay.
    let r = update(&exec, &mut c, "no_reply", vec![]);
    assert_eq!(r.outcome, Err(ExecutionError::DidNotReply));
    assert!(r.committed);
    assert_eq!(query(&exec, &c, "peek", vec![]).reply().unwrap(), &[1]);
}

#[test]
fn methods_are_called_only_as_what_they_are() {
    let exec = executor(TrackingMode::ReadMapped, true);
    let mut c = probe(&exec);
    match query(&exec, &c, "echo", vec![]).outcome {
        Err(e @ ExecutionError::WrongKind { .. }) => assert!(e.to_string().contains("update"), "{e}"),
        other => panic!("{other:?}"),
    }
    // A query called as an update runs as a replicated query: it answers,
    // and nothing it does is kept.
    let r = update(&exec, &mut c, "peek", vec![]);
    assert_eq!((r.reply(), r.committed), (Some(&[0][..]), false));
    match update(&exec, &mut c, "nope", vec![]).outcome {
        Err(e @ ExecutionError::MethodNotFound { .. }) => {
            let text = e.to_string();
            assert!(text.contains("echo (update)") && text.contains("peek (query)"), "{text}");
        }
        other => panic!("{other:?}"),
    }
}

#[test]
fn bad_modules_are_refused_at_install() {
    let config = ExecutionConfig { max_module_bytes: 1000, ..ExecutionConfig::default() };
    let exec = Executor::new(engine(), config);
    assert!(matches!(exec.compile(canisters::KV), Err(ModuleError::TooLarge { limit: 1000, .. })));
    let exec = executor(TrackingMode::ReadMapped, true);
    let cases: [(&[u8], &str); 4] = [
        (b"not wasm at all", "magic"),
        (&wat::parse_str(r#"(module (import "env" "memory" (memory 1)))"#).unwrap(), "env.memory"),
        (&wat::parse_str(r#"(module (import "ic0" "msg_reply" (func (param i32))))"#).unwrap(), "System API defines"),
        (
            &wat::parse_str(r#"(module (func $f) (start $f) (export "__canister_host_start" (func $f)))"#).unwrap(),
            "reserved",
        ),
    ];
    for (wasm, expected) in cases {
        let err = exec.compile(wasm).unwrap_err().to_string();
        assert!(err.contains(expected), "{err}");
    }
}

#[test]
fn running_out_of_mappings_fails_the_message_not_the_process() {
    if child_role().as_deref() == Some("enomem") {
        enomem_child();
        println!("child-ok");
        return;
    }
    // Exhausting vm.max_map_count breaks every mmap in the process, so the
    // scenario runs in its own.
    let out = in_child("running_out_of_mappings_fails_the_message_not_the_process", "enomem");
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert!(out.status.success() && stdout.contains("child-ok"), "{stdout}\n{}", String::from_utf8_lossy(&out.stderr));
}

fn enomem_child() {
    let writes = writes_to_exhaust_mappings();
    let exec = executor(TrackingMode::ReadMapped, true);
    let mut c = stress_canister(&exec, writes * 2 * 4096);
    let before = c.state().heap.clone();
    let r = update(&exec, &mut c, "write_pages", sweep(HEAP_START, writes, 8192, false, 1));
    match &r.outcome {
        Err(e @ ExecutionError::MemoryProtection { errno, .. }) => {
            assert!(errno.contains("ENOMEM"), "{e}");
            assert!(e.to_string().contains("vm.max_map_count"), "{e}");
        }
        other => panic!("expected a memory protection failure, got {other:?}"),
    }
    assert!(!r.committed);
    assert!(diff_pages(&before, &c.state().heap, heap_page_count(&c)).is_empty());
    // The instance with the fragmented memory is gone; the next message works.
    let r = update(&exec, &mut c, "write_pages", sweep(HEAP_START, 100, 4096, false, 2));
    assert_eq!(reply::<u64>(&r), 100);
}

/// Modules whose initialisers run code at instantiation (reference-typed
/// globals, extended constants, element segments) install and run.
#[test]
fn modules_with_initialisers_that_run_code_can_run() {
    let exec = executor(TrackingMode::ReadMapped, true);
    let modules = [
        r#"(global funcref (ref.null func))"#,
        r#"(global $g i32 (i32.add (i32.const 40) (i32.const 2)))"#,
        r#"(table 1 funcref) (func $f) (elem func $f)"#,
        r#"(table 1 funcref) (func $f) (elem (table 0) (offset (i32.const 0)) funcref (ref.func $f))"#,
    ];
    for body in modules {
        let wat = format!(
            r#"(module (import "ic0" "msg_reply" (func $reply)) (memory 1) {body}
                (func (export "canister_update ping") (call $reply)))"#
        );
        let mut c = install(&exec, &wat::parse_str(&wat).unwrap(), &[]);
        let r = update(&exec, &mut c, "ping", vec![]);
        assert!(r.outcome.is_ok(), "{body}: {:?}", r.outcome);
        assert!(query(&exec, &c, "ping", vec![]).outcome.is_err(), "{body}: an update is not a query");
    }
}
