//! The cust side: context, modules, launches.

use std::fmt;
use std::time::Instant;

use cust::CudaApiVersion;
use cust::context::{Context, CurrentContext};
use cust::device::{Device, DeviceAttribute};
use cust::error::CudaError as CustError;
use cust::launch;
use cust::memory::{CopyDestination, DeviceBuffer, LockedBuffer};
use cust::module::Module;
use cust::stream::{Stream, StreamFlags};

use crate::{
    CUDA_ERROR_INVALID_PTX, CUDA_ERROR_INVALID_VALUE, CUDA_ERROR_NO_BINARY_FOR_GPU,
    CUDA_ERROR_UNKNOWN, CsrView, CudaError, DeviceFault, FAULTS_PTX, InitError, MATMUL_PTX,
    PAGERANK_CHECK_EVERY, PAGERANK_PTX, PageRankParams, PtxModule, PtxSource, pagerank_stop,
    ptx_isa_version, ptx_target, unsupported_gpu, unsupported_ptx,
};

/// Threads per block of the 1-D kernels (must match `BLOCK` in pagerank.cu).
const BLOCK: u32 = 256;
/// The matmul kernel's tile side (must match `TILE` in matmul.cu).
const TILE: u32 = 16;

/// A cust error as this crate's, with what failed. cust 0.3.2 names the codes of CUDA 11's
/// `cuda.h` and turns every other one into `UnknownError` (999).
fn cuda(what: &str, e: CustError) -> CudaError {
    CudaError::new(e as u32, format!("{what}: {e}"))
}

fn err(what: &'static str) -> impl Fn(CustError) -> CudaError {
    move |e| cuda(what, e)
}

/// The driver's CUDA version as `cuDriverGetVersion` gives it (12040 for 12.4).
fn driver_version() -> Option<u32> {
    let v = CudaApiVersion::get().ok()?;
    let major = u32::try_from(v.major()).ok()?;
    let minor = u32::try_from(v.minor()).ok()?;
    major.checked_mul(1000)?.checked_add(minor.checked_mul(10)?)
}

/// The device's compute capability as `10 * major + minor`.
fn compute_capability(device: Device) -> Option<u32> {
    let get = |attribute| {
        device
            .get_attribute(attribute)
            .ok()
            .and_then(|v| u32::try_from(v).ok())
    };
    let major = get(DeviceAttribute::ComputeCapabilityMajor)?;
    let minor = get(DeviceAttribute::ComputeCapabilityMinor)?;
    major.checked_mul(10)?.checked_add(minor)
}

/// Loads a module. A failed load names its cause when it can: a PTX too new for the driver
/// (222, although cust reports it as 999; drivers before CUDA 11.1 said 218), or a GPU older
/// than the PTX's target.
fn load(source: &PtxSource, module: PtxModule, device: Device) -> Result<Module, InitError> {
    let text = source.read(module)?;
    let what = source.describe(module);
    if text.contains('\0') {
        // Module::from_ptx would panic on it.
        return Err(InitError::Cuda(CudaError::new(
            CUDA_ERROR_INVALID_PTX,
            format!("loading {what}: the PTX contains a NUL byte"),
        )));
    }
    Module::from_ptx(&text, &[]).map_err(|e| {
        let code = e as u32;
        let too_new = || unsupported_ptx(&what, ptx_isa_version(&text)?, driver_version()?);
        let too_old =
            || unsupported_gpu(&what, ptx_target(&text)?, compute_capability(device)?, code);
        let named = [
            CUDA_ERROR_UNKNOWN,
            CUDA_ERROR_INVALID_PTX,
            CUDA_ERROR_NO_BINARY_FOR_GPU,
        ]
        .contains(&code)
        .then(|| too_new().or_else(too_old))
        .flatten();
        InitError::Cuda(named.unwrap_or_else(|| cuda(&format!("loading {what}"), e)))
    })
}

pub(crate) struct Inner {
    device: Device,
    pagerank: Module,
    matmul: Module,
    stream: Stream,
    ptx: PtxSource,
    // Dropped last: the modules and the stream belong to it.
    _context: Context,
}

impl fmt::Debug for Inner {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Inner")
            .field("device", &self.name())
            .field("ptx", &self.ptx)
            .finish_non_exhaustive()
    }
}

