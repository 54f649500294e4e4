//! Retry with backoff: the chapter's [`RetryConfig`] and the per-call state machine [`Retry`].
//!
//! Deciding whether to retry (the error kind, the attempts left, the deadline), how long to wait
//! ([`BackoffStrategy`]) and how much to retry overall ([`RetryBudget`]) are separate pieces, as in
//! tower. [`Retry`] joins them for one logical call: the adapter runs an attempt, reports each
//! failure with [`Retry::on_failure`], and either sleeps until the returned instant and tries
//! again or gives up.
//!
//! When the decision is [`RetryDecision::GiveUp`], the adapter returns the **last real error**
//! of the operation (`ResilienceError::Operation(e)`), never a replacement: the
//! [`GiveUpReason`] is for logs and metrics, the caller's error handling sees what really failed.
//!
//! ```
//! use core::time::Duration;
//! use rustkernel_core::error::ErrorKind;
//! use rustkernel_core::resilience::{BackoffStrategy, Retry, RetryConfig, RetryDecision};
//! use rustkernel_core::time::Instant;
//!
//! let config = RetryConfig {
//!     max_attempts: 3,
//!     backoff: BackoffStrategy::Fixed { delay: Duration::from_millis(100) },
//!     retryable_errors: [ErrorKind::Transient, ErrorKind::Timeout].into(),
//! };
//! let mut now = Instant::from_secs(1);
//! let mut retry = Retry::new(&config, 42, now, None);
//! let mut attempt = || Err::<(), _>(ErrorKind::Transient); // always fails
//! let last_error = loop {
//!     match attempt() {
//!         Ok(value) => break Ok(value),
//!         Err(kind) => match retry.on_failure(kind, now, None, None) {
//!             RetryDecision::RetryAt(at) => now = at, // the adapter sleeps until `at`
//!             RetryDecision::GiveUp(_reason) => break Err(kind), // the last real error
//!         },
//!     }
//! };
//! assert_eq!(last_error, Err(ErrorKind::Transient));
//! assert_eq!(retry.attempts(), 3);
//! assert_eq!(now, Instant::from_millis(1_200));
//! ```

use core::fmt;
use core::marker::PhantomData;
use core::time::Duration;

use super::backoff::BackoffStrategy;
use super::budget::RetryBudget;
use crate::error::{ConfigError, ConfigField, ErrorKind, ErrorKindSet, valid_or_panic};
use crate::rng::Rng;
use crate::time::Instant;

/// How a call is retried: the chapter's three fields, all public.
///
/// The chapter writes `retryable_errors: vec![..]`; here it is a `Copy` [`ErrorKindSet`], built
/// with `[ErrorKind::Transient, ErrorKind::Timeout].into()`.
#[derive(Clone, Copy, Debug, PartialEq)]
#[cfg_attr(feature = "serde", derive(serde::Serialize, serde::Deserialize))]
#[cfg_attr(feature = "defmt", derive(defmt::Format))]
pub struct RetryConfig {
    /// Attempts in all, the first try included; 1 means no retries.
    pub max_attempts: u32,
    /// The delay before each retry.
    pub backoff: BackoffStrategy,
    /// The error kinds worth retrying; any other kind gives up at once.
    pub retryable_errors: ErrorKindSet,
}

impl Default for RetryConfig {
    /// Three attempts, full-jitter backoff from 100 ms to 10 s doubling, retrying
    /// `Transient`, `Timeout` and `Unavailable` errors.
    fn default() -> Self {
        Self {
            max_attempts: 3,
            backoff: BackoffStrategy::default(),
            retryable_errors: ErrorKindSet::of(&[
                ErrorKind::Transient,
                ErrorKind::Timeout,
                ErrorKind::Unavailable,
            ]),
        }
    }
}

impl RetryConfig {
    /// Checks the attempts, the retryable kinds and the backoff.
    ///
    /// # Errors
    /// [`ConfigError::Zero`] when `max_attempts` is 0, [`ConfigError::EmptyRetryableErrors`]
    /// when retries are allowed but no kind is retryable, and the error of
    /// [`BackoffStrategy::validate`].
    pub const fn validate(&self) -> Result<(), ConfigError> {
        if self.max_attempts == 0 {
            return Err(ConfigError::Zero(ConfigField::MaxAttempts));
        }
        if self.max_attempts > 1 && self.retryable_errors.is_empty() {
            return Err(ConfigError::EmptyRetryableErrors);
        }
        self.backoff.validate()
    }

