//! A health component that mirrors a circuit breaker: closed (or metrics-only, or disabled) is
//! healthy, half-open degraded, open or forced open unhealthy with why and when it probes
//! again. [`HealthProbe::mirror_breaker`] registers it and pushes every transition into the
//! registry the moment it happens, so `/health` never contradicts the breaker.

use rustkernel_core::resilience::circuit_breaker::SlidingWindow;
use rustkernel_core::resilience::{CircuitState, HealthCheckResult, RegistryError};
use tokio::sync::broadcast::error::RecvError;
use tokio::task::JoinHandle;

use super::{ComponentOptions, HealthProbe, check_fn};
use crate::breaker::CircuitBreaker;

/// The health verdict of `breaker` now.
///
/// Open: `"circuit breaker open (4 consecutive failures); probing in 30 s"`.
#[must_use]
pub fn breaker_health<W: SlidingWindow>(breaker: &CircuitBreaker<W>) -> HealthCheckResult {
    match breaker.state() {
        CircuitState::Closed | CircuitState::Disabled | CircuitState::MetricsOnly => {
            HealthCheckResult::healthy()
        }
        CircuitState::HalfOpen => HealthCheckResult::degraded("circuit breaker half-open: probing"),
        CircuitState::Open => {
            let why = breaker
                .stats()
                .trip
                .map_or_else(|| "failures".to_owned(), |trip| trip.to_string());
            let wait = breaker.retry_after().unwrap_or_default();
            HealthCheckResult::unhealthy(&format!(
                "circuit breaker open ({why}); probing in {} s",
                wait.as_secs_f64().ceil()
            ))
        }
        CircuitState::ForcedOpen => {
            HealthCheckResult::unhealthy("circuit breaker forced open by an operator")
        }
    }
}

impl HealthProbe {
    /// Registers component `name` as a mirror of `breaker` (see [`breaker_health`]) and spawns
    /// the task that pushes each of its transitions into the registry as it happens
    /// ([`record`](Self::record)); the component is also checked at its interval. Its
    /// thresholds are 1: the breaker has its own hysteresis, and a component that lagged it
    /// would contradict it. The task holds a clone of the breaker and runs until it is
    /// aborted (drop the handle's task with `abort` at shutdown).
    ///
    /// # Errors
    /// As [`try_register_with`](Self::try_register_with).
    ///
    /// # Panics
    /// Outside a tokio runtime, as `tokio::spawn` does.
    pub fn mirror_breaker<W>(
        &self,
        name: &str,
        breaker: CircuitBreaker<W>,
        options: ComponentOptions,
    ) -> Result<JoinHandle<()>, RegistryError>
    where
        W: SlidingWindow + Send + Sync + 'static,
        CircuitBreaker<W>: Send + Sync,
    {
        let config = options.config.unwrap_or(self.config());
        let options = ComponentOptions {
            config: Some(rustkernel_core::resilience::HealthProbeConfig {
                failure_threshold: 1,
                success_threshold: 1,
                ..config
            }),
            ..options
        };
        let checked = breaker.clone();
        self.try_register_with(
            name,
            check_fn(move || {
                let result = breaker_health(&checked);
                async move { result }
            }),
            options,
        )?;
        let probe = self.clone();
        let name = name.to_owned();
        let mut transitions = breaker.subscribe_transitions();
        Ok(tokio::spawn(async move {
            loop {
                match transitions.recv().await {
                    Ok(_) | Err(RecvError::Lagged(_)) => {
                        let _ = probe.record(&name, breaker_health(&breaker));
                    }
                    Err(RecvError::Closed) => return,
                }
            }
        }))
    }
}
