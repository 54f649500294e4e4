//! A circuit breaker shared by many tasks and threads, over the core's state machine.
//!
//! [`CircuitBreaker`] is a cheap [`Clone`] handle (an `Arc` inside). Its
//! [`call`](CircuitBreaker::call) runs an async operation under the breaker, as in the chapter:
//!
//! ```
//! use std::time::Duration;
//! use rustkernel_tokio::resilience::{
//!     CircuitBreaker, CircuitBreakerConfig, CircuitState, Classify, ResilienceError,
//! };
//!
//! #[derive(Debug, PartialEq)]
//! struct KernelError;
//! impl Classify for KernelError {} // every error is Transient
//!
//! # #[tokio::main(flavor = "current_thread")]
//! # async fn main() {
//! let cb = CircuitBreaker::new(CircuitBreakerConfig {
//!     failure_threshold: 2,
//!     timeout: Duration::from_secs(30),
//!     ..Default::default()
//! });
//! for _ in 0..2 {
//!     let result = cb.call(|| async { Err::<u32, _>(KernelError) }).await;
//!     assert_eq!(result, Err(ResilienceError::Operation(KernelError)));
//! }
//! assert_eq!(cb.state(), CircuitState::Open);
//! let result = cb.call(|| async { Ok::<_, KernelError>(1) }).await;
//! assert_eq!(result, Err(ResilienceError::CircuitOpen));
//! assert_eq!(cb.stats().failure_count, 2);
//! # }
//! ```
//!
//! # Choosing a mode
//! [`CircuitBreaker::new`] counts consecutive failures. For a failure rate, set
//! `failure_rate_threshold` and give the [`builder`](CircuitBreaker::builder) a window: the last
//! `N` calls ([`CountWindow<N>`]) or the last `window_duration` ([`TimeWindow<B>`]); the
//! window's size against the dependency's normal failure rate decides how often noise opens it
//! ([`sizing`](rustkernel_core::resilience::circuit_breaker::sizing) has the figures and a
//! configuration per traffic level). Half-open, the breaker decides probe by probe, or, with
//! `half_open_permitted_calls: Some(n)`, on the failure rate of `n` probes as Resilience4j does
//! (the core's [half-open decision](rustkernel_core::resilience::circuit_breaker#the-half-open-decision)).
//!
//! # Time
//! The breaker reads the adapter's one clock, [`crate::clock`] (tokio's, so tests on the paused
//! clock drive its timers): the core instants it hands out, such as [`Rejected::retry_at`],
//! compare with every other instant of this crate ([`clock::now`], [`clock::to_core`]).
//! Timers apply lazily, on the next call or on [`poll`](CircuitBreaker::poll);
//! [`poll_at`](CircuitBreaker::poll_at) says when that is due.
//!
//! # Observing it
//! Every transition is a `tracing` event (`warn` when the breaker opens, `info` otherwise) with
//! the fields `breaker` (its name), `from` and `to`, and is sent on a `tokio::sync::watch`
//! channel of the state ([`subscribe`](CircuitBreaker::subscribe)).
//!
//! # Guarantees
//! - **The core decides.** Every state change is the core
//!   [`CircuitBreaker`](rustkernel_core::resilience::CircuitBreaker)'s: on every sequential
//!   history this breaker decides exactly as the core fed one outcome at a time, in every mode
//!   (consecutive, by count, by time, slow calls, half-open probe by probe or by rate;
//!   `tests/breaker_model_props.rs`), and the core follows its reference model
//!   (`tests/tests/circuit_breaker_props.rs`).
//! - **Every outcome counts once.** Whatever the interleaving of threads, each admitted call's
//!   outcome is counted exactly once (the loom models, `tests/loom_breaker.rs`), and a permit is
//!   settled once: a [`CallPermit`] that is dropped unsettled counts as a cancellation (its
//!   half-open slot given back) or, past the task's deadline, as a timeout.
//! - **Probes are bounded.** At most `half_open_max_calls` probes are in flight, and with
//!   `half_open_permitted_calls` at most that many per half-open cycle.
//! - **Stale results change nothing.** A result from a call admitted before a transition is
//!   counted in the stats and changes no state (a slow call that started before the breaker
//!   opened cannot close it).
//! - **The closed path is cheap.** A successful closed-state call takes no lock and never
//!   allocates (`tests/breaker_alloc.rs`); what it costs is below.
//!
//! # Internals: how it shares the core
//! The core [`CircuitBreaker`](rustkernel_core::resilience::CircuitBreaker) sits behind a
//! mutex. Beside it, an atomic state word packs the state, the cycle (generation) and whether a
//! success must go through the core; it is written under the lock after every change of the
//! core, from the core's own answer
//! ([`successes_deferrable_until`](rustkernel_core::resilience::CircuitBreaker::successes_deferrable_until)).
//! - Admission while closed or disabled reads the word and makes the permit without the lock
//!   ([`Permit::for_cycle`]). Open, half-open and forced-open admission goes through the core
//!   under the lock, so at most `half_open_max_calls` probes are ever in flight.
//! - In the closed state a success can never open the breaker, except when it ends a failure
//!   streak, or brings a window holding failures (or slow calls) up to `minimum_calls`, or
//!   comes after old buckets of a window by time dropped out. Outside those cases the word says
//!   so, and a success admitted in the word's cycle only adds one to the thread's own
//!   cache-line-padded stripe of a striped counter, with a plain load and store (no locked
//!   instruction; each live thread holds a distinct slot, given back when it exits). Threads
//!   beyond twice the parallelism (a large blocking pool) share one more stripe, atomically.
//! - Whoever takes the lock next (a failure, a probe, a success that needs the core, a read of
//!   the stats) first hands the core the successes counted since
//!   ([`record_successes`](rustkernel_core::resilience::CircuitBreaker::record_successes)): they
//!   enter the window, in order, before the input that took the lock. So only failures evaluate
//!   the rates, and on every sequential history the breaker decides exactly as the core fed one
//!   outcome at a time (`tests/breaker_model_props.rs`), in every mode.
//! - With slow-call detection, a success also reads the clock: a slow one goes through the core.
//!   With a window by time ([`TimeWindow`]), a success reads the clock and is counted on the side
//!   only before the end of the window's current bucket (kept in a second atomic); the first
//!   success after it goes through the core, which moves the window on.
//! - So a successful closed-state call costs two loads of the word, a thread-local read and a
//!   load and store on the thread's own stripe (plus a clock read with slow calls or a window by
//!   time), takes no lock and never allocates. Those clock reads can be made cheap, at the
//!   price of resolution: [`CircuitBreakerBuilder::coarse_clock`].
//! - A permit admitted while closed that is cancelled, or fails with an ignored kind, changes
//!   nothing in the core and is dropped without the lock (the core would only apply due timers,
//!   which the next input applies anyway). A permit dropped unsettled reads the task's current
//!   deadline: past it, the call was cut by the deadline and counts as a timeout (see
//!   [`CallPermit`]).
//!
//! ## Under concurrency
//! A success is counted against the word it read. One that read the word just before another
//! thread changed the state (a failure that opened the breaker, or one that started a streak)
//! is counted as if it had come first: it is handed to the core later, in the state that the
//! core is then in. Its success is always counted in the stats; it reaches a closed window only
//! if the core is closed when it is handed over, which for a success from an earlier closed
//! cycle means the breaker opened and closed again in between (at most one success per thread
//! in flight). A success counted on the side after the end of a time bucket (it read the
//! bucket's end just before) lands in the bucket it read. The loom models in
//! `tests/loom_breaker.rs` check that every outcome is counted exactly once whatever the
//! interleaving.
//!
//! Generations wrap after `u32::MAX` transitions; a permit would have to stay in flight across
//! exactly 2^32 transitions to be taken for a current one.
//!
mod classified;
pub(crate) mod fast;
mod permit;
mod sync;

