//! The worker's CUDA backend (feature `cuda`): [`rustkernel_cuda`] behind [`GpuBackend`].
//!
//! Only `rustkernel-worker` calls into this module; the service binary never does, so it never
//! needs `libcuda` at run time.

use std::path::PathBuf;
use std::time::Instant;

use rustkernel_cuda::{CsrView, CudaDevice, CudaError, PageRankParams};

use super::protocol::WireError;
use super::worker::{GpuBackend, WorkerArgs, kernel_wire_error};
use crate::kernels::{Csr, KernelRequest, KernelResponse, MatMulOutput, PageRankOutput};

struct CudaBackend {
    device: CudaDevice,
    name: String,
}

/// Where the PTX is when `--ptx-dir` is not given: `ptx/` beside the worker executable.
fn default_ptx_dir() -> PathBuf {
    std::env::current_exe()
        .ok()
        .and_then(|exe| exe.parent().map(|dir| dir.join("ptx")))
        .unwrap_or_else(|| PathBuf::from("ptx"))
}

pub(super) fn init(args: &WorkerArgs, deadline: Instant) -> Result<Box<dyn GpuBackend>, String> {
    let dir = args.ptx_dir.clone().unwrap_or_else(default_ptx_dir);
    let device = CudaDevice::init(&dir, deadline).map_err(|e| e.to_string())?;
    let name = device.name();
    Ok(Box::new(CudaBackend { device, name }))
}

fn wire(e: &CudaError) -> WireError {
    WireError {
        kind: e.kind(),
        poisoned: e.is_sticky(),
        code: (e.code != CudaError::deadline().code).then_some(e.code),
        message: e.message.clone(),
    }
}

impl GpuBackend for CudaBackend {
    fn name(&self) -> &'static str {
        "cuda"
    }

    fn device(&self) -> String {
        self.name.clone()
    }

    fn run(
        &mut self,
        request: &KernelRequest,
        deadline: Instant,
    ) -> Result<KernelResponse, WireError> {
        match request {
            KernelRequest::PageRank(input) => {
                let csr = Csr::build(input).map_err(|e| kernel_wire_error(&e))?;
                let view = CsrView {
                    offsets: &csr.offsets,
                    sources: &csr.sources,
                    inv_out_degree: &csr.inv_out_degree,
                };
                let params = PageRankParams {
                    damping: input.damping,
                    max_iterations: input.max_iterations,
                    tolerance: input.tolerance,
                };
                let (ranks, iterations) = self
                    .device
                    .pagerank(view, params, deadline)
                    .map_err(|e| wire(&e))?;
                Ok(KernelResponse::PageRank(PageRankOutput {
                    ranks,
                    iterations,
                }))
            }
            KernelRequest::MatMul(input) => {
                let c = self
                    .device
                    .matmul(input.n, &input.a, &input.b)
                    .map_err(|e| wire(&e))?;
                Ok(KernelResponse::MatMul(MatMulOutput { n: input.n, c }))
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use rustkernel_core::error::ErrorKind;

    use super::*;

    #[test]
    fn sticky_errors_poison_and_ordinary_ones_do_not() {
        let e = |code| CudaError {
            code,
            message: "m".into(),
        };
        let sticky = wire(&e(700));
        assert_eq!(
            (sticky.kind, sticky.poisoned, sticky.code),
            (ErrorKind::Permanent, true, Some(700))
        );
        let oom = wire(&e(2));
        assert_eq!(
            (oom.kind, oom.poisoned),
            (ErrorKind::ResourceExhausted, false)
        );
        let late = wire(&CudaError::deadline());
        assert_eq!(
            (late.kind, late.poisoned, late.code),
            (ErrorKind::Timeout, false, None)
        );
    }
}
