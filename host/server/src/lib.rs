//! `canister-host serve`: the IC's HTTP interface (as the interface
//! specification describes it) over a [`canister_host::Host`] (or a read
//! replica of one, which refuses calls: see [`Backend`]), so agent-js, ic-agent and
//! icp-cli talk to this host unchanged.
//!
//! - `GET /api/v2/status`: the root key, health;
//! - `POST /api/v2/canister/<id>/call`: asynchronous (202);
//! - `POST /api/{v3,v4}/canister/<id>/call`: synchronous, answered with a
//!   certificate once the round is durable (202 if it takes too long);
//! - `POST /api/{v2,v3}/canister/<id>/query`: signed by the node key;
//! - `POST /api/{v2,v3}/canister/<id>/read_state` (and `subnet/<id>`):
//!   certificates of time, request statuses, canister facts, the subnet;
//! - `GET /metrics`: Prometheus text (the host's and the server's);
//! - anything else: the HTTP gateway, a canister's `http_request` for
//!   `<id>.localhost` or `?canister=<id>`.
//!
//! Nothing is acknowledged before the host has made it durable: a call's
//! status says `replied` only once its round is in the synced log.

mod backend;
mod calls;
mod errors;
mod gateway;
mod ingress;
mod journal;
mod metrics;
mod queries;
mod read_state;
mod stand_ins;
mod statuses;

use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;

use axum::Router;
use axum::extract::{DefaultBodyLimit, Request, State};
use axum::http::{Method, StatusCode};
use axum::middleware::{self, Next};
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post};
use tower_http::cors::{Any, CorsLayer};
use wire::keys::Keys;
use wire::signer::Signer;

pub use backend::Backend;
pub use errors::ServeError;
use statuses::Statuses;

/// Limits and timeouts.
#[derive(Clone, Debug)]
pub struct ServerConfig {
    /// Largest request body, bytes (the IC's ingress limit is 2 MiB of
    /// argument; the envelope adds a little).
    pub max_body_bytes: usize,
    /// Requests served at once; more get 429, which agents retry.
    pub max_concurrent: usize,
    /// How long a synchronous call waits for its round before answering
    /// 202 (the client then polls).
    pub sync_call_timeout: Duration,
    /// How long a request status is kept after the call finished.
    pub status_retention: Duration,
    /// Most request statuses kept (oldest finished ones go first).
    pub max_statuses: usize,
    /// Where finished request statuses are journaled so they survive a
    /// restart (`None`: kept in memory only).
    pub statuses_journal: Option<std::path::PathBuf>,
    /// Longest any request may take; past it the server answers 503 and
    /// the client retries (a call already started keeps running).
    pub request_timeout: Duration,
    /// More metrics `/metrics` serves beside the host's and the server's
    /// (shipping to a store, say).
    pub extra_metrics: Option<canister_host::prometheus::Registry>,
}

impl Default for ServerConfig {
    fn default() -> Self {
        ServerConfig {
            max_body_bytes: (2 << 20) + (256 << 10),
            max_concurrent: 256,
            sync_call_timeout: Duration::from_secs(10),
            status_retention: wire::envelope::MAX_INGRESS_TTL + wire::envelope::PERMITTED_DRIFT,
            max_statuses: 100_000,
            request_timeout: Duration::from_secs(60),
            statuses_journal: None,
            extra_metrics: None,
        }
    }
}

/// What every handler shares.
pub(crate) struct Shared {
    pub host: Arc<dyn Backend>,
    /// The keys, and the group signer of certificates.
    pub signer: Signer,
    pub statuses: Statuses,
    pub config: ServerConfig,
    pub permits: tokio::sync::Semaphore,
    pub metrics: metrics::ServerMetrics,
}

