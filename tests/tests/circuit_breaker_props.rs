//! Property tests of the circuit breaker against a small reference model.
//!
//! The model keeps what the module docs describe in the plainest form: the window is a `Vec` of
//! outcomes, a cycle is a `u64` count of transitions, the probes of a half-open cycle are the
//! outstanding permits of that cycle, and time is `u64` microseconds with `u128` arithmetic.
//! Random sequences of acquisitions, reports (of any outstanding permit, stale ones included),
//! polls and operator controls run through both, on a clock that stays, steps forward, jumps to
//! the next timer, goes backwards and sits at `Instant::MAX`. After every step the state, the
//! returned transitions and rejections, the stats, the window counts and `poll_at` must agree.
//!
//! The harness also checks, from the real breaker's own observations only:
//! 1. a half-open breaker never has more than `half_open_max_calls` unsettled probes of its
//!    current cycle (a permit's cycle is the breaker's transition count when it was issued);
//! 2. a report with a stale permit changes no state: the breaker ends where `poll(now)` alone
//!    would take it, and only the counters move;
//! 3. a half-open cycle ends at `since + max_wait_in_half_open`, not a microsecond earlier,
//!    and never when that sum saturates at `Instant::MAX` (a saturated deadline means "never").
//!
//! Open times in the model are exact (`timeout * multiplier^n` in `u128` nanoseconds, capped),
//! so lockstep configs use integer multipliers and whole-microsecond timers; the core computes
//! open times in integers from the multiplier's exact binary value and keeps `Instant`s in
//! whole microseconds.

use core::time::Duration;
use std::collections::HashSet;

use proptest::prelude::*;
use proptest::sample::Index;
use proptest::strategy::ValueTree;
use proptest::test_runner::TestRunner;
use rustkernel_core::error::{ConfigError, ConfigField, ErrorKind, ErrorKindSet};
use rustkernel_core::resilience::circuit_breaker::{SlidingWindow, WindowCounts};
use rustkernel_core::resilience::{
    CircuitBreaker, CircuitBreakerConfig, CircuitBreakerStats, CircuitState, CountWindow, NoWindow,
    OpenBackoff, OpenReason, Permit, Rejected, Transition, Trip,
};
use rustkernel_core::time::Instant;

use CircuitState::{Closed, Disabled, ForcedOpen, HalfOpen, MetricsOnly, Open};

// ---------- reference model ----------

/// How a call ended, as the caller reports it.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Report {
    Success,
    Failure(ErrorKind),
    Cancelled,
}

/// A permit as the model sees it.
#[derive(Clone, Copy, Debug)]
struct ModelPermit {
    cycle: u64,
    acquired_at: u64,
}

/// `at + d` in whole microseconds (sub-microsecond parts dropped), clamped to the last instant.
fn after(at: u64, d: Duration) -> u64 {
    u64::try_from(u128::from(at) + d.as_micros()).unwrap_or(u64::MAX)
}

/// Whether a timer ending at `deadline` has fired at `now`; the last instant is "never".
fn reached(deadline: u64, now: u64) -> bool {
    deadline != u64::MAX && now >= deadline
}

const NANOS_PER_SEC: u128 = 1_000_000_000;

fn from_nanos(nanos: u128) -> Duration {
    let secs = u64::try_from(nanos / NANOS_PER_SEC).expect("at most Duration::MAX");
    let subsec = u32::try_from(nanos % NANOS_PER_SEC).expect("below a second");
    Duration::new(secs, subsec)
}

#[derive(Clone, Debug)]
struct Model {
    config: CircuitBreakerConfig,
    /// The exact `open_backoff` multiplier (`u128::MAX` stands for "beyond any cap").
    multiplier: u128,
    capacity: usize,
    state: CircuitState,
    cycle: u64,
    open_until: u64,
    half_open_since: u64,
    /// The cycle of every outstanding permit.
    outstanding: Vec<u64>,
    probe_successes: u32,
    /// `(failed, slow)` of the probes of this half-open cycle that reported (deciding by rate).
    probes: Vec<(bool, bool)>,
    reopens: u32,
    /// `(failed, slow)` of the last `capacity` closed-state outcomes, oldest first.
    window: Vec<(bool, bool)>,
    consecutive: u32,
    successes: u64,
    failures: u64,
    rejected: u64,
    slow_successes: u64,
    slow_failures: u64,
    /// Why it is not closed (metrics-only: why it last would have opened).
    trip: Option<Trip>,
    would_open: u64,
}

impl Model {
    fn new(config: CircuitBreakerConfig, multiplier: u128, capacity: u32) -> Self {
        Self {
            config,
            multiplier,
            capacity: usize::try_from(capacity).expect("small window"),
            state: Closed,
            cycle: 0,
            open_until: 0,
            half_open_since: 0,
            outstanding: Vec::new(),
            probe_successes: 0,
            probes: Vec::new(),
            reopens: 0,
            window: Vec::new(),
            consecutive: 0,
            successes: 0,
            failures: 0,
            rejected: 0,
            slow_successes: 0,
            slow_failures: 0,
            trip: None,
            would_open: 0,
        }
    }

    fn windowed(&self) -> bool {
        self.config.failure_rate_threshold.is_some() || self.config.slow_call_duration.is_some()
    }

    fn enter(&mut self, to: CircuitState) -> Option<Transition> {
        let from = self.state;
        if from == to {
            return None;
        }
        self.state = to;
        self.cycle += 1;
        let trip = match to {
            Open | ForcedOpen => self.trip,
            HalfOpen => None,
            Closed | Disabled | MetricsOnly => {
                self.trip = None;
                None
            }
        };
        Some(Transition { from, to, trip })
    }

    /// `timeout * multiplier^reopens`, capped at the backoff's max.
    fn open_time(&self) -> Duration {
        let Some(backoff) = self.config.open_backoff else {
            return self.config.timeout;
        };
        let cap = backoff.max.as_nanos();
        let mut nanos = self.config.timeout.as_nanos();
        for _ in 0..self.reopens {
            nanos = nanos.saturating_mul(self.multiplier).min(cap);
        }
        from_nanos(nanos)
    }

    fn trip(&mut self, now: u64, trip: Trip) -> Option<Transition> {
        if self.state == HalfOpen {
            self.reopens += 1;
        }
        self.open_until = after(now, self.open_time());
        self.window.clear();
        self.consecutive = 0;
        self.trip = Some(trip);
        self.enter(Open)
    }

    /// A half-open cycle's figures: its good probes, plus the bad one if any; deciding by rate,
    /// the probes that reported and how many of them failed or were slow.
    fn probe_trip(&self, reason: OpenReason, failed: bool, slow: bool) -> Trip {
        if self.config.half_open_permitted_calls.is_some() {
            let count = |pick: fn(&(bool, bool)) -> bool| {
                u32::try_from(self.probes.iter().filter(|p| pick(p)).count()).expect("few")
            };
            return Trip {
                reason,
                calls: count(|_| true),
                failures: count(|p| p.0),
                slow: count(|p| p.1),
                consecutive_failures: 0,
            };
        }
        Trip {
            reason,
            calls: self.probe_successes + u32::from(failed || slow),
            failures: u32::from(failed),
            slow: u32::from(slow),
            consecutive_failures: u32::from(failed),
        }
    }

    fn close(&mut self) -> Option<Transition> {
        self.window.clear();
        self.consecutive = 0;
        self.probe_successes = 0;
        self.probes.clear();
        self.enter(Closed)
    }

    fn timers(&mut self, now: u64) -> Option<Transition> {
        match self.state {
            Open if reached(self.open_until, now) => {
                self.probe_successes = 0;
                self.probes.clear();
                self.half_open_since = now;
                self.enter(HalfOpen)
            }
            HalfOpen
                if reached(
                    after(self.half_open_since, self.config.max_wait_in_half_open),
                    now,
                ) =>
            {
                let trip = self.probe_trip(OpenReason::HalfOpenTimeout, false, false);
                self.trip(now, trip)
            }
            _ => None,
        }
    }

    fn live_probes(&self) -> usize {
        self.outstanding
            .iter()
            .filter(|&&cycle| cycle == self.cycle)
            .count()
    }

    fn acquire(&mut self, now: u64) -> Result<(ModelPermit, Option<Transition>), Rejected> {
        let transition = self.timers(now);
        let admitted = match self.state {
            Closed | Disabled | MetricsOnly => true,
            HalfOpen => {
                let live = u64::try_from(self.live_probes()).expect("few permits");
                // Deciding by rate: the cycle's admissions, reported or not, up to the permitted.
                let admitted = live + u64::try_from(self.probes.len()).expect("few probes");
                live < u64::from(self.config.half_open_max_calls)
                    && self
                        .config
                        .half_open_permitted_calls
                        .is_none_or(|permitted| admitted < u64::from(permitted))
            }
            Open | ForcedOpen => false,
        };
        if admitted {
            self.outstanding.push(self.cycle);
            Ok((
                ModelPermit {
                    cycle: self.cycle,
                    acquired_at: now,
                },
                transition,
            ))
        } else {
            self.rejected += 1;
            Err(Rejected {
                state: self.state,
                retry_at: (self.state == Open).then_some(Instant::from_micros(self.open_until)),
                transition,
            })
        }
    }

