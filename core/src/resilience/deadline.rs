//! Deadlines: an absolute point in time by which a call and everything it calls must finish.
//!
//! A [`DeadlineContext`] is one [`Instant`] on the adapter's clock. It is `Copy`, so it travels
//! with a request through a chain of kernel-to-kernel calls; each hop derives a child with
//! [`DeadlineContext::child_with_timeout`], which can shorten the budget but never extend it.
//!
//! Every method takes `now`; the core never reads a clock. The adapters (`rustkernel-tokio`,
//! `rustkernel-embassy`) add the chapter's clock-reading forms (`DeadlineContext::new(timeout)`,
//! `remaining()`, `execute(..)`).
//!
//! # On the wire
//! Two machines do not share a clock, so an absolute deadline means nothing to the receiver.
//! As gRPC does with its `grpc-timeout` header, a deadline crosses a boundary as the time that
//! *remains* ([`DeadlineContext::to_wire`], [`WireDeadline`]); the receiver adds it to its own
//! `now` ([`DeadlineContext::from_wire`]). The time in flight is therefore not deducted, which
//! errs on the side of the receiver having slightly more time than the sender believes.
//! For that reason [`DeadlineContext`] itself has no serde support: only [`WireDeadline`] does.
//!
//! ```
//! use core::time::Duration;
//! use rustkernel_core::resilience::DeadlineContext;
//! use rustkernel_core::time::Instant;
//!
//! let now = Instant::from_secs(100);
//! let deadline = DeadlineContext::new(now, Duration::from_secs(10));
//! assert_eq!(deadline.remaining(now), Duration::from_secs(10));
//!
//! // A child for a downstream call never outlives its parent.
//! let later = now + Duration::from_secs(8);
//! let child = deadline.child_with_timeout(later, Duration::from_secs(5));
//! assert_eq!(child.deadline(), deadline.deadline());
//! assert_eq!(child.remaining(later), Duration::from_secs(2));
//!
//! // Past the deadline, nothing remains and `check` fails.
//! let late = now + Duration::from_secs(11);
//! assert!(deadline.is_expired(late));
//! assert!(deadline.check(late).is_err());
//! ```

use core::fmt;
use core::time::Duration;

use crate::error::{Classify, ErrorKind, ResilienceError};
use crate::time::{Instant, duration_as_micros};

/// An absolute deadline on the adapter's monotonic clock.
///
/// Method families: constructors take `now` and a timeout ([`new`](Self::new),
/// [`child_with_timeout`](Self::child_with_timeout), [`from_wire`](Self::from_wire)) or an
/// instant ([`at`](Self::at)); queries take `now` ([`remaining`](Self::remaining),
/// [`is_expired`](Self::is_expired), [`check`](Self::check), [`to_wire`](Self::to_wire)).
///
/// A deadline is expired from the instant it names onwards (`now >= deadline`), which is exactly
/// when [`remaining`](Self::remaining) is zero. [`Instant::MAX`] serves as "no deadline".
/// Durations are counted in whole microseconds, like [`Instant`]; a fraction of a microsecond in
/// a timeout is dropped, so a deadline is never later than asked for.
///
/// Ordering compares the instants: the lesser of two contexts is the earlier, stricter deadline.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash)]
#[cfg_attr(feature = "defmt", derive(defmt::Format))]
pub struct DeadlineContext {
    deadline: Instant,
}

impl DeadlineContext {
    /// A deadline `timeout` after `now`, stopping at [`Instant::MAX`] (so `Duration::MAX` means "never").
    #[must_use]
    pub const fn new(now: Instant, timeout: Duration) -> Self {
        Self {
            deadline: now.saturating_add(timeout),
        }
    }

    /// A deadline at the given instant.
    #[must_use]
    pub const fn at(deadline: Instant) -> Self {
        Self { deadline }
    }

    /// The instant at which the deadline expires.
    #[must_use]
    pub const fn deadline(self) -> Instant {
        self.deadline
    }

    /// Time left before the deadline; zero once it has been reached.
    ///
    /// A `now` that went backwards gives more time, never a panic.
    #[must_use]
    pub const fn remaining(self, now: Instant) -> Duration {
        self.deadline.saturating_duration_since(now)
    }

    /// Whether the deadline has been reached (`now >= deadline`).
    #[must_use]
    pub const fn is_expired(self, now: Instant) -> bool {
        now.as_micros() >= self.deadline.as_micros()
    }

