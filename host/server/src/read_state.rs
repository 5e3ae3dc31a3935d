//! `GET /api/v2/status` and `read_state`: certificates of the parts of the
//! state tree a client asks for.
//!
//! Served paths: `time`; `subnet` (this host's one subnet: its public
//! key, canister ranges and node key, which agents need to verify query
//! signatures); `request_status/<id>`; `canister/<id>/{module_hash,
//! controllers, metadata/<name>}`. Anything else is 404, as on the IC.

use std::sync::Arc;

use axum::body::Bytes;
use axum::extract::{Path, State};
use axum::http::{HeaderMap, StatusCode};
use axum::response::{IntoResponse, Response};
use serde::Serialize;
use wire::Principal;
use wire::certificate::{Tree, leb128};
use wire::envelope::{Request, RequestKind};

use crate::Shared;
use crate::errors::{ApiError, cbor};
use crate::ingress::{accept, permit};
use crate::statuses::{RequestId, Status};

/// The status endpoint's body.
#[derive(Serialize)]
struct StatusBody {
    impl_version: &'static str,
    #[serde(with = "serde_bytes")]
    root_key: Vec<u8>,
    replica_health_status: &'static str,
}

/// `GET /api/v2/status`.
pub(crate) async fn status(State(s): State<Arc<Shared>>) -> Response {
    let body = StatusBody {
        impl_version: concat!("canister-host ", env!("CARGO_PKG_VERSION")),
        root_key: s.signer.keys().root_key_der().to_vec(),
        replica_health_status: "healthy",
    };
    cbor(StatusCode::OK, wire::to_cbor(&body))
}

#[derive(Serialize)]
struct ReadStateBody {
    #[serde(with = "serde_bytes")]
    certificate: Vec<u8>,
}

/// `POST /api/{v2,v3}/canister/<id>/read_state`.
pub(crate) async fn canister(
    State(s): State<Arc<Shared>>,
    Path(id): Path<String>,
    headers: HeaderMap,
    body: Bytes,
) -> Response {
    respond(s, id, headers, body, true).await
}

/// `POST /api/{v2,v3}/subnet/<id>/read_state`.
pub(crate) async fn subnet(
    State(s): State<Arc<Shared>>,
    Path(id): Path<String>,
    headers: HeaderMap,
    body: Bytes,
) -> Response {
    respond(s, id, headers, body, false).await
}

async fn respond(s: Arc<Shared>, id: String, headers: HeaderMap, body: Bytes, canister_endpoint: bool) -> Response {
    let _permit = match permit(&s.permits) {
        Ok(p) => p,
        Err(e) => return e.into_response(),
    };
    // Signing blocks (it may wait for a signature in progress).
    let shared = s.clone();
    let result = tokio::task::spawn_blocking(move || {
        let (request, url_id) = accept(&headers, &body, RequestKind::ReadState, &id)?;
        let tree = tree_for(&shared, &request, canister_endpoint.then_some(url_id))?;
        Ok::<_, ApiError>(shared.signer.certify(tree))
    })
    .await;
    match result {
        Ok(Ok(certificate)) => cbor(StatusCode::OK, wire::to_cbor(&ReadStateBody { certificate })),
        Ok(Err(e)) => e.into_response(),
        Err(_) => ApiError::new(StatusCode::INTERNAL_SERVER_ERROR, "read_state failed (a bug).").into_response(),
    }
}

/// The tree holding every path `request` asks for.
fn tree_for(s: &Shared, request: &Request, effective: Option<Principal>) -> Result<Tree, ApiError> {
    let wire::envelope::Request { envelope, .. } = request;
    let paths = match envelope.content.as_ref() {
        wire::envelope::EnvelopeContent::ReadState { paths, .. } => paths,
        _ => return Err(ApiError::bad_request("not a read_state request")),
    };
    let mut tree = Tree::new();
    let mut request_ids: Vec<Vec<u8>> = Vec::new();
    for path in paths {
        let labels: Vec<&[u8]> = path.iter().map(|l| l.as_bytes()).collect();
        match labels.as_slice() {
            [] => return Err(invalid_path()),
            [b"time"] => {}
            [b"subnet", ..] => add_subnet(s, &mut tree),
            [b"canister_ranges", ..] | [b"api_boundary_nodes", ..] => tree.ensure(&labels[..1]),
            [b"request_status", id, ..] => {
                if !request_ids.iter().any(|r| r == id) {
                    request_ids.push(id.to_vec());
                }
                if request_ids.len() > 1 {
                    return Err(ApiError::bad_request("A read_state request may ask about one request id only."));
                }
                let id: RequestId = (*id).try_into().map_err(|_| invalid_path())?;
                match s.statuses.get(&id) {
                    Some((sender, _)) if sender != request.sender() => {
                        return Err(ApiError::new(
                            StatusCode::FORBIDDEN,
                            "The user tries to access Request ID not signed by the caller.",
                        ));
                    }
                    Some((_, status)) => add_status(&mut tree, id, &status),
                    None => tree.ensure(&[b"request_status".as_slice()]),
                }
            }
            [b"canister", id, rest @ ..] => {
                let canister = Principal::try_from_slice(id).map_err(|_| invalid_path())?;
                if effective.is_some_and(|e| e != canister) {
                    return Err(ApiError::bad_request(format!(
                        "Effective canister id in the URL does not match the requested canister {canister}"
                    )));
                }
                add_canister(s, &mut tree, canister, rest, request.sender())?;
            }
            _ => return Err(invalid_path()),
        }
    }
    Ok(tree)
}

