//! [`HttpError`]: the flat [`ResilienceError`] as an HTTP response.

use std::convert::Infallible;
use std::fmt;
use std::time::Duration;

use ::axum::response::{IntoResponse, Response};
use ::http::{HeaderValue, StatusCode, header};
use rustkernel_core::resilience::ResilienceError;

use crate::pipeline::Outcome;

/// A [`ResilienceError`] that answers as an HTTP response, with the time a rejected caller
/// should wait: the orphan rule keeps this crate from implementing axum's `IntoResponse` for
/// the core's error, so this newtype does, and `?` makes one (`From<ResilienceError<E>>`).
///
/// | Error | Response |
/// |---|---|
/// | `CircuitOpen` | `503 Service Unavailable`, `Retry-After` in whole seconds (at least 1) when the wait is known |
/// | `DeadlineExceeded`, `Timeout` | `504 Gateway Timeout` |
/// | `Operation(e)` | `e`'s own response (`E: IntoResponse`) |
///
/// The wait comes from the breaker: [`Outcome::into_http`] carries the pipeline's,
/// [`retry_after`](Self::retry_after) sets one by hand (from
/// [`CircuitBreaker::retry_after`](crate::breaker::CircuitBreaker::retry_after)), and the
/// [`HttpBreakerLayer`](super::HttpBreakerLayer) and
/// [`HttpPipelineLayer`](super::HttpPipelineLayer) fill it in themselves. A breaker forced open
/// with no end (`Duration::MAX`) gets no `Retry-After`.
///
/// ```
/// use std::time::Duration;
/// use axum::response::IntoResponse;
/// use rustkernel_tokio::axum::HttpError;
/// use rustkernel_tokio::resilience::ResilienceError;
///
/// let open = HttpError::<std::convert::Infallible>::from(ResilienceError::CircuitOpen)
///     .retry_after(Some(Duration::from_millis(2_500)))
///     .into_response();
/// assert_eq!(open.status(), 503);
/// assert_eq!(open.headers()["retry-after"], "3");
///
/// // An operation's own error answers as itself.
/// let bad: HttpError<(http::StatusCode, &str)> =
///     ResilienceError::Operation((http::StatusCode::BAD_GATEWAY, "upstream said no")).into();
/// assert_eq!(bad.into_response().status(), 502);
/// ```
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct HttpError<E = Infallible> {
    error: ResilienceError<E>,
    retry_after: Option<Duration>,
}

impl<E> HttpError<E> {
    /// `error`, with no known wait.
    #[must_use]
    pub const fn new(error: ResilienceError<E>) -> Self {
        Self {
            error,
            retry_after: None,
        }
    }

    /// Sets how long a rejected caller should wait (the `Retry-After` of a `CircuitOpen`).
    #[must_use]
    pub const fn retry_after(mut self, wait: Option<Duration>) -> Self {
        self.retry_after = wait;
        self
    }

    /// The error.
    #[must_use]
    pub const fn error(&self) -> &ResilienceError<E> {
        &self.error
    }

    /// The wait it carries, if any.
    #[must_use]
    pub const fn wait(&self) -> Option<Duration> {
        self.retry_after
    }

    /// The same error with the operation's own error mapped by `f` (a kernel's error to
    /// something that is a response, such as a status), keeping the wait.
    #[must_use]
    pub fn map_operation<F>(self, f: impl FnOnce(E) -> F) -> HttpError<F> {
        HttpError {
            error: self.error.map_operation(f),
            retry_after: self.retry_after,
        }
    }

    /// The error, giving up the wait.
    #[must_use]
    pub fn into_inner(self) -> ResilienceError<E> {
        self.error
    }

    /// The status this error answers with; `None` for `Operation(e)`, which answers with `e`'s
    /// own response.
    #[must_use]
    pub const fn status(&self) -> Option<StatusCode> {
        match self.error {
            ResilienceError::CircuitOpen => Some(StatusCode::SERVICE_UNAVAILABLE),
            ResilienceError::DeadlineExceeded | ResilienceError::Timeout => {
                Some(StatusCode::GATEWAY_TIMEOUT)
            }
            ResilienceError::Operation(_) => None,
        }
    }
}

