//! The configuration file as written: every section and field optional, durations as human
//! text, unknown fields refused. [`ConfigFile::resolve`](super::ConfigFile) checks it over a
//! preset.

#[allow(clippy::wildcard_imports)] // the parent module's types and imports, split by idea
use super::*;

/// The file as written: every field optional, unknown fields refused.
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ConfigFile {
    /// The base every other value overrides (default: production).
    pub preset: Option<Preset>,
    /// Where and how the service listens.
    #[serde(default)]
    pub server: ServerFile,
    /// Who may run kernels.
    #[serde(default)]
    pub auth: AuthFile,
    /// Load limits.
    #[serde(default)]
    pub limits: LimitsFile,
    /// The resilience layer.
    #[serde(default)]
    pub resilience: ResilienceFile,
    /// Thresholds of the `runtime` health component.
    #[serde(default)]
    pub runtime: RuntimeFile,
    /// Per-kernel settings (fault injection), by kernel id.
    #[serde(default)]
    pub kernels: BTreeMap<String, KernelFile>,
    /// GPU execution through a worker process (off by default).
    #[serde(default)]
    pub gpu: GpuFile,
    /// Edge devices' telemetry sources and limits (see [`crate::telemetry::source`]).
    #[serde(default)]
    pub telemetry: TelemetryFile,
    /// Long-running kernels as jobs that checkpoint (off unless `dir` is set).
    #[serde(default)]
    pub jobs: JobsFile,
    /// What `/metrics` exports.
    #[serde(default)]
    pub metrics: MetricsFile,
}

/// `[metrics]`.
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct MetricsFile {
    /// Upper bounds, in seconds, of every kernel's latency histogram
    /// (`rustkernel_kernel_duration_seconds`), increasing, at most 64 (default: 100 µs doubling
    /// to 3.2768 s). A kernel's own `[kernels."<id>"] latency_buckets` overrides it.
    pub latency_buckets: Option<Vec<f64>>,
}

/// `[gpu]`: kernels run on a GPU in a worker process that the service supervises, with the CPU
/// implementation as failover.
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct GpuFile {
    /// Run kernels through the GPU worker (default false: CPU only).
    pub enabled: Option<bool>,
    /// The worker binary (default: `rustkernel-worker` beside `rustkernel`).
    pub worker: Option<PathBuf>,
    /// `"cuda"` (the default) or `"cpu"` (the worker's CPU backend: the worker path without a
    /// GPU, for rehearsals).
    pub backend: Option<GpuBackend>,
    /// Where the worker finds its PTX files.
    pub ptx_dir: Option<PathBuf>,
    /// How often the worker beats (default 100 ms).
    #[serde(default, with = "humantime_serde::option")]
    pub heartbeat_interval: Option<Duration>,
    /// Silence after which the worker is killed and restarted (default 1 s).
    #[serde(default, with = "humantime_serde::option")]
    pub heartbeat_timeout: Option<Duration>,
    /// How long the worker's start-up (`cuInit`, loading the PTX, a first kernel) may take
    /// before it is killed and restarted (default 30 s). The service serves from the CPU
    /// meanwhile.
    #[serde(default, with = "humantime_serde::option")]
    pub startup_timeout: Option<Duration>,
    /// How long after a failure the worker is restarted (default 1 s).
    #[serde(default, with = "humantime_serde::option")]
    pub restart_delay: Option<Duration>,
    /// Restarts allowed within `restart_window` before the GPU path degrades: every request
    /// runs on the CPU while a worker is on probation (default 3).
    pub max_restarts: Option<u32>,
    /// The window restarts are counted in, and how long a worker on probation must stay up
    /// before the GPU path takes requests again (default 60 s).
    #[serde(default, with = "humantime_serde::option")]
    pub restart_window: Option<Duration>,
    /// How long after a probation worker fails it is restarted, once; when that one fails
    /// too, an operator is notified and the GPU path stays off (default 10 s, at most
    /// `restart_window`).
    #[serde(default, with = "humantime_serde::option")]
    pub probation_restart_delay: Option<Duration>,
    /// How long past a request's deadline the worker may still answer before it is killed
    /// (default 250 ms).
    #[serde(default, with = "humantime_serde::option")]
    pub kill_grace: Option<Duration>,
    /// A fault for the worker to inject (off by default; for rehearsals and the GPU check):
    /// `gpu-oob` (an out-of-bounds store on the device: a sticky 700, the worker replaced,
    /// the request served by the CPU) or `gpu-hang` (a kernel that never returns: killed at
    /// the deadline, the GPU usable by the next worker), or a host-side fault (`crash`,
    /// `hang`, `garbage`, `slow-heartbeats`, `poisoned`).
    pub fault: Option<GpuFaultFile>,
}

