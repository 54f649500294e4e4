//! The worker's command line ([`WorkerArgs`]): everything it needs comes on it, since the
//! service clears its environment; fault injection for tests included ([`FaultKind`]); and its
//! exit statuses.

use std::path::PathBuf;

use super::protocol;

/// Exit status after replying with a poisoned context.
pub const EXIT_POISONED: i32 = 3;
/// Exit status when the backend cannot run here (after a `Hello` that says why).
pub const EXIT_UNAVAILABLE: i32 = 4;
/// Exit status when the service's bytes do not decode or stdout is gone.
pub const EXIT_PROTOCOL: i32 = 5;
/// Exit status of the crash fault.
pub const EXIT_CRASH_FAULT: i32 = 101;

/// Which backend the worker runs kernels on.
#[derive(Clone, Copy, Debug, PartialEq, Eq, clap::ValueEnum)]
pub enum BackendKind {
    /// The CPU implementations of [`kernels`](crate::kernels): for tests and benchmarks of the worker path,
    /// and for machines without CUDA.
    Cpu,
    /// CUDA through `cust` (the worker must be built with the `cuda` feature).
    Cuda,
}

/// A fault the worker injects, for tests of the service's handling of a misbehaving worker.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, clap::ValueEnum)]
pub enum FaultKind {
    /// Write half a reply, then exit with [`EXIT_CRASH_FAULT`].
    Crash,
    /// Never answer the request (heartbeats go on): only the deadline catches it.
    Hang,
    /// Write bytes that are not a frame.
    Garbage,
    /// Stop heartbeats and sit on the request: the heartbeat timeout catches it.
    SlowHeartbeats,
    /// Reply with a sticky CUDA error (700, illegal address) and exit with
    /// [`EXIT_POISONED`], as a real poisoned context does.
    Poisoned,
    /// A real out-of-bounds store on the GPU: the CUDA backend launches a kernel that writes
    /// outside its buffer, replies with the sticky 700 it gets and exits with
    /// [`EXIT_POISONED`]. A backend without a GPU (the CPU one) replies as [`FaultKind::Poisoned`].
    #[value(name = "gpu-oob")]
    GpuOutOfBounds,
    /// A kernel that never returns: the CUDA backend launches one that spins on the device
    /// (heartbeats go on), so only the service's deadline and kill free the GPU for the next
    /// worker. A backend without a GPU hangs the worker's thread, as [`FaultKind::Hang`].
    GpuHang,
}

impl FaultKind {
    /// The name used on the command line (`--fault slow-heartbeats`).
    #[must_use]
    pub const fn as_str(self) -> &'static str {
        match self {
            FaultKind::Crash => "crash",
            FaultKind::Hang => "hang",
            FaultKind::Garbage => "garbage",
            FaultKind::SlowHeartbeats => "slow-heartbeats",
            FaultKind::Poisoned => "poisoned",
            FaultKind::GpuOutOfBounds => "gpu-oob",
            FaultKind::GpuHang => "gpu-hang",
        }
    }
}

/// The worker's command line (the environment is cleared; this is all it is told).
#[derive(Clone, Debug, PartialEq, clap::Parser)]
#[command(
    name = "rustkernel-worker",
    about = "GPU worker of `rustkernel serve`: frames on stdin/stdout"
)]
pub struct WorkerArgs {
    /// The backend to run kernels on.
    #[arg(long, value_enum, default_value = "cpu")]
    pub backend: BackendKind,
    /// Milliseconds between heartbeats.
    #[arg(long, default_value_t = 50)]
    pub heartbeat_ms: u64,
    /// Directory holding the kernels' PTX (`pagerank.ptx`, `matmul.ptx`), for CUDA.
    #[arg(long)]
    pub ptx_dir: Option<PathBuf>,
    /// Milliseconds start-up (`cuInit`, the PTX, a tiny kernel) may take.
    #[arg(long, default_value_t = 10_000)]
    pub init_timeout_ms: u64,
    /// Inject this fault (tests only).
    #[arg(long, value_enum)]
    pub fault: Option<FaultKind>,
    /// The request (1 = the first) that triggers `--fault`; 0 triggers it right after `Hello`.
    #[arg(long, default_value_t = 1)]
    pub fault_on: u64,
    /// The longest request frame to read, in bytes (the service passes its body limit's).
    #[arg(long, default_value_t = protocol::MAX_FRAME_LEN)]
    pub max_frame_bytes: usize,
}
