//! axum integration (the `axum` feature): the flat error as a response, and layers that put a
//! breaker or a whole pipeline on routes with no `HandleErrorLayer`.
//!
//! axum's `Router::layer` takes only services whose error is `Infallible`: every failure must
//! already be a response. The crate's tower layers ([`CircuitBreakerLayer`](crate::layer::CircuitBreakerLayer),
//! [`PipelineLayer`](crate::layer::PipelineLayer)) fail with a [`ResilienceError`](crate::resilience::ResilienceError),
//! which would need a `HandleErrorLayer` in front of each; the layers here answer for you:
//!
//! - [`HttpBreakerLayer`]: the breaker alone. An open breaker answers `503` with
//!   `Retry-After` and the route is not called; responses count as an
//!   [`HttpClassifier`](crate::classify::HttpClassifier) says (5xx and 429 failures). Bodies
//!   pass untouched (no retry).
//! - [`HttpPipelineLayer`]: the whole [`Pipeline`](crate::pipeline::Pipeline) (total deadline,
//!   retry, breaker, attempt timeout); deadlines answer `504`. Request bodies are buffered up
//!   to a limit so each attempt gets the same bytes (see its docs for the non-`Clone` body).
//! - [`health_router`]: `/health/live`, `/health/ready`, `/health/startup` and `/health` of a
//!   [`HealthProbe`](crate::health::HealthProbe), from its registry.
//! - [`HttpError`]: the error as a response (`503` with `Retry-After`, `504`, or the
//!   operation's own error's response), for handlers that call a pipeline or a breaker
//!   themselves; [`Outcome::into_http`](crate::pipeline::Outcome::into_http) carries the
//!   breaker's wait into it.
//!
//! Where the deadline sits does not matter for what the breaker counts: a call cut by a
//! deadline is a timeout, and a client that hung up is a cancellation (see
//! [`layer`](crate::layer)).
//!
//! ```
//! use std::time::Duration;
//! use axum::{Router, body::Body, http::{Request, StatusCode}, routing::get};
//! use rustkernel_tokio::axum::HttpBreakerLayer;
//! use rustkernel_tokio::resilience::{CircuitBreaker, CircuitBreakerConfig, CircuitState};
//! use tower::ServiceExt;
//!
//! # #[tokio::main(flavor = "current_thread", start_paused = true)]
//! # async fn main() {
//! let breaker = CircuitBreaker::new(CircuitBreakerConfig {
//!     failure_threshold: 3,
//!     timeout: Duration::from_secs(30),
//!     ..Default::default()
//! });
//! let app = Router::new()
//!     .route("/flaky", get(|| async { StatusCode::INTERNAL_SERVER_ERROR }))
//!     .layer(HttpBreakerLayer::new(breaker.clone()));
//! let get = || Request::get("/flaky").body(Body::empty()).unwrap();
//! for _ in 0..3 {
//!     // The 500s reach the client, and count: the breaker opens.
//!     assert_eq!(app.clone().oneshot(get()).await.unwrap().status(), 500);
//! }
//! assert_eq!(breaker.state(), CircuitState::Open);
//! let rejected = app.oneshot(get()).await.unwrap();
//! assert_eq!(rejected.status(), 503);
//! assert_eq!(rejected.headers()["retry-after"], "30");
//! # }
//! ```

mod breaker;
mod error;
mod health;
mod pipeline;

pub use breaker::{HttpBreakerFuture, HttpBreakerLayer, HttpBreakerService};
pub use error::HttpError;
pub use health::health_router;
pub use pipeline::{
    DEFAULT_BODY_LIMIT, HttpPipelineFuture, HttpPipelineLayer, HttpPipelineService,
};
