//! Which pages of one linear memory a message reads and writes.
//!
//! Every page is in one of three states, and its protection always matches:
//!
//! | state | protection | meaning |
//! |---|---|---|
//! | untouched | `PROT_NONE` | not accessed since the instance was set up |
//! | clean | `PROT_READ` | accessed, not written by this message |
//! | dirty | `PROT_READ\|PROT_WRITE` | possibly written by this message |
//!
//! Without write tracking (queries) an accessed page is simply read-write.
//! A fault moves pages to a higher state (`fault`); after a message,
//! `commit` keeps the dirty pages whose bytes changed and makes them clean
//! again for the next one.
//!
//! Everything reachable from [`Tracker::fault`] runs inside a signal
//! handler: it allocates nothing, takes no lock and logs nothing. Bitmaps and
//! lists are sized for the memory's maximum when the tracker is built.

mod commit;
mod fault;
mod lists;

use std::sync::Arc;
use std::sync::atomic::Ordering::Relaxed;
use std::time::Instant;

use nix::errno::Errno;
use page_delta::{PAGE_SIZE, PageIndex, PageMap, RunSource};

use crate::backend::{AccessError, ProtectFailure, TrackOptions};
use crate::bitmap::PageBitmap;
use crate::counters::{Counters, MemoryCounters};
use crate::creator::SharedMemory;
use crate::reservation::Prot;
use lists::PageList;

/// How faults are served: the three strategies compared by the benchmarks.
#[derive(Copy, Clone, Debug, Default, PartialEq, Eq, Hash)]
pub enum TrackingMode {
    /// The IC before its 2021 optimisations: anonymous memory, one page per
    /// fault, every page copied in; a write takes a second fault.
    Naive,
    /// The IC after them: the checkpoint file is mapped `PROT_NONE`, the
    /// access kind comes from the fault, and a fault maps a run of pages
    /// that doubles while access stays sequential.
    Prefetch,
    /// Prefetch, with every file-backed page readable from the start: only
    /// delta pages and first writes fault.
    #[default]
    ReadMapped,
    /// No tracking at all: the memory is mapped read-write up front, as a
    /// plain file-backed mapping. Nothing it writes can be persisted, so
    /// updates under it change nothing; it is the physical baseline the
    /// benchmarks compare the tracking modes against.
    Untracked,
}

/// At most this many separate runs are made readable when a read-mapped
/// memory is set up; past that, the rest are left to faults rather than
/// fragmenting the mapping (each run costs a VMA, see `vm.max_map_count`).
const MAX_SETUP_RUNS: usize = 256;

/// The tracking state of one linear memory (see the module docs).
pub(crate) struct Tracker {
    memory: Arc<SharedMemory>,
    mode: TrackingMode,
    track_writes: bool,
    prefetch_cap: usize,
    /// The memory's contents before the current message (the committed
    /// state): where delta pages are copied from and dirty pages compared to.
    contents: PageMap,
    /// Pages mapped from the base file (none in naive mode).
    file_pages: usize,
    accessed: PageBitmap,
    dirty: PageBitmap,
    /// Pages whose own write faulted.
    written: PageList,
    /// Pages made writable by prefetching around a write.
    speculative: PageList,
    counters: Counters,
    failure: Option<ProtectFailure>,
    /// Pages kept writable between messages, sorted, with the number of
    /// messages since each last changed.
    sticky: Vec<(u32, u8)>,
    /// Pages compared against the base file's mapping since its resident
    /// pages were last released (see `collect_dirty`).
    base_reads: usize,
}

impl Tracker {
    /// Set up tracking for `memory`, whose contents are `contents`. Maps the
    /// base file over the memory unless the mode is naive.
    pub(crate) fn new(
        memory: Arc<SharedMemory>,
        contents: PageMap,
        options: TrackOptions,
    ) -> Result<Tracker, ProtectFailure> {
        let TrackOptions { mode, track_writes, prefetch_pages: prefetch_cap } = options;
        let max_pages = memory.max_bytes() / PAGE_SIZE;
        let track_writes = track_writes && mode != TrackingMode::Untracked;
        let lists = if track_writes { max_pages } else { 0 };
        let mut tracker = Tracker {
            memory,
            mode,
            track_writes,
            prefetch_cap: prefetch_cap.max(1),
            contents,
            file_pages: 0,
            accessed: PageBitmap::new(max_pages),
            dirty: PageBitmap::new(if track_writes { max_pages } else { 0 }),
            written: PageList::with_capacity(lists),
            speculative: PageList::with_capacity(lists),
            counters: Counters::default(),
            failure: None,
            sticky: Vec::new(),
            base_reads: 0,
        };
        tracker.map_base()?;
        Ok(tracker)
    }

