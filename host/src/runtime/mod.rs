//! The host runtime: a [`Host`] owns a state directory and runs canisters in
//! rounds.
//!
//! ```text
//! callers -> commands -> scheduler thread: gather a round's operations
//!            -> execute (canisters in parallel on the worker pool)
//!            -> append the round to the log and fsync it (group commit)
//!            -> publish the new state to queries, release the replies
//!            -> every N rounds: checkpoint, remap memories, prune
//! queries  -> the last published state (an O(1) snapshot), on the caller's
//!             thread, never waiting for a round
//! open     -> newest checkpoint that verifies -> replay the log after it
//! ```

pub mod log;
mod persist;
pub mod round;
mod verify;

use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex, RwLock};
use std::thread::JoinHandle;
use std::time::{Duration, SystemTime};

use candid::Principal;
use checkpoint::{StateDir, Verification};
use crossbeam_channel::{Receiver, RecvTimeoutError, Sender};
use rpds::HashTrieMapSync;

use crate::canister::{CanisterError, CanisterStatus, InstallMode, LogRecord};
use crate::engine::{Engine, EngineError};
use crate::execution::{Call, CanisterState, ExecutionConfig, Executor, Target};
use crate::module::{MethodKind, ModuleError};
use crate::registry::Registry;
use log::{LogError, MessageLog};
use persist::{HostMeta, ModuleFiles};
use round::{Hash, Operation, Outcome, RoundRecord, WorkerPool};
pub use verify::{Divergence, VerifyOptions, VerifyProgress, VerifyReport, verify};

/// Where round times come from. Either way the time is recorded in the log,
/// so replay reproduces it.
#[derive(Copy, Clone, Debug, PartialEq, Eq)]
pub enum TimeSource {
    /// The wall clock, kept strictly increasing (at least 1 ns per round).
    WallClock,
    /// `start`, then `step` nanoseconds more each round: for tests.
    Deterministic { start: u64, step: u64 },
}

/// How a host runs. The defaults suit production.
#[derive(Clone, Debug)]
pub struct HostConfig {
    pub execution: ExecutionConfig,
    /// Worker threads executing canisters (default: the number of cores).
    pub workers: usize,
    /// Rounds between checkpoints.
    pub checkpoint_interval: u64,
    /// Checkpoints kept; older ones are pruned, with the log before them.
    pub keep_checkpoints: usize,
    /// Sync each round's log record before replying. Off only for
    /// benchmarks: without it, acknowledged work can be lost in a crash.
    pub fsync: bool,
    pub log_segment_bytes: u64,
    /// Most operations in one round.
    pub max_round_operations: usize,
    pub time: TimeSource,
    /// With no messages, how often to look for due timers and heartbeats
    /// (wall-clock time only).
    pub idle_round_interval: Duration,
    /// How thoroughly the checkpoint is checked at open.
    pub verification: Verification,
}

impl Default for HostConfig {
    fn default() -> Self {
        HostConfig {
            execution: ExecutionConfig::default(),
            workers: std::thread::available_parallelism().map_or(1, |n| n.get()),
            checkpoint_interval: 100,
            keep_checkpoints: 3,
            fsync: true,
            log_segment_bytes: 64 << 20,
            max_round_operations: 10_000,
            time: TimeSource::WallClock,
            idle_round_interval: Duration::from_millis(100),
            verification: Verification::Full,
        }
    }
}

