//! The bridge between tokio's clock and the core's [`Instant`]: microseconds since an origin.
//!
//! Private to the crate: the health probe and the supervisor each take an [`Epoch`] when they
//! are built and convert every reading of `tokio::time::Instant::now()` through it, so the
//! paused clock of `#[tokio::test(start_paused = true)]` drives the core exactly.

use std::time::Duration;

use rustkernel_core::time::{Instant, duration_as_micros};

/// How far ahead "never" lies when a core instant does not fit tokio's clock: about 30 years.
const FAR_FUTURE: Duration = Duration::from_secs(86_400 * 365 * 30);

/// The tokio instant that is the core's [`Instant::ZERO`].
#[derive(Clone, Copy, Debug)]
pub(crate) struct Epoch {
    origin: tokio::time::Instant,
}

impl Epoch {
    /// An epoch starting now on tokio's clock (the paused clock inside a paused runtime).
    pub(crate) fn new() -> Self {
        Self {
            origin: tokio::time::Instant::now(),
        }
    }

    /// Now, as the core counts it: whole microseconds since the origin (truncated).
    pub(crate) fn now(&self) -> Instant {
        self.instant_at(tokio::time::Instant::now())
    }

    /// `at` as the core counts it; instants before the origin count as the origin.
    pub(crate) fn instant_at(&self, at: tokio::time::Instant) -> Instant {
        Instant::from_micros(duration_as_micros(
            at.saturating_duration_since(self.origin),
        ))
    }

    /// The tokio instant of the core's `at`. Since [`Epoch::now`] truncates, the core reads
    /// `at` or later once tokio's clock reaches it: a timer set here never wakes early.
    /// Instants too far out for tokio's clock become about 30 years from now.
    pub(crate) fn to_tokio(self, at: Instant) -> tokio::time::Instant {
        self.origin
            .checked_add(Duration::from_micros(at.as_micros()))
            .unwrap_or_else(far_future)
    }
}

/// About 30 years from now: "never" for a tokio timer.
pub(crate) fn far_future() -> tokio::time::Instant {
    let now = tokio::time::Instant::now();
    now.checked_add(FAR_FUTURE).unwrap_or(now)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test(start_paused = true)]
    async fn converts_both_ways_on_the_paused_clock() {
        let epoch = Epoch::new();
        assert_eq!(epoch.now(), Instant::ZERO);
        tokio::time::advance(Duration::from_millis(1_500)).await;
        assert_eq!(epoch.now(), Instant::from_millis(1_500));
        let at = Instant::from_secs(7);
        let tokio_at = epoch.to_tokio(at);
        assert_eq!(epoch.instant_at(tokio_at), at);
        assert!(epoch.to_tokio(Instant::MAX) > tokio::time::Instant::now());
    }
}
