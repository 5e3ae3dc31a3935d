//! Test driver for the kill -9 test: creates checkpoints in a loop until it
//! is killed, continuing from whatever checkpoint it finds.
//!
//! Usage: `checkpoint-torture STATE_DIR RECORD_FILE`
//!
//! Before publishing each checkpoint it appends `height root_hash` to
//! RECORD_FILE and syncs it, so every checkpoint that can ever be published
//! has its root hash recorded first.

use std::fs::OpenOptions;
use std::io::Write;
use std::path::PathBuf;

use checkpoint::{CheckpointSpec, FileSource, FileSpec, StateDir, Verification};
use page_delta::{PAGE_SIZE, Page, PageIndex, PageMap};

const CANISTERS: u64 = 3;
const MEMORY_PAGES: u64 = 2048; // 8 MiB, so copies take a moment

fn main() -> Result<(), Box<dyn std::error::Error>> {
    let mut args = std::env::args_os().skip(1);
    let (Some(state), Some(record)) = (args.next(), args.next()) else {
        return Err("usage: checkpoint-torture STATE_DIR RECORD_FILE".into());
    };
    let dir = StateDir::open(&PathBuf::from(state))?;
    let mut record = OpenOptions::new().create(true).append(true).open(record)?;
    let mut prev = dir.newest(Verification::Full)?.map(|loaded| loaded.checkpoint);
    loop {
        let height = prev.as_ref().map_or(1, |c| c.height() + 1);
        let meta = height.to_le_bytes();
        let mut maps = Vec::new();
        for c in 0..CANISTERS {
            let heap = format!("canisters/c{c}/heap.bin");
            let mut map = match &prev {
                Some(p) => p.open_page_map(&heap)?,
                None => PageMap::new(),
            };
            // Canister 0 is left unchanged on odd heights: exercises links.
            if !(c == 0 && height % 2 == 1 && prev.is_some()) {
                map.apply(pages_for(height, c));
            }
            let base = prev.as_ref().map(|p| p.file_ref(&heap)).transpose()?;
            maps.push((heap, base, map));
        }
        let mut files = Vec::new();
        for (c, (heap, base, map)) in maps.iter().enumerate() {
            files.push(FileSpec {
                path: heap.clone(),
                source: FileSource::Memory { base: base.clone(), map, size: MEMORY_PAGES * PAGE_SIZE as u64 },
            });
            files.push(FileSpec { path: format!("canisters/c{c}/meta"), source: FileSource::Bytes(&meta) });
        }
        let staged = dir.stage(CheckpointSpec { height, files })?;
        writeln!(record, "{height} {}", hex::encode(staged.root_hash()))?;
        record.sync_all()?;
        let checkpoint = staged.publish()?;
        dir.prune(3)?;
        prev = Some(checkpoint);
    }
}

/// A few pages spread over the memory, different at every height.
fn pages_for(height: u64, canister: u64) -> Vec<(PageIndex, Page)> {
    (0..16)
        .map(|i| {
            let index = (height * 37 + i * 131 + canister * 7) % MEMORY_PAGES;
            let mut bytes = [0u8; PAGE_SIZE];
            bytes[..8].copy_from_slice(&height.to_le_bytes());
            bytes[8..16].copy_from_slice(&index.to_le_bytes());
            (PageIndex(index), Page::new(&bytes))
        })
        .collect()
}
