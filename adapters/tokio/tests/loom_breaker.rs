//! loom models of the shared breaker: every interleaving (up to a preemption bound) of a few
//! threads admitting, settling and cancelling calls.
//!
//! Run: `RUSTFLAGS="--cfg loom" cargo test -p rustkernel-tokio --test loom_breaker --release
//! --target-dir target/loom`
#![cfg(loom)]
// A test fails by panicking.
#![allow(clippy::panic)]

use std::future::Future;
use std::pin::pin;
use std::task::{Context, Poll, Waker};
use std::time::Duration;

use loom::sync::Arc;
use loom::sync::atomic::{AtomicBool, AtomicU64, AtomicUsize, Ordering};
use loom::thread;
use rustkernel_tokio::resilience::{
    CallPermit, CircuitBreaker, CircuitBreakerConfig, CircuitState, Classify, CountWindow,
    ErrorKind, OpenBackoff,
};

#[derive(Debug)]
struct Failed;
impl Classify for Failed {}

fn model(test: impl Fn() + Sync + Send + 'static) {
    let mut builder = loom::model::Builder::new();
    builder.preemption_bound = Some(3);
    builder.check(test);
}

/// Nothing in a model may depend on how much real time passes (loom replays executions and
/// needs each to take the same path): the breaker stays open for an hour.
fn config(failure_threshold: u32) -> CircuitBreakerConfig {
    CircuitBreakerConfig {
        failure_threshold,
        success_threshold: 2,
        timeout: Duration::from_secs(3_600),
        half_open_max_calls: 1,
        max_wait_in_half_open: Duration::from_secs(3_600),
        ..Default::default()
    }
}

/// Open for 1 µs the first time (waited out before the model's threads start), then for an
/// hour after a failed probe.
fn half_open_config() -> CircuitBreakerConfig {
    CircuitBreakerConfig {
        timeout: Duration::from_micros(1),
        open_backoff: Some(OpenBackoff {
            multiplier: 1e12,
            max: Duration::from_secs(3_600),
        }),
        ..config(1)
    }
}

/// Polls a future that is ready at once.
fn ready<F: Future>(future: F) -> F::Output {
    match pin!(future).poll(&mut Context::from_waker(Waker::noop())) {
        Poll::Ready(output) => output,
        Poll::Pending => unreachable!("ready futures only"),
    }
}

/// Trips `cb` (threshold 1) and lets its open time (1 µs of the real clock) pass, then applies
/// the timer: the breaker is half-open before any model thread starts, and no timer can fire
/// while they run.
fn half_open(cb: &CircuitBreaker) {
    if let Ok(permit) = cb.try_acquire() {
        permit.failure(ErrorKind::Transient);
    }
    assert_eq!(cb.state(), CircuitState::Open);
    if let Some(at) = cb.poll_at() {
        while tokio::time::Instant::now() < at {
            std::hint::spin_loop();
        }
    }
    assert_eq!(cb.poll().map(|t| t.to), Some(CircuitState::HalfOpen));
}

/// Asks for a probe; counts it in flight (asserting it is alone) or counts the rejection.
fn probe<'a>(
    cb: &'a CircuitBreaker,
    in_flight: &AtomicUsize,
    rejected: &AtomicU64,
) -> Option<CallPermit<'a>> {
    match cb.try_acquire() {
        Ok(permit) => {
            assert!(permit.is_probe());
            let before = in_flight.fetch_add(1, Ordering::SeqCst);
            assert_eq!(before, 0, "two probes in flight");
            Some(permit)
        }
        Err(_) => {
            rejected.fetch_add(1, Ordering::SeqCst);
            None
        }
    }
}

