//! The committed view: what queries and status requests see, as of the
//! last durable round.
//!
//! The scheduler replaces the view after every round. It is a persistent
//! map of O(1) copies of canister states, so building the next one costs
//! only the canisters that round touched, and a query holding the old one
//! never sees half of a round.

use std::sync::Arc;

use candid::Principal;
use embedder::{CanisterState, MethodKind};
use rpds::HashTrieMapSync;

use crate::canister::{Canister, CanisterStatus};
use crate::registry::Registry;

/// The last committed round.
#[derive(Copy, Clone, Debug, Default, PartialEq, Eq)]
pub struct LastRound {
    /// Its height (0: none yet).
    pub height: u64,
    /// Its time, in nanoseconds since the epoch.
    pub time: u64,
}

/// One of a canister's snapshots, as status requests list it.
#[derive(Copy, Clone, Debug, PartialEq, Eq)]
pub struct SnapshotSummary {
    /// The snapshot's id.
    pub id: u64,
    /// The round time it was taken at.
    pub taken_at: u64,
    /// Heap, stable memory and module, in bytes.
    pub size_bytes: u64,
}

/// What queries and status requests see of a canister: its state as of the
/// last round.
#[derive(Clone, Debug)]
pub struct CanisterInfo {
    /// The canister's id.
    pub id: Principal,
    /// Its unique name, if it has one.
    pub name: Option<String>,
    /// Whether it runs messages.
    pub status: CanisterStatus,
    /// Who may manage it.
    pub controllers: Vec<Principal>,
    /// Its version (see [`Canister::version`]).
    pub version: u64,
    /// Its committed state (an O(1) copy).
    pub state: CanisterState,
    /// Its snapshots, oldest first.
    pub snapshots: Vec<SnapshotSummary>,
    /// Call contexts it has open (messages it has yet to answer, or whose
    /// calls are outstanding).
    pub calls_open: usize,
    /// Calls it made that are not answered yet.
    pub calls_outstanding: usize,
}

impl CanisterInfo {
    /// What a canister looks like now.
    pub(crate) fn of(canister: &Canister) -> CanisterInfo {
        CanisterInfo {
            id: canister.id(),
            name: canister.name().map(str::to_string),
            status: canister.status(),
            controllers: canister.controllers().to_vec(),
            version: canister.version(),
            state: canister.state().clone(),
            calls_open: canister.calls().contexts.len(),
            calls_outstanding: canister.calls().callbacks.len(),
            snapshots: canister
                .snapshots()
                .map(|s| SnapshotSummary { id: s.id, taken_at: s.taken_at, size_bytes: s.state.size_bytes() })
                .collect(),
        }
    }

    /// SHA-256 of the installed module, if any.
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

/// The committed state queries run on.
#[derive(Clone)]
pub(crate) struct CommittedView {
    pub(crate) round: LastRound,
    pub(crate) canisters: HashTrieMapSync<Principal, Arc<CanisterInfo>>,
}

impl CommittedView {
    /// A view of no canisters at `round`.
    pub(crate) fn empty(round: LastRound) -> CommittedView {
        CommittedView { round, canisters: HashTrieMapSync::new_sync() }
    }

    /// This view moved to `round`, with the canisters `touched` taken afresh
    /// from `registry` (or dropped, if they no longer exist).
    pub(crate) fn advance(
        &self,
        round: LastRound,
        registry: &Registry,
        touched: impl IntoIterator<Item = Principal>,
    ) -> CommittedView {
        let mut next = CommittedView { round, canisters: self.canisters.clone() };
        for id in touched {
            match registry.get(&id) {
                Ok(canister) => next.canisters.insert_mut(id, Arc::new(CanisterInfo::of(canister))),
                Err(_) => {
                    next.canisters.remove_mut(&id);
                }
            }
        }
        next
    }

    /// The canister a user means: its textual id, or else its name.
    pub(crate) fn resolve(&self, name_or_id: &str) -> Option<Principal> {
        if let Ok(id) = Principal::from_text(name_or_id)
            && self.canisters.contains_key(&id)
        {
            return Some(id);
        }
        self.canisters.values().find(|c| c.name.as_deref() == Some(name_or_id)).map(|c| c.id)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names_and_ids_resolve() {
        let mut registry = Registry::default();
        let ledger = registry.create(vec![], Some("ledger".into())).unwrap();
        let other = registry.create(vec![], None).unwrap();
        let round = LastRound { height: 1, time: 2 };
        let view = CommittedView::empty(round).advance(round, &registry, [ledger, other]);
        assert_eq!(view.resolve("ledger"), Some(ledger));
        assert_eq!(view.resolve(&other.to_text()), Some(other));
        assert_eq!(view.resolve("nope"), None);
        // An id that is not a canister here does not resolve.
        assert_eq!(view.resolve(&Principal::anonymous().to_text()), None);
    }
}
