//! The circuit breaker: a sans-IO state machine that stops calling a failing kernel.
//!
//! # Method families
//! - Inputs: [`try_acquire(now)`](CircuitBreaker::try_acquire) before a call,
//!   [`on_success`](CircuitBreaker::on_success), [`on_failure`](CircuitBreaker::on_failure) or
//!   [`on_cancelled`](CircuitBreaker::on_cancelled) with the permit after it,
//!   [`poll(now)`](CircuitBreaker::poll) when a timer is due; operator controls
//!   [`force_open`](CircuitBreaker::force_open) (and [`force_open_for`](CircuitBreaker::force_open_for)
//!   a maintenance window), [`disable`](CircuitBreaker::disable),
//!   [`metrics_only`](CircuitBreaker::metrics_only) (shadow mode), [`reset`](CircuitBreaker::reset).
//! - Getters: [`state`](CircuitBreaker::state), [`stats`](CircuitBreaker::stats).
//! - Outputs: [`poll_at`](CircuitBreaker::poll_at), the next instant at which time alone changes
//!   the state. Every input returns the [`Transition`] it caused, if any.
//!
//! # Cycles and permits
//! Every transition starts a new cycle (a wrapping `u32` generation). A [`Permit`] carries the
//! generation it was issued in; a result reported with a permit from an earlier cycle is
//! counted in [`stats`](CircuitBreaker::stats) but changes no state, so a slow call that started
//! before the breaker opened cannot close it, and a late probe cannot leak a half-open slot.
//!
//! # Modes
//! - Consecutive (default, [`NoWindow`]): `failure_threshold` consecutive failures open it.
//! - Failure rate over the last `N` calls ([`CountWindow<N>`]) or over the last
//!   `window_duration` in `B` buckets ([`TimeWindow<B>`]): with `failure_rate_threshold` and/or
//!   `slow_call_duration` set, the breaker opens when the failure rate or slow-call rate over
//!   the window reaches its threshold, once `minimum_calls` calls are in the window.
//!   A threshold stands for the decimal it was written as: `0.3` opens at 3 of 10 calls.
//!   A call slower than `slow_call_duration` is slow whether it succeeded or failed (a slow
//!   failure counts towards both rates, as in Resilience4j).
//!
//! # The half-open decision
//! Half-open, the breaker admits at most `half_open_max_calls` probes **at the same time** (a
//! bound on concurrent probes, not on probes per cycle: a probe that reports frees its slot for
//! the next). It decides in one of two ways:
//! - **Probe by probe** (the default): it opens again on the first failed or slow probe, and
//!   closes after `success_threshold` good probes. One failed probe is already the evidence that
//!   the callee has not recovered: waiting for others would send more calls to a kernel that is
//!   still failing (on firmware, more work on a faulted accelerator), and counting good probes
//!   needs one counter. With `success_threshold` equal to the number of probes, it closes
//!   exactly when all of them succeeded.
//! - **By rate** (`half_open_permitted_calls: Some(n)`, Resilience4j's
//!   `permittedNumberOfCallsInHalfOpenState`): a cycle admits `n` probes (a cancelled one, or
//!   one failing with an ignored kind, gives its admission back) and decides on their failure
//!   rate and slow-call rate over the `n`, with `failure_rate_threshold` and
//!   `slow_call_rate_threshold`: it opens when either reaches its threshold and closes
//!   otherwise. It decides as soon as the probes still to report cannot change the outcome
//!   (at 0.5 over 10 probes, the fifth failure opens it and the sixth good probe closes it), so
//!   the decision is Resilience4j's, taken without waiting for probes that cannot change it.
//!   A dependency that fails 30 % of the time closes in one cycle at a threshold of 0.5, where
//!   probe by probe it would need several open cycles. A cycle's figures
//!   ([`Trip`]: probes reported, failed, slow) are kept in bytes, hence at most 255 probes.
//!
//! Either way, a cycle that outlives `max_wait_in_half_open` ends as
//! `after_max_wait_in_half_open` says, and a report from an earlier cycle changes nothing.

mod config;
mod configured_window;
mod fixed;
pub mod sizing;
mod state;
mod time_window;
mod window;

use core::borrow::Borrow;
use core::fmt;
use core::time::Duration;

pub use config::{AfterMaxWait, CircuitBreakerConfig, OpenBackoff};
pub use configured_window::ConfiguredWindow;
pub use fixed::{ConstBreakerConfig, FixedConfig};
pub use state::{CircuitBreakerStats, CircuitState, OpenReason, Transition, Trip};
pub use time_window::TimeWindow;
pub use window::{CountWindow, NoWindow, Outcome, SlidingWindow, WindowCounts};

use crate::error::{ConfigError, ErrorKind, valid_or_panic};
use crate::time::Instant;

