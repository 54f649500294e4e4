//! The service's configuration: a TOML file as written (every field optional, durations as
//! human text such as `"30s"` or `"250ms"`) over a preset, checked and turned into the
//! validated [`ServiceConfig`] the service runs with.
//!
//! ```toml
//! preset = "production"            # or "development"; the base every other value overrides
//!
//! [server]
//! address = "127.0.0.1:8080"       # loopback by default
//! body_limit_bytes = 16777216
//! drain_timeout = "10s"
//!
//! [auth]
//! mode = "token"                   # "token" or "none"; unset: off on loopback, token elsewhere
//! token_file = "/run/secrets/rustkernel-tokens"   # one token per line, mode 0600
//! # token_env = "RUSTKERNEL_TOKENS"               # or an environment variable (comma separated)
//!
//! [limits]
//! max_concurrency = 64             # kernel requests in flight; more get 429
//! per_client_rate = 50             # requests per second per client address; 0: off
//! per_client_burst = 100
//!
//! [resilience.circuit_breaker]
//! failure_threshold = 5            # the consecutive mode (the default)
//! timeout = "30s"
//! # failure_rate_threshold = 0.5   # the failure-rate mode: over the last 100 calls, or with
//! # window_duration = "60s"        #   a window by time, over the last 60 s (10 buckets)
//! # minimum_calls = 20
//! # slow_call_duration = "2s"      # the slow-call mode (with slow_call_rate_threshold)
//! # slow_call_rate_threshold = 0.8
//! # mode = "metrics_only"          # shadow mode: evaluates and reports, never rejects
//!
//! [resilience.retry]
//! max_attempts = 3
//! backoff = { kind = "exponential_with_jitter", initial = "100ms", max = "10s", multiplier = 2.0 }
//! retryable_errors = ["transient", "timeout", "unavailable"]
//!
//! [resilience.timeout]
//! default_timeout = "30s"
//! max_timeout = "300s"
//!
//! [runtime]                        # thresholds of the `runtime` health component
//! heartbeat_interval = "100ms"
//! max_heartbeat_lag = "50ms"
//! max_blocking_queue = 32
//!
//! [telemetry]                      # edge devices (see `rustkernel_host::telemetry::source`)
//! sources = ["tcp://127.0.0.1:9000", "/var/log/edge.log?framing=raw"]
//! unknown_after = "30s"
//! unhealthy_after = "2m"
//!
//! [kernels."graph/pagerank".faults] # fault injection, off by default
//! error_rate = 0.1
//! latency = "20ms"
//! hang_probability = 0.01
//! seed = 7
//! ```

use std::collections::BTreeMap;
use std::fmt;
use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::time::Duration;

use rustkernel_core::error::{ConfigError as CoreConfigError, ErrorKind, ErrorKindSet};
use rustkernel_core::resilience::circuit_breaker::SlidingWindow;
use rustkernel_core::resilience::{
    BackoffStrategy, CircuitBreakerConfig, HealthProbeConfig, ResilienceConfig, RetryConfig,
    TimeoutConfig,
};
use serde::{Deserialize, Serialize};

use crate::kernels::KERNEL_IDS;
use crate::telemetry::source::{TelemetryConfig, TelemetryFile};

/// Which preset a configuration starts from.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Serialize, Deserialize, clap::ValueEnum)]
#[serde(rename_all = "snake_case")]
pub enum Preset {
    /// The chapter's production values (30 s breaker timeout, 3 retries, 30 s deadlines).
    #[default]
    Production,
    /// Short times and small thresholds, so faults show within seconds.
    Development,
}

impl Preset {
    /// The core configuration of this preset.
    #[must_use]
    pub const fn resilience(self) -> ResilienceConfig {
        match self {
            Preset::Production => ResilienceConfig::production(),
            Preset::Development => ResilienceConfig::development(),
        }
    }
}

/// Why a configuration was refused: which file, which field, and why.
#[derive(Debug)]
pub enum ConfigError {
    /// The file could not be read.
    Read {
        /// The file.
        path: PathBuf,
        /// Why.
        source: std::io::Error,
    },
    /// The file is not valid TOML of this shape (unknown field, wrong type, bad duration).
    Parse {
        /// The file, when there is one.
        path: Option<PathBuf>,
        /// The parser's message (it names the line and the field).
        message: String,
    },
    /// A value is out of range.
    Invalid {
        /// The field, as written in the file (`resilience.circuit_breaker.failure_threshold`).
        field: String,
        /// Why it was refused.
        reason: String,
    },
}

