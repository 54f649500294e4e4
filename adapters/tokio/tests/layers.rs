//! The tower layers with `ServiceBuilder` and `service_fn`, on tokio's paused clock.

use std::sync::atomic::{AtomicU32, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use rustkernel_tokio::layer::{Guard, GuardLayer, RequestTiming};
use rustkernel_tokio::resilience::{
    BackoffStrategy, Classify, DeadlineBound, DeadlineContext, DeadlineLayer, ErrorKind,
    ResilienceError, Retrier, RetryBudgetConfig, RetryConfig, RetryLayer, SharedRetryBudget,
    TimeoutConfig, TimeoutExt, current_deadline,
};
use tokio::time::{Instant, sleep};
use tower::{Service, ServiceBuilder, ServiceExt, service_fn};

const MS: Duration = Duration::from_millis(1);
const S: Duration = Duration::from_secs(1);

#[derive(Clone, Copy, Debug, PartialEq)]
struct Failure {
    kind: ErrorKind,
    attempt: u32,
    retry_after: Option<Duration>,
}

impl Classify for Failure {
    fn kind(&self) -> ErrorKind {
        self.kind
    }
}

fn fail(kind: ErrorKind, attempt: u32) -> Failure {
    Failure {
        kind,
        attempt,
        retry_after: None,
    }
}

fn fixed(max_attempts: u32, delay: Duration) -> Retrier {
    Retrier::new(RetryConfig {
        max_attempts,
        backoff: BackoffStrategy::Fixed { delay },
        retryable_errors: [ErrorKind::Transient, ErrorKind::Timeout].into(),
    })
    .seed(1)
}

fn timeouts(default_timeout: Duration, include_queue_time: bool) -> TimeoutConfig {
    TimeoutConfig {
        default_timeout,
        max_timeout: 60 * S,
        propagate_deadline: true,
        include_queue_time,
    }
}

/// Counts calls and records each request and its start on the virtual clock.
#[derive(Clone)]
struct Log {
    start: Instant,
    calls: Arc<Mutex<Vec<(String, Duration)>>>,
}

impl Log {
    fn new() -> Self {
        Self {
            start: Instant::now(),
            calls: Arc::default(),
        }
    }

    /// Records a call of `request` now; returns its number (1-based).
    fn record(&self, request: &str) -> u32 {
        let mut calls = self.calls.lock().expect("not poisoned");
        calls.push((request.to_owned(), self.start.elapsed()));
        u32::try_from(calls.len()).unwrap_or(u32::MAX)
    }

    fn calls(&self) -> Vec<(String, Duration)> {
        self.calls.lock().expect("not poisoned").clone()
    }

    fn starts(&self) -> Vec<Duration> {
        self.calls().into_iter().map(|(_, at)| at).collect()
    }
}

#[tokio::test(start_paused = true)]
async fn the_retry_layer_resends_the_request_until_it_succeeds() {
    let log = Log::new();
    let inner = {
        let log = log.clone();
        service_fn(move |request: String| {
            let n = log.record(&request);
            async move {
                if n < 3 {
                    Err(fail(ErrorKind::Transient, n))
                } else {
                    Ok(format!("{request}: {n}"))
                }
            }
        })
    };
    let service = ServiceBuilder::new()
        .layer(RetryLayer::new(fixed(5, 100 * MS)))
        .service(inner);
    let result = service.oneshot("pagerank".to_owned()).await;
    assert_eq!(result, Ok("pagerank: 3".to_owned()));
    let calls = log.calls();
    assert_eq!(calls.len(), 3);
    assert!(calls.iter().all(|(request, _)| request == "pagerank"));
    assert_eq!(log.starts(), [0, 100, 200].map(|ms| ms * MS));
}

#[tokio::test(start_paused = true)]
async fn the_retry_layer_returns_permanent_and_last_errors_unchanged() {
    let log = Log::new();
    let permanent = {
        let log = log.clone();
        service_fn(move |request: &'static str| {
            let n = log.record(request);
            async move { Err::<(), _>(fail(ErrorKind::Permanent, n)) }
        })
    };
    let mut service = ServiceBuilder::new()
        .layer(RetryLayer::new(fixed(5, 100 * MS)))
        .service(permanent);
    let result = service.ready().await.expect("ready").call("x").await;
    assert_eq!(
        result,
        Err(ResilienceError::Operation(fail(ErrorKind::Permanent, 1)))
    );
    assert_eq!(log.starts(), [Duration::ZERO]);

    let log = Log::new();
    let transient = {
        let log = log.clone();
        service_fn(move |request: &'static str| {
            let n = log.record(request);
            async move { Err::<(), _>(fail(ErrorKind::Transient, n)) }
        })
    };
    let service = ServiceBuilder::new()
        .layer(RetryLayer::new(fixed(3, 100 * MS)))
        .service(transient);
    let result = service.oneshot("y").await;
    assert_eq!(
        result,
        Err(ResilienceError::Operation(fail(ErrorKind::Transient, 3)))
    );
    assert_eq!(log.starts(), [0, 100, 200].map(|ms| ms * MS));
}

