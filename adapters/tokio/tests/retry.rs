//! Retry on tokio's paused clock: outcomes, the last error, delays on the virtual clock,
//! budgets, deadlines and retry-after hints, plus a property test against a reference model.

use std::cell::RefCell;
use std::time::Duration;

use proptest::prelude::*;
use rustkernel_tokio::resilience::{
    BackoffStrategy, Classify, DeadlineContext, ErrorKind, ErrorKindSet, ResilienceError, Retrier,
    RetryBudgetConfig, RetryConfig, RetryExt, SharedRetryBudget,
};
use tokio::time::Instant;

const MS: Duration = Duration::from_millis(1);

/// An operation's error: its kind, which attempt failed, and an optional retry-after hint.
#[derive(Clone, Copy, Debug, PartialEq)]
struct Failure {
    kind: ErrorKind,
    attempt: usize,
    retry_after: Option<Duration>,
}

impl Classify for Failure {
    fn kind(&self) -> ErrorKind {
        self.kind
    }
}

fn fail(kind: ErrorKind, attempt: usize) -> Failure {
    Failure {
        kind,
        attempt,
        retry_after: None,
    }
}

/// Records when each attempt started, on the virtual clock, relative to its creation.
struct Probe {
    start: Instant,
    starts: RefCell<Vec<Duration>>,
}

impl Probe {
    fn new() -> Self {
        Self {
            start: Instant::now(),
            starts: RefCell::new(Vec::new()),
        }
    }

    /// Records an attempt starting now; returns its number (1-based).
    fn attempt(&self) -> usize {
        let mut starts = self.starts.borrow_mut();
        starts.push(self.start.elapsed());
        starts.len()
    }

    fn starts(&self) -> Vec<Duration> {
        self.starts.borrow().clone()
    }

    fn attempts(&self) -> usize {
        self.starts.borrow().len()
    }

    fn elapsed(&self) -> Duration {
        self.start.elapsed()
    }
}

fn fixed(max_attempts: u32, delay: Duration) -> RetryConfig {
    RetryConfig {
        max_attempts,
        backoff: BackoffStrategy::Fixed { delay },
        retryable_errors: [ErrorKind::Transient, ErrorKind::Timeout].into(),
    }
}

fn ms(values: &[u64]) -> Vec<Duration> {
    values.iter().map(|&v| Duration::from_millis(v)).collect()
}

#[tokio::test(start_paused = true)]
async fn transient_failures_then_success() {
    let probe = Probe::new();
    let result = fixed(5, 100 * MS)
        .execute(|| {
            let n = probe.attempt();
            async move {
                if n < 3 {
                    Err(fail(ErrorKind::Transient, n))
                } else {
                    Ok(n)
                }
            }
        })
        .await;
    assert_eq!(result, Ok(3));
    assert_eq!(probe.starts(), ms(&[0, 100, 200]));
    assert_eq!(probe.elapsed(), 200 * MS);
}

#[tokio::test(start_paused = true)]
async fn a_permanent_error_returns_at_once_unchanged() {
    let probe = Probe::new();
    let result: Result<(), _> = fixed(5, 100 * MS)
        .execute(|| {
            let n = probe.attempt();
            async move { Err(fail(ErrorKind::Permanent, n)) }
        })
        .await;
    assert_eq!(
        result,
        Err(ResilienceError::Operation(fail(ErrorKind::Permanent, 1)))
    );
    assert_eq!(probe.attempts(), 1);
    assert_eq!(probe.elapsed(), Duration::ZERO);

    // A non-retryable error after retries also ends the call, and is the one returned.
    let probe = Probe::new();
    let result: Result<(), _> = fixed(5, 100 * MS)
        .execute(|| {
            let n = probe.attempt();
            let kind = if n == 1 {
                ErrorKind::Timeout
            } else {
                ErrorKind::InvalidInput
            };
            async move { Err(fail(kind, n)) }
        })
        .await;
    assert_eq!(
        result,
        Err(ResilienceError::Operation(fail(ErrorKind::InvalidInput, 2)))
    );
    assert_eq!(probe.starts(), ms(&[0, 100]));
}

#[tokio::test(start_paused = true)]
async fn exhausted_attempts_return_the_last_error() {
    let probe = Probe::new();
    let result: Result<(), _> = fixed(4, 100 * MS)
        .execute(|| {
            let n = probe.attempt();
            async move { Err(fail(ErrorKind::Transient, n)) }
        })
        .await;
    assert_eq!(
        result,
        Err(ResilienceError::Operation(fail(ErrorKind::Transient, 4)))
    );
    assert_eq!(probe.starts(), ms(&[0, 100, 200, 300]));
}

