//! Deterministic inputs: pseudo-random numbers, sparse memories, Zipf
//! account activity. Shared by the suite and the criterion benchmarks.

use std::os::unix::fs::FileExt;
use std::path::Path;

use page_delta::{PAGE_SIZE, Page, PageDelta, PageIndex};

/// One mebibyte.
pub const MIB: u64 = 1 << 20;

/// A small deterministic generator, so benchmark inputs are reproducible.
pub struct Lcg(pub u64);

impl Lcg {
    /// The next pseudo-random value (53 bits).
    pub fn next_u64(&mut self) -> u64 {
        self.0 = self.0.wrapping_mul(6364136223846793005).wrapping_add(1442695040888963407);
        self.0 >> 11
    }

    /// A pseudo-random value below `n`.
    pub fn below(&mut self, n: u64) -> u64 {
        self.next_u64() % n
    }
}

/// Write a sparse file of `size` bytes holding `data` bytes of non-zero data
/// in 1 MiB extents at pseudo-random chunk positions.
pub fn sparse_file(path: &Path, size: u64, data: u64, seed: u64) {
    let file = std::fs::File::create(path).unwrap();
    file.set_len(size).unwrap();
    let chunks = size / MIB;
    let mut rng = Lcg(seed);
    let mut chosen = std::collections::BTreeSet::new();
    while (chosen.len() as u64) < (data / MIB).min(chunks) {
        chosen.insert(rng.below(chunks));
    }
    let mut buf = vec![0u8; MIB as usize];
    for chunk in chosen {
        for b in buf.iter_mut() {
            *b = rng.next_u64() as u8 | 1;
        }
        file.write_all_at(&buf, chunk * MIB).unwrap();
    }
    file.sync_all().unwrap();
}

/// A delta holding `data` bytes of pseudo-random non-zero pages, in whole
/// 1 MiB extents at pseudo-random positions below `size`: the contents of a
/// sparse canister memory.
pub fn extents_delta(size: u64, data: u64, seed: u64) -> PageDelta {
    let chunks = size / MIB;
    let mut rng = Lcg(seed);
    let mut chosen = std::collections::BTreeSet::new();
    while (chosen.len() as u64) < (data / MIB).min(chunks) {
        chosen.insert(rng.below(chunks));
    }
    let pages_per_chunk = MIB / PAGE_SIZE as u64;
    let mut bytes = [0u8; PAGE_SIZE];
    let mut delta = PageDelta::new();
    let pages: Vec<(PageIndex, Page)> = chosen
        .iter()
        .flat_map(|c| (0..pages_per_chunk).map(move |p| c * pages_per_chunk + p))
        .map(|index| {
            for b in bytes.iter_mut() {
                *b = rng.next_u64() as u8 | 1;
            }
            (PageIndex(index), Page::new(&bytes))
        })
        .collect();
    delta.apply(pages);
    delta
}

/// `n` distinct random page indices below `limit`, as a delta of fresh pages.
pub fn random_delta(n: u64, limit: u64, seed: u64) -> PageDelta {
    let mut rng = Lcg(seed);
    let mut delta = PageDelta::new();
    let mut bytes = [0u8; PAGE_SIZE];
    let pages: Vec<(PageIndex, Page)> = (0..n)
        .map(|i| {
            bytes[..8].copy_from_slice(&(i ^ seed).to_le_bytes());
            (PageIndex(rng.below(limit)), Page::new(&bytes))
        })
        .collect();
    delta.apply(pages);
    delta
}

/// Samples ranks 0..n with probability proportional to 1/(rank+1)^s: the
/// skewed account activity of the micropayments workload.
pub struct Zipf {
    /// Shared, so client threads sample one distribution of millions of
    /// accounts without a copy each.
    cdf: std::sync::Arc<Vec<f64>>,
    rng: Lcg,
}

impl Zipf {
    /// A Zipf distribution over `0..n` with exponent `s`.
    pub fn new(n: usize, s: f64, seed: u64) -> Zipf {
        let mut total = 0.0;
        let mut cdf: Vec<f64> = (0..n)
            .map(|k| {
                total += 1.0 / ((k + 1) as f64).powf(s);
                total
            })
            .collect();
        for c in &mut cdf {
            *c /= total;
        }
        Zipf { cdf: std::sync::Arc::new(cdf), rng: Lcg(seed) }
    }

    /// The same distribution with its own generator, seeded `seed`.
    pub fn reseeded(&self, seed: u64) -> Zipf {
        Zipf { cdf: self.cdf.clone(), rng: Lcg(seed) }
    }

    /// The next sample.
    pub fn sample(&mut self) -> u64 {
        let u = (self.rng.next_u64() % 1_000_000_007) as f64 / 1_000_000_007.0;
        self.cdf.partition_point(|c| *c < u) as u64
    }
}
