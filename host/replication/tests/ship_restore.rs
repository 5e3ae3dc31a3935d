//! Checkpoints of a real host shipped to a store in a local directory and
//! restored on a fresh state directory: the restored host has the same
//! state digest, unchanged chunks are never uploaded twice, an interrupted
//! shipment resumes, and damaged or missing objects are named, never
//! loaded.

use std::path::{Path, PathBuf};

use candid::{Decode, Encode};
use canister_host::{Host, HostConfig, InstallMode, Principal};
use replication::{Remote, ReplicationError};

const OWNER: Principal = Principal::from_slice(&[0x5e; 29]);
const HEAP_START: u64 = canisters::MEMORY_STRESS_HEAP_START;

fn config() -> HostConfig {
    HostConfig { workers: 1, fsync: false, checkpoint_interval: 1_000_000, ..HostConfig::default() }
}

/// Write one byte into each of `count` pages from page `first` of the
/// test region.
fn write_pages(host: &Host, id: Principal, first: u64, count: u64, value: u8) {
    let arg = Encode!(&(HEAP_START + first * 4096), &count, &4096u64, &false, &value).unwrap();
    host.update_call(id, OWNER, "write_pages", arg).unwrap();
}

/// A host with one canister whose heap holds 8 MiB of data, each MiB
/// different (identical chunks are stored once), checkpointed.
fn primary(dir: &Path) -> (Host, Principal) {
    let host = Host::open(dir, config()).unwrap();
    let id = host.create_canister(OWNER, vec![], None).unwrap();
    host.install_code(OWNER, id, InstallMode::Install, canisters::MEMORY_STRESS.to_vec(), vec![]).unwrap();
    host.update_call(id, OWNER, "grow", Encode!(&160u64).unwrap()).unwrap();
    for mib in 0..8 {
        write_pages(&host, id, mib * 256, 256, mib as u8 + 1);
    }
    host.checkpoint().unwrap();
    (host, id)
}

fn newest_checkpoint(state: &Path) -> PathBuf {
    let mut dirs: Vec<PathBuf> =
        std::fs::read_dir(state.join("checkpoints")).unwrap().map(|e| e.unwrap().path()).collect();
    dirs.sort();
    dirs.pop().unwrap()
}

fn chunk_objects(store: &Path) -> Vec<PathBuf> {
    std::fs::read_dir(store.join("chunks")).unwrap().map(|e| e.unwrap().path()).collect()
}

#[test]
fn a_restored_checkpoint_opens_to_the_same_state() {
    let (a, store, b) = (tempfile::tempdir().unwrap(), tempfile::tempdir().unwrap(), tempfile::tempdir().unwrap());
    let remote = Remote::local(store.path()).unwrap();
    let (host, id) = primary(a.path());
    let first = remote.ship_checkpoint(&newest_checkpoint(a.path())).unwrap();
    assert!(first.uploaded >= 8, "8 MiB of data is at least 8 chunks: {first:?}");
    assert!(!first.already_shipped);
    // Shipping again finds the manifest and uploads nothing.
    let again = remote.ship_checkpoint(&newest_checkpoint(a.path())).unwrap();
    assert!(again.already_shipped && again.uploaded == 0, "{again:?}");

    // One page changes: a fresh remote (no memory of what it shipped) still
    // uploads only the chunk holding it, besides the small files.
    write_pages(&host, id, 5, 1, 9);
    host.checkpoint().unwrap();
    let fresh = Remote::local(store.path()).unwrap();
    let second = fresh.ship_checkpoint(&newest_checkpoint(a.path())).unwrap();
    assert!(second.uploaded < first.uploaded / 2, "{second:?} after {first:?}");
    let digest = host.state_digest().unwrap();
    let height = host.height().height;
    host.close().unwrap();

    assert_eq!(remote.heights().unwrap().last(), Some(&height));
    let restored = remote.restore_checkpoint(None, b.path()).unwrap();
    assert_eq!(restored.height, height);
    let copy = Host::open(b.path(), config()).unwrap();
    assert_eq!(copy.height().height, height);
    assert_eq!(copy.state_digest().unwrap(), digest);
    // Restoring over an existing checkpoint is refused.
    let error = remote.restore_checkpoint(Some(height), b.path()).unwrap_err();
    assert!(matches!(error, ReplicationError::Exists { .. }), "{error}");
}

