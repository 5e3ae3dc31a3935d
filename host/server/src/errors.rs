//! HTTP errors: a status and a plain-text reason, as the IC answers
//! requests it refuses before running them.

use std::net::SocketAddr;

use axum::http::{StatusCode, header};
use axum::response::{IntoResponse, Response};

/// Why the server could not start or stopped.
#[derive(Debug, thiserror::Error)]
pub enum ServeError {
    /// The address could not be bound.
    #[error("cannot listen on {0}: {1} (is another server using the port? try --listen 127.0.0.1:0)")]
    Bind(SocketAddr, std::io::Error),
    /// The request-status journal could not be read or rewritten.
    #[error(
        "cannot open the request-status journal {}: {source} (check the state directory's permissions and free space)",
        path.display()
    )]
    Journal {
        /// The journal.
        path: std::path::PathBuf,
        /// Why.
        source: std::io::Error,
    },
    /// Serving failed.
    #[error("serving failed: {0}")]
    Io(std::io::Error),
}

/// A refused request.
#[derive(Debug)]
pub(crate) struct ApiError {
    pub status: StatusCode,
    pub message: String,
}

impl ApiError {
    pub fn bad_request(message: impl std::fmt::Display) -> ApiError {
        ApiError { status: StatusCode::BAD_REQUEST, message: message.to_string() }
    }

    pub fn new(status: StatusCode, message: impl std::fmt::Display) -> ApiError {
        ApiError { status, message: message.to_string() }
    }
}

impl IntoResponse for ApiError {
    fn into_response(self) -> Response {
        (self.status, [(header::CONTENT_TYPE, "text/plain; charset=utf-8")], self.message).into_response()
    }
}

impl From<wire::envelope::RequestError> for ApiError {
    fn from(e: wire::envelope::RequestError) -> ApiError {
        ApiError::bad_request(e)
    }
}

impl From<wire::auth::AuthError> for ApiError {
    fn from(e: wire::auth::AuthError) -> ApiError {
        let status = match e {
            wire::auth::AuthError::NotATarget(_) => StatusCode::FORBIDDEN,
            _ => StatusCode::BAD_REQUEST,
        };
        ApiError::new(status, e)
    }
}

/// A CBOR response body.
pub(crate) fn cbor(status: StatusCode, body: Vec<u8>) -> Response {
    (status, [(header::CONTENT_TYPE, "application/cbor")], body).into_response()
}
