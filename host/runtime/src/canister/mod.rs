//! A canister's lifecycle: identity, controllers, status, its canister log
//! and snapshots, around the executable state the embedder runs.
//!
//! - `install`: install, reinstall, upgrade, uninstall;
//! - `messages`: inspect, update, query, timer, heartbeat;
//! - `snapshots`: take, load, list, delete;
//! - `canister_log`: what the canister printed.
//!
//! Every operation that runs canister code works on an O(1) copy of the
//! state and commits it only if everything succeeded, so a trap anywhere
//! (in `canister_init`, `canister_pre_upgrade`, `canister_post_upgrade`)
//! leaves the canister exactly as it was.

mod backlog;
mod calls;
mod canister_log;
mod chunks;
mod error;
mod history;
mod install;
mod messages;
mod snapshots;

use std::collections::BTreeMap;
use std::fmt;

use candid::Principal;
use embedder::{CanisterEnv, CanisterState, Executable, Executor};
use page_delta::PageMap;

pub use backlog::{Backlog, LongCall, LongMessage, Origin};
pub(crate) use backlog::{LongRun, Step};
pub use calls::{
    CallContext, CallState, Callback, ContextOrigin, InterMessage, MAX_OUTSTANDING_CALLS, Output, Payload,
    STOP_TIMEOUT_NANOS,
};
pub(crate) use canister_log::CanisterLog;
pub use canister_log::{CanisterLogRecord, MAX_CANISTER_LOG_BYTES, MAX_CANISTER_LOG_RECORDS};
pub use chunks::{ChunkStore, MAX_CHUNK_BYTES, MAX_CHUNKS};
pub use error::CanisterError;
pub use history::{CanisterHistory, MAX_HISTORY_CHANGES};
pub use install::{InstallMode, WasmMemoryPersistence};
pub use messages::inspect;
pub use snapshots::{MAX_SNAPSHOTS, Snapshot, SnapshotPart, SnapshotUpload};

/// Whether a canister accepts messages.
#[derive(Copy, Clone, Debug, PartialEq, Eq, Hash)]
pub enum CanisterStatus {
    /// Running: messages run.
    Running,
    /// Stopping: new calls are rejected; it waits for its open call
    /// contexts to close (the answers to its own calls still run).
    Stopping,
    /// Stopped: messages are rejected; snapshots and deletion are allowed.
    Stopped,
}

impl CanisterStatus {
    /// The value `ic0.canister_status` reports (and digests encode).
    pub fn code(self) -> u32 {
        match self {
            CanisterStatus::Running => 1,
            CanisterStatus::Stopping => 2,
            CanisterStatus::Stopped => 3,
        }
    }
}

impl fmt::Display for CanisterStatus {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            CanisterStatus::Running => "running",
            CanisterStatus::Stopping => "stopping",
            CanisterStatus::Stopped => "stopped",
        })
    }
}

/// Everything a [`Canister`] holds, for saving it in a checkpoint and
/// restoring it.
#[allow(missing_docs)] // each field is the canister's field of the same name
pub struct CanisterParts {
    pub id: Principal,
    pub name: Option<String>,
    pub controllers: Vec<Principal>,
    pub status: CanisterStatus,
    pub version: u64,
    pub canister_log: Vec<CanisterLogRecord>,
    pub next_canister_log_index: u64,
    pub snapshots: Vec<Snapshot>,
    pub next_snapshot: u64,
    pub state: CanisterState,
    pub backlog: Backlog,
    pub calls: CallState,
    pub history: CanisterHistory,
    pub chunks: ChunkStore,
}

/// A canister: identity, controllers, status, canister log and snapshots,
/// around its executable state.
pub struct Canister {
    id: Principal,
    name: Option<String>,
    controllers: Vec<Principal>,
    status: CanisterStatus,
    version: u64,
    canister_log: CanisterLog,
    snapshots: BTreeMap<u64, Snapshot>,
    next_snapshot: u64,
    exec: Executable,
    /// Unfinished work (a long message and what waits behind it).
    backlog: Backlog,
    /// The thread running the long message, once started.
    running: Option<LongRun>,
    /// Calls to and from other canisters.
    calls: CallState,
    /// Recent changes to code and controllers.
    history: CanisterHistory,
    /// Uploaded pieces of a module.
    chunks: ChunkStore,
    /// Answers produced outside a message (open calls rejected by an
    /// uninstall), for the round to deliver: always empty between rounds.
    outbox: Vec<Output>,
}

impl Canister {
    /// A new, empty, running canister.
    pub fn new(id: Principal, name: Option<String>, controllers: Vec<Principal>) -> Canister {
        Canister {
            id,
            name,
            controllers,
            status: CanisterStatus::Running,
            version: 0,
            canister_log: CanisterLog::default(),
            snapshots: BTreeMap::new(),
            next_snapshot: 0,
            exec: Executable::default(),
            backlog: Backlog::default(),
            running: None,
            calls: CallState::default(),
            history: CanisterHistory::default(),
            chunks: ChunkStore::default(),
            outbox: Vec::new(),
        }
    }

    /// Rebuild a canister from saved parts.
    pub fn restore(parts: CanisterParts, exec: &Executor) -> Canister {
        let mut canister = Canister {
            id: parts.id,
            name: parts.name,
            controllers: parts.controllers,
            status: parts.status,
            version: parts.version,
            canister_log: CanisterLog::from_parts(parts.canister_log, parts.next_canister_log_index),
            snapshots: parts.snapshots.into_iter().map(|s| (s.id, s)).collect(),
            next_snapshot: parts.next_snapshot,
            exec: Executable::new(parts.state),
            backlog: parts.backlog,
            running: None,
            calls: parts.calls,
            history: parts.history,
            chunks: parts.chunks,
            outbox: Vec::new(),
        };
        canister.refresh_env(exec);
        canister
    }

