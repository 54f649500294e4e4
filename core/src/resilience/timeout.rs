//! Per-kernel timeouts: how long a call may take, and how that combines with its caller's deadline.
//!
//! [`TimeoutConfig`] has exactly the chapter's four fields. [`TimeoutConfig::resolve`] is the one
//! place that turns a call's requested timeout, its caller's deadline and the time it spent queued
//! into the [`DeadlineContext`] the call runs under.
//!
//! # When a deadline passes: which error
//! Both adapters (tokio and embassy, their deadlines and their pipelines) report a passed
//! deadline through this module, so one configuration gives the same errors on either runtime:
//!
//! | the deadline was found passed | set by ([`DeadlineBound`]) | error |
//! |---|---|---|
//! | before the call started (queued too long, a zero [`WireDeadline`](super::WireDeadline), the caller's time already gone) | any | [`ResilienceError::DeadlineExceeded`] |
//! | while the call ran (its retries and waits included) | [`Parent`](DeadlineBound::Parent) | [`ResilienceError::DeadlineExceeded`] |
//! | while the call ran | [`Requested`](DeadlineBound::Requested), [`Default`](DeadlineBound::Default), [`MaxTimeout`](DeadlineBound::MaxTimeout) | [`ResilienceError::Timeout`] |
//! | while an attempt ran, at its own timeout | [`Attempt`](DeadlineBound::Attempt) | [`ResilienceError::Timeout`] |
//!
//! `DeadlineExceeded` says the caller's time ran out (nothing this call could do); `Timeout` says
//! this call took longer than it may. [`ResolvedDeadline::check_start`] gives the first row,
//! [`ResolvedDeadline::expiry_error`] (and [`DeadlineBound::expiry_error`]) the others, and
//! [`ResolvedDeadline::for_attempt`] says whether an attempt's own timeout or the call's
//! deadline cuts it.
//!
//! ```
//! use core::time::Duration;
//! use rustkernel_core::error::ResilienceError;
//! use rustkernel_core::resilience::{DeadlineBound, DeadlineContext, ResolvedDeadline, TimeoutConfig};
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
//!
//! // The caller's deadline passing is the caller's `DeadlineExceeded`.
//! assert_eq!(resolved.expiry_error::<()>(), ResilienceError::DeadlineExceeded);
//! // A 5 s attempt timeout comes before the call's deadline: it cuts the attempt, a `Timeout`.
//! let attempt = ResolvedDeadline::for_attempt(Some(resolved), now, Duration::from_secs(5));
//! assert_eq!(attempt.bound, DeadlineBound::Attempt);
//! assert_eq!(attempt.expiry_error::<()>(), ResilienceError::Timeout);
//! ```

use core::time::Duration;

use crate::error::{ConfigError, ConfigField, ResilienceError};
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
/// The bound tells the caller's deadline running out ([`DeadlineBound::Parent`], reported as
/// [`ResilienceError::DeadlineExceeded`]) from the call's own timeout running out (the others,
/// [`ResilienceError::Timeout`]); see the [module docs](self) for the whole rule.
/// It holds an absolute instant, so it has no serde support; send [`super::WireDeadline`].
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
#[cfg_attr(feature = "defmt", derive(defmt::Format))]
pub struct ResolvedDeadline {
    /// The deadline the call runs under.
    pub context: DeadlineContext,
    /// Which bound set it.
    pub bound: DeadlineBound,
}

impl ResolvedDeadline {
    /// A caller's deadline, for a call that has no [`TimeoutConfig`] of its own: bound
    /// [`DeadlineBound::Parent`], so its passing is the caller's `DeadlineExceeded`.
    #[must_use]
    pub const fn parent(context: DeadlineContext) -> Self {
        Self {
            context,
            bound: DeadlineBound::Parent,
        }
    }

    /// The deadline of one attempt, started at `now` with its own `attempt_timeout`, of a call
    /// that runs under `call` (`None`: a call with no deadline).
    ///
    /// The attempt's own deadline ([`DeadlineBound::Attempt`]) applies only when it is strictly
    /// earlier than the call's; otherwise the call's deadline and bound are returned as they
    /// are, so an attempt cut at the call's deadline reports what the call would.
    #[must_use]
    pub const fn for_attempt(call: Option<Self>, now: Instant, attempt_timeout: Duration) -> Self {
        let own = DeadlineContext::new(now, attempt_timeout);
        match call {
            Some(call) if call.context.deadline().as_micros() <= own.deadline().as_micros() => call,
            _ => Self {
                context: own,
                bound: DeadlineBound::Attempt,
            },
        }
    }

