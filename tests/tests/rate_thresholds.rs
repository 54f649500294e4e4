//! Rate thresholds at exact shares: a failure-rate (or slow-call-rate) threshold of `k / N`
//! opens a breaker exactly when `k` of `N` calls in the window are bad, whether the threshold
//! was computed as `k as f32 / N as f32` or parsed from the decimal the user wrote ("0.3").
//!
//! An `f32` cannot hold most such shares (0.3f32 is a hair above 0.3, 2/3f32 a hair below or
//! above 2/3): the breaker compares the window's share, rounded to `f32` as a division would
//! round it, with the threshold, so every real number that rounds to the threshold reaches it.

use core::time::Duration;

use proptest::prelude::*;
use rustkernel_core::error::{ConfigError, ConfigField, ErrorKind};
use rustkernel_core::resilience::{
    CircuitBreaker, CircuitBreakerConfig, CircuitState, CountWindow,
};
use rustkernel_core::time::Instant;

/// Which rate the threshold is for.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Rate {
    /// `failure_rate_threshold`: bad calls fail.
    Failure,
    /// `slow_call_rate_threshold`: bad calls succeed slowly.
    Slow,
}

const SLOW: Duration = Duration::from_millis(1);

fn config(rate: Rate, threshold: f32, minimum_calls: u32) -> CircuitBreakerConfig {
    match rate {
        Rate::Failure => CircuitBreakerConfig {
            failure_rate_threshold: Some(threshold),
            minimum_calls,
            ..CircuitBreakerConfig::DEFAULT
        },
        Rate::Slow => CircuitBreakerConfig {
            slow_call_duration: Some(SLOW),
            slow_call_rate_threshold: threshold,
            minimum_calls,
            ..CircuitBreakerConfig::DEFAULT
        },
    }
}

/// Runs `bad.len()` calls through a fresh breaker whose rate is evaluated from the last call
/// on (`minimum_calls` is the number of calls); `bad[i]` makes call `i` fail (or be slow).
/// Returns whether the breaker is open after the last call; it must be closed before it.
fn opens<const W: usize>(rate: Rate, threshold: f32, bad: &[bool]) -> Result<bool, TestCaseError> {
    let calls = u32::try_from(bad.len()).expect("a small window");
    let mut cb =
        CircuitBreaker::try_with_window(config(rate, threshold, calls), CountWindow::<W>::new())?;
    let mut now = Instant::from_secs(1);
    for &bad in bad {
        prop_assert_eq!(cb.state(), CircuitState::Closed);
        let permit = cb.try_acquire(now)?;
        match (rate, bad) {
            (Rate::Failure, true) => {
                cb.on_failure(permit, ErrorKind::Transient, now);
            }
            (Rate::Slow, true) => {
                cb.on_success(permit, now + SLOW);
            }
            (_, false) => {
                cb.on_success(permit, now);
            }
        }
        now = now + Duration::from_millis(10);
    }
    Ok(cb.state() == CircuitState::Open)
}

/// `k / n` as the decimal a user would write ("0.3", "0.015625"), when it has one.
fn exact_decimal(k: u32, n: u32) -> Option<String> {
    let mut text = format!("{}.", k / n);
    let mut remainder = k % n;
    for _ in 0..12 {
        if remainder == 0 {
            return Some(text);
        }
        remainder *= 10;
        text.push(char::from_digit(remainder / n, 10).expect("a digit"));
        remainder %= n;
    }
    (remainder == 0).then_some(text)
}

/// The thresholds that stand for `k / n`: the quotient in `f32`, and the decimal parsed.
fn thresholds(k: u32, n: u32) -> Vec<f32> {
    #[allow(clippy::cast_precision_loss, reason = "k, n <= 100 convert exactly")]
    let quotient = k as f32 / n as f32;
    let mut all = vec![quotient];
    if let Some(decimal) = exact_decimal(k, n) {
        all.push(decimal.parse().expect("a decimal"));
    }
    all
}

/// `hits` bad calls out of `n`, last (or first).
fn outcomes(n: u32, hits: u32, bad_last: bool) -> Vec<bool> {
    (0..n)
        .map(|i| if bad_last { i >= n - hits } else { i < hits })
        .collect()
}

