//! Behaviour of state directories and checkpoints on the real filesystem.

mod common;

use std::fs;
use std::os::unix::fs::MetadataExt;

use checkpoint::{CheckpointSpec, Error, StateDir, Verification};
use common::*;

fn gen1(dir: &StateDir) -> checkpoint::Checkpoint {
    dir.create(Gen1::new().spec()).unwrap()
}

#[test]
fn checkpoint_contents_round_trip_through_reopen() {
    let tmp = tempfile::tempdir().unwrap();
    let g1 = Gen1::new();
    let (root2, g2) = {
        let dir = StateDir::open(tmp.path()).unwrap();
        let c1 = dir.create(g1.spec()).unwrap();
        let g2 = Gen2::new(c1.dir());
        (dir.create(g2.spec(&c1)).unwrap().root_hash(), g2)
    };
    let dir = StateDir::open(tmp.path()).unwrap();
    let loaded = dir.newest(Verification::Full).unwrap().unwrap();
    assert!(loaded.skipped.is_empty());
    let c2 = loaded.checkpoint;
    assert_eq!((c2.height(), c2.root_hash()), (2, root2));

    let heap_a = c2.open_page_map("canisters/a/heap.bin").unwrap();
    assert!(contents(&heap_a, 4 * MIB) == contents(&g2.heap_a, 4 * MIB), "canister a's heap differs from base + delta");
    assert_eq!(heap_a.base_pages(), 1024);
    assert_eq!(c2.read("canisters/a/module.wasm").unwrap(), b"\0asm\x01\0\0\0module-a");
    assert_eq!(c2.read("canisters/b/meta").unwrap(), b"meta b v1");
    assert_eq!(c2.read("host.meta").unwrap(), b"height 2");
    assert_eq!(fs::read(c2.path("canisters/c/heap.bin").unwrap()).unwrap(), contents(&g2.heap_c, 64 * 1024));

    // The older checkpoint can still be asked for explicitly.
    let c1 = dir.load(1, Verification::Full).unwrap();
    assert_eq!(c1.read("host.meta").unwrap(), b"height 1");
}

#[test]
fn unchanged_files_are_hard_linked_and_cost_no_hashing() {
    let tmp = tempfile::tempdir().unwrap();
    let dir = StateDir::open(tmp.path()).unwrap();
    let c1 = gen1(&dir);
    let g2 = Gen2::new(c1.dir());
    let staged = dir.stage(g2.spec(&c1)).unwrap();
    let stats = staged.stats().clone();
    let c2 = staged.publish().unwrap();
    // b's heap (empty delta), a's module and b's meta are links.
    assert_eq!(stats.files_linked, 3);
    assert_eq!(stats.files_cloned, 1);
    for f in ["canisters/b/heap.bin", "canisters/a/module.wasm", "canisters/b/meta"] {
        let (old, new) = (fs::metadata(c1.path(f).unwrap()).unwrap(), fs::metadata(c2.path(f).unwrap()).unwrap());
        assert_eq!(old.ino(), new.ino(), "{f} was copied, not linked");
    }

    // A checkpoint where nothing changed hashes nothing at all, not even a
    // guard (height 10 makes chunk 0 eligible for one).
    let map = c2.open_page_map("canisters/a/heap.bin").unwrap();
    let spec = CheckpointSpec {
        height: 10,
        files: vec![mem("canisters/a/heap.bin", Some(c2.file_ref("canisters/a/heap.bin").unwrap()), &map, 4 * MIB)],
    };
    let staged = dir.stage(spec).unwrap();
    assert_eq!((staged.stats().chunks_hashed, staged.stats().files_linked), (0, 1));
}

