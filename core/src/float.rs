//! Exact integer arithmetic with the floats of configurations.
//!
//! On a microcontroller with a single-precision FPU (Cortex-M4F), every `f64` operation is a
//! software routine, and together they cost kilobytes of flash. The state machines only ever
//! multiply integers (nanoseconds, counts) by a configured factor and compare, so this module
//! takes the float apart instead: a finite IEEE 754 value is exactly `mantissa * 2^exp` with
//! integer `mantissa` and `exp` (read from `to_bits()`), and the products are then computed in
//! integers, exactly, rounded down once at the end. Nothing here performs a float operation
//! except building the final `f64` of [`ratio_f64`] from its bits.

use core::time::Duration;

const NANOS_PER_SEC: u64 = 1_000_000_000;

/// A float taken apart.
#[derive(Clone, Copy, Debug, PartialEq)]
pub(crate) enum Parts {
    /// Not a number.
    Nan,
    /// Plus or minus infinity.
    Infinite {
        /// Minus infinity.
        negative: bool,
    },
    /// `(-1)^negative * mantissa * 2^exp`, exactly.
    Finite {
        /// The sign bit (also set for `-0.0`).
        negative: bool,
        /// The integer significand (zero for a zero).
        mantissa: u64,
        /// The power of two that scales it.
        exp: i32,
    },
}

impl Parts {
    /// Takes an `f64` apart: 11 exponent bits, 52 fraction bits.
    pub(crate) const fn of_f64(value: f64) -> Self {
        let bits = value.to_bits();
        Self::from_fields(
            bits >> 63 != 0,
            (bits >> 52) & 0x7ff,
            bits & ((1 << 52) - 1),
            52,
            1023,
        )
    }

    /// Takes an `f32` apart: 8 exponent bits, 23 fraction bits.
    pub(crate) const fn of_f32(value: f32) -> Self {
        // A widening cast: `u32 as u64` (`From` is not `const`).
        let bits = value.to_bits() as u64;
        Self::from_fields(
            bits >> 31 != 0,
            (bits >> 23) & 0xff,
            bits & ((1 << 23) - 1),
            23,
            127,
        )
    }

    const fn from_fields(
        negative: bool,
        biased: u64,
        fraction: u64,
        fraction_bits: i32,
        bias: i32,
    ) -> Self {
        // `biased` has at most 11 bits: the cast keeps it whole.
        #[allow(clippy::cast_possible_truncation, reason = "at most 11 bits")]
        let biased = biased as i32;
        let all_ones = (bias << 1) | 1;
        if biased == all_ones {
            return if fraction == 0 {
                Parts::Infinite { negative }
            } else {
                Parts::Nan
            };
        }
        let (mantissa, biased) = if biased == 0 {
            // Subnormal (or zero): no implicit bit, the smallest exponent.
            (fraction, 1)
        } else {
            (fraction | (1 << fraction_bits), biased)
        };
        Parts::Finite {
            negative,
            mantissa,
            exp: biased - bias - fraction_bits,
        }
    }

    /// Neither NaN nor infinite (as `is_finite`, without a float comparison).
    pub(crate) const fn is_finite(self) -> bool {
        matches!(self, Parts::Finite { .. })
    }

    /// At least 1 (false for NaN), as `value >= 1.0`.
    pub(crate) const fn at_least_one(self) -> bool {
        match self {
            Parts::Nan | Parts::Infinite { negative: true } => false,
            Parts::Infinite { negative: false } => true,
            Parts::Finite {
                negative, mantissa, ..
            } if negative || mantissa == 0 => false,
            Parts::Finite { mantissa, exp, .. } => {
                exp >= 0
                    || matches!(mantissa.checked_shr(exp.unsigned_abs()), Some(whole) if whole != 0)
            }
        }
    }

