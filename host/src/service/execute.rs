//! `POST /v1/kernels/{family}/{name}/execute`: parse the request, admit it (drain, rate
//! limit, concurrency), run it through the kernel's pipeline, map the outcome to a response.
//! Errors are [`ApiError`]s (the status table is in [`error`](super::error)).

use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;

use axum::Json;
use axum::body::Bytes;
use axum::extract::rejection::BytesRejection;
use axum::extract::{ConnectInfo, Path, State};
use axum::http::{HeaderMap, StatusCode, header};
use axum::response::{IntoResponse, Response};
use rustkernel_core::resilience::{GiveUpReason, ResilienceError};
use rustkernel_tokio::resilience::RequestDeadline;
use serde::{Deserialize, Serialize};

use super::AppState;
use super::error::ApiError;
use crate::kernels::{
    self, INLINE_WORK_UNITS, KernelError, KernelRequest, KernelResponse, work_units,
};

/// The header that carries a request's deadline, in milliseconds (clamped by `max_timeout`).
pub const TIMEOUT_HEADER: &str = "x-request-timeout-ms";

/// The body of a successful kernel call.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct ExecuteBody {
    /// The kernel id.
    pub kernel: String,
    /// Where it ran: `cpu` (or `gpu`).
    pub backend: String,
    /// Attempts made through the pipeline.
    pub attempts: u32,
    /// Time from arrival to answer, in milliseconds.
    pub elapsed_ms: f64,
    /// The kernel's output.
    pub result: KernelResponse,
}

/// Reads the deadline header: milliseconds, a positive integer.
fn requested_timeout(headers: &HeaderMap) -> Result<Option<Duration>, ApiError> {
    let Some(value) = headers.get(TIMEOUT_HEADER) else {
        return Ok(None);
    };
    let text = value
        .to_str()
        .map_err(|_| ApiError::BadRequest(format!("{TIMEOUT_HEADER} is not ASCII")))?;
    match text.trim().parse::<u64>() {
        Ok(0) => Err(ApiError::BadRequest(format!(
            "{TIMEOUT_HEADER} must be a positive number of milliseconds"
        ))),
        Ok(ms) => Ok(Some(Duration::from_millis(ms))),
        Err(_) => Err(ApiError::BadRequest(format!(
            "{TIMEOUT_HEADER} must be a positive integer of milliseconds, not {text:?}"
        ))),
    }
}

/// How a request body is written.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum BodyFormat {
    /// `application/json`, or no `Content-Type`: [`kernels::parse_request`].
    Json,
    /// [`kernels::BINARY_CONTENT_TYPE`]: [`kernels::parse_request_binary`].
    Binary,
}

/// Reads `Content-Type` (case-insensitive, parameters such as `charset` ignored); JSON when
/// absent, so clients that send none keep working.
fn body_format(headers: &HeaderMap) -> Result<BodyFormat, ApiError> {
    let Some(value) = headers.get(header::CONTENT_TYPE) else {
        return Ok(BodyFormat::Json);
    };
    let essence = value
        .to_str()
        .ok()
        .and_then(|text| text.split(';').next())
        .map(str::trim);
    let lower = essence.map(str::to_ascii_lowercase);
    match lower.as_deref() {
        Some(t) if t.eq_ignore_ascii_case(kernels::BINARY_CONTENT_TYPE) => Ok(BodyFormat::Binary),
        // Binary bodies this service cannot read: raw bytes, or another version of ours.
        Some(t)
            if t == "application/octet-stream" || t.starts_with("application/vnd.rustkernel.") =>
        {
            Err(ApiError::UnsupportedMediaType(format!(
                "content type {:?} is not supported: send application/json (the default) or {}",
                String::from_utf8_lossy(value.as_bytes()),
                kernels::BINARY_CONTENT_TYPE
            )))
        }
        // Everything else is read as JSON, as before the binary body existed: `curl -d`
        // sends `application/x-www-form-urlencoded`, and many clients send `text/plain`.
        _ => Ok(BodyFormat::Json),
    }
}

