//! Deadline middleware: each request runs under a deadline resolved from a [`TimeoutConfig`].

mod future;
mod layer;

pub use future::ResponseFuture;
pub use layer::DeadlineLayer;

use std::task::{Context, Poll};
use std::time::Duration;

use rustkernel_core::error::{ByClassify, Classifier};
use rustkernel_core::resilience::{ResilienceError, TimeoutConfig};
use tower_service::Service;

use crate::deadline::TimeoutExt;

/// What a request says about its own timing; both parts are optional.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct RequestTiming {
    /// The timeout the caller asked for (a `grpc-timeout`); `None` takes the default.
    pub timeout: Option<Duration>,
    /// When the request was enqueued, for `include_queue_time`; `None` means at the call.
    /// On the crate's clock ([`clock::now`](crate::clock::now)).
    pub enqueued_at: Option<rustkernel_core::time::Instant>,
}

/// Reads a request's [`RequestTiming`].
///
/// Implemented by [`DefaultTiming`] and by every closure `Fn(&Req) -> RequestTiming`.
pub trait TimingOf<Req> {
    /// The timing of `request`.
    fn timing_of(&self, request: &Req) -> RequestTiming;
}

/// Every request asks for the default timeout and is enqueued at the call.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct DefaultTiming;

impl<Req> TimingOf<Req> for DefaultTiming {
    fn timing_of(&self, _request: &Req) -> RequestTiming {
        RequestTiming::default()
    }
}

impl<Req, F> TimingOf<Req> for F
where
    F: Fn(&Req) -> RequestTiming,
{
    fn timing_of(&self, request: &Req) -> RequestTiming {
        self(request)
    }
}

/// A service that runs each call under a deadline and makes it the inner service's [current
/// deadline](crate::deadline::current_deadline) (in `call` and while its future runs).
///
/// The deadline is [`TimeoutExt::resolve_deadline`] of the request's [`RequestTiming`]. The
/// error is [`ResilienceError<S::Error>`]: `Operation(e)` for the inner error, `Timeout` when
/// the request's own timeout ran out, `DeadlineExceeded` when its caller's deadline ran out
/// or had already passed (then the inner service is not called).
#[derive(Clone, Debug)]
pub struct DeadlineService<S, X = DefaultTiming> {
    inner: S,
    config: TimeoutConfig,
    timing: X,
}

impl<S, X> DeadlineService<S, X> {
    /// Runs calls of `inner` under deadlines from `config` and `timing`. `config` should be
    /// valid ([`DeadlineLayer::try_new`] checks it); an invalid one still resolves, as the
    /// core's [`TimeoutConfig::resolve`] documents.
    #[must_use]
    pub fn new(inner: S, config: TimeoutConfig, timing: X) -> Self {
        Self {
            inner,
            config,
            timing,
        }
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

impl<S, X, Req> Service<Req> for DeadlineService<S, X>
where
    S: Service<Req>,
    X: TimingOf<Req>,
    ByClassify: Classifier<S::Error>,
{
    type Response = S::Response;
    type Error = ResilienceError<<ByClassify as Classifier<S::Error>>::Error>;
    type Future = ResponseFuture<S::Future>;

    fn poll_ready(&mut self, cx: &mut Context<'_>) -> Poll<Result<(), Self::Error>> {
        self.inner
            .poll_ready(cx)
            .map_err(|error| ByClassify.flatten(error))
    }

    fn call(&mut self, request: Req) -> Self::Future {
        let timing = self.timing.timing_of(&request);
        let resolved = self
            .config
            .resolve_deadline(timing.timeout, timing.enqueued_at);
        ResponseFuture::new(resolved.execute(|| self.inner.call(request)))
    }
}
