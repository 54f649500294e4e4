//! One resilience pipeline: the total deadline, retry, the breaker and a per-attempt timeout,
//! composed once, in a fixed order, returning ONE flat [`ResilienceError`].
//!
//! # The order, outermost first, and why
//! 1. **The total deadline** (from [`TimeoutConfig`], capped by the caller's current deadline).
//!    It bounds everything below: retries never sleep towards an attempt that could not start in
//!    time, and the whole call returns [`ResilienceError::DeadlineExceeded`] (the caller's
//!    deadline, or a deadline gone before the call started) or [`ResilienceError::Timeout`] (the
//!    call's own) when it passes. The rule is the core's ([`ResolvedDeadline`]), so the
//!    embassy adapter's `Pipeline` gives the same errors for the same configuration.
//! 2. **Retry** (backoff with jitter, retryable kinds, retry-after hints, the shared budget).
//!    Outside the breaker, so that each attempt asks the breaker again: a breaker that opened
//!    during the call rejects the next attempt instead of letting retries hammer a failing
//!    kernel, and a rejection (`CircuitOpen`, kind `Unavailable`) is retried only if
//!    `retryable_errors` says so.
//! 3. **The breaker**, once per attempt: every attempt's outcome counts, as the kernel saw it.
//! 4. **The attempt timeout** (optional), innermost: a hung attempt is cut and counted by the
//!    breaker as a timeout failure, and the retry can still make another attempt within the total
//!    deadline.
//!
//! The result is `Result<T, ResilienceError<E>>` with one level: `CircuitOpen` (the breaker
//! refused the last attempt; [`Outcome::retry_after`] or
//! [`CircuitBreaker::retry_after`] say when to come back), `DeadlineExceeded`, `Timeout`, or
//! `Operation(e)` with the last real error, unchanged. [`Pipeline::execute_outcome`] returns the
//! same result with the number of attempts made, for logs and metrics.
//!
//! ```
//! use std::time::Duration;
//! use rustkernel_tokio::resilience::{
//!     CircuitBreaker, CircuitBreakerConfig, ErrorKind, Pipeline, ResilienceConfig,
//!     ResilienceError,
//! };
//!
//! # #[tokio::main(flavor = "current_thread", start_paused = true)]
//! # async fn main() {
//! let pipeline = Pipeline::from_config(&ResilienceConfig::development()).expect("valid preset");
//! let result = pipeline.execute(|| async { Ok::<_, ErrorKind>(42) }).await;
//! assert_eq!(result, Ok(42));
//!
//! // A kernel that always fails: retries, then the breaker opens and rejects at the top level.
//! let failing = || async { Err::<u32, _>(ErrorKind::Unavailable) };
//! let mut rejected = 0;
//! for _ in 0..20 {
//!     match pipeline.execute(failing).await {
//!         Err(ResilienceError::CircuitOpen) => rejected += 1,
//!         Err(ResilienceError::Operation(kind)) => assert_eq!(kind, ErrorKind::Unavailable),
//!         other => panic!("unexpected {other:?}"),
//!     }
//! }
//! assert!(rejected > 0);
//! # }
//! ```

use std::fmt;
use std::future::Future;
use std::time::Duration;

use rustkernel_core::error::{ByClassify, Classifier, ConfigError, ErrorKind, valid_or_panic};
use rustkernel_core::resilience::circuit_breaker::SlidingWindow;
use rustkernel_core::resilience::{
    DeadlineBound, GiveUpReason, NoWindow, PipelineConfig, ResilienceConfig, ResilienceError,
    ResolvedDeadline, RetryConfig, RetryDecision, TimeoutConfig,
};

use crate::breaker::CircuitBreaker;
use crate::classify::{OkIsSuccess, ResponseClassifier, Verdict};
use crate::clock;
use crate::deadline::{DeadlineContext, current_deadline, poll_until};
use crate::retry::{NoHint, Retrier, RetryAfterHint, SharedRetryBudget};
use rustkernel_core::time::Instant;

/// A deadline, retry, breaker and attempt-timeout pipeline, built once and shared (it is a
/// cheap [`Clone`]: the breaker and the budget are shared handles).
///
/// Build it from a [`ResilienceConfig`] ([`from_config`](Self::from_config)) or from parts
/// ([`builder`](Self::builder)). See the [module docs](self) for the order and why.
pub struct Pipeline<W: SlidingWindow = NoWindow, H = NoHint, C = ByClassify, K = OkIsSuccess> {
    timeout: Option<TimeoutConfig>,
    retrier: Retrier<H, C, K>,
    breaker: Option<CircuitBreaker<W>>,
    attempt_timeout: Option<Duration>,
}

