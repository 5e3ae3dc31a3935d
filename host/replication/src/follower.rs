//! A read replica: a state directory kept up with a store, answering
//! queries on the last round it replayed.
//!
//! The follower starts from the newest shipped checkpoint and fetches
//! each log segment once it is shipped (sealed on the primary). After
//! every fetch it replays its directory from its newest checkpoint
//! ([`canister_host::PastState`]), which checks every record's hash chain
//! and every recorded digest, so it never serves a state the primary did
//! not have. When the store holds a newer checkpoint it starts from that
//! one instead, so a replay never grows past one checkpoint interval of
//! shipped log.

use std::path::{Path, PathBuf};
use std::sync::{Arc, RwLock};
use std::time::{Duration, SystemTime};

use canister_host::{CallError, ExecutionConfig, LastRound, PastState, Principal};
use checkpoint::layout::WAL_DIR;

use crate::error::ReplicationError;
use crate::log::local_segments;
use crate::remote::Remote;
use crate::state::local_checkpoints;

/// A read replica of the state a store holds.
pub struct Follower {
    remote: Remote,
    dir: PathBuf,
    primary: Option<String>,
    state: RwLock<Option<Arc<PastState>>>,
}

impl Follower {
    /// A follower of `remote` keeping its copy in `dir` (created, or
    /// resumed if it holds an earlier copy). `primary` names where updates
    /// go, for the refusal [`Follower::update`] gives.
    pub fn new(remote: Remote, dir: &Path, primary: Option<String>) -> Result<Follower, ReplicationError> {
        std::fs::create_dir_all(dir).map_err(ReplicationError::io("create", dir))?;
        let follower = Follower { remote, dir: dir.to_path_buf(), primary, state: RwLock::new(None) };
        Ok(follower)
    }

    /// Fetch what the store has that this copy lacks, replay it, and
    /// serve the result. Returns the round now served.
    pub fn catch_up(&self) -> Result<LastRound, ReplicationError> {
        let local = local_checkpoints(&self.dir)?;
        let newest_local = local.last().map(|(h, _)| *h);
        let newest_remote = self.remote.heights()?.last().copied();
        if let Some(remote_height) = newest_remote.filter(|r| newest_local.is_none_or(|l| *r > l)) {
            // A newer checkpoint: start over from it, with the log after it
            // (a follower only ever replays from its newest checkpoint, and
            // its log must be one unbroken chain from there).
            for dir in local.iter().map(|(_, dir)| dir).chain([&self.dir.join(WAL_DIR)]) {
                if dir.exists() {
                    std::fs::remove_dir_all(dir).map_err(ReplicationError::io("remove", dir))?;
                }
            }
            self.remote.restore(Some(remote_height), &self.dir)?;
        } else if let Some(height) = newest_local {
            self.fetch_new_segments(height)?;
        } else {
            return Err(ReplicationError::Missing { object: "checkpoints/".into() });
        }
        let state = PastState::open(&self.dir, ExecutionConfig::default(), None)?;
        let round = state.round();
        *self.state.write().unwrap_or_else(|e| e.into_inner()) = Some(Arc::new(state));
        Ok(round)
    }

    /// Segments the store has and this copy lacks, after checkpoint
    /// `height`.
    fn fetch_new_segments(&self, height: u64) -> Result<(), ReplicationError> {
        let log = self.dir.join(WAL_DIR);
        let have: Vec<u64> = local_segments(&log)?.into_iter().map(|(first, _)| first).collect();
        match have.last() {
            // Nothing after the checkpoint yet: as a restore would.
            None => self.remote.fetch_log_after(height, &log).map(drop),
            Some(last) => self.remote.fetch_segments_after(*last, &log),
        }
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

    /// Run a query on the served state.
    pub fn query(
        &self,
        canister: Principal,
        sender: Principal,
        method: &str,
        arg: Vec<u8>,
    ) -> Result<Vec<u8>, CallError> {
        let state =
            self.current().ok_or_else(|| CallError::Unavailable("the follower has not caught up yet".into()))?;
        state.query(canister, sender, method, arg)
    }

    /// Updates are refused: a follower only replays what the primary did.
    pub fn update(&self) -> Result<(), ReplicationError> {
        Err(ReplicationError::ReadOnly { primary: self.primary.clone() })
    }

    fn current(&self) -> Option<Arc<PastState>> {
        self.state.read().unwrap_or_else(|e| e.into_inner()).clone()
    }
}
