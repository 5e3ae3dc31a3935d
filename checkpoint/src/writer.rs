//! Building a checkpoint in `tmp/` and publishing it.

use std::collections::BTreeSet;
use std::path::{Path, PathBuf};
use std::sync::Arc;

use page_delta::{PAGE_SIZE, Page, PageDelta, PageIndex, PageMap};

use crate::checkpoint::{Checkpoint, FileRef};
use crate::error::{Error, Result};
use crate::fs::FsFile;
use crate::hash::{Hash, chunk_hashes_of};
use crate::layout::{MANIFEST_FILE, checkpoint_dir_name, validate_rel_path};
use crate::manifest::{FileEntry, Manifest};
use crate::memory_hash::{HashCounts, JobError, MemoryJob};
use crate::overlay::{overlay_size, write_overlay};
use crate::state_dir::StateDir;

/// Pages written with one `pwrite` at most.
const WRITE_BATCH_PAGES: usize = 256;

/// What to put in checkpoint `height`.
#[derive(Debug)]
pub struct CheckpointSpec<'a> {
    /// Its height: above every published checkpoint's.
    pub height: u64,
    /// Every file it holds.
    pub files: Vec<FileSpec<'a>>,
}

/// One file of a checkpoint to write.
#[derive(Debug)]
pub struct FileSpec<'a> {
    /// Path relative to the checkpoint directory.
    pub path: String,
    /// Where its contents come from.
    pub source: FileSource<'a>,
}

/// Where a file's contents come from.
#[derive(Debug)]
pub enum FileSource<'a> {
    /// Write these bytes (small files: metadata).
    Bytes(&'a [u8]),
    /// Same contents as a file of a published checkpoint: hard-linked, and
    /// its hashes are reused.
    Link(FileRef),
    /// A memory of `size` bytes holding `map`'s contents. `base` names the
    /// published file that `map`'s base maps (`None` when `map` has no base):
    /// the new file is a clone of it with `map`'s delta written over it.
    Memory {
        /// The published file `map`'s base maps.
        base: Option<FileRef>,
        /// The contents.
        map: &'a PageMap,
        /// The file's size in bytes.
        size: u64,
    },
    /// An overlay file (see [`crate::overlay`]) of these pages, ascending
    /// with no index twice: a memory's pages written since the checkpoint
    /// its other files come from. Costs the pages, whatever the memory's
    /// size.
    Overlay(&'a [(PageIndex, Page)]),
}

/// What staging a checkpoint cost.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct StageStats {
    /// Files hard-linked from the previous checkpoint.
    pub files_linked: u64,
    /// Memory files cloned from their base.
    pub files_cloned: u64,
    /// Files written from scratch.
    pub files_written: u64,
    /// Delta pages written over clones.
    pub pages_written: u64,
    /// Overlay files written.
    pub overlays_written: u64,
    /// Pages in those overlay files.
    pub overlay_pages: u64,
    /// Chunks hashed.
    pub chunks_hashed: u64,
    /// Chunk hashes reused from the previous manifest.
    pub chunks_reused: u64,
    /// Reused chunks rehashed as a guard (also counted in `chunks_hashed`).
    pub chunks_guarded: u64,
}

/// A checkpoint fully written and synced in `tmp/`, not yet visible.
/// Dropping it without [`Staged::publish`] deletes it.
pub struct Staged<'d> {
    dir: &'d StateDir,
    tmp: Option<PathBuf>,
    manifest: Arc<Manifest>,
    stats: StageStats,
}

