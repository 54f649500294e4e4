//! Property tests of `Recovery` against a reference model that keeps every restart time in a
//! plain `Vec`, counts the window with exact `u128` arithmetic and grows restart delays with
//! its own exact arithmetic ([`model_next`]), never the core's `RestartBackoff::next`.
#![allow(
    clippy::unwrap_used,
    clippy::panic,
    clippy::indexing_slicing,
    clippy::cast_possible_truncation
)]

use core::time::Duration;

use proptest::prelude::*;
use rustkernel_core::error::{ConfigError, ConfigField};
use rustkernel_core::resilience::{
    Directive, Escalation, Recovered, Recovery, RecoveryAction, RecoveryLadder, RecoveryPolicy,
    RecoveryState, RecoveryStrategy, RestartBackoff, RestartIntensity,
};
use rustkernel_core::time::{Instant, duration_as_micros};

const CAP: usize = 8;
type Machine = Recovery<CAP>;

// ---------------------------------------------------------------------------------------------
// Reference model
// ---------------------------------------------------------------------------------------------

/// The exact restart delay after `delay`: `delay * multiplier` rounded down to the nanosecond,
/// never below `delay`, at most `max` (a `delay` already at or above `max` stays). Computed
/// from the multiplier's IEEE 754 bits, `significand * 2^exponent`, with the product split
/// into 64-bit halves; for valid multipliers only (finite, at least 1). The core computes in
/// `f32` and stays within its rounding of this (`backoff_next_is_monotone_and_capped`).
fn model_next(delay: Duration, multiplier: f32, max: Duration) -> Duration {
    let multiplier = f64::from(multiplier);
    assert!(
        multiplier.is_finite() && multiplier >= 1.0,
        "the model takes valid multipliers"
    );
    if delay >= max {
        return delay;
    }
    let bits = multiplier.to_bits();
    let biased = ((bits >> 52) & 0x7ff) as i32;
    // At least 1, so normal: the implicit bit is set and the exponent is at least -52.
    let significand = u128::from((bits & ((1 << 52) - 1)) | (1 << 52));
    let exponent = biased - 1075;
    let nanos = delay.as_nanos(); // below 2^94
    let high = (nanos >> 64) * significand; // below 2^83
    let low = (nanos & u128::from(u64::MAX)) * significand; // below 2^117
    // floor((high * 2^64 + low) * 2^exponent), `None` when it overflows u128.
    let product = if exponent >= 0 {
        if high != 0 || exponent >= 128 {
            None
        } else {
            low.checked_mul(1 << exponent)
        }
    } else {
        let down = exponent.unsigned_abs(); // at most 52
        high.checked_mul(1 << (64 - down))
            .and_then(|high| high.checked_add(low >> down))
    };
    let next = product
        .map_or(max.as_nanos(), |p| p.min(max.as_nanos()))
        .max(nanos);
    Duration::new(
        u64::try_from(next / 1_000_000_000).unwrap(),
        (next % 1_000_000_000) as u32,
    )
}

/// The model's delay after `delay` under `backoff`, or `delay` without one. The model takes
/// the core's `f32` product (checked against the exact one on its own, in
/// `backoff_next_is_monotone_and_capped`) so that the window and escalation rules compare
/// exactly.
fn model_backoff(backoff: Option<&RestartBackoff>, delay: Duration) -> Duration {
    backoff.map_or(delay, |b| b.next(delay))
}

/// Every rule written out the plain way: all restart times since the last fresh start in a Vec,
/// nothing pruned, the window counted with `u128` so nothing can saturate.
#[derive(Debug)]
struct Model {
    policy: RecoveryPolicy,
    window: u128,
    backoff: Option<RestartBackoff>,
    restarts: Vec<u64>,
    pending: Option<(u64, u32)>,
    escalated: Option<Escalation>,
    attempt: u32,
    next_delay: Duration,
    quiet_since: u64,
    latest: u64,
}

impl Model {
    fn new(policy: RecoveryPolicy, intensity: RestartIntensity) -> Self {
        Self {
            policy,
            window: u128::from(duration_as_micros(intensity.window)),
            backoff: intensity.backoff,
            restarts: Vec::new(),
            pending: None,
            escalated: None,
            attempt: 0,
            next_delay: policy.restart_delay,
            quiet_since: 0,
            latest: 0,
        }
    }

