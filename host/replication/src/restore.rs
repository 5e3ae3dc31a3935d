//! Restoring a shipped checkpoint into a state directory.

use std::collections::HashMap;
use std::os::unix::fs::FileExt;
use std::path::{Path, PathBuf};

use checkpoint::hash::{CHUNK_SIZE, chunk_hashes_of};
use checkpoint::layout::{CHECKPOINTS_DIR, MANIFEST_FILE, TMP_DIR, checkpoint_dir_name};
use checkpoint::{Hash, Manifest};

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
    /// Chunks copied from local files instead (a chunk the checkpoint
    /// holds more than once, or one a seed checkpoint has).
    pub reused: u64,
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
        self.restore_checkpoint_seeded(height, state_dir, &[])
    }

    /// [`Remote::restore_checkpoint`], taking what the published
    /// checkpoint directories `seeds` hold (an older checkpoint of the
    /// same state, say) from there rather than downloading it: a file
    /// they hold whole is hard-linked (as checkpoints link unchanged
    /// files), and a chunk they hold is copied, checked against the
    /// manifest like a downloaded one (and downloaded if it does not
    /// match).
    pub fn restore_checkpoint_seeded(
        &self,
        height: Option<u64>,
        state_dir: &Path,
        seeds: &[PathBuf],
    ) -> Result<Restored, ReplicationError> {
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
        let mut local = LocalChunks::default();
        for seed in seeds {
            local.add_checkpoint(seed);
        }
        for entry in manifest.files() {
            let path = staging.join(&entry.path);
            if let Some(parent) = path.parent() {
                std::fs::create_dir_all(parent).map_err(ReplicationError::io("create", parent))?;
            }
            if local.link_whole(entry.size, &entry.chunks, &path) {
                restored.reused += entry.chunks.len() as u64;
                continue;
            }
            let file = std::fs::File::create(&path).map_err(ReplicationError::io("create", &path))?;
            file.set_len(entry.size).map_err(ReplicationError::io("size", &path))?;
            for (i, hash) in entry.chunks.iter().enumerate() {
                let offset = i as u64 * CHUNK_SIZE;
                let len = (entry.size - offset).min(CHUNK_SIZE);
                if names::is_zero_chunk(hash, len) {
                    continue;
                }
                let chunk = match local.read(hash, len) {
                    Some(chunk) => {
                        restored.reused += 1;
                        chunk
                    }
                    None => {
                        let object = names::chunk(hash);
                        let chunk = self.get(&object)?.to_vec();
                        if chunk.len() as u64 != len || chunk_hashes_of(&chunk).first() != Some(hash) {
                            let reason =
                                format!("{} bytes that do not hash to its name (wanted {len} bytes)", chunk.len());
                            return Err(ReplicationError::Corrupt { object: object.to_string(), reason });
                        }
                        restored.downloaded += 1;
                        restored.downloaded_bytes += len;
                        chunk
                    }
                };
                file.write_all_at(&chunk, offset).map_err(ReplicationError::io("write", &path))?;
                local.add(hash, &path, offset, len);
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

/// Where chunks already on the local disk are, by hash: one place each;
/// and the seeds' files, by size and chunks, to link whole.
#[derive(Default)]
struct LocalChunks {
    files: Vec<PathBuf>,
    chunks: HashMap<Hash, (usize, u64, u64)>,
    whole: HashMap<(u64, Vec<Hash>), PathBuf>,
}

impl LocalChunks {
    /// Every chunk of the published checkpoint in `dir` (nothing, if its
    /// manifest cannot be read: a seed is only a shortcut).
    fn add_checkpoint(&mut self, dir: &Path) {
        let Some(manifest) = std::fs::read(dir.join(MANIFEST_FILE)).ok().and_then(|b| Manifest::decode(&b).ok()) else {
            return;
        };
        for entry in manifest.files() {
            let path = dir.join(&entry.path);
            for (i, hash) in entry.chunks.iter().enumerate() {
                let offset = i as u64 * CHUNK_SIZE;
                self.add(hash, &path, offset, (entry.size - offset).min(CHUNK_SIZE));
            }
            self.whole.insert((entry.size, entry.chunks.clone()), path);
        }
    }

    /// Make `target` the seed file holding exactly `size` bytes of
    /// `chunks`, by a hard link (published checkpoint files never change,
    /// and the checkpoint layer links them between checkpoints the same
    /// way). Returns whether there was one.
    fn link_whole(&self, size: u64, chunks: &[Hash], target: &Path) -> bool {
        let Some(seed) = self.whole.get(&(size, chunks.to_vec())) else { return false };
        std::fs::hard_link(seed, target).is_ok()
    }

    /// Chunk `hash` is `len` bytes at `offset` in `path`.
    fn add(&mut self, hash: &Hash, path: &Path, offset: u64, len: u64) {
        if self.chunks.contains_key(hash) {
            return;
        }
        if self.files.last().is_none_or(|last| last != path) {
            self.files.push(path.to_path_buf());
        }
        self.chunks.insert(*hash, (self.files.len() - 1, offset, len));
    }

    /// Chunk `hash` of `len` bytes, read from where it is and checked
    /// (`None`: not here, or not as the manifest says).
    fn read(&self, hash: &Hash, len: u64) -> Option<Vec<u8>> {
        let (file, offset, stored_len) = *self.chunks.get(hash)?;
        if stored_len != len {
            return None;
        }
        let mut chunk = vec![0; len as usize];
        std::fs::File::open(&self.files[file]).ok()?.read_exact_at(&mut chunk, offset).ok()?;
        (chunk_hashes_of(&chunk).first() == Some(hash)).then_some(chunk)
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