use std::fmt;
use std::future::Future;
use std::sync::PoisonError;
use std::time::Duration;

use rustkernel_core::error::{
    ByClassify, Classifier, ConfigError, ErrorKind, ErrorKindSet, valid_or_panic,
};
use rustkernel_core::resilience::{
    CircuitBreakerConfig, CircuitBreakerStats, CircuitState, Permit, ResilienceError, Transition,
};
use rustkernel_core::time::Instant;
use tokio::sync::{broadcast, watch};

use crate::classify::{OkIsSuccess, ResponseClassifier, Verdict};
use crate::clock;
use crate::deadline::DeadlineContext;

use fast::{Snapshot, StateWord, StripedCounter};
use permit::{Issued, Ticket};
use sync::{Arc, AtomicU64, Mutex, MutexGuard, Ordering};

pub use classified::Classified;
pub use permit::{CallPermit, OwnedCallPermit};
pub use rustkernel_core::resilience::circuit_breaker::WindowCounts;
pub use rustkernel_core::resilience::circuit_breaker::{ConfiguredWindow, SlidingWindow};
pub use rustkernel_core::resilience::{CountWindow, NoWindow, Rejected, TimeWindow};

type Core<W> = rustkernel_core::resilience::CircuitBreaker<CircuitBreakerConfig, W>;

/// The name a breaker built without one carries in its events.
const DEFAULT_NAME: &str = "circuit_breaker";

/// How many unread transitions a [`CircuitBreaker::subscribe_transitions`] receiver holds.
pub const TRANSITION_CAPACITY: usize = 64;

/// A circuit breaker shared by many tasks and threads: a cheap [`Clone`] handle.
///
/// `W` is the core's sliding window: [`NoWindow`] (the default) for the consecutive-failure
/// mode, [`CountWindow<N>`] or [`TimeWindow<B>`] for the failure-rate and slow-call modes (see
/// [`builder`](CircuitBreaker::builder)). See the [module docs](self) for how the state is
/// shared and what each path costs.
///
/// # Method families
/// - Calls: [`call`](Self::call), or [`try_acquire`](Self::try_acquire) and a [`CallPermit`].
/// - Operator controls: [`force_open`](Self::force_open), [`disable`](Self::disable),
///   [`reset`](Self::reset); timers: [`poll`](Self::poll).
/// - Getters: [`state`](Self::state), [`stats`](Self::stats), [`config`](Self::config),
///   [`name`](Self::name); outputs: [`poll_at`](Self::poll_at), [`subscribe`](Self::subscribe).
pub struct CircuitBreaker<W: SlidingWindow = NoWindow> {
    shared: Arc<Shared<W>>,
}

