//! Configuration of a circuit breaker.

use core::time::Duration;

use crate::error::{ConfigError, ConfigField, ErrorKind, ErrorKindSet};

/// How a circuit breaker decides to open, how long it stays open and how it probes.
///
/// The chapter's fields (`failure_threshold`, `success_threshold`, `timeout`) come first; the
/// rest have defaults, so `CircuitBreakerConfig { failure_threshold: 5, ..Default::default() }`
/// works as in the chapter.
#[derive(Clone, Copy, Debug, PartialEq)]
#[cfg_attr(feature = "serde", derive(serde::Serialize, serde::Deserialize))]
#[cfg_attr(feature = "serde", serde(default))]
pub struct CircuitBreakerConfig {
    /// Consecutive failures that open a closed breaker (consecutive mode).
    pub failure_threshold: u32,
    /// Successful probes in half-open that close the breaker again (at most 65 535).
    pub success_threshold: u32,
    /// Time spent open before the breaker turns half-open.
    pub timeout: Duration,
    /// Probe calls admitted at the same time while half-open (at most 65 535): a bound on
    /// concurrent probes, not on probes per cycle (a probe that reports frees its slot). See
    /// the half-open decision in the [module docs](super).
    pub half_open_max_calls: u32,
    /// Failure-rate mode: open when the share of failures over the sliding window reaches this
    /// rate, in `(0, 1]`. Needs a breaker built with a [`CountWindow`](super::CountWindow) or a
    /// [`TimeWindow`](super::TimeWindow);
    /// replaces the consecutive `failure_threshold` rule.
    ///
    /// The share is compared as `failures as f32 / calls as f32 >= rate` would compare it
    /// (rounded once to `f32`), so the rate stands for the decimal that was written: `0.3` opens
    /// at 3 failures of 10 (though `0.3f32` is a hair above 0.3), and `k as f32 / n as f32` at
    /// `k` of `n`, exactly, for windows of up to 4 096 calls.
    pub failure_rate_threshold: Option<f32>,
    /// Calls the window must hold before either rate is evaluated.
    ///
    /// How long a window and how many minimum calls a dependency's baseline failure rate
    /// needs, so that noise does not open the breaker, and a configuration per traffic level:
    /// [`sizing`](super::sizing).
    pub minimum_calls: u32,
    /// A call that takes at least this long is slow. Slow calls count towards
    /// `slow_call_rate_threshold` over the window, and a slow half-open probe counts as a failed
    /// probe. Needs a windowed breaker.
    pub slow_call_duration: Option<Duration>,
    /// Open when the share of slow calls over the window reaches this rate, in `(0, 1]`;
    /// compared as `failure_rate_threshold` is (`0.3` opens at 3 slow calls of 10).
    pub slow_call_rate_threshold: f32,
    /// Longest time a half-open cycle may last; probes that never report (a dropped future, a
    /// lost frame) cannot keep the breaker half-open beyond it: it goes to
    /// `after_max_wait_in_half_open` (open again, by default).
    pub max_wait_in_half_open: Duration,
    /// Grow the open time on each re-open without a successful close in between.
    pub open_backoff: Option<OpenBackoff>,
    /// Error kinds that say nothing about the callee's health; they count as neither success nor
    /// failure (default: `InvalidInput`).
    pub ignored_errors: ErrorKindSet,
    /// The length `T` of a window by time: with a [`TimeWindow<B>`](super::TimeWindow), both
    /// rates are over the calls of the last `T`, in `B` buckets of `T / B`. Needs a breaker
    /// built with a `TimeWindow` (which needs it).
    pub window_duration: Option<Duration>,
    /// Where a half-open cycle that outlived `max_wait_in_half_open` goes: open again (the
    /// default; the open time grows as after a failed probe) or closed (Resilience4j's
    /// `transitionToStateAfterWaitDuration = CLOSED`, with a fresh window; the open-time growth
    /// is kept, since no probe succeeded).
    pub after_max_wait_in_half_open: AfterMaxWait,
    /// Decide a half-open cycle by rate, as Resilience4j does with
    /// `permittedNumberOfCallsInHalfOpenState`: `Some(n)` admits `n` probes per cycle (at most
    /// `half_open_max_calls` of them at the same time) and decides on their failure rate and
    /// slow-call rate over the `n`, with `failure_rate_threshold` and (with
    /// `slow_call_duration`) `slow_call_rate_threshold`: open when either reaches its threshold,
    /// close otherwise. `success_threshold` is not read. At most 255; needs
    /// `failure_rate_threshold`. `None` (the default): probe by probe. See the half-open decision
    /// in the [module docs](super).
    pub half_open_permitted_calls: Option<u32>,
}