impl Inner {
    pub(crate) fn init(ptx: PtxSource, deadline: Instant) -> Result<Self, InitError> {
        match cust::init(cust::CudaFlags::empty()) {
            Ok(()) => {}
            Err(CustError::NoDevice) => return Err(InitError::NoDevice),
            Err(e) => return Err(InitError::Cuda(cuda("cuInit", e))),
        }
        let device = Device::get_device(0).map_err(|e| InitError::Cuda(cuda("cuDeviceGet", e)))?;
        let context = Context::new(device).map_err(|e| InitError::Cuda(cuda("context", e)))?;
        let pagerank = load(&ptx, PAGERANK_PTX, device)?;
        let matmul = load(&ptx, MATMUL_PTX, device)?;
        // A blocking stream: ordered with the synchronous copies on the default stream.
        let stream = Stream::new(StreamFlags::DEFAULT, None)
            .map_err(|e| InitError::Cuda(cuda("stream", e)))?;
        let inner = Self {
            device,
            pagerank,
            matmul,
            stream,
            ptx,
            _context: context,
        };
        if Instant::now() >= deadline {
            return Err(InitError::Timeout);
        }
        // The tiny kernel: the worker is ready only once a launch has given a right answer.
        let c = inner
            .matmul(2, &[1.0, 2.0, 3.0, 4.0], &[5.0, 6.0, 7.0, 8.0])
            .map_err(InitError::Cuda)?;
        if c != [19.0, 22.0, 43.0, 50.0] {
            return Err(InitError::Cuda(CudaError::new(
                CUDA_ERROR_UNKNOWN,
                format!("start-up self-test: 2x2 matmul gave {c:?}"),
            )));
        }
        if Instant::now() >= deadline {
            return Err(InitError::Timeout);
        }
        Ok(inner)
    }

    pub(crate) fn name(&self) -> String {
        self.device
            .name()
            .unwrap_or_else(|_| "CUDA device 0".into())
    }

    /// An error cust could not name (999) may be a sticky one of a newer `cuda.h`: if the
    /// context now fails a synchronisation too, it is lost.
    fn checked(&self, e: CudaError) -> CudaError {
        if e.code == CUDA_ERROR_UNKNOWN && !e.context_lost && CurrentContext::synchronize().is_err()
        {
            return CudaError {
                context_lost: true,
                ..e
            };
        }
        e
    }

    pub(crate) fn pagerank(
        &self,
        csr: CsrView<'_>,
        params: PageRankParams,
        deadline: Instant,
    ) -> Result<(Vec<f64>, u32), CudaError> {
        self.pagerank_from(csr, params, None, deadline)
    }

    /// From `initial` ranks (uniform when `None`).
    pub(crate) fn pagerank_from(
        &self,
        csr: CsrView<'_>,
        params: PageRankParams,
        initial: Option<&[f64]>,
        deadline: Instant,
    ) -> Result<(Vec<f64>, u32), CudaError> {
        self.pagerank_unchecked(csr, params, initial, deadline)
            .map_err(|e| self.checked(e))
    }

