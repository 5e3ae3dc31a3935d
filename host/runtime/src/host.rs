//! The host's handle: what callers use. Updates and lifecycle operations
//! go to the scheduler thread and come back once their round is durable;
//! queries and status requests read the committed view on the caller's
//! thread and never wait for a round.

use std::path::Path;
use std::sync::{Arc, Mutex, RwLock, Weak};
use std::thread::JoinHandle;
use std::time::Instant;

use candid::Principal;
use checkpoint::{Hash, StateDir};
use crossbeam_channel::{Receiver, Sender};
use embedder::{Engine, EntryPoint, Executor, ModuleCache};

use crate::admission::Admission;
use crate::canister::{self, CanisterError, CanisterLogRecord, CanisterStatus, InstallMode};
use crate::config::HostConfig;
use crate::error::{CallError, HostError};
use crate::metrics::{HostMetrics, seconds_since};
use crate::query::{self, refused};
use crate::query_pool::{QueryPool, WASM_THREAD_STACK, on_wasm_stack};
use crate::reclaim::Reclaimer;
use crate::recovery::{RecoveryReport, recover};
use crate::round::{self, Operation, Outcome};
use crate::scheduler::{Command, Reply, Scheduler, Shared};
use crate::view::{CanisterInfo, CommittedView, LastRound};

/// The compiled-module cache, inside the state directory but outside
/// checkpoints: machine code is derived data, never canister state.
pub const MODULE_CACHE: &str = "compiled";

pub(crate) fn call_result(reply: Reply) -> Result<Vec<u8>, CallError> {
    match reply.map_err(CallError::NotApplied)? {
        Outcome::Reply(bytes) => Ok(bytes),
        Outcome::Reject(message) => Err(CallError::Rejected(message)),
        Outcome::Error { code, message } => Err(CallError::Failed { code, message }),
        other => Err(CallError::Unavailable(format!("unexpected outcome {other:?} (a bug)"))),
    }
}

/// A submitted update, to wait for.
pub struct CallHandle {
    reply: Result<Receiver<Reply>, CallError>,
    /// When it was submitted, and where its latency goes.
    timing: Option<(Instant, prometheus::Histogram)>,
}

impl CallHandle {
    fn refused(error: CallError) -> CallHandle {
        CallHandle { reply: Err(error), timing: None }
    }

    /// Whether the reply is ready (`wait` would not block).
    pub fn is_ready(&self) -> bool {
        self.reply.as_ref().map_or(true, |rx| !rx.is_empty())
    }

    /// Block until the round holding the call is durable, then return its
    /// reply.
    pub fn wait(self) -> Result<Vec<u8>, CallError> {
        let rx = self.reply?;
        let reply = crate::spin::recv(&rx);
        if let Some((submitted, latency)) = self.timing {
            latency.observe(seconds_since(submitted));
        }
        match reply {
            Ok(outcome) => call_result(outcome),
            Err(_) => Err(CallError::Unavailable("the host stopped before the call completed".into())),
        }
    }
}

/// Work done since the host opened.
#[derive(Copy, Clone, Debug, Default, PartialEq, Eq)]
pub struct HostCounters {
    /// Rounds executed.
    pub rounds: u64,
    /// Update messages executed.
    pub messages: u64,
    /// Pages written, counted once per canister and round.
    pub dirty_pages: u64,
    /// Checkpoints written.
    pub checkpoints: u64,
    /// Times the host asked for freed memory to be handed back to the
    /// operating system (after checkpoints, and rounds that deleted,
    /// uninstalled or replaced canister memory), merging requests that
    /// arrived while one was pending.
    pub memory_trim_requests: u64,
    /// Those requests carried out: once equal to `memory_trim_requests`,
    /// all memory freed before the last request has been handed back.
    pub memory_trims: u64,
}

/// A running host.
pub struct Host {
    shared: Arc<Shared>,
    /// Shared only as weak references ([`LogSealer`]): dropping this one
    /// disconnects the scheduler, which is how it learns to stop.
    commands: Option<Arc<Sender<Command>>>,
    scheduler: Option<JoinHandle<()>>,
    recovered: RecoveryReport,
}

impl Host {
    /// Open the state directory at `path` (creating it if needed), recover
    /// the newest state, and start running.
    pub fn open(path: &Path, config: HostConfig) -> Result<Host, HostError> {
        Host::open_with_fs(path, config, Arc::new(checkpoint::RealFs))
    }