    /// The value as a growth factor: itself when at least 1 (infinity as a huge factor), else
    /// 1 (NaN and values below 1, which `validate` refuses, mean no growth).
    pub(crate) fn growth(self) -> Factor {
        match self {
            Parts::Finite { mantissa, exp, .. } if self.at_least_one() => {
                Factor::normalized(u128::from(mantissa), exp)
            }
            Parts::Infinite { negative: false } => Factor::INFINITE,
            _ => Factor::ONE,
        }
    }
}

/// A factor of at least 1, `mantissa * 2^exp` with the top bit of `mantissa` set; `exp`
/// saturates, so `i32::MAX` stands for infinity.
#[derive(Clone, Copy, Debug, PartialEq)]
pub(crate) struct Factor {
    mantissa: u64,
    exp: i32,
}

impl Factor {
    /// Exactly 1.
    pub(crate) const ONE: Factor = Factor {
        mantissa: 1 << 63,
        exp: -63,
    };
    /// Larger than any product can hold.
    const INFINITE: Factor = Factor {
        mantissa: 1 << 63,
        exp: i32::MAX,
    };

    /// `wide * 2^exp` (with `wide > 0`) cut to its top 64 bits, rounding down.
    fn normalized(wide: u128, exp: i32) -> Factor {
        let length = 128 - wide.leading_zeros();
        let shift = length.saturating_sub(64);
        let mantissa = u64::try_from(wide >> shift).unwrap_or(u64::MAX);
        // Shift up so that bit 63 is the top bit (no-op when `wide` was wider than 64 bits).
        let up = mantissa.leading_zeros();
        let mantissa = mantissa.checked_shl(up).unwrap_or(0);
        let exp = exp
            .saturating_add_unsigned(shift)
            .saturating_sub_unsigned(up);
        if mantissa == 0 {
            Factor::ONE
        } else {
            Factor { mantissa, exp }
        }
    }

    /// `self * other`, rounded down to 64 significant bits (relative error below `2^-63`).
    pub(crate) fn mul(self, other: Factor) -> Factor {
        let wide = u128::from(self.mantissa) * u128::from(other.mantissa);
        Factor::normalized(wide, self.exp.saturating_add(other.exp))
    }

    /// Whether this is exactly 1.
    pub(crate) fn is_one(self) -> bool {
        self == Factor::ONE
    }

    /// `floor(x * self)`, or `None` above `u128::MAX`.
    pub(crate) fn mul_floor(self, x: u128) -> Option<u128> {
        mul_floor(x, self.mantissa, self.exp).map(|(floor, _)| floor)
    }
}

/// `floor(x * mantissa * 2^exp)` and whether it is exact, or `None` above `u128::MAX`.
///
/// The product has up to 192 bits, kept in three 64-bit limbs, so it is exact.
pub(crate) fn mul_floor(x: u128, mantissa: u64, exp: i32) -> Option<(u128, bool)> {
    const LOW: u128 = u64::MAX as u128;
    if x == 0 || mantissa == 0 {
        return Some((0, true));
    }
    let m = u128::from(mantissa);
    let low_product = (x & LOW) * m;
    let high_product = (x >> 64) * m;
    // Three 64-bit limbs, least significant first (the product is below 2^192).
    let middle = (low_product >> 64) + (high_product & LOW);
    let limb = |wide: u128| u64::try_from(wide & LOW).unwrap_or(0);
    let (mut a, mut b, mut c) = (
        limb(low_product),
        limb(middle),
        limb((high_product >> 64) + (middle >> 64)),
    );
    let mut shift = exp.unsigned_abs();
    if exp >= 0 {
        // Shifting up: the product must already fit in 128 bits, and keep fitting.
        let product = u128::from(a) | (u128::from(b) << 64);
        if c != 0 || shift >= 128 || product.leading_zeros() < shift {
            return None;
        }
        return Some((product << shift, true));
    }
    if shift >= 192 {
        return Some((0, false));
    }
    // Shifting down: whole limbs first, then the bits; the dropped bits decide exactness.
    let mut dropped = false;
    while shift >= 64 {
        dropped |= a != 0;
        (a, b, c) = (b, c, 0);
        shift -= 64;
    }
    if shift > 0 {
        let back = 64 - shift;
        dropped |= a << back != 0;
        a = (a >> shift) | (b << back);
        b = (b >> shift) | (c << back);
        c >>= shift;
    }
    if c != 0 {
        return None;
    }
    Some((u128::from(a) | (u128::from(b) << 64), !dropped))
}

