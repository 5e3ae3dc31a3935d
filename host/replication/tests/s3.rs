//! Shipping and restoring against a real S3 API: a local `moto_server`
//! (PyPI `moto[server]`, which CI installs), started by the test on a free
//! loopback port. Skipped with a note when moto is not installed, unless
//! `CANISTER_HOST_REQUIRE_CLIENTS` is set (CI sets it).

use std::path::Path;
use std::time::{Duration, Instant};

use candid::{Decode, Encode};
use canister_host::{Host, HostConfig, InstallMode, Principal};
use replication::{Remote, ReplicationError, Replicator};
use testkit::moto::{BUCKET, Moto};

const OWNER: Principal = Principal::from_slice(&[0x53; 29]);

/// The store under `primary/` in the server's bucket.
fn remote(moto: &Moto) -> Remote {
    Remote::from_url_with(&format!("s3://{BUCKET}/primary"), moto.options()).unwrap()
}

fn config() -> HostConfig {
    HostConfig { workers: 1, fsync: false, wal_segment_bytes: 4096, checkpoint_interval: 50, ..HostConfig::default() }
}

/// The primary's state directory, a fresh one to restore into, and the
/// primary with a counter canister: its id and the height after its
/// install.
fn primary() -> (tempfile::TempDir, tempfile::TempDir, Host, Principal, u64) {
    let (a, b) = (tempfile::tempdir().unwrap(), tempfile::tempdir().unwrap());
    let host = Host::open(a.path(), config()).unwrap();
    let id = host.create_canister(OWNER, vec![], None).unwrap();
    host.install_code(OWNER, id, InstallMode::Install, canisters::COUNTER.to_vec(), vec![]).unwrap();
    let installed = host.height().height;
    (a, b, host, id, installed)
}

fn inc(host: &Host, id: Principal, times: usize) {
    for _ in 0..times {
        host.update_call(id, OWNER, "inc", Encode!().unwrap()).unwrap();
    }
}

fn count(host: &Host, id: Principal) -> u64 {
    Decode!(&host.query_call(id, OWNER, "get", Encode!().unwrap()).unwrap(), u64).unwrap()
}

fn wait_for(replicator: &Replicator, what: &str, done: impl Fn(&replication::ReplicationStatus) -> bool) {
    let deadline = Instant::now() + Duration::from_secs(60);
    while !done(&replicator.status()) {
        assert!(Instant::now() < deadline, "never {what}: {:?}", replicator.status());
        std::thread::sleep(Duration::from_millis(10));
    }
}

/// Restore the store into `dir` and open it: the count is the number of
/// rounds after the install.
fn restore_and_check(remote: &Remote, dir: &Path, id: Principal, installed: u64) -> u64 {
    remote.restore(None, dir).unwrap();
    let copy = Host::open(dir, config()).unwrap();
    let height = copy.height().height;
    assert_eq!(count(&copy, id), height - installed);
    height
}

#[test]
fn shipped_state_restores_from_s3() {
    let Some(moto) = Moto::start(0) else { return };
    let (a, b, host, id, installed) = primary();
    inc(&host, id, 120);
    let remote = remote(&moto);
    let shipped = remote.ship_state_dir(a.path()).unwrap();
    assert!(!shipped.checkpoints.is_empty() && !shipped.segments.is_empty(), "{shipped:?}");
    // Everything up to the active segment is in the store.
    let height = restore_and_check(&remote, b.path(), id, installed);
    assert!(height >= 100, "restored only to round {height}");
    host.close().unwrap();
}

#[test]
fn a_damaged_object_in_s3_is_named() {
    let Some(moto) = Moto::start(0) else { return };
    let (a, b, host, id, _) = primary();
    inc(&host, id, 10);
    host.checkpoint().unwrap();
    let remote = remote(&moto);
    remote.ship_state_dir(a.path()).unwrap();
    // Overwrite the first chunk with other bytes, through the S3 API.
    let s3 = object_store::aws::AmazonS3Builder::new()
        .with_bucket_name(BUCKET)
        .with_endpoint(moto.endpoint())
        .with_allow_http(true)
        .with_access_key_id("test")
        .with_secret_access_key("test")
        .with_region("us-east-1")
        .build()
        .unwrap();
    let runtime = tokio::runtime::Builder::new_current_thread().enable_all().build().unwrap();
    let damaged = runtime.block_on(async {
        use futures_util::TryStreamExt;
        use object_store::{ObjectStore, ObjectStoreExt};
        let prefix = object_store::path::Path::from("primary/chunks");
        let chunks: Vec<_> = s3.list(Some(&prefix)).try_collect().await.unwrap();
        let first = chunks[0].location.clone();
        s3.put(&first, bytes::Bytes::from_static(b"not the chunk").into()).await.unwrap();
        first.to_string()
    });
    match remote.restore(None, b.path()) {
        Err(ReplicationError::Corrupt { object, .. }) => assert_eq!(format!("primary/{object}"), damaged),
        other => panic!("expected {damaged} named as corrupt, got {other:?}"),
    }
    host.close().unwrap();
}

