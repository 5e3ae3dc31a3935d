//! Saving the set of canisters as a checkpoint, and loading it back.
//!
//! ```text
//! host.json                                   height, time, next canister index
//! canisters/<id>/meta.json                    identity, controllers, status, log, globals...
//! canisters/<id>/{module.wasm, heap.bin, stable.bin}
//! canisters/<id>/snapshots/<sid:016x>/{module.wasm, heap.bin, stable.bin}
//!                                      module_upload.bin   (a module being uploaded)
//! ```
//!
//! Memory files are built from each page map's base file (the previous
//! checkpoint's) plus its delta, so an unchanged canister is hard-linked.
//! Modules already stored in the previous checkpoint are hard-linked too.

mod meta;

use std::collections::HashMap;
use std::sync::Arc;

use candid::Principal;
use checkpoint::{Checkpoint, CheckpointSpec, FileRef, FileSource, FileSpec, Hash, StateDir};
use embedder::{CanisterModule, CanisterState, Executor, WasmPages};
use page_delta::{PAGE_SIZE, PageMap};
use sha2::{Digest, Sha256};

use crate::canister::{Canister, CanisterParts, ChunkStore, Snapshot};
use crate::error::HostError;
use crate::registry::Registry;
use crate::round::ModuleOverrides;
use meta::{CanisterMeta, StateMeta};
pub(crate) use meta::{HostMeta, STATE_FORMAT};

/// Where each module lives in the newest checkpoint, by its SHA-256, so the
/// next checkpoint can link instead of copying it.
#[derive(Default)]
pub(crate) struct ModuleFiles(HashMap<Hash, FileRef>);

/// One memory (heap or stable) or module of a canister or snapshot.
struct Part<'a> {
    dir: String,
    state: &'a CanisterState,
}

impl Part<'_> {
    fn file(&self, name: &str) -> String {
        format!("{}/{name}", self.dir)
    }
}

fn canister_dir(id: &Principal) -> String {
    format!("canisters/{}", id.to_text())
}

fn snapshot_dir(id: &Principal, snapshot: u64) -> String {
    format!("canisters/{}/snapshots/{snapshot:016x}", id.to_text())
}

/// Memory file size: the memory's size, never less than its base file.
fn memory_size(map: &PageMap, pages: WasmPages) -> u64 {
    pages.bytes().max(map.base_pages() * PAGE_SIZE as u64)
}

/// What a checkpoint holds, loaded.
pub(crate) struct LoadedState {
    pub(crate) registry: Registry,
    pub(crate) meta: HostMeta,
    pub(crate) modules: ModuleFiles,
}

