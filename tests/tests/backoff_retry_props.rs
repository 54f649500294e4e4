//! Property tests of backoff, the retry state machine and the retry budget.
//!
//! Each machine is driven with random inputs (times that jump, stall and go backwards, values at
//! the limits) next to a small reference model written here, and the two are compared.

use std::time::Duration;

use proptest::prelude::*;
use rustkernel_core::error::{ErrorKind, ErrorKindSet};
use rustkernel_core::resilience::budget::BUDGET_SLOTS;
use rustkernel_core::resilience::{
    BackoffStrategy, GiveUpReason, Retry, RetryBudget, RetryBudgetConfig, RetryConfig,
    RetryDecision,
};
use rustkernel_core::rng::Rng;
use rustkernel_core::time::Instant;

// ---------------------------------------------------------------------------------------------
// Generators

fn duration() -> impl Strategy<Value = Duration> {
    prop_oneof![
        Just(Duration::ZERO),
        Just(Duration::MAX),
        (1u64..1_000_000).prop_map(Duration::from_nanos),
        (1u64..100_000_000).prop_map(Duration::from_micros),
        (0u64..1_000_000, 0u32..1_000_000_000).prop_map(|(s, n)| Duration::new(s, n)),
        (any::<u64>(), 0u32..1_000_000_000).prop_map(|(s, n)| Duration::new(s, n)),
    ]
}

fn multiplier() -> impl Strategy<Value = f32> {
    prop_oneof![
        Just(1.0),
        Just(2.0),
        1.0f32..4.0,
        1.0f32..1.000_001,
        1.0f32..1e30,
        Just(f32::MAX),
    ]
}

fn attempt() -> impl Strategy<Value = u32> {
    prop_oneof![0u32..12, any::<u32>(), (u32::MAX - 3)..=u32::MAX]
}

/// A strategy that passes `validate`.
fn valid_backoff() -> impl Strategy<Value = BackoffStrategy> {
    (0u8..6, duration(), duration(), duration(), multiplier()).prop_map(
        |(variant, a, b, increment, multiplier)| {
            let (mut initial, max) = if a <= b { (a, b) } else { (b, a) };
            if variant >= 2 && initial.is_zero() {
                initial = Duration::from_nanos(1);
            }
            let max = max.max(initial);
            strategy(variant, a, initial, max, increment, multiplier)
        },
    )
}

/// Strategy number `variant` (0..6, in declaration order) with these values; `delay` is the
/// fixed strategy's delay.
fn strategy(
    variant: u8,
    delay: Duration,
    initial: Duration,
    max: Duration,
    increment: Duration,
    multiplier: f32,
) -> BackoffStrategy {
    match variant {
        0 => BackoffStrategy::Fixed { delay },
        1 => BackoffStrategy::Linear {
            initial,
            increment,
            max,
        },
        2 => BackoffStrategy::Exponential {
            initial,
            max,
            multiplier,
        },
        3 => BackoffStrategy::ExponentialWithJitter {
            initial,
            max,
            multiplier,
        },
        4 => BackoffStrategy::EqualJitter {
            initial,
            max,
            multiplier,
        },
        _ => BackoffStrategy::DecorrelatedJitter {
            initial,
            max,
            multiplier,
        },
    }
}

/// Any strategy at all, including those `validate` refuses.
fn any_backoff() -> impl Strategy<Value = BackoffStrategy> {
    (
        0u8..6,
        duration(),
        duration(),
        duration(),
        prop_oneof![any::<f32>(), multiplier()],
    )
        .prop_map(|(variant, initial, max, increment, multiplier)| {
            strategy(variant, initial, initial, max, increment, multiplier)
        })
}

fn kind() -> impl Strategy<Value = ErrorKind> {
    proptest::sample::select(ErrorKind::ALL.to_vec())
}

fn kind_set() -> impl Strategy<Value = ErrorKindSet> {
    proptest::collection::vec(kind(), 1..4).prop_map(|kinds| kinds.into_iter().collect())
}

