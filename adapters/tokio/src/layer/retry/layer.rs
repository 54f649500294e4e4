//! The retry [`Layer`].

use tower_layer::Layer;

use super::RetryService;
use crate::retry::{NoHint, Retrier};

/// Wraps services in a [`RetryService`] that retries with a [`Retrier`].
///
/// Every service it builds shares the retrier's budget and seed stream.
#[derive(Clone, Debug)]
pub struct RetryLayer<H = NoHint> {
    retrier: Retrier<H>,
}

impl<H> RetryLayer<H> {
    /// A layer retrying with `retrier` (its config, budget, seed and hint).
    #[must_use]
    pub fn new(retrier: Retrier<H>) -> Self {
        Self { retrier }
    }

    /// The retrier.
    #[must_use]
    pub fn retrier(&self) -> &Retrier<H> {
        &self.retrier
    }
}

impl<H> From<Retrier<H>> for RetryLayer<H> {
    fn from(retrier: Retrier<H>) -> Self {
        Self::new(retrier)
    }
}

impl<S, H: Clone> Layer<S> for RetryLayer<H> {
    type Service = RetryService<S, H>;

    fn layer(&self, inner: S) -> Self::Service {
        RetryService::new(inner, self.retrier.clone())
    }
}
