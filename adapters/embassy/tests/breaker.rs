//! The shared breaker on embassy-time's mock clock.

#![allow(clippy::indexing_slicing, reason = "tests index what they just built")]

mod common;

use core::borrow::Borrow;
use core::cell::Cell;
use core::time::Duration as StdDuration;
use std::vec::Vec;

use common::{JobError, advance, now_ms, panic_message, run_ms, serial};
use embassy_futures::select::{Either, select};
use embassy_sync::blocking_mutex::raw::{CriticalSectionRawMutex, NoopRawMutex, RawMutex};
use embassy_time::{Duration, Timer};
use rustkernel_core::error::{ConfigError, ConfigField, ErrorKind};
use rustkernel_core::resilience::circuit_breaker::SlidingWindow;
use rustkernel_core::resilience::{
    CircuitBreakerConfig, CircuitState, ConstBreakerConfig, CountWindow, FixedConfig, NoWindow,
    OpenReason, Transition, Trip,
};
use rustkernel_embassy::ResilienceError;
use rustkernel_embassy::breaker::CircuitBreaker;
use rustkernel_embassy::time::now;

const CONFIG: CircuitBreakerConfig = CircuitBreakerConfig {
    failure_threshold: 3,
    success_threshold: 2,
    timeout: StdDuration::from_secs(5),
    half_open_max_calls: 1,
    max_wait_in_half_open: StdDuration::from_secs(10),
    ..CircuitBreakerConfig::DEFAULT
};

static SHARED_CONFIG: CircuitBreakerConfig = CONFIG;
static STATIC_BREAKER: CircuitBreaker<CriticalSectionRawMutex, &CircuitBreakerConfig> =
    CircuitBreaker::from_static(&SHARED_CONFIG, NoWindow);
/// A breaker over a configuration that is a type (zero-sized; every read of it a constant).
static FIXED_BREAKER: CircuitBreaker<CriticalSectionRawMutex, FixedConfig<Three>> =
    CircuitBreaker::from_const(NoWindow);

struct Three;

impl ConstBreakerConfig for Three {
    const CONFIG: CircuitBreakerConfig = CONFIG;
}

/// A failure-rate breaker built in a `static`, checked when the test compiles.
static RATE_BREAKER: CircuitBreaker<CriticalSectionRawMutex, CircuitBreakerConfig, CountWindow<4>> =
    CircuitBreaker::with_window(RATE_CONFIG, CountWindow::new());
/// Opens when half of the last 4 calls failed.
const RATE_CONFIG: CircuitBreakerConfig = CircuitBreakerConfig {
    failure_rate_threshold: Some(0.5),
    minimum_calls: 4,
    ..CONFIG
};

fn transient(attempt: u32) -> JobError {
    JobError {
        kind: ErrorKind::Transient,
        attempt,
    }
}

fn tr(from: CircuitState, to: CircuitState) -> Transition {
    Transition::new(from, to)
}

/// A transition to `Open` or `ForcedOpen` with the trip that caused it.
fn opened(from: CircuitState, to: CircuitState, reason: OpenReason, streak: u32) -> Transition {
    Transition {
        from,
        to,
        trip: Some(Trip {
            reason,
            calls: 0,
            failures: 0,
            slow: 0,
            consecutive_failures: streak,
        }),
    }
}

async fn fail<M, C, W>(breaker: &CircuitBreaker<M, C, W>) -> Result<u32, ResilienceError<JobError>>
where
    M: RawMutex,
    C: Borrow<CircuitBreakerConfig>,
    W: SlidingWindow,
{
    breaker.call(|| async { Err(transient(0)) }).await
}

/// Drives a `RATE_CONFIG` breaker over 4 calls: closed after 1 failure in 3, open once 2 of 4
/// have failed.
async fn opens_at_half_of_four<M, C, W>(breaker: &CircuitBreaker<M, C, W>)
where
    M: RawMutex,
    C: Borrow<CircuitBreakerConfig>,
    W: SlidingWindow,
{
    for ok in [true, false, true] {
        let _ = breaker
            .call(|| async move { if ok { Ok(()) } else { Err(transient(0)) } })
            .await;
    }
    assert_eq!(breaker.state(), CircuitState::Closed);
    let _ = fail(breaker).await; // 2 of 4 failed: 50 %
    assert_eq!(breaker.state(), CircuitState::Open);
}