    fn pagerank_unchecked(
        &self,
        csr: CsrView<'_>,
        params: PageRankParams,
        initial: Option<&[f64]>,
        deadline: Instant,
    ) -> Result<(Vec<f64>, u32), CudaError> {
        let len = csr.inv_out_degree.len();
        let n = u32::try_from(len)
            .ok()
            .filter(|&n| n > 0 && csr.offsets.len() == len + 1)
            .ok_or_else(|| {
                CudaError::new(CUDA_ERROR_INVALID_VALUE, "a graph of 1 to 2^32 - 1 nodes")
            })?;
        let initial = match initial {
            None => vec![1.0 / f64::from(n); len],
            Some(ranks) if ranks.len() == len => ranks.to_vec(),
            Some(_) => {
                return Err(CudaError::new(
                    CUDA_ERROR_INVALID_VALUE,
                    "initial ranks: one per node",
                ));
            }
        };
        let cap = params.max_iterations;
        if cap == 0 {
            return Ok((initial, 0));
        }
        let offsets = DeviceBuffer::from_slice(csr.offsets).map_err(err("copying offsets"))?;
        // An empty edge list still needs a valid pointer.
        let sources = if csr.sources.is_empty() {
            &[0u32][..]
        } else {
            csr.sources
        };
        let sources = DeviceBuffer::from_slice(sources).map_err(err("copying sources"))?;
        let inv = DeviceBuffer::from_slice(csr.inv_out_degree).map_err(err("copying degrees"))?;
        // The ranks alternate between the two: iteration i reads `even` when i is even.
        let even = DeviceBuffer::from_slice(&initial).map_err(err("allocating ranks"))?;
        let odd = DeviceBuffer::<f64>::zeroed(len).map_err(err("allocating ranks"))?;
        let contrib = DeviceBuffer::<f64>::zeroed(len).map_err(err("allocating contributions"))?;
        // One slot per iteration, zeroed once: nothing is reset between iterations.
        let slots = cap as usize;
        let dangling = DeviceBuffer::<f64>::zeroed(slots).map_err(err("allocating scalars"))?;
        let change = DeviceBuffer::<f64>::zeroed(slots).map_err(err("allocating scalars"))?;
        // Page-locked: the one copy per batch goes straight to it by DMA.
        let mut changes = LockedBuffer::new(&0.0f64, PAGERANK_CHECK_EVERY as usize)
            .map_err(err("allocating page-locked memory"))?;
        let contrib_fn = self
            .pagerank
            .get_function("pagerank_contrib")
            .map_err(err("pagerank_contrib"))?;
        let spmv_fn = self
            .pagerank
            .get_function("pagerank_spmv")
            .map_err(err("pagerank_spmv"))?;
        let grid = n.div_ceil(BLOCK);
        let stream = &self.stream;
        let mut launched = 0u32;
        let mut stopped = None;
        while launched < cap {
            if Instant::now() >= deadline {
                return Err(CudaError::deadline());
            }
            let end = launched.saturating_add(PAGERANK_CHECK_EVERY).min(cap);
            for i in launched..end {
                let (rank, next) = if i % 2 == 0 {
                    (&even, &odd)
                } else {
                    (&odd, &even)
                };
                #[allow(unsafe_code)]
                // SAFETY: the arguments match `pagerank_contrib`'s parameters in pagerank.cu
                // in number, order and type (u32, u32, f64, then device pointers to f64
                // buffers of n, n, n, cap and cap elements); the kernel indexes the first
                // three below n and the last two at i < cap and i - 1.
                let result = unsafe {
                    launch!(contrib_fn<<<grid, BLOCK, 0, stream>>>(
                        n,
                        i,
                        params.tolerance,
                        rank.as_device_ptr(),
                        inv.as_device_ptr(),
                        contrib.as_device_ptr(),
                        dangling.as_device_ptr(),
                        change.as_device_ptr()
                    ))
                };
                result.map_err(err("launching pagerank_contrib"))?;
                #[allow(unsafe_code)]
                // SAFETY: the arguments match `pagerank_spmv` in pagerank.cu: n, i (u32),
                // tolerance, damping (f64), offsets (n + 1 u32), sources (u32, indexed by
                // offsets, each < n as Csr::build guarantees), contrib, rank, next (n f64
                // each; rank and next are different buffers), dangling and change (cap f64,
                // indexed at i < cap and i - 1).
                let result = unsafe {
                    launch!(spmv_fn<<<grid, BLOCK, 0, stream>>>(
                        n,
                        i,
                        params.tolerance,
                        params.damping,
                        offsets.as_device_ptr(),
                        sources.as_device_ptr(),
                        contrib.as_device_ptr(),
                        rank.as_device_ptr(),
                        next.as_device_ptr(),
                        dangling.as_device_ptr(),
                        change.as_device_ptr()
                    ))
                };
                result.map_err(err("launching pagerank_spmv"))?;
            }
            stream.synchronize().map_err(err("pagerank iterations"))?;
            let batch = changes
                .get_mut(..(end - launched) as usize)
                .ok_or_else(|| CudaError::new(CUDA_ERROR_INVALID_VALUE, "batch size"))?;
            change
                .index(launched as usize..end as usize)
                .copy_to(batch)
                .map_err(err("reading the L1 changes"))?;
            if let Some(stop) = pagerank_stop(batch, params.tolerance) {
                stopped = Some(launched + stop);
                break;
            }
            launched = end;
        }
        // Iteration i (0-based) wrote `odd` when i is even; the device skipped every
        // iteration after the last one, so its ranks are where it left them.
        let iterations = stopped.unwrap_or(cap);
        let result = if iterations % 2 == 1 { &odd } else { &even };
        let mut out = vec![0.0f64; len];
        result.copy_to(&mut out[..]).map_err(err("reading ranks"))?;
        Ok((out, iterations))
    }

    pub(crate) fn matmul(&self, n: u32, a: &[f64], b: &[f64]) -> Result<Vec<f64>, CudaError> {
        self.matmul_unchecked(n, a, b).map_err(|e| self.checked(e))
    }

