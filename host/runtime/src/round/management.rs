//! The management canister (`aaaaa-aa`): requests from canisters, answered
//! between the iterations of a round in the order they were sent, and from
//! users through the library ([`crate::Host::management_call`]), in the
//! round's first phase. Arguments and results are the Candid types of the
//! IC's management interface (`ic-management-canister-types`); limits and
//! error texts follow the IC.

use std::collections::BTreeSet;
use std::sync::Arc;

use candid::{CandidType, Principal};
use checkpoint::hash::tagged_hasher;
use embedder::{ErrorCode, Executor};
use ic_management_canister_types::{
    CanisterIdRecord, CanisterInfoArgs, CanisterInfoResult, CanisterInstallMode, CanisterStatusResult,
    CanisterStatusType, ChangeDetails, ChunkHash, CodeDeploymentMode, CodeDeploymentRecord, ControllersChangeRecord,
    CreateCanisterArgs, CreateCanisterResult, CreationRecord, DefiniteCanisterSettings, DeleteCanisterSnapshotArgs,
    InstallChunkedCodeArgs, InstallCodeArgs, LoadCanisterSnapshotArgs, LoadSnapshotRecord, LogVisibility,
    MemoryMetrics, ProvisionalCreateCanisterWithCyclesArgs, QueryStats, ReadCanisterSnapshotDataArgs,
    ReadCanisterSnapshotMetadataArgs, Snapshot, SnapshotSource, SnapshotVisibility, StatusVisibility,
    TakeCanisterSnapshotArgs, UpdateSettingsArgs, UploadCanisterSnapshotDataArgs, UploadCanisterSnapshotMetadataArgs,
    UploadCanisterSnapshotMetadataResult, UploadChunkArgs, WasmMemoryPersistence as Persistence,
};
use sha2::Digest;

use crate::canister::{
    Canister, CanisterError, CanisterStatus, ContextOrigin, InstallMode, MAX_HISTORY_CHANGES, Output,
    WasmMemoryPersistence,
};
use crate::registry::Registry;

use super::snapshot_data;

/// Who calls the management canister, and where the answer goes.
#[derive(Copy, Clone, Debug, PartialEq, Eq)]
pub(super) enum Caller {
    /// A user, through the library (an ingress message of this round).
    User { sender: Principal, origin: crate::canister::Origin },
    /// A canister, answered by a response to its callback.
    Canister { id: Principal, callback: u64 },
}

impl Caller {
    fn principal(self) -> Principal {
        match self {
            Caller::User { sender, .. } => sender,
            Caller::Canister { id, .. } => id,
        }
    }

    /// Where a deferred answer (a stop) goes.
    fn waiter(self) -> ContextOrigin {
        match self {
            Caller::User { origin, .. } => ContextOrigin::Ingress(origin),
            Caller::Canister { id, callback } => ContextOrigin::Canister { caller: id, callback },
        }
    }
}

/// A management call's answer: now, or once the target stops.
pub(super) enum Answer {
    Now(Vec<u8>),
    Later,
}

/// Why a management call failed: the IC's error code and a message.
pub(super) type Rejected = (ErrorCode, String);

fn refused(error: CanisterError) -> Rejected {
    (error.code(), error.to_string())
}

fn decode<T: CandidType + for<'de> serde::Deserialize<'de>>(method: &str, arg: &[u8]) -> Result<T, Rejected> {
    candid::decode_one(arg).map_err(|e| {
        (ErrorCode::InvalidManagementPayload, format!("the argument of {method} is not valid Candid for its type: {e}"))
    })
}

fn reply<T: CandidType>(value: &T) -> Result<Answer, Rejected> {
    Ok(Answer::Now(candid::encode_one(value).expect("management results always encode")))
}

fn chunk_error(message: String) -> Rejected {
    (
        ErrorCode::CanisterContractViolation,
        format!(
            "Error from Wasm chunk store: {message}.\nUse the `stored_chunks` API to check which hashes are present."
        ),
    )
}

