//! The resilience metrics a host exports (breaker stats, health, recovery decisions) as a
//! `prometheus-client` [`Collector`]: [`ResilienceCollector`] reads its sources at each scrape
//! and encodes them into the application's registry, in the workspace's one vocabulary.
//! [`MetricsSnapshot`] is the same figures as a serde value; its Prometheus text comes from
//! the same encoding.
//!
//! ```
//! use prometheus_client::encoding::text::encode;
//! use prometheus_client::registry::Registry;
//! use rustkernel_tokio::metrics::ResilienceCollector;
//! use rustkernel_tokio::resilience::{CircuitBreaker, CircuitBreakerConfig, CircuitState};
//!
//! let breaker = CircuitBreaker::new(CircuitBreakerConfig::default());
//! let mut registry = Registry::default();
//! registry.register_collector(Box::new(
//!     ResilienceCollector::new().with_breaker("graph/pagerank", breaker.clone()),
//! ));
//! breaker.force_open();
//!
//! // Read at the scrape: the breaker is forced open now.
//! let mut text = String::new();
//! encode(&mut text, &registry).unwrap();
//! let open = CircuitState::ForcedOpen.metric_value();
//! assert!(text.contains(&format!(
//!     "rustkernel_circuit_breaker_state{{breaker=\"graph/pagerank\"}} {open}\n"
//! )));
//! assert!(text.contains(
//!     "rustkernel_circuit_breaker_calls_total{breaker=\"graph/pagerank\",outcome=\"success\"} 0\n"
//! ));
//! ```
//!
//! # Families
//!
//! | Family | Type | Labels | Value |
//! |---|---|---|---|
//! | `rustkernel_circuit_breaker_state` | gauge | `breaker` | [`CircuitState::metric_value`]: 0 closed, 1 open, 2 half-open, 3 forced open, 4 disabled, 5 metrics-only |
//! | `rustkernel_circuit_breaker_calls_total` | counter | `breaker`, `outcome` (`success`, `failure`, `rejected`) | calls |
//! | `rustkernel_circuit_breaker_slow_calls_total` | counter | `breaker` | slow calls (also counted as successes or failures) |
//! | `rustkernel_circuit_breaker_consecutive_failures` | gauge | `breaker` | failures since the last success |
//! | `rustkernel_circuit_breaker_transitions_total` | counter | `breaker` | state changes |
//! | `rustkernel_circuit_breaker_success_rate` | gauge | `breaker` | 0 to 1 |
//! | `rustkernel_circuit_breaker_would_open_total` | counter | `breaker` | times a metrics-only breaker would have opened |
//! | `rustkernel_circuit_breaker_trip_reason` | gauge | `breaker`, `reason` | 1 for why a breaker that is not closed opened (metrics-only: last would have) |
//! | `rustkernel_circuit_breaker_trip_calls`, `_trip_failure_rate`, `_trip_slow_call_rate`, `_trip_consecutive_failures` | gauge | `breaker` | the window's figures at that trip |
//! | `rustkernel_health_live`, `_ready`, `_started` | gauge | | 1 or 0 |
//! | `rustkernel_health_overall_status` | gauge | | 0 healthy, 1 degraded, 2 unknown, 3 unhealthy |
//! | `rustkernel_health_status` | gauge | `component` | as above |
//! | `rustkernel_health_check_latency_seconds` | gauge | `component` | the latest check's latency |
//! | `rustkernel_recovery_actions_total` | counter | `kernel`, `action` | decisions of the core |
//! | `rustkernel_kernel_calls_total` | counter | `kernel`, `outcome` | calls ([`CallMetrics`]) |
//! | `rustkernel_kernel_attempts_total`, `_retries_total`, `_fallbacks_total` | counter | `kernel` | attempts, the retries among them, calls answered by a fallback |
//! | `rustkernel_kernel_duration_seconds` | histogram | `kernel` | call latency, in [`LATENCY_BUCKETS`] or the bounds given to [`CallMetrics::with_buckets`] |
//! | `rustkernel_retry_budget_available` | gauge | `kernel` | retries a shared retry budget allows now |
//!
//! Counter names are given as scraped: `prometheus-client` appends `_total` to a counter's
//! samples (OpenMetrics names the family without it, `# TYPE rustkernel_circuit_breaker_calls
//! counter`). A family with no sample (no breaker, no probe, no supervisor, no trip) is left
//! out. The names carry their `rustkernel_` prefix: register the collector in a registry
//! without a prefix (a prefixed registry puts its own in front).

