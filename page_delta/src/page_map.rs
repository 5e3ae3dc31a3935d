use std::io;
use std::ops::Range;
use std::path::{Path, PathBuf};
use std::sync::Arc;

use crate::base_file::BaseFile;
use crate::delta::PageDelta;
use crate::page::{PAGE_SIZE, Page, PageBytes, PageIndex};

const ZERO_PAGE: PageBytes = [0; PAGE_SIZE];

/// Why a page map could not be opened or written.
#[derive(Debug, thiserror::Error)]
#[allow(missing_docs)] // fields are named by what they hold; each message says the rest
pub enum PageMapError {
    /// The base file could not be opened or mapped.
    #[error("cannot open memory file {path}: {source}")]
    Open { path: PathBuf, source: io::Error },
    #[error(
        "memory file {path} is {len} bytes, not a whole number of {PAGE_SIZE}-byte pages; \
         it is truncated or not a memory file"
    )]
    /// The base file is not a whole number of pages.
    UnalignedBase { path: PathBuf, len: u64 },
    /// A byte range does not fit in 64 bits.
    #[error("byte range of {len} bytes at offset {offset} overflows the 64-bit address space")]
    RangeOverflow { offset: u64, len: u64 },
}

/// Where the pages of a [`Run`] come from.
#[derive(Copy, Clone, Debug, PartialEq, Eq)]
pub enum RunSource {
    /// Pages of the base file: map them, no copy needed.
    File,
    /// Past the end of the base file and not in the delta: all zeros.
    Zero,
    /// Pages in the delta: they must be copied in.
    Delta,
}

/// A maximal run of consecutive pages with the same [`RunSource`].
#[derive(Copy, Clone, Debug, PartialEq, Eq)]
pub struct Run {
    /// Its first page.
    pub start: PageIndex,
    /// Its length in pages.
    pub len: u64,
    /// Where its bytes come from.
    pub source: RunSource,
}

/// A memory: an optional read-only base file overlaid by a [`PageDelta`].
///
/// Reads look in the delta first, then the base, then fall back to zero.
/// Cloning (or [`PageMap::fork`]) is O(1) and the clone is isolated from
/// later writes to either side.
#[derive(Clone, Default)]
pub struct PageMap {
    base: Option<Arc<BaseFile>>,
    delta: PageDelta,
}

impl PageMap {
    /// An all-zero memory with no base file.
    pub fn new() -> PageMap {
        PageMap::default()
    }

    /// A memory whose contents are exactly those of `base`.
    pub fn with_base(base: Arc<BaseFile>) -> PageMap {
        PageMap { base: Some(base), delta: PageDelta::new() }
    }

    /// Open `path` as the base of a new page map.
    pub fn open(path: &Path) -> Result<PageMap, PageMapError> {
        Ok(PageMap::with_base(BaseFile::open(path)?))
    }

    /// The base file, if any.
    pub fn base(&self) -> Option<&Arc<BaseFile>> {
        self.base.as_ref()
    }

    /// Length of the base file in pages (0 without a base).
    pub fn base_pages(&self) -> u64 {
        self.base.as_ref().map_or(0, |b| b.num_pages())
    }

    /// Whether `other` sits on the very same base file (the same mapping,
    /// not merely equal contents), or both have none.
    pub fn same_base(&self, other: &PageMap) -> bool {
        match (&self.base, &other.base) {
            (Some(a), Some(b)) => Arc::ptr_eq(a, b),
            (None, None) => true,
            _ => false,
        }
    }

    /// The pages written since the base.
    pub fn delta(&self) -> &PageDelta {
        &self.delta
    }

    /// The contents of page `index`: delta first, then base, then zero.
    pub fn get_page(&self, index: PageIndex) -> &PageBytes {
        self.get_page_traced(index).0
    }

    /// [`PageMap::get_page`], and whether the bytes came from the base
    /// file's mapping (which then keeps the page resident until
    /// [`PageMap::release_base_resident`]).
    pub fn get_page_traced(&self, index: PageIndex) -> (&PageBytes, bool) {
        if let Some(page) = self.delta.get(index) {
            return (page.bytes(), false);
        }
        match self.base.as_ref().and_then(|b| b.page(index)) {
            Some(bytes) => (bytes, true),
            None => (&ZERO_PAGE, false),
        }
    }

    /// Unmap the base file's pages that reads made resident (see
    /// [`BaseFile::release_resident`]).
    pub fn release_base_resident(&self) {
        if let Some(base) = &self.base {
            base.release_resident();
        }
    }

