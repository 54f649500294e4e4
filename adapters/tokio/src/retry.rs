//! Retry on tokio: the chapter's `config.execute(|| ..).await`, and [`Retrier`] for budgets,
//! seeds and retry-after hints.
//!
//! The decisions are the core's [`Retry`] state machine: which errors are retried
//! ([`Classify`](rustkernel_core::error::Classify) and `retryable_errors`), how long to wait ([`BackoffStrategy`](rustkernel_core::resilience::BackoffStrategy)),
//! how much to retry overall (a [`SharedRetryBudget`]) and whether the next attempt could
//! still start before the [current deadline](crate::deadline::current_deadline). This module
//! carries them out: it runs each attempt, sleeps with tokio timers, and when it gives up
//! returns the **last real error** unchanged, as [`ResilienceError::Operation`].
//!
//! Retry does not cut an attempt that is running when the deadline passes: run the whole call
//! under [`DeadlineContext::execute`](crate::deadline::DeadlineContext::execute) for that.
//! It only refuses to start (or sleep towards) an attempt that could not begin before the
//! deadline, and returns [`ResilienceError::DeadlineExceeded`] without running anything when
//! the deadline has already passed.
//!
//! ```
//! use std::time::Duration;
//! use rustkernel_tokio::resilience::{BackoffStrategy, ErrorKind, RetryConfig, RetryExt};
//!
//! # #[tokio::main(flavor = "current_thread", start_paused = true)]
//! # async fn main() {
//! let config = RetryConfig {
//!     max_attempts: 3,
//!     backoff: BackoffStrategy::Fixed { delay: Duration::from_millis(100) },
//!     retryable_errors: [ErrorKind::Transient].into(),
//! };
//! let mut failures = 2;
//! let result = config
//!     .execute(|| {
//!         let fail = failures > 0;
//!         failures -= 1;
//!         async move { if fail { Err(ErrorKind::Transient) } else { Ok("done") } }
//!     })
//!     .await;
//! assert_eq!(result, Ok("done"));
//! # }
//! ```

use std::collections::hash_map::RandomState;
use std::fmt;
use std::future::Future;
use std::hash::BuildHasher;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex, PoisonError};
use std::time::Duration;

use rustkernel_core::error::{ByClassify, Classifier, ConfigError, ErrorKind, valid_or_panic};
use rustkernel_core::resilience::{
    ResilienceError, Retry, RetryBudget, RetryBudgetConfig, RetryConfig, RetryDecision,
    ValidRetryConfig,
};
use rustkernel_core::rng::Rng;

use crate::breaker::fast::StripedCounter;
use crate::classify::{OkIsSuccess, ResponseClassifier, Verdict};
use crate::clock;
use crate::deadline::current_deadline;

/// Where a retry's wait comes from when the callee says how long to wait (an HTTP
/// `Retry-After`, a gRPC pushback): the hint replaces the backoff's delay.
///
/// Implemented by [`NoHint`] (never a hint) and by every closure `Fn(&E) -> Option<Duration>`.
pub trait RetryAfterHint<E> {
    /// The wait the callee asked for in `error`, if it asked.
    fn retry_after(&self, error: &E) -> Option<Duration>;
}

/// No retry-after hints: the backoff alone decides the wait.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct NoHint;

impl<E> RetryAfterHint<E> for NoHint {
    fn retry_after(&self, _error: &E) -> Option<Duration> {
        None
    }
}

impl<E, F> RetryAfterHint<E> for F
where
    F: Fn(&E) -> Option<Duration>,
{
    fn retry_after(&self, error: &E) -> Option<Duration> {
        self(error)
    }
}

/// A [`RetryBudget`] shared by every call to one callee, across tasks and threads.
///
/// A cheap clonable handle (an `Arc` inside); clones share one budget. A [`Retrier`] deposits
/// once per original call and withdraws once per retry.
///
/// The budget sits behind a mutex, held only for one input, never across an `.await`. A deposit
/// made while the budget's newest time slot lasts (the core's
/// [`deposits_deferrable_until`](RetryBudget::deposits_deferrable_until)) only adds one to the
/// thread's own stripe of a striped counter, as the circuit breaker counts its closed-state
/// successes: no lock and no locked instruction. Whoever takes the lock next (a withdrawal, a
/// read, the first deposit of a new slot) first hands the budget those deposits
/// ([`record_deposits`](RetryBudget::record_deposits)). A deposit that read the slot's end just
/// before another thread moved the ring on is counted in the newer slot: it stays in the window
/// one slot longer. A poisoned lock is used as it is: the budget is a few counters that a panic
/// cannot leave half-updated in a harmful way.
#[derive(Clone, Debug)]
pub struct SharedRetryBudget {
    inner: Arc<BudgetShared>,
}

