//! A snapshot of the resilience metrics a host exports: breaker stats, health and recovery
//! decisions, as a serde value or as Prometheus text.
//!
//! ```
//! use rustkernel_tokio::metrics::{MetricsSnapshot, RecoveryActionCounts};
//! use rustkernel_tokio::resilience::{CircuitBreakerStats, CircuitState};
//!
//! let stats = CircuitBreakerStats {
//!     state: CircuitState::Closed,
//!     failure_count: 2,
//!     success_count: 98,
//!     rejected_count: 0,
//!     slow_call_count: 1,
//!     slow_success_count: 1,
//!     slow_failure_count: 0,
//!     consecutive_failures: 0,
//!     transitions: 0,
//!     success_rate: 0.98,
//!     trip: None,
//!     would_open_count: 0,
//! };
//! let snapshot = MetricsSnapshot::new()
//!     .with_breaker("graph/pagerank", stats)
//!     .with_recovery("graph/pagerank", RecoveryActionCounts::default());
//! let text = snapshot.to_prometheus();
//! assert!(text.contains(
//!     "rustkernel_circuit_breaker_calls_total{breaker=\"graph/pagerank\",outcome=\"success\"} 98\n"
//! ));
//! ```

use std::fmt::{self, Write};

use rustkernel_core::resilience::{
    CircuitBreakerStats, CircuitState, Escalation, HealthStatus, RecoveryAction, Trip,
};
use serde::{Deserialize, Serialize};

use crate::health::HealthReport;

/// How many times the core decided each [`RecoveryAction`] (its variants, without their data).
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Hash, Serialize, Deserialize)]
pub struct RecoveryActionCounts {
    /// [`RecoveryAction::Restart`].
    pub restart: u64,
    /// [`RecoveryAction::RestartPending`].
    pub restart_pending: u64,
    /// [`RecoveryAction::UseReplica`].
    pub use_replica: u64,
    /// [`RecoveryAction::Degrade`].
    pub degrade: u64,
    /// [`RecoveryAction::Failover`].
    pub failover: u64,
    /// [`RecoveryAction::NotifyOperator`].
    pub notify_operator: u64,
    /// [`RecoveryAction::Escalate`], whatever the strategy.
    pub escalate: u64,
    /// [`RecoveryAction::GiveUp`].
    pub give_up: u64,
    /// [`RecoveryAction::AlreadyEscalated`].
    pub already_escalated: u64,
}

impl RecoveryActionCounts {
    /// Counts `action` (saturating).
    pub fn record(&mut self, action: RecoveryAction) {
        let counter = match action {
            RecoveryAction::Restart { .. } => &mut self.restart,
            RecoveryAction::RestartPending { .. } => &mut self.restart_pending,
            RecoveryAction::UseReplica => &mut self.use_replica,
            RecoveryAction::Degrade => &mut self.degrade,
            RecoveryAction::Failover => &mut self.failover,
            RecoveryAction::NotifyOperator => &mut self.notify_operator,
            RecoveryAction::Escalate(_) => &mut self.escalate,
            RecoveryAction::GiveUp => &mut self.give_up,
            RecoveryAction::AlreadyEscalated(Escalation::To(_) | Escalation::GaveUp) => {
                &mut self.already_escalated
            }
        };
        *counter = counter.saturating_add(1);
    }

    /// Every count with its label value (`"restart"`, `"use_replica"`, ...), in declaration
    /// order.
    #[must_use]
    pub fn labelled(&self) -> [(&'static str, u64); 9] {
        [
            ("restart", self.restart),
            ("restart_pending", self.restart_pending),
            ("use_replica", self.use_replica),
            ("degrade", self.degrade),
            ("failover", self.failover),
            ("notify_operator", self.notify_operator),
            ("escalate", self.escalate),
            ("give_up", self.give_up),
            ("already_escalated", self.already_escalated),
        ]
    }

    /// All decisions counted.
    #[must_use]
    pub fn total(&self) -> u64 {
        self.labelled()
            .iter()
            .fold(0u64, |sum, (_, count)| sum.saturating_add(*count))
    }
}

/// One breaker's stats under its name.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct BreakerMetrics {
    /// The breaker's name (the `breaker` label).
    pub name: String,
    /// Its stats.
    pub stats: CircuitBreakerStats,
}

