//! The `rustkernel` command's library: each subcommand is a module, [`cli`] parses and runs.
//!
//! Commands so far: `rustkernel telemetry decode` ([`telemetry`]). The service commands
//! (`serve`, `health`) slot in beside it as modules and [`cli::Command`] variants.

pub mod cli;
pub mod gpu;
pub mod kernels;
pub mod telemetry;
