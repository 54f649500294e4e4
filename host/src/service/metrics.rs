//! `/metrics`: Prometheus text through `prometheus-client`, one registry built at start-up.
//!
//! The breakers and the health registry are exported by the tokio adapter's
//! [`ResilienceCollector`], registered at start-up with every kernel's breaker
//! (`breaker="graph/pagerank"`), the GPU device's (`breaker="gpu0"`, with `[gpu]`) and the
//! health probe. The service's own families add what only it sees: calls, latency, retries,
//! openings by reason, HTTP, edge devices. No name is exported twice, and state
//! numbers follow the core's table
//! ([`CircuitState::metric_value`](rustkernel_core::resilience::CircuitState::metric_value)).
//!
//! | Metric | Type | Labels | From |
//! |---|---|---|---|
//! | `rustkernel_circuit_breaker_state` | gauge (0 closed, 1 open, 2 half-open, 3 forced open, 4 disabled, 5 metrics-only) | `breaker` | collector |
//! | `rustkernel_circuit_breaker_calls_total` | counter | `breaker`, `outcome` (`success`, `failure`, `rejected`) | collector |
//! | `rustkernel_circuit_breaker_slow_calls_total` | counter | `breaker` | collector |
//! | `rustkernel_circuit_breaker_consecutive_failures` | gauge | `breaker` | collector |
//! | `rustkernel_circuit_breaker_transitions_total` | counter | `breaker` | collector |
//! | `rustkernel_circuit_breaker_success_rate` | gauge | `breaker` | collector |
//! | `rustkernel_circuit_breaker_would_open_total` | counter | `breaker`: a metrics-only breaker would have opened | collector |
//! | `rustkernel_circuit_breaker_trip_reason`, `_trip_calls`, `_trip_failure_rate`, `_trip_slow_call_rate`, `_trip_consecutive_failures` | gauge | `breaker` (`reason`) | collector, while a breaker is not closed |
//! | `rustkernel_health_live`, `_ready`, `_started`, `_overall_status` | gauge | | collector |
//! | `rustkernel_health_status` | gauge (0 healthy, 1 degraded, 2 unknown, 3 unhealthy) | `component` | collector |
//! | `rustkernel_health_check_latency_seconds` | gauge | `component` | collector |
//! | `rustkernel_recovery_actions_total` | counter | `kernel` (`gpu0`), `action` | collector: the GPU worker supervisor's decisions |
//! | `rustkernel_circuit_breaker_opened_total` | counter | `breaker`, `reason` (`failure_rate`, `slow_call_rate`, `consecutive_failures`, `probe_failed`, `half_open_timeout`, `forced`) | service (each opening, from the transitions) |
//! | `rustkernel_kernel_calls_total` | counter | `kernel`, `outcome` (`success`, `rejected`, `timeout`, `deadline_exceeded`, `failed`, `invalid_input`, `shed`) | collector (each kernel's `CallMetrics`) |
//! | `rustkernel_kernel_duration_seconds` | histogram | `kernel` | collector |
//! | `rustkernel_kernel_attempts_total`, `_retries_total`, `_fallbacks_total` | counter | `kernel` | collector |
//! | `rustkernel_retry_budget_available` | gauge | `kernel` | collector |
//! | `rustkernel_gpu_up`, `rustkernel_gpu_hardware_xid` | gauge | | service, with `[gpu]` |
//! | `rustkernel_gpu_workers_started_total`, `rustkernel_gpu_application_xids_total` | counter | | service, with `[gpu]` |
//! | `rustkernel_deadline_exceeded_total` | counter | `kernel` | service |
//! | `rustkernel_http_requests_total` | counter | `route`, `status` | service |
//! | `rustkernel_edge_*` | | edge devices' telemetry: see [`crate::telemetry::ingest`] | service |
//! | `rustkernel_jobs`, `_jobs_submitted_total`, `_job_checkpoints_written_total`, `_job_checkpoint_write_failures_total`, `_job_checkpoint_write_seconds`, `_job_resumes_total`, `_jobs_disk_bytes` | | jobs by state, checkpoints, resumes, bytes on disk, with `[jobs]`: see [`crate::jobs::metrics`] | job runner |

