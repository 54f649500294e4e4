//! Per-kernel timeouts: how long a call may take, and how that combines with its caller's deadline.
//!
//! [`TimeoutConfig`] has exactly the chapter's four fields. [`TimeoutConfig::resolve`] is the one
//! place that turns a call's requested timeout, its caller's deadline and the time it spent queued
//! into the [`DeadlineContext`] the call runs under.
//!
//! ```
//! use core::time::Duration;
//! use rustkernel_core::resilience::{DeadlineBound, DeadlineContext, TimeoutConfig};
//! use rustkernel_core::time::Instant;
//!
//! let config = TimeoutConfig {
//!     default_timeout: Duration::from_secs(30),
//!     max_timeout: Duration::from_secs(300),
//!     propagate_deadline: true,
//!     include_queue_time: true,
//! };
//! config.validate().expect("valid");
//!
//! let enqueued_at = Instant::from_secs(100);
//! let now = Instant::from_secs(102); // two seconds in the queue
//! let parent = DeadlineContext::at(Instant::from_secs(200));
//!
//! // No request: the default applies from the moment the call was queued.
//! let resolved = config.resolve(None, Some(parent), enqueued_at, now);
//! assert_eq!(resolved.context.deadline(), Instant::from_secs(130));
//! assert_eq!(resolved.bound, DeadlineBound::Default);
//!
//! // An hour is more than the maximum, and the caller's deadline comes first anyway.
//! let resolved = config.resolve(Some(Duration::from_secs(3_600)), Some(parent), enqueued_at, now);
//! assert_eq!(resolved.context, parent);
//! assert_eq!(resolved.bound, DeadlineBound::Parent);
//! ```

use core::time::Duration;

use crate::error::{ConfigError, ConfigField};
use crate::resilience::deadline::DeadlineContext;
use crate::time::Instant;

/// Timeouts for kernel calls (the chapter's `TimeoutConfig`, with exactly its fields).
///
/// Check it with [`validate`](Self::validate); compute a call's deadline with
/// [`resolve`](Self::resolve).
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
#[cfg_attr(feature = "serde", derive(serde::Serialize, serde::Deserialize))]
#[cfg_attr(feature = "defmt", derive(defmt::Format))]
pub struct TimeoutConfig {
    /// The timeout of a call that asks for none.
    pub default_timeout: Duration,
    /// The longest timeout any call gets; longer requests are cut to this.
    pub max_timeout: Duration,
    /// Whether a call's deadline is capped by its caller's (parent's) deadline.
    pub propagate_deadline: bool,
    /// Whether time spent queued counts against the call's timeout.
    pub include_queue_time: bool,
}

impl Default for TimeoutConfig {
    /// The chapter's values: 30 s default, 300 s maximum, deadlines propagated, queue time counted.
    fn default() -> Self {
        Self {
            default_timeout: Duration::from_secs(30),
            max_timeout: Duration::from_secs(300),
            propagate_deadline: true,
            include_queue_time: true,
        }
    }
}

impl TimeoutConfig {
    /// Checks that both timeouts are positive and the default does not exceed the maximum.
    ///
    /// # Errors
    /// - [`ConfigError::Zero`] with [`ConfigField::DefaultTimeout`] or [`ConfigField::MaxTimeout`].
    /// - [`ConfigError::Exceeds`] when `default_timeout > max_timeout`.
    pub const fn validate(&self) -> Result<(), ConfigError> {
        if self.default_timeout.is_zero() {
            return Err(ConfigError::Zero(ConfigField::DefaultTimeout));
        }
        if self.max_timeout.is_zero() {
            return Err(ConfigError::Zero(ConfigField::MaxTimeout));
        }
        if self.default_timeout.as_nanos() > self.max_timeout.as_nanos() {
            return Err(ConfigError::Exceeds {
                field: ConfigField::DefaultTimeout,
                limit: ConfigField::MaxTimeout,
            });
        }
        Ok(())
    }