impl fmt::Display for ConfigError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            ConfigError::Read { path, source } => {
                write!(f, "cannot read config file {}: {source}", path.display())
            }
            ConfigError::Parse {
                path: Some(path),
                message,
            } => write!(f, "invalid config file {}: {message}", path.display()),
            ConfigError::Parse {
                path: None,
                message,
            } => write!(f, "invalid config: {message}"),
            ConfigError::Invalid { field, reason } => {
                write!(f, "invalid config: {field}: {reason}")
            }
        }
    }
}

impl std::error::Error for ConfigError {
    fn source(&self) -> Option<&(dyn std::error::Error + 'static)> {
        match self {
            ConfigError::Read { source, .. } => Some(source),
            _ => None,
        }
    }
}

fn invalid(field: &str, reason: impl Into<String>) -> ConfigError {
    ConfigError::Invalid {
        field: field.to_owned(),
        reason: reason.into(),
    }
}

impl From<CoreConfigError> for ConfigError {
    /// A core error names its field as `circuit_breaker.failure_threshold`; in the file it sits
    /// under `resilience.`.
    fn from(error: CoreConfigError) -> Self {
        let text = error.to_string();
        match text.split_once(' ') {
            Some((field, reason)) if field.contains('.') => {
                invalid(&format!("resilience.{field}"), reason)
            }
            _ => invalid("resilience", text),
        }
    }
}

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

/// `[auth]`.
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct AuthFile {
    /// `"token"` or `"none"`; unset: no auth on a loopback address, tokens required elsewhere.
    pub mode: Option<AuthMode>,
    /// A file of bearer tokens, one per line (blank lines and `#` comments skipped); it must
    /// not be readable by group or others.
    pub token_file: Option<PathBuf>,
    /// An environment variable holding comma-separated bearer tokens.
    pub token_env: Option<String>,
    /// Whether `/metrics` needs a token too (default: open, for Prometheus).
    pub protect_metrics: Option<bool>,
    /// Whether the `/health` routes need a token too (default: open, for Kubernetes).
    pub protect_health: Option<bool>,
    /// Accept a token file that group or others can read (logged as a warning).
    pub allow_readable_token_file: Option<bool>,
}

/// How requests to protected endpoints are authenticated.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum AuthMode {
    /// `Authorization: Bearer <token>` with one of the configured tokens.
    Token,
    /// No authentication (say so explicitly to bind a non-loopback address without tokens).
    None,
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
    /// Each attempt's own timeout (default: none, attempts run until the request's deadline).
    #[serde(default, with = "humantime_serde::option")]
    pub attempt_timeout: Option<Duration>,
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

/// Thresholds of the `runtime` health component.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct RuntimeLimits {
    /// How often the heartbeat task ticks.
    pub heartbeat_interval: Duration,
    /// How often the `runtime` component is checked.
    pub check_interval: Duration,
    /// A heartbeat later than this is degraded.
    pub max_heartbeat_lag: Duration,
    /// Queued kernel jobs above which the blocking pool counts as saturated.
    pub max_blocking_queue: usize,
    /// Blocking threads that run kernels.
    pub blocking_threads: usize,
    /// Open file descriptors above which the process is degraded.
    pub max_open_fds: u64,
    /// Resident bytes above which the process is degraded.
    pub max_rss_bytes: u64,
}

/// Who may call protected endpoints.
#[derive(Clone, PartialEq, Eq)]
pub struct AuthConfig {
    /// `None`: no authentication.
    pub mode: AuthMode,
    /// The accepted bearer tokens (never printed).
    pub tokens: Vec<String>,
    /// Where they came from, for `config show` (`file:/path` or `env:NAME`).
    pub token_source: Option<String>,
    /// `/metrics` needs a token.
    pub protect_metrics: bool,
    /// The health routes need a token.
    pub protect_health: bool,
}

impl fmt::Debug for AuthConfig {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("AuthConfig")
            .field("mode", &self.mode)
            .field("tokens", &format_args!("[{} redacted]", self.tokens.len()))
            .field("token_source", &self.token_source)
            .finish_non_exhaustive()
    }
}

/// Load limits.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Limits {
    /// Kernel requests in flight at once.
    pub max_concurrency: usize,
    /// Requests per second per client; 0: off.
    pub per_client_rate: u32,
    /// Burst above the rate.
    pub per_client_burst: u32,
}