    fn clock(&mut self, now: u64) -> u64 {
        self.latest = self.latest.max(now);
        if let Some((at, _)) = self.pending
            && self.latest >= at
        {
            self.pending = None;
        }
        self.latest
    }

    fn in_window(&self, restart: u64, now: u64) -> bool {
        u128::from(now) < u128::from(restart) + self.window
    }

    fn count(&self, now: u64) -> u32 {
        let now = now.max(self.latest);
        self.restarts
            .iter()
            .filter(|&&t| self.in_window(t, now))
            .count() as u32
    }

    fn on_failure(&mut self, now: u64) -> RecoveryAction {
        let now = self.clock(now);
        self.quiet_since = self.quiet_since.max(now);
        match self.policy.strategy {
            RecoveryStrategy::RestartKernel => {}
            RecoveryStrategy::UseReplica => return RecoveryAction::UseReplica,
            RecoveryStrategy::Degrade => return RecoveryAction::Degrade,
            RecoveryStrategy::Failover => return RecoveryAction::Failover,
            RecoveryStrategy::NotifyOperator => return RecoveryAction::NotifyOperator,
        }
        if let Some(escalation) = self.escalated {
            return RecoveryAction::AlreadyEscalated(escalation);
        }
        if let Some((at, attempt)) = self.pending {
            return RecoveryAction::RestartPending {
                at: Instant::from_micros(at),
                attempt,
            };
        }
        if self.count(now) >= self.policy.max_restarts {
            let (escalation, action) = match self.policy.escalation {
                Some(s) => (Escalation::To(s), RecoveryAction::Escalate(s)),
                None => (Escalation::GaveUp, RecoveryAction::GiveUp),
            };
            self.escalated = Some(escalation);
            return action;
        }
        let delay = self.next_delay;
        self.next_delay = model_backoff(self.backoff.as_ref(), delay);
        self.attempt += 1;
        self.restarts.push(now);
        let at = u64::try_from(u128::from(now) + u128::from(duration_as_micros(delay)))
            .unwrap_or(u64::MAX);
        self.quiet_since = self.quiet_since.max(at);
        if at > now {
            self.pending = Some((at, self.attempt));
        }
        RecoveryAction::Restart {
            at: Instant::from_micros(at),
            attempt: self.attempt,
        }
    }

    fn on_healthy(&mut self, now: u64) -> Option<Recovered> {
        let now = self.clock(now);
        if u128::from(now) < u128::from(self.quiet_since) + self.window {
            return None;
        }
        let recovered = match self.escalated {
            Some(escalation) => Recovered::FromEscalation(escalation),
            None if self.attempt == 0 => return None,
            None => Recovered::Budget,
        };
        self.reset();
        Some(recovered)
    }

    fn reset(&mut self) {
        self.restarts.clear();
        self.pending = None;
        self.escalated = None;
        self.attempt = 0;
        self.next_delay = self.policy.restart_delay;
    }

    fn poll_at(&self) -> Option<Instant> {
        if self.escalated.is_some() {
            return None;
        }
        let leaves = self
            .restarts
            .iter()
            .filter(|&&t| self.in_window(t, self.latest))
            .map(|&t| u128::from(t) + self.window)
            .min()
            .and_then(|t| u64::try_from(t).ok());
        let due = self.pending.map(|(at, _)| at);
        match (leaves, due) {
            (Some(a), Some(b)) => Some(Instant::from_micros(a.min(b))),
            (a, b) => a.or(b).map(Instant::from_micros),
        }
    }
}

// ---------------------------------------------------------------------------------------------
// Generators
// ---------------------------------------------------------------------------------------------

fn strategy() -> impl Strategy<Value = RecoveryStrategy> {
    prop::sample::select(RecoveryStrategy::ALL.to_vec())
}

/// Sum of the first `max_restarts` delays in microseconds, each as the model computes it.
fn delay_span(policy: &RecoveryPolicy, backoff: Option<RestartBackoff>) -> u128 {
    let mut delay = policy.restart_delay;
    let mut span = 0u128;
    for _ in 0..policy.max_restarts {
        span += u128::from(duration_as_micros(delay));
        delay = model_backoff(backoff.as_ref(), delay);
    }
    span
}

