//! `serve`: the IC's HTTP interface over this state directory, until
//! SIGINT or SIGTERM; then the requests in flight finish and the host
//! checkpoints. With `--replicate-to`, a thread ships checkpoints and
//! sealed log segments to a store meanwhile.

use std::sync::Arc;
use std::time::Duration;

use anyhow::Context as _;
use canister_host::HostConfig;

use super::Report;
use crate::args::{Listen, Serve};
use crate::exit::usage;
use crate::state::Context;

/// Where the server's keys live, inside the state directory (outside
/// checkpoints: they are the host's identity, not canister state).
const KEYS: &str = "http/keys.bin";
/// Where finished request statuses are journaled (outside checkpoints:
/// they describe requests, not canister state).
const STATUSES: &str = "http/statuses.journal";
/// Where a running server records its URL, for other commands to name.
pub const URL_FILE: &str = "http/url";

/// Run `serve`.
pub fn run(cx: &Context, args: Serve) -> anyhow::Result<Report> {
    check_listen(&args.http)?;
    // The store is opened before the host: bad options cost no replay.
    let remote = match &args.replicate_to {
        Some(url) => {
            let every = interval("--replicate-every", args.replicate_every)?;
            if args.replicate_keep == Some(0) {
                return Err(usage("--replicate-keep must keep at least 1 checkpoint"));
            }
            Some((replication::Remote::from_url(url).map_err(|e| usage(e.to_string()))?, every))
        }
        None => None,
    };
    let mut host_config = HostConfig::default();
    host_config.query_threads = args.query_threads.unwrap_or(host_config.query_threads);
    host_config.query_queue = args.query_queue.unwrap_or(host_config.query_queue);
    let host = Arc::new(cx.open_with(host_config)?);
    let replicator = match remote {
        Some((remote, every)) => {
            let shipping =
                replication::Shipping { sealer: Some(host.log_sealer()), keep_checkpoints: args.replicate_keep };
            Some(
                replication::Replicator::start_with(remote, cx.dir.clone(), every, shipping)
                    .context("starting the shipping thread")?,
            )
        }
        None => None,
    };
    let config = server::ServerConfig {
        statuses_journal: Some(cx.dir.join(STATUSES)),
        extra_metrics: replicator.as_ref().map(|r| r.registry().clone()),
        ..server::ServerConfig::default()
    };
    let url = serve_http(cx, &args.http, host.clone(), config, "serving the IC HTTP interface")?;
    let host = Arc::try_unwrap(host).map_err(|_| anyhow::anyhow!("requests still hold the host after shutdown"))?;
    host.close().context("checkpointing on shutdown")?;
    // One last pass ships the final checkpoint.
    let shipped = replicator.map(replication::Replicator::stop);
    let note = match &shipped {
        Some(s) if s.last_error.is_none() => "; shipped to the store".to_string(),
        Some(s) => format!("; shipping failed, the store lags: {}", s.last_error.as_deref().unwrap_or_default()),
        None => String::new(),
    };
    Ok(Report::new(
        format!("stopped serving {url}; checkpoint written{note}"),
        serde_json::json!({
            "url": url,
            "stopped": true,
            "shipped_height": shipped.as_ref().and_then(|s| s.shipped_height),
            "shipping_error": shipped.as_ref().and_then(|s| s.last_error.clone()),
        }),
    ))
}

/// `seconds` as an interval, or a usage error naming `flag`.
pub(super) fn interval(flag: &str, seconds: f64) -> anyhow::Result<Duration> {
    if !(seconds > 0.0 && seconds.is_finite()) {
        return Err(usage(format!("{flag} must be a positive number of seconds")));
    }
    Ok(Duration::from_secs_f64(seconds))
}

/// Refuse listening options no server can honour, before any work.
pub(super) fn check_listen(http: &Listen) -> anyhow::Result<()> {
    if http.max_concurrent == 0 {
        return Err(usage("--max-concurrent must be at least 1"));
    }
    Ok(())
}

/// Serve `backend` over HTTP as `http` says, until SIGINT or SIGTERM and
/// the requests in flight finish; `doing` says what, on stderr. The keys
/// and the URL file live in the state directory. Returns the URL served.
pub(super) fn serve_http<B: server::Backend>(
    cx: &Context,
    http: &Listen,
    backend: Arc<B>,
    config: server::ServerConfig,
    doing: &str,
) -> anyhow::Result<String> {
    let keys = wire::keys::Keys::load_or_create(&cx.dir.join(KEYS)).context("loading the server's keys")?;
    let config = server::ServerConfig {
        max_concurrent: http.max_concurrent,
        max_body_bytes: http.max_body_bytes,
        request_timeout: Duration::from_secs(http.request_timeout.max(1)),
        ..config
    };
    let runtime = tokio::runtime::Builder::new_multi_thread().enable_all().build().context("starting the runtime")?;
    let url_file = cx.dir.join(URL_FILE);
    let served = runtime.block_on(async {
        let listener = server::bind(http.listen).await?;
        let addr = listener.local_addr().context("reading the bound address")?;
        let url = format!("http://{addr}");
        std::fs::write(&url_file, &url).with_context(|| format!("writing {}", url_file.display()))?;
        if let Some(path) = &http.port_file {
            std::fs::write(path, addr.port().to_string()).with_context(|| format!("writing {}", path.display()))?;
        }
        if !cx.quiet {
            eprintln!("{doing} at {url} (state directory {}); stop with Ctrl-C", cx.dir.display());
        }
        let router = server::router(backend, keys, config)?;
        server::serve(listener, router, shutdown_signal()).await?;
        anyhow::Ok(url)
    });
    let _ = std::fs::remove_file(&url_file);
    drop(runtime);
    served
}

/// SIGINT or SIGTERM.
async fn shutdown_signal() {
    use tokio::signal::unix::{SignalKind, signal};
    let (Ok(mut term), Ok(mut int)) = (signal(SignalKind::terminate()), signal(SignalKind::interrupt())) else {
        // Without signal handlers the server runs until killed.
        return std::future::pending().await;
    };
    tokio::select! {
        _ = term.recv() => {}
        _ = int.recv() => {}
    }
}
