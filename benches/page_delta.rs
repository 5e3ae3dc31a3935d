//! PageDelta insert and lookup from 10^3 to 10^6 pages.
//!
//! Pages share one payload so that 10^6 entries measure the map, not 4 GiB
//! of allocation. Keys are either scattered at random over 2^30 pages (the
//! worst case: every page in its own group) or clustered (pages 0..n, as a
//! growing heap writes them). Baseline: the same operations on a `BTreeMap`,
//! the non-persistent ordered map a simpler design would use.

use std::collections::BTreeMap;
use std::hint::black_box;

use bench_suite::Lcg;
use criterion::{BatchSize, BenchmarkId, Criterion, criterion_group, criterion_main};
use page_delta::{PAGE_SIZE, Page, PageDelta, PageIndex};

const SIZES: [u64; 4] = [1_000, 10_000, 100_000, 1_000_000];
const BATCH: u64 = 100;

fn build(n: u64, clustered: bool) -> (PageDelta, BTreeMap<PageIndex, Page>, Vec<PageIndex>) {
    let page = Page::new(&[7; PAGE_SIZE]);
    let mut rng = Lcg(n);
    let mut keys: Vec<PageIndex> = (0..n).map(|i| PageIndex(if clustered { i } else { rng.below(1 << 30) })).collect();
    let mut delta = PageDelta::new();
    delta.apply(keys.iter().map(|k| (*k, page.clone())).collect::<Vec<_>>());
    let btree = keys.iter().map(|k| (*k, page.clone())).collect();
    // Look keys up in a scrambled order either way.
    for i in (1..keys.len()).rev() {
        keys.swap(i, rng.below(i as u64 + 1) as usize);
    }
    (delta, btree, keys)
}

fn bench(c: &mut Criterion) {
    let page = Page::new(&[9; PAGE_SIZE]);
    for (name, clustered) in [("page_delta_scattered", false), ("page_delta_clustered", true)] {
        bench_layout(c, name, clustered, &page);
    }
}

fn bench_layout(c: &mut Criterion, name: &str, clustered: bool, page: &Page) {
    let mut g = c.benchmark_group(name);
    for n in SIZES {
        let (delta, btree, keys) = build(n, clustered);
        let mut rng = Lcg(42);
        let batch: Vec<(PageIndex, Page)> =
            (0..BATCH).map(|i| (PageIndex(if clustered { n + i } else { rng.below(1 << 30) }), page.clone())).collect();
        // A new version with 100 more pages, leaving the old one intact.
        g.bench_with_input(BenchmarkId::new("apply_100_to_snapshot", n), &n, |b, _| {
            b.iter_batched(
                || delta.clone(),
                |mut d| {
                    d.apply(batch.iter().cloned());
                    d
                },
                BatchSize::SmallInput,
            )
        });
        g.bench_with_input(BenchmarkId::new("btreemap_insert_100_baseline", n), &n, |b, _| {
            b.iter_batched(
                || btree.clone(),
                |mut m| {
                    m.extend(batch.iter().cloned());
                    m
                },
                BatchSize::LargeInput,
            )
        });
        g.bench_with_input(BenchmarkId::new("get_hit", n), &n, |b, _| {
            let mut i = 0;
            b.iter(|| {
                i = (i + 7919) % keys.len();
                black_box(delta.get(keys[i]).map(Page::bytes))
            })
        });
        g.bench_with_input(BenchmarkId::new("btreemap_get_hit_baseline", n), &n, |b, _| {
            let mut i = 0;
            b.iter(|| {
                i = (i + 7919) % keys.len();
                black_box(btree.get(&keys[i]).map(Page::bytes))
            })
        });
        g.bench_with_input(BenchmarkId::new("occupancy_word", n), &n, |b, _| {
            let mut i = 0;
            b.iter(|| {
                i = (i + 7919) % keys.len();
                black_box(delta.occupancy(keys[i].0 / 64))
            })
        });
        g.bench_with_input(BenchmarkId::new("first_at_or_after", n), &n, |b, _| {
            let mut i = 0u64;
            b.iter(|| {
                i = (i + 104_729) % (1 << 30);
                black_box(delta.first_at_or_after(PageIndex(i)).map(|p| p.0))
            })
        });
    }
    g.finish();
}

criterion_group! {
    name = benches;
    config = Criterion::default().sample_size(20).warm_up_time(std::time::Duration::from_millis(300)).measurement_time(std::time::Duration::from_secs(2));
    targets = bench
}
criterion_main!(benches);