/// One supervisor's decision counts under its name.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct RecoveryMetrics {
    /// The supervised kernel's name (the `kernel` label).
    pub kernel: String,
    /// How many of each decision.
    pub counts: RecoveryActionCounts,
}

/// What the host exports at one instant: breakers, health and recovery. Serializable (JSON)
/// and printable as Prometheus text with [`to_prometheus`](Self::to_prometheus).
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize)]
pub struct MetricsSnapshot {
    /// The breakers, in the order added.
    pub breakers: Vec<BreakerMetrics>,
    /// The health report, if the host has a probe.
    pub health: Option<HealthReport>,
    /// The supervisors, in the order added.
    pub recovery: Vec<RecoveryMetrics>,
}

/// The `state` gauge's value for each breaker state.
const fn state_value(state: CircuitState) -> u8 {
    match state {
        CircuitState::Closed => 0,
        CircuitState::HalfOpen => 1,
        CircuitState::Open => 2,
        CircuitState::ForcedOpen => 3,
        CircuitState::Disabled => 4,
        CircuitState::MetricsOnly => 5,
    }
}

impl MetricsSnapshot {
    /// An empty snapshot.
    #[must_use]
    pub fn new() -> Self {
        Self::default()
    }

    /// The snapshot with breaker `name`'s stats added.
    #[must_use]
    pub fn with_breaker(mut self, name: impl Into<String>, stats: CircuitBreakerStats) -> Self {
        self.breakers.push(BreakerMetrics {
            name: name.into(),
            stats,
        });
        self
    }

    /// The snapshot with `report` as its health.
    #[must_use]
    pub fn with_health(mut self, report: HealthReport) -> Self {
        self.health = Some(report);
        self
    }

    /// The snapshot with supervisor `kernel`'s decision counts added.
    #[must_use]
    pub fn with_recovery(
        mut self,
        kernel: impl Into<String>,
        counts: RecoveryActionCounts,
    ) -> Self {
        self.recovery.push(RecoveryMetrics {
            kernel: kernel.into(),
            counts,
        });
        self
    }

    /// The Prometheus text exposition format (version 0.0.4): `# HELP` and `# TYPE` before
    /// each family, label values escaped (`\\`, `\"`, `\n`).
    ///
    /// | Family | Type | Labels | Value |
    /// |---|---|---|---|
    /// | `rustkernel_circuit_breaker_state` | gauge | `breaker` | 0 closed, 1 half-open, 2 open, 3 forced open, 4 disabled |
    /// | `rustkernel_circuit_breaker_calls_total` | counter | `breaker`, `outcome` (`success`, `failure`, `rejected`) | calls |
    /// | `rustkernel_circuit_breaker_slow_calls_total` | counter | `breaker` | slow calls (also counted as successes or failures) |
    /// | `rustkernel_circuit_breaker_consecutive_failures` | gauge | `breaker` | failures since the last success |
    /// | `rustkernel_circuit_breaker_transitions_total` | counter | `breaker` | state changes |
    /// | `rustkernel_circuit_breaker_success_rate` | gauge | `breaker` | 0 to 1 |
    /// | `rustkernel_health_live`, `_ready`, `_started` | gauge | | 1 or 0 |
    /// | `rustkernel_health_overall_status` | gauge | | 0 healthy, 1 degraded, 2 unknown, 3 unhealthy |
    /// | `rustkernel_health_status` | gauge | `component` | as above |
    /// | `rustkernel_health_check_latency_seconds` | gauge | `component` | the latest check's latency |
    /// | `rustkernel_recovery_actions_total` | counter | `kernel`, `action` | decisions of the core |
    ///
    /// A family with no sample (no breaker, no health, no supervisor) is left out.
    #[must_use]
    pub fn to_prometheus(&self) -> String {
        let mut out = String::new();
        // Writing to a String cannot fail.
        let _ = self.write_prometheus(&mut out);
        out
    }