impl StateDir {
    /// Write and sync checkpoint `spec.height` in `tmp/`. Its height must
    /// exceed every published checkpoint's.
    ///
    /// Memory files are hashed from memory on a second thread while this one
    /// copies, writes and syncs them.
    pub fn stage(&self, spec: CheckpointSpec<'_>) -> Result<Staged<'_>> {
        self.check_writable()?;
        let height = spec.height;
        if let Some(&newest) = self.heights()?.last()
            && height <= newest
        {
            return Err(Error::HeightNotIncreasing { height, newest });
        }
        let mut seen = BTreeSet::new();
        for f in &spec.files {
            validate_rel_path(&f.path).map_err(|reason| Error::InvalidPath { path: f.path.clone(), reason })?;
            if !seen.insert(f.path.as_str()) {
                return Err(Error::InvalidInput { file: f.path.clone(), reason: "listed twice".into() });
            }
        }
        let plan = self.plan(&spec)?;

        let tmp = self.tmp_dir().join(format!("ckpt-{}", checkpoint_dir_name(height)));
        let fs = self.fs().as_ref();
        fs.create_dir(&tmp).map_err(Error::io("create", &tmp))?;
        let empty = Arc::new(Manifest::new(height, vec![]).expect("an empty manifest is valid"));
        // From here on, dropping `staged` removes the directory.
        let mut staged = Staged { dir: self, tmp: Some(tmp.clone()), manifest: empty, stats: StageStats::default() };

        let (written, hashed) = std::thread::scope(|scope| {
            let hashing = scope.spawn(|| hash_memories(height, &plan.jobs));
            let written = self.write_files(&spec, &plan, &tmp, &mut staged.stats);
            (written, hashing.join().expect("the hashing thread does not panic"))
        });
        let mut entries = written?;
        let (memory_hashes, counts) = hashed?;
        for (job, chunks) in plan.jobs.iter().zip(memory_hashes) {
            entries.push(FileEntry { path: job.rel.clone(), size: job.size, chunks });
        }
        staged.stats.chunks_hashed += counts.hashed;
        staged.stats.chunks_reused += counts.reused;
        staged.stats.chunks_guarded += counts.guarded;

        let manifest = Manifest::new(height, entries)
            .map_err(|reason| Error::InvalidInput { file: MANIFEST_FILE.into(), reason })?;
        let path = tmp.join(MANIFEST_FILE);
        let mut file = fs.create_file(&path).map_err(Error::io("create", &path))?;
        file.write_at(0, &manifest.encode()).map_err(Error::io("write", &path))?;
        file.sync().map_err(Error::io("sync", &path))?;

        // Directory entries become durable bottom-up, the checkpoint's own
        // directory last, so the rename publishes a complete tree.
        for rel in plan.dirs.iter().rev() {
            let path = tmp.join(rel);
            fs.sync_dir(&path).map_err(Error::io("sync", &path))?;
        }
        fs.sync_dir(&tmp).map_err(Error::io("sync", &tmp))?;
        staged.manifest = Arc::new(manifest);
        Ok(staged)
    }

    /// Stage and publish checkpoint `spec.height`.
    pub fn create(&self, spec: CheckpointSpec<'_>) -> Result<Checkpoint> {
        self.stage(spec)?.publish()
    }

    /// Check the inputs and gather what the hashing thread needs.
    fn plan<'a>(&self, spec: &CheckpointSpec<'a>) -> Result<Plan<'a>> {
        let mut plan = Plan { jobs: Vec::new(), dirs: BTreeSet::new() };
        for f in &spec.files {
            let mut prefix = String::new();
            for component in f.path.split('/').rev().skip(1).collect::<Vec<_>>().into_iter().rev() {
                if !prefix.is_empty() {
                    prefix.push('/');
                }
                prefix.push_str(component);
                plan.dirs.insert(prefix.clone());
            }
            let FileSource::Memory { base, map, size } = &f.source else { continue };
            let invalid = |reason: String| Error::InvalidInput { file: f.path.clone(), reason };
            if size % PAGE_SIZE as u64 != 0 {
                return Err(invalid(format!("memory size {size} is not a whole number of pages")));
            }
            if let Some(last) = map.delta().last_index().filter(|last| last.byte_offset() >= *size) {
                return Err(invalid(format!("delta has {last} beyond the memory size {size}")));
            }
            let prev = base.as_ref().map(|b| self.source(b)).transpose()?;
            let base_bytes = map.base_pages() * PAGE_SIZE as u64;
            if prev.as_ref().map_or(0, |(entry, _)| entry.size) != base_bytes {
                return Err(invalid(format!(
                    "the page map's base holds {base_bytes} bytes but the base file {} has {}",
                    base.as_ref().map_or("(none)".into(), |b| format!("{}:{}", b.height, b.path)),
                    prev.as_ref().map_or(0, |(entry, _)| entry.size)
                )));
            }
            let base_data = match &prev {
                Some((entry, path)) if !(map.delta().is_empty() && entry.size == *size) => {
                    let mut file = self.fs().open_file(path).map_err(Error::io("open", path))?;
                    file.data_ranges().map_err(Error::io("read", path))?
                }
                _ => Vec::new(),
            };
            let prev = prev.map(|(entry, _)| entry);
            plan.jobs.push(MemoryJob { rel: f.path.clone(), map, size: *size, base_data, prev });
        }
        Ok(plan)
    }

    /// The manifest entry and path of a file in a published checkpoint.
    fn source(&self, from: &FileRef) -> Result<(FileEntry, PathBuf)> {
        let manifest = self.manifest(from.height)?;
        let entry = manifest
            .file(&from.path)
            .ok_or_else(|| Error::NoSuchFile { height: from.height, file: from.path.clone() })?;
        Ok((entry.clone(), self.checkpoint_dir(from.height).join(&from.path)))
    }

    /// Write every file; returns the manifest entries of all but the memory
    /// files, whose hashes come from the hashing thread.
    fn write_files(
        &self,
        spec: &CheckpointSpec<'_>,
        plan: &Plan<'_>,
        tmp: &Path,
        stats: &mut StageStats,
    ) -> Result<Vec<FileEntry>> {
        let fs = self.fs().as_ref();
        for rel in &plan.dirs {
            let path = tmp.join(rel);
            fs.create_dir(&path).map_err(Error::io("create", &path))?;
        }
        let mut entries = Vec::new();
        for f in &spec.files {
            let target = tmp.join(&f.path);
            match &f.source {
                FileSource::Bytes(bytes) => {
                    let mut file = fs.create_file(&target).map_err(Error::io("create", &target))?;
                    file.write_at(0, bytes).map_err(Error::io("write", &target))?;
                    file.sync().map_err(Error::io("sync", &target))?;
                    stats.files_written += 1;
                    let chunks = chunk_hashes_of(bytes);
                    stats.chunks_hashed += chunks.len() as u64;
                    entries.push(FileEntry { path: f.path.clone(), size: bytes.len() as u64, chunks });
                }
                FileSource::Link(from) => {
                    let (entry, path) = self.source(from)?;
                    fs.hard_link(&path, &target).map_err(Error::io("link", &target))?;
                    stats.files_linked += 1;
                    entries.push(FileEntry { path: f.path.clone(), ..entry });
                }
                FileSource::Memory { base, map, size } => {
                    self.write_memory(base.as_ref(), map.delta(), *size, &target, stats)?
                }
                FileSource::Overlay(pages) => {
                    let mut file = fs.create_file(&target).map_err(Error::io("create", &target))?;
                    let chunks = write_overlay(file.as_mut(), pages, &target)?;
                    file.sync().map_err(Error::io("sync", &target))?;
                    stats.overlays_written += 1;
                    stats.overlay_pages += pages.len() as u64;
                    stats.chunks_hashed += chunks.len() as u64;
                    let size = overlay_size(pages.len() as u64);
                    entries.push(FileEntry { path: f.path.clone(), size, chunks });
                }
            }
        }
        Ok(entries)
    }

    fn write_memory(
        &self,
        base: Option<&FileRef>,
        delta: &PageDelta,
        size: u64,
        target: &Path,
        stats: &mut StageStats,
    ) -> Result<()> {
        let fs = self.fs().as_ref();
        let prev = base.map(|b| self.source(b)).transpose()?;
        let mut file = match prev {
            Some((entry, path)) if delta.is_empty() && entry.size == size => {
                fs.hard_link(&path, target).map_err(Error::io("link", target))?;
                stats.files_linked += 1;
                return Ok(());
            }
            Some((entry, path)) => {
                let mut file = fs.clone_file(&path, target).map_err(Error::io("clone", target))?;
                if entry.size != size {
                    file.set_len(size).map_err(Error::io("resize", target))?;
                }
                stats.files_cloned += 1;
                file
            }
            None => {
                let mut file = fs.create_file(target).map_err(Error::io("create", target))?;
                file.set_len(size).map_err(Error::io("resize", target))?;
                stats.files_written += 1;
                file
            }
        };
        write_pages(file.as_mut(), delta, target)?;
        stats.pages_written += delta.len() as u64;
        file.sync().map_err(Error::io("sync", target))
    }
}

