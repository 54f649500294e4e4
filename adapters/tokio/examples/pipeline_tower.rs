//! A kernel endpoint behind the whole resilience pipeline (total deadline, retry, breaker per
//! attempt, attempt timeout), first called directly, then as tower middleware: the pipeline as
//! one layer, the same pieces as separate layers in the order calls nest, and a guard of your
//! own (a concurrency limit) in the breaker's place.
//!
//! ```text
//! cargo run -p rustkernel-tokio --example pipeline_tower
//! ```
//!
//! Runs on the real clock in about a second.

use std::error::Error;
use std::fmt::Debug;
use std::future::Future;
use std::io;
use std::sync::Arc;
use std::sync::atomic::{AtomicU32, Ordering};
use std::time::Duration;

use rustkernel_tokio::layer::breaker::GuardService;
use rustkernel_tokio::layer::deadline::DeadlineService;
use rustkernel_tokio::layer::retry::RetryService;
use rustkernel_tokio::layer::{DefaultTiming, PipelineService, RequestTiming, TimingOf};
use rustkernel_tokio::resilience::{
    BackoffStrategy, ByClassify, CircuitBreaker, CircuitBreakerConfig, CircuitBreakerLayer,
    Classifier, DeadlineLayer, ErrorKind, GiveUpReason, Guard, GuardLayer, Outcome, Pipeline,
    PipelineConfig, PipelineLayer, RequestDeadline, ResilienceConfig, ResilienceError, Retrier,
    RetryBudgetConfig, RetryConfig, RetryLayer, SharedRetryBudget, TimeoutConfig,
};
use tokio::sync::{OwnedSemaphorePermit, Semaphore};
use tower::{Service, ServiceBuilder, ServiceExt, service_fn};

/// A request to the kernel endpoint, with what its caller said about time.
#[derive(Clone, Debug)]
struct KernelRequest {
    size: u32,
    /// A `grpc-timeout`, if the caller sent one.
    timeout: Option<Duration>,
    received: tokio::time::Instant,
}

impl KernelRequest {
    fn new(size: u32, timeout: Option<Duration>) -> Self {
        Self {
            size,
            timeout,
            received: tokio::time::Instant::now(),
        }
    }
}

/// Reads the caller's timeout and the arrival time off a request, for the deadline layer.
#[derive(Clone, Copy, Debug)]
struct GrpcTimeout;

impl TimingOf<KernelRequest> for GrpcTimeout {
    fn timing_of(&self, request: &KernelRequest) -> RequestTiming {
        RequestTiming {
            timeout: request.timeout,
            enqueued_at: Some(rustkernel_tokio::clock::to_core(request.received)),
        }
    }
}

/// A kernel whose faults are scripted by call number: `Transient` errors, hangs, or a
/// permanent failure.
#[derive(Clone, Debug)]
struct Kernel {
    calls: Arc<AtomicU32>,
    script: fn(u32) -> Fault,
}

#[derive(Clone, Copy, Debug, PartialEq)]
enum Fault {
    None,
    Transient,
    Hang,
    Permanent,
}

impl Kernel {
    fn new(script: fn(u32) -> Fault) -> Self {
        Self {
            calls: Arc::new(AtomicU32::new(0)),
            script,
        }
    }

    fn calls(&self) -> u32 {
        self.calls.load(Ordering::Relaxed)
    }

    fn run(&self, size: u32) -> impl Future<Output = Result<u64, ErrorKind>> + Send + use<> {
        let fault = (self.script)(self.calls.fetch_add(1, Ordering::Relaxed));
        async move {
            tokio::time::sleep(Duration::from_millis(2)).await;
            match fault {
                Fault::None => Ok(u64::from(size).pow(3)),
                Fault::Transient => Err(ErrorKind::Transient),
                Fault::Hang => {
                    tokio::time::sleep(Duration::from_secs(3600)).await;
                    Ok(0)
                }
                Fault::Permanent => Err(ErrorKind::InvalidInput),
            }
        }
    }

    /// The kernel as a tower service.
    fn service(
        &self,
    ) -> impl Service<
        KernelRequest,
        Response = u64,
        Error = ErrorKind,
        Future = impl Future<Output = Result<u64, ErrorKind>> + Send + 'static,
    > + Clone
    + Send
    + 'static {
        let kernel = self.clone();
        service_fn(move |request: KernelRequest| kernel.run(request.size))
    }
}

/// A load-shedding guard: at most `limit` calls in flight, the rest refused at once.
#[derive(Clone, Debug)]
struct InFlightLimit(Arc<Semaphore>);

impl Guard for InFlightLimit {
    type Permit = OwnedSemaphorePermit;

    fn try_acquire(&self) -> Option<Self::Permit> {
        Arc::clone(&self.0).try_acquire_owned().ok()
    }

    fn on_success(permit: Self::Permit) {
        drop(permit);
    }

    fn on_failure(permit: Self::Permit, kind: ErrorKind) {
        println!("  limited call failed: {kind}");
        drop(permit);
    }
}

