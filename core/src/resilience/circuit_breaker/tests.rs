extern crate std;
use std::string::ToString;

use core::time::Duration;

use super::*;
use crate::error::ConfigField;

fn t(secs: u64) -> Instant {
    Instant::from_secs(secs)
}

fn config() -> CircuitBreakerConfig {
    CircuitBreakerConfig {
        failure_threshold: 3,
        success_threshold: 2,
        timeout: Duration::from_secs(10),
        half_open_max_calls: 2,
        max_wait_in_half_open: Duration::from_secs(20),
        ..Default::default()
    }
}

fn fail<C: Borrow<CircuitBreakerConfig>, W: SlidingWindow>(
    cb: &mut CircuitBreaker<C, W>,
    now: Instant,
) -> Option<Transition> {
    let permit = cb.try_acquire(now).expect("admitted");
    cb.on_failure(permit, ErrorKind::Transient, now)
}

fn succeed<C: Borrow<CircuitBreakerConfig>, W: SlidingWindow>(
    cb: &mut CircuitBreaker<C, W>,
    now: Instant,
) -> Option<Transition> {
    let permit = cb.try_acquire(now).expect("admitted");
    cb.on_success(permit, now)
}

const OPENED: (CircuitState, CircuitState) = (CircuitState::Closed, CircuitState::Open);

const REOPENED: (CircuitState, CircuitState) = (CircuitState::HalfOpen, CircuitState::Open);

/// A transition's states, without its trip figures.
fn edge(transition: Option<Transition>) -> Option<(CircuitState, CircuitState)> {
    transition.map(|t| (t.from, t.to))
}

#[test]
fn consecutive_failures_open_and_a_success_resets_the_count() {
    let mut cb = CircuitBreaker::new(config());
    assert_eq!(fail(&mut cb, t(1)), None);
    assert_eq!(fail(&mut cb, t(1)), None);
    assert_eq!(succeed(&mut cb, t(1)), None);
    assert_eq!(cb.stats().consecutive_failures, 0);
    fail(&mut cb, t(2));
    fail(&mut cb, t(2));
    assert_eq!(edge(fail(&mut cb, t(2))), Some(OPENED));
    let rejected = cb.try_acquire(t(3)).expect_err("open");
    assert_eq!(rejected.state, CircuitState::Open);
    assert_eq!(rejected.retry_at, Some(t(12)));
    assert_eq!(cb.poll_at(), Some(t(12)));
    let stats = cb.stats();
    assert_eq!(
        (
            stats.failure_count,
            stats.success_count,
            stats.rejected_count
        ),
        (5, 1, 1)
    );
    assert!((stats.success_rate - 1.0 / 6.0).abs() < 1e-9);
}

#[test]
fn half_open_admits_bounded_probes_and_closes_after_successes() {
    let mut cb = CircuitBreaker::new(config());
    for _ in 0..3 {
        fail(&mut cb, t(0));
    }
    let p1 = cb.try_acquire(t(10)).expect("probe 1");
    assert_eq!(
        p1.transition(),
        Some(Transition::new(CircuitState::Open, CircuitState::HalfOpen))
    );
    let p2 = cb.try_acquire(t(10)).expect("probe 2");
    let full = cb.try_acquire(t(10)).expect_err("only two probes");
    assert_eq!(full.state, CircuitState::HalfOpen);
    assert_eq!(cb.on_success(p1, t(11)), None);
    // A slot freed by a finished probe can be used again.
    let p3 = cb.try_acquire(t(11)).expect("probe 3");
    assert_eq!(
        cb.on_success(p2, t(11)),
        Some(Transition::new(
            CircuitState::HalfOpen,
            CircuitState::Closed
        ))
    );
    // p3 belongs to the finished half-open cycle: counted, but changes nothing.
    let before = cb.stats();
    assert_eq!(cb.on_failure(p3, ErrorKind::Transient, t(12)), None);
    assert_eq!(cb.state(), CircuitState::Closed);
    assert_eq!(cb.stats().failure_count, before.failure_count + 1);
    assert_eq!(cb.stats().consecutive_failures, 0);
}

#[test]
fn sequential_probes_close_when_only_one_may_run_at_a_time() {
    let mut cb = CircuitBreaker::new(CircuitBreakerConfig {
        half_open_max_calls: 1,
        ..config()
    });
    for _ in 0..3 {
        fail(&mut cb, t(0));
    }
    assert_eq!(succeed(&mut cb, t(10)), None);
    assert_eq!(cb.state(), CircuitState::HalfOpen);
    assert_eq!(
        succeed(&mut cb, t(10)).map(|tr| tr.to),
        Some(CircuitState::Closed)
    );
}

#[test]
fn a_failed_probe_reopens_and_stale_closed_results_change_nothing() {
    let mut cb = CircuitBreaker::new(config());
    let slow_call = cb.try_acquire(t(0)).expect("closed");
    for _ in 0..3 {
        fail(&mut cb, t(0));
    }
    // The slow call started before the breaker opened: its success must not close it.
    assert_eq!(cb.on_success(slow_call, t(1)), None);
    assert_eq!(cb.state(), CircuitState::Open);
    let probe = cb.try_acquire(t(10)).expect("probe");
    assert_eq!(
        cb.on_failure(probe, ErrorKind::Timeout, t(11)),
        Some(Transition {
            from: CircuitState::HalfOpen,
            to: CircuitState::Open,
            trip: Some(Trip {
                reason: OpenReason::ProbeFailed,
                calls: 1,
                failures: 1,
                slow: 0,
                consecutive_failures: 1,
            }),
        })
    );
    assert_eq!(cb.poll_at(), Some(t(21)));
}