/// Builds a [`Pipeline`] from parts; from [`Pipeline::builder`].
#[must_use = "a builder does nothing until built"]
pub struct PipelineBuilder<W: SlidingWindow = NoWindow, H = NoHint, C = ByClassify, K = OkIsSuccess>
{
    timeout: Option<TimeoutConfig>,
    retrier: Retrier<H, C, K>,
    breaker: Option<CircuitBreaker<W>>,
    attempt_timeout: Option<Duration>,
}

/// The result of one call through a [`Pipeline`], with what it took.
#[derive(Clone, Debug, PartialEq, Eq)]
#[must_use]
pub struct Outcome<T, E> {
    /// What [`Pipeline::execute`] returns.
    pub result: Result<T, ResilienceError<E>>,
    /// How many attempts were made, a rejected one included (0 when the deadline had passed
    /// before the first).
    pub attempts: u32,
    /// When the result is `CircuitOpen`: how long until the breaker admits a call again
    /// (`Duration::MAX` while forced open).
    pub retry_after: Option<Duration>,
    /// Why retry stopped on an error, or on a response the response classifier called a
    /// failure (then the result is that `Ok` response); `None` on success, or when no retry
    /// decision was made (the deadline cut the call). `BudgetExhausted` means load was shed.
    pub gave_up: Option<GiveUpReason>,
}

impl Pipeline<NoWindow, NoHint, ByClassify> {
    /// The pipeline a [`ResilienceConfig`] describes: its `timeout` (the total deadline), `retry`
    /// with a shared `retry_budget`, and a consecutive-failure breaker from `circuit_breaker`.
    /// No attempt timeout (add one with [`builder`](Self::builder)).
    ///
    /// # Errors
    /// The first [`ConfigError`] of the parts it uses.
    pub fn from_config(config: &ResilienceConfig) -> Result<Self, ConfigError> {
        config.timeout.validate()?;
        let budget = SharedRetryBudget::try_new(config.retry_budget)?;
        let retrier = Retrier::try_new(config.retry)?.budget(budget);
        let breaker = CircuitBreaker::try_new(config.circuit_breaker)?;
        Ok(Self {
            timeout: Some(config.timeout),
            retrier,
            breaker: Some(breaker),
            attempt_timeout: None,
        })
    }

    /// The pipeline a core [`PipelineConfig`] describes (the embassy adapter's `Pipeline` is
    /// built from the same): its timeout, retry (with no budget, jitter seeded from OS entropy),
    /// a consecutive-failure breaker and the attempt timeout.
    ///
    /// # Errors
    /// The first [`ConfigError`] of the configuration.
    pub fn try_new(config: PipelineConfig) -> Result<Self, ConfigError> {
        Pipeline::try_with_window(config, NoWindow)
    }

    /// As [`try_new`](Self::try_new).
    ///
    /// # Panics
    /// When the configuration is invalid, with the message of its [`ConfigError`].
    #[must_use]
    #[track_caller]
    pub fn new(config: PipelineConfig) -> Self {
        valid_or_panic(Self::try_new(config), "pipeline configuration")
    }

    /// A builder with no deadline, one attempt, no breaker and no attempt timeout; add the parts.
    ///
    /// ```
    /// use std::time::Duration;
    /// use rustkernel_tokio::resilience::{
    ///     CircuitBreaker, CircuitBreakerConfig, Pipeline, Retrier, RetryConfig, TimeoutConfig,
    /// };
    /// let pipeline = Pipeline::builder()
    ///     .timeout(TimeoutConfig::default())
    ///     .retry(Retrier::new(RetryConfig::default()).seed(7))
    ///     .breaker(CircuitBreaker::new(CircuitBreakerConfig::default()))
    ///     .attempt_timeout(Duration::from_secs(5))
    ///     .build();
    /// # let _ = pipeline;
    /// ```
    pub fn builder() -> PipelineBuilder<NoWindow, NoHint, ByClassify> {
        PipelineBuilder {
            timeout: None,
            retrier: Retrier::new(RetryConfig {
                max_attempts: 1,
                ..RetryConfig::default()
            }),
            breaker: None,
            attempt_timeout: None,
        }
    }
}

