//! The scheduler thread: it gathers operations into rounds, runs them on
//! the worker pool, makes each durable in the write-ahead log before anyone
//! hears of it, publishes the committed view, and checkpoints every N
//! rounds.

use std::collections::HashMap;
use std::panic::{AssertUnwindSafe, catch_unwind};
use std::sync::{Arc, Mutex, RwLock};
use std::time::{Duration, Instant, SystemTime};

use candid::Principal;
use checkpoint::StateDir;
use crossbeam_channel::{Receiver, RecvTimeoutError, Sender, TryRecvError};
use embedder::Executor;

use crate::admission::Admission;
use crate::canister::Origin;
use crate::checkpointer::{CheckpointOutcome, InFlight};
use crate::config::{HostConfig, TimeSource};
use crate::error::HostError;
use crate::metrics::{HostMetrics, seconds_since};
use crate::persist::{self, HostMeta, Published, StateCopy};
use crate::query_pool::QueryPool;
use crate::reclaim::Reclaimer;
use crate::recovery::RecoveredState;
use crate::registry::Registry;
use crate::round::{NotApplied, Operation, Outcome, RoundRecord, WorkerPool};
use crate::view::{CommittedView, LastRound};
use crate::wal::Wal;

/// What the host's handle and the scheduler thread share.
pub(crate) struct Shared {
    pub(crate) executor: Arc<Executor>,
    /// What requests are checked against before they are submitted.
    pub(crate) admission: Admission,
    /// Where queries and inspect_message run.
    pub(crate) queries: QueryPool,
    /// What queries see; replaced after every round.
    pub(crate) view: RwLock<Arc<CommittedView>>,
    /// Set if the scheduler stopped on an error it cannot recover from.
    pub(crate) failure: Mutex<Option<String>>,
    /// Work done, durations and sizes.
    pub(crate) metrics: HostMetrics,
}

impl Shared {
    /// The view queries run on.
    pub(crate) fn view(&self) -> Arc<CommittedView> {
        self.view.read().unwrap_or_else(|e| e.into_inner()).clone()
    }

    /// Why the scheduler stopped, if it did.
    pub(crate) fn failure(&self) -> Option<String> {
        self.failure.lock().unwrap_or_else(|e| e.into_inner()).clone()
    }
}

/// What an operation's caller hears: its outcome, or that the round
/// holding it was not applied.
pub(crate) type Reply = Result<Outcome, NotApplied>;

/// A function run on the scheduler's state between rounds.
pub(crate) type Reader = Box<dyn FnOnce(&Scheduler) + Send>;

/// What the host's handle asks of the scheduler.
pub(crate) enum Command {
    /// Run an operation in the next round; its outcome goes to the sender.
    Operation(Operation, Sender<Reply>),
    /// Take a checkpoint now.
    Checkpoint(Sender<Result<u64, String>>),
    /// Read the state between rounds.
    Read(Reader),
    /// Seal the log's active segment, if it holds any record.
    SealLog(Sender<Result<bool, String>>),
    /// Finish, checkpoint and stop.
    Close(Sender<Result<(), String>>),
}

/// The scheduler thread's state.
pub(crate) struct Scheduler {
    config: HostConfig,
    dir: Arc<StateDir>,
    wal: Wal,
    pub(crate) registry: Registry,
    pool: WorkerPool,
    round: LastRound,
    /// Height of the newest checkpoint.
    checkpointed: u64,
    /// Height of the newest checkpoint started (written or being written).
    checkpoint_started: u64,
    /// The checkpoint being written beside rounds, if any.
    in_flight: Option<InFlight>,
    /// The newest checkpoint's files the next one can link.
    published: Arc<Published>,
    shared: Arc<Shared>,
    /// Reply channels of operations still pending (behind or as a long
    /// message), by where they arrived.
    pending: HashMap<Origin, Sender<Reply>>,
    /// Trims the allocator after memory was freed in bulk.
    reclaimer: Reclaimer,
}

impl Scheduler {
    /// A scheduler continuing from `recovered`; it publishes the view at once.
    pub(crate) fn new(
        config: HostConfig,
        dir: StateDir,
        recovered: RecoveredState,
        shared: Arc<Shared>,
        reclaimer: Reclaimer,
    ) -> Scheduler {
        let RecoveredState { registry, published, wal, pool, round, checkpointed, .. } = recovered;
        let pending = HashMap::new();
        let scheduler = Scheduler {
            config,
            dir: Arc::new(dir),
            wal,
            registry,
            pool,
            round,
            checkpointed,
            checkpoint_started: checkpointed,
            in_flight: None,
            published: Arc::new(published),
            shared,
            pending,
            reclaimer,
        };
        scheduler.publish_all();
        scheduler
    }