#[derive(Debug)]
struct BudgetShared {
    /// The budget's `deposits_deferrable_until` in core microseconds, written under the lock
    /// after every change.
    deposit_until: AtomicU64,
    deposits: StripedCounter,
    locked: Mutex<LockedBudget>,
}

#[derive(Debug)]
struct LockedBudget {
    budget: RetryBudget,
    /// The stripes' sum when the budget was last handed their deposits.
    folded: u64,
}

impl SharedRetryBudget {
    /// A shared budget with nothing counted yet.
    ///
    /// # Errors
    /// The error of [`RetryBudgetConfig::validate`].
    pub fn try_new(config: RetryBudgetConfig) -> Result<Self, ConfigError> {
        RetryBudget::try_new(config).map(Self::from)
    }

    /// A shared budget with nothing counted yet.
    ///
    /// # Panics
    /// When `config` is invalid, with the message of its [`ConfigError`]; use
    /// [`try_new`](Self::try_new) to get the error instead.
    #[must_use]
    pub fn new(config: RetryBudgetConfig) -> Self {
        Self::from(RetryBudget::new(config))
    }

    /// Counts one original request now.
    pub fn deposit(&self) {
        self.deposit_at(clock::now());
    }

    /// Counts one original request at `now` (core time), on the side while the newest slot
    /// lasts (see the type's docs).
    #[inline]
    pub(crate) fn deposit_at(&self, now: rustkernel_core::time::Instant) {
        if now.as_micros() < self.inner.deposit_until.load(Ordering::Acquire) {
            self.inner.deposits.increment();
        } else {
            self.deposit_locked(now);
        }
    }

    #[cold]
    #[inline(never)]
    fn deposit_locked(&self, now: rustkernel_core::time::Instant) {
        self.with(|budget| budget.deposit(now));
    }

    /// Takes one retry now; `false` (and nothing taken) when the budget is spent.
    pub fn try_withdraw(&self) -> bool {
        self.with(|budget| budget.try_withdraw(clock::now()))
    }

    /// Retries the budget would allow now.
    #[must_use]
    pub fn available(&self) -> u64 {
        self.with(|budget| budget.available(clock::now()))
    }

    /// The budget's configuration.
    #[must_use]
    pub fn config(&self) -> RetryBudgetConfig {
        self.with(|budget| *budget.config())
    }

    /// Runs `f` on the budget under the lock, after handing it the deposits counted on the
    /// side, and publishes until when deposits may be counted on the side again.
    pub(crate) fn with<R>(&self, f: impl FnOnce(&mut RetryBudget) -> R) -> R {
        let shared = &*self.inner;
        let mut locked = shared.locked.lock().unwrap_or_else(PoisonError::into_inner);
        let sum = shared.deposits.sum();
        let pending = sum.saturating_sub(locked.folded);
        if pending > 0 {
            locked.folded = sum;
            locked.budget.record_deposits(pending);
        }
        let result = f(&mut locked.budget);
        shared.deposit_until.store(
            locked.budget.deposits_deferrable_until().as_micros(),
            Ordering::Release,
        );
        result
    }
}

impl From<RetryBudget> for SharedRetryBudget {
    fn from(budget: RetryBudget) -> Self {
        Self {
            inner: Arc::new(BudgetShared {
                deposit_until: AtomicU64::new(budget.deposits_deferrable_until().as_micros()),
                deposits: StripedCounter::new(),
                locked: Mutex::new(LockedBudget { budget, folded: 0 }),
            }),
        }
    }
}

/// A stream of per-call jitter seeds, shared by clones of a [`Retrier`] so that they do not
/// jitter in lockstep.
#[derive(Debug)]
struct SeedSequence {
    next: AtomicU64,
}

impl SeedSequence {
    fn from_seed(seed: u64) -> Self {
        Self {
            next: AtomicU64::new(seed),
        }
    }

