//! The shared breaker against the core's exact state machine, on every sequential history.
//!
//! The adapter counts closed-state successes on the side (the threads' stripes) and hands them to
//! the core's window when a failure, a probe or a read of the stats takes the lock. Run one
//! operation at a time on tokio's paused clock, it must decide exactly as the core does when it
//! is given every outcome at once: the same transitions, rejections, stats, window counts and
//! timers, in every mode (consecutive, count window, time window, with and without slow calls).
// A test fails by panicking.
#![allow(clippy::panic)]

use std::time::Duration;

use proptest::prelude::*;
use rustkernel_core::resilience::CircuitBreaker as Core;
use rustkernel_core::resilience::Permit;
use rustkernel_tokio::clock;
use rustkernel_tokio::resilience::{
    CallPermit, CircuitBreaker, CircuitBreakerConfig, CountWindow, ErrorKind, NoWindow,
    SlidingWindow, TimeWindow,
};

#[derive(Clone, Copy, Debug)]
enum Op {
    /// Acquire, wait `took` µs, settle: 0 success, 1 failure, 2 ignored failure, 3 dropped.
    Call {
        took: u64,
        how: u8,
    },
    /// Acquire a permit and keep it (a slow call still running).
    Hold,
    /// Settle the oldest held permit: success or failure.
    SettleHeld(bool),
    Wait(u64),
    Poll,
    ForceOpen,
    ForceOpenFor(u64),
    Disable,
    MetricsOnly,
    Reset,
}

fn op() -> impl Strategy<Value = Op> {
    prop_oneof![
        14 => (
            prop_oneof![4 => Just(0u64), 1 => 0u64..40],
            prop_oneof![6 => Just(0u8), 3 => Just(1u8), 1 => Just(2u8), 1 => Just(3u8)],
        )
            .prop_map(|(took, how)| Op::Call { took, how }),
        1 => Just(Op::Hold),
        1 => any::<bool>().prop_map(Op::SettleHeld),
        3 => (0u64..400).prop_map(Op::Wait),
        1 => Just(Op::Poll),
        1 => Just(Op::ForceOpen),
        1 => (1u64..600).prop_map(Op::ForceOpenFor),
        1 => Just(Op::Disable),
        1 => Just(Op::MetricsOnly),
        1 => Just(Op::Reset),
    ]
}

fn check<W: SlidingWindow>(
    cb: &CircuitBreaker<W>,
    core: &Core<CircuitBreakerConfig, W>,
) -> Result<(), TestCaseError> {
    prop_assert_eq!(cb.state(), core.state());
    prop_assert_eq!(cb.stats(), core.stats());
    prop_assert_eq!(cb.window_counts(), core.window_counts_at(clock::now()));
    prop_assert_eq!(cb.poll_at().map(clock::to_core), core.poll_at());
    Ok(())
}

