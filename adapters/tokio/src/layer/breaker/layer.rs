//! The guard [`Layer`].

use tower_layer::Layer;

use super::GuardService;

/// Wraps services in a [`GuardService`] that asks a [`Guard`](super::Guard) (a circuit
/// breaker) before each call.
#[derive(Clone, Debug)]
pub struct GuardLayer<G> {
    guard: G,
}

impl<G> GuardLayer<G> {
    /// A layer guarding calls with `guard`; every service it builds shares it (a clone of the
    /// handle).
    #[must_use]
    pub fn new(guard: G) -> Self {
        Self { guard }
    }

    /// The guard.
    #[must_use]
    pub fn guard(&self) -> &G {
        &self.guard
    }
}

impl<S, G: Clone> Layer<S> for GuardLayer<G> {
    type Service = GuardService<S, G>;

    fn layer(&self, inner: S) -> Self::Service {
        GuardService::new(inner, self.guard.clone())
    }
}