    fn is_slow(&self, report: Report, permit: ModelPermit, now: u64) -> bool {
        // Failures and successes alike (Resilience4j counts a slow failure as both).
        report != Report::Cancelled
            && self.config.slow_call_duration.is_some_and(|limit| {
                u128::from(now.saturating_sub(permit.acquired_at)) * 1_000 >= limit.as_nanos()
            })
    }

    /// What a report counts as: ignored error kinds count as nothing, like a cancellation.
    fn counted(&self, report: Report) -> Report {
        match report {
            Report::Failure(kind) if self.config.ignored_errors.contains(kind) => Report::Cancelled,
            other => other,
        }
    }

    fn settle(&mut self, permit: ModelPermit, report: Report, now: u64) -> Option<Transition> {
        if let Some(i) = self.outstanding.iter().position(|&c| c == permit.cycle) {
            self.outstanding.swap_remove(i);
        }
        let report = self.counted(report);
        let slow = self.is_slow(report, permit, now);
        match report {
            Report::Success => self.successes += 1,
            Report::Failure(_) => self.failures += 1,
            Report::Cancelled => {}
        }
        if slow {
            if report == Report::Success {
                self.slow_successes += 1;
            } else {
                self.slow_failures += 1;
            }
        }
        if let Some(transition) = self.timers(now) {
            return Some(transition);
        }
        if permit.cycle != self.cycle || report == Report::Cancelled {
            return None;
        }
        let failed = report != Report::Success;
        match self.state {
            Closed | MetricsOnly => self.record(failed, slow, now),
            HalfOpen if self.config.half_open_permitted_calls.is_some() => {
                self.probes.push((failed, slow));
                match self.rate_decision() {
                    Some(true) => {
                        let trip = self.probe_trip(OpenReason::ProbeFailed, failed, slow);
                        self.trip(now, trip)
                    }
                    Some(false) => {
                        self.reopens = 0;
                        self.close()
                    }
                    None => None,
                }
            }
            HalfOpen if failed || slow => {
                let trip = self.probe_trip(OpenReason::ProbeFailed, failed, slow);
                self.trip(now, trip)
            }
            HalfOpen => {
                self.probe_successes += 1;
                if self.probe_successes >= self.config.success_threshold {
                    self.reopens = 0;
                    self.close()
                } else {
                    None
                }
            }
            _ => None,
        }
    }

    /// Resilience4j's rule once every permitted probe reported (open when the failure rate or
    /// the slow-call rate over them reaches its threshold), taken as soon as it is the same for
    /// every way the probes still to report could end: `Some(true)` open, `Some(false)` close,
    /// `None` not yet known. Tried on every completion, by brute force.
    fn rate_decision(&self) -> Option<bool> {
        let permitted = self.config.half_open_permitted_calls.expect("by rate");
        let left = usize::try_from(permitted).expect("small") - self.probes.len();
        let failures = self.probes.iter().filter(|p| p.0).count();
        let slow = self.probes.iter().filter(|p| p.1).count();
        #[allow(clippy::cast_precision_loss, reason = "probe counts are small")]
        let share = |n: usize| n as f32 / permitted as f32;
        let opens = |failures: usize, slow: usize| {
            self.config
                .failure_rate_threshold
                .is_some_and(|rate| share(failures) >= rate)
                || (self.config.slow_call_duration.is_some()
                    && share(slow) >= self.config.slow_call_rate_threshold)
        };
        let mut endings = HashSet::new();
        // Each probe still to report may fail or not, and be slow or not.
        for more_failures in 0..=left {
            for more_slow in 0..=left {
                endings.insert(opens(failures + more_failures, slow + more_slow));
            }
        }
        match endings.len() {
            1 => endings.into_iter().next(),
            _ => None,
        }
    }

    fn counts(&self) -> WindowCounts {
        let count = |pick: fn(&(bool, bool)) -> bool| {
            u32::try_from(self.window.iter().filter(|o| pick(o)).count()).expect("small window")
        };
        WindowCounts {
            calls: count(|_| true),
            failures: count(|o| o.0),
            slow: count(|o| o.1),
        }
    }

    fn record(&mut self, failed: bool, slow: bool, now: u64) -> Option<Transition> {
        self.consecutive = if failed {
            self.consecutive.saturating_add(1)
        } else {
            0
        };
        if self.windowed() {
            self.window.push((failed, slow));
            if self.window.len() > self.capacity {
                self.window.remove(0);
            }
        }
        let counts = self.counts();
        let enough = counts.calls >= self.config.minimum_calls;
        // The share as an f32 division computes it (one rounding; counts this small convert
        // exactly), so a threshold of k/n or a decimal like 0.3 is reached at exactly k of n.
        #[allow(clippy::cast_precision_loss, reason = "window counts are small")]
        let share = |n: u32| n as f32 / counts.calls as f32;
        let by_failures = match self.config.failure_rate_threshold {
            Some(rate) => enough && share(counts.failures) >= rate,
            None => self.consecutive >= self.config.failure_threshold,
        };
        let by_slow = self.config.slow_call_duration.is_some()
            && enough
            && share(counts.slow) >= self.config.slow_call_rate_threshold;
        let reason = match (by_failures, by_slow) {
            (true, _) if self.config.failure_rate_threshold.is_some() => OpenReason::FailureRate,
            (true, _) => OpenReason::ConsecutiveFailures,
            (false, true) => OpenReason::SlowCallRate,
            (false, false) => return None,
        };
        let trip = Trip {
            reason,
            calls: counts.calls,
            failures: counts.failures,
            slow: counts.slow,
            consecutive_failures: self.consecutive,
        };
        if self.state == MetricsOnly {
            self.would_open += 1;
            self.trip = Some(trip);
            self.window.clear();
            self.consecutive = 0;
            return Some(Transition {
                from: MetricsOnly,
                to: MetricsOnly,
                trip: Some(trip),
            });
        }
        self.trip(now, trip)
    }

    fn force_open(&mut self) -> Option<Transition> {
        if self.state != ForcedOpen {
            let counts = self.counts();
            self.trip = Some(Trip {
                reason: OpenReason::Forced,
                calls: counts.calls,
                failures: counts.failures,
                slow: counts.slow,
                consecutive_failures: self.consecutive,
            });
        }
        self.enter(ForcedOpen)
    }

    fn metrics_only(&mut self) -> Option<Transition> {
        if self.state == MetricsOnly {
            return None;
        }
        self.window.clear();
        self.consecutive = 0;
        self.probe_successes = 0;
        self.enter(MetricsOnly)
    }

    fn disable(&mut self) -> Option<Transition> {
        self.enter(Disabled)
    }

    fn reset(&mut self) -> Option<Transition> {
        self.reopens = 0;
        self.close()
    }

    fn poll_at(&self) -> Option<u64> {
        match self.state {
            Open => Some(self.open_until),
            HalfOpen => Some(after(
                self.half_open_since,
                self.config.max_wait_in_half_open,
            )),
            _ => None,
        }
    }

    #[allow(
        clippy::cast_precision_loss,
        reason = "a rate needs no more than f64 precision"
    )]
    fn stats(&self) -> CircuitBreakerStats {
        let finished = self.successes + self.failures;
        CircuitBreakerStats {
            state: self.state,
            failure_count: self.failures,
            success_count: self.successes,
            rejected_count: self.rejected,
            slow_call_count: self.slow_successes + self.slow_failures,
            slow_success_count: self.slow_successes,
            slow_failure_count: self.slow_failures,
            consecutive_failures: self.consecutive,
            transitions: u32::try_from(self.cycle).expect("fewer than 2^32 transitions"),
            success_rate: if finished == 0 {
                1.0
            } else {
                self.successes as f64 / finished as f64
            },
            trip: self.trip,
            would_open_count: self.would_open,
        }
    }
}

// ---------- harness ----------

/// A clock move before an operation.
#[derive(Clone, Copy, Debug)]
enum Step {
    Stay,
    Forward(u64),
    Back(u64),
    /// To the next timer, if any.
    ToPollAt,
    /// One microsecond before the next timer, if any.
    BeforePollAt,
    /// To `Instant::MAX` minus this many microseconds.
    NearMax(u64),
    /// To this instant (from near the end, a jump far back).
    To(u64),
}

#[derive(Clone, Copy, Debug)]
enum Op {
    Acquire(Step),
    /// Reports on the outstanding permit at this index (an acquisition when there is none).
    Report(Index, Report, Step),
    Poll(Step),
    ForceOpen,
    Disable,
    MetricsOnly,
    Reset,
}

/// An outstanding permit, on both sides, with the real breaker's transition count at issue.
#[derive(Debug)]
struct Live {
    real: Permit,
    model: ModelPermit,
    tag: u32,
}

