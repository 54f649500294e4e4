//! Property tests of the breaker's windows and of deferred successes.
//!
//! 1. [`TimeWindow`] against a reference model that keeps every outcome with the number of the
//!    bucket it fell in (a `Vec`), and counts those of the last `B` buckets.
//! 2. A breaker by time against the same breaker fed one outcome at a time through a model of
//!    its rule (closed-state decisions only: the half-open and open logic is the same code as
//!    the count window's, covered by `circuit_breaker_props`).
//! 3. Deferred successes: a breaker that counts fast successes on the side whenever
//!    [`CircuitBreaker::successes_deferrable_until`] allows it, and hands them over with
//!    [`CircuitBreaker::record_successes`] before its next input, makes exactly the decisions
//!    (transitions, rejections, stats, window counts) of a breaker that gets every success
//!    through `on_success`, in every mode: consecutive, count window, time window, with and
//!    without slow calls.

use core::time::Duration;

use proptest::prelude::*;
use rustkernel_core::error::ErrorKind;
use rustkernel_core::resilience::circuit_breaker::{Outcome, SlidingWindow, WindowCounts};
use rustkernel_core::resilience::{
    CircuitBreaker, CircuitBreakerConfig, CircuitState, CountWindow, NoWindow, Permit, TimeWindow,
};
use rustkernel_core::time::Instant;

// ---------- 1. the time window against a model ----------

#[derive(Clone, Copy, Debug)]
enum WindowOp {
    Advance(u64),
    Back(u64),
    Record(bool, bool),
    Successes(u64),
    Clear,
}

fn window_op() -> impl Strategy<Value = WindowOp> {
    prop_oneof![
        4 => (0u64..3_000).prop_map(WindowOp::Advance),
        1 => (0u64..1_000_000).prop_map(WindowOp::Advance),
        1 => (0u64..2_000).prop_map(WindowOp::Back),
        6 => (any::<bool>(), any::<bool>()).prop_map(|(f, s)| WindowOp::Record(f, s)),
        2 => (0u64..20).prop_map(WindowOp::Successes),
        1 => Just(WindowOp::Clear),
    ]
}

/// Every outcome with its bucket number; the head is the largest bucket number seen.
struct WindowModel {
    bucket: u64,
    buckets: u64,
    head: u64,
    outcomes: Vec<(u64, bool, bool)>,
}

impl WindowModel {
    fn counts(&self) -> WindowCounts {
        let live: Vec<_> = self
            .outcomes
            .iter()
            .filter(|(b, _, _)| b + self.buckets > self.head)
            .collect();
        let n = |f: &dyn Fn(&&(u64, bool, bool)) -> bool| {
            u32::try_from(live.iter().filter(|o| f(o)).count()).unwrap_or(u32::MAX)
        };
        WindowCounts {
            calls: n(&|_| true),
            failures: n(&|o| o.1),
            slow: n(&|o| o.2),
        }
    }
}

fn check_window<const B: usize>(length_us: u64, ops: &[WindowOp]) -> Result<(), TestCaseError> {
    let mut window = TimeWindow::<B>::new();
    let config = CircuitBreakerConfig {
        window_duration: Some(Duration::from_micros(length_us)),
        ..CircuitBreakerConfig::DEFAULT
    };
    prop_assert_eq!(window.configure(&config), Ok(()));
    let bucket = length_us / B as u64;
    let mut model = WindowModel {
        bucket,
        buckets: B as u64,
        head: 0,
        outcomes: Vec::new(),
    };
    let mut now = 0u64;
    for &op in ops {
        match op {
            WindowOp::Advance(d) => now = now.saturating_add(d),
            WindowOp::Back(d) => now = now.saturating_sub(d),
            WindowOp::Record(failed, slow) => {
                window.advance(Instant::from_micros(now));
                model.head = model.head.max(now / model.bucket);
                window.record(Outcome { failed, slow });
                model.outcomes.push((model.head, failed, slow));
            }
            WindowOp::Successes(n) => {
                // Handed over at the head, without advancing (as the breaker does).
                window.record_successes(n);
                for _ in 0..n {
                    model.outcomes.push((model.head, false, false));
                }
            }
            WindowOp::Clear => {
                window.clear();
                model.outcomes.clear();
            }
        }
        prop_assert_eq!(window.counts(), model.counts(), "after {:?}", op);
        prop_assert_eq!(
            window.stable_until(),
            Instant::from_micros((model.head + 1) * model.bucket)
        );
    }
    Ok(())
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(300))]

    #[test]
    fn a_time_window_of_4_buckets_follows_the_model(
        length in 4u64..20_000,
        ops in prop::collection::vec(window_op(), 1..200),
    ) {
        check_window::<4>(length, &ops)?;
    }

    #[test]
    fn a_time_window_of_7_buckets_follows_the_model(
        length in 7u64..20_000,
        ops in prop::collection::vec(window_op(), 1..200),
    ) {
        check_window::<7>(length, &ops)?;
    }
}

