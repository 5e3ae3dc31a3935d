//! Hashing chunks of files through [`FsFile`], skipping holes.

use std::io;
use std::ops::Range;

use page_delta::PAGE_SIZE;

use crate::fs::FsFile;
use crate::hash::{CHUNK_SIZE, Hash, chunk_hash, page_hash, zero_page_hash};

/// Hashes chunks of one open file. Data extents are looked up once, so
/// chunks that lie in holes cost no reads.
pub(crate) struct ChunkHasher<'f> {
    file: &'f mut dyn FsFile,
    size: u64,
    data: Vec<Range<u64>>,
    buf: Vec<u8>,
}

impl<'f> ChunkHasher<'f> {
    pub fn new(file: &'f mut dyn FsFile, size: u64) -> io::Result<ChunkHasher<'f>> {
        let data = file.data_ranges()?;
        Ok(ChunkHasher { file, size, data, buf: Vec::new() })
    }

    /// Hash chunk `index` from the file's current contents.
    pub fn hash(&mut self, index: u64) -> io::Result<Hash> {
        let start = index * CHUNK_SIZE;
        let end = (start + CHUNK_SIZE).min(self.size);
        let pages = (end - start).div_ceil(PAGE_SIZE as u64) as usize;
        let mut hashes = vec![zero_page_hash(); pages];
        let last_len = (end - start) - (pages as u64 - 1) * PAGE_SIZE as u64;
        if last_len < PAGE_SIZE as u64 {
            // A short final page of zeros hashes differently from a full one.
            hashes[pages - 1] = page_hash(&vec![0; last_len as usize]);
        }
        // Read and hash only the pages that overlap a data extent.
        for range in self.data.iter().filter(|r| r.start < end && r.end > start) {
            let first = (range.start.max(start) - start) / PAGE_SIZE as u64;
            let last = (range.end.min(end) - start).div_ceil(PAGE_SIZE as u64);
            let from = start + first * PAGE_SIZE as u64;
            let to = (start + last * PAGE_SIZE as u64).min(end);
            self.buf.resize((to - from) as usize, 0);
            self.file.read_at(from, &mut self.buf)?;
            for (i, page) in self.buf.chunks(PAGE_SIZE).enumerate() {
                hashes[first as usize + i] = page_hash(page);
            }
        }
        Ok(chunk_hash(end - start, &hashes))
    }
}
