//! The shared breaker's `call` on tokio's paused clock: thresholds, rejections, probes,
//! cancellation, panics, error pass-through and classification.
// Panicking closures are under test, and a test fails by panicking.
#![allow(clippy::panic)]

use std::future::Future;
use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::Duration;

use rustkernel_tokio::clock;
use rustkernel_tokio::resilience::{
    CallPermit, CircuitBreaker, CircuitBreakerConfig, CircuitState, Classify, ConfigError,
    CountWindow, ErrorKind, ErrorKindSet, OpenReason, ResilienceError, Transition, Trip,
};
use tokio::time::{Instant, advance};

/// An error with a payload, classified by its variant.
#[derive(Clone, Debug, PartialEq)]
enum KernelError {
    /// Transient (the trait's default kind).
    Flaky(String),
    /// InvalidInput: ignored by the default configuration.
    BadInput,
    /// Unavailable.
    Down,
}

impl Classify for KernelError {
    fn kind(&self) -> ErrorKind {
        match self {
            KernelError::Flaky(_) => ErrorKind::Transient,
            KernelError::BadInput => ErrorKind::InvalidInput,
            KernelError::Down => ErrorKind::Unavailable,
        }
    }
}

/// An error that keeps the trait's default classification.
#[derive(Debug, PartialEq)]
struct Plain;
impl Classify for Plain {}

fn config() -> CircuitBreakerConfig {
    CircuitBreakerConfig {
        failure_threshold: 3,
        success_threshold: 2,
        timeout: Duration::from_secs(30),
        half_open_max_calls: 1,
        ..Default::default()
    }
}

async fn fail(cb: &CircuitBreaker) -> Result<(), ResilienceError<KernelError>> {
    cb.call(|| async { Err(KernelError::Flaky("boom".into())) })
        .await
}

async fn succeed(cb: &CircuitBreaker) -> Result<u32, ResilienceError<KernelError>> {
    cb.call(|| async { Ok::<_, KernelError>(7) }).await
}

/// Trips `cb` (threshold 3) and waits out its open time, so the next call is a probe.
async fn half_open(cb: &CircuitBreaker) {
    for _ in 0..3 {
        fail(cb).await.ok();
    }
    assert_eq!(cb.state(), CircuitState::Open);
    advance(Duration::from_secs(30)).await;
}

#[tokio::test(start_paused = true)]
async fn opens_after_the_threshold_rejects_then_probes_and_closes() {
    let cb = CircuitBreaker::new(config());
    let mut states = cb.subscribe();
    for round in 0..2 {
        assert!(fail(&cb).await.is_err(), "round {round}");
    }
    assert_eq!(cb.state(), CircuitState::Closed);
    let opened_at = Instant::now();
    assert_eq!(
        fail(&cb).await,
        Err(ResilienceError::Operation(KernelError::Flaky(
            "boom".into()
        )))
    );
    assert_eq!(cb.state(), CircuitState::Open);
    assert!(states.has_changed().unwrap_or(false));
    assert_eq!(*states.borrow_and_update(), CircuitState::Open);
    // The breaker's timers are on the crate clock, to the microsecond.
    assert_eq!(
        cb.poll_at().map(clock::to_core),
        Some(clock::to_core(opened_at + Duration::from_secs(30)))
    );

    // Rejected without running the operation, and counted.
    let ran = AtomicUsize::new(0);
    let rejected = cb
        .call(|| async {
            ran.fetch_add(1, Ordering::Relaxed);
            Ok::<_, KernelError>(())
        })
        .await;
    assert_eq!(rejected, Err(ResilienceError::CircuitOpen));
    assert_eq!(ran.load(Ordering::Relaxed), 0);
    advance(Duration::from_millis(29_999)).await;
    assert_eq!(succeed(&cb).await, Err(ResilienceError::CircuitOpen));
    assert_eq!(cb.stats().rejected_count, 2);

    // The open time ends: one probe at a time, two good probes close it.
    advance(Duration::from_millis(1)).await;
    assert_eq!(succeed(&cb).await, Ok(7));
    assert_eq!(cb.state(), CircuitState::HalfOpen);
    assert_eq!(*states.borrow_and_update(), CircuitState::HalfOpen);
    assert_eq!(succeed(&cb).await, Ok(7));
    assert_eq!(cb.state(), CircuitState::Closed);
    assert_eq!(*states.borrow_and_update(), CircuitState::Closed);
    assert_eq!(cb.poll_at(), None);

    let stats = cb.stats();
    assert_eq!(stats.failure_count, 3);
    assert_eq!(stats.success_count, 2);
    assert_eq!(stats.rejected_count, 2);
    assert_eq!(stats.transitions, 3);
    assert!((stats.success_rate - 0.4).abs() < 1e-12);
}

