//! One resilience pipeline for firmware: the total deadline, retry, the breaker for each
//! attempt and an optional attempt timeout, in a `static`, returning ONE flat
//! [`ResilienceError`].
//!
//! The same shape as the tokio adapter's `Pipeline`: built from a core [`PipelineConfig`],
//! `pipeline.execute(|| op()).await`, the same order (outermost first: total deadline, retry,
//! breaker per attempt, attempt timeout) for the same reasons: the deadline bounds every retry,
//! each attempt asks the breaker again (a breaker that opened mid-call rejects the next attempt
//! instead of letting retries hammer the accelerator), and a hung attempt is cut, counted by the
//! breaker as a timeout and retried within the total deadline. An attempt cut by the total
//! deadline counts as a timeout too. No allocation; `new` is `const`
//! and checks the configuration there, so in a `static` an invalid one fails the build.
//! Retries here draw on no budget (firmware retries one caller's work; share a
//! [`SharedRetryBudget`](crate::retry::SharedRetryBudget) through a
//! [`Retrier`](crate::retry::Retrier) where several callers must).
//!
//! The total deadline is the core's `TimeoutConfig::resolve` of the call's [`RequestDeadline`]
//! (the configuration's default when it asks for nothing), and which error a passed deadline
//! gives is the core's rule ([`ResolvedDeadline`]): the tokio adapter's `Pipeline` gives the
//! same errors for the same configuration, outcomes and durations.
//!
//! ```
//! use core::time::Duration;
//! use embassy_sync::blocking_mutex::raw::CriticalSectionRawMutex;
//! use rustkernel_core::error::ErrorKind;
//! use rustkernel_core::resilience::{PipelineConfig, ResilienceConfig};
//! use rustkernel_embassy::pipeline::Pipeline;
//! use rustkernel_embassy::ResilienceError;
//!
//! static PIPELINE: Pipeline<CriticalSectionRawMutex> = Pipeline::new(
//!     PipelineConfig::from_resilience(&ResilienceConfig::production())
//!         .with_attempt_timeout(Duration::from_millis(100)),
//!     0x5eed,
//! );
//!
//! async fn accelerator_job(input: u32) -> Result<u32, ErrorKind> {
//!     Ok(input * 2)
//! }
//!
//! # embassy_futures::block_on(async {
//! match PIPELINE.execute(|| accelerator_job(21)).await {
//!     Ok(value) => assert_eq!(value, 42),
//!     Err(ResilienceError::CircuitOpen) => unreachable!("fall back"),
//!     Err(error) => panic!("{error:?}"),
//! }
//! # });
//! ```

use core::cell::Cell;
use core::fmt;
use core::future::Future;
use core::time::Duration;

use embassy_sync::blocking_mutex::Mutex;
use embassy_sync::blocking_mutex::raw::{CriticalSectionRawMutex, RawMutex};
use embassy_time::Timer;
use rustkernel_core::error::{ByClassify, Classifier, ConfigError, ErrorKind, ResilienceError};
use rustkernel_core::resilience::{
    CircuitBreaker as CoreBreaker, CircuitBreakerConfig, DeadlineBound, NoWindow, PipelineConfig,
    ResolvedDeadline, Retry, RetryDecision, ValidRetryConfig,
};
use rustkernel_core::rng::Rng;

use crate::breaker::{BreakerCall, CircuitBreaker};
use crate::deadline::{DeadlineContext, Resolved, run_until, widen};
use crate::time::{now, to_core_instant, to_embassy_instant};

/// The breaker and the retry policy of a valid configuration.
const fn checked(config: &PipelineConfig) -> Result<(CoreBreaker, ValidRetryConfig), ConfigError> {
    if let Err(error) = config.validate() {
        return Err(error);
    }
    // `validate` has checked the breaker and the retry policy; these are their checked forms.
    let breaker = match CoreBreaker::try_const(config.circuit_breaker, NoWindow) {
        Ok(breaker) => breaker,
        Err(error) => return Err(error),
    };
    match config.retry.validated() {
        Ok(retry) => Ok((breaker, retry)),
        Err(error) => Err(error),
    }
}

/// The guard of one attempt on a pipeline's breaker.
type Call<'a, M> = BreakerCall<'a, M, CircuitBreakerConfig, NoWindow>;

/// A deadline, retry, breaker and attempt-timeout pipeline that can live in a `static`.
pub struct Pipeline<M: RawMutex = CriticalSectionRawMutex> {
    breaker: CircuitBreaker<M, CircuitBreakerConfig, NoWindow>,
    config: PipelineConfig,
    /// `config.retry`, checked.
    retry: ValidRetryConfig,
    /// The next call's jitter seed (a counter, mixed by SplitMix64 when drawn).
    seeds: Mutex<M, Cell<u64>>,
}