fn invalid_path() -> ApiError {
    ApiError::new(StatusCode::NOT_FOUND, "Invalid path requested.")
}

/// The whole `subnet` subtree: one subnet (this host), one node.
fn add_subnet(s: &Shared, tree: &mut Tree) {
    let keys = s.signer.keys();
    let sid = keys.subnet_id();
    let sid = sid.as_slice();
    tree.insert(&[b"subnet".as_slice(), sid, b"public_key"], keys.root_key_der().to_vec());
    // Every canister id this host can hand out: ids are 8 bytes then 0x01 0x01.
    let low = Principal::from_slice(&[0, 0, 0, 0, 0, 0, 0, 0, 1, 1]);
    let high = Principal::from_slice(&[0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 1, 1]);
    tree.insert(&[b"subnet".as_slice(), sid, b"canister_ranges"], wire::to_cbor(&vec![(low, high)]));
    let nid = keys.node_id();
    tree.insert(&[b"subnet".as_slice(), sid, b"node", nid.as_slice(), b"public_key"], keys.node_key_der().to_vec());
}

/// `request_status/<id>/...` for a known request.
fn add_status(tree: &mut Tree, id: RequestId, status: &Status) {
    let at = |leaf: &'static str| [b"request_status".as_slice(), &id, leaf.as_bytes()];
    match status {
        Status::Processing => tree.insert(&at("status"), b"processing".to_vec()),
        Status::Replied(reply) => {
            tree.insert(&at("status"), b"replied".to_vec());
            tree.insert(&at("reply"), reply.clone());
        }
        Status::Rejected { code, message, error_code } => {
            tree.insert(&at("status"), b"rejected".to_vec());
            tree.insert(&at("reject_code"), leb128(*code));
            tree.insert(&at("reject_message"), message.as_bytes().to_vec());
            tree.insert(&at("error_code"), error_code.as_bytes().to_vec());
        }
    }
}

/// The certificate a synchronous call answers with (signing: call it on
/// a blocking thread).
pub(crate) fn certify_status(s: &Shared, id: RequestId, status: &Status) -> Vec<u8> {
    let mut tree = Tree::new();
    add_status(&mut tree, id, status);
    s.signer.certify(tree)
}

/// `canister/<id>/<rest>` facts, for a canister that exists.
fn add_canister(s: &Shared, tree: &mut Tree, id: Principal, rest: &[&[u8]], sender: Principal) -> Result<(), ApiError> {
    let Some(info) = s.host.canister_info(id) else {
        tree.ensure(&[b"canister".as_slice()]);
        return Ok(());
    };
    let at = |leaf: &[u8]| vec![b"canister".to_vec(), id.as_slice().to_vec(), leaf.to_vec()];
    match rest {
        [b"module_hash", ..] => match &info.state.module {
            Some(module) => tree.insert(&at(b"module_hash"), module.hash.to_vec()),
            None => tree.ensure(&at(b"")[..2]),
        },
        [b"controllers", ..] => tree.insert(&at(b"controllers"), wire::to_cbor(&info.controllers)),
        [b"metadata", name, ..] => {
            let name = std::str::from_utf8(name).map_err(|_| invalid_path())?;
            tree.ensure(&at(b"metadata"));
            let Some(module) = &info.state.module else { return Ok(()) };
            match custom_section(&module.wasm, name) {
                Some((false, _)) if !info.controllers.contains(&sender) => {
                    return Err(ApiError::new(
                        StatusCode::FORBIDDEN,
                        format!("Custom section {name} can only be requested by the controllers of the canister."),
                    ));
                }
                Some((_, data)) => {
                    let mut path = at(b"metadata");
                    path.push(name.as_bytes().to_vec());
                    tree.insert(&path, data);
                }
                None => {}
            }
        }
        _ => return Err(invalid_path()),
    }
    Ok(())
}

/// The custom section `icp:public <name>` or `icp:private <name>`: whether
/// it is public, and its bytes.
fn custom_section(wasm: &[u8], name: &str) -> Option<(bool, Vec<u8>)> {
    for payload in wasmparser::Parser::new(0).parse_all(wasm) {
        if let Ok(wasmparser::Payload::CustomSection(reader)) = payload {
            let public = reader.name().strip_prefix("icp:public ").map(|n| (true, n));
            let private = reader.name().strip_prefix("icp:private ").map(|n| (false, n));
            if let Some((is_public, n)) = public.or(private)
                && n == name
            {
                return Some((is_public, reader.data().to_vec()));
            }
        }
    }
    None
}
