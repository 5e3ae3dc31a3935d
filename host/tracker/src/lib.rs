//! Tracked linear memory: wasm memories laid over checkpoint files, and the
//! fault-driven tracking of the pages each message reads and writes.
//!
//! This crate holds all of canister-host's `unsafe` code. Its public surface
//! is small and safe:
//!
//! - [`MemoryBackend`]: a way of tracking memories. It gives wasmtime a
//!   [`wasmtime::MemoryCreator`] and *attaches* to each new instance's memory.
//!   [`SignalBackend`] (SIGSEGV and `mprotect`, as the IC does) is the one
//!   backend today; another (userfaultfd, say) can sit beside it without the
//!   embedder changing.
//! - [`TrackedMemory`]: one attached memory. Host functions read and write it
//!   through [`TrackedMemory::read`]/[`TrackedMemory::write`] (never through
//!   faults); after a message the executor takes the changed pages with
//!   [`TrackedMemory::collect_dirty`] and makes the memory ready for the next
//!   one with [`TrackedMemory::rearm`]. Every access that touches the bytes
//!   takes the instance's store, which proves no wasm runs on the memory.
//!
//! - [`load_compiled_module`]: a compiled module loaded back from the
//!   bytes `Module::serialize` wrote (the compiled-module cache's one
//!   unsafe step).
//! - [`return_free_memory`]: the C allocator's freed page data given back
//!   to the operating system after a checkpoint or a deletion.
//!
//! Inside, every page is *untouched*, *clean* or *dirty*, and its protection
//! always matches (see `tracker`). The fault handler allocates nothing, takes
//! no lock and logs nothing.

#![deny(unsafe_code)]

#[allow(unsafe_code)] // declares the unsafe tracker interface and wraps it
mod backend;
mod bitmap;
mod compiled;
mod counters;
#[allow(unsafe_code)]
mod creator;
#[allow(unsafe_code)] // calls the C allocator's trim
mod reclaim;
#[allow(unsafe_code)]
mod reservation;
mod signal;
#[allow(unsafe_code)] // reads and writes the reservation's pages
mod tracker;

pub use backend::{AccessError, AttachError, MemoryBackend, ProtectFailure, TrackOptions, TrackedMemory};
pub use compiled::{TrustedCompiledModule, load_compiled_module};
pub use counters::MemoryCounters;
pub use creator::is_reservation_failure;
pub use reclaim::return_free_memory;
pub use signal::SignalBackend;
pub use tracker::TrackingMode;

#[cfg(test)]
#[allow(unsafe_code)] // one test breaks a contract on purpose
mod tests;
