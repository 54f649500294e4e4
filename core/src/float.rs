//! Single-precision arithmetic for the configurations' factors and rates.
//!
//! Multipliers and rate thresholds are `f32`: the Cortex-M4F computes single precision in
//! hardware, while every `f64` operation there is a software routine of hundreds of bytes. A
//! delay is computed in microseconds as an `f32` (24 significant bits, so within 2^-24 of the
//! exact value per operation) and rounded down to the nanosecond; `docs/f32-backoff.md` has the
//! measurements behind the choice (flash, time, and the accuracy against exact integers).
//! [`scale`] is a `const fn`, so a restart policy can be checked when the firmware is compiled.
//! The one `f64` the crate returns, [`ratio_f64`], is built from integers without a float
//! operation.

#![allow(
    clippy::neg_cmp_op_on_partial_ord,
    reason = "`!(x > y)` is meant: it holds for NaN, which must take the no-growth or the cap path"
)]

use core::time::Duration;

use crate::time::{duration_from_micros, duration_lt};

/// Microseconds in a second and nanoseconds in a microsecond, as `f32` (both exact).
const MICROS_PER_SEC: f32 = 1e6;
const NANOS_PER_MICRO: f32 = 1e3;
/// Microseconds below which the nanoseconds fit in a `u64` (2^64 ns is 1.8446744e16 us).
const NANOS_FIT: f32 = 1.8e16;

/// The duration in microseconds (with a fraction below one), rounded to an `f32`.
///
/// Microseconds rather than nanoseconds: the clocks count microseconds, and round delays stay
/// exact (9 s is 9 * 10^6 us, 18 significant bits; as 9 * 10^9 ns it needs 25, one more than an
/// `f32` holds, and 3 s * 3 would come out as 8.999999488 s).
#[allow(
    clippy::cast_precision_loss,
    reason = "an f32 keeps 24 significant bits, as documented"
)]
const fn micros(duration: Duration) -> f32 {
    duration.as_secs() as f32 * MICROS_PER_SEC + duration.subsec_nanos() as f32 / NANOS_PER_MICRO
}

/// `micros` microseconds rounded down to the nanosecond (`as` saturates; NaN and negatives
/// give zero).
#[allow(
    clippy::cast_possible_truncation,
    clippy::cast_sign_loss,
    clippy::cast_precision_loss,
    reason = "`as` rounds toward zero and saturates, which is the rounding wanted"
)]
const fn duration_of(micros: f32) -> Duration {
    if micros < NANOS_FIT {
        let whole = micros as u64;
        // Zero from 2^24 us on, where an f32 holds no fraction.
        // Below 1,000 ns: `micros - whole` is below one.
        let fraction = (micros - whole as f32) * NANOS_PER_MICRO;
        // Not `Duration::from_nanos`, which divides in 64 bits (see `duration_from_micros`).
        duration_from_micros(whole).saturating_add(Duration::new(0, fraction as u32))
    } else {
        Duration::from_secs((micros / MICROS_PER_SEC) as u64)
    }
}

/// Whether the share `count / calls` reaches `rate`: `count as f32 / calls as f32 >= rate`,
/// with that comparison's float semantics (NaN never reaches anything, `0 / 0` is NaN, `k / 0`
/// is infinite).
///
/// A rate stands for every real number that rounds to it, so it stands for the decimal that was
/// written: `0.3` (stored as 0.300000011920928955078125) is reached by exactly 3 of 10, because
/// `3.0 / 10.0` rounds to the same `f32`; comparing with the rate's binary value in `f64` would
/// need 4 of 10. Below 2^24 calls the conversions are exact and the share is rounded once; above,
/// `count` and `calls` are first rounded to 24 significant bits (the share then lies within
/// 2^-23 of the exact one).
#[allow(
    clippy::cast_precision_loss,
    reason = "documented: 24 significant bits"
)]
pub(crate) const fn reaches_rate(count: u32, rate: f32, calls: u32) -> bool {
    count as f32 / calls as f32 >= rate
}

/// `duration * factor`, rounded down to the nanosecond, stopping at `cap`; never less than
/// `duration`. A factor below 1 or NaN (which `validate` refuses) means no growth; a duration
/// at or above `cap` comes back as `cap`.
pub(crate) const fn scale(duration: Duration, factor: f32, cap: Duration) -> Duration {
    // Exact for factors below 2^24 (Sterbenz for those below 2).
    grow_by(duration, factor - 1.0, cap)
}

