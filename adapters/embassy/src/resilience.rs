//! Everything a firmware user needs, from one place: the core's configurations, errors, windows
//! and states, and this crate's runtime types (the breaker, the retrier and its budget, the
//! pipeline, deadlines, the health monitor, the supervisor). The counterpart of the tokio
//! adapter's `rustkernel_tokio::resilience`.
//!
//! ```
//! use core::time::Duration;
//! // Each group a firmware uses, through this module alone.
//! use rustkernel_embassy::resilience::{
//!     // composition and errors
//!     Pipeline, PipelineConfig, ResilienceError, Classify, ErrorKind, ErrorKindSet,
//!     ConfigError, ConfigField,
//!     // breaker, retry, deadlines
//!     CircuitBreaker, CircuitBreakerConfig, CircuitState, CountWindow, NoWindow, Retrier,
//!     RetryConfig, ValidRetryConfig, BackoffStrategy, SharedRetryBudget, RetryBudgetConfig,
//!     DeadlineContext, TimeoutConfig, execute_with_timeout,
//!     // health and recovery
//!     HealthMonitor, HealthProbeConfig, HealthStatus, HealthCheckResult, Supervisor,
//!     RecoveryPolicy, RecoveryStrategy,
//!     // the mutex a `static` shares them with, and time
//!     CriticalSectionRawMutex, Instant,
//! };
//!
//! const RETRY: ValidRetryConfig = ValidRetryConfig::new(RetryConfig {
//!     max_attempts: 3,
//!     backoff: BackoffStrategy::Fixed { delay: Duration::from_millis(5) },
//!     retryable_errors: ErrorKindSet::of(&[ErrorKind::Transient, ErrorKind::Timeout]),
//! });
//! static BREAKER: CircuitBreaker<CriticalSectionRawMutex, CircuitBreakerConfig, CountWindow<20>> =
//!     CircuitBreaker::with_window(
//!         CircuitBreakerConfig {
//!             failure_rate_threshold: Some(0.5),
//!             minimum_calls: 10,
//!             ..CircuitBreakerConfig::DEFAULT
//!         },
//!         CountWindow::new(),
//!     );
//!
//! # embassy_futures::block_on(async {
//! let mut retrier = Retrier::from_valid(RETRY, 0x5eed);
//! let result: Result<u32, ResilienceError<ErrorKind>> =
//!     retrier.execute(|| BREAKER.call(|| async { Ok::<u32, ErrorKind>(7) })).await;
//! assert_eq!(result, Ok(7));
//! assert_eq!(BREAKER.state(), CircuitState::Closed);
//! # });
//! ```

pub use embassy_sync::blocking_mutex::raw::{CriticalSectionRawMutex, NoopRawMutex, RawMutex};

pub use crate::breaker::{BreakerCall, CircuitBreaker, ignore_transition};
pub use crate::deadline::{DeadlineContext, execute_with_config, execute_with_timeout};
pub use crate::health::{HealthCheck, HealthMonitor, MonitorEvent};
pub use crate::pipeline::{Outcome, Pipeline, RequestDeadline};
pub use crate::retry::{NoBudget, Retrier, RetryBudgetSource, RetryEvent, SharedRetryBudget};
pub use crate::supervisor::{RecoveryEffects, Supervisor, SupervisorStep};
pub use crate::time::now;

pub use rustkernel_core::error::{
    ByClassify, Classifier, Classify, ConfigError, ConfigField, ErrorKind, ErrorKindSet,
    OperationError, ResilienceError, invalid_const,
};
pub use rustkernel_core::resilience::circuit_breaker::{SlidingWindow, WindowCounts};
pub use rustkernel_core::resilience::{
    AfterMaxWait, CircuitBreakerConfig, CircuitBreakerStats, CircuitState, ConstBreakerConfig,
    CountWindow, FixedConfig, NoWindow, OpenBackoff, OpenReason, Rejected, TimeWindow, Transition,
    Trip,
};
pub use rustkernel_core::resilience::{
    BackoffStrategy, ConstRetryConfig, DeadlineBound, DeadlineExceeded, FixedRetryConfig,
    GiveUpReason, RetryBudgetConfig, RetryConfig, RetryDecision, RetryPolicy, TimeoutConfig,
    ValidRetryConfig, WireDeadline,
};
pub use rustkernel_core::resilience::{
    ComponentId, Criticality, HealthCheckResult, HealthEvent, HealthProbeConfig, HealthStatus,
    ProbeRole, ProbeRoles, RegistryError,
};
pub use rustkernel_core::resilience::{
    PipelineConfig, RecoveryAction, RecoveryLadder, RecoveryPolicy, RecoveryStrategy,
    ResilienceConfig, RestartIntensity,
};
pub use rustkernel_core::time::Instant;
