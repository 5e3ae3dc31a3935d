//! Checkpoints that cost the pages that changed: a memory's base file is
//! hard-linked from checkpoint to checkpoint and each checkpoint adds an
//! overlay of the changed pages, until the overlay budget makes it rewrite
//! the memory whole. Every state must reopen exactly.

use std::os::unix::fs::MetadataExt;
use std::path::{Path, PathBuf};

use candid::Encode;
use canister_host::*;

const OWNER: Principal = Principal::from_slice(&[0xaa; 29]);
/// Pages the canister's heap holds data in.
const DATA_PAGES: u64 = 1024;

fn config(max_overlays: usize) -> HostConfig {
    HostConfig {
        workers: 1,
        checkpoint_interval: 1_000_000,
        time: TimeSource::Deterministic { start: 1_000_000_000, step: 1_000 },
        max_overlays,
        ..HostConfig::default()
    }
}

/// A memory-stress canister with `DATA_PAGES` pages of heap written.
fn dense_canister(host: &Host) -> Principal {
    let id = host.create_canister(OWNER, vec![], Some("stress".into())).unwrap();
    host.install_code(OWNER, id, InstallMode::Install, canisters::MEMORY_STRESS.to_vec(), vec![]).unwrap();
    host.update_call(id, OWNER, "grow", Encode!(&(DATA_PAGES / 16 + 1)).unwrap()).unwrap();
    write_pages(host, id, 0, DATA_PAGES, 1);
    id
}

/// Write one byte into each of `count` pages from data page `first`.
fn write_pages(host: &Host, id: Principal, first: u64, count: u64, value: u8) {
    let offset = testkit::HEAP_START + first * 4096;
    host.update_call(id, OWNER, "write_pages", Encode!(&offset, &count, &4096u64, &false, &value).unwrap()).unwrap();
}

fn checkpoint_dir(state: &Path, height: u64) -> PathBuf {
    state.join("checkpoints").join(format!("{height:016x}"))
}

fn canister_file(state: &Path, height: u64, id: Principal, name: &str) -> PathBuf {
    checkpoint_dir(state, height).join("canisters").join(id.to_text()).join(name)
}

/// The heap's overlay files in checkpoint `height`, by name.
fn heap_overlays(state: &Path, height: u64, id: Principal) -> Vec<String> {
    let dir = canister_file(state, height, id, "");
    let mut names: Vec<String> = std::fs::read_dir(dir)
        .unwrap()
        .map(|e| e.unwrap().file_name().into_string().unwrap())
        .filter(|n| n.starts_with("heap.") && n.ends_with(".overlay"))
        .collect();
    names.sort();
    names
}

fn inode(path: &Path) -> u64 {
    std::fs::metadata(path).unwrap().ino()
}

/// Reopen the state directory and check it holds exactly `digest`.
fn reopens_to(state: &Path, max_overlays: usize, digest: [u8; 32]) {
    let host = Host::open(state, config(max_overlays)).unwrap();
    assert!(host.recovery().skipped_checkpoints.is_empty(), "{:?}", host.recovery());
    assert_eq!(host.recovery().replayed_rounds, 0, "the checkpoint itself must hold the state");
    assert_eq!(host.state_digest().unwrap(), digest);
}

#[test]
fn checkpoints_link_the_base_add_an_overlay_of_the_changes_and_rewrite_past_the_budget() {
    let tmp = tempfile::tempdir().unwrap();
    let state = tmp.path();
    let host = Host::open(state, config(2)).unwrap();
    let id = dense_canister(&host);
    let first = host.checkpoint().unwrap();
    let heap = |h| canister_file(state, h, id, "heap.bin");
    let base_inode = inode(&heap(first));
    assert!(std::fs::metadata(heap(first)).unwrap().len() >= DATA_PAGES * 4096);
    drop(host);
    let mut digest;

    // Two checkpoints that each change a few pages: the base stays the same
    // file, and the overlays hold only the pages written (plus the few the
    // canister's runtime touches), never the memory.
    let mut heights = vec![first];
    for round in 0..2u8 {
        let host = Host::open(state, config(2)).unwrap();
        write_pages(&host, id, 10 + u64::from(round), 3, 7 + round);
        let height = host.checkpoint().unwrap();
        digest = host.state_digest().unwrap();
        drop(host);
        heights.push(height);
        assert_eq!(inode(&heap(height)), base_inode, "the base must be linked, not copied");
        let overlays = heap_overlays(state, height, id);
        let expected: Vec<String> = heights[1..].iter().map(|h| format!("heap.{h:016x}.overlay")).collect();
        assert_eq!(overlays, expected);
        let newest = std::fs::metadata(canister_file(state, height, id, &expected[expected.len() - 1])).unwrap();
        assert!(newest.len() < 16 * 4104, "an overlay of a few pages holds {} bytes", newest.len());
        reopens_to(state, 2, digest);
    }

    // An unchanged canister adds nothing.
    let host = Host::open(state, config(2)).unwrap();
    let other = host.create_canister(OWNER, vec![], None).unwrap();
    let height = host.checkpoint().unwrap();
    drop(host);
    assert!(canister_file(state, height, other, "heap.bin").exists());
    assert_eq!(heap_overlays(state, height, id).len(), 2);
    assert_eq!(inode(&heap(height)), base_inode);

    // A third overlay is past max_overlays = 2: the heap is rewritten whole,
    // with no overlays, and holds every change.
    let host = Host::open(state, config(2)).unwrap();
    write_pages(&host, id, 500, 2, 9);
    let height = host.checkpoint().unwrap();
    digest = host.state_digest().unwrap();
    // After the rewrite, the next change is an overlay over the new base.
    write_pages(&host, id, 600, 1, 10);
    let after = host.checkpoint().unwrap();
    let after_digest = host.state_digest().unwrap();
    drop(host);
    assert_ne!(inode(&heap(height)), base_inode, "past the budget the heap is rewritten");
    assert!(heap_overlays(state, height, id).is_empty());
    assert_eq!(inode(&heap(after)), inode(&heap(height)));
    assert_eq!(heap_overlays(state, after, id), [format!("heap.{after:016x}.overlay")]);
    reopens_to(state, 2, after_digest);
    assert_ne!(digest, after_digest);
}

