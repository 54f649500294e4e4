//! Error kinds, sets of kinds, configuration errors and the error a guarded call returns.
//!
//! Everything here is a small `Copy` value with `Display` and [`core::error::Error`]; nothing is a
//! string or a box, so firmware can log and transmit it.

use core::fmt;

mod message;
#[cfg(feature = "std")]
mod std_impls;

pub use message::invalid_const;
#[cfg(feature = "std")]
pub use std_impls::{io_error_kind, std_error_kind};

/// What kind of failure an operation had; retry and breakers decide on the kind alone.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord)]
#[cfg_attr(feature = "serde", derive(serde::Serialize, serde::Deserialize))]
#[cfg_attr(feature = "serde", serde(rename_all = "snake_case"))]
#[cfg_attr(feature = "defmt", derive(defmt::Format))]
#[repr(u8)]
pub enum ErrorKind {
    /// A passing fault that the same call may not meet again (a dropped packet, a busy device).
    Transient = 0,
    /// The operation did not answer in time.
    Timeout = 1,
    /// The callee is down or unreachable.
    Unavailable = 2,
    /// Out of memory, queue slots, GPU streams or quota.
    ResourceExhausted = 3,
    /// A fault that repeating the call cannot fix (a sticky device error, a bug).
    Permanent = 4,
    /// The request itself is wrong; the callee is healthy.
    InvalidInput = 5,
}

impl ErrorKind {
    /// Every kind, in declaration order.
    pub const ALL: [ErrorKind; 6] = [
        ErrorKind::Transient,
        ErrorKind::Timeout,
        ErrorKind::Unavailable,
        ErrorKind::ResourceExhausted,
        ErrorKind::Permanent,
        ErrorKind::InvalidInput,
    ];

    /// The kind's name as written in configs (serde) and logs (`"transient"`, `"resource_exhausted"`).
    #[must_use]
    pub const fn as_str(self) -> &'static str {
        match self {
            ErrorKind::Transient => "transient",
            ErrorKind::Timeout => "timeout",
            ErrorKind::Unavailable => "unavailable",
            ErrorKind::ResourceExhausted => "resource_exhausted",
            ErrorKind::Permanent => "permanent",
            ErrorKind::InvalidInput => "invalid_input",
        }
    }
}

impl fmt::Display for ErrorKind {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// Classifies an operation's error so retry and breakers can act on it.
///
/// Implement it for your error type; the default says every error is
/// [`ErrorKind::Transient`], which retries and counts against the breaker. For an error type
/// of another crate (which the orphan rule keeps you from implementing this for), give the
/// wrapper a closure instead: `.classify_with(|e: &TheirError| ErrorKind::Transient)`.
///
/// Implemented here for [`ErrorKind`] itself, `()`, [`core::convert::Infallible`],
/// [`core::fmt::Error`]; with the `std` feature for `std::io::Error` (by its
/// `kind`, see `io_error_kind`), `Box<dyn Error + Send + Sync>`
/// (an `io::Error` inside is classified as one, anything else is transient), `String` and
/// `&'static str` (transient). The core names no runtime: `rustkernel_tokio::classify` has
/// classifiers for tokio's `Elapsed` (a timeout).
///
/// A guarded call's own [`ResilienceError`] is not `Classify`: wrappers take it through
/// [`OperationError`] and flatten it, so composed calls return one level of error.
#[diagnostic::on_unimplemented(
    message = "`{Self}` does not say what kind of failure it is",
    label = "this error type needs a `Classify` impl",
    note = "add `impl Classify for {Self} {{}}` (every error transient) or implement `fn kind(&self) -> ErrorKind`",
    note = "for an error type from another crate, give the wrapper a closure: `.classify_with(|e: &{Self}| ErrorKind::Transient)`"
)]
pub trait Classify {
    /// The kind of this error.
    fn kind(&self) -> ErrorKind {
        ErrorKind::Transient
    }
}

