//! Sliding windows of call outcomes for the failure-rate and slow-call modes: by count
//! ([`CountWindow`]) or by time ([`TimeWindow`](super::TimeWindow)).

use crate::error::{ConfigError, ConfigField};
use crate::time::Instant;

use super::CircuitBreakerConfig;

/// One finished call as a window records it.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Outcome {
    /// The call failed with a recorded error kind.
    pub failed: bool,
    /// The call took at least `slow_call_duration`.
    pub slow: bool,
}

/// What a window holds now.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct WindowCounts {
    /// Outcomes in the window.
    pub calls: u32,
    /// Failed outcomes in the window.
    pub failures: u32,
    /// Slow outcomes in the window.
    pub slow: u32,
}

/// Storage for the last outcomes of a breaker; [`NoWindow`] for the consecutive-failure mode,
/// [`CountWindow`] for the last `N` calls, [`TimeWindow`](super::TimeWindow) for the last `T`
/// seconds.
///
/// The breaker calls [`advance`](Self::advance) with the time before every
/// [`record`](Self::record) and every evaluation; a window by count ignores it.
pub trait SlidingWindow {
    /// How many outcomes the window holds at most (`u32::MAX` for a window by time, whose
    /// counts saturate).
    const CAPACITY: u32;
    /// Whether the window's counts depend on time (then [`stable_until`](Self::stable_until)
    /// is not always [`Instant::MAX`]).
    const TIMED: bool = false;
    /// Adds an outcome, dropping the oldest when full.
    fn record(&mut self, outcome: Outcome);
    /// Forgets every outcome.
    fn clear(&mut self);
    /// The current counts (as of the last [`advance`](Self::advance)).
    fn counts(&self) -> WindowCounts;
    /// The counts as of `now`: what [`counts`](Self::counts) would be after
    /// [`advance`](Self::advance)`(now)`, without moving the window. A window by count ignores
    /// `now`.
    fn counts_at(&self, now: Instant) -> WindowCounts {
        let _ = now;
        self.counts()
    }
    /// Moves the window to `now`, dropping what fell out of it (a window by time); `now`
    /// earlier than a previous one changes nothing.
    fn advance(&mut self, now: Instant) {
        let _ = now;
    }
    /// Adds `count` fast successes at the current head of the window (as `count` calls of
    /// [`record`](Self::record) would, in any order, since they are all alike).
    fn record_successes(&mut self, count: u64) {
        let fast = Outcome {
            failed: false,
            slow: false,
        };
        for _ in 0..count.min(u64::from(Self::CAPACITY)) {
            self.record(fast);
        }
    }
    /// Until when time alone cannot drop anything from the window (exclusive): the end of a
    /// window by time's current bucket, [`Instant::MAX`] for a window by count.
    fn stable_until(&self) -> Instant {
        Instant::MAX
    }
    /// Takes what the window needs from the breaker's configuration, when the breaker is built.
    ///
    /// # Errors
    /// A window by count refuses a `window_duration` (which only a window by time reads).
    fn configure(&mut self, config: &CircuitBreakerConfig) -> Result<(), ConfigError> {
        refuse_window_duration(config)
    }
}

/// What a window by count asks of the configuration: no `window_duration`, which only a window
/// by time reads. `const`, for the breaker's `const` constructors.
pub(crate) const fn refuse_window_duration(
    config: &CircuitBreakerConfig,
) -> Result<(), ConfigError> {
    if config.window_duration.is_some() {
        Err(ConfigError::NotApplicable(ConfigField::WindowDuration))
    } else {
        Ok(())
    }
}

/// No window: the breaker counts consecutive failures only. Takes no space.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct NoWindow;

impl SlidingWindow for NoWindow {
    const CAPACITY: u32 = 0;
    fn record(&mut self, _outcome: Outcome) {}
    fn clear(&mut self) {}
    fn counts(&self) -> WindowCounts {
        WindowCounts::default()
    }
}

const FAILED: u8 = 1;
const SLOW: u8 = 2;

/// The last `N` outcomes in a ring, with running counts so each call costs O(1).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct CountWindow<const N: usize> {
    ring: [u8; N],
    next: usize,
    counts: WindowCounts,
}

impl<const N: usize> CountWindow<N> {
    /// An empty window of `N` outcomes (`N` is checked at compile time: `0 < N <= u32::MAX`).
    #[must_use]
    pub const fn new() -> Self {
        const {
            assert!(
                N > 0 && N as u64 <= u32::MAX as u64,
                "window capacity must be in 1..=u32::MAX"
            )
        };
        Self {
            ring: [0; N],
            next: 0,
            counts: WindowCounts {
                calls: 0,
                failures: 0,
                slow: 0,
            },
        }
    }
}

impl<const N: usize> Default for CountWindow<N> {
    fn default() -> Self {
        Self::new()
    }
}

impl<const N: usize> SlidingWindow for CountWindow<N> {
    #[allow(
        clippy::cast_possible_truncation,
        reason = "N <= u32::MAX is asserted in `new`"
    )]
    const CAPACITY: u32 = N as u32;

    fn record(&mut self, outcome: Outcome) {
        let bits = (u8::from(outcome.failed) * FAILED) | (u8::from(outcome.slow) * SLOW);
        let Some(slot) = self.ring.get_mut(self.next) else {
            return;
        };
        if self.counts.calls == Self::CAPACITY {
            self.counts.failures = self
                .counts
                .failures
                .saturating_sub(u32::from(*slot & FAILED != 0));
            self.counts.slow = self
                .counts
                .slow
                .saturating_sub(u32::from(*slot & SLOW != 0));
        } else {
            self.counts.calls += 1;
        }
        *slot = bits;
        self.counts.failures += u32::from(outcome.failed);
        self.counts.slow += u32::from(outcome.slow);
        self.next = if self.next + 1 == N { 0 } else { self.next + 1 };
    }

    fn clear(&mut self) {
        self.next = 0;
        self.counts = WindowCounts::default();
    }

    fn counts(&self) -> WindowCounts {
        self.counts
    }

    fn record_successes(&mut self, count: u64) {
        if count >= u64::from(Self::CAPACITY) {
            // Every slot is a fast success now; the ring's position moves as `count` records
            // would move it.
            self.ring = [0; N];
            let steps = usize::try_from(count % (N as u64)).unwrap_or(0);
            self.next = (self.next + steps) % N;
            self.counts = WindowCounts {
                calls: Self::CAPACITY,
                failures: 0,
                slow: 0,
            };
        } else {
            let fast = Outcome {
                failed: false,
                slow: false,
            };
            for _ in 0..count {
                self.record(fast);
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ring_drops_the_oldest_outcome() {
        let mut window = CountWindow::<3>::new();
        let fail = Outcome {
            failed: true,
            slow: false,
        };
        let slow = Outcome {
            failed: false,
            slow: true,
        };
        window.record(fail);
        window.record(slow);
        window.record(fail);
        assert_eq!(
            window.counts(),
            WindowCounts {
                calls: 3,
                failures: 2,
                slow: 1
            }
        );
        window.record(slow); // drops the first failure
        assert_eq!(
            window.counts(),
            WindowCounts {
                calls: 3,
                failures: 1,
                slow: 2
            }
        );
        window.record(slow); // drops the slow success
        window.record(slow); // drops the second failure
        assert_eq!(
            window.counts(),
            WindowCounts {
                calls: 3,
                failures: 0,
                slow: 3
            }
        );
        window.clear();
        assert_eq!(window.counts(), WindowCounts::default());
    }
}
