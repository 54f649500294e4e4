//! Retry on embassy-time's mock clock: delays advance the virtual clock, the last error returns.

#![allow(clippy::indexing_slicing, reason = "tests index what they just built")]

mod common;

use core::cell::RefCell;
use core::time::Duration as StdDuration;
use std::vec::Vec;

use common::{JobError, now_ms, panic_message, run_ms, serial};
use embassy_sync::blocking_mutex::raw::NoopRawMutex;
use embassy_time::{Duration, Timer};
use rustkernel_core::error::{ConfigError, ConfigField, ErrorKind, ErrorKindSet};
use rustkernel_core::resilience::{
    BackoffStrategy, ConstRetryConfig, GiveUpReason, Retry, RetryBudgetConfig, RetryConfig,
    RetryDecision,
};
use rustkernel_core::rng::Rng;
use rustkernel_core::time::Instant as CoreInstant;
use rustkernel_embassy::ResilienceError;
use rustkernel_embassy::deadline::DeadlineContext;
use rustkernel_embassy::retry::{Retrier, RetryEvent, SharedRetryBudget};

const TRANSIENT: ErrorKindSet = ErrorKindSet::of(&[ErrorKind::Transient, ErrorKind::Timeout]);

fn exponential(max_attempts: u32) -> RetryConfig {
    RetryConfig {
        max_attempts,
        backoff: BackoffStrategy::Exponential {
            initial: StdDuration::from_millis(100),
            max: StdDuration::from_secs(1),
            multiplier: 2.0,
        },
        retryable_errors: TRANSIENT,
    }
}

/// An operation that fails with `kinds[n]` on attempt `n` (then succeeds), recording when each
/// attempt started (virtual ms).
struct Script<'a> {
    kinds: &'a [ErrorKind],
    starts: RefCell<Vec<u64>>,
}

impl<'a> Script<'a> {
    fn new(kinds: &'a [ErrorKind]) -> Self {
        Self {
            kinds,
            starts: RefCell::new(Vec::new()),
        }
    }

    fn attempt(&self) -> impl Future<Output = Result<u32, JobError>> + use<'_> {
        let mut starts = self.starts.borrow_mut();
        starts.push(now_ms());
        let attempt = u32::try_from(starts.len()).expect("few attempts");
        let kind = self.kinds.get(starts.len() - 1).copied();
        async move {
            match kind {
                Some(kind) => Err(JobError { kind, attempt }),
                None => Ok(attempt),
            }
        }
    }

    fn starts(&self) -> Vec<u64> {
        self.starts.borrow().clone()
    }
}

#[test]
fn backoff_delays_advance_the_virtual_clock_and_the_last_error_returns() {
    let _clock = serial();
    let script = Script::new(&[
        ErrorKind::Transient,
        ErrorKind::Timeout,
        ErrorKind::Transient,
        ErrorKind::Transient,
    ]);
    let events = RefCell::new(Vec::new());
    let mut retrier = Retrier::new(exponential(4), 1);
    let result = run_ms(
        retrier.execute_observed(|| script.attempt(), |event| events.borrow_mut().push(event)),
    );
    // Four attempts: at 0, then 100, 200 and 400 ms apart; the fourth attempt's error returns.
    assert_eq!(script.starts(), vec![0, 100, 300, 700]);
    assert_eq!(
        result,
        Err(ResilienceError::Operation(JobError {
            kind: ErrorKind::Transient,
            attempt: 4
        }))
    );
    assert_eq!(now_ms(), 700);
    let events = events.into_inner();
    assert_eq!(events.len(), 4);
    assert_eq!(
        events[1],
        RetryEvent {
            attempt: 2,
            kind: ErrorKind::Timeout,
            decision: RetryDecision::RetryAt(CoreInstant::from_millis(300)),
        }
    );
    assert_eq!(
        events[3].decision,
        RetryDecision::GiveUp(GiveUpReason::AttemptsExhausted)
    );
}

