//! The canister lifecycle: install modes, controllers, stop/start/delete,
//! snapshots and logs.

use candid::Encode;
use canister_host::*;
use embedder::*;
use testkit::*;

/// The custom section marking a module built for enhanced orthogonal
/// persistence.
const EOP: &str = r#"(@custom "icp:private enhanced-orthogonal-persistence" "")"#;

/// A canister with a heap counter, a version marker from a data segment,
/// a pre_upgrade that saves the counter to stable memory (or traps when
/// asked to), and a post_upgrade that restores it (or traps when its
/// argument is "trap"). Versions starting with "e" carry the enhanced
/// orthogonal persistence marker.
fn versioned(version: &str) -> Vec<u8> {
    let marker = if version.starts_with('e') { EOP } else { "" };
    let wat = format!(
        r#"(module {marker}
        (import "ic0" "msg_reply" (func $reply))
        (import "ic0" "msg_reply_data_append" (func $append (param i32 i32)))
        (import "ic0" "msg_arg_data_size" (func $arg_size (result i32)))
        (import "ic0" "msg_arg_data_copy" (func $arg_copy (param i32 i32 i32)))
        (import "ic0" "stable64_size" (func $ssize (result i64)))
        (import "ic0" "stable64_grow" (func $sgrow (param i64) (result i64)))
        (import "ic0" "stable64_write" (func $swrite (param i64 i64 i64)))
        (import "ic0" "stable64_read" (func $sread (param i64 i64 i64)))
        (import "ic0" "debug_print" (func $print (param i32 i32)))
        (import "ic0" "trap" (func $trap (param i32 i32)))
        (import "ic0" "certified_data_set" (func $certify (param i32 i32)))
        (memory 1)
        (global $g (mut i64) (i64.const 0))
        (data (i32.const 0) "{version}")
        (data (i32.const 16) "pre_upgrade ran")
        ;; 100: counter, 108: restored counter, 200: trap-in-pre-upgrade flag, 300: arg
        (func (export "canister_init") (call $arg_copy (i32.const 300) (i32.const 0) (call $arg_size)))
        (func (export "canister_update inc")
            (i64.store (i32.const 100) (i64.add (i64.load (i32.const 100)) (i64.const 1)))
            (global.set $g (i64.add (global.get $g) (i64.const 10)))
            (call $certify (i32.const 100) (i32.const 8))
            (call $reply))
        (func (export "canister_update arm_pre_upgrade_trap") (i32.store8 (i32.const 200) (i32.const 1)) (call $reply))
        (func (export "canister_query get")
            (i64.store (i32.const 400) (global.get $g))
            (call $append (i32.const 0) (i32.const 2))
            (call $append (i32.const 100) (i32.const 16))
            (call $append (i32.const 400) (i32.const 8))
            (call $append (i32.const 300) (i32.const 4))
            (call $reply))
        (func (export "canister_pre_upgrade")
            (if (i32.load8_u (i32.const 200)) (then (call $trap (i32.const 0) (i32.const 2))))
            (call $print (i32.const 16) (i32.const 15))
            (if (i64.eqz (call $ssize)) (then (drop (call $sgrow (i64.const 1)))))
            (call $swrite (i64.const 0) (i64.const 100) (i64.const 8)))
        (func (export "canister_post_upgrade")
            (call $arg_copy (i32.const 300) (i32.const 0) (call $arg_size))
            (if (i32.eq (i32.load (i32.const 300)) (i32.const 0x70617274)) (then (call $trap (i32.const 0) (i32.const 2))))
            (if (i64.gt_u (call $ssize) (i64.const 0)) (then (call $sread (i64.const 108) (i64.const 0) (i64.const 8))))))"#
    );
    wat::parse_str(&wat).unwrap()
}

struct Fixture {
    exec: Executor,
    registry: Registry,
    id: Principal,
    owner: Principal,
}

/// (version marker, counter, restored counter, global, first 4 arg bytes)
type View = (String, u64, u64, u64, Vec<u8>);

impl Fixture {
    fn new() -> Fixture {
        let exec = executor(TrackingMode::ReadMapped, true);
        let mut registry = Registry::default();
        let owner = Principal::from_slice(&[7; 29]);
        let id = registry.create(vec![owner], Some("versioned".into())).unwrap();
        let mut f = Fixture { exec, registry, id, owner };
        f.install(InstallMode::Install, "v1", b"init").unwrap();
        f
    }