/// Runs any operation through a pipeline and logs how long it took: the bounds a helper
/// generic over the operation's error needs.
async fn timed<F, Fut, T, R>(
    name: &str,
    pipeline: &Pipeline,
    op: F,
) -> Result<T, ResilienceError<<ByClassify as Classifier<R>>::Error>>
where
    F: FnMut() -> Fut,
    Fut: Future<Output = Result<T, R>>,
    ByClassify: Classifier<R>,
    <ByClassify as Classifier<R>>::Error: Debug,
{
    let started = tokio::time::Instant::now();
    let result = pipeline.execute(op).await;
    println!(
        "  {name}: {} in {} ms",
        if result.is_ok() { "ok" } else { "failed" },
        started.elapsed().as_millis()
    );
    result
}

fn report<T: Debug>(what: &str, outcome: &Outcome<T, ErrorKind>) {
    let why = match outcome.gave_up {
        Some(GiveUpReason::NotRetryable(kind)) => format!(", {kind} is not retried"),
        Some(reason) => format!(", gave up: {reason}"),
        None => String::new(),
    };
    let back = outcome.retry_after.map_or_else(String::new, |wait| {
        format!(", come back in {} ms", wait.as_millis())
    });
    println!(
        "{what}: {:?} after {} attempt(s){why}{back}",
        outcome.result, outcome.attempts
    );
}

