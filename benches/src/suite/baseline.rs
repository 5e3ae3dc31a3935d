//! The stored baseline (`benches/baseline.json`) and the regression check,
//! as canbench does it: a run is compared case by case, times as ratios to
//! their in-run baselines (machines are noisy; ratios travel better than
//! times), deterministic counts exactly.

use std::collections::{BTreeMap, BTreeSet};
use std::fmt::Write as _;
use std::path::Path;

use serde::{Deserialize, Serialize};

use super::{BenchError, Machine, Options, Run};

/// The format's version; a file of another version is refused.
const VERSION: u32 = 1;

/// What `benches/baseline.json` holds.
#[derive(Clone, Debug, Serialize, Deserialize)]
pub struct Stored {
    /// The file format's version.
    pub version: u32,
    /// The machine and commit of the run stored last.
    pub machine: Machine,
    /// Each case's figures, by name.
    pub cases: BTreeMap<String, StoredCase>,
}

/// One case's stored figures.
#[derive(Clone, Debug, Serialize, Deserialize)]
pub struct StoredCase {
    /// Median latency, ns.
    pub p50_ns: f64,
    /// 99th percentile latency, ns (informative).
    pub p99_ns: f64,
    /// Operations per second, for throughput cases.
    pub throughput: Option<f64>,
    /// The primary baseline the ratio is to.
    pub baseline: Option<String>,
    /// Cost divided by the primary baseline's, in the same run.
    pub ratio: Option<f64>,
    /// Deterministic counts.
    pub counts: BTreeMap<String, u64>,
    /// Sizes that vary from run to run (informative).
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    pub bytes: BTreeMap<String, u64>,
}

/// How a case compares to its stored figures.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize)]
pub enum Verdict {
    /// Its ratio fell by more than the noise threshold, or a count fell.
    Improved,
    /// Its ratio rose by more than the noise threshold, or a count rose.
    Regressed,
    /// Within the noise threshold, counts equal.
    Unchanged,
    /// Not in the stored baseline.
    New,
    /// A baseline itself (or a case whose baseline did not run): shown,
    /// not judged.
    Reference,
}

/// One case's comparison.
#[derive(Clone, Debug, Serialize)]
pub struct Comparison {
    /// The case.
    pub case: String,
    /// The verdict.
    pub verdict: Verdict,
    /// The ratio's relative change (0.1 is 10% slower relative to its
    /// baseline); for reference cases, the median's.
    pub change: Option<f64>,
    /// The baseline the ratio is to.
    pub baseline: Option<String>,
    /// Counts that differ: (name, stored, now).
    pub counts: Vec<(String, Option<u64>, Option<u64>)>,
}

impl Comparison {
    /// Whether a deterministic count present in both runs rose.
    pub fn count_rose(&self) -> bool {
        self.counts.iter().any(|(_, a, b)| matches!((a, b), (Some(a), Some(b)) if b > a))
    }

    /// Whether a deterministic count present in both runs fell.
    pub fn count_fell(&self) -> bool {
        self.counts.iter().any(|(_, a, b)| matches!((a, b), (Some(a), Some(b)) if b < a))
    }
}

/// Read a stored baseline.
pub fn load(path: &Path) -> Result<Stored, BenchError> {
    let err = |message: String| BenchError::Baseline { path: path.display().to_string(), message };
    let text = std::fs::read_to_string(path).map_err(|e| err(format!("cannot read it: {e}")))?;
    let value: serde_json::Value = serde_json::from_str(&text).map_err(|e| err(format!("not a baseline file: {e}")))?;
    // The version first: another version's fields would only confuse.
    match value.get("version").and_then(|v| v.as_u64()) {
        Some(v) if v == u64::from(VERSION) => {}
        Some(v) => {
            return Err(err(format!(
                "format version {v} is not this tool's ({VERSION}): record a new one with --persist"
            )));
        }
        None => return Err(err("not a baseline file: no format version".into())),
    }
    serde_json::from_value(value).map_err(|e| err(format!("not a baseline file: {e}")))
}

