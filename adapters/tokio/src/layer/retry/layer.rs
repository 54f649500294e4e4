//! The retry [`Layer`].

use tower_layer::Layer;

use super::RetryService;
use rustkernel_core::error::ByClassify;

use crate::retry::{NoHint, Retrier};

/// Wraps services in a [`RetryService`] that retries with a [`Retrier`].
///
/// Every service it builds shares the retrier's budget and seed stream.
#[derive(Clone, Debug)]
pub struct RetryLayer<H = NoHint, C = ByClassify> {
    retrier: Retrier<H, C>,
}

impl<H, C> RetryLayer<H, C> {
    /// A layer retrying with `retrier` (its config, budget, seed and hint).
    #[must_use]
    pub fn new(retrier: Retrier<H, C>) -> Self {
        Self { retrier }
    }

    /// The retrier.
    #[must_use]
    pub fn retrier(&self) -> &Retrier<H, C> {
        &self.retrier
    }
}

impl<H, C> From<Retrier<H, C>> for RetryLayer<H, C> {
    fn from(retrier: Retrier<H, C>) -> Self {
        Self::new(retrier)
    }
}

impl<S, H: Clone, C: Clone> Layer<S> for RetryLayer<H, C> {
    type Service = RetryService<S, H, C>;

    fn layer(&self, inner: S) -> Self::Service {
        RetryService::new(inner, self.retrier.clone())
    }
}
