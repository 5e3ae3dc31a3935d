//! The IC System API (`ic0`): what a canister sees while a message runs.
//!
//! [`spec`] lists every import with its signature and the contexts it is
//! allowed in; `functions` links them into wasmtime. Imports this host does
//! not implement still link, so modules instantiate, and trap with
//! `unsupported System API: ic0.<name>` if called.

mod functions;
pub mod spec;
mod stable;

use std::sync::Arc;

pub(crate) use functions::define_unsupported;
pub use functions::{HostTrap, link};
use memory_tracker::TrackedMemory;
pub use spec::ApiContext;
pub use stable::StableMemory;

/// The largest reply an update may build (the IC's replicated limit).
pub const MAX_UPDATE_REPLY: usize = 2 << 20;
/// The largest reply a query may build.
pub const MAX_QUERY_REPLY: usize = 3 << 20;
/// The most a message may print with `debug_print`; later prints are
/// dropped (the IC bounds a message's log output likewise).
pub const MAX_PRINTED_BYTES: usize = 1 << 20;
/// The most certified data a canister may set.
pub const MAX_CERTIFIED_DATA: usize = 32;
/// Longest principal, in bytes.
pub const MAX_PRINCIPAL_BYTES: usize = 29;
/// The largest argument of a call between canisters (the IC's 2 MiB).
pub const MAX_CALL_PAYLOAD: usize = 2 << 20;
/// The longest method name a call may name.
pub const MAX_METHOD_NAME_BYTES: usize = 20_000;
/// The longest a best-effort call may wait for its response (the IC's).
pub const MAX_CALL_TIMEOUT_SECONDS: u32 = 300;
/// Bytes of calls (arguments and names) one message may make: beyond
/// it `call_perform` fails as if the output queue were full, so one
/// message cannot hold the host's memory.
pub const MAX_CALL_BYTES_PER_MESSAGE: usize = 64 << 20;
/// Calls one message may make when the host does not say otherwise (the
/// IC's output queue capacity per pair of canisters).
pub const DEFAULT_CALL_CAPACITY: usize = 500;

/// A function in the canister's table and the value it is called with:
/// what a callback runs.
#[derive(Copy, Clone, Debug, PartialEq, Eq, Hash, serde::Serialize, serde::Deserialize)]
pub struct Closure {
    /// Index into the module's table.
    pub fun: u64,
    /// The argument it is called with.
    pub env: u64,
}

/// A call a message made to another canister.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct OutgoingCall {
    /// The callee's principal, as bytes.
    pub callee: Vec<u8>,
    /// The method to call.
    pub method: String,
    /// Its argument.
    pub arg: Vec<u8>,
    /// Cycles attached.
    pub cycles: u128,
    /// What runs when the callee replies.
    pub reply: Closure,
    /// What runs when the call is rejected.
    pub reject: Closure,
    /// What runs if the reply or reject callback traps.
    pub cleanup: Option<Closure>,
    /// For a best-effort call: how long the caller waits, in seconds.
    pub timeout_seconds: Option<u32>,
}

impl OutgoingCall {
    /// Roughly what it holds in memory.
    pub fn size_bytes(&self) -> usize {
        self.callee.len() + self.method.len() + self.arg.len() + 64
    }
}

/// Facts about the canister that a message may read but not change.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct CanisterEnv {
    /// The canister's principal, as bytes (`ic0.canister_self_*`).
    pub id: Vec<u8>,
    /// Its controllers' principals, as bytes (`ic0.is_controller`).
    pub controllers: Vec<Vec<u8>>,
    /// What `ic0.canister_cycle_balance*` reports.
    pub cycle_balance: u128,
    /// 1 running, 2 stopping, 3 stopped (as `ic0.canister_status` reports).
    pub status: u32,
    /// `ic0.canister_version`.
    pub version: u64,
}

/// How a message ended, as far as the canister decided.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub enum Response {
    /// Neither `msg_reply` nor `msg_reject` was called.
    #[default]
    None,
    /// `msg_reply`, with the bytes appended before it.
    Reply(Vec<u8>),
    /// `msg_reject`, with its message.
    Reject(String),
}