#[tokio::test(start_paused = true)]
async fn the_retry_layer_honours_hints_and_budgets() {
    let log = Log::new();
    let hinted = {
        let log = log.clone();
        service_fn(move |request: &'static str| {
            let n = log.record(request);
            async move {
                if n == 1 {
                    Err(Failure {
                        retry_after: Some(2 * S),
                        ..fail(ErrorKind::Transient, n)
                    })
                } else {
                    Ok(n)
                }
            }
        })
    };
    let layer = RetryLayer::new(fixed(3, 10 * MS).retry_after(|e: &Failure| e.retry_after));
    let service = ServiceBuilder::new().layer(layer).service(hinted);
    assert_eq!(service.oneshot("z").await, Ok(2));
    assert_eq!(log.starts(), [Duration::ZERO, 2 * S]);

    // No floor and no ratio: the budget allows no retry at all.
    let budget = SharedRetryBudget::new(RetryBudgetConfig {
        window: 10 * S,
        min_retries_per_second: 0,
        retry_ratio: 0.0,
    });
    let log = Log::new();
    let failing = {
        let log = log.clone();
        service_fn(move |request: &'static str| {
            let n = log.record(request);
            async move { Err::<(), _>(fail(ErrorKind::Transient, n)) }
        })
    };
    let service = ServiceBuilder::new()
        .layer(RetryLayer::new(fixed(5, 10 * MS).budget(budget)))
        .service(failing);
    assert_eq!(
        service.oneshot("w").await,
        Err(ResilienceError::Operation(fail(ErrorKind::Transient, 1)))
    );
    assert_eq!(log.calls().len(), 1);
}

#[tokio::test(start_paused = true)]
async fn the_deadline_layer_times_out_and_sets_the_current_deadline() {
    let seen = Arc::new(Mutex::new(Vec::new()));
    let inner = {
        let seen = Arc::clone(&seen);
        service_fn(move |work: Duration| {
            // Seen in `call` ...
            let in_call = current_deadline().map(DeadlineContext::remaining);
            let seen = Arc::clone(&seen);
            async move {
                // ... and while the future runs.
                let in_future = current_deadline().map(DeadlineContext::remaining);
                seen.lock()
                    .expect("not poisoned")
                    .push((in_call, in_future));
                sleep(work).await;
                Ok::<_, ErrorKind>(work)
            }
        })
    };
    let mut service = ServiceBuilder::new()
        .layer(DeadlineLayer::new(timeouts(S, false)))
        .service(inner);

    let start = Instant::now();
    let result = service.ready().await.expect("ready").call(300 * MS).await;
    assert_eq!(result, Ok(300 * MS));
    let result = service.ready().await.expect("ready").call(10 * S).await;
    // The request's own (default) timeout ran out: `Timeout`.
    assert_eq!(result, Err(ResilienceError::Timeout));
    assert_eq!(start.elapsed(), 1_300 * MS);
    assert_eq!(
        *seen.lock().expect("not poisoned"),
        [(Some(S), Some(S)), (Some(S), Some(S))]
    );

    // Under a caller's shorter deadline: `DeadlineExceeded`, at the caller's deadline.
    let start = Instant::now();
    let parent = DeadlineContext::new(400 * MS);
    // (`call` must run inside the scope too: it resolves the deadline.)
    let result = parent
        .scope(async { service.ready().await?.call(10 * S).await })
        .await;
    assert_eq!(result, Err(ResilienceError::DeadlineExceeded));
    assert_eq!(start.elapsed(), 400 * MS);
}

