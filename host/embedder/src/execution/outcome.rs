//! What a message asks for, and what it produced.

use std::time::Duration;

use memory_tracker::{AccessError, MemoryCounters, ProtectFailure};
use page_delta::PageIndex;

use crate::codes::ErrorCode;
use crate::module::{EntryPoint, MethodKind};
use crate::system_api::{Closure, DEFAULT_CALL_CAPACITY, OutgoingCall, Response};

/// What a message asks to run.
#[derive(Copy, Clone, Debug)]
pub struct Call<'a> {
    /// What to run.
    pub target: Target<'a>,
    /// The argument bytes (`ic0.msg_arg_data_*`).
    pub arg: &'a [u8],
    /// The caller's principal, as bytes (`ic0.msg_caller_*`).
    pub caller: &'a [u8],
    /// The round's time, in nanoseconds since the epoch.
    pub time: u64,
    /// What the message carries besides its argument.
    pub incoming: Incoming,
    /// A certificate of the canister's certified data, for a query answered
    /// outside consensus (`ic0.data_certificate_*`); `None` elsewhere.
    pub data_certificate: Option<&'a [u8]>,
}

impl<'a> Call<'a> {
    /// A call of method `name`, as `kind`.
    pub fn method(name: &'a str, kind: MethodKind, arg: &'a [u8], caller: &'a [u8], time: u64) -> Call<'a> {
        Call {
            target: Target::Method { name, kind },
            arg,
            caller,
            time,
            incoming: Incoming::default(),
            data_certificate: None,
        }
    }

    /// A call of a system entry point.
    pub fn entry(entry: EntryPoint, arg: &'a [u8], caller: &'a [u8], time: u64) -> Call<'a> {
        Call { target: Target::Entry(entry), arg, caller, time, incoming: Incoming::default(), data_certificate: None }
    }