/// Builds a [`CircuitBreaker`] with a name or a sliding window; from
/// [`CircuitBreaker::builder`].
#[derive(Debug)]
#[must_use = "a builder does nothing until built"]
pub struct CircuitBreakerBuilder<W = NoWindow> {
    config: CircuitBreakerConfig,
    window: W,
    name: Option<Box<str>>,
    coarse_clock: bool,
}

impl CircuitBreaker<NoWindow> {
    /// A consecutive-failure breaker, closed, after checking the configuration.
    ///
    /// # Errors
    /// The configuration's first invalid value (see [`CircuitBreakerConfig::validate`]).
    pub fn try_new(config: CircuitBreakerConfig) -> Result<Self, ConfigError> {
        Self::builder(config).try_build()
    }

    /// A consecutive-failure breaker, closed.
    ///
    /// # Panics
    /// If the configuration is invalid, with the [`ConfigError`]'s message; use
    /// [`try_new`](Self::try_new) to handle it.
    #[must_use]
    pub fn new(config: CircuitBreakerConfig) -> Self {
        Self::builder(config).build()
    }

    /// A builder, to give the breaker a name (for its `tracing` events) or a window:
    ///
    /// ```
    /// use rustkernel_tokio::resilience::{CircuitBreaker, CircuitBreakerConfig, CountWindow};
    ///
    /// let cb = CircuitBreaker::builder(CircuitBreakerConfig {
    ///     failure_rate_threshold: Some(0.5),
    ///     minimum_calls: 20,
    ///     ..Default::default()
    /// })
    /// .name("graph/pagerank")
    /// .window(CountWindow::<100>::new())
    /// .build();
    /// assert_eq!(cb.name(), "graph/pagerank");
    /// ```
    pub fn builder(config: CircuitBreakerConfig) -> CircuitBreakerBuilder<NoWindow> {
        CircuitBreakerBuilder {
            config,
            window: NoWindow,
            name: None,
            coarse_clock: false,
        }
    }
}

impl<W: SlidingWindow> CircuitBreakerBuilder<W> {
    /// Names the breaker in its `tracing` events (default `"circuit_breaker"`).
    pub fn name(mut self, name: impl Into<String>) -> Self {
        self.name = Some(name.into().into_boxed_str());
        self
    }

    /// Uses `window` as the core's sliding window; needed for `failure_rate_threshold` and
    /// `slow_call_duration`: a [`CountWindow`] (the last `N` calls) or a [`TimeWindow`] (the
    /// last `window_duration`). Its closed-state successes skip the lock as the consecutive
    /// breaker's do (see the module docs).
    pub fn window<V: SlidingWindow>(self, window: V) -> CircuitBreakerBuilder<V> {
        CircuitBreakerBuilder {
            config: self.config,
            window,
            name: self.name,
            coarse_clock: self.coarse_clock,
        }
    }

    /// Times closed-state calls on the coarse real-time clock ([`clock::coarse_now`]): the
    /// start and end of a call for slow-call detection, and a success's time against the end of
    /// a [`TimeWindow`]'s bucket. Those reads then cost a fifth of a precise read on the
    /// project's build machine (README, Benchmarks); everything under the lock (failures,
    /// probes, timers) stays on [`clock::now`]. Off by default.
    ///
    /// The price is resolution: a call's duration is known to within one tick of the
    /// operating system's clock (1 to 4 ms on Linux), so a `slow_call_duration` should be
    /// well above it; a success up to one tick after a bucket ends can still land in that
    /// bucket. The coarse clock follows only the real clock, never tokio's paused clock: do not
    /// use it in tests on a paused clock. Building calibrates it (once per process; up to one
    /// tick).
    pub fn coarse_clock(mut self) -> Self {
        self.coarse_clock = true;
        self
    }

    /// Builds the breaker, closed, after checking the configuration for the window.
    ///
    /// # Errors
    /// The configuration's first invalid value (see
    /// [`CircuitBreakerConfig::validate_for_window`]).
    pub fn try_build(self) -> Result<CircuitBreaker<W>, ConfigError> {
        let core = Core::try_with_window(self.config, self.window)?;
        let config = self.config;
        if self.coarse_clock {
            clock::calibrate_coarse();
        }
        let until = core.successes_deferrable_until();
        let snapshot = Snapshot::new(core.state(), core.generation(), until.is_none());
        let (states, _) = watch::channel(core.state());
        let (transitions, _) = broadcast::channel(TRANSITION_CAPACITY);
        let shared = Shared {
            word: StateWord::new(snapshot),
            defer_until: AtomicU64::new(until.map_or(0, Instant::as_micros)),
            successes: StripedCounter::new(),
            // A window that may be timed (`ConfiguredWindow`) is timed only with a duration.
            timed_successes: (W::TIMED && config.window_duration.is_some())
                || config.slow_call_duration.is_some(),
            coarse_clock: self.coarse_clock,
            slow_call_duration: config.slow_call_duration,
            timed_permits: config.slow_call_duration.is_some(),
            ignored: config.ignored_errors,
            config,
            core: Mutex::new(Locked { core, folded: 0 }),
            name: self.name.unwrap_or_else(|| DEFAULT_NAME.into()),
            states,
            transitions,
        };
        Ok(CircuitBreaker {
            shared: Arc::new(shared),
        })
    }

