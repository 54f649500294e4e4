//! Retry with backoff on embassy's clock: the core's [`Retry`] state machine, slept out with
//! `embassy_time::Timer`.
//!
//! A [`Retrier`] holds a validated [`RetryConfig`], its own jitter stream, and optionally a
//! deadline for the whole call and a [`SharedRetryBudget`] shared with other callers.
//! [`Retrier::execute`] runs the operation, and after each failure asks the core whether and
//! when to try again. When it gives up, the caller gets the operation's **last real error**
//! ([`ResilienceError::Operation`]); why it gave up ([`GiveUpReason`]) is reported to the
//! observer of [`Retrier::execute_observed`].
//!
//! With a deadline, each attempt runs under it and no retry is scheduled that could not start
//! before it; an attempt cut by the deadline ends the call with
//! [`ResilienceError::DeadlineExceeded`].
//!
//! ```
//! use core::time::Duration;
//! use rustkernel_core::error::ErrorKind;
//! use rustkernel_core::resilience::{BackoffStrategy, RetryConfig};
//! use rustkernel_embassy::retry::Retrier;
//! use rustkernel_embassy::ResilienceError;
//!
//! let config = RetryConfig {
//!     max_attempts: 3,
//!     backoff: BackoffStrategy::Fixed { delay: Duration::ZERO },
//!     retryable_errors: [ErrorKind::Transient, ErrorKind::Timeout].into(),
//! };
//! let mut retrier = Retrier::new(config, 0x5eed);
//! # embassy_futures::block_on(async {
//! let mut calls = 0;
//! let result = retrier
//!     .execute(|| {
//!         calls += 1;
//!         let attempt = calls;
//!         async move { if attempt < 3 { Err(ErrorKind::Transient) } else { Ok(attempt) } }
//!     })
//!     .await;
//! assert_eq!(result, Ok(3));
//! // A permanent error is not retried, and comes back as it was.
//! let result = retrier.execute(|| async { Err::<(), _>(ErrorKind::Permanent) }).await;
//! assert_eq!(result, Err(ResilienceError::Operation(ErrorKind::Permanent)));
//! # });
//! ```

use core::cell::RefCell;
use core::fmt;
use core::future::Future;

use embassy_sync::blocking_mutex::Mutex;
use embassy_sync::blocking_mutex::raw::{CriticalSectionRawMutex, RawMutex};
use embassy_time::Timer;
use rustkernel_core::error::{ByClassify, Classifier, ConfigError, ErrorKind, ResilienceError};
use rustkernel_core::resilience::{
    ConstRetryConfig, FixedRetryConfig, GiveUpReason, Retry, RetryBudget, RetryBudgetConfig,
    RetryConfig, RetryDecision, RetryPolicy, ValidRetryConfig,
};
use rustkernel_core::rng::Rng;
use rustkernel_core::time::Instant as CoreInstant;

use crate::deadline::{DeadlineContext, run_resolved};
use crate::time::{now, to_embassy_instant};
use rustkernel_core::resilience::DeadlineExceeded;

/// What happened after one failed attempt, for logs, metrics and telemetry.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
#[cfg_attr(feature = "defmt", derive(defmt::Format))]
pub struct RetryEvent {
    /// The attempt that failed (1 for the first try).
    pub attempt: u32,
    /// The kind of its error.
    pub kind: ErrorKind,
    /// Retry at an instant (on the core's clock), or give up and why.
    pub decision: RetryDecision,
}

/// Runs an operation again after retryable failures, sleeping the backoff with `Timer`.
///
/// Build it per task (it is cheap and `Clone`); share the [`SharedRetryBudget`], not the
/// retrier. Each [`execute`](Self::execute) draws a fresh seed from the retrier's own stream, so
/// successive calls do not jitter alike; seed retriers of different tasks or devices
/// differently (a device id, a hardware RNG).
///
/// The type parameter `B` says where its retries come from: [`NoBudget`] (what
/// [`new`](Self::new) builds; no budget code is linked) or `&SharedRetryBudget<M>` (after
/// [`with_budget`](Self::with_budget)). `P` says where its configuration is read: a
/// [`ValidRetryConfig`] it holds, or a [`FixedRetryConfig`] (a type, [`from_const`](
/// Retrier::from_const)) whose reads are constants, so the backoff strategies it does not use are
/// left out of the firmware.
pub struct Retrier<B: RetryBudgetSource = NoBudget, P: RetryPolicy = ValidRetryConfig> {
    config: P,
    rng: Rng,
    deadline: Option<DeadlineContext>,
    budget: B,
}

