//! `snapshot download` and `upload`: a snapshot in dfx's directory layout,
//! moved through the management canister exactly as dfx moves one to and
//! from the IC (`read_canister_snapshot_metadata`, then
//! `read_canister_snapshot_data` in slices of at most 2,000,000 bytes; and
//! `upload_canister_snapshot_metadata`, then `upload_canister_snapshot_data`).

use std::fs::File;
use std::io::Write;
use std::path::Path;

use anyhow::Context as _;
use canister_host::round::{MAX_SNAPSHOT_READ_BYTES, local_snapshot_id, snapshot_id};
use canister_host::{Host, Principal};
use ic_management_canister_types::{
    ReadCanisterSnapshotDataArgs, ReadCanisterSnapshotDataResult, ReadCanisterSnapshotMetadataArgs,
    ReadCanisterSnapshotMetadataResult, SnapshotDataKind, SnapshotDataOffset, UploadCanisterSnapshotDataArgs,
    UploadCanisterSnapshotMetadataArgs, UploadCanisterSnapshotMetadataResult,
};
use serde_json::json;

use super::Report;
use crate::args::{SnapshotDir, SnapshotUploadArgs};
use crate::exit::usage;
use crate::progress::Progress;
use crate::state::Context;

/// The files of a downloaded snapshot, as dfx names them.
pub const METADATA: &str = "metadata.json";
/// The module.
pub const WASM_MODULE: &str = "wasm_module.bin";
/// The heap.
pub const WASM_MEMORY: &str = "wasm_memory.bin";
/// Stable memory (written only when not empty, as dfx does).
pub const STABLE_MEMORY: &str = "stable_memory.bin";

fn management<A: candid::CandidType, R: for<'de> candid::Deserialize<'de> + candid::CandidType>(
    host: &Host,
    sender: Principal,
    method: &str,
    arg: &A,
) -> anyhow::Result<R> {
    let reply = host.management_call(sender, method, candid::encode_one(arg)?)?;
    candid::decode_one(&reply).with_context(|| format!("decoding the reply of {method}"))
}

/// The slice `(offset, size)` of one region of a snapshot, to read.
type ReadSlice = fn(u64, u64) -> SnapshotDataKind;
/// Where in one region of a snapshot to write, at an offset.
type WriteAt = fn(u64) -> SnapshotDataOffset;

/// Bytes moved so far, on a bar.
struct Moved {
    bar: Progress,
    done: u64,
    total: u64,
}

impl Moved {
    fn new(message: &str, total: u64, quiet: bool) -> Moved {
        Moved { bar: Progress::bytes(message, total, quiet), done: 0, total }
    }

    fn add(&mut self, bytes: u64) {
        self.done += bytes;
        self.bar.set(self.done, self.total);
    }
}

/// `snapshot download`.
pub fn download(cx: &Context, host: &Host, canister: Principal, args: SnapshotDir) -> anyhow::Result<Report> {
    let dir = &args.dir;
    if dir.join(METADATA).exists() {
        return Err(usage(format!("{} already holds a snapshot; choose an empty directory", dir.display())));
    }
    std::fs::create_dir_all(dir).map_err(|e| usage(format!("cannot create {}: {e}", dir.display())))?;
    let id = snapshot_id(canister, args.id);
    let meta: ReadCanisterSnapshotMetadataResult = management(
        host,
        cx.sender,
        "read_canister_snapshot_metadata",
        &ReadCanisterSnapshotMetadataArgs { canister_id: canister, snapshot_id: id.clone() },
    )?;
    let total = meta.wasm_module_size + meta.wasm_memory_size + meta.stable_memory_size;
    let mut moved = Moved::new("downloading the snapshot", total, cx.quiet);
    let regions: [(ReadSlice, u64, &str); 3] = [
        (|offset, size| SnapshotDataKind::WasmModule { offset, size }, meta.wasm_module_size, WASM_MODULE),
        (|offset, size| SnapshotDataKind::WasmMemory { offset, size }, meta.wasm_memory_size, WASM_MEMORY),
        (|offset, size| SnapshotDataKind::StableMemory { offset, size }, meta.stable_memory_size, STABLE_MEMORY),
    ];
    for (slice, size, file) in regions {
        if file == STABLE_MEMORY && size == 0 {
            continue;
        }
        // Copy the region into its file, slice by slice.
        let path = dir.join(file);
        let mut out = File::create(&path).with_context(|| format!("creating {}", path.display()))?;
        let mut offset = 0;
        while offset < size {
            let len = (size - offset).min(MAX_SNAPSHOT_READ_BYTES);
            let read = ReadCanisterSnapshotDataArgs {
                canister_id: canister,
                snapshot_id: id.clone(),
                kind: slice(offset, len),
            };
            let result: ReadCanisterSnapshotDataResult =
                management(host, cx.sender, "read_canister_snapshot_data", &read)?;
            out.write_all(&result.chunk).with_context(|| format!("writing {}", path.display()))?;
            offset += len;
            moved.add(len);
        }
        out.sync_all().with_context(|| format!("syncing {}", path.display()))?;
    }
    // The metadata last: a directory without it is an interrupted download.
    let text = serde_json::to_string_pretty(&meta)?;
    std::fs::write(dir.join(METADATA), text).with_context(|| format!("writing {}", dir.join(METADATA).display()))?;
    moved.bar.finish();
    Ok(Report::new(
        format!("downloaded snapshot {} of {canister} to {} ({total} bytes)", args.id, dir.display()),
        json!({
            "canister_id": canister.to_text(),
            "snapshot_id": args.id,
            "snapshot_id_hex": hex::encode(&id),
            "dir": dir,
            "bytes": total,
        }),
    ))
}

