//! Opening, listing, loading, verifying and pruning checkpoints.

use std::collections::HashMap;
use std::io;
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex};

use crate::checkpoint::Checkpoint;
use crate::chunks::ChunkHasher;
use crate::error::{Error, Result};
use crate::fs::{EntryKind, Fs, LockGuard, read_all};
use crate::layout::*;
use crate::manifest::Manifest;
use crate::real_fs::RealFs;

/// How thoroughly to check a checkpoint when loading it.
#[derive(Copy, Clone, Debug, PartialEq, Eq)]
pub enum Verification {
    /// Manifest, file list and sizes.
    Structure,
    /// Also rehash every chunk of every file (holes are free).
    Full,
}

/// A checkpoint that loaded, and the newer ones that did not.
#[derive(Debug)]
pub struct Loaded {
    /// The newest checkpoint that validated.
    pub checkpoint: Checkpoint,
    /// Newer checkpoints that failed validation, newest first.
    pub skipped: Vec<(u64, Error)>,
}

/// An open, locked state directory.
pub struct StateDir {
    root: PathBuf,
    fs: Arc<dyn Fs>,
    _lock: LockGuard,
    manifests: Mutex<HashMap<u64, Arc<Manifest>>>,
    read_only: bool,
}

impl std::fmt::Debug for StateDir {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("StateDir").field("root", &self.root).finish()
    }
}

impl StateDir {
    /// Open (creating if needed) the state directory at `root` on the real
    /// filesystem.
    pub fn open(root: &Path) -> Result<StateDir> {
        if !root.exists() {
            std::fs::create_dir_all(root).map_err(Error::io("create state directory", root))?;
        }
        StateDir::open_with(root, Arc::new(RealFs))
    }

    /// Open `root` (which must exist) through `fs`: take the lock, create the
    /// subdirectories, and wipe `tmp/`.
    pub fn open_with(root: &Path, fs: Arc<dyn Fs>) -> Result<StateDir> {
        let lock_path = root.join(LOCK_FILE);
        let (lock, mut lock_file) = match fs.lock(&lock_path) {
            Ok(held) => held,
            Err(e) if e.kind() == io::ErrorKind::WouldBlock => {
                let pid = read_all(fs.as_ref(), &lock_path)
                    .ok()
                    .and_then(|b| String::from_utf8(b).ok())
                    .and_then(|s| s.trim().parse().ok());
                return Err(Error::Locked { dir: root.to_path_buf(), pid });
            }
            Err(e) => return Err(Error::io("lock", &lock_path)(e)),
        };
        let pid = format!("{}\n", std::process::id());
        lock_file.set_len(0).map_err(Error::io("write pid to", &lock_path))?;
        lock_file.write_at(0, pid.as_bytes()).map_err(Error::io("write pid to", &lock_path))?;

        let mut created = false;
        for sub in [CHECKPOINTS_DIR, WAL_DIR, TMP_DIR] {
            let path = root.join(sub);
            match fs.stat(&path) {
                Ok(stat) if stat.kind == EntryKind::Dir => {}
                Ok(_) => return Err(Error::ForeignEntry { path }),
                Err(e) if e.kind() == io::ErrorKind::NotFound => {
                    fs.create_dir(&path).map_err(Error::io("create", &path))?;
                    created = true;
                }
                Err(e) => return Err(Error::io("stat", &path)(e)),
            }
        }
        if created {
            fs.sync_dir(root).map_err(Error::io("sync", root))?;
        }
        let dir = StateDir {
            root: root.to_path_buf(),
            fs,
            _lock: lock,
            manifests: Mutex::new(HashMap::new()),
            read_only: false,
        };
        dir.wipe_tmp()?;
        Ok(dir)
    }

    /// Open `root` only to read checkpoints: no lock is taken and nothing is
    /// changed, so it works beside the process that owns the directory
    /// (replay verification). Published checkpoints are immutable; one
    /// pruned while being read fails the read loudly.
    pub fn open_read_only(root: &Path) -> Result<StateDir> {
        let checkpoints = root.join(CHECKPOINTS_DIR);
        if !checkpoints.is_dir() {
            let source = io::Error::new(io::ErrorKind::NotFound, "not a state directory (no checkpoints/)");
            return Err(Error::Io { op: "open", path: root.to_path_buf(), source });
        }
        Ok(StateDir {
            root: root.to_path_buf(),
            fs: Arc::new(RealFs),
            _lock: Box::new(()),
            manifests: Mutex::new(HashMap::new()),
            read_only: true,
        })
    }

    pub(crate) fn check_writable(&self) -> Result<()> {
        if self.read_only { Err(Error::ReadOnly { dir: self.root.clone() }) } else { Ok(()) }
    }

    fn wipe_tmp(&self) -> Result<()> {
        let tmp = self.tmp_dir();
        for entry in self.fs.list_dir(&tmp).map_err(Error::io("list", &tmp))? {
            let path = tmp.join(&entry.name);
            let removed = match entry.kind {
                EntryKind::Dir => self.fs.remove_dir_all(&path),
                _ => self.fs.remove_file(&path),
            };
            removed.map_err(Error::io("remove leftover", &path))?;
            tracing::info!(path = %path.display(), "removed leftover of an interrupted checkpoint");
        }
        Ok(())
    }

