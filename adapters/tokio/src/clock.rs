//! The core's clock on tokio: [`tokio::time::Instant`] to and from the core's [`Instant`].
//!
//! The core counts microseconds since an epoch the adapter picks. This adapter picks one
//! process-wide epoch, captured once on first use, and reads time through
//! [`tokio::time::Instant::now`], so everything here follows tokio's paused clock in tests
//! (`#[tokio::test(start_paused = true)]`, `tokio::time::advance`).
//!
//! # The epoch
//! A paused tokio clock starts at the real time its runtime was built and then only moves
//! forward, so its readings are never earlier than that. The epoch is therefore taken from the
//! real monotonic clock and set back a day (less where the platform's clock cannot go that far
//! back): every runtime built before the first conversion still reads as later than the epoch.
//! An instant earlier than the epoch converts to [`Instant::ZERO`]; an [`Instant`] too far out
//! for tokio converts to about thirty years from the epoch, which tokio treats as "never".
//!
//! Conversions round down to whole microseconds; `to_core(to_tokio(i)) == i` for every
//! instant tokio can represent.
//!
//! # The coarse clock
//! [`coarse_now`] reads the operating system's coarse monotonic clock instead (Linux:
//! `CLOCK_MONOTONIC_COARSE`, through the `coarsetime` crate): a read of shared memory that
//! costs a fifth of a precise read on the project's build machine (README, Benchmarks), at the
//! resolution of the kernel's tick (1 to 4 ms on Linux, about 16 ms on Windows). It is
//! calibrated once against [`now`] so that its instants compare with this module's: it reads at
//! most one tick earlier than [`now`] would, and never later. It follows the real clock only:
//! under tokio's paused clock it disagrees with [`now`], so code that tests on a paused clock
//! must not use it. A circuit breaker opts in with
//! [`CircuitBreakerBuilder::coarse_clock`](crate::breaker::CircuitBreakerBuilder::coarse_clock).

use std::sync::OnceLock;
use std::time::Duration;

use rustkernel_core::time::{Instant, duration_as_micros};

/// How far before the first conversion the epoch is set, longest first.
const EPOCH_MARGINS: [Duration; 4] = [
    Duration::from_secs(86_400),
    Duration::from_secs(3_600),
    Duration::from_secs(60),
    Duration::ZERO,
];

/// What an [`Instant`] beyond tokio's range converts to: about thirty years after the epoch,
/// as tokio's own "far future".
const FAR_FUTURE: Duration = Duration::from_secs(86_400 * 365 * 30);

static EPOCH: OnceLock<tokio::time::Instant> = OnceLock::new();

/// The process-wide epoch: the tokio instant that is [`Instant::ZERO`] for the core.
#[must_use]
pub fn epoch() -> tokio::time::Instant {
    *EPOCH.get_or_init(|| {
        let real = std::time::Instant::now();
        let start = EPOCH_MARGINS
            .iter()
            .find_map(|margin| real.checked_sub(*margin))
            .unwrap_or(real);
        tokio::time::Instant::from_std(start)
    })
}

/// Now, on tokio's clock (paused or not), as the core's [`Instant`].
#[must_use]
pub fn now() -> Instant {
    to_core(tokio::time::Instant::now())
}

/// A tokio instant as the core's [`Instant`]: whole microseconds since the [`epoch`],
/// [`Instant::ZERO`] for instants before it.
#[must_use]
pub fn to_core(instant: tokio::time::Instant) -> Instant {
    Instant::from_micros(duration_as_micros(
        instant.saturating_duration_since(epoch()),
    ))
}

/// The coarse clock's reading at calibration, in core microseconds since the [`epoch`] minus
/// its own microseconds: added to a coarse reading, it gives the core instant.
static COARSE_OFFSET: OnceLock<i64> = OnceLock::new();

/// How long calibration waits at most for the coarse clock to tick.
const CALIBRATION_LIMIT: Duration = Duration::from_millis(50);

/// Microseconds of a `coarsetime` reading (32.32 fixed-point seconds), rounded down.
fn coarse_micros(reading: coarsetime::Instant) -> u64 {
    let ticks = reading.as_ticks();
    let seconds = ticks >> 32;
    let fraction = ticks & u64::from(u32::MAX);
    seconds
        .saturating_mul(1_000_000)
        .saturating_add((fraction * 1_000_000) >> 32)
}

/// Calibrates the coarse clock against [`now`]'s real clock, once per process: waits for the
/// coarse clock to tick (at most 50 ms) and pairs the new reading with a
/// precise reading taken before the last coarse read that still showed the old value, so
/// before the tick. Coarse instants then never read later than the real clock, and at most one
/// tick (plus one turn of the wait loop) earlier.
///
/// The first call can take up to one tick of the coarse clock; a breaker that uses the coarse
/// clock calls it when it is built, so its calls never wait for it.
pub fn calibrate_coarse() {
    coarse_offset();
}