/// The validated configuration the service runs with.
#[derive(Clone, Debug)]
pub struct ServiceConfig {
    /// The preset it started from.
    pub preset: Preset,
    /// The listen address.
    pub address: SocketAddr,
    /// The largest request body in bytes.
    pub body_limit: usize,
    /// How long in-flight requests may take to finish after a shutdown signal.
    pub drain_timeout: Duration,
    /// The resilience layer (validated, its breaker for a [`KernelWindow`]).
    pub resilience: ResilienceConfig,
    /// What the kernels' breakers do with their decisions.
    pub breaker_mode: BreakerMode,
    /// Each attempt's own timeout.
    pub attempt_timeout: Option<Duration>,
    /// The `runtime` component's thresholds.
    pub runtime: RuntimeLimits,
    /// Authentication.
    pub auth: AuthConfig,
    /// Load limits.
    pub limits: Limits,
    /// Fault injection per kernel id.
    pub faults: BTreeMap<String, FaultConfig>,
    /// The GPU worker, when enabled.
    pub gpu: Option<crate::gpu::GpuConfig>,
    /// Edge devices' telemetry: sources, silence thresholds, bounds.
    pub telemetry: TelemetryConfig,
    /// The file's auth settings as written (for `config show`).
    auth_file: AuthFile,
    /// The file's GPU settings as written (for `config show`).
    gpu_file: GpuFile,
}

/// The default listen address: loopback only.
pub const DEFAULT_ADDRESS: &str = "127.0.0.1:8080";

impl ServiceConfig {
    /// The preset with no file.
    ///
    /// # Errors
    /// Only if the environment's token source fails (never for a preset alone).
    pub fn preset(preset: Preset) -> Result<Self, ConfigError> {
        ConfigFile {
            preset: Some(preset),
            ..ConfigFile::default()
        }
        .resolve(None)
    }

    /// Reads and checks a TOML file.
    ///
    /// # Errors
    /// A [`ConfigError`] naming the file, the field and the reason.
    pub fn load(path: &Path) -> Result<Self, ConfigError> {
        ConfigFile::load(path)?.resolve(path.parent())
    }

    /// Whether the listen address is a loopback one.
    #[must_use]
    pub fn is_loopback(&self) -> bool {
        self.address.ip().is_loopback()
    }

