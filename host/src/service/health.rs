//! The health components and the probe routes, which answer from the health registry.
//!
//! Components:
//! - `runtime` (critical; startup, liveness, readiness; see [`runtime`](super::runtime));
//! - `service` (critical; readiness): not ready while starting (until every component answered
//!   its first check), while draining, and while no executor accepts work (every kernel's
//!   breaker open);
//! - one per kernel, `kernel/<id>` (non-critical, readiness: an open breaker degrades the
//!   service but the others still take work), reporting its breaker: closed is healthy,
//!   half-open degraded, open or forced open unhealthy;
//! - `gpu` with `[gpu]` (non-critical, readiness: the CPU path serves while it is down).
//!
//! Their checks run in the background on the probe's runner, concurrently, each under its own
//! timeout and never two of the same at once; and every event that changes one is pushed into
//! the registry at once ([`HealthProbe::record`](rustkernel_tokio::resilience::HealthProbe::record)):
//! a breaker's transition, the GPU path's status, the start of a drain, the end of start-up.
//! So `/health`, `rustkernel health` and the demo never contradict a breaker. The routes only
//! read the registry: `/health/live` is its `is_live` (and the runtime's own heartbeat, the
//! watchdog of the runner that keeps the registry current), `/health/ready` its `is_ready`,
//! `/health/startup` its `is_started` and `service`'s start-up.
//!
//! Aggregation (`status` of `GET /health`): `unknown` until the first round of checks finished;
//! then the worst of the components' contributions, in the order unhealthy, unknown, degraded,
//! healthy, where a non-critical component contributes at most `degraded`.

use std::sync::Arc;
use std::sync::atomic::Ordering;
use std::time::{Duration, SystemTime};

use axum::Json;
use axum::extract::State;
use axum::http::{StatusCode, header};
use axum::response::{IntoResponse, Response};
use rustkernel_core::resilience::{
    Criticality, HealthCheckResult, HealthProbeConfig, HealthStatus, ProbeRole, ProbeRoles, Trip,
};
use rustkernel_tokio::health::breaker_health;
use rustkernel_tokio::resilience::{ComponentOptions, HealthReport, check_fn};
use serde::{Deserialize, Serialize};

use super::AppState;

/// The name of the service's own component.
pub const RUNTIME: &str = "runtime";

/// The GPU worker's component (registered when `[gpu]` is enabled).
pub const GPU: &str = "gpu";

/// The service's own readiness: start-up, drain, and whether any executor accepts work.
pub const SERVICE: &str = "service";

/// The component name of a kernel (`kernel/graph/pagerank`).
#[must_use]
pub fn kernel_component(id: &str) -> String {
    format!("kernel/{id}")
}