/// The calibrated offset (see [`calibrate_coarse`]).
fn coarse_offset() -> i64 {
    *COARSE_OFFSET.get_or_init(|| {
        let precise = || {
            let since = std::time::Instant::now().saturating_duration_since(epoch().into_std());
            i64::try_from(duration_as_micros(since)).unwrap_or(i64::MAX)
        };
        let coarse = || {
            let reading = coarsetime::Instant::now_without_cache_update();
            (
                reading,
                i64::try_from(coarse_micros(reading)).unwrap_or(i64::MAX),
            )
        };
        let started = std::time::Instant::now();
        let mut before = precise();
        let (first, _) = coarse();
        loop {
            // `before` was read before a coarse read that showed `first`: before the tick.
            let next = precise();
            let (reading, micros) = coarse();
            if reading != first {
                // Less one microsecond for the rounding of the two readings.
                return before.saturating_sub(micros).saturating_sub(1);
            }
            if started.elapsed() >= CALIBRATION_LIMIT {
                // No tick seen (a stopped or very coarse clock): pair the last two reads.
                return next.saturating_sub(micros);
            }
            before = next;
        }
    })
}

/// Now, on the coarse real-time clock (see [the module docs](self#the-coarse-clock)), as the
/// core's [`Instant`]: at most one tick of the operating system's clock earlier than [`now`]
/// would read on the real clock, never later.
#[must_use]
pub fn coarse_now() -> Instant {
    let offset = coarse_offset();
    let coarse = coarse_micros(coarsetime::Instant::now_without_cache_update());
    Instant::from_micros(coarse.saturating_add_signed(offset))
}

/// The core's [`Instant`] as a tokio instant, for `sleep_until`; instants beyond tokio's range
/// (such as [`Instant::MAX`], "never") give a point about thirty years after the epoch.
#[must_use]
pub fn to_tokio(instant: Instant) -> tokio::time::Instant {
    let epoch = epoch();
    let offset = Duration::from_micros(instant.as_micros()).min(FAR_FUTURE);
    epoch.checked_add(offset).unwrap_or(epoch)
}

/// "Never" for a tokio timer: [`Instant::MAX`] on tokio's clock.
#[must_use]
pub fn never() -> tokio::time::Instant {
    to_tokio(Instant::MAX)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test(start_paused = true)]
    async fn conversions_round_trip_and_follow_the_paused_clock() {
        let before = now();
        tokio::time::advance(Duration::from_millis(1_500)).await;
        assert_eq!(now() - before, Duration::from_millis(1_500));
        let t = tokio::time::Instant::now();
        let floored = Duration::from_micros(duration_as_micros(t - epoch()));
        assert_eq!(to_tokio(to_core(t)), epoch() + floored);
        for micros in [0, 1, 999_999, 1 << 40] {
            let i = Instant::from_micros(micros);
            assert_eq!(to_core(to_tokio(i)), i);
        }
    }

    #[test]
    fn the_coarse_clock_reads_at_most_one_tick_before_the_precise_one() {
        calibrate_coarse();
        // Real time is the point: the coarse clock follows only the real clock.
        for _ in 0..1_000 {
            let before = std::time::Instant::now();
            let coarse = coarse_now();
            let after = to_core(tokio::time::Instant::from_std(std::time::Instant::now()));
            let before = to_core(tokio::time::Instant::from_std(before));
            assert!(coarse <= after, "{coarse:?} after {after:?}");
            // One tick of a Linux kernel is at most 10 ms (HZ = 100); Windows' is about 16 ms.
            assert!(
                before.saturating_duration_since(coarse) < Duration::from_millis(20),
                "{coarse:?} too far before {before:?}"
            );
        }
    }

    #[test]
    fn coarse_readings_convert_from_fixed_point_seconds() {
        let reading = |seconds: u64, fraction: u64| {
            coarsetime::Instant::from_ticks((seconds << 32) | fraction)
        };
        assert_eq!(coarse_micros(reading(0, 0)), 0);
        assert_eq!(coarse_micros(reading(3, 1 << 31)), 3_500_000);
        assert_eq!(coarse_micros(reading(1, u64::from(u32::MAX))), 1_999_999);
        assert_eq!(
            coarse_micros(reading(u64::from(u32::MAX), 0)),
            4_294_967_295_000_000
        );
    }

    #[test]
    fn extremes_saturate() {
        let epoch = epoch();
        assert_eq!(to_core(epoch), Instant::ZERO);
        if let Some(earlier) = epoch.checked_sub(Duration::from_secs(1)) {
            assert_eq!(to_core(earlier), Instant::ZERO);
        }
        assert_eq!(to_tokio(Instant::MAX), epoch + FAR_FUTURE);
        assert!(to_core(to_tokio(Instant::MAX)) < Instant::MAX);
    }
}
