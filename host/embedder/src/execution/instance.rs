//! A wasmtime instance of a canister over tracked memory: set up, run one
//! export, read and restore globals.

use std::sync::Arc;
use std::task::{Context, Poll, Waker};

use memory_tracker::{AttachError, MemoryCounters, ProtectFailure, TrackOptions, TrackedMemory};
use page_delta::{Page, PageBytes, PageIndex, PageMap};
use wasmtime::{Func, Instance, Ref, Store, Trap, TypedFunc, Val, ValType};

use super::{Cancelled, CanisterState, ExecutionConfig, ExecutionError, GlobalValue, SliceGate};
use crate::engine::{CanisterModule, Engine};
use crate::module::{MEMORY_EXPORT, TABLE_EXPORT};
use crate::system_api::{ApiContext, Closure, HostState, HostTrap, MessageState};
use crate::units::WasmPages;

/// A wasmtime instance of a canister, over tracked memory.
pub(crate) struct LiveInstance {
    store: Store<HostState>,
    instance: Instance,
    heap: Option<TrackedMemory>,
    /// The module's mutable globals, in module order (looked up once).
    globals: Vec<wasmtime::Global>,
}

/// What a message calls: an export, or a function of the table (a
/// callback) with its `env`.
#[derive(Clone, Debug)]
pub(super) enum Invoke {
    Export(String),
    Closure(Closure),
}

/// A resolved function to call.
enum Callee {
    Export(TypedFunc<(), ()>),
    Closure(Func, Val),
}

/// What running one export produced.
pub(super) struct Run {
    pub(super) result: Result<(), ExecutionError>,
    pub(super) message: MessageState,
    pub(super) instructions: u64,
    pub(super) memory: MemoryCounters,
}