    /// The effective configuration as a file (every field set; tokens are not included, only
    /// where they come from).
    #[must_use]
    pub fn to_file(&self) -> ConfigFile {
        let r = &self.resilience;
        let cb = &r.circuit_breaker;
        ConfigFile {
            preset: Some(self.preset),
            server: ServerFile {
                address: Some(self.address),
                body_limit_bytes: Some(self.body_limit),
                drain_timeout: Some(self.drain_timeout),
            },
            auth: AuthFile {
                mode: Some(self.auth.mode),
                protect_metrics: Some(self.auth.protect_metrics),
                protect_health: Some(self.auth.protect_health),
                ..self.auth_file.clone()
            },
            limits: LimitsFile {
                max_concurrency: Some(self.limits.max_concurrency),
                per_client_rate: Some(self.limits.per_client_rate),
                per_client_burst: Some(self.limits.per_client_burst),
            },
            resilience: ResilienceFile {
                circuit_breaker: BreakerFile {
                    failure_threshold: Some(cb.failure_threshold),
                    success_threshold: Some(cb.success_threshold),
                    timeout: Some(cb.timeout),
                    half_open_max_calls: Some(cb.half_open_max_calls),
                    max_wait_in_half_open: Some(cb.max_wait_in_half_open),
                    failure_rate_threshold: cb.failure_rate_threshold,
                    slow_call_duration: cb.slow_call_duration,
                    slow_call_rate_threshold: cb
                        .slow_call_duration
                        .map(|_| cb.slow_call_rate_threshold),
                    minimum_calls: Some(cb.minimum_calls),
                    window_duration: cb.window_duration,
                    mode: Some(self.breaker_mode),
                },
                retry: RetryFile {
                    max_attempts: Some(r.retry.max_attempts),
                    backoff: Some(r.retry.backoff.into()),
                    retryable_errors: Some(r.retry.retryable_errors.iter().collect()),
                },
                timeout: TimeoutFile {
                    default_timeout: Some(r.timeout.default_timeout),
                    max_timeout: Some(r.timeout.max_timeout),
                    include_queue_time: Some(r.timeout.include_queue_time),
                },
                health_check: HealthFile {
                    interval: Some(r.health_check.interval),
                    timeout: Some(r.health_check.timeout),
                    failure_threshold: Some(r.health_check.failure_threshold),
                    success_threshold: Some(r.health_check.success_threshold),
                },
                attempt_timeout: self.attempt_timeout,
            },
            runtime: RuntimeFile {
                heartbeat_interval: Some(self.runtime.heartbeat_interval),
                check_interval: Some(self.runtime.check_interval),
                max_heartbeat_lag: Some(self.runtime.max_heartbeat_lag),
                max_blocking_queue: Some(self.runtime.max_blocking_queue),
                blocking_threads: Some(self.runtime.blocking_threads),
                max_open_fds: Some(self.runtime.max_open_fds),
                max_rss_bytes: Some(self.runtime.max_rss_bytes),
            },
            kernels: self
                .faults
                .iter()
                .map(|(id, faults)| {
                    (
                        id.clone(),
                        KernelFile {
                            faults: Some(*faults),
                        },
                    )
                })
                .collect(),
            gpu: match &self.gpu {
                Some(gpu) => GpuFile {
                    enabled: Some(true),
                    worker: Some(gpu.worker_path.clone()),
                    backend: Some(match gpu.backend {
                        crate::gpu::BackendKind::Cuda => GpuBackend::Cuda,
                        crate::gpu::BackendKind::Cpu => GpuBackend::Cpu,
                    }),
                    ptx_dir: gpu.ptx_dir.clone(),
                    heartbeat_interval: Some(gpu.heartbeat_interval),
                    heartbeat_timeout: Some(gpu.heartbeat_timeout),
                    startup_timeout: Some(gpu.startup_timeout),
                    restart_delay: Some(gpu.restart.restart_delay),
                    max_restarts: Some(gpu.restart.max_restarts),
                    restart_window: Some(gpu.intensity.window),
                    probation_restart_delay: Some(gpu.probation.restart_delay),
                    kill_grace: Some(gpu.kill_grace),
                    fault: gpu.fault.map(|fault| GpuFaultFile {
                        kind: fault.kind.as_str().to_owned(),
                        on_request: Some(fault.on_request),
                        workers: Some(fault.workers),
                    }),
                },
                None => GpuFile {
                    enabled: Some(false),
                    ..self.gpu_file.clone()
                },
            },
            telemetry: self.telemetry.to_file(),
        }
    }
}

impl ConfigFile {
    /// Reads and parses a TOML file, as written (not resolved: see [`ServiceConfig::load`]).
    ///
    /// # Errors
    /// [`ConfigError::Read`] or [`ConfigError::Parse`] naming the file.
    pub fn load(path: &Path) -> Result<Self, ConfigError> {
        let text = std::fs::read_to_string(path).map_err(|source| ConfigError::Read {
            path: path.to_owned(),
            source,
        })?;
        ConfigFile::parse(&text).map_err(|error| match error {
            ConfigError::Parse { message, .. } => ConfigError::Parse {
                path: Some(path.to_owned()),
                message,
            },
            other => other,
        })
    }

    /// Parses TOML text.
    ///
    /// # Errors
    /// [`ConfigError::Parse`] with the parser's message (line, field and reason).
    pub fn parse(text: &str) -> Result<Self, ConfigError> {
        toml::from_str(text).map_err(|error| ConfigError::Parse {
            path: None,
            message: error.to_string(),
        })
    }

    /// The file as TOML text.
    ///
    /// # Errors
    /// Only if a value cannot be written as TOML (never for a resolved configuration).
    pub fn to_toml(&self) -> Result<String, ConfigError> {
        toml::to_string_pretty(self).map_err(|error| ConfigError::Parse {
            path: None,
            message: error.to_string(),
        })
    }