#[test]
fn probes_that_never_report_end_the_cycle_after_max_wait() {
    let mut cb = CircuitBreaker::new(config());
    for _ in 0..3 {
        fail(&mut cb, t(0));
    }
    let _lost1 = cb.try_acquire(t(10)).expect("probe");
    let _lost2 = cb.try_acquire(t(10)).expect("probe");
    assert!(cb.try_acquire(t(15)).is_err());
    assert_eq!(cb.poll_at(), Some(t(30)));
    let reopened = cb.poll(t(30));
    assert_eq!(edge(reopened), Some(REOPENED));
    assert_eq!(
        reopened
            .and_then(|t| t.trip)
            .map(|trip| (trip.reason, trip.calls)),
        Some((OpenReason::HalfOpenTimeout, 0))
    );
    // A new cycle follows the open time, with fresh slots.
    assert!(cb.try_acquire(t(40)).is_ok());
}

#[test]
fn cancelled_probes_free_their_slot_without_counting() {
    let mut cb = CircuitBreaker::new(CircuitBreakerConfig {
        half_open_max_calls: 1,
        ..config()
    });
    for _ in 0..3 {
        fail(&mut cb, t(0));
    }
    let probe = cb.try_acquire(t(10)).expect("probe");
    assert!(cb.try_acquire(t(10)).is_err());
    let before = cb.stats();
    assert_eq!(cb.on_cancelled(probe, t(10)), None);
    assert_eq!(
        (cb.stats().success_count, cb.stats().failure_count),
        (before.success_count, before.failure_count)
    );
    assert!(cb.try_acquire(t(10)).is_ok());
}

#[test]
fn ignored_error_kinds_neither_fail_nor_succeed() {
    let mut cb = CircuitBreaker::new(CircuitBreakerConfig {
        failure_threshold: 1,
        ..config()
    });
    let permit = cb.try_acquire(t(0)).expect("closed");
    assert_eq!(cb.on_failure(permit, ErrorKind::InvalidInput, t(0)), None);
    assert_eq!(cb.state(), CircuitState::Closed);
    assert_eq!(cb.stats().failure_count, 0);
    assert_eq!(edge(fail(&mut cb, t(0))), Some(OPENED));
}

#[test]
fn open_time_grows_on_each_reopen_up_to_the_cap() {
    let mut cb = CircuitBreaker::new(CircuitBreakerConfig {
        open_backoff: Some(OpenBackoff {
            multiplier: 2.0,
            max: Duration::from_secs(35),
        }),
        half_open_max_calls: 1,
        ..config()
    });
    for _ in 0..3 {
        fail(&mut cb, t(0));
    }
    assert_eq!(cb.poll_at(), Some(t(10)));
    let mut now = t(10);
    for expected in [20, 35, 35] {
        fail(&mut cb, now);
        let until = cb.poll_at().expect("open");
        assert_eq!(until - now, Duration::from_secs(expected));
        now = until;
    }
    // A successful close forgets the growth.
    succeed(&mut cb, now);
    succeed(&mut cb, now);
    assert_eq!(cb.state(), CircuitState::Closed);
    for _ in 0..3 {
        fail(&mut cb, now);
    }
    assert_eq!(cb.poll_at(), Some(now + Duration::from_secs(10)));
}

#[test]
fn rate_mode_opens_at_the_threshold_after_minimum_calls() {
    let config = CircuitBreakerConfig {
        failure_rate_threshold: Some(0.5),
        minimum_calls: 4,
        ..config()
    };
    let mut cb = CircuitBreaker::with_window(config, CountWindow::<8>::new());
    assert_eq!(fail(&mut cb, t(0)), None);
    assert_eq!(succeed(&mut cb, t(0)), None);
    assert_eq!(fail(&mut cb, t(0)), None); // 2 of 3, below minimum_calls
    assert_eq!(edge(succeed(&mut cb, t(0))), Some(OPENED)); // 2 of 4 = 50 %
}

#[test]
fn slow_call_rate_opens_and_slow_probes_fail() {
    let config = CircuitBreakerConfig {
        slow_call_duration: Some(Duration::from_secs(2)),
        slow_call_rate_threshold: 0.5,
        minimum_calls: 2,
        ..config()
    };
    let mut cb = CircuitBreaker::with_window(config, CountWindow::<4>::new());
    let slow = cb.try_acquire(t(0)).expect("closed");
    assert_eq!(cb.on_success(slow, t(3)), None);
    assert_eq!(edge(succeed(&mut cb, t(3))), Some(OPENED));
    assert_eq!(cb.stats().slow_call_count, 1);
    let probe = cb.try_acquire(t(13)).expect("probe");
    assert_eq!(
        cb.on_success(probe, t(16)).map(|tr| tr.to),
        Some(CircuitState::Open)
    );
}

