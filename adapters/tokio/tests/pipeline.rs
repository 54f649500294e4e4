//! The pipeline and hand-composed wrappers return ONE level of `ResilienceError`; the order is
//! deadline, retry, breaker per attempt, attempt timeout. All on tokio's paused clock.
#![allow(clippy::panic, clippy::unwrap_used)]

use std::cell::Cell;
use std::time::Duration;

use rustkernel_core::rng::Rng;
use rustkernel_tokio::classify;
use rustkernel_tokio::resilience::{
    BackoffStrategy, CircuitBreaker, CircuitBreakerConfig, CircuitState, Classify, DeadlineContext,
    ErrorKind, Pipeline, PipelineConfig, RequestDeadline, ResilienceConfig, ResilienceError,
    Retrier, RetryConfig, RetryExt, TimeoutConfig,
};

const MS: Duration = Duration::from_millis(1);

/// A fake GPU kernel that fails 30 % of the time (seeded).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
struct KernelFault;
impl Classify for KernelFault {}

struct FlakyKernel {
    rng: Cell<Rng>,
    calls: Cell<u32>,
}

impl FlakyKernel {
    fn new(seed: u64) -> Self {
        Self {
            rng: Cell::new(Rng::new(seed)),
            calls: Cell::new(0),
        }
    }

    async fn run(&self, input: u64) -> Result<u64, KernelFault> {
        self.calls.set(self.calls.get() + 1);
        let mut rng = self.rng.get();
        let fail = rng.next_u64() % 10 < 3;
        self.rng.set(rng);
        tokio::time::sleep(MS).await;
        if fail {
            Err(KernelFault)
        } else {
            Ok(input * 2)
        }
    }
}

fn retry_config() -> RetryConfig {
    RetryConfig {
        max_attempts: 2,
        backoff: BackoffStrategy::Fixed { delay: 5 * MS },
        retryable_errors: [ErrorKind::Transient].into(),
    }
}

/// The run: 100 calls of `deadline.execute(|| cb.call(|| retry.execute(..)))`. The naive
/// top-level match now sees every breaker rejection, and agrees with the breaker's own count.
#[tokio::test(start_paused = true)]
async fn hand_composed_wrappers_return_one_level_and_rejections_are_counted() {
    let kernel = FlakyKernel::new(7);
    let cb = CircuitBreaker::new(CircuitBreakerConfig {
        failure_threshold: 1,
        success_threshold: 1,
        timeout: Duration::from_secs(3600),
        ..Default::default()
    });
    let retry = Retrier::new(retry_config()).seed(1);
    let (mut ok, mut rejected, mut failed, mut other) = (0_u32, 0_u32, 0_u32, 0_u32);
    for input in 0..100 {
        let result = DeadlineContext::new(Duration::from_secs(1))
            .execute(|| cb.call(|| retry.execute(|| kernel.run(input))))
            .await;
        // Compiles against ONE level: `Result<u64, ResilienceError<KernelFault>>`.
        let result: Result<u64, ResilienceError<KernelFault>> = result;
        match result {
            Ok(value) => {
                assert_eq!(value, input * 2);
                ok += 1;
            }
            Err(ResilienceError::CircuitOpen) => rejected += 1,
            Err(ResilienceError::Operation(KernelFault)) => failed += 1,
            Err(_) => other += 1,
        }
    }
    let stats = cb.stats();
    assert_eq!(other, 0);
    assert_eq!(ok + rejected + failed, 100);
    assert!(rejected > 0, "the breaker opened and rejected");
    assert_eq!(u64::from(rejected), stats.rejected_count, "{stats:?}");
    assert_eq!(u64::from(failed), stats.failure_count, "{stats:?}");
    let message = ResilienceError::Operation("bad input").to_string();
    assert_eq!(message, "operation failed: bad input");
}

/// Retry outside the breaker: each attempt asks the breaker, so an open breaker stops retries
/// hammering the kernel, and the result says `CircuitOpen` with the attempts made.
#[tokio::test(start_paused = true)]
async fn each_attempt_asks_the_breaker_and_the_outcome_counts_attempts() {
    let pipeline = Pipeline::builder()
        .retry(
            Retrier::new(RetryConfig {
                max_attempts: 5,
                backoff: BackoffStrategy::Fixed { delay: 10 * MS },
                retryable_errors: [ErrorKind::Transient, ErrorKind::Unavailable].into(),
            })
            .seed(3),
        )
        .breaker(CircuitBreaker::new(CircuitBreakerConfig {
            failure_threshold: 2,
            timeout: Duration::from_secs(30),
            ..Default::default()
        }))
        .build();
    let calls = Cell::new(0);
    let outcome = pipeline
        .execute_outcome(None, || {
            calls.set(calls.get() + 1);
            async { Err::<(), _>(ErrorKind::Transient) }
        })
        .await;
    assert_eq!(outcome.result, Err(ResilienceError::CircuitOpen));
    // Two failures opened the breaker; the remaining three attempts were rejected by it.
    assert_eq!(calls.get(), 2);
    assert_eq!(outcome.attempts, 5);
    let retry_after = outcome
        .retry_after
        .expect("an open breaker says when to come back");
    assert!(retry_after <= Duration::from_secs(30) && retry_after > Duration::from_secs(29));
    assert_eq!(
        pipeline.breaker().unwrap().state(),
        CircuitState::Open,
        "the breaker saw every attempt"
    );
}

