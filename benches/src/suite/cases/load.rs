//! Durable transfers per second: client threads sending ledger transfers
//! between Zipf-chosen accounts (s = 1.0001, seed 003's micropayments
//! workload), each waiting for its reply.
//!
//! - `micropayments/{10k,1M,10M}_accounts`: 8 threads, fsync on;
//! - `micropayments/{10k,10M}_accounts_512_in_flight`: the same, each
//!   thread keeping 64 transfers in flight (as many clients would), so
//!   rounds fill up;
//! - `throughput/{fsync,no_fsync}_{1,2,4,8}_threads`: 10k accounts, so the
//!   report can plot throughput against client threads;
//! - `checkpointing/{none,every_100_rounds}_64_threads`: 64 clients, fsync
//!   on, over 1M accounts (10k with `--quick`), with no checkpoints and
//!   with one every 100 rounds (the default), written beside the rounds: compare their
//!   p99s.
//!
//! Latency percentiles are per transfer; the throughput is the run's.

use std::collections::{BTreeMap, VecDeque};
use std::path::Path;
use std::sync::Mutex;
use std::time::{Duration, Instant};

use candid::Encode;
use canister_host::{Host, HostConfig, HostError, Principal};

use super::disk::FLOOR;
use super::{BenchError, OWNER, Runner, count_label, disk_bytes, host_config, install, open_host};
use crate::Zipf;
use crate::suite::error::CaseContext;
use crate::suite::resident::{reset_peak, resident};

/// The workload's skew (seed 003).
const ZIPF_EXPONENT: f64 = 1.0001;
const INITIAL_BALANCE: u64 = 1_000_000_000;

fn micropayments_name(accounts: u64) -> String {
    format!("micropayments/{}_accounts", count_label(accounts))
}

/// Transfers each client thread keeps in flight in the pipelined cases.
const DEPTH: usize = 64;
/// Client threads of the micropayments cases.
const CLIENTS: usize = 8;

fn pipelined_name(accounts: u64) -> String {
    format!("micropayments/{}_accounts_{}_in_flight", count_label(accounts), CLIENTS * DEPTH)
}

fn throughput_name(fsync: bool, threads: usize) -> String {
    format!("throughput/{}_{threads}_threads", if fsync { "fsync" } else { "no_fsync" })
}

/// Clients of the checkpointing cases.
const CHECKPOINTING_THREADS: usize = 64;

fn checkpointing_name(every: Option<u64>) -> String {
    match every {
        None => format!("checkpointing/none_{CHECKPOINTING_THREADS}_threads"),
        Some(n) => format!("checkpointing/every_{n}_rounds_{CHECKPOINTING_THREADS}_threads"),
    }
}

pub(super) fn run(r: &mut Runner) -> Result<(), BenchError> {
    let (accounts, threads): (&[u64], &[usize]) =
        if r.quick() { (&[10_000], &[1, 8]) } else { (&[10_000, 1_000_000, 10_000_000], &[1, 2, 4, 8]) };
    let pipelined: &[u64] = if r.quick() { &[10_000] } else { &[10_000, 10_000_000] };
    let mut names: Vec<String> = accounts.iter().map(|a| micropayments_name(*a)).collect();
    names.extend(pipelined.iter().map(|a| pipelined_name(*a)));
    for fsync in [false, true] {
        names.extend(threads.iter().map(|t| throughput_name(fsync, *t)));
    }
    let checkpointing = [None, Some(100)];
    names.extend(checkpointing.iter().map(|e| checkpointing_name(*e)));
    if !r.any(&names) {
        return Ok(());
    }
    let seconds = Duration::from_millis(if r.quick() { 500 } else { 3000 });
    for fsync in [false, true] {
        for &t in threads {
            let name = throughput_name(fsync, t);
            if !r.selected(&name) {
                continue;
            }
            let baselines = match (fsync, t) {
                (false, 1) => vec!["host/update_call_no_fsync".to_string()],
                (false, _) => vec![throughput_name(false, 1)],
                (true, _) => vec![throughput_name(false, t), FLOOR.to_string()],
            };
            let baselines: Vec<&str> = baselines.iter().map(String::as_str).collect();
            transfers(r, &name, &baselines, host_config(fsync, 2), 10_000, (t, 1), seconds)?;
        }
    }
    let wanted: Vec<String> = checkpointing.iter().map(|e| checkpointing_name(*e)).collect();
    if r.any(&wanted) {
        let accounts = if r.quick() { 10_000 } else { 1_000_000 };
        for every in checkpointing {
            let name = checkpointing_name(every);
            let config = HostConfig { checkpoint_interval: every.unwrap_or(u64::MAX / 2), ..host_config(true, 2) };
            let baselines: Vec<String> = every.map(|_| checkpointing_name(None)).into_iter().collect();
            let baselines: Vec<&str> = baselines.iter().map(String::as_str).collect();
            transfers(r, &name, &baselines, config, accounts, (CHECKPOINTING_THREADS, 1), seconds)?;
        }
    }
    for &a in accounts {
        let name = micropayments_name(a);
        if r.selected(&name) {
            let baseline = throughput_name(true, 8);
            transfers(r, &name, &[&baseline, FLOOR], host_config(true, 2), a, (CLIENTS, 1), seconds)?;
        }
    }
    for &a in pipelined {
        let name = pipelined_name(a);
        if r.selected(&name) {
            let baseline = micropayments_name(a);
            let baselines: Vec<&str> = [baseline.as_str()].into_iter().filter(|b| r.has(b)).collect();
            transfers(r, &name, &baselines, host_config(true, 2), a, (CLIENTS, DEPTH), seconds)?;
        }
    }
    Ok(())
}

