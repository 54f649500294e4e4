//! A small seeded pseudo-random number generator for jitter.
//!
//! The core has no entropy source of its own: the seed is an input. A host adapter seeds from the
//! operating system, firmware from a device id or a hardware RNG, so a fleet of callers never
//! retries in lockstep, and a test that fixes the seed sees the same delays on every run.
//!
//! The generator is SplitMix64 (Steele, Lea and Flood, "Fast splittable pseudorandom number
//! generators", OOPSLA 2014; constants as in Vigna's public-domain reference `splitmix64.c`): one
//! `u64` of state, every seed (zero included) gives a full-period stream, and it is cheap on a
//! 32-bit MCU. It is not cryptographic and must not be used where an attacker may predict jitter
//! to their advantage.
//!
//! ```
//! use core::time::Duration;
//! use rustkernel_core::rng::Rng;
//!
//! let mut a = Rng::new(42);
//! let mut b = Rng::new(42);
//! assert_eq!(a.next_u64(), b.next_u64());
//! let d = a.duration_in(Duration::from_millis(10), Duration::from_millis(20));
//! assert!(d >= Duration::from_millis(10) && d <= Duration::from_millis(20));
//! ```

use core::time::Duration;

use crate::time::duration_as_micros;

/// Golden-ratio increment of SplitMix64.
const GAMMA: u64 = 0x9E37_79B9_7F4A_7C15;

/// A seeded SplitMix64 generator; `Copy`, so a state machine can carry its own stream.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
#[cfg_attr(feature = "serde", derive(serde::Serialize, serde::Deserialize))]
#[cfg_attr(feature = "defmt", derive(defmt::Format))]
pub struct Rng {
    state: u64,
}

impl Rng {
    /// A generator whose stream is fixed by `seed`.
    #[must_use]
    pub const fn new(seed: u64) -> Self {
        Self { state: seed }
    }

    /// The next 64 uniformly distributed bits.
    pub fn next_u64(&mut self) -> u64 {
        self.state = self.state.wrapping_add(GAMMA);
        let mut z = self.state;
        z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
        z ^ (z >> 31)
    }

    /// A value in `0..bound` (zero when `bound` is zero).
    ///
    /// Uses the 128-bit multiply-shift of Lemire ("Fast Random Integer Generation in an
    /// Interval", 2019) without the rejection step: constant time, and no value is more likely
    /// than another by more than `bound / 2^64`, far below anything a backoff can notice.
    pub fn below(&mut self, bound: u64) -> u64 {
        let product = u128::from(self.next_u64()) * u128::from(bound);
        // The high half of a u64 x u64 product always fits in a u64.
        u64::try_from(product >> 64).unwrap_or(u64::MAX)
    }

    /// A value in `0..=max`, uniform as [`Rng::below`].
    pub fn up_to(&mut self, max: u64) -> u64 {
        match max.checked_add(1) {
            Some(bound) => self.below(bound),
            None => self.next_u64(),
        }
    }

    /// A duration in `low..=high`, uniform to the nanosecond; `low` when `high < low`.
    ///
    /// Spans longer than `u64::MAX` nanoseconds (about 584 years) are drawn to the microsecond,
    /// and spans longer than `u64::MAX` microseconds stop at that length: the result never
    /// leaves `low..=high`, it just stops being uniform in spans no backoff uses.
    pub fn duration_in(&mut self, low: Duration, high: Duration) -> Duration {
        let Some(span) = high.checked_sub(low) else {
            return low;
        };
        let offset = match u64::try_from(span.as_nanos()) {
            Ok(nanos) => Duration::from_nanos(self.up_to(nanos)),
            Err(_) => Duration::from_micros(self.up_to(duration_as_micros(span))),
        };
        low.saturating_add(offset)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn matches_the_splitmix64_reference_stream() {
        // First outputs of Vigna's splitmix64.c seeded with 1234567.
        let mut rng = Rng::new(1_234_567);
        assert_eq!(rng.next_u64(), 6_457_827_717_110_365_317);
        assert_eq!(rng.next_u64(), 3_203_168_211_198_807_973);
        assert_eq!(rng.next_u64(), 9_817_491_932_198_370_423);
    }

    #[test]
    fn same_seed_same_stream_other_seed_other_stream() {
        let mut a = Rng::new(7);
        let mut b = Rng::new(7);
        let mut c = Rng::new(8);
        let mut differs = false;
        for _ in 0..16 {
            let x = a.next_u64();
            assert_eq!(x, b.next_u64());
            differs |= x != c.next_u64();
        }
        assert!(differs);
    }

    #[test]
    fn ranges_hold_at_the_limits() {
        let mut rng = Rng::new(0);
        for _ in 0..1_000 {
            assert_eq!(rng.below(0), 0);
            assert_eq!(rng.below(1), 0);
            assert!(rng.below(3) < 3);
            assert!(rng.up_to(5) <= 5);
            let _ = rng.up_to(u64::MAX);
            let low = Duration::from_millis(3);
            let high = Duration::from_millis(4);
            let d = rng.duration_in(low, high);
            assert!(low <= d && d <= high);
            assert_eq!(rng.duration_in(high, low), high);
            assert_eq!(rng.duration_in(low, low), low);
            let d = rng.duration_in(Duration::ZERO, Duration::MAX);
            assert!(d <= Duration::MAX);
            let d = rng.duration_in(Duration::MAX - Duration::from_secs(1), Duration::MAX);
            assert!(d >= Duration::MAX - Duration::from_secs(1));
        }
    }

    #[test]
    fn below_is_roughly_uniform() {
        let mut rng = Rng::new(99);
        let mut counts = [0u32; 4];
        for _ in 0..40_000 {
            let i = usize::try_from(rng.below(4)).unwrap_or(0);
            if let Some(c) = counts.get_mut(i) {
                *c += 1;
            }
        }
        for c in counts {
            assert!((9_000..11_000).contains(&c), "{counts:?}");
        }
    }
}