#[test]
fn success_after_retries_returns_the_value() {
    let _clock = serial();
    let script = Script::new(&[ErrorKind::Transient, ErrorKind::Transient]);
    let mut retrier = Retrier::new(exponential(3), 1);
    assert_eq!(run_ms(retrier.execute(|| script.attempt())), Ok(3));
    assert_eq!(script.starts(), vec![0, 100, 300]);
}

/// Five attempts with full jitter from 100 ms up to 2 s, as a type.
struct Jittered;

impl ConstRetryConfig for Jittered {
    const CONFIG: RetryConfig = RetryConfig {
        max_attempts: 5,
        backoff: BackoffStrategy::ExponentialWithJitter {
            initial: StdDuration::from_millis(100),
            max: StdDuration::from_secs(2),
            multiplier: 2.0,
        },
        retryable_errors: TRANSIENT,
    };
}

#[test]
fn jittered_delays_match_the_core_state_machine() {
    let _clock = serial();
    let config = Jittered::CONFIG;
    let script = Script::new(&[ErrorKind::Transient; 5]);
    let events = RefCell::new(Vec::new());
    let mut retrier = Retrier::new(config, 99);
    let result = run_ms(async {
        retrier
            .execute_observed(|| script.attempt(), |event| events.borrow_mut().push(event))
            .await
    });
    assert!(matches!(
        result,
        Err(ResilienceError::Operation(JobError { attempt: 5, .. }))
    ));
    // The retrier seeds each call from its own stream: the first call uses the first draw.
    let mut expected = Retry::new(&config, Rng::new(99).next_u64(), CoreInstant::ZERO, None);
    let mut at = CoreInstant::ZERO;
    for event in events.into_inner() {
        let decision = expected.on_failure(ErrorKind::Transient, at, None, None);
        assert_eq!(event.decision, decision);
        if let RetryDecision::RetryAt(next) = decision {
            // The mock clock moves in 1 ms steps, so an attempt starts within 1 ms of its time.
            let started = script.starts()[usize::try_from(event.attempt).expect("small")];
            assert!(
                started * 1_000 >= next.as_micros() && started * 1_000 < next.as_micros() + 1_000
            );
            at = CoreInstant::from_millis(started);
        }
    }
}

#[test]
fn a_configuration_as_a_type_retries_as_the_same_one_held() {
    let _clock = serial();
    let mut runs = Vec::new();
    for typed in [false, true] {
        let script = Script::new(&[ErrorKind::Transient; 5]);
        let events = RefCell::new(Vec::new());
        let started = now_ms();
        let observe = |event| events.borrow_mut().push(event);
        let result = if typed {
            let mut retrier = Retrier::from_const::<Jittered>(99);
            assert_eq!(retrier.config(), &Jittered::CONFIG);
            run_ms(retrier.execute_observed(|| script.attempt(), observe))
        } else {
            let mut retrier = Retrier::new(Jittered::CONFIG, 99);
            run_ms(retrier.execute_observed(|| script.attempt(), observe))
        };
        assert!(matches!(
            result,
            Err(ResilienceError::Operation(JobError { attempt: 5, .. }))
        ));
        let offsets: Vec<u64> = script.starts().iter().map(|at| at - started).collect();
        let decisions: Vec<_> = events
            .into_inner()
            .iter()
            .map(|event| {
                (
                    event.attempt,
                    event.kind,
                    event.decision.retry_at().is_some(),
                )
            })
            .collect();
        runs.push((offsets, decisions));
    }
    // Same seed, same draws: the attempts start at the same offsets, jitter and all.
    assert_eq!(runs[0], runs[1]);
    assert_eq!(runs[0].0.len(), 5);
}

#[test]
fn a_permanent_error_is_not_retried() {
    let _clock = serial();
    let script = Script::new(&[ErrorKind::Permanent]);
    let mut retrier = Retrier::new(exponential(5), 1);
    let result = run_ms(retrier.execute(|| script.attempt()));
    assert_eq!(
        result,
        Err(ResilienceError::Operation(JobError {
            kind: ErrorKind::Permanent,
            attempt: 1
        }))
    );
    assert_eq!(script.starts(), vec![0]);
}