/// What a run went through, so a test can show that the generators reach every path.
#[derive(Debug, Default)]
struct Seen {
    transitions: HashSet<(CircuitState, CircuitState)>,
    stale_reports: usize,
    stale_reports_with_timer: usize,
    full_half_open: usize,
    max_wait_trips: usize,
    slow_calls: u64,
    rate_trips: usize,
    backwards: usize,
    near_max: usize,
    would_open: usize,
    /// Half-open cycles decided by rate: closed, opened with some probes still to report.
    closed_by_rate: usize,
    opened_by_rate_early: usize,
}

struct Run<W> {
    cb: CircuitBreaker<CircuitBreakerConfig, W>,
    model: Model,
    now: u64,
    live: Vec<Live>,
    half_open_since: Option<u64>,
    seen: Seen,
}

fn fail(message: String) -> TestCaseError {
    TestCaseError::fail(message)
}

impl<W: SlidingWindow + Clone> Run<W> {
    fn new(
        config: CircuitBreakerConfig,
        multiplier: u128,
        window: W,
    ) -> Result<Self, TestCaseError> {
        let cb = CircuitBreaker::try_with_window(config, window)?;
        Ok(Self {
            cb,
            model: Model::new(config, multiplier, W::CAPACITY),
            now: 0,
            live: Vec::new(),
            half_open_since: None,
            seen: Seen::default(),
        })
    }

    fn at(&self) -> Instant {
        Instant::from_micros(self.now)
    }

    fn advance(&mut self, step: Step) {
        let before = self.now;
        self.now = match step {
            Step::Stay => self.now,
            Step::Forward(d) => self.now.saturating_add(d),
            Step::Back(d) => self.now.saturating_sub(d),
            Step::ToPollAt => self.model.poll_at().unwrap_or(self.now),
            Step::BeforePollAt => self
                .model
                .poll_at()
                .map_or(self.now, |t| t.saturating_sub(1)),
            Step::NearMax(d) => u64::MAX - d,
            Step::To(t) => t,
        };
        if self.now < before {
            self.seen.backwards += 1;
        }
        if self.now > u64::MAX - 1_000 {
            self.seen.near_max += 1;
        }
    }

    fn observe(&mut self, transition: Option<Transition>) {
        if let Some(t) = transition {
            self.seen.transitions.insert((t.from, t.to));
            if t.to == HalfOpen {
                self.half_open_since = Some(self.now);
            }
        }
    }

    fn run(&mut self, ops: &[Op]) -> Result<(), TestCaseError> {
        for op in ops {
            self.apply(*op)?;
            self.check()?;
        }
        Ok(())
    }

    fn apply(&mut self, op: Op) -> Result<(), TestCaseError> {
        match op {
            Op::Acquire(step) => {
                self.advance(step);
                self.acquire()
            }
            Op::Report(index, report, step) => {
                self.advance(step);
                if self.live.is_empty() {
                    self.acquire()
                } else {
                    let entry = self.live.swap_remove(index.index(self.live.len()));
                    self.report(entry, report)
                }
            }
            Op::Poll(step) => {
                self.advance(step);
                let got = self.cb.poll(self.at());
                prop_assert_eq!(got, self.model.timers(self.now));
                if got.is_some_and(|t| t.from == HalfOpen) {
                    self.seen.max_wait_trips += 1;
                }
                self.observe(got);
                Ok(())
            }
            Op::ForceOpen => {
                let got = self.cb.force_open();
                prop_assert_eq!(got, self.model.force_open());
                self.observe(got);
                Ok(())
            }
            Op::Disable => {
                let got = self.cb.disable();
                prop_assert_eq!(got, self.model.disable());
                self.observe(got);
                Ok(())
            }
            Op::MetricsOnly => {
                let got = self.cb.metrics_only();
                prop_assert_eq!(got, self.model.metrics_only());
                if got.is_some_and(|t| t.would_open()) {
                    self.seen.would_open += 1;
                }
                self.observe(got);
                Ok(())
            }
            Op::Reset => {
                let got = self.cb.reset();
                prop_assert_eq!(got, self.model.reset());
                self.observe(got);
                Ok(())
            }
        }
    }

    fn acquire(&mut self) -> Result<(), TestCaseError> {
        let at = self.at();
        match (self.cb.try_acquire(at), self.model.acquire(self.now)) {
            (Ok(permit), Ok((model, transition))) => {
                prop_assert_eq!(permit.transition(), transition);
                prop_assert_eq!(permit.acquired_at(), at);
                self.observe(transition);
                let tag = self.cb.stats().transitions;
                self.live.push(Live {
                    real: permit,
                    model,
                    tag,
                });
            }
            (Err(rejected), Err(model)) => {
                prop_assert_eq!(rejected, model);
                if rejected.state == HalfOpen {
                    self.seen.full_half_open += 1;
                }
                if rejected.transition.is_some() {
                    self.seen.max_wait_trips += 1;
                }
                self.observe(rejected.transition);
            }
            (got, want) => return Err(fail(format!("real {got:?}, model {want:?}"))),
        }
        Ok(())
    }

    fn report(&mut self, entry: Live, report: Report) -> Result<(), TestCaseError> {
        let at = self.at();
        let before = self.cb.clone();
        let stale = entry.tag != before.stats().transitions;
        prop_assert_eq!(stale, entry.model.cycle != self.model.cycle);
        let mut timers_only = self.cb.clone();
        let timer = timers_only.poll(at);
        let window_before = self.cb.window_counts();

        let got = match report {
            Report::Success => self.cb.on_success(entry.real, at),
            Report::Failure(kind) => self.cb.on_failure(entry.real, kind, at),
            Report::Cancelled => self.cb.on_cancelled(entry.real, at),
        };
        let counted = self.model.counted(report);
        let slow = self.model.is_slow(counted, entry.model, self.now);
        let want = self.model.settle(entry.model, report, self.now);
        prop_assert_eq!(got, want);
        if slow {
            self.seen.slow_calls += 1;
        }
        if got.is_some_and(|t| t.from == HalfOpen && timer.is_some()) {
            self.seen.max_wait_trips += 1;
        }
        if got.is_some_and(|t| t.would_open()) {
            self.seen.would_open += 1;
        }
        if edge(got) == Some(OPENED) && window_before.calls > 0 {
            self.seen.rate_trips += 1;
        }
        if let Some(permitted) = self.cb.config().half_open_permitted_calls {
            match got {
                Some(t) if t.from == HalfOpen && t.to == Closed => self.seen.closed_by_rate += 1,
                Some(Transition {
                    from: HalfOpen,
                    to: Open,
                    trip: Some(trip),
                }) if trip.reason == OpenReason::ProbeFailed && trip.calls < permitted => {
                    self.seen.opened_by_rate_early += 1;
                }
                _ => {}
            }
        }
        self.observe(got);

        if stale {
            // Property 2: the breaker ends where the timers alone take it; only counters move.
            self.seen.stale_reports += 1;
            if timer.is_some() {
                self.seen.stale_reports_with_timer += 1;
            }
            prop_assert_eq!(got, timer);
            prop_assert_eq!(self.cb.state(), timers_only.state());
            prop_assert_eq!(self.cb.poll_at(), timers_only.poll_at());
            prop_assert_eq!(self.cb.window_counts(), timers_only.window_counts());
            if timer.is_none() {
                prop_assert_eq!(self.cb.state(), before.state());
                prop_assert_eq!(self.cb.poll_at(), before.poll_at());
            }
            let (after, alone) = (self.cb.stats(), timers_only.stats());
            prop_assert_eq!(after.transitions, alone.transitions);
            prop_assert_eq!(after.consecutive_failures, alone.consecutive_failures);
            prop_assert_eq!(after.rejected_count, alone.rejected_count);
            prop_assert_eq!(
                after.success_count - alone.success_count,
                u64::from(counted == Report::Success)
            );
            prop_assert_eq!(
                after.failure_count - alone.failure_count,
                u64::from(matches!(counted, Report::Failure(_)))
            );
            prop_assert_eq!(
                after.slow_call_count - alone.slow_call_count,
                u64::from(slow)
            );
        }
        Ok(())
    }

    fn check(&self) -> Result<(), TestCaseError> {
        let cb = &self.cb;
        prop_assert_eq!(cb.state(), self.model.state);
        prop_assert_eq!(cb.poll_at(), self.model.poll_at().map(Instant::from_micros));
        prop_assert_eq!(cb.stats(), self.model.stats());
        prop_assert_eq!(cb.window_counts(), self.model.counts());
        let cycle = cb.stats().transitions;
        if cb.state() == HalfOpen {
            // Property 1: at most `half_open_max_calls` unsettled probes of this cycle.
            let probes = self.live.iter().filter(|l| l.tag == cycle).count();
            prop_assert!(
                u64::try_from(probes).expect("few") <= u64::from(cb.config().half_open_max_calls),
                "{} probes in flight",
                probes
            );
            prop_assert_eq!(probes, self.model.live_probes());
            // Property 3: the cycle ends at since + max_wait, not a microsecond earlier, and
            // never when that saturates.
            let since = self
                .half_open_since
                .ok_or_else(|| fail("half-open without an observed transition".into()))?;
            let end = Instant::from_micros(since) + cb.config().max_wait_in_half_open;
            prop_assert_eq!(cb.poll_at(), Some(end));
            let mut probe = cb.clone();
            prop_assert_eq!(probe.poll(end - Duration::from_micros(1)), None);
            let ends = (end != Instant::MAX).then_some(HALF_OPEN_FAILED);
            let ended = probe.poll(end);
            prop_assert_eq!(edge(ended), ends);
            if ended.is_some() {
                prop_assert_eq!(
                    ended.and_then(|t| t.trip).map(|trip| trip.reason),
                    Some(OpenReason::HalfOpenTimeout)
                );
            }
        }
        Ok(())
    }
}

