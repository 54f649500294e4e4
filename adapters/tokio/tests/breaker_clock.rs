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
