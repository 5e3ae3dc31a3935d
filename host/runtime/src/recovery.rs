//! Opening a state directory: the newest checkpoint that verifies, then the
//! write-ahead log replayed after it, insisting on the recorded digests.

use std::sync::Arc;

use checkpoint::StateDir;
use embedder::Executor;

use crate::config::HostConfig;
use crate::error::HostError;
use crate::persist::{self, HostMeta, LoadedState, Published};
use crate::registry::Registry;
use crate::replay::replay;
use crate::round::WorkerPool;
use crate::view::LastRound;
use crate::wal::Wal;

/// What `Host::open` found and did.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct RecoveryReport {
    /// The checkpoint loaded (0: none).
    pub checkpoint: u64,
    /// Newer checkpoints that failed verification and were skipped.
    pub skipped_checkpoints: Vec<u64>,
    /// Log rounds replayed after it.
    pub replayed_rounds: u64,
    /// Bytes of a torn log tail that were cut off.
    pub truncated_log_bytes: u64,
}

/// The state a host resumes from.
pub(crate) struct RecoveredState {
    pub(crate) registry: Registry,
    pub(crate) published: Published,
    pub(crate) wal: Wal,
    pub(crate) pool: WorkerPool,
    /// The last round (replayed or checkpointed).
    pub(crate) round: LastRound,
    /// Height of the checkpoint loaded.
    pub(crate) checkpointed: u64,
    pub(crate) report: RecoveryReport,
}

/// Load the newest checkpoint of `dir` that verifies and replay the log
/// after it. A log that does not reproduce its recorded digests is an error:
/// this engine would not continue the same history.
pub(crate) fn recover(
    dir: &StateDir,
    config: &HostConfig,
    executor: &Arc<Executor>,
) -> Result<RecoveredState, HostError> {
    let mut report = RecoveryReport::default();
    let LoadedState { mut registry, meta, published } = match dir.newest(config.verification)? {
        Some(loaded) => {
            for (height, error) in &loaded.skipped {
                tracing::warn!(height, %error, "a checkpoint failed verification; falling back to an older one");
                report.skipped_checkpoints.push(*height);
            }
            persist::load(&loaded.checkpoint, executor, &Default::default())?
        }
        None => {
            LoadedState { registry: Registry::default(), meta: HostMeta::new(0, 0, 0), published: Published::default() }
        }
    };
    report.checkpoint = meta.height;
    let (mut wal, found) = Wal::open_with(dir.fs().clone(), &dir.wal_dir(), config.fsync, config.wal_segment_bytes)?;
    report.truncated_log_bytes = found.truncated.as_ref().map_or(0, |t| t.bytes);
    let pool = WorkerPool::new(config.workers, executor.clone(), Arc::default());
    let mut round = LastRound { height: meta.height, time: meta.time };
    let divergence = replay(&pool, &mut registry, &wal, &found.records, meta.height, |r| {
        round = LastRound { height: r.height, time: r.time };
        report.replayed_rounds += 1;
    })?;
    if let Some(divergence) = divergence {
        return Err(HostError::ReplayDiverged(divergence));
    }
    wal.continue_after(round.height);
    if report.replayed_rounds > 0 || !report.skipped_checkpoints.is_empty() {
        tracing::info!(checkpoint = meta.height, replayed = report.replayed_rounds, "recovered from the log");
    }
    Ok(RecoveredState { registry, published, wal, pool, round, checkpointed: meta.height, report })
}