    /// The configuration, checked: a [`Retry`] started from what this returns cannot fail.
    /// `const`, so a `const` configuration is checked when the program is compiled.
    ///
    /// # Errors
    /// The error of [`validate`](Self::validate).
    pub const fn validated(self) -> Result<ValidRetryConfig, ConfigError> {
        match self.validate() {
            Ok(()) => Ok(ValidRetryConfig(self)),
            Err(error) => Err(error),
        }
    }

    /// Whether a failure of `kind` may be retried.
    #[must_use]
    pub const fn is_retryable(&self, kind: ErrorKind) -> bool {
        self.retryable_errors.contains(kind)
    }
}

/// A [`RetryConfig`] that passed [`RetryConfig::validate`] (built by
/// [`RetryConfig::validated`]); [`Retry::start`] from it cannot fail, so an adapter validates
/// once, when it is built, and never again per call.
///
/// ```
/// use core::time::Duration;
/// use rustkernel_core::error::{ErrorKind, ErrorKindSet};
/// use rustkernel_core::resilience::{BackoffStrategy, Retry, RetryConfig, ValidRetryConfig};
/// use rustkernel_core::time::Instant;
///
/// const CONFIG: RetryConfig = RetryConfig {
///     max_attempts: 3,
///     backoff: BackoffStrategy::Fixed { delay: Duration::from_millis(2) },
///     retryable_errors: ErrorKindSet::of(&[ErrorKind::Transient]),
/// };
/// // Checked when the program is compiled: an invalid one fails the build with its field, as
/// // "invalid retry configuration: retry.max_attempts must be greater than zero".
/// const RETRY: ValidRetryConfig = ValidRetryConfig::new(CONFIG);
/// let retry = Retry::start(&RETRY, 42, Instant::ZERO, None);
/// assert_eq!(retry.attempts(), 1);
/// ```
#[derive(Clone, Copy, Debug, PartialEq)]
#[cfg_attr(feature = "defmt", derive(defmt::Format))]
pub struct ValidRetryConfig(RetryConfig);

impl ValidRetryConfig {
    /// `config`, checked, as a `const fn`: in a `const` or `static` an invalid configuration
    /// fails the build with the message `invalid retry configuration: {field} {rule}`.
    ///
    /// # Panics
    /// When `config` is invalid (see [`RetryConfig::validate`]);
    /// [`RetryConfig::validated`] returns the [`ConfigError`] instead.
    #[must_use]
    #[track_caller]
    pub const fn new(config: RetryConfig) -> Self {
        match config.validated() {
            Ok(valid) => valid,
            Err(error) => crate::error::invalid_const("retry configuration", &error),
        }
    }

    /// The configuration.
    #[must_use]
    pub const fn get(&self) -> &RetryConfig {
        &self.0
    }
}

// A `Retry` is serialized with its configuration (the same bytes in postcard as the three
// fields it held before it had a policy); read back, the configuration is checked again.
#[cfg(feature = "serde")]
impl serde::Serialize for ValidRetryConfig {
    fn serialize<S: serde::Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        self.0.serialize(serializer)
    }
}

#[cfg(feature = "serde")]
impl<'de> serde::Deserialize<'de> for ValidRetryConfig {
    fn deserialize<D: serde::Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        RetryConfig::deserialize(deserializer)?
            .validated()
            .map_err(serde::de::Error::custom)
    }
}

/// Where a [`Retry`] (and an adapter's retrier) reads its checked configuration: a
/// [`ValidRetryConfig`] value, or a [`FixedRetryConfig`], a type whose every read is a
/// constant. Sealed: both are checked before a retry can hold them.
pub trait RetryPolicy: Copy + sealed::Sealed {
    /// The configuration.
    fn get(&self) -> &RetryConfig;
}

mod sealed {
    pub trait Sealed {}
    impl Sealed for super::ValidRetryConfig {}
    impl<T: super::ConstRetryConfig> Sealed for super::FixedRetryConfig<T> {}
}

impl RetryPolicy for ValidRetryConfig {
    #[inline]
    fn get(&self) -> &RetryConfig {
        &self.0
    }
}

/// A retry configuration known when the program is compiled, named by a type (see
/// [`FixedRetryConfig`]).
pub trait ConstRetryConfig {
    /// The configuration.
    const CONFIG: RetryConfig;
}