/// A time step in microseconds: mostly forward, sometimes still, sometimes backwards.
fn step() -> impl Strategy<Value = i64> {
    prop_oneof![
        4 => 0i64..2_000_000,
        1 => Just(0i64),
        1 => -2_000_000i64..0,
        1 => any::<i64>(),
    ]
}

fn start() -> impl Strategy<Value = u64> {
    prop_oneof![
        0u64..10_000_000,
        Just(u64::MAX),
        (u64::MAX - 10_000_000)..=u64::MAX,
        any::<u64>(),
    ]
}

fn shift(now: Instant, step: i64) -> Instant {
    let magnitude = Duration::from_micros(step.unsigned_abs());
    if step >= 0 {
        now + magnitude
    } else {
        now - magnitude
    }
}

// ---------------------------------------------------------------------------------------------
// Backoff reference: the formulas, in f64 seconds with std's `powf`.

/// Relative slack for comparing the core's single-precision growth with `powf` (it documents
/// 2 * 10^-5 at worst).
const REL: f64 = 2e-5;
/// Absolute slack: a nanosecond of rounding, as seconds.
const ABS: f64 = 2e-9;

fn secs(d: Duration) -> f64 {
    d.as_secs_f64()
}

/// `initial * multiplier^(n-1)`, unclamped, with the `f32` multiplier's exact value.
fn reference_exp(initial: Duration, multiplier: f32, attempt: u32) -> f64 {
    let exponent = f64::from(attempt.max(1) - 1);
    secs(initial) * f64::from(multiplier).powf(exponent)
}

fn at_most(d: Duration, bound: f64) -> bool {
    secs(d) <= bound * (1.0 + REL) + ABS
}

fn at_least(d: Duration, bound: f64) -> bool {
    secs(d) >= bound * (1.0 - REL) - ABS
}

