//! Several OS threads hammer one breaker with about a million calls, seeded random failures,
//! ignored errors, cancellations (futures dropped mid-call) and panics, on the real clock (the
//! breaker cycles through open and half-open many times; nothing sleeps). Each thread keeps up
//! to 8 calls in flight and polls them in random order, so calls and probes overlap.
//!
//! Checked: every admitted call is exactly one of success, failure, ignored, cancelled; the
//! breaker's counters equal the test's; never more than `half_open_max_calls` probes of one
//! half-open cycle are in flight.
//!
//! `BREAKER_STRESS_CALLS` sets the total number of calls (default 1 000 000).
// The stress test panics on purpose (and to fail).
#![allow(clippy::panic)]

use std::collections::HashMap;
use std::future::Future;
use std::panic::{AssertUnwindSafe, catch_unwind};
use std::pin::Pin;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Mutex, PoisonError};
use std::task::{Context, Poll, Waker};
use std::time::Duration;

use rustkernel_tokio::resilience::{CircuitBreaker, CircuitBreakerConfig, CircuitState, ErrorKind};

const THREADS: u64 = 4;
const HALF_OPEN_MAX_CALLS: u32 = 2;

/// SplitMix64: a small seeded generator, so a failing run can be replayed.
struct Rng(u64);

impl Rng {
    fn next(&mut self) -> u64 {
        self.0 = self.0.wrapping_add(0x9e37_79b9_7f4a_7c15);
        let mut z = self.0;
        z = (z ^ (z >> 30)).wrapping_mul(0xbf58_476d_1ce4_e5b9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94d0_49bb_1331_11eb);
        z ^ (z >> 31)
    }
}

#[derive(Debug, PartialEq)]
struct Failure(ErrorKind);
impl rustkernel_tokio::resilience::Classify for Failure {
    fn kind(&self) -> ErrorKind {
        self.0
    }
}

/// Totals kept by the test itself.
#[derive(Default)]
struct Tally {
    admitted: AtomicU64,
    rejected: AtomicU64,
    successes: AtomicU64,
    failures: AtomicU64,
    ignored: AtomicU64,
    cancelled: AtomicU64,
    probes: AtomicU64,
}

/// Probes in flight per half-open cycle, and the most ever seen in one cycle.
#[derive(Default)]
struct ProbeTracker {
    in_flight: Mutex<(HashMap<u32, u32>, u32)>,
}

impl ProbeTracker {
    fn start(&self, generation: u32) {
        let mut guard = self
            .in_flight
            .lock()
            .unwrap_or_else(PoisonError::into_inner);
        let (cycles, max) = &mut *guard;
        let count = cycles.entry(generation).or_insert(0);
        *count += 1;
        *max = (*max).max(*count);
        assert!(
            *count <= HALF_OPEN_MAX_CALLS,
            "{count} probes in flight in cycle {generation}"
        );
    }

    fn end(&self, generation: u32) {
        let mut guard = self
            .in_flight
            .lock()
            .unwrap_or_else(PoisonError::into_inner);
        if let Some(count) = guard.0.get_mut(&generation) {
            *count -= 1;
        }
    }

    fn max(&self) -> u32 {
        self.in_flight
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .1
    }
}

/// Polls once with no runtime.
fn poll_once<F: Future + ?Sized>(future: Pin<&mut F>) -> Poll<F::Output> {
    future.poll(&mut Context::from_waker(Waker::noop()))
}

/// A future that is pending on its first poll.
async fn yield_once() {
    let mut first = true;
    std::future::poll_fn(|_| {
        if std::mem::take(&mut first) {
            Poll::Pending
        } else {
            Poll::Ready(())
        }
    })
    .await;
}

/// How an admitted call ends.
#[derive(Clone, Copy, Debug, PartialEq)]
enum Fate {
    Succeed,
    Fail,
    Ignore,
    /// Its future is dropped after `polls` polls.
    Cancel,
    Panic,
}

/// One call in flight: its future (which holds the permit) and how it will end.
struct InFlight<'a> {
    future: Pin<Box<dyn Future<Output = Result<(), Failure>> + 'a>>,
    fate: Fate,
    polls: u32,
    probe: Option<u32>,
}

/// One thread: keeps up to `MAX_IN_FLIGHT` calls in flight and drives them in random order, so
/// calls (and probes) of this thread and of the others overlap.
struct Worker<'a> {
    cb: &'a CircuitBreaker,
    rng: Rng,
    tally: &'a Tally,
    tracker: &'a ProbeTracker,
    in_flight: Vec<InFlight<'a>>,
}

const MAX_IN_FLIGHT: usize = 8;

impl<'a> Worker<'a> {
    fn start(&mut self) {
        let permit = match self.cb.try_acquire() {
            Ok(permit) => permit,
            Err(_) => {
                self.tally.rejected.fetch_add(1, Ordering::Relaxed);
                return;
            }
        };
        self.tally.admitted.fetch_add(1, Ordering::Relaxed);
        let probe = permit.is_probe().then(|| permit.generation());
        if let Some(generation) = probe {
            self.tally.probes.fetch_add(1, Ordering::Relaxed);
            self.tracker.start(generation);
        }
        let fate = match self.rng.next() % 100 {
            0..60 => Fate::Succeed,
            60..75 => Fate::Fail,
            75..80 => Fate::Ignore,
            80..98 => Fate::Cancel,
            _ => Fate::Panic,
        };
        let suspensions = self.rng.next() % 3;
        let tracker = self.tracker;
        let operation = async move {
            for _ in 0..suspensions {
                yield_once().await;
            }
            if fate == Fate::Cancel {
                std::future::pending::<()>().await;
            }
            // The call ends here, just before its permit settles and frees its slot.
            if let Some(generation) = probe {
                tracker.end(generation);
            }
            match fate {
                Fate::Fail => Err(Failure(ErrorKind::Unavailable)),
                Fate::Ignore => Err(Failure(ErrorKind::InvalidInput)),
                Fate::Panic => panic!("the kernel panicked"),
                Fate::Succeed | Fate::Cancel => Ok(()),
            }
        };
        self.in_flight.push(InFlight {
            future: Box::pin(permit.run(operation)),
            fate,
            polls: 0,
            probe,
        });
    }

