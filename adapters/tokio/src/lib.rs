//! Tokio adapter of rustkernel resilience: the chapter's async API for host services.
//!
//! The [`resilience`] module re-exports the core's configs and adds the runtime types under the
//! chapter's names, so a host user imports everything from one place.
//!
//! # Features
//! Off by default.
//! - `http`: [`classify::HttpClassifier`], the ready
//!   [`ResponseClassifier`](classify::ResponseClassifier) for `http::Response`s (5xx and 429
//!   count as failures, configurable per status), for the breaker's `call`, the retrier, the
//!   pipeline and the tower layers.
#![forbid(unsafe_code)]
#![deny(missing_docs)]

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
