//! CUDA kernels of the rustkernel GPU worker: PageRank (CSR SpMV power iteration, converged on
//! the device) and a tiled `f64` matmul, launched through `cust` 0.3.2.
//!
//! This crate is linked only into `rustkernel-worker` built with the `cuda` feature; the
//! service never links CUDA. The PTX comes from `host/cuda/*.cu` through
//! `scripts/build-ptx.sh` (NVRTC 12.4 from PyPI, pinned, no GPU needed), is committed in
//! `host/cuda/ptx/` and embedded here ([`EMBEDDED_PTX`]), so a default install needs no PTX
//! directory; [`PtxSource::Dir`] (the worker's `--ptx-dir`) loads the files of a directory
//! instead. `scripts/ptx-check.sh` (in the test command) checks that the committed PTX is what
//! the sources give and that every kernel assembles for sm_80 and sm_90.
//!
//! Error handling follows the CUDA driver's documentation: an error it documents as leaving the
//! process unusable ([`STICKY_ERRORS`]) makes [`CudaError::is_sticky`] true, and the worker
//! replies "poisoned" and exits; out-of-memory and invalid values are ordinary errors
//! ([`CudaError::kind`]) and the worker stays up. A PTX newer than the driver is
//! `CUDA_ERROR_UNSUPPORTED_PTX_VERSION` (222) with the versions and the driver it needs
//! ([`unsupported_ptx`]).

use std::fmt;
use std::path::{Path, PathBuf};
use std::time::Instant;

use rustkernel_core::error::ErrorKind;

#[cfg(feature = "cust")]
mod device;

/// A kernel module: the name of its `.cu`/`.ptx` file and its PTX as built into the crate.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct PtxModule {
    /// `pagerank`, `matmul` or `faults` (the file stem).
    pub name: &'static str,
    /// The committed PTX (`host/cuda/ptx/NAME.ptx`).
    pub embedded: &'static str,
}

/// PageRank's two kernels (`host/cuda/pagerank.cu`).
pub const PAGERANK_PTX: PtxModule = PtxModule {
    name: "pagerank",
    embedded: include_str!("../ptx/pagerank.ptx"),
};

/// The tiled matmul (`host/cuda/matmul.cu`).
pub const MATMUL_PTX: PtxModule = PtxModule {
    name: "matmul",
    embedded: include_str!("../ptx/matmul.ptx"),
};

/// The fault kernels of fault injection (`host/cuda/faults.cu`), loaded only when one is
/// injected.
pub const FAULTS_PTX: PtxModule = PtxModule {
    name: "faults",
    embedded: include_str!("../ptx/faults.ptx"),
};

/// Every module built into the crate.
pub const EMBEDDED_PTX: [PtxModule; 3] = [PAGERANK_PTX, MATMUL_PTX, FAULTS_PTX];

/// Where the worker takes its PTX from.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub enum PtxSource {
    /// The PTX built into the crate ([`EMBEDDED_PTX`]).
    #[default]
    Embedded,
    /// `NAME.ptx` files in a directory (the worker's `--ptx-dir`), e.g. PTX regenerated for
    /// another architecture with `NVCC=... scripts/build-ptx.sh --out DIR`.
    Dir(PathBuf),
}

impl PtxSource {
    /// A module's PTX from this source.
    ///
    /// # Errors
    /// [`InitError::NoPtx`] when the directory's file is missing or unreadable.
    pub fn read(&self, module: PtxModule) -> Result<String, InitError> {
        match self {
            PtxSource::Embedded => Ok(module.embedded.to_owned()),
            PtxSource::Dir(dir) => read_ptx(dir, module.name),
        }
    }

    /// How to name a module's PTX in messages: `embedded pagerank PTX` or its path.
    #[must_use]
    pub fn describe(&self, module: PtxModule) -> String {
        match self {
            PtxSource::Embedded => format!("embedded {} PTX", module.name),
            PtxSource::Dir(dir) => ptx_path(dir, module.name).display().to_string(),
        }
    }
}

/// The PTX file of a kernel module in `dir`: `pagerank.ptx`, `matmul.ptx` or `faults.ptx`.
#[must_use]
pub fn ptx_path(dir: &Path, module: &str) -> PathBuf {
    dir.join(format!("{module}.ptx"))
}

