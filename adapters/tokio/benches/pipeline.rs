//! Closed-path overhead of the whole pipeline (total deadline, retry with a shared budget, the
//! breaker, a per-attempt timeout; the operation succeeds at once) against awaiting the
//! operation bare, in one run. Futures are polled once with a no-op waker: no runtime cost is
//! measured, only the pipeline's own work (its clock read, the budget's deposit, the breaker's
//! state word, the deadline scopes). `clock_now` is one read of the crate's clock, the read the
//! pipeline makes, so the overhead over `bare` less that read comes from one run.
//!
//! `cargo bench -p rustkernel-tokio --bench pipeline -- --warm-up-time 1 --measurement-time 3`

use std::future::Future;
use std::hint::black_box;
use std::pin::pin;
use std::task::{Context, Poll, Waker};
use std::time::Duration;

use criterion::{Criterion, criterion_group, criterion_main};
use rustkernel_tokio::resilience::{
    CircuitBreaker, ErrorKind, Pipeline, ResilienceConfig, Retrier, SharedRetryBudget,
};

/// Polls a ready future once, with no runtime.
#[inline(always)]
fn now<F: Future>(future: F) -> F::Output {
    match pin!(future).poll(&mut Context::from_waker(Waker::noop())) {
        Poll::Ready(output) => output,
        Poll::Pending => unreachable!("ready futures only"),
    }
}

#[inline(never)]
async fn kernel(input: u64) -> Result<u64, ErrorKind> {
    Ok(black_box(input).wrapping_mul(2))
}

fn pipeline_overhead(c: &mut Criterion) {
    let config = ResilienceConfig::production();
    let full = Pipeline::builder()
        .timeout(config.timeout)
        .retry(
            Retrier::new(config.retry)
                .budget(SharedRetryBudget::new(config.retry_budget))
                .seed(1),
        )
        .breaker(CircuitBreaker::new(config.circuit_breaker))
        .attempt_timeout(Duration::from_secs(5))
        .build();
    let breaker_only = Pipeline::builder()
        .breaker(CircuitBreaker::new(config.circuit_breaker))
        .build();
    let mut group = c.benchmark_group("pipeline_closed_path");
    group.bench_function("bare", |b| {
        let mut n = 0_u64;
        b.iter(|| {
            n += 1;
            now(kernel(n))
        });
    });
    // The one clock read the pipeline's closed path makes (the goal: that read plus at most
    // 25 ns over `bare`).
    group.bench_function("clock_now", |b| b.iter(rustkernel_tokio::clock::now));
    group.bench_function("breaker_only", |b| {
        let mut n = 0_u64;
        b.iter(|| {
            n += 1;
            now(breaker_only.execute(|| kernel(n)))
        });
    });
    group.bench_function("full", |b| {
        let mut n = 0_u64;
        b.iter(|| {
            n += 1;
            now(full.execute(|| kernel(n)))
        });
    });
    group.finish();
}

criterion_group!(benches, pipeline_overhead);
criterion_main!(benches);
