//! `bench`: run the suite, print its summary table, write the report, and
//! compare to (or update) the stored baseline.

use std::path::PathBuf;

use anyhow::Context as _;
use bench_suite::suite::{self, Options, baseline};
use serde_json::json;

use super::Report;
use crate::args::{Bench, DEFAULT_BASELINE};
use crate::exit::{CHECK_FAILED, usage};
use crate::state::Context;

/// How many times a regression is re-measured before it is believed.
const CONFIRMATIONS: usize = 2;

/// Run `bench`.
pub fn run(cx: &Context, args: Bench) -> anyhow::Result<Report> {
    if !(args.noise.is_finite() && args.noise > 0.0 && args.noise < 1000.0) {
        return Err(usage(format!("--noise {} is not a percentage between 0 and 1000", args.noise)));
    }
    let noise = args.noise / 100.0;
    // Read the baseline first: a bad file should fail before minutes of measuring.
    let stored = match &args.compare {
        // The first --persist creates the file: nothing to compare to yet.
        Some(path) if args.persist && !path.exists() => None,
        Some(path) => Some(baseline::load(path).map_err(|e| usage(e.to_string()))?),
        None => None,
    };
    let scratch = args.scratch.clone().unwrap_or_else(std::env::temp_dir);
    if !scratch.is_dir() {
        return Err(usage(format!("--scratch {}: not a directory", scratch.display())));
    }
    let options = Options { quick: args.quick, filter: args.filter.clone(), only: None, scratch };
    let progress = cx.progress("benchmarking");
    let mut on_case = |name: &str| progress.message(format!("benchmarking {name}"));
    let mut run = suite::run(&options, &mut on_case).context("the benchmark suite failed")?;
    if run.results.is_empty() {
        return Err(usage(format!("no case matches --filter {}", args.filter.join(", "))));
    }
    let comparisons = match &stored {
        Some(stored) => Some(
            baseline::confirm(&mut run, stored, &options, noise, CONFIRMATIONS, &mut on_case)
                .context("comparing to the stored baseline")?,
        ),
        None => None,
    };
    progress.finish();

    let mut text = suite::summary_table(&run);
    if let Some(comparisons) = &comparisons {
        text.push('\n');
        text.push_str(&baseline::render(comparisons, noise));
    }
    if let Some(dir) = &args.report {
        let path = suite::report::write(dir, &run, comparisons.as_deref().map(|c| (c, noise)))
            .context("writing the report")?;
        text.push_str(&format!("\nreport: {}\n", path.display()));
    }
    if args.persist {
        let path = args.compare.clone().unwrap_or_else(|| PathBuf::from(DEFAULT_BASELINE));
        baseline::persist(&path, &run).context("storing the baseline")?;
        text.push_str(&format!("baseline stored in {}\n", path.display()));
    }
    let regressed: Vec<String> =
        comparisons.iter().flat_map(|c| baseline::regressions(c)).map(|c| c.case.clone()).collect();
    let json = json!({ "run": run, "comparisons": comparisons, "regressed": regressed });
    let mut report = Report::new(text, json);
    if !regressed.is_empty() && !args.persist {
        report.code = CHECK_FAILED;
    }
    Ok(report)
}
