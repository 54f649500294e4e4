//! What the GPU path publishes: the worker's [`WorkerPhase`], the [`GpuStatus`] around it,
//! and the `gpu` health component's verdict.

use rustkernel_core::resilience::{HealthCheckResult, HealthStatus};

use super::nvml;

/// Where the worker is in its life, for health and for `execute`.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum WorkerPhase {
    /// Starting (the first time); requests go to the CPU meanwhile.
    Starting,
    /// Ready: requests go to the worker.
    Ready {
        /// `"cuda"` or `"cpu"`.
        backend: String,
        /// The device.
        device: String,
    },
    /// Failed and waiting for its restart.
    Restarting {
        /// The restart's number since the worker was last healthy for a window.
        attempt: u32,
        /// The last failure.
        reason: String,
    },
    /// The backend says it cannot run here (no device, no PTX); probed again later.
    Unavailable {
        /// The worker's reason.
        reason: String,
    },
    /// Failed more often than the restart intensity allows: every request runs on the CPU
    /// while a worker is on probation (level 1 of [`GpuConfig::ladder`](super::GpuConfig::ladder));
    /// a worker that stays up for a window brings the GPU path back.
    Degraded {
        /// The last failure.
        reason: String,
    },
    /// The probation failed too and an operator was notified: the GPU path stays off (every
    /// request runs on the CPU) until the service restarts.
    Off {
        /// The last failure.
        reason: String,
    },
    /// Shut down.
    Stopped,
}

/// What the supervisor publishes about the GPU path: [`GpuExecutor::status`](super::GpuExecutor::status).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct GpuStatus {
    /// Where the worker is in its life.
    pub phase: WorkerPhase,
    /// A hardware Xid that makes the device unhealthy until a worker starts cleanly again.
    pub hardware_xid: Option<u64>,
    /// Application Xids seen (counted against the kernels, not the device).
    pub application_xids: u64,
    /// Workers started so far (1 after a clean start; each restart adds one).
    pub workers_started: u64,
    /// The current worker's process id.
    pub worker_pid: Option<u32>,
    /// NVML's verdict, `None` when NVML is not asked or has not answered yet.
    pub nvml: Option<nvml::NvmlStatus>,
    /// Why the worker last failed, if it ever did.
    pub last_failure: Option<String>,
    /// The worker has been silent (no heartbeat, no bytes) for [`GpuConfig::stall_after`](super::GpuConfig::stall_after):
    /// requests go to the CPU until it speaks again or is replaced.
    pub worker_silent: bool,
}

impl GpuStatus {
    /// The status before the first worker starts.
    #[must_use]
    pub fn starting() -> Self {
        Self {
            phase: WorkerPhase::Starting,
            hardware_xid: None,
            application_xids: 0,
            workers_started: 0,
            worker_pid: None,
            nvml: None,
            last_failure: None,
            worker_silent: false,
        }
    }

    /// Whether requests go to the worker: it is ready and not silent.
    #[must_use]
    pub fn usable(&self) -> bool {
        matches!(self.phase, WorkerPhase::Ready { .. }) && !self.worker_silent
    }

    /// The `gpu` health component's verdict (see [`GpuExecutor::health`](super::GpuExecutor::health)).
    #[must_use]
    pub fn health(&self) -> HealthCheckResult {
        let state = self;
        if let Some(xid) = state.hardware_xid {
            return HealthCheckResult::unhealthy(&format!("hardware Xid {xid}"));
        }
        match &state.phase {
            WorkerPhase::Starting => HealthCheckResult::degraded("GPU worker starting"),
            WorkerPhase::Ready { backend, device } => match &state.nvml {
                Some(nvml::NvmlStatus::Unknown(why)) => {
                    HealthCheckResult::new(HealthStatus::Healthy, &format!("unknown: {why}"))
                }
                Some(nvml::NvmlStatus::Degraded(why)) => HealthCheckResult::degraded(why),
                Some(nvml::NvmlStatus::Ok(summary)) => HealthCheckResult::new(
                    HealthStatus::Healthy,
                    &format!("ready: {backend} on {device}; {summary}"),
                ),
                None => HealthCheckResult::new(
                    HealthStatus::Healthy,
                    &format!("ready: {backend} on {device}"),
                ),
            },
            WorkerPhase::Restarting { attempt, reason } => {
                HealthCheckResult::degraded(&format!("worker restarting (#{attempt}): {reason}"))
            }
            WorkerPhase::Unavailable { reason } => {
                HealthCheckResult::unhealthy(&format!("GPU unavailable: {reason}"))
            }
            WorkerPhase::Degraded { reason } => {
                HealthCheckResult::unhealthy(&format!("worker on probation, CPU serves: {reason}"))
            }
            WorkerPhase::Off { reason } => {
                HealthCheckResult::unhealthy(&format!("GPU off, operator notified: {reason}"))
            }
            WorkerPhase::Stopped => HealthCheckResult::unhealthy("GPU executor stopped"),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn health_messages_say_why() {
        let mut state = GpuStatus {
            phase: WorkerPhase::Unavailable {
                reason: "no device".into(),
            },
            ..GpuStatus::starting()
        };
        let h = state.health();
        assert_eq!(
            (h.status, h.message()),
            (HealthStatus::Unhealthy, "GPU unavailable: no device")
        );
        state.phase = WorkerPhase::Ready {
            backend: "cuda".into(),
            device: "H200".into(),
        };
        state.nvml = Some(nvml::NvmlStatus::Unknown("NVML not found".into()));
        let h = state.health();
        assert_eq!(
            (h.status, h.message()),
            (HealthStatus::Healthy, "unknown: NVML not found")
        );
        state.hardware_xid = Some(79);
        let h = state.health();
        assert_eq!(
            (h.status, h.message()),
            (HealthStatus::Unhealthy, "hardware Xid 79")
        );
        state.hardware_xid = None;
        state.phase = WorkerPhase::Degraded {
            reason: "worker exited".into(),
        };
        assert_eq!(
            state.health().message(),
            "worker on probation, CPU serves: worker exited"
        );
        state.phase = WorkerPhase::Off {
            reason: "worker exited".into(),
        };
        assert_eq!(
            (state.health().status, state.health().message()),
            (
                HealthStatus::Unhealthy,
                "GPU off, operator notified: worker exited"
            )
        );
    }
}