    fn record(&mut self) -> &mut Canister {
        self.registry.get_mut(&self.id).unwrap()
    }

    fn install(&mut self, mode: InstallMode, version: &str, arg: &[u8]) -> Result<(), CanisterError> {
        let (owner, wasm) = (self.owner, versioned(version));
        let exec = &self.exec;
        self.registry.get_mut(&self.id).unwrap().install_code(exec, &owner, mode, &wasm, arg, 5)
    }

    fn inc(&mut self) {
        let exec = &self.exec;
        let r = self.registry.get_mut(&self.id).unwrap().update(exec, &Principal::anonymous(), "inc", &[], 5).unwrap();
        assert!(r.outcome.is_ok(), "{:?}", r.outcome);
    }

    fn view(&self) -> View {
        let r = self.registry.get(&self.id).unwrap().query(&self.exec, &Principal::anonymous(), "get", &[], 5).unwrap();
        let b = r.reply().unwrap_or_else(|| panic!("{:?}", r.outcome)).to_vec();
        let u = |i: usize| u64::from_le_bytes(b[i..i + 8].try_into().unwrap());
        (String::from_utf8(b[..2].to_vec()).unwrap(), u(2), u(10), u(18), b[26..30].to_vec())
    }
}

#[test]
fn install_runs_init_once_and_refuses_a_second_install() {
    let mut f = Fixture::new();
    assert_eq!(f.view(), ("v1".into(), 0, 0, 0, b"init".to_vec()));
    assert_eq!(f.record().version(), 1);
    assert!(matches!(f.install(InstallMode::Install, "v2", b""), Err(CanisterError::AlreadyInstalled { .. })));
    assert_eq!(f.view().0, "v1");
}

#[test]
fn only_controllers_manage_a_canister() {
    let mut f = Fixture::new();
    let stranger = Principal::from_slice(&[9; 10]);
    let wasm = versioned("v2");
    let exec = &f.exec;
    let record = f.registry.get_mut(&f.id).unwrap();
    let err = record.install_code(exec, &stranger, InstallMode::UPGRADE, &wasm, b"", 5).unwrap_err();
    assert!(matches!(err, CanisterError::NotController { .. }));
    assert!(err.to_string().contains(&f.owner.to_text()), "{err}");
    assert!(record.stop(exec, &stranger).is_err());
    assert!(record.take_snapshot(&stranger, None, 5).is_err());
    assert!(record.uninstall(exec, &stranger).is_err());
    assert!(f.registry.delete(&stranger, &f.id).is_err());
}

#[test]
fn upgrade_keeps_stable_memory_and_replaces_the_heap() {
    let mut f = Fixture::new();
    f.inc();
    f.inc();
    f.install(InstallMode::UPGRADE, "v2", b"post").unwrap();
    // The heap is new (counter 0, v2's data); pre_upgrade's stable copy of
    // the counter survived and post_upgrade restored it; globals restart.
    assert_eq!(f.view(), ("v2".into(), 0, 2, 0, b"post".to_vec()));
    assert_eq!(f.record().state().stable_pages, WasmPages(1));
    assert!(f.record().canister_log().any(|l| l.content == b"pre_upgrade ran"));
    // Certified data carries over an upgrade.
    assert_eq!(f.record().state().certified_data, 2u64.to_le_bytes());
}

#[test]
fn upgrade_with_keep_keeps_the_heap() {
    let mut f = Fixture::new();
    f.inc();
    f.inc();
    f.install(InstallMode::UPGRADE_KEEP, "e2", b"post").unwrap();
    // Same heap bytes (v1's marker, counter 2); globals are the new module's.
    assert_eq!(f.view(), ("v1".into(), 2, 2, 0, b"post".to_vec()));
}

