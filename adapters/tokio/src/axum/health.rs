//! [`health_router`]: the probe routes of a [`HealthProbe`], ready to merge into an axum app.

use axum::Json;
use axum::Router;
use axum::extract::State;
use axum::http::{StatusCode, header};
use axum::response::{IntoResponse, Response};
use axum::routing::get;
use rustkernel_core::resilience::HealthStatus;
use serde::Serialize;

use crate::health::{HealthProbe, HealthReport};

/// The body of a probe route: `{"status":"ready"}`, or `{"status":"not_ready","reason":".."}`.
#[derive(Serialize)]
struct ProbeBody {
    status: &'static str,
    #[serde(skip_serializing_if = "Option::is_none")]
    reason: Option<String>,
}

/// The routes Kubernetes and operators ask, answered from `probe`'s registry (never by
/// running a check):
///
/// | Route | 200 when | else |
/// |---|---|---|
/// | `GET /health/live` | every critical component is live | 503 `not_live` |
/// | `GET /health/ready` | every critical component is ready | 503 `not_ready`, naming them |
/// | `GET /health/startup` | every critical component has started (answered its first check, or passed its startup probe) | 503 `starting` |
/// | `GET /health` | the [`HealthReport`] as JSON, unless the service is unhealthy (503) | |
///
/// Every answer carries `Cache-Control: no-store`. Merge it into your app
/// (`app.merge(health_router(probe))`) and run the probe ([`HealthProbe::spawn`]).
///
/// ```
/// use axum::{body::Body, http::Request};
/// use rustkernel_tokio::axum::health_router;
/// use rustkernel_tokio::resilience::{HealthCheckResult, HealthProbe, HealthProbeConfig, check_fn};
/// use tower::ServiceExt;
///
/// # #[tokio::main(flavor = "current_thread", start_paused = true)]
/// # async fn main() {
/// let probe = HealthProbe::new(HealthProbeConfig::default());
/// probe.register("gpu", check_fn(|| async { HealthCheckResult::healthy() }));
/// let app = health_router(probe.clone());
/// let ready = || Request::get("/health/ready").body(Body::empty()).unwrap();
/// // Nobody has answered yet: not started, so not ready.
/// assert_eq!(app.clone().oneshot(ready()).await.unwrap().status(), 503);
/// probe.check("gpu").await.unwrap();
/// assert_eq!(app.oneshot(ready()).await.unwrap().status(), 200);
/// # }
/// ```
pub fn health_router<S>(probe: HealthProbe) -> Router<S>
where
    S: Clone + Send + Sync + 'static,
{
    Router::new()
        .route("/health/live", get(live))
        .route("/health/ready", get(ready))
        .route("/health/startup", get(startup))
        .route("/health", get(report))
        .with_state(probe)
}

fn answer(
    ok: bool,
    status: &'static str,
    negative: &'static str,
    reason: Option<String>,
) -> Response {
    let (code, body) = if ok {
        (
            StatusCode::OK,
            ProbeBody {
                status,
                reason: None,
            },
        )
    } else {
        (
            StatusCode::SERVICE_UNAVAILABLE,
            ProbeBody {
                status: negative,
                reason,
            },
        )
    };
    (code, [(header::CACHE_CONTROL, "no-store")], Json(body)).into_response()
}

/// The critical components that fail `test`, with their messages.
fn failing(
    report: &HealthReport,
    test: impl Fn(&crate::health::ComponentReport) -> bool,
) -> String {
    report
        .components
        .iter()
        .filter(|component| component.critical && !test(component))
        .map(|component| {
            if component.message.is_empty() {
                component.name.clone()
            } else {
                format!("{}: {}", component.name, component.message)
            }
        })
        .collect::<Vec<_>>()
        .join("; ")
}

async fn live(State(probe): State<HealthProbe>) -> Response {
    let report = probe.report();
    let reason = (!report.live).then(|| failing(&report, |c| c.live));
    answer(report.live, "live", "not_live", reason)
}

async fn ready(State(probe): State<HealthProbe>) -> Response {
    let report = probe.report();
    let reason = (!report.ready).then(|| failing(&report, |c| c.ready));
    answer(report.ready, "ready", "not_ready", reason)
}

async fn startup(State(probe): State<HealthProbe>) -> Response {
    let report = probe.report();
    let reason = (!report.started).then(|| failing(&report, |c| c.started));
    answer(report.started, "started", "starting", reason)
}

async fn report(State(probe): State<HealthProbe>) -> Response {
    let report = probe.report();
    let code = if report.overall == HealthStatus::Unhealthy {
        StatusCode::SERVICE_UNAVAILABLE
    } else {
        StatusCode::OK
    };
    (code, [(header::CACHE_CONTROL, "no-store")], Json(report)).into_response()
}
