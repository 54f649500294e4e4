//! Everything a host user needs, under the chapter's names: the core's configs and the
//! tokio runtime types (`CircuitBreaker::call`, ...).

pub use rustkernel_core::error::{Classify, ConfigError, ErrorKind, ErrorKindSet};
pub use rustkernel_core::resilience::{
    CircuitBreakerConfig, CircuitBreakerStats, CircuitState, OpenBackoff, ResilienceError,
    TimeoutConfig, Transition,
};

pub use crate::breaker::{
    CallPermit, CircuitBreaker, CircuitBreakerBuilder, CountWindow, NoWindow, Rejected,
    SlidingWindow,
};
