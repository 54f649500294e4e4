//! [`CallMetrics`]: what one operation's calls came to (outcomes, attempts, retries, fallbacks,
//! latency), recorded by the caller and exported by [`ResilienceCollector::with_calls`]
//! under the same names the `rustkernel` service uses.
//!
//! ```
//! use std::time::Duration;
//! use rustkernel_tokio::metrics::{CallMetrics, ResilienceCollector};
//! use rustkernel_tokio::resilience::{Pipeline, ResilienceConfig};
//!
//! # #[tokio::main(flavor = "current_thread", start_paused = true)]
//! # async fn main() {
//! let pipeline = Pipeline::from_config(&ResilienceConfig::production()).unwrap();
//! let calls = CallMetrics::new();
//! let collector = ResilienceCollector::new().with_calls("graph/pagerank", calls.clone());
//!
//! let started = tokio::time::Instant::now();
//! let outcome = pipeline
//!     .execute_outcome(None, || async { Ok::<_, std::io::Error>(42) })
//!     .await;
//! calls.record(&outcome, started.elapsed());
//!
//! let stats = collector.snapshot().calls[0].stats.clone();
//! assert_eq!((stats.outcome("success"), stats.attempts, stats.retries), (1, 1, 0));
//! # }
//! ```

use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex, PoisonError};
use std::time::Duration;

use rustkernel_core::resilience::{GiveUpReason, ResilienceError};
use serde::{Deserialize, Serialize};

use crate::pipeline::Outcome;

/// The default upper bounds of the latency histogram's buckets, in seconds: 100 µs doubling to
/// about 3.3 s (and `+Inf`). Kernels of other sizes choose their own with
/// [`CallMetrics::with_buckets`].
pub const LATENCY_BUCKETS: [f64; 16] = [
    0.000_1, 0.000_2, 0.000_4, 0.000_8, 0.001_6, 0.003_2, 0.006_4, 0.012_8, 0.025_6, 0.051_2,
    0.102_4, 0.204_8, 0.409_6, 0.819_2, 1.638_4, 3.276_8,
];

/// The most bucket bounds a latency histogram takes.
pub const MAX_LATENCY_BUCKETS: usize = 64;

/// Why bucket bounds were refused by [`CallMetrics::with_buckets`].
#[derive(Clone, Debug, PartialEq)]
pub enum BucketsError {
    /// No bound: a histogram needs at least one below `+Inf`.
    Empty,
    /// More than [`MAX_LATENCY_BUCKETS`] bounds.
    TooMany(usize),
    /// A bound that is not a finite number of seconds above zero.
    NotPositive(f64),
    /// A bound not above the one before it.
    NotIncreasing {
        /// The bound before.
        previous: f64,
        /// The bound that follows it.
        next: f64,
    },
}

impl core::fmt::Display for BucketsError {
    fn fmt(&self, f: &mut core::fmt::Formatter<'_>) -> core::fmt::Result {
        match self {
            Self::Empty => f.write_str("latency buckets: at least one bound is needed"),
            Self::TooMany(n) => write!(
                f,
                "latency buckets: {n} bounds, at most {MAX_LATENCY_BUCKETS}"
            ),
            Self::NotPositive(bound) => write!(
                f,
                "latency buckets: {bound} is not a finite number of seconds above 0"
            ),
            Self::NotIncreasing { previous, next } => write!(
                f,
                "latency buckets: {next} follows {previous}; bounds must increase"
            ),
        }
    }
}

impl std::error::Error for BucketsError {}

/// One operation's call counters; a cheap [`Clone`] handle, recorded from any task.
#[derive(Clone, Debug)]
pub struct CallMetrics {
    inner: Arc<Inner>,
}

#[derive(Debug)]
struct Inner {
    outcomes: Mutex<Vec<(&'static str, u64)>>,
    attempts: AtomicU64,
    retries: AtomicU64,
    fallbacks: AtomicU64,
    /// Upper bounds in seconds, increasing; `buckets` counts each (not cumulative).
    bounds: Box<[f64]>,
    buckets: Box<[AtomicU64]>,
    count: AtomicU64,
    sum_nanos: AtomicU64,
}

impl Default for CallMetrics {
    fn default() -> Self {
        Self::new()
    }
}

impl CallMetrics {
    /// No call yet; latency in the [`LATENCY_BUCKETS`].
    #[must_use]
    pub fn new() -> Self {
        Self::from_checked_bounds(&LATENCY_BUCKETS)
    }

    /// No call yet; latency in buckets with these upper bounds (seconds, increasing, at most
    /// [`MAX_LATENCY_BUCKETS`]; `+Inf` is implied).
    ///
    /// # Errors
    /// [`BucketsError`] naming the first bound that is not finite, positive and above the one
    /// before it, or when there are none or too many.
    pub fn with_buckets(bounds: &[f64]) -> Result<Self, BucketsError> {
        check_buckets(bounds)?;
        Ok(Self::from_checked_bounds(bounds))
    }

