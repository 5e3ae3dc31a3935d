//! Pages and persistent page maps: the in-memory half of orthogonal persistence.
//!
//! A canister memory (heap or stable) is a [`PageMap`]: an optional read-only
//! *base* (a checkpoint file mapped with `memmap2`, see [`BaseFile`]) overlaid
//! by a [`PageDelta`], the pages written since that checkpoint. The delta is a
//! persistent map (`rpds`), so forking a page map (an O(1) copy) is cheap: a
//! query can run on a fork while updates keep applying new pages to the live
//! map, and the fork never sees them.
//!
//! Pages are immutable and shared by `Arc` ([`Page`]); one process-wide zero
//! page stands for every page that was never written.
//!
//! The executor uses [`PageMap::runs`] to decide, for a range of pages, which
//! can be mapped straight from the base file (no copy), which are zero, and
//! which must be copied in from the delta. [`PageDelta::occupancy`] answers the
//! same question for 64 pages at a time without allocating, for use inside a
//! signal handler.

#![deny(unsafe_code)]

#[allow(unsafe_code)] // maps checkpoint files (memmap2)
mod base_file;
mod delta;
mod page;
mod page_map;

pub use base_file::BaseFile;
pub use delta::PageDelta;
pub use page::{PAGE_SIZE, Page, PageBytes, PageIndex};
pub use page_map::{PageMap, PageMapError, Run, RunSource};