#[test]
fn opens_rejects_half_opens_and_closes_on_the_virtual_clock() {
    let _clock = serial();
    let breaker: CircuitBreaker = CircuitBreaker::try_new(CONFIG).expect("valid");
    let seen = core::cell::RefCell::new(Vec::new());
    let observe = |t: Transition| seen.borrow_mut().push((now_ms(), t));
    let calls = &Cell::new(0u32);
    let job = |ok: bool| {
        calls.set(calls.get() + 1);
        let attempt = calls.get();
        async move {
            if ok {
                Ok(7u32)
            } else {
                Err(transient(attempt))
            }
        }
    };
    run_ms(async {
        for _ in 0..2 {
            let result = breaker.call_observed(|| job(false), observe).await;
            assert!(matches!(result, Err(ResilienceError::Operation(_))));
            assert_eq!(breaker.state(), CircuitState::Closed);
        }
        advance(Duration::from_millis(250));
        let result = breaker.call_observed(|| job(false), observe).await;
        assert_eq!(result, Err(ResilienceError::Operation(transient(3))));
        assert_eq!(breaker.state(), CircuitState::Open);
        // Open: rejected without calling the job, until the open time (5 s) is over.
        let opened_at = now_ms();
        assert_eq!(opened_at, 250);
        assert_eq!(breaker.poll_at().map(|at| at.as_millis()), Some(5_250));
        Timer::after(Duration::from_millis(4_999)).await;
        let result = breaker.call_observed(|| job(true), observe).await;
        assert_eq!(result, Err(ResilienceError::CircuitOpen));
        assert_eq!(calls.get(), 3);
        Timer::after(Duration::from_millis(1)).await;
        // 5 s later: one probe is admitted; a second concurrent one is not.
        let probe = breaker.acquire_observed(observe).expect("half-open probe");
        assert_eq!(breaker.state(), CircuitState::HalfOpen);
        assert_eq!(
            breaker.call(|| job(true)).await,
            Err(ResilienceError::CircuitOpen)
        );
        assert_eq!(probe.success(), None);
        assert_eq!(breaker.call_observed(|| job(true), observe).await, Ok(7));
        assert_eq!(breaker.state(), CircuitState::Closed);
    });
    assert_eq!(
        seen.into_inner(),
        vec![
            (
                250,
                opened(
                    CircuitState::Closed,
                    CircuitState::Open,
                    OpenReason::ConsecutiveFailures,
                    3
                )
            ),
            (5_250, tr(CircuitState::Open, CircuitState::HalfOpen)),
            (5_250, tr(CircuitState::HalfOpen, CircuitState::Closed)),
        ]
    );
    let stats = breaker.stats();
    assert_eq!(stats.failure_count, 3);
    assert_eq!(stats.success_count, 2);
    assert_eq!(stats.rejected_count, 2);
    assert_eq!(stats.transitions, 3);
}

#[test]
fn a_dropped_call_frees_the_probe_slot() {
    let _clock = serial();
    let breaker: CircuitBreaker<NoopRawMutex> = CircuitBreaker::new(CONFIG);
    run_ms(async {
        for _ in 0..3 {
            let _ = fail(&breaker).await;
        }
        assert_eq!(breaker.state(), CircuitState::Open);
        Timer::after(Duration::from_secs(5)).await;
        // The probe hangs; a 100 ms timer wins the select and drops the call future.
        let hung = breaker.call(core::future::pending::<Result<(), JobError>>);
        let winner = select(hung, Timer::after(Duration::from_millis(100))).await;
        assert!(
            matches!(winner, Either::Second(())),
            "a pending job cannot finish"
        );
        assert_eq!(breaker.state(), CircuitState::HalfOpen);
        // The slot is free at once, long before max_wait_in_half_open (10 s).
        assert_eq!(breaker.call(|| async { Ok::<_, JobError>(1) }).await, Ok(1));
        assert_eq!(breaker.call(|| async { Ok::<_, JobError>(2) }).await, Ok(2));
        assert_eq!(breaker.state(), CircuitState::Closed);
        assert_eq!(now_ms(), 5_100);
    });
    // A cancelled probe counts as neither success nor failure.
    assert_eq!(breaker.stats().success_count, 2);
    assert_eq!(breaker.stats().failure_count, 3);
}

#[test]
fn a_dropped_guard_frees_the_slot_and_a_forgotten_one_is_recovered_by_max_wait() {
    let _clock = serial();
    let breaker: CircuitBreaker<NoopRawMutex> = CircuitBreaker::new(CONFIG);
    run_ms(async {
        for _ in 0..3 {
            let _ = fail(&breaker).await;
        }
        Timer::after(Duration::from_secs(5)).await;
        let probe = breaker.acquire().expect("probe");
        assert!(breaker.acquire().is_err(), "one probe at a time");
        drop(probe);
        let probe = breaker.acquire().expect("the dropped guard freed the slot");
        // A guard that is never settled nor dropped (leaked) keeps the slot...
        core::mem::forget(probe);
        assert!(breaker.acquire().is_err());
        // ...until the half-open cycle outlives max_wait_in_half_open: it opens again.
        assert_eq!(breaker.poll_at().map(|at| at.as_millis()), Some(15_000));
        Timer::after(Duration::from_secs(10)).await;
        assert_eq!(
            breaker.poll(),
            Some(opened(
                CircuitState::HalfOpen,
                CircuitState::Open,
                OpenReason::HalfOpenTimeout,
                0
            ))
        );
        assert_eq!(breaker.poll_at().map(|at| at.as_millis()), Some(20_000));
    });
}

