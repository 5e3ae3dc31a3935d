//! After a message: collecting the pages it changed, and re-arming the
//! memory for the next one (with "sticky" pages that stay writable).

use page_delta::{Page, PageIndex, PageMap};

use super::{Tracker, TrackingMode};
use crate::backend::ProtectFailure;
use crate::reservation::Prot;

/// At most this many pages stay writable between messages (see
/// [`Tracker::rearm`]); a message changing more re-protects them all.
const MAX_STICKY_PAGES: usize = 64;
/// A writable page is re-protected once this many messages in a row left
/// it unchanged.
const STICKY_IDLE_MESSAGES: u8 = 16;
/// After comparing this many dirty pages against the base file's mapping,
/// its resident pages are released: each comparison maps the old page,
/// and a memory rewritten page by page would otherwise keep its whole old
/// file resident beside the new pages until the next checkpoint. 32 MiB
/// bounds that, at one `madvise` per 8192 first writes.
const RELEASE_BASE_AFTER: usize = 8192;

impl Tracker {
    /// After a successful message: the dirty pages whose bytes differ from
    /// the committed contents, in page order. Pages written with their old
    /// bytes, and prefetched pages never written, are dropped.
    ///
    /// # Safety
    /// No wasm may run on the memory during the call.
    pub(crate) unsafe fn collect_dirty(&mut self) -> Vec<(PageIndex, Page)> {
        let mut candidates: Vec<u32> =
            self.written.as_slice().iter().chain(self.speculative.as_slice()).copied().collect();
        candidates.sort_unstable();
        let mut out = Vec::with_capacity(candidates.len());
        for p in candidates {
            let index = PageIndex(u64::from(p));
            // SAFETY: every listed page is dirty, hence mapped read-write,
            // and the caller guarantees no wasm runs to change it.
            let now = unsafe { self.memory.reservation().page(p as usize) };
            let (before, from_base) = self.contents.get_page_traced(index);
            if now != before {
                out.push((index, Page::new(now)));
            }
            self.base_reads += usize::from(from_base);
            if self.base_reads >= RELEASE_BASE_AFTER {
                self.contents.release_base_resident();
                self.base_reads = 0;
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
    pub(crate) fn rearm(&mut self, contents: PageMap, changed: &[PageIndex]) -> Result<(), ProtectFailure> {
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
                self.speculative.push(p as usize)?;
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