// ---------- 2. a breaker by time against its rule ----------

/// Closed-state rule of a breaker by time: outcomes of the last `B` buckets; opens when either
/// rate over them reaches its threshold with `minimum_calls` in.
fn breaker_by_time_follows_the_rule(
    config: CircuitBreakerConfig,
    outcomes: &[(u64, bool, bool)],
) -> Result<(), TestCaseError> {
    const B: u64 = 5;
    let mut cb = CircuitBreaker::with_window(config, TimeWindow::<5>::new());
    let bucket = config
        .window_duration
        .map_or(1, |d| u64::try_from(d.as_micros()).unwrap_or(u64::MAX) / B);
    let slow = config.slow_call_duration.unwrap_or(Duration::MAX);
    let mut now = 0u64;
    let mut model: Vec<(u64, bool, bool)> = Vec::new();
    for &(step, failed, is_slow) in outcomes {
        now += step;
        let Ok(permit) = cb.try_acquire(Instant::from_micros(now)) else {
            // Open: the rule decided at the previous outcome; nothing more to compare.
            return Ok(());
        };
        let took = if is_slow && slow != Duration::MAX {
            u64::try_from(slow.as_micros()).unwrap_or(u64::MAX)
        } else {
            0
        };
        let end = Instant::from_micros(now + took);
        let head = (now + took) / bucket;
        model.push((head, failed, is_slow && took > 0));
        let live: Vec<_> = model.iter().filter(|o| o.0 + B > head).collect();
        let calls = live.len() as f32;
        let failures = live.iter().filter(|o| o.1).count() as f32;
        let slows = live.iter().filter(|o| o.2).count() as f32;
        let enough = u32::try_from(live.len()).unwrap_or(u32::MAX) >= config.minimum_calls;
        let trips = enough
            && (config
                .failure_rate_threshold
                .is_some_and(|rate| failures / calls >= rate)
                || (config.slow_call_duration.is_some()
                    && slows / calls >= config.slow_call_rate_threshold));
        let transition = if failed {
            cb.on_failure(permit, ErrorKind::Transient, end)
        } else {
            cb.on_success(permit, end)
        };
        prop_assert_eq!(transition.is_some(), trips, "at {} with {:?}", now, live);
        if trips {
            return Ok(());
        }
        let counts = cb.window_counts();
        prop_assert_eq!(
            usize::try_from(counts.calls).unwrap_or(usize::MAX),
            live.len()
        );
        now += took;
    }
    Ok(())
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(300))]

    #[test]
    fn a_breaker_by_time_opens_exactly_when_its_rule_says(
        length in 5u64..5_000,
        rate in prop::option::of(prop::sample::select(vec![0.25f32, 0.5, 0.6, 1.0])),
        slow in prop::option::of(1u64..50),
        slow_rate in prop::sample::select(vec![0.3f32, 0.5, 1.0]),
        minimum_calls in 1u32..8,
        outcomes in prop::collection::vec((0u64..600, any::<bool>(), any::<bool>()), 1..80),
    ) {
        let config = CircuitBreakerConfig {
            failure_rate_threshold: rate.or(Some(0.5)),
            slow_call_duration: slow.map(Duration::from_micros),
            slow_call_rate_threshold: slow_rate,
            minimum_calls,
            window_duration: Some(Duration::from_micros(length)),
            ..CircuitBreakerConfig::DEFAULT
        };
        breaker_by_time_follows_the_rule(config, &outcomes)?;
    }
}

// ---------- 3. deferred successes ----------

#[derive(Clone, Copy, Debug)]
enum Op {
    /// Acquire, then settle after `took` µs: 0 success, 1 failure, 2 ignored failure, 3 cancel.
    Call {
        took: u64,
        how: u8,
    },
    /// Acquire a permit and keep it (settled by a later `Settle`).
    Hold,
    /// Settle the oldest held permit with a success.
    SettleHeld,
    Wait(u64),
    Poll,
    ForceOpen,
    Disable,
    Reset,
}

