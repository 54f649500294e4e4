//! How long to wait before each retry: the chapter's [`BackoffStrategy`] and two more jitters.
//!
//! A strategy is a pure function of the retry number, the previous delay and a seeded [`Rng`]:
//! it never reads a clock and never allocates. Every delay is capped at
//! [`BackoffStrategy::max_delay`], and the cap is applied after jitter, so no delay ever exceeds
//! `max`. Exponential growth is computed without `powf` by squaring (at most 32 rounds) and
//! stops as soon as the cap is reached, so `attempt = u32::MAX` costs as little as `attempt = 2`
//! and never overflows. It is single-precision arithmetic (the multiplier is an `f32`, which a
//! Cortex-M4F computes in hardware): the delay lies within a few millionths of the exact
//! product and is rounded down to the nanosecond.
//!
//! The jittered strategies follow Marc Brooker, "Exponential Backoff And Jitter" (AWS
//! Architecture Blog, 2015), where `exp(n) = min(max, initial * multiplier^(n-1))`:
//!
//! | Strategy | Delay before retry `n` |
//! |----------|------------------------|
//! | `Fixed` | `delay` |
//! | `Linear` | `min(max, initial + increment * (n-1))` |
//! | `Exponential` | `exp(n)` |
//! | `ExponentialWithJitter` | "full jitter": uniform in `[0, exp(n)]` |
//! | `EqualJitter` | `exp(n)/2 + uniform[0, exp(n)/2]` |
//! | `DecorrelatedJitter` | `min(max, uniform[initial, previous * multiplier])` |
//!
//! ```
//! use core::time::Duration;
//! use rustkernel_core::resilience::BackoffStrategy;
//! use rustkernel_core::rng::Rng;
//!
//! let backoff = BackoffStrategy::ExponentialWithJitter {
//!     initial: Duration::from_millis(100),
//!     max: Duration::from_secs(10),
//!     multiplier: 2.0,
//! };
//! backoff.validate().unwrap();
//! let mut rng = Rng::new(7);
//! let first = backoff.delay(1, Duration::ZERO, &mut rng);
//! assert!(first <= Duration::from_millis(100));
//! assert!(backoff.delay(u32::MAX, first, &mut rng) <= Duration::from_secs(10));
//! ```

use core::time::Duration;

use crate::error::{ConfigError, ConfigField};
use crate::float::{grow, scale};
use crate::rng::Rng;

/// How the delay between attempts grows; see the [module docs](self) for each formula.
///
/// `attempt` counts retries from 1 (the delay before the first retry). The variants hold
/// exactly the chapter's fields, so the chapter's struct literals compile unchanged.
#[derive(Clone, Copy, Debug, PartialEq)]
#[cfg_attr(feature = "serde", derive(serde::Serialize, serde::Deserialize))]
#[cfg_attr(feature = "defmt", derive(defmt::Format))]
pub enum BackoffStrategy {
    /// The same delay before every retry. A zero delay (retry at once) is allowed.
    Fixed {
        /// The delay before each retry.
        delay: Duration,
    },
    /// `initial`, then `increment` more before each further retry, up to `max`.
    Linear {
        /// The delay before the first retry.
        initial: Duration,
        /// Added before each further retry.
        increment: Duration,
        /// No delay exceeds this.
        max: Duration,
    },
    /// `initial`, multiplied by `multiplier` before each further retry, up to `max`.
    Exponential {
        /// The delay before the first retry; must be positive.
        initial: Duration,
        /// No delay exceeds this.
        max: Duration,
        /// Growth per retry; finite and at least 1.
        multiplier: f32,
    },
    /// Full jitter (recommended): uniform in `[0, min(max, initial * multiplier^(n-1))]`.
    ///
    /// Spreads a crowd of retrying callers over the whole interval, which does the least total
    /// work in Brooker's comparison.
    ExponentialWithJitter {
        /// Upper end of the first retry's interval; must be positive.
        initial: Duration,
        /// No delay exceeds this.
        max: Duration,
        /// Growth of the interval per retry; finite and at least 1.
        multiplier: f32,
    },
    /// Equal jitter: half of `v = min(max, initial * multiplier^(n-1))` plus uniform in the
    /// other half (`v/2 + uniform[0, v - v/2]`), so a retry never comes sooner than `v/2`.
    EqualJitter {
        /// The exponential's first value; must be positive.
        initial: Duration,
        /// No delay exceeds this.
        max: Duration,
        /// Growth per retry; finite and at least 1.
        multiplier: f32,
    },
    /// Decorrelated jitter: `min(max, uniform[initial, previous * multiplier])`, where
    /// `previous` is the last delay (taken as `initial` before the first retry).
    ///
    /// Brooker's formula fixes the multiplier at 3; `multiplier: 3.0` reproduces it. The delay
    /// depends on the previous delay, not on the retry number.
    DecorrelatedJitter {
        /// The shortest delay; must be positive.
        initial: Duration,
        /// No delay exceeds this.
        max: Duration,
        /// Upper end of the next interval relative to the previous delay (AWS: 3).
        multiplier: f32,
    },
}

