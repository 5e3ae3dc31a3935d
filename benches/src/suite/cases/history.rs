//! Opening and verifying a logged history: four ledgers of 10k accounts,
//! checkpointed, then N rounds of one transfer per ledger in the log only.
//!
//! - `recovery/{0,100,10k}_rounds`: `Host::open` replaying them;
//! - `verify/{400,10k}_rounds`: replaying them and checking every digest
//!   (two workers);
//! - `live/{100,400,10k}_rounds`: the same rounds executed live, without
//!   fsync, when the history was made: replay is compared to it.

use std::path::Path;
use std::time::{Duration, Instant};

use candid::Encode;
use canister_host::{Host, VerifyOptions, verify};

use super::plain::{self, COMPILE_LEDGER};
use super::{BenchError, OWNER, Runner, count_label, host_config, install};
use crate::Zipf;
use crate::suite::error::CaseContext;

const LEDGERS: usize = 4;
const ACCOUNTS: u64 = 10_000;

fn recovery_name(rounds: u64) -> String {
    format!("recovery/{}_rounds", count_label(rounds))
}

fn verify_name(rounds: u64) -> String {
    format!("verify/{}_rounds", count_label(rounds))
}

fn live_name(rounds: u64) -> String {
    format!("live/{}_rounds", count_label(rounds))
}

pub(super) fn run(r: &mut Runner) -> Result<(), BenchError> {
    let (recoveries, verifies): (&[u64], &[u64]) =
        if r.quick() { (&[0, 100], &[400]) } else { (&[0, 100, 10_000], &[400, 10_000]) };
    let mut histories: Vec<u64> = Vec::new();
    for &n in recoveries {
        if r.selected(&recovery_name(n)) {
            histories.push(n);
        }
    }
    for &n in verifies {
        if r.selected(&verify_name(n)) && !histories.contains(&n) {
            histories.push(n);
        }
    }
    if histories.is_empty() {
        return Ok(());
    }
    if !r.has(COMPILE_LEDGER) {
        plain::compile(r)?;
    }
    histories.sort();
    let samples = if r.quick() { 5 } else { 10 };
    for rounds in histories {
        let dir = r.scratch().join(format!("history-{rounds}"));
        let live = history(&dir, rounds)?;
        if rounds > 0 {
            r.once(&live_name(rounds), &[], live);
        }
        let name = recovery_name(rounds);
        if recoveries.contains(&rounds) && r.selected(&name) {
            let baselines: Vec<String> =
                if rounds == 0 { vec![COMPILE_LEDGER.into()] } else { vec![live_name(rounds), recovery_name(0)] };
            let baselines: Vec<&str> = baselines.iter().map(String::as_str).collect();
            let result = r.timed(&name, &baselines, samples, || open(&dir, rounds, &name))?;
            result.counts.insert("replayed_rounds".into(), rounds);
        }
        let name = verify_name(rounds);
        if verifies.contains(&rounds) && r.selected(&name) {
            let live = live_name(rounds);
            let mut messages = 0;
            let result = r.timed(&name, &[&live], samples.min(5), || {
                let start = Instant::now();
                let options = VerifyOptions { workers: 2, ..VerifyOptions::default() };
                let report = verify(&dir, options, &mut |_| {}).case(&name)?;
                let elapsed = start.elapsed();
                if let Some(divergence) = report.divergence {
                    return Err(BenchError::Case { case: name.clone(), message: format!("diverged: {divergence:?}") });
                }
                messages = report.messages;
                Ok(elapsed)
            })?;
            result.counts.insert("messages".into(), messages);
        }
        std::fs::remove_dir_all(&dir).case(&format!("history-{rounds}"))?;
    }
    Ok(())
}

/// Make the history; how long its rounds took live.
fn history(dir: &Path, rounds: u64) -> Result<Duration, BenchError> {
    let case = format!("history of {rounds} rounds");
    let host = Host::open(dir, host_config(false, 2)).case(&case)?;
    let init = Encode!(&ACCOUNTS, &1_000_000_000u64).case(&case)?;
    let ledgers =
        (0..LEDGERS).map(|_| install(&host, &case, canisters::LEDGER, init.clone())).collect::<Result<Vec<_>, _>>()?;
    host.checkpoint().case(&case)?;
    let mut zipf = Zipf::new(ACCOUNTS as usize, 1.0001, 9);
    let start = Instant::now();
    for _ in 0..rounds {
        let mut calls = Vec::with_capacity(LEDGERS);
        for id in &ledgers {
            let arg = Encode!(&zipf.sample(), &zipf.sample(), &1u64).case(&case)?;
            calls.push(host.submit_update(*id, OWNER, "transfer", arg));
        }
        calls.into_iter().try_for_each(|call| call.wait().map(drop).case(&case))?;
    }
    let live = start.elapsed();
    // Dropped without a checkpoint: the rounds stay in the log only (in
    // the page cache at least, which is all a later open in this process
    // needs).
    drop(host);
    Ok(live)
}

/// Time one open of `dir`, which must replay `rounds` rounds.
fn open(dir: &Path, rounds: u64, name: &str) -> Result<Duration, BenchError> {
    let start = Instant::now();
    let host = Host::open(dir, host_config(false, 2)).case(name)?;
    let elapsed = start.elapsed();
    let replayed = host.recovery().replayed_rounds;
    if replayed < rounds {
        return Err(BenchError::Case {
            case: name.into(),
            message: format!("replayed {replayed} rounds, not {rounds}"),
        });
    }
    drop(host);
    Ok(elapsed)
}