#[tokio::test(start_paused = true)]
async fn delays_follow_the_backoff_on_the_virtual_clock() {
    let config = RetryConfig {
        max_attempts: 6,
        backoff: BackoffStrategy::Exponential {
            initial: 100 * MS,
            max: Duration::from_secs(1),
            multiplier: 2.0,
        },
        retryable_errors: ErrorKind::Transient.into(),
    };
    let probe = Probe::new();
    let _: Result<(), _> = config
        .execute(|| {
            let n = probe.attempt();
            async move { Err(fail(ErrorKind::Transient, n)) }
        })
        .await;
    // Delays 100, 200, 400, 800, then capped at 1000.
    assert_eq!(probe.starts(), ms(&[0, 100, 300, 700, 1_500, 2_500]));

    let linear = RetryConfig {
        backoff: BackoffStrategy::Linear {
            initial: 50 * MS,
            increment: 25 * MS,
            max: 100 * MS,
        },
        ..config
    };
    let probe = Probe::new();
    let _: Result<(), _> = linear
        .execute(|| {
            let n = probe.attempt();
            async move { Err(fail(ErrorKind::Transient, n)) }
        })
        .await;
    // Delays 50, 75, 100, 100, 100.
    assert_eq!(probe.starts(), ms(&[0, 50, 125, 225, 325, 425]));
}

/// The gaps between attempts of one always-failing call.
async fn jittered_gaps(retrier: &Retrier) -> Vec<Duration> {
    let probe = Probe::new();
    let _: Result<(), _> = retrier
        .execute(|| {
            let n = probe.attempt();
            async move { Err(fail(ErrorKind::Transient, n)) }
        })
        .await;
    probe
        .starts()
        .windows(2)
        .map(|pair| match pair {
            [a, b] => *b - *a,
            _ => Duration::ZERO,
        })
        .collect()
}

#[tokio::test(start_paused = true)]
async fn jitter_stays_under_the_backoff_and_a_seed_repeats_it() {
    let config = RetryConfig {
        max_attempts: 6,
        backoff: BackoffStrategy::ExponentialWithJitter {
            initial: 100 * MS,
            max: Duration::from_secs(1),
            multiplier: 2.0,
        },
        retryable_errors: ErrorKind::Transient.into(),
    };
    let ceilings = ms(&[100, 200, 400, 800, 1_000]);
    let a = jittered_gaps(&Retrier::new(config).seed(42)).await;
    let b = jittered_gaps(&Retrier::new(config).seed(42)).await;
    let c = jittered_gaps(&Retrier::new(config).seed(43)).await;
    assert_eq!(a.len(), 5);
    assert_eq!(a, b, "the same seed gives the same delays");
    assert_ne!(a, c, "another seed gives other delays");
    for gaps in [&a, &c] {
        for (gap, ceiling) in gaps.iter().zip(&ceilings) {
            assert!(gap <= ceiling, "{gap:?} > {ceiling:?}");
        }
    }
    // Calls through one retrier draw fresh seeds: two calls do not repeat each other.
    let retrier = Retrier::new(config).seed(42);
    let first = jittered_gaps(&retrier).await;
    let second = jittered_gaps(&retrier).await;
    assert_eq!(first, a);
    assert_ne!(first, second);
}

#[tokio::test(start_paused = true)]
async fn an_exhausted_budget_stops_retries() {
    // One retry per original call, no floor.
    let budget = SharedRetryBudget::new(RetryBudgetConfig {
        window: Duration::from_secs(10),
        min_retries_per_second: 0,
        retry_ratio: 1.0,
    });
    let retrier = Retrier::new(fixed(5, 10 * MS)).budget(budget.clone());
    for _ in 0..3 {
        let probe = Probe::new();
        let result: Result<(), _> = retrier
            .execute(|| {
                let n = probe.attempt();
                async move { Err(fail(ErrorKind::Transient, n)) }
            })
            .await;
        // Two attempts: the budget paid for one retry, and the error is the last one.
        assert_eq!(
            result,
            Err(ResilienceError::Operation(fail(ErrorKind::Transient, 2)))
        );
        assert_eq!(probe.attempts(), 2);
        assert_eq!(budget.available(), 0);
    }

    // Half a retry per call: two calls share one retry through clones of the budget.
    let half = SharedRetryBudget::new(RetryBudgetConfig {
        window: Duration::from_secs(10),
        min_retries_per_second: 0,
        retry_ratio: 0.5,
    });
    let a = Retrier::new(fixed(5, 10 * MS)).budget(half.clone());
    let b = a.clone();
    let mut attempts = Vec::new();
    for retrier in [&a, &b] {
        let probe = Probe::new();
        let _: Result<(), _> = retrier
            .execute(|| {
                let n = probe.attempt();
                async move { Err(fail(ErrorKind::Transient, n)) }
            })
            .await;
        attempts.push(probe.attempts());
    }
    assert_eq!(attempts, [1, 2]);

    // Without a budget the same call makes every attempt.
    let probe = Probe::new();
    let _: Result<(), _> = Retrier::new(fixed(5, 10 * MS))
        .execute(|| {
            let n = probe.attempt();
            async move { Err(fail(ErrorKind::Transient, n)) }
        })
        .await;
    assert_eq!(probe.attempts(), 5);
}

