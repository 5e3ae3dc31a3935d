//! Time travel: a query against the state as of any past round that the
//! kept checkpoints and log still cover. It loads the newest checkpoint at
//! or below that round, replays the log up to it in memory (checking every
//! digest on the way), and runs the query there. Like verification it
//! takes no lock and writes nothing, so it runs beside a live host.
//!
//! [`LiveReplay`] keeps such a replay going as its log grows: a read
//! replica's state.

use std::path::{Path, PathBuf};
use std::sync::Arc;

use candid::Principal;
use checkpoint::StateDir;
use embedder::{ExecutionConfig, Executor};

use crate::error::{CallError, HostError};
use crate::query;
use crate::query_pool::{QueryPool, on_wasm_stack};
use crate::verify::{ReplayedState, VerifyOptions, replay_here};
use crate::view::{CanisterInfo, CommittedView, LastRound};

/// The state as of a past round, replayed in memory, to query.
pub struct PastState {
    round: LastRound,
    checkpoint: u64,
    view: Arc<CommittedView>,
    executor: Arc<Executor>,
    /// Where queries run (a live replay's shared threads); `None`: on a
    /// thread of their own.
    queries: Option<Arc<QueryPool>>,
}

impl PastState {
    /// Replay the state directory at `path` up to round `height` (default:
    /// the last logged round), from the newest kept checkpoint at or below
    /// it. Messages execute with `execution` (its limits must match the
    /// recorded history's). A replay that does not reproduce the recorded
    /// digests is an error.
    pub fn open(path: &Path, execution: ExecutionConfig, height: Option<u64>) -> Result<PastState, HostError> {
        let (replayed, from) = replay_to(path, execution, height)?;
        Ok(PastState::of(&replayed, from, None))
    }

    /// The state `replayed` reached, from checkpoint `checkpoint`.
    fn of(replayed: &ReplayedState, checkpoint: u64, queries: Option<Arc<QueryPool>>) -> PastState {
        let ids: Vec<Principal> = replayed.registry.iter().map(|c| c.id()).collect();
        let view = Arc::new(CommittedView::empty(replayed.round).advance(replayed.round, &replayed.registry, ids));
        PastState { round: replayed.round, checkpoint, view, executor: replayed.executor.clone(), queries }
    }

    /// The round this is the state after, and its time.
    pub fn round(&self) -> LastRound {
        self.round
    }

    /// The checkpoint the replay started from.
    pub fn checkpoint(&self) -> u64 {
        self.checkpoint
    }

    /// A canister as it was then, by id or name.
    pub fn canister(&self, name_or_id: &str) -> Option<CanisterInfo> {
        let id = self.view.resolve(name_or_id)?;
        self.view.canisters.get(&id).map(|c| c.as_ref().clone())
    }

    /// Run a query (or composite query) on this state.
    pub fn query(
        &self,
        canister: Principal,
        sender: Principal,
        method: &str,
        arg: Vec<u8>,
    ) -> Result<Vec<u8>, CallError> {
        self.query_certified(canister, sender, method, arg, None)
    }

    /// [`PastState::query`], with `certifier` certifying the canister's
    /// certified data as of this state (for `ic0.data_certificate_*`).
    pub fn query_certified(
        &self,
        canister: Principal,
        sender: Principal,
        method: &str,
        arg: Vec<u8>,
        certifier: Option<query::Certifier>,
    ) -> Result<Vec<u8>, CallError> {
        let job = query::prepare(&self.executor, &self.view, canister, sender, method, arg, certifier)?;
        match &self.queries {
            Some(pool) => pool.run(job).map_err(CallError::Unavailable)?,
            None => on_wasm_stack(job),
        }
    }
}

/// Replay the state directory at `path` up to round `height` (default: the
/// last logged round) from the newest kept checkpoint at or below it;
/// returns the state and that checkpoint. A replay that does not reproduce
/// the recorded digests is an error.
fn replay_to(path: &Path, execution: ExecutionConfig, height: Option<u64>) -> Result<(ReplayedState, u64), HostError> {
    let heights = StateDir::open_read_only(path)?.heights()?;
    let from = heights.iter().rev().find(|h| height.is_none_or(|height| **h <= height)).copied();
    let from = from.ok_or_else(|| match height {
        Some(height) => HostError::Operation(format!(
            "round {height} is older than every kept checkpoint ({}); only rounds from the oldest checkpoint on can \
             be queried",
            heights.iter().map(u64::to_string).collect::<Vec<_>>().join(", ")
        )),
        None => HostError::Operation(format!("{} holds no checkpoint to replay from", path.display())),
    })?;
    let options =
        VerifyOptions { from_height: Some(from), to_height: height, workers: 1, execution, ..Default::default() };
    let replayed = on_wasm_stack(move || replay_here(path, &options, &mut |_| {}))?;
    if let Some(divergence) = replayed.report.divergence {
        return Err(HostError::ReplayDiverged(divergence));
    }
    Ok((replayed, from))
}

/// A replay that carries on as its state directory's log grows: it loads
/// the newest checkpoint once, then replays only the rounds added since
/// the last [`LiveReplay::advance`], checking every digest.
pub struct LiveReplay {
    path: PathBuf,
    replayed: ReplayedState,
    checkpoint: u64,
    queries: Arc<QueryPool>,
}

impl LiveReplay {
    /// Load the newest checkpoint in `path` and replay the whole log after
    /// it. Messages execute with `execution` (its limits must match the
    /// recorded history's); queries run on `query_threads` threads.
    pub fn open(path: &Path, execution: ExecutionConfig, query_threads: usize) -> Result<LiveReplay, HostError> {
        let (replayed, checkpoint) = replay_to(path, execution, None)?;
        let queries = QueryPool::new(query_threads.max(1), 1024)
            .map_err(|e| HostError::Operation(format!("cannot start the query threads: {e}")))?;
        Ok(LiveReplay { path: path.to_path_buf(), replayed, checkpoint, queries: Arc::new(queries) })
    }

    /// Replay the rounds the log gained; returns how many. After an error
    /// (a record breaking the chain, a digest not reproduced) this replay
    /// must be dropped: open a new one.
    pub fn advance(&mut self) -> Result<u64, HostError> {
        let (replayed, path) = (&mut self.replayed, &self.path);
        on_wasm_stack(|| replayed.replay_more(path))
    }

    /// The state as of the last round replayed, to query while the replay
    /// goes on.
    pub fn state(&self) -> PastState {
        PastState::of(&self.replayed, self.checkpoint, Some(self.queries.clone()))
    }

    /// The last round replayed.
    pub fn round(&self) -> LastRound {
        self.replayed.round
    }

    /// A digest of the whole state replayed: equal to the primary's
    /// [`crate::Host::state_digest`] at the same round.
    pub fn state_digest(&self) -> checkpoint::Hash {
        crate::round::state_digest(&self.replayed.registry)
    }

    /// The checkpoint the replay started from.
    pub fn checkpoint(&self) -> u64 {
        self.checkpoint
    }
}
