//! The RAII permit of one call: settled with the call's result, or as cancelled when dropped.

use std::fmt;
use std::future::Future;

use rustkernel_core::error::{Classify, ErrorKind};
use rustkernel_core::resilience::circuit_breaker::SlidingWindow;
use rustkernel_core::resilience::{NoWindow, Permit};

use super::Shared;

/// How a permit was issued, which decides how much of the core its settlement needs.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum Issued {
    /// Closed or disabled: admitted without the core (or by it, in such a state).
    Freely,
    /// Half-open: a probe slot the core must get back.
    Probe,
}

/// Leave to make one call through a [`CircuitBreaker`](super::CircuitBreaker), from
/// [`try_acquire`](super::CircuitBreaker::try_acquire).
///
/// Settle it with [`success`](Self::success) or [`failure`](Self::failure), or let
/// [`run`](Self::run) do it from a future's result. A permit dropped unsettled (the call's
/// future was dropped, the call panicked) is settled as cancelled: nothing is counted and a
/// half-open probe slot is given back, so a slot can never leak.
#[must_use = "a dropped permit counts as a cancelled call"]
pub struct CallPermit<'a, W: SlidingWindow = NoWindow> {
    shared: &'a Shared<W>,
    permit: Permit,
    issued: Issued,
    settled: bool,
}

impl<'a, W: SlidingWindow> CallPermit<'a, W> {
    pub(crate) fn new(shared: &'a Shared<W>, permit: Permit, issued: Issued) -> Self {
        Self {
            shared,
            permit,
            issued,
            settled: false,
        }
    }

    /// Whether this call is a half-open probe (it holds one of `half_open_max_calls` slots).
    #[must_use]
    pub fn is_probe(&self) -> bool {
        self.issued == Issued::Probe
    }

    /// The breaker cycle (generation) the permit belongs to; it changes on every transition.
    #[must_use]
    pub fn generation(&self) -> u32 {
        self.permit.generation()
    }

    /// Reports that the call succeeded.
    ///
    /// In the closed state of a consecutive-failure breaker with no failure streak running this
    /// is one atomic load and an add to this thread's counter stripe; otherwise it takes the lock.
    #[inline]
    pub fn success(mut self) {
        self.settled = true;
        self.shared.settle_success(self.permit, self.issued);
    }

    /// Reports that the call failed with an error of `kind`; kinds in the configuration's
    /// `ignored_errors` count as neither success nor failure.
    pub fn failure(mut self, kind: ErrorKind) {
        self.settled = true;
        self.shared.settle_failure(self.permit, self.issued, kind);
    }

    /// Awaits `future` and settles the permit with its result, classifying an error with
    /// [`Classify`]; the result is handed back unchanged. Dropping the returned future before it
    /// finishes settles the permit as cancelled.
    pub async fn run<Fut, T, E>(self, future: Fut) -> Result<T, E>
    where
        Fut: Future<Output = Result<T, E>>,
        E: Classify,
    {
        match future.await {
            Ok(value) => {
                self.success();
                Ok(value)
            }
            Err(error) => {
                self.failure(error.kind());
                Err(error)
            }
        }
    }
}

impl<W: SlidingWindow> Drop for CallPermit<'_, W> {
    fn drop(&mut self) {
        if !self.settled {
            self.shared.settle_cancelled(self.permit, self.issued);
        }
    }
}

impl<W: SlidingWindow> fmt::Debug for CallPermit<'_, W> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("CallPermit")
            .field("generation", &self.permit.generation())
            .field("probe", &(self.issued == Issued::Probe))
            .finish_non_exhaustive()
    }
}
