//! `POST /v1/kernels/{id}/execute` and the admin routes: parse, call, map the error. One error
//! type, [`ApiError`], holds every status code the service answers with.
//!
//! | Status | When |
//! |---|---|
//! | 200 | the kernel ran; the body has its result |
//! | 400 | malformed JSON or binary body, invalid UTF-8, invalid input values, a bad `X-Request-Timeout-Ms` |
//! | 401 | a protected route without a valid bearer token (`WWW-Authenticate: Bearer`) |
//! | 404 | unknown kernel or route |
//! | 413 | the body is over `server.body_limit_bytes` |
//! | 415 | a binary `Content-Type` the service cannot read (`application/octet-stream`, another `application/vnd.rustkernel.*` than [`kernels::BINARY_CONTENT_TYPE`]); every other type is read as JSON |
//! | 429 | the concurrency limit, the client's rate limit or the retry budget shed the request (`Retry-After`) |
//! | 500 | the kernel failed (after retries) |
//! | 503 | the kernel's circuit breaker is open (`Retry-After`), or the service is draining |
//! | 504 | the request's deadline passed |

use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;

use axum::Json;
use axum::body::Bytes;
use axum::extract::rejection::BytesRejection;
use axum::extract::{ConnectInfo, Path, State};
use axum::http::{HeaderMap, HeaderValue, StatusCode, header};
use axum::response::{IntoResponse, Response};
use rustkernel_core::resilience::{GiveUpReason, ResilienceError};
use rustkernel_tokio::resilience::RequestDeadline;
use serde::{Deserialize, Serialize};

use super::AppState;
use crate::config::AuthMode;
use crate::kernels::{
    self, INLINE_WORK_UNITS, KernelError, KernelRequest, KernelResponse, work_units,
};

/// The header that carries a request's deadline, in milliseconds (clamped by `max_timeout`).
pub const TIMEOUT_HEADER: &str = "x-request-timeout-ms";

/// Every error the service answers with, and its status code.
#[derive(Debug)]
pub enum ApiError {
    /// 400.
    BadRequest(String),
    /// 401, with no detail.
    Unauthorized,
    /// 404.
    NotFound(String),
    /// 413.
    PayloadTooLarge(usize),
    /// 415: a body in a format the service does not read.
    UnsupportedMediaType(String),
    /// 429 with `Retry-After`.
    Shed {
        /// Why.
        reason: String,
        /// When to come back.
        retry_after: Duration,
    },
    /// 500: the kernel failed.
    KernelFailed(String),
    /// 500: the service itself failed.
    Internal(String),
    /// 503 with `Retry-After`: the breaker is open.
    CircuitOpen {
        /// The kernel.
        kernel: String,
        /// When to come back.
        retry_after: Duration,
    },
    /// 503: draining.
    Draining,
    /// 504.
    DeadlineExceeded(String),
}

/// The JSON body of an error.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct ErrorBody {
    /// A stable code: `bad_request`, `unauthorized`, `not_found`, `payload_too_large`,
    /// `unsupported_media_type`, `shed`, `kernel_failed`, `internal`, `circuit_open`,
    /// `draining`, `deadline_exceeded`.
    pub error: String,
    /// A human message.
    pub message: String,
}

impl ApiError {
    fn parts(&self) -> (StatusCode, &'static str, String) {
        match self {
            ApiError::BadRequest(message) => {
                (StatusCode::BAD_REQUEST, "bad_request", message.clone())
            }
            ApiError::Unauthorized => (
                StatusCode::UNAUTHORIZED,
                "unauthorized",
                "unauthorized".to_owned(),
            ),
            ApiError::NotFound(message) => (StatusCode::NOT_FOUND, "not_found", message.clone()),
            ApiError::PayloadTooLarge(limit) => (
                StatusCode::PAYLOAD_TOO_LARGE,
                "payload_too_large",
                format!("the body is over the limit of {limit} bytes"),
            ),
            ApiError::UnsupportedMediaType(message) => (
                StatusCode::UNSUPPORTED_MEDIA_TYPE,
                "unsupported_media_type",
                message.clone(),
            ),
            ApiError::Shed { reason, .. } => {
                (StatusCode::TOO_MANY_REQUESTS, "shed", reason.clone())
            }
            ApiError::KernelFailed(message) => (
                StatusCode::INTERNAL_SERVER_ERROR,
                "kernel_failed",
                message.clone(),
            ),
            ApiError::Internal(message) => (
                StatusCode::INTERNAL_SERVER_ERROR,
                "internal",
                message.clone(),
            ),
            ApiError::CircuitOpen { kernel, .. } => (
                StatusCode::SERVICE_UNAVAILABLE,
                "circuit_open",
                format!("the circuit breaker of {kernel} is open"),
            ),
            ApiError::Draining => (
                StatusCode::SERVICE_UNAVAILABLE,
                "draining",
                "the service is shutting down".to_owned(),
            ),
            ApiError::DeadlineExceeded(message) => (
                StatusCode::GATEWAY_TIMEOUT,
                "deadline_exceeded",
                message.clone(),
            ),
        }
    }

