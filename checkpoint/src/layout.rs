//! Names inside a state directory (DESIGN §5):
//!
//! ```text
//! STATE_DIR/
//!   LOCK                       flock: one host process per state directory
//!   checkpoints/<height:016x>/ immutable once published; MANIFEST + files
//!   log/                       the host's write-ahead log (WAL)
//!   tmp/                       work in progress; wiped at open
//! ```

/// The lock file: one process per state directory.
pub const LOCK_FILE: &str = "LOCK";
/// Published checkpoints, one directory each.
pub const CHECKPOINTS_DIR: &str = "checkpoints";
/// The host's write-ahead log.
pub const WAL_DIR: &str = "log";
/// Work in progress; wiped at open.
pub const TMP_DIR: &str = "tmp";
/// A checkpoint's manifest.
pub const MANIFEST_FILE: &str = "MANIFEST";

/// The directory name of checkpoint `height`.
pub fn checkpoint_dir_name(height: u64) -> String {
    format!("{height:016x}")
}

/// The height named by a checkpoint directory, if `name` is one.
pub fn parse_checkpoint_dir_name(name: &str) -> Option<u64> {
    let canonical = name.len() == 16 && name.bytes().all(|b| b.is_ascii_digit() || (b'a'..=b'f').contains(&b));
    if canonical { u64::from_str_radix(name, 16).ok() } else { None }
}

/// Check a file path relative to a checkpoint directory: `/`-separated
/// components of `[A-Za-z0-9._-]`, no `.` or `..`, and not the manifest.
pub fn validate_rel_path(path: &str) -> Result<(), &'static str> {
    if path.is_empty() || path.len() > 1024 {
        return Err("must be 1 to 1024 bytes long");
    }
    if path == MANIFEST_FILE {
        return Err("MANIFEST is reserved for the checkpoint manifest");
    }
    for component in path.split('/') {
        if component.is_empty() || component == "." || component == ".." {
            return Err("components must be non-empty and not . or ..");
        }
        if !component.bytes().all(|b| b.is_ascii_alphanumeric() || b"._-".contains(&b)) {
            return Err("only ASCII letters, digits, '.', '_' and '-' are allowed");
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn checkpoint_names_round_trip_and_reject_lookalikes() {
        assert_eq!(parse_checkpoint_dir_name(&checkpoint_dir_name(0x2a)), Some(0x2a));
        assert_eq!(parse_checkpoint_dir_name(&checkpoint_dir_name(u64::MAX)), Some(u64::MAX));
        for bad in ["2a", "000000000000002A", "000000000000002a.old", "+00000000000002a", ""] {
            assert_eq!(parse_checkpoint_dir_name(bad), None, "{bad}");
        }
    }

    #[test]
    fn rel_paths_stay_inside_the_checkpoint() {
        assert!(validate_rel_path("canisters/aaaaa-aa/heap.bin").is_ok());
        for bad in ["", "/abs", "a//b", "../x", "a/./b", "a b", "MANIFEST", "a/ü"] {
            assert!(validate_rel_path(bad).is_err(), "{bad}");
        }
    }
}