impl<W: SlidingWindow, H, C, K> PipelineBuilder<W, H, C, K> {
    /// The total deadline of each call (its `default_timeout`, clamped by `max_timeout`, capped
    /// by the caller's deadline when `propagate_deadline` is set).
    pub fn timeout(mut self, timeout: TimeoutConfig) -> Self {
        self.timeout = Some(timeout);
        self
    }

    /// Retries with `retrier` (its config, budget, seed, hint and classifiers): it replaces the
    /// classifiers given before, so call [`classify_with`](Self::classify_with) and
    /// [`classify_response`](Self::classify_response) after it.
    pub fn retry<H2, C2, K2>(self, retrier: Retrier<H2, C2, K2>) -> PipelineBuilder<W, H2, C2, K2> {
        PipelineBuilder {
            timeout: self.timeout,
            retrier,
            breaker: self.breaker,
            attempt_timeout: self.attempt_timeout,
        }
    }

    /// Asks `breaker` before each attempt and reports each attempt's outcome to it. A handle:
    /// clones share the breaker, so several pipelines (or a health report) can share one.
    pub fn breaker<V: SlidingWindow>(
        self,
        breaker: CircuitBreaker<V>,
    ) -> PipelineBuilder<V, H, C, K> {
        PipelineBuilder {
            timeout: self.timeout,
            retrier: self.retrier,
            breaker: Some(breaker),
            attempt_timeout: self.attempt_timeout,
        }
    }

    /// Cuts each attempt after `timeout` with [`ResilienceError::Timeout`] (counted by the
    /// breaker and retried as [`ErrorKind::Timeout`]).
    pub fn attempt_timeout(mut self, timeout: Duration) -> Self {
        self.attempt_timeout = Some(timeout);
        self
    }

    /// Classifies errors with `classify` instead of their
    /// [`Classify`](rustkernel_core::error::Classify) impl, for another crate's error type.
    pub fn classify_with<E, G: Fn(&E) -> ErrorKind>(
        self,
        classify: G,
    ) -> PipelineBuilder<W, H, G, K> {
        PipelineBuilder {
            timeout: self.timeout,
            retrier: self.retrier.classify_with(classify),
            breaker: self.breaker,
            attempt_timeout: self.attempt_timeout,
        }
    }

    /// Classifies each attempt's `Ok` response with `classifier` (see
    /// [`Pipeline::classify_response`]): `.classify_response(HttpClassifier::new())` makes
    /// 5xx and 429 responses count against the breaker and be retried.
    pub fn classify_response<L>(self, classifier: L) -> PipelineBuilder<W, H, C, L> {
        PipelineBuilder {
            timeout: self.timeout,
            retrier: self.retrier.classify_response(classifier),
            breaker: self.breaker,
            attempt_timeout: self.attempt_timeout,
        }
    }

    /// The pipeline, after checking the timeout configuration.
    ///
    /// # Errors
    /// The [`ConfigError`] of the [`TimeoutConfig`], or a zero attempt timeout.
    pub fn try_build(self) -> Result<Pipeline<W, H, C, K>, ConfigError> {
        if let Some(timeout) = &self.timeout {
            timeout.validate()?;
        }
        if self.attempt_timeout == Some(Duration::ZERO) {
            return Err(ConfigError::Zero(
                rustkernel_core::error::ConfigField::DefaultTimeout,
            ));
        }
        Ok(Pipeline {
            timeout: self.timeout,
            retrier: self.retrier,
            breaker: self.breaker,
            attempt_timeout: self.attempt_timeout,
        })
    }

    /// The pipeline.
    ///
    /// # Panics
    /// When the timeout configuration is invalid or the attempt timeout is zero, with the
    /// message of its [`ConfigError`]; use [`try_build`](Self::try_build) to get the error.
    #[must_use]
    #[track_caller]
    pub fn build(self) -> Pipeline<W, H, C, K> {
        valid_or_panic(self.try_build(), "pipeline configuration")
    }
}

