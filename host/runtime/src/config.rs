//! How a host runs: workers, checkpoints, durability, round times.

use std::time::Duration;

use checkpoint::Verification;
use embedder::ExecutionConfig;

use crate::round::OPERATION_OVERHEAD;
use crate::wal::MAX_RECORD_BYTES;

/// Where round times come from. Either way the time is recorded in the
/// write-ahead log, so replay reproduces it.
#[derive(Copy, Clone, Debug, PartialEq, Eq)]
pub enum TimeSource {
    /// The wall clock, kept strictly increasing (at least 1 ns per round).
    WallClock,
    /// `start`, then `step` nanoseconds more each round: for tests.
    Deterministic {
        /// The first round's time, in nanoseconds since the epoch.
        start: u64,
        /// Nanoseconds between rounds.
        step: u64,
    },
}

/// How a host runs. The defaults suit production.
#[derive(Clone, Debug)]
pub struct HostConfig {
    /// How messages execute.
    pub execution: ExecutionConfig,
    /// Worker threads executing canisters (default: the number of cores).
    pub workers: usize,
    /// Rounds between checkpoints.
    pub checkpoint_interval: u64,
    /// Checkpoints kept; older ones are pruned, with the log before them.
    pub keep_checkpoints: usize,
    /// Sync each round's log record before replying. Off only for
    /// benchmarks: without it, acknowledged work can be lost in a crash.
    pub fsync: bool,
    /// Size at which the write-ahead log starts a new segment.
    pub wal_segment_bytes: u64,
    /// Most operations in one round.
    pub max_round_operations: usize,
    /// Most bytes of operations (arguments, modules) in one round: bounds a
    /// round's log record. One operation always fits.
    pub max_round_bytes: usize,
    /// Largest argument of an update or install (the IC's ingress limit).
    pub max_ingress_bytes: usize,
    /// Threads that run queries (default: the number of cores).
    pub query_threads: usize,
    /// Queries that may wait for a query thread; more are refused.
    pub query_queue: usize,
    /// Where round times come from.
    pub time: TimeSource,
    /// With no messages, how often to look for due timers and heartbeats
    /// (wall-clock time only).
    pub idle_round_interval: Duration,
    /// How thoroughly the checkpoint is checked at open.
    pub verification: Verification,
    /// Most bytes of compiled modules kept in the state directory's
    /// `compiled/` cache, so reopening or reinstalling a module loads its
    /// machine code instead of compiling it; 0 turns the cache off.
    pub module_cache_bytes: u64,
    /// Most overlay files a memory keeps on its base file. A checkpoint
    /// writes only the pages a memory changed since the previous one, as an
    /// overlay; past this many (or past a quarter of the base in overlay
    /// pages) the memory is rewritten whole, which also releases its pages
    /// from memory. 0 rewrites every changed memory whole.
    pub max_overlays: usize,
}

impl HostConfig {
    /// Check the settings: a zero where a count, size or interval must be
    /// positive is an error naming the setting.
    pub fn validate(&self) -> Result<(), String> {
        let e = &self.execution;
        let positive = [
            ("workers", self.workers as u64),
            ("checkpoint_interval", self.checkpoint_interval),
            ("keep_checkpoints", self.keep_checkpoints as u64),
            ("wal_segment_bytes", self.wal_segment_bytes),
            ("max_round_operations", self.max_round_operations as u64),
            ("query_threads", self.query_threads as u64),
            ("query_queue", self.query_queue as u64),
            ("idle_round_interval", self.idle_round_interval.as_nanos().min(u64::MAX.into()) as u64),
            ("execution.prefetch_pages", e.prefetch_pages as u64),
            ("execution.update_instruction_limit", e.update_instruction_limit),
            ("execution.query_instruction_limit", e.query_instruction_limit),
            ("execution.install_instruction_limit", e.install_instruction_limit),
            ("execution.max_module_bytes", e.max_module_bytes as u64),
        ];
        if let Some((name, _)) = positive.iter().find(|(_, value)| *value == 0) {
            return Err(format!("{name} must be positive"));
        }
        // The largest operation, an install, must fit a round, and a round
        // must fit a log record.
        let largest = e.max_module_bytes.saturating_add(self.max_ingress_bytes).saturating_add(OPERATION_OVERHEAD);
        if largest > self.max_round_bytes {
            return Err(format!(
                "max_round_bytes ({}) must hold the largest install: execution.max_module_bytes plus \
                 max_ingress_bytes ({largest})",
                self.max_round_bytes
            ));
        }
        if self.max_round_bytes as u64 > MAX_RECORD_BYTES / 2 {
            return Err(format!("max_round_bytes must be at most {}", MAX_RECORD_BYTES / 2));
        }
        Ok(())
    }
}

impl Default for HostConfig {
    fn default() -> Self {
        HostConfig {
            execution: ExecutionConfig::default(),
            workers: std::thread::available_parallelism().map_or(1, |n| n.get()),
            checkpoint_interval: 100,
            keep_checkpoints: 3,
            fsync: true,
            wal_segment_bytes: 64 << 20,
            max_round_operations: 10_000,
            max_round_bytes: 256 << 20,
            max_ingress_bytes: 2 << 20,
            query_threads: std::thread::available_parallelism().map_or(1, |n| n.get()),
            query_queue: 1024,
            time: TimeSource::WallClock,
            idle_round_interval: Duration::from_millis(100),
            verification: Verification::Full,
            module_cache_bytes: 2 << 30,
            max_overlays: 8,
        }
    }
}