/// Leave to make one call, returned by [`CircuitBreaker::try_acquire`]; give it back with the
/// call's result.
///
/// A permit is neither `Copy` nor `Clone`: each one is settled exactly once, so a probe cannot
/// free its half-open slot twice or count twice towards closing the breaker.
///
/// ```compile_fail
/// # use rustkernel_core::resilience::{CircuitBreaker, CircuitBreakerConfig};
/// # use rustkernel_core::time::Instant;
/// let mut cb = CircuitBreaker::new(CircuitBreakerConfig::default());
/// let permit = cb.try_acquire(Instant::ZERO).unwrap();
/// cb.on_success(permit, Instant::ZERO);
/// cb.on_success(permit, Instant::ZERO); // error: use of moved value
/// ```
#[derive(Debug, PartialEq, Eq)]
#[must_use = "a permit must be settled with on_success, on_failure or on_cancelled"]
pub struct Permit {
    generation: u32,
    acquired_at: Instant,
    transition: Option<Transition>,
}

impl Permit {
    /// When the permit was issued (the start of the call, for slow-call detection).
    #[must_use]
    pub const fn acquired_at(&self) -> Instant {
        self.acquired_at
    }

    /// The cycle (generation) the permit belongs to.
    #[must_use]
    pub const fn generation(&self) -> u32 {
        self.generation
    }

    /// Rebuilds a permit for cycle `generation`, for adapters that keep a permit's parts
    /// ([`generation`](Self::generation), [`acquired_at`](Self::acquired_at)) in their own
    /// call guard, or that admit closed-state calls without touching the breaker (a lock-free
    /// fast path reading [`CircuitBreaker::generation`]) and settle them later through it.
    ///
    /// The adapter takes on the permit's rule: rebuild each admitted call's permit once and
    /// settle it once. A permit made up for a half-open cycle that was never admitted would
    /// settle a probe slot that it never took.
    pub const fn for_cycle(generation: u32, acquired_at: Instant) -> Self {
        Self {
            generation,
            acquired_at,
            transition: None,
        }
    }

    /// The transition that issuing this permit caused (`Open -> HalfOpen` when the open time
    /// had ended).
    #[must_use]
    pub const fn transition(&self) -> Option<Transition> {
        self.transition
    }
}

/// Why [`CircuitBreaker::try_acquire`] refused a call.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
#[cfg_attr(feature = "serde", derive(serde::Serialize, serde::Deserialize))]
#[cfg_attr(feature = "defmt", derive(defmt::Format))]
pub struct Rejected {
    /// The state that refused: `Open`, `HalfOpen` (all probe slots taken) or `ForcedOpen`.
    pub state: CircuitState,
    /// When an open breaker will admit a probe, if known.
    pub retry_at: Option<Instant>,
    /// The transition that this attempt caused (`HalfOpen -> Open` when the half-open cycle
    /// outlived `max_wait_in_half_open`).
    pub transition: Option<Transition>,
}

impl fmt::Display for Rejected {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self.state {
            CircuitState::HalfOpen => {
                f.write_str("circuit breaker is half-open and all probe slots are taken")
            }
            CircuitState::ForcedOpen => f.write_str("circuit breaker is forced open"),
            _ => f.write_str("circuit breaker is open"),
        }
    }
}

impl core::error::Error for Rejected {}

impl<E> From<Rejected> for crate::error::ResilienceError<E> {
    fn from(_: Rejected) -> Self {
        crate::error::ResilienceError::CircuitOpen
    }
}

/// A circuit breaker state machine.
///
/// `C` holds the configuration: the value itself (the default), a `&'static` reference (a
/// firmware `static`), or an `Arc` (a host sharing one config); anything that borrows as a
/// [`CircuitBreakerConfig`]. `W` is the sliding window: [`NoWindow`] for the consecutive mode,
/// [`CountWindow<N>`] or [`TimeWindow<B>`] for the failure-rate and slow-call modes. A consecutive breaker with a borrowed config
/// takes 104 bytes on 64-bit targets (32 of them keep the trip figures and the metrics-only count).
///
/// See the [module docs](self) for the method families and the permit rules.
#[derive(Clone, Debug)]
pub struct CircuitBreaker<C = CircuitBreakerConfig, W = NoWindow> {
    config: C,
    /// The state, with the deadlines its timers run to.
    phase: Phase,
    success_count: u64,
    failure_count: u64,
    rejected_count: u64,
    slow_success_count: u64,
    slow_failure_count: u64,
    generation: u32,
    consecutive_failures: u32,
    /// Why the breaker is not closed (or, metrics-only, why it last would have opened).
    trip: Option<Trip>,
    would_open_count: u64,
    /// Re-opens since the last successful close (drives `open_backoff`).
    reopens: u8,
    window: W,
}