/// Checks one delay against its strategy's formula; `Err` names what broke.
fn check_delay(
    strategy: &BackoffStrategy,
    attempt: u32,
    previous: Duration,
    d: Duration,
) -> Result<(), String> {
    let fail = |what: &str| {
        Err(format!(
            "{what}: {strategy:?} attempt {attempt} previous {previous:?} -> {d:?}"
        ))
    };
    if d > strategy.max_delay() {
        return fail("above max_delay");
    }
    let n = u128::from(attempt.max(1) - 1);
    match *strategy {
        BackoffStrategy::Fixed { delay } => {
            if d != delay {
                return fail("fixed");
            }
        }
        BackoffStrategy::Linear {
            initial,
            increment,
            max,
        } => {
            let nanos = initial.as_nanos() + increment.as_nanos() * n;
            let expected = nanos.min(max.as_nanos());
            if d.as_nanos() != expected {
                return fail("linear");
            }
        }
        BackoffStrategy::Exponential {
            initial,
            max,
            multiplier,
        } => {
            let raw = reference_exp(initial, multiplier, attempt);
            let capped = raw.min(secs(max));
            if !(at_least(d, capped) && at_most(d, capped)) {
                return fail("exponential");
            }
            if raw >= secs(max) * (1.0 + REL) + ABS && d != max {
                return fail("exponential past the cap must be exactly max");
            }
            if attempt <= 1 && d != initial {
                return fail("the first retry waits exactly initial");
            }
        }
        BackoffStrategy::ExponentialWithJitter {
            initial,
            max,
            multiplier,
        } => {
            let ceiling = reference_exp(initial, multiplier, attempt).min(secs(max));
            if !at_most(d, ceiling) {
                return fail("full jitter above exp(n)");
            }
        }
        BackoffStrategy::EqualJitter {
            initial,
            max,
            multiplier,
        } => {
            let ceiling = reference_exp(initial, multiplier, attempt).min(secs(max));
            if !(at_least(d, ceiling / 2.0) && at_most(d, ceiling)) {
                return fail("equal jitter outside [exp/2, exp]");
            }
        }
        BackoffStrategy::DecorrelatedJitter {
            initial,
            max: _,
            multiplier,
        } => {
            let upper = secs(previous.max(initial)) * f64::from(multiplier);
            if d < initial || !at_most(d, upper) {
                return fail("decorrelated outside [initial, previous * multiplier]");
            }
        }
    }
    Ok(())
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 2_000, ..ProptestConfig::default() })]

    /// Every delay of a valid strategy lies in its formula's range and never exceeds `max`.
    #[test]
    fn delays_follow_their_formulas(
        strategy in valid_backoff(),
        seed in any::<u64>(),
        attempts in proptest::collection::vec((attempt(), prop_oneof![Just(None), duration().prop_map(Some)]), 1..24),
    ) {
        prop_assert_eq!(strategy.validate(), Ok(()));
        let mut rng = Rng::new(seed);
        let mut previous = Duration::ZERO;
        for (attempt, forced_previous) in attempts {
            let before = forced_previous.unwrap_or(previous);
            let d = strategy.delay(attempt, before, &mut rng);
            if let Err(message) = check_delay(&strategy, attempt, before, d) {
                prop_assert!(false, "{}", message);
            }
            previous = d;
        }
    }

    /// Invalid strategies still give delays no longer than `max_delay`, without panicking.
    #[test]
    fn any_strategy_is_bounded_and_panic_free(
        strategy in any_backoff(),
        seed in any::<u64>(),
        attempt in attempt(),
        previous in duration(),
    ) {
        let mut rng = Rng::new(seed);
        let d = strategy.delay(attempt, previous, &mut rng);
        prop_assert!(d <= strategy.max_delay(), "{:?} -> {:?}", strategy, d);
    }

    /// The same seed gives the same delays; the strategy draws nothing when unjittered.
    #[test]
    fn delays_are_deterministic_per_seed(
        strategy in valid_backoff(),
        seed in any::<u64>(),
        attempts in proptest::collection::vec(attempt(), 1..16),
    ) {
        let mut a = Rng::new(seed);
        let mut b = Rng::new(seed);
        let mut previous = Duration::ZERO;
        for attempt in attempts {
            let x = strategy.delay(attempt, previous, &mut a);
            let y = strategy.delay(attempt, previous, &mut b);
            prop_assert_eq!(x, y);
            previous = x;
        }
        prop_assert_eq!(a, b);
        if !strategy.is_jittered() {
            prop_assert_eq!(a, Rng::new(seed));
        }
    }

    /// Every range of `Rng::duration_in` holds.
    #[test]
    fn rng_durations_stay_in_range(seed in any::<u64>(), a in duration(), b in duration()) {
        let (low, high) = if a <= b { (a, b) } else { (b, a) };
        let mut rng = Rng::new(seed);
        for _ in 0..8 {
            let d = rng.duration_in(low, high);
            prop_assert!(low <= d && d <= high);
        }
        prop_assert_eq!(rng.duration_in(high, low), high);
    }
}

// ---------------------------------------------------------------------------------------------
// Retry reference model: the rules of the issue, written plainly.

#[derive(Debug)]
struct RetryModel {
    config: RetryConfig,
    rng: Rng,
    deadline: Option<Instant>,
    latest: Instant,
    attempts: u32,
    previous: Duration,
    done: Option<GiveUpReason>,
}

impl RetryModel {
    fn new(config: RetryConfig, seed: u64, now: Instant, deadline: Option<Instant>) -> Self {
        Self {
            config,
            rng: Rng::new(seed),
            deadline,
            latest: now,
            attempts: 1,
            previous: Duration::ZERO,
            done: None,
        }
    }

