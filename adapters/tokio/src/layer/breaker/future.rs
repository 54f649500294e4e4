//! The response future of [`GuardService`](super::GuardService).

use std::fmt;
use std::future::Future;
use std::marker::PhantomData;
use std::pin::Pin;
use std::task::{Context, Poll, ready};

use pin_project_lite::pin_project;
use rustkernel_core::error::{ByClassify, Classifier};
use rustkernel_core::resilience::ResilienceError;

use super::Guard;
use crate::classify::{OkIsSuccess, ResponseClassifier, Verdict};

pin_project! {
    /// The future of a [`GuardService`](super::GuardService) call: runs the admitted call and
    /// hands its permit back with the outcome (a response classified by `K`).
    #[must_use = "futures do nothing unless polled"]
    pub struct ResponseFuture<F, G, K = OkIsSuccess>
    where
        G: Guard,
    {
        permit: Option<G::Permit>,
        guard: PhantomData<fn() -> G>,
        responses: K,
        #[pin]
        state: State<F>,
    }
}

pin_project! {
    #[project = StateProj]
    enum State<F> {
        Admitted {
            #[pin]
            future: F,
        },
        Rejected,
        Done,
    }
}

impl<F, G: Guard, K> ResponseFuture<F, G, K> {
    pub(crate) fn admitted(future: F, permit: G::Permit, responses: K) -> Self {
        Self {
            permit: Some(permit),
            guard: PhantomData,
            responses,
            state: State::Admitted { future },
        }
    }

    pub(super) fn rejected(responses: K) -> Self {
        Self {
            permit: None,
            guard: PhantomData,
            responses,
            state: State::Rejected,
        }
    }
}

impl<F, G, K, T, R> Future for ResponseFuture<F, G, K>
where
    F: Future<Output = Result<T, R>>,
    ByClassify: Classifier<R>,
    G: Guard,
    K: ResponseClassifier<T>,
{
    type Output = Result<T, ResilienceError<<ByClassify as Classifier<R>>::Error>>;

    fn poll(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Self::Output> {
        let mut this = self.project();
        let output = match this.state.as_mut().project() {
            StateProj::Admitted { future } => {
                let result = ready!(future.poll(cx)).map_err(|error| ByClassify.flatten(error));
                if let Some(permit) = this.permit.take() {
                    match &result {
                        Ok(response) => match this.responses.classify_response(response) {
                            Verdict::Success => G::on_success(permit),
                            Verdict::Failure(kind) => G::on_failure(permit, kind),
                            Verdict::Ignore => G::on_ignored(permit),
                        },
                        Err(error) => G::on_failure(permit, ByClassify.kind_of(error)),
                    }
                }
                result
            }
            StateProj::Rejected => Err(ResilienceError::CircuitOpen),
            // Polled after completion: there is nothing left to return.
            StateProj::Done => return Poll::Pending,
        };
        this.state.set(State::Done);
        Poll::Ready(output)
    }
}

impl<F, G: Guard, K> fmt::Debug for ResponseFuture<F, G, K> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("ResponseFuture")
            .field("admitted", &self.permit.is_some())
            .finish_non_exhaustive()
    }
}
