//! Preparing modules: what is extracted, what is rewritten, and what is
//! refused with which reason.

use wasmparser::{Parser, Payload, ValType, Validator};

use super::analyze::analyze;
use super::*;

fn wat(src: &str) -> Vec<u8> {
    wat::parse_str(src).unwrap()
}

#[test]
fn data_segments_are_extracted_and_globals_exported() {
    let wasm = wat(r#"(module
        (import "ic0" "msg_reply" (func))
        (memory 2 10)
        (global $g (mut i32) (i32.const 7))
        (data (i32.const 16) "hello")
        (data (i32.const 100) "xy")
        (data "passive")
        (func (export "canister_update inc"))
        (func (export "canister_query get"))
        (func (export "canister_init")))"#);
    let (info, rewritten) = prepare(&wasm, 1 << 20).unwrap();
    assert_eq!(
        info.data,
        vec![DataSegment { offset: 16, bytes: b"hello".to_vec() }, DataSegment { offset: 100, bytes: b"xy".to_vec() },]
    );
    assert_eq!(info.methods["inc"], MethodKind::Update);
    assert_eq!(info.methods["get"], MethodKind::Query);
    assert!(info.has(EntryPoint::Init) && !info.has(EntryPoint::PreUpgrade));
    assert_eq!(info.memory, Some(MemoryInfo { initial: WasmPages(2), maximum: Some(WasmPages(10)), is_64: false }));
    assert_eq!(
        info.globals,
        vec![MutableGlobal { index: 0, ty: ValType::I32, export: format!("{GLOBAL_EXPORT_PREFIX}0") }]
    );
    assert_eq!(info.imports[0].name, "msg_reply");

    // The rewritten module is valid, has no active data left, keeps the
    // passive segment, and exports the global and the memory.
    Validator::new_with_features(features()).validate_all(&rewritten).unwrap();
    let again = analyze(&rewritten).unwrap();
    assert!(again.data.is_empty());
    let exports: Vec<String> = Parser::new(0)
        .parse_all(&rewritten)
        .filter_map(|p| match p.unwrap() {
            Payload::ExportSection(r) => Some(r.into_iter().map(|e| e.unwrap().name.to_string()).collect::<Vec<_>>()),
            _ => None,
        })
        .flatten()
        .collect();
    assert!(exports.contains(&MEMORY_EXPORT.to_string()));
    assert!(exports.contains(&format!("{GLOBAL_EXPORT_PREFIX}0")));
}

