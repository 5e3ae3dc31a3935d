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

#[test]
fn motoko_actors_await_each_other_and_catch_a_trapping_callee_through_a_restart() {
    let dir = tempfile::tempdir().unwrap();
    let host = Host::open(dir.path(), config()).unwrap();
    let callee = install(&host, "callee", canisters::motoko::CALLEE);
    let caller = install(&host, "caller", canisters::motoko::CALLER);
    let text = callee.to_text();
    // Two awaits, then the reply to the ingress caller.
    let r = host.update_call(caller, USER, "ping_twice", Encode!(&text, &Nat::from(40u64)).unwrap()).unwrap();
    assert_eq!(nat(&r), 42);
    // The callee traps after a state change: the change is rolled back,
    // and the caller catches the reject.
    let r = host.update_call(caller, USER, "catch_boom", Encode!(&text).unwrap()).unwrap();
    let message = Decode!(&r, String).unwrap();
    assert!(message.contains("assertion failed"), "{message}");
    let counts = |host: &Host, id, method: &str| {
        let r = host.query_call(id, USER, method, Encode!().unwrap()).unwrap();
        let (a, b) = Decode!(&r, Nat, Nat).unwrap();
        (u64::try_from(a.0).unwrap(), u64::try_from(b.0).unwrap())
    };
    assert_eq!(counts(&host, callee, "count"), (2, 0));
    assert_eq!(counts(&host, caller, "counts"), (1, 1));
    let digest = host.state_digest().unwrap();
    drop(host); // no checkpoint: everything comes back from the log

    let host = Host::open(dir.path(), config()).unwrap();
    assert_eq!(host.state_digest().unwrap(), digest, "replay rebuilt another state");
    let r = host.update_call(caller, USER, "ping_twice", Encode!(&text, &Nat::from(1u64)).unwrap()).unwrap();
    assert_eq!(nat(&r), 3);
    assert_eq!(counts(&host, callee, "count"), (4, 0));
    assert_eq!(counts(&host, caller, "counts"), (2, 2));
    host.checkpoint().unwrap();
    drop(host);
    let host = Host::open(dir.path(), config()).unwrap();
    assert_eq!(counts(&host, caller, "counts"), (2, 2));
}

#[test]
fn a_motoko_factory_creates_canisters_through_the_management_canister() {
    let dir = tempfile::tempdir().unwrap();
    let host = Host::open(dir.path(), config()).unwrap();
    let factory = install(&host, "factory", canisters::motoko::FACTORY);
    let spawn =
        |start: u64| nat(&host.update_call(factory, USER, "spawn", Encode!(&Nat::from(start)).unwrap()).unwrap());
    assert_eq!(spawn(10), 11);
    assert_eq!(spawn(20), 21);
    assert_eq!(nat(&host.update_call(factory, USER, "bump_all", Encode!().unwrap()).unwrap()), 12 + 22);
    // The children are canisters of their own, controlled by the factory.
    let children: Vec<CanisterInfo> = host.canisters().into_iter().filter(|c| c.id != factory).collect();
    assert_eq!(children.len(), 2);
    for child in &children {
        assert_eq!(child.controllers, vec![factory]);
        assert!(child.state.module.is_some());
    }
    let digest = host.state_digest().unwrap();
    drop(host);
    let host = Host::open(dir.path(), config()).unwrap();
    assert_eq!(host.state_digest().unwrap(), digest);
    assert_eq!(nat(&host.update_call(factory, USER, "bump_all", Encode!().unwrap()).unwrap()), 13 + 23);
}

#[test]
fn a_motoko_timer_ticks_with_the_hosts_time() {
    let dir = tempfile::tempdir().unwrap();
    // Each round advances time by a quarter of a second.
    let config = HostConfig { time: TimeSource::Deterministic { start: 1_000_000_000, step: 250_000_000 }, ..config() };
    let host = Host::open(dir.path(), config.clone()).unwrap();
    let id = install(&host, "timer", canisters::motoko::TIMER);
    let ticks = |host: &Host| nat(&host.query_call(id, USER, "get", Encode!().unwrap()).unwrap());
    // Deterministic time moves only with rounds: drive some with updates
    // to another canister.
    let other = install(&host, "counter", canisters::motoko::COUNTER);
    for _ in 0..20 {
        host.update_call(other, USER, "inc", Encode!().unwrap()).unwrap();
    }
    let seen = ticks(&host);
    assert!((3..=6).contains(&seen), "{seen} ticks in about 5 seconds of host time");
    drop(host);
    let host = Host::open(dir.path(), config).unwrap();
    assert_eq!(ticks(&host), seen, "replay reproduced the ticks");
}