impl<W: SlidingWindow> Pipeline<W, NoHint, ByClassify> {
    /// As [`try_new`](Pipeline::try_new), with the breaker over `window`: a
    /// [`CountWindow`](crate::breaker::CountWindow) or [`TimeWindow`](crate::breaker::TimeWindow)
    /// for the failure-rate and slow-call modes, or a
    /// [`ConfiguredWindow`](crate::breaker::ConfiguredWindow) to let the configuration pick.
    ///
    /// # Errors
    /// The first [`ConfigError`] of the configuration, the window's included.
    pub fn try_with_window(config: PipelineConfig, window: W) -> Result<Self, ConfigError> {
        config.validate_for_window(W::CAPACITY)?;
        let breaker = CircuitBreaker::builder(config.circuit_breaker)
            .window(window)
            .try_build()?;
        Ok(Self {
            timeout: Some(config.timeout),
            retrier: Retrier::try_new(config.retry)?,
            breaker: Some(breaker),
            attempt_timeout: config.attempt_timeout,
        })
    }

    /// The same pipeline, its retries drawn from `budget` (a
    /// [`SharedRetryBudget`] of [`ResilienceConfig::retry_budget`], or one shared with other
    /// pipelines): each call deposits once, each retry withdraws once, a retry the budget
    /// refuses ends the call with `gave_up = BudgetExhausted`.
    #[must_use]
    pub fn with_retry_budget(mut self, budget: SharedRetryBudget) -> Self {
        self.retrier = self.retrier.budget(budget);
        self
    }
}

impl<W: SlidingWindow, H, C, K> Pipeline<W, H, C, K> {
    /// Runs `op` through the pipeline: the total deadline, retry, the breaker for each attempt,
    /// the attempt timeout. Returns the first success, or ONE level of [`ResilienceError`]
    /// (see the [module docs](self)).
    pub async fn execute<F, Fut, T, R>(
        &self,
        op: F,
    ) -> Result<T, ResilienceError<<C as Classifier<R>>::Error>>
    where
        F: FnMut() -> Fut,
        Fut: Future<Output = Result<T, R>>,
        C: Classifier<R>,
        H: RetryAfterHint<<C as Classifier<R>>::Error>,
        K: ResponseClassifier<T>,
    {
        self.execute_outcome(None, op).await.result
    }

    /// As [`execute`](Self::execute), with the deadline of a request: `requested` (clamped by
    /// `max_timeout`; `None` for the default timeout) counted from `enqueued_at` when the
    /// configuration includes queue time. Returns the result with the number of attempts and,
    /// for `CircuitOpen`, when to come back.
    pub async fn execute_outcome<F, Fut, T, R>(
        &self,
        request: Option<RequestDeadline>,
        mut op: F,
    ) -> Outcome<T, <C as Classifier<R>>::Error>
    where
        F: FnMut() -> Fut,
        Fut: Future<Output = Result<T, R>>,
        C: Classifier<R>,
        H: RetryAfterHint<<C as Classifier<R>>::Error>,
        K: ResponseClassifier<T>,
    {
        // One clock read and one look at the caller's deadline serve the whole first attempt.
        let now = clock::now();
        let parent = current_deadline();
        let mut run = Run {
            pipeline: self,
            op: &mut op,
            now,
            deadline: None,
            attempts: 0,
            gave_up: None,
        };
        let result = match &self.timeout {
            None => {
                // No deadline of its own: the caller's, if any, bounds the attempts.
                run.deadline = parent.map(|parent| ResolvedDeadline::parent(parent.as_core()));
                Self::run_retries(&mut run).await
            }
            Some(timeout) => {
                let request = request.unwrap_or_default();
                let enqueued_at = request.enqueued_at.unwrap_or(now);
                let resolved = timeout.resolve(
                    request.timeout,
                    parent.map(DeadlineContext::as_core),
                    enqueued_at,
                    now,
                );
                let total = DeadlineContext::from_core(resolved.context);
                // Dropped in the total deadline's scope when it passes, so the breaker counts
                // the attempt it cut as a timeout.
                run.deadline = Some(resolved);
                let retries = std::pin::pin!(Some(Self::run_retries(&mut run)));
                match poll_until(total, retries).await {
                    Some(result) => result,
                    None => Err(resolved.expiry_error()),
                }
            }
        };
        let retry_after = match (&result, &self.breaker) {
            (Err(ResilienceError::CircuitOpen), Some(breaker)) => breaker.retry_after(),
            _ => None,
        };
        Outcome {
            result,
            attempts: run.attempts,
            retry_after,
            gave_up: run.gave_up,
        }
    }