    fn from_checked_bounds(bounds: &[f64]) -> Self {
        Self {
            inner: Arc::new(Inner {
                outcomes: Mutex::new(Vec::new()),
                attempts: AtomicU64::new(0),
                retries: AtomicU64::new(0),
                fallbacks: AtomicU64::new(0),
                bounds: bounds.into(),
                buckets: bounds.iter().map(|_| AtomicU64::new(0)).collect(),
                count: AtomicU64::new(0),
                sum_nanos: AtomicU64::new(0),
            }),
        }
    }

    /// The histogram's upper bounds, in seconds.
    #[must_use]
    pub fn bucket_bounds(&self) -> &[f64] {
        &self.inner.bounds
    }

    /// Records a call through a pipeline: its outcome (`success`, `rejected` for an open
    /// breaker, `timeout`, `deadline_exceeded`, `shed` when the retry budget gave up, else
    /// `failed`), its attempts (the retries are the attempts beyond the first) and how long
    /// it took.
    pub fn record<T, E>(&self, outcome: &Outcome<T, E>, elapsed: Duration) {
        let label = match &outcome.result {
            Ok(_) => "success",
            Err(ResilienceError::CircuitOpen) => "rejected",
            Err(ResilienceError::Timeout) => "timeout",
            Err(ResilienceError::DeadlineExceeded) => "deadline_exceeded",
            Err(ResilienceError::Operation(_))
                if outcome.gave_up == Some(GiveUpReason::BudgetExhausted) =>
            {
                "shed"
            }
            Err(ResilienceError::Operation(_)) => "failed",
        };
        self.record_call(label, outcome.attempts, elapsed);
    }

    /// Records a call whose outcome the caller names (`invalid_input`, a load shed before the
    /// pipeline, ...), with its attempts (0 when it never ran) and duration.
    pub fn record_call(&self, outcome: &'static str, attempts: u32, elapsed: Duration) {
        {
            let mut outcomes = self
                .inner
                .outcomes
                .lock()
                .unwrap_or_else(PoisonError::into_inner);
            match outcomes.iter_mut().find(|(label, _)| *label == outcome) {
                Some((_, count)) => *count = count.saturating_add(1),
                None => outcomes.push((outcome, 1)),
            }
        }
        let attempts = u64::from(attempts);
        self.inner.attempts.fetch_add(attempts, Ordering::Relaxed);
        self.inner
            .retries
            .fetch_add(attempts.saturating_sub(1), Ordering::Relaxed);
        let seconds = elapsed.as_secs_f64();
        if let Some(bucket) = self
            .inner
            .bounds
            .iter()
            .position(|bound| seconds <= *bound)
            .and_then(|i| self.inner.buckets.get(i))
        {
            bucket.fetch_add(1, Ordering::Relaxed);
        }
        self.inner.count.fetch_add(1, Ordering::Relaxed);
        self.inner.sum_nanos.fetch_add(
            u64::try_from(elapsed.as_nanos()).unwrap_or(u64::MAX),
            Ordering::Relaxed,
        );
    }

    /// Records that a call was answered by a fallback (a CPU path for a GPU kernel, a
    /// cached answer) instead of the primary path.
    pub fn record_fallback(&self) {
        self.inner.fallbacks.fetch_add(1, Ordering::Relaxed);
    }

