//! The suite's own logic on synthetic runs: percentiles, the regression
//! check, the stored baseline, the report. (The cases themselves run in the
//! CLI's tests, through `canister-host bench`.)

mod compare;
mod report;
mod stats;

use std::collections::BTreeMap;

use super::{CaseResult, Machine, Run, Summary};

/// A case with median `p50` ns, `baselines`, and `counts`.
fn case(name: &str, p50: f64, baselines: &[&str], counts: &[(&str, u64)]) -> CaseResult {
    CaseResult {
        name: name.into(),
        latency: Summary { p50_ns: p50, p90_ns: p50 * 1.5, p99_ns: p50 * 2.0, samples: 10 },
        throughput: None,
        baselines: baselines.iter().map(|b| b.to_string()).collect(),
        counts: counts.iter().map(|(k, v)| (k.to_string(), *v)).collect::<BTreeMap<_, _>>(),
        bytes: BTreeMap::new(),
        quantiles: (0..=100).map(|p| p50 * (1.0 + p as f64 / 100.0)).collect(),
    }
}

/// A release-build run of `results`.
fn run_of(results: Vec<CaseResult>) -> Run {
    let machine = Machine { profile: "release".into(), cpu: "Test CPU 9000".into(), cores: 2, ..Machine::default() };
    Run { machine, quick: true, results, published: Vec::new() }
}
