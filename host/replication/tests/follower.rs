//! A follower tails a store a primary ships to: it starts from the newest
//! checkpoint, replays each segment once shipped, jumps to newer
//! checkpoints, converges to the primary's final state, and refuses
//! updates naming the primary.

use candid::{Decode, Encode};
use canister_host::{CallError, Host, HostConfig, InstallMode, Principal};
use replication::{Follower, Remote, ReplicationError};

const OWNER: Principal = Principal::from_slice(&[0xf0; 29]);

#[test]
fn a_follower_replays_what_is_shipped_and_converges() {
    let (a, store, f) = (tempfile::tempdir().unwrap(), tempfile::tempdir().unwrap(), tempfile::tempdir().unwrap());
    let config = HostConfig {
        workers: 1,
        fsync: false,
        wal_segment_bytes: 4096,
        checkpoint_interval: 1_000_000,
        ..HostConfig::default()
    };
    let host = Host::open(a.path(), config).unwrap();
    let id = host.create_canister(OWNER, vec![], None).unwrap();
    host.install_code(OWNER, id, InstallMode::Install, canisters::COUNTER.to_vec(), vec![]).unwrap();
    let installed = host.height().height;
    host.checkpoint().unwrap();
    let inc = |times: usize| (0..times).for_each(|_| drop(host.update_call(id, OWNER, "inc", Encode!().unwrap())));
    let primary = Remote::local(store.path()).unwrap();
    let follower =
        Follower::new(Remote::local(store.path()).unwrap(), f.path(), Some("http://primary:4943".into())).unwrap();
    let get = || follower.query(id, OWNER, "get", Encode!().unwrap(), None).map(|r| Decode!(&r, u64).unwrap());
    assert!(matches!(get(), Err(CallError::Unavailable(_))), "no state before the first catch-up");

    // Each step ships and catches up; the follower serves exactly the
    // primary's state at the round it reached (one increment per round).
    let mut reached = 0;
    for (step, (incs, checkpoint)) in [(100, false), (100, false), (50, true)].into_iter().enumerate() {
        if checkpoint {
            host.checkpoint().unwrap();
        }
        inc(incs);
        primary.ship_state_dir(a.path()).unwrap();
        let round = follower.catch_up().unwrap();
        assert!(round.height > reached, "step {step}: stuck at round {}", round.height);
        reached = round.height;
        assert_eq!(get().unwrap(), reached - installed, "step {step}");
        assert!(follower.lag().is_some());
    }
    // The primary's final checkpoint: the follower converges to it.
    let value = Decode!(&host.query_call(id, OWNER, "get", Encode!().unwrap()).unwrap(), u64).unwrap();
    let last = host.height().height;
    let digest = host.state_digest().unwrap();
    host.close().unwrap();
    primary.ship_state_dir(a.path()).unwrap();
    assert_eq!(follower.catch_up().unwrap().height, last);
    assert_eq!(get().unwrap(), value);
    assert_eq!(follower.state_digest(), Some(digest), "the follower's state differs from the primary's");

    let refused = follower.update().unwrap_err();
    assert!(matches!(refused, ReplicationError::ReadOnly { .. }));
    assert!(refused.to_string().contains("http://primary:4943"), "{refused}");
}

/// The heights of the checkpoints in a state directory.
fn checkpoints(dir: &std::path::Path) -> Vec<u64> {
    let mut heights: Vec<u64> = std::fs::read_dir(dir.join("checkpoints"))
        .unwrap()
        .filter_map(|e| checkpoint::layout::parse_checkpoint_dir_name(e.unwrap().file_name().to_str()?))
        .collect();
    heights.sort();
    heights
}

/// A primary in `dir` checkpointing every 10 rounds, running a counter
/// (installed and checkpointed).
fn counter_every_10_rounds(dir: &std::path::Path) -> (Host, Principal) {
    let config = HostConfig { workers: 1, fsync: false, checkpoint_interval: 10, ..HostConfig::default() };
    let host = Host::open(dir, config).unwrap();
    let id = host.create_canister(OWNER, vec![], None).unwrap();
    host.install_code(OWNER, id, InstallMode::Install, canisters::COUNTER.to_vec(), vec![]).unwrap();
    host.checkpoint().unwrap();
    (host, id)
}

