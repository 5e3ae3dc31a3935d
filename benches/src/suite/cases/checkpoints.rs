//! `checkpoint/{sparse,dense}_{64MiB,1GiB}_{1,100,10k}_dirty`: writing and
//! publishing one checkpoint of a canister memory (fsyncs included) over
//! the previous checkpoint, against `cp --sparse=always` of the memory's
//! file (`cp/{sparse,dense}_{size}`). A sparse memory has 1/16 of its
//! bytes in data; a dense one, all.
//!
//! `checkpoint/overlay_{sparse,dense}_{size}_{dirty}_dirty`: the same
//! checkpoint as the host writes it while the memory is within its overlay
//! budget: the base hard-linked and the dirty pages written as an overlay,
//! against the whole rewrite above and `cp`.

use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::{Duration, Instant};

use checkpoint::{Checkpoint, CheckpointSpec, FileSource, FileSpec, StateDir};
use page_delta::{PAGE_SIZE, Page, PageIndex, PageMap};

use super::{BenchError, Runner, count_label, size_label};
use crate::suite::error::CaseContext;
use crate::{MIB, extents_delta, random_delta};

const DIRTY: [u64; 3] = [1, 100, 10_000];

fn name(dense: bool, size: u64, dirty: u64) -> String {
    format!("checkpoint/{}_{}_{}_dirty", density(dense), size_label(size), count_label(dirty))
}

fn overlay_name(dense: bool, size: u64, dirty: u64) -> String {
    format!("checkpoint/overlay_{}_{}_{}_dirty", density(dense), size_label(size), count_label(dirty))
}

fn density(dense: bool) -> &'static str {
    if dense { "dense" } else { "sparse" }
}

pub(super) fn run(r: &mut Runner) -> Result<(), BenchError> {
    let sizes: &[u64] = if r.quick() { &[64 * MIB] } else { &[64 * MIB, 1024 * MIB] };
    for &size in sizes {
        for dense in [false, true] {
            let names: Vec<String> = DIRTY.iter().map(|d| name(dense, size, *d)).collect();
            let overlay_names: Vec<String> = DIRTY.iter().map(|d| overlay_name(dense, size, *d)).collect();
            if !r.any(&names) && !r.any(&overlay_names) {
                continue;
            }
            let data = if dense { size } else { size / 16 };
            let fixture_name = format!("checkpoint fixture {}_{}", density(dense), size_label(size));
            let mut fx = Fixture::new(&r.scratch().join("checkpoints"), size, data, &fixture_name)?;
            let samples = match (r.quick(), size > 64 * MIB) {
                (true, _) => 10,
                (false, false) => 10,
                (false, true) => 5,
            };
            let cp = format!("cp/{}_{}", density(dense), size_label(size));
            let (heap, copy) = (fx.heap()?, r.scratch().join("cp-baseline"));
            r.timed(&cp, &[], samples, || cp_sparse(&heap, &copy, &cp))?;
            for ((dirty, name), overlay) in DIRTY.iter().zip(&names).zip(&overlay_names) {
                let (map, pages) = fx.map_with(*dirty, name)?;
                // The whole rewrite is the overlay's baseline.
                if r.selected(name) || r.selected(overlay) {
                    let result = r.timed(name, &[&cp], samples, || fx.checkpoint(&map, name))?;
                    result.counts.insert("dirty_pages".into(), pages);
                }
                if r.selected(overlay) {
                    let dirty: Vec<_> = map.delta().iter().map(|(i, p)| (i, p.clone())).collect();
                    let result = r.timed(overlay, &[name, &cp], samples, || fx.overlay_checkpoint(&dirty, overlay))?;
                    result.counts.insert("dirty_pages".into(), pages);
                }
            }
            fx.remove()?;
        }
    }
    Ok(())
}

/// A state directory whose checkpoint 1 holds one memory file, `heap`.
struct Fixture {
    root: PathBuf,
    dir: StateDir,
    base: Checkpoint,
    size: u64,
    next_height: u64,
}

