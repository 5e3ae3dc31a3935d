//! The host runtime on the micropayments workload (seed 003): ledger
//! transfers between accounts chosen with Zipf-skewed activity.
//!
//! - `round_throughput`: one round of 200 transfers spread over 4 ledger
//!   canisters, with the log synced per round (`fsync`) and not
//!   (`no_fsync`, the baseline): rounds/s = 1 / time, messages/s = 200 / time;
//! - `history_100_rounds`: 100 live rounds of 4 transfers (one per ledger),
//!   the shape of the logged history below, with and without fsync:
//!   `no_fsync` is the baseline that recovery and verification replay against;
//! - `recovery`: opening a state directory that has 100 and 400 rounds of
//!   log after its checkpoint (replayed), and 0 (the fixed cost of opening);
//! - `verify`: replaying 400 logged rounds from a checkpoint, in messages/s;
//! - `beside_a_looping_heartbeat`: one counter update on a host where
//!   another canister's heartbeat loops until its 8-billion-instruction
//!   limit, every round: in slices of 2 billion (`sliced`), or whole
//!   (`unsliced`, slice = limit), against the same update on a host with
//!   no such canister (`idle`, the baseline);
//! - `calls`: an ingress update that answers at once (`direct`, the
//!   baseline) against one that calls another canister and answers from
//!   its callback (`one_call`, two more messages in the same round), and
//!   one that makes 100 calls and answers after the last (`fan_out_100`);
//!   and the same counter update compiled by Motoko (wasm64, its runtime)
//!   against the C counter (`motoko_inc` vs `c_inc`). No fsync, so the
//!   figures are the host's, not the disk's.

use std::path::Path;
use std::time::{Duration, Instant};

use bench_suite::Zipf;
use candid::Encode;
use canister_host::*;
use criterion::{BenchmarkId, Criterion, SamplingMode, Throughput, criterion_group, criterion_main};

const OWNER: Principal = Principal::from_slice(&[0x11; 29]);
const LEDGERS: usize = 4;
const ACCOUNTS: u64 = 10_000;
const PER_ROUND: usize = 200;

fn config(fsync: bool) -> HostConfig {
    HostConfig { fsync, checkpoint_interval: 1_000_000, ..HostConfig::default() }
}

fn ledgers(host: &Host) -> Vec<Principal> {
    (0..LEDGERS)
        .map(|_| {
            let id = host.create_canister(OWNER, vec![], None).unwrap();
            let init = Encode!(&ACCOUNTS, &1_000_000_000u64).unwrap();
            host.install_code(OWNER, id, InstallMode::Install, canisters::LEDGER.to_vec(), init).unwrap();
            id
        })
        .collect()
}

/// Submit one round's worth of transfers and wait for all of them.
fn transfers(host: &Host, ledgers: &[Principal], zipf: &mut Zipf) {
    let calls: Vec<_> = (0..PER_ROUND)
        .map(|i| {
            let arg = Encode!(&zipf.sample(), &zipf.sample(), &1u64).unwrap();
            host.submit_update(ledgers[i % ledgers.len()], OWNER, "transfer", arg)
        })
        .collect();
    for call in calls {
        call.wait().unwrap();
    }
}

fn round_throughput(c: &mut Criterion) {
    let mut g = c.benchmark_group("runtime/round_throughput");
    g.throughput(Throughput::Elements(PER_ROUND as u64));
    for (name, fsync) in [("no_fsync", false), ("fsync", true)] {
        let tmp = tempfile::tempdir().unwrap();
        let host = Host::open(tmp.path(), config(fsync)).unwrap();
        let ids = ledgers(&host);
        let mut zipf = Zipf::new(ACCOUNTS as usize, 1.0, 7);
        g.bench_function(name, |b| {
            b.iter_custom(|n| {
                let rounds_before = host.counters().rounds;
                let start = Instant::now();
                for _ in 0..n {
                    transfers(&host, &ids, &mut zipf);
                }
                let elapsed = start.elapsed();
                // Submissions race the scheduler, so a batch can span rounds;
                // report per batch, and keep an eye on the round count.
                let rounds = host.counters().rounds - rounds_before;
                assert!(rounds >= n, "fewer rounds than batches");
                elapsed
            })
        });
    }
    g.finish();
}

/// `rounds` rounds of one transfer per ledger.
fn small_rounds(host: &Host, ids: &[Principal], zipf: &mut Zipf, rounds: usize) {
    for _ in 0..rounds {
        let calls: Vec<_> = ids
            .iter()
            .map(|id| {
                host.submit_update(*id, OWNER, "transfer", Encode!(&zipf.sample(), &zipf.sample(), &1u64).unwrap())
            })
            .collect();
        for call in calls {
            call.wait().unwrap();
        }
    }
}

/// A state directory with a checkpoint followed by `rounds` logged rounds.
fn history(dir: &Path, rounds: usize) {
    let host = Host::open(dir, config(true)).unwrap();
    let ids = ledgers(&host);
    host.checkpoint().unwrap();
    small_rounds(&host, &ids, &mut Zipf::new(ACCOUNTS as usize, 1.0, 9), rounds);
    // Dropped without close: the rounds stay in the log only.
}

fn live_history(c: &mut Criterion) {
    let mut g = c.benchmark_group("runtime/history_100_rounds");
    for (name, fsync) in [("no_fsync", false), ("fsync", true)] {
        let tmp = tempfile::tempdir().unwrap();
        let host = Host::open(tmp.path(), config(fsync)).unwrap();
        let ids = ledgers(&host);
        let mut zipf = Zipf::new(ACCOUNTS as usize, 1.0, 9);
        g.bench_function(name, |b| b.iter(|| small_rounds(&host, &ids, &mut zipf, 100)));
    }
    g.finish();
}