/// One ledger of `accounts`, loaded for `seconds` by `clients`: (threads,
/// transfers each keeps in flight).
fn transfers(
    r: &mut Runner,
    name: &str,
    baselines: &[&str],
    config: HostConfig,
    accounts: u64,
    clients: (usize, usize),
    seconds: Duration,
) -> Result<(), BenchError> {
    let idle = resident().map(|(now, _)| now);
    reset_peak();
    let host = open_host(r, name, config)?;
    let init = Encode!(&accounts, &INITIAL_BALANCE).case(name)?;
    let ledger = install(&host, name, canisters::LEDGER, init)?;
    let zipf = Zipf::new(accounts as usize, ZIPF_EXPONENT, accounts);
    // Warm up: the first transfers fault the ledger's pages in.
    load(&host, ledger, &zipf, clients, seconds / 10, name)?;
    let start = Instant::now();
    let latencies = load(&host, ledger, &zipf, clients, seconds, name)?;
    let elapsed = start.elapsed();
    let dir = r.scratch().join(name.replace('/', "_"));
    let result = r.throughput(name, baselines, latencies.len() as u64, elapsed, latencies);
    if name.starts_with("micropayments/") {
        result.bytes = sizes(&host, ledger, idle, &dir).case(name)?;
    }
    Ok(())
}

/// What a load left: the ledger's memory, the process's peak resident
/// memory over `idle` (its size before the host opened), and the newest
/// checkpoint's bytes on disk once one is taken of the final state.
fn sizes(host: &Host, ledger: Principal, idle: Option<u64>, dir: &Path) -> Result<BTreeMap<String, u64>, HostError> {
    let memory = host.canister_info(ledger)?.state.size_bytes();
    let peak = resident().map(|(_, peak)| peak);
    let height = host.checkpoint()?;
    let checkpoint = dir.join("checkpoints").join(format!("{height:016x}"));
    let mut sizes = BTreeMap::from([
        ("canister_memory".to_string(), memory),
        ("checkpoint_on_disk".into(), disk_bytes(&checkpoint)),
    ]);
    if let (Some(idle), Some(peak)) = (idle, peak) {
        sizes.insert("peak_rss".into(), peak.saturating_sub(idle));
    }
    Ok(sizes)
}

/// Send transfers from `threads` threads, each keeping `depth` in flight
/// (waiting for its oldest before sending another; 1: each waits for its
/// reply), until `duration` has passed; the latency of each, in ns.
fn load(
    host: &Host,
    ledger: Principal,
    zipf: &Zipf,
    (threads, depth): (usize, usize),
    duration: Duration,
    name: &str,
) -> Result<Vec<f64>, BenchError> {
    let until = Instant::now() + duration;
    let all = Mutex::new(Vec::new());
    std::thread::scope(|s| {
        let workers: Vec<_> = (0..threads)
            .map(|t| {
                let mut zipf = zipf.reseeded(t as u64 + 1);
                let all = &all;
                s.spawn(move || -> Result<(), BenchError> {
                    let mut mine = Vec::new();
                    let mut in_flight = VecDeque::with_capacity(depth);
                    loop {
                        if Instant::now() < until && in_flight.len() < depth {
                            let arg = Encode!(&zipf.sample(), &zipf.sample(), &1u64).case(name)?;
                            in_flight.push_back((Instant::now(), host.submit_update(ledger, OWNER, "transfer", arg)));
                            continue;
                        }
                        let Some((sent, call)) = in_flight.pop_front() else { break };
                        call.wait().case(name)?;
                        mine.push(sent.elapsed().as_nanos() as f64);
                    }
                    all.lock().unwrap_or_else(|e| e.into_inner()).extend(mine);
                    Ok(())
                })
            })
            .collect();
        workers.into_iter().try_for_each(|w| {
            w.join().map_err(|_| BenchError::Case { case: name.into(), message: "a client thread panicked".into() })?
        })
    })?;
    Ok(all.into_inner().unwrap_or_else(|e| e.into_inner()))
}
