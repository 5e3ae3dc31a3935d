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
//! A fault moves pages to a higher state; [`Tracker::collect_dirty`] keeps
//! the dirty pages whose bytes changed and [`Tracker::rearm`] makes them
//! clean again for the next message.
//!
//! Everything reachable from [`Tracker::fault`] runs inside a signal
//! handler: it allocates nothing, takes no lock and logs nothing. Bitmaps and
//! lists are sized for the memory's maximum when the tracker is built.

use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering::Relaxed};
use std::time::{Duration, Instant};

use nix::errno::Errno;
use page_delta::{PAGE_SIZE, Page, PageDelta, PageIndex, PageMap, RunSource};

use super::bitmap::PageBitmap;
use super::creator::SharedMemory;
use super::reservation::Prot;

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

/// At most this many pages stay writable between messages (see
/// [`Tracker::rearm`]); a message changing more re-protects them all.
const MAX_STICKY_PAGES: usize = 64;
/// A writable page is re-protected once this many messages in a row left
/// it unchanged.
const STICKY_IDLE_MESSAGES: u8 = 16;

/// At most this many separate runs are made readable when a read-mapped
/// memory is set up; past that, the rest are left to faults rather than
/// fragmenting the mapping (each run costs a VMA, see `vm.max_map_count`).
const MAX_SETUP_RUNS: usize = 256;

/// Cumulative fault-handling counters of one tracker.
#[derive(Default)]
struct Counters {
    faults: AtomicU64,
    mprotects: AtomicU64,
    pages_copied: AtomicU64,
    handler_nanos: AtomicU64,
}

/// A snapshot of a tracker's counters.
#[derive(Copy, Clone, Debug, Default, PartialEq, Eq)]
pub struct MemoryCounters {
    pub faults: u64,
    pub mprotects: u64,
    pub pages_copied: u64,
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

/// A failed `mmap`/`mprotect`, remembered by the handler for the executor.
#[derive(Copy, Clone, Debug, PartialEq, Eq)]
pub struct ProtectFailure {
    pub errno: Errno,
    pub first_page: usize,
    pub pages: usize,
}

/// A list of page numbers with a capacity fixed up front; pushing never
/// allocates. The vector stays private so nothing can swap it for one with
/// less capacity.
struct PageList {
    pages: Vec<u32>,
}

impl PageList {
    fn with_capacity(n: usize) -> PageList {
        PageList { pages: Vec::with_capacity(n) }
    }

    fn as_slice(&self) -> &[u32] {
        &self.pages
    }

    /// Copy the pages out, sorted, and empty the list (keeping capacity).
    fn take_sorted(&mut self) -> Vec<u32> {
        let mut out = self.pages.clone();
        self.pages.clear();
        out.sort_unstable();
        out
    }

    fn push(&mut self, page: usize) {
        // Every page enters the lists at most once between rearms (its dirty
        // bit is set when it does), so the capacity, the memory's maximum
        // page count, is never exceeded.
        debug_assert!(self.pages.len() < self.pages.capacity());
        if self.pages.len() < self.pages.capacity() {
            self.pages.push(page as u32);
        }
    }
}

/// Caches the delta's occupancy word for consecutive probes.
struct DeltaProbe<'a> {
    delta: &'a PageDelta,
    word: u64,
    mask: u64,
}

