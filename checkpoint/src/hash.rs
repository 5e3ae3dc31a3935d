//! Domain-separated SHA-256 hashes of pages, chunks, files and manifests.
//!
//! A chunk (1 MiB) is hashed as the list of its page hashes rather than as one
//! stream of bytes. Pages in a hole of a sparse file then cost nothing (their
//! hash is a constant), so hashing a mostly empty chunk touches only the pages
//! that hold data, while the result still depends only on the bytes.

use std::sync::OnceLock;

use page_delta::PAGE_SIZE;
use sha2::{Digest, Sha256};

/// Size of a manifest chunk.
pub const CHUNK_SIZE: u64 = 1 << 20;
/// Pages per chunk.
pub const CHUNK_PAGES: u64 = CHUNK_SIZE / PAGE_SIZE as u64;

/// A SHA-256 hash.
pub type Hash = [u8; 32];

/// A SHA-256 hasher primed with `tag` (length-prefixed), so hashes of
/// different kinds of data never collide.
pub fn tagged_hasher(tag: &str) -> Sha256 {
    let mut h = Sha256::new();
    h.update([tag.len() as u8]);
    h.update(tag.as_bytes());
    h
}

/// Hash of the bytes of one page (the last page of a file may be shorter).
pub fn page_hash(bytes: &[u8]) -> Hash {
    let mut h = tagged_hasher("ch-page");
    h.update(bytes);
    h.finalize().into()
}

/// Hash of a full page of zeros.
pub fn zero_page_hash() -> Hash {
    static ZERO: OnceLock<Hash> = OnceLock::new();
    *ZERO.get_or_init(|| page_hash(&[0; PAGE_SIZE]))
}

/// Hash of a full chunk of zeros.
pub fn zero_chunk_hash() -> Hash {
    static ZERO: OnceLock<Hash> = OnceLock::new();
    *ZERO.get_or_init(|| chunk_hash(CHUNK_SIZE, &vec![zero_page_hash(); CHUNK_PAGES as usize]))
}

/// Hash of a chunk of `len` bytes, given the hashes of its pages in order.
pub fn chunk_hash(len: u64, page_hashes: &[Hash]) -> Hash {
    let mut h = tagged_hasher("ch-chunk");
    h.update(len.to_be_bytes());
    for p in page_hashes {
        h.update(p);
    }
    h.finalize().into()
}

/// Hash of a file of `size` bytes, given its chunk hashes in order.
pub fn file_hash(size: u64, chunk_hashes: &[Hash]) -> Hash {
    let mut h = tagged_hasher("ch-file");
    h.update(size.to_be_bytes());
    h.update((chunk_hashes.len() as u64).to_be_bytes());
    for c in chunk_hashes {
        h.update(c);
    }
    h.finalize().into()
}

/// Root hash of a checkpoint: its version, height, and every file's path and
/// hash, in path order.
pub fn root_hash<'a>(version: u32, height: u64, files: impl ExactSizeIterator<Item = (&'a str, Hash)>) -> Hash {
    let mut h = tagged_hasher("ch-manifest");
    h.update(version.to_be_bytes());
    h.update(height.to_be_bytes());
    h.update((files.len() as u64).to_be_bytes());
    for (path, hash) in files {
        h.update((path.len() as u64).to_be_bytes());
        h.update(path.as_bytes());
        h.update(hash);
    }
    h.finalize().into()
}

/// Chunk hashes of a file held in memory.
pub fn chunk_hashes_of(bytes: &[u8]) -> Vec<Hash> {
    bytes
        .chunks(CHUNK_SIZE as usize)
        .map(|chunk| {
            let pages: Vec<Hash> = chunk.chunks(PAGE_SIZE).map(page_hash).collect();
            chunk_hash(chunk.len() as u64, &pages)
        })
        .collect()
}

/// Number of chunks in a file of `size` bytes.
pub fn chunk_count(size: u64) -> u64 {
    size.div_ceil(CHUNK_SIZE)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn domains_separate_equal_inputs() {
        // The same bytes hashed as a page, a chunk and a file must differ.
        let page = page_hash(&[]);
        let chunk = chunk_hash(0, &[]);
        let file = file_hash(0, &[]);
        assert_ne!(page, chunk);
        assert_ne!(chunk, file);
        assert_ne!(page, file);
    }

    #[test]
    fn zero_page_hash_is_the_hash_of_zeros() {
        assert_eq!(zero_page_hash(), page_hash(&vec![0; PAGE_SIZE]));
        assert_ne!(zero_page_hash(), page_hash(&[0; PAGE_SIZE - 1]));
    }
}
