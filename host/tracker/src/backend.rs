//! The interface between memory tracking and the embedder: a backend, the
//! memories it attaches to, and how they fail.
//!
//! A backend implements [`PageTracker`] for each memory it attaches to. Its
//! methods that touch the memory's bytes or protections are `unsafe`: no wasm
//! may run on the memory meanwhile. [`TrackedMemory`] is the safe wrapper: it
//! asks for the memory's store before each of them, and wasm only runs while
//! someone holds that store mutably.

use std::sync::Arc;

use nix::errno::Errno;
use page_delta::{Page, PageIndex, PageMap};
use wasmtime::{AsContext, AsContextMut, Memory, MemoryCreator, Store};

use crate::counters::MemoryCounters;
use crate::tracker::TrackingMode;

/// How one memory is tracked.
#[derive(Copy, Clone, Debug, PartialEq, Eq)]
pub struct TrackOptions {
    /// How faults are served.
    pub mode: TrackingMode,
    /// Whether writes are tracked (updates). Without it (queries) accessed
    /// pages are simply writable and nothing is collected.
    pub track_writes: bool,
    /// Longest run of pages one fault may map.
    pub prefetch_pages: usize,
}

/// A way of tracking the pages wasm memories read and write, for stores
/// whose data is `T`.
pub trait MemoryBackend<T>: Send + Sync {
    /// The memory creator the engine must be configured with
    /// (`wasmtime::Config::with_host_memory`): only memories it created can
    /// be attached.
    fn memory_creator(&self) -> Arc<dyn MemoryCreator>;

    /// Start tracking `memory`, an instance's memory in `store`, whose
    /// committed contents are `contents`. The memory's bytes then equal
    /// `contents` up to its current size (its first faults fill them in).
    fn attach(
        &self,
        store: &mut Store<T>,
        memory: Memory,
        contents: PageMap,
        options: TrackOptions,
    ) -> Result<TrackedMemory, AttachError>;
}

/// A failed `mmap`/`mprotect`: the errno and the pages it was for.
#[derive(Copy, Clone, Debug, PartialEq, Eq)]
pub struct ProtectFailure {
    /// The error (`ENOMEM` when the process reached `vm.max_map_count`).
    pub errno: Errno,
    /// First 4 KiB page of the range.
    pub first_page: usize,
    /// Length of the range in 4 KiB pages.
    pub pages: usize,
}

impl ProtectFailure {
    /// The tracker could not record page `page` because its preallocated
    /// list was full (a bug); reported as `EOVERFLOW` rather than dropping
    /// the page or allocating in a signal handler.
    pub(crate) fn list_full(page: usize) -> ProtectFailure {
        ProtectFailure { errno: Errno::EOVERFLOW, first_page: page, pages: 1 }
    }
}

/// Why a memory could not be attached.
#[derive(Copy, Clone, Debug, PartialEq, Eq)]
pub enum AttachError {
    /// The memory was not created by this backend's memory creator.
    ForeignMemory,
    /// Mapping the contents over the memory failed.
    Protect(ProtectFailure),
}

/// Why the host could not access a tracked memory.
#[derive(Copy, Clone, Debug, PartialEq, Eq)]
pub enum AccessError {
    /// The range is not inside the memory's current size.
    OutOfBounds,
    /// Changing page protections failed.
    Protect(ProtectFailure),
    /// The tracker was entered twice (a fault while it was serving one):
    /// a bug, refused rather than deadlocking.
    Busy,
}

/// One memory as a backend tracks it.
pub(crate) trait PageTracker: Send + Sync {
    /// Current size in bytes.
    fn byte_size(&self) -> usize;

    /// Copy the bytes at `offset` into `buf`.
    ///
    /// # Safety
    /// No wasm may run on the memory during the call.
    unsafe fn read(&self, offset: usize, buf: &mut [u8]) -> Result<(), AccessError>;

    /// Copy `data` to `offset`, marking the pages written.
    ///
    /// # Safety
    /// No wasm may run on the memory during the call, and `data` must not
    /// lie inside it.
    unsafe fn write(&self, offset: usize, data: &[u8]) -> Result<(), AccessError>;

