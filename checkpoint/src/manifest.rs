//! The checkpoint manifest: every file's size and per-chunk hashes, and one
//! root hash over all of them.
//!
//! On disk (little-endian):
//! `magic[8] version:u32 height:u64 n_files:u32`, then per file
//! `path_len:u16 path size:u64 n_chunks:u32 chunk_hash[32]*n_chunks`, then
//! `root[32]`. Nothing may follow. The root is recomputed on load, so any
//! changed bit either breaks parsing or changes the root.

use crate::hash::{self, Hash, chunk_count};
use crate::layout::validate_rel_path;

pub const MANIFEST_VERSION: u32 = 1;
const MAGIC: &[u8; 8] = b"CHMNFST\x01";

/// One file of a checkpoint.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct FileEntry {
    /// Path inside the checkpoint.
    pub path: String,
    /// Size in bytes.
    pub size: u64,
    /// Hash of each 1 MiB chunk, in order.
    pub chunks: Vec<Hash>,
}

impl FileEntry {
    /// The file's hash (over its size and chunk hashes).
    pub fn hash(&self) -> Hash {
        hash::file_hash(self.size, &self.chunks)
    }
}

#[derive(Clone, Debug, PartialEq, Eq)]
/// What a checkpoint holds: every file with its chunk hashes, and a root hash.
pub struct Manifest {
    height: u64,
    files: Vec<FileEntry>,
    root: Hash,
}

impl Manifest {
    /// Build a manifest; files may come in any order but paths must be unique.
    pub fn new(height: u64, mut files: Vec<FileEntry>) -> Result<Manifest, String> {
        files.sort_by(|a, b| a.path.cmp(&b.path));
        for pair in files.windows(2) {
            if pair[0].path == pair[1].path {
                return Err(format!("file {} appears twice", pair[0].path));
            }
        }
        for f in &files {
            validate_rel_path(&f.path).map_err(|e| format!("file path {:?}: {e}", f.path))?;
            if f.chunks.len() as u64 != chunk_count(f.size) {
                return Err(format!("file {} has {} chunk hashes for {} bytes", f.path, f.chunks.len(), f.size));
            }
        }
        let root = compute_root(height, &files);
        Ok(Manifest { height, files, root })
    }

    /// The checkpoint's height.
    pub fn height(&self) -> u64 {
        self.height
    }

    /// The root hash over every file.
    pub fn root_hash(&self) -> Hash {
        self.root
    }

    /// Files in path order.
    pub fn files(&self) -> &[FileEntry] {
        &self.files
    }

    /// The entry of `path`, if listed.
    pub fn file(&self, path: &str) -> Option<&FileEntry> {
        self.files.binary_search_by(|f| f.path.as_str().cmp(path)).ok().map(|i| &self.files[i])
    }

    /// The manifest's bytes, as stored in `MANIFEST`.
    pub fn encode(&self) -> Vec<u8> {
        let chunks: usize = self.files.iter().map(|f| f.chunks.len()).sum();
        let mut out = Vec::with_capacity(64 + self.files.len() * 64 + chunks * 32);
        out.extend_from_slice(MAGIC);
        out.extend_from_slice(&MANIFEST_VERSION.to_le_bytes());
        out.extend_from_slice(&self.height.to_le_bytes());
        out.extend_from_slice(&(self.files.len() as u32).to_le_bytes());
        for f in &self.files {
            out.extend_from_slice(&(f.path.len() as u16).to_le_bytes());
            out.extend_from_slice(f.path.as_bytes());
            out.extend_from_slice(&f.size.to_le_bytes());
            out.extend_from_slice(&(f.chunks.len() as u32).to_le_bytes());
            for c in &f.chunks {
                out.extend_from_slice(c);
            }
        }
        out.extend_from_slice(&self.root);
        out
    }