fn recovery(c: &mut Criterion) {
    let mut g = c.benchmark_group("runtime/recovery");
    for rounds in [0usize, 100, 400] {
        let tmp = tempfile::tempdir().unwrap();
        history(tmp.path(), rounds);
        g.bench_function(BenchmarkId::new("open", format!("{rounds}_rounds")), |b| {
            b.iter_custom(|n| {
                let mut total = Duration::ZERO;
                for _ in 0..n {
                    let start = Instant::now();
                    let host = Host::open(tmp.path(), config(true)).unwrap();
                    total += start.elapsed();
                    assert!(host.recovery().replayed_rounds as usize >= rounds);
                    drop(host);
                }
                total
            })
        });
    }
    g.finish();
}

fn verify_throughput(c: &mut Criterion) {
    let mut g = c.benchmark_group("runtime/verify");
    let tmp = tempfile::tempdir().unwrap();
    history(tmp.path(), 400);
    let report = verify(tmp.path(), VerifyOptions { workers: 2, ..VerifyOptions::default() }, &mut |_| {}).unwrap();
    assert!(report.divergence.is_none());
    g.throughput(Throughput::Elements(report.messages));
    g.bench_function("replay_400_rounds", |b| {
        b.iter(|| verify(tmp.path(), VerifyOptions { workers: 2, ..VerifyOptions::default() }, &mut |_| {}).unwrap())
    });
    g.finish();
}

/// A counter, and (when `spin`) a heartbeat that loops until its limit.
fn counter(spin: bool) -> Vec<u8> {
    let heartbeat = if spin { r#"(func (export "canister_heartbeat") (loop $l (br $l)))"# } else { "" };
    wat::parse_str(format!(
        r#"(module
        (import "ic0" "msg_reply" (func $reply))
        (import "ic0" "msg_reply_data_append" (func $append (param i32 i32)))
        (memory 1)
        {heartbeat}
        (func (export "canister_update bump")
            (i64.store (i32.const 0) (i64.add (i64.load (i32.const 0)) (i64.const 1)))
            (call $append (i32.const 0) (i32.const 8)) (call $reply)))"#
    ))
    .unwrap()
}

fn beside_a_looping_heartbeat(c: &mut Criterion) {
    const LIMIT: u64 = 8_000_000_000;
    let mut g = c.benchmark_group("runtime/beside_a_looping_heartbeat");
    g.sampling_mode(SamplingMode::Flat);
    for (name, spinner, slice) in [("idle", false, LIMIT), ("sliced", true, 2_000_000_000), ("unsliced", true, LIMIT)] {
        let tmp = tempfile::tempdir().unwrap();
        let execution = ExecutionConfig {
            update_instruction_limit: LIMIT,
            slice_instructions: slice,
            ..ExecutionConfig::default()
        };
        let host = Host::open(tmp.path(), HostConfig { execution, ..config(false) }).unwrap();
        let install = |wasm: Vec<u8>| {
            let id = host.create_canister(OWNER, vec![], None).unwrap();
            host.install_code(OWNER, id, InstallMode::Install, wasm, vec![]).unwrap();
            id
        };
        let target = install(counter(false));
        if spinner {
            install(counter(true));
        }
        g.bench_function(name, |b| b.iter(|| host.update_call(target, OWNER, "bump", vec![]).unwrap()));
    }
    g.finish();
}

fn calls(c: &mut Criterion) {
    let mut g = c.benchmark_group("runtime/calls");
    let tmp = tempfile::tempdir().unwrap();
    let host = Host::open(tmp.path(), config(false)).unwrap();
    let install = |wasm: &[u8], arg: Vec<u8>| {
        let id = host.create_canister(OWNER, vec![], None).unwrap();
        host.install_code(OWNER, id, InstallMode::Install, wasm.to_vec(), arg).unwrap();
        id
    };
    let (a, b) = (install(canisters::CALLS, vec![]), install(canisters::CALLS, vec![]));
    let callee = b.as_slice().to_vec();
    g.bench_function("direct", |t| t.iter(|| host.update_call(b, OWNER, "echo", vec![]).unwrap()));
    let relay = Encode!(&callee, &"echo", &0u32).unwrap();
    g.bench_function("one_call", |t| t.iter(|| host.update_call(a, OWNER, "relay", relay.clone()).unwrap()));
    let fan_out = Encode!(&callee, &100u64).unwrap();
    g.bench_function("fan_out_100", |t| t.iter(|| host.update_call(a, OWNER, "fanout", fan_out.clone()).unwrap()));
    let c_counter = install(canisters::COUNTER, vec![]);
    g.bench_function("c_inc", |t| t.iter(|| host.update_call(c_counter, OWNER, "inc", vec![]).unwrap()));
    let motoko = install(canisters::motoko::COUNTER, Encode!().unwrap());
    let no_args = Encode!().unwrap();
    g.bench_function("motoko_inc", |t| t.iter(|| host.update_call(motoko, OWNER, "inc", no_args.clone()).unwrap()));
    g.finish();
}

criterion_group! {
    name = benches;
    config = Criterion::default().sample_size(10).warm_up_time(Duration::from_millis(500)).measurement_time(Duration::from_secs(4));
    targets = round_throughput, live_history, recovery, verify_throughput, beside_a_looping_heartbeat, calls
}
criterion_main!(benches);
