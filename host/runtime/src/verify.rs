//! Replay verification: re-execute the logged history from a checkpoint,
//! in memory only, and compare every round's digests with the recorded ones.
//! The tool for checking that an engine (or a modified module) reproduces an
//! old history. It writes nothing and takes no lock, so it can run beside a
//! live host.

use std::path::Path;
use std::sync::Arc;
use std::time::{Duration, Instant};

use checkpoint::{StateDir, Verification};

use checkpoint::Hash;
use embedder::{Engine, ExecutionConfig, Executor};

use crate::error::HostError;
use crate::persist::{self, LoadedState};
use crate::query_pool::WASM_THREAD_STACK;
use crate::registry::Registry;
use crate::replay::{Divergence, replay};
use crate::round::{ModuleOverrides, WorkerPool, state_digest};
use crate::view::LastRound;
use crate::wal::Wal;

/// What to verify, and how.
#[derive(Clone, Debug, Default)]
pub struct VerifyOptions {
    /// Checkpoint to start from (default: the oldest one kept).
    pub from_height: Option<u64>,
    /// Last round to replay (default: the log's last).
    pub to_height: Option<u64>,
    /// Worker threads (0 means 1).
    pub workers: usize,
    /// How messages execute (limits must match the recorded history's).
    pub execution: ExecutionConfig,
    /// Modules to substitute, by the SHA-256 of the original.
    pub replace_modules: ModuleOverrides,
    /// Report progress every this many rounds (0: never).
    pub progress_every: u64,
}

/// How far a verification has got.
#[derive(Clone, Debug)]
pub struct VerifyProgress {
    /// The round just replayed.
    pub height: u64,
    /// The last round there is to replay.
    pub last_height: u64,
    /// Rounds replayed so far.
    pub rounds: u64,
    /// Update messages replayed so far.
    pub messages: u64,
    /// Time since the verification started.
    pub elapsed: Duration,
}

/// What a verification found.
#[derive(Clone, Debug)]
pub struct VerifyReport {
    /// The checkpoint the replay started from.
    pub from_height: u64,
    /// The last round replayed.
    pub to_height: u64,
    /// Rounds replayed.
    pub rounds: u64,
    /// Update messages replayed.
    pub messages: u64,
    /// How long it took.
    pub elapsed: Duration,
    /// The first divergence; the replay stops there.
    pub divergence: Option<Divergence>,
    /// Digest of the state after the last round replayed.
    pub final_state: Hash,
}

impl VerifyReport {
    /// Replay speed in rounds.
    pub fn rounds_per_second(&self) -> f64 {
        self.rounds as f64 / self.elapsed.as_secs_f64().max(1e-9)
    }

    /// Replay speed in update messages.
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
    // The replay runs on a thread with a stack sized for wasm; progress
    // comes back to this one, where the callback lives.
    let (tx, rx) = crossbeam_channel::unbounded::<VerifyProgress>();
    std::thread::scope(|scope| {
        // `tx` moves into the replay, so the loop below ends with it.
        let replay = std::thread::Builder::new()
            .name("canister-host-verify".into())
            .stack_size(WASM_THREAD_STACK)
            .spawn_scoped(scope, move || verify_here(path, options, &mut |p| drop(tx.send(p.clone()))))
            .map_err(|e| HostError::Operation(format!("cannot start the verification thread: {e}")))?;
        for report in rx {
            progress(&report);
        }
        match replay.join() {
            Ok(result) => result,
            Err(panic) => std::panic::resume_unwind(panic),
        }
    })
}

fn verify_here(
    path: &Path,
    options: VerifyOptions,
    progress: &mut dyn FnMut(&VerifyProgress),
) -> Result<VerifyReport, HostError> {
    replay_here(path, &options, progress).map(|replayed| replayed.report)
}

/// The state a read-only replay reached.
pub(crate) struct ReplayedState {
    pub(crate) report: VerifyReport,
    pub(crate) registry: Registry,
    pub(crate) executor: Arc<Executor>,
    /// The last round replayed (or the checkpoint's, if none was).
    pub(crate) round: LastRound,
    /// The workers that replayed it, to replay more with.
    pub(crate) pool: WorkerPool,
}