/// Resilience4j's case: five calls, three of them slower than `slow_call_duration`, one of
/// those three a failure. 3 of 5 are slow (60 %): the breaker opens; the slow failure counts as
/// a failure and as slow, in the window and in the stats.
#[test]
fn a_slow_failure_counts_as_a_failure_and_as_slow() {
    let config = CircuitBreakerConfig {
        failure_rate_threshold: Some(0.5),
        slow_call_duration: Some(Duration::from_secs(2)),
        slow_call_rate_threshold: 0.6,
        minimum_calls: 5,
        ..config()
    };
    let mut cb = CircuitBreaker::with_window(config, CountWindow::<5>::new());
    assert_eq!(succeed(&mut cb, t(0)), None);
    assert_eq!(fail(&mut cb, t(0)), None);
    for _ in 0..2 {
        let slow = cb.try_acquire(t(0)).expect("closed");
        assert_eq!(cb.on_success(slow, t(3)), None);
    }
    assert_eq!(
        cb.window_counts(),
        WindowCounts {
            calls: 4,
            failures: 1,
            slow: 2
        }
    );
    let slow_failure = cb.try_acquire(t(3)).expect("closed");
    // 2 failures of 5 (40 %) stay below 50 %; 3 slow calls of 5 reach 60 %.
    assert_eq!(
        cb.on_failure(slow_failure, ErrorKind::Transient, t(6)),
        Some(Transition {
            from: CircuitState::Closed,
            to: CircuitState::Open,
            trip: Some(Trip {
                reason: OpenReason::SlowCallRate,
                calls: 5,
                failures: 2,
                slow: 3,
                consecutive_failures: 1,
            }),
        })
    );
    let stats = cb.stats();
    assert_eq!(
        (
            stats.failure_count,
            stats.slow_call_count,
            stats.slow_success_count,
            stats.slow_failure_count
        ),
        (2, 3, 2, 1)
    );
}

/// Resilience4j's `transitionToStateAfterWaitDuration = CLOSED`: a half-open cycle whose probe
/// never reports closes at `max_wait_in_half_open` instead of opening again.
#[test]
fn a_half_open_cycle_past_max_wait_can_close() {
    let mut cb = CircuitBreaker::new(CircuitBreakerConfig {
        failure_threshold: 1,
        after_max_wait_in_half_open: AfterMaxWait::Closed,
        ..config()
    });
    assert_eq!(edge(fail(&mut cb, t(0))), Some(OPENED));
    let lost = cb.try_acquire(t(10)).expect("probe");
    assert_eq!(cb.state(), CircuitState::HalfOpen);
    assert_eq!(cb.poll_at(), Some(t(30)));
    assert_eq!(cb.poll(t(29)), None);
    assert_eq!(
        cb.poll(t(30)),
        Some(Transition::new(
            CircuitState::HalfOpen,
            CircuitState::Closed
        ))
    );
    // The lost probe reports late: stale, no change; calls pass again.
    assert_eq!(cb.on_success(lost, t(31)), None);
    assert_eq!(succeed(&mut cb, t(31)), None);
    assert_eq!(cb.state(), CircuitState::Closed);
    // The default opens again.
    let mut cb = CircuitBreaker::new(CircuitBreakerConfig {
        failure_threshold: 1,
        ..config()
    });
    assert_eq!(edge(fail(&mut cb, t(0))), Some(OPENED));
    let _lost = cb.try_acquire(t(10)).expect("probe");
    assert_eq!(cb.poll(t(30)).map(|tr| tr.to), Some(CircuitState::Open));
}

/// A maintenance window: forced open for a while, then back to the mode it was in.
#[test]
fn a_timed_force_open_returns_to_the_previous_mode() {
    let mut cb = CircuitBreaker::new(config());
    assert_eq!(fail(&mut cb, t(0)), None);
    assert_eq!(
        cb.force_open_for(Duration::from_secs(5), t(1))
            .map(|tr| tr.to),
        Some(CircuitState::ForcedOpen)
    );
    assert_eq!(cb.poll_at(), Some(t(6)));
    let rejected = cb.try_acquire(t(5)).expect_err("forced");
    assert_eq!(
        (rejected.state, rejected.retry_at),
        (CircuitState::ForcedOpen, Some(t(6)))
    );
    // At the end it closes with a fresh window and admits calls again.
    let permit = cb.try_acquire(t(6)).expect("closed again");
    assert_eq!(
        permit.transition(),
        Some(Transition::new(
            CircuitState::ForcedOpen,
            CircuitState::Closed
        ))
    );
    assert_eq!(cb.stats().consecutive_failures, 0);
    assert_eq!(cb.on_success(permit, t(6)), None);
    // A disabled breaker goes back to disabled.
    assert!(cb.disable().is_some());
    assert!(cb.force_open_until(t(20)).is_some());
    assert_eq!(cb.poll(t(19)), None);
    assert_eq!(cb.poll(t(20)).map(|tr| tr.to), Some(CircuitState::Disabled));
    // Without an end, only reset ends it.
    assert!(cb.force_open().is_some());
    assert_eq!(cb.poll_at(), None);
    assert_eq!(cb.poll(Instant::MAX), None);
    assert_eq!(cb.reset().map(|tr| tr.to), Some(CircuitState::Closed));
}

