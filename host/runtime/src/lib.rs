//! `canister_host`: the runtime. A [`Host`] owns a state directory and runs
//! canisters in rounds, with orthogonal persistence.
//!
//! ```text
//! callers -> Host (host.rs) -> scheduler thread (scheduler.rs): gather a round
//!            -> execute it on the worker pool (round/): create/delete, then
//!               each canister's work in parallel (canister/ over the embedder)
//!            -> append it to the write-ahead log and fsync (wal/): group commit
//!            -> publish the committed view (view.rs), release the replies
//!            -> every N rounds: checkpoint (persist/), remap memories, prune
//! queries  -> the committed view, on the caller's thread, never waiting
//! open     -> newest checkpoint that verifies -> replay the log (recovery.rs,
//!             replay.rs)
//! verify   -> the same replay, read-only, reporting the first divergence
//! ```
//!
//! The crates below this one: `embedder` runs one message in wasmtime over
//! tracked memory, `memory_tracker` tracks its pages, `checkpoint` and
//! `page_delta` keep the state on disk and in memory.

#![deny(unsafe_code)]

mod admission;
pub mod canister;
mod checkpointer;
mod composite;
mod config;
mod error;
mod host;
mod metrics;
mod persist;
mod query;
mod query_pool;
mod reclaim;
mod recovery;
mod registry;
mod replay;
mod restore;
pub mod round;
mod scheduler;
mod spin;
mod time_travel;
mod verify;
mod view;
pub mod wal;

pub use admission::{MAX_CONTROLLERS, MAX_METHOD_NAME_BYTES, MAX_NAME_BYTES};
pub use candid::Principal;
pub use canister::{
    Canister, CanisterError, CanisterLogRecord, CanisterStatus, InstallMode, Snapshot, WasmMemoryPersistence,
};
pub use composite::{INSTRUCTIONS_PER_QUERY_CALL, MAX_COMPOSITE_INSTRUCTIONS, MAX_QUERY_CALL_DEPTH};
pub use config::{HostConfig, TimeSource};
pub use embedder::{
    CanisterModule, CanisterState, Engine, ErrorCode, ExecutionConfig, ExecutionError, Executor, MessageResult,
    MethodKind, ModuleCache, ModuleCacheCounters, RejectCode, TrackingMode, WasmPages,
};
pub use error::{CallError, HostError};
pub use host::{CallHandle, Host, HostCounters, LogSealer, MODULE_CACHE};
pub use prometheus;
pub use query::Certifier;
pub use recovery::RecoveryReport;
pub use registry::{Registry, canister_id};
pub use replay::Divergence;
pub use restore::{RestorePlan, restore};
pub use time_travel::{LiveReplay, PastState};
pub use verify::{VerifyOptions, VerifyProgress, VerifyReport, verify};
pub use view::{CanisterInfo, LastRound, SnapshotSummary};
