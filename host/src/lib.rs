//! The `rustkernel` command's library: each subcommand is a module, [`cli`] parses and runs.
//!
//! Commands: `rustkernel serve` ([`service`], configured by [`config`]), `rustkernel health`,
//! `rustkernel config show|check` ([`commands`]) and `rustkernel telemetry decode`
//! ([`telemetry`]). The kernels the service runs are in [`kernels`].

pub mod cli;
pub mod commands;
pub mod config;
pub mod gpu;
pub mod kernels;
pub mod service;
pub mod telemetry;