    /// Builds the breaker, closed.
    ///
    /// # Panics
    /// If the configuration is invalid, with the [`ConfigError`]'s message; use
    /// [`try_build`](Self::try_build) to handle it.
    #[track_caller]
    pub fn build(self) -> CircuitBreaker<W> {
        valid_or_panic(self.try_build(), "circuit breaker configuration")
    }
}

impl<W: SlidingWindow> CircuitBreaker<W> {
    /// Runs `operation` under the breaker: rejected with [`ResilienceError::CircuitOpen`] when
    /// the breaker is open (or half-open with every probe slot taken); otherwise its error is
    /// returned as [`ResilienceError::Operation`], after
    /// [`Classify`](rustkernel_core::error::Classify) gave its kind to the breaker. Every `Ok`
    /// is a success; to count some responses as failures (an HTTP 500), give a
    /// [`ResponseClassifier`] with [`classify_response`](Self::classify_response).
    ///
    /// An operation that is itself a guarded call (`|| retrier.execute(..)`) has its
    /// [`ResilienceError`] flattened: the result has one level, and its kind (`CircuitOpen` is
    /// unavailable, deadlines are timeouts) is what the breaker counts. For an error type that
    /// is not `Classify`, use [`classify_with`](Self::classify_with).
    ///
    /// If the returned future is dropped before it finishes (or `operation` panics), the call
    /// is a timeout failure when the task's current deadline has passed (a
    /// [`DeadlineContext::execute`] around the call cut it), and cancelled otherwise (nothing
    /// is counted; a half-open slot is given back); see [`CallPermit`].
    pub async fn call<F, Fut, T, R>(
        &self,
        operation: F,
    ) -> Result<T, ResilienceError<<ByClassify as Classifier<R>>::Error>>
    where
        F: FnOnce() -> Fut,
        Fut: Future<Output = Result<T, R>>,
        ByClassify: Classifier<R>,
    {
        self.call_classified(&ByClassify, &OkIsSuccess, operation)
            .await
    }

    /// This breaker with a closure classifier, for operations whose error type is not
    /// [`Classify`](rustkernel_core::error::Classify) (another crate's):
    /// `cb.classify_with(|e: &std::io::Error| ErrorKind::Unavailable).call(..)`. A cheap handle
    /// (one `Arc` clone); keep it and call it as often as the breaker.
    pub fn classify_with<E, C: Fn(&E) -> ErrorKind>(
        &self,
        classify: C,
    ) -> Classified<W, C, OkIsSuccess> {
        Classified {
            breaker: self.clone(),
            classifier: classify,
            responses: OkIsSuccess,
        }
    }

    /// This breaker with a [`ResponseClassifier`], so that a call returning `Ok(response)` can
    /// count as a failure (`cb.classify_response(HttpClassifier::new()).call(..)`: 5xx and 429
    /// responses open the breaker) or be ignored. The response itself still comes back as
    /// `Ok`. A cheap handle (one `Arc` clone), as [`classify_with`](Self::classify_with), whose
    /// closure it can also take ([`Classified::classify_with`]).
    pub fn classify_response<K>(&self, classifier: K) -> Classified<W, ByClassify, K> {
        Classified {
            breaker: self.clone(),
            classifier: ByClassify,
            responses: classifier,
        }
    }

    /// Runs `operation` under the breaker, its error flattened and classified by `classifier`,
    /// its response by `responses`.
    pub(crate) async fn call_classified<C, K, F, Fut, T, R>(
        &self,
        classifier: &C,
        responses: &K,
        operation: F,
    ) -> Result<T, ResilienceError<C::Error>>
    where
        C: Classifier<R>,
        K: ResponseClassifier<T>,
        F: FnOnce() -> Fut,
        Fut: Future<Output = Result<T, R>>,
    {
        let permit = match self.admit_freely() {
            Some(permit) => permit,
            None => self.acquire_locked()?,
        };
        // Not `permit.run(..)`: one future level less keeps the closed path lean.
        match operation().await {
            Ok(value) => {
                match responses.classify_response(&value) {
                    Verdict::Success => permit.success(),
                    Verdict::Failure(kind) => permit.failure(kind),
                    Verdict::Ignore => permit.cancel(),
                }
                Ok(value)
            }
            Err(error) => {
                let error = classifier.flatten(error);
                permit.failure(classifier.kind_of(&error));
                Err(error)
            }
        }
    }

    /// How long until the breaker lets a call through again: `None` when it admits calls now
    /// (closed, disabled, or half-open), else the time left of the open period (a breaker
    /// forced open with no end: `Duration::MAX`). The figure for an HTTP `Retry-After`.
    #[must_use]
    pub fn retry_after(&self) -> Option<Duration> {
        match self.state() {
            CircuitState::Open => Some(self.poll_at().map_or(Duration::MAX, |at| {
                at.saturating_duration_since(tokio::time::Instant::now())
            })),
            CircuitState::ForcedOpen => Some(self.poll_at().map_or(Duration::MAX, |at| {
                at.saturating_duration_since(tokio::time::Instant::now())
            })),
            _ => None,
        }
    }