impl<C, W> CircuitBreaker<C, W> {
    /// A closed breaker if `checked` is `Ok`, for the `const` constructors; `config` and
    /// `window` are forgotten otherwise (`const` cannot run a destructor they may have).
    const fn closed_if(
        checked: Result<(), ConfigError>,
        config: C,
        window: W,
    ) -> Result<Self, ConfigError> {
        match checked {
            Ok(()) => Ok(Self::closed(config, window)),
            Err(error) => {
                core::mem::forget(config);
                core::mem::forget(window);
                Err(error)
            }
        }
    }

    /// A closed breaker over `config` and `window`, both already checked.
    const fn closed(config: C, window: W) -> Self {
        Self {
            config,
            phase: Phase::Closed,
            success_count: 0,
            failure_count: 0,
            rejected_count: 0,
            slow_success_count: 0,
            slow_failure_count: 0,
            generation: 0,
            consecutive_failures: 0,
            trip: None,
            would_open_count: 0,
            reopens: 0,
            window,
        }
    }
}

/// What [`SlidingWindow::configure`] checks for a window by count, as a `const fn`: the
/// configuration for `W::CAPACITY` outcomes, and no `window_duration`. A window by time takes
/// its bucket length from the configuration at run time, so it cannot be built in `const`.
const fn check_untimed<W: SlidingWindow>(config: &CircuitBreakerConfig) -> Result<(), ConfigError> {
    const {
        assert!(
            !W::TIMED,
            "a window by time is configured at run time: build with `try_with_window`"
        );
    }
    if let Err(error) = window::refuse_window_duration(config) {
        return Err(error);
    }
    config.validate_for_window(W::CAPACITY)
}

impl<W: SlidingWindow> CircuitBreaker<CircuitBreakerConfig, W> {
    /// [`try_with_window`](Self::try_with_window) as a `const fn`, for a breaker that owns its
    /// configuration: in a `const` or `static` an invalid configuration is found when the
    /// program is compiled (unwrap it with a `match` that panics). `window` is taken as it is
    /// (a fresh one: [`NoWindow`] or [`CountWindow::new`]); a window by time does not compile
    /// here.
    ///
    /// # Errors
    /// As [`try_with_window`](Self::try_with_window).
    pub const fn try_const(config: CircuitBreakerConfig, window: W) -> Result<Self, ConfigError> {
        Self::closed_if(check_untimed::<W>(&config), config, window)
    }
}

impl<W: SlidingWindow> CircuitBreaker<&'static CircuitBreakerConfig, W> {
    /// [`try_const`](CircuitBreaker::try_const) for a breaker that shares a `static`
    /// configuration (which then stays in flash on firmware).
    ///
    /// # Errors
    /// As [`try_with_window`](Self::try_with_window).
    pub const fn try_const_ref(
        config: &'static CircuitBreakerConfig,
        window: W,
    ) -> Result<Self, ConfigError> {
        Self::closed_if(check_untimed::<W>(config), config, window)
    }
}

impl<C: Borrow<CircuitBreakerConfig>> CircuitBreaker<C, NoWindow> {
    /// A consecutive-failure breaker, closed, after checking the configuration.
    ///
    /// # Errors
    /// The configuration's first invalid value (see [`CircuitBreakerConfig::validate`]).
    pub fn try_new(config: C) -> Result<Self, ConfigError> {
        Self::try_with_window(config, NoWindow)
    }

    /// A consecutive-failure breaker, closed.
    ///
    /// # Panics
    /// If the configuration is invalid, with the [`ConfigError`]'s message; use
    /// [`try_new`](Self::try_new) to handle it.
    #[must_use]
    pub fn new(config: C) -> Self {
        Self::with_window(config, NoWindow)
    }
}

impl<C: Borrow<CircuitBreakerConfig>, W: SlidingWindow> CircuitBreaker<C, W> {
    /// A breaker with the given sliding window (for the failure-rate mode), closed.
    ///
    /// # Errors
    /// The configuration's first invalid value for a window of `W::CAPACITY` outcomes.
    pub fn try_with_window(config: C, mut window: W) -> Result<Self, ConfigError> {
        config.borrow().validate_for_window(W::CAPACITY)?;
        window.configure(config.borrow())?;
        window.clear();
        Ok(Self::closed(config, window))
    }

    /// A breaker with the given sliding window, closed.
    ///
    /// # Panics
    /// If the configuration is invalid, with the [`ConfigError`]'s message; use
    /// [`try_with_window`](Self::try_with_window) to handle it.
    #[must_use]
    #[track_caller]
    pub fn with_window(config: C, window: W) -> Self {
        valid_or_panic(
            Self::try_with_window(config, window),
            "circuit breaker configuration",
        )
    }

