//! Fault-handling counters: atomics the handler bumps, and the plain
//! reading callers take.

use std::sync::atomic::{AtomicU64, Ordering::Relaxed};
use std::time::Duration;

/// Cumulative counters of one tracker. Atomics, because the fault handler
/// updates them.
#[derive(Default)]
pub(crate) struct Counters {
    pub(crate) faults: AtomicU64,
    pub(crate) mprotects: AtomicU64,
    pub(crate) pages_copied: AtomicU64,
    pub(crate) handler_nanos: AtomicU64,
}

impl Counters {
    /// The counters' current values.
    pub(crate) fn read(&self) -> MemoryCounters {
        MemoryCounters {
            faults: self.faults.load(Relaxed),
            mprotects: self.mprotects.load(Relaxed),
            pages_copied: self.pages_copied.load(Relaxed),
            handler_time: Duration::from_nanos(self.handler_nanos.load(Relaxed)),
        }
    }
}

/// What a tracker did to serve faults, cumulatively; subtract two readings
/// for one message's share.
#[derive(Copy, Clone, Debug, Default, PartialEq, Eq)]
pub struct MemoryCounters {
    /// Faults served, including accesses host functions prepared.
    pub faults: u64,
    /// `mmap`/`mprotect` calls.
    pub mprotects: u64,
    /// 4 KiB pages copied into the memory from the page delta.
    pub pages_copied: u64,
    /// Time spent serving faults.
    pub handler_time: Duration,
}

impl std::ops::Sub for MemoryCounters {
    type Output = MemoryCounters;

    fn sub(self, rhs: MemoryCounters) -> MemoryCounters {
        MemoryCounters {
            faults: self.faults - rhs.faults,
            mprotects: self.mprotects - rhs.mprotects,
            pages_copied: self.pages_copied - rhs.pages_copied,
            handler_time: self.handler_time.saturating_sub(rhs.handler_time),
        }
    }
}