/// A snapshot's id as the IC writes it: the canister-local number (8 bytes,
/// big endian), then the canister's id.
pub fn snapshot_id(canister: Principal, local: u64) -> Vec<u8> {
    [&local.to_be_bytes()[..], canister.as_slice()].concat()
}

/// The canister-local number of `id`, if it is a snapshot id of `canister`
/// (the inverse of [`snapshot_id`]).
pub fn local_snapshot_id(canister: Principal, id: &[u8]) -> Option<u64> {
    let (local, owner) = id.split_at_checked(8)?;
    if owner != canister.as_slice() {
        return None;
    }
    local.try_into().ok().map(u64::from_be_bytes)
}

/// The canister-local number of a snapshot id of `canister`.
fn local_snapshot(canister: Principal, id: &[u8]) -> Result<u64, Rejected> {
    local_snapshot_id(canister, id).ok_or_else(|| {
        (
            ErrorCode::CanisterSnapshotNotFound,
            format!("Could not find the snapshot ID {} for canister {canister}.", hex::encode(id)),
        )
    })
}

fn install_mode(mode: CanisterInstallMode) -> (InstallMode, CodeDeploymentMode) {
    match mode {
        CanisterInstallMode::Install => (InstallMode::Install, CodeDeploymentMode::Install),
        CanisterInstallMode::Reinstall => (InstallMode::Reinstall, CodeDeploymentMode::Reinstall),
        CanisterInstallMode::Upgrade(flags) => (
            InstallMode::Upgrade {
                wasm_memory_persistence: flags.and_then(|f| f.wasm_memory_persistence).map(|p| match p {
                    Persistence::Keep => WasmMemoryPersistence::Keep,
                    Persistence::Replace => WasmMemoryPersistence::Replace,
                }),
                skip_pre_upgrade: flags.and_then(|f| f.skip_pre_upgrade).unwrap_or(false),
            },
            CodeDeploymentMode::Upgrade,
        ),
    }
}

/// The management canister's state within one round: the canisters it
/// created (to remove if the round is not applied) and its randomness.
pub(super) struct Management {
    height: u64,
    random_draws: u64,
    created: Vec<Principal>,
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

    /// Answer `method(arg)` for `caller`, adding the canisters it changed
    /// to `touched`. Also returns what else it produced for others (stops a
    /// start cancelled, calls an uninstall rejected), to deliver.
    #[allow(clippy::too_many_arguments)] // one request, and where it runs
    pub(super) fn call(
        &mut self,
        executor: Option<&Arc<Executor>>,
        registry: &mut Registry,
        caller: Caller,
        method: &str,
        arg: &[u8],
        time: u64,
        touched: &mut BTreeSet<Principal>,
    ) -> (Result<Answer, Rejected>, Vec<Output>) {
        let mut changed = BTreeSet::new();
        let answer = self.answer(executor, registry, caller, method, arg, time, &mut changed);
        let mut outputs = Vec::new();
        for id in &changed {
            if let Ok(canister) = registry.get_mut(id) {
                outputs.extend(canister.take_outbox());
            }
        }
        touched.extend(changed);
        (answer, outputs)
    }

