//! A read replica: a state directory kept up with a store, answering
//! queries on the last round it replayed.
//!
//! The follower starts from the newest shipped checkpoint and fetches
//! each log segment once it is shipped (sealed on the primary, which
//! seals at every shipping pass). It replays only the rounds it fetched
//! since the last catch-up ([`LiveReplay`]), checking every record's hash
//! chain and every recorded digest, so it never serves a state the
//! primary did not have. Once it has replayed far past its checkpoint it
//! starts over from the store's newest one, which bounds its disk, memory
//! and restart time. Queries run on the state of the last catch-up, while
//! the next one replays.

use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex, RwLock};
use std::time::{Duration, SystemTime};

use canister_host::prometheus::proto::MetricFamily;
use canister_host::{
    CallError, CanisterInfo, Certifier, ExecutionConfig, HostConfig, LastRound, LiveReplay, PastState, Principal,
};
use checkpoint::StateDir;
use checkpoint::layout::WAL_DIR;
use prometheus::{Gauge, IntCounter, IntGauge, Registry};

use crate::error::ReplicationError;
use crate::log::local_segments;
use crate::metrics::registered;
use crate::remote::Remote;
use crate::state::local_checkpoints;

/// Rounds past its checkpoint after which a follower starts over from a
/// newer shipped one (unless set otherwise): this bounds its log on disk
/// (which each catch-up rescans), the time a restart takes to replay, and
/// the memory its replay holds. Starting over is a seeded restore, which
/// links the files that did not change.
const REBASE_AFTER_ROUNDS: u64 = 1_000;

/// The file marking a directory as a follower's (in its root): only a
/// follower writes there, and hosts refuse to open it.
pub const REPLICA_MARKER: &str = "REPLICA";

/// A read replica of the state a store holds.
pub struct Follower {
    remote: Remote,
    dir: PathBuf,
    primary: Option<String>,
    /// The replay that catching up advances.
    live: Mutex<Option<LiveReplay>>,
    /// What queries run on: the state as of the last catch-up.
    state: RwLock<Option<Arc<PastState>>>,
    query_threads: usize,
    rebase_after: u64,
    metrics: Metrics,
    /// Held for the directory's lock: no host or second follower writes
    /// into it meanwhile.
    _dir_lock: StateDir,
}

/// What a follower reports on `/metrics`.
struct Metrics {
    registry: Registry,
    catch_ups: IntCounter,
    failures: IntCounter,
    round: IntGauge,
    round_time: Gauge,
    lag: Gauge,
}

impl Metrics {
    fn new() -> Metrics {
        let registry = Registry::new();
        Metrics {
            catch_ups: registered(
                &registry,
                IntCounter::new(
                    "canister_host_follower_catch_ups_total",
                    "Times the follower looked for new state in the store.",
                ),
            ),
            failures: registered(
                &registry,
                IntCounter::new(
                    "canister_host_follower_failures_total",
                    "Catch-ups that failed (the store unreachable, an object corrupt); the next retries.",
                ),
            ),
            round: registered(
                &registry,
                IntGauge::new("canister_host_follower_round", "The round whose state the follower serves."),
            ),
            round_time: registered(
                &registry,
                Gauge::new(
                    "canister_host_follower_round_time_seconds",
                    "The primary's time of the round served, in seconds since the epoch.",
                ),
            ),
            lag: registered(
                &registry,
                Gauge::new(
                    "canister_host_follower_lag_seconds",
                    "Wall clock minus the served round's time: how stale answers may be (an upper bound: an idle \
                     primary runs no rounds).",
                ),
            ),
            registry,
        }
    }
}

impl Follower {
    /// A follower of `remote` keeping its copy in `dir` (created, or
    /// resumed if it holds an earlier copy). `primary` names where updates
    /// go, for the refusal [`Follower::update`] gives.
    pub fn new(remote: Remote, dir: &Path, primary: Option<String>) -> Result<Follower, ReplicationError> {
        std::fs::create_dir_all(dir).map_err(ReplicationError::io("create", dir))?;
        let _dir_lock = StateDir::open(dir)?;
        // Catching up deletes and replaces checkpoints: only ever in a
        // directory a follower made.
        let marker = dir.join(REPLICA_MARKER);
        if !marker.exists() {
            if !local_checkpoints(dir)?.is_empty() {
                return Err(ReplicationError::NotAReplica { dir: dir.to_path_buf() });
            }
            std::fs::write(&marker, b"a read replica: `canister-host follow` replaces its checkpoints\n")
                .map_err(ReplicationError::io("write", &marker))?;
        }
        Ok(Follower {
            remote,
            dir: dir.to_path_buf(),
            primary,
            live: Mutex::default(),
            state: RwLock::default(),
            query_threads: HostConfig::default().query_threads,
            rebase_after: REBASE_AFTER_ROUNDS,
            metrics: Metrics::new(),
            _dir_lock,
        })
    }

