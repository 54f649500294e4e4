//! The crate's breaker and pipeline as tower layers in front of real axum routes, on a real
//! server at 127.0.0.1:0, driven by a real HTTP client. Real time: the socket is the point, so
//! the breaker's open time is short (100 ms) and the test waits it out.
#![allow(clippy::panic, clippy::unwrap_used, clippy::indexing_slicing)]

use std::convert::Infallible;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicU32, Ordering};
use std::time::Duration;

use axum::Router;
use axum::body::Body;
use axum::error_handling::HandleErrorLayer;
use axum::http::{Request, Response, StatusCode, header};
use rustkernel_tokio::resilience::{
    BackoffStrategy, CircuitBreaker, CircuitBreakerConfig, CircuitBreakerLayer, CircuitState,
    ErrorKind, Pipeline, PipelineLayer, ResilienceError, Retrier, RetryConfig,
};
use tower::{ServiceBuilder, service_fn};

/// Maps the flat error to a response: 503 with `Retry-After` while the breaker is open.
fn to_response(breaker: &CircuitBreaker, error: &ResilienceError<ErrorKind>) -> Response<Body> {
    let mut response = Response::new(Body::from(error.to_string()));
    *response.status_mut() = match error {
        ResilienceError::CircuitOpen => {
            let wait = breaker.retry_after().unwrap_or_default();
            let secs = wait.as_secs_f64().ceil().max(1.0).to_string();
            response
                .headers_mut()
                .insert(header::RETRY_AFTER, secs.parse().unwrap());
            StatusCode::SERVICE_UNAVAILABLE
        }
        ResilienceError::DeadlineExceeded | ResilienceError::Timeout => StatusCode::GATEWAY_TIMEOUT,
        ResilienceError::Operation(_) => StatusCode::BAD_GATEWAY,
    };
    response
}

async fn serve(router: Router) -> String {
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let address = listener.local_addr().unwrap();
    tokio::spawn(async move { axum::serve(listener, router).await.unwrap() });
    format!("http://{address}")
}

#[tokio::test]
async fn breaker_layer_opens_rejects_half_opens_and_closes_over_http() {
    let breaker = CircuitBreaker::new(CircuitBreakerConfig {
        failure_threshold: 3,
        success_threshold: 1,
        timeout: Duration::from_millis(100),
        ..Default::default()
    });
    let failing = Arc::new(AtomicBool::new(true));
    let calls = Arc::new(AtomicU32::new(0));
    let kernel = {
        let (failing, calls) = (failing.clone(), calls.clone());
        service_fn(move |_request: Request<Body>| {
            let fail = failing.load(Ordering::SeqCst);
            calls.fetch_add(1, Ordering::SeqCst);
            async move {
                if fail {
                    Err(ErrorKind::Unavailable)
                } else {
                    Ok(Response::new(Body::from("42")))
                }
            }
        })
    };
    let handler_breaker = breaker.clone();
    let route = ServiceBuilder::new()
        .layer(HandleErrorLayer::new(
            move |error: ResilienceError<ErrorKind>| {
                let response = to_response(&handler_breaker, &error);
                async move { Ok::<_, Infallible>(response) }
            },
        ))
        .layer(CircuitBreakerLayer::new(breaker.clone()))
        .service(kernel);
    let base = serve(Router::new().route_service("/kernel", route)).await;
    let client = reqwest::Client::new();
    let url = format!("{base}/kernel");

    for _ in 0..3 {
        let response = client.post(&url).send().await.unwrap();
        assert_eq!(response.status(), 502);
    }
    assert_eq!(breaker.state(), CircuitState::Open);
    // Open: rejected without calling the kernel, 503 with the retry time.
    let response = client.post(&url).send().await.unwrap();
    assert_eq!(response.status(), 503);
    let retry_after: u64 = response.headers()[header::RETRY_AFTER.as_str()]
        .to_str()
        .unwrap()
        .parse()
        .unwrap();
    assert_eq!(retry_after, 1);
    assert_eq!(calls.load(Ordering::SeqCst), 3);

    // After the open time a probe goes through; it succeeds and the breaker closes.
    failing.store(false, Ordering::SeqCst);
    tokio::time::sleep(Duration::from_millis(150)).await;
    let response = client.post(&url).send().await.unwrap();
    assert_eq!(response.status(), 200);
    assert_eq!(response.text().await.unwrap(), "42");
    assert_eq!(breaker.state(), CircuitState::Closed);
    let stats = breaker.stats();
    assert_eq!((stats.failure_count, stats.rejected_count), (3, 1));

    // Bad input to the server (a wrong method, an unknown path) leaves it serving.
    assert_eq!(
        client
            .get(format!("{base}/nope"))
            .send()
            .await
            .unwrap()
            .status(),
        404
    );
    assert_eq!(client.post(&url).send().await.unwrap().status(), 200);
}

