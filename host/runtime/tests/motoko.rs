//! Canisters compiled by today's Motoko compiler (wasm64, enhanced
//! orthogonal persistence, a start function, inter-canister calls) run on
//! the host: installed, called, upgraded and restarted.

use candid::{Decode, Encode, Nat};
use canister_host::*;

const OWNER: Principal = Principal::from_slice(&[0xaa; 29]);
const USER: Principal = Principal::anonymous();

fn config() -> HostConfig {
    HostConfig {
        checkpoint_interval: 1_000_000,
        time: TimeSource::Deterministic { start: 1_000_000_000, step: 1_000 },
        ..HostConfig::default()
    }
}

fn nat(bytes: &[u8]) -> u64 {
    Decode!(bytes, Nat).unwrap().0.try_into().unwrap()
}

fn install(host: &Host, name: &str, wasm: &[u8]) -> Principal {
    let id = host.create_canister(OWNER, vec![], Some(name.into())).unwrap();
    host.install_code(OWNER, id, InstallMode::Install, wasm.to_vec(), Encode!().unwrap()).unwrap();
    id
}

#[test]
fn a_motoko_counter_keeps_its_heap_across_upgrades_and_restarts() {
    let dir = tempfile::tempdir().unwrap();
    let host = Host::open(dir.path(), config()).unwrap();
    let id = install(&host, "counter", canisters::motoko::COUNTER);
    for expected in 1..=3 {
        assert_eq!(nat(&host.update_call(id, USER, "inc", Encode!().unwrap()).unwrap()), expected);
    }
    // Enhanced orthogonal persistence: an upgrade must keep the heap...
    let upgrade = |mode| host.install_code(OWNER, id, mode, canisters::motoko::COUNTER.to_vec(), Encode!().unwrap());
    let refused = upgrade(InstallMode::UPGRADE).unwrap_err();
    assert!(refused.to_string().contains("Enhanced orthogonal persistence requires"), "{refused}");
    // ...and keeping it keeps `count`, with no stable-memory code at all.
    upgrade(InstallMode::UPGRADE_KEEP).unwrap();
    assert_eq!(nat(&host.query_call(id, USER, "get", Encode!().unwrap()).unwrap()), 3);
    assert_eq!(nat(&host.query_call(id, USER, "upgraded", Encode!().unwrap()).unwrap()), 1);
    assert_eq!(nat(&host.update_call(id, USER, "inc", Encode!().unwrap()).unwrap()), 4);
    host.checkpoint().unwrap();
    assert_eq!(nat(&host.update_call(id, USER, "inc", Encode!().unwrap()).unwrap()), 5);
    drop(host); // no checkpoint: the last update comes back from the log

    let host = Host::open(dir.path(), config()).unwrap();
    assert_eq!(nat(&host.query_call(id, USER, "get", Encode!().unwrap()).unwrap()), 5);
    assert_eq!(nat(&host.update_call(id, USER, "inc", Encode!().unwrap()).unwrap()), 6);
}