impl Classify for ErrorKind {
    fn kind(&self) -> ErrorKind {
        *self
    }
}

/// `()` as an error carries no detail: transient.
impl Classify for () {}

impl Classify for core::convert::Infallible {
    fn kind(&self) -> ErrorKind {
        match *self {}
    }
}

/// A formatter error: transient (the writer may accept the next attempt).
impl Classify for fmt::Error {}

/// The error of an operation run by a resilience wrapper: either the operation's own error (any
/// [`Classify`] type), or the [`ResilienceError`] of a call that was itself guarded, which the
/// outer wrapper flattens so that composed calls return ONE level of error.
///
/// ```
/// use rustkernel_core::error::{ErrorKind, OperationError, ResilienceError};
/// // A plain error becomes `Operation(e)`.
/// assert_eq!(ErrorKind::Permanent.into_resilience_error(), ResilienceError::Operation(ErrorKind::Permanent));
/// // A guarded call's error stays as it is: `CircuitOpen` is still `CircuitOpen` one level up.
/// let inner: ResilienceError<ErrorKind> = ResilienceError::CircuitOpen;
/// assert_eq!(inner.into_resilience_error(), ResilienceError::CircuitOpen);
/// ```
#[diagnostic::on_unimplemented(
    message = "`{Self}` does not say what kind of failure it is",
    label = "this error type needs a `Classify` impl",
    note = "add `impl Classify for {Self} {{}}` (every error transient) or implement `fn kind(&self) -> ErrorKind`",
    note = "for an error type from another crate, give the wrapper a closure: `.classify_with(|e: &{Self}| ErrorKind::Transient)`"
)]
pub trait OperationError {
    /// The operation's own error once flattened.
    type Error;
    /// This error as one level of [`ResilienceError`].
    fn into_resilience_error(self) -> ResilienceError<Self::Error>;
    /// Its kind, as retry and breakers see it.
    fn error_kind(&self) -> ErrorKind;
}

impl<E: Classify> OperationError for E {
    type Error = E;
    #[inline]
    fn into_resilience_error(self) -> ResilienceError<E> {
        ResilienceError::Operation(self)
    }
    #[inline]
    fn error_kind(&self) -> ErrorKind {
        self.kind()
    }
}

impl<E: Classify> OperationError for ResilienceError<E> {
    type Error = E;
    #[inline]
    fn into_resilience_error(self) -> ResilienceError<E> {
        self
    }
    #[inline]
    fn error_kind(&self) -> ErrorKind {
        self.kind_with(Classify::kind)
    }
}

/// How a wrapper turns the error of its operation into a kind: [`ByClassify`] (the default,
/// through [`Classify`], flattening a nested [`ResilienceError`]), or a closure
/// `Fn(&E) -> ErrorKind` given with `classify_with`, for error types that are not `Classify`.
#[diagnostic::on_unimplemented(
    message = "cannot classify `{R}`: it is not `Classify`, and no matching closure was given",
    label = "the operation's error type `{R}` has no classification",
    note = "add `impl Classify for {R} {{}}` (every error transient) or implement `fn kind(&self) -> ErrorKind`",
    note = "for an error type from another crate, give the wrapper a closure: `.classify_with(|e: &{R}| ErrorKind::Transient)`"
)]
pub trait Classifier<R> {
    /// The error a caller gets back inside [`ResilienceError::Operation`].
    type Error;
    /// The operation's error as one level of [`ResilienceError`].
    fn flatten(&self, error: R) -> ResilienceError<Self::Error>;
    /// The kind of an operation's own error.
    fn classify(&self, error: &Self::Error) -> ErrorKind;
    /// The kind of a flattened error: `CircuitOpen` is unavailable, deadlines and timeouts are
    /// timeouts, an operation's error is [`classify`](Self::classify)'d.
    #[inline]
    fn kind_of(&self, error: &ResilienceError<Self::Error>) -> ErrorKind {
        error.kind_with(|error| self.classify(error))
    }
}

