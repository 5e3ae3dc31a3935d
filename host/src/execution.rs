//! Running messages: instances over tracked memory, fuel, and turning what a
//! message did into the canister's next state.
//!
//! An update runs on the canister's *live instance* when it has one: the
//! instance's memory already holds the committed state, so after a success
//! only the pages it dirtied are compared, copied into the heap's page map
//! and made read-only again. Any failure drops the live instance, so the
//! next message starts from the committed state. Queries always run on a
//! fresh instance over an O(1) snapshot, with no write tracking.

use std::sync::Arc;
use std::time::Duration;

use page_delta::{PageIndex, PageMap};
use wasmtime::{Instance, Store, Trap, Val};

use crate::engine::{CanisterModule, Engine};
use crate::memory::{MemoryCounters, ProtectFailure, Tracker, TrackerCell, TrackingMode, install_signal_handler};
use crate::module::{EntryPoint, MEMORY_EXPORT, MethodKind, WASM_PAGE};
use crate::system_api::{ApiContext, CanisterEnv, HostState, HostTrap, MessageState, Response, StableMemory};

/// How messages execute. The defaults are the IC's limits.
#[derive(Clone, Debug)]
pub struct ExecutionConfig {
    pub tracking: TrackingMode,
    /// Longest run of pages one fault may map.
    pub prefetch_pages: usize,
    pub update_instruction_limit: u64,
    pub query_instruction_limit: u64,
    pub install_instruction_limit: u64,
    /// `memory.grow` beyond this returns -1.
    pub heap_limit_bytes: u64,
    /// `stable_grow` beyond this returns -1.
    pub stable_limit_bytes: u64,
    pub max_module_bytes: usize,
    /// Keep a canister's instance between updates (see the module docs).
    pub reuse_instances: bool,
    /// What `ic0.canister_cycle_balance` reports: this host has no cycles
    /// accounting.
    pub cycle_balance: u128,
}

impl Default for ExecutionConfig {
    fn default() -> Self {
        ExecutionConfig {
            tracking: TrackingMode::default(),
            prefetch_pages: 128,
            update_instruction_limit: 40_000_000_000,
            query_instruction_limit: 5_000_000_000,
            install_instruction_limit: 300_000_000_000,
            heap_limit_bytes: 4 << 30,
            stable_limit_bytes: 4 << 30,
            max_module_bytes: 100 << 20,
            reuse_instances: true,
            cycle_balance: 100_000_000_000_000,
        }
    }
}

/// The value of a mutable global, saved between messages.
#[derive(Copy, Clone, Debug, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub enum GlobalValue {
    I32(i32),
    I64(i64),
    F32(u32),
    F64(u64),
    V128(u128),
}

impl GlobalValue {
    fn from_val(val: &Val) -> Option<GlobalValue> {
        Some(match val {
            Val::I32(v) => GlobalValue::I32(*v),
            Val::I64(v) => GlobalValue::I64(*v),
            Val::F32(v) => GlobalValue::F32(*v),
            Val::F64(v) => GlobalValue::F64(*v),
            Val::V128(v) => GlobalValue::V128(v.as_u128()),
            _ => return None,
        })
    }

    fn to_val(self) -> Val {
        match self {
            GlobalValue::I32(v) => Val::I32(v),
            GlobalValue::I64(v) => Val::I64(v),
            GlobalValue::F32(v) => Val::F32(v),
            GlobalValue::F64(v) => Val::F64(v),
            GlobalValue::V128(v) => Val::V128(v.into()),
        }
    }
}

/// Everything about a canister that persists: what checkpoints, snapshots
/// and queries capture. Cloning is O(1) in the memory sizes.
#[derive(Clone, Debug, Default)]
pub struct CanisterState {
    pub env: Arc<CanisterEnv>,
    pub module: Option<Arc<CanisterModule>>,
    pub heap: PageMap,
    /// Heap size in 64 KiB wasm pages.
    pub heap_pages: u64,
    /// Saved mutable globals, in module order; empty means "as the module
    /// initialises them".
    pub globals: Vec<GlobalValue>,
    pub stable: PageMap,
    /// Stable memory size in 64 KiB wasm pages.
    pub stable_pages: u64,
    pub certified_data: Vec<u8>,
    pub global_timer: u64,
}

