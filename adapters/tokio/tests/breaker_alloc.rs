//! The closed-path `call` allocates nothing: counted per thread by `allocation-counter`'s
//! global allocator (so this test needs no `unsafe` of its own, and allocations of other
//! threads, such as the test harness's, cannot disturb the count).
// A test fails by panicking.
#![allow(clippy::panic)]

use std::future::Future;
use std::pin::pin;
use std::task::{Context, Poll, Waker};

use std::time::Duration;

use rustkernel_tokio::resilience::{
    CircuitBreaker, CircuitBreakerConfig, Classify, CountWindow, SlidingWindow, TimeWindow,
};

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

    let mut sum = 0;
    let change = allocation_counter::measure(|| {
        for n in 0..10_000 {
            sum += ready(call(n)).unwrap_or(0);
        }
    });
    assert_eq!(sum, 49_995_000);
    assert_eq!(
        (change.count_total, change.bytes_total),
        (0, 0),
        "closed-path successes allocated: {change:?}"
    );

    // The locked paths (a failure, then the success that ends the streak) allocate nothing
    // either when no transition happens.
    let change = allocation_counter::measure(|| {
        for _ in 0..1_000 {
            assert!(ready(fail()).is_err());
            assert!(ready(call(1)).is_ok());
        }
    });
    assert_eq!(
        (change.count_total, change.bytes_total),
        (0, 0),
        "{change:?}"
    );
    // The counter does see this thread's allocations.
    let control = allocation_counter::measure(|| {
        std::hint::black_box(Box::new(1_u64));
    });
    assert_eq!(control.count_total, 1);
    assert_eq!(cb.stats().success_count, 100 + 1 + 10_000 + 1_000);
}

/// 10 000 closed-path successes of `cb`, then 1 000 failure-success pairs: no allocation.
fn allocates_nothing<W: SlidingWindow>(cb: &CircuitBreaker<W>) {
    let call = |n: u64| cb.call(move || async move { Ok::<_, Failed>(n) });
    let fail = || cb.call(|| async { Err::<u64, _>(Failed) });
    for n in 0..200 {
        assert_eq!(ready(call(n)).ok(), Some(n));
    }
    let mut sum = 0;
    let change = allocation_counter::measure(|| {
        for n in 0..10_000 {
            sum += ready(call(n)).unwrap_or(0);
        }
    });
    assert_eq!(sum, 49_995_000);
    assert_eq!(
        (change.count_total, change.bytes_total),
        (0, 0),
        "closed-path successes allocated: {change:?}"
    );
    let change = allocation_counter::measure(|| {
        for _ in 0..1_000 {
            assert!(ready(fail()).is_err());
            assert!(ready(call(1)).is_ok());
        }
    });
    assert_eq!(
        (change.count_total, change.bytes_total),
        (0, 0),
        "{change:?}"
    );
    assert_eq!(cb.stats().success_count, 200 + 10_000 + 1_000);
}

fn rate_config() -> CircuitBreakerConfig {
    CircuitBreakerConfig {
        // 1 failure in 2 calls never reaches it: the breaker stays closed throughout.
        failure_rate_threshold: Some(0.9),
        minimum_calls: 10,
        ..Default::default()
    }
}

#[test]
fn rate_mode_allocates_nothing() {
    allocates_nothing(
        &CircuitBreaker::builder(rate_config())
            .window(CountWindow::<100>::new())
            .build(),
    );
}

#[test]
fn slow_call_mode_allocates_nothing() {
    allocates_nothing(
        &CircuitBreaker::builder(CircuitBreakerConfig {
            slow_call_duration: Some(Duration::from_secs(10)),
            slow_call_rate_threshold: 0.9,
            ..rate_config()
        })
        .window(CountWindow::<100>::new())
        .build(),
    );
}

#[test]
fn time_window_mode_allocates_nothing() {
    allocates_nothing(
        &CircuitBreaker::builder(CircuitBreakerConfig {
            window_duration: Some(Duration::from_secs(10)),
            ..rate_config()
        })
        .window(TimeWindow::<10>::new())
        .build(),
    );
}

#[test]
fn coarse_clock_modes_allocate_nothing() {
    allocates_nothing(
        &CircuitBreaker::builder(CircuitBreakerConfig {
            slow_call_duration: Some(Duration::from_secs(10)),
            slow_call_rate_threshold: 0.9,
            window_duration: Some(Duration::from_secs(10)),
            ..rate_config()
        })
        .window(TimeWindow::<10>::new())
        .coarse_clock()
        .build(),
    );
}

/// 10 000 calls through a tower `GuardService` (ready, then call): no allocation.
fn guarded_calls_allocate_nothing<G: rustkernel_tokio::layer::Guard + Clone>(guard: G) {
    use tower::{Layer, Service};

    let echo = tower::service_fn(|n: u64| async move { Ok::<_, Failed>(n) });
    let mut service = rustkernel_tokio::layer::GuardLayer::new(guard).layer(echo);
    let mut context = Context::from_waker(Waker::noop());
    let mut call = |n: u64| match service.poll_ready(&mut context) {
        Poll::Ready(Ok(())) => ready(service.call(n)).unwrap_or(0),
        _ => panic!("the service was expected to be ready"),
    };
    for n in 0..200 {
        assert_eq!(call(n), n);
    }
    let mut sum = 0;
    let change = allocation_counter::measure(|| {
        for n in 0..10_000 {
            sum += call(n);
        }
    });
    assert_eq!(sum, 49_995_000);
    assert_eq!(
        (change.count_total, change.bytes_total),
        (0, 0),
        "guarded calls allocated: {change:?}"
    );
}

#[test]
fn tower_guarded_calls_allocate_nothing() {
    let time_window = || {
        CircuitBreaker::builder(CircuitBreakerConfig {
            window_duration: Some(Duration::from_secs(10)),
            ..rate_config()
        })
        .window(TimeWindow::<10>::new())
        .build()
    };
    let shared = time_window();
    guarded_calls_allocate_nothing(shared.clone());
    assert_eq!(shared.stats().success_count, 10_200);
    let leaked: &'static CircuitBreaker<TimeWindow<10>> = Box::leak(Box::new(time_window()));
    guarded_calls_allocate_nothing(leaked);
    assert_eq!(leaked.stats().success_count, 10_200);
}