mod calls;

use std::fmt;

use prometheus_client::collector::Collector;
use prometheus_client::encoding::{
    DescriptorEncoder, EncodeCounterValue, EncodeLabelSet, MetricEncoder, NoLabelSet,
};
use prometheus_client::metrics::MetricType;
use prometheus_client::registry::Registry;
use rustkernel_core::resilience::{
    CircuitBreakerStats, CircuitState, Escalation, RecoveryAction, Trip,
};
use serde::{Deserialize, Serialize};

pub use calls::{
    BucketsError, CallMetrics, CallStats, LATENCY_BUCKETS, MAX_LATENCY_BUCKETS, check_buckets,
};

use crate::breaker::{CircuitBreaker, SlidingWindow};
use crate::health::{HealthProbe, HealthReport};
#[cfg(not(loom))]
use crate::supervisor::SupervisorLog;

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

/// One operation's call figures under its name.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct CallsMetrics {
    /// The operation's name (the `kernel` label).
    pub kernel: String,
    /// Its figures.
    pub stats: CallStats,
}

/// Reads a figure at each scrape.
type Source<T> = Box<dyn Fn() -> T + Send + Sync>;

/// Reads one counter out of an operation's call figures.
type CallFigure = fn(&CallStats) -> u64;

/// Reads one figure out of a breaker's trip.
type TripFigure = fn(&Trip) -> Number;

/// The adapter's metrics as a `prometheus-client` [`Collector`]: named breakers, a health
/// probe and supervisors, read at each scrape (see the [module docs](self) for the families).
///
/// Sources are handles ([`CircuitBreaker`], [`HealthProbe`] and
/// [`SupervisorLog`] are cheap clones of shared state) or
/// functions that return the figures, for breakers and logs of any window or error type.
/// Register it once with
/// [`Registry::register_collector`](prometheus_client::registry::Registry::register_collector).
#[derive(Default)]
pub struct ResilienceCollector {
    breakers: Vec<(String, Source<CircuitBreakerStats>)>,
    health: Option<Source<HealthReport>>,
    recovery: Vec<(String, Source<RecoveryActionCounts>)>,
    calls: Vec<(String, CallMetrics)>,
    budgets: Vec<(String, crate::retry::SharedRetryBudget)>,
}

impl fmt::Debug for ResilienceCollector {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("ResilienceCollector")
            .field(
                "breakers",
                &self
                    .breakers
                    .iter()
                    .map(|(name, _)| name)
                    .collect::<Vec<_>>(),
            )
            .field("health", &self.health.is_some())
            .field(
                "recovery",
                &self
                    .recovery
                    .iter()
                    .map(|(name, _)| name)
                    .collect::<Vec<_>>(),
            )
            .field(
                "calls",
                &self.calls.iter().map(|(name, _)| name).collect::<Vec<_>>(),
            )
            .finish()
    }
}

impl ResilienceCollector {
    /// A collector with no source (it exports nothing).
    #[must_use]
    pub fn new() -> Self {
        Self::default()
    }

    /// The collector with `breaker`'s stats under `name` (the `breaker` label), read at each
    /// scrape.
    #[must_use]
    pub fn with_breaker<W>(self, name: impl Into<String>, breaker: CircuitBreaker<W>) -> Self
    where
        W: SlidingWindow + 'static,
        CircuitBreaker<W>: Send + Sync,
    {
        self.with_breaker_stats(name, move || breaker.stats())
    }

    /// The collector with the stats that `stats` returns under `name`: any breaker, the
    /// core's own included.
    #[must_use]
    pub fn with_breaker_stats(
        mut self,
        name: impl Into<String>,
        stats: impl Fn() -> CircuitBreakerStats + Send + Sync + 'static,
    ) -> Self {
        self.breakers.push((name.into(), Box::new(stats)));
        self
    }

    /// The collector with `probe`'s [`report`](HealthProbe::report) as its health (replacing
    /// any earlier one).
    #[must_use]
    pub fn with_health(self, probe: HealthProbe) -> Self {
        self.with_health_report(move || probe.report())
    }

    /// The collector with the report that `report` returns as its health.
    #[must_use]
    pub fn with_health_report(
        mut self,
        report: impl Fn() -> HealthReport + Send + Sync + 'static,
    ) -> Self {
        self.health = Some(Box::new(report));
        self
    }

