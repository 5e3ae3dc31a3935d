//! Canister snapshots: O(1) copies of a stopped canister's state (heap,
//! stable memory, module, globals, certified data), taken, loaded, listed
//! and deleted by its controllers.

use candid::Principal;
use embedder::{CanisterState, Executor};

use super::{Canister, CanisterError};

/// Most snapshots a canister may hold.
pub const MAX_SNAPSHOTS: usize = 10;

/// A saved copy of a canister's heap, stable memory, module, globals and
/// certified data.
#[derive(Clone, Debug)]
pub struct Snapshot {
    /// Its id, unique within the canister.
    pub id: u64,
    /// The round time it was taken at.
    pub taken_at: u64,
    /// The state it holds.
    pub state: CanisterState,
}

impl Canister {
    /// canister must be stopped. With `replace`, that snapshot is deleted
    /// first. O(1): page maps are persistent.
    pub fn take_snapshot(&mut self, sender: &Principal, replace: Option<u64>, time: u64) -> Result<u64, CanisterError> {
        self.check_controller(sender)?;
        self.check_stopped("take a snapshot")?;
        if let Some(old) = replace {
            if !self.snapshots.contains_key(&old) {
                return Err(CanisterError::SnapshotNotFound { canister: self.id, id: old });
            }
        } else if self.snapshots.len() >= MAX_SNAPSHOTS {
            return Err(CanisterError::TooManySnapshots { canister: self.id });
        }
        if let Some(old) = replace {
            self.snapshots.remove(&old);
        }
        let id = self.next_snapshot;
        self.next_snapshot += 1;
        self.snapshots.insert(id, Snapshot { id, taken_at: time, state: self.exec.state().clone() });
        Ok(id)
    }

    /// Restore a snapshot: everything after it is discarded. The canister
    /// must be stopped. Identity, controllers and status are not part of a
    /// snapshot and stay as they are.
    pub fn load_snapshot(&mut self, exec: &Executor, sender: &Principal, id: u64) -> Result<(), CanisterError> {
        self.check_controller(sender)?;
        self.check_stopped("load a snapshot")?;
        let snapshot = self.snapshots.get(&id).ok_or(CanisterError::SnapshotNotFound { canister: self.id, id })?;
        *self.exec.state_mut() = snapshot.state.clone();
        self.version += 1;
        self.refresh_env(exec);
        Ok(())
    }

    /// The snapshots, oldest first (a controller must ask).
    pub fn list_snapshots(&self, sender: &Principal) -> Result<Vec<&Snapshot>, CanisterError> {
        self.check_controller(sender)?;
        Ok(self.snapshots.values().collect())
    }

    /// Delete a snapshot (a controller must ask).
    pub fn delete_snapshot(&mut self, sender: &Principal, id: u64) -> Result<(), CanisterError> {
        self.check_controller(sender)?;
        self.snapshots.remove(&id).map(|_| ()).ok_or(CanisterError::SnapshotNotFound { canister: self.id, id })
    }
}