    /// `Ok(())` while time remains, [`DeadlineExceeded`] once the deadline has been reached.
    ///
    /// # Errors
    /// [`DeadlineExceeded`] when [`is_expired`](Self::is_expired) is true.
    pub const fn check(self, now: Instant) -> Result<(), DeadlineExceeded> {
        if self.is_expired(now) {
            Err(DeadlineExceeded)
        } else {
            Ok(())
        }
    }

    /// A deadline for a downstream call: `timeout` from `now`, but never later than this one.
    ///
    /// The child is the earlier of `self.deadline()` and `now + timeout`, so a chain of children
    /// can only shrink the budget, whatever timeouts each hop asks for.
    #[must_use]
    pub const fn child_with_timeout(self, now: Instant, timeout: Duration) -> Self {
        let own = now.saturating_add(timeout);
        if own.as_micros() < self.deadline.as_micros() {
            Self { deadline: own }
        } else {
            self
        }
    }

    /// The deadline as it crosses the wire: the time that remains at `now` (zero once expired).
    ///
    /// Relative, as gRPC's `grpc-timeout` is, because the receiver's clock has another epoch.
    /// The result is a whole number of microseconds; wrap it in a [`WireDeadline`] to serialize.
    #[must_use]
    pub const fn to_wire(self, now: Instant) -> Duration {
        self.remaining(now)
    }

    /// The deadline received from the wire: `remaining` from the receiver's `now`.
    ///
    /// With a shared clock, `from_wire(d.to_wire(now), now) == d` for every deadline not yet
    /// expired at `now`; an expired one comes back expired (at `now`).
    #[must_use]
    pub const fn from_wire(remaining: Duration, now: Instant) -> Self {
        Self::new(now, remaining)
    }
}

/// A deadline in transit: the microseconds that remained when it was sent.
///
/// This is the serde form of a deadline (see the [module docs](self)); postcard encodes it as one
/// varint. The sender builds it with [`WireDeadline::from_deadline`] (or
/// [`DeadlineContext::to_wire`] and `.into()`, or [`WireDeadline::from_remaining`] from a clock
/// of its own); the receiver turns it back with [`WireDeadline::deadline_at`] (or
/// [`WireDeadline::remaining`] and [`DeadlineContext::from_wire`]).
///
/// ```
/// use core::time::Duration;
/// use rustkernel_core::resilience::{DeadlineContext, WireDeadline};
/// use rustkernel_core::time::Instant;
///
/// let sent_at = Instant::from_secs(7);
/// let wire: WireDeadline = DeadlineContext::new(sent_at, Duration::from_millis(250))
///     .to_wire(sent_at)
///     .into();
/// assert_eq!(wire.remaining_micros, 250_000);
///
/// // The receiver's clock has another epoch.
/// let received_at = Instant::from_secs(1_000);
/// let deadline = DeadlineContext::from_wire(wire.remaining(), received_at);
/// assert_eq!(deadline.remaining(received_at), Duration::from_millis(250));
///
/// // The same in one call on each side.
/// let sent = DeadlineContext::at(Instant::from_secs(8));
/// let wire = WireDeadline::from_deadline(sent, sent_at);
/// assert_eq!(wire.remaining(), Duration::from_secs(1));
/// assert_eq!(wire.deadline_at(received_at).deadline(), Instant::from_secs(1_001));
/// assert!(WireDeadline::from_deadline(sent, Instant::from_secs(9)).is_expired());
/// ```
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, PartialOrd, Ord, Hash)]
#[cfg_attr(feature = "serde", derive(serde::Serialize, serde::Deserialize))]
#[cfg_attr(feature = "defmt", derive(defmt::Format))]
pub struct WireDeadline {
    /// Whole microseconds left before the deadline when it was sent; zero means already expired.
    pub remaining_micros: u64,
}

impl WireDeadline {
    /// The wire form of `remaining`, in whole microseconds, saturating at `u64::MAX`.
    #[must_use]
    pub const fn from_remaining(remaining: Duration) -> Self {
        Self {
            remaining_micros: duration_as_micros(remaining),
        }
    }

    /// The remaining time this frame carries.
    #[must_use]
    pub const fn remaining(self) -> Duration {
        crate::time::duration_from_micros(self.remaining_micros)
    }

