//! [`RestartBackoff`]: the growth of the delay between successive restarts.

use core::time::Duration;

use crate::error::{ConfigError, ConfigField};
use crate::float::scale;
use crate::time::{duration_as_micros, duration_lt};

#[cfg(doc)]
use super::{Recovery, RecoveryPolicy, RestartIntensity};

/// A delay that grows for successive restarts: each restart waits `multiplier` times the
/// previous one, never more than `max`.
///
/// The growth is a multiplication per restart, not a power, so it needs no `powf`. It starts
/// again from [`RecoveryPolicy::restart_delay`] once the kernel has been healthy for a whole
/// [`RestartIntensity::window`] (see [`Recovery::on_healthy`]), as Kubernetes resets its
/// crash-loop back-off after a container ran fine for a while.
#[derive(Clone, Copy, Debug, PartialEq)]
#[cfg_attr(feature = "serde", derive(serde::Serialize, serde::Deserialize))]
#[cfg_attr(feature = "defmt", derive(defmt::Format))]
pub struct RestartBackoff {
    /// Factor from one restart delay to the next; at least 1.
    pub multiplier: f32,
    /// The longest restart delay.
    pub max: Duration,
}

impl RestartBackoff {
    /// Checks the backoff on its own.
    ///
    /// # Errors
    /// [`ConfigError::NotFinite`] for a NaN or infinite multiplier,
    /// [`ConfigError::MultiplierBelowOne`] for one below 1, and [`ConfigError::Zero`] for a
    /// `max` under one microsecond. The fields are [`ConfigField::RestartBackoffMultiplier`] and
    /// [`ConfigField::RestartBackoffMax`].
    pub const fn validate(&self) -> Result<(), ConfigError> {
        if !self.multiplier.is_finite() {
            return Err(ConfigError::NotFinite(
                ConfigField::RestartBackoffMultiplier,
            ));
        }
        if self.multiplier < 1.0 {
            return Err(ConfigError::MultiplierBelowOne(
                ConfigField::RestartBackoffMultiplier,
            ));
        }
        if duration_as_micros(self.max) == 0 {
            return Err(ConfigError::Zero(ConfigField::RestartBackoffMax));
        }
        Ok(())
    }

    /// The delay after `delay`: `delay * multiplier` (in `f32`, rounded down to the nanosecond),
    /// never less than `delay`, never more than `max` (unless `delay` already was).
    #[must_use]
    pub const fn next(&self, delay: Duration) -> Duration {
        if !duration_lt(delay, self.max) {
            return delay;
        }
        // Refused by `validate`: as before, a product that is no duration means `max`.
        if !self.multiplier.is_finite() || (self.multiplier < 0.0 && !delay.is_zero()) {
            return self.max;
        }
        // Rounded down to the nanosecond; a factor below 1 never shrinks the delay.
        scale(delay, self.multiplier, self.max)
    }
}

impl Default for RestartBackoff {
    /// Doubling, up to one minute.
    fn default() -> Self {
        Self {
            multiplier: 2.0,
            max: Duration::from_secs(60),
        }
    }
}
