//! Chunk hashes of a memory file computed from the in-memory state (base
//! mapping plus delta) rather than from the file being written.
//!
//! The manifest thereby certifies the state the canister actually had: a bug
//! or fault in the write path makes verification fail instead of being
//! recorded as truth. It also needs no file operations, so it runs on a
//! second thread while the main one copies and syncs.

use std::ops::Range;

use page_delta::{PAGE_SIZE, PageIndex, PageMap};

use crate::hash::{CHUNK_PAGES, CHUNK_SIZE, Hash, chunk_count, chunk_hash, page_hash, zero_chunk_hash, zero_page_hash};
use crate::manifest::FileEntry;

/// Reused chunk hashes whose index is congruent to the height modulo this
/// are recomputed as a guard.
const GUARD_EVERY: u64 = 10;

/// The hashing work for one memory file.
pub(crate) struct MemoryJob<'a> {
    pub rel: String,
    pub map: &'a PageMap,
    pub size: u64,
    /// Byte ranges of the base file that may hold data (the rest are holes).
    pub base_data: Vec<Range<u64>>,
    /// The base file's manifest entry, whose hashes unchanged chunks reuse.
    pub prev: Option<FileEntry>,
}

#[derive(Default)]
pub(crate) struct HashCounts {
    pub hashed: u64,
    pub reused: u64,
    pub guarded: u64,
}

pub(crate) enum JobError {
    /// A reused hash disagrees with the base's bytes: chunk index.
    Guard(u64),
}

impl MemoryJob<'_> {
    /// Chunk hashes for the file: chunks the delta touched, or that a resize
    /// changed, are hashed; the rest reuse the previous hashes, and about one
    /// in ten of those (at most as many as were hashed) is recomputed and
    /// checked.
    pub fn chunk_hashes(&self, height: u64, counts: &mut HashCounts) -> Result<Vec<Hash>, JobError> {
        let n = chunk_count(self.size);
        if let Some(prev) = self.prev.as_ref().filter(|p| self.is_link_of(p)) {
            // The file is a hard link to the previous one: same bytes, same
            // hashes, nothing to guard.
            counts.reused += n;
            return Ok(prev.chunks.clone());
        }
        // Chunks past the common prefix of the old and new size changed.
        let reusable = match &self.prev {
            Some(p) if p.size == self.size => n,
            Some(p) => p.size.min(self.size) / CHUNK_SIZE,
            None => 0,
        };
        let delta = self.map.delta();
        let changed =
            |c: u64| c >= reusable || (0..CHUNK_PAGES / 64).any(|w| delta.occupancy(c * CHUNK_PAGES / 64 + w) != 0);
        let changed_count = (0..n).filter(|c| changed(*c)).count() as u64;
        let mut guards_left = changed_count.max(1);
        let mut out = Vec::with_capacity(n as usize);
        for c in 0..n {
            let reused = self.prev.as_ref().filter(|_| !changed(c)).map(|p| p.chunks[c as usize]);
            out.push(match reused {
                Some(hash) if (c + height).is_multiple_of(GUARD_EVERY) && guards_left > 0 => {
                    guards_left -= 1;
                    counts.guarded += 1;
                    counts.hashed += 1;
                    if self.hash_chunk(c) != hash {
                        return Err(JobError::Guard(c));
                    }
                    hash
                }
                Some(hash) => {
                    counts.reused += 1;
                    hash
                }
                None => {
                    counts.hashed += 1;
                    self.hash_chunk(c)
                }
            });
        }
        Ok(out)
    }

    /// Whether the writer hard-links this file to its base (see
    /// `write_memory`): nothing changed and the size is the same.
    pub fn is_link_of(&self, prev: &FileEntry) -> bool {
        self.map.delta().is_empty() && prev.size == self.size
    }

    fn hash_chunk(&self, chunk: u64) -> Hash {
        let start = chunk * CHUNK_PAGES;
        let end = ((chunk + 1) * CHUNK_SIZE).min(self.size).div_ceil(PAGE_SIZE as u64);
        let delta = self.map.delta();
        let in_delta = (0..CHUNK_PAGES / 64).any(|w| delta.occupancy(start / 64 + w) != 0);
        let full = end - start == CHUNK_PAGES;
        if full && !in_delta && !self.has_base_data(start * PAGE_SIZE as u64..end * PAGE_SIZE as u64) {
            return zero_chunk_hash();
        }
        let pages: Vec<Hash> = (start..end)
            .map(|p| {
                let index = PageIndex(p);
                if delta.get(index).is_some() || self.has_base_data(page_range(p)) {
                    page_hash(self.map.get_page(index))
                } else {
                    zero_page_hash()
                }
            })
            .collect();
        chunk_hash((end - start) * PAGE_SIZE as u64, &pages)
    }

    fn has_base_data(&self, range: Range<u64>) -> bool {
        let i = self.base_data.partition_point(|r| r.end <= range.start);
        self.base_data.get(i).is_some_and(|r| r.start < range.end)
    }
}

fn page_range(page: u64) -> Range<u64> {
    page * PAGE_SIZE as u64..(page + 1) * PAGE_SIZE as u64
}
