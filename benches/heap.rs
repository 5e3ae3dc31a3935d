//! Message latency of memory-heavy canisters: memory_stress sweeping a
//! 256 MiB region at 4 KiB stride, {update, query} x {read, write} x
//! {forward, backward}, in every tracking mode.
//!
//! The region is backed by a checkpoint file (every page holds data), and
//! each update runs on a fresh copy of that state: the first message after a
//! checkpoint, which pays for every fault (the IC's benchmark setting). The
//! baseline is `untracked`: the same canister on plain file-backed memory
//! with no handler, the physical limit. `python3 benches/ratios.py heap`
//! prints every mode as a ratio to it.

use std::sync::Arc;

use candid::Encode;
use checkpoint::{CheckpointSpec, FileSource, FileSpec, StateDir};
use criterion::{BatchSize, BenchmarkId, Criterion, criterion_group, criterion_main};
use embedder::*;

const REGION: u64 = 256 << 20;
const PAGES: u64 = REGION / 4096;
const HEAP_START: u64 = canisters::MEMORY_STRESS_HEAP_START;

/// memory_stress with a 256 MiB region of non-zero pages, checkpointed, and
/// reopened so the heap is a file with an empty delta.
fn checkpointed_state(engine: &Arc<Engine>, dir: &StateDir) -> CanisterState {
    let exec = Executor::new(engine.clone(), ExecutionConfig::default());
    let mut c = Executable::new(CanisterState::default().with_module(exec.compile(canisters::MEMORY_STRESS).unwrap()));
    let grow = Encode!(&(REGION / 65536)).unwrap();
    let fill = Encode!(&HEAP_START, &PAGES, &4096u64, &false, &1u8).unwrap();
    for (name, arg) in [("grow", &grow), ("write_pages", &fill)] {
        let call = Call::method(name, MethodKind::Update, arg, &[4], 1);
        assert!(exec.execute(&mut c, call).outcome.is_ok());
    }
    let state = c.state().clone();
    let size = state.heap_pages.bytes();
    let spec = CheckpointSpec {
        height: 1,
        files: vec![FileSpec {
            path: "heap.bin".into(),
            source: FileSource::Memory { base: None, map: &state.heap, size },
        }],
    };
    let checkpoint = dir.create(spec).unwrap();
    CanisterState { heap: checkpoint.open_page_map("heap.bin").unwrap(), ..state }
}

fn bench(c: &mut Criterion) {
    let tmp = tempfile::tempdir().unwrap();
    let dir = StateDir::open(tmp.path()).unwrap();
    let engine = Arc::new(Engine::new().unwrap());
    let state = checkpointed_state(&engine, &dir);
    let modes = [
        ("untracked", TrackingMode::Untracked),
        ("naive", TrackingMode::Naive),
        ("prefetch", TrackingMode::Prefetch),
        ("read_mapped", TrackingMode::ReadMapped),
    ];
    let mut g = c.benchmark_group("heap_256MiB");
    for (kind, query) in [("update", false), ("query", true)] {
        for (op, write) in [("read", false), ("write", true)] {
            for (direction, backward) in [("forward", false), ("backward", true)] {
                for (mode_name, mode) in modes {
                    let exec = Executor::new(
                        engine.clone(),
                        ExecutionConfig { tracking: mode, reuse_instances: false, ..ExecutionConfig::default() },
                    );
                    let method = match (write, query) {
                        (true, false) => "write_pages",
                        (true, true) => "write_pages_query",
                        (false, false) => "read_pages",
                        (false, true) => "read_pages_query",
                    };
                    let kind_of = if query { MethodKind::Query } else { MethodKind::Update };
                    let mut value = 2u8;
                    let id = BenchmarkId::new(format!("{kind}_{op}_{direction}"), mode_name);
                    g.bench_function(id, |b| {
                        b.iter_batched(
                            || {
                                value = value % 200 + 2; // never the checkpointed 1: every page changes
                                let arg = if write {
                                    Encode!(&HEAP_START, &PAGES, &4096u64, &backward, &value).unwrap()
                                } else {
                                    Encode!(&HEAP_START, &PAGES, &4096u64, &backward).unwrap()
                                };
                                (Executable::new(state.clone()), arg)
                            },
                            |(mut canister, arg)| {
                                let call = Call::method(method, kind_of, &arg, &[4], 1);
                                let r = if query {
                                    exec.query(canister.state(), call)
                                } else {
                                    exec.execute(&mut canister, call)
                                };
                                assert!(r.outcome.is_ok(), "{mode_name}: {:?}", r.outcome);
                                (canister, r)
                            },
                            BatchSize::PerIteration,
                        )
                    });
                }
            }
        }
    }
    g.finish();
}

criterion_group! {
    name = benches;
    config = Criterion::default().sample_size(10).warm_up_time(std::time::Duration::from_millis(500)).measurement_time(std::time::Duration::from_secs(3));
    targets = bench
}
criterion_main!(benches);