    /// The status code.
    #[must_use]
    pub fn status(&self) -> StatusCode {
        self.parts().0
    }
}

/// `Retry-After` in whole seconds, at least 1.
fn retry_after_value(wait: Duration) -> HeaderValue {
    let secs = if wait == Duration::MAX {
        3600
    } else {
        wait.as_secs() + u64::from(wait.subsec_nanos() > 0)
    };
    HeaderValue::from(secs.max(1))
}

impl IntoResponse for ApiError {
    fn into_response(self) -> Response {
        let (status, code, message) = self.parts();
        let mut response = (
            status,
            Json(ErrorBody {
                error: code.to_owned(),
                message,
            }),
        )
            .into_response();
        let headers = response.headers_mut();
        match &self {
            ApiError::Unauthorized => {
                headers.insert(
                    header::WWW_AUTHENTICATE,
                    HeaderValue::from_static("Bearer realm=\"rustkernel\""),
                );
            }
            ApiError::Shed { retry_after, .. } | ApiError::CircuitOpen { retry_after, .. } => {
                headers.insert(header::RETRY_AFTER, retry_after_value(*retry_after));
            }
            _ => {}
        }
        response
    }
}

/// Checks the bearer token when the service requires one.
pub(crate) fn check_token(state: &AppState, headers: &HeaderMap) -> Result<(), ApiError> {
    let auth = &state.config.auth;
    if auth.mode == AuthMode::None {
        return Ok(());
    }
    let presented = headers
        .get(header::AUTHORIZATION)
        .map(HeaderValue::as_bytes);
    if super::auth::authorized(presented, &auth.tokens) {
        Ok(())
    } else {
        Err(ApiError::Unauthorized)
    }
}

/// Checks the token on the health routes when `auth.protect_health` is set.
pub(crate) fn check_health_auth(state: &AppState, headers: &HeaderMap) -> Result<(), ApiError> {
    if state.config.auth.protect_health {
        check_token(state, headers)
    } else {
        Ok(())
    }
}

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

