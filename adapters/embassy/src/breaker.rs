//! A circuit breaker that many embassy tasks share: the core state machine behind an
//! `embassy_sync` blocking mutex, with an async [`call`](CircuitBreaker::call).
//!
//! The core [`CircuitBreaker`](rustkernel_core::resilience::CircuitBreaker) takes `&mut self`
//! and is told the time. This wrapper holds it in a
//! `blocking_mutex::Mutex<M, RefCell<..>>`, reads embassy's clock, and settles every permit,
//! including the permit of a call whose future is dropped halfway (timeout, `select`, task
//! cancelled): a drop guard reports it as cancelled, so a half-open probe slot is freed at once
//! instead of waiting for `max_wait_in_half_open`.
//!
//! The lock is held only for the few instructions of a state-machine step, never across an
//! `.await` and never while user code (the operation, an observer) runs.
//!
//! # Choosing the mutex
//! `M` is any [`RawMutex`]; the caller picks the locking cost:
//! - [`CriticalSectionRawMutex`] (the default): safe to share with interrupts and other cores;
//!   each step runs in a critical section.
//! - [`NoopRawMutex`](embassy_sync::blocking_mutex::raw::NoopRawMutex): no locking, for a breaker
//!   used by tasks of one executor only (the type is then not `Sync`, so it cannot be a `static`;
//!   keep it in a task or a `StaticCell`).
//! - `ThreadModeRawMutex` (Cortex-M): a `static` used only from thread mode.
//!
//! # Building one in a `static`
//! [`CircuitBreaker::new`] and [`with_window`](CircuitBreaker::with_window) are `const` and
//! check the configuration there: in a `static` an invalid one fails the build, so a breaker
//! that exists always works. At run time they panic on an invalid configuration;
//! [`try_new`](CircuitBreaker::try_new) and [`try_with_window`](CircuitBreaker::try_with_window)
//! return the [`ConfigError`] instead. [`from_static`](CircuitBreaker::from_static) shares a
//! `static` configuration by reference (it stays in flash);
//! [`from_const`](CircuitBreaker::from_const) takes a configuration that is a type
//! ([`FixedConfig`]), whose every read is a constant, so the firmware leaves out the code of
//! the modes it turns off (884 B of flash on the Cortex-M4F example). A window by time
//! ([`TimeWindow`](rustkernel_core::resilience::TimeWindow)) takes its bucket length from the
//! configuration at run time: build that breaker with `try_with_window` (in a task, or put it
//! in a `StaticCell`).
//!
//! ```
//! use core::time::Duration;
//! use embassy_sync::blocking_mutex::raw::CriticalSectionRawMutex;
//! use rustkernel_core::error::ErrorKind;
//! use rustkernel_core::resilience::{CircuitBreakerConfig, CircuitState};
//! use rustkernel_embassy::breaker::CircuitBreaker;
//! use rustkernel_embassy::ResilienceError;
//!
//! // Checked when the program is compiled: a zero threshold here would not build.
//! static BREAKER: CircuitBreaker<CriticalSectionRawMutex> =
//!     CircuitBreaker::new(CircuitBreakerConfig {
//!         failure_threshold: 2,
//!         timeout: Duration::from_secs(5),
//!         ..CircuitBreakerConfig::DEFAULT
//!     });
//!
//! # embassy_futures::block_on(async {
//! for _ in 0..2 {
//!     let result = BREAKER.call(|| async { Err::<u32, _>(ErrorKind::Transient) }).await;
//!     assert_eq!(result, Err(ResilienceError::Operation(ErrorKind::Transient)));
//! }
//! assert_eq!(BREAKER.state(), CircuitState::Open);
//! let rejected = BREAKER.call(|| async { Ok::<u32, ErrorKind>(7) }).await;
//! assert_eq!(rejected, Err(ResilienceError::CircuitOpen));
//! # });
//! ```
//!
//! An invalid configuration in a `static` does not compile; the error names the field and its
//! rule (`evaluation panicked: invalid circuit breaker configuration:
//! circuit_breaker.failure_threshold must be greater than zero`):
//!
//! ```compile_fail,E0080
//! use embassy_sync::blocking_mutex::raw::CriticalSectionRawMutex;
//! use rustkernel_core::resilience::CircuitBreakerConfig;
//! use rustkernel_embassy::breaker::CircuitBreaker;
//!
//! static BROKEN: CircuitBreaker<CriticalSectionRawMutex> =
//!     CircuitBreaker::new(CircuitBreakerConfig {
//!         failure_threshold: 0,
//!         ..CircuitBreakerConfig::DEFAULT
//!     });
//! ```