#[test]
fn overlays_off_rewrite_every_changed_memory() {
    let tmp = tempfile::tempdir().unwrap();
    let host = Host::open(tmp.path(), config(0)).unwrap();
    let id = dense_canister(&host);
    let first = host.checkpoint().unwrap();
    write_pages(&host, id, 3, 1, 5);
    let second = host.checkpoint().unwrap();
    let digest = host.state_digest().unwrap();
    drop(host);
    let heap = |h| canister_file(tmp.path(), h, id, "heap.bin");
    assert_ne!(inode(&heap(first)), inode(&heap(second)));
    assert!(heap_overlays(tmp.path(), second, id).is_empty());
    reopens_to(tmp.path(), 0, digest);
}

#[test]
fn snapshots_and_their_loads_survive_overlays() {
    let tmp = tempfile::tempdir().unwrap();
    let state = tmp.path();
    let host = Host::open(state, config(8)).unwrap();
    let id = dense_canister(&host);
    host.checkpoint().unwrap();
    write_pages(&host, id, 20, 4, 3);
    host.stop(OWNER, id).unwrap();
    let snapshot = host.take_snapshot(OWNER, id, None).unwrap();
    host.start(OWNER, id).unwrap();
    host.checkpoint().unwrap();
    // The canister moves on; the snapshot's heap is an older version of the
    // same base, then loading it back gives the canister a delta that lacks
    // pages its saved overlays hold: it must not be described as overlays.
    write_pages(&host, id, 700, 5, 4);
    host.checkpoint().unwrap();
    host.stop(OWNER, id).unwrap();
    host.load_snapshot(OWNER, id, snapshot).unwrap();
    host.start(OWNER, id).unwrap();
    let height = host.checkpoint().unwrap();
    let digest = host.state_digest().unwrap();
    let page_700 =
        host.query_call(id, OWNER, "read_bytes", Encode!(&(testkit::HEAP_START + 700 * 4096), &1u64).unwrap());
    drop(host);
    assert_eq!(page_700.unwrap(), Encode!(&vec![1u8]).unwrap(), "the snapshot predates the write to page 700");
    assert!(checkpoint_dir(state, height).exists());
    reopens_to(state, 8, digest);
}

#[test]
fn a_damaged_overlay_is_never_loaded() {
    let tmp = tempfile::tempdir().unwrap();
    let state = tmp.path();
    let host = Host::open(state, config(8)).unwrap();
    let id = dense_canister(&host);
    host.checkpoint().unwrap();
    write_pages(&host, id, 40, 2, 6);
    let height = host.checkpoint().unwrap();
    let digest = host.state_digest().unwrap();
    drop(host);
    let overlay = canister_file(state, height, id, &format!("heap.{height:016x}.overlay"));
    let mut bytes = std::fs::read(&overlay).unwrap();
    bytes[5] ^= 0x40;
    std::fs::remove_file(&overlay).unwrap();
    std::fs::write(&overlay, &bytes).unwrap();
    // The damaged checkpoint is skipped; the one before it and the log
    // rebuild the same state.
    let host = Host::open(state, config(8)).unwrap();
    assert_eq!(host.recovery().skipped_checkpoints, [height]);
    assert!(host.recovery().replayed_rounds > 0);
    assert_eq!(host.state_digest().unwrap(), digest);
}

/// The real filesystem, except that publishing a checkpoint waits while
/// the gate is closed.
struct GatedFs {
    gate: std::sync::Arc<Gate>,
}

#[derive(Default)]
struct Gate {
    /// (closed, a publish is waiting)
    state: std::sync::Mutex<(bool, bool)>,
    changed: std::sync::Condvar,
}

impl Gate {
    fn set_closed(&self, closed: bool) {
        self.state.lock().unwrap().0 = closed;
        self.changed.notify_all();
    }

