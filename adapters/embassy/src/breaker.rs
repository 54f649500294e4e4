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
//! The core validates its configuration when it builds a breaker, which is not `const`. So
//! [`CircuitBreaker::new`] is `const` and only stores the configuration; the core breaker is
//! built, and the configuration validated, on first use. Call [`init`](CircuitBreaker::init) at
//! boot to build it then and see a [`ConfigError`] early. A breaker whose configuration is
//! invalid **fails closed**: it admits nothing ([`ResilienceError::CircuitOpen`]) and reports
//! [`CircuitState::ForcedOpen`], because a guard that cannot work must not silently let every
//! call through. It stays that way: [`reset`](CircuitBreaker::reset),
//! [`disable`](CircuitBreaker::disable) and [`force_open`](CircuitBreaker::force_open) return
//! `None` and change nothing, since there is no valid configuration to run on; fix the
//! configuration and rebuild. [`try_new`](CircuitBreaker::try_new) validates at once instead,
//! for breakers built at run time (in a task, or put in a `StaticCell`).
//!
//! [`CircuitBreakerConfig::validate`] is a `const fn`: `const _: () =
//! assert!(CONFIG.validate().is_ok());` next to a `static` configuration makes an invalid one
//! fail the build, as below; `init` then never reports it invalid.
//!
//! ```
//! use core::time::Duration;
//! use embassy_sync::blocking_mutex::raw::CriticalSectionRawMutex;
//! use rustkernel_core::error::ErrorKind;
//! use rustkernel_core::resilience::{CircuitBreakerConfig, CircuitState};
//! use rustkernel_embassy::breaker::CircuitBreaker;
//! use rustkernel_embassy::ResilienceError;
//!
//! static CONFIG: CircuitBreakerConfig = CircuitBreakerConfig {
//!     failure_threshold: 2,
//!     timeout: Duration::from_secs(5),
//!     ..CircuitBreakerConfig::DEFAULT
//! };
//! // Checked when the program is compiled (`validate` is a `const fn`).
//! const _: () = assert!(CONFIG.validate().is_ok());
//! static BREAKER: CircuitBreaker<CriticalSectionRawMutex, &CircuitBreakerConfig> =
//!     CircuitBreaker::new(&CONFIG);
//!
//! # embassy_futures::block_on(async {
//! BREAKER.init().expect("valid configuration");
//! for _ in 0..2 {
//!     let result = BREAKER.call(|| async { Err::<u32, _>(ErrorKind::Transient) }).await;
//!     assert_eq!(result, Err(ResilienceError::Operation(ErrorKind::Transient)));
//! }
//! assert_eq!(BREAKER.state(), CircuitState::Open);
//! let rejected = BREAKER.call(|| async { Ok::<u32, ErrorKind>(7) }).await;
//! assert_eq!(rejected, Err(ResilienceError::CircuitOpen));
//! # });
//! ```

use core::borrow::Borrow;
use core::cell::RefCell;
use core::fmt;
use core::future::Future;

use embassy_sync::blocking_mutex::Mutex;
use embassy_sync::blocking_mutex::raw::{CriticalSectionRawMutex, RawMutex};
use rustkernel_core::error::{ByClassify, Classifier, ConfigError, ErrorKind, ResilienceError};
use rustkernel_core::resilience::circuit_breaker::SlidingWindow;
use rustkernel_core::resilience::{
    CircuitBreaker as CoreBreaker, CircuitBreakerConfig, CircuitBreakerStats, CircuitState,
    NoWindow, Permit, Rejected, Transition,
};

use crate::time::{now, to_embassy_instant};

/// Where the core breaker is in its life: waiting to be built, built, or refused.
enum Slot<C, W> {
    /// Built by `new`/`with_window` in a `const`; validated on first use.
    Pending { config: C, window: W },
    /// Ready for calls.
    Ready(CoreBreaker<C, W>),
    /// The configuration was invalid: every call is refused.
    Invalid { error: ConfigError, rejected: u64 },
    /// While `build` moves the configuration into the core breaker. Seen from outside `build`
    /// only if a panic interrupted that move: the configuration is gone, every call is refused
    /// and [`CircuitBreaker::init`] says so.
    Building,
}