    /// What the sender writes: the time `deadline` has left at the sender's `now` (zero once
    /// it has passed). "No deadline" ([`Instant::MAX`]) is sent as `u64::MAX` microseconds,
    /// which stays "no deadline" on any receiver's clock.
    #[must_use]
    pub const fn from_deadline(deadline: DeadlineContext, now: Instant) -> Self {
        if deadline.deadline().as_micros() == Instant::MAX.as_micros() {
            Self {
                remaining_micros: u64::MAX,
            }
        } else {
            Self::from_remaining(deadline.to_wire(now))
        }
    }

    /// What the receiver runs under: the remaining time counted from the receiver's own `now`
    /// (saturating, so `u64::MAX` microseconds stays "no deadline").
    #[must_use]
    pub const fn deadline_at(self, now: Instant) -> DeadlineContext {
        DeadlineContext::from_wire(self.remaining(), now)
    }

    /// Whether nothing was left when it was sent: the receiver should answer
    /// `DeadlineExceeded` without starting the work (see
    /// [`ResolvedDeadline::check_start`](super::ResolvedDeadline::check_start)).
    #[must_use]
    pub const fn is_expired(self) -> bool {
        self.remaining_micros == 0
    }
}

impl From<Duration> for WireDeadline {
    fn from(remaining: Duration) -> Self {
        Self::from_remaining(remaining)
    }
}

impl From<WireDeadline> for Duration {
    fn from(wire: WireDeadline) -> Self {
        wire.remaining()
    }
}

/// The deadline was reached before the work finished or started.
///
/// A unit value, so the chapter's `return Err(DeadlineExceeded);` compiles. It classifies as
/// [`ErrorKind::Timeout`] and converts (`?`, `into`) to [`ResilienceError::DeadlineExceeded`].
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Hash)]
#[cfg_attr(feature = "serde", derive(serde::Serialize, serde::Deserialize))]
#[cfg_attr(feature = "defmt", derive(defmt::Format))]
pub struct DeadlineExceeded;

impl<E> From<DeadlineExceeded> for ResilienceError<E> {
    fn from(_: DeadlineExceeded) -> Self {
        ResilienceError::DeadlineExceeded
    }
}

impl fmt::Display for DeadlineExceeded {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("deadline exceeded")
    }
}

impl core::error::Error for DeadlineExceeded {}

impl Classify for DeadlineExceeded {
    fn kind(&self) -> ErrorKind {
        ErrorKind::Timeout
    }
}

#[cfg(test)]
mod tests {
    extern crate std;
    use super::*;
    use std::string::ToString;

    const S: Duration = Duration::from_secs(1);

    #[test]
    fn new_adds_the_timeout_and_saturates() {
        let now = Instant::from_secs(10);
        assert_eq!(
            DeadlineContext::new(now, 5 * S).deadline(),
            Instant::from_secs(15)
        );
        assert_eq!(
            DeadlineContext::new(now, Duration::MAX).deadline(),
            Instant::MAX
        );
        assert_eq!(
            DeadlineContext::new(Instant::MAX, S).deadline(),
            Instant::MAX
        );
        assert_eq!(
            DeadlineContext::at(Instant::from_secs(3)).deadline(),
            Instant::from_secs(3)
        );
    }

    #[test]
    fn remaining_counts_down_to_zero_and_expiry_starts_at_the_deadline() {
        let d = DeadlineContext::at(Instant::from_secs(10));
        assert_eq!(d.remaining(Instant::from_secs(4)), 6 * S);
        assert!(!d.is_expired(Instant::from_micros(9_999_999)));
        assert_eq!(d.check(Instant::from_micros(9_999_999)), Ok(()));
        assert_eq!(d.remaining(Instant::from_secs(10)), Duration::ZERO);
        assert!(d.is_expired(Instant::from_secs(10)));
        assert_eq!(d.check(Instant::from_secs(10)), Err(DeadlineExceeded));
        assert_eq!(d.remaining(Instant::MAX), Duration::ZERO);
        // The clock going backwards only gives more time.
        assert_eq!(d.remaining(Instant::ZERO), 10 * S);
    }

    #[test]
    fn children_never_outlive_their_parent() {
        let now = Instant::from_secs(100);
        let parent = DeadlineContext::new(now, 10 * S);
        assert_eq!(
            parent.child_with_timeout(now, 5 * S).deadline(),
            Instant::from_secs(105)
        );
        assert_eq!(parent.child_with_timeout(now, 60 * S), parent);
        assert_eq!(parent.child_with_timeout(now, Duration::MAX), parent);
        assert_eq!(parent.child_with_timeout(Instant::MAX, S), parent);
        // An expired parent stays expired for the child.
        let late = Instant::from_secs(200);
        assert!(parent.child_with_timeout(late, 60 * S).is_expired(late));
    }