use core::borrow::Borrow;
use core::cell::RefCell;
use core::fmt;
use core::future::Future;

use embassy_sync::blocking_mutex::Mutex;
use embassy_sync::blocking_mutex::raw::{CriticalSectionRawMutex, RawMutex};
use rustkernel_core::error::{
    ByClassify, Classifier, ConfigError, ErrorKind, ResilienceError, invalid_const,
};
use rustkernel_core::resilience::circuit_breaker::SlidingWindow;
use rustkernel_core::resilience::{
    CircuitBreaker as CoreBreaker, CircuitBreakerConfig, CircuitBreakerStats, CircuitState,
    ConstBreakerConfig, FixedConfig, NoWindow, Permit, Rejected, Transition,
};

use crate::time::{now, to_embassy_instant};

/// What a breaker answers in the one case it cannot decide: its lock re-entered (see
/// `with_breaker`). Held open, as a guard that cannot work must not let calls through.
const BUSY: Rejected = Rejected {
    state: CircuitState::ForcedOpen,
    retry_at: None,
    transition: None,
};

/// The stats of a breaker whose lock re-entered: nothing counted, held open.
const BUSY_STATS: CircuitBreakerStats = CircuitBreakerStats {
    state: BUSY.state,
    failure_count: 0,
    success_count: 0,
    rejected_count: 0,
    slow_call_count: 0,
    slow_success_count: 0,
    slow_failure_count: 0,
    consecutive_failures: 0,
    transitions: 0,
    success_rate: 1.0,
    trip: None,
    would_open_count: 0,
};

/// How a call ended, as the core is told.
#[derive(Clone, Copy)]
enum Outcome {
    Success,
    Failure(ErrorKind),
    Cancelled,
}

/// A circuit breaker shared by tasks (and, with [`CriticalSectionRawMutex`], interrupts), with
/// the chapter's `call(|| fut).await`.
///
/// Type parameters: `M` the [`RawMutex`] (see the [module docs](self)), `C` how the
/// configuration is held (`CircuitBreakerConfig` by value, `&'static CircuitBreakerConfig`
/// to share one `static` configuration, or [`FixedConfig<T>`], a configuration that is a
/// type), `W` the sliding window
/// ([`NoWindow`] for consecutive-failure mode, `CountWindow<N>` for failure-rate mode).
///
/// # Method families
/// - Constructors: `const` [`new`](Self::new) / [`with_window`](Self::with_window) /
///   [`from_static`](Self::from_static) / [`from_const`](CircuitBreaker::from_const)
///   (checked when compiled, fit for `static`s),
///   `const` [`from_core`](Self::from_core), and [`try_new`](Self::try_new) /
///   [`try_with_window`](Self::try_with_window), which return the [`ConfigError`].
/// - Calls: [`call`](Self::call), [`call_observed`](Self::call_observed) (also hands every
///   [`Transition`] the call caused to an observer, for logs and telemetry), and the manual
///   [`acquire`](Self::acquire) / [`acquire_observed`](Self::acquire_observed), which return a
///   [`BreakerCall`] guard to settle with `success`/`failure` (dropping it settles as cancelled).
/// - Timers: [`poll`](Self::poll) and [`poll_at`](Self::poll_at) (when time alone changes the
///   state); calls poll on their own, so these are only needed to report `Open -> HalfOpen`
///   without waiting for the next call.
/// - Operator controls: [`force_open`](Self::force_open), [`disable`](Self::disable),
///   [`reset`](Self::reset).
/// - Getters: [`state`](Self::state), [`stats`](Self::stats).
///
/// Every input reads `embassy_time::Instant::now()` through [`crate::time::now`].
pub struct CircuitBreaker<
    M: RawMutex = CriticalSectionRawMutex,
    C = CircuitBreakerConfig,
    W = NoWindow,
