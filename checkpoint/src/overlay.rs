//! Overlay files: the pages of a memory written since the previous
//! checkpoint, so a checkpoint costs the pages that changed rather than the
//! memory's size.
//!
//! ```text
//! [page data: count × 4 KiB][index: count × u64 LE, strictly ascending][count: u64 LE][magic "CHOVL001"]
//! ```
//!
//! The data comes first, so it starts page-aligned (it could be mapped);
//! the index and the magic come last, as in the IC's overlay files. A memory
//! is its base file with its overlays applied oldest first.

use std::path::Path;

use page_delta::{PAGE_SIZE, Page, PageBytes, PageIndex};

use crate::error::{Error, Result};
use crate::fs::FsFile;
use crate::hash::{CHUNK_SIZE, Hash, chunk_hashes_of};

/// The last eight bytes of every overlay file; the digits are its version.
pub const OVERLAY_MAGIC: &[u8; 8] = b"CHOVL001";

/// Bytes after the index: the page count and the magic.
const TRAILER: usize = 16;

/// Why bytes are not an overlay file.
#[derive(Debug, thiserror::Error, PartialEq, Eq)]
pub enum OverlayError {
    /// Too short, or the magic (and so the version) is not this build's.
    #[error("it does not end in the overlay magic {OVERLAY_MAGIC:?}: not an overlay file, or another version")]
    Magic,
    /// The length does not match the page count.
    #[error("{len} bytes cannot hold the {count} pages its trailer names")]
    Length {
        /// The file's length.
        len: u64,
        /// The page count in its trailer.
        count: u64,
    },
    /// The index is not strictly ascending.
    #[error("its index is not strictly ascending at entry {0}")]
    Order(u64),
}

/// Size in bytes of the overlay file of `count` pages.
pub fn overlay_size(count: u64) -> u64 {
    count * (PAGE_SIZE as u64 + 8) + TRAILER as u64
}

/// Decode an overlay file: its pages in ascending index order.
pub fn decode_overlay(bytes: &[u8]) -> std::result::Result<Vec<(PageIndex, Page)>, OverlayError> {
    let len = bytes.len();
    if len < TRAILER || &bytes[len - 8..] != OVERLAY_MAGIC {
        return Err(OverlayError::Magic);
    }
    let count = u64::from_le_bytes(bytes[len - TRAILER..len - 8].try_into().expect("8 bytes"));
    let expected = count.checked_mul(PAGE_SIZE as u64 + 8).and_then(|n| n.checked_add(TRAILER as u64));
    if expected != Some(len as u64) {
        return Err(OverlayError::Length { len: len as u64, count });
    }
    let count = count as usize;
    let (data, rest) = bytes.split_at(count * PAGE_SIZE);
    let mut pages = Vec::with_capacity(count);
    let mut previous: Option<u64> = None;
    for (i, (raw, page)) in rest[..count * 8].chunks_exact(8).zip(data.chunks_exact(PAGE_SIZE)).enumerate() {
        let index = u64::from_le_bytes(raw.try_into().expect("8 bytes"));
        if previous.is_some_and(|p| p >= index) {
            return Err(OverlayError::Order(i as u64));
        }
        previous = Some(index);
        let page: &PageBytes = page.try_into().expect("a whole page");
        pages.push((PageIndex(index), Page::new(page)));
    }
    Ok(pages)
}

/// Write the overlay file of `pages` (ascending, no index twice) to `file`,
/// which is empty, and return its chunk hashes. The bytes are streamed a
/// chunk at a time and hashed as written, so memory stays at one chunk.
pub(crate) fn write_overlay(file: &mut dyn FsFile, pages: &[(PageIndex, Page)], target: &Path) -> Result<Vec<Hash>> {
    if let Some(w) = pages.windows(2).find(|w| w[0].0 >= w[1].0) {
        let reason = format!("overlay pages out of order: {} then {}", w[0].0, w[1].0);
        return Err(Error::InvalidInput { file: target.display().to_string(), reason });
    }
    let mut out = ChunkWriter { file, target, buf: Vec::with_capacity(CHUNK_SIZE as usize), offset: 0, hashes: vec![] };
    for (_, page) in pages {
        out.push(page.bytes())?;
    }
    for (index, _) in pages {
        out.push(&index.0.to_le_bytes())?;
    }
    out.push(&(pages.len() as u64).to_le_bytes())?;
    out.push(OVERLAY_MAGIC)?;
    out.finish()
}

