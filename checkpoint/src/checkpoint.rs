use std::path::{Path, PathBuf};
use std::sync::Arc;

use page_delta::{Page, PageIndex, PageMap};

use crate::error::{Error, Result};
use crate::fs::{Fs, read_all};
use crate::hash::Hash;
use crate::manifest::Manifest;

/// A file of a published checkpoint, as a source for the next one.
#[derive(Clone, Debug, PartialEq, Eq, Hash)]
pub struct FileRef {
    /// The checkpoint's height.
    pub height: u64,
    /// The file's path inside it.
    pub path: String,
}

/// A published, validated checkpoint.
#[derive(Clone)]
pub struct Checkpoint {
    height: u64,
    dir: PathBuf,
    manifest: Arc<Manifest>,
    fs: Arc<dyn Fs>,
}

impl std::fmt::Debug for Checkpoint {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Checkpoint")
            .field("height", &self.height)
            .field("root", &hex::encode(self.root_hash()))
            .finish()
    }
}

impl Checkpoint {
    pub(crate) fn new(height: u64, dir: PathBuf, manifest: Arc<Manifest>, fs: Arc<dyn Fs>) -> Checkpoint {
        Checkpoint { height, dir, manifest, fs }
    }

    /// Its height.
    pub fn height(&self) -> u64 {
        self.height
    }

    /// Its manifest's root hash.
    pub fn root_hash(&self) -> Hash {
        self.manifest.root_hash()
    }

    /// Its directory.
    pub fn dir(&self) -> &Path {
        &self.dir
    }

    /// Its manifest.
    pub fn manifest(&self) -> &Manifest {
        &self.manifest
    }

    /// Whether it holds `file`.
    pub fn contains(&self, file: &str) -> bool {
        self.manifest.file(file).is_some()
    }

    /// Absolute path of `file`, which must be in the manifest.
    pub fn path(&self, file: &str) -> Result<PathBuf> {
        if !self.contains(file) {
            return Err(Error::NoSuchFile { height: self.height, file: file.to_string() });
        }
        Ok(self.dir.join(file))
    }

    /// A reference to `file` for building the next checkpoint.
    pub fn file_ref(&self, file: &str) -> Result<FileRef> {
        self.path(file)?;
        Ok(FileRef { height: self.height, path: file.to_string() })
    }

    /// The bytes of a (small) file.
    pub fn read(&self, file: &str) -> Result<Vec<u8>> {
        let path = self.path(file)?;
        read_all(self.fs.as_ref(), &path).map_err(Error::io("read", &path))
    }

    /// The pages of an overlay file, ascending.
    pub fn read_overlay(&self, file: &str) -> Result<Vec<(PageIndex, Page)>> {
        crate::overlay::decode_overlay(&self.read(file)?).map_err(|reason| Error::OverlayCorrupt {
            height: self.height,
            file: file.to_string(),
            reason,
        })
    }

    /// Open a memory file as the base of a page map (memory-mapped, so this
    /// needs the real filesystem).
    pub fn open_page_map(&self, file: &str) -> Result<PageMap> {
        let path = self.path(file)?;
        PageMap::open(&path).map_err(|e| Error::io("map", &path)(std::io::Error::other(e.to_string())))
    }
}