#[test]
fn an_interrupted_shipment_resumes_with_what_is_missing() {
    let (a, store) = (tempfile::tempdir().unwrap(), tempfile::tempdir().unwrap());
    let (host, _) = primary(a.path());
    let checkpoint = newest_checkpoint(a.path());
    let first = Remote::local(store.path()).unwrap().ship_checkpoint(&checkpoint).unwrap();
    // As if the shipment stopped before its manifest and three chunks.
    std::fs::remove_dir_all(store.path().join("checkpoints")).unwrap();
    for chunk in chunk_objects(store.path()).into_iter().take(3) {
        std::fs::remove_file(chunk).unwrap();
    }
    assert!(Remote::local(store.path()).unwrap().heights().unwrap().is_empty());
    let resumed = Remote::local(store.path()).unwrap().ship_checkpoint(&checkpoint).unwrap();
    assert_eq!(resumed.uploaded, 3, "{resumed:?} after {first:?}");
    assert_eq!(Remote::local(store.path()).unwrap().heights().unwrap(), [host.height().height]);
    host.close().unwrap();
}

#[test]
fn damaged_or_missing_objects_are_named_and_nothing_is_published() {
    let (a, store) = (tempfile::tempdir().unwrap(), tempfile::tempdir().unwrap());
    let remote = Remote::local(store.path()).unwrap();
    let (host, _) = primary(a.path());
    remote.ship_checkpoint(&newest_checkpoint(a.path())).unwrap();
    host.close().unwrap();
    let chunks = chunk_objects(store.path());
    let name = |p: &Path| format!("chunks/{}", p.file_name().unwrap().to_str().unwrap());

    // One flipped byte in one chunk.
    let mut bytes = std::fs::read(&chunks[0]).unwrap();
    bytes[100] ^= 0x40;
    std::fs::write(&chunks[0], bytes).unwrap();
    let fresh = tempfile::tempdir().unwrap();
    match remote.restore_checkpoint(None, fresh.path()) {
        Err(ReplicationError::Corrupt { object, .. }) => assert_eq!(object, name(&chunks[0])),
        other => panic!("expected the damaged chunk named, got {other:?}"),
    }
    assert!(!fresh.path().join("checkpoints").exists(), "a damaged restore published a checkpoint");

    // A chunk deleted from the store.
    std::fs::remove_file(&chunks[0]).unwrap();
    match remote.restore_checkpoint(None, fresh.path()) {
        Err(ReplicationError::Missing { object }) => assert_eq!(object, name(&chunks[0])),
        other => panic!("expected the missing chunk named, got {other:?}"),
    }
    assert!(!fresh.path().join("checkpoints").exists());
}

/// The first heights of the state directory's log segments.
fn segment_heights(state: &Path) -> Vec<u64> {
    let mut heights: Vec<u64> = std::fs::read_dir(state.join(checkpoint::layout::WAL_DIR))
        .unwrap()
        .filter_map(|e| {
            let name = e.unwrap().file_name().into_string().unwrap();
            u64::from_str_radix(name.strip_prefix("seg-")?.strip_suffix(".log")?, 16).ok()
        })
        .collect();
    heights.sort();
    heights
}