    /// The state directory's path.
    pub fn root(&self) -> &Path {
        &self.root
    }

    /// The filesystem it uses.
    pub fn fs(&self) -> &Arc<dyn Fs> {
        &self.fs
    }

    /// Directory reserved for the host's write-ahead log.
    pub fn wal_dir(&self) -> PathBuf {
        self.root.join(WAL_DIR)
    }

    pub(crate) fn tmp_dir(&self) -> PathBuf {
        self.root.join(TMP_DIR)
    }

    pub(crate) fn checkpoints_dir(&self) -> PathBuf {
        self.root.join(CHECKPOINTS_DIR)
    }

    /// The directory of checkpoint `height`.
    pub fn checkpoint_dir(&self, height: u64) -> PathBuf {
        self.checkpoints_dir().join(checkpoint_dir_name(height))
    }

    /// The published checkpoint file at `path`, if it is one: how a page
    /// map's base file is named as the source of the next checkpoint.
    pub fn file_ref_for(&self, path: &Path) -> Option<crate::FileRef> {
        let rel = path.strip_prefix(self.checkpoints_dir()).ok()?;
        let mut components = rel.components();
        let height = parse_checkpoint_dir_name(components.next()?.as_os_str().to_str()?)?;
        let file = components.as_path().to_str()?.to_string();
        validate_rel_path(&file).ok()?;
        Some(crate::FileRef { height, path: file })
    }

    /// Heights of the published checkpoints, ascending. Anything else in
    /// `checkpoints/` is an error: it is never guessed at.
    pub fn heights(&self) -> Result<Vec<u64>> {
        let dir = self.checkpoints_dir();
        let mut heights = Vec::new();
        for entry in self.fs.list_dir(&dir).map_err(Error::io("list", &dir))? {
            match parse_checkpoint_dir_name(&entry.name) {
                Some(h) if entry.kind == EntryKind::Dir => heights.push(h),
                _ => return Err(Error::ForeignEntry { path: dir.join(&entry.name) }),
            }
        }
        heights.sort_unstable();
        Ok(heights)
    }

    /// The newest checkpoint that validates, with the newer ones that did
    /// not. `Ok(None)` only when there are no checkpoints at all.
    pub fn newest(&self, verification: Verification) -> Result<Option<Loaded>> {
        let heights = self.heights()?;
        let mut skipped = Vec::new();
        for &height in heights.iter().rev() {
            match self.load(height, verification) {
                Ok(checkpoint) => return Ok(Some(Loaded { checkpoint, skipped })),
                Err(error) => {
                    tracing::warn!(height = format!("{height:016x}"), %error, "checkpoint failed validation; trying an older one");
                    skipped.push((height, error));
                }
            }
        }
        if skipped.is_empty() { Ok(None) } else { Err(Error::NoValidCheckpoint { failures: skipped }) }
    }

    /// Load checkpoint `height`, checking it as `verification` says.
    pub fn load(&self, height: u64, verification: Verification) -> Result<Checkpoint> {
        let dir = self.checkpoint_dir(height);
        match self.fs.stat(&dir) {
            Ok(stat) if stat.kind == EntryKind::Dir => {}
            Ok(_) => return Err(Error::ForeignEntry { path: dir }),
            Err(e) if e.kind() == io::ErrorKind::NotFound => return Err(Error::NotFound { height }),
            Err(e) => return Err(Error::io("stat", &dir)(e)),
        }
        let manifest = self.read_manifest(height)?;
        self.check_files(height, &dir, &manifest)?;
        if verification == Verification::Full {
            self.rehash(height, &dir, &manifest)?;
        }
        self.manifests.lock().unwrap_or_else(|e| e.into_inner()).insert(height, manifest.clone());
        Ok(Checkpoint::new(height, dir, manifest, self.fs.clone()))
    }

    /// Rehash every file of checkpoint `height`; the error names the first
    /// file and chunk that do not match.
    pub fn verify(&self, height: u64) -> Result<Checkpoint> {
        self.load(height, Verification::Full)
    }

    /// The manifest of a published checkpoint, cached after the first read.
    pub(crate) fn manifest(&self, height: u64) -> Result<Arc<Manifest>> {
        if let Some(m) = self.manifests.lock().unwrap_or_else(|e| e.into_inner()).get(&height) {
            return Ok(m.clone());
        }
        let m = self.read_manifest(height)?;
        self.manifests.lock().unwrap_or_else(|e| e.into_inner()).insert(height, m.clone());
        Ok(m)
    }

    pub(crate) fn remember_manifest(&self, manifest: Arc<Manifest>) {
        self.manifests.lock().unwrap_or_else(|e| e.into_inner()).insert(manifest.height(), manifest);
    }