    /// [`Host::open`], with the state directory's file operations (its
    /// checkpoints and log) going through `fs`: for injecting faults and
    /// delays. Memory files are mapped from `path` itself, so `fs` must act
    /// on the real files (wrap [`checkpoint::RealFs`]).
    pub fn open_with_fs(path: &Path, config: HostConfig, fs: Arc<dyn checkpoint::Fs>) -> Result<Host, HostError> {
        config.validate().map_err(HostError::InvalidConfig)?;
        let mut engine = Engine::new()?;
        if config.module_cache_bytes > 0 {
            engine = engine.with_module_cache(ModuleCache::new(path.join(MODULE_CACHE), config.module_cache_bytes));
        }
        let engine = Arc::new(engine);
        let executor = Arc::new(Executor::new(engine, config.execution.clone()));
        if !path.exists() {
            std::fs::create_dir_all(path).map_err(|source| checkpoint::Error::Io {
                op: "create state directory",
                path: path.to_path_buf(),
                source,
            })?;
        }
        let dir = StateDir::open_with(path, fs)?;
        let recovered = on_wasm_stack(|| recover(&dir, &config, &executor))?;
        let report = recovered.report.clone();
        let queries = QueryPool::new(config.query_threads, config.query_queue)
            .map_err(|e| HostError::Stopped(format!("cannot start the query threads: {e}")))?;
        let shared = Arc::new(Shared {
            executor,
            admission: Admission::new(&config),
            queries,
            view: RwLock::new(Arc::new(CommittedView::empty(recovered.round))),
            failure: Mutex::new(None),
            metrics: HostMetrics::new(&dir.wal_dir()),
        });
        let metrics = &shared.metrics;
        let reclaimer = Reclaimer::start(metrics.memory_trim_requests.clone(), metrics.memory_trims.clone())
            .map_err(|e| HostError::Stopped(format!("cannot start the memory reclaim thread: {e}")))?;
        let (tx, rx) = crossbeam_channel::unbounded();
        let scheduler = Scheduler::new(config, dir, recovered, shared.clone(), reclaimer);
        let thread = std::thread::Builder::new()
            .name("canister-host-scheduler".into())
            // It runs a share of each round itself.
            .stack_size(WASM_THREAD_STACK)
            .spawn(move || scheduler.run(rx))
            .map_err(|e| HostError::Stopped(format!("cannot start the scheduler thread: {e}")))?;
        Ok(Host { shared, commands: Some(Arc::new(tx)), scheduler: Some(thread), recovered: report })
    }

    /// The executor messages run on (compiling, limits).
    pub fn executor(&self) -> &Arc<Executor> {
        &self.shared.executor
    }

    /// What opening found.
    pub fn recovery(&self) -> &RecoveryReport {
        &self.recovered
    }

    fn send(&self, command: Command) -> Result<(), String> {
        if let Some(failure) = self.shared.failure() {
            return Err(failure);
        }
        let commands = self.commands.as_ref().ok_or("the host is closed")?;
        commands.send(command).map_err(|_| "the host's scheduler has stopped".to_string())
    }

    /// Submit an operation; the receiver yields its outcome once the round
    /// holding it is durable.
    fn submit(&self, op: Operation) -> Result<Receiver<Reply>, String> {
        let (tx, rx) = crossbeam_channel::bounded(1);
        self.send(Command::Operation(op, tx))?;
        Ok(rx)
    }

    fn run_operation(&self, op: Operation) -> Result<Outcome, HostError> {
        self.shared.admission.check(&op).map_err(|e| HostError::Rejected { code: e.code(), message: e.to_string() })?;
        let rx = self.submit(op).map_err(HostError::Stopped)?;
        match rx.recv() {
            Ok(Ok(Outcome::Error { code, message })) => Err(HostError::Rejected { code, message }),
            Ok(Ok(outcome)) => Ok(outcome),
            Ok(Err(not_applied)) => Err(HostError::NotApplied(not_applied)),
            Err(_) => Err(HostError::Stopped(self.shared.failure().unwrap_or_else(|| "the scheduler stopped".into()))),
        }
    }
    /// Create a canister controlled by `controllers` (by `sender` if empty).
    pub fn create_canister(
        &self,
        sender: Principal,
        controllers: Vec<Principal>,
        name: Option<String>,
    ) -> Result<Principal, HostError> {
        match self.run_operation(Operation::CreateCanister { sender, controllers, name })? {
            Outcome::Created(id) => Ok(id),
            other => Err(HostError::Operation(format!("unexpected outcome {other:?}"))),
        }
    }