    /// Asks to make one call now; the [`CallPermit`] settles it (for adapters such as tower
    /// services that cannot hand [`call`](Self::call) a closure).
    ///
    /// # Errors
    /// [`Rejected`] when the breaker is open, forced open, or half-open with every probe slot
    /// taken; the rejection is counted. Its `retry_at` is on the crate's [`clock`]:
    /// [`poll_at`](Self::poll_at) gives the same instant as a tokio `Instant`.
    #[inline]
    pub fn try_acquire(&self) -> Result<CallPermit<'_, W>, Rejected> {
        match self.admit_freely() {
            Some(permit) => Ok(permit),
            None => self.acquire_locked(),
        }
    }

    /// [`try_acquire`](Self::try_acquire) in two halves, for this crate's own futures: the
    /// lock-free admission (`None` when the core must decide), whose permit goes straight into
    /// the caller's state instead of through a `Result` as large as a [`Rejected`].
    #[inline]
    pub(crate) fn admit_freely(&self) -> Option<CallPermit<'_, W>> {
        self.shared.admit_freely()
    }

    /// The other half of [`try_acquire`](Self::try_acquire): admission by the core, under the
    /// lock.
    pub(crate) fn acquire_locked(&self) -> Result<CallPermit<'_, W>, Rejected> {
        self.shared.acquire_locked()
    }

    /// As [`try_acquire`](Self::try_acquire), the permit holding its own handle on the breaker
    /// (for `'static` futures such as a tower service's).
    ///
    /// # Errors
    /// [`Rejected`], as [`try_acquire`](Self::try_acquire).
    pub fn try_acquire_owned(&self) -> Result<OwnedCallPermit<W>, Rejected> {
        let permit = self.try_acquire()?;
        Ok(permit.into_owned(Arc::clone(&self.shared)))
    }

    /// The current state, from the state word (no lock). Timers apply on the next call or
    /// [`poll`](Self::poll): an open breaker whose open time has ended still reads `Open`.
    #[must_use]
    pub fn state(&self) -> CircuitState {
        self.shared.word.load().state()
    }

    /// Counters and rates (takes the lock): the core's, after it was handed the successes
    /// counted on the lock-free path, plus those counted while it was being handed them.
    /// `success_rate` is `success_count / (success_count + failure_count)`, or 1.0 before any
    /// call finished.
    #[must_use]
    pub fn stats(&self) -> CircuitBreakerStats {
        let locked = self.shared.lock();
        let mut stats = locked.core.stats();
        let racing = self.shared.successes.sum().saturating_sub(locked.folded);
        drop(locked);
        stats.success_count = stats.success_count.saturating_add(racing);
        let finished = stats.success_count.saturating_add(stats.failure_count);
        #[allow(
            clippy::cast_precision_loss,
            reason = "a rate needs no more than f64 precision"
        )]
        let success_rate = if finished == 0 {
            1.0
        } else {
            stats.success_count as f64 / finished as f64
        };
        stats.success_rate = success_rate;
        stats
    }

    /// What the sliding window holds now, on the breaker's clock (takes the lock, and hands the
    /// window the successes counted on the lock-free path first): a window by time without the
    /// buckets that fell out of it by now.
    #[must_use]
    pub fn window_counts(&self) -> WindowCounts {
        let now = clock::now();
        self.shared.lock().core.window_counts_at(now)
    }

    /// The configuration.
    #[must_use]
    pub fn config(&self) -> CircuitBreakerConfig {
        self.shared.config
    }

    /// The name the breaker's `tracing` events carry.
    #[must_use]
    pub fn name(&self) -> &str {
        &self.shared.name
    }

    /// Holds the breaker open until [`reset`](Self::reset), whatever the calls do.
    pub fn force_open(&self) -> Option<Transition> {
        self.shared.with_core(|core, _| {
            let transition = core.force_open();
            (transition, transition)
        })
    }

    /// Shadow mode (see the core's
    /// [`metrics_only`](rustkernel_core::resilience::CircuitBreaker::metrics_only)): every call
    /// passes, outcomes are evaluated as when closed, and where the breaker would open it
    /// announces a transition from and to `MetricsOnly` carrying the trip (a `warn` event,
    /// and on [`subscribe_transitions`](Self::subscribe_transitions)) and counts it in
    /// [`CircuitBreakerStats::would_open_count`]. [`reset`](Self::reset) ends it.
    pub fn metrics_only(&self) -> Option<Transition> {
        self.shared.with_core(|core, _| {
            let transition = core.metrics_only();
            (transition, transition)
        })
    }

    /// Holds the breaker open for `duration` (a maintenance window), then returns it to the mode
    /// it was in: disabled or metrics-only if it was, otherwise closed with a fresh window. The end
    /// applies on the next call or [`poll`](Self::poll) ([`poll_at`](Self::poll_at) says when).
    pub fn force_open_for(&self, duration: Duration) -> Option<Transition> {
        self.shared.with_core(|core, now| {
            let transition = core.force_open_for(duration, now);
            (transition, transition)
        })
    }

    /// As [`force_open_for`](Self::force_open_for), until `until` on tokio's clock.
    pub fn force_open_until(&self, until: tokio::time::Instant) -> Option<Transition> {
        let until = clock::to_core(until);
        self.shared.with_core(|core, _| {
            let transition = core.force_open_until(until);
            (transition, transition)
        })
    }

    /// Lets every call through and never changes state until [`reset`](Self::reset); outcomes
    /// are still counted.
    pub fn disable(&self) -> Option<Transition> {
        self.shared.with_core(|core, _| {
            let transition = core.disable();
            (transition, transition)
        })
    }

    /// Closes the breaker with a fresh window and open-time growth; counters are kept.
    pub fn reset(&self) -> Option<Transition> {
        self.shared.with_core(|core, _| {
            let transition = core.reset();
            (transition, transition)
        })
    }

    /// Applies the timers due now (`Open -> HalfOpen` at the end of the open time, `HalfOpen ->
    /// Open` past `max_wait_in_half_open`), for a driver that wakes at
    /// [`poll_at`](Self::poll_at) to publish the state before the next call comes.
    pub fn poll(&self) -> Option<Transition> {
        if !self.timer_may_run() {
            return None;
        }
        self.shared.with_core(|core, now| {
            let transition = core.poll(now);
            (transition, transition)
        })
    }

    /// When time alone will next change the state (see [`poll`](Self::poll)); `None` when no
    /// timer runs (closed, disabled, forced open with no end).
    #[must_use]
    pub fn poll_at(&self) -> Option<tokio::time::Instant> {
        if !self.timer_may_run() {
            return None;
        }
        let at = self.shared.lock().core.poll_at()?;
        Some(clock::to_tokio(at))
    }

    /// A receiver of the state, updated on every transition.
    ///
    /// A watch keeps only the latest state: transitions in quick succession (open, half-open,
    /// closed within one probe) are seen as one change. Count transitions with
    /// [`subscribe_transitions`](Self::subscribe_transitions).
    #[must_use]
    pub fn subscribe(&self) -> watch::Receiver<CircuitState> {
        self.shared.states.subscribe()
    }

    /// A receiver of every transition, in order, from now on. It holds the latest
    /// [`TRANSITION_CAPACITY`] unread transitions; a receiver that falls further behind gets
    /// [`broadcast::error::RecvError::Lagged`] with the number it missed.
    #[must_use]
    pub fn subscribe_transitions(&self) -> broadcast::Receiver<Transition> {
        self.shared.transitions.subscribe()
    }

    fn timer_may_run(&self) -> bool {
        matches!(
            self.shared.word.load().state(),
            CircuitState::Open | CircuitState::HalfOpen | CircuitState::ForcedOpen
        )
    }
}