/// `POST /v1/kernels/{family}/{name}/execute`: the token was checked by the route's layer.
pub(super) async fn execute(
    State(state): State<Arc<AppState>>,
    ConnectInfo(client): ConnectInfo<SocketAddr>,
    Path((family, name)): Path<(String, String)>,
    headers: HeaderMap,
    body: Result<Bytes, BytesRejection>,
) -> Response {
    let arrived = tokio::time::Instant::now();
    let id = format!("{family}/{name}");
    let result = run(&state, client, &id, &headers, body, arrived).await;
    let status = match &result {
        Ok(_) => StatusCode::OK,
        Err(error) => error.status(),
    };
    state
        .metrics
        .http
        .get_or_create(&super::metrics::HttpLabels {
            route: "/v1/kernels/{id}/execute",
            status: status.as_u16(),
        })
        .inc();
    match result {
        Ok(body) => (StatusCode::OK, Json(body)).into_response(),
        Err(error) => error.into_response(),
    }
}

/// Parse, admit, call, map.
async fn run(
    state: &AppState,
    client: SocketAddr,
    id: &str,
    headers: &HeaderMap,
    body: Result<Bytes, BytesRejection>,
    arrived: tokio::time::Instant,
) -> Result<ExecuteBody, ApiError> {
    let Some(slot) = state.kernels.get(id) else {
        return Err(ApiError::NotFound(
            KernelError::UnknownKernel(id.to_owned()).to_string(),
        ));
    };
    let _permit = admit(state, client, slot, arrived)?;
    let (timeout, request) = parse(state, id, headers, body).inspect_err(|_| {
        slot.calls
            .record_call("invalid_input", 0, arrived.elapsed());
    })?;
    let outcome = slot
        .pipeline
        .execute_outcome(
            Some(RequestDeadline {
                timeout,
                enqueued_at: Some(rustkernel_tokio::clock::to_core(arrived)),
            }),
            || run_on_pool(state, slot, request.clone()),
        )
        .await;
    let elapsed = arrived.elapsed();
    let attempts = outcome.attempts;
    let (label, result) = map_outcome(id, outcome, elapsed);
    if state.gpu.is_some() && matches!(&result, Ok(body) if body.backend == "cpu") {
        // The GPU path answered from the CPU: a fallback.
        slot.calls.record_fallback();
    }
    if label == "timeout" {
        state
            .metrics
            .deadline_exceeded
            .get_or_create(&super::metrics::KernelLabels {
                kernel: id.to_owned(),
            })
            .inc();
    }
    slot.calls.record_call(label, attempts, elapsed);
    result
}

/// Admission: not draining, within the client's rate and the service's concurrency. The
/// permit holds a concurrency slot until the answer.
fn admit(
    state: &AppState,
    client: SocketAddr,
    slot: &super::state::KernelSlot,
    arrived: tokio::time::Instant,
) -> Result<tokio::sync::OwnedSemaphorePermit, ApiError> {
    if state.draining.load(std::sync::atomic::Ordering::SeqCst) {
        return Err(ApiError::Draining);
    }
    if let Some(limiter) = &state.rate_limiter
        && let Err(not_until) = limiter.check_key(&client.ip())
    {
        slot.calls.record_call("shed", 0, arrived.elapsed());
        let wait = not_until.wait_time_from(governor::clock::Clock::now(
            &governor::clock::DefaultClock::default(),
        ));
        return Err(ApiError::Shed {
            reason: format!(
                "rate limit of {} requests per second exceeded",
                state.config.limits.per_client_rate
            ),
            retry_after: wait,
        });
    }
    state.concurrency.clone().try_acquire_owned().map_err(|_| {
        slot.calls.record_call("shed", 0, arrived.elapsed());
        ApiError::Shed {
            reason: format!(
                "{} kernel requests are in flight, the limit",
                state.config.limits.max_concurrency
            ),
            retry_after: Duration::from_secs(1),
        }
    })
}

/// The request's deadline header and its body, as a validated [`KernelRequest`].
fn parse(
    state: &AppState,
    id: &str,
    headers: &HeaderMap,
    body: Result<Bytes, BytesRejection>,
) -> Result<(Option<Duration>, Arc<KernelRequest>), ApiError> {
    let timeout = requested_timeout(headers)?;
    let format = body_format(headers)?;
    let body = body.map_err(|rejection| {
        if rejection.status() == StatusCode::PAYLOAD_TOO_LARGE {
            ApiError::PayloadTooLarge(state.config.body_limit)
        } else {
            ApiError::BadRequest(rejection.body_text())
        }
    })?;
    let parsed = match format {
        BodyFormat::Json => kernels::parse_request(id, &body),
        BodyFormat::Binary => kernels::parse_request_binary(id, &body),
    };
    // The request owns its copy; the body's buffer need not live through the run.
    drop(body);
    let request = parsed.map_err(|error| ApiError::BadRequest(error.to_string()))?;
    Ok((timeout, Arc::new(request)))
}