    fn on_failure(
        &mut self,
        kind: ErrorKind,
        now: Instant,
        hint: Option<Duration>,
        budget: Option<&mut RetryBudget>,
    ) -> RetryDecision {
        if let Some(reason) = self.done {
            return RetryDecision::GiveUp(reason);
        }
        if now > self.latest {
            self.latest = now;
        }
        let reason = if !self.config.retryable_errors.contains(kind) {
            Some(GiveUpReason::NotRetryable(kind))
        } else if self.attempts == self.config.max_attempts {
            Some(GiveUpReason::AttemptsExhausted)
        } else {
            let delay = match hint {
                Some(hint) => hint,
                None => self
                    .config
                    .backoff
                    .delay(self.attempts, self.previous, &mut self.rng),
            };
            // A retry may start once its whole delay has passed: the delay rounds up to whole µs.
            let at_micros = u128::from(self.latest.as_micros()) + delay.as_nanos().div_ceil(1_000);
            let at = Instant::from_micros(u64::try_from(at_micros).unwrap_or(u64::MAX));
            if matches!(self.deadline, Some(deadline) if at >= deadline) {
                Some(GiveUpReason::DeadlineExceeded)
            } else if let Some(budget) = budget
                && !budget.try_withdraw(now)
            {
                Some(GiveUpReason::BudgetExhausted)
            } else {
                self.attempts += 1;
                self.previous = delay;
                return RetryDecision::RetryAt(at);
            }
        };
        self.done = reason;
        RetryDecision::GiveUp(reason.unwrap_or(GiveUpReason::AttemptsExhausted))
    }
}

fn retry_config() -> impl Strategy<Value = RetryConfig> {
    (
        prop_oneof![1u32..8, Just(u32::MAX)],
        valid_backoff(),
        kind_set(),
    )
        .prop_map(|(max_attempts, backoff, retryable_errors)| RetryConfig {
            max_attempts,
            backoff,
            retryable_errors,
        })
}

#[derive(Clone, Debug)]
struct Failure {
    kind: ErrorKind,
    step: i64,
    hint: Option<Duration>,
    charge_budget: bool,
}

fn failure() -> impl Strategy<Value = Failure> {
    (
        kind(),
        step(),
        prop_oneof![3 => Just(None), 1 => duration().prop_map(Some)],
        any::<bool>(),
    )
        .prop_map(|(kind, step, hint, charge_budget)| Failure {
            kind,
            step,
            hint,
            charge_budget,
        })
}

