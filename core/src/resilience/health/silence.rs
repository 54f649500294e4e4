//! [`Silence`]: how long a source that should speak has been quiet, judged against two
//! thresholds. One machine for every heartbeat the project watches: a GPU worker's heartbeats
//! (silent: requests fail over; lost: the worker is killed), an edge device's telemetry
//! (silent: `unknown`; lost: `unhealthy`), the service's own runtime heartbeat (lost: not live).
//!
//! ```
//! use core::time::Duration;
//! use rustkernel_core::resilience::{Silence, SilenceConfig, SilencePhase};
//! use rustkernel_core::time::Instant;
//!
//! let config = SilenceConfig {
//!     silent_after: Duration::from_secs(30),
//!     lost_after: Duration::from_secs(120),
//! };
//! let mut device = Silence::try_new(config, Instant::from_secs(0)).unwrap();
//! assert_eq!(device.poll_at(), Some(Instant::from_secs(30)));
//! assert_eq!(device.poll(Instant::from_secs(30)), Some(SilencePhase::Silent));
//! assert_eq!(device.poll(Instant::from_secs(120)), Some(SilencePhase::Lost));
//! assert_eq!(device.poll_at(), None); // nothing more comes from waiting
//! assert_eq!(device.on_heard(Instant::from_secs(121)), Some(SilencePhase::Talking));
//! assert_eq!(device.silent_for(Instant::from_secs(131)), Duration::from_secs(10));
//! ```

use core::fmt;
use core::time::Duration;

use crate::error::{ConfigError, ConfigField, valid_or_panic};
use crate::time::Instant;

/// The two thresholds: quiet this long is [`SilencePhase::Silent`], this long is
/// [`SilencePhase::Lost`].
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
#[cfg_attr(feature = "serde", derive(serde::Serialize, serde::Deserialize))]
#[cfg_attr(feature = "defmt", derive(defmt::Format))]
pub struct SilenceConfig {
    /// Quiet this long: the source is suspect (above zero).
    pub silent_after: Duration,
    /// Quiet this long: the source is lost (at least `silent_after`; equal skips the silent
    /// phase).
    pub lost_after: Duration,
}

impl SilenceConfig {
    /// Checks that `0 < silent_after <= lost_after`.
    ///
    /// # Errors
    /// [`ConfigError`] naming the field.
    pub const fn validate(&self) -> Result<(), ConfigError> {
        if self.silent_after.is_zero() {
            return Err(ConfigError::Zero(ConfigField::SilentAfter));
        }
        if self.silent_after.as_nanos() > self.lost_after.as_nanos() {
            return Err(ConfigError::Exceeds {
                field: ConfigField::SilentAfter,
                limit: ConfigField::LostAfter,
            });
        }
        Ok(())
    }
}

/// Where a source is in its silence.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
#[cfg_attr(feature = "serde", derive(serde::Serialize, serde::Deserialize))]
#[cfg_attr(feature = "defmt", derive(defmt::Format))]
pub enum SilencePhase {
    /// Heard within `silent_after`.
    Talking,
    /// Quiet for `silent_after` or more.
    Silent,
    /// Quiet for `lost_after` or more.
    Lost,
}

impl SilencePhase {
    /// `"talking"`, `"silent"`, `"lost"`.
    #[must_use]
    pub const fn as_str(self) -> &'static str {
        match self {
            SilencePhase::Talking => "talking",
            SilencePhase::Silent => "silent",
            SilencePhase::Lost => "lost",
        }
    }
}

impl fmt::Display for SilencePhase {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// A source's silence: inputs [`on_heard`](Self::on_heard) and [`poll`](Self::poll), getters
/// [`phase`](Self::phase), [`last_heard`](Self::last_heard) and
/// [`silent_for`](Self::silent_for), output [`poll_at`](Self::poll_at) (when the phase next
/// changes if nothing is heard). Every input returns the new phase when it changed.
///
/// Reads no clock; a `now` earlier than the last one heard counts as no time passed.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
#[cfg_attr(feature = "defmt", derive(defmt::Format))]
pub struct Silence {
    config: SilenceConfig,
    last_heard: Instant,
    phase: SilencePhase,
}

impl Silence {
    /// A source heard at `now` (it starts talking).
    ///
    /// # Errors
    /// The error of [`SilenceConfig::validate`].
    pub const fn try_new(config: SilenceConfig, now: Instant) -> Result<Self, ConfigError> {
        if let Err(error) = config.validate() {
            return Err(error);
        }
        Ok(Self {
            config,
            last_heard: now,
            phase: SilencePhase::Talking,
        })
    }

    /// [`Silence::try_new`] for a configuration known to be valid.
    ///
    /// # Panics
    /// When the configuration is invalid, with the message of the [`ConfigError`].
    #[must_use]
    #[track_caller]
    pub fn new(config: SilenceConfig, now: Instant) -> Self {
        valid_or_panic(Self::try_new(config, now), "silence thresholds")
    }

