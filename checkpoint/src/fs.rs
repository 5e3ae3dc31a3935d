//! Every file operation the checkpoint code performs goes through [`Fs`], so
//! tests can swap in the fault-injecting [`crate::sim::SimFs`].

use std::any::Any;
use std::io;
use std::ops::Range;
use std::path::Path;

/// What a directory entry is.
#[derive(Copy, Clone, Debug, PartialEq, Eq)]
pub enum EntryKind {
    /// A regular file.
    File,
    /// A directory.
    Dir,
    /// Symlinks, sockets and anything else a state directory never holds.
    Other,
}

/// One entry of a directory listing.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct DirEntry {
    /// The name, lossily decoded; names that are not UTF-8 are foreign anyway.
    pub name: String,
    /// What it is.
    pub kind: EntryKind,
}

/// What `stat` reports.
#[derive(Copy, Clone, Debug, PartialEq, Eq)]
pub struct Stat {
    /// What it is.
    pub kind: EntryKind,
    /// Its length in bytes.
    pub len: u64,
}

/// A held exclusive lock; dropping it releases the lock.
pub type LockGuard = Box<dyn Any + Send + Sync>;

/// The file operations used by state directories and checkpoints.
pub trait Fs: Send + Sync + 'static {
    /// Create one directory; fails if it exists.
    fn create_dir(&self, path: &Path) -> io::Result<()>;
    /// The entries of a directory.
    fn list_dir(&self, path: &Path) -> io::Result<Vec<DirEntry>>;
    /// Information about `path` itself (symlinks are not followed).
    fn stat(&self, path: &Path) -> io::Result<Stat>;
    /// Remove a file.
    fn remove_file(&self, path: &Path) -> io::Result<()>;
    /// Remove a directory and everything in it.
    fn remove_dir_all(&self, path: &Path) -> io::Result<()>;
    /// Rename, failing with `AlreadyExists` rather than replacing `to`.
    fn rename_noreplace(&self, from: &Path, to: &Path) -> io::Result<()>;
    /// Create `to` as another name of `from`.
    fn hard_link(&self, from: &Path, to: &Path) -> io::Result<()>;
    /// Make the directory's entries durable.
    fn sync_dir(&self, path: &Path) -> io::Result<()>;
    /// Create a new, empty file for reading and writing; fails if it exists.
    fn create_file(&self, path: &Path) -> io::Result<Box<dyn FsFile>>;
    /// Open an existing file for reading (and syncing).
    fn open_file(&self, path: &Path) -> io::Result<Box<dyn FsFile>>;
    /// Open an existing file for reading and writing.
    fn open_file_rw(&self, path: &Path) -> io::Result<Box<dyn FsFile>>;
    /// Create `to` with the contents of `from`, sharing storage where the
    /// filesystem can and keeping holes where it cannot.
    fn clone_file(&self, from: &Path, to: &Path) -> io::Result<Box<dyn FsFile>>;
    /// Take an exclusive lock on `path` (created if missing). Fails with
    /// `WouldBlock` while someone else holds it.
    fn lock(&self, path: &Path) -> io::Result<(LockGuard, Box<dyn FsFile>)>;
}

/// An open file. Reads and writes are positional.
pub trait FsFile: Send {
    /// Fill `buf` from `offset`; reading past the end is an error.
    fn read_at(&mut self, offset: u64, buf: &mut [u8]) -> io::Result<()>;
    /// Write `data` at `offset`.
    fn write_at(&mut self, offset: u64, data: &[u8]) -> io::Result<()>;
    /// Truncate or extend (with zeros) to `len` bytes.
    fn set_len(&mut self, len: u64) -> io::Result<()>;
    /// The file's length in bytes.
    fn size(&mut self) -> io::Result<u64>;
    /// Make the contents durable (fsync).
    fn sync(&mut self) -> io::Result<()>;
    /// Byte ranges that may hold data, in order; the rest reads as zeros.
    fn data_ranges(&mut self) -> io::Result<Vec<Range<u64>>>;
    /// Write `range` out to the device and wait for it, without a cache
    /// flush: pacing, not durability (only [`FsFile::sync`] is durable). A
    /// writer that calls it after each piece keeps little unwritten data
    /// queued, so other files' syncs meanwhile do not wait behind a burst.
    fn write_out(&mut self, _range: Range<u64>) {}
}

/// Read a whole file.
pub fn read_all(fs: &dyn Fs, path: &Path) -> io::Result<Vec<u8>> {
    let mut file = fs.open_file(path)?;
    let mut buf = vec![0; file.size()? as usize];
    file.read_at(0, &mut buf)?;
    Ok(buf)
}