    /// The same call, with `certificate` available to `ic0.data_certificate_*`.
    pub fn with_data_certificate(self, certificate: Option<&'a [u8]>) -> Call<'a> {
        Call { data_certificate: certificate, ..self }
    }
}

/// What a message carries besides its argument, and what it may do.
#[derive(Copy, Clone, Debug, PartialEq, Eq)]
pub struct Incoming {
    /// Cycles attached by the calling canister.
    pub cycles: u128,
    /// A best-effort call's deadline (0: a guaranteed response).
    pub deadline: u64,
    /// How many calls the message may make.
    pub call_capacity: usize,
}

impl Default for Incoming {
    fn default() -> Self {
        Incoming { cycles: 0, deadline: 0, call_capacity: DEFAULT_CALL_CAPACITY }
    }
}

/// Which callback of a call runs.
#[derive(Copy, Clone, Debug, PartialEq, Eq, Hash)]
pub enum CallbackKind {
    /// The callee replied.
    Reply,
    /// The call was rejected.
    Reject,
    /// The reply or reject callback trapped.
    Cleanup,
}

/// A callback to run: the closure, and what it learns.
#[derive(Copy, Clone, Debug)]
pub struct CallbackTarget<'a> {
    /// Which callback.
    pub kind: CallbackKind,
    /// The function and its `env`.
    pub closure: Closure,
    /// Whether the call context was already answered.
    pub responded: bool,
    /// For a reject: its code and message.
    pub reject: Option<(u32, &'a str)>,
    /// Cycles the callee did not accept.
    pub refunded: u128,
    /// Instructions the call context used before.
    pub context_instructions: u64,
    /// Whether the call was made by a composite query (the callback then
    /// runs as one: not replicated, with a query's limit).
    pub composite: bool,
}

/// The export a message runs.
#[derive(Copy, Clone, Debug)]
pub enum Target<'a> {
    /// A method, called as an update or a query.
    Method {
        /// The method's name.
        name: &'a str,
        /// How it is called.
        kind: MethodKind,
    },
    /// A system entry point (init, upgrade hooks, timers).
    Entry(EntryPoint),
    /// `canister_inspect_message` for an ingress call of `method`.
    Inspect {
        /// The method the ingress message calls.
        method: &'a str,
    },
    /// A callback of a call the canister made.
    Callback(CallbackTarget<'a>),
}

/// Why a message failed.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
#[allow(missing_docs)] // the fields are named by what they hold; the messages say the rest
pub enum ExecutionError {
    /// The canister is empty.
    #[error("the canister has no code installed; install a module first")]
    NoModule,
    /// The module exports no such method.
    #[error("the canister has no {kind} method {method:?}; its methods are: {}", list(.available))]
    MethodNotFound { method: String, kind: MethodKind, available: Vec<String> },
    /// The method exists but is of another kind.
    #[error("{}", wrong_kind(.method, *.requested, *.actual))]
    WrongKind { method: String, requested: MethodKind, actual: MethodKind },
    /// The canister trapped: a wasm trap (unreachable, out of bounds...).
    #[error("canister trapped: {0}")]
    Trapped(String),
    /// The canister called `ic0.trap`; the text is what it passed.
    #[error("canister called ic0.trap: {0}")]
    CalledTrap(String),
    /// The canister broke a System API rule (a call from the wrong context,
    /// a range outside its memory, a second reply...).
    #[error("canister violated the System API: {0}")]
    ContractViolation(String),
    /// The message ran out of fuel.
    #[error("the message exceeded its instruction limit of {limit}")]
    InstructionLimit { limit: u64 },
    /// A method returned without replying or rejecting.
    #[error("the canister did not reply to the call")]
    DidNotReply,
    /// The host could not change page protections (4 KiB pages).
    #[error(
        "changing the protection of {pages} page(s) at page {first_page} failed ({errno}); if it is ENOMEM the \
         process reached vm.max_map_count: raise it (sysctl -w vm.max_map_count=2097152)"
    )]
    MemoryProtection { errno: String, first_page: usize, pages: usize },
    /// The instance could not be set up.
    #[error("cannot set up the canister's instance: {0}")]
    Instantiation(String),
    /// The host ran out of a resource that is not the canister's to use
    /// up (address space, mappings), or hit a bug. Not an outcome of the
    /// canister: a round that meets one is not applied.
    #[error("the host could not run the message: {0}")]
    HostResource(String),
}

impl ExecutionError {
    /// The IC's error code for this failure.
    pub fn code(&self) -> ErrorCode {
        match self {
            ExecutionError::NoModule => ErrorCode::CanisterWasmModuleNotFound,
            ExecutionError::WrongKind { requested: MethodKind::Update, actual: MethodKind::CompositeQuery, .. } => {
                ErrorCode::CompositeQueryCalledInReplicatedMode
            }
            ExecutionError::MethodNotFound { .. } | ExecutionError::WrongKind { .. } => {
                ErrorCode::CanisterMethodNotFound
            }
            ExecutionError::Trapped(_) => ErrorCode::CanisterTrapped,
            ExecutionError::CalledTrap(_) => ErrorCode::CanisterCalledTrap,
            ExecutionError::ContractViolation(_) => ErrorCode::CanisterContractViolation,
            ExecutionError::InstructionLimit { .. } => ErrorCode::CanisterInstructionLimitExceeded,
            ExecutionError::DidNotReply => ErrorCode::CanisterDidNotReply,
            ExecutionError::Instantiation(_) => ErrorCode::CanisterWasmEngineError,
            // Not replicated outcomes (see `is_host_failure`); the code is
            // what a caller of a query sees.
            ExecutionError::MemoryProtection { .. } | ExecutionError::HostResource(_) => {
                ErrorCode::CanisterWasmEngineError
            }
        }
    }