/// `[gpu.fault]`: which fault, on which request, for how many workers in a row.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct GpuFaultFile {
    /// The fault's name, as `rustkernel-worker --fault` takes it.
    pub kind: String,
    /// Which request of each faulty worker triggers it (default 1, its first).
    pub on_request: Option<u64>,
    /// How many workers in a row get it (default 1).
    pub workers: Option<u32>,
}

/// The worker's backend.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum GpuBackend {
    /// CUDA through `cust`.
    Cuda,
    /// The CPU kernels, in the worker process.
    Cpu,
}

/// `[server]`.
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ServerFile {
    /// The listen address (default `127.0.0.1:8080`).
    pub address: Option<SocketAddr>,
    /// The largest request body, in bytes (default 16 MiB).
    pub body_limit_bytes: Option<usize>,
    /// How long in-flight requests may take to finish after SIGTERM (default 10 s).
    #[serde(default, with = "humantime_serde::option")]
    pub drain_timeout: Option<Duration>,
}

/// `[limits]`.
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct LimitsFile {
    /// Kernel requests in flight at once; more get 429 (default 64).
    pub max_concurrency: Option<usize>,
    /// Kernel requests per second per client address; 0 turns the limit off (default 50).
    pub per_client_rate: Option<u32>,
    /// The burst a client may send above its rate (default 100).
    pub per_client_burst: Option<u32>,
}

/// `[resilience]`: overrides of the preset's values.
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ResilienceFile {
    /// `[resilience.circuit_breaker]`.
    #[serde(default)]
    pub circuit_breaker: BreakerFile,
    /// `[resilience.retry]`.
    #[serde(default)]
    pub retry: RetryFile,
    /// `[resilience.timeout]`.
    #[serde(default)]
    pub timeout: TimeoutFile,
    /// `[resilience.health_check]`.
    #[serde(default)]
    pub health_check: HealthFile,
    /// `[resilience.retry_budget]`: each kernel's retries as a share of its requests.
    #[serde(default)]
    pub retry_budget: RetryBudgetFile,
    /// Each attempt's own timeout (default: none, attempts run until the request's deadline).
    #[serde(default, with = "humantime_serde::option")]
    pub attempt_timeout: Option<Duration>,
}

/// `[resilience.retry_budget]`: a kernel's retries may add at most `retry_ratio` of its requests
/// over `window`, plus `min_retries_per_second` whatever the traffic; a retry past it is shed
/// (429, `outcome="shed"`). Defaults: 10 s, 10 per second, 0.2.
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RetryBudgetFile {
    /// How far back requests and retries count.
    #[serde(default, with = "humantime_serde::option")]
    pub window: Option<Duration>,
    /// Retries per second allowed whatever the traffic.
    pub min_retries_per_second: Option<u32>,
    /// Retries allowed per request, 0 to 1000.
    pub retry_ratio: Option<f32>,
}

