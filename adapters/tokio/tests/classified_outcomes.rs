//! What counts for the breaker and for retry, on tokio's paused clock: responses a classifier
//! calls failures (an HTTP 500 inside `Ok`), and calls a deadline cut (timeouts wherever the
//! deadline sits) against calls their caller dropped (cancellations).
#![allow(clippy::indexing_slicing, reason = "tests index what they just built")]

use std::future::pending;
use std::sync::Arc;
use std::sync::atomic::{AtomicU32, Ordering};
use std::time::Duration;

use rustkernel_tokio::classify::{ResponseClassifier, Verdict};
use rustkernel_tokio::resilience::{
    BackoffStrategy, CircuitBreaker, CircuitBreakerConfig, CircuitBreakerLayer, CircuitState,
    DeadlineContext, DeadlineLayer, ErrorKind, GiveUpReason, Pipeline, ResilienceError, Retrier,
    RetryConfig, RetryLayer, TimeoutConfig,
};
use tokio::time::Instant;
use tower::{Service, ServiceBuilder, ServiceExt, service_fn};

const S: Duration = Duration::from_secs(1);

/// A reply that carries a status, as an HTTP response does.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
struct Reply(u16);

/// 5xx are failures, 404 says nothing about the callee, the rest succeed.
fn by_status(reply: &Reply) -> Verdict {
    match reply.0 {
        500..=599 => Verdict::Failure(ErrorKind::Unavailable),
        404 => Verdict::Ignore,
        _ => Verdict::Success,
    }
}

fn breaker(failure_threshold: u32) -> CircuitBreaker {
    CircuitBreaker::new(CircuitBreakerConfig {
        failure_threshold,
        success_threshold: 1,
        timeout: 30 * S,
        half_open_max_calls: 1,
        ..Default::default()
    })
}

fn retrier(max_attempts: u32) -> Retrier {
    Retrier::new(RetryConfig {
        max_attempts,
        backoff: BackoffStrategy::Fixed {
            delay: Duration::from_millis(100),
        },
        retryable_errors: [ErrorKind::Unavailable, ErrorKind::Timeout].into(),
    })
    .seed(3)
}

fn timeouts(default_timeout: Duration) -> TimeoutConfig {
    TimeoutConfig {
        default_timeout,
        max_timeout: 60 * S,
        propagate_deadline: true,
        include_queue_time: false,
    }
}

/// A service that answers each request with the reply it carries, counting calls.
fn replies(
    calls: &Arc<AtomicU32>,
) -> impl Service<Reply, Response = Reply, Error = ErrorKind, Future: Send> + Clone {
    let calls = Arc::clone(calls);
    service_fn(move |reply: Reply| {
        calls.fetch_add(1, Ordering::SeqCst);
        async move { Ok::<_, ErrorKind>(reply) }
    })
}

#[tokio::test(start_paused = true)]
async fn the_breakers_call_counts_failing_responses_and_returns_them() {
    let cb = breaker(3);
    // Without a classifier every `Ok` is a success, as before: ten 500s leave it closed.
    for _ in 0..10 {
        assert_eq!(
            cb.call(|| async { Ok::<_, ErrorKind>(Reply(500)) }).await,
            Ok(Reply(500))
        );
    }
    assert_eq!(cb.state(), CircuitState::Closed);
    assert_eq!(cb.stats().success_count, 10);

    let classified = cb.classify_response(by_status);
    for _ in 0..3 {
        let reply = classified
            .call(|| async { Ok::<_, ErrorKind>(Reply(503)) })
            .await;
        // Counted as a failure, returned as the response.
        assert_eq!(reply, Ok(Reply(503)));
    }
    assert_eq!(cb.state(), CircuitState::Open);
    assert_eq!(cb.stats().failure_count, 3);
    let rejected = classified
        .call(|| async { Ok::<_, ErrorKind>(Reply(200)) })
        .await;
    assert_eq!(rejected, Err(ResilienceError::CircuitOpen));

    // Half-open: an ignored response gives the only probe slot back and counts for nothing;
    // the next probe succeeds and closes the breaker.
    tokio::time::sleep(30 * S).await;
    assert_eq!(
        classified
            .call(|| async { Ok::<_, ErrorKind>(Reply(404)) })
            .await,
        Ok(Reply(404))
    );
    assert_eq!(cb.state(), CircuitState::HalfOpen);
    assert_eq!(
        classified
            .call(|| async { Ok::<_, ErrorKind>(Reply(200)) })
            .await,
        Ok(Reply(200))
    );
    assert_eq!(cb.state(), CircuitState::Closed);
    let stats = cb.stats();
    assert_eq!((stats.success_count, stats.failure_count), (11, 3));

    // Errors keep their own classification beside the response classifier.
    let both = cb
        .classify_response(by_status)
        .classify_with(|_: &std::io::Error| ErrorKind::InvalidInput);
    let error = both
        .call(|| async { Err::<Reply, _>(std::io::Error::other("bad input")) })
        .await;
    assert!(matches!(error, Err(ResilienceError::Operation(_))));
}

