//! The summary table a run prints: each case's percentiles, throughput and
//! ratios to its baselines.

use std::fmt::Write as _;

use super::{CaseResult, Run};

/// A duration in ns, in the unit that suits it.
pub fn human_ns(ns: f64) -> String {
    match ns {
        n if n >= 1e9 => format!("{:.2} s", n / 1e9),
        n if n >= 1e6 => format!("{:.2} ms", n / 1e6),
        n if n >= 1e3 => format!("{:.2} µs", n / 1e3),
        n => format!("{n:.1} ns"),
    }
}

/// A rate per second, with a k/M suffix.
pub fn human_rate(per_second: f64) -> String {
    match per_second {
        r if r >= 1e6 => format!("{:.2}M/s", r / 1e6),
        r if r >= 1e3 => format!("{:.1}k/s", r / 1e3),
        r => format!("{r:.1}/s"),
    }
}

/// A ratio, with enough digits to read.
pub fn human_ratio(ratio: f64) -> String {
    match ratio {
        r if r >= 100.0 => format!("{r:.0}×"),
        r if r >= 10.0 => format!("{r:.1}×"),
        r if r >= 0.01 => format!("{r:.2}×"),
        r => format!("{r:.4}×"),
    }
}

/// Bytes in binary units: 512 B, 4.0 KiB, 1.25 GiB.
pub fn human_bytes(bytes: u64) -> String {
    const UNITS: [&str; 4] = ["KiB", "MiB", "GiB", "TiB"];
    if bytes < 1024 {
        return format!("{bytes} B");
    }
    let mut value = bytes as f64 / 1024.0;
    let mut unit = 0;
    while value >= 1024.0 && unit + 1 < UNITS.len() {
        value /= 1024.0;
        unit += 1;
    }
    format!("{value:.2} {}", UNITS[unit])
}

/// Every case of `run`, one line each: p50, p90, p99, throughput, and the
/// ratio of its cost to each of its baselines that is known.
pub fn summary_table(run: &Run) -> String {
    let mut out = String::new();
    let _ = writeln!(
        out,
        "{:<44} {:>10} {:>10} {:>10} {:>10}  vs baselines (cost ratio)",
        "case", "p50", "p90", "p99", "throughput"
    );
    for case in &run.results {
        let ratios: Vec<String> = case
            .baselines
            .iter()
            .filter_map(|b| run.ratio(&case.name, b).map(|r| format!("{} {b}", human_ratio(r))))
            .collect();
        let _ = writeln!(
            out,
            "{:<44} {:>10} {:>10} {:>10} {:>10}  {}",
            case.name,
            human_ns(case.latency.p50_ns),
            human_ns(case.latency.p90_ns),
            human_ns(case.latency.p99_ns),
            case.throughput.map_or(String::new(), human_rate),
            ratios.join(", ")
        );
    }
    let sized: Vec<&CaseResult> = run.results.iter().filter(|c| !c.bytes.is_empty()).collect();
    if !sized.is_empty() {
        let _ = writeln!(out, "\nsizes");
    }
    for case in sized {
        let sizes: Vec<String> = case.bytes.iter().map(|(k, v)| format!("{k} {}", human_bytes(*v))).collect();
        let _ = writeln!(out, "{:<44} {}", case.name, sizes.join(", "));
    }
    let m = &run.machine;
    let _ = writeln!(
        out,
        "\n{} build, commit {}, {} ({} cores), Linux {}, {}{}",
        m.profile,
        m.commit,
        m.cpu,
        m.cores,
        m.kernel,
        m.filesystem,
        if run.quick { ", --quick" } else { "" }
    );
    out
}
