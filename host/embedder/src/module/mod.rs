//! Checking and preparing canister modules at install.
//!
//! A module is validated, checked to be a canister (imports only from `ic0`,
//! entry points of the right shape, one unshared memory of 32 or 64 bits),
//! and rewritten so that instantiating it never runs code or writes to
//! memory: its active data segments are taken out, to be written into the
//! heap page map instead, and are replaced by empty passive ones so segment
//! indices stay valid; its `(start)` function is no longer the start
//! function but a reserved export, which the lifecycle runs exactly where
//! the interface spec says (before `canister_init` and
//! `canister_post_upgrade`), never at instantiation (instances are
//! re-created for every query and after every failed update). Every mutable
//! global is exported under a reserved name so the executor can save and
//! restore it, and the memory and the table get reserved exports too.

mod analyze;
mod decode;
pub mod limits;
mod rewrite;
#[cfg(test)]
mod tests;

use std::collections::BTreeMap;

use wasmparser::{Parser, Payload, ValType, Validator, WasmFeatures};

use crate::units::WasmPages;

/// Export name given to the module's memory.
pub const MEMORY_EXPORT: &str = "__canister_host_memory";
/// Prefix of the export names given to mutable globals.
pub const GLOBAL_EXPORT_PREFIX: &str = "__canister_host_global_";
/// Export name given to the module's start function.
pub const START_EXPORT: &str = "__canister_host_start";
/// Export name given to the module's table (callbacks are indices into it).
pub const TABLE_EXPORT: &str = "__canister_host_table";
/// The prefix of every reserved export name: a module may not use it.
pub const RESERVED_PREFIX: &str = "__canister_host_";
/// The custom section that marks a module built for enhanced orthogonal
/// persistence (Motoko's default): its heap must be kept on upgrade.
pub const EOP_SECTION: &str = "enhanced-orthogonal-persistence";

/// Why a module cannot be installed.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum ModuleError {
    /// The module is larger than the configured limit.
    #[error("the module is {size} bytes, over the {limit}-byte limit; shrink it or raise the limit")]
    TooLarge {
        /// Its size in bytes.
        size: usize,
        /// The limit in bytes.
        limit: usize,
    },
    /// It is not valid WebAssembly (or uses features canisters may not).
    #[error("not a valid WebAssembly module: {0}")]
    Invalid(String),
    /// It is valid WebAssembly but not shaped like a canister.
    #[error("not a canister module: {0}")]
    NotCanister(String),
    /// It is a canister this host cannot run yet.
    #[error("unsupported module: {0}")]
    Unsupported(String),
    /// It exceeds one of the IC's limits on modules.
    #[error("the module exceeds a limit: {0}")]
    LimitExceeded(String),
}

/// How a canister method may be called.
#[derive(Copy, Clone, Debug, PartialEq, Eq, Hash)]
pub enum MethodKind {
    /// `canister_update <name>`: replicated; its changes persist.
    Update,
    /// `canister_query <name>`: its changes are discarded.
    Query,
    /// `canister_composite_query <name>`: a query that may call other queries.
    CompositeQuery,
}

impl MethodKind {
    /// The prefix of the export names of this kind of method.
    pub fn export_prefix(self) -> &'static str {
        match self {
            MethodKind::Update => "canister_update ",
            MethodKind::Query => "canister_query ",
            MethodKind::CompositeQuery => "canister_composite_query ",
        }
    }
}

impl std::fmt::Display for MethodKind {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(match self {
            MethodKind::Update => "update",
            MethodKind::Query => "query",
            MethodKind::CompositeQuery => "composite query",
        })
    }
}

/// System entry points a canister may export.
#[derive(Copy, Clone, Debug, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum EntryPoint {
    /// `canister_init`: runs on install and reinstall.
    Init,
    /// `canister_pre_upgrade`: runs on the old module before an upgrade.
    PreUpgrade,
    /// `canister_post_upgrade`: runs on the new module after an upgrade.
    PostUpgrade,
    /// `canister_inspect_message`: may refuse an ingress update.
    InspectMessage,
    /// `canister_heartbeat`: runs every round.
    Heartbeat,
    /// `canister_global_timer`: runs when the global timer is due.
    GlobalTimer,
    /// `canister_on_low_wasm_memory` (never run by this host yet).
    OnLowWasmMemory,
    /// The module's `(start)` function, exported under [`START_EXPORT`].
    Start,
}

impl EntryPoint {
    const ALL: [EntryPoint; 7] = [
        EntryPoint::Init,
        EntryPoint::PreUpgrade,
        EntryPoint::PostUpgrade,
        EntryPoint::InspectMessage,
        EntryPoint::Heartbeat,
        EntryPoint::GlobalTimer,
        EntryPoint::OnLowWasmMemory,
    ];

    /// The export's name.
    pub fn export_name(self) -> &'static str {
        match self {
            EntryPoint::Init => "canister_init",
            EntryPoint::PreUpgrade => "canister_pre_upgrade",
            EntryPoint::PostUpgrade => "canister_post_upgrade",
            EntryPoint::InspectMessage => "canister_inspect_message",
            EntryPoint::Heartbeat => "canister_heartbeat",
            EntryPoint::GlobalTimer => "canister_global_timer",
            EntryPoint::OnLowWasmMemory => "canister_on_low_wasm_memory",
            EntryPoint::Start => START_EXPORT,
        }
    }
}

/// An active data segment, taken out of the module.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct DataSegment {
    /// Where it goes in the heap.
    pub offset: u64,
    /// What it holds.
    pub bytes: Vec<u8>,
}