impl CanisterState {
    /// This state with `module` installed over a fresh heap: its data
    /// segments in memory and its globals as it initialises them. Stable
    /// memory and the rest are left as they are.
    pub fn with_module(&self, module: Arc<CanisterModule>) -> CanisterState {
        let mut heap = PageMap::new();
        for segment in &module.info.data {
            heap.write(segment.offset, &segment.bytes).expect("segment offsets fit in u64");
        }
        let heap_pages = module.info.memory.map_or(0, |m| m.initial_pages);
        CanisterState { module: Some(module), heap, heap_pages, globals: Vec::new(), ..self.clone() }
    }

    /// Bytes of heap, stable memory and module: what a snapshot holds.
    pub fn size_bytes(&self) -> u64 {
        (self.heap_pages + self.stable_pages) * WASM_PAGE + self.module.as_ref().map_or(0, |m| m.wasm.len() as u64)
    }
}

/// A canister's state plus the instance that may carry it between updates.
#[derive(Default)]
pub struct Canister {
    state: CanisterState,
    live: Option<LiveInstance>,
}

impl Canister {
    pub fn new(state: CanisterState) -> Canister {
        Canister { state, live: None }
    }

    pub fn state(&self) -> &CanisterState {
        &self.state
    }

    /// Change the state directly (install, snapshots, remaps); the live
    /// instance no longer matches it, so it is dropped.
    pub fn state_mut(&mut self) -> &mut CanisterState {
        self.live = None;
        &mut self.state
    }

    /// Replace what messages learn about the canister (controllers, status,
    /// version). The live instance stays: messages read this afresh.
    pub fn set_env(&mut self, env: CanisterEnv) {
        self.state.env = Arc::new(env);
    }
}

/// What a message asks to run.
#[derive(Copy, Clone, Debug)]
pub struct Call<'a> {
    pub target: Target<'a>,
    pub arg: &'a [u8],
    pub caller: &'a [u8],
    /// The round's time, in nanoseconds since the epoch.
    pub time: u64,
}

#[derive(Copy, Clone, Debug)]
pub enum Target<'a> {
    /// A method, called as an update or a query.
    Method { name: &'a str, kind: MethodKind },
    /// A system entry point (init, upgrade hooks, timers).
    Entry(EntryPoint),
    /// `canister_inspect_message` for an ingress call of `method`.
    Inspect { method: &'a str },
}

/// Why a message failed.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
pub enum ExecutionError {
    #[error("the canister has no code installed; install a module first")]
    NoModule,
    #[error("the canister has no {kind} method {method:?}; its methods are: {}", list(.available))]
    MethodNotFound { method: String, kind: MethodKind, available: Vec<String> },
    #[error("method {method:?} is a{} {actual} method and cannot be called as a{} {requested}", article(.actual), article(.requested))]
    WrongKind { method: String, requested: MethodKind, actual: MethodKind },
    #[error("canister trapped: {0}")]
    Trapped(String),
    #[error("the message exceeded its instruction limit of {limit}")]
    InstructionLimit { limit: u64 },
    #[error("the canister did not reply to the call")]
    DidNotReply,
    #[error(
        "changing the protection of {pages} page(s) at page {first_page} failed ({errno}); if it is ENOMEM the \
         process reached vm.max_map_count: raise it (sysctl -w vm.max_map_count=2097152)"
    )]
    MemoryProtection { errno: String, first_page: usize, pages: usize },
    #[error("cannot set up the canister's instance: {0}")]
    Instantiation(String),
}

fn list(methods: &[String]) -> String {
    if methods.is_empty() { "(none)".into() } else { methods.join(", ") }
}

fn article(kind: &MethodKind) -> &'static str {
    if *kind == MethodKind::Update { "n" } else { "" }
}

impl From<ProtectFailure> for ExecutionError {
    fn from(f: ProtectFailure) -> Self {
        ExecutionError::MemoryProtection { errno: f.errno.to_string(), first_page: f.first_page, pages: f.pages }
    }
}