#[test]
fn decimals_are_written_out_exactly() {
    assert_eq!(exact_decimal(3, 10).as_deref(), Some("0.3"));
    assert_eq!(exact_decimal(1, 64).as_deref(), Some("0.015625"));
    assert_eq!(exact_decimal(7, 7).as_deref(), Some("1."));
    assert_eq!(exact_decimal(1, 3), None);
}

/// The cases: a window of 10, thresholds written as decimals.
#[test]
fn a_threshold_of_k_tenths_opens_at_k_of_ten() -> Result<(), TestCaseError> {
    for (rate, thresholds) in [
        (
            Rate::Failure,
            &[0.1f32, 0.2, 0.3, 0.4, 0.6, 0.7, 0.8, 0.9][..],
        ),
        (Rate::Slow, &[0.1f32, 0.3, 0.7][..]),
    ] {
        for &threshold in thresholds {
            let text = format!("{threshold}");
            let k = text
                .strip_prefix("0.")
                .and_then(|tenths| tenths.parse::<u32>().ok())
                .expect("one decimal digit");
            for hits in 0..=10 {
                let bad = outcomes(10, hits, true);
                prop_assert_eq!(
                    opens::<10>(rate, threshold, &bad)?,
                    hits >= k,
                    "{:?} threshold {} with {} of 10",
                    rate,
                    threshold,
                    hits
                );
            }
        }
    }
    Ok(())
}

/// Every share `k / n` with `n` up to 100, as an `f32` quotient and as a parsed decimal: `k`
/// bad calls of `n` open the breaker, `k - 1` do not. A zero threshold is refused.
#[test]
fn every_share_up_to_a_hundred_opens_exactly_at_its_count() -> Result<(), TestCaseError> {
    for rate in [Rate::Failure, Rate::Slow] {
        for n in 1..=100u32 {
            let zero =
                CircuitBreaker::try_with_window(config(rate, 0.0, n), CountWindow::<100>::new())
                    .map(|_| ());
            let field = match rate {
                Rate::Failure => ConfigField::FailureRateThreshold,
                Rate::Slow => ConfigField::SlowCallRateThreshold,
            };
            prop_assert_eq!(zero, Err(ConfigError::RateOutOfRange(field)));
            for k in 1..=n {
                for threshold in thresholds(k, n) {
                    for hits in [0, k - 1, k, n] {
                        for bad_last in [true, false] {
                            let bad = outcomes(n, hits, bad_last);
                            prop_assert_eq!(
                                opens::<100>(rate, threshold, &bad)?,
                                hits >= k,
                                "{:?} threshold {} ({}/{}) with {} bad",
                                rate,
                                threshold,
                                k,
                                n,
                                hits
                            );
                        }
                    }
                }
            }
        }
    }
    Ok(())
}

/// `n` in 1..=100, a threshold `k / n`, and `n` outcomes of which `hits` are bad, in any order.
fn share_case() -> impl Strategy<Value = (u32, u32, Vec<bool>)> {
    (1u32..=100)
        .prop_flat_map(|n| (Just(n), 1..=n, 0..=n))
        .prop_flat_map(|(n, k, hits)| {
            let bad = outcomes(n, hits, true);
            (Just(n), Just(k), Just(bad).prop_shuffle())
        })
}

proptest! {
    /// Bad calls in any order: the breaker opens after the `n`-th call exactly when at least
    /// `k` of them are bad, for the failure rate and the slow-call rate alike.
    #[test]
    fn a_share_threshold_opens_exactly_at_its_count(
        (n, k, bad) in share_case(),
        slow in any::<bool>(),
    ) {
        let rate = if slow { Rate::Slow } else { Rate::Failure };
        let hits = u32::try_from(bad.iter().filter(|&&b| b).count()).expect("at most 100");
        for threshold in thresholds(k, n) {
            prop_assert_eq!(opens::<100>(rate, threshold, &bad)?, hits >= k, "{}/{}", k, n);
        }
    }
}