impl<'a> DeltaProbe<'a> {
    fn new(delta: &'a PageDelta) -> DeltaProbe<'a> {
        DeltaProbe { delta, word: u64::MAX, mask: 0 }
    }

    fn contains(&mut self, page: usize) -> bool {
        let word = page as u64 / 64;
        if word != self.word {
            self.word = word;
            self.mask = self.delta.occupancy(word);
        }
        self.mask & (1 << (page % 64)) != 0
    }
}

pub struct Tracker {
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
}

impl Tracker {
    /// Set up tracking for `memory`, whose contents are `contents`. Maps the
    /// base file over the memory unless the mode is naive.
    pub fn new(
        memory: Arc<SharedMemory>,
        contents: PageMap,
        mode: TrackingMode,
        track_writes: bool,
        prefetch_cap: usize,
    ) -> Result<Tracker, ProtectFailure> {
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

    pub fn memory(&self) -> &Arc<SharedMemory> {
        &self.memory
    }

    pub fn counters(&self) -> MemoryCounters {
        MemoryCounters {
            faults: self.counters.faults.load(Relaxed),
            mprotects: self.counters.mprotects.load(Relaxed),
            pages_copied: self.counters.pages_copied.load(Relaxed),
            handler_time: Duration::from_nanos(self.counters.handler_nanos.load(Relaxed)),
        }
    }

    /// The first protection change that failed, if any.
    pub fn failure(&self) -> Option<ProtectFailure> {
        self.failure
    }

    /// Handle a fault at `addr` (`write` when the access kind is known to be
    /// a write). Returns false for addresses this memory does not own or
    /// cannot serve, so that the fault becomes a wasm trap (or a crash, for
    /// host code). Signal-safe.
    pub fn fault(&mut self, addr: usize, write: bool) -> bool {
        let Some(page) = self.memory.reservation().page_of(addr) else { return false };
        let start = Instant::now();
        self.counters.faults.fetch_add(1, Relaxed);
        let handled = match self.serve(page, write) {
            Ok(handled) => handled,
            Err(failure) => {
                self.failure.get_or_insert(failure);
                false
            }
        };
        self.counters.handler_nanos.fetch_add(start.elapsed().as_nanos() as u64, Relaxed);
        handled
    }

    /// Make bytes `offset..offset + len` readable, or writable (and marked
    /// dirty) if `write`, without waiting for faults. For host functions
    /// that access wasm memory. The range must lie within the memory.
    pub fn prepare(&mut self, offset: usize, len: usize, write: bool) -> Result<(), PrepareError> {
        if len == 0 {
            return Ok(());
        }
        let end =
            offset.checked_add(len).filter(|end| *end <= self.memory.byte_size()).ok_or(PrepareError::OutOfBounds)?;
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
                    Ok(false) => return Err(PrepareError::OutOfBounds),
                    Err(failure) => {
                        self.failure.get_or_insert(failure);
                        return Err(PrepareError::Protect(failure));
                    }
                }
            }
        }
        self.counters.handler_nanos.fetch_add(start.elapsed().as_nanos() as u64, Relaxed);
        Ok(())
    }

    /// Copy the bytes at `offset` into `buf`, for a host function.
    pub fn read(&mut self, offset: usize, buf: &mut [u8]) -> Result<(), PrepareError> {
        self.prepare(offset, buf.len(), false)?;
        // SAFETY: `prepare` made every page of the range readable, and wasm
        // is paused while a host function runs on the store's thread.
        buf.copy_from_slice(unsafe { self.memory.reservation().bytes(offset, buf.len()) });
        Ok(())
    }

    /// Copy `data` to `offset`, marking the pages dirty, for a host function.
    pub fn write(&mut self, offset: usize, data: &[u8]) -> Result<(), PrepareError> {
        self.prepare(offset, data.len(), true)?;
        // SAFETY: `prepare` made every page of the range writable; wasm is
        // paused, and `data` cannot point into the reservation (host
        // functions copy wasm memory out before writing it back).
        unsafe { self.memory.reservation().bytes_mut(offset, data.len()) }.copy_from_slice(data);
        Ok(())
    }

    /// Whether `page` is already accessible as asked. Untracked memories
    /// map every accessed page read-write.
    fn ready(&self, page: usize, write: bool) -> bool {
        if write && self.track_writes { self.dirty.get(page) } else { self.accessed.get(page) }
    }

    /// Serve a fault on `page`. `Ok(false)`: not a fault this tracker can
    /// explain (outside the memory's current size, or already accessible).
    fn serve(&mut self, page: usize, write: bool) -> Result<bool, ProtectFailure> {
        let size_pages = self.size_pages();
        if page >= size_pages {
            return Ok(false);
        }
        match self.mode {
            TrackingMode::Naive => self.serve_naive(page),
            TrackingMode::Prefetch | TrackingMode::ReadMapped => self.serve_prefetch(page, write, size_pages),
            // Only pages added by growth fault: map the rest of the memory.
            TrackingMode::Untracked => {
                let first = page - self.run_back(page, page, |t, p| !t.accessed.get(p));
                self.map_run(first, size_pages, Prot::ReadWrite)?;
                self.accessed.set_range(first, size_pages - first);
                Ok(true)
            }
        }
    }

    /// One page per fault; the access kind is ignored, as the IC's basic
    /// handler did: the first fault copies the page in and maps it
    /// read-only, a second one (a write) makes it writable.
    fn serve_naive(&mut self, page: usize) -> Result<bool, ProtectFailure> {
        if !self.accessed.get(page) {
            self.protect(page, 1, Prot::ReadWrite)?;
            self.copy_in(page);
            if self.track_writes {
                self.protect(page, 1, Prot::Read)?;
            }
            self.accessed.set(page);
            return Ok(true);
        }
        if self.track_writes && !self.dirty.get(page) {
            self.protect(page, 1, Prot::ReadWrite)?;
            self.dirty.set(page);
            self.written.push(page);
            return Ok(true);
        }
        Ok(false)
    }

    fn serve_prefetch(&mut self, page: usize, write: bool, size_pages: usize) -> Result<bool, ProtectFailure> {
        let reach = self.prefetch_cap - 1;
        let track_write = write && self.track_writes;
        if !self.accessed.get(page) {
            // Untouched pages around the fault: the most one fault may map.
            let floor = page - self.run_back(page, reach, |t, p| !t.accessed.get(p));
            let ceiling = page + 1 + self.run_fwd(page, size_pages, reach, |t, p| !t.accessed.get(p));
            // The predicted run: as many pages ahead as were just touched
            // behind (and vice versa), so sequential access doubles it. A
            // write predicts from pages this message wrote: pages merely
            // mapped (as read-mapped memory maps all at setup) say nothing
            // about where the next write goes.
            let touched = |t: &Tracker, p: usize| if track_write { t.dirty.get(p) } else { t.accessed.get(p) };
            let ahead = self.run_back(page, reach, touched);
            let behind = self.run_fwd(page, size_pages, reach, touched);
            let (mut lo, mut hi) = (page.saturating_sub(behind).max(floor), (page + 1 + ahead).min(ceiling));
            if !track_write {
                // Reads may widen over pages that need no copy: it costs
                // nothing but a larger mprotect. Writes do not, since every
                // page made writable must be compared after the message.
                let mut probe = DeltaProbe::new(self.contents.delta());
                while lo > floor && !probe.contains(lo - 1) {
                    lo -= 1;
                }
                while hi < ceiling && !probe.contains(hi) {
                    hi += 1;
                }
            }
            let prot = if self.track_writes && !write { Prot::Read } else { Prot::ReadWrite };
            self.map_run(lo, hi, prot)?;
            self.accessed.set_range(lo, hi - lo);
            if track_write {
                self.mark_dirty(page, lo, hi);
            }
            return Ok(true);
        }
        if self.track_writes && !self.dirty.get(page) {
            // A clean page faulted, so this is a write (whatever the access
            // kind said, if it was known at all). Make a run of clean pages
            // writable, predicted from the dirty pages next to it.
            let clean = |t: &Tracker, p: usize| t.accessed.get(p) && !t.dirty.get(p);
            let floor = page - self.run_back(page, reach, clean);
            let ceiling = page + 1 + self.run_fwd(page, size_pages, reach, clean);
            let ahead = self.run_back(page, reach, |t, p| t.dirty.get(p));
            let behind = self.run_fwd(page, size_pages, reach, |t, p| t.dirty.get(p));
            let (lo, hi) = (page.saturating_sub(behind).max(floor), (page + 1 + ahead).min(ceiling));
            self.protect(lo, hi - lo, Prot::ReadWrite)?;
            self.mark_dirty(page, lo, hi);
            return Ok(true);
        }
        // Already accessible as asked: not a fault this tracker explains.
        Ok(false)
    }

    /// Pages immediately before `page` satisfying `pred`, at most `limit`.
    fn run_back(&self, page: usize, limit: usize, pred: impl Fn(&Tracker, usize) -> bool) -> usize {
        let mut n = 0;
        while n < limit && n < page && pred(self, page - n - 1) {
            n += 1;
        }
        n
    }

    /// Pages immediately after `page` (below `end`) satisfying `pred`.
    fn run_fwd(&self, page: usize, end: usize, limit: usize, pred: impl Fn(&Tracker, usize) -> bool) -> usize {
        let mut n = 0;
        while n < limit && page + n + 1 < end && pred(self, page + n + 1) {
            n += 1;
        }
        n
    }

    fn mark_dirty(&mut self, page: usize, lo: usize, hi: usize) {
        for p in lo..hi {
            if !self.dirty.get(p) {
                self.dirty.set(p);
                if p == page { self.written.push(p) } else { self.speculative.push(p) }
            }
        }
    }

    /// Make `lo..hi` accessible with `prot`, copying in the delta pages.
    fn map_run(&self, lo: usize, hi: usize, prot: Prot) -> Result<(), ProtectFailure> {
        let mut probe = DeltaProbe::new(self.contents.delta());
        let has_delta = (lo..hi).any(|p| probe.contains(p));
        if !has_delta {
            return self.protect(lo, hi - lo, prot);
        }
        self.protect(lo, hi - lo, Prot::ReadWrite)?;
        for p in lo..hi {
            if probe.contains(p) {
                self.copy_in(p);
            }
        }
        if prot != Prot::ReadWrite { self.protect(lo, hi - lo, prot) } else { Ok(()) }
    }

    /// Copy page `page`'s committed contents into the (writable) memory,
    /// unless the memory already holds them: zero pages of an anonymous
    /// mapping, and file pages of a mapped base file.
    fn copy_in(&self, page: usize) {
        let index = PageIndex(page as u64);
        let unmapped_file_page = page >= self.file_pages && (page as u64) < self.contents.base_pages();
        let needed = unmapped_file_page || self.contents.delta().get(index).is_some();
        if needed {
            // SAFETY: callers make the page writable first, and nothing else
            // runs on this memory while the tracker serves a fault.
            unsafe { self.memory.reservation().write_page(page, self.contents.get_page(index)) };
            self.counters.pages_copied.fetch_add(1, Relaxed);
        }
    }

    fn protect(&self, first: usize, count: usize, prot: Prot) -> Result<(), ProtectFailure> {
        self.counters.mprotects.fetch_add(1, Relaxed);
        self.memory.reservation().protect(first, count, prot).map_err(|errno| ProtectFailure {
            errno,
            first_page: first,
            pages: count,
        })
    }

    /// After a successful message: the dirty pages whose bytes differ from
    /// the committed contents, in page order. Pages written with their old
    /// bytes, and prefetched pages never written, are dropped.
    pub fn collect_dirty(&mut self) -> Vec<(PageIndex, Page)> {
        let mut candidates: Vec<u32> =
            self.written.as_slice().iter().chain(self.speculative.as_slice()).copied().collect();
        candidates.sort_unstable();
        let mut out = Vec::with_capacity(candidates.len());
        for p in candidates {
            let index = PageIndex(u64::from(p));
            // SAFETY: every listed page is dirty, hence mapped read-write;
            // no wasm code runs while the executor collects.
            let now = unsafe { self.memory.reservation().page(p as usize) };
            if now != self.contents.get_page(index) {
                out.push((index, Page::new(now)));
            }
        }
        out
    }

    /// Start the next message: `contents` is the newly committed state (the
    /// memory's bytes) and `changed` the pages the message changed (as
    /// `collect_dirty` returned them, in order).
    ///
    /// Dirty pages are made clean (read-only) again, except that recently
    /// changed pages stay writable: pages a message changes (its stack, its
    /// argument buffers, hot data) are usually changed again soon, and
    /// comparing a writable page after a message (a 4 KiB `memcmp`) costs far
    /// less than the fault, `mprotect` and TLB shootdown of re-protecting it.
    /// They stay listed, so every message compares them and the dirty set
    /// stays exact. A page counts as used when it changed or took a write
    /// fault (written with the same bytes: a stack slot, say); one unused
    /// for `STICKY_IDLE_MESSAGES` messages in a row is re-protected. Naive
    /// mode re-protects everything, like the IC before its optimisations.
    pub fn rearm(&mut self, contents: PageMap, changed: &[PageIndex]) -> Result<(), ProtectFailure> {
        self.contents = contents;
        let written = self.written.take_sorted();
        let mut pages: Vec<u32> = written.iter().copied().chain(self.speculative.take_sorted()).collect();
        pages.sort_unstable();
        let previous = std::mem::take(&mut self.sticky);
        if self.mode != TrackingMode::Naive && changed.len() <= MAX_STICKY_PAGES {
            let mut changed = changed.iter().map(|p| p.0 as u32).peekable();
            for &p in &pages {
                while changed.peek().is_some_and(|c| *c < p) {
                    changed.next();
                }
                let idle = if changed.peek() == Some(&p) || written.binary_search(&p).is_ok() {
                    Some(0)
                } else {
                    let before = previous.binary_search_by_key(&p, |(q, _)| *q).ok().map(|i| previous[i].1);
                    before.map(|idle| idle + 1).filter(|idle| *idle < STICKY_IDLE_MESSAGES)
                };
                if let Some(idle) = idle
                    && self.sticky.len() < MAX_STICKY_PAGES
                {
                    self.sticky.push((p, idle));
                }
            }
            pages.retain(|p| self.sticky.binary_search_by_key(p, |(q, _)| *q).is_err());
            for &(p, _) in &self.sticky {
                self.speculative.push(p as usize);
            }
        }
        let mut i = 0;
        while i < pages.len() {
            let first = pages[i] as usize;
            let mut n = 1;
            while i + n < pages.len() && pages[i + n] as usize == first + n {
                n += 1;
            }
            self.protect(first, n, Prot::Read)?;
            for p in first..first + n {
                self.dirty.clear(p);
            }
            i += n;
        }
        Ok(())
    }
}

/// Why a host function could not access wasm memory.
#[derive(Copy, Clone, Debug, PartialEq, Eq)]
pub enum PrepareError {
    OutOfBounds,
    Protect(ProtectFailure),
}