/// A mutable global and the name it is exported under.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct MutableGlobal {
    /// Its index in the module's global space.
    pub index: u32,
    /// Its type.
    pub ty: ValType,
    /// The reserved export name the executor reads and writes it by.
    pub export: String,
}

/// A function imported from `ic0`.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Ic0Import {
    /// The function's name in `ic0`.
    pub name: String,
    /// Its parameter types.
    pub params: Vec<ValType>,
    /// Its result types.
    pub results: Vec<ValType>,
}

/// The linear memory a module defines.
#[derive(Copy, Clone, Debug, PartialEq, Eq)]
pub struct MemoryInfo {
    /// Its size when instantiated.
    pub initial: WasmPages,
    /// The most it may grow to, if the module says.
    pub maximum: Option<WasmPages>,
    /// Whether it is a 64-bit memory (wasm64): the System API's `I` is
    /// then `i64`.
    pub is_64: bool,
}

/// What the executor needs to know about a canister module.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ModuleInfo {
    /// Its methods by name.
    pub methods: BTreeMap<String, MethodKind>,
    /// The system entry points it exports.
    pub entry_points: Vec<EntryPoint>,
    /// Its memory, if it has one.
    pub memory: Option<MemoryInfo>,
    /// Its active data segments, in order (taken out of the module).
    pub data: Vec<DataSegment>,
    /// Its mutable globals, in order.
    pub globals: Vec<MutableGlobal>,
    /// Its `ic0` imports, in order.
    pub imports: Vec<Ic0Import>,
    /// The index of its `(start)` function, if it has one.
    pub start: Option<u32>,
    /// Whether it defines a table (exported under [`TABLE_EXPORT`]).
    pub has_table: bool,
    /// Whether it uses 64-bit memories or tables (compiled with memory64).
    pub uses_64_bit: bool,
    /// Whether it carries the enhanced orthogonal persistence marker
    /// (`icp:private` or `icp:public` [`EOP_SECTION`]).
    pub enhanced_orthogonal_persistence: bool,
    /// Whether its code can change instance state that is not canister
    /// state (tables, dropped segments). The IC starts every message on a
    /// fresh instance, so such a module's instances are never kept between
    /// messages: a kept one would carry the change to the next message,
    /// and replay (on fresh instances) would diverge.
    pub mutates_instance: bool,
}

impl ModuleInfo {
    /// Whether the module exports `entry`.
    pub fn has(&self, entry: EntryPoint) -> bool {
        self.entry_points.contains(&entry)
    }

    /// Whether its memory is 64-bit, so the System API takes `i64`
    /// addresses.
    pub fn is_wasm64(&self) -> bool {
        self.memory.is_some_and(|m| m.is_64)
    }
}

/// Features canisters may use: WebAssembly 2.0 (bulk memory, reference
/// types, multi-value, deterministic SIMD...) plus extended constants and
/// 64-bit memories and tables (wasm64, as the IC accepts). No threads,
/// relaxed SIMD, multiple memories, tail calls, GC or exceptions: the IC
/// allows none of them either. `externref` is refused here too, with a
/// clear message, rather than later by the engine: it needs a
/// garbage-collecting runtime, which this host does not build.
pub fn features() -> WasmFeatures {
    (WasmFeatures::WASM2 | WasmFeatures::EXTENDED_CONST | WasmFeatures::MEMORY64).difference(WasmFeatures::GC_TYPES)
}

pub use decode::decode;

/// Check `wasm` (raw or gzip-compressed) and prepare it for execution: the
/// facts about it, and the rewritten module to compile.
pub fn prepare(wasm: &[u8], max_bytes: usize) -> Result<(ModuleInfo, Vec<u8>), ModuleError> {
    if wasm.len() > max_bytes {
        return Err(ModuleError::TooLarge { size: wasm.len(), limit: max_bytes });
    }
    let wasm = &decode(wasm, max_bytes)?;
    if !wasm.starts_with(b"\0asm") {
        return Err(ModuleError::Invalid("it does not start with the WebAssembly magic bytes".into()));
    }
    limits::check(wasm)?;
    reject_out_of_scope(wasm)?;
    Validator::new_with_features(features()).validate_all(wasm).map_err(|e| ModuleError::Invalid(e.to_string()))?;
    let info = analyze::analyze(wasm)?;
    let rewritten = rewrite::rewrite(wasm, &info)?;
    Ok((info, rewritten))
}

/// Give precise errors for things the validator would report cryptically.
fn reject_out_of_scope(wasm: &[u8]) -> Result<(), ModuleError> {
    for payload in Parser::new(0).parse_all(wasm) {
        let Ok(payload) = payload else { return Ok(()) }; // the validator explains
        match payload {
            Payload::MemorySection(reader) => {
                for memory in reader.into_iter().flatten() {
                    if memory.shared {
                        return Err(ModuleError::Unsupported("shared memories (threads) are not supported".into()));
                    }
                }
            }
            Payload::ExportSection(reader) => {
                for export in reader.into_iter().flatten() {
                    if export.name.starts_with(RESERVED_PREFIX) {
                        return Err(ModuleError::NotCanister(format!(
                            "it exports {:?}; names starting with {RESERVED_PREFIX:?} are reserved for the host",
                            export.name
                        )));
                    }
                }
            }
            Payload::ComponentSection { .. } | Payload::ModuleSection { .. } => {
                return Err(ModuleError::NotCanister("it is a component, not a core module".into()));
            }
            _ => {}
        }
    }
    Ok(())
}