    /// Retry around the breaker and the attempt timeout, from `now` under `deadline`.
    async fn run_retries<F, Fut, T, R>(
        run: &mut Run<'_, Self, F>,
    ) -> Result<T, ResilienceError<<C as Classifier<R>>::Error>>
    where
        F: FnMut() -> Fut,
        Fut: Future<Output = Result<T, R>>,
        C: Classifier<R>,
        H: RetryAfterHint<<C as Classifier<R>>::Error>,
        K: ResponseClassifier<T>,
    {
        let this = run.pipeline;
        let (now, deadline) = (run.now, run.deadline);
        if let Some(deadline) = deadline {
            deadline.check_start(now)?;
        }
        let mut retry = this
            .retrier
            .start_lazy(now, deadline.map(|deadline| deadline.context.deadline()));
        let classifier = this.retrier.classifier();
        let responses = this.retrier.responses();
        let mut attempt_at = now;
        loop {
            run.attempts = run.attempts.saturating_add(1);
            // One attempt, written out here rather than as a future of its own: each level of
            // futures costs the closed path a copy of its arguments and of its output.
            let mut refused = None;
            let permit = match &this.breaker {
                None => None,
                // Not `try_acquire()`: its `Result` is as large as a `Rejected`, and moving the
                // permit out of it costs more than the rest of the breaker's closed path.
                Some(breaker) => match breaker.admit_freely() {
                    Some(permit) => Some(permit),
                    None => match breaker.acquire_locked() {
                        Ok(permit) => Some(permit),
                        Err(rejected) => {
                            refused = Some(rejected);
                            None
                        }
                    },
                },
            };
            let at = 'retry: {
                let error = if let Some(rejected) = refused {
                    ResilienceError::from(rejected)
                } else {
                    let result = match this.attempt_timeout {
                        None => (run.op)().await.map_err(Attempt::Failed),
                        Some(timeout) => {
                            let attempt =
                                ResolvedDeadline::for_attempt(deadline, attempt_at, timeout);
                            if attempt.bound != DeadlineBound::Attempt && this.timeout.is_some() {
                                // The pipeline's total deadline comes first and cuts the
                                // attempt itself (around the retries), with the error its bound
                                // calls for.
                                (run.op)().await.map_err(Attempt::Failed)
                            } else if attempt.context.is_expired(attempt_at) {
                                Err(Attempt::Cut(attempt.expiry_error()))
                            } else {
                                let future = std::pin::pin!(Some((run.op)()));
                                let context = DeadlineContext::from_core(attempt.context);
                                match poll_until(context, future).await {
                                    Some(result) => result.map_err(Attempt::Failed),
                                    None => Err(Attempt::Cut(attempt.expiry_error())),
                                }
                            }
                        }
                    };
                    match result {
                        Ok(value) => match responses.classify_response(&value) {
                            Verdict::Success => {
                                if let Some(permit) = permit {
                                    permit.success();
                                }
                                return Ok(value);
                            }
                            Verdict::Ignore => {
                                if let Some(permit) = permit {
                                    permit.cancel();
                                }
                                return Ok(value);
                            }
                            Verdict::Failure(kind) => {
                                if let Some(permit) = permit {
                                    permit.failure(kind);
                                }
                                let hint = responses.retry_after(&value);
                                match this.retrier.decide_lazy(&mut retry, kind, hint) {
                                    RetryDecision::RetryAt(at) => break 'retry at,
                                    RetryDecision::GiveUp(reason) => {
                                        run.gave_up = Some(reason);
                                        return Ok(value);
                                    }
                                }
                            }
                        },
                        Err(error) => {
                            let error = flatten(classifier, error);
                            if let Some(permit) = permit {
                                permit.failure(classifier.kind_of(&error));
                            }
                            error
                        }
                    }
                };
                match this.retrier.on_lazy_failure::<R>(&mut retry, &error) {
                    RetryDecision::RetryAt(at) => at,
                    RetryDecision::GiveUp(reason) => {
                        run.gave_up = Some(reason);
                        return Err(error);
                    }
                }
            };
            tokio::time::sleep_until(clock::to_tokio(at)).await;
            attempt_at = clock::now();
        }
    }

    /// The breaker, if the pipeline has one (for its state, stats and `retry_after`).
    #[must_use]
    pub fn breaker(&self) -> Option<&CircuitBreaker<W>> {
        self.breaker.as_ref()
    }

    /// The retrier (config, budget).
    #[must_use]
    pub fn retrier(&self) -> &Retrier<H, C, K> {
        &self.retrier
    }

    /// This pipeline with its attempts' `Ok` responses classified by `classifier`: a response
    /// it calls a failure counts against the breaker and is retried as an error of its kind
    /// would be (honouring its [`retry_after`](ResponseClassifier::retry_after)); when retry
    /// gives up, the last such response is the result, as `Ok`. An ignored response counts
    /// for nothing and ends the call. Shares the breaker and the budget with `self`'s clones.
    #[must_use]
    pub fn classify_response<L>(self, classifier: L) -> Pipeline<W, H, C, L> {
        Pipeline {
            timeout: self.timeout,
            retrier: self.retrier.classify_response(classifier),
            breaker: self.breaker,
            attempt_timeout: self.attempt_timeout,
        }
    }

    /// The total-deadline configuration, if any.
    #[must_use]
    pub fn timeout(&self) -> Option<&TimeoutConfig> {
        self.timeout.as_ref()
    }

    /// The per-attempt timeout, if any.
    #[must_use]
    pub fn attempt_timeout(&self) -> Option<Duration> {
        self.attempt_timeout
    }

    /// Whether the breaker (if any) would reject a call now: open or forced open, and its
    /// wait not over. An open breaker whose wait ended still reads `Open` until its next call
    /// or poll, but it would admit that call (as a half-open probe), so it is not counted
    /// here: a readiness check built on this does not keep traffic away from a breaker that
    /// waits for exactly that traffic to probe.
    #[must_use]
    pub fn is_open(&self) -> bool {
        self.breaker
            .as_ref()
            .and_then(CircuitBreaker::retry_after)
            .is_some_and(|wait| !wait.is_zero())
    }
}