    /// Seeded from the operating system: std's [`RandomState`] keys come from OS entropy
    /// (once per thread, then varied per instance), hashed here with the wall-clock time, the
    /// thread and a process-wide counter. Not cryptographic; jitter only needs callers not to
    /// agree.
    fn from_entropy() -> Self {
        static CALLS: AtomicU64 = AtomicU64::new(0);
        let seed = RandomState::new().hash_one((
            std::time::SystemTime::now(),
            std::thread::current().id(),
            CALLS.fetch_add(1, Ordering::Relaxed),
        ));
        Self::from_seed(seed)
    }

    /// The next call's seed: SplitMix64 of a counter, so consecutive calls get unrelated
    /// streams and a fixed seed gives the same seeds in the same order.
    fn next_seed(&self) -> u64 {
        Rng::new(self.next.fetch_add(1, Ordering::Relaxed)).next_u64()
    }
}

/// How a call begins: the deadline had passed already, or a `Retry` to drive.
pub(crate) enum Start {
    /// The current deadline has passed: make no attempt.
    Expired,
    /// Make the first attempt, driven by this state machine.
    Ready(Retry),
}

/// A logical call begun by [`Retrier::start_lazy`]: its retry state machine, built on the
/// first failure.
pub(crate) struct LazyRetry {
    started_at: rustkernel_core::time::Instant,
    deadline: Option<rustkernel_core::time::Instant>,
    retry: Option<Retry>,
}

/// Runs calls with retries: a validated [`RetryConfig`] plus an optional shared budget, a
/// jitter seed and a retry-after hint.
///
/// ```
/// use std::time::Duration;
/// use rustkernel_tokio::resilience::{
///     ErrorKind, Retrier, RetryBudgetConfig, RetryConfig, SharedRetryBudget,
/// };
///
/// let budget = SharedRetryBudget::new(RetryBudgetConfig::default());
/// let retrier = Retrier::new(RetryConfig::default())
///     .budget(budget.clone())
///     .seed(42) // deterministic jitter, for tests
///     .retry_after(|_error: &ErrorKind| Some(Duration::from_millis(250)));
/// # let _ = retrier;
/// ```
///
/// Clones share the budget and the seed stream. Each [`execute`](Self::execute) call is one
/// logical call: one deposit into the budget, then one withdrawal per retry.
///
/// Errors are classified by their [`Classify`](rustkernel_core::error::Classify) impl, and a
/// guarded call's [`ResilienceError`] is flattened (see
/// [`OperationError`](rustkernel_core::error::OperationError)); for an error type that is not
/// `Classify`, give a closure with [`classify_with`](Self::classify_with). Every `Ok` is a
/// success unless a [`ResponseClassifier`] given with
/// [`classify_response`](Self::classify_response) says otherwise.
#[derive(Clone)]
pub struct Retrier<H = NoHint, C = ByClassify, K = OkIsSuccess> {
    config: ValidRetryConfig,
    budget: Option<SharedRetryBudget>,
    seeds: Arc<SeedSequence>,
    hint: H,
    classifier: C,
    responses: K,
}

impl Retrier<NoHint> {
    /// A retrier with no budget, no hint, and jitter seeded from OS entropy.
    ///
    /// # Errors
    /// The error of [`RetryConfig::validate`].
    pub fn try_new(config: RetryConfig) -> Result<Self, ConfigError> {
        Ok(Self {
            config: config.validated()?,
            budget: None,
            seeds: Arc::new(SeedSequence::from_entropy()),
            hint: NoHint,
            classifier: ByClassify,
            responses: OkIsSuccess,
        })
    }

    /// A retrier with no budget, no hint, and jitter seeded from OS entropy.
    ///
    /// # Panics
    /// When `config` is invalid, with the message of its [`ConfigError`]; use
    /// [`try_new`](Self::try_new) to get the error instead.
    #[must_use]
    #[track_caller]
    pub fn new(config: RetryConfig) -> Self {
        valid_or_panic(Self::try_new(config), "retry configuration")
    }
}

impl<H, C, K> Retrier<H, C, K> {
    /// Shares `budget` with this retrier: each call deposits once, each retry withdraws once.
    #[must_use]
    pub fn budget(mut self, budget: SharedRetryBudget) -> Self {
        self.budget = Some(budget);
        self
    }

    /// Fixes the jitter seed, so the same calls in the same order wait the same delays (the
    /// embassy adapter's retrier, with no entropy source on its targets, always takes one).
    #[must_use]
    pub fn seed(mut self, seed: u64) -> Self {
        self.seeds = Arc::new(SeedSequence::from_seed(seed));
        self
    }