    /// The collector with supervisor `kernel`'s decision counts (the `kernel` label), read
    /// from its [`SupervisorLog`] at each scrape.
    #[cfg(not(loom))]
    #[must_use]
    pub fn with_supervisor<E: 'static>(
        self,
        kernel: impl Into<String>,
        log: SupervisorLog<E>,
    ) -> Self
    where
        SupervisorLog<E>: Send + Sync,
    {
        self.with_recovery_counts(kernel, move || log.counts())
    }

    /// The collector with the decision counts that `counts` returns under `kernel`.
    #[must_use]
    pub fn with_recovery_counts(
        mut self,
        kernel: impl Into<String>,
        counts: impl Fn() -> RecoveryActionCounts + Send + Sync + 'static,
    ) -> Self {
        self.recovery.push((kernel.into(), Box::new(counts)));
        self
    }

    /// The collector with `calls` under `kernel` (the `kernel` label): outcomes, attempts,
    /// retries, fallbacks and latency, as the caller records them.
    #[must_use]
    pub fn with_calls(mut self, kernel: impl Into<String>, calls: CallMetrics) -> Self {
        self.calls.push((kernel.into(), calls));
        self
    }

    /// The collector with `budget`'s available retries under `kernel`
    /// (`rustkernel_retry_budget_available`), read at each scrape.
    #[must_use]
    pub fn with_retry_budget(
        mut self,
        kernel: impl Into<String>,
        budget: crate::retry::SharedRetryBudget,
    ) -> Self {
        self.budgets.push((kernel.into(), budget));
        self
    }

    /// Every source read once, now.
    #[must_use]
    pub fn snapshot(&self) -> MetricsSnapshot {
        MetricsSnapshot {
            breakers: self
                .breakers
                .iter()
                .map(|(name, stats)| BreakerMetrics {
                    name: name.clone(),
                    stats: stats(),
                })
                .collect(),
            health: self.health.as_ref().map(|report| report()),
            recovery: self
                .recovery
                .iter()
                .map(|(kernel, counts)| RecoveryMetrics {
                    kernel: kernel.clone(),
                    counts: counts(),
                })
                .collect(),
            calls: self
                .calls
                .iter()
                .map(|(kernel, calls)| CallsMetrics {
                    kernel: kernel.clone(),
                    stats: calls.stats(),
                })
                .collect(),
            retry_budgets: self
                .budgets
                .iter()
                .map(|(kernel, budget)| (kernel.clone(), budget.available()))
                .collect(),
        }
    }
}

impl Collector for ResilienceCollector {
    fn encode(&self, encoder: DescriptorEncoder) -> fmt::Result {
        self.snapshot().encode(encoder)
    }
}

/// What the host exports at one instant: breakers, health and recovery. Serializable (JSON)
/// and printable as Prometheus text with [`to_prometheus`](Self::to_prometheus), which
/// encodes it as [`ResilienceCollector`] does.
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize)]
pub struct MetricsSnapshot {
    /// The breakers, in the order added.
    pub breakers: Vec<BreakerMetrics>,
    /// The health report, if the host has a probe.
    pub health: Option<HealthReport>,
    /// The supervisors, in the order added.
    pub recovery: Vec<RecoveryMetrics>,
    /// The operations' calls, in the order added.
    #[serde(default)]
    pub calls: Vec<CallsMetrics>,
    /// Retries each shared retry budget has left, by operation.
    #[serde(default)]
    pub retry_budgets: Vec<(String, u64)>,
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

