//! Saving the set of canisters as a checkpoint, and loading it back.
//!
//! ```text
//! host.json                                   height, time, next canister index
//! canisters/<id>/meta.json                    identity, controllers, status, log, globals...
//! canisters/<id>/{module.wasm, heap.bin, stable.bin}
//! canisters/<id>/{heap,stable}.<height:016x>.overlay  the pages changed at each height since the base
//! canisters/<id>/snapshots/<sid:016x>/{module.wasm, heap.bin, stable.bin, *.overlay}
//!                                      module_upload.bin   (a module being uploaded)
//! ```
//!
//! A memory is its `.bin` base file with its overlays (listed in
//! `meta.json`) applied oldest first. A checkpoint hard-links the base and
//! the older overlays of every memory and writes the pages each changed
//! since the previous checkpoint as a new overlay ([`layers`]), so it costs
//! the pages that changed; an unchanged memory costs a few links. A memory
//! past its overlay budget is rewritten whole (cloned from its base, its
//! delta written over it) and remapped. Modules already stored in the
//! previous checkpoint are hard-linked too.

mod layers;
mod meta;

use std::collections::HashMap;
use std::sync::Arc;

use candid::Principal;
use checkpoint::{Checkpoint, CheckpointSpec, FileRef, FileSource, FileSpec, Hash, StateDir};
use embedder::{CanisterModule, CanisterState, Executor, WasmPages};
use page_delta::{BaseFile, PAGE_SIZE, Page, PageIndex, PageMap};
use sha2::{Digest, Sha256};

use crate::canister::{Canister, CanisterParts, ChunkStore, Snapshot};
use crate::error::HostError;
use crate::registry::Registry;
use crate::round::ModuleOverrides;
use layers::{Layers, MemoryFiles, MemoryPlan};
use meta::STATE_FORMAT_WITHOUT_OVERLAYS;
use meta::{CanisterMeta, StateMeta};
pub(crate) use meta::{HostMeta, STATE_FORMAT};

/// What the newest checkpoint holds that the next one can link instead of
/// writing: modules by their SHA-256, memories by their base file.
#[derive(Default)]
pub(crate) struct Published {
    modules: HashMap<Hash, FileRef>,
    memories: MemoryFiles,
}

/// The memories of a state, by file name.
const MEMORIES: [&str; 2] = ["heap", "stable"];

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

