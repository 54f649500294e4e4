//! The RAII permit of one call: settled with the call's result, or as cancelled when dropped.

use std::fmt;
use std::future::Future;

use rustkernel_core::error::{Classify, ErrorKind};
use rustkernel_core::resilience::NoWindow;
use rustkernel_core::resilience::circuit_breaker::SlidingWindow;
use rustkernel_core::time::Instant;

use super::Shared;
use super::fast::{generation_of, pack};
use super::sync::Arc;

/// How a permit was issued, which decides how much of the core its settlement needs.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
#[repr(u8)]
pub(crate) enum Issued {
    /// Closed or disabled: admitted without the core (or by it, in such a state).
    Freely = 0,
    /// Half-open: a probe slot the core must get back.
    Probe = 1,
}

/// A permit's cycle (generation) and how it was issued, packed in one word: the permit is
/// written and moved as whole words, so the call future never stalls re-reading a word that was
/// stored in parts.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) struct Ticket(u64);

impl Ticket {
    #[inline]
    pub(crate) const fn new(generation: u32, issued: Issued) -> Self {
        // A widening cast: a `repr(u8)` tag as u64.
        Self(pack(generation, issued as u64))
    }

    #[inline]
    pub(crate) const fn generation(self) -> u32 {
        generation_of(self.0)
    }

    #[inline]
    pub(crate) const fn issued(self) -> Issued {
        if self.0 & 0xff == Issued::Probe as u64 {
            Issued::Probe
        } else {
            Issued::Freely
        }
    }
}

/// Leave to make one call through a [`CircuitBreaker`](super::CircuitBreaker), from
/// [`try_acquire`](super::CircuitBreaker::try_acquire).
///
/// Settle it with [`success`](Self::success), [`failure`](Self::failure) or
/// [`cancel`](Self::cancel), or let [`run`](Self::run) do it from a future's result. A permit
/// dropped unsettled (the call's future was dropped, the call panicked) settles itself, so a
/// half-open probe slot can never leak:
/// - as a **timeout** failure when the task's [current deadline](crate::deadline::current_deadline)
///   has passed: a deadline cut the call (a [`DeadlineContext::execute`](crate::deadline::DeadlineContext::execute),
///   a [`DeadlineLayer`](crate::layer::DeadlineLayer) or a pipeline's total deadline, wherever it
///   sits around the breaker: each drops the call inside its deadline's scope);
/// - as **cancelled** otherwise (no deadline in scope, or one with time left: the caller went
///   away): nothing is counted and a probe slot is given back.
#[must_use = "a dropped permit counts as a cancelled call"]
pub struct CallPermit<'a, W: SlidingWindow = NoWindow> {
    shared: &'a Shared<W>,
    /// The start of the call, read only when slow-call detection is on.
    acquired_at: Instant,
    /// The cycle and the way it was issued. The core's permit is rebuilt from the cycle and
    /// `acquired_at` when the core settles it (it holds nothing else the core reads).
    ticket: Ticket,
}

impl<'a, W: SlidingWindow> CallPermit<'a, W> {
    #[inline]
    pub(crate) fn new(shared: &'a Shared<W>, ticket: Ticket, acquired_at: Instant) -> Self {
        Self {
            shared,
            acquired_at,
            ticket,
        }
    }

    /// Takes the permit apart without running its `Drop` (which would settle it as cancelled).
    #[inline]
    fn settle(self) -> (&'a Shared<W>, Ticket, Instant) {
        let parts = (self.shared, self.ticket, self.acquired_at);
        // Nothing to free: the permit only borrows the breaker.
        std::mem::forget(self);
        parts
    }

    /// Whether this call is a half-open probe (it holds one of `half_open_max_calls` slots).
    #[must_use]
    pub fn is_probe(&self) -> bool {
        self.ticket.issued() == Issued::Probe
    }

    /// The breaker cycle (generation) the permit belongs to; it changes on every transition.
    #[must_use]
    pub fn generation(&self) -> u32 {
        self.ticket.generation()
    }

    /// Reports that the call succeeded.
    ///
    /// In the closed state, while a success cannot change the state (no failure streak running,
    /// a window that cannot open on a success), this is one atomic load and an add to this
    /// thread's counter stripe (and a clock read with slow calls or a window by time); otherwise
    /// it takes the lock.
    #[inline]
    pub fn success(self) {
        let (shared, ticket, acquired_at) = self.settle();
        shared.settle_success(ticket, acquired_at);
    }

