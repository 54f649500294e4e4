//! A future that turns a panic while it is polled into a value, so a supervisor survives the
//! kernel it supervises, as an OTP supervisor survives a crashing child.

use std::any::Any;
use std::future::Future;
use std::panic::{AssertUnwindSafe, catch_unwind};
use std::pin::Pin;
use std::task::{Context, Poll};

pin_project_lite::pin_project! {
    /// Polls `inner`; a panic in its `poll` ends this future with `Err(message)`. The inner
    /// future is not polled again after it panicked (the supervisor drops it).
    pub(crate) struct CatchPanic<F> {
        #[pin]
        inner: F,
    }
}

impl<F> CatchPanic<F> {
    pub(crate) fn new(inner: F) -> Self {
        Self { inner }
    }
}

impl<F: Future> Future for CatchPanic<F> {
    type Output = Result<F::Output, String>;

    fn poll(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Self::Output> {
        let inner = self.project().inner;
        // The supervisor treats the kernel as failed after a panic and restarts (or replaces)
        // it, so state the panic left half-updated is not trusted: unwind safety is asserted.
        match catch_unwind(AssertUnwindSafe(|| inner.poll(cx))) {
            Ok(Poll::Pending) => Poll::Pending,
            Ok(Poll::Ready(output)) => Poll::Ready(Ok(output)),
            Err(payload) => Poll::Ready(Err(panic_message(payload.as_ref()))),
        }
    }
}

/// The message of a panic payload (`panic!` with a literal or a format string), or a
/// placeholder for other payloads.
fn panic_message(payload: &(dyn Any + Send)) -> String {
    if let Some(message) = payload.downcast_ref::<&str>() {
        (*message).to_owned()
    } else if let Some(message) = payload.downcast_ref::<String>() {
        message.clone()
    } else {
        "a panic with a payload that is not a string".to_owned()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn a_panic_becomes_its_message() {
        #[allow(clippy::panic, reason = "the panic under test")]
        let panics = CatchPanic::new(async { panic!("device {} lost", 3) });
        let result: Result<(), String> = panics.await;
        assert_eq!(result, Err("device 3 lost".to_owned()));
        assert_eq!(CatchPanic::new(async { 7 }).await, Ok(7));
        let payload: Box<dyn Any + Send> = Box::new(7_u8);
        assert_eq!(
            panic_message(payload.as_ref()),
            "a panic with a payload that is not a string"
        );
    }
}
