//! The guard [`Layer`].

use tower_layer::Layer;

use super::GuardService;
use crate::classify::OkIsSuccess;

/// Wraps services in a [`GuardService`] that asks a [`Guard`](super::Guard) (a circuit
/// breaker) before each call, and reports each call's outcome: an error by its kind, a response
/// as the [`ResponseClassifier`](crate::classify::ResponseClassifier) `K` says.
#[derive(Clone, Debug)]
pub struct GuardLayer<G, K = OkIsSuccess> {
    guard: G,
    responses: K,
}

impl<G> GuardLayer<G> {
    /// A layer guarding calls with `guard`; every service it builds shares it (a clone of the
    /// handle). Every response is a success until
    /// [`classify_response`](Self::classify_response) says otherwise.
    #[must_use]
    pub fn new(guard: G) -> Self {
        Self {
            guard,
            responses: OkIsSuccess,
        }
    }
}

impl<G, K> GuardLayer<G, K> {
    /// Classifies each response with `classifier`: a response it calls a failure is reported
    /// to the guard as one (and still returned as the response), an ignored one as neither.
    /// `CircuitBreakerLayer::new(cb).classify_response(HttpClassifier::new())` counts 5xx and
    /// 429 responses against the breaker.
    #[must_use]
    pub fn classify_response<L>(self, classifier: L) -> GuardLayer<G, L> {
        GuardLayer {
            guard: self.guard,
            responses: classifier,
        }
    }

    /// The guard.
    #[must_use]
    pub fn guard(&self) -> &G {
        &self.guard
    }
}

impl<S, G: Clone, K: Clone> Layer<S> for GuardLayer<G, K> {
    type Service = GuardService<S, G, K>;

    fn layer(&self, inner: S) -> Self::Service {
        GuardService::new(inner, self.guard.clone()).classify_response(self.responses.clone())
    }
}