impl ReplayedState {
    /// Replay the rounds the log at `path` gained after the last one
    /// replayed (checking each record's chain and digests, as before).
    /// Returns how many there were. A divergence is an error, after which
    /// the state is the diverged round's: discard it.
    pub(crate) fn replay_more(&mut self, path: &Path) -> Result<u64, HostError> {
        let dir = StateDir::open_read_only(path)?;
        let (wal, found) = Wal::open_read_only_with(dir.fs().clone(), &dir.wal_dir())?;
        let mut rounds = 0;
        let (registry, round) = (&mut self.registry, &mut self.round);
        let divergence = replay(&self.pool, registry, &wal, &found.records, round.height, |replayed| {
            rounds += 1;
            *round = LastRound { height: replayed.height, time: replayed.time };
        })?;
        match divergence {
            Some(divergence) => Err(HostError::ReplayDiverged(divergence)),
            None => Ok(rounds),
        }
    }
}

/// Load checkpoint `options.from_height` (default: the oldest) of the state
/// directory at `path`, without its lock, and replay the log after it in
/// memory, up to `options.to_height`, stopping at the first divergence.
pub(crate) fn replay_here(
    path: &Path,
    options: &VerifyOptions,
    progress: &mut dyn FnMut(&VerifyProgress),
) -> Result<ReplayedState, HostError> {
    let started = Instant::now();
    let dir = StateDir::open_read_only(path)?;
    let heights = dir.heights()?;
    let from = match options.from_height {
        Some(h) if heights.contains(&h) => h,
        Some(h) => {
            return Err(HostError::Operation(format!(
                "there is no checkpoint {h} to start from; available: {}",
                heights.iter().map(u64::to_string).collect::<Vec<_>>().join(", ")
            )));
        }
        None => *heights.first().ok_or_else(|| HostError::Operation("there is no checkpoint to start from".into()))?,
    };
    let checkpoint = dir.load(from, Verification::Full)?;
    let engine = Arc::new(Engine::new()?);
    let executor = Arc::new(Executor::new(engine, options.execution.clone()));
    let overrides = Arc::new(options.replace_modules.clone());
    let LoadedState { mut registry, meta, .. } = persist::load(&checkpoint, &executor, &overrides)?;
    let (wal, found) = Wal::open_read_only_with(dir.fs().clone(), &dir.wal_dir())?;
    let to = options.to_height.unwrap_or(u64::MAX);
    let records: Vec<_> = found.records.into_iter().filter(|r| r.height <= to).collect();
    let last_height = records.last().map_or(from, |r| r.height.max(from));
    if let Some(to) = options.to_height
        && to > last_height
    {
        return Err(HostError::Operation(format!(
            "round {to} is not in the history: the log ends at round {last_height}"
        )));
    }
    let pool = WorkerPool::new(options.workers, executor.clone(), overrides);
    let mut round = LastRound { height: from, time: meta.time };
    let mut report = VerifyReport {
        from_height: from,
        to_height: from,
        rounds: 0,
        messages: 0,
        elapsed: Duration::ZERO,
        divergence: None,
        final_state: [0; 32],
    };
    report.divergence = replay(&pool, &mut registry, &wal, &records, from, |replayed| {
        report.rounds += 1;
        report.messages += replayed.messages as u64;
        report.to_height = replayed.height;
        round = LastRound { height: replayed.height, time: replayed.time };
        if options.progress_every > 0 && report.rounds.is_multiple_of(options.progress_every) {
            progress(&VerifyProgress {
                height: replayed.height,
                last_height,
                rounds: report.rounds,
                messages: report.messages,
                elapsed: started.elapsed(),
            });
        }
    })?;
    report.final_state = state_digest(&registry);
    report.elapsed = started.elapsed();
    Ok(ReplayedState { report, registry, executor, round, pool })
}
