//! The durable message log: one record per round, appended and synced
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

use std::fs::{File, OpenOptions};
use std::io::{self, Write};
use std::os::unix::fs::FileExt;
use std::path::{Path, PathBuf};

use sha2::{Digest, Sha256};

const SEGMENT_MAGIC: &[u8; 8] = b"CHLOG001";
const HEADER_LEN: u64 = 8 + 8 + 32 + 4;
const FRAME_MAGIC: u32 = u32::from_le_bytes(*b"CHRD");
const FRAME_HEADER: u64 = 12;
/// Records larger than this are refused (and a length field claiming more
/// is damage, not a record).
pub const MAX_RECORD_BYTES: u64 = 1 << 30;

pub type Chain = [u8; 32];

#[derive(Debug, thiserror::Error)]
pub enum LogError {
    #[error("message log: {op} {path}: {source}")]
    Io { op: &'static str, path: PathBuf, source: io::Error },
    #[error(
        "message log segment {segment} is corrupt at byte {offset}: {reason}; the log cannot be \
         trusted past this point: restore the state directory from a backup"
    )]
    Corrupt { segment: PathBuf, offset: u64, reason: String },
    #[error("message log: unexpected file {0} in the log directory; move it elsewhere")]
    ForeignFile(PathBuf),
    #[error("message log: record for height {got} does not follow height {last}")]
    OutOfOrder { last: u64, got: u64 },
    #[error("message log: a {0}-byte record exceeds the {MAX_RECORD_BYTES}-byte limit")]
    TooLarge(u64),
}

fn io_error(op: &'static str, path: &Path) -> impl FnOnce(io::Error) -> LogError + use<> {
    let path = path.to_path_buf();
    move |source| LogError::Io { op, path, source }
}

/// Where a valid record lies.
#[derive(Clone, Debug)]
pub struct RecordRef {
    pub height: u64,
    segment: PathBuf,
    /// Offset of the body within the segment, and its length.
    body_offset: u64,
    body_len: u64,
}

/// What opening the log found.
#[derive(Debug, Default)]
pub struct Recovered {
    /// Every valid record, in height order.
    pub records: Vec<RecordRef>,
    /// Bytes cut off a torn tail, if any.
    pub truncated: Option<(PathBuf, u64)>,
}

struct Segment {
    path: PathBuf,
    first_height: u64,
}

/// An open log, ready to append.
pub struct MessageLog {
    dir: PathBuf,
    fsync: bool,
    segment_bytes: u64,
    segments: Vec<Segment>,
    /// The active (last) segment and its length.
    active: Option<(File, u64)>,
    last_height: Option<u64>,
    last_chain: Chain,
    /// Start a new segment at the next append (after a gap).
    roll_next: bool,
    /// Opened to read only: never truncate, remove or append.
    read_only: bool,
}

impl MessageLog {
    /// Open (creating if needed) the log in `dir`, validating every record.
    /// `fsync` false skips syncing appends (benchmarks only).
    pub fn open(dir: &Path, fsync: bool, segment_bytes: u64) -> Result<(MessageLog, Recovered), LogError> {
        std::fs::create_dir_all(dir).map_err(io_error("create", dir))?;
        MessageLog::open_mode(dir, fsync, segment_bytes, false)
    }

    /// Validate and list the records without changing anything: a torn
    /// tail just ends the list. For reading a log another process appends
    /// to (replay verification).
    pub fn open_read_only(dir: &Path) -> Result<(MessageLog, Recovered), LogError> {
        MessageLog::open_mode(dir, false, u64::MAX, true)
    }