    /// Applies the file over its preset and checks every value; `base` is the file's
    /// directory (a relative `token_file` is read from it).
    ///
    /// # Errors
    /// The first invalid value, with its field.
    pub fn resolve(self, base: Option<&Path>) -> Result<ServiceConfig, ConfigError> {
        let preset = self.preset.unwrap_or_default();
        let mut resilience = preset.resilience();
        apply_breaker(
            &mut resilience.circuit_breaker,
            &self.resilience.circuit_breaker,
        );
        apply_retry(&mut resilience.retry, &self.resilience.retry);
        apply_timeout(&mut resilience.timeout, &self.resilience.timeout);
        apply_health(&mut resilience.health_check, &self.resilience.health_check);
        resilience.validate_for_window(<KernelWindow as SlidingWindow>::CAPACITY)?;
        // The window's own checks (minimum_calls within the last 100 calls, bucket length).
        rustkernel_core::resilience::CircuitBreaker::try_with_window(
            resilience.circuit_breaker,
            KernelWindow::new(),
        )?;
        if self.resilience.attempt_timeout == Some(Duration::ZERO) {
            return Err(invalid(
                "resilience.attempt_timeout",
                "must be greater than zero",
            ));
        }

        let address = self.server.address.unwrap_or_else(|| {
            DEFAULT_ADDRESS
                .parse()
                .unwrap_or_else(|_| unreachable_addr())
        });
        let body_limit = self.server.body_limit_bytes.unwrap_or(16 * 1024 * 1024);
        if body_limit == 0 {
            return Err(invalid(
                "server.body_limit_bytes",
                "must be greater than zero",
            ));
        }
        let drain_timeout = self.server.drain_timeout.unwrap_or(Duration::from_secs(10));

        let runtime = RuntimeLimits {
            heartbeat_interval: self
                .runtime
                .heartbeat_interval
                .unwrap_or(Duration::from_millis(100)),
            check_interval: self
                .runtime
                .check_interval
                .unwrap_or(Duration::from_secs(1)),
            max_heartbeat_lag: self
                .runtime
                .max_heartbeat_lag
                .unwrap_or(Duration::from_millis(50)),
            max_blocking_queue: self.runtime.max_blocking_queue.unwrap_or(32),
            blocking_threads: self.runtime.blocking_threads.unwrap_or(16),
            max_open_fds: self.runtime.max_open_fds.unwrap_or(4096),
            max_rss_bytes: self.runtime.max_rss_bytes.unwrap_or(4 << 30),
        };
        if runtime.heartbeat_interval.is_zero() {
            return Err(invalid(
                "runtime.heartbeat_interval",
                "must be greater than zero",
            ));
        }
        if runtime.check_interval.is_zero() {
            return Err(invalid(
                "runtime.check_interval",
                "must be greater than zero",
            ));
        }
        if runtime.blocking_threads == 0 {
            return Err(invalid(
                "runtime.blocking_threads",
                "must be greater than zero",
            ));
        }

        let limits = Limits {
            max_concurrency: self.limits.max_concurrency.unwrap_or(64),
            per_client_rate: self.limits.per_client_rate.unwrap_or(50),
            per_client_burst: self.limits.per_client_burst.unwrap_or(100),
        };
        if limits.max_concurrency == 0 {
            return Err(invalid(
                "limits.max_concurrency",
                "must be greater than zero",
            ));
        }
        if limits.per_client_rate > 0 && limits.per_client_burst == 0 {
            return Err(invalid(
                "limits.per_client_burst",
                "must be greater than zero when per_client_rate is set",
            ));
        }

        let mut faults = BTreeMap::new();
        for (id, kernel) in &self.kernels {
            if !KERNEL_IDS.contains(&id.as_str()) {
                return Err(invalid(
                    &format!("kernels.\"{id}\""),
                    format!("unknown kernel (known: {})", KERNEL_IDS.join(", ")),
                ));
            }
            if let Some(fault) = kernel.faults {
                check_share(
                    &format!("kernels.\"{id}\".faults.error_rate"),
                    fault.error_rate,
                )?;
                check_share(
                    &format!("kernels.\"{id}\".faults.hang_probability"),
                    fault.hang_probability,
                )?;
                faults.insert(id.clone(), fault);
            }
        }

        let gpu = resolve_gpu(&self.gpu, base, body_limit)?;
        let telemetry = self
            .telemetry
            .resolve()
            .map_err(|error| invalid(&error.field, error.reason))?;
        let auth = crate::service::auth::resolve(&self.auth, address, base)?;
        Ok(ServiceConfig {
            preset,
            address,
            body_limit,
            drain_timeout,
            resilience,
            breaker_mode: self.resilience.circuit_breaker.mode.unwrap_or_default(),
            attempt_timeout: self.resilience.attempt_timeout,
            runtime,
            auth,
            limits,
            faults,
            gpu,
            telemetry,
            auth_file: self.auth,
            gpu_file: self.gpu,
        })
    }
}

