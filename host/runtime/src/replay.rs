//! Replaying the write-ahead log: re-executing logged rounds on a state and
//! comparing their digests with the recorded ones. Recovery (which refuses
//! to start on a divergence) and verification (which reports it) share this
//! one loop.

use std::sync::Arc;

use candid::Principal;

use crate::error::HostError;
use crate::registry::Registry;
use crate::round::{RoundRecord, RoundResult, WorkerPool};
use crate::wal::{RecordRef, Wal};

/// Where a replay first differed from the log.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Divergence {
    /// The round.
    pub height: u64,
    /// The first canister whose digest differs (None: only the round's).
    pub canister: Option<Principal>,
    /// The digest the log recorded, hex.
    pub recorded: String,
    /// The digest the replay produced, hex.
    pub replayed: String,
}

impl std::fmt::Display for Divergence {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "round {} diverged", self.height)?;
        if let Some(c) = self.canister {
            write!(f, " at canister {c}")?;
        }
        write!(f, ": recorded digest {}, replayed {}", self.recorded, self.replayed)
    }
}

/// One round replayed.
pub(crate) struct Replayed {
    pub(crate) height: u64,
    pub(crate) time: u64,
    /// Update messages it executed.
    pub(crate) messages: usize,
}

/// Re-execute the logged rounds after checkpoint `from`, in order, on
/// `registry` (the state at `from`). `each` hears of every round executed.
/// Stops at the first round whose digests differ from the recorded ones
/// and returns where.
pub(crate) fn replay(
    pool: &WorkerPool,
    registry: &mut Registry,
    wal: &Wal,
    records: &[RecordRef],
    from: u64,
    mut each: impl FnMut(&Replayed),
) -> Result<Option<Divergence>, HostError> {
    for (i, record) in records.iter().filter(|r| r.height > from).enumerate() {
        let expected = from + 1 + i as u64;
        if record.height != expected {
            return Err(HostError::LogGap { checkpoint: from, missing: expected });
        }
        let mut round = decode(wal, record)?;
        let ops: Vec<_> = std::mem::take(&mut round.operations).into_iter().map(Arc::new).collect();
        let result = pool
            .execute(registry, round.height, round.time, &ops)
            .map_err(|failure| HostError::ReplayFailed { height: round.height, failure })?;
        each(&Replayed { height: round.height, time: round.time, messages: result.messages });
        if let Some(divergence) = divergence(&round, &result) {
            return Ok(Some(divergence));
        }
    }
    Ok(None)
}

/// Read and decode a round record.
fn decode(wal: &Wal, record: &RecordRef) -> Result<RoundRecord, HostError> {
    let body = wal.read(record)?;
    let round = RoundRecord::decode(&body).map_err(|reason| HostError::BadRecord { height: record.height, reason })?;
    if round.height != record.height {
        let reason = format!("it holds round {}", round.height);
        return Err(HostError::BadRecord { height: record.height, reason });
    }
    Ok(round)
}

/// The first difference between recorded and replayed digests.
fn divergence(round: &RoundRecord, replayed: &RoundResult) -> Option<Divergence> {
    if round.digest == replayed.digest {
        return None;
    }
    let differs = |canister, recorded: &[u8], replayed: String| Divergence {
        height: round.height,
        canister,
        recorded: hex::encode(recorded),
        replayed,
    };
    for (id, recorded) in &round.canister_digests {
        let replayed =
            replayed.canister_digests.iter().find(|(c, _)| c == id).map(|(_, d)| hex::encode(d)).unwrap_or_default();
        if hex::encode(recorded) != replayed {
            return Some(differs(Some(*id), recorded, replayed));
        }
    }
    Some(differs(None, &round.digest, hex::encode(replayed.digest)))
}
