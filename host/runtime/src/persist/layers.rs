//! Which files of the newest checkpoint hold each memory, so the next
//! checkpoint writes only the pages that changed.
//!
//! A memory on disk is a base file plus overlay files, oldest first
//! (`checkpoint::overlay`). In memory it is a page map: a base file and a
//! delta. The two meet here: for each base file the host has mapped, the
//! newest checkpoint's base and overlays, and the delta version they hold.
//! A page map sitting on that base whose delta still holds every page of
//! that version (so it descends from it) is those files plus the pages its
//! delta changed since: one overlay. Past the overlay budget the memory is
//! rewritten whole and remapped, which also drops its delta from memory.

use std::collections::HashMap;
use std::sync::Arc;

use checkpoint::FileRef;
use page_delta::{BaseFile, Page, PageDelta, PageIndex, PageMap};

/// Distinct pages a memory's overlays may hold (and so its delta keeps in
/// memory) before a rewrite, whatever the memory's size: 16 MiB. Below
/// this, a rewrite would be cheap to write but would cost the canister its
/// live instance (its memory maps the old file) every few checkpoints.
const MIN_DELTA_BUDGET_PAGES: u64 = 4096;

/// The files of the newest checkpoint that hold one memory.
pub(crate) struct Layers {
    /// The mapped base these files sit on (also keeps its address, the key,
    /// from being reused).
    base_file: Arc<BaseFile>,
    /// A hard link of that base file in the newest checkpoint.
    pub(crate) base: FileRef,
    /// Its overlays, oldest first: the height that wrote each, and where it
    /// is in the newest checkpoint.
    pub(crate) overlays: Vec<(u64, FileRef)>,
    /// Pages in those overlays, counting a page once per overlay.
    overlay_pages: u64,
    /// The delta the base plus the overlays amount to.
    saved: PageDelta,
}

impl Layers {
    /// The layers of `map`: its base file, linked as `base`, with
    /// `overlays` (holding `overlay_pages` pages) making up its delta.
    /// `None` if `map` has no base file.
    pub(crate) fn new(
        map: &PageMap,
        base: FileRef,
        overlays: Vec<(u64, FileRef)>,
        overlay_pages: u64,
    ) -> Option<Layers> {
        let base_file = map.base()?.clone();
        Some(Layers { base_file, base, overlays, overlay_pages, saved: map.delta().clone() })
    }

    /// A memory that is `base` exactly: no overlays.
    pub(crate) fn whole(map: &PageMap, base: FileRef) -> Option<Layers> {
        Layers::new(map, base, vec![], 0)
    }

    /// `map`'s layers after a checkpoint at `height` linked the base to
    /// `base` and the overlays to `overlays` and wrote `new` pages as one
    /// more overlay (the last of `overlays`) if there were any.
    pub(crate) fn linked(&self, map: &PageMap, base: FileRef, overlays: Vec<(u64, FileRef)>, new: u64) -> Layers {
        Layers {
            base_file: self.base_file.clone(),
            base,
            overlays,
            overlay_pages: self.overlay_pages + new,
            saved: map.delta().clone(),
        }
    }
}

/// [`Layers`] by the base file they sit on.
#[derive(Default)]
pub(crate) struct MemoryFiles(HashMap<usize, Vec<Layers>>);

impl MemoryFiles {
    /// Remember `layers`.
    pub(crate) fn insert(&mut self, layers: Layers) {
        self.0.entry(key(&layers.base_file)).or_default().push(layers);
    }

    fn candidates(&self, map: &PageMap) -> &[Layers] {
        map.base().and_then(|base| self.0.get(&key(base))).map_or(&[], Vec::as_slice)
    }
}

fn key(base: &Arc<BaseFile>) -> usize {
    Arc::as_ptr(base) as usize
}

/// How a memory goes into the next checkpoint.
pub(crate) enum MemoryPlan<'a> {
    /// Link `layers`' base and overlays, and write `new` as one more overlay
    /// unless it is empty.
    Layered { layers: &'a Layers, new: Vec<(PageIndex, Page)> },
    /// Rewrite the memory whole over `base`, a file of the newest checkpoint
    /// with the contents of the map's base (`None`: find it by the base's
    /// path, or there is no base).
    Whole { base: Option<FileRef> },
}