/// Half-open with one probe slot: three threads ask at once; one succeeds, one cancels
/// (drops its permit), one fails. Never two probes in flight; every count exact.
#[test]
fn half_open_admits_at_most_one_probe_at_a_time() {
    model(|| {
        let cb = CircuitBreaker::new(half_open_config());
        half_open(&cb);
        let in_flight = Arc::new(AtomicUsize::new(0));
        let successes = Arc::new(AtomicU64::new(0));
        let failures = Arc::new(AtomicU64::new(0));
        let rejected = Arc::new(AtomicU64::new(0));

        let succeeding = thread::spawn({
            let cb = cb.clone();
            let (in_flight, rejected) = (Arc::clone(&in_flight), Arc::clone(&rejected));
            let successes = Arc::clone(&successes);
            move || {
                if let Some(permit) = probe(&cb, &in_flight, &rejected) {
                    in_flight.fetch_sub(1, Ordering::SeqCst);
                    permit.success();
                    successes.fetch_add(1, Ordering::SeqCst);
                }
            }
        });
        let cancelling = thread::spawn({
            let cb = cb.clone();
            let (in_flight, rejected) = (Arc::clone(&in_flight), Arc::clone(&rejected));
            move || {
                if let Some(permit) = probe(&cb, &in_flight, &rejected) {
                    in_flight.fetch_sub(1, Ordering::SeqCst);
                    drop(permit);
                }
            }
        });
        if let Some(permit) = probe(&cb, &in_flight, &rejected) {
            in_flight.fetch_sub(1, Ordering::SeqCst);
            permit.failure(ErrorKind::Unavailable);
            failures.fetch_add(1, Ordering::SeqCst);
        }
        assert!(succeeding.join().is_ok());
        assert!(cancelling.join().is_ok());

        let stats = cb.stats();
        assert_eq!(stats.success_count, successes.load(Ordering::SeqCst));
        // The failure that tripped it, plus the probe's.
        assert_eq!(stats.failure_count, 1 + failures.load(Ordering::SeqCst));
        assert_eq!(stats.rejected_count, rejected.load(Ordering::SeqCst));
        assert_eq!(cb.state(), stats.state);
        // One success is not enough to close (threshold 2); a failed probe opens it.
        let expected = if failures.load(Ordering::SeqCst) == 1 {
            CircuitState::Open
        } else {
            CircuitState::HalfOpen
        };
        assert_eq!(stats.state, expected);
    });
}

/// Closed, threshold 2: two threads succeed (and fail) through `call` while a third fails; the
/// breaker may open mid-way. Every admitted call is counted exactly once, every rejection too,
/// and the lock-free word agrees with the core at the end.
#[test]
fn closed_path_counts_every_outcome_exactly() {
    model(|| {
        let cb = CircuitBreaker::new(config(2));
        let successes = Arc::new(AtomicU64::new(0));
        let failures = Arc::new(AtomicU64::new(0));
        let rejected = Arc::new(AtomicU64::new(0));
        let worker = |outcomes: &'static [bool]| {
            let cb = cb.clone();
            let counters = (
                Arc::clone(&successes),
                Arc::clone(&failures),
                Arc::clone(&rejected),
            );
            move || {
                for &ok in outcomes {
                    let result =
                        ready(cb.call(|| async move { if ok { Ok(()) } else { Err(Failed) } }));
                    let counter = match result {
                        Ok(()) => &counters.0,
                        Err(rustkernel_tokio::resilience::ResilienceError::Operation(_)) => {
                            &counters.1
                        }
                        Err(_) => &counters.2,
                    };
                    counter.fetch_add(1, Ordering::SeqCst);
                }
            }
        };
        let first = thread::spawn(worker(&[true, false]));
        let second = thread::spawn(worker(&[true]));
        worker(&[false])();
        assert!(first.join().is_ok());
        assert!(second.join().is_ok());

        let stats = cb.stats();
        assert_eq!(stats.success_count, successes.load(Ordering::SeqCst));
        assert_eq!(stats.failure_count, failures.load(Ordering::SeqCst));
        assert_eq!(stats.rejected_count, rejected.load(Ordering::SeqCst));
        assert_eq!(
            successes.load(Ordering::SeqCst)
                + failures.load(Ordering::SeqCst)
                + rejected.load(Ordering::SeqCst),
            4
        );
        assert_eq!(cb.state(), stats.state);
    });
}