    /// The Prometheus text exposition format (version 0.0.4) of the
    /// [families](self#families), written by `prometheus-client`
    /// ([`prometheus_text`](prometheus_client::encoding::prometheus_text)): `# HELP` and
    /// `# TYPE` before each family, counters named with `_total`, label values escaped.
    ///
    /// ```
    /// use rustkernel_tokio::metrics::{MetricsSnapshot, RecoveryActionCounts};
    /// use rustkernel_tokio::resilience::{CircuitBreakerStats, CircuitState};
    ///
    /// let stats = CircuitBreakerStats {
    ///     state: CircuitState::HalfOpen,
    ///     failure_count: 2,
    ///     success_count: 98,
    ///     rejected_count: 0,
    ///     slow_call_count: 1,
    ///     slow_success_count: 1,
    ///     slow_failure_count: 0,
    ///     consecutive_failures: 0,
    ///     transitions: 2,
    ///     success_rate: 0.98,
    ///     trip: None,
    ///     would_open_count: 0,
    /// };
    /// let text = MetricsSnapshot::new()
    ///     .with_breaker("graph/pagerank", stats)
    ///     .with_recovery("graph/pagerank", RecoveryActionCounts::default())
    ///     .to_prometheus();
    /// let lines: Vec<&str> = text.lines().collect();
    /// for line in [
    ///     "# TYPE rustkernel_circuit_breaker_state gauge",
    ///     "rustkernel_circuit_breaker_state{breaker=\"graph/pagerank\"} 2",
    ///     "# TYPE rustkernel_circuit_breaker_calls_total counter",
    ///     "rustkernel_circuit_breaker_calls_total{breaker=\"graph/pagerank\",outcome=\"success\"} 98",
    ///     "rustkernel_circuit_breaker_success_rate{breaker=\"graph/pagerank\"} 0.98",
    ///     "rustkernel_recovery_actions_total{kernel=\"graph/pagerank\",action=\"restart\"} 0",
    /// ] {
    ///     assert!(lines.contains(&line), "{line} missing from\n{text}");
    /// }
    /// ```
    #[must_use]
    pub fn to_prometheus(&self) -> String {
        let mut registry = Registry::default();
        registry.register_collector(Box::new(Fixed(self.clone())));
        let mut out = String::new();
        // Writing to a String cannot fail, and neither can our encoding.
        let _ = prometheus_client::encoding::prometheus_text::encode(&mut out, &registry);
        out
    }

    /// Writes every family with a sample into `encoder`.
    fn encode(&self, mut encoder: DescriptorEncoder) -> fmt::Result {
        if !self.breakers.is_empty() {
            self.encode_breakers(&mut encoder)?;
        }
        if let Some(health) = &self.health {
            encode_health(&mut encoder, health)?;
        }
        if !self.recovery.is_empty() {
            counter_family(
                &mut encoder,
                "rustkernel_recovery_actions",
                "Recovery decisions of the core, by supervised kernel and action.",
                self.recovery.iter().flat_map(|metrics| {
                    metrics.counts.labelled().map(|(action, count)| {
                        (
                            [("kernel", metrics.kernel.as_str()), ("action", action)],
                            count,
                        )
                    })
                }),
            )?;
        }
        if !self.calls.is_empty() {
            self.encode_calls(&mut encoder)?;
        }
        if !self.retry_budgets.is_empty() {
            gauge_family(
                &mut encoder,
                "rustkernel_retry_budget_available",
                "Retries the shared retry budget allows now.",
                self.retry_budgets
                    .iter()
                    .map(|(kernel, left)| ([("kernel", kernel.as_str())], Number::Int(*left))),
            )?;
        }
        Ok(())
    }

    fn encode_calls(&self, encoder: &mut DescriptorEncoder) -> fmt::Result {
        counter_family(
            encoder,
            "rustkernel_kernel_calls",
            "Calls by outcome.",
            self.calls.iter().flat_map(|calls| {
                calls.stats.outcomes.iter().map(|(outcome, count)| {
                    (
                        [
                            ("kernel", calls.kernel.as_str()),
                            ("outcome", outcome.as_str()),
                        ],
                        *count,
                    )
                })
            }),
        )?;
        let per_kernel: [(&str, &str, CallFigure); 3] = [
            (
                "rustkernel_kernel_attempts",
                "Attempts made, each call's first included.",
                |stats| stats.attempts,
            ),
            (
                "rustkernel_kernel_retries",
                "Retries made (attempts beyond each call's first).",
                |stats| stats.retries,
            ),
            (
                "rustkernel_kernel_fallbacks",
                "Calls answered by a fallback instead of the primary path.",
                |stats| stats.fallbacks,
            ),
        ];
        for (name, help, value) in per_kernel {
            counter_family(
                encoder,
                name,
                help,
                self.calls
                    .iter()
                    .map(|calls| ([("kernel", calls.kernel.as_str())], value(&calls.stats))),
            )?;
        }
        let mut family = encoder.encode_descriptor(
            "rustkernel_kernel_duration_seconds",
            "Call latency, through the whole pipeline.",
            None,
            MetricType::Histogram,
        )?;
        for calls in &self.calls {
            // The encoder sums the buckets itself: per-bucket counts, then +Inf.
            let mut below = 0;
            let mut buckets: Vec<(f64, u64)> = calls
                .stats
                .latency_buckets
                .iter()
                .map(|(bound, cumulative)| {
                    let count = cumulative.saturating_sub(below);
                    below = *cumulative;
                    (*bound, count)
                })
                .collect();
            buckets.push((
                f64::INFINITY,
                calls.stats.latency_count.saturating_sub(below),
            ));
            let labels = [("kernel", calls.kernel.as_str())];
            let mut sample = family.encode_family(&labels)?;
            sample.encode_histogram::<NoLabelSet>(
                calls.stats.latency_sum_seconds,
                calls.stats.latency_count,
                &buckets,
                None,
            )?;
        }
        Ok(())
    }

