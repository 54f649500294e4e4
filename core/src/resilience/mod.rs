//! The resilience patterns of the chapter, as sans-IO state machines.
//!
//! Paths follow the chapter: `rustkernel_core::resilience::{CircuitBreakerConfig, RetryConfig, ..}`.

pub mod backoff;
pub mod circuit_breaker;
pub mod deadline;
pub mod health;
pub mod retry;

pub use crate::error::{ConfigError, ErrorKind, ErrorKindSet, ResilienceError};
pub use health::{
    CheckTicket, ComponentEntry, ComponentEvent, ComponentHealth, ComponentId, ComponentPhase,
    Criticality, HealthCheckConfig, HealthCheckResult, HealthEvent, HealthProbeConfig,
    HealthRegistry, HealthStatus, ProbeRole, ProbeRoles, ProbeState, RegistryError, StartupFailure,
};
