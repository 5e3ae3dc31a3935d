//! Snapshots through the management canister as dfx and icp-cli move them:
//! read (`read_canister_snapshot_metadata`, `read_canister_snapshot_data`)
//! to download one, and built from pieces
//! (`upload_canister_snapshot_metadata`, `upload_canister_snapshot_data`)
//! to upload one.

use candid::Principal;
use embedder::{ErrorCode, GlobalValue};
use ic_management_canister_types::{
    CanisterTimer, ReadCanisterSnapshotDataResult, ReadCanisterSnapshotMetadataResult, SnapshotDataKind,
    SnapshotDataOffset, SnapshotMetadataGlobal, SnapshotSource, UploadCanisterSnapshotMetadataArgs,
};

use crate::canister::{Canister, Snapshot, SnapshotPart, SnapshotUpload};

/// The most bytes one `read_canister_snapshot_data` returns (the IC's
/// limit, which keeps a reply within the 2 MiB message size).
pub const MAX_SNAPSHOT_READ_BYTES: u64 = 2_000_000;

type Rejected = (ErrorCode, String);

fn global(value: &GlobalValue) -> SnapshotMetadataGlobal {
    match *value {
        GlobalValue::I32(v) => SnapshotMetadataGlobal::I32(v),
        GlobalValue::I64(v) => SnapshotMetadataGlobal::I64(v),
        GlobalValue::F32(bits) => SnapshotMetadataGlobal::F32(f32::from_bits(bits)),
        GlobalValue::F64(bits) => SnapshotMetadataGlobal::F64(f64::from_bits(bits)),
        GlobalValue::V128(v) => SnapshotMetadataGlobal::V128(candid::Nat::from(v)),
    }
}

fn global_value(value: &SnapshotMetadataGlobal) -> Result<GlobalValue, Rejected> {
    Ok(match value {
        SnapshotMetadataGlobal::I32(v) => GlobalValue::I32(*v),
        SnapshotMetadataGlobal::I64(v) => GlobalValue::I64(*v),
        SnapshotMetadataGlobal::F32(v) => GlobalValue::F32(v.to_bits()),
        SnapshotMetadataGlobal::F64(v) => GlobalValue::F64(v.to_bits()),
        SnapshotMetadataGlobal::V128(v) => GlobalValue::V128(u128::try_from(&v.0).map_err(|_| {
            (ErrorCode::InvalidManagementPayload, format!("the v128 global {v} does not fit in 128 bits"))
        })?),
    })
}

/// What an upload declares, in the host's terms.
pub(super) fn upload(args: &UploadCanisterSnapshotMetadataArgs) -> Result<SnapshotUpload, Rejected> {
    Ok(SnapshotUpload {
        module_bytes: args.wasm_module_size,
        heap_bytes: args.wasm_memory_size,
        stable_bytes: args.stable_memory_size,
        globals: args.globals.iter().map(global_value).collect::<Result<_, _>>()?,
        certified_data: args.certified_data.clone(),
        global_timer: match args.global_timer {
            None | Some(CanisterTimer::Inactive) => 0,
            Some(CanisterTimer::Active(at)) => at,
        },
    })
}

/// Where uploaded data goes.
pub(super) fn part(canister: Principal, offset: &SnapshotDataOffset) -> Result<(SnapshotPart, u64), Rejected> {
    match *offset {
        SnapshotDataOffset::WasmModule { offset } => Ok((SnapshotPart::Module, offset)),
        SnapshotDataOffset::WasmMemory { offset } => Ok((SnapshotPart::Heap, offset)),
        SnapshotDataOffset::StableMemory { offset } => Ok((SnapshotPart::Stable, offset)),
        SnapshotDataOffset::WasmChunk => Err((
            ErrorCode::InvalidManagementPayload,
            format!("Snapshots of canister {canister} on this host do not hold wasm chunks; upload the module whole."),
        )),
    }
}

/// A snapshot's metadata. The chunk store is not part of this host's
/// snapshots, so it is always empty.
pub(super) fn metadata(canister: &Canister, snapshot: &Snapshot) -> ReadCanisterSnapshotMetadataResult {
    let state = &snapshot.state;
    ReadCanisterSnapshotMetadataResult {
        source: Some(match snapshot.uploaded_module {
            Some(_) => SnapshotSource::MetadataUpload(candid::Reserved),
            None => SnapshotSource::TakenFromCanister(candid::Reserved),
        }),
        taken_at_timestamp: snapshot.taken_at,
        wasm_module_size: module(snapshot).len() as u64,
        globals: state.globals.iter().map(|g| Some(global(g))).collect(),
        wasm_memory_size: state.heap_pages.bytes(),
        stable_memory_size: state.stable_pages.bytes(),
        wasm_chunk_store: Vec::new(),
        canister_version: canister.version(),
        certified_data: state.certified_data.clone(),
        global_timer: Some(match state.global_timer {
            0 => CanisterTimer::Inactive,
            at => CanisterTimer::Active(at),
        }),
        on_low_wasm_memory_hook_status: None,
    }
}

/// The module's bytes: installed, or uploaded so far.
fn module(snapshot: &Snapshot) -> &[u8] {
    match (&snapshot.uploaded_module, &snapshot.state.module) {
        (Some(bytes), _) => bytes,
        (None, Some(module)) => &module.wasm,
        (None, None) => &[],
    }
}

fn range(what: &str, offset: u64, size: u64, len: u64) -> Result<(), Rejected> {
    if size > MAX_SNAPSHOT_READ_BYTES {
        return Err((
            ErrorCode::InvalidManagementPayload,
            format!("Cannot read more than {MAX_SNAPSHOT_READ_BYTES} bytes of a snapshot at once; asked for {size}."),
        ));
    }
    if offset.checked_add(size).is_none_or(|end| end > len) {
        return Err((
            ErrorCode::InvalidManagementPayload,
            format!("The range [{offset}, {offset} + {size}) lies outside the snapshot's {what} of {len} bytes."),
        ));
    }
    Ok(())
}

/// A slice of a snapshot's module, heap or stable memory.
pub(super) fn data(
    canister: Principal,
    snapshot: &Snapshot,
    kind: SnapshotDataKind,
) -> Result<ReadCanisterSnapshotDataResult, Rejected> {
    let state = &snapshot.state;
    let chunk = match kind {
        SnapshotDataKind::WasmModule { offset, size } => {
            let wasm = module(snapshot);
            range("module", offset, size, wasm.len() as u64)?;
            wasm[offset as usize..(offset + size) as usize].to_vec()
        }
        SnapshotDataKind::WasmMemory { offset, size } | SnapshotDataKind::StableMemory { offset, size } => {
            let (what, map, len) = match kind {
                SnapshotDataKind::WasmMemory { .. } => ("heap", &state.heap, state.heap_pages.bytes()),
                _ => ("stable memory", &state.stable, state.stable_pages.bytes()),
            };
            range(what, offset, size, len)?;
            let mut chunk = vec![0; size as usize];
            map.read(offset, &mut chunk).map_err(|e| (ErrorCode::CanisterContractViolation, e.to_string()))?;
            chunk
        }
        SnapshotDataKind::WasmChunk { hash } => {
            return Err((
                ErrorCode::InvalidManagementPayload,
                format!(
                    "Snapshot of canister {canister} holds no wasm chunk {}: this host's snapshots do not include \
                     the chunk store.",
                    hex::encode(hash)
                ),
            ));
        }
    };
    Ok(ReadCanisterSnapshotDataResult { chunk })
}