#[test]
fn the_backlog_survives_an_s3_outage() {
    let Some(moto) = Moto::start(0) else { return };
    let (a, b, host, id, installed) = primary();
    let replicator = Replicator::start(remote(&moto), a.path().to_path_buf(), Duration::from_millis(20)).unwrap();
    inc(&host, id, 60);
    wait_for(&replicator, "shipped", |s| s.shipped_height.is_some() && s.last_error.is_none());

    // The server dies (and its memory with it): rounds go on, passes fail.
    let port = moto.port;
    drop(moto);
    inc(&host, id, 120);
    wait_for(&replicator, "failed", |s| s.failures > 0 && s.last_error.is_some());

    // A new, empty server on the same port: the next passes ship it all.
    let moto = Moto::start(port).unwrap();
    let height = host.height().height;
    wait_for(&replicator, "caught up", |s| s.last_error.is_none() && s.shipped_height >= Some(height - 50));
    let status = replicator.stop();
    let restored = restore_and_check(&remote(&moto), b.path(), id, installed);
    assert!(restored >= status.shipped_height.unwrap(), "restored to {restored}: {status:?}");
    host.close().unwrap();
}

#[test]
fn a_follower_of_an_s3_store_converges_to_the_primarys_digest() {
    let Some(moto) = Moto::start(0) else { return };
    let (a, f, host, id, _) = primary();
    host.checkpoint().unwrap();
    let replicator = Replicator::start_with(
        remote(&moto),
        a.path().to_path_buf(),
        Duration::from_millis(10),
        replication::Shipping { sealer: Some(host.log_sealer()), ..Default::default() },
    )
    .unwrap();
    let follower = replication::Follower::new(remote(&moto), f.path(), None).unwrap();
    // Rounds in several shipments: the follower lists only the segments
    // after its last (S3's start-after), and replays each once.
    for _ in 0..3 {
        inc(&host, id, 30);
        let height = host.height().height;
        wait_for(&replicator, "shipped", |s| s.shipped_height >= Some(height));
        assert_eq!(follower.catch_up().unwrap().height, height);
        assert_eq!(follower.state_digest(), Some(host.state_digest().unwrap()), "at round {height}");
    }
    let value = follower.query(id, OWNER, "get", Encode!().unwrap(), None).unwrap();
    assert_eq!(Decode!(&value, u64).unwrap(), count(&host, id));
    drop(replicator);
    host.close().unwrap();
}

#[test]
fn a_replicator_keeping_two_checkpoints_prunes_s3_and_the_newest_still_restores() {
    let Some(moto) = Moto::start(0) else { return };
    let (a, b, host, id, installed) = primary();
    let shipping = replication::Shipping { sealer: Some(host.log_sealer()), keep_checkpoints: Some(2) };
    let replicator =
        Replicator::start_with(remote(&moto), a.path().to_path_buf(), Duration::from_millis(10), shipping).unwrap();
    // A checkpoint every 50 rounds: five of them, each shipped in turn.
    for _ in 0..5 {
        inc(&host, id, 50);
        host.checkpoint().unwrap();
        let height = host.height().height;
        wait_for(&replicator, "shipped", |s| s.shipped_height >= Some(height));
    }
    let status = replicator.stop();
    assert!(status.last_error.is_none(), "{status:?}");
    let heights = remote(&moto).heights().unwrap();
    assert_eq!(heights.len(), 2, "kept {heights:?}");
    host.close().unwrap();
    let restored = restore_and_check(&remote(&moto), b.path(), id, installed);
    assert!(restored >= heights[1], "restored to {restored}, kept {heights:?}");
}
