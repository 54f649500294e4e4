//! A window whose kind the configuration picks when the breaker is built, for breakers whose
//! mode comes from a file rather than from the code.

use super::window::{CountWindow, NoWindow, Outcome, SlidingWindow, WindowCounts};
use super::{CircuitBreakerConfig, TimeWindow};
use crate::error::ConfigError;
use crate::time::Instant;

/// A sliding window chosen by the configuration, when the breaker is built:
/// - `window_duration` set: a window by time ([`TimeWindow<B>`]) over that duration;
/// - otherwise, `failure_rate_threshold` or `slow_call_duration` set: the last `N` calls
///   ([`CountWindow<N>`]), with `minimum_calls` at most `N`;
/// - otherwise: no window, the consecutive-failure mode ([`NoWindow`]).
///
/// For a service that reads its breaker's mode from a configuration file (the host's
/// `[resilience.circuit_breaker]`), so one breaker type serves every mode. It takes the space of
/// the larger window. Code that knows its mode uses that window directly: it is smaller, and
/// its code holds only that mode's branches.
///
/// ```
/// use core::time::Duration;
/// use rustkernel_core::resilience::circuit_breaker::ConfiguredWindow;
/// use rustkernel_core::resilience::{CircuitBreaker, CircuitBreakerConfig};
///
/// let by_time = CircuitBreakerConfig {
///     failure_rate_threshold: Some(0.5),
///     window_duration: Some(Duration::from_secs(10)),
///     ..CircuitBreakerConfig::default()
/// };
/// let cb = CircuitBreaker::try_with_window(by_time, ConfiguredWindow::<100, 10>::new());
/// assert!(cb.is_ok());
/// ```
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum ConfiguredWindow<const N: usize = 100, const B: usize = 10> {
    /// The consecutive-failure mode.
    Consecutive(NoWindow),
    /// The last `N` calls.
    Count(CountWindow<N>),
    /// The last `window_duration` in `B` buckets.
    Time(TimeWindow<B>),
}

impl<const N: usize, const B: usize> ConfiguredWindow<N, B> {
    /// A window that [`configure`](SlidingWindow::configure) turns into the configured kind
    /// (consecutive until then).
    #[must_use]
    pub const fn new() -> Self {
        Self::Consecutive(NoWindow)
    }
}

impl<const N: usize, const B: usize> Default for ConfiguredWindow<N, B> {
    fn default() -> Self {
        Self::new()
    }
}

impl<const N: usize, const B: usize> SlidingWindow for ConfiguredWindow<N, B> {
    // The time window's: `configure` checks `minimum_calls` against `N` for the count window.
    const CAPACITY: u32 = u32::MAX;
    const TIMED: bool = true;

    fn record(&mut self, outcome: Outcome) {
        match self {
            Self::Consecutive(window) => window.record(outcome),
            Self::Count(window) => window.record(outcome),
            Self::Time(window) => window.record(outcome),
        }
    }

    fn clear(&mut self) {
        match self {
            Self::Consecutive(window) => window.clear(),
            Self::Count(window) => window.clear(),
            Self::Time(window) => window.clear(),
        }
    }

    fn counts(&self) -> WindowCounts {
        match self {
            Self::Consecutive(window) => window.counts(),
            Self::Count(window) => window.counts(),
            Self::Time(window) => window.counts(),
        }
    }

    fn counts_at(&self, now: Instant) -> WindowCounts {
        match self {
            Self::Time(window) => window.counts_at(now),
            other => other.counts(),
        }
    }

    fn advance(&mut self, now: Instant) {
        if let Self::Time(window) = self {
            window.advance(now);
        }
    }

    fn record_successes(&mut self, count: u64) {
        match self {
            Self::Consecutive(window) => window.record_successes(count),
            Self::Count(window) => window.record_successes(count),
            Self::Time(window) => window.record_successes(count),
        }
    }