/// Decide how `map` is saved: as layers while they stay within budget,
/// otherwise whole. The budget: at most `max_overlays` overlays (bounding
/// the files read when loading), whose distinct pages (the delta kept in
/// memory) are at most a quarter of the base's or
/// [`MIN_DELTA_BUDGET_PAGES`], and whose pages all told (the space on disk,
/// where a hot page is counted once per overlay) at most four times that.
pub(crate) fn plan<'a>(files: &'a MemoryFiles, map: &PageMap, max_overlays: usize) -> MemoryPlan<'a> {
    let candidates = files.candidates(map);
    let delta_budget = (map.base_pages() / 4).max(MIN_DELTA_BUDGET_PAGES);
    for layers in candidates.iter().filter(|_| max_overlays > 0) {
        let Some(new) = map.delta().changes_since(&layers.saved) else { continue };
        let count = layers.overlays.len() + usize::from(!new.is_empty());
        let within = count <= max_overlays
            && map.delta().len() as u64 <= delta_budget
            && layers.overlay_pages + new.len() as u64 <= 4 * delta_budget;
        if within {
            return MemoryPlan::Layered { layers, new };
        }
        break;
    }
    MemoryPlan::Whole { base: candidates.first().map(|l| l.base.clone()) }
}

#[cfg(test)]
mod tests {
    use super::*;
    use page_delta::PAGE_SIZE;

    fn base(pages: u64) -> (tempfile::TempDir, PageMap) {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("base");
        std::fs::write(&path, vec![1u8; (pages * PAGE_SIZE as u64) as usize]).unwrap();
        (dir, PageMap::open(&path).unwrap())
    }

    fn write(map: &mut PageMap, indices: impl IntoIterator<Item = u64>) {
        map.apply(indices.into_iter().map(|i| (PageIndex(i), Page::new(&[7; PAGE_SIZE]))));
    }

    fn file(name: &str) -> FileRef {
        FileRef { height: 1, path: name.into() }
    }

    #[test]
    fn a_descendant_saves_its_new_pages_until_the_budget_is_spent() {
        let (_dir, mut map) = base(16_384); // budget: 4096 distinct pages
        let mut files = MemoryFiles::default();
        files.insert(Layers::whole(&map, file("heap.bin")).unwrap());
        write(&mut map, 0..3);
        let MemoryPlan::Layered { layers, new } = plan(&files, &map, 2) else { panic!("expected layers") };
        assert_eq!(new.len(), 3);
        let next = layers.linked(&map, file("heap.bin"), vec![(2, file("o2"))], 3);

        // Unchanged: no new overlay, still layered.
        let mut files = MemoryFiles::default();
        files.insert(next);
        assert!(matches!(plan(&files, &map, 2), MemoryPlan::Layered { new, .. } if new.is_empty()));
        // A second overlay fits max_overlays = 2; a third would not.
        write(&mut map, [9]);
        let MemoryPlan::Layered { layers, new } = plan(&files, &map, 2) else { panic!("expected layers") };
        assert_eq!(new.len(), 1);
        let next = layers.linked(&map, file("heap.bin"), vec![(2, file("o2")), (3, file("o3"))], 1);
        let mut files = MemoryFiles::default();
        files.insert(next);
        write(&mut map, [10]);
        assert!(matches!(plan(&files, &map, 2), MemoryPlan::Whole { base: Some(b) } if b.path == "heap.bin"));
        // With overlays off, any change is a rewrite.
        assert!(matches!(plan(&files, &map, 0), MemoryPlan::Whole { .. }));
    }

    #[test]
    fn too_many_overlay_pages_or_a_foreign_delta_rewrite_the_memory() {
        let (_dir, map) = base(16_384);
        let mut files = MemoryFiles::default();
        files.insert(Layers::whole(&map, file("heap.bin")).unwrap());
        let mut big = map.fork();
        write(&mut big, 0..4096);
        assert!(matches!(plan(&files, &big, 8), MemoryPlan::Layered { .. }));
        write(&mut big, [4096]);
        assert!(matches!(plan(&files, &big, 8), MemoryPlan::Whole { .. }), "past the delta budget");
        // The same 1000 hot pages rewritten at every checkpoint: few in
        // memory, but counted on disk once per overlay.
        let mut hot = map.fork();
        let mut layers = Layers::whole(&hot, file("heap.bin")).unwrap();
        for round in 0..17u64 {
            write(&mut hot, 0..1000);
            let mut files = MemoryFiles::default();
            files.insert(layers);
            match plan(&files, &hot, 100) {
                MemoryPlan::Layered { layers: l, new } => {
                    assert!(round < 16, "16 overlays of 1000 pages fill four times the budget");
                    layers = l.linked(&hot, file("heap.bin"), vec![], new.len() as u64);
                }
                MemoryPlan::Whole { .. } => {
                    assert_eq!(round, 16);
                    break;
                }
            }
        }
        // A map whose delta lacks pages the saved version holds (say, a
        // snapshot's older state loaded back) cannot be told as an overlay.
        let mut files = MemoryFiles::default();
        files.insert(Layers::whole(&big, file("heap.bin")).unwrap());
        assert!(matches!(plan(&files, &map, 8), MemoryPlan::Whole { .. }));
        // Another base file: no layers apply, and no base is known.
        let (_other, unrelated) = base(4);
        assert!(matches!(plan(&files, &unrelated, 8), MemoryPlan::Whole { base: None }));
    }
}
