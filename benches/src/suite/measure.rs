//! Sampling: how long each case runs, how samples are timed, and which
//! cases a run selects.

use std::collections::BTreeMap;
use std::path::Path;
use std::time::{Duration, Instant};

use super::{BenchError, CaseResult, Options, Summary};

/// An operation shorter than this is timed in batches, so the clock's own
/// cost (tens of ns) does not dominate its samples.
const BATCH_TARGET: Duration = Duration::from_micros(2);
/// The most operations in one batch.
const MAX_BATCH: u32 = 1000;

/// Runs cases and collects their results.
pub(crate) struct Runner<'a> {
    options: &'a Options,
    scratch: &'a Path,
    progress: &'a mut dyn FnMut(&str),
    results: Vec<CaseResult>,
}

impl<'a> Runner<'a> {
    pub(crate) fn new(options: &'a Options, scratch: &'a Path, progress: &'a mut dyn FnMut(&str)) -> Runner<'a> {
        Runner { options, scratch, progress, results: Vec::new() }
    }

    pub(crate) fn into_results(self) -> Vec<CaseResult> {
        self.results
    }

    /// A `--quick` run: small sizes, short sampling.
    pub(crate) fn quick(&self) -> bool {
        self.options.quick
    }

    /// Where fixtures go (deleted after the run).
    pub(crate) fn scratch(&self) -> &Path {
        self.scratch
    }

    /// Whether the case `name` is selected.
    pub(crate) fn selected(&self, name: &str) -> bool {
        if let Some(only) = &self.options.only {
            return only.contains(name);
        }
        self.options.filter.is_empty() || self.options.filter.iter().any(|f| name.contains(f.as_str()))
    }

    /// Whether any of `names` is selected: a group sets up its fixtures only then.
    pub(crate) fn any<S: AsRef<str>>(&self, names: &[S]) -> bool {
        names.iter().any(|n| self.selected(n.as_ref()))
    }

    /// Whether this run has measured `name` already.
    pub(crate) fn has(&self, name: &str) -> bool {
        self.results.iter().any(|r| r.name == name)
    }

    /// Record one measurement of a whole operation (a history executed
    /// live, say) as case `name`.
    pub(crate) fn once(&mut self, name: &str, baselines: &[&str], elapsed: Duration) -> &mut CaseResult {
        (self.progress)(name);
        self.record(name, baselines, vec![elapsed.as_nanos() as f64], None)
    }

    /// Record samples a case measured itself (the times of events it
    /// waited for, say) as case `name`.
    pub(crate) fn samples(&mut self, name: &str, baselines: &[&str], samples: &[Duration]) -> &mut CaseResult {
        (self.progress)(name);
        self.record(name, baselines, samples.iter().map(|d| d.as_nanos() as f64).collect(), None)
    }

    /// How long a cheap case samples for.
    fn budget(&self) -> Duration {
        if self.quick() { Duration::from_millis(300) } else { Duration::from_secs(2) }
    }

    /// Most samples of a cheap case.
    fn max_samples(&self) -> usize {
        if self.quick() { 2_000 } else { 20_000 }
    }

    /// Time `op`, one sample per call (or per batch of calls when it is
    /// very cheap), for the run's budget. Records the case as `name`
    /// whether or not it was selected: callers run it as someone's baseline
    /// or because it was selected.
    pub(crate) fn latency(
        &mut self,
        name: &str,
        baselines: &[&str],
        mut op: impl FnMut() -> Result<(), BenchError>,
    ) -> Result<&mut CaseResult, BenchError> {
        (self.progress)(name);
        // Warm up, and find the batch size.
        let start = Instant::now();
        op()?;
        let once = start.elapsed().max(Duration::from_nanos(1));
        let batch = if once < BATCH_TARGET {
            (BATCH_TARGET.as_nanos() / once.as_nanos()).clamp(1, MAX_BATCH as u128) as u32
        } else {
            1
        };
        let warm_until = Instant::now() + self.budget() / 10;
        while Instant::now() < warm_until {
            op()?;
        }
        let mut samples = Vec::new();
        let until = Instant::now() + self.budget();
        while samples.len() < 5 || (Instant::now() < until && samples.len() < self.max_samples()) {
            let start = Instant::now();
            for _ in 0..batch {
                op()?;
            }
            samples.push(start.elapsed().as_nanos() as f64 / batch as f64);
        }
        Ok(self.record(name, baselines, samples, None))
    }

    /// Take `count` samples of an expensive operation that times itself
    /// (so its set-up and clean-up are not counted), after one unrecorded
    /// warm-up call.
    pub(crate) fn timed(
        &mut self,
        name: &str,
        baselines: &[&str],
        count: usize,
        mut op: impl FnMut() -> Result<Duration, BenchError>,
    ) -> Result<&mut CaseResult, BenchError> {
        (self.progress)(name);
        op()?;
        let samples = (0..count.max(1)).map(|_| op().map(|d| d.as_nanos() as f64)).collect::<Result<Vec<_>, _>>()?;
        Ok(self.record(name, baselines, samples, None))
    }

    /// Record a throughput case: `ops` operations in `elapsed`, with each
    /// operation's latency.
    pub(crate) fn throughput(
        &mut self,
        name: &str,
        baselines: &[&str],
        ops: u64,
        elapsed: Duration,
        latencies: Vec<f64>,
    ) -> &mut CaseResult {
        let per_second = ops as f64 / elapsed.as_secs_f64().max(1e-9);
        self.record(name, baselines, latencies, Some(per_second))
    }

    fn record(
        &mut self,
        name: &str,
        baselines: &[&str],
        mut samples: Vec<f64>,
        throughput: Option<f64>,
    ) -> &mut CaseResult {
        let (latency, quantiles) = Summary::of(&mut samples);
        self.results.push(CaseResult {
            name: name.to_string(),
            latency,
            throughput,
            baselines: baselines.iter().map(|b| b.to_string()).collect(),
            counts: BTreeMap::new(),
            bytes: BTreeMap::new(),
            quantiles,
        });
        self.results.last_mut().expect("just pushed")
    }
}