fn op() -> impl Strategy<Value = Op> {
    prop_oneof![
        12 => (prop_oneof![4 => Just(0u64), 1 => 0u64..40], prop_oneof![6 => Just(0u8), 3 => Just(1u8), 1 => Just(2u8), 1 => Just(3u8)])
            .prop_map(|(took, how)| Op::Call { took, how }),
        1 => Just(Op::Hold),
        1 => Just(Op::SettleHeld),
        3 => (0u64..400).prop_map(Op::Wait),
        1 => Just(Op::Poll),
        1 => Just(Op::ForceOpen),
        1 => Just(Op::Disable),
        1 => Just(Op::Reset),
    ]
}

/// The exact breaker and the deferring one, side by side.
struct Pair<W: SlidingWindow> {
    exact: CircuitBreaker<CircuitBreakerConfig, W>,
    deferring: CircuitBreaker<CircuitBreakerConfig, W>,
    /// Successes counted on the side, not yet handed over.
    pending: u64,
    held: Vec<(Permit, Permit)>,
    now: u64,
    deferred: u64,
}

impl<W: SlidingWindow> Pair<W> {
    fn at(&self) -> Instant {
        Instant::from_micros(self.now)
    }

    /// Hands the pending successes over, as an adapter does before any input under its lock.
    fn fold(&mut self) {
        self.deferring.record_successes(self.pending);
        self.pending = 0;
    }

    fn check(&mut self) -> Result<(), TestCaseError> {
        // Compare after a fold (the stats and window an adapter reports fold first).
        self.fold();
        prop_assert_eq!(self.exact.state(), self.deferring.state());
        prop_assert_eq!(self.exact.stats(), self.deferring.stats());
        prop_assert_eq!(self.exact.window_counts(), self.deferring.window_counts());
        prop_assert_eq!(self.exact.poll_at(), self.deferring.poll_at());
        prop_assert_eq!(self.exact.generation(), self.deferring.generation());
        Ok(())
    }

    fn apply(&mut self, op: Op, slow: Option<Duration>) -> Result<(), TestCaseError> {
        match op {
            Op::Call { took, how } => {
                let start = self.at();
                // The deferring breaker's admission: a closed or disabled breaker admits
                // without any input (as the adapter's lock-free path does).
                let exact = self.exact.try_acquire(start);
                let free = matches!(
                    self.deferring.state(),
                    CircuitState::Closed | CircuitState::Disabled
                );
                let deferring = if free {
                    Ok(Permit::for_cycle(self.deferring.generation(), start))
                } else {
                    self.fold();
                    self.deferring.try_acquire(start)
                };
                prop_assert_eq!(exact.is_ok(), deferring.is_ok());
                let (Ok(exact), Ok(deferring)) = (exact, deferring) else {
                    return self.check();
                };
                let generation = deferring.generation();
                self.now += took;
                let end = self.at();
                let a = match how {
                    0 => self.exact.on_success(exact, end),
                    1 => self.exact.on_failure(exact, ErrorKind::Transient, end),
                    2 => self.exact.on_failure(exact, ErrorKind::InvalidInput, end),
                    _ => self.exact.on_cancelled(exact, end),
                };
                let fast = slow.is_none_or(|limit| Duration::from_micros(took) < limit);
                let deferrable = how == 0
                    && fast
                    && free
                    && generation == self.deferring.generation()
                    && self
                        .deferring
                        .successes_deferrable_until()
                        .is_some_and(|until| end < until);
                let b = if deferrable {
                    self.pending += 1;
                    self.deferred += 1;
                    None
                } else if free && how == 3 {
                    // A cancelled call admitted freely never reaches the core.
                    None
                } else {
                    self.fold();
                    match how {
                        0 => self.deferring.on_success(deferring, end),
                        1 => self
                            .deferring
                            .on_failure(deferring, ErrorKind::Transient, end),
                        2 => self
                            .deferring
                            .on_failure(deferring, ErrorKind::InvalidInput, end),
                        _ => self.deferring.on_cancelled(deferring, end),
                    }
                };
                prop_assert_eq!(a, b);
            }
            Op::Hold => {
                self.fold();
                let now = self.at();
                if let (Ok(a), Ok(b)) =
                    (self.exact.try_acquire(now), self.deferring.try_acquire(now))
                {
                    self.held.push((a, b));
                }
            }
            Op::SettleHeld => {
                if !self.held.is_empty() {
                    let (a, b) = self.held.remove(0);
                    self.fold();
                    let now = self.at();
                    prop_assert_eq!(
                        self.exact.on_success(a, now),
                        self.deferring.on_success(b, now)
                    );
                }
            }
            Op::Wait(d) => self.now += d,
            Op::Poll => {
                self.fold();
                let now = self.at();
                prop_assert_eq!(self.exact.poll(now), self.deferring.poll(now));
            }
            Op::ForceOpen => {
                self.fold();
                prop_assert_eq!(self.exact.force_open(), self.deferring.force_open());
            }
            Op::Disable => {
                self.fold();
                prop_assert_eq!(self.exact.disable(), self.deferring.disable());
            }
            Op::Reset => {
                self.fold();
                prop_assert_eq!(self.exact.reset(), self.deferring.reset());
            }
        }
        self.check()
    }
}