    /// Wait until a publish is held at the gate.
    fn wait_for_publish(&self) {
        let state = self.state.lock().unwrap();
        let (state, timeout) = self
            .changed
            .wait_timeout_while(state, std::time::Duration::from_secs(60), |(_, waiting)| !*waiting)
            .unwrap();
        assert!(state.1 && !timeout.timed_out(), "no checkpoint reached the gate");
    }

    fn pass(&self) {
        let mut state = self.state.lock().unwrap();
        state.1 = true;
        self.changed.notify_all();
        while state.0 {
            state = self.changed.wait(state).unwrap();
        }
        state.1 = false;
    }
}

impl checkpoint::Fs for GatedFs {
    fn create_dir(&self, path: &Path) -> std::io::Result<()> {
        checkpoint::RealFs.create_dir(path)
    }
    fn list_dir(&self, path: &Path) -> std::io::Result<Vec<checkpoint::DirEntry>> {
        checkpoint::RealFs.list_dir(path)
    }
    fn stat(&self, path: &Path) -> std::io::Result<checkpoint::Stat> {
        checkpoint::RealFs.stat(path)
    }
    fn remove_file(&self, path: &Path) -> std::io::Result<()> {
        checkpoint::RealFs.remove_file(path)
    }
    fn remove_dir_all(&self, path: &Path) -> std::io::Result<()> {
        checkpoint::RealFs.remove_dir_all(path)
    }
    fn rename_noreplace(&self, from: &Path, to: &Path) -> std::io::Result<()> {
        if to.parent().and_then(|p| p.file_name()).is_some_and(|n| n == "checkpoints") {
            self.gate.pass();
        }
        checkpoint::RealFs.rename_noreplace(from, to)
    }
    fn hard_link(&self, from: &Path, to: &Path) -> std::io::Result<()> {
        checkpoint::RealFs.hard_link(from, to)
    }
    fn sync_dir(&self, path: &Path) -> std::io::Result<()> {
        checkpoint::RealFs.sync_dir(path)
    }
    fn create_file(&self, path: &Path) -> std::io::Result<Box<dyn checkpoint::FsFile>> {
        checkpoint::RealFs.create_file(path)
    }
    fn open_file(&self, path: &Path) -> std::io::Result<Box<dyn checkpoint::FsFile>> {
        checkpoint::RealFs.open_file(path)
    }
    fn open_file_rw(&self, path: &Path) -> std::io::Result<Box<dyn checkpoint::FsFile>> {
        checkpoint::RealFs.open_file_rw(path)
    }
    fn clone_file(&self, from: &Path, to: &Path) -> std::io::Result<Box<dyn checkpoint::FsFile>> {
        checkpoint::RealFs.clone_file(from, to)
    }
    fn lock(&self, path: &Path) -> std::io::Result<(checkpoint::LockGuard, Box<dyn checkpoint::FsFile>)> {
        checkpoint::RealFs.lock(path)
    }
}

#[test]
fn rounds_run_while_a_checkpoint_is_written() {
    let tmp = tempfile::tempdir().unwrap();
    let gate = std::sync::Arc::new(Gate::default());
    let fs = std::sync::Arc::new(GatedFs { gate: gate.clone() });
    const INTERVAL: u64 = 10;
    let config = HostConfig { checkpoint_interval: INTERVAL, max_overlays: 0, ..config(8) };
    let host = std::sync::Arc::new(Host::open_with_fs(tmp.path(), config, fs).unwrap());
    let id = dense_canister(&host);
    gate.set_closed(true);
    // Rounds until the one that starts a checkpoint, which the gate then
    // holds before it is published.
    let writer = {
        let host = host.clone();
        std::thread::spawn(move || {
            while host.height().height < INTERVAL {
                write_pages(&host, id, 0, 1, 2);
            }
        })
    };
    gate.wait_for_publish();
    writer.join().unwrap();
    let held = host.height().height;
    assert_eq!(held, INTERVAL);
    let published_before = std::fs::read_dir(tmp.path().join("checkpoints")).unwrap().count();
    // Two more rounds complete while it is held (a checkpoint on the
    // scheduler thread would hold them too, and this would time out).
    let (done, finished) = std::sync::mpsc::channel();
    {
        let host = host.clone();
        std::thread::spawn(move || {
            for i in 0..2 {
                write_pages(&host, id, 100 + i, 1, 3);
            }
            let _ = done.send(host.height().height);
        });
    }
    let height = finished.recv_timeout(std::time::Duration::from_secs(60)).expect("rounds waited for the checkpoint");
    assert_eq!(height, held + 2);
    assert_eq!(std::fs::read_dir(tmp.path().join("checkpoints")).unwrap().count(), published_before);
    // Released, the checkpoint is published, and the host reopens to the
    // same state.
    gate.set_closed(false);
    let digest = host.state_digest().unwrap();
    let host = std::sync::Arc::into_inner(host).expect("the threads are done");
    host.close().unwrap();
    reopens_to(tmp.path(), 0, digest);
    assert!(checkpoint_dir(tmp.path(), held).exists(), "the held checkpoint was published");
}