impl Fixture {
    /// `size` bytes holding `data` bytes of pseudo-random data.
    fn new(root: &Path, size: u64, data: u64, case: &str) -> Result<Fixture, BenchError> {
        let dir = StateDir::open(root).case(case)?;
        let mut map = PageMap::new();
        map.apply(extents_delta(size, data, size ^ data).iter().map(|(i, p)| (i, p.clone())).collect::<Vec<_>>());
        let base = dir.create(CheckpointSpec { height: 1, files: vec![memory(None, &map, size)] }).case(case)?;
        Ok(Fixture { root: root.to_path_buf(), dir, base, size, next_height: 2 })
    }

    fn heap(&self) -> Result<PathBuf, BenchError> {
        self.base.path("heap").case("checkpoint fixture")
    }

    /// The base's memory with `dirty` pseudo-random pages written, and how
    /// many distinct pages that is.
    fn map_with(&self, dirty: u64, case: &str) -> Result<(PageMap, u64), BenchError> {
        let mut map = self.base.open_page_map("heap").case(case)?;
        let delta = random_delta(dirty, self.size / PAGE_SIZE as u64, dirty);
        let pages: Vec<_> = delta.iter().map(|(i, p)| (i, p.clone())).collect();
        let distinct = pages.len() as u64;
        map.apply(pages);
        Ok((map, distinct))
    }

    /// Time creating one checkpoint of `map` over the base; the new
    /// checkpoint is deleted afterwards, untimed.
    fn checkpoint(&mut self, map: &PageMap, case: &str) -> Result<Duration, BenchError> {
        let height = self.next_height;
        self.next_height += 1;
        let base = Some(self.base.file_ref("heap").case(case)?);
        let start = Instant::now();
        let spec = CheckpointSpec { height, files: vec![memory(base, map, self.size)] };
        let created = self.dir.create(spec).case(case)?;
        let elapsed = start.elapsed();
        std::fs::remove_dir_all(created.dir()).case(case)?;
        Ok(elapsed)
    }

    /// Time creating one checkpoint that links the base's file and writes
    /// `dirty` as an overlay; deleted afterwards, untimed.
    fn overlay_checkpoint(&mut self, dirty: &[(PageIndex, Page)], case: &str) -> Result<Duration, BenchError> {
        let height = self.next_height;
        self.next_height += 1;
        let base = self.base.file_ref("heap").case(case)?;
        let start = Instant::now();
        let files = vec![
            FileSpec { path: "heap".into(), source: FileSource::Link(base) },
            FileSpec { path: "heap.overlay".into(), source: FileSource::Overlay(dirty) },
        ];
        let created = self.dir.create(CheckpointSpec { height, files }).case(case)?;
        let elapsed = start.elapsed();
        std::fs::remove_dir_all(created.dir()).case(case)?;
        Ok(elapsed)
    }

    fn remove(self) -> Result<(), BenchError> {
        let root = self.root.clone();
        drop(self);
        std::fs::remove_dir_all(&root).case("checkpoint fixture")
    }
}

fn memory(base: Option<checkpoint::FileRef>, map: &PageMap, size: u64) -> FileSpec<'_> {
    FileSpec { path: "heap".into(), source: FileSource::Memory { base, map, size } }
}

/// Time `cp --sparse=always src dst`; the copy is deleted untimed.
pub(super) fn cp_sparse(src: &Path, dst: &Path, case: &str) -> Result<Duration, BenchError> {
    let start = Instant::now();
    let status = Command::new("cp").arg("--sparse=always").arg(src).arg(dst).status().case(case)?;
    let elapsed = start.elapsed();
    if !status.success() {
        return Err(BenchError::Case { case: case.into(), message: format!("cp exited with {status}") });
    }
    std::fs::remove_file(dst).case(case)?;
    Ok(elapsed)
}
