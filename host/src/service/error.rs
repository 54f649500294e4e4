//! [`ApiError`]: every error the service answers with, one status code each, and its JSON body.
//!
//! | Status | When |
//! |---|---|
//! | 200 | the kernel ran; the body has its result |
//! | 400 | malformed JSON or binary body, invalid UTF-8, invalid input values, a bad `X-Request-Timeout-Ms` |
//! | 401 | a protected route without a valid bearer token (`WWW-Authenticate: Bearer`) |
//! | 202 | a job was accepted (`POST /v1/jobs`), or a cancel will be carried out by the service running the job |
//! | 404 | unknown kernel, job or route |
//! | 409 | a cancel of a job that is over already |
//! | 413 | the body is over `server.body_limit_bytes` |
//! | 415 | a binary `Content-Type` the service cannot read (`application/octet-stream`, another `application/vnd.rustkernel.*` than [`kernels::BINARY_CONTENT_TYPE`](crate::kernels::BINARY_CONTENT_TYPE)); every other type is read as JSON |
//! | 429 | the concurrency limit, the client's rate limit or the retry budget shed the request (`Retry-After`) |
//! | 500 | the kernel failed (after retries) |
//! | 503 | the kernel's circuit breaker is open (`Retry-After`), or the service is draining |
//! | 504 | the request's deadline passed |

use std::time::Duration;

use axum::Json;
use axum::http::{HeaderValue, StatusCode, header};
use axum::response::{IntoResponse, Response};
use serde::{Deserialize, Serialize};

/// Every error the service answers with, and its status code.
#[derive(Debug)]
pub enum ApiError {
    /// 400.
    BadRequest(String),
    /// 401, with no detail.
    Unauthorized,
    /// 404.
    NotFound(String),
    /// 409: the request conflicts with the resource's state (a finished job cancelled).
    Conflict(String),
    /// 413.
    PayloadTooLarge(usize),
    /// 415: a body in a format the service does not read.
    UnsupportedMediaType(String),
    /// 429 with `Retry-After`.
    Shed {
        /// Why.
        reason: String,
        /// When to come back.
        retry_after: Duration,
    },
    /// 500: the kernel failed.
    KernelFailed(String),
    /// 500: the service itself failed.
    Internal(String),
    /// 503 with `Retry-After`: the breaker is open.
    CircuitOpen {
        /// The kernel.
        kernel: String,
        /// When to come back.
        retry_after: Duration,
    },
    /// 503: draining.
    Draining,
    /// 504.
    DeadlineExceeded(String),
}

/// The JSON body of an error.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct ErrorBody {
    /// A stable code: `bad_request`, `unauthorized`, `not_found`, `conflict`, `payload_too_large`,
    /// `unsupported_media_type`, `shed`, `kernel_failed`, `internal`, `circuit_open`,
    /// `draining`, `deadline_exceeded`.
    pub error: String,
    /// A human message.
    pub message: String,
}

impl ApiError {
    fn parts(&self) -> (StatusCode, &'static str, String) {
        match self {
            ApiError::BadRequest(message) => {
                (StatusCode::BAD_REQUEST, "bad_request", message.clone())
            }
            ApiError::Unauthorized => (
                StatusCode::UNAUTHORIZED,
                "unauthorized",
                "unauthorized".to_owned(),
            ),
            ApiError::NotFound(message) => (StatusCode::NOT_FOUND, "not_found", message.clone()),
            ApiError::Conflict(message) => (StatusCode::CONFLICT, "conflict", message.clone()),
            ApiError::PayloadTooLarge(limit) => (
                StatusCode::PAYLOAD_TOO_LARGE,
                "payload_too_large",
                format!("the body is over the limit of {limit} bytes"),
            ),
            ApiError::UnsupportedMediaType(message) => (
                StatusCode::UNSUPPORTED_MEDIA_TYPE,
                "unsupported_media_type",
                message.clone(),
            ),
            ApiError::Shed { reason, .. } => {
                (StatusCode::TOO_MANY_REQUESTS, "shed", reason.clone())
            }
            ApiError::KernelFailed(message) => (
                StatusCode::INTERNAL_SERVER_ERROR,
                "kernel_failed",
                message.clone(),
            ),
            ApiError::Internal(message) => (
                StatusCode::INTERNAL_SERVER_ERROR,
                "internal",
                message.clone(),
            ),
            ApiError::CircuitOpen { kernel, .. } => (
                StatusCode::SERVICE_UNAVAILABLE,
                "circuit_open",
                format!("the circuit breaker of {kernel} is open"),
            ),
            ApiError::Draining => (
                StatusCode::SERVICE_UNAVAILABLE,
                "draining",
                "the service is shutting down".to_owned(),
            ),
            ApiError::DeadlineExceeded(message) => (
                StatusCode::GATEWAY_TIMEOUT,
                "deadline_exceeded",
                message.clone(),
            ),
        }
    }

    /// The status code.
    #[must_use]
    pub fn status(&self) -> StatusCode {
        self.parts().0
    }
}

/// `Retry-After` in whole seconds, at least 1.
fn retry_after_value(wait: Duration) -> HeaderValue {
    let secs = if wait == Duration::MAX {
        3600
    } else {
        wait.as_secs() + u64::from(wait.subsec_nanos() > 0)
    };
    HeaderValue::from(secs.max(1))
}

impl IntoResponse for ApiError {
    fn into_response(self) -> Response {
        let (status, code, message) = self.parts();
        let mut response = (
            status,
            Json(ErrorBody {
                error: code.to_owned(),
                message,
            }),
        )
            .into_response();
        let headers = response.headers_mut();
        match &self {
            ApiError::Unauthorized => {
                headers.insert(
                    header::WWW_AUTHENTICATE,
                    HeaderValue::from_static("Bearer realm=\"rustkernel\""),
                );
            }
            ApiError::Shed { retry_after, .. } | ApiError::CircuitOpen { retry_after, .. } => {
                headers.insert(header::RETRY_AFTER, retry_after_value(*retry_after));
            }
            _ => {}
        }
        response
    }
}

/// Any other route: 404 with a JSON body.
pub(super) async fn not_found(uri: axum::http::Uri) -> Response {
    ApiError::NotFound(format!("no route {}", uri.path())).into_response()
}