fn budget_config() -> impl Strategy<Value = RetryBudgetConfig> {
    (
        prop_oneof![
            (1u64..100).prop_map(Duration::from_micros),
            (1u64..100_000_000).prop_map(Duration::from_micros),
            Just(Duration::from_secs(10)),
            Just(Duration::MAX),
        ],
        prop_oneof![Just(0u32), 0u32..20, Just(u32::MAX)],
        prop_oneof![Just(0.0f32), 0.0f32..2.0, Just(0.2f32), Just(1_000.0f32)],
    )
        .prop_map(
            |(window, min_retries_per_second, retry_ratio)| RetryBudgetConfig {
                window,
                min_retries_per_second,
                retry_ratio,
            },
        )
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 1_000, ..ProptestConfig::default() })]

    /// `Retry` agrees with the model, never schedules at or past the deadline, never exceeds
    /// `max_attempts`, and gives up on a non-retryable kind at once.
    #[test]
    fn retry_matches_the_model(
        config in retry_config(),
        seed in any::<u64>(),
        start in start(),
        deadline_after in prop_oneof![Just(None), step().prop_map(Some)],
        failures in proptest::collection::vec(failure(), 1..24),
        budget_config in budget_config(),
        deposits in 0u32..4,
    ) {
        let mut now = Instant::from_micros(start);
        let deadline = deadline_after.map(|step| shift(now, step));
        let mut retry = Retry::new(&config, seed, now, deadline);
        let mut model = RetryModel::new(config, seed, now, deadline);
        let mut budget = RetryBudget::new(budget_config);
        for _ in 0..deposits {
            budget.deposit(now);
        }
        let mut model_budget = budget;
        let mut latest = now;
        let mut retries = 0u32;
        let mut gave_up = None;
        for (i, failure) in failures.iter().enumerate() {
            now = shift(now, failure.step);
            latest = latest.max(now);
            let (real_budget, reference_budget) = if failure.charge_budget {
                (Some(&mut budget), Some(&mut model_budget))
            } else {
                (None, None)
            };
            let decision = retry.on_failure(failure.kind, now, failure.hint, real_budget);
            let expected = model.on_failure(failure.kind, now, failure.hint, reference_budget);
            prop_assert_eq!(decision, expected, "failure {}: {:?}", i, failure);
            prop_assert_eq!(budget, model_budget);
            if let Some(reason) = gave_up {
                prop_assert_eq!(decision, RetryDecision::GiveUp(reason), "giving up is final");
            }
            match decision {
                RetryDecision::RetryAt(at) => {
                    retries += 1;
                    prop_assert!(deadline.is_none_or(|d| at < d), "{:?} not before {:?}", at, deadline);
                    prop_assert!(at >= latest);
                    if failure.hint.is_none() {
                        // The delay never exceeds `max`; the instant rounds it up to whole µs.
                        let max = config.backoff.max_delay();
                        let max_micros = max.as_nanos().div_ceil(1_000);
                        prop_assert!((at - latest).as_micros() <= max_micros);
                    }
                    prop_assert_eq!(retry.poll_at(), Some(at));
                }
                RetryDecision::GiveUp(reason) => {
                    if i == 0 && !config.retryable_errors.contains(failure.kind) {
                        prop_assert_eq!(reason, GiveUpReason::NotRetryable(failure.kind));
                    }
                    prop_assert_eq!(retry.poll_at(), None);
                    prop_assert_eq!(retry.gave_up(), Some(reason));
                    gave_up = Some(reason);
                }
            }
            prop_assert!(retries < config.max_attempts);
            prop_assert_eq!(retry.attempts(), retries + 1);
            prop_assert!(retry.attempts() <= config.max_attempts);
        }
    }

    /// Two `Retry`s with the same seed and inputs decide the same.
    #[test]
    fn retry_is_deterministic_per_seed(
        config in retry_config(),
        seed in any::<u64>(),
        start in start(),
        failures in proptest::collection::vec(failure(), 1..16),
    ) {
        let now = Instant::from_micros(start);
        let mut a = Retry::new(&config, seed, now, None);
        let mut b = a.clone();
        let mut t = now;
        for failure in failures {
            t = shift(t, failure.step);
            prop_assert_eq!(
                a.on_failure(failure.kind, t, failure.hint, None),
                b.on_failure(failure.kind, t, failure.hint, None)
            );
        }
        prop_assert_eq!(a, b);
    }
}

// ---------------------------------------------------------------------------------------------
// Budget reference model: every event in a list, slots computed from scratch.

const N: u64 = BUDGET_SLOTS as u64;
const UNITS: u128 = 1_000_000;

#[derive(Debug)]
struct BudgetModel {
    slot_micros: u64,
    /// Millionths of a retry per request.
    per_request: u128,
    /// Millionths of a retry always available per window.
    reserve: u128,
    newest: u64,
    /// (slot, is_deposit), in order.
    events: Vec<(u64, bool)>,
}

impl BudgetModel {
    fn new(config: &RetryBudgetConfig) -> Self {
        let window_micros = u64::try_from(config.window.as_micros()).unwrap_or(u64::MAX);
        let slot_micros = (window_micros / N).max(1);
        let effective_window = u128::from(slot_micros) * u128::from(N);
        #[allow(clippy::cast_possible_truncation)] // finite, in [0, 1e9]
        let per_request = (f64::from(config.retry_ratio) * 1e6).floor() as u128;
        // The implementation keeps the reserve in a u64, saturating.
        let reserve = (u128::from(config.min_retries_per_second) * effective_window)
            .min(u128::from(u64::MAX));
        Self {
            slot_micros,
            per_request,
            reserve,
            newest: 0,
            events: Vec::new(),
        }
    }

    fn slot(&mut self, now: Instant) -> u64 {
        self.newest = self.newest.max(now.as_micros() / self.slot_micros);
        self.newest
    }

