//! Closed-path cost of the shared circuit breaker against `failsafe` 1.3 and `recloser` 1.4, in
//! one run: one thread, two threads (throughput), and `call` against awaiting the bare future.
//!
//! Every operation is a future (or function) that succeeds at once; futures are polled once
//! with a no-op waker, so no runtime cost is measured. Peers: failsafe with its
//! consecutive-failures policy (the like-for-like of ours; its default adds a success-rate
//! window) through its futures API and its function API; recloser (rate mode, its only mode)
//! through `AsyncRecloser` and its function API.
//!
//! `cargo bench -p rustkernel-tokio --bench breaker -- --warm-up-time 1 --measurement-time 3`

use std::future::Future;
use std::hint::black_box;
use std::pin::pin;
use std::sync::Barrier;
use std::task::{Context, Poll, Waker};
use std::time::{Duration, Instant};

use criterion::{BenchmarkId, Criterion, Throughput, criterion_group, criterion_main};
use failsafe::{backoff, failure_policy};
use rustkernel_tokio::resilience::{CircuitBreaker, CircuitBreakerConfig, Classify};

#[derive(Debug)]
struct Never;
impl Classify for Never {}

/// Polls a ready future once, with no runtime.
#[inline(always)]
fn now<F: Future>(future: F) -> F::Output {
    match pin!(future).poll(&mut Context::from_waker(Waker::noop())) {
        Poll::Ready(output) => output,
        Poll::Pending => unreachable!("ready futures only"),
    }
}

/// The breakers under test, each in its closed state.
struct Breakers {
    ours: CircuitBreaker,
    failsafe: failsafe::StateMachine<failure_policy::ConsecutiveFailures<backoff::Constant>, ()>,
    recloser: recloser::Recloser,
    recloser_async: recloser::AsyncRecloser,
}

impl Breakers {
    fn new() -> Self {
        Self {
            ours: CircuitBreaker::new(CircuitBreakerConfig::default()),
            failsafe: failsafe::Config::new()
                .failure_policy(failure_policy::consecutive_failures(
                    5,
                    backoff::constant(Duration::from_secs(30)),
                ))
                .build(),
            recloser: recloser::Recloser::default(),
            recloser_async: recloser::AsyncRecloser::from(recloser::Recloser::default()),
        }
    }
}

const NAMES: [&str; 5] = [
    "rustkernel",
    "failsafe_async",
    "failsafe_fn",
    "recloser_async",
    "recloser_fn",
];

fn single_thread(c: &mut Criterion) {
    let breakers = Breakers::new();
    let mut group = c.benchmark_group("closed_call");
    group.throughput(Throughput::Elements(1));
    // Matching each name inside the loop would cost a string compare per call: one closure per
    // breaker instead.
    group.bench_function("rustkernel", |b| {
        b.iter(|| {
            now(breakers
                .ours
                .call(|| async { Ok::<_, Never>(black_box(1u64)) }))
        })
    });
    group.bench_function("failsafe_async", |b| {
        b.iter(|| {
            now(failsafe::futures::CircuitBreaker::call(
                &breakers.failsafe,
                std::future::ready(Ok::<_, ()>(black_box(1u64))),
            ))
        })
    });
    group.bench_function("failsafe_fn", |b| {
        b.iter(|| {
            failsafe::CircuitBreaker::call(&breakers.failsafe, || Ok::<_, ()>(black_box(1u64)))
        })
    });
    group.bench_function("recloser_async", |b| {
        b.iter(|| {
            now(breakers
                .recloser_async
                .call(std::future::ready(Ok::<_, ()>(black_box(1u64)))))
        })
    });
    group.bench_function("recloser_fn", |b| {
        b.iter(|| breakers.recloser.call(|| Ok::<_, ()>(black_box(1u64))))
    });
    group.finish();
}

fn overhead(c: &mut Criterion) {
    let cb = CircuitBreaker::new(CircuitBreakerConfig::default());
    let mut group = c.benchmark_group("call_overhead");
    group.bench_function("bare_future", |b| {
        b.iter(|| now(async { Ok::<_, Never>(black_box(1u64)) }))
    });
    group.bench_function("rustkernel_call", |b| {
        b.iter(|| now(cb.call(|| async { Ok::<_, Never>(black_box(1u64)) })))
    });
    group.finish();
}

/// `threads` threads make `iters` calls each at once, on one shared breaker; the time is the
/// slowest thread's, from a common start.
fn run_threads<F: Fn(u64) -> u64 + Sync>(call: F, threads: usize, iters: u64) -> Duration {
    let start = Barrier::new(threads);
    let slowest = std::thread::scope(|scope| {
        let handles: Vec<_> = (0..threads)
            .map(|_| {
                scope.spawn(|| {
                    start.wait();
                    let begun = Instant::now();
                    let mut sum = 0u64;
                    for i in 0..iters {
                        sum = sum.wrapping_add(call(black_box(i)));
                    }
                    black_box(sum);
                    begun.elapsed()
                })
            })
            .collect();
        handles
            .into_iter()
            .filter_map(|handle| handle.join().ok())
            .max()
    });
    slowest.unwrap_or_default()
}

/// [`run_threads`] with the closed-path call of the breaker named `name`.
fn run_named(breakers: &Breakers, name: &str, threads: usize, iters: u64) -> Duration {
    match name {
        "rustkernel" => run_threads(
            |value| now(breakers.ours.call(|| async move { Ok::<_, Never>(value) })).unwrap_or(0),
            threads,
            iters,
        ),
        "failsafe_async" => run_threads(
            |value| {
                now(failsafe::futures::CircuitBreaker::call(
                    &breakers.failsafe,
                    std::future::ready(Ok::<_, ()>(value)),
                ))
                .unwrap_or(0)
            },
            threads,
            iters,
        ),
        "failsafe_fn" => run_threads(
            |value| {
                failsafe::CircuitBreaker::call(&breakers.failsafe, || Ok::<_, ()>(value))
                    .unwrap_or(0)
            },
            threads,
            iters,
        ),
        "recloser_async" => run_threads(
            |value| {
                now(breakers
                    .recloser_async
                    .call(std::future::ready(Ok::<_, ()>(value))))
                .unwrap_or(0)
            },
            threads,
            iters,
        ),
        "recloser_fn" => run_threads(
            |value| breakers.recloser.call(|| Ok::<_, ()>(value)).unwrap_or(0),
            threads,
            iters,
        ),
        _ => unreachable!("unknown breaker {name}"),
    }
}

fn threads(c: &mut Criterion) {
    let breakers = Breakers::new();
    let mut group = c.benchmark_group("closed_call_threads");
    for name in NAMES {
        for threads in [1usize, 2] {
            group.throughput(Throughput::Elements(threads as u64));
            group.bench_with_input(BenchmarkId::new(name, threads), &threads, |b, &threads| {
                b.iter_custom(|iters| run_named(&breakers, name, threads, iters))
            });
        }
    }
    group.finish();
}

criterion_group!(benches, single_thread, overhead, threads);
criterion_main!(benches);
