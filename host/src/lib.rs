//! The `rustkernel` command's library: each subcommand is a module, [`cli`] parses and runs.
//!
//! Commands: `rustkernel serve` ([`service`], configured by [`config`]), `rustkernel health`,
//! `rustkernel config show|check` ([`commands`]) and `rustkernel telemetry decode`
//! ([`telemetry`]). The kernels the service runs, and the pool they run on, are in
//! [`kernels`]; long-running kernels as jobs that checkpoint and resume in [`jobs`]; the GPU
//! worker, its supervision and its CPU failover in [`gpu`].
//!
//! The host is the library's first user: the decisions (breakers, retries, deadlines, health,
//! the worker's recovery) are the core's and the tokio adapter's; these modules wire them to
//! HTTP, processes and files. Each module's docs list its rooms; no module imports one that
//! imports it back.

pub mod cli;
pub mod commands;
pub mod config;
pub mod gpu;
pub mod jobs;
pub mod kernels;
pub mod service;
pub mod telemetry;
