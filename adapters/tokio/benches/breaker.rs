//! Closed-path cost of the shared circuit breaker in every mode against its like-for-like peer,
//! in one run, on one thread and on two (throughput):
//!
//! | ours | peer |
//! |---|---|
//! | consecutive failures (`NoWindow`) | `failsafe` 1.3, consecutive-failures policy |
//! | failure rate over the last 100 calls (`CountWindow<100>`) | `recloser` 1.4 default (failure rate over a ring of 100) |
//! | failure rate + slow calls, `CountWindow<100>` | (none has both; listed for the cost of the clock) |
//! | failure rate over the last 10 s in 10 buckets (`TimeWindow<10>`), as a tower service | `tower-resilience-circuitbreaker` 0.14, time-based window of 10 s, as a tower service |
//!
//! The slow-call and time-window modes also run on the coarse clock (`_coarse`,
//! `CircuitBreakerBuilder::coarse_clock`).
//!
//! Every operation succeeds at once; futures are polled once with a no-op waker, so no runtime
//! cost is measured. The `closed_call` and `call_overhead` groups are the earlier single-thread
//! comparisons (`call` against failsafe's and recloser's futures and function APIs); `permit`
//! is `try_acquire` and a permit's `success` (or drop) with no future around them; `clock`
//! measures what one read of each clock costs here.
//!
//! `cargo bench -p rustkernel-tokio --bench breaker -- --warm-up-time 1 --measurement-time 3`
// A bench with a bad peer configuration stops with its message.
#![allow(clippy::panic)]

use std::convert::Infallible;
use std::future::Future;
use std::hint::black_box;
use std::pin::pin;
use std::sync::Barrier;
use std::task::{Context, Poll, Waker};
use std::time::{Duration, Instant};

use criterion::{BenchmarkId, Criterion, Throughput, criterion_group, criterion_main};
use failsafe::{backoff, failure_policy};
use rustkernel_tokio::resilience::{
    CallPermit, CircuitBreaker, CircuitBreakerConfig, Classify, CountWindow, GuardLayer, TimeWindow,
};
use tower::Layer;
use tower_service::Service;

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

fn rate_config() -> CircuitBreakerConfig {
    CircuitBreakerConfig {
        failure_rate_threshold: Some(0.5),
        minimum_calls: 100,
        ..Default::default()
    }
}

type Failsafe = failsafe::StateMachine<failure_policy::ConsecutiveFailures<backoff::Constant>, ()>;

/// The breakers under test, each in its closed state.
struct Breakers {
    ours: CircuitBreaker,
    ours_count: CircuitBreaker<CountWindow<100>>,
    ours_count_slow: CircuitBreaker<CountWindow<100>>,
    ours_time: CircuitBreaker<TimeWindow<10>>,
    /// Guards a tower service by reference (no reference count per call).
    ours_time_static: &'static CircuitBreaker<TimeWindow<10>>,
    ours_count_slow_coarse: CircuitBreaker<CountWindow<100>>,
    ours_time_coarse: CircuitBreaker<TimeWindow<10>>,
    failsafe: Failsafe,
    recloser: recloser::Recloser,
    recloser_async: recloser::AsyncRecloser,
}

