//! A canister's lifecycle: installing code (install, reinstall, upgrade),
//! uninstalling, stopping and starting, controllers, snapshots, and its log.
//!
//! Every operation that runs canister code works on an O(1) copy of the
//! state and commits it only if everything succeeded, so a trap anywhere
//! (in `canister_init`, `canister_pre_upgrade`, `canister_post_upgrade`)
//! leaves the canister exactly as it was.

use std::collections::{BTreeMap, VecDeque};
use std::fmt;
use std::sync::Arc;

use candid::Principal;
use page_delta::PageMap;

use crate::engine::CanisterModule;
use crate::execution::{Call, Canister, CanisterState, ExecutionError, Executor, MessageResult, Target};
use crate::module::{EntryPoint, MethodKind, ModuleError};
use crate::system_api::CanisterEnv;

/// Most log records kept per canister; older ones are dropped first.
pub const MAX_LOG_RECORDS: usize = 4096;
/// Most snapshots a canister may hold.
pub const MAX_SNAPSHOTS: usize = 10;

/// Whether a canister accepts messages.
#[derive(Copy, Clone, Debug, PartialEq, Eq, Hash)]
pub enum CanisterStatus {
    Running,
    /// Stopped: messages are rejected; snapshots and deletion are allowed.
    Stopped,
}

impl CanisterStatus {
    /// The value `ic0.canister_status` reports.
    fn code(self) -> u32 {
        match self {
            CanisterStatus::Running => 1,
            CanisterStatus::Stopped => 3,
        }
    }
}

impl fmt::Display for CanisterStatus {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            CanisterStatus::Running => "running",
            CanisterStatus::Stopped => "stopped",
        })
    }
}

/// How `install_code` treats the existing canister.
#[derive(Copy, Clone, Debug, PartialEq, Eq, Hash, candid::CandidType, serde::Deserialize)]
pub enum InstallMode {
    /// The canister must be empty; runs `canister_init`.
    Install,
    /// Wipes heap and stable memory, then installs.
    Reinstall,
    /// Runs `canister_pre_upgrade` on the old module (unless skipped),
    /// swaps the module, keeps stable memory, replaces the heap (unless
    /// `keep_heap`: `wasm_memory_persistence = keep`, which keeps the heap
    /// bytes and size and applies none of the new module's data segments),
    /// and runs `canister_post_upgrade` with the argument.
    Upgrade { keep_heap: bool, skip_pre_upgrade: bool },
}

impl InstallMode {
    pub const UPGRADE: InstallMode = InstallMode::Upgrade { keep_heap: false, skip_pre_upgrade: false };
}

/// One `debug_print` (or trap message) of a replicated execution.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct LogRecord {
    pub index: u64,
    /// The round time of the message that printed it.
    pub time: u64,
    pub content: Vec<u8>,
}

/// A saved copy of a canister's heap, stable memory, module, globals and
/// certified data.
#[derive(Clone, Debug)]
pub struct Snapshot {
    pub id: u64,
    pub taken_at: u64,
    pub state: CanisterState,
}