/// Reads a module's PTX from a directory.
///
/// # Errors
/// [`InitError::NoPtx`] when the file is missing or unreadable.
pub fn read_ptx(dir: &Path, module: &str) -> Result<String, InitError> {
    let path = ptx_path(dir, module);
    std::fs::read_to_string(&path).map_err(|_| InitError::NoPtx(path))
}

/// CUDA error codes the driver documents as leaving the process unusable ("This leaves the
/// process in an inconsistent state and any further CUDA work will return the same error. To
/// continue using CUDA, the process must be terminated and relaunched", or for 710 "The
/// context cannot be used anymore"), from `cuda.h` of CUDA 13. Not in the list: 214
/// (uncorrectable ECC) and 220 (uncorrectable NVLink), whose text says no such thing (NVML's
/// Xids report those), 720 (a cooperative launch too large: nothing ran), 999 (unknown).
pub const STICKY_ERRORS: [(u32, &str); 13] = [
    (226, "CUDA_ERROR_CONTAINED"),
    (700, "CUDA_ERROR_ILLEGAL_ADDRESS"),
    (702, "CUDA_ERROR_LAUNCH_TIMEOUT"),
    (710, "CUDA_ERROR_ASSERT"),
    (714, "CUDA_ERROR_HARDWARE_STACK_ERROR"),
    (715, "CUDA_ERROR_ILLEGAL_INSTRUCTION"),
    (716, "CUDA_ERROR_MISALIGNED_ADDRESS"),
    (717, "CUDA_ERROR_INVALID_ADDRESS_SPACE"),
    (718, "CUDA_ERROR_INVALID_PC"),
    (719, "CUDA_ERROR_LAUNCH_FAILED"),
    (721, "CUDA_ERROR_TENSOR_MEMORY_LEAK"),
    (810, "CUDA_ERROR_MPS_CLIENT_TERMINATED"),
    (911, "CUDA_ERROR_EXTERNAL_DEVICE"),
];

/// `CUDA_ERROR_INVALID_VALUE`.
pub const CUDA_ERROR_INVALID_VALUE: u32 = 1;
/// `CUDA_ERROR_OUT_OF_MEMORY`.
pub const CUDA_ERROR_OUT_OF_MEMORY: u32 = 2;
/// `CUDA_ERROR_NO_DEVICE`.
pub const CUDA_ERROR_NO_DEVICE: u32 = 100;
/// `CUDA_ERROR_NO_BINARY_FOR_GPU`: no image in a module fits the device.
pub const CUDA_ERROR_NO_BINARY_FOR_GPU: u32 = 209;
/// `CUDA_ERROR_INVALID_PTX`: what drivers older than CUDA 11.1 return for a PTX too new.
pub const CUDA_ERROR_INVALID_PTX: u32 = 218;
/// `CUDA_ERROR_UNSUPPORTED_PTX_VERSION`: the PTX's ISA is newer than the driver.
pub const CUDA_ERROR_UNSUPPORTED_PTX_VERSION: u32 = 222;
/// `CUDA_ERROR_ILLEGAL_ADDRESS`: what the out-of-bounds fault kernel causes.
pub const CUDA_ERROR_ILLEGAL_ADDRESS: u32 = 700;
/// `CUDA_ERROR_LAUNCH_OUT_OF_RESOURCES`.
pub const CUDA_ERROR_LAUNCH_OUT_OF_RESOURCES: u32 = 701;
/// `CUDA_ERROR_UNKNOWN`; also what cust 0.3.2 reports for every code its enum lacks (its
/// `to_result` ends in `_ => UnknownError`: 222, 226, 721, 810, 911 and every code newer
/// than CUDA 11.x), so the raw code of such an error is lost before this crate sees it.
pub const CUDA_ERROR_UNKNOWN: u32 = 999;

/// A CUDA driver error.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct CudaError {
    /// The driver's code (`CUresult`); 999 for codes cust 0.3.2 does not know, except 222,
    /// which module loading recovers ([`unsupported_ptx`]).
    pub code: u32,
    /// What failed, and the driver's description.
    pub message: String,
    /// The context failed a check after this error (every later call errs too): unusable
    /// like a sticky error, even when cust could not name the code.
    pub context_lost: bool,
}