/// The exponent of an `f32`'s lowest binade (subnormals and the smallest normals), as
/// [`Parts::of_f32`] gives it.
const F32_MIN_EXP: i32 = -149;

/// Whether the share `count / calls` reaches `rate`: `count as f32 / calls as f32 >= rate`, with
/// the quotient rounded once, to nearest (ties to even), as an `f32` division rounds it, and
/// the float semantics of that comparison (NaN never reaches anything, `0 / 0` is NaN, `k / 0`
/// is infinite).
///
/// A rate stands for every real number that rounds to it, so it stands for the decimal that was
/// written: `0.3` (stored as 0.300000011920928955078125) is reached by exactly 3 of 10, and
/// `k as f32 / n as f32` by exactly `k` of `n`. Comparing with the `f32`'s own binary value
/// instead would need 4 of 10. The limit is the `f32`'s precision: a share below the written
/// value `a / b` is at least `1 / (b * calls)` below it, and the values that round to a rate
/// of at most 1 lie within `2^-24` of each other, so no share below the written value reaches
/// the rate while `b * calls < 2^24` (for `k / n`, windows of up to 4 096 calls; for one decimal
/// digit, up to 1.6 million).
///
/// Computed without a float operation: the quotient rounds to `rate` or above exactly when it
/// is above the midpoint between `rate` and the `f32` below it, or on that midpoint with `rate`'s
/// significand even; `midpoint * calls` is exact in integers ([`mul_floor`]).
pub(crate) fn reaches_rate(count: u32, rate: f32, calls: u32) -> bool {
    let rate = Parts::of_f32(rate);
    if calls == 0 {
        // `count / 0` is +inf (which reaches any non-NaN rate), `0 / 0` is NaN.
        return count != 0 && rate != Parts::Nan;
    }
    match rate {
        Parts::Nan => false,
        // The quotient is finite: it never reaches +inf and always -inf.
        Parts::Infinite { negative } => negative,
        // Zero or negative: every quotient (at least 0) reaches it.
        Parts::Finite { negative: true, .. } | Parts::Finite { mantissa: 0, .. } => true,
        Parts::Finite { mantissa, exp, .. } => {
            // The midpoint below `rate`: half a unit below, or a quarter at the bottom of a
            // binade (the `f32` below has units half as large), except in the lowest binade.
            let (edge, edge_exp) = if mantissa == 1 << 23 && exp > F32_MIN_EXP {
                ((mantissa << 2) - 1, exp - 2)
            } else {
                ((mantissa << 1) - 1, exp - 1)
            };
            match mul_floor(u128::from(calls), edge, edge_exp) {
                None => false,
                Some((floor, exact)) => {
                    let count = u128::from(count);
                    // On the midpoint, the tie goes to the even significand.
                    count > floor || (count == floor && exact && mantissa & 1 == 0)
                }
            }
        }
    }
}

/// `floor(value * scale)`, clamped to `[0, limit]`; NaN and negatives give 0, +inf `limit`.
pub(crate) fn scaled_floor(value: f32, scale: u64, limit: u64) -> u64 {
    match Parts::of_f32(value) {
        Parts::Nan | Parts::Infinite { negative: true } | Parts::Finite { negative: true, .. } => 0,
        Parts::Infinite { negative: false } => limit,
        Parts::Finite { mantissa, exp, .. } => match mul_floor(u128::from(scale), mantissa, exp) {
            Some((floor, _)) => u64::try_from(floor).map_or(limit, |f| f.min(limit)),
            None => limit,
        },
    }
}