    /// Parse and check a manifest; the error says what is wrong.
    pub fn decode(bytes: &[u8]) -> Result<Manifest, String> {
        let mut r = Reader { bytes, at: 0 };
        if r.take(MAGIC.len())? != MAGIC {
            return Err("bad magic; not a checkpoint manifest".into());
        }
        let version = u32::from_le_bytes(r.array()?);
        if version != MANIFEST_VERSION {
            return Err(format!("unsupported manifest version {version}"));
        }
        let height = u64::from_le_bytes(r.array()?);
        let n_files = u32::from_le_bytes(r.array()?);
        let mut files: Vec<FileEntry> = Vec::new();
        for _ in 0..n_files {
            let path_len = u16::from_le_bytes(r.array()?) as usize;
            let path =
                std::str::from_utf8(r.take(path_len)?).map_err(|_| "a file path is not UTF-8".to_string())?.to_string();
            validate_rel_path(&path).map_err(|e| format!("file path {path:?}: {e}"))?;
            if files.last().is_some_and(|prev| prev.path >= path) {
                return Err(format!("file {path} is out of order or repeated"));
            }
            let size = u64::from_le_bytes(r.array()?);
            let n_chunks = u32::from_le_bytes(r.array()?) as u64;
            if n_chunks != chunk_count(size) {
                return Err(format!("file {path} lists {n_chunks} chunks for {size} bytes"));
            }
            let chunks = (0..n_chunks).map(|_| r.array()).collect::<Result<Vec<Hash>, _>>()?;
            files.push(FileEntry { path, size, chunks });
        }
        let stored_root: Hash = r.array()?;
        if r.at != bytes.len() {
            return Err(format!("{} unexpected bytes after the root hash", bytes.len() - r.at));
        }
        let root = compute_root(height, &files);
        if root != stored_root {
            return Err(format!(
                "root hash {} does not match the contents (computed {})",
                hex::encode(stored_root),
                hex::encode(root)
            ));
        }
        Ok(Manifest { height, files, root })
    }
}

fn compute_root(height: u64, files: &[FileEntry]) -> Hash {
    hash::root_hash(MANIFEST_VERSION, height, files.iter().map(|f| (f.path.as_str(), f.hash())))
}

struct Reader<'a> {
    bytes: &'a [u8],
    at: usize,
}

impl<'a> Reader<'a> {
    fn take(&mut self, n: usize) -> Result<&'a [u8], String> {
        let end = self.at.checked_add(n).filter(|end| *end <= self.bytes.len());
        let end = end.ok_or_else(|| format!("truncated at byte {} of {}", self.at, self.bytes.len()))?;
        let out = &self.bytes[self.at..end];
        self.at = end;
        Ok(out)
    }

    fn array<const N: usize>(&mut self) -> Result<[u8; N], String> {
        Ok(self.take(N)?.try_into().expect("take returned N bytes"))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn sample() -> Manifest {
        let files = vec![
            FileEntry { path: "b/heap.bin".into(), size: 3 << 20, chunks: vec![[1; 32], [2; 32], [3; 32]] },
            FileEntry { path: "a/module.wasm".into(), size: 10, chunks: vec![[4; 32]] },
            FileEntry { path: "empty".into(), size: 0, chunks: vec![] },
        ];
        Manifest::new(7, files).unwrap()
    }

    #[test]
    fn encode_decode_round_trips() {
        let m = sample();
        assert_eq!(Manifest::decode(&m.encode()).unwrap(), m);
        assert_eq!(m.files()[0].path, "a/module.wasm");
    }

    #[test]
    fn every_single_bit_flip_is_rejected() {
        let bytes = sample().encode();
        for bit in 0..bytes.len() * 8 {
            let mut bad = bytes.clone();
            bad[bit / 8] ^= 1 << (bit % 8);
            assert!(Manifest::decode(&bad).is_err(), "flip of bit {bit} went unnoticed");
        }
    }

    #[test]
    fn every_truncation_and_extension_is_rejected() {
        let bytes = sample().encode();
        for len in 0..bytes.len() {
            assert!(Manifest::decode(&bytes[..len]).is_err(), "truncation to {len} bytes went unnoticed");
        }
        let mut longer = bytes.clone();
        longer.push(0);
        assert!(Manifest::decode(&longer).unwrap_err().contains("unexpected bytes"));
    }

    #[test]
    fn duplicate_paths_and_wrong_chunk_counts_are_refused() {
        let f = FileEntry { path: "x".into(), size: 1, chunks: vec![[0; 32]] };
        assert!(Manifest::new(1, vec![f.clone(), f.clone()]).is_err());
        let g = FileEntry { path: "y".into(), size: 2 << 20, chunks: vec![[0; 32]] };
        assert!(Manifest::new(1, vec![g]).is_err());
    }
}
