//! The retry [`Layer`].

use tower_layer::Layer;

use super::RetryService;
use rustkernel_core::error::ByClassify;

use crate::classify::OkIsSuccess;
use crate::retry::{NoHint, Retrier};

/// Wraps services in a [`RetryService`] that retries with a [`Retrier`].
///
/// Every service it builds shares the retrier's budget and seed stream. Responses that the
/// retrier's [response classifier](Retrier::classify_response) calls failures are retried as
/// errors of their kind would be.
#[derive(Clone, Debug)]
pub struct RetryLayer<H = NoHint, C = ByClassify, K = OkIsSuccess> {
    retrier: Retrier<H, C, K>,
}

impl<H, C, K> RetryLayer<H, C, K> {
    /// A layer retrying with `retrier` (its config, budget, seed, hint and classifiers).
    #[must_use]
    pub fn new(retrier: Retrier<H, C, K>) -> Self {
        Self { retrier }
    }

    /// The retrier.
    #[must_use]
    pub fn retrier(&self) -> &Retrier<H, C, K> {
        &self.retrier
    }
}

impl<H, C, K> From<Retrier<H, C, K>> for RetryLayer<H, C, K> {
    fn from(retrier: Retrier<H, C, K>) -> Self {
        Self::new(retrier)
    }
}

impl<S, H: Clone, C: Clone, K: Clone> Layer<S> for RetryLayer<H, C, K> {
    type Service = RetryService<S, H, C, K>;

    fn layer(&self, inner: S) -> Self::Service {
        RetryService::new(inner, self.retrier.clone())
    }
}