impl<C: Borrow<CircuitBreakerConfig>, W: SlidingWindow> Slot<C, W> {
    /// Turns `Pending` into `Ready` or `Invalid`; leaves the others as they are.
    ///
    /// The configuration is checked, and the window cleared, while they are still in
    /// `Pending`: a panic in that user code (a `Borrow` or `SlidingWindow` impl) leaves the slot
    /// `Pending`, and the next use builds again. Only a panic in the final move (the same user
    /// code panicking on a later call) can leave `Building`.
    fn build(&mut self) {
        let Slot::Pending { config, window } = self else {
            return;
        };
        let config: &CircuitBreakerConfig = (*config).borrow();
        if let Err(error) = config.validate_for_window(W::CAPACITY) {
            *self = Slot::Invalid { error, rejected: 0 };
            return;
        }
        window.clear();
        if let Slot::Pending { config, window } = core::mem::replace(self, Slot::Building) {
            *self = match CoreBreaker::try_with_window(config, window) {
                Ok(breaker) => Slot::Ready(breaker),
                Err(error) => Slot::Invalid { error, rejected: 0 },
            };
        }
    }
}

/// Why [`CircuitBreaker::init`] found the breaker unable to work; it then refuses every call
/// (as [`CircuitState::ForcedOpen`]).
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
#[cfg_attr(feature = "defmt", derive(defmt::Format))]
pub enum InitError {
    /// The configuration is invalid.
    Invalid(ConfigError),
    /// A panic interrupted the build after the configuration was moved out of the `const`
    /// breaker (a `Borrow` or `SlidingWindow` impl that panicked); nothing is left to build
    /// from. Build a new breaker.
    Interrupted,
}

impl fmt::Display for InitError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            InitError::Invalid(error) => {
                write!(f, "invalid circuit breaker configuration: {error}")
            }
            InitError::Interrupted => f.write_str(
                "the circuit breaker's build was interrupted by a panic; it refuses every call",
            ),
        }
    }
}

impl core::error::Error for InitError {
    fn source(&self) -> Option<&(dyn core::error::Error + 'static)> {
        match self {
            InitError::Invalid(error) => Some(error),
            InitError::Interrupted => None,
        }
    }
}

impl From<ConfigError> for InitError {
    fn from(error: ConfigError) -> Self {
        InitError::Invalid(error)
    }
}

/// A rejection by a breaker that cannot work (invalid configuration): held open.
const FAILED_CLOSED: Rejected = Rejected {
    state: CircuitState::ForcedOpen,
    retry_at: None,
    transition: None,
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
/// configuration is held (`CircuitBreakerConfig` by value, or `&'static CircuitBreakerConfig`
/// to share one `static` configuration), `W` the sliding window
/// ([`NoWindow`] for consecutive-failure mode, `CountWindow<N>` for failure-rate mode).
///
/// # Method families
/// - Constructors: `const` [`new`](Self::new) / [`with_window`](Self::with_window) /
///   [`from_core`](Self::from_core) (validated on first use, fit for `static`s), validating
///   [`try_new`](Self::try_new) / [`try_with_window`](Self::try_with_window), and
///   [`init`](Self::init) to validate a `const`-built one.
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
    inner: Mutex<M, RefCell<Slot<C, W>>>,
}

impl<M: RawMutex, C> CircuitBreaker<M, C, NoWindow> {
    /// A consecutive-failure breaker, `const` so it can initialise a `static`; the configuration
    /// is validated on first use (see [`init`](Self::init)).
    #[must_use]
    pub const fn new(config: C) -> Self {
        Self::with_window(config, NoWindow)
    }
}

