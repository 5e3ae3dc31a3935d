//! The log survives reopening, cuts torn tails, refuses damage anywhere
//! else, and keeps its chain across pruning and gaps.

use std::path::Path;

use super::format::FRAME_HEADER;
use super::*;

fn bodies(dir: &Path) -> (Vec<(u64, Vec<u8>)>, Recovered) {
    let (log, recovered) = Wal::open(dir, true, 1 << 20).unwrap();
    let records = recovered.records.iter().map(|r| (r.height, log.read(r).unwrap())).collect();
    (records, recovered)
}

fn write(dir: &Path, heights: std::ops::RangeInclusive<u64>, segment_bytes: u64) {
    let (mut log, _) = Wal::open(dir, true, segment_bytes).unwrap();
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
    let (mut log, _) = Wal::open(tmp.path(), true, 1 << 20).unwrap();
    log.append(5, b"x").unwrap();
    assert!(matches!(log.append(7, b"y"), Err(WalError::OutOfOrder { last: 5, got: 7 })));
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
            assert_eq!(recovered.truncated.as_ref().unwrap().bytes, (cut - third_starts) as u64);
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
        match Wal::open(tmp.path(), true, 1 << 20) {
            Err(WalError::Corrupt { segment: s, offset, .. }) => {
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
    let (mut log, _) = Wal::open(tmp.path(), true, 100).unwrap();
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
    assert!(Wal::open(tmp.path(), true, 100).is_err());
}

#[test]
fn continuing_after_a_checkpoint_leaves_a_verifiable_gap() {
    let tmp = tempfile::tempdir().unwrap();
    write(tmp.path(), 1..=3, 1 << 20);
    let (mut log, _) = Wal::open(tmp.path(), true, 1 << 20).unwrap();
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
    let (_, recovered) = Wal::open_read_only(tmp.path()).unwrap();
    assert_eq!(recovered.records.len(), 2);
    assert_eq!(std::fs::read(&segment).unwrap(), bytes, "a read-only open truncated the log");
}

#[test]
fn foreign_files_are_refused() {
    let tmp = tempfile::tempdir().unwrap();
    std::fs::write(tmp.path().join("notes.txt"), b"hi").unwrap();
    assert!(matches!(Wal::open(tmp.path(), true, 100), Err(WalError::ForeignFile(_))));
}

#[test]
fn a_segment_of_another_format_version_is_refused_by_name() {
    let tmp = tempfile::tempdir().unwrap();
    write(tmp.path(), 1..=2, 1 << 20);
    let segment = std::fs::read_dir(tmp.path()).unwrap().next().unwrap().unwrap().path();
    let mut bytes = std::fs::read(&segment).unwrap();
    bytes[5..8].copy_from_slice(b"002");
    std::fs::write(&segment, &bytes).unwrap();
    for opened in [Wal::open(tmp.path(), true, 1 << 20).map(drop), Wal::open_read_only(tmp.path()).map(drop)] {
        match opened {
            Err(e @ WalError::UnknownFormat { .. }) => assert!(e.to_string().contains("format version 002"), "{e}"),
            other => panic!("expected an unknown-format error, got {other:?}"),
        }
    }
}

#[test]
fn truncating_after_a_height_keeps_the_chain_and_appends_continue() {
    let tmp = tempfile::tempdir().unwrap();
    write(tmp.path(), 1..=12, 100);
    let (mut log, recovered) = Wal::open(tmp.path(), true, 100).unwrap();
    assert_eq!(log.truncate_after(5, &recovered.records).unwrap(), 7);
    assert_eq!(log.truncate_after(12, &recovered.records[..5]).unwrap(), 0);
    drop(log);
    let (records, _) = bodies(tmp.path());
    assert_eq!(records.iter().map(|r| r.0).collect::<Vec<_>>(), [1, 2, 3, 4, 5]);
    // The log continues from 6, chained to 5.
    write(tmp.path(), 6..=7, 100);
    let (records, recovered) = bodies(tmp.path());
    assert_eq!(records.last().unwrap(), &(7, b"round 7".to_vec()));
    assert!(recovered.truncated.is_none());
}

#[test]
fn sealing_starts_the_next_segment_at_once_and_only_after_a_record() {
    let tmp = tempfile::tempdir().unwrap();
    let segments = || std::fs::read_dir(tmp.path()).unwrap().count();
    let (mut log, _) = Wal::open(tmp.path(), true, 1 << 20).unwrap();
    assert!(!log.seal().unwrap(), "nothing to seal in an empty log");
    log.append(1, b"one").unwrap();
    log.append(2, b"two").unwrap();
    assert!(log.seal().unwrap());
    assert_eq!(segments(), 2, "the next segment exists before its first record");
    assert!(!log.seal().unwrap(), "an empty active segment is not sealed again");
    let sealed = std::fs::read(tmp.path().join(format!("seg-{:016x}.log", 1))).unwrap();
    log.append(3, b"three").unwrap();
    assert_eq!(
        std::fs::read(tmp.path().join(format!("seg-{:016x}.log", 1))).unwrap(),
        sealed,
        "a sealed segment changed"
    );
    drop(log);
    // Reopened, the chain runs on through the seal, and appends go on.
    let (records, recovered) = bodies(tmp.path());
    assert_eq!(records.iter().map(|(h, _)| *h).collect::<Vec<_>>(), [1, 2, 3]);
    assert!(recovered.truncated.is_none());
    write(tmp.path(), 4..=4, 1 << 20);
    assert_eq!(bodies(tmp.path()).0.len(), 4);
}

#[test]
fn a_log_closed_just_after_a_seal_reopens_and_appends() {
    let tmp = tempfile::tempdir().unwrap();
    let (mut log, _) = Wal::open(tmp.path(), true, 1 << 20).unwrap();
    log.append(1, b"one").unwrap();
    assert!(log.seal().unwrap());
    drop(log); // the new segment holds only its header
    write(tmp.path(), 2..=3, 1 << 20);
    let (records, recovered) = bodies(tmp.path());
    assert_eq!(records.iter().map(|(h, _)| *h).collect::<Vec<_>>(), [1, 2, 3]);
    assert!(recovered.truncated.is_none());
}