> {
    inner: Mutex<M, RefCell<CoreBreaker<C, W>>>,
}

/// The breaker of a valid configuration; an invalid one panics with its field and rule (in a
/// `const` or `static`: fails the build with "invalid circuit breaker configuration:
/// circuit_breaker.failure_rate_threshold must be greater than 0 and at most 1").
#[track_caller]
const fn checked<C: Copy, W: Copy>(
    breaker: Result<CoreBreaker<C, W>, ConfigError>,
) -> CoreBreaker<C, W> {
    match breaker {
        Ok(breaker) => breaker,
        Err(error) => invalid_const("circuit breaker configuration", &error),
    }
}

impl<M: RawMutex> CircuitBreaker<M, CircuitBreakerConfig, NoWindow> {
    /// A consecutive-failure breaker, `const` so it can initialise a `static`.
    ///
    /// # Panics
    /// When the configuration is invalid; in a `const` or `static` that is a compile error.
    /// [`try_new`](Self::try_new) returns the [`ConfigError`] instead.
    #[must_use]
    pub const fn new(config: CircuitBreakerConfig) -> Self {
        Self::with_window(config, NoWindow)
    }
}

impl<M: RawMutex, W: SlidingWindow + Copy> CircuitBreaker<M, CircuitBreakerConfig, W> {
    /// A breaker with a fresh sliding `window` (failure-rate mode: `CountWindow::new()`),
    /// `const`. A window by time does not compile here: use
    /// [`try_with_window`](Self::try_with_window).
    ///
    /// # Panics
    /// As [`new`](CircuitBreaker::new).
    #[must_use]
    pub const fn with_window(config: CircuitBreakerConfig, window: W) -> Self {
        Self::from_core(checked(CoreBreaker::try_const(config, window)))
    }
}

impl<M: RawMutex, W: SlidingWindow + Copy> CircuitBreaker<M, &'static CircuitBreakerConfig, W> {
    /// A breaker that shares a `static` configuration (`NoWindow` for consecutive-failure
    /// mode), `const`.
    ///
    /// # Panics
    /// As [`new`](CircuitBreaker::new).
    #[must_use]
    pub const fn from_static(config: &'static CircuitBreakerConfig, window: W) -> Self {
        Self::from_core(checked(CoreBreaker::try_const_ref(config, window)))
    }
}

impl<M: RawMutex, T: ConstBreakerConfig, W: SlidingWindow + Copy>
    CircuitBreaker<M, FixedConfig<T>, W>
{
    /// A breaker over [`T::CONFIG`](ConstBreakerConfig::CONFIG), a configuration that is a
    /// type (`NoWindow` for consecutive-failure mode), `const`: every read of the
    /// configuration is a constant, so the code of the modes it turns off is left out of the
    /// firmware ([`FixedConfig`]).
    ///
    /// # Panics
    /// As [`new`](CircuitBreaker::new).
    #[must_use]
    pub const fn from_const(window: W) -> Self {
        Self::from_core(checked(CoreBreaker::try_const_fixed(window)))
    }
}

impl<M: RawMutex, C, W> CircuitBreaker<M, C, W> {
    /// Shares an already built core breaker (its state and counters are kept).
    #[must_use]
    pub const fn from_core(breaker: CoreBreaker<C, W>) -> Self {
        Self {
            inner: Mutex::new(RefCell::new(breaker)),
        }
    }
}

