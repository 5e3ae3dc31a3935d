//! Checkpoint creation, measured against `cp --sparse=always` of the same
//! memory file in the same run.
//!
//! - `vs_size`: sparse files of 64 MiB, 256 MiB and 1 GiB (1/16 of each holds
//!   data) with 100 dirty pages;
//! - `vs_dirty`: a 1 GiB sparse file (64 MiB of data) with 1, 100 and 10^4
//!   dirty pages;
//! - `unchanged`: a file with no delta (hard link; O(1) in the file size);
//! - `rehash_vs_changed_chunks`: a dense 256 MiB file with dirty pages in 1,
//!   16 and 128 distinct chunks;
//! - `manifest_hashing`: full verification of a dense 256 MiB file, in bytes/s.
//!
//! Each timed iteration creates and publishes one checkpoint (fsyncs
//! included); deleting it afterwards is not timed.

use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::{Duration, Instant};

use bench_suite::{Lcg, MIB, extents_delta, random_delta};
use checkpoint::{Checkpoint, CheckpointSpec, FileSource, FileSpec, StateDir};
use criterion::{BenchmarkId, Criterion, Throughput, criterion_group, criterion_main};
use page_delta::{PAGE_SIZE, Page, PageDelta, PageIndex, PageMap};

struct Fixture {
    _tmp: tempfile::TempDir,
    dir: StateDir,
    base: Checkpoint,
    size: u64,
    next_height: u64,
}

impl Fixture {
    /// A state directory whose checkpoint 1 holds one memory file `heap` of
    /// `size` bytes with `data` bytes of data.
    fn new(size: u64, data: u64) -> Fixture {
        let tmp = tempfile::tempdir().unwrap();
        let dir = StateDir::open(&tmp.path().join("state")).unwrap();
        let mut map = PageMap::new();
        map.apply(extents_delta(size, data, size ^ data).iter().map(|(i, p)| (i, p.clone())).collect::<Vec<_>>());
        let spec = CheckpointSpec { height: 1, files: vec![memory(None, &map, size)] };
        let base = dir.create(spec).unwrap();
        Fixture { _tmp: tmp, dir, base, size, next_height: 2 }
    }

    fn heap(&self) -> PathBuf {
        self.base.path("heap").unwrap()
    }

    /// The base checkpoint's heap with `delta` applied.
    fn map_with(&self, delta: &PageDelta) -> PageMap {
        let mut map = self.base.open_page_map("heap").unwrap();
        map.apply(delta.iter().map(|(i, p)| (i, p.clone())).collect::<Vec<_>>());
        map
    }

    /// Time creating one checkpoint of `map` over the base.
    fn checkpoint(&mut self, map: &PageMap) -> Duration {
        let height = self.next_height;
        self.next_height += 1;
        let base = Some(self.base.file_ref("heap").unwrap());
        let start = Instant::now();
        let spec = CheckpointSpec { height, files: vec![memory(base, map, self.size)] };
        let c = self.dir.create(spec).unwrap();
        let elapsed = start.elapsed();
        std::fs::remove_dir_all(c.dir()).unwrap();
        elapsed
    }
}

fn memory(base: Option<checkpoint::FileRef>, map: &PageMap, size: u64) -> FileSpec<'_> {
    FileSpec { path: "heap".into(), source: FileSource::Memory { base, map, size } }
}

/// Time `cp --sparse=always src dst` as a command, deleting `dst` untimed.
fn cp_sparse(src: &Path) -> Duration {
    let dst = src.with_file_name("cp-baseline");
    let start = Instant::now();
    let status = Command::new("cp").arg("--sparse=always").arg(src).arg(&dst).status().unwrap();
    let elapsed = start.elapsed();
    assert!(status.success());
    std::fs::remove_file(&dst).unwrap();
    elapsed
}

fn timed(iters: u64, mut f: impl FnMut() -> Duration) -> Duration {
    (0..iters).map(|_| f()).sum()
}

fn vs_size(c: &mut Criterion) {
    let mut g = c.benchmark_group("checkpoint/vs_size");
    for size in [64 * MIB, 256 * MIB, 1024 * MIB] {
        let mut fx = Fixture::new(size, size / 16);
        let map = fx.map_with(&random_delta(100, size / PAGE_SIZE as u64, 7));
        let label = format!("{}MiB", size / MIB);
        g.bench_function(BenchmarkId::new("cp_sparse_baseline", &label), |b| {
            b.iter_custom(|n| timed(n, || cp_sparse(&fx.heap())))
        });
        g.bench_function(BenchmarkId::new("create_100_dirty", &label), |b| {
            b.iter_custom(|n| timed(n, || fx.checkpoint(&map)))
        });
    }
    g.finish();
}

fn vs_dirty(c: &mut Criterion) {
    let mut g = c.benchmark_group("checkpoint/vs_dirty_1GiB");
    let mut fx = Fixture::new(1024 * MIB, 64 * MIB);
    g.bench_function("cp_sparse_baseline", |b| b.iter_custom(|n| timed(n, || cp_sparse(&fx.heap()))));
    for dirty in [1, 100, 10_000] {
        let map = fx.map_with(&random_delta(dirty, 1024 * MIB / PAGE_SIZE as u64, dirty));
        g.bench_function(BenchmarkId::new("create", dirty), |b| b.iter_custom(|n| timed(n, || fx.checkpoint(&map))));
    }
    g.finish();
}

fn unchanged(c: &mut Criterion) {
    let mut g = c.benchmark_group("checkpoint/unchanged");
    for size in [64 * MIB, 1024 * MIB] {
        let mut fx = Fixture::new(size, size / 16);
        let map = fx.map_with(&PageDelta::new());
        g.bench_function(BenchmarkId::new("create_no_delta", format!("{}MiB", size / MIB)), |b| {
            b.iter_custom(|n| timed(n, || fx.checkpoint(&map)))
        });
    }
    g.finish();
}

fn rehash_vs_changed_chunks(c: &mut Criterion) {
    let mut g = c.benchmark_group("checkpoint/rehash_vs_changed_chunks_dense_256MiB");
    let mut fx = Fixture::new(256 * MIB, 256 * MIB);
    g.bench_function("cp_sparse_baseline", |b| b.iter_custom(|n| timed(n, || cp_sparse(&fx.heap()))));
    for chunks in [1u64, 16, 128] {
        // One dirty page in each of `chunks` distinct chunks.
        let mut rng = Lcg(chunks);
        let mut delta = PageDelta::new();
        let stride = 256 / chunks;
        delta.apply(
            (0..chunks)
                .map(|i| (PageIndex((i * stride) * 256 + rng.below(256)), Page::new(&[3; PAGE_SIZE])))
                .collect::<Vec<_>>(),
        );
        let map = fx.map_with(&delta);
        g.bench_function(BenchmarkId::new("create", chunks), |b| b.iter_custom(|n| timed(n, || fx.checkpoint(&map))));
    }
    g.finish();
}

fn manifest_hashing(c: &mut Criterion) {
    let mut g = c.benchmark_group("checkpoint/manifest_hashing");
    let fx = Fixture::new(256 * MIB, 256 * MIB);
    g.throughput(Throughput::Bytes(256 * MIB));
    g.bench_function("verify_dense_256MiB", |b| b.iter(|| fx.dir.verify(1).unwrap()));
    g.finish();
}

criterion_group! {
    name = benches;
    config = Criterion::default().sample_size(10).warm_up_time(Duration::from_millis(500)).measurement_time(Duration::from_secs(3));
    targets = vs_size, vs_dirty, unchanged, rehash_vs_changed_chunks, manifest_hashing
}
criterion_main!(benches);
