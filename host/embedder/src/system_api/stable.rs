//! Stable memory: a second page map per canister, outside wasm, accessed
//! only through `ic0.stable*`. A message works on an O(1) copy; the executor
//! keeps the copy only if the message succeeds, so a trap rolls it back.

use std::collections::BTreeSet;

use page_delta::{PageIndex, PageMap};

use crate::units::WasmPages;

/// A message's view of stable memory.
#[derive(Clone, Debug, Default)]
pub struct StableMemory {
    /// The contents, changed in place by the message.
    pub map: PageMap,
    /// Current size.
    pub pages: WasmPages,
    /// The most it may grow to.
    pub limit: WasmPages,
    /// 4 KiB pages written by the current message.
    pub written: BTreeSet<u64>,
}

impl StableMemory {
    /// Stable memory holding `map`, of size `pages`, growable to `limit`.
    pub fn new(map: PageMap, pages: WasmPages, limit: WasmPages) -> StableMemory {
        StableMemory { map, pages, limit, written: BTreeSet::new() }
    }

    /// Current size in bytes.
    pub fn size_bytes(&self) -> u64 {
        self.pages.bytes()
    }

    /// Grow by `new_pages`; the old size in wasm pages, or -1 past the limit.
    pub fn grow(&mut self, new_pages: WasmPages) -> i64 {
        match self.pages.0.checked_add(new_pages.0) {
            Some(total) if total <= self.limit.0 => {
                let old = self.pages;
                self.pages = WasmPages(total);
                old.0 as i64
            }
            _ => -1,
        }
    }

    fn check(&self, offset: u64, len: u64) -> Result<(), String> {
        match offset.checked_add(len) {
            Some(end) if end <= self.size_bytes() => Ok(()),
            _ => Err(format!(
                "stable memory range [{offset}, {offset}+{len}) is outside the stable memory of {} bytes",
                self.size_bytes()
            )),
        }
    }

    /// Copy the bytes at `offset` into `buf`.
    pub fn read(&self, offset: u64, buf: &mut [u8]) -> Result<(), String> {
        self.check(offset, buf.len() as u64)?;
        self.map.read(offset, buf).map_err(|e| e.to_string())
    }

    /// Write `data` at `offset`, remembering the pages written.
    pub fn write(&mut self, offset: u64, data: &[u8]) -> Result<(), String> {
        self.check(offset, data.len() as u64)?;
        if data.is_empty() {
            return Ok(());
        }
        self.map.write(offset, data).map_err(|e| e.to_string())?;
        let first = PageIndex::containing(offset).0;
        let last = PageIndex::containing(offset + data.len() as u64 - 1).0;
        self.written.extend(first..=last);
        Ok(())
    }

    /// The written pages whose bytes differ from `before`.
    pub fn changed_pages(&self, before: &PageMap) -> Vec<PageIndex> {
        self.written
            .iter()
            .map(|p| PageIndex(*p))
            .filter(|p| self.map.get_page(*p)[..] != before.get_page(*p)[..])
            .collect()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn grow_read_write_and_bounds() {
        let mut s = StableMemory::new(PageMap::new(), WasmPages(0), WasmPages(3));
        assert!(s.write(0, b"x").is_err());
        assert_eq!(s.grow(WasmPages(2)), 0);
        assert_eq!(s.grow(WasmPages(2)), -1);
        assert_eq!(s.grow(WasmPages(1)), 2);
        s.write(WasmPages::SIZE - 2, b"abcd").unwrap();
        let mut buf = [0; 4];
        s.read(WasmPages::SIZE - 2, &mut buf).unwrap();
        assert_eq!(&buf, b"abcd");
        assert!(s.read(3 * WasmPages::SIZE - 1, &mut buf).unwrap_err().contains("outside"));
        assert!(s.write(u64::MAX, b"x").is_err());
        let changed = s.changed_pages(&PageMap::new());
        assert_eq!(changed, vec![PageIndex(15), PageIndex(16)]);
    }
}
