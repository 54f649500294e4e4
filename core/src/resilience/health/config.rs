//! How often a probe checks, how long a check may take, and how many results in a row flip it.

use core::time::Duration;

use crate::error::{ConfigError, ConfigField};
use crate::time::duration_as_micros;

/// The configuration of a health probe, with exactly the chapter's four fields.
///
/// The fields mean what Kubernetes' probe fields mean (`periodSeconds`, `timeoutSeconds`,
/// `failureThreshold`, `successThreshold` of the `core/v1` `Probe` API):
///
/// ```
/// use core::time::Duration;
/// use rustkernel_core::resilience::HealthProbeConfig;
///
/// let config = HealthProbeConfig {
///     interval: Duration::from_secs(10),
///     timeout: Duration::from_secs(5),
///     failure_threshold: 3,
///     success_threshold: 1,
/// };
/// assert_eq!(config.validate(), Ok(()));
/// ```
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
#[cfg_attr(feature = "serde", derive(serde::Serialize, serde::Deserialize))]
#[cfg_attr(feature = "defmt", derive(defmt::Format))]
pub struct HealthProbeConfig {
    /// Time from the start of one check to the start of the next.
    pub interval: Duration,
    /// A check that has not answered this long after it started counts as a failure.
    pub timeout: Duration,
    /// Failures in a row that make the probe `Unhealthy` (and fail a startup probe).
    pub failure_threshold: u32,
    /// Passing checks in a row that make the probe `Healthy` again (hysteresis).
    pub success_threshold: u32,
}

/// The name the chapter's `ResilienceConfig` uses for [`HealthProbeConfig`].
pub type HealthCheckConfig = HealthProbeConfig;

impl HealthProbeConfig {
    /// Kubernetes' probe defaults: `periodSeconds` 10, `timeoutSeconds` 1, `failureThreshold` 3,
    /// `successThreshold` 1 (Kubernetes API reference, `core/v1` `Probe`).
    pub const KUBERNETES: Self = Self {
        interval: Duration::from_secs(10),
        timeout: Duration::from_secs(1),
        failure_threshold: 3,
        success_threshold: 1,
    };

    /// The production preset: the chapter's probe (10 s interval, 5 s timeout, 3 failures, 1
    /// success). The longer timeout than Kubernetes' 1 s leaves room for a GPU check that has
    /// to wait for a busy stream.
    #[must_use]
    pub const fn production() -> Self {
        Self {
            interval: Duration::from_secs(10),
            timeout: Duration::from_secs(5),
            failure_threshold: 3,
            success_threshold: 1,
        }
    }

    /// Checks the configuration.
    ///
    /// # Errors
    /// - [`ConfigError::Zero`] when `interval` or `timeout` is shorter than a microsecond (the
    ///   core's resolution) or a threshold is zero;
    /// - [`ConfigError::Exceeds`] with `field: ProbeTimeout, limit: ProbeInterval` when
    ///   `timeout > interval`: checks of one probe never overlap, so the next one starts only
    ///   after the previous one answered or timed out.
    pub const fn validate(&self) -> Result<(), ConfigError> {
        if duration_as_micros(self.interval) == 0 {
            return Err(ConfigError::Zero(ConfigField::ProbeInterval));
        }
        if duration_as_micros(self.timeout) == 0 {
            return Err(ConfigError::Zero(ConfigField::ProbeTimeout));
        }
        if self.failure_threshold == 0 {
            return Err(ConfigError::Zero(ConfigField::ProbeFailureThreshold));
        }
        if self.success_threshold == 0 {
            return Err(ConfigError::Zero(ConfigField::ProbeSuccessThreshold));
        }
        if self.timeout.as_nanos() > self.interval.as_nanos() {
            return Err(ConfigError::Exceeds {
                field: ConfigField::ProbeTimeout,
                limit: ConfigField::ProbeInterval,
            });
        }
        Ok(())
    }

    /// How long a startup probe may take to succeed: `failure_threshold x interval`, the bound
    /// Kubernetes documents for startup probes; saturates at [`Duration::MAX`].
    #[must_use]
    pub const fn startup_window(&self) -> Duration {
        crate::time::duration_saturating_mul(self.interval, self.failure_threshold)
    }
}

impl Default for HealthProbeConfig {
    /// [`HealthProbeConfig::KUBERNETES`].
    fn default() -> Self {
        Self::KUBERNETES
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn default_is_kubernetes() {
        let config = HealthProbeConfig::default();
        assert_eq!(config.interval, Duration::from_secs(10));
        assert_eq!(config.timeout, Duration::from_secs(1));
        assert_eq!(config.failure_threshold, 3);
        assert_eq!(config.success_threshold, 1);
        assert_eq!(config.validate(), Ok(()));
        assert_eq!(HealthProbeConfig::production().validate(), Ok(()));
        let alias: HealthCheckConfig = HealthCheckConfig::production();
        assert_eq!(alias.timeout, Duration::from_secs(5));
    }

    #[test]
    fn validate_names_the_bad_field() {
        let ok = HealthProbeConfig::default();
        let zero = |config: HealthProbeConfig| config.validate();
        assert_eq!(
            zero(HealthProbeConfig {
                interval: Duration::ZERO,
                ..ok
            }),
            Err(ConfigError::Zero(ConfigField::ProbeInterval))
        );
        assert_eq!(
            zero(HealthProbeConfig {
                interval: Duration::from_nanos(999),
                ..ok
            }),
            Err(ConfigError::Zero(ConfigField::ProbeInterval))
        );
        assert_eq!(
            zero(HealthProbeConfig {
                timeout: Duration::ZERO,
                ..ok
            }),
            Err(ConfigError::Zero(ConfigField::ProbeTimeout))
        );
        assert_eq!(
            zero(HealthProbeConfig {
                failure_threshold: 0,
                ..ok
            }),
            Err(ConfigError::Zero(ConfigField::ProbeFailureThreshold))
        );
        assert_eq!(
            zero(HealthProbeConfig {
                success_threshold: 0,
                ..ok
            }),
            Err(ConfigError::Zero(ConfigField::ProbeSuccessThreshold))
        );
        assert_eq!(
            zero(HealthProbeConfig {
                timeout: Duration::from_secs(11),
                ..ok
            }),
            Err(ConfigError::Exceeds {
                field: ConfigField::ProbeTimeout,
                limit: ConfigField::ProbeInterval
            })
        );
        assert_eq!(
            zero(HealthProbeConfig {
                timeout: ok.interval,
                ..ok
            }),
            Ok(())
        );
        let huge = HealthProbeConfig {
            interval: Duration::MAX,
            timeout: Duration::MAX,
            failure_threshold: u32::MAX,
            success_threshold: u32::MAX,
        };
        assert_eq!(huge.validate(), Ok(()));
    }

    #[test]
    fn startup_window_saturates() {
        assert_eq!(
            HealthProbeConfig::default().startup_window(),
            Duration::from_secs(30)
        );
        let huge = HealthProbeConfig {
            interval: Duration::MAX,
            ..HealthProbeConfig::default()
        };
        assert_eq!(huge.startup_window(), Duration::MAX);
    }

    #[cfg(feature = "serde")]
    #[test]
    fn config_round_trips() {
        let config = HealthProbeConfig::production();
        let mut buf = [0u8; 64];
        let bytes = postcard::to_slice(&config, &mut buf).expect("fits");
        assert_eq!(
            postcard::from_bytes::<HealthProbeConfig>(bytes).expect("decodes"),
            config
        );
    }
}
