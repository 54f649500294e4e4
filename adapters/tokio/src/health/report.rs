//! What `/health` answers: the service's live, ready and started flags, its overall status and
//! one line per component, serializable to JSON.

use std::time::Duration;

use rustkernel_core::resilience::{ComponentEntry, Criticality, HealthRegistry, HealthStatus};
use serde::{Deserialize, Serialize};

/// The health of the service and of each component, as [`HealthProbe::report`] takes it.
///
/// Serialized with serde, it is the body of a `/health` endpoint:
///
/// ```json
/// {"live":true,"ready":false,"started":true,"overall":"unhealthy",
///  "components":[{"name":"graph/pagerank","status":"unhealthy","message":"GPU unavailable",
///    "latency_ms":3.0,"critical":true,"live":true,"ready":false,"started":true}]}
/// ```
///
/// [`HealthProbe::report`]: crate::health::HealthProbe::report
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct HealthReport {
    /// `/health/live`: every critical component is live.
    pub live: bool,
    /// `/health/ready`: every critical component is ready.
    pub ready: bool,
    /// `/health/startup`: every critical component has started.
    pub started: bool,
    /// The worst contribution of the components (a non-critical one degrades at most).
    pub overall: HealthStatus,
    /// The components, in registration order.
    pub components: Vec<ComponentReport>,
}

/// One component's line in a [`HealthReport`].
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct ComponentReport {
    /// The name it was registered under (`"graph/pagerank"`).
    pub name: String,
    /// Its status: `unknown` while starting, otherwise the worst of its probes.
    pub status: HealthStatus,
    /// The message of its latest check result; empty before the first one.
    pub message: String,
    /// How long its latest check took; serialized as `latency_ms`, a float of milliseconds.
    #[serde(rename = "latency_ms", with = "millis")]
    pub latency: Duration,
    /// Whether it is [`Criticality::Critical`].
    pub critical: bool,
    /// Kubernetes' liveness of the component.
    pub live: bool,
    /// Kubernetes' readiness of the component.
    pub ready: bool,
    /// Whether its startup probe succeeded (always, without one, until a failed startup).
    pub started: bool,
}

impl HealthReport {
    /// The report of every component in `registry`.
    pub(crate) fn from_registry<const N: usize>(registry: &HealthRegistry<N>) -> Self {
        Self {
            live: registry.live(),
            ready: registry.ready(),
            started: registry.started(),
            overall: registry.overall(),
            components: registry.iter().map(ComponentReport::from_entry).collect(),
        }
    }

    /// The component called `name`.
    #[must_use]
    pub fn component(&self, name: &str) -> Option<&ComponentReport> {
        self.components
            .iter()
            .find(|component| component.name == name)
    }
}

impl ComponentReport {
    fn from_entry(entry: &ComponentEntry) -> Self {
        let health = entry.health();
        // The probes of one component run the same check: the newest result speaks for it.
        let latest = health
            .roles()
            .iter()
            .filter_map(|role| health.probe(role).and_then(|probe| probe.last_result()))
            .max_by_key(|result| result.checked_at);
        Self {
            name: entry.name().to_owned(),
            status: entry.status(),
            message: latest
                .map(|result| result.message().to_owned())
                .unwrap_or_default(),
            latency: latest.map_or(Duration::ZERO, |result| result.latency),
            critical: entry.criticality() == Criticality::Critical,
            live: health.is_live(),
            ready: health.is_ready(),
            started: health.is_started(),
        }
    }
}

/// A [`Duration`] as a float of milliseconds, the unit dashboards read latency in.
mod millis {
    use std::time::Duration;

    use serde::{Deserialize, Deserializer, Serializer};

    pub(super) fn serialize<S: Serializer>(
        duration: &Duration,
        serializer: S,
    ) -> Result<S::Ok, S::Error> {
        // Whole nanoseconds over 1e6: exact for any latency a check can have (< 104 days).
        #[allow(clippy::cast_precision_loss)]
        let nanos = duration.as_nanos() as f64;
        serializer.serialize_f64(nanos / 1_000_000.0)
    }

    pub(super) fn deserialize<'de, D: Deserializer<'de>>(
        deserializer: D,
    ) -> Result<Duration, D::Error> {
        let millis = f64::deserialize(deserializer)?;
        let nanos = (millis * 1_000_000.0).round();
        if !(0.0..18_446_744_073_709_551_616.0).contains(&nanos) {
            return Err(serde::de::Error::custom(
                "latency_ms must be a non-negative number of milliseconds",
            ));
        }
        // In range and whole: the cast is exact.
        #[allow(clippy::cast_possible_truncation, clippy::cast_sign_loss)]
        let nanos = nanos as u64;
        Ok(Duration::from_nanos(nanos))
    }
}