#[tokio::test(start_paused = true)]
async fn the_deadline_layer_reads_timing_from_the_request() {
    #[derive(Clone, Copy)]
    struct Request {
        timeout: Option<Duration>,
        enqueued_at: Instant,
        work: Duration,
    }
    let inner = service_fn(|request: Request| async move {
        sleep(request.work).await;
        Ok::<_, ErrorKind>("done")
    });
    let timing = |request: &Request| RequestTiming {
        timeout: request.timeout,
        enqueued_at: Some(rustkernel_tokio::clock::to_core(request.enqueued_at)),
    };
    let counted = ServiceBuilder::new()
        .layer(DeadlineLayer::new(timeouts(5 * S, true)).timing(timing))
        .service(inner);
    let ignored = ServiceBuilder::new()
        .layer(DeadlineLayer::new(timeouts(5 * S, false)).timing(timing))
        .service(inner);

    let enqueued_at = Instant::now();
    tokio::time::advance(2 * S).await;
    let request = Request {
        timeout: Some(3 * S),
        enqueued_at,
        work: 2 * S,
    };
    // Two seconds queued plus two of work exceed a three-second timeout only if the queue
    // time counts.
    let start = Instant::now();
    assert_eq!(
        counted.clone().oneshot(request).await,
        Err(ResilienceError::Timeout)
    );
    assert_eq!(start.elapsed(), S);
    assert_eq!(ignored.clone().oneshot(request).await, Ok("done"));

    // Queued longer than the timeout: rejected before the inner service runs.
    let stale = Request {
        enqueued_at: Instant::now() - 4 * S,
        ..request
    };
    let start = Instant::now();
    assert_eq!(
        counted.oneshot(stale).await,
        Err(ResilienceError::DeadlineExceeded)
    );
    assert_eq!(start.elapsed(), Duration::ZERO);
}

#[tokio::test(start_paused = true)]
async fn retries_inside_a_deadline_stop_before_it() {
    let log = Log::new();
    let failing = {
        let log = log.clone();
        service_fn(move |request: &'static str| {
            let n = log.record(request);
            async move { Err::<(), _>(fail(ErrorKind::Transient, n)) }
        })
    };
    let service = ServiceBuilder::new()
        .layer(DeadlineLayer::new(timeouts(250 * MS, false)))
        .layer(RetryLayer::new(fixed(10, 100 * MS)))
        .service(failing);
    let result = service.oneshot("v").await;
    // Attempts at 0, 100, 200; the one at 300 would pass the 250 ms deadline, so the last
    // real error comes back at 200 ms, before the deadline.
    assert_eq!(
        result,
        Err(ResilienceError::Operation(fail(ErrorKind::Transient, 3)))
    );
    assert_eq!(log.starts(), [0, 100, 200].map(|ms| ms * MS));

    // A deadline resolved from a parent reports `DeadlineExceeded` when the parent cuts an
    // attempt.
    let slow = service_fn(|_: ()| async {
        sleep(S).await;
        Ok::<_, ErrorKind>(())
    });
    let service = ServiceBuilder::new()
        .layer(DeadlineLayer::new(timeouts(5 * S, false)))
        .layer(RetryLayer::new(fixed(3, 10 * MS)))
        .service(slow);
    let parent = DeadlineContext::new(500 * MS);
    let result = parent.scope(service.oneshot(())).await;
    assert_eq!(result, Err(ResilienceError::DeadlineExceeded));
    let resolved = parent
        .scope(async { timeouts(5 * S, false).resolve_deadline(None, None).bound })
        .await;
    assert_eq!(resolved, DeadlineBound::Parent);
}

/// A toy breaker: admits while `open` is false; counts outcomes and permits dropped
/// unreported (which its permits settle on drop, as a real breaker's must).
#[derive(Clone, Default)]
struct ToyGuard {
    open: Arc<Mutex<bool>>,
    successes: Arc<AtomicU32>,
    failures: Arc<Mutex<Vec<ErrorKind>>>,
    dropped: Arc<AtomicU32>,
}

/// Carries what reporting needs: the guard's counters.
struct ToyPermit {
    guard: ToyGuard,
    dropped: Option<Arc<AtomicU32>>,
}

impl Drop for ToyPermit {
    fn drop(&mut self) {
        if let Some(dropped) = self.dropped.take() {
            dropped.fetch_add(1, Ordering::SeqCst);
        }
    }
}

impl Guard for ToyGuard {
    type Permit = ToyPermit;

