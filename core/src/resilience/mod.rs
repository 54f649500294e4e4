//! The resilience patterns of the chapter, as sans-IO state machines.
//!
//! Paths follow the chapter: `rustkernel_core::resilience::{CircuitBreakerConfig, RetryConfig, ..}`.

pub mod backoff;
pub mod budget;
pub mod circuit_breaker;
pub mod config;
pub mod deadline;
pub mod health;
pub mod pipeline;
pub mod recovery;
pub mod retry;
pub mod timeout;

pub use crate::error::{ConfigError, ErrorKind, ErrorKindSet, ResilienceError};
pub use backoff::BackoffStrategy;
pub use budget::{RetryBudget, RetryBudgetConfig};
pub use circuit_breaker::{
    AfterMaxWait, CircuitBreaker, CircuitBreakerConfig, CircuitBreakerStats, CircuitState,
    CountWindow, NoWindow, OpenBackoff, OpenReason, Permit, Rejected, TimeWindow, Transition, Trip,
};
pub use config::ResilienceConfig;
pub use deadline::{DeadlineContext, DeadlineExceeded, WireDeadline};
pub use health::{
    CheckTicket, ComponentEntry, ComponentEvent, ComponentHealth, ComponentId, ComponentPhase,
    Criticality, HealthCheckConfig, HealthCheckResult, HealthEvent, HealthProbeConfig,
    HealthRegistry, HealthStatus, ProbeRole, ProbeRoles, RegistryError, StartupFailure,
    UnknownComponent,
};
pub use pipeline::PipelineConfig;
pub use recovery::{
    DEFAULT_RESTART_CAPACITY, Directive, Escalation, Recovered, Recovery, RecoveryAction,
    RecoveryLadder, RecoveryPolicy, RecoveryState, RecoveryStep, RecoveryStrategy, RestartBackoff,
    RestartIntensity,
};
pub use retry::{GiveUpReason, Retry, RetryConfig, RetryDecision};
pub use timeout::{DeadlineBound, ResolvedDeadline, TimeoutConfig};
