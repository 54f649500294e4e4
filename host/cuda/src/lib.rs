//! CUDA kernels of the rustkernel GPU worker: PageRank (CSR SpMV power iteration) and a tiled
//! `f64` matmul, launched through `cust` 0.3.2 from PTX loaded at run time.
//!
//! This crate is linked only into `rustkernel-worker` built with the `cuda` feature; the
//! service never links CUDA. The PTX comes from `host/cuda/*.cu` through
//! `scripts/build-ptx.sh` (it needs `nvcc`) and is read from a directory at run time, so a
//! missing PTX is [`InitError::NoPtx`], never a panic.
//!
//! Error handling follows the CUDA driver's rules: a sticky error (700, 702, 714 to 719, 214)
//! leaves the context unusable until the process exits, so [`CudaError::is_sticky`] tells the
//! worker to reply "poisoned" and exit; out-of-memory and invalid values are ordinary errors
//! ([`CudaError::kind`]) and the worker stays up.

use std::fmt;
use std::path::{Path, PathBuf};
use std::time::Instant;

use rustkernel_core::error::ErrorKind;

#[cfg(feature = "cust")]
mod device;

/// CUDA error codes after which the context is unusable until the process exits.
pub const STICKY_ERRORS: [u32; 8] = [214, 700, 702, 714, 715, 716, 717, 719];

/// `CUDA_ERROR_NO_DEVICE`.
pub const CUDA_ERROR_NO_DEVICE: u32 = 100;

/// A CUDA driver error.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct CudaError {
    /// The driver's code (`CUresult`); 999 for codes cust 0.3.2 does not know.
    pub code: u32,
    /// What failed, and the driver's description.
    pub message: String,
}

impl CudaError {
    /// Whether the context is unusable after this error ([`STICKY_ERRORS`]).
    #[must_use]
    pub fn is_sticky(&self) -> bool {
        STICKY_ERRORS.contains(&self.code)
    }

    /// How the service should treat it: sticky errors are [`ErrorKind::Permanent`] for this
    /// context, out of memory (2) [`ErrorKind::ResourceExhausted`], an invalid value (1)
    /// [`ErrorKind::InvalidInput`], a run stopped at its deadline [`ErrorKind::Timeout`],
    /// anything else [`ErrorKind::Transient`].
    #[must_use]
    pub fn kind(&self) -> ErrorKind {
        match self.code {
            _ if self.is_sticky() => ErrorKind::Permanent,
            2 => ErrorKind::ResourceExhausted,
            1 => ErrorKind::InvalidInput,
            DEADLINE_CODE => ErrorKind::Timeout,
            _ => ErrorKind::Transient,
        }
    }

    /// The error a run that reached its deadline between launches returns.
    #[must_use]
    pub fn deadline() -> Self {
        Self {
            code: DEADLINE_CODE,
            message: "deadline reached between kernel launches".into(),
        }
    }
}

/// Not a CUDA code: marks [`CudaError::deadline`].
const DEADLINE_CODE: u32 = u32::MAX;

impl fmt::Display for CudaError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{} (CUDA error {})", self.message, self.code)
    }
}

impl std::error::Error for CudaError {}

/// Why the CUDA backend did not come up.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum InitError {
    /// `cuInit` found no device (`CUDA_ERROR_NO_DEVICE`).
    NoDevice,
    /// The PTX file is missing or unreadable.
    NoPtx(PathBuf),
    /// Start-up took longer than its deadline.
    Timeout,
    /// Another driver error during start-up.
    Cuda(CudaError),
    /// The crate was built without the `cust` feature.
    NotBuilt,
}

impl fmt::Display for InitError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            InitError::NoDevice => f.write_str("no device"),
            InitError::NoPtx(path) => write!(f, "no PTX ({})", path.display()),
            InitError::Timeout => f.write_str("start-up timed out"),
            InitError::Cuda(e) => write!(f, "CUDA start-up failed: {e}"),
            InitError::NotBuilt => f.write_str("built without CUDA (feature `cust`)"),
        }
    }
}

impl std::error::Error for InitError {}

/// The PTX file of a kernel module in `dir`: `pagerank.ptx` or `matmul.ptx`.
#[must_use]
pub fn ptx_path(dir: &Path, module: &str) -> PathBuf {
    dir.join(format!("{module}.ptx"))
}

/// Reads a module's PTX.
///
/// # Errors
/// [`InitError::NoPtx`] when the file is missing or unreadable.
pub fn read_ptx(dir: &Path, module: &str) -> Result<String, InitError> {
    let path = ptx_path(dir, module);
    std::fs::read_to_string(&path).map_err(|_| InitError::NoPtx(path))
}