impl<M: RawMutex, C: Borrow<CircuitBreakerConfig>> CircuitBreaker<M, C, NoWindow> {
    /// A consecutive-failure breaker, checked now.
    ///
    /// # Errors
    /// The [`ConfigError`] of [`CircuitBreakerConfig::validate`].
    pub fn try_new(config: C) -> Result<Self, ConfigError> {
        Self::try_with_window(config, NoWindow)
    }
}

impl<M: RawMutex, C: Borrow<CircuitBreakerConfig>, W: SlidingWindow> CircuitBreaker<M, C, W> {
    /// A breaker with a sliding `window` (by count or by time), checked now.
    ///
    /// # Errors
    /// The [`ConfigError`] of [`CircuitBreakerConfig::validate_for_window`], or the window's
    /// own (a window by time needs `window_duration`).
    pub fn try_with_window(config: C, window: W) -> Result<Self, ConfigError> {
        CoreBreaker::try_with_window(config, window).map(Self::from_core)
    }

    /// Runs the operation if the breaker admits it, and records its outcome.
    ///
    /// `op` is called only when a permit was granted; its error's kind
    /// ([`Classify`](rustkernel_core::error::Classify)) decides
    /// whether the failure counts (kinds in `ignored_errors` do not). If the returned future is
    /// dropped before `op`'s future completes, the permit is settled as cancelled.
    ///
    /// # Errors
    /// [`ResilienceError::CircuitOpen`] when the breaker is open, forced open, half-open with
    /// every probe slot taken; [`ResilienceError::Operation`] with `op`'s own error.
    pub async fn call<T, R, F, Fut>(
        &self,
        op: F,
    ) -> Result<T, ResilienceError<<ByClassify as Classifier<R>>::Error>>
    where
        F: FnOnce() -> Fut,
        Fut: Future<Output = Result<T, R>>,
        ByClassify: Classifier<R>,
    {
        self.call_classified(&ByClassify, op, ignore_transition)
            .await
    }

    /// [`call`](Self::call), handing each [`Transition`] the call causes to `observer`
    /// (`Open -> HalfOpen` when it is admitted as a probe, `Closed -> Open` when its failure
    /// trips the breaker, ...). The observer runs outside the lock, so it may use the breaker.
    ///
    /// # Errors
    /// As [`call`](Self::call).
    pub async fn call_observed<T, R, F, Fut, O>(
        &self,
        op: F,
        observer: O,
    ) -> Result<T, ResilienceError<<ByClassify as Classifier<R>>::Error>>
    where
        F: FnOnce() -> Fut,
        Fut: Future<Output = Result<T, R>>,
        ByClassify: Classifier<R>,
        O: FnMut(Transition),
    {
        self.call_classified(&ByClassify, op, observer).await
    }

    /// [`call_observed`](Self::call_observed) with the error classified by `classifier`: a
    /// closure `|e: &E| ErrorKind::..` for an error type that is not
    /// [`Classify`](rustkernel_core::error::Classify). A guarded call's own
    /// [`ResilienceError`] is flattened by the default classifier, never nested.
    ///
    /// # Errors
    /// As [`call`](Self::call).
    pub async fn call_classified<T, R, F, Fut, K, O>(
        &self,
        classifier: &K,
        op: F,
        observer: O,
    ) -> Result<T, ResilienceError<K::Error>>
    where
        F: FnOnce() -> Fut,
        Fut: Future<Output = Result<T, R>>,
        K: Classifier<R>,
        O: FnMut(Transition),
    {
        let Ok(call) = self.acquire_observed(observer) else {
            return Err(ResilienceError::CircuitOpen);
        };
        match op().await {
            Ok(value) => {
                call.success();
                Ok(value)
            }
            Err(error) => {
                let error = classifier.flatten(error);
                call.failure(classifier.kind_of(&error));
                Err(error)
            }
        }
    }

