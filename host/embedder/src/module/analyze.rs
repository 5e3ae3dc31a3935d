//! Collecting the facts about a valid module: its canister methods and
//! entry points, memory, active data segments, mutable globals and `ic0`
//! imports.

use std::collections::BTreeMap;

use wasmparser::{CompositeInnerType, DataKind, ExternalKind, FuncType, Operator, Parser, Payload, TypeRef, ValType};

use super::GLOBAL_EXPORT_PREFIX;
use super::{DataSegment, EntryPoint, Ic0Import, MemoryInfo, MethodKind, ModuleError, ModuleInfo, MutableGlobal};
use crate::units::WasmPages;

/// Collect the facts about a valid module.
pub(super) fn analyze(wasm: &[u8]) -> Result<ModuleInfo, ModuleError> {
    let invalid = |e: wasmparser::BinaryReaderError| ModuleError::Invalid(e.to_string());
    let mut types: Vec<Option<FuncType>> = Vec::new();
    let mut func_types: Vec<u32> = Vec::new();
    let mut imports = Vec::new();
    let mut memory = None;
    let mut globals: Vec<(ValType, bool)> = Vec::new();
    let mut exports = Vec::new();
    let mut segments = Vec::new();
    let mut start = None;
    let mut has_table = false;
    let mut uses_64_bit = false;
    let mut eop = false;
    let mut mutates_instance = false;
    for payload in Parser::new(0).parse_all(wasm) {
        match payload.map_err(invalid)? {
            Payload::CodeSectionEntry(body) if !mutates_instance => {
                mutates_instance = changes_instance_state(&body).map_err(invalid)?;
            }
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
                    uses_64_bit |= m.memory64;
                    memory = Some(MemoryInfo {
                        initial: WasmPages(m.initial),
                        maximum: m.maximum.map(WasmPages),
                        is_64: m.memory64,
                    });
                }
            }
            Payload::TableSection(reader) => {
                for t in reader {
                    uses_64_bit |= t.map_err(invalid)?.ty.table64;
                    has_table = true;
                }
            }
            Payload::StartSection { func, .. } => start = Some(func),
            Payload::CustomSection(reader) => {
                let name = reader.name();
                eop |= ["icp:private ", "icp:public "]
                    .iter()
                    .any(|visibility| name.strip_prefix(visibility) == Some(super::EOP_SECTION));
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

    let (methods, mut entry_points) = canister_exports(&exports, &func_types, &types)?;
    if let Some(func) = start {
        let ty = func_types.get(func as usize).and_then(|t| types.get(*t as usize).cloned().flatten());
        if !ty.is_some_and(|t| t.params().is_empty() && t.results().is_empty()) {
            return Err(ModuleError::Invalid("the start function must be of type () -> ()".into()));
        }
        entry_points.push(EntryPoint::Start);
    }
    if let Some(m) = memory {
        for s in &segments {
            if s.offset + s.bytes.len() as u64 > m.initial.bytes() {
                return Err(ModuleError::Invalid(format!(
                    "a data segment at offset {} ({} bytes) does not fit the initial memory of {}",
                    s.offset,
                    s.bytes.len(),
                    m.initial
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
    Ok(ModuleInfo {
        methods,
        entry_points,
        memory,
        data: segments,
        globals,
        imports,
        start,
        has_table,
        uses_64_bit,
        enhanced_orthogonal_persistence: eop,
        mutates_instance,
    })
}

/// Whether `body` changes instance state that is not the canister's state:
/// its tables (`table.set`, `grow`, `fill`, `copy`, `init`) or which
/// segments were dropped. Such changes must not outlive a message.
fn changes_instance_state(body: &wasmparser::FunctionBody<'_>) -> Result<bool, wasmparser::BinaryReaderError> {
    let mut operators = body.get_operators_reader()?;
    while !operators.eof() {
        if matches!(
            operators.read()?,
            Operator::TableSet { .. }
                | Operator::TableGrow { .. }
                | Operator::TableFill { .. }
                | Operator::TableCopy { .. }
                | Operator::TableInit { .. }
                | Operator::ElemDrop { .. }
                | Operator::DataDrop { .. }
        ) {
            return Ok(true);
        }
    }
    Ok(false)
}

/// The offset of an active data segment. With imports limited to functions,
/// a valid offset is an `i32.const` (an `i64.const` in a 64-bit memory),
/// unless it uses extended constant arithmetic, which no canister
/// toolchain emits.
fn const_offset(expr: &wasmparser::ConstExpr<'_>) -> Result<u64, ModuleError> {
    let mut ops = expr.get_operators_reader();
    match (ops.read(), ops.read()) {
        (Ok(Operator::I32Const { value }), Ok(Operator::End)) => Ok(u64::from(value as u32)),
        (Ok(Operator::I64Const { value }), Ok(Operator::End)) => Ok(value as u64),
        _ => Err(ModuleError::Unsupported("a data segment offset is not a plain integer constant".into())),
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