    /// Takes the wait from the failed attempt's error when `hint` gives one, instead of the
    /// backoff (see [`RetryAfterHint`]). A hint may exceed the backoff's `max`; a retry it
    /// would push past the deadline is not made.
    #[must_use]
    pub fn retry_after<G>(self, hint: G) -> Retrier<G, C, K> {
        Retrier {
            config: self.config,
            budget: self.budget,
            seeds: self.seeds,
            hint,
            classifier: self.classifier,
            responses: self.responses,
        }
    }

    /// Classifies the operation's errors with `classify` instead of their
    /// [`Classify`](rustkernel_core::error::Classify) impl, so an error type of another crate
    /// needs no newtype: `.classify_with(|e: &std::num::ParseIntError| ErrorKind::InvalidInput)`.
    #[must_use]
    pub fn classify_with<E, G: Fn(&E) -> ErrorKind>(self, classify: G) -> Retrier<H, G, K> {
        Retrier {
            config: self.config,
            budget: self.budget,
            seeds: self.seeds,
            hint: self.hint,
            classifier: classify,
            responses: self.responses,
        }
    }

    /// Classifies each `Ok` response with `classifier`: one it calls a failure of a kind in
    /// `retryable_errors` is retried as an error of that kind would be (its
    /// [`retry_after`](ResponseClassifier::retry_after), such as an HTTP `Retry-After`, sets
    /// the wait), and when retry gives up the last such response comes back as `Ok`, unchanged.
    /// Success and ignored responses end the call.
    #[must_use]
    pub fn classify_response<L>(self, classifier: L) -> Retrier<H, C, L> {
        Retrier {
            config: self.config,
            budget: self.budget,
            seeds: self.seeds,
            hint: self.hint,
            classifier: self.classifier,
            responses: classifier,
        }
    }

    /// The configuration.
    #[must_use]
    pub fn config(&self) -> &RetryConfig {
        self.config.get()
    }

    /// The shared budget, if any.
    #[must_use]
    pub fn shared_budget(&self) -> Option<&SharedRetryBudget> {
        self.budget.as_ref()
    }

    /// Runs `op` until it succeeds or the core's [`Retry`] gives up, sleeping between
    /// attempts on tokio's clock.
    ///
    /// Returns the first success, or the **last** error of `op` unchanged as
    /// [`ResilienceError::Operation`] (not retryable, attempts or budget exhausted, or the
    /// next attempt could not start before the current deadline), or
    /// [`ResilienceError::DeadlineExceeded`] without calling `op` when the current deadline
    /// has already passed. A response that the [response
    /// classifier](Self::classify_response) calls a failure is retried the same way, and comes
    /// back as `Ok` when retry gives up on it.
    pub async fn execute<F, Fut, T, R>(
        &self,
        mut op: F,
    ) -> Result<T, ResilienceError<<C as Classifier<R>>::Error>>
    where
        F: FnMut() -> Fut,
        Fut: Future<Output = Result<T, R>>,
        C: Classifier<R>,
        H: RetryAfterHint<<C as Classifier<R>>::Error>,
        K: ResponseClassifier<T>,
    {
        let mut retry = match self.start() {
            Start::Expired => return Err(ResilienceError::DeadlineExceeded),
            Start::Ready(retry) => retry,
        };
        loop {
            let decision = match op().await {
                Ok(value) => match self.responses.classify_response(&value) {
                    Verdict::Success | Verdict::Ignore => return Ok(value),
                    Verdict::Failure(kind) => {
                        let hint = self.responses.retry_after(&value);
                        match self.decide(&mut retry, kind, hint) {
                            RetryDecision::GiveUp(_) => return Ok(value),
                            retry_at => retry_at,
                        }
                    }
                },
                Err(error) => {
                    let error = self.classifier.flatten(error);
                    match self.on_failure(&mut retry, &error) {
                        RetryDecision::GiveUp(_) => return Err(error),
                        retry_at => retry_at,
                    }
                }
            };
            if let RetryDecision::RetryAt(at) = decision {
                tokio::time::sleep_until(clock::to_tokio(at)).await;
            }
        }
    }

    /// The classifier.
    pub(crate) fn classifier(&self) -> &C {
        &self.classifier
    }

    /// The response classifier.
    pub(crate) fn responses(&self) -> &K {
        &self.responses
    }

