//! From the file as written to the validated [`ServiceConfig`]: the preset, then every value
//! the file gives, each checked with the field it came from.

#[allow(clippy::wildcard_imports)] // the parent module's types and imports, split by idea
use super::*;

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
        apply_retry_budget(&mut resilience.retry_budget, &self.resilience.retry_budget);
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

        let latency_buckets = match &self.metrics.latency_buckets {
            Some(bounds) => {
                check_buckets(bounds)
                    .map_err(|error| invalid("metrics.latency_buckets", error.to_string()))?;
                bounds.clone()
            }
            None => LATENCY_BUCKETS.to_vec(),
        };
        let mut kernel_latency_buckets = BTreeMap::new();
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
            if let Some(bounds) = &kernel.latency_buckets {
                check_buckets(bounds).map_err(|error| {
                    invalid(
                        &format!("kernels.\"{id}\".latency_buckets"),
                        error.to_string(),
                    )
                })?;
                kernel_latency_buckets.insert(id.clone(), bounds.clone());
            }
        }

        let gpu = resolve_gpu(&self.gpu, base, body_limit)?;
        let telemetry = self
            .telemetry
            .resolve()
            .map_err(|error| invalid(&error.field, error.reason))?;
        let auth = auth::resolve(&self.auth, address, base)?;
        let jobs = jobs::resolve(&self.jobs, base)?;
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
            latency_buckets,
            kernel_latency_buckets,
            gpu,
            telemetry,
            jobs,
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
    set_some(
        &mut config.half_open_permitted_calls,
        file.half_open_permitted_calls,
    );
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

fn apply_retry_budget(config: &mut RetryBudgetConfig, file: &RetryBudgetFile) {
    set(&mut config.window, file.window);
    set(
        &mut config.min_retries_per_second,
        file.min_retries_per_second,
    );
    set(&mut config.retry_ratio, file.retry_ratio);
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
