//! Checkpoints shipped to object storage and restored from it, through the
//! `object_store` crate (local files today; S3, GCS and Azure share its
//! interface).
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
//! Entry points: [`Remote`] ([`Remote::ship_checkpoint`],
//! [`Remote::restore_checkpoint`], [`Remote::heights`]).
//!
//! Not yet here (issue 15): log segments, shipping in the background from
//! `serve`, restore and follow commands, and S3 tests.

#![deny(unsafe_code)]

mod error;
mod names;
mod remote;
mod restore;
mod ship;

pub use error::ReplicationError;
pub use remote::Remote;
pub use restore::Restored;
pub use ship::Shipped;
