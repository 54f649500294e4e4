//! What runs a request inside the worker: the [`GpuBackend`] trait, the [`CpuBackend`] that
//! stands in for a GPU, and how a kernel error travels back ([`kernel_wire_error`]). The CUDA
//! backend (feature `cuda`) is in its own module.

use std::time::Instant;

use rustkernel_core::error::Classify;

use super::args::FaultKind;
use super::protocol::WireError;
use crate::kernels::{self, KernelError, KernelRequest, KernelResponse};

/// What a backend must do: run one validated request before a deadline.
pub trait GpuBackend: Send {
    /// `"cpu"` or `"cuda"`.
    fn name(&self) -> &'static str;
    /// The device, for logs and health messages.
    fn device(&self) -> String;
    /// Runs `request`; stops (or is abandoned by the service) at `deadline`.
    ///
    /// # Errors
    /// A classified [`WireError`]; `poisoned` set when the context is unusable.
    fn run(
        &mut self,
        request: &KernelRequest,
        deadline: Instant,
    ) -> Result<KernelResponse, WireError>;
    /// Carries out a device fault ([`FaultKind::GpuOutOfBounds`], [`FaultKind::GpuHang`]) on
    /// the device, if the backend has one: `Some` error to reply with, always `poisoned` (the
    /// worker exits after it); it may never return (a hung kernel). `None` (the default):
    /// no device, and the worker stands in for the fault on the host.
    fn inject_fault(&mut self, fault: FaultKind) -> Option<WireError> {
        let _ = fault;
        None
    }
}

/// Runs the CPU implementations ([`kernels::run_cpu`]), cancelled at the deadline.
#[derive(Clone, Copy, Debug, Default)]
pub struct CpuBackend;

impl GpuBackend for CpuBackend {
    fn name(&self) -> &'static str {
        "cpu"
    }

    fn device(&self) -> String {
        "host CPU".into()
    }

    fn run(
        &mut self,
        request: &KernelRequest,
        deadline: Instant,
    ) -> Result<KernelResponse, WireError> {
        kernels::run_cpu(request, &|| Instant::now() >= deadline).map_err(|e| kernel_wire_error(&e))
    }
}

/// A kernel error as the worker sends it (never poisoned).
#[must_use]
pub fn kernel_wire_error(error: &KernelError) -> WireError {
    WireError {
        kind: error.kind(),
        poisoned: false,
        code: None,
        message: error.to_string(),
    }
}