/// A valid (policy, intensity) pair; mostly restarts, sometimes the other strategies; small
/// or huge durations.
fn config() -> impl Strategy<Value = (RecoveryPolicy, RestartIntensity)> {
    let delay_us = prop_oneof![
        4 => 0u64..2_000,
        1 => Just(0u64),
        1 => (u64::MAX / 64)..(u64::MAX / 16),
    ];
    let backoff = prop::option::of((1.0f32..4.0, 0u64..20_000));
    (
        prop_oneof![4 => Just(RecoveryStrategy::RestartKernel), 1 => strategy()],
        1u32..=CAP as u32,
        delay_us,
        prop::option::of(strategy()),
        backoff,
        prop_oneof![3 => 1u64..50_000, 1 => Just(u64::MAX)],
    )
        .prop_map(
            |(strategy, max_restarts, delay_us, escalation, backoff, extra_window)| {
                let policy = RecoveryPolicy {
                    strategy,
                    max_restarts,
                    restart_delay: Duration::from_micros(delay_us),
                    escalation,
                };
                let backoff = backoff.map(|(multiplier, headroom)| RestartBackoff {
                    multiplier,
                    max: Duration::from_micros(delay_us.max(1).saturating_add(headroom)),
                });
                // A window just long enough for the delays to allow escalation, plus some.
                let span = delay_span(&policy, backoff);
                let window_us = u64::try_from(span + u128::from(extra_window)).unwrap_or(u64::MAX);
                let intensity = RestartIntensity {
                    window: Duration::from_micros(window_us),
                    backoff,
                };
                (policy, intensity)
            },
        )
        .prop_filter("valid configuration", |(policy, intensity)| {
            Machine::try_new(*policy, *intensity).is_ok()
        })
}

#[derive(Clone, Copy, Debug)]
enum Time {
    /// Forward by a few microseconds to a few windows.
    Forward(u64),
    /// Backward (the machine must treat it as no time passing).
    Backward(u64),
    /// Jump to an absolute time, including values near the limits.
    At(u64),
    /// Jump to the machine's own `poll_at`, when it has one.
    PollAt,
}

#[derive(Clone, Copy, Debug)]
enum Input {
    Failure,
    Healthy,
    Timeout,
    Reset,
}

fn time() -> impl Strategy<Value = Time> {
    prop_oneof![
        6 => (0u64..60_000).prop_map(Time::Forward),
        1 => (0u64..60_000).prop_map(Time::Backward),
        1 => prop_oneof![
            Just(0u64),
            Just(u64::MAX),
            Just(u64::MAX - 1),
            (u64::MAX - 100_000)..=u64::MAX,
            any::<u64>(),
        ]
        .prop_map(Time::At),
        2 => Just(Time::PollAt),
    ]
}

fn input() -> impl Strategy<Value = Input> {
    prop_oneof![
        8 => Just(Input::Failure),
        3 => Just(Input::Healthy),
        2 => Just(Input::Timeout),
        1 => Just(Input::Reset),
    ]
}

fn ops(max: usize) -> impl Strategy<Value = Vec<(Time, Input)>> {
    prop::collection::vec((time(), input()), 1..max)
}

fn step(now: u64, time: Time, machine: &Machine) -> u64 {
    match time {
        Time::Forward(d) => now.saturating_add(d),
        Time::Backward(d) => now.saturating_sub(d),
        Time::At(t) => t,
        Time::PollAt => machine.poll_at().map_or(now, Instant::as_micros),
    }
}

/// Serializes `$value` with postcard into a stack buffer and decodes it as `$ty`.
macro_rules! round_trip {
    ($value:expr, $ty:ty) => {{
        let value: $ty = $value;
        let mut buf = [0u8; 64];
        let bytes =
            postcard::to_slice(&value, &mut buf).map_err(|e| TestCaseError::fail(e.to_string()))?;
        let back: $ty =
            postcard::from_bytes(bytes).map_err(|e| TestCaseError::fail(e.to_string()))?;
        prop_assert_eq!(back, value);
    }};
}

// ---------------------------------------------------------------------------------------------
// Properties
// ---------------------------------------------------------------------------------------------