    /// The deadline a call runs under, and which bound set it.
    ///
    /// - `timeout` is `requested`, or `default_timeout` when `None`, cut to `max_timeout`.
    ///   A requested `Duration::ZERO` is honoured, not replaced by the default: it means the
    ///   caller has no time left (a [`WireDeadline`](super::WireDeadline) of zero arrives as
    ///   one), so the call gets an already expired deadline and should fail fast.
    /// - `start` is `enqueued_at` when `include_queue_time` is set, so time spent queued counts
    ///   against the budget, and `now` otherwise. An `enqueued_at` later than `now` (clocks
    ///   disagreeing) counts as `now`.
    /// - The deadline is `start + timeout` (saturating). When `propagate_deadline` is set and a
    ///   `parent` is given, it is the earlier of that and the parent's deadline; when it is not
    ///   set, `parent` is ignored.
    ///
    /// Works on any config, validated or not: with `default_timeout > max_timeout` the maximum
    /// still wins, and a zero maximum gives expired deadlines. Never panics.
    #[must_use]
    pub fn resolve(
        &self,
        requested: Option<Duration>,
        parent: Option<DeadlineContext>,
        enqueued_at: Instant,
        now: Instant,
    ) -> ResolvedDeadline {
        let (wanted, mut bound) = match requested {
            Some(timeout) => (timeout, DeadlineBound::Requested),
            None => (self.default_timeout, DeadlineBound::Default),
        };
        let timeout = if wanted > self.max_timeout {
            bound = DeadlineBound::MaxTimeout;
            self.max_timeout
        } else {
            wanted
        };
        let start = if self.include_queue_time {
            enqueued_at.min(now)
        } else {
            now
        };
        let mut context = DeadlineContext::new(start, timeout);
        if let (true, Some(parent)) = (self.propagate_deadline, parent)
            && parent < context
        {
            context = parent;
            bound = DeadlineBound::Parent;
        }
        ResolvedDeadline { context, bound }
    }
}

/// The result of [`TimeoutConfig::resolve`]: the call's deadline and the bound that set it.
///
/// The bound lets an adapter tell its caller's deadline running out
/// ([`DeadlineBound::Parent`], usually reported as `ResilienceError::DeadlineExceeded`) from the
/// call's own timeout running out (the others, usually `ResilienceError::Timeout`).
/// It holds an absolute instant, so it has no serde support; send [`super::WireDeadline`].
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
#[cfg_attr(feature = "defmt", derive(defmt::Format))]
pub struct ResolvedDeadline {
    /// The deadline the call runs under.
    pub context: DeadlineContext,
    /// Which bound set it.
    pub bound: DeadlineBound,
}

/// Which bound set a resolved deadline.
///
/// When the parent's deadline ties with the call's own, the call's own bound is reported:
/// [`Parent`](Self::Parent) means the parent's deadline was strictly earlier.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
#[cfg_attr(feature = "serde", derive(serde::Serialize, serde::Deserialize))]
#[cfg_attr(feature = "defmt", derive(defmt::Format))]
pub enum DeadlineBound {
    /// The caller's requested timeout, within `max_timeout`.
    Requested,
    /// `default_timeout`, within `max_timeout`, because the caller asked for none.
    Default,
    /// `max_timeout`, because the requested (or default) timeout was longer.
    MaxTimeout,
    /// The propagated parent deadline, earlier than the call's own.
    Parent,
}

#[cfg(test)]
mod tests {
    use super::*;

    const S: Duration = Duration::from_secs(1);

    fn config(propagate_deadline: bool, include_queue_time: bool) -> TimeoutConfig {
        TimeoutConfig {
            default_timeout: 30 * S,
            max_timeout: 300 * S,
            propagate_deadline,
            include_queue_time,
        }
    }

    fn secs(s: u64) -> Instant {
        Instant::from_secs(s)
    }

    #[test]
    fn default_is_the_chapters_and_valid() {
        let c = TimeoutConfig::default();
        assert_eq!(c, config(true, true));
        assert_eq!(c.validate(), Ok(()));
    }

    #[test]
    fn validate_rejects_zero_and_inverted_timeouts() {
        let with = |default_timeout, max_timeout| TimeoutConfig {
            default_timeout,
            max_timeout,
            ..TimeoutConfig::default()
        };
        assert_eq!(
            with(Duration::ZERO, 300 * S).validate(),
            Err(ConfigError::Zero(ConfigField::DefaultTimeout))
        );
        assert_eq!(
            with(30 * S, Duration::ZERO).validate(),
            Err(ConfigError::Zero(ConfigField::MaxTimeout))
        );
        assert_eq!(
            with(300 * S + Duration::from_nanos(1), 300 * S).validate(),
            Err(ConfigError::Exceeds {
                field: ConfigField::DefaultTimeout,
                limit: ConfigField::MaxTimeout
            })
        );
        assert_eq!(with(300 * S, 300 * S).validate(), Ok(()));
    }

    #[test]
    fn requests_default_and_clamp() {
        let c = config(true, false);
        let r = c.resolve(Some(5 * S), None, secs(100), secs(100));
        assert_eq!(
            (r.context.deadline(), r.bound),
            (secs(105), DeadlineBound::Requested)
        );
        let r = c.resolve(None, None, secs(100), secs(100));
        assert_eq!(
            (r.context.deadline(), r.bound),
            (secs(130), DeadlineBound::Default)
        );
        let r = c.resolve(Some(Duration::MAX), None, secs(100), secs(100));
        assert_eq!(
            (r.context.deadline(), r.bound),
            (secs(400), DeadlineBound::MaxTimeout)
        );
        let r = c.resolve(Some(300 * S), None, secs(100), secs(100));
        assert_eq!(r.bound, DeadlineBound::Requested);
    }

