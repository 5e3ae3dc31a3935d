//! The tracker shared by a store's signal handler and the host.

use std::cell::UnsafeCell;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};

use page_delta::{Page, PageIndex, PageMap};

use crate::backend::{AccessError, PageTracker, ProtectFailure};
use crate::counters::MemoryCounters;
use crate::creator::SharedMemory;
use crate::tracker::Tracker;

/// A value reached by one caller at a time, without blocking: a try-lock.
///
/// The host and a store's signal handler run on the thread that runs the
/// store, one at a time, so a lock is never needed; if the cell is ever
/// entered twice (a fault inside the handler itself, or a bug), the second
/// entry is refused instead of deadlocking or aliasing.
pub(crate) struct TryCell<T> {
    busy: AtomicBool,
    value: UnsafeCell<T>,
}

// SAFETY: the value is only reached through `with`, whose `busy` flag
// admits one caller at a time on any thread, and it may move between
// threads (`T: Send`).
unsafe impl<T: Send> Sync for TryCell<T> {}

impl<T> TryCell<T> {
    pub(crate) fn new(value: T) -> TryCell<T> {
        TryCell { busy: AtomicBool::new(false), value: UnsafeCell::new(value) }
    }

    /// Run `f` on the value, or return `None` if it is already in use. The
    /// cell is released even if `f` panics, so a panic (a bug) in host code
    /// cannot leave the tracker refusing every later fault.
    pub(crate) fn with<R>(&self, f: impl FnOnce(&mut T) -> R) -> Option<R> {
        if self.busy.swap(true, Ordering::Acquire) {
            return None;
        }
        let _release = Release(&self.busy);
        // SAFETY: `busy` was false and is now ours, so no other reference to
        // the value exists until `_release` clears it.
        Some(f(unsafe { &mut *self.value.get() }))
    }
}

/// A tracker shared between the host and its store's signal handler.
pub(crate) struct TrackerCell {
    cell: TryCell<Tracker>,
    /// The tracked memory, for its size without entering the cell.
    memory: Arc<SharedMemory>,
}

impl TrackerCell {
    pub(crate) fn new(tracker: Tracker) -> TrackerCell {
        let memory = tracker.memory().clone();
        TrackerCell { cell: TryCell::new(tracker), memory }
    }

    fn with<R>(&self, f: impl FnOnce(&mut Tracker) -> R) -> Option<R> {
        self.cell.with(f)
    }

    /// The signal handler's entry point: whether the fault was served.
    pub(crate) fn on_fault(&self, addr: usize, write: bool) -> bool {
        self.with(|t| t.fault(addr, write)).unwrap_or(false)
    }
}

/// Clears the busy flag when dropped, unwinding included.
struct Release<'a>(&'a AtomicBool);

impl Drop for Release<'_> {
    fn drop(&mut self) {
        self.0.store(false, Ordering::Release);
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

#[cfg(test)]
mod tests {
    use std::panic::{AssertUnwindSafe, catch_unwind};

    use super::TryCell;

    #[test]
    fn a_second_entry_is_refused_and_a_panic_releases_the_cell() {
        let cell = TryCell::new(1u32);
        assert_eq!(cell.with(|v| cell.with(|w| *w).map(|inner| inner + *v)), Some(None));
        let panicked = catch_unwind(AssertUnwindSafe(|| cell.with(|_| panic!("a bug"))));
        assert!(panicked.is_err());
        assert_eq!(cell.with(|v| *v), Some(1), "the panic left the cell busy");
    }
}
