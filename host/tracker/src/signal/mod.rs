//! The SIGSEGV backend: pages are protected with `mprotect`, and the faults
//! wasm code takes on them are served by a handler wasmtime calls first.
//!
//! wasmtime calls a store's handler for every fault that happens while that
//! store runs wasm on the faulting thread, so each store's handler only ever
//! sees its own thread's faults: no process-wide table is needed.

#[allow(unsafe_code)] // shares the tracker with the handler; forwards the unsafe interface
mod cell;
#[allow(unsafe_code)] // the handler reads the signal context
mod handler;

use std::sync::Arc;

use page_delta::PageMap;
use wasmtime::{Memory, MemoryCreator, Store};

use crate::backend::{AttachError, MemoryBackend, TrackOptions, TrackedMemory};
use crate::creator::TrackedMemoryCreator;
use crate::tracker::Tracker;
use cell::TrackerCell;

/// Tracks memories with `mprotect` and a SIGSEGV handler, as the IC does.
#[derive(Default)]
pub struct SignalBackend {
    creator: Arc<TrackedMemoryCreator>,
}

impl SignalBackend {
    /// A backend with no memories yet.
    pub fn new() -> SignalBackend {
        SignalBackend::default()
    }
}

impl<T: 'static> MemoryBackend<T> for SignalBackend {
    fn memory_creator(&self) -> Arc<dyn MemoryCreator> {
        self.creator.clone()
    }

    fn attach(
        &self,
        store: &mut Store<T>,
        memory: Memory,
        contents: PageMap,
        options: TrackOptions,
    ) -> Result<TrackedMemory, AttachError> {
        let shared = self.creator.claim(memory.data_ptr(&*store)).ok_or(AttachError::ForeignMemory)?;
        let tracker = Tracker::new(shared, contents, options).map_err(AttachError::Protect)?;
        let cell = Arc::new(TrackerCell::new(tracker));
        handler::install(store, cell.clone());
        Ok(TrackedMemory::new(memory, cell))
    }
}
