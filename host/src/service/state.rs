//! [`AppState`]: what the handlers share (the kernels and their pipelines, the health probe,
//! the metrics, the pools and limiters, the GPU path), built once from the config; private to
//! the service, read by users and tests through its methods.

use std::collections::BTreeMap;
use std::fmt;
use std::net::IpAddr;
use std::num::NonZeroU32;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};

use governor::{DefaultKeyedRateLimiter, Quota, RateLimiter};
use rustkernel_core::resilience::PipelineConfig;
use rustkernel_tokio::metrics::CallMetrics;
use rustkernel_tokio::resilience::{CircuitBreaker, HealthProbe, Pipeline};
use rustkernel_tokio::retry::SharedRetryBudget;
use tokio::sync::Semaphore;

use super::ServeError;
use super::faults::FaultInjector;
use super::metrics::Metrics;
use super::runtime::RuntimeMonitor;
use crate::config::{BreakerMode, KernelWindow, ServiceConfig};
use crate::gpu::GpuExecutor;
use crate::jobs::{DirJobStore, JobRunner, RunnerOptions};
use crate::kernels::{KERNEL_IDS, KernelPool};
use crate::telemetry::ingest::EdgeFleet;

/// One kernel's pipeline (with its breaker) and fault injector.
#[derive(Debug)]
pub(crate) struct KernelSlot {
    /// The kernel id.
    pub(crate) id: &'static str,
    /// Deadline, retry, breaker and attempt timeout of this kernel.
    pub(crate) pipeline: Pipeline<KernelWindow>,
    /// Injected faults, when configured.
    pub(crate) faults: Option<FaultInjector>,
    /// What its calls came to (exported by the resilience collector).
    pub(crate) calls: CallMetrics,
}

/// Everything the handlers share. Its fields are the service's own; users and tests read it
/// through the methods below.
pub struct AppState {
    /// The configuration the service runs with.
    pub(crate) config: ServiceConfig,
    /// The kernels by id.
    pub(crate) kernels: BTreeMap<&'static str, KernelSlot>,
    /// The health probe and its components.
    pub(crate) probe: HealthProbe,
    /// The metric families.
    pub(crate) metrics: Metrics,
    /// The `runtime` component's figures.
    pub(crate) runtime: Arc<RuntimeMonitor>,
    /// The blocking pool that runs kernels.
    pub(crate) pool: Arc<KernelPool>,
    /// Kernel requests in flight (the global concurrency limit).
    pub(crate) concurrency: Arc<Semaphore>,
    /// Requests per second per client address.
    pub(crate) rate_limiter: Option<DefaultKeyedRateLimiter<IpAddr>>,
    /// Set when a shutdown began: readiness answers 503 at once.
    pub(crate) draining: AtomicBool,
    /// Set when the first round of checks finished.
    pub(crate) started: AtomicBool,
    /// The GPU worker and its CPU failover, when `[gpu]` is enabled.
    pub(crate) gpu: Option<Arc<crate::gpu::GpuExecutor>>,
    /// The edge devices' ingested telemetry (`--telemetry`).
    pub(crate) edge: Arc<crate::telemetry::ingest::EdgeFleet>,
    /// The jobs, when `[jobs] dir` is set.
    pub(crate) jobs: Option<JobRunner>,
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

impl AppState {
    pub(super) fn new(
        config: ServiceConfig,
        pool: Arc<KernelPool>,
        gpu: Option<Arc<crate::gpu::GpuExecutor>>,
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
            let budget = SharedRetryBudget::try_new(config.resilience.retry_budget)
                .map_err(|error| ServeError::Config(error.to_string()))?;
            let pipeline = Pipeline::try_with_window(pipeline_config, KernelWindow::new())
                .map_err(|error| ServeError::Config(error.to_string()))?
                .with_retry_budget(budget);
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
                    // Checked when the configuration was resolved.
                    calls: CallMetrics::with_buckets(config.latency_buckets_for(id))
                        .map_err(|error| ServeError::Config(error.to_string()))?,
                },
            );
        }
        let rate_limiter = NonZeroU32::new(config.limits.per_client_rate).map(|rate| {
            let burst = NonZeroU32::new(config.limits.per_client_burst).unwrap_or(rate);
            RateLimiter::keyed(Quota::per_second(rate).allow_burst(burst))
        });
        let sources = kernels.values().map(|slot| super::metrics::KernelSources {
            id: slot.id,
            breaker: slot.pipeline.breaker(),
            calls: &slot.calls,
            budget: slot.pipeline.retrier().shared_budget(),
        });
        let jobs = match &config.jobs {
            Some(jobs) => {
                let store = DirJobStore::open(&jobs.dir)
                    .map_err(|error| ServeError::Config(format!("jobs.dir: {error}")))?;
                let options = RunnerOptions {
                    gpu: gpu.clone(),
                    ..RunnerOptions::default()
                };
                Some(JobRunner::with_options(
                    jobs.clone(),
                    Arc::new(store),
                    options,
                ))
            }
            None => None,
        };
        let metrics = Metrics::new(
            super::metrics::resilience_collector(sources, gpu.as_deref(), &probe),
            gpu.as_deref(),
            jobs.as_ref().map(JobRunner::metrics),
        );
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
            jobs,
        })
    }

    /// The configuration the service runs with.
    #[must_use]
    pub fn config(&self) -> &ServiceConfig {
        &self.config
    }

    /// The health probe and its components.
    #[must_use]
    pub fn probe(&self) -> &HealthProbe {
        &self.probe
    }

    /// The circuit breaker of kernel `id`.
    #[must_use]
    pub fn breaker(&self, id: &str) -> Option<&CircuitBreaker<KernelWindow>> {
        self.kernels
            .get(id)
            .and_then(|slot| slot.pipeline.breaker())
    }

    /// The blocking pool that runs CPU kernels (the service's and the GPU path's failovers).
    #[must_use]
    pub fn pool(&self) -> &Arc<KernelPool> {
        &self.pool
    }

    /// The `runtime` component's monitor.
    #[must_use]
    pub fn runtime(&self) -> &RuntimeMonitor {
        &self.runtime
    }

    /// The GPU path, when `[gpu]` is enabled.
    #[must_use]
    pub fn gpu(&self) -> Option<&GpuExecutor> {
        self.gpu.as_deref()
    }

    /// The job runner, when `[jobs] dir` is set.
    #[must_use]
    pub fn jobs(&self) -> Option<&JobRunner> {
        self.jobs.as_ref()
    }

    /// The edge devices' telemetry.
    #[must_use]
    pub fn edge(&self) -> &EdgeFleet {
        &self.edge
    }

    /// Kernel requests in flight now (under `limits.max_concurrency`).
    #[must_use]
    pub fn requests_in_flight(&self) -> usize {
        self.config
            .limits
            .max_concurrency
            .saturating_sub(self.concurrency.available_permits())
    }

    /// Client addresses the per-client rate limiter remembers (0 without a limit).
    #[must_use]
    pub fn tracked_clients(&self) -> usize {
        self.rate_limiter
            .as_ref()
            .map_or(0, |limiter| limiter.len())
    }

    /// Whether a shutdown began.
    #[must_use]
    pub fn is_draining(&self) -> bool {
        self.draining.load(Ordering::SeqCst)
    }
}