#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
pub enum CanisterError {
    #[error("canister {0} does not exist")]
    NotFound(Principal),
    #[error("a canister named {0:?} already exists; names must be unique")]
    NameTaken(String),
    #[error("{caller} is not a controller of canister {canister}; its controllers are: {}", list(.controllers))]
    NotController { caller: Principal, canister: Principal, controllers: Vec<Principal> },
    #[error("canister {canister} is stopped; start it to send it messages")]
    Stopped { canister: Principal },
    #[error("canister {canister} must be stopped to {action}; stop it first")]
    NotStopped { canister: Principal, action: &'static str },
    #[error("canister {canister} already has code installed; use reinstall or upgrade")]
    AlreadyInstalled { canister: Principal },
    #[error("canister {canister} has no code installed; install a module first")]
    Empty { canister: Principal },
    #[error("cannot install the module: {0}")]
    Module(#[from] ModuleError),
    #[error("{entry} failed, so nothing changed: {error}")]
    HookFailed { entry: &'static str, error: ExecutionError },
    #[error("canister {canister} rejected the message in canister_inspect_message: {reason}")]
    InspectRejected { canister: Principal, reason: String },
    #[error("canister {canister} has no snapshot {id:016x}")]
    SnapshotNotFound { canister: Principal, id: u64 },
    #[error("canister {canister} already holds {MAX_SNAPSHOTS} snapshots; delete one or replace it")]
    TooManySnapshots { canister: Principal },
}

fn list(principals: &[Principal]) -> String {
    if principals.is_empty() {
        "(none)".into()
    } else {
        principals.iter().map(Principal::to_text).collect::<Vec<_>>().join(", ")
    }
}

/// Everything a [`CanisterRecord`] holds, for saving it in a checkpoint and
/// restoring it.
pub struct RecordParts {
    pub id: Principal,
    pub name: Option<String>,
    pub controllers: Vec<Principal>,
    pub status: CanisterStatus,
    pub version: u64,
    pub log: Vec<LogRecord>,
    pub next_log_index: u64,
    pub snapshots: Vec<Snapshot>,
    pub next_snapshot: u64,
    pub state: CanisterState,
}

/// A canister: identity, controllers, status, log and snapshots, around its
/// executable state.
pub struct CanisterRecord {
    id: Principal,
    name: Option<String>,
    controllers: Vec<Principal>,
    status: CanisterStatus,
    version: u64,
    log: VecDeque<LogRecord>,
    next_log_index: u64,
    snapshots: BTreeMap<u64, Snapshot>,
    next_snapshot: u64,
    exec: Canister,
}

impl CanisterRecord {
    /// A new, empty, running canister.
    pub fn new(id: Principal, name: Option<String>, controllers: Vec<Principal>) -> CanisterRecord {
        CanisterRecord {
            id,
            name,
            controllers,
            status: CanisterStatus::Running,
            version: 0,
            log: VecDeque::new(),
            next_log_index: 0,
            snapshots: BTreeMap::new(),
            next_snapshot: 0,
            exec: Canister::default(),
        }
    }

    /// Rebuild a record from saved parts.
    pub fn restore(parts: RecordParts, exec: &Executor) -> CanisterRecord {
        let mut record = CanisterRecord {
            id: parts.id,
            name: parts.name,
            controllers: parts.controllers,
            status: parts.status,
            version: parts.version,
            log: parts.log.into(),
            next_log_index: parts.next_log_index,
            snapshots: parts.snapshots.into_iter().map(|s| (s.id, s)).collect(),
            next_snapshot: parts.next_snapshot,
            exec: Canister::new(parts.state),
        };
        record.refresh_env(exec);
        record
    }

    /// Index the next log record will get.
    pub fn next_log_index(&self) -> u64 {
        self.next_log_index
    }

    /// Id the next snapshot will get.
    pub fn next_snapshot(&self) -> u64 {
        self.next_snapshot
    }

    /// Swap the memories of the state (`None`) and of each snapshot for
    /// equal ones, e.g. freshly mapped from a new checkpoint. The live
    /// instance is dropped: its memory maps the old files.
    pub fn remap<E>(
        &mut self,
        mut f: impl FnMut(Option<u64>, &CanisterState) -> Result<(PageMap, PageMap), E>,
    ) -> Result<(), E> {
        let (heap, stable) = f(None, self.exec.state())?;
        let state = self.exec.state_mut();
        state.heap = heap;
        state.stable = stable;
        for snapshot in self.snapshots.values_mut() {
            let (heap, stable) = f(Some(snapshot.id), &snapshot.state)?;
            snapshot.state.heap = heap;
            snapshot.state.stable = stable;
        }
        Ok(())
    }

    pub fn id(&self) -> Principal {
        self.id
    }

    pub fn name(&self) -> Option<&str> {
        self.name.as_deref()
    }

    pub fn controllers(&self) -> &[Principal] {
        &self.controllers
    }

    pub fn status(&self) -> CanisterStatus {
        self.status
    }

    /// Incremented by every code change (install, reinstall, upgrade,
    /// uninstall, snapshot load) and controller change.
    pub fn version(&self) -> u64 {
        self.version
    }

    pub fn state(&self) -> &CanisterState {
        self.exec.state()
    }

    pub fn executable(&mut self) -> &mut Canister {
        &mut self.exec
    }

    /// The canister's log, oldest first.
    pub fn log(&self) -> impl Iterator<Item = &LogRecord> {
        self.log.iter()
    }

    pub fn snapshots(&self) -> impl Iterator<Item = &Snapshot> {
        self.snapshots.values()
    }

    fn check_controller(&self, caller: &Principal) -> Result<(), CanisterError> {
        if self.controllers.contains(caller) {
            Ok(())
        } else {
            Err(CanisterError::NotController {
                caller: *caller,
                canister: self.id,
                controllers: self.controllers.clone(),
            })
        }
    }

    fn check_stopped(&self, action: &'static str) -> Result<(), CanisterError> {
        match self.status {
            CanisterStatus::Stopped => Ok(()),
            CanisterStatus::Running => Err(CanisterError::NotStopped { canister: self.id, action }),
        }
    }

    fn check_running(&self) -> Result<(), CanisterError> {
        match self.status {
            CanisterStatus::Running => Ok(()),
            CanisterStatus::Stopped => Err(CanisterError::Stopped { canister: self.id }),
        }
    }

    /// What messages learn about this canister.
    fn env(&self, exec: &Executor) -> CanisterEnv {
        CanisterEnv {
            id: self.id.as_slice().to_vec(),
            controllers: self.controllers.iter().map(|c| c.as_slice().to_vec()).collect(),
            cycle_balance: exec.config().cycle_balance,
            status: self.status.code(),
            version: self.version,
        }
    }

    fn refresh_env(&mut self, exec: &Executor) {
        let env = self.env(exec);
        self.exec.set_env(env);
    }

    fn record_log(&mut self, time: u64, result: &MessageResult) {
        let trap = match &result.outcome {
            Err(ExecutionError::Trapped(message)) => Some(format!("[TRAP]: {message}").into_bytes()),
            _ => None,
        };
        for content in result.debug_prints.iter().cloned().chain(trap) {
            self.log.push_back(LogRecord { index: self.next_log_index, time, content });
            self.next_log_index += 1;
            if self.log.len() > MAX_LOG_RECORDS {
                self.log.pop_front();
            }
        }
    }

    /// Install, reinstall or upgrade the canister's code. Only controllers
    /// may; any failure leaves the canister as it was.
    pub fn install_code(
        &mut self,
        exec: &Executor,
        sender: &Principal,
        mode: InstallMode,
        wasm: &[u8],
        arg: &[u8],
        time: u64,
    ) -> Result<(), CanisterError> {
        self.check_controller(sender)?;
        let module = exec.compile(wasm)?;
        self.install_module(exec, sender, mode, module, arg, time)
    }

    /// `install_code` with a module already compiled.
    pub fn install_module(
        &mut self,
        exec: &Executor,
        sender: &Principal,
        mode: InstallMode,
        module: Arc<CanisterModule>,
        arg: &[u8],
        time: u64,
    ) -> Result<(), CanisterError> {
        self.check_controller(sender)?;
        let current = self.exec.state().clone();
        let env = Arc::new(self.env(exec));
        let run = |canister: &mut Canister, entry: EntryPoint, arg: &[u8], log: &mut Vec<MessageResult>| {
            let call = Call { target: Target::Entry(entry), arg, caller: sender.as_slice(), time };
            let result = exec.execute(canister, call);
            let outcome = result.outcome.clone();
            log.push(result);
            outcome.map(|_| ()).map_err(|error| CanisterError::HookFailed { entry: entry.export_name(), error })
        };
        let mut results = Vec::new();
        let outcome = (|| {
            let fresh = |state: &CanisterState| CanisterState {
                env: env.clone(),
                stable: PageMap::new(),
                stable_pages: 0,
                certified_data: Vec::new(),
                global_timer: 0,
                ..state.with_module(module.clone())
            };
            let mut trial = match mode {
                InstallMode::Install if current.module.is_some() => {
                    return Err(CanisterError::AlreadyInstalled { canister: self.id });
                }
                InstallMode::Install | InstallMode::Reinstall => Canister::new(fresh(&current)),
                InstallMode::Upgrade { keep_heap, skip_pre_upgrade } => {
                    let Some(old) = &current.module else { return Err(CanisterError::Empty { canister: self.id }) };
                    let mut old_instance = Canister::new(CanisterState { env: env.clone(), ..current.clone() });
                    if !skip_pre_upgrade && old.info.has(EntryPoint::PreUpgrade) {
                        run(&mut old_instance, EntryPoint::PreUpgrade, &[], &mut results)?;
                    }
                    let after = old_instance.state();
                    // The timer is deactivated by an upgrade; certified data
                    // and stable memory carry over.
                    let upgraded = if keep_heap {
                        CanisterState {
                            module: Some(module.clone()),
                            globals: Vec::new(),
                            global_timer: 0,
                            ..after.clone()
                        }
                    } else {
                        CanisterState { global_timer: 0, ..after.with_module(module.clone()) }
                    };
                    let mut trial = Canister::new(upgraded);
                    if module.info.has(EntryPoint::PostUpgrade) {
                        run(&mut trial, EntryPoint::PostUpgrade, arg, &mut results)?;
                    }
                    return Ok(trial);
                }
            };
            if module.info.has(EntryPoint::Init) {
                run(&mut trial, EntryPoint::Init, arg, &mut results)?;
            }
            Ok(trial)
        })();
        for result in &results {
            self.record_log(time, result);
        }
        self.exec = outcome?;
        self.version += 1;
        self.refresh_env(exec);
        Ok(())
    }

    /// Remove the code and all state (heap, stable memory, certified data).
    pub fn uninstall(&mut self, exec: &Executor, sender: &Principal) -> Result<(), CanisterError> {
        self.check_controller(sender)?;
        self.exec = Canister::default();
        self.version += 1;
        self.refresh_env(exec);
        Ok(())
    }

    pub fn stop(&mut self, exec: &Executor, sender: &Principal) -> Result<(), CanisterError> {
        self.check_controller(sender)?;
        self.status = CanisterStatus::Stopped;
        self.refresh_env(exec);
        Ok(())
    }

    pub fn start(&mut self, exec: &Executor, sender: &Principal) -> Result<(), CanisterError> {
        self.check_controller(sender)?;
        self.status = CanisterStatus::Running;
        self.refresh_env(exec);
        Ok(())
    }

    /// Replace the controllers (a controller must ask).
    pub fn set_controllers(
        &mut self,
        exec: &Executor,
        sender: &Principal,
        controllers: Vec<Principal>,
    ) -> Result<(), CanisterError> {
        self.check_controller(sender)?;
        self.controllers = controllers;
        self.version += 1;
        self.refresh_env(exec);
        Ok(())
    }

    /// Whether `canister_inspect_message` (if exported) accepts an ingress
    /// update call.
    pub fn inspect(
        &self,
        exec: &Executor,
        caller: &Principal,
        method: &str,
        arg: &[u8],
        time: u64,
    ) -> Result<(), CanisterError> {
        self.check_running()?;
        inspect(exec, self.id, self.state(), caller, method, arg, time)
    }

    /// Run an update method. Debug output (and a trap's message) goes to
    /// the canister's log.
    pub fn update(
        &mut self,
        exec: &Executor,
        caller: &Principal,
        method: &str,
        arg: &[u8],
        time: u64,
    ) -> Result<MessageResult, CanisterError> {
        self.check_running()?;
        let call = Call {
            target: Target::Method { name: method, kind: MethodKind::Update },
            arg,
            caller: caller.as_slice(),
            time,
        };
        let result = exec.execute(&mut self.exec, call);
        self.record_log(time, &result);
        Ok(result)
    }

    /// Run a query method on the current state. Nothing it does is kept.
    pub fn query(
        &self,
        exec: &Executor,
        caller: &Principal,
        method: &str,
        arg: &[u8],
        time: u64,
    ) -> Result<MessageResult, CanisterError> {
        self.check_running()?;
        let call = Call {
            target: Target::Method { name: method, kind: MethodKind::Query },
            arg,
            caller: caller.as_slice(),
            time,
        };
        Ok(exec.query(self.state(), call))
    }

    /// Fire the global timer if it is set and due: it is cleared first, as
    /// the IC does, and `canister_global_timer` runs (if exported).
    pub fn run_timer_if_due(&mut self, exec: &Executor, time: u64) -> Option<MessageResult> {
        let timer = self.exec.state().global_timer;
        if self.status != CanisterStatus::Running || timer == 0 || timer > time {
            return None;
        }
        self.exec.state_mut().global_timer = 0;
        self.run_system_task(exec, EntryPoint::GlobalTimer, time)
    }

    /// Run `canister_heartbeat` (if exported and running): once a round.
    pub fn run_heartbeat(&mut self, exec: &Executor, time: u64) -> Option<MessageResult> {
        if self.status != CanisterStatus::Running {
            return None;
        }
        self.run_system_task(exec, EntryPoint::Heartbeat, time)
    }

    /// Run a system entry point, if the module exports it, logging its output.
    fn run_system_task(&mut self, exec: &Executor, entry: EntryPoint, time: u64) -> Option<MessageResult> {
        if !self.state().module.as_ref().is_some_and(|m| m.info.has(entry)) {
            return None;
        }
        let call = Call { target: Target::Entry(entry), arg: &[], caller: self.id.as_slice(), time };
        let result = exec.execute(&mut self.exec, call);
        self.record_log(time, &result);
        Some(result)
    }

    /// Whether a round at `time` has work for this canister even without
    /// messages: a due timer or a heartbeat.
    pub fn has_system_task(&self, time: u64) -> bool {
        let state = self.state();
        let exports = |e| state.module.as_ref().is_some_and(|m| m.info.has(e));
        self.status == CanisterStatus::Running
            && (exports(EntryPoint::Heartbeat) || (state.global_timer != 0 && state.global_timer <= time))
    }

    /// Save heap, stable memory, module, globals and certified data. The
    /// canister must be stopped. With `replace`, that snapshot is deleted
    /// first. O(1): page maps are persistent.
    pub fn take_snapshot(&mut self, sender: &Principal, replace: Option<u64>, time: u64) -> Result<u64, CanisterError> {
        self.check_controller(sender)?;
        self.check_stopped("take a snapshot")?;
        if let Some(old) = replace {
            if !self.snapshots.contains_key(&old) {
                return Err(CanisterError::SnapshotNotFound { canister: self.id, id: old });
            }
        } else if self.snapshots.len() >= MAX_SNAPSHOTS {
            return Err(CanisterError::TooManySnapshots { canister: self.id });
        }
        if let Some(old) = replace {
            self.snapshots.remove(&old);
        }
        let id = self.next_snapshot;
        self.next_snapshot += 1;
        self.snapshots.insert(id, Snapshot { id, taken_at: time, state: self.exec.state().clone() });
        Ok(id)
    }

    /// Restore a snapshot: everything after it is discarded. The canister
    /// must be stopped. Identity, controllers and status are not part of a
    /// snapshot and stay as they are.
    pub fn load_snapshot(&mut self, exec: &Executor, sender: &Principal, id: u64) -> Result<(), CanisterError> {
        self.check_controller(sender)?;
        self.check_stopped("load a snapshot")?;
        let snapshot = self.snapshots.get(&id).ok_or(CanisterError::SnapshotNotFound { canister: self.id, id })?;
        *self.exec.state_mut() = snapshot.state.clone();
        self.version += 1;
        self.refresh_env(exec);
        Ok(())
    }

    pub fn list_snapshots(&self, sender: &Principal) -> Result<Vec<&Snapshot>, CanisterError> {
        self.check_controller(sender)?;
        Ok(self.snapshots.values().collect())
    }

    pub fn delete_snapshot(&mut self, sender: &Principal, id: u64) -> Result<(), CanisterError> {
        self.check_controller(sender)?;
        self.snapshots.remove(&id).map(|_| ()).ok_or(CanisterError::SnapshotNotFound { canister: self.id, id })
    }
}

/// Run `canister_inspect_message` (if `state`'s module exports one) for an
/// ingress call of `method`; an error says why the message is refused.
pub fn inspect(
    exec: &Executor,
    canister: Principal,
    state: &CanisterState,
    caller: &Principal,
    method: &str,
    arg: &[u8],
    time: u64,
) -> Result<(), CanisterError> {
    if !state.module.as_ref().is_some_and(|m| m.info.has(EntryPoint::InspectMessage)) {
        return Ok(());
    }
    let call = Call { target: Target::Inspect { method }, arg, caller: caller.as_slice(), time };
    let result = exec.query(state, call);
    let reason = match result.outcome {
        Err(error) => error.to_string(),
        Ok(_) if result.accepted => return Ok(()),
        Ok(_) => "the canister did not accept it".to_string(),
    };
    Err(CanisterError::InspectRejected { canister, reason })
}
