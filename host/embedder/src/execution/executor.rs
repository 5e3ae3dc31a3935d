//! The executor: resolves what a message calls, runs it on an instance,
//! and commits what it did.

use std::sync::Arc;

use super::compile::Compiler;
use super::instance::Invoke;
use super::instance::{LiveInstance, Pacing};
use super::query_instances;
use super::{
    Call, CallbackKind, CanisterState, DirtyPages, Executable, ExecutionConfig, ExecutionError, MessageResult,
    MessageStats, PACING_REPORTS_PER_SLICE, SliceGate, Target,
};
use crate::engine::{CanisterModule, Engine};
use crate::module::{EntryPoint, MethodKind, ModuleError};
use crate::system_api::{ApiContext, MessageState, Response, StableMemory};
use crate::units::WasmPages;
use memory_tracker::TrackingMode;

/// Runs messages for canisters.
pub struct Executor {
    engine: Arc<Engine>,
    config: ExecutionConfig,
    compiler: Compiler,
}

impl Executor {
    /// An executor on `engine` with `config`.
    pub fn new(engine: Arc<Engine>, config: ExecutionConfig) -> Executor {
        Executor { engine, config, compiler: Compiler::default() }
    }

    /// The engine modules are compiled with.
    pub fn engine(&self) -> &Arc<Engine> {
        &self.engine
    }

    /// How messages execute.
    pub fn config(&self) -> &ExecutionConfig {
        &self.config
    }

    /// Check and compile a module (raw or gzip) under this executor's size
    /// limit. While a compiled copy of the same bytes is alive, it is
    /// returned instead: compile before a round, and the round finds it.
    pub fn compile(&self, wasm: &[u8]) -> Result<Arc<CanisterModule>, ModuleError> {
        let module = self.compiler.compile(&self.engine, wasm, self.config.max_module_bytes)?;
        self.check_fits(&module)?;
        Ok(module)
    }

    /// A module whose memory starts larger than the heap limit could never
    /// be instantiated: refuse it at install rather than at every message.
    fn check_fits(&self, module: &CanisterModule) -> Result<(), ModuleError> {
        let limit = self.config.heap_limit(module.info.is_wasm64());
        match module.info.memory {
            Some(memory) if memory.initial.bytes() > limit => Err(ModuleError::LimitExceeded(format!(
                "its memory starts at {} bytes, over the heap limit of {limit} bytes",
                memory.initial.bytes(),
            ))),
            _ => Ok(()),
        }
    }

    /// How many compilations are running now.
    pub fn compilations_in_progress(&self) -> usize {
        self.compiler.in_progress()
    }

