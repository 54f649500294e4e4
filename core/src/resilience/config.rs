//! Presets: one [`ResilienceConfig`] that holds every part, with `production()`,
//! `development()` and `Default`, and a `validate()` that also checks the parts against each
//! other.
//!
//! # Why these production values
//! | Value | Production | Source |
//! |---|---|---|
//! | breaker opens after | 5 consecutive failures | the chapter's example |
//! | breaker open time | 30 s, doubling on each failed probe cycle up to 5 min | the chapter's example; growth as AWS's backoff guidance advises for repeated failures |
//! | breaker closes after | 2 good probes, 2 probes at a time, a cycle lasts at most 60 s | the chapter's example; Resilience4j's `maxWaitDurationInHalfOpenState` idea |
//! | retry | 3 attempts, full jitter 100 ms .. 10 s, x2, on transient and timeout errors | the chapter's example; "Exponential Backoff And Jitter" (AWS Architecture Blog, 2015) recommends full jitter |
//! | retry budget | retries <= 20 % of requests + 10/s over 10 s | Finagle's `RetryBudget` and tower's `TpsBudget` defaults |
//! | retries of one call end within | 60 s | must stay under `timeout.max_timeout` |
//! | timeouts | 30 s default, 300 s max, deadlines propagate, queue time counts | the chapter's example |
//! | health probe | every 10 s, 5 s timeout, 3 failures to fail, 1 success to pass | the chapter's example; thresholds are Kubernetes' defaults (`failureThreshold: 3`, `successThreshold: 1`) |
//! | recovery | restart after 5 s, at most 3 restarts, then notify an operator | the chapter's example |
//! | restart intensity | at most 3 restarts within 120 s, delays doubling up to 60 s | Erlang/OTP supervisors bound restarts per period (OTP's default: 1 restart per 5 s); the window is longer because restarts here wait 5 s or more |
//!
//! `development()` keeps the same shape with short times and small thresholds so that faults
//! show quickly on a laptop.

use core::time::Duration;

use crate::error::{ConfigError, ConfigField, ErrorKind, ErrorKindSet};
use crate::resilience::{
    BackoffStrategy, CircuitBreakerConfig, DEFAULT_RESTART_CAPACITY, HealthProbeConfig,
    OpenBackoff, RecoveryPolicy, RecoveryStrategy, RestartBackoff, RestartIntensity,
    RetryBudgetConfig, RetryConfig, TimeoutConfig,
};

/// Every resilience setting of a service or firmware in one value.
///
/// The chapter's fields come first; `retry_budget`, `retry_max_elapsed` and
/// `restart_intensity` complete them. `Default` is [`ResilienceConfig::production`], so
/// `ResilienceConfig { retry: .., ..Default::default() }` customises the production preset.
#[derive(Clone, Copy, Debug, PartialEq)]
#[cfg_attr(feature = "serde", derive(serde::Serialize, serde::Deserialize))]
#[cfg_attr(feature = "serde", serde(default))]
#[cfg_attr(feature = "defmt", derive(defmt::Format))]
pub struct ResilienceConfig {
    /// The circuit breaker guarding each kernel.
    pub circuit_breaker: CircuitBreakerConfig,
    /// How failed calls are retried.
    pub retry: RetryConfig,
    /// Per-call and maximum timeouts, deadline propagation.
    pub timeout: TimeoutConfig,
    /// Health probes of each kernel (the chapter calls the type `HealthCheckConfig`).
    pub health_check: HealthProbeConfig,
    /// What to do when a kernel fails.
    pub recovery: RecoveryPolicy,
    /// The share of requests that may be retries, shared by all calls.
    pub retry_budget: RetryBudgetConfig,
    /// The longest time the retries of one call may take, first attempt included; the call's
    /// deadline bounds it further.
    pub retry_max_elapsed: Duration,
    /// How many restarts `recovery` may make within which window before it escalates.
    pub restart_intensity: RestartIntensity,
}