const OPENED: (CircuitState, CircuitState) = (Closed, Open);

const HALF_OPEN_FAILED: (CircuitState, CircuitState) = (HalfOpen, Open);

/// A transition's states, without its trip figures.
fn edge(transition: Option<Transition>) -> Option<(CircuitState, CircuitState)> {
    transition.map(|t| (t.from, t.to))
}

/// Every serde type of the breaker survives postcard.
fn round_trips<W: SlidingWindow>(
    cb: &CircuitBreaker<CircuitBreakerConfig, W>,
) -> Result<(), TestCaseError> {
    let mut buf = [0u8; 128];
    let config = *cb.config();
    let bytes = postcard::to_slice(&config, &mut buf).expect("fits");
    prop_assert_eq!(
        postcard::from_bytes::<CircuitBreakerConfig>(bytes).expect("decodes"),
        config
    );
    let stats = cb.stats();
    let bytes = postcard::to_slice(&stats, &mut buf).expect("fits");
    prop_assert_eq!(
        postcard::from_bytes::<CircuitBreakerStats>(bytes).expect("decodes"),
        stats
    );
    let rejected = Rejected {
        state: cb.state(),
        retry_at: cb.poll_at(),
        transition: Some(Transition::new(cb.state(), Disabled)),
    };
    let bytes = postcard::to_slice(&rejected, &mut buf).expect("fits");
    prop_assert_eq!(
        postcard::from_bytes::<Rejected>(bytes).expect("decodes"),
        rejected
    );
    Ok(())
}

// ---------- strategies ----------

/// `(config, exact open-backoff multiplier)`.
type Setup = (CircuitBreakerConfig, u128);

fn micros(range: core::ops::RangeInclusive<u64>) -> impl Strategy<Value = Duration> + Clone {
    range.prop_map(Duration::from_micros)
}

fn ignored_errors() -> impl Strategy<Value = ErrorKindSet> {
    // Each kind ignored with probability 1/4.
    (any::<u8>(), any::<u8>()).prop_map(|(a, b)| {
        ErrorKind::ALL
            .into_iter()
            .enumerate()
            .filter(|(i, _)| ((a & b) >> i) & 1 == 1)
            .map(|(_, kind)| kind)
            .collect()
    })
}

fn consecutive_setup() -> impl Strategy<Value = Setup> {
    (
        1u32..=5,
        1u32..=5,
        micros(1..=40),
        prop_oneof![2 => Just(1u32), 1 => 2u32..=4],
        micros(1..=60),
        prop::option::of((1u16..=3, 0u64..=100)),
        ignored_errors(),
    )
        .prop_map(
            |(
                failure_threshold,
                success_threshold,
                timeout,
                half_open_max_calls,
                wait,
                backoff,
                ignored,
            )| {
                let config = CircuitBreakerConfig {
                    failure_threshold,
                    success_threshold,
                    timeout,
                    half_open_max_calls,
                    max_wait_in_half_open: wait,
                    open_backoff: backoff.map(|(m, extra)| OpenBackoff {
                        multiplier: f32::from(m),
                        max: timeout.saturating_add(Duration::from_micros(extra)),
                    }),
                    ignored_errors: ignored,
                    ..CircuitBreakerConfig::default()
                };
                (config, backoff.map_or(1, |(m, _)| u128::from(m)))
            },
        )
}

fn rate() -> impl Strategy<Value = f32> {
    prop_oneof![
        3 => (1u8..=8).prop_map(|k| f32::from(k) / 8.0),
        1 => 0.01f32..=1.0,
    ]
}

fn slow_duration() -> impl Strategy<Value = Duration> {
    prop_oneof![
        3 => micros(1..=20),
        1 => (0u64..=20, 1u64..1_000)
            .prop_map(|(us, ns)| Duration::from_micros(us) + Duration::from_nanos(ns)),
    ]
}

fn windowed_setup(capacity: u32) -> impl Strategy<Value = Setup> {
    (
        consecutive_setup(),
        prop::option::weighted(0.8, rate()),
        1..=capacity,
        prop::option::weighted(0.4, slow_duration()),
        rate(),
        prop::option::weighted(0.4, 1u32..=6),
    )
        .prop_map(
            |((config, multiplier), rate, minimum_calls, slow, slow_rate, permitted)| {
                let config = CircuitBreakerConfig {
                    failure_rate_threshold: rate,
                    minimum_calls,
                    slow_call_duration: slow,
                    slow_call_rate_threshold: slow_rate,
                    // Deciding by rate needs a failure-rate threshold.
                    half_open_permitted_calls: permitted.filter(|_| rate.is_some()),
                    ..config
                };
                (config, multiplier)
            },
        )
}

/// A rate-mode breaker whose half-open cycles decide by rate over 1 to 6 probes, up to 4 at a
/// time, and last long enough for them to report.
fn by_rate_setup(capacity: u32) -> impl Strategy<Value = Setup> {
    (
        windowed_setup(capacity),
        rate(),
        1u32..=6,
        1u32..=4,
        micros(100..=2_000),
    )
        .prop_map(|((config, multiplier), rate, permitted, at_once, wait)| {
            let config = CircuitBreakerConfig {
                failure_rate_threshold: Some(config.failure_rate_threshold.unwrap_or(rate)),
                half_open_permitted_calls: Some(permitted),
                half_open_max_calls: at_once,
                max_wait_in_half_open: wait,
                ..config
            };
            (config, multiplier)
        })
}

/// Clock moves that mostly stay inside a half-open cycle, and jump to the end of an open time.
fn probe_step() -> BoxedStrategy<Step> {
    prop_oneof![
        6 => Just(Step::Stay),
        3 => (1u64..=5).prop_map(Step::Forward),
        2 => Just(Step::ToPollAt),
        1 => (1u64..=5).prop_map(Step::Back),
    ]
    .boxed()
}

fn step() -> BoxedStrategy<Step> {
    prop_oneof![
        3 => Just(Step::Stay),
        6 => (1u64..=20).prop_map(Step::Forward),
        2 => (20u64..=200).prop_map(Step::Forward),
        1 => (1u64..=100).prop_map(Step::Back),
        2 => Just(Step::ToPollAt),
        1 => Just(Step::BeforePollAt),
        1 => (0u64..=50).prop_map(Step::NearMax),
        1 => (0u64..=100).prop_map(Step::To),
    ]
    .boxed()
}

/// Steps that spend more time at the end of the clock and jump across it.
fn extreme_step() -> BoxedStrategy<Step> {
    prop_oneof![
        2 => Just(Step::Stay),
        3 => (1u64..=20).prop_map(Step::Forward),
        1 => any::<u64>().prop_map(Step::Forward),
        1 => any::<u64>().prop_map(Step::Back),
        2 => Just(Step::ToPollAt),
        1 => Just(Step::BeforePollAt),
        3 => (0u64..=3).prop_map(Step::NearMax),
        1 => any::<u64>().prop_map(Step::To),
    ]
    .boxed()
}

fn report() -> impl Strategy<Value = Report> {
    prop_oneof![
        5 => Just(Report::Success),
        5 => prop::sample::select(ErrorKind::ALL.to_vec()).prop_map(Report::Failure),
        1 => Just(Report::Cancelled),
    ]
}

fn ops(step: BoxedStrategy<Step>) -> impl Strategy<Value = Vec<Op>> {
    let op = prop_oneof![
        8 => step.clone().prop_map(Op::Acquire),
        10 => (any::<Index>(), report(), step.clone()).prop_map(|(i, r, s)| Op::Report(i, r, s)),
        3 => step.prop_map(Op::Poll),
        1 => Just(Op::ForceOpen),
        1 => Just(Op::Disable),
        1 => Just(Op::MetricsOnly),
        2 => Just(Op::Reset),
    ];
    prop::collection::vec(op, 1..120)
}

/// Calls, reports and polls on a clock that mostly stays inside a half-open cycle, with a rare
/// reset and no other operator control, so half-open cycles run to their decision.
fn probe_ops() -> impl Strategy<Value = Vec<Op>> {
    let op = prop_oneof![
        8 => probe_step().prop_map(Op::Acquire),
        10 => (any::<Index>(), report(), probe_step()).prop_map(|(i, r, s)| Op::Report(i, r, s)),
        2 => probe_step().prop_map(Op::Poll),
        1 => Just(Op::Reset),
    ];
    prop::collection::vec(op, 1..160)
}

