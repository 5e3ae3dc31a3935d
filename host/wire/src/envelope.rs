//! Request envelopes: decoding, the request id, and the checks that do not
//! need the state (request type, effective canister id, expiry window).

use std::borrow::Cow;
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use candid::Principal;
use ic_transport_types::RequestId;
pub use ic_transport_types::{Envelope, EnvelopeContent};

/// The longest an ingress message may live (the IC's `MAX_INGRESS_TTL`).
pub const MAX_INGRESS_TTL: Duration = Duration::from_secs(5 * 60);
/// Clock drift tolerated on top of it (`PERMITTED_DRIFT_AT_VALIDATOR`).
pub const PERMITTED_DRIFT: Duration = Duration::from_secs(30);

/// What kind of request a route takes.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum RequestKind {
    /// An update call.
    Call,
    /// A query.
    Query,
    /// A read of the certified state tree.
    ReadState,
}

impl RequestKind {
    fn name(self) -> &'static str {
        match self {
            RequestKind::Call => "call",
            RequestKind::Query => "query",
            RequestKind::ReadState => "read_state",
        }
    }
}

/// Why a request was refused before anything ran: each becomes a 4xx.
#[derive(Debug, thiserror::Error, PartialEq, Eq)]
pub enum RequestError {
    /// The body is not a CBOR request envelope.
    #[error("Could not parse body as a request envelope: {0}")]
    Malformed(String),
    /// The envelope's request type does not fit the endpoint.
    #[error("Wrong request type: this endpoint takes `{expected}` requests, the envelope holds `{found}`")]
    WrongKind {
        /// The endpoint's kind.
        expected: &'static str,
        /// The envelope's.
        found: &'static str,
    },
    /// The canister id in the content is not the one in the URL.
    #[error("Specified CanisterId {content} does not match effective canister id in URL {url}")]
    WrongCanister {
        /// The content's canister id.
        content: Principal,
        /// The URL's.
        url: Principal,
    },
    /// `ingress_expiry` is outside the window. The text starts as the IC's
    /// does: agents look for it to re-sync their clocks.
    #[error(
        "Invalid request expiry: Specified ingress_expiry not within expected range: Minimum allowed expiry: {min} UTC, Maximum allowed expiry: {max} UTC, Provided expiry: {provided} UTC"
    )]
    Expiry {
        /// The earliest acceptable expiry.
        min: String,
        /// The latest.
        max: String,
        /// The one sent.
        provided: String,
    },
}

/// A decoded request.
#[derive(Debug)]
pub struct Request {
    /// The envelope as sent.
    pub envelope: Envelope<'static>,
    /// Its request id.
    pub request_id: RequestId,
}

impl Request {
    /// The content.
    pub fn content(&self) -> &EnvelopeContent {
        &self.envelope.content
    }

    /// The sender the content names (authenticated by [`crate::auth`]).
    pub fn sender(&self) -> Principal {
        *self.content().sender()
    }

    /// The canister called, for calls and queries.
    pub fn canister_id(&self) -> Option<Principal> {
        match self.content() {
            EnvelopeContent::Call { canister_id, .. } | EnvelopeContent::Query { canister_id, .. } => {
                Some(*canister_id)
            }
            EnvelopeContent::ReadState { .. } => None,
        }
    }

    /// The method and argument, for calls and queries.
    pub fn method_and_arg(&self) -> Option<(&str, &[u8])> {
        match self.content() {
            EnvelopeContent::Call { method_name, arg, .. } | EnvelopeContent::Query { method_name, arg, .. } => {
                Some((method_name, arg))
            }
            EnvelopeContent::ReadState { .. } => None,
        }
    }
}

/// Decode a request body (CBOR, with or without the self-describe tag)
/// that an endpoint of `kind` received.
pub fn decode(body: &[u8], kind: RequestKind) -> Result<Request, RequestError> {
    let envelope: Envelope<'static> =
        serde_cbor::from_slice(body).map_err(|e| RequestError::Malformed(e.to_string()))?;
    let found = match envelope.content.as_ref() {
        EnvelopeContent::Call { .. } => RequestKind::Call,
        EnvelopeContent::Query { .. } => RequestKind::Query,
        EnvelopeContent::ReadState { .. } => RequestKind::ReadState,
    };
    if found != kind {
        return Err(RequestError::WrongKind { expected: kind.name(), found: found.name() });
    }
    let request_id = envelope.content.to_request_id();
    Ok(Request { envelope: Envelope { content: Cow::Owned(envelope.content.into_owned()), ..envelope }, request_id })
}

/// The effective canister id in the URL must be the canister called, except
/// for the management canister (whose calls name their target in the URL).
pub fn check_effective_canister(request: &Request, url: Principal) -> Result<(), RequestError> {
    match request.canister_id() {
        Some(content) if content != url && content != Principal::management_canister() => {
            Err(RequestError::WrongCanister { content, url })
        }
        _ => Ok(()),
    }
}

/// Nanoseconds since the Unix epoch, now.
pub fn now_ns() -> u64 {
    SystemTime::now().duration_since(UNIX_EPOCH).map_or(0, |d| d.as_nanos() as u64)
}

/// The expiry must lie in [now, now + 5 min + 30 s], as on the IC.
pub fn check_expiry(request: &Request, now_ns: u64) -> Result<(), RequestError> {
    let provided = request.content().ingress_expiry();
    let max = now_ns.saturating_add((MAX_INGRESS_TTL + PERMITTED_DRIFT).as_nanos() as u64);
    if provided < now_ns || provided > max {
        return Err(RequestError::Expiry { min: utc(now_ns), max: utc(max), provided: utc(provided) });
    }
    Ok(())
}

/// `ns` since the epoch as RFC 3339, to the second.
fn utc(ns: u64) -> String {
    let time = UNIX_EPOCH + Duration::from_nanos(ns);
    humantime::format_rfc3339_seconds(time).to_string()
}