/// The memories of a state: (name, page map, size).
fn memories(state: &CanisterState) -> [(&'static str, &PageMap, WasmPages); 2] {
    [(MEMORIES[0], &state.heap, state.heap_pages), (MEMORIES[1], &state.stable, state.stable_pages)]
}

fn base_name(memory: &str) -> String {
    format!("{memory}.bin")
}

fn overlay_name(memory: &str, height: u64) -> String {
    format!("{memory}.{height:016x}.overlay")
}

/// What a checkpoint holds, loaded.
pub(crate) struct LoadedState {
    pub(crate) registry: Registry,
    pub(crate) meta: HostMeta,
    pub(crate) published: Published,
}

/// A checkpoint's contents, copied out of the registry between rounds so
/// another thread can write them while rounds go on. Page maps, modules and
/// chunks are shared, not copied: this costs the canisters' metadata.
pub(crate) struct StateCopy {
    meta: HostMeta,
    /// Each canister's `meta.json`, in the order of `canisters`.
    metas: Vec<CanisterMeta>,
    canisters: Vec<CanisterCopy>,
}

struct CanisterCopy {
    id: Principal,
    chunks: ChunkStore,
    state: CanisterState,
    snapshots: Vec<Snapshot>,
}

impl StateCopy {
    /// The state of `registry`, to be checkpointed as `meta` says.
    pub(crate) fn of(registry: &Registry, meta: HostMeta) -> StateCopy {
        let metas = registry.iter().map(CanisterMeta::of).collect();
        let canisters = registry
            .iter()
            .map(|record| CanisterCopy {
                id: record.id(),
                chunks: record.chunk_store().clone(),
                state: record.state().clone(),
                snapshots: record.snapshots().cloned().collect(),
            })
            .collect();
        StateCopy { meta, metas, canisters }
    }

    /// The height it will be checkpointed at.
    pub(crate) fn height(&self) -> u64 {
        self.meta.height
    }
}

/// A memory a checkpoint rewrote whole: its file, and the version of the
/// page map it holds.
struct RewrittenMemory {
    path: String,
    written: PageMap,
}

/// The memories a checkpoint rewrote whole, which [`rebase`] moves onto
/// their new files.
pub(crate) struct Rewritten(Vec<RewrittenMemory>);

/// Write `copy` as a checkpoint, linking what `published` (the newest
/// checkpoint's files) already holds. Memories past `max_overlays` are
/// rewritten whole; [`rebase`] must then be called with the returned
/// [`Rewritten`]. Needs nothing of the scheduler's, so it runs beside
/// rounds.
pub(crate) fn save(
    dir: &StateDir,
    copy: &mut StateCopy,
    published: &Published,
    max_overlays: usize,
) -> Result<(Checkpoint, Published, Rewritten), HostError> {
    let height = copy.meta.height;
    let host_json = serde_json::to_vec_pretty(&copy.meta).expect("host metadata always serialises");
    let mut parts: Vec<Part<'_>> = Vec::new();
    let mut chunks: Vec<(String, &[u8])> = Vec::new();
    let mut uploads: Vec<(String, &[u8])> = Vec::new();
    for canister in &copy.canisters {
        let id = canister.id;
        for (hash, chunk) in canister.chunks.iter() {
            chunks.push((format!("{}/chunks/{}.bin", canister_dir(&id), hex::encode(hash)), chunk));
        }
        parts.push(Part { dir: canister_dir(&id), state: &canister.state });
        for snapshot in &canister.snapshots {
            parts.push(Part { dir: snapshot_dir(&id, snapshot.id), state: &snapshot.state });
            if let Some(module) = &snapshot.uploaded_module {
                uploads.push((format!("{}/module_upload.bin", snapshot_dir(&id, snapshot.id)), &module[..]));
            }
        }
    }

    // Every memory, linked as layers plus an overlay of what changed, or
    // rewritten whole. What the files will be is known before they are
    // written: the next checkpoint's layers, and each part's overlay
    // heights (for meta.json).
    let here = |path: String| FileRef { height, path };
    let by_path = |map: &PageMap| map.base().and_then(|b| dir.file_ref_for(b.path()));
    let plans: Vec<Vec<MemoryPlan<'_>>> = parts
        .iter()
        .map(|part| {
            memories(part.state)
                .iter()
                .map(|(_, map, _)| layers::plan(&published.memories, map, max_overlays))
                .collect()
        })
        .collect();
    let mut memory_files = Vec::new();
    let mut overlay_heights: Vec<[Vec<u64>; 2]> = vec![Default::default(); parts.len()];
    let mut next = Published::default();
    let mut rewritten = Rewritten(Vec::new());
    for ((part, plans), heights) in parts.iter().zip(&plans).zip(&mut overlay_heights) {
        for (((memory, map, pages), plan), heights) in memories(part.state).into_iter().zip(plans).zip(heights) {
            let path = part.file(&base_name(memory));
            match plan {
                MemoryPlan::Layered { layers, new } => {
                    memory_files.push(FileSpec { path: path.clone(), source: FileSource::Link(layers.base.clone()) });
                    let mut overlays = Vec::with_capacity(layers.overlays.len() + 1);
                    for (h, file) in &layers.overlays {
                        let path = part.file(&overlay_name(memory, *h));
                        memory_files.push(FileSpec { path: path.clone(), source: FileSource::Link(file.clone()) });
                        overlays.push((*h, here(path)));
                    }
                    if !new.is_empty() {
                        let path = part.file(&overlay_name(memory, height));
                        memory_files.push(FileSpec { path: path.clone(), source: FileSource::Overlay(new) });
                        overlays.push((height, here(path)));
                    }
                    *heights = overlays.iter().map(|(h, _)| *h).collect();
                    next.memories.insert(layers.linked(map, here(path), overlays, new.len() as u64));
                }
                MemoryPlan::Whole { base } => {
                    let base = base.clone().or_else(|| by_path(map));
                    let source = FileSource::Memory { base, map, size: memory_size(map, pages) };
                    memory_files.push(FileSpec { path: path.clone(), source });
                    rewritten.0.push(RewrittenMemory { path, written: map.clone() });
                }
            }
        }
    }
    // meta.json lists each part's overlays: the canister's own state
    // first, then its snapshots in order (as `parts`).
    let mut heights = overlay_heights.into_iter();
    let mut meta_json = Vec::with_capacity(copy.metas.len());
    for (m, canister) in copy.metas.iter_mut().zip(&copy.canisters) {
        for state in std::iter::once(&mut m.state).chain(m.snapshots.iter_mut().map(|s| &mut s.state)) {
            [state.heap_overlays, state.stable_overlays] = heights.next().expect("one entry per part");
        }
        let json = serde_json::to_vec_pretty(m).expect("canister metadata always serialises");
        meta_json.push((format!("{}/meta.json", canister_dir(&canister.id)), json));
    }

    let mut files = vec![FileSpec { path: "host.json".into(), source: FileSource::Bytes(&host_json) }];
    for (path, json) in &meta_json {
        files.push(FileSpec { path: path.clone(), source: FileSource::Bytes(json) });
    }
    for (path, chunk) in chunks.iter().chain(&uploads) {
        files.push(FileSpec { path: path.clone(), source: FileSource::Bytes(chunk) });
    }
    files.extend(memory_files);
    for part in &parts {
        if let Some(module) = &part.state.module {
            let source = match published.modules.get(&module.hash) {
                Some(file) => FileSource::Link(file.clone()),
                None => FileSource::Bytes(&module.wasm),
            };
            files.push(FileSpec { path: part.file("module.wasm"), source });
            next.modules.entry(module.hash).or_insert_with(|| here(part.file("module.wasm")));
        }
    }
    let checkpoint = dir.create(CheckpointSpec { height, files })?;
    Ok((checkpoint, next, rewritten))
}

/// Move every memory in `registry` that sits on the version a checkpoint
/// rewrote whole onto that new file (`PageMap::rebased`): its delta keeps
/// only what changed since, so the rest of its pages leave memory. Memories
/// the checkpoint linked keep their page maps. The new files are remembered
/// in `published`.
pub(crate) fn rebase(
    registry: &mut Registry,
    checkpoint: &Checkpoint,
    rewritten: Rewritten,
    published: &mut Published,
) -> Result<(), HostError> {
    if rewritten.0.is_empty() {
        return Ok(());
    }
    // Each new file, and the version it holds, by path and by the base file
    // that version sits on: a map moves onto the file written from its own
    // path, else onto any written from its base.
    let mut targets: Vec<(PageMap, Arc<BaseFile>)> = Vec::new();
    let mut by_path: HashMap<String, usize> = HashMap::new();
    let mut by_base: HashMap<usize, usize> = HashMap::new();
    for RewrittenMemory { path, written } in rewritten.0 {
        let fresh = checkpoint.open_page_map(&path)?;
        let onto = fresh.base().expect("a mapped file is a base").clone();
        published.memories.insert(Layers::whole(&fresh, checkpoint.file_ref(&path)?).expect("it has a base"));
        if let Some(base) = written.base() {
            by_base.entry(Arc::as_ptr(base) as usize).or_insert(targets.len());
        }
        by_path.insert(path, targets.len());
        targets.push((written, onto));
    }
    for record in registry.iter_mut() {
        let id = record.id();
        record.remap(|snapshot, state| {
            let dir = snapshot.map_or_else(|| canister_dir(&id), |s| snapshot_dir(&id, s));
            let mut out = [None, None];
            for (slot, (memory, live, _)) in out.iter_mut().zip(memories(state)) {
                let own = by_path.get(&format!("{dir}/{}", base_name(memory)));
                let shared = live.base().and_then(|b| by_base.get(&(Arc::as_ptr(b) as usize)));
                *slot = own.into_iter().chain(shared).find_map(|&t| live.rebased(&targets[t].0, targets[t].1.clone()));
            }
            let [heap, stable] = out;
            Ok::<_, HostError>((heap, stable))
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
    if !(STATE_FORMAT_WITHOUT_OVERLAYS..=STATE_FORMAT).contains(&meta.format) {
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
    let mut published = Published::default();
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
                    published.modules.entry(hash).or_insert(checkpoint.file_ref(&file)?);
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
            let mut open_memory = |memory: &str, overlays: &[u64], pages: WasmPages| {
                let map = load_memory(checkpoint, &dir, memory, overlays, pages, &mut published.memories)?;
                Ok::<_, HostError>(map)
            };
            Ok(CanisterState {
                env: Arc::default(),
                module,
                heap: open_memory(MEMORIES[0], &s.heap_overlays, s.heap_pages())?,
                heap_pages: s.heap_pages(),
                globals: s.globals.clone(),
                stable: open_memory(MEMORIES[1], &s.stable_overlays, s.stable_pages())?,
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
    Ok(LoadedState { registry: Registry::from_parts(records, meta.next_canister_index), meta, published })
}

/// Open memory `memory` of the state in `dir`: its base file with its
/// `overlays` applied oldest first, remembered in `files` for the next
/// checkpoint. Overlay pages must lie inside the memory.
fn load_memory(
    checkpoint: &Checkpoint,
    dir: &str,
    memory: &str,
    overlays: &[u64],
    pages: WasmPages,
    files: &mut MemoryFiles,
) -> Result<PageMap, HostError> {
    let base = format!("{dir}/{}", base_name(memory));
    let mut map = checkpoint.open_page_map(&base)?;
    let limit = pages.bytes().max(map.base_pages() * PAGE_SIZE as u64);
    let mut refs = Vec::with_capacity(overlays.len());
    let mut count = 0;
    for (i, &height) in overlays.iter().enumerate() {
        let file = format!("{dir}/{}", overlay_name(memory, height));
        let in_order = i == 0 || overlays[i - 1] < height;
        if !in_order || height > checkpoint.height() {
            let reason = format!("overlay heights must ascend and not exceed the checkpoint's: {overlays:?}");
            return Err(HostError::CorruptCheckpoint { height: checkpoint.height(), what: base, reason });
        }
        let pages: Vec<(PageIndex, Page)> = checkpoint.read_overlay(&file)?;
        if let Some((index, _)) = pages.iter().find(|(index, _)| index.byte_offset() >= limit) {
            let reason = format!("it holds {index}, outside the memory's {limit} bytes");
            return Err(HostError::CorruptCheckpoint { height: checkpoint.height(), what: file, reason });
        }
        count += pages.len() as u64;
        map.apply(pages);
        refs.push((height, checkpoint.file_ref(&file)?));
    }
    files.insert(Layers::new(&map, checkpoint.file_ref(&base)?, refs, count).expect("a mapped file is a base"));
    Ok(map)
}