#[test]
fn rehashing_is_bounded_by_changed_chunks() {
    let tmp = tempfile::tempdir().unwrap();
    let dir = StateDir::open(tmp.path()).unwrap();
    let base = fresh_map(1, &(0..64 * 256).step_by(97).collect::<Vec<_>>());
    let c1 = dir.create(CheckpointSpec { height: 1, files: vec![mem("heap", None, &base, 64 * MIB)] }).unwrap();
    // Two pages in one chunk and one in another: two chunks changed.
    let map = changed(&c1.open_page_map("heap").unwrap(), 5, &[10, 11, 40 * 256]);
    let spec =
        CheckpointSpec { height: 2, files: vec![mem("heap", Some(c1.file_ref("heap").unwrap()), &map, 64 * MIB)] };
    let staged = dir.stage(spec).unwrap();
    let s = staged.stats();
    assert_eq!(s.chunks_hashed - s.chunks_guarded, 2);
    assert!(s.chunks_guarded >= 1 && s.chunks_guarded <= 2, "{s:?}");
    assert_eq!(s.chunks_reused + s.chunks_hashed, 64);
    let c2 = staged.publish().unwrap();
    dir.verify(c2.height()).unwrap();
}

#[test]
fn a_wrong_reused_hash_is_caught_by_the_guard() {
    let tmp = tempfile::tempdir().unwrap();
    let dir = StateDir::open(tmp.path()).unwrap();
    let base = fresh_map(1, &[0]);
    let c1 = dir.create(CheckpointSpec { height: 1, files: vec![mem("heap", None, &base, 32 * MIB)] }).unwrap();
    // Corrupt every chunk of the previous file behind the manifest's back,
    // then change one chunk: some reused chunk is rehashed and disagrees.
    let path = c1.path("heap").unwrap();
    let file = fs::OpenOptions::new().write(true).open(&path).unwrap();
    for chunk in 0..32u64 {
        std::os::unix::fs::FileExt::write_all_at(&file, b"x", chunk * MIB + 100).unwrap();
    }
    let map = changed(&c1.open_page_map("heap").unwrap(), 2, &[3 * 256]);
    let spec =
        CheckpointSpec { height: 2, files: vec![mem("heap", Some(c1.file_ref("heap").unwrap()), &map, 32 * MIB)] };
    match dir.stage(spec) {
        Err(Error::GuardMismatch { file, .. }) => assert_eq!(file, "heap"),
        other => panic!("expected a guard mismatch, got {:?}", other.map(|s| s.stats().clone()).err()),
    }
    assert!(fs::read_dir(tmp.path().join("tmp")).unwrap().next().is_none(), "the failed checkpoint left files in tmp/");
}

#[test]
fn heights_only_grow_and_are_never_overwritten() {
    let tmp = tempfile::tempdir().unwrap();
    let dir = StateDir::open(tmp.path()).unwrap();
    let c1 = gen1(&dir);
    let g1 = Gen1::new();
    assert!(matches!(dir.create(g1.spec()), Err(Error::HeightNotIncreasing { height: 1, newest: 1 })));
    assert_eq!(dir.verify(1).unwrap().root_hash(), c1.root_hash());
}

#[test]
fn second_opener_is_told_the_holders_pid() {
    let tmp = tempfile::tempdir().unwrap();
    let _first = StateDir::open(tmp.path()).unwrap();
    let err = StateDir::open(tmp.path()).unwrap_err();
    assert!(matches!(err, Error::Locked { pid: Some(pid), .. } if pid == std::process::id()), "{err:?}");
    assert!(err.to_string().contains(&format!("process {}", std::process::id())), "{err}");
}

#[test]
fn open_wipes_tmp() {
    let tmp = tempfile::tempdir().unwrap();
    drop(StateDir::open(tmp.path()).unwrap());
    fs::create_dir_all(tmp.path().join("tmp/ckpt-0000000000000007/canisters")).unwrap();
    fs::write(tmp.path().join("tmp/stray"), b"x").unwrap();
    let _dir = StateDir::open(tmp.path()).unwrap();
    assert!(fs::read_dir(tmp.path().join("tmp")).unwrap().next().is_none());
}

