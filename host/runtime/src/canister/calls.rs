//! Calls between canisters, on the canister's side: call contexts (what a
//! message must eventually answer), callbacks (what runs when a call it
//! made is answered), and the input queue of requests and responses from
//! other canisters.
//!
//! All of it is part of the canister's state: checkpointed, digested, and
//! rebuilt exactly by replay, since it follows from the ingress messages
//! alone. A call context is answered at most once; it closes when it is
//! answered and no call it made is outstanding. One that can no longer be
//! answered (no reply, nothing outstanding) is rejected for it, as on the
//! IC.

use std::collections::{BTreeMap, VecDeque};

use candid::{CandidType, Deserialize, Principal};
use embedder::system_api::{Closure, DEFAULT_CALL_CAPACITY};
use embedder::{
    Call, CallbackKind, CallbackTarget, EntryPoint, ErrorCode, ExecutionError, Executor, Incoming, MessageResult,
    MethodKind, RejectCode, Response, Target,
};

use super::{Canister, CanisterError, CanisterStatus, LongCall, Origin};
use crate::round::Outcome;

/// Where a call context's answer goes.
#[derive(CandidType, Deserialize, Clone, Debug, PartialEq, Eq)]
pub enum ContextOrigin {
    /// An ingress message (its position in the round it arrived in).
    Ingress(Origin),
    /// A call from another canister, answered by responding to its callback.
    Canister {
        /// The calling canister.
        caller: Principal,
        /// Its callback.
        callback: u64,
    },
    /// A timer or heartbeat: nobody waits for an answer.
    System,
}

/// A message that must eventually be answered.
#[derive(CandidType, Deserialize, Clone, Debug, PartialEq, Eq)]
pub struct CallContext {
    /// Who waits.
    pub origin: ContextOrigin,
    /// Who called (for `msg_caller` in its callbacks).
    pub caller: Principal,
    /// Whether it has been answered.
    pub responded: bool,
    /// Instructions its messages have used (`performance_counter(1)`).
    pub instructions: u64,
    /// Cycles the caller attached that no message has accepted yet: what
    /// `msg_cycles_available` reports, refunded with the answer.
    pub cycles: u128,
}

/// What runs when a call the canister made is answered.
#[derive(CandidType, Deserialize, Clone, Debug, PartialEq, Eq)]
pub struct Callback {
    /// The call context that made the call.
    pub context: u64,
    /// Who was called.
    pub callee: Principal,
    /// (table index, env) of the reply callback.
    pub reply: (u64, u64),
    /// (table index, env) of the reject callback.
    pub reject: (u64, u64),
    /// (table index, env) of the cleanup callback, if any.
    pub cleanup: Option<(u64, u64)>,
    /// Cycles attached to the call.
    pub cycles: u128,
    /// For a best-effort call: when it times out (nanoseconds); 0 for a
    /// guaranteed response, and once its timeout has been queued.
    pub deadline: u64,
}

/// How a call was answered.
#[derive(CandidType, Deserialize, Clone, Debug, PartialEq, Eq)]
pub enum Payload {
    /// The callee replied.
    Reply(Vec<u8>),
    /// The call was rejected, with a reject code and a message.
    Reject(u32, String),
}

/// A message from another canister.
#[derive(CandidType, Deserialize, Clone, Debug, PartialEq, Eq)]
pub enum InterMessage {
    /// A call.
    Request {
        /// The calling canister.
        caller: Principal,
        /// The caller's callback for the answer.
        callback: u64,
        /// The method.
        method: String,
        /// The argument.
        arg: Vec<u8>,
        /// Cycles attached.
        cycles: u128,
        /// A best-effort call's deadline (0: guaranteed).
        deadline: u64,
    },
    /// The answer to a call this canister made.
    Response {
        /// The callback it answers.
        callback: u64,
        /// The answer.
        payload: Payload,
        /// Cycles the callee did not accept.
        refund: u128,
    },
}

impl Payload {
    /// The reject a calling canister reads when `canister` failed: the
    /// code's reject code, and the IC's text `IC0503: Error from Canister
    /// <id>: ...`.
    pub fn failure(canister: Principal, code: ErrorCode, text: &str) -> Payload {
        Payload::Reject(code.reject_code() as u32, format!("{code}: Error from Canister {canister}: {text}"))
    }
}

