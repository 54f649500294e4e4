//! A sliding window by time: the outcomes of the last `T` in `B` buckets.

use core::time::Duration;

use crate::error::{ConfigError, ConfigField};
use crate::time::{Instant, duration_as_micros};

use super::CircuitBreakerConfig;
use super::window::{Outcome, SlidingWindow, WindowCounts};

/// The outcomes of the last `window_duration` (the configuration's `T`), in `B` buckets of `T / B`
/// each (rounded down to whole microseconds), as Resilience4j's `TIME_BASED` window, Polly's
/// `SamplingDuration` and gobreaker's buckets keep them.
///
/// An outcome at `now` goes to the bucket `now / (T / B)`; the window holds the current bucket
/// and the `B - 1` before it, so a whole bucket drops out at once when time passes its end.
/// Fixed size (`B` counters of 12 bytes and 24 bytes more), no allocation, no clock of its own:
/// the breaker hands it the `now` of each input. Counts saturate at `u32::MAX` per bucket.
///
/// `T` comes from [`CircuitBreakerConfig::window_duration`] when the breaker is built (so it can
/// sit in a serialized configuration); a breaker with a `TimeWindow` refuses a configuration
/// without it.
///
/// ```
/// use core::time::Duration;
/// use rustkernel_core::resilience::{CircuitBreaker, CircuitBreakerConfig, TimeWindow};
///
/// // Open at 50 % failures over the last 10 s (10 buckets of 1 s), once 20 calls are in it.
/// let cb = CircuitBreaker::with_window(
///     CircuitBreakerConfig {
///         failure_rate_threshold: Some(0.5),
///         minimum_calls: 20,
///         window_duration: Some(Duration::from_secs(10)),
///         ..Default::default()
///     },
///     TimeWindow::<10>::new(),
/// );
/// # let _ = cb;
/// ```
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct TimeWindow<const B: usize> {
    buckets: [WindowCounts; B],
    /// Length of one bucket in microseconds (0 until configured).
    bucket_micros: u64,
    /// The number (`now / bucket_micros`) of the current bucket.
    head: u64,
    /// Where the current bucket sits in `buckets`.
    head_slot: usize,
    totals: WindowCounts,
}

const EMPTY: WindowCounts = WindowCounts {
    calls: 0,
    failures: 0,
    slow: 0,
};

impl<const B: usize> TimeWindow<B> {
    /// An empty window of `B` buckets (`B` is checked at compile time: `0 < B <= 65 535`); its
    /// length comes from the configuration when the breaker is built.
    #[must_use]
    pub const fn new() -> Self {
        const { assert!(B > 0 && B <= 65_535, "bucket count must be in 1..=65535") };
        Self {
            buckets: [EMPTY; B],
            bucket_micros: 0,
            head: 0,
            head_slot: 0,
            totals: EMPTY,
        }
    }

    /// The length of one bucket (zero before the breaker configured the window).
    #[must_use]
    pub const fn bucket_duration(&self) -> Duration {
        crate::time::duration_from_micros(self.bucket_micros)
    }

    fn bucket_of(&self, now: Instant) -> u64 {
        now.as_micros().checked_div(self.bucket_micros).unwrap_or(0)
    }
}

impl<const B: usize> Default for TimeWindow<B> {
    fn default() -> Self {
        Self::new()
    }
}

fn add(into: &mut WindowCounts, calls: u32, outcome: Outcome) {
    into.calls = into.calls.saturating_add(calls);
    if outcome.failed {
        into.failures = into.failures.saturating_add(calls);
    }
    if outcome.slow {
        into.slow = into.slow.saturating_add(calls);
    }
}

impl<const B: usize> SlidingWindow for TimeWindow<B> {
    const CAPACITY: u32 = u32::MAX;
    const TIMED: bool = true;

    fn record(&mut self, outcome: Outcome) {
        if let Some(bucket) = self.buckets.get_mut(self.head_slot) {
            add(bucket, 1, outcome);
            add(&mut self.totals, 1, outcome);
        }
    }

    fn clear(&mut self) {
        self.buckets = [EMPTY; B];
        self.totals = EMPTY;
    }

    fn counts(&self) -> WindowCounts {
        self.totals
    }

    fn counts_at(&self, now: Instant) -> WindowCounts {
        let Some(steps) = self
            .bucket_of(now)
            .checked_sub(self.head)
            .filter(|&steps| steps > 0)
        else {
            return self.totals;
        };
        if steps >= B as u64 {
            return EMPTY;
        }
        let mut counts = self.totals;
        let mut slot = self.head_slot;
        for _ in 0..steps {
            slot = if slot + 1 == B { 0 } else { slot + 1 };
            if let Some(old) = self.buckets.get(slot) {
                counts.calls = counts.calls.saturating_sub(old.calls);
                counts.failures = counts.failures.saturating_sub(old.failures);
                counts.slow = counts.slow.saturating_sub(old.slow);
            }
        }
        counts
    }