    fn write_prometheus(&self, out: &mut String) -> fmt::Result {
        if !self.breakers.is_empty() {
            self.write_breakers(out)?;
        }
        if let Some(health) = &self.health {
            write_health(out, health)?;
        }
        if !self.recovery.is_empty() {
            family(
                out,
                "rustkernel_recovery_actions_total",
                "counter",
                "Recovery decisions of the core, by supervised kernel and action.",
            )?;
            for metrics in &self.recovery {
                for (action, count) in metrics.counts.labelled() {
                    sample(
                        out,
                        "rustkernel_recovery_actions_total",
                        &[("kernel", &metrics.kernel), ("action", action)],
                        count,
                    )?;
                }
            }
        }
        Ok(())
    }

    fn write_breakers(&self, out: &mut String) -> fmt::Result {
        family(
            out,
            "rustkernel_circuit_breaker_state",
            "gauge",
            "Circuit breaker state: 0 closed, 1 half-open, 2 open, 3 forced open, 4 disabled, 5 metrics-only.",
        )?;
        for breaker in &self.breakers {
            let labels = [("breaker", breaker.name.as_str())];
            sample(
                out,
                "rustkernel_circuit_breaker_state",
                &labels,
                state_value(breaker.stats.state),
            )?;
        }
        family(
            out,
            "rustkernel_circuit_breaker_calls_total",
            "counter",
            "Calls through the circuit breaker, by outcome.",
        )?;
        for breaker in &self.breakers {
            let stats = &breaker.stats;
            for (outcome, count) in [
                ("success", stats.success_count),
                ("failure", stats.failure_count),
                ("rejected", stats.rejected_count),
            ] {
                sample(
                    out,
                    "rustkernel_circuit_breaker_calls_total",
                    &[("breaker", &breaker.name), ("outcome", outcome)],
                    count,
                )?;
            }
        }
        let per_breaker: [(&str, &str, &str, StatOf); 5] = [
            (
                "rustkernel_circuit_breaker_slow_calls_total",
                "counter",
                "Calls slower than the slow-call duration (also counted as successes or failures).",
                |stats| Number::Int(stats.slow_call_count),
            ),
            (
                "rustkernel_circuit_breaker_consecutive_failures",
                "gauge",
                "Failures since the last success while closed.",
                |stats| Number::Int(u64::from(stats.consecutive_failures)),
            ),
            (
                "rustkernel_circuit_breaker_transitions_total",
                "counter",
                "State changes of the circuit breaker.",
                |stats| Number::Int(u64::from(stats.transitions)),
            ),
            (
                "rustkernel_circuit_breaker_success_rate",
                "gauge",
                "Successes over finished calls, 1 before any call finished.",
                |stats| Number::Float(stats.success_rate),
            ),
            (
                "rustkernel_circuit_breaker_would_open_total",
                "counter",
                "Times a metrics-only (shadow) breaker would have opened.",
                |stats| Number::Int(stats.would_open_count),
            ),
        ];
        for (name, kind, help, value) in per_breaker {
            family(out, name, kind, help)?;
            for breaker in &self.breakers {
                sample(
                    out,
                    name,
                    &[("breaker", &breaker.name)],
                    value(&breaker.stats),
                )?;
            }
        }
        self.write_trips(out)
    }