/// `T`'s retry configuration as a zero-sized value, checked when the program is compiled: a
/// retry over it reads [`T::CONFIG`](ConstRetryConfig::CONFIG), a constant.
///
/// A retry that holds its configuration keeps the code of every backoff strategy (and, on a core
/// without a floating-point unit, the software floats of the exponential ones), since the value
/// could be any of them. Over `FixedRetryConfig<T>` the strategy is known: a fixed delay leaves
/// the growth, the jitter and their 64-bit divisions out of the program. On the firmware example
/// that is 1,936 B of flash on the Cortex-M4F (and the Cortex-M0 meets its 32 KiB with it).
///
/// ```
/// use core::time::Duration;
/// use rustkernel_core::error::ErrorKind;
/// use rustkernel_core::resilience::{
///     BackoffStrategy, ConstRetryConfig, FixedRetryConfig, Retry, RetryConfig, RetryDecision,
/// };
/// use rustkernel_core::time::Instant;
///
/// struct Jobs;
///
/// impl ConstRetryConfig for Jobs {
///     const CONFIG: RetryConfig = RetryConfig {
///         max_attempts: 3,
///         backoff: BackoffStrategy::Fixed { delay: Duration::from_millis(2) },
///         retryable_errors: rustkernel_core::error::ErrorKindSet::of(&[ErrorKind::Transient]),
///     };
/// }
///
/// // Checked when the program is compiled: an invalid `Jobs::CONFIG` fails the build with its
/// // field, as "invalid retry configuration: retry.max_attempts must be greater than zero".
/// const JOBS: FixedRetryConfig<Jobs> = FixedRetryConfig::new();
/// let mut retry = Retry::start(&JOBS, 42, Instant::ZERO, None);
/// let decision = retry.on_failure(ErrorKind::Transient, Instant::ZERO, None, None);
/// assert_eq!(decision, RetryDecision::RetryAt(Instant::from_millis(2)));
/// assert_eq!(size_of::<FixedRetryConfig<Jobs>>(), 0);
/// ```
///
/// An invalid configuration does not build:
///
/// ```compile_fail
/// use core::time::Duration;
/// use rustkernel_core::error::{ErrorKind, ErrorKindSet};
/// use rustkernel_core::resilience::{
///     BackoffStrategy, ConstRetryConfig, FixedRetryConfig, RetryConfig,
/// };
///
/// struct Never;
///
/// impl ConstRetryConfig for Never {
///     const CONFIG: RetryConfig = RetryConfig {
///         max_attempts: 0,
///         backoff: BackoffStrategy::Fixed { delay: Duration::ZERO },
///         retryable_errors: ErrorKindSet::of(&[ErrorKind::Transient]),
///     };
/// }
///
/// let never: FixedRetryConfig<Never> = FixedRetryConfig::new();
/// ```
pub struct FixedRetryConfig<T>(PhantomData<fn() -> T>);

impl<T: ConstRetryConfig> FixedRetryConfig<T> {
    /// [`T::CONFIG`](ConstRetryConfig::CONFIG), checked: naming it with an invalid
    /// configuration fails the build with the message of [`ValidRetryConfig::new`].
    const CHECKED: Self = {
        let _ = ValidRetryConfig::new(T::CONFIG);
        Self(PhantomData)
    };

    /// `T`'s configuration. The check runs when the program is compiled, wherever this is
    /// called: an invalid [`T::CONFIG`](ConstRetryConfig::CONFIG) is a build error, never a
    /// run-time one.
    #[must_use]
    pub const fn new() -> Self {
        Self::CHECKED
    }
}

// By hand: derives would ask `T: Clone` and so on of a type that is only a name.
impl<T> Clone for FixedRetryConfig<T> {
    fn clone(&self) -> Self {
        *self
    }
}

impl<T> Copy for FixedRetryConfig<T> {}

impl<T: ConstRetryConfig> Default for FixedRetryConfig<T> {
    fn default() -> Self {
        Self::new()
    }
}

impl<T> PartialEq for FixedRetryConfig<T> {
    fn eq(&self, _: &Self) -> bool {
        true
    }
}

impl<T: ConstRetryConfig> fmt::Debug for FixedRetryConfig<T> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_tuple("FixedRetryConfig").field(&T::CONFIG).finish()
    }
}

#[cfg(feature = "defmt")]
impl<T: ConstRetryConfig> defmt::Format for FixedRetryConfig<T> {
    fn format(&self, f: defmt::Formatter<'_>) {
        defmt::write!(f, "FixedRetryConfig({})", T::CONFIG);
    }
}

impl<T: ConstRetryConfig> RetryPolicy for FixedRetryConfig<T> {
    #[inline]
    fn get(&self) -> &RetryConfig {
        const { &T::CONFIG }
    }
}