#[test]
fn a_restore_replays_the_shipped_log_up_to_the_last_sealed_segment() {
    let (a, store, b) = (tempfile::tempdir().unwrap(), tempfile::tempdir().unwrap(), tempfile::tempdir().unwrap());
    let config = HostConfig { wal_segment_bytes: 4096, ..config() };
    let host = Host::open(a.path(), config.clone()).unwrap();
    let id = host.create_canister(OWNER, vec![], None).unwrap();
    host.install_code(OWNER, id, InstallMode::Install, canisters::COUNTER.to_vec(), vec![]).unwrap();
    host.checkpoint().unwrap();
    let before = host.height().height;
    for _ in 0..200 {
        host.update_call(id, OWNER, "inc", Encode!().unwrap()).unwrap();
    }
    let remote = Remote::local(store.path()).unwrap();
    let shipped = remote.ship_state_dir(a.path()).unwrap();
    let segments = segment_heights(a.path());
    assert!(segments.len() >= 3, "small segments roll often: {segments:?}");
    assert_eq!(shipped.segments, segments[..segments.len() - 1], "every sealed segment, and not the active one");
    let again = remote.ship_state_dir(a.path()).unwrap();
    let logged_through = Some(segments[segments.len() - 1] - 1);
    let checkpoint_through = Some(before);
    let nothing = replication::ShippedDir { logged_through, checkpoint_through, ..Default::default() };
    assert_eq!(again, nothing, "nothing twice");

    let restored = remote.restore(None, b.path()).unwrap();
    assert_eq!(restored.height, before);
    assert!(restored.log_from.is_some_and(|first| first <= before + 1), "{restored:?}");
    let copy = Host::open(b.path(), config).unwrap();
    // Every round in a sealed segment is back; the active segment's are
    // the store's recovery point.
    let last_shipped = segments.last().unwrap() - 1;
    assert_eq!(copy.height().height, last_shipped);
    let value = copy.query_call(id, OWNER, "get", Encode!().unwrap()).unwrap();
    assert_eq!(Decode!(&value, u64).unwrap(), last_shipped - before);
    host.close().unwrap();
}

/// Wait until `done` holds of the replicator's status.
fn wait_for(replicator: &replication::Replicator, what: &str, done: impl Fn(&replication::ReplicationStatus) -> bool) {
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(60);
    loop {
        let status = replicator.status();
        if done(&status) {
            return;
        }
        assert!(std::time::Instant::now() < deadline, "never {what}: {status:?}");
        std::thread::sleep(std::time::Duration::from_millis(10));
    }
}

#[test]
fn shipping_survives_a_store_outage_and_catches_up() {
    let (a, root, b) = (tempfile::tempdir().unwrap(), tempfile::tempdir().unwrap(), tempfile::tempdir().unwrap());
    let store = root.path().join("store");
    let config = HostConfig { wal_segment_bytes: 4096, checkpoint_interval: 50, ..config() };
    let host = Host::open(a.path(), config.clone()).unwrap();
    let id = host.create_canister(OWNER, vec![], None).unwrap();
    host.install_code(OWNER, id, InstallMode::Install, canisters::COUNTER.to_vec(), vec![]).unwrap();
    let installed = host.height().height;
    let every = std::time::Duration::from_millis(20);
    let replicator =
        replication::Replicator::start(Remote::local(&store).unwrap(), a.path().to_path_buf(), every).unwrap();
    let inc = || drop(host.update_call(id, OWNER, "inc", Encode!().unwrap()).unwrap());
    (0..60).for_each(|_| inc());
    wait_for(&replicator, "shipped", |s| s.shipped_height.is_some() && s.last_error.is_none());

    // The store goes away (its directory replaced by a file): rounds go on,
    // and passes fail and say so.
    let away = root.path().join("away");
    std::fs::rename(&store, &away).unwrap();
    std::fs::write(&store, b"not a directory").unwrap();
    (0..150).for_each(|_| inc());
    wait_for(&replicator, "failed", |s| s.failures > 0 && s.last_error.is_some() && s.backlog_segments > 0);
    let during = replicator.status();

    // Back: the next passes ship the backlog.
    std::fs::remove_file(&store).unwrap();
    std::fs::rename(&away, &store).unwrap();
    let height = host.height().height;
    wait_for(&replicator, "caught up", |s| s.last_error.is_none() && s.shipped_height >= Some(height - 50));
    let after = replicator.stop();
    assert!(after.uploaded_bytes > during.uploaded_bytes && after.backlog_segments == 0, "{after:?}");

    let restored = Remote::local(&store).unwrap().restore(None, b.path()).unwrap();
    let copy = Host::open(b.path(), config).unwrap();
    let reached = copy.height().height;
    assert!(reached >= after.shipped_height.unwrap(), "{restored:?} reached {reached}, {after:?}");
    // Each round after the install was one increment: the restored counter
    // is the primary's at that round.
    let value = copy.query_call(id, OWNER, "get", Encode!().unwrap()).unwrap();
    assert_eq!(Decode!(&value, u64).unwrap(), reached - installed);
    host.close().unwrap();
}