#[test]
fn a_call_that_started_before_the_breaker_opened_cannot_close_it() {
    let _clock = serial();
    let breaker: CircuitBreaker = CircuitBreaker::new(CONFIG);
    run_ms(async {
        let slow = breaker.call(|| async {
            Timer::after(Duration::from_secs(1)).await;
            Ok::<_, JobError>(0)
        });
        let trip = async {
            for _ in 0..3 {
                let _ = fail(&breaker).await;
            }
        };
        let (slow, ()) = embassy_futures::join::join(slow, trip).await;
        assert_eq!(slow, Ok(0), "the slow call's own result is returned");
        assert_eq!(breaker.state(), CircuitState::Open);
    });
}

#[test]
fn a_breaker_over_a_configuration_type_opens_and_recovers_as_configured() {
    let _clock = serial();
    assert_eq!(size_of::<FixedConfig<Three>>(), 0);
    assert_eq!(FIXED_BREAKER.state(), CircuitState::Closed);
    run_ms(async {
        for _ in 0..2 {
            let _ = fail(&FIXED_BREAKER).await;
        }
    });
    assert_eq!(FIXED_BREAKER.state(), CircuitState::Closed);
    run_ms(async {
        let _ = fail(&FIXED_BREAKER).await;
    });
    assert_eq!(FIXED_BREAKER.state(), CircuitState::Open);
    assert!(matches!(
        run_ms(fail(&FIXED_BREAKER)),
        Err(ResilienceError::CircuitOpen)
    ));
    // After the configured 5 s, two good probes close it.
    advance(Duration::from_secs(5));
    for _ in 0..2 {
        assert_eq!(
            run_ms(FIXED_BREAKER.call(|| async { Ok::<u32, JobError>(1) })),
            Ok(1)
        );
    }
    assert_eq!(FIXED_BREAKER.state(), CircuitState::Closed);
}

#[test]
fn a_static_breaker_works_from_the_start() {
    let _clock = serial();
    assert_eq!(STATIC_BREAKER.state(), CircuitState::Closed);
    run_ms(async {
        for _ in 0..3 {
            let _ = fail(&STATIC_BREAKER).await;
        }
    });
    assert_eq!(STATIC_BREAKER.state(), CircuitState::Open);
    assert_eq!(
        STATIC_BREAKER.reset(),
        Some(tr(CircuitState::Open, CircuitState::Closed))
    );
    assert_eq!(
        STATIC_BREAKER.force_open(),
        Some(opened(
            CircuitState::Closed,
            CircuitState::ForcedOpen,
            OpenReason::Forced,
            0
        ))
    );
    assert!(STATIC_BREAKER.acquire().is_err());
    assert_eq!(
        STATIC_BREAKER.disable(),
        Some(tr(CircuitState::ForcedOpen, CircuitState::Disabled))
    );
    run_ms(async {
        for _ in 0..10 {
            let _ = fail(&STATIC_BREAKER).await;
        }
    });
    assert_eq!(STATIC_BREAKER.state(), CircuitState::Disabled);
    assert_eq!(
        STATIC_BREAKER.reset(),
        Some(tr(CircuitState::Disabled, CircuitState::Closed))
    );
    // Shadow mode: the failures that opened it above pass now, and the observer hears that it
    // would have opened.
    assert_eq!(
        STATIC_BREAKER.metrics_only(),
        Some(tr(CircuitState::Closed, CircuitState::MetricsOnly))
    );
    let reports = core::cell::RefCell::new(Vec::new());
    run_ms(async {
        for _ in 0..3 {
            let result = STATIC_BREAKER
                .call_observed(
                    || async { Err::<u32, _>(transient(0)) },
                    |t: Transition| reports.borrow_mut().push(t),
                )
                .await;
            assert!(matches!(result, Err(ResilienceError::Operation(_))));
        }
    });
    let reports = reports.into_inner();
    assert_eq!(reports.len(), 1);
    assert!(reports.iter().all(Transition::would_open));
    assert_eq!(STATIC_BREAKER.state(), CircuitState::MetricsOnly);
    assert_eq!(STATIC_BREAKER.stats().would_open_count, 1);
    STATIC_BREAKER.reset();
}

