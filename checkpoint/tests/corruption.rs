//! Corruption of published checkpoints is always detected, named, and never
//! silently loaded.

mod common;

use std::fs;
use std::os::unix::fs::FileExt;

use checkpoint::{Error, StateDir, Verification};
use common::*;

fn two_checkpoints() -> (tempfile::TempDir, StateDir) {
    let tmp = tempfile::tempdir().unwrap();
    let dir = StateDir::open(tmp.path()).unwrap();
    let c1 = dir.create(Gen1::new().spec()).unwrap();
    dir.create(Gen2::new(c1.dir()).spec(&c1)).unwrap();
    (tmp, dir)
}

fn flip(path: &std::path::Path, byte: u64, bit: u8) {
    let file = fs::OpenOptions::new().read(true).write(true).open(path).unwrap();
    let mut b = [0u8];
    file.read_exact_at(&mut b, byte).unwrap();
    file.write_all_at(&[b[0] ^ (1 << bit)], byte).unwrap();
}

#[test]
fn every_sampled_bit_flip_in_data_chunks_is_detected_and_located() {
    let (_tmp, dir) = two_checkpoints();
    let c2 = dir.load(2, Verification::Full).unwrap();
    let mut flips = 0;
    for entry in c2.manifest().files() {
        let path = c2.path(&entry.path).unwrap();
        // Unshare hard-linked files so a flip only damages checkpoint 2.
        let bytes = fs::read(&path).unwrap();
        fs::remove_file(&path).unwrap();
        fs::write(&path, &bytes).unwrap();
        for chunk in 0..entry.chunks.len() as u64 {
            let start = chunk * MIB;
            let end = (start + MIB).min(entry.size);
            // First and last byte of the chunk, every page start, and a
            // scattered sample, each with a different bit.
            let mut offsets: Vec<u64> = vec![start, end - 1];
            offsets.extend((start..end).step_by(4096 * 37).map(|o| o + 1));
            offsets.extend((0..8).map(|i| start + (i * 104_729 + chunk * 7919) % (end - start)));
            for (i, &offset) in offsets.iter().enumerate() {
                let bit = (i % 8) as u8;
                flip(&path, offset, bit);
                match dir.verify(2) {
                    Err(Error::ChunkMismatch { file, chunk: c, .. }) => {
                        assert_eq!((file.as_str(), c), (entry.path.as_str(), chunk), "byte {offset} bit {bit}");
                    }
                    other => panic!("flip of {} byte {offset} bit {bit} went unnoticed: {other:?}", entry.path),
                }
                flip(&path, offset, bit);
                flips += 1;
            }
        }
    }
    dir.verify(2).unwrap();
    assert!(flips > 100, "too few flips sampled: {flips}");
}

#[test]
fn every_bit_flip_in_the_manifest_is_detected() {
    let (_tmp, dir) = two_checkpoints();
    let path = dir.checkpoint_dir(2).join("MANIFEST");
    let len = fs::metadata(&path).unwrap().len();
    for byte in 0..len {
        for bit in 0..8 {
            flip(&path, byte, bit);
            let err = dir.load(2, Verification::Structure).err();
            assert!(
                matches!(err, Some(Error::ManifestCorrupt { .. })),
                "flip of manifest byte {byte} bit {bit} gave {err:?}"
            );
            flip(&path, byte, bit);
        }
    }
    dir.verify(2).unwrap();
}

#[test]
fn every_truncation_is_detected() {
    let (_tmp, dir) = two_checkpoints();
    let c2 = dir.load(2, Verification::Full).unwrap();
    let mut files: Vec<(String, u64)> = c2.manifest().files().iter().map(|f| (f.path.clone(), f.size)).collect();
    files.push(("MANIFEST".into(), fs::metadata(c2.dir().join("MANIFEST")).unwrap().len()));
    for (file, size) in files {
        let path = c2.dir().join(&file);
        let original = fs::read(&path).unwrap();
        // Every length for small files; a spread of lengths for large ones.
        let lengths: Vec<u64> =
            if size <= 4096 { (0..size).collect() } else { (0..size).step_by(size as usize / 97).collect() };
        for len in lengths {
            fs::remove_file(&path).unwrap();
            fs::write(&path, &original[..len as usize]).unwrap();
            assert!(dir.load(2, Verification::Structure).is_err(), "{file} truncated to {len} bytes was accepted");
            let loaded = dir.newest(Verification::Full).unwrap().unwrap();
            assert_eq!(loaded.checkpoint.height(), 1, "{file} truncated to {len}: did not fall back");
        }
        fs::write(&path, &original).unwrap();
    }
    dir.verify(2).unwrap();
}