/// The result of one call with what it took (see [`Pipeline::execute_outcome`]).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Outcome<T, E> {
    /// What [`Pipeline::execute`] returns.
    pub result: Result<T, ResilienceError<E>>,
    /// Attempts made, a rejected one included (0 when the deadline had passed before the
    /// first).
    pub attempts: u32,
}

/// The deadline one call asks for (see [`Pipeline::execute_request`]); the default asks for
/// nothing: the configuration's `default_timeout` from now.
///
/// The twin of the tokio adapter's `RequestDeadline`, with the caller's deadline given here
/// (an embassy task has no current deadline to inherit).
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct RequestDeadline {
    /// The call's own timeout (clamped by `max_timeout`); `None`: the default timeout.
    pub timeout: Option<Duration>,
    /// When the call was queued, counted when the configuration includes queue time;
    /// `None`: now.
    pub enqueued_at: Option<embassy_time::Instant>,
    /// The caller's deadline, which caps the call's when the configuration propagates
    /// deadlines (its passing is then `DeadlineExceeded`).
    pub parent: Option<DeadlineContext>,
}

impl<M: RawMutex> Pipeline<M> {
    /// A pipeline, `const` (so it can be a `static`).
    ///
    /// # Panics
    /// When the configuration is invalid; in a `const` or `static` that is a compile error.
    /// [`try_new`](Self::try_new) returns the [`ConfigError`] instead.
    #[must_use]
    #[track_caller]
    pub const fn new(config: PipelineConfig, seed: u64) -> Self {
        match checked(&config) {
            Ok((breaker, retry)) => Self::from_parts(breaker, config, retry, seed),
            Err(error) => rustkernel_core::error::invalid_const("pipeline configuration", &error),
        }
    }

    /// A pipeline, checked now.
    ///
    /// # Errors
    /// The first [`ConfigError`] of [`PipelineConfig::validate`].
    pub const fn try_new(config: PipelineConfig, seed: u64) -> Result<Self, ConfigError> {
        match checked(&config) {
            Ok((breaker, retry)) => Ok(Self::from_parts(breaker, config, retry, seed)),
            Err(error) => Err(error),
        }
    }

    const fn from_parts(
        breaker: CoreBreaker,
        config: PipelineConfig,
        retry: ValidRetryConfig,
        seed: u64,
    ) -> Self {
        Self {
            breaker: CircuitBreaker::from_core(breaker),
            config,
            retry,
            seeds: Mutex::new(Cell::new(seed)),
        }
    }

    /// The breaker, for its state and stats (and operator controls).
    #[must_use]
    pub const fn breaker(&self) -> &CircuitBreaker<M, CircuitBreakerConfig, NoWindow> {
        &self.breaker
    }

    /// The configuration.
    #[must_use]
    pub const fn config(&self) -> &PipelineConfig {
        &self.config
    }

    /// Runs `op` through the pipeline; ONE level of [`ResilienceError`] comes back:
    /// `CircuitOpen`, `DeadlineExceeded` (a parent's deadline, see
    /// [`execute_request`](Self::execute_request)), `Timeout` (the call's own total deadline or
    /// an attempt's timeout), or `Operation(e)` with the last real error.
    ///
    /// # Errors
    /// As above.
    pub async fn execute<T, R, F, Fut>(
        &self,
        op: F,
    ) -> Result<T, ResilienceError<<ByClassify as Classifier<R>>::Error>>
    where
        F: FnMut() -> Fut,
        Fut: Future<Output = Result<T, R>>,
        ByClassify: Classifier<R>,
    {
        self.execute_outcome(&ByClassify, op).await.result
    }

    /// [`execute`](Self::execute) with errors classified by `classifier` (a closure
    /// `|e: &E| ErrorKind::..` for an error type that is not `Classify`), returning the number
    /// of attempts with the result.
    pub async fn execute_outcome<T, R, F, Fut, K>(
        &self,
        classifier: &K,
        op: F,
    ) -> Outcome<T, K::Error>
    where
        F: FnMut() -> Fut,
        Fut: Future<Output = Result<T, R>>,
        K: Classifier<R>,
    {
        self.execute_request(RequestDeadline::default(), classifier, op)
            .await
    }