use prometheus_client::encoding::EncodeLabelSet;
use prometheus_client::metrics::counter::Counter;
use prometheus_client::metrics::family::Family;
use prometheus_client::registry::Registry;
use rustkernel_tokio::metrics::{CallMetrics, ResilienceCollector};
use rustkernel_tokio::retry::SharedRetryBudget;

use axum::http::{StatusCode, header};
use axum::response::{IntoResponse, Response};
use rustkernel_tokio::resilience::{CircuitBreaker, HealthProbe};

use super::error::ApiError;
use crate::config::KernelWindow;
use crate::gpu::GpuExecutor;
use crate::jobs::JobMetrics;

/// Labels of one kernel.
#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct KernelLabels {
    /// The kernel id (`graph/pagerank`).
    pub kernel: String,
}

/// Labels of a breaker's opening.
#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct TripLabels {
    /// The breaker: a kernel id, or `gpu0`.
    pub breaker: String,
    /// Why it opened (`failure_rate`, `consecutive_failures`, ...).
    pub reason: &'static str,
}

/// Labels of a health component.
#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct ComponentLabels {
    /// The component's name.
    pub component: String,
}

/// Labels of an HTTP response.
#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct HttpLabels {
    /// The route (`/v1/kernels/execute`, `/health/ready`, ...).
    pub route: &'static str,
    /// The status code.
    pub status: u16,
}

/// Every metric family of the service, and the registry that encodes them.
#[derive(Debug)]
pub struct Metrics {
    registry: Registry,
    /// Calls that ran out of time, by kernel.
    pub deadline_exceeded: Family<KernelLabels, Counter>,
    /// Breaker openings by breaker and reason.
    pub breaker_opened: Family<TripLabels, Counter>,
    /// HTTP responses by route and status.
    pub http: Family<HttpLabels, Counter>,
    /// The edge devices' families (`rustkernel_edge_*`).
    pub edge: crate::telemetry::ingest::EdgeMetrics,
}

impl Metrics {
    /// A registry with every family registered: the breakers, health and recovery figures
    /// of `resilience` (read at each scrape), the service's own, and the job runner's.
    #[must_use]
    pub fn new(
        resilience: ResilienceCollector,
        gpu: Option<&GpuExecutor>,
        jobs: Option<&JobMetrics>,
    ) -> Self {
        // The collector's families carry their `rustkernel_` prefix; the service's own get it
        // from their sub-registry.
        let mut registry = Registry::default();
        registry.register_collector(Box::new(resilience));
        if let Some(gpu) = gpu {
            registry.register_collector(Box::new(GpuCollector(gpu.subscribe())));
        }
        let metrics = Self {
            deadline_exceeded: Family::default(),
            breaker_opened: Family::default(),
            http: Family::default(),
            edge: crate::telemetry::ingest::EdgeMetrics::default(),
            registry: Registry::default(),
        };
        let service = registry.sub_registry_with_prefix("rustkernel");
        service.register(
            "deadline_exceeded",
            "Kernel calls that ran out of time",
            metrics.deadline_exceeded.clone(),
        );
        service.register(
            "circuit_breaker_opened",
            "Circuit breaker openings by reason",
            metrics.breaker_opened.clone(),
        );
        service.register(
            "http_requests",
            "HTTP responses by route and status",
            metrics.http.clone(),
        );
        metrics.edge.register(service);
        if let Some(jobs) = jobs {
            jobs.register(service);
        }
        Self {
            registry,
            ..metrics
        }
    }

    /// Creates `kernel`'s deadline counter at 0, so it is exported before its first event.
    pub fn init_kernel(&self, kernel: &str) {
        let _ = self.deadline_exceeded.get_or_create(&KernelLabels {
            kernel: kernel.to_owned(),
        });
    }

    /// The OpenMetrics text exposition of every metric.
    ///
    /// # Errors
    /// Only if formatting fails (never for a `String`).
    pub fn encode(&self) -> Result<String, std::fmt::Error> {
        let mut text = String::new();
        prometheus_client::encoding::text::encode(&mut text, &self.registry)?;
        Ok(text)
    }
}

