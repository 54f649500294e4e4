//! [`RestartIntensity`]: how many restarts within which window, and its validation against a
//! [`RecoveryPolicy`].

use core::time::Duration;

#[cfg(doc)]
use super::DEFAULT_RESTART_CAPACITY;
use super::{RecoveryPolicy, RecoveryStrategy, RestartBackoff};
use crate::error::{ConfigError, ConfigField};
use crate::time::{duration_as_micros, duration_lt};

#[cfg(doc)]
use super::{Recovery, RecoveryAction};

/// Restart intensity: the window in which at most [`RecoveryPolicy::max_restarts`] restarts
/// may happen, and an optional growing delay between them.
///
/// This is the restart intensity of Erlang/OTP supervisors: "if more than MaxR restarts occur
/// within MaxT seconds, the supervisor terminates all child processes and then itself", with
/// `max_restarts` as MaxR (`intensity`) and `window` as MaxT (`period`); OTP's defaults are an
/// intensity of 1 within a period of 5 s (STDLIB `supervisor` manual,
/// <https://www.erlang.org/doc/apps/stdlib/supervisor.html>). Where OTP terminates the
/// supervisor, [`Recovery`] escalates to [`RecoveryPolicy::escalation`].
///
/// The default window is 60 s, not OTP's 5 s: OTP restarts at once, while the chapter's policy
/// waits [`RecoveryPolicy::restart_delay`] (5 s) before each restart, so a 5 s window could never
/// hold two of its restarts. [`RestartIntensity::otp`] gives OTP's period.
#[derive(Clone, Copy, Debug, PartialEq)]
#[cfg_attr(feature = "serde", derive(serde::Serialize, serde::Deserialize))]
#[cfg_attr(feature = "defmt", derive(defmt::Format))]
pub struct RestartIntensity {
    /// The sliding window restarts are counted in; a restart is forgotten once `window` has
    /// passed since it was decided.
    pub window: Duration,
    /// Growth of the delay for successive restarts; `None` keeps every delay at
    /// [`RecoveryPolicy::restart_delay`].
    pub backoff: Option<RestartBackoff>,
}

impl RestartIntensity {
    /// OTP's default period, 5 s, with no backoff. Pair it with `max_restarts: 1` and a zero
    /// `restart_delay` for OTP's default supervisor.
    #[must_use]
    pub const fn otp() -> Self {
        Self {
            window: Duration::from_secs(5),
            backoff: None,
        }
    }

    /// Checks the intensity on its own.
    ///
    /// # Errors
    /// [`ConfigError::Zero`]`(`[`ConfigField::RestartWindow`]`)` for a window under one
    /// microsecond, and the errors of [`RestartBackoff::validate`].
    pub const fn validate(&self) -> Result<(), ConfigError> {
        if duration_as_micros(self.window) == 0 {
            return Err(ConfigError::Zero(ConfigField::RestartWindow));
        }
        if let Some(backoff) = &self.backoff {
            return backoff.validate();
        }
        Ok(())
    }

