//! Shipping a live state directory in the background.
//!
//! A thread ships what the directory holds and the store lacks
//! ([`Remote::ship_state_dir`]) at a fixed interval, and once more when
//! stopped. Given the host's [`LogSealer`], each pass seals the log's
//! active segment after shipping the checkpoints, so the store's recovery
//! point trails the host by about one interval rather than by a whole
//! segment. It only reads files the host has published (checkpoints) or
//! sealed (log segments), so it never blocks a round or a reply; when the
//! store is unreachable it records the failure and tries again at the next
//! tick, and what was not shipped waits on the local disk (the log keeps
//! every round since the oldest kept checkpoint).

use std::path::PathBuf;
use std::sync::{Arc, Mutex};
use std::thread::JoinHandle;
use std::time::Duration;

use canister_host::LogSealer;
use crossbeam_channel::{RecvTimeoutError, Sender, bounded};
use prometheus::{Gauge, IntCounter, IntGauge, Registry};

use crate::log::local_segments;
use crate::metrics::registered;
use crate::remote::Remote;

/// Where shipping stands.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct ReplicationStatus {
    /// Passes over the state directory finished (successful or not).
    pub passes: u64,
    /// Passes that failed (the store unreachable, say).
    pub failures: u64,
    /// The last failure, if the last pass failed.
    pub last_error: Option<String>,
    /// Bytes uploaded since the start.
    pub uploaded_bytes: u64,
    /// The last round the store holds (in a sealed segment or as a
    /// checkpoint), as of the last successful pass: a restore gets at
    /// least this far.
    pub shipped_height: Option<u64>,
    /// Sealed segments the last pass saw and the store may lack (0 after a
    /// successful pass).
    pub backlog_segments: u64,
}

struct Metrics {
    registry: Registry,
    passes: IntCounter,
    failures: IntCounter,
    uploaded: IntCounter,
    shipped_height: IntGauge,
    backlog: IntGauge,
    last_success: Gauge,
    pruned: IntCounter,
}

impl Metrics {
    fn new() -> Metrics {
        let registry = Registry::new();
        let counter = |name: &str, help: &str| registered(&registry, IntCounter::new(name, help));
        let gauge = |name: &str, help: &str| registered(&registry, IntGauge::new(name, help));
        Metrics {
            passes: counter("canister_host_replication_passes_total", "Passes shipping the state directory."),
            failures: counter("canister_host_replication_failures_total", "Passes that failed; the next retries."),
            uploaded: counter("canister_host_replication_uploaded_bytes_total", "Bytes uploaded to the store."),
            pruned: counter(
                "canister_host_replication_pruned_bytes_total",
                "Bytes removed from the store by pruning (old checkpoints' chunks and log).",
            ),
            shipped_height: gauge(
                "canister_host_replication_shipped_height",
                "The last round in the store's log: a restore gets this far (the recovery point).",
            ),
            backlog: gauge(
                "canister_host_replication_backlog_segments",
                "Sealed log segments not yet confirmed in the store.",
            ),
            last_success: registered(
                &registry,
                Gauge::new(
                    "canister_host_replication_last_success_timestamp_seconds",
                    "When the last pass succeeded (seconds since the epoch): the recovery point's age is now minus \
                     this, plus one interval.",
                ),
            ),
            registry,
        }
    }
}

/// How a [`Replicator`] ships, beyond where and how often.
#[derive(Clone, Default)]
pub struct Shipping {
    /// Seal the host's log before each pass, so every round logged by
    /// then ships in that pass (without it, segments ship as the log
    /// outgrows them).
    pub sealer: Option<LogSealer>,
    /// Keep only the newest this many checkpoints in the store, with the
    /// log after the oldest of them and the chunks they name
    /// ([`Remote::prune`]); `None` keeps everything.
    pub keep_checkpoints: Option<usize>,
}

/// The background shipper of one state directory.
pub struct Replicator {
    stop: Option<Sender<()>>,
    thread: Option<JoinHandle<()>>,
    status: Arc<Mutex<ReplicationStatus>>,
    registry: Registry,
}

impl Replicator {
    /// Ship `state_dir` to `remote` every `interval`, on a thread of its
    /// own: checkpoints, and log segments as the log seals them (when it
    /// outgrows a segment).
    pub fn start(remote: Remote, state_dir: PathBuf, interval: Duration) -> std::io::Result<Replicator> {
        Replicator::start_with(remote, state_dir, interval, Shipping::default())
    }

