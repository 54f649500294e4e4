//! `rustkernel-worker`: the GPU worker process of `rustkernel serve` (see
//! `rustkernel_host::gpu::worker`). Frames on stdin and stdout; `--help` for its flags.

/// The allocator of the static (musl) build, the container image's: musl's own is slow under
/// concurrent allocation (README "Container images and deployment").
#[cfg(target_env = "musl")]
#[global_allocator]
static GLOBAL: mimalloc::MiMalloc = mimalloc::MiMalloc;

use clap::Parser;
use rustkernel_host::gpu::worker::{self, BackendKind, WorkerArgs};

fn main() {
    let args = WorkerArgs::parse();
    let status = match args.backend {
        BackendKind::Cpu => worker::run(&args, worker::init_cpu),
        BackendKind::Cuda => worker::run(&args, worker::init_cuda),
    };
    std::process::exit(status);
}