impl ResilienceConfig {
    /// The production preset (see the [module docs](self) for each value and its source).
    #[must_use]
    pub const fn production() -> Self {
        Self {
            circuit_breaker: CircuitBreakerConfig::production(),
            retry: RetryConfig::production(),
            timeout: TimeoutConfig::production(),
            health_check: HealthProbeConfig::production(),
            recovery: RecoveryPolicy::production(),
            retry_budget: RetryBudgetConfig::production(),
            retry_max_elapsed: Duration::from_secs(60),
            restart_intensity: RestartIntensity::production(),
        }
    }

    /// Short times and small thresholds, so that faults show within seconds during development.
    #[must_use]
    pub const fn development() -> Self {
        Self {
            circuit_breaker: CircuitBreakerConfig {
                failure_threshold: 3,
                success_threshold: 1,
                timeout: Duration::from_secs(5),
                half_open_max_calls: 1,
                max_wait_in_half_open: Duration::from_secs(10),
                open_backoff: None,
                ..CircuitBreakerConfig::production()
            },
            retry: RetryConfig {
                max_attempts: 2,
                backoff: BackoffStrategy::ExponentialWithJitter {
                    initial: Duration::from_millis(10),
                    max: Duration::from_secs(1),
                    multiplier: 2.0,
                },
                retryable_errors: ErrorKindSet::of(&[ErrorKind::Transient, ErrorKind::Timeout]),
            },
            timeout: TimeoutConfig {
                default_timeout: Duration::from_secs(5),
                max_timeout: Duration::from_secs(30),
                propagate_deadline: true,
                include_queue_time: true,
            },
            health_check: HealthProbeConfig {
                interval: Duration::from_secs(2),
                timeout: Duration::from_secs(1),
                failure_threshold: 2,
                success_threshold: 1,
            },
            recovery: RecoveryPolicy {
                strategy: RecoveryStrategy::RestartKernel,
                max_restarts: 3,
                restart_delay: Duration::from_secs(1),
                escalation: Some(RecoveryStrategy::NotifyOperator),
            },
            retry_budget: RetryBudgetConfig {
                window: Duration::from_secs(10),
                min_retries_per_second: 10,
                retry_ratio: 0.5,
            },
            retry_max_elapsed: Duration::from_secs(10),
            restart_intensity: RestartIntensity {
                window: Duration::from_secs(30),
                backoff: None,
            },
        }
    }

    /// Checks every part, then the parts against each other: retries must end within
    /// `timeout.max_timeout`, one backoff delay must fit in `retry_max_elapsed`, and the restart
    /// delays must fit in the restart window (the health probe's own check already keeps its
    /// timeout within its interval). The recovery settings are checked exactly as the
    /// supervisors check them ([`RestartIntensity::validate_for`] with
    /// [`DEFAULT_RESTART_CAPACITY`]), so a config that validates builds a supervisor.
    ///
    /// # Errors
    /// The first invalid value, as a [`ConfigError`] naming the field.
    pub fn validate(&self) -> Result<(), ConfigError> {
        self.validate_for_window(0)
    }

    /// As [`validate`](Self::validate), for a breaker over a window of `window_capacity`
    /// outcomes (see [`CircuitBreakerConfig::validate_for_window`]): a configuration in the
    /// failure-rate or slow-call mode is valid only for a breaker with a window.
    ///
    /// # Errors
    /// The first invalid value found.
    pub fn validate_for_window(&self, window_capacity: u32) -> Result<(), ConfigError> {
        self.circuit_breaker.validate_for_window(window_capacity)?;
        self.retry.validate()?;
        self.timeout.validate()?;
        self.health_check.validate()?;
        self.retry_budget.validate()?;
        self.restart_intensity
            .validate_for(&self.recovery, DEFAULT_RESTART_CAPACITY)?;
        if self.retry_max_elapsed.is_zero() {
            return Err(ConfigError::Zero(ConfigField::RetryMaxElapsed));
        }
        if self.retry_max_elapsed > self.timeout.max_timeout {
            return Err(ConfigError::Exceeds {
                field: ConfigField::RetryMaxElapsed,
                limit: ConfigField::MaxTimeout,
            });
        }
        if self.retry.max_attempts > 1 && self.retry.backoff.max_delay() > self.retry_max_elapsed {
            return Err(ConfigError::Exceeds {
                field: ConfigField::BackoffMax,
                limit: ConfigField::RetryMaxElapsed,
            });
        }
        Ok(())
    }
}

