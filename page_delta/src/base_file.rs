use std::fs::File;
use std::path::{Path, PathBuf};
use std::sync::Arc;

use memmap2::{Mmap, MmapOptions};

use crate::page::{PAGE_SIZE, PageBytes, PageIndex};
use crate::page_map::PageMapError;

/// A checkpoint memory file, opened read-only and mapped into the process.
///
/// The file must not change while it is mapped. Checkpoint files are
/// immutable once published, and the host holds the state directory's lock,
/// so that holds unless someone edits the state directory behind its back.
/// (Truncating a mapped file would make later reads raise `SIGBUS`.)
pub struct BaseFile {
    path: PathBuf,
    file: File,
    map: Option<Mmap>,
    pages: u64,
}

impl BaseFile {
    /// Open and map `path`. Its length must be a whole number of pages.
    pub fn open(path: &Path) -> Result<Arc<BaseFile>, PageMapError> {
        let open_error = |source| PageMapError::Open { path: path.to_path_buf(), source };
        let file = File::open(path).map_err(open_error)?;
        let len = file.metadata().map_err(open_error)?.len();
        if len % PAGE_SIZE as u64 != 0 {
            return Err(PageMapError::UnalignedBase { path: path.to_path_buf(), len });
        }
        let map = if len == 0 {
            None
        } else {
            // SAFETY: the mapping is read-only and the file is an immutable
            // checkpoint file (see the type's documentation), so the bytes
            // behind the returned slices never change while mapped.
            Some(unsafe { MmapOptions::new().map(&file) }.map_err(open_error)?)
        };
        Ok(Arc::new(BaseFile { path: path.to_path_buf(), file, map, pages: len / PAGE_SIZE as u64 }))
    }

    /// The file's path.
    pub fn path(&self) -> &Path {
        &self.path
    }

    /// The open file, for mapping it elsewhere (the executor maps it into
    /// wasm linear memory).
    pub fn file(&self) -> &File {
        &self.file
    }

    /// Length of the file in pages.
    pub fn num_pages(&self) -> u64 {
        self.pages
    }

    /// The bytes of page `index`, or `None` past the end of the file.
    pub fn page(&self, index: PageIndex) -> Option<&PageBytes> {
        if index.0 >= self.pages {
            return None;
        }
        let map = self.map.as_ref()?;
        let start = index.0 as usize * PAGE_SIZE;
        map[start..start + PAGE_SIZE].try_into().ok()
    }

    /// Give up this process's mappings of the pages reads brought in
    /// (`MADV_DONTNEED`). They stay in the page cache and a later read
    /// maps them again; until then they no longer count in the process's
    /// resident memory. Reads through [`BaseFile::page`] keep each page
    /// they touched mapped, so a memory rewritten page by page would
    /// otherwise hold its old file resident beside the new pages.
    pub fn release_resident(&self) {
        if let Some(map) = &self.map {
            // SAFETY: the mapping is a read-only shared mapping of an
            // immutable file (see the type's documentation): after
            // MADV_DONTNEED the next access faults the same bytes back in
            // from the page cache, so no slice handed out ever sees other
            // bytes, even one read concurrently.
            // The advice only unmaps; failing leaves the pages mapped.
            let _ = unsafe { map.unchecked_advise(memmap2::UncheckedAdvice::DontNeed) };
        }
    }

    /// The whole file as one slice (empty for an empty file).
    pub fn bytes(&self) -> &[u8] {
        self.map.as_deref().unwrap_or(&[])
    }
}

impl std::fmt::Debug for BaseFile {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("BaseFile").field("path", &self.path).field("pages", &self.pages).finish()
    }
}
