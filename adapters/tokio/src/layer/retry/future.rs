//! The response future of [`RetryService`](super::RetryService).

use std::fmt;
use std::future::Future;
use std::pin::Pin;
use std::task::{Context, Poll, ready};

use pin_project_lite::pin_project;
use rustkernel_core::error::Classifier;
use rustkernel_core::resilience::{ResilienceError, Retry, RetryDecision};
use tokio::time::Sleep;
use tower_service::Service;

use crate::classify::{OkIsSuccess, ResponseClassifier, Verdict};
use crate::clock;
use crate::retry::{Retrier, RetryAfterHint};

pin_project! {
    /// The future of a [`RetryService`](super::RetryService) call: attempts, waits, retries.
    #[must_use = "futures do nothing unless polled"]
    pub struct ResponseFuture<S, Req, H, C, K = OkIsSuccess>
    where
        S: Service<Req>,
    {
        request: Req,
        service: S,
        retrier: Retrier<H, C, K>,
        retry: Option<Retry>,
        #[pin]
        state: State<S::Future>,
    }
}

pin_project! {
    #[project = StateProj]
    enum State<F> {
        // An attempt is running.
        Called {
            #[pin]
            future: F,
        },
        // Waiting for the next attempt's instant.
        Sleeping {
            #[pin]
            sleep: Sleep,
        },
        // Waiting for the service to be ready for the next attempt.
        Ready,
        // The deadline had passed before the first attempt.
        Expired,
        Done,
    }
}

impl<S, Req, H, C, K> ResponseFuture<S, Req, H, C, K>
where
    S: Service<Req>,
{
    pub(super) fn called(
        request: Req,
        service: S,
        retrier: Retrier<H, C, K>,
        retry: Retry,
        future: S::Future,
    ) -> Self {
        Self {
            request,
            service,
            retrier,
            retry: Some(retry),
            state: State::Called { future },
        }
    }

    pub(super) fn expired(request: Req, service: S, retrier: Retrier<H, C, K>) -> Self {
        Self {
            request,
            service,
            retrier,
            retry: None,
            state: State::Expired,
        }
    }
}

impl<S, Req, H, C, K> Future for ResponseFuture<S, Req, H, C, K>
where
    S: Service<Req>,
    C: Classifier<S::Error>,
    Req: Clone,
    H: RetryAfterHint<C::Error>,
    K: ResponseClassifier<S::Response>,
{
    type Output = Result<S::Response, ResilienceError<C::Error>>;

    fn poll(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Self::Output> {
        let mut this = self.project();
        loop {
            let error = match this.state.as_mut().project() {
                StateProj::Called { future } => match ready!(future.poll(cx)) {
                    Ok(response) => {
                        let responses = this.retrier.responses();
                        let kind = match responses.classify_response(&response) {
                            Verdict::Success | Verdict::Ignore => None,
                            Verdict::Failure(kind) => Some(kind),
                        };
                        // A failing response is retried as an error of its kind; when retry
                        // gives up (or there is no state machine), it is the response.
                        let retry_at = match (kind, this.retry.as_mut()) {
                            (Some(kind), Some(retry)) => {
                                let hint = responses.retry_after(&response);
                                match this.retrier.decide(retry, kind, hint) {
                                    RetryDecision::RetryAt(at) => Some(at),
                                    RetryDecision::GiveUp(_) => None,
                                }
                            }
                            _ => None,
                        };
                        match retry_at {
                            Some(at) => {
                                this.state.set(State::Sleeping {
                                    sleep: tokio::time::sleep_until(clock::to_tokio(at)),
                                });
                                continue;
                            }
                            None => {
                                this.state.set(State::Done);
                                return Poll::Ready(Ok(response));
                            }
                        }
                    }
                    Err(error) => error,
                },
                StateProj::Sleeping { sleep } => {
                    ready!(sleep.poll(cx));
                    this.state.set(State::Ready);
                    continue;
                }
                StateProj::Ready => match ready!(this.service.poll_ready(cx)) {
                    Ok(()) => {
                        let future = this.service.call(this.request.clone());
                        this.state.set(State::Called { future });
                        continue;
                    }
                    Err(error) => error,
                },
                StateProj::Expired => {
                    this.state.set(State::Done);
                    return Poll::Ready(Err(ResilienceError::DeadlineExceeded));
                }
                // Polled after completion: there is nothing left to return.
                StateProj::Done => return Poll::Pending,
            };
            let error = this.retrier.classifier().flatten(error);
            // Only an expired call has no state machine, and it makes no attempt.
            let Some(retry) = this.retry.as_mut() else {
                this.state.set(State::Done);
                return Poll::Ready(Err(error));
            };
            match this.retrier.on_failure::<S::Error>(retry, &error) {
                RetryDecision::RetryAt(at) => this.state.set(State::Sleeping {
                    sleep: tokio::time::sleep_until(clock::to_tokio(at)),
                }),
                RetryDecision::GiveUp(_) => {
                    this.state.set(State::Done);
                    return Poll::Ready(Err(error));
                }
            }
        }
    }
}

impl<S, Req, H, C, K> fmt::Debug for ResponseFuture<S, Req, H, C, K>
where
    S: Service<Req>,
{
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("ResponseFuture")
            .field("retry", &self.retry)
            .finish_non_exhaustive()
    }
}