#[test]
fn an_invalid_configuration_is_a_typed_error_and_never_a_breaker() {
    let _clock = serial();
    let invalid = CircuitBreakerConfig {
        failure_threshold: 0,
        ..CONFIG
    };
    let error = ConfigError::Zero(ConfigField::FailureThreshold);
    assert_eq!(
        CircuitBreaker::<NoopRawMutex>::try_new(invalid).err(),
        Some(error)
    );
    assert_eq!(
        CircuitBreaker::<NoopRawMutex, _, _>::try_with_window(invalid, CountWindow::<4>::new())
            .err(),
        Some(error)
    );
    // A window by time needs its duration, which only the run-time constructor can take.
    assert_eq!(
        CircuitBreaker::<NoopRawMutex, _, _>::try_with_window(
            CONFIG,
            rustkernel_core::resilience::TimeWindow::<10>::new()
        )
        .err(),
        Some(ConfigError::Missing(ConfigField::WindowDuration))
    );
    // `new` is for `static`s, where an invalid configuration does not compile (the module's
    // `compile_fail` example); at run time it panics with the same message, which names the
    // field and its rule.
    let message = panic_message(|| CircuitBreaker::<NoopRawMutex>::new(invalid));
    assert_eq!(
        message,
        "invalid circuit breaker configuration: circuit_breaker.failure_threshold must be \
         greater than zero"
    );
}

#[test]
fn a_static_failure_rate_breaker_opens_on_its_window() {
    let _clock = serial();
    run_ms(opens_at_half_of_four(&RATE_BREAKER));
}

#[test]
fn ignored_errors_do_not_count() {
    let _clock = serial();
    let breaker: CircuitBreaker<NoopRawMutex> = CircuitBreaker::new(CONFIG);
    run_ms(async {
        for attempt in 0..10 {
            let bad_input = JobError {
                kind: ErrorKind::InvalidInput,
                attempt,
            };
            let result = breaker
                .call(|| async move { Err::<(), _>(bad_input) })
                .await;
            assert_eq!(result, Err(ResilienceError::Operation(bad_input)));
        }
    });
    assert_eq!(breaker.state(), CircuitState::Closed);
    assert_eq!(breaker.stats().failure_count, 0);
}

#[test]
fn failure_rate_mode_uses_the_window() {
    let _clock = serial();
    assert!(
        CircuitBreaker::<NoopRawMutex>::try_new(RATE_CONFIG).is_err(),
        "needs a window"
    );
    let breaker: CircuitBreaker<NoopRawMutex, CircuitBreakerConfig, CountWindow<4>> =
        CircuitBreaker::try_with_window(RATE_CONFIG, CountWindow::new()).expect("valid");
    run_ms(opens_at_half_of_four(&breaker));
}

#[test]
fn the_clock_is_read_in_microseconds() {
    let _clock = serial();
    advance(Duration::from_micros(1_234_567));
    assert_eq!(now().as_micros(), 1_234_567);
}

#[test]
fn failure_rate_by_time_forgets_failures_older_than_the_window() {
    use rustkernel_core::resilience::TimeWindow;

    let _clock = serial();
    let config = CircuitBreakerConfig {
        failure_rate_threshold: Some(0.5),
        minimum_calls: 4,
        window_duration: Some(StdDuration::from_secs(10)),
        ..CONFIG
    };
    let breaker: CircuitBreaker<NoopRawMutex, CircuitBreakerConfig, TimeWindow<10>> =
        CircuitBreaker::try_with_window(config, TimeWindow::new()).expect("valid");
    run_ms(async {
        // Two failures and a success: 3 calls, under the minimum.
        let _ = fail(&breaker).await;
        let _ = fail(&breaker).await;
        let _ = breaker.call(|| async { Ok::<_, JobError>(1) }).await;
        assert_eq!(breaker.state(), CircuitState::Closed);
        // 11 s later all three have left the window: this failure is 1 call, not the 4th
        // (3 failures in 4 would open it).
        Timer::after(Duration::from_secs(11)).await;
        let _ = fail(&breaker).await;
        assert_eq!(breaker.state(), CircuitState::Closed);
        let _ = breaker.call(|| async { Ok::<_, JobError>(2) }).await;
        let _ = breaker.call(|| async { Ok::<_, JobError>(3) }).await;
        assert_eq!(breaker.state(), CircuitState::Closed);
        // 2 failures in 4 calls within the window: 50 %, it opens.
        let _ = fail(&breaker).await;
        assert_eq!(breaker.state(), CircuitState::Open);
        let stats = breaker.stats();
        assert_eq!(
            stats.trip.map(|trip| (trip.calls, trip.failures)),
            Some((4, 2))
        );
    });
}