impl Breakers {
    fn new() -> Self {
        Self {
            ours: CircuitBreaker::new(CircuitBreakerConfig::default()),
            ours_count: CircuitBreaker::builder(rate_config())
                .window(CountWindow::<100>::new())
                .build(),
            ours_count_slow: CircuitBreaker::builder(slow_config())
                .window(CountWindow::<100>::new())
                .build(),
            ours_time: CircuitBreaker::builder(time_config())
                .window(TimeWindow::<10>::new())
                .build(),
            ours_time_static: Box::leak(Box::new(
                CircuitBreaker::builder(time_config())
                    .window(TimeWindow::<10>::new())
                    .build(),
            )),
            ours_count_slow_coarse: CircuitBreaker::builder(slow_config())
                .window(CountWindow::<100>::new())
                .coarse_clock()
                .build(),
            ours_time_coarse: CircuitBreaker::builder(time_config())
                .window(TimeWindow::<10>::new())
                .coarse_clock()
                .build(),
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

fn slow_config() -> CircuitBreakerConfig {
    CircuitBreakerConfig {
        slow_call_duration: Some(Duration::from_secs(1)),
        slow_call_rate_threshold: 0.5,
        ..rate_config()
    }
}

fn time_config() -> CircuitBreakerConfig {
    CircuitBreakerConfig {
        window_duration: Some(Duration::from_secs(10)),
        ..rate_config()
    }
}

/// The inner service of the tower comparisons: answers at once.
#[derive(Clone, Copy, Debug)]
struct Echo;

impl Service<u64> for Echo {
    type Response = u64;
    type Error = Never;
    type Future = std::future::Ready<Result<u64, Never>>;
    fn poll_ready(&mut self, _: &mut Context<'_>) -> Poll<Result<(), Never>> {
        Poll::Ready(Ok(()))
    }
    fn call(&mut self, request: u64) -> Self::Future {
        std::future::ready(Ok(request))
    }
}

/// Echo for the peer, whose error bound wants `Send + 'static` and no `Classify`.
#[derive(Clone, Copy, Debug)]
struct PeerEcho;

impl Service<u64> for PeerEcho {
    type Response = u64;
    type Error = Infallible;
    type Future = std::future::Ready<Result<u64, Infallible>>;
    fn poll_ready(&mut self, _: &mut Context<'_>) -> Poll<Result<(), Infallible>> {
        Poll::Ready(Ok(()))
    }
    fn call(&mut self, request: u64) -> Self::Future {
        std::future::ready(Ok(request))
    }
}

fn ours_tower(cb: &CircuitBreaker<TimeWindow<10>>) -> impl Service<u64, Response = u64> + Clone {
    GuardLayer::new(cb.clone()).layer(Echo)
}

fn peer_tower() -> impl Service<u64, Response = u64> + Clone + Send {
    use tower_resilience_circuitbreaker::{CircuitBreakerLayer as PeerLayer, SlidingWindowType};
    let layer = PeerLayer::builder()
        .failure_rate_threshold(0.5)
        .sliding_window_type(SlidingWindowType::TimeBased)
        .sliding_window_duration(Duration::from_secs(10))
        .minimum_number_of_calls(100)
        .build();
    match layer {
        Ok(layer) => layer.layer(PeerEcho),
        Err(error) => panic!("tower-resilience config: {error}"),
    }
}

/// Polls `future` until it is ready, spinning (the peer's async mutex is pending while another
/// thread holds it; nothing wakes a no-op waker, so poll again).
#[inline(always)]
fn spin<F: Future>(future: F) -> F::Output {
    let mut future = pin!(future);
    let mut cx = Context::from_waker(Waker::noop());
    loop {
        if let Poll::Ready(output) = future.as_mut().poll(&mut cx) {
            return output;
        }
        std::hint::spin_loop();
    }
}

/// One call through a tower service: ready, then call.
#[inline(always)]
fn tower_call<S: Service<u64, Response = u64>>(service: &mut S, value: u64) -> u64 {
    let mut cx = Context::from_waker(Waker::noop());
    match service.poll_ready(&mut cx) {
        Poll::Ready(Ok(())) => spin(service.call(value)).unwrap_or(0),
        _ => 0,
    }
}

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

fn clock(c: &mut Criterion) {
    let mut group = c.benchmark_group("clock");
    group.bench_function("std_instant_now", |b| b.iter(Instant::now));
    group.bench_function("tokio_instant_now", |b| b.iter(tokio::time::Instant::now));
    group.bench_function("rustkernel_clock_now", |b| {
        b.iter(rustkernel_tokio::clock::now)
    });
    group.bench_function("coarsetime_instant_now", |b| {
        b.iter(coarsetime::Instant::now_without_cache_update)
    });
    rustkernel_tokio::clock::calibrate_coarse();
    group.bench_function("rustkernel_clock_coarse_now", |b| {
        b.iter(rustkernel_tokio::clock::coarse_now)
    });
    group.finish();
}

/// `threads` threads make `iters` calls each at once, each with its own state from `make` (a
/// clone of a tower service); the time is the slowest thread's, from a common start.
fn run_threads<S, M, F>(make: M, call: F, threads: usize, iters: u64) -> Duration
where
    M: Fn() -> S + Sync,
    F: Fn(&mut S, u64) -> u64 + Sync,
{
    let start = Barrier::new(threads);
    let slowest = std::thread::scope(|scope| {
        let handles: Vec<_> = (0..threads)
            .map(|_| {
                scope.spawn(|| {
                    let mut state = make();
                    start.wait();
                    let begun = Instant::now();
                    let mut sum = 0u64;
                    for i in 0..iters {
                        sum = sum.wrapping_add(call(&mut state, black_box(i)));
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

/// The closed-path calls of every mode and peer, by name.
const NAMES: [&str; 13] = [
    "consecutive/rustkernel",
    "consecutive/failsafe_fn",
    "consecutive/failsafe_async",
    "count100/rustkernel",
    "count100/recloser_fn",
    "count100/recloser_async",
    "count100_slow/rustkernel",
    "count100_slow/rustkernel_coarse",
    "time10s/rustkernel",
    "time10s/rustkernel_coarse",
    "time10s_tower/rustkernel",
    "time10s_tower/rustkernel_static",
    "time10s_tower/tower_resilience",
];

async fn ok(value: u64) -> Result<u64, Never> {
    Ok(value)
}

/// [`run_threads`] with the closed-path call of the breaker named `name`.
fn run_named(breakers: &Breakers, name: &str, threads: usize, iters: u64) -> Duration {
    let b = breakers;
    let unit = || ();
    match name {
        "consecutive/rustkernel" => run_threads(
            unit,
            |(), v| now(b.ours.call(|| ok(v))).unwrap_or(0),
            threads,
            iters,
        ),
        "consecutive/failsafe_fn" => run_threads(
            unit,
            |(), v| failsafe::CircuitBreaker::call(&b.failsafe, || Ok::<_, ()>(v)).unwrap_or(0),
            threads,
            iters,
        ),
        "consecutive/failsafe_async" => run_threads(
            unit,
            |(), v| {
                now(failsafe::futures::CircuitBreaker::call(
                    &b.failsafe,
                    std::future::ready(Ok::<_, ()>(v)),
                ))
                .unwrap_or(0)
            },
            threads,
            iters,
        ),
        "count100/rustkernel" => run_threads(
            unit,
            |(), v| now(b.ours_count.call(|| ok(v))).unwrap_or(0),
            threads,
            iters,
        ),
        "count100/recloser_fn" => run_threads(
            unit,
            |(), v| b.recloser.call(|| Ok::<_, ()>(v)).unwrap_or(0),
            threads,
            iters,
        ),
        "count100/recloser_async" => run_threads(
            unit,
            |(), v| now(b.recloser_async.call(std::future::ready(Ok::<_, ()>(v)))).unwrap_or(0),
            threads,
            iters,
        ),
        "count100_slow/rustkernel" => run_threads(
            unit,
            |(), v| now(b.ours_count_slow.call(|| ok(v))).unwrap_or(0),
            threads,
            iters,
        ),
        "count100_slow/rustkernel_coarse" => run_threads(
            unit,
            |(), v| now(b.ours_count_slow_coarse.call(|| ok(v))).unwrap_or(0),
            threads,
            iters,
        ),
        "time10s/rustkernel_coarse" => run_threads(
            unit,
            |(), v| now(b.ours_time_coarse.call(|| ok(v))).unwrap_or(0),
            threads,
            iters,
        ),
        "time10s/rustkernel" => run_threads(
            unit,
            |(), v| now(b.ours_time.call(|| ok(v))).unwrap_or(0),
            threads,
            iters,
        ),
        "time10s_tower/rustkernel" => {
            run_threads(|| ours_tower(&b.ours_time), tower_call, threads, iters)
        }
        "time10s_tower/rustkernel_static" => run_threads(
            || GuardLayer::new(b.ours_time_static).layer(Echo),
            tower_call,
            threads,
            iters,
        ),
        "time10s_tower/tower_resilience" => {
            let peer = peer_tower();
            run_threads(|| peer.clone(), tower_call, threads, iters)
        }
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

/// The permit API on its own (`try_acquire`, then `success` or a drop), as a tower service or a
/// caller that holds the permit itself uses it: no future around it.
fn permits(c: &mut Criterion) {
    let breakers = Breakers::new();
    let mut group = c.benchmark_group("permit");
    group.bench_function("consecutive/acquire_success", |b| {
        b.iter(|| {
            black_box(&breakers.ours)
                .try_acquire()
                .map(CallPermit::success)
                .is_ok()
        })
    });
    group.bench_function("consecutive/acquire_drop", |b| {
        b.iter(|| black_box(&breakers.ours).try_acquire().map(drop).is_ok())
    });
    group.bench_function("count100/acquire_success", |b| {
        b.iter(|| {
            black_box(&breakers.ours_count)
                .try_acquire()
                .map(CallPermit::success)
                .is_ok()
        })
    });
    group.finish();
}

criterion_group!(benches, threads, single_thread, permits, overhead, clock);
criterion_main!(benches);