impl<W: SlidingWindow, H: Clone, C: Clone, K: Clone> Clone for Pipeline<W, H, C, K> {
    fn clone(&self) -> Self {
        Self {
            timeout: self.timeout,
            retrier: self.retrier.clone(),
            breaker: self.breaker.clone(),
            attempt_timeout: self.attempt_timeout,
        }
    }
}

impl<W: SlidingWindow, H, C, K> fmt::Debug for Pipeline<W, H, C, K> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Pipeline")
            .field("timeout", &self.timeout)
            .field("retrier", &self.retrier)
            .field("breaker", &self.breaker)
            .field("attempt_timeout", &self.attempt_timeout)
            .finish()
    }
}

impl<W: SlidingWindow, H, C, K> fmt::Debug for PipelineBuilder<W, H, C, K> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("PipelineBuilder")
            .field("timeout", &self.timeout)
            .field("breaker", &self.breaker)
            .field("attempt_timeout", &self.attempt_timeout)
            .finish_non_exhaustive()
    }
}

/// The deadline a request asks for: its own timeout (clamped by `max_timeout`; `None` for the
/// default) and when it arrived (counted when the configuration includes queue time).
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct RequestDeadline {
    /// The timeout the request asked for.
    pub timeout: Option<Duration>,
    /// When the request arrived.
    /// On the crate's clock ([`clock::now`], the `Instant` the rest of the
    /// crate uses; [`clock::to_core`] converts a tokio instant).
    pub enqueued_at: Option<Instant>,
}

/// A call's retries: what they read (the operation, the start, the deadline) and what they
/// report (attempts made, why retry gave up), in one value the retries' future borrows. A
/// future copies its arguments when it is made and again when it first runs, right after, and
/// reading back several just written costs more than all of them together: one argument.
struct Run<'a, P, F> {
    pipeline: &'a P,
    op: &'a mut F,
    now: Instant,
    deadline: Option<ResolvedDeadline>,
    attempts: u32,
    gave_up: Option<GiveUpReason>,
}

/// An attempt's failure before flattening: the operation's own error, or the attempt cut short.
enum Attempt<R> {
    Failed(R),
    Cut(ResilienceError<std::convert::Infallible>),
}

fn flatten<C: Classifier<R>, R>(classifier: &C, attempt: Attempt<R>) -> ResilienceError<C::Error> {
    match attempt {
        Attempt::Failed(error) => classifier.flatten(error),
        Attempt::Cut(cut) => match cut {
            ResilienceError::Timeout => ResilienceError::Timeout,
            ResilienceError::CircuitOpen => ResilienceError::CircuitOpen,
            ResilienceError::DeadlineExceeded => ResilienceError::DeadlineExceeded,
            ResilienceError::Operation(never) => match never {},
        },
    }
}