    /// Asks for a permit to make one call now; settle it through the returned guard.
    ///
    /// # Errors
    /// The core's [`Rejected`] (with `retry_at`, when known, on the core's clock).
    pub fn acquire(&self) -> Result<BreakerCall<'_, M, C, W>, Rejected> {
        self.acquire_observed(ignore_transition)
    }

    /// [`acquire`](Self::acquire), handing transitions (now and when the guard settles) to
    /// `observer`.
    ///
    /// # Errors
    /// As [`acquire`](Self::acquire).
    pub fn acquire_observed<O: FnMut(Transition)>(
        &self,
        mut observer: O,
    ) -> Result<BreakerCall<'_, M, C, W, O>, Rejected> {
        let at = now();
        let decision = self
            .with_breaker(|breaker| breaker.try_acquire(at))
            .unwrap_or(Err(BUSY));
        match decision {
            Ok(permit) => {
                if let Some(transition) = permit.transition() {
                    observer(transition);
                }
                Ok(BreakerCall {
                    breaker: self,
                    permit: Some(permit),
                    observer,
                })
            }
            Err(rejected) => {
                if let Some(transition) = rejected.transition {
                    observer(transition);
                }
                Err(rejected)
            }
        }
    }

    /// Lets time act: turns `Open` into `HalfOpen` once the open time is over, and re-opens a
    /// half-open cycle that outlived `max_wait_in_half_open`.
    pub fn poll(&self) -> Option<Transition> {
        let at = now();
        self.with_breaker(|breaker| breaker.poll(at)).flatten()
    }

    /// When time alone next changes the state (call [`poll`](Self::poll) then), on embassy's
    /// clock; `None` when only calls or operators can change it.
    #[must_use]
    pub fn poll_at(&self) -> Option<embassy_time::Instant> {
        self.with_breaker(|breaker| breaker.poll_at())
            .flatten()
            .map(to_embassy_instant)
    }

    /// Holds the breaker open until [`reset`](Self::reset) (operator action).
    pub fn force_open(&self) -> Option<Transition> {
        self.with_breaker(CoreBreaker::force_open).flatten()
    }

    /// Holds the breaker open for `duration` (a maintenance window), then returns it to the mode
    /// it was in (disabled, metrics-only, or closed with a fresh window) on the next call or
    /// [`poll`](Self::poll).
    pub fn force_open_for(&self, duration: core::time::Duration) -> Option<Transition> {
        let at = now();
        self.with_breaker(|breaker| breaker.force_open_for(duration, at))
            .flatten()
    }

    /// Lets every call through and stops counting until [`reset`](Self::reset).
    pub fn disable(&self) -> Option<Transition> {
        self.with_breaker(CoreBreaker::disable).flatten()
    }

    /// Shadow mode (see the core's
    /// [`metrics_only`](rustkernel_core::resilience::CircuitBreaker::metrics_only)): every call
    /// passes, outcomes are evaluated as when closed, and where the breaker would open the call's
    /// observer gets a transition from and to `MetricsOnly` carrying the trip
    /// ([`Transition::would_open`]); [`reset`](Self::reset) ends it.
    pub fn metrics_only(&self) -> Option<Transition> {
        self.with_breaker(CoreBreaker::metrics_only).flatten()
    }

    /// Closes the breaker and forgets the open-time growth; counters are kept.
    pub fn reset(&self) -> Option<Transition> {
        self.with_breaker(CoreBreaker::reset).flatten()
    }

    /// The current state.
    ///
    /// The state changes only on inputs: an `Open` breaker whose open time is over still
    /// reports `Open` until a call or [`poll`](Self::poll) turns it half-open.
    #[must_use]
    pub fn state(&self) -> CircuitState {
        self.with_breaker(|breaker| breaker.state())
            .unwrap_or(BUSY.state)
    }

    /// Counters and rates since the breaker was built.
    #[must_use]
    pub fn stats(&self) -> CircuitBreakerStats {
        self.with_breaker(|breaker| breaker.stats())
            .unwrap_or(BUSY_STATS)
    }

    /// Settles a permit at the current time; the transition it caused, if any.
    fn settle(&self, permit: Permit, outcome: Outcome) -> Option<Transition> {
        let at = now();
        self.with_breaker(|breaker| match outcome {
            Outcome::Success => breaker.on_success(permit, at),
            Outcome::Failure(kind) => breaker.on_failure(permit, kind, at),
            Outcome::Cancelled => breaker.on_cancelled(permit, at),
        })
        .flatten()
    }

    /// Locks and runs `f` on the core breaker.
    ///
    /// `None` only if the `RefCell` is already borrowed, which needs a re-entrant lock (a
    /// `NoopRawMutex` breaker used from inside its own step, through a `Borrow` or
    /// `SlidingWindow` impl); nothing in this crate runs user code under the lock, so callers
    /// treat it as "cannot decide" and fail closed.
    fn with_breaker<R>(&self, f: impl FnOnce(&mut CoreBreaker<C, W>) -> R) -> Option<R> {
        self.inner
            .lock(|cell| Some(f(&mut *cell.try_borrow_mut().ok()?)))
    }
}

