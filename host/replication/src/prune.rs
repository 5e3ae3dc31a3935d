//! Keeping a store to a bounded size: the newest checkpoints, the log a
//! restore of the oldest of them replays, and the chunks they name.

use std::collections::HashSet;

use checkpoint::{Hash, Manifest};
use object_store::path::Path as ObjectPath;

use crate::error::ReplicationError;
use crate::log::object as segment_object;
use crate::names;
use crate::remote::Remote;

/// What a pruning removed from the store.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Pruned {
    /// Heights of the checkpoints removed.
    pub checkpoints: Vec<u64>,
    /// Log segments removed.
    pub segments: u64,
    /// Chunks removed.
    pub chunks: u64,
    /// Bytes removed.
    pub bytes: u64,
}

impl Remote {
    /// Remove all but the newest `keep` (at least 1) checkpoints, the
    /// segments holding only rounds at or below the oldest one kept, and
    /// the chunks only removed checkpoints name. Each checkpoint's
    /// manifest goes first, so a restore never starts from a checkpoint
    /// losing its chunks. Costs what is removed, plus reading the kept
    /// manifests: the store is never listed whole.
    pub fn prune(&self, keep: usize) -> Result<Pruned, ReplicationError> {
        let heights = self.heights()?;
        let mut pruned = Pruned::default();
        let Some(split) = heights.len().checked_sub(keep.max(1)).filter(|s| *s > 0) else {
            return Ok(pruned);
        };
        let (doomed, kept) = heights.split_at(split);
        self.raise_floor(kept[0]);
        let mut orphans: HashSet<Hash> = HashSet::new();
        for height in doomed {
            let object = names::manifest(*height);
            orphans.extend(self.manifest_chunks(&object)?);
            self.delete(&object)?;
            pruned.checkpoints.push(*height);
        }
        for height in kept {
            for hash in self.manifest_chunks(&names::manifest(*height))? {
                orphans.remove(&hash);
            }
        }
        for hash in &orphans {
            let object = names::chunk(hash);
            if let Some(size) = self.size(&object)? {
                self.delete(&object)?;
                pruned.chunks += 1;
                pruned.bytes += size;
            }
            self.forget_chunk(hash);
        }
        // The log from the segment holding the round after the oldest kept
        // checkpoint on is what a restore of it replays.
        let oldest = kept[0];
        let segments = self.remote_segments(None)?;
        for pair in segments.windows(2) {
            let ((_, name), (next_first, _)) = (&pair[0], &pair[1]);
            if *next_first <= oldest + 1 {
                pruned.bytes += self.size(&segment_object(name))?.unwrap_or(0);
                self.delete(&segment_object(name))?;
                pruned.segments += 1;
            }
        }
        Ok(pruned)
    }

    /// The chunks the manifest `object` names (none if it is gone).
    fn manifest_chunks(&self, object: &ObjectPath) -> Result<Vec<Hash>, ReplicationError> {
        let bytes = match self.get(object) {
            Ok(bytes) => bytes,
            Err(ReplicationError::Missing { .. }) => return Ok(Vec::new()),
            Err(e) => return Err(e),
        };
        let manifest = Manifest::decode(&bytes)
            .map_err(|reason| ReplicationError::Corrupt { object: object.to_string(), reason })?;
        Ok(manifest.files().iter().flat_map(|f| f.chunks.iter().copied()).collect())
    }
}