/// Why [`Retry`] stopped retrying. The adapter still returns the operation's last error.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
#[cfg_attr(feature = "serde", derive(serde::Serialize, serde::Deserialize))]
#[cfg_attr(feature = "defmt", derive(defmt::Format))]
pub enum GiveUpReason {
    /// The failure's kind is not in `retryable_errors`.
    NotRetryable(ErrorKind),
    /// `max_attempts` attempts have been made.
    AttemptsExhausted,
    /// The shared [`RetryBudget`] allows no more retries now.
    BudgetExhausted,
    /// The next attempt could not start before the deadline.
    DeadlineExceeded,
}

impl fmt::Display for GiveUpReason {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            GiveUpReason::NotRetryable(kind) => write!(f, "{kind} errors are not retried"),
            GiveUpReason::AttemptsExhausted => f.write_str("all attempts failed"),
            GiveUpReason::BudgetExhausted => f.write_str("retry budget exhausted"),
            GiveUpReason::DeadlineExceeded => {
                f.write_str("the deadline would pass before the next attempt")
            }
        }
    }
}

/// What to do after a failed attempt.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
#[cfg_attr(feature = "serde", derive(serde::Serialize, serde::Deserialize))]
#[cfg_attr(feature = "defmt", derive(defmt::Format))]
#[must_use]
pub enum RetryDecision {
    /// Start the next attempt at this instant: the latest `now` plus the delay rounded up to whole
    /// microseconds (never early), always before the deadline.
    RetryAt(Instant),
    /// Stop, and return the operation's last error.
    GiveUp(GiveUpReason),
}

impl RetryDecision {
    /// The instant of the next attempt, if there is one.
    #[must_use]
    pub const fn retry_at(self) -> Option<Instant> {
        match self {
            RetryDecision::RetryAt(at) => Some(at),
            RetryDecision::GiveUp(_) => None,
        }
    }
}

impl fmt::Display for RetryDecision {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            RetryDecision::RetryAt(at) => write!(f, "retry at {at}"),
            RetryDecision::GiveUp(reason) => write!(f, "give up: {reason}"),
        }
    }
}

/// The retry state of one logical call: attempts made, the previous delay, its own jitter.
///
/// Create one per call, when its first attempt starts. Method families:
/// - input: [`on_failure`](Self::on_failure), after each failed attempt;
/// - getters: [`attempts`](Self::attempts), [`gave_up`](Self::gave_up),
///   [`deadline`](Self::deadline), [`started_at`](Self::started_at),
///   [`last_delay`](Self::last_delay), [`config`](Self::config);
/// - output: [`poll_at`](Self::poll_at), when the next attempt is due.
///
/// `P` is where the configuration is read ([`RetryPolicy`]): a [`ValidRetryConfig`] the state
/// holds (the default), or a [`FixedRetryConfig`], a type whose reads are constants (firmware:
/// the strategies it does not use are left out of the program).
///
/// Success needs no input: the call is over and the `Retry` is dropped. Times are
/// taken as monotonic: a `now` earlier than one already seen counts as the latest one seen, so
/// a clock going backwards never schedules a retry before an earlier decision's `now`.
#[derive(Clone, Debug, PartialEq)]
#[cfg_attr(feature = "serde", derive(serde::Serialize, serde::Deserialize))]
pub struct Retry<P = ValidRetryConfig> {
    policy: P,
    rng: Rng,
    started_at: Instant,
    deadline: Option<Instant>,
    latest_now: Instant,
    attempts: u32,
    last_delay: Duration,
    pending: Option<Instant>,
    gave_up: Option<GiveUpReason>,
}

impl Retry<ValidRetryConfig> {
    /// The state of a call whose first attempt starts at `now`.
    ///
    /// `seed` feeds the jitter (take it from a per-process [`Rng`] or OS entropy so callers do
    /// not jitter in lockstep); `deadline` is when the whole call must be done, if ever.
    ///
    /// # Errors
    /// The error of [`RetryConfig::validate`].
    pub fn try_new(
        config: &RetryConfig,
        seed: u64,
        now: Instant,
        deadline: Option<Instant>,
    ) -> Result<Self, ConfigError> {
        Ok(Self::start(&config.validated()?, seed, now, deadline))
    }

    /// The state of a call whose first attempt starts at `now`; see [`try_new`](Self::try_new).
    ///
    /// # Panics
    /// When `config` is invalid, with the message of its [`ConfigError`].
    #[must_use]
    #[track_caller]
    pub fn new(config: &RetryConfig, seed: u64, now: Instant, deadline: Option<Instant>) -> Self {
        valid_or_panic(
            Self::try_new(config, seed, now, deadline),
            "retry configuration",
        )
    }
}

