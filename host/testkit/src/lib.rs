//! Helpers shared by the tests of the host crates: one engine per test
//! binary, executors in each tracking mode, the example canisters installed
//! and called, the arguments of `memory_stress`'s sweeps, and a local S3
//! server ([`moto`]).

pub mod moto;

use std::sync::{Arc, OnceLock};

use candid::{CandidType, Decode, Encode};
use embedder::*;
use page_delta::PageIndex;

/// Where `memory_stress`'s test region starts.
pub const HEAP_START: u64 = canisters::MEMORY_STRESS_HEAP_START;
/// The anonymous principal's bytes: the caller of test messages.
pub const ANONYMOUS: &[u8] = &[4];
/// The tracking modes that persist writes.
pub const ALL_MODES: [TrackingMode; 3] = [TrackingMode::Naive, TrackingMode::Prefetch, TrackingMode::ReadMapped];

/// One engine per test binary: creating one compiles nothing but installs
/// signal handlers and sets up the linker.
pub fn engine() -> Arc<Engine> {
    static ENGINE: OnceLock<Arc<Engine>> = OnceLock::new();
    ENGINE.get_or_init(|| Arc::new(Engine::new().unwrap())).clone()
}

/// An executor in `tracking` mode, reusing instances or not.
pub fn executor(tracking: TrackingMode, reuse_instances: bool) -> Executor {
    Executor::new(engine(), ExecutionConfig { tracking, reuse_instances, ..ExecutionConfig::default() })
}

/// A canister with `wasm` installed, its `canister_init` run with `arg`.
pub fn install(exec: &Executor, wasm: &[u8], arg: &[u8]) -> Executable {
    let module = exec.compile(wasm).unwrap();
    let has_init = module.info.has(EntryPoint::Init);
    let mut c = Executable::new(CanisterState::default().with_module(module));
    if has_init {
        let r = exec.execute(&mut c, Call::entry(EntryPoint::Init, arg, ANONYMOUS, 1));
        assert!(r.outcome.is_ok(), "init failed: {:?}", r.outcome);
    }
    c
}

/// Call update method `name` with `arg`.
pub fn update(exec: &Executor, c: &mut Executable, name: &str, arg: Vec<u8>) -> MessageResult {
    exec.execute(c, Call::method(name, MethodKind::Update, &arg, ANONYMOUS, 1))
}

/// Call query method `name` with `arg`.
pub fn query(exec: &Executor, c: &Executable, name: &str, arg: Vec<u8>) -> MessageResult {
    exec.query(c.state(), Call::method(name, MethodKind::Query, &arg, ANONYMOUS, 1))
}

/// The reply, Candid-decoded; panics if there is none.
pub fn reply<T: CandidType + for<'de> serde::Deserialize<'de>>(r: &MessageResult) -> T {
    match r.reply() {
        Some(bytes) => Decode!(bytes, T).unwrap(),
        None => panic!("expected a reply, got {:?}", r.outcome),
    }
}

/// memory_stress grown to hold `bytes` of test region.
pub fn stress_canister(exec: &Executor, bytes: u64) -> Executable {
    let mut c = install(exec, canisters::MEMORY_STRESS, &[]);
    let pages = bytes.div_ceil(64 * 1024);
    let r = update(exec, &mut c, "grow", Encode!(&pages).unwrap());
    assert_eq!(reply::<i64>(&r), (HEAP_START / (64 * 1024)) as i64);
    c
}

/// Arguments of memory_stress's page sweeps.
pub fn sweep(offset: u64, count: u64, stride: u64, backward: bool, value: u8) -> Vec<u8> {
    Encode!(&offset, &count, &stride, &backward, &value).unwrap()
}

/// Arguments of memory_stress's read sweeps.
pub fn read_sweep(offset: u64, count: u64, stride: u64, backward: bool) -> Vec<u8> {
    Encode!(&offset, &count, &stride, &backward).unwrap()
}

/// The heap's bytes at `offset`.
pub fn heap_bytes(c: &Executable, offset: u64, len: usize) -> Vec<u8> {
    let mut buf = vec![0; len];
    c.state().heap.read(offset, &mut buf).unwrap();
    buf
}

/// Pages whose bytes differ between two heaps, up to `pages`.
pub fn diff_pages(before: &page_delta::PageMap, after: &page_delta::PageMap, pages: u64) -> Vec<PageIndex> {
    (0..pages).map(PageIndex).filter(|p| before.get_page(*p)[..] != after.get_page(*p)[..]).collect()
}

/// The heap's size in 4 KiB pages.
pub fn heap_page_count(c: &Executable) -> u64 {
    c.state().heap_pages.os_pages()
}

/// Run test `test` of the current test binary in a child process, with
/// `role` telling the child which part to play (see [`child_role`]), and
/// return its output. For scenarios that break the whole process, such as
/// exhausting `vm.max_map_count`.
pub fn in_child(test: &str, role: &str) -> std::process::Output {
    std::process::Command::new(std::env::current_exe().expect("the test binary's path"))
        .args(["--exact", test, "--nocapture", "--test-threads=1"])
        .env("CANISTER_HOST_TEST_CHILD", role)
        .output()
        .expect("running the test binary again")
}

/// The role this process plays if [`in_child`] started it.
pub fn child_role() -> Option<String> {
    std::env::var("CANISTER_HOST_TEST_CHILD").ok()
}

/// How many more mappings than `vm.max_map_count` allows a message writing
/// every other page of a memory would need: writes to make that memory
/// fail with `ENOMEM` (it splits one mapping per write).
pub fn writes_to_exhaust_mappings() -> u64 {
    let max_map_count: u64 = std::fs::read_to_string("/proc/sys/vm/max_map_count")
        .expect("reading vm.max_map_count")
        .trim()
        .parse()
        .expect("vm.max_map_count is a number");
    let writes = max_map_count / 2 + 1000;
    assert!(writes < 1 << 20, "vm.max_map_count is too large for this test: {max_map_count}");
    writes
}