fn resolve_gpu(
    file: &GpuFile,
    base: Option<&Path>,
    body_limit: usize,
) -> Result<Option<crate::gpu::GpuConfig>, ConfigError> {
    if !file.enabled.unwrap_or(false) {
        return Ok(None);
    }
    let worker = match &file.worker {
        Some(path) => match base {
            Some(base) if path.is_relative() => base.join(path),
            _ => path.clone(),
        },
        None => crate::gpu::GpuConfig::worker_beside_current_exe().ok_or_else(|| {
            invalid(
                "gpu.worker",
                "cannot locate rustkernel-worker beside this binary",
            )
        })?,
    };
    let mut config = crate::gpu::GpuConfig::new(worker);
    if let Some(backend) = file.backend {
        config.backend = match backend {
            GpuBackend::Cuda => crate::gpu::BackendKind::Cuda,
            GpuBackend::Cpu => crate::gpu::BackendKind::Cpu,
        };
    }
    // Relative paths in the file are the file's: they resolve against its directory.
    config.ptx_dir = file.ptx_dir.as_ref().map(|dir| match base {
        Some(base) if dir.is_relative() => base.join(dir),
        _ => dir.clone(),
    });
    set(&mut config.heartbeat_interval, file.heartbeat_interval);
    set(&mut config.heartbeat_timeout, file.heartbeat_timeout);
    set(&mut config.startup_timeout, file.startup_timeout);
    set(&mut config.restart.restart_delay, file.restart_delay);
    set(&mut config.restart.max_restarts, file.max_restarts);
    set(&mut config.intensity.window, file.restart_window);
    config.probation.restart_delay = config.probation.restart_delay.min(config.intensity.window);
    set(
        &mut config.probation.restart_delay,
        file.probation_restart_delay,
    );
    set(&mut config.kill_grace, file.kill_grace);
    config.max_frame_len = crate::gpu::GpuConfig::frame_limit_for_body(body_limit);
    if let Some(fault) = &file.fault {
        use clap::ValueEnum as _;
        let kind = crate::gpu::FaultKind::from_str(&fault.kind, false).map_err(|_| {
            let names: Vec<&str> = crate::gpu::FaultKind::value_variants()
                .iter()
                .map(|kind| kind.as_str())
                .collect();
            invalid(
                "gpu.fault.kind",
                format!(
                    "unknown fault {:?} (known: {})",
                    fault.kind,
                    names.join(", ")
                ),
            )
        })?;
        let on_request = fault.on_request.unwrap_or(1);
        if on_request == 0 {
            return Err(invalid(
                "gpu.fault.on_request",
                "must be at least 1 (the first request)",
            ));
        }
        config.fault = Some(crate::gpu::WorkerFault {
            kind,
            on_request,
            workers: fault.workers.unwrap_or(1),
        });
    }
    config
        .validate()
        .map_err(|error| invalid("gpu", error.to_string()))?;
    Ok(Some(config))
}

fn unreachable_addr() -> SocketAddr {
    SocketAddr::from(([127, 0, 0, 1], 8080))
}

fn check_share(field: &str, value: f64) -> Result<(), ConfigError> {
    if value.is_finite() && (0.0..=1.0).contains(&value) {
        Ok(())
    } else {
        Err(invalid(field, "must be a number from 0 to 1"))
    }
}

fn apply_breaker(config: &mut CircuitBreakerConfig, file: &BreakerFile) {
    set(&mut config.failure_threshold, file.failure_threshold);
    set(&mut config.success_threshold, file.success_threshold);
    set(&mut config.timeout, file.timeout);
    set(&mut config.half_open_max_calls, file.half_open_max_calls);
    set(
        &mut config.max_wait_in_half_open,
        file.max_wait_in_half_open,
    );
    set_some(
        &mut config.failure_rate_threshold,
        file.failure_rate_threshold,
    );
    set_some(&mut config.slow_call_duration, file.slow_call_duration);
    set_some(&mut config.window_duration, file.window_duration);
    set(
        &mut config.slow_call_rate_threshold,
        file.slow_call_rate_threshold,
    );
    set(&mut config.minimum_calls, file.minimum_calls);
}

fn apply_retry(config: &mut RetryConfig, file: &RetryFile) {
    set(&mut config.max_attempts, file.max_attempts);
    if let Some(backoff) = &file.backoff {
        config.backoff = backoff.clone().into();
    }
    if let Some(kinds) = &file.retryable_errors {
        config.retryable_errors = kinds.iter().copied().collect::<ErrorKindSet>();
    }
}

fn apply_timeout(config: &mut TimeoutConfig, file: &TimeoutFile) {
    set(&mut config.default_timeout, file.default_timeout);
    set(&mut config.max_timeout, file.max_timeout);
    set(&mut config.include_queue_time, file.include_queue_time);
}

