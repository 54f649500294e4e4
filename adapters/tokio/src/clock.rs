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