#[tokio::test(start_paused = true)]
async fn retries_never_sleep_past_the_deadline() {
    let retrier = Retrier::new(fixed(10, 100 * MS));
    let always_fails = |probe: &Probe| {
        let n = probe.attempt();
        async move { Err::<(), _>(fail(ErrorKind::Transient, n)) }
    };

    // Seen but not enforced: attempts at 0, 100, 200; one at 300 would pass the deadline.
    let probe = Probe::new();
    let deadline = DeadlineContext::new(250 * MS);
    let result = deadline
        .scope(retrier.execute(|| always_fails(&probe)))
        .await;
    assert_eq!(
        result,
        Err(ResilienceError::Operation(fail(ErrorKind::Transient, 3)))
    );
    assert_eq!(probe.starts(), ms(&[0, 100, 200]));
    assert_eq!(probe.elapsed(), 200 * MS, "gave up without sleeping");

    // Enforced: the same, since retry stops before the deadline does.
    let probe = Probe::new();
    let deadline = DeadlineContext::new(250 * MS);
    let result = deadline
        .execute(|| retrier.execute(|| always_fails(&probe)))
        .await;

    assert_eq!(
        result,
        Err(ResilienceError::Operation(fail(ErrorKind::Transient, 3)))
    );
    assert_eq!(probe.elapsed(), 200 * MS);
}

#[tokio::test(start_paused = true)]
async fn slow_attempts_are_cut_only_by_an_enforced_deadline() {
    // Each attempt takes 60 ms and fails; retries wait 100 ms; the deadline is at 500 ms.
    // Attempts start at 0, 160, 320, 480; the fourth ends at 540.
    let retrier = Retrier::new(fixed(10, 100 * MS));
    let slow_failure = |probe: &Probe| {
        let n = probe.attempt();
        async move {
            tokio::time::sleep(60 * MS).await;
            Err::<(), _>(fail(ErrorKind::Transient, n))
        }
    };

    let probe = Probe::new();
    let result = DeadlineContext::new(500 * MS)
        .scope(retrier.execute(|| slow_failure(&probe)))
        .await;
    assert_eq!(
        result,
        Err(ResilienceError::Operation(fail(ErrorKind::Transient, 4)))
    );
    assert_eq!(probe.starts(), ms(&[0, 160, 320, 480]));
    assert_eq!(probe.elapsed(), 540 * MS);

    let probe = Probe::new();
    let result = DeadlineContext::new(500 * MS)
        .execute(|| retrier.execute(|| slow_failure(&probe)))
        .await;

    assert_eq!(result, Err(ResilienceError::DeadlineExceeded));
    assert_eq!(probe.attempts(), 4);
    assert_eq!(probe.elapsed(), 500 * MS);
}

#[tokio::test(start_paused = true)]
async fn a_passed_deadline_means_no_attempt_and_no_deposit() {
    let budget = SharedRetryBudget::new(RetryBudgetConfig {
        window: Duration::from_secs(10),
        min_retries_per_second: 0,
        retry_ratio: 1.0,
    });
    let retrier = Retrier::new(fixed(3, 10 * MS)).budget(budget.clone());
    let probe = Probe::new();
    let deadline = DeadlineContext::new(100 * MS);
    tokio::time::advance(100 * MS).await;
    let result = deadline
        .scope(retrier.execute(|| {
            let n = probe.attempt();
            async move { Ok::<_, Failure>(n) }
        }))
        .await;
    assert_eq!(result, Err(ResilienceError::DeadlineExceeded));
    assert_eq!(probe.attempts(), 0);
    assert_eq!(budget.available(), 0, "nothing was deposited");
}

#[tokio::test(start_paused = true)]
async fn a_retry_after_hint_replaces_the_backoff() {
    let retrier = Retrier::new(fixed(5, 10 * MS)).retry_after(|e: &Failure| e.retry_after);
    let probe = Probe::new();
    let result = retrier
        .execute(|| {
            let n = probe.attempt();
            async move {
                match n {
                    1 => Err(Failure {
                        retry_after: Some(750 * MS),
                        ..fail(ErrorKind::Transient, n)
                    }),
                    2 => Err(fail(ErrorKind::Transient, n)),
                    _ => Ok(n),
                }
            }
        })
        .await;
    assert_eq!(result, Ok(3));
    // The hint (750 ms, more than the backoff would ever wait), then the backoff (10 ms).
    assert_eq!(probe.starts(), ms(&[0, 750, 760]));

    // A hint that would pass the deadline ends the call at once with that error.
    let probe = Probe::new();
    let hinted = Failure {
        retry_after: Some(750 * MS),
        ..fail(ErrorKind::Transient, 1)
    };
    let result: Result<(), _> = DeadlineContext::new(500 * MS)
        .scope(retrier.execute(|| {
            probe.attempt();
            async move { Err(hinted) }
        }))
        .await;
    assert_eq!(result, Err(ResilienceError::Operation(hinted)));
    assert_eq!(probe.elapsed(), Duration::ZERO);
}

