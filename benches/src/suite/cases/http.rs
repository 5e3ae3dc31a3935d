//! Messages over the IC's HTTP interface (`canister-host serve`'s router on
//! loopback), from a plain HTTP client: envelope encoding, the request,
//! the server's checks, the host, the certificate or signed reply.
//!
//! - `http/update_call`: one empty update through the synchronous
//!   `/api/v3/.../call` (answered once its round is durable, with fsync),
//!   beside `host/update_call_fsync`, the same call in-process;
//! - `http/query_call`: one empty query through `/api/v3/.../query`
//!   (signed by the node key), beside `host/query_call`.
//!
//! The client sends anonymous envelopes and checks the answer's status; it
//! does not verify certificates (an agent's cost, not the server's).

use std::sync::Arc;
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use canister_host::{Host, Principal};
use ic_transport_types::{Envelope, EnvelopeContent};

use super::{BenchError, OWNER, Runner, host_config, install, open_host};
use crate::suite::error::CaseContext;

const UPDATE: &str = "http/update_call";
const QUERY: &str = "http/query_call";
/// The in-process figures beside them.
const HOST_UPDATE: &str = "host/update_call_fsync";
const HOST_QUERY: &str = "host/query_call";

pub(super) fn run(r: &mut Runner) -> Result<(), BenchError> {
    if !r.any(&[UPDATE.to_string(), QUERY.into()]) {
        return Ok(());
    }
    let host = Arc::new(open_host(r, UPDATE, host_config(true, 1))?);
    let id = install(&host, UPDATE, canisters::BENCH, vec![])?;
    // The in-process figures, unless this run has them already (a
    // filtered run may select only these cases).
    if !r.has(HOST_UPDATE) {
        r.latency(HOST_UPDATE, &[], || host.update_call(id, OWNER, "empty", vec![]).map(drop).case(HOST_UPDATE))?;
    }
    if !r.has(HOST_QUERY) {
        r.latency(HOST_QUERY, &[], || host.query_call(id, OWNER, "empty_query", vec![]).map(drop).case(HOST_QUERY))?;
    }
    let server = Served::start(host).case(UPDATE)?;
    let client = reqwest::blocking::Client::new();
    let mut nonce = 0u64;
    r.latency(UPDATE, &[HOST_UPDATE], || {
        // A fresh nonce: the same request twice is answered from its status.
        nonce += 1;
        let content = EnvelopeContent::Call {
            nonce: Some(nonce.to_le_bytes().to_vec()),
            ingress_expiry: expiry(),
            sender: Principal::anonymous(),
            canister_id: id,
            method_name: "empty".into(),
            arg: vec![],
            sender_info: None,
        };
        post(&client, &format!("{}/api/v3/canister/{id}/call", server.url), content).case(UPDATE)
    })?;
    r.latency(QUERY, &[HOST_QUERY], || {
        let content = EnvelopeContent::Query {
            ingress_expiry: expiry(),
            sender: Principal::anonymous(),
            canister_id: id,
            method_name: "empty_query".into(),
            arg: vec![],
            nonce: None,
            sender_info: None,
        };
        post(&client, &format!("{}/api/v3/canister/{id}/query", server.url), content).case(QUERY)
    })?;
    Ok(())
}

/// Two minutes from now, as agents set it.
fn expiry() -> u64 {
    let now = SystemTime::now().duration_since(UNIX_EPOCH).unwrap_or_default();
    (now + Duration::from_secs(120)).as_nanos() as u64
}

/// The answer's `status` field.
#[derive(serde::Deserialize)]
struct Answer {
    status: String,
}

/// POST an anonymous envelope of `content`; fails unless the answer says
/// `replied`.
fn post(client: &reqwest::blocking::Client, url: &str, content: EnvelopeContent) -> Result<(), String> {
    let envelope = Envelope {
        content: std::borrow::Cow::Owned(content),
        sender_pubkey: None,
        sender_sig: None,
        sender_delegation: None,
    };
    let response = client
        .post(url)
        .header("content-type", "application/cbor")
        .body(envelope.encode_bytes())
        .send()
        .map_err(|e| format!("POST {url}: {e}"))?;
    let status = response.status();
    let body = response.bytes().map_err(|e| format!("reading the answer: {e}"))?;
    if status != reqwest::StatusCode::OK {
        return Err(format!("POST {url}: {status}: {}", String::from_utf8_lossy(&body)));
    }
    let answer: Answer = serde_cbor::from_slice(&body).map_err(|e| format!("the answer is not CBOR: {e}"))?;
    match answer.status.as_str() {
        "replied" => Ok(()),
        other => Err(format!("POST {url}: status {other}")),
    }
}

/// The server on a loopback port, on its own runtime, until dropped.
struct Served {
    url: String,
    runtime: Option<tokio::runtime::Runtime>,
    stop: Option<tokio::sync::oneshot::Sender<()>>,
}

impl Served {
    fn start(host: Arc<Host>) -> Result<Served, String> {
        let runtime = tokio::runtime::Builder::new_multi_thread()
            .enable_all()
            .build()
            .map_err(|e| format!("cannot start a runtime: {e}"))?;
        let keys = wire::keys::Keys::from_secret(&[7; 64]);
        let router = server::router(host, keys, server::ServerConfig::default()).map_err(|e| e.to_string())?;
        let listener = runtime
            .block_on(server::bind("127.0.0.1:0".parse().expect("a socket address")))
            .map_err(|e| e.to_string())?;
        let url = format!("http://{}", listener.local_addr().map_err(|e| e.to_string())?);
        let (stop, stopped) = tokio::sync::oneshot::channel::<()>();
        runtime.spawn(server::serve(listener, router, async move {
            let _ = stopped.await;
        }));
        Ok(Served { url, runtime: Some(runtime), stop: Some(stop) })
    }
}

impl Drop for Served {
    fn drop(&mut self) {
        if let Some(stop) = self.stop.take() {
            let _ = stop.send(());
        }
        if let Some(runtime) = self.runtime.take() {
            runtime.shutdown_timeout(Duration::from_secs(5));
        }
    }
}