    /// The figures now.
    #[must_use]
    pub fn stats(&self) -> CallStats {
        let outcomes = self
            .inner
            .outcomes
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .iter()
            .map(|(label, count)| ((*label).to_owned(), *count))
            .collect();
        let mut cumulative = 0;
        let buckets = self
            .inner
            .bounds
            .iter()
            .zip(self.inner.buckets.iter())
            .map(|(bound, count)| {
                cumulative += count.load(Ordering::Relaxed);
                (*bound, cumulative)
            })
            .collect();
        #[allow(clippy::cast_precision_loss)] // a sum of seconds for a histogram
        let sum_seconds = self.inner.sum_nanos.load(Ordering::Relaxed) as f64 / 1e9;
        CallStats {
            outcomes,
            attempts: self.inner.attempts.load(Ordering::Relaxed),
            retries: self.inner.retries.load(Ordering::Relaxed),
            fallbacks: self.inner.fallbacks.load(Ordering::Relaxed),
            latency_buckets: buckets,
            latency_count: self.inner.count.load(Ordering::Relaxed),
            latency_sum_seconds: sum_seconds,
        }
    }
}

/// Checks latency bucket bounds as [`CallMetrics::with_buckets`] takes them.
///
/// # Errors
/// As [`CallMetrics::with_buckets`].
pub fn check_buckets(bounds: &[f64]) -> Result<(), BucketsError> {
    if bounds.is_empty() {
        return Err(BucketsError::Empty);
    }
    if bounds.len() > MAX_LATENCY_BUCKETS {
        return Err(BucketsError::TooMany(bounds.len()));
    }
    let mut previous: Option<f64> = None;
    for &bound in bounds {
        if !bound.is_finite() || bound <= 0.0 {
            return Err(BucketsError::NotPositive(bound));
        }
        if let Some(previous) = previous.filter(|previous| bound <= *previous) {
            return Err(BucketsError::NotIncreasing {
                previous,
                next: bound,
            });
        }
        previous = Some(bound);
    }
    Ok(())
}

/// [`CallMetrics`] at one instant.
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize)]
pub struct CallStats {
    /// Calls by outcome, in the order each outcome first came.
    pub outcomes: Vec<(String, u64)>,
    /// Attempts made (a call's first included).
    pub attempts: u64,
    /// Attempts beyond each call's first.
    pub retries: u64,
    /// Calls answered by a fallback.
    pub fallbacks: u64,
    /// The latency histogram: (upper bound in seconds, calls at or under it), cumulative.
    pub latency_buckets: Vec<(f64, u64)>,
    /// Calls timed.
    pub latency_count: u64,
    /// Their total time, in seconds.
    pub latency_sum_seconds: f64,
}

impl CallStats {
    /// Calls that ended with `outcome`.
    #[must_use]
    pub fn outcome(&self, outcome: &str) -> u64 {
        self.outcomes
            .iter()
            .find(|(label, _)| label == outcome)
            .map_or(0, |(_, count)| *count)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn outcomes_attempts_retries_and_the_histogram_add_up() {
        let calls = CallMetrics::new();
        calls.record_call("success", 1, Duration::from_micros(50));
        calls.record_call("success", 3, Duration::from_millis(3));
        calls.record_call("invalid_input", 0, Duration::from_micros(10));
        calls.record_call("timeout", 2, Duration::from_secs(10));
        calls.record_fallback();
        let stats = calls.stats();
        assert_eq!(stats.outcome("success"), 2);
        assert_eq!(stats.outcome("invalid_input"), 1);
        assert_eq!(stats.outcome("failed"), 0);
        assert_eq!((stats.attempts, stats.retries, stats.fallbacks), (6, 3, 1));
        assert_eq!(stats.latency_count, 4);
        // 50 µs and 10 µs in the first bucket (100 µs); 3 ms under 3.2 ms; 10 s only in +Inf.
        assert_eq!(stats.latency_buckets.first(), Some(&(0.000_1, 2)));
        let under_4ms = stats
            .latency_buckets
            .iter()
            .find(|(bound, _)| *bound >= 0.003)
            .map(|(_, count)| *count);
        assert_eq!(under_4ms, Some(3));
        assert_eq!(stats.latency_buckets.last().map(|(_, c)| *c), Some(3));
        assert!((stats.latency_sum_seconds - 10.003_06).abs() < 1e-9);
    }

    #[test]
    fn chosen_buckets_count_their_own_bounds() {
        let calls = CallMetrics::with_buckets(&[0.5, 2.0, 30.0]).expect("valid bounds");
        assert_eq!(calls.bucket_bounds(), &[0.5, 2.0, 30.0]);
        calls.record_call("success", 1, Duration::from_millis(500));
        calls.record_call("success", 1, Duration::from_secs(20));
        calls.record_call("success", 1, Duration::from_secs(40));
        let stats = calls.stats();
        assert_eq!(
            stats.latency_buckets,
            vec![(0.5, 1), (2.0, 1), (30.0, 2)],
            "cumulative; 40 s only in +Inf"
        );
        assert_eq!(stats.latency_count, 3);
    }

    #[test]
    fn bad_bounds_are_refused_by_name() {
        assert_eq!(
            CallMetrics::with_buckets(&[]).err(),
            Some(BucketsError::Empty)
        );
        assert_eq!(
            CallMetrics::with_buckets(&[0.1, 0.1]).err(),
            Some(BucketsError::NotIncreasing {
                previous: 0.1,
                next: 0.1
            })
        );
        assert_eq!(
            CallMetrics::with_buckets(&[0.0]).err(),
            Some(BucketsError::NotPositive(0.0))
        );
        assert!(matches!(
            CallMetrics::with_buckets(&[f64::NAN]).err(),
            Some(BucketsError::NotPositive(_))
        ));
        let many: Vec<f64> = (1..=65).map(f64::from).collect();
        let error = CallMetrics::with_buckets(&many).expect_err("too many");
        assert_eq!(error, BucketsError::TooMany(65));
        assert_eq!(error.to_string(), "latency buckets: 65 bounds, at most 64");
    }
}