    /// Begins a logical call now, under the current deadline: deposits into the budget.
    pub(crate) fn start(&self) -> Start {
        let now = clock::now();
        let deadline = current_deadline().map(|deadline| deadline.as_core());
        if deadline.is_some_and(|deadline| deadline.is_expired(now)) {
            tracing::debug!(
                target: "rustkernel::retry",
                "deadline passed before the first attempt"
            );
            return Start::Expired;
        }
        if let Some(budget) = &self.budget {
            budget.deposit_at(now);
        }
        let seed = self.seeds.next_seed();
        let deadline = deadline.map(|deadline| deadline.deadline());
        Start::Ready(Retry::start(&self.config, seed, now, deadline))
    }

    /// Begins a logical call at `now` under `deadline` (already read by the caller), without
    /// building the retry state machine: the closed path pays only the budget's deposit, and
    /// the seed and the state machine are made on the first failure ([`LazyRetry`]).
    pub(crate) fn start_lazy(
        &self,
        now: rustkernel_core::time::Instant,
        deadline: Option<rustkernel_core::time::Instant>,
    ) -> LazyRetry {
        if let Some(budget) = &self.budget {
            budget.deposit_at(now);
        }
        LazyRetry {
            started_at: now,
            deadline,
            retry: None,
        }
    }

    /// As [`on_failure`](Self::on_failure) for a call begun with
    /// [`start_lazy`](Self::start_lazy): builds its state machine on the first failure.
    pub(crate) fn on_lazy_failure<R>(
        &self,
        lazy: &mut LazyRetry,
        error: &ResilienceError<<C as Classifier<R>>::Error>,
    ) -> RetryDecision
    where
        C: Classifier<R>,
        H: RetryAfterHint<<C as Classifier<R>>::Error>,
    {
        let retry = self.lazy_retry(lazy);
        self.on_failure::<R>(retry, error)
    }

    /// As [`decide`](Self::decide) for a call begun with [`start_lazy`](Self::start_lazy).
    pub(crate) fn decide_lazy(
        &self,
        lazy: &mut LazyRetry,
        kind: ErrorKind,
        hint: Option<Duration>,
    ) -> RetryDecision {
        let retry = self.lazy_retry(lazy);
        self.decide(retry, kind, hint)
    }

    /// The state machine of a lazily begun call, built on its first failure.
    fn lazy_retry<'a>(&self, lazy: &'a mut LazyRetry) -> &'a mut Retry {
        lazy.retry.get_or_insert_with(|| {
            let seed = self.seeds.next_seed();
            Retry::start(&self.config, seed, lazy.started_at, lazy.deadline)
        })
    }

    /// Reports a failed attempt (its flattened error) to `retry` now, with the budget and the
    /// hint (asked only of the operation's own errors).
    pub(crate) fn on_failure<R>(
        &self,
        retry: &mut Retry,
        error: &ResilienceError<<C as Classifier<R>>::Error>,
    ) -> RetryDecision
    where
        C: Classifier<R>,
        H: RetryAfterHint<<C as Classifier<R>>::Error>,
    {
        let kind = self.classifier.kind_of(error);
        let hint = match error {
            ResilienceError::Operation(error) => self.hint.retry_after(error),
            _ => None,
        };
        self.decide(retry, kind, hint)
    }

    /// Reports a failed attempt of `kind` (an error's, or a response's that the response
    /// classifier called a failure) to `retry` now, with the budget and the callee's `hint`.
    pub(crate) fn decide(
        &self,
        retry: &mut Retry,
        kind: ErrorKind,
        hint: Option<Duration>,
    ) -> RetryDecision {
        let now = clock::now();
        let decision = match &self.budget {
            Some(budget) => budget.with(|budget| retry.on_failure(kind, now, hint, Some(budget))),
            None => retry.on_failure(kind, now, hint, None),
        };
        match decision {
            RetryDecision::RetryAt(at) => tracing::debug!(
                target: "rustkernel::retry",
                attempt = retry.attempts(),
                %kind,
                delay_us = (at - now).as_micros(),
                "retrying"
            ),
            RetryDecision::GiveUp(reason) => tracing::debug!(
                target: "rustkernel::retry",
                attempts = retry.attempts(),
                %kind,
                %reason,
                "giving up; returning the last error"
            ),
        }
        decision
    }
}

impl<H, C, K> fmt::Debug for Retrier<H, C, K> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Retrier")
            .field("config", &self.config)
            .field("budget", &self.budget)
            .finish_non_exhaustive()
    }
}