#[test]
fn shipping_a_rolled_back_history_to_the_same_store_is_refused_and_overwrites_nothing() {
    let (a, store) = (tempfile::tempdir().unwrap(), tempfile::tempdir().unwrap());
    let config = HostConfig { wal_segment_bytes: 4096, ..config() };
    let remote = Remote::local(store.path()).unwrap();
    let host = Host::open(a.path(), config.clone()).unwrap();
    let id = host.create_canister(OWNER, vec![], None).unwrap();
    host.install_code(OWNER, id, InstallMode::Install, canisters::COUNTER.to_vec(), vec![]).unwrap();
    let rolled_back_to = host.checkpoint().unwrap();
    for _ in 0..60 {
        host.update_call(id, OWNER, "inc", Encode!().unwrap()).unwrap();
    }
    host.checkpoint().unwrap();
    host.close().unwrap();
    remote.ship_state_dir(a.path()).unwrap();
    let stored: Vec<(PathBuf, Vec<u8>)> = walk(store.path()).map(|p| (p.clone(), std::fs::read(p).unwrap())).collect();

    // Another history from the same round on: other segments, and a
    // checkpoint at a height the store already has.
    canister_host::restore(a.path(), rolled_back_to, true).unwrap();
    let host = Host::open(a.path(), config).unwrap();
    for _ in 0..60 {
        host.update_call(id, Principal::anonymous(), "inc", Encode!().unwrap()).unwrap();
        host.update_call(id, OWNER, "inc", Encode!().unwrap()).unwrap();
    }
    host.close().unwrap();
    let refused = Remote::local(store.path()).unwrap().ship_state_dir(a.path()).unwrap_err();
    assert!(matches!(refused, ReplicationError::Diverged { .. }), "{refused}");
    assert!(refused.to_string().contains("rolled back"), "{refused}");
    for (path, bytes) in stored {
        assert_eq!(std::fs::read(&path).unwrap(), bytes, "{} was overwritten", path.display());
    }
}

/// Every file under `dir`.
fn walk(dir: &Path) -> impl Iterator<Item = PathBuf> {
    let mut files = Vec::new();
    let mut dirs = vec![dir.to_path_buf()];
    while let Some(d) = dirs.pop() {
        for entry in std::fs::read_dir(d).unwrap() {
            let path = entry.unwrap().path();
            if path.is_dir() { dirs.push(path) } else { files.push(path) }
        }
    }
    files.into_iter()
}

#[test]
fn a_restore_downloads_each_distinct_chunk_once_and_reuses_a_seed_checkpoint() {
    let (a, store, b) = (tempfile::tempdir().unwrap(), tempfile::tempdir().unwrap(), tempfile::tempdir().unwrap());
    let remote = Remote::local(store.path()).unwrap();
    // Four MiB alike (the test region starts on a chunk boundary), in the
    // first checkpoint, whose heap file is laid out as memory is.
    let host = Host::open(a.path(), config()).unwrap();
    let id = host.create_canister(OWNER, vec![], None).unwrap();
    host.install_code(OWNER, id, InstallMode::Install, canisters::MEMORY_STRESS.to_vec(), vec![]).unwrap();
    host.update_call(id, OWNER, "grow", Encode!(&80u64).unwrap()).unwrap();
    write_pages(&host, id, 0, 4 * 256, 0x77);
    host.checkpoint().unwrap();
    let first_dir = newest_checkpoint(a.path());
    let first = remote.ship_checkpoint(&first_dir).unwrap();
    let restored = remote.restore_checkpoint(Some(first.height), b.path()).unwrap();
    assert!(restored.reused >= 3, "the three repeats were downloaded again: {restored:?}");
    assert_eq!(restored.downloaded + restored.reused, first.chunks - zero_chunks(&first_dir));

    // The next checkpoint, one page changed: restored beside the first,
    // only the changed chunk comes from the store.
    write_pages(&host, id, 0, 1, 0xee);
    host.checkpoint().unwrap();
    let second = remote.ship_checkpoint(&newest_checkpoint(a.path())).unwrap();
    let seed = newest_checkpoint(b.path());
    let next = remote.restore_checkpoint_seeded(Some(second.height), b.path(), &[seed]).unwrap();
    let unseeded = tempfile::tempdir().unwrap();
    let full = remote.restore_checkpoint(Some(second.height), unseeded.path()).unwrap();
    assert!(full.downloaded_bytes >= 1 << 20, "{full:?}");
    assert!(next.downloaded_bytes < 1 << 20, "unchanged chunks were downloaded: {next:?}");
    // The unchanged base file is the seed's, linked rather than copied.
    let linked = walk(&newest_checkpoint(b.path()))
        .filter(|f| std::os::unix::fs::MetadataExt::nlink(&std::fs::metadata(f).unwrap()) > 1)
        .count();
    assert!(linked > 0, "no file was linked from the seed");
    host.close().unwrap();
    // What the seeded restore built opens to the primary's state.
    let copy = Host::open(b.path(), config()).unwrap();
    assert_eq!(copy.height().height, second.height);
    let digest = copy.state_digest().unwrap();
    drop(copy);
    let primary = Host::open(a.path(), config()).unwrap();
    assert_eq!(primary.state_digest().unwrap(), digest);
}