/// `[resilience.circuit_breaker]`.
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct BreakerFile {
    /// Consecutive failures that open the breaker.
    pub failure_threshold: Option<u32>,
    /// Successful probes that close it again.
    pub success_threshold: Option<u32>,
    /// How long it stays open before probing.
    #[serde(default, with = "humantime_serde::option")]
    pub timeout: Option<Duration>,
    /// Probes admitted at once while half-open.
    pub half_open_max_calls: Option<u32>,
    /// How long a half-open cycle may wait for its probes.
    #[serde(default, with = "humantime_serde::option")]
    pub max_wait_in_half_open: Option<Duration>,
    /// The failure-rate mode: the share of failed calls in the window that opens the breaker.
    pub failure_rate_threshold: Option<f32>,
    /// The slow-call mode: a call that takes at least this long is slow.
    #[serde(default, with = "humantime_serde::option")]
    pub slow_call_duration: Option<Duration>,
    /// The share of slow calls in the window that opens the breaker.
    pub slow_call_rate_threshold: Option<f32>,
    /// Decide a half-open cycle by rate over this many probes (1 to 255; needs
    /// `failure_rate_threshold`), as Resilience4j's `permittedNumberOfCallsInHalfOpenState`;
    /// unset: probe by probe.
    pub half_open_permitted_calls: Option<u32>,
    /// Calls the window must hold before either rate is evaluated.
    pub minimum_calls: Option<u32>,
    /// A window by time over this duration (in 10 buckets) instead of the last 100 calls.
    #[serde(default, with = "humantime_serde::option")]
    pub window_duration: Option<Duration>,
    /// `enabled` (the default) or `metrics_only`: the breaker evaluates, reports when it would
    /// open (metrics, log, health report), and never rejects.
    pub mode: Option<BreakerMode>,
}

/// What a kernel's breaker does with its decisions.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum BreakerMode {
    /// Opens and rejects.
    #[default]
    Enabled,
    /// Shadow mode: reports where it would open, never rejects.
    MetricsOnly,
}

/// The window of every kernel's breaker: the configuration picks the consecutive mode, the last
/// 100 calls, or a window by time in 10 buckets.
pub type KernelWindow = rustkernel_core::resilience::circuit_breaker::ConfiguredWindow<100, 10>;

/// `[resilience.retry]`.
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RetryFile {
    /// Attempts in all, the first included.
    pub max_attempts: Option<u32>,
    /// How long to wait between attempts.
    pub backoff: Option<BackoffFile>,
    /// Which error kinds are retried.
    pub retryable_errors: Option<Vec<ErrorKind>>,
}

/// A backoff as written: `{ kind = "exponential", initial = "100ms", max = "10s", multiplier = 2.0 }`.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(tag = "kind", rename_all = "snake_case", deny_unknown_fields)]
#[allow(missing_docs)] // the fields are the core `BackoffStrategy`'s
pub enum BackoffFile {
    Fixed {
        #[serde(with = "humantime_serde")]
        delay: Duration,
    },
    Linear {
        #[serde(with = "humantime_serde")]
        initial: Duration,
        #[serde(with = "humantime_serde")]
        increment: Duration,
        #[serde(with = "humantime_serde")]
        max: Duration,
    },
    Exponential {
        #[serde(with = "humantime_serde")]
        initial: Duration,
        #[serde(with = "humantime_serde")]
        max: Duration,
        multiplier: f32,
    },
    ExponentialWithJitter {
        #[serde(with = "humantime_serde")]
        initial: Duration,
        #[serde(with = "humantime_serde")]
        max: Duration,
        multiplier: f32,
    },
    EqualJitter {
        #[serde(with = "humantime_serde")]
        initial: Duration,
        #[serde(with = "humantime_serde")]
        max: Duration,
        multiplier: f32,
    },
    DecorrelatedJitter {
        #[serde(with = "humantime_serde")]
        initial: Duration,
        #[serde(with = "humantime_serde")]
        max: Duration,
        multiplier: f32,
    },
}

impl From<BackoffFile> for BackoffStrategy {
    fn from(file: BackoffFile) -> Self {
        match file {
            BackoffFile::Fixed { delay } => BackoffStrategy::Fixed { delay },
            BackoffFile::Linear {
                initial,
                increment,
                max,
            } => BackoffStrategy::Linear {
                initial,
                increment,
                max,
            },
            BackoffFile::Exponential {
                initial,
                max,
                multiplier,
            } => BackoffStrategy::Exponential {
                initial,
                max,
                multiplier,
            },
            BackoffFile::ExponentialWithJitter {
                initial,
                max,
                multiplier,
            } => BackoffStrategy::ExponentialWithJitter {
                initial,
                max,
                multiplier,
            },
            BackoffFile::EqualJitter {
                initial,
                max,
                multiplier,
            } => BackoffStrategy::EqualJitter {
                initial,
                max,
                multiplier,
            },
            BackoffFile::DecorrelatedJitter {
                initial,
                max,
                multiplier,
            } => BackoffStrategy::DecorrelatedJitter {
                initial,
                max,
                multiplier,
            },
        }
    }
}