struct Plan<'a> {
    jobs: Vec<MemoryJob<'a>>,
    /// Directories to create inside the checkpoint, parents first.
    dirs: BTreeSet<String>,
}

fn hash_memories(height: u64, jobs: &[MemoryJob<'_>]) -> Result<(Vec<Vec<Hash>>, HashCounts)> {
    let mut counts = HashCounts::default();
    let mut out = Vec::with_capacity(jobs.len());
    for job in jobs {
        match job.chunk_hashes(height, &mut counts) {
            Ok(hashes) => out.push(hashes),
            Err(JobError::Guard(chunk)) => return Err(Error::GuardMismatch { height, file: job.rel.clone(), chunk }),
        }
    }
    Ok((out, counts))
}

/// `pwrite` the delta, coalescing consecutive pages.
fn write_pages(file: &mut dyn FsFile, delta: &PageDelta, target: &Path) -> Result<()> {
    let mut buf: Vec<u8> = Vec::with_capacity(WRITE_BATCH_PAGES * PAGE_SIZE);
    let mut start = 0u64;
    let mut next = 0u64;
    let mut flush = |buf: &mut Vec<u8>, start: u64| -> Result<()> {
        if !buf.is_empty() {
            file.write_at(start * PAGE_SIZE as u64, buf).map_err(Error::io("write", target))?;
            buf.clear();
        }
        Ok(())
    };
    for (index, page) in delta.iter() {
        if index.0 != next || buf.len() == WRITE_BATCH_PAGES * PAGE_SIZE {
            flush(&mut buf, start)?;
            start = index.0;
        }
        buf.extend_from_slice(page.bytes());
        next = index.0 + 1;
    }
    flush(&mut buf, start)
}

impl Staged<'_> {
    /// The checkpoint's height.
    pub fn height(&self) -> u64 {
        self.manifest.height()
    }

    /// The root hash the checkpoint will have once published.
    pub fn root_hash(&self) -> Hash {
        self.manifest.root_hash()
    }

    /// What staging cost.
    pub fn stats(&self) -> &StageStats {
        &self.stats
    }

    /// Rename the staged directory into `checkpoints/` and sync that
    /// directory. If the sync fails the checkpoint is withdrawn: a failed
    /// fsync cannot be retried, so the previous checkpoint stays the newest.
    pub fn publish(mut self) -> Result<Checkpoint> {
        let fs = self.dir.fs().as_ref();
        let tmp = self.tmp.clone().expect("a staged checkpoint has a directory until published");
        let height = self.height();
        let target = self.dir.checkpoint_dir(height);
        fs.rename_noreplace(&tmp, &target).map_err(Error::io("publish", &target))?;
        self.tmp = None;
        let parent = target.parent().expect("checkpoint directories have a parent");
        if let Err(e) = fs.sync_dir(parent) {
            if fs.rename_noreplace(&target, &tmp).is_ok() {
                self.tmp = Some(tmp);
            }
            return Err(Error::io("sync", parent)(e));
        }
        self.dir.remember_manifest(self.manifest.clone());
        Ok(Checkpoint::new(height, target, self.manifest.clone(), self.dir.fs().clone()))
    }
}

impl Drop for Staged<'_> {
    fn drop(&mut self) {
        if let Some(tmp) = self.tmp.take()
            && let Err(error) = self.dir.fs().remove_dir_all(&tmp)
        {
            tracing::warn!(path = %tmp.display(), %error, "could not remove an abandoned checkpoint; it is removed at the next open");
        }
    }
}