impl Default for ResilienceConfig {
    /// [`ResilienceConfig::production`].
    fn default() -> Self {
        Self::production()
    }
}

impl CircuitBreakerConfig {
    /// The production breaker: 5 failures open it for 30 s (growing x2 per failed probe cycle
    /// up to 5 min), 2 good probes close it, `InvalidInput` errors are ignored.
    #[must_use]
    pub const fn production() -> Self {
        Self {
            failure_threshold: 5,
            success_threshold: 2,
            timeout: Duration::from_secs(30),
            half_open_max_calls: 2,
            failure_rate_threshold: None,
            minimum_calls: 20,
            slow_call_duration: None,
            slow_call_rate_threshold: 1.0,
            max_wait_in_half_open: Duration::from_secs(60),
            open_backoff: Some(OpenBackoff {
                multiplier: 2.0,
                max: Duration::from_secs(300),
            }),
            ignored_errors: ErrorKindSet::of(&[ErrorKind::InvalidInput]),
            ..CircuitBreakerConfig::DEFAULT
        }
    }
}

impl RetryConfig {
    /// The chapter's retry: 3 attempts, full jitter from 100 ms up to 10 s, doubling, on
    /// transient and timeout errors.
    #[must_use]
    pub const fn production() -> Self {
        Self {
            max_attempts: 3,
            backoff: BackoffStrategy::ExponentialWithJitter {
                initial: Duration::from_millis(100),
                max: Duration::from_secs(10),
                multiplier: 2.0,
            },
            retryable_errors: ErrorKindSet::of(&[ErrorKind::Transient, ErrorKind::Timeout]),
        }
    }
}

impl TimeoutConfig {
    /// The chapter's timeouts: 30 s by default, 300 s at most, deadlines propagate and queue
    /// time counts.
    #[must_use]
    pub const fn production() -> Self {
        Self {
            default_timeout: Duration::from_secs(30),
            max_timeout: Duration::from_secs(300),
            propagate_deadline: true,
            include_queue_time: true,
        }
    }
}

impl RecoveryPolicy {
    /// The chapter's policy: restart after 5 s, at most 3 times, then notify an operator.
    #[must_use]
    pub const fn production() -> Self {
        Self {
            strategy: RecoveryStrategy::RestartKernel,
            max_restarts: 3,
            restart_delay: Duration::from_secs(5),
            escalation: Some(RecoveryStrategy::NotifyOperator),
        }
    }
}

impl RestartIntensity {
    /// At most `max_restarts` restarts within 120 s, delays doubling up to 60 s.
    #[must_use]
    pub const fn production() -> Self {
        Self {
            window: Duration::from_secs(120),
            backoff: Some(RestartBackoff {
                multiplier: 2.0,
                max: Duration::from_secs(60),
            }),
        }
    }
}

