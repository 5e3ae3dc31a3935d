//! The disk's floor: appending the bytes one round adds to the log, then
//! `fdatasync`, with nothing else. No durable round can be cheaper.

use std::io::Write;

use super::{BenchError, Runner};
use crate::suite::error::CaseContext;

/// The case, which the host and load groups name as a baseline.
pub(super) const FLOOR: &str = "disk/append_fdatasync";

/// Measure the floor for appends of `bytes` (once per run).
pub(super) fn floor(r: &mut Runner, bytes: u64) -> Result<(), BenchError> {
    if r.has(FLOOR) {
        return Ok(());
    }
    let path = r.scratch().join("disk-floor.log");
    let mut file = std::fs::OpenOptions::new().create(true).append(true).open(&path).case(FLOOR)?;
    let record = vec![0x5a; bytes.max(1) as usize];
    let result = r.latency(FLOOR, &[], || {
        file.write_all(&record).case(FLOOR)?;
        file.sync_data().case(FLOOR)
    })?;
    result.counts.insert("bytes".into(), bytes);
    std::fs::remove_file(&path).case(FLOOR)
}
