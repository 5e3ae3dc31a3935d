//! Update calls: `/api/v2/.../call` answers 202 at once; `/api/v3` and
//! `/api/v4` wait for the round to be durable and answer with a
//! certificate of the call's status (or 202 if it takes too long, and the
//! agent polls `read_state`).

use std::sync::Arc;

use axum::body::Bytes;
use axum::extract::{Path, State};
use axum::http::{HeaderMap, StatusCode};
use axum::response::{IntoResponse, Response};
use canister_host::CallError;
use serde::Serialize;
use wire::Principal;
use wire::envelope::{Request, RequestKind};

use crate::Shared;
use crate::errors::{ApiError, cbor};
use crate::ingress::{accept, permit};
use crate::read_state::certify_status;
use crate::stand_ins::StandIn;
use crate::statuses::{Admission, Status};

/// A rejection before the call ran: not certified, answered 200.
#[derive(Serialize)]
struct Rejection {
    #[serde(skip_serializing_if = "Option::is_none")]
    status: Option<&'static str>,
    reject_code: u64,
    reject_message: String,
    error_code: String,
}

/// The v3/v4 answer once the call finished.
#[derive(Serialize)]
struct Certified {
    status: &'static str,
    #[serde(with = "serde_bytes")]
    certificate: Vec<u8>,
}

/// `POST /api/v2/canister/<id>/call`.
pub(crate) async fn call_v2(
    State(s): State<Arc<Shared>>,
    Path(id): Path<String>,
    headers: HeaderMap,
    body: Bytes,
) -> Response {
    match start(&s, &id, &headers, &body) {
        Ok(_) => StatusCode::ACCEPTED.into_response(),
        Err(Refused::Api(e)) => e.into_response(),
        Err(Refused::Rejected(r)) => cbor(StatusCode::OK, wire::to_cbor(&r)),
    }
}

/// `POST /api/{v3,v4}/canister/<id>/call` (and the subnet form).
pub(crate) async fn call_sync(
    State(s): State<Arc<Shared>>,
    Path(id): Path<String>,
    headers: HeaderMap,
    body: Bytes,
) -> Response {
    let _permit = match permit(&s.permits) {
        Ok(p) => p,
        Err(e) => return e.into_response(),
    };
    let rid = match start(&s, &id, &headers, &body) {
        Ok(started) => started,
        Err(Refused::Api(e)) => return e.into_response(),
        Err(Refused::Rejected(r)) => {
            return cbor(StatusCode::OK, wire::to_cbor(&Rejection { status: Some("non_replicated_rejection"), ..r }));
        }
    };
    let deadline = tokio::time::Instant::now() + s.config.sync_call_timeout;
    loop {
        // Listen before looking, so a call finishing in between is not missed.
        let changed = s.statuses.changed.notified();
        match s.statuses.get(&rid) {
            Some((_, status)) if status.is_final() => {
                let shared = s.clone();
                let certified = tokio::task::spawn_blocking(move || certify_status(&shared, rid, &status)).await;
                return match certified {
                    Ok(certificate) => {
                        cbor(StatusCode::OK, wire::to_cbor(&Certified { status: "replied", certificate }))
                    }
                    Err(_) => ApiError::new(StatusCode::INTERNAL_SERVER_ERROR, "certifying the call failed (a bug)")
                        .into_response(),
                };
            }
            Some(_) => {}
            None => {
                return ApiError::new(StatusCode::SERVICE_UNAVAILABLE, "The host did not apply the call: retry it.")
                    .into_response();
            }
        }
        if tokio::time::timeout_at(deadline, changed).await.is_err() {
            return StatusCode::ACCEPTED.into_response();
        }
    }
}

enum Refused {
    Api(ApiError),
    Rejected(Rejection),
}

impl From<ApiError> for Refused {
    fn from(e: ApiError) -> Refused {
        Refused::Api(e)
    }
}

/// Check the request, then start it (unless it is a retry of one already
/// started). Returns its request id.
fn start(s: &Arc<Shared>, url_id: &str, headers: &HeaderMap, body: &[u8]) -> Result<[u8; 32], Refused> {
    let (request, url_id) = accept(headers, body, RequestKind::Call, url_id)?;
    if let Some(why) = s.host.refuses_calls() {
        // Not a canister's reject: the call never reached a host that
        // could run it, so the agent shows the message as an HTTP error.
        return Err(ApiError::new(StatusCode::FORBIDDEN, why).into());
    }
    let canister = request.canister_id().unwrap_or(url_id);
    let stand_in = request.method_and_arg().and_then(|(method, _)| StandIn::of(&*s.host, canister, method));
    if canister != Principal::management_canister() && stand_in.is_none() && s.host.canister_info(canister).is_none() {
        return Err(Refused::Rejected(Rejection {
            status: None,
            reject_code: 3,
            reject_message: format!("Canister {canister} not found"),
            error_code: "IC0301".into(),
        }));
    }
    let rid = *request.request_id;
    let sender = request.sender();
    match s.statuses.admit(rid, sender) {
        Admission::Known => {}
        Admission::Full => {
            return Err(ApiError::new(StatusCode::TOO_MANY_REQUESTS, "Too many calls in flight: retry shortly.").into());
        }
        Admission::New => {
            let s = s.clone();
            tokio::task::spawn_blocking(move || run(&s, request, canister, stand_in));
        }
    }
    Ok(rid)
}

/// Run the call on the host (or the stand-in that answers it), blocking
/// until its round is durable, and record how it ended.
fn run(s: &Shared, request: Request, canister: Principal, stand_in: Option<StandIn>) {
    let rid = *request.request_id;
    let sender = request.sender();
    let Some((method, arg)) = request.method_and_arg() else { return };
    let result = if canister == Principal::management_canister() {
        s.host.management(sender, method, arg.to_vec())
    } else if let Some(stand_in) = stand_in {
        stand_in.call(&*s.host, s.signer.keys().subnet_id(), sender, arg)
    } else {
        s.host.update(canister, sender, method, arg.to_vec())
    };
    match status_of(result) {
        Some(status) => s.statuses.finish(rid, status),
        // Nothing changed: forget it, so the agent's retry runs it.
        None => s.statuses.forget(&rid),
    }
}

/// A call's result as a request status; `None` if the host did not apply
/// it (it failed or stopped), so there is no outcome to certify.
pub(crate) fn status_of(result: Result<Vec<u8>, CallError>) -> Option<Status> {
    match result {
        Ok(reply) => Some(Status::Replied(reply)),
        Err(CallError::Rejected(message)) => Some(Status::Rejected { code: 4, message, error_code: "IC0406".into() }),
        Err(CallError::Failed { code, message }) => {
            Some(Status::Rejected { code: code.reject_code() as u64, message, error_code: code.to_string() })
        }
        Err(CallError::NotApplied(_) | CallError::Unavailable(_)) => None,
    }
}
