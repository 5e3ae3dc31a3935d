//! The tracker shared by a store's signal handler and the host.

use std::cell::UnsafeCell;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};

use page_delta::{Page, PageIndex, PageMap};

use crate::backend::{AccessError, PageTracker, ProtectFailure};
use crate::counters::MemoryCounters;
use crate::creator::SharedMemory;
use crate::tracker::Tracker;

/// A tracker shared between the host and its store's signal handler.
///
/// Both run on the thread that runs the store, one at a time, so the cell is
/// a try-lock rather than a lock: if it is ever entered twice (a fault inside
/// the handler itself, or a bug), the second entry is refused instead of
/// deadlocking or aliasing.
pub(crate) struct TrackerCell {
    busy: AtomicBool,
    tracker: UnsafeCell<Tracker>,
    /// The tracked memory, for its size without entering the cell.
    memory: Arc<SharedMemory>,
}

// SAFETY: the tracker is only reached through `with`, whose `busy` flag
// admits one caller at a time on any thread.
unsafe impl Sync for TrackerCell {}

impl TrackerCell {
    pub(crate) fn new(tracker: Tracker) -> TrackerCell {
        let memory = tracker.memory().clone();
        TrackerCell { busy: AtomicBool::new(false), tracker: UnsafeCell::new(tracker), memory }
    }

    /// Run `f` on the tracker, or return `None` if it is already in use.
    fn with<R>(&self, f: impl FnOnce(&mut Tracker) -> R) -> Option<R> {
        if self.busy.swap(true, Ordering::Acquire) {
            return None;
        }
        // SAFETY: `busy` was false and is now ours, so no other reference to
        // the tracker exists until we release it below.
        let result = f(unsafe { &mut *self.tracker.get() });
        self.busy.store(false, Ordering::Release);
        Some(result)
    }

    /// The signal handler's entry point: whether the fault was served.
    pub(crate) fn on_fault(&self, addr: usize, write: bool) -> bool {
        self.with(|t| t.fault(addr, write)).unwrap_or(false)
    }
}

impl PageTracker for TrackerCell {
    fn byte_size(&self) -> usize {
        self.memory.byte_size()
    }

    unsafe fn read(&self, offset: usize, buf: &mut [u8]) -> Result<(), AccessError> {
        // SAFETY: the caller guarantees no wasm runs on the memory.
        self.with(|t| unsafe { t.read(offset, buf) }).unwrap_or(Err(AccessError::Busy))
    }

    unsafe fn write(&self, offset: usize, data: &[u8]) -> Result<(), AccessError> {
        // SAFETY: the caller guarantees no wasm runs on the memory and that
        // `data` lies outside it.
        self.with(|t| unsafe { t.write(offset, data) }).unwrap_or(Err(AccessError::Busy))
    }

    unsafe fn collect_dirty(&self) -> Result<Vec<(PageIndex, Page)>, AccessError> {
        // SAFETY: the caller guarantees no wasm runs on the memory.
        self.with(|t| unsafe { t.collect_dirty() }).ok_or(AccessError::Busy)
    }

    unsafe fn rearm(&self, contents: PageMap, changed: &[PageIndex]) -> Result<(), AccessError> {
        self.with(|t| t.rearm(contents, changed)).ok_or(AccessError::Busy)?.map_err(AccessError::Protect)
    }

    fn counters(&self) -> MemoryCounters {
        self.with(|t| t.counters()).unwrap_or_default()
    }

    fn failure(&self) -> Option<ProtectFailure> {
        self.with(|t| t.failure()).flatten()
    }
}