/// The chapter's `config.execute(|| kernel.execute(input)).await` on a [`RetryConfig`].
pub trait RetryExt {
    /// Runs `op` with the retries of this config, as [`Retrier::execute`] with no budget, no
    /// hint and jitter seeded from OS entropy.
    ///
    /// # Panics
    /// When the config is invalid (at the call, before any attempt), with the message of
    /// its [`ConfigError`]; check it with [`RetryConfig::validate`] when it is loaded, or use
    /// [`Retrier::try_new`].
    fn execute<F, Fut, T, R>(
        &self,
        op: F,
    ) -> impl Future<Output = Result<T, ResilienceError<<ByClassify as Classifier<R>>::Error>>>
    + use<Self, F, Fut, T, R>
    where
        F: FnMut() -> Fut,
        Fut: Future<Output = Result<T, R>>,
        ByClassify: Classifier<R>;
}

impl RetryExt for RetryConfig {
    fn execute<F, Fut, T, R>(
        &self,
        op: F,
    ) -> impl Future<Output = Result<T, ResilienceError<<ByClassify as Classifier<R>>::Error>>>
    + use<F, Fut, T, R>
    where
        F: FnMut() -> Fut,
        Fut: Future<Output = Result<T, R>>,
        ByClassify: Classifier<R>,
    {
        let retrier = Retrier::new(*self);
        async move { retrier.execute(op).await }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn fixed_seeds_repeat_and_entropy_seeds_differ() {
        let a = SeedSequence::from_seed(7);
        let b = SeedSequence::from_seed(7);
        let first = a.next_seed();
        assert_eq!(first, b.next_seed());
        assert_ne!(first, a.next_seed());
        let x = SeedSequence::from_entropy().next_seed();
        let y = SeedSequence::from_entropy().next_seed();
        assert_ne!(x, y);
    }

    #[test]
    fn invalid_configs_are_refused() {
        let config = RetryConfig {
            max_attempts: 0,
            ..RetryConfig::default()
        };
        assert!(Retrier::try_new(config).is_err());
        let budget = RetryBudgetConfig {
            retry_ratio: f32::NAN,
            ..RetryBudgetConfig::default()
        };
        assert!(SharedRetryBudget::try_new(budget).is_err());
    }

    #[test]
    #[should_panic(expected = "retry.max_attempts must be greater than zero")]
    fn new_panics_with_the_message() {
        let _ = Retrier::new(RetryConfig {
            max_attempts: 0,
            ..RetryConfig::default()
        });
    }

    #[test]
    fn deposits_counted_on_the_side_reach_the_budget_before_its_next_input() {
        use rustkernel_core::time::Instant;
        // Ten slots of 1 s; half a retry per request, no floor.
        let budget = SharedRetryBudget::new(RetryBudgetConfig {
            min_retries_per_second: 0,
            retry_ratio: 0.5,
            ..RetryBudgetConfig::default()
        });
        let t = Instant::from_secs(100);
        // The first deposit moves the ring to t's slot, under the lock; the next ones in that
        // slot are counted on the side.
        budget.deposit_at(t);
        for _ in 0..3 {
            budget.deposit_at(t + Duration::from_millis(999));
        }
        assert_eq!(budget.inner.deposits.sum(), 3);
        // A withdrawal sees all four requests: two retries.
        let withdraw = |now| budget.with(|b| b.try_withdraw(now));
        assert!(withdraw(t));
        assert!(withdraw(t));
        assert!(!withdraw(t));
        // The next slot's first deposit goes through the lock again.
        budget.deposit_at(t + Duration::from_secs(1));
        budget.deposit_at(t + Duration::from_secs(1));
        assert_eq!(budget.inner.deposits.sum(), 4);
        assert!(withdraw(t + Duration::from_secs(1)));
        assert!(!withdraw(t + Duration::from_secs(1)));
    }

    #[test]
    #[allow(clippy::panic)] // poisons the lock on purpose
    fn a_poisoned_budget_still_counts() {
        let budget = SharedRetryBudget::new(RetryBudgetConfig {
            min_retries_per_second: 0,
            retry_ratio: 1.0,
            ..RetryBudgetConfig::default()
        });
        let clone = budget.clone();
        let _ = std::thread::spawn(move || {
            clone.with(|_| panic!("poison the lock"));
        })
        .join();
        budget.deposit();
        assert!(budget.try_withdraw());
        assert!(!budget.try_withdraw());
    }
}