    fn encode_breakers(&self, encoder: &mut DescriptorEncoder) -> fmt::Result {
        let each = |value: fn(&CircuitBreakerStats) -> Number| {
            self.breakers
                .iter()
                .map(move |b| ([("breaker", b.name.as_str())], value(&b.stats)))
        };
        gauge_family(
            encoder,
            "rustkernel_circuit_breaker_state",
            CircuitState::METRIC_HELP,
            each(|stats| Number::Int(u64::from(stats.state.metric_value()))),
        )?;
        counter_family(
            encoder,
            "rustkernel_circuit_breaker_calls",
            "Calls through the circuit breaker, by outcome.",
            self.breakers.iter().flat_map(|b| {
                let stats = &b.stats;
                [
                    ("success", stats.success_count),
                    ("failure", stats.failure_count),
                    ("rejected", stats.rejected_count),
                ]
                .map(|(outcome, count)| {
                    ([("breaker", b.name.as_str()), ("outcome", outcome)], count)
                })
            }),
        )?;
        counter_family(
            encoder,
            "rustkernel_circuit_breaker_slow_calls",
            "Calls slower than the slow-call duration (also counted as successes or failures).",
            each(|stats| Number::Int(stats.slow_call_count)),
        )?;
        gauge_family(
            encoder,
            "rustkernel_circuit_breaker_consecutive_failures",
            "Failures since the last success while closed.",
            each(|stats| Number::Int(u64::from(stats.consecutive_failures))),
        )?;
        counter_family(
            encoder,
            "rustkernel_circuit_breaker_transitions",
            "State changes of the circuit breaker.",
            each(|stats| Number::Int(u64::from(stats.transitions))),
        )?;
        gauge_family(
            encoder,
            "rustkernel_circuit_breaker_success_rate",
            "Successes over finished calls, 1 before any call finished.",
            each(|stats| Number::Float(stats.success_rate)),
        )?;
        counter_family(
            encoder,
            "rustkernel_circuit_breaker_would_open",
            "Times a metrics-only (shadow) breaker would have opened.",
            each(|stats| Number::Int(stats.would_open_count)),
        )?;
        self.encode_trips(encoder)
    }

    /// The figures that opened each breaker that is not closed (or that a metrics-only breaker
    /// would have opened on): only breakers with a trip have these samples.
    fn encode_trips(&self, encoder: &mut DescriptorEncoder) -> fmt::Result {
        let tripped = || {
            self.breakers
                .iter()
                .filter_map(|breaker| breaker.stats.trip.map(|trip| (breaker.name.as_str(), trip)))
        };
        if tripped().next().is_none() {
            return Ok(());
        }
        gauge_family(
            encoder,
            "rustkernel_circuit_breaker_trip_reason",
            "1 for why the breaker is open (or, metrics-only, last would have opened).",
            tripped().map(|(name, trip)| {
                (
                    [("breaker", name), ("reason", trip.reason.as_str())],
                    Number::Int(1),
                )
            }),
        )?;
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
        for (name, help, value) in figures {
            gauge_family(
                encoder,
                name,
                help,
                tripped().map(|(breaker, trip)| ([("breaker", breaker)], value(&trip))),
            )?;
        }
        Ok(())
    }
}

/// A snapshot registered as a collector: [`MetricsSnapshot::to_prometheus`]'s source.
#[derive(Debug)]
struct Fixed(MetricsSnapshot);

impl Collector for Fixed {
    fn encode(&self, encoder: DescriptorEncoder) -> fmt::Result {
        self.0.encode(encoder)
    }
}

