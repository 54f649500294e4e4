//! An axum service whose routes call a flaky dependency, guarded in the three ways the adapter
//! offers, with health routes and Prometheus metrics:
//!
//! 1. `/v1/handler/{n}`: the handler runs a [`Pipeline`] itself and answers its error with
//!    [`HttpError`] (`503` with `Retry-After` when the breaker refuses, `504` on a deadline).
//! 2. `/v1/layer/{n}`: an [`HttpPipelineLayer`] runs the route under a pipeline; 5xx answers
//!    count as failures and are retried.
//! 3. `/v1/breaker/{n}`: an [`HttpBreakerLayer`] with the HTTP classifier: the breaker alone,
//!    here by failure rate over the last 20 calls, deciding its half-open cycles by rate.
//!
//! Plus `/health/live`, `/health/ready`, `/health/startup`, `/health` (each breaker mirrored as
//! a component) and `/metrics`. It serves on 127.0.0.1 on a port the system picks, drives
//! itself with an HTTP client (healthy calls, then the dependency failing until every breaker
//! opens, then recovery), checks what it sees, and exits 0.
//!
//! ```text
//! cargo run -p rustkernel-tokio --features axum --example axum_service
//! ```

use std::error::Error;
use std::fmt;
use std::net::SocketAddr;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::Duration;

use axum::Router;
use axum::extract::{Path, State};
use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use axum::routing::get;
use prometheus_client::encoding::text::encode;
use prometheus_client::registry::Registry;
use rustkernel_tokio::axum::{HttpBreakerLayer, HttpError, HttpPipelineLayer, health_router};
use rustkernel_tokio::health::ComponentOptions;
use rustkernel_tokio::metrics::ResilienceCollector;
use rustkernel_tokio::resilience::{
    BackoffStrategy, CircuitBreaker, CircuitBreakerConfig, CircuitState, Classify, CountWindow,
    ErrorKind, HealthProbe, HealthProbeConfig, Pipeline, Retrier, RetryConfig, TimeoutConfig,
};

/// The dependency: squares a number, or fails while `failing` is set.
#[derive(Debug, Default)]
struct Kernel {
    failing: AtomicBool,
}

#[derive(Debug)]
struct KernelError;

impl fmt::Display for KernelError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("kernel fault")
    }
}

impl Error for KernelError {}

/// Every kernel fault is transient (retried, counted by the breaker).
impl Classify for KernelError {}

impl IntoResponse for KernelError {
    fn into_response(self) -> Response {
        (StatusCode::INTERNAL_SERVER_ERROR, self.to_string()).into_response()
    }
}

impl Kernel {
    async fn square(&self, n: u64) -> Result<u64, KernelError> {
        tokio::time::sleep(Duration::from_millis(1)).await;
        if self.failing.load(Ordering::SeqCst) {
            Err(KernelError)
        } else {
            Ok(n * n)
        }
    }
}

#[derive(Clone)]
struct App {
    kernel: Arc<Kernel>,
    pipeline: Pipeline,
}

/// Consecutive failures; open for 200 ms so the example sees the recovery.
fn consecutive_breaker(name: &str) -> CircuitBreaker {
    CircuitBreaker::builder(CircuitBreakerConfig {
        failure_threshold: 5,
        success_threshold: 1,
        timeout: Duration::from_millis(200),
        ..CircuitBreakerConfig::DEFAULT
    })
    .name(name)
    .build()
}

/// A 1 s total deadline, three attempts 10 ms apart, `breaker` asked before each.
fn pipeline(breaker: &CircuitBreaker) -> Pipeline {
    Pipeline::builder()
        .timeout(TimeoutConfig {
            default_timeout: Duration::from_secs(1),
            max_timeout: Duration::from_secs(5),
            propagate_deadline: true,
            include_queue_time: false,
        })
        .retry(Retrier::new(RetryConfig {
            max_attempts: 3,
            backoff: BackoffStrategy::Fixed {
                delay: Duration::from_millis(10),
            },
            retryable_errors: [ErrorKind::Transient, ErrorKind::Timeout].into(),
        }))
        .breaker(breaker.clone())
        .build()
}