    fn advance(&mut self, now: Instant) {
        let bucket = self.bucket_of(now);
        let Some(steps) = bucket.checked_sub(self.head).filter(|&steps| steps > 0) else {
            return;
        };
        if steps >= B as u64 {
            self.buckets = [EMPTY; B];
            self.totals = EMPTY;
        } else {
            for _ in 0..steps {
                self.head_slot = if self.head_slot + 1 == B {
                    0
                } else {
                    self.head_slot + 1
                };
                if let Some(old) = self.buckets.get_mut(self.head_slot) {
                    self.totals.calls = self.totals.calls.saturating_sub(old.calls);
                    self.totals.failures = self.totals.failures.saturating_sub(old.failures);
                    self.totals.slow = self.totals.slow.saturating_sub(old.slow);
                    *old = EMPTY;
                }
            }
        }
        self.head = bucket;
    }

    fn record_successes(&mut self, count: u64) {
        let count = u32::try_from(count).unwrap_or(u32::MAX);
        let fast = Outcome {
            failed: false,
            slow: false,
        };
        if let Some(bucket) = self.buckets.get_mut(self.head_slot) {
            add(bucket, count, fast);
            add(&mut self.totals, count, fast);
        }
    }

    fn stable_until(&self) -> Instant {
        Instant::from_micros(
            self.head
                .saturating_add(1)
                .saturating_mul(self.bucket_micros),
        )
    }

    fn configure(&mut self, config: &CircuitBreakerConfig) -> Result<(), ConfigError> {
        let Some(length) = config.window_duration else {
            return Err(ConfigError::Missing(ConfigField::WindowDuration));
        };
        #[allow(clippy::cast_possible_truncation, reason = "B <= 65 535")]
        let buckets = B as u32;
        let bucket_micros = duration_as_micros(length) / u64::from(buckets);
        if bucket_micros == 0 {
            return Err(ConfigError::BucketTooShort { buckets });
        }
        self.bucket_micros = bucket_micros;
        self.head = 0;
        self.head_slot = 0;
        self.clear();
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const FAIL: Outcome = Outcome {
        failed: true,
        slow: false,
    };
    const SLOW: Outcome = Outcome {
        failed: false,
        slow: true,
    };

    fn window() -> TimeWindow<4> {
        let mut window = TimeWindow::<4>::new();
        let config = CircuitBreakerConfig {
            window_duration: Some(Duration::from_secs(4)),
            ..CircuitBreakerConfig::DEFAULT
        };
        assert_eq!(window.configure(&config), Ok(()));
        window
    }

    #[test]
    fn whole_buckets_drop_out_as_time_passes() {
        let mut w = window();
        w.advance(Instant::from_millis(500));
        w.record(FAIL);
        w.advance(Instant::from_millis(1_500));
        w.record(SLOW);
        w.record_successes(3);
        assert_eq!(
            w.counts(),
            WindowCounts {
                calls: 5,
                failures: 1,
                slow: 1
            }
        );
        assert_eq!(w.stable_until(), Instant::from_secs(2));
        // Bucket 0 ([0 s, 1 s)) is still in at 3.9 s, out at 4 s.
        w.advance(Instant::from_millis(3_900));
        assert_eq!(w.counts().calls, 5);
        w.advance(Instant::from_secs(4));
        assert_eq!(
            w.counts(),
            WindowCounts {
                calls: 4,
                failures: 0,
                slow: 1
            }
        );
        // Backwards changes nothing; far ahead empties it.
        w.advance(Instant::ZERO);
        assert_eq!(w.counts().calls, 4);
        w.advance(Instant::from_secs(100));
        assert_eq!(w.counts(), WindowCounts::default());
    }

    #[test]
    fn the_length_comes_from_the_configuration() {
        let mut w = TimeWindow::<10>::new();
        assert_eq!(
            w.configure(&CircuitBreakerConfig::DEFAULT),
            Err(ConfigError::Missing(ConfigField::WindowDuration))
        );
        let short = CircuitBreakerConfig {
            window_duration: Some(Duration::from_micros(9)),
            ..CircuitBreakerConfig::DEFAULT
        };
        assert_eq!(
            w.configure(&short),
            Err(ConfigError::BucketTooShort { buckets: 10 })
        );
        let ok = CircuitBreakerConfig {
            window_duration: Some(Duration::from_millis(10)),
            ..CircuitBreakerConfig::DEFAULT
        };
        assert_eq!(w.configure(&ok), Ok(()));
        assert_eq!(w.bucket_duration(), Duration::from_millis(1));
    }
}