/// `duration * factor`, rounded down to the nanosecond, stopping at `cap`; never less than
/// `duration` for a factor of at least 1. A duration at or above `cap` comes back as `cap`.
pub(crate) fn scale(duration: Duration, factor: Factor, cap: Duration) -> Duration {
    if duration.is_zero() || duration >= cap || factor.is_one() {
        return duration.min(cap);
    }
    match factor.mul_floor(duration.as_nanos()) {
        // `duration < cap` here, so this is `clamp(duration, cap)` without its assertion.
        Some(nanos) if nanos < cap.as_nanos() => from_nanos(nanos).max(duration).min(cap),
        _ => cap,
    }
}

/// `min(cap, initial * factor^exponent)` by binary exponentiation: at most 32 squarings,
/// stopping as soon as the product reaches the cap. The power is kept to 64 significant bits
/// (rounded down), the product with `initial` is exact, rounded down to the nanosecond.
pub(crate) fn grow(initial: Duration, factor: Factor, exponent: u32, cap: Duration) -> Duration {
    if initial.is_zero() || initial >= cap || exponent == 0 || factor.is_one() {
        return initial.min(cap);
    }
    let start = initial.as_nanos();
    let limit = cap.as_nanos();
    let mut power = Factor::ONE;
    let mut base = factor;
    let mut rest = exponent;
    loop {
        if rest & 1 == 1 {
            power = power.mul(base);
            if power.mul_floor(start).is_none_or(|nanos| nanos >= limit) {
                return cap;
            }
        }
        rest >>= 1;
        if rest == 0 {
            break;
        }
        // The exponent saturates, so a huge base stays huge.
        base = base.mul(base);
    }
    scale(initial, power, cap)
}

