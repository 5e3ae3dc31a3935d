//! The write-ahead log (WAL): one record per round, appended and synced
//! before the round's replies are released.
//!
//! The log is a directory of segments `seg-<first height:016x>.log`. A
//! segment starts with a header (magic, first height, the chain value of
//! the record before it, crc32c), followed by frames:
//!
//! ```text
//! magic:u32 "CHRD"  len:u32  crc32c(payload):u32  payload[len]
//! payload = height:u64  prev_chain[32]  body
//! chain   = SHA-256(payload)
//! ```
//!
//! Each payload names the previous record's chain value, so a segment (and
//! the whole log) verifies as a unit: nothing can be dropped, reordered or
//! spliced in without breaking the chain.
//!
//! On open, a partial or garbled record at the very end of the last segment
//! is a torn write from a crash: it is truncated, and that is logged. Damage
//! anywhere else, or a damaged record followed by intact ones, is an error
//! that names the segment and offset; it is never skipped.

mod format;
mod scan;
#[cfg(test)]
mod tests;

use std::io::{self, ErrorKind};
use std::path::{Path, PathBuf};
use std::sync::Arc;

use checkpoint::{Fs, FsFile, RealFs};

pub use format::{Chain, MAX_RECORD_BYTES};
use format::{HEADER_LEN, SegmentHeader};

/// Why the write-ahead log could not be read or written.
#[derive(Debug, thiserror::Error)]
pub enum WalError {
    /// A file operation failed.
    #[error("write-ahead log: {op} {path}: {source}")]
    Io {
        /// What was being done.
        op: &'static str,
        /// To which file or directory.
        path: PathBuf,
        /// The system's error.
        source: io::Error,
    },
    /// A segment is damaged somewhere other than a torn tail.
    #[error(
        "write-ahead log segment {segment} is corrupt at byte {offset}: {reason}; the log cannot be \
         trusted past this point: restore the state directory from a backup"
    )]
    Corrupt {
        /// The damaged segment.
        segment: PathBuf,
        /// Where the damage starts.
        offset: u64,
        /// What is wrong.
        reason: String,
    },
    /// Something other than a segment is in the log directory.
    #[error("write-ahead log: unexpected file {0} in the log directory; move it elsewhere")]
    ForeignFile(PathBuf),
    /// An append would leave a gap or go backwards.
    #[error("write-ahead log: record for height {got} does not follow height {last}")]
    OutOfOrder {
        /// The last record's height.
        last: u64,
        /// The height appended.
        got: u64,
    },
    /// A segment was written in another format version.
    #[error(
        "write-ahead log segment {segment} has format version {found}, and this build reads version 001; open \
         the state directory with the build that wrote it"
    )]
    UnknownFormat {
        /// The segment.
        segment: PathBuf,
        /// The version it has.
        found: String,
    },
    /// A record is too large to append.
    #[error("write-ahead log: a {0}-byte record exceeds the {MAX_RECORD_BYTES}-byte limit")]
    TooLarge(u64),
}

fn io_error(op: &'static str, path: &Path) -> impl FnOnce(io::Error) -> WalError + use<> {
    let path = path.to_path_buf();
    move |source| WalError::Io { op, path, source }
}

/// Where a valid record lies.
#[derive(Clone, Debug)]
pub struct RecordRef {
    /// The round the record is for.
    pub height: u64,
    segment: PathBuf,
    /// Where its frame starts in the segment.
    frame_offset: u64,
    /// Offset of the body within the segment, and its length.
    body_offset: u64,
    body_len: u64,
}

/// A torn record cut off the end of the log.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct TruncatedTail {
    /// The segment it was in.
    pub segment: PathBuf,
    /// How many bytes were cut.
    pub bytes: u64,
}

/// What opening the log found.
#[derive(Debug, Default)]
pub struct Recovered {
    /// Every valid record, in height order.
    pub records: Vec<RecordRef>,
    /// The torn tail cut off, if any.
    pub truncated: Option<TruncatedTail>,
}

struct Segment {
    path: PathBuf,
    first_height: u64,
}

/// The file name of the segment whose first record is round `first`
/// (`seg-<first:016x>.log`: names sort as heights do).
pub fn segment_name(first: u64) -> String {
    format!("seg-{first:016x}.log")
}