impl<P: RetryPolicy> Retry<P> {
    /// The state of a call whose first attempt starts at `now`, from a configuration checked
    /// beforehand: a [`ValidRetryConfig`], or a [`FixedRetryConfig`] whose reads are
    /// constants. See [`try_new`](Retry::try_new) for `seed` and `deadline`.
    #[must_use]
    pub fn start(policy: &P, seed: u64, now: Instant, deadline: Option<Instant>) -> Self {
        Self {
            policy: *policy,
            rng: Rng::new(seed),
            started_at: now,
            deadline,
            latest_now: now,
            attempts: 1,
            last_delay: Duration::ZERO,
            pending: None,
            gave_up: None,
        }
    }

    /// The configuration the call follows.
    #[must_use]
    pub fn config(&self) -> &RetryConfig {
        self.policy.get()
    }

    /// Reports that the current attempt failed with `kind` at `now`, and decides what next.
    ///
    /// Gives up, in this order, when `kind` is not retryable, when `max_attempts` attempts have
    /// been made, when the next attempt could not start before the deadline
    /// (`now + delay >= deadline`), or when `budget` (if given) refuses a retry. The delay is
    /// `retry_after` when the callee sent one (a `Retry-After` or gRPC pushback hint; it
    /// replaces the backoff, may exceed its `max`, and still gives up if it would pass the
    /// deadline), else the backoff's. A retry is withdrawn from `budget` only when everything
    /// else allows it. After giving up, every further call returns the same decision.
    pub fn on_failure(
        &mut self,
        kind: ErrorKind,
        now: Instant,
        retry_after: Option<Duration>,
        budget: Option<&mut RetryBudget>,
    ) -> RetryDecision {
        if let Some(reason) = self.gave_up {
            return RetryDecision::GiveUp(reason);
        }
        self.latest_now = self.latest_now.max(now);
        self.pending = None;
        let decision = self.decide(kind, now, retry_after, budget);
        match decision {
            RetryDecision::RetryAt(at) => self.pending = Some(at),
            RetryDecision::GiveUp(reason) => self.gave_up = Some(reason),
        }
        decision
    }

    fn decide(
        &mut self,
        kind: ErrorKind,
        now: Instant,
        retry_after: Option<Duration>,
        budget: Option<&mut RetryBudget>,
    ) -> RetryDecision {
        let config = self.policy.get();
        if !config.retryable_errors.contains(kind) {
            return RetryDecision::GiveUp(GiveUpReason::NotRetryable(kind));
        }
        if self.attempts >= config.max_attempts {
            return RetryDecision::GiveUp(GiveUpReason::AttemptsExhausted);
        }
        let delay = match retry_after {
            Some(hint) => hint,
            None => config
                .backoff
                .delay(self.attempts, self.last_delay, &mut self.rng),
        };
        // Rounded up: a retry never starts before its whole delay has passed.
        let at = self.latest_now.saturating_add_ceil(delay);
        if self.deadline.is_some_and(|deadline| at >= deadline) {
            return RetryDecision::GiveUp(GiveUpReason::DeadlineExceeded);
        }
        if budget.is_some_and(|budget| !budget.try_withdraw(now)) {
            return RetryDecision::GiveUp(GiveUpReason::BudgetExhausted);
        }
        self.attempts = self.attempts.saturating_add(1);
        self.last_delay = delay;
        RetryDecision::RetryAt(at)
    }

    /// Attempts started or scheduled so far: 1 for the first try, plus one per `RetryAt`.
    #[must_use]
    pub const fn attempts(&self) -> u32 {
        self.attempts
    }

    /// Why the call gave up, once it has.
    #[must_use]
    pub const fn gave_up(&self) -> Option<GiveUpReason> {
        self.gave_up
    }

    /// The call's deadline, if it has one.
    #[must_use]
    pub const fn deadline(&self) -> Option<Instant> {
        self.deadline
    }

    /// When the first attempt started.
    #[must_use]
    pub const fn started_at(&self) -> Instant {
        self.started_at
    }

    /// The delay before the latest scheduled retry (zero before the first).
    #[must_use]
    pub const fn last_delay(&self) -> Duration {
        self.last_delay
    }

    /// When the next attempt is due: the pending `RetryAt`, or `None` while an attempt runs
    /// or after giving up.
    #[must_use]
    pub const fn poll_at(&self) -> Option<Instant> {
        self.pending
    }
}

#[cfg(feature = "defmt")]
impl<P: RetryPolicy> defmt::Format for Retry<P> {
    fn format(&self, f: defmt::Formatter<'_>) {
        defmt::write!(
            f,
            "Retry {{ attempts: {=u32}/{=u32}, poll_at: {}, deadline: {}, gave_up: {} }}",
            self.attempts,
            self.policy.get().max_attempts,
            self.pending,
            self.deadline,
            self.gave_up
        );
    }
}

