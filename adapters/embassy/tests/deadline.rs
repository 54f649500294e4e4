//! Deadlines and timeouts on embassy-time's mock clock.

#![allow(clippy::indexing_slicing, reason = "tests index what they just built")]

mod common;

use core::cell::Cell;
use core::time::Duration as StdDuration;

use common::{JobError, advance, now_ms, run_ms, serial};
use embassy_sync::blocking_mutex::raw::NoopRawMutex;
use embassy_time::{Duration, Instant, Timer};
use rustkernel_core::error::ErrorKind;
use rustkernel_core::resilience::{
    CircuitBreakerConfig, CircuitState, DeadlineExceeded, TimeoutConfig, WireDeadline,
};
use rustkernel_embassy::ResilienceError;
use rustkernel_embassy::breaker::CircuitBreaker;
use rustkernel_embassy::deadline::{DeadlineContext, execute_with_config, execute_with_timeout};

async fn slow(ms: u64) -> Result<u64, JobError> {
    Timer::after(Duration::from_millis(ms)).await;
    Ok(ms)
}

#[test]
fn the_deadline_fires_on_time() {
    let _clock = serial();
    advance(Duration::from_secs(1));
    let deadline = DeadlineContext::new(StdDuration::from_millis(300));
    assert_eq!(deadline.deadline(), Instant::from_millis(1_300));
    assert_eq!(deadline.remaining(), StdDuration::from_millis(300));
    assert_eq!(run_ms(deadline.execute(|| slow(200))), Ok(200));
    assert_eq!(now_ms(), 1_200);
    assert_eq!(deadline.remaining(), StdDuration::from_millis(100));
    assert_eq!(
        run_ms(deadline.execute(|| slow(1_000))),
        Err(ResilienceError::DeadlineExceeded)
    );
    assert_eq!(now_ms(), 1_300, "cut exactly at the deadline");
    assert!(deadline.is_expired());
    assert_eq!(deadline.check(), Err(DeadlineExceeded));
    let called = Cell::new(false);
    let result = run_ms(deadline.execute(|| {
        called.set(true);
        slow(0)
    }));
    assert_eq!(result, Err(ResilienceError::DeadlineExceeded));
    assert!(!called.get(), "an expired deadline does not start the work");
    assert_eq!(run_ms(deadline.run(async { 5 })), Err(DeadlineExceeded));
}

#[test]
fn children_never_outlive_their_parent_and_the_wire_form_is_relative() {
    let _clock = serial();
    let parent = DeadlineContext::new(StdDuration::from_secs(2));
    assert_eq!(
        parent.child_with_timeout(StdDuration::from_secs(60)),
        parent
    );
    let child = parent.child_with_timeout(StdDuration::from_millis(500));
    assert_eq!(child.deadline(), Instant::from_millis(500));
    advance(Duration::from_millis(1_500));
    assert_eq!(child.remaining(), StdDuration::ZERO);
    let wire = parent.to_wire();
    assert_eq!(
        wire,
        WireDeadline {
            remaining_micros: 500_000
        }
    );
    advance(Duration::from_secs(7));
    let received = DeadlineContext::from_wire(wire);
    assert_eq!(received.deadline(), Instant::from_millis(9_000));
}

#[test]
fn no_deadline_never_fires_and_never_overflows() {
    let _clock = serial();
    advance(Duration::from_secs(5));
    let never = DeadlineContext::new(StdDuration::MAX);
    assert_eq!(never, DeadlineContext::never());
    assert_eq!(never.deadline(), Instant::MAX);
    assert_eq!(run_ms(never.execute(|| slow(3_000))), Ok(3_000));
    assert_eq!(
        run_ms(execute_with_timeout(StdDuration::MAX, || slow(10))),
        Ok(10)
    );
}

#[test]
fn own_timeouts_and_parent_deadlines_are_told_apart() {
    let _clock = serial();
    assert_eq!(
        run_ms(execute_with_timeout(StdDuration::from_millis(50), || slow(
            100
        ))),
        Err(ResilienceError::Timeout)
    );
    assert_eq!(now_ms(), 50);
    let config = TimeoutConfig {
        default_timeout: StdDuration::from_millis(400),
        max_timeout: StdDuration::from_secs(1),
        propagate_deadline: true,
        include_queue_time: true,
    };
    let queued_at = Instant::now();
    advance(Duration::from_millis(100));
    // The default 400 ms counts from the queueing instant: 300 ms are left.
    let result = run_ms(execute_with_config(&config, None, None, queued_at, || {
        slow(1_000)
    }));
    assert_eq!(result, Err(ResilienceError::Timeout));
    assert_eq!(now_ms(), 50 + 400);
    // A parent deadline earlier than the call's own timeout is the caller's time running out.
    let parent = DeadlineContext::new(StdDuration::from_millis(20));
    let result = run_ms(execute_with_config(
        &config,
        Some(StdDuration::from_millis(500)),
        Some(parent),
        Instant::now(),
        || slow(1_000),
    ));
    assert_eq!(result, Err(ResilienceError::DeadlineExceeded));
    assert_eq!(now_ms(), 450 + 20);
    let result = run_ms(execute_with_config(
        &config,
        None,
        Some(parent),
        Instant::now(),
        || slow(1),
    ));
    assert_eq!(result, Err(ResilienceError::DeadlineExceeded));
}

/// The core's rule, as on tokio: a call whose deadline was gone before it could start never
/// runs and is `DeadlineExceeded`, even when the bound was its own timeout.
#[test]
fn a_call_with_no_time_left_at_its_start_is_deadline_exceeded() {
    let _clock = serial();
    let config = TimeoutConfig {
        default_timeout: StdDuration::from_millis(400),
        max_timeout: StdDuration::from_secs(1),
        propagate_deadline: true,
        include_queue_time: true,
    };
    let queued_at = Instant::now();
    advance(Duration::from_millis(500));
    let calls = Cell::new(0);
    let result = run_ms(execute_with_config(&config, None, None, queued_at, || {
        calls.set(calls.get() + 1);
        slow(1)
    }));
    assert_eq!(result, Err(ResilienceError::DeadlineExceeded));
    let result = run_ms(execute_with_timeout(StdDuration::ZERO, || {
        calls.set(calls.get() + 1);
        slow(1)
    }));
    assert_eq!(result, Err(ResilienceError::DeadlineExceeded));
    assert_eq!(calls.get(), 0);
}

#[test]
fn a_deadline_that_cuts_a_probe_frees_its_breaker_slot() {
    let _clock = serial();
    let breaker: CircuitBreaker<NoopRawMutex> = CircuitBreaker::new(CircuitBreakerConfig {
        failure_threshold: 1,
        success_threshold: 1,
        timeout: StdDuration::from_secs(1),
        ..CircuitBreakerConfig::DEFAULT
    });
    run_ms(async {
        let failed = breaker
            .call(|| async {
                Err::<(), _>(JobError {
                    kind: ErrorKind::Transient,
                    attempt: 1,
                })
            })
            .await;
        assert!(failed.is_err());
        Timer::after(Duration::from_secs(1)).await;
        // The probe hangs; the deadline drops it, and with it the breaker's permit.
        let deadline = DeadlineContext::new(StdDuration::from_millis(100));
        let cut = deadline.execute(|| breaker.call(|| slow(10_000))).await;
        assert_eq!(cut, Err(ResilienceError::DeadlineExceeded));
        assert_eq!(breaker.state(), CircuitState::HalfOpen);
        assert_eq!(breaker.call(|| slow(1)).await, Ok(1));
        assert_eq!(breaker.state(), CircuitState::Closed);
    });
}