    /// Run until closed, disconnected, or stopped by an error.
    pub(crate) fn run(mut self, commands: Receiver<Command>) {
        // An operation that did not fit the last round opens the next.
        let mut carried: Option<Command> = None;
        loop {
            self.poll_checkpoint();
            // Unfinished work (a long message) needs rounds at once.
            let wait = if self.registry.iter().any(|c| c.is_busy()) {
                Duration::ZERO
            } else {
                self.config.idle_round_interval
            };
            let next = match carried.take() {
                Some(command) => Ok(Some(command)),
                None => self.next_command(&commands, wait),
            };
            let first = match next {
                Ok(Some(command)) => command,
                // A checkpoint finished: it was taken in; look again.
                Ok(None) => continue,
                Err(RecvTimeoutError::Timeout) => {
                    if let Err(error) = self.idle_round() {
                        self.fail(error);
                        return;
                    }
                    continue;
                }
                Err(RecvTimeoutError::Disconnected) => return,
            };
            // Gather a round: operations until a control command, or until
            // the round is full by count or by bytes.
            let mut ops = Vec::new();
            let mut bytes = 0;
            let mut control = None;
            let mut next = Some(first);
            while let Some(command) = next.take() {
                match command {
                    Command::Operation(op, reply) => {
                        let size = op.size_bytes();
                        if !ops.is_empty() && bytes + size > self.config.max_round_bytes {
                            carried = Some(Command::Operation(op, reply));
                            break;
                        }
                        bytes += size;
                        ops.push((op, reply));
                    }
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
                    let _ = reply.send(self.checkpoint_now().map_err(|e| e.to_string()));
                }
                Some(Command::Read(f)) => f(&self),
                Some(Command::SealLog(reply)) => {
                    let _ = reply.send(self.wal.seal().map_err(|e| e.to_string()));
                }
                Some(Command::Close(reply)) => {
                    let result = match self.wait_for_checkpoint() {
                        Ok(()) if self.round.height > self.checkpointed => self.checkpoint_now().map(drop),
                        other => other,
                    };
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
                now.max(self.round.time + 1)
            }
            TimeSource::Deterministic { start, step } => {
                if self.round.height == 0 {
                    start
                } else {
                    self.round.time + step
                }
            }
        }
    }

    /// With no messages: a round only if some canister has a due timer or
    /// a heartbeat (wall-clock time only; deterministic time stands still
    /// without messages).
    fn idle_round(&mut self) -> Result<(), HostError> {
        if self.registry.iter().any(|c| c.is_busy()) {
            return self.round(Vec::new());
        }
        if self.config.time != TimeSource::WallClock {
            return Ok(());
        }
        let time = self.next_time();
        if self.registry.iter().any(|r| r.has_system_task(time)) {
            self.round(Vec::new())?;
        }
        Ok(())
    }

    /// Run a round of `ops`. If the host fails while running it (a resource
    /// ran out, or a bug), the round is not applied: the operations of the
    /// canister at fault are refused and the rest run again; if that fails
    /// too, they are all refused. Nothing refused is logged, so replay never
    /// sees it.
    fn round(&mut self, ops: Vec<(Operation, Sender<Reply>)>) -> Result<(), HostError> {
        // Deleting, uninstalling or replacing code frees a canister's
        // memory (canisters can delete others through the management
        // canister too, hence the count).
        let (canisters, frees) = (self.registry.len(), ops.iter().any(|(op, _)| !op.is_update()));
        let result = self.round_of(ops);
        if frees || self.registry.len() < canisters {
            self.reclaimer.nudge();
        }
        result
    }

    /// [`Scheduler::round`], with the failing canister's operations
    /// refused and the rest retried when an attempt was not applied.
    fn round_of(&mut self, ops: Vec<(Operation, Sender<Reply>)>) -> Result<(), HostError> {
        let mut batch = ops;
        let mut last_failure = None;
        for _attempt in 0..2 {
            let (failure, rest) = match self.try_round(batch)? {
                None => return Ok(()),
                Some(not_applied) => not_applied,
            };
            tracing::warn!(%failure, "a round was not applied; refusing the failing canister's operations");
            let (refused, others): (Vec<_>, Vec<_>) =
                rest.into_iter().partition(|(op, _)| op.canister() == Some(failure.canister));
            for (_, reply) in refused {
                let _ = reply.send(Err(failure.clone()));
            }
            batch = others;
            last_failure = Some(failure);
            if batch.is_empty() {
                return Ok(());
            }
        }
        let failure = last_failure.expect("a failed attempt recorded its failure");
        for (_, reply) in batch {
            let _ = reply.send(Err(failure.clone()));
        }
        Ok(())
    }

    /// One attempt at a round. `Some` if it was not applied, with the
    /// operations and their reply channels handed back.
    #[allow(clippy::type_complexity)] // the operations go back exactly as they came
    fn try_round(
        &mut self,
        ops: Vec<(Operation, Sender<Reply>)>,
    ) -> Result<Option<(NotApplied, Vec<(Operation, Sender<Reply>)>)>, HostError> {
        let started = Instant::now();
        let height = self.round.height + 1;
        let time = self.next_time();
        let (operations, replies): (Vec<Operation>, Vec<Sender<Reply>>) = ops.into_iter().unzip();
        let shared_ops: Vec<Arc<Operation>> = operations.into_iter().map(Arc::new).collect();
        let executed =
            catch_unwind(AssertUnwindSafe(|| self.pool.execute(&mut self.registry, height, time, &shared_ops)));
        // The workers have dropped their references: take the operations
        // back instead of copying arguments and modules.
        let operations: Vec<Operation> =
            shared_ops.into_iter().map(|op| Arc::try_unwrap(op).unwrap_or_else(|op| (*op).clone())).collect();
        let result = match executed {
            Ok(Ok(result)) => result,
            Ok(Err(failure)) => return Ok(Some((failure, operations.into_iter().zip(replies).collect()))),
            // A panic outside any canister's work: the registry may be half
            // way through the round, so nothing more can be trusted.
            Err(_) => {
                return Err(HostError::Stopped(
                    "internal error (a bug) while coordinating a round; the state in memory may be inconsistent, \
                     so the host stopped: open the state directory again to recover it from the log"
                        .into(),
                ));
            }
        };
        let record = RoundRecord {
            height,
            time,
            operations,
            digest: result.digest.to_vec(),
            canister_digests: result.canister_digests.iter().map(|(id, d)| (*id, d.to_vec())).collect(),
        };
        // Group commit: the round is durable before anyone hears of it. If
        // that fails, the state in memory is ahead of the log: stop.
        let append_started = Instant::now();
        self.wal.append(height, &record.encode())?;
        let metrics = &self.shared.metrics;
        metrics.log_append_seconds.observe(seconds_since(append_started));
        metrics.round_seconds.observe(seconds_since(started));
        self.round = LastRound { height, time };
        metrics.rounds.inc();
        metrics.messages.inc_by(result.messages as u64);
        metrics.instructions.inc_by(result.instructions);
        metrics.dirty_pages.inc_by(result.dirty_pages as u64);
        self.publish(result.touched.iter().copied());
        for (i, (reply, outcome)) in replies.into_iter().zip(result.outcomes).enumerate() {
            match outcome {
                Some(outcome) => drop(reply.send(Ok(outcome))),
                None => drop(self.pending.insert((height, i), reply)),
            }
        }
        for (origin, outcome) in result.late {
            if let Some(reply) = self.pending.remove(&origin) {
                let _ = reply.send(Ok(outcome));
            }
        }
        if height - self.checkpoint_started >= self.config.checkpoint_interval {
            // Back-pressure: at most one checkpoint is written at a time.
            let started = self.wait_for_checkpoint().and_then(|()| self.start_checkpoint());
            if let Err(error) = started {
                // The log still holds every round; the next attempt may succeed.
                tracing::error!(%error, "checkpoint failed; keeping the previous one");
            }
        }
        Ok(None)
    }

    /// The next command, waiting at most `wait`; `Ok(None)` when a
    /// checkpoint being written finished instead (and was taken in).
    fn next_command(
        &mut self,
        commands: &Receiver<Command>,
        wait: Duration,
    ) -> Result<Option<Command>, RecvTimeoutError> {
        let Some(done) = self.in_flight.as_ref().map(|f| f.done().clone()) else {
            return crate::spin::recv_timeout(commands, wait).map(Some);
        };
        crossbeam_channel::select! {
            recv(commands) -> command => command.map(Some).map_err(|_| RecvTimeoutError::Disconnected),
            recv(done) -> outcome => {
                self.finish_checkpoint(outcome.ok());
                Ok(None)
            }
            default(wait) => Err(RecvTimeoutError::Timeout),
        }
    }

    /// Make the canisters `touched` (and the round) visible to queries.
    fn publish(&self, touched: impl IntoIterator<Item = Principal>) {
        let next = self.shared.view().advance(self.round, &self.registry, touched);
        *self.shared.view.write().unwrap_or_else(|e| e.into_inner()) = Arc::new(next);
    }

    /// Make every canister visible to queries afresh.
    fn publish_all(&self) {
        let ids: Vec<Principal> = self.registry.iter().map(|c| c.id()).collect();
        self.publish(ids);
    }

    /// Write a checkpoint of the current state and wait for it; returns
    /// its height (the newest checkpoint's, when nothing changed since).
    fn checkpoint_now(&mut self) -> Result<u64, HostError> {
        self.wait_for_checkpoint()?;
        self.start_checkpoint()?;
        self.wait_for_checkpoint()?;
        Ok(self.checkpointed)
    }

    /// Start writing a checkpoint of the current state beside the rounds
    /// that follow. With nothing new since the newest checkpoint, only
    /// prune (a lowered `keep_checkpoints` takes effect at once).
    fn start_checkpoint(&mut self) -> Result<(), HostError> {
        let height = self.round.height;
        let keep = self.config.keep_checkpoints.max(1);
        if height == self.checkpointed && self.dir.heights()?.last() == Some(&height) {
            self.dir.prune(keep)?;
            return self.prune_log();
        }
        let meta = HostMeta::new(height, self.round.time, self.registry.next_index());
        let copy = StateCopy::of(&self.registry, meta);
        let published = self.published.clone();
        self.in_flight = Some(InFlight::start(self.dir.clone(), copy, published, self.config.max_overlays, keep)?);
        self.checkpoint_started = height;
        Ok(())
    }

    /// Take in the checkpoint being written, if it has finished.
    fn poll_checkpoint(&mut self) {
        let Some(in_flight) = &self.in_flight else { return };
        match in_flight.done().try_recv() {
            Ok(outcome) => self.finish_checkpoint(Some(outcome)),
            Err(TryRecvError::Disconnected) => self.finish_checkpoint(None),
            Err(TryRecvError::Empty) => {}
        }
    }

    /// Take in the checkpoint being written, whose thread sent `received`
    /// (`None`: it ended without sending). A failure is logged: the log
    /// still holds every round, and the next attempt may succeed.
    fn finish_checkpoint(&mut self, received: Option<CheckpointOutcome>) {
        let Some(mut in_flight) = self.in_flight.take() else { return };
        if let Err(error) = self.take_in(in_flight.finished(received)) {
            tracing::error!(height = in_flight.height(), %error, "checkpoint failed; keeping the previous one");
        }
    }

    /// Wait for the checkpoint being written, if any, and take it in.
    fn wait_for_checkpoint(&mut self) -> Result<(), HostError> {
        match self.in_flight.take() {
            Some(in_flight) => self.take_in(in_flight.finish()),
            None => Ok(()),
        }
    }

    /// A written checkpoint becomes the newest: memories it rewrote move
    /// onto their new files, and the log it covers is pruned.
    fn take_in(&mut self, outcome: CheckpointOutcome) -> Result<(), HostError> {
        let (written, mut published) = outcome?;
        persist::rebase(&mut self.registry, &written.checkpoint, written.rewritten, &mut published)?;
        self.published = Arc::new(published);
        self.checkpointed = written.checkpoint.height();
        self.shared.metrics.checkpoints.inc();
        self.shared.metrics.checkpoint_seconds.observe(written.elapsed.as_secs_f64());
        self.publish_all();
        // The delta pages the checkpoint wrote are free now.
        self.reclaimer.nudge();
        if let Some(oldest) = written.oldest {
            self.wal.prune_through(oldest)?;
        }
        Ok(())
    }

    fn prune_log(&mut self) -> Result<(), HostError> {
        if let Some(&oldest) = self.dir.heights()?.first() {
            self.wal.prune_through(oldest)?;
        }
        Ok(())
    }
}
