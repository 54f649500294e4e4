//! What the examples need to run on a host: embassy-time's mock clock, moved forward whenever
//! the example waits, as a board's timer would move. On a board the same code runs under an
//! embassy executor with a real time driver (see `firmware-examples/`).

#![allow(dead_code, reason = "each example uses a different part")]

use std::future::Future;
use std::pin::pin;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::task::{Context, Poll, Wake, Waker};

use embassy_time::{Duration, Instant, MockDriver};

struct Flag(AtomicBool);

impl Wake for Flag {
    fn wake(self: Arc<Self>) {
        self.0.store(true, Ordering::SeqCst);
    }
}

/// Runs `future` to completion. While it waits and nothing woke it, the mock clock moves 1 ms
/// at a time, so timers fire in order and no time is spent on the host. Gives up (`None`)
/// after a virtual hour.
pub(crate) fn run<F: Future>(future: F) -> Option<F::Output> {
    let woken = Arc::new(Flag(AtomicBool::new(true)));
    let waker = Waker::from(Arc::clone(&woken));
    let mut cx = Context::from_waker(&waker);
    let mut future = pin!(future);
    let start = Instant::now();
    loop {
        if woken.0.swap(false, Ordering::SeqCst) {
            if let Poll::Ready(output) = future.as_mut().poll(&mut cx) {
                return Some(output);
            }
            continue;
        }
        if Instant::now().saturating_duration_since(start) > Duration::from_secs(3_600) {
            return None;
        }
        MockDriver::get().advance(Duration::from_millis(1));
    }
}

/// Milliseconds on the clock since boot.
pub(crate) fn now_ms() -> u64 {
    Instant::now().as_millis()
}
