//! `canister_host`: runs WebAssembly canisters with orthogonal persistence.
//!
//! - [`memory`]: wasm linear memory over checkpoint files, with SIGSEGV-driven
//!   tracking of the pages a message reads and writes (all `unsafe` is here);
//! - [`module`]: checking and rewriting canister modules at install;
//! - [`system_api`]: the IC System API (`ic0`);
//! - [`engine`] and [`execution`]: wasmtime configured for deterministic
//!   execution, and running messages against canister state;
//! - [`canister`] and [`registry`]: the canister lifecycle (install modes,
//!   controllers, stop/start, snapshots, logs) and the set of canisters;
//! - [`runtime`]: the [`Host`]: rounds on a worker pool, the durable message
//!   log, checkpoints every N rounds, recovery and replay verification.
//!
//! See `ARCHITECTURE.md` for how the pieces fit together.

pub mod canister;
pub mod engine;
pub mod execution;
pub mod memory;
pub mod module;
pub mod registry;
pub mod runtime;
pub mod system_api;

pub use candid::Principal;
pub use canister::{CanisterError, CanisterRecord, CanisterStatus, InstallMode, LogRecord, Snapshot};
pub use engine::{CanisterModule, Engine};
pub use execution::{
    Call, Canister, CanisterState, DirtyPages, ExecutionConfig, ExecutionError, Executor, GlobalValue, MessageResult,
    MessageStats, Target,
};
pub use memory::{MemoryCounters, TrackingMode};
pub use module::{EntryPoint, MethodKind, ModuleError};
pub use registry::{Registry, canister_id};
pub use runtime::{CallError, CallHandle, CanisterInfo, Host, HostConfig, HostError, RecoveryReport, TimeSource};
pub use system_api::{CanisterEnv, Response};
