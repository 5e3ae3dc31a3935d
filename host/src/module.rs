//! Checking and preparing canister modules at install.
//!
//! A module is validated, checked to be a canister (imports only from `ic0`,
//! entry points of the right shape, no start function, a 32-bit memory), and
//! rewritten so that instantiating it never writes to memory: its active data
//! segments are taken out, to be written into the heap page map instead, and
//! are replaced by empty passive ones so segment indices stay valid. Every
//! mutable global is exported under a reserved name so the executor can save
//! and restore it, and the memory gets a reserved export too.

use std::collections::BTreeMap;
use std::convert::Infallible;

use wasm_encoder::reencode::{self, Reencode};
use wasm_encoder::{DataSection, ExportKind, ExportSection, SectionId};
use wasmparser::{
    CompositeInnerType, DataKind, ExternalKind, FuncType, Operator, Parser, Payload, TypeRef, ValType, Validator,
    WasmFeatures,
};

/// Export name given to the module's memory.
pub const MEMORY_EXPORT: &str = "__canister_host_memory";
/// Prefix of the export names given to mutable globals.
pub const GLOBAL_EXPORT_PREFIX: &str = "__canister_host_global_";

/// Size of a wasm page.
pub const WASM_PAGE: u64 = 64 * 1024;

#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum ModuleError {
    #[error("the module is {size} bytes, over the {limit}-byte limit; shrink it or raise the limit")]
    TooLarge { size: usize, limit: usize },
    #[error("not a valid WebAssembly module: {0}")]
    Invalid(String),
    #[error("not a canister module: {0}")]
    NotCanister(String),
    #[error("unsupported module: {0}")]
    Unsupported(String),
}

/// How a canister method may be called.
#[derive(Copy, Clone, Debug, PartialEq, Eq, Hash)]
pub enum MethodKind {
    Update,
    Query,
    CompositeQuery,
}

impl MethodKind {
    pub fn export_prefix(self) -> &'static str {
        match self {
            MethodKind::Update => "canister_update ",
            MethodKind::Query => "canister_query ",
            MethodKind::CompositeQuery => "canister_composite_query ",
        }
    }
}

impl std::fmt::Display for MethodKind {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(match self {
            MethodKind::Update => "update",
            MethodKind::Query => "query",
            MethodKind::CompositeQuery => "composite query",
        })
    }
}

/// System entry points a canister may export.
#[derive(Copy, Clone, Debug, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum EntryPoint {
    Init,
    PreUpgrade,
    PostUpgrade,
    InspectMessage,
    Heartbeat,
    GlobalTimer,
    OnLowWasmMemory,
}

impl EntryPoint {
    const ALL: [EntryPoint; 7] = [
        EntryPoint::Init,
        EntryPoint::PreUpgrade,
        EntryPoint::PostUpgrade,
        EntryPoint::InspectMessage,
        EntryPoint::Heartbeat,
        EntryPoint::GlobalTimer,
        EntryPoint::OnLowWasmMemory,
    ];

    pub fn export_name(self) -> &'static str {
        match self {
            EntryPoint::Init => "canister_init",
            EntryPoint::PreUpgrade => "canister_pre_upgrade",
            EntryPoint::PostUpgrade => "canister_post_upgrade",
            EntryPoint::InspectMessage => "canister_inspect_message",
            EntryPoint::Heartbeat => "canister_heartbeat",
            EntryPoint::GlobalTimer => "canister_global_timer",
            EntryPoint::OnLowWasmMemory => "canister_on_low_wasm_memory",
        }
    }
}

/// An active data segment, taken out of the module.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct DataSegment {
    pub offset: u64,
    pub bytes: Vec<u8>,
}

/// A mutable global and the name it is exported under.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct MutableGlobal {
    pub index: u32,
    pub ty: ValType,
    pub export: String,
}

/// A function imported from `ic0`.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Ic0Import {
    pub name: String,
    pub params: Vec<ValType>,
    pub results: Vec<ValType>,
}

/// The linear memory a module defines.
#[derive(Copy, Clone, Debug, PartialEq, Eq)]
pub struct MemoryInfo {
    pub initial_pages: u64,
    pub maximum_pages: Option<u64>,
}

/// What the executor needs to know about a canister module.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ModuleInfo {
    pub methods: BTreeMap<String, MethodKind>,
    pub entry_points: Vec<EntryPoint>,
    pub memory: Option<MemoryInfo>,
    pub data: Vec<DataSegment>,
    pub globals: Vec<MutableGlobal>,
    pub imports: Vec<Ic0Import>,
}