    // ----- inputs -----

    /// The source spoke at `at` (a frame, a heartbeat, any byte). An `at` before the last one
    /// heard changes nothing, so a watcher can feed it the latest of several readers.
    pub fn on_heard(&mut self, at: Instant) -> Option<SilencePhase> {
        if at > self.last_heard {
            self.last_heard = at;
        }
        self.set(SilencePhase::Talking)
    }

    /// Time passed: the phase at `now`, if it changed.
    pub fn poll(&mut self, now: Instant) -> Option<SilencePhase> {
        let quiet = self.silent_for(now);
        let phase = if quiet >= self.config.lost_after {
            SilencePhase::Lost
        } else if quiet >= self.config.silent_after {
            SilencePhase::Silent
        } else {
            SilencePhase::Talking
        };
        self.set(phase)
    }

    // ----- getters -----

    /// The phase as of the last input.
    #[must_use]
    pub const fn phase(&self) -> SilencePhase {
        self.phase
    }

    /// When the source was last heard.
    #[must_use]
    pub const fn last_heard(&self) -> Instant {
        self.last_heard
    }

    /// How long it has been quiet at `now` (zero for a `now` before it was last heard).
    #[must_use]
    pub fn silent_for(&self, now: Instant) -> Duration {
        now.saturating_duration_since(self.last_heard)
    }

    /// The thresholds.
    #[must_use]
    pub const fn config(&self) -> SilenceConfig {
        self.config
    }

    // ----- outputs -----

    /// When the phase changes next if nothing is heard: the next threshold not yet reached;
    /// `None` once lost.
    #[must_use]
    pub fn poll_at(&self) -> Option<Instant> {
        match self.phase {
            SilencePhase::Talking => Some(self.last_heard.saturating_add(self.config.silent_after)),
            SilencePhase::Silent => Some(self.last_heard.saturating_add(self.config.lost_after)),
            SilencePhase::Lost => None,
        }
    }

    fn set(&mut self, phase: SilencePhase) -> Option<SilencePhase> {
        (phase != self.phase).then(|| {
            self.phase = phase;
            phase
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const CONFIG: SilenceConfig = SilenceConfig {
        silent_after: Duration::from_secs(3),
        lost_after: Duration::from_secs(10),
    };

    fn at(s: u64) -> Instant {
        Instant::from_secs(s)
    }

    #[test]
    fn thresholds_in_order_and_nothing_twice() {
        let mut s = Silence::new(CONFIG, at(0));
        assert_eq!(s.poll(at(2)), None);
        assert_eq!(s.poll(at(3)), Some(SilencePhase::Silent));
        assert_eq!(s.poll(at(4)), None);
        assert_eq!(s.poll_at(), Some(at(10)));
        // A late poll jumps straight to lost.
        let mut late = Silence::new(CONFIG, at(0));
        assert_eq!(late.poll(at(50)), Some(SilencePhase::Lost));
        assert_eq!(late.poll_at(), None);
        assert_eq!(late.on_heard(at(51)), Some(SilencePhase::Talking));
        assert_eq!(late.on_heard(at(52)), None);
        assert_eq!(late.poll_at(), Some(at(55)));
    }

    #[test]
    fn an_earlier_heard_or_now_changes_nothing() {
        let mut s = Silence::new(CONFIG, at(100));
        assert_eq!(s.on_heard(at(50)), None);
        assert_eq!(s.last_heard(), at(100));
        assert_eq!(s.poll(at(20)), None);
        assert_eq!(s.silent_for(at(20)), Duration::ZERO);
        let mut far = Silence::new(CONFIG, Instant::MAX);
        assert_eq!(far.poll_at(), Some(Instant::MAX));
        assert_eq!(far.poll(Instant::MAX), None);
    }

    #[test]
    fn invalid_thresholds_are_named() {
        let zero = SilenceConfig {
            silent_after: Duration::ZERO,
            ..CONFIG
        };
        assert!(Silence::try_new(zero, at(0)).is_err());
        let inverted = SilenceConfig {
            silent_after: Duration::from_secs(11),
            lost_after: Duration::from_secs(10),
        };
        let error = Silence::try_new(inverted, at(0)).expect_err("refused");
        let mut text = heapless::String::<128>::new();
        let _ = core::fmt::write(&mut text, format_args!("{error}"));
        assert!(text.contains("lost_after"), "{text}");
        // Equal thresholds skip the silent phase.
        let equal = SilenceConfig {
            silent_after: Duration::from_secs(10),
            lost_after: Duration::from_secs(10),
        };
        let mut s = Silence::new(equal, at(0));
        assert_eq!(s.poll(at(10)), Some(SilencePhase::Lost));
    }
}
