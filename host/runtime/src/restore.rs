//! Rolling a state directory back to a kept checkpoint: the checkpoints
//! after it are deleted, then the log after it is cut. In that order, a
//! crash part way leaves either the old history whole (the log still
//! replays past the checkpoint) or the rollback done; never a mixture.

use std::path::Path;

use checkpoint::StateDir;

use crate::error::HostError;
use crate::wal::Wal;

/// What a rollback discards (or discarded).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct RestorePlan {
    /// The checkpoint rolled back to.
    pub height: u64,
    /// The last round before the rollback.
    pub last_height: u64,
    /// The checkpoints after `height`.
    pub discarded_checkpoints: Vec<u64>,
    /// The logged rounds after `height`: their updates are lost.
    pub discarded_rounds: u64,
}

/// Plan (and with `apply`, carry out) rolling the state directory at
/// `path` back to its checkpoint `height`. Takes the directory's lock.
pub fn restore(path: &Path, height: u64, apply: bool) -> Result<RestorePlan, HostError> {
    let dir = StateDir::open(path)?;
    let heights = dir.heights()?;
    if !heights.contains(&height) {
        return Err(HostError::Operation(format!(
            "there is no checkpoint {height} to restore; kept: {}",
            heights.iter().map(u64::to_string).collect::<Vec<_>>().join(", ")
        )));
    }
    let (mut wal, found) = Wal::open_with(dir.fs().clone(), &dir.wal_dir(), true, u64::MAX)?;
    let newest = heights.last().copied().unwrap_or(height);
    let last_height = found.records.last().map_or(newest, |r| r.height.max(newest));
    let plan = RestorePlan {
        height,
        last_height,
        discarded_checkpoints: heights.iter().copied().filter(|h| *h > height).collect(),
        discarded_rounds: found.records.iter().filter(|r| r.height > height).count() as u64,
    };
    if apply {
        dir.discard_after(height)?;
        wal.truncate_after(height, &found.records)?;
    }
    Ok(plan)
}
