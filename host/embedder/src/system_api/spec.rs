//! The ic0 imports of the IC interface specification: signatures (for a
//! 32-bit memory) and the contexts each may be called from.

use wasmparser::ValType;

/// The kind of execution a message runs in, as the spec's availability
/// table names them.
#[derive(Copy, Clone, Debug, PartialEq, Eq, Hash)]
pub enum ApiContext {
    /// `canister_init` and `canister_post_upgrade` (spec: I).
    Init,
    /// `canister_pre_upgrade` (spec: G).
    PreUpgrade,
    /// An update method (spec: U).
    Update,
    /// A query method, not replicated (spec: NRQ).
    Query,
    /// `canister_inspect_message` (spec: F).
    InspectMessage,
    /// Heartbeat and global timer (spec: T).
    SystemTask,
}

impl ApiContext {
    fn bit(self) -> u8 {
        match self {
            ApiContext::Init => 1,
            ApiContext::PreUpgrade => 2,
            ApiContext::Update => 4,
            ApiContext::Query => 8,
            ApiContext::InspectMessage => 16,
            ApiContext::SystemTask => 32,
        }
    }

    /// How messages name this context.
    pub fn describe(self) -> &'static str {
        match self {
            ApiContext::Init => "canister_init or canister_post_upgrade",
            ApiContext::PreUpgrade => "canister_pre_upgrade",
            ApiContext::Update => "an update method",
            ApiContext::Query => "a query method",
            ApiContext::InspectMessage => "canister_inspect_message",
            ApiContext::SystemTask => "a heartbeat or global timer",
        }
    }

    /// Whether this execution's changes can persist.
    pub fn is_replicated(self) -> bool {
        !matches!(self, ApiContext::Query | ApiContext::InspectMessage)
    }
}

const I: u8 = 1;
const G: u8 = 2;
const U: u8 = 4;
const Q: u8 = 8;
const F: u8 = 16;
const T: u8 = 32;
/// "*" in the spec.
const ANY: u8 = I | G | U | Q | F | T;
/// Contexts that exist only with inter-canister calls (reply and reject
/// callbacks, cleanup), which this host does not make.
const CALLBACKS_ONLY: u8 = 0;

/// One System API import.
pub struct Import {
    /// Its name in `ic0`.
    pub name: &'static str,
    /// Its parameter types (for a 32-bit memory).
    pub params: &'static [ValType],
    /// Its result types.
    pub results: &'static [ValType],
    allowed: u8,
    /// Whether this host implements it; the rest trap as unsupported.
    pub implemented: bool,
}

impl Import {
    /// Whether the spec allows calling it in `context`.
    pub fn allowed_in(&self, context: ApiContext) -> bool {
        self.allowed & context.bit() != 0
    }

    /// Whether the spec allows it in some context this host has.
    pub fn ever_allowed(&self) -> bool {
        self.allowed != CALLBACKS_ONLY
    }
}

use ValType::{I32 as i32, I64 as i64};

macro_rules! imports {
    ($( $name:ident : ( $($p:ident),* ) -> ( $($r:ident),* ) in $allowed:expr, $implemented:literal; )*) => {
        /// Every import of the spec, including deprecated ones that
        /// canisters built by older toolchains still use.
        pub static IMPORTS: &[Import] = &[
            $( Import {
                name: stringify!($name),
                params: &[$($p),*],
                results: &[$($r),*],
                allowed: $allowed,
                implemented: $implemented,
            }, )*
        ];
    };
}

