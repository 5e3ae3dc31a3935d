//! Canister snapshots: O(1) copies of a stopped canister's state (heap,
//! stable memory, module, globals, certified data), taken, loaded, listed
//! and deleted by its controllers; or built from uploaded pieces (a
//! snapshot downloaded elsewhere, by dfx or this host's CLI).

use std::sync::Arc;

use candid::Principal;
use embedder::{CanisterState, Executor, GlobalValue, WasmPages};
use page_delta::PageMap;

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
    /// For a snapshot built by upload: its module as uploaded so far,
    /// compiled into `state` when the snapshot is first loaded. `None` for
    /// snapshots taken from the canister and uploads already loaded.
    pub uploaded_module: Option<Arc<Vec<u8>>>,
}

/// What `upload_canister_snapshot_metadata` declares about a snapshot to
/// be uploaded.
#[derive(Clone, Debug, PartialEq)]
pub struct SnapshotUpload {
    /// Bytes of the module.
    pub module_bytes: u64,
    /// Bytes of heap (whole wasm pages).
    pub heap_bytes: u64,
    /// Bytes of stable memory (whole wasm pages).
    pub stable_bytes: u64,
    /// The module's mutable globals, in order.
    pub globals: Vec<GlobalValue>,
    /// Certified data (at most 32 bytes).
    pub certified_data: Vec<u8>,
    /// The global timer (0: inactive).
    pub global_timer: u64,
}

/// A part of an uploaded snapshot.
#[derive(Copy, Clone, Debug, PartialEq, Eq)]
pub enum SnapshotPart {
    /// The module.
    Module,
    /// The heap.
    Heap,
    /// Stable memory.
    Stable,
}

fn bad_upload(reason: String) -> CanisterError {
    CanisterError::InvalidRequest(reason)
}

impl Canister {
    /// canister must be stopped. With `replace`, that snapshot is deleted
    /// first. O(1): page maps are persistent.
    pub fn take_snapshot(&mut self, sender: &Principal, replace: Option<u64>, time: u64) -> Result<u64, CanisterError> {
        self.check_controller(sender)?;
        self.check_stopped("take a snapshot")?;
        let id = self.make_room_for_snapshot(replace)?;
        let state = self.exec.state().clone();
        self.snapshots.insert(id, Snapshot { id, taken_at: time, state, uploaded_module: None });
        Ok(id)
    }

    /// Free the place of a new snapshot (deleting `replace`, or checking the
    /// limit) and return its id.
    fn make_room_for_snapshot(&mut self, replace: Option<u64>) -> Result<u64, CanisterError> {
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
        Ok(id)
    }

    /// Start a snapshot to be uploaded (`upload_canister_snapshot_metadata`):
    /// memories of the declared sizes, zero until their data arrives. The
    /// canister need not be stopped: it is not touched until the snapshot
    /// is loaded.
    pub fn upload_snapshot_metadata(
        &mut self,
        exec: &Executor,
        sender: &Principal,
        replace: Option<u64>,
        upload: SnapshotUpload,
        time: u64,
    ) -> Result<u64, CanisterError> {
        self.check_controller(sender)?;
        let limits = exec.config();
        let whole_pages = |what: &str, bytes: u64, limit: u64| {
            if !bytes.is_multiple_of(WasmPages::SIZE) || bytes > limit {
                return Err(bad_upload(format!(
                    "the {what} size {bytes} must be a multiple of {} bytes (a wasm page) and at most {limit}",
                    WasmPages::SIZE
                )));
            }
            Ok(WasmPages::from_bytes(bytes))
        };
        let heap_pages = whole_pages("wasm memory", upload.heap_bytes, limits.heap_limit(true))?;
        let stable_pages = whole_pages("stable memory", upload.stable_bytes, limits.stable_limit_bytes)?;
        if upload.module_bytes > limits.max_module_bytes as u64 {
            return Err(bad_upload(format!(
                "the module size {} exceeds the limit of {} bytes",
                upload.module_bytes, limits.max_module_bytes
            )));
        }
        if upload.certified_data.len() > 32 {
            return Err(bad_upload("certified data is at most 32 bytes".into()));
        }
        let id = self.make_room_for_snapshot(replace)?;
        let state = CanisterState {
            env: self.exec.state().env.clone(),
            module: None,
            heap: PageMap::new(),
            heap_pages,
            globals: upload.globals,
            stable: PageMap::new(),
            stable_pages,
            certified_data: upload.certified_data,
            global_timer: upload.global_timer,
        };
        let module = Some(Arc::new(vec![0; upload.module_bytes as usize]));
        self.snapshots.insert(id, Snapshot { id, taken_at: time, state, uploaded_module: module });
        Ok(id)
    }

