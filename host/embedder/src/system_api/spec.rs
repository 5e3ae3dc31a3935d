//! The ic0 imports of the IC interface specification: signatures (for a
//! 32-bit and a 64-bit memory) and the contexts each may be called from.

use wasmparser::ValType;

/// The kind of execution a message runs in, as the spec's availability
/// table names them.
#[derive(Copy, Clone, Debug, PartialEq, Eq, Hash)]
pub enum ApiContext {
    /// The module's `(start)` function (spec: s).
    Start,
    /// `canister_init` and `canister_post_upgrade` (spec: I).
    Init,
    /// `canister_pre_upgrade` (spec: G).
    PreUpgrade,
    /// An update method (spec: U).
    Update,
    /// A query method, not replicated (spec: NRQ).
    Query,
    /// A query method called as an update, by a user or another canister
    /// (spec: RQ): replicated, but its changes are discarded.
    ReplicatedQuery,
    /// A composite query method (spec: CQ).
    CompositeQuery,
    /// `canister_inspect_message` (spec: F).
    InspectMessage,
    /// Heartbeat and global timer (spec: T).
    SystemTask,
    /// A reply callback (spec: Ry).
    ReplyCallback,
    /// A reject callback (spec: Rt).
    RejectCallback,
    /// A cleanup callback (spec: C).
    Cleanup,
    /// A composite query's reply callback (spec: CRy).
    CompositeReplyCallback,
    /// A composite query's reject callback (spec: CRt).
    CompositeRejectCallback,
    /// A composite query's cleanup callback (spec: CC).
    CompositeCleanup,
}

impl ApiContext {
    fn bit(self) -> u16 {
        match self {
            ApiContext::Init => I,
            ApiContext::PreUpgrade => G,
            ApiContext::Update => U,
            ApiContext::Query | ApiContext::ReplicatedQuery => Q,
            ApiContext::InspectMessage => F,
            ApiContext::SystemTask => T,
            ApiContext::Start => S,
            ApiContext::CompositeQuery => CQ,
            ApiContext::ReplyCallback => RY,
            ApiContext::RejectCallback => RT,
            ApiContext::Cleanup => C,
            ApiContext::CompositeReplyCallback => CRY,
            ApiContext::CompositeRejectCallback => CRT,
            ApiContext::CompositeCleanup => CC,
        }
    }

    /// How messages name this context.
    pub fn describe(self) -> &'static str {
        match self {
            ApiContext::Start => "the module's start function",
            ApiContext::Init => "canister_init or canister_post_upgrade",
            ApiContext::PreUpgrade => "canister_pre_upgrade",
            ApiContext::Update => "an update method",
            ApiContext::Query => "a query method",
            ApiContext::ReplicatedQuery => "a query method called as an update",
            ApiContext::CompositeQuery => "a composite query method",
            ApiContext::InspectMessage => "canister_inspect_message",
            ApiContext::SystemTask => "a heartbeat or global timer",
            ApiContext::ReplyCallback => "a reply callback",
            ApiContext::RejectCallback => "a reject callback",
            ApiContext::Cleanup => "a cleanup callback",
            ApiContext::CompositeReplyCallback => "a composite query's reply callback",
            ApiContext::CompositeRejectCallback => "a composite query's reject callback",
            ApiContext::CompositeCleanup => "a composite query's cleanup callback",
        }
    }

    /// Whether this execution's changes can persist.
    pub fn is_replicated(self) -> bool {
        !matches!(
            self,
            ApiContext::Query
                | ApiContext::InspectMessage
                | ApiContext::CompositeQuery
                | ApiContext::CompositeReplyCallback
                | ApiContext::CompositeRejectCallback
                | ApiContext::CompositeCleanup
        )
    }

    /// Whether this is a callback (or cleanup) of a call the canister made.
    pub fn is_callback(self) -> bool {
        self.bit() & (RY | RT | C | CRY | CRT | CC) != 0
    }
}

const I: u16 = 1;
const G: u16 = 1 << 1;
const U: u16 = 1 << 2;
const Q: u16 = 1 << 3;
const F: u16 = 1 << 4;
const T: u16 = 1 << 5;
const S: u16 = 1 << 6;
const CQ: u16 = 1 << 7;
const RY: u16 = 1 << 8;
const RT: u16 = 1 << 9;
const C: u16 = 1 << 10;
const CRY: u16 = 1 << 11;
const CRT: u16 = 1 << 12;
const CC: u16 = 1 << 13;
/// "*" in the spec: every context but the start function.
const ANY: u16 = I | G | U | Q | F | T | CQ | RY | RT | C | CRY | CRT | CC;

/// One System API import.
pub struct Import {
    /// Its name in `ic0`.
    pub name: &'static str,
    /// Its parameter types for a module with a 32-bit memory.
    pub params: &'static [ValType],
    /// Its result types for a module with a 32-bit memory.
    pub results: &'static [ValType],
    /// Its parameter types for a module with a 64-bit memory (the spec's
    /// `I` is `i64` there).
    pub params64: &'static [ValType],
    /// Its result types for a module with a 64-bit memory.
    pub results64: &'static [ValType],
    allowed: u16,
    /// Whether this host implements it; the rest trap as unsupported.
    pub implemented: bool,
}