#[tokio::test]
async fn pipeline_layer_retries_and_rejects_through_one_layer() {
    let breaker = CircuitBreaker::new(CircuitBreakerConfig {
        failure_threshold: 4,
        timeout: Duration::from_secs(60),
        ..Default::default()
    });
    let pipeline = Pipeline::builder()
        .retry(
            Retrier::new(RetryConfig {
                max_attempts: 2,
                backoff: BackoffStrategy::Fixed {
                    delay: Duration::from_millis(1),
                },
                retryable_errors: [ErrorKind::Transient].into(),
            })
            .seed(9),
        )
        .breaker(breaker.clone())
        .attempt_timeout(Duration::from_secs(5))
        .build();
    let calls = Arc::new(AtomicU32::new(0));
    // The pipeline's requests must be `Clone`: this kernel takes the parsed input.
    let kernel = {
        let calls = calls.clone();
        service_fn(move |input: u32| {
            let n = calls.fetch_add(1, Ordering::SeqCst);
            async move {
                match input {
                    // Fails once, then succeeds: the retry hides it.
                    1 if n.is_multiple_of(2) => Err(ErrorKind::Transient),
                    1 => Ok(2),
                    _ => Err(ErrorKind::Transient),
                }
            }
        })
    };
    let guarded = ServiceBuilder::new()
        .layer(PipelineLayer::new(pipeline))
        .service(kernel);
    let handler_breaker = breaker.clone();
    let app = Router::new().route(
        "/double/{input}",
        axum::routing::post(
            move |axum::extract::Path(input): axum::extract::Path<u32>| {
                let guarded = guarded.clone();
                let breaker = handler_breaker.clone();
                async move {
                    match tower::ServiceExt::oneshot(guarded, input).await {
                        Ok(value) => Response::new(Body::from(value.to_string())),
                        Err(error) => to_response(&breaker, &error),
                    }
                }
            },
        ),
    );
    let base = serve(app).await;
    let client = reqwest::Client::new();
    let response = client
        .post(format!("{base}/double/1"))
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), 200);
    assert_eq!(response.text().await.unwrap(), "2");
    assert_eq!(calls.load(Ordering::SeqCst), 2);
    // Always failing: two attempts each; the breaker opens after four failures.
    for _ in 0..2 {
        let response = client
            .post(format!("{base}/double/7"))
            .send()
            .await
            .unwrap();
        assert_eq!(response.status(), 502);
    }
    let response = client
        .post(format!("{base}/double/7"))
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), 503);
    assert!(response.headers().contains_key(header::RETRY_AFTER));
}

/// The `axum` feature's layers need no `HandleErrorLayer`: a handler's 500s count, and the open
/// breaker answers 503 with `Retry-After` over a real socket.
#[tokio::test]
async fn the_http_layers_count_500s_and_answer_503_without_a_handle_error_layer() {
    use rustkernel_tokio::axum::{HttpBreakerLayer, HttpPipelineLayer};

    let breaker = CircuitBreaker::new(CircuitBreakerConfig {
        failure_threshold: 3,
        timeout: Duration::from_secs(60),
        ..Default::default()
    });
    let echoed = CircuitBreaker::new(CircuitBreakerConfig::default());
    let pipeline = Pipeline::builder()
        .retry(
            Retrier::new(RetryConfig {
                max_attempts: 2,
                backoff: BackoffStrategy::Fixed {
                    delay: Duration::from_millis(1),
                },
                retryable_errors: [ErrorKind::Transient].into(),
            })
            .seed(4),
        )
        .breaker(echoed.clone())
        .build();
    let tries = Arc::new(AtomicU32::new(0));
    let flaky_echo = {
        let tries = tries.clone();
        move |body: String| async move {
            if tries.fetch_add(1, Ordering::SeqCst) == 0 {
                Err(StatusCode::INTERNAL_SERVER_ERROR)
            } else {
                Ok(body)
            }
        }
    };
    let app = Router::new()
        .route(
            "/fault",
            axum::routing::get(|| async { StatusCode::INTERNAL_SERVER_ERROR })
                .layer(HttpBreakerLayer::new(breaker.clone())),
        )
        .route(
            "/echo",
            axum::routing::post(flaky_echo).layer(HttpPipelineLayer::new(pipeline)),
        );
    let base = serve(app).await;
    let client = reqwest::Client::new();
    for _ in 0..3 {
        let response = client.get(format!("{base}/fault")).send().await.unwrap();
        assert_eq!(response.status(), 500);
    }
    assert_eq!(breaker.state(), CircuitState::Open);
    let response = client.get(format!("{base}/fault")).send().await.unwrap();
    assert_eq!(response.status(), 503);
    let retry_after: u64 = response.headers()[header::RETRY_AFTER.as_str()]
        .to_str()
        .unwrap()
        .parse()
        .unwrap();
    assert!((59..=60).contains(&retry_after), "{retry_after}");

    // The request body crossed the socket once and was sent to both attempts.
    let response = client
        .post(format!("{base}/echo"))
        .body("edges")
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), 200);
    assert_eq!(response.text().await.unwrap(), "edges");
    assert_eq!(tries.load(Ordering::SeqCst), 2);
    assert_eq!(echoed.stats().failure_count, 1);
}