/// The first round of the segment file `name`, if it is one.
pub fn segment_first_height(name: &str) -> Option<u64> {
    let hex = name.strip_prefix("seg-")?.strip_suffix(".log").filter(|h| h.len() == 16)?;
    u64::from_str_radix(hex, 16).ok()
}

/// An open write-ahead log, ready to append.
pub struct Wal {
    /// Every file operation goes through it, so the fault-injection sweeps
    /// reach the log as they reach checkpoints.
    fs: Arc<dyn Fs>,
    dir: PathBuf,
    fsync: bool,
    segment_bytes: u64,
    segments: Vec<Segment>,
    /// The active (last) segment and its length.
    active: Option<(Box<dyn FsFile>, u64)>,
    last_height: Option<u64>,
    last_chain: Chain,
    /// Start a new segment at the next append (after a gap).
    roll_next: bool,
    /// Opened to read only: never truncate, remove or append.
    read_only: bool,
}

impl Wal {
    /// Open (creating if needed) the log in `dir`, validating every record.
    /// `fsync` false skips syncing appends (benchmarks only).
    pub fn open(dir: &Path, fsync: bool, segment_bytes: u64) -> Result<(Wal, Recovered), WalError> {
        Wal::open_with(Arc::new(RealFs), dir, fsync, segment_bytes)
    }

    /// [`Wal::open`] on the filesystem `fs`.
    pub fn open_with(
        fs: Arc<dyn Fs>,
        dir: &Path,
        fsync: bool,
        segment_bytes: u64,
    ) -> Result<(Wal, Recovered), WalError> {
        match fs.stat(dir) {
            Ok(_) => {}
            Err(e) if e.kind() == ErrorKind::NotFound => {
                fs.create_dir(dir).map_err(io_error("create", dir))?;
                if let Some(parent) = dir.parent() {
                    fs.sync_dir(parent).map_err(io_error("sync", parent))?;
                }
            }
            Err(e) => return Err(io_error("inspect", dir)(e)),
        }
        Wal::open_mode(fs, dir, fsync, segment_bytes, false)
    }

    /// Validate and list the records without changing anything: a torn
    /// tail just ends the list. For reading a log another process appends
    /// to (replay verification).
    pub fn open_read_only(dir: &Path) -> Result<(Wal, Recovered), WalError> {
        Wal::open_read_only_with(Arc::new(RealFs), dir)
    }

    /// [`Wal::open_read_only`] on the filesystem `fs`.
    pub fn open_read_only_with(fs: Arc<dyn Fs>, dir: &Path) -> Result<(Wal, Recovered), WalError> {
        Wal::open_mode(fs, dir, false, u64::MAX, true)
    }

    /// Height of the last record (or of the record before an empty segment).
    pub fn last_height(&self) -> Option<u64> {
        self.last_height
    }

    /// Make the next record `height + 1` even if the log ends earlier: a
    /// checkpoint at `height` covers the missing rounds (this happens only
    /// when appends are not synced). The next append starts a new segment.
    pub fn continue_after(&mut self, height: u64) {
        if self.last_height.is_none_or(|last| last < height) {
            if self.last_height.is_some() {
                tracing::warn!(
                    from = self.last_height,
                    to = height,
                    "the log ends before the checkpoint; continuing after it"
                );
            }
            self.last_height = Some(height);
            self.roll_next = true;
        }
    }

    /// Read a record's body.
    pub fn read(&self, record: &RecordRef) -> Result<Vec<u8>, WalError> {
        let mut file = self.fs.open_file(&record.segment).map_err(io_error("open", &record.segment))?;
        let mut body = vec![0; record.body_len as usize];
        file.read_at(record.body_offset, &mut body).map_err(io_error("read", &record.segment))?;
        Ok(body)
    }

