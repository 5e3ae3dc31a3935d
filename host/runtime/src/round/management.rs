//! The management canister (`aaaaa-aa`) as canisters call it: requests
//! from canisters, answered between the iterations of a round, in the
//! order they were sent. The arguments and results are the Candid types
//! of the IC's management interface (`ic-management-canister-types`).

use std::collections::BTreeSet;
use std::sync::Arc;

use candid::{CandidType, Principal};
use checkpoint::hash::tagged_hasher;
use embedder::{Executor, RejectCode};
use ic_management_canister_types::{
    CanisterIdRecord, CanisterInstallMode, CanisterStatusResult, CanisterStatusType, CreateCanisterArgs,
    CreateCanisterResult, DefiniteCanisterSettings, InstallCodeArgs, LogVisibility, MemoryMetrics,
    ProvisionalCreateCanisterWithCyclesArgs, QueryStats, SnapshotVisibility, StatusVisibility, UpdateSettingsArgs,
    WasmMemoryPersistence as Persistence,
};
use sha2::Digest;

use crate::canister::{CanisterError, CanisterStatus, InstallMode, InterMessage, Payload, WasmMemoryPersistence};
use crate::registry::Registry;

/// The management canister's state within one round: the canisters it
/// created (to remove if the round is not applied) and its randomness.
pub(super) struct Management {
    height: u64,
    random_draws: u64,
    created: Vec<Principal>,
}

/// Why a management call failed: a reject code and a message.
type Rejected = (RejectCode, String);

fn refused(error: CanisterError) -> Rejected {
    (error.code().reject_code(), error.to_string())
}

fn decode<T: CandidType + for<'de> serde::Deserialize<'de>>(method: &str, arg: &[u8]) -> Result<T, Rejected> {
    candid::decode_one(arg).map_err(|e| {
        (RejectCode::CanisterReject, format!("the argument of {method} is not valid Candid for its type: {e}"))
    })
}

fn reply<T: CandidType>(value: &T) -> Result<Vec<u8>, Rejected> {
    Ok(candid::encode_one(value).expect("management results always encode"))
}

impl Management {
    pub(super) fn new(height: u64) -> Management {
        Management { height, random_draws: 0, created: Vec::new() }
    }

    /// Remove what this round's calls created (the round is not applied).
    pub(super) fn undo(self, registry: &mut Registry) {
        for id in self.created {
            registry.take(&id);
        }
    }

    /// Answer a request from canister `from`: the response and whom it is
    /// for. Responses addressed to the management canister are dropped.
    pub(super) fn handle(
        &mut self,
        executor: Option<&Arc<Executor>>,
        registry: &mut Registry,
        from: Principal,
        message: InterMessage,
        time: u64,
        touched: &mut BTreeSet<Principal>,
    ) -> Option<(Principal, InterMessage)> {
        let InterMessage::Request { callback, method, arg, cycles, .. } = message else { return None };
        let payload = match self.call(executor, registry, from, &method, &arg, time, touched) {
            Ok(bytes) => Payload::Reply(bytes),
            Err((code, text)) => Payload::Reject(code as u32, text),
        };
        // This host keeps no cycles: what was attached goes back.
        Some((from, InterMessage::Response { callback, payload, refund: cycles }))
    }

    #[allow(clippy::too_many_arguments)] // one request, and where it runs
    fn call(
        &mut self,
        executor: Option<&Arc<Executor>>,
        registry: &mut Registry,
        caller: Principal,
        method: &str,
        arg: &[u8],
        time: u64,
        touched: &mut BTreeSet<Principal>,
    ) -> Result<Vec<u8>, Rejected> {
        let target = |id: &Principal, touched: &mut BTreeSet<Principal>| {
            touched.insert(*id);
            *id
        };
        match method {
            "raw_rand" => {
                // Deterministic from the round, so replay reproduces it.
                let mut h = tagged_hasher("ch-raw-rand");
                h.update(self.height.to_be_bytes());
                h.update(self.random_draws.to_be_bytes());
                self.random_draws += 1;
                reply(&h.finalize().to_vec())
            }
            "create_canister" | "provisional_create_canister_with_cycles" => {
                let settings = if method == "create_canister" {
                    decode::<CreateCanisterArgs>(method, arg)?.settings
                } else {
                    decode::<ProvisionalCreateCanisterWithCyclesArgs>(method, arg)?.settings
                };
                let controllers = settings.and_then(|s| s.controllers).unwrap_or_else(|| vec![caller]);
                let id = registry.create(controllers, None).map_err(refused)?;
                self.created.push(id);
                touched.insert(id);
                reply(&CreateCanisterResult { canister_id: id })
            }
            "install_code" => {
                let args: InstallCodeArgs = decode(method, arg)?;
                let id = target(&args.canister_id, touched);
                let mode = match args.mode {
                    CanisterInstallMode::Install => InstallMode::Install,
                    CanisterInstallMode::Reinstall => InstallMode::Reinstall,
                    CanisterInstallMode::Upgrade(flags) => InstallMode::Upgrade {
                        wasm_memory_persistence: flags.and_then(|f| f.wasm_memory_persistence).map(|p| match p {
                            Persistence::Keep => WasmMemoryPersistence::Keep,
                            Persistence::Replace => WasmMemoryPersistence::Replace,
                        }),
                        skip_pre_upgrade: flags.and_then(|f| f.skip_pre_upgrade).unwrap_or(false),
                    },
                };
                let Some(executor) = executor else {
                    return Err((RejectCode::SysFatal, "this host cannot install code here".into()));
                };
                let canister = registry.get_mut(&id).map_err(refused)?;
                canister.install_code(executor, &caller, mode, &args.wasm_module, &args.arg, time).map_err(refused)?;
                reply(&())
            }
            "uninstall_code" | "start_canister" | "stop_canister" | "delete_canister" | "canister_status"
            | "deposit_cycles" => {
                let CanisterIdRecord { canister_id } = decode(method, arg)?;
                let id = target(&canister_id, touched);
                self.lifecycle(executor, registry, caller, method, id)
            }
            "update_settings" => {
                let args: UpdateSettingsArgs = decode(method, arg)?;
                let id = target(&args.canister_id, touched);
                if let Some(controllers) = args.settings.controllers {
                    let Some(executor) = executor else {
                        return Err((RejectCode::SysFatal, "this host cannot change settings here".into()));
                    };
                    let canister = registry.get_mut(&id).map_err(refused)?;
                    canister.set_controllers(executor, &caller, controllers).map_err(refused)?;
                }
                reply(&())
            }
            other => Err((
                RejectCode::DestinationInvalid,
                format!("the management canister has no method {other:?} on this host"),
            )),
        }
    }

