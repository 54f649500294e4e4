//! `rustkernel`: see `rustkernel --help`.

/// The allocator of the static (musl) build, the container image's: musl's own is slow under
/// concurrent allocation (README "Container images and deployment").
#[cfg(target_env = "musl")]
#[global_allocator]
static GLOBAL: mimalloc::MiMalloc = mimalloc::MiMalloc;

use std::process::ExitCode;

use clap::Parser;

fn main() -> ExitCode {
    rustkernel_host::cli::run(rustkernel_host::cli::Cli::parse())
}
