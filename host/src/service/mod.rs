//! `rustkernel serve`: the kernel service on axum, as a library type that tests start
//! in-process.
//!
//! | Route | What it answers |
//! |---|---|
//! | `GET /health/live` | the registry's liveness: the runtime (never a dependency) |
//! | `GET /health/ready` | the registry's readiness: `runtime` and `service` (started, not draining, some kernel accepts work), kept current by background checks and pushed events |
//! | `GET /health/startup` | the registry's start-up: the first round of checks finished |
//! | `GET /health` | every component: status, message, latency, last check, breaker state |
//! | `GET /metrics` | Prometheus text (see [`metrics`]) |
//! | `POST /v1/kernels/{id}/execute` | runs a kernel through its pipeline on the blocking pool |
//! | `POST /v1/admin/kernels/{id}/force-open`, `.../reset`, `.../metrics-only` | operator controls of a kernel's breaker |
//!
//! Health answers are 200 or 503 with a small JSON body naming the reason. Kernel errors map
//! to one status each in [`execute::ApiError`].

pub(crate) mod auth;
mod body_limit;
pub mod execute;
pub mod faults;
pub mod health;
pub mod metrics;
pub mod runtime;

use std::collections::BTreeMap;
use std::fmt;
use std::net::{IpAddr, SocketAddr};
use std::num::NonZeroU32;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::Duration;

use axum::Router;
use axum::extract::DefaultBodyLimit;
use axum::routing::{get, post};
use governor::{DefaultKeyedRateLimiter, Quota, RateLimiter};
use rustkernel_core::resilience::PipelineConfig;
use rustkernel_tokio::resilience::{HealthProbe, HealthRunner, Pipeline};
use tokio::net::TcpListener;
use tokio::sync::{Semaphore, watch};
use tokio::task::JoinHandle;

use crate::config::{AuthMode, BreakerMode, KernelWindow, ServiceConfig};
use crate::kernels::KERNEL_IDS;
use crate::kernels::KernelPool;
use faults::FaultInjector;
use metrics::Metrics;
use runtime::RuntimeMonitor;

/// One kernel's pipeline (with its breaker) and fault injector.
#[derive(Debug)]
pub struct KernelSlot {
    /// The kernel id.
    pub id: &'static str,
    /// Deadline, retry, breaker and attempt timeout of this kernel.
    pub pipeline: Pipeline<KernelWindow>,
    /// Injected faults, when configured.
    pub faults: Option<FaultInjector>,
}

/// Everything the handlers share.
pub struct AppState {
    /// The configuration the service runs with.
    pub config: ServiceConfig,
    /// The kernels by id.
    pub kernels: BTreeMap<&'static str, KernelSlot>,
    /// The health probe and its components.
    pub probe: HealthProbe,
    /// The metric families.
    pub metrics: Metrics,
    /// The `runtime` component's figures.
    pub runtime: Arc<RuntimeMonitor>,
    /// The blocking pool that runs kernels.
    pub pool: Arc<KernelPool>,
    /// Kernel requests in flight (the global concurrency limit).
    pub concurrency: Arc<Semaphore>,
    /// Requests per second per client address.
    pub rate_limiter: Option<DefaultKeyedRateLimiter<IpAddr>>,
    /// Set when a shutdown began: readiness answers 503 at once.
    pub draining: AtomicBool,
    /// Set when the first round of checks finished.
    pub started: AtomicBool,
    /// The GPU worker and its CPU failover, when `[gpu]` is enabled.
    pub gpu: Option<crate::gpu::GpuExecutor>,
    /// GPU worker restarts already counted in the metrics.
    pub gpu_restarts_counted: std::sync::atomic::AtomicU64,
    /// The edge devices' ingested telemetry (`--telemetry`).
    pub edge: Arc<crate::telemetry::ingest::EdgeFleet>,
}

impl fmt::Debug for AppState {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("AppState")
            .field("config", &self.config)
            .field("kernels", &self.kernels.keys().collect::<Vec<_>>())
            .field("draining", &self.draining)
            .finish_non_exhaustive()
    }
}