/// Style 1: the pipeline in the handler; its error is the response.
async fn handler_style(
    State(app): State<App>,
    Path(n): Path<u64>,
) -> Result<String, HttpError<KernelError>> {
    let kernel = Arc::clone(&app.kernel);
    let squared = app
        .pipeline
        .execute_outcome(None, || {
            let kernel = Arc::clone(&kernel);
            async move { kernel.square(n).await }
        })
        .await
        .into_http()?;
    Ok(squared.to_string())
}

/// Styles 2 and 3: a plain handler; the layer around it does the rest.
async fn plain(State(app): State<App>, Path(n): Path<u64>) -> Result<String, KernelError> {
    app.kernel
        .square(n)
        .await
        .map(|squared| squared.to_string())
}

#[tokio::main]
async fn main() -> Result<(), Box<dyn Error>> {
    tokio::time::timeout(Duration::from_secs(8), run())
        .await
        .map_err(|_| "the example took more than 8 s")?
}

async fn run() -> Result<(), Box<dyn Error>> {
    let kernel = Arc::new(Kernel::default());

    let handler_breaker = consecutive_breaker("kernel/handler");
    let layer_breaker = consecutive_breaker("kernel/layer");
    let rate_breaker = CircuitBreaker::builder(CircuitBreakerConfig {
        failure_rate_threshold: Some(0.5),
        minimum_calls: 10,
        timeout: Duration::from_millis(200),
        // Half-open: 4 probes, decided on their failure rate (at most 1 of 4 may fail).
        half_open_max_calls: 4,
        half_open_permitted_calls: Some(4),
        ..CircuitBreakerConfig::DEFAULT
    })
    .name("kernel/breaker")
    .window(CountWindow::<20>::new())
    .build();

    // Health: each breaker a component, pushed on every transition.
    let probe = HealthProbe::new(HealthProbeConfig::default());
    let mut mirrors = Vec::new();
    for (name, breaker) in [
        ("kernel/handler", &handler_breaker),
        ("kernel/layer", &layer_breaker),
    ] {
        mirrors.push(probe.mirror_breaker(name, breaker.clone(), ComponentOptions::default())?);
    }
    mirrors.push(probe.mirror_breaker(
        "kernel/breaker",
        rate_breaker.clone(),
        ComponentOptions::default(),
    )?);
    let runner = probe.spawn();

    // Metrics: the breakers and the health, read at each scrape.
    let mut registry = Registry::default();
    registry.register_collector(Box::new(
        ResilienceCollector::new()
            .with_breaker("kernel/handler", handler_breaker.clone())
            .with_breaker("kernel/layer", layer_breaker.clone())
            .with_breaker("kernel/breaker", rate_breaker.clone())
            .with_health(probe.clone()),
    ));
    let registry = Arc::new(registry);

    let app = App {
        kernel: Arc::clone(&kernel),
        pipeline: pipeline(&handler_breaker),
    };
    let router = Router::new()
        .route("/v1/handler/{n}", get(handler_style))
        .merge(
            Router::new()
                .route("/v1/layer/{n}", get(plain))
                .route_layer(HttpPipelineLayer::new(pipeline(&layer_breaker))),
        )
        .merge(
            Router::new()
                .route("/v1/breaker/{n}", get(plain))
                .route_layer(HttpBreakerLayer::new(rate_breaker.clone())),
        )
        .route(
            "/metrics",
            get(move || {
                let registry = Arc::clone(&registry);
                async move {
                    let mut text = String::new();
                    match encode(&mut text, &registry) {
                        Ok(()) => (StatusCode::OK, text),
                        Err(error) => (StatusCode::INTERNAL_SERVER_ERROR, error.to_string()),
                    }
                }
            }),
        )
        .with_state(app)
        .merge(health_router(probe.clone()));

    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await?;
    let address = listener.local_addr()?;
    let (stop, stopped) = tokio::sync::oneshot::channel::<()>();
    let server = tokio::spawn(async move {
        axum::serve(listener, router)
            .with_graceful_shutdown(async {
                let _ = stopped.await;
            })
            .await
    });
    println!("serving on http://{address}");

    let client = reqwest::Client::new();
    let routes = ["handler", "layer", "breaker"];

    // Healthy: every style answers.
    for route in routes {
        let (status, body) = get_text(&client, address, &format!("/v1/{route}/12")).await?;
        println!("GET /v1/{route}/12 -> {status} {body}");
        check(status == 200 && body == "144", "a healthy call answers 144")?;
    }
    let status = status_within(&client, address, "/health/ready", 200).await?;
    check(status == 200, "ready while every breaker is closed")?;

    // The dependency fails: each route answers 500 until its breaker opens, then 503.
    kernel.failing.store(true, Ordering::SeqCst);
    for route in routes {
        let mut statuses = Vec::new();
        let mut retry_after = None;
        for _ in 0..30 {
            let response = client
                .get(format!("http://{address}/v1/{route}/3"))
                .send()
                .await?;
            statuses.push(response.status().as_u16());
            if response.status() == 503 {
                retry_after = response
                    .headers()
                    .get("retry-after")
                    .map(|value| value.to_str().map(str::to_owned))
                    .transpose()?;
                break;
            }
        }
        println!("GET /v1/{route}/3 while failing -> {statuses:?}, Retry-After {retry_after:?}");
        check(
            statuses.last() == Some(&503) && retry_after.is_some(),
            "the breaker opens and answers 503 with Retry-After",
        )?;
    }
    for breaker in [&handler_breaker, &layer_breaker] {
        check(breaker.state() == CircuitState::Open, "open")?;
    }
    check(rate_breaker.state() == CircuitState::Open, "open")?;

    // Each mirror pushes its breaker's transitions as they happen, from a task of its own.
    let status = status_within(&client, address, "/health", 503).await?;
    let (_, health) = get_text(&client, address, "/health").await?;
    println!("GET /health -> {status}\n{health}");
    check(status == 503, "unhealthy while the breakers are open")?;
    let (_, metrics) = get_text(&client, address, "/metrics").await?;
    let open = CircuitState::Open.metric_value();
    for name in ["kernel/handler", "kernel/layer", "kernel/breaker"] {
        let line = format!("rustkernel_circuit_breaker_state{{breaker=\"{name}\"}} {open}");
        check(
            metrics.contains(&line),
            "the metrics show each breaker open",
        )?;
        println!("{line}");
    }

    // Recovery: the dependency heals; after the open time, probes close every breaker.
    kernel.failing.store(false, Ordering::SeqCst);
    tokio::time::sleep(Duration::from_millis(250)).await;
    for route in routes {
        let mut statuses = Vec::new();
        for _ in 0..4 {
            let (status, _) = get_text(&client, address, &format!("/v1/{route}/5")).await?;
            statuses.push(status);
        }
        println!("GET /v1/{route}/5 after recovery -> {statuses:?}");
        check(statuses.iter().all(|&s| s == 200), "probes pass")?;
    }
    check(rate_breaker.state() == CircuitState::Closed, "closed again")?;
    let status = status_within(&client, address, "/health/ready", 200).await?;
    check(status == 200, "ready again")?;

    let _ = stop.send(());
    server.await??;
    runner.stop();
    for mirror in mirrors {
        mirror.abort();
    }
    println!("ok");
    Ok(())
}

async fn get_text(
    client: &reqwest::Client,
    address: SocketAddr,
    path: &str,
) -> Result<(u16, String), reqwest::Error> {
    let response = client.get(format!("http://{address}{path}")).send().await?;
    let status = response.status().as_u16();
    Ok((status, response.text().await?))
}

/// The status of `path` once it is `wanted`, or the last one after 2 s.
async fn status_within(
    client: &reqwest::Client,
    address: SocketAddr,
    path: &str,
    wanted: u16,
) -> Result<u16, reqwest::Error> {
    let mut status = 0;
    for _ in 0..100 {
        status = get_text(client, address, path).await?.0;
        if status == wanted {
            break;
        }
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    Ok(status)
}

fn check(holds: bool, what: &str) -> Result<(), Box<dyn Error>> {
    if holds {
        Ok(())
    } else {
        Err(format!("expected: {what}").into())
    }
}