/// The figures of `run` as they would be stored.
fn stored_cases(run: &Run) -> BTreeMap<String, StoredCase> {
    let round = |v: f64, digits: i32| {
        let scale = 10f64.powi(digits);
        (v * scale).round() / scale
    };
    run.results
        .iter()
        .map(|case| {
            let primary = run.primary_ratio(case);
            let stored = StoredCase {
                p50_ns: round(case.latency.p50_ns, 1),
                p99_ns: round(case.latency.p99_ns, 1),
                throughput: case.throughput.map(|t| round(t, 1)),
                baseline: primary.as_ref().map(|(b, _)| b.clone()),
                ratio: primary.map(|(_, r)| round(r, 5)),
                counts: case.counts.clone(),
                bytes: case.bytes.clone(),
            };
            (case.name.clone(), stored)
        })
        .collect()
}

/// Store `run` in `path`: its cases replace those of the same name, the
/// rest of the file stays (a quick or filtered run updates only what it
/// ran). A file from another build profile is replaced whole.
pub fn persist(path: &Path, run: &Run) -> Result<(), BenchError> {
    let mut cases = match path.exists().then(|| load(path)) {
        Some(Ok(old)) if old.machine.profile == run.machine.profile => old.cases,
        Some(Err(e)) => return Err(e),
        _ => BTreeMap::new(),
    };
    cases.extend(stored_cases(run));
    let stored = Stored { version: VERSION, machine: run.machine.clone(), cases };
    let err = |message: String| BenchError::Baseline { path: path.display().to_string(), message };
    let json = serde_json::to_string_pretty(&stored).map_err(|e| err(e.to_string()))?;
    // Write beside it and rename, so an interrupted write leaves the old file.
    let tmp = path.with_extension("json.tmp");
    std::fs::write(&tmp, json + "\n").map_err(|e| err(format!("cannot write {}: {e}", tmp.display())))?;
    std::fs::rename(&tmp, path).map_err(|e| err(format!("cannot replace it: {e}")))
}

/// Compare `run` to `stored`: a ratio that changed by more than `noise`
/// (0.25 = 25%) is a regression or an improvement; so is any change in a
/// deterministic count. Refused when the builds differ (a debug build's
/// ratios say nothing about a release build's).
pub fn compare(stored: &Stored, run: &Run, noise: f64) -> Result<Vec<Comparison>, BenchError> {
    if stored.machine.profile != run.machine.profile {
        return Err(BenchError::Baseline {
            path: "stored".into(),
            message: format!(
                "it was recorded by a {} build and this is a {} build: compare like with like \
                 (cargo run --release -p canister_host_cli -- bench ...)",
                stored.machine.profile, run.machine.profile
            ),
        });
    }
    let now = stored_cases(run);
    Ok(run
        .results
        .iter()
        .map(|case| {
            let current = &now[&case.name];
            let Some(old) = stored.cases.get(&case.name) else {
                return Comparison {
                    case: case.name.clone(),
                    verdict: Verdict::New,
                    change: None,
                    baseline: current.baseline.clone(),
                    counts: Vec::new(),
                };
            };
            compare_case(&case.name, old, current, noise)
        })
        .collect())
}

fn compare_case(name: &str, old: &StoredCase, now: &StoredCase, noise: f64) -> Comparison {
    let keys: BTreeSet<&String> = old.counts.keys().chain(now.counts.keys()).collect();
    let counts: Vec<_> = keys
        .into_iter()
        .map(|k| (k.clone(), old.counts.get(k).copied(), now.counts.get(k).copied()))
        .filter(|(_, a, b)| a != b)
        .collect();
    let same_baseline = old.baseline.is_some() && old.baseline == now.baseline;
    let (change, judged) = match (old.ratio, now.ratio) {
        (Some(a), Some(b)) if same_baseline && a > 0.0 => (Some(b / a - 1.0), true),
        _ if old.p50_ns > 0.0 => (Some(now.p50_ns / old.p50_ns - 1.0), false),
        _ => (None, false),
    };
    let mut comparison = Comparison {
        case: name.to_string(),
        verdict: Verdict::Reference,
        change,
        baseline: now.baseline.clone(),
        counts,
    };
    // Only a count present in both can rise or fall; one that appeared or
    // disappeared is shown, not judged.
    comparison.verdict = match (judged, change) {
        _ if comparison.count_rose() => Verdict::Regressed,
        (true, Some(c)) if c > noise => Verdict::Regressed,
        _ if comparison.count_fell() => Verdict::Improved,
        (true, Some(c)) if c < -noise => Verdict::Improved,
        (true, _) => Verdict::Unchanged,
        (false, _) => Verdict::Reference,
    };
    comparison
}

