//! Restoring a shipped checkpoint into a state directory.

use std::os::unix::fs::FileExt;
use std::path::Path;

use checkpoint::Manifest;
use checkpoint::hash::{CHUNK_SIZE, chunk_hashes_of};
use checkpoint::layout::{CHECKPOINTS_DIR, MANIFEST_FILE, TMP_DIR, checkpoint_dir_name};

use crate::error::ReplicationError;
use crate::names;
use crate::remote::Remote;

/// What a restore wrote.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Restored {
    /// The checkpoint's height.
    pub height: u64,
    /// Files written.
    pub files: usize,
    /// Chunks downloaded (holes are not).
    pub downloaded: u64,
    /// Bytes downloaded, the manifest (and log) included.
    pub downloaded_bytes: u64,
    /// With [`Remote::restore`]: the first height of the log fetched after
    /// the checkpoint (`None`: no shipped log continues it).
    pub log_from: Option<u64>,
}

impl Remote {
    /// Write checkpoint `height` (the newest in the store when `None`) into
    /// the state directory `state_dir` as a published checkpoint, every
    /// chunk checked against the manifest. A host opened on the directory
    /// then starts from it. Nothing is published unless every file is
    /// complete and synced.
    pub fn restore_checkpoint(&self, height: Option<u64>, state_dir: &Path) -> Result<Restored, ReplicationError> {
        let height = match height {
            Some(h) => h,
            None => *self.heights()?.last().ok_or(ReplicationError::Missing { object: "checkpoints/".into() })?,
        };
        let name = checkpoint_dir_name(height);
        let checkpoints = state_dir.join(CHECKPOINTS_DIR);
        let target = checkpoints.join(&name);
        if target.exists() {
            return Err(ReplicationError::Exists { dir: state_dir.to_path_buf(), height });
        }
        let manifest_object = names::manifest(height);
        let bytes = self.get(&manifest_object)?;
        let corrupt = |reason: String| ReplicationError::Corrupt { object: manifest_object.to_string(), reason };
        let manifest = Manifest::decode(&bytes).map_err(corrupt)?;
        if manifest.height() != height {
            return Err(corrupt(format!("it is the manifest of height {}", manifest.height())));
        }
        let staging = state_dir.join(TMP_DIR).join(format!("restore-{name}"));
        if staging.exists() {
            std::fs::remove_dir_all(&staging).map_err(ReplicationError::io("remove", &staging))?;
        }
        let mut restored = Restored {
            height,
            files: manifest.files().len(),
            downloaded_bytes: bytes.len() as u64,
            ..Restored::default()
        };
        for entry in manifest.files() {
            let path = staging.join(&entry.path);
            if let Some(parent) = path.parent() {
                std::fs::create_dir_all(parent).map_err(ReplicationError::io("create", parent))?;
            }
            let file = std::fs::File::create(&path).map_err(ReplicationError::io("create", &path))?;
            file.set_len(entry.size).map_err(ReplicationError::io("size", &path))?;
            for (i, hash) in entry.chunks.iter().enumerate() {
                let offset = i as u64 * CHUNK_SIZE;
                let len = (entry.size - offset).min(CHUNK_SIZE);
                if names::is_zero_chunk(hash, len) {
                    continue;
                }
                let object = names::chunk(hash);
                let chunk = self.get(&object)?;
                if chunk.len() as u64 != len || chunk_hashes_of(&chunk).first() != Some(hash) {
                    let reason = format!("{} bytes that do not hash to its name (wanted {len} bytes)", chunk.len());
                    return Err(ReplicationError::Corrupt { object: object.to_string(), reason });
                }
                file.write_all_at(&chunk, offset).map_err(ReplicationError::io("write", &path))?;
                restored.downloaded += 1;
                restored.downloaded_bytes += len;
            }
            file.sync_all().map_err(ReplicationError::io("sync", &path))?;
        }
        let manifest_path = staging.join(MANIFEST_FILE);
        std::fs::write(&manifest_path, &bytes).map_err(ReplicationError::io("write", &manifest_path))?;
        sync_path(&manifest_path)?;
        sync_dirs(&staging)?;
        std::fs::create_dir_all(&checkpoints).map_err(ReplicationError::io("create", &checkpoints))?;
        std::fs::rename(&staging, &target).map_err(ReplicationError::io("publish", &target))?;
        sync_path(&checkpoints)?;
        Ok(restored)
    }
}

/// `fsync` a file or directory.
fn sync_path(path: &Path) -> Result<(), ReplicationError> {
    std::fs::File::open(path).and_then(|f| f.sync_all()).map_err(ReplicationError::io("sync", path))
}

/// `fsync` `dir` and every directory below it, so the files' names are
/// durable before the checkpoint is published.
fn sync_dirs(dir: &Path) -> Result<(), ReplicationError> {
    for entry in std::fs::read_dir(dir).map_err(ReplicationError::io("list", dir))? {
        let entry = entry.map_err(ReplicationError::io("list", dir))?;
        if entry.file_type().map_err(ReplicationError::io("stat", entry.path()))?.is_dir() {
            sync_dirs(&entry.path())?;
        }
    }
    sync_path(dir)
}
