//! The board the firmware is built for, picked by the target in `build.rs`: what the scenario
//! needs of it (a running clock, a name, a device id) and what the binary's handlers call.
//!
//! | Target | QEMU machine | Core | Clock |
//! |--------|--------------|------|-------|
//! | `thumbv7em-none-eabihf` | `mps2-an386` | Cortex-M4F, 25 MHz | SysTick ([`time_driver`](crate::time_driver)) |
//! | `thumbv6m-none-eabi` | `microbit` (nRF51822) | Cortex-M0, 16 MHz | TIMER0 ([`nrf51_timer`](crate::nrf51_timer)) |

#[cfg(board = "mps2_an386")]
mod selected {
    /// The board, in the log.
    pub const NAME: &str = "mps2-an386 (Cortex-M4F)";
    /// This device, in the telemetry's `Hello` frame.
    pub const DEVICE_ID: u32 = 0x0A38_6001;
    /// The clock is SysTick, an exception: no interrupt of its own.
    pub const CLOCK_IRQ: Option<usize> = None;

    /// Starts the clock (SysTick).
    ///
    /// # Errors
    /// When the core peripherals were already taken.
    pub fn start() -> Result<(), &'static str> {
        let peripherals = cortex_m::Peripherals::take().ok_or("peripherals already taken")?;
        crate::time_driver::start(peripherals.SYST);
        Ok(())
    }

    /// The body of the SysTick handler.
    pub fn on_clock_interrupt() {
        crate::time_driver::on_systick();
    }
}

#[cfg(board = "microbit")]
mod selected {
    /// The board, in the log.
    pub const NAME: &str = "microbit (nRF51, Cortex-M0)";
    /// This device, in the telemetry's `Hello` frame.
    pub const DEVICE_ID: u32 = 0x0051_0001;
    /// TIMER0's interrupt.
    pub const CLOCK_IRQ: Option<usize> = Some(crate::nrf51_timer::IRQ);

    /// Starts the clock (TIMER0) and unmasks its interrupt.
    ///
    /// # Errors
    /// Never; the same signature as the other board's.
    #[allow(
        clippy::unnecessary_wraps,
        reason = "the same signature on every board"
    )]
    pub fn start() -> Result<(), &'static str> {
        crate::nrf51_timer::start();
        Ok(())
    }

    /// The body of TIMER0's interrupt handler.
    pub fn on_clock_interrupt() {
        crate::nrf51_timer::on_interrupt();
    }
}

pub use selected::*;
