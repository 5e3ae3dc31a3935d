//! Tracked linear memory: the reservation, the wasmtime memory creator, the
//! fault-driven page tracker and its signal handler. All the `unsafe` code of
//! the execution engine lives in this module.

mod bitmap;
mod creator;
mod reservation;
mod signal;
mod tracker;

use std::cell::UnsafeCell;
use std::sync::atomic::{AtomicBool, Ordering};

pub use creator::{SharedMemory, TrackedMemoryCreator};
pub use reservation::{Prot, Reservation};
pub use signal::install as install_signal_handler;
pub use tracker::{MemoryCounters, PrepareError, ProtectFailure, Tracker, TrackingMode};

/// A tracker shared between the executor and its store's signal handler.
///
/// Both run on the thread that runs the store, one at a time, so the cell is
/// a try-lock rather than a lock: if it is ever entered twice (a fault inside
/// the handler itself, or a bug), the second entry is refused instead of
/// deadlocking or aliasing.
pub struct TrackerCell {
    busy: AtomicBool,
    tracker: UnsafeCell<Tracker>,
}

// SAFETY: the tracker is only reached through `with`, whose `busy` flag
// admits one caller at a time on any thread.
unsafe impl Sync for TrackerCell {}

impl TrackerCell {
    pub fn new(tracker: Tracker) -> TrackerCell {
        TrackerCell { busy: AtomicBool::new(false), tracker: UnsafeCell::new(tracker) }
    }

    /// Run `f` on the tracker, or return `None` if it is already in use.
    pub fn with<R>(&self, f: impl FnOnce(&mut Tracker) -> R) -> Option<R> {
        if self.busy.swap(true, Ordering::Acquire) {
            return None;
        }
        // SAFETY: `busy` was false and is now ours, so no other reference to
        // the tracker exists until we release it below.
        let result = f(unsafe { &mut *self.tracker.get() });
        self.busy.store(false, Ordering::Release);
        Some(result)
    }

    /// The signal handler's entry point.
    fn on_fault(&self, addr: usize, write: bool) -> bool {
        self.with(|t| t.fault(addr, write)).unwrap_or(false)
    }
}
