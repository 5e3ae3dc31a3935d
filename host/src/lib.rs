//! `canister_host`: runs WebAssembly canisters with orthogonal persistence.
//!
//! - [`memory`]: wasm linear memory over checkpoint files, with SIGSEGV-driven
//!   tracking of the pages a message reads and writes (all `unsafe` is here);
//! - [`module`]: checking and rewriting canister modules at install;
//! - [`system_api`]: the IC System API (`ic0`);
//! - [`engine`] and [`execution`]: wasmtime configured for deterministic
//!   execution, and running messages against canister state.
//!
//! See `ARCHITECTURE.md` for how the pieces fit together.

pub mod engine;
pub mod execution;
pub mod memory;
pub mod module;
pub mod system_api;

pub use engine::{CanisterModule, Engine};
pub use execution::{
    Call, Canister, CanisterState, DirtyPages, ExecutionConfig, ExecutionError, Executor, GlobalValue, MessageResult,
    MessageStats, Target,
};
pub use memory::{MemoryCounters, TrackingMode};
pub use module::{EntryPoint, MethodKind, ModuleError};
pub use system_api::{CanisterEnv, Response};