/// The observer of [`CircuitBreaker::call`] and [`CircuitBreaker::acquire`]: ignores
/// transitions.
pub fn ignore_transition(_transition: Transition) {}

impl<M: RawMutex, C: Borrow<CircuitBreakerConfig>, W: SlidingWindow> fmt::Debug
    for CircuitBreaker<M, C, W>
{
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("CircuitBreaker")
            .field("stats", &self.stats())
            .finish_non_exhaustive()
    }
}

/// One admitted call: settle it with [`success`](Self::success) or
/// [`failure`](Self::failure); dropping it unsettled reports it as cancelled (neither success
/// nor failure, and a half-open probe slot is freed).
#[must_use = "dropping the guard settles the call as cancelled"]
pub struct BreakerCall<
    'a,
    M: RawMutex,
    C: Borrow<CircuitBreakerConfig>,
    W: SlidingWindow,
    O: FnMut(Transition) = fn(Transition),
> {
    breaker: &'a CircuitBreaker<M, C, W>,
    permit: Option<Permit>,
    observer: O,
}

impl<M: RawMutex, C: Borrow<CircuitBreakerConfig>, W: SlidingWindow, O: FnMut(Transition)>
    BreakerCall<'_, M, C, W, O>
{
    /// The permit this call holds (its cycle and start time); `None` once settled.
    #[must_use]
    pub fn permit(&self) -> Option<&Permit> {
        self.permit.as_ref()
    }

    /// The call succeeded; the transition it caused, if any (also given to the observer).
    pub fn success(mut self) -> Option<Transition> {
        self.finish(Outcome::Success)
    }

    /// The call failed with `kind`; the transition it caused, if any.
    pub fn failure(mut self, kind: ErrorKind) -> Option<Transition> {
        self.finish(Outcome::Failure(kind))
    }

    /// The call was abandoned; the same as dropping the guard, with the transition returned.
    pub fn cancel(mut self) -> Option<Transition> {
        self.finish(Outcome::Cancelled)
    }

    fn finish(&mut self, outcome: Outcome) -> Option<Transition> {
        let permit = self.permit.take()?;
        let transition = self.breaker.settle(permit, outcome);
        if let Some(transition) = transition {
            (self.observer)(transition);
        }
        transition
    }
}

impl<M: RawMutex, C: Borrow<CircuitBreakerConfig>, W: SlidingWindow, O: FnMut(Transition)> Drop
    for BreakerCall<'_, M, C, W, O>
{
    fn drop(&mut self) {
        let _ = self.finish(Outcome::Cancelled);
    }
}

impl<M: RawMutex, C: Borrow<CircuitBreakerConfig>, W: SlidingWindow, O: FnMut(Transition)>
    fmt::Debug for BreakerCall<'_, M, C, W, O>
{
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("BreakerCall")
            .field("permit", &self.permit)
            .finish_non_exhaustive()
    }
}
