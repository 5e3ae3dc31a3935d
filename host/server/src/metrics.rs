//! `GET /metrics`: the host's metrics and the server's own (requests by
//! endpoint and status, and their latency), as Prometheus text.

use std::sync::{Arc, Mutex};
use std::time::Instant;

use axum::extract::{MatchedPath, Request, State};
use axum::http::{StatusCode, header};
use axum::middleware::Next;
use axum::response::{IntoResponse, Response};
use canister_host::prometheus::{
    self, Encoder, HistogramOpts, HistogramVec, IntCounter, IntCounterVec, Opts, Registry, TextEncoder,
};

use crate::Shared;

/// Bucket bounds (seconds): from a loopback query to a call that waited
/// for a slow round.
const BUCKETS: &[f64] =
    &[0.000_1, 0.000_25, 0.000_5, 0.001, 0.002_5, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0];

/// The server's metrics.
pub(crate) struct ServerMetrics {
    registry: Registry,
    latency: HistogramVec,
    responses: IntCounterVec,
    /// The signer's counts, brought up to date when gathered (under the
    /// lock, so two scrapes cannot both add the same difference).
    signing: Mutex<(IntCounter, IntCounter)>,
}

impl ServerMetrics {
    pub fn new() -> ServerMetrics {
        let registry = Registry::new();
        let latency = HistogramVec::new(
            HistogramOpts::new(
                "canister_host_http_request_duration_seconds",
                "Time to answer an HTTP request, by endpoint.",
            )
            .buckets(BUCKETS.to_vec()),
            &["endpoint"],
        )
        .expect("valid histogram options");
        let responses = IntCounterVec::new(
            Opts::new("canister_host_http_responses_total", "HTTP responses, by endpoint and status code."),
            &["endpoint", "status"],
        )
        .expect("valid counter options");
        let signatures = IntCounter::new(
            "canister_host_certificate_signatures_total",
            "BLS signatures made (certificates asked for together share one).",
        )
        .expect("valid counter options");
        let certificates =
            IntCounter::new("canister_host_certificates_total", "Certificates served.").expect("valid counter options");
        let metrics: [Box<dyn prometheus::core::Collector>; 4] = [
            Box::new(latency.clone()),
            Box::new(responses.clone()),
            Box::new(signatures.clone()),
            Box::new(certificates.clone()),
        ];
        for metric in metrics {
            registry.register(metric).expect("registered once");
        }
        ServerMetrics { registry, latency, responses, signing: Mutex::new((signatures, certificates)) }
    }
}

/// Middleware: time every request and count its status, labelled by the
/// route it matched (never by the raw URL, so labels stay bounded).
pub(crate) async fn record(State(s): State<Arc<Shared>>, request: Request, next: Next) -> Response {
    let endpoint = request.extensions().get::<MatchedPath>().map_or("unmatched", |p| p.as_str()).to_string();
    let started = Instant::now();
    let response = next.run(request).await;
    s.metrics.latency.with_label_values(&[&endpoint]).observe(started.elapsed().as_secs_f64());
    s.metrics.responses.with_label_values(&[endpoint.as_str(), response.status().as_str()]).inc();
    response
}

/// `GET /metrics`.
pub(crate) async fn metrics(State(s): State<Arc<Shared>>) -> Response {
    {
        let signing = s.metrics.signing.lock().unwrap_or_else(|e| e.into_inner());
        let (signatures, certificates) = s.signer.counts();
        signing.0.inc_by(signatures.saturating_sub(signing.0.get()));
        signing.1.inc_by(certificates.saturating_sub(signing.1.get()));
    }
    let mut families = s.host.gather_metrics();
    families.extend(s.metrics.registry.gather());
    if let Some(extra) = &s.config.extra_metrics {
        families.extend(extra.gather());
    }
    let mut text = Vec::new();
    match TextEncoder::new().encode(&families, &mut text) {
        Ok(()) => ([(header::CONTENT_TYPE, prometheus::TEXT_FORMAT)], text).into_response(),
        Err(e) => (StatusCode::INTERNAL_SERVER_ERROR, format!("cannot encode the metrics: {e}")).into_response(),
    }
}
