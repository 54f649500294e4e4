//! The status page: `GET /` and `GET /status`, one HTML page served from the binary (no
//! framework, no build step), which polls `GET /status.json` every second and shows every
//! kernel with its breaker (state, why it opened, when it admits calls again), call rate and
//! latency; the GPU worker; the edge devices; readiness and why. The three routes follow the
//! same token rule as `/health` (`auth.protect_health`).
//!
//! `/status.json` is the page's one source: `/health`'s body (components, breakers, trips,
//! readiness and its reason) and each kernel's call figures, with latency percentiles
//! estimated from its histogram (the upper bound of the bucket the percentile falls in).

use std::sync::Arc;

use axum::Json;
use axum::extract::State;
use axum::http::header;
use axum::response::{Html, IntoResponse, Response};
use rustkernel_tokio::metrics::CallStats;
use serde::{Deserialize, Serialize};

use super::AppState;
use super::health::{HealthBody, body};

/// The page, as committed in `status.html`.
const PAGE: &str = include_str!("status.html");

/// The body of `GET /status.json`.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct StatusBody {
    /// What `GET /health` answers.
    pub health: HealthBody,
    /// Each kernel's calls so far.
    pub kernels: Vec<KernelCalls>,
    /// The GPU path, with `[gpu]`.
    pub gpu: Option<GpuSummary>,
}

/// One kernel's call figures since the service started.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct KernelCalls {
    /// The kernel id (`graph/pagerank`).
    pub kernel: String,
    /// Calls recorded, every outcome.
    pub calls: u64,
    /// Calls by outcome (`success`, `rejected`, `timeout`, ...).
    pub outcomes: Vec<(String, u64)>,
    /// Retries made.
    pub retries: u64,
    /// Calls answered by a fallback.
    pub fallbacks: u64,
    /// Mean latency in milliseconds; `None` before the first call.
    pub mean_ms: Option<f64>,
    /// The median's bucket bound in milliseconds; `None` before the first call or past the
    /// last bound.
    pub p50_ms: Option<f64>,
    /// The 99th percentile's bucket bound in milliseconds, as `p50_ms`.
    pub p99_ms: Option<f64>,
}

/// The GPU path now.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct GpuSummary {
    /// Whether a worker serves requests (else the CPU serves every one).
    pub up: bool,
    /// The worker's phase, in words.
    pub phase: String,
    /// Workers started so far.
    pub workers_started: u64,
    /// Application Xids seen.
    pub application_xids: u64,
    /// The hardware Xid that marks the device unhealthy.
    pub hardware_xid: Option<u64>,
    /// Why the worker last failed.
    pub last_failure: Option<String>,
}

/// The bound of the bucket holding the `quantile` of `stats`' calls, in milliseconds.
fn quantile_ms(stats: &CallStats, quantile: f64) -> Option<f64> {
    if stats.latency_count == 0 {
        return None;
    }
    #[allow(clippy::cast_precision_loss)] // a call count as a rank
    let rank = (quantile * stats.latency_count as f64).ceil();
    stats
        .latency_buckets
        .iter()
        .find(|(_, cumulative)| {
            #[allow(clippy::cast_precision_loss)]
            let cumulative = *cumulative as f64;
            cumulative >= rank
        })
        .map(|(bound, _)| bound * 1000.0)
}

fn kernel_calls(kernel: &str, stats: &CallStats) -> KernelCalls {
    #[allow(clippy::cast_precision_loss)] // a call count as a divisor
    let mean_ms = (stats.latency_count > 0)
        .then(|| stats.latency_sum_seconds * 1000.0 / stats.latency_count as f64);
    KernelCalls {
        kernel: kernel.to_owned(),
        calls: stats.latency_count,
        outcomes: stats.outcomes.clone(),
        retries: stats.retries,
        fallbacks: stats.fallbacks,
        mean_ms,
        p50_ms: quantile_ms(stats, 0.5),
        p99_ms: quantile_ms(stats, 0.99),
    }
}

/// What `/status.json` answers now.
#[must_use]
pub(crate) fn status(state: &AppState) -> StatusBody {
    let kernels = state
        .kernels
        .values()
        .map(|slot| kernel_calls(slot.id, &slot.calls.stats()))
        .collect();
    let gpu = state.gpu.as_ref().map(|gpu| {
        let status = gpu.status();
        GpuSummary {
            up: matches!(status.phase, crate::gpu::WorkerPhase::Ready { .. }),
            phase: format!("{:?}", status.phase),
            workers_started: status.workers_started,
            application_xids: status.application_xids,
            hardware_xid: status.hardware_xid,
            last_failure: status.last_failure,
        }
    });
    StatusBody {
        health: body(state),
        kernels,
        gpu,
    }
}

/// `GET /status.json`.
pub(super) async fn json(State(state): State<Arc<AppState>>) -> Response {
    ([(header::CACHE_CONTROL, "no-store")], Json(status(&state))).into_response()
}

/// `GET /` and `GET /status`: the page.
pub(super) async fn page() -> Response {
    (
        [
            (header::CACHE_CONTROL, "no-store"),
            (
                header::CONTENT_SECURITY_POLICY,
                "default-src 'none'; script-src 'unsafe-inline'; style-src 'unsafe-inline'; connect-src 'self'",
            ),
        ],
        Html(PAGE),
    )
        .into_response()
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::time::Duration;

    #[test]
    fn percentiles_are_the_bounds_of_the_buckets_they_fall_in() {
        let calls = rustkernel_tokio::metrics::CallMetrics::with_buckets(&[0.001, 0.01, 0.1])
            .expect("valid");
        for _ in 0..98 {
            calls.record_call("success", 1, Duration::from_micros(500));
        }
        calls.record_call("timeout", 1, Duration::from_millis(50));
        calls.record_call("timeout", 1, Duration::from_secs(1));
        let summary = kernel_calls("graph/pagerank", &calls.stats());
        assert_eq!(summary.calls, 100);
        assert_eq!(summary.p50_ms, Some(1.0));
        assert_eq!(summary.p99_ms, Some(100.0), "the 99th call took 50 ms");
        let mean = summary.mean_ms.expect("calls were made");
        assert!((mean - 10.99).abs() < 1e-9, "{mean}");

        let empty = kernel_calls("linalg/matmul", &CallStats::default());
        assert_eq!(
            (empty.mean_ms, empty.p50_ms, empty.p99_ms),
            (None, None, None)
        );
    }
}