/// The pipeline's outcome as the metrics label and the answer.
fn map_outcome(
    id: &str,
    outcome: rustkernel_tokio::resilience::Outcome<(KernelResponse, &'static str), KernelError>,
    elapsed: Duration,
) -> (&'static str, Result<ExecuteBody, ApiError>) {
    match outcome.result {
        Ok((result, backend)) => (
            "success",
            Ok(ExecuteBody {
                kernel: id.to_owned(),
                backend: backend.to_owned(),
                attempts: outcome.attempts,
                elapsed_ms: (elapsed.as_secs_f64() * 1_000_000.0).round() / 1000.0,
                result,
            }),
        ),
        Err(ResilienceError::CircuitOpen) => (
            "rejected",
            Err(ApiError::CircuitOpen {
                kernel: id.to_owned(),
                retry_after: outcome.retry_after.unwrap_or(Duration::from_secs(1)),
            }),
        ),
        Err(ResilienceError::DeadlineExceeded | ResilienceError::Timeout) => (
            "timeout",
            Err(ApiError::DeadlineExceeded(format!(
                "{id} did not finish within its deadline ({} attempts)",
                outcome.attempts
            ))),
        ),
        Err(ResilienceError::Operation(error)) => match error {
            KernelError::InvalidInput(_)
            | KernelError::BadRequest(_)
            | KernelError::UnknownKernel(_) => (
                "invalid_input",
                Err(ApiError::BadRequest(error.to_string())),
            ),
            KernelError::Cancelled => (
                "timeout",
                Err(ApiError::DeadlineExceeded(error.to_string())),
            ),
            KernelError::Failed(_) if outcome.gave_up == Some(GiveUpReason::BudgetExhausted) => (
                "shed",
                Err(ApiError::Shed {
                    reason: format!("retry budget exhausted; last error: {error}"),
                    retry_after: Duration::from_secs(1),
                }),
            ),
            KernelError::Failed(_) => ("failed", Err(ApiError::KernelFailed(error.to_string()))),
        },
    }
}

/// One attempt: on the GPU worker when `[gpu]` is enabled (which fails over to the CPU by
/// itself); else the kernel (after its injected faults) on the blocking pool, or inline on the
/// async worker when it is tiny ([`INLINE_WORK_UNITS`]) and no fault is injected: the pool hop
/// (a blocking thread woken, the worker woken back) costs more than such a kernel. Returns the
/// result and where it ran.
async fn run_on_pool(
    state: &AppState,
    slot: &super::state::KernelSlot,
    request: Arc<KernelRequest>,
) -> Result<(KernelResponse, &'static str), ResilienceError<KernelError>> {
    if let Some(gpu) = &state.gpu {
        let remaining = rustkernel_tokio::deadline::current_deadline()
            .map_or(Duration::from_secs(3600), |deadline| deadline.remaining());
        return match gpu.execute((*request).clone(), remaining).await {
            Ok((response, backend)) => Ok((response, backend.as_str())),
            Err(crate::gpu::GpuError::DeadlineExceeded) => Err(ResilienceError::DeadlineExceeded),
            Err(
                crate::gpu::GpuError::InvalidInput(error) | crate::gpu::GpuError::Kernel(error),
            ) => Err(ResilienceError::Operation(error)),
            Err(crate::gpu::GpuError::Config(message)) => {
                Err(ResilienceError::Operation(KernelError::Failed(message)))
            }
        };
    }
    if slot.faults.is_none() && work_units(&request) <= INLINE_WORK_UNITS {
        if rustkernel_tokio::deadline::current_deadline().is_some_and(|d| d.is_expired()) {
            return Err(ResilienceError::DeadlineExceeded);
        }
        return kernels::run_cpu(&request, &|| false)
            .map(|response| (response, "cpu"))
            .map_err(ResilienceError::Operation);
    }
    let fault = slot.faults.as_ref().map(super::faults::FaultInjector::draw);
    state
        .pool
        .run(move |cancel| {
            if let Some(fault) = fault {
                if !fault.apply(&cancel) {
                    return Err(KernelError::Cancelled);
                }
                if fault.fail {
                    return Err(KernelError::Failed("injected fault".to_owned()));
                }
            }
            kernels::run_cpu(&request, &|| cancel.is_cancelled()).map(|response| (response, "cpu"))
        })
        .await
}

#[cfg(test)]
#[allow(clippy::unwrap_used, clippy::panic)] // tests fail loudly
mod tests {
    use std::future::Future;
    use std::pin::pin;
    use std::task::{Context, Poll, Waker};

    use super::*;
    use crate::config::{FaultConfig, Preset, ServiceConfig};
    use crate::kernels::KernelPool;

    fn pagerank(nodes: u32) -> Arc<KernelRequest> {
        let edges: Vec<[u32; 2]> = (0..nodes).map(|i| [i, (i + 1) % nodes]).collect();
        let body = serde_json::json!({ "num_nodes": nodes, "edges": edges }).to_string();
        Arc::new(kernels::parse_request(kernels::PAGERANK, body.as_bytes()).unwrap())
    }

    /// Polls `run_on_pool` once on a pool with no thread: only an inline run can finish.
    fn finishes_without_the_pool(state: &AppState, request: Arc<KernelRequest>) -> bool {
        let slot = state.kernels.get(kernels::PAGERANK).unwrap();
        let attempt = pin!(run_on_pool(state, slot, request));
        match attempt.poll(&mut Context::from_waker(Waker::noop())) {
            Poll::Ready(result) => {
                assert!(result.is_ok(), "{result:?}");
                true
            }
            Poll::Pending => false,
        }
    }

    #[test]
    fn content_types_pick_the_body_format() {
        let format = |value: Option<&'static str>| {
            let mut headers = HeaderMap::new();
            if let Some(value) = value {
                headers.insert(
                    header::CONTENT_TYPE,
                    axum::http::HeaderValue::from_static(value),
                );
            }
            body_format(&headers).map_err(|error| error.status())
        };
        assert_eq!(format(None), Ok(BodyFormat::Json));
        assert_eq!(format(Some("application/json")), Ok(BodyFormat::Json));
        assert_eq!(
            format(Some("Application/JSON; charset=utf-8")),
            Ok(BodyFormat::Json)
        );
        assert_eq!(
            format(Some(kernels::BINARY_CONTENT_TYPE)),
            Ok(BodyFormat::Binary)
        );
        assert_eq!(
            format(Some("application/vnd.rustkernel.kernel-input.v1 ; x=y")),
            Ok(BodyFormat::Binary)
        );
        // Text types (what `curl -d` sends) are read as JSON, as before the binary body.
        for text in ["text/plain", "application/x-www-form-urlencoded", ""] {
            assert_eq!(format(Some(text)), Ok(BodyFormat::Json), "{text}");
        }
        for other in [
            "application/octet-stream",
            "Application/Octet-Stream; x=1",
            "application/vnd.rustkernel.kernel-input.v2",
        ] {
            assert_eq!(
                format(Some(other)),
                Err(StatusCode::UNSUPPORTED_MEDIA_TYPE),
                "{other}"
            );
        }
    }

    #[tokio::test]
    async fn tiny_kernels_run_inline_and_the_rest_on_the_pool() {
        let mut state = AppState::new(
            ServiceConfig::preset(Preset::Production).unwrap(),
            Arc::new(KernelPool::new(1)),
            None,
        )
        .unwrap();
        state.pool = Arc::new(KernelPool::new(0));
        assert!(work_units(&pagerank(3)) <= INLINE_WORK_UNITS);
        assert!(finishes_without_the_pool(&state, pagerank(3)));
        assert!(work_units(&pagerank(1000)) > INLINE_WORK_UNITS);
        assert!(!finishes_without_the_pool(&state, pagerank(1000)));

        // Injected faults (latency, hangs) always run on the pool, never on a worker.
        let mut config = ServiceConfig::preset(Preset::Production).unwrap();
        config.faults.insert(
            kernels::PAGERANK.to_owned(),
            FaultConfig {
                error_rate: 0.0,
                latency: Duration::ZERO,
                hang_probability: 0.0,
                seed: 1,
            },
        );
        let mut state = AppState::new(config, Arc::new(KernelPool::new(1)), None).unwrap();
        state.pool = Arc::new(KernelPool::new(0));
        assert!(!finishes_without_the_pool(&state, pagerank(3)));
    }
}