    fn map_base(&mut self) -> Result<(), ProtectFailure> {
        let size_pages = self.size_pages();
        let file_pages = (self.contents.base_pages() as usize).min(size_pages);
        if self.mode == TrackingMode::Naive {
            return Ok(());
        }
        if let Some(base) = self.contents.base().filter(|_| file_pages > 0) {
            self.counters.mprotects.fetch_add(1, Relaxed);
            self.memory.reservation().map_file(base.file(), file_pages, Prot::None).map_err(|e| ProtectFailure {
                errno: Errno::from_raw(e.raw_os_error().unwrap_or(0)),
                first_page: 0,
                pages: file_pages,
            })?;
            self.file_pages = file_pages;
        }
        if self.mode == TrackingMode::Untracked {
            return self.map_run(0, size_pages, Prot::ReadWrite).map(|()| self.accessed.set_range(0, size_pages));
        }
        if self.mode == TrackingMode::ReadMapped {
            let prot = if self.track_writes { Prot::Read } else { Prot::ReadWrite };
            let runs = self.contents.runs(PageIndex(0)..PageIndex(size_pages as u64));
            for run in runs.iter().filter(|r| r.source != RunSource::Delta).take(MAX_SETUP_RUNS) {
                self.protect(run.start.0 as usize, run.len as usize, prot)?;
                self.accessed.set_range(run.start.0 as usize, run.len as usize);
            }
        }
        Ok(())
    }

    fn size_pages(&self) -> usize {
        self.memory.byte_size() / PAGE_SIZE
    }

    /// The memory this tracker tracks.
    pub(crate) fn memory(&self) -> &Arc<SharedMemory> {
        &self.memory
    }

    pub(crate) fn counters(&self) -> MemoryCounters {
        self.counters.read()
    }

    /// The first protection change that failed, if any.
    pub(crate) fn failure(&self) -> Option<ProtectFailure> {
        self.failure
    }

    /// Make bytes `offset..offset + len` readable, or writable (and marked
    /// dirty) if `write`, without waiting for faults. For host functions
    /// that access wasm memory. The range must lie within the memory.
    pub(crate) fn prepare(&mut self, offset: usize, len: usize, write: bool) -> Result<(), AccessError> {
        if len == 0 {
            return Ok(());
        }
        let end =
            offset.checked_add(len).filter(|end| *end <= self.memory.byte_size()).ok_or(AccessError::OutOfBounds)?;
        let start = Instant::now();
        for page in offset / PAGE_SIZE..end.div_ceil(PAGE_SIZE) {
            // Naive mode needs two steps for a write; others need at most one.
            for _ in 0..2 {
                if self.ready(page, write) {
                    break;
                }
                self.counters.faults.fetch_add(1, Relaxed);
                match self.serve(page, write) {
                    Ok(true) => {}
                    Ok(false) => return Err(AccessError::OutOfBounds),
                    Err(failure) => {
                        self.failure.get_or_insert(failure);
                        return Err(AccessError::Protect(failure));
                    }
                }
            }
        }
        self.counters.handler_nanos.fetch_add(start.elapsed().as_nanos() as u64, Relaxed);
        Ok(())
    }

    /// Copy the bytes at `offset` into `buf`, for a host function.
    ///
    /// # Safety
    /// No wasm may run on the memory during the call.
    pub(crate) unsafe fn read(&mut self, offset: usize, buf: &mut [u8]) -> Result<(), AccessError> {
        self.prepare(offset, buf.len(), false)?;
        // SAFETY: `prepare` made every page of the range readable, and the
        // caller guarantees no wasm runs to change it.
        buf.copy_from_slice(unsafe { self.memory.reservation().bytes(offset, buf.len()) });
        Ok(())
    }

    /// Copy `data` to `offset`, marking the pages dirty, for a host function.
    ///
    /// # Safety
    /// No wasm may run on the memory during the call, and `data` must not
    /// lie inside the memory.
    pub(crate) unsafe fn write(&mut self, offset: usize, data: &[u8]) -> Result<(), AccessError> {
        self.prepare(offset, data.len(), true)?;
        // SAFETY: `prepare` made every page of the range writable; the
        // caller guarantees that no wasm runs and that `data` lies outside
        // the memory, so the slice is exclusive.
        unsafe { self.memory.reservation().bytes_mut(offset, data.len()) }.copy_from_slice(data);
        Ok(())
    }

    /// Whether `page` is already accessible as asked. Untracked memories
    /// map every accessed page read-write.
    fn ready(&self, page: usize, write: bool) -> bool {
        if write && self.track_writes { self.dirty.get(page) } else { self.accessed.get(page) }
    }
}