#[test]
fn operator_controls_hold_and_release() {
    let mut cb = CircuitBreaker::new(config());
    assert_eq!(
        cb.force_open().map(|tr| tr.to),
        Some(CircuitState::ForcedOpen)
    );
    assert_eq!(
        cb.try_acquire(t(1_000)).expect_err("forced").state,
        CircuitState::ForcedOpen
    );
    assert_eq!(cb.poll_at(), None);
    assert_eq!(cb.disable().map(|tr| tr.to), Some(CircuitState::Disabled));
    for _ in 0..10 {
        fail(&mut cb, t(0));
    }
    assert_eq!(cb.state(), CircuitState::Disabled);
    assert_eq!(cb.reset().map(|tr| tr.to), Some(CircuitState::Closed));
    assert_eq!(cb.stats().failure_count, 10);
    assert_eq!(cb.stats().transitions, 3);
}

#[test]
fn invalid_configs_are_typed_errors() {
    let bad = |c: CircuitBreakerConfig| CircuitBreaker::try_new(c).expect_err("invalid");
    assert_eq!(
        bad(CircuitBreakerConfig {
            failure_threshold: 0,
            ..config()
        }),
        ConfigError::Zero(ConfigField::FailureThreshold)
    );
    assert_eq!(
        bad(CircuitBreakerConfig {
            success_threshold: 0,
            ..config()
        }),
        ConfigError::Zero(ConfigField::SuccessThreshold)
    );
    assert_eq!(
        bad(CircuitBreakerConfig {
            half_open_max_calls: 0,
            ..config()
        }),
        ConfigError::Zero(ConfigField::HalfOpenMaxCalls)
    );
    assert_eq!(
        bad(CircuitBreakerConfig {
            half_open_max_calls: 70_000,
            ..config()
        }),
        ConfigError::TooLarge {
            field: ConfigField::HalfOpenMaxCalls,
            max: 65_535
        }
    );
    assert_eq!(
        bad(CircuitBreakerConfig {
            timeout: Duration::ZERO,
            ..config()
        }),
        ConfigError::Zero(ConfigField::OpenTimeout)
    );
    let backoff = |multiplier, max| Some(OpenBackoff { multiplier, max });
    assert_eq!(
        bad(CircuitBreakerConfig {
            open_backoff: backoff(f32::NAN, Duration::MAX),
            ..config()
        }),
        ConfigError::NotFinite(ConfigField::OpenBackoffMultiplier)
    );
    assert_eq!(
        bad(CircuitBreakerConfig {
            open_backoff: backoff(0.5, Duration::MAX),
            ..config()
        }),
        ConfigError::MultiplierBelowOne(ConfigField::OpenBackoffMultiplier)
    );
    assert_eq!(
        bad(CircuitBreakerConfig {
            open_backoff: backoff(2.0, Duration::from_secs(1)),
            ..config()
        }),
        ConfigError::Exceeds {
            field: ConfigField::OpenTimeout,
            limit: ConfigField::OpenBackoffMax
        }
    );
    let rate = CircuitBreakerConfig {
        failure_rate_threshold: Some(0.5),
        minimum_calls: 16,
        ..config()
    };
    assert_eq!(
        bad(rate),
        ConfigError::WindowTooSmall {
            needed: 16,
            capacity: 0
        }
    );
    assert_eq!(
        CircuitBreaker::try_with_window(rate, CountWindow::<8>::new()).expect_err("small"),
        ConfigError::WindowTooSmall {
            needed: 16,
            capacity: 8
        }
    );
    for threshold in [0.0, 1.5, f32::NAN] {
        let c = CircuitBreakerConfig {
            failure_rate_threshold: Some(threshold),
            minimum_calls: 1,
            ..config()
        };
        assert!(CircuitBreaker::try_with_window(c, CountWindow::<8>::new()).is_err());
    }
}

#[test]
#[should_panic(expected = "circuit_breaker.failure_threshold must be greater than zero")]
fn new_panics_with_the_error_message() {
    let _ = CircuitBreaker::new(CircuitBreakerConfig {
        failure_threshold: 0,
        ..config()
    });
}

#[test]
fn a_consecutive_breaker_with_a_borrowed_config_fits_in_104_bytes() {
    static CONFIG: CircuitBreakerConfig = CircuitBreakerConfig {
        ignored_errors: crate::error::ErrorKindSet::EMPTY,
        ..CircuitBreakerConfig::DEFAULT
    };
    let cb = CircuitBreaker::new(&CONFIG);
    assert!(
        core::mem::size_of_val(&cb) <= 104,
        "{} bytes",
        core::mem::size_of_val(&cb)
    );
}

#[test]
fn time_going_backwards_neither_panics_nor_reopens() {
    let mut cb = CircuitBreaker::new(config());
    for _ in 0..3 {
        fail(&mut cb, t(100));
    }
    assert!(cb.try_acquire(t(50)).is_err());
    assert_eq!(cb.state(), CircuitState::Open);
    let probe = cb.try_acquire(Instant::MAX).expect("probe");
    assert_eq!(cb.on_success(probe, t(0)), None);
    assert_eq!(cb.poll_at(), Some(Instant::MAX));
}