#[test]
fn foreign_entry_in_checkpoints_is_an_error_naming_it() {
    let tmp = tempfile::tempdir().unwrap();
    drop(StateDir::open(tmp.path()).unwrap());
    fs::write(tmp.path().join("checkpoints/notes.txt"), b"hi").unwrap();
    let dir = StateDir::open(tmp.path()).unwrap();
    let err = dir.newest(Verification::Full).unwrap_err();
    assert!(matches!(&err, Error::ForeignEntry { path } if path.ends_with("checkpoints/notes.txt")), "{err}");
}

/// Damage the newest checkpoint in some way; opening must fall back to the
/// previous one and say why, and `verify` must name the damage.
fn assert_falls_back(damage: impl FnOnce(&checkpoint::Checkpoint), expect: impl Fn(&Error) -> bool) {
    let tmp = tempfile::tempdir().unwrap();
    let dir = StateDir::open(tmp.path()).unwrap();
    let c1 = gen1(&dir);
    let c2 = dir.create(Gen2::new(c1.dir()).spec(&c1)).unwrap();
    damage(&c2);
    let loaded = dir.newest(Verification::Full).unwrap().unwrap();
    assert_eq!(loaded.checkpoint.root_hash(), c1.root_hash());
    assert_eq!(loaded.skipped.len(), 1);
    assert!(expect(&loaded.skipped[0].1), "unexpected error: {}", loaded.skipped[0].1);
    assert!(expect(&dir.verify(2).unwrap_err()));
}

#[test]
fn flipped_data_byte_falls_back_and_verify_names_file_and_chunk() {
    assert_falls_back(
        |c| {
            let path = c.path("canisters/a/heap.bin").unwrap();
            let mut bytes = fs::read(&path).unwrap();
            bytes[(2 * MIB + 5) as usize] ^= 0x10;
            fs::remove_file(&path).unwrap();
            fs::write(&path, bytes).unwrap();
        },
        |e| matches!(e, Error::ChunkMismatch { height: 2, file, chunk: 2, .. } if file == "canisters/a/heap.bin"),
    );
}

#[test]
fn truncated_file_falls_back() {
    assert_falls_back(
        |c| {
            let path = c.path("canisters/c/heap.bin").unwrap();
            fs::OpenOptions::new().write(true).open(path).unwrap().set_len(4096).unwrap();
        },
        |e| matches!(e, Error::SizeMismatch { file, actual: 4096, .. } if file == "canisters/c/heap.bin"),
    );
}

#[test]
fn missing_file_falls_back() {
    assert_falls_back(
        |c| fs::remove_file(c.path("canisters/c/meta").unwrap()).unwrap(),
        |e| matches!(e, Error::MissingFile { file, .. } if file == "canisters/c/meta"),
    );
}

#[test]
fn foreign_file_inside_a_checkpoint_falls_back() {
    assert_falls_back(
        |c| fs::write(c.dir().join("canisters/a/extra.bin"), b"?").unwrap(),
        |e| matches!(e, Error::ForeignEntry { path } if path.ends_with("canisters/a/extra.bin")),
    );
}

#[test]
fn corrupt_or_missing_manifest_falls_back() {
    assert_falls_back(
        |c| {
            let path = c.dir().join("MANIFEST");
            let mut bytes = fs::read(&path).unwrap();
            let last = bytes.len() - 1;
            bytes[last] ^= 1;
            fs::write(path, bytes).unwrap();
        },
        |e| matches!(e, Error::ManifestCorrupt { reason, .. } if reason.contains("root hash")),
    );
    assert_falls_back(
        |c| fs::remove_file(c.dir().join("MANIFEST")).unwrap(),
        |e| matches!(e, Error::ManifestCorrupt { reason, .. } if reason.contains("missing")),
    );
}

