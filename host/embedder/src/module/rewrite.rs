//! Re-encoding a module for execution: active data segments emptied (the
//! executor writes them into the heap page map), the start function no
//! longer started but exported, and the memory, table and mutable globals
//! exported under reserved names.

use std::convert::Infallible;

use wasm_encoder::reencode::{self, Reencode};
use wasm_encoder::{DataSection, ExportKind, ExportSection, RawSection, SectionId};
use wasmparser::{DataKind, Parser, Payload};

use super::{MEMORY_EXPORT, ModuleError, ModuleInfo, START_EXPORT, TABLE_EXPORT};

/// Re-encode the module without active data and with the reserved exports.
pub(super) fn rewrite(wasm: &[u8], info: &ModuleInfo) -> Result<Vec<u8>, ModuleError> {
    let mut extra: Vec<(String, ExportKind, u32)> =
        info.globals.iter().map(|g| (g.export.clone(), ExportKind::Global, g.index)).collect();
    if info.memory.is_some() {
        extra.push((MEMORY_EXPORT.to_string(), ExportKind::Memory, 0));
    }
    if info.has_table {
        extra.push((TABLE_EXPORT.to_string(), ExportKind::Table, 0));
    }
    if let Some(start) = info.start {
        extra.push((START_EXPORT.to_string(), ExportKind::Func, start));
    }
    let mut rewriter = Rewriter { extra, exports_written: false };
    let mut module = wasm_encoder::Module::new();
    rewriter
        .parse_core_module(&mut module, Parser::new(0), wasm)
        .map_err(|e| ModuleError::Invalid(format!("cannot re-encode the module: {e}")))?;
    let encoded = module.finish();
    if info.start.is_some() { without_start_section(&encoded) } else { Ok(encoded) }
}

/// The module without its start section, every other section copied as
/// it is (the re-encoder always writes the start section back).
fn without_start_section(wasm: &[u8]) -> Result<Vec<u8>, ModuleError> {
    let mut module = wasm_encoder::Module::new();
    for payload in Parser::new(0).parse_all(wasm) {
        let payload = payload.map_err(|e| ModuleError::Invalid(format!("cannot re-read the module: {e}")))?;
        if matches!(payload, Payload::StartSection { .. }) {
            continue;
        }
        if let Some((id, range)) = payload.as_section() {
            module.section(&RawSection { id, data: &wasm[range] });
        }
    }
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
