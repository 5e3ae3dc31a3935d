//! Canister history: the most recent changes to a canister's code and
//! controllers (creation, code deployments and uninstalls, controller
//! changes, snapshot loads), as `canister_info` reports them. The IC keeps
//! the last 20 and counts them all.

use std::collections::VecDeque;

use candid::{CandidType, Deserialize, Principal};
use ic_management_canister_types::{Change, ChangeDetails, ChangeOrigin, FromCanisterRecord, FromUserRecord};

use checkpoint::hash::tagged_hasher;
use sha2::Digest;

use super::Canister;

/// Changes kept (the IC's `MAX_CANISTER_HISTORY_CHANGES`).
pub const MAX_HISTORY_CHANGES: usize = 20;

/// The recent changes and how many there have been.
#[derive(CandidType, Deserialize, Clone, Debug, Default, PartialEq, Eq)]
pub struct CanisterHistory {
    /// The most recent changes, oldest first.
    pub changes: VecDeque<Change>,
    /// Changes ever recorded.
    pub total: u64,
    /// A hash chained over every change ever recorded (SHA-256 of the
    /// previous value and the change's Candid encoding): what digests
    /// cover, computed once per change rather than once per round.
    pub chain: Vec<u8>,
}

/// Whether `principal` is a canister's id (the IC's "opaque id" class),
/// rather than a user's.
fn is_canister_id(principal: &Principal) -> bool {
    principal.as_slice().last() == Some(&1)
}

impl Canister {
    /// The canister's history.
    pub fn history(&self) -> &CanisterHistory {
        &self.history
    }

    /// Record a change made at `time` by `by` (a user, or a canister).
    pub(crate) fn record_change(&mut self, time: u64, by: Principal, details: ChangeDetails) {
        let origin = if is_canister_id(&by) {
            ChangeOrigin::FromCanister(FromCanisterRecord { canister_id: by, canister_version: None })
        } else {
            ChangeOrigin::FromUser(FromUserRecord { user_id: by })
        };
        let history = &mut self.history;
        history.total += 1;
        let change = Change { timestamp_nanos: time, canister_version: self.version, origin, details: Some(details) };
        let mut h = tagged_hasher("ch-history");
        h.update(&history.chain);
        h.update(candid::encode_one(&change).expect("changes always encode"));
        history.chain = h.finalize().to_vec();
        history.changes.push_back(change);
        while history.changes.len() > MAX_HISTORY_CHANGES {
            history.changes.pop_front();
        }
    }
}