impl CudaError {
    /// An error with a driver code.
    #[must_use]
    pub fn new(code: u32, message: impl Into<String>) -> Self {
        Self {
            code,
            message: message.into(),
            context_lost: false,
        }
    }

    /// Whether the context is unusable after this error: a code in [`STICKY_ERRORS`], or a
    /// context that failed its check afterwards ([`CudaError::context_lost`]).
    #[must_use]
    pub fn is_sticky(&self) -> bool {
        self.context_lost || sticky_name(self.code).is_some()
    }

    /// How the service should treat it: sticky errors are [`ErrorKind::Permanent`] for this
    /// context, out of memory (2) and a launch out of resources (701)
    /// [`ErrorKind::ResourceExhausted`], an invalid value (1) [`ErrorKind::InvalidInput`], no
    /// device (100) or a PTX too new for the driver (222) [`ErrorKind::Unavailable`], a run
    /// stopped at its deadline [`ErrorKind::Timeout`], anything else [`ErrorKind::Transient`].
    #[must_use]
    pub fn kind(&self) -> ErrorKind {
        match self.code {
            _ if self.is_sticky() => ErrorKind::Permanent,
            CUDA_ERROR_OUT_OF_MEMORY | CUDA_ERROR_LAUNCH_OUT_OF_RESOURCES => {
                ErrorKind::ResourceExhausted
            }
            CUDA_ERROR_INVALID_VALUE => ErrorKind::InvalidInput,
            CUDA_ERROR_NO_DEVICE | CUDA_ERROR_UNSUPPORTED_PTX_VERSION => ErrorKind::Unavailable,
            DEADLINE_CODE => ErrorKind::Timeout,
            _ => ErrorKind::Transient,
        }
    }

    /// The error a run that reached its deadline between launches returns.
    #[must_use]
    pub fn deadline() -> Self {
        Self::new(DEADLINE_CODE, "deadline reached between kernel launches")
    }

    /// Whether this is [`CudaError::deadline`] (not a driver code).
    #[must_use]
    pub fn is_deadline(&self) -> bool {
        self.code == DEADLINE_CODE
    }
}

/// The `cuda.h` name of a sticky code, or `None` for a code that is not sticky.
#[must_use]
pub fn sticky_name(code: u32) -> Option<&'static str> {
    STICKY_ERRORS
        .iter()
        .find(|(sticky, _)| *sticky == code)
        .map(|(_, name)| *name)
}

/// Not a CUDA code: marks [`CudaError::deadline`].
const DEADLINE_CODE: u32 = u32::MAX;

impl fmt::Display for CudaError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{} (CUDA error {}", self.message, self.code)?;
        if let Some(name) = sticky_name(self.code) {
            write!(f, ", {name}: the context is lost")?;
        } else if self.context_lost {
            f.write_str(", and the context fails every call since: it is lost")?;
        }
        f.write_str(")")
    }
}

impl std::error::Error for CudaError {}

/// A PTX ISA version, from a module's `.version X.Y` line.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct PtxIsa {
    /// `X` of `.version X.Y`.
    pub major: u32,
    /// `Y` of `.version X.Y`.
    pub minor: u32,
}

impl fmt::Display for PtxIsa {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}.{}", self.major, self.minor)
    }
}

/// The PTX ISA version a module declares (its first `.version X.Y` directive).
#[must_use]
pub fn ptx_isa_version(ptx: &str) -> Option<PtxIsa> {
    let line = ptx
        .lines()
        .map(str::trim)
        .find(|line| line.starts_with(".version"))?;
    let (major, minor) = line.strip_prefix(".version")?.trim().split_once('.')?;
    Some(PtxIsa {
        major: major.parse().ok()?,
        minor: minor.trim().parse().ok()?,
    })
}

/// The SM a module targets, from its `.target sm_XY` directive (80 for `sm_80`, 90 for
/// `sm_90a`).
#[must_use]
pub fn ptx_target(ptx: &str) -> Option<u32> {
    let line = ptx
        .lines()
        .map(str::trim)
        .find(|line| line.starts_with(".target"))?;
    let sm = line
        .strip_prefix(".target")?
        .split([',', ' ', '\t'])
        .find(|word| !word.is_empty())?
        .strip_prefix("sm_")?;
    let digits = sm.find(|c: char| !c.is_ascii_digit()).unwrap_or(sm.len());
    sm.get(..digits)?.parse().ok()
}

