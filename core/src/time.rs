//! Monotonic time as the core sees it: an [`Instant`] passed in by the adapter.
//!
//! The core never reads a clock. Adapters (tokio, embassy) read theirs and hand the result to
//! every input method as `now`. An [`Instant`] counts microseconds since an epoch the adapter
//! chooses (process start, boot), so it is only comparable with instants from the same adapter.
//! Durations are [`core::time::Duration`], as in the chapter. Every operation saturates: adding
//! [`Duration::MAX`], subtracting a later instant or passing a `now` that went backwards never
//! wraps and never panics.

use core::fmt;
use core::ops::{Add, Sub};
use core::time::Duration;

/// A point on the adapter's monotonic clock, in microseconds since its epoch.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, PartialOrd, Ord, Hash)]
#[cfg_attr(feature = "serde", derive(serde::Serialize, serde::Deserialize))]
#[cfg_attr(feature = "defmt", derive(defmt::Format))]
pub struct Instant {
    micros: u64,
}

impl Instant {
    /// The epoch itself.
    pub const ZERO: Self = Self { micros: 0 };
    /// The latest representable instant; "never" for deadlines (see
    /// [`is_reached_at`](Self::is_reached_at)).
    pub const MAX: Self = Self { micros: u64::MAX };

    /// An instant `micros` microseconds after the epoch.
    #[must_use]
    pub const fn from_micros(micros: u64) -> Self {
        Self { micros }
    }

    /// An instant `millis` milliseconds after the epoch (saturating).
    #[must_use]
    pub const fn from_millis(millis: u64) -> Self {
        Self {
            micros: millis.saturating_mul(1_000),
        }
    }

    /// An instant `secs` seconds after the epoch (saturating).
    #[must_use]
    pub const fn from_secs(secs: u64) -> Self {
        Self {
            micros: secs.saturating_mul(1_000_000),
        }
    }

    /// Microseconds since the epoch.
    #[must_use]
    pub const fn as_micros(self) -> u64 {
        self.micros
    }

    /// `self + duration`, stopping at [`Instant::MAX`].
    #[must_use]
    pub const fn saturating_add(self, duration: Duration) -> Self {
        Self {
            micros: self.micros.saturating_add(duration_as_micros(duration)),
        }
    }

    /// `self + duration` with `duration` rounded UP to whole microseconds, stopping at
    /// [`Instant::MAX`]: the instant at which a timer of `duration` started at `self` may fire,
    /// never before the whole duration has passed.
    #[must_use]
    pub const fn saturating_add_ceil(self, duration: Duration) -> Self {
        let mut micros = duration_as_micros(duration);
        if !duration.subsec_nanos().is_multiple_of(1_000) {
            micros = micros.saturating_add(1);
        }
        Self {
            micros: self.micros.saturating_add(micros),
        }
    }

    /// `self - duration`, stopping at [`Instant::ZERO`].
    #[must_use]
    pub const fn saturating_sub(self, duration: Duration) -> Self {
        Self {
            micros: self.micros.saturating_sub(duration_as_micros(duration)),
        }
    }

    /// Whether a deadline at `self` has been reached at `now`: `now >= self`, except that
    /// [`Instant::MAX`] is never reached. A deadline computed with the saturating additions
    /// stops at `Instant::MAX` when it lies beyond the end of the clock, so there it means
    /// "never", and a clock that reaches its last value does not fire it.
    #[must_use]
    pub const fn is_reached_at(self, now: Self) -> bool {
        self.micros != u64::MAX && now.micros >= self.micros
    }

    /// Time from `earlier` to `self`, or zero when `earlier` is later (clock went backwards).
    #[must_use]
    pub const fn saturating_duration_since(self, earlier: Self) -> Duration {
        duration_from_micros(self.micros.saturating_sub(earlier.micros))
    }

    /// Time from `earlier` to `self`, or `None` when `earlier` is later.
    #[must_use]
    pub const fn checked_duration_since(self, earlier: Self) -> Option<Duration> {
        match self.micros.checked_sub(earlier.micros) {
            Some(micros) => Some(duration_from_micros(micros)),
            None => None,
        }
    }
}

/// Saturating: `Instant::MAX + anything == Instant::MAX`.
impl Add<Duration> for Instant {
    type Output = Instant;
    fn add(self, rhs: Duration) -> Instant {
        self.saturating_add(rhs)
    }
}