/// Thresholds and durations at the ends of their ranges; open times stay exact for the model.
fn extreme_setup(capacity: u32) -> impl Strategy<Value = Setup> {
    let huge = Duration::from_secs(100_000);
    let timer = prop_oneof![
        3 => micros(1..=40),
        1 => Just(huge),
        1 => Just(Duration::MAX),
    ];
    let wait = prop_oneof![
        3 => micros(1..=60),
        1 => Just(huge),
        1 => Just(Duration::from_micros(u64::MAX)),
        1 => Just(Duration::MAX),
    ];
    let tiny_rate = prop_oneof![
        Just(f32::MIN_POSITIVE),
        Just(1e-45f32),
        Just(0.5f32),
        Just(1.0f32),
    ];
    (
        (
            prop_oneof![1u32..=5, Just(u32::MAX)],
            prop_oneof![3 => 1u32..=5, 1 => Just(65_535u32)],
            timer,
            prop_oneof![3 => 1u32..=4, 1 => Just(65_535u32)],
            wait,
            prop::option::of((0u8..3, 0u64..=100, any::<bool>())),
        ),
        ignored_errors(),
        prop::option::weighted(0.7, tiny_rate.clone()),
        1..=capacity.max(1),
        prop::option::weighted(
            0.4,
            prop_oneof![
                micros(1..=20),
                Just(Duration::from_nanos(1)),
                Just(Duration::MAX)
            ],
        ),
        tiny_rate,
        prop::option::weighted(0.3, prop_oneof![1u32..=4, Just(255u32)]),
    )
        .prop_map(
            move |(
                (failure_threshold, success_threshold, timeout, half_open_max_calls, wait, backoff),
                ignored,
                rate,
                minimum_calls,
                slow,
                slow_rate,
                permitted,
            )| {
                // (multiplier, exact multiplier); a doubling open time is capped at `huge` so
                // the core's open times stay exact in nanoseconds.
                let (multiplier, exact) = match backoff.map_or(0, |b| b.0) {
                    1 => (2.0, 2),
                    2 => (f32::MAX, u128::MAX),
                    _ => (1.0, 1),
                };
                let open_backoff = backoff.map(|(_, extra, to_the_end)| {
                    let max = if to_the_end && exact != 2 {
                        Duration::MAX
                    } else if to_the_end {
                        timeout.max(huge)
                    } else {
                        timeout.saturating_add(Duration::from_micros(extra))
                    };
                    OpenBackoff { multiplier, max }
                });
                let config = CircuitBreakerConfig {
                    failure_threshold,
                    success_threshold,
                    timeout,
                    half_open_max_calls,
                    // Rate mode and slow calls need a window.
                    failure_rate_threshold: rate.filter(|_| capacity > 0),
                    minimum_calls,
                    slow_call_duration: slow.filter(|_| capacity > 0),
                    slow_call_rate_threshold: slow_rate,
                    max_wait_in_half_open: wait,
                    open_backoff,
                    ignored_errors: ignored,
                    half_open_permitted_calls: permitted.filter(|_| rate.is_some() && capacity > 0),
                    ..CircuitBreakerConfig::DEFAULT
                };
                (config, if backoff.is_some() { exact } else { 1 })
            },
        )
}

fn lockstep<W: SlidingWindow + Clone>(
    (config, multiplier): Setup,
    window: W,
    ops: &[Op],
) -> Result<Run<W>, TestCaseError> {
    let mut run = Run::new(config, multiplier, window)?;
    run.check()?;
    run.run(ops)?;
    round_trips(&run.cb)?;
    Ok(run)
}

// ---------- lockstep properties (1, 2, 3 and 5 on every step) ----------

proptest! {
    #![proptest_config(ProptestConfig { cases: 256, ..ProptestConfig::default() })]

    /// A consecutive-failure breaker follows the model step by step.
    #[test]
    fn a_consecutive_breaker_follows_the_model(setup in consecutive_setup(), ops in ops(step())) {
        lockstep(setup, NoWindow, &ops)?;
    }

    /// A failure-rate / slow-call breaker with an 8-slot window follows the model.
    #[test]
    fn a_rate_breaker_with_8_slots_follows_the_model(setup in windowed_setup(8), ops in ops(step())) {
        lockstep(setup, CountWindow::<8>::new(), &ops)?;
    }

    /// A failure-rate / slow-call breaker with a 16-slot window follows the model.
    #[test]
    fn a_breaker_deciding_half_open_by_rate_follows_the_model(setup in by_rate_setup(8), ops in probe_ops()) {
        lockstep(setup, CountWindow::<8>::new(), &ops)?;
    }

    #[test]
    fn a_rate_breaker_with_16_slots_follows_the_model(setup in windowed_setup(16), ops in ops(step())) {
        lockstep(setup, CountWindow::<16>::new(), &ops)?;
    }

    /// Property 5: `u32::MAX` and 65 535 thresholds, `Duration::MAX` timers, `f32::MAX`
    /// multipliers, tiny rates and a clock at and across `Instant::MAX`: no panic, and the
    /// breaker still follows the model.
    #[test]
    fn extreme_values_never_panic_and_follow_the_model(
        setup in extreme_setup(0),
        ops in ops(extreme_step()),
    ) {
        lockstep(setup, NoWindow, &ops)?;
    }

    /// Property 5 with a window.
    #[test]
    fn extreme_values_never_panic_with_a_window(
        setup in extreme_setup(16),
        ops in ops(extreme_step()),
    ) {
        lockstep(setup, CountWindow::<16>::new(), &ops)?;
    }
}

// ---------- targeted properties ----------

fn instant_micros() -> impl Strategy<Value = u64> {
    prop_oneof![
        4 => 0u64..1_000_000,
        1 => (u64::MAX - 1_000)..=u64::MAX,
        1 => any::<u64>(),
    ]
}

/// Fails a fresh breaker `failure_threshold` times at `now`, with no kind ignored.
fn open<W: SlidingWindow>(
    cb: &mut CircuitBreaker<CircuitBreakerConfig, W>,
    now: Instant,
) -> Result<(), TestCaseError> {
    for _ in 0..cb.config().failure_threshold {
        let permit = cb.try_acquire(now)?;
        cb.on_failure(permit, ErrorKind::Transient, now);
    }
    prop_assert_eq!(cb.state(), Open);
    Ok(())
}