#[test]
fn no_valid_checkpoint_is_an_error_not_an_empty_state() {
    let tmp = tempfile::tempdir().unwrap();
    let dir = StateDir::open(tmp.path()).unwrap();
    let c1 = gen1(&dir);
    fs::remove_file(c1.dir().join("MANIFEST")).unwrap();
    let err = dir.newest(Verification::Structure).unwrap_err();
    assert!(matches!(&err, Error::NoValidCheckpoint { failures } if failures.len() == 1), "{err}");
}

#[test]
fn prune_keeps_the_newest() {
    let tmp = tempfile::tempdir().unwrap();
    let dir = StateDir::open(tmp.path()).unwrap();
    let mut prev = gen1(&dir);
    for height in 2..=5 {
        let map = changed(&prev.open_page_map("canisters/a/heap.bin").unwrap(), height as u8, &[1]);
        let spec = CheckpointSpec {
            height,
            files: vec![mem(
                "canisters/a/heap.bin",
                Some(prev.file_ref("canisters/a/heap.bin").unwrap()),
                &map,
                3 * MIB,
            )],
        };
        prev = dir.create(spec).unwrap();
    }
    assert_eq!(dir.prune(2).unwrap(), vec![1, 2, 3]);
    assert_eq!(dir.heights().unwrap(), vec![4, 5]);
    assert!(matches!(dir.prune(0), Err(Error::PruneAll)));
    dir.verify(5).unwrap();
}

#[test]
fn bad_inputs_are_refused_before_touching_disk() {
    let tmp = tempfile::tempdir().unwrap();
    let dir = StateDir::open(tmp.path()).unwrap();
    let d = fresh_map(1, &[10]);
    let c1 = dir.create(CheckpointSpec { height: 1, files: vec![mem("heap", None, &d, MIB)] }).unwrap();
    let cases = [
        (mem("../escape", None, &d, MIB), "invalid checkpoint file path"),
        (mem("heap", None, &d, 4096), "beyond the memory size"),
        (mem("heap", None, &d, 4097), "whole number of pages"),
        (mem("heap", Some(c1.file_ref("heap").unwrap()), &d, MIB), "the page map's base holds 0 bytes"),
    ];
    for (file, message) in cases {
        let err = dir.create(CheckpointSpec { height: 2, files: vec![file] }).unwrap_err().to_string();
        assert!(err.contains(message), "{err}");
    }
    let twice = vec![bytes("a", b"1"), bytes("a", b"2")];
    assert!(dir.create(CheckpointSpec { height: 2, files: twice }).unwrap_err().to_string().contains("twice"));
    assert_eq!(dir.heights().unwrap(), vec![1]);
    assert!(fs::read_dir(tmp.path().join("tmp")).unwrap().next().is_none());
}

#[test]
fn paths_of_published_files_name_their_checkpoint() {
    let tmp = tempfile::tempdir().unwrap();
    let dir = StateDir::open(tmp.path()).unwrap();
    let c1 = gen1(&dir);
    let path = c1.path("canisters/a/heap.bin").unwrap();
    assert_eq!(dir.file_ref_for(&path), Some(c1.file_ref("canisters/a/heap.bin").unwrap()));
    assert_eq!(dir.file_ref_for(&tmp.path().join("elsewhere/heap.bin")), None);
    assert_eq!(dir.file_ref_for(&dir.checkpoint_dir(1).join("../x")), None);
}

#[test]
fn a_read_only_open_reads_beside_the_owner_and_writes_nothing() {
    let tmp = tempfile::tempdir().unwrap();
    let owner = StateDir::open(tmp.path()).unwrap();
    let c1 = gen1(&owner);
    let reader = StateDir::open_read_only(tmp.path()).unwrap();
    assert_eq!(reader.verify(1).unwrap().root_hash(), c1.root_hash());
    assert!(matches!(reader.create(Gen1::new().spec()), Err(Error::ReadOnly { .. })));
    assert!(matches!(reader.prune(1), Err(Error::ReadOnly { .. })));
    assert!(StateDir::open_read_only(&tmp.path().join("nope")).is_err());
}
