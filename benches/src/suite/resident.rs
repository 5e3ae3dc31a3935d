//! The process's resident memory, from `/proc/self/status`, and a reset of
//! its peak, so a case can measure what it alone made resident.

use std::io::Write as _;

/// `VmRSS` and `VmHWM` (peak), in bytes; `None` off Linux or when procfs
/// is missing.
pub(crate) fn resident() -> Option<(u64, u64)> {
    let status = std::fs::read_to_string("/proc/self/status").ok()?;
    let field = |key: &str| -> Option<u64> {
        let line = status.lines().find(|l| l.starts_with(key))?;
        let kib: u64 = line[key.len()..].trim().trim_end_matches("kB").trim().parse().ok()?;
        Some(kib * 1024)
    };
    Some((field("VmRSS:")?, field("VmHWM:")?))
}

/// Reset the peak (`VmHWM`) to the current resident size (writing 5 to
/// `clear_refs`, Linux 4.0 and later). Returns whether it could.
pub(crate) fn reset_peak() -> bool {
    std::fs::OpenOptions::new().write(true).open("/proc/self/clear_refs").and_then(|mut f| f.write_all(b"5")).is_ok()
}
