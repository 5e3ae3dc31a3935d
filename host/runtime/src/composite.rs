//! Composite queries: a `canister_composite_query` method may call query
//! and composite query methods of the host's canisters, and its callbacks
//! see what it did before each call. Nothing persists: every canister runs
//! on a scratch copy of its committed state (as of the view the query
//! started on), and the copies are dropped at the end. Bounded as on the
//! IC: calls at most 6 deep, 5 billion instructions for the whole call
//! graph (each call costing 50 million more).

use std::collections::VecDeque;

use candid::Principal;
use embedder::system_api::OutgoingCall;
use embedder::{
    Call, CallbackKind, CallbackTarget, ErrorCode, Executable, Executor, MessageResult, MethodKind, RejectCode,
    Response, Target,
};

use crate::canister::{CanisterStatus, Payload};
use crate::view::CommittedView;

/// The deepest a composite query's calls may go.
pub const MAX_QUERY_CALL_DEPTH: usize = 6;
/// Instructions a whole composite query call graph may use.
pub const MAX_COMPOSITE_INSTRUCTIONS: u64 = 5_000_000_000;
/// What each call within a composite query costs, in instructions.
pub const INSTRUCTIONS_PER_QUERY_CALL: u64 = 50_000_000;

/// Why a composite query failed as a whole (not a reject one canister
/// gave another).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct CompositeFailure {
    /// The IC's code.
    pub code: ErrorCode,
    /// What happened.
    pub message: String,
}

impl CompositeFailure {
    fn new(code: ErrorCode, message: impl Into<String>) -> CompositeFailure {
        CompositeFailure { code, message: message.into() }
    }
}

/// A composite query in progress: the view it reads, and its budget.
pub(crate) struct CompositeQuery<'a> {
    exec: &'a Executor,
    view: &'a CommittedView,
    time: u64,
    instructions: u64,
}

