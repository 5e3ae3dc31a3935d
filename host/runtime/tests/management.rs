//! The management canister (`aaaaa-aa`), from the library and from
//! canisters, with the IC's Candid types.

use candid::{Decode, Encode, Principal};
use canister_host::*;
use ic_management_canister_types::{
    CanisterIdRecord, CanisterInfoArgs, CanisterInfoResult, CanisterInstallMode, CanisterStatusResult,
    CanisterStatusType, ChangeDetails, ChunkHash, CreateCanisterArgs, CreateCanisterResult, InstallChunkedCodeArgs,
    LoadCanisterSnapshotArgs, Snapshot, TakeCanisterSnapshotArgs, UploadChunkArgs,
};
use sha2::{Digest, Sha256};

const OWNER: Principal = Principal::from_slice(&[0xaa; 29]);
const USER: Principal = Principal::anonymous();

fn config() -> HostConfig {
    HostConfig {
        checkpoint_interval: 1_000_000,
        time: TimeSource::Deterministic { start: 1_000_000_000, step: 1_000 },
        ..HostConfig::default()
    }
}

fn call<T: candid::CandidType + for<'de> serde::Deserialize<'de>>(
    host: &Host,
    sender: Principal,
    method: &str,
    arg: Vec<u8>,
) -> T {
    let reply = host.management_call(sender, method, arg).unwrap_or_else(|e| panic!("{method}: {e}"));
    candid::decode_one(&reply).unwrap()
}

fn id_record(canister_id: Principal) -> Vec<u8> {
    Encode!(&CanisterIdRecord { canister_id }).unwrap()
}