/// Why the service could not start or stopped with an error.
#[derive(Debug)]
pub enum ServeError {
    /// The address could not be bound.
    Bind {
        /// The address.
        address: SocketAddr,
        /// Why.
        source: std::io::Error,
    },
    /// A configuration value the service could not use.
    Config(String),
    /// The server failed while running.
    Io(std::io::Error),
}

impl fmt::Display for ServeError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            ServeError::Bind { address, source } => {
                write!(f, "cannot listen on {address}: {source}")
            }
            ServeError::Config(message) => write!(f, "invalid configuration: {message}"),
            ServeError::Io(error) => write!(f, "server error: {error}"),
        }
    }
}

impl std::error::Error for ServeError {
    fn source(&self) -> Option<&(dyn std::error::Error + 'static)> {
        match self {
            ServeError::Bind { source, .. } => Some(source),
            ServeError::Io(error) => Some(error),
            ServeError::Config(_) => None,
        }
    }
}

/// A running service: its address, and the handle that shuts it down.
#[derive(Debug)]
pub struct RunningService {
    address: SocketAddr,
    state: Arc<AppState>,
    shutdown: watch::Sender<bool>,
    server: JoinHandle<Result<(), ServeError>>,
    background: Vec<JoinHandle<()>>,
    runner: Option<HealthRunner>,
}

impl AppState {
    fn new(
        config: ServiceConfig,
        pool: Arc<KernelPool>,
        gpu: Option<crate::gpu::GpuExecutor>,
    ) -> Result<Self, ServeError> {
        let runtime = Arc::new(RuntimeMonitor::new(config.runtime, pool.clone()));
        let probe = HealthProbe::try_new(config.resilience.health_check)
            .map_err(|error| ServeError::Config(error.to_string()))?;
        let mut kernels = BTreeMap::new();
        for id in KERNEL_IDS {
            let pipeline_config = PipelineConfig {
                attempt_timeout: config.attempt_timeout,
                ..PipelineConfig::from_resilience(&config.resilience)
            };
            let pipeline = Pipeline::try_with_window(pipeline_config, KernelWindow::new())
                .map_err(|error| ServeError::Config(error.to_string()))?;
            if config.breaker_mode == BreakerMode::MetricsOnly
                && let Some(breaker) = pipeline.breaker()
            {
                breaker.metrics_only();
            }
            kernels.insert(
                id,
                KernelSlot {
                    id,
                    pipeline,
                    faults: config.faults.get(id).copied().map(FaultInjector::new),
                },
            );
        }
        let rate_limiter = NonZeroU32::new(config.limits.per_client_rate).map(|rate| {
            let burst = NonZeroU32::new(config.limits.per_client_burst).unwrap_or(rate);
            RateLimiter::keyed(Quota::per_second(rate).allow_burst(burst))
        });
        let metrics = Metrics::new();
        let edge = crate::telemetry::ingest::EdgeFleet::new(
            config.telemetry.clone(),
            probe.clone(),
            metrics.edge.clone(),
        );
        // Every kernel's counters exist from the start at 0, so `rate()` and alerts see a
        // series before the first retry or timeout (a missing series reads as "no data").
        for id in kernels.keys() {
            metrics.init_kernel(id);
        }
        Ok(Self {
            concurrency: Arc::new(Semaphore::new(config.limits.max_concurrency)),
            config,
            kernels,
            probe,
            metrics,
            edge,
            runtime,
            pool,
            rate_limiter,
            draining: AtomicBool::new(false),
            started: AtomicBool::new(false),
            gpu,
            gpu_restarts_counted: std::sync::atomic::AtomicU64::new(0),
        })
    }
}

/// How often the per-client rate limiter forgets clients whose quota is full again.
pub const RATE_LIMIT_PRUNE_INTERVAL: Duration = Duration::from_secs(1);