    /// Start over from the store's newest checkpoint once it is `rounds`
    /// past the one this follower replays from (default 1,000).
    pub fn rebase_after(mut self, rounds: u64) -> Follower {
        self.rebase_after = rounds.max(1);
        self
    }

    /// Fetch what the store has that this copy lacks, replay it, and
    /// serve the result. Returns the round now served.
    pub fn catch_up(&self) -> Result<LastRound, ReplicationError> {
        self.metrics.catch_ups.inc();
        let result = self.fetch_and_replay();
        if result.is_err() {
            self.metrics.failures.inc();
        }
        result
    }

    fn fetch_and_replay(&self) -> Result<LastRound, ReplicationError> {
        let mut live = self.live.lock().unwrap_or_else(|e| e.into_inner());
        let local = local_checkpoints(&self.dir)?;
        let newest_local = local.last().map(|(h, _)| *h);
        let newest_remote = self.remote.heights()?.last().copied();
        let rebase = match (newest_local, newest_remote) {
            (None, None) => return Err(ReplicationError::Missing { object: "checkpoints/".into() }),
            (None, Some(_)) => true,
            (Some(_), None) => false,
            // Far enough along, or with nothing in memory to carry on
            // from: start from the store's newest checkpoint.
            (Some(local), Some(remote)) => remote > local && (live.is_none() || remote >= local + self.rebase_after),
        };
        let mut round = match (rebase, newest_local) {
            (false, Some(height)) => Some(self.replay_new_segments(&mut live, height)?),
            _ => None,
        };
        // A shipped checkpoint past what the shipped log reaches (the
        // primary's last, say) is served too.
        if let Some(height) = newest_remote.filter(|h| round.is_none_or(|r| r.height < *h)) {
            *live = None;
            self.restore_from(height, &local)?;
            round = Some(self.replay_new_segments(&mut live, height)?);
        }
        round.ok_or(ReplicationError::Missing { object: "checkpoints/".into() })
    }

    /// Replace the local copy (`local` checkpoints and the log) with the
    /// store's checkpoint `height` and the log after it. Chunks the local
    /// checkpoints hold are copied rather than downloaded.
    fn restore_from(&self, height: u64, local: &[(u64, PathBuf)]) -> Result<(), ReplicationError> {
        let seeds: Vec<PathBuf> = local.iter().map(|(_, dir)| dir.clone()).collect();
        self.remote.restore_checkpoint_seeded(Some(height), &self.dir, &seeds)?;
        // The log must be one unbroken chain from the checkpoint, so the
        // rest goes; queries meanwhile see the old state.
        let log = self.dir.join(WAL_DIR);
        for dir in seeds.iter().chain([&log]) {
            if dir.exists() {
                std::fs::remove_dir_all(dir).map_err(ReplicationError::io("remove", dir))?;
            }
        }
        self.remote.fetch_log_after(height, &log).map(drop)
    }

    /// Fetch the segments after checkpoint `height` this copy lacks,
    /// replay them and serve the result.
    fn replay_new_segments(&self, live: &mut Option<LiveReplay>, height: u64) -> Result<LastRound, ReplicationError> {
        let fetched = self.fetch_new_segments(height)?;
        let replay = match live.take() {
            Some(replay) if !fetched => live.insert(replay),
            Some(mut replay) => {
                // After a failure the replay is dropped: the next catch-up
                // starts over from a checkpoint.
                replay.advance()?;
                live.insert(replay)
            }
            None => live.insert(LiveReplay::open(&self.dir, ExecutionConfig::default(), self.query_threads)?),
        };
        let round = replay.round();
        if self.current().is_none_or(|s| s.round() != round) {
            self.metrics.round.set(i64::try_from(round.height).unwrap_or(i64::MAX));
            self.metrics.round_time.set(round.time as f64 / 1e9);
            *self.state.write().unwrap_or_else(|e| e.into_inner()) = Some(Arc::new(replay.state()));
        }
        Ok(round)
    }

