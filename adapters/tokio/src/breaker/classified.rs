//! A breaker with a closure classifier, for operations whose error type is not `Classify`.

use std::fmt;
use std::future::Future;

use rustkernel_core::error::Classifier;
use rustkernel_core::resilience::ResilienceError;

use super::{CircuitBreaker, SlidingWindow};

/// A [`CircuitBreaker`] handle that classifies errors with a closure, from
/// [`CircuitBreaker::classify_with`]. It shares the breaker's state with every other handle.
#[derive(Clone)]
pub struct Classified<W: SlidingWindow, C> {
    pub(super) breaker: CircuitBreaker<W>,
    pub(super) classifier: C,
}

impl<W: SlidingWindow, C> Classified<W, C> {
    /// As [`CircuitBreaker::call`], the error's kind given by the closure; the error comes back
    /// unchanged as `Operation(e)`.
    pub async fn call<F, Fut, T, R>(&self, operation: F) -> Result<T, ResilienceError<C::Error>>
    where
        C: Classifier<R>,
        F: FnOnce() -> Fut,
        Fut: Future<Output = Result<T, R>>,
    {
        self.breaker
            .call_classified(&self.classifier, operation)
            .await
    }

    /// The breaker.
    #[must_use]
    pub fn breaker(&self) -> &CircuitBreaker<W> {
        &self.breaker
    }
}

impl<W: SlidingWindow, C> fmt::Debug for Classified<W, C> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Classified")
            .field("breaker", &self.breaker)
            .finish_non_exhaustive()
    }
}
