//! The `const` constructors name the field and its rule when a configuration is invalid: in a
//! `static` that message fails the build; called at run time (as here) it is the panic's.

use core::time::Duration;

use rustkernel_embassy::resilience::{
    BackoffStrategy, CircuitBreaker, CircuitBreakerConfig, CircuitState, CountWindow,
    CriticalSectionRawMutex, ErrorKind, ErrorKindSet, NoopRawMutex, Pipeline, PipelineConfig,
    ResilienceConfig, Retrier, RetryBudgetConfig, RetryConfig, SharedRetryBudget, ValidRetryConfig,
};

fn retry(max_attempts: u32) -> RetryConfig {
    RetryConfig {
        max_attempts,
        backoff: BackoffStrategy::Fixed {
            delay: Duration::from_millis(1),
        },
        retryable_errors: ErrorKindSet::of(&[ErrorKind::Transient]),
    }
}

// Valid ones build in a `const` and a `static`.
const RETRY: ValidRetryConfig = ValidRetryConfig::new(RetryConfig {
    max_attempts: 2,
    backoff: BackoffStrategy::Fixed {
        delay: Duration::from_millis(1),
    },
    retryable_errors: ErrorKindSet::of(&[ErrorKind::Transient]),
});
static BREAKER: CircuitBreaker<CriticalSectionRawMutex, CircuitBreakerConfig, CountWindow<8>> =
    CircuitBreaker::with_window(
        CircuitBreakerConfig {
            failure_rate_threshold: Some(0.5),
            minimum_calls: 8,
            half_open_permitted_calls: Some(4),
            ..CircuitBreakerConfig::DEFAULT
        },
        CountWindow::new(),
    );

#[test]
fn valid_configurations_build_in_const_and_static() {
    assert_eq!(RETRY.get().max_attempts, 2);
    assert_eq!(BREAKER.state(), CircuitState::Closed);
    let _ = Retrier::new(retry(3), 1);
}

#[test]
#[should_panic(
    expected = "invalid circuit breaker configuration: circuit_breaker.failure_rate_threshold must be greater than 0 and at most 1"
)]
fn a_breaker_names_its_field() {
    let _ = CircuitBreaker::<NoopRawMutex, _, _>::with_window(
        CircuitBreakerConfig {
            failure_rate_threshold: Some(1.5),
            ..CircuitBreakerConfig::DEFAULT
        },
        CountWindow::<8>::new(),
    );
}

#[test]
#[should_panic(
    expected = "invalid circuit breaker configuration: circuit_breaker.half_open_permitted_calls is set, so circuit_breaker.failure_rate_threshold must be set too"
)]
fn a_breaker_names_what_its_field_needs() {
    let _ = CircuitBreaker::<NoopRawMutex>::new(CircuitBreakerConfig {
        half_open_permitted_calls: Some(5),
        ..CircuitBreakerConfig::DEFAULT
    });
}

#[test]
#[should_panic(
    expected = "invalid retry configuration: retry.max_attempts must be greater than zero"
)]
fn a_retrier_names_its_field() {
    let _ = Retrier::new(retry(0), 1);
}

#[test]
#[should_panic(
    expected = "invalid retry budget configuration: retry_budget.retry_ratio must be a finite number"
)]
fn a_retry_budget_names_its_field() {
    let _ = SharedRetryBudget::<NoopRawMutex>::new(RetryBudgetConfig {
        window: Duration::from_secs(10),
        min_retries_per_second: 1,
        retry_ratio: f32::NAN,
    });
}

#[test]
#[should_panic(expected = "invalid pipeline configuration: circuit_breaker.success_threshold")]
fn a_pipeline_names_its_field() {
    let mut config = PipelineConfig::from_resilience(&ResilienceConfig::production());
    config.circuit_breaker.success_threshold = 0;
    let _ = Pipeline::<NoopRawMutex>::new(config, 1);
}