/// Registers `runtime` and one component per kernel.
/// Registers every component; returns the tasks that mirror the kernels' breakers.
pub(super) fn register_components(state: &Arc<AppState>) -> Vec<tokio::task::JoinHandle<()>> {
    let runtime = state.runtime.clone();
    let runtime_config = HealthProbeConfig {
        interval: state.config.runtime.check_interval,
        timeout: state
            .config
            .runtime
            .check_interval
            .min(Duration::from_secs(5)),
        failure_threshold: 1,
        success_threshold: 1,
    };
    let registered = state.probe.try_register_with(
        RUNTIME,
        check_fn(move || {
            let runtime = runtime.clone();
            async move { runtime.check() }
        }),
        ComponentOptions {
            criticality: Criticality::Critical,
            roles: ProbeRoles::of(&[
                ProbeRole::Startup,
                ProbeRole::Liveness,
                ProbeRole::Readiness,
            ]),
            config: Some(runtime_config),
        },
    );
    if let Err(error) = registered {
        tracing::error!(%error, "cannot register the runtime health component");
    }
    // Components that follow events answer at once: one result flips them (their sources,
    // breakers and the GPU supervisor, have their own hysteresis).
    let pushed = HealthProbeConfig {
        failure_threshold: 1,
        success_threshold: 1,
        ..state.probe.config()
    };
    let weak = Arc::downgrade(state);
    let registered = state.probe.try_register_with(
        SERVICE,
        check_fn(move || {
            let state = weak.upgrade();
            async move {
                match state {
                    Some(state) => service_check(&state),
                    None => HealthCheckResult::unhealthy("service stopped"),
                }
            }
        }),
        ComponentOptions {
            criticality: Criticality::Critical,
            roles: ProbeRoles::of(&[ProbeRole::Readiness]),
            config: Some(pushed),
        },
    );
    if let Err(error) = registered {
        tracing::error!(%error, "cannot register the service health component");
    }
    if state.gpu.is_some() {
        let weak = Arc::downgrade(state);
        let registered = state.probe.try_register_with(
            GPU,
            check_fn(move || {
                let state = weak.upgrade();
                async move {
                    match state.as_ref().and_then(|state| state.gpu.as_ref()) {
                        Some(gpu) => gpu.health(),
                        None => HealthCheckResult::unhealthy("service stopped"),
                    }
                }
            }),
            ComponentOptions {
                // The CPU path keeps the service ready while the GPU is down.
                criticality: Criticality::NonCritical,
                roles: ProbeRoles::of(&[ProbeRole::Readiness]),
                config: Some(pushed),
            },
        );
        if let Err(error) = registered {
            tracing::error!(%error, "cannot register the gpu health component");
        }
    }
    // Each kernel's component mirrors its breaker, pushed on every transition.
    let mut mirrors = Vec::new();
    for slot in state.kernels.values() {
        let Some(breaker) = slot.pipeline.breaker() else {
            continue;
        };
        let mirrored = state.probe.mirror_breaker(
            &kernel_component(slot.id),
            breaker.clone(),
            ComponentOptions {
                criticality: Criticality::NonCritical,
                roles: ProbeRoles::of(&[ProbeRole::Readiness]),
                config: None,
            },
        );
        match mirrored {
            Ok(task) => mirrors.push(task),
            Err(error) => {
                tracing::error!(%error, kernel = slot.id, "cannot register a kernel health component");
            }
        }
    }
    mirrors
}

/// The `service` component: starting, draining, or no executor accepting work.
fn service_check(state: &AppState) -> HealthCheckResult {
    if state.draining.load(Ordering::SeqCst) {
        return HealthCheckResult::unhealthy("draining: the service is shutting down");
    }
    if !state.started.load(Ordering::SeqCst) {
        return HealthCheckResult::unhealthy("starting: first health checks under way");
    }
    if !state.kernels.values().any(|slot| !slot.pipeline.is_open()) {
        return HealthCheckResult::unhealthy("no executor: every kernel's circuit breaker is open");
    }
    HealthCheckResult::healthy()
}

/// Pushes `name`'s current result into the registry (see the module docs).
fn push(state: &AppState, name: &str, result: HealthCheckResult) {
    if let Err(error) = state.probe.record(name, result) {
        tracing::debug!(%error, component = name, "no such health component");
    }
}

/// Pushes kernel `id`'s component and the `service` component: its breaker moved (an
/// operator's action pushes at once, before the answer, as the transition's watcher would).
pub(super) fn push_kernel(state: &AppState, id: &str) {
    if let Some(breaker) = state.breaker(id) {
        push(state, &kernel_component(id), breaker_health(breaker));
    }
    push_service(state);
}

/// Pushes the `service` component: a drain began, start-up ended, a breaker moved.
pub(super) fn push_service(state: &AppState) {
    push(state, SERVICE, service_check(state));
}

/// Marks startup finished once every other component has answered its first check (run
/// concurrently, each on its own task), and pushes it.
pub(super) async fn finish_startup(state: Arc<AppState>) {
    let mut checks = tokio::task::JoinSet::new();
    for name in state.probe.components() {
        if name == SERVICE {
            continue;
        }
        let probe = state.probe.clone();
        checks.spawn(async move { probe.check(&name).await });
    }
    while checks.join_next().await.is_some() {}
    state.started.store(true, Ordering::SeqCst);
    push_service(&state);
    tracing::info!("startup finished: every component answered its first check");
}

