//! tower [`Layer`](tower_layer::Layer)s for axum and tonic stacks: retry, deadline, a generic
//! guard (for a circuit breaker) and the whole pipeline.
//!
//! Each middleware is a module in the tower style: the service in `mod.rs`, the layer in
//! `layer.rs`, the response future in `future.rs`. Every service's error is
//! [`ResilienceError<E>`](rustkernel_core::resilience::ResilienceError) of the inner
//! service's error `E`, which comes back unchanged as `Operation(e)`. (For axum routes, whose
//! layers must not fail, the `axum` feature has layers that answer errors as responses:
//! `rustkernel_tokio::axum`.)
//!
//! # What counts as a failure
//! An error counts by its kind. A response counts as the layer's
//! [`ResponseClassifier`](crate::classify::ResponseClassifier) says (`classify_response` on
//! [`GuardLayer`] and on the [`Retrier`](crate::retry::Retrier) or
//! [`Pipeline`](crate::pipeline::Pipeline) behind the other layers; by default every response
//! is a success): with the `http` feature's
//! [`HttpClassifier`](crate::classify::HttpClassifier), an HTTP 500 inside `Ok(Response)`
//! counts against the breaker and is retried, and still reaches the caller as the response
//! when no retry replaces it.
//!
//! # The order, outermost first, and why
//! 1. **The deadline** ([`DeadlineLayer`]): it bounds everything inside it, so retries see it
//!    and stop in time (no attempt is started, or slept towards, that could not begin before
//!    it).
//! 2. **Retry** ([`RetryLayer`]), outside the guard, so that each attempt asks the breaker: a
//!    breaker that opened during the call rejects the next attempt instead of letting retries
//!    hammer the callee.
//! 3. **The guard** ([`CircuitBreakerLayer`]), innermost: every attempt's outcome counts.
//!
//! A call the deadline cuts is a **timeout** for the breaker wherever the deadline sits: the
//! deadline drops the call inside its own scope, and a breaker permit dropped after the
//! [current deadline](crate::deadline::current_deadline) passed settles as a timeout failure
//! (see [`CallPermit`](crate::breaker::CallPermit)). So ten hung calls open the breaker with
//! the deadline outermost, as they do with a deadline inside the guard (whose `Timeout` error
//! the guard counts). A call dropped with no deadline in scope, or before its deadline (the
//! client went away, a tower `Timeout` or `tokio::time::timeout` that is not a
//! [`DeadlineLayer`]), is a **cancellation**: it counts for nothing and gives a half-open
//! probe slot back. Only the innermost deadline in scope is read: a
//! [`DeadlineLayer`] inside another whose deadline is later (it does not propagate the outer
//! one) sees time left when the outer one cuts the call.
//!
//! ```
//! use std::time::Duration;
//! use rustkernel_tokio::resilience::{
//!     BackoffStrategy, DeadlineLayer, ErrorKind, Retrier, RetryConfig, RetryLayer,
//!     TimeoutConfig,
//! };
//! use tower::{ServiceBuilder, ServiceExt, service_fn};
//!
//! # #[tokio::main(flavor = "current_thread", start_paused = true)]
//! # async fn main() {
//! let service = ServiceBuilder::new()
//!     .layer(DeadlineLayer::new(TimeoutConfig::default()))
//!     .layer(RetryLayer::new(Retrier::new(RetryConfig {
//!         max_attempts: 3,
//!         backoff: BackoffStrategy::Fixed { delay: Duration::from_millis(10) },
//!         retryable_errors: [ErrorKind::Transient].into(),
//!     })))
//!     .service(service_fn(|x: u32| async move { Ok::<_, ErrorKind>(x * 2) }));
//! let result = service.oneshot(21).await;
//! assert_eq!(result, Ok(42));
//! # }
//! ```

pub mod breaker;
pub mod deadline;
pub mod pipeline;
pub mod retry;

pub use breaker::{Guard, GuardLayer, GuardService};

/// A tower layer that puts the crate's shared [`CircuitBreaker`](crate::breaker::CircuitBreaker)
/// in front of a service: `CircuitBreakerLayer::new(breaker.clone())`.
pub type CircuitBreakerLayer<W = rustkernel_core::resilience::NoWindow> =
    GuardLayer<crate::breaker::CircuitBreaker<W>>;
pub use deadline::{DeadlineLayer, DeadlineService, DefaultTiming, RequestTiming, TimingOf};
pub use pipeline::{PipelineLayer, PipelineService};
pub use retry::{RetryLayer, RetryService};