impl<'a> CompositeQuery<'a> {
    /// A composite query over `view` at `time`.
    pub(crate) fn new(exec: &'a Executor, view: &'a CommittedView, time: u64) -> CompositeQuery<'a> {
        CompositeQuery { exec, view, time, instructions: 0 }
    }

    fn charge(&mut self, instructions: u64) -> Result<(), CompositeFailure> {
        self.instructions = self.instructions.saturating_add(instructions);
        if self.instructions > MAX_COMPOSITE_INSTRUCTIONS {
            return Err(CompositeFailure::new(
                ErrorCode::QueryCallGraphTotalInstructionLimitExceeded,
                "Composite query calls exceeded the instruction limit.",
            ));
        }
        Ok(())
    }

    /// Call `method` of `canister` as `caller`: how it answered. An error
    /// of the call graph (too deep, too many instructions) fails the whole
    /// query.
    pub(crate) fn call(
        &mut self,
        canister: Principal,
        caller: Principal,
        method: &str,
        arg: &[u8],
        depth: usize,
    ) -> Result<Answer, CompositeFailure> {
        let Some(info) = self.view.canisters.get(&canister) else {
            return Ok(Answer::Failed(ErrorCode::CanisterNotFound, format!("Canister {canister} not found")));
        };
        if info.status != CanisterStatus::Running {
            return Ok(Answer::Failed(ErrorCode::CanisterStopped, format!("Canister {canister} is {}", info.status)));
        }
        let kind = info.state.module.as_ref().and_then(|m| m.info.methods.get(method).copied());
        let call = Call::method(method, MethodKind::Query, arg, caller.as_slice(), self.time);
        match kind {
            Some(MethodKind::CompositeQuery) => {}
            // A plain query (or a missing method, or an update: the
            // executor says which) runs as queries do.
            _ => {
                let result = self.exec.query(&info.state, call);
                self.charge(result.stats.instructions)?;
                return Ok(answer_of(&result));
            }
        }
        let mut scratch = Executable::new(info.state.clone());
        let call = Call { target: Target::Method { name: method, kind: MethodKind::CompositeQuery }, ..call };
        let result = self.exec.execute(&mut scratch, call);
        self.charge(result.stats.instructions)?;
        if let Some(failure) = result.host_failure() {
            return Err(CompositeFailure::new(ErrorCode::CanisterWasmEngineError, failure));
        }
        let mut answer = answered(&result);
        let mut calls: VecDeque<OutgoingCall> = result.calls.into();
        while answer.is_none() {
            let Some(outgoing) = calls.pop_front() else { break };
            if depth + 1 >= MAX_QUERY_CALL_DEPTH {
                return Err(CompositeFailure::new(
                    ErrorCode::QueryCallGraphTooDeep,
                    "Composite query calls exceeded the maximum call depth.",
                ));
            }
            self.charge(INSTRUCTIONS_PER_QUERY_CALL)?;
            let response = match Principal::try_from_slice(&outgoing.callee) {
                Ok(callee) => self.call(callee, canister, &outgoing.method, &outgoing.arg, depth + 1)?.payload(callee),
                Err(_) => {
                    Payload::Reject(RejectCode::DestinationInvalid as u32, "the callee is not a principal".into())
                }
            };
            let (kind, closure, arg, reject) = match &response {
                Payload::Reply(bytes) => (CallbackKind::Reply, outgoing.reply, bytes.as_slice(), None),
                Payload::Reject(code, text) => {
                    (CallbackKind::Reject, outgoing.reject, &[][..], Some((*code, text.as_str())))
                }
            };
            let used = self.instructions;
            let target = |kind, closure, reject| {
                Target::Callback(CallbackTarget {
                    kind,
                    closure,
                    responded: false,
                    reject,
                    refunded: 0,
                    context_instructions: used,
                    composite: true,
                })
            };
            let callback = Call {
                target: target(kind, closure, reject),
                arg,
                caller: caller.as_slice(),
                time: self.time,
                incoming: Default::default(),
                data_certificate: None,
            };
            let result = self.exec.execute(&mut scratch, callback);
            self.charge(result.stats.instructions)?;
            if !result.committed
                && let Some(cleanup) = outgoing.cleanup
            {
                let call = Call {
                    target: target(CallbackKind::Cleanup, cleanup, None),
                    arg: &[],
                    caller: caller.as_slice(),
                    time: self.time,
                    incoming: Default::default(),
                    data_certificate: None,
                };
                let cleaned = self.exec.execute(&mut scratch, call);
                self.charge(cleaned.stats.instructions)?;
            }
            if let Err(error) = &result.outcome
                && calls.is_empty()
            {
                // The callback failed and nothing else is outstanding: the
                // call can no longer be answered.
                return Ok(Answer::Failed(error.code(), error.to_string()));
            }
            answer = answered(&result);
            calls.extend(result.calls);
        }
        Ok(answer.unwrap_or_else(|| {
            Answer::Failed(ErrorCode::CanisterDidNotReply, format!("Canister {canister} did not produce a response"))
        }))
    }
}

/// How a canister answered a call within a composite query.
#[derive(Clone, Debug, PartialEq, Eq)]
pub(crate) enum Answer {
    /// It replied.
    Reply(Vec<u8>),
    /// It rejected the call (`ic0.msg_reject`).
    Reject(String),
    /// It failed (trapped, has no such method, ...), or could not be called.
    Failed(ErrorCode, String),
}

impl Answer {
    /// What a calling canister's callback gets from `canister`.
    fn payload(self, canister: Principal) -> Payload {
        match self {
            Answer::Reply(bytes) => Payload::Reply(bytes),
            Answer::Reject(text) => Payload::Reject(RejectCode::CanisterReject as u32, text),
            Answer::Failed(code, text) => Payload::failure(canister, code, &text),
        }
    }
}

/// The answer a message gave, if it gave one (a failure is an answer too).
fn answered(result: &MessageResult) -> Option<Answer> {
    match &result.outcome {
        Ok(Response::None) => None,
        _ => Some(answer_of(result)),
    }
}

fn answer_of(result: &MessageResult) -> Answer {
    match &result.outcome {
        Ok(Response::Reply(bytes)) => Answer::Reply(bytes.clone()),
        Ok(Response::Reject(text)) => Answer::Reject(text.clone()),
        Ok(Response::None) => Answer::Failed(ErrorCode::CanisterDidNotReply, "No response".into()),
        Err(error) => Answer::Failed(error.code(), error.to_string()),
    }
}
