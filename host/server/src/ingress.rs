//! What every POST goes through before it reaches the host: content type,
//! envelope, effective canister id, expiry, sender.

use axum::http::{HeaderMap, StatusCode, header};
use wire::Principal;
use wire::envelope::{self, Request, RequestKind};

use crate::errors::ApiError;

/// The request in `body`, sent to the endpoint of `kind` for effective
/// canister (or subnet) id `url_id`, checked.
pub(crate) fn accept(
    headers: &HeaderMap,
    body: &[u8],
    kind: RequestKind,
    url_id: &str,
) -> Result<(Request, Principal), ApiError> {
    let content_type = headers.get(header::CONTENT_TYPE).and_then(|v| v.to_str().ok()).unwrap_or("");
    if !content_type.eq_ignore_ascii_case("application/cbor") {
        return Err(ApiError::bad_request("Unexpected content-type, expected application/cbor."));
    }
    let url_id = Principal::from_text(url_id)
        .map_err(|e| ApiError::bad_request(format!("Invalid effective canister id {url_id:?} in the URL: {e}")))?;
    let request = envelope::decode(body, kind)?;
    envelope::check_effective_canister(&request, url_id)?;
    let now = envelope::now_ns();
    envelope::check_expiry(&request, now)?;
    wire::auth::authenticate(&request, now)?;
    Ok((request, url_id))
}

/// A permit to serve one more request, or 429 (agents retry it).
pub(crate) fn permit(permits: &tokio::sync::Semaphore) -> Result<tokio::sync::SemaphorePermit<'_>, ApiError> {
    permits.try_acquire().map_err(|_| {
        ApiError::new(StatusCode::TOO_MANY_REQUESTS, "The server is handling too many requests: retry shortly.")
    })
}