#[test]
fn users_create_and_install_in_chunks_and_manage_snapshots() {
    let dir = tempfile::tempdir().unwrap();
    let host = Host::open(dir.path(), config()).unwrap();
    let created: CreateCanisterResult =
        call(&host, OWNER, "create_canister", Encode!(&CreateCanisterArgs::default()).unwrap());
    let id = created.canister_id;

    // A module uploaded in two chunks, then installed from the store.
    let wasm = canisters::CALLS;
    let (first, second) = wasm.split_at(wasm.len() / 2);
    let mut hashes = Vec::new();
    for chunk in [first, second] {
        let arg = Encode!(&UploadChunkArgs { canister_id: id, chunk: chunk.to_vec() }).unwrap();
        let hash: ChunkHash = call(&host, OWNER, "upload_chunk", arg);
        assert_eq!(hash.hash, Sha256::digest(chunk).to_vec());
        hashes.push(hash);
    }
    let stored: Vec<ChunkHash> = call(&host, OWNER, "stored_chunks", id_record(id));
    assert_eq!(stored.len(), 2);
    let install = |hashes: Vec<ChunkHash>, module_hash: Vec<u8>| InstallChunkedCodeArgs {
        mode: CanisterInstallMode::Install,
        target_canister: id,
        store_canister: None,
        chunk_hashes_list: hashes,
        wasm_module_hash: module_hash,
        arg: vec![],
        sender_canister_version: None,
    };
    // A wrong order of chunks does not hash to the module.
    let reversed = vec![hashes[1].clone(), hashes[0].clone()];
    let err = host
        .management_call(
            OWNER,
            "install_chunked_code",
            Encode!(&install(reversed, Sha256::digest(wasm).to_vec())).unwrap(),
        )
        .unwrap_err();
    assert!(err.to_string().contains("does not match given hash"), "{err}");
    let _: () =
        call(&host, OWNER, "install_chunked_code", Encode!(&install(hashes, Sha256::digest(wasm).to_vec())).unwrap());
    let _: () = call(&host, OWNER, "clear_chunk_store", id_record(id));
    assert!(call::<Vec<ChunkHash>>(&host, OWNER, "stored_chunks", id_record(id)).is_empty());
    assert_eq!(host.update_call(id, USER, "echo", b"hi".to_vec()).unwrap(), b"hi");

    let status: CanisterStatusResult = call(&host, OWNER, "canister_status", id_record(id));
    assert_eq!(status.status, CanisterStatusType::Running);
    assert_eq!(status.module_hash, Some(Sha256::digest(wasm).to_vec()));
    assert_eq!(status.settings.controllers, vec![OWNER]);
    // Only controllers manage it.
    let err = host.management_call(USER, "canister_status", id_record(id)).unwrap_err();
    assert!(matches!(err, CallError::Failed { code: ErrorCode::CanisterInvalidController, .. }), "{err}");

    // raw_rand: 32 bytes, fresh every call, reproduced by replay.
    let a: Vec<u8> = call(&host, USER, "raw_rand", Encode!().unwrap());
    let b: Vec<u8> = call(&host, USER, "raw_rand", Encode!().unwrap());
    assert!(a.len() == 32 && a != b);

    // Snapshots with the IC's ids.
    let _: () = call(&host, OWNER, "stop_canister", id_record(id));
    let take = TakeCanisterSnapshotArgs {
        canister_id: id,
        replace_snapshot: None,
        uninstall_code: None,
        sender_canister_version: None,
    };
    let snapshot: Snapshot = call(&host, OWNER, "take_canister_snapshot", Encode!(&take).unwrap());
    assert_eq!(&snapshot.id[8..], id.as_slice());
    let listed: Vec<Snapshot> = call(&host, OWNER, "list_canister_snapshots", id_record(id));
    assert_eq!(listed, vec![snapshot.clone()]);
    let load =
        LoadCanisterSnapshotArgs { canister_id: id, snapshot_id: snapshot.id.clone(), sender_canister_version: None };
    let _: () = call(&host, OWNER, "load_canister_snapshot", Encode!(&load).unwrap());
    let _: () = call(&host, OWNER, "start_canister", id_record(id));

    // Users cannot read canister_info or fetch logs through an update.
    let err = host
        .management_call(
            OWNER,
            "canister_info",
            Encode!(&CanisterInfoArgs { canister_id: id, num_requested_changes: None }).unwrap(),
        )
        .unwrap_err();
    assert!(err.to_string().contains("canister_info cannot be called by a user."), "{err}");
    let err = host.management_call(OWNER, "fetch_canister_logs", id_record(id)).unwrap_err();
    assert!(matches!(err, CallError::Failed { code: ErrorCode::CanisterRejectedMessage, .. }), "{err}");
    let err = host.management_call(OWNER, "no_such_method", vec![]).unwrap_err();
    assert!(err.to_string().contains("no method \"no_such_method\""), "{err}");
    let err = host.management_call(OWNER, "canister_status", b"garbage".to_vec()).unwrap_err();
    assert!(matches!(err, CallError::Failed { code: ErrorCode::InvalidManagementPayload, .. }), "{err}");

    let digest = host.state_digest().unwrap();
    drop(host);
    let host = Host::open(dir.path(), config()).unwrap();
    assert_eq!(host.state_digest().unwrap(), digest, "replay rebuilt another state (raw_rand included)");
    host.checkpoint().unwrap();
    drop(host);
    let host = Host::open(dir.path(), config()).unwrap();
    assert_eq!(host.state_digest().unwrap(), digest);
}

/// `call_raw(callee, method, arg)` from canister `from`.
fn call_raw(host: &Host, from: Principal, to: Principal, method: &str, arg: Vec<u8>) -> (u32, Vec<u8>) {
    let reply =
        host.update_call(from, USER, "call_raw", Encode!(&to.as_slice().to_vec(), &method, &arg).unwrap()).unwrap();
    Decode!(&reply, u32, Vec<u8>).unwrap()
}

