//! How the service runs and watches the GPU worker: [`GpuConfig`], its validation, the
//! worker's command line and environment, and its recovery ladder.

use std::path::PathBuf;
use std::time::Duration;

use rustkernel_core::resilience::{
    CircuitBreakerConfig, Recovery, RecoveryLadder, RecoveryPolicy, RecoveryStrategy,
    RestartIntensity,
};

use super::GpuError;
use super::protocol;
use super::worker::{BackendKind, FaultKind};

/// A fault for the worker to inject (tests only), passed on its command line.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct WorkerFault {
    /// What goes wrong.
    pub kind: FaultKind,
    /// Which request of each faulty worker triggers it (1 = its first; 0 = right after the
    /// worker says it is ready, before any request).
    pub on_request: u64,
    /// How many workers in a row get the fault (1 = only the first; `u32::MAX` = every one,
    /// a crash loop).
    pub workers: u32,
}

/// How to run and watch the worker.
#[derive(Clone, Debug)]
pub struct GpuConfig {
    /// The `rustkernel-worker` executable.
    pub worker_path: PathBuf,
    /// The worker's backend.
    pub backend: BackendKind,
    /// Where the worker finds the kernels' PTX (for [`BackendKind::Cuda`]).
    pub ptx_dir: Option<PathBuf>,
    /// How often the worker sends a heartbeat.
    pub heartbeat_interval: Duration,
    /// Silence after which the worker is killed; a few intervals.
    pub heartbeat_timeout: Duration,
    /// How long past a request's deadline the worker may still answer before it is killed.
    pub kill_grace: Duration,
    /// How long start-up (`cuInit`, PTX, a tiny kernel) may take before `Hello`.
    pub startup_timeout: Duration,
    /// When to restart a failed worker, how often, and what then: level 0 of the worker's
    /// recovery ladder ([`GpuConfig::ladder`]). Its strategy is a restart; its escalation
    /// `Degrade` (the default) puts the worker on probation, `NotifyOperator` turns the GPU
    /// path off at once, none hands the failure to the probation level.
    pub restart: RecoveryPolicy,
    /// Level 1 of the ladder, the probation: the GPU path is degraded (every request runs on
    /// the CPU) while a worker runs unused; restarted as this says when it fails (by default
    /// once, 10 s later), then an operator is notified and the GPU path stays off. A worker
    /// that stays up for a whole window ends the escalation and takes requests again.
    pub probation: RecoveryPolicy,
    /// The window restarts are counted in, and their backoff.
    pub intensity: RestartIntensity,
    /// The device's breaker: GPU attempts that fail open it, and an open breaker sends every
    /// request to the CPU until it half-opens.
    pub breaker: CircuitBreakerConfig,
    /// Environment variables the worker keeps (the rest is cleared); a name ending in `*` is
    /// a prefix.
    pub env_passthrough: Vec<String>,
    /// Watch the device with NVML (temperature, throttling, ECC, Xid events).
    pub nvml: bool,
    /// A fault for the worker to inject (tests only).
    pub fault: Option<WorkerFault>,
    /// The longest frame either side reads, in bytes: the service sets it from its request
    /// body limit (a worker that writes bytes without a delimiter costs at most this much).
    pub max_frame_len: usize,
    /// How long to wait before starting a worker again after one reported that its backend
    /// cannot run here (no device, no driver, no PTX): a probe, not a restart loop.
    pub unavailable_retry: Duration,
}

impl GpuConfig {
    /// A config for the worker at `worker_path`: CUDA backend, heartbeats every 100 ms with
    /// a 1 s timeout, 250 ms kill grace, 30 s start-up, restarts 3 times in 60 s 1 s apart,
    /// the default breaker, NVML on.
    #[must_use]
    pub fn new(worker_path: impl Into<PathBuf>) -> Self {
        Self {
            worker_path: worker_path.into(),
            backend: BackendKind::Cuda,
            ptx_dir: None,
            heartbeat_interval: Duration::from_millis(100),
            heartbeat_timeout: Duration::from_secs(1),
            kill_grace: Duration::from_millis(250),
            startup_timeout: Duration::from_secs(30),
            restart: RecoveryPolicy {
                strategy: RecoveryStrategy::RestartKernel,
                max_restarts: 3,
                restart_delay: Duration::from_secs(1),
                escalation: Some(RecoveryStrategy::Degrade),
            },
            probation: RecoveryPolicy {
                strategy: RecoveryStrategy::RestartKernel,
                max_restarts: 1,
                restart_delay: Duration::from_secs(10),
                escalation: Some(RecoveryStrategy::NotifyOperator),
            },
            intensity: RestartIntensity::default(),
            breaker: CircuitBreakerConfig::DEFAULT,
            env_passthrough: vec!["PATH".into(), "LD_LIBRARY_PATH".into(), "CUDA_*".into()],
            nvml: true,
            fault: None,
            max_frame_len: protocol::MAX_FRAME_LEN,
            unavailable_retry: Duration::from_secs(60),
        }
    }

