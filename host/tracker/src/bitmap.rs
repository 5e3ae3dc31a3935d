//! A fixed-size bitmap of pages, sized before execution so the fault
//! handler never allocates. Pages beyond it read as unset and are never
//! set: it never panics, since it is used inside a signal handler.

pub(crate) struct PageBitmap {
    words: Box<[u64]>,
}

impl PageBitmap {
    pub(crate) fn new(pages: usize) -> PageBitmap {
        PageBitmap { words: vec![0; pages.div_ceil(64)].into_boxed_slice() }
    }

    pub(crate) fn get(&self, page: usize) -> bool {
        self.words.get(page / 64).is_some_and(|w| w & (1 << (page % 64)) != 0)
    }

    pub(crate) fn set(&mut self, page: usize) {
        if let Some(w) = self.words.get_mut(page / 64) {
            *w |= 1 << (page % 64);
        }
    }

    pub(crate) fn clear(&mut self, page: usize) {
        if let Some(w) = self.words.get_mut(page / 64) {
            *w &= !(1 << (page % 64));
        }
    }

    pub(crate) fn set_range(&mut self, first: usize, count: usize) {
        for page in first..first.saturating_add(count) {
            self.set(page);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn set_clear_and_ranges() {
        let mut b = PageBitmap::new(200);
        b.set_range(60, 10);
        assert!((60..70).all(|p| b.get(p)));
        assert!(!b.get(59) && !b.get(70));
        b.clear(64);
        assert!(!b.get(64) && b.get(63) && b.get(65));
        b.set(199);
        assert!(b.get(199));
        // Beyond the end: unset, and setting it is refused without a panic.
        b.set(256);
        assert!(!b.get(256) && !b.get(usize::MAX));
    }
}