    fn live(&self, at: u64) -> (u128, u128) {
        let mut deposits = 0;
        let mut retries = 0;
        for &(slot, is_deposit) in &self.events {
            if at - slot < N {
                if is_deposit {
                    deposits += 1;
                } else {
                    retries += 1;
                }
            }
        }
        (deposits, retries)
    }

    fn deposit(&mut self, now: Instant) {
        let slot = self.slot(now);
        self.events.push((slot, true));
    }

    fn try_withdraw(&mut self, now: Instant) -> bool {
        let slot = self.slot(now);
        let (deposits, retries) = self.live(slot);
        let allowed = self.reserve + self.per_request * deposits >= UNITS * (retries + 1);
        if allowed {
            self.events.push((slot, false));
        }
        allowed
    }

    fn available(&self, now: Instant) -> u128 {
        let at = self.newest.max(now.as_micros() / self.slot_micros);
        let (deposits, retries) = self.live(at);
        (self.reserve + self.per_request * deposits).saturating_sub(UNITS * retries) / UNITS
    }
}

#[derive(Clone, Debug)]
enum BudgetOp {
    Deposit(i64),
    Withdraw(i64),
    Peek(i64),
}

fn budget_ops() -> impl Strategy<Value = Vec<BudgetOp>> {
    proptest::collection::vec(
        prop_oneof![
            3 => step().prop_map(BudgetOp::Deposit),
            3 => step().prop_map(BudgetOp::Withdraw),
            1 => step().prop_map(BudgetOp::Peek),
        ],
        1..200,
    )
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 1_000, ..ProptestConfig::default() })]

    /// The budget decides as the model does, and in any window of slots retries stay within
    /// `floor * window + ratio * (requests in that window and the one before)`.
    #[test]
    fn budget_matches_the_model_and_its_bound(
        config in budget_config(),
        start in start(),
        ops in budget_ops(),
    ) {
        let mut budget = RetryBudget::new(config);
        let mut model = BudgetModel::new(&config);
        let mut now = Instant::from_micros(start);
        for op in &ops {
            match *op {
                BudgetOp::Deposit(step) => {
                    now = shift(now, step);
                    budget.deposit(now);
                    model.deposit(now);
                }
                BudgetOp::Withdraw(step) => {
                    now = shift(now, step);
                    prop_assert_eq!(budget.try_withdraw(now), model.try_withdraw(now), "{:?}", op);
                }
                BudgetOp::Peek(step) => {
                    let at = shift(now, step);
                    let expected = u64::try_from(model.available(at)).unwrap_or(u64::MAX);
                    prop_assert_eq!(budget.available(at), expected);
                }
            }
        }
        // The bound, in the config's own terms (retries and requests, not units).
        let window_secs = model.slot_micros as f64 * N as f64 / 1e6;
        let floor = f64::from(config.min_retries_per_second) * window_secs;
        let ratio = f64::from(config.retry_ratio);
        for &(end, is_deposit) in &model.events {
            if is_deposit {
                continue;
            }
            let first = end.saturating_sub(N - 1);
            let paying_from = end.saturating_sub(2 * N - 2);
            let retries = model.events.iter().filter(|&&(s, d)| !d && s >= first && s <= end).count();
            let requests = model.events.iter().filter(|&&(s, d)| d && s >= paying_from && s <= end).count();
            let bound = floor.min(u64::MAX as f64 / 1e6) + ratio * requests as f64;
            prop_assert!(
                retries as f64 <= bound + 1e-6,
                "{} retries in slots {}..={} but bound {}", retries, first, end, bound
            );
        }
    }

    /// With time going only forward, and every request in the same window as its retries,
    /// retries never pass `ratio * requests + floor * window`.
    #[test]
    fn budget_within_one_window_obeys_ratio_plus_floor(
        config in budget_config(),
        start in 0u64..1_000_000_000,
        ops in proptest::collection::vec(any::<bool>(), 1..300),
    ) {
        let mut budget = RetryBudget::new(config);
        let model = BudgetModel::new(&config);
        // Stay inside one slot, so every event is in the same window.
        let now = Instant::from_micros(start / model.slot_micros * model.slot_micros);
        let (mut requests, mut retries) = (0u64, 0u64);
        for deposit in ops {
            if deposit {
                budget.deposit(now);
                requests += 1;
            } else if budget.try_withdraw(now) {
                retries += 1;
            }
        }
        let window_secs = model.slot_micros as f64 * N as f64 / 1e6;
        let bound = f64::from(config.min_retries_per_second) * window_secs
            + f64::from(config.retry_ratio) * requests as f64;
        prop_assert!(retries as f64 <= bound + 1e-6, "{} > {}", retries, bound);
    }
}