/// A success that happens after a failure (by the memory model: it saw the failing thread's
/// flag) must end the failure streak even though successes skip the lock: the failure's streak
/// bit in the word is visible to it.
#[test]
fn a_success_ordered_after_a_failure_ends_the_streak() {
    model(|| {
        let cb = CircuitBreaker::new(config(2));
        let failed = Arc::new(AtomicBool::new(false));
        let failing = thread::spawn({
            let (cb, failed) = (cb.clone(), Arc::clone(&failed));
            move || {
                if let Ok(permit) = cb.try_acquire() {
                    permit.failure(ErrorKind::Transient);
                }
                failed.store(true, Ordering::Release);
            }
        });
        let succeeding = thread::spawn({
            let (cb, failed) = (cb.clone(), Arc::clone(&failed));
            move || {
                let saw = failed.load(Ordering::Acquire);
                if saw && let Ok(permit) = cb.try_acquire() {
                    permit.success();
                }
                saw
            }
        });
        assert!(failing.join().is_ok());
        let saw = succeeding
            .join()
            .unwrap_or_else(|_| panic!("the succeeding thread panicked"));
        if let Ok(permit) = cb.try_acquire() {
            permit.failure(ErrorKind::Transient);
        }
        // Failure, success, failure: a streak of one. Failure, failure: open.
        let expected = if saw {
            CircuitState::Closed
        } else {
            CircuitState::Open
        };
        assert_eq!(cb.state(), expected);
        assert_eq!(cb.stats().state, expected);
    });
}

/// A success admitted while closed that settles after another thread tripped the breaker is
/// counted but cannot close it.
#[test]
fn a_late_closed_success_never_closes_an_open_breaker() {
    model(|| {
        let cb = CircuitBreaker::new(config(1));
        let succeeding = thread::spawn({
            let cb = cb.clone();
            move || cb.try_acquire().map(CallPermit::success).is_ok()
        });
        if let Ok(permit) = cb.try_acquire() {
            permit.failure(ErrorKind::Transient);
        }
        let admitted = succeeding
            .join()
            .unwrap_or_else(|_| panic!("the succeeding thread panicked"));
        let stats = cb.stats();
        assert_eq!(stats.state, CircuitState::Open);
        assert_eq!(cb.state(), CircuitState::Open);
        assert_eq!(stats.success_count, u64::from(admitted));
        assert_eq!(stats.rejected_count, u64::from(!admitted));
    });
}

/// Failure-rate mode (a window of 4, 50 %, at least 2 calls): two threads succeed (their
/// successes counted on their stripes while the window holds no failure) while a third fails.
/// Whatever the interleaving, every outcome is counted once, and while the breaker stays closed
/// the window holds every admitted outcome: the stripes' successes were handed to it before the
/// failure was recorded or the stats were read.
#[test]
fn rate_mode_hands_every_striped_success_to_the_window() {
    model(|| {
        let cb = CircuitBreaker::builder(CircuitBreakerConfig {
            failure_rate_threshold: Some(0.5),
            minimum_calls: 2,
            ..config(1)
        })
        .window(CountWindow::<4>::new())
        .build();
        let outcomes = Arc::new((AtomicU64::new(0), AtomicU64::new(0), AtomicU64::new(0)));
        let worker = |ok: bool| {
            let cb = cb.clone();
            let outcomes = Arc::clone(&outcomes);
            move || {
                let result =
                    ready(cb.call(|| async move { if ok { Ok(()) } else { Err(Failed) } }));
                let counter = match result {
                    Ok(()) => &outcomes.0,
                    Err(rustkernel_tokio::resilience::ResilienceError::Operation(_)) => &outcomes.1,
                    Err(_) => &outcomes.2,
                };
                counter.fetch_add(1, Ordering::SeqCst);
            }
        };
        let first = thread::spawn(worker(true));
        let second = thread::spawn(worker(true));
        worker(false)();
        assert!(first.join().is_ok());
        assert!(second.join().is_ok());

        let (successes, failures, rejected) = (
            outcomes.0.load(Ordering::SeqCst),
            outcomes.1.load(Ordering::SeqCst),
            outcomes.2.load(Ordering::SeqCst),
        );
        let stats = cb.stats();
        assert_eq!(stats.success_count, successes);
        assert_eq!(stats.failure_count, failures);
        assert_eq!(stats.rejected_count, rejected);
        assert_eq!(successes + failures + rejected, 3);
        assert_eq!(cb.state(), stats.state);
        let counts = cb.window_counts();
        match stats.state {
            // The failure came first: the next success (1 of 2 failed) opened it.
            CircuitState::Open => assert_eq!(counts.calls, 0),
            _ => {
                assert_eq!(u64::from(counts.calls), successes + failures);
                assert_eq!(counts.failures, 1);
            }
        }
    });
}
