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
//! | `GET /`, `GET /status` | the status page: kernels, breakers, GPU worker, edge devices, readiness, updated live (see [`status`]) |
//! | `GET /status.json` | what the page shows: `/health`'s body and each kernel's calls and latency |
//! | `POST /v1/kernels/{family}/{name}/execute` | runs a kernel (`graph/pagerank`) through its pipeline on the blocking pool |
//! | `POST /v1/admin/kernels/{family}/{name}/{force-open,reset,metrics-only}` | operator controls of a kernel's breaker |
//! | `POST /v1/jobs`, `GET /v1/jobs`, `GET`/`DELETE /v1/jobs/{id}` | long-running kernels as jobs (see [`jobs`]) |
//!
//! Health answers are 200 or 503 with a small JSON body naming the reason. Kernel errors map
//! to one status each in [`error::ApiError`].
//!
//! # Rooms
//! | File | What it holds |
//! |---|---|
//! | `mod.rs` | start, the routes and their layers, shutdown |
//! | [`state`] | [`AppState`]: what the handlers share, private, read through methods |
//! | [`error`] | [`ApiError`](error::ApiError), the one error type, and its status codes |
//! | [`auth`] | bearer tokens, as route layers |
//! | `body_limit.rs` | 413 for a declared body over the limit, before it is read |
//! | [`execute`] | the execute handler: parse, admit, call the pipeline, map the outcome |
//! | `admin.rs` | operators' breaker controls |
//! | [`jobs`] | the jobs routes: parse, call the [`JobRunner`](crate::jobs::JobRunner), map |
//! | [`health`] | the health components and the probe routes, from the registry |
//! | [`status`] | the status page and its JSON |
//! | [`metrics`] | the metric families and `/metrics` |
//! | [`runtime`] | the `runtime` component |
//! | [`faults`] | seeded fault injection for rehearsals |

mod admin;
pub mod auth;
mod body_limit;
pub mod error;
pub mod execute;
pub mod faults;
pub mod health;
pub mod jobs;
pub mod metrics;
pub mod runtime;
pub mod state;
pub mod status;

pub use state::AppState;

use std::fmt;
use std::net::SocketAddr;
use std::sync::Arc;
use std::sync::atomic::Ordering;
use std::time::Duration;

use axum::Router;
use axum::extract::{DefaultBodyLimit, State};
use axum::routing::{get, post};
use rustkernel_tokio::resilience::HealthRunner;
use tokio::net::TcpListener;
use tokio::sync::watch;
use tokio::task::JoinHandle;

use crate::config::{AuthMode, ServiceConfig};
use crate::kernels::KernelPool;

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

/// The routes, each group behind its token rule, the body limits around them all.
fn router(state: &Arc<AppState>, body_limit: usize) -> Router {
    use axum::middleware::from_fn_with_state;
    let mut health = Router::new()
        .route("/health/live", get(health::live))
        .route("/health/ready", get(health::ready))
        .route("/health/startup", get(health::startup))
        .route("/health", get(health::full))
        .route("/", get(status::page))
        .route("/status", get(status::page))
        .route("/status.json", get(status::json));
    let mut metrics = Router::new().route(
        "/metrics",
        get(
            |State(state): State<Arc<AppState>>| async move { metrics::exposition(&state.metrics) },
        ),
    );
    let mut kernels = Router::new()
        .route(
            "/v1/kernels/{family}/{name}/execute",
            post(execute::execute),
        )
        .route(
            "/v1/admin/kernels/{family}/{name}/{action}",
            post(admin::admin),
        )
        .route("/v1/jobs", post(jobs::submit).get(jobs::list))
        .route("/v1/jobs/{id}", get(jobs::status).delete(jobs::cancel));
    // A guard's layer only where its routes need a token (the configuration is fixed).
    let needs = |guard| auth::required(&state.config.auth, guard);
    if needs(auth::Guard::Health) {
        health = health.route_layer(from_fn_with_state(state.clone(), auth::health));
    }
    if needs(auth::Guard::Metrics) {
        metrics = metrics.route_layer(from_fn_with_state(state.clone(), auth::metrics));
    }
    if needs(auth::Guard::Kernels) {
        kernels = kernels.route_layer(from_fn_with_state(state.clone(), auth::kernels));
    }
    // Only these routes read a body: an oversized one is refused before the token check.
    let kernels = kernels.route_layer(from_fn_with_state(
        body_limit,
        body_limit::refuse_declared_oversize,
    ));
    Router::new()
        .merge(health)
        .merge(metrics)
        .merge(kernels)
        .fallback(error::not_found)
        .layer(DefaultBodyLimit::max(body_limit))
        .with_state(state.clone())
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
    start_with(config, listener, Seams::default()).await
}

