//! What counts as a failure, and of what kind: classifiers for errors and for responses.
//!
//! # Errors
//! tokio's own errors: [`Elapsed`] (a [`tokio::time::timeout`] that ran out) is
//! [`ErrorKind::Timeout`].
//!
//! The core names no runtime, so it cannot implement [`Classify`](rustkernel_core::error::Classify)
//! for tokio's `Elapsed`, and the orphan rule keeps this crate from doing it (both the trait and
//! the type belong to other crates). These are classifiers instead: give one to
//! `classify_with` (on a [`Pipeline`](crate::pipeline::Pipeline) builder, a
//! [`Retrier`](crate::retry::Retrier) or a [`CircuitBreaker`](crate::breaker::CircuitBreaker))
//! or to [`DeadlineContext::execute_classified`](crate::deadline::DeadlineContext::execute_classified).
//!
//! ```
//! use std::time::Duration;
//! use rustkernel_tokio::classify;
//! use rustkernel_tokio::resilience::{ErrorKind, Pipeline, ResilienceError, Retrier, RetryConfig};
//!
//! # #[tokio::main(flavor = "current_thread", start_paused = true)]
//! # async fn main() {
//! let pipeline = Pipeline::builder()
//!     .retry(Retrier::new(RetryConfig::default()).seed(1))
//!     .classify_with(classify::elapsed)
//!     .build();
//! let result = pipeline
//!     .execute(|| tokio::time::timeout(Duration::from_millis(10), std::future::pending::<u32>()))
//!     .await;
//! // Each attempt's timeout was a timeout, retried as one; the last comes back as it is.
//! assert!(matches!(result, Err(ResilienceError::Operation(_))));
//! # }
//! ```
//!
//! # Responses
//! A call that returns `Ok` can still have failed: an HTTP handler's 500 is `Ok(Response)`. A
//! [`ResponseClassifier`] gives each response a [`Verdict`] (success, a failure of some
//! [`ErrorKind`], or ignore), given with `classify_response` to the breaker's `call`
//! ([`CircuitBreaker::classify_response`](crate::breaker::CircuitBreaker::classify_response)),
//! the [`Retrier`](crate::retry::Retrier), the [`Pipeline`](crate::pipeline::Pipeline) and the
//! tower layers. The default, [`OkIsSuccess`], counts every `Ok` as a success. With the `http`
//! feature, [`HttpClassifier`] is the ready one for `http::Response`s (5xx and 429 failures,
//! configurable per status). A response classified as a failure still goes back to the caller
//! as the response, unless a retry replaced it.

use std::error::Error;

use rustkernel_core::error::{ErrorKind, std_error_kind};
use tokio::time::error::Elapsed;

#[cfg(feature = "http")]
mod http;
mod response;

#[cfg(feature = "http")]
pub use self::http::{HttpClassifier, NotAnErrorStatus};
pub use response::{OkIsSuccess, ResponseClassifier, Verdict};

/// tokio's `timeout` ran out: [`ErrorKind::Timeout`]. A classifier for operations that return
/// `Result<T, Elapsed>`.
#[must_use]
pub fn elapsed(_: &Elapsed) -> ErrorKind {
    ErrorKind::Timeout
}

/// The kind of any standard error: tokio's [`Elapsed`] is a timeout, anything else as the
/// core's [`std_error_kind`] says (an `io::Error` by its kind, the rest transient).
#[must_use]
pub fn std_error(error: &(dyn Error + 'static)) -> ErrorKind {
    if error.is::<Elapsed>() {
        ErrorKind::Timeout
    } else {
        std_error_kind(error)
    }
}

/// A classifier for operations that return `Box<dyn Error + Send + Sync>`: [`std_error`] of
/// what the box holds, so a boxed `Elapsed` is a timeout (the core's `Classify` of boxed errors
/// knows no runtime and calls it transient).
#[must_use]
#[allow(
    clippy::borrowed_box,
    reason = "a classifier of `E` takes `&E`, and here `E` is the box"
)]
pub fn boxed(error: &Box<dyn Error + Send + Sync>) -> ErrorKind {
    std_error(error.as_ref())
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::time::Duration;

    async fn elapsed_error() -> Elapsed {
        tokio::time::timeout(Duration::from_millis(1), std::future::pending::<()>())
            .await
            .expect_err("pending never finishes")
    }

    #[tokio::test(start_paused = true)]
    async fn elapsed_is_a_timeout_bare_and_boxed() {
        let error = elapsed_error().await;
        assert_eq!(elapsed(&error), ErrorKind::Timeout);
        let boxed_elapsed: Box<dyn Error + Send + Sync> = Box::new(elapsed_error().await);
        assert_eq!(boxed(&boxed_elapsed), ErrorKind::Timeout);
        let io: Box<dyn Error + Send + Sync> =
            Box::new(std::io::Error::from(std::io::ErrorKind::ConnectionRefused));
        assert_eq!(boxed(&io), ErrorKind::Unavailable);
        let other: Box<dyn Error + Send + Sync> = "no idea".into();
        assert_eq!(boxed(&other), ErrorKind::Transient);
    }
}