fn encode_health(encoder: &mut DescriptorEncoder, health: &HealthReport) -> fmt::Result {
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
        encoder
            .encode_descriptor(name, help, None, MetricType::Gauge)?
            .encode_gauge(&i64::from(value))?;
    }
    encoder
        .encode_descriptor(
            "rustkernel_health_overall_status",
            "Service health: 0 healthy, 1 degraded, 2 unknown, 3 unhealthy.",
            None,
            MetricType::Gauge,
        )?
        .encode_gauge(&i64::from(health.overall.severity()))?;
    if health.components.is_empty() {
        return Ok(());
    }
    gauge_family(
        encoder,
        "rustkernel_health_status",
        "Component health: 0 healthy, 1 degraded, 2 unknown, 3 unhealthy.",
        health.components.iter().map(|component| {
            (
                [("component", component.name.as_str())],
                Number::Int(u64::from(component.status.severity())),
            )
        }),
    )?;
    gauge_family(
        encoder,
        "rustkernel_health_check_latency_seconds",
        "Latency of the component's latest health check.",
        health.components.iter().map(|component| {
            (
                [("component", component.name.as_str())],
                Number::Float(component.latency.as_secs_f64()),
            )
        }),
    )
}

/// A sample value: counts as integers, rates and seconds as floats.
#[derive(Clone, Copy, Debug)]
enum Number {
    Int(u64),
    Float(f64),
}

impl From<u64> for Number {
    fn from(value: u64) -> Self {
        Number::Int(value)
    }
}

/// One gauge family: its descriptor, then a sample per label set.
fn gauge_family<L: EncodeLabelSet>(
    encoder: &mut DescriptorEncoder,
    name: &str,
    help: &str,
    samples: impl IntoIterator<Item = (L, Number)>,
) -> fmt::Result {
    let mut family = encoder.encode_descriptor(name, help, None, MetricType::Gauge)?;
    for (labels, value) in samples {
        let mut sample = family.encode_family(&labels)?;
        match value {
            Number::Int(value) => sample.encode_gauge(&value)?,
            Number::Float(value) => sample.encode_gauge(&value)?,
        }
    }
    Ok(())
}

/// One counter family (named without `_total`, which the encoder appends to its samples).
fn counter_family<L: EncodeLabelSet, V: Into<Number>>(
    encoder: &mut DescriptorEncoder,
    name: &str,
    help: &str,
    samples: impl IntoIterator<Item = (L, V)>,
) -> fmt::Result {
    let mut family = encoder.encode_descriptor(name, help, None, MetricType::Counter)?;
    for (labels, value) in samples {
        let mut sample = family.encode_family(&labels)?;
        match value.into() {
            Number::Int(value) => counter(&mut sample, &value)?,
            Number::Float(value) => counter(&mut sample, &value)?,
        }
    }
    Ok(())
}

fn counter<V: EncodeCounterValue>(sample: &mut MetricEncoder, value: &V) -> fmt::Result {
    sample.encode_counter::<NoLabelSet, V, u64>(value, None)
}

#[cfg(test)]
mod tests {
    use std::time::Duration;

    use prometheus_client::encoding::text::encode;
    use rustkernel_core::resilience::{
        CircuitBreakerConfig, HealthStatus, OpenReason, RecoveryStrategy,
    };
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

    fn report() -> HealthReport {
        HealthReport {
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
        }
    }

    /// The OpenMetrics text of a registry holding only `collector`.
    fn openmetrics(collector: impl Collector) -> String {
        let mut registry = Registry::default();
        registry.register_collector(Box::new(collector));
        let mut text = String::new();
        encode(&mut text, &registry).expect("encode");
        text
    }

    /// Checks the text's shape: each family's `# HELP` and `# TYPE` once, before its samples,
    /// and each sample named as its family (a counter's with `_total` in OpenMetrics); returns
    /// the families in order.
    fn families(text: &str) -> Vec<String> {
        let mut seen: Vec<String> = Vec::new();
        let mut current = String::new();
        let mut kind = String::new();
        for line in text.lines() {
            if line == "# EOF" {
                continue;
            }
            if let Some(rest) = line.strip_prefix("# HELP ") {
                let name = rest.split(' ').next().expect("name").to_owned();
                assert!(!seen.contains(&name), "{name} twice in\n{text}");
                seen.push(name.clone());
                current = name;
            } else if let Some(rest) = line.strip_prefix("# TYPE ") {
                let (name, type_) = rest.split_once(' ').expect("type");
                assert_eq!(name, current, "{line}");
                kind = type_.to_owned();
            } else {
                let name = line.split(['{', ' ']).next().expect("name");
                let value = line.rsplit(' ').next().expect("value");
                assert!(value.parse::<f64>().is_ok(), "{line}");
                let total = format!("{current}_total");
                assert!(
                    name == current || (kind == "counter" && name == total),
                    "{line} under {current}"
                );
            }
        }
        seen
    }