    /// Install, reinstall or upgrade a canister's code (a controller must ask).
    pub fn install_code(
        &self,
        sender: Principal,
        canister: Principal,
        mode: InstallMode,
        wasm: Vec<u8>,
        arg: Vec<u8>,
    ) -> Result<(), HostError> {
        // Compile here, on the caller's thread, so the round finds the
        // module compiled (the executor keeps it while `_module` lives)
        // and other canisters' rounds never wait for a compilation.
        let op = Operation::InstallCode { sender, canister, mode, wasm, arg };
        self.shared.admission.check(&op).map_err(|e| HostError::Rejected { code: e.code(), message: e.to_string() })?;
        let Operation::InstallCode { wasm, .. } = &op else { unreachable!("built above") };
        let _module = self.shared.executor.compile(wasm).map_err(|e| {
            let e = CanisterError::Module(e);
            HostError::Rejected { code: e.code(), message: e.to_string() }
        })?;
        self.run_operation(op).map(drop)
    }

    /// Remove a canister's code and state (a controller must ask).
    pub fn uninstall(&self, sender: Principal, canister: Principal) -> Result<(), HostError> {
        self.run_operation(Operation::Uninstall { sender, canister }).map(drop)
    }

    /// Stop a canister: it takes no messages until started.
    pub fn stop(&self, sender: Principal, canister: Principal) -> Result<(), HostError> {
        self.run_operation(Operation::Stop { sender, canister }).map(drop)
    }

    /// Start a stopped canister.
    pub fn start(&self, sender: Principal, canister: Principal) -> Result<(), HostError> {
        self.run_operation(Operation::Start { sender, canister }).map(drop)
    }

    /// Delete a stopped canister and its snapshots.
    pub fn delete_canister(&self, sender: Principal, canister: Principal) -> Result<(), HostError> {
        self.run_operation(Operation::DeleteCanister { sender, canister }).map(drop)
    }

    /// Replace a canister's controllers.
    pub fn set_controllers(
        &self,
        sender: Principal,
        canister: Principal,
        controllers: Vec<Principal>,
    ) -> Result<(), HostError> {
        self.run_operation(Operation::SetControllers { sender, canister, controllers }).map(drop)
    }

    /// Take a snapshot of a stopped canister (replacing `replace`).
    pub fn take_snapshot(
        &self,
        sender: Principal,
        canister: Principal,
        replace: Option<u64>,
    ) -> Result<u64, HostError> {
        match self.run_operation(Operation::TakeSnapshot { sender, canister, replace })? {
            Outcome::SnapshotTaken(id) => Ok(id),
            other => Err(HostError::Operation(format!("unexpected outcome {other:?}"))),
        }
    }

    /// Restore a stopped canister from one of its snapshots.
    pub fn load_snapshot(&self, sender: Principal, canister: Principal, snapshot: u64) -> Result<(), HostError> {
        self.run_operation(Operation::LoadSnapshot { sender, canister, snapshot }).map(drop)
    }

    /// Delete one of a canister's snapshots.
    pub fn delete_snapshot(&self, sender: Principal, canister: Principal, snapshot: u64) -> Result<(), HostError> {
        self.run_operation(Operation::DeleteSnapshot { sender, canister, snapshot }).map(drop)
    }

    /// Call a method of the management canister (`aaaaa-aa`) as `sender`,
    /// with its Candid argument; returns its Candid result once the round
    /// is durable. Every method canisters can call is here too (create,
    /// install, chunked install, snapshots, status...), with the IC's
    /// types; `canister_info` is for canisters only, as on the IC.
    pub fn management_call(&self, sender: Principal, method: &str, arg: Vec<u8>) -> Result<Vec<u8>, CallError> {
        let op = Operation::Management { sender, method: method.to_string(), arg };
        if let Err(error) = self.shared.admission.check(&op) {
            return Err(refused(&error));
        }
        CallHandle { reply: self.submit(op).map_err(CallError::Unavailable), timing: None }.wait()
    }