/// Write checkpoint `meta.height` of `registry`.
pub(crate) fn save(
    dir: &StateDir,
    registry: &Registry,
    meta: &HostMeta,
    modules: &ModuleFiles,
) -> Result<(Checkpoint, ModuleFiles), HostError> {
    let host_json = serde_json::to_vec_pretty(meta).expect("host metadata always serialises");
    let mut metas: Vec<(String, Vec<u8>)> = Vec::new();
    let mut parts: Vec<Part<'_>> = Vec::new();
    let mut chunks: Vec<(String, &[u8])> = Vec::new();
    let mut uploads: Vec<(String, &[u8])> = Vec::new();
    for record in registry.iter() {
        for (hash, chunk) in record.chunk_store().iter() {
            chunks.push((format!("{}/chunks/{}.bin", canister_dir(&record.id()), hex::encode(hash)), chunk));
        }
        let json = serde_json::to_vec_pretty(&CanisterMeta::of(record)).expect("canister metadata always serialises");
        metas.push((format!("{}/meta.json", canister_dir(&record.id())), json));
        parts.push(Part { dir: canister_dir(&record.id()), state: record.state() });
        for snapshot in record.snapshots() {
            parts.push(Part { dir: snapshot_dir(&record.id(), snapshot.id), state: &snapshot.state });
            if let Some(module) = &snapshot.uploaded_module {
                uploads.push((format!("{}/module_upload.bin", snapshot_dir(&record.id(), snapshot.id)), &module[..]));
            }
        }
    }
    let mut files = vec![FileSpec { path: "host.json".into(), source: FileSource::Bytes(&host_json) }];
    for (path, json) in &metas {
        files.push(FileSpec { path: path.clone(), source: FileSource::Bytes(json) });
    }
    for (path, chunk) in chunks.iter().chain(&uploads) {
        files.push(FileSpec { path: path.clone(), source: FileSource::Bytes(chunk) });
    }
    let memory = |map: &PageMap| map.base().and_then(|b| dir.file_ref_for(b.path()));
    let mut written_modules = Vec::new();
    for part in &parts {
        let state = part.state;
        for (name, map, pages) in
            [("heap.bin", &state.heap, state.heap_pages), ("stable.bin", &state.stable, state.stable_pages)]
        {
            let source = FileSource::Memory { base: memory(map), map, size: memory_size(map, pages) };
            files.push(FileSpec { path: part.file(name), source });
        }
        if let Some(module) = &state.module {
            let source = match modules.0.get(&module.hash) {
                Some(file) => FileSource::Link(file.clone()),
                None => FileSource::Bytes(&module.wasm),
            };
            files.push(FileSpec { path: part.file("module.wasm"), source });
            written_modules.push((module.hash, part.file("module.wasm")));
        }
    }
    let checkpoint = dir.create(CheckpointSpec { height: meta.height, files })?;
    let mut next = ModuleFiles::default();
    for (hash, path) in written_modules {
        next.0.entry(hash).or_insert(FileRef { height: meta.height, path });
    }
    Ok((checkpoint, next))
}

/// Point every memory in `registry` at its file in `checkpoint`, so deltas
/// start empty again.
pub(crate) fn remap(registry: &mut Registry, checkpoint: &Checkpoint) -> Result<(), HostError> {
    for record in registry.iter_mut() {
        let id = record.id();
        record.remap(|snapshot, _| {
            let dir = snapshot.map_or_else(|| canister_dir(&id), |s| snapshot_dir(&id, s));
            Ok::<_, HostError>((
                checkpoint.open_page_map(&format!("{dir}/heap.bin"))?,
                checkpoint.open_page_map(&format!("{dir}/stable.bin"))?,
            ))
        })?;
    }
    Ok(())
}