#[tokio::main]
async fn main() -> Result<(), Box<dyn Error>> {
    // The production preset, as `rustkernel serve` runs it.
    let production = Pipeline::from_config(&ResilienceConfig::production())?;
    println!(
        "production preset: total timeout {:?}, {} attempts, breaker {}, attempt timeout {:?}",
        production.timeout().map(|t| t.default_timeout),
        production.retrier().config().max_attempts,
        production
            .breaker()
            .map_or("none".into(), |b| b.state().to_string()),
        production.attempt_timeout(),
    );

    // A pipeline for one kernel: 1 s in all, 3 attempts, each cut at 50 ms.
    let config = PipelineConfig {
        circuit_breaker: CircuitBreakerConfig {
            failure_threshold: 3,
            timeout: Duration::from_millis(200),
            ..Default::default()
        },
        retry: RetryConfig {
            max_attempts: 3,
            backoff: BackoffStrategy::Fixed {
                delay: Duration::from_millis(5),
            },
            retryable_errors: [ErrorKind::Transient, ErrorKind::Timeout].into(),
        },
        timeout: TimeoutConfig {
            default_timeout: Duration::from_secs(1),
            ..TimeoutConfig::default()
        },
        attempt_timeout: Some(Duration::from_millis(50)),
    };
    let pipeline = Pipeline::try_new(config)?;

    // A hang in the first attempt is cut, and the retry succeeds.
    let kernel = Kernel::new(|n| if n == 0 { Fault::Hang } else { Fault::None });
    let outcome = pipeline
        .execute_outcome(
            Some(RequestDeadline {
                timeout: Some(Duration::from_millis(500)),
                enqueued_at: Some(rustkernel_tokio::clock::now()),
            }),
            || kernel.run(8),
        )
        .await;
    report("hung first attempt", &outcome);

    // A bad request is not retried; its error comes back as it was.
    let bad = Kernel::new(|_| Fault::Permanent);
    report(
        "bad request",
        &pipeline.execute_outcome(None, || bad.run(8)).await,
    );

    // A kernel that keeps failing: retries, then the breaker opens and sheds the rest.
    let broken = Kernel::new(|_| Fault::Transient);
    for _ in 0..3 {
        let outcome = pipeline.execute_outcome(None, || broken.run(8)).await;
        report("failing kernel", &outcome);
    }
    println!(
        "breaker open: {}, kernel called {} times",
        pipeline.is_open(),
        broken.calls()
    );
    let _ = timed("while open", &pipeline, || broken.run(8)).await;

    // The same from parts: a failure-rate breaker shared with a health report, a retry budget,
    // and an error type from another crate.
    let shared_breaker = CircuitBreaker::new(CircuitBreakerConfig::default());
    let io_pipeline = Pipeline::builder()
        .timeout(TimeoutConfig::default())
        .retry(
            Retrier::new(RetryConfig::default())
                .seed(25)
                .budget(SharedRetryBudget::new(RetryBudgetConfig::default())),
        )
        .breaker(shared_breaker.clone())
        .attempt_timeout(Duration::from_millis(100))
        .classify_with(|e: &io::Error| rustkernel_tokio::resilience::io_error_kind(e.kind()))
        .try_build()?;
    let read = io_pipeline
        .execute(|| async { Ok::<_, io::Error>("checkpoint read") })
        .await;
    println!(
        "io pipeline: {read:?}; shared breaker saw {} success(es)",
        shared_breaker.stats().success_count
    );
    let simple = Pipeline::builder()
        .retry(Retrier::new(RetryConfig::default()))
        .build();
    let _ = timed("simple pipeline", &simple, || kernel.run(2)).await;
    let dev = Pipeline::new(PipelineConfig::from(&ResilienceConfig::development()));
    let _ = timed("development preset", &dev, || kernel.run(3)).await;

    // Tower: the whole pipeline as one layer on a kernel service.
    let flaky = Kernel::new(|n| {
        if n % 2 == 0 {
            Fault::Transient
        } else {
            Fault::None
        }
    });
    let layer = PipelineLayer::new(Pipeline::try_new(config)?);
    println!(
        "pipeline layer: {} attempts per call",
        layer.pipeline().retrier().config().max_attempts
    );
    let service: PipelineService<_> = ServiceBuilder::new().layer(layer).service(flaky.service());
    let _ = service.get_ref();
    for size in [2, 3, 4] {
        let result = service
            .clone()
            .oneshot(KernelRequest::new(size, None))
            .await;
        println!("  pipeline service, size {size}: {result:?}");
    }
    println!("  kernel called {} times for 3 requests", flaky.calls());

    // The same pieces as separate layers, outermost first: the caller's deadline, retry, the
    // breaker for each attempt.
    let breaker = CircuitBreaker::new(CircuitBreakerConfig {
        failure_threshold: 2,
        ..Default::default()
    });
    let deadline_layer = DeadlineLayer::try_new(TimeoutConfig {
        default_timeout: Duration::from_millis(300),
        ..TimeoutConfig::default()
    })?
    .timing(GrpcTimeout);
    let retry_layer = RetryLayer::new(Retrier::new(config.retry).seed(1));
    let breaker_layer: CircuitBreakerLayer = CircuitBreakerLayer::new(breaker.clone());
    println!(
        "layers: default timeout {:?}, {} attempts, breaker {}",
        deadline_layer.config().default_timeout,
        retry_layer.retrier().config().max_attempts,
        breaker_layer.guard().state()
    );
    let hanging = Kernel::new(|n| if n == 0 { Fault::Hang } else { Fault::None });
    let mut stack = ServiceBuilder::new()
        .layer(deadline_layer)
        .layer(retry_layer)
        .layer(breaker_layer)
        .service(hanging.service());
    // A caller with 20 ms left: the deadline layer makes it the current deadline for the call.
    let call = stack
        .ready()
        .await
        .map_err(|e| format!("{e:?}"))?
        .call(KernelRequest::new(5, Some(Duration::from_millis(20))));
    println!(
        "  a 20 ms grpc-timeout: the call runs until {} ms from now",
        call.deadline().remaining().as_millis()
    );
    println!("  hung kernel: {:?}", call.await);
    let result = stack
        .ready()
        .await
        .map_err(|e| format!("{e:?}"))?
        .call(KernelRequest::new(5, None))
        .await;
    println!(
        "  with the default 300 ms: {result:?} (kernel called {} times)",
        hanging.calls()
    );

    // Services built by hand, for stacks that are not assembled with ServiceBuilder.
    let deadline_only =
        DeadlineService::new(flaky.service(), TimeoutConfig::default(), DefaultTiming);
    let retry_only = RetryService::new(deadline_only, Retrier::new(config.retry));
    let guarded = GuardService::new(retry_only, breaker.clone());
    let result = guarded.clone().oneshot(KernelRequest::new(6, None)).await;
    println!("hand-built stack: {result:?}");
    // Taken apart again, layer by layer, down to the kernel service.
    let retry_only: &RetryService<_, _, _> = guarded.get_ref();
    let _: &DeadlineService<_, _> = retry_only.get_ref();
    let mut kernel_service = guarded.into_inner().into_inner().into_inner();
    let direct = kernel_service
        .ready()
        .await
        .map_err(|e| e.to_string())?
        .call(KernelRequest::new(7, None))
        .await;
    println!("the kernel service alone: {direct:?}");

    // A guard of your own in the breaker's place: at most 2 kernel calls in flight.
    let limit = InFlightLimit(Arc::new(Semaphore::new(2)));
    let limited = ServiceBuilder::new()
        .layer(DeadlineLayer::new(TimeoutConfig::default()))
        .layer(GuardLayer::new(limit.clone()))
        .service(
            Kernel::new(|n| {
                if n == 1 {
                    Fault::Transient
                } else {
                    Fault::None
                }
            })
            .service(),
        );
    let calls = (0..4).map(|size| limited.clone().oneshot(KernelRequest::new(size, None)));
    let results = futures_join_all(calls).await;
    let shed = results
        .iter()
        .filter(|r| matches!(r, Err(ResilienceError::CircuitOpen)))
        .count();
    println!(
        "4 concurrent calls through a limit of 2 (each under the default deadline): {results:?}; \
         {shed} shed, {} slots free after",
        limit.0.available_permits()
    );
    Ok(())
}

/// Polls every future at once (what `futures::future::join_all` does), on tokio tasks.
async fn futures_join_all<F>(futures: impl Iterator<Item = F>) -> Vec<F::Output>
where
    F: Future + Send + 'static,
    F::Output: Send + 'static,
{
    let tasks: Vec<_> = futures.map(tokio::spawn).collect();
    let mut outputs = Vec::new();
    for task in tasks {
        if let Ok(output) = task.await {
            outputs.push(output);
        }
    }
    outputs
}