    /// The configuration.
    pub fn config(&self) -> &CircuitBreakerConfig {
        self.config.borrow()
    }

    // ---- inputs -------------------------------------------------------------------------

    /// Asks to make a call at `now`. Applies due timers first (an open breaker whose open time
    /// has ended turns half-open; a half-open cycle past `max_wait_in_half_open` opens again).
    ///
    /// # Errors
    /// [`Rejected`] when the breaker is open, forced open, or half-open with every probe slot
    /// taken; the rejection is counted.
    #[inline]
    pub fn try_acquire(&mut self, now: Instant) -> Result<Permit, Rejected> {
        if matches!(self.phase, Phase::Closed) {
            // Closed has no timers: skip `poll`.
            return Ok(Permit {
                generation: self.generation,
                acquired_at: now,
                transition: None,
            });
        }
        let transition = self.poll(now);
        let config = self.config.borrow();
        let max_probes = config.half_open_max_calls;
        // Deciding by rate, a cycle admits its permitted probes and no more (a cancelled one
        // gives its admission back).
        let permitted = config.half_open_permitted_calls.unwrap_or(u32::MAX);
        let admitted = match &mut self.phase {
            Phase::Closed | Phase::Disabled | Phase::MetricsOnly => true,
            Phase::HalfOpen {
                in_flight,
                reported,
                ..
            } => {
                if u32::from(*in_flight) < max_probes
                    && u32::from(*in_flight) + u32::from(*reported) < permitted
                {
                    *in_flight = in_flight.saturating_add(1);
                    true
                } else {
                    false
                }
            }
            Phase::Open { .. } | Phase::ForcedOpen { .. } => false,
        };
        if admitted {
            Ok(Permit {
                generation: self.generation,
                acquired_at: now,
                transition,
            })
        } else {
            self.rejected_count = self.rejected_count.saturating_add(1);
            let state = self.state();
            let retry_at = self.poll_at().filter(|_| state != CircuitState::HalfOpen);
            Err(Rejected {
                state,
                retry_at,
                transition,
            })
        }
    }

    /// Reports that the call made under `permit` succeeded at `now`.
    ///
    /// A success that took at least `slow_call_duration` counts as slow: towards the slow-call
    /// rate when closed, as a failed probe when half-open.
    #[inline]
    pub fn on_success(&mut self, permit: Permit, now: Instant) -> Option<Transition> {
        let config = self.config.borrow();
        if matches!(self.phase, Phase::Closed)
            && permit.generation == self.generation
            && config.slow_call_duration.is_none()
            && config.failure_rate_threshold.is_none()
        {
            // The common case: a success while closed only counts and clears the failure streak.
            self.success_count = self.success_count.saturating_add(1);
            self.consecutive_failures = 0;
            return None;
        }
        self.settle(permit, now, Settle::Success)
    }

    /// Reports that the call made under `permit` failed at `now` with an error of `kind`.
    ///
    /// Kinds in `ignored_errors` count as neither success nor failure; they only free the slot.
    /// A failure that took at least `slow_call_duration` counts as a failure and as slow (as
    /// Resilience4j counts it): towards both rates when closed.
    pub fn on_failure(
        &mut self,
        permit: Permit,
        kind: ErrorKind,
        now: Instant,
    ) -> Option<Transition> {
        if self.config.borrow().ignored_errors.contains(kind) {
            self.settle(permit, now, Settle::Cancelled)
        } else {
            self.settle(permit, now, Settle::Failure)
        }
    }

    /// Reports that the call made under `permit` ended without a result (its future was dropped,
    /// it panicked): the slot is freed and nothing is counted.
    pub fn on_cancelled(&mut self, permit: Permit, now: Instant) -> Option<Transition> {
        self.settle(permit, now, Settle::Cancelled)
    }

    /// Applies the timers due at `now`: `Open -> HalfOpen` at the end of the open time,
    /// `HalfOpen -> Open` (or `-> Closed`, see `after_max_wait_in_half_open`) when the cycle
    /// outlived `max_wait_in_half_open`. A timer that ends at
    /// [`Instant::MAX`] (its end saturated) never fires.
    pub fn poll(&mut self, now: Instant) -> Option<Transition> {
        match self.phase {
            Phase::Open { until } if until.is_reached_at(now) => self.enter(Phase::HalfOpen {
                since: now,
                in_flight: 0,
                reported: 0,
                failures: 0,
                slow: 0,
            }),
            Phase::ForcedOpen { until, then } if until.is_reached_at(now) => match then {
                Resume::Disabled => self.enter(Phase::Disabled),
                Resume::MetricsOnly => self.metrics_only(),
                Resume::Closed => {
                    self.reopens = 0;
                    self.close()
                }
            },
            Phase::HalfOpen {
                since,
                reported,
                failures,
                slow,
                ..
            } if self.half_open_ends(since).is_reached_at(now) => {
                match self.config.borrow().after_max_wait_in_half_open {
                    AfterMaxWait::Open => {
                        let trip = Trip {
                            reason: OpenReason::HalfOpenTimeout,
                            calls: u32::from(reported),
                            failures: u32::from(failures),
                            slow: u32::from(slow),
                            consecutive_failures: 0,
                        };
                        self.trip(now, trip)
                    }
                    AfterMaxWait::Closed => self.close(),
                }
            }
            _ => None,
        }
    }