#[test]
fn the_deadline_stops_retries_and_cuts_a_hung_attempt() {
    let _clock = serial();
    // Retries at 100 and 300 ms fit a 500 ms deadline; the next one (at 700 ms) would not.
    let script = Script::new(&[ErrorKind::Transient; 5]);
    let mut retrier = Retrier::new(exponential(5), 1)
        .with_deadline(DeadlineContext::new(StdDuration::from_millis(500)));
    let events = RefCell::new(Vec::new());
    let result = run_ms(retrier.execute_observed(
        || script.attempt(),
        |event| events.borrow_mut().push(event.decision),
    ));
    assert_eq!(script.starts(), vec![0, 100, 300]);
    assert!(matches!(
        result,
        Err(ResilienceError::Operation(JobError { attempt: 3, .. }))
    ));
    assert_eq!(
        events.borrow().last(),
        Some(&RetryDecision::GiveUp(GiveUpReason::DeadlineExceeded))
    );
    // An attempt that hangs is cut when the deadline passes.
    let start = now_ms();
    let mut retrier = retrier.with_deadline(DeadlineContext::new(StdDuration::from_millis(250)));
    let result = run_ms(retrier.execute(|| async {
        Timer::after(Duration::from_secs(60)).await;
        Ok::<(), JobError>(())
    }));
    assert_eq!(result, Err(ResilienceError::DeadlineExceeded));
    assert_eq!(now_ms() - start, 250);
    // An expired deadline does not start the operation.
    let result = run_ms(retrier.execute(|| script.attempt()));
    assert_eq!(result, Err(ResilienceError::DeadlineExceeded));
    assert_eq!(script.starts().len(), 3);
}

#[test]
fn a_spent_budget_stops_retries() {
    let _clock = serial();
    let budget: SharedRetryBudget<NoopRawMutex> = SharedRetryBudget::new(RetryBudgetConfig {
        window: StdDuration::from_secs(10),
        min_retries_per_second: 0,
        retry_ratio: 0.5,
    });
    let mut retrier = Retrier::new(exponential(5), 1).with_budget(&budget);
    let decisions = RefCell::new(Vec::new());
    // Each call deposits half a retry: the first call gets none, the second gets one.
    let first = Script::new(&[ErrorKind::Transient; 5]);
    let _ = run_ms(retrier.execute_observed(
        || first.attempt(),
        |e| decisions.borrow_mut().push(e.decision),
    ));
    assert_eq!(first.starts().len(), 1);
    let second = Script::new(&[ErrorKind::Transient; 5]);
    let _ = run_ms(retrier.execute_observed(
        || second.attempt(),
        |e| decisions.borrow_mut().push(e.decision),
    ));
    assert_eq!(second.starts().len(), 2);
    let decisions = decisions.into_inner();
    assert_eq!(
        decisions[0],
        RetryDecision::GiveUp(GiveUpReason::BudgetExhausted)
    );
    assert_eq!(
        decisions.last(),
        Some(&RetryDecision::GiveUp(GiveUpReason::BudgetExhausted))
    );
    assert_eq!(budget.available(), 0);
}

#[test]
fn invalid_configurations_are_typed_errors() {
    let _clock = serial();
    assert_eq!(
        Retrier::try_new(
            RetryConfig {
                max_attempts: 0,
                ..exponential(1)
            },
            0
        )
        .err(),
        Some(ConfigError::Zero(ConfigField::MaxAttempts))
    );
    let invalid = RetryBudgetConfig {
        window: StdDuration::ZERO,
        min_retries_per_second: 100,
        retry_ratio: 1.0,
    };
    assert_eq!(
        SharedRetryBudget::<NoopRawMutex>::try_new(invalid).err(),
        Some(ConfigError::Zero(ConfigField::BudgetWindow))
    );
    // `new` is for `static`s, where an invalid configuration does not compile; at run time it
    // panics with a message that names the fix.
    let message = panic_message(|| SharedRetryBudget::<NoopRawMutex>::new(invalid));
    assert_eq!(
        message,
        "invalid retry budget configuration: retry_budget.window must be greater than zero"
    );
}
