//! The closed-path `call` allocates nothing: counted by an instrumented global allocator
//! (`stats_alloc`, so this test needs no `unsafe` of its own).
// A test fails by panicking.
#![allow(clippy::panic)]

use std::alloc::System;
use std::future::Future;
use std::pin::pin;
use std::task::{Context, Poll, Waker};

use rustkernel_tokio::resilience::{CircuitBreaker, CircuitBreakerConfig, Classify};
use stats_alloc::{INSTRUMENTED_SYSTEM, Region, StatsAlloc};

#[global_allocator]
static GLOBAL: &StatsAlloc<System> = &INSTRUMENTED_SYSTEM;

#[derive(Debug)]
struct Failed;
impl Classify for Failed {}

/// Polls a future that is ready at once, with no runtime.
fn ready<F: Future>(future: F) -> F::Output {
    let mut context = Context::from_waker(Waker::noop());
    match pin!(future).poll(&mut context) {
        Poll::Ready(output) => output,
        Poll::Pending => panic!("the call was expected to be ready"),
    }
}

#[test]
fn closed_path_call_allocates_nothing() {
    let cb = CircuitBreaker::new(CircuitBreakerConfig {
        failure_threshold: u32::MAX,
        ..Default::default()
    });
    let call = |n: u64| cb.call(move || async move { Ok::<_, Failed>(n) });
    let fail = || cb.call(|| async { Err::<u64, _>(Failed) });
    // Warm-up: the thread's counter stripe, lazy statics.
    for n in 0..100 {
        assert_eq!(ready(call(n)).ok(), Some(n));
    }
    ready(fail()).ok();
    ready(call(0)).ok();

    let region = Region::new(GLOBAL);
    let mut sum = 0;
    for n in 0..10_000 {
        sum += ready(call(n)).unwrap_or(0);
    }
    let change = region.change();
    assert_eq!(sum, 49_995_000);
    assert_eq!(
        (
            change.allocations,
            change.reallocations,
            change.bytes_allocated
        ),
        (0, 0, 0),
        "closed-path successes allocated: {change:?}"
    );

    // The locked paths (a failure, then the success that ends the streak) allocate nothing
    // either when no transition happens.
    let region = Region::new(GLOBAL);
    for _ in 0..1_000 {
        assert!(ready(fail()).is_err());
        assert!(ready(call(1)).is_ok());
    }
    let change = region.change();
    assert_eq!(
        (change.allocations, change.bytes_allocated),
        (0, 0),
        "{change:?}"
    );
    assert_eq!(cb.stats().success_count, 100 + 1 + 10_000 + 1_000);
}
