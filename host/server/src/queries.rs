//! Queries: run on the committed state, answered with the node key's
//! signature (agents verify it by default).

use std::sync::Arc;

use axum::body::Bytes;
use axum::extract::{Path, State};
use axum::http::{HeaderMap, StatusCode};
use axum::response::{IntoResponse, Response};
use wire::Principal;
use wire::RejectCode;
use wire::certificate::Tree;
use wire::envelope::RequestKind;
use wire::query::{QueryOutcome, signed_response};

use crate::Shared;
use crate::calls::status_of;
use crate::errors::{ApiError, cbor};
use crate::ingress::{accept, permit};
use crate::stand_ins::StandIn;
use crate::statuses::Status;

/// `POST /api/{v2,v3}/canister/<id>/query`.
pub(crate) async fn query(
    State(s): State<Arc<Shared>>,
    Path(id): Path<String>,
    headers: HeaderMap,
    body: Bytes,
) -> Response {
    let _permit = match permit(&s.permits) {
        Ok(p) => p,
        Err(e) => return e.into_response(),
    };
    let (request, url_id) = match accept(&headers, &body, RequestKind::Query, &id) {
        Ok(accepted) => accepted,
        Err(e) => return e.into_response(),
    };
    let canister = request.canister_id().unwrap_or(url_id);
    let sender = request.sender();
    let Some((method, arg)) = request.method_and_arg().map(|(m, a)| (m.to_string(), a.to_vec())) else {
        return ApiError::bad_request("a query needs a method and an argument").into_response();
    };
    let shared = s.clone();
    let result = tokio::task::spawn_blocking(move || {
        if let Some(stand_in) = StandIn::of(&*shared.host, canister, &method).filter(|s| s.is_query()) {
            return stand_in.call(&*shared.host, shared.signer.keys().subnet_id(), sender, &arg);
        }
        if canister == Principal::management_canister() {
            // ic-utils asks for canister_status as a query; the host
            // answers it from the committed state like an update.
            return shared.host.management(sender, &method, arg);
        }
        shared.host.query(canister, sender, &method, arg, Some(certifier(&shared)))
    })
    .await;
    let outcome = match result.map(status_of) {
        Ok(Some(Status::Replied(reply))) => QueryOutcome::Reply(reply),
        Ok(Some(Status::Rejected { code, message, error_code })) => QueryOutcome::Reject {
            code: RejectCode::try_from(code).unwrap_or(RejectCode::CanisterError),
            message,
            error_code,
        },
        Ok(Some(Status::Processing) | None) | Err(_) => {
            return ApiError::new(StatusCode::SERVICE_UNAVAILABLE, "The host could not run the query: retry it.")
                .into_response();
        }
    };
    cbor(StatusCode::OK, signed_response(outcome, request.request_id, wire::envelope::now_ns(), s.signer.keys()))
}

/// What gives a query a certificate of its canister's certified data,
/// signed by the root key, so certified variables work.
pub(crate) fn certifier(s: &Arc<Shared>) -> canister_host::Certifier {
    let shared = s.clone();
    Arc::new(move |id: Principal, data: &[u8]| {
        let mut tree = Tree::new();
        tree.insert(&[b"canister".as_slice(), id.as_slice(), b"certified_data"], data.to_vec());
        shared.signer.certify(tree)
    })
}