    /// Write `data` at `offset` into `part` of snapshot `id`, which must
    /// have been started by upload and not loaded yet.
    pub fn upload_snapshot_data(
        &mut self,
        sender: &Principal,
        id: u64,
        part: SnapshotPart,
        offset: u64,
        data: &[u8],
    ) -> Result<(), CanisterError> {
        self.check_controller(sender)?;
        let canister = self.id;
        let snapshot = self.snapshots.get_mut(&id).ok_or(CanisterError::SnapshotNotFound { canister, id })?;
        let Some(module) = snapshot.uploaded_module.as_mut() else {
            return Err(bad_upload(format!(
                "snapshot {id} of canister {canister} was not created by upload_canister_snapshot_metadata (or \
                 is already loaded); only such a snapshot takes data"
            )));
        };
        let size = match part {
            SnapshotPart::Module => module.len() as u64,
            SnapshotPart::Heap => snapshot.state.heap_pages.bytes(),
            SnapshotPart::Stable => snapshot.state.stable_pages.bytes(),
        };
        let end = offset.checked_add(data.len() as u64).filter(|end| *end <= size).ok_or_else(|| {
            bad_upload(format!(
                "the range [{offset}, {offset} + {}) lies outside the {part:?} of {size} bytes",
                data.len()
            ))
        })?;
        let write = |map: &mut PageMap| map.write(offset, data).map_err(|e| bad_upload(e.to_string()));
        match part {
            SnapshotPart::Module => Arc::make_mut(module)[offset as usize..end as usize].copy_from_slice(data),
            SnapshotPart::Heap => write(&mut snapshot.state.heap)?,
            SnapshotPart::Stable => write(&mut snapshot.state.stable)?,
        }
        Ok(())
    }

    /// Restore a snapshot: everything after it is discarded. The canister
    /// must be stopped. Identity, controllers and status are not part of a
    /// snapshot and stay as they are.
    pub fn load_snapshot(&mut self, exec: &Executor, sender: &Principal, id: u64) -> Result<(), CanisterError> {
        self.check_controller(sender)?;
        self.check_stopped("load a snapshot")?;
        let canister = self.id;
        let snapshot = self.snapshots.get_mut(&id).ok_or(CanisterError::SnapshotNotFound { canister, id })?;
        if let Some(bytes) = &snapshot.uploaded_module {
            // An uploaded snapshot is checked as an install would be.
            let module = exec.compile(bytes).map_err(CanisterError::Module)?;
            let heap = snapshot.state.heap_pages;
            let maximum = module.info.memory.as_ref().and_then(|m| m.maximum).unwrap_or(WasmPages(u64::MAX));
            if heap > maximum {
                return Err(CanisterError::HeapDoesNotFit { canister, heap, maximum });
            }
            let (given, wanted) = (snapshot.state.globals.len(), module.info.globals.len());
            if given != 0 && given != wanted {
                return Err(bad_upload(format!(
                    "snapshot {id} has {given} globals, but its module has {wanted} mutable globals"
                )));
            }
            snapshot.state.module = Some(module);
            snapshot.uploaded_module = None;
        }
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
