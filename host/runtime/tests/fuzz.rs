//! Differential fuzzing with `wasm-smith`: random canister modules (random
//! code behind the canister entry points, calling the System API with
//! random arguments) are installed and called on two fresh hosts, one with
//! one worker and one with two. Nothing may panic or hang, every outcome
//! must be typed, and both hosts must give every call the same outcome.
//!
//! Each module is first installed and called one operation at a time, so
//! every round is the same on both hosts and so must the state digest be.
//! Then every canister is called at once, so rounds hold many canisters;
//! which messages share a round now depends on when they arrive, and round
//! times (which the canister log records) follow from that, so the states
//! are compared by replaying each host's log with the other worker count,
//! which must reproduce every round's digest. For the same reason the
//! generated code cannot call `ic0.time`, whose value could reach a reply.
//!
//! 300 modules run in CI; `cargo test --test fuzz -- --ignored` runs
//! 10,000.

use arbitrary::Unstructured;
use canister_host::*;
use wasm_smith::{Config, Module};

const OWNER: Principal = Principal::from_slice(&[0xaa; 29]);
const USER: Principal = Principal::anonymous();
const METHODS: [&str; 3] = ["a", "b", "c"];

/// The exports every generated module has: canister entry points.
const EXPORTS: &str = r#"(module
    (func (export "canister_init"))
    (func (export "canister_update a"))
    (func (export "canister_update b"))
    (func (export "canister_query c")))"#;

/// The System API imports generated code may call.
const IMPORTS: &str = r#"(module
    (import "ic0" "msg_arg_data_size" (func (result i32)))
    (import "ic0" "msg_arg_data_copy" (func (param i32 i32 i32)))
    (import "ic0" "msg_caller_copy" (func (param i32 i32 i32)))
    (import "ic0" "msg_reply_data_append" (func (param i32 i32)))
    (import "ic0" "msg_reply" (func))
    (import "ic0" "msg_reject" (func (param i32 i32)))
    (import "ic0" "stable64_grow" (func (param i64) (result i64)))
    (import "ic0" "stable64_read" (func (param i64 i64 i64)))
    (import "ic0" "stable64_write" (func (param i64 i64 i64)))
    (import "ic0" "stable64_size" (func (result i64)))
    (import "ic0" "certified_data_set" (func (param i32 i32)))
    (import "ic0" "global_timer_set" (func (param i64) (result i64)))
    (import "ic0" "debug_print" (func (param i32 i32)))
    (import "ic0" "performance_counter" (func (param i32) (result i64)))
    (import "ic0" "trap" (func (param i32 i32))))"#;

fn smith_config() -> Config {
    Config {
        available_imports: Some(wat::parse_str(IMPORTS).unwrap()),
        exports: Some(wat::parse_str(EXPORTS).unwrap()),
        max_imports: 16,
        max_funcs: 20,
        max_instructions: 200,
        max_memories: 1,
        max_memory32_bytes: 4 << 20,
        max_tables: 1,
        max_table_elements: 100,
        max_data_segments: 10,
        max_globals: 20,
        memory64_enabled: false,
        threads_enabled: false,
        gc_enabled: false,
        reference_types_enabled: false,
        exceptions_enabled: false,
        tail_call_enabled: false,
        relaxed_simd_enabled: false,
        custom_page_sizes_enabled: false,
        wide_arithmetic_enabled: false,
        allow_start_export: false,
        ..Config::default()
    }
}

fn host_config(workers: usize) -> HostConfig {
    HostConfig {
        workers,
        checkpoint_interval: 50,
        // Keep every checkpoint, so the replay covers every call.
        keep_checkpoints: 1_000,
        time: TimeSource::Deterministic { start: 1_000_000_000, step: 1_000 },
        // No idle rounds: they would come between operations by timing.
        idle_round_interval: std::time::Duration::from_secs(3_600),
        execution: ExecutionConfig {
            update_instruction_limit: 2_000_000,
            query_instruction_limit: 2_000_000,
            install_instruction_limit: 2_000_000,
            slice_instructions: 500_000,
            heap_limit_bytes: 64 << 20,
            stable_limit_bytes: 64 << 20,
            ..ExecutionConfig::default()
        },
        ..HostConfig::default()
    }
}

/// Module `index`: deterministic in the index.
fn generate(index: u64) -> Vec<u8> {
    let mut state = index.wrapping_mul(0x9E37_79B9_7F4A_7C15) | 1;
    let bytes: Vec<u8> = (0..16 << 10)
        .map(|_| {
            state ^= state << 13;
            state ^= state >> 7;
            state ^= state << 17;
            state as u8
        })
        .collect();
    let mut u = Unstructured::new(&bytes);
    Module::new(smith_config(), &mut u).expect("wasm-smith generates a module").to_bytes()
}

