//! Time travel: a query against the state as of any past round that the
//! kept checkpoints and log still cover. It loads the newest checkpoint at
//! or below that round, replays the log up to it in memory (checking every
//! digest on the way), and runs the query there. Like verification it
//! takes no lock and writes nothing, so it runs beside a live host.

use std::path::Path;
use std::sync::Arc;

use candid::Principal;
use checkpoint::StateDir;
use embedder::{ExecutionConfig, Executor};

use crate::error::{CallError, HostError};
use crate::query;
use crate::query_pool::on_wasm_stack;
use crate::verify::{VerifyOptions, replay_here};
use crate::view::{CanisterInfo, CommittedView, LastRound};

/// The state as of a past round, replayed in memory, to query.
pub struct PastState {
    round: LastRound,
    checkpoint: u64,
    view: Arc<CommittedView>,
    executor: Arc<Executor>,
}

impl PastState {
    /// Replay the state directory at `path` up to round `height` (default:
    /// the last logged round), from the newest kept checkpoint at or below
    /// it. Messages execute with `execution` (its limits must match the
    /// recorded history's). A replay that does not reproduce the recorded
    /// digests is an error.
    pub fn open(path: &Path, execution: ExecutionConfig, height: Option<u64>) -> Result<PastState, HostError> {
        let heights = StateDir::open_read_only(path)?.heights()?;
        let from =
            heights.iter().rev().find(|h| height.is_none_or(|height| **h <= height)).copied().ok_or_else(|| {
                HostError::Operation(format!(
                    "round {} is older than every kept checkpoint ({}); only rounds from the oldest checkpoint on can \
                 be queried",
                    height.unwrap_or_default(),
                    heights.iter().map(u64::to_string).collect::<Vec<_>>().join(", ")
                ))
            })?;
        let options =
            VerifyOptions { from_height: Some(from), to_height: height, workers: 1, execution, ..Default::default() };
        let replayed = on_wasm_stack(move || replay_here(path, &options, &mut |_| {}))?;
        if let Some(divergence) = replayed.report.divergence {
            return Err(HostError::ReplayDiverged(divergence));
        }
        let ids: Vec<Principal> = replayed.registry.iter().map(|c| c.id()).collect();
        let view = Arc::new(CommittedView::empty(replayed.round).advance(replayed.round, &replayed.registry, ids));
        Ok(PastState { round: replayed.round, checkpoint: from, view, executor: replayed.executor })
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
        let job = query::prepare(&self.executor, &self.view, canister, sender, method, arg, None)?;
        on_wasm_stack(job)
    }
}