impl<W: SlidingWindow> Clone for CircuitBreaker<W> {
    fn clone(&self) -> Self {
        Self {
            shared: Arc::clone(&self.shared),
        }
    }
}

impl<W: SlidingWindow> fmt::Debug for CircuitBreaker<W> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("CircuitBreaker")
            .field("name", &self.name())
            .field("state", &self.state())
            .finish_non_exhaustive()
    }
}

/// What every handle of one breaker shares.
pub(crate) struct Shared<W: SlidingWindow> {
    word: StateWord,
    /// While the word lets successes skip the core: until when (core microseconds, exclusive),
    /// for a breaker by time (the end of its window's bucket); written under the lock before
    /// the word.
    defer_until: AtomicU64,
    successes: StripedCounter,
    /// A success needs the time to be counted on the side: slow-call detection, or a window by
    /// time.
    timed_successes: bool,
    slow_call_duration: Option<Duration>,
    /// Slow-call detection is on: permits need their start time.
    timed_permits: bool,
    /// Closed-state calls read [`clock::coarse_now`] instead of [`clock::now`].
    coarse_clock: bool,
    ignored: ErrorKindSet,
    config: CircuitBreakerConfig,
    core: Mutex<Locked<W>>,
    name: Box<str>,
    states: watch::Sender<CircuitState>,
    transitions: broadcast::Sender<Transition>,
}

/// What the lock guards: the core, and how much of the striped success count it was handed.
pub(crate) struct Locked<W: SlidingWindow> {
    core: Core<W>,
    /// The stripes' sum when the core was last handed their successes.
    folded: u64,
}