    /// Holds the breaker open until [`reset`](Self::reset), whatever the calls do.
    pub fn force_open(&mut self) -> Option<Transition> {
        self.force_open_until(Instant::MAX)
    }

    /// Holds the breaker open until `until` (a maintenance window), whatever the calls do, then
    /// returns it to the mode it was in: disabled if it was disabled, metrics-only if it was
    /// metrics-only (both with a fresh window), otherwise closed with a fresh window (as
    /// [`reset`](Self::reset)). [`Instant::MAX`] never ends (as
    /// [`force_open`](Self::force_open)); [`reset`](Self::reset), [`disable`](Self::disable)
    /// and [`metrics_only`](Self::metrics_only) end it early. Forcing a forced breaker again
    /// moves its end. Its trip records the window as of the last input (with no `now` to read
    /// it at; [`force_open_for`](Self::force_open_for) has one).
    pub fn force_open_until(&mut self, until: Instant) -> Option<Transition> {
        let counts = self.window.counts();
        self.force_open_with(until, counts)
    }

    /// [`force_open_until`](Self::force_open_until) `now + duration`; its trip records the
    /// window as of `now` (a window by time without what fell out of it by `now`).
    pub fn force_open_for(&mut self, duration: Duration, now: Instant) -> Option<Transition> {
        let counts = self.window.counts_at(now);
        self.force_open_with(now.saturating_add_ceil(duration), counts)
    }

    fn force_open_with(&mut self, until: Instant, counts: WindowCounts) -> Option<Transition> {
        let then = match &mut self.phase {
            Phase::ForcedOpen { until: end, .. } => {
                *end = until;
                return None;
            }
            Phase::Disabled => Resume::Disabled,
            Phase::MetricsOnly => Resume::MetricsOnly,
            _ => Resume::Closed,
        };
        self.trip = Some(Trip {
            reason: OpenReason::Forced,
            calls: counts.calls,
            failures: counts.failures,
            slow: counts.slow,
            consecutive_failures: self.consecutive_failures,
        });
        self.enter(Phase::ForcedOpen { until, then })
    }

    /// Lets every call through and never changes state until [`reset`](Self::reset); outcomes
    /// are still counted.
    pub fn disable(&mut self) -> Option<Transition> {
        self.enter(Phase::Disabled)
    }

    /// Shadow mode: lets every call through, records and evaluates outcomes as a closed breaker
    /// does (from a fresh window), and where a closed breaker would open, counts it
    /// ([`CircuitBreakerStats::would_open_count`]), keeps its figures
    /// ([`CircuitBreakerStats::trip`]), starts a fresh window and returns a transition from
    /// and to [`MetricsOnly`](CircuitState::MetricsOnly) that carries the [`Trip`] (see
    /// [`Transition::would_open`]), while it never rejects. [`reset`](Self::reset) makes it a
    /// real breaker again.
    pub fn metrics_only(&mut self) -> Option<Transition> {
        if matches!(self.phase, Phase::MetricsOnly) {
            return None;
        }
        self.window.clear();
        self.consecutive_failures = 0;
        self.enter(Phase::MetricsOnly)
    }

    /// Closes the breaker with a fresh window and open-time growth; counters are kept.
    pub fn reset(&mut self) -> Option<Transition> {
        self.reopens = 0;
        self.close()
    }

    // ---- getters ------------------------------------------------------------------------

    /// The current state (timers apply on the next input, see [`poll_at`](Self::poll_at)).
    #[must_use]
    pub fn state(&self) -> CircuitState {
        self.phase.state()
    }

    /// The current cycle: it changes (wrapping) on every transition, and permits carry it.
    #[must_use]
    pub fn generation(&self) -> u32 {
        self.generation
    }