/// The cases that regressed.
pub fn regressions(comparisons: &[Comparison]) -> Vec<&Comparison> {
    comparisons.iter().filter(|c| c.verdict == Verdict::Regressed).collect()
}

/// Re-measure the cases that regressed (with their baselines) up to
/// `attempts` times, keeping the better figures: a regression is believed
/// only if it persists. Returns the final comparison.
pub fn confirm(
    run: &mut Run,
    stored: &Stored,
    options: &Options,
    noise: f64,
    attempts: usize,
    progress: &mut dyn FnMut(&str),
) -> Result<Vec<Comparison>, BenchError> {
    let mut comparisons = compare(stored, run, noise)?;
    for _ in 0..attempts {
        // A count that rose will rise again: only times are worth a retry.
        let regressed: BTreeSet<String> =
            regressions(&comparisons).iter().filter(|c| !c.count_rose()).map(|c| c.case.clone()).collect();
        if regressed.is_empty() {
            break;
        }
        let mut only = regressed.clone();
        for name in &regressed {
            if let Some(case) = run.get(name) {
                only.extend(case.baselines.iter().cloned());
            }
        }
        let again = super::run(&Options { only: Some(only), ..options.clone() }, progress)?;
        let mut candidate = run.clone();
        for result in again.results.iter().cloned() {
            candidate.replace_case(result);
        }
        // Per regressed case, keep whichever attempt judged it better, with
        // the baselines measured beside it.
        for retried in compare(stored, &candidate, noise)?.into_iter().filter(|c| regressed.contains(&c.case)) {
            let before = comparisons.iter().find(|o| o.case == retried.case).and_then(|c| c.change);
            if retried.change.unwrap_or(f64::MAX) >= before.unwrap_or(f64::MAX) {
                continue;
            }
            let baselines = candidate.get(&retried.case).map(|c| c.baselines.clone()).unwrap_or_default();
            for name in std::iter::once(&retried.case).chain(&baselines) {
                if let Some(result) = again.get(name) {
                    run.replace_case(result.clone());
                }
            }
        }
        comparisons = compare(stored, run, noise)?;
    }
    Ok(comparisons)
}

/// The comparison as text: regressed, improved, then the count of
/// unchanged, new and reference cases.
pub fn render(comparisons: &[Comparison], noise: f64) -> String {
    let mut out = String::new();
    let line = |out: &mut String, c: &Comparison| {
        let change = c.change.map_or(String::new(), |v| format!("{:+.1}%", v * 100.0));
        let against = c.baseline.as_deref().map_or(String::new(), |b| format!(" (ratio to {b})"));
        let _ = write!(out, "  {:<44} {change:>8}{against}", c.case);
        for (count, old, now) in &c.counts {
            let show = |v: &Option<u64>| v.map_or("-".to_string(), |v| v.to_string());
            let _ = write!(out, "; {count} {} -> {}", show(old), show(now));
        }
        out.push('\n');
    };
    for (verdict, title) in [(Verdict::Regressed, "regressed"), (Verdict::Improved, "improved")] {
        let these: Vec<_> = comparisons.iter().filter(|c| c.verdict == verdict).collect();
        if !these.is_empty() {
            let _ = writeln!(out, "{title} (beyond {:.0}% or any count change):", noise * 100.0);
            these.into_iter().for_each(|c| line(&mut out, c));
        }
    }
    let count = |v: Verdict| comparisons.iter().filter(|c| c.verdict == v).count();
    let _ = writeln!(
        out,
        "{} unchanged, {} regressed, {} improved, {} new, {} reference (baselines, not judged)",
        count(Verdict::Unchanged),
        count(Verdict::Regressed),
        count(Verdict::Improved),
        count(Verdict::New),
        count(Verdict::Reference)
    );
    out
}
