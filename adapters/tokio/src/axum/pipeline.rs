//! [`HttpPipelineLayer`]: a whole [`Pipeline`] on axum routes, request bodies buffered up to a
//! limit so that attempts can be repeated.

use std::convert::Infallible;
use std::fmt;
use std::future::{Future, poll_fn};
use std::pin::Pin;
use std::task::{Context, Poll};

use ::axum::body::{Body, Bytes};
use ::axum::response::{IntoResponse, Response};
use ::http::{Request, StatusCode, header};
use http_body_util::{BodyExt, LengthLimitError, Limited};
use rustkernel_core::error::{ByClassify, Classifier};
use rustkernel_core::resilience::NoWindow;
use rustkernel_core::resilience::circuit_breaker::SlidingWindow;
use tower_layer::Layer;
use tower_service::Service;

use crate::classify::{HttpClassifier, ResponseClassifier};
use crate::pipeline::Pipeline;
use crate::retry::{NoHint, RetryAfterHint};

/// The body limit of an [`HttpPipelineLayer`] unless set: 2 MiB, axum's own default for
/// extractors that buffer (`DefaultBodyLimit`).
pub const DEFAULT_BODY_LIMIT: usize = 2 * 1024 * 1024;

/// Runs each request to axum routes through a [`Pipeline`] (total deadline, retry, the breaker
/// per attempt, attempt timeout), ready for `Router::layer` and `Router::route_layer` (no
/// `HandleErrorLayer`): the pipeline's errors answer as [`HttpError`](super::HttpError)s (`503`
/// with `Retry-After` when the breaker refused, `504` when a deadline passed), and responses
/// are classified by the pipeline's [`ResponseClassifier`] (from [`new`](Self::new):
/// [`HttpClassifier::new`], so 5xx and 429 responses count against the breaker and are retried
/// when their kind is in `retryable_errors`; after the last try, the last response goes back to
/// the client as the route made it).
///
/// # Request bodies
/// An axum request body is a stream, read once, so it is not `Clone`; each attempt needs its
/// own copy. This layer reads the whole body first, up to a limit
/// ([`DEFAULT_BODY_LIMIT`] unless [`body_limit`](Self::body_limit) says otherwise), and gives
/// every attempt the same bytes with a clone of the request's head. A request whose body is
/// over the limit is answered `413 Payload Too Large` (at once when its `Content-Length` says
/// so) and a body that cannot be read `400 Bad Request`; neither reaches the pipeline nor
/// counts for the breaker. Reading the body is not under the pipeline's deadline (put a
/// timeout around the router for slow uploads). For streaming or larger bodies, use the
/// [`HttpBreakerLayer`](super::HttpBreakerLayer): the breaker alone, no retry, no buffering.
#[derive(Debug)]
pub struct HttpPipelineLayer<
    W: SlidingWindow = NoWindow,
    H = NoHint,
    C = ByClassify,
    K = HttpClassifier,
> {
    pipeline: Pipeline<W, H, C, K>,
    body_limit: usize,
}

impl<W: SlidingWindow, H, C> HttpPipelineLayer<W, H, C, HttpClassifier> {
    /// Runs requests through `pipeline`, its responses classified by [`HttpClassifier::new`].
    /// A pipeline that already classifies responses goes through
    /// [`classified`](Self::classified).
    #[must_use]
    pub fn new(pipeline: Pipeline<W, H, C>) -> Self {
        Self::classified(pipeline.classify_response(HttpClassifier::new()))
    }
}

impl<W: SlidingWindow, H, C, K> HttpPipelineLayer<W, H, C, K> {
    /// Runs requests through `pipeline`, keeping its own response classifier (set with
    /// [`Pipeline::classify_response`]).
    #[must_use]
    pub fn classified(pipeline: Pipeline<W, H, C, K>) -> Self {
        Self {
            pipeline,
            body_limit: DEFAULT_BODY_LIMIT,
        }
    }

    /// Classifies responses with `classifier` instead.
    #[must_use]
    pub fn classify_response<L>(self, classifier: L) -> HttpPipelineLayer<W, H, C, L> {
        HttpPipelineLayer {
            pipeline: self.pipeline.classify_response(classifier),
            body_limit: self.body_limit,
        }
    }

    /// Buffers request bodies up to `bytes`; a longer body is answered `413`.
    #[must_use]
    pub fn body_limit(mut self, bytes: usize) -> Self {
        self.body_limit = bytes;
        self
    }

    /// The pipeline.
    #[must_use]
    pub fn pipeline(&self) -> &Pipeline<W, H, C, K> {
        &self.pipeline
    }
}

impl<W: SlidingWindow, H: Clone, C: Clone, K: Clone> Clone for HttpPipelineLayer<W, H, C, K> {
    fn clone(&self) -> Self {
        Self {
            pipeline: self.pipeline.clone(),
            body_limit: self.body_limit,
        }
    }
}

