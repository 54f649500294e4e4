//! The resilience patterns of the chapter, as sans-IO state machines.
//!
//! Paths follow the chapter: `rustkernel_core::resilience::{CircuitBreakerConfig, RetryConfig, ..}`.

pub mod backoff;
pub mod circuit_breaker;
pub mod deadline;
pub mod recovery;
pub mod retry;

pub use crate::error::{ConfigError, ErrorKind, ErrorKindSet, ResilienceError};
pub use recovery::{
    DEFAULT_RESTART_CAPACITY, Escalation, Recovered, Recovery, RecoveryAction, RecoveryPolicy,
    RecoveryState, RecoveryStrategy, RestartBackoff, RestartIntensity,
};
