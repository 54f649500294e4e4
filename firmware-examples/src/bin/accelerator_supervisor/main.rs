//! An edge controller that supervises an accelerator, under QEMU (`cargo run --release`): the
//! [`scenario`] on the board the target picks (`build.rs`):
//!
//! - `thumbv7em-none-eabihf` (the default): QEMU's `mps2-an386`, a Cortex-M4F; its clock is
//!   SysTick.
//! - `thumbv6m-none-eabi`: QEMU's `microbit`, an nRF51 (Cortex-M0: no FPU, no compare-and-swap);
//!   its clock is TIMER0.
//!
//! What lives here is what the linker must find in the binary: the entry point, the exception
//! and interrupt handlers, the interrupt vectors and the panic handler.

#![no_std]
#![no_main]

mod scenario;

use embassy_executor::Spawner;
use rustkernel_firmware_examples::board;

#[embassy_executor::main]
async fn main(spawner: Spawner) {
    if let Err(why) = board::start() {
        scenario::fail(why);
    }
    scenario::run(spawner).await
}

#[cfg(board = "mps2_an386")]
#[cortex_m_rt::exception]
fn SysTick() {
    board::on_clock_interrupt();
}

// ---- the interrupt vectors -------------------------------------------------------------------

/// The interrupt part of the vector table, with cortex-m-rt's `device` feature: the board's
/// 32 vectors instead of the generic table's 240 (960 bytes of flash). Each one points at the
/// default handler but the board's clock, if it is an interrupt ([`board::CLOCK_IRQ`]).
#[allow(
    unsafe_code,
    reason = "the vector table is an unmangled static in its own section"
)]
mod vectors {
    use rustkernel_firmware_examples::board;

    /// External interrupts of both boards (QEMU models 32 on their NVIC).
    const IRQS: usize = 32;

    unsafe extern "C" {
        /// cortex-m-rt's handler for exceptions and interrupts without one of their own.
        fn DefaultHandler();
    }

    /// The board's clock interrupt.
    extern "C" fn clock() {
        board::on_clock_interrupt();
    }

    #[allow(
        clippy::indexing_slicing,
        reason = "evaluated when the firmware is compiled (the static's initializer): an index \
                  out of bounds is a compile error"
    )]
    const fn table() -> [unsafe extern "C" fn(); IRQS] {
        let mut table: [unsafe extern "C" fn(); IRQS] = [DefaultHandler; IRQS];
        let mut irq = 0;
        while irq < IRQS {
            if matches!(board::CLOCK_IRQ, Some(clock_irq) if clock_irq == irq) {
                table[irq] = clock;
            }
            irq += 1;
        }
        table
    }

    /// Read by the hardware only: IRQ 0 sits at `ORIGIN(FLASH) + 0x40` (cortex-m-rt's `link.x`).
    #[unsafe(link_section = ".vector_table.interrupts")]
    #[unsafe(no_mangle)]
    static __INTERRUPTS: [unsafe extern "C" fn(); IRQS] = table();
}

#[panic_handler]
fn panic(info: &core::panic::PanicInfo<'_>) -> ! {
    #[cfg(feature = "defmt")]
    defmt::error!("panic: {}", defmt::Display2Format(info));
    // The location costs about 2 KiB of flash (every panic site's `Location` and file name
    // stay in the image once the handler reads them), so the plain build only says that it
    // panicked unless built with `panic-location`.
    #[cfg(all(not(feature = "defmt"), feature = "panic-location"))]
    if let Some(location) = info.location() {
        rustkernel_firmware_examples::info!("panic at {}:{}", location.file(), location.line());
    }
    #[cfg(all(not(feature = "defmt"), not(feature = "panic-location")))]
    let _ = info;
    scenario::fail("panic")
}
