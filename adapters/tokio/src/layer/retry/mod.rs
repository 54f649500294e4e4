//! Retry middleware: re-sends a cloned request while the core's retry state machine says so.

mod future;
mod layer;

pub use future::ResponseFuture;
pub use layer::RetryLayer;

use std::task::{Context, Poll};

use rustkernel_core::error::{ByClassify, Classifier};
use rustkernel_core::resilience::ResilienceError;
use tower_service::Service;

use crate::classify::{OkIsSuccess, ResponseClassifier};
use crate::retry::{NoHint, Retrier, RetryAfterHint, Start};

/// A service that retries failed calls of its inner service, as [`Retrier::execute`] does.
///
/// Requests must be `Clone` (each attempt sends a clone) and the inner service `Clone` (the
/// response future keeps one for its retries, as tower's own retry does). The error is
/// [`ResilienceError<S::Error>`]: the last real error as `Operation(e)`, or
/// `DeadlineExceeded` when the current deadline had passed before the first attempt. A retry
/// waits for the inner service to be ready; an error from `poll_ready` there counts as a
/// failed attempt. A response that the retrier's [response
/// classifier](Retrier::classify_response) calls a failure is retried as an error of its kind
/// would be; when retry gives up on it, it is the call's response.
#[derive(Clone, Debug)]
pub struct RetryService<S, H = NoHint, C = ByClassify, K = OkIsSuccess> {
    inner: S,
    retrier: Retrier<H, C, K>,
}

impl<S, H, C, K> RetryService<S, H, C, K> {
    /// Retries calls of `inner` with `retrier`.
    #[must_use]
    pub fn new(inner: S, retrier: Retrier<H, C, K>) -> Self {
        Self { inner, retrier }
    }

    /// The inner service.
    #[must_use]
    pub fn get_ref(&self) -> &S {
        &self.inner
    }

    /// The inner service, consuming the wrapper.
    #[must_use]
    pub fn into_inner(self) -> S {
        self.inner
    }
}

impl<S, H, C, K, Req> Service<Req> for RetryService<S, H, C, K>
where
    S: Service<Req> + Clone,
    C: Classifier<S::Error> + Clone,
    Req: Clone,
    H: RetryAfterHint<C::Error> + Clone,
    K: ResponseClassifier<S::Response> + Clone,
{
    type Response = S::Response;
    type Error = ResilienceError<C::Error>;
    type Future = ResponseFuture<S, Req, H, C, K>;

    fn poll_ready(&mut self, cx: &mut Context<'_>) -> Poll<Result<(), Self::Error>> {
        let classifier = self.retrier.classifier();
        self.inner
            .poll_ready(cx)
            .map_err(|error| classifier.flatten(error))
    }

    fn call(&mut self, request: Req) -> Self::Future {
        // The ready service takes the call and goes with the future for the retries; a fresh
        // clone stays here for the next `poll_ready`.
        let clone = self.inner.clone();
        let mut service = std::mem::replace(&mut self.inner, clone);
        match self.retrier.start() {
            Start::Expired => ResponseFuture::expired(request, service, self.retrier.clone()),
            Start::Ready(retry) => {
                let future = service.call(request.clone());
                ResponseFuture::called(request, service, self.retrier.clone(), retry, future)
            }
        }
    }
}