/// Splits `graph/pagerank/execute` into the kernel id and the action.
fn split_action(path: &str) -> Option<(&str, &str)> {
    let (id, action) = path.rsplit_once('/')?;
    (!id.is_empty()).then_some((id, action))
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

/// `POST /v1/kernels/{id}/execute`.
pub(super) async fn execute(
    State(state): State<Arc<AppState>>,
    ConnectInfo(client): ConnectInfo<SocketAddr>,
    Path(path): Path<String>,
    headers: HeaderMap,
    body: Result<Bytes, BytesRejection>,
) -> Response {
    let arrived = tokio::time::Instant::now();
    let result = run(&state, client, &path, &headers, body, arrived).await;
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

async fn run(
    state: &AppState,
    client: SocketAddr,
    path: &str,
    headers: &HeaderMap,
    body: Result<Bytes, BytesRejection>,
    arrived: tokio::time::Instant,
) -> Result<ExecuteBody, ApiError> {
    check_token(state, headers)?;
    let Some((id, "execute")) = split_action(path) else {
        return Err(ApiError::NotFound(format!(
            "no route POST /v1/kernels/{path}"
        )));
    };
    let Some(slot) = state.kernels.get(id) else {
        return Err(ApiError::NotFound(
            KernelError::UnknownKernel(id.to_owned()).to_string(),
        ));
    };
    if state.draining.load(std::sync::atomic::Ordering::SeqCst) {
        return Err(ApiError::Draining);
    }
    if let Some(limiter) = &state.rate_limiter
        && let Err(not_until) = limiter.check_key(&client.ip())
    {
        state.metrics.record_call(id, "shed", arrived.elapsed());
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
    let Ok(_permit) = state.concurrency.clone().try_acquire_owned() else {
        state.metrics.record_call(id, "shed", arrived.elapsed());
        return Err(ApiError::Shed {
            reason: format!(
                "{} kernel requests are in flight, the limit",
                state.config.limits.max_concurrency
            ),
            retry_after: Duration::from_secs(1),
        });
    };
    let timeout = requested_timeout(headers)?;
    let format = body_format(headers).inspect_err(|_| {
        state
            .metrics
            .record_call(id, "invalid_input", arrived.elapsed());
    })?;
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
    drop(body); // the request owns its copy; the body's buffer need not live through the run
    let request = match parsed {
        Ok(request) => Arc::new(request),
        Err(error) => {
            state
                .metrics
                .record_call(id, "invalid_input", arrived.elapsed());
            return Err(ApiError::BadRequest(error.to_string()));
        }
    };

    let outcome = slot
        .pipeline
        .execute_outcome(
            Some(RequestDeadline {
                timeout,
                enqueued_at: Some(arrived),
            }),
            || run_on_pool(state, slot, request.clone()),
        )
        .await;
    let elapsed = arrived.elapsed();
    if outcome.attempts > 1 {
        state
            .metrics
            .retries
            .get_or_create(&super::metrics::KernelLabels {
                kernel: id.to_owned(),
            })
            .inc_by(u64::from(outcome.attempts - 1));
    }
    let (label, result) = match outcome.result {
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
        Err(ResilienceError::DeadlineExceeded | ResilienceError::Timeout) => {
            state
                .metrics
                .deadline_exceeded
                .get_or_create(&super::metrics::KernelLabels {
                    kernel: id.to_owned(),
                })
                .inc();
            (
                "timeout",
                Err(ApiError::DeadlineExceeded(format!(
                    "{id} did not finish within its deadline ({} attempts)",
                    outcome.attempts
                ))),
            )
        }
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
    };
    state.metrics.record_call(id, label, elapsed);
    result
}

/// One attempt: on the GPU worker when `[gpu]` is enabled (which fails over to the CPU by
/// itself); else the kernel (after its injected faults) on the blocking pool, or inline on the
/// async worker when it is tiny ([`INLINE_WORK_UNITS`]) and no fault is injected: the pool hop
/// (a blocking thread woken, the worker woken back) costs more than such a kernel. Returns the
/// result and where it ran.
async fn run_on_pool(
    state: &AppState,
    slot: &super::KernelSlot,
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

/// `POST /v1/admin/kernels/{id}/force-open` and `.../reset`: operator controls of a kernel's
/// breaker. Always needs a token when the service has tokens.
pub(super) async fn admin(
    State(state): State<Arc<AppState>>,
    Path(path): Path<String>,
    headers: HeaderMap,
) -> Response {
    let result = (|| {
        check_token(&state, &headers)?;
        let Some((id, action)) = split_action(&path) else {
            return Err(ApiError::NotFound(format!(
                "no route POST /v1/admin/kernels/{path}"
            )));
        };
        let Some(breaker) = state
            .kernels
            .get(id)
            .and_then(|slot| slot.pipeline.breaker())
        else {
            return Err(ApiError::NotFound(
                KernelError::UnknownKernel(id.to_owned()).to_string(),
            ));
        };
        match action {
            "force-open" => {
                breaker.force_open();
            }
            "reset" => {
                breaker.reset();
            }
            "metrics-only" => {
                breaker.metrics_only();
            }
            other => return Err(ApiError::NotFound(format!("no admin action {other:?}"))),
        }
        tracing::warn!(kernel = id, action, "operator changed a circuit breaker");
        Ok(serde_json::json!({
            "kernel": id,
            "breaker": breaker.state().label(),
        }))
    })();
    match result {
        Ok(body) => (StatusCode::OK, Json(body)).into_response(),
        Err(error) => error.into_response(),
    }
}

/// Any other route: 404 with a JSON body.
pub(super) async fn not_found(uri: axum::http::Uri) -> Response {
    ApiError::NotFound(format!("no route {}", uri.path())).into_response()
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
                headers.insert(header::CONTENT_TYPE, HeaderValue::from_static(value));
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
