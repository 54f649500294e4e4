//! [`HttpBreakerLayer`]: a circuit breaker on axum routes, its rejections answered as `503`.

use std::convert::Infallible;
use std::fmt;
use std::future::Future;
use std::pin::Pin;
use std::task::{Context, Poll, ready};
use std::time::Duration;

use ::axum::response::{IntoResponse, Response};
use pin_project_lite::pin_project;
use rustkernel_core::resilience::circuit_breaker::SlidingWindow;
use rustkernel_core::resilience::{CircuitState, NoWindow, Rejected, ResilienceError};
use tower_layer::Layer;
use tower_service::Service;

use super::HttpError;
use crate::breaker::{CircuitBreaker, OwnedCallPermit};
use crate::classify::{HttpClassifier, ResponseClassifier, Verdict};
use crate::clock;

/// Puts a [`CircuitBreaker`] in front of axum routes, ready for `Router::layer` and
/// `Router::route_layer` (no `HandleErrorLayer`): a call the breaker refuses is answered `503
/// Service Unavailable` with `Retry-After` (see [`HttpError`]) without reaching the route, and
/// each response is counted as its [`ResponseClassifier`] says, by default
/// [`HttpClassifier::new`] (5xx and 429 are failures). Every response, failing or not, goes
/// back to the client as the route made it.
///
/// No retry and no buffering: the request, body and all, goes to the route as it came, so
/// streaming and large bodies pass. For retries use the
/// [`HttpPipelineLayer`](super::HttpPipelineLayer).
#[derive(Clone, Debug)]
pub struct HttpBreakerLayer<W: SlidingWindow = NoWindow, K = HttpClassifier> {
    breaker: CircuitBreaker<W>,
    responses: K,
}

impl<W: SlidingWindow> HttpBreakerLayer<W> {
    /// Guards routes with `breaker` (every service the layer makes shares it), counting
    /// responses with [`HttpClassifier::new`].
    #[must_use]
    pub fn new(breaker: CircuitBreaker<W>) -> Self {
        Self {
            breaker,
            responses: HttpClassifier::new(),
        }
    }
}

impl<W: SlidingWindow, K> HttpBreakerLayer<W, K> {
    /// Counts responses with `classifier` instead (another [`HttpClassifier`], or a closure
    /// `|response: &Response| Verdict::..`).
    #[must_use]
    pub fn classify_response<L>(self, classifier: L) -> HttpBreakerLayer<W, L> {
        HttpBreakerLayer {
            breaker: self.breaker,
            responses: classifier,
        }
    }

    /// The breaker.
    #[must_use]
    pub fn breaker(&self) -> &CircuitBreaker<W> {
        &self.breaker
    }
}

impl<S, W: SlidingWindow, K: Clone> Layer<S> for HttpBreakerLayer<W, K> {
    type Service = HttpBreakerService<S, W, K>;

    fn layer(&self, inner: S) -> Self::Service {
        HttpBreakerService {
            inner,
            breaker: self.breaker.clone(),
            responses: self.responses.clone(),
        }
    }
}

/// A route guarded by a [`CircuitBreaker`]; from [`HttpBreakerLayer`].
#[derive(Clone)]
pub struct HttpBreakerService<S, W: SlidingWindow = NoWindow, K = HttpClassifier> {
    inner: S,
    breaker: CircuitBreaker<W>,
    responses: K,
}

impl<S, W: SlidingWindow, K> HttpBreakerService<S, W, K> {
    /// The inner service.
    #[must_use]
    pub fn get_ref(&self) -> &S {
        &self.inner
    }
}

impl<S, W: SlidingWindow, K> fmt::Debug for HttpBreakerService<S, W, K> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("HttpBreakerService")
            .field("breaker", &self.breaker)
            .finish_non_exhaustive()
    }
}

impl<S, W, K, Req> Service<Req> for HttpBreakerService<S, W, K>
where
    S: Service<Req>,
    S::Response: IntoResponse,
    S::Error: Into<Infallible>,
    W: SlidingWindow,
    K: ResponseClassifier<S::Response> + Clone,
{
    type Response = Response;
    type Error = Infallible;
    type Future = HttpBreakerFuture<S::Future, W, K>;

    fn poll_ready(&mut self, cx: &mut Context<'_>) -> Poll<Result<(), Infallible>> {
        self.inner.poll_ready(cx).map_err(Into::into)
    }

    fn call(&mut self, request: Req) -> Self::Future {
        match self.breaker.try_acquire_owned() {
            Ok(permit) => HttpBreakerFuture {
                state: State::Admitted {
                    future: self.inner.call(request),
                    permit: Some(permit),
                    responses: self.responses.clone(),
                },
            },
            Err(rejected) => {
                tracing::debug!(target: "rustkernel::breaker", breaker = self.breaker.name(), "request rejected: circuit open");
                HttpBreakerFuture {
                    state: State::Rejected {
                        wait: wait_of(&rejected),
                    },
                }
            }
        }
    }
}

/// How long a rejected caller should wait: until the open time ends; a moment when half-open
/// with every probe slot taken (the probes answer soon); unknown when forced open with no end.
fn wait_of(rejected: &Rejected) -> Option<Duration> {
    match (rejected.retry_at, rejected.state) {
        (Some(at), _) => Some(at.saturating_duration_since(clock::now())),
        (None, CircuitState::HalfOpen) => Some(Duration::ZERO),
        (None, _) => None,
    }
}

pin_project! {
    /// The future of an [`HttpBreakerService`] call.
    #[must_use = "futures do nothing unless polled"]
    pub struct HttpBreakerFuture<F, W: SlidingWindow, K> {
        #[pin]
        state: State<F, W, K>,
    }
}

pin_project! {
    #[project = StateProj]
    enum State<F, W: SlidingWindow, K> {
        Admitted {
            #[pin]
            future: F,
            // Dropped unsettled when the call is: a timeout past the current deadline,
            // cancelled otherwise.
            permit: Option<OwnedCallPermit<W>>,
            responses: K,
        },
        Rejected { wait: Option<Duration> },
    }
}

impl<F, W, K, T, E> Future for HttpBreakerFuture<F, W, K>
where
    F: Future<Output = Result<T, E>>,
    T: IntoResponse,
    E: Into<Infallible>,
    W: SlidingWindow,
    K: ResponseClassifier<T>,
{
    type Output = Result<Response, Infallible>;

    fn poll(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Self::Output> {
        match self.project().state.project() {
            StateProj::Admitted {
                future,
                permit,
                responses,
            } => {
                let Ok(response) = ready!(future.poll(cx)).map_err(Into::<Infallible>::into);
                if let Some(permit) = permit.take() {
                    match responses.classify_response(&response) {
                        Verdict::Success => permit.success(),
                        Verdict::Failure(kind) => permit.failure(kind),
                        Verdict::Ignore => permit.cancel(),
                    }
                }
                Poll::Ready(Ok(response.into_response()))
            }
            StateProj::Rejected { wait } => Poll::Ready(Ok(HttpError::<Infallible>::new(
                ResilienceError::CircuitOpen,
            )
            .retry_after(*wait)
            .into_response())),
        }
    }
}

impl<F, W: SlidingWindow, K> fmt::Debug for HttpBreakerFuture<F, W, K> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("HttpBreakerFuture").finish_non_exhaustive()
    }
}
