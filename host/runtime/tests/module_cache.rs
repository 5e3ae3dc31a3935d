//! The compiled-module cache in the state directory: reopening loads
//! machine code instead of compiling it, a module seen before is not
//! compiled again, and a damaged entry is discarded and compiled again,
//! never run.

use std::path::Path;

use candid::{Decode, Encode};
use canister_host::*;

const OWNER: Principal = Principal::from_slice(&[0xaa; 29]);

fn open(dir: &Path) -> Host {
    Host::open(dir, HostConfig::default()).unwrap()
}

fn cache(host: &Host) -> ModuleCacheCounters {
    host.executor().engine().module_cache().expect("the cache is on by default").counters()
}

fn inc(host: &Host, id: Principal) -> u64 {
    Decode!(&host.update_call(id, OWNER, "inc", Encode!().unwrap()).unwrap(), u64).unwrap()
}

/// A state directory with the counter installed and incremented once.
fn counter_host(dir: &Path) -> Principal {
    let host = open(dir);
    let id = host.create_canister(OWNER, vec![], None).unwrap();
    host.install_code(OWNER, id, InstallMode::Install, canisters::COUNTER.to_vec(), vec![]).unwrap();
    assert_eq!(inc(&host, id), 1);
    assert_eq!(cache(&host), ModuleCacheCounters { hits: 0, misses: 1, rejected: 0, stored: 1 });
    host.close().unwrap();
    id
}

fn entries(dir: &Path) -> Vec<std::path::PathBuf> {
    std::fs::read_dir(dir.join(MODULE_CACHE)).unwrap().map(|e| e.unwrap().path()).collect()
}

#[test]
fn reopening_loads_compiled_modules_instead_of_compiling() {
    let tmp = tempfile::tempdir().unwrap();
    let dir = tmp.path().join("state");
    let id = counter_host(&dir);
    let host = open(&dir);
    assert_eq!(cache(&host), ModuleCacheCounters { hits: 1, misses: 0, rejected: 0, stored: 0 });
    assert_eq!(inc(&host, id), 2);
}

#[test]
fn a_damaged_entry_is_compiled_again_never_run() {
    let tmp = tempfile::tempdir().unwrap();
    let dir = tmp.path().join("state");
    let id = counter_host(&dir);
    let [entry] = &entries(&dir)[..] else { panic!("one compiled module expected") };
    let mut bytes = std::fs::read(entry).unwrap();
    let middle = bytes.len() / 2;
    bytes[middle] ^= 0xff;
    std::fs::write(entry, bytes).unwrap();

    let host = open(&dir);
    assert_eq!(cache(&host), ModuleCacheCounters { hits: 0, misses: 1, rejected: 1, stored: 1 });
    assert_eq!(inc(&host, id), 2);
    host.close().unwrap();
    // The entry written in its place is sound.
    assert_eq!(cache(&open(&dir)).hits, 1);
}

#[test]
fn a_module_seen_before_is_not_compiled_again() {
    let tmp = tempfile::tempdir().unwrap();
    let host = open(&tmp.path().join("state"));
    let id = host.create_canister(OWNER, vec![], None).unwrap();
    let install = |wasm: &[u8], mode| host.install_code(OWNER, id, mode, wasm.to_vec(), vec![]).unwrap();
    install(canisters::COUNTER, InstallMode::Install);
    install(canisters::KV, InstallMode::Reinstall);
    let compiled = cache(&host).misses;
    assert_eq!(compiled, 2);
    // Back to the counter: its machine code comes from a cache, not Cranelift.
    install(canisters::COUNTER, InstallMode::Reinstall);
    assert_eq!(cache(&host).misses, compiled);
    assert_eq!(inc(&host, id), 1);
}

#[test]
fn the_cache_can_be_turned_off() {
    let tmp = tempfile::tempdir().unwrap();
    let dir = tmp.path().join("state");
    let host = Host::open(&dir, HostConfig { module_cache_bytes: 0, ..HostConfig::default() }).unwrap();
    assert!(host.executor().engine().module_cache().is_none());
    let id = host.create_canister(OWNER, vec![], None).unwrap();
    host.install_code(OWNER, id, InstallMode::Install, canisters::COUNTER.to_vec(), vec![]).unwrap();
    assert!(!dir.join(MODULE_CACHE).exists());
}