    /// Checks the intensity together with the policy it counts restarts for; this is what
    /// [`Recovery::try_new`] runs after the capacity check (see
    /// [`validate_for`](Self::validate_for)). Its cost does not grow with `max_restarts`.
    ///
    /// # Errors
    /// Those of [`RecoveryPolicy::validate`] and [`RestartIntensity::validate`], and, with
    /// [`RecoveryStrategy::RestartKernel`]:
    /// - with backoff, [`ConfigError::Zero`]`(`[`ConfigField::RestartDelay`]`)` for a zero delay
    ///   (it could never grow) and [`ConfigError::Exceeds`] `{ RestartDelay, RestartBackoffMax }`
    ///   for a delay above the cap;
    /// - [`ConfigError::Exceeds`] `{ RestartDelay, RestartWindow }` when the delays of
    ///   `max_restarts` successive restarts add up to the window or more. A failure reported
    ///   while a restart is pending is not counted (see [`RecoveryAction::RestartPending`]), so
    ///   such a policy could never see `max_restarts + 1` failures within the window and would
    ///   restart forever without escalating.
    pub const fn validate_with(&self, policy: &RecoveryPolicy) -> Result<(), ConfigError> {
        if let Err(error) = policy.validate() {
            return Err(error);
        }
        if let Err(error) = self.validate() {
            return Err(error);
        }
        if !matches!(policy.strategy, RecoveryStrategy::RestartKernel) {
            return Ok(());
        }
        if let Some(backoff) = &self.backoff {
            if duration_as_micros(policy.restart_delay) == 0 {
                return Err(ConfigError::Zero(ConfigField::RestartDelay));
            }
            if duration_lt(backoff.max, policy.restart_delay) {
                return Err(ConfigError::Exceeds {
                    field: ConfigField::RestartDelay,
                    limit: ConfigField::RestartBackoffMax,
                });
            }
        }
        if self.delays_fill_window(policy) {
            return Err(ConfigError::Exceeds {
                field: ConfigField::RestartDelay,
                limit: ConfigField::RestartWindow,
            });
        }
        Ok(())
    }

    /// [`validate_with`](Self::validate_with) for a machine that remembers at most `capacity`
    /// restarts, as [`Recovery::try_new`] (capacity `N`) and [`ResilienceConfig::validate`]
    /// (capacity [`DEFAULT_RESTART_CAPACITY`], what the supervisors build) run it. The capacity
    /// is checked first, so a huge `max_restarts` is refused at once.
    ///
    /// # Errors
    /// [`ConfigError::TooLarge`] `{ field: MaxRestarts, max: capacity }` when the strategy is
    /// [`RecoveryStrategy::RestartKernel`] and `max_restarts` exceeds `capacity` (other
    /// strategies count no restarts), then those of [`validate_with`](Self::validate_with).
    ///
    /// [`ResilienceConfig::validate`]: crate::resilience::ResilienceConfig::validate
    pub const fn validate_for(
        &self,
        policy: &RecoveryPolicy,
        capacity: usize,
    ) -> Result<(), ConfigError> {
        // A widening cast: usize has at most 64 bits on every target (`From` is not `const`).
        let capacity = capacity as u64;
        let fits = (policy.max_restarts as u64) <= capacity;
        if matches!(policy.strategy, RecoveryStrategy::RestartKernel) && !fits {
            return Err(ConfigError::TooLarge {
                field: ConfigField::MaxRestarts,
                max: capacity,
            });
        }
        self.validate_with(policy)
    }

    /// Whether the delays of `max_restarts` successive restarts, as the machine computes them,
    /// add up to the window or more: the shortest span from the first of them to the failure
    /// after the last.
    ///
    /// Without backoff that is one multiplication. With backoff the delays are summed one by
    /// one only while they grow and the sum is below the window; once a delay stops growing
    /// (at the cap, or a product that rounds back to it), the remaining restarts all wait it
    /// and are one multiplication. So the cost never depends on `max_restarts` alone.
    const fn delays_fill_window(&self, policy: &RecoveryPolicy) -> bool {
        let window = duration_as_micros(self.window);
        let mut remaining = policy.max_restarts;
        let mut delay = policy.restart_delay;
        let mut span: u64 = 0;
        while remaining > 0 {
            let next = match &self.backoff {
                Some(backoff) => backoff.next(delay),
                None => delay,
            };
            // `next` is never below `delay`: equal unless it is later.
            if !duration_lt(delay, next) {
                let rest = (remaining as u64).saturating_mul(duration_as_micros(delay));
                return span.saturating_add(rest) >= window;
            }
            span = span.saturating_add(duration_as_micros(delay));
            if span >= window {
                return true;
            }
            delay = next;
            remaining = remaining.saturating_sub(1);
        }
        false
    }
}

impl Default for RestartIntensity {
    /// A 60 s window without backoff (see the type's docs for why not OTP's 5 s).
    fn default() -> Self {
        Self {
            window: Duration::from_secs(60),
            backoff: None,
        }
    }
}