    #[allow(clippy::too_many_arguments)] // one request, and where it runs
    fn answer(
        &mut self,
        executor: Option<&Arc<Executor>>,
        registry: &mut Registry,
        caller: Caller,
        method: &str,
        arg: &[u8],
        time: u64,
        touched: &mut BTreeSet<Principal>,
    ) -> Result<Answer, Rejected> {
        let from = caller.principal();
        let executor = || executor.ok_or((ErrorCode::CanisterWasmEngineError, "no executor here (a bug)".into()));
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
                let controllers = settings.and_then(|s| s.controllers).unwrap_or_else(|| vec![from]);
                check_controllers(&controllers)?;
                let id = registry.create(controllers.clone(), None).map_err(refused)?;
                self.created.push(id);
                touched.insert(id);
                let details = ChangeDetails::Creation(CreationRecord { controllers, environment_variables_hash: None });
                registry.get_mut(&id).map_err(refused)?.record_change(time, from, details);
                reply(&CreateCanisterResult { canister_id: id })
            }
            "install_code" => {
                let args: InstallCodeArgs = decode(method, arg)?;
                self.install(executor()?, registry, from, args.canister_id, args.mode, &args.wasm_module, &args.arg, time, touched)
            }
            "install_chunked_code" => {
                let args: InstallChunkedCodeArgs = decode(method, arg)?;
                let store_id = args.store_canister.unwrap_or(args.target_canister);
                let store = registry.get(&store_id).map_err(refused)?;
                if store_id != from && !store.controllers().contains(&from) {
                    return Err(refused(not_controller(store, from)));
                }
                let hashes: Vec<Vec<u8>> = args.chunk_hashes_list.into_iter().map(|c| c.hash).collect();
                let wasm = store.chunk_store().assemble(&hashes, &args.wasm_module_hash).map_err(chunk_error)?;
                self.install(executor()?, registry, from, args.target_canister, args.mode, &wasm, &args.arg, time, touched)
            }
            "upload_chunk" => {
                let args: UploadChunkArgs = decode(method, arg)?;
                let canister = self.own_or_controlled(registry, from, args.canister_id, touched)?;
                let hash = canister.chunk_store_mut().upload(args.chunk).map_err(chunk_error)?;
                reply(&ChunkHash { hash: hash.to_vec() })
            }
            "clear_chunk_store" | "stored_chunks" => {
                let CanisterIdRecord { canister_id } = decode(method, arg)?;
                let canister = self.own_or_controlled(registry, from, canister_id, touched)?;
                if method == "clear_chunk_store" {
                    canister.chunk_store_mut().clear();
                    return reply(&());
                }
                let hashes: Vec<ChunkHash> =
                    canister.chunk_store().hashes().map(|h| ChunkHash { hash: h.to_vec() }).collect();
                reply(&hashes)
            }
            "uninstall_code" | "start_canister" | "stop_canister" | "delete_canister" | "canister_status"
            | "deposit_cycles" | "list_canister_snapshots" => {
                let CanisterIdRecord { canister_id } = decode(method, arg)?;
                touched.insert(canister_id);
                self.lifecycle(executor()?, registry, caller, method, canister_id, time)
            }
            "update_settings" => {
                let args: UpdateSettingsArgs = decode(method, arg)?;
                touched.insert(args.canister_id);
                let canister = registry.get_mut(&args.canister_id).map_err(refused)?;
                if let Some(controllers) = args.settings.controllers {
                    check_controllers(&controllers)?;
                    canister.set_controllers(executor()?, &from, controllers.clone()).map_err(refused)?;
                    let details = ChangeDetails::ControllersChange(ControllersChangeRecord { controllers });
                    canister.record_change(time, from, details);
                } else if !canister.controllers().contains(&from) {
                    return Err(refused(not_controller(canister, from)));
                }
                reply(&())
            }
            "canister_info" => {
                if let Caller::User { .. } = caller {
                    return Err((ErrorCode::CanisterContractViolation, "canister_info cannot be called by a user.".into()));
                }
                let args: CanisterInfoArgs = decode(method, arg)?;
                let canister = registry.get(&args.canister_id).map_err(refused)?;
                let history = canister.history();
                let wanted = args.num_requested_changes.unwrap_or(0).min(MAX_HISTORY_CHANGES as u64) as usize;
                let skip = history.changes.len().saturating_sub(wanted);
                reply(&CanisterInfoResult {
                    total_num_changes: history.total,
                    recent_changes: history.changes.iter().skip(skip).cloned().collect(),
                    module_hash: canister.state().module.as_ref().map(|m| m.hash.to_vec()),
                    controllers: canister.controllers().to_vec(),
                })
            }
            "take_canister_snapshot" => {
                let args: TakeCanisterSnapshotArgs = decode(method, arg)?;
                let id = args.canister_id;
                touched.insert(id);
                let replace = args.replace_snapshot.as_deref().map(|s| local_snapshot(id, s)).transpose()?;
                let canister = registry.get_mut(&id).map_err(refused)?;
                let local = canister.take_snapshot(&from, replace, time).map_err(refused)?;
                let snapshot = canister.snapshots().find(|s| s.id == local).expect("just taken");
                reply(&snapshot_record(id, snapshot))
            }
            "load_canister_snapshot" => {
                let args: LoadCanisterSnapshotArgs = decode(method, arg)?;
                let id = args.canister_id;
                touched.insert(id);
                let local = local_snapshot(id, &args.snapshot_id)?;
                let canister = registry.get_mut(&id).map_err(refused)?;
                canister.load_snapshot(executor()?, &from, local).map_err(refused)?;
                let taken_at = canister.snapshots().find(|s| s.id == local).map_or(0, |s| s.taken_at);
                let details = ChangeDetails::LoadSnapshot(LoadSnapshotRecord {
                    from_canister_id: None,
                    snapshot_id: args.snapshot_id,
                    canister_version: canister.version(),
                    taken_at_timestamp: taken_at,
                    source: SnapshotSource::TakenFromCanister(candid::Reserved),
                });
                canister.record_change(time, from, details);
                reply(&())
            }
            "read_canister_snapshot_metadata" | "read_canister_snapshot_data" => {
                let (canister_id, snapshot_id, kind) = if method == "read_canister_snapshot_metadata" {
                    let args: ReadCanisterSnapshotMetadataArgs = decode(method, arg)?;
                    (args.canister_id, args.snapshot_id, None)
                } else {
                    let args: ReadCanisterSnapshotDataArgs = decode(method, arg)?;
                    (args.canister_id, args.snapshot_id, Some(args.kind))
                };
                let local = local_snapshot(canister_id, &snapshot_id)?;
                let canister = registry.get(&canister_id).map_err(refused)?;
                let snapshot = canister
                    .list_snapshots(&from)
                    .map_err(refused)?
                    .into_iter()
                    .find(|s| s.id == local)
                    .ok_or_else(|| refused(CanisterError::SnapshotNotFound { canister: canister_id, id: local }))?;
                match kind {
                    None => reply(&snapshot_data::metadata(canister, snapshot)),
                    Some(kind) => reply(&snapshot_data::data(canister_id, snapshot, kind)?),
                }
            }
            "upload_canister_snapshot_metadata" => {
                let args: UploadCanisterSnapshotMetadataArgs = decode(method, arg)?;
                let id = args.canister_id;
                touched.insert(id);
                let replace = args.replace_snapshot.as_deref().map(|s| local_snapshot(id, s)).transpose()?;
                let upload = snapshot_data::upload(&args)?;
                let canister = registry.get_mut(&id).map_err(refused)?;
                let local =
                    canister.upload_snapshot_metadata(executor()?, &from, replace, upload, time).map_err(refused)?;
                reply(&UploadCanisterSnapshotMetadataResult { snapshot_id: snapshot_id(id, local) })
            }
            "upload_canister_snapshot_data" => {
                let args: UploadCanisterSnapshotDataArgs = decode(method, arg)?;
                let id = args.canister_id;
                touched.insert(id);
                let local = local_snapshot(id, &args.snapshot_id)?;
                let (part, offset) = snapshot_data::part(id, &args.kind)?;
                let canister = registry.get_mut(&id).map_err(refused)?;
                canister.upload_snapshot_data(&from, local, part, offset, &args.chunk).map_err(refused)?;
                reply(&())
            }
            "delete_canister_snapshot" => {
                let args: DeleteCanisterSnapshotArgs = decode(method, arg)?;
                let id = args.canister_id;
                touched.insert(id);
                let local = local_snapshot(id, &args.snapshot_id)?;
                registry.get_mut(&id).map_err(refused)?.delete_snapshot(&from, local).map_err(refused)?;
                reply(&())
            }
            "fetch_canister_logs" => Err((
                ErrorCode::CanisterRejectedMessage,
                match caller {
                    Caller::Canister { .. } => "fetch_canister_logs API is only accessible to end users in non-replicated mode",
                    Caller::User { .. } => "fetch_canister_logs API is not accessible via ingress in replicated mode; read the canister log with a query",
                }
                .into(),
            )),
            other => Err((
                ErrorCode::CanisterMethodNotFound,
                format!("the management canister has no method {other:?} on this host"),
            )),
        }
    }

    #[allow(clippy::too_many_arguments)] // the install, and where it runs
    fn install(
        &mut self,
        executor: &Executor,
        registry: &mut Registry,
        from: Principal,
        id: Principal,
        mode: CanisterInstallMode,
        wasm: &[u8],
        arg: &[u8],
        time: u64,
        touched: &mut BTreeSet<Principal>,
    ) -> Result<Answer, Rejected> {
        touched.insert(id);
        let (mode, deployment) = install_mode(mode);
        let canister = registry.get_mut(&id).map_err(refused)?;
        canister.install_code(executor, &from, mode, wasm, arg, time).map_err(refused)?;
        let module_hash = canister.state().module.as_ref().map_or_else(Vec::new, |m| m.hash.to_vec());
        let details = ChangeDetails::CodeDeployment(CodeDeploymentRecord { mode: deployment, module_hash });
        canister.record_change(time, from, details);
        reply(&())
    }

    /// The canister `id`, if `from` is it or one of its controllers.
    fn own_or_controlled<'a>(
        &self,
        registry: &'a mut Registry,
        from: Principal,
        id: Principal,
        touched: &mut BTreeSet<Principal>,
    ) -> Result<&'a mut Canister, Rejected> {
        touched.insert(id);
        let canister = registry.get_mut(&id).map_err(refused)?;
        if from != id && !canister.controllers().contains(&from) {
            return Err(refused(not_controller(canister, from)));
        }
        Ok(canister)
    }

    fn lifecycle(
        &mut self,
        executor: &Executor,
        registry: &mut Registry,
        caller: Caller,
        method: &str,
        id: Principal,
        time: u64,
    ) -> Result<Answer, Rejected> {
        let from = caller.principal();
        if method == "delete_canister" {
            registry.delete(&from, &id).map_err(refused)?;
            return reply(&());
        }
        let canister = registry.get_mut(&id).map_err(refused)?;
        match method {
            "uninstall_code" => {
                canister.uninstall(executor, &from).map_err(refused)?;
                canister.record_change(time, from, ChangeDetails::CodeUninstall);
            }
            "start_canister" => {
                // The stops it cancels are answered through the outbox.
                canister.start(executor, &from).map_err(refused)?;
            }
            "stop_canister" => {
                if !canister.stop(executor, &from).map_err(refused)? {
                    // Stopping: answered when its call contexts close.
                    canister.wait_for_stop(caller.waiter(), time);
                    return Ok(Answer::Later);
                }
            }
            "deposit_cycles" => {}
            "list_canister_snapshots" => {
                let snapshots = canister.list_snapshots(&from).map_err(refused)?;
                let list: Vec<Snapshot> = snapshots.iter().map(|s| snapshot_record(id, s)).collect();
                return reply(&list);
            }
            _ => {
                if !canister.controllers().contains(&from) {
                    return Err(refused(not_controller(canister, from)));
                }
                return reply(&status(canister, executor));
            }
        }
        reply(&())
    }
}

fn check_controllers(controllers: &[Principal]) -> Result<(), Rejected> {
    if controllers.len() > crate::MAX_CONTROLLERS {
        return Err((
            ErrorCode::InvalidManagementPayload,
            format!("{} controllers were given; at most {} are allowed", controllers.len(), crate::MAX_CONTROLLERS),
        ));
    }
    Ok(())
}

fn not_controller(canister: &Canister, caller: Principal) -> CanisterError {
    CanisterError::NotController { caller, canister: canister.id(), controllers: canister.controllers().to_vec() }
}

fn snapshot_record(canister: Principal, snapshot: &crate::canister::Snapshot) -> Snapshot {
    Snapshot {
        id: snapshot_id(canister, snapshot.id),
        taken_at_timestamp: snapshot.taken_at,
        total_size: snapshot.state.size_bytes(),
    }
}

/// `canister_status`'s answer for `canister`.
fn status(canister: &Canister, executor: &Executor) -> CanisterStatusResult {
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
            snapshots_size: nat(canister.snapshots().map(|s| s.state.size_bytes()).sum()),
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
