use std::fmt;
use std::sync::{Arc, OnceLock};

/// Size of an OS page and of every page in a page map.
pub const PAGE_SIZE: usize = 4096;

/// The bytes of one page.
pub type PageBytes = [u8; PAGE_SIZE];

/// Index of a 4 KiB page within a memory (byte offset / [`PAGE_SIZE`]).
#[derive(Copy, Clone, Debug, Default, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct PageIndex(pub u64);

impl PageIndex {
    /// Byte offset of the first byte of this page.
    pub fn byte_offset(self) -> u64 {
        self.0 * PAGE_SIZE as u64
    }

    /// The page containing byte `offset`.
    pub fn containing(offset: u64) -> PageIndex {
        PageIndex(offset / PAGE_SIZE as u64)
    }
}

impl fmt::Display for PageIndex {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "page {}", self.0)
    }
}

/// An immutable 4 KiB page, shared by reference counting.
///
/// Cloning a page never copies its bytes, so a page written once can sit in
/// many delta versions and forks at the cost of one allocation.
#[derive(Clone)]
pub struct Page(Arc<PageBytes>);

impl Page {
    /// A new page holding a copy of `bytes`.
    pub fn new(bytes: &PageBytes) -> Page {
        Page(Arc::new(*bytes))
    }

    /// The shared all-zero page. Every call returns the same allocation.
    pub fn zero() -> Page {
        static ZERO: OnceLock<Page> = OnceLock::new();
        ZERO.get_or_init(|| Page(Arc::new([0; PAGE_SIZE]))).clone()
    }

    /// The page's bytes.
    pub fn bytes(&self) -> &PageBytes {
        &self.0
    }

    /// Whether this is the shared zero page (not merely a page of zeros).
    pub fn is_shared_zero(&self) -> bool {
        Arc::ptr_eq(&self.0, &Page::zero().0)
    }
}

impl fmt::Debug for Page {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let nonzero = self.0.iter().filter(|b| **b != 0).count();
        write!(f, "Page({nonzero} non-zero bytes)")
    }
}

impl Page {
    /// Whether both are the same allocation: one page, not merely equal
    /// bytes.
    pub(crate) fn same_allocation(&self, other: &Page) -> bool {
        Arc::ptr_eq(&self.0, &other.0)
    }
}

impl PartialEq for Page {
    fn eq(&self, other: &Page) -> bool {
        Arc::ptr_eq(&self.0, &other.0) || self.0[..] == other.0[..]
    }
}

impl Eq for Page {}
