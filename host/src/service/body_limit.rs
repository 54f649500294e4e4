//! The request body limit, enforced before a byte of the body is read.
//!
//! [`DefaultBodyLimit`](axum::extract::DefaultBodyLimit) cuts a body off once more than the
//! limit has arrived; a request that declares a larger body up front (`Content-Length:
//! 100000000000`) is refused here with 413 at once, instead of the service waiting for bytes
//! it would refuse anyway.

use axum::extract::{Request, State};
use axum::http::header::CONTENT_LENGTH;
use axum::middleware::Next;
use axum::response::{IntoResponse, Response};

use super::error::ApiError;

/// 413 for a request whose `Content-Length` is over `limit`; otherwise passes it on.
pub(super) async fn refuse_declared_oversize(
    State(limit): State<usize>,
    request: Request,
    next: Next,
) -> Response {
    let declared = request
        .headers()
        .get(CONTENT_LENGTH)
        .and_then(|value| value.to_str().ok())
        .and_then(|value| value.trim().parse::<u64>().ok());
    if declared.is_some_and(|length| length > u64::try_from(limit).unwrap_or(u64::MAX)) {
        return ApiError::PayloadTooLarge(limit).into_response();
    }
    next.run(request).await
}