impl ModuleInfo {
    pub fn has(&self, entry: EntryPoint) -> bool {
        self.entry_points.contains(&entry)
    }
}

/// Features canisters may use: WebAssembly 2.0 (bulk memory, reference
/// types, multi-value, deterministic SIMD...) plus extended constants. No
/// threads, relaxed SIMD, memory64, multiple memories, tail calls, GC or
/// exceptions: the IC allows none of them either.
pub fn features() -> WasmFeatures {
    WasmFeatures::WASM2 | WasmFeatures::EXTENDED_CONST
}

/// Check `wasm` and prepare it for execution: the facts about it, and the
/// rewritten module to compile.
pub fn prepare(wasm: &[u8], max_bytes: usize) -> Result<(ModuleInfo, Vec<u8>), ModuleError> {
    if wasm.len() > max_bytes {
        return Err(ModuleError::TooLarge { size: wasm.len(), limit: max_bytes });
    }
    if !wasm.starts_with(b"\0asm") {
        return Err(ModuleError::Invalid("it does not start with the WebAssembly magic bytes".into()));
    }
    reject_out_of_scope(wasm)?;
    Validator::new_with_features(features()).validate_all(wasm).map_err(|e| ModuleError::Invalid(e.to_string()))?;
    let info = analyze(wasm)?;
    let rewritten = rewrite(wasm, &info)?;
    Ok((info, rewritten))
}

/// Give precise errors for things the validator would report cryptically.
fn reject_out_of_scope(wasm: &[u8]) -> Result<(), ModuleError> {
    for payload in Parser::new(0).parse_all(wasm) {
        let Ok(payload) = payload else { return Ok(()) }; // the validator explains
        match payload {
            Payload::StartSection { .. } => {
                return Err(ModuleError::Unsupported("the module has a start function; canisters may not".into()));
            }
            Payload::MemorySection(reader) => {
                for memory in reader.into_iter().flatten() {
                    if memory.memory64 {
                        return Err(ModuleError::Unsupported("64-bit memories (wasm64) are not supported yet".into()));
                    }
                    if memory.shared {
                        return Err(ModuleError::Unsupported("shared memories (threads) are not supported".into()));
                    }
                }
            }
            Payload::ComponentSection { .. } | Payload::ModuleSection { .. } => {
                return Err(ModuleError::NotCanister("it is a component, not a core module".into()));
            }
            _ => {}
        }
    }
    Ok(())
}