/// A graph in CSR form by destination (as `rustkernel_host::kernels::Csr` builds it).
#[derive(Clone, Copy, Debug)]
pub struct CsrView<'a> {
    /// `n + 1` offsets into `sources`.
    pub offsets: &'a [u32],
    /// Sources of the edges, grouped by destination.
    pub sources: &'a [u32],
    /// `1 / outdeg(u)`, or 0 for a dangling node.
    pub inv_out_degree: &'a [f64],
}

/// PageRank's parameters.
#[derive(Clone, Copy, Debug)]
pub struct PageRankParams {
    /// Damping factor.
    pub damping: f64,
    /// Iteration cap.
    pub max_iterations: u32,
    /// L1 tolerance.
    pub tolerance: f64,
}

/// A CUDA context on device 0 with the kernels loaded.
#[derive(Debug)]
pub struct CudaDevice {
    #[cfg(feature = "cust")]
    inner: device::Inner,
}

impl CudaDevice {
    /// `cuInit`, device 0, its primary context, the PTX modules from `ptx_dir`, then a tiny
    /// matmul whose result is checked. The caller (the service) kills a start-up that hangs;
    /// `deadline` is checked between the steps.
    ///
    /// # Errors
    /// [`InitError`] saying which step failed.
    pub fn init(ptx_dir: &Path, deadline: Instant) -> Result<Self, InitError> {
        #[cfg(feature = "cust")]
        {
            device::Inner::init(ptx_dir, deadline).map(|inner| Self { inner })
        }
        #[cfg(not(feature = "cust"))]
        {
            let _ = (ptx_dir, deadline);
            Err(InitError::NotBuilt)
        }
    }

    /// The device's name.
    #[must_use]
    pub fn name(&self) -> String {
        #[cfg(feature = "cust")]
        {
            self.inner.name()
        }
        #[cfg(not(feature = "cust"))]
        {
            String::new()
        }
    }

    /// PageRank on the device; checks `deadline` between iterations.
    ///
    /// # Errors
    /// The first [`CudaError`], or [`CudaError::deadline`].
    pub fn pagerank(
        &self,
        csr: CsrView<'_>,
        params: PageRankParams,
        deadline: Instant,
    ) -> Result<(Vec<f64>, u32), CudaError> {
        #[cfg(feature = "cust")]
        {
            self.inner.pagerank(csr, params, deadline)
        }
        #[cfg(not(feature = "cust"))]
        {
            let _ = (csr, params, deadline);
            Err(CudaError {
                code: CUDA_ERROR_NO_DEVICE,
                message: "built without CUDA".into(),
            })
        }
    }

    /// `C = A * B` for `n x n` row-major `f64` matrices on the device.
    ///
    /// # Errors
    /// The first [`CudaError`].
    pub fn matmul(&self, n: u32, a: &[f64], b: &[f64]) -> Result<Vec<f64>, CudaError> {
        #[cfg(feature = "cust")]
        {
            self.inner.matmul(n, a, b)
        }
        #[cfg(not(feature = "cust"))]
        {
            let _ = (n, a, b);
            Err(CudaError {
                code: CUDA_ERROR_NO_DEVICE,
                message: "built without CUDA".into(),
            })
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn sticky_errors_are_permanent_and_the_rest_are_not() {
        for code in STICKY_ERRORS {
            let e = CudaError {
                code,
                message: String::new(),
            };
            assert!(e.is_sticky());
            assert_eq!(e.kind(), ErrorKind::Permanent);
        }
        let kind = |code| {
            CudaError {
                code,
                message: String::new(),
            }
            .kind()
        };
        assert_eq!(kind(2), ErrorKind::ResourceExhausted);
        assert_eq!(kind(1), ErrorKind::InvalidInput);
        assert_eq!(kind(999), ErrorKind::Transient);
        assert_eq!(CudaError::deadline().kind(), ErrorKind::Timeout);
        assert!(!CudaError::deadline().is_sticky());
    }

    #[test]
    fn missing_ptx_is_a_typed_error() {
        let dir = Path::new("/nonexistent/ptx");
        assert_eq!(
            read_ptx(dir, "pagerank"),
            Err(InitError::NoPtx(dir.join("pagerank.ptx")))
        );
        assert_eq!(
            InitError::NoPtx(dir.join("matmul.ptx")).to_string(),
            "no PTX (/nonexistent/ptx/matmul.ptx)"
        );
        assert_eq!(InitError::NoDevice.to_string(), "no device");
    }
}