/// The error of a module load on a GPU older than the module's target: `device` is its
/// compute capability as `10 * major + minor`, `code` the driver's code for the failed load.
/// `None` when the GPU is not older (the load failed for another reason).
#[must_use]
pub fn unsupported_gpu(what: &str, target: u32, device: u32, code: u32) -> Option<CudaError> {
    (device < target).then(|| {
        CudaError::new(
            code,
            format!(
                "{what} targets sm_{target} (compute capability {}.{} or newer), but this GPU is \
                 compute capability {}.{}",
                target / 10,
                target % 10,
                device / 10,
                device % 10
            ),
        )
    })
}

/// A CUDA release: its version as `cuDriverGetVersion` reports it (12040 for 12.4), the PTX
/// ISA its compilers write and its driver JIT-compiles, and the oldest Linux driver it ships
/// with (the CUDA Toolkit release notes, "CUDA Toolkit and Corresponding Driver Versions").
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct CudaRelease {
    /// `1000 * major + 10 * minor`.
    pub version: u32,
    /// The newest PTX ISA of the release.
    pub ptx_isa: PtxIsa,
    /// The oldest Linux x86_64 driver of the release.
    pub min_linux_driver: &'static str,
}

const fn release(version: u32, major: u32, minor: u32, driver: &'static str) -> CudaRelease {
    CudaRelease {
        version,
        ptx_isa: PtxIsa { major, minor },
        min_linux_driver: driver,
    }
}

/// The CUDA releases of PTX ISA 7.0 to 9.0, oldest first.
pub const CUDA_RELEASES: [CudaRelease; 18] = [
    release(11000, 7, 0, "450.36.06"),
    release(11010, 7, 1, "455.23"),
    release(11020, 7, 2, "460.27.03"),
    release(11030, 7, 3, "465.19.01"),
    release(11040, 7, 4, "470.42.01"),
    release(11050, 7, 5, "495.29.05"),
    release(11060, 7, 6, "510.39.01"),
    release(11070, 7, 7, "515.43.04"),
    release(11080, 7, 8, "520.61.05"),
    release(12000, 8, 0, "525.60.13"),
    release(12010, 8, 1, "530.30.02"),
    release(12020, 8, 2, "535.54.03"),
    release(12030, 8, 3, "545.23.06"),
    release(12040, 8, 4, "550.54.14"),
    release(12050, 8, 5, "555.42.02"),
    release(12080, 8, 7, "570.26"),
    release(12090, 8, 8, "575.51.03"),
    release(13000, 9, 0, "580.65.06"),
];

/// The first release whose driver JIT-compiles PTX ISA `isa`, if the table knows one.
#[must_use]
pub fn first_release_for(isa: PtxIsa) -> Option<CudaRelease> {
    CUDA_RELEASES.iter().copied().find(|r| r.ptx_isa >= isa)
}

fn cuda_version(version: u32) -> String {
    format!("{}.{}", version / 1000, version % 1000 / 10)
}

/// `CUDA_ERROR_UNSUPPORTED_PTX_VERSION` (222) when a driver that reports CUDA `driver`
/// (`cuDriverGetVersion`, e.g. 12020) is older than the first release of PTX ISA `isa`;
/// `None` when the driver is new enough (the load failed for another reason).
///
/// cust 0.3.2 turns 222 into 999 (its error enum predates it; drivers before CUDA 11.1 said
/// 218), so module loading calls this on either code to give the real cause.
#[must_use]
pub fn unsupported_ptx(what: &str, isa: PtxIsa, driver: u32) -> Option<CudaError> {
    let latest = CUDA_RELEASES.last()?;
    let (needs, min_driver) = match first_release_for(isa) {
        Some(release) => (
            release.version,
            format!(
                "NVIDIA driver {} or newer (CUDA {})",
                release.min_linux_driver,
                cuda_version(release.version)
            ),
        ),
        // An ISA newer than the table: a driver newer than the newest release it knows.
        None => (
            latest.version.saturating_add(10),
            format!(
                "an NVIDIA driver newer than CUDA {}",
                cuda_version(latest.version)
            ),
        ),
    };
    if driver >= needs {
        return None;
    }
    let driver_isa = CUDA_RELEASES
        .iter()
        .rev()
        .find(|r| r.version <= driver)
        .map_or_else(|| "older".to_owned(), |r| format!("up to {}", r.ptx_isa));
    Some(CudaError::new(
        CUDA_ERROR_UNSUPPORTED_PTX_VERSION,
        format!(
            "CUDA_ERROR_UNSUPPORTED_PTX_VERSION: {what} is PTX ISA {isa}, but the driver \
             supports CUDA {} (PTX ISA {driver_isa}); it needs {min_driver}",
            cuda_version(driver)
        ),
    ))
}

