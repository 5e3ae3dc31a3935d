//! `canister-host bench`: named cases in the IC's style (`update/empty`,
//! `checkpoint/dense_1GiB_100_dirty`, ...), each measured beside its
//! baselines in the same run.
//!
//! - [`run`] measures the cases an [`Options`] selects and returns a [`Run`];
//! - [`baseline`] stores a run as `benches/baseline.json` and compares a
//!   run to it: times as ratios to their in-run baselines, deterministic
//!   counts (instructions, dirty pages, faults) exactly;
//! - [`report`] renders a run as one self-contained HTML file with plots.
//!
//! Baselines are themselves cases: plain wasmtime (`wasmtime/*`), the
//! IC's 2021 tracking (`naive/*`), untracked memory (`untracked/*`), the
//! disk's floor (`disk/*`), `cp --sparse=always` (`cp/*`), live execution
//! of a replayed history (`live/*`), and the IC's published figures
//! (`ic/*`, quoted with their source, never measured here).

pub mod baseline;
mod cases;
mod error;
mod machine;
mod measure;
pub mod report;
mod resident;
mod result;
mod table;

use std::collections::BTreeSet;
use std::path::PathBuf;

pub use error::BenchError;
pub use machine::Machine;
pub use result::{CaseResult, Published, Run, Summary};
pub use table::summary_table;

/// What to run.
#[derive(Clone, Debug)]
pub struct Options {
    /// The small sizes only, with short sampling: about a minute.
    pub quick: bool,
    /// Run only cases whose name contains one of these (all when empty).
    /// A selected case's baselines run with it.
    pub filter: Vec<String>,
    /// Run only these exact case names (and their baselines), when set:
    /// how a regression is re-measured before it is believed.
    pub only: Option<BTreeSet<String>>,
    /// Where fixtures (state directories, checkpoint files) are made: it
    /// should be on the disk under test, not a tmpfs.
    pub scratch: PathBuf,
}

/// Run the cases `options` selects. `progress` hears each case's name as
/// it starts.
pub fn run(options: &Options, progress: &mut dyn FnMut(&str)) -> Result<Run, BenchError> {
    let scratch = tempfile::Builder::new()
        .prefix("canister-host-bench-")
        .tempdir_in(&options.scratch)
        .map_err(|e| BenchError::io(format!("creating a scratch directory in {}", options.scratch.display()), e))?;
    let mut runner = measure::Runner::new(options, scratch.path(), progress);
    cases::run_all(&mut runner)?;
    Ok(Run {
        machine: Machine::describe(&options.scratch),
        quick: options.quick,
        results: runner.into_results(),
        published: cases::published(),
    })
}

#[cfg(test)]
mod tests;