#[test]
fn enhanced_orthogonal_persistence_upgrades_follow_the_ic_rules() {
    let mut f = Fixture::new();
    // Keep needs a new module built for enhanced orthogonal persistence.
    let err = f.install(InstallMode::UPGRADE_KEEP, "v2", b"post").unwrap_err();
    assert_eq!(err.code(), ErrorCode::CanisterContractViolation);
    assert!(err.to_string().contains("requires that the new canister module supports enhanced orthogonal persistence"));
    f.inc();
    f.install(InstallMode::UPGRADE_KEEP, "e2", b"post").unwrap();
    // An upgrade of such a canister must say what happens to the heap.
    let before = f.view();
    let err = f.install(InstallMode::UPGRADE, "e3", b"post").unwrap_err();
    assert!(
        err.to_string().contains(
            "Missing upgrade option: Enhanced orthogonal persistence requires the `wasm_memory_persistence` upgrade \
             option."
        ),
        "{err}"
    );
    assert_eq!(err.code(), ErrorCode::CanisterContractViolation);
    assert_eq!(f.view(), before, "a refused upgrade changed the canister");
    // Keep keeps the heap exactly; an explicit replace is allowed.
    f.install(InstallMode::UPGRADE_KEEP, "e3", b"again").unwrap();
    assert_eq!((f.view().0, f.view().1), ("v1".into(), 1));
    let replace =
        InstallMode::Upgrade { wasm_memory_persistence: Some(WasmMemoryPersistence::Replace), skip_pre_upgrade: false };
    f.install(replace, "e4", b"post").unwrap();
    assert_eq!((f.view().0, f.view().1), ("e4".into(), 0));
}

#[test]
fn keeping_a_heap_the_new_module_cannot_hold_is_refused_and_changes_nothing() {
    let mut f = Fixture::new();
    f.inc();
    let before = f.view();
    let keep = InstallMode::UPGRADE_KEEP;
    for new in [r#"(module (memory 0 0))"#, r#"(module)"#] {
        let wasm = wat::parse_str(new.replace("(module", &format!("(module {EOP}"))).unwrap();
        let (exec, owner) = (&f.exec, f.owner);
        let err = f.registry.get_mut(&f.id).unwrap().install_code(exec, &owner, keep, &wasm, b"", 5).unwrap_err();
        assert!(matches!(err, CanisterError::HeapDoesNotFit { heap: WasmPages(1), .. }), "{new}: {err}");
        assert_eq!(err.code(), ErrorCode::CanisterInvalidWasm);
        // The canister still runs its old module, on its old heap.
        assert_eq!(f.view(), before);
    }
    f.inc();
    assert_eq!(f.view().1, before.1 + 1);
}

#[test]
fn a_trapping_pre_or_post_upgrade_leaves_everything_as_before() {
    let mut f = Fixture::new();
    f.inc();
    let before = f.view();
    let stable_before = f.record().state().stable_pages;
    let version_before = f.record().version();
    f.install(InstallMode::UPGRADE, "v2", b"trap").unwrap_err();
    assert_eq!(f.view(), before, "a trapping post_upgrade changed the canister");
    let exec = &f.exec;
    f.registry.get_mut(&f.id).unwrap().update(exec, &Principal::anonymous(), "arm_pre_upgrade_trap", &[], 5).unwrap();
    let before = f.view();
    match f.install(InstallMode::UPGRADE, "v2", b"post") {
        Err(e @ CanisterError::HookFailed { entry: "canister_pre_upgrade", .. }) => {
            assert!(e.to_string().contains("nothing changed"))
        }
        other => panic!("{other:?}"),
    }
    assert_eq!(f.view(), before);
    assert_eq!((f.record().state().stable_pages, f.record().version()), (stable_before, version_before));
    // Skipping pre_upgrade gets past it.
    f.install(InstallMode::Upgrade { wasm_memory_persistence: None, skip_pre_upgrade: true }, "v2", b"post").unwrap();
    assert_eq!(f.view().0, "v2");
}

#[test]
fn reinstall_wipes_heap_and_stable_memory() {
    let mut f = Fixture::new();
    f.inc();
    f.install(InstallMode::UPGRADE, "v2", b"post").unwrap(); // fills stable memory
    f.install(InstallMode::Reinstall, "v3", b"re").unwrap();
    assert_eq!(f.view(), ("v3".into(), 0, 0, 0, b"re\0\0".to_vec()));
    assert_eq!(f.record().state().stable_pages, WasmPages(0));
}

#[test]
fn a_stopped_canister_rejects_messages_and_only_a_stopped_one_is_deleted() {
    let mut f = Fixture::new();
    let (exec, owner, id) = (&f.exec, f.owner, f.id);
    assert!(matches!(f.registry.delete(&owner, &id), Err(CanisterError::NotStopped { .. })));
    let record = f.registry.get_mut(&id).unwrap();
    record.stop(exec, &owner).unwrap();
    let err = record.update(exec, &Principal::anonymous(), "inc", &[], 5).unwrap_err();
    assert!(err.to_string().contains("is stopped"), "{err}");
    assert!(record.query(exec, &Principal::anonymous(), "get", &[], 5).is_err());
    record.start(exec, &owner).unwrap();
    assert!(record.update(exec, &Principal::anonymous(), "inc", &[], 5).unwrap().outcome.is_ok());
    record.stop(exec, &owner).unwrap();
    f.registry.delete(&owner, &id).unwrap();
    assert!(matches!(f.registry.get(&id), Err(CanisterError::NotFound(_))));
}

