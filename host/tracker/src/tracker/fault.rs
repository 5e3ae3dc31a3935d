//! Serving faults: the handler's path (and the host's explicit accesses,
//! which take the same path without faulting). Everything here runs inside
//! a signal handler: no allocation, no lock, no logging.

use std::sync::atomic::Ordering::Relaxed;
use std::time::Instant;

use page_delta::PageIndex;

use super::lists::DeltaProbe;
use super::{Tracker, TrackingMode};
use crate::backend::ProtectFailure;
use crate::reservation::Prot;

impl Tracker {
    /// Handle a fault at `addr` (`write` when the access kind is known to be
    /// a write). Returns false for addresses this memory does not own or
    /// cannot serve, so that the fault becomes a wasm trap (or a crash, for
    /// host code). Signal-safe.
    pub(crate) fn fault(&mut self, addr: usize, write: bool) -> bool {
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

    /// Serve a fault on `page`. `Ok(false)`: not a fault this tracker can
    /// explain (outside the memory's current size, or already accessible).
    pub(super) fn serve(&mut self, page: usize, write: bool) -> Result<bool, ProtectFailure> {
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
            self.copy_in(page)?;
            if self.track_writes {
                self.protect(page, 1, Prot::Read)?;
            }
            self.accessed.set(page);
            return Ok(true);
        }
        if self.track_writes && !self.dirty.get(page) {
            self.protect(page, 1, Prot::ReadWrite)?;
            self.dirty.set(page);
            self.written.push(page)?;
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
                self.mark_dirty(page, lo, hi)?;
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
            self.mark_dirty(page, lo, hi)?;
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

    fn mark_dirty(&mut self, page: usize, lo: usize, hi: usize) -> Result<(), ProtectFailure> {
        for p in lo..hi {
            if !self.dirty.get(p) {
                self.dirty.set(p);
                if p == page { self.written.push(p)? } else { self.speculative.push(p)? }
            }
        }
        Ok(())
    }

    /// Make `lo..hi` accessible with `prot`, copying in the delta pages.
    pub(super) fn map_run(&self, lo: usize, hi: usize, prot: Prot) -> Result<(), ProtectFailure> {
        let mut probe = DeltaProbe::new(self.contents.delta());
        let has_delta = (lo..hi).any(|p| probe.contains(p));
        if !has_delta {
            return self.protect(lo, hi - lo, prot);
        }
        self.protect(lo, hi - lo, Prot::ReadWrite)?;
        for p in lo..hi {
            if probe.contains(p) {
                self.copy_in(p)?;
            }
        }
        if prot != Prot::ReadWrite { self.protect(lo, hi - lo, prot) } else { Ok(()) }
    }

    /// Copy page `page`'s committed contents into the (writable) memory,
    /// unless the memory already holds them: zero pages of an anonymous
    /// mapping, and file pages of a mapped base file.
    pub(super) fn copy_in(&self, page: usize) -> Result<(), ProtectFailure> {
        let index = PageIndex(page as u64);
        let unmapped_file_page = page >= self.file_pages && (page as u64) < self.contents.base_pages();
        let needed = unmapped_file_page || self.contents.delta().get(index).is_some();
        if needed {
            // SAFETY: callers make the page writable first, and nothing else
            // runs on this memory while the tracker serves a fault.
            unsafe { self.memory.reservation().write_page(page, self.contents.get_page(index)) }
                .map_err(|errno| ProtectFailure { errno, first_page: page, pages: 1 })?;
            self.counters.pages_copied.fetch_add(1, Relaxed);
        }
        Ok(())
    }

    pub(super) fn protect(&self, first: usize, count: usize, prot: Prot) -> Result<(), ProtectFailure> {
        self.counters.mprotects.fetch_add(1, Relaxed);
        self.memory.reservation().protect(first, count, prot).map_err(|errno| ProtectFailure {
            errno,
            first_page: first,
            pages: count,
        })
    }
}