#[tokio::test(start_paused = true)]
async fn a_failed_probe_opens_it_again() {
    let cb = CircuitBreaker::new(config());
    half_open(&cb).await;
    assert!(matches!(
        fail(&cb).await,
        Err(ResilienceError::Operation(_))
    ));
    assert_eq!(cb.state(), CircuitState::Open);
    assert_eq!(succeed(&cb).await, Err(ResilienceError::CircuitOpen));
}

#[tokio::test(start_paused = true)]
async fn half_open_admits_at_most_the_configured_probes() {
    let cb = CircuitBreaker::new(CircuitBreakerConfig {
        half_open_max_calls: 2,
        ..config()
    });
    half_open(&cb).await;
    let gate = Arc::new(tokio::sync::Notify::new());
    let mut probes = Vec::new();
    for _ in 0..2 {
        let (cb, gate) = (cb.clone(), Arc::clone(&gate));
        probes.push(tokio::spawn(async move {
            cb.call(|| async move {
                gate.notified().await;
                Ok::<_, KernelError>(1)
            })
            .await
        }));
    }
    tokio::task::yield_now().await;
    assert_eq!(cb.state(), CircuitState::HalfOpen);
    assert_eq!(succeed(&cb).await, Err(ResilienceError::CircuitOpen));
    gate.notify_waiters();
    for probe in probes {
        assert_eq!(probe.await.ok(), Some(Ok(1)));
    }
    assert_eq!(cb.state(), CircuitState::Closed);
}

#[tokio::test(start_paused = true)]
async fn a_dropped_call_future_frees_its_probe_slot() {
    let cb = CircuitBreaker::new(config());
    half_open(&cb).await;
    let hung = cb.call(std::future::pending::<Result<(), KernelError>>);
    // Polled (the probe slot is taken), then dropped by the timeout.
    assert!(
        tokio::time::timeout(Duration::from_millis(1), hung)
            .await
            .is_err()
    );
    assert_eq!(cb.state(), CircuitState::HalfOpen);
    // Without the guard the only slot would stay taken until max_wait_in_half_open.
    assert_eq!(succeed(&cb).await, Ok(7));
    assert_eq!(succeed(&cb).await, Ok(7));
    assert_eq!(cb.state(), CircuitState::Closed);
    let stats = cb.stats();
    assert_eq!((stats.success_count, stats.failure_count), (2, 3));
}

#[tokio::test(start_paused = true)]
async fn a_panicking_closure_or_future_frees_its_probe_slot() {
    fn boom() -> std::future::Ready<Result<u32, KernelError>> {
        panic!("closure panics before making its future")
    }
    let cb = CircuitBreaker::new(CircuitBreakerConfig {
        success_threshold: 3,
        ..config()
    });
    half_open(&cb).await;
    let in_closure = tokio::spawn({
        let cb = cb.clone();
        async move { cb.call(boom).await }
    });
    assert!(in_closure.await.is_err_and(|error| error.is_panic()));
    assert_eq!(succeed(&cb).await, Ok(7));

    let in_future = tokio::spawn({
        let cb = cb.clone();
        async move {
            cb.call(|| async {
                tokio::task::yield_now().await;
                panic!("future panics mid-call");
                #[allow(unreachable_code)]
                Ok::<u32, KernelError>(0)
            })
            .await
        }
    });
    assert!(in_future.await.is_err_and(|error| error.is_panic()));
    assert_eq!(succeed(&cb).await, Ok(7));
    assert_eq!(cb.state(), CircuitState::HalfOpen);
    assert_eq!(succeed(&cb).await, Ok(7));
    assert_eq!(cb.state(), CircuitState::Closed);
}

#[tokio::test(start_paused = true)]
async fn values_and_errors_pass_through_unchanged() {
    let cb = CircuitBreaker::new(config());
    let value = cb
        .call(|| async { Ok::<_, KernelError>(vec![1u8, 2, 3]) })
        .await;
    assert_eq!(value, Ok(vec![1, 2, 3]));
    let error = KernelError::Flaky("device lost: 0x1f".into());
    let expected = error.clone();
    let result = cb.call(|| async move { Err::<(), _>(error) }).await;
    assert_eq!(result, Err(ResilienceError::Operation(expected)));
}