    /// Append the record of round `height` and (unless disabled) sync it.
    /// Heights must follow each other without gaps.
    pub fn append(&mut self, height: u64, body: &[u8]) -> Result<(), WalError> {
        assert!(!self.read_only, "appending to a log opened read-only");
        if let Some(last) = self.last_height
            && height != last + 1
        {
            return Err(WalError::OutOfOrder { last, got: height });
        }
        let payload = format::payload(height, &self.last_chain, body);
        if payload.len() as u64 > MAX_RECORD_BYTES {
            return Err(WalError::TooLarge(payload.len() as u64));
        }
        let roll = self.roll_next || self.active.as_ref().is_none_or(|(_, len)| *len >= self.segment_bytes);
        if roll {
            self.start_segment(height)?;
            self.roll_next = false;
        }
        let frame = format::frame(&payload);
        let path = &self.segments.last().expect("a segment was started").path;
        let (file, len) = self.active.as_mut().expect("a segment was started");
        file.write_at(*len, &frame).map_err(io_error("append to", path))?;
        if self.fsync {
            file.sync().map_err(io_error("sync", path))?;
        }
        *len += frame.len() as u64;
        self.last_chain = format::chain(&payload);
        self.last_height = Some(height);
        Ok(())
    }

    fn start_segment(&mut self, first_height: u64) -> Result<(), WalError> {
        let path = self.dir.join(segment_name(first_height));
        let header = SegmentHeader { first_height, prev_chain: self.last_chain }.encode();
        let mut file = self.fs.create_file(&path).map_err(io_error("create", &path))?;
        file.write_at(0, &header).map_err(io_error("write", &path))?;
        // The header and the directory entry are made durable even without
        // fsync of appends: a segment must never appear half-created.
        file.sync().map_err(io_error("sync", &path))?;
        sync_dir(&*self.fs, &self.dir)?;
        self.segments.push(Segment { path, first_height });
        self.active = Some((file, HEADER_LEN));
        Ok(())
    }

    /// Seal the active segment, if it holds a record: the next record
    /// goes to a new segment, created now, so the sealed one is final at
    /// once (a shipper may copy it). Returns whether a segment was sealed.
    pub fn seal(&mut self) -> Result<bool, WalError> {
        assert!(!self.read_only, "sealing a log opened read-only");
        let holds_records = self.active.as_ref().is_some_and(|(_, len)| *len > HEADER_LEN);
        match self.last_height {
            Some(last) if holds_records => {
                self.start_segment(last + 1)?;
                self.roll_next = false;
                Ok(true)
            }
            _ => Ok(false),
        }
    }

    /// Delete the segments holding only records at or below `height`
    /// (always keeping the active one).
    pub fn prune_through(&mut self, height: u64) -> Result<usize, WalError> {
        let mut removed = 0;
        while self.segments.len() > 1 && self.segments[1].first_height <= height + 1 {
            let segment = self.segments.remove(0);
            self.fs.remove_file(&segment.path).map_err(io_error("remove", &segment.path))?;
            removed += 1;
        }
        if removed > 0 {
            sync_dir(&*self.fs, &self.dir)?;
        }
        Ok(removed)
    }
}

impl Wal {
    /// Remove every record above `height` (`records` are the ones opening
    /// found): later segments are deleted, newest first, and the segment
    /// holding `height + 1` is cut just before it. For rolling the state
    /// back to a checkpoint; reopen the log afterwards to append. Returns
    /// how many records were removed.
    pub fn truncate_after(&mut self, height: u64, records: &[RecordRef]) -> Result<u64, WalError> {
        assert!(!self.read_only, "truncating a log opened read-only");
        let doomed = records.iter().filter(|r| r.height > height).count() as u64;
        let Some(first) = records.iter().find(|r| r.height > height) else { return Ok(0) };
        self.active = None;
        while let Some(last) = self.segments.last()
            && last.path != first.segment
        {
            self.fs.remove_file(&last.path).map_err(io_error("remove", &last.path))?;
            self.segments.pop();
        }
        let path = &first.segment;
        let mut file = self.fs.open_file_rw(path).map_err(io_error("open", path))?;
        file.set_len(first.frame_offset).map_err(io_error("truncate", path))?;
        file.sync().map_err(io_error("sync", path))?;
        sync_dir(&*self.fs, &self.dir)?;
        self.last_height = Some(height);
        Ok(doomed)
    }
}

fn sync_dir(fs: &dyn Fs, dir: &Path) -> Result<(), WalError> {
    fs.sync_dir(dir).map_err(io_error("sync", dir))
}