#[test]
fn a_module_without_exports_gets_an_export_section() {
    let wasm = wat(r#"(module (memory 1) (global (mut i64) (i64.const 0)) (func))"#);
    let (_, rewritten) = prepare(&wasm, 1 << 20).unwrap();
    Validator::new_with_features(features()).validate_all(&rewritten).unwrap();
    assert_eq!(analyze(&rewritten).unwrap().globals.len(), 1);
}

#[test]
fn non_canisters_are_rejected_with_reasons() {
    let cases = [
        (r#"(module (import "wasi_snapshot_preview1" "fd_write" (func)))"#, "wasi_snapshot_preview1.fd_write"),
        (r#"(module (func $s (param i32)) (start $s))"#, "start function"),
        (r#"(module (memory 1) (export "__canister_host_memory" (memory 0)))"#, "reserved for the host"),
        (r#"(module (func (export "canister_frobnicate")))"#, "canister_frobnicate"),
        (r#"(module (func (export "canister_update f") (param i32)))"#, "() -> ()"),
        (r#"(module (func (export "canister_update f")) (func (export "canister_query f")))"#, "both"),
        (r#"(module (import "ic0" "x" (global i32)))"#, "not a function"),
        (r#"(module (memory 1) (data (i32.const 65530) "0123456789"))"#, "does not fit"),
        (r#"(module (memory 1) (data (i32.add (i32.const 1) (i32.const 2)) "x"))"#, "plain integer constant"),
    ];
    for (src, expected) in cases {
        let err = prepare(&wat(src), 1 << 20).unwrap_err().to_string();
        assert!(err.contains(expected), "{src}: {err}");
    }
    assert!(matches!(prepare(b"\0asm\x01\0\0\0garbage", 1 << 20), Err(ModuleError::Invalid(_))));
    assert!(matches!(prepare(b"hello", 1 << 20), Err(ModuleError::Invalid(_))));
    assert!(matches!(prepare(&wat("(module)"), 4), Err(ModuleError::TooLarge { size: 8, limit: 4 })));
}

#[test]
fn threads_and_relaxed_simd_are_refused() {
    let shared = wat(r#"(module (memory 1 1 shared))"#);
    assert!(prepare(&shared, 1 << 20).unwrap_err().to_string().contains("shared"));
    let relaxed =
        wat(r#"(module (func (result v128) v128.const i64x2 0 0 v128.const i64x2 0 0 i8x16.relaxed_swizzle))"#);
    assert!(matches!(prepare(&relaxed, 1 << 20), Err(ModuleError::Invalid(_))));
}

#[test]
fn externref_is_refused_by_validation_not_by_the_engine() {
    let externref = wat(r#"(module (func (param externref)))"#);
    // Validation is what tells the user; the engine would fail later with
    // an error about its own build.
    let Err(ModuleError::Invalid(message)) = prepare(&externref, 1 << 20) else { panic!("externref accepted") };
    assert!(message.contains("gc types are disallowed"), "{message}");
    let funcref = wat(r#"(module (table 1 funcref) (func (export "canister_update m")))"#);
    prepare(&funcref, 1 << 20).unwrap();
}

#[test]
fn the_ics_module_limits_are_enforced_before_validation() {
    use super::limits::*;
    let many = |what: &str, n: usize| what.repeat(n);
    let functions = format!("(module {})", many("(func)", MAX_FUNCTIONS as usize + 1));
    let globals = format!("(module {})", many("(global i32 (i32.const 0))", MAX_GLOBALS as usize + 1));
    let methods: String =
        (0..=MAX_EXPORTED_METHODS).map(|i| format!("(func (export \"canister_query m{i}\"))")).collect();
    let long_name = format!("(module (func (export \"canister_update {}\")))", "n".repeat(MAX_EXPORTED_NAME_BYTES + 1));
    let body = format!("(module (func {}))", many("(nop)", MAX_FUNCTION_INSTRUCTIONS + 1));
    let cases = [
        (functions, "functions"),
        (globals, "globals"),
        (format!("(module {methods})"), "exports"),
        (long_name, "method names"),
        (body, "instructions"),
        ("(module (table 1000001 funcref))".to_string(), "table starts with"),
        ("(module (table 1 funcref) (table 1 funcref))".to_string(), "2 tables"),
        (
            format!(
                "(module {})",
                (0..=MAX_CUSTOM_SECTIONS).map(|i| format!("(@custom \"icp:public s{i}\" \"x\")")).collect::<String>()
            ),
            "custom sections",
        ),
        (format!("(module (@custom \"icp:private big\" \"{}\"))", "x".repeat(MAX_CUSTOM_SECTIONS_BYTES)), "total"),
    ];
    for (src, expected) in cases {
        match prepare(&wat(&src), 100 << 20) {
            Err(e @ ModuleError::LimitExceeded(_)) => assert!(e.to_string().contains(expected), "{e}"),
            other => panic!("{expected}: {other:?}"),
        }
    }
    let mutable_ref = wat("(module (global (mut funcref) (ref.null func)))");
    assert!(prepare(&mutable_ref, 1 << 20).unwrap_err().to_string().contains("reference type"));
    // Within the limits: accepted.
    let fine = format!("(module {})", many("(func)", 100));
    assert!(prepare(&wat(&fine), 1 << 20).is_ok());
}

#[test]
fn the_start_function_is_exported_not_started() {
    let wasm = wat(r#"(module (memory 1) (table 2 funcref) (func $s) (start $s) (func (export "canister_init")))"#);
    let (info, rewritten) = prepare(&wasm, 1 << 20).unwrap();
    assert_eq!(info.start, Some(0));
    assert!(info.has(EntryPoint::Start) && info.has_table);
    let mut started = false;
    let mut exports = Vec::new();
    for payload in Parser::new(0).parse_all(&rewritten) {
        match payload.unwrap() {
            Payload::StartSection { .. } => started = true,
            Payload::ExportSection(r) => exports.extend(r.into_iter().map(|e| e.unwrap().name.to_string())),
            _ => {}
        }
    }
    assert!(!started, "instantiating the prepared module would run the start function");
    assert!(exports.contains(&START_EXPORT.to_string()) && exports.contains(&TABLE_EXPORT.to_string()));
}

#[test]
fn wasm64_modules_are_prepared_with_their_memory_width() {
    let wasm = wat(r#"(module (memory i64 2) (data (i64.const 70000) "x") (table i64 1 funcref))"#);
    let (info, _) = prepare(&wasm, 1 << 20).unwrap();
    assert!(info.is_wasm64() && info.uses_64_bit);
    assert_eq!(info.data, vec![DataSegment { offset: 70000, bytes: b"x".to_vec() }]);
    let marked = wat(r#"(module (@custom "icp:private enhanced-orthogonal-persistence" ""))"#);
    assert!(prepare(&marked, 1 << 20).unwrap().0.enhanced_orthogonal_persistence);
    assert!(!prepare(&wat("(module)"), 1 << 20).unwrap().0.enhanced_orthogonal_persistence);
}