#[tokio::test(start_paused = true)]
async fn classify_decides_which_errors_count() {
    // Default config: InvalidInput is ignored, everything else counts.
    let cb = CircuitBreaker::new(config());
    for _ in 0..10 {
        let result = cb
            .call(|| async { Err::<(), _>(KernelError::BadInput) })
            .await;
        assert_eq!(
            result,
            Err(ResilienceError::Operation(KernelError::BadInput))
        );
    }
    assert_eq!(cb.state(), CircuitState::Closed);
    assert_eq!(cb.stats().failure_count, 0);

    // The trait's default kind (Transient) counts.
    let plain = CircuitBreaker::new(config());
    for _ in 0..3 {
        let result = plain.call(|| async { Err::<(), _>(Plain) }).await;
        assert_eq!(result, Err(ResilienceError::Operation(Plain)));
    }
    assert_eq!(plain.state(), CircuitState::Open);

    // A configuration that ignores Unavailable.
    let lenient = CircuitBreaker::new(CircuitBreakerConfig {
        ignored_errors: ErrorKindSet::of(&[ErrorKind::Unavailable]),
        ..config()
    });
    for _ in 0..5 {
        lenient
            .call(|| async { Err::<(), _>(KernelError::Down) })
            .await
            .ok();
    }
    assert_eq!(lenient.state(), CircuitState::Closed);
    for _ in 0..3 {
        lenient
            .call(|| async { Err::<(), _>(KernelError::BadInput) })
            .await
            .ok();
    }
    assert_eq!(lenient.state(), CircuitState::Open);
}

#[tokio::test(start_paused = true)]
async fn an_ignored_error_frees_the_probe_slot_without_deciding() {
    let cb = CircuitBreaker::new(config());
    half_open(&cb).await;
    for _ in 0..3 {
        let result = cb
            .call(|| async { Err::<(), _>(KernelError::BadInput) })
            .await;
        assert_eq!(
            result,
            Err(ResilienceError::Operation(KernelError::BadInput))
        );
        assert_eq!(cb.state(), CircuitState::HalfOpen);
    }
    assert_eq!(succeed(&cb).await, Ok(7));
    assert_eq!(succeed(&cb).await, Ok(7));
    assert_eq!(cb.state(), CircuitState::Closed);
}

#[tokio::test(start_paused = true)]
async fn a_success_after_a_failure_ends_the_streak() {
    let cb = CircuitBreaker::new(config());
    for _ in 0..10 {
        fail(&cb).await.ok();
        fail(&cb).await.ok();
        assert_eq!(succeed(&cb).await, Ok(7));
        assert_eq!(succeed(&cb).await, Ok(7));
    }
    assert_eq!(cb.state(), CircuitState::Closed);
    let stats = cb.stats();
    assert_eq!((stats.success_count, stats.failure_count), (20, 20));
    assert_eq!(stats.consecutive_failures, 0);
    assert!((stats.success_rate - 0.5).abs() < 1e-12);
}

#[tokio::test(start_paused = true)]
async fn poll_publishes_half_open_and_the_half_open_deadline() {
    let cb = CircuitBreaker::new(CircuitBreakerConfig {
        max_wait_in_half_open: Duration::from_secs(5),
        ..config()
    });
    assert_eq!(cb.poll(), None);
    half_open(&cb).await;
    // Timers apply lazily.
    assert_eq!(cb.state(), CircuitState::Open);
    assert_eq!(
        cb.poll(),
        Some(Transition::new(CircuitState::Open, CircuitState::HalfOpen))
    );
    assert_eq!(cb.state(), CircuitState::HalfOpen);
    assert_eq!(
        cb.poll_at().map(clock::to_core),
        Some(clock::now() + Duration::from_secs(5))
    );
    // A probe that hangs (still alive) past the half-open deadline: the cycle ends and the
    // breaker opens; the probe's late drop changes nothing.
    let mut hung = Box::pin(cb.call(std::future::pending::<Result<(), KernelError>>));
    assert!(
        tokio::time::timeout(Duration::from_millis(1), &mut hung)
            .await
            .is_err()
    );
    assert_eq!(succeed(&cb).await, Err(ResilienceError::CircuitOpen));
    advance(Duration::from_secs(5)).await;
    assert_eq!(cb.poll().map(|t| t.to), Some(CircuitState::Open));
    drop(hung);
    assert_eq!(cb.state(), CircuitState::Open);
    assert_eq!(cb.stats().failure_count, 3);
}

