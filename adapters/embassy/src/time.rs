//! The edge between embassy's clock and the core's: conversions and [`now`].
//!
//! `embassy_time` counts ticks at [`embassy_time::TICK_HZ`] since boot; the core counts
//! microseconds ([`rustkernel_core::time::Instant`]) since an epoch the adapter picks. This
//! adapter picks boot, so boot is `Instant::ZERO` on both sides and conversion is a change of
//! unit, done once at the edge as `embassy-net` does for smoltcp.
//!
//! # Rounding and saturation
//! Timers set from core instants never fire early, at any tick rate:
//! - Instants towards the core ([`now`], [`to_core_instant`]) round **up** to the next whole
//!   microsecond. The core schedules `now() + delay`; from a `now()` rounded down (at
//!   32.768 kHz one tick is 30.52 us) that instant would lie less than `delay` after the
//!   real time, and a 31 us retry would wait a single 30.52 us tick.
//! - Towards embassy (microseconds to ticks) values round **up**: a timer set from a core
//!   instant never fires before that instant, and when it fires [`now`] has reached it, so "the
//!   deadline has passed" seen from a timer is also true for the core.
//! - [`to_embassy_duration`] converts from nanoseconds, rounding up: 1.5 us is 2 ticks at
//!   1 MHz, and any non-zero duration at least one tick. [`to_core_duration`] gives whole
//!   microseconds, rounded down (the core's resolution).
//! - Nothing is rounded to milliseconds. With the common 1 MHz tick every conversion of
//!   instants is exact.
//! - Instants that start on embassy's side stay in ticks: a tick converted to microseconds and
//!   back, both rounded up, can come back one tick later (tick 1 is 30.52 us, so 31 us, so
//!   tick 2 at 32.768 kHz), and a deadline wrapped again and again would move each time.
//!   [`DeadlineContext`](crate::deadline::DeadlineContext) keeps its instant in ticks and adds
//!   durations in ticks ([`deadline_after`]); only the core's own instants (a retry's next
//!   attempt, a breaker's end of open, a restart) are converted, once, on their way to a timer.
//! - "Never" maps to "never": [`CoreInstant::MAX`] is [`embassy_time::Instant::MAX`] and back,
//!   at every tick rate (at 32.768 kHz `u64::MAX` microseconds would otherwise be a mere
//!   6.04e17 ticks). Overflow saturates to the same values; a [`core::time::Duration`] of
//!   `u64::MAX` microseconds or more (the core's saturated delay, about 584 554 years) becomes
//!   [`embassy_time::Duration::MAX`].
//!
//! embassy's own `Instant + Duration` and `Timer::after` panic on overflow; everything in this
//! crate goes through the saturating forms here (for example [`deadline_after`]) and
//! `Timer::at`, so `Duration::MAX` means "never", not a panic.
//!
//! The conversions are written once for any tick rate (`*_at(tick_hz, ..)`, private) and
//! unit-tested at 1 MHz and 32.768 kHz; the public functions call them with
//! [`embassy_time::TICK_HZ`].

use core::time::Duration;

use embassy_time::TICK_HZ;
use rustkernel_core::time::{Instant as CoreInstant, duration_as_micros};

const MICROS_PER_SEC: u64 = 1_000_000;
const NANOS_PER_SEC: u128 = 1_000_000_000;

/// Which way a conversion that does not come out whole goes.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Rounding {
    Down,
    Up,
}

