//! The shared breaker reads the adapter's one clock ([`rustkernel_tokio::clock`]), so the
//! core instants it hands out (`Rejected::retry_at`) compare with every other instant of the
//! crate, on tokio's paused clock.

use std::time::Duration;

use rustkernel_tokio::clock;
use rustkernel_tokio::resilience::{CircuitBreaker, CircuitBreakerConfig, ErrorKind};
use tokio::time::{Instant, advance};

const OPEN_FOR: Duration = Duration::from_secs(30);

#[tokio::test(start_paused = true)]
async fn retry_at_is_now_plus_the_open_time_on_the_crate_clock() {
    // The paused clock has moved before the breaker is built, and moves again before it trips:
    // an epoch of the breaker's own would put `retry_at` 100 s (or a day) away from the crate's.
    advance(Duration::from_secs(100)).await;
    let cb = CircuitBreaker::new(CircuitBreakerConfig {
        failure_threshold: 1,
        timeout: OPEN_FOR,
        ..Default::default()
    });
    advance(Duration::from_secs(7)).await;
    let opened = Instant::now();
    cb.try_acquire()
        .expect("closed")
        .failure(ErrorKind::Transient);
    let rejected = cb.try_acquire().expect_err("open");
    let retry_at = rejected.retry_at.expect("open until");
    assert_eq!(retry_at, clock::to_core(opened + OPEN_FOR));
    assert_eq!(retry_at, clock::now() + OPEN_FOR);
    // As a tokio instant: the open time's end, to the microsecond, and what `poll_at` says.
    let back = clock::to_tokio(retry_at);
    assert!(back <= opened + OPEN_FOR && opened + OPEN_FOR - back < Duration::from_micros(1));
    assert_eq!(cb.poll_at(), Some(back));
    // Waking at that instant finds the open time over.
    advance(back - Instant::now()).await;
    assert!(cb.try_acquire().is_ok());
}

/// The coarse clock follows the real clock only, so this test runs on it: real time is the
/// point. A call slower than `slow_call_duration` by far more than the coarse clock's tick is
/// slow; calls that return at once are not.
#[tokio::test]
async fn a_breaker_on_the_coarse_clock_times_real_slow_calls() {
    use rustkernel_tokio::resilience::{CircuitState, CountWindow, OpenReason};

    let cb = CircuitBreaker::builder(CircuitBreakerConfig {
        slow_call_duration: Some(Duration::from_millis(40)),
        slow_call_rate_threshold: 0.5,
        minimum_calls: 4,
        ..Default::default()
    })
    .window(CountWindow::<4>::new())
    .coarse_clock()
    .build();
    for _ in 0..3 {
        assert_eq!(cb.call(|| async { Ok::<_, ErrorKind>(()) }).await, Ok(()));
    }
    assert_eq!(cb.stats().slow_call_count, 0);
    let slow = || async {
        tokio::time::sleep(Duration::from_millis(80)).await;
        Ok::<_, ErrorKind>(())
    };
    assert_eq!(cb.call(slow).await, Ok(()));
    assert_eq!(cb.stats().slow_call_count, 1);
    assert_eq!(cb.state(), CircuitState::Closed, "1 slow call of 4");
    // The window now holds 3 fast calls and 1 slow; 2 of 4 slow reaches 0.5.
    assert_eq!(cb.call(slow).await, Ok(()));
    assert_eq!(cb.state(), CircuitState::Open);
    let trip = cb.stats().trip.expect("opened");
    assert_eq!(trip.reason, OpenReason::SlowCallRate);
    assert_eq!(trip.slow, 2);
}