/// Collect the facts about a valid module.
fn analyze(wasm: &[u8]) -> Result<ModuleInfo, ModuleError> {
    let invalid = |e: wasmparser::BinaryReaderError| ModuleError::Invalid(e.to_string());
    let mut types: Vec<Option<FuncType>> = Vec::new();
    let mut func_types: Vec<u32> = Vec::new();
    let mut imports = Vec::new();
    let mut memory = None;
    let mut globals: Vec<(ValType, bool)> = Vec::new();
    let mut exports = Vec::new();
    let mut segments = Vec::new();
    for payload in Parser::new(0).parse_all(wasm) {
        match payload.map_err(invalid)? {
            Payload::TypeSection(reader) => {
                for group in reader {
                    for sub in group.map_err(invalid)?.into_types() {
                        types.push(match sub.composite_type.inner {
                            CompositeInnerType::Func(f) => Some(f),
                            _ => None,
                        });
                    }
                }
            }
            Payload::ImportSection(reader) => {
                for import in reader.into_imports() {
                    let import = import.map_err(invalid)?;
                    let TypeRef::Func(ty) = import.ty else {
                        return Err(ModuleError::NotCanister(format!(
                            "it imports {}.{} which is not a function; canisters import only functions from ic0",
                            import.module, import.name
                        )));
                    };
                    if import.module != "ic0" {
                        return Err(ModuleError::NotCanister(format!(
                            "it imports {}.{}; canisters may import only from the IC System API (module ic0)",
                            import.module, import.name
                        )));
                    }
                    let f = types.get(ty as usize).cloned().flatten().ok_or_else(|| {
                        ModuleError::Invalid(format!("import ic0.{} has a non-function type", import.name))
                    })?;
                    func_types.push(ty);
                    imports.push(Ic0Import {
                        name: import.name.to_string(),
                        params: f.params().to_vec(),
                        results: f.results().to_vec(),
                    });
                }
            }
            Payload::FunctionSection(reader) => {
                for ty in reader {
                    func_types.push(ty.map_err(invalid)?);
                }
            }
            Payload::MemorySection(reader) => {
                for m in reader {
                    let m = m.map_err(invalid)?;
                    memory = Some(MemoryInfo { initial_pages: m.initial, maximum_pages: m.maximum });
                }
            }
            Payload::GlobalSection(reader) => {
                for g in reader {
                    let g = g.map_err(invalid)?;
                    globals.push((g.ty.content_type, g.ty.mutable));
                }
            }
            Payload::ExportSection(reader) => {
                for e in reader {
                    let e = e.map_err(invalid)?;
                    exports.push((e.name.to_string(), e.kind, e.index));
                }
            }
            Payload::DataSection(reader) => {
                for d in reader {
                    let d = d.map_err(invalid)?;
                    if let DataKind::Active { offset_expr, .. } = d.kind {
                        let offset = const_offset(&offset_expr)?;
                        segments.push(DataSegment { offset, bytes: d.data.to_vec() });
                    }
                }
            }
            _ => {}
        }
    }

    let (methods, entry_points) = canister_exports(&exports, &func_types, &types)?;
    if let Some(m) = memory {
        for s in &segments {
            if s.offset + s.bytes.len() as u64 > m.initial_pages * WASM_PAGE {
                return Err(ModuleError::Invalid(format!(
                    "a data segment at offset {} ({} bytes) does not fit the initial memory of {} pages",
                    s.offset,
                    s.bytes.len(),
                    m.initial_pages
                )));
            }
        }
    }
    let globals = globals
        .iter()
        .enumerate()
        .filter(|(_, (_, mutable))| *mutable)
        .map(|(i, (ty, _))| MutableGlobal { index: i as u32, ty: *ty, export: format!("{GLOBAL_EXPORT_PREFIX}{i}") })
        .collect();
    Ok(ModuleInfo { methods, entry_points, memory, data: segments, globals, imports })
}

/// The offset of an active data segment. With imports limited to functions,
/// a valid offset is an `i32.const`, unless it uses extended constant
/// arithmetic, which no canister toolchain emits.
fn const_offset(expr: &wasmparser::ConstExpr<'_>) -> Result<u64, ModuleError> {
    let mut ops = expr.get_operators_reader();
    match (ops.read(), ops.read()) {
        (Ok(Operator::I32Const { value }), Ok(Operator::End)) => Ok(u64::from(value as u32)),
        _ => Err(ModuleError::Unsupported("a data segment offset is not a plain i32.const".into())),
    }
}

fn canister_exports(
    exports: &[(String, ExternalKind, u32)],
    func_types: &[u32],
    types: &[Option<FuncType>],
) -> Result<(BTreeMap<String, MethodKind>, Vec<EntryPoint>), ModuleError> {
    let mut methods = BTreeMap::new();
    let mut entry_points = Vec::new();
    let kinds = [MethodKind::Update, MethodKind::Query, MethodKind::CompositeQuery];
    for (name, kind, index) in exports {
        let method = kinds.iter().find_map(|k| name.strip_prefix(k.export_prefix()).map(|m| (*k, m)));
        let entry = EntryPoint::ALL.iter().find(|e| e.export_name() == name);
        if method.is_none() && entry.is_none() {
            if name.starts_with("canister_") {
                return Err(ModuleError::NotCanister(format!(
                    "it exports {name:?}, which is not a canister entry point"
                )));
            }
            continue;
        }
        let ty = (*kind == ExternalKind::Func)
            .then(|| func_types.get(*index as usize))
            .flatten()
            .and_then(|t| types.get(*t as usize).cloned().flatten());
        if !ty.is_some_and(|t| t.params().is_empty() && t.results().is_empty()) {
            return Err(ModuleError::NotCanister(format!("export {name:?} must be a function of type () -> ()")));
        }
        if let Some((kind, method)) = method {
            if let Some(previous) = methods.insert(method.to_string(), kind) {
                return Err(ModuleError::NotCanister(format!(
                    "method {method:?} is exported both as {previous} and as {kind}"
                )));
            }
        } else if let Some(entry) = entry {
            entry_points.push(*entry);
        }
    }
    Ok((methods, entry_points))
}

