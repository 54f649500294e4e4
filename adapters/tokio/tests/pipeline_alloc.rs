//! The pipeline's closed path allocates nothing: counted per thread (`allocation-counter`
//! counts only the measuring thread, so other tests' threads cannot disturb the count).
#![allow(clippy::panic, clippy::unwrap_used)]

use std::future::Future;
use std::pin::pin;
use std::task::{Context, Poll, Waker};
use std::time::Duration;

use rustkernel_tokio::resilience::{
    CircuitBreaker, ErrorKind, Pipeline, ResilienceConfig, Retrier, SharedRetryBudget,
};

/// Polls a future that is ready at once, with no runtime.
fn ready<F: Future>(future: F) -> F::Output {
    match pin!(future).poll(&mut Context::from_waker(Waker::noop())) {
        Poll::Ready(output) => output,
        Poll::Pending => panic!("the call was expected to be ready"),
    }
}

#[test]
fn closed_path_pipeline_allocates_nothing() {
    let config = ResilienceConfig::production();
    let pipeline = Pipeline::builder()
        .timeout(config.timeout)
        .retry(Retrier::new(config.retry).budget(SharedRetryBudget::new(config.retry_budget)))
        .breaker(CircuitBreaker::new(config.circuit_breaker))
        .attempt_timeout(Duration::from_secs(5))
        .build();
    let call = |n: u64| pipeline.execute(move || async move { Ok::<_, ErrorKind>(n) });
    // Warm-up: thread-locals, the breaker's counter stripe.
    for n in 0..100 {
        assert_eq!(ready(call(n)), Ok(n));
    }
    let counted = allocation_counter::measure(|| {
        for n in 0..1000 {
            assert_eq!(ready(call(n)), Ok(n));
        }
    });
    assert_eq!(counted.count_total, 0, "{counted:?}");
    // The counter sees allocations on this thread: a boxed value is one.
    let control = allocation_counter::measure(|| {
        std::hint::black_box(Box::new(1_u64));
    });
    assert_eq!(control.count_total, 1);
}
