//! The embassy `Pipeline` on the mock clock: one flat error, each attempt through the breaker,
//! attempts cut by their timeout, the total deadline bounding everything, in a `static`.

mod common;

use core::cell::Cell;
use core::time::Duration as StdDuration;

use common::{now_ms, run_ms, serial};
use embassy_sync::blocking_mutex::raw::CriticalSectionRawMutex;
use embassy_time::{Duration, Timer};
use rustkernel_core::error::ByClassify;
use rustkernel_core::error::ErrorKind;
use rustkernel_core::resilience::{
    BackoffStrategy, CircuitBreakerConfig, CircuitState, PipelineConfig, ResilienceConfig,
    RetryConfig, TimeoutConfig,
};
use rustkernel_embassy::deadline::DeadlineContext;
use rustkernel_embassy::pipeline::RequestDeadline;
use rustkernel_embassy::{Pipeline, ResilienceError};

const fn config(failure_threshold: u32, attempt_timeout: Option<StdDuration>) -> PipelineConfig {
    PipelineConfig {
        circuit_breaker: CircuitBreakerConfig {
            failure_threshold,
            timeout: StdDuration::from_secs(30),
            ..CircuitBreakerConfig::DEFAULT
        },
        retry: RetryConfig {
            max_attempts: 4,
            backoff: BackoffStrategy::Fixed {
                delay: StdDuration::from_millis(10),
            },
            retryable_errors: rustkernel_core::error::ErrorKindSet::of(&[
                ErrorKind::Transient,
                ErrorKind::Timeout,
                ErrorKind::Unavailable,
            ]),
        },
        timeout: TimeoutConfig {
            default_timeout: StdDuration::from_secs(1),
            max_timeout: StdDuration::from_secs(10),
            propagate_deadline: true,
            include_queue_time: true,
        },
        attempt_timeout,
    }
}

static OPENS: Pipeline<CriticalSectionRawMutex> = Pipeline::new(config(2, None), 1);

#[test]
fn a_static_pipeline_retries_then_its_breaker_rejects_at_the_top_level() {
    let _clock = serial();
    let calls = Cell::new(0);
    let outcome = run_ms(
        OPENS.execute_outcome(&rustkernel_core::error::ByClassify, || {
            calls.set(calls.get() + 1);
            async { Err::<u32, _>(ErrorKind::Transient) }
        }),
    );
    // Two failures open the breaker; the next two attempts are rejected by it, not run.
    assert_eq!(outcome.result, Err(ResilienceError::CircuitOpen));
    assert_eq!((calls.get(), outcome.attempts), (2, 4));
    assert_eq!(OPENS.breaker().state(), CircuitState::Open);
    // One level: the naive match sees the rejection.
    let again = run_ms(OPENS.execute(|| async { Ok::<u32, ErrorKind>(1) }));
    assert!(matches!(again, Err(ResilienceError::CircuitOpen)));
}

#[test]
fn attempt_timeouts_cut_hung_attempts_within_the_total_deadline() {
    let _clock = serial();
    let pipeline: Pipeline<CriticalSectionRawMutex> =
        Pipeline::try_new(config(10, Some(StdDuration::from_millis(100))), 2).expect("valid");
    let calls = Cell::new(0);
    let result = run_ms(pipeline.execute(|| {
        calls.set(calls.get() + 1);
        let n = calls.get();
        async move {
            if n < 3 {
                Timer::after(Duration::from_secs(60)).await;
            }
            Ok::<u32, ErrorKind>(n)
        }
    }));
    assert_eq!(result, Ok(3));
    // Two attempts cut at 100 ms, two 10 ms waits.
    assert_eq!(now_ms(), 220);
    assert_eq!(pipeline.breaker().stats().failure_count, 2);

    // Every attempt hangs: the total deadline (1 s) ends the call with the call's own timeout.
    embassy_time::MockDriver::get().reset();
    let hung: Pipeline<CriticalSectionRawMutex> =
        Pipeline::new(config(100, Some(StdDuration::from_millis(400))), 3);
    let result = run_ms(hung.execute(|| async {
        Timer::after(Duration::from_secs(60)).await;
        Ok::<u32, ErrorKind>(0)
    }));
    assert_eq!(result, Err(ResilienceError::Timeout));
    assert!(now_ms() <= 1_000, "{}", now_ms());
}