impl<M: RawMutex, C, W> CircuitBreaker<M, C, W> {
    /// A breaker with a sliding `window` (failure-rate mode), `const`; validated on first use.
    #[must_use]
    pub const fn with_window(config: C, window: W) -> Self {
        Self {
            inner: Mutex::new(RefCell::new(Slot::Pending { config, window })),
        }
    }

    /// Shares an already built core breaker (its state and counters are kept).
    #[must_use]
    pub const fn from_core(breaker: CoreBreaker<C, W>) -> Self {
        Self {
            inner: Mutex::new(RefCell::new(Slot::Ready(breaker))),
        }
    }
}

impl<M: RawMutex, C: Borrow<CircuitBreakerConfig>> CircuitBreaker<M, C, NoWindow> {
    /// A consecutive-failure breaker, validated now.
    ///
    /// # Errors
    /// The [`ConfigError`] of [`CircuitBreakerConfig::validate`].
    pub fn try_new(config: C) -> Result<Self, ConfigError> {
        Self::try_with_window(config, NoWindow)
    }
}

impl<M: RawMutex, C: Borrow<CircuitBreakerConfig>, W: SlidingWindow> CircuitBreaker<M, C, W> {
    /// A breaker with a sliding `window`, validated now.
    ///
    /// # Errors
    /// The [`ConfigError`] of [`CircuitBreakerConfig::validate_for_window`].
    pub fn try_with_window(config: C, window: W) -> Result<Self, ConfigError> {
        CoreBreaker::try_with_window(config, window).map(Self::from_core)
    }

    /// Builds the core breaker now if it was built `const`, and reports whether it can work.
    /// Idempotent: later calls return the same answer.
    ///
    /// # Errors
    /// [`InitError::Invalid`] with the configuration's [`ConfigError`], or
    /// [`InitError::Interrupted`] when a panic interrupted the build beyond repair; the breaker
    /// then refuses every call, and operator controls ([`reset`](Self::reset),
    /// [`disable`](Self::disable), [`force_open`](Self::force_open)) do nothing.
    pub fn init(&self) -> Result<(), InitError> {
        self.with_slot(|slot| match slot {
            Slot::Invalid { error, .. } => Err(InitError::Invalid(*error)),
            Slot::Building => Err(InitError::Interrupted),
            Slot::Pending { .. } | Slot::Ready(_) => Ok(()),
        })
        .unwrap_or(Ok(()))
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
    /// every probe slot taken, or invalid; [`ResilienceError::Operation`] with `op`'s own error.
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
    /// The core's [`Rejected`] (with `retry_at`, when known, on the core's clock); a breaker
    /// with an invalid configuration rejects as `ForcedOpen`.
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
            .with_slot(|slot| match slot {
                Slot::Ready(breaker) => breaker.try_acquire(at),
                Slot::Invalid { rejected, .. } => {
                    *rejected = rejected.saturating_add(1);
                    Err(FAILED_CLOSED)
                }
                Slot::Pending { .. } | Slot::Building => Err(FAILED_CLOSED),
            })
            .unwrap_or(Err(FAILED_CLOSED));
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
        self.with_ready(|breaker| breaker.poll(at))
    }

    /// When time alone next changes the state (call [`poll`](Self::poll) then), on embassy's
    /// clock; `None` when only calls or operators can change it.
    #[must_use]
    pub fn poll_at(&self) -> Option<embassy_time::Instant> {
        self.with_ready(|breaker| breaker.poll_at())
            .map(to_embassy_instant)
    }

    /// Holds the breaker open until [`reset`](Self::reset) (operator action).
    pub fn force_open(&self) -> Option<Transition> {
        self.with_ready(CoreBreaker::force_open)
    }

    /// Holds the breaker open for `duration` (a maintenance window), then returns it to the mode
    /// it was in (disabled, metrics-only, or closed with a fresh window) on the next call or
    /// [`poll`](Self::poll).
    pub fn force_open_for(&self, duration: core::time::Duration) -> Option<Transition> {
        let at = now();
        self.with_ready(|breaker| breaker.force_open_for(duration, at))
    }

