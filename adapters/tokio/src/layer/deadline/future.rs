//! The response future of [`DeadlineService`](super::DeadlineService).

use std::future::Future;
use std::pin::Pin;
use std::task::{Context, Poll};

use pin_project_lite::pin_project;
use rustkernel_core::error::{ByClassify, Classifier};
use rustkernel_core::resilience::ResilienceError;

use crate::deadline::{DeadlineContext, DeadlineFuture};

pin_project! {
    /// The future of a [`DeadlineService`](super::DeadlineService) call: the inner response,
    /// or the deadline's error once it passes.
    #[must_use = "futures do nothing unless polled"]
    #[derive(Debug)]
    pub struct ResponseFuture<F> {
        #[pin]
        inner: DeadlineFuture<F>,
    }
}

impl<F> ResponseFuture<F> {
    pub(super) fn new(inner: DeadlineFuture<F>) -> Self {
        Self { inner }
    }

    /// The deadline the call runs under.
    #[must_use]
    pub fn deadline(&self) -> DeadlineContext {
        self.inner.deadline()
    }
}

impl<F, T, R> Future for ResponseFuture<F>
where
    F: Future<Output = Result<T, R>>,
    ByClassify: Classifier<R>,
{
    type Output = Result<T, ResilienceError<<ByClassify as Classifier<R>>::Error>>;

    fn poll(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Self::Output> {
        self.project().inner.poll(cx)
    }
}