    /// `rustkernel-worker` in the directory of the running executable (where cargo and an
    /// install put it beside `rustkernel`); `None` when the executable's path is unknown.
    #[must_use]
    pub fn worker_beside_current_exe() -> Option<PathBuf> {
        let exe = std::env::current_exe().ok()?;
        Some(
            exe.parent()?
                .join(format!("rustkernel-worker{}", std::env::consts::EXE_SUFFIX)),
        )
    }

    /// Checks the durations, the policy, the intensity and the breaker.
    ///
    /// # Errors
    /// [`GpuError::Config`] naming the problem.
    pub fn validate(&self) -> Result<(), GpuError> {
        let bad = |why: String| Err(GpuError::Config(why));
        if self.heartbeat_interval.is_zero() {
            return bad("heartbeat_interval must be above zero".into());
        }
        if self.heartbeat_timeout <= self.heartbeat_interval {
            return bad(format!(
                "heartbeat_timeout ({:?}) must be longer than heartbeat_interval ({:?})",
                self.heartbeat_timeout, self.heartbeat_interval
            ));
        }
        if self.startup_timeout.is_zero() {
            return bad("startup_timeout must be above zero".into());
        }
        if self.max_frame_len < 1024 {
            return bad(format!(
                "max_frame_len ({} bytes) must be at least 1024",
                self.max_frame_len
            ));
        }
        self.ladder()?;
        self.breaker
            .validate()
            .map_err(|e| GpuError::Config(format!("breaker: {e}")))?;
        Ok(())
    }

    /// The worker's recovery ladder: level 0 restarts ([`restart`](Self::restart)), level 1 the
    /// probation ([`probation`](Self::probation)), both counted in [`intensity`](Self::intensity)'s
    /// window. The tokio [`Supervisor`](rustkernel_tokio::supervisor::Supervisor) carries it out.
    ///
    /// # Errors
    /// [`GpuError::Config`] for an invalid policy, or a strategy the worker has no kernel for
    /// (both levels restart the worker; escalations are `Degrade` or `NotifyOperator`).
    pub fn ladder(&self) -> Result<RecoveryLadder<2>, GpuError> {
        let level =
            |name: &str, policy: RecoveryPolicy, escalations: &[Option<RecoveryStrategy>]| {
                if policy.strategy != RecoveryStrategy::RestartKernel {
                    return Err(GpuError::Config(format!(
                        "{name} policy: the worker's strategy is restart_kernel, not {}",
                        policy.strategy
                    )));
                }
                if !escalations.contains(&policy.escalation) {
                    return Err(GpuError::Config(format!(
                        "{name} policy: escalation {} is not one the GPU path carries out",
                        policy
                            .escalation
                            .map_or_else(|| "none".to_owned(), |s| s.to_string())
                    )));
                }
                Recovery::try_new(policy, self.intensity)
                    .map_err(|e| GpuError::Config(format!("{name} policy: {e}")))
            };
        let restarts = level(
            "restart",
            self.restart,
            &[
                None,
                Some(RecoveryStrategy::Degrade),
                Some(RecoveryStrategy::NotifyOperator),
            ],
        )?;
        let probation = level(
            "probation",
            self.probation,
            &[None, Some(RecoveryStrategy::NotifyOperator)],
        )?;
        Ok(RecoveryLadder::new([restarts, probation]))
    }

    /// The frame limit for a service whose request bodies are at most `body_limit` bytes: a
    /// request's frame is at most four times its JSON body (the shortest JSON number, `0,`,
    /// is 2 bytes; postcard writes an `f64` in 8), plus COBS's one byte in 254 and room for
    /// the frame's header; a reply is smaller than its request.
    #[must_use]
    pub fn frame_limit_for_body(body_limit: usize) -> usize {
        body_limit
            .saturating_mul(4)
            .saturating_add(body_limit / 50)
            .saturating_add(64 * 1024)
    }

    /// How long a worker may be silent (no heartbeat, no bytes) before the requests waiting
    /// for it fail over to the CPU: three heartbeat intervals or a third of the heartbeat
    /// timeout, whichever is longer, and at most two thirds of the timeout (the kill).
    #[must_use]
    pub fn stall_after(&self) -> Duration {
        (self.heartbeat_interval * 3)
            .max(self.heartbeat_timeout / 3)
            .min(self.heartbeat_timeout * 2 / 3)
    }