impl InterMessage {
    /// Roughly what it holds in memory.
    pub fn size_bytes(&self) -> usize {
        match self {
            InterMessage::Request { method, arg, .. } => 128 + method.len() + arg.len(),
            InterMessage::Response { payload: Payload::Reply(bytes), .. } => 64 + bytes.len(),
            InterMessage::Response { payload: Payload::Reject(_, text), .. } => 64 + text.len(),
        }
    }
}

/// A canister's calls: open contexts, outstanding callbacks, its input
/// queue, and who waits for it to stop.
#[derive(CandidType, Deserialize, Clone, Debug, Default, PartialEq, Eq)]
pub struct CallState {
    /// Open call contexts, by id.
    pub contexts: BTreeMap<u64, CallContext>,
    /// Outstanding callbacks, by id.
    pub callbacks: BTreeMap<u64, Callback>,
    /// The id the next call context gets.
    pub next_context: u64,
    /// The id the next callback gets.
    pub next_callback: u64,
    /// Requests and responses from other canisters, in arrival order.
    pub inbox: VecDeque<InterMessage>,
    /// Stop requests waiting for the contexts to close, each with the time
    /// after which it is answered with a timeout instead.
    pub stop_waiters: Vec<(ContextOrigin, u64)>,
}

impl CallState {
    /// Whether nothing is open, outstanding or queued.
    pub fn is_empty(&self) -> bool {
        self.contexts.is_empty() && self.callbacks.is_empty() && self.inbox.is_empty() && self.stop_waiters.is_empty()
    }

    fn outstanding(&self, context: u64) -> usize {
        self.callbacks.values().filter(|c| c.context == context).count()
    }
}

/// What a canister's messages send out: messages to other canisters (or
/// to the management canister), and answers to ingress messages.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Output {
    /// A request or response for canister `to`.
    Message {
        /// The destination.
        to: Principal,
        /// The message.
        message: InterMessage,
    },
    /// The answer to an ingress message.
    Ingress(Origin, Outcome),
}

/// How long a stop request waits for the canister's call contexts to
/// close before it is answered with a timeout (the IC's 5 minutes).
pub const STOP_TIMEOUT_NANOS: u64 = 5 * 60 * 1_000_000_000;

/// The most callbacks a canister may have outstanding: further calls fail
/// in `call_perform` as if its queues were full.
pub const MAX_OUTSTANDING_CALLS: usize = 5_000;

/// The outcome an ingress message gets from a failed message.
fn error_outcome(error: &ExecutionError) -> Outcome {
    Outcome::Error { code: error.code(), message: error.to_string() }
}

impl Canister {
    /// The calls: contexts, callbacks and input queue.
    pub fn calls(&self) -> &CallState {
        &self.calls
    }

    /// Queue a message from another canister.
    pub(crate) fn deliver(&mut self, message: InterMessage) {
        self.calls.inbox.push_back(message);
    }

    /// Whether messages from other canisters wait.
    pub(crate) fn has_inbox(&self) -> bool {
        !self.calls.inbox.is_empty()
    }

    /// How many calls a message may still make: the IC's queue capacity
    /// per message, within what the canister may have outstanding.
    pub(crate) fn call_capacity(&self) -> usize {
        MAX_OUTSTANDING_CALLS.saturating_sub(self.calls.callbacks.len()).min(DEFAULT_CALL_CAPACITY)
    }

