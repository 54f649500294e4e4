//! The worker's CUDA backend (feature `cuda`): [`rustkernel_cuda`] behind [`GpuBackend`].
//!
//! Only `rustkernel-worker` calls into this module; the service binary never does, so it never
//! needs `libcuda` at run time. The kernels' PTX is built into the worker (committed in
//! `host/cuda/ptx/`, regenerated and checked by `scripts/build-ptx.sh` and
//! `scripts/ptx-check.sh`); `--ptx-dir DIR` loads `DIR/{pagerank,matmul,faults}.ptx` instead.

use std::time::Instant;

use rustkernel_cuda::{CsrView, CudaDevice, CudaError, DeviceFault, PageRankParams, PtxSource};

use super::args::{FaultKind, WorkerArgs};
use super::backend::{GpuBackend, kernel_wire_error};
use super::protocol::WireError;
use crate::kernels::{
    Csr, KernelRequest, KernelResponse, MatMulOutput, PageRankCheckpoint, PageRankOutput,
};

struct CudaBackend {
    device: CudaDevice,
    name: String,
}

/// The PTX the worker loads: the embedded one, or `--ptx-dir`'s files.
fn ptx_source(args: &WorkerArgs) -> PtxSource {
    args.ptx_dir
        .clone()
        .map_or(PtxSource::Embedded, PtxSource::Dir)
}

pub(super) fn init(args: &WorkerArgs, deadline: Instant) -> Result<Box<dyn GpuBackend>, String> {
    let device = CudaDevice::init(ptx_source(args), deadline).map_err(|e| e.to_string())?;
    let name = device.name();
    Ok(Box::new(CudaBackend { device, name }))
}

fn wire(e: &CudaError) -> WireError {
    WireError {
        kind: e.kind(),
        poisoned: e.is_sticky(),
        code: (!e.is_deadline()).then_some(e.code),
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
            KernelRequest::PageRankSteps(steps) => {
                let input = &steps.input;
                let csr = Csr::build(input).map_err(|e| kernel_wire_error(&e))?;
                let view = CsrView {
                    offsets: &csr.offsets,
                    sources: &csr.sources,
                    inv_out_degree: &csr.inv_out_degree,
                };
                let left = input.max_iterations.saturating_sub(steps.from.iteration);
                let chunk = steps.iterations.min(left);
                let params = PageRankParams {
                    damping: input.damping,
                    max_iterations: chunk,
                    tolerance: input.tolerance,
                };
                let (ranks, ran) = if steps.from.converged || chunk == 0 {
                    (steps.from.ranks.clone(), 0)
                } else {
                    self.device
                        .pagerank_from(view, params, &steps.from.ranks, deadline)
                        .map_err(|e| wire(&e))?
                };
                Ok(KernelResponse::PageRankState(PageRankCheckpoint {
                    iteration: steps.from.iteration.saturating_add(ran),
                    ranks,
                    // Stopping before the chunk's end is the device's convergence rule. A
                    // change under the tolerance in the chunk's last iteration is not read
                    // back: the next chunk runs one more iteration than the CPU would.
                    converged: steps.from.converged || ran < chunk,
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

    /// `gpu-oob` and `gpu-hang` launch the real fault kernels (host/cuda/faults.cu): the
    /// out-of-bounds store returns a sticky 700; the spin never returns, and the service
    /// kills the worker at the deadline plus its grace.
    fn inject_fault(&mut self, fault: FaultKind) -> Option<WireError> {
        let fault = match fault {
            FaultKind::GpuOutOfBounds => DeviceFault::OutOfBounds,
            FaultKind::GpuHang => DeviceFault::Hang,
            _ => return None,
        };
        Some(wire(&self.device.inject(fault)))
    }
}

#[cfg(test)]
mod tests {
    use rustkernel_core::error::ErrorKind;

    use super::*;

    #[test]
    fn sticky_errors_poison_and_ordinary_ones_do_not() {
        let e = |code| CudaError::new(code, "m");
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
        let too_new = wire(&e(222));
        assert_eq!(
            (too_new.kind, too_new.poisoned, too_new.code),
            (ErrorKind::Unavailable, false, Some(222))
        );
        // An error cust could not name, on a context that fails every call since.
        let lost = wire(&CudaError {
            context_lost: true,
            ..e(999)
        });
        assert_eq!(
            (lost.kind, lost.poisoned, lost.code),
            (ErrorKind::Permanent, true, Some(999))
        );
        for code in [700, 702, 710, 714, 715, 716, 717, 718, 719] {
            assert!(wire(&e(code)).poisoned, "{code}");
        }
        for code in [1, 2, 214, 701, 720, 999] {
            assert!(!wire(&e(code)).poisoned, "{code}");
        }
    }
}