impl Import {
    /// Whether the spec allows calling it in `context`.
    pub fn allowed_in(&self, context: ApiContext) -> bool {
        self.allowed & context.bit() != 0
    }

    /// Its signature for a module whose memory is 64-bit if `wide`.
    pub fn signature(&self, wide: bool) -> (&'static [ValType], &'static [ValType]) {
        if wide { (self.params64, self.results64) } else { (self.params, self.results) }
    }
}

use ValType::{I32 as i32, I64 as i64};

/// The spec's `I`: `i32` or `i64`, with the memory's address width.
macro_rules! narrow {
    (I) => {
        i32
    };
    ($t:ident) => {
        $t
    };
}
macro_rules! wide {
    (I) => {
        i64
    };
    ($t:ident) => {
        $t
    };
}

macro_rules! imports {
    ($( $name:ident : ( $($p:ident),* ) -> ( $($r:ident),* ) in $allowed:expr, $implemented:literal; )*) => {
        /// Every import of the spec, including deprecated ones that
        /// canisters built by older toolchains still use.
        pub static IMPORTS: &[Import] = &[
            $( Import {
                name: stringify!($name),
                params: &[$(narrow!($p)),*],
                results: &[$(narrow!($r)),*],
                params64: &[$(wide!($p)),*],
                results64: &[$(wide!($r)),*],
                allowed: $allowed,
                implemented: $implemented,
            }, )*
        ];
    };
}

imports! {
    msg_arg_data_size: () -> (I) in I | U | Q | CQ | RY | CRY | F, true;
    msg_arg_data_copy: (I, I, I) -> () in I | U | Q | CQ | RY | CRY | F, true;
    msg_caller_size: () -> (I) in ANY, true;
    msg_caller_copy: (I, I, I) -> () in ANY, true;
    msg_caller_info_data_size: () -> (I) in U | Q | CQ | F, false;
    msg_caller_info_data_copy: (I, I, I) -> () in U | Q | CQ | F, false;
    msg_caller_info_signer_size: () -> (I) in U | Q | CQ | F, false;
    msg_caller_info_signer_copy: (I, I, I) -> () in U | Q | CQ | F, false;
    msg_reject_code: () -> (i32) in RY | RT | CRY | CRT, true;
    msg_reject_msg_size: () -> (I) in RT | CRT, true;
    msg_reject_msg_copy: (I, I, I) -> () in RT | CRT, true;
    msg_deadline: () -> (i64) in U | Q | CQ | RY | RT | CRY | CRT, true;
    msg_reply_data_append: (I, I) -> () in U | Q | CQ | RY | RT | CRY | CRT, true;
    msg_reply: () -> () in U | Q | CQ | RY | RT | CRY | CRT, true;
    msg_reject: (I, I) -> () in U | Q | CQ | RY | RT | CRY | CRT, true;
    msg_cycles_available: () -> (i64) in U | RY | RT, true;
    msg_cycles_available128: (I) -> () in U | RY | RT, true;
    msg_cycles_refunded: () -> (i64) in RY | RT, true;
    msg_cycles_refunded128: (I) -> () in RY | RT, true;
    msg_cycles_accept: (i64) -> (i64) in U | RY | RT, true;
    msg_cycles_accept128: (i64, i64, I) -> () in U | RY | RT, true;
    cycles_burn128: (i64, i64, I) -> () in I | G | U | RY | RT | C | T, false;
    canister_self_size: () -> (I) in ANY, true;
    canister_self_copy: (I, I, I) -> () in ANY, true;
    canister_cycle_balance: () -> (i64) in ANY, true;
    canister_cycle_balance128: (I) -> () in ANY, true;
    canister_liquid_cycle_balance128: (I) -> () in ANY, false;
    canister_status: () -> (i32) in ANY, true;
    canister_version: () -> (i64) in ANY, true;
    subnet_self_size: () -> (I) in ANY, false;
    subnet_self_copy: (I, I, I) -> () in ANY, false;
    subnet_self_node_count: () -> (i32) in ANY, false;
    msg_method_name_size: () -> (I) in F, true;
    msg_method_name_copy: (I, I, I) -> () in F, true;
    accept_message: () -> () in F, true;
    call_new: (I, I, I, I, I, I, I, I) -> () in U | CQ | RY | RT | CRY | CRT | T, true;
    call_on_cleanup: (I, I) -> () in U | CQ | RY | RT | CRY | CRT | T, true;
    call_data_append: (I, I) -> () in U | CQ | RY | RT | CRY | CRT | T, true;
    call_with_best_effort_response: (i32) -> () in U | CQ | RY | RT | CRY | CRT | T, true;
    call_cycles_add: (i64) -> () in U | RY | RT | T, true;
    call_cycles_add128: (i64, i64) -> () in U | RY | RT | T, true;
    call_perform: () -> (i32) in U | CQ | RY | RT | CRY | CRT | T, true;
    call_simple: (i32, i32, i32, i32, i32, i32, i32, i32, i32, i32) -> (i32) in U | RY | RT | T, true;
    stable_size: () -> (i32) in ANY | S, true;
    stable_grow: (i32) -> (i32) in ANY | S, true;
    stable_write: (i32, i32, i32) -> () in ANY | S, true;
    stable_read: (i32, i32, i32) -> () in ANY | S, true;
    stable64_size: () -> (i64) in ANY | S, true;
    stable64_grow: (i64) -> (i64) in ANY | S, true;
    stable64_write: (i64, i64, i64) -> () in ANY | S, true;
    stable64_read: (i64, i64, i64) -> () in ANY | S, true;
    root_key_size: () -> (I) in I | G | U | RY | RT | C | T, false;
    root_key_copy: (I, I, I) -> () in I | G | U | RY | RT | C | T, false;
    certified_data_set: (I, I) -> () in I | G | U | RY | RT | T, true;
    data_certificate_present: () -> (i32) in ANY, true;
    data_certificate_size: () -> (I) in Q | CQ, true;
    data_certificate_copy: (I, I, I) -> () in Q | CQ, true;
    time: () -> (i64) in ANY, true;
    global_timer_set: (i64) -> (i64) in I | G | U | RY | RT | C | T, true;
    performance_counter: (i32) -> (i64) in ANY | S, true;
    instruction_counter: () -> (i64) in ANY | S, true;
    is_controller: (I, I) -> (i32) in ANY | S, true;
    in_replicated_execution: () -> (i32) in ANY | S, true;
    cost_call: (i64, i64, I) -> () in ANY, false;
    cost_create_canister: (I) -> () in ANY, false;
    cost_http_request: (i64, i64, I) -> () in ANY, false;
    cost_http_request_v2: (I, I, I) -> () in ANY, false;
    cost_sign_with_ecdsa: (I, I, i32, I) -> (i32) in ANY, false;
    cost_sign_with_schnorr: (I, I, i32, I) -> (i32) in ANY, false;
    cost_vetkd_derive_key: (I, I, i32, I) -> (i32) in ANY, false;
    env_var_count: () -> (I) in ANY, false;
    env_var_name_size: (I) -> (I) in ANY, false;
    env_var_name_copy: (I, I, I, I) -> () in ANY, false;
    env_var_name_exists: (I, I) -> (i32) in ANY, false;
    env_var_value_size: (I, I) -> (I) in ANY, false;
    env_var_value_copy: (I, I, I, I, I) -> () in ANY, false;
    mint_cycles: (i64) -> (i64) in U, false;
    mint_cycles128: (i64, i64, I) -> () in U, false;
    debug_print: (I, I) -> () in ANY | S, true;
    trap: (I, I) -> () in ANY | S, true;
}

