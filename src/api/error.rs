//! The envelope every JSON answer is in, and the errors a handler returns.

use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use axum::Json;
use serde::Serialize;

use crate::store::StoreError;

/// `{"code": <http status>, "message", "data"}`.
#[derive(Serialize)]
struct Envelope<T> {
    code: u16,
    message: String,
    data: T,
}

/// An answer with `status` and `message` around `data`.
pub fn envelope<T: Serialize>(status: StatusCode, message: &str, data: T) -> Response {
    let body = Envelope {
        code: status.as_u16(),
        message: message.to_string(),
        data,
    };
    (status, Json(body)).into_response()
}

/// A 200 answer around `data`.
pub fn ok<T: Serialize>(data: T) -> Response {
    envelope(StatusCode::OK, "ok", data)
}

/// Why a request failed; each becomes its status in the envelope with `data: null`.
#[derive(Debug)]
pub enum ApiError {
    BadRequest(&'static str),
    /// A 400 whose message says what is wrong with the request's body.
    Invalid(String),
    Unauthorized(&'static str),
    Forbidden(&'static str),
    NotFound(&'static str),
    /// A 409: the request names a state that is no longer so.
    Conflict(String),
    /// A body over the limit (bytes).
    TooLarge(u64),
    /// Logged with its detail; the answer says only that it failed.
    Internal(String),
}

impl From<StoreError> for ApiError {
    fn from(e: StoreError) -> Self {
        ApiError::Internal(e.to_string())
    }
}

impl IntoResponse for ApiError {
    fn into_response(self) -> Response {
        let (status, message) = match self {
            ApiError::BadRequest(m) => (StatusCode::BAD_REQUEST, m.to_string()),
            ApiError::Invalid(m) => (StatusCode::BAD_REQUEST, m),
            ApiError::Unauthorized(m) => (StatusCode::UNAUTHORIZED, m.to_string()),
            ApiError::Forbidden(m) => (StatusCode::FORBIDDEN, m.to_string()),
            ApiError::NotFound(m) => (StatusCode::NOT_FOUND, m.to_string()),
            ApiError::Conflict(m) => (StatusCode::CONFLICT, m),
            ApiError::TooLarge(limit) => (
                StatusCode::PAYLOAD_TOO_LARGE,
                format!("request body over {limit} bytes"),
            ),
            ApiError::Internal(detail) => {
                tracing::error!("API: {detail}");
                (
                    StatusCode::INTERNAL_SERVER_ERROR,
                    "internal error; see the node's log".to_string(),
                )
            }
        };
        envelope(status, &message, ())
    }
}