#[test]
fn canisters_manage_canisters_and_read_their_history() {
    let dir = tempfile::tempdir().unwrap();
    let host = Host::open(dir.path(), config()).unwrap();
    let parent = host.create_canister(OWNER, vec![], None).unwrap();
    host.install_code(OWNER, parent, InstallMode::Install, canisters::CALLS.to_vec(), vec![]).unwrap();
    let ic = Principal::management_canister();
    let (code, bytes) =
        call_raw(&host, parent, ic, "create_canister", Encode!(&CreateCanisterArgs::default()).unwrap());
    assert_eq!(code, 0, "{}", String::from_utf8_lossy(&bytes));
    let child = Decode!(&bytes, CreateCanisterResult).unwrap().canister_id;
    assert_eq!(host.canister_info(child).unwrap().controllers, vec![parent]);
    let install = ic_management_canister_types::InstallCodeArgs {
        mode: CanisterInstallMode::Install,
        canister_id: child,
        wasm_module: canisters::COUNTER.to_vec(),
        arg: vec![],
        sender_canister_version: None,
    };
    assert_eq!(call_raw(&host, parent, ic, "install_code", Encode!(&install).unwrap()).0, 0);
    assert_eq!(Decode!(&host.update_call(child, USER, "inc", vec![]).unwrap(), u64).unwrap(), 1);

    // canister_info: its history, with the parent as the origin.
    let info_arg = Encode!(&CanisterInfoArgs { canister_id: child, num_requested_changes: Some(5) }).unwrap();
    let (code, bytes) = call_raw(&host, parent, ic, "canister_info", info_arg);
    assert_eq!(code, 0);
    let info = Decode!(&bytes, CanisterInfoResult).unwrap();
    assert_eq!(info.total_num_changes, 2);
    assert!(matches!(info.recent_changes[0].details, Some(ChangeDetails::Creation(_))));
    assert!(matches!(info.recent_changes[1].details, Some(ChangeDetails::CodeDeployment(_))));
    assert_eq!(info.module_hash, Some(Sha256::digest(canisters::COUNTER).to_vec()));

    // Rejects: not a controller, logs only for users, an unknown method.
    let stranger = host.create_canister(OWNER, vec![], None).unwrap();
    let (code, text) =
        call_raw(&host, parent, ic, "canister_status", Encode!(&CanisterIdRecord { canister_id: stranger }).unwrap());
    assert_eq!(code, 5, "{}", String::from_utf8_lossy(&text));
    assert!(String::from_utf8_lossy(&text).contains("controller"), "{}", String::from_utf8_lossy(&text));
    let (code, text) =
        call_raw(&host, parent, ic, "fetch_canister_logs", Encode!(&CanisterIdRecord { canister_id: child }).unwrap());
    assert_eq!(
        (code, String::from_utf8_lossy(&text).as_ref()),
        (4, "fetch_canister_logs API is only accessible to end users in non-replicated mode")
    );
    let (code, bytes) = call_raw(&host, parent, ic, "raw_rand", Encode!().unwrap());
    assert_eq!((code, Decode!(&bytes, Vec<u8>).unwrap().len()), (0, 32));

    // Stop and delete it.
    assert_eq!(
        call_raw(&host, parent, ic, "stop_canister", Encode!(&CanisterIdRecord { canister_id: child }).unwrap()).0,
        0
    );
    assert_eq!(host.canister_info(child).unwrap().status, CanisterStatus::Stopped);
    assert_eq!(
        call_raw(&host, parent, ic, "delete_canister", Encode!(&CanisterIdRecord { canister_id: child }).unwrap()).0,
        0
    );
    assert!(host.canister_info(child).is_err());
}