/// Why the CUDA backend did not come up.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum InitError {
    /// `cuInit` found no device (`CUDA_ERROR_NO_DEVICE`).
    NoDevice,
    /// The PTX file is missing or unreadable (only with [`PtxSource::Dir`]).
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

/// How many PageRank iterations the host launches between two reads of their L1 changes.
pub const PAGERANK_CHECK_EVERY: u32 = 8;

/// Where a PageRank run stops, from the L1 changes of its iterations in order: after the
/// first iteration whose change is below `tolerance` (its 1-based number), as the CPU
/// implementation does, or `None` when none is.
#[must_use]
pub fn pagerank_stop(changes: &[f64], tolerance: f64) -> Option<u32> {
    let index = changes.iter().position(|&change| change < tolerance)?;
    u32::try_from(index).ok()?.checked_add(1)
}

/// A real GPU fault, launched by fault injection (`--fault gpu-oob`, `--fault gpu-hang`).
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum DeviceFault {
    /// `fault_out_of_bounds`: a store far outside its buffer, `CUDA_ERROR_ILLEGAL_ADDRESS`
    /// (700, sticky).
    OutOfBounds,
    /// `fault_spin`: a kernel that never returns; the call blocks until the process is
    /// killed (or a display watchdog stops it with 702, sticky).
    Hang,
}

/// A CUDA context on device 0 with the kernels loaded.
#[derive(Debug)]
pub struct CudaDevice {
    #[cfg(feature = "cust")]
    inner: device::Inner,
}

impl CudaDevice {
    /// `cuInit`, device 0, its primary context, the PTX modules from `ptx`, then a tiny
    /// matmul whose result is checked. The caller (the service) kills a start-up that hangs;
    /// `deadline` is checked between the steps.
    ///
    /// # Errors
    /// [`InitError`] saying which step failed.
    pub fn init(ptx: PtxSource, deadline: Instant) -> Result<Self, InitError> {
        #[cfg(feature = "cust")]
        {
            device::Inner::init(ptx, deadline).map(|inner| Self { inner })
        }
        #[cfg(not(feature = "cust"))]
        {
            let _ = (ptx, deadline);
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

    /// PageRank on the device. The iterations run back to back on the device, which decides
    /// convergence itself; the host reads their L1 changes once every
    /// [`PAGERANK_CHECK_EVERY`] iterations, and checks `deadline` then. Returns the ranks and
    /// the iterations run, by the CPU implementation's rule.
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
            Err(not_built())
        }
    }

    /// [`pagerank`](Self::pagerank) from `initial` ranks instead of uniform ones, for at most
    /// `params.max_iterations` iterations: a chunk of a job resumed from its checkpoint.
    ///
    /// # Errors
    /// As [`pagerank`](Self::pagerank); `CUDA_ERROR_INVALID_VALUE` when `initial` does not
    /// hold one rank per node.
    pub fn pagerank_from(
        &self,
        csr: CsrView<'_>,
        params: PageRankParams,
        initial: &[f64],
        deadline: Instant,
    ) -> Result<(Vec<f64>, u32), CudaError> {
        #[cfg(feature = "cust")]
        {
            self.inner
                .pagerank_from(csr, params, Some(initial), deadline)
        }
        #[cfg(not(feature = "cust"))]
        {
            let _ = (csr, params, initial, deadline);
            Err(not_built())
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
            Err(not_built())
        }
    }

    /// Launches a fault kernel ([`FAULTS_PTX`]) and waits for it. Returns the error it caused,
    /// always one that [`CudaError::is_sticky`]: the out-of-bounds store gives 700; the spin
    /// returns only if something stops it (a display watchdog: 702). Should a fault kernel
    /// finish without an error, the context is still treated as lost (a stray store may have
    /// landed in live memory).
    #[must_use]
    pub fn inject(&self, fault: DeviceFault) -> CudaError {
        #[cfg(feature = "cust")]
        {
            self.inner.inject(fault)
        }
        #[cfg(not(feature = "cust"))]
        {
            let _ = fault;
            not_built()
        }
    }
}