impl<S, W: SlidingWindow, H: Clone, C: Clone, K: Clone> Layer<S> for HttpPipelineLayer<W, H, C, K> {
    type Service = HttpPipelineService<S, W, H, C, K>;

    fn layer(&self, inner: S) -> Self::Service {
        HttpPipelineService {
            inner,
            pipeline: self.pipeline.clone(),
            body_limit: self.body_limit,
        }
    }
}

/// A route whose requests run through a [`Pipeline`]; from [`HttpPipelineLayer`].
pub struct HttpPipelineService<
    S,
    W: SlidingWindow = NoWindow,
    H = NoHint,
    C = ByClassify,
    K = HttpClassifier,
> {
    inner: S,
    pipeline: Pipeline<W, H, C, K>,
    body_limit: usize,
}

impl<S, W: SlidingWindow, H, C, K> HttpPipelineService<S, W, H, C, K> {
    /// The inner service.
    #[must_use]
    pub fn get_ref(&self) -> &S {
        &self.inner
    }
}

impl<S: Clone, W: SlidingWindow, H: Clone, C: Clone, K: Clone> Clone
    for HttpPipelineService<S, W, H, C, K>
{
    fn clone(&self) -> Self {
        Self {
            inner: self.inner.clone(),
            pipeline: self.pipeline.clone(),
            body_limit: self.body_limit,
        }
    }
}

impl<S, W: SlidingWindow, H, C, K> fmt::Debug for HttpPipelineService<S, W, H, C, K> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("HttpPipelineService")
            .field("pipeline", &self.pipeline)
            .field("body_limit", &self.body_limit)
            .finish_non_exhaustive()
    }
}

/// The boxed future of an [`HttpPipelineService`] call.
pub type HttpPipelineFuture = Pin<Box<dyn Future<Output = Result<Response, Infallible>> + Send>>;

impl<S, W, H, C, K> Service<Request<Body>> for HttpPipelineService<S, W, H, C, K>
where
    S: Service<Request<Body>> + Clone + Send + 'static,
    S::Future: Send,
    S::Response: IntoResponse + Send,
    S::Error: Send,
    W: SlidingWindow + Send + Sync + 'static,
    H: RetryAfterHint<<C as Classifier<S::Error>>::Error> + Clone + Send + Sync + 'static,
    C: Classifier<S::Error> + Clone + Send + Sync + 'static,
    <C as Classifier<S::Error>>::Error: IntoResponse + Send,
    K: ResponseClassifier<S::Response> + Clone + Send + Sync + 'static,
{
    type Response = Response;
    type Error = Infallible;
    type Future = HttpPipelineFuture;

    /// Always ready: each attempt waits for a clone of the inner service to be ready.
    fn poll_ready(&mut self, _cx: &mut Context<'_>) -> Poll<Result<(), Infallible>> {
        Poll::Ready(Ok(()))
    }

    fn call(&mut self, request: Request<Body>) -> Self::Future {
        let inner = self.inner.clone();
        let pipeline = self.pipeline.clone();
        let limit = self.body_limit;
        Box::pin(async move {
            let (head, body) = request.into_parts();
            let body = match buffer(&head.headers, body, limit).await {
                Ok(body) => body,
                Err(refusal) => return Ok(refusal),
            };
            let outcome = pipeline
                .execute_outcome(None, move || {
                    let mut service = inner.clone();
                    let request = Request::from_parts(head.clone(), Body::from(body.clone()));
                    async move {
                        poll_fn(|cx| service.poll_ready(cx)).await?;
                        service.call(request).await
                    }
                })
                .await;
            Ok(match outcome.into_http() {
                Ok(response) => response.into_response(),
                Err(error) => error.into_response(),
            })
        })
    }
}

/// The whole body, or the answer to a request whose body cannot be buffered: `413` over
/// `limit` bytes, `400` when it cannot be read.
async fn buffer(headers: &::http::HeaderMap, body: Body, limit: usize) -> Result<Bytes, Response> {
    let too_large = || {
        (
            StatusCode::PAYLOAD_TOO_LARGE,
            format!("request body over the limit of {limit} bytes"),
        )
            .into_response()
    };
    let declared = headers
        .get(header::CONTENT_LENGTH)
        .and_then(|length| length.to_str().ok()?.parse::<u64>().ok());
    if declared.is_some_and(|length| length > u64::try_from(limit).unwrap_or(u64::MAX)) {
        return Err(too_large());
    }
    match Limited::new(body, limit).collect().await {
        Ok(collected) => Ok(collected.to_bytes()),
        Err(error) if error.is::<LengthLimitError>() => Err(too_large()),
        Err(error) => {
            tracing::debug!(target: "rustkernel::pipeline", %error, "request body could not be read");
            Err((StatusCode::BAD_REQUEST, "request body could not be read").into_response())
        }
    }
}