/// Load the canisters of `checkpoint`. Modules whose hash `overrides` names
/// are replaced (replay verification of a modified module).
pub(crate) fn load(
    checkpoint: &Checkpoint,
    exec: &Executor,
    overrides: &ModuleOverrides,
) -> Result<LoadedState, HostError> {
    let corrupt =
        |what: String, reason: String| HostError::CorruptCheckpoint { height: checkpoint.height(), what, reason };
    let meta: HostMeta = serde_json::from_slice(&checkpoint.read("host.json")?)
        .map_err(|e| corrupt("host.json".into(), e.to_string()))?;
    if meta.format != STATE_FORMAT {
        let reason = format!(
            "it is in state format {}, and this build reads format {STATE_FORMAT}; use the build that wrote it",
            meta.format
        );
        return Err(corrupt("host.json".into(), reason));
    }
    if meta.height != checkpoint.height() {
        return Err(corrupt("host.json".into(), format!("it names height {}", meta.height)));
    }
    let mut compiled: HashMap<Hash, Arc<CanisterModule>> = HashMap::new();
    let mut modules = ModuleFiles::default();
    let mut records = Vec::new();
    let meta_files: Vec<String> = checkpoint
        .manifest()
        .files()
        .iter()
        .filter(|f| {
            f.path.starts_with("canisters/") && f.path.ends_with("/meta.json") && f.path.matches('/').count() == 2
        })
        .map(|f| f.path.clone())
        .collect();
    for path in meta_files {
        let m: CanisterMeta =
            serde_json::from_slice(&checkpoint.read(&path)?).map_err(|e| corrupt(path.clone(), e.to_string()))?;
        let principal =
            |text: &str| Principal::from_text(text).map_err(|e| corrupt(path.clone(), format!("{text}: {e}")));
        let id = principal(&m.id)?;
        let mut load_state = |dir: String, s: &StateMeta| -> Result<CanisterState, HostError> {
            let module = match &s.module {
                None => None,
                Some(hash_hex) => {
                    let file = format!("{dir}/module.wasm");
                    let bytes = checkpoint.read(&file)?;
                    let hash: Hash = Sha256::digest(&bytes).into();
                    if hex::encode(hash) != *hash_hex {
                        return Err(corrupt(file, "the module does not match its recorded hash".into()));
                    }
                    modules.0.entry(hash).or_insert(checkpoint.file_ref(&file)?);
                    let module = match compiled.get(&hash) {
                        Some(m) => m.clone(),
                        None => {
                            let m = match overrides.get(&hash) {
                                Some(replacement) => exec.compile_substitute(replacement, hash)?,
                                None => exec.compile(&bytes)?,
                            };
                            compiled.insert(hash, m.clone());
                            m
                        }
                    };
                    Some(module)
                }
            };
            Ok(CanisterState {
                env: Arc::default(),
                module,
                heap: checkpoint.open_page_map(&format!("{dir}/heap.bin"))?,
                heap_pages: s.heap_pages(),
                globals: s.globals.clone(),
                stable: checkpoint.open_page_map(&format!("{dir}/stable.bin"))?,
                stable_pages: s.stable_pages(),
                certified_data: hex::decode(&s.certified_data)
                    .map_err(|_| corrupt(dir.clone(), "bad certified data".into()))?,
                global_timer: s.global_timer,
            })
        };
        let state = load_state(canister_dir(&id), &m.state)?;
        let mut snapshots = Vec::new();
        for s in &m.snapshots {
            let state = load_state(snapshot_dir(&id, s.id), &s.state)?;
            let uploaded_module = match s.uploaded_module {
                Some(size) => {
                    let file = format!("{}/module_upload.bin", snapshot_dir(&id, s.id));
                    let bytes = checkpoint.read(&file)?;
                    if bytes.len() as u64 != size {
                        return Err(corrupt(file, format!("it holds {} bytes, not {size}", bytes.len())));
                    }
                    Some(Arc::new(bytes))
                }
                None => None,
            };
            snapshots.push(Snapshot { id: s.id, taken_at: s.taken_at, state, uploaded_module });
        }
        let canister_log = m.canister_log().ok_or_else(|| corrupt(path.clone(), "bad canister log record".into()))?;
        let backlog = m.backlog.backlog().ok_or_else(|| corrupt(path.clone(), "bad backlog".into()))?;
        let calls = meta::calls_of(&m.calls).ok_or_else(|| corrupt(path.clone(), "bad call state".into()))?;
        let history = meta::history_of(&m.history).ok_or_else(|| corrupt(path.clone(), "bad history".into()))?;
        let mut chunks = Vec::with_capacity(m.chunks.len());
        for hash in &m.chunks {
            let file = format!("{}/chunks/{hash}.bin", canister_dir(&id));
            let bytes = checkpoint.read(&file)?;
            if hex::encode(Sha256::digest(&bytes)) != *hash {
                return Err(corrupt(file, "the chunk does not match its hash".into()));
            }
            chunks.push(bytes);
        }
        let parts = CanisterParts {
            id,
            name: m.name.clone(),
            controllers: m.controllers.iter().map(|c| principal(c)).collect::<Result<_, _>>()?,
            status: m.status(),
            version: m.version,
            canister_log,
            next_canister_log_index: m.next_log_index,
            snapshots,
            next_snapshot: m.next_snapshot,
            state,
            backlog,
            calls,
            history,
            chunks: ChunkStore::from_chunks(chunks),
        };
        records.push(Canister::restore(parts, exec));
    }
    Ok(LoadedState { registry: Registry::from_parts(records, meta.next_canister_index), meta, modules })
}
