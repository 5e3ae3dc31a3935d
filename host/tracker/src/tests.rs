//! The backend through its public surface, on a real wasmtime engine: a
//! tracked memory serves wasm and host accesses, reports exactly the pages
//! that changed, refuses other stores, and leaves faults it does not own to
//! crash the process.

use std::os::unix::process::ExitStatusExt;
use std::process::Command;

use page_delta::{PAGE_SIZE, PageIndex, PageMap};
use wasmtime::{Config, Engine, Instance, Module, Store};

use crate::reservation::Reservation;
use crate::{MemoryBackend, SignalBackend, TrackOptions, TrackedMemory, TrackingMode};

/// `poke(addr, value)` stores a byte; `peek(addr)` loads one.
const MODULE: &str = r#"(module
    (memory (export "memory") 4)
    (func (export "poke") (param i32 i32) (i32.store8 (local.get 0) (local.get 1)))
    (func (export "peek") (param i32) (result i32) (i32.load8_u (local.get 0))))"#;

struct Fixture {
    store: Store<()>,
    instance: Instance,
    memory: TrackedMemory,
}

fn fixture(backend: &SignalBackend, engine: &Engine, contents: PageMap, mode: TrackingMode) -> Fixture {
    let module = Module::new(engine, wat::parse_str(MODULE).unwrap()).unwrap();
    let mut store = Store::new(engine, ());
    let instance = Instance::new(&mut store, &module, &[]).unwrap();
    let wasm_memory = instance.get_memory(&mut store, "memory").unwrap();
    let options = TrackOptions { mode, track_writes: true, prefetch_pages: 16 };
    let memory = backend.attach(&mut store, wasm_memory, contents, options).unwrap();
    Fixture { store, instance, memory }
}

fn engine(backend: &SignalBackend) -> Engine {
    let mut config = Config::new();
    config
        .memory_reservation(4 << 30)
        .memory_guard_size(32 << 20)
        .guard_before_linear_memory(true)
        .memory_may_move(false)
        .memory_reservation_for_growth(0)
        .with_host_memory(MemoryBackend::<()>::memory_creator(backend));
    Engine::new(&config).unwrap()
}

impl Fixture {
    fn poke(&mut self, addr: u32, value: u8) {
        let poke = self.instance.get_typed_func::<(u32, u32), ()>(&mut self.store, "poke").unwrap();
        poke.call(&mut self.store, (addr, u32::from(value))).unwrap();
    }

    fn peek(&mut self, addr: u32) -> u8 {
        let peek = self.instance.get_typed_func::<u32, u32>(&mut self.store, "peek").unwrap();
        peek.call(&mut self.store, addr).unwrap() as u8
    }
}

#[test]
fn wasm_and_host_accesses_are_tracked_exactly_in_every_mode() {
    let backend = SignalBackend::new();
    let engine = engine(&backend);
    for mode in [TrackingMode::Naive, TrackingMode::Prefetch, TrackingMode::ReadMapped] {
        let mut contents = PageMap::new();
        contents.write(5 * PAGE_SIZE as u64, b"committed").unwrap();
        let mut f = fixture(&backend, &engine, contents.clone(), mode);
        assert_eq!(f.peek(5 * PAGE_SIZE as u32 + 3), b'm', "{mode:?}: the contents are visible to wasm");
        f.poke(3 * PAGE_SIZE as u32, 7);
        f.poke(9 * PAGE_SIZE as u32 + 1, 0); // the byte it already held
        f.memory.write(&mut f.store, 12 * PAGE_SIZE as u64 - 2, b"span").unwrap();
        let mut buf = [0; 9];
        f.memory.read(&f.store, 5 * PAGE_SIZE as u64, &mut buf).unwrap();
        assert_eq!(&buf, b"committed");

        let dirty = f.memory.collect_dirty(&f.store).unwrap();
        let pages: Vec<PageIndex> = dirty.iter().map(|(p, _)| *p).collect();
        assert_eq!(pages, [PageIndex(3), PageIndex(11), PageIndex(12)], "{mode:?}");
        contents.apply(dirty);
        f.memory.rearm(&mut f.store, contents, &pages).unwrap();
        // The next message starts clean: rewriting the same bytes changes nothing.
        f.poke(3 * PAGE_SIZE as u32, 7);
        assert!(f.memory.collect_dirty(&f.store).unwrap().is_empty(), "{mode:?}");
        assert!(f.memory.counters().faults > 0);
    }
}

#[test]
fn host_accesses_outside_the_memory_are_refused() {
    let backend = SignalBackend::new();
    let engine = engine(&backend);
    let mut f = fixture(&backend, &engine, PageMap::new(), TrackingMode::ReadMapped);
    let size = f.memory.byte_size() as u64;
    assert_eq!(size, 4 << 16);
    assert_eq!(f.memory.write(&mut f.store, size - 1, b"xy"), Err(crate::AccessError::OutOfBounds));
    assert_eq!(f.memory.read(&f.store, u64::MAX, &mut [0; 1]), Err(crate::AccessError::OutOfBounds));
}

#[test]
#[should_panic(expected = "wrong store")]
fn another_store_cannot_reach_the_memory() {
    let backend = SignalBackend::new();
    let engine = engine(&backend);
    let f = fixture(&backend, &engine, PageMap::new(), TrackingMode::ReadMapped);
    let other = Store::new(&engine, ());
    let _ = f.memory.read(&other, 0, &mut [0; 1]);
}

/// Run one test of this binary in a child process, selected by an
/// environment variable, and return its output.
fn in_child(test: &str, role: &str) -> std::process::Output {
    Command::new(std::env::current_exe().unwrap())
        .args(["--exact", test, "--nocapture", "--test-threads=1"])
        .env("MEMORY_TRACKER_TEST_CHILD", role)
        .output()
        .unwrap()
}

#[test]
fn a_host_fault_outside_wasm_is_not_swallowed() {
    if std::env::var("MEMORY_TRACKER_TEST_CHILD").as_deref() == Ok("host-fault") {
        // Make the engine's handlers live and serve a fault, then touch a
        // page of a reservation outside any wasm call.
        let backend = SignalBackend::new();
        let engine = engine(&backend);
        let mut f = fixture(&backend, &engine, PageMap::new(), TrackingMode::ReadMapped);
        f.poke(100, 1);
        let reservation = Reservation::new(1 << 20, 4096).unwrap();
        // SAFETY: none; this deliberately breaks `page`'s contract (the page
        // is PROT_NONE) to check that the resulting SIGSEGV kills us.
        let byte = unsafe { reservation.page(3)[0] };
        println!("read {byte}: the fault was swallowed");
        return;
    }
    let out = in_child("tests::a_host_fault_outside_wasm_is_not_swallowed", "host-fault");
    assert_eq!(out.status.signal(), Some(libc::SIGSEGV), "{}", String::from_utf8_lossy(&out.stdout));
}