/// A deadline that saturated at `Instant::MAX` means "never": a clock that reaches its last
/// value neither ends the half-open cycle (so a good probe closes the breaker) nor the open time.
#[test]
fn saturated_deadlines_are_never_reached_at_the_last_instant() {
    let config = CircuitBreakerConfig {
        success_threshold: 1,
        ..config()
    };
    let near_end = Instant::MAX - Duration::from_secs(15);
    let mut cb = CircuitBreaker::new(config);
    for _ in 0..3 {
        fail(&mut cb, near_end);
    }
    // Open until MAX - 5 s (not saturated): the probe starts a cycle whose end saturates.
    let half_open_at = Instant::MAX - Duration::from_secs(5);
    assert_eq!(cb.poll_at(), Some(half_open_at));
    let probe = cb.try_acquire(half_open_at).expect("probe");
    assert_eq!(cb.state(), CircuitState::HalfOpen);
    assert_eq!(cb.poll_at(), Some(Instant::MAX));
    assert_eq!(cb.poll(Instant::MAX), None);
    assert_eq!(cb.state(), CircuitState::HalfOpen);
    assert_eq!(
        cb.on_success(probe, Instant::MAX),
        Some(Transition::new(
            CircuitState::HalfOpen,
            CircuitState::Closed
        ))
    );
    // Tripped at the end of the clock: open for good, even at `Instant::MAX`.
    for _ in 0..3 {
        fail(&mut cb, Instant::MAX);
    }
    assert_eq!(cb.state(), CircuitState::Open);
    assert_eq!(cb.poll(Instant::MAX), None);
    let rejected = cb.try_acquire(Instant::MAX).expect_err("open for good");
    assert_eq!(rejected.retry_at, Some(Instant::MAX));
    assert_eq!(cb.state(), CircuitState::Open);
    // One microsecond before a deadline that did not saturate still counts as before it.
    let mut cb = CircuitBreaker::new(config);
    let open_at = Instant::MAX - Duration::from_secs(10) - Duration::from_micros(1);
    for _ in 0..3 {
        fail(&mut cb, open_at);
    }
    let last_but_one = Instant::MAX - Duration::from_micros(1);
    assert_eq!(cb.poll_at(), Some(last_but_one));
    assert_eq!(cb.poll(last_but_one - Duration::from_micros(1)), None);
    assert!(cb.poll(last_but_one).is_some());
    assert_eq!(cb.state(), CircuitState::HalfOpen);
}

#[cfg(feature = "serde")]
#[test]
fn config_state_and_stats_round_trip_through_postcard() {
    let config = CircuitBreakerConfig {
        failure_rate_threshold: Some(0.25),
        slow_call_duration: Some(Duration::from_millis(1_500)),
        open_backoff: Some(OpenBackoff {
            multiplier: 1.5,
            max: Duration::from_secs(300),
        }),
        ..config()
    };
    let mut buf = [0u8; 128];
    let bytes = postcard::to_slice(&config, &mut buf).expect("fits");
    assert_eq!(
        postcard::from_bytes::<CircuitBreakerConfig>(bytes).expect("decodes"),
        config
    );
    let mut cb = CircuitBreaker::new(self::config());
    fail(&mut cb, t(0));
    let stats = cb.stats();
    let bytes = postcard::to_slice(&stats, &mut buf).expect("fits");
    assert_eq!(
        postcard::from_bytes::<CircuitBreakerStats>(bytes).expect("decodes"),
        stats
    );
    let json = serde_json::to_string(&CircuitState::HalfOpen).expect("json");
    assert_eq!(json, "\"HalfOpen\"");
}

fn rate_breaker() -> CircuitBreaker<CircuitBreakerConfig, CountWindow<8>> {
    let config = CircuitBreakerConfig {
        failure_rate_threshold: Some(0.5),
        minimum_calls: 4,
        ..config()
    };
    CircuitBreaker::with_window(config, CountWindow::<8>::new())
}

#[test]
fn the_figures_that_opened_the_breaker_stay_in_the_stats_until_it_closes() {
    let mut cb = rate_breaker();
    assert_eq!(cb.stats().trip, None);
    fail(&mut cb, t(0));
    succeed(&mut cb, t(0));
    fail(&mut cb, t(0));
    fail(&mut cb, t(0));
    let opened = Trip {
        reason: OpenReason::FailureRate,
        calls: 4,
        failures: 3,
        slow: 0,
        consecutive_failures: 2,
    };
    assert_eq!(cb.state(), CircuitState::Open);
    assert_eq!(cb.stats().trip, Some(opened));
    // 3/4 and 0/4 are exact in binary.
    assert_eq!(opened.failure_rate().to_bits(), 0.75f64.to_bits());
    assert_eq!(opened.slow_call_rate().to_bits(), 0.0f64.to_bits());
    assert_eq!(
        opened.to_string(),
        "failure_rate: 4 calls, 3 failed, 0 slow"
    );
    // The window itself starts over; the figures do not.
    assert_eq!(cb.window_counts(), WindowCounts::default());
    // Half-open, the trip that opened it is still why it is not closed.
    let probe = cb.try_acquire(t(10)).expect("probe");
    assert_eq!(cb.state(), CircuitState::HalfOpen);
    assert_eq!(cb.stats().trip, Some(opened));
    assert_eq!(cb.on_success(probe, t(10)), None);
    let closed = succeed(&mut cb, t(10));
    assert_eq!(
        closed,
        Some(Transition::new(
            CircuitState::HalfOpen,
            CircuitState::Closed
        ))
    );
    assert_eq!(cb.stats().trip, None);
}

