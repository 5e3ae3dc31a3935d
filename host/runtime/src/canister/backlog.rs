//! Deterministic time slicing on the canister's side: a message that needs
//! more than one slice of instructions runs on a thread of its own, one
//! slice per round, and the operations that arrive meanwhile wait behind
//! it, in order.
//!
//! The long message and the waiting operations are part of the canister's
//! state (checkpointed and digested); the thread running the message is
//! not. After a restart the message runs again from its start, catching up
//! the slices it had: what it computes depends only on the state and its
//! input, and the round that reports it only on the instructions it used
//! (it completes in the first round in which it has had
//! `ceil(instructions / slice)` slices), so replay agrees.

use std::collections::VecDeque;
use std::sync::Arc;
use std::thread::JoinHandle;

use candid::{CandidType, Deserialize, Principal};
use embedder::{CanisterState, EntryPoint, Executable, Executor, Incoming, MessageResult, SliceGate};
use page_delta::Page;

use super::calls::{OwnedCall, OwnedTarget};
use super::{Canister, InterMessage};
use crate::query_pool::WASM_THREAD_STACK;
use crate::round::Operation;

/// Where an operation came from: the height of the round it arrived in,
/// and its position in that round.
pub type Origin = (u64, usize);

/// What a long message runs.
#[derive(CandidType, Deserialize, Clone, Debug, PartialEq, Eq)]
pub enum LongCall {
    /// An update method.
    Update {
        /// Who called.
        sender: Principal,
        /// The method.
        method: String,
        /// Its argument.
        arg: Vec<u8>,
    },
    /// `canister_global_timer`.
    Timer,
    /// `canister_heartbeat`.
    Heartbeat,
    /// A request or response from another canister (the callback of a
    /// response stays registered until it completes).
    Inter(InterMessage),
}

/// A message longer than a slice, in flight.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct LongMessage {
    /// The operation it answers (`None` for a timer or heartbeat).
    pub origin: Option<Origin>,
    /// What it runs.
    pub call: LongCall,
    /// The time of the round it started in: the time it sees throughout.
    pub time: u64,
    /// Slices it has been given so far.
    pub slices: u64,
}

/// Work a canister has not finished.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Backlog {
    /// The long message in flight, if any.
    pub long: Option<LongMessage>,
    /// Operations that arrived while it was busy, in arrival order.
    pub waiting: VecDeque<(Origin, Arc<Operation>)>,
}

/// The thread running a long message. Dropping it cancels the message.
pub(crate) struct LongRun {
    gate: Arc<SliceGate>,
    thread: Option<JoinHandle<(MessageResult, CanisterState)>>,
    /// Its result and final state, once its thread has finished.
    done: Option<(MessageResult, CanisterState)>,
}

impl Drop for LongRun {
    fn drop(&mut self) {
        // Nobody wants the result: stop at its next report (the thread
        // exits on its own; joining could wait for part of a slice).
        self.gate.cancel();
    }
}

impl LongRun {
    fn start(exec: Arc<Executor>, state: CanisterState, id: Principal, call: OwnedCall) -> Result<LongRun, String> {
        let gate = Arc::new(SliceGate::new());
        let run_gate = gate.clone();
        let thread = std::thread::Builder::new()
            .name(format!("canister-long-{id}"))
            .stack_size(WASM_THREAD_STACK)
            .spawn(move || {
                let mut canister = Executable::new(state);
                let result = exec.execute_sliced(&mut canister, call.call(), &run_gate);
                (result, canister.state().clone())
            })
            .map_err(|e| format!("cannot start a thread for a long message: {e}"))?;
        Ok(LongRun { gate, thread: Some(thread), done: None })
    }
}

/// What a long message's slice came to.
pub(crate) enum Step {
    /// It needs more slices.
    Running,
    /// It completed: what it answers, and its result (already applied).
    Done(Option<Origin>, Box<MessageResult>, LongCall),
}

impl Canister {
    /// Whether the canister has unfinished work (a long message, operations
    /// waiting, or messages from other canisters): it needs rounds even
    /// without new messages.
    pub fn is_busy(&self) -> bool {
        self.backlog.long.is_some() || !self.backlog.waiting.is_empty() || self.has_inbox()
    }

