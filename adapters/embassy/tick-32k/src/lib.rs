//! A mock embassy time driver that ticks at 32.768 kHz, for the tests in `tests/` (embassy-time's
//! own `mock-driver` is fixed at 1 MHz). The clock moves only when a test calls [`advance`];
//! timers that become due are woken then.

use core::cell::{Cell, RefCell};
use core::task::Waker;

use critical_section::Mutex;
use embassy_time_driver::Driver;
use embassy_time_queue_utils::Queue;

/// The tick rate this build runs at.
pub const TICK_HZ: u64 = 32_768;

const _: () = assert!(embassy_time_driver::TICK_HZ == TICK_HZ);

struct SlowClock {
    now: Mutex<Cell<u64>>,
    queue: Mutex<RefCell<Queue>>,
}

embassy_time_driver::time_driver_impl!(static CLOCK: SlowClock = SlowClock {
    now: Mutex::new(Cell::new(0)),
    queue: Mutex::new(RefCell::new(Queue::new())),
});

impl Driver for SlowClock {
    fn now(&self) -> u64 {
        critical_section::with(|cs| self.now.borrow(cs).get())
    }

    fn schedule_wake(&self, at: u64, waker: &Waker) {
        critical_section::with(|cs| {
            let mut queue = self.queue.borrow_ref_mut(cs);
            if queue.schedule_wake(at, waker) {
                // Wakes at once whatever is already due.
                queue.next_expiration(self.now.borrow(cs).get());
            }
        });
    }
}

/// Moves the clock `ticks` ticks forward and wakes the timers that became due.
pub fn advance(ticks: u64) {
    critical_section::with(|cs| {
        let now = CLOCK.now.borrow(cs);
        now.set(now.get().saturating_add(ticks));
        CLOCK.queue.borrow_ref_mut(cs).next_expiration(now.get());
    });
}

/// Puts the clock back at tick 0 and forgets every timer.
pub fn reset() {
    critical_section::with(|cs| {
        CLOCK.now.borrow(cs).set(0);
        CLOCK.queue.borrow(cs).replace(Queue::new());
    });
}