impl<W: SlidingWindow> Shared<W> {
    /// The core, after handing it the successes counted on the side since the last lock
    /// (`record_successes`), so it sees them before the next input, in order. A poisoned lock is
    /// recovered (the core never panics half-way through a change).
    fn lock(&self) -> MutexGuard<'_, Locked<W>> {
        let mut locked = self.core.lock().unwrap_or_else(PoisonError::into_inner);
        let sum = self.successes.sum();
        let pending = sum.saturating_sub(locked.folded);
        if pending > 0 {
            locked.folded = sum;
            locked.core.record_successes(pending);
        }
        locked
    }

    /// Runs `input` on the core at the current time under the lock, publishes the core's state
    /// in the word, and announces the transition `input` returned.
    fn with_core<R>(
        &self,
        input: impl FnOnce(&mut Core<W>, Instant) -> (R, Option<Transition>),
    ) -> R {
        let mut locked = self.lock();
        // Read under the lock, so the core sees time in order.
        let now = clock::now();
        let (result, transition) = input(&mut locked.core, now);
        let core = &locked.core;
        let until = core.successes_deferrable_until();
        if self.timed_successes {
            self.defer_until
                .store(until.map_or(0, Instant::as_micros), Ordering::Release);
        }
        self.word.store(Snapshot::new(
            core.state(),
            core.generation(),
            until.is_none(),
        ));
        if let Some(transition) = transition {
            self.announce(transition);
        }
        result
    }

    /// Logs a transition and sends the new state to subscribers; under the lock, so both see
    /// transitions in order.
    fn announce(&self, transition: Transition) {
        let Transition { from, to, trip } = transition;
        let name = &*self.name;
        let reason = trip.map(|trip| trip.reason.as_str());
        if transition.would_open() {
            tracing::warn!(
                breaker = name,
                reason,
                trip = %transition,
                "circuit breaker would open (metrics-only mode)"
            );
        } else if matches!(to, CircuitState::Open | CircuitState::ForcedOpen) {
            tracing::warn!(breaker = name, %from, %to, reason, trip = %transition, "circuit breaker opened");
        } else {
            tracing::info!(breaker = name, %from, %to, "circuit breaker state changed");
        }
        self.states.send_replace(to);
        // No receiver is not an error: nobody counts transitions.
        let _ = self.transitions.send(transition);
    }

    /// The time for the lock-free closed path: coarse or precise, as built. Out of line: a
    /// clock read costs far more than a call, and inlined it would bloat the paths that read it.
    #[inline(never)]
    fn lock_free_now(&self) -> Instant {
        if self.coarse_clock {
            clock::coarse_now()
        } else {
            clock::now()
        }
    }

    /// Settles a success: counted on the thread's stripe when the core would only count it (see
    /// the module docs), through the core otherwise.
    #[inline]
    pub(crate) fn settle_success(&self, ticket: Ticket, acquired_at: Instant) {
        if ticket.issued() == Issued::Freely
            && self.word.load().success_is_count_only(ticket.generation())
        {
            if !self.timed_successes {
                self.successes.increment();
                return;
            }
            return self.settle_timed_success(ticket, acquired_at);
        }
        self.settle_success_locked(ticket, acquired_at);
    }

    /// [`settle_success`](Self::settle_success) for a success that needs the time (slow-call
    /// detection, a window by time): out of line, so the untimed path stays small enough to
    /// inline into the caller.
    #[inline(never)]
    fn settle_timed_success(&self, ticket: Ticket, acquired_at: Instant) {
        let now = self.lock_free_now();
        let fast = self
            .slow_call_duration
            .is_none_or(|limit| now.saturating_duration_since(acquired_at) < limit);
        if fast && now.as_micros() < self.defer_until.load(Ordering::Acquire) {
            self.successes.increment();
            return;
        }
        self.settle_success_locked(ticket, acquired_at);
    }

    /// A permit made without the core while the word says closed, disabled or metrics-only.
    #[inline]
    fn admit_freely(&self) -> Option<CallPermit<'_, W>> {
        let word = self.word.load();
        if !word.admits_freely() {
            return None;
        }
        let acquired_at = if self.timed_permits {
            self.lock_free_now()
        } else {
            // Only slow-call detection reads the start time.
            Instant::ZERO
        };
        let ticket = Ticket::new(word.generation(), Issued::Freely);
        Some(CallPermit::new(self, ticket, acquired_at))
    }

    /// Admission through the core, under the lock: open, half-open and forced open.
    #[cold]
    #[inline(never)]
    fn acquire_locked(&self) -> Result<CallPermit<'_, W>, Rejected> {
        self.with_core(|core, now| match core.try_acquire(now) {
            Ok(permit) => {
                let issued = if core.state() == CircuitState::HalfOpen {
                    Issued::Probe
                } else {
                    Issued::Freely
                };
                let transition = permit.transition();
                (Ok((permit, issued)), transition)
            }
            Err(rejected) => (Err(rejected), rejected.transition),
        })
        .map(|(permit, issued)| {
            let ticket = Ticket::new(permit.generation(), issued);
            CallPermit::new(self, ticket, permit.acquired_at())
        })
    }

    #[cold]
    #[inline(never)]
    fn settle_success_locked(&self, ticket: Ticket, acquired_at: Instant) {
        let permit = Permit::for_cycle(ticket.generation(), acquired_at);
        self.with_core(|core, now| ((), core.on_success(permit, now)));
    }

    /// Settles a failure through the core; an ignored kind on a permit admitted while closed
    /// changes nothing there, so it skips the lock.
    pub(crate) fn settle_failure(&self, ticket: Ticket, acquired_at: Instant, kind: ErrorKind) {
        if ticket.issued() == Issued::Freely && self.ignored.contains(kind) {
            return;
        }
        let permit = Permit::for_cycle(ticket.generation(), acquired_at);
        self.with_core(|core, now| ((), core.on_failure(permit, kind, now)));
    }

    /// Settles a permit dropped unsettled: a timeout failure when the task's current deadline
    /// has passed (a deadline cut the call), otherwise cancelled (a probe's slot given back; a
    /// permit admitted while closed changes nothing in the core).
    #[inline]
    pub(crate) fn settle_dropped(&self, ticket: Ticket, acquired_at: Instant) {
        if crate::deadline::current_deadline().is_some_and(DeadlineContext::is_expired) {
            self.settle_failure(ticket, acquired_at, ErrorKind::Timeout);
        } else if ticket.issued() == Issued::Probe {
            self.cancel_probe(ticket, acquired_at);
        }
    }

    /// Gives a cancelled probe's slot back. (A cancelled permit admitted while closed changes
    /// nothing in the core.)
    #[cold]
    #[inline(never)]
    pub(crate) fn cancel_probe(&self, ticket: Ticket, acquired_at: Instant) {
        // The core's permit for this probe held exactly this cycle and start time.
        let permit = Permit::for_cycle(ticket.generation(), acquired_at);
        self.with_core(|core, now| ((), core.on_cancelled(permit, now)));
    }
}