    /// Reports that the call failed with an error of `kind`; kinds in the configuration's
    /// `ignored_errors` count as neither success nor failure.
    pub fn failure(self, kind: ErrorKind) {
        let (shared, ticket, acquired_at) = self.settle();
        shared.settle_failure(ticket, acquired_at, kind);
    }

    /// Settles the call as cancelled whatever the deadline: nothing is counted, a half-open
    /// probe slot is given back (for a response that says nothing about the callee's health,
    /// [`Verdict::Ignore`](crate::classify::Verdict::Ignore)).
    pub fn cancel(self) {
        let (shared, ticket, acquired_at) = self.settle();
        if ticket.issued() == Issued::Probe {
            shared.cancel_probe(ticket, acquired_at);
        }
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

impl<W: SlidingWindow> CallPermit<'_, W> {
    /// The same permit holding its own handle on the breaker, so it can outlive the borrow
    /// (stored in a `'static` future, such as a tower response future).
    pub(crate) fn into_owned(self, shared: Arc<Shared<W>>) -> OwnedCallPermit<W> {
        let (_, ticket, acquired_at) = self.settle();
        OwnedCallPermit {
            shared: Some(shared),
            acquired_at,
            ticket,
        }
    }
}

/// A [`CallPermit`] that owns a handle on its breaker (from
/// [`try_acquire_owned`](super::CircuitBreaker::try_acquire_owned)), for futures that must be
/// `'static`. Settles the same way; dropped unsettled, it is a timeout when the current deadline
/// has passed and cancelled otherwise, as a [`CallPermit`].
#[must_use = "a dropped permit counts as a cancelled call"]
pub struct OwnedCallPermit<W: SlidingWindow = NoWindow> {
    /// `None` once settled.
    shared: Option<Arc<Shared<W>>>,
    acquired_at: Instant,
    ticket: Ticket,
}

impl<W: SlidingWindow> OwnedCallPermit<W> {
    /// Takes the handle out, so `Drop` finds nothing to cancel.
    fn settle(mut self) -> Option<(Arc<Shared<W>>, Ticket, Instant)> {
        let shared = self.shared.take()?;
        Some((shared, self.ticket, self.acquired_at))
    }

    /// Whether this call is a half-open probe.
    #[must_use]
    pub fn is_probe(&self) -> bool {
        self.ticket.issued() == Issued::Probe
    }

    /// Reports that the call succeeded.
    pub fn success(self) {
        if let Some((shared, ticket, acquired_at)) = self.settle() {
            shared.settle_success(ticket, acquired_at);
        }
    }

    /// Reports that the call failed with an error of `kind`.
    pub fn failure(self, kind: ErrorKind) {
        if let Some((shared, ticket, acquired_at)) = self.settle() {
            shared.settle_failure(ticket, acquired_at, kind);
        }
    }

    /// Settles the call as cancelled whatever the deadline (see [`CallPermit::cancel`]).
    pub fn cancel(self) {
        if let Some((shared, ticket, acquired_at)) = self.settle()
            && ticket.issued() == Issued::Probe
        {
            shared.cancel_probe(ticket, acquired_at);
        }
    }
}

impl<W: SlidingWindow> Drop for OwnedCallPermit<W> {
    fn drop(&mut self) {
        if let Some(shared) = &self.shared {
            shared.settle_dropped(self.ticket, self.acquired_at);
        }
    }
}

impl<W: SlidingWindow> fmt::Debug for OwnedCallPermit<W> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("OwnedCallPermit")
            .field("generation", &self.ticket.generation())
            .field("issued", &self.ticket.issued())
            .finish_non_exhaustive()
    }
}

impl<W: SlidingWindow> Drop for CallPermit<'_, W> {
    #[inline]
    fn drop(&mut self) {
        // Unsettled (`success`, `failure` and `cancel` skip this).
        self.shared.settle_dropped(self.ticket, self.acquired_at);
    }
}

impl<W: SlidingWindow> fmt::Debug for CallPermit<'_, W> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("CallPermit")
            .field("generation", &self.ticket.generation())
            .field("issued", &self.ticket.issued())
            .finish_non_exhaustive()
    }
}

#[cfg(all(test, not(loom)))]
mod tests {
    use super::*;

    #[test]
    fn tickets_round_trip() {
        for generation in [0, 1, u32::MAX] {
            for issued in [Issued::Freely, Issued::Probe] {
                let ticket = Ticket::new(generation, issued);
                assert_eq!((ticket.generation(), ticket.issued()), (generation, issued));
            }
        }
    }
}
