//! tower [`Layer`](tower_layer::Layer)s for axum and tonic stacks: retry, deadline, and a
//! generic guard (for a circuit breaker).
//!
//! Each middleware is a module in the tower style: the service in `mod.rs`, the layer in
//! `layer.rs`, the response future in `future.rs`. Every service's error is
//! [`ResilienceError<E>`](rustkernel_core::resilience::ResilienceError) of the inner
//! service's error `E`, which comes back unchanged as `Operation(e)`.
//!
//! Order them as calls nest: the deadline outermost, so retries see it and stop in time, then
//! retry, then the guard, so each attempt asks the breaker.
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