    fn open_mode(
        dir: &Path,
        fsync: bool,
        segment_bytes: u64,
        read_only: bool,
    ) -> Result<(MessageLog, Recovered), LogError> {
        let mut segments = Vec::new();
        for entry in std::fs::read_dir(dir).map_err(io_error("list", dir))? {
            let entry = entry.map_err(io_error("list", dir))?;
            let name = entry.file_name().to_string_lossy().into_owned();
            let first = name.strip_prefix("seg-").and_then(|n| n.strip_suffix(".log")).filter(|h| h.len() == 16);
            match first.and_then(|h| u64::from_str_radix(h, 16).ok()) {
                Some(first_height) => segments.push(Segment { path: entry.path(), first_height }),
                None => return Err(LogError::ForeignFile(entry.path())),
            }
        }
        segments.sort_by_key(|s| s.first_height);
        let mut log = MessageLog {
            dir: dir.to_path_buf(),
            fsync,
            segment_bytes,
            segments: Vec::new(),
            active: None,
            last_height: None,
            last_chain: [0; 32],
            roll_next: false,
            read_only,
        };
        let mut recovered = Recovered::default();
        let count = segments.len();
        for (i, segment) in segments.into_iter().enumerate() {
            let is_last = i + 1 == count;
            match log.scan(&segment, is_last, &mut recovered)? {
                Some(len) => {
                    log.segments.push(segment);
                    if is_last && !read_only {
                        let file = OpenOptions::new().append(true).open(&log.segments[i].path);
                        let file = file.map_err(io_error("open", &log.segments[i].path))?;
                        log.active = Some((file, len));
                    }
                }
                None if read_only => {}
                // A last segment whose header never made it to disk.
                None => {
                    tracing::warn!(segment = %segment.path.display(), "removing a log segment with a torn header");
                    std::fs::remove_file(&segment.path).map_err(io_error("remove", &segment.path))?;
                    sync_dir(dir)?;
                }
            }
        }
        Ok((log, recovered))
    }