#[cfg(not(feature = "cust"))]
fn not_built() -> CudaError {
    CudaError::new(CUDA_ERROR_NO_DEVICE, "built without CUDA")
}

#[cfg(test)]
#[allow(clippy::indexing_slicing)] // tests index what they built
mod tests {
    use super::*;

    fn error(code: u32) -> CudaError {
        CudaError::new(code, "m")
    }

    #[test]
    fn every_documented_sticky_code_is_sticky_and_permanent() {
        for (code, name) in STICKY_ERRORS {
            let e = error(code);
            assert!(e.is_sticky(), "{code}");
            assert_eq!(e.kind(), ErrorKind::Permanent, "{code}");
            assert!(e.to_string().contains(name), "{e}");
        }
        let codes: Vec<u32> = STICKY_ERRORS.iter().map(|(code, _)| *code).collect();
        assert_eq!(
            codes,
            [
                226, 700, 702, 710, 714, 715, 716, 717, 718, 719, 721, 810, 911
            ]
        );
    }

    #[test]
    fn codes_the_driver_does_not_call_sticky_are_not() {
        // 214 ECC and 220 NVLink (no such text), 701 launch out of resources, 709 context
        // destroyed, 720 cooperative launch too large, 222 PTX too new, 999 unknown.
        for code in [
            1, 2, 4, 100, 209, 214, 218, 220, 222, 701, 709, 720, 801, 999,
        ] {
            assert!(!error(code).is_sticky(), "{code}");
            assert_ne!(error(code).kind(), ErrorKind::Permanent, "{code}");
        }
        assert_eq!(error(2).kind(), ErrorKind::ResourceExhausted);
        assert_eq!(error(701).kind(), ErrorKind::ResourceExhausted);
        assert_eq!(error(1).kind(), ErrorKind::InvalidInput);
        assert_eq!(error(100).kind(), ErrorKind::Unavailable);
        assert_eq!(error(222).kind(), ErrorKind::Unavailable);
        assert_eq!(error(999).kind(), ErrorKind::Transient);
        assert_eq!(CudaError::deadline().kind(), ErrorKind::Timeout);
        assert!(!CudaError::deadline().is_sticky());
        assert!(CudaError::deadline().is_deadline());
    }

    #[test]
    fn an_unnamed_error_on_a_lost_context_is_sticky() {
        let e = CudaError {
            context_lost: true,
            ..error(999)
        };
        assert!(e.is_sticky());
        assert_eq!(e.kind(), ErrorKind::Permanent);
        assert_eq!(
            e.to_string(),
            "m (CUDA error 999, and the context fails every call since: it is lost)"
        );
        assert_eq!(
            error(700).to_string(),
            "m (CUDA error 700, CUDA_ERROR_ILLEGAL_ADDRESS: the context is lost)"
        );
    }

    #[test]
    fn ptx_isa_versions_parse_and_the_embedded_ptx_is_cuda_12_4() {
        let isa = |major, minor| PtxIsa { major, minor };
        assert_eq!(
            ptx_isa_version("//\n// Generated\n\n.version 8.4\n.target sm_80\n"),
            Some(isa(8, 4))
        );
        assert_eq!(ptx_isa_version("  .version 10.12 \n"), Some(isa(10, 12)));
        assert_eq!(ptx_isa_version(".target sm_80\n"), None);
        assert_eq!(ptx_isa_version(".version eight\n"), None);
        for module in EMBEDDED_PTX {
            assert_eq!(
                ptx_isa_version(module.embedded),
                Some(isa(8, 4)),
                "{}",
                module.name
            );
            assert!(module.embedded.contains(".target sm_80"), "{}", module.name);
        }
        let release = first_release_for(isa(8, 4)).expect("known");
        assert_eq!(
            (release.version, release.min_linux_driver),
            (12040, "550.54.14")
        );
    }