/// A `Duration` of `nanos` nanoseconds, saturating at `Duration::MAX`, without a 128-bit
/// division: four 64-by-32-bit steps of long division by 10^9.
fn from_nanos(nanos: u128) -> Duration {
    let mut quotient: u128 = 0;
    let mut remainder: u64 = 0;
    for limb in (0..4).rev() {
        let digit = u64::try_from((nanos >> (32 * limb)) & u128::from(u32::MAX)).unwrap_or(0);
        // remainder < 10^9 < 2^30, so this fits in 62 bits.
        let current = (remainder << 32) | digit;
        quotient = (quotient << 32) | u128::from(current / NANOS_PER_SEC);
        remainder = current % NANOS_PER_SEC;
    }
    match u64::try_from(quotient) {
        // remainder < 10^9 fits in u32.
        Ok(secs) => Duration::new(secs, u32::try_from(remainder).unwrap_or(0)),
        Err(_) => Duration::MAX,
    }
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
// The tests compare with float arithmetic on purpose and index pairs they built themselves.
#[allow(
    clippy::float_cmp,
    clippy::indexing_slicing,
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

    fn value_of(parts: Parts) -> f64 {
        match parts {
            Parts::Nan => f64::NAN,
            Parts::Infinite { negative } => {
                if negative {
                    f64::NEG_INFINITY
                } else {
                    f64::INFINITY
                }
            }
            Parts::Finite {
                negative,
                mantissa,
                exp,
            } => {
                #[allow(clippy::cast_precision_loss)]
                let magnitude = mantissa as f64 * 2f64.powi(exp);
                if negative { -magnitude } else { magnitude }
            }
        }
    }

    #[test]
    fn parts_rebuild_the_value() {
        for bits in values() {
            let x = f64::from_bits(bits);
            let rebuilt = value_of(Parts::of_f64(x));
            // powi of subnormal exponents underflows in steps; compare normal values only.
            if x.is_nan() {
                assert!(rebuilt.is_nan());
            } else if x.abs() > 1e-290 || x == 0.0 || x.is_infinite() {
                assert_eq!(rebuilt.to_bits(), x.to_bits(), "{x:e}");
            }
            #[allow(clippy::cast_possible_truncation)]
            let y = f32::from_bits(bits as u32);
            let rebuilt = value_of(Parts::of_f32(y));
            if y.is_nan() {
                assert!(rebuilt.is_nan());
            } else {
                assert_eq!(rebuilt, f64::from(y), "{y:e}");
            }
        }
        assert_eq!(
            Parts::of_f64(5e-324),
            Parts::Finite {
                negative: false,
                mantissa: 1,
                exp: -1074
            }
        );
        assert_eq!(
            Parts::of_f32(1e-45),
            Parts::Finite {
                negative: false,
                mantissa: 1,
                exp: -149
            }
        );
    }

    #[test]
    fn classification_matches_float_comparisons() {
        let specials = [
            0.0,
            -0.0,
            1.0,
            -1.0,
            1.0 - f64::EPSILON / 2.0,
            1.0 + f64::EPSILON,
            0.5,
            5e-324,
            f64::MAX,
            f64::MIN,
            f64::NAN,
            f64::INFINITY,
            f64::NEG_INFINITY,
        ];
        let random = values().into_iter().map(f64::from_bits);
        for x in specials.into_iter().chain(random) {
            let parts = Parts::of_f64(x);
            assert_eq!(parts.is_finite(), x.is_finite(), "{x:e}");
            assert_eq!(parts.at_least_one(), x >= 1.0, "{x:e}");
        }
    }

    #[test]
    fn mul_floor_is_exact() {
        let values = values();
        for pair in values.chunks_exact(2) {
            let (a, b) = (pair[0], pair[1]);
            // x: 1 to 94 bits (a Duration's nanoseconds); the multiplier: a random f64 >= 1.
            let x = u128::from(a) << (b % 31) >> (a % 64);
            let multiplier = 1.0 + f64::from_bits(b >> 2) % 1e6;
            let Parts::Finite { mantissa, exp, .. } = Parts::of_f64(multiplier) else {
                continue;
            };
            let (floor, exact) = mul_floor(x, mantissa, exp).expect("fits");
            if let Some(num) = x.checked_mul(u128::from(mantissa)) {
                let shift = exp.unsigned_abs();
                if exp < 0 {
                    assert_eq!(floor, num.checked_shr(shift).unwrap_or(0));
                    assert_eq!(
                        exact,
                        num.checked_shr(shift).unwrap_or(0).checked_shl(shift) == Some(num)
                    );
                } else {
                    assert_eq!((floor, exact), (num << shift, true));
                }
            } else {
                // The product needs the third limb: compare with f64 within its rounding.
                #[allow(clippy::cast_precision_loss)]
                let (approx, got) = (x as f64 * multiplier, floor as f64);
                assert!(
                    (got - approx).abs() <= approx * 1e-15 + 1.0,
                    "{got} {approx}"
                );
            }
        }
    }

    #[test]
    fn mul_floor_limbs_and_saturation() {
        // 2^100 * 2^60 * 2^-100 = 2^60: goes through the third limb.
        assert_eq!(mul_floor(1 << 100, 1 << 60, -100), Some((1 << 60, true)));
        assert_eq!(mul_floor(1 << 100, 1 << 60, -161), Some((0, false)));
        assert_eq!(mul_floor(1 << 100, 3, -1), Some((3 << 99, true)));
        assert_eq!(mul_floor(3, 1, -1), Some((1, false)));
        assert_eq!(mul_floor(u128::MAX, u64::MAX, 0), None);
        assert_eq!(mul_floor(u128::MAX, u64::MAX, -63), None);
        assert_eq!(
            mul_floor(u128::MAX, u64::MAX, -64),
            Some((u128::MAX - u128::from(u64::MAX) - 1, false))
        );
        assert_eq!(
            mul_floor(u128::MAX, u64::MAX, -128),
            Some((u128::from(u64::MAX) - 1, false))
        );
        assert_eq!(mul_floor(u128::MAX, 1 << 63, -63), Some((u128::MAX, true)));
        assert_eq!(mul_floor(u128::MAX, 1, 1), None);
        assert_eq!(mul_floor(1, 1, 127), Some((1 << 127, true)));
        assert_eq!(mul_floor(1, 1, 128), None);
        assert_eq!(mul_floor(1, 1, i32::MAX), None);
        assert_eq!(mul_floor(5, 1, i32::MIN), Some((0, false)));
        assert_eq!(mul_floor(0, 1, i32::MAX), Some((0, true)));
        // Every shift down from 1 to 200 against a shifted reference: x has 125 bits, so
        // x * 2^63 has 188 and fits in 128 bits from a shift of 60 on.
        let x = (u128::MAX >> 3) | 1;
        for shift in 1..200u32 {
            let got = mul_floor(x, 1 << 63, -i32::try_from(shift).unwrap_or(0));
            let expected = if shift < 60 {
                None
            } else if shift < 63 {
                Some((x << (63 - shift), true))
            } else {
                Some((x.checked_shr(shift - 63).unwrap_or(0), shift == 63))
            };
            assert_eq!(got, expected, "shift {shift}");
        }
    }

    /// The reference: the share divided in `f32` (exact conversions below 2^24, one rounding).
    fn share_reaches(count: u32, rate: f32, calls: u32) -> bool {
        assert!(count < 1 << 24 && calls < 1 << 24);
        count as f32 / calls as f32 >= rate
    }

    #[test]
    fn reaches_rate_rounds_the_share_like_an_f32_division() {
        for &(count, calls) in &[
            (0u32, 0u32),
            (0, 10),
            (5, 10),
            (4, 10),
            (10, 10),
            (1, 3),
            (3, 0),
        ] {
            for rate in [
                0.5f32,
                0.4,
                0.1,
                1.0,
                1.0 / 3.0,
                0.333_333_34,
                0.0,
                -0.0,
                1e-45,
            ] {
                assert_eq!(
                    reaches_rate(count, rate, calls),
                    share_reaches(count, rate, calls),
                    "{count} {rate} {calls}"
                );
            }
        }
        assert!(!reaches_rate(3, f32::NAN, 3));
        assert!(!reaches_rate(0, f32::NAN, 0));
        assert!(!reaches_rate(3, f32::NAN, 0));
        assert!(!reaches_rate(3, f32::INFINITY, 3));
        assert!(reaches_rate(3, f32::INFINITY, 0));
        assert!(!reaches_rate(0, f32::NEG_INFINITY, 0));
        assert!(reaches_rate(0, f32::NEG_INFINITY, 3));
        assert!(reaches_rate(0, -0.5, 3));
        assert!(!reaches_rate(u32::MAX, f32::MAX, u32::MAX));
        assert!(reaches_rate(u32::MAX, 1.0, u32::MAX));
        // 1 - 1/(2^32 - 1) rounds to 1.0 in f32: the precision limit of an f32 rate.
        assert!(reaches_rate(u32::MAX - 1, 1.0, u32::MAX));
        assert!(!reaches_rate(u32::MAX - 512, 1.0, u32::MAX));
        // 0.1f32 is a hair above 0.1, 0.7f32 a hair below 0.7: both stand for the decimal.
        assert!(reaches_rate(1, 0.1, 10));
        assert!(!reaches_rate(0, 0.1, 10));
        assert!(reaches_rate(7, 0.7, 10));
        assert!(!reaches_rate(6, 0.7, 10));
        // 2/3 rounds up in f32: two of three reach it, and so do 2 000 000 of 3 000 000.
        assert!(reaches_rate(2, 2.0 / 3.0, 3));
        assert!(reaches_rate(2_000_000, 2.0 / 3.0, 3_000_000));
        assert!(!reaches_rate(1_999_999, 2.0 / 3.0, 3_000_000));
        // Shares exactly on a midpoint (the tie goes to the even significand); over a power of
        // two the f64 quotient is exact, so one rounding to f32 is the reference.
        let above = |x: f32| f32::from_bits(x.to_bits() + 1);
        let below = |x: f32| f32::from_bits(x.to_bits() - 1);
        for (count, calls) in [
            (3 << 23, 1 << 25),
            ((3 << 23) - 1, 1 << 25),
            ((3 << 23) + 1, 1 << 25),
            ((1 << 25) - 1, 1 << 26),
            ((1 << 25) - 2, 1 << 26),
            ((1 << 25) + 1, 1 << 26),
            (1, 1 << 31),
        ] {
            let share = (f64::from(count) / f64::from(calls)) as f32;
            for rate in [
                0.75f32,
                above(0.75),
                below(0.75),
                0.5,
                above(0.5),
                below(0.5),
                share,
            ] {
                let reference = (f64::from(count) / f64::from(calls)) as f32 >= rate;
                assert_eq!(
                    reaches_rate(count, rate, calls),
                    reference,
                    "{count} {rate} {calls}"
                );
            }
        }
        assert!(reaches_rate((3 << 23) - 1, 0.75, 1 << 25));
        assert!(!reaches_rate((3 << 23) + 1, above(0.75), 1 << 25));
        assert!(reaches_rate((1 << 25) - 1, 0.5, 1 << 26));
        assert!(!reaches_rate((1 << 25) - 2, 0.5, 1 << 26));
        // Subnormal rates: every positive share reaches them.
        assert!(reaches_rate(1, f32::from_bits(1), u32::MAX));
        assert!(!reaches_rate(0, f32::from_bits(1), u32::MAX));
        // The bottom of a binade: the f32 below 0.5 is closer, so the midpoint is a quarter unit.
        let below_half = f32::from_bits(0.5f32.to_bits() - 1);
        for calls in [1u32, 3, 1 << 23, (1 << 24) - 1] {
            for count in [0, calls / 2, calls / 2 + 1, calls.saturating_sub(1) / 2] {
                for rate in [0.5, below_half, f32::from_bits(0.5f32.to_bits() + 1)] {
                    assert_eq!(
                        reaches_rate(count, rate, calls),
                        share_reaches(count, rate, calls),
                        "{count} {rate} {calls}"
                    );
                }
            }
        }
        for bits in values() {
            let rate = f32::from_bits(u32::try_from(bits >> 40).unwrap_or(0)) % 1.5;
            #[allow(clippy::cast_possible_truncation)]
            let (count, calls) = ((bits % 1000) as u32, ((bits >> 20) % 1000) as u32);
            assert_eq!(
                reaches_rate(count, rate, calls),
                share_reaches(count, rate, calls),
                "{count} {rate} {calls}"
            );
            // Rates just around the share itself, where the rounding decides.
            #[allow(clippy::cast_possible_truncation)]
            let (count, calls) = (
                (bits % 5_000_000) as u32,
                ((bits >> 24) % 10_000_000) as u32,
            );
            let share = count as f32 / calls.max(1) as f32;
            for rate in [
                share,
                f32::from_bits(share.to_bits().wrapping_add(1)),
                f32::from_bits(share.to_bits().saturating_sub(1)),
            ] {
                assert_eq!(
                    reaches_rate(count, rate, calls),
                    share_reaches(count, rate, calls),
                    "{count} {rate} {calls}"
                );
            }
        }
    }

    #[test]
    fn scaled_floor_matches_f64() {
        for bits in values() {
            let ratio = f32::from_bits(u32::try_from(bits >> 32).unwrap_or(0));
            let units = f64::from(ratio) * 1e6;
            #[allow(clippy::cast_possible_truncation, clippy::cast_sign_loss)]
            let reference = if units >= 1e9 {
                1_000_000_000
            } else if units >= 1.0 {
                units as u64
            } else {
                0
            };
            assert_eq!(
                scaled_floor(ratio, 1_000_000, 1_000_000_000),
                reference,
                "{ratio:e}"
            );
        }
        assert_eq!(scaled_floor(0.2, 1_000_000, 1_000_000_000), 200_000);
        assert_eq!(scaled_floor(f32::INFINITY, 1_000_000, 7), 7);
        assert_eq!(scaled_floor(f32::NAN, 1_000_000, 7), 0);
        assert_eq!(scaled_floor(f32::MAX, 1_000_000, 7), 7);
    }

    #[test]
    fn from_nanos_splits_exactly() {
        for bits in values() {
            let d = Duration::new(bits, u32::try_from(bits % 1_000_000_000).unwrap_or(0));
            assert_eq!(from_nanos(d.as_nanos()), d);
        }
        assert_eq!(from_nanos(Duration::MAX.as_nanos()), Duration::MAX);
        assert_eq!(from_nanos(u128::MAX), Duration::MAX);
        assert_eq!(from_nanos(0), Duration::ZERO);
    }

    #[test]
    fn scale_and_grow_follow_the_exact_product() {
        let cap = Duration::MAX;
        let f = |m: f64| Parts::of_f64(m).growth();
        assert_eq!(
            scale(Duration::from_nanos(3), f(1.5), cap),
            Duration::from_nanos(4)
        );
        assert_eq!(
            scale(Duration::from_secs(1), f(2.5), cap),
            Duration::from_millis(2500)
        );
        assert_eq!(
            scale(Duration::from_secs(1), f(f64::MAX), Duration::from_secs(9)),
            Duration::from_secs(9)
        );
        assert_eq!(scale(Duration::MAX, f(2.0), cap), cap);
        assert_eq!(
            scale(Duration::from_secs(1), f(f64::NAN), cap),
            Duration::from_secs(1)
        );
        assert_eq!(
            scale(Duration::from_secs(1), f(0.5), cap),
            Duration::from_secs(1)
        );
        assert_eq!(
            scale(
                Duration::from_secs(1),
                f(f64::INFINITY),
                Duration::from_secs(5)
            ),
            Duration::from_secs(5)
        );
        assert_eq!(
            grow(Duration::from_millis(100), f(2.0), 10, cap),
            Duration::from_millis(102_400)
        );
        assert_eq!(
            grow(Duration::from_nanos(1), f(3.0), 40, cap),
            Duration::from_nanos(3u64.pow(40))
        );
        assert_eq!(grow(Duration::from_nanos(1), f(2.0), u32::MAX, cap), cap);
        assert_eq!(
            grow(
                Duration::from_secs(1),
                f(f64::INFINITY),
                1,
                Duration::from_secs(3)
            ),
            Duration::from_secs(3)
        );
        // Growth barely above 1 still grows over many attempts, close to powf.
        let tiny = 1.0 + f64::EPSILON;
        let grown = grow(Duration::from_secs(1000), f(tiny), u32::MAX, cap);
        #[allow(clippy::cast_precision_loss)]
        let ideal = 1e12 * tiny.powf(f64::from(u32::MAX));
        #[allow(clippy::cast_precision_loss)]
        let got = grown.as_nanos() as f64;
        assert!((got - ideal).abs() <= ideal * 1e-12, "{got} vs {ideal}");
        for bits in values() {
            let m = 1.0 + (bits >> 11) as f64 / (1u64 << 53) as f64 * 3.0;
            let n = u32::try_from(bits % 40).unwrap_or(0);
            let start = Duration::from_micros(1 + bits % 1_000_000);
            let got = grow(start, f(m), n, cap).as_nanos() as f64;
            let ideal = (start.as_nanos() as f64 * m.powi(i32::try_from(n).unwrap_or(0)))
                .min(cap.as_nanos() as f64);
            assert!(got <= ideal * (1.0 + 1e-12) && got >= ideal * (1.0 - 1e-12) - 1.0);
        }
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
            let (a, b) = (pair[0], pair[1]);
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