/// The default [`Classifier`]: the error's own [`Classify`] impl (through [`OperationError`], so
/// a guarded call's [`ResilienceError`] is flattened, never nested).
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Hash)]
pub struct ByClassify;

impl<R: OperationError> Classifier<R> for ByClassify
where
    R::Error: Classify,
{
    type Error = R::Error;
    #[inline]
    fn flatten(&self, error: R) -> ResilienceError<R::Error> {
        error.into_resilience_error()
    }
    #[inline]
    fn classify(&self, error: &R::Error) -> ErrorKind {
        error.kind()
    }
}

/// A closure classifier: `|e: &E| ErrorKind::..`, for any error type `E` (no `Classify` needed).
/// The operation's error is returned as it is, as `Operation(e)`.
impl<E, F: Fn(&E) -> ErrorKind> Classifier<E> for F {
    type Error = E;
    #[inline]
    fn flatten(&self, error: E) -> ResilienceError<E> {
        ResilienceError::Operation(error)
    }
    #[inline]
    fn classify(&self, error: &E) -> ErrorKind {
        self(error)
    }
}

crate::bitset::enum_set! {
    /// A `Copy` set of [`ErrorKind`]s; it stands where the chapter writes `vec![ErrorKind::..]`.
    ///
    /// ```
    /// use rustkernel_core::error::{ErrorKind, ErrorKindSet};
    /// let set: ErrorKindSet = [ErrorKind::Transient, ErrorKind::Timeout].into();
    /// assert!(set.contains(ErrorKind::Timeout));
    /// assert!(!set.contains(ErrorKind::Permanent));
    /// ```
    pub struct ErrorKindSet of ErrorKind, expecting "a sequence of error kinds";
}

/// Names a configuration field in a [`ConfigError`].
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
#[cfg_attr(feature = "serde", derive(serde::Serialize, serde::Deserialize))]
#[cfg_attr(feature = "defmt", derive(defmt::Format))]
#[non_exhaustive]
#[allow(missing_docs)] // each variant is documented by the config field it names (see `as_str`)
pub enum ConfigField {
    FailureThreshold,
    SuccessThreshold,
    OpenTimeout,
    HalfOpenMaxCalls,
    FailureRateThreshold,
    MinimumCalls,
    SlowCallDuration,
    SlowCallRateThreshold,
    MaxWaitInHalfOpen,
    OpenBackoffMultiplier,
    OpenBackoffMax,
    MaxAttempts,
    BackoffInitial,
    BackoffMax,
    BackoffMultiplier,
    BackoffIncrement,
    BackoffDelay,
    RetryableErrors,
    BudgetRetryRatio,
    BudgetMinRetriesPerSecond,
    BudgetWindow,
    DefaultTimeout,
    MaxTimeout,
    ProbeInterval,
    ProbeTimeout,
    ProbeFailureThreshold,
    ProbeSuccessThreshold,
    MaxRestarts,
    RestartDelay,
    RestartWindow,
    RestartBackoffMax,
    RestartBackoffMultiplier,
    RetryMaxElapsed,
    ProbeRoles,
    WindowDuration,
    SilentAfter,
    LostAfter,
    HalfOpenPermittedCalls,
}

