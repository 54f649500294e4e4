//! Shared pieces of the firmware examples: the SysTick time driver, the output channel
//! (telemetry frames and logs over semihosting) and the simulated accelerator. The resilience
//! itself comes from `rustkernel-embassy` over `rustkernel-core`.
#![no_std]

pub mod accelerator;
pub mod log;
pub mod output;
pub mod time_driver;

// Links defmt's global logger (semihosting) in the `defmt` build.
#[cfg(feature = "defmt")]
use defmt_semihosting as _;