/// The attempt timeout cuts a hung attempt (the breaker counts it as a timeout) and the retry
/// makes another within the total deadline; the total deadline bounds it all.
#[tokio::test(start_paused = true)]
async fn attempt_timeout_cuts_hung_attempts_and_the_total_deadline_bounds_them() {
    let pipeline = Pipeline::builder()
        .timeout(TimeoutConfig {
            default_timeout: Duration::from_secs(1),
            ..TimeoutConfig::default()
        })
        .retry(
            Retrier::new(RetryConfig {
                max_attempts: 3,
                backoff: BackoffStrategy::Fixed { delay: 10 * MS },
                retryable_errors: [ErrorKind::Timeout].into(),
            })
            .seed(5),
        )
        .breaker(CircuitBreaker::new(CircuitBreakerConfig {
            failure_threshold: 10,
            ..Default::default()
        }))
        .attempt_timeout(100 * MS)
        .build();
    let calls = Cell::new(0);
    let started = tokio::time::Instant::now();
    let result = pipeline
        .execute(|| {
            let n = calls.get() + 1;
            calls.set(n);
            async move {
                if n < 3 {
                    std::future::pending::<()>().await;
                }
                Ok::<_, ErrorKind>(n)
            }
        })
        .await;
    assert_eq!(result, Ok(3));
    assert_eq!(started.elapsed(), 220 * MS);
    assert_eq!(pipeline.breaker().unwrap().stats().failure_count, 2);

    // Every attempt hangs: the total deadline (1 s) is the call's own timeout.
    let hung = Pipeline::builder()
        .timeout(TimeoutConfig {
            default_timeout: Duration::from_secs(1),
            ..TimeoutConfig::default()
        })
        .retry(Retrier::new(RetryConfig {
            max_attempts: 100,
            backoff: BackoffStrategy::Fixed { delay: 10 * MS },
            retryable_errors: [ErrorKind::Timeout].into(),
        }))
        .attempt_timeout(400 * MS)
        .build();
    let started = tokio::time::Instant::now();
    let result = hung
        .execute(std::future::pending::<Result<(), ErrorKind>>)
        .await;
    assert!(
        result.as_ref().is_err_and(ResilienceError::is_timeout),
        "{result:?}"
    );
    assert!(started.elapsed() <= Duration::from_secs(1));

    // A request's own deadline, clamped by max_timeout, from the request.
    let outcome = hung
        .execute_outcome(
            Some(RequestDeadline {
                timeout: Some(50 * MS),
                enqueued_at: None,
            }),
            std::future::pending::<Result<(), ErrorKind>>,
        )
        .await;
    assert_eq!(outcome.result, Err(ResilienceError::Timeout));
    assert_eq!(outcome.attempts, 1);
}

/// The caller's deadline caps the pipeline's: when it runs out, the result is
/// `DeadlineExceeded`, not the call's own `Timeout`.
#[tokio::test(start_paused = true)]
async fn a_callers_deadline_is_deadline_exceeded() {
    let pipeline = Pipeline::from_config(&ResilienceConfig::production()).unwrap();
    let result = DeadlineContext::new(100 * MS)
        .scope(pipeline.execute(std::future::pending::<Result<(), ErrorKind>>))
        .await;
    assert_eq!(result, Err(ResilienceError::DeadlineExceeded));
}