    /// Fetch the segments the store has and this copy lacks, after
    /// checkpoint `height`; returns whether there were any.
    fn fetch_new_segments(&self, height: u64) -> Result<bool, ReplicationError> {
        let log = self.dir.join(WAL_DIR);
        match local_segments(&log)?.last() {
            // Nothing after the checkpoint yet: as a restore would.
            None => Ok(self.remote.fetch_log_after(height, &log)?.is_some()),
            Some((last, _)) => Ok(self.remote.fetch_segments_after(*last, &log)? > 0),
        }
    }

    /// Catch up every `interval` on a thread of its own, until the
    /// returned handle is dropped. Failures are counted in the metrics and
    /// retried at the next tick; the state served stays meanwhile.
    pub fn follow(self: &Arc<Self>, interval: Duration) -> std::io::Result<Following> {
        let (stop, stopped) = crossbeam_channel::bounded::<()>(1);
        let follower = self.clone();
        let thread = std::thread::Builder::new().name("canister-host-follower".into()).spawn(move || {
            while let Err(crossbeam_channel::RecvTimeoutError::Timeout) = stopped.recv_timeout(interval) {
                if let Err(error) = follower.catch_up() {
                    tracing::warn!(%error, "catching up with the store failed; retrying at the next tick");
                }
            }
        })?;
        Ok(Following { stop: Some(stop), thread: Some(thread) })
    }

    /// The round served (none before the first [`Follower::catch_up`]).
    pub fn round(&self) -> Option<LastRound> {
        self.current().map(|s| s.round())
    }

    /// How far the served state is behind the wall clock: the age of its
    /// last round.
    pub fn lag(&self) -> Option<Duration> {
        let round = self.round()?;
        let now = SystemTime::now().duration_since(SystemTime::UNIX_EPOCH).ok()?;
        Some(now.saturating_sub(Duration::from_nanos(round.time)))
    }

    /// A digest of the whole state replayed so far (none before the first
    /// [`Follower::catch_up`]): the primary's state digest at that round.
    pub fn state_digest(&self) -> Option<checkpoint::Hash> {
        self.live.lock().unwrap_or_else(|e| e.into_inner()).as_ref().map(LiveReplay::state_digest)
    }

    /// A canister as of the round served.
    pub fn canister(&self, canister: Principal) -> Option<CanisterInfo> {
        self.current()?.canister(&canister.to_text())
    }

    /// Run a query on the served state; `certifier` certifies the
    /// canister's certified data (for `ic0.data_certificate_*`).
    pub fn query(
        &self,
        canister: Principal,
        sender: Principal,
        method: &str,
        arg: Vec<u8>,
        certifier: Option<Certifier>,
    ) -> Result<Vec<u8>, CallError> {
        let state =
            self.current().ok_or_else(|| CallError::Unavailable("the follower has not caught up yet".into()))?;
        state.query_certified(canister, sender, method, arg, certifier)
    }

    /// Updates are refused: a follower only replays what the primary did.
    pub fn update(&self) -> Result<(), ReplicationError> {
        Err(self.refusal())
    }

    /// The error every update gets, naming the primary.
    pub fn refusal(&self) -> ReplicationError {
        ReplicationError::ReadOnly { primary: self.primary.clone() }
    }

    /// The follower's metrics (catch-ups, failures, the round served and
    /// its lag as of now), for a Prometheus endpoint.
    pub fn gather_metrics(&self) -> Vec<MetricFamily> {
        if let Some(lag) = self.lag() {
            self.metrics.lag.set(lag.as_secs_f64());
        }
        self.metrics.registry.gather()
    }

    fn current(&self) -> Option<Arc<PastState>> {
        self.state.read().unwrap_or_else(|e| e.into_inner()).clone()
    }
}

/// A follower catching up in the background; dropping it stops the
/// thread.
pub struct Following {
    stop: Option<crossbeam_channel::Sender<()>>,
    thread: Option<std::thread::JoinHandle<()>>,
}

impl Drop for Following {
    fn drop(&mut self) {
        drop(self.stop.take());
        if let Some(thread) = self.thread.take() {
            let _ = thread.join();
        }
    }
}