    /// The unfinished work.
    pub fn backlog(&self) -> &Backlog {
        &self.backlog
    }

    pub(crate) fn has_long(&self) -> bool {
        self.backlog.long.is_some()
    }

    /// Make `call` the canister's long message, from the next round on.
    pub(crate) fn start_long(&mut self, origin: Option<Origin>, call: LongCall, time: u64) {
        self.backlog.long = Some(LongMessage { origin, call, time, slices: 0 });
    }

    /// Queue an operation behind the long message.
    pub(crate) fn wait(&mut self, origin: Origin, op: Arc<Operation>) {
        self.backlog.waiting.push_back((origin, op));
    }

    /// Take the operations that waited, to run them now.
    pub(crate) fn take_waiting(&mut self) -> VecDeque<(Origin, Arc<Operation>)> {
        std::mem::take(&mut self.backlog.waiting)
    }

    /// What the long message runs, from the state it started in.
    fn owned_call(&self, long: &LongMessage) -> Option<OwnedCall> {
        let (target, arg, caller) = match &long.call {
            LongCall::Update { sender, method, arg } => (OwnedTarget::Update(method.clone()), arg.clone(), *sender),
            LongCall::Timer => (OwnedTarget::Entry(EntryPoint::GlobalTimer), Vec::new(), self.id),
            LongCall::Heartbeat => (OwnedTarget::Entry(EntryPoint::Heartbeat), Vec::new(), self.id),
            LongCall::Inter(message) => return self.inbox_call(message, long.time),
        };
        let incoming = Incoming { call_capacity: self.call_capacity(), ..Incoming::default() };
        Some(OwnedCall { target, arg, caller, time: long.time, incoming })
    }

    /// Give the long message its next slice of `slice` instructions and
    /// wait for it. An error is the host's failure (no thread could start).
    pub(crate) fn step_long(&mut self, exec: &Arc<Executor>, slice: u64) -> Result<Step, String> {
        let Some(long) = self.backlog.long.clone() else { return Ok(Step::Running) };
        if self.running.is_none() {
            let state = self.exec.state().clone();
            let Some(call) = self.owned_call(&long) else {
                // A response whose callback is gone: nothing to run.
                self.backlog.long = None;
                return Ok(Step::Running);
            };
            self.running = Some(LongRun::start(exec.clone(), state, self.id, call)?);
        }
        let long = self.backlog.long.as_mut().expect("cloned above");
        long.slices += 1;
        let run = self.running.as_mut().expect("started above");
        let allowance = long.slices.saturating_mul(slice);
        run.gate.allow(allowance);
        if !run.gate.wait_for(allowance) {
            return Ok(Step::Running);
        }
        if let Some(thread) = run.thread.take() {
            match thread.join() {
                Ok(done) => run.done = Some(done),
                Err(_) => return Err("the thread running a long message failed (a bug)".into()),
            }
        }
        let instructions = run.done.as_ref().map_or(0, |(result, _)| result.stats.instructions);
        // It completes in the round in which it has had as many slices as
        // its instructions need, however early its thread finished.
        if long.slices < instructions.div_ceil(slice.max(1)).max(1) {
            return Ok(Step::Running);
        }
        let (result, after) = run.done.take().expect("joined above");
        let long = self.backlog.long.take().expect("checked above");
        self.running = None;
        self.apply(&result, &after);
        self.canister_log.record(long.time, &result);
        Ok(Step::Done(long.origin, Box::new(result), long.call))
    }

    /// Fold a completed long message's effects into the state: the pages
    /// it changed (onto the canister's current page maps, which a
    /// checkpoint may have remapped meanwhile), sizes, globals and the rest.
    fn apply(&mut self, result: &MessageResult, after: &CanisterState) {
        if !result.committed {
            return;
        }
        let state = self.exec.state_mut();
        state.heap.apply(result.dirty.heap.iter().map(|p| (*p, Page::new(after.heap.get_page(*p)))));
        state.stable.apply(result.dirty.stable.iter().map(|p| (*p, Page::new(after.stable.get_page(*p)))));
        state.heap_pages = after.heap_pages;
        state.stable_pages = after.stable_pages;
        state.globals = after.globals.clone();
        state.certified_data = after.certified_data.clone();
        state.global_timer = after.global_timer;
    }
}