/// The chunks of zeros in the checkpoint in `dir` (never downloaded).
fn zero_chunks(dir: &Path) -> u64 {
    let manifest = checkpoint::Manifest::decode(&std::fs::read(dir.join("MANIFEST")).unwrap()).unwrap();
    let mut zeros = 0;
    for entry in manifest.files() {
        let chunk = checkpoint::hash::CHUNK_SIZE;
        for (i, hash) in entry.chunks.iter().enumerate() {
            let len = (entry.size - i as u64 * chunk).min(chunk);
            let zero = checkpoint::hash::chunk_hashes_of(&vec![0; len as usize]);
            zeros += u64::from(zero.first() == Some(hash));
        }
    }
    zeros
}

#[test]
fn pruning_keeps_the_newest_checkpoints_their_log_and_chunks_and_a_restore_still_works() {
    let (a, store, b) = (tempfile::tempdir().unwrap(), tempfile::tempdir().unwrap(), tempfile::tempdir().unwrap());
    let remote = Remote::local(store.path()).unwrap();
    let config = HostConfig { wal_segment_bytes: 4096, ..config() };
    let host = Host::open(a.path(), config.clone()).unwrap();
    let id = host.create_canister(OWNER, vec![], None).unwrap();
    host.install_code(OWNER, id, InstallMode::Install, canisters::MEMORY_STRESS.to_vec(), vec![]).unwrap();
    host.update_call(id, OWNER, "grow", Encode!(&80u64).unwrap()).unwrap();
    // Four checkpoints, each rewriting the same MiB with another value:
    // every one names a chunk no other does.
    for value in 1..=4u8 {
        write_pages(&host, id, 0, 256, value);
        host.checkpoint().unwrap();
        remote.ship_state_dir_with(a.path(), &mut || drop(host.seal_log())).unwrap();
    }
    let heights = remote.heights().unwrap();
    let chunks_before = chunk_objects(store.path()).len();
    let pruned = remote.prune(2).unwrap();
    assert_eq!(pruned.checkpoints, heights[..heights.len() - 2]);
    assert_eq!(remote.heights().unwrap(), heights[heights.len() - 2..]);
    assert!(pruned.chunks >= 2, "the pruned checkpoints' own chunks stayed: {pruned:?}");
    assert_eq!(chunk_objects(store.path()).len() as u64, chunks_before as u64 - pruned.chunks);
    assert!(pruned.segments > 0, "{pruned:?}");
    // Pruning again removes nothing; shipping again re-uploads nothing.
    assert_eq!(remote.prune(2).unwrap(), replication::Pruned::default());
    assert_eq!(remote.ship_state_dir(a.path()).unwrap().bytes, 0);

    // The oldest kept checkpoint restores, with the log after it, to the
    // primary's state.
    let digest = host.state_digest().unwrap();
    host.close().unwrap();
    remote.ship_state_dir(a.path()).unwrap();
    remote.restore(Some(heights[heights.len() - 2]), b.path()).unwrap();
    let copy = Host::open(b.path(), config).unwrap();
    assert_eq!(copy.state_digest().unwrap(), digest);
    let refused = remote.restore_checkpoint(Some(heights[0]), tempfile::tempdir().unwrap().path()).unwrap_err();
    assert!(matches!(refused, ReplicationError::Missing { .. }), "{refused}");
}