    #[test]
    fn a_zero_request_is_already_expired() {
        let c = config(true, false);
        let r = c.resolve(Some(Duration::ZERO), None, secs(100), secs(100));
        assert_eq!(r.context.deadline(), secs(100));
        assert!(r.context.is_expired(secs(100)));
        assert_eq!(r.bound, DeadlineBound::Requested);
    }

    #[test]
    fn include_queue_time_changes_the_start() {
        let enqueued_at = secs(100);
        let now = secs(110);
        let counted = config(true, true).resolve(Some(20 * S), None, enqueued_at, now);
        let ignored = config(true, false).resolve(Some(20 * S), None, enqueued_at, now);
        assert_eq!(counted.context.deadline(), secs(120));
        assert_eq!(ignored.context.deadline(), secs(130));
        // Queued longer than the timeout: already expired only when queue time counts.
        let counted = config(true, true).resolve(Some(5 * S), None, enqueued_at, now);
        assert!(counted.context.is_expired(now));
        let ignored = config(true, false).resolve(Some(5 * S), None, enqueued_at, now);
        assert!(!ignored.context.is_expired(now));
    }

    #[test]
    fn an_enqueue_time_in_the_future_counts_as_now() {
        let r = config(true, true).resolve(Some(5 * S), None, secs(500), secs(100));
        assert_eq!(r.context.deadline(), secs(105));
    }

    #[test]
    fn propagate_deadline_decides_whether_the_parent_caps() {
        let parent = DeadlineContext::at(secs(110));
        let capped = config(true, false).resolve(Some(60 * S), Some(parent), secs(100), secs(100));
        assert_eq!(capped.context, parent);
        assert_eq!(capped.bound, DeadlineBound::Parent);
        let free = config(false, false).resolve(Some(60 * S), Some(parent), secs(100), secs(100));
        assert_eq!(free.context.deadline(), secs(160));
        assert_eq!(free.bound, DeadlineBound::Requested);
        // A later parent never extends the call.
        let late_parent = DeadlineContext::at(secs(1_000));
        let r = config(true, false).resolve(Some(60 * S), Some(late_parent), secs(100), secs(100));
        assert_eq!(
            (r.context.deadline(), r.bound),
            (secs(160), DeadlineBound::Requested)
        );
        // A tie reports the call's own bound.
        let tie = DeadlineContext::at(secs(160));
        let r = config(true, false).resolve(Some(60 * S), Some(tie), secs(100), secs(100));
        assert_eq!(r.bound, DeadlineBound::Requested);
    }

    #[test]
    fn unvalidated_configs_and_extremes_do_not_panic() {
        let inverted = TimeoutConfig {
            default_timeout: Duration::MAX,
            max_timeout: Duration::ZERO,
            propagate_deadline: true,
            include_queue_time: true,
        };
        let r = inverted.resolve(None, None, Instant::MAX, Instant::MAX);
        assert_eq!(
            (r.context.deadline(), r.bound),
            (Instant::MAX, DeadlineBound::MaxTimeout)
        );
        let wide = TimeoutConfig {
            max_timeout: Duration::MAX,
            ..TimeoutConfig::default()
        };
        let r = wide.resolve(Some(Duration::MAX), None, Instant::ZERO, Instant::MAX);
        assert_eq!(r.context.deadline(), Instant::MAX);
    }

    #[cfg(feature = "serde")]
    #[test]
    fn config_and_bound_round_trip_through_postcard() {
        let mut buf = [0u8; 64];
        let c = TimeoutConfig {
            default_timeout: Duration::new(7, 123),
            max_timeout: Duration::MAX,
            propagate_deadline: false,
            include_queue_time: true,
        };
        let bytes = postcard::to_slice(&c, &mut buf).expect("fits");
        assert_eq!(
            postcard::from_bytes::<TimeoutConfig>(bytes).expect("decodes"),
            c
        );
        for bound in [
            DeadlineBound::Requested,
            DeadlineBound::Default,
            DeadlineBound::MaxTimeout,
            DeadlineBound::Parent,
        ] {
            let bytes = postcard::to_slice(&bound, &mut buf).expect("fits");
            assert_eq!(
                postcard::from_bytes::<DeadlineBound>(bytes).expect("decodes"),
                bound
            );
        }
    }
}
