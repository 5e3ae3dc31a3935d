//! Rounds: what the write-ahead log records, how a round executes, and
//! its digests.
//!
//! - `schema`: the operations a round holds, their outcomes, and the record
//!   the log keeps (Candid);
//! - `execute`: a round's two phases. First, in arrival order, the
//!   operations on the set of canisters (create, delete). Then every
//!   canister with work, its operations in arrival order (after its due
//!   timer and heartbeat);
//! - `pool`: the threads the second phase runs on;
//! - `digest`: per-canister and per-round digests, and the digest of a
//!   whole state.
//!
//! Canisters share nothing, so the results, and the digests over them, do
//! not depend on the number of workers or on scheduling.

mod digest;
mod execute;
mod management;
mod pool;
mod schema;
mod snapshot_data;
#[cfg(test)]
mod tests;

pub use digest::state_digest;
pub use execute::{NotApplied, RoundResult};
pub use management::{local_snapshot_id, snapshot_id};
pub use pool::{ModuleOverrides, WorkerPool};
pub use schema::{OPERATION_OVERHEAD, Operation, Outcome, ROUND_RECORD_FORMAT, RoundRecord};
pub use snapshot_data::MAX_SNAPSHOT_READ_BYTES;