    /// A copy of everything that persists, in O(1) (page maps fork; the
    /// canister log is a persistent queue). The live instance and a long
    /// message's thread are not copied. A round keeps forks to restore if it is not applied.
    pub(crate) fn fork(&self) -> Canister {
        Canister {
            id: self.id,
            name: self.name.clone(),
            controllers: self.controllers.clone(),
            status: self.status,
            version: self.version,
            canister_log: self.canister_log.clone(),
            snapshots: self.snapshots.clone(),
            next_snapshot: self.next_snapshot,
            exec: Executable::new(self.state().clone()),
            backlog: self.backlog.clone(),
            running: None,
            calls: self.calls.clone(),
            history: self.history.clone(),
            chunks: self.chunks.clone(),
            outbox: Vec::new(),
        }
    }

    /// Index the next canister log record will get.
    pub fn next_canister_log_index(&self) -> u64 {
        self.canister_log.next_index()
    }

    /// Id the next snapshot will get.
    pub fn next_snapshot(&self) -> u64 {
        self.next_snapshot
    }

    /// Swap memories of the state (`None`) and of each snapshot for equal
    /// ones, e.g. freshly mapped from a new checkpoint: `f` returns the
    /// replacement heap and stable memory, or `None` to keep one. Replacing
    /// a memory of the state drops the live instance: its memory maps the
    /// old files.
    pub fn remap<E>(
        &mut self,
        mut f: impl FnMut(Option<u64>, &CanisterState) -> Result<(Option<PageMap>, Option<PageMap>), E>,
    ) -> Result<(), E> {
        let (heap, stable) = f(None, self.exec.state())?;
        if heap.is_some() || stable.is_some() {
            let state = self.exec.state_mut();
            state.heap = heap.unwrap_or_else(|| state.heap.clone());
            state.stable = stable.unwrap_or_else(|| state.stable.clone());
        }
        for snapshot in self.snapshots.values_mut() {
            let (heap, stable) = f(Some(snapshot.id), &snapshot.state)?;
            if let Some(heap) = heap {
                snapshot.state.heap = heap;
            }
            if let Some(stable) = stable {
                snapshot.state.stable = stable;
            }
        }
        Ok(())
    }

    /// The canister's id.
    pub fn id(&self) -> Principal {
        self.id
    }

    /// Its unique name, if it has one.
    pub fn name(&self) -> Option<&str> {
        self.name.as_deref()
    }

    /// Who may manage it.
    pub fn controllers(&self) -> &[Principal] {
        &self.controllers
    }

    /// Whether it runs messages.
    pub fn status(&self) -> CanisterStatus {
        self.status
    }

    /// Incremented by every code change (install, reinstall, upgrade,
    /// uninstall, snapshot load) and controller change.
    pub fn version(&self) -> u64 {
        self.version
    }

    /// The committed state.
    pub fn state(&self) -> &CanisterState {
        self.exec.state()
    }

    /// The state with its live instance, for the executor.
    pub fn executable(&mut self) -> &mut Executable {
        &mut self.exec
    }

    /// The canister log, oldest first.
    pub fn canister_log(&self) -> impl Iterator<Item = &CanisterLogRecord> {
        self.canister_log.iter()
    }

    /// The snapshots, oldest first.
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
            CanisterStatus::Running | CanisterStatus::Stopping => {
                Err(CanisterError::NotStopped { canister: self.id, action })
            }
        }
    }

    fn check_running(&self) -> Result<(), CanisterError> {
        match self.status {
            CanisterStatus::Running => Ok(()),
            CanisterStatus::Stopping => Err(CanisterError::Stopping { canister: self.id }),
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

    /// Stop the canister: it takes no messages until started (a controller
    /// must ask). With call contexts open it is stopping until they close,
    /// and `false` says so: the stop completes later.
    pub fn stop(&mut self, exec: &Executor, sender: &Principal) -> Result<bool, CanisterError> {
        self.check_controller(sender)?;
        self.status = if self.calls.contexts.is_empty() { CanisterStatus::Stopped } else { CanisterStatus::Stopping };
        self.refresh_env(exec);
        Ok(self.status == CanisterStatus::Stopped)
    }

    /// Wait for a stop (asked by `waiter` at `time`) to complete.
    pub(crate) fn wait_for_stop(&mut self, waiter: ContextOrigin, time: u64) {
        self.calls.stop_waiters.push((waiter, time.saturating_add(calls::STOP_TIMEOUT_NANOS)));
    }

    /// Start the canister (a controller must ask). Stops still waiting are
    /// answered as cancelled (through the outbox): the canister runs again.
    pub fn start(&mut self, exec: &Executor, sender: &Principal) -> Result<(), CanisterError> {
        self.check_controller(sender)?;
        let cancelled = std::mem::take(&mut self.calls.stop_waiters);
        let error = || Err(CanisterError::StopCancelled { canister: self.id });
        self.outbox.extend(cancelled.into_iter().filter_map(|(waiter, _)| calls::answer_stop(waiter, error())));
        self.status = CanisterStatus::Running;
        self.refresh_env(exec);
        Ok(())
    }

    /// Set the status without the executor (the env is rebuilt from the
    /// current one).
    fn set_status(&mut self, status: CanisterStatus) {
        self.status = status;
        let env = CanisterEnv { status: status.code(), ..(*self.exec.state().env).clone() };
        self.exec.set_env(env);
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
}