    /// [`execute_outcome`](Self::execute_outcome) under the deadline `request` asks for: its
    /// timeout (or the default, clamped by `max_timeout`) from when it was queued (when the
    /// configuration includes queue time), capped by its caller's deadline (when the
    /// configuration propagates deadlines), through the core's
    /// [`TimeoutConfig::resolve`](rustkernel_core::resilience::TimeoutConfig::resolve).
    ///
    /// The errors of a passed deadline are the core's
    /// ([`ResolvedDeadline`]): `DeadlineExceeded` when it had passed before the first attempt
    /// (which is then not made) or when the caller's deadline passed, `Timeout` when the call's
    /// own did.
    pub async fn execute_request<T, R, F, Fut, K>(
        &self,
        request: RequestDeadline,
        classifier: &K,
        mut op: F,
    ) -> Outcome<T, K::Error>
    where
        F: FnMut() -> Fut,
        Fut: Future<Output = Result<T, R>>,
        K: Classifier<R>,
    {
        let start = now();
        let total = self.config.timeout.resolve(
            request.timeout,
            request.parent.map(DeadlineContext::as_core),
            request.enqueued_at.map_or(start, to_core_instant),
            start,
        );
        if let Err(error) = total.check_start(start) {
            return Outcome {
                result: Err(error),
                attempts: 0,
            };
        }
        let seed = self.seeds.lock(|seeds| {
            let seed = seeds.get();
            seeds.set(seed.wrapping_add(1));
            seed
        });
        let mut retry = Retry::start(
            &self.retry,
            Rng::new(seed).next_u64(),
            start,
            Some(total.context.deadline()),
        );
        let mut attempts = 0_u32;
        loop {
            attempts = attempts.saturating_add(1);
            // The attempt's breaker guard, outside the attempt: when the total deadline cuts
            // the attempt, the breaker counts a timeout (as the tokio adapter's does), not the
            // cancellation that dropping the guard would report.
            let mut call = self.breaker.acquire().ok();
            let error = if call.is_none() {
                ResilienceError::CircuitOpen
            } else {
                let cut_at = Resolved::new(total, request.parent);
                match run_until(cut_at, self.attempt(total, classifier, &mut op, &mut call)).await {
                    Ok(Ok(value)) => {
                        return Outcome {
                            result: Ok(value),
                            attempts,
                        };
                    }
                    Ok(Err(error)) => error,
                    Err(cut) => {
                        if let Some(call) = call.take() {
                            call.failure(ErrorKind::Timeout);
                        }
                        return Outcome {
                            result: Err(widen(cut)),
                            attempts,
                        };
                    }
                }
            };
            match retry.on_failure(classifier.kind_of(&error), now(), None, None) {
                RetryDecision::RetryAt(at) => Timer::at(to_embassy_instant(at)).await,
                RetryDecision::GiveUp(_) => {
                    return Outcome {
                        result: Err(error),
                        attempts,
                    };
                }
            }
        }
    }

    /// One attempt of a call under `total`, admitted by the breaker guard in `call` (which it
    /// settles): the operation under the attempt timeout.
    async fn attempt<T, R, F, Fut, K>(
        &self,
        total: ResolvedDeadline,
        classifier: &K,
        op: &mut F,
        call: &mut Option<Call<'_, M>>,
    ) -> Result<T, ResilienceError<K::Error>>
    where
        F: FnMut() -> Fut,
        Fut: Future<Output = Result<T, R>>,
        K: Classifier<R>,
    {
        let own = self
            .config
            .attempt_timeout
            .map(|timeout| ResolvedDeadline::for_attempt(Some(total), now(), timeout))
            .filter(|attempt| attempt.bound == DeadlineBound::Attempt);
        let result = match own {
            Some(attempt) => match run_until(Resolved::new(attempt, None), op()).await {
                Ok(result) => result.map_err(|error| classifier.flatten(error)),
                Err(cut) => Err(widen(cut)),
            },
            // No attempt timeout, or the call's deadline comes first: that one cuts the
            // attempt (around it, in `execute_request`) with the error its bound calls for.
            None => op().await.map_err(|error| classifier.flatten(error)),
        };
        if let Some(call) = call.take() {
            match &result {
                Ok(_) => {
                    call.success();
                }
                Err(error) => {
                    call.failure(classifier.kind_of(error));
                }
            }
        }
        result
    }

    /// The attempt timeout, if any.
    #[must_use]
    pub const fn attempt_timeout(&self) -> Option<Duration> {
        self.config.attempt_timeout
    }
}

impl<M: RawMutex> fmt::Debug for Pipeline<M> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Pipeline")
            .field("config", &self.config)
            .field("breaker", &self.breaker)
            .finish_non_exhaustive()
    }
}
