//! Tokio adapter of rustkernel resilience: the chapter's async API for host services.
//!
//! The [`resilience`] module re-exports the core's configs and adds the runtime types under the
//! chapter's names, so a host user imports everything from one place.
#![forbid(unsafe_code)]
#![deny(missing_docs)]

pub mod breaker;
pub mod checkpoint_store;
pub mod clock;
pub mod deadline;
pub mod health;
pub mod layer;
pub mod metrics;
pub mod resilience;
pub mod retry;
pub mod supervisor;