impl From<BackoffStrategy> for BackoffFile {
    fn from(strategy: BackoffStrategy) -> Self {
        match strategy {
            BackoffStrategy::Fixed { delay } => BackoffFile::Fixed { delay },
            BackoffStrategy::Linear {
                initial,
                increment,
                max,
            } => BackoffFile::Linear {
                initial,
                increment,
                max,
            },
            BackoffStrategy::Exponential {
                initial,
                max,
                multiplier,
            } => BackoffFile::Exponential {
                initial,
                max,
                multiplier,
            },
            BackoffStrategy::ExponentialWithJitter {
                initial,
                max,
                multiplier,
            } => BackoffFile::ExponentialWithJitter {
                initial,
                max,
                multiplier,
            },
            BackoffStrategy::EqualJitter {
                initial,
                max,
                multiplier,
            } => BackoffFile::EqualJitter {
                initial,
                max,
                multiplier,
            },
            BackoffStrategy::DecorrelatedJitter {
                initial,
                max,
                multiplier,
            } => BackoffFile::DecorrelatedJitter {
                initial,
                max,
                multiplier,
            },
        }
    }
}

/// `[resilience.timeout]`.
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct TimeoutFile {
    /// A request's deadline when it asks for none.
    #[serde(default, with = "humantime_serde::option")]
    pub default_timeout: Option<Duration>,
    /// The longest deadline a request gets (`X-Request-Timeout-Ms` is clamped to it).
    #[serde(default, with = "humantime_serde::option")]
    pub max_timeout: Option<Duration>,
    /// Whether a request's time in the queue counts against its deadline.
    pub include_queue_time: Option<bool>,
}

/// `[resilience.health_check]`.
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct HealthFile {
    /// How often each component is checked.
    #[serde(default, with = "humantime_serde::option")]
    pub interval: Option<Duration>,
    /// How long one check may take.
    #[serde(default, with = "humantime_serde::option")]
    pub timeout: Option<Duration>,
    /// Failed checks in a row that make a component unhealthy.
    pub failure_threshold: Option<u32>,
    /// Good checks in a row that make it healthy again.
    pub success_threshold: Option<u32>,
}

/// `[runtime]`: the `runtime` component's thresholds.
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RuntimeFile {
    /// How often the heartbeat task ticks (default 100 ms).
    #[serde(default, with = "humantime_serde::option")]
    pub heartbeat_interval: Option<Duration>,
    /// How often the `runtime` component is checked (default 1 s).
    #[serde(default, with = "humantime_serde::option")]
    pub check_interval: Option<Duration>,
    /// A heartbeat later than this makes `runtime` degraded (default 50 ms).
    #[serde(default, with = "humantime_serde::option")]
    pub max_heartbeat_lag: Option<Duration>,
    /// Kernel jobs waiting for a blocking thread above which `runtime` is degraded (default 32).
    pub max_blocking_queue: Option<usize>,
    /// Threads of the blocking pool that runs kernels (default 16).
    pub blocking_threads: Option<usize>,
    /// Open file descriptors above which `runtime` is degraded (default 4096).
    pub max_open_fds: Option<u64>,
    /// Resident memory in bytes above which `runtime` is degraded (default 4 GiB).
    pub max_rss_bytes: Option<u64>,
}

/// `[kernels."<id>"]`.
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct KernelFile {
    /// Fault injection for this kernel (off when absent).
    pub faults: Option<FaultConfig>,
    /// This kernel's latency histogram bounds in seconds (default: `[metrics] latency_buckets`).
    pub latency_buckets: Option<Vec<f64>>,
}

/// Seeded fault injection for one kernel, to rehearse failures.
#[derive(Clone, Copy, Debug, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct FaultConfig {
    /// The share of calls that fail (transient), 0 to 1.
    #[serde(default)]
    pub error_rate: f64,
    /// Latency added to every call.
    #[serde(default, with = "humantime_serde")]
    pub latency: Duration,
    /// The share of calls that hang until their deadline, 0 to 1.
    #[serde(default)]
    pub hang_probability: f64,
    /// The seed of the fault sequence.
    #[serde(default)]
    pub seed: u64,
}