    /// Validate one segment; returns its valid length (None: torn header of
    /// the last segment).
    fn scan(&mut self, segment: &Segment, is_last: bool, recovered: &mut Recovered) -> Result<Option<u64>, LogError> {
        let path = &segment.path;
        let bytes = std::fs::read(path).map_err(io_error("read", path))?;
        let corrupt = |offset: u64, reason: String| LogError::Corrupt { segment: path.clone(), offset, reason };
        let header = parse_header(&bytes);
        let (first_height, prev_chain) = match header {
            Some(h) => h,
            // A header is synced before any record is written, so a torn
            // one can only be the whole (last) file.
            None if is_last && bytes.len() as u64 <= HEADER_LEN => return Ok(None),
            None => return Err(corrupt(0, "the segment header is damaged".into())),
        };
        if first_height != segment.first_height {
            return Err(corrupt(
                0,
                format!("the header says height {first_height}, the name {}", segment.first_height),
            ));
        }
        // Heights may jump forward between segments (records a checkpoint
        // already covers may be missing, see `continue_after`), but the
        // chain must continue.
        if self.last_height.is_some() && (prev_chain != self.last_chain || self.last_height >= Some(first_height)) {
            return Err(corrupt(0, "the segment does not continue the previous one (chain or height mismatch)".into()));
        }
        self.last_chain = prev_chain;
        let mut offset = HEADER_LEN;
        let mut expected_height = first_height;
        while offset < bytes.len() as u64 {
            match parse_frame(&bytes, offset) {
                Ok((height, prev, body_offset, body_len, chain)) => {
                    if height != expected_height {
                        return Err(corrupt(offset, format!("height {height} where {expected_height} was expected")));
                    }
                    if prev != self.last_chain {
                        return Err(corrupt(offset, "the record does not chain to the one before it".into()));
                    }
                    recovered.records.push(RecordRef { height, segment: path.clone(), body_offset, body_len });
                    self.last_chain = chain;
                    self.last_height = Some(height);
                    expected_height += 1;
                    offset = body_offset + body_len;
                }
                Err(reason) => {
                    // Only the end of the last segment can be a torn write,
                    // and only if no intact record follows the damage.
                    if is_last && self.read_only && !intact_frame_after(&bytes, offset) {
                        return Ok(Some(offset));
                    }
                    if is_last && !intact_frame_after(&bytes, offset) {
                        tracing::warn!(
                            segment = %path.display(), offset, dropped = bytes.len() as u64 - offset, %reason,
                            "truncating a torn record at the end of the message log"
                        );
                        let file = OpenOptions::new().write(true).open(path).map_err(io_error("open", path))?;
                        file.set_len(offset).map_err(io_error("truncate", path))?;
                        file.sync_all().map_err(io_error("sync", path))?;
                        recovered.truncated = Some((path.clone(), bytes.len() as u64 - offset));
                        return Ok(Some(offset));
                    }
                    return Err(corrupt(offset, reason));
                }
            }
        }
        if self.last_height.is_none() {
            self.last_height = first_height.checked_sub(1);
        }
        Ok(Some(bytes.len() as u64))
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
    pub fn read(&self, record: &RecordRef) -> Result<Vec<u8>, LogError> {
        let file = File::open(&record.segment).map_err(io_error("open", &record.segment))?;
        let mut body = vec![0; record.body_len as usize];
        file.read_exact_at(&mut body, record.body_offset).map_err(io_error("read", &record.segment))?;
        Ok(body)
    }

    /// Append the record of round `height` and (unless disabled) sync it.
    /// Heights must follow each other without gaps.
    pub fn append(&mut self, height: u64, body: &[u8]) -> Result<(), LogError> {
        assert!(!self.read_only, "appending to a log opened read-only");
        if let Some(last) = self.last_height
            && height != last + 1
        {
            return Err(LogError::OutOfOrder { last, got: height });
        }
        let mut payload = Vec::with_capacity(40 + body.len());
        payload.extend_from_slice(&height.to_le_bytes());
        payload.extend_from_slice(&self.last_chain);
        payload.extend_from_slice(body);
        if payload.len() as u64 > MAX_RECORD_BYTES {
            return Err(LogError::TooLarge(payload.len() as u64));
        }
        let roll = self.roll_next || self.active.as_ref().is_none_or(|(_, len)| *len >= self.segment_bytes);
        if roll {
            self.start_segment(height)?;
            self.roll_next = false;
        }
        let mut frame = Vec::with_capacity(FRAME_HEADER as usize + payload.len());
        frame.extend_from_slice(&FRAME_MAGIC.to_le_bytes());
        frame.extend_from_slice(&(payload.len() as u32).to_le_bytes());
        frame.extend_from_slice(&crc32c::crc32c(&payload).to_le_bytes());
        frame.extend_from_slice(&payload);
        let path = &self.segments.last().expect("a segment was started").path;
        let (file, len) = self.active.as_mut().expect("a segment was started");
        file.write_all(&frame).map_err(io_error("append to", path))?;
        if self.fsync {
            file.sync_data().map_err(io_error("sync", path))?;
        }
        *len += frame.len() as u64;
        self.last_chain = Sha256::digest(&payload).into();
        self.last_height = Some(height);
        Ok(())
    }

    fn start_segment(&mut self, first_height: u64) -> Result<(), LogError> {
        let path = self.dir.join(format!("seg-{first_height:016x}.log"));
        let mut header = Vec::with_capacity(HEADER_LEN as usize);
        header.extend_from_slice(SEGMENT_MAGIC);
        header.extend_from_slice(&first_height.to_le_bytes());
        header.extend_from_slice(&self.last_chain);
        header.extend_from_slice(&crc32c::crc32c(&header).to_le_bytes());
        let mut file =
            OpenOptions::new().create_new(true).append(true).open(&path).map_err(io_error("create", &path))?;
        file.write_all(&header).map_err(io_error("write", &path))?;
        // The header and the directory entry are made durable even without
        // fsync of appends: a segment must never appear half-created.
        file.sync_all().map_err(io_error("sync", &path))?;
        sync_dir(&self.dir)?;
        self.segments.push(Segment { path, first_height });
        self.active = Some((file, HEADER_LEN));
        Ok(())
    }

    /// Delete the segments holding only records at or below `height`
    /// (always keeping the active one).
    pub fn prune_through(&mut self, height: u64) -> Result<usize, LogError> {
        let mut removed = 0;
        while self.segments.len() > 1 && self.segments[1].first_height <= height + 1 {
            let segment = self.segments.remove(0);
            std::fs::remove_file(&segment.path).map_err(io_error("remove", &segment.path))?;
            removed += 1;
        }
        if removed > 0 {
            sync_dir(&self.dir)?;
        }
        Ok(removed)
    }
}

fn sync_dir(dir: &Path) -> Result<(), LogError> {
    File::open(dir).and_then(|d| d.sync_all()).map_err(io_error("sync", dir))
}

fn parse_header(bytes: &[u8]) -> Option<(u64, Chain)> {
    let header = bytes.get(..HEADER_LEN as usize)?;
    let (body, crc) = header.split_at(HEADER_LEN as usize - 4);
    if &body[..8] != SEGMENT_MAGIC || crc32c::crc32c(body).to_le_bytes() != crc {
        return None;
    }
    Some((u64::from_le_bytes(body[8..16].try_into().ok()?), body[16..48].try_into().ok()?))
}

/// Parse the frame at `offset`: (height, prev_chain, body offset, body
/// length, chain of this record), or why it is not a valid frame.
fn parse_frame(bytes: &[u8], offset: u64) -> Result<(u64, Chain, u64, u64, Chain), String> {
    let at = offset as usize;
    let header = bytes.get(at..at + FRAME_HEADER as usize).ok_or("the record header is cut short")?;
    let word = |i: usize| u32::from_le_bytes(header[i..i + 4].try_into().expect("4 bytes"));
    if word(0) != FRAME_MAGIC {
        return Err("no record starts here (bad magic)".into());
    }
    let len = u64::from(word(4));
    if !(40..=MAX_RECORD_BYTES).contains(&len) {
        return Err(format!("implausible record length {len}"));
    }
    let start = at + FRAME_HEADER as usize;
    let payload = bytes.get(start..start + len as usize).ok_or("the record is cut short")?;
    if crc32c::crc32c(payload) != word(8) {
        return Err("the record's checksum does not match".into());
    }
    let height = u64::from_le_bytes(payload[..8].try_into().expect("8 bytes"));
    let prev: Chain = payload[8..40].try_into().expect("32 bytes");
    let chain: Chain = Sha256::digest(payload).into();
    Ok((height, prev, start as u64 + 40, len - 40, chain))
}

/// Whether an intact frame starts anywhere after `offset`: if so, damage at
/// `offset` is not a torn tail.
fn intact_frame_after(bytes: &[u8], offset: u64) -> bool {
    let magic = FRAME_MAGIC.to_le_bytes();
    (offset as usize + 1..bytes.len().saturating_sub(3))
        .filter(|&i| bytes[i..i + 4] == magic)
        .any(|i| parse_frame(bytes, i as u64).is_ok())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn bodies(dir: &Path) -> (Vec<(u64, Vec<u8>)>, Recovered) {
        let (log, recovered) = MessageLog::open(dir, true, 1 << 20).unwrap();
        let records = recovered.records.iter().map(|r| (r.height, log.read(r).unwrap())).collect();
        (records, recovered)
    }

    fn write(dir: &Path, heights: std::ops::RangeInclusive<u64>, segment_bytes: u64) {
        let (mut log, _) = MessageLog::open(dir, true, segment_bytes).unwrap();
        for h in heights {
            log.append(h, format!("round {h}").as_bytes()).unwrap();
        }
    }

    #[test]
    fn records_survive_reopen_across_segments() {
        let tmp = tempfile::tempdir().unwrap();
        write(tmp.path(), 1..=10, 100);
        write(tmp.path(), 11..=12, 100);
        let (records, recovered) = bodies(tmp.path());
        assert_eq!(records.len(), 12);
        assert_eq!(records[11], (12, b"round 12".to_vec()));
        assert!(recovered.truncated.is_none());
        assert!(std::fs::read_dir(tmp.path()).unwrap().count() > 3, "segments did not roll over");
    }

    #[test]
    fn heights_must_follow_each_other() {
        let tmp = tempfile::tempdir().unwrap();
        let (mut log, _) = MessageLog::open(tmp.path(), true, 1 << 20).unwrap();
        log.append(5, b"x").unwrap();
        assert!(matches!(log.append(7, b"y"), Err(LogError::OutOfOrder { last: 5, got: 7 })));
    }

    #[test]
    fn every_torn_tail_is_truncated() {
        let tmp = tempfile::tempdir().unwrap();
        write(tmp.path(), 1..=3, 1 << 20);
        let segment = std::fs::read_dir(tmp.path()).unwrap().next().unwrap().unwrap().path();
        let full = std::fs::read(&segment).unwrap();
        let (records, _) = bodies(tmp.path());
        let third_starts = full.len() - (FRAME_HEADER as usize + 40 + records[2].1.len());
        for cut in third_starts..full.len() {
            std::fs::write(&segment, &full[..cut]).unwrap();
            let (records, recovered) = bodies(tmp.path());
            assert_eq!(records.len(), 2, "cut at {cut}");
            if cut > third_starts {
                assert_eq!(recovered.truncated.as_ref().unwrap().1, (cut - third_starts) as u64);
            }
            // The log carries on from the truncation point.
            write(tmp.path(), 3..=3, 1 << 20);
            assert_eq!(bodies(tmp.path()).0.len(), 3);
        }
    }

    #[test]
    fn a_flipped_bit_before_the_tail_is_an_error_naming_the_offset() {
        let tmp = tempfile::tempdir().unwrap();
        write(tmp.path(), 1..=5, 1 << 20);
        let segment = std::fs::read_dir(tmp.path()).unwrap().next().unwrap().unwrap().path();
        let full = std::fs::read(&segment).unwrap();
        // Every byte of the header and of every record but the last.
        let last_len = FRAME_HEADER as usize + 40 + b"round 5".len();
        for byte in 0..full.len() - last_len {
            let mut bad = full.clone();
            bad[byte] ^= 0x10;
            std::fs::write(&segment, &bad).unwrap();
            match MessageLog::open(tmp.path(), true, 1 << 20) {
                Err(LogError::Corrupt { segment: s, offset, .. }) => {
                    assert_eq!(s, segment);
                    assert!(offset <= byte as u64, "byte {byte} reported at {offset}");
                }
                Err(other) => panic!("byte {byte}: {other}"),
                Ok(_) => panic!("a flip at byte {byte} was accepted"),
            }
        }
        std::fs::write(&segment, &full).unwrap();
        assert_eq!(bodies(tmp.path()).0.len(), 5);
    }

    #[test]
    fn pruning_keeps_later_records_verifiable() {
        let tmp = tempfile::tempdir().unwrap();
        write(tmp.path(), 1..=20, 100);
        let (mut log, _) = MessageLog::open(tmp.path(), true, 100).unwrap();
        let removed = log.prune_through(10).unwrap();
        assert!(removed > 0);
        drop(log);
        let (records, _) = bodies(tmp.path());
        assert!(records.first().unwrap().0 <= 11, "pruned a record that was still needed");
        assert_eq!(records.last().unwrap().0, 20);
        // Splicing a segment out breaks the chain.
        let mut paths: Vec<_> = std::fs::read_dir(tmp.path()).unwrap().map(|e| e.unwrap().path()).collect();
        paths.sort();
        std::fs::remove_file(&paths[1]).unwrap();
        assert!(MessageLog::open(tmp.path(), true, 100).is_err());
    }

    #[test]
    fn continuing_after_a_checkpoint_leaves_a_verifiable_gap() {
        let tmp = tempfile::tempdir().unwrap();
        write(tmp.path(), 1..=3, 1 << 20);
        let (mut log, _) = MessageLog::open(tmp.path(), true, 1 << 20).unwrap();
        log.continue_after(10);
        log.append(11, b"after the gap").unwrap();
        drop(log);
        let (records, _) = bodies(tmp.path());
        assert_eq!(records.iter().map(|r| r.0).collect::<Vec<_>>(), vec![1, 2, 3, 11]);
    }

    #[test]
    fn read_only_open_changes_nothing() {
        let tmp = tempfile::tempdir().unwrap();
        write(tmp.path(), 1..=3, 1 << 20);
        let segment = std::fs::read_dir(tmp.path()).unwrap().next().unwrap().unwrap().path();
        let mut bytes = std::fs::read(&segment).unwrap();
        bytes.truncate(bytes.len() - 3);
        std::fs::write(&segment, &bytes).unwrap();
        let (_, recovered) = MessageLog::open_read_only(tmp.path()).unwrap();
        assert_eq!(recovered.records.len(), 2);
        assert_eq!(std::fs::read(&segment).unwrap(), bytes, "a read-only open truncated the log");
    }

    #[test]
    fn foreign_files_are_refused() {
        let tmp = tempfile::tempdir().unwrap();
        std::fs::write(tmp.path().join("notes.txt"), b"hi").unwrap();
        assert!(matches!(MessageLog::open(tmp.path(), true, 100), Err(LogError::ForeignFile(_))));
    }
}