    /// Counters and rates.
    #[must_use]
    pub fn stats(&self) -> CircuitBreakerStats {
        let finished = self.success_count.saturating_add(self.failure_count);
        // The correctly rounded quotient, by integer long division (no soft-float division).
        let success_rate = crate::float::ratio_f64(self.success_count, finished);
        CircuitBreakerStats {
            state: self.state(),
            failure_count: self.failure_count,
            success_count: self.success_count,
            rejected_count: self.rejected_count,
            slow_call_count: self
                .slow_success_count
                .saturating_add(self.slow_failure_count),
            slow_success_count: self.slow_success_count,
            slow_failure_count: self.slow_failure_count,
            consecutive_failures: self.consecutive_failures,
            transitions: self.generation,
            success_rate,
            trip: self.trip,
            would_open_count: self.would_open_count,
        }
    }

    /// What the sliding window held at the last input or [`poll`](Self::poll) (a window by
    /// time drops old buckets when time is handed in); [`window_counts_at`](Self::window_counts_at)
    /// reads it as of a given time.
    #[must_use]
    pub fn window_counts(&self) -> WindowCounts {
        self.window.counts()
    }

    /// What the sliding window holds as of `now`, as Resilience4j's `getMetrics()` reads it:
    /// a window by time without the buckets that fell out of it by `now` (nothing changes).
    #[must_use]
    pub fn window_counts_at(&self, now: Instant) -> WindowCounts {
        self.window.counts_at(now)
    }

    // ---- deferred successes -------------------------------------------------------------

    /// Until when (exclusive) a fast success reported in the current cycle changes nothing but
    /// counts, so an adapter may count it on the side and hand it over later with
    /// [`record_successes`](Self::record_successes); `None` when the next success must go
    /// through [`on_success`](Self::on_success).
    ///
    /// A success can change the state only when it ends a failure streak (consecutive mode, or
    /// the `consecutive_failures` statistic), when it brings the window up to `minimum_calls`
    /// while it holds failures or slow calls (so the rates are evaluated for the first time), or
    /// when old outcomes dropped out of a window by time since the last evaluation. So:
    /// - disabled: [`Instant::MAX`] (outcomes are only counted);
    /// - closed with no failure streak and a window that either holds `minimum_calls` calls or
    ///   no failure and no slow call: the window's [`stable_until`](SlidingWindow::stable_until)
    ///   ([`Instant::MAX`] but for a window by time, the end of its current bucket);
    /// - otherwise `None`.
    ///
    /// Successes handed over by `record_successes` before the next input give exactly the
    /// decisions that reporting each one through `on_success` would have given.
    #[must_use]
    pub fn successes_deferrable_until(&self) -> Option<Instant> {
        match self.phase {
            Phase::Disabled => Some(Instant::MAX),
            Phase::Closed | Phase::MetricsOnly if self.consecutive_failures == 0 => {
                let config = self.config.borrow();
                let windowed =
                    config.failure_rate_threshold.is_some() || config.slow_call_duration.is_some();
                if !windowed {
                    return Some(Instant::MAX);
                }
                let counts = self.window.counts();
                let settled = counts.calls >= config.minimum_calls
                    || (counts.failures == 0 && counts.slow == 0);
                settled.then(|| self.window.stable_until())
            }
            _ => None,
        }
    }

    /// Hands over `count` fast successes that an adapter counted on the side while
    /// [`successes_deferrable_until`](Self::successes_deferrable_until) allowed it: counted in
    /// the stats; while closed, added to the window (at its current bucket) without evaluating
    /// either rate. Call it before the next input, so the window sees them in order.
    pub fn record_successes(&mut self, count: u64) {
        if count == 0 {
            return;
        }
        self.success_count = self.success_count.saturating_add(count);
        if matches!(self.phase, Phase::Closed | Phase::MetricsOnly) {
            self.consecutive_failures = 0;
            let config = self.config.borrow();
            if config.failure_rate_threshold.is_some() || config.slow_call_duration.is_some() {
                self.window.record_successes(count);
            }
        }
    }

    // ---- outputs ------------------------------------------------------------------------

    /// When time alone will next change the state: the end of the open time, of a timed
    /// force-open, or of the half-open cycle. `None` when no timer runs; [`Instant::MAX`] when the timer never ends
    /// (see [`Instant::is_reached_at`]).
    #[must_use]
    pub fn poll_at(&self) -> Option<Instant> {
        match self.phase {
            Phase::Open { until } => Some(until),
            Phase::ForcedOpen { until, .. } => (until != Instant::MAX).then_some(until),
            Phase::HalfOpen { since, .. } => Some(self.half_open_ends(since)),
            _ => None,
        }
    }

    // ---- internals ----------------------------------------------------------------------

