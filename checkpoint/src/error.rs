//! The errors of state directories and checkpoints.

use std::io;
use std::path::PathBuf;

/// Everything that can go wrong with a state directory or a checkpoint.
///
/// Each message names the file or checkpoint involved and, where there is
/// one, what the operator can do about it.
#[derive(Debug, thiserror::Error)]
#[allow(missing_docs)] // fields are named by what they hold; each message says the rest
pub enum Error {
    /// Another process holds the directory's lock.
    #[error(
        "state directory {dir} is in use by {}; stop that process or use another directory",
        match .pid { Some(pid) => format!("process {pid}"), None => "another process".to_string() }
    )]
    Locked { dir: PathBuf, pid: Option<u32> },

    /// A file operation failed.
    #[error("{op} {path}: {source}")]
    Io { op: &'static str, path: PathBuf, source: io::Error },

    /// A manifest does not parse or its root hash does not match.
    #[error("checkpoint manifest {path} is corrupt: {reason}; fall back to an older checkpoint")]
    ManifestCorrupt { path: PathBuf, reason: String },

    /// Something canister-host did not write is in the state directory.
    #[error(
        "unexpected entry {path} in the state directory; it was not written by canister-host — \
         move it out of the state directory"
    )]
    ForeignEntry { path: PathBuf },

    /// A file the manifest lists is missing.
    #[error("checkpoint {height:016x}: file {file} listed in the manifest is missing")]
    MissingFile { height: u64, file: String },

    /// A file's size differs from the manifest's.
    #[error(
        "checkpoint {height:016x}: file {file} is {actual} bytes but the manifest says {expected}; \
         it was truncated or modified"
    )]
    SizeMismatch { height: u64, file: String, expected: u64, actual: u64 },

    /// A chunk's hash differs from the manifest's.
    #[error(
        "checkpoint {height:016x}: file {file} chunk {chunk} (bytes {offset}..) does not match \
         its manifest hash; the file is corrupt"
    )]
    ChunkMismatch { height: u64, file: String, chunk: u64, offset: u64 },

    /// A reused chunk hash, rechecked as a guard, was wrong.
    #[error(
        "while writing checkpoint {height:016x}: the reused hash of {file} chunk {chunk} does not \
         match the file's contents; the previous checkpoint is corrupt or the delta was incomplete"
    )]
    GuardMismatch { height: u64, file: String, chunk: u64 },

    /// Checkpoint heights must increase.
    /// An overlay file does not decode (its hashes matched, so it was
    /// written wrong or by another version).
    #[error("checkpoint {height:016x}: overlay {file} is damaged: {reason}; fall back to an older checkpoint")]
    OverlayCorrupt { height: u64, file: String, reason: crate::overlay::OverlayError },

    #[error("checkpoint {height:016x} must be newer than the newest checkpoint {newest:016x}")]
    HeightNotIncreasing { height: u64, newest: u64 },

    /// No checkpoint has this height.
    #[error("checkpoint {height:016x} does not exist")]
    NotFound { height: u64 },

    /// The checkpoint has no such file.
    #[error("checkpoint {height:016x} has no file {file}")]
    NoSuchFile { height: u64, file: String },

    /// A file path inside a checkpoint is not allowed.
    #[error("invalid checkpoint file path {path:?}: {reason}")]
    InvalidPath { path: String, reason: &'static str },

    /// What was asked to be checkpointed is inconsistent.
    #[error("invalid checkpoint input for {file}: {reason}")]
    InvalidInput { file: String, reason: String },

    /// Every checkpoint failed validation (newest first).
    #[error(
        "none of the {} checkpoints validates (newest failure: {}); inspect the state directory \
         or restore it from a backup",
        .failures.len(),
        .failures.first().map(|(_, e)| e.to_string()).unwrap_or_default()
    )]
    NoValidCheckpoint { failures: Vec<(u64, Error)> },

    /// Pruning would keep no checkpoint.
    #[error("refusing to prune every checkpoint: keep must be at least 1")]
    PruneAll,

    /// A write to a directory opened read-only.
    #[error("state directory {dir} was opened read-only; it cannot be written")]
    ReadOnly { dir: PathBuf },
}

impl Error {
    pub(crate) fn io(op: &'static str, path: impl Into<PathBuf>) -> impl FnOnce(io::Error) -> Error {
        let path = path.into();
        move |source| Error::Io { op, path, source }
    }
}

/// A result whose error is this crate's [`Error`].
pub type Result<T, E = Error> = std::result::Result<T, E>;