    /// Lets every call through and stops counting until [`reset`](Self::reset).
    pub fn disable(&self) -> Option<Transition> {
        self.with_ready(CoreBreaker::disable)
    }

    /// Shadow mode (see the core's
    /// [`metrics_only`](rustkernel_core::resilience::CircuitBreaker::metrics_only)): every call
    /// passes, outcomes are evaluated as when closed, and where the breaker would open the call's
    /// observer gets a transition from and to `MetricsOnly` carrying the trip
    /// ([`Transition::would_open`]); [`reset`](Self::reset) ends it.
    pub fn metrics_only(&self) -> Option<Transition> {
        self.with_ready(CoreBreaker::metrics_only)
    }

    /// Closes the breaker and forgets the open-time growth; counters are kept.
    pub fn reset(&self) -> Option<Transition> {
        self.with_ready(CoreBreaker::reset)
    }

    /// The current state; `ForcedOpen` for a breaker whose configuration is invalid.
    ///
    /// The state changes only on inputs: an `Open` breaker whose open time is over still
    /// reports `Open` until a call or [`poll`](Self::poll) turns it half-open.
    #[must_use]
    pub fn state(&self) -> CircuitState {
        self.with_slot(|slot| match slot {
            Slot::Ready(breaker) => breaker.state(),
            _ => CircuitState::ForcedOpen,
        })
        .unwrap_or(CircuitState::ForcedOpen)
    }

    /// Counters and rates since the breaker was built. A breaker whose configuration is invalid
    /// reports `ForcedOpen` and counts only its rejections.
    #[must_use]
    pub fn stats(&self) -> CircuitBreakerStats {
        self.with_slot(|slot| match slot {
            Slot::Ready(breaker) => breaker.stats(),
            Slot::Invalid { rejected, .. } => failed_closed_stats(*rejected),
            _ => failed_closed_stats(0),
        })
        .unwrap_or(failed_closed_stats(0))
    }

    /// Settles a permit at the current time; the transition it caused, if any.
    fn settle(&self, permit: Permit, outcome: Outcome) -> Option<Transition> {
        let at = now();
        self.with_ready(|breaker| match outcome {
            Outcome::Success => breaker.on_success(permit, at),
            Outcome::Failure(kind) => breaker.on_failure(permit, kind, at),
            Outcome::Cancelled => breaker.on_cancelled(permit, at),
        })
    }

    /// Runs `f` on the built core breaker; `None` when the configuration is invalid.
    fn with_ready<R>(&self, f: impl FnOnce(&mut CoreBreaker<C, W>) -> Option<R>) -> Option<R> {
        self.with_slot(|slot| match slot {
            Slot::Ready(breaker) => f(breaker),
            _ => None,
        })
        .flatten()
    }

    /// Locks, builds the core breaker if needed, and runs `f` on the slot.
    ///
    /// `None` only if the `RefCell` is already borrowed, which needs a re-entrant lock (a
    /// `NoopRawMutex` breaker used from inside its own step); nothing in this crate runs user
    /// code under the lock, so callers treat it as "cannot decide" and fail closed.
    fn with_slot<R>(&self, f: impl FnOnce(&mut Slot<C, W>) -> R) -> Option<R> {
        self.inner.lock(|cell| {
            let mut slot = cell.try_borrow_mut().ok()?;
            slot.build();
            Some(f(&mut slot))
        })
    }
}

/// What a breaker that cannot work reports.
fn failed_closed_stats(rejected_count: u64) -> CircuitBreakerStats {
    CircuitBreakerStats {
        state: CircuitState::ForcedOpen,
        failure_count: 0,
        success_count: 0,
        rejected_count,
        slow_call_count: 0,
        slow_success_count: 0,
        slow_failure_count: 0,
        consecutive_failures: 0,
        transitions: 0,
        success_rate: 1.0,
        trip: None,
        would_open_count: 0,
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