/// Everything a message reads and produces through the System API.
#[derive(Debug)]
pub struct MessageState {
    /// What kind of execution this is, which decides what may be called.
    pub context: ApiContext,
    /// The method name (for `msg_method_name_*` in inspect_message).
    pub method: String,
    /// The argument (`msg_arg_data_*`).
    pub arg: Vec<u8>,
    /// The caller's principal, as bytes (`msg_caller_*`).
    pub caller: Vec<u8>,
    /// The round's time, in nanoseconds since the epoch.
    pub time: u64,
    /// Facts about the canister.
    pub env: Arc<CanisterEnv>,
    /// The fuel the message started with (for `performance_counter`).
    pub instruction_limit: u64,
    /// Reply bytes appended so far.
    pub reply_data: Vec<u8>,
    /// How the message was answered, so far.
    pub response: Response,
    /// Whether inspect_message accepted the message.
    pub accepted: bool,
    /// Certified data, as the message leaves it.
    pub certified_data: Vec<u8>,
    /// The certificate `ic0.data_certificate_*` returns, if any.
    pub data_certificate: Option<Vec<u8>>,
    /// The global timer, as the message leaves it.
    pub global_timer: u64,
    /// Stable memory, as the message leaves it.
    pub stable: StableMemory,
    /// `debug_print` output, in order, up to `MAX_PRINTED_BYTES`.
    pub debug_prints: Vec<Vec<u8>>,
    /// Bytes printed so far.
    printed: usize,
    /// Whether the call context was answered before this message ran (a
    /// callback after a reply): then it may not reply again.
    pub responded_before: bool,
    /// In a reject callback: the reject's code and message.
    pub reject: Option<(u32, String)>,
    /// Cycles the message carries that it has not accepted.
    pub cycles_available: u128,
    /// Cycles it has accepted.
    pub cycles_accepted: u128,
    /// In a callback: cycles the callee did not accept.
    pub cycles_refunded: u128,
    /// A best-effort call's deadline (0: guaranteed response).
    pub deadline: u64,
    /// Instructions the call context used before this message.
    pub context_instructions: u64,
    /// The call being built (`call_new` .. `call_perform`).
    pub building: Option<OutgoingCall>,
    /// Calls performed, in order.
    pub calls: Vec<OutgoingCall>,
    /// How many calls the message may perform.
    pub call_capacity: usize,
    /// Bytes of the calls performed.
    pub call_bytes: usize,
    /// Cycles attached to calls so far.
    pub cycles_sent: u128,
}

impl MessageState {
    /// A message with nothing produced yet.
    pub fn new(
        context: ApiContext,
        method: &str,
        arg: Vec<u8>,
        caller: Vec<u8>,
        time: u64,
        env: Arc<CanisterEnv>,
    ) -> Self {
        MessageState {
            context,
            method: method.to_string(),
            arg,
            caller,
            time,
            env,
            instruction_limit: 0,
            reply_data: Vec::new(),
            response: Response::None,
            accepted: false,
            certified_data: Vec::new(),
            data_certificate: None,
            global_timer: 0,
            stable: StableMemory::default(),
            debug_prints: Vec::new(),
            printed: 0,
            responded_before: false,
            reject: None,
            cycles_available: 0,
            cycles_accepted: 0,
            cycles_refunded: 0,
            deadline: 0,
            context_instructions: 0,
            building: None,
            calls: Vec::new(),
            call_capacity: DEFAULT_CALL_CAPACITY,
            call_bytes: 0,
            cycles_sent: 0,
        }
    }

    /// Accept up to `max` of the cycles available; returns how many.
    pub fn accept_cycles(&mut self, max: u128) -> u128 {
        let accepted = max.min(self.cycles_available);
        self.cycles_available -= accepted;
        self.cycles_accepted += accepted;
        accepted
    }

    /// Record a `debug_print`, unless the message has printed its fill:
    /// beyond `MAX_PRINTED_BYTES` prints are dropped, so one message cannot
    /// grow the host's memory without bound.
    pub fn print(&mut self, text: Vec<u8>) {
        if self.printed + text.len() <= MAX_PRINTED_BYTES {
            self.printed += text.len();
            self.debug_prints.push(text);
        }
    }

    fn max_reply(&self) -> usize {
        if self.context.is_replicated() { MAX_UPDATE_REPLY } else { MAX_QUERY_REPLY }
    }
}

/// The data of a wasmtime store running a canister.
pub struct HostState {
    /// The message running.
    pub message: MessageState,
    /// The canister's heap, for host functions that access it.
    pub heap: Option<TrackedMemory>,
    /// Heap size limit in bytes: `memory.grow` past it returns -1.
    pub heap_limit: usize,
}

impl wasmtime::ResourceLimiter for HostState {
    fn memory_growing(&mut self, _current: usize, desired: usize, _maximum: Option<usize>) -> wasmtime::Result<bool> {
        Ok(desired <= self.heap_limit)
    }

    fn table_growing(&mut self, _current: usize, desired: usize, _maximum: Option<usize>) -> wasmtime::Result<bool> {
        // The IC's limit on table elements.
        Ok(desired <= 1_000_000)
    }
}