/// Where a half-open cycle that outlived `max_wait_in_half_open` goes.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Hash)]
#[cfg_attr(feature = "serde", derive(serde::Serialize, serde::Deserialize))]
#[cfg_attr(feature = "defmt", derive(defmt::Format))]
pub enum AfterMaxWait {
    /// Open again, for the next open time.
    #[default]
    Open,
    /// Close, with a fresh window.
    Closed,
}

/// Growth of the open time over successive re-opens: `timeout * multiplier^n`, capped at `max`.
#[derive(Clone, Copy, Debug, PartialEq)]
#[cfg_attr(feature = "serde", derive(serde::Serialize, serde::Deserialize))]
pub struct OpenBackoff {
    /// Factor applied per re-open, at least 1.
    pub multiplier: f32,
    /// The longest open time.
    pub max: Duration,
}

impl CircuitBreakerConfig {
    /// The defaults as a `const`, for `static` configurations:
    /// `CircuitBreakerConfig { failure_threshold: 3, ..CircuitBreakerConfig::DEFAULT }`.
    /// Opens after 5 consecutive failures, stays open 30 s, closes after 2 good probes; one probe
    /// at a time; a half-open cycle lasts at most 60 s; `InvalidInput` errors are ignored. Rate
    /// mode and slow calls are off.
    pub const DEFAULT: Self = Self {
        failure_threshold: 5,
        success_threshold: 2,
        timeout: Duration::from_secs(30),
        half_open_max_calls: 1,
        failure_rate_threshold: None,
        minimum_calls: 10,
        slow_call_duration: None,
        slow_call_rate_threshold: 1.0,
        max_wait_in_half_open: Duration::from_secs(60),
        open_backoff: None,
        ignored_errors: ErrorKindSet::of(&[ErrorKind::InvalidInput]),
        window_duration: None,
        after_max_wait_in_half_open: AfterMaxWait::Open,
        half_open_permitted_calls: None,
    };
}

impl Default for CircuitBreakerConfig {
    /// [`CircuitBreakerConfig::DEFAULT`].
    fn default() -> Self {
        Self::DEFAULT
    }
}

const U16_MAX: u32 = u16::MAX as u32;

const fn check_rate(rate: f32, field: ConfigField) -> Result<(), ConfigError> {
    if !rate.is_finite() {
        Err(ConfigError::NotFinite(field))
    } else if rate <= 0.0 || rate > 1.0 {
        Err(ConfigError::RateOutOfRange(field))
    } else {
        Ok(())
    }
}

/// A half-open count: positive, and small enough for the core's 16-bit counters.
const fn check_probe_count(value: u32, field: ConfigField) -> Result<(), ConfigError> {
    if value == 0 {
        Err(ConfigError::Zero(field))
    } else if value > U16_MAX {
        Err(ConfigError::TooLarge {
            field,
            max: U16_MAX as u64,
        })
    } else {
        Ok(())
    }
}

impl CircuitBreakerConfig {
    /// The most probes [`half_open_permitted_calls`](Self::half_open_permitted_calls) may
    /// permit: a cycle's counts are bytes, so the breaker keeps its size.
    pub const MAX_HALF_OPEN_PERMITTED_CALLS: u32 = u8::MAX as u32;