#[cfg(test)]
mod tests {
    extern crate std;
    use super::*;
    use crate::resilience::budget::RetryBudgetConfig;
    use std::string::ToString;

    const MS: Duration = Duration::from_millis(1);

    fn fixed(max_attempts: u32, delay_ms: u64) -> RetryConfig {
        RetryConfig {
            max_attempts,
            backoff: BackoffStrategy::Fixed {
                delay: Duration::from_millis(delay_ms),
            },
            retryable_errors: ErrorKind::Transient.into(),
        }
    }

    #[test]
    fn default_matches_the_issue() {
        let config = RetryConfig::default();
        assert_eq!(config.validate(), Ok(()));
        assert_eq!(config.max_attempts, 3);
        assert_eq!(config.backoff, BackoffStrategy::default());
        assert!(config.is_retryable(ErrorKind::Unavailable));
        assert!(!config.is_retryable(ErrorKind::Permanent));
        assert_eq!(config.retryable_errors.len(), 3);
    }

    #[test]
    fn validation_errors_are_typed() {
        let ok = fixed(3, 1);
        assert_eq!(
            RetryConfig {
                max_attempts: 0,
                ..ok
            }
            .validate(),
            Err(ConfigError::Zero(ConfigField::MaxAttempts))
        );
        let empty = RetryConfig {
            retryable_errors: ErrorKindSet::EMPTY,
            ..ok
        };
        assert_eq!(empty.validate(), Err(ConfigError::EmptyRetryableErrors));
        // One attempt never retries, so no retryable kind is needed.
        assert_eq!(
            RetryConfig {
                max_attempts: 1,
                ..empty
            }
            .validate(),
            Ok(())
        );
        let bad_backoff = RetryConfig {
            backoff: BackoffStrategy::Exponential {
                initial: MS,
                max: MS,
                multiplier: f32::NAN,
            },
            ..ok
        };
        let error = ConfigError::NotFinite(ConfigField::BackoffMultiplier);
        assert_eq!(bad_backoff.validate(), Err(error));
        assert_eq!(
            Retry::try_new(&bad_backoff, 0, Instant::ZERO, None),
            Err(error)
        );
    }

    #[test]
    #[should_panic(expected = "retry.max_attempts must be greater than zero")]
    fn new_panics_with_the_message() {
        let _ = Retry::new(&fixed(0, 1), 0, Instant::ZERO, None);
    }