/// Pushes the `gpu` component each time the GPU path's status changes.
pub(super) async fn watch_gpu(state: Arc<AppState>) {
    let Some(mut status) = state.gpu.as_deref().map(crate::gpu::GpuExecutor::subscribe) else {
        return;
    };
    loop {
        let result = status.borrow_and_update().health();
        push(&state, GPU, result);
        if status.changed().await.is_err() {
            return;
        }
    }
}

/// Registers the metrics collector (every breaker, the health probe), then follows every
/// breaker's transitions, one task per breaker: counts its openings by reason, and pushes a
/// kernel's component and `service` into the registry at each change.
///
/// It reads every transition in order (not the latest state, which would merge a quick
/// open, half-open, closed into one "open to closed" that never happened).
pub(super) async fn watch_breakers(state: Arc<AppState>) {
    use tokio::sync::broadcast::error::RecvError;
    let mut watched = Vec::new();
    for slot in state.kernels.values() {
        if let Some(breaker) = slot.pipeline.breaker() {
            watched.push((
                slot.id.to_owned(),
                breaker.subscribe_transitions(),
                Some(slot.id),
            ));
        }
    }
    if let Some(breaker) = state.gpu.as_deref().map(crate::gpu::GpuExecutor::breaker) {
        watched.push((
            breaker.name().to_owned(),
            breaker.subscribe_transitions(),
            None,
        ));
    }
    let mut tasks = tokio::task::JoinSet::new();
    for (name, mut transitions, kernel) in watched {
        let state = state.clone();
        tasks.spawn(async move {
            loop {
                match transitions.recv().await {
                    Ok(transition) => {
                        if transition.would_open() {
                            continue;
                        }
                        if let Some(trip) = transition.trip {
                            state
                                .metrics
                                .breaker_opened
                                .get_or_create(&super::metrics::TripLabels {
                                    breaker: name.clone(),
                                    reason: trip.reason.as_str(),
                                })
                                .inc();
                        }
                    }
                    Err(RecvError::Lagged(missed)) => {
                        tracing::warn!(breaker = %name, missed, "breaker openings not counted");
                    }
                    Err(RecvError::Closed) => break,
                }
                if kernel.is_some() {
                    push_service(&state);
                }
            }
        });
    }
    while tasks.join_next().await.is_some() {}
}

/// The body of the probe routes.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct ProbeBody {
    /// `live`, `ready`, `started`, or the negative (`not_ready`, `draining`, ...).
    pub status: String,
    /// Why, when the answer is 503.
    #[serde(skip_serializing_if = "Option::is_none", default)]
    pub reason: Option<String>,
    /// What is still on its way while the service already serves (`/health/startup`: the
    /// GPU worker's start-up, with the CPU serving meanwhile).
    #[serde(skip_serializing_if = "Option::is_none", default)]
    pub pending: Option<String>,
}

fn probe(ok: bool, status: &str, negative: &str, reason: Option<String>) -> Response {
    probe_pending(ok, status, negative, reason, None)
}

fn probe_pending(
    ok: bool,
    status: &str,
    negative: &str,
    reason: Option<String>,
    pending: Option<String>,
) -> Response {
    let (code, body) = if ok {
        (
            StatusCode::OK,
            ProbeBody {
                status: status.to_owned(),
                reason: None,
                pending,
            },
        )
    } else {
        (
            StatusCode::SERVICE_UNAVAILABLE,
            ProbeBody {
                status: negative.to_owned(),
                reason,
                pending,
            },
        )
    };
    (code, [(header::CACHE_CONTROL, "no-store")], Json(body)).into_response()
}

/// `GET /health/live`: the registry's liveness (the runtime's; never a dependency's), and the
/// runtime's heartbeat, which watches the runner that keeps the registry current.
pub(super) async fn live(State(state): State<Arc<AppState>>) -> Response {
    let alive = state.probe.is_live() && state.runtime.is_live();
    probe(
        alive,
        "live",
        "not_live",
        (!alive).then(|| "the runtime heartbeat or the health supervisor stopped".to_owned()),
    )
}

