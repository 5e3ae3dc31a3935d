//! A corpus of hostile modules and calls, run through one host. Each must
//! end in a typed refusal or trap (an IC error code, never a host failure
//! or a panic), and after each an ordinary canister must still be served.
//! The process's peak memory must stay bounded.
//!
//! One test in this binary, so the peak memory measured is the corpus's.

use candid::Decode;
use canister_host::*;
use embedder::system_api::spec::IMPORTS;
use wasmparser::ValType;

const OWNER: Principal = Principal::from_slice(&[0xaa; 29]);
const USER: Principal = Principal::anonymous();
const MIB: u64 = 1 << 20;

fn config() -> HostConfig {
    HostConfig {
        workers: 2,
        checkpoint_interval: 1_000_000,
        time: TimeSource::Deterministic { start: 1_000_000_000, step: 1_000 },
        max_round_bytes: 16 << 20,
        execution: ExecutionConfig {
            update_instruction_limit: 5_000_000,
            query_instruction_limit: 5_000_000,
            install_instruction_limit: 20_000_000,
            slice_instructions: 1_000_000,
            heap_limit_bytes: 256 * MIB,
            stable_limit_bytes: 256 * MIB,
            max_module_bytes: 4 << 20,
            ..ExecutionConfig::default()
        },
        ..HostConfig::default()
    }
}

/// A module importing the System API functions the cases use, with `body`
/// spliced in.
fn module(body: &str) -> Vec<u8> {
    wat::parse_str(format!(
        r#"(module
        (import "ic0" "msg_reply" (func $reply))
        (import "ic0" "msg_reply_data_append" (func $append (param i32 i32)))
        (import "ic0" "msg_reject" (func $reject (param i32 i32)))
        (import "ic0" "stable64_grow" (func $sgrow (param i64) (result i64)))
        (import "ic0" "stable64_write" (func $swrite (param i64 i64 i64)))
        (import "ic0" "debug_print" (func $print (param i32 i32)))
        (import "ic0" "global_timer_set" (func $timer (param i64) (result i64)))
        {body})"#
    ))
    .unwrap_or_else(|e| panic!("{body}: {e}"))
}