    /// Whether the host, not the canister, failed: such a failure must not
    /// become a replicated outcome, since replaying the message elsewhere
    /// (or later) need not fail the same way.
    pub fn is_host_failure(&self) -> bool {
        matches!(self, ExecutionError::MemoryProtection { .. } | ExecutionError::HostResource(_))
    }

    /// The message of a trap of any kind (wasm trap, `ic0.trap`, System API
    /// violation): what the canister log records after `[TRAP]: `.
    pub fn trap_message(&self) -> Option<&str> {
        match self {
            ExecutionError::Trapped(m) | ExecutionError::CalledTrap(m) | ExecutionError::ContractViolation(m) => {
                Some(m)
            }
            _ => None,
        }
    }
}

fn wrong_kind(method: &str, requested: MethodKind, actual: MethodKind) -> String {
    if requested == MethodKind::Update && actual == MethodKind::CompositeQuery {
        return format!("Composite query cannot be called in replicated mode (method {method:?})");
    }
    format!(
        "method {method:?} is a{} {actual} method and cannot be called as a{} {requested}",
        article(&actual),
        article(&requested)
    )
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

impl From<AccessError> for ExecutionError {
    fn from(error: AccessError) -> Self {
        match error {
            AccessError::Protect(failure) => failure.into(),
            AccessError::OutOfBounds => {
                ExecutionError::HostResource("a host access to the heap was out of bounds".into())
            }
            AccessError::Busy => ExecutionError::HostResource("the heap tracker was entered twice (a bug)".into()),
        }
    }
}

/// Pages a committed message changed, for result digests.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct DirtyPages {
    /// Heap pages, in order.
    pub heap: Vec<PageIndex>,
    /// Stable memory pages, in order.
    pub stable: Vec<PageIndex>,
}

/// Measurements of one message.
#[derive(Copy, Clone, Debug, Default, PartialEq, Eq)]
pub struct MessageStats {
    /// Instructions (fuel) executed.
    pub instructions: u64,
    /// What serving memory faults cost.
    pub memory: MemoryCounters,
    /// Heap pages whose bytes changed.
    pub dirty_pages: u64,
    /// Stable memory pages whose bytes changed.
    pub stable_dirty_pages: u64,
    /// Wall-clock time, set-up and commit included.
    pub duration: Duration,
}

/// The outcome of a message.
#[derive(Clone, Debug)]
pub struct MessageResult {
    /// How the canister answered, or why the message failed.
    pub outcome: Result<Response, ExecutionError>,
    /// Whether the canister's state now includes the message's effects.
    /// True for replies and rejects, and for an update that did not reply
    /// (as on the IC); false for traps and every query.
    pub committed: bool,
    /// Measurements.
    pub stats: MessageStats,
    /// What `ic0.debug_print` printed, in order.
    pub debug_prints: Vec<Vec<u8>>,
    /// The pages a committed message changed.
    pub dirty: DirtyPages,
    /// For inspect_message: whether the canister accepted the message.
    pub accepted: bool,
    /// The calls a committed message made, in order.
    pub calls: Vec<OutgoingCall>,
    /// Cycles the message accepted.
    pub cycles_accepted: u128,
}

impl MessageResult {
    pub(super) fn failed(error: ExecutionError) -> MessageResult {
        MessageResult {
            outcome: Err(error),
            committed: false,
            stats: MessageStats::default(),
            debug_prints: Vec::new(),
            dirty: DirtyPages::default(),
            accepted: false,
            calls: Vec::new(),
            cycles_accepted: 0,
        }
    }

    /// Why the host (not the canister) failed, if it did.
    pub fn host_failure(&self) -> Option<String> {
        self.outcome.as_ref().err().filter(|e| e.is_host_failure()).map(ToString::to_string)
    }

    /// The reply bytes, if the canister replied.
    pub fn reply(&self) -> Option<&[u8]> {
        match &self.outcome {
            Ok(Response::Reply(bytes)) => Some(bytes),
            _ => None,
        }
    }
}