/// Why the service is not ready, from the registry: the critical components that are not,
/// with their messages; `None` when it is ready.
pub(crate) fn not_ready_reason(report: &HealthReport) -> Option<String> {
    if report.ready {
        return None;
    }
    let reasons: Vec<String> = report
        .components
        .iter()
        .filter(|component| component.critical && !component.ready)
        .map(|component| {
            if component.name == SERVICE && !component.message.is_empty() {
                component.message.clone()
            } else if component.message.is_empty() {
                format!("{}: not ready", component.name)
            } else {
                format!("{}: {}", component.name, component.message)
            }
        })
        .collect();
    Some(if reasons.is_empty() {
        "not ready".to_owned()
    } else {
        reasons.join("; ")
    })
}

/// `GET /health/ready`: the registry's readiness, never by running a check.
pub(super) async fn ready(State(state): State<Arc<AppState>>) -> Response {
    // Ready, the usual answer, reads one flag of the registry; the report (every component,
    // cloned) is built only to say why not.
    if state.probe.is_ready() {
        return probe(true, "ready", "not_ready", None);
    }
    let report = state.probe.report();
    let reason = not_ready_reason(&report);
    let status = if reason
        .as_deref()
        .is_some_and(|reason| reason.starts_with("draining"))
    {
        "draining"
    } else {
        "not_ready"
    };
    probe(reason.is_none(), "ready", status, reason)
}

/// Whether start-up is over, from the registry: its critical components started, and
/// `service` has answered and is past "starting" (every component answered its first check).
pub(crate) fn started(report: &HealthReport) -> bool {
    report.started
        && report.component(SERVICE).is_some_and(|service| {
            service.status != HealthStatus::Unknown && !service.message.starts_with("starting")
        })
}

/// `GET /health/startup`: the first round of checks finished.
pub(super) async fn startup(State(state): State<Arc<AppState>>) -> Response {
    let report = state.probe.report();
    let started = started(&report);
    let reason = (!started).then(|| {
        let waiting: Vec<String> = report
            .components
            .iter()
            .filter(|component| component.status == HealthStatus::Unknown)
            .map(|component| component.name.clone())
            .collect();
        if waiting.is_empty() {
            "the first health checks have not finished".to_owned()
        } else {
            format!("waiting for the first checks of: {}", waiting.join(", "))
        }
    });
    // The GPU worker's start-up does not hold the service back (the CPU serves meanwhile),
    // but the probe says that it is still under way.
    let pending = state.gpu.as_ref().and_then(|gpu| {
        matches!(gpu.phase(), crate::gpu::WorkerPhase::Starting).then(|| {
            "gpu: the GPU worker is starting (cuInit, PTX); kernels run on the CPU meanwhile"
                .to_owned()
        })
    });
    probe_pending(started, "started", "starting", reason, pending)
}

/// The body of `GET /health`; `rustkernel health --format json` prints the same shape.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct HealthBody {
    /// The aggregate: `healthy`, `degraded`, `unhealthy` or `unknown` (while starting).
    pub status: HealthStatus,
    /// `/health/live`'s answer.
    pub live: bool,
    /// `/health/ready`'s answer.
    pub ready: bool,
    /// `/health/startup`'s answer.
    pub started: bool,
    /// Why the service is not ready, if it is not.
    #[serde(skip_serializing_if = "Option::is_none", default)]
    pub reason: Option<String>,
    /// Every component, in registration order.
    pub components: Vec<ComponentBody>,
}

/// One component of [`HealthBody`].
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct ComponentBody {
    /// `runtime`, `kernel/graph/pagerank`, ...
    pub name: String,
    /// Its status.
    pub status: HealthStatus,
    /// Its latest check's message (empty when healthy).
    pub message: String,
    /// How long its latest check took, in milliseconds.
    pub latency_ms: f64,
    /// When its latest check finished (RFC 3339, UTC), `null` before the first.
    pub last_check: Option<String>,
    /// Whether the service's readiness depends on it.
    pub critical: bool,
    /// The kernel's circuit breaker, for kernel components.
    #[serde(skip_serializing_if = "Option::is_none", default)]
    pub breaker: Option<BreakerBody>,
}

