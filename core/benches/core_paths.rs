//! Hot paths of the core: the closed-state call (acquire + success), the rejection of an open
//! breaker, and the computation of a backoff delay.
//!
//! The closed call looks at the transition `on_success` returns as a caller does: it acts on one
//! when there is one (`if let Some(..)`). `closed_acquire_success_moved` instead hands the whole
//! `Option<Transition>` to `black_box`, as a caller that stores or forwards it does: that value
//! is 24 bytes (a transition carries the `Trip` figures), of which a `None` writes one, and
//! reading all 24 back right after stalls store forwarding on x86 (the cost that bench shows
//! over the other is that stall, not the breaker's work).
//!
//! Run with `cargo bench -p rustkernel-core --bench core_paths`.

use std::hint::black_box;
use std::time::Duration;

use criterion::{Criterion, criterion_group, criterion_main};
use rustkernel_core::error::ErrorKind;
use rustkernel_core::resilience::{BackoffStrategy, CircuitBreaker, CircuitBreakerConfig};
use rustkernel_core::rng::Rng;
use rustkernel_core::time::Instant;

fn breaker(c: &mut Criterion) {
    let mut group = c.benchmark_group("circuit_breaker");
    let mut cb = CircuitBreaker::new(CircuitBreakerConfig::default());
    let mut now = 0u64;
    group.bench_function("closed_acquire_success", |b| {
        b.iter(|| {
            now += 1;
            let at = Instant::from_micros(black_box(now));
            if let Ok(permit) = cb.try_acquire(at)
                && let Some(transition) = cb.on_success(permit, at)
            {
                black_box(transition);
            }
        });
    });
    let mut moved = CircuitBreaker::new(CircuitBreakerConfig::default());
    group.bench_function("closed_acquire_success_moved", |b| {
        b.iter(|| {
            now += 1;
            let at = Instant::from_micros(black_box(now));
            if let Ok(permit) = moved.try_acquire(at) {
                black_box(moved.on_success(permit, at));
            }
        });
    });

    let mut open = CircuitBreaker::new(CircuitBreakerConfig {
        failure_threshold: 1,
        timeout: Duration::from_secs(3_600),
        ..Default::default()
    });
    let t0 = Instant::from_secs(1);
    if let Ok(permit) = open.try_acquire(t0) {
        let _ = open.on_failure(permit, ErrorKind::Transient, t0);
    }
    group.bench_function("open_rejection", |b| {
        b.iter(|| black_box(open.try_acquire(black_box(t0)).is_err()));
    });
    group.finish();
}

fn backoff(c: &mut Criterion) {
    let mut group = c.benchmark_group("backoff");
    let strategy = BackoffStrategy::ExponentialWithJitter {
        initial: Duration::from_millis(100),
        max: Duration::from_secs(10),
        multiplier: 2.0,
    };
    let mut rng = Rng::new(0x5eed);
    let mut attempt = 0u32;
    group.bench_function("next_delay_exponential_with_jitter", |b| {
        b.iter(|| {
            attempt = attempt.wrapping_add(1) % 16;
            black_box(strategy.delay(black_box(attempt), Duration::ZERO, &mut rng))
        });
    });
    group.finish();
}

criterion_group!(benches, breaker, backoff);
criterion_main!(benches);