#[tokio::test(start_paused = true)]
async fn the_guard_layer_counts_failing_responses_and_passes_them_on() {
    let cb = breaker(5);
    let calls = Arc::new(AtomicU32::new(0));
    let service = ServiceBuilder::new()
        .layer(CircuitBreakerLayer::new(cb.clone()).classify_response(by_status))
        .service(replies(&calls));
    let mut answers = Vec::new();
    for _ in 0..10 {
        answers.push(service.clone().oneshot(Reply(500)).await);
    }
    // Five 500s reach the caller and open the breaker; the next five are refused unsent.
    assert_eq!(answers[..5], [Ok(Reply(500)); 5]);
    assert_eq!(answers[5..], [Err(ResilienceError::CircuitOpen); 5]);
    assert_eq!(calls.load(Ordering::SeqCst), 5);
    assert_eq!(cb.state(), CircuitState::Open);
}

#[tokio::test(start_paused = true)]
async fn the_retry_layer_retries_a_failing_response_and_returns_the_last_one() {
    let calls = Arc::new(AtomicU32::new(0));
    let service = ServiceBuilder::new()
        .layer(RetryLayer::new(retrier(3).classify_response(by_status)))
        .service(replies(&calls));
    let start = Instant::now();
    // Retried twice as an `Unavailable` error would be, then handed back as it is.
    assert_eq!(service.clone().oneshot(Reply(503)).await, Ok(Reply(503)));
    assert_eq!(calls.load(Ordering::SeqCst), 3);
    assert_eq!(start.elapsed(), Duration::from_millis(200));
    // Successes and ignored responses end the call at once.
    assert_eq!(service.clone().oneshot(Reply(404)).await, Ok(Reply(404)));
    assert_eq!(service.oneshot(Reply(200)).await, Ok(Reply(200)));
    assert_eq!(calls.load(Ordering::SeqCst), 5);

    // A kind that is not retryable is not retried.
    let permanent = |reply: &Reply| {
        if reply.0 >= 500 {
            Verdict::Failure(ErrorKind::Permanent)
        } else {
            Verdict::Success
        }
    };
    let retrier = retrier(3).classify_response(permanent);
    let attempts = AtomicU32::new(0);
    let reply = retrier
        .execute(|| {
            attempts.fetch_add(1, Ordering::SeqCst);
            async { Ok::<_, ErrorKind>(Reply(500)) }
        })
        .await;
    assert_eq!(
        (reply, attempts.load(Ordering::SeqCst)),
        (Ok(Reply(500)), 1)
    );
}

/// A classifier whose failing responses ask for a wait, as an HTTP `Retry-After` does.
#[derive(Clone, Copy)]
struct AsksToWait;

impl ResponseClassifier<Reply> for AsksToWait {
    fn classify_response(&self, reply: &Reply) -> Verdict {
        by_status(reply)
    }

    fn retry_after(&self, _reply: &Reply) -> Option<Duration> {
        Some(2 * S)
    }
}

#[tokio::test(start_paused = true)]
async fn the_pipeline_counts_each_failing_attempt_and_honours_the_wait_it_asks_for() {
    let cb = breaker(4);
    let pipeline = Pipeline::builder()
        .retry(retrier(2))
        .breaker(cb.clone())
        .classify_response(AsksToWait)
        .build();
    let calls = AtomicU32::new(0);
    let start = Instant::now();
    let outcome = pipeline
        .execute_outcome(None, || {
            calls.fetch_add(1, Ordering::SeqCst);
            async { Ok::<_, ErrorKind>(Reply(502)) }
        })
        .await;
    // Two attempts, 2 s apart (the reply's wait, not the 100 ms backoff), both counted by the
    // breaker; the last reply is the result.
    assert_eq!(outcome.result, Ok(Reply(502)));
    assert_eq!(outcome.attempts, 2);
    assert_eq!(outcome.gave_up, Some(GiveUpReason::AttemptsExhausted));
    assert_eq!(start.elapsed(), 2 * S);
    assert_eq!(cb.stats().failure_count, 2);
    // Two more calls: the fourth failure opens the breaker, which refuses the last attempt.
    let outcome = pipeline
        .execute_outcome(None, || async { Ok::<_, ErrorKind>(Reply(502)) })
        .await;
    assert_eq!(outcome.result, Ok(Reply(502)));
    assert_eq!(cb.state(), CircuitState::Open);
    let refused = pipeline
        .execute_outcome(None, || async { Ok::<_, ErrorKind>(Reply(200)) })
        .await;
    assert_eq!(refused.result, Err(ResilienceError::CircuitOpen));
    // The breaker opened at the fourth failure; the refused call gave up 100 ms later.
    let wait = refused.retry_after.unwrap_or_default();
    let expected = 30 * S - Duration::from_millis(100);
    assert!(
        wait.abs_diff(expected) < Duration::from_millis(1),
        "{wait:?}"
    );
    assert_eq!(calls.load(Ordering::SeqCst), 2);
}

