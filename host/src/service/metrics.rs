//! `/metrics`: Prometheus text through `prometheus-client`, one registry built at start-up.
//!
//! | Metric | Type | Labels |
//! |---|---|---|
//! | `rustkernel_kernel_calls_total` | counter | `kernel`, `outcome` (`success`, `rejected`, `timeout`, `deadline_exceeded`, `failed`, `invalid_input`, `shed`) |
//! | `rustkernel_kernel_duration_seconds` | histogram | `kernel` |
//! | `rustkernel_kernel_retries_total` | counter | `kernel` |
//! | `rustkernel_deadline_exceeded_total` | counter | `kernel` |
//! | `rustkernel_breaker_state` | gauge (0 closed, 1 open, 2 half-open, 3 forced open, 4 disabled, 5 metrics-only) | `kernel` |
//! | `rustkernel_breaker_transitions_total` | counter | `kernel`, `from`, `to` |
//! | `rustkernel_breaker_opened_total` | counter | `kernel`, `reason` (`failure_rate`, `slow_call_rate`, `consecutive_failures`, `probe_failed`, `half_open_timeout`, `forced`) |
//! | `rustkernel_breaker_would_open_total` | counter | `kernel`, `reason`: a metrics-only breaker would have opened |
//! | `rustkernel_health_status` | gauge (0 healthy, 1 degraded, 2 unknown, 3 unhealthy) | `component` |
//! | `rustkernel_restarts_total` | counter | `component` |
//! | `rustkernel_escalations_total` | counter | `component`, `strategy` |
//! | `rustkernel_http_requests_total` | counter | `route`, `status` |
//! | `rustkernel_edge_*` | | edge devices' telemetry: see [`crate::telemetry::ingest`] |

use std::time::Duration;

use prometheus_client::encoding::EncodeLabelSet;
use prometheus_client::metrics::counter::Counter;
use prometheus_client::metrics::family::Family;
use prometheus_client::metrics::gauge::Gauge;
use prometheus_client::metrics::histogram::{Histogram, exponential_buckets};
use prometheus_client::registry::Registry;
use rustkernel_core::resilience::{CircuitState, HealthStatus};

/// Labels of one kernel.
#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct KernelLabels {
    /// The kernel id (`graph/pagerank`).
    pub kernel: String,
}

/// Labels of a call's outcome.
#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct CallLabels {
    /// The kernel id.
    pub kernel: String,
    /// How the call ended.
    pub outcome: &'static str,
}

/// Labels of a breaker transition.
#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct TransitionLabels {
    /// The kernel id.
    pub kernel: String,
    /// The state before.
    pub from: &'static str,
    /// The state after.
    pub to: &'static str,
}

/// Labels of a breaker trip.
#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct TripLabels {
    /// The kernel id.
    pub kernel: String,
    /// Why it opened (`failure_rate`, `consecutive_failures`, ...).
    pub reason: &'static str,
}

/// Labels of a health component.
#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct ComponentLabels {
    /// The component's name.
    pub component: String,
}

/// Labels of an escalation.
#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct EscalationLabels {
    /// The component's name.
    pub component: String,
    /// The strategy escalated to.
    pub strategy: &'static str,
}

/// Labels of an HTTP response.
#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct HttpLabels {
    /// The route (`/v1/kernels/execute`, `/health/ready`, ...).
    pub route: &'static str,
    /// The status code.
    pub status: u16,
}

fn duration_histogram() -> Histogram {
    // 100 µs to ~3.3 s.
    Histogram::new(exponential_buckets(0.000_1, 2.0, 16))
}

/// Every metric family of the service, and the registry that encodes them.
#[derive(Debug)]
pub struct Metrics {
    registry: Registry,
    /// Calls by kernel and outcome.
    pub calls: Family<CallLabels, Counter>,
    /// Call latency by kernel.
    pub duration: Family<KernelLabels, Histogram, fn() -> Histogram>,
    /// Retries made (attempts beyond the first) by kernel.
    pub retries: Family<KernelLabels, Counter>,
    /// Calls that ran out of time, by kernel.
    pub deadline_exceeded: Family<KernelLabels, Counter>,
    /// The breaker's state by kernel.
    pub breaker_state: Family<KernelLabels, Gauge>,
    /// Breaker transitions.
    pub breaker_transitions: Family<TransitionLabels, Counter>,
    /// Breaker openings by reason.
    pub breaker_opened: Family<TripLabels, Counter>,
    /// Openings a metrics-only breaker reported and did not make, by reason.
    pub breaker_would_open: Family<TripLabels, Counter>,
    /// Health status by component.
    pub health_status: Family<ComponentLabels, Gauge>,
    /// Restarts by component.
    pub restarts: Family<ComponentLabels, Counter>,
    /// Escalations by component and strategy.
    pub escalations: Family<EscalationLabels, Counter>,
    /// HTTP responses by route and status.
    pub http: Family<HttpLabels, Counter>,
    /// The edge devices' families (`rustkernel_edge_*`).
    pub edge: crate::telemetry::ingest::EdgeMetrics,
}