/// Alternates failure and success from a fresh rate-mode breaker at threshold 0.5; it must open
/// at the first call at or after `minimum_calls` where half the window failed, not before.
fn alternate<W: SlidingWindow>(
    window: W,
    minimum_calls: u32,
    fail_first: bool,
    noise: &[bool],
    start: u64,
) -> Result<(), TestCaseError> {
    let config = CircuitBreakerConfig {
        // Consecutive mode would open on the first failure: rate mode replaces that rule.
        failure_threshold: 1,
        failure_rate_threshold: Some(0.5),
        minimum_calls,
        ..CircuitBreakerConfig::default()
    };
    let mut cb = CircuitBreaker::try_with_window(config, window)?;
    let mut failures = 0u32;
    for k in 1..=W::CAPACITY + 1 {
        let now = Instant::from_micros(start.saturating_add(u64::from(k)));
        // Calls that count for nothing: an ignored error kind, a cancellation.
        if noise
            .get(usize::try_from(k).expect("small"))
            .copied()
            .unwrap_or(false)
        {
            let permit = cb.try_acquire(now)?;
            prop_assert_eq!(cb.on_failure(permit, ErrorKind::InvalidInput, now), None);
            let permit = cb.try_acquire(now)?;
            prop_assert_eq!(cb.on_cancelled(permit, now), None);
        }
        let fails = (k % 2 == 1) == fail_first;
        failures += u32::from(fails);
        let permit = cb.try_acquire(now)?;
        let got = if fails {
            cb.on_failure(permit, ErrorKind::Unavailable, now)
        } else {
            cb.on_success(permit, now)
        };
        let due = k >= minimum_calls && 2 * failures >= k;
        if due {
            prop_assert_eq!(edge(got), Some(OPENED), "call {}", k);
            prop_assert_eq!(
                got.and_then(|t| t.trip).map(|trip| trip.reason),
                Some(OpenReason::FailureRate)
            );
            prop_assert!(k <= minimum_calls + 1);
            return Ok(());
        }
        prop_assert_eq!(got, None, "call {}", k);
        prop_assert_eq!(
            cb.window_counts(),
            WindowCounts {
                calls: k,
                failures,
                slow: 0
            }
        );
    }
    Err(fail("a 50 % failure rate never opened the breaker".into()))
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 256, ..ProptestConfig::default() })]

    /// Property 3: probes that never report cannot hold the breaker half-open: whatever happens
    /// before `since + max_wait_in_half_open` (more probes, rejections, polls, a clock going
    /// back), a poll at that instant opens it again, and nothing earlier does; unless that
    /// instant saturated at `Instant::MAX`, which never comes.
    #[test]
    fn a_half_open_cycle_whose_probes_never_report_ends_at_max_wait(
        (config, _) in consecutive_setup(),
        t0 in instant_micros(),
        delay in 0u64..100,
        lost in 1u32..=4,
        actions in prop::collection::vec((any::<u64>(), any::<bool>()), 0..24),
    ) {
        let config = CircuitBreakerConfig { ignored_errors: ErrorKindSet::EMPTY, ..config };
        let max = config.half_open_max_calls;
        let mut cb = CircuitBreaker::try_new(config)?;
        open(&mut cb, Instant::from_micros(t0))?;
        let open_until = cb.poll_at().expect("open");
        if open_until == Instant::MAX {
            // The open time saturated: open for good, even at the last instant.
            prop_assert!(cb.try_acquire(Instant::MAX).is_err());
            prop_assert_eq!(cb.state(), Open);
            return Ok(());
        }
        let since = open_until + Duration::from_micros(delay);
        let first = cb.try_acquire(since)?;
        prop_assert_eq!(first.transition(), Some(Transition::new(Open, HalfOpen)));
        let mut in_flight = 1;
        let end = since + config.max_wait_in_half_open;
        for _ in 1..lost.min(max) {
            let _lost = cb.try_acquire(since)?;
            in_flight += 1;
        }
        prop_assert_eq!(cb.poll_at(), Some(end));
        // Anything from a little before `since` up to just before `end`.
        let low = since.as_micros().saturating_sub(50);
        let span = end.as_micros() - low;
        for (offset, acquire) in actions {
            let now = Instant::from_micros(low + offset % span);
            if acquire {
                match cb.try_acquire(now) {
                    Ok(permit) => {
                        prop_assert_eq!(permit.transition(), None);
                        in_flight += 1;
                        prop_assert!(in_flight <= max);
                    }
                    Err(rejected) => {
                        prop_assert_eq!(rejected.state, HalfOpen);
                        prop_assert_eq!(rejected.transition, None);
                        prop_assert_eq!(in_flight, max);
                    }
                }
            } else {
                prop_assert_eq!(cb.poll(now), None);
            }
            prop_assert_eq!(cb.state(), HalfOpen);
        }
        if end == Instant::MAX {
            // The end saturated: "never", even at the last instant.
            prop_assert_eq!(cb.poll(end), None);
            prop_assert_eq!(cb.state(), HalfOpen);
        } else {
            prop_assert_eq!(edge(cb.poll(end)), Some(HALF_OPEN_FAILED));
            prop_assert!(cb.poll_at() >= Some(end));
            prop_assert_eq!(cb.state(), Open);
        }
    }

    /// Property 4: alternating outcomes (a 50 % failure rate) open a rate breaker with
    /// threshold 0.5 as soon as `minimum_calls` are in an 8-slot window, ignored kinds and
    /// cancellations counting for nothing.
    #[test]
    fn alternating_outcomes_open_a_half_rate_breaker_with_8_slots(
        minimum_calls in 1u32..=8,
        fail_first in any::<bool>(),
        noise in prop::collection::vec(any::<bool>(), 0..20),
        start in instant_micros(),
    ) {
        alternate(CountWindow::<8>::new(), minimum_calls, fail_first, &noise, start)?;
    }

    /// Property 4 with a 16-slot window.
    #[test]
    fn alternating_outcomes_open_a_half_rate_breaker_with_16_slots(
        minimum_calls in 1u32..=16,
        fail_first in any::<bool>(),
        noise in prop::collection::vec(any::<bool>(), 0..20),
        start in instant_micros(),
    ) {
        alternate(CountWindow::<16>::new(), minimum_calls, fail_first, &noise, start)?;
    }

    /// The same alternation never opens a consecutive breaker that needs two failures in a row:
    /// the rate rule, not the consecutive one, opened it above.
    #[test]
    fn alternating_outcomes_never_open_a_consecutive_breaker(
        failure_threshold in 2u32..=5,
        calls in 1u32..64,
        start in instant_micros(),
    ) {
        let config = CircuitBreakerConfig { failure_threshold, ..CircuitBreakerConfig::default() };
        let mut cb = CircuitBreaker::try_new(config)?;
        let now = Instant::from_micros(start);
        for k in 0..calls {
            let permit = cb.try_acquire(now)?;
            let got = if k % 2 == 0 {
                cb.on_failure(permit, ErrorKind::Timeout, now)
            } else {
                cb.on_success(permit, now)
            };
            prop_assert_eq!(got, None);
            prop_assert!(cb.stats().consecutive_failures <= 1);
        }
    }
}

// ---------- configuration (property 6) ----------

const U16_MAX: u32 = 65_535;

/// Every rule of the config docs that `c` breaks, for a window of `capacity` outcomes.
fn violations(c: &CircuitBreakerConfig, capacity: u32) -> Vec<ConfigError> {
    use ConfigError as E;
    use ConfigField as F;
    let mut found = Vec::new();
    let rate = |found: &mut Vec<ConfigError>, value: f32, field: ConfigField| {
        if !value.is_finite() {
            found.push(E::NotFinite(field));
        } else if !(value > 0.0 && value <= 1.0) {
            found.push(E::RateOutOfRange(field));
        }
    };
    if c.failure_threshold == 0 {
        found.push(E::Zero(F::FailureThreshold));
    }
    for (value, field) in [
        (c.success_threshold, F::SuccessThreshold),
        (c.half_open_max_calls, F::HalfOpenMaxCalls),
    ] {
        if value == 0 {
            found.push(E::Zero(field));
        } else if value > U16_MAX {
            found.push(E::TooLarge {
                field,
                max: u64::from(U16_MAX),
            });
        }
    }
    if c.timeout.is_zero() {
        found.push(E::Zero(F::OpenTimeout));
    }
    if c.max_wait_in_half_open.is_zero() {
        found.push(E::Zero(F::MaxWaitInHalfOpen));
    }
    if let Some(backoff) = c.open_backoff {
        if !backoff.multiplier.is_finite() {
            found.push(E::NotFinite(F::OpenBackoffMultiplier));
        } else if backoff.multiplier < 1.0 {
            found.push(E::MultiplierBelowOne(F::OpenBackoffMultiplier));
        }
        if backoff.max < c.timeout {
            found.push(E::Exceeds {
                field: F::OpenTimeout,
                limit: F::OpenBackoffMax,
            });
        }
    }
    if let Some(threshold) = c.failure_rate_threshold {
        rate(&mut found, threshold, F::FailureRateThreshold);
    }
    if let Some(slow) = c.slow_call_duration {
        if slow.is_zero() {
            found.push(E::Zero(F::SlowCallDuration));
        }
        rate(
            &mut found,
            c.slow_call_rate_threshold,
            F::SlowCallRateThreshold,
        );
    }
    if let Some(permitted) = c.half_open_permitted_calls {
        if permitted == 0 {
            found.push(E::Zero(F::HalfOpenPermittedCalls));
        } else if permitted > 255 {
            found.push(E::TooLarge {
                field: F::HalfOpenPermittedCalls,
                max: 255,
            });
        }
        if c.failure_rate_threshold.is_none() {
            found.push(E::Requires {
                field: F::HalfOpenPermittedCalls,
                needs: F::FailureRateThreshold,
            });
        }
    }
    if c.failure_rate_threshold.is_some() || c.slow_call_duration.is_some() {
        if c.minimum_calls == 0 {
            found.push(E::Zero(F::MinimumCalls));
        } else if capacity < c.minimum_calls {
            found.push(E::WindowTooSmall {
                needed: c.minimum_calls,
                capacity,
            });
        }
    }
    found
}

/// Builds a breaker for `capacity` (0: no window) and checks the validators agree with it.
fn build(c: CircuitBreakerConfig, capacity: u32) -> Result<Result<(), ConfigError>, TestCaseError> {
    let built = match capacity {
        0 => CircuitBreaker::try_new(c).map(drop),
        8 => CircuitBreaker::try_with_window(c, CountWindow::<8>::new()).map(drop),
        16 => CircuitBreaker::try_with_window(c, CountWindow::<16>::new()).map(drop),
        other => return Err(fail(format!("no window of {other}"))),
    };
    prop_assert_eq!(c.validate_for_window(capacity), built);
    if capacity == 0 {
        prop_assert_eq!(c.validate(), built);
    }
    Ok(built)
}

fn any_rate() -> impl Strategy<Value = f32> {
    prop_oneof![
        4 => rate(),
        1 => Just(f32::NAN),
        1 => Just(f32::INFINITY),
        1 => Just(f32::NEG_INFINITY),
        1 => Just(0.0f32),
        1 => Just(-0.0f32),
        1 => Just(1.0000001f32),
        1 => Just(1e-45f32),
        1 => any::<f32>(),
    ]
}

fn any_count() -> impl Strategy<Value = u32> {
    prop_oneof![
        6 => 1u32..=5,
        1 => Just(0u32),
        1 => Just(U16_MAX),
        1 => Just(U16_MAX + 1),
        1 => Just(u32::MAX),
        1 => any::<u32>(),
    ]
}

fn any_duration() -> impl Strategy<Value = Duration> {
    prop_oneof![
        6 => micros(1..=1_000_000),
        1 => Just(Duration::ZERO),
        1 => Just(Duration::from_nanos(1)),
        1 => Just(Duration::MAX),
        1 => (any::<u64>(), 0u32..1_000_000_000).prop_map(|(s, n)| Duration::new(s, n)),
    ]
}

