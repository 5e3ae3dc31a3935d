//! The example canisters behave as documented.

use candid::Encode;
use embedder::*;
use testkit::*;

fn key(k: u64) -> Vec<u8> {
    k.to_le_bytes().to_vec()
}

fn value(k: u64) -> Vec<u8> {
    format!("value of {k}").into_bytes()
}

fn kv_fill(keys: u64) {
    let exec = executor(TrackingMode::ReadMapped, true);
    let mut c = install(&exec, canisters::KV, &[]);
    for k in 0..keys {
        let r = update(&exec, &mut c, "put", Encode!(&key(k), &value(k)).unwrap());
        assert_eq!(reply::<Option<Vec<u8>>>(&r), None, "key {k}");
    }
    assert_eq!(reply::<u64>(&query(&exec, &c, "len", vec![])), keys);
    for k in (0..keys).step_by((keys / 97).max(1) as usize) {
        let got = reply::<Option<Vec<u8>>>(&query(&exec, &c, "get", Encode!(&key(k)).unwrap()));
        assert_eq!(got, Some(value(k)), "key {k}");
    }
    let r = update(&exec, &mut c, "delete", Encode!(&key(7)).unwrap());
    assert!(reply::<bool>(&r));
    assert_eq!(reply::<u64>(&query(&exec, &c, "len", vec![])), keys - 1);
}

#[test]
fn kv_holds_many_keys() {
    kv_fill(20_000);
}

/// The full 10^6 keys; slow in a debug build, so run it with `--ignored`.
#[test]
#[ignore]
fn kv_holds_a_million_keys() {
    kv_fill(1_000_000);
}

#[test]
fn ledger_moves_funds_and_refuses_overdrafts() {
    let exec = executor(TrackingMode::ReadMapped, true);
    let mut c = install(&exec, canisters::LEDGER, &Encode!(&100u64, &1000u64).unwrap());
    assert_eq!(reply::<u64>(&query(&exec, &c, "total_supply", vec![])), 100_000);
    assert_eq!(reply::<u64>(&update(&exec, &mut c, "transfer", Encode!(&1u64, &2u64, &300u64).unwrap())), 700);
    let r = update(&exec, &mut c, "transfer", Encode!(&1u64, &2u64, &701u64).unwrap());
    assert!(
        matches!(&r.outcome, Err(ExecutionError::CalledTrap(m)) if m.contains("insufficient funds")),
        "{:?}",
        r.outcome
    );
    assert_eq!(reply::<u64>(&query(&exec, &c, "balance", Encode!(&1u64).unwrap())), 700);
    assert_eq!(reply::<u64>(&query(&exec, &c, "balance", Encode!(&2u64).unwrap())), 1300);
    assert_eq!(reply::<u64>(&query(&exec, &c, "total_supply", vec![])), 100_000);
}