/// A kernel's breaker in [`ComponentBody`].
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct BreakerBody {
    /// `closed`, `open`, `half_open`, `forced_open`, `disabled` or `metrics_only`.
    pub state: String,
    /// Failures counted since start.
    pub failures: u64,
    /// Successes counted since start.
    pub successes: u64,
    /// Calls rejected since start.
    pub rejected: u64,
    /// Seconds until an open breaker probes again.
    #[serde(skip_serializing_if = "Option::is_none", default)]
    pub retry_after_s: Option<u64>,
    /// Why the breaker is not closed: the figures of the window that opened it (metrics-only:
    /// of the last time it would have opened).
    #[serde(skip_serializing_if = "Option::is_none", default)]
    pub trip: Option<TripBody>,
    /// Times a metrics-only breaker would have opened.
    #[serde(default)]
    pub would_open: u64,
}

/// The figures that opened a breaker, in the health report.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct TripBody {
    /// `failure_rate`, `slow_call_rate`, `consecutive_failures`, `probe_failed`,
    /// `half_open_timeout` or `forced`.
    pub reason: String,
    /// Calls in the window (half-open: probes) when it opened.
    pub calls: u32,
    /// Failed ones among them.
    pub failures: u32,
    /// Slow ones among them.
    pub slow: u32,
    /// `failures / calls`.
    pub failure_rate: f64,
    /// `slow / calls`.
    pub slow_call_rate: f64,
    /// The failure streak when it opened.
    pub consecutive_failures: u32,
}

impl From<Trip> for TripBody {
    fn from(trip: Trip) -> Self {
        Self {
            reason: trip.reason.as_str().to_owned(),
            calls: trip.calls,
            failures: trip.failures,
            slow: trip.slow,
            failure_rate: trip.failure_rate(),
            slow_call_rate: trip.slow_call_rate(),
            consecutive_failures: trip.consecutive_failures,
        }
    }
}

/// The whole health view.
pub(crate) fn body(state: &AppState) -> HealthBody {
    let report = state.probe.report();
    let reason = not_ready_reason(&report);
    let started = started(&report);
    let now_tokio = tokio::time::Instant::now();
    let now_wall = SystemTime::now();
    let components = report
        .components
        .iter()
        .map(|component| {
            let breaker = component
                .name
                .strip_prefix("kernel/")
                .and_then(|id| state.kernels.get(id))
                .and_then(|slot| slot.pipeline.breaker())
                .map(|breaker| {
                    let stats = breaker.stats();
                    BreakerBody {
                        state: stats.state.label().to_owned(),
                        failures: stats.failure_count,
                        successes: stats.success_count,
                        rejected: stats.rejected_count,
                        retry_after_s: breaker
                            .retry_after()
                            .filter(|wait| *wait != Duration::MAX)
                            .map(|wait| wait.as_secs() + u64::from(wait.subsec_nanos() > 0)),
                        trip: stats.trip.map(TripBody::from),
                        would_open: stats.would_open_count,
                    }
                });
            let last_check = state.probe.checked_at(&component.name).map(|at| {
                let ago =
                    now_tokio.saturating_duration_since(rustkernel_tokio::clock::to_tokio(at));
                humantime::format_rfc3339_millis(now_wall - ago).to_string()
            });
            ComponentBody {
                name: component.name.clone(),
                status: component.status,
                message: component.message.clone(),
                latency_ms: (component.latency.as_secs_f64() * 1_000_000.0).round() / 1000.0,
                last_check,
                critical: component.critical,
                breaker,
            }
        })
        .collect();
    HealthBody {
        status: if started {
            report.overall
        } else {
            HealthStatus::Unknown
        },
        live: state.runtime.is_live(),
        ready: reason.is_none(),
        started,
        reason,
        components,
    }
}

/// `GET /health`: every component. 200 unless the service is unhealthy (503).
pub(super) async fn full(State(state): State<Arc<AppState>>) -> Response {
    let body = body(&state);
    let code = if body.status == HealthStatus::Unhealthy {
        StatusCode::SERVICE_UNAVAILABLE
    } else {
        StatusCode::OK
    };
    (code, [(header::CACHE_CONTROL, "no-store")], Json(body)).into_response()
}
