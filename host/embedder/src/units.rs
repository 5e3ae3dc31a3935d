//! Units that are easy to mix up: a wasm page is 64 KiB, an OS page (the
//! unit of tracking, page maps and checkpoints) is 4 KiB, and sizes in bytes
//! are plain `u64`s.

use page_delta::PAGE_SIZE;

/// A number of 64 KiB wasm pages: the unit of `memory.grow`,
/// `memory.size` and the stable memory API.
#[derive(Copy, Clone, Debug, Default, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct WasmPages(pub u64);

impl WasmPages {
    /// Bytes in one wasm page.
    pub const SIZE: u64 = 64 * 1024;

    /// The whole wasm pages in `bytes` (rounding down).
    pub const fn from_bytes(bytes: u64) -> WasmPages {
        WasmPages(bytes / WasmPages::SIZE)
    }

    /// The size in bytes (saturating; sizes are bounded far below that).
    pub const fn bytes(self) -> u64 {
        self.0.saturating_mul(WasmPages::SIZE)
    }

    /// The size in 4 KiB OS pages.
    pub const fn os_pages(self) -> u64 {
        self.0.saturating_mul(WasmPages::SIZE / PAGE_SIZE as u64)
    }
}

impl std::fmt::Display for WasmPages {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{} wasm pages", self.0)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn conversions() {
        assert_eq!(WasmPages(3).bytes(), 196_608);
        assert_eq!(WasmPages(3).os_pages(), 48);
        assert_eq!(WasmPages::from_bytes(196_608 + 65_535), WasmPages(3));
        assert_eq!(WasmPages(u64::MAX).bytes(), u64::MAX);
    }
}