async fn lockstep<W: SlidingWindow + Clone>(
    config: CircuitBreakerConfig,
    window: W,
    ops: &[Op],
) -> Result<(), TestCaseError> {
    let cb = CircuitBreaker::builder(config)
        .window(window.clone())
        .build();
    let mut core = Core::with_window(config, window);
    let mut held: Vec<(CallPermit<'_, W>, Permit)> = Vec::new();
    for &op in ops {
        match op {
            Op::Call { took, how } => {
                let ours = cb.try_acquire();
                let theirs = core.try_acquire(clock::now());
                prop_assert_eq!(ours.as_ref().err(), theirs.as_ref().err());
                if let (Ok(ours), Ok(theirs)) = (ours, theirs) {
                    tokio::time::advance(Duration::from_micros(took)).await;
                    let now = clock::now();
                    match how {
                        0 => {
                            ours.success();
                            core.on_success(theirs, now);
                        }
                        1 => {
                            ours.failure(ErrorKind::Transient);
                            core.on_failure(theirs, ErrorKind::Transient, now);
                        }
                        2 => {
                            ours.failure(ErrorKind::InvalidInput);
                            core.on_failure(theirs, ErrorKind::InvalidInput, now);
                        }
                        _ => {
                            drop(ours);
                            core.on_cancelled(theirs, now);
                        }
                    }
                }
            }
            Op::Hold => {
                let ours = cb.try_acquire();
                let theirs = core.try_acquire(clock::now());
                prop_assert_eq!(ours.as_ref().err(), theirs.as_ref().err());
                if let (Ok(ours), Ok(theirs)) = (ours, theirs) {
                    held.push((ours, theirs));
                }
            }
            Op::SettleHeld(ok) => {
                if !held.is_empty() {
                    let (ours, theirs) = held.remove(0);
                    let now = clock::now();
                    if ok {
                        ours.success();
                        core.on_success(theirs, now);
                    } else {
                        ours.failure(ErrorKind::Unavailable);
                        core.on_failure(theirs, ErrorKind::Unavailable, now);
                    }
                }
            }
            Op::Wait(micros) => tokio::time::advance(Duration::from_micros(micros)).await,
            Op::Poll => {
                let now = clock::now();
                prop_assert_eq!(cb.poll(), core.poll(now));
            }
            Op::ForceOpen => prop_assert_eq!(cb.force_open(), core.force_open()),
            Op::ForceOpenFor(micros) => {
                let d = Duration::from_micros(micros);
                prop_assert_eq!(cb.force_open_for(d), core.force_open_for(d, clock::now()));
            }
            Op::Disable => prop_assert_eq!(cb.disable(), core.disable()),
            Op::MetricsOnly => prop_assert_eq!(cb.metrics_only(), core.metrics_only()),
            Op::Reset => prop_assert_eq!(cb.reset(), core.reset()),
        }
        check(&cb, &core)?;
    }
    // Drop what is still held. A permit admitted while closed or disabled is dropped without
    // the core (which would only apply due timers, as the next input does): the twin skips it.
    let now = clock::now();
    for (ours, theirs) in held {
        if ours.is_probe() {
            drop(ours);
            core.on_cancelled(theirs, now);
        }
    }
    check(&cb, &core)
}

fn run<W: SlidingWindow + Clone>(
    config: CircuitBreakerConfig,
    window: W,
    ops: &[Op],
) -> Result<(), TestCaseError> {
    let runtime = tokio::runtime::Builder::new_current_thread()
        .enable_time()
        .start_paused(true)
        .build()
        .map_err(|e| TestCaseError::fail(e.to_string()))?;
    runtime.block_on(lockstep(config, window, ops))
}

fn config() -> impl Strategy<Value = CircuitBreakerConfig> {
    (
        1u32..5,
        prop::option::of(prop::sample::select(vec![0.2f32, 0.5, 0.75, 1.0])),
        prop::option::of(5u64..30),
        prop::sample::select(vec![0.25f32, 0.5, 1.0]),
        1u32..8,
        1u32..3,
        1u32..3,
    )
        .prop_map(
            |(
                failure_threshold,
                rate,
                slow,
                slow_rate,
                minimum_calls,
                success_threshold,
                probes,
            )| {
                CircuitBreakerConfig {
                    failure_threshold,
                    success_threshold,
                    half_open_max_calls: probes,
                    timeout: Duration::from_micros(500),
                    max_wait_in_half_open: Duration::from_micros(900),
                    failure_rate_threshold: rate,
                    slow_call_duration: slow.map(Duration::from_micros),
                    slow_call_rate_threshold: slow_rate,
                    minimum_calls,
                    ..CircuitBreakerConfig::DEFAULT
                }
            },
        )
}

fn ops() -> impl Strategy<Value = Vec<Op>> {
    prop::collection::vec(op(), 1..120)
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(150))]

    #[test]
    fn the_consecutive_breaker_decides_as_the_core(config in config(), ops in ops()) {
        let config = CircuitBreakerConfig {
            failure_rate_threshold: None,
            slow_call_duration: None,
            ..config
        };
        run(config, NoWindow, &ops)?;
    }

    #[test]
    fn the_count_window_breaker_decides_as_the_core(config in config(), ops in ops()) {
        let config = CircuitBreakerConfig {
            failure_rate_threshold: config.failure_rate_threshold.or(Some(0.5)),
            ..config
        };
        run(config, CountWindow::<8>::new(), &ops)?;
    }

    #[test]
    fn a_breaker_deciding_half_open_by_rate_decides_as_the_core(
        config in config(),
        permitted in 1u32..6,
        ops in ops(),
    ) {
        let config = CircuitBreakerConfig {
            failure_rate_threshold: config.failure_rate_threshold.or(Some(0.5)),
            half_open_permitted_calls: Some(permitted),
            half_open_max_calls: permitted,
            ..config
        };
        run(config, CountWindow::<8>::new(), &ops)?;
    }

    #[test]
    fn the_slow_call_breaker_decides_as_the_core(config in config(), slow in 5u64..30, ops in ops()) {
        let config = CircuitBreakerConfig {
            failure_rate_threshold: None,
            slow_call_duration: Some(Duration::from_micros(slow)),
            ..config
        };
        run(config, CountWindow::<8>::new(), &ops)?;
    }

    #[test]
    fn the_time_window_breaker_decides_as_the_core(
        config in config(),
        length in 20u64..3_000,
        ops in ops(),
    ) {
        let config = CircuitBreakerConfig {
            failure_rate_threshold: config.failure_rate_threshold.or(Some(0.5)),
            window_duration: Some(Duration::from_micros(length)),
            ..config
        };
        run(config, TimeWindow::<4>::new(), &ops)?;
    }
}
