//! What the host measures about itself, as Prometheus metrics: work done
//! (rounds, messages, instructions, dirty pages), how long the durable
//! steps take (log appends with their fsync, checkpoints), update and
//! query latency, and the size of the state (canisters, memory, log).
//!
//! Each host has its own registry, so several hosts in one process (tests,
//! benchmarks) never mix their figures. Counters and histograms are
//! atomics: recording costs a few nanoseconds and takes no lock.

use std::path::{Path, PathBuf};
use std::time::Instant;

use prometheus::{Histogram, HistogramOpts, IntCounter, IntGauge, Opts, Registry};

use crate::view::CommittedView;

/// Bucket bounds (seconds) for durations from a microsecond-scale message
/// to a multi-second checkpoint.
const BUCKETS: &[f64] = &[
    0.000_01, 0.000_025, 0.000_05, 0.000_1, 0.000_25, 0.000_5, 0.001, 0.002_5, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25,
    0.5, 1.0, 2.5, 5.0, 10.0,
];

/// The host's metrics.
pub struct HostMetrics {
    registry: Registry,
    pub(crate) rounds: IntCounter,
    pub(crate) messages: IntCounter,
    pub(crate) instructions: IntCounter,
    pub(crate) dirty_pages: IntCounter,
    pub(crate) checkpoints: IntCounter,
    pub(crate) memory_trim_requests: IntCounter,
    pub(crate) memory_trims: IntCounter,
    pub(crate) round_seconds: Histogram,
    pub(crate) log_append_seconds: Histogram,
    pub(crate) checkpoint_seconds: Histogram,
    pub(crate) update_seconds: Histogram,
    pub(crate) query_seconds: Histogram,
    height: IntGauge,
    canisters: IntGauge,
    memory_bytes: IntGauge,
    log_bytes: IntGauge,
    wal_dir: PathBuf,
}

impl HostMetrics {
    /// Metrics of a host whose log lives in `wal_dir`.
    pub(crate) fn new(wal_dir: &Path) -> HostMetrics {
        let registry = Registry::new();
        let counter = |name: &str, help: &str| {
            let c = IntCounter::with_opts(Opts::new(name, help)).expect("a valid metric name");
            registry.register(Box::new(c.clone())).expect("each name registered once");
            c
        };
        let gauge = |name: &str, help: &str| {
            let g = IntGauge::with_opts(Opts::new(name, help)).expect("a valid metric name");
            registry.register(Box::new(g.clone())).expect("each name registered once");
            g
        };
        let histogram = |name: &str, help: &str| {
            let h = Histogram::with_opts(HistogramOpts::new(name, help).buckets(BUCKETS.to_vec()))
                .expect("valid histogram options");
            registry.register(Box::new(h.clone())).expect("each name registered once");
            h
        };
        HostMetrics {
            rounds: counter("canister_host_rounds_total", "Rounds executed since the host opened."),
            messages: counter("canister_host_messages_total", "Update messages executed since the host opened."),
            instructions: counter(
                "canister_host_instructions_total",
                "Wasm instructions update messages used since the host opened.",
            ),
            dirty_pages: counter(
                "canister_host_dirty_pages_total",
                "4 KiB pages rounds wrote (once per canister and round) since the host opened.",
            ),
            checkpoints: counter("canister_host_checkpoints_total", "Checkpoints written since the host opened."),
            memory_trim_requests: counter(
                "canister_host_memory_trim_requests_total",
                "Times the host asked for freed page data to be returned to the operating system.",
            ),
            memory_trims: counter(
                "canister_host_memory_trims_total",
                "Times freed page data was returned to the operating system since the host opened.",
            ),
            round_seconds: histogram(
                "canister_host_round_duration_seconds",
                "Time to execute a round and make it durable.",
            ),
            log_append_seconds: histogram(
                "canister_host_log_append_duration_seconds",
                "Time to append a round to the write-ahead log, fsync included.",
            ),
            checkpoint_seconds: histogram("canister_host_checkpoint_duration_seconds", "Time to write a checkpoint."),
            update_seconds: histogram(
                "canister_host_update_latency_seconds",
                "Time from submitting an update to its durable reply.",
            ),
            query_seconds: histogram("canister_host_query_latency_seconds", "Time to answer a query."),
            height: gauge("canister_host_height", "Height of the last committed round."),
            canisters: gauge("canister_host_canisters", "Canisters on the host."),
            memory_bytes: gauge("canister_host_memory_bytes", "Heap, stable memory and module bytes of all canisters."),
            log_bytes: gauge("canister_host_log_bytes", "Bytes of the write-ahead log on disk."),
            wal_dir: wal_dir.to_path_buf(),
            registry,
        }
    }

    /// Every metric, with the size gauges brought up to date with `view`.
    pub(crate) fn gather(&self, view: &CommittedView) -> Vec<prometheus::proto::MetricFamily> {
        self.height.set(saturating_i64(view.round.height));
        self.canisters.set(saturating_i64(view.canisters.size() as u64));
        let memory: u64 = view.canisters.values().map(|c| c.state.size_bytes()).sum();
        self.memory_bytes.set(saturating_i64(memory));
        self.log_bytes.set(saturating_i64(directory_bytes(&self.wal_dir)));
        self.registry.gather()
    }
}

/// Seconds since `start`, for a histogram.
pub(crate) fn seconds_since(start: Instant) -> f64 {
    start.elapsed().as_secs_f64()
}

fn saturating_i64(n: u64) -> i64 {
    i64::try_from(n).unwrap_or(i64::MAX)
}

/// Bytes of the files directly in `dir` (0 if it cannot be read: a metric
/// is no reason to fail).
fn directory_bytes(dir: &Path) -> u64 {
    let Ok(entries) = std::fs::read_dir(dir) else { return 0 };
    entries.filter_map(Result::ok).filter_map(|e| e.metadata().ok()).filter(|m| m.is_file()).map(|m| m.len()).sum()
}
