//! The IC's limits on canister modules, checked before anything costly
//! (validation, compilation) so an oversized module is refused quickly and
//! never ties up the host. The numbers are the replica's
//! (`rs/config/src/embedders.rs`, `rs/embedders/src/wasm_utils/validation.rs`).

use wasmparser::{Parser, Payload, TypeRef, ValType};

use super::{MethodKind, ModuleError};

/// Functions a module may define.
pub const MAX_FUNCTIONS: u32 = 50_000;
/// Globals a module may define.
pub const MAX_GLOBALS: u32 = 1_000;
/// Bytes of the code section.
pub const MAX_CODE_SECTION_BYTES: usize = 11 << 20;
/// Instructions in one function body.
pub const MAX_FUNCTION_INSTRUCTIONS: usize = 1_000_000;
/// `icp:public` / `icp:private` custom sections.
pub const MAX_CUSTOM_SECTIONS: usize = 16;
/// Bytes of those sections, names included.
pub const MAX_CUSTOM_SECTIONS_BYTES: usize = 1 << 20;
/// Canister methods (update, query, composite query) a module may export.
pub const MAX_EXPORTED_METHODS: usize = 1_000;
/// Sum of the lengths of the exported methods' names.
pub const MAX_EXPORTED_NAME_BYTES: usize = 20_000;
/// Tables a module may have.
pub const MAX_TABLES: u32 = 1;
/// Elements a table may hold (the engine refuses to grow past it too).
pub const MAX_TABLE_ELEMENTS: u64 = 1_000_000;

fn exceeded(what: String) -> ModuleError {
    ModuleError::LimitExceeded(what)
}

/// Check the module's sizes against the IC's limits. Malformed sections are
/// left to the validator, which explains them better.
pub(super) fn check(wasm: &[u8]) -> Result<(), ModuleError> {
    let mut custom = (0usize, 0usize);
    let mut methods = (0usize, 0usize);
    let mut tables = 0u32;
    for payload in Parser::new(0).parse_all(wasm) {
        let Ok(payload) = payload else { return Ok(()) };
        match payload {
            Payload::FunctionSection(reader) if reader.count() > MAX_FUNCTIONS => {
                return Err(exceeded(format!(
                    "it defines {} functions; at most {MAX_FUNCTIONS} are allowed",
                    reader.count()
                )));
            }
            Payload::GlobalSection(reader) => {
                if reader.count() > MAX_GLOBALS {
                    return Err(exceeded(format!(
                        "it defines {} globals; at most {MAX_GLOBALS} are allowed",
                        reader.count()
                    )));
                }
                for global in reader.into_iter().flatten() {
                    if global.ty.mutable && !is_numeric(global.ty.content_type) {
                        return Err(ModuleError::Unsupported(
                            "it has a mutable global of reference type, which cannot persist between messages".into(),
                        ));
                    }
                }
            }
            Payload::ImportSection(reader) => {
                for import in reader.into_imports().flatten() {
                    if matches!(import.ty, TypeRef::Table(_)) {
                        tables += 1;
                    }
                }
            }
            Payload::TableSection(reader) => {
                for table in reader.into_iter().flatten() {
                    tables += 1;
                    if table.ty.initial > MAX_TABLE_ELEMENTS {
                        return Err(exceeded(format!(
                            "a table starts with {} elements; at most {MAX_TABLE_ELEMENTS} are allowed",
                            table.ty.initial
                        )));
                    }
                }
            }
            Payload::CodeSectionStart { size, .. } if size as usize > MAX_CODE_SECTION_BYTES => {
                return Err(exceeded(format!(
                    "its code section is {size} bytes; at most {MAX_CODE_SECTION_BYTES} are allowed"
                )));
            }
            Payload::CodeSectionEntry(body) => {
                let reader = body.get_operators_reader().map_err(|e| ModuleError::Invalid(e.to_string()))?;
                let instructions = reader.into_iter().take(MAX_FUNCTION_INSTRUCTIONS + 1).count();
                if instructions > MAX_FUNCTION_INSTRUCTIONS {
                    return Err(exceeded(format!("a function has more than {MAX_FUNCTION_INSTRUCTIONS} instructions")));
                }
            }
            Payload::ExportSection(reader) => {
                for export in reader.into_iter().flatten() {
                    let kinds = [MethodKind::Update, MethodKind::Query, MethodKind::CompositeQuery];
                    if let Some(name) = kinds.iter().find_map(|k| export.name.strip_prefix(k.export_prefix())) {
                        methods.0 += 1;
                        methods.1 += name.len();
                    }
                }
            }
            Payload::CustomSection(section)
                if section.name().starts_with("icp:public ") || section.name().starts_with("icp:private ") =>
            {
                custom.0 += 1;
                custom.1 += section.name().len() + section.data().len();
            }
            _ => {}
        }
    }
    if tables > MAX_TABLES {
        return Err(exceeded(format!("it has {tables} tables; at most {MAX_TABLES} is allowed")));
    }
    if methods.0 > MAX_EXPORTED_METHODS {
        return Err(exceeded(format!("it exports {} methods; at most {MAX_EXPORTED_METHODS} are allowed", methods.0)));
    }
    if methods.1 > MAX_EXPORTED_NAME_BYTES {
        return Err(exceeded(format!(
            "its method names total {} bytes; at most {MAX_EXPORTED_NAME_BYTES} are allowed",
            methods.1
        )));
    }
    if custom.0 > MAX_CUSTOM_SECTIONS {
        return Err(exceeded(format!(
            "it has {} icp: custom sections; at most {MAX_CUSTOM_SECTIONS} are allowed",
            custom.0
        )));
    }
    if custom.1 > MAX_CUSTOM_SECTIONS_BYTES {
        return Err(exceeded(format!(
            "its icp: custom sections total {} bytes; at most {MAX_CUSTOM_SECTIONS_BYTES} are allowed",
            custom.1
        )));
    }
    Ok(())
}

fn is_numeric(ty: ValType) -> bool {
    matches!(ty, ValType::I32 | ValType::I64 | ValType::F32 | ValType::F64 | ValType::V128)
}