    #[test]
    fn calls_export_the_services_kernel_families() {
        let calls = CallMetrics::new();
        calls.record_call("success", 2, Duration::from_micros(150));
        calls.record_call("failed", 3, Duration::from_secs(9));
        calls.record_fallback();
        let mut registry = Registry::default();
        registry.register_collector(Box::new(
            ResilienceCollector::new().with_calls("graph/pagerank", calls),
        ));
        let mut text = String::new();
        encode(&mut text, &registry).expect("encodes");
        for line in [
            "rustkernel_kernel_calls_total{kernel=\"graph/pagerank\",outcome=\"success\"} 1\n",
            "rustkernel_kernel_calls_total{kernel=\"graph/pagerank\",outcome=\"failed\"} 1\n",
            "rustkernel_kernel_attempts_total{kernel=\"graph/pagerank\"} 5\n",
            "rustkernel_kernel_retries_total{kernel=\"graph/pagerank\"} 3\n",
            "rustkernel_kernel_fallbacks_total{kernel=\"graph/pagerank\"} 1\n",
            "rustkernel_kernel_duration_seconds_count{kernel=\"graph/pagerank\"} 2\n",
            "rustkernel_kernel_duration_seconds_bucket{le=\"0.0001\",kernel=\"graph/pagerank\"} 0\n",
            "rustkernel_kernel_duration_seconds_bucket{le=\"0.0002\",kernel=\"graph/pagerank\"} 1\n",
            "rustkernel_kernel_duration_seconds_bucket{le=\"+Inf\",kernel=\"graph/pagerank\"} 2\n",
        ] {
            assert!(text.contains(line), "{line} not in {text}");
        }
    }

    #[test]
    fn state_numbers_follow_the_core_table() {
        let mut snapshot = MetricsSnapshot::new();
        for state in CircuitState::ALL {
            snapshot = snapshot.with_breaker(state.label(), stats(state));
        }
        let text = snapshot.to_prometheus();
        for state in CircuitState::ALL {
            let line = format!(
                "rustkernel_circuit_breaker_state{{breaker=\"{}\"}} {}",
                state.label(),
                state.metric_value()
            );
            assert!(
                text.lines().any(|l| l == line),
                "{line} missing from\n{text}"
            );
        }
        assert!(
            text.contains(&format!(
                "# HELP rustkernel_circuit_breaker_state {}\n",
                CircuitState::METRIC_HELP
            )),
            "{text}"
        );
    }

    #[test]
    fn the_collector_reads_its_sources_at_each_scrape() {
        let breaker = CircuitBreaker::new(CircuitBreakerConfig::default());
        let collector = std::sync::Arc::new(
            ResilienceCollector::new()
                .with_breaker("b", breaker.clone())
                .with_health_report(report),
        );
        let closed = openmetrics(collector.clone());
        assert!(
            closed
                .lines()
                .any(|l| l == "rustkernel_circuit_breaker_state{breaker=\"b\"} 0"),
            "{closed}"
        );
        breaker.force_open();
        let open = openmetrics(collector.clone());
        assert!(
            open.lines()
                .any(|l| l == "rustkernel_circuit_breaker_state{breaker=\"b\"} 3"),
            "{open}"
        );
        assert!(
            open.lines().any(|l| l
                == "rustkernel_circuit_breaker_trip_reason{breaker=\"b\",reason=\"forced\"} 1"),
            "{open}"
        );
        let read = collector.snapshot().breakers.first().map(|b| b.stats);
        assert_eq!(read, Some(breaker.stats()));
        assert!(format!("{collector:?}").contains("[\"b\"]"));
    }

    #[test]
    fn an_open_breaker_exports_the_figures_that_opened_it() {
        let text = MetricsSnapshot::new()
            .with_breaker("open", stats(CircuitState::Open))
            .with_breaker("closed", stats(CircuitState::Closed))
            .to_prometheus();
        for line in [
            "rustkernel_circuit_breaker_trip_reason{breaker=\"open\",reason=\"failure_rate\"} 1",
            "rustkernel_circuit_breaker_trip_calls{breaker=\"open\"} 10",
            "rustkernel_circuit_breaker_trip_failure_rate{breaker=\"open\"} 0.6",
            "rustkernel_circuit_breaker_trip_slow_call_rate{breaker=\"open\"} 0.1",
            "rustkernel_circuit_breaker_trip_consecutive_failures{breaker=\"open\"} 2",
            "rustkernel_circuit_breaker_would_open_total{breaker=\"closed\"} 0",
        ] {
            assert!(
                text.lines().any(|l| l == line),
                "{line} missing from\n{text}"
            );
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
            text.contains("rustkernel_circuit_breaker_state{breaker=\"a\\\"b\\\\c\\nd\"} 1\n"),
            "{text}"
        );
        families(&text);
    }