    fn try_acquire(&self) -> Option<ToyPermit> {
        if *self.open.lock().expect("not poisoned") {
            None
        } else {
            Some(ToyPermit {
                guard: self.clone(),
                dropped: Some(Arc::clone(&self.dropped)),
            })
        }
    }

    fn on_success(mut permit: ToyPermit) {
        permit.dropped = None;
        permit.guard.successes.fetch_add(1, Ordering::SeqCst);
    }

    fn on_failure(mut permit: ToyPermit, kind: ErrorKind) {
        permit.dropped = None;
        permit
            .guard
            .failures
            .lock()
            .expect("not poisoned")
            .push(kind);
    }
}

#[tokio::test(start_paused = true)]
async fn the_guard_layer_admits_reports_and_rejects() {
    let guard = ToyGuard::default();
    let calls = Arc::new(AtomicU32::new(0));
    let inner = {
        let calls = Arc::clone(&calls);
        service_fn(move |outcome: Result<(), ErrorKind>| {
            calls.fetch_add(1, Ordering::SeqCst);
            async move {
                if outcome.is_ok() {
                    sleep(10 * MS).await;
                }
                outcome
            }
        })
    };
    let mut service = ServiceBuilder::new()
        .layer(GuardLayer::new(guard.clone()))
        .service(inner);

    let ok = service.ready().await.expect("ready").call(Ok(())).await;
    assert_eq!(ok, Ok(()));
    let err = service
        .ready()
        .await
        .expect("ready")
        .call(Err(ErrorKind::Unavailable))
        .await;
    assert_eq!(err, Err(ResilienceError::Operation(ErrorKind::Unavailable)));
    assert_eq!(guard.successes.load(Ordering::SeqCst), 1);
    assert_eq!(
        *guard.failures.lock().expect("not poisoned"),
        [ErrorKind::Unavailable]
    );

    // A call dropped mid-flight drops its permit unreported.
    let pending = service.ready().await.expect("ready").call(Ok(()));
    drop(pending);
    assert_eq!(guard.dropped.load(Ordering::SeqCst), 1);

    // Open: rejected without calling the inner service.
    *guard.open.lock().expect("not poisoned") = true;
    let before = calls.load(Ordering::SeqCst);
    let rejected = service.ready().await.expect("ready").call(Ok(())).await;
    assert_eq!(rejected, Err(ResilienceError::CircuitOpen));
    assert_eq!(calls.load(Ordering::SeqCst), before);
    assert_eq!(guard.dropped.load(Ordering::SeqCst), 1);
}

#[tokio::test(start_paused = true)]
async fn a_static_breaker_guards_by_reference() {
    use rustkernel_tokio::breaker::CircuitBreaker;
    use rustkernel_tokio::resilience::{CircuitBreakerConfig, CircuitState};

    let breaker: &'static CircuitBreaker =
        Box::leak(Box::new(CircuitBreaker::new(CircuitBreakerConfig {
            failure_threshold: 2,
            ..CircuitBreakerConfig::default()
        })));
    let inner = service_fn(|outcome: Result<u32, ErrorKind>| async move { outcome });
    let mut service = ServiceBuilder::new()
        .layer(GuardLayer::new(breaker))
        .service(inner);

    let ok = service.ready().await.expect("ready").call(Ok(7)).await;
    assert_eq!(ok, Ok(7));
    assert_eq!(breaker.stats().success_count, 1);
    for _ in 0..2 {
        let err = service
            .ready()
            .await
            .expect("ready")
            .call(Err(ErrorKind::Unavailable))
            .await;
        assert_eq!(err, Err(ResilienceError::Operation(ErrorKind::Unavailable)));
    }
    assert_eq!(breaker.state(), CircuitState::Open);
    let rejected = service.ready().await.expect("ready").call(Ok(8)).await;
    assert_eq!(rejected, Err(ResilienceError::CircuitOpen));
    assert_eq!(breaker.stats().rejected_count, 1);

    // A call dropped before it ends leaves no half-open slot taken: after the open time, a
    // probe is admitted even though an earlier one was dropped.
    sleep(CircuitBreakerConfig::default().timeout).await;
    drop(service.ready().await.expect("ready").call(Ok(9)));
    let probe = service.ready().await.expect("ready").call(Ok(10)).await;
    assert_eq!(probe, Ok(10));
}