impl Default for BackoffStrategy {
    /// Full jitter from 100 ms up to 10 s, doubling: the chapter's recommended strategy.
    fn default() -> Self {
        BackoffStrategy::ExponentialWithJitter {
            initial: Duration::from_millis(100),
            max: Duration::from_secs(10),
            multiplier: 2.0,
        }
    }
}

impl BackoffStrategy {
    /// Checks the strategy: positive `initial` where growth multiplies it, finite multipliers
    /// of at least 1, and `initial <= max`.
    ///
    /// # Errors
    /// [`ConfigError::Zero`] for a zero `initial` of a multiplying strategy,
    /// [`ConfigError::NotFinite`] / [`ConfigError::MultiplierBelowOne`] for a NaN, infinite or
    /// shrinking multiplier, [`ConfigError::Exceeds`] when `initial > max`.
    pub const fn validate(&self) -> Result<(), ConfigError> {
        match *self {
            BackoffStrategy::Fixed { .. } => Ok(()),
            BackoffStrategy::Linear { initial, max, .. } => check_initial_le_max(initial, max),
            BackoffStrategy::Exponential {
                initial,
                max,
                multiplier,
            }
            | BackoffStrategy::ExponentialWithJitter {
                initial,
                max,
                multiplier,
            }
            | BackoffStrategy::EqualJitter {
                initial,
                max,
                multiplier,
            }
            | BackoffStrategy::DecorrelatedJitter {
                initial,
                max,
                multiplier,
            } => {
                if initial.is_zero() {
                    return Err(ConfigError::Zero(ConfigField::BackoffInitial));
                }
                if !multiplier.is_finite() {
                    return Err(ConfigError::NotFinite(ConfigField::BackoffMultiplier));
                }
                if multiplier < 1.0 {
                    return Err(ConfigError::MultiplierBelowOne(
                        ConfigField::BackoffMultiplier,
                    ));
                }
                check_initial_le_max(initial, max)
            }
        }
    }

    /// The delay before retry number `attempt` (1 = before the first retry; 0 counts as 1).
    ///
    /// `previous` is the delay used before the last retry (zero before the first); only
    /// [`BackoffStrategy::DecorrelatedJitter`] reads it. Jittered strategies draw from `rng`;
    /// the others leave it untouched. Never exceeds [`BackoffStrategy::max_delay`], never
    /// panics, and costs at most a few dozen integer multiplications for any `attempt`, even for a
    /// configuration that [`validate`](Self::validate) would refuse.
    #[must_use]
    pub fn delay(&self, attempt: u32, previous: Duration, rng: &mut Rng) -> Duration {
        let exponent = attempt.max(1).saturating_sub(1);
        match *self {
            BackoffStrategy::Fixed { delay } => delay,
            BackoffStrategy::Linear {
                initial,
                increment,
                max,
            } => initial
                .saturating_add(increment.saturating_mul(exponent))
                .min(max),
            BackoffStrategy::Exponential {
                initial,
                max,
                multiplier,
            } => grow(initial, multiplier, exponent, max),
            BackoffStrategy::ExponentialWithJitter {
                initial,
                max,
                multiplier,
            } => rng.duration_in(Duration::ZERO, grow(initial, multiplier, exponent, max)),
            BackoffStrategy::EqualJitter {
                initial,
                max,
                multiplier,
            } => {
                let ceiling = grow(initial, multiplier, exponent, max);
                let half = ceiling / 2;
                half.saturating_add(rng.duration_in(Duration::ZERO, ceiling.saturating_sub(half)))
            }
            BackoffStrategy::DecorrelatedJitter {
                initial,
                max,
                multiplier,
            } => {
                let from = previous.max(initial);
                let upper = scale(from, multiplier, Duration::MAX).max(initial);
                rng.duration_in(initial, upper).min(max)
            }
        }
    }