impl ConfigField {
    /// The field's path as written in a `ResilienceConfig` (`"circuit_breaker.failure_threshold"`).
    #[must_use]
    pub const fn as_str(self) -> &'static str {
        match self {
            ConfigField::FailureThreshold => "circuit_breaker.failure_threshold",
            ConfigField::SuccessThreshold => "circuit_breaker.success_threshold",
            ConfigField::OpenTimeout => "circuit_breaker.timeout",
            ConfigField::HalfOpenMaxCalls => "circuit_breaker.half_open_max_calls",
            ConfigField::FailureRateThreshold => "circuit_breaker.failure_rate_threshold",
            ConfigField::MinimumCalls => "circuit_breaker.minimum_calls",
            ConfigField::SlowCallDuration => "circuit_breaker.slow_call_duration",
            ConfigField::SlowCallRateThreshold => "circuit_breaker.slow_call_rate_threshold",
            ConfigField::MaxWaitInHalfOpen => "circuit_breaker.max_wait_in_half_open",
            ConfigField::OpenBackoffMultiplier => "circuit_breaker.open_backoff.multiplier",
            ConfigField::OpenBackoffMax => "circuit_breaker.open_backoff.max",
            ConfigField::MaxAttempts => "retry.max_attempts",
            ConfigField::BackoffInitial => "retry.backoff.initial",
            ConfigField::BackoffMax => "retry.backoff.max",
            ConfigField::BackoffMultiplier => "retry.backoff.multiplier",
            ConfigField::BackoffIncrement => "retry.backoff.increment",
            ConfigField::BackoffDelay => "retry.backoff.delay",
            ConfigField::RetryableErrors => "retry.retryable_errors",
            ConfigField::BudgetRetryRatio => "retry_budget.retry_ratio",
            ConfigField::BudgetMinRetriesPerSecond => "retry_budget.min_retries_per_second",
            ConfigField::BudgetWindow => "retry_budget.window",
            ConfigField::DefaultTimeout => "timeout.default_timeout",
            ConfigField::MaxTimeout => "timeout.max_timeout",
            ConfigField::ProbeInterval => "health_check.interval",
            ConfigField::ProbeTimeout => "health_check.timeout",
            ConfigField::ProbeFailureThreshold => "health_check.failure_threshold",
            ConfigField::ProbeSuccessThreshold => "health_check.success_threshold",
            ConfigField::MaxRestarts => "recovery.max_restarts",
            ConfigField::RestartDelay => "recovery.restart_delay",
            ConfigField::RestartWindow => "recovery.restart_window",
            ConfigField::RestartBackoffMax => "recovery.restart_backoff.max",
            ConfigField::RestartBackoffMultiplier => "recovery.restart_backoff.multiplier",
            ConfigField::RetryMaxElapsed => "retry.max_elapsed",
            ConfigField::ProbeRoles => "health_check.roles",
            ConfigField::WindowDuration => "circuit_breaker.window_duration",
            ConfigField::SilentAfter => "silence.silent_after",
            ConfigField::LostAfter => "silence.lost_after",
            ConfigField::HalfOpenPermittedCalls => "circuit_breaker.half_open_permitted_calls",
        }
    }
}

impl fmt::Display for ConfigField {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// The body of every documented panicking constructor (`new` next to `try_new`, `build` next
/// to `try_build`): the value, or a panic at the caller's location with the message
/// `invalid {what}: {error}`.
///
/// # Panics
/// When `result` is an error.
#[track_caller]
#[allow(clippy::panic, reason = "the panicking twins document their panics")]
pub fn valid_or_panic<T, E: fmt::Display>(result: Result<T, E>, what: &str) -> T {
    match result {
        Ok(value) => value,
        Err(error) => panic!("invalid {what}: {error}"),
    }
}

/// Why a configuration was refused; one variant per kind of invalid value.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
#[cfg_attr(feature = "serde", derive(serde::Serialize, serde::Deserialize))]
#[cfg_attr(feature = "defmt", derive(defmt::Format))]
#[non_exhaustive]
pub enum ConfigError {
    /// A count, threshold or duration that must be positive is zero.
    Zero(ConfigField),
    /// A floating-point value is NaN or infinite.
    NotFinite(ConfigField),
    /// A growth multiplier is below 1, so delays would shrink.
    MultiplierBelowOne(ConfigField),
    /// A rate or ratio lies outside `(0, 1]`.
    RateOutOfRange(ConfigField),
    /// A value exceeds what the implementation can hold.
    TooLarge {
        /// The offending field.
        field: ConfigField,
        /// The largest accepted value.
        max: u64,
    },
    /// `field` is larger than `limit`, which bounds it (`initial > max`, `default_timeout > max_timeout`).
    Exceeds {
        /// The field that is too large.
        field: ConfigField,
        /// The field that bounds it.
        limit: ConfigField,
    },
    /// `max_attempts > 1` but no error kind is retryable, so retries could never happen.
    EmptyRetryableErrors,
    /// Failure-rate mode needs a sliding window at least `minimum_calls` long.
    WindowTooSmall {
        /// Calls the configuration needs in the window.
        needed: u32,
        /// The window capacity the breaker was built with.
        capacity: u32,
    },
    /// A field that the breaker's window needs is not set (`window_duration` for a
    /// `TimeWindow`).
    Missing(ConfigField),
    /// A field is set that the breaker's window never reads (`window_duration` without a
    /// `TimeWindow`).
    NotApplicable(ConfigField),
    /// `window_duration` is shorter than one microsecond per bucket.
    BucketTooShort {
        /// The buckets of the breaker's `TimeWindow`.
        buckets: u32,
    },
    /// `field` is set but means nothing without `needs` (`half_open_permitted_calls` decides by
    /// the failure rate, so it needs `failure_rate_threshold`).
    Requires {
        /// The field that is set.
        field: ConfigField,
        /// The field it needs.
        needs: ConfigField,
    },
}

impl fmt::Display for ConfigError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        // One text with `invalid_const`, which cannot use `write!`.
        f.write_str(message::Text::new().error(self).as_str())
    }
}

