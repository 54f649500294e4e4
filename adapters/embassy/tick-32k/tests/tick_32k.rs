//! The embassy adapter on a 32.768 kHz clock (one tick is 30.517578125 us, not a whole number of
//! the core's microseconds): deadlines stay on their tick however often they are wrapped again,
//! and no timer fires before its time.

#![allow(clippy::indexing_slicing, reason = "tests index what they just built")]

use core::cell::RefCell;
use core::future::{Future, pending};
use core::pin::pin;
use core::task::{Context, Poll, Waker};
use core::time::Duration;
use std::sync::{Mutex, MutexGuard};
use std::vec::Vec;

use embassy_time::{Instant, TICK_HZ};
use rustkernel_core::error::{ErrorKind, ErrorKindSet};
use rustkernel_core::resilience::{BackoffStrategy, RetryConfig, TimeoutConfig};
use rustkernel_core::time::Instant as CoreInstant;
use rustkernel_embassy::ResilienceError;
use rustkernel_embassy::deadline::{DeadlineContext, execute_with_config, execute_with_timeout};
use rustkernel_embassy::retry::Retrier;
use rustkernel_embassy::time::{now, to_core_instant};
use rustkernel_embassy_tick_32k::{advance, reset};

static SERIAL: Mutex<()> = Mutex::new(());

/// Takes the mock clock for one test and puts it at tick `tick`.
fn clock_at(tick: u64) -> MutexGuard<'static, ()> {
    let guard = SERIAL
        .lock()
        .unwrap_or_else(|poisoned| poisoned.into_inner());
    reset();
    advance(tick);
    guard
}

fn ticks_now() -> u64 {
    Instant::now().as_ticks()
}

/// Whether `ticks` ticks last at least `duration`.
fn covers(ticks: u64, duration: Duration) -> bool {
    u128::from(ticks) * 1_000_000_000 >= duration.as_nanos() * u128::from(TICK_HZ)
}

/// Runs `fut` to completion, moving the clock one tick whenever it waits.
#[allow(clippy::panic, reason = "a test that never finishes fails")]
fn run<F: Future>(fut: F) -> F::Output {
    let mut cx = Context::from_waker(Waker::noop());
    let mut fut = pin!(fut);
    for _ in 0..1_000_000 {
        if let Poll::Ready(output) = fut.as_mut().poll(&mut cx) {
            return output;
        }
        advance(1);
    }
    panic!("the future did not finish within a million ticks")
}

/// Never finishes: only a deadline ends it.
async fn hang() -> Result<u32, ErrorKind> {
    pending().await
}

#[test]
fn this_build_ticks_at_32_768_hz() {
    assert_eq!(TICK_HZ, rustkernel_embassy_tick_32k::TICK_HZ);
    assert_eq!(TICK_HZ, 32_768);
    // Tick 1 is 30.52 us: the core sees 31 (rounded up, so now + delay is never short).
    assert_eq!(
        to_core_instant(Instant::from_ticks(1)),
        CoreInstant::from_micros(31)
    );
}

#[test]
fn a_deadline_wrapped_again_stays_on_its_tick() {
    let _clock = clock_at(0);
    let first = DeadlineContext::at(Instant::from_ticks(1));
    let mut deadline = first;
    let mut ticks = Vec::new();
    for _ in 0..5 {
        deadline = DeadlineContext::at(deadline.deadline());
        ticks.push(deadline.deadline().as_ticks());
    }
    // Through microseconds, rounded up both ways, this was 2, 3, 4, 5, 6.
    assert_eq!(ticks, [1, 1, 1, 1, 1]);
    assert_eq!(deadline, first);
    // A child that asks for more than is left is its parent, to the tick.
    assert_eq!(first.child_with_timeout(Duration::from_secs(1)), first);
    // Across the wire (whole microseconds left, rounded down) and back: the same tick.
    for start in [0, 1, 7, 511, 512, 4_000] {
        reset();
        advance(start);
        for ahead in [1, 2, 3, 33, 1_000] {
            let deadline = DeadlineContext::at(Instant::from_ticks(start + ahead));
            let back = DeadlineContext::from_wire(deadline.to_wire());
            assert_eq!(back, deadline, "{ahead} ticks ahead of tick {start}");
        }
    }
}