    fn read_manifest(&self, height: u64) -> Result<Arc<Manifest>> {
        let path = self.checkpoint_dir(height).join(MANIFEST_FILE);
        let bytes = match read_all(self.fs.as_ref(), &path) {
            Ok(bytes) => bytes,
            Err(e) if e.kind() == io::ErrorKind::NotFound => {
                return Err(Error::ManifestCorrupt { path, reason: "the manifest is missing".into() });
            }
            Err(e) => return Err(Error::io("read", &path)(e)),
        };
        let manifest =
            Manifest::decode(&bytes).map_err(|reason| Error::ManifestCorrupt { path: path.clone(), reason })?;
        if manifest.height() != height {
            let reason = format!("it describes height {:016x}, not its directory's", manifest.height());
            return Err(Error::ManifestCorrupt { path, reason });
        }
        Ok(Arc::new(manifest))
    }

    /// Every manifest file exists with its size, and nothing else is there.
    fn check_files(&self, height: u64, dir: &Path, manifest: &Manifest) -> Result<()> {
        let mut found = Vec::new();
        self.walk(dir, "", &mut found)?;
        for (path, len) in &found {
            match manifest.file(path) {
                None if path == MANIFEST_FILE => {}
                None => return Err(Error::ForeignEntry { path: dir.join(path) }),
                Some(entry) if entry.size != *len => {
                    return Err(Error::SizeMismatch { height, file: path.clone(), expected: entry.size, actual: *len });
                }
                Some(_) => {}
            }
        }
        for entry in manifest.files() {
            if !found.iter().any(|(p, _)| *p == entry.path) {
                return Err(Error::MissingFile { height, file: entry.path.clone() });
            }
        }
        Ok(())
    }

    /// Collect `(relative path, length)` of every file under `dir`.
    fn walk(&self, dir: &Path, prefix: &str, out: &mut Vec<(String, u64)>) -> Result<()> {
        for entry in self.fs.list_dir(dir).map_err(Error::io("list", dir))? {
            let rel = if prefix.is_empty() { entry.name.clone() } else { format!("{prefix}/{}", entry.name) };
            let path = dir.join(&entry.name);
            match entry.kind {
                EntryKind::Dir => self.walk(&path, &rel, out)?,
                EntryKind::File => {
                    let stat = self.fs.stat(&path).map_err(Error::io("stat", &path))?;
                    out.push((rel, stat.len));
                }
                EntryKind::Other => return Err(Error::ForeignEntry { path }),
            }
        }
        Ok(())
    }

    fn rehash(&self, height: u64, dir: &Path, manifest: &Manifest) -> Result<()> {
        for entry in manifest.files() {
            let path = dir.join(&entry.path);
            let mut file = self.fs.open_file(&path).map_err(Error::io("open", &path))?;
            let mut hasher = ChunkHasher::new(file.as_mut(), entry.size).map_err(Error::io("read", &path))?;
            for (chunk, expected) in entry.chunks.iter().enumerate() {
                let chunk = chunk as u64;
                if hasher.hash(chunk).map_err(Error::io("read", &path))? != *expected {
                    let offset = chunk * crate::hash::CHUNK_SIZE;
                    return Err(Error::ChunkMismatch { height, file: entry.path.clone(), chunk, offset });
                }
            }
        }
        Ok(())
    }

    /// Delete all but the newest `keep` checkpoints, oldest first. Each is
    /// renamed into `tmp/` before it is deleted, so a crash never leaves a
    /// half-deleted checkpoint in `checkpoints/`. Returns the pruned heights.
    pub fn prune(&self, keep: usize) -> Result<Vec<u64>> {
        self.check_writable()?;
        if keep == 0 {
            return Err(Error::PruneAll);
        }
        let heights = self.heights()?;
        let doomed = &heights[..heights.len().saturating_sub(keep)];
        for &height in doomed {
            self.remove(height, "pruned")?;
        }
        Ok(doomed.to_vec())
    }

    /// Delete every checkpoint above `height`, newest first (each is moved
    /// aside atomically, so a crash leaves it whole or gone), and return
    /// their heights. For rolling the state back to checkpoint `height`.
    pub fn discard_after(&self, height: u64) -> Result<Vec<u64>> {
        self.check_writable()?;
        let doomed: Vec<u64> = self.heights()?.into_iter().filter(|h| *h > height).rev().collect();
        for &h in &doomed {
            self.remove(h, "discarded")?;
        }
        Ok(doomed)
    }

    /// Remove checkpoint `height`: move it into `tmp/` (atomic, synced),
    /// then delete it there; a crash in between leaves only `tmp/` litter.
    fn remove(&self, height: u64, why: &str) -> Result<()> {
        let from = self.checkpoint_dir(height);
        let to = self.tmp_dir().join(format!("{why}-{}", checkpoint_dir_name(height)));
        self.fs.rename_noreplace(&from, &to).map_err(Error::io("move aside", &from))?;
        let checkpoints = self.checkpoints_dir();
        self.fs.sync_dir(&checkpoints).map_err(Error::io("sync", &checkpoints))?;
        self.manifests.lock().unwrap_or_else(|e| e.into_inner()).remove(&height);
        self.fs.remove_dir_all(&to).map_err(Error::io("delete", &to))?;
        Ok(())
    }
}