#[tokio::test(start_paused = true)]
async fn operator_controls_override_the_calls() {
    let cb = CircuitBreaker::new(config());
    assert_eq!(
        cb.force_open(),
        Some(Transition {
            from: CircuitState::Closed,
            to: CircuitState::ForcedOpen,
            trip: Some(Trip {
                reason: OpenReason::Forced,
                calls: 0,
                failures: 0,
                slow: 0,
                consecutive_failures: 0,
            }),
        })
    );
    advance(Duration::from_secs(3_600)).await;
    assert_eq!(succeed(&cb).await, Err(ResilienceError::CircuitOpen));
    assert_eq!(cb.poll_at(), None);
    cb.disable();
    for _ in 0..10 {
        assert!(matches!(
            fail(&cb).await,
            Err(ResilienceError::Operation(_))
        ));
    }
    assert_eq!(succeed(&cb).await, Ok(7));
    assert_eq!(cb.state(), CircuitState::Disabled);
    assert_eq!(cb.stats().failure_count, 10);
    assert_eq!(cb.stats().success_count, 1);
    assert_eq!(cb.reset().map(|t| t.to), Some(CircuitState::Closed));
    assert_eq!(cb.reset(), None);
    assert_eq!(succeed(&cb).await, Ok(7));
}

#[tokio::test(start_paused = true)]
async fn a_windowed_breaker_opens_on_the_failure_rate() {
    let cb = CircuitBreaker::builder(CircuitBreakerConfig {
        failure_rate_threshold: Some(0.5),
        minimum_calls: 4,
        ..config()
    })
    .window(CountWindow::<8>::new())
    .build();
    for _ in 0..3 {
        assert_eq!(cb.call(|| async { Ok::<_, KernelError>(()) }).await, Ok(()));
    }
    // 3 failures in a row would open a consecutive breaker; here the rate decides.
    for _ in 0..2 {
        fail_windowed(&cb).await;
        assert_eq!(cb.state(), CircuitState::Closed);
    }
    fail_windowed(&cb).await;
    // 3 failures of 6 calls reach 0.5.
    assert_eq!(cb.state(), CircuitState::Open);
}

async fn fail_windowed(cb: &CircuitBreaker<CountWindow<8>>) {
    let result = cb
        .call(|| async { Err::<(), _>(KernelError::Flaky("rate".into())) })
        .await;
    assert!(matches!(result, Err(ResilienceError::Operation(_))));
}

#[tokio::test(start_paused = true)]
async fn slow_calls_open_a_windowed_breaker() {
    let cb = CircuitBreaker::builder(CircuitBreakerConfig {
        slow_call_duration: Some(Duration::from_secs(1)),
        slow_call_rate_threshold: 0.5,
        minimum_calls: 2,
        ..config()
    })
    .window(CountWindow::<4>::new())
    .build();
    let slow = || async {
        tokio::time::sleep(Duration::from_secs(2)).await;
        Ok::<_, KernelError>(())
    };
    assert_eq!(cb.call(|| async { Ok::<_, KernelError>(()) }).await, Ok(()));
    assert_eq!(cb.call(slow).await, Ok(()));
    assert_eq!(cb.state(), CircuitState::Open);
    assert_eq!(cb.stats().slow_call_count, 1);
}

#[tokio::test(start_paused = true)]
async fn clones_share_one_breaker_across_tasks() {
    let cb = CircuitBreaker::new(config());
    let tasks: Vec<_> = (0..50)
        .map(|_| {
            let cb = cb.clone();
            tokio::spawn(async move {
                for _ in 0..20 {
                    assert_eq!(succeed(&cb).await, Ok(7));
                    tokio::task::yield_now().await;
                }
            })
        })
        .collect();
    for task in tasks {
        assert!(task.await.is_ok());
    }
    let stats = cb.stats();
    assert_eq!(stats.success_count, 1_000);
    assert_eq!(stats.failure_count, 0);
    assert!((stats.success_rate - 1.0).abs() < f64::EPSILON);
}

#[test]
fn invalid_configurations_are_typed_errors() {
    let zero = CircuitBreaker::try_new(CircuitBreakerConfig {
        failure_threshold: 0,
        ..Default::default()
    });
    assert!(matches!(zero, Err(ConfigError::Zero(_))));
    // Rate mode needs a window.
    let rate = CircuitBreaker::try_new(CircuitBreakerConfig {
        failure_rate_threshold: Some(0.5),
        ..Default::default()
    });
    assert!(matches!(rate, Err(ConfigError::WindowTooSmall { .. })));
    let windowed = CircuitBreaker::builder(CircuitBreakerConfig {
        failure_rate_threshold: Some(0.5),
        minimum_calls: 10,
        ..Default::default()
    })
    .window(CountWindow::<4>::new())
    .try_build();
    assert!(matches!(
        windowed,
        Err(ConfigError::WindowTooSmall {
            needed: 10,
            capacity: 4
        })
    ));
}