    /// [`Replicator::start`], as `shipping` says.
    pub fn start_with(
        remote: Remote,
        state_dir: PathBuf,
        interval: Duration,
        shipping: Shipping,
    ) -> std::io::Result<Replicator> {
        let Shipping { sealer, keep_checkpoints } = shipping;
        let (stop, stopped) = bounded::<()>(1);
        let status = Arc::new(Mutex::new(ReplicationStatus::default()));
        let metrics = Metrics::new();
        let registry = metrics.registry.clone();
        let shared = status.clone();
        let thread = std::thread::Builder::new().name("canister-host-replication".into()).spawn(move || {
            let mut seal = || {
                if let Some(Err(error)) = sealer.as_ref().map(LogSealer::seal) {
                    // A closed host has nothing more to seal; its final
                    // checkpoint still ships.
                    tracing::debug!(%error, "not sealing the log before shipping");
                }
            };
            loop {
                let last = matches!(stopped.recv_timeout(interval), Ok(()) | Err(RecvTimeoutError::Disconnected));
                let shipped = pass(&remote, &state_dir, &mut seal, &shared, &metrics);
                if let (true, Some(keep)) = (shipped, keep_checkpoints) {
                    prune(&remote, keep, &shared, &metrics);
                }
                if last {
                    return;
                }
            }
        })?;
        Ok(Replicator { stop: Some(stop), thread: Some(thread), status, registry })
    }

    /// Where shipping stands now.
    pub fn status(&self) -> ReplicationStatus {
        self.status.lock().unwrap_or_else(|e| e.into_inner()).clone()
    }

    /// The shipping metrics, for a Prometheus endpoint to serve.
    pub fn registry(&self) -> &Registry {
        &self.registry
    }

    /// Make one last pass (after the host's final checkpoint, say), stop,
    /// and say where shipping stands.
    pub fn stop(mut self) -> ReplicationStatus {
        self.finish();
        self.status()
    }

    fn finish(&mut self) {
        if let Some(stop) = self.stop.take() {
            let _ = stop.send(());
        }
        if let Some(thread) = self.thread.take() {
            let _ = thread.join();
        }
    }
}

impl Drop for Replicator {
    fn drop(&mut self) {
        self.finish();
    }
}

/// Prune the store after a pass that shipped a checkpoint; a failure is
/// counted and retried after the next one.
fn prune(remote: &Remote, keep: usize, status: &Mutex<ReplicationStatus>, metrics: &Metrics) {
    match remote.prune(keep) {
        Ok(pruned) => metrics.pruned.inc_by(pruned.bytes),
        Err(error) => {
            tracing::warn!(%error, "pruning the store failed; retrying after the next checkpoint ships");
            metrics.failures.inc();
            let mut s = status.lock().unwrap_or_else(|e| e.into_inner());
            s.failures += 1;
            s.last_error = Some(error.to_string());
        }
    }
}

/// One pass: ship, and record how it went. Returns whether it shipped a
/// checkpoint.
fn pass(
    remote: &Remote,
    state_dir: &std::path::Path,
    seal: &mut dyn FnMut(),
    status: &Mutex<ReplicationStatus>,
    metrics: &Metrics,
) -> bool {
    let result = remote.ship_state_dir_with(state_dir, seal);
    let mut s = status.lock().unwrap_or_else(|e| e.into_inner());
    s.passes += 1;
    metrics.passes.inc();
    let shipped_checkpoint = result.as_ref().is_ok_and(|shipped| !shipped.checkpoints.is_empty());
    match result {
        Ok(shipped) => {
            s.last_error = None;
            s.uploaded_bytes += shipped.bytes;
            metrics.uploaded.inc_by(shipped.bytes);
            // Every sealed segment is in the store: the log there ends just
            // before the active segment starts.
            let shipped = shipped.logged_through.max(shipped.checkpoint_through).max(s.shipped_height);
            if let Some(height) = shipped {
                s.shipped_height = Some(height);
                metrics.shipped_height.set(i64::try_from(height).unwrap_or(i64::MAX));
            }
            s.backlog_segments = 0;
            let now = std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).unwrap_or_default();
            metrics.last_success.set(now.as_secs_f64());
        }
        Err(error) => {
            // The store may come back without what it had: ask it again.
            remote.forget_known();
            tracing::warn!(%error, "shipping the state directory failed; retrying at the next pass");
            s.failures += 1;
            metrics.failures.inc();
            s.last_error = Some(error.to_string());
            // Every segment but the active one waits for the next pass.
            let segments = local_segments(&state_dir.join(checkpoint::layout::WAL_DIR)).unwrap_or_default();
            s.backlog_segments = segments.len().saturating_sub(1) as u64;
        }
    }
    metrics.backlog.set(i64::try_from(s.backlog_segments).unwrap_or(i64::MAX));
    shipped_checkpoint
}