    fn matmul_unchecked(&self, n: u32, a: &[f64], b: &[f64]) -> Result<Vec<f64>, CudaError> {
        let len = a.len();
        let square = (n as usize).checked_mul(n as usize);
        if square != Some(len) || b.len() != len {
            return Err(CudaError::new(
                CUDA_ERROR_INVALID_VALUE,
                "matmul: A and B must both be n x n",
            ));
        }
        if len == 0 {
            return Ok(Vec::new());
        }
        let da = DeviceBuffer::from_slice(a).map_err(err("copying A"))?;
        let db = DeviceBuffer::from_slice(b).map_err(err("copying B"))?;
        let dc = DeviceBuffer::<f64>::zeroed(len).map_err(err("allocating C"))?;
        let f = self
            .matmul
            .get_function("matmul_tiled")
            .map_err(err("matmul_tiled"))?;
        let tiles = n.div_ceil(TILE);
        let stream = &self.stream;
        #[allow(unsafe_code)]
        // SAFETY: the arguments match `matmul_tiled` in matmul.cu: n (u32) and three device
        // pointers to n * n f64 each; the kernel guards every index against n.
        let launched = unsafe {
            launch!(f<<<(tiles, tiles, 1), (TILE, TILE, 1), 0, stream>>>(
                n,
                da.as_device_ptr(),
                db.as_device_ptr(),
                dc.as_device_ptr()
            ))
        };
        launched.map_err(err("launching matmul_tiled"))?;
        stream.synchronize().map_err(err("matmul"))?;
        let mut c = vec![0.0f64; len];
        dc.copy_to(&mut c[..]).map_err(err("reading C"))?;
        Ok(c)
    }

    pub(crate) fn inject(&self, fault: DeviceFault) -> CudaError {
        let e = match self.inject_unchecked(fault) {
            Ok(()) => CudaError::new(
                CUDA_ERROR_UNKNOWN,
                format!("fault kernel {fault:?} finished without an error"),
            ),
            Err(e) => self.checked(e),
        };
        if e.is_sticky() {
            e
        } else {
            // The worker exits after a fault whatever came of it: the context is suspect.
            CudaError {
                context_lost: true,
                ..e
            }
        }
    }

    fn inject_unchecked(&self, fault: DeviceFault) -> Result<(), CudaError> {
        let module = load(&self.ptx, FAULTS_PTX, self.device).map_err(|e| match e {
            InitError::Cuda(e) => e,
            other => CudaError::new(CUDA_ERROR_INVALID_PTX, other.to_string()),
        })?;
        let stream = &self.stream;
        match fault {
            DeviceFault::OutOfBounds => {
                let data = DeviceBuffer::<f64>::zeroed(1).map_err(err("allocating"))?;
                // data + index wraps (mod 2^64) to address 8, in the first page, which is
                // never mapped: base is 256-aligned, so 2^64 - base is a multiple of 8.
                let base = data.as_device_ptr().as_raw();
                let index = (0u64.wrapping_sub(base) / 8).wrapping_add(1);
                let f = module
                    .get_function("fault_out_of_bounds")
                    .map_err(err("fault_out_of_bounds"))?;
                #[allow(unsafe_code)]
                // SAFETY: the arguments match `fault_out_of_bounds` in faults.cu (a device
                // pointer to f64, u64). The store it makes is outside every allocation on
                // purpose: the device faults (700) and the context is lost, which is the
                // point; host memory is never touched.
                let launched =
                    unsafe { launch!(f<<<1, 1, 0, stream>>>(data.as_device_ptr(), index)) };
                launched.map_err(err("launching fault_out_of_bounds"))?;
                stream.synchronize().map_err(err("fault_out_of_bounds"))
            }
            DeviceFault::Hang => {
                let flag = DeviceBuffer::<u32>::zeroed(1).map_err(err("allocating"))?;
                let f = module
                    .get_function("fault_spin")
                    .map_err(err("fault_spin"))?;
                #[allow(unsafe_code)]
                // SAFETY: the argument matches `fault_spin` in faults.cu: a device pointer to
                // one u32, which the kernel only reads.
                let launched = unsafe { launch!(f<<<1, 1, 0, stream>>>(flag.as_device_ptr())) };
                launched.map_err(err("launching fault_spin"))?;
                stream.synchronize().map_err(err("fault_spin"))
            }
        }
    }
}