    #[test]
    fn a_ptx_newer_than_the_driver_is_222_with_both_versions_and_the_driver_it_needs() {
        let isa = PtxIsa { major: 8, minor: 4 };
        let e = unsupported_ptx("embedded pagerank PTX", isa, 12020).expect("too new");
        assert_eq!(e.code, CUDA_ERROR_UNSUPPORTED_PTX_VERSION);
        assert_eq!(
            e.message,
            "CUDA_ERROR_UNSUPPORTED_PTX_VERSION: embedded pagerank PTX is PTX ISA 8.4, but the \
             driver supports CUDA 12.2 (PTX ISA up to 8.2); it needs NVIDIA driver 550.54.14 or \
             newer (CUDA 12.4)"
        );
        assert!(!e.is_sticky());
        assert_eq!(unsupported_ptx("p", isa, 12040), None);
        assert_eq!(unsupported_ptx("p", isa, 13000), None);
        // 8.6 shipped in no public release before 12.8.
        let e = unsupported_ptx("p", PtxIsa { major: 8, minor: 6 }, 12060).expect("too new");
        assert!(e.message.contains("570.26 or newer (CUDA 12.8)"), "{e}");
        // An ISA newer than the table, and a driver older than the table.
        let e = unsupported_ptx("p", PtxIsa { major: 9, minor: 9 }, 13000).expect("too new");
        assert!(e.message.contains("newer than CUDA 13.0"), "{e}");
        let e = unsupported_ptx("p", isa, 10020).expect("too new");
        assert!(e.message.contains("CUDA 10.2 (PTX ISA older)"), "{e}");
    }

    #[test]
    fn a_gpu_older_than_the_ptx_target_is_named() {
        assert_eq!(ptx_target("\n.version 8.4\n.target sm_80\n"), Some(80));
        assert_eq!(ptx_target(".target sm_90a, debug\n"), Some(90));
        assert_eq!(ptx_target(".target compute_80\n"), None);
        assert_eq!(ptx_target(".version 8.4\n"), None);
        for module in EMBEDDED_PTX {
            assert_eq!(ptx_target(module.embedded), Some(80), "{}", module.name);
        }
        let e = unsupported_gpu("embedded matmul PTX", 80, 75, 218).expect("too old");
        assert_eq!(e.code, 218);
        assert_eq!(
            e.message,
            "embedded matmul PTX targets sm_80 (compute capability 8.0 or newer), but this GPU \
             is compute capability 7.5"
        );
        assert_eq!(unsupported_gpu("p", 80, 80, 218), None);
        assert_eq!(unsupported_gpu("p", 80, 90, 218), None);
    }

    #[test]
    fn pagerank_stops_after_the_first_change_below_the_tolerance() {
        assert_eq!(pagerank_stop(&[0.5, 0.1, 1e-11, 0.0], 1e-10), Some(3));
        assert_eq!(pagerank_stop(&[1e-12], 1e-10), Some(1));
        assert_eq!(pagerank_stop(&[0.5, 0.1], 1e-10), None);
        // Tolerance 0 never stops early, and NaN never compares below.
        assert_eq!(pagerank_stop(&[0.0, f64::NAN], 0.0), None);
        assert_eq!(pagerank_stop(&[], 1.0), None);
    }

    #[test]
    fn ptx_sources_read_embedded_or_from_a_directory() {
        assert_eq!(
            PtxSource::Embedded.read(MATMUL_PTX).as_deref(),
            Ok(MATMUL_PTX.embedded)
        );
        assert!(MATMUL_PTX.embedded.contains(".entry matmul_tiled"));
        assert!(PAGERANK_PTX.embedded.contains(".entry pagerank_spmv"));
        assert!(FAULTS_PTX.embedded.contains(".entry fault_spin"));
        let dir = PtxSource::Dir(PathBuf::from("/nonexistent/ptx"));
        assert_eq!(
            dir.read(PAGERANK_PTX),
            Err(InitError::NoPtx(PathBuf::from(
                "/nonexistent/ptx/pagerank.ptx"
            )))
        );
        assert_eq!(
            dir.describe(MATMUL_PTX),
            "/nonexistent/ptx/matmul.ptx".to_owned()
        );
        assert_eq!(
            PtxSource::Embedded.describe(MATMUL_PTX),
            "embedded matmul PTX"
        );
        assert_eq!(
            InitError::NoPtx(PathBuf::from("/p/matmul.ptx")).to_string(),
            "no PTX (/p/matmul.ptx)"
        );
        assert_eq!(InitError::NoDevice.to_string(), "no device");
    }
}