/// Forgets, every [`RATE_LIMIT_PRUNE_INTERVAL`], the clients whose rate-limit state is back to
/// a full burst (they would be admitted as new ones anyway), so the per-client map does not
/// keep every address the service has ever seen.
async fn prune_rate_limiter(state: Arc<AppState>) {
    let Some(limiter) = state.rate_limiter.as_ref() else {
        return;
    };
    let mut tick = tokio::time::interval(RATE_LIMIT_PRUNE_INTERVAL);
    tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Skip);
    loop {
        tick.tick().await;
        limiter.retain_recent();
        limiter.shrink_to_fit();
    }
}

/// Starts the service on the configured address.
///
/// # Errors
/// [`ServeError::Bind`] when the address cannot be bound.
pub async fn start(config: ServiceConfig) -> Result<RunningService, ServeError> {
    let address = config.address;
    let listener = TcpListener::bind(address)
        .await
        .map_err(|source| ServeError::Bind { address, source })?;
    start_on(config, listener).await
}

/// Starts the service on `listener` (tests bind 127.0.0.1:0).
///
/// # Errors
/// [`ServeError`] when the listener has no address or the configuration cannot be used.
pub async fn start_on(
    config: ServiceConfig,
    listener: TcpListener,
) -> Result<RunningService, ServeError> {
    let address = listener.local_addr().map_err(ServeError::Io)?;
    let drain_timeout = config.drain_timeout;
    let body_limit = config.body_limit;
    match config.auth.mode {
        AuthMode::Token => tracing::info!(
            %address,
            source = config.auth.token_source.as_deref().unwrap_or("?"),
            "authentication: bearer tokens required on the execute and admin routes"
        ),
        AuthMode::None => tracing::info!(%address, "authentication: none"),
    }
    // One blocking pool for the service's kernels and the GPU path's CPU failovers.
    let pool = Arc::new(KernelPool::new(config.runtime.blocking_threads));
    let gpu = match config.gpu.clone() {
        Some(gpu_config) => {
            let executor = crate::gpu::GpuExecutor::start_with(
                gpu_config,
                Arc::new(crate::gpu::PipeTransport),
                pool.clone(),
            )
            .await
            .map_err(|error| ServeError::Config(format!("gpu: {error}")))?;
            tracing::info!(health = %executor.health(), "GPU executor started");
            Some(executor)
        }
        None => None,
    };
    let state = Arc::new(AppState::new(config, pool, gpu)?);
    health::register_components(&state);

    let mut background = Vec::new();
    background.push(tokio::spawn(state.runtime.clone().heartbeat()));
    background.push(tokio::spawn(health::watch_breakers(state.clone())));
    background.push(tokio::spawn(health::watch_gpu(state.clone())));
    let runner = state.probe.spawn();
    background.push(tokio::spawn(health::finish_startup(state.clone())));
    background.extend(start_telemetry(&state).await?);
    background.push(tokio::spawn(prune_rate_limiter(state.clone())));

    let router = Router::new()
        .route("/health/live", get(health::live))
        .route("/health/ready", get(health::ready))
        .route("/health/startup", get(health::startup))
        .route("/health", get(health::full))
        .route("/metrics", get(health::metrics))
        .route("/v1/kernels/{*path}", post(execute::execute))
        .route("/v1/admin/kernels/{*path}", post(execute::admin))
        .fallback(execute::not_found)
        .layer(DefaultBodyLimit::max(body_limit))
        .layer(axum::middleware::from_fn_with_state(
            body_limit,
            body_limit::refuse_declared_oversize,
        ))
        .with_state(state.clone());

    let (shutdown, mut signal) = watch::channel(false);
    let server_state = state.clone();
    let server = tokio::spawn(async move {
        let mut drain_signal = signal.clone();
        let serve = axum::serve(
            listener,
            router.into_make_service_with_connect_info::<SocketAddr>(),
        )
        .with_graceful_shutdown(async move {
            let _ = drain_signal.wait_for(|stop| *stop).await;
        });
        let serving = tokio::spawn(async move { serve.await });
        let mut serving = serving;
        tokio::select! {
            joined = &mut serving => return joined.map_err(|e| ServeError::Io(std::io::Error::other(e)))?.map_err(ServeError::Io),
            _ = signal.wait_for(|stop| *stop) => {}
        }
        server_state.draining.store(true, Ordering::SeqCst);
        health::push_service(&server_state);
        // In-flight requests get until the drain deadline; then the rest are dropped.
        match tokio::time::timeout(drain_timeout, &mut serving).await {
            Ok(joined) => joined
                .map_err(|e| ServeError::Io(std::io::Error::other(e)))?
                .map_err(ServeError::Io),
            Err(_) => {
                tracing::warn!(
                    ?drain_timeout,
                    "drain deadline passed; dropping in-flight requests"
                );
                serving.abort();
                Ok(())
            }
        }
    });
    Ok(RunningService {
        address,
        state,
        shutdown,
        server,
        background,
        runner: Some(runner),
    })
}