    /// The figures that opened each breaker that is not closed (or that a metrics-only breaker
    /// would have opened on): only breakers with a trip have these samples.
    fn write_trips(&self, out: &mut String) -> fmt::Result {
        let tripped = || {
            self.breakers
                .iter()
                .filter_map(|breaker| breaker.stats.trip.map(|trip| (breaker.name.as_str(), trip)))
        };
        if tripped().next().is_none() {
            return Ok(());
        }
        family(
            out,
            "rustkernel_circuit_breaker_trip_reason",
            "gauge",
            "1 for why the breaker is open (or, metrics-only, last would have opened).",
        )?;
        for (name, trip) in tripped() {
            sample(
                out,
                "rustkernel_circuit_breaker_trip_reason",
                &[("breaker", name), ("reason", trip.reason.as_str())],
                1u8,
            )?;
        }
        let figures: [(&str, &str, TripFigure); 4] = [
            (
                "rustkernel_circuit_breaker_trip_calls",
                "Calls in the window when the breaker opened.",
                |trip| Number::Int(u64::from(trip.calls)),
            ),
            (
                "rustkernel_circuit_breaker_trip_failure_rate",
                "Failure rate over the window when the breaker opened.",
                |trip| Number::Float(trip.failure_rate()),
            ),
            (
                "rustkernel_circuit_breaker_trip_slow_call_rate",
                "Slow-call rate over the window when the breaker opened.",
                |trip| Number::Float(trip.slow_call_rate()),
            ),
            (
                "rustkernel_circuit_breaker_trip_consecutive_failures",
                "The failure streak when the breaker opened.",
                |trip| Number::Int(u64::from(trip.consecutive_failures)),
            ),
        ];
        for (metric, help, value) in figures {
            family(out, metric, "gauge", help)?;
            for (name, trip) in tripped() {
                sample(out, metric, &[("breaker", name)], value(&trip))?;
            }
        }
        Ok(())
    }
}

fn write_health(out: &mut String, health: &HealthReport) -> fmt::Result {
    for (name, help, value) in [
        (
            "rustkernel_health_live",
            "1 when every critical component is live.",
            health.live,
        ),
        (
            "rustkernel_health_ready",
            "1 when every critical component is ready.",
            health.ready,
        ),
        (
            "rustkernel_health_started",
            "1 when every critical component has started.",
            health.started,
        ),
    ] {
        family(out, name, "gauge", help)?;
        sample(out, name, &[], u8::from(value))?;
    }
    family(
        out,
        "rustkernel_health_overall_status",
        "gauge",
        "Service health: 0 healthy, 1 degraded, 2 unknown, 3 unhealthy.",
    )?;
    sample(
        out,
        "rustkernel_health_overall_status",
        &[],
        status_value(health.overall),
    )?;
    if health.components.is_empty() {
        return Ok(());
    }
    family(
        out,
        "rustkernel_health_status",
        "gauge",
        "Component health: 0 healthy, 1 degraded, 2 unknown, 3 unhealthy.",
    )?;
    for component in &health.components {
        sample(
            out,
            "rustkernel_health_status",
            &[("component", &component.name)],
            status_value(component.status),
        )?;
    }
    family(
        out,
        "rustkernel_health_check_latency_seconds",
        "gauge",
        "Latency of the component's latest health check.",
    )?;
    for component in &health.components {
        sample(
            out,
            "rustkernel_health_check_latency_seconds",
            &[("component", &component.name)],
            Number::Float(component.latency.as_secs_f64()),
        )?;
    }
    Ok(())
}

/// Reads one number out of a breaker's stats.
type StatOf = fn(&CircuitBreakerStats) -> Number;
type TripFigure = fn(&Trip) -> Number;

/// The health gauges' value: the core's severity rank.
fn status_value(status: HealthStatus) -> u8 {
    status.severity()
}

/// A sample value, printed as Prometheus reads it.
#[derive(Clone, Copy)]
enum Number {
    Int(u64),
    Float(f64),
}

impl From<u8> for Number {
    fn from(value: u8) -> Self {
        Number::Int(u64::from(value))
    }
}

impl From<u64> for Number {
    fn from(value: u64) -> Self {
        Number::Int(value)
    }
}

