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
    ConstBreakerConfig, CountWindow, FixedConfig, NoWindow, OpenBackoff, OpenReason, Permit,
    Rejected, TimeWindow, Transition, Trip,
};
pub use config::ResilienceConfig;
pub use deadline::{DeadlineContext, DeadlineExceeded, WireDeadline};
pub use health::{
    CheckTicket, ComponentEntry, ComponentEvent, ComponentHealth, ComponentId, ComponentPhase,
    Criticality, HealthCheckConfig, HealthCheckResult, HealthEvent, HealthProbeConfig,
    HealthRegistry, HealthStatus, ProbeRole, ProbeRoles, RegistryError, Silence, SilenceConfig,
    SilencePhase, StartupFailure, UnknownComponent,
};
pub use pipeline::PipelineConfig;
pub use recovery::{
    DEFAULT_RESTART_CAPACITY, Directive, Escalation, Recovered, Recovery, RecoveryAction,
    RecoveryLadder, RecoveryPolicy, RecoveryState, RecoveryStep, RecoveryStrategy, RestartBackoff,
    RestartIntensity,
};
pub use retry::{
    ConstRetryConfig, FixedRetryConfig, GiveUpReason, Retry, RetryConfig, RetryDecision,
    RetryPolicy, ValidRetryConfig,
};
pub use timeout::{DeadlineBound, ResolvedDeadline, TimeoutConfig};

/// The configuration checks are `const fn`: a `static` or `const` configuration is checked
/// when the program is compiled, and the check's code need not be linked into firmware.
#[cfg(test)]
mod const_validation {
    use core::time::Duration;

    use super::{
        BackoffStrategy, CircuitBreakerConfig, ConfigError, ErrorKindSet, PipelineConfig,
        RestartBackoff, RestartIntensity, RetryBudgetConfig, RetryConfig, TimeoutConfig,
    };
    use crate::error::ConfigField;

    const BREAKER: CircuitBreakerConfig = CircuitBreakerConfig {
        failure_rate_threshold: Some(0.5),
        minimum_calls: 20,
        ..CircuitBreakerConfig::DEFAULT
    };
    const RETRY: RetryConfig = RetryConfig {
        max_attempts: 3,
        backoff: BackoffStrategy::ExponentialWithJitter {
            initial: Duration::from_millis(100),
            max: Duration::from_secs(10),
            multiplier: 2.0,
        },
        retryable_errors: ErrorKindSet::of(&[crate::error::ErrorKind::Transient]),
    };
    const TIMEOUT: TimeoutConfig = TimeoutConfig {
        default_timeout: Duration::from_secs(5),
        max_timeout: Duration::from_secs(30),
        propagate_deadline: true,
        include_queue_time: false,
    };

    // Checked by the compiler: an invalid configuration here fails the build.
    const _: () = assert!(BREAKER.validate_for_window(100).is_ok());
    const _: () = assert!(RETRY.validate().is_ok());
    const _: () = assert!(TIMEOUT.validate().is_ok());
    const _: () = assert!(
        PipelineConfig {
            circuit_breaker: CircuitBreakerConfig::DEFAULT,
            retry: RETRY,
            timeout: TIMEOUT,
            attempt_timeout: Some(Duration::from_secs(1)),
        }
        .validate()
        .is_ok()
    );

    /// The errors found at compile time are those found at run time.
    #[test]
    fn compile_time_checks_give_the_run_time_errors() {
        const SMALL_WINDOW: Result<(), ConfigError> = BREAKER.validate_for_window(10);
        assert_eq!(SMALL_WINDOW, BREAKER.validate_for_window(10));
        assert_eq!(
            SMALL_WINDOW,
            Err(ConfigError::WindowTooSmall {
                needed: 20,
                capacity: 10
            })
        );

        const NO_PROBES: Result<(), ConfigError> = CircuitBreakerConfig {
            half_open_max_calls: 0,
            ..CircuitBreakerConfig::DEFAULT
        }
        .validate();
        assert_eq!(
            NO_PROBES,
            Err(ConfigError::Zero(ConfigField::HalfOpenMaxCalls))
        );

        const TOO_MANY_PROBES: Result<(), ConfigError> = CircuitBreakerConfig {
            success_threshold: 70_000,
            ..CircuitBreakerConfig::DEFAULT
        }
        .validate();
        assert_eq!(
            TOO_MANY_PROBES,
            Err(ConfigError::TooLarge {
                field: ConfigField::SuccessThreshold,
                max: 65_535
            })
        );

        const BAD_RATE: Result<(), ConfigError> = CircuitBreakerConfig {
            failure_rate_threshold: Some(f32::NAN),
            ..BREAKER
        }
        .validate_for_window(100);
        assert_eq!(
            BAD_RATE,
            Err(ConfigError::NotFinite(ConfigField::FailureRateThreshold))
        );

        const SHRINKING: Result<(), ConfigError> = RetryConfig {
            backoff: BackoffStrategy::Exponential {
                initial: Duration::from_millis(100),
                max: Duration::from_secs(1),
                multiplier: 0.5,
            },
            ..RETRY
        }
        .validate();
        assert_eq!(
            SHRINKING,
            Err(ConfigError::MultiplierBelowOne(
                ConfigField::BackoffMultiplier
            ))
        );

        const INITIAL_ABOVE_MAX: Result<(), ConfigError> = RetryConfig {
            backoff: BackoffStrategy::Linear {
                initial: Duration::from_secs(2),
                increment: Duration::from_secs(1),
                max: Duration::from_secs(1),
            },
            ..RETRY
        }
        .validate();
        assert_eq!(
            INITIAL_ABOVE_MAX,
            Err(ConfigError::Exceeds {
                field: ConfigField::BackoffInitial,
                limit: ConfigField::BackoffMax,
            })
        );

        const DEFAULT_ABOVE_MAX: Result<(), ConfigError> = TimeoutConfig {
            default_timeout: Duration::from_secs(60),
            ..TIMEOUT
        }
        .validate();
        assert_eq!(
            DEFAULT_ABOVE_MAX,
            TimeoutConfig {
                default_timeout: Duration::from_secs(60),
                ..TIMEOUT
            }
            .validate()
        );
        assert!(DEFAULT_ABOVE_MAX.is_err());

        const NEGATIVE_RATIO: Result<(), ConfigError> = RetryBudgetConfig {
            retry_ratio: -0.1,
            window: Duration::from_secs(10),
            min_retries_per_second: 1,
        }
        .validate();
        assert_eq!(
            NEGATIVE_RATIO,
            Err(ConfigError::RateOutOfRange(ConfigField::BudgetRetryRatio))
        );

        const NO_WINDOW: Result<(), ConfigError> = RestartIntensity {
            window: Duration::ZERO,
            backoff: None,
        }
        .validate();
        assert_eq!(
            NO_WINDOW,
            Err(ConfigError::Zero(ConfigField::RestartWindow))
        );

        const NAN_BACKOFF: Result<(), ConfigError> = RestartBackoff {
            multiplier: f32::NAN,
            max: Duration::from_secs(60),
        }
        .validate();
        assert_eq!(
            NAN_BACKOFF,
            Err(ConfigError::NotFinite(
                ConfigField::RestartBackoffMultiplier
            ))
        );
    }
}
