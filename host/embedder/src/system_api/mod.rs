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
    /// The global timer, as the message leaves it.
    pub global_timer: u64,
    /// Stable memory, as the message leaves it.
    pub stable: StableMemory,
    /// `debug_print` output, in order, up to `MAX_PRINTED_BYTES`.
    pub debug_prints: Vec<Vec<u8>>,
    /// Bytes printed so far.
    printed: usize,
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
            global_timer: 0,
            stable: StableMemory::default(),
            debug_prints: Vec::new(),
            printed: 0,
        }
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