impl<E> From<ResilienceError<E>> for HttpError<E> {
    fn from(error: ResilienceError<E>) -> Self {
        Self::new(error)
    }
}

impl<E: IntoResponse> IntoResponse for HttpError<E> {
    fn into_response(self) -> Response {
        let retry_after = self.retry_after;
        match self.error {
            ResilienceError::CircuitOpen => {
                let mut response =
                    (StatusCode::SERVICE_UNAVAILABLE, "circuit breaker is open").into_response();
                if let Some(seconds) = retry_after.and_then(retry_after_seconds) {
                    response
                        .headers_mut()
                        .insert(header::RETRY_AFTER, HeaderValue::from(seconds));
                }
                response
            }
            ResilienceError::DeadlineExceeded => {
                (StatusCode::GATEWAY_TIMEOUT, "deadline exceeded").into_response()
            }
            ResilienceError::Timeout => {
                (StatusCode::GATEWAY_TIMEOUT, "operation timed out").into_response()
            }
            ResilienceError::Operation(error) => error.into_response(),
        }
    }
}

/// A wait as `Retry-After` seconds: rounded up, at least 1; none for "no end" (`Duration::MAX`).
fn retry_after_seconds(wait: Duration) -> Option<u64> {
    if wait == Duration::MAX {
        return None;
    }
    let seconds = wait.as_secs() + u64::from(wait.subsec_nanos() > 0);
    Some(seconds.max(1))
}

impl<E: fmt::Display> fmt::Display for HttpError<E> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        self.error.fmt(f)
    }
}

impl<E: std::error::Error + 'static> std::error::Error for HttpError<E> {
    fn source(&self) -> Option<&(dyn std::error::Error + 'static)> {
        std::error::Error::source(&self.error)
    }
}

impl<T, E> Outcome<T, E> {
    /// The result, its error as an [`HttpError`] that carries the breaker's wait (the
    /// `Retry-After` of a `CircuitOpen`): a handler returns
    /// `pipeline.execute_outcome(None, op).await.into_http()` as its `Result`.
    ///
    /// # Errors
    /// The result's error, as an [`HttpError`].
    pub fn into_http(self) -> Result<T, HttpError<E>> {
        let retry_after = self.retry_after;
        self.result
            .map_err(|error| HttpError::new(error).retry_after(retry_after))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn statuses_and_retry_after() {
        let open = |wait| {
            HttpError::<Infallible>::new(ResilienceError::CircuitOpen)
                .retry_after(wait)
                .into_response()
        };
        let response = open(Some(Duration::from_secs(30)));
        assert_eq!(response.status(), StatusCode::SERVICE_UNAVAILABLE);
        assert_eq!(response.headers()[header::RETRY_AFTER], "30");
        assert_eq!(
            open(Some(Duration::ZERO)).headers()[header::RETRY_AFTER],
            "1"
        );
        assert!(open(None).headers().get(header::RETRY_AFTER).is_none());
        assert!(
            open(Some(Duration::MAX))
                .headers()
                .get(header::RETRY_AFTER)
                .is_none()
        );
        for error in [ResilienceError::DeadlineExceeded, ResilienceError::Timeout] {
            let error = HttpError::<Infallible>::from(error);
            assert_eq!(error.status(), Some(StatusCode::GATEWAY_TIMEOUT));
            assert_eq!(error.into_response().status(), StatusCode::GATEWAY_TIMEOUT);
        }
        let teapot = HttpError::from(ResilienceError::Operation(StatusCode::IM_A_TEAPOT));
        assert_eq!(teapot.status(), None);
        assert_eq!(teapot.into_response().status(), StatusCode::IM_A_TEAPOT);
    }

    #[test]
    fn an_outcome_carries_its_wait() {
        let outcome: Outcome<(), Infallible> = Outcome {
            result: Err(ResilienceError::CircuitOpen),
            attempts: 1,
            retry_after: Some(Duration::from_secs(4)),
            gave_up: None,
        };
        let error = outcome.into_http().expect_err("rejected");
        assert_eq!(error.wait(), Some(Duration::from_secs(4)));
        assert_eq!(error.to_string(), "circuit breaker is open");
    }
}