/// `duration * (1 + excess)`: [`scale`] with the factor given as its excess over 1, which keeps
/// the precision of factors close to 1 (1 + 10^-6 has 4 significant bits of excess left as an
/// `f32` factor, 24 as an excess).
const fn grow_by(duration: Duration, excess: f32, cap: Duration) -> Duration {
    if !duration_lt(duration, cap) {
        return cap;
    }
    if !(excess > 0.0) {
        return duration;
    }
    let start = micros(duration);
    let product = start + start * excess;
    if product >= micros(cap) {
        return cap;
    }
    // Rounding down may land below `duration` (never above `cap`, which rounds to more).
    let scaled = duration_of(product);
    if duration_lt(scaled, duration) {
        duration
    } else if duration_lt(cap, scaled) {
        cap
    } else {
        scaled
    }
}

/// `min(cap, initial * factor^exponent)`: the power by binary exponentiation (at most 32
/// squarings, stopping as soon as it reaches the cap, so `u32::MAX` costs as little as 2),
/// then [`grow_by`]. Powers are kept as their excess over 1 (`(1 + a)^2 = 1 + a(2 + a)`), so
/// each rounding is relative to the growth, not to 1: the delay lies within 10^-6 of the exact
/// one for factors of 1.125 and more, and within 2 * 10^-5 for factors within 10^-6 of 1 over
/// hundreds of millions of attempts (`docs/f32-backoff.md`), far below any jitter.
pub(crate) fn grow(initial: Duration, factor: f32, exponent: u32, cap: Duration) -> Duration {
    if initial >= cap {
        return cap;
    }
    if initial.is_zero() || exponent == 0 || !(factor > 1.0) {
        return initial;
    }
    // The growth that reaches the cap; the power only grows, so it can stop there.
    let limit = micros(cap) / micros(initial) - 1.0;
    let mut power = 0.0_f32;
    let mut base = factor - 1.0;
    let mut rest = exponent;
    loop {
        if rest & 1 == 1 {
            power += base + power * base;
            // NaN (an infinite base times a zero power) has also passed the cap.
            if !(power < limit) {
                return cap;
            }
        }
        rest >>= 1;
        if rest == 0 {
            break;
        }
        // Overflows to infinity, which reaches any cap.
        base *= base + 2.0;
    }
    grow_by(initial, power, cap)
}

/// `x > 0` rounded to 53 significant bits (to nearest, ties to even, as `x as f64` does):
/// `(m, e)` with `m * 2^e` the rounded value and `m` in `[2^52, 2^53)`.
fn round_to_53_bits(x: u64) -> (u64, i32) {
    let length = 64 - x.leading_zeros();
    if length <= 53 {
        let up = 53 - length;
        return (x << up, -i32::try_from(up).unwrap_or(0));
    }
    let shift = length - 53;
    let mut mantissa = x >> shift;
    let rest = x & ((1 << shift) - 1);
    let half = 1 << (shift - 1);
    if rest > half || (rest == half && mantissa & 1 == 1) {
        mantissa += 1;
    }
    let exp = i32::try_from(shift).unwrap_or(0);
    if mantissa >> 53 != 0 {
        (mantissa >> 1, exp + 1)
    } else {
        (mantissa, exp)
    }
}

/// `num as f64 / den as f64`, bit for bit, without a float operation: both are rounded to
/// 53 bits as the conversions do, then divided by binary long division and rounded to
/// nearest, ties to even, and the `f64` is assembled from its bits. 1.0 for `den == 0`.
pub(crate) fn ratio_f64(num: u64, den: u64) -> f64 {
    if den == 0 {
        return 1.0;
    }
    if num == 0 {
        return 0.0;
    }
    let (num, num_exp) = round_to_53_bits(num);
    let (den, den_exp) = round_to_53_bits(den);
    // Both in [2^52, 2^53): the quotient is in (1/2, 2).
    let mut exp = num_exp - den_exp;
    let mut remainder = num;
    if remainder < den {
        remainder <<= 1;
        exp -= 1;
    }
    // Now remainder / den is in [1, 2): the quotient's first bit is 1 at 2^exp.
    remainder -= den;
    let mut quotient: u64 = 1;
    // 52 more bits of fraction and one rounding bit; remainder < den < 2^53 before each shift.
    for _ in 0..53 {
        remainder <<= 1;
        quotient <<= 1;
        if remainder >= den {
            remainder -= den;
            quotient |= 1;
        }
    }
    let round = quotient & 1;
    let mut significand = quotient >> 1;
    if round == 1 && (remainder != 0 || significand & 1 == 1) {
        significand += 1;
    }
    if significand >> 53 != 0 {
        significand >>= 1;
        exp += 1;
    }
    // The quotient lies within 2^-64 and 2^64: always a normal f64.
    let biased = u64::try_from(exp + 1023).unwrap_or(0);
    f64::from_bits((biased << 52) | (significand & ((1 << 52) - 1)))
}