/// Saturating: never earlier than [`Instant::ZERO`].
impl Sub<Duration> for Instant {
    type Output = Instant;
    fn sub(self, rhs: Duration) -> Instant {
        self.saturating_sub(rhs)
    }
}

/// Saturating: zero when `rhs` is later than `self`.
impl Sub<Instant> for Instant {
    type Output = Duration;
    fn sub(self, rhs: Instant) -> Duration {
        self.saturating_duration_since(rhs)
    }
}

impl fmt::Display for Instant {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(
            f,
            "{}.{:06}s",
            self.micros / 1_000_000,
            self.micros % 1_000_000
        )
    }
}

/// Whole microseconds in `duration`, truncating below a microsecond and saturating at `u64::MAX`.
#[must_use]
pub const fn duration_as_micros(duration: Duration) -> u64 {
    // In u64: `Duration::as_micros` multiplies in u128, which costs more on the clock-reading
    // paths of the adapters.
    match duration.as_secs().checked_mul(1_000_000) {
        Some(micros) => micros.saturating_add(duration.subsec_micros() as u64),
        None => u64::MAX,
    }
}

/// `micros` microseconds as a [`Duration`], as [`Duration::from_micros`].
///
/// On a target of 64-bit pointers that is `Duration::from_micros` (a multiplication there). On
/// smaller ones it takes 32-bit divisions only: a Cortex-M has no 64-bit division, and the
/// library routine (`__aeabi_uldivmod`) that `Duration::from_micros` calls costs about 900 bytes
/// of flash on the firmware's paths that measure elapsed time.
#[must_use]
pub const fn duration_from_micros(micros: u64) -> Duration {
    if cfg!(target_pointer_width = "64") {
        Duration::from_micros(micros)
    } else {
        from_micros_in_32_bits(micros)
    }
}

/// [`duration_from_micros`] by long division by 10^6 in 12-bit digits: every partial dividend
/// stays below `10^6 x 2^12 < 2^32`.
const fn from_micros_in_32_bits(micros: u64) -> Duration {
    const PER_SECOND: u32 = 1_000_000;
    let mut secs = 0u64;
    let mut rest = 0u32;
    let mut shift = 60;
    loop {
        // 12 bits: the cast cannot truncate.
        #[allow(clippy::cast_possible_truncation, reason = "masked to 12 bits")]
        let digit = ((micros >> shift) & 0xfff) as u32;
        let dividend = rest * 4_096 + digit;
        secs = (secs << 12) | (dividend / PER_SECOND) as u64;
        rest = dividend % PER_SECOND;
        if shift == 0 {
            break;
        }
        shift -= 12;
    }
    // `rest < 10^6`: whole nanoseconds below a second, no carry.
    Duration::new(secs, rest * 1_000)
}

/// `duration * n`, saturating at [`Duration::MAX`].
///
/// On a target of 64-bit pointers that is `Duration::checked_mul`. On smaller ones it doubles
/// and adds, with no 64-bit division (`Duration::checked_mul` divides its nanoseconds by 10^9,
/// which a Cortex-M does in a library routine of about 900 bytes of flash).
#[must_use]
pub(crate) const fn duration_saturating_mul(duration: Duration, n: u32) -> Duration {
    if cfg!(target_pointer_width = "64") {
        match duration.checked_mul(n) {
            Some(product) => product,
            None => Duration::MAX,
        }
    } else {
        mul_by_doubling(duration, n)
    }
}

/// [`duration_saturating_mul`] by at most 32 doublings and 32 additions.
const fn mul_by_doubling(duration: Duration, n: u32) -> Duration {
    let mut product = Duration::ZERO;
    let mut addend = duration;
    let mut rest = n;
    while rest > 0 {
        if rest & 1 == 1 {
            product = match product.checked_add(addend) {
                Some(sum) => sum,
                None => return Duration::MAX,
            };
        }
        rest >>= 1;
        if rest > 0 {
            addend = match addend.checked_add(addend) {
                Some(double) => double,
                None => return Duration::MAX,
            };
        }
    }
    product
}