    fn stable_until(&self) -> Instant {
        match self {
            Self::Time(window) => window.stable_until(),
            _ => Instant::MAX,
        }
    }

    fn configure(&mut self, config: &CircuitBreakerConfig) -> Result<(), ConfigError> {
        let windowed =
            config.failure_rate_threshold.is_some() || config.slow_call_duration.is_some();
        if config.window_duration.is_some() {
            let mut window = TimeWindow::new();
            window.configure(config)?;
            *self = Self::Time(window);
        } else if windowed {
            let window = CountWindow::new();
            config.validate_for_window(CountWindow::<N>::CAPACITY)?;
            *self = Self::Count(window);
        } else {
            *self = Self::Consecutive(NoWindow);
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use core::time::Duration;

    use super::*;
    use crate::error::{ConfigError, ErrorKind};
    use crate::resilience::CircuitBreaker;

    type Window = ConfiguredWindow<8, 4>;

    fn rate(window_duration: Option<Duration>) -> CircuitBreakerConfig {
        CircuitBreakerConfig {
            failure_rate_threshold: Some(0.5),
            minimum_calls: 4,
            window_duration,
            ..CircuitBreakerConfig::default()
        }
    }

    fn fail_at<W: SlidingWindow>(cb: &mut CircuitBreaker<CircuitBreakerConfig, W>, secs: u64) {
        let now = Instant::from_secs(secs);
        let permit = cb.try_acquire(now).expect("admitted");
        let _ = cb.on_failure(permit, ErrorKind::Transient, now);
    }

    #[test]
    fn the_configuration_picks_the_window() {
        let consecutive =
            CircuitBreaker::with_window(CircuitBreakerConfig::default(), Window::new());
        assert!(matches!(
            consecutive.window,
            ConfiguredWindow::Consecutive(_)
        ));
        let count = CircuitBreaker::with_window(rate(None), Window::new());
        assert!(matches!(count.window, ConfiguredWindow::Count(_)));
        let time = CircuitBreaker::with_window(rate(Some(Duration::from_secs(4))), Window::new());
        assert!(matches!(time.window, ConfiguredWindow::Time(_)));
    }

    #[test]
    fn the_count_window_bounds_minimum_calls_and_the_time_window_its_buckets() {
        let too_many = CircuitBreakerConfig {
            minimum_calls: 9,
            ..rate(None)
        };
        assert_eq!(
            CircuitBreaker::try_with_window(too_many, Window::new()).err(),
            Some(ConfigError::WindowTooSmall {
                needed: 9,
                capacity: 8
            })
        );
        // The same minimum is fine over a window by time.
        let by_time = CircuitBreakerConfig {
            minimum_calls: 9,
            ..rate(Some(Duration::from_secs(4)))
        };
        assert!(CircuitBreaker::try_with_window(by_time, Window::new()).is_ok());
        let tiny = rate(Some(Duration::from_micros(3)));
        assert_eq!(
            CircuitBreaker::try_with_window(tiny, Window::new()).err(),
            Some(ConfigError::BucketTooShort { buckets: 4 })
        );
    }

    #[test]
    fn old_failures_leave_a_window_by_time_and_stay_in_a_window_by_count() {
        let mut by_time =
            CircuitBreaker::with_window(rate(Some(Duration::from_secs(4))), Window::new());
        let mut by_count = CircuitBreaker::with_window(rate(None), Window::new());
        for cb in [&mut by_time, &mut by_count] {
            fail_at(cb, 0);
            fail_at(cb, 0);
            fail_at(cb, 0);
        }
        // Ten seconds later the window by time has forgotten them.
        fail_at(&mut by_time, 10);
        fail_at(&mut by_count, 10);
        assert_eq!(by_time.state(), crate::resilience::CircuitState::Closed);
        assert_eq!(by_time.window_counts().calls, 1);
        assert_eq!(by_count.state(), crate::resilience::CircuitState::Open);
    }
}
