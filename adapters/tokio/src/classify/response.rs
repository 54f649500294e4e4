//! What a call that returned `Ok` counts as: a [`ResponseClassifier`] gives each response a
//! [`Verdict`], so an `Ok(Response)` with a 500 in it can count as the failure it is.

use std::time::Duration;

use rustkernel_core::error::ErrorKind;

/// What one call's response counts as, for the breaker and for retry.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum Verdict {
    /// The call worked: a success for the breaker, and retry stops here.
    Success,
    /// The call failed with a failure of this kind: the breaker counts it (unless the kind is
    /// in its `ignored_errors`) and retry treats it as an error of the kind. The response still
    /// goes back to the caller when no retry replaces it.
    Failure(ErrorKind),
    /// The call says nothing about the callee's health (a client's own mistake, a request
    /// the callee declined on purpose): the breaker counts neither success nor failure (a
    /// half-open probe slot is given back) and retry stops here.
    Ignore,
}

impl Verdict {
    /// Whether this is a [`Failure`](Self::Failure).
    #[must_use]
    pub const fn is_failure(self) -> bool {
        matches!(self, Verdict::Failure(_))
    }
}

/// Classifies the responses of successful calls (`Ok(response)`); errors keep their own
/// classification (`Classify`, or a closure given to `classify_with`).
///
/// The breaker's [`call`](crate::breaker::CircuitBreaker::call), the
/// [`Retrier`](crate::retry::Retrier), the [`Pipeline`](crate::pipeline::Pipeline) and their tower
/// layers take one through `classify_response`. The default, [`OkIsSuccess`], keeps every `Ok`
/// a success; any closure `Fn(&T) -> Verdict` is one; with the `http` feature,
/// [`HttpClassifier`](crate::classify::HttpClassifier) is the ready one for
/// `http::Response`s (5xx and 429 are failures).
///
/// ```
/// use rustkernel_tokio::classify::Verdict;
/// use rustkernel_tokio::resilience::{
///     CircuitBreaker, CircuitBreakerConfig, CircuitState, ErrorKind,
/// };
///
/// struct Reply { code: u16 }
///
/// # #[tokio::main(flavor = "current_thread")]
/// # async fn main() {
/// let cb = CircuitBreaker::new(CircuitBreakerConfig { failure_threshold: 2, ..Default::default() })
///     .classify_response(|reply: &Reply| match reply.code {
///         500..=599 => Verdict::Failure(ErrorKind::Unavailable),
///         _ => Verdict::Success,
///     });
/// for _ in 0..2 {
///     // The reply comes back as it is; the breaker counted it as a failure.
///     let reply = cb.call(|| async { Ok::<_, ErrorKind>(Reply { code: 503 }) }).await;
///     assert_eq!(reply.map(|reply| reply.code), Ok(503));
/// }
/// assert_eq!(cb.breaker().state(), CircuitState::Open);
/// # }
/// ```
#[diagnostic::on_unimplemented(
    message = "`{Self}` cannot classify responses of type `{T}`",
    label = "not a response classifier for `{T}`",
    note = "give a closure `|response: &{T}| Verdict::Success` or a classifier made for `{T}`"
)]
pub trait ResponseClassifier<T> {
    /// What `response` counts as.
    fn classify_response(&self, response: &T) -> Verdict;

    /// How long the callee asked to wait before the next attempt (an HTTP `Retry-After`), for
    /// a response classified as a failure; retry waits this long instead of its backoff (never
    /// past the deadline). `None` (the default): the backoff decides.
    fn retry_after(&self, response: &T) -> Option<Duration> {
        let _ = response;
        None
    }
}

/// The default [`ResponseClassifier`]: every `Ok` is a success, as before classifiers existed.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Hash)]
pub struct OkIsSuccess;

impl<T> ResponseClassifier<T> for OkIsSuccess {
    #[inline]
    fn classify_response(&self, _response: &T) -> Verdict {
        Verdict::Success
    }
}

/// A closure classifier: `|response: &T| Verdict::..`.
impl<T, F: Fn(&T) -> Verdict> ResponseClassifier<T> for F {
    #[inline]
    fn classify_response(&self, response: &T) -> Verdict {
        self(response)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_default_and_closures() {
        assert_eq!(OkIsSuccess.classify_response(&500_u16), Verdict::Success);
        let by_code = |code: &u16| {
            if *code >= 500 {
                Verdict::Failure(ErrorKind::Unavailable)
            } else {
                Verdict::Success
            }
        };
        assert!(by_code.classify_response(&503).is_failure());
        assert_eq!(by_code.classify_response(&200), Verdict::Success);
        assert_eq!(by_code.retry_after(&503), None);
    }
}