/// A call's outcome, without prose: what must agree between hosts.
fn outcome(result: Result<Vec<u8>, CallError>) -> Result<Vec<u8>, (RejectCode, Option<ErrorCode>, String)> {
    result.map_err(|e| match e {
        // The canister's own reject message is its data.
        CallError::Rejected(message) => (RejectCode::CanisterReject, None, message),
        CallError::Failed { code, .. } => (code.reject_code(), Some(code), String::new()),
        other => panic!("not a canister outcome: {other}"),
    })
}

type Outcomes = Vec<(Result<(), Option<ErrorCode>>, Vec<Result<Vec<u8>, (RejectCode, Option<ErrorCode>, String)>>)>;

/// What one host did.
struct Run {
    outcomes: Outcomes,
    /// The state digest after the part run one operation at a time.
    sequential: checkpoint::Hash,
    /// The height where the calls made all at once begin.
    concurrent_from: u64,
    /// The last round's height.
    last: u64,
}

/// Install modules `first..first + count` and call `a` on each, one
/// operation at a time; then call `b` on all at once, and query `c`.
fn run(dir: &std::path::Path, workers: usize, first: u64, count: u64) -> Run {
    let host = Host::open(dir, host_config(workers)).unwrap();
    let mut installed = Vec::new();
    for index in first..first + count {
        let id = host.create_canister(OWNER, vec![], None).unwrap();
        let result = host.install_code(OWNER, id, InstallMode::Install, generate(index), vec![]).map_err(|e| match e {
            HostError::Rejected { code, .. } => Some(code),
            other => panic!("module {index}: an install failed without a code: {other}"),
        });
        let called = outcome(host.update_call(id, USER, METHODS[0], vec![index_arg(&id)]));
        installed.push((id, result, called));
    }
    let sequential = host.state_digest().unwrap();
    let concurrent_from = host.height().height;
    let calls: Vec<_> =
        installed.iter().map(|(id, ..)| host.submit_update(*id, USER, METHODS[1], vec![index_arg(id)])).collect();
    let mut outcomes = Vec::new();
    for ((id, install, called), call) in installed.into_iter().zip(calls) {
        let results = vec![called, outcome(call.wait()), outcome(host.query_call(id, USER, METHODS[2], vec![]))];
        outcomes.push((install, results));
    }
    let last = host.height().height;
    host.close().unwrap();
    Run { outcomes, sequential, concurrent_from, last }
}

fn index_arg(id: &Principal) -> u8 {
    id.as_slice()[7]
}

fn differential(first: u64, count: u64) {
    let (one, two) = (tempfile::tempdir().unwrap(), tempfile::tempdir().unwrap());
    let (run_one, run_two) = (run(one.path(), 1, first, count), run(two.path(), 2, first, count));
    for (i, (a, b)) in run_one.outcomes.iter().zip(&run_two.outcomes).enumerate() {
        assert_eq!(a, b, "module {} behaves differently with 1 and 2 workers", first + i as u64);
    }
    assert_eq!(run_one.sequential, run_two.sequential, "the same rounds left different states with 1 and 2 workers");
    let outcomes_one = &run_one.outcomes;
    let installed = outcomes_one.iter().filter(|(install, _)| install.is_ok()).count();
    let replied = outcomes_one.iter().flat_map(|(_, calls)| calls).filter(|c| c.is_ok()).count();
    let mut refusals = std::collections::BTreeMap::new();
    for code in outcomes_one.iter().filter_map(|(install, _)| install.err()) {
        *refusals.entry(format!("{code:?}")).or_insert(0) += 1;
    }
    println!("{count} modules: {installed} installed, {replied} calls replied; refused: {refusals:?}");
    assert!(installed > count as usize / 4, "too few modules installed to mean anything: {installed}");
    for (dir, recorded, workers) in [(&one, &run_one, 2), (&two, &run_two, 1)] {
        let options = VerifyOptions { workers, execution: host_config(workers).execution, ..VerifyOptions::default() };
        let report = verify(dir.path(), options, &mut |_| {}).unwrap();
        assert_eq!(report.divergence, None, "replaying with {workers} worker(s) diverged");
        let covered = report.from_height <= recorded.concurrent_from && report.to_height == recorded.last;
        assert!(covered, "the replay must cover the concurrent calls: {report:?}");
    }
}

#[test]
fn random_canisters_behave_the_same_with_one_or_two_workers() {
    differential(0, 300);
}

#[test]
#[ignore = "10,000 modules: minutes"]
fn ten_thousand_random_canisters() {
    for batch in 0..20 {
        differential(1_000 + batch * 500, 500);
    }
}