    fn settle(&mut self, permit: Permit, now: Instant, outcome: Settle) -> Option<Transition> {
        let config = self.config.borrow();
        // A slow failure is slow too: it counts towards both rates.
        let slow = outcome != Settle::Cancelled
            && config
                .slow_call_duration
                .is_some_and(|limit| now.saturating_duration_since(permit.acquired_at) >= limit);
        match outcome {
            Settle::Success => self.success_count = self.success_count.saturating_add(1),
            Settle::Failure => self.failure_count = self.failure_count.saturating_add(1),
            Settle::Cancelled => {}
        }
        match (slow, outcome) {
            (true, Settle::Success) => {
                self.slow_success_count = self.slow_success_count.saturating_add(1);
            }
            (true, _) => self.slow_failure_count = self.slow_failure_count.saturating_add(1),
            (false, _) => {}
        }
        // Timers first: a result that arrives after its cycle ended belongs to no live cycle.
        if let Some(transition) = self.poll(now) {
            return Some(transition);
        }
        if permit.generation != self.generation {
            return None;
        }
        let failed = match outcome {
            Settle::Cancelled => {
                if let Phase::HalfOpen { in_flight, .. } = &mut self.phase {
                    *in_flight = in_flight.saturating_sub(1);
                }
                return None;
            }
            Settle::Success => false,
            Settle::Failure => true,
        };
        match self.phase {
            Phase::Closed | Phase::MetricsOnly => self.record_closed(failed, slow, now),
            Phase::HalfOpen {
                since,
                in_flight,
                reported,
                failures,
                slow: slow_probes,
            } => {
                let config = self.config.borrow();
                let reported = reported.saturating_add(1);
                // By rate, the cycle's figures count every probe; probe by probe they stay zero
                // (the first bad probe decides).
                let (failures, slow_probes) = if config.half_open_permitted_calls.is_some() {
                    (
                        failures.saturating_add(u8::from(failed)),
                        slow_probes.saturating_add(u8::from(slow)),
                    )
                } else {
                    (failures, slow_probes)
                };
                let decision = match config.half_open_permitted_calls {
                    Some(permitted) => {
                        decide_by_rate(config, permitted, reported, failures, slow_probes)
                            .map(|opens| (opens, failures, slow_probes))
                    }
                    // Probe by probe: the first bad probe opens (its figures: the good ones
                    // before it and itself).
                    None if failed || slow => Some((true, u8::from(failed), u8::from(slow))),
                    None if u32::from(reported) >= config.success_threshold => Some((false, 0, 0)),
                    None => None,
                };
                let Some(decision) = decision else {
                    self.phase = Phase::HalfOpen {
                        since,
                        in_flight: in_flight.saturating_sub(1),
                        reported,
                        failures,
                        slow: slow_probes,
                    };
                    return None;
                };
                match decision {
                    (true, failures, slow) => {
                        let trip = Trip {
                            reason: OpenReason::ProbeFailed,
                            calls: u32::from(reported),
                            failures: u32::from(failures),
                            slow: u32::from(slow),
                            consecutive_failures: u32::from(
                                config.half_open_permitted_calls.is_none() && failed,
                            ),
                        };
                        self.trip(now, trip)
                    }
                    (false, _, _) => {
                        self.reopens = 0;
                        self.close()
                    }
                }
            }
            _ => None,
        }
    }

    fn record_closed(&mut self, failed: bool, slow: bool, now: Instant) -> Option<Transition> {
        self.consecutive_failures = if failed {
            self.consecutive_failures.saturating_add(1)
        } else {
            0
        };
        let config = self.config.borrow();
        let rate_mode = config.failure_rate_threshold.is_some();
        let windowed = rate_mode || config.slow_call_duration.is_some();
        if windowed {
            self.window.advance(now);
            self.window.record(Outcome { failed, slow });
        }
        let counts = self.window.counts();
        let over = |count: u32, threshold: f32| {
            // count as f32 / calls as f32 >= threshold, without dividing, in integers.
            crate::float::reaches_rate(count, threshold, counts.calls)
        };
        let enough = counts.calls >= config.minimum_calls;
        let reason = if rate_mode {
            (enough
                && config
                    .failure_rate_threshold
                    .is_some_and(|rate| over(counts.failures, rate)))
            .then_some(OpenReason::FailureRate)
        } else {
            (self.consecutive_failures >= config.failure_threshold)
                .then_some(OpenReason::ConsecutiveFailures)
        }
        .or_else(|| {
            (config.slow_call_duration.is_some()
                && enough
                && over(counts.slow, config.slow_call_rate_threshold))
            .then_some(OpenReason::SlowCallRate)
        })?;
        let trip = Trip {
            reason,
            calls: counts.calls,
            failures: counts.failures,
            slow: counts.slow,
            consecutive_failures: self.consecutive_failures,
        };
        if matches!(self.phase, Phase::MetricsOnly) {
            // Shadow mode: report and start over, as a trip would, without rejecting anything.
            self.would_open_count = self.would_open_count.saturating_add(1);
            self.trip = Some(trip);
            self.window.clear();
            self.consecutive_failures = 0;
            return Some(Transition {
                from: CircuitState::MetricsOnly,
                to: CircuitState::MetricsOnly,
                trip: Some(trip),
            });
        }
        self.trip(now, trip)
    }