#[derive(Debug, thiserror::Error)]
pub enum HostError {
    #[error(transparent)]
    Checkpoint(#[from] checkpoint::Error),
    #[error(transparent)]
    Log(#[from] LogError),
    #[error("checkpoint {height:016x}: {what}: {reason}")]
    CorruptCheckpoint { height: u64, what: String, reason: String },
    #[error("a canister module in the checkpoint is invalid: {0}")]
    Module(#[from] ModuleError),
    #[error(transparent)]
    Engine(#[from] EngineError),
    #[error("message log record {height} cannot be decoded: {reason}")]
    BadRecord { height: u64, reason: String },
    #[error("the message log has no record for round {missing}, which recovery from checkpoint {checkpoint} needs")]
    LogGap { checkpoint: u64, missing: u64 },
    #[error(
        "replaying round {height} gave different results than the log records ({}recorded {recorded}, replayed \
         {replayed}); this engine does not reproduce the history, so the host will not start",
        .canister.map(|c| format!("canister {c}: ")).unwrap_or_default()
    )]
    ReplayDiverged { height: u64, canister: Option<Principal>, recorded: String, replayed: String },
    #[error("{0}")]
    Operation(String),
    #[error("the host has stopped: {0}")]
    Stopped(String),
}

/// Why a call produced no reply.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
pub enum CallError {
    #[error("the canister rejected the call: {0}")]
    Rejected(String),
    #[error("{0}")]
    Failed(String),
    #[error("the host has stopped: {0}")]
    Unavailable(String),
}

fn call_result(outcome: Outcome) -> Result<Vec<u8>, CallError> {
    match outcome {
        Outcome::Reply(bytes) => Ok(bytes),
        Outcome::Reject(message) => Err(CallError::Rejected(message)),
        Outcome::Error(message) => Err(CallError::Failed(message)),
        other => Err(CallError::Failed(format!("unexpected outcome {other:?}"))),
    }
}

/// What queries and status requests see of a canister: its state as of the
/// last round.
#[derive(Clone, Debug)]
pub struct CanisterInfo {
    pub id: Principal,
    pub name: Option<String>,
    pub status: CanisterStatus,
    pub controllers: Vec<Principal>,
    pub version: u64,
    pub state: CanisterState,
    /// Snapshot ids, when each was taken, and its size in bytes.
    pub snapshots: Vec<(u64, u64, u64)>,
}

impl CanisterInfo {
    pub fn module_hash(&self) -> Option<[u8; 32]> {
        self.state.module.as_ref().map(|m| m.hash)
    }

    /// The canister's methods and how to call them.
    pub fn methods(&self) -> Vec<(String, MethodKind)> {
        self.state
            .module
            .as_ref()
            .map_or_else(Vec::new, |m| m.info.methods.iter().map(|(n, k)| (n.clone(), *k)).collect())
    }
}

/// The committed state queries run on, replaced after every round.
#[derive(Clone)]
struct View {
    height: u64,
    time: u64,
    canisters: HashTrieMapSync<Principal, Arc<CanisterInfo>>,
}

struct Shared {
    executor: Arc<Executor>,
    view: RwLock<Arc<View>>,
    /// Set if the scheduler stopped on an error it cannot recover from.
    failure: Mutex<Option<String>>,
    /// Rounds and update messages executed since open (for benchmarks).
    rounds: AtomicU64,
    messages: AtomicU64,
}

type Reader = Box<dyn FnOnce(&Scheduler) + Send>;

enum Command {
    Operation(Operation, Sender<Outcome>),
    Checkpoint(Sender<Result<u64, String>>),
    Read(Reader),
    Close(Sender<Result<(), String>>),
}

/// A submitted update, to wait for.
pub struct CallHandle {
    reply: Result<Receiver<Outcome>, CallError>,
}

impl CallHandle {
    /// Whether the reply is ready (`wait` would not block).
    pub fn is_ready(&self) -> bool {
        self.reply.as_ref().map_or(true, |rx| !rx.is_empty())
    }

    /// Block until the round holding the call is durable, then return its
    /// reply.
    pub fn wait(self) -> Result<Vec<u8>, CallError> {
        let rx = self.reply?;
        match rx.recv() {
            Ok(outcome) => call_result(outcome),
            Err(_) => Err(CallError::Unavailable("the host stopped before the call completed".into())),
        }
    }
}

/// A running host.
pub struct Host {
    shared: Arc<Shared>,
    commands: Option<Sender<Command>>,
    scheduler: Option<JoinHandle<()>>,
    recovered: RecoveryReport,
}

/// What `Host::open` found and did.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct RecoveryReport {
    /// The checkpoint loaded (0: none).
    pub checkpoint: u64,
    /// Newer checkpoints that failed verification and were skipped.
    pub skipped_checkpoints: Vec<u64>,
    /// Log rounds replayed after it.
    pub replayed_rounds: u64,
    /// Bytes of a torn log tail that were cut off.
    pub truncated_log_bytes: u64,
}

impl Host {
    /// Open the state directory at `path` (creating it if needed), recover
    /// the newest state, and start running.
    pub fn open(path: &std::path::Path, config: HostConfig) -> Result<Host, HostError> {
        let engine = Arc::new(Engine::new()?);
        let executor = Arc::new(Executor::new(engine, config.execution.clone()));
        let dir = StateDir::open(path)?;
        let mut report = RecoveryReport::default();
        let (mut registry, meta, modules) = match dir.newest(config.verification)? {
            Some(loaded) => {
                for (height, error) in &loaded.skipped {
                    tracing::warn!(height, %error, "a checkpoint failed verification; falling back to an older one");
                    report.skipped_checkpoints.push(*height);
                }
                persist::load(&loaded.checkpoint, &executor, &Default::default())?
            }
            None => (
                Registry::default(),
                HostMeta { format: 1, height: 0, time: 0, next_canister_index: 0 },
                ModuleFiles::default(),
            ),
        };
        report.checkpoint = meta.height;
        let (mut log, recovered) = MessageLog::open(&dir.log_dir(), config.fsync, config.log_segment_bytes)?;
        report.truncated_log_bytes = recovered.truncated.as_ref().map_or(0, |(_, n)| *n);
        let pool = WorkerPool::new(config.workers, executor.clone(), Arc::default());
        let (mut height, mut time) = (meta.height, meta.time);
        for record in recovered.records.iter().filter(|r| r.height > meta.height) {
            if record.height != height + 1 {
                return Err(HostError::LogGap { checkpoint: meta.height, missing: height + 1 });
            }
            let round = decode(&log, record)?;
            (height, time) = (round.height, round.time);
            replay(&pool, &mut registry, round)?;
            report.replayed_rounds += 1;
        }
        log.continue_after(height);
        if report.replayed_rounds > 0 || !report.skipped_checkpoints.is_empty() {
            tracing::info!(checkpoint = meta.height, replayed = report.replayed_rounds, "recovered from the log");
        }
        let shared = Arc::new(Shared {
            executor,
            view: RwLock::new(Arc::new(View { height, time, canisters: HashTrieMapSync::new_sync() })),
            failure: Mutex::new(None),
            rounds: AtomicU64::new(0),
            messages: AtomicU64::new(0),
        });
        let (tx, rx) = crossbeam_channel::unbounded();
        let scheduler = Scheduler {
            config,
            dir,
            log,
            registry,
            pool,
            height,
            time,
            checkpointed: meta.height,
            modules,
            shared: shared.clone(),
        };
        let ids: Vec<Principal> = scheduler.registry.iter().map(|r| r.id()).collect();
        scheduler.publish(ids);
        let thread = std::thread::Builder::new()
            .name("canister-host-scheduler".into())
            .spawn(move || scheduler.run(rx))
            .map_err(|e| HostError::Stopped(format!("cannot start the scheduler thread: {e}")))?;
        Ok(Host { shared, commands: Some(tx), scheduler: Some(thread), recovered: report })
    }