#[tokio::test(start_paused = true)]
async fn the_extension_future_is_send_and_spawnable() {
    let config = fixed(3, 10 * MS);
    // The future borrows nothing from `config`: it can be spawned as it is.
    let handle = tokio::spawn(config.execute(|| async { Err::<(), _>(ErrorKind::Timeout) }));
    let result = handle.await.expect("the task ran");
    assert_eq!(result, Err(ResilienceError::Operation(ErrorKind::Timeout)));
}

#[test]
fn invalid_configs_are_typed_errors() {
    let config = RetryConfig {
        max_attempts: 3,
        backoff: BackoffStrategy::Fixed { delay: MS },
        retryable_errors: ErrorKindSet::EMPTY,
    };
    assert!(Retrier::try_new(config).is_err());
    assert!(
        SharedRetryBudget::try_new(RetryBudgetConfig {
            window: Duration::ZERO,
            ..RetryBudgetConfig::default()
        })
        .is_err()
    );
}

// ---------- property test against a reference model ----------

/// What the reference model expects of one call.
#[derive(Debug, PartialEq)]
struct Expected {
    result: Result<usize, ResilienceError<Failure>>,
    starts_ms: Vec<u64>,
}

/// Attempts start at 0 and then every `delay_ms` while the kind is retryable, attempts remain
/// and the next start is strictly before the deadline; operations take no time.
fn model(
    max_attempts: u32,
    delay_ms: u64,
    retryable: ErrorKindSet,
    script: &[Option<ErrorKind>],
    deadline_ms: Option<u64>,
) -> Expected {
    if deadline_ms == Some(0) {
        return Expected {
            result: Err(ResilienceError::DeadlineExceeded),
            starts_ms: Vec::new(),
        };
    }
    let mut starts_ms = Vec::new();
    let mut now = 0u64;
    let mut attempt = 0usize;
    loop {
        attempt += 1;
        starts_ms.push(now);
        let outcome = script.get(attempt - 1).copied().flatten();
        let Some(kind) = outcome else {
            return Expected {
                result: Ok(attempt),
                starts_ms,
            };
        };
        let error = Err(ResilienceError::Operation(fail(kind, attempt)));
        let next = now + delay_ms;
        let attempts_left = u32::try_from(attempt).unwrap_or(u32::MAX) < max_attempts;
        let before_deadline = deadline_ms.is_none_or(|deadline| next < deadline);
        if !retryable.contains(kind) || !attempts_left || !before_deadline {
            return Expected {
                result: error,
                starts_ms,
            };
        }
        now = next;
    }
}

fn kinds() -> impl Strategy<Value = ErrorKind> {
    prop::sample::select(ErrorKind::ALL.to_vec())
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(64))]

    #[test]
    fn calls_match_the_reference_model(
        max_attempts in 1u32..7,
        delay_ms in 0u64..400,
        retryable in prop::collection::vec(kinds(), 1..4),
        script in prop::collection::vec(prop::option::weighted(0.8, kinds()), 0..8),
        deadline_ms in prop::option::of(0u64..2_000),
    ) {
        let retryable: ErrorKindSet = retryable.into_iter().collect();
        let config = RetryConfig {
            max_attempts,
            backoff: BackoffStrategy::Fixed { delay: Duration::from_millis(delay_ms) },
            retryable_errors: retryable,
        };
        let runtime = tokio::runtime::Builder::new_current_thread()
            .enable_time()
            .start_paused(true)
            .build()
            .expect("a runtime");
        let got = runtime.block_on(async {
            let probe = Probe::new();
            let call = config.execute(|| {
                let n = probe.attempt();
                let outcome = script.get(n - 1).copied().flatten();
                async move {
                    match outcome {
                        Some(kind) => Err(fail(kind, n)),
                        None => Ok(n),
                    }
                }
            });
            let result = match deadline_ms {
                Some(deadline) => {
                    DeadlineContext::new(Duration::from_millis(deadline)).scope(call).await
                }
                None => call.await,
            };
            let starts_ms = probe
                .starts()
                .iter()
                .map(|d| u64::try_from(d.as_millis()).unwrap_or(u64::MAX))
                .collect();
            Expected { result, starts_ms }
        });
        prop_assert_eq!(got, model(max_attempts, delay_ms, retryable, &script, deadline_ms));
    }
}