/// What a case expects.
#[derive(Clone, Debug)]
enum Expect {
    /// The install is refused with this code.
    Refused(ErrorCode),
    /// The install is refused, with any code (garbage, disabled features).
    RefusedAny,
    /// Installed; calling `method` (an update, or a query if `query`) fails
    /// with this code.
    Fails { method: &'static str, query: bool, code: ErrorCode },
    /// Installed; calling `method` ends in some canister error or a reply.
    Typed { method: String, query: bool },
    /// Installed, then an upgrade to `to` is refused with this code.
    UpgradeFails { to: Vec<u8>, code: ErrorCode },
    /// Installed, and its own calls still complete (a heartbeat or timer
    /// that runs to its limit does not shut it out).
    StillServes,
    /// Installed or refused, whichever; any call is typed.
    Anything,
}

struct Case {
    name: String,
    wasm: Vec<u8>,
    expect: Expect,
}

fn case(name: impl Into<String>, wasm: Vec<u8>, expect: Expect) -> Case {
    Case { name: name.into(), wasm, expect }
}

const LOOP: &str = "(loop $l (br $l))";

fn loops() -> Vec<Case> {
    let fails = |method, query| Expect::Fails { method, query, code: ErrorCode::CanisterInstructionLimitExceeded };
    let ping = r#"(func (export "canister_update ping") (call $reply))"#;
    vec![
        case(
            "loop in canister_init",
            module(&format!(r#"(memory 1) (func (export "canister_init") {LOOP})"#)),
            Expect::Refused(ErrorCode::CanisterInstructionLimitExceeded),
        ),
        case(
            "loop in canister_pre_upgrade",
            module(&format!(r#"(memory 1) (func (export "canister_pre_upgrade") {LOOP}) {ping}"#)),
            Expect::UpgradeFails {
                to: module(&format!("(memory 1) {ping}")),
                code: ErrorCode::CanisterInstructionLimitExceeded,
            },
        ),
        case(
            "loop in canister_post_upgrade",
            module(&format!("(memory 1) {ping}")),
            Expect::UpgradeFails {
                to: module(&format!(r#"(memory 1) (func (export "canister_post_upgrade") {LOOP})"#)),
                code: ErrorCode::CanisterInstructionLimitExceeded,
            },
        ),
        case(
            "loop in an update",
            module(&format!(r#"(memory 1) (func (export "canister_update m") {LOOP})"#)),
            fails("m", false),
        ),
        case(
            "loop in a query",
            module(&format!(r#"(memory 1) (func (export "canister_query m") {LOOP})"#)),
            fails("m", true),
        ),
        case(
            "loop in a composite query",
            module(&format!(r#"(memory 1) (func (export "canister_composite_query m") {LOOP})"#)),
            fails("m", true),
        ),
        case(
            "loop in canister_inspect_message",
            module(&format!(r#"(memory 1) (func (export "canister_inspect_message") {LOOP}) {ping}"#)),
            Expect::Fails { method: "ping", query: false, code: ErrorCode::CanisterRejectedMessage },
        ),
        case(
            "loop in canister_heartbeat",
            module(&format!(r#"(memory 1) (func (export "canister_heartbeat") {LOOP}) {ping}"#)),
            Expect::StillServes,
        ),
        case(
            "loop in canister_global_timer",
            module(&format!(
                r#"(memory 1) (func (export "canister_init") (drop (call $timer (i64.const 1))))
                (func (export "canister_global_timer") (drop (call $timer (i64.const 1))) {LOOP}) {ping}"#
            )),
            Expect::StillServes,
        ),
    ]
}

fn bombs() -> Vec<Case> {
    let typed = |method: &str| Expect::Typed { method: method.into(), query: false };
    vec![
        case(
            "heap bomb: grow to the limit and touch every wasm page",
            module(
                r#"(memory 1) (func (export "canister_update m") (local $p i32)
                (block $full (loop $l (br_if $full (i32.eq (memory.grow (i32.const 256)) (i32.const -1))) (br $l)))
                (loop $w (i32.store8 (local.get $p) (i32.const 1))
                    (local.set $p (i32.add (local.get $p) (i32.const 65536)))
                    (br_if $w (i32.lt_u (local.get $p) (i32.mul (memory.size) (i32.const 65536)))))
                (call $reply))"#,
            ),
            typed("m"),
        ),
        case(
            "stable bomb: grow past the limit, then write it all",
            module(
                r#"(memory 1) (func (export "canister_update m")
                (drop (call $sgrow (i64.const 1000000000)))
                (drop (call $sgrow (i64.const 4096)))
                (call $swrite (i64.const 0) (i64.const 0) (i64.const 268435456)) (call $reply))"#,
            ),
            Expect::Fails { method: "m", query: false, code: ErrorCode::CanisterInstructionLimitExceeded },
        ),
        case(
            "a memory that starts over the heap limit",
            module("(memory 8192)"),
            Expect::Refused(ErrorCode::CanisterInvalidWasm),
        ),
        case(
            "a module over the size limit",
            module(&format!(r#"(memory 100) (data (i32.const 0) "{}")"#, "x".repeat(5 << 20))),
            Expect::Refused(ErrorCode::CanisterInvalidWasm),
        ),
        case(
            "print bomb",
            module(
                r#"(memory 1) (func (export "canister_update m") (local $n i32)
                (loop $l (call $print (i32.const 0) (i32.const 32768))
                    (local.set $n (i32.add (local.get $n) (i32.const 1)))
                    (br_if $l (i32.lt_u (local.get $n) (i32.const 100000))))
                (call $reply))"#,
            ),
            typed("m"),
        ),
    ]
}

fn recursion() -> Vec<Case> {
    let down = "(func $down (param i64) (result i64) (if (result i64) (i64.eqz (local.get 0)) (then (i64.const 0)) \
                (else (i64.add (i64.const 1) (call $down (i64.sub (local.get 0) (i64.const 1)))))))";
    let deep = "(drop (call $down (i64.const 100000000)))";
    vec![
        case(
            "deep recursion in an update",
            module(&format!(r#"(memory 1) {down} (func (export "canister_update m") {deep} (call $reply))"#)),
            Expect::Fails { method: "m", query: false, code: ErrorCode::CanisterTrapped },
        ),
        case(
            "deep recursion in a query",
            module(&format!(r#"(memory 1) {down} (func (export "canister_query m") {deep} (call $reply))"#)),
            Expect::Fails { method: "m", query: true, code: ErrorCode::CanisterTrapped },
        ),
        case(
            "deep recursion in canister_init",
            module(&format!(r#"(memory 1) {down} (func (export "canister_init") {deep})"#)),
            Expect::Refused(ErrorCode::CanisterTrapped),
        ),
    ]
}

fn oversized_sections() -> Vec<Case> {
    let refused = Expect::Refused(ErrorCode::CanisterInvalidWasm);
    let wat = |src: String| wat::parse_str(src).unwrap();
    vec![
        case("a table of ten million elements", wat("(module (table 10000000 funcref))".into()), refused.clone()),
        case("two tables", wat("(module (table 1 funcref) (table 1 funcref))".into()), refused.clone()),
        case("sixty thousand functions", wat(format!("(module {})", "(func)".repeat(60_000))), refused.clone()),
        case(
            "two thousand globals",
            wat(format!("(module {})", "(global i32 (i32.const 0))".repeat(2_000))),
            refused.clone(),
        ),
        case(
            "a function of over a million instructions",
            wat(format!("(module (func {}))", "(nop)".repeat(1_000_001))),
            refused.clone(),
        ),
        case(
            "over a thousand exported methods",
            wat(format!(
                "(module {})",
                (0..1001).map(|i| format!("(func (export \"canister_query m{i}\"))")).collect::<String>()
            )),
            refused.clone(),
        ),
        case(
            "twenty icp: custom sections",
            wat(format!(
                "(module {})",
                (0..20).map(|i| format!("(@custom \"icp:public s{i}\" \"x\")")).collect::<String>()
            )),
            refused.clone(),
        ),
        case("a mutable funcref global", wat("(module (global (mut funcref) (ref.null func)))".into()), refused),
    ]
}

fn bad_imports() -> Vec<Case> {
    let wat = |src: &str| wat::parse_str(src).unwrap();
    let refused = Expect::Refused(ErrorCode::CanisterInvalidWasm);
    vec![
        case("imports env.memory", wat(r#"(module (import "env" "memory" (memory 1)))"#), refused.clone()),
        case("imports a global", wat(r#"(module (import "ic0" "g" (global i32)))"#), refused.clone()),
        case("imports a table", wat(r#"(module (import "ic0" "t" (table 1 funcref)))"#), refused.clone()),
        case(
            "imports from WASI",
            wat(r#"(module (import "wasi_snapshot_preview1" "fd_write" (func)))"#),
            refused.clone(),
        ),
        case(
            "imports ic0.msg_reply with the wrong type",
            wat(r#"(module (import "ic0" "msg_reply" (func (param i32))))"#),
            refused,
        ),
        case(
            "calls an ic0 function the spec does not have",
            wat(
                r#"(module (import "ic0" "no_such_thing" (func)) (memory 1) (func (export "canister_update m") (call 0)))"#,
            ),
            Expect::Fails { method: "m", query: false, code: ErrorCode::CanisterContractViolation },
        ),
    ]
}

fn reply_bombs() -> Vec<Case> {
    let violation = |method, query| Expect::Fails { method, query, code: ErrorCode::CanisterContractViolation };
    vec![
        case(
            "a reply over 2 MiB",
            module(
                r#"(memory 64) (func (export "canister_update m") (call $append (i32.const 0) (i32.const 2097153)) (call $reply))"#,
            ),
            violation("m", false),
        ),
        case(
            "a query reply over 3 MiB",
            module(
                r#"(memory 64) (func (export "canister_query m") (call $append (i32.const 0) (i32.const 3145729)) (call $reply))"#,
            ),
            violation("m", true),
        ),
        case(
            "replies twice",
            module(r#"(memory 1) (func (export "canister_update m") (call $reply) (call $reply))"#),
            violation("m", false),
        ),
        case(
            "rejects with invalid UTF-8",
            module(
                r#"(memory 1) (data (i32.const 0) "\ff\fe") (func (export "canister_update m") (call $reject (i32.const 0) (i32.const 2)))"#,
            ),
            violation("m", false),
        ),
        case(
            "replies, then rejects",
            module(
                r#"(memory 1) (func (export "canister_update m") (call $reply) (call $reject (i32.const 0) (i32.const 0)))"#,
            ),
            violation("m", false),
        ),
        case(
            "a reject message over the limit",
            module(
                r#"(memory 64) (func (export "canister_update m") (call $reject (i32.const 0) (i32.const 3000000)))"#,
            ),
            violation("m", false),
        ),
    ]
}

/// Every System API import that takes arguments, called with each argument
/// far out of range, from an update and from a query.
fn out_of_bounds_arguments() -> Vec<Case> {
    let mut cases = Vec::new();
    for import in IMPORTS.iter().filter(|i| !i.params.is_empty()) {
        let wat_type = |t: &ValType| if *t == ValType::I64 { "i64" } else { "i32" };
        let params: Vec<&str> = import.params.iter().map(wat_type).collect();
        let results: Vec<&str> = import.results.iter().map(wat_type).collect();
        let args: String = import
            .params
            .iter()
            .map(|t| if *t == ValType::I64 { "(i64.const -16)" } else { "(i32.const -16)" })
            .collect();
        let drops = "(drop)".repeat(results.len());
        for (kind, query) in [("update", false), ("query", true)] {
            let wasm = wat::parse_str(format!(
                r#"(module
                (import "ic0" "{name}" (func $f (param {params}) {result}))
                (import "ic0" "msg_reply" (func $reply))
                (memory 1)
                (func (export "canister_{kind} m") (call $f {args}) {drops} (call $reply)))"#,
                name = import.name,
                params = params.join(" "),
                result = if results.is_empty() { String::new() } else { format!("(result {})", results.join(" ")) },
            ))
            .unwrap();
            cases.push(case(
                format!("ic0.{} with out-of-range arguments, in a {kind}", import.name),
                wasm,
                Expect::Typed { method: "m".into(), query },
            ));
        }
    }
    cases
}

fn not_canisters() -> Vec<Case> {
    let wat = |src: &str| wat::parse_str(src).unwrap();
    let refused = Expect::Refused(ErrorCode::CanisterInvalidWasm);
    vec![
        case("a component", wat("(component)"), refused.clone()),
        case(
            "a method with parameters",
            wat(r#"(module (func (export "canister_update m") (param i32)))"#),
            refused.clone(),
        ),
        case(
            "a method exported twice",
            wat(r#"(module (func (export "canister_update m")) (func (export "canister_query m")))"#),
            refused.clone(),
        ),
        case(
            "a wasm64 load just past the memory",
            wat(r#"(module (memory i64 1) (func (export "canister_update m") (drop (i64.load (i64.const 65536)))))"#),
            Expect::Fails { method: "m", query: false, code: ErrorCode::CanisterTrapped },
        ),
        case(
            "a wasm64 load far beyond any reservation",
            wat(r#"(module (memory i64 1)
                (func (export "canister_update m") (drop (i64.load (i64.const 0x7fff00000000)))))"#),
            Expect::Fails { method: "m", query: false, code: ErrorCode::CanisterTrapped },
        ),
        // The grow is refused (-1), and the canister traps on seeing it.
        case(
            "a wasm64 memory.grow past the wasm64 heap limit",
            wat(r#"(module (import "ic0" "msg_reply" (func $r)) (memory i64 1)
                (func (export "canister_update m")
                    (if (i64.eq (memory.grow (i64.const 0x20000)) (i64.const -1)) (then unreachable))
                    (call $r)))"#),
            Expect::Fails { method: "m", query: false, code: ErrorCode::CanisterTrapped },
        ),
        case("an unknown canister_ export", wat(r#"(module (func (export "canister_frobnicate")))"#), refused),
        case(
            "no methods at all",
            wat("(module (memory 1))"),
            Expect::Fails { method: "m", query: false, code: ErrorCode::CanisterMethodNotFound },
        ),
        case(
            "an update method called as a query",
            wat(r#"(module (import "ic0" "msg_reply" (func $r)) (func (export "canister_update m") (call $r)))"#),
            Expect::Fails { method: "m", query: true, code: ErrorCode::CanisterMethodNotFound },
        ),
    ]
}

/// Modules using WebAssembly proposals canisters may not use.
fn disabled_proposals() -> Vec<Case> {
    let sources = [
        ("threads", "(module (memory 1 1 shared))"),
        ("atomics", "(module (memory 1 1 shared) (func (drop (i32.atomic.load (i32.const 0)))))"),
        ("multiple memories", "(module (memory 1) (memory 1))"),
        ("tail calls", "(module (func $f (return_call $f)))"),
        ("exceptions", "(module (tag $e) (func (throw $e)))"),
        ("garbage collection", "(module (type (struct (field i32))))"),
        ("function references", "(module (type $t (func)) (func (param (ref $t)) (call_ref $t (local.get 0))))"),
        (
            "relaxed SIMD",
            "(module (func (result v128) v128.const i64x2 0 0 v128.const i64x2 0 0 i8x16.relaxed_swizzle))",
        ),
        ("externref", "(module (func (param externref)))"),
        ("custom page sizes", "(module (memory 1 (pagesize 1)))"),
        (
            "wide arithmetic",
            "(module (func (param i64 i64 i64 i64) (result i64 i64) (i64.add128 (local.get 0) (local.get 1) (local.get 2) (local.get 3))))",
        ),
    ];
    sources
        .into_iter()
        .map(|(name, src)| {
            let wasm = wat::parse_str(src).unwrap_or_else(|e| panic!("{name}: {e}"));
            case(format!("uses {name}"), wasm, Expect::RefusedAny)
        })
        .collect()
}

/// Random bytes, truncations and bit flips of a valid canister.
fn garbage() -> Vec<Case> {
    let mut seed = 0x2545_f491_4f6c_dd1du64;
    let mut next = move || {
        seed ^= seed << 13;
        seed ^= seed >> 7;
        seed ^= seed << 17;
        seed
    };
    let valid = canisters::COUNTER;
    let mut cases = Vec::new();
    for i in 0..20 {
        let len = (next() % 4096) as usize;
        let mut bytes: Vec<u8> = (0..len).map(|_| next() as u8).collect();
        if i % 2 == 0 && bytes.len() >= 8 {
            bytes[..8].copy_from_slice(b"\0asm\x01\0\0\0");
        }
        cases.push(case(format!("{len} random bytes"), bytes, Expect::RefusedAny));
    }
    for _ in 0..20 {
        let cut = 8 + (next() as usize % (valid.len() - 8));
        cases.push(case(format!("the counter cut at byte {cut}"), valid[..cut].to_vec(), Expect::RefusedAny));
    }
    for _ in 0..20 {
        let mut bytes = valid.to_vec();
        let at = next() as usize % bytes.len();
        bytes[at] ^= 1 << (next() % 8);
        cases.push(case(format!("the counter with byte {at} flipped"), bytes, Expect::Anything));
    }
    cases
}

fn peak_rss_bytes() -> u64 {
    let status = std::fs::read_to_string("/proc/self/status").unwrap();
    let line = status.lines().find(|l| l.starts_with("VmHWM:")).unwrap();
    line.split_whitespace().nth(1).unwrap().parse::<u64>().unwrap() * 1024
}

/// What a failed install or call reports: its error code, if it has one.
fn install_code(host: &Host, id: Principal, mode: InstallMode, wasm: Vec<u8>) -> Result<(), Option<ErrorCode>> {
    host.install_code(OWNER, id, mode, wasm, vec![]).map_err(|e| match e {
        HostError::Rejected { code, .. } => Some(code),
        other => panic!("an install failed without a code: {other}"),
    })
}

fn call(host: &Host, id: Principal, method: &str, query: bool) -> Result<Vec<u8>, CallError> {
    if query { host.query_call(id, USER, method, vec![]) } else { host.update_call(id, USER, method, vec![]) }
}

/// A call's failure must be the canister's, with a code (or its reject).
fn assert_typed(name: &str, result: &Result<Vec<u8>, CallError>) {
    match result {
        Ok(_) | Err(CallError::Rejected(_)) | Err(CallError::Failed { .. }) => {}
        Err(other) => panic!("{name}: not a canister outcome: {other}"),
    }
}

fn run(host: &Host, counter: Principal, served: &mut u64, case: Case) {
    let name = case.name.as_str();
    let id = host.create_canister(OWNER, vec![], None).unwrap();
    let installed = install_code(host, id, InstallMode::Install, case.wasm);
    match case.expect {
        Expect::Refused(code) => assert_eq!(installed, Err(Some(code)), "{name}"),
        Expect::RefusedAny => assert!(installed.is_err(), "{name}: installed"),
        Expect::Fails { method, query, code } => {
            assert_eq!(installed, Ok(()), "{name}");
            let result = call(host, id, method, query);
            assert_eq!(result.as_ref().map_err(CallError::error_code), Err(Some(code)), "{name}: {result:?}");
        }
        Expect::Typed { method, query } => {
            assert_eq!(installed, Ok(()), "{name}");
            assert_typed(name, &call(host, id, &method, query));
        }
        Expect::UpgradeFails { to, code } => {
            assert_eq!(installed, Ok(()), "{name}");
            assert_eq!(install_code(host, id, InstallMode::UPGRADE, to), Err(Some(code)), "{name}");
            assert_eq!(call(host, id, "ping", false), Ok(vec![]), "{name}: the canister was left broken");
        }
        Expect::StillServes => {
            assert_eq!(installed, Ok(()), "{name}");
            for _ in 0..3 {
                assert_eq!(call(host, id, "ping", false), Ok(vec![]), "{name}");
            }
        }
        Expect::Anything => {
            if installed.is_ok() {
                assert_typed(name, &call(host, id, "inc", false));
            }
        }
    }
    // An ordinary canister is still served.
    *served += 1;
    let reply = host.update_call(counter, USER, "inc", vec![]).unwrap_or_else(|e| panic!("after {name}: {e}"));
    assert_eq!(Decode!(&reply, u64).unwrap(), *served, "after {name}");
}

#[test]
fn a_hostile_corpus_gets_typed_errors_and_the_host_keeps_serving() {
    let tmp = tempfile::tempdir().unwrap();
    let host = Host::open(tmp.path(), config()).unwrap();
    let counter = host.create_canister(OWNER, vec![], None).unwrap();
    host.install_code(OWNER, counter, InstallMode::Install, canisters::COUNTER.to_vec(), vec![]).unwrap();
    let corpus: Vec<Case> = [
        loops(),
        bombs(),
        recursion(),
        oversized_sections(),
        bad_imports(),
        reply_bombs(),
        out_of_bounds_arguments(),
        not_canisters(),
        disabled_proposals(),
        garbage(),
    ]
    .into_iter()
    .flatten()
    .collect();
    assert!(corpus.len() >= 150, "only {} cases", corpus.len());
    let count = corpus.len();
    let mut served = 0;
    for case in corpus {
        run(&host, counter, &mut served, case);
    }
    let peak = peak_rss_bytes();
    println!("{count} hostile cases; peak RSS {} MiB", peak / MIB);
    assert!(peak < 512 * MIB, "peak RSS {} MiB", peak / MIB);
}
