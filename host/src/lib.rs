//! `canister_host`: runs WebAssembly canisters with orthogonal persistence.
//!
//! This crate will hold the execution engine (wasmtime over checkpoint-mapped
//! memory with SIGSEGV dirty-page tracking), the IC System API, the canister
//! lifecycle, and the host runtime (rounds, message log, checkpoints,
//! recovery). It builds on [`page_delta`] for in-memory state and
//! [`checkpoint`] for durable state. See `ARCHITECTURE.md`.