/// The spec's entry for `name`, if there is one.
pub fn lookup(name: &str) -> Option<&'static Import> {
    IMPORTS.iter().find(|i| i.name == name)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names_are_unique_and_signatures_use_wasm32_types() {
        let mut names: Vec<&str> = IMPORTS.iter().map(|i| i.name).collect();
        names.sort_unstable();
        names.dedup();
        assert_eq!(names.len(), IMPORTS.len());
        let reply = lookup("msg_reply").unwrap();
        assert!(reply.params.is_empty() && reply.results.is_empty());
        assert_eq!(lookup("stable64_read").unwrap().params, &[ValType::I64; 3]);
        assert!(lookup("msg_arg_data_copy").unwrap().allowed_in(ApiContext::Update));
        assert!(!lookup("msg_arg_data_copy").unwrap().allowed_in(ApiContext::PreUpgrade));
        assert!(!lookup("msg_reply").unwrap().allowed_in(ApiContext::Init));
        assert!(!lookup("msg_reject_code").unwrap().allowed_in(ApiContext::Update));
        assert!(lookup("msg_reject_code").unwrap().allowed_in(ApiContext::RejectCallback));
        let start_only = IMPORTS.iter().filter(|i| i.allowed_in(ApiContext::Start)).map(|i| i.name);
        let mut start_only: Vec<&str> = start_only.collect();
        start_only.sort_unstable();
        assert_eq!(
            start_only,
            [
                "debug_print",
                "in_replicated_execution",
                "instruction_counter",
                "is_controller",
                "performance_counter",
                "stable64_grow",
                "stable64_read",
                "stable64_size",
                "stable64_write",
                "stable_grow",
                "stable_read",
                "stable_size",
                "stable_write",
                "trap"
            ]
        );
        assert_eq!(lookup("call_new").unwrap().signature(true).0, &[ValType::I64; 8]);
        assert_eq!(lookup("call_with_best_effort_response").unwrap().signature(true).0, &[ValType::I32]);
    }
}
