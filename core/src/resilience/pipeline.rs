//! What a resilience pipeline is built from: the same shape for the tokio and the embassy
//! adapters' `Pipeline`.
//!
//! Each adapter runs an operation through, outermost first: the total deadline (`timeout`),
//! retry (`retry`), the breaker for each attempt (`circuit_breaker`), and an optional
//! per-attempt timeout (`attempt_timeout`). The adapters' module docs say why in that order.

use core::time::Duration;

use super::{CircuitBreakerConfig, ResilienceConfig, RetryConfig, TimeoutConfig};
use crate::error::{ConfigError, ConfigField};

/// The parts of a pipeline.
///
/// ```
/// use core::time::Duration;
/// use rustkernel_core::resilience::{PipelineConfig, ResilienceConfig};
/// let config = PipelineConfig::from_resilience(&ResilienceConfig::production())
///     .with_attempt_timeout(Duration::from_secs(5));
/// assert!(config.validate().is_ok());
/// ```
#[derive(Clone, Copy, Debug, PartialEq)]
#[cfg_attr(feature = "serde", derive(serde::Serialize, serde::Deserialize))]
pub struct PipelineConfig {
    /// The breaker asked before each attempt.
    pub circuit_breaker: CircuitBreakerConfig,
    /// How failed attempts are retried.
    pub retry: RetryConfig,
    /// The total deadline of a call (`default_timeout`, clamped by `max_timeout`).
    pub timeout: TimeoutConfig,
    /// Each attempt's own timeout; `None`: attempts run until the total deadline.
    pub attempt_timeout: Option<Duration>,
}

impl PipelineConfig {
    /// The pipeline of a [`ResilienceConfig`]: its breaker, retry and timeout, no attempt
    /// timeout.
    #[must_use]
    pub const fn from_resilience(config: &ResilienceConfig) -> Self {
        Self {
            circuit_breaker: config.circuit_breaker,
            retry: config.retry,
            timeout: config.timeout,
            attempt_timeout: None,
        }
    }

    /// The same, with each attempt cut after `timeout`.
    #[must_use]
    pub const fn with_attempt_timeout(mut self, timeout: Duration) -> Self {
        self.attempt_timeout = Some(timeout);
        self
    }

    /// Checks every part.
    ///
    /// # Errors
    /// The first part's [`ConfigError`]; a zero attempt timeout is
    /// `Zero(ConfigField::DefaultTimeout)`.
    pub const fn validate(&self) -> Result<(), ConfigError> {
        self.validate_for_window(0)
    }

    /// As [`validate`](Self::validate), for a breaker over a window of `window_capacity`
    /// outcomes (see [`CircuitBreakerConfig::validate_for_window`]).
    ///
    /// # Errors
    /// The first invalid value found.
    pub const fn validate_for_window(&self, window_capacity: u32) -> Result<(), ConfigError> {
        if let Err(error) = self.circuit_breaker.validate_for_window(window_capacity) {
            return Err(error);
        }
        if let Err(error) = self.retry.validate() {
            return Err(error);
        }
        if let Err(error) = self.timeout.validate() {
            return Err(error);
        }
        if let Some(attempt) = self.attempt_timeout
            && attempt.is_zero()
        {
            return Err(ConfigError::Zero(ConfigField::DefaultTimeout));
        }
        Ok(())
    }
}

impl From<&ResilienceConfig> for PipelineConfig {
    fn from(config: &ResilienceConfig) -> Self {
        Self::from_resilience(config)
    }
}