impl LiveInstance {
    /// Instantiate `module` over `state`, tracking heap writes if
    /// `track_writes`.
    pub(super) fn new(
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
            heap_limit: usize::try_from(config.heap_limit(module.info.is_wasm64())).unwrap_or(usize::MAX),
        };
        let mut store = Store::new(module.pre.module().engine(), host);
        store.limiter(|host| host);
        // Instantiation runs code for some initialisers (reference-typed
        // globals, extended constants, element segments), which costs
        // fuel: without any, such a module could install but never run.
        // The amount is deterministic, so a fixed budget is.
        store.set_fuel(config.update_instruction_limit).map_err(fail)?;
        let instance = module.pre.instantiate(&mut store).map_err(|e| {
            if memory_tracker::is_reservation_failure(&e) {
                ExecutionError::HostResource(format!("{e:#}"))
            } else {
                fail(e)
            }
        })?;
        let mut heap = None;
        if let Some(memory) = instance.get_memory(&mut store, MEMORY_EXPORT) {
            let current = memory.size(&store);
            if state.heap_pages.0 > current {
                memory.grow(&mut store, state.heap_pages.0 - current).map_err(|e| {
                    ExecutionError::Instantiation(format!(
                        "the heap of {} does not fit the memory limit: {e:#}",
                        state.heap_pages
                    ))
                })?;
            }
            let options = TrackOptions { mode: config.tracking, track_writes, prefetch_pages: config.prefetch_pages };
            let tracked =
                engine.backend.attach(&mut store, memory, state.heap.clone(), options).map_err(|e| match e {
                    AttachError::ForeignMemory => {
                        ExecutionError::Instantiation("the memory was not created by this engine".into())
                    }
                    AttachError::Protect(failure) => failure.into(),
                })?;
            store.data_mut().heap = Some(tracked.clone());
            heap = Some(tracked);
        }
        let mut globals = Vec::with_capacity(module.info.globals.len());
        for global in &module.info.globals {
            globals.push(instance.get_global(&mut store, &global.export).ok_or_else(|| {
                ExecutionError::Instantiation(format!("global {} is missing from the instance", global.export))
            })?);
        }
        let mut live = LiveInstance { store, instance, heap, globals };
        live.restore_globals(&state.globals)?;
        Ok(live)
    }

    /// Set the mutable globals to `values` (module order; none when empty).
    pub(super) fn restore_globals(&mut self, values: &[GlobalValue]) -> Result<(), ExecutionError> {
        for (i, (global, value)) in self.globals.iter().zip(values).enumerate() {
            global
                .set(&mut self.store, value.to_val())
                .map_err(|e| ExecutionError::Instantiation(format!("cannot restore mutable global {i}: {e:#}")))?;
        }
        Ok(())
    }

    /// The mutable globals' current values, in module order.
    pub(super) fn read_globals(&mut self) -> Vec<GlobalValue> {
        self.globals.iter().filter_map(|g| GlobalValue::from_val(&g.get(&mut self.store))).collect()
    }

    /// The heap's fault-handling counters since the instance was set up.
    pub(super) fn counters(&self) -> MemoryCounters {
        self.heap.as_ref().map(TrackedMemory::counters).unwrap_or_default()
    }

    /// After a successful message: apply the heap pages it changed to
    /// `heap`, and (to keep the instance) re-arm the memory for the next
    /// message. Returns the changed pages and the heap's size.
    pub(super) fn commit_heap(
        &mut self,
        heap: &mut PageMap,
        keep: bool,
    ) -> Result<Option<(Vec<PageIndex>, WasmPages)>, ExecutionError> {
        let Some(memory) = &self.heap else { return Ok(None) };
        let pages = memory.collect_dirty(&self.store)?;
        let changed: Vec<PageIndex> = pages.iter().map(|(i, _)| *i).collect();
        heap.apply(pages);
        let size = WasmPages::from_bytes(memory.byte_size() as u64);
        if keep {
            memory.rearm(&mut self.store, heap.clone(), &changed)?;
        }
        Ok(Some((changed, size)))
    }

    /// After a query that did not trap: give every page it changed its
    /// bytes in `heap` again, re-protect them, and restore `globals` (their
    /// values before the query), so the instance is exactly as before. Fails (and
    /// the instance must be dropped) if the memory's size is not
    /// `heap_pages`: a query that grew memory cannot be undone in place.
    pub(super) fn roll_back(
        &mut self,
        heap: &PageMap,
        heap_pages: WasmPages,
        globals: &[GlobalValue],
    ) -> Result<(), ExecutionError> {
        if let Some(memory) = &self.heap {
            if memory.byte_size() as u64 != heap_pages.bytes() {
                return Err(ExecutionError::Instantiation("the query grew the heap".into()));
            }
            let dirty = memory.collect_dirty(&self.store)?;
            let committed: Vec<(PageIndex, &PageBytes)> =
                dirty.iter().map(|(index, _)| (*index, heap.get_page(*index))).collect();
            self.overwrite(&committed, heap.clone())?;
        }
        self.restore_globals(globals)
    }

    /// Bring an instance that holds an older version of the heap up to
    /// `heap`, given the pages that changed since (`changes`, as
    /// `PageDelta::changes_since` tells them).
    pub(super) fn catch_up(&mut self, changes: &[(PageIndex, Page)], heap: PageMap) -> Result<(), ExecutionError> {
        let pages: Vec<(PageIndex, &PageBytes)> = changes.iter().map(|(index, page)| (*index, page.bytes())).collect();
        self.overwrite(&pages, heap)
    }

    /// Write `pages` into the memory, and re-arm it to hold `heap` (which
    /// those pages make it equal to).
    fn overwrite(&mut self, pages: &[(PageIndex, &PageBytes)], heap: PageMap) -> Result<(), ExecutionError> {
        let Some(memory) = &self.heap else { return Ok(()) };
        for (index, bytes) in pages {
            memory.write(&mut self.store, index.byte_offset(), &bytes[..])?;
        }
        let changed: Vec<PageIndex> = pages.iter().map(|(index, _)| *index).collect();
        memory.rearm(&mut self.store, heap, &changed)?;
        Ok(())
    }

    /// Run `export` for `message` with `limit` instructions of fuel; if
    /// `paced`, reporting its progress to the gate every `interval`
    /// instructions (and waiting there while it has used its allowance).
    pub(super) fn run(&mut self, invoke: &Invoke, message: MessageState, limit: u64, paced: Option<Pacing<'_>>) -> Run {
        let before = self.counters();
        self.store.data_mut().message = message;
        let result = match paced {
            Some(pacing) => self.call_paced(invoke, limit, pacing),
            None => self.call(invoke, limit),
        };
        let instructions = limit.saturating_sub(self.store.get_fuel().unwrap_or(0));
        let placeholder = MessageState::new(ApiContext::Update, "", Vec::new(), Vec::new(), 0, Arc::default());
        let message = std::mem::replace(&mut self.store.data_mut().message, placeholder);
        Run { result, message, instructions, memory: self.counters() - before }
    }

    /// The function `invoke` names. A callback's index must name a
    /// function of type `(I) -> ()` in the table, or the callback traps.
    fn callee(&mut self, invoke: &Invoke) -> Result<Callee, ExecutionError> {
        let closure = match invoke {
            Invoke::Export(export) => {
                return self
                    .instance
                    .get_typed_func::<(), ()>(&mut self.store, export)
                    .map(Callee::Export)
                    .map_err(|e| ExecutionError::Instantiation(format!("export {export}: {e:#}")));
            }
            Invoke::Closure(closure) => *closure,
        };
        let Some(table) = self.instance.get_table(&mut self.store, TABLE_EXPORT) else {
            return Err(ExecutionError::Trapped(
                "the callback names a table function, but the module has no table".into(),
            ));
        };
        let func = match table.get(&mut self.store, closure.fun) {
            Some(Ref::Func(Some(func))) => func,
            Some(_) => return Err(ExecutionError::Trapped(format!("callback table entry {} is empty", closure.fun))),
            None => {
                return Err(ExecutionError::Trapped(format!(
                    "callback table index {} is out of bounds of the table",
                    closure.fun
                )));
            }
        };
        let ty = func.ty(&self.store);
        let params: Vec<ValType> = ty.params().collect();
        let env = match params.as_slice() {
            [ValType::I32] if ty.results().len() == 0 => match u32::try_from(closure.env) {
                Ok(env) => Val::I32(env as i32),
                Err(_) => return Err(ExecutionError::Trapped("the callback's env does not fit in 32 bits".into())),
            },
            [ValType::I64] if ty.results().len() == 0 => Val::I64(closure.env as i64),
            _ => {
                return Err(ExecutionError::Trapped(format!(
                    "callback function {} has the wrong type: callbacks take one integer and return nothing",
                    closure.fun
                )));
            }
        };
        Ok(Callee::Closure(func, env))
    }

    fn call(&mut self, invoke: &Invoke, limit: u64) -> Result<(), ExecutionError> {
        self.store.set_fuel(limit).map_err(|e| ExecutionError::Instantiation(format!("{e:#}")))?;
        let outcome = match self.callee(invoke)? {
            Callee::Export(func) => func.call(&mut self.store, ()),
            Callee::Closure(func, env) => func.call(&mut self.store, &[env], &mut []),
        };
        let error = match outcome {
            Ok(()) => return Ok(()),
            Err(error) => error,
        };
        let failure = self.heap.as_ref().and_then(TrackedMemory::failure);
        Err(classify(error, failure, limit))
    }

    /// `call`, run as a future that yields every `pacing.interval`
    /// instructions of fuel: wasmtime suspends the code exactly there (on
    /// a fiber), so pausing never depends on timing and costs nothing
    /// between yields. At each yield the progress goes to the gate, which
    /// holds the message while it has used its allowance.
    fn call_paced(&mut self, invoke: &Invoke, limit: u64, pacing: Pacing<'_>) -> Result<(), ExecutionError> {
        let setup = |e: wasmtime::Error| ExecutionError::Instantiation(format!("{e:#}"));
        let interval = pacing.interval.max(1);
        self.store.fuel_async_yield_interval(Some(interval)).map_err(setup)?;
        self.store.set_fuel(limit).map_err(setup)?;
        let callee = self.callee(invoke)?;
        let store = &mut self.store;
        let outcome = {
            let mut future: std::pin::Pin<Box<dyn Future<Output = wasmtime::Result<()>> + Send + '_>> = match &callee {
                Callee::Export(func) => Box::pin(func.call_async(store, ())),
                Callee::Closure(func, env) => Box::pin(func.call_async(store, std::slice::from_ref(env), &mut [])),
            };
            let mut context = Context::from_waker(Waker::noop());
            // A lower bound of the fuel used: System API charges between
            // yields are not counted, which only lets a slice run a little
            // longer; what the message computes is unaffected.
            let mut used = 0u64;
            loop {
                match future.as_mut().poll(&mut context) {
                    Poll::Ready(outcome) => break Some(outcome),
                    Poll::Pending => {
                        used = used.saturating_add(interval);
                        if pacing.gate.report(used).is_err() {
                            // Nobody wants the result: dropping the future
                            // unwinds the suspended code.
                            break None;
                        }
                    }
                }
            }
        };
        match outcome {
            Some(Ok(())) => Ok(()),
            Some(Err(error)) => {
                let failure = self.heap.as_ref().and_then(TrackedMemory::failure);
                Err(classify(error, failure, limit))
            }
            None => Err(ExecutionError::HostResource(Cancelled.to_string())),
        }
    }
}

/// How a sliced message is paced.
#[derive(Copy, Clone)]
pub(super) struct Pacing<'a> {
    /// Where it reports progress and waits for its allowance.
    pub(super) gate: &'a SliceGate,
    /// Instructions between reports.
    pub(super) interval: u64,
}

/// Turn a wasmtime error into the reason the message failed.
fn classify(error: wasmtime::Error, failure: Option<ProtectFailure>, limit: u64) -> ExecutionError {
    if let Some(trap) = error.downcast_ref::<HostTrap>() {
        return match trap {
            HostTrap::ContractViolation(message) => ExecutionError::ContractViolation(message.clone()),
            HostTrap::CalledTrap(message) => ExecutionError::CalledTrap(message.clone()),
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
    // Neither a trap nor a System API error: the engine failed, not the
    // canister, so it is not an outcome to replicate.
    ExecutionError::HostResource(format!("{error:#}"))
}