    /// Polls one call in flight, picked at random; settles the tally when it ends.
    fn step(&mut self) {
        let len = self.in_flight.len();
        let Some(index) = usize::try_from(self.rng.next())
            .ok()
            .map(|r| r % len.max(1))
        else {
            return;
        };
        let Some(call) = self.in_flight.get_mut(index) else {
            return;
        };
        if call.fate == Fate::Cancel && call.polls >= 2 {
            let call = self.in_flight.swap_remove(index);
            if let Some(generation) = call.probe {
                self.tracker.end(generation);
            }
            drop(call.future);
            self.tally.cancelled.fetch_add(1, Ordering::Relaxed);
            return;
        }
        call.polls += 1;
        let polled = catch_unwind(AssertUnwindSafe(|| poll_once(call.future.as_mut())));
        let counter = match (polled, call.fate) {
            (Ok(Poll::Pending), _) => return,
            (Ok(Poll::Ready(Ok(()))), Fate::Succeed) => &self.tally.successes,
            (Ok(Poll::Ready(Err(_))), Fate::Fail) => &self.tally.failures,
            (Ok(Poll::Ready(Err(_))), Fate::Ignore) => &self.tally.ignored,
            // The future is dropped below, after the panic: its permit settles as cancelled.
            (Err(_), Fate::Panic) => &self.tally.cancelled,
            (other, fate) => panic!("{fate:?} ended as {:?}", other.is_ok()),
        };
        counter.fetch_add(1, Ordering::Relaxed);
        drop(self.in_flight.swap_remove(index));
    }

    fn run(mut self, calls: u64) {
        let mut started = 0;
        while started < calls || !self.in_flight.is_empty() {
            let start = started < calls
                && self.in_flight.len() < MAX_IN_FLIGHT
                && (self.in_flight.is_empty() || self.rng.next().is_multiple_of(2));
            if start {
                started += 1;
                self.start();
            } else {
                self.step();
            }
        }
    }
}

#[test]
fn a_million_calls_on_four_threads_keep_every_count_and_the_probe_bound() {
    let total: u64 = std::env::var("BREAKER_STRESS_CALLS")
        .ok()
        .and_then(|calls| calls.parse().ok())
        .unwrap_or(1_000_000);
    let per_thread = total / THREADS;
    // The panics are expected; keep the output readable.
    std::panic::set_hook(Box::new(|_| {}));

    let cb = CircuitBreaker::new(CircuitBreakerConfig {
        failure_threshold: 5,
        success_threshold: 2,
        timeout: Duration::from_micros(20),
        half_open_max_calls: HALF_OPEN_MAX_CALLS,
        max_wait_in_half_open: Duration::from_millis(10),
        ..Default::default()
    });
    let tally = Tally::default();
    let tracker = ProbeTracker::default();
    std::thread::scope(|scope| {
        for thread in 0..THREADS {
            let (cb, tally, tracker) = (&cb, &tally, &tracker);
            scope.spawn(move || {
                let worker = Worker {
                    cb,
                    rng: Rng(0x5eed_0000 + thread),
                    tally,
                    tracker,
                    in_flight: Vec::with_capacity(MAX_IN_FLIGHT),
                };
                worker.run(per_thread);
            });
        }
    });
    let _ = std::panic::take_hook();

    let load = |counter: &AtomicU64| counter.load(Ordering::Relaxed);
    let admitted = load(&tally.admitted);
    let (successes, failures) = (load(&tally.successes), load(&tally.failures));
    let (ignored, cancelled) = (load(&tally.ignored), load(&tally.cancelled));
    let rejected = load(&tally.rejected);
    assert_eq!(admitted + rejected, per_thread * THREADS);
    assert_eq!(admitted, successes + failures + ignored + cancelled);

    let stats = cb.stats();
    assert_eq!(stats.success_count, successes);
    assert_eq!(stats.failure_count, failures);
    assert_eq!(stats.rejected_count, rejected);
    // The run went through many open/half-open cycles and probed.
    assert!(stats.transitions > 100, "{stats:?}");
    assert!(rejected > 0 && load(&tally.probes) > 0);
    assert!(tracker.max() >= 1 && tracker.max() <= HALF_OPEN_MAX_CALLS);
    // Quiet now: the word agrees with the core.
    assert_eq!(cb.state(), stats.state);
    assert_ne!(cb.state(), CircuitState::ForcedOpen);
    eprintln!(
        "calls {} admitted {admitted} rejected {rejected} successes {successes} failures {failures} \
         ignored {ignored} cancelled {cancelled} probes {} max probes/cycle {} transitions {}",
        per_thread * THREADS,
        load(&tally.probes),
        tracker.max(),
        stats.transitions
    );
}