#[test]
fn controllers_read_snapshots_in_slices_as_dfx_downloads_them() {
    use ic_management_canister_types::{
        CanisterTimer, ReadCanisterSnapshotDataArgs, ReadCanisterSnapshotDataResult, ReadCanisterSnapshotMetadataArgs,
        ReadCanisterSnapshotMetadataResult, SnapshotDataKind,
    };
    let dir = tempfile::tempdir().unwrap();
    let host = Host::open(dir.path(), config()).unwrap();
    let id = host.create_canister(OWNER, vec![], None).unwrap();
    host.install_code(OWNER, id, InstallMode::Install, canisters::KV.to_vec(), vec![]).unwrap();
    // A value written to the heap, to find in the downloaded memory.
    let marker = b"snapshot-marker-0123456789".to_vec();
    host.update_call(id, USER, "put", candid::encode_args((b"k".to_vec(), marker.clone())).unwrap()).unwrap();
    host.stop(OWNER, id).unwrap();
    let local = host.take_snapshot(OWNER, id, None).unwrap();
    let snapshot_id = canister_host::round::snapshot_id(id, local);

    let meta_arg =
        Encode!(&ReadCanisterSnapshotMetadataArgs { canister_id: id, snapshot_id: snapshot_id.clone() }).unwrap();
    let meta: ReadCanisterSnapshotMetadataResult =
        call(&host, OWNER, "read_canister_snapshot_metadata", meta_arg.clone());
    let info = host.canister_info(id).unwrap();
    assert_eq!(meta.wasm_module_size, canisters::KV.len() as u64);
    assert_eq!(meta.wasm_memory_size, info.state.heap_pages.bytes());
    assert_eq!(meta.stable_memory_size, 0);
    assert_eq!(meta.globals.len(), info.state.globals.len());
    assert!(matches!(meta.global_timer, Some(CanisterTimer::Inactive)));
    let err = host.management_call(USER, "read_canister_snapshot_metadata", meta_arg).unwrap_err();
    assert!(matches!(err, CallError::Failed { code: ErrorCode::CanisterInvalidController, .. }), "{err}");

    let read = |kind: SnapshotDataKind| {
        let arg = Encode!(&ReadCanisterSnapshotDataArgs { canister_id: id, snapshot_id: snapshot_id.clone(), kind });
        host.management_call(OWNER, "read_canister_snapshot_data", arg.unwrap())
            .map(|reply| candid::decode_one::<ReadCanisterSnapshotDataResult>(&reply).unwrap().chunk)
    };
    // The module in two slices is the module.
    let half = meta.wasm_module_size / 2;
    let mut module = read(SnapshotDataKind::WasmModule { offset: 0, size: half }).unwrap();
    module.extend(read(SnapshotDataKind::WasmModule { offset: half, size: meta.wasm_module_size - half }).unwrap());
    assert_eq!(module, canisters::KV);
    // The heap, slice by slice, holds what the canister wrote.
    let mut heap = Vec::new();
    while (heap.len() as u64) < meta.wasm_memory_size {
        let size = (meta.wasm_memory_size - heap.len() as u64).min(MAX_SNAPSHOT_READ_BYTES_FOR_TEST);
        heap.extend(read(SnapshotDataKind::WasmMemory { offset: heap.len() as u64, size }).unwrap());
    }
    assert!(heap.windows(marker.len()).any(|w| w == marker), "the heap lacks the value written");
    // Out of range, too large, unknown snapshot: refused with the IC's codes.
    let err = read(SnapshotDataKind::WasmMemory { offset: meta.wasm_memory_size - 1, size: 2 }).unwrap_err();
    assert!(matches!(err, CallError::Failed { code: ErrorCode::InvalidManagementPayload, .. }), "{err}");
    let err = read(SnapshotDataKind::WasmMemory { offset: 0, size: 2_000_001 }).unwrap_err();
    assert!(err.to_string().contains("Cannot read more than 2000000 bytes"), "{err}");
    let other = canister_host::round::snapshot_id(id, local + 1);
    let arg = Encode!(&ReadCanisterSnapshotMetadataArgs { canister_id: id, snapshot_id: other }).unwrap();
    let err = host.management_call(OWNER, "read_canister_snapshot_metadata", arg).unwrap_err();
    assert!(matches!(err, CallError::Failed { code: ErrorCode::CanisterSnapshotNotFound, .. }), "{err}");
}

/// The IC's limit on one snapshot read, written out here rather than taken
/// from the code under test.
const MAX_SNAPSHOT_READ_BYTES_FOR_TEST: u64 = 2_000_000;

