//! The HTTP gateway: plain HTTP requests answered by a canister's
//! `http_request` query, as the IC's boundary nodes answer
//! `https://<id>.icp0.io`. The canister is named by the host
//! (`<id>.localhost`, as dfx and PocketIC serve it) or by a `canister`
//! query parameter. A response asking to be upgraded (`upgrade = opt
//! true`) is sent again as the `http_request_update` update call.
//!
//! Responses are served **uncertified**: this gateway does not verify the
//! canister's response certification (`IC-Certificate` headers) as a
//! boundary node does, and says so in an `x-canister-host-certification`
//! header. Streaming callbacks are not followed: the first chunk is served.

use std::sync::Arc;

use axum::extract::{Request, State};
use axum::http::{HeaderMap, HeaderName, HeaderValue, StatusCode, header};
use axum::response::{IntoResponse, Response};
use candid::{CandidType, Decode, Deserialize, Encode};
use canister_host::CallError;
use wire::Principal;

use crate::Shared;
use crate::errors::ApiError;
use crate::ingress::permit;

/// What the canister gets: the IC's `HttpRequest` record.
#[derive(CandidType, Deserialize)]
struct HttpRequest {
    method: String,
    url: String,
    headers: Vec<(String, String)>,
    #[serde(with = "serde_bytes")]
    body: Vec<u8>,
    certificate_version: Option<u16>,
}

/// What it answers (the fields this gateway uses; Candid skips the rest,
/// such as `streaming_strategy`).
#[derive(CandidType, Deserialize)]
struct HttpResponse {
    status_code: u16,
    headers: Vec<(String, String)>,
    #[serde(with = "serde_bytes")]
    body: Vec<u8>,
    upgrade: Option<bool>,
}

/// Any request no API route matched.
pub(crate) async fn serve(State(s): State<Arc<Shared>>, request: Request) -> Response {
    let _permit = match permit(&s.permits) {
        Ok(p) => p,
        Err(e) => return e.into_response(),
    };
    let (parts, body) = request.into_parts();
    let canister = match canister_of(&parts.headers, parts.uri.query()) {
        Ok(canister) => canister,
        Err(e) => return e.into_response(),
    };
    let body = match axum::body::to_bytes(body, s.config.max_body_bytes).await {
        Ok(body) => body,
        Err(_) => {
            return ApiError::new(StatusCode::PAYLOAD_TOO_LARGE, "The request body is too large.").into_response();
        }
    };
    let request = HttpRequest {
        method: parts.method.as_str().to_string(),
        url: parts.uri.path_and_query().map_or("/", |p| p.as_str()).to_string(),
        headers: parts
            .headers
            .iter()
            .filter_map(|(name, value)| Some((name.as_str().to_string(), value.to_str().ok()?.to_string())))
            .collect(),
        body: body.to_vec(),
        certificate_version: Some(2),
    };
    let shared = s.clone();
    let answered = tokio::task::spawn_blocking(move || answer(&shared, canister, request)).await;
    match answered {
        Ok(Ok(response)) => into_response(response),
        Ok(Err(e)) => e.into_response(),
        Err(_) => ApiError::new(StatusCode::INTERNAL_SERVER_ERROR, "The gateway failed (a bug).").into_response(),
    }
}

/// The canister a request is for: `<id>.localhost` (any port, any
/// subdomain of localhost ending in the id's labels), or `?canister=<id>`.
fn canister_of(headers: &HeaderMap, query: Option<&str>) -> Result<Principal, ApiError> {
    let from_query = query.into_iter().flat_map(|q| q.split('&')).find_map(|pair| pair.strip_prefix("canister="));
    if let Some(text) = from_query {
        return Principal::from_text(text)
            .map_err(|e| ApiError::bad_request(format!("The canister parameter {text:?} is not a canister id: {e}")));
    }
    let host = headers.get(header::HOST).and_then(|h| h.to_str().ok()).unwrap_or("");
    let name = host.rsplit_once(':').map_or(host, |(name, _port)| name);
    if let Some(sub) = name.strip_suffix(".localhost")
        && let Some(Ok(canister)) = sub.rsplit('.').next().map(Principal::from_text)
    {
        return Ok(canister);
    }
    Err(ApiError::new(
        StatusCode::NOT_FOUND,
        "No canister named: ask for http://<canister id>.localhost:<port>/... or add ?canister=<canister id>. \
         The IC HTTP interface is under /api/.",
    ))
}

/// Ask the canister, following an upgrade to an update call.
fn answer(s: &Arc<Shared>, canister: Principal, request: HttpRequest) -> Result<HttpResponse, ApiError> {
    s.host
        .canister_info(canister)
        .ok_or_else(|| ApiError::new(StatusCode::NOT_FOUND, format!("Canister {canister} not found on this host.")))?;
    let anonymous = Principal::anonymous();
    let arg = Encode!(&request).map_err(|e| internal(format!("cannot encode the request (a bug): {e}")))?;
    let reply = s
        .host
        .query(canister, anonymous, "http_request", arg, Some(crate::queries::certifier(s)))
        .map_err(|e| rejected(canister, "http_request", e))?;
    let response = decode(canister, "http_request", &reply)?;
    if response.upgrade != Some(true) {
        return Ok(response);
    }
    let update = HttpRequest { certificate_version: None, ..request };
    let arg = Encode!(&update).map_err(|e| internal(format!("cannot encode the request (a bug): {e}")))?;
    let reply = s
        .host
        .update(canister, anonymous, "http_request_update", arg)
        .map_err(|e| rejected(canister, "http_request_update", e))?;
    decode(canister, "http_request_update", &reply)
}

fn decode(canister: Principal, method: &str, reply: &[u8]) -> Result<HttpResponse, ApiError> {
    Decode!(reply, HttpResponse).map_err(|e| {
        ApiError::new(
            StatusCode::BAD_GATEWAY,
            format!("Canister {canister} answered {method} with something that is not an HttpResponse: {e}"),
        )
    })
}

fn rejected(canister: Principal, method: &str, error: CallError) -> ApiError {
    let status = match error {
        CallError::Unavailable(_) | CallError::NotApplied(_) => StatusCode::SERVICE_UNAVAILABLE,
        CallError::Rejected(_) | CallError::Failed { .. } => StatusCode::BAD_GATEWAY,
    };
    ApiError::new(status, format!("Canister {canister} could not answer {method}: {error}"))
}

fn internal(message: String) -> ApiError {
    ApiError::new(StatusCode::INTERNAL_SERVER_ERROR, message)
}

fn into_response(canister: HttpResponse) -> Response {
    let status = StatusCode::from_u16(canister.status_code).unwrap_or(StatusCode::BAD_GATEWAY);
    let mut response = (status, canister.body).into_response();
    let headers = response.headers_mut();
    // The canister's own headers win over defaults; ones HTTP cannot carry
    // are dropped rather than failing the page.
    headers.remove(header::CONTENT_TYPE);
    for (name, value) in canister.headers {
        if let (Ok(name), Ok(value)) = (HeaderName::try_from(name), HeaderValue::try_from(value))
            && name != header::CONTENT_LENGTH
        {
            headers.append(name, value);
        }
    }
    headers.insert("x-canister-host-certification", HeaderValue::from_static("unverified"));
    response
}
