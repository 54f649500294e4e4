//! The cust side: context, modules, launches.

use std::fmt;
use std::path::Path;
use std::time::Instant;

use cust::context::Context;
use cust::device::Device;
use cust::error::CudaError as CustError;
use cust::launch;
use cust::memory::{CopyDestination, DeviceBuffer};
use cust::module::Module;
use cust::stream::{Stream, StreamFlags};

use crate::{CsrView, CudaError, InitError, PageRankParams, read_ptx};

/// Threads per block of the 1-D kernels.
const BLOCK: u32 = 256;
/// The matmul kernel's tile side (must match `TILE` in matmul.cu).
const TILE: u32 = 16;

fn err(what: &'static str) -> impl Fn(CustError) -> CudaError {
    move |e| CudaError {
        code: e as u32,
        message: format!("{what}: {e}"),
    }
}

pub(crate) struct Inner {
    device: Device,
    pagerank: Module,
    matmul: Module,
    stream: Stream,
    // Dropped last: the modules and the stream belong to it.
    _context: Context,
}

impl fmt::Debug for Inner {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Inner")
            .field("device", &self.name())
            .finish_non_exhaustive()
    }
}

impl Inner {
    pub(crate) fn init(ptx_dir: &Path, deadline: Instant) -> Result<Self, InitError> {
        match cust::init(cust::CudaFlags::empty()) {
            Ok(()) => {}
            Err(CustError::NoDevice) => return Err(InitError::NoDevice),
            Err(e) => return Err(InitError::Cuda(err("cuInit")(e))),
        }
        let device = Device::get_device(0).map_err(|e| InitError::Cuda(err("cuDeviceGet")(e)))?;
        let context = Context::new(device).map_err(|e| InitError::Cuda(err("context")(e)))?;
        let pagerank_ptx = read_ptx(ptx_dir, "pagerank")?;
        let matmul_ptx = read_ptx(ptx_dir, "matmul")?;
        let load = |ptx: String| {
            Module::from_ptx(ptx, &[]).map_err(|e| InitError::Cuda(err("loading PTX")(e)))
        };
        let pagerank = load(pagerank_ptx)?;
        let matmul = load(matmul_ptx)?;
        // A blocking stream: ordered with the synchronous copies on the default stream.
        let stream = Stream::new(StreamFlags::DEFAULT, None)
            .map_err(|e| InitError::Cuda(err("stream")(e)))?;
        let inner = Self {
            device,
            pagerank,
            matmul,
            stream,
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
            return Err(InitError::Cuda(CudaError {
                code: 999,
                message: format!("start-up self-test: 2x2 matmul gave {c:?}"),
            }));
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

    pub(crate) fn pagerank(
        &self,
        csr: CsrView<'_>,
        params: PageRankParams,
        deadline: Instant,
    ) -> Result<(Vec<f64>, u32), CudaError> {
        let n = u32::try_from(csr.inv_out_degree.len()).map_err(|_| CudaError {
            code: 1,
            message: "too many nodes".into(),
        })?;
        let n_f = f64::from(n);
        let initial = vec![1.0 / n_f; csr.inv_out_degree.len()];
        let offsets = DeviceBuffer::from_slice(csr.offsets).map_err(err("copying offsets"))?;
        // An empty edge list still needs a valid pointer.
        let sources = if csr.sources.is_empty() {
            &[0u32][..]
        } else {
            csr.sources
        };
        let sources = DeviceBuffer::from_slice(sources).map_err(err("copying sources"))?;
        let inv = DeviceBuffer::from_slice(csr.inv_out_degree).map_err(err("copying degrees"))?;
        let mut ranks = DeviceBuffer::from_slice(&initial).map_err(err("allocating ranks"))?;
        let mut next = DeviceBuffer::from_slice(&initial).map_err(err("allocating ranks"))?;
        let contrib =
            DeviceBuffer::from_slice(&initial).map_err(err("allocating contributions"))?;
        let mut scalars =
            DeviceBuffer::from_slice(&[0.0f64; 2]).map_err(err("allocating scalars"))?;
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
        let mut iterations = 0u32;
        while iterations < params.max_iterations {
            if Instant::now() >= deadline {
                return Err(CudaError::deadline());
            }
            iterations += 1;
            scalars
                .copy_from(&[0.0f64; 2])
                .map_err(err("resetting scalars"))?;
            #[allow(unsafe_code)]
            // SAFETY: the arguments match `pagerank_contrib`'s parameters in pagerank.cu in
            // number, order and type (u32, then four device pointers to f64 buffers of `n`,
            // `n`, `n` and 2 elements), and the kernel reads and writes only indices < n and
            // scalars[0].
            let launched = unsafe {
                launch!(contrib_fn<<<grid, BLOCK, 0, stream>>>(
                    n,
                    ranks.as_device_ptr(),
                    inv.as_device_ptr(),
                    contrib.as_device_ptr(),
                    scalars.as_device_ptr()
                ))
            };
            launched.map_err(err("launching pagerank_contrib"))?;
            #[allow(unsafe_code)]
            // SAFETY: the arguments match `pagerank_spmv` in pagerank.cu: n (u32), offsets
            // (n + 1 u32), sources (u32, indexed by offsets, each < n as validated on the
            // host), contrib, old ranks, new ranks (n f64 each), damping (f64), scalars (2 f64).
            let launched = unsafe {
                launch!(spmv_fn<<<grid, BLOCK, 0, stream>>>(
                    n,
                    offsets.as_device_ptr(),
                    sources.as_device_ptr(),
                    contrib.as_device_ptr(),
                    ranks.as_device_ptr(),
                    next.as_device_ptr(),
                    params.damping,
                    scalars.as_device_ptr()
                ))
            };
            launched.map_err(err("launching pagerank_spmv"))?;
            stream.synchronize().map_err(err("pagerank iteration"))?;
            let mut host_scalars = [0.0f64; 2];
            scalars
                .copy_to(&mut host_scalars[..])
                .map_err(err("reading the L1 change"))?;
            std::mem::swap(&mut ranks, &mut next);
            if host_scalars[1] < params.tolerance {
                break;
            }
        }
        let mut out = vec![0.0f64; csr.inv_out_degree.len()];
        ranks.copy_to(&mut out[..]).map_err(err("reading ranks"))?;
        Ok((out, iterations))
    }

    pub(crate) fn matmul(&self, n: u32, a: &[f64], b: &[f64]) -> Result<Vec<f64>, CudaError> {
        let len = a.len();
        let da = DeviceBuffer::from_slice(a).map_err(err("copying A"))?;
        let db = DeviceBuffer::from_slice(b).map_err(err("copying B"))?;
        let dc = DeviceBuffer::from_slice(&vec![0.0f64; len]).map_err(err("allocating C"))?;
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
}