/// The GPU path's figures, read from its status at each scrape: `rustkernel_gpu_up` (1 while a
/// worker serves), `rustkernel_gpu_workers_started_total`, `rustkernel_gpu_application_xids_total`
/// and `rustkernel_gpu_hardware_xid` (the Xid that marks the device unhealthy, 0 for none).
#[derive(Debug)]
struct GpuCollector(tokio::sync::watch::Receiver<crate::gpu::GpuStatus>);

impl prometheus_client::collector::Collector for GpuCollector {
    fn encode(
        &self,
        mut encoder: prometheus_client::encoding::DescriptorEncoder,
    ) -> Result<(), std::fmt::Error> {
        use prometheus_client::encoding::EncodeMetric;
        use prometheus_client::metrics::counter::ConstCounter;
        use prometheus_client::metrics::gauge::ConstGauge;
        let status = self.0.borrow().clone();
        let up = i64::from(matches!(
            status.phase,
            crate::gpu::WorkerPhase::Ready { .. }
        ));
        let gauges = [
            (
                "rustkernel_gpu_up",
                "1 while a GPU worker serves requests, else 0 (the CPU serves).",
                up,
            ),
            (
                "rustkernel_gpu_hardware_xid",
                "The hardware Xid that marks the device unhealthy; 0 for none.",
                status
                    .hardware_xid
                    .map_or(0, |xid| i64::try_from(xid).unwrap_or(i64::MAX)),
            ),
        ];
        for (name, help, value) in gauges {
            let gauge = ConstGauge::new(value);
            let metric = encoder.encode_descriptor(name, help, None, gauge.metric_type())?;
            gauge.encode(metric)?;
        }
        let counters = [
            (
                "rustkernel_gpu_workers_started",
                "GPU workers started (each restart adds one).",
                status.workers_started,
            ),
            (
                "rustkernel_gpu_application_xids",
                "Application Xids reported for the device (faults of a kernel).",
                status.application_xids,
            ),
        ];
        for (name, help, value) in counters {
            let counter = ConstCounter::new(value);
            let metric = encoder.encode_descriptor(name, help, None, counter.metric_type())?;
            counter.encode(metric)?;
        }
        Ok(())
    }
}

/// What the collector reads of one kernel.
pub(super) struct KernelSources<'a> {
    pub(super) id: &'static str,
    pub(super) breaker: Option<&'a CircuitBreaker<KernelWindow>>,
    pub(super) calls: &'a CallMetrics,
    pub(super) budget: Option<&'a SharedRetryBudget>,
}

/// The service's resilience collector: every kernel's breaker under its id, the GPU device's
/// breaker and its worker supervisor's decisions under its name (`gpu0`) with `[gpu]`, and
/// the health probe.
pub(super) fn resilience_collector<'a>(
    kernels: impl IntoIterator<Item = KernelSources<'a>>,
    gpu: Option<&GpuExecutor>,
    probe: &HealthProbe,
) -> ResilienceCollector {
    let mut collector = ResilienceCollector::new();
    for kernel in kernels {
        if let Some(breaker) = kernel.breaker {
            collector = collector.with_breaker(kernel.id, breaker.clone());
        }
        collector = collector.with_calls(kernel.id, kernel.calls.clone());
        if let Some(budget) = kernel.budget {
            collector = collector.with_retry_budget(kernel.id, budget.clone());
        }
    }
    if let Some(gpu) = gpu {
        let breaker = gpu.breaker();
        collector = collector
            .with_breaker(breaker.name(), breaker.clone())
            .with_supervisor(breaker.name(), gpu.supervisor_log());
    }
    collector.with_health(probe.clone())
}

/// The answer of `GET /metrics`: OpenMetrics text of every family.
pub(super) fn exposition(metrics: &Metrics) -> Response {
    match metrics.encode() {
        Ok(text) => (
            StatusCode::OK,
            [(
                header::CONTENT_TYPE,
                "application/openmetrics-text; version=1.0.0; charset=utf-8",
            )],
            text,
        )
            .into_response(),
        Err(_) => ApiError::Internal("cannot encode metrics".to_owned()).into_response(),
    }
}