/// Where a [`Retrier`]'s retries come from besides its [`RetryConfig`]: [`NoBudget`], or a
/// `&SharedRetryBudget`. Sealed: implemented by this crate only.
pub trait RetryBudgetSource: Copy + sealed::Sealed {
    /// Counts one original request at `at`.
    #[doc(hidden)]
    fn deposit_at(&self, at: CoreInstant);

    /// `retry.on_failure` with this budget.
    #[doc(hidden)]
    fn on_failure<P: RetryPolicy>(
        &self,
        retry: &mut Retry<P>,
        kind: ErrorKind,
        at: CoreInstant,
    ) -> RetryDecision;

    /// Whether a budget is attached (for `Debug`).
    #[doc(hidden)]
    fn is_attached(&self) -> bool;
}

mod sealed {
    pub trait Sealed {}
    impl Sealed for super::NoBudget {}
    impl<M: super::RawMutex> Sealed for &super::SharedRetryBudget<M> {}
}

/// No retry budget: only the [`RetryConfig`] limits retries. Zero-sized.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct NoBudget;

impl RetryBudgetSource for NoBudget {
    fn deposit_at(&self, _at: CoreInstant) {}

    fn on_failure<P: RetryPolicy>(
        &self,
        retry: &mut Retry<P>,
        kind: ErrorKind,
        at: CoreInstant,
    ) -> RetryDecision {
        retry.on_failure(kind, at, None, None)
    }

    fn is_attached(&self) -> bool {
        false
    }
}

impl<M: RawMutex> RetryBudgetSource for &SharedRetryBudget<M> {
    fn deposit_at(&self, at: CoreInstant) {
        SharedRetryBudget::deposit_at(self, at);
    }

    fn on_failure<P: RetryPolicy>(
        &self,
        retry: &mut Retry<P>,
        kind: ErrorKind,
        at: CoreInstant,
    ) -> RetryDecision {
        SharedRetryBudget::on_failure(self, retry, kind, at)
    }

    fn is_attached(&self) -> bool {
        true
    }
}

impl Retrier<NoBudget> {
    /// A retrier with no deadline and no budget, after validating `config`.
    ///
    /// Unlike the tokio adapter's `Retrier::new(config)`, which seeds the jitter from the
    /// operating system's entropy (and takes a fixed seed through `.seed(n)`), this one takes
    /// the seed: a `no_std` target has no entropy source this crate could reach. Give each
    /// device its own (a serial number, a hardware RNG read), or a fleet retries in step.
    ///
    /// # Errors
    /// The [`ConfigError`] of [`RetryConfig::validate`].
    pub fn try_new(config: RetryConfig, seed: u64) -> Result<Self, ConfigError> {
        Ok(Self::from_valid(config.validated()?, seed))
    }

    /// A retrier with no deadline and no budget, from a configuration checked beforehand
    /// (in a `const`, when the firmware is compiled: see [`ValidRetryConfig`]); cannot fail.
    #[must_use]
    pub const fn from_valid(config: ValidRetryConfig, seed: u64) -> Self {
        Self {
            config,
            rng: Rng::new(seed),
            deadline: None,
            budget: NoBudget,
        }
    }

    /// A retrier with no deadline and no budget; see [`try_new`](Self::try_new). `const`, so
    /// a `const` or `static` retrier is checked when the firmware is compiled.
    ///
    /// # Panics
    /// When `config` is invalid, with the message of its [`ConfigError`] (in a `const`:
    /// "invalid retry configuration: retry.max_attempts must be greater than zero" fails the
    /// build).
    #[must_use]
    #[track_caller]
    pub const fn new(config: RetryConfig, seed: u64) -> Self {
        Self::from_valid(ValidRetryConfig::new(config), seed)
    }