    /// What opening found.
    pub fn recovery(&self) -> &RecoveryReport {
        &self.recovered
    }

    fn send(&self, command: Command) -> Result<(), String> {
        if let Some(failure) = self.shared.failure.lock().unwrap_or_else(|e| e.into_inner()).clone() {
            return Err(failure);
        }
        let commands = self.commands.as_ref().ok_or("the host is closed")?;
        commands.send(command).map_err(|_| "the host's scheduler has stopped".to_string())
    }

    /// Submit an operation; the receiver yields its outcome once the round
    /// holding it is durable.
    fn submit(&self, op: Operation) -> Result<Receiver<Outcome>, String> {
        let (tx, rx) = crossbeam_channel::bounded(1);
        self.send(Command::Operation(op, tx))?;
        Ok(rx)
    }

    fn run_operation(&self, op: Operation) -> Result<Outcome, HostError> {
        let rx = self.submit(op).map_err(HostError::Stopped)?;
        match rx.recv() {
            Ok(Outcome::Error(message)) => Err(HostError::Operation(message)),
            Ok(outcome) => Ok(outcome),
            Err(_) => Err(HostError::Stopped(self.failure().unwrap_or_else(|| "the scheduler stopped".into()))),
        }
    }

    fn failure(&self) -> Option<String> {
        self.shared.failure.lock().unwrap_or_else(|e| e.into_inner()).clone()
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

    pub fn install_code(
        &self,
        sender: Principal,
        canister: Principal,
        mode: InstallMode,
        wasm: Vec<u8>,
        arg: Vec<u8>,
    ) -> Result<(), HostError> {
        self.run_operation(Operation::InstallCode { sender, canister, mode, wasm, arg }).map(drop)
    }

    pub fn uninstall(&self, sender: Principal, canister: Principal) -> Result<(), HostError> {
        self.run_operation(Operation::Uninstall { sender, canister }).map(drop)
    }

    pub fn stop(&self, sender: Principal, canister: Principal) -> Result<(), HostError> {
        self.run_operation(Operation::Stop { sender, canister }).map(drop)
    }

    pub fn start(&self, sender: Principal, canister: Principal) -> Result<(), HostError> {
        self.run_operation(Operation::Start { sender, canister }).map(drop)
    }

    pub fn delete_canister(&self, sender: Principal, canister: Principal) -> Result<(), HostError> {
        self.run_operation(Operation::DeleteCanister { sender, canister }).map(drop)
    }

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

    pub fn load_snapshot(&self, sender: Principal, canister: Principal, snapshot: u64) -> Result<(), HostError> {
        self.run_operation(Operation::LoadSnapshot { sender, canister, snapshot }).map(drop)
    }

    pub fn delete_snapshot(&self, sender: Principal, canister: Principal, snapshot: u64) -> Result<(), HostError> {
        self.run_operation(Operation::DeleteSnapshot { sender, canister, snapshot }).map(drop)
    }

    /// Submit an update without waiting. The canister's
    /// `canister_inspect_message` (if any) runs first, on the current state.
    pub fn submit_update(&self, canister: Principal, sender: Principal, method: &str, arg: Vec<u8>) -> CallHandle {
        let view = self.view();
        if let Some(info) = view.canisters.get(&canister) {
            let refused = if info.status == CanisterStatus::Stopped {
                Err(CanisterError::Stopped { canister })
            } else {
                crate::canister::inspect(&self.shared.executor, canister, &info.state, &sender, method, &arg, view.time)
            };
            if let Err(error) = refused {
                return CallHandle { reply: Err(CallError::Failed(error.to_string())) };
            }
        }
        let op = Operation::Update { sender, canister, method: method.to_string(), arg };
        CallHandle { reply: self.submit(op).map_err(CallError::Unavailable) }
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

    /// Run a query on the state as of the last round, on this thread. It
    /// never waits for a round and never sees one half-applied.
    pub fn query_call(
        &self,
        canister: Principal,
        sender: Principal,
        method: &str,
        arg: Vec<u8>,
    ) -> Result<Vec<u8>, CallError> {
        let view = self.view();
        let info = view
            .canisters
            .get(&canister)
            .ok_or_else(|| CallError::Failed(CanisterError::NotFound(canister).to_string()))?;
        if info.status == CanisterStatus::Stopped {
            return Err(CallError::Failed(CanisterError::Stopped { canister }.to_string()));
        }
        let call = Call {
            target: Target::Method { name: method, kind: MethodKind::Query },
            arg: &arg,
            caller: sender.as_slice(),
            time: view.time,
        };
        call_result(Outcome::from(&self.shared.executor.query(&info.state, call)))
    }

    fn view(&self) -> Arc<View> {
        self.shared.view.read().unwrap_or_else(|e| e.into_inner()).clone()
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
        let view = self.view();
        if let Ok(id) = Principal::from_text(name_or_id)
            && view.canisters.contains_key(&id)
        {
            return Some(id);
        }
        view.canisters.values().find(|c| c.name.as_deref() == Some(name_or_id)).map(|c| c.id)
    }

    /// Height and time of the last round.
    pub fn height(&self) -> (u64, u64) {
        let view = self.view();
        (view.height, view.time)
    }

    /// Rounds and update messages executed since open.
    pub fn counters(&self) -> (u64, u64) {
        (self.shared.rounds.load(Ordering::Relaxed), self.shared.messages.load(Ordering::Relaxed))
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
    pub fn canister_log(&self, canister: Principal) -> Result<Vec<LogRecord>, HostError> {
        self.read(move |s| s.registry.get(&canister).map(|r| r.log().cloned().collect::<Vec<_>>()))?
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

impl Drop for Host {
    /// Without `close`: stop after the current round, with no checkpoint (as
    /// if the process had died; the log has every acknowledged round).
    fn drop(&mut self) {
        self.shutdown();
    }
}

fn decode(log: &MessageLog, record: &log::RecordRef) -> Result<RoundRecord, HostError> {
    let body = log.read(record)?;
    let round = RoundRecord::decode(&body).map_err(|reason| HostError::BadRecord { height: record.height, reason })?;
    if round.height != record.height {
        let reason = format!("it holds round {}", round.height);
        return Err(HostError::BadRecord { height: record.height, reason });
    }
    Ok(round)
}

fn hex(bytes: &[u8]) -> String {
    bytes.iter().map(|b| format!("{b:02x}")).collect()
}

/// The first difference between recorded and replayed digests.
fn divergence(round: &RoundRecord, replayed: &round::RoundResult) -> Option<(Option<Principal>, String, String)> {
    if round.digest == replayed.digest {
        return None;
    }
    for (id, recorded) in &round.canister_digests {
        let replayed = replayed.canister_digests.iter().find(|(c, _)| c == id).map(|(_, d)| hex(d)).unwrap_or_default();
        if hex(recorded) != replayed {
            return Some((Some(*id), hex(recorded), replayed));
        }
    }
    Some((None, hex(&round.digest), hex(&replayed.digest)))
}

/// Re-execute a logged round, insisting on the recorded results.
fn replay(pool: &WorkerPool, registry: &mut Registry, mut round: RoundRecord) -> Result<(), HostError> {
    let ops: Vec<Arc<Operation>> = std::mem::take(&mut round.operations).into_iter().map(Arc::new).collect();
    let result = pool.execute(registry, round.height, round.time, &ops);
    match divergence(&round, &result) {
        None => Ok(()),
        Some((canister, recorded, replayed)) => {
            Err(HostError::ReplayDiverged { height: round.height, canister, recorded, replayed })
        }
    }
}

/// The scheduler thread's state.
struct Scheduler {
    config: HostConfig,
    dir: StateDir,
    log: MessageLog,
    registry: Registry,
    pool: WorkerPool,
    height: u64,
    time: u64,
    /// Height of the newest checkpoint.
    checkpointed: u64,
    modules: ModuleFiles,
    shared: Arc<Shared>,
}

impl Scheduler {
    fn run(mut self, commands: Receiver<Command>) {
        loop {
            let first = match commands.recv_timeout(self.config.idle_round_interval) {
                Ok(command) => command,
                Err(RecvTimeoutError::Timeout) => {
                    if let Err(error) = self.idle_round() {
                        self.fail(error);
                        return;
                    }
                    continue;
                }
                Err(RecvTimeoutError::Disconnected) => return,
            };
            // Gather a round: operations until a control command or the
            // round is full.
            let mut ops = Vec::new();
            let mut control = None;
            let mut next = Some(first);
            while let Some(command) = next.take() {
                match command {
                    Command::Operation(op, reply) => ops.push((op, reply)),
                    other => {
                        control = Some(other);
                        break;
                    }
                }
                if ops.len() < self.config.max_round_operations {
                    next = commands.try_recv().ok();
                }
            }
            if !ops.is_empty()
                && let Err(error) = self.round(ops)
            {
                self.fail(error);
                return;
            }
            match control {
                Some(Command::Checkpoint(reply)) => {
                    let _ = reply.send(self.checkpoint().map_err(|e| e.to_string()));
                }
                Some(Command::Read(f)) => f(&self),
                Some(Command::Close(reply)) => {
                    let result = if self.height > self.checkpointed { self.checkpoint().map(drop) } else { Ok(()) };
                    let _ = reply.send(result.map_err(|e| e.to_string()));
                    return;
                }
                Some(Command::Operation(..)) | None => {}
            }
        }
    }

    /// Stop accepting work after an error the host cannot continue from.
    fn fail(&self, error: HostError) {
        tracing::error!(%error, "the host stopped");
        *self.shared.failure.lock().unwrap_or_else(|e| e.into_inner()) = Some(error.to_string());
    }

    fn next_time(&self) -> u64 {
        match self.config.time {
            TimeSource::WallClock => {
                let now = SystemTime::now().duration_since(SystemTime::UNIX_EPOCH).map_or(0, |d| d.as_nanos() as u64);
                now.max(self.time + 1)
            }
            TimeSource::Deterministic { start, step } => {
                if self.height == 0 {
                    start
                } else {
                    self.time + step
                }
            }
        }
    }

    /// With no messages: a round only if some canister has a due timer or
    /// a heartbeat (wall-clock time only; deterministic time stands still
    /// without messages).
    fn idle_round(&mut self) -> Result<(), HostError> {
        if self.config.time != TimeSource::WallClock {
            return Ok(());
        }
        let time = self.next_time();
        if self.registry.iter().any(|r| r.has_system_task(time)) {
            self.round(Vec::new())?;
        }
        Ok(())
    }

    fn round(&mut self, ops: Vec<(Operation, Sender<Outcome>)>) -> Result<(), HostError> {
        let height = self.height + 1;
        let time = self.next_time();
        let (operations, replies): (Vec<Operation>, Vec<Sender<Outcome>>) = ops.into_iter().unzip();
        let shared_ops: Vec<Arc<Operation>> = operations.into_iter().map(Arc::new).collect();
        let result = self.pool.execute(&mut self.registry, height, time, &shared_ops);
        // The workers have dropped their references: take the operations
        // back for the record instead of copying arguments and modules.
        let operations =
            shared_ops.into_iter().map(|op| Arc::try_unwrap(op).unwrap_or_else(|op| (*op).clone())).collect();
        let record = RoundRecord {
            height,
            time,
            operations,
            digest: result.digest.to_vec(),
            canister_digests: result.canister_digests.iter().map(|(id, d)| (*id, d.to_vec())).collect(),
        };
        // Group commit: the round is durable before anyone hears of it. If
        // that fails, the state in memory is ahead of the log: stop.
        self.log.append(height, &record.encode())?;
        self.height = height;
        self.time = time;
        self.shared.rounds.fetch_add(1, Ordering::Relaxed);
        self.shared.messages.fetch_add(result.messages as u64, Ordering::Relaxed);
        self.publish(result.touched.iter().copied());
        for (reply, outcome) in replies.into_iter().zip(result.outcomes) {
            let _ = reply.send(outcome);
        }
        if self.height - self.checkpointed >= self.config.checkpoint_interval
            && let Err(error) = self.checkpoint()
        {
            // The log still holds every round; the next attempt may succeed.
            tracing::error!(%error, "checkpoint failed; keeping the previous one");
        }
        Ok(())
    }

    /// Make the canisters `touched` (and the height) visible to queries.
    fn publish(&self, touched: impl IntoIterator<Item = Principal>) {
        let mut view = self.shared.view.read().unwrap_or_else(|e| e.into_inner()).as_ref().clone();
        view.height = self.height;
        view.time = self.time;
        for id in touched {
            match self.registry.get(&id) {
                Ok(record) => {
                    let info = CanisterInfo {
                        id,
                        name: record.name().map(str::to_string),
                        status: record.status(),
                        controllers: record.controllers().to_vec(),
                        version: record.version(),
                        state: record.state().clone(),
                        snapshots: record.snapshots().map(|s| (s.id, s.taken_at, s.state.size_bytes())).collect(),
                    };
                    view.canisters.insert_mut(id, Arc::new(info));
                }
                Err(_) => {
                    view.canisters.remove_mut(&id);
                }
            }
        }
        *self.shared.view.write().unwrap_or_else(|e| e.into_inner()) = Arc::new(view);
    }

    fn checkpoint(&mut self) -> Result<u64, HostError> {
        if self.height == self.checkpointed && self.dir.heights()?.last() == Some(&self.height) {
            return Ok(self.height);
        }
        let meta = HostMeta {
            format: 1,
            height: self.height,
            time: self.time,
            next_canister_index: self.registry.next_index(),
        };
        let (checkpoint, modules) = persist::save(&self.dir, &self.registry, &meta, &self.modules)?;
        persist::remap(&mut self.registry, &checkpoint)?;
        self.modules = modules;
        self.checkpointed = self.height;
        self.dir.prune(self.config.keep_checkpoints.max(1))?;
        if let Some(&oldest) = self.dir.heights()?.first() {
            self.log.prune_through(oldest)?;
        }
        let ids: Vec<Principal> = self.registry.iter().map(|r| r.id()).collect();
        self.publish(ids);
        Ok(self.height)
    }
}