#[test]
fn consecutive_and_forced_trips_say_so() {
    let mut cb = CircuitBreaker::new(config());
    for _ in 0..3 {
        fail(&mut cb, t(0));
    }
    let trip = cb.stats().trip.expect("open");
    assert_eq!(trip.reason, OpenReason::ConsecutiveFailures);
    assert_eq!(trip.consecutive_failures, 3);
    assert_eq!(trip.to_string(), "3 consecutive failures");
    cb.reset();
    fail(&mut cb, t(1));
    let forced = cb.force_open_for(Duration::from_secs(5), t(1));
    assert_eq!(
        forced,
        Some(Transition {
            from: CircuitState::Closed,
            to: CircuitState::ForcedOpen,
            trip: Some(Trip {
                reason: OpenReason::Forced,
                calls: 0,
                failures: 0,
                slow: 0,
                consecutive_failures: 1,
            }),
        })
    );
    assert_eq!(
        forced.map(|t| t.to_string()).as_deref(),
        Some("Closed -> ForcedOpen (forced open)")
    );
    // Forcing again moves the end and changes nothing else.
    assert_eq!(cb.force_open_for(Duration::from_secs(9), t(2)), None);
    assert_eq!(cb.poll(t(11)).map(|t| t.to), Some(CircuitState::Closed));
    assert_eq!(cb.stats().trip, None);
}

#[test]
fn metrics_only_never_rejects_and_reports_each_time_it_would_open() {
    let mut cb = rate_breaker();
    let entered = cb.metrics_only();
    assert_eq!(
        entered,
        Some(Transition::new(
            CircuitState::Closed,
            CircuitState::MetricsOnly
        ))
    );
    assert_eq!(cb.metrics_only(), None);
    fail(&mut cb, t(0));
    succeed(&mut cb, t(0));
    fail(&mut cb, t(0));
    let report = fail(&mut cb, t(0)).expect("would open");
    assert!(report.would_open());
    assert_eq!(
        report.to_string(),
        "MetricsOnly (would open) (failure_rate: 4 calls, 3 failed, 0 slow)"
    );
    assert_eq!(cb.state(), CircuitState::MetricsOnly);
    let stats = cb.stats();
    assert_eq!(stats.would_open_count, 1);
    assert_eq!(stats.trip, report.trip);
    // No cycle started: permits issued before the report still count.
    assert_eq!(stats.transitions, 1);
    // It keeps admitting and evaluating a fresh window: 4 more failures, one more report.
    for k in 0..20 {
        let permit = cb.try_acquire(t(1)).expect("never rejects");
        let got = cb.on_failure(permit, ErrorKind::Transient, t(1));
        assert_eq!(got.is_some(), k % 4 == 3, "call {k}");
    }
    assert_eq!(cb.stats().would_open_count, 6);
    assert_eq!(cb.stats().rejected_count, 0);
    // Not every outcome reports: successes keep it quiet.
    for _ in 0..8 {
        assert_eq!(succeed(&mut cb, t(2)), None);
    }
    // Reset makes it a real breaker again, which opens on the same figures.
    assert_eq!(
        cb.reset(),
        Some(Transition::new(
            CircuitState::MetricsOnly,
            CircuitState::Closed
        ))
    );
    assert_eq!(cb.stats().trip, None);
    for _ in 0..4 {
        fail(&mut cb, t(3));
    }
    assert_eq!(cb.state(), CircuitState::Open);
    assert!(cb.try_acquire(t(3)).is_err());
}

#[test]
fn metrics_only_in_the_consecutive_mode_and_a_timed_force_open_return_to_it() {
    let mut cb = CircuitBreaker::new(config());
    fail(&mut cb, t(0));
    cb.metrics_only();
    // The streak starts over in the new mode.
    assert_eq!(fail(&mut cb, t(0)), None);
    assert_eq!(fail(&mut cb, t(0)), None);
    let report = fail(&mut cb, t(0)).expect("would open");
    assert_eq!(
        report
            .trip
            .map(|trip| (trip.reason, trip.consecutive_failures)),
        Some((OpenReason::ConsecutiveFailures, 3))
    );
    // A maintenance window over a shadow breaker rejects, then gives the shadow mode back.
    cb.force_open_for(Duration::from_secs(5), t(1));
    assert!(cb.try_acquire(t(2)).is_err());
    let back = cb.try_acquire(t(6)).expect("metrics-only again");
    assert_eq!(
        back.transition(),
        Some(Transition::new(
            CircuitState::ForcedOpen,
            CircuitState::MetricsOnly
        ))
    );
    assert_eq!(cb.on_success(back, t(6)), None);
    assert_eq!(cb.stats().would_open_count, 1);
}

/// Built by the compiler: `try_const` and `try_const_ref` run in `const`.
const CONST_BUILT: Result<CircuitBreaker<CircuitBreakerConfig, CountWindow<4>>, ConfigError> =
    CircuitBreaker::try_const(
        CircuitBreakerConfig {
            failure_rate_threshold: Some(0.5),
            minimum_calls: 4,
            ..CircuitBreakerConfig::DEFAULT
        },
        CountWindow::new(),
    );
static SHARED: CircuitBreakerConfig = CircuitBreakerConfig::DEFAULT;