    /// The pages whose bytes differ from the committed contents, in order.
    ///
    /// # Safety
    /// No wasm may run on the memory during the call.
    unsafe fn collect_dirty(&self) -> Result<Vec<(PageIndex, Page)>, AccessError>;

    /// Make the memory ready for the next message, whose committed contents
    /// are `contents`; `changed` are the pages `collect_dirty` returned.
    ///
    /// # Safety
    /// No wasm may run on the memory during the call.
    unsafe fn rearm(&self, contents: PageMap, changed: &[PageIndex]) -> Result<(), AccessError>;

    /// Counters since the memory was attached.
    fn counters(&self) -> MemoryCounters;

    /// The first protection change that failed, if any.
    fn failure(&self) -> Option<ProtectFailure>;
}

/// An attached memory: what host functions and the executor use.
///
/// Cloning is cheap and every clone tracks the same memory. The methods that
/// touch the memory take its store: holding the store proves that no wasm
/// runs on the memory (running wasm needs the store mutably), and passing
/// another store panics, as wasmtime's own accessors do.
#[derive(Clone)]
pub struct TrackedMemory {
    memory: Memory,
    tracker: Arc<dyn PageTracker>,
}

impl std::fmt::Debug for TrackedMemory {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("TrackedMemory").field("byte_size", &self.byte_size()).finish()
    }
}

impl TrackedMemory {
    pub(crate) fn new(memory: Memory, tracker: Arc<dyn PageTracker>) -> TrackedMemory {
        TrackedMemory { memory, tracker }
    }

    /// Current size in bytes (a multiple of 64 KiB).
    pub fn byte_size(&self) -> usize {
        self.tracker.byte_size()
    }

    /// Panics unless `store` owns this memory.
    fn check_store(&self, store: &impl AsContext) {
        let _ = self.memory.data_ptr(store);
    }

    /// Copy the bytes at `offset` into `buf`, for a host function.
    pub fn read(&self, store: &impl AsContext, offset: u64, buf: &mut [u8]) -> Result<(), AccessError> {
        self.check_store(store);
        let offset = usize::try_from(offset).map_err(|_| AccessError::OutOfBounds)?;
        // SAFETY: `store` owns the memory and is borrowed for the whole
        // call, so no wasm runs on it.
        unsafe { self.tracker.read(offset, buf) }
    }

    /// Copy `data` to `offset`, marking the pages written, for a host
    /// function.
    pub fn write(&self, store: &mut impl AsContextMut, offset: u64, data: &[u8]) -> Result<(), AccessError> {
        self.check_store(store);
        let offset = usize::try_from(offset).map_err(|_| AccessError::OutOfBounds)?;
        // SAFETY: `store` owns the memory and is borrowed mutably for the
        // whole call, so no wasm runs on it and nothing else can hold a
        // slice of it: `data` lies outside it.
        unsafe { self.tracker.write(offset, data) }
    }

    /// After a successful message: the pages whose bytes differ from the
    /// committed contents, in page order.
    pub fn collect_dirty(&self, store: &impl AsContext) -> Result<Vec<(PageIndex, Page)>, AccessError> {
        self.check_store(store);
        // SAFETY: as in `read`.
        unsafe { self.tracker.collect_dirty() }
    }

    /// Start the next message on this memory: `contents` is the newly
    /// committed state and `changed` what [`TrackedMemory::collect_dirty`]
    /// returned.
    pub fn rearm(
        &self,
        store: &mut impl AsContextMut,
        contents: PageMap,
        changed: &[PageIndex],
    ) -> Result<(), AccessError> {
        self.check_store(store);
        // SAFETY: as in `write`.
        unsafe { self.tracker.rearm(contents, changed) }
    }

    /// Fault-handling counters since the memory was attached.
    pub fn counters(&self) -> MemoryCounters {
        self.tracker.counters()
    }

    /// The first protection change that failed, if any: a fault the tracker
    /// could not serve shows up to wasmtime as a plain trap, and this says
    /// why.
    pub fn failure(&self) -> Option<ProtectFailure> {
        self.tracker.failure()
    }
}