impl fmt::Display for Number {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match *self {
            Number::Int(value) => write!(f, "{value}"),
            Number::Float(value) if value.is_nan() => f.write_str("NaN"),
            Number::Float(value) if value == f64::INFINITY => f.write_str("+Inf"),
            Number::Float(value) if value == f64::NEG_INFINITY => f.write_str("-Inf"),
            Number::Float(value) => write!(f, "{value}"),
        }
    }
}

/// `# HELP` and `# TYPE` of a family (`help` is ours and needs no escaping).
fn family(out: &mut String, name: &str, kind: &str, help: &str) -> fmt::Result {
    writeln!(out, "# HELP {name} {help}")?;
    writeln!(out, "# TYPE {name} {kind}")
}

/// One sample line: `name{label="value",..} number`.
fn sample(
    out: &mut String,
    name: &str,
    labels: &[(&str, &str)],
    value: impl Into<Number>,
) -> fmt::Result {
    out.push_str(name);
    if !labels.is_empty() {
        out.push('{');
        for (i, (label, value)) in labels.iter().enumerate() {
            if i > 0 {
                out.push(',');
            }
            out.push_str(label);
            out.push_str("=\"");
            escape_label_value(out, value);
            out.push('"');
        }
        out.push('}');
    }
    writeln!(out, " {}", value.into())
}

/// Appends `value` escaped as a Prometheus label value: `\` as `\\`, `"` as `\"`, a line feed
/// as `\n`.
fn escape_label_value(out: &mut String, value: &str) {
    for c in value.chars() {
        match c {
            '\\' => out.push_str("\\\\"),
            '"' => out.push_str("\\\""),
            '\n' => out.push_str("\\n"),
            c => out.push(c),
        }
    }
}

#[cfg(test)]
mod tests {
    use std::time::Duration;

    use rustkernel_core::resilience::{OpenReason, RecoveryStrategy};
    use rustkernel_core::time::Instant;

    use super::*;
    use crate::health::ComponentReport;

    fn stats(state: CircuitState) -> CircuitBreakerStats {
        CircuitBreakerStats {
            state,
            failure_count: 5,
            success_count: 7,
            rejected_count: 3,
            slow_call_count: 1,
            slow_success_count: 1,
            slow_failure_count: 0,
            consecutive_failures: 5,
            transitions: 1,
            success_rate: 0.5,
            trip: (state == CircuitState::Open).then_some(Trip {
                reason: OpenReason::FailureRate,
                calls: 10,
                failures: 6,
                slow: 1,
                consecutive_failures: 2,
            }),
            would_open_count: 0,
        }
    }

    #[test]
    fn an_open_breaker_exports_the_figures_that_opened_it() {
        let text = MetricsSnapshot::new()
            .with_breaker("open", stats(CircuitState::Open))
            .with_breaker("closed", stats(CircuitState::Closed))
            .to_prometheus();
        for line in [
            "rustkernel_circuit_breaker_trip_reason{breaker=\"open\",reason=\"failure_rate\"} 1\n",
            "rustkernel_circuit_breaker_trip_calls{breaker=\"open\"} 10\n",
            "rustkernel_circuit_breaker_trip_failure_rate{breaker=\"open\"} 0.6\n",
            "rustkernel_circuit_breaker_trip_slow_call_rate{breaker=\"open\"} 0.1\n",
            "rustkernel_circuit_breaker_trip_consecutive_failures{breaker=\"open\"} 2\n",
            "rustkernel_circuit_breaker_would_open_total{breaker=\"closed\"} 0\n",
        ] {
            assert!(text.contains(line), "{line} missing from\n{text}");
        }
        // A closed breaker has no trip samples.
        assert!(!text.contains("trip_calls{breaker=\"closed\"}"), "{text}");
        let closed_only = MetricsSnapshot::new()
            .with_breaker("closed", stats(CircuitState::Closed))
            .to_prometheus();
        assert!(!closed_only.contains("trip_reason"), "{closed_only}");
    }