/// Pages a committed message changed, for result digests.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct DirtyPages {
    pub heap: Vec<PageIndex>,
    pub stable: Vec<PageIndex>,
}

/// Measurements of one message.
#[derive(Copy, Clone, Debug, Default, PartialEq, Eq)]
pub struct MessageStats {
    pub instructions: u64,
    pub memory: MemoryCounters,
    /// Heap pages whose bytes changed.
    pub dirty_pages: u64,
    /// Stable memory pages whose bytes changed.
    pub stable_dirty_pages: u64,
    pub duration: Duration,
}

/// The outcome of a message.
#[derive(Clone, Debug)]
pub struct MessageResult {
    pub outcome: Result<Response, ExecutionError>,
    /// Whether the canister's state now includes the message's effects.
    /// True for replies and rejects, and for an update that did not reply
    /// (as on the IC); false for traps and every query.
    pub committed: bool,
    pub stats: MessageStats,
    pub debug_prints: Vec<Vec<u8>>,
    pub dirty: DirtyPages,
    /// For inspect_message: whether the canister accepted the message.
    pub accepted: bool,
}

impl MessageResult {
    fn failed(error: ExecutionError) -> MessageResult {
        MessageResult {
            outcome: Err(error),
            committed: false,
            stats: MessageStats::default(),
            debug_prints: Vec::new(),
            dirty: DirtyPages::default(),
            accepted: false,
        }
    }

    /// The reply bytes, if the canister replied.
    pub fn reply(&self) -> Option<&[u8]> {
        match &self.outcome {
            Ok(Response::Reply(bytes)) => Some(bytes),
            _ => None,
        }
    }
}

/// Runs messages for canisters.
pub struct Executor {
    engine: Arc<Engine>,
    config: ExecutionConfig,
}

impl Executor {
    pub fn new(engine: Arc<Engine>, config: ExecutionConfig) -> Executor {
        Executor { engine, config }
    }

    pub fn engine(&self) -> &Arc<Engine> {
        &self.engine
    }

    pub fn config(&self) -> &ExecutionConfig {
        &self.config
    }

    /// Check and compile a module under this executor's size limit.
    pub fn compile(&self, wasm: &[u8]) -> Result<Arc<CanisterModule>, crate::module::ModuleError> {
        self.engine.compile(wasm, self.config.max_module_bytes)
    }

    /// Compile `replacement` to stand in for the module whose SHA-256 is
    /// `identity`: it runs the replacement's code but keeps the original's
    /// identity, so digests differ only where behaviour does (replay
    /// verification of a modified module).
    pub fn compile_substitute(
        &self,
        replacement: &[u8],
        identity: [u8; 32],
    ) -> Result<Arc<CanisterModule>, crate::module::ModuleError> {
        let module = self.engine.compile(replacement, self.config.max_module_bytes)?;
        let mut module =
            Arc::try_unwrap(module).unwrap_or_else(|_| unreachable!("a freshly compiled module is not shared"));
        module.hash = identity;
        Ok(Arc::new(module))
    }

    fn context_and_limit(&self, target: Target<'_>) -> (ApiContext, u64, bool) {
        let c = &self.config;
        match target {
            Target::Method { kind: MethodKind::Update, .. } => (ApiContext::Update, c.update_instruction_limit, true),
            Target::Method { .. } => (ApiContext::Query, c.query_instruction_limit, false),
            Target::Entry(EntryPoint::Init | EntryPoint::PostUpgrade) => {
                (ApiContext::Init, c.install_instruction_limit, true)
            }
            Target::Entry(EntryPoint::PreUpgrade) => (ApiContext::PreUpgrade, c.install_instruction_limit, true),
            Target::Entry(EntryPoint::InspectMessage) | Target::Inspect { .. } => {
                (ApiContext::InspectMessage, c.query_instruction_limit, false)
            }
            Target::Entry(_) => (ApiContext::SystemTask, c.update_instruction_limit, true),
        }
    }