#[test]
fn an_upload_survives_checkpoints_and_restarts_and_loads_as_the_original() {
    use ic_management_canister_types::{
        ReadCanisterSnapshotDataArgs, ReadCanisterSnapshotDataResult, ReadCanisterSnapshotMetadataArgs,
        ReadCanisterSnapshotMetadataResult, SnapshotDataKind, SnapshotDataOffset, UploadCanisterSnapshotDataArgs,
        UploadCanisterSnapshotMetadataArgs, UploadCanisterSnapshotMetadataResult,
    };
    let dir = tempfile::tempdir().unwrap();
    let host = Host::open(dir.path(), config()).unwrap();
    // The source: a kv canister with a value, snapshotted and read out.
    let source = host.create_canister(OWNER, vec![], None).unwrap();
    host.install_code(OWNER, source, InstallMode::Install, canisters::KV.to_vec(), vec![]).unwrap();
    host.update_call(source, USER, "put", candid::encode_args((b"k".to_vec(), b"v1".to_vec())).unwrap()).unwrap();
    host.stop(OWNER, source).unwrap();
    let taken = canister_host::round::snapshot_id(source, host.take_snapshot(OWNER, source, None).unwrap());
    let meta_arg = ReadCanisterSnapshotMetadataArgs { canister_id: source, snapshot_id: taken.clone() };
    let meta: ReadCanisterSnapshotMetadataResult =
        call(&host, OWNER, "read_canister_snapshot_metadata", Encode!(&meta_arg).unwrap());
    let read = |kind| {
        let arg = ReadCanisterSnapshotDataArgs { canister_id: source, snapshot_id: taken.clone(), kind };
        call::<ReadCanisterSnapshotDataResult>(&host, OWNER, "read_canister_snapshot_data", Encode!(&arg).unwrap())
            .chunk
    };
    let module = read(SnapshotDataKind::WasmModule { offset: 0, size: meta.wasm_module_size });
    let heap: Vec<u8> = (0..meta.wasm_memory_size.div_ceil(1_000_000))
        .flat_map(|i| {
            let offset = i * 1_000_000;
            read(SnapshotDataKind::WasmMemory { offset, size: (meta.wasm_memory_size - offset).min(1_000_000) })
        })
        .collect();

    // The target: an empty canister; the upload starts, then the host
    // checkpoints and restarts in the middle of it.
    let target = host.create_canister(OWNER, vec![], None).unwrap();
    let upload = UploadCanisterSnapshotMetadataArgs {
        canister_id: target,
        replace_snapshot: None,
        wasm_module_size: meta.wasm_module_size,
        globals: meta.globals.iter().map(|g| g.clone().unwrap()).collect(),
        wasm_memory_size: meta.wasm_memory_size,
        stable_memory_size: 0,
        certified_data: vec![],
        global_timer: None,
        on_low_wasm_memory_hook_status: None,
    };
    let created: UploadCanisterSnapshotMetadataResult =
        call(&host, OWNER, "upload_canister_snapshot_metadata", Encode!(&upload).unwrap());
    let put = |host: &Host, kind, chunk: &[u8]| {
        let arg = UploadCanisterSnapshotDataArgs {
            canister_id: target,
            snapshot_id: created.snapshot_id.clone(),
            kind,
            chunk: chunk.to_vec(),
        };
        host.management_call(OWNER, "upload_canister_snapshot_data", Encode!(&arg).unwrap())
    };
    put(&host, SnapshotDataOffset::WasmModule { offset: 0 }, &module).unwrap();
    // Out of range, or into a snapshot taken from a canister: refused.
    let err = put(&host, SnapshotDataOffset::WasmModule { offset: 1 }, &module).unwrap_err();
    assert!(matches!(err, CallError::Failed { code: ErrorCode::InvalidManagementPayload, .. }), "{err}");
    let arg = UploadCanisterSnapshotDataArgs {
        canister_id: source,
        snapshot_id: taken.clone(),
        kind: SnapshotDataOffset::WasmModule { offset: 0 },
        chunk: vec![0],
    };
    let err = host.management_call(OWNER, "upload_canister_snapshot_data", Encode!(&arg).unwrap()).unwrap_err();
    assert!(err.to_string().contains("only such a snapshot takes data"), "{err}");
    host.checkpoint().unwrap();
    let digest = host.state_digest().unwrap();
    drop(host);
    let host = Host::open(dir.path(), config()).unwrap();
    assert_eq!(host.state_digest().unwrap(), digest, "the pending upload did not survive the checkpoint");
    for (i, chunk) in heap.chunks(1_000_000).enumerate() {
        put(&host, SnapshotDataOffset::WasmMemory { offset: i as u64 * 1_000_000 }, chunk).unwrap();
    }
    let digest = host.state_digest().unwrap();
    drop(host);
    // Replayed from the log this time.
    let host = Host::open(dir.path(), config()).unwrap();
    assert_eq!(host.state_digest().unwrap(), digest, "replay rebuilt another upload");
    host.stop(OWNER, target).unwrap();
    let local = u64::from_be_bytes(created.snapshot_id[..8].try_into().unwrap());
    host.load_snapshot(OWNER, target, local).unwrap();
    host.start(OWNER, target).unwrap();
    let value = host.query_call(target, USER, "get", candid::encode_one(b"k".to_vec()).unwrap()).unwrap();
    assert_eq!(candid::decode_one::<Option<Vec<u8>>>(&value).unwrap(), Some(b"v1".to_vec()));
}
