//! The `axum` feature on real axum `Router`s, driven with tower's `oneshot` on tokio's paused
//! clock: the breaker and the pipeline as route layers with no `HandleErrorLayer`, 500s that
//! count, 503 with `Retry-After`, 504 for deadlines, and request bodies that are not `Clone`.
#![cfg(feature = "axum")]
#![allow(clippy::unwrap_used, reason = "tests unwrap what they just built")]

use std::future::pending;
use std::sync::atomic::{AtomicU32, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use axum::Router;
use axum::body::{Body, Bytes, to_bytes};
use axum::http::{Request, StatusCode, header};
use axum::response::Response;
use axum::routing::{get, post};
use rustkernel_tokio::axum::{HttpBreakerLayer, HttpPipelineLayer};
use rustkernel_tokio::classify::{HttpClassifier, Verdict};
use rustkernel_tokio::resilience::{
    BackoffStrategy, CircuitBreaker, CircuitBreakerConfig, CircuitState, ErrorKind, Pipeline,
    Retrier, RetryConfig, TimeoutConfig,
};
use tower::ServiceExt;

const S: Duration = Duration::from_secs(1);

fn breaker(failure_threshold: u32) -> CircuitBreaker {
    CircuitBreaker::new(CircuitBreakerConfig {
        failure_threshold,
        success_threshold: 1,
        timeout: 30 * S,
        ..Default::default()
    })
}

fn request(method: &str, uri: &str, body: impl Into<Body>) -> Request<Body> {
    Request::builder()
        .method(method)
        .uri(uri)
        .body(body.into())
        .unwrap()
}

async fn text(response: Response) -> String {
    let bytes = to_bytes(response.into_body(), usize::MAX).await.unwrap();
    String::from_utf8(bytes.to_vec()).unwrap()
}

fn retry_after(response: &Response) -> Option<&str> {
    response
        .headers()
        .get(header::RETRY_AFTER)
        .map(|value| value.to_str().unwrap())
}

#[tokio::test(start_paused = true)]
async fn ten_500s_open_the_breaker_and_it_answers_503_with_retry_after() {
    let cb = breaker(5);
    let calls = Arc::new(AtomicU32::new(0));
    let handler = {
        let calls = Arc::clone(&calls);
        move || async move {
            calls.fetch_add(1, Ordering::SeqCst);
            (StatusCode::INTERNAL_SERVER_ERROR, "kernel fault")
        }
    };
    let app = Router::new()
        .route("/kernel", get(handler))
        .route("/health", get(|| async { "ok" }))
        .route_layer(HttpBreakerLayer::new(cb.clone()));

    let mut statuses = Vec::new();
    for _ in 0..10 {
        let response = app
            .clone()
            .oneshot(request("GET", "/kernel", ()))
            .await
            .unwrap();
        statuses.push(response.status().as_u16());
        if response.status() == StatusCode::INTERNAL_SERVER_ERROR {
            // The handler's own response reaches the client.
            assert_eq!(text(response).await, "kernel fault");
        } else {
            assert_eq!(retry_after(&response), Some("30"));
        }
    }
    assert_eq!(statuses, [500, 500, 500, 500, 500, 503, 503, 503, 503, 503]);
    assert_eq!(cb.state(), CircuitState::Open);
    assert_eq!(calls.load(Ordering::SeqCst), 5);

    // The wait counts down with the open time, rounded up to whole seconds.
    tokio::time::advance(Duration::from_millis(10_500)).await;
    let response = app
        .clone()
        .oneshot(request("GET", "/health", ()))
        .await
        .unwrap();
    assert_eq!(response.status(), StatusCode::SERVICE_UNAVAILABLE);
    assert_eq!(retry_after(&response), Some("20"));
    assert_eq!(text(response).await, "circuit breaker is open");

    // After the open time a healthy answer is the probe that closes it.
    tokio::time::advance(20 * S).await;
    let response = app
        .clone()
        .oneshot(request("GET", "/health", ()))
        .await
        .unwrap();
    assert_eq!(response.status(), StatusCode::OK);
    assert_eq!(cb.state(), CircuitState::Closed);
}

#[tokio::test(start_paused = true)]
async fn the_breaker_layer_counts_what_its_classifier_says_and_hangups_count_for_nothing() {
    let cb = breaker(2);
    // Only 503 fails here: 500s count as successes.
    let classifier = HttpClassifier::successes().status(
        StatusCode::SERVICE_UNAVAILABLE,
        Verdict::Failure(ErrorKind::Unavailable),
    );
    let app = Router::new()
        .route("/busy", get(|| async { StatusCode::SERVICE_UNAVAILABLE }))
        .route(
            "/fault",
            get(|| async { StatusCode::INTERNAL_SERVER_ERROR }),
        )
        .route("/hang", get(pending::<&'static str>))
        .route_layer(HttpBreakerLayer::new(cb.clone()).classify_response(classifier));
    for _ in 0..3 {
        let response = app
            .clone()
            .oneshot(request("GET", "/fault", ()))
            .await
            .unwrap();
        assert_eq!(response.status(), StatusCode::INTERNAL_SERVER_ERROR);
    }
    // A client that hangs up while the route hangs (its future dropped, no deadline in
    // scope) is a cancellation.
    for _ in 0..3 {
        let gone = tokio::time::timeout(S, app.clone().oneshot(request("GET", "/hang", ()))).await;
        assert!(gone.is_err());
    }
    assert_eq!(cb.state(), CircuitState::Closed);
    assert_eq!(cb.stats().failure_count, 0);
    for _ in 0..2 {
        let response = app
            .clone()
            .oneshot(request("GET", "/busy", ()))
            .await
            .unwrap();
        assert_eq!(response.status(), StatusCode::SERVICE_UNAVAILABLE);
    }
    assert_eq!(cb.state(), CircuitState::Open);
}

fn pipeline(cb: &CircuitBreaker, total: Duration) -> Pipeline {
    Pipeline::builder()
        .timeout(TimeoutConfig {
            default_timeout: total,
            max_timeout: 60 * S,
            propagate_deadline: true,
            include_queue_time: false,
        })
        .retry(
            Retrier::new(RetryConfig {
                max_attempts: 3,
                backoff: BackoffStrategy::Fixed {
                    delay: Duration::from_millis(100),
                },
                retryable_errors: [ErrorKind::Transient, ErrorKind::Unavailable].into(),
            })
            .seed(5),
        )
        .breaker(cb.clone())
        .build()
}

#[tokio::test(start_paused = true)]
async fn the_pipeline_layer_retries_a_non_clone_body_from_its_buffer() {
    let cb = breaker(10);
    let seen: Arc<Mutex<Vec<Bytes>>> = Arc::default();
    // Fails the first time it sees a body, then echoes it.
    let handler = {
        let seen = Arc::clone(&seen);
        move |body: Bytes| async move {
            let mut seen = seen.lock().unwrap();
            seen.push(body.clone());
            if seen.len() == 1 {
                Err((StatusCode::INTERNAL_SERVER_ERROR, "try again"))
            } else {
                Ok(body)
            }
        }
    };
    let app = Router::new()
        .route("/echo", post(handler))
        .layer(HttpPipelineLayer::new(pipeline(&cb, 10 * S)).body_limit(16));

    // The body is a stream, read once: the layer buffers it and sends both attempts the bytes.
    let response = app
        .clone()
        .oneshot(request("POST", "/echo", "graph edges"))
        .await
        .unwrap();
    assert_eq!(response.status(), StatusCode::OK);
    assert_eq!(text(response).await, "graph edges");
    assert_eq!(*seen.lock().unwrap(), ["graph edges", "graph edges"]);
    let stats = cb.stats();
    assert_eq!((stats.failure_count, stats.success_count), (1, 1));

    // Over the limit: 413, at once when the Content-Length says so (this body is short, but
    // is not read), and when the bytes pass the limit otherwise. The route is not called and
    // the breaker counts nothing.
    let mut declared = request("POST", "/echo", "abc");
    declared
        .headers_mut()
        .insert(header::CONTENT_LENGTH, "1000".parse().unwrap());
    let declared = app.clone().oneshot(declared).await.unwrap();
    assert_eq!(declared.status(), StatusCode::PAYLOAD_TOO_LARGE);
    let long = app
        .clone()
        .oneshot(request("POST", "/echo", "seventeen bytes!!"))
        .await
        .unwrap();
    assert_eq!(long.status(), StatusCode::PAYLOAD_TOO_LARGE);
    assert_eq!(text(long).await, "request body over the limit of 16 bytes");
    assert_eq!(seen.lock().unwrap().len(), 2);
    assert_eq!(cb.stats().failure_count, 1);
}

#[tokio::test(start_paused = true)]
async fn the_pipeline_layer_answers_deadlines_504_and_counts_them_as_timeouts() {
    let cb = breaker(2);
    let app = Router::new()
        .route("/hang", get(pending::<&'static str>))
        .layer(HttpPipelineLayer::new(pipeline(&cb, S)));
    for _ in 0..2 {
        let response = app
            .clone()
            .oneshot(request("GET", "/hang", ()))
            .await
            .unwrap();
        assert_eq!(response.status(), StatusCode::GATEWAY_TIMEOUT);
    }
    // Each cut attempt counted as a timeout: the breaker opened, and now refuses.
    assert_eq!(cb.state(), CircuitState::Open);
    assert_eq!(cb.stats().failure_count, 2);
    let response = app.oneshot(request("GET", "/hang", ())).await.unwrap();
    assert_eq!(response.status(), StatusCode::SERVICE_UNAVAILABLE);
    assert!(retry_after(&response).is_some());
}

#[tokio::test(start_paused = true)]
async fn a_handler_answers_the_pipelines_error_with_http_error() {
    let cb = breaker(1);
    let pipeline = pipeline(&cb, 10 * S);
    cb.force_open_for(45 * S);
    let handler = move || {
        let pipeline = pipeline.clone();
        async move {
            pipeline
                .execute_outcome(None, || async { Ok::<_, ErrorKind>("never run") })
                .await
                .into_http()
                // The kernel's own error is no response: give it a status.
                .map_err(|error| error.map_operation(|_kind| StatusCode::BAD_GATEWAY))
        }
    };
    let app = Router::new().route("/kernel", get(handler));
    let response = app.oneshot(request("GET", "/kernel", ())).await.unwrap();
    assert_eq!(response.status(), StatusCode::SERVICE_UNAVAILABLE);
    assert_eq!(retry_after(&response), Some("45"));
}