    /// The longest delay this strategy can return: `delay` for `Fixed`, `max` otherwise.
    #[must_use]
    pub const fn max_delay(&self) -> Duration {
        match *self {
            BackoffStrategy::Fixed { delay } => delay,
            BackoffStrategy::Linear { max, .. }
            | BackoffStrategy::Exponential { max, .. }
            | BackoffStrategy::ExponentialWithJitter { max, .. }
            | BackoffStrategy::EqualJitter { max, .. }
            | BackoffStrategy::DecorrelatedJitter { max, .. } => max,
        }
    }

    /// Whether the strategy draws from the [`Rng`] (the three jittered variants).
    #[must_use]
    pub const fn is_jittered(&self) -> bool {
        matches!(
            self,
            BackoffStrategy::ExponentialWithJitter { .. }
                | BackoffStrategy::EqualJitter { .. }
                | BackoffStrategy::DecorrelatedJitter { .. }
        )
    }
}

const fn check_initial_le_max(initial: Duration, max: Duration) -> Result<(), ConfigError> {
    if initial.as_nanos() > max.as_nanos() {
        Err(ConfigError::Exceeds {
            field: ConfigField::BackoffInitial,
            limit: ConfigField::BackoffMax,
        })
    } else {
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const MS: Duration = Duration::from_millis(1);

    fn exp(initial: u64, max: u64, multiplier: f32) -> BackoffStrategy {
        BackoffStrategy::Exponential {
            initial: MS * u32::try_from(initial).unwrap_or(u32::MAX),
            max: MS * u32::try_from(max).unwrap_or(u32::MAX),
            multiplier,
        }
    }

    #[test]
    fn chapter_literal_compiles_and_validates() {
        let backoff = BackoffStrategy::ExponentialWithJitter {
            initial: Duration::from_millis(100),
            max: Duration::from_secs(10),
            multiplier: 2.0,
        };
        assert_eq!(backoff.validate(), Ok(()));
        assert_eq!(backoff, BackoffStrategy::default());
        assert_eq!(backoff.max_delay(), Duration::from_secs(10));
        assert!(backoff.is_jittered());
    }

    #[test]
    fn validation_errors_are_typed() {
        let field = ConfigField::BackoffMultiplier;
        assert_eq!(
            exp(0, 10, 2.0).validate(),
            Err(ConfigError::Zero(ConfigField::BackoffInitial))
        );
        assert_eq!(
            exp(1, 10, f32::NAN).validate(),
            Err(ConfigError::NotFinite(field))
        );
        assert_eq!(
            exp(1, 10, f32::INFINITY).validate(),
            Err(ConfigError::NotFinite(field))
        );
        assert_eq!(
            exp(1, 10, 0.5).validate(),
            Err(ConfigError::MultiplierBelowOne(field))
        );
        assert_eq!(
            exp(1, 10, -2.0).validate(),
            Err(ConfigError::MultiplierBelowOne(field))
        );
        let exceeds = Err(ConfigError::Exceeds {
            field: ConfigField::BackoffInitial,
            limit: ConfigField::BackoffMax,
        });
        assert_eq!(exp(11, 10, 2.0).validate(), exceeds);
        let linear = BackoffStrategy::Linear {
            initial: 3 * MS,
            increment: MS,
            max: 2 * MS,
        };
        assert_eq!(linear.validate(), exceeds);
        let jitters = [
            BackoffStrategy::ExponentialWithJitter {
                initial: Duration::ZERO,
                max: MS,
                multiplier: 2.0,
            },
            BackoffStrategy::EqualJitter {
                initial: Duration::ZERO,
                max: MS,
                multiplier: 2.0,
            },
            BackoffStrategy::DecorrelatedJitter {
                initial: Duration::ZERO,
                max: MS,
                multiplier: 3.0,
            },
        ];
        for backoff in jitters {
            assert_eq!(
                backoff.validate(),
                Err(ConfigError::Zero(ConfigField::BackoffInitial))
            );
        }
        // Allowed: retry at once, constant linear, multiplier of exactly 1.
        let fixed_zero = BackoffStrategy::Fixed {
            delay: Duration::ZERO,
        };
        assert_eq!(fixed_zero.validate(), Ok(()));
        let flat = BackoffStrategy::Linear {
            initial: Duration::ZERO,
            increment: Duration::ZERO,
            max: Duration::ZERO,
        };
        assert_eq!(flat.validate(), Ok(()));
        assert_eq!(exp(5, 5, 1.0).validate(), Ok(()));
    }

    #[test]
    fn deterministic_strategies_follow_their_formulas() {
        let mut rng = Rng::new(1);
        let before = rng;
        let fixed = BackoffStrategy::Fixed { delay: 7 * MS };
        assert_eq!(fixed.delay(1, Duration::ZERO, &mut rng), 7 * MS);
        assert_eq!(fixed.delay(u32::MAX, Duration::MAX, &mut rng), 7 * MS);
        let linear = BackoffStrategy::Linear {
            initial: 100 * MS,
            increment: 50 * MS,
            max: 300 * MS,
        };
        let got: [Duration; 6] =
            [0, 1, 2, 3, 5, u32::MAX].map(|n| linear.delay(n, Duration::ZERO, &mut rng));
        assert_eq!(
            got,
            [100 * MS, 100 * MS, 150 * MS, 200 * MS, 300 * MS, 300 * MS]
        );
        let exponential = exp(100, 10_000, 2.0);
        let got: [Duration; 9] = [0, 1, 2, 3, 7, 8, 64, 1_000, u32::MAX]
            .map(|n| exponential.delay(n, Duration::ZERO, &mut rng));
        assert_eq!(
            got,
            [
                100 * MS,
                100 * MS,
                200 * MS,
                400 * MS,
                6_400 * MS,
                10_000 * MS,
                10_000 * MS,
                10_000 * MS,
                10_000 * MS
            ]
        );
        assert_eq!(rng, before, "unjittered strategies draw nothing");
    }

    #[test]
    fn growth_is_cheap_and_safe_for_any_input() {
        let mut rng = Rng::new(3);
        // The smallest growth an f32 multiplier holds, 2^-23 per attempt.
        let slow = BackoffStrategy::Exponential {
            initial: Duration::from_micros(1),
            max: Duration::MAX,
            multiplier: 1.0 + f32::EPSILON,
        };
        // 1us * (1 + 2^-23)^(2^23) is about e microseconds.
        let d = slow.delay((1 << 23) + 1, Duration::ZERO, &mut rng);
        assert!(
            d > Duration::from_nanos(2_715) && d < Duration::from_nanos(2_722),
            "{d:?}"
        );
        // (1 + 2^-23)^(2^32 - 2) is about e^512: past any cap, found in a few squarings.
        assert_eq!(
            slow.delay(u32::MAX, Duration::ZERO, &mut rng),
            Duration::MAX
        );
        // Configurations `validate` refuses still give bounded delays, never a panic.
        for multiplier in [f32::NAN, f32::INFINITY, f32::NEG_INFINITY, -1.0, 0.0, 0.5] {
            for initial in [Duration::ZERO, MS, Duration::MAX] {
                for strategy in [
                    BackoffStrategy::Exponential {
                        initial,
                        max: 10 * MS,
                        multiplier,
                    },
                    BackoffStrategy::EqualJitter {
                        initial,
                        max: 10 * MS,
                        multiplier,
                    },
                    BackoffStrategy::DecorrelatedJitter {
                        initial,
                        max: 10 * MS,
                        multiplier,
                    },
                ] {
                    for n in [0, 1, 2, u32::MAX] {
                        assert!(strategy.delay(n, Duration::MAX, &mut rng) <= 10 * MS);
                    }
                }
            }
        }
        let huge = BackoffStrategy::Exponential {
            initial: Duration::MAX,
            max: Duration::MAX,
            multiplier: f32::MAX,
        };
        assert_eq!(huge.delay(u32::MAX, Duration::MAX, &mut rng), Duration::MAX);
    }

    #[test]
    fn jitters_stay_in_their_ranges() {
        let mut rng = Rng::new(11);
        let full = BackoffStrategy::ExponentialWithJitter {
            initial: 100 * MS,
            max: 1_000 * MS,
            multiplier: 2.0,
        };
        let equal = BackoffStrategy::EqualJitter {
            initial: 100 * MS,
            max: 1_000 * MS,
            multiplier: 2.0,
        };
        let decorrelated = BackoffStrategy::DecorrelatedJitter {
            initial: 100 * MS,
            max: 1_000 * MS,
            multiplier: 3.0,
        };
        let mut previous = Duration::ZERO;
        let mut saw_low = false;
        for n in 1..200u32 {
            let ceiling = (100 * MS * 2u32.saturating_pow(n - 1)).min(1_000 * MS);
            let d = full.delay(n, Duration::ZERO, &mut rng);
            assert!(d <= ceiling);
            saw_low |= d < ceiling / 2;
            let d = equal.delay(n, Duration::ZERO, &mut rng);
            assert!(ceiling / 2 <= d && d <= ceiling);
            let d = decorrelated.delay(n, previous, &mut rng);
            assert!(100 * MS <= d && d <= (previous.max(100 * MS) * 3).min(1_000 * MS));
            previous = d;
        }
        assert!(saw_low, "full jitter reaches the lower half");
    }
}