    #[test]
    fn every_family_has_help_and_type_once_before_its_samples() {
        let mut counts = RecoveryActionCounts::default();
        counts.record(RecoveryAction::Restart {
            at: Instant::ZERO,
            attempt: 1,
        });
        counts.record(RecoveryAction::Escalate(RecoveryStrategy::NotifyOperator));
        let snapshot = MetricsSnapshot::new()
            .with_breaker("x", stats(CircuitState::Closed))
            .with_breaker("y", stats(CircuitState::HalfOpen))
            .with_breaker("z", stats(CircuitState::Open))
            .with_health(report())
            .with_recovery("graph/pagerank", counts);
        let expected_families = [
            "rustkernel_circuit_breaker_state",
            "rustkernel_circuit_breaker_calls",
            "rustkernel_circuit_breaker_slow_calls",
            "rustkernel_circuit_breaker_consecutive_failures",
            "rustkernel_circuit_breaker_transitions",
            "rustkernel_circuit_breaker_success_rate",
            "rustkernel_circuit_breaker_would_open",
            "rustkernel_circuit_breaker_trip_reason",
            "rustkernel_circuit_breaker_trip_calls",
            "rustkernel_circuit_breaker_trip_failure_rate",
            "rustkernel_circuit_breaker_trip_slow_call_rate",
            "rustkernel_circuit_breaker_trip_consecutive_failures",
            "rustkernel_health_live",
            "rustkernel_health_ready",
            "rustkernel_health_started",
            "rustkernel_health_overall_status",
            "rustkernel_health_status",
            "rustkernel_health_check_latency_seconds",
            "rustkernel_recovery_actions",
        ];
        // OpenMetrics, as a service serves it: families named without `_total`.
        let fixed = {
            let snapshot = snapshot.clone();
            ResilienceCollector::new()
                .with_breaker_stats("x", || stats(CircuitState::Closed))
                .with_breaker_stats("y", || stats(CircuitState::HalfOpen))
                .with_breaker_stats("z", || stats(CircuitState::Open))
                .with_health_report(report)
                .with_recovery_counts("graph/pagerank", move || {
                    snapshot
                        .recovery
                        .first()
                        .map(|r| r.counts)
                        .unwrap_or_default()
                })
        };
        assert_eq!(fixed.snapshot(), snapshot);
        let text = openmetrics(fixed);
        assert!(text.ends_with("# EOF\n"), "{text}");
        assert_eq!(families(&text), expected_families);
        for expected in [
            "# TYPE rustkernel_circuit_breaker_calls counter",
            "rustkernel_circuit_breaker_state{breaker=\"y\"} 2",
            "rustkernel_circuit_breaker_calls_total{breaker=\"x\",outcome=\"rejected\"} 3",
            "rustkernel_circuit_breaker_success_rate{breaker=\"x\"} 0.5",
            "rustkernel_circuit_breaker_transitions_total{breaker=\"x\"} 1",
            "rustkernel_health_live 1",
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
        // Prometheus text 0.0.4: the same samples, counter families named with `_total`.
        let text = snapshot.to_prometheus();
        let counters = [
            "rustkernel_circuit_breaker_calls",
            "rustkernel_circuit_breaker_slow_calls",
            "rustkernel_circuit_breaker_transitions",
            "rustkernel_circuit_breaker_would_open",
            "rustkernel_recovery_actions",
        ];
        let named = expected_families.map(|family| {
            if counters.contains(&family) {
                format!("{family}_total")
            } else {
                family.to_owned()
            }
        });
        assert_eq!(families(&text), named);
        assert!(
            text.contains("# TYPE rustkernel_circuit_breaker_calls_total counter\n"),
            "{text}"
        );
        assert_eq!(counts.total(), 2);
    }

    #[test]
    fn nothing_to_export_is_an_empty_text() {
        assert_eq!(MetricsSnapshot::new().to_prometheus(), "");
        assert_eq!(openmetrics(ResilienceCollector::new()), "# EOF\n");
    }
}
