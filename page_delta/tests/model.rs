//! Model-based property test: a `PageMap` must behave like a plain byte
//! vector under any sequence of writes, page applies, forks and rebases
//! onto a file, and a fork must never see anything applied after it.

use std::io::Write;

use page_delta::{PAGE_SIZE, Page, PageIndex, PageMap, RunSource};
use proptest::prelude::*;

const PAGES: u64 = 24;
const SIZE: usize = PAGES as usize * PAGE_SIZE;

#[derive(Debug, Clone)]
enum Op {
    Write {
        offset: usize,
        data: Vec<u8>,
    },
    ApplyPages(Vec<(u64, u8)>),
    Fork,
    /// Persist the first `pages` pages to a file and reopen it as the base,
    /// like a checkpoint followed by a remap.
    Rebase {
        pages: u64,
    },
    /// Write an earlier fork (a checkpoint of that version) to a file and
    /// move the live map onto it with `rebased`, as a background checkpoint
    /// does once written.
    RebaseOntoFork {
        fork: usize,
    },
    /// Go back to an earlier fork, as loading a canister snapshot does, so
    /// the live map no longer descends from later forks.
    LoadFork {
        fork: usize,
    },
}

fn op() -> impl Strategy<Value = Op> {
    prop_oneof![
        4 => (0..SIZE, prop::collection::vec(any::<u8>(), 0..3 * PAGE_SIZE))
            .prop_map(|(offset, data)| Op::Write { offset, data }),
        2 => prop::collection::vec((0..PAGES, any::<u8>()), 1..6).prop_map(Op::ApplyPages),
        2 => Just(Op::Fork),
        1 => (0..=PAGES).prop_map(|pages| Op::Rebase { pages }),
        2 => (0..8usize).prop_map(|fork| Op::RebaseOntoFork { fork }),
        1 => (0..8usize).prop_map(|fork| Op::LoadFork { fork }),
    ]
}

struct Model {
    map: PageMap,
    bytes: Vec<u8>,
}

fn check(map: &PageMap, model: &[u8]) {
    // Reads are capped at the model's domain; everything past it is zero.
    let mut got = vec![0xAA; model.len() + PAGE_SIZE];
    map.read(0, &mut got).unwrap();
    assert_eq!(&got[..model.len()], model, "read disagrees with the model");
    assert!(got[model.len()..].iter().all(|b| *b == 0), "bytes past the domain are not zero");
    for i in 0..PAGES {
        let start = i as usize * PAGE_SIZE;
        assert_eq!(&map.get_page(PageIndex(i))[..], &model[start..start + PAGE_SIZE]);
    }
    check_runs(map);
}

/// `runs` must tile the range exactly and agree with the delta and base.
fn check_runs(map: &PageMap) {
    let end = PAGES + 3;
    let runs = map.runs(PageIndex(1)..PageIndex(end));
    let mut cursor = 1;
    for run in &runs {
        assert_eq!(run.start.0, cursor, "runs leave a gap or overlap");
        assert!(run.len > 0);
        for i in run.start.0..run.start.0 + run.len {
            let in_delta = map.delta().get(PageIndex(i)).is_some();
            let expected = if in_delta {
                RunSource::Delta
            } else if i < map.base_pages() {
                RunSource::File
            } else {
                RunSource::Zero
            };
            assert_eq!(run.source, expected, "page {i}");
        }
        cursor += run.len;
    }
    assert_eq!(cursor, end);
    for pair in runs.windows(2) {
        assert_ne!(pair[0].source, pair[1].source, "adjacent runs were not merged");
    }
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(64))]
    #[test]
    fn page_map_matches_byte_vector(ops in prop::collection::vec(op(), 1..40)) {
        let dir = tempfile::tempdir().unwrap();
        let mut live = Model { map: PageMap::new(), bytes: vec![0; SIZE] };
        let mut forks: Vec<Model> = Vec::new();
        for (step, op) in ops.into_iter().enumerate() {
            match op {
                Op::Write { offset, data } => {
                    let data = &data[..data.len().min(SIZE - offset)];
                    live.map.write(offset as u64, data).unwrap();
                    live.bytes[offset..offset + data.len()].copy_from_slice(data);
                }
                Op::ApplyPages(pages) => {
                    let batch = pages.iter().map(|(i, b)| (PageIndex(*i), Page::new(&[*b; PAGE_SIZE])));
                    live.map.apply(batch.collect::<Vec<_>>());
                    for (i, b) in pages {
                        let start = i as usize * PAGE_SIZE;
                        live.bytes[start..start + PAGE_SIZE].fill(b);
                    }
                }
                Op::Fork => forks.push(Model { map: live.map.fork(), bytes: live.bytes.clone() }),
                Op::Rebase { pages } => {
                    let len = pages as usize * PAGE_SIZE;
                    let path = dir.path().join(format!("base-{step}"));
                    let mut file = std::fs::File::create(&path).unwrap();
                    file.write_all(&live.bytes[..len]).unwrap();
                    drop(file);
                    // The file holds only the prefix; the rest stays in the delta.
                    let mut map = PageMap::open(&path).unwrap();
                    let tail = &live.bytes[len..];
                    if tail.iter().any(|b| *b != 0) {
                        map.write(len as u64, tail).unwrap();
                    }
                    live.map = map;
                }
                Op::LoadFork { fork } => {
                    let Some(earlier) = forks.get(fork) else { continue };
                    live = Model { map: earlier.map.fork(), bytes: earlier.bytes.clone() };
                }
                Op::RebaseOntoFork { fork } => {
                    let Some(written) = forks.get(fork) else { continue };
                    let path = dir.path().join(format!("written-{step}"));
                    std::fs::write(&path, &written.bytes).unwrap();
                    let onto = page_delta::BaseFile::open(&path).unwrap();
                    let same_base = live.map.same_base(&written.map);
                    match live.map.rebased(&written.map, onto) {
                        Some(map) => {
                            prop_assert!(same_base);
                            prop_assert!(map.delta().len() <= live.map.delta().len() + written.map.delta().len());
                            live.map = map;
                        }
                        None => prop_assert!(!same_base, "rebasing refused a map on the same base"),
                    }
                }
            }
            check(&live.map, &live.bytes);
            for fork in &forks {
                check(&fork.map, &fork.bytes);
            }
        }
    }
}

#[test]
fn misaligned_base_file_is_rejected_with_its_length() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("heap.bin");
    std::fs::write(&path, vec![1u8; PAGE_SIZE + 7]).unwrap();
    let err = PageMap::open(&path).unwrap_err().to_string();
    assert!(err.contains("4103 bytes") && err.contains("heap.bin"), "{err}");
}

#[test]
fn missing_base_file_names_the_path() {
    let err = PageMap::open(std::path::Path::new("/nonexistent/heap.bin")).unwrap_err().to_string();
    assert!(err.contains("/nonexistent/heap.bin"), "{err}");
}

#[test]
fn overflowing_ranges_are_errors_not_panics() {
    let mut map = PageMap::new();
    assert!(map.write(u64::MAX - 1, &[1, 2, 3]).is_err());
    assert!(map.read(u64::MAX, &mut [0; 2]).is_err());
}