#[test]
fn a_closure_classifies_a_foreign_error() {
    let _clock = serial();
    let pipeline: Pipeline<CriticalSectionRawMutex> = Pipeline::new(
        PipelineConfig::from_resilience(&ResilienceConfig::production()),
        4,
    );
    let calls = Cell::new(0);
    let outcome = run_ms(pipeline.execute_outcome(
        &|_: &core::num::ParseIntError| ErrorKind::InvalidInput,
        || {
            calls.set(calls.get() + 1);
            async { "x".parse::<u32>() }
        },
    ));
    assert!(matches!(outcome.result, Err(ResilienceError::Operation(_))));
    assert_eq!((calls.get(), outcome.attempts), (1, 1));
}

/// A request's deadline: a caller's deadline that comes first is `DeadlineExceeded`, a call
/// queued past its whole timeout is not attempted, and a request longer than `max_timeout` is
/// cut there as the call's own `Timeout`.
#[test]
fn a_requests_deadline_and_its_callers_are_told_apart() {
    let _clock = serial();
    let pipeline: Pipeline<CriticalSectionRawMutex> = Pipeline::new(config(100, None), 5);
    let hang = || async {
        Timer::after(Duration::from_secs(60)).await;
        Ok::<u32, ErrorKind>(0)
    };
    let parent = DeadlineContext::new(StdDuration::from_millis(300));
    let outcome = run_ms(pipeline.execute_request(
        RequestDeadline {
            parent: Some(parent),
            ..RequestDeadline::default()
        },
        &ByClassify,
        hang,
    ));
    assert_eq!(outcome.result, Err(ResilienceError::DeadlineExceeded));
    assert_eq!((outcome.attempts, now_ms()), (1, 300));

    let queued_at = embassy_time::Instant::now();
    embassy_time::MockDriver::get().advance(Duration::from_secs(2));
    let outcome = run_ms(pipeline.execute_request(
        RequestDeadline {
            enqueued_at: Some(queued_at),
            ..RequestDeadline::default()
        },
        &ByClassify,
        hang,
    ));
    assert_eq!(outcome.result, Err(ResilienceError::DeadlineExceeded));
    assert_eq!(outcome.attempts, 0);

    let start = now_ms();
    let outcome = run_ms(pipeline.execute_request(
        RequestDeadline {
            timeout: Some(StdDuration::from_secs(3_600)),
            ..RequestDeadline::default()
        },
        &ByClassify,
        hang,
    ));
    assert_eq!(outcome.result, Err(ResilienceError::Timeout));
    assert_eq!(now_ms() - start, 10_000);
}

#[test]
fn an_invalid_configuration_is_a_typed_error() {
    use rustkernel_core::error::{ConfigError, ConfigField};
    type P = Pipeline<CriticalSectionRawMutex>;

    let _clock = serial();
    let mut no_attempts = config(3, None);
    no_attempts.retry.max_attempts = 0;
    assert_eq!(
        P::try_new(no_attempts, 1).err(),
        Some(ConfigError::Zero(ConfigField::MaxAttempts))
    );
    let zero_attempt_timeout = P::try_new(config(3, Some(StdDuration::ZERO)), 1);
    assert_eq!(
        zero_attempt_timeout.err(),
        Some(ConfigError::Zero(ConfigField::DefaultTimeout))
    );
    assert_eq!(
        P::try_new(config(0, None), 1).err(),
        Some(ConfigError::Zero(ConfigField::FailureThreshold))
    );
}