    /// Checks every field on its own and together, for a breaker whose window holds
    /// `window_capacity` outcomes (0 for the consecutive mode).
    ///
    /// # Errors
    /// The first invalid value found, as a [`ConfigError`].
    pub const fn validate_for_window(&self, window_capacity: u32) -> Result<(), ConfigError> {
        use ConfigField as F;
        if self.failure_threshold == 0 {
            return Err(ConfigError::Zero(F::FailureThreshold));
        }
        if let Err(error) = check_probe_count(self.success_threshold, F::SuccessThreshold) {
            return Err(error);
        }
        if let Err(error) = check_probe_count(self.half_open_max_calls, F::HalfOpenMaxCalls) {
            return Err(error);
        }
        if self.timeout.is_zero() {
            return Err(ConfigError::Zero(F::OpenTimeout));
        }
        if self.max_wait_in_half_open.is_zero() {
            return Err(ConfigError::Zero(F::MaxWaitInHalfOpen));
        }
        if let Some(backoff) = self.open_backoff {
            if !backoff.multiplier.is_finite() {
                return Err(ConfigError::NotFinite(F::OpenBackoffMultiplier));
            }
            if backoff.multiplier < 1.0 {
                return Err(ConfigError::MultiplierBelowOne(F::OpenBackoffMultiplier));
            }
            if backoff.max.as_nanos() < self.timeout.as_nanos() {
                return Err(ConfigError::Exceeds {
                    field: F::OpenTimeout,
                    limit: F::OpenBackoffMax,
                });
            }
        }
        if let Some(permitted) = self.half_open_permitted_calls {
            if permitted == 0 {
                return Err(ConfigError::Zero(F::HalfOpenPermittedCalls));
            }
            if permitted > Self::MAX_HALF_OPEN_PERMITTED_CALLS {
                return Err(ConfigError::TooLarge {
                    field: F::HalfOpenPermittedCalls,
                    max: Self::MAX_HALF_OPEN_PERMITTED_CALLS as u64,
                });
            }
            if self.failure_rate_threshold.is_none() {
                return Err(ConfigError::Requires {
                    field: F::HalfOpenPermittedCalls,
                    needs: F::FailureRateThreshold,
                });
            }
        }
        if let Some(length) = self.window_duration
            && length.is_zero()
        {
            return Err(ConfigError::Zero(F::WindowDuration));
        }
        let windowed = self.failure_rate_threshold.is_some() || self.slow_call_duration.is_some();
        if self.window_duration.is_some() && !windowed {
            // A window by time without a rate to evaluate would silently mean the
            // consecutive rule.
            return Err(ConfigError::NotApplicable(F::WindowDuration));
        }
        if let Some(rate) = self.failure_rate_threshold
            && let Err(error) = check_rate(rate, F::FailureRateThreshold)
        {
            return Err(error);
        }
        if let Some(slow) = self.slow_call_duration {
            if slow.is_zero() {
                return Err(ConfigError::Zero(F::SlowCallDuration));
            }
            if let Err(error) = check_rate(self.slow_call_rate_threshold, F::SlowCallRateThreshold)
            {
                return Err(error);
            }
        }
        if windowed {
            if self.minimum_calls == 0 {
                return Err(ConfigError::Zero(F::MinimumCalls));
            }
            if window_capacity < self.minimum_calls {
                return Err(ConfigError::WindowTooSmall {
                    needed: self.minimum_calls,
                    capacity: window_capacity,
                });
            }
        }
        Ok(())
    }

    /// Checks the configuration for a consecutive-failure breaker (no window).
    ///
    /// # Errors
    /// The first invalid value found; rate mode and slow calls need a window, so here they are
    /// [`ConfigError::WindowTooSmall`].
    pub const fn validate(&self) -> Result<(), ConfigError> {
        self.validate_for_window(0)
    }

    /// The open time after `reopens` re-opens without a successful close in between:
    /// `timeout * multiplier^reopens` rounded down to the nanosecond, capped at the backoff's
    /// `max` (a multiplier below 1 or NaN, which `validate` refuses, means no growth).
    #[must_use]
    pub fn open_duration(&self, reopens: u8) -> Duration {
        let Some(backoff) = self.open_backoff else {
            return self.timeout;
        };
        crate::float::grow(
            self.timeout,
            backoff.multiplier,
            u32::from(reopens),
            backoff.max,
        )
    }
}

#[cfg(feature = "defmt")]
impl defmt::Format for CircuitBreakerConfig {
    fn format(&self, f: defmt::Formatter<'_>) {
        defmt::write!(
            f,
            "CircuitBreakerConfig {{ failure_threshold: {=u32}, success_threshold: {=u32}, timeout_us: {=u64}, half_open_max_calls: {=u32} }}",
            self.failure_threshold,
            self.success_threshold,
            crate::time::duration_as_micros(self.timeout),
            self.half_open_max_calls,
        );
    }
}

#[cfg(feature = "defmt")]
impl defmt::Format for OpenBackoff {
    fn format(&self, f: defmt::Formatter<'_>) {
        defmt::write!(
            f,
            "OpenBackoff {{ multiplier: {=f32}, max_us: {=u64} }}",
            self.multiplier,
            crate::time::duration_as_micros(self.max)
        );
    }
}