#[cfg(test)]
// The tests compare with float arithmetic on purpose.
#[allow(
    clippy::float_cmp,
    clippy::cast_precision_loss,
    clippy::cast_possible_truncation,
    clippy::cast_sign_loss
)]
mod tests {
    extern crate std;
    use std::vec::Vec;

    use super::*;

    /// A few thousand deterministic pseudo-random values (xorshift).
    fn values() -> Vec<u64> {
        let mut state = 0x9e37_79b9_7f4a_7c15_u64;
        (0..4000)
            .map(|_| {
                state ^= state << 13;
                state ^= state >> 7;
                state ^= state << 17;
                state
            })
            .collect()
    }

    #[test]
    fn rates_stand_for_the_decimal_written() {
        assert!(!reaches_rate(3, f32::NAN, 3));
        assert!(!reaches_rate(0, f32::NAN, 0));
        assert!(!reaches_rate(3, f32::NAN, 0));
        assert!(!reaches_rate(3, f32::INFINITY, 3));
        assert!(reaches_rate(3, f32::INFINITY, 0));
        assert!(!reaches_rate(0, f32::NEG_INFINITY, 0));
        assert!(reaches_rate(0, f32::NEG_INFINITY, 3));
        assert!(reaches_rate(0, -0.5, 3));
        assert!(reaches_rate(u32::MAX, 1.0, u32::MAX));
        // 0.1f32 is a hair above 0.1, 0.7f32 a hair below 0.7: both stand for the decimal.
        assert!(reaches_rate(1, 0.1, 10));
        assert!(!reaches_rate(0, 0.1, 10));
        assert!(reaches_rate(3, 0.3, 10));
        assert!(!reaches_rate(2, 0.3, 10));
        assert!(reaches_rate(7, 0.7, 10));
        assert!(!reaches_rate(6, 0.7, 10));
        // 2/3 rounds up in f32: two of three reach it.
        assert!(reaches_rate(2, 2.0 / 3.0, 3));
        assert!(!reaches_rate(1, 2.0 / 3.0, 3));
        // Below 2^24 calls the share is the exact quotient rounded once: compare with f64.
        for bits in values() {
            let (count, calls) = (
                (bits % 5_000_000) as u32,
                ((bits >> 24) % 10_000_000) as u32,
            );
            if calls == 0 {
                continue;
            }
            let exact = (f64::from(count) / f64::from(calls)) as f32;
            for rate in [
                exact,
                f32::from_bits(exact.to_bits().wrapping_add(1)),
                f32::from_bits(exact.to_bits().saturating_sub(1)),
            ] {
                assert_eq!(
                    reaches_rate(count, rate, calls),
                    exact >= rate,
                    "{count} {rate} {calls}"
                );
            }
        }
    }

