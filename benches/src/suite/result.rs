//! What a run measured: one [`CaseResult`] per case, the IC's published
//! figures, and the machine.

use std::collections::BTreeMap;

use serde::{Deserialize, Serialize};

use super::Machine;

/// Percentiles of one case's samples, in nanoseconds per operation.
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize)]
pub struct Summary {
    /// Median.
    pub p50_ns: f64,
    /// 90th percentile.
    pub p90_ns: f64,
    /// 99th percentile.
    pub p99_ns: f64,
    /// How many samples.
    pub samples: usize,
}

impl Summary {
    /// The percentiles of `samples` (nanoseconds; need not be sorted), and
    /// the 101 percentiles 0..=100 for distribution plots.
    pub fn of(samples: &mut [f64]) -> (Summary, Vec<f64>) {
        samples.sort_by(f64::total_cmp);
        let at = |p: f64| -> f64 {
            if samples.is_empty() {
                return 0.0;
            }
            // Nearest rank: the smallest sample with at least p% at or below it.
            let rank = ((p / 100.0) * samples.len() as f64).ceil() as usize;
            samples[rank.clamp(1, samples.len()) - 1]
        };
        let summary = Summary { p50_ns: at(50.0), p90_ns: at(90.0), p99_ns: at(99.0), samples: samples.len() };
        let quantiles = (0..=100).map(|p| at(p as f64)).collect();
        (summary, quantiles)
    }
}

/// One case's figures.
#[derive(Clone, Debug, Serialize, Deserialize)]
pub struct CaseResult {
    /// The case's name, e.g. `update/write_16_pages`.
    pub name: String,
    /// Latency percentiles, per operation (per message, per round...).
    pub latency: Summary,
    /// Operations per second, for throughput cases (transfers, messages).
    pub throughput: Option<f64>,
    /// The cases (or published figures) this one is compared to, the
    /// primary one first: a regression is judged on the primary ratio.
    pub baselines: Vec<String>,
    /// Deterministic counts (instructions, dirty pages, faults...): the
    /// same code on the same input gives the same numbers on any machine.
    pub counts: BTreeMap<String, u64>,
    /// Sizes in bytes that vary from run to run (resident memory, files
    /// on disk): shown and stored, never judged.
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    pub bytes: BTreeMap<String, u64>,
    /// The percentiles 0..=100 of the samples (ns), for plots.
    pub quantiles: Vec<f64>,
}

impl CaseResult {
    /// Express the samples per operation of the `n` each sample held (the
    /// messages of a round, say).
    pub fn per_operation(&mut self, n: u64) {
        let n = n.max(1) as f64;
        for v in [&mut self.latency.p50_ns, &mut self.latency.p90_ns, &mut self.latency.p99_ns] {
            *v /= n;
        }
        self.quantiles.iter_mut().for_each(|q| *q /= n);
    }

    /// The cost of one operation in ns: the inverse throughput for
    /// throughput cases, else the median latency. Ratios divide costs.
    pub fn cost_ns(&self) -> f64 {
        match self.throughput {
            Some(per_second) if per_second > 0.0 => 1e9 / per_second,
            _ => self.latency.p50_ns,
        }
    }
}

/// A figure the IC published, quoted with its source; never measured here.
#[derive(Clone, Debug, Serialize, Deserialize)]
pub struct Published {
    /// The figure's name, under `ic/`.
    pub name: String,
    /// Nanoseconds per operation.
    pub ns: f64,
    /// Where it comes from.
    pub source: String,
}

/// Everything one run measured.
#[derive(Clone, Debug, Serialize, Deserialize)]
pub struct Run {
    /// The machine, build and commit.
    pub machine: Machine,
    /// Whether this was a `--quick` run.
    pub quick: bool,
    /// The cases, in the order they ran.
    pub results: Vec<CaseResult>,
    /// The IC's published figures.
    pub published: Vec<Published>,
}

impl Run {
    /// The case named `name`.
    pub fn get(&self, name: &str) -> Option<&CaseResult> {
        self.results.iter().find(|r| r.name == name)
    }

    /// The cost of one operation of `name` in ns, measured or published.
    pub fn cost_ns(&self, name: &str) -> Option<f64> {
        self.get(name).map(CaseResult::cost_ns).or_else(|| self.published.iter().find(|p| p.name == name).map(|p| p.ns))
    }

    /// `case`'s cost divided by `baseline`'s, when both are known.
    pub fn ratio(&self, case: &str, baseline: &str) -> Option<f64> {
        let (c, b) = (self.cost_ns(case)?, self.cost_ns(baseline)?);
        (b > 0.0).then(|| c / b)
    }

    /// `case`'s ratio to its primary baseline: the first of its baselines
    /// this run measured (published figures are quoted, not judged).
    pub fn primary_ratio(&self, case: &CaseResult) -> Option<(String, f64)> {
        let baseline = case.baselines.iter().find(|b| self.get(b).is_some())?;
        Some((baseline.clone(), self.ratio(&case.name, baseline)?))
    }

    /// Replace the case of `result`'s name by it (a re-measurement), or
    /// add it.
    pub fn replace_case(&mut self, result: CaseResult) {
        match self.results.iter_mut().find(|r| r.name == result.name) {
            Some(slot) => *slot = result,
            None => self.results.push(result),
        }
    }
}
