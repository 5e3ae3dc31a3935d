//! The benchmark suite behind `canister-host bench`, and the inputs the
//! criterion benchmarks in this directory share.
//!
//! Every figure is reported beside baselines measured in the same run
//! (machines here are noisy): as p50/p90/p99, and as ratios to those
//! baselines. See [`suite`].

#![deny(unsafe_code)]

mod inputs;
pub mod suite;

pub use inputs::*;