    /// The export to call for `target`, or why there is none.
    fn resolve(module: &CanisterModule, target: Target<'_>) -> Result<String, ExecutionError> {
        match target {
            Target::Method { name, kind } => match module.info.methods.get(name) {
                Some(actual)
                    if *actual == kind || (kind == MethodKind::Query && *actual == MethodKind::CompositeQuery) =>
                {
                    Ok(format!("{}{name}", actual.export_prefix()))
                }
                Some(actual) => {
                    Err(ExecutionError::WrongKind { method: name.into(), requested: kind, actual: *actual })
                }
                None => Err(ExecutionError::MethodNotFound {
                    method: name.into(),
                    kind,
                    available: module.info.methods.iter().map(|(m, k)| format!("{m} ({k})")).collect(),
                }),
            },
            Target::Entry(entry) => Ok(entry.export_name().to_string()),
            Target::Inspect { .. } => Ok(EntryPoint::InspectMessage.export_name().to_string()),
        }
    }

    /// Run a message that may change the canister: an update, or a system
    /// entry point. On failure the canister is exactly as before.
    ///
    /// Under [`TrackingMode::Untracked`] nothing can persist, so the message
    /// runs like a query on the current state (the benchmark baseline).
    pub fn execute(&self, canister: &mut Canister, call: Call<'_>) -> MessageResult {
        let started = std::time::Instant::now();
        let (context, limit, persists) = self.context_and_limit(call.target);
        let persists = persists && self.config.tracking != TrackingMode::Untracked;
        let Some(module) = canister.state.module.clone() else {
            return MessageResult::failed(ExecutionError::NoModule);
        };
        let export = match Self::resolve(&module, call.target) {
            Ok(export) => export,
            Err(e) => return MessageResult::failed(e),
        };
        if !persists {
            // Queries and inspect_message never change state.
            return self.run_detached(&canister.state, call);
        }
        let mut live = match canister.live.take().filter(|_| self.config.reuse_instances) {
            Some(live) => live,
            None => match LiveInstance::new(&self.engine, &self.config, &module, &canister.state, true) {
                Ok(live) => live,
                Err(e) => return MessageResult::failed(e),
            },
        };
        let message = self.message(&canister.state, context, call, limit);
        let before = live.counters();
        let mut run = live.run(&export, message, limit);
        let mut result = MessageResult {
            outcome: Ok(Response::None),
            committed: false,
            stats: MessageStats { instructions: run.instructions, memory: run.memory, ..MessageStats::default() },
            debug_prints: std::mem::take(&mut run.message.debug_prints),
            dirty: DirtyPages::default(),
            accepted: false,
        };
        if let Err(e) = run.result {
            result.outcome = Err(e);
            result.stats.duration = started.elapsed();
            return result; // `live` is dropped: the next message starts clean
        }
        match self.commit(&mut canister.state, &mut live, run.message) {
            Ok((response, dirty)) => {
                result.stats.dirty_pages = dirty.heap.len() as u64;
                result.stats.stable_dirty_pages = dirty.stable.len() as u64;
                result.dirty = dirty;
                result.committed = true;
                result.outcome = match (response, call.target) {
                    (Response::None, Target::Method { .. }) => Err(ExecutionError::DidNotReply),
                    (response, _) => Ok(response),
                };
                // Count re-protecting the dirty pages as part of the message.
                result.stats.memory = live.counters() - before;
                if self.config.reuse_instances {
                    canister.live = Some(live);
                }
            }
            Err(e) => result.outcome = Err(e),
        }
        result.stats.duration = started.elapsed();
        result
    }

    /// Run a query (or inspect_message) on `state`. Nothing it does
    /// persists. A method is always called as a query, so an update method
    /// is refused.
    pub fn query(&self, state: &CanisterState, call: Call<'_>) -> MessageResult {
        let target = match call.target {
            Target::Method { name, .. } => Target::Method { name, kind: MethodKind::Query },
            other => other,
        };
        self.run_detached(state, Call { target, ..call })
    }

