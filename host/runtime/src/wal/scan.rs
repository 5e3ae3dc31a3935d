//! Opening the log: listing its segments and validating every record, and
//! cutting off a torn tail left by a crash.

use std::path::Path;
use std::sync::Arc;

use checkpoint::{Fs, read_all};

use super::format::{self, Frame, HEADER_LEN, SegmentHeader, intact_frame_after};
use super::{RecordRef, Recovered, Segment, TruncatedTail, Wal, WalError, io_error, sync_dir};

impl Wal {
    pub(super) fn open_mode(
        fs: Arc<dyn Fs>,
        dir: &Path,
        fsync: bool,
        segment_bytes: u64,
        read_only: bool,
    ) -> Result<(Wal, Recovered), WalError> {
        let mut segments = Vec::new();
        for entry in fs.list_dir(dir).map_err(io_error("list", dir))? {
            let name = &entry.name;
            match super::segment_first_height(name) {
                Some(first_height) => segments.push(Segment { path: dir.join(name), first_height }),
                None => return Err(WalError::ForeignFile(dir.join(name))),
            }
        }
        segments.sort_by_key(|s| s.first_height);
        let mut log = Wal {
            fs,
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
                    if is_last && !read_only {
                        let file = log.fs.open_file_rw(&segment.path).map_err(io_error("open", &segment.path))?;
                        log.active = Some((file, len));
                    }
                    log.segments.push(segment);
                }
                None if read_only => {}
                // A last segment whose header never made it to disk.
                None => {
                    tracing::warn!(segment = %segment.path.display(), "removing a log segment with a torn header");
                    log.fs.remove_file(&segment.path).map_err(io_error("remove", &segment.path))?;
                    sync_dir(&*log.fs, dir)?;
                }
            }
        }
        Ok((log, recovered))
    }

    /// Validate one segment; returns its valid length (None: torn header of
    /// the last segment).
    fn scan(&mut self, segment: &Segment, is_last: bool, recovered: &mut Recovered) -> Result<Option<u64>, WalError> {
        let path = &segment.path;
        let bytes = read_all(&*self.fs, path).map_err(io_error("read", path))?;
        let corrupt = |offset: u64, reason: String| WalError::Corrupt { segment: path.clone(), offset, reason };
        if let Some(found) = format::other_version(&bytes) {
            return Err(WalError::UnknownFormat { segment: path.clone(), found });
        }
        let header = SegmentHeader::parse(&bytes);
        let SegmentHeader { first_height, prev_chain } = match header {
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
            match Frame::parse(&bytes, offset) {
                Ok(frame) => {
                    let height = frame.height;
                    if height != expected_height {
                        return Err(corrupt(offset, format!("height {height} where {expected_height} was expected")));
                    }
                    if frame.prev_chain != self.last_chain {
                        return Err(corrupt(offset, "the record does not chain to the one before it".into()));
                    }
                    recovered.records.push(RecordRef {
                        height,
                        segment: path.clone(),
                        frame_offset: offset,
                        body_offset: frame.body_offset,
                        body_len: frame.body_len,
                    });
                    self.last_chain = frame.chain;
                    self.last_height = Some(height);
                    expected_height += 1;
                    offset = frame.end();
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
                            "truncating a torn record at the end of the write-ahead log"
                        );
                        let mut file = self.fs.open_file_rw(path).map_err(io_error("open", path))?;
                        file.set_len(offset).map_err(io_error("truncate", path))?;
                        file.sync().map_err(io_error("sync", path))?;
                        recovered.truncated =
                            Some(TruncatedTail { segment: path.clone(), bytes: bytes.len() as u64 - offset });
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
}
