//! Count-based sliding windows of call outcomes for the failure-rate mode.

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
/// [`CountWindow`] for the failure-rate mode.
pub trait SlidingWindow {
    /// How many outcomes the window holds at most.
    const CAPACITY: u32;
    /// Adds an outcome, dropping the oldest when full.
    fn record(&mut self, outcome: Outcome);
    /// Forgets every outcome.
    fn clear(&mut self);
    /// The current counts.
    fn counts(&self) -> WindowCounts;
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
