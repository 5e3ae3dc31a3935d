//! The request-status journal: finished calls' statuses, appended as they
//! finish, so a restarted server still certifies them for as long as the
//! IC would (agents polling across a restart find their answer, and a
//! retried request is not run twice).
//!
//! Each record is framed as `len: u32 LE | crc32c: u32 LE | CBOR`. A torn
//! tail (the process killed mid-append) fails its check and is dropped on
//! load. Appends are written, not fsynced: a status is a convenience over
//! the host's log, which alone holds what was acknowledged, so surviving a
//! killed process (the page cache) is enough. The file is rewritten with
//! only live records on load and whenever appends outnumber them.

use std::fs::{File, OpenOptions};
use std::io::{Read, Write};
use std::path::{Path, PathBuf};

use serde::{Deserialize, Serialize};

use crate::statuses::{RequestId, Status};

/// Largest record accepted on load (a reply is at most a few MiB).
const MAX_RECORD: usize = 64 << 20;

/// A finished call as journaled.
#[derive(Clone, Debug, Serialize, Deserialize)]
pub(crate) struct Record {
    #[serde(with = "serde_bytes")]
    pub id: RequestId,
    #[serde(with = "serde_bytes")]
    pub sender: Vec<u8>,
    /// Wall-clock time it finished, nanoseconds since the epoch.
    pub finished_ns: u64,
    pub status: Status,
}

/// The open journal.
pub(crate) struct Journal {
    path: PathBuf,
    file: File,
    /// Records in the file.
    records: usize,
}

impl Journal {
    /// Open the journal at `path` and return the records `keep` accepts;
    /// the file is rewritten to hold just those.
    pub fn open(path: &Path, keep: impl Fn(&Record) -> bool) -> std::io::Result<(Journal, Vec<Record>)> {
        if let Some(parent) = path.parent() {
            std::fs::create_dir_all(parent)?;
        }
        let mut bytes = Vec::new();
        match File::open(path) {
            Ok(mut f) => drop(f.read_to_end(&mut bytes)?),
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => {}
            Err(e) => return Err(e),
        }
        let records: Vec<Record> = decode_all(&bytes).into_iter().filter(|r| keep(r)).collect();
        let journal = Journal::rewrite(path, &records)?;
        Ok((journal, records))
    }

    /// Replace the file with exactly `records` (write a copy, rename it
    /// over: a crash leaves the old file or the new one).
    pub fn rewrite(path: &Path, records: &[Record]) -> std::io::Result<Journal> {
        let tmp = path.with_extension("tmp");
        let mut out = Vec::new();
        for record in records {
            out.extend(frame(record));
        }
        std::fs::write(&tmp, &out)?;
        std::fs::rename(&tmp, path)?;
        let file = OpenOptions::new().append(true).open(path)?;
        Ok(Journal { path: path.to_path_buf(), file, records: records.len() })
    }

    /// Append `record`.
    pub fn append(&mut self, record: &Record) -> std::io::Result<()> {
        self.file.write_all(&frame(record))?;
        self.records += 1;
        Ok(())
    }

    /// Records in the file.
    pub fn records(&self) -> usize {
        self.records
    }

    /// Where it lives.
    pub fn path(&self) -> &Path {
        &self.path
    }
}

fn frame(record: &Record) -> Vec<u8> {
    // Encoding plain data into a Vec cannot fail.
    let payload = serde_cbor::to_vec(record).expect("a record encodes");
    let mut out = Vec::with_capacity(payload.len() + 8);
    out.extend((payload.len() as u32).to_le_bytes());
    out.extend(crc32c::crc32c(&payload).to_le_bytes());
    out.extend(payload);
    out
}

/// Every intact record, up to the first damaged one.
fn decode_all(mut bytes: &[u8]) -> Vec<Record> {
    let mut records = Vec::new();
    while bytes.len() >= 8 {
        let len = u32::from_le_bytes(bytes[0..4].try_into().expect("4 bytes")) as usize;
        let crc = u32::from_le_bytes(bytes[4..8].try_into().expect("4 bytes"));
        let Some(payload) = bytes.get(8..8 + len).filter(|_| len <= MAX_RECORD) else { break };
        if crc32c::crc32c(payload) != crc {
            break;
        }
        let Ok(record) = serde_cbor::from_slice(payload) else { break };
        records.push(record);
        bytes = &bytes[8 + len..];
    }
    records
}

#[cfg(test)]
mod tests {
    use super::*;

    fn record(n: u8) -> Record {
        Record { id: [n; 32], sender: vec![4], finished_ns: n as u64, status: Status::Replied(vec![n; 3]) }
    }

    #[test]
    fn records_survive_reopening_and_a_torn_tail_is_dropped() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("statuses.journal");
        let (mut journal, loaded) = Journal::open(&path, |_| true).unwrap();
        assert!(loaded.is_empty());
        for n in 1..=3 {
            journal.append(&record(n)).unwrap();
        }
        drop(journal);
        // A fourth record cut short, as by a kill mid-write.
        let torn = frame(&record(4));
        let mut f = OpenOptions::new().append(true).open(&path).unwrap();
        f.write_all(&torn[..torn.len() - 2]).unwrap();
        drop(f);

        let (journal, loaded) = Journal::open(&path, |r| r.finished_ns != 2).unwrap();
        let ids: Vec<u8> = loaded.iter().map(|r| r.id[0]).collect();
        assert_eq!(ids, [1, 3]);
        assert_eq!(journal.records(), 2);
        // The rewrite kept exactly the live records.
        let (_, again) = Journal::open(&path, |_| true).unwrap();
        assert_eq!(again.iter().map(|r| r.id[0]).collect::<Vec<_>>(), [1, 3]);
    }

    #[test]
    fn a_corrupted_record_ends_the_journal() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("statuses.journal");
        let (mut journal, _) = Journal::open(&path, |_| true).unwrap();
        journal.append(&record(1)).unwrap();
        journal.append(&record(2)).unwrap();
        drop(journal);
        let mut bytes = std::fs::read(&path).unwrap();
        let last = bytes.len() - 1;
        bytes[last] ^= 0xff;
        std::fs::write(&path, bytes).unwrap();
        let (_, loaded) = Journal::open(&path, |_| true).unwrap();
        assert_eq!(loaded.iter().map(|r| r.id[0]).collect::<Vec<_>>(), [1]);
    }
}