/// A callee that never answers.
fn hung(
    calls: &Arc<AtomicU32>,
) -> impl Service<u32, Response = u32, Error = ErrorKind, Future: Send> + Clone {
    let calls = Arc::clone(calls);
    service_fn(move |_: u32| {
        calls.fetch_add(1, Ordering::SeqCst);
        pending::<Result<u32, ErrorKind>>()
    })
}

#[tokio::test(start_paused = true)]
async fn ten_hung_calls_open_the_breaker_with_the_deadline_outside_the_guard() {
    let cb = breaker(3);
    let calls = Arc::new(AtomicU32::new(0));
    // The documented order: the deadline outermost, then retry, then the guard.
    let service = ServiceBuilder::new()
        .layer(DeadlineLayer::new(timeouts(S)))
        .layer(RetryLayer::new(retrier(1)))
        .layer(CircuitBreakerLayer::new(cb.clone()))
        .service(hung(&calls));
    let mut answers = Vec::new();
    for n in 0..10 {
        answers.push(service.clone().oneshot(n).await);
    }
    // Three calls cut by the deadline count as timeouts and open the breaker; the other seven
    // are refused without reaching the callee.
    assert_eq!(answers[..3], [Err(ResilienceError::Timeout); 3]);
    assert_eq!(answers[3..], [Err(ResilienceError::CircuitOpen); 7]);
    assert_eq!(calls.load(Ordering::SeqCst), 3);
    assert_eq!(cb.state(), CircuitState::Open);
    assert_eq!(cb.stats().failure_count, 3);
}

#[tokio::test(start_paused = true)]
async fn a_deadline_around_the_breakers_call_or_a_pipeline_cuts_a_timeout() {
    let cb = breaker(2);
    for _ in 0..2 {
        let result = DeadlineContext::new(S)
            .execute(|| cb.call(pending::<Result<u32, ErrorKind>>))
            .await;
        assert_eq!(result, Err(ResilienceError::DeadlineExceeded));
    }
    assert_eq!(cb.state(), CircuitState::Open);

    // The pipeline's total deadline (no attempt timeout) cuts the attempt inside the breaker.
    let cb = breaker(2);
    let pipeline = Pipeline::builder()
        .timeout(timeouts(S))
        .breaker(cb.clone())
        .build();
    for _ in 0..2 {
        let result = pipeline.execute(pending::<Result<u32, ErrorKind>>).await;
        assert_eq!(result, Err(ResilienceError::Timeout));
    }
    assert_eq!(cb.state(), CircuitState::Open);
    assert_eq!(cb.stats().failure_count, 2);
}

#[tokio::test(start_paused = true)]
async fn a_caller_that_goes_away_is_a_cancellation_not_a_failure() {
    let cb = breaker(1);
    let calls = Arc::new(AtomicU32::new(0));
    let service = ServiceBuilder::new()
        .layer(CircuitBreakerLayer::new(cb.clone()))
        .service(hung(&calls));
    // No deadline in scope: tokio's own timeout (not a deadline of this crate) drops the call.
    for n in 0..5 {
        let cut = tokio::time::timeout(S, service.clone().oneshot(n)).await;
        assert!(cut.is_err());
    }
    // A deadline in scope with time left: the caller gave up first.
    let deadline = DeadlineContext::new(60 * S);
    let early = deadline
        .scope(async { tokio::time::timeout(S, cb.call(pending::<Result<u32, ErrorKind>>)).await })
        .await;
    assert!(early.is_err());
    assert_eq!(cb.state(), CircuitState::Closed);
    let stats = cb.stats();
    assert_eq!((stats.success_count, stats.failure_count), (0, 0));
    assert_eq!(calls.load(Ordering::SeqCst), 5);

    // Half-open, a dropped probe gives its slot back: the next probe is admitted.
    cb.try_acquire()
        .map(|permit| permit.failure(ErrorKind::Unavailable))
        .ok();
    assert_eq!(cb.state(), CircuitState::Open);
    tokio::time::sleep(30 * S).await;
    let dropped = tokio::time::timeout(S, service.clone().oneshot(6)).await;
    assert!(dropped.is_err());
    assert_eq!(cb.state(), CircuitState::HalfOpen);
    assert_eq!(cb.call(|| async { Ok::<_, ErrorKind>(7) }).await, Ok(7));
    assert_eq!(cb.state(), CircuitState::Closed);
}