    /// The best-effort calls whose deadline has passed and whose timeout is
    /// not queued yet.
    fn due_callbacks(&self, time: u64) -> impl Iterator<Item = u64> + '_ {
        self.calls.callbacks.iter().filter(move |(_, c)| c.deadline != 0 && c.deadline < time).map(|(id, _)| *id)
    }

    /// Whether a best-effort call has passed its deadline without its
    /// timeout being queued yet, or a stop request has waited too long.
    pub(crate) fn has_expired_call(&self, time: u64) -> bool {
        self.due_callbacks(time).next().is_some()
            || self.calls.stop_waiters.iter().any(|(_, deadline)| *deadline < time)
    }

    /// Answer the stop requests that waited longer than
    /// [`STOP_TIMEOUT_NANOS`] with a timeout (the canister stays stopping),
    /// as the IC does.
    pub(crate) fn expire_stops(&mut self, time: u64) {
        let (expired, waiting): (Vec<_>, Vec<_>) =
            std::mem::take(&mut self.calls.stop_waiters).into_iter().partition(|(_, deadline)| *deadline < time);
        self.calls.stop_waiters = waiting;
        let error = || Err(CanisterError::StopTimedOut { canister: self.id });
        let answers: Vec<Output> = expired.into_iter().filter_map(|(waiter, _)| answer_stop(waiter, error())).collect();
        self.outbox.extend(answers);
    }

    /// Time out the best-effort calls whose deadline has passed: their
    /// callbacks get a `SYS_UNKNOWN` reject (queued like any response), and
    /// a real response that comes later finds no callback and is dropped.
    pub(crate) fn expire_calls(&mut self, time: u64) {
        let due: Vec<u64> = self.due_callbacks(time).collect();
        for callback in due {
            if let Some(c) = self.calls.callbacks.get_mut(&callback) {
                c.deadline = 0; // its timeout is queued: it is due no more
            }
            let payload = Payload::Reject(RejectCode::SysUnknown as u32, "Call deadline has expired.".into());
            self.calls.inbox.push_back(InterMessage::Response { callback, payload, refund: 0 });
        }
    }

    /// Fold a finished message of a new call context into the state: the
    /// context opens if the message made calls without answering;
    /// otherwise its answer goes out at once.
    pub(crate) fn open_context(
        &mut self,
        origin: ContextOrigin,
        caller: Principal,
        cycles: u128,
        result: &MessageResult,
        time: u64,
        out: &mut Vec<Output>,
    ) {
        let id = self.calls.next_context;
        self.calls.next_context += 1;
        let context = CallContext {
            origin,
            caller,
            responded: false,
            instructions: result.stats.instructions,
            cycles: cycles.saturating_sub(result.cycles_accepted),
        };
        self.calls.contexts.insert(id, context);
        self.after_message(id, result, time, out);
        // Ids need only be unique among open contexts: one that closed at
        // once (most messages make no calls) leaves no trace in the state.
        if !self.calls.contexts.contains_key(&id) && self.calls.next_context == id + 1 {
            self.calls.next_context = id;
        }
    }

    /// After a message of context `id` ran: register the calls it made,
    /// send its answer if it gave one, and close the context or answer for
    /// it if nobody else can.
    fn after_message(&mut self, id: u64, result: &MessageResult, time: u64, out: &mut Vec<Output>) {
        for call in &result.calls {
            self.register_call(id, call, time, out);
        }
        let response = match &result.outcome {
            Ok(Response::Reply(bytes)) => Some(Payload::Reply(bytes.clone())),
            Ok(Response::Reject(text)) => Some(Payload::Reject(RejectCode::CanisterReject as u32, text.clone())),
            _ => None,
        };
        if let Some(payload) = response {
            self.respond(id, Answer::Payload(payload), out);
        }
        let outstanding = self.calls.outstanding(id);
        let Some(context) = self.calls.contexts.get(&id) else { return };
        if outstanding == 0 {
            if !context.responded {
                let error = match &result.outcome {
                    Err(error) => error.clone(),
                    Ok(_) => ExecutionError::DidNotReply,
                };
                self.respond(id, Answer::Error(error), out);
            }
            self.calls.contexts.remove(&id);
            self.finish_stopping(out);
        }
    }

    fn register_call(
        &mut self,
        context: u64,
        call: &embedder::system_api::OutgoingCall,
        time: u64,
        out: &mut Vec<Output>,
    ) {
        let id = self.calls.next_callback;
        self.calls.next_callback += 1;
        // Deadlines are whole seconds, as on the IC; it expires once the
        // round's time is past it.
        const SECOND: u64 = 1_000_000_000;
        let deadline = call.timeout_seconds.map_or(0, |s| time.saturating_add(u64::from(s) * SECOND) / SECOND * SECOND);
        let callee = Principal::try_from_slice(&call.callee).ok();
        self.calls.callbacks.insert(
            id,
            Callback {
                context,
                callee: callee.unwrap_or(Principal::anonymous()),
                reply: (call.reply.fun, call.reply.env),
                reject: (call.reject.fun, call.reject.env),
                cleanup: call.cleanup.map(|c| (c.fun, c.env)),
                cycles: call.cycles,
                deadline,
            },
        );
        let message = match callee {
            Some(to) => {
                let request = InterMessage::Request {
                    caller: self.id,
                    callback: id,
                    method: call.method.clone(),
                    arg: call.arg.clone(),
                    cycles: call.cycles,
                    deadline,
                };
                Output::Message { to, message: request }
            }
            // Not a principal: rejected for the caller, never delivered.
            None => Output::Message {
                to: self.id,
                message: InterMessage::Response {
                    callback: id,
                    payload: Payload::Reject(
                        RejectCode::DestinationInvalid as u32,
                        "the callee is not a valid principal".into(),
                    ),
                    refund: call.cycles,
                },
            },
        };
        out.push(message);
    }

    /// Answer context `id` (if it was not answered yet), refunding the
    /// cycles nobody accepted.
    fn respond(&mut self, id: u64, answer: Answer, out: &mut Vec<Output>) {
        let Some(context) = self.calls.contexts.get_mut(&id) else { return };
        if context.responded {
            return;
        }
        context.responded = true;
        let refund = std::mem::take(&mut context.cycles);
        match context.origin.clone() {
            ContextOrigin::Ingress(origin) => {
                let outcome = match answer {
                    Answer::Payload(Payload::Reply(bytes)) => Outcome::Reply(bytes),
                    Answer::Payload(Payload::Reject(_, text)) => Outcome::Reject(text),
                    Answer::Error(error) => error_outcome(&error),
                };
                out.push(Output::Ingress(origin, outcome));
            }
            ContextOrigin::Canister { caller, callback } => {
                let payload = match answer {
                    Answer::Payload(payload) => payload,
                    Answer::Error(error) => self.error_payload(&error),
                };
                out.push(Output::Message { to: caller, message: InterMessage::Response { callback, payload, refund } });
            }
            ContextOrigin::System => {}
        }
    }

    /// What running `message` (a request or response from the input
    /// queue) calls, or None if it runs nothing: a request the canister
    /// cannot take (refused, with the refusal returned to the caller by
    /// [`Canister::refusal`]) or a response whose callback is gone.
    pub(crate) fn inbox_call(&self, message: &InterMessage, time: u64) -> Option<OwnedCall> {
        let call_capacity = self.call_capacity();
        match message {
            InterMessage::Request { caller, method, arg, cycles, deadline, .. } => {
                if self.status != CanisterStatus::Running {
                    return None;
                }
                let incoming = Incoming { cycles: *cycles, deadline: *deadline, call_capacity };
                let target = OwnedTarget::Update(method.clone());
                Some(OwnedCall { target, arg: arg.clone(), caller: *caller, time, incoming })
            }
            InterMessage::Response { callback, payload, refund } => {
                let callback = self.calls.callbacks.get(callback)?;
                let context = self.calls.contexts.get(&callback.context)?;
                let (kind, closure, arg, reject) = match payload {
                    Payload::Reply(bytes) => (CallbackKind::Reply, callback.reply, bytes.clone(), None),
                    Payload::Reject(code, text) => {
                        (CallbackKind::Reject, callback.reject, Vec::new(), Some((*code, text.clone())))
                    }
                };
                let target = OwnedTarget::Callback {
                    kind,
                    closure,
                    responded: context.responded,
                    reject,
                    refunded: (*refund).min(callback.cycles),
                    context_instructions: context.instructions,
                };
                let incoming = Incoming { call_capacity, cycles: context.cycles, ..Incoming::default() };
                Some(OwnedCall { target, arg, caller: context.caller, time, incoming })
            }
        }
    }

    /// The refusal of a request the canister does not take.
    fn refusal(&self, message: &InterMessage) -> Option<Output> {
        let InterMessage::Request { caller, callback, cycles, .. } = message else { return None };
        let code = match self.status {
            CanisterStatus::Running => return None,
            CanisterStatus::Stopping => ErrorCode::CanisterStopping,
            CanisterStatus::Stopped => ErrorCode::CanisterStopped,
        };
        let text = format!("canister {} is {}", self.id, self.status);
        let payload = Payload::Reject(code.reject_code() as u32, text);
        Some(Output::Message {
            to: *caller,
            message: InterMessage::Response { callback: *callback, payload, refund: *cycles },
        })
    }

    /// Run the next message of the input queue, if any, as a first slice:
    /// one that needs more becomes the long message. Returns the results
    /// of what ran, for the round's digest.
    pub(crate) fn run_inbox_message(
        &mut self,
        exec: &Executor,
        time: u64,
        out: &mut Vec<Output>,
    ) -> Vec<MessageResult> {
        let Some(message) = self.calls.inbox.pop_front() else { return Vec::new() };
        let Some(call) = self.inbox_call(&message, time) else {
            out.extend(self.refusal(&message));
            // A response whose callback is gone (it timed out) is dropped.
            return Vec::new();
        };
        let Some(result) = exec.execute_first_slice(&mut self.exec, call.call()) else {
            self.start_long(None, LongCall::Inter(message), time);
            return Vec::new();
        };
        self.canister_log.record(time, &result);
        self.finish_inbox(exec, message, result, time, out)
    }

    /// After a request or response ran (in one slice or as the long
    /// message): open the request's call context, or finish the callback
    /// (its cleanup if it trapped, then its call context).
    pub(crate) fn finish_inbox(
        &mut self,
        exec: &Executor,
        message: InterMessage,
        result: MessageResult,
        time: u64,
        out: &mut Vec<Output>,
    ) -> Vec<MessageResult> {
        match message {
            InterMessage::Request { caller, callback, cycles, .. } => {
                // A replicated query answers without committing anything.
                if result.committed || result.outcome.is_ok() {
                    let origin = ContextOrigin::Canister { caller, callback };
                    self.open_context(origin, caller, cycles, &result, time, out);
                } else {
                    // Never started (no module, no such method) or trapped:
                    // the caller gets the error, and its cycles back.
                    let error = result.outcome.clone().err().unwrap_or(ExecutionError::DidNotReply);
                    let payload = self.error_payload(&error);
                    out.push(Output::Message {
                        to: caller,
                        message: InterMessage::Response { callback, payload, refund: cycles },
                    });
                }
                vec![result]
            }
            InterMessage::Response { callback: id, .. } => {
                let Some(callback) = self.calls.callbacks.remove(&id) else { return vec![result] };
                if let Some(context) = self.calls.contexts.get_mut(&callback.context) {
                    context.instructions = context.instructions.saturating_add(result.stats.instructions);
                    if result.committed {
                        context.cycles = context.cycles.saturating_sub(result.cycles_accepted);
                    }
                }
                let mut results = vec![result.clone()];
                if !result.committed
                    && let Some(cleanup) = callback.cleanup
                    && let Some(context) = self.calls.contexts.get(&callback.context)
                {
                    let target = OwnedTarget::Callback {
                        kind: CallbackKind::Cleanup,
                        closure: cleanup,
                        responded: context.responded,
                        reject: None,
                        refunded: 0,
                        context_instructions: context.instructions,
                    };
                    let incoming = Incoming { call_capacity: 0, ..Incoming::default() };
                    let call = OwnedCall { target, arg: Vec::new(), caller: context.caller, time, incoming };
                    let cleaned = exec.execute(&mut self.exec, call.call());
                    self.canister_log.record(time, &cleaned);
                    results.push(cleaned);
                }
                self.after_message(callback.context, &result, time, out);
                results
            }
        }
    }

    /// How a calling canister reads this canister's failure: the reject
    /// code, and the IC's text `IC0503: Error from Canister <id>: ...`.
    fn error_payload(&self, error: &ExecutionError) -> Payload {
        Payload::failure(self.id, error.code(), &error.to_string())
    }

    /// Reject every open call context and forget every callback, as an
    /// uninstall (or reinstall) does on the IC: the new code could not
    /// answer them, and the old callbacks' table entries mean nothing to
    /// it. Responses that arrive later find no callback and are dropped.
    pub(crate) fn abandon_calls(&mut self) {
        let contexts = std::mem::take(&mut self.calls.contexts);
        self.calls.callbacks.clear();
        let text = "Canister has been uninstalled.".to_string();
        let mut out = Vec::new();
        for (_, context) in contexts.into_iter().filter(|(_, c)| !c.responded) {
            match context.origin {
                ContextOrigin::Ingress(origin) => out.push(Output::Ingress(origin, Outcome::Reject(text.clone()))),
                ContextOrigin::Canister { caller, callback } => {
                    let payload = Payload::Reject(RejectCode::CanisterReject as u32, text.clone());
                    let response = InterMessage::Response { callback, payload, refund: context.cycles };
                    out.push(Output::Message { to: caller, message: response });
                }
                ContextOrigin::System => {}
            }
        }
        self.finish_stopping(&mut out);
        self.outbox.extend(out);
    }

    /// Take the answers produced outside messages, to deliver them.
    pub(crate) fn take_outbox(&mut self) -> Vec<Output> {
        std::mem::take(&mut self.outbox)
    }

    /// Stop waiting callers once the last context closed: the canister is
    /// stopped.
    fn finish_stopping(&mut self, out: &mut Vec<Output>) {
        if self.status == CanisterStatus::Stopping && self.calls.contexts.is_empty() {
            self.set_status(CanisterStatus::Stopped);
            for (waiter, _) in std::mem::take(&mut self.calls.stop_waiters) {
                out.extend(answer_stop(waiter, Ok(())));
            }
        }
    }
}