    /// Compile `replacement` to stand in for the module whose SHA-256 is
    /// `identity`: it runs the replacement's code but keeps the original's
    /// identity, so digests differ only where behaviour does (replay
    /// verification of a modified module).
    pub fn compile_substitute(
        &self,
        replacement: &[u8],
        identity: [u8; 32],
    ) -> Result<Arc<CanisterModule>, ModuleError> {
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
            // A composite query commits into a scratch copy of the state,
            // so its callbacks see what it did before each call.
            Target::Method { kind: MethodKind::CompositeQuery, .. } => {
                (ApiContext::CompositeQuery, c.query_instruction_limit, true)
            }
            Target::Method { .. } => (ApiContext::Query, c.query_instruction_limit, false),
            Target::Entry(EntryPoint::Init | EntryPoint::PostUpgrade) => {
                (ApiContext::Init, c.install_instruction_limit, true)
            }
            Target::Entry(EntryPoint::PreUpgrade) => (ApiContext::PreUpgrade, c.install_instruction_limit, true),
            Target::Entry(EntryPoint::Start) => (ApiContext::Start, c.install_instruction_limit, true),
            Target::Callback(callback) => {
                let context = match (callback.kind, callback.composite) {
                    (CallbackKind::Reply, false) => ApiContext::ReplyCallback,
                    (CallbackKind::Reject, false) => ApiContext::RejectCallback,
                    (CallbackKind::Cleanup, false) => ApiContext::Cleanup,
                    (CallbackKind::Reply, true) => ApiContext::CompositeReplyCallback,
                    (CallbackKind::Reject, true) => ApiContext::CompositeRejectCallback,
                    (CallbackKind::Cleanup, true) => ApiContext::CompositeCleanup,
                };
                let limit = if callback.composite { c.query_instruction_limit } else { c.update_instruction_limit };
                (context, limit, true)
            }
            Target::Entry(EntryPoint::InspectMessage) | Target::Inspect { .. } => {
                (ApiContext::InspectMessage, c.query_instruction_limit, false)
            }
            Target::Entry(_) => (ApiContext::SystemTask, c.update_instruction_limit, true),
        }
    }

    /// What to call for `target`, or why there is nothing.
    fn resolve(module: &CanisterModule, target: Target<'_>) -> Result<Invoke, ExecutionError> {
        match target {
            Target::Callback(callback) => Ok(Invoke::Closure(callback.closure)),
            other => Self::export(module, other).map(Invoke::Export),
        }
    }

    /// The export to call for `target`, or why there is none.
    fn export(module: &CanisterModule, target: Target<'_>) -> Result<String, ExecutionError> {
        match target {
            Target::Method { name, kind } => match module.info.methods.get(name) {
                // A query may be called as an update (a replicated query),
                // and a composite query as a plain query.
                Some(actual)
                    if *actual == kind
                        || (kind == MethodKind::Query && *actual == MethodKind::CompositeQuery)
                        || (kind == MethodKind::Update && *actual == MethodKind::Query) =>
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
            Target::Callback(_) => unreachable!("callbacks are closures, resolved above"),
        }
    }

    /// Run a message that may change the canister: an update, or a system
    /// entry point. On failure the canister is exactly as before.
    ///
    /// Under [`TrackingMode::Untracked`] nothing can persist, so the message
    /// runs like a query on the current state (the benchmark baseline).
    pub fn execute(&self, canister: &mut Executable, call: Call<'_>) -> MessageResult {
        self.execute_with(canister, call, None, None)
    }

    /// Run a message's first slice: its result if it fits in one slice of
    /// instructions (exactly the result of [`Executor::execute`]), or
    /// `None` if it needs more. Then nothing changed, and
    /// [`Executor::execute_sliced`] runs it again, a slice per round.
    pub fn execute_first_slice(&self, canister: &mut Executable, call: Call<'_>) -> Option<MessageResult> {
        let (_, limit, _) = self.context_and_limit(call.target);
        let slice = self.config.slice_instructions;
        if limit <= slice {
            return Some(self.execute(canister, call));
        }
        let result = self.execute_with(canister, call, Some(slice), None);
        match result.outcome {
            Err(ExecutionError::InstructionLimit { .. }) => None,
            _ => Some(result),
        }
    }

    /// Run a message with its full limit on this thread, paced by `gate`
    /// (see `execution::slicing`). The result is [`Executor::execute`]'s.
    pub fn execute_sliced(&self, canister: &mut Executable, call: Call<'_>, gate: &SliceGate) -> MessageResult {
        let interval = (self.config.slice_instructions / PACING_REPORTS_PER_SLICE).max(1);
        let result = self.execute_with(canister, call, None, Some(Pacing { gate, interval }));
        gate.finish();
        result
    }

    /// `execute`, with at most `fuel` instructions if given, paced by
    /// `gate` if given.
    fn execute_with(
        &self,
        canister: &mut Executable,
        call: Call<'_>,
        fuel: Option<u64>,
        paced: Option<Pacing<'_>>,
    ) -> MessageResult {
        let started = std::time::Instant::now();
        let (context, limit, persists) = self.context_and_limit(call.target);
        let limit = fuel.map_or(limit, |fuel| fuel.min(limit));
        // A paced instance belongs to its thread; it is not kept.
        let keep = self.keeps_instances(&canister.state) && paced.is_none();
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
            return self.run_detached(&canister.state, call, false);
        }
        // An update call resolved to a query method is a replicated query:
        // it answers, and what it changed is dropped.
        if matches!(&export, Invoke::Export(name) if name.starts_with(MethodKind::Query.export_prefix())) {
            return self.run_replicated_query(&canister.state, call);
        }
        let mut live = match canister.live.take().filter(|_| keep) {
            Some(live) => live,
            None => match LiveInstance::new(&self.engine, &self.config, &module, &canister.state, true) {
                Ok(live) => live,
                Err(e) => return MessageResult::failed(e),
            },
        };
        let message = self.message(&canister.state, context, call, limit);
        let before = live.counters();
        let mut run = live.run(&export, message, limit, paced);
        let mut result = MessageResult {
            outcome: Ok(Response::None),
            committed: false,
            stats: MessageStats { instructions: run.instructions, memory: run.memory, ..MessageStats::default() },
            debug_prints: std::mem::take(&mut run.message.debug_prints),
            dirty: DirtyPages::default(),
            accepted: false,
            calls: Vec::new(),
            cycles_accepted: 0,
        };
        if let Err(e) = run.result {
            result.outcome = Err(e);
            result.stats.duration = started.elapsed();
            return result; // `live` is dropped: the next message starts clean
        }
        let calls = std::mem::take(&mut run.message.calls);
        result.cycles_accepted = run.message.cycles_accepted;
        match self.commit(&mut canister.state, &mut live, run.message, keep) {
            Ok((response, dirty)) => {
                result.stats.dirty_pages = dirty.heap.len() as u64;
                result.stats.stable_dirty_pages = dirty.stable.len() as u64;
                result.dirty = dirty;
                result.committed = true;
                // A method that made calls may still reply from a callback.
                result.outcome = match (response, call.target) {
                    (Response::None, Target::Method { .. }) if calls.is_empty() => Err(ExecutionError::DidNotReply),
                    (response, _) => Ok(response),
                };
                result.calls = calls;
                // Count re-protecting the dirty pages as part of the message.
                result.stats.memory = live.counters() - before;
                if keep {
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
    ///
    /// With `reuse_instances`, the query runs on an instance this thread
    /// kept from an earlier query of the canister (`query_instances`),
    /// rolled back afterwards, instead of a fresh one.
    pub fn query(&self, state: &CanisterState, call: Call<'_>) -> MessageResult {
        let target = match call.target {
            Target::Method { name, .. } => Target::Method { name, kind: MethodKind::Query },
            other => other,
        };
        // Untracked memory cannot tell what a query wrote, so cannot undo it.
        let reuse = self.keeps_instances(state) && self.config.tracking != TrackingMode::Untracked;
        self.run_detached(state, Call { target, ..call }, reuse)
    }

    /// Whether instances of `state`'s module may be kept between messages:
    /// if configured, and unless its code can change its tables or drop
    /// segments (the IC starts every message on a fresh instance, and so
    /// does replay).
    fn keeps_instances(&self, state: &CanisterState) -> bool {
        self.config.reuse_instances && !state.module.as_ref().is_some_and(|m| m.info.mutates_instance)
    }

    /// Run a query method called as an update on a fresh instance over
    /// `state`, keeping nothing.
    fn run_replicated_query(&self, state: &CanisterState, call: Call<'_>) -> MessageResult {
        let limit = self.config.update_instruction_limit;
        self.run_detached_in(state, call, ApiContext::ReplicatedQuery, limit, false)
    }

    /// Run `call` over `state`, changing nothing (on a kept instance if
    /// `reuse`, see `run_detached_in`).
    fn run_detached(&self, state: &CanisterState, call: Call<'_>, reuse: bool) -> MessageResult {
        let (context, limit, _) = self.context_and_limit(call.target);
        self.run_detached_in(state, call, context, limit, reuse)
    }

    /// Run `call` over `state` in `context`, with `limit` instructions,
    /// changing nothing: on a fresh instance, or if `reuse`, on one this
    /// thread kept, which is rolled back and kept again unless it trapped.
    fn run_detached_in(
        &self,
        state: &CanisterState,
        call: Call<'_>,
        context: ApiContext,
        limit: u64,
        reuse: bool,
    ) -> MessageResult {
        let started = std::time::Instant::now();
        let Some(module) = state.module.clone() else { return MessageResult::failed(ExecutionError::NoModule) };
        let export = match Self::resolve(&module, call.target) {
            Ok(export) => export,
            Err(e) => return MessageResult::failed(e),
        };
        // A kept instance must know which pages a query wrote, to undo
        // them: it tracks writes, where a throwaway one need not.
        let kept = if reuse { query_instances::take(state) } else { None };
        let mut live = match kept {
            Some(live) => live,
            None => match LiveInstance::new(&self.engine, &self.config, &module, state, reuse) {
                Ok(live) => live,
                Err(e) => return MessageResult::failed(e),
            },
        };
        let message = self.message(state, context, call, limit);
        let globals = if reuse { live.read_globals() } else { Vec::new() };
        let run = live.run(&export, message, limit, None);
        if reuse && run.result.is_ok() {
            query_instances::keep(state, live, &globals);
        }
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
            calls: Vec::new(),
            cycles_accepted: 0,
        }
    }

    fn message(&self, state: &CanisterState, context: ApiContext, call: Call<'_>, limit: u64) -> MessageState {
        let method = match call.target {
            Target::Method { name, .. } | Target::Inspect { method: name } => name,
            Target::Entry(entry) => entry.export_name(),
            Target::Callback(_) => "",
        };
        let mut message =
            MessageState::new(context, method, call.arg.to_vec(), call.caller.to_vec(), call.time, state.env.clone());
        message.instruction_limit = limit;
        message.cycles_available = call.incoming.cycles;
        message.deadline = call.incoming.deadline;
        message.call_capacity = call.incoming.call_capacity;
        if let Target::Callback(callback) = call.target {
            message.responded_before = callback.responded;
            message.reject = callback.reject.map(|(code, text)| (code, text.to_string()));
            message.cycles_refunded = callback.refunded;
            message.context_instructions = callback.context_instructions;
        }
        message.certified_data = state.certified_data.clone();
        message.data_certificate = call.data_certificate.map(<[u8]>::to_vec);
        message.global_timer = state.global_timer;
        message.stable = StableMemory::new(
            state.stable.clone(),
            state.stable_pages,
            WasmPages::from_bytes(self.config.stable_limit_bytes),
        );
        message
    }

    /// Fold a successful message into the state.
    fn commit(
        &self,
        state: &mut CanisterState,
        live: &mut LiveInstance,
        message: MessageState,
        keep: bool,
    ) -> Result<(Response, DirtyPages), ExecutionError> {
        let mut dirty = DirtyPages::default();
        if let Some((changed, size)) = live.commit_heap(&mut state.heap, keep)? {
            dirty.heap = changed;
            state.heap_pages = size;
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
