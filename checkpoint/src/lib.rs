//! Crash-safe, verifiable checkpoints of canister state.
//!
//! A [`StateDir`] owns one state directory (see [`layout`]): it takes the
//! `LOCK`, wipes `tmp/`, and finds the newest checkpoint that validates,
//! falling back to older ones and saying why.
//!
//! A checkpoint is a directory of files plus a `MANIFEST` with SHA-256 hashes
//! per 1 MiB chunk and one root hash ([`Manifest`]). Checkpoint `H` is built
//! from checkpoint `H-1` and the deltas since ([`CheckpointSpec`]):
//!
//! - a memory file is cloned from its previous version (`FICLONE`, or a
//!   sparse copy with `SEEK_DATA`/`SEEK_HOLE` and `copy_file_range`), its
//!   delta pages are written over it, and it is synced; an unchanged file is
//!   hard-linked instead, which costs O(1);
//! - only chunks the delta touched are rehashed; the rest reuse the previous
//!   manifest's hashes, a few of them rehashed as a guard;
//! - everything is built in `tmp/`, synced, renamed into
//!   `checkpoints/<height:016x>/`, and the parent directory is synced.
//!
//! - an overlay file ([`overlay`]) holds just the pages a memory changed
//!   since the checkpoint its base file comes from; the caller links the
//!   base and the older overlays and writes only the new one, so the cost
//!   follows the pages that changed, not the memory's size;
//!
//! So a crash at any point leaves either the previous checkpoint or the new
//! one, never a mix. A failed fsync aborts the checkpoint.
//!
//! All file operations go through [`Fs`]; [`sim::SimFs`] simulates crashes
//! and injects faults for the tests that prove the above.

#![deny(unsafe_code)]

mod checkpoint;
mod chunks;
mod error;
mod fs;
pub mod hash;
pub mod layout;
mod manifest;
mod memory_hash;
pub mod overlay;
#[allow(unsafe_code)] // FICLONE and sync_file_range, which nix does not wrap
mod real_fs;
pub mod sim;
mod state_dir;
mod writer;

pub use checkpoint::{Checkpoint, FileRef};
pub use error::{Error, Result};
pub use fs::{DirEntry, EntryKind, Fs, FsFile, LockGuard, Stat, read_all};
pub use hash::Hash;
pub use manifest::{FileEntry, Manifest};
pub use real_fs::RealFs;
pub use state_dir::{Loaded, StateDir, Verification};
pub use writer::{CheckpointSpec, FileSource, FileSpec, StageStats, Staged};
