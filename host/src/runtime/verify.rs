//! Replay verification: re-execute the logged history from a checkpoint,
//! in memory only, and compare every round's digests with the recorded ones.
//! The tool for checking that an engine (or a modified module) reproduces an
//! old history. It writes nothing and takes no lock, so it can run beside a
//! live host.

use std::path::Path;
use std::sync::Arc;
use std::time::{Duration, Instant};

use candid::Principal;
use checkpoint::{StateDir, Verification};

use super::log::MessageLog;
use super::round::{Hash, ModuleOverrides, WorkerPool, state_digest};
use super::{HostError, decode, divergence, persist};
use crate::engine::Engine;
use crate::execution::{ExecutionConfig, Executor};

#[derive(Clone, Debug, Default)]
pub struct VerifyOptions {
    /// Checkpoint to start from (default: the oldest one kept).
    pub from_height: Option<u64>,
    pub workers: usize,
    pub execution: ExecutionConfig,
    /// Modules to substitute, by the SHA-256 of the original.
    pub replace_modules: ModuleOverrides,
    /// Report progress every this many rounds (0: never).
    pub progress_every: u64,
}

/// Where the replay first differed from the log.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Divergence {
    pub height: u64,
    /// The first canister whose digest differs (None: only the round's).
    pub canister: Option<Principal>,
    pub recorded: String,
    pub replayed: String,
}

impl std::fmt::Display for Divergence {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "round {} diverged", self.height)?;
        if let Some(c) = self.canister {
            write!(f, " at canister {c}")?;
        }
        write!(f, ": recorded digest {}, replayed {}", self.recorded, self.replayed)
    }
}

#[derive(Clone, Debug)]
pub struct VerifyProgress {
    pub height: u64,
    pub last_height: u64,
    pub rounds: u64,
    pub messages: u64,
    pub elapsed: Duration,
}

#[derive(Clone, Debug)]
pub struct VerifyReport {
    /// The checkpoint the replay started from.
    pub from_height: u64,
    /// The last round replayed.
    pub to_height: u64,
    pub rounds: u64,
    pub messages: u64,
    pub elapsed: Duration,
    /// The first divergence; the replay stops there.
    pub divergence: Option<Divergence>,
    /// Digest of the state after the last round replayed.
    pub final_state: Hash,
}

impl VerifyReport {
    pub fn rounds_per_second(&self) -> f64 {
        self.rounds as f64 / self.elapsed.as_secs_f64().max(1e-9)
    }

    pub fn messages_per_second(&self) -> f64 {
        self.messages as f64 / self.elapsed.as_secs_f64().max(1e-9)
    }
}

/// Verify the history in the state directory at `path`.
pub fn verify(
    path: &Path,
    options: VerifyOptions,
    progress: &mut dyn FnMut(&VerifyProgress),
) -> Result<VerifyReport, HostError> {
    let started = Instant::now();
    let dir = StateDir::open_read_only(path)?;
    let heights = dir.heights()?;
    let from = match options.from_height {
        Some(h) if heights.contains(&h) => h,
        Some(h) => {
            return Err(HostError::Operation(format!(
                "there is no checkpoint {h} to verify from; available: {}",
                heights.iter().map(u64::to_string).collect::<Vec<_>>().join(", ")
            )));
        }
        None => *heights.first().ok_or_else(|| HostError::Operation("there is no checkpoint to verify from".into()))?,
    };
    let checkpoint = dir.load(from, Verification::Full)?;
    let engine = Arc::new(Engine::new()?);
    let executor = Arc::new(Executor::new(engine, options.execution.clone()));
    let overrides = Arc::new(options.replace_modules.clone());
    let (mut registry, _, _) = persist::load(&checkpoint, &executor, &overrides)?;
    let (log, recovered) = MessageLog::open_read_only(&dir.log_dir())?;
    let pool = WorkerPool::new(options.workers, executor, overrides);
    let records: Vec<_> = recovered.records.iter().filter(|r| r.height > from).collect();
    let last_height = records.last().map_or(from, |r| r.height);
    let mut report = VerifyReport {
        from_height: from,
        to_height: from,
        rounds: 0,
        messages: 0,
        elapsed: Duration::ZERO,
        divergence: None,
        final_state: [0; 32],
    };
    for (i, record) in records.iter().enumerate() {
        if record.height != from + 1 + i as u64 {
            return Err(HostError::LogGap { checkpoint: from, missing: from + 1 + i as u64 });
        }
        let mut round = decode(&log, record)?;
        let ops: Vec<_> = std::mem::take(&mut round.operations).into_iter().map(Arc::new).collect();
        let result = pool.execute(&mut registry, round.height, round.time, &ops);
        report.rounds += 1;
        report.messages += result.messages as u64;
        report.to_height = round.height;
        if let Some((canister, recorded, replayed)) = divergence(&round, &result) {
            report.divergence = Some(Divergence { height: round.height, canister, recorded, replayed });
            break;
        }
        if options.progress_every > 0 && report.rounds.is_multiple_of(options.progress_every) {
            progress(&VerifyProgress {
                height: round.height,
                last_height,
                rounds: report.rounds,
                messages: report.messages,
                elapsed: started.elapsed(),
            });
        }
    }
    report.final_state = state_digest(&registry);
    report.elapsed = started.elapsed();
    Ok(report)
}