    #[test]
    fn label_values_are_escaped() {
        let text = MetricsSnapshot::new()
            .with_breaker("a\"b\\c\nd", stats(CircuitState::Open))
            .to_prometheus();
        assert!(
            text.contains("rustkernel_circuit_breaker_state{breaker=\"a\\\"b\\\\c\\nd\"} 2\n"),
            "{text}"
        );
        // Every line is a comment or one sample: no raw line feed leaked from a label.
        for line in text.lines() {
            assert!(
                line.starts_with("# HELP ")
                    || line.starts_with("# TYPE ")
                    || line.starts_with("rustkernel_"),
                "{line}"
            );
        }
    }

    #[test]
    fn every_family_has_help_and_type_once_before_its_samples() {
        let mut counts = RecoveryActionCounts::default();
        counts.record(RecoveryAction::Restart {
            at: Instant::ZERO,
            attempt: 1,
        });
        counts.record(RecoveryAction::Escalate(RecoveryStrategy::NotifyOperator));
        let text = MetricsSnapshot::new()
            .with_breaker("x", stats(CircuitState::Closed))
            .with_breaker("y", stats(CircuitState::HalfOpen))
            .with_health(HealthReport {
                live: true,
                ready: false,
                started: true,
                overall: HealthStatus::Unhealthy,
                components: vec![ComponentReport {
                    name: "graph/pagerank".into(),
                    status: HealthStatus::Unhealthy,
                    message: "GPU unavailable".into(),
                    latency: Duration::from_millis(250),
                    critical: true,
                    live: true,
                    ready: false,
                    started: true,
                }],
            })
            .with_recovery("graph/pagerank", counts)
            .to_prometheus();
        let mut seen: Vec<String> = Vec::new();
        let mut current = String::new();
        for line in text.lines() {
            if let Some(rest) = line.strip_prefix("# HELP ") {
                let name = rest.split(' ').next().expect("name").to_owned();
                assert!(!seen.contains(&name), "{name} twice");
                seen.push(name.clone());
                current = name;
            } else if let Some(rest) = line.strip_prefix("# TYPE ") {
                assert!(rest.starts_with(&format!("{current} ")), "{line}");
            } else {
                let name = line.split(['{', ' ']).next().expect("name");
                assert_eq!(name, current, "{line}");
            }
        }
        for expected in [
            "rustkernel_circuit_breaker_state{breaker=\"y\"} 1",
            "rustkernel_circuit_breaker_calls_total{breaker=\"x\",outcome=\"rejected\"} 3",
            "rustkernel_circuit_breaker_success_rate{breaker=\"x\"} 0.5",
            "rustkernel_health_ready 0",
            "rustkernel_health_overall_status 3",
            "rustkernel_health_status{component=\"graph/pagerank\"} 3",
            "rustkernel_health_check_latency_seconds{component=\"graph/pagerank\"} 0.25",
            "rustkernel_recovery_actions_total{kernel=\"graph/pagerank\",action=\"restart\"} 1",
            "rustkernel_recovery_actions_total{kernel=\"graph/pagerank\",action=\"escalate\"} 1",
            "rustkernel_recovery_actions_total{kernel=\"graph/pagerank\",action=\"give_up\"} 0",
        ] {
            assert!(
                text.lines().any(|line| line == expected),
                "missing {expected}\n{text}"
            );
        }
        assert_eq!(counts.total(), 2);
    }

    #[test]
    fn floats_print_as_prometheus_reads_them() {
        assert_eq!(Number::Float(f64::NAN).to_string(), "NaN");
        assert_eq!(Number::Float(f64::INFINITY).to_string(), "+Inf");
        assert_eq!(Number::Float(f64::NEG_INFINITY).to_string(), "-Inf");
        assert_eq!(Number::Float(1.0).to_string(), "1");
        assert_eq!(MetricsSnapshot::new().to_prometheus(), "");
    }
}