fn apply_health(config: &mut HealthProbeConfig, file: &HealthFile) {
    set(&mut config.interval, file.interval);
    set(&mut config.timeout, file.timeout);
    set(&mut config.failure_threshold, file.failure_threshold);
    set(&mut config.success_threshold, file.success_threshold);
}

/// Sets an optional setting when the file gives it (a file cannot unset a preset's value).
fn set_some<T: Copy>(slot: &mut Option<T>, value: Option<T>) {
    if value.is_some() {
        *slot = value;
    }
}

fn set<T: Copy>(slot: &mut T, value: Option<T>) {
    if let Some(value) = value {
        *slot = value;
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn presets_resolve_and_round_trip_through_toml() {
        for preset in [Preset::Production, Preset::Development] {
            let config = ServiceConfig::preset(preset).expect("a preset is valid");
            let text = config.to_file().to_toml().expect("writes");
            let again = ConfigFile::parse(&text)
                .expect("parses")
                .resolve(None)
                .expect("valid");
            assert_eq!(again.to_file(), config.to_file(), "{text}");
        }
    }

    #[test]
    fn human_durations_and_overrides_apply() {
        let file = ConfigFile::parse(
            r#"
            preset = "development"
            [resilience.circuit_breaker]
            failure_threshold = 7
            timeout = "1m 30s"
            [resilience.retry]
            backoff = { kind = "fixed", delay = "250ms" }
            retryable_errors = ["timeout"]
            "#,
        )
        .expect("parses");
        let config = file.resolve(None).expect("valid");
        assert_eq!(config.resilience.circuit_breaker.failure_threshold, 7);
        assert_eq!(
            config.resilience.circuit_breaker.timeout,
            Duration::from_secs(90)
        );
        assert_eq!(
            config.resilience.retry.backoff,
            BackoffStrategy::Fixed {
                delay: Duration::from_millis(250)
            }
        );
        assert_eq!(config.preset, Preset::Development);
    }

    #[test]
    fn the_breaker_mode_and_window_come_from_the_file_and_show_again() {
        let text = "[resilience.circuit_breaker]\nfailure_rate_threshold = 0.25\nwindow_duration = \"30s\"\nminimum_calls = 500\nslow_call_duration = \"2s\"\nslow_call_rate_threshold = 0.75\nmode = \"metrics_only\"";
        let config = ConfigFile::parse(text)
            .expect("parses")
            .resolve(None)
            .expect("valid: a window by time holds any number of calls");
        let cb = config.resilience.circuit_breaker;
        assert_eq!(cb.failure_rate_threshold, Some(0.25));
        assert_eq!(cb.window_duration, Some(Duration::from_secs(30)));
        assert_eq!(cb.minimum_calls, 500);
        assert_eq!(cb.slow_call_duration, Some(Duration::from_secs(2)));
        assert_eq!(cb.slow_call_rate_threshold.to_bits(), 0.75f32.to_bits());
        assert_eq!(config.breaker_mode, BreakerMode::MetricsOnly);
        // `config show` writes it back, and the written file resolves to the same.
        let shown = config.to_file().to_toml().expect("writes");
        let again = ConfigFile::parse(&shown)
            .expect("parses")
            .resolve(None)
            .expect("valid");
        assert_eq!(again.resilience.circuit_breaker, cb);
        assert_eq!(again.breaker_mode, BreakerMode::MetricsOnly);
    }

    #[test]
    fn the_gpu_workers_timings_come_from_the_file_and_show_again() {
        let text = "[server]\nbody_limit_bytes = 1048576\n[gpu]\nenabled = true\nworker = \"bin/rustkernel-worker\"\nptx_dir = \"ptx\"\nstartup_timeout = \"5s\"\nrestart_delay = \"200ms\"\nmax_restarts = 5\nrestart_window = \"2m\"\nkill_grace = \"100ms\"";
        let base = Path::new("/etc/rustkernel");
        let config = ConfigFile::parse(text)
            .expect("parses")
            .resolve(Some(base))
            .expect("valid");
        let gpu = config.gpu.clone().expect("enabled");
        assert_eq!(gpu.worker_path, base.join("bin/rustkernel-worker"));
        // A relative PTX directory is the config file's, like the worker's path.
        assert_eq!(gpu.ptx_dir, Some(base.join("ptx")));
        assert_eq!(gpu.startup_timeout, Duration::from_secs(5));
        assert_eq!(gpu.restart.restart_delay, Duration::from_millis(200));
        assert_eq!(gpu.restart.max_restarts, 5);
        assert_eq!(gpu.intensity.window, Duration::from_secs(120));
        assert_eq!(gpu.kill_grace, Duration::from_millis(100));
        assert_eq!(
            gpu.max_frame_len,
            crate::gpu::GpuConfig::frame_limit_for_body(1_048_576)
        );
        // `config show` lists every value in effect, defaults included.
        let shown = config.to_file().to_toml().expect("writes");
        for line in [
            "startup_timeout = \"5s\"",
            "restart_delay = \"200ms\"",
            "max_restarts = 5",
            "restart_window = \"2m\"",
            "kill_grace = \"100ms\"",
            "heartbeat_timeout = \"1s\"",
        ] {
            assert!(shown.contains(line), "{line} missing from:\n{shown}");
        }
        let again = ConfigFile::parse(&shown)
            .expect("parses")
            .resolve(None)
            .expect("valid");
        let shown_gpu = again.gpu.expect("enabled");
        assert_eq!(shown_gpu.restart, gpu.restart);
        assert_eq!(shown_gpu.intensity, gpu.intensity);
        assert_eq!(shown_gpu.ptx_dir, gpu.ptx_dir);
        // The device-fault switch, off unless set.
        assert_eq!(gpu.fault, None);
        let faulty = ConfigFile::parse(
            "[gpu]\nenabled = true\nworker = \"w\"\nfault = { kind = \"gpu-oob\", on_request = 2 }",
        )
        .expect("parses")
        .resolve(None)
        .expect("valid");
        assert_eq!(
            faulty.gpu.expect("enabled").fault,
            Some(crate::gpu::WorkerFault {
                kind: crate::gpu::FaultKind::GpuOutOfBounds,
                on_request: 2,
                workers: 1,
            })
        );
        let unknown =
            ConfigFile::parse("[gpu]\nenabled = true\nworker = \"w\"\nfault = { kind = \"melt\" }")
                .expect("parses")
                .resolve(None);
        assert!(
            matches!(&unknown, Err(e) if e.to_string().contains("gpu.fault.kind") && e.to_string().contains("gpu-hang")),
            "{unknown:?}"
        );
        // Too many restarts for the window's capacity: named.
        let bad = ConfigFile::parse("[gpu]\nenabled = true\nworker = \"w\"\nmax_restarts = 100000")
            .expect("parses")
            .resolve(None);
        assert!(
            matches!(&bad, Err(e) if e.to_string().contains("gpu")),
            "{bad:?}"
        );
    }

    #[test]
    fn bad_values_name_their_field() {
        let cases = [
            (
                "[resilience.circuit_breaker]\nfailure_threshold = 0",
                "resilience.circuit_breaker.failure_threshold",
            ),
            (
                "[resilience.timeout]\ndefault_timeout = \"10m\"\nmax_timeout = \"1m\"",
                "resilience.timeout.default_timeout",
            ),
            (
                "[resilience.circuit_breaker]\nfailure_rate_threshold = 1.5",
                "resilience.circuit_breaker.failure_rate_threshold",
            ),
            (
                // The last 100 calls cannot hold 101.
                "[resilience.circuit_breaker]\nfailure_rate_threshold = 0.5\nminimum_calls = 101",
                "101",
            ),
            (
                "[resilience.circuit_breaker]\nslow_call_duration = \"0s\"",
                "resilience.circuit_breaker.slow_call_duration",
            ),
            ("[limits]\nmax_concurrency = 0", "limits.max_concurrency"),
            (
                "[kernels.\"graph/pagerank\".faults]\nerror_rate = 1.5",
                "kernels.\"graph/pagerank\".faults.error_rate",
            ),
            ("[kernels.\"nope\"]", "kernels.\"nope\""),
        ];
        for (text, field) in cases {
            let error = ConfigFile::parse(text)
                .expect("parses")
                .resolve(None)
                .expect_err(text);
            assert!(
                error.to_string().contains(field),
                "{error} should name {field}"
            );
        }
        for text in [
            "[server]\nport = 1",
            "[resilience.timeout]\ndefault_timeout = \"soon\"",
            "preset = \"fast\"",
        ] {
            let error = ConfigFile::parse(text).expect_err(text);
            assert!(matches!(error, ConfigError::Parse { .. }), "{error}");
        }
    }
}
