//! Object names in the store.

use checkpoint::Hash;
use checkpoint::layout::{MANIFEST_FILE, checkpoint_dir_name};
use object_store::path::Path;

/// Where the chunk with hash `hash` lives.
pub(crate) fn chunk(hash: &Hash) -> Path {
    Path::from(format!("chunks/{}", hex::encode(hash)))
}

/// The prefix under which checkpoint manifests live.
pub(crate) fn checkpoints() -> Path {
    Path::from("checkpoints")
}

/// Where checkpoint `height`'s manifest lives.
pub(crate) fn manifest(height: u64) -> Path {
    Path::from(format!("checkpoints/{}/{MANIFEST_FILE}", checkpoint_dir_name(height)))
}

/// Whether `hash` is that of a chunk of `len` zero bytes: such chunks are
/// holes, neither uploaded nor downloaded.
pub(crate) fn is_zero_chunk(hash: &Hash, len: u64) -> bool {
    if len == checkpoint::hash::CHUNK_SIZE {
        return *hash == checkpoint::hash::zero_chunk_hash();
    }
    checkpoint::hash::chunk_hashes_of(&vec![0; len as usize]).first() == Some(hash)
}