#[test]
fn const_constructors_check_as_try_with_window_does() {
    let mut cb = CONST_BUILT.expect("valid");
    let now = Instant::from_secs(1);
    for ok in [true, false, true, false] {
        let permit = cb.try_acquire(now).expect("closed");
        if ok {
            cb.on_success(permit, now);
        } else {
            cb.on_failure(permit, ErrorKind::Transient, now);
        }
    }
    assert_eq!(cb.state(), CircuitState::Open);
    let shared = CircuitBreaker::try_const_ref(&SHARED, NoWindow).expect("valid");
    assert_eq!(shared.state(), CircuitState::Closed);
    // The same verdicts as the run-time constructor, for every refusal a window by count has.
    for config in [
        CircuitBreakerConfig {
            failure_threshold: 0,
            ..CircuitBreakerConfig::DEFAULT
        },
        CircuitBreakerConfig {
            window_duration: Some(Duration::from_secs(10)),
            ..CircuitBreakerConfig::DEFAULT
        },
        CircuitBreakerConfig {
            failure_rate_threshold: Some(0.5),
            minimum_calls: 5,
            ..CircuitBreakerConfig::DEFAULT
        },
    ] {
        let expected = CircuitBreaker::try_with_window(config, CountWindow::<4>::new()).err();
        assert!(expected.is_some(), "{config:?}");
        assert_eq!(
            CircuitBreaker::try_const(config, CountWindow::<4>::new()).err(),
            expected
        );
    }
    assert_eq!(
        CircuitBreaker::try_const(
            CircuitBreakerConfig {
                window_duration: Some(Duration::from_secs(10)),
                ..CircuitBreakerConfig::DEFAULT
            },
            NoWindow
        )
        .err(),
        Some(ConfigError::NotApplicable(ConfigField::WindowDuration))
    );
}

/// Reads of a window by time see it as of the time handed in: 60 s after three failures in a
/// 10 s window, `poll` and `window_counts_at` see none of them; a forced opening records the
/// window as of its `now`.
#[test]
fn a_window_by_time_reads_as_of_now() {
    let config = CircuitBreakerConfig {
        failure_rate_threshold: Some(0.5),
        minimum_calls: 20,
        window_duration: Some(Duration::from_secs(10)),
        ..CircuitBreakerConfig::default()
    };
    let fresh = || {
        let mut cb = CircuitBreaker::with_window(config, TimeWindow::<10>::new());
        for _ in 0..3 {
            fail(&mut cb, t(1));
        }
        cb
    };
    let mut cb = fresh();
    assert_eq!(cb.window_counts().failures, 3);
    assert_eq!(cb.window_counts_at(t(5)).failures, 3, "still in the window");
    assert_eq!(cb.window_counts_at(t(61)).calls, 0, "read as of now");
    assert_eq!(cb.window_counts().calls, 3, "a read changes nothing");
    // Neither a closed breaker's acquire nor a poll has an outcome to record: the window
    // moves with the next one, and reads as of a time are always right.
    assert_eq!(cb.try_acquire(t(61)).map(|_| ()), Ok(()));
    assert_eq!(cb.poll(t(61)), None);
    assert_eq!(cb.window_counts_at(t(61)).calls, 0);

    let mut forced = fresh();
    let _ = forced.force_open_for(Duration::from_secs(30), t(61));
    let trip = forced.stats().trip.expect("a trip");
    assert_eq!(
        (trip.calls, trip.failures),
        (0, 0),
        "the window as of the forcing"
    );
}

/// `window_duration` means a window by time for a rate; without one it is refused, not
/// silently the consecutive rule.
#[test]
fn a_window_duration_without_a_rate_is_refused() {
    let config = CircuitBreakerConfig {
        window_duration: Some(Duration::from_secs(10)),
        ..CircuitBreakerConfig::default()
    };
    assert_eq!(
        config.validate(),
        Err(ConfigError::NotApplicable(ConfigField::WindowDuration))
    );
}

/// A rate-mode breaker that decides its half-open cycles by rate over `permitted` probes, at
/// most `at_once` at a time, at a failure threshold of 0.5; open for 10 s.
fn by_rate(permitted: u32, at_once: u32) -> CircuitBreaker<CircuitBreakerConfig, CountWindow<8>> {
    CircuitBreaker::with_window(
        CircuitBreakerConfig {
            failure_rate_threshold: Some(0.5),
            minimum_calls: 4,
            half_open_max_calls: at_once,
            half_open_permitted_calls: Some(permitted),
            ..config()
        },
        CountWindow::new(),
    )
}

/// Opens `cb` at 1 s (four failures) and lets the open time end at 11 s.
fn to_half_open<W: SlidingWindow>(cb: &mut CircuitBreaker<CircuitBreakerConfig, W>) {
    for _ in 0..4 {
        fail(cb, t(1));
    }
    assert_eq!(cb.state(), CircuitState::Open);
    assert_eq!(
        edge(cb.poll(t(11))),
        Some((CircuitState::Open, CircuitState::HalfOpen))
    );
}

#[test]
fn a_flaky_dependency_closes_in_one_cycle_by_rate() {
    // 3 of 10 probes fail (30 %): probe by probe the first failure would reopen; by rate at 0.5
    // the cycle closes.
    let mut cb = by_rate(10, 10);
    to_half_open(&mut cb);
    let permits: std::vec::Vec<Permit> = (0..10)
        .map(|_| cb.try_acquire(t(12)).expect("ten probes"))
        .collect();
    assert_eq!(
        cb.try_acquire(t(12)).expect_err("the eleventh").state,
        CircuitState::HalfOpen
    );
    let mut transitions = std::vec::Vec::new();
    for (i, permit) in permits.into_iter().enumerate() {
        let transition = if i % 3 == 0 && i < 9 {
            cb.on_failure(permit, ErrorKind::Transient, t(13))
        } else {
            cb.on_success(permit, t(13))
        };
        transitions.push(edge(transition));
    }
    // Failures at 0, 3 and 6. After the 8th report 2 probes are left, and 5 failures of 10
    // would reach 0.5: undecided. After the 9th, at most 4 of 10: closed. The 10th is stale.
    let closed_at = transitions
        .iter()
        .position(|t| *t == Some((CircuitState::HalfOpen, CircuitState::Closed)));
    assert_eq!(closed_at, Some(8), "{transitions:?}");
    assert_eq!(cb.state(), CircuitState::Closed);
}

