//! A breaker handle with classifiers: a closure for errors whose type is not `Classify`, a
//! [`ResponseClassifier`] for responses that can be failures.

use std::fmt;
use std::future::Future;

use rustkernel_core::error::{ByClassify, Classifier, ErrorKind};
use rustkernel_core::resilience::ResilienceError;

use super::{CircuitBreaker, SlidingWindow};
use crate::classify::{OkIsSuccess, ResponseClassifier};

/// A [`CircuitBreaker`] handle that classifies errors with `C` and responses with `K`, from
/// [`CircuitBreaker::classify_with`] or [`CircuitBreaker::classify_response`]. It shares the
/// breaker's state with every other handle.
#[derive(Clone)]
pub struct Classified<W: SlidingWindow, C = ByClassify, K = OkIsSuccess> {
    pub(super) breaker: CircuitBreaker<W>,
    pub(super) classifier: C,
    pub(super) responses: K,
}

impl<W: SlidingWindow, C, K> Classified<W, C, K> {
    /// As [`CircuitBreaker::call`], the error's kind given by `C` (the error comes back
    /// unchanged as `Operation(e)`), and a response counted as `K` says: a response classified
    /// as a failure is a failure for the breaker and still comes back as `Ok`.
    pub async fn call<F, Fut, T, R>(&self, operation: F) -> Result<T, ResilienceError<C::Error>>
    where
        C: Classifier<R>,
        K: ResponseClassifier<T>,
        F: FnOnce() -> Fut,
        Fut: Future<Output = Result<T, R>>,
    {
        self.breaker
            .call_classified(&self.classifier, &self.responses, operation)
            .await
    }

    /// This handle with a closure classifier for errors (see [`CircuitBreaker::classify_with`]).
    pub fn classify_with<E, G: Fn(&E) -> ErrorKind>(self, classify: G) -> Classified<W, G, K> {
        Classified {
            breaker: self.breaker,
            classifier: classify,
            responses: self.responses,
        }
    }

    /// This handle with a response classifier (see [`CircuitBreaker::classify_response`]).
    pub fn classify_response<L>(self, classifier: L) -> Classified<W, C, L> {
        Classified {
            breaker: self.breaker,
            classifier: self.classifier,
            responses: classifier,
        }
    }

    /// The breaker.
    #[must_use]
    pub fn breaker(&self) -> &CircuitBreaker<W> {
        &self.breaker
    }
}

impl<W: SlidingWindow, C, K> fmt::Debug for Classified<W, C, K> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Classified")
            .field("breaker", &self.breaker)
            .finish_non_exhaustive()
    }
}