impl core::error::Error for ConfigError {}

/// The error of a call guarded by the resilience layer.
///
/// `Operation` carries the operation's own error unchanged: when retries run out the caller
/// gets the last real error, never a replacement.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
#[cfg_attr(feature = "serde", derive(serde::Serialize, serde::Deserialize))]
#[cfg_attr(feature = "defmt", derive(defmt::Format))]
pub enum ResilienceError<E> {
    /// The circuit breaker is open (or half-open and full): the call was not attempted.
    CircuitOpen,
    /// The caller's deadline passed, or would pass before the call could start.
    DeadlineExceeded,
    /// The call started but did not finish within its timeout.
    Timeout,
    /// The operation ran and failed with its own error.
    Operation(E),
}

impl<E> ResilienceError<E> {
    /// The operation's own error, if the call ran and failed.
    pub fn into_operation(self) -> Option<E> {
        match self {
            ResilienceError::Operation(error) => Some(error),
            _ => None,
        }
    }

    /// Applies `f` to the operation's error, keeping the other variants.
    pub fn map_operation<F, G: FnOnce(E) -> F>(self, g: G) -> ResilienceError<F> {
        match self {
            ResilienceError::CircuitOpen => ResilienceError::CircuitOpen,
            ResilienceError::DeadlineExceeded => ResilienceError::DeadlineExceeded,
            ResilienceError::Timeout => ResilienceError::Timeout,
            ResilienceError::Operation(error) => ResilienceError::Operation(g(error)),
        }
    }
}

impl<E> ResilienceError<ResilienceError<E>> {
    /// Unwraps the error of a guarded call whose operation was itself guarded
    /// (`deadline.execute(|| retrier.execute(..))`, `breaker.call(|| retry(..))`): the outer
    /// variants win, an inner error comes back as it was.
    pub fn flatten(self) -> ResilienceError<E> {
        match self {
            ResilienceError::CircuitOpen => ResilienceError::CircuitOpen,
            ResilienceError::DeadlineExceeded => ResilienceError::DeadlineExceeded,
            ResilienceError::Timeout => ResilienceError::Timeout,
            ResilienceError::Operation(inner) => inner,
        }
    }
}

impl<E> ResilienceError<E> {
    /// The kind of this error, the operation's own classified by `classify`: `CircuitOpen` is
    /// [`ErrorKind::Unavailable`], `DeadlineExceeded` and `Timeout` are [`ErrorKind::Timeout`].
    #[inline]
    pub fn kind_with(&self, classify: impl FnOnce(&E) -> ErrorKind) -> ErrorKind {
        match self {
            ResilienceError::CircuitOpen => ErrorKind::Unavailable,
            ResilienceError::DeadlineExceeded | ResilienceError::Timeout => ErrorKind::Timeout,
            ResilienceError::Operation(error) => classify(error),
        }
    }

