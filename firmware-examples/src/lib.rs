//! Shared pieces of the firmware examples: the boards (their time drivers), the output channel
//! (telemetry frames and logs over semihosting) and the simulated accelerator. The scenario is
//! the binary's (`src/bin/accelerator_supervisor/scenario.rs`, the same on both boards: compiled
//! in the binary's crate, it takes 1.2 KiB less flash than from this one). The resilience itself
//! comes from `rustkernel-embassy` over `rustkernel-core`.
#![no_std]

pub mod accelerator;
pub mod board;
pub mod log;
#[cfg(board = "microbit")]
pub mod nrf51_timer;
pub mod output;
#[cfg(board = "mps2_an386")]
pub mod time_driver;

// Links defmt's global logger (semihosting) in the `defmt` build.
#[cfg(feature = "defmt")]
use defmt_semihosting as _;