fn deferral<W: SlidingWindow + Clone>(
    config: CircuitBreakerConfig,
    window: W,
    ops: &[Op],
) -> Result<u64, TestCaseError> {
    let mut pair = Pair {
        exact: CircuitBreaker::with_window(config, window.clone()),
        deferring: CircuitBreaker::with_window(config, window),
        pending: 0,
        held: Vec::new(),
        now: 0,
        deferred: 0,
    };
    for &op in ops {
        pair.apply(op, config.slow_call_duration)?;
    }
    Ok(pair.deferred)
}

fn deferral_config() -> impl Strategy<Value = CircuitBreakerConfig> {
    (
        1u32..5,
        prop::option::of(prop::sample::select(vec![0.2f32, 0.5, 0.75, 1.0])),
        prop::option::of(5u64..30),
        prop::sample::select(vec![0.25f32, 0.5, 1.0]),
        1u32..8,
        1u32..3,
    )
        .prop_map(
            |(failure_threshold, rate, slow, slow_rate, minimum_calls, success_threshold)| {
                CircuitBreakerConfig {
                    failure_threshold,
                    success_threshold,
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

proptest! {
    #![proptest_config(ProptestConfig::with_cases(400))]

    #[test]
    fn deferred_successes_decide_as_each_one_does_without_a_window(
        config in deferral_config(),
        ops in prop::collection::vec(op(), 1..150),
    ) {
        let config = CircuitBreakerConfig {
            failure_rate_threshold: None,
            slow_call_duration: None,
            ..config
        };
        deferral(config, NoWindow, &ops)?;
    }

    #[test]
    fn deferred_successes_decide_as_each_one_does_with_a_count_window(
        config in deferral_config(),
        ops in prop::collection::vec(op(), 1..150),
    ) {
        let config = CircuitBreakerConfig {
            failure_rate_threshold: config.failure_rate_threshold.or(Some(0.5)),
            ..config
        };
        deferral(config, CountWindow::<8>::new(), &ops)?;
    }

    #[test]
    fn deferred_successes_decide_as_each_one_does_with_a_time_window(
        config in deferral_config(),
        length in 20u64..3_000,
        ops in prop::collection::vec(op(), 1..150),
    ) {
        let config = CircuitBreakerConfig {
            failure_rate_threshold: config.failure_rate_threshold.or(Some(0.5)),
            window_duration: Some(Duration::from_micros(length)),
            ..config
        };
        deferral(config, TimeWindow::<4>::new(), &ops)?;
    }
}

/// The deferral tests do defer: a long run of successes is mostly counted on the side.
#[test]
fn most_successes_of_a_healthy_run_are_deferred() {
    let config = CircuitBreakerConfig {
        failure_rate_threshold: Some(0.5),
        minimum_calls: 4,
        window_duration: Some(Duration::from_millis(4)),
        ..CircuitBreakerConfig::DEFAULT
    };
    let ops: Vec<Op> = (0..200)
        .map(|i| {
            if i % 50 == 49 {
                Op::Call { took: 0, how: 1 }
            } else {
                Op::Call { took: 3, how: 0 }
            }
        })
        .collect();
    let deferred = deferral(config, TimeWindow::<4>::new(), &ops).unwrap_or(0);
    assert!(deferred > 150, "{deferred}");
    let by_count = CircuitBreakerConfig {
        window_duration: None,
        ..config
    };
    let deferred = deferral(by_count, CountWindow::<8>::new(), &ops).unwrap_or(0);
    assert!(deferred > 150, "{deferred}");
}