proptest! {
    #![proptest_config(ProptestConfig::with_cases(512))]

    /// Every action, every getter and `poll_at` agree with the model, whatever the inputs and
    /// times (including time going backwards and instants near `u64::MAX`).
    #[test]
    fn machine_matches_model((policy, intensity) in config(), ops in ops(80)) {
        let mut machine = Machine::new(policy, intensity);
        let mut model = Model::new(policy, intensity);
        let mut now = 0u64;
        for (time, input) in ops {
            now = step(now, time, &machine);
            let t = Instant::from_micros(now);
            match input {
                Input::Failure => prop_assert_eq!(machine.on_failure(t), model.on_failure(now)),
                Input::Healthy => prop_assert_eq!(machine.on_healthy(t), model.on_healthy(now)),
                Input::Timeout => {
                    machine.poll(t);
                    model.clock(now);
                }
                Input::Reset => {
                    machine.reset();
                    model.reset();
                }
            }
            prop_assert_eq!(machine.poll_at(), model.poll_at());
            prop_assert_eq!(machine.escalation(), model.escalated);
            prop_assert_eq!(machine.attempt(), model.attempt);
            prop_assert_eq!(machine.next_restart_delay(), model.next_delay);
            for query in [now, now.saturating_add(1), now.saturating_add(30_000), u64::MAX] {
                prop_assert_eq!(
                    machine.restarts_in_window(Instant::from_micros(query)),
                    model.count(query)
                );
            }
            let pending = match machine.state() {
                RecoveryState::RestartScheduled { at, attempt } => Some((at.as_micros(), attempt)),
                _ => None,
            };
            prop_assert_eq!(pending, model.pending);
        }
    }

    /// Never more than `max_restarts` restarts within any window (between resets), checked on
    /// the restarts the machine actually asked for.
    #[test]
    fn never_more_than_max_restarts_in_any_window(
        (policy, intensity) in config(),
        ops in ops(120),
    ) {
        let mut machine = Machine::new(policy, intensity);
        let window = u128::from(duration_as_micros(intensity.window));
        let mut restarts: Vec<u64> = Vec::new();
        let mut now = 0u64;
        let mut clock = 0u64; // the machine's own clock: never back
        for (time, input) in ops {
            now = step(now, time, &machine);
            if !matches!(input, Input::Reset) {
                clock = clock.max(now); // `reset` takes no time
            }
            match input {
                Input::Failure => {
                    if let RecoveryAction::Restart { .. } = machine.on_failure(Instant::from_micros(now)) {
                        let in_window = restarts
                            .iter()
                            .filter(|&&t| u128::from(clock) < u128::from(t) + window)
                            .count();
                        prop_assert!(in_window < policy.max_restarts as usize);
                        restarts.push(clock);
                    }
                }
                Input::Healthy => { let _ = machine.on_healthy(Instant::from_micros(now)); }
                Input::Timeout => machine.poll(Instant::from_micros(now)),
                Input::Reset => { machine.reset(); restarts.clear(); }
            }
            prop_assert!(machine.restarts_in_window(Instant::from_micros(now)) <= policy.max_restarts);
        }
    }

    /// Failures that each come once the previous restart is done: the machine restarts while
    /// fewer than `max_restarts` restarts lie in the window, escalates on exactly the first
    /// failure that finds `max_restarts` there, and stays escalated.
    #[test]
    fn escalates_exactly_on_the_first_failure_past_the_intensity(
        (policy, intensity) in config(),
        gaps in prop::collection::vec(prop_oneof![3 => Just(0u64), 1 => 0u64..100_000], 1..40),
    ) {
        prop_assume!(policy.strategy == RecoveryStrategy::RestartKernel);
        let mut machine = Machine::new(policy, intensity);
        let window = u128::from(duration_as_micros(intensity.window));
        let mut restarts: Vec<u64> = Vec::new();
        let mut now = 1_000u64;
        let mut escalated = false;
        for gap in gaps {
            let action = machine.on_failure(Instant::from_micros(now));
            let in_window = restarts
                .iter()
                .filter(|&&t| u128::from(now) < u128::from(t) + window)
                .count();
            if escalated {
                prop_assert!(matches!(action, RecoveryAction::AlreadyEscalated(_)), "{action:?}");
            } else if in_window == policy.max_restarts as usize {
                let expected = match policy.escalation {
                    Some(s) => RecoveryAction::Escalate(s),
                    None => RecoveryAction::GiveUp,
                };
                prop_assert_eq!(action, expected);
                escalated = true;
            } else {
                match action {
                    RecoveryAction::Restart { at, attempt } => {
                        prop_assert_eq!(attempt as usize, restarts.len() + 1);
                        restarts.push(now);
                        now = at.as_micros();
                    }
                    other => prop_assert!(false, "expected a restart, got {other:?}"),
                }
            }
            now = now.saturating_add(gap);
        }
    }

    /// With no time between a restart and the next failure, escalation comes on failure
    /// `max_restarts + 1`, never later: validation guarantees the delays fit in the window.
    #[test]
    fn a_crash_loop_escalates_after_max_restarts((policy, intensity) in config(), start in 0u64..1 << 40) {
        prop_assume!(policy.strategy == RecoveryStrategy::RestartKernel);
        prop_assume!(intensity.window < Duration::from_secs(1 << 20));
        let mut machine = Machine::new(policy, intensity);
        let mut now = Instant::from_micros(start);
        for attempt in 1..=policy.max_restarts {
            match machine.on_failure(now) {
                RecoveryAction::Restart { at, attempt: a } => {
                    prop_assert_eq!(a, attempt);
                    now = at;
                }
                other => prop_assert!(false, "expected restart {attempt}, got {other:?}"),
            }
        }
        let last = machine.on_failure(now);
        prop_assert!(!matches!(last, RecoveryAction::Restart { .. }), "restarted again: {last:?}");
        prop_assert!(machine.escalation().is_some());
    }

    /// With backoff, successive restart delays never shrink, never pass the cap, start at the
    /// policy's delay and grow by the multiplier (to within rounding).
    #[test]
    fn backoff_delays_grow_and_stay_capped(
        base_us in 1u64..10_000,
        headroom in 0u64..1_000_000,
        multiplier in 1.0f32..8.0,
        failures in 1usize..40,
    ) {
        let cap = Duration::from_micros(base_us + headroom);
        let backoff = RestartBackoff { multiplier, max: cap };
        let policy = RecoveryPolicy {
            strategy: RecoveryStrategy::RestartKernel,
            max_restarts: CAP as u32,
            restart_delay: Duration::from_micros(base_us),
            escalation: None,
        };
        // Longer than the delays of `CAP` restarts, as validation asks.
        let intensity = RestartIntensity { window: Duration::from_secs(10), backoff: Some(backoff) };
        let mut machine = Machine::new(policy, intensity);
        let mut now = Instant::from_secs(1);
        let mut previous: Option<Duration> = None;
        for _ in 0..failures {
            // The machine keeps the delay to the nanosecond; `at` is in whole microseconds.
            let delay = machine.next_restart_delay();
            match machine.on_failure(now) {
                RecoveryAction::Restart { at, .. } => {
                    prop_assert_eq!(at, now + delay);
                    prop_assert!(delay <= cap);
                    match previous {
                        None => prop_assert_eq!(delay, policy.restart_delay),
                        Some(prev) => {
                            prop_assert!(delay >= prev);
                            let ideal = (prev.as_nanos() as f64 * f64::from(multiplier)).min(cap.as_nanos() as f64);
                            let got = delay.as_nanos() as f64;
                            prop_assert!((got - ideal).abs() <= 1.0 + ideal * 3e-7,
                                "delay {delay:?} after {prev:?} with x{multiplier}, cap {cap:?}");
                        }
                    }
                    previous = Some(delay);
                    // Fail again a whole window after the restart: the restart has left the
                    // window (so the intensity never runs out) but the backoff, which only a
                    // healthy report resets, keeps growing.
                    now = at + intensity.window;
                }
                other => prop_assert!(false, "expected a restart, got {other:?}"),
            }
        }
    }

    /// `RestartBackoff::next` on its own: the exact product to within `f32` rounding (three
    /// roundings of 2^-24 and the nanosecond), never below its input, never above the cap
    /// (unless the input already was), and at the cap it stays.
    #[test]
    fn backoff_next_is_monotone_and_capped(
        delay_ns in any::<u64>(),
        cap_ns in 1u64..,
        multiplier in prop_oneof![Just(1.0f32), 1.0f32..1.000_001, 1.0f32..1e6, Just(f32::MAX)],
    ) {
        let backoff = RestartBackoff { multiplier, max: Duration::from_nanos(cap_ns) };
        let delay = Duration::from_nanos(delay_ns);
        let next = backoff.next(delay);
        let exact = model_next(delay, multiplier, backoff.max).as_nanos() as f64;
        let got = next.as_nanos() as f64;
        prop_assert!((got - exact).abs() <= 1.0 + exact * 3e-7, "{next:?} vs {exact}ns");
        prop_assert!(next >= delay);
        prop_assert!(next <= backoff.max.max(delay));
        prop_assert_eq!(backoff.next(backoff.max), backoff.max);
    }

    /// A kernel that stays healthy for a whole window after its last failure and restart gets
    /// its whole budget back: no restarts counted, no escalation, attempts and delays afresh.
    #[test]
    fn healthy_for_a_full_window_restores_the_budget(
        (policy, intensity) in config(),
        gaps in prop::collection::vec(0u64..20_000, 0..30),
    ) {
        prop_assume!(policy.strategy == RecoveryStrategy::RestartKernel);
        prop_assume!(intensity.window < Duration::from_secs(1 << 30));
        prop_assume!(policy.restart_delay < Duration::from_secs(1 << 30));
        let mut machine = Machine::new(policy, intensity);
        let window = duration_as_micros(intensity.window);
        let mut now = 0u64;
        let mut quiet_from = 0u64;
        let failed = !gaps.is_empty();
        for gap in gaps {
            now += gap;
            quiet_from = quiet_from.max(now);
            if let RecoveryAction::Restart { at, .. } = machine.on_failure(Instant::from_micros(now)) {
                quiet_from = quiet_from.max(at.as_micros());
            }
        }
        let was_escalated = machine.escalation();
        let attempts = machine.attempt();
        if failed {
            // One microsecond short of the window: nothing restored.
            prop_assert_eq!(machine.on_healthy(Instant::from_micros(quiet_from + window - 1)), None);
            prop_assert_eq!(machine.escalation(), was_escalated);
            prop_assert_eq!(machine.attempt(), attempts);
        }
        let healthy_at = Instant::from_micros(quiet_from + window);
        let restored = machine.on_healthy(healthy_at);
        match was_escalated {
            Some(escalation) => prop_assert_eq!(restored, Some(Recovered::FromEscalation(escalation))),
            None if attempts > 0 => prop_assert_eq!(restored, Some(Recovered::Budget)),
            None => prop_assert_eq!(restored, None),
        }
        prop_assert_eq!(machine.escalation(), None);
        prop_assert_eq!(machine.attempt(), 0);
        prop_assert_eq!(machine.restarts_in_window(healthy_at), 0);
        prop_assert_eq!(machine.remaining_restarts(healthy_at), policy.max_restarts);
        prop_assert_eq!(machine.next_restart_delay(), policy.restart_delay);
        prop_assert_eq!(
            machine.on_failure(healthy_at),
            RecoveryAction::Restart { at: healthy_at + policy.restart_delay, attempt: 1 }
        );
    }

    /// Nothing panics with extreme configurations and times, and the getters stay in range.
    #[test]
    fn extremes_never_panic(
        strategy in strategy(),
        max_restarts in 0u32..=CAP as u32 + 2,
        delay in prop_oneof![Just(Duration::ZERO), Just(Duration::MAX), any::<u64>().prop_map(Duration::from_micros)],
        window in prop_oneof![Just(Duration::MAX), Just(Duration::from_nanos(1)), any::<u64>().prop_map(Duration::from_micros)],
        backoff in prop::option::of((prop_oneof![Just(1.0f32), Just(f32::MAX), Just(f32::NAN), 0.0f32..10.0], any::<u64>())),
        escalation in prop::option::of(strategy()),
        times in prop::collection::vec(
            (prop_oneof![Just(0u64), Just(u64::MAX), Just(u64::MAX - 1), any::<u64>()], input()),
            1..60,
        ),
    ) {
        let policy = RecoveryPolicy { strategy, max_restarts, restart_delay: delay, escalation };
        let intensity = RestartIntensity {
            window,
            backoff: backoff.map(|(multiplier, max)| RestartBackoff { multiplier, max: Duration::from_micros(max) }),
        };
        let Ok(mut machine) = Machine::try_new(policy, intensity) else {
            return Ok(());
        };
        let mut model = Model::new(policy, intensity);
        for (t, input) in times {
            let now = Instant::from_micros(t);
            match input {
                Input::Failure => prop_assert_eq!(machine.on_failure(now), model.on_failure(t)),
                Input::Healthy => prop_assert_eq!(machine.on_healthy(now), model.on_healthy(t)),
                Input::Timeout => { machine.poll(now); model.clock(t); }
                Input::Reset => { machine.reset(); model.reset(); }
            }
            prop_assert!(machine.restarts_in_window(now) <= max_restarts);
            prop_assert!(machine.remaining_restarts(now) <= max_restarts);
            prop_assert_eq!(machine.poll_at(), model.poll_at());
        }
    }

    /// Validation refuses exactly the restart policies whose delays could never fit
    /// `max_restarts + 1` failures into the window, with a typed error.
    #[test]
    fn validation_refuses_exactly_unreachable_intensity(
        max_restarts in 1u32..=CAP as u32,
        delay_us in 0u64..100_000,
        window_us in 1u64..2_000_000,
        backoff in prop::option::of((1.0f32..3.0, 0u64..500_000)),
    ) {
        let policy = RecoveryPolicy {
            strategy: RecoveryStrategy::RestartKernel,
            max_restarts,
            restart_delay: Duration::from_micros(delay_us),
            escalation: None,
        };
        let backoff = backoff.map(|(multiplier, headroom)| RestartBackoff {
            multiplier,
            max: Duration::from_micros(delay_us.max(1) + headroom),
        });
        let intensity = RestartIntensity { window: Duration::from_micros(window_us), backoff };
        let result = Machine::try_new(policy, intensity).map(|_| ());
        if backoff.is_some() && delay_us == 0 {
            prop_assert_eq!(result, Err(ConfigError::Zero(ConfigField::RestartDelay)));
        } else if delay_span(&policy, backoff) >= u128::from(window_us) {
            prop_assert_eq!(result, Err(ConfigError::Exceeds {
                field: ConfigField::RestartDelay,
                limit: ConfigField::RestartWindow,
            }));
        } else {
            prop_assert_eq!(result, Ok(()));
        }
    }

    /// NaN, infinite and below-one multipliers are typed errors, never a machine.
    #[test]
    fn bad_multipliers_are_refused(
        multiplier in prop_oneof![Just(f32::NAN), Just(f32::INFINITY), Just(f32::NEG_INFINITY), -1e9f32..1.0],
    ) {
        let intensity = RestartIntensity {
            window: Duration::from_secs(3600),
            backoff: Some(RestartBackoff { multiplier, max: Duration::from_secs(60) }),
        };
        let expected = if multiplier.is_finite() {
            ConfigError::MultiplierBelowOne(ConfigField::RestartBackoffMultiplier)
        } else {
            ConfigError::NotFinite(ConfigField::RestartBackoffMultiplier)
        };
        prop_assert_eq!(intensity.validate(), Err(expected));
        prop_assert_eq!(Machine::try_new(RecoveryPolicy::default(), intensity).err(), Some(expected));
    }

    /// Policies, strategies, intensities and actions survive postcard.
    #[test]
    fn postcard_round_trips(
        strategy in strategy(),
        escalation in prop::option::of(strategy()),
        max_restarts in any::<u32>(),
        delay in any::<u64>(),
        nanos in 0u32..1_000_000_000,
        at in any::<u64>(),
        attempt in any::<u32>(),
        multiplier in any::<f32>(),
    ) {
        let policy = RecoveryPolicy {
            strategy,
            max_restarts,
            restart_delay: Duration::new(delay, nanos),
            escalation,
        };
        round_trip!(policy, RecoveryPolicy);
        round_trip!(strategy, RecoveryStrategy);
        let at = Instant::from_micros(at);
        let escalated = escalation.map_or(Escalation::GaveUp, Escalation::To);
        for action in [
            RecoveryAction::Restart { at, attempt },
            RecoveryAction::RestartPending { at, attempt },
            RecoveryAction::UseReplica,
            RecoveryAction::Degrade,
            RecoveryAction::Failover,
            RecoveryAction::NotifyOperator,
            RecoveryAction::Escalate(strategy),
            RecoveryAction::GiveUp,
            RecoveryAction::AlreadyEscalated(escalated),
        ] {
            round_trip!(action, RecoveryAction);
        }
        round_trip!(RecoveryState::Escalated { escalation: escalated, since: at }, RecoveryState);
        round_trip!(Recovered::FromEscalation(escalated), Recovered);
        if !multiplier.is_nan() {
            round_trip!(
                RestartIntensity {
                    window: Duration::new(delay, nanos),
                    backoff: Some(RestartBackoff { multiplier, max: Duration::from_micros(delay) }),
                },
                RestartIntensity
            );
        }
    }
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(256))]

    /// A ladder of one level is exactly its machine, and its directive is the one mapping of
    /// the machine's action.
    #[test]
    fn a_ladder_of_one_is_its_machine((policy, intensity) in config(), ops in ops(60)) {
        let mut machine = Machine::new(policy, intensity);
        let mut ladder: RecoveryLadder<1, CAP> = Machine::new(policy, intensity).into();
        let mut now = 0u64;
        for (time, input) in ops {
            now = step(now, time, &machine);
            let t = Instant::from_micros(now);
            match input {
                Input::Failure => {
                    let action = machine.on_failure(t);
                    let step = ladder.on_failure(t);
                    prop_assert_eq!(step.level, 0);
                    prop_assert_eq!(step.action, action);
                    let restart_at = if matches!(action, RecoveryAction::Escalate(_) | RecoveryAction::AlreadyEscalated(_)) {
                        // Only escalations to restarts use it.
                        match step.directive {
                            Directive::Restart { at, attempt: None } => at,
                            _ => Instant::ZERO,
                        }
                    } else {
                        Instant::ZERO
                    };
                    prop_assert_eq!(step.directive, Directive::for_action(action, restart_at));
                }
                Input::Healthy => prop_assert_eq!(ladder.on_healthy(t), machine.on_healthy(t)),
                Input::Timeout => {
                    machine.poll(t);
                    ladder.poll(t);
                }
                Input::Reset => {
                    machine.reset();
                    ladder.reset();
                }
            }
            prop_assert_eq!(ladder.poll_at(), machine.poll_at());
            prop_assert_eq!(ladder.healthy_at(), machine.healthy_at());
            prop_assert_eq!(ladder.escalation(), machine.escalation());
        }
    }

    /// `healthy_at` is exact for a ladder of two levels: a healthy report at that time restores
    /// something, one microsecond earlier nothing; and no level ever de-escalates while the
    /// current level has seen a failure (or a restart) within its own window.
    #[test]
    fn the_ladders_healthy_at_is_exact(
        (first, first_window) in config(),
        (second, second_window) in config(),
        ops in ops(60),
    ) {
        let levels = [Machine::new(first, first_window), Machine::new(second, second_window)];
        let mut ladder: RecoveryLadder<2, CAP> = RecoveryLadder::new(levels);
        let mut now = 0u64;
        let mut latest = 0u64;
        for (time, input) in ops {
            now = match time {
                Time::PollAt => ladder.poll_at().map_or(now, Instant::as_micros),
                Time::Forward(d) => now.saturating_add(d),
                Time::Backward(d) => now.saturating_sub(d),
                Time::At(t) => t,
            };
            latest = latest.max(now);
            let t = Instant::from_micros(now);
            match input {
                Input::Failure => { let _ = ladder.on_failure(t); }
                Input::Healthy => {
                    let before = ladder.clone();
                    let restored = ladder.on_healthy(t);
                    if restored.is_some() {
                        let due = before.healthy_at();
                        prop_assert!(due.is_some_and(|due| due.as_micros() <= latest), "{due:?} {latest}");
                    }
                }
                Input::Timeout => ladder.poll(t),
                Input::Reset => ladder.reset(),
            }
            match ladder.healthy_at() {
                Some(due) if due.as_micros() > latest => {
                    let mut early = ladder.clone();
                    prop_assert_eq!(early.on_healthy(Instant::from_micros(due.as_micros() - 1)), None);
                    let mut on_time = ladder.clone();
                    prop_assert!(on_time.on_healthy(due).is_some(), "nothing restored at {due:?}");
                }
                // Already due: a healthy report now restores something (no busy timer).
                Some(due) => {
                    let mut late = ladder.clone();
                    prop_assert!(late.on_healthy(Instant::from_micros(latest)).is_some(), "nothing restored after {due:?}");
                }
                None => {
                    let mut never = ladder.clone();
                    prop_assert_eq!(never.on_healthy(Instant::MAX), None);
                }
            }
        }
    }
}

/// The chapter's literal, through the chapter's paths.
#[test]
fn chapter_literal_compiles_and_validates() {
    let policy = RecoveryPolicy {
        strategy: RecoveryStrategy::RestartKernel,
        max_restarts: 3,
        restart_delay: Duration::from_secs(5),
        escalation: Some(RecoveryStrategy::NotifyOperator),
    };
    assert_eq!(policy.validate(), Ok(()));
    assert_eq!(policy, RecoveryPolicy::default());
    let machine: Recovery = Recovery::new(policy, RestartIntensity::default());
    assert_eq!(machine.remaining_restarts(Instant::ZERO), 3);
}