fn any_multiplier() -> impl Strategy<Value = f32> {
    prop_oneof![
        4 => 1.0f32..=4.0,
        1 => Just(f32::NAN),
        1 => Just(f32::INFINITY),
        1 => Just(f32::NEG_INFINITY),
        1 => Just(0.999_999_9f32),
        1 => Just(0.0f32),
        1 => Just(-2.0f32),
        1 => Just(f32::MAX),
        1 => any::<f32>(),
    ]
}

/// Any config at all, each field valid most of the time.
fn any_config() -> impl Strategy<Value = CircuitBreakerConfig> {
    (
        (
            any_count(),
            any_count(),
            any_duration(),
            any_count(),
            prop::option::weighted(0.5, any_rate()),
            prop_oneof![
                4 => 1u32..=16,
                1 => Just(0u32),
                // Just past an 8- or a 16-slot window.
                1 => prop::sample::select(vec![9u32, 17]),
                1 => 17u32..=100,
                1 => Just(u32::MAX),
            ],
        ),
        (
            prop::option::weighted(0.4, any_duration()),
            any_rate(),
            any_duration(),
            prop::option::weighted(0.5, (any_multiplier(), any_duration())),
            ignored_errors(),
            prop::option::weighted(
                0.3,
                prop_oneof![
                    4 => 1u32..=8,
                    1 => Just(0u32),
                    1 => Just(255u32),
                    1 => Just(256u32),
                    1 => any::<u32>(),
                ],
            ),
        ),
    )
        .prop_map(
            |(
                (
                    failure_threshold,
                    success_threshold,
                    timeout,
                    half_open_max_calls,
                    rate,
                    minimum_calls,
                ),
                (slow, slow_rate, wait, backoff, ignored, permitted),
            )| CircuitBreakerConfig {
                failure_threshold,
                success_threshold,
                timeout,
                half_open_max_calls,
                failure_rate_threshold: rate,
                minimum_calls,
                slow_call_duration: slow,
                slow_call_rate_threshold: slow_rate,
                max_wait_in_half_open: wait,
                open_backoff: backoff.map(|(multiplier, max)| OpenBackoff { multiplier, max }),
                ignored_errors: ignored,
                half_open_permitted_calls: permitted,
                ..CircuitBreakerConfig::DEFAULT
            },
        )
}

/// One invalid value, put into a config that is otherwise valid.
#[derive(Clone, Copy, Debug)]
enum Fault {
    FailureThresholdZero,
    SuccessThreshold(u32),
    HalfOpenMaxCalls(u32),
    TimeoutZero,
    MaxWaitZero,
    Multiplier(f32),
    BackoffMaxBelowTimeout(u64),
    FailureRate(f32),
    SlowDurationZero,
    SlowRate(f32),
    MinimumCallsZero,
    MinimumCallsAbove(u32),
    PermittedCalls(u32),
    PermittedCallsWithoutRate,
}

fn bad_rate() -> impl Strategy<Value = f32> {
    prop_oneof![
        Just(f32::NAN),
        Just(f32::INFINITY),
        Just(f32::NEG_INFINITY),
        Just(0.0f32),
        Just(-0.0f32),
        Just(-0.5f32),
        Just(1.0000001f32),
        1.0001f32..=1e30,
        -1e30f32..=0.0,
    ]
}

fn fault(capacity: u32) -> BoxedStrategy<Fault> {
    let anywhere = prop_oneof![
        Just(Fault::FailureThresholdZero),
        prop_oneof![Just(0u32), Just(U16_MAX + 1), (U16_MAX + 1)..=u32::MAX]
            .prop_map(Fault::SuccessThreshold),
        prop_oneof![Just(0u32), Just(U16_MAX + 1), (U16_MAX + 1)..=u32::MAX]
            .prop_map(Fault::HalfOpenMaxCalls),
        Just(Fault::TimeoutZero),
        Just(Fault::MaxWaitZero),
        prop_oneof![
            Just(f32::NAN),
            Just(f32::INFINITY),
            Just(f32::NEG_INFINITY),
            Just(0.999_999_9f32),
            -1e30f32..1.0,
        ]
        .prop_map(Fault::Multiplier),
        (1u64..=1_000_000).prop_map(Fault::BackoffMaxBelowTimeout),
        Just(Fault::MinimumCallsZero),
        prop_oneof![Just(1u32), 1u32..=1_000].prop_map(Fault::MinimumCallsAbove),
        Just(Fault::PermittedCallsWithoutRate),
    ];
    if capacity == 0 {
        // Without a window these would break the window rule as well.
        return anywhere.boxed();
    }
    prop_oneof![
        9 => anywhere,
        1 => bad_rate().prop_map(Fault::FailureRate),
        1 => Just(Fault::SlowDurationZero),
        1 => bad_rate().prop_map(Fault::SlowRate),
        1 => prop_oneof![Just(0u32), Just(256u32), 256u32..=u32::MAX].prop_map(Fault::PermittedCalls),
    ]
    .boxed()
}

/// Puts `fault` into `c` and says which error it must cause.
fn inject(c: &mut CircuitBreakerConfig, fault: Fault, capacity: u32) -> ConfigError {
    use ConfigError as E;
    use ConfigField as F;
    let needs_window = |c: &mut CircuitBreakerConfig| {
        if c.failure_rate_threshold.is_none() && c.slow_call_duration.is_none() {
            c.failure_rate_threshold = Some(0.5);
        }
    };
    match fault {
        Fault::FailureThresholdZero => {
            c.failure_threshold = 0;
            E::Zero(F::FailureThreshold)
        }
        Fault::SuccessThreshold(v) | Fault::HalfOpenMaxCalls(v) => {
            let field = if matches!(fault, Fault::SuccessThreshold(_)) {
                c.success_threshold = v;
                F::SuccessThreshold
            } else {
                c.half_open_max_calls = v;
                F::HalfOpenMaxCalls
            };
            if v == 0 {
                E::Zero(field)
            } else {
                E::TooLarge {
                    field,
                    max: u64::from(U16_MAX),
                }
            }
        }
        Fault::TimeoutZero => {
            c.timeout = Duration::ZERO;
            c.open_backoff = None;
            E::Zero(F::OpenTimeout)
        }
        Fault::MaxWaitZero => {
            c.max_wait_in_half_open = Duration::ZERO;
            E::Zero(F::MaxWaitInHalfOpen)
        }
        Fault::Multiplier(multiplier) => {
            c.open_backoff = Some(OpenBackoff {
                multiplier,
                max: c.timeout,
            });
            if multiplier.is_finite() {
                E::MultiplierBelowOne(F::OpenBackoffMultiplier)
            } else {
                E::NotFinite(F::OpenBackoffMultiplier)
            }
        }
        Fault::BackoffMaxBelowTimeout(by) => {
            c.open_backoff = Some(OpenBackoff {
                multiplier: 2.0,
                max: c.timeout.saturating_sub(Duration::from_nanos(by)),
            });
            E::Exceeds {
                field: F::OpenTimeout,
                limit: F::OpenBackoffMax,
            }
        }
        Fault::FailureRate(rate) => {
            c.failure_rate_threshold = Some(rate);
            if rate.is_finite() {
                E::RateOutOfRange(F::FailureRateThreshold)
            } else {
                E::NotFinite(F::FailureRateThreshold)
            }
        }
        Fault::SlowDurationZero => {
            c.slow_call_duration = Some(Duration::ZERO);
            E::Zero(F::SlowCallDuration)
        }
        Fault::SlowRate(rate) => {
            c.slow_call_duration = Some(Duration::from_micros(5));
            c.slow_call_rate_threshold = rate;
            if rate.is_finite() {
                E::RateOutOfRange(F::SlowCallRateThreshold)
            } else {
                E::NotFinite(F::SlowCallRateThreshold)
            }
        }
        Fault::MinimumCallsZero => {
            needs_window(c);
            c.minimum_calls = 0;
            E::Zero(F::MinimumCalls)
        }
        Fault::MinimumCallsAbove(by) => {
            needs_window(c);
            c.minimum_calls = capacity.saturating_add(by);
            E::WindowTooSmall {
                needed: c.minimum_calls,
                capacity,
            }
        }
        Fault::PermittedCalls(permitted) => {
            if c.failure_rate_threshold.is_none() {
                c.failure_rate_threshold = Some(0.5);
            }
            c.half_open_permitted_calls = Some(permitted);
            if permitted == 0 {
                E::Zero(F::HalfOpenPermittedCalls)
            } else {
                E::TooLarge {
                    field: F::HalfOpenPermittedCalls,
                    max: 255,
                }
            }
        }
        Fault::PermittedCallsWithoutRate => {
            c.failure_rate_threshold = None;
            c.half_open_permitted_calls = Some(3);
            E::Requires {
                field: F::HalfOpenPermittedCalls,
                needs: F::FailureRateThreshold,
            }
        }
    }
}

