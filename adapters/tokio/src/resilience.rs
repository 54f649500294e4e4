//! Everything a host user needs, under the chapter's names: the core's configs and the
//! tokio runtime types (`CircuitBreaker::call`, ...).

pub use crate::deadline::{
    CancelFlag, DeadlineContext, DeadlineFuture, ResolvedDeadline, TimeoutExt, current_deadline,
    flatten,
};
pub use crate::layer::{DeadlineLayer, GuardLayer, RetryLayer};
pub use crate::retry::{NoHint, Retrier, RetryAfterHint, RetryExt, SharedRetryBudget};
pub use rustkernel_core::error::{Classify, ConfigError, ErrorKind, ErrorKindSet};
pub use rustkernel_core::resilience::{
    BackoffStrategy, DeadlineBound, DeadlineExceeded, GiveUpReason, RetryBudget, RetryBudgetConfig,
    RetryConfig, RetryDecision, WireDeadline,
};
pub use rustkernel_core::resilience::{
    CircuitBreakerConfig, CircuitBreakerStats, CircuitState, OpenBackoff, ResilienceError,
    TimeoutConfig, Transition,
};
pub use rustkernel_core::resilience::{
    ComponentEvent, Criticality, HealthCheckResult, HealthProbeConfig, HealthStatus, ProbeRole,
    ProbeRoles,
};
pub use rustkernel_core::resilience::{
    Directive, RecoveryAction, RecoveryLadder, RecoveryPolicy, RecoveryStrategy, RestartIntensity,
};
pub use rustkernel_core::traits::CheckpointableKernel;

pub use crate::breaker::{
    CallPermit, CircuitBreaker, CircuitBreakerBuilder, CountWindow, NoWindow, Rejected,
    SlidingWindow,
};
#[cfg(not(loom))]
pub use crate::checkpoint_store::{CheckpointStore, FileCheckpointStore, MemoryCheckpointStore};
pub use crate::health::{
    ComponentOptions, ComponentReport, HealthCheck, HealthProbe, HealthReport, HealthRunner,
};
pub use crate::metrics::MetricsSnapshot;
#[cfg(not(loom))]
pub use crate::supervisor::{
    KernelFailure, KernelSlot, Notifier, OperatorAlert, SupervisedKernel, Supervisor,
    SupervisorExit,
};
