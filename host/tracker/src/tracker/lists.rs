//! Allocation-free helpers of the fault path: a page list of fixed
//! capacity, and a cached probe of the page delta's occupancy.

use page_delta::PageDelta;

use crate::backend::ProtectFailure;

/// A list of page numbers with a capacity fixed up front; pushing never
/// allocates. The vector stays private so nothing can swap it for one with
/// less capacity.
pub(super) struct PageList {
    pages: Vec<u32>,
}

impl PageList {
    pub(super) fn with_capacity(n: usize) -> PageList {
        PageList { pages: Vec::with_capacity(n) }
    }

    pub(super) fn as_slice(&self) -> &[u32] {
        &self.pages
    }

    /// Copy the pages out, sorted, and empty the list (keeping capacity).
    pub(super) fn take_sorted(&mut self) -> Vec<u32> {
        let mut out = self.pages.clone();
        self.pages.clear();
        out.sort_unstable();
        out
    }

    /// Add `page`, or report (never panic, never allocate) that the list is
    /// full. Every page enters the lists at most once between rearms (its
    /// dirty bit is set when it does), so the capacity, the memory's
    /// maximum page count, is only exceeded by a bug.
    pub(super) fn push(&mut self, page: usize) -> Result<(), ProtectFailure> {
        match u32::try_from(page) {
            Ok(page) if self.pages.len() < self.pages.capacity() => {
                self.pages.push(page);
                Ok(())
            }
            _ => Err(ProtectFailure::list_full(page)),
        }
    }
}

/// Caches the delta's occupancy word for consecutive probes.
pub(super) struct DeltaProbe<'a> {
    delta: &'a PageDelta,
    word: u64,
    mask: u64,
}

impl<'a> DeltaProbe<'a> {
    pub(super) fn new(delta: &'a PageDelta) -> DeltaProbe<'a> {
        DeltaProbe { delta, word: u64::MAX, mask: 0 }
    }

    pub(super) fn contains(&mut self, page: usize) -> bool {
        let word = page as u64 / 64;
        if word != self.word {
            self.word = word;
            self.mask = self.delta.occupancy(word);
        }
        self.mask & (1 << (page % 64)) != 0
    }
}