/// Re-encode the module without active data and with the reserved exports.
fn rewrite(wasm: &[u8], info: &ModuleInfo) -> Result<Vec<u8>, ModuleError> {
    let mut extra: Vec<(String, ExportKind, u32)> =
        info.globals.iter().map(|g| (g.export.clone(), ExportKind::Global, g.index)).collect();
    if info.memory.is_some() {
        extra.push((MEMORY_EXPORT.to_string(), ExportKind::Memory, 0));
    }
    let mut rewriter = Rewriter { extra, exports_written: false };
    let mut module = wasm_encoder::Module::new();
    rewriter
        .parse_core_module(&mut module, Parser::new(0), wasm)
        .map_err(|e| ModuleError::Invalid(format!("cannot re-encode the module: {e}")))?;
    Ok(module.finish())
}

struct Rewriter {
    extra: Vec<(String, ExportKind, u32)>,
    exports_written: bool,
}

impl Rewriter {
    fn add_extra(&mut self, exports: &mut ExportSection) {
        for (name, kind, index) in &self.extra {
            exports.export(name, *kind, *index);
        }
        self.exports_written = true;
    }
}

/// Position of a section in the module order (custom sections have none).
fn section_rank(id: SectionId) -> Option<u8> {
    use SectionId::*;
    Some(match id {
        Type => 1,
        Import => 2,
        Function => 3,
        Table => 4,
        Memory => 5,
        Tag => 6,
        Global => 7,
        Export => 8,
        Start => 9,
        Element => 10,
        DataCount => 11,
        Code => 12,
        Data => 13,
        Custom => return None,
    })
}

impl Reencode for Rewriter {
    type Error = Infallible;

    fn parse_data(&mut self, data: &mut DataSection, datum: wasmparser::Data<'_>) -> Result<(), reencode::Error> {
        match datum.kind {
            // The executor writes active segments into the heap page map.
            DataKind::Active { .. } => data.passive(std::iter::empty()),
            DataKind::Passive => data.passive(datum.data.iter().copied()),
        };
        Ok(())
    }

    fn parse_export_section(
        &mut self,
        exports: &mut ExportSection,
        section: wasmparser::ExportSectionReader<'_>,
    ) -> Result<(), reencode::Error> {
        reencode::utils::parse_export_section(self, exports, section)?;
        self.add_extra(exports);
        Ok(())
    }

    fn intersperse_section_hook(
        &mut self,
        module: &mut wasm_encoder::Module,
        _after: Option<SectionId>,
        before: Option<SectionId>,
    ) -> Result<(), reencode::Error> {
        // A module without an export section gets one where it belongs.
        let past_exports = before.map_or(Some(true), |b| section_rank(b).map(|r| r > 8));
        if !self.exports_written && !self.extra.is_empty() && past_exports == Some(true) {
            let mut exports = ExportSection::new();
            self.add_extra(&mut exports);
            module.section(&exports);
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
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
            vec![
                DataSegment { offset: 16, bytes: b"hello".to_vec() },
                DataSegment { offset: 100, bytes: b"xy".to_vec() },
            ]
        );
        assert_eq!(info.methods["inc"], MethodKind::Update);
        assert_eq!(info.methods["get"], MethodKind::Query);
        assert!(info.has(EntryPoint::Init) && !info.has(EntryPoint::PreUpgrade));
        assert_eq!(info.memory, Some(MemoryInfo { initial_pages: 2, maximum_pages: Some(10) }));
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
                Payload::ExportSection(r) => {
                    Some(r.into_iter().map(|e| e.unwrap().name.to_string()).collect::<Vec<_>>())
                }
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
            (r#"(module (func $s) (start $s))"#, "start function"),
            (r#"(module (memory i64 1))"#, "64-bit"),
            (r#"(module (func (export "canister_frobnicate")))"#, "canister_frobnicate"),
            (r#"(module (func (export "canister_update f") (param i32)))"#, "() -> ()"),
            (r#"(module (func (export "canister_update f")) (func (export "canister_query f")))"#, "both"),
            (r#"(module (import "ic0" "x" (global i32)))"#, "not a function"),
            (r#"(module (memory 1) (data (i32.const 65530) "0123456789"))"#, "does not fit"),
            (r#"(module (memory 1) (data (i32.add (i32.const 1) (i32.const 2)) "x"))"#, "plain i32.const"),
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
}