fn capacity() -> impl Strategy<Value = u32> {
    prop::sample::select(vec![0u32, 8, 16])
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 512, ..ProptestConfig::default() })]

    /// Property 6: one invalid value in an otherwise valid config is refused with exactly its
    /// error, by `try_new` / `try_with_window` and `validate` alike.
    #[test]
    fn one_invalid_value_is_refused_with_its_error(
        (capacity, (mut config, _), fault) in capacity().prop_flat_map(|capacity| (
            Just(capacity),
            if capacity == 0 { consecutive_setup().boxed() } else { windowed_setup(capacity).boxed() },
            fault(capacity),
        )),
    ) {
        prop_assert_eq!(build(config, capacity)?, Ok(()));
        let expected = inject(&mut config, fault, capacity);
        prop_assert_eq!(violations(&config, capacity), vec![expected]);
        prop_assert_eq!(build(config, capacity)?, Err(expected));
        let message = expected.to_string();
        prop_assert!(!message.is_empty());
    }

    /// Property 6: any config at all is accepted exactly when it breaks no rule, and otherwise
    /// refused with one of the rules it breaks; nothing panics.
    #[test]
    fn any_config_is_accepted_exactly_when_valid(config in any_config(), capacity in capacity()) {
        let broken = violations(&config, capacity);
        match build(config, capacity)? {
            Ok(()) => prop_assert!(broken.is_empty(), "accepted despite {:?}", broken),
            Err(error) => {
                prop_assert!(broken.contains(&error), "{:?} is none of {:?}", error, broken);
                if let [only] = broken.as_slice() {
                    prop_assert_eq!(error, *only);
                }
            }
        }
    }

    /// Valid configs survive postcard and JSON.
    #[test]
    fn valid_configs_round_trip((config, _) in windowed_setup(16)) {
        let mut buf = [0u8; 128];
        let bytes = postcard::to_slice(&config, &mut buf).expect("fits");
        prop_assert_eq!(postcard::from_bytes::<CircuitBreakerConfig>(bytes).expect("decodes"), config);
        let json = serde_json::to_string(&config).expect("serializes");
        prop_assert_eq!(serde_json::from_str::<CircuitBreakerConfig>(&json).expect("parses"), config);
    }
}

// ---------- the generators reach every path ----------

/// Runs the lockstep generators on a fixed seed and checks that they reach every transition and
/// the interesting corners, so the properties above cannot pass by never getting there.
#[test]
fn the_generators_reach_every_path() {
    let mut runner = TestRunner::deterministic();
    let mut seen = Seen::default();
    let mut merge = |run: Seen| {
        seen.transitions.extend(run.transitions);
        seen.stale_reports += run.stale_reports;
        seen.stale_reports_with_timer += run.stale_reports_with_timer;
        seen.full_half_open += run.full_half_open;
        seen.max_wait_trips += run.max_wait_trips;
        seen.slow_calls += run.slow_calls;
        seen.rate_trips += run.rate_trips;
        seen.backwards += run.backwards;
        seen.near_max += run.near_max;
        seen.would_open += run.would_open;
        seen.closed_by_rate += run.closed_by_rate;
        seen.opened_by_rate_early += run.opened_by_rate_early;
    };
    for _ in 0..160 {
        let setup = windowed_setup(8)
            .new_tree(&mut runner)
            .expect("generates")
            .current();
        let sequence = ops(step())
            .new_tree(&mut runner)
            .expect("generates")
            .current();
        let run = lockstep(setup, CountWindow::<8>::new(), &sequence).expect("follows the model");
        merge(run.seen);
        let setup = consecutive_setup()
            .new_tree(&mut runner)
            .expect("generates")
            .current();
        let sequence = ops(step())
            .new_tree(&mut runner)
            .expect("generates")
            .current();
        let run = lockstep(setup, NoWindow, &sequence).expect("follows the model");
        merge(run.seen);
        let setup = by_rate_setup(8)
            .new_tree(&mut runner)
            .expect("generates")
            .current();
        let sequence = probe_ops()
            .new_tree(&mut runner)
            .expect("generates")
            .current();
        let run = lockstep(setup, CountWindow::<8>::new(), &sequence).expect("follows the model");
        merge(run.seen);
    }
    let states = [Closed, Open, HalfOpen, ForcedOpen, Disabled, MetricsOnly];
    for from in states {
        for to in states {
            let possible = match (from, to) {
                (Closed, HalfOpen)
                | (ForcedOpen, Open | HalfOpen)
                | (Disabled, Open | HalfOpen)
                | (MetricsOnly, Open | HalfOpen) => false,
                // A metrics-only breaker's report that it would open.
                (MetricsOnly, MetricsOnly) => true,
                (Open, Closed) => true, // by reset
                _ => from != to,
            };
            assert_eq!(
                seen.transitions.contains(&(from, to)),
                possible,
                "{from} -> {to}: {seen:?}"
            );
        }
    }
    assert!(seen.stale_reports > 100, "{seen:?}");
    assert!(seen.stale_reports_with_timer > 0, "{seen:?}");
    assert!(seen.full_half_open > 10, "{seen:?}");
    assert!(seen.max_wait_trips > 10, "{seen:?}");
    assert!(seen.slow_calls > 10, "{seen:?}");
    assert!(seen.rate_trips > 10, "{seen:?}");
    assert!(seen.backwards > 10, "{seen:?}");
    assert!(seen.near_max > 10, "{seen:?}");
    assert!(seen.would_open > 5, "{seen:?}");
    assert!(seen.closed_by_rate > 5, "{seen:?}");
    assert!(seen.opened_by_rate_early > 5, "{seen:?}");
}

/// The model itself, on hand-worked cases, so a wrong model cannot pass silently.
#[test]
fn the_model_agrees_with_hand_worked_cases() {
    let config = CircuitBreakerConfig {
        failure_threshold: 2,
        success_threshold: 1,
        timeout: Duration::from_micros(10),
        max_wait_in_half_open: Duration::from_micros(5),
        open_backoff: Some(OpenBackoff {
            multiplier: 3.0,
            max: Duration::from_micros(50),
        }),
        ..CircuitBreakerConfig::default()
    };
    let mut m = Model::new(config, 3, 0);
    let (a, _) = m.acquire(0).expect("closed");
    let (b, _) = m.acquire(0).expect("closed");
    assert_eq!(m.settle(a, Report::Failure(ErrorKind::Timeout), 1), None);
    assert_eq!(
        edge(m.settle(b, Report::Failure(ErrorKind::Timeout), 2)),
        Some(OPENED)
    );
    assert_eq!(m.poll_at(), Some(12));
    let rejected = m.acquire(11).expect_err("open");
    assert_eq!(rejected.retry_at, Some(Instant::from_micros(11 + 1)));
    // Two cycles that time out: open for 30 µs, then 50 (capped, not 90).
    let (_lost, t) = m.acquire(12).expect("probe");
    assert_eq!(t, Some(Transition::new(Open, HalfOpen)));
    assert!(m.acquire(12).is_err());
    assert_eq!(edge(m.timers(17)), Some(HALF_OPEN_FAILED));
    assert_eq!(m.poll_at(), Some(47));
    assert_eq!(m.timers(47).map(|t| t.to), Some(HalfOpen));
    assert_eq!(edge(m.timers(52)), Some(HALF_OPEN_FAILED));
    assert_eq!(m.poll_at(), Some(102));
    let (probe, _) = m.acquire(102).expect("probe");
    assert_eq!(
        m.settle(probe, Report::Success, 103).map(|t| t.to),
        Some(Closed)
    );
    assert_eq!(m.stats().transitions, 7);
    assert_eq!(m.stats().rejected_count, 2);
    assert_eq!(after(u64::MAX - 1, Duration::from_micros(5)), u64::MAX);
    assert_eq!(after(7, Duration::from_nanos(1_999)), 8);
}

// ---------- findings ----------

proptest! {
    #![proptest_config(ProptestConfig { cases: 256, ..ProptestConfig::default() })]

    /// A timer never fires before its whole duration has passed: the breaker stays open at
    /// least `timeout`, and a half-open cycle lasts at least `max_wait_in_half_open`.
    #[test]
    fn timers_never_fire_before_their_duration_has_passed(
        timeout_ns in 1u64..3_000,
        wait_ns in 1u64..3_000,
        t0 in 0u64..1_000_000,
    ) {
        let config = CircuitBreakerConfig {
            failure_threshold: 1,
            success_threshold: 1,
            timeout: Duration::from_nanos(timeout_ns),
            max_wait_in_half_open: Duration::from_nanos(wait_ns),
            ..CircuitBreakerConfig::default()
        };
        let mut cb = CircuitBreaker::try_new(config)?;
        let opened = Instant::from_micros(t0);
        open(&mut cb, opened)?;
        let half_open = cb.poll_at().expect("open");
        prop_assert!(half_open - opened >= config.timeout, "open for {:?}", half_open - opened);
        let probe = cb.try_acquire(half_open)?;
        let end = cb.poll_at().expect("half-open");
        prop_assert!(end - half_open >= config.max_wait_in_half_open, "half-open for {:?}", end - half_open);
        // A probe that succeeds at once closes the breaker.
        prop_assert_eq!(cb.on_success(probe, half_open).map(|t| t.to), Some(Closed));
    }
}
