//! An embassy time driver on the nRF51's TIMER0, for QEMU's `microbit` machine.
//!
//! QEMU models the nRF51's three TIMERs but not its RTC (QEMU's `docs/system/arm/nrf.rst`), so
//! the clock is TIMER0: 16 MHz divided by 2^4 (`PRESCALER` 4), one count per microsecond, which
//! is embassy's default tick (1 MHz, the core's unit too), in 32-bit mode. The driver:
//!
//! - extends the 32-bit counter to 64 bits by counting half-periods: compare channel 1 fires
//!   when the counter wraps to 0 and channel 2 when it passes 2^31 (2^15 with the
//!   `timer-16bit` feature, see [`BITS`]), each adding one to
//!   `periods` when its parity says that half-period is the one ending. Now is `periods * 2^31` plus the counter with its top bit read against the
//!   parity of `periods`, so a half-period whose interrupt is still pending is counted right
//!   (the scheme of embassy-nrf's RTC driver), as long as the interrupt runs within 35 minutes;
//! - reads the counter as the hardware makes one do: trigger `TASKS_CAPTURE[3]`, read `CC[3]`;
//! - keeps embassy's integrated timer queue and programs the earliest alarm into compare
//!   channel 0 once it is less than half a period away (the half-period interrupts look again
//!   until then). Writing a compare value the counter has just passed would fire only a wrap
//!   later, so after each write the alarm is checked against the clock again, and due timers
//!   are woken at once. Timers fire on their tick, never early.
//!
//! A 64-bit count of microseconds does not overflow in 500 000 years.
//!
//! Under QEMU, the timer counts QEMU's virtual clock; the runner in `.cargo/config.toml` passes
//! `-icount`, as on the other board, so runs are deterministic.

use core::cell::{Cell, RefCell};
use core::task::Waker;

use cortex_m::interrupt::InterruptNumber;
use cortex_m::peripheral::NVIC;
use critical_section::{CriticalSection, Mutex};
use embassy_time_driver::Driver;
use embassy_time_queue_utils::Queue;

/// TIMER0's interrupt number (its peripheral id: base address bits 12 to 16).
pub const IRQ: usize = 8;

const _: () = assert!(
    embassy_time_driver::TICK_HZ == 1_000_000,
    "ticks are microseconds"
);

/// TIMER0's registers, at their offsets from its base (nRF51 Reference Manual, TIMER).
mod reg {
    pub(super) const BASE: usize = 0x4000_8000;
    pub(super) const TASKS_START: usize = 0x000;
    pub(super) const TASKS_CLEAR: usize = 0x00C;
    /// `TASKS_CAPTURE[n]` is at `+ 4 n`.
    pub(super) const TASKS_CAPTURE: usize = 0x040;
    /// `EVENTS_COMPARE[n]` is at `+ 4 n`.
    pub(super) const EVENTS_COMPARE: usize = 0x140;
    pub(super) const INTENSET: usize = 0x304;
    pub(super) const INTENCLR: usize = 0x308;
    pub(super) const MODE: usize = 0x504;
    pub(super) const BITMODE: usize = 0x508;
    pub(super) const PRESCALER: usize = 0x510;
    /// `CC[n]` is at `+ 4 n`.
    pub(super) const CC: usize = 0x540;

    /// `INTENSET`/`INTENCLR` bit of `COMPARE[n]`.
    pub(super) const fn compare_interrupt(n: usize) -> u32 {
        1 << (16 + n)
    }

    /// Writes a TIMER0 register.
    #[allow(
        unsafe_code,
        reason = "a volatile write to TIMER0's memory-mapped registers, which nothing else owns"
    )]
    pub(super) fn write(offset: usize, value: u32) {
        // SAFETY: BASE + offset is one of TIMER0's 32-bit registers (the offsets above), always
        // mapped on the nRF51; only this driver touches TIMER0.
        unsafe { core::ptr::write_volatile((BASE + offset) as *mut u32, value) }
    }

    /// Reads a TIMER0 register.
    #[allow(
        unsafe_code,
        reason = "a volatile read of TIMER0's memory-mapped registers, which nothing else owns"
    )]
    pub(super) fn read(offset: usize) -> u32 {
        // SAFETY: as in `write`.
        unsafe { core::ptr::read_volatile((BASE + offset) as *const u32) }
    }
}

/// The compare channel of the alarm.
const ALARM: usize = 0;
/// The channels that count half-periods: at 0 (the wrap) and at 2^31.
const WRAP: usize = 1;
const HALF: usize = 2;
/// The channel the counter is captured into, to read it.
const CAPTURE: usize = 3;
/// The counter's width: 32 bits, or 16 with the `timer-16bit` feature, which wraps it every
/// 65.536 ms so that a run of the scenario crosses the 64-bit extension seven times (a test of
/// it in `scripts/firmware-e2e.sh`; at 32 bits the first wrap comes after 71 minutes).
const BITS: u32 = if cfg!(feature = "timer-16bit") {
    16
} else {
    32
};
/// `BITMODE` for [`BITS`]: 0 is 16 bits, 3 is 32.
const BITMODE: u32 = if BITS == 16 { 0 } else { 3 };
const HALF_PERIOD: u32 = 1 << (BITS - 1);
/// The counter's values.
const MASK: u32 = u32::MAX >> (32 - BITS);

