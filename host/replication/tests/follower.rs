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
    let get = || follower.query(id, OWNER, "get", Encode!().unwrap()).map(|r| Decode!(&r, u64).unwrap());
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
    host.close().unwrap();
    primary.ship_state_dir(a.path()).unwrap();
    assert_eq!(follower.catch_up().unwrap().height, last);
    assert_eq!(get().unwrap(), value);

    let refused = follower.update().unwrap_err();
    assert!(matches!(refused, ReplicationError::ReadOnly { .. }));
    assert!(refused.to_string().contains("http://primary:4943"), "{refused}");
}