impl Metrics {
    /// A registry with every family registered.
    #[must_use]
    pub fn new() -> Self {
        let mut registry = Registry::with_prefix("rustkernel");
        let metrics = Self {
            calls: Family::default(),
            duration: Family::new_with_constructor(duration_histogram),
            retries: Family::default(),
            deadline_exceeded: Family::default(),
            breaker_state: Family::default(),
            breaker_transitions: Family::default(),
            breaker_opened: Family::default(),
            breaker_would_open: Family::default(),
            health_status: Family::default(),
            restarts: Family::default(),
            escalations: Family::default(),
            http: Family::default(),
            edge: crate::telemetry::ingest::EdgeMetrics::default(),
            registry: Registry::default(),
        };
        registry.register(
            "kernel_calls",
            "Kernel calls by outcome",
            metrics.calls.clone(),
        );
        registry.register(
            "kernel_duration_seconds",
            "Kernel call latency, through the whole pipeline",
            metrics.duration.clone(),
        );
        registry.register(
            "kernel_retries",
            "Retries made (attempts beyond the first)",
            metrics.retries.clone(),
        );
        registry.register(
            "deadline_exceeded",
            "Kernel calls that ran out of time",
            metrics.deadline_exceeded.clone(),
        );
        registry.register(
            "breaker_state",
            "Circuit breaker state: 0 closed, 1 open, 2 half-open, 3 forced open, 4 disabled, 5 metrics-only",
            metrics.breaker_state.clone(),
        );
        registry.register(
            "breaker_transitions",
            "Circuit breaker state transitions",
            metrics.breaker_transitions.clone(),
        );
        registry.register(
            "breaker_opened",
            "Circuit breaker openings by reason",
            metrics.breaker_opened.clone(),
        );
        registry.register(
            "breaker_would_open",
            "Openings a metrics-only (shadow) circuit breaker would have made, by reason",
            metrics.breaker_would_open.clone(),
        );
        registry.register(
            "health_status",
            "Health by component: 0 healthy, 1 degraded, 2 unknown, 3 unhealthy",
            metrics.health_status.clone(),
        );
        registry.register(
            "restarts",
            "Restarts made by a supervisor",
            metrics.restarts.clone(),
        );
        registry.register(
            "escalations",
            "Recovery escalations",
            metrics.escalations.clone(),
        );
        registry.register(
            "http_requests",
            "HTTP responses by route and status",
            metrics.http.clone(),
        );
        metrics.edge.register(&mut registry);
        Self {
            registry,
            ..metrics
        }
    }

    /// Counts a finished kernel call.
    pub fn record_call(&self, kernel: &str, outcome: &'static str, elapsed: Duration) {
        self.calls
            .get_or_create(&CallLabels {
                kernel: kernel.to_owned(),
                outcome,
            })
            .inc();
        self.duration
            .get_or_create(&KernelLabels {
                kernel: kernel.to_owned(),
            })
            .observe(elapsed.as_secs_f64());
    }

    /// Creates `kernel`'s retry and deadline counters at 0, so they are exported before their
    /// first event.
    pub fn init_kernel(&self, kernel: &str) {
        let labels = KernelLabels {
            kernel: kernel.to_owned(),
        };
        let _ = self.retries.get_or_create(&labels);
        let _ = self.deadline_exceeded.get_or_create(&labels);
    }

    /// Sets a breaker's state gauge.
    pub fn set_breaker_state(&self, kernel: &str, state: CircuitState) {
        self.breaker_state
            .get_or_create(&KernelLabels {
                kernel: kernel.to_owned(),
            })
            .set(breaker_state_value(state));
    }

    /// Sets a component's health gauge.
    pub fn set_health(&self, component: &str, status: HealthStatus) {
        self.health_status
            .get_or_create(&ComponentLabels {
                component: component.to_owned(),
            })
            .set(health_value(status));
    }

    /// The Prometheus text exposition of every metric.
    ///
    /// # Errors
    /// Only if formatting fails (never for a `String`).
    pub fn encode(&self) -> Result<String, std::fmt::Error> {
        let mut text = String::new();
        prometheus_client::encoding::text::encode(&mut text, &self.registry)?;
        Ok(text)
    }
}

impl Default for Metrics {
    fn default() -> Self {
        Self::new()
    }
}

/// The gauge value of a breaker state.
#[must_use]
pub fn breaker_state_value(state: CircuitState) -> i64 {
    match state {
        CircuitState::Closed => 0,
        CircuitState::Open => 1,
        CircuitState::HalfOpen => 2,
        CircuitState::ForcedOpen => 3,
        CircuitState::Disabled => 4,
        CircuitState::MetricsOnly => 5,
    }
}

/// The gauge value of a health status.
#[must_use]
pub fn health_value(status: HealthStatus) -> i64 {
    match status {
        HealthStatus::Healthy => 0,
        HealthStatus::Degraded => 1,
        HealthStatus::Unknown => 2,
        HealthStatus::Unhealthy => 3,
    }
}

/// A breaker state's label value (`closed`, `half_open`, ...).
#[must_use]
pub fn state_label(state: CircuitState) -> &'static str {
    match state {
        CircuitState::Closed => "closed",
        CircuitState::Open => "open",
        CircuitState::HalfOpen => "half_open",
        CircuitState::ForcedOpen => "forced_open",
        CircuitState::Disabled => "disabled",
        CircuitState::MetricsOnly => "metrics_only",
    }
}