/// What a message runs, owned, so it can be handed to the thread of a
/// long message.
#[derive(Clone, Debug)]
pub(crate) struct OwnedCall {
    pub(crate) target: OwnedTarget,
    pub(crate) arg: Vec<u8>,
    pub(crate) caller: Principal,
    pub(crate) time: u64,
    pub(crate) incoming: Incoming,
}

/// What [`OwnedCall`] runs.
#[derive(Clone, Debug)]
pub(crate) enum OwnedTarget {
    /// An update method.
    Update(String),
    /// A system entry point.
    Entry(EntryPoint),
    /// A callback.
    Callback {
        kind: CallbackKind,
        closure: (u64, u64),
        responded: bool,
        reject: Option<(u32, String)>,
        refunded: u128,
        context_instructions: u64,
    },
}

impl OwnedCall {
    /// The executor's view of it.
    pub(crate) fn call(&self) -> Call<'_> {
        let target = match &self.target {
            OwnedTarget::Update(method) => Target::Method { name: method, kind: MethodKind::Update },
            OwnedTarget::Entry(entry) => Target::Entry(*entry),
            OwnedTarget::Callback { kind, closure, responded, reject, refunded, context_instructions } => {
                Target::Callback(CallbackTarget {
                    kind: *kind,
                    closure: Closure { fun: closure.0, env: closure.1 },
                    responded: *responded,
                    reject: reject.as_ref().map(|(code, text)| (*code, text.as_str())),
                    refunded: *refunded,
                    context_instructions: *context_instructions,
                    composite: false,
                })
            }
        };
        Call {
            target,
            arg: &self.arg,
            caller: self.caller.as_slice(),
            time: self.time,
            incoming: self.incoming,
            data_certificate: None,
        }
    }
}

/// The answer to a stop request: for an ingress message, its outcome; for
/// a canister's `stop_canister`, the management canister's response.
pub(crate) fn answer_stop(waiter: ContextOrigin, result: Result<(), CanisterError>) -> Option<Output> {
    match waiter {
        ContextOrigin::Ingress(origin) => {
            Some(Output::Ingress(origin, result.map_or_else(|e| Outcome::failed(&e), |()| Outcome::Done)))
        }
        ContextOrigin::Canister { caller, callback } => {
            let payload = match result {
                Ok(()) => Payload::Reply(candid::encode_one(()).expect("() encodes")),
                Err(e) => Payload::Reject(e.code().reject_code() as u32, e.to_string()),
            };
            let response = InterMessage::Response { callback, payload, refund: 0 };
            Some(Output::Message { to: caller, message: response })
        }
        ContextOrigin::System => None,
    }
}

/// How a context is answered.
enum Answer {
    Payload(Payload),
    Error(ExecutionError),
}
