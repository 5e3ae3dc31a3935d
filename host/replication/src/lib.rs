//! Checkpoints and log shipped to object storage and restored from it,
//! through the `object_store` crate: local directories (`file://`) and S3
//! or S3-compatible servers (`s3://`); GCS and Azure share its interface.
//!
//! A checkpoint is stored content-addressed: each 1 MiB chunk of each file
//! as `chunks/<chunk hash>`, named by the hash the checkpoint's manifest
//! already holds, then the manifest itself as
//! `checkpoints/<height:016x>/MANIFEST`, last. So:
//! - a chunk already in the store (from an earlier checkpoint of the same
//!   memory, say) is never uploaded again;
//! - shipping is idempotent and resumable: an interrupted shipment leaves
//!   chunks without a manifest, and shipping again uploads what is missing;
//! - a manifest in the store means every chunk it names is there;
//! - restoring checks every chunk against the manifest before writing it,
//!   and names any object that is missing or does not match.
//!
//! Chunks of zeros are neither uploaded nor downloaded: restored files keep
//! their holes.
//!
//! Sealed write-ahead log segments ship whole, as `log/<segment name>`
//! (the log never appends to a sealed segment, and the shipper seals the
//! active one at each pass through the host's [`canister_host::LogSealer`]); a restore fetches those
//! after its checkpoint, and the host replays them, checking each record's
//! hash chain, up to the last shipped round.
//!
//! Entry points: [`Remote`] ([`Remote::ship_state_dir`], [`Remote::restore`],
//! and their parts [`Remote::ship_checkpoint`], [`Remote::ship_segment`],
//! [`Remote::restore_checkpoint`], [`Remote::heights`]).
//!
//! [`Replicator`] ships a live state directory in the background, and
//! with [`Shipping::keep_checkpoints`] keeps the store bounded
//! ([`Remote::prune`]).
//!
//! [`Follower`] is a read replica: it tails the store, replays what it
//! fetches (checking every digest) and answers queries on it;
//! [`Follower::follow`] keeps it caught up in the background.

#![deny(unsafe_code)]

mod error;
mod follower;
mod log;
mod metrics;
mod names;
mod prune;
mod remote;
mod replicator;
mod restore;
mod ship;
mod state;

pub use error::ReplicationError;
pub use follower::{Follower, Following, REPLICA_MARKER};
pub use prune::Pruned;
pub use remote::Remote;
pub use replicator::{ReplicationStatus, Replicator, Shipping};
pub use restore::Restored;
pub use ship::Shipped;
pub use state::ShippedDir;