    /// A retrier with no deadline and no budget over [`T::CONFIG`](ConstRetryConfig::CONFIG),
    /// a configuration that is a type, checked when the firmware is compiled (an invalid one
    /// fails the build, naming its field). Every read of the configuration is a constant, so
    /// the backoff strategies it does not use are left out of the firmware
    /// ([`FixedRetryConfig`]).
    ///
    /// ```
    /// use core::time::Duration;
    /// use rustkernel_core::error::{ErrorKind, ErrorKindSet};
    /// use rustkernel_core::resilience::{BackoffStrategy, ConstRetryConfig, RetryConfig};
    /// use rustkernel_embassy::retry::Retrier;
    ///
    /// struct Jobs;
    ///
    /// impl ConstRetryConfig for Jobs {
    ///     const CONFIG: RetryConfig = RetryConfig {
    ///         max_attempts: 3,
    ///         backoff: BackoffStrategy::Fixed { delay: Duration::ZERO },
    ///         retryable_errors: ErrorKindSet::of(&[ErrorKind::Transient]),
    ///     };
    /// }
    ///
    /// let mut retrier = Retrier::from_const::<Jobs>(7);
    /// # embassy_futures::block_on(async {
    /// let mut calls = 0;
    /// let result = retrier
    ///     .execute(|| {
    ///         calls += 1;
    ///         let attempt = calls;
    ///         async move { if attempt < 3 { Err(ErrorKind::Transient) } else { Ok(attempt) } }
    ///     })
    ///     .await;
    /// assert_eq!(result, Ok(3));
    /// # });
    /// ```
    #[must_use]
    pub const fn from_const<T: ConstRetryConfig>(
        seed: u64,
    ) -> Retrier<NoBudget, FixedRetryConfig<T>> {
        Retrier {
            config: FixedRetryConfig::new(),
            rng: Rng::new(seed),
            deadline: None,
            budget: NoBudget,
        }
    }
}

impl<B: RetryBudgetSource, P: RetryPolicy> Retrier<B, P> {
    /// The same retrier, with every call bounded by `deadline`.
    #[must_use]
    pub fn with_deadline(mut self, deadline: DeadlineContext) -> Self {
        self.deadline = Some(deadline);
        self
    }

    /// The same retrier, with no overall deadline.
    #[must_use]
    pub fn without_deadline(mut self) -> Self {
        self.deadline = None;
        self
    }

    /// The same retrier, drawing its retries from `budget` (one deposit per call, one
    /// withdrawal per retry).
    #[must_use]
    pub fn with_budget<M: RawMutex>(
        self,
        budget: &SharedRetryBudget<M>,
    ) -> Retrier<&SharedRetryBudget<M>, P> {
        Retrier {
            config: self.config,
            rng: self.rng,
            deadline: self.deadline,
            budget,
        }
    }

    /// The configuration it retries with.
    #[must_use]
    pub fn config(&self) -> &RetryConfig {
        self.config.get()
    }

    /// The overall deadline, if any.
    #[must_use]
    pub const fn deadline(&self) -> Option<DeadlineContext> {
        self.deadline
    }

    /// Runs `op` until it succeeds or the core gives up.
    ///
    /// `op` is called once per attempt and must build a fresh future each time. Retryable
    /// kinds, attempts and backoff come from the [`RetryConfig`].
    ///
    /// # Errors
    /// [`ResilienceError::Operation`] with the last attempt's own error when the core gives up;
    /// [`ResilienceError::DeadlineExceeded`] when the deadline had passed before the first
    /// attempt or passed during an attempt.
    pub async fn execute<T, R, F, Fut>(
        &mut self,
        op: F,
    ) -> Result<T, ResilienceError<<ByClassify as Classifier<R>>::Error>>
    where
        F: FnMut() -> Fut,
        Fut: Future<Output = Result<T, R>>,
        ByClassify: Classifier<R>,
    {
        self.execute_classified(&ByClassify, op, |_| {}).await
    }

    /// [`execute`](Self::execute), handing a [`RetryEvent`] to `observer` after each failed
    /// attempt (with the decision: retry at an instant, or give up and why).
    ///
    /// # Errors
    /// As [`execute`](Self::execute).
    pub async fn execute_observed<T, R, F, Fut, O>(
        &mut self,
        op: F,
        observer: O,
    ) -> Result<T, ResilienceError<<ByClassify as Classifier<R>>::Error>>
    where
        F: FnMut() -> Fut,
        Fut: Future<Output = Result<T, R>>,
        ByClassify: Classifier<R>,
        O: FnMut(RetryEvent),
    {
        self.execute_classified(&ByClassify, op, observer).await
    }

