//! A whole state directory: shipping what the store lacks, and restoring
//! a checkpoint with the log after it.

use std::path::{Path, PathBuf};

use checkpoint::layout::{CHECKPOINTS_DIR, MANIFEST_FILE, WAL_DIR, parse_checkpoint_dir_name};

use crate::error::ReplicationError;
use crate::log::local_segments;
use crate::names;
use crate::remote::Remote;
use crate::restore::Restored;

/// What one pass over a state directory shipped.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct ShippedDir {
    /// Heights of the checkpoints shipped now.
    pub checkpoints: Vec<u64>,
    /// First heights of the sealed segments shipped now.
    pub segments: Vec<u64>,
    /// Bytes uploaded.
    pub bytes: u64,
    /// The last round in the sealed segments (all in the store after the
    /// pass): the round before the active segment's first.
    pub logged_through: Option<u64>,
    /// The newest local checkpoint, in the store after the pass.
    pub checkpoint_through: Option<u64>,
}

/// The published checkpoints of `state_dir`, by height.
pub(crate) fn local_checkpoints(state_dir: &Path) -> Result<Vec<(u64, PathBuf)>, ReplicationError> {
    let checkpoints = state_dir.join(CHECKPOINTS_DIR);
    let mut dirs: Vec<(u64, PathBuf)> = match std::fs::read_dir(&checkpoints) {
        Ok(entries) => entries
            .flatten()
            .filter_map(|e| Some((parse_checkpoint_dir_name(e.file_name().to_str()?)?, e.path())))
            .collect(),
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => Vec::new(),
        Err(e) => return Err(ReplicationError::io("list", &checkpoints)(e)),
    };
    dirs.sort();
    Ok(dirs)
}

impl Remote {
    /// Ship what the state directory `state_dir` holds and the store lacks:
    /// its published checkpoints, oldest first, then its sealed log
    /// segments. Safe beside a running host: checkpoints are immutable once
    /// published, and so are segments once sealed; ones pruned meanwhile
    /// are skipped.
    pub fn ship_state_dir(&self, state_dir: &Path) -> Result<ShippedDir, ReplicationError> {
        self.ship_state_dir_with(state_dir, &mut || {})
    }

    /// [`Remote::ship_state_dir`], calling `before_log` between shipping
    /// the checkpoints and listing the log: sealing the log there makes
    /// the shipped log reach every checkpoint shipped with it, so a
    /// follower can replay up to them rather than download them.
    pub fn ship_state_dir_with(
        &self,
        state_dir: &Path,
        before_log: &mut dyn FnMut(),
    ) -> Result<ShippedDir, ReplicationError> {
        let mut shipped = ShippedDir::default();
        let floor = self.floor().unwrap_or(0);
        let checkpoints: Vec<(u64, PathBuf)> =
            local_checkpoints(state_dir)?.into_iter().filter(|(height, _)| *height >= floor).collect();
        for (height, dir) in &checkpoints {
            let height = *height;
            match self.ship_checkpoint(dir) {
                Ok(s) if !s.already_shipped => {
                    shipped.checkpoints.push(height);
                    shipped.bytes += s.uploaded_bytes;
                }
                Ok(_) => {}
                // Pruned while we looked: a newer checkpoint replaces it.
                Err(ReplicationError::Io { source, .. })
                    if source.kind() == std::io::ErrorKind::NotFound && !dir.join(MANIFEST_FILE).exists() => {}
                Err(e) => return Err(e),
            }
        }
        shipped.checkpoint_through = checkpoints.last().map(|(height, _)| *height);
        before_log();
        let segments = local_segments(&state_dir.join(WAL_DIR))?;
        let local: std::collections::HashSet<String> = segments
            .iter()
            .filter_map(|(_, p)| Some(crate::log::object(p.file_name()?.to_str()?).to_string()))
            .chain(checkpoints.iter().map(|(h, _)| names::manifest(*h).to_string()))
            .collect();
        // What the host pruned needs no remembering.
        self.known_objects().retain(|name| local.contains(name));
        let sealed = segments.len().saturating_sub(1);
        shipped.logged_through = segments.last().and_then(|(active_first, _)| active_first.checked_sub(1));
        for (first, path) in &segments[..sealed] {
            let bytes = self.ship_segment(path)?;
            if bytes > 0 {
                shipped.segments.push(*first);
                shipped.bytes += bytes;
            }
        }
        Ok(shipped)
    }

    /// Restore checkpoint `height` (the newest shipped when `None`) into
    /// the fresh state directory `state_dir`, with the shipped log after
    /// it. A host opened on the directory replays that log, checking each
    /// record's chain, and continues from the last shipped round.
    pub fn restore(&self, height: Option<u64>, state_dir: &Path) -> Result<Restored, ReplicationError> {
        let mut restored = self.restore_checkpoint(height, state_dir)?;
        if let Some((first, bytes)) = self.fetch_log_after(restored.height, &state_dir.join(WAL_DIR))? {
            restored.log_from = Some(first);
            restored.downloaded_bytes += bytes;
        }
        Ok(restored)
    }
}
