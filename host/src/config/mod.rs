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
//! # half_open_permitted_calls = 10 # half-open: decide on the rates over 10 probes, not one by one
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
//! [jobs]                           # long-running kernels that checkpoint (see `jobs.rs`)
//! dir = "/var/lib/rustkernel/jobs"  # off unless set
//! max_running = 2
//! checkpoint_every = 100
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
    BackoffStrategy, CircuitBreakerConfig, HealthProbeConfig, ResilienceConfig, RetryBudgetConfig,
    RetryConfig, TimeoutConfig,
};
use rustkernel_tokio::metrics::{LATENCY_BUCKETS, check_buckets};
use serde::{Deserialize, Serialize};

use crate::kernels::KERNEL_IDS;
use crate::telemetry::source::{TelemetryConfig, TelemetryFile};

mod auth;
mod file;
mod jobs;
mod resolve;

pub use auth::{AuthConfig, AuthFile, AuthMode};
pub use file::*;
pub use jobs::{JobsConfig, JobsFile, MAX_QUEUED_LIMIT, MAX_RUNNING_LIMIT, check_checkpoint_every};

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
    /// Every kernel's latency histogram bounds in seconds, unless it has its own.
    pub latency_buckets: Vec<f64>,
    /// The kernels with their own latency histogram bounds.
    pub kernel_latency_buckets: BTreeMap<String, Vec<f64>>,
    /// The GPU worker, when enabled.
    pub gpu: Option<crate::gpu::GpuConfig>,
    /// Edge devices' telemetry: sources, silence thresholds, bounds.
    pub telemetry: TelemetryConfig,
    /// Jobs, when `[jobs] dir` is set.
    pub jobs: Option<JobsConfig>,
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

    /// The latency histogram bounds of kernel `id`, in seconds.
    #[must_use]
    pub fn latency_buckets_for(&self, id: &str) -> &[f64] {
        self.kernel_latency_buckets
            .get(id)
            .unwrap_or(&self.latency_buckets)
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
                    half_open_permitted_calls: cb.half_open_permitted_calls,
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
                retry_budget: RetryBudgetFile {
                    window: Some(r.retry_budget.window),
                    min_retries_per_second: Some(r.retry_budget.min_retries_per_second),
                    retry_ratio: Some(r.retry_budget.retry_ratio),
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
                .keys()
                .chain(self.kernel_latency_buckets.keys())
                .map(|id| {
                    (
                        id.clone(),
                        KernelFile {
                            faults: self.faults.get(id).copied(),
                            latency_buckets: self.kernel_latency_buckets.get(id).cloned(),
                        },
                    )
                })
                .collect(),
            metrics: MetricsFile {
                latency_buckets: Some(self.latency_buckets.clone()),
            },
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
            jobs: self
                .jobs
                .as_ref()
                .map(JobsConfig::to_file)
                .unwrap_or_default(),
        }
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
    fn latency_buckets_come_from_the_file_per_kernel_and_show_again() {
        let text = "[metrics]\nlatency_buckets = [0.01, 0.1, 1.0]\n[kernels.\"linalg/matmul\"]\nlatency_buckets = [1.0, 10.0, 60.0]";
        let config = ConfigFile::parse(text)
            .expect("parses")
            .resolve(None)
            .expect("valid");
        assert_eq!(
            config.latency_buckets_for("graph/pagerank"),
            &[0.01, 0.1, 1.0]
        );
        assert_eq!(
            config.latency_buckets_for("linalg/matmul"),
            &[1.0, 10.0, 60.0]
        );
        let again = ConfigFile::parse(&config.to_file().to_toml().expect("writes"))
            .expect("parses")
            .resolve(None)
            .expect("valid");
        assert_eq!(again.to_file(), config.to_file());
        assert_eq!(
            ServiceConfig::preset(Preset::Production)
                .expect("valid")
                .latency_buckets_for("graph/pagerank"),
            &LATENCY_BUCKETS,
            "the default"
        );

        for (text, field, reason) in [
            (
                "[metrics]\nlatency_buckets = [0.1, 0.05]",
                "metrics.latency_buckets",
                "0.05 follows 0.1",
            ),
            (
                "[metrics]\nlatency_buckets = []",
                "metrics.latency_buckets",
                "at least one",
            ),
            (
                "[kernels.\"graph/pagerank\"]\nlatency_buckets = [-1.0]",
                "kernels.\"graph/pagerank\".latency_buckets",
                "-1 is not a finite number of seconds above 0",
            ),
        ] {
            let error = ConfigFile::parse(text)
                .expect("parses")
                .resolve(None)
                .expect_err(text);
            let message = error.to_string();
            assert!(
                message.contains(field) && message.contains(reason),
                "{text}: {message}"
            );
        }
    }

    #[test]
    fn the_retry_budget_comes_from_the_file_and_bad_values_name_their_field() {
        let text = "[resilience.retry_budget]\nwindow = \"30s\"\nmin_retries_per_second = 2\nretry_ratio = 0.5";
        let config = ConfigFile::parse(text)
            .expect("parses")
            .resolve(None)
            .expect("valid");
        assert_eq!(
            config.resilience.retry_budget,
            RetryBudgetConfig {
                window: Duration::from_secs(30),
                min_retries_per_second: 2,
                retry_ratio: 0.5,
            }
        );
        let error = ConfigFile::parse("[resilience.retry_budget]\nretry_ratio = -1.0")
            .expect("parses")
            .resolve(None)
            .expect_err("a negative ratio");
        assert!(error.to_string().contains("retry_ratio"), "{error}");
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
        let text = "[resilience.circuit_breaker]\nfailure_rate_threshold = 0.25\nwindow_duration = \"30s\"\nminimum_calls = 500\nslow_call_duration = \"2s\"\nslow_call_rate_threshold = 0.75\nhalf_open_permitted_calls = 10\nmode = \"metrics_only\"";
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
        assert_eq!(cb.half_open_permitted_calls, Some(10));
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
            (
                "[resilience.circuit_breaker]\nhalf_open_permitted_calls = 10",
                "resilience.circuit_breaker.half_open_permitted_calls: is set, so \
                 circuit_breaker.failure_rate_threshold must be set too",
            ),
            (
                "[resilience.circuit_breaker]\nfailure_rate_threshold = 0.5\nhalf_open_permitted_calls = 256",
                "resilience.circuit_breaker.half_open_permitted_calls: must be at most 255",
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