    /// Run `call` on a fresh instance over `state`, keeping nothing.
    fn run_detached(&self, state: &CanisterState, call: Call<'_>) -> MessageResult {
        let started = std::time::Instant::now();
        let (context, limit, _) = self.context_and_limit(call.target);
        let Some(module) = state.module.clone() else { return MessageResult::failed(ExecutionError::NoModule) };
        let export = match Self::resolve(&module, call.target) {
            Ok(export) => export,
            Err(e) => return MessageResult::failed(e),
        };
        let mut live = match LiveInstance::new(&self.engine, &self.config, &module, state, false) {
            Ok(live) => live,
            Err(e) => return MessageResult::failed(e),
        };
        let message = self.message(state, context, call, limit);
        let run = live.run(&export, message, limit);
        let outcome = run.result.and_then(|()| match (run.message.response.clone(), call.target) {
            (Response::None, Target::Method { .. }) => Err(ExecutionError::DidNotReply),
            (response, _) => Ok(response),
        });
        MessageResult {
            outcome,
            committed: false,
            stats: MessageStats {
                instructions: run.instructions,
                memory: run.memory,
                duration: started.elapsed(),
                ..MessageStats::default()
            },
            debug_prints: run.message.debug_prints,
            dirty: DirtyPages::default(),
            accepted: run.message.accepted,
        }
    }

    fn message(&self, state: &CanisterState, context: ApiContext, call: Call<'_>, limit: u64) -> MessageState {
        let method = match call.target {
            Target::Method { name, .. } | Target::Inspect { method: name } => name,
            Target::Entry(entry) => entry.export_name(),
        };
        let mut message =
            MessageState::new(context, method, call.arg.to_vec(), call.caller.to_vec(), call.time, state.env.clone());
        message.instruction_limit = limit;
        message.certified_data = state.certified_data.clone();
        message.global_timer = state.global_timer;
        message.stable =
            StableMemory::new(state.stable.clone(), state.stable_pages, self.config.stable_limit_bytes / WASM_PAGE);
        message
    }

    /// Fold a successful message into the state.
    fn commit(
        &self,
        state: &mut CanisterState,
        live: &mut LiveInstance,
        message: MessageState,
    ) -> Result<(Response, DirtyPages), ExecutionError> {
        let mut dirty = DirtyPages::default();
        if let Some(cell) = &live.tracker {
            let (pages, size) = cell
                .with(|t| (t.collect_dirty(), t.memory().byte_size()))
                .ok_or_else(|| ExecutionError::Instantiation("the heap tracker is busy".into()))?;
            dirty.heap = pages.iter().map(|(i, _)| *i).collect();
            state.heap.apply(pages);
            state.heap_pages = size as u64 / WASM_PAGE;
            if self.config.reuse_instances {
                cell.with(|t| t.rearm(state.heap.clone(), &dirty.heap)).expect("not busy: checked above")?;
            }
        }
        state.globals = live.read_globals();
        dirty.stable = message.stable.changed_pages(&state.stable);
        state.stable = message.stable.map;
        state.stable_pages = message.stable.pages;
        state.certified_data = message.certified_data;
        state.global_timer = message.global_timer;
        Ok((message.response, dirty))
    }
}

/// A wasmtime instance of a canister, over tracked memory.
pub(crate) struct LiveInstance {
    store: Store<HostState>,
    instance: Instance,
    tracker: Option<Arc<TrackerCell>>,
    /// The module's mutable globals, in module order (looked up once).
    globals: Vec<wasmtime::Global>,
}

/// What running one export produced.
struct Run {
    result: Result<(), ExecutionError>,
    message: MessageState,
    instructions: u64,
    memory: MemoryCounters,
}