    /// `Ok(())` while time remains at `now`; once the deadline has passed, the error of a call
    /// that has not started yet: [`ResilienceError::DeadlineExceeded`], whatever the bound.
    ///
    /// A call that never ran did not take too long: the time it was given was gone before it
    /// could start (spent in a queue, or a caller's deadline that had already passed), so it is
    /// the caller's deadline that was exceeded.
    ///
    /// # Errors
    /// [`ResilienceError::DeadlineExceeded`] when the deadline has been reached at `now`.
    pub const fn check_start<E>(self, now: Instant) -> Result<(), ResilienceError<E>> {
        if self.context.is_expired(now) {
            Err(ResilienceError::DeadlineExceeded)
        } else {
            Ok(())
        }
    }

    /// The error of a call (or attempt) whose deadline passed while it ran: see
    /// [`DeadlineBound::expiry_error`].
    #[must_use]
    pub const fn expiry_error<E>(self) -> ResilienceError<E> {
        self.bound.expiry_error()
    }
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
    /// An attempt's own timeout, earlier than the call's deadline
    /// ([`ResolvedDeadline::for_attempt`]; never from [`TimeoutConfig::resolve`]).
    Attempt,
}

impl DeadlineBound {
    /// The error of a call whose deadline, set by this bound, passed while it ran:
    /// [`ResilienceError::DeadlineExceeded`] for [`Parent`](Self::Parent) (the caller's time ran
    /// out), [`ResilienceError::Timeout`] for the call's own bounds (it took too long).
    #[must_use]
    pub const fn expiry_error<E>(self) -> ResilienceError<E> {
        match self {
            DeadlineBound::Parent => ResilienceError::DeadlineExceeded,
            DeadlineBound::Requested
            | DeadlineBound::Default
            | DeadlineBound::MaxTimeout
            | DeadlineBound::Attempt => ResilienceError::Timeout,
        }
    }
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

    #[test]
    fn a_parents_deadline_is_deadline_exceeded_and_the_calls_own_a_timeout() {
        type E = ResilienceError<()>;
        for bound in [
            DeadlineBound::Requested,
            DeadlineBound::Default,
            DeadlineBound::MaxTimeout,
            DeadlineBound::Attempt,
        ] {
            assert_eq!(bound.expiry_error::<()>(), E::Timeout, "{bound:?}");
        }
        assert_eq!(
            DeadlineBound::Parent.expiry_error::<()>(),
            E::DeadlineExceeded
        );
        let parent = ResolvedDeadline::parent(DeadlineContext::at(secs(5)));
        assert_eq!(parent.bound, DeadlineBound::Parent);
        assert_eq!(parent.expiry_error::<()>(), E::DeadlineExceeded);
    }

    #[test]
    fn a_call_found_expired_before_it_starts_is_deadline_exceeded_whatever_the_bound() {
        // Queued for 10 s with a 5 s timeout that counts the queue: its own bound, yet it never
        // ran, so the time was gone before it started.
        let queued = config(true, true).resolve(Some(5 * S), None, secs(100), secs(110));
        assert_eq!(queued.bound, DeadlineBound::Requested);
        assert_eq!(
            queued.check_start::<()>(secs(110)),
            Err(ResilienceError::DeadlineExceeded)
        );
        assert_eq!(queued.check_start::<()>(secs(104)), Ok(()));
        // A zero request (a wire deadline with nothing left) is expired at once.
        let zero = config(true, false).resolve(Some(Duration::ZERO), None, secs(1), secs(1));
        assert_eq!(
            zero.check_start::<()>(secs(1)),
            Err(ResilienceError::DeadlineExceeded)
        );
    }

    #[test]
    fn an_attempt_is_cut_by_the_earlier_of_its_timeout_and_the_calls_deadline() {
        let call = config(true, false).resolve(None, None, secs(100), secs(100)); // 130 s
        let short = ResolvedDeadline::for_attempt(Some(call), secs(100), 5 * S);
        assert_eq!(
            (short.context.deadline(), short.bound),
            (secs(105), DeadlineBound::Attempt)
        );
        // Late in the call, the call's deadline comes first and keeps its bound; a tie too.
        let late = ResolvedDeadline::for_attempt(Some(call), secs(128), 5 * S);
        assert_eq!(late, call);
        let tie = ResolvedDeadline::for_attempt(Some(call), secs(125), 5 * S);
        assert_eq!(tie, call);
        // Under a caller's deadline it is the caller's error.
        let parent = ResolvedDeadline::parent(DeadlineContext::at(secs(102)));
        let cut = ResolvedDeadline::for_attempt(Some(parent), secs(100), 5 * S);
        assert_eq!(cut.expiry_error::<()>(), ResilienceError::DeadlineExceeded);
        // No call deadline: the attempt's own, saturating.
        let alone = ResolvedDeadline::for_attempt(None, Instant::MAX, Duration::MAX);
        assert_eq!(
            (alone.context.deadline(), alone.bound),
            (Instant::MAX, DeadlineBound::Attempt)
        );
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
            DeadlineBound::Attempt,
        ] {
            let bytes = postcard::to_slice(&bound, &mut buf).expect("fits");
            assert_eq!(
                postcard::from_bytes::<DeadlineBound>(bytes).expect("decodes"),
                bound
            );
        }
    }
}