    fn lifecycle(
        &mut self,
        executor: Option<&Arc<Executor>>,
        registry: &mut Registry,
        caller: Principal,
        method: &str,
        id: Principal,
    ) -> Result<Vec<u8>, Rejected> {
        let Some(executor) = executor else {
            return Err((RejectCode::SysFatal, "this host cannot manage canisters here".into()));
        };
        if method == "delete_canister" {
            registry.delete(&caller, &id).map_err(refused)?;
            return reply(&());
        }
        let canister = registry.get_mut(&id).map_err(refused)?;
        match method {
            "uninstall_code" => canister.uninstall(executor, &caller).map_err(refused)?,
            "start_canister" => drop(canister.start(executor, &caller).map_err(refused)?),
            // A canister with open calls is left stopping; it stops once
            // they close (this host answers the stop at once).
            "stop_canister" => drop(canister.stop(executor, &caller).map_err(refused)?),
            "deposit_cycles" => {}
            _ => {
                if !canister.controllers().contains(&caller) {
                    let error = CanisterError::NotController {
                        caller,
                        canister: id,
                        controllers: canister.controllers().to_vec(),
                    };
                    return Err(refused(error));
                }
                return reply(&status(canister, executor));
            }
        }
        reply(&())
    }
}

/// `canister_status`'s answer for `canister`.
fn status(canister: &crate::canister::Canister, executor: &Executor) -> CanisterStatusResult {
    let state = canister.state();
    let nat = |n: u64| candid::Nat::from(n);
    CanisterStatusResult {
        status: match canister.status() {
            CanisterStatus::Running => CanisterStatusType::Running,
            CanisterStatus::Stopping => CanisterStatusType::Stopping,
            CanisterStatus::Stopped => CanisterStatusType::Stopped,
        },
        ready_for_migration: false,
        version: canister.version(),
        settings: DefiniteCanisterSettings {
            controllers: canister.controllers().to_vec(),
            compute_allocation: nat(0),
            memory_allocation: nat(0),
            freezing_threshold: nat(0),
            reserved_cycles_limit: nat(0),
            minimum_incoming_canister_call_cycles: nat(0),
            log_visibility: LogVisibility::Controllers,
            log_memory_limit: nat(crate::canister::MAX_CANISTER_LOG_BYTES as u64),
            snapshot_visibility: SnapshotVisibility::Controllers,
            status_visibility: StatusVisibility::Controllers,
            wasm_memory_limit: nat(0),
            wasm_memory_threshold: nat(0),
            environment_variables: Vec::new(),
        },
        module_hash: state.module.as_ref().map(|m| m.hash.to_vec()),
        memory_size: nat(state.size_bytes()),
        memory_metrics: MemoryMetrics {
            wasm_memory_size: nat(state.heap_pages.bytes()),
            stable_memory_size: nat(state.stable_pages.bytes()),
            global_memory_size: nat(0),
            wasm_binary_size: nat(state.module.as_ref().map_or(0, |m| m.wasm.len() as u64)),
            custom_sections_size: nat(0),
            canister_history_size: nat(0),
            wasm_chunk_store_size: nat(0),
            snapshots_size: nat(0),
            log_memory_store_size: nat(0),
        },
        cycles: candid::Nat::from(executor.config().cycle_balance),
        reserved_cycles: nat(0),
        idle_cycles_burned_per_day: nat(0),
        query_stats: QueryStats {
            num_calls_total: nat(0),
            num_instructions_total: nat(0),
            request_payload_bytes_total: nat(0),
            response_payload_bytes_total: nat(0),
        },
    }
}