#[test]
fn a_cycle_by_rate_opens_once_the_threshold_is_reached_whatever_the_rest_do() {
    let mut cb = by_rate(4, 4);
    to_half_open(&mut cb);
    let permits: std::vec::Vec<Permit> = (0..4)
        .map(|_| cb.try_acquire(t(12)).expect("admitted"))
        .collect();
    let mut permits = permits.into_iter();
    assert_eq!(
        cb.on_success(permits.next().expect("a permit"), t(12)),
        None
    );
    assert_eq!(
        cb.on_failure(
            permits.next().expect("a permit"),
            ErrorKind::Transient,
            t(12)
        ),
        None
    );
    // 2 of 4 failed: the rate over the 4 is at least 0.5 already.
    let reopened = cb.on_failure(
        permits.next().expect("a permit"),
        ErrorKind::Transient,
        t(12),
    );
    assert_eq!(edge(reopened), Some(REOPENED));
    let trip = reopened.and_then(|t| t.trip).expect("a trip");
    assert_eq!(trip.reason, OpenReason::ProbeFailed);
    assert_eq!((trip.calls, trip.failures, trip.slow), (3, 2, 0));
    // The last probe is from the ended cycle: it changes nothing.
    assert_eq!(
        cb.on_success(permits.next().expect("a permit"), t(12)),
        None
    );
    assert_eq!(cb.state(), CircuitState::Open);
}

#[test]
fn a_cycle_by_rate_admits_its_probes_one_at_a_time_and_a_cancel_gives_one_back() {
    let mut cb = by_rate(2, 1);
    to_half_open(&mut cb);
    let first = cb.try_acquire(t(12)).expect("admitted");
    assert!(cb.try_acquire(t(12)).is_err(), "one at a time");
    assert_eq!(cb.on_cancelled(first, t(12)), None);
    // The cancelled probe counted nothing and gave its admission back: two more are admitted.
    // One good of 2 leaves one that could fail (1 of 2 reaches 0.5): undecided.
    assert_eq!(succeed(&mut cb, t(12)), None);
    assert_eq!(cb.state(), CircuitState::HalfOpen);
    let last = cb.try_acquire(t(12)).expect("the second of two");
    assert!(cb.try_acquire(t(12)).is_err(), "two per cycle");
    assert_eq!(
        edge(cb.on_success(last, t(12))),
        Some((CircuitState::HalfOpen, CircuitState::Closed))
    );
}

#[test]
fn a_cycle_by_rate_counts_slow_probes_against_the_slow_threshold() {
    let mut cb = CircuitBreaker::with_window(
        CircuitBreakerConfig {
            failure_rate_threshold: Some(1.0),
            slow_call_duration: Some(Duration::from_secs(1)),
            slow_call_rate_threshold: 0.5,
            minimum_calls: 4,
            half_open_max_calls: 2,
            half_open_permitted_calls: Some(2),
            ..config()
        },
        CountWindow::<8>::new(),
    );
    to_half_open(&mut cb);
    let slow = cb.try_acquire(t(12)).expect("admitted");
    let quick = cb.try_acquire(t(14)).expect("admitted");
    assert_eq!(cb.on_success(quick, t(14)), None);
    // One slow success of two: the slow rate 0.5 reaches its threshold.
    let reopened = cb.on_success(slow, t(14));
    assert_eq!(edge(reopened), Some(REOPENED));
    let trip = reopened.and_then(|t| t.trip).expect("a trip");
    assert_eq!((trip.calls, trip.failures, trip.slow), (2, 0, 1));
}

#[test]
fn half_open_permitted_calls_is_checked() {
    let base = CircuitBreakerConfig {
        failure_rate_threshold: Some(0.5),
        minimum_calls: 4,
        ..config()
    };
    let check = |permitted, rate: Option<f32>| {
        CircuitBreakerConfig {
            half_open_permitted_calls: Some(permitted),
            failure_rate_threshold: rate,
            ..base
        }
        .validate_for_window(8)
    };
    assert_eq!(check(10, Some(0.5)), Ok(()));
    assert_eq!(check(255, Some(0.5)), Ok(()));
    assert_eq!(
        check(0, Some(0.5)),
        Err(ConfigError::Zero(ConfigField::HalfOpenPermittedCalls))
    );
    let too_many = check(256, Some(0.5)).expect_err("refused");
    assert_eq!(
        too_many.to_string(),
        "circuit_breaker.half_open_permitted_calls must be at most 255"
    );
    let alone = check(10, None).expect_err("refused");
    assert_eq!(
        alone.to_string(),
        "circuit_breaker.half_open_permitted_calls is set, so \
         circuit_breaker.failure_rate_threshold must be set too"
    );
}