/// `a < b` in a `const fn` (the `Ord` of `Duration` is not `const`).
pub(crate) const fn duration_lt(a: Duration, b: Duration) -> bool {
    a.as_secs() < b.as_secs() || (a.as_secs() == b.as_secs() && a.subsec_nanos() < b.subsec_nanos())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn arithmetic_saturates_at_both_ends() {
        assert_eq!(Instant::MAX + Duration::from_secs(1), Instant::MAX);
        assert_eq!(Instant::from_micros(5) + Duration::MAX, Instant::MAX);
        assert_eq!(
            Instant::from_micros(5) - Duration::from_secs(1),
            Instant::ZERO
        );
        assert_eq!(
            Instant::from_micros(5) - Instant::from_micros(9),
            Duration::ZERO
        );
        assert_eq!(
            Instant::from_micros(5).checked_duration_since(Instant::from_micros(9)),
            None
        );
        assert_eq!(Instant::from_secs(u64::MAX), Instant::MAX);
        assert_eq!(
            Instant::MAX.saturating_add_ceil(Duration::from_nanos(1)),
            Instant::MAX
        );
    }

    #[test]
    fn the_last_instant_is_never_reached_as_a_deadline() {
        let last_but_one = Instant::from_micros(u64::MAX - 1);
        assert!(last_but_one.is_reached_at(last_but_one));
        assert!(last_but_one.is_reached_at(Instant::MAX));
        assert!(!last_but_one.is_reached_at(Instant::from_micros(u64::MAX - 2)));
        assert!(!Instant::MAX.is_reached_at(Instant::MAX));
        assert!(Instant::ZERO.is_reached_at(Instant::ZERO));
        let saturated = Instant::MAX - Duration::from_secs(1) + Duration::from_secs(2);
        assert!(!saturated.is_reached_at(Instant::MAX));
    }

    #[test]
    fn timers_round_up_to_whole_microseconds() {
        let t = Instant::from_micros(10);
        assert_eq!(
            t.saturating_add_ceil(Duration::from_nanos(1)),
            Instant::from_micros(11)
        );
        assert_eq!(
            t.saturating_add_ceil(Duration::from_nanos(1_500)),
            Instant::from_micros(12)
        );
        assert_eq!(
            t.saturating_add_ceil(Duration::from_micros(3)),
            Instant::from_micros(13)
        );
        assert_eq!(t.saturating_add_ceil(Duration::MAX), Instant::MAX);
    }

    #[test]
    fn durations_from_micros_as_the_standard_library_makes_them() {
        extern crate std;
        let mut samples = std::vec![0, 1, 999_999, 1_000_000, 1_000_001, 4_095_999_999, u64::MAX];
        // Every bit alone, and below it all ones: the carries between the 12-bit digits.
        for bit in 0..64 {
            samples.push(1 << bit);
            samples.push((1 << bit) - 1);
            samples.push(u64::MAX >> bit);
        }
        // A spread of others (a fixed xorshift stream).
        let mut x = 0x9e37_79b9_7f4a_7c15_u64;
        for _ in 0..10_000 {
            x ^= x << 13;
            x ^= x >> 7;
            x ^= x << 17;
            samples.push(x);
            samples.push(x >> 20);
        }
        for micros in samples {
            assert_eq!(
                from_micros_in_32_bits(micros),
                Duration::from_micros(micros),
                "{micros}"
            );
            assert_eq!(duration_from_micros(micros), Duration::from_micros(micros));
        }
    }

    #[test]
    fn durations_multiply_as_checked_mul_does_and_saturate() {
        let samples = [
            Duration::ZERO,
            Duration::from_nanos(1),
            Duration::from_nanos(999_999_999),
            Duration::from_millis(20),
            Duration::new(3, 700_000_001),
            Duration::new(u64::MAX / 7, 123_456_789),
            Duration::MAX,
        ];
        for duration in samples {
            for n in [0, 1, 2, 3, 7, 10, 1_000, 65_537, u32::MAX - 1, u32::MAX] {
                let expected = duration.checked_mul(n).unwrap_or(Duration::MAX);
                assert_eq!(
                    duration_saturating_mul(duration, n),
                    expected,
                    "{duration:?} x {n}"
                );
            }
        }
    }

    #[test]
    fn durations_convert_to_whole_microseconds() {
        assert_eq!(duration_as_micros(Duration::from_nanos(1_999)), 1);
        assert_eq!(duration_as_micros(Duration::MAX), u64::MAX);
        assert_eq!(
            Instant::from_millis(1_500) - Instant::from_secs(1),
            Duration::from_millis(500)
        );
    }

    #[test]
    fn display_shows_seconds_with_micros() {
        extern crate std;
        use std::string::ToString;
        assert_eq!(Instant::from_micros(1_000_042).to_string(), "1.000042s");
    }
}