/// The router over `host` (a [`canister_host::Host`], or another
/// [`Backend`]), signing with `keys`. Fails only if the request-status
/// journal cannot be read or rewritten.
pub fn router<B: Backend>(host: Arc<B>, keys: Keys, config: ServerConfig) -> Result<Router, ServeError> {
    let statuses = match &config.statuses_journal {
        Some(path) => Statuses::journaled(config.status_retention, config.max_statuses, path)
            .map_err(|source| ServeError::Journal { path: path.clone(), source })?,
        None => Statuses::new(config.status_retention, config.max_statuses),
    };
    let shared = Arc::new(Shared {
        host: host as Arc<dyn Backend>,
        signer: Signer::new(keys),
        statuses,
        permits: tokio::sync::Semaphore::new(config.max_concurrent),
        config: config.clone(),
        metrics: metrics::ServerMetrics::new(),
    });
    let router = Router::new()
        .route("/api/v2/status", get(read_state::status))
        .route("/api/v2/canister/{id}/call", post(calls::call_v2))
        .route("/api/v3/canister/{id}/call", post(calls::call_sync))
        .route("/api/v4/canister/{id}/call", post(calls::call_sync))
        .route("/api/v4/subnet/{id}/call", post(calls::call_sync))
        .route("/api/v2/canister/{id}/query", post(queries::query))
        .route("/api/v3/canister/{id}/query", post(queries::query))
        .route("/api/v2/canister/{id}/read_state", post(read_state::canister))
        .route("/api/v3/canister/{id}/read_state", post(read_state::canister))
        .route("/api/v2/subnet/{id}/read_state", post(read_state::subnet))
        .route("/api/v3/subnet/{id}/read_state", post(read_state::subnet))
        .route("/metrics", get(metrics::metrics))
        .fallback(gateway::serve)
        .layer(DefaultBodyLimit::max(config.max_body_bytes))
        .layer(middleware::from_fn_with_state(config.max_body_bytes, refuse_oversized))
        .layer(middleware::from_fn_with_state(config.request_timeout, time_limit))
        .layer(middleware::from_fn_with_state(shared.clone(), metrics::record))
        .layer(cors())
        .with_state(shared);
    Ok(router)
}

/// Browsers may call from any origin, as they may call the IC's boundary
/// nodes: a front-end on its own dev server talks to this host directly.
fn cors() -> CorsLayer {
    CorsLayer::new()
        .allow_origin(Any)
        .allow_methods([Method::GET, Method::POST, Method::HEAD, Method::OPTIONS])
        .allow_headers(Any)
        .expose_headers(Any)
        .max_age(Duration::from_secs(7200))
}

/// Bodies up to this size are read (and discarded as they come, never
/// buffered) before an oversized
/// request is refused, so the client, still sending, reads the 413 instead
/// of a broken connection. Larger ones are refused at once.
const DRAIN_BYTES: u64 = 64 << 20;

/// Middleware: answer 413 to a request declaring a body over `max` bytes,
/// after draining it if it is not huge.
async fn refuse_oversized(State(max): State<usize>, request: Request, next: Next) -> Response {
    let declared = request
        .headers()
        .get(axum::http::header::CONTENT_LENGTH)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.parse::<u64>().ok());
    match declared {
        Some(length) if length > max as u64 => {
            if length <= DRAIN_BYTES {
                drain(request.into_body()).await;
            }
            errors::ApiError::new(
                StatusCode::PAYLOAD_TOO_LARGE,
                format!("The request body is {length} bytes, over the limit of {max} bytes."),
            )
            .into_response()
        }
        _ => next.run(request).await,
    }
}

/// Read and drop `body`, up to [`DRAIN_BYTES`].
async fn drain(mut body: axum::body::Body) {
    use axum::body::HttpBody;
    let mut read = 0u64;
    while read <= DRAIN_BYTES {
        match std::future::poll_fn(|cx| std::pin::Pin::new(&mut body).poll_frame(cx)).await {
            Some(Ok(frame)) => read += frame.data_ref().map_or(0, |data| data.len() as u64),
            Some(Err(_)) | None => return,
        }
    }
}

/// Middleware: answer 503 to a request that takes longer than `limit`.
async fn time_limit(State(limit): State<Duration>, request: Request, next: Next) -> Response {
    match tokio::time::timeout(limit, next.run(request)).await {
        Ok(response) => response,
        Err(_) => errors::ApiError::new(
            StatusCode::SERVICE_UNAVAILABLE,
            format!("The request took longer than the server's limit of {} s: retry it.", limit.as_secs_f64()),
        )
        .into_response(),
    }
}

/// Serve `router` on `listener` until `shutdown` resolves, then finish the
/// requests in flight.
pub async fn serve(
    listener: tokio::net::TcpListener,
    router: Router,
    shutdown: impl std::future::Future<Output = ()> + Send + 'static,
) -> Result<(), ServeError> {
    axum::serve(listener, router).with_graceful_shutdown(shutdown).await.map_err(ServeError::Io)
}

/// Bind `addr` (port 0 picks a free one).
pub async fn bind(addr: SocketAddr) -> Result<tokio::net::TcpListener, ServeError> {
    tokio::net::TcpListener::bind(addr).await.map_err(|e| ServeError::Bind(addr, e))
}