    /// [`execute_observed`](Self::execute_observed) with errors classified by `classifier`: a
    /// closure `|e: &E| ErrorKind::..` for an error type that is not
    /// [`Classify`](rustkernel_core::error::Classify). With the default classifier a guarded
    /// call's [`ResilienceError`] is flattened: the result has one level.
    ///
    /// # Errors
    /// As [`execute`](Self::execute).
    pub async fn execute_classified<T, R, F, Fut, K, O>(
        &mut self,
        classifier: &K,
        mut op: F,
        mut observer: O,
    ) -> Result<T, ResilienceError<K::Error>>
    where
        F: FnMut() -> Fut,
        Fut: Future<Output = Result<T, R>>,
        K: Classifier<R>,
        O: FnMut(RetryEvent),
    {
        let Ok(mut retry) = self.begin() else {
            return Err(ResilienceError::DeadlineExceeded);
        };
        loop {
            let error = match self.attempt(classifier, &mut op).await {
                Ok(value) => return Ok(value),
                // The deadline passed during the attempt: no retry can start in time.
                Err(ResilienceError::DeadlineExceeded)
                    if self.deadline.is_some_and(|d| d.is_expired()) =>
                {
                    return Err(ResilienceError::DeadlineExceeded);
                }
                Err(error) => error,
            };
            let event = self.decide(&mut retry, classifier.kind_of(&error));
            let decision = event.decision;
            observer(event);
            match decision {
                RetryDecision::RetryAt(when) => Timer::at(to_embassy_instant(when)).await,
                RetryDecision::GiveUp(_) => return Err(error),
            }
        }
    }

    /// Starts a call: checks the deadline, counts the request in the budget, draws a seed and
    /// starts the core's state machine.
    ///
    /// Not generic over the operation, and kept out of line, so that every `execute` shares
    /// one copy.
    #[inline(never)]
    fn begin(&mut self) -> Result<Retry<P>, DeadlineExceeded> {
        let start = now();
        if let Some(deadline) = self.deadline {
            deadline.check()?;
        }
        self.budget.deposit_at(start);
        let seed = self.rng.next_u64();
        let core_deadline = self.deadline.map(|deadline| deadline.as_core().deadline());
        Ok(Retry::start(&self.config, seed, start, core_deadline))
    }

    /// After a failed attempt with `kind`: the core's decision now (with the budget, if any),
    /// as the event the observer sees. Out of line, like [`begin`](Self::begin).
    #[inline(never)]
    fn decide(&self, retry: &mut Retry<P>, kind: ErrorKind) -> RetryEvent {
        let attempt = retry.attempts();
        let decision = self.budget.on_failure(retry, kind, now());
        RetryEvent {
            attempt,
            kind,
            decision,
        }
    }

    /// One attempt, under the deadline if there is one.
    async fn attempt<T, R, F, Fut, K>(
        &self,
        classifier: &K,
        op: &mut F,
    ) -> Result<T, ResilienceError<K::Error>>
    where
        F: FnMut() -> Fut,
        Fut: Future<Output = Result<T, R>>,
        K: Classifier<R>,
    {
        match self.deadline {
            // The caller's deadline: the core's errors for it (`DeadlineExceeded`).
            Some(deadline) => run_resolved(deadline.resolved(), classifier, op).await,
            None => op().await.map_err(|error| classifier.flatten(error)),
        }
    }
}

// By hand: a derive would ask `M: Clone`, which no mutex type is.
impl<B: RetryBudgetSource, P: RetryPolicy> Clone for Retrier<B, P> {
    fn clone(&self) -> Self {
        Self {
            config: self.config,
            rng: self.rng,
            deadline: self.deadline,
            budget: self.budget,
        }
    }
}

impl<B: RetryBudgetSource, P: RetryPolicy + fmt::Debug> fmt::Debug for Retrier<B, P> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Retrier")
            .field("config", &self.config)
            .field("deadline", &self.deadline)
            .field("budget", &self.budget.is_attached())
            .finish_non_exhaustive()
    }
}

/// A [`RetryBudget`] shared by every caller of one callee, behind an `embassy_sync` blocking
/// mutex: retries may be at most a share of recent requests, so a failing accelerator is not
/// hammered by every task's retries at once.
///
/// Like the breaker, [`new`](Self::new) is `const` (fit for a `static`) and checks the
/// configuration there: in a `static` an invalid one fails the build.
/// [`try_new`](Self::try_new) returns the [`ConfigError`] instead.
pub struct SharedRetryBudget<M: RawMutex = CriticalSectionRawMutex> {
    inner: Mutex<M, RefCell<RetryBudget>>,
}

