//! `rustkernel`: see `rustkernel --help`.

use std::process::ExitCode;

use clap::Parser;

fn main() -> ExitCode {
    rustkernel_host::cli::run(rustkernel_host::cli::Cli::parse())
}