// ---------------------------------------------------------------------------------------------
// Serde: every serde type round-trips through postcard.

/// Ties the decoded value's type to the original's, so no serde bound needs naming here.
fn same_type<T>(_original: &T, decoded: T) -> T {
    decoded
}

macro_rules! round_trip {
    ($value:expr) => {{
        let value = $value;
        let mut buf = [0u8; 512];
        let bytes = postcard::to_slice(value, &mut buf).expect("fits the buffer");
        same_type(value, postcard::from_bytes(bytes).expect("decodes"))
    }};
}

proptest! {
    #[test]
    fn everything_round_trips_through_postcard(
        config in retry_config(),
        backoff in any_backoff(),
        budget_config in budget_config(),
        seed in any::<u64>(),
        start in start(),
        failures in proptest::collection::vec(failure(), 0..6),
    ) {
        prop_assert_eq!(round_trip!(&config), config);
        let back = round_trip!(&backoff);
        // NaN multipliers are not equal to themselves; compare the encodings instead.
        prop_assert_eq!(format!("{back:?}"), format!("{backoff:?}"));
        prop_assert_eq!(round_trip!(&budget_config), budget_config);
        let rng = Rng::new(seed);
        prop_assert_eq!(round_trip!(&rng), rng);

        let mut now = Instant::from_micros(start);
        let mut retry = Retry::new(&config, seed, now, None);
        let mut budget = RetryBudget::new(budget_config);
        for failure in &failures {
            now = shift(now, failure.step);
            budget.deposit(now);
            let decision = retry.on_failure(failure.kind, now, failure.hint, Some(&mut budget));
            prop_assert_eq!(round_trip!(&decision), decision);
            if let RetryDecision::GiveUp(reason) = decision {
                prop_assert_eq!(round_trip!(&reason), reason);
            }
        }
        let mut retry_back = round_trip!(&retry);
        let mut budget_back = round_trip!(&budget);
        prop_assert_eq!(&retry_back, &retry);
        prop_assert_eq!(budget_back, budget);
        // The decoded state carries on exactly as the original.
        let later = now + Duration::from_secs(1);
        prop_assert_eq!(
            retry_back.on_failure(ErrorKind::Transient, later, None, Some(&mut budget_back)),
            retry.on_failure(ErrorKind::Transient, later, None, Some(&mut budget))
        );
        prop_assert_eq!(budget_back, budget);
    }
}

#[test]
fn every_give_up_reason_round_trips() {
    for reason in [
        GiveUpReason::NotRetryable(ErrorKind::ResourceExhausted),
        GiveUpReason::AttemptsExhausted,
        GiveUpReason::BudgetExhausted,
        GiveUpReason::DeadlineExceeded,
    ] {
        assert_eq!(round_trip!(&reason), reason);
        assert_eq!(
            round_trip!(&RetryDecision::GiveUp(reason)),
            RetryDecision::GiveUp(reason)
        );
    }
}

#[test]
fn chapter_retry_literal_compiles() {
    let config = RetryConfig {
        max_attempts: 3,
        backoff: BackoffStrategy::ExponentialWithJitter {
            initial: Duration::from_millis(100),
            max: Duration::from_secs(10),
            multiplier: 2.0,
        },
        retryable_errors: [ErrorKind::Transient, ErrorKind::Timeout].into(),
    };
    assert_eq!(config.validate(), Ok(()));
}