imports! {
    msg_arg_data_size: () -> (i32) in I | U | Q | F, true;
    msg_arg_data_copy: (i32, i32, i32) -> () in I | U | Q | F, true;
    msg_caller_size: () -> (i32) in ANY, true;
    msg_caller_copy: (i32, i32, i32) -> () in ANY, true;
    msg_caller_info_data_size: () -> (i32) in U | Q | F, false;
    msg_caller_info_data_copy: (i32, i32, i32) -> () in U | Q | F, false;
    msg_caller_info_signer_size: () -> (i32) in U | Q | F, false;
    msg_caller_info_signer_copy: (i32, i32, i32) -> () in U | Q | F, false;
    msg_reject_code: () -> (i32) in CALLBACKS_ONLY, true;
    msg_reject_msg_size: () -> (i32) in CALLBACKS_ONLY, true;
    msg_reject_msg_copy: (i32, i32, i32) -> () in CALLBACKS_ONLY, true;
    msg_deadline: () -> (i64) in U | Q, true;
    msg_reply_data_append: (i32, i32) -> () in U | Q, true;
    msg_reply: () -> () in U | Q, true;
    msg_reject: (i32, i32) -> () in U | Q, true;
    msg_cycles_available: () -> (i64) in U, true;
    msg_cycles_available128: (i32) -> () in U, true;
    msg_cycles_refunded: () -> (i64) in CALLBACKS_ONLY, true;
    msg_cycles_refunded128: (i32) -> () in CALLBACKS_ONLY, true;
    msg_cycles_accept: (i64) -> (i64) in U, true;
    msg_cycles_accept128: (i64, i64, i32) -> () in U, true;
    cycles_burn128: (i64, i64, i32) -> () in I | G | U | T, false;
    canister_self_size: () -> (i32) in ANY, true;
    canister_self_copy: (i32, i32, i32) -> () in ANY, true;
    canister_cycle_balance: () -> (i64) in ANY, true;
    canister_cycle_balance128: (i32) -> () in ANY, true;
    canister_liquid_cycle_balance128: (i32) -> () in ANY, false;
    canister_status: () -> (i32) in ANY, true;
    canister_version: () -> (i64) in ANY, true;
    subnet_self_size: () -> (i32) in ANY, false;
    subnet_self_copy: (i32, i32, i32) -> () in ANY, false;
    subnet_self_node_count: () -> (i32) in ANY, false;
    msg_method_name_size: () -> (i32) in F, true;
    msg_method_name_copy: (i32, i32, i32) -> () in F, true;
    accept_message: () -> () in F, true;
    call_new: (i32, i32, i32, i32, i32, i32, i32, i32) -> () in U | T, false;
    call_on_cleanup: (i32, i32) -> () in U | T, false;
    call_data_append: (i32, i32) -> () in U | T, false;
    call_with_best_effort_response: (i32) -> () in U | T, false;
    call_cycles_add: (i64) -> () in U | T, false;
    call_cycles_add128: (i64, i64) -> () in U | T, false;
    call_perform: () -> (i32) in U | T, false;
    call_simple: (i32, i32, i32, i32, i32, i32, i32, i32, i32, i32) -> (i32) in U | T, false;
    stable_size: () -> (i32) in ANY, true;
    stable_grow: (i32) -> (i32) in ANY, true;
    stable_write: (i32, i32, i32) -> () in ANY, true;
    stable_read: (i32, i32, i32) -> () in ANY, true;
    stable64_size: () -> (i64) in ANY, true;
    stable64_grow: (i64) -> (i64) in ANY, true;
    stable64_write: (i64, i64, i64) -> () in ANY, true;
    stable64_read: (i64, i64, i64) -> () in ANY, true;
    root_key_size: () -> (i32) in I | G | U | T, false;
    root_key_copy: (i32, i32, i32) -> () in I | G | U | T, false;
    certified_data_set: (i32, i32) -> () in I | G | U | T, true;
    data_certificate_present: () -> (i32) in ANY, true;
    data_certificate_size: () -> (i32) in Q, true;
    data_certificate_copy: (i32, i32, i32) -> () in Q, true;
    time: () -> (i64) in ANY, true;
    global_timer_set: (i64) -> (i64) in I | G | U | T, true;
    performance_counter: (i32) -> (i64) in ANY, true;
    instruction_counter: () -> (i64) in ANY, true;
    is_controller: (i32, i32) -> (i32) in ANY, true;
    in_replicated_execution: () -> (i32) in ANY, true;
    cost_call: (i64, i64, i32) -> () in ANY, false;
    cost_create_canister: (i32) -> () in ANY, false;
    cost_http_request: (i64, i64, i32) -> () in ANY, false;
    cost_http_request_v2: (i32, i32, i32) -> () in ANY, false;
    cost_sign_with_ecdsa: (i32, i32, i32, i32) -> (i32) in ANY, false;
    cost_sign_with_schnorr: (i32, i32, i32, i32) -> (i32) in ANY, false;
    cost_vetkd_derive_key: (i32, i32, i32, i32) -> (i32) in ANY, false;
    env_var_count: () -> (i32) in ANY, false;
    env_var_name_size: (i32) -> (i32) in ANY, false;
    env_var_name_copy: (i32, i32, i32, i32) -> () in ANY, false;
    env_var_name_exists: (i32, i32) -> (i32) in ANY, false;
    env_var_value_size: (i32, i32) -> (i32) in ANY, false;
    env_var_value_copy: (i32, i32, i32, i32, i32) -> () in ANY, false;
    mint_cycles: (i64) -> (i64) in U, false;
    mint_cycles128: (i64, i64, i32) -> () in U, false;
    debug_print: (i32, i32) -> () in ANY, true;
    trap: (i32, i32) -> () in ANY, true;
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
        assert!(!lookup("msg_reject_code").unwrap().ever_allowed());
    }
}