#[test]
fn a_follower_of_a_sealing_shipper_replays_every_acknowledged_round_without_downloading_checkpoints() {
    let (a, store, f) = (tempfile::tempdir().unwrap(), tempfile::tempdir().unwrap(), tempfile::tempdir().unwrap());
    // Segments far larger than the history: only sealing gets rounds into
    // the store before a checkpoint does.
    let (host, id) = counter_every_10_rounds(a.path());
    let replicator = replication::Replicator::start_with(
        Remote::local(store.path()).unwrap(),
        a.path().to_path_buf(),
        std::time::Duration::from_millis(5),
        replication::Shipping { sealer: Some(host.log_sealer()), ..Default::default() },
    )
    .unwrap();
    let follower = Follower::new(Remote::local(store.path()).unwrap(), f.path(), None).unwrap().rebase_after(1_000);
    let wait_shipped = |height: u64| {
        let deadline = std::time::Instant::now() + std::time::Duration::from_secs(30);
        while replicator.status().shipped_height.is_none_or(|h| h < height) {
            assert!(std::time::Instant::now() < deadline, "round {height} never shipped: {:?}", replicator.status());
            std::thread::sleep(std::time::Duration::from_millis(1));
        }
    };
    wait_shipped(host.height().height);
    follower.catch_up().unwrap();
    let started_from = checkpoints(f.path());
    for step in 0..5u64 {
        for _ in 0..7 {
            host.update_call(id, OWNER, "inc", Encode!().unwrap()).unwrap();
        }
        // Acknowledged rounds ship within a pass or two, not at the next
        // checkpoint, and the follower reaches each exactly.
        let acked = host.height().height;
        wait_shipped(acked);
        assert_eq!(follower.catch_up().unwrap().height, acked, "step {step}");
        let value = follower.query(id, OWNER, "get", Encode!().unwrap(), None).unwrap();
        assert_eq!(Decode!(&value, u64).unwrap(), 7 * (step + 1), "step {step}");
    }
    assert_eq!(checkpoints(f.path()), started_from, "the follower downloaded a checkpoint it could replay to");
    drop(replicator);
    host.close().unwrap();
}

#[test]
fn a_follower_far_past_its_checkpoint_starts_over_from_a_newer_one() {
    let (a, store, f) = (tempfile::tempdir().unwrap(), tempfile::tempdir().unwrap(), tempfile::tempdir().unwrap());
    let (host, id) = counter_every_10_rounds(a.path());
    let primary = Remote::local(store.path()).unwrap();
    let follower = Follower::new(Remote::local(store.path()).unwrap(), f.path(), None).unwrap().rebase_after(25);
    let ship = || {
        primary
            .ship_state_dir_with(a.path(), &mut || {
                host.seal_log().unwrap();
            })
            .unwrap();
    };
    ship();
    follower.catch_up().unwrap();
    let first = checkpoints(f.path());
    for _ in 0..40 {
        host.update_call(id, OWNER, "inc", Encode!().unwrap()).unwrap();
    }
    // Background checkpoints publish late: one now, to be sure of one.
    host.checkpoint().unwrap();
    ship();
    assert_eq!(follower.catch_up().unwrap().height, host.height().height);
    let now = checkpoints(f.path());
    assert!(now.last() >= Some(&(first[0] + 25)), "still on checkpoint {first:?} (now {now:?})");
    let value = follower.query(id, OWNER, "get", Encode!().unwrap(), None).unwrap();
    assert_eq!(Decode!(&value, u64).unwrap(), 40);
    host.close().unwrap();
}

#[test]
fn a_follower_refuses_a_directory_holding_a_state_of_its_own() {
    let (a, store) = (tempfile::tempdir().unwrap(), tempfile::tempdir().unwrap());
    let host = Host::open(a.path(), HostConfig { fsync: false, ..HostConfig::default() }).unwrap();
    host.checkpoint().unwrap();
    host.close().unwrap();
    let refused = Follower::new(Remote::local(store.path()).unwrap(), a.path(), None).err().unwrap();
    assert!(matches!(refused, ReplicationError::NotAReplica { .. }), "{refused}");
    assert!(checkpoints(a.path()).len() == 1, "the primary's state was touched");
}