#[test]
fn the_core_sees_a_deadline_reached_on_its_tick_and_not_before() {
    let _clock = clock_at(0);
    for due in [1, 2, 3, 32, 33, 512, 513, 10_000] {
        let deadline = DeadlineContext::at(Instant::from_ticks(due));
        reset();
        advance(due - 1);
        assert!(!deadline.is_expired(), "tick {due}");
        assert!(!deadline.as_core().is_expired(now()), "tick {due}, core");
        advance(1);
        assert!(deadline.is_expired(), "tick {due}");
        assert!(deadline.as_core().is_expired(now()), "tick {due}, core");
    }
}

#[test]
fn a_caller_deadline_cuts_the_call_on_its_tick_whichever_wrapper_runs_it() {
    for (start, due) in [(0, 1), (1, 2), (5, 38), (100, 613)] {
        let _clock = clock_at(start);
        let deadline = DeadlineContext::at(Instant::from_ticks(due));

        let result = run(deadline.execute(hang));
        assert_eq!(result, Err(ResilienceError::DeadlineExceeded));
        assert_eq!(ticks_now(), due, "execute, from tick {start}");

        reset();
        advance(start);
        let config = TimeoutConfig::default();
        let result = run(execute_with_config(
            &config,
            None,
            Some(deadline),
            Instant::now(),
            hang,
        ));
        assert_eq!(result, Err(ResilienceError::DeadlineExceeded));
        assert_eq!(ticks_now(), due, "execute_with_config, from tick {start}");

        reset();
        advance(start);
        let mut retrier = Retrier::new(RetryConfig::default(), 7).with_deadline(deadline);
        let result = run(retrier.execute(hang));
        assert_eq!(result, Err(ResilienceError::DeadlineExceeded));
        assert_eq!(ticks_now(), due, "a retrier's deadline, from tick {start}");
    }
}

#[test]
fn timeouts_never_fire_early_and_at_most_one_tick_late() {
    for start in [0, 1, 2, 31, 511, 512, 513] {
        let _clock = clock_at(start);
        for micros in (1..=2_000).chain([30_518, 976_563]) {
            let timeout = Duration::from_micros(micros);
            let due = DeadlineContext::new(timeout).deadline().as_ticks() - start;
            assert!(covers(due, timeout), "{micros} us from tick {start}: {due}");
            assert!(
                !covers(due - 1, timeout),
                "{micros} us from tick {start}: {due}"
            );
        }
        // The cases: 31 us is 2 ticks (61.04 us), 977 us 33 ticks (1007.08 us).
        assert_eq!(
            DeadlineContext::new(Duration::from_micros(31))
                .deadline()
                .as_ticks()
                - start,
            2
        );
        assert_eq!(
            DeadlineContext::new(Duration::from_micros(977))
                .deadline()
                .as_ticks()
                - start,
            33
        );
        // A call's own timeout cuts it then, not a tick before.
        let result = run(execute_with_timeout(Duration::from_micros(31), hang));
        assert_eq!(result, Err(ResilienceError::Timeout));
        assert_eq!(ticks_now() - start, 2, "from tick {start}");
    }
}

#[test]
fn retry_delays_from_the_core_are_never_short() {
    for start in [0, 1, 2, 3] {
        let _clock = clock_at(start);
        let config = RetryConfig {
            max_attempts: 4,
            backoff: BackoffStrategy::Fixed {
                delay: Duration::from_micros(31),
            },
            retryable_errors: ErrorKindSet::of(&[ErrorKind::Transient]),
        };
        let starts = RefCell::new(Vec::new());
        let mut retrier = Retrier::new(config, 1);
        let result = run(retrier.execute(|| {
            starts.borrow_mut().push(ticks_now());
            async { Err::<u32, _>(ErrorKind::Transient) }
        }));
        assert!(matches!(result, Err(ResilienceError::Operation(_))));
        let starts = starts.into_inner();
        assert_eq!(starts.len(), 4);
        for pair in starts.windows(2) {
            let waited = pair[1] - pair[0];
            assert!(
                covers(waited, Duration::from_micros(31)),
                "from tick {start}: {starts:?}"
            );
        }
    }
}