#[test]
fn motoko_composite_queries_call_other_canisters_queries_within_the_ics_bounds() {
    let dir = tempfile::tempdir().unwrap();
    let host = Host::open(dir.path(), config()).unwrap();
    let aggregator = install(&host, "aggregator", canisters::motoko::AGGREGATOR);
    let counters: Vec<Principal> =
        (0..3).map(|i| install(&host, &format!("counter{i}"), canisters::motoko::COUNTER)).collect();
    for (i, id) in counters.iter().enumerate() {
        for _ in 0..=i {
            host.update_call(*id, USER, "inc", Encode!().unwrap()).unwrap();
        }
    }
    let ids: Vec<String> = counters.iter().map(Principal::to_text).collect();
    let total = host.query_call(aggregator, USER, "total", Encode!(&ids).unwrap()).unwrap();
    assert_eq!(nat(&total), 1 + 2 + 3);
    let height = host.height();

    // A callee that cannot answer is a reject the caller can catch.
    host.stop(OWNER, counters[1]).unwrap();
    let r = host.query_call(aggregator, USER, "total_or_error", Encode!(&ids).unwrap()).unwrap();
    let text = Decode!(&r, String).unwrap();
    assert!(text.contains("is stopped"), "{text}");
    let not_a_counter = vec![aggregator.to_text()];
    let r = host.query_call(aggregator, USER, "total_or_error", Encode!(&not_a_counter).unwrap()).unwrap();
    let text = Decode!(&r, String).unwrap();
    assert!(text.contains("no query method \"get\""), "{text}");

    // Calls nest at most 6 deep (5 calls below the first canister).
    let me = aggregator.to_text();
    let nest = |n: u64| host.query_call(aggregator, USER, "nest", Encode!(&me, &Nat::from(n)).unwrap());
    assert_eq!(nat(&nest(5).unwrap()), 5);
    match nest(6) {
        Err(CallError::Failed { code, message }) => {
            assert_eq!(code, ErrorCode::QueryCallGraphTooDeep, "{message}");
        }
        other => panic!("{other:?}"),
    }
    // Not as an update: composite queries are never replicated.
    match host.update_call(aggregator, USER, "total", Encode!(&ids).unwrap()) {
        Err(CallError::Failed { code, message }) => {
            assert_eq!(code, ErrorCode::CompositeQueryCalledInReplicatedMode, "{message}");
            assert!(message.contains("Composite query cannot be called in replicated mode"), "{message}");
        }
        other => panic!("{other:?}"),
    }
    // Queries changed nothing: only the stop and the refused update made
    // rounds.
    assert_eq!(host.height().height, height.height + 2);
}

#[test]
fn cycles_sent_with_a_call_are_accepted_in_part_and_the_rest_refunded() {
    let dir = tempfile::tempdir().unwrap();
    let host = Host::open(dir.path(), config()).unwrap();
    let (a, b) = (install(&host, "a", canisters::motoko::WALLET), install(&host, "b", canisters::motoko::WALLET));
    let send = |amount: u64| host.update_call(a, USER, "send", Encode!(&b.to_text(), &Nat::from(amount)).unwrap());
    let reply = send(1_000_000).unwrap();
    let (accepted, refunded) = Decode!(&reply, Nat, Nat).unwrap();
    assert_eq!((accepted, refunded), (Nat::from(500_000u64), Nat::from(500_000u64)));
    assert_eq!(nat(&host.query_call(b, USER, "total_received", Encode!().unwrap()).unwrap()), 500_000);
    // More than the canister holds cannot be attached.
    let err = host.update_call(a, USER, "send", Encode!(&b.to_text(), &Nat::from(u128::MAX)).unwrap()).unwrap_err();
    assert!(err.to_string().contains("exceeds the canister's balance"), "{err}");
}