/// `value * mul / div`, rounded as asked, saturating at `u64::MAX`.
///
/// A zero `div` (a zero tick rate, which no driver has) saturates instead of dividing.
const fn scale(value: u128, mul: u128, div: u128, rounding: Rounding) -> u64 {
    if div == 0 {
        return u64::MAX;
    }
    let Some(product) = value.checked_mul(mul) else {
        return u64::MAX;
    };
    let mut quotient = product / div;
    if matches!(rounding, Rounding::Up) && !product.is_multiple_of(div) {
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

/// Microseconds in `ticks` ticks of a `tick_hz` clock, rounded as asked, saturating.
const fn ticks_to_micros_at(tick_hz: u64, ticks: u64, rounding: Rounding) -> u64 {
    if tick_hz == MICROS_PER_SEC {
        return ticks;
    }
    scale(
        ticks as u128,
        MICROS_PER_SEC as u128,
        tick_hz as u128,
        rounding,
    )
}

/// Ticks of a `tick_hz` clock in `micros` microseconds, rounded up, saturating.
const fn micros_to_ticks_at(tick_hz: u64, micros: u64) -> u64 {
    if tick_hz == MICROS_PER_SEC {
        return micros;
    }
    scale(
        micros as u128,
        tick_hz as u128,
        MICROS_PER_SEC as u128,
        Rounding::Up,
    )
}

/// The core instant (microseconds) of tick `ticks`: rounded up; "never" stays "never".
const fn instant_to_core_at(tick_hz: u64, ticks: u64) -> u64 {
    if ticks == u64::MAX {
        return u64::MAX;
    }
    ticks_to_micros_at(tick_hz, ticks, Rounding::Up)
}

/// The tick of core instant `micros`: rounded up; "never" stays "never".
const fn instant_to_embassy_at(tick_hz: u64, micros: u64) -> u64 {
    if micros == u64::MAX {
        return u64::MAX;
    }
    micros_to_ticks_at(tick_hz, micros)
}

/// Ticks of a `tick_hz` clock in `duration`, from its nanoseconds, rounded up; a duration the
/// core saturates (`u64::MAX` microseconds or more) is `u64::MAX` ticks.
///
/// Whole seconds and the fraction apart, in `u64` where it fits: `u128` arithmetic would cost
/// a firmware about 1.5 KiB of flash (a 128-bit division) on every deadline's path.
const fn duration_to_ticks_at(tick_hz: u64, duration: Duration) -> u64 {
    if duration_as_micros(duration) == u64::MAX {
        return u64::MAX;
    }
    let Some(whole) = duration.as_secs().checked_mul(tick_hz) else {
        return u64::MAX;
    };
    let nanos = duration.subsec_nanos() as u64;
    let fraction = if tick_hz == MICROS_PER_SEC {
        nanos.div_ceil(1_000)
    } else if let Some(product) = nanos.checked_mul(tick_hz) {
        product.div_ceil(1_000_000_000)
    } else {
        scale(nanos as u128, tick_hz as u128, NANOS_PER_SEC, Rounding::Up)
    };
    whole.saturating_add(fraction)
}

/// Microseconds in `ticks` embassy ticks, rounded down, saturating.
#[must_use]
pub const fn ticks_to_micros(ticks: u64) -> u64 {
    ticks_to_micros_at(TICK_HZ, ticks, Rounding::Down)
}

/// Embassy ticks in `micros` microseconds, rounded up, saturating.
#[must_use]
pub const fn micros_to_ticks(micros: u64) -> u64 {
    micros_to_ticks_at(TICK_HZ, micros)
}

/// An embassy instant on the core's clock (microseconds since boot, rounded **up**, so that a
/// core instant computed as `now + delay` is never less than `delay` after the real time);
/// [`embassy_time::Instant::MAX`] is [`CoreInstant::MAX`].
#[must_use]
pub const fn to_core_instant(instant: embassy_time::Instant) -> CoreInstant {
    CoreInstant::from_micros(instant_to_core_at(TICK_HZ, instant.as_ticks()))
}

/// A core instant on embassy's clock (ticks since boot, rounded up, saturating);
/// [`CoreInstant::MAX`] ("never") is [`embassy_time::Instant::MAX`] at every tick rate.
#[must_use]
pub const fn to_embassy_instant(instant: CoreInstant) -> embassy_time::Instant {
    embassy_time::Instant::from_ticks(instant_to_embassy_at(TICK_HZ, instant.as_micros()))
}

/// An embassy duration as a [`core::time::Duration`] (whole microseconds, rounded down).
#[must_use]
pub const fn to_core_duration(duration: embassy_time::Duration) -> Duration {
    rustkernel_core::time::duration_from_micros(ticks_to_micros(duration.as_ticks()))
}

/// A [`core::time::Duration`] as an embassy duration: its nanoseconds rounded up to a whole
/// tick (so a timer of it never fires early), saturating at [`embassy_time::Duration::MAX`],
/// which is also what a duration of `u64::MAX` microseconds or more becomes.
#[must_use]
pub const fn to_embassy_duration(duration: Duration) -> embassy_time::Duration {
    embassy_time::Duration::from_ticks(duration_to_ticks_at(TICK_HZ, duration))
}

/// Now, on the core's clock: `embassy_time::Instant::now()` in microseconds since boot,
/// rounded up (see the [module docs](self)).
///
/// Needs an embassy time driver at link time, like every timer in this crate.
#[must_use]
pub fn now() -> CoreInstant {
    to_core_instant(embassy_time::Instant::now())
}

/// The embassy instant `timeout` from now, saturating at [`embassy_time::Instant::MAX`]
/// (never), where `Instant::now() + timeout` would panic.
///
/// Counted in ticks: the tick now plus `timeout` rounded up to whole ticks
/// ([`to_embassy_duration`]), so the instant is never less than `timeout` away and no instant
/// goes through microseconds on the way (see the [module docs](self)).
#[must_use]
pub fn deadline_after(timeout: Duration) -> embassy_time::Instant {
    embassy_time::Instant::from_ticks(tick_after(
        TICK_HZ,
        embassy_time::Instant::now().as_ticks(),
        timeout,
    ))
}

/// The tick `timeout` after tick `now` of a `tick_hz` clock: the duration rounded up to whole
/// ticks, the sum saturating at `u64::MAX` (never).
///
/// Instants that stay in ticks do not move: converting an instant to the core's microseconds
/// and back rounds up twice (tick 1 is 30.52 us, 31 us, then tick 2 at 32.768 kHz), so a
/// deadline taken out of the core and wrapped again would move one tick later each time. The
/// adapter's [`DeadlineContext`](crate::deadline::DeadlineContext) therefore keeps its instant
/// in ticks and converts only durations.
const fn tick_after(tick_hz: u64, now: u64, timeout: Duration) -> u64 {
    now.saturating_add(duration_to_ticks_at(tick_hz, timeout))
}

#[cfg(test)]
mod tests {
    use super::*;

    const MHZ: u64 = 1_000_000;
    const SLOW: u64 = 32_768;

    #[test]
    fn scale_rounds_and_saturates() {
        // 32.768 kHz: 1 tick = 30.517578125 us.
        assert_eq!(scale(1, 15_625, 512, Rounding::Down), 30);
        assert_eq!(scale(1, 15_625, 512, Rounding::Up), 31);
        assert_eq!(scale(1, 512, 15_625, Rounding::Up), 1);
        assert_eq!(scale(0, 512, 15_625, Rounding::Up), 0);
        assert_eq!(scale(15_625, 512, 15_625, Rounding::Up), 512);
        assert_eq!(scale(u64::MAX.into(), 3, 1, Rounding::Down), u64::MAX);
        assert_eq!(scale(u64::MAX.into(), 1, 2, Rounding::Up), 1 << 63);
        assert_eq!(scale(u64::MAX.into(), 1, 2, Rounding::Down), (1 << 63) - 1);
        assert_eq!(scale(7, 5, 0, Rounding::Down), u64::MAX);
        assert_eq!(scale(u128::MAX, 2, 1, Rounding::Down), u64::MAX);
        assert_eq!(scale(7, 4, 4, Rounding::Up), 7);
    }

    /// Ticks of a `tick_hz` clock are at least `micros` long.
    fn ticks_cover(tick_hz: u64, ticks: u64, micros: u64) -> bool {
        u128::from(ticks) * u128::from(MICROS_PER_SEC) >= u128::from(micros) * u128::from(tick_hz)
    }

    /// What the adapters do: read `now`, let the core add `delay`, sleep with `Timer::at` on the
    /// conversion back. The timer must not fire before `delay` has passed, and when it fires
    /// the core must see its instant reached.
    fn assert_never_early(tick_hz: u64) {
        for now_ticks in 0..200 {
            let now = instant_to_core_at(tick_hz, now_ticks);
            for delay_us in 1..=2_000 {
                let due = now.saturating_add(delay_us);
                let fires = instant_to_embassy_at(tick_hz, due);
                assert!(
                    ticks_cover(tick_hz, fires - now_ticks, delay_us),
                    "{tick_hz} Hz: a {delay_us} us delay from tick {now_ticks} fires after \
                     {} ticks",
                    fires - now_ticks
                );
                assert!(instant_to_core_at(tick_hz, fires) >= due);
            }
        }
    }

    #[test]
    fn timers_from_core_instants_never_fire_early_at_1_mhz() {
        assert_never_early(MHZ);
        // Exact both ways: plain copies.
        assert_eq!(instant_to_core_at(MHZ, 977), 977);
        assert_eq!(instant_to_embassy_at(MHZ, 977), 977);
    }

    #[test]
    fn timers_from_core_instants_never_fire_early_at_32_768_hz() {
        assert_never_early(SLOW);
        // The cases, from tick 1 (30.52 us): a 31 us delay waits 2 ticks (61.04 us),
        // not 1; a 977 us delay waits 33 ticks (1007.08 us), not 32 (976.56 us).
        let now = instant_to_core_at(SLOW, 1);
        assert_eq!(instant_to_embassy_at(SLOW, now + 31) - 1, 2);
        assert_eq!(instant_to_embassy_at(SLOW, now + 977) - 1, 33);
    }

    #[test]
    fn durations_in_u64_agree_with_the_exact_u128_product() {
        for tick_hz in [1, MHZ, SLOW, 80_000_000, 1 << 40] {
            for nanos in [
                0,
                1,
                999,
                1_500,
                30_518,
                999_999_999,
                1_000_000_001,
                86_400_000_000_123,
                u64::MAX,
            ] {
                let duration = Duration::from_nanos(nanos);
                let exact = scale(
                    duration.as_nanos(),
                    u128::from(tick_hz),
                    NANOS_PER_SEC,
                    Rounding::Up,
                );
                assert_eq!(
                    duration_to_ticks_at(tick_hz, duration),
                    exact,
                    "{tick_hz} Hz, {nanos} ns"
                );
            }
        }
    }

    #[test]
    fn durations_round_up_from_nanoseconds() {
        for tick_hz in [MHZ, SLOW] {
            for nanos in [1, 999, 1_000, 1_500, 30_517, 30_518, 976_563, 1_000_000_001] {
                let ticks = duration_to_ticks_at(tick_hz, Duration::from_nanos(nanos));
                // At least the duration, and less than one tick more.
                let tick_nanos = |t: u64| u128::from(t) * NANOS_PER_SEC;
                let want = u128::from(nanos) * u128::from(tick_hz);
                assert!(
                    tick_nanos(ticks) >= want,
                    "{tick_hz} Hz, {nanos} ns: {ticks}"
                );
                assert!(
                    tick_nanos(ticks - 1) < want,
                    "{tick_hz} Hz, {nanos} ns: {ticks}"
                );
            }
            assert_eq!(duration_to_ticks_at(tick_hz, Duration::ZERO), 0);
        }
        assert_eq!(duration_to_ticks_at(MHZ, Duration::from_nanos(1_500)), 2);
        assert_eq!(duration_to_ticks_at(SLOW, Duration::from_nanos(1_500)), 1);
        assert_eq!(duration_to_ticks_at(SLOW, Duration::from_micros(31)), 2);
    }

    #[test]
    fn never_is_never_at_every_tick_rate() {
        for tick_hz in [MHZ, SLOW, 80_000_000, 1] {
            assert_eq!(instant_to_embassy_at(tick_hz, u64::MAX), u64::MAX);
            assert_eq!(instant_to_core_at(tick_hz, u64::MAX), u64::MAX);
            assert_eq!(duration_to_ticks_at(tick_hz, Duration::MAX), u64::MAX);
            assert_eq!(
                duration_to_ticks_at(tick_hz, Duration::from_micros(u64::MAX)),
                u64::MAX
            );
        }
        // Far but not never: a finite number of ticks.
        assert!(instant_to_embassy_at(SLOW, u64::MAX - 1) < u64::MAX);
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
        assert_eq!(
            to_core_instant(embassy_time::Instant::MAX),
            CoreInstant::MAX
        );
        // Below a microsecond is still a wait: one tick, never none.
        assert_eq!(to_embassy_duration(Duration::from_nanos(999)).as_ticks(), 1);
        assert_eq!(to_embassy_duration(Duration::ZERO).as_ticks(), 0);
    }
}
