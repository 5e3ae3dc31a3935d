//! The embedder: runs canister messages in wasmtime over tracked memory.
//!
//! - [`module`]: checking a canister module and rewriting it so that
//!   instantiation never writes memory (data segments go to the page map);
//! - [`system_api`]: the IC System API (`ic0`) as host functions;
//! - [`Engine`]: wasmtime configured for deterministic execution, with the
//!   memory-tracking backend and the System API linked in;
//! - [`Executor`]: runs a message against a [`CanisterState`] and folds what
//!   it did (dirty pages, globals, stable memory) into the next state, all or
//!   nothing.
//!
//! The memory tracking itself, and every `unsafe` line, live in the
//! `memory_tracker` crate below this one.

#![deny(unsafe_code)]

pub mod codes;
mod engine;
pub mod execution;
pub mod module;
mod module_cache;
pub mod system_api;
mod units;

pub use codes::{ErrorCode, RejectCode};
pub use engine::{CanisterModule, Engine, EngineError};
pub use execution::{
    Call, CallbackKind, CallbackTarget, Cancelled, CanisterState, DirtyPages, Executable, ExecutionConfig,
    ExecutionError, Executor, GlobalValue, Incoming, MessageResult, MessageStats, SliceGate, Target,
};
pub use memory_tracker::{MemoryCounters, TrackingMode, return_free_memory};
pub use module::{EntryPoint, MethodKind, ModuleError};
pub use module_cache::{ModuleCache, ModuleCacheCounters};
pub use system_api::{CanisterEnv, Response};
pub use units::WasmPages;
