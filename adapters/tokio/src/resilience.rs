//! Everything a host user needs, under the chapter's names, from one place: the core's configs,
//! errors and clock type, and the tokio runtime types (`CircuitBreaker::call`, the
//! [`Pipeline`], probes, the supervisor, checkpoint stores, tower layers).
//!
//! ```
//! // Each group a host service uses, through this module alone.
//! use rustkernel_tokio::resilience::{
//!     // composition and errors
//!     Pipeline, Outcome, RequestDeadline, ResilienceConfig, ResilienceError, Classify,
//!     ErrorKind, ErrorKindSet, ConfigError, OperationError, Classifier, ByClassify,
//!     ResponseClassifier, Verdict, OkIsSuccess,
//!     // breaker, retry, deadlines
//!     CircuitBreaker, CircuitBreakerConfig, CircuitState, Rejected, Retrier, RetryConfig,
//!     RetryExt, BackoffStrategy, SharedRetryBudget, RetryBudgetConfig, DeadlineContext,
//!     TimeoutConfig, TimeoutExt, current_deadline,
//!     // health
//!     HealthProbe, HealthProbeConfig, HealthCheck, HealthCheckResult, HealthStatus, check_fn,
//!     FnCheck, ComponentId, ProbeEvent, RegistryError, UnknownComponent, ProbeRole,
//!     // recovery and checkpoints
//!     RecoveryPolicy, RecoveryStrategy, Supervisor, CheckpointStore, FileCheckpointStore,
//!     CheckpointStoreError, LoadedCheckpoint, CheckpointableKernel,
//!     // tower, time
//!     CircuitBreakerLayer, DeadlineLayer, RetryLayer, PipelineLayer, Instant,
//! };
//!
//! let pipeline = Pipeline::from_config(&ResilienceConfig::production()).unwrap();
//! assert!(pipeline.breaker().is_some());
//! let error: ResilienceError<ErrorKind> = ResilienceError::CircuitOpen;
//! assert_eq!(error.kind(), ErrorKind::Unavailable);
//! assert_eq!(HealthCheckResult::degraded("slow").message(), "slow");
//! assert!(Instant::ZERO < Instant::from_secs(1));
//! ```

#[cfg(feature = "axum")]
pub use crate::axum::{HttpBreakerLayer, HttpError, HttpPipelineLayer};
#[cfg(feature = "http")]
pub use crate::classify::HttpClassifier;
pub use crate::classify::{OkIsSuccess, ResponseClassifier, Verdict};
pub use crate::deadline::{
    CancelFlag, DeadlineContext, DeadlineFuture, DeadlineScope, ResolvedDeadline, TimeoutExt,
    current_deadline,
};
pub use crate::layer::{
    CircuitBreakerLayer, DeadlineLayer, Guard, GuardLayer, PipelineLayer, RetryLayer,
};
pub use crate::pipeline::{Outcome, Pipeline, PipelineBuilder, RequestDeadline};
pub use crate::retry::{NoHint, Retrier, RetryAfterHint, RetryExt, SharedRetryBudget};
pub use rustkernel_core::error::{
    ByClassify, Classifier, Classify, ConfigError, ConfigField, ErrorKind, ErrorKindSet,
    OperationError, io_error_kind,
};
pub use rustkernel_core::resilience::{
    AfterMaxWait, CircuitBreakerConfig, CircuitBreakerStats, CircuitState, OpenBackoff, OpenReason,
    PipelineConfig, Rejected, ResilienceConfig, ResilienceError, TimeoutConfig, Transition, Trip,
};
pub use rustkernel_core::resilience::{
    BackoffStrategy, DeadlineBound, DeadlineExceeded, GiveUpReason, RetryBudget, RetryBudgetConfig,
    RetryConfig, RetryDecision, WireDeadline,
};
pub use rustkernel_core::resilience::{
    ComponentEvent, ComponentId, Criticality, HealthCheckResult, HealthProbeConfig, HealthStatus,
    ProbeRole, ProbeRoles, RegistryError, UnknownComponent,
};
pub use rustkernel_core::resilience::{
    Directive, RecoveryAction, RecoveryLadder, RecoveryPolicy, RecoveryStrategy, RestartIntensity,
};
pub use rustkernel_core::time::Instant;
pub use rustkernel_core::traits::CheckpointableKernel;

pub use crate::breaker::{
    CallPermit, CircuitBreaker, CircuitBreakerBuilder, Classified, CountWindow, NoWindow,
    OwnedCallPermit, SlidingWindow, TimeWindow, WindowCounts,
};
#[cfg(not(loom))]
pub use crate::checkpoint_store::{
    CheckpointStore, CheckpointStoreError, FileCheckpointStore, LoadedCheckpoint,
    MemoryCheckpointStore,
};
pub use crate::health::{
    ComponentOptions, ComponentReport, FnCheck, HealthCheck, HealthProbe, HealthReport,
    HealthRunner, ProbeEvent, check_fn,
};
pub use crate::metrics::{MetricsSnapshot, ResilienceCollector};
#[cfg(not(loom))]
pub use crate::supervisor::{
    KernelFailure, KernelSlot, Notifier, OperatorAlert, SupervisedKernel, Supervisor,
    SupervisorExit,
};
