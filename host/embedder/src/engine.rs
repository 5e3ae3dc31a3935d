//! The wasmtime engine, configured for deterministic canister execution over
//! tracked memory, and compiled canister modules.

use std::sync::Arc;

use sha2::{Digest, Sha256};
use wasmtime::{Config, InstancePre, Linker, Module, OptLevel};

use memory_tracker::{MemoryBackend, SignalBackend};

use crate::module::{self, ModuleError, ModuleInfo};
use crate::module_cache::ModuleCache;
use crate::system_api::{self, HostState};

/// Address space reserved per 32-bit linear memory: all of wasm32, so
/// bounds checks are elided and the memory never moves.
pub const MEMORY_RESERVATION: u64 = 4 << 30;
/// Address space reserved per 64-bit linear memory: the most a wasm64 heap
/// may grow to (the IC's largest wasm64 heap, 18 GiB). Accesses are bounds
/// checked explicitly against it, and the pages past the heap's current
/// size are inaccessible, so the fault handler turns accesses there into
/// traps.
pub const MEMORY64_RESERVATION: u64 = 18 << 30;
/// Inaccessible space on each side of a memory. Accesses with larger static
/// offsets get explicit bounds checks.
pub const MEMORY_GUARD: u64 = 32 << 20;

/// Stack of the fiber a sliced message runs on: wasmtime's default wasm
/// stack limit (512 KiB) and well over a MiB for host code under it.
const ASYNC_STACK: usize = 2 << 20;

/// The engine could not be set up.
#[derive(Debug, thiserror::Error)]
#[error("cannot configure the wasmtime engine: {0}")]
pub struct EngineError(String);

/// A memory-tracking backend for canister stores.
pub(crate) type Backend = dyn MemoryBackend<HostState>;

/// Shared wasmtime engines with the System API linked in: one for wasm32
/// modules and one for wasm64 modules, which need another address-space
/// reservation and the `i64` System API.
pub struct Engine {
    pub(crate) backend: Arc<Backend>,
    narrow: Flavour,
    wide: Flavour,
    cache: Option<ModuleCache>,
}

/// A wasmtime engine and its linker.
struct Flavour {
    wasmtime: wasmtime::Engine,
    linker: Linker<HostState>,
}

impl Flavour {
    fn new(backend: &Arc<Backend>, wide: bool) -> Result<Flavour, EngineError> {
        // Threads, function references, exceptions and components need
        // wasmtime features that are not compiled in, so they are off.
        let mut config = Config::new();
        config
            .consume_fuel(true)
            .cranelift_nan_canonicalization(true)
            .cranelift_opt_level(OptLevel::Speed)
            .wasm_relaxed_simd(false)
            .wasm_memory64(wide)
            .wasm_multi_memory(false)
            .wasm_tail_call(false)
            .wasm_gc(false)
            .memory_reservation(if wide { MEMORY64_RESERVATION } else { MEMORY_RESERVATION })
            .memory_guard_size(MEMORY_GUARD)
            .guard_before_linear_memory(true)
            .memory_may_move(false)
            .memory_reservation_for_growth(0)
            // Sliced messages run on fibers (see `execution::slicing`):
            // their wasm stack plus room for the System API's host code.
            .async_stack_size(ASYNC_STACK)
            .with_host_memory(backend.memory_creator());
        let wasmtime = wasmtime::Engine::new(&config).map_err(|e| EngineError(format!("{e:#}")))?;
        let mut linker = Linker::new(&wasmtime);
        system_api::link(&mut linker, &wasmtime, wide).map_err(|e| EngineError(format!("{e:#}")))?;
        Ok(Flavour { wasmtime, linker })
    }
}

impl Engine {
    /// An engine tracking memory with the SIGSEGV backend.
    pub fn new() -> Result<Engine, EngineError> {
        Engine::with_backend(Arc::new(SignalBackend::new()))
    }

    /// An engine tracking memory with `backend`.
    pub(crate) fn with_backend(backend: Arc<Backend>) -> Result<Engine, EngineError> {
        let narrow = Flavour::new(&backend, false)?;
        let wide = Flavour::new(&backend, true)?;
        Ok(Engine { backend, narrow, wide, cache: None })
    }

    /// This engine, keeping compiled modules in `cache`.
    pub fn with_module_cache(mut self, cache: ModuleCache) -> Engine {
        self.cache = Some(cache);
        self
    }

    /// The compiled-module cache, if there is one.
    pub fn module_cache(&self) -> Option<&ModuleCache> {
        self.cache.as_ref()
    }

    /// `prepared` compiled by `engine`: from the cache if it holds it, else
    /// by Cranelift (and then stored).
    fn machine_code(&self, engine: &wasmtime::Engine, prepared: &[u8]) -> Result<Module, ModuleError> {
        let Some(cache) = &self.cache else {
            return Module::new(engine, prepared).map_err(|e| ModuleError::Invalid(format!("{e:#}")));
        };
        let key = ModuleCache::key(engine, prepared);
        if let Some(module) = cache.load(engine, &key) {
            return Ok(module);
        }
        let module = Module::new(engine, prepared).map_err(|e| ModuleError::Invalid(format!("{e:#}")))?;
        cache.store(&key, &module);
        Ok(module)
    }

    /// Check, prepare and compile a canister module.
    pub fn compile(&self, wasm: &[u8], max_bytes: usize) -> Result<Arc<CanisterModule>, ModuleError> {
        let (info, rewritten) = module::prepare(wasm, max_bytes)?;
        let wide = info.is_wasm64();
        if info.uses_64_bit && !wide {
            return Err(ModuleError::Unsupported(
                "a 64-bit table needs a 64-bit memory (wasm64 modules use both)".into(),
            ));
        }
        let flavour = if wide { &self.wide } else { &self.narrow };
        let mut linker = flavour.linker.clone();
        let memory = if wide { "64-bit" } else { "32-bit" };
        for import in &info.imports {
            match system_api::spec::lookup(&import.name) {
                Some(spec) if spec.signature(wide) != (&import.params[..], &import.results[..]) => {
                    let (params, results) = spec.signature(wide);
                    return Err(ModuleError::NotCanister(format!(
                        "it imports ic0.{} with type {:?} -> {:?}, but for a module with a {memory} memory the \
                         System API defines {params:?} -> {results:?}",
                        import.name, import.params, import.results
                    )));
                }
                Some(_) => {}
                // Not in the spec this host knows: link it anyway, so the
                // module runs as long as it never calls it.
                None => system_api::define_unsupported(
                    &mut linker,
                    &flavour.wasmtime,
                    &import.name,
                    &import.params,
                    &import.results,
                )
                .map_err(|e| ModuleError::Invalid(format!("cannot link ic0.{}: {e:#}", import.name)))?,
            }
        }
        let compiled = self.machine_code(&flavour.wasmtime, &rewritten)?;
        let pre = linker.instantiate_pre(&compiled).map_err(|e| ModuleError::Invalid(format!("{e:#}")))?;
        Ok(Arc::new(CanisterModule { wasm: wasm.into(), hash: Sha256::digest(wasm).into(), info, pre }))
    }
}

/// A canister module ready to instantiate.
pub struct CanisterModule {
    /// The module as installed (what checkpoints store).
    pub wasm: Arc<[u8]>,
    /// SHA-256 of `wasm`.
    pub hash: [u8; 32],
    /// What the module exports, imports and initialises.
    pub info: ModuleInfo,
    pub(crate) pre: InstancePre<HostState>,
}

impl std::fmt::Debug for CanisterModule {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("CanisterModule").field("bytes", &self.wasm.len()).field("methods", &self.info.methods).finish()
    }
}