impl RetryBudgetConfig {
    /// Retries may be at most 20 % of the requests of the last 10 s plus 10 per second
    /// (Finagle's and tower's defaults).
    #[must_use]
    pub const fn production() -> Self {
        Self {
            window: Duration::from_secs(10),
            min_retries_per_second: 10,
            retry_ratio: 0.2,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::resilience::HealthCheckConfig;

    #[test]
    fn presets_are_valid() {
        assert_eq!(ResilienceConfig::production().validate(), Ok(()));
        assert_eq!(ResilienceConfig::development().validate(), Ok(()));
        assert_eq!(ResilienceConfig::default(), ResilienceConfig::production());
    }

    #[test]
    fn the_chapters_customisation_compiles_and_validates() {
        let config = ResilienceConfig {
            circuit_breaker: CircuitBreakerConfig::production(),
            retry: RetryConfig::production(),
            timeout: TimeoutConfig::production(),
            health_check: HealthCheckConfig::production(),
            ..Default::default()
        };
        assert_eq!(config.validate(), Ok(()));
    }

    #[test]
    fn relations_across_parts_are_checked() {
        let base = ResilienceConfig::production();
        let long_retries = ResilienceConfig {
            retry_max_elapsed: Duration::from_secs(301),
            ..base
        };
        assert_eq!(
            long_retries.validate(),
            Err(ConfigError::Exceeds {
                field: ConfigField::RetryMaxElapsed,
                limit: ConfigField::MaxTimeout
            })
        );
        let short_budget = ResilienceConfig {
            retry_max_elapsed: Duration::from_secs(5),
            ..base
        };
        assert_eq!(
            short_budget.validate(),
            Err(ConfigError::Exceeds {
                field: ConfigField::BackoffMax,
                limit: ConfigField::RetryMaxElapsed
            })
        );
        let slow_probe = ResilienceConfig {
            health_check: HealthProbeConfig {
                timeout: Duration::from_secs(11),
                ..base.health_check
            },
            ..base
        };
        assert_eq!(
            slow_probe.validate(),
            Err(ConfigError::Exceeds {
                field: ConfigField::ProbeTimeout,
                limit: ConfigField::ProbeInterval
            })
        );
        let zero = ResilienceConfig {
            retry_max_elapsed: Duration::ZERO,
            ..base
        };
        assert_eq!(
            zero.validate(),
            Err(ConfigError::Zero(ConfigField::RetryMaxElapsed))
        );
        let bad_part = ResilienceConfig {
            circuit_breaker: CircuitBreakerConfig {
                failure_threshold: 0,
                ..base.circuit_breaker
            },
            ..base
        };
        assert_eq!(
            bad_part.validate(),
            Err(ConfigError::Zero(ConfigField::FailureThreshold))
        );
    }

    /// `validate` accepts exactly the recovery settings a supervisor accepts (a `Recovery`
    /// of the default capacity), and a huge `max_restarts` is refused at once.
    #[test]
    fn recovery_validation_agrees_with_the_machine() {
        use crate::resilience::{DEFAULT_RESTART_CAPACITY, Recovery, RestartBackoff};
        let base = ResilienceConfig::production();
        let policy = |max_restarts, restart_delay| RecoveryPolicy {
            max_restarts,
            restart_delay,
            ..base.recovery
        };
        let plain = |window| RestartIntensity {
            window,
            backoff: None,
        };
        let cases = [
            (
                policy(9, Duration::from_secs(1)),
                plain(Duration::from_secs(600)),
            ),
            (
                policy(u32::MAX, Duration::ZERO),
                plain(Duration::from_secs(60)),
            ),
            (
                policy(u32::MAX, Duration::from_secs(5)),
                plain(Duration::MAX),
            ),
            (
                policy(8, Duration::from_secs(1)),
                plain(Duration::from_secs(600)),
            ),
            (
                policy(3, Duration::from_secs(5)),
                plain(Duration::from_secs(15)),
            ),
            (policy(3, Duration::from_secs(5)), base.restart_intensity),
            (policy(0, Duration::from_secs(5)), base.restart_intensity),
            (
                RecoveryPolicy {
                    strategy: RecoveryStrategy::Failover,
                    max_restarts: u32::MAX,
                    restart_delay: Duration::MAX,
                    escalation: None,
                },
                plain(Duration::from_secs(1)),
            ),
            (
                policy(u32::MAX, Duration::from_nanos(1_500)),
                RestartIntensity {
                    window: Duration::MAX,
                    backoff: Some(RestartBackoff {
                        multiplier: 1.000_000_1,
                        max: Duration::MAX,
                    }),
                },
            ),
        ];
        for (recovery, restart_intensity) in cases {
            let config = ResilienceConfig {
                recovery,
                restart_intensity,
                ..base
            };
            let machine =
                Recovery::<DEFAULT_RESTART_CAPACITY>::try_new(recovery, restart_intensity);
            assert_eq!(
                config.validate().is_ok(),
                machine.is_ok(),
                "{recovery:?} {restart_intensity:?}: {:?} vs {:?}",
                config.validate(),
                machine.err()
            );
        }
        let huge = ResilienceConfig {
            recovery: policy(u32::MAX, Duration::ZERO),
            restart_intensity: plain(Duration::from_secs(60)),
            ..base
        };
        assert_eq!(
            huge.validate(),
            Err(ConfigError::TooLarge {
                field: ConfigField::MaxRestarts,
                max: 8,
            })
        );
    }
}