/// Writes a file in whole chunks, hashing each as it goes.
struct ChunkWriter<'a> {
    file: &'a mut dyn FsFile,
    target: &'a Path,
    buf: Vec<u8>,
    offset: u64,
    hashes: Vec<Hash>,
}

impl ChunkWriter<'_> {
    fn push(&mut self, mut bytes: &[u8]) -> Result<()> {
        while !bytes.is_empty() {
            let n = bytes.len().min(CHUNK_SIZE as usize - self.buf.len());
            self.buf.extend_from_slice(&bytes[..n]);
            bytes = &bytes[n..];
            if self.buf.len() == CHUNK_SIZE as usize {
                self.flush()?;
            }
        }
        Ok(())
    }

    fn flush(&mut self) -> Result<()> {
        if !self.buf.is_empty() {
            self.file.write_at(self.offset, &self.buf).map_err(Error::io("write", self.target))?;
            self.file.write_out(self.offset..self.offset + self.buf.len() as u64);
            self.hashes.extend(chunk_hashes_of(&self.buf));
            self.offset += self.buf.len() as u64;
            self.buf.clear();
        }
        Ok(())
    }

    fn finish(mut self) -> Result<Vec<Hash>> {
        self.flush()?;
        Ok(self.hashes)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::sim::SimFs;
    use crate::{Fs, read_all};

    fn page(byte: u8) -> Page {
        Page::new(&[byte; PAGE_SIZE])
    }

    fn written(pages: &[(PageIndex, Page)]) -> (Vec<u8>, Vec<Hash>) {
        let fs = SimFs::new("/");
        let path = Path::new("/overlay");
        let mut file = fs.create_file(path).unwrap();
        let hashes = write_overlay(file.as_mut(), pages, path).unwrap();
        (read_all(&fs, path).unwrap(), hashes)
    }

    #[test]
    fn overlays_round_trip_and_hash_as_a_whole_file() {
        // 300 pages cross a chunk boundary, so streaming must hash exactly
        // as hashing the whole file would.
        let pages: Vec<_> = (0..300u64).map(|i| (PageIndex(i * 3 + 7), page(i as u8))).collect();
        let (bytes, hashes) = written(&pages);
        assert_eq!(bytes.len() as u64, overlay_size(300));
        assert_eq!(hashes, chunk_hashes_of(&bytes));
        assert_eq!(decode_overlay(&bytes).unwrap(), pages);
        let (empty, _) = written(&[]);
        assert_eq!(empty, [&0u64.to_le_bytes()[..], OVERLAY_MAGIC].concat());
        assert_eq!(decode_overlay(&empty).unwrap(), vec![]);
    }

    #[test]
    fn damaged_overlays_are_refused_with_the_reason() {
        let pages = vec![(PageIndex(1), page(1)), (PageIndex(2), page(2))];
        let (bytes, _) = written(&pages);
        assert_eq!(decode_overlay(&bytes[1..]), Err(OverlayError::Length { len: bytes.len() as u64 - 1, count: 2 }));
        let mut other_version = bytes.clone();
        *other_version.last_mut().unwrap() = b'2';
        assert_eq!(decode_overlay(&other_version), Err(OverlayError::Magic));
        assert_eq!(decode_overlay(b"short"), Err(OverlayError::Magic));
        let mut swapped = bytes.clone();
        let index_at = 2 * PAGE_SIZE;
        swapped[index_at] = 9; // page 1 becomes page 9, after which page 2 is out of order
        assert_eq!(decode_overlay(&swapped), Err(OverlayError::Order(1)));
        // A page count so large the length would overflow.
        let mut huge = bytes;
        let at = huge.len() - TRAILER;
        huge[at..at + 8].copy_from_slice(&u64::MAX.to_le_bytes());
        assert!(matches!(decode_overlay(&huge), Err(OverlayError::Length { .. })));
    }

    #[test]
    fn unordered_pages_are_not_written() {
        let fs = SimFs::new("/");
        let path = Path::new("/overlay");
        let mut file = fs.create_file(path).unwrap();
        let pages = vec![(PageIndex(2), page(1)), (PageIndex(2), page(2))];
        assert!(matches!(write_overlay(file.as_mut(), &pages, path), Err(Error::InvalidInput { .. })));
    }
}
