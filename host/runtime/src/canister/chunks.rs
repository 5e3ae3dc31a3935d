//! The wasm chunk store: pieces of a module too large for one message,
//! uploaded one by one and installed together (`upload_chunk`,
//! `stored_chunks`, `clear_chunk_store`, `install_chunked_code`). Limits
//! and error texts are the IC's.

use std::collections::BTreeMap;
use std::sync::Arc;

use sha2::{Digest, Sha256};

use super::Canister;

/// The largest chunk (1 MiB).
pub const MAX_CHUNK_BYTES: usize = 1 << 20;
/// The most chunks a store holds (its 100 MiB, counted as 1 MiB a chunk).
pub const MAX_CHUNKS: usize = 100;

/// Chunks by their SHA-256.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct ChunkStore {
    chunks: BTreeMap<[u8; 32], Arc<[u8]>>,
}

impl ChunkStore {
    /// A store holding `chunks`.
    pub fn from_chunks(chunks: impl IntoIterator<Item = Vec<u8>>) -> ChunkStore {
        ChunkStore { chunks: chunks.into_iter().map(|c| (Sha256::digest(&c).into(), c.into())).collect() }
    }

    /// Store a chunk; returns its hash. Storing one already there is free.
    pub fn upload(&mut self, chunk: Vec<u8>) -> Result<[u8; 32], String> {
        if chunk.len() > MAX_CHUNK_BYTES {
            return Err(format!("Wasm chunk size {} exceeds the maximum chunk size of {MAX_CHUNK_BYTES}", chunk.len()));
        }
        let hash: [u8; 32] = Sha256::digest(&chunk).into();
        if !self.chunks.contains_key(&hash) && self.chunks.len() >= MAX_CHUNKS {
            return Err(format!(
                "Wasm chunk store has already reached maximum capacity of {} bytes or the maximum number of \
                 entries, {MAX_CHUNKS}",
                MAX_CHUNKS * MAX_CHUNK_BYTES
            ));
        }
        self.chunks.entry(hash).or_insert_with(|| chunk.into());
        Ok(hash)
    }

    /// The hashes stored, in order.
    pub fn hashes(&self) -> impl Iterator<Item = &[u8; 32]> {
        self.chunks.keys()
    }

    /// The chunks, by hash.
    pub fn iter(&self) -> impl Iterator<Item = (&[u8; 32], &Arc<[u8]>)> {
        self.chunks.iter()
    }

    /// Remove every chunk.
    pub fn clear(&mut self) {
        self.chunks.clear();
    }

    /// The module the chunks `hashes` make, in order, checked against
    /// `module_hash`.
    pub fn assemble(&self, hashes: &[Vec<u8>], module_hash: &[u8]) -> Result<Vec<u8>, String> {
        if module_hash.len() != 32 {
            return Err(format!("Invalid wasm hash {module_hash:?}"));
        }
        let mut wasm = Vec::new();
        for hash in hashes {
            let key: [u8; 32] =
                hash.as_slice().try_into().map_err(|_| "Chunk hash is invalid. The length is not 32".to_string())?;
            let chunk = self.chunks.get(&key).ok_or_else(|| format!("Chunk hash {hash:?} was not found"))?;
            wasm.extend_from_slice(chunk);
        }
        let actual: [u8; 32] = Sha256::digest(&wasm).into();
        if actual[..] != *module_hash {
            return Err(format!("Wasm module hash {actual:?} does not match given hash {module_hash:?}"));
        }
        Ok(wasm)
    }

    /// Whether it holds nothing.
    pub fn is_empty(&self) -> bool {
        self.chunks.is_empty()
    }
}

impl Canister {
    /// The wasm chunk store.
    pub fn chunk_store(&self) -> &ChunkStore {
        &self.chunks
    }

    /// The wasm chunk store, to change it.
    pub(crate) fn chunk_store_mut(&mut self) -> &mut ChunkStore {
        &mut self.chunks
    }
}