    /// Submit an update without waiting. The canister's
    /// `canister_inspect_message` (if any) runs first, on the current state.
    pub fn submit_update(&self, canister: Principal, sender: Principal, method: &str, arg: Vec<u8>) -> CallHandle {
        let op = Operation::Update { sender, canister, method: method.to_string(), arg };
        if let Err(error) = self.shared.admission.check(&op) {
            return CallHandle::refused(refused(&error));
        }
        let submitted = Instant::now();
        let Operation::Update { arg, .. } = &op else { unreachable!("built above") };
        let view = self.view();
        if let Some(info) = view.canisters.get(&canister) {
            let admitted = if info.status == CanisterStatus::Stopped {
                Err(CanisterError::Stopped { canister })
            } else if info.state.module.as_ref().is_some_and(|m| m.info.has(EntryPoint::InspectMessage)) {
                let (executor, state, method, arg, time) = (
                    self.shared.executor.clone(),
                    info.state.clone(),
                    method.to_string(),
                    arg.clone(),
                    view.round.time,
                );
                match self
                    .shared
                    .queries
                    .run(move || canister::inspect(&executor, canister, &state, &sender, &method, &arg, time))
                {
                    Ok(admitted) => admitted,
                    Err(busy) => return CallHandle::refused(CallError::Unavailable(busy)),
                }
            } else {
                Ok(())
            };
            if let Err(error) = admitted {
                return CallHandle::refused(refused(&error));
            }
        }
        CallHandle {
            reply: self.submit(op).map_err(CallError::Unavailable),
            timing: Some((submitted, self.shared.metrics.update_seconds.clone())),
        }
    }

    /// Call an update method and wait for the reply (released only once the
    /// round holding it is durable).
    pub fn update_call(
        &self,
        canister: Principal,
        sender: Principal,
        method: &str,
        arg: Vec<u8>,
    ) -> Result<Vec<u8>, CallError> {
        self.submit_update(canister, sender, method, arg).wait()
    }
    /// Run a query on the state as of the last round, on one of the host's
    /// query threads (whatever the caller's stack). It never waits for a
    /// round and never sees one half-applied.
    pub fn query_call(
        &self,
        canister: Principal,
        sender: Principal,
        method: &str,
        arg: Vec<u8>,
    ) -> Result<Vec<u8>, CallError> {
        self.query_call_certified(canister, sender, method, arg, None)
    }

    /// [`Host::query_call`], with `certifier` making the certificate the
    /// query can read (`ic0.data_certificate_*`) of the exact state it runs
    /// on, as a query answered outside consensus can on the IC.
    pub fn query_call_certified(
        &self,
        canister: Principal,
        sender: Principal,
        method: &str,
        arg: Vec<u8>,
        certifier: Option<query::Certifier>,
    ) -> Result<Vec<u8>, CallError> {
        let started = Instant::now();
        let job = query::prepare(&self.shared.executor, &self.view(), canister, sender, method, arg, certifier)?;
        let result = self.shared.queries.run(job).map_err(CallError::Unavailable)?;
        self.shared.metrics.query_seconds.observe(seconds_since(started));
        result
    }

    fn view(&self) -> Arc<CommittedView> {
        self.shared.view()
    }

    /// A canister's status as of the last round.
    pub fn canister_info(&self, canister: Principal) -> Result<CanisterInfo, HostError> {
        let view = self.view();
        let info = view
            .canisters
            .get(&canister)
            .ok_or_else(|| HostError::Operation(CanisterError::NotFound(canister).to_string()))?;
        Ok(info.as_ref().clone())
    }

    /// Every canister, as of the last round.
    pub fn canisters(&self) -> Vec<CanisterInfo> {
        self.view().canisters.values().map(|c| c.as_ref().clone()).collect()
    }

    /// The canister a user means: its textual id or its name.
    pub fn resolve(&self, name_or_id: &str) -> Option<Principal> {
        self.view().resolve(name_or_id)
    }

    /// The last committed round.
    pub fn height(&self) -> LastRound {
        self.view().round
    }