/// Where the service meets the world outside its own code, for a deterministic simulation to
/// replace: how GPU workers are reached and where the GPU path's CPU runs go. The default is
/// production's: worker processes over pipes ([`PipeTransport`](crate::gpu::PipeTransport))
/// and the service's own blocking pool.
#[derive(Clone, Default)]
pub struct Seams {
    /// How GPU workers are started and reached; `None`: worker processes over pipes.
    pub worker_transport: Option<Arc<dyn crate::gpu::WorkerTransport>>,
    /// Where the GPU path runs kernels on the CPU; `None`: the service's blocking pool.
    pub cpu: Option<Arc<dyn crate::kernels::CpuRunner>>,
}

impl fmt::Debug for Seams {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Seams")
            .field("worker_transport", &self.worker_transport.is_some())
            .field("cpu", &self.cpu.is_some())
            .finish()
    }
}

/// [`start_on`] on any listener axum serves (a simulation's in-memory one) and with the
/// [`Seams`] given.
///
/// # Errors
/// [`ServeError`] when the listener has no address or the configuration cannot be used.
pub async fn start_with<L>(
    config: ServiceConfig,
    listener: L,
    seams: Seams,
) -> Result<RunningService, ServeError>
where
    L: axum::serve::Listener<Addr = SocketAddr>,
{
    use axum::serve::ListenerExt;
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
            let transport = seams
                .worker_transport
                .unwrap_or_else(|| Arc::new(crate::gpu::PipeTransport));
            let cpu = seams.cpu.unwrap_or_else(|| pool.clone());
            #[cfg(sim_mutant = "startup_waits_for_worker")]
            let startup_limit = gpu_config.startup_timeout + Duration::from_secs(1);
            let executor = crate::gpu::GpuExecutor::start_with(gpu_config, transport, cpu)
                .await
                .map_err(|error| ServeError::Config(format!("gpu: {error}")))?;
            tracing::info!(health = %executor.health(), "GPU executor started");
            #[cfg(sim_mutant = "startup_waits_for_worker")]
            {
                // Mutant (issue 19's second bug, for the simulation to catch): the service
                // does not serve until the first worker's start-up is over.
                executor
                    .wait_for(startup_limit, |s| {
                        !matches!(s.phase, crate::gpu::WorkerPhase::Starting)
                    })
                    .await;
            }
            Some(Arc::new(executor))
        }
        None => None,
    };
    let state = Arc::new(AppState::new(config, pool, gpu)?);
    let mut background = health::register_components(&state);
    background.push(tokio::spawn(state.runtime.clone().heartbeat()));
    background.push(tokio::spawn(health::watch_breakers(state.clone())));
    background.push(tokio::spawn(health::watch_gpu(state.clone())));
    let runner = state.probe.spawn();
    background.push(tokio::spawn(health::finish_startup(state.clone())));
    background.extend(start_telemetry(&state).await?);
    background.push(tokio::spawn(prune_rate_limiter(state.clone())));
    if let Some(jobs) = &state.jobs {
        background.push(jobs.start());
    }

    let router = router(&state, body_limit);

    let (shutdown, mut signal) = watch::channel(false);
    let server_state = state.clone();
    let server = tokio::spawn(async move {
        let mut drain_signal = signal.clone();
        // `tap_io` (which does nothing to a connection) gives every listener type the
        // client's address as connect info, as `TcpListener` has it.
        let serve = axum::serve(
            listener.tap_io(|_| {}),
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

    /// Whether start-up is over, as `/health/startup` answers it (from the health registry).
    #[must_use]
    pub fn is_started(&self) -> bool {
        health::started(&self.state.probe.report())
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
        if let Some(jobs) = &self.state.jobs {
            // Each running job writes a checkpoint and stays running, for the next service.
            jobs.shutdown(self.state.config.drain_timeout).await;
        }
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
