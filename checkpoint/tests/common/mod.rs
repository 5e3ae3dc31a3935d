#![allow(dead_code)] // each test file uses a different subset

use std::path::Path;

use checkpoint::{Checkpoint, CheckpointSpec, FileRef, FileSource, FileSpec};
use page_delta::{PAGE_SIZE, Page, PageDelta, PageIndex, PageMap};

pub const MIB: u64 = 1 << 20;

/// Pages at each of `indices`, filled with a byte derived from `seed` and
/// the index.
pub fn pages(seed: u8, indices: &[u64]) -> Vec<(PageIndex, Page)> {
    indices.iter().map(|&i| (PageIndex(i), Page::new(&[seed.wrapping_add(i as u8) | 1; PAGE_SIZE]))).collect()
}

pub fn delta(seed: u8, indices: &[u64]) -> PageDelta {
    let mut d = PageDelta::new();
    d.apply(pages(seed, indices));
    d
}

/// A page map with no base holding `pages(seed, indices)`.
pub fn fresh_map(seed: u8, indices: &[u64]) -> PageMap {
    let mut m = PageMap::new();
    m.apply(pages(seed, indices));
    m
}

/// `base` with `pages(seed, indices)` applied.
pub fn changed(base: &PageMap, seed: u8, indices: &[u64]) -> PageMap {
    let mut m = base.fork();
    m.apply(pages(seed, indices));
    m
}

/// The full contents of `map` up to `size` bytes.
pub fn contents(map: &PageMap, size: u64) -> Vec<u8> {
    let mut out = vec![0; size as usize];
    map.read(0, &mut out).unwrap();
    out
}

/// The first checkpoint of the test state: two canisters.
pub struct Gen1 {
    pub heap_a: PageMap,
    pub heap_b: PageMap,
}

impl Gen1 {
    pub fn new() -> Gen1 {
        Gen1 { heap_a: fresh_map(1, &[0, 1, 2, 300, 700]), heap_b: fresh_map(2, &[5]) }
    }

    pub fn spec(&self) -> CheckpointSpec<'_> {
        CheckpointSpec {
            height: 1,
            files: vec![
                mem("canisters/a/heap.bin", None, &self.heap_a, 3 * MIB),
                bytes("canisters/a/module.wasm", b"\0asm\x01\0\0\0module-a"),
                bytes("canisters/a/meta", b"meta a v1"),
                mem("canisters/b/heap.bin", None, &self.heap_b, MIB / 2),
                bytes("canisters/b/meta", b"meta b v1"),
                bytes("host.meta", b"height 1"),
            ],
        }
    }
}

/// The second checkpoint: canister a grows and changes, b is untouched,
/// c is new. Its page maps sit on checkpoint 1's files, opened from `dir`
/// (a real copy of that checkpoint's directory).
pub struct Gen2 {
    pub heap_a: PageMap,
    pub heap_b: PageMap,
    pub heap_c: PageMap,
    /// Pages written over b's heap since checkpoint 1, kept as an overlay
    /// beside its linked base (crossing a chunk boundary).
    pub overlay_b: Vec<(PageIndex, Page)>,
}

impl Gen2 {
    pub fn new(checkpoint1_dir: &Path) -> Gen2 {
        let open = |f: &str| PageMap::open(&checkpoint1_dir.join(f)).unwrap();
        Gen2 {
            heap_a: changed(&open("canisters/a/heap.bin"), 9, &[1, 299, 300, 301, 900]),
            heap_b: open("canisters/b/heap.bin"),
            heap_c: fresh_map(3, &[0, 1]),
            overlay_b: pages(4, &(0..260).map(|i| i * 2).collect::<Vec<_>>()),
        }
    }

    pub fn spec<'a>(&'a self, prev: &Checkpoint) -> CheckpointSpec<'a> {
        let r = |p: &str| prev.file_ref(p).unwrap();
        CheckpointSpec {
            height: 2,
            files: vec![
                mem("canisters/a/heap.bin", Some(r("canisters/a/heap.bin")), &self.heap_a, 4 * MIB),
                FileSpec {
                    path: "canisters/a/module.wasm".into(),
                    source: FileSource::Link(r("canisters/a/module.wasm")),
                },
                bytes("canisters/a/meta", b"meta a v2"),
                mem("canisters/b/heap.bin", Some(r("canisters/b/heap.bin")), &self.heap_b, MIB / 2),
                FileSpec { path: "canisters/b/meta".into(), source: FileSource::Link(r("canisters/b/meta")) },
                FileSpec { path: "canisters/b/heap.bin.ovl-2".into(), source: FileSource::Overlay(&self.overlay_b) },
                mem("canisters/c/heap.bin", None, &self.heap_c, 64 * 1024),
                bytes("canisters/c/meta", b"meta c v1"),
                bytes("host.meta", b"height 2"),
            ],
        }
    }
}

pub fn mem<'a>(path: &str, base: Option<FileRef>, map: &'a PageMap, size: u64) -> FileSpec<'a> {
    FileSpec { path: path.into(), source: FileSource::Memory { base, map, size } }
}

pub fn bytes<'a>(path: &str, data: &'a [u8]) -> FileSpec<'a> {
    FileSpec { path: path.into(), source: FileSource::Bytes(data) }
}