    /// Work done since open.
    pub fn counters(&self) -> HostCounters {
        HostCounters {
            rounds: self.shared.metrics.rounds.get(),
            messages: self.shared.metrics.messages.get(),
            dirty_pages: self.shared.metrics.dirty_pages.get(),
            checkpoints: self.shared.metrics.checkpoints.get(),
            memory_trim_requests: self.shared.metrics.memory_trim_requests.get(),
            memory_trims: self.shared.metrics.memory_trims.get(),
        }
    }

    /// Every metric (work done, durations, latencies, sizes as of now), for
    /// a Prometheus exporter to encode.
    pub fn gather_metrics(&self) -> Vec<prometheus::proto::MetricFamily> {
        self.shared.metrics.gather(&self.view())
    }

    /// Run `f` on the scheduler's state between rounds.
    fn read<T: Send + 'static>(&self, f: impl FnOnce(&Scheduler) -> T + Send + 'static) -> Result<T, HostError> {
        let (tx, rx) = crossbeam_channel::bounded(1);
        self.send(Command::Read(Box::new(move |s| {
            let _ = tx.send(f(s));
        })))
        .map_err(HostError::Stopped)?;
        rx.recv().map_err(|_| HostError::Stopped("the scheduler stopped".into()))
    }

    /// A canister's log, oldest first.
    pub fn canister_log(&self, canister: Principal) -> Result<Vec<CanisterLogRecord>, HostError> {
        self.read(move |s| s.registry.get(&canister).map(|c| c.canister_log().cloned().collect::<Vec<_>>()))?
            .map_err(|e| HostError::Operation(e.to_string()))
    }

    /// A digest of the whole state: equal for two hosts exactly when their
    /// states are.
    pub fn state_digest(&self) -> Result<Hash, HostError> {
        self.read(|s| round::state_digest(&s.registry))
    }

    /// Take a checkpoint now; returns its height.
    pub fn checkpoint(&self) -> Result<u64, HostError> {
        let (tx, rx) = crossbeam_channel::bounded(1);
        self.send(Command::Checkpoint(tx)).map_err(HostError::Stopped)?;
        rx.recv().map_err(|_| HostError::Stopped("the scheduler stopped".into()))?.map_err(HostError::Operation)
    }

    /// Seal the log's active segment between rounds, if it holds a
    /// record, so everything logged so far is in sealed segments (which
    /// shipping copies); returns whether one was sealed.
    pub fn seal_log(&self) -> Result<bool, HostError> {
        self.log_sealer().seal()
    }

    /// A handle sealing the log from another thread (a shipper's) that
    /// does not keep the host open: once the host closes it only fails.
    pub fn log_sealer(&self) -> LogSealer {
        LogSealer { commands: self.commands.as_ref().map_or_else(Weak::new, Arc::downgrade) }
    }

    /// Finish pending work, take a checkpoint and stop.
    pub fn close(mut self) -> Result<(), HostError> {
        let (tx, rx) = crossbeam_channel::bounded(1);
        self.send(Command::Close(tx)).map_err(HostError::Stopped)?;
        let result = rx.recv().map_err(|_| HostError::Stopped("the scheduler stopped".into()))?;
        self.shutdown();
        result.map_err(HostError::Operation)
    }

    fn shutdown(&mut self) {
        self.commands = None;
        if let Some(thread) = self.scheduler.take() {
            let _ = thread.join();
        }
    }
}

/// Seals a host's log ([`Host::log_sealer`]).
#[derive(Clone)]
pub struct LogSealer {
    commands: Weak<Sender<Command>>,
}

impl LogSealer {
    /// [`Host::seal_log`], or an error once the host has closed.
    pub fn seal(&self) -> Result<bool, HostError> {
        let (tx, rx) = crossbeam_channel::bounded(1);
        let commands = self.commands.upgrade().ok_or_else(|| HostError::Stopped("the host is closed".into()))?;
        let sent = commands.send(Command::SealLog(tx));
        // Not held while waiting: the host may be closing.
        drop(commands);
        sent.map_err(|_| HostError::Stopped("the host's scheduler has stopped".into()))?;
        rx.recv().map_err(|_| HostError::Stopped("the scheduler stopped".into()))?.map_err(HostError::Operation)
    }
}

impl Drop for Host {
    /// Without `close`: stop after the current round, with no checkpoint (as
    /// if the process had died; the log has every acknowledged round).
    fn drop(&mut self) {
        self.shutdown();
    }
}