    #[test]
    fn scale_and_grow_stay_within_f32_rounding_of_the_exact_product() {
        let cap = Duration::MAX;
        let secs = Duration::from_secs;
        assert_eq!(
            scale(Duration::from_nanos(3), 1.5, cap),
            Duration::from_nanos(4)
        );
        assert_eq!(scale(secs(1), 2.5, cap), Duration::from_millis(2500));
        assert_eq!(scale(secs(1), f32::MAX, secs(9)), secs(9));
        assert_eq!(scale(Duration::MAX, 2.0, cap), cap);
        assert_eq!(scale(secs(1), f32::NAN, cap), secs(1));
        assert_eq!(scale(secs(1), 0.5, cap), secs(1));
        assert_eq!(scale(secs(1), f32::INFINITY, secs(5)), secs(5));
        assert_eq!(scale(Duration::ZERO, f32::INFINITY, cap), Duration::ZERO);
        // Past 2^64 nanoseconds (584 years), whole seconds.
        let long = scale(secs(1 << 40), 1e3, cap);
        let ideal = (1u64 << 40) as f64 * 1e3;
        assert!(
            (long.as_secs_f64() - ideal).abs() <= ideal * 1e-7,
            "{long:?}"
        );
        assert_eq!(
            grow(Duration::from_millis(100), 2.0, 10, cap),
            Duration::from_millis(102_400)
        );
        assert_eq!(grow(Duration::from_nanos(1), 2.0, u32::MAX, cap), cap);
        assert_eq!(grow(secs(1), f32::INFINITY, 1, secs(3)), secs(3));
        assert_eq!(grow(secs(1), 2.0, 0, cap), secs(1));
        assert_eq!(grow(Duration::ZERO, 2.0, 5, cap), Duration::ZERO);
        assert_eq!(grow(secs(5), 2.0, 5, secs(3)), secs(3));
        // Growth barely above 1 still grows over many attempts, close to powf.
        let tiny = 1.0 + f32::EPSILON;
        let grown = grow(secs(1000), tiny, 1 << 20, cap);
        let ideal = 1e12 * f64::from(tiny).powf(f64::from(1u32 << 20));
        let got = grown.as_nanos() as f64;
        assert!((got - ideal).abs() <= ideal * 1e-5, "{got} vs {ideal}");
        for bits in values() {
            let m = 1.0 + (bits >> 40) as f32 / (1u64 << 24) as f32 * 3.0;
            let n = u32::try_from(bits % 40).unwrap_or(0);
            let start = Duration::from_micros(1 + bits % 1_000_000);
            let top = secs(1 + (bits >> 7) % 7200);
            let exact = start.as_nanos() as f64 * f64::from(m).powi(i32::try_from(n).unwrap_or(0));
            let ideal = exact.min(top.as_nanos() as f64);
            let got = grow(start, m, n, top).as_nanos() as f64;
            assert!(
                (got - ideal).abs() <= ideal * 4e-6 + 1.0,
                "{start:?} * {m}^{n} (cap {top:?}): {got} vs {ideal}"
            );
            assert!(got >= start.min(top).as_nanos() as f64 && got <= top.as_nanos() as f64);
        }
    }

    #[test]
    fn growth_close_to_one_keeps_its_precision_and_order() {
        let cap = Duration::MAX;
        let second = Duration::from_secs(1);
        for steps in [1u32, 2, 3, 5, 8, 100, 10_000, 1 << 20, 1 << 22] {
            // 1 + steps * 2^-23: from the smallest growth an f32 holds to 1.5.
            let factor = f32::from_bits(1.0f32.to_bits() + steps);
            let tolerance = if factor >= 1.125 { 1e-6 } else { 2e-5 };
            let exponents = (0..32).flat_map(|bit| {
                let power = 1u32 << bit;
                [power - 1, power, power + 1, power + power / 3]
            });
            for exponent in exponents {
                let ideal = 1e9 * f64::from(factor).powf(f64::from(exponent));
                if ideal >= 1e28 {
                    continue;
                }
                let got = grow(second, factor, exponent, cap).as_nanos() as f64;
                assert!(
                    (got - ideal).abs() <= ideal * tolerance,
                    "{factor}^{exponent}: {got} vs {ideal}"
                );
            }
            let mut previous = Duration::ZERO;
            for exponent in (0..2_000).chain(1_000_000..1_002_000) {
                let delay = grow(second, factor, exponent, cap);
                assert!(delay >= previous, "{factor}^{exponent}");
                previous = delay;
            }
        }
        // Round figures stay round: microseconds keep 3 s * 3 exact.
        assert_eq!(
            scale(Duration::from_secs(3), 3.0, cap),
            Duration::from_secs(9)
        );
        assert_eq!(
            grow(Duration::from_millis(100), 1.5, 4, cap),
            Duration::from_micros(506_250)
        );
    }

    #[test]
    #[allow(clippy::cast_precision_loss)]
    fn ratio_is_the_rounded_division() {
        let values = values();
        let check = |n: u64, d: u64| {
            let reference = if d == 0 { 1.0 } else { n as f64 / d as f64 };
            assert_eq!(ratio_f64(n, d).to_bits(), reference.to_bits(), "{n}/{d}");
        };
        for pair in values.chunks_exact(2) {
            let &[a, b] = pair else { continue };
            let den = b.max(1);
            for (n, d) in [
                (a % den, den),
                (a, b),
                (a >> (b % 64), b >> (a % 64)),
                (a % 1000 % (b % 1000 + 1), b % 1000 + 1),
                (1, den),
                (den - 1, den),
                (den >> 11 << 11, den | 1),
            ] {
                check(n, d);
            }
        }
        for (n, d) in [
            (0, 0),
            (7, 7),
            (0, 7),
            (1, u64::MAX),
            (u64::MAX, 1),
            (u64::MAX, u64::MAX),
            (u64::MAX - 1, u64::MAX),
            ((1 << 53) + 1, (1 << 53) + 3),
            ((1 << 54) + 2, (1 << 53) + 1),
            (1, 3),
            (2, 3),
        ] {
            check(n, d);
        }
    }
}