#[cfg(all(test, not(loom)))]
mod tests {
    use super::*;

    fn config(failure_threshold: u32) -> CircuitBreakerConfig {
        CircuitBreakerConfig {
            failure_threshold,
            success_threshold: 1,
            timeout: Duration::from_secs(10),
            ..Default::default()
        }
    }

    #[test]
    fn the_word_follows_the_core_through_a_streak_and_a_trip() {
        let cb = CircuitBreaker::new(config(2));
        let word = || cb.shared.word.load();
        assert_eq!(word(), Snapshot::new(CircuitState::Closed, 0, false));
        cb.try_acquire()
            .map(|p| p.failure(ErrorKind::Transient))
            .ok();
        assert_eq!(word(), Snapshot::new(CircuitState::Closed, 0, true));
        // A success that ends a streak goes through the core and clears the flag.
        cb.try_acquire().map(CallPermit::success).ok();
        assert_eq!(word(), Snapshot::new(CircuitState::Closed, 0, false));
        assert_eq!(cb.shared.successes.sum(), 0);
        // The next one is counted on the lock-free path.
        cb.try_acquire().map(CallPermit::success).ok();
        assert_eq!(cb.shared.successes.sum(), 1);
        for _ in 0..2 {
            cb.try_acquire()
                .map(|p| p.failure(ErrorKind::Transient))
                .ok();
        }
        // Open: every success goes through the core.
        assert_eq!(word(), Snapshot::new(CircuitState::Open, 1, true));
        let stats = cb.stats();
        assert_eq!((stats.success_count, stats.failure_count), (2, 3));
        assert!((stats.success_rate - 0.4).abs() < 1e-12);
    }

    #[test]
    fn a_success_from_an_earlier_cycle_goes_through_the_core() {
        let cb = CircuitBreaker::new(config(1));
        let stale = cb.try_acquire().ok();
        assert!(cb.force_open().is_some());
        assert!(cb.reset().is_some());
        if let Some(permit) = stale {
            permit.success();
        }
        // Counted by the core (not the stripes), no state change.
        assert_eq!(cb.shared.successes.sum(), 0);
        assert_eq!(cb.stats().success_count, 1);
        assert_eq!(cb.state(), CircuitState::Closed);
    }

    #[test]
    fn a_windowed_breaker_counts_successes_on_the_side_while_they_cannot_open_it() {
        let cb = CircuitBreaker::builder(CircuitBreakerConfig {
            failure_rate_threshold: Some(0.5),
            minimum_calls: 4,
            ..Default::default()
        })
        .window(CountWindow::<8>::new())
        .build();
        for _ in 0..3 {
            cb.try_acquire().map(CallPermit::success).ok();
        }
        // Below `minimum_calls` with no failure, successes cannot open it: counted on the side,
        // handed to the window on the next lock.
        assert_eq!(cb.shared.successes.sum(), 3);
        assert_eq!(cb.window_counts().calls, 3);
        assert_eq!(cb.stats().success_count, 3);
        // With a failure in a window below `minimum_calls`, a success could open it: the core.
        cb.try_acquire()
            .map(|p| p.failure(ErrorKind::Transient))
            .ok();
        cb.try_acquire().map(CallPermit::success).ok();
        assert_eq!(cb.shared.successes.sum(), 3);
        assert_eq!(
            cb.window_counts(),
            WindowCounts {
                calls: 5,
                failures: 1,
                slow: 0
            }
        );
    }

    #[test]
    fn handles_are_send_sync_and_cheap_to_clone() {
        fn assert_send_sync<T: Send + Sync>() {}
        assert_send_sync::<CircuitBreaker>();
        assert_send_sync::<CircuitBreaker<CountWindow<16>>>();
        assert_send_sync::<CallPermit<'static>>();
        assert_eq!(
            std::mem::size_of::<CircuitBreaker>(),
            std::mem::size_of::<usize>()
        );
    }

    #[test]
    #[should_panic(expected = "invalid circuit breaker configuration")]
    fn new_panics_on_an_invalid_config() {
        let _ = CircuitBreaker::new(config(0));
    }
}