#[test]
fn uninstall_removes_code_and_state() {
    let mut f = Fixture::new();
    f.inc();
    let (exec, owner) = (&f.exec, f.owner);
    let record = f.registry.get_mut(&f.id).unwrap();
    record.uninstall(exec, &owner).unwrap();
    let r = record.update(exec, &Principal::anonymous(), "inc", &[], 5).unwrap();
    assert_eq!(r.outcome, Err(ExecutionError::NoModule));
    assert_eq!(record.state().heap_pages, WasmPages(0));
    f.install(InstallMode::Install, "v4", b"new!").unwrap();
    assert_eq!(f.view(), ("v4".into(), 0, 0, 0, b"new!".to_vec()));
}

/// Everything a snapshot must restore, for byte-for-byte comparison.
#[derive(Debug, PartialEq)]
struct FullState {
    heap: Vec<u8>,
    stable: Vec<u8>,
    globals: Vec<GlobalValue>,
    certified_data: Vec<u8>,
    module: [u8; 32],
}

fn full_state(record: &Canister) -> FullState {
    let s = record.state();
    let mut heap = vec![0; s.heap_pages.bytes() as usize];
    s.heap.read(0, &mut heap).unwrap();
    let mut stable = vec![0; s.stable_pages.bytes() as usize];
    s.stable.read(0, &mut stable).unwrap();
    FullState {
        heap,
        stable,
        globals: s.globals.clone(),
        certified_data: s.certified_data.clone(),
        module: s.module.as_ref().unwrap().hash,
    }
}

#[test]
fn snapshots_restore_the_exact_state() {
    let mut f = Fixture::new();
    f.inc();
    f.install(InstallMode::UPGRADE, "v2", b"post").unwrap();
    f.inc();
    let (exec, owner) = (&f.exec, f.owner);
    let record = f.registry.get_mut(&f.id).unwrap();
    assert!(matches!(record.take_snapshot(&owner, None, 10), Err(CanisterError::NotStopped { .. })));
    record.stop(exec, &owner).unwrap();
    let id = record.take_snapshot(&owner, None, 10).unwrap();
    let saved = full_state(record);
    record.start(exec, &owner).unwrap();
    for _ in 0..3 {
        record.update(exec, &Principal::anonymous(), "inc", &[], 11).unwrap();
    }
    record.install_code(exec, &owner, InstallMode::UPGRADE, &versioned("v3"), b"late", 11).unwrap();
    assert_ne!(full_state(record), saved);
    record.stop(exec, &owner).unwrap();
    assert!(matches!(record.load_snapshot(exec, &owner, 99), Err(CanisterError::SnapshotNotFound { .. })));
    record.load_snapshot(exec, &owner, id).unwrap();
    assert!(full_state(record) == saved, "the loaded snapshot differs from the saved state");
    assert_eq!(record.status(), CanisterStatus::Stopped);
    record.start(exec, &owner).unwrap();
    assert_eq!(f.view(), ("v2".into(), 1, 1, 10, b"post".to_vec()));

    let record = f.registry.get_mut(&f.id).unwrap();
    record.stop(exec, &owner).unwrap();
    let replaced = record.take_snapshot(&owner, Some(id), 12).unwrap();
    let listed: Vec<u64> = record.list_snapshots(&owner).unwrap().iter().map(|s| s.id).collect();
    assert_eq!(listed, vec![replaced]);
    record.delete_snapshot(&owner, replaced).unwrap();
    assert!(record.list_snapshots(&owner).unwrap().is_empty());
    for _ in 0..canister_host::canister::MAX_SNAPSHOTS {
        record.take_snapshot(&owner, None, 13).unwrap();
    }
    assert!(matches!(record.take_snapshot(&owner, None, 13), Err(CanisterError::TooManySnapshots { .. })));
}