    /// When the current half-open cycle ends by `max_wait_in_half_open`.
    fn half_open_ends(&self, since: Instant) -> Instant {
        since.saturating_add_ceil(self.config.borrow().max_wait_in_half_open)
    }

    /// Opens the breaker at `now`, for `trip`'s reason, for the open time that the re-open count
    /// gives.
    fn trip(&mut self, now: Instant, trip: Trip) -> Option<Transition> {
        if matches!(self.phase, Phase::HalfOpen { .. }) {
            self.reopens = self.reopens.saturating_add(1);
        }
        let open_for = self.config.borrow().open_duration(self.reopens);
        self.window.clear();
        self.consecutive_failures = 0;
        self.trip = Some(trip);
        self.enter(Phase::Open {
            until: now.saturating_add_ceil(open_for),
        })
    }

    fn close(&mut self) -> Option<Transition> {
        self.window.clear();
        self.consecutive_failures = 0;
        self.enter(Phase::Closed)
    }

    /// Moves to `to` and starts a new cycle; `None` when already there. The trip is kept while
    /// the breaker is open, half-open or forced open (a transition to `Open` or `ForcedOpen`
    /// carries it) and dropped otherwise.
    fn enter(&mut self, phase: Phase) -> Option<Transition> {
        let from = self.state();
        let to = phase.state();
        if from == to {
            return None;
        }
        self.phase = phase;
        self.generation = self.generation.wrapping_add(1);
        let trip = match to {
            CircuitState::Open | CircuitState::ForcedOpen => self.trip,
            CircuitState::HalfOpen => None,
            CircuitState::Closed | CircuitState::Disabled | CircuitState::MetricsOnly => {
                self.trip = None;
                None
            }
        };
        Some(Transition { from, to, trip })
    }
}

/// The breaker's state with the deadline each timer runs to (smoltcp's timer enum): an open
/// breaker knows until when, a half-open one since when its cycle runs and its probes.
#[derive(Clone, Copy, Debug)]
enum Phase {
    Closed,
    MetricsOnly,
    Disabled,
    Open {
        until: Instant,
    },
    HalfOpen {
        since: Instant,
        /// Probes admitted and not yet settled.
        in_flight: u16,
        /// Probes of this cycle that reported (probe by probe, all of them good).
        reported: u16,
        /// Failed ones among them (deciding by rate; at most 255 probes).
        failures: u8,
        /// Slow ones among them, failed or not (deciding by rate).
        slow: u8,
    },
    /// `until` may be [`Instant::MAX`]: until a reset.
    ForcedOpen {
        until: Instant,
        then: Resume,
    },
}

impl Phase {
    const fn state(self) -> CircuitState {
        match self {
            Self::Closed => CircuitState::Closed,
            Self::MetricsOnly => CircuitState::MetricsOnly,
            Self::Disabled => CircuitState::Disabled,
            Self::Open { .. } => CircuitState::Open,
            Self::HalfOpen { .. } => CircuitState::HalfOpen,
            Self::ForcedOpen { .. } => CircuitState::ForcedOpen,
        }
    }
}

/// The mode a timed force-open returns to.
#[derive(Clone, Copy, Debug)]
enum Resume {
    Closed,
    Disabled,
    MetricsOnly,
}

/// The decision of a half-open cycle by rate once `reported` of its `permitted` probes reported,
/// `failures` and `slow` of them bad: `Some(true)` to open, `Some(false)` to close, `None` while
/// the probes still to report could go either way. The rates are over the `permitted` probes,
/// so the decision is the one Resilience4j takes when the last of them reports, taken as soon as
/// the rest cannot change it.
fn decide_by_rate(
    config: &CircuitBreakerConfig,
    permitted: u32,
    reported: u16,
    failures: u8,
    slow: u8,
) -> Option<bool> {
    let opens = |failures: u32, slow: u32| {
        config
            .failure_rate_threshold
            .is_some_and(|rate| crate::float::reaches_rate(failures, rate, permitted))
            || (config.slow_call_duration.is_some()
                && crate::float::reaches_rate(slow, config.slow_call_rate_threshold, permitted))
    };
    let (failures, slow) = (u32::from(failures), u32::from(slow));
    let left = permitted.saturating_sub(u32::from(reported));
    if opens(failures, slow) {
        Some(true)
    } else if !opens(failures.saturating_add(left), slow.saturating_add(left)) {
        Some(false)
    } else {
        None
    }
}

#[derive(Clone, Copy, PartialEq, Eq)]
enum Settle {
    Success,
    Failure,
    Cancelled,
}

#[cfg(test)]
mod tests;
