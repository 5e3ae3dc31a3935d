//! Resident memory follows what changed: freed delta pages go back to the
//! operating system after a checkpoint and a deletion, and rewriting a memory does not
//! keep its old checkpoint file resident beside the new pages.
//!
//! The process's own resident size is the measurement, so this binary
//! holds one test: nothing else may allocate beside it.

use std::time::{Duration, Instant};

use candid::Encode;
use canister_host::*;

const OWNER: Principal = Principal::from_slice(&[0xab; 29]);
const MIB: u64 = 1 << 20;
/// A 128 MiB heap: far above what the host keeps resident on its own.
const PAGES: u64 = 128 * MIB / 4096;

/// A `/proc/self/status` field, in bytes.
fn status(key: &str) -> u64 {
    let status = std::fs::read_to_string("/proc/self/status").unwrap();
    let line = status.lines().find(|l| l.starts_with(key)).unwrap();
    line[key.len()..].trim().trim_end_matches("kB").trim().parse::<u64>().unwrap() * 1024
}

/// Wait until a trim finished since `done` were, and none is pending.
fn wait_for_trims(host: &Host, done: u64) {
    let deadline = Instant::now() + Duration::from_secs(60);
    loop {
        let c = host.counters();
        if c.memory_trims > done && c.memory_trims == c.memory_trim_requests {
            return;
        }
        assert!(Instant::now() < deadline, "no trim within 60 s: {c:?}");
        std::thread::sleep(Duration::from_millis(5));
    }
}

fn write_all(host: &Host, id: Principal, value: u8) {
    let arg = Encode!(&testkit::HEAP_START, &PAGES, &4096u64, &false, &value).unwrap();
    host.update_call(id, OWNER, "write_pages", arg).unwrap();
}

#[test]
fn freed_pages_and_old_files_do_not_stay_resident() {
    let dir = tempfile::tempdir().unwrap();
    let config = HostConfig { workers: 1, checkpoint_interval: 1_000_000, fsync: false, ..HostConfig::default() };
    let anon_before = status("RssAnon:");
    let host = Host::open(dir.path(), config).unwrap();
    let id = host.create_canister(OWNER, vec![], None).unwrap();
    host.install_code(OWNER, id, InstallMode::Install, canisters::MEMORY_STRESS.to_vec(), vec![]).unwrap();
    host.update_call(id, OWNER, "grow", Encode!(&(PAGES / 16 + 1)).unwrap()).unwrap();
    write_all(&host, id, 1);
    // 128 MiB of delta pages, plus the instance's own copy.
    assert!(status("RssAnon:") > anon_before + 200 * MIB);

    // The checkpoint writes the heap whole and takes the delta in: the
    // pages are freed, and must leave the process.
    let done = host.counters().memory_trims;
    host.checkpoint().unwrap();
    wait_for_trims(&host, done);
    let anon = status("RssAnon:") - anon_before;
    assert!(anon < 64 * MIB, "{} MiB of anonymous memory stayed after the checkpoint", anon / MIB);

    // Rewriting every page compares each with the checkpoint file: those
    // reads must not keep the file's 128 MiB mapped.
    let file_before = status("RssFile:");
    write_all(&host, id, 2);
    let file = status("RssFile:").saturating_sub(file_before);
    assert!(file < 64 * MIB, "{} MiB of the old file stayed resident after the rewrite", file / MIB);

    // Deleting the canister frees its delta (and its instance) at once.
    assert!(status("RssAnon:") > anon_before + 200 * MIB);
    // Stopping nudges a trim too: let it finish first, or its completion
    // could pass for the deletion's (whose nudge follows the reply).
    let done = host.counters().memory_trims;
    host.stop(OWNER, id).unwrap();
    wait_for_trims(&host, done);
    let done = host.counters().memory_trims;
    host.delete_canister(OWNER, id).unwrap();
    wait_for_trims(&host, done);
    let anon = status("RssAnon:") - anon_before;
    assert!(anon < 64 * MIB, "{} MiB of anonymous memory stayed after the deletion", anon / MIB);
    host.close().unwrap();
}