#[test]
fn taking_a_snapshot_shares_the_heap_instead_of_copying_it() {
    // A 256 MiB heap.
    let exec = executor(TrackingMode::ReadMapped, true);
    let mut registry = Registry::default();
    let owner = Principal::from_slice(&[1]);
    let id = registry.create(vec![owner], None).unwrap();
    let record = registry.get_mut(&id).unwrap();
    record.install_code(&exec, &owner, InstallMode::Install, canisters::MEMORY_STRESS, &[], 1).unwrap();
    let grow = Encode!(&4096u64).unwrap();
    record.update(&exec, &owner, "grow", &grow, 1).unwrap();
    record.update(&exec, &owner, "write_pages", &sweep(HEAP_START, 65536, 4096, false, 1), 1).unwrap();
    record.stop(&exec, &owner).unwrap();
    let snapshot = record.take_snapshot(&owner, None, 2).unwrap();
    let taken = record.snapshots().find(|s| s.id == snapshot).unwrap();
    assert!(taken.state.heap.delta().len() >= 65536);
    // The snapshot is the same persistent version as the live heap: nothing
    // was copied.
    assert!(taken.state.heap.delta().same_version(record.state().heap.delta()));
}

/// A module whose start function counts its runs (in memory and a global),
/// and whose init and post_upgrade record the count they saw.
const STARTED: &str = r#"(module
    (import "ic0" "msg_reply" (func $reply))
    (import "ic0" "msg_reply_data_append" (func $append (param i32 i32)))
    (import "ic0" "trap" (func $trap (param i32 i32)))
    (memory 1)
    (global $runs (mut i64) (i64.const 0))
    (func $start
        (i64.store (i32.const 0) (i64.add (i64.load (i32.const 0)) (i64.const 1)))
        (global.set $runs (i64.add (global.get $runs) (i64.const 1))))
    (start $start)
    (func (export "canister_init") (i64.store (i32.const 8) (i64.load (i32.const 0))))
    (func (export "canister_post_upgrade") (i64.store (i32.const 16) (i64.load (i32.const 0))))
    (func (export "canister_update fail") (call $trap (i32.const 0) (i32.const 0)))
    (func (export "canister_query get")
        (i64.store (i32.const 24) (global.get $runs))
        (call $append (i32.const 0) (i32.const 32))
        (call $reply)))"#;

#[test]
fn the_start_function_runs_once_before_init_and_post_upgrade_never_at_instantiation() {
    let exec = executor(TrackingMode::ReadMapped, true);
    let owner = Principal::from_slice(&[7; 29]);
    let mut registry = Registry::default();
    let id = registry.create(vec![owner], None).unwrap();
    let canister = registry.get_mut(&id).unwrap();
    let wasm = wat::parse_str(STARTED).unwrap();
    canister.install_code(&exec, &owner, InstallMode::Install, &wasm, &[], 5).unwrap();
    let get = |c: &Canister| {
        let r = c.query(&exec, &owner, "get", &[], 6).unwrap();
        let bytes = r.reply().unwrap().to_vec();
        let word = |i: usize| u64::from_le_bytes(bytes[i * 8..i * 8 + 8].try_into().unwrap());
        (word(0), word(1), word(2), word(3))
    };
    // Ran once, before canister_init saw its effect (heap and global).
    assert_eq!(get(canister), (1, 1, 0, 1));
    // Queries and a failed update re-create instances; none runs it again.
    for _ in 0..3 {
        assert!(canister.update(&exec, &owner, "fail", &[], 6).unwrap().outcome.is_err());
        assert_eq!(get(canister), (1, 1, 0, 1));
    }
    // An upgrade runs it on the new heap, before canister_post_upgrade.
    canister.install_code(&exec, &owner, InstallMode::UPGRADE, &wasm, &[], 7).unwrap();
    assert_eq!(get(canister), (1, 0, 1, 1));

    // Only the System API of context `s` is available in it.
    let caller = STARTED
        .replace("(memory 1)", r#"(import "ic0" "msg_caller_size" (func $caller (result i32))) (memory 1)"#)
        .replace("(func $start", "(func $start (drop (call $caller))");
    let id = registry.create(vec![owner], None).unwrap();
    let err = registry
        .get_mut(&id)
        .unwrap()
        .install_code(&exec, &owner, InstallMode::Install, &wat::parse_str(caller).unwrap(), &[], 5)
        .unwrap_err();
    assert!(err.to_string().contains("ic0.msg_caller_size cannot be called from the module's start function"), "{err}");
    assert_eq!(err.code(), ErrorCode::CanisterContractViolation);
}
