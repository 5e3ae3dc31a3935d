//! Shipping sealed write-ahead log segments, and fetching those a restore
//! replays.
//!
//! Segments are `seg-<first height:016x>.log` in the state directory's
//! `log/`. Every segment but the newest is sealed: the log never appends
//! to it again, so it ships once, as `log/<its name>`. The newest is still
//! being written; what it holds is the store's recovery point objective.

use std::path::{Path, PathBuf};

use bytes::Bytes;
use canister_host::wal::{segment_first_height, segment_name};
use object_store::path::Path as ObjectPath;

use crate::error::ReplicationError;
use crate::remote::Remote;

/// Where segment `name` lives in the store.
pub(crate) fn object(name: &str) -> ObjectPath {
    ObjectPath::from(format!("log/{name}"))
}

/// The segments in `wal_dir`, by first height.
pub(crate) fn local_segments(wal_dir: &Path) -> Result<Vec<(u64, PathBuf)>, ReplicationError> {
    let mut segments = Vec::new();
    let entries = match std::fs::read_dir(wal_dir) {
        Ok(entries) => entries,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(segments),
        Err(e) => return Err(ReplicationError::io("list", wal_dir)(e)),
    };
    for entry in entries {
        let entry = entry.map_err(ReplicationError::io("list", wal_dir))?;
        if let Some(height) = entry.file_name().to_str().and_then(segment_first_height) {
            segments.push((height, entry.path()));
        }
    }
    segments.sort();
    Ok(segments)
}

impl Remote {
    /// Ship the sealed segment at `path`, unless the store has it. Returns
    /// the bytes uploaded. A segment the log pruned meanwhile is skipped
    /// (a newer checkpoint covers it).
    pub fn ship_segment(&self, path: &Path) -> Result<u64, ReplicationError> {
        let name = path.file_name().and_then(|n| n.to_str()).filter(|n| segment_first_height(n).is_some());
        let name = name.ok_or_else(|| ReplicationError::BadCheckpoint {
            path: path.to_path_buf(),
            reason: "not a log segment (seg-<height>.log)".into(),
        })?;
        let object = object(name);
        if self.known_objects().contains(object.as_ref()) {
            return Ok(0);
        }
        let bytes = match std::fs::read(path) {
            Ok(bytes) => bytes,
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(0),
            Err(e) => return Err(ReplicationError::io("read", path)(e)),
        };
        let len = bytes.len() as u64;
        Ok(if self.put_once(&object, Bytes::from(bytes))? { len } else { 0 })
    }

    /// The shipped segments, by first height; with `after`, only those
    /// starting after that height (listing only those).
    pub(crate) fn remote_segments(&self, after: Option<u64>) -> Result<Vec<(u64, String)>, ReplicationError> {
        let prefix = ObjectPath::from("log");
        let listed = match after {
            Some(first) => self.list_after(&prefix, &object(&segment_name(first)))?,
            None => self.list(&prefix)?,
        };
        let mut segments: Vec<(u64, String)> = listed
            .into_iter()
            .filter_map(|o| {
                let name = o.filename()?.to_string();
                Some((segment_first_height(&name)?, name))
            })
            .collect();
        segments.sort();
        Ok(segments)
    }

    /// Download the shipped segments after the one starting at `first`
    /// into `wal_dir`; returns how many there were.
    pub(crate) fn fetch_segments_after(&self, first: u64, wal_dir: &Path) -> Result<usize, ReplicationError> {
        let newer: Vec<(u64, String)> =
            self.remote_segments(Some(first))?.into_iter().filter(|(f, _)| *f > first).collect();
        for (_, name) in &newer {
            self.fetch_segment(name, wal_dir)?;
        }
        Ok(newer.len())
    }

    /// Download segment `name` into `wal_dir`; returns its size.
    fn fetch_segment(&self, name: &str, wal_dir: &Path) -> Result<u64, ReplicationError> {
        let data = self.get(&object(name))?;
        let path = wal_dir.join(name);
        std::fs::write(&path, &data).map_err(ReplicationError::io("write", &path))?;
        std::fs::File::open(&path).and_then(|f| f.sync_all()).map_err(ReplicationError::io("sync", &path))?;
        Ok(data.len() as u64)
    }

    /// Download the shipped segments a restore of checkpoint `height`
    /// replays into `wal_dir`: from the one holding `height + 1` on.
    /// Returns the first height fetched and the bytes, or `None` when no
    /// shipped segment continues the checkpoint (the log after it was
    /// never shipped, or only later parts were).
    pub(crate) fn fetch_log_after(&self, height: u64, wal_dir: &Path) -> Result<Option<(u64, u64)>, ReplicationError> {
        let segments = self.remote_segments(None)?;
        let Some(start) = segments.iter().rposition(|(first, _)| *first <= height + 1) else {
            return Ok(None);
        };
        std::fs::create_dir_all(wal_dir).map_err(ReplicationError::io("create", wal_dir))?;
        let mut bytes = 0;
        for (_, name) in &segments[start..] {
            bytes += self.fetch_segment(name, wal_dir)?;
        }
        Ok(Some((segments[start].0, bytes)))
    }
}