    #[test]
    fn sub_microsecond_timeouts_round_down() {
        let now = Instant::from_secs(1);
        let d = DeadlineContext::new(now, Duration::from_nanos(1_999));
        assert_eq!(d.deadline(), Instant::from_micros(1_000_001));
    }

    #[test]
    fn wire_round_trip_is_exact_on_a_shared_clock() {
        let now = Instant::from_secs(50);
        for d in [
            DeadlineContext::at(Instant::from_secs(50)),
            DeadlineContext::at(Instant::from_micros(50_000_001)),
            DeadlineContext::at(Instant::MAX),
        ] {
            assert_eq!(DeadlineContext::from_wire(d.to_wire(now), now), d);
        }
        let expired = DeadlineContext::at(Instant::from_secs(1));
        assert_eq!(expired.to_wire(now), Duration::ZERO);
        assert!(DeadlineContext::from_wire(expired.to_wire(now), now).is_expired(now));
        // Another epoch on the receiving side keeps the remaining time.
        let there = Instant::from_secs(9_000);
        let sent = DeadlineContext::new(now, 3 * S);
        assert_eq!(
            DeadlineContext::from_wire(sent.to_wire(now), there).remaining(there),
            3 * S
        );
    }

    #[test]
    fn wire_deadline_converts_both_ways() {
        let wire = WireDeadline::from(Duration::from_millis(1_500));
        assert_eq!(wire.remaining_micros, 1_500_000);
        assert_eq!(Duration::from(wire), Duration::from_millis(1_500));
        assert_eq!(WireDeadline::from(Duration::MAX).remaining_micros, u64::MAX);
    }

    #[test]
    fn wire_deadline_from_and_to_a_deadline() {
        let now = Instant::from_secs(10);
        let d = DeadlineContext::at(Instant::from_micros(10_250_000));
        let wire = WireDeadline::from_deadline(d, now);
        assert_eq!(wire.remaining_micros, 250_000);
        assert!(!wire.is_expired());
        assert_eq!(wire.deadline_at(now), d);
        let there = Instant::from_secs(77);
        assert_eq!(wire.deadline_at(there).remaining(there), wire.remaining());
        // Expired: zero, and expired on arrival.
        let late = WireDeadline::from_deadline(d, Instant::from_secs(11));
        assert!(late.is_expired());
        assert!(late.deadline_at(there).is_expired(there));
        // No deadline stays none, whatever the receiver's clock.
        let never = WireDeadline::from_deadline(DeadlineContext::at(Instant::MAX), now);
        assert_eq!(never.remaining_micros, u64::MAX);
        assert_eq!(never.deadline_at(Instant::ZERO).deadline(), Instant::MAX);
        assert_eq!(never.deadline_at(there).deadline(), Instant::MAX);
    }

    #[test]
    fn deadline_exceeded_reads_and_converts() {
        assert_eq!(DeadlineExceeded.to_string(), "deadline exceeded");
        assert_eq!(DeadlineExceeded.kind(), ErrorKind::Timeout);
        let err: ResilienceError<ErrorKind> = DeadlineExceeded.into();
        assert_eq!(err, ResilienceError::DeadlineExceeded);
    }

    #[test]
    fn the_lesser_context_is_the_earlier_deadline() {
        let a = DeadlineContext::at(Instant::from_secs(1));
        let b = DeadlineContext::at(Instant::from_secs(2));
        assert_eq!(a.min(b), a);
    }

    #[cfg(feature = "serde")]
    #[test]
    fn wire_deadline_and_error_round_trip_through_postcard() {
        let mut buf = [0u8; 16];
        for micros in [0, 1, 250_000, u64::MAX] {
            let wire = WireDeadline {
                remaining_micros: micros,
            };
            let bytes = postcard::to_slice(&wire, &mut buf).expect("fits");
            assert_eq!(
                postcard::from_bytes::<WireDeadline>(bytes).expect("decodes"),
                wire
            );
        }
        let bytes = postcard::to_slice(&DeadlineExceeded, &mut buf).expect("fits");
        assert_eq!(
            postcard::from_bytes::<DeadlineExceeded>(bytes).expect("decodes"),
            DeadlineExceeded
        );
    }
}