struct Timer0Driver {
    /// Half-periods of the counter since [`start`].
    periods: Mutex<Cell<u32>>,
    /// The earliest expiration in the queue (`u64::MAX`: none).
    alarm: Mutex<Cell<u64>>,
    queue: Mutex<RefCell<Queue>>,
}

embassy_time_driver::time_driver_impl!(static DRIVER: Timer0Driver = Timer0Driver {
    periods: Mutex::new(Cell::new(0)),
    alarm: Mutex::new(Cell::new(u64::MAX)),
    queue: Mutex::new(RefCell::new(Queue::new())),
});

/// Ticks since start from the half-periods counted and the counter (see the module docs).
const fn ticks(periods: u32, counter: u32) -> u64 {
    ((periods as u64) << (BITS - 1)) + ((counter ^ ((periods & 1) << (BITS - 1))) as u64)
}

impl Timer0Driver {
    fn now_in(&self, cs: CriticalSection<'_>) -> u64 {
        let periods = self.periods.borrow(cs).get();
        reg::write(reg::TASKS_CAPTURE + 4 * CAPTURE, 1);
        ticks(periods, reg::read(reg::CC + 4 * CAPTURE))
    }

    /// Programs the earliest alarm, waking the timers that are due until one is in the future.
    fn arm(&self, cs: CriticalSection<'_>) {
        let alarm = self.alarm.borrow(cs);
        loop {
            let at = alarm.get();
            let now = self.now_in(cs);
            if at <= now {
                alarm.set(self.queue.borrow_ref_mut(cs).next_expiration(now));
                continue;
            }
            if at - now >= u64::from(HALF_PERIOD) {
                // Not this half-period: the half-period interrupts come back to it.
                reg::write(reg::INTENCLR, reg::compare_interrupt(ALARM));
                return;
            }
            #[allow(
                clippy::cast_possible_truncation,
                reason = "the counter's low bits, less than half a period away"
            )]
            reg::write(reg::CC + 4 * ALARM, at as u32 & MASK);
            reg::write(reg::INTENSET, reg::compare_interrupt(ALARM));
            // Passed while it was being written: the compare would fire only after a wrap.
            if self.now_in(cs) < at {
                return;
            }
        }
    }

    fn on_interrupt(&self) {
        critical_section::with(|cs| {
            // The wrap ends an odd half-period, the half-way point an even one: an event counts
            // only when the parity says it is due, so one seen at start (the counter cleared to
            // 0 equals CC[1]; QEMU raises it) or twice is not counted again.
            for (channel, ends_odd) in [(WRAP, true), (HALF, false)] {
                if reg::read(reg::EVENTS_COMPARE + 4 * channel) != 0 {
                    reg::write(reg::EVENTS_COMPARE + 4 * channel, 0);
                    let periods = self.periods.borrow(cs);
                    if (periods.get() & 1 == 1) == ends_odd {
                        periods.set(periods.get().wrapping_add(1));
                    }
                }
            }
            if reg::read(reg::EVENTS_COMPARE + 4 * ALARM) != 0 {
                reg::write(reg::EVENTS_COMPARE + 4 * ALARM, 0);
            }
            self.arm(cs);
        });
    }
}

impl Driver for Timer0Driver {
    fn now(&self) -> u64 {
        critical_section::with(|cs| self.now_in(cs))
    }

    fn schedule_wake(&self, at: u64, waker: &Waker) {
        critical_section::with(|cs| {
            let mut queue = self.queue.borrow_ref_mut(cs);
            if queue.schedule_wake(at, waker) {
                let next = queue.next_expiration(self.now_in(cs));
                drop(queue);
                self.alarm.borrow(cs).set(next);
                self.arm(cs);
            }
        });
    }
}

/// TIMER0's interrupt, for `NVIC::unmask`.
#[derive(Clone, Copy, Debug)]
struct Timer0Irq;

#[allow(unsafe_code, reason = "an interrupt number is an unsafe trait")]
// SAFETY: 8 is TIMER0's interrupt on the nRF51, a valid external interrupt of its NVIC.
unsafe impl InterruptNumber for Timer0Irq {
    fn number(self) -> u16 {
        8
    }
}

const _: () = assert!(IRQ == 8);

/// Starts TIMER0 at 1 MHz, [`BITS`] bits, its half-period interrupts on. Call once, before any
/// timer.
pub fn start() {
    reg::write(reg::MODE, 0); // timer, not counter
    reg::write(reg::BITMODE, BITMODE);
    reg::write(reg::PRESCALER, 4); // 16 MHz / 2^4
    reg::write(reg::CC + 4 * WRAP, 0);
    reg::write(reg::CC + 4 * HALF, HALF_PERIOD);
    reg::write(
        reg::INTENSET,
        reg::compare_interrupt(WRAP) | reg::compare_interrupt(HALF),
    );
    reg::write(reg::TASKS_CLEAR, 1);
    reg::write(reg::TASKS_START, 1);
    #[allow(
        unsafe_code,
        reason = "unmasking an interrupt can break a critical section built on masking"
    )]
    // SAFETY: the firmware's critical sections disable interrupts globally (cortex-m's
    // single-core implementation), not by masking TIMER0.
    unsafe {
        NVIC::unmask(Timer0Irq);
    }
}

/// The body of TIMER0's interrupt handler: counts half-periods and wakes due timers.
///
/// The binary's vector table calls it (an interrupt handler must live in the binary so the
/// linker keeps it).
pub fn on_interrupt() {
    DRIVER.on_interrupt();
}