/// Starts the `--telemetry` sources; they read once startup finished.
async fn start_telemetry(state: &Arc<AppState>) -> Result<Vec<JoinHandle<()>>, ServeError> {
    let weak = Arc::downgrade(state);
    let started = async move {
        loop {
            match weak.upgrade() {
                Some(state) if state.started.load(Ordering::SeqCst) => return,
                Some(_) => {}
                None => std::future::pending::<()>().await,
            }
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
    };
    crate::telemetry::ingest::start(&state.edge, started)
        .await
        .map_err(|(source, error)| match source.kind {
            crate::telemetry::source::SourceKind::Tcp(address) => ServeError::Bind {
                address,
                source: error,
            },
            _ => ServeError::Io(error),
        })
}

impl RunningService {
    /// The address the service listens on.
    #[must_use]
    pub fn local_addr(&self) -> SocketAddr {
        self.address
    }

    /// The shared state (metrics, kernels, probe), for tests and the demo.
    #[must_use]
    pub fn state(&self) -> &Arc<AppState> {
        &self.state
    }

    /// Begins the shutdown: readiness turns 503 at once, new connections are refused,
    /// in-flight requests finish within the drain deadline.
    pub fn begin_shutdown(&self) {
        self.state.draining.store(true, Ordering::SeqCst);
        health::push_service(&self.state);
        let _ = self.shutdown.send(true);
    }

    /// Shuts down (as [`begin_shutdown`](Self::begin_shutdown)) and waits until the server
    /// stopped.
    ///
    /// # Errors
    /// The server's error, if it failed.
    pub async fn shutdown(mut self) -> Result<(), ServeError> {
        self.begin_shutdown();
        self.wait().await
    }

    /// Waits until the server stopped (after a shutdown began elsewhere).
    ///
    /// # Errors
    /// The server's error, if it failed.
    pub async fn wait(&mut self) -> Result<(), ServeError> {
        let result = match (&mut self.server).await {
            Ok(result) => result,
            Err(error) => Err(ServeError::Io(std::io::Error::other(error))),
        };
        if let Some(runner) = self.runner.take() {
            runner.stop();
        }
        for task in &self.background {
            task.abort();
        }
        result
    }

    /// A handle that begins the shutdown from another task (a signal handler).
    #[must_use]
    pub fn shutdown_handle(&self) -> ShutdownHandle {
        ShutdownHandle {
            state: self.state.clone(),
            shutdown: self.shutdown.clone(),
        }
    }
}

/// Begins a service's shutdown from anywhere.
#[derive(Clone, Debug)]
pub struct ShutdownHandle {
    state: Arc<AppState>,
    shutdown: watch::Sender<bool>,
}

impl ShutdownHandle {
    /// As [`RunningService::begin_shutdown`].
    pub fn begin(&self) {
        self.state.draining.store(true, Ordering::SeqCst);
        health::push_service(&self.state);
        let _ = self.shutdown.send(true);
    }
}

/// The drain deadline's default, for documentation.
pub const DEFAULT_DRAIN: Duration = Duration::from_secs(10);
