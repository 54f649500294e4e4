//! Shared pieces of the firmware examples: the SysTick time driver, the output channel
//! (telemetry frames and logs over semihosting), the simulated accelerator, and the embassy
//! glue that drives the core's state machines.
#![no_std]

pub mod accelerator;
pub mod adapter;
pub mod log;
pub mod output;
pub mod time_driver;

// Links defmt's global logger (semihosting) in the `defmt` build.
#[cfg(feature = "defmt")]
use defmt_semihosting as _;