impl LiveInstance {
    fn new(
        engine: &Engine,
        config: &ExecutionConfig,
        module: &Arc<CanisterModule>,
        state: &CanisterState,
        track_writes: bool,
    ) -> Result<LiveInstance, ExecutionError> {
        let fail = |e: wasmtime::Error| ExecutionError::Instantiation(format!("{e:#}"));
        let host = HostState {
            message: MessageState::new(ApiContext::Update, "", Vec::new(), Vec::new(), 0, state.env.clone()),
            heap: None,
            heap_limit: usize::try_from(config.heap_limit_bytes).unwrap_or(usize::MAX),
        };
        let mut store = Store::new(&engine.wasmtime, host);
        store.limiter(|host| host);
        let instance = module.pre.instantiate(&mut store).map_err(fail)?;
        let mut tracker = None;
        if let Some(memory) = instance.get_memory(&mut store, MEMORY_EXPORT) {
            let current = memory.size(&store);
            if state.heap_pages > current {
                memory.grow(&mut store, state.heap_pages - current).map_err(|e| {
                    ExecutionError::Instantiation(format!(
                        "the heap of {} pages does not fit the memory limit: {e:#}",
                        state.heap_pages
                    ))
                })?;
            }
            let shared = engine
                .creator
                .claim(memory.data_ptr(&store))
                .ok_or_else(|| ExecutionError::Instantiation("the memory was not created by this engine".into()))?;
            let t = Tracker::new(shared, state.heap.clone(), config.tracking, track_writes, config.prefetch_pages)?;
            let cell = Arc::new(TrackerCell::new(t));
            install_signal_handler(&mut store, cell.clone());
            store.data_mut().heap = Some(cell.clone());
            tracker = Some(cell);
        }
        let mut globals = Vec::with_capacity(module.info.globals.len());
        for global in &module.info.globals {
            globals.push(instance.get_global(&mut store, &global.export).ok_or_else(|| {
                ExecutionError::Instantiation(format!("global {} is missing from the instance", global.export))
            })?);
        }
        let mut live = LiveInstance { store, instance, tracker, globals };
        live.restore_globals(&state.globals)?;
        Ok(live)
    }

    fn restore_globals(&mut self, values: &[GlobalValue]) -> Result<(), ExecutionError> {
        for (i, (global, value)) in self.globals.iter().zip(values).enumerate() {
            global
                .set(&mut self.store, value.to_val())
                .map_err(|e| ExecutionError::Instantiation(format!("cannot restore mutable global {i}: {e:#}")))?;
        }
        Ok(())
    }

    fn read_globals(&mut self) -> Vec<GlobalValue> {
        self.globals.iter().filter_map(|g| GlobalValue::from_val(&g.get(&mut self.store))).collect()
    }

    fn counters(&self) -> MemoryCounters {
        self.tracker.as_ref().and_then(|c| c.with(|t| t.counters())).unwrap_or_default()
    }

    fn run(&mut self, export: &str, message: MessageState, limit: u64) -> Run {
        let before = self.counters();
        self.store.data_mut().message = message;
        let result = self.call(export, limit);
        let instructions = limit.saturating_sub(self.store.get_fuel().unwrap_or(0));
        let placeholder = MessageState::new(ApiContext::Update, "", Vec::new(), Vec::new(), 0, Arc::default());
        let message = std::mem::replace(&mut self.store.data_mut().message, placeholder);
        Run { result, message, instructions, memory: self.counters() - before }
    }

    fn call(&mut self, export: &str, limit: u64) -> Result<(), ExecutionError> {
        self.store.set_fuel(limit).map_err(|e| ExecutionError::Instantiation(format!("{e:#}")))?;
        let func = self
            .instance
            .get_typed_func::<(), ()>(&mut self.store, export)
            .map_err(|e| ExecutionError::Instantiation(format!("export {export}: {e:#}")))?;
        let error = match func.call(&mut self.store, ()) {
            Ok(()) => return Ok(()),
            Err(error) => error,
        };
        let failure = self.tracker.as_ref().and_then(|c| c.with(|t| t.failure())).flatten();
        Err(classify(error, failure, limit))
    }
}

/// Turn a wasmtime error into the reason the message failed.
fn classify(error: wasmtime::Error, failure: Option<ProtectFailure>, limit: u64) -> ExecutionError {
    if let Some(trap) = error.downcast_ref::<HostTrap>() {
        return match trap {
            HostTrap::Trap(message) => ExecutionError::Trapped(message.clone()),
            HostTrap::Memory(failure) => (*failure).into(),
        };
    }
    if let Some(trap) = error.downcast_ref::<Trap>() {
        if *trap == Trap::OutOfFuel {
            return ExecutionError::InstructionLimit { limit };
        }
        // A fault the tracker could not serve surfaces as a wasm trap.
        if let Some(failure) = failure {
            return failure.into();
        }
        return ExecutionError::Trapped(trap.to_string());
    }
    ExecutionError::Trapped(format!("{error:#}"))
}