    /// Whether the breaker refused the call (it was not attempted).
    #[must_use]
    pub const fn is_circuit_open(&self) -> bool {
        matches!(self, ResilienceError::CircuitOpen)
    }

    /// Whether the call ran out of time: its deadline passed (`DeadlineExceeded`) or an
    /// attempt's timeout did (`Timeout`).
    #[must_use]
    pub const fn is_timeout(&self) -> bool {
        matches!(
            self,
            ResilienceError::DeadlineExceeded | ResilienceError::Timeout
        )
    }
}

impl<E: Classify> ResilienceError<E> {
    /// The kind of this error (see [`kind_with`](Self::kind_with)); the operation's own error
    /// keeps its [`Classify`] kind.
    #[inline]
    #[must_use]
    pub fn kind(&self) -> ErrorKind {
        self.kind_with(Classify::kind)
    }
}

impl<E: fmt::Display> fmt::Display for ResilienceError<E> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            ResilienceError::CircuitOpen => f.write_str("circuit breaker is open"),
            ResilienceError::DeadlineExceeded => f.write_str("deadline exceeded"),
            ResilienceError::Timeout => f.write_str("operation timed out"),
            ResilienceError::Operation(error) => write!(f, "operation failed: {error}"),
        }
    }
}

impl<E: core::error::Error + 'static> core::error::Error for ResilienceError<E> {
    fn source(&self) -> Option<&(dyn core::error::Error + 'static)> {
        match self {
            ResilienceError::Operation(error) => Some(error),
            _ => None,
        }
    }
}

#[cfg(test)]
mod tests {
    extern crate std;
    use super::*;
    use std::string::ToString;

    #[test]
    fn set_builds_from_arrays_and_iterators() {
        let set: ErrorKindSet = [ErrorKind::Transient, ErrorKind::Timeout].into();
        assert_eq!(set.len(), 2);
        assert!(set.contains(ErrorKind::Transient) && !set.contains(ErrorKind::Permanent));
        let again: ErrorKindSet = set.iter().collect();
        assert_eq!(again, set);
        assert_eq!(ErrorKindSet::ALL.len(), ErrorKind::ALL.len());
        assert!(
            set.without(ErrorKind::Transient)
                .without(ErrorKind::Timeout)
                .is_empty()
        );
        assert_eq!(set.to_string(), "[transient, timeout]");
    }

    #[test]
    fn errors_read_well() {
        assert_eq!(
            ConfigError::Zero(ConfigField::FailureThreshold).to_string(),
            "circuit_breaker.failure_threshold must be greater than zero"
        );
        let err = ResilienceError::Operation(ErrorKind::Permanent);
        assert_eq!(err.to_string(), "operation failed: permanent");
        assert_eq!(err.kind(), ErrorKind::Permanent);
        assert_eq!(
            ResilienceError::<ErrorKind>::CircuitOpen.kind(),
            ErrorKind::Unavailable
        );
    }

    #[cfg(feature = "serde")]
    #[test]
    fn set_and_errors_round_trip_through_postcard() {
        let set = ErrorKindSet::of(&[ErrorKind::Unavailable, ErrorKind::InvalidInput]);
        let mut buf = [0u8; 32];
        let bytes = postcard::to_slice(&set, &mut buf).expect("fits");
        assert_eq!(
            postcard::from_bytes::<ErrorKindSet>(bytes).expect("decodes"),
            set
        );
        let err = ConfigError::Exceeds {
            field: ConfigField::BackoffInitial,
            limit: ConfigField::BackoffMax,
        };
        let bytes = postcard::to_slice(&err, &mut buf).expect("fits");
        assert_eq!(
            postcard::from_bytes::<ConfigError>(bytes).expect("decodes"),
            err
        );
    }
}