/// Errors of other crates need no newtype: a closure classifier, or the std impls.
#[tokio::test(start_paused = true)]
async fn foreign_errors_classify_with_a_closure_or_through_std() {
    // `ParseIntError` is not `Classify`: a closure says it is invalid input (not retried).
    let pipeline = Pipeline::builder()
        .retry(Retrier::new(retry_config()))
        .classify_with(|_: &std::num::ParseIntError| ErrorKind::InvalidInput)
        .build();
    let calls = Cell::new(0);
    let result = pipeline
        .execute(|| {
            calls.set(calls.get() + 1);
            async { "x".parse::<u32>() }
        })
        .await;
    assert!(matches!(result, Err(ResilienceError::Operation(_))));
    assert_eq!(calls.get(), 1);

    // `std::io::Error` classifies by its kind: `ConnectionReset` is transient and retried.
    let calls = Cell::new(0);
    let result = retry_config()
        .execute(|| {
            calls.set(calls.get() + 1);
            async { Err::<(), _>(std::io::Error::from(std::io::ErrorKind::ConnectionReset)) }
        })
        .await;
    assert!(
        matches!(result, Err(ResilienceError::Operation(ref e)) if e.kind() == std::io::ErrorKind::ConnectionReset)
    );
    assert_eq!(calls.get(), 2);

    // A breaker with a closure, for an error of another crate.
    let cb = CircuitBreaker::new(CircuitBreakerConfig {
        failure_threshold: 1,
        ..Default::default()
    });
    let classified = cb.classify_with(|_: &std::fmt::Error| ErrorKind::Permanent);
    let result = classified
        .call(|| async { Err::<(), _>(std::fmt::Error) })
        .await;
    assert_eq!(result, Err(ResilienceError::Operation(std::fmt::Error)));
    assert_eq!(cb.state(), CircuitState::Open);

    // Boxed errors look inside for an io::Error; tokio's Elapsed is a timeout through the
    // adapter's classifiers (the core names no runtime).
    let boxed: Box<dyn std::error::Error + Send + Sync> =
        Box::new(std::io::Error::from(std::io::ErrorKind::TimedOut));
    assert_eq!(Classify::kind(&boxed), ErrorKind::Timeout);
    let elapsed = tokio::time::timeout(MS, std::future::pending::<()>())
        .await
        .unwrap_err();
    assert_eq!(classify::elapsed(&elapsed), ErrorKind::Timeout);
    let boxed: Box<dyn std::error::Error + Send + Sync> = Box::new(elapsed);
    assert_eq!(classify::boxed(&boxed), ErrorKind::Timeout);
    assert_eq!(Classify::kind(&boxed), ErrorKind::Transient);

    // A pipeline over `tokio::time::timeout`: each cut attempt is a timeout, so it is retried.
    let pipeline = Pipeline::builder()
        .retry(Retrier::new(RetryConfig {
            retryable_errors: [ErrorKind::Timeout].into(),
            ..retry_config()
        }))
        .classify_with(classify::elapsed)
        .build();
    let calls = Cell::new(0);
    let result = pipeline
        .execute(|| {
            calls.set(calls.get() + 1);
            tokio::time::timeout(MS, std::future::pending::<()>())
        })
        .await;
    assert!(matches!(result, Err(ResilienceError::Operation(_))));
    assert_eq!(calls.get(), 2);
}

/// The same shape as the embassy adapter: built from a core `PipelineConfig`.
#[tokio::test(start_paused = true)]
async fn built_from_a_pipeline_config() {
    let config = PipelineConfig::from_resilience(&ResilienceConfig::development())
        .with_attempt_timeout(Duration::from_millis(50));
    let pipeline = Pipeline::try_new(config).unwrap();
    assert_eq!(pipeline.attempt_timeout(), Some(Duration::from_millis(50)));
    assert_eq!(
        pipeline.execute(|| async { Ok::<_, ErrorKind>(1) }).await,
        Ok(1)
    );
    let invalid = PipelineConfig {
        attempt_timeout: Some(Duration::ZERO),
        ..config
    };
    assert!(Pipeline::try_new(invalid).is_err());
}

/// `is_open` answers whether a call would be refused now: an open breaker whose wait is over
/// would admit the next call as a probe, even though it reads `Open` until that call.
#[tokio::test(start_paused = true)]
async fn is_open_ends_with_the_breakers_wait_not_with_its_next_call() {
    let pipeline = Pipeline::try_new(PipelineConfig {
        circuit_breaker: CircuitBreakerConfig {
            failure_threshold: 1,
            timeout: Duration::from_secs(5),
            ..CircuitBreakerConfig::default()
        },
        retry: RetryConfig {
            max_attempts: 1,
            ..retry_config()
        },
        timeout: TimeoutConfig::default(),
        attempt_timeout: None,
    })
    .unwrap();
    assert!(!pipeline.is_open(), "closed");
    let failed = pipeline
        .execute(|| async { Err::<u64, _>(KernelFault) })
        .await;
    assert!(matches!(
        failed,
        Err(ResilienceError::Operation(KernelFault))
    ));
    assert!(pipeline.is_open(), "open, waiting");
    tokio::time::sleep(Duration::from_secs(4)).await;
    assert!(pipeline.is_open(), "1 s of the wait left");
    tokio::time::sleep(Duration::from_secs(1)).await;
    assert_eq!(
        pipeline.breaker().map(CircuitBreaker::state),
        Some(CircuitState::Open),
        "no call moved it yet"
    );
    assert!(
        !pipeline.is_open(),
        "the next call would be admitted as a probe"
    );
    pipeline.breaker().unwrap().force_open();
    assert!(pipeline.is_open(), "forced open has no end");
}