    /// The worker's command line for the worker started `generation`-th (0 = the first).
    #[must_use]
    pub fn worker_args(&self, generation: u32) -> Vec<String> {
        let mut args = vec![
            "--backend".to_owned(),
            match self.backend {
                BackendKind::Cpu => "cpu",
                BackendKind::Cuda => "cuda",
            }
            .to_owned(),
            "--heartbeat-ms".to_owned(),
            self.heartbeat_interval.as_millis().max(1).to_string(),
            "--init-timeout-ms".to_owned(),
            self.startup_timeout.as_millis().to_string(),
            "--max-frame-bytes".to_owned(),
            self.max_frame_len.to_string(),
        ];
        if let Some(dir) = &self.ptx_dir {
            args.push("--ptx-dir".into());
            args.push(dir.display().to_string());
        }
        if let Some(fault) = self.fault.filter(|f| generation < f.workers) {
            args.extend([
                "--fault".into(),
                fault.kind.as_str().into(),
                "--fault-on".into(),
                fault.on_request.to_string(),
            ]);
        }
        args
    }

    /// The environment the worker gets: the service's variables that
    /// [`env_passthrough`](Self::env_passthrough) names, nothing else.
    #[must_use]
    pub fn worker_env(&self) -> Vec<(String, String)> {
        std::env::vars()
            .filter(|(name, _)| {
                self.env_passthrough
                    .iter()
                    .any(|keep| match keep.strip_suffix('*') {
                        Some(prefix) => name.starts_with(prefix),
                        None => name == keep,
                    })
            })
            .collect()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn faults_go_only_to_the_workers_they_name() {
        let mut config = GpuConfig::new("/bin/false");
        config.backend = BackendKind::Cpu;
        config.fault = Some(WorkerFault {
            kind: FaultKind::Crash,
            on_request: 2,
            workers: 1,
        });
        let first = config.worker_args(0).join(" ");
        assert!(first.contains("--fault crash --fault-on 2"), "{first}");
        assert!(!config.worker_args(1).join(" ").contains("--fault"));
        assert!(
            first.starts_with("--backend cpu --heartbeat-ms 100"),
            "{first}"
        );
    }

    #[test]
    fn the_frame_limit_follows_the_body_limit() {
        let config = GpuConfig::new("w");
        assert_eq!(config.max_frame_len, protocol::MAX_FRAME_LEN);
        let limit = GpuConfig::frame_limit_for_body(16 * 1024 * 1024);
        assert!(
            limit > 4 * 16 * 1024 * 1024 && limit < 5 * 16 * 1024 * 1024,
            "{limit}"
        );
        let mut config = GpuConfig::new("w");
        config.max_frame_len = 10;
        assert!(
            matches!(config.validate(), Err(GpuError::Config(m)) if m.contains("max_frame_len"))
        );
        let args = GpuConfig::new("w").worker_args(0).join(" ");
        assert!(
            args.contains(&format!("--max-frame-bytes {}", protocol::MAX_FRAME_LEN)),
            "{args}"
        );
    }

    #[test]
    fn a_worker_is_called_silent_well_before_it_is_killed() {
        let mut config = GpuConfig::new("w");
        assert_eq!(config.stall_after(), Duration::from_secs(1) / 3);
        config.heartbeat_interval = Duration::from_millis(20);
        config.heartbeat_timeout = Duration::from_millis(300);
        assert_eq!(config.stall_after(), Duration::from_millis(100));
        config.heartbeat_interval = Duration::from_millis(100);
        config.heartbeat_timeout = Duration::from_millis(150);
        assert_eq!(config.stall_after(), Duration::from_millis(100));
    }

    #[test]
    fn config_validation_names_the_problem() {
        let mut config = GpuConfig::new("w");
        assert!(config.validate().is_ok());
        config.heartbeat_timeout = config.heartbeat_interval;
        assert!(
            matches!(config.validate(), Err(GpuError::Config(m)) if m.contains("heartbeat_timeout"))
        );
        let mut config = GpuConfig::new("w");
        config.restart.max_restarts = 10_000;
        assert!(
            matches!(config.validate(), Err(GpuError::Config(m)) if m.contains("restart policy"))
        );
        let mut config = GpuConfig::new("w");
        config.restart.escalation = Some(RecoveryStrategy::Failover);
        assert!(
            matches!(config.validate(), Err(GpuError::Config(m)) if m.contains("escalation failover"))
        );
        let mut config = GpuConfig::new("w");
        config.probation.strategy = RecoveryStrategy::Degrade;
        assert!(
            matches!(config.validate(), Err(GpuError::Config(m)) if m.starts_with("probation policy"))
        );
    }
}