/// The chapter's snippets, with only their `use` lines changed.
#[tokio::test(start_paused = true)]
async fn the_chapter_example_works() {
    use rustkernel_tokio::resilience::{CircuitBreaker, CircuitBreakerConfig, ResilienceError};

    struct Kernel;
    impl Kernel {
        fn execute(&self, input: u32) -> impl Future<Output = Result<u32, Plain>> + use<> {
            async move {
                if input == 0 {
                    Err(Plain)
                } else {
                    Ok(input * 2)
                }
            }
        }
    }
    let kernel = Kernel;
    let input = 21;
    let handle_result = |result: u32| assert_eq!(result, 42);
    let use_fallback = || unreachable!("closed breaker");
    let handle_error = |e: ResilienceError<Plain>| panic!("{e:?}");

    let config = CircuitBreakerConfig {
        failure_threshold: 5,             // Open after 5 failures
        success_threshold: 2,             // Close after 2 successes
        timeout: Duration::from_secs(30), // Half-open after 30s
        ..Default::default()
    };

    let cb = CircuitBreaker::new(config);

    // Execute with protection
    match cb.call(|| kernel.execute(input)).await {
        Ok(result) => handle_result(result),
        Err(ResilienceError::CircuitOpen) => use_fallback(),
        Err(e) => handle_error(e),
    }

    let state = cb.state();
    let stats = cb.stats();

    println!("State: {:?}", state);
    println!("Failures: {}", stats.failure_count);
    println!("Success rate: {:.1}%", stats.success_rate * 100.0);
    assert_eq!(format!("{:.1}%", stats.success_rate * 100.0), "100.0%");
}

/// A maintenance window: forced open for a minute, then closed again by the first call after it;
/// `retry_after` counts down to its end.
#[tokio::test(start_paused = true)]
async fn force_open_for_a_duration_returns_to_closed() {
    let cb = CircuitBreaker::new(CircuitBreakerConfig::default());
    assert_eq!(
        cb.force_open_for(Duration::from_secs(60)).map(|t| t.to),
        Some(CircuitState::ForcedOpen)
    );
    // Core instants are whole microseconds: the end is within a microsecond of a minute.
    let left = |secs: u64| {
        cb.retry_after().is_some_and(|d| {
            d <= Duration::from_secs(secs)
                && d + Duration::from_micros(1) > Duration::from_secs(secs)
        })
    };
    assert!(left(60), "{:?}", cb.retry_after());
    tokio::time::advance(Duration::from_secs(59)).await;
    assert!(cb.try_acquire().is_err());
    assert!(left(1), "{:?}", cb.retry_after());
    tokio::time::advance(Duration::from_secs(1)).await;
    assert_eq!(cb.poll().map(|t| t.to), Some(CircuitState::Closed));
    assert!(cb.try_acquire().map(CallPermit::success).is_ok());
    assert_eq!(cb.state(), CircuitState::Closed);
}

#[tokio::test(start_paused = true)]
async fn every_transition_is_delivered_in_order_where_the_state_watch_merges_them() {
    let cb = CircuitBreaker::new(CircuitBreakerConfig {
        success_threshold: 1,
        ..config()
    });
    let mut states = cb.subscribe();
    let mut transitions = cb.subscribe_transitions();
    half_open(&cb).await;
    // The probe: open -> half-open -> closed within one call.
    assert_eq!(succeed(&cb).await, Ok(7));
    assert_eq!(cb.state(), CircuitState::Closed);
    let mut seen = Vec::new();
    while let Ok(transition) = transitions.try_recv() {
        seen.push(transition);
    }
    assert_eq!(
        seen,
        [
            Transition {
                from: CircuitState::Closed,
                to: CircuitState::Open,
                trip: Some(Trip {
                    reason: OpenReason::ConsecutiveFailures,
                    calls: 0,
                    failures: 0,
                    slow: 0,
                    consecutive_failures: 3,
                }),
            },
            Transition::new(CircuitState::Open, CircuitState::HalfOpen),
            Transition::new(CircuitState::HalfOpen, CircuitState::Closed),
        ]
    );
    // The watch only has the latest state.
    assert_eq!(*states.borrow_and_update(), CircuitState::Closed);
}
