//! Shipping one published checkpoint.

use std::os::unix::fs::FileExt;
use std::path::Path;

use bytes::Bytes;
use checkpoint::Manifest;
use checkpoint::hash::{CHUNK_SIZE, chunk_hashes_of};
use checkpoint::layout::MANIFEST_FILE;

use crate::error::ReplicationError;
use crate::names;
use crate::remote::Remote;

/// What a shipment did.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Shipped {
    /// The checkpoint's height.
    pub height: u64,
    /// Chunks the manifest names.
    pub chunks: u64,
    /// Chunks uploaded now; the rest were in the store or all zeros.
    pub uploaded: u64,
    /// Bytes uploaded now, the manifest included.
    pub uploaded_bytes: u64,
    /// Whether the manifest was already in the store (nothing to do).
    pub already_shipped: bool,
}

impl Remote {
    /// Ship the published checkpoint in directory `dir` (a state
    /// directory's `checkpoints/<height>`): every chunk the store lacks,
    /// each checked against the manifest first, then the manifest.
    pub fn ship_checkpoint(&self, dir: &Path) -> Result<Shipped, ReplicationError> {
        let manifest_path = dir.join(MANIFEST_FILE);
        let bytes = std::fs::read(&manifest_path).map_err(ReplicationError::io("read", &manifest_path))?;
        let manifest = Manifest::decode(&bytes)
            .map_err(|reason| ReplicationError::BadCheckpoint { path: manifest_path.clone(), reason })?;
        let mut shipped = Shipped { height: manifest.height(), ..Shipped::default() };
        let manifest_object = names::manifest(manifest.height());
        shipped.chunks = manifest.files().iter().map(|f| f.chunks.len() as u64).sum();
        // Shipped already (unless the store's manifest is another
        // history's, which is an error): nothing to do.
        if self.holds(&manifest_object, &bytes)? {
            shipped.already_shipped = true;
            return Ok(shipped);
        }
        let mut buf = vec![0u8; CHUNK_SIZE as usize];
        for entry in manifest.files() {
            let path = dir.join(&entry.path);
            let file = std::fs::File::open(&path).map_err(ReplicationError::io("open", &path))?;
            for (i, hash) in entry.chunks.iter().enumerate() {
                let offset = i as u64 * CHUNK_SIZE;
                let len = (entry.size - offset).min(CHUNK_SIZE);
                // Holes and zeroed pages: the restore writes nothing there.
                if names::is_zero_chunk(hash, len) || self.is_known(hash) {
                    continue;
                }
                let object = names::chunk(hash);
                if !self.exists(&object)? {
                    let chunk = &mut buf[..len as usize];
                    file.read_exact_at(chunk, offset).map_err(ReplicationError::io("read", &path))?;
                    if chunk_hashes_of(chunk).first() != Some(hash) {
                        let reason = format!("chunk {i} does not hash to the manifest's {}", hex::encode(hash));
                        return Err(ReplicationError::LocalCorrupt { path, reason });
                    }
                    self.put(&object, Bytes::copy_from_slice(chunk))?;
                    shipped.uploaded += 1;
                    shipped.uploaded_bytes += len;
                }
                self.mark_known(hash);
            }
        }
        shipped.uploaded_bytes += bytes.len() as u64;
        // Last: its presence means every chunk it names is there.
        self.put_once(&manifest_object, Bytes::from(bytes))?;
        Ok(shipped)
    }
}