    #[test]
    #[should_panic(
        expected = "invalid retry configuration: retry.retryable_errors is empty but \
                    retry.max_attempts allows retries"
    )]
    fn a_checked_config_names_its_field_when_it_panics() {
        const VALID: ValidRetryConfig = ValidRetryConfig::new(RetryConfig {
            max_attempts: 3,
            backoff: BackoffStrategy::Fixed {
                delay: Duration::from_millis(2),
            },
            retryable_errors: ErrorKindSet::of(&[ErrorKind::Transient]),
        });
        assert_eq!(VALID.get().max_attempts, 3);
        let _ = ValidRetryConfig::new(RetryConfig {
            retryable_errors: ErrorKindSet::EMPTY,
            ..*VALID.get()
        });
    }

    #[test]
    fn retries_until_attempts_are_spent_then_stays_given_up() {
        let mut retry = Retry::new(&fixed(3, 10), 0, Instant::from_millis(5), None);
        assert_eq!(retry.attempts(), 1);
        assert_eq!(retry.poll_at(), None);
        let t = Instant::from_millis(20);
        let d = retry.on_failure(ErrorKind::Transient, t, None, None);
        assert_eq!(d, RetryDecision::RetryAt(Instant::from_millis(30)));
        assert_eq!(retry.poll_at(), Some(Instant::from_millis(30)));
        assert_eq!((retry.attempts(), retry.last_delay()), (2, 10 * MS));
        let d = retry.on_failure(ErrorKind::Transient, Instant::from_millis(31), None, None);
        assert_eq!(d.retry_at(), Some(Instant::from_millis(41)));
        let d = retry.on_failure(ErrorKind::Transient, Instant::from_millis(42), None, None);
        let gave_up = RetryDecision::GiveUp(GiveUpReason::AttemptsExhausted);
        assert_eq!(d, gave_up);
        assert_eq!(retry.poll_at(), None);
        assert_eq!(retry.attempts(), 3);
        assert_eq!(retry.gave_up(), Some(GiveUpReason::AttemptsExhausted));
        assert_eq!(
            retry.on_failure(ErrorKind::Permanent, Instant::MAX, None, None),
            gave_up
        );
    }

    #[test]
    fn non_retryable_kinds_give_up_at_once() {
        let mut retry = Retry::new(&fixed(5, 1), 0, Instant::ZERO, None);
        assert_eq!(
            retry.on_failure(ErrorKind::Permanent, Instant::ZERO, Some(MS), None),
            RetryDecision::GiveUp(GiveUpReason::NotRetryable(ErrorKind::Permanent))
        );
        assert_eq!(retry.attempts(), 1);
    }

    #[test]
    fn deadline_is_never_reached_by_a_retry() {
        let deadline = Some(Instant::from_millis(100));
        let mut retry = Retry::new(&fixed(10, 30), 0, Instant::ZERO, deadline);
        let t = |ms| Instant::from_millis(ms);
        let k = ErrorKind::Transient;
        assert_eq!(
            retry.on_failure(k, t(10), None, None).retry_at(),
            Some(t(40))
        );
        assert_eq!(
            retry.on_failure(k, t(60), None, None).retry_at(),
            Some(t(90))
        );
        // 70 + 30 = 100 is not before the deadline.
        assert_eq!(
            retry.on_failure(k, t(70), None, None),
            RetryDecision::GiveUp(GiveUpReason::DeadlineExceeded)
        );
    }

    #[test]
    fn retry_after_overrides_the_backoff_but_not_the_deadline() {
        let deadline = Some(Instant::from_secs(60));
        let mut retry = Retry::new(&fixed(10, 1), 0, Instant::ZERO, deadline);
        let k = ErrorKind::Transient;
        let hint = Some(Duration::from_secs(30));
        assert_eq!(
            retry.on_failure(k, Instant::ZERO, hint, None).retry_at(),
            Some(Instant::from_secs(30))
        );
        assert_eq!(retry.last_delay(), Duration::from_secs(30));
        assert_eq!(
            retry.on_failure(k, Instant::from_secs(31), hint, None),
            RetryDecision::GiveUp(GiveUpReason::DeadlineExceeded)
        );
    }

    #[test]
    fn budget_is_charged_only_for_retries_that_happen() {
        let mut budget = RetryBudget::new(RetryBudgetConfig {
            window: Duration::from_secs(10),
            min_retries_per_second: 0,
            retry_ratio: 1.0,
        });
        budget.deposit(Instant::ZERO);
        let k = ErrorKind::Transient;
        // Refused by the deadline: the budget keeps its retry.
        let mut late = Retry::new(&fixed(3, 10), 0, Instant::ZERO, Some(Instant::ZERO));
        assert_eq!(
            late.on_failure(k, Instant::ZERO, None, Some(&mut budget)),
            RetryDecision::GiveUp(GiveUpReason::DeadlineExceeded)
        );
        assert_eq!(budget.available(Instant::ZERO), 1);
        let mut retry = Retry::new(&fixed(3, 10), 0, Instant::ZERO, None);
        assert!(
            retry
                .on_failure(k, Instant::ZERO, None, Some(&mut budget))
                .retry_at()
                .is_some()
        );
        assert_eq!(
            retry.on_failure(k, Instant::from_millis(10), None, Some(&mut budget)),
            RetryDecision::GiveUp(GiveUpReason::BudgetExhausted)
        );
        assert_eq!(retry.attempts(), 2);
    }

    #[test]
    fn time_going_backwards_and_extremes_do_not_panic() {
        let mut retry = Retry::new(&fixed(u32::MAX, 10), 9, Instant::from_secs(5), None);
        let k = ErrorKind::Transient;
        assert_eq!(
            retry.on_failure(k, Instant::ZERO, None, None).retry_at(),
            Some(Instant::from_millis(5_010))
        );
        assert_eq!(
            retry
                .on_failure(k, Instant::MAX, Some(Duration::MAX), None)
                .retry_at(),
            Some(Instant::MAX)
        );
        let mut bounded = Retry::new(&fixed(3, 10), 9, Instant::MAX, Some(Instant::MAX));
        assert_eq!(
            bounded.on_failure(k, Instant::MAX, None, None),
            RetryDecision::GiveUp(GiveUpReason::DeadlineExceeded)
        );
    }

    #[test]
    fn same_seed_same_delays() {
        let config = RetryConfig {
            max_attempts: 20,
            ..RetryConfig::default()
        };
        let run = |seed| {
            let mut retry = Retry::new(&config, seed, Instant::ZERO, None);
            let mut out = [None; 19];
            let mut now = Instant::ZERO;
            for slot in &mut out {
                *slot = retry
                    .on_failure(ErrorKind::Timeout, now, None, None)
                    .retry_at();
                now = slot.unwrap_or(now);
            }
            out
        };
        assert_eq!(run(1), run(1));
        assert_ne!(run(1), run(2));
    }

    #[test]
    fn reasons_and_decisions_read_well() {
        assert_eq!(
            GiveUpReason::NotRetryable(ErrorKind::Permanent).to_string(),
            "permanent errors are not retried"
        );
        assert_eq!(
            RetryDecision::RetryAt(Instant::from_millis(1_500)).to_string(),
            "retry at 1.500000s"
        );
        assert_eq!(
            RetryDecision::GiveUp(GiveUpReason::BudgetExhausted).to_string(),
            "give up: retry budget exhausted"
        );
    }

    #[cfg(feature = "serde")]
    #[test]
    fn configs_decisions_and_state_round_trip_through_postcard() {
        let mut buf = [0u8; 256];
        let config = RetryConfig::default();
        let bytes = postcard::to_slice(&config, &mut buf).expect("fits");
        assert_eq!(
            postcard::from_bytes::<RetryConfig>(bytes).expect("decodes"),
            config
        );
        for decision in [
            RetryDecision::RetryAt(Instant::MAX),
            RetryDecision::GiveUp(GiveUpReason::NotRetryable(ErrorKind::InvalidInput)),
            RetryDecision::GiveUp(GiveUpReason::DeadlineExceeded),
        ] {
            let bytes = postcard::to_slice(&decision, &mut buf).expect("fits");
            assert_eq!(
                postcard::from_bytes::<RetryDecision>(bytes).expect("decodes"),
                decision
            );
        }
        let mut retry = Retry::new(&config, 3, Instant::ZERO, Some(Instant::from_secs(9)));
        let _ = retry.on_failure(ErrorKind::Transient, Instant::ZERO, None, None);
        let bytes = postcard::to_slice(&retry, &mut buf).expect("fits");
        let mut back = postcard::from_bytes::<Retry>(bytes).expect("decodes");
        assert_eq!(back, retry);
        let now = Instant::from_secs(1);
        assert_eq!(
            back.on_failure(ErrorKind::Transient, now, None, None),
            retry.on_failure(ErrorKind::Transient, now, None, None)
        );
    }

    #[cfg(feature = "serde")]
    #[test]
    fn a_state_whose_configuration_is_invalid_is_refused_when_read() {
        let mut buf = [0u8; 256];
        let retry = Retry::new(&fixed(3, 10), 3, Instant::ZERO, None);
        let bytes = postcard::to_slice(&retry, &mut buf).expect("fits");
        // The first field is `max_attempts` (a varint, 3): zero attempts is no configuration.
        assert_eq!(bytes.first(), Some(&3));
        let mut bad = std::vec::Vec::from(&*bytes);
        if let Some(first) = bad.first_mut() {
            *first = 0;
        }
        let error = postcard::from_bytes::<Retry>(&bad).expect_err("max_attempts 0 is refused");
        assert!(matches!(error, postcard::Error::SerdeDeCustom), "{error:?}");
    }

    struct Jittered;

    impl ConstRetryConfig for Jittered {
        const CONFIG: RetryConfig = RetryConfig {
            max_attempts: 6,
            backoff: BackoffStrategy::DecorrelatedJitter {
                initial: Duration::from_millis(10),
                max: Duration::from_secs(1),
                multiplier: 3.0,
            },
            retryable_errors: ErrorKindSet::of(&[ErrorKind::Transient, ErrorKind::Timeout]),
        };
    }

    #[test]
    fn a_configuration_as_a_type_decides_as_the_same_configuration_held() {
        let typed: FixedRetryConfig<Jittered> = FixedRetryConfig::new();
        assert_eq!(size_of::<FixedRetryConfig<Jittered>>(), 0);
        for seed in 0..50 {
            let deadline = Some(Instant::from_millis(1_500));
            let mut held = Retry::new(&Jittered::CONFIG, seed, Instant::ZERO, deadline);
            let mut fixed = Retry::start(&typed, seed, Instant::ZERO, deadline);
            assert_eq!(fixed.config(), held.config());
            let mut now = Instant::ZERO;
            for kind in [
                ErrorKind::Transient,
                ErrorKind::Timeout,
                ErrorKind::Transient,
            ]
            .into_iter()
            .cycle()
            .take(8)
            {
                let decision = held.on_failure(kind, now, None, None);
                assert_eq!(fixed.on_failure(kind, now, None, None), decision);
                assert_eq!(fixed.attempts(), held.attempts());
                assert_eq!(fixed.last_delay(), held.last_delay());
                if let RetryDecision::RetryAt(at) = decision {
                    now = at;
                }
            }
        }
    }
}
