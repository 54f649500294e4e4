//! An embassy time driver on the Cortex-M SysTick timer.
//!
//! SysTick counts down from its reload value at the processor clock and raises the SysTick
//! exception each time it wraps. Here it wraps every millisecond: QEMU's `mps2-an386` runs the
//! processor clock at 25 MHz ([`CPU_HZ`]), so the reload is 25 000 cycles. The driver:
//!
//! - counts wraps in the SysTick exception (one per millisecond) and reads the counter in
//!   between, so [`now`](Driver::now) has microsecond resolution (embassy's default tick rate,
//!   1 MHz: one embassy tick is one microsecond, the core's unit too);
//! - keeps embassy's integrated timer queue and, on every SysTick exception whose millisecond
//!   reached the earliest alarm, wakes the due tasks. Timers therefore fire on the first
//!   millisecond boundary at or after their deadline (up to 1 ms late, never early).
//!
//! A 64-bit count of microseconds does not overflow in 500 000 years.
//!
//! Under QEMU, SysTick counts QEMU's virtual clock. The runner in `.cargo/config.toml` passes
//! `-icount shift=5,sleep=off`, so that clock advances 32 ns per instruction and jumps over
//! idle time: the scenario runs deterministically and faster than real time. Without
//! `-icount` the virtual clock follows the host's real time and the run still works, only
//! slower and at the mercy of the host's load.

use core::cell::{Cell, RefCell};
use core::task::Waker;

use cortex_m::peripheral::syst::SystClkSource;
use cortex_m::peripheral::{SCB, SYST};
use critical_section::{CriticalSection, Mutex};
use embassy_time_driver::Driver;
use embassy_time_queue_utils::Queue;

/// The processor clock of QEMU's `mps2-an386` model (the board's 25 MHz SYSCLK).
pub const CPU_HZ: u32 = 25_000_000;
/// SysTick exceptions per second.
pub const SYSTICK_HZ: u32 = 1_000;
/// Processor cycles per SysTick period.
const CYCLES_PER_PERIOD: u32 = CPU_HZ / SYSTICK_HZ;
/// Embassy ticks (microseconds) per SysTick period.
const TICKS_PER_PERIOD: u64 = embassy_time_driver::TICK_HZ / SYSTICK_HZ as u64;
/// Processor cycles per embassy tick.
const CYCLES_PER_TICK: u32 = CPU_HZ / 1_000_000;

const _: () = assert!(
    embassy_time_driver::TICK_HZ == 1_000_000,
    "ticks are microseconds"
);
const _: () = assert!(CYCLES_PER_PERIOD > 0 && CYCLES_PER_PERIOD <= 0x0100_0000);
const _: () = assert!(CYCLES_PER_TICK > 0 && CPU_HZ.is_multiple_of(SYSTICK_HZ));

struct SysTickDriver {
    /// SysTick periods since [`start`].
    periods: Mutex<Cell<u64>>,
    /// The latest `now` handed out, so time never goes back.
    latest: Mutex<Cell<u64>>,
    /// The earliest expiration in the queue (`u64::MAX`: none).
    alarm: Mutex<Cell<u64>>,
    queue: Mutex<RefCell<Queue>>,
}

embassy_time_driver::time_driver_impl!(static DRIVER: SysTickDriver = SysTickDriver {
    periods: Mutex::new(Cell::new(0)),
    latest: Mutex::new(Cell::new(0)),
    alarm: Mutex::new(Cell::new(u64::MAX)),
    queue: Mutex::new(RefCell::new(Queue::new())),
});

impl SysTickDriver {
    fn now_in(&self, cs: CriticalSection<'_>) -> u64 {
        let mut periods = self.periods.borrow(cs).get();
        let mut current = SYST::get_current();
        // A wrap not yet counted (the exception is pending while we hold the critical
        // section): count it, and read the counter again, after the wrap.
        if SCB::is_pendst_pending() {
            periods = periods.saturating_add(1);
            current = SYST::get_current();
        }
        let elapsed_cycles = CYCLES_PER_PERIOD.saturating_sub(1).saturating_sub(current);
        let ticks = periods
            .saturating_mul(TICKS_PER_PERIOD)
            .saturating_add(u64::from(elapsed_cycles / CYCLES_PER_TICK));
        let latest = self.latest.borrow(cs);
        let ticks = ticks.max(latest.get());
        latest.set(ticks);
        ticks
    }

    fn on_period(&self) {
        critical_section::with(|cs| {
            let periods = self.periods.borrow(cs);
            periods.set(periods.get().saturating_add(1));
            let now = self.now_in(cs);
            if now >= self.alarm.borrow(cs).get() {
                let next = self.queue.borrow_ref_mut(cs).next_expiration(now);
                self.alarm.borrow(cs).set(next);
            }
        });
    }
}

impl Driver for SysTickDriver {
    fn now(&self) -> u64 {
        critical_section::with(|cs| self.now_in(cs))
    }

    fn schedule_wake(&self, at: u64, waker: &Waker) {
        critical_section::with(|cs| {
            let mut queue = self.queue.borrow_ref_mut(cs);
            if queue.schedule_wake(at, waker) {
                let now = self.now_in(cs);
                let next = queue.next_expiration(now);
                self.alarm.borrow(cs).set(next);
            }
        });
    }
}

/// Starts SysTick at [`SYSTICK_HZ`] from the processor clock. Call once, before any timer.
pub fn start(mut syst: SYST) {
    syst.disable_counter();
    syst.set_clock_source(SystClkSource::Core);
    syst.set_reload(CYCLES_PER_PERIOD.saturating_sub(1));
    syst.clear_current();
    syst.enable_interrupt();
    syst.enable_counter();
}

/// The body of the SysTick exception handler: counts the period and wakes due timers.
///
/// The binary's `#[exception] fn SysTick()` calls it (an exception handler must live in the
/// binary so the linker keeps it).
pub fn on_systick() {
    DRIVER.on_period();
}
