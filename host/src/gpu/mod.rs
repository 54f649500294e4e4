//! GPU kernels in a worker process: the wire protocol, the worker's loop, the service's
//! supervisor and executor, and NVML device health.
//!
//! The service never links CUDA: GPU work runs in `rustkernel-worker` (built with the `cuda`
//! feature for the CUDA backend), which the service starts, feeds requests with deadlines,
//! and kills when a deadline passes, when heartbeats stop, when it reports a poisoned context
//! or when its bytes do not decode. [`GpuExecutor`] is what the service calls; it fails over
//! to the CPU implementation of each kernel whenever the GPU path is unavailable.
//!
//! - [`config`]: [`GpuConfig`], the worker's command line and its recovery ladder.
//! - [`pool`]: [`GpuExecutor`], the routing between the worker and the CPU.
//! - [`supervised`]: the worker as a kernel of the tokio supervisor (heartbeats, deadlines,
//!   kills).
//! - [`transport`]: how a worker is reached ([`PipeTransport`]: a child process's pipes).
//! - [`status`]: [`GpuStatus`], [`WorkerPhase`], the `gpu` health verdict.
//! - [`protocol`]: the frames between the service and the worker.
//! - [`worker`]: the worker's loop; [`args`] its command line, [`backend`] what runs a
//!   request in it (the CUDA backend is behind the `cuda` feature).
//! - [`nvml`]: Xid classification and the NVML watcher.

use std::fmt;

use rustkernel_core::error::{Classify, ErrorKind};

use crate::kernels::KernelError;

pub mod args;
pub mod backend;
pub mod config;
mod costs;
#[cfg(feature = "cuda")]
mod cuda_backend;
pub mod nvml;
pub mod pool;
pub mod protocol;
pub mod status;
pub mod supervised;
pub mod transport;
pub mod worker;

pub use config::{GpuConfig, WorkerFault};
pub use pool::GpuExecutor;
pub use status::{GpuStatus, WorkerPhase};
pub use transport::{PipeTransport, WorkerLink, WorkerProcess, WorkerTransport};
pub use worker::{BackendKind, FaultKind};

/// Which path computed a response.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, serde::Serialize, serde::Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Backend {
    /// The worker process (its CUDA backend; in tests, its CPU backend stands in).
    Gpu,
    /// The service's own CPU implementation (failover).
    Cpu,
}

impl Backend {
    /// `"gpu"` or `"cpu"`, for headers, metrics and logs.
    #[must_use]
    pub const fn as_str(self) -> &'static str {
        match self {
            Backend::Gpu => "gpu",
            Backend::Cpu => "cpu",
        }
    }
}

/// Why [`GpuExecutor`] has no response.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum GpuError {
    /// The request is not valid for its kernel (neither path would run it).
    InvalidInput(KernelError),
    /// The deadline passed before any path answered.
    DeadlineExceeded,
    /// The CPU kernel failed.
    Kernel(KernelError),
    /// The executor's config is invalid.
    Config(String),
}

impl fmt::Display for GpuError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            GpuError::InvalidInput(e) | GpuError::Kernel(e) => fmt::Display::fmt(e, f),
            GpuError::DeadlineExceeded => {
                f.write_str("deadline exceeded before the kernel finished")
            }
            GpuError::Config(why) => write!(f, "invalid GPU config: {why}"),
        }
    }
}

impl std::error::Error for GpuError {
    fn source(&self) -> Option<&(dyn std::error::Error + 'static)> {
        match self {
            GpuError::InvalidInput(e) | GpuError::Kernel(e) => Some(e),
            _ => None,
        }
    }
}

/// Invalid requests and configs are [`ErrorKind::InvalidInput`], a passed deadline is
/// [`ErrorKind::Timeout`], a CPU kernel failure keeps its own kind.
impl Classify for GpuError {
    fn kind(&self) -> ErrorKind {
        match self {
            GpuError::InvalidInput(_) | GpuError::Config(_) => ErrorKind::InvalidInput,
            GpuError::DeadlineExceeded => ErrorKind::Timeout,
            GpuError::Kernel(e) => e.kind(),
        }
    }
}
