//! Tokio adapter of rustkernel resilience: the chapter's async API for host services.
//!
#![cfg_attr(feature = "axum", doc = include_str!("../QUICKSTART.md"))]
#![cfg_attr(
    not(feature = "axum"),
    doc = "The quickstart (`QUICKSTART.md`, a route with a breaker) shows here with the `axum` feature."
)]
//!
//! ## The adapter
//!
//! The [`resilience`] module re-exports the core's configs and adds the runtime types under the
//! chapter's names, so a host user imports everything from one place.
//!
//! # Features
//! Both off by default.
//! - `http`: [`classify::HttpClassifier`], the ready
//!   [`ResponseClassifier`](classify::ResponseClassifier) for `http::Response`s (5xx and 429
//!   count as failures, configurable per status), for the breaker's `call`, the retrier, the
//!   pipeline and the tower layers.
//! - `axum` (enables `http`): the [`axum`] module. [`HttpError`](crate::axum::HttpError)
//!   answers a `ResilienceError` as a response (`503` with `Retry-After`, `504`, or the inner
//!   error's own response); [`HttpBreakerLayer`](crate::axum::HttpBreakerLayer) and
//!   [`HttpPipelineLayer`](crate::axum::HttpPipelineLayer) put the breaker or a whole pipeline
//!   on routes with no `HandleErrorLayer` (the pipeline buffers request bodies up to a limit,
//!   so attempts can be repeated; the breaker alone passes bodies through, with no retry).
#![forbid(unsafe_code)]
#![deny(missing_docs)]

#[cfg(feature = "axum")]
pub mod axum;
pub mod breaker;
#[cfg(not(loom))]
mod catch_panic;
pub mod classify;
// tokio has no `fs` under `--cfg loom`; the loom models test the breaker only.
#[cfg(not(loom))]
pub mod checkpoint_store;
pub mod clock;
pub mod deadline;
pub mod frame;
pub mod health;
pub mod layer;
pub mod metrics;
pub mod pipeline;
pub mod resilience;
pub mod retry;
#[cfg(not(loom))]
pub mod supervisor;
