//! Guard middleware: admits each call through a [`Guard`], such as a shared circuit breaker,
//! and reports how it ended.
//!
//! The breaker itself lives elsewhere; anything with a permit-style interface plugs in by
//! implementing [`Guard`] for a cheap clonable handle.

mod future;
mod layer;

pub use future::ResponseFuture;
pub use layer::GuardLayer;

use std::task::{Context, Poll};

use rustkernel_core::error::{ByClassify, Classifier, ErrorKind};
use rustkernel_core::resilience::ResilienceError;
use rustkernel_core::resilience::circuit_breaker::SlidingWindow;
use tower_service::Service;

/// Admission control with a permit per call: the shape of a circuit breaker.
///
/// A call first takes a permit ([`try_acquire`](Self::try_acquire)); when it ends, the permit
/// is handed back with the outcome ([`on_success`](Self::on_success) or
/// [`on_failure`](Self::on_failure), with the error's [`ErrorKind`]). The permit carries what
/// reporting needs (an owned handle of the breaker), so a call's future holds the permit alone:
/// one reference-count write per call, not two. A call whose future is dropped first drops its
/// permit unreported: the permit type must settle itself on drop (an RAII guard), so a
/// half-open slot can never leak.
pub trait Guard {
    /// What an admitted call holds until it ends.
    type Permit;

    /// A permit for one call now, or `None` when the call must not run (the breaker is open,
    /// or half-open and full).
    fn try_acquire(&self) -> Option<Self::Permit>;

    /// The call admitted with `permit` succeeded.
    fn on_success(permit: Self::Permit);

    /// The call admitted with `permit` failed with an error of `kind`.
    fn on_failure(permit: Self::Permit, kind: ErrorKind);
}

/// A service whose calls are admitted by a [`Guard`].
///
/// The error is [`ResilienceError<S::Error>`]: `CircuitOpen` when the guard refused (the inner
/// service is not called), `Operation(e)` for the inner error.
#[derive(Clone, Debug)]
pub struct GuardService<S, G> {
    inner: S,
    guard: G,
}

impl<S, G> GuardService<S, G> {
    /// Guards calls of `inner` with `guard`.
    #[must_use]
    pub fn new(inner: S, guard: G) -> Self {
        Self { inner, guard }
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

impl<S, G, Req> Service<Req> for GuardService<S, G>
where
    S: Service<Req>,
    ByClassify: Classifier<S::Error>,
    G: Guard,
{
    type Response = S::Response;
    type Error = ResilienceError<<ByClassify as Classifier<S::Error>>::Error>;
    type Future = ResponseFuture<S::Future, G>;

    fn poll_ready(&mut self, cx: &mut Context<'_>) -> Poll<Result<(), Self::Error>> {
        self.inner
            .poll_ready(cx)
            .map_err(|error| ByClassify.flatten(error))
    }

    fn call(&mut self, request: Req) -> Self::Future {
        match self.guard.try_acquire() {
            Some(permit) => ResponseFuture::admitted(self.inner.call(request), permit),
            None => {
                tracing::debug!(target: "rustkernel::breaker", "call rejected by the guard");
                ResponseFuture::rejected()
            }
        }
    }
}

/// The crate's own shared breaker is a guard: `GuardLayer::new(breaker.clone())` (or
/// [`CircuitBreakerLayer`](crate::layer::CircuitBreakerLayer)) puts it in front of any tower
/// service. Rejected calls fail with `ResilienceError::CircuitOpen`;
/// [`CircuitBreaker::retry_after`](crate::breaker::CircuitBreaker::retry_after) gives the time
/// for a `Retry-After` header.
impl<W: SlidingWindow> Guard for crate::breaker::CircuitBreaker<W> {
    type Permit = crate::breaker::OwnedCallPermit<W>;

    fn try_acquire(&self) -> Option<Self::Permit> {
        self.try_acquire_owned().ok()
    }

    fn on_success(permit: Self::Permit) {
        permit.success();
    }

    fn on_failure(permit: Self::Permit, kind: ErrorKind) {
        permit.failure(kind);
    }
}

/// A breaker that lives as long as the program (a `static`, a `LazyLock`, or `Box::leak`) is a
/// guard by reference: its permits borrow it, so a call writes no reference count at all. Two
/// threads calling through clones of one `GuardService` over an `Arc`-backed handle both write
/// the same count (an owned permit clones the handle); in the crate's breaker bench
/// (`time10s_tower`, two threads) that is 64.5 ns a call against 26.2 ns by reference.
impl<W: SlidingWindow> Guard for &'static crate::breaker::CircuitBreaker<W> {
    type Permit = crate::breaker::CallPermit<'static, W>;

    fn try_acquire(&self) -> Option<Self::Permit> {
        crate::breaker::CircuitBreaker::try_acquire(self).ok()
    }

    fn on_success(permit: Self::Permit) {
        permit.success();
    }

    fn on_failure(permit: Self::Permit, kind: ErrorKind) {
        permit.failure(kind);
    }
}
