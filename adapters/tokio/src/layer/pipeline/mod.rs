//! Pipeline middleware: runs each call through a whole [`Pipeline`] (total deadline, retry,
//! breaker per attempt, attempt timeout), so a tower or axum stack gets all of it from one
//! `.layer(..)`.
//!
//! Each attempt sends a clone of the request to a clone of the inner service, so both must be
//! `Clone`. An axum `Request<Body>` is not (its body is a stream, read once): with the `axum`
//! feature, `rustkernel_tokio::axum::HttpPipelineLayer` buffers the body up to a limit and
//! answers errors as responses; otherwise put this layer on a service that takes your parsed,
//! cloneable input, or use [`CircuitBreakerLayer`](crate::layer::CircuitBreakerLayer) alone
//! for a raw HTTP route (no retry). The error is the pipeline's flat [`ResilienceError`];
//! responses are classified by the pipeline's [`ResponseClassifier`]
//! ([`Pipeline::classify_response`]).

use std::fmt;
use std::future::{Future, poll_fn};
use std::pin::Pin;
use std::task::{Context, Poll};

use rustkernel_core::error::{ByClassify, Classifier};
use rustkernel_core::resilience::circuit_breaker::SlidingWindow;
use rustkernel_core::resilience::{NoWindow, ResilienceError};
use tower_layer::Layer;
use tower_service::Service;

use crate::classify::{OkIsSuccess, ResponseClassifier};
use crate::pipeline::Pipeline;
use crate::retry::{NoHint, RetryAfterHint};

/// Wraps services in a [`PipelineService`] that runs every call through `pipeline`; services
/// it builds share the pipeline's breaker and budget.
#[derive(Debug)]
pub struct PipelineLayer<W: SlidingWindow = NoWindow, H = NoHint, C = ByClassify, K = OkIsSuccess> {
    pipeline: Pipeline<W, H, C, K>,
}

impl<W: SlidingWindow, H, C, K> PipelineLayer<W, H, C, K> {
    /// A layer running calls through `pipeline`.
    #[must_use]
    pub fn new(pipeline: Pipeline<W, H, C, K>) -> Self {
        Self { pipeline }
    }

    /// The pipeline.
    #[must_use]
    pub fn pipeline(&self) -> &Pipeline<W, H, C, K> {
        &self.pipeline
    }
}

impl<S, W: SlidingWindow, H: Clone, C: Clone, K: Clone> Layer<S> for PipelineLayer<W, H, C, K> {
    type Service = PipelineService<S, W, H, C, K>;

    fn layer(&self, inner: S) -> Self::Service {
        PipelineService {
            inner,
            pipeline: self.pipeline.clone(),
        }
    }
}

/// A service whose calls run through a [`Pipeline`]; from [`PipelineLayer`].
pub struct PipelineService<
    S,
    W: SlidingWindow = NoWindow,
    H = NoHint,
    C = ByClassify,
    K = OkIsSuccess,
> {
    inner: S,
    pipeline: Pipeline<W, H, C, K>,
}

impl<W: SlidingWindow, H: Clone, C: Clone, K: Clone> Clone for PipelineLayer<W, H, C, K> {
    fn clone(&self) -> Self {
        Self {
            pipeline: self.pipeline.clone(),
        }
    }
}

impl<S: Clone, W: SlidingWindow, H: Clone, C: Clone, K: Clone> Clone
    for PipelineService<S, W, H, C, K>
{
    fn clone(&self) -> Self {
        Self {
            inner: self.inner.clone(),
            pipeline: self.pipeline.clone(),
        }
    }
}

impl<S, W: SlidingWindow, H, C, K> PipelineService<S, W, H, C, K> {
    /// The inner service.
    #[must_use]
    pub fn get_ref(&self) -> &S {
        &self.inner
    }
}

impl<S, W: SlidingWindow, H, C, K> fmt::Debug for PipelineService<S, W, H, C, K> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("PipelineService")
            .field("pipeline", &self.pipeline)
            .finish_non_exhaustive()
    }
}

/// The boxed future of a [`PipelineService`] call.
pub type ResponseFuture<T, E> =
    Pin<Box<dyn Future<Output = Result<T, ResilienceError<E>>> + Send + 'static>>;

impl<S, W, H, C, K, Req> Service<Req> for PipelineService<S, W, H, C, K>
where
    S: Service<Req> + Clone + Send + 'static,
    S::Future: Send,
    S::Response: Send,
    S::Error: Send,
    Req: Clone + Send + 'static,
    W: SlidingWindow + Send + Sync + 'static,
    H: RetryAfterHint<<C as Classifier<S::Error>>::Error> + Clone + Send + Sync + 'static,
    C: Classifier<S::Error> + Clone + Send + Sync + 'static,
    <C as Classifier<S::Error>>::Error: Send,
    K: ResponseClassifier<S::Response> + Clone + Send + Sync + 'static,
{
    type Response = S::Response;
    type Error = ResilienceError<<C as Classifier<S::Error>>::Error>;
    type Future = ResponseFuture<S::Response, <C as Classifier<S::Error>>::Error>;

    /// Always ready: each attempt waits for a clone of the inner service to be ready.
    fn poll_ready(&mut self, _cx: &mut Context<'_>) -> Poll<Result<(), Self::Error>> {
        Poll::Ready(Ok(()))
    }

    fn call(&mut self, request: Req) -> Self::Future {
        let inner = self.inner.clone();
        let pipeline = self.pipeline.clone();
        Box::pin(async move {
            pipeline
                .execute(move || {
                    let mut service = inner.clone();
                    let request = request.clone();
                    async move {
                        poll_fn(|cx| service.poll_ready(cx)).await?;
                        service.call(request).await
                    }
                })
                .await
        })
    }
}
