//! The edge between embassy's clock and the core's: conversions and [`now`].
//!
//! `embassy_time` counts ticks at [`embassy_time::TICK_HZ`] since boot; the core counts
//! microseconds ([`rustkernel_core::time::Instant`]) since an epoch the adapter picks. This
//! adapter picks boot, so boot is `Instant::ZERO` on both sides and conversion is a change of
//! unit, done once at the edge as `embassy-net` does for smoltcp.
//!
//! # Rounding and saturation
//! - Towards the core (ticks to microseconds) values round **down**: the core never sees more
//!   time as having passed than has.
//! - Towards embassy (microseconds to ticks) values round **up**: a timer set from a core
//!   instant never fires before that instant, so "the deadline has passed" seen from a timer is
//!   also true for the core.
//! - Nothing is rounded to milliseconds. With the common 1 MHz tick both directions are exact.
//! - Overflow saturates: a value too large for the target becomes `u64::MAX` microseconds
//!   ([`CoreInstant::MAX`]) or `u64::MAX` ticks ([`embassy_time::Instant::MAX`]), which both
//!   sides treat as "never". A [`core::time::Duration`] longer than `u64::MAX` microseconds
//!   (about 584 554 years) also saturates.
//!
//! embassy's own `Instant + Duration` and `Timer::after` panic on overflow; everything in this
//! crate goes through the saturating forms here (for example [`deadline_after`]) and
//! `Timer::at`, so `Duration::MAX` means "never", not a panic.

use core::time::Duration;

use embassy_time::TICK_HZ;
use rustkernel_core::time::Instant as CoreInstant;

const MICROS_PER_SEC: u64 = 1_000_000;

const fn gcd(a: u64, b: u64) -> u64 {
    if b == 0 { a } else { gcd(b, a % b) }
}

/// `TICK_HZ / gcd` and `1e6 / gcd`: ticks = micros * `TICKS_NUM` / `MICROS_DEN`.
const GCD: u64 = {
    let g = gcd(TICK_HZ, MICROS_PER_SEC);
    if g == 0 { 1 } else { g }
};
const TICKS_PER_UNIT: u64 = TICK_HZ / GCD;
const MICROS_PER_UNIT: u64 = MICROS_PER_SEC / GCD;

/// `value * mul / div`, rounding down (`ceil == false`) or up, saturating at `u64::MAX`.
///
/// `div` is a non-zero constant here; a zero `div` (impossible) saturates instead of dividing.
const fn scale(value: u64, mul: u64, div: u64, ceil: bool) -> u64 {
    if mul == div {
        return value;
    }
    if div == 0 {
        return u64::MAX;
    }
    let product = value as u128 * mul as u128;
    let div = div as u128;
    let mut quotient = product / div;
    if ceil && !product.is_multiple_of(div) {
        quotient += 1;
    }
    if quotient > u64::MAX as u128 {
        u64::MAX
    } else {
        #[allow(
            clippy::cast_possible_truncation,
            reason = "checked against u64::MAX just before"
        )]
        let quotient = quotient as u64;
        quotient
    }
}

/// Microseconds in `ticks` embassy ticks, rounded down, saturating.
#[must_use]
pub const fn ticks_to_micros(ticks: u64) -> u64 {
    scale(ticks, MICROS_PER_UNIT, TICKS_PER_UNIT, false)
}

/// Embassy ticks in `micros` microseconds, rounded up, saturating.
#[must_use]
pub const fn micros_to_ticks(micros: u64) -> u64 {
    scale(micros, TICKS_PER_UNIT, MICROS_PER_UNIT, true)
}

/// An embassy instant on the core's clock (microseconds since boot, rounded down).
#[must_use]
pub const fn to_core_instant(instant: embassy_time::Instant) -> CoreInstant {
    CoreInstant::from_micros(ticks_to_micros(instant.as_ticks()))
}

/// A core instant on embassy's clock (ticks since boot, rounded up, saturating at
/// [`embassy_time::Instant::MAX`]).
#[must_use]
pub const fn to_embassy_instant(instant: CoreInstant) -> embassy_time::Instant {
    embassy_time::Instant::from_ticks(micros_to_ticks(instant.as_micros()))
}

/// An embassy duration as a [`core::time::Duration`] (whole microseconds, rounded down).
#[must_use]
pub const fn to_core_duration(duration: embassy_time::Duration) -> Duration {
    Duration::from_micros(ticks_to_micros(duration.as_ticks()))
}

/// A [`core::time::Duration`] as an embassy duration (rounded up to a whole tick, saturating at
/// [`embassy_time::Duration::MAX`]). Below a microsecond counts as nothing, as in the core.
#[must_use]
pub const fn to_embassy_duration(duration: Duration) -> embassy_time::Duration {
    let micros = rustkernel_core::time::duration_as_micros(duration);
    embassy_time::Duration::from_ticks(micros_to_ticks(micros))
}

/// Now, on the core's clock: `embassy_time::Instant::now()` in microseconds since boot.
///
/// Needs an embassy time driver at link time, like every timer in this crate.
#[must_use]
pub fn now() -> CoreInstant {
    to_core_instant(embassy_time::Instant::now())
}

/// The embassy instant `timeout` from now, saturating at [`embassy_time::Instant::MAX`]
/// (never), where `Instant::now() + timeout` would panic.
#[must_use]
pub fn deadline_after(timeout: Duration) -> embassy_time::Instant {
    to_embassy_instant(now().saturating_add(timeout))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn scale_rounds_and_saturates() {
        // 32.768 kHz: 1 tick = 30.517578125 us.
        assert_eq!(scale(1, 15_625, 512, false), 30);
        assert_eq!(scale(1, 512, 15_625, true), 1);
        assert_eq!(scale(0, 512, 15_625, true), 0);
        assert_eq!(scale(15_625, 512, 15_625, true), 512);
        assert_eq!(scale(u64::MAX, 3, 1, false), u64::MAX);
        assert_eq!(scale(u64::MAX, 1, 2, true), 1 << 63);
        assert_eq!(scale(u64::MAX, 1, 2, false), (1 << 63) - 1);
        assert_eq!(scale(7, 5, 0, false), u64::MAX);
        assert_eq!(scale(7, 4, 4, true), 7);
    }

    #[test]
    fn conversions_round_trip_at_the_tick_rate() {
        for micros in [0, 1, 999, 1_000_001, u64::MAX / 2, u64::MAX] {
            let core = CoreInstant::from_micros(micros);
            assert!(to_core_instant(to_embassy_instant(core)) >= core);
            let duration = Duration::from_micros(micros);
            assert!(to_core_duration(to_embassy_duration(duration)) >= duration);
        }
        assert_eq!(
            to_embassy_duration(Duration::MAX),
            embassy_time::Duration::MAX
        );
        assert_eq!(
            to_embassy_instant(CoreInstant::MAX),
            embassy_time::Instant::MAX
        );
        assert_eq!(to_embassy_duration(Duration::from_nanos(999)).as_ticks(), 0);
    }
}
