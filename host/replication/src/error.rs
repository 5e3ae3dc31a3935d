//! What can go wrong shipping or restoring.

use std::path::PathBuf;

/// A failed shipment or restore. Each names the object or file at fault.
#[derive(Debug, thiserror::Error)]
pub enum ReplicationError {
    /// The object store failed (unreachable, refused, ...): retry later;
    /// shipping again resumes where this one stopped.
    #[error("object store: {op} {object}: {source}")]
    Store {
        /// What was being done.
        op: &'static str,
        /// The object's name in the store.
        object: String,
        /// The store's error.
        #[source]
        source: object_store::Error,
    },
    /// An object the restore needs is not in the store.
    #[error("object {object} is missing from the store: it was never shipped completely, or was deleted")]
    Missing {
        /// The object's name in the store.
        object: String,
    },
    /// An object's bytes do not match the manifest that names it.
    #[error("object {object} is corrupt: {reason}; ship the checkpoint again from a host that has it")]
    Corrupt {
        /// The object's name in the store.
        object: String,
        /// What did not match.
        reason: String,
    },
    /// The store holds other bytes under a name this host ships (a
    /// manifest of the same height, a log segment of the same first
    /// round): another history, such as the primary's before it was
    /// rolled back. Nothing is overwritten.
    #[error(
        "object {object} in the store holds another history than this host's ({reason}): was the primary rolled \
         back with `restore --height`, or do two hosts ship to one store? Ship to a new store or prefix"
    )]
    Diverged {
        /// The object's name in the store.
        object: String,
        /// How it differs.
        reason: String,
    },
    /// A local file could not be read or written.
    #[error("{op} {}: {source}", path.display())]
    Io {
        /// What was being done.
        op: &'static str,
        /// The file.
        path: PathBuf,
        /// The system's error.
        #[source]
        source: std::io::Error,
    },
    /// The local checkpoint does not match its own manifest: it will not be
    /// shipped.
    #[error("local checkpoint file {} does not match its manifest: {reason}; run `canister-host checkpoint verify`", path.display())]
    LocalCorrupt {
        /// The file.
        path: PathBuf,
        /// What did not match.
        reason: String,
    },
    /// The local checkpoint directory's manifest is unreadable or invalid.
    #[error("{}: {reason}", path.display())]
    BadCheckpoint {
        /// The checkpoint directory.
        path: PathBuf,
        /// What is wrong.
        reason: String,
    },
    /// A follower was asked to run an update.
    #[error("this is a read replica: send updates to the primary{}", primary.as_ref().map_or(String::new(), |p| format!(" at {p}")))]
    ReadOnly {
        /// Where the primary serves, if known.
        primary: Option<String>,
    },
    /// A follower was pointed at a state directory that is not a replica
    /// (a primary's, say), which catching up would overwrite.
    #[error("{} holds a state of its own, not a replica: follow into a fresh directory", dir.display())]
    NotAReplica {
        /// The directory.
        dir: PathBuf,
    },
    /// The follower's directory cannot be taken (another process holds
    /// it, say).
    #[error(transparent)]
    Directory(#[from] checkpoint::Error),
    /// Replaying the fetched state failed (a record that breaks the chain,
    /// a digest the replay does not reproduce).
    #[error("replaying the shipped state: {0}")]
    Host(#[from] canister_host::HostError),
    /// A store URL this build cannot open.
    #[error("cannot open the store {url}: use file:///absolute/path or s3://bucket[/prefix]")]
    Unsupported {
        /// The URL.
        url: String,
    },
    /// Restoring would overwrite a checkpoint that already exists.
    #[error("checkpoint {height} already exists in {}: restore into a fresh state directory", dir.display())]
    Exists {
        /// The state directory.
        dir: PathBuf,
        /// The height.
        height: u64,
    },
}

impl ReplicationError {
    pub(crate) fn io(op: &'static str, path: impl Into<PathBuf>) -> impl FnOnce(std::io::Error) -> ReplicationError {
        let path = path.into();
        move |source| ReplicationError::Io { op, path, source }
    }

    /// A store error on `object`, with a missing object told apart.
    pub(crate) fn store(
        op: &'static str,
        object: &object_store::path::Path,
    ) -> impl FnOnce(object_store::Error) -> ReplicationError + use<> {
        let object = object.to_string();
        move |source| match source {
            object_store::Error::NotFound { .. } => ReplicationError::Missing { object },
            source => ReplicationError::Store { op, object, source },
        }
    }
}