/// The file `name` of a snapshot directory, checked to hold `size` bytes.
fn read_part(dir: &Path, name: &str, size: u64) -> anyhow::Result<Vec<u8>> {
    let path = dir.join(name);
    if size == 0 && !path.exists() {
        return Ok(Vec::new());
    }
    let bytes = std::fs::read(&path).map_err(|e| usage(format!("cannot read {}: {e}", path.display())))?;
    if bytes.len() as u64 != size {
        return Err(usage(format!(
            "{} holds {} bytes, but {METADATA} says {size}; the snapshot directory is incomplete or damaged",
            path.display(),
            bytes.len()
        )));
    }
    Ok(bytes)
}

/// `snapshot upload`.
pub fn upload(cx: &Context, host: &Host, canister: Principal, args: SnapshotUploadArgs) -> anyhow::Result<Report> {
    let dir = &args.dir;
    let meta_path = dir.join(METADATA);
    let text = std::fs::read_to_string(&meta_path)
        .map_err(|e| usage(format!("cannot read {}: {e}; is this a snapshot directory?", meta_path.display())))?;
    let meta: ReadCanisterSnapshotMetadataResult = serde_json::from_str(&text)
        .map_err(|e| usage(format!("{} is not snapshot metadata as dfx writes it: {e}", meta_path.display())))?;
    let globals = meta
        .globals
        .iter()
        .map(|g| g.clone().ok_or_else(|| usage(format!("{}: a global is null", meta_path.display()))))
        .collect::<anyhow::Result<Vec<_>>>()?;
    let parts: [(Vec<u8>, WriteAt); 3] = [
        (read_part(dir, WASM_MODULE, meta.wasm_module_size)?, |offset| SnapshotDataOffset::WasmModule { offset }),
        (read_part(dir, WASM_MEMORY, meta.wasm_memory_size)?, |offset| SnapshotDataOffset::WasmMemory { offset }),
        (read_part(dir, STABLE_MEMORY, meta.stable_memory_size)?, |offset| SnapshotDataOffset::StableMemory { offset }),
    ];
    let created: UploadCanisterSnapshotMetadataResult = management(
        host,
        cx.sender,
        "upload_canister_snapshot_metadata",
        &UploadCanisterSnapshotMetadataArgs {
            canister_id: canister,
            replace_snapshot: args.replace.map(|local| snapshot_id(canister, local)),
            wasm_module_size: meta.wasm_module_size,
            globals,
            wasm_memory_size: meta.wasm_memory_size,
            stable_memory_size: meta.stable_memory_size,
            certified_data: meta.certified_data.clone(),
            global_timer: meta.global_timer.clone(),
            on_low_wasm_memory_hook_status: meta.on_low_wasm_memory_hook_status.clone(),
        },
    )?;
    let total: u64 = parts.iter().map(|(bytes, _)| bytes.len() as u64).sum();
    let mut moved = Moved::new("uploading the snapshot", total, cx.quiet);
    for (bytes, at) in &parts {
        for (i, chunk) in bytes.chunks(MAX_SNAPSHOT_READ_BYTES as usize).enumerate() {
            let arg = UploadCanisterSnapshotDataArgs {
                canister_id: canister,
                snapshot_id: created.snapshot_id.clone(),
                kind: at(i as u64 * MAX_SNAPSHOT_READ_BYTES),
                chunk: chunk.to_vec(),
            };
            let () = management(host, cx.sender, "upload_canister_snapshot_data", &arg)?;
            moved.add(chunk.len() as u64);
        }
    }
    moved.bar.finish();
    let local = local_snapshot_id(canister, &created.snapshot_id)
        .context("the management canister answered with another canister's snapshot id (a bug)")?;
    Ok(Report::new(
        format!(
            "uploaded {} as snapshot {local} of {canister} ({total} bytes); `canister-host snapshot load {canister} \
             {local}` restores the canister from it (stop it first)",
            dir.display()
        ),
        json!({
            "canister_id": canister.to_text(),
            "snapshot_id": local,
            "snapshot_id_hex": hex::encode(&created.snapshot_id),
            "bytes": total,
        }),
    ))
}