    /// Copy `buf.len()` bytes starting at byte `offset` into `buf`.
    pub fn read(&self, offset: u64, buf: &mut [u8]) -> Result<(), PageMapError> {
        check_range(offset, buf.len())?;
        let mut done = 0;
        while done < buf.len() {
            let at = offset + done as u64;
            let in_page = (at % PAGE_SIZE as u64) as usize;
            let n = (PAGE_SIZE - in_page).min(buf.len() - done);
            let page = self.get_page(PageIndex::containing(at));
            buf[done..done + n].copy_from_slice(&page[in_page..in_page + n]);
            done += n;
        }
        Ok(())
    }

    /// Write `data` at byte `offset`, as one batch of new pages.
    pub fn write(&mut self, offset: u64, data: &[u8]) -> Result<(), PageMapError> {
        check_range(offset, data.len())?;
        let mut pages = Vec::with_capacity(data.len() / PAGE_SIZE + 2);
        let mut done = 0;
        while done < data.len() {
            let at = offset + done as u64;
            let index = PageIndex::containing(at);
            let in_page = (at % PAGE_SIZE as u64) as usize;
            let n = (PAGE_SIZE - in_page).min(data.len() - done);
            let mut bytes = *self.get_page(index);
            bytes[in_page..in_page + n].copy_from_slice(&data[done..done + n]);
            pages.push((index, Page::new(&bytes)));
            done += n;
        }
        self.delta.apply(pages);
        Ok(())
    }

    /// Apply whole dirty pages; they win over what the map held.
    pub fn apply<I: IntoIterator<Item = (PageIndex, Page)>>(&mut self, dirty: I) {
        self.delta.apply(dirty);
    }

    /// A fork: an O(1) copy that later writes to `self` do not affect (and
    /// that does not affect `self`). "Snapshot" is kept for canister
    /// snapshots.
    pub fn fork(&self) -> PageMap {
        self.clone()
    }

    /// This memory as a page map on `onto`, a base file holding exactly the
    /// contents of `written`: `onto` plus the pages where this memory
    /// differs from `written`. `written` must sit on the same base file as
    /// this map (or both on none); `None` if it does not.
    ///
    /// This is how a memory moves onto the file a checkpoint just wrote
    /// while it kept changing: `written` is the version the checkpoint
    /// wrote, `self` the version now. It costs the pages in either delta.
    pub fn rebased(&self, written: &PageMap, onto: Arc<BaseFile>) -> Option<PageMap> {
        if !self.same_base(written) {
            return None;
        }
        let mut pages = Vec::new();
        // Pages this map wrote: kept unless `written` holds the very same
        // page (and so `onto` has it).
        for (index, page) in self.delta.iter() {
            if !written.delta.get(index).is_some_and(|w| w.same_allocation(page)) {
                pages.push((index, page.clone()));
            }
        }
        // Pages only `written` wrote: `onto` has them, this map has the
        // base's (or zeros).
        for (index, _) in written.delta.iter().filter(|(index, _)| self.delta.get(*index).is_none()) {
            pages.push((index, Page::new(self.get_page(index))));
        }
        pages.sort_unstable_by_key(|(index, _)| *index);
        let mut map = PageMap::with_base(onto);
        map.apply(pages);
        Some(map)
    }

    /// Split `range` into maximal runs by where their bytes come from.
    pub fn runs(&self, range: Range<PageIndex>) -> Vec<Run> {
        let mut runs = RunBuilder { runs: Vec::new(), base_end: self.base_pages() };
        let mut cursor = range.start.0;
        for (index, _) in self.delta.range(range.clone()) {
            runs.gap(cursor, index.0);
            runs.push(index.0, index.0 + 1, RunSource::Delta);
            cursor = index.0 + 1;
        }
        runs.gap(cursor, range.end.0);
        runs.runs
    }
}

struct RunBuilder {
    runs: Vec<Run>,
    base_end: u64,
}

impl RunBuilder {
    /// Pages `from..to` that are not in the delta: file-backed below the end
    /// of the base file, zero above it.
    fn gap(&mut self, from: u64, to: u64) {
        self.push(from, to.min(self.base_end), RunSource::File);
        self.push(from.max(self.base_end), to, RunSource::Zero);
    }

    fn push(&mut self, start: u64, end: u64, source: RunSource) {
        if start >= end {
            return;
        }
        match self.runs.last_mut() {
            Some(last) if last.source == source && last.start.0 + last.len == start => last.len += end - start,
            _ => self.runs.push(Run { start: PageIndex(start), len: end - start, source }),
        }
    }
}

fn check_range(offset: u64, len: usize) -> Result<(), PageMapError> {
    match offset.checked_add(len as u64) {
        Some(_) => Ok(()),
        None => Err(PageMapError::RangeOverflow { offset, len: len as u64 }),
    }
}

impl std::fmt::Debug for PageMap {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("PageMap").field("base", &self.base).field("delta", &self.delta).finish()
    }
}
