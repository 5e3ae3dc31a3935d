//! wasmtime's `MemoryCreator`/`LinearMemory` over a [`Reservation`].
//!
//! wasmtime creates a canister's memory while instantiating it; the executor
//! then claims the shared half by base address to attach a tracker. Growing
//! only moves the size forward: protections are left alone, and the fault
//! handler serves the new pages lazily.

use std::collections::HashMap;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex, Weak};

use wasmtime::{LinearMemory, MemoryCreator, MemoryType};

use super::reservation::Reservation;

/// How a failed reservation's error starts (see `is_reservation_failure`).
const RESERVATION_FAILED: &str = "cannot reserve address space";

/// Whether instantiation failed because the host could not reserve address
/// space for a memory: the host's failure, not the module's.
pub fn is_reservation_failure(error: &wasmtime::Error) -> bool {
    error.chain().any(|cause| cause.to_string().starts_with(RESERVATION_FAILED))
}

/// The part of a linear memory shared by wasmtime and the tracker.
#[derive(Debug)]
pub(crate) struct SharedMemory {
    reservation: Reservation,
    size: AtomicUsize,
    max_bytes: usize,
}

impl SharedMemory {
    pub(crate) fn reservation(&self) -> &Reservation {
        &self.reservation
    }

    /// Current size in bytes (a multiple of 64 KiB).
    pub(crate) fn byte_size(&self) -> usize {
        self.size.load(Ordering::Acquire)
    }

    /// The most this memory may grow to: its declared maximum, within the
    /// reservation.
    pub(crate) fn max_bytes(&self) -> usize {
        self.max_bytes
    }
}

struct TrackedLinearMemory(Arc<SharedMemory>);

// SAFETY: the memory is one fixed reservation that never moves; its base
// pointer stays valid for as long as this value holds the Arc, and sizes
// only grow within the reservation, which ends in a guard region of the
// size wasmtime asked for.
unsafe impl LinearMemory for TrackedLinearMemory {
    fn byte_size(&self) -> usize {
        self.0.byte_size()
    }

    fn byte_capacity(&self) -> usize {
        self.0.reservation.capacity()
    }

    fn grow_to(&mut self, new_size: usize) -> wasmtime::Result<()> {
        if new_size > self.0.max_bytes {
            wasmtime::bail!("memory cannot grow to {new_size} bytes: its maximum is {}", self.0.max_bytes);
        }
        self.0.size.store(new_size, Ordering::Release);
        Ok(())
    }

    fn as_ptr(&self) -> *mut u8 {
        self.0.reservation.base()
    }
}

/// Creates tracked memories and hands them to the executor.
#[derive(Default)]
pub(crate) struct TrackedMemoryCreator {
    /// Memories created but not yet claimed, by base address. Weak, so a
    /// memory whose instantiation failed is not kept alive.
    unclaimed: Mutex<HashMap<usize, Weak<SharedMemory>>>,
}

impl TrackedMemoryCreator {
    /// Take the memory wasmtime created at `base`.
    pub(crate) fn claim(&self, base: *mut u8) -> Option<Arc<SharedMemory>> {
        let mut unclaimed = self.unclaimed.lock().unwrap_or_else(|e| e.into_inner());
        unclaimed.remove(&(base as usize))?.upgrade()
    }
}

// SAFETY: every memory returned is a fresh reservation of exactly
// `reserved_size_in_bytes` plus `guard_size_in_bytes` on each side, reads as
// zeros, and is owned by the returned object.
unsafe impl MemoryCreator for TrackedMemoryCreator {
    fn new_memory(
        &self,
        ty: MemoryType,
        minimum: usize,
        maximum: Option<usize>,
        reserved_size_in_bytes: Option<usize>,
        guard_size_in_bytes: usize,
    ) -> Result<Box<dyn LinearMemory>, String> {
        if ty.is_shared() {
            return Err("only unshared memories are supported".into());
        }
        let capacity = reserved_size_in_bytes.ok_or("the engine must reserve address space for memories")?;
        let reservation = Reservation::new(capacity, guard_size_in_bytes)
            .map_err(|e| format!("{RESERVATION_FAILED} of {capacity} bytes for a memory: {e}"))?;
        let max_bytes = maximum.unwrap_or(capacity).min(capacity);
        let shared = Arc::new(SharedMemory { reservation, size: AtomicUsize::new(minimum), max_bytes });
        let mut unclaimed = self.unclaimed.lock().unwrap_or_else(|e| e.into_inner());
        unclaimed.retain(|_, m| m.strong_count() > 0);
        unclaimed.insert(shared.reservation.base() as usize, Arc::downgrade(&shared));
        Ok(Box::new(TrackedLinearMemory(shared)))
    }
}