impl<M: RawMutex> SharedRetryBudget<M> {
    /// A budget, `const`.
    ///
    /// # Panics
    /// When the configuration is invalid; in a `const` or `static` that is a compile error.
    #[must_use]
    #[track_caller]
    pub const fn new(config: RetryBudgetConfig) -> Self {
        match RetryBudget::try_new(config) {
            Ok(budget) => Self::from_core(budget),
            Err(error) => {
                rustkernel_core::error::invalid_const("retry budget configuration", &error)
            }
        }
    }

    /// A budget, checked now.
    ///
    /// # Errors
    /// The [`ConfigError`] of [`RetryBudgetConfig::validate`].
    pub const fn try_new(config: RetryBudgetConfig) -> Result<Self, ConfigError> {
        match RetryBudget::try_new(config) {
            Ok(budget) => Ok(Self::from_core(budget)),
            Err(error) => Err(error),
        }
    }

    /// Shares a core budget (what it has counted is kept).
    #[must_use]
    pub const fn from_core(budget: RetryBudget) -> Self {
        Self {
            inner: Mutex::new(RefCell::new(budget)),
        }
    }

    /// Counts one original request (not a retry) now. [`Retrier`] does this for you.
    pub fn deposit(&self) {
        self.deposit_at(now());
    }

    /// Takes one retry from the budget now; `false` (and nothing taken) when it is spent.
    /// [`Retrier`] does this for you.
    pub fn try_withdraw(&self) -> bool {
        let at = now();
        self.with_budget(|budget| budget.try_withdraw(at))
            .unwrap_or(false)
    }

    /// Retries the budget would allow now if no request came in meanwhile.
    #[must_use]
    pub fn available(&self) -> u64 {
        let at = now();
        self.with_budget(|budget| budget.available(at)).unwrap_or(0)
    }

    fn deposit_at(&self, at: CoreInstant) {
        let _ = self.with_budget(|budget| budget.deposit(at));
    }

    /// `retry.on_failure` with this budget, under the lock; no budget, no retry.
    fn on_failure<P: RetryPolicy>(
        &self,
        retry: &mut Retry<P>,
        kind: ErrorKind,
        at: CoreInstant,
    ) -> RetryDecision {
        self.with_budget(|budget| retry.on_failure(kind, at, None, Some(budget)))
            .unwrap_or(RetryDecision::GiveUp(GiveUpReason::BudgetExhausted))
    }

    /// Locks and runs `f` on the budget; `None` only if the lock re-entered (nothing in this
    /// crate runs user code under it), which callers treat as a spent budget.
    fn with_budget<R>(&self, f: impl FnOnce(&mut RetryBudget) -> R) -> Option<R> {
        self.inner
            .lock(|cell| Some(f(&mut *cell.try_borrow_mut().ok()?)))
    }
}

impl<M: RawMutex> fmt::Debug for SharedRetryBudget<M> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("SharedRetryBudget")
            .field("available", &self.available())
            .finish_non_exhaustive()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use embassy_sync::blocking_mutex::raw::NoopRawMutex;
    use rustkernel_core::resilience::BackoffStrategy;

    fn config() -> RetryConfig {
        RetryConfig {
            max_attempts: 2,
            backoff: BackoffStrategy::Fixed {
                delay: core::time::Duration::ZERO,
            },
            retryable_errors: [ErrorKind::Transient].into(),
        }
    }

    fn assert_send<T: Send>(_: &T) {}

    #[test]
    fn the_default_type_names_the_unbudgeted_retrier_and_send_is_kept() {
        let plain: Retrier = Retrier::new(config(), 1);
        assert_send(&plain);
        assert_eq!(core::mem::size_of_val(&plain.budget), 0);
        let budget: SharedRetryBudget = SharedRetryBudget::new(RetryBudgetConfig::default());
        let budgeted: Retrier<&SharedRetryBudget> = plain.clone().with_budget(&budget);
        assert_send(&budgeted);
        assert!(!plain.budget.is_attached());
        assert!(budgeted.budget.is_attached());
        let local: SharedRetryBudget<NoopRawMutex> =
            SharedRetryBudget::new(RetryBudgetConfig::default());
        assert!(plain.with_budget(&local).budget.is_attached());
    }
}
