//! A tiny executor on embassy-time's mock clock, shared by the scenario tests.
//!
//! The mock driver is one global clock, so tests that use it take [`serial`] first: it holds a
//! process-wide lock for the test's duration and resets the clock to zero.

#![allow(dead_code, reason = "each test binary uses a different part")]

use std::future::Future;
use std::pin::pin;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex, MutexGuard};
use std::task::{Context, Poll, Wake, Waker};

use embassy_time::{Duration, Instant, MockDriver};
use rustkernel_core::error::{Classify, ErrorKind};

static SERIAL: Mutex<()> = Mutex::new(());

/// Takes the clock for one test and resets it to zero.
pub(crate) fn serial() -> MutexGuard<'static, ()> {
    let guard = SERIAL
        .lock()
        .unwrap_or_else(|poisoned| poisoned.into_inner());
    MockDriver::get().reset();
    guard
}

/// Moves the virtual clock forward, waking timers that become due.
pub(crate) fn advance(duration: Duration) {
    MockDriver::get().advance(duration);
}

/// Virtual milliseconds since the clock was reset.
pub(crate) fn now_ms() -> u64 {
    Instant::now().as_millis()
}

struct Flag(AtomicBool);

impl Wake for Flag {
    fn wake(self: Arc<Self>) {
        self.0.store(true, Ordering::SeqCst);
    }
}

/// Runs `fut` to completion. Whenever it is pending and nothing woke it, the virtual clock
/// moves forward by `step`; panics if that adds up to more than `limit`.
pub(crate) fn run<F: Future>(fut: F, step: Duration, limit: Duration) -> F::Output {
    let flag = Arc::new(Flag(AtomicBool::new(true)));
    let waker = Waker::from(flag.clone());
    let mut cx = Context::from_waker(&waker);
    let mut fut = pin!(fut);
    let start = Instant::now();
    loop {
        if flag.0.swap(false, Ordering::SeqCst) {
            if let Poll::Ready(output) = fut.as_mut().poll(&mut cx) {
                return output;
            }
            continue;
        }
        assert!(
            Instant::now().saturating_duration_since(start) < limit,
            "the future did not finish within {} ms of virtual time",
            limit.as_millis()
        );
        advance(step);
    }
}

/// [`run`] in 1 ms steps for at most a virtual hour.
pub(crate) fn run_ms<F: Future>(fut: F) -> F::Output {
    run(fut, Duration::from_millis(1), Duration::from_secs(3_600))
}

/// An operation's error in the tests: its kind and which attempt produced it.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) struct JobError {
    pub(crate) kind: ErrorKind,
    pub(crate) attempt: u32,
}

impl Classify for JobError {
    fn kind(&self) -> ErrorKind {
        self.kind
    }
}

/// The message `build` panics with (it must panic): what a `const` build error would say.
pub(crate) fn panic_message<T>(build: impl FnOnce() -> T + std::panic::UnwindSafe) -> String {
    let panic = std::panic::catch_unwind(build)
        .err()
        .expect("an invalid configuration cannot be built");
    panic.downcast_ref::<String>().cloned().unwrap_or_default()
}
