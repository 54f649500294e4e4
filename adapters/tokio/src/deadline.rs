//! Deadlines on tokio: the chapter's [`DeadlineContext`], read from tokio's clock, and the
//! task-local *current deadline* that nested calls inherit.
//!
//! A deadline is an absolute instant by which a call, and everything it calls, must finish.
//! [`DeadlineContext::execute`] runs a future under a deadline: it makes the deadline the task's
//! current one for the future's whole life, so anything the future calls (a nested `execute`,
//! [`Retrier::execute`](crate::retry::Retrier::execute), a [`DeadlineLayer`](crate::layer::DeadlineLayer))
//! sees it through [`current_deadline`], and it returns [`ResilienceError::DeadlineExceeded`] the
//! moment the deadline passes, dropping the future. A child never outlives its parent:
//! [`DeadlineContext::new`], [`DeadlineContext::child_with_timeout`] and `execute` all take the
//! earlier of their own deadline and the current one.
//!
//! CPU-bound work cannot be interrupted by dropping a future, so
//! [`DeadlineContext::execute_blocking`] runs it on tokio's blocking pool, returns on time
//! anyway, and raises a [`CancelFlag`] that the work polls to stop early; work still queued
//! for the pool when its deadline passes is skipped, never started late.
//!
//! A [`TimeoutConfig`] turns a request into a deadline with [`TimeoutExt::resolve_deadline`]
//! (the core's [`TimeoutConfig::resolve`]: requested or default timeout, cut to the maximum,
//! counted from the enqueue instant when `include_queue_time`, capped by the current deadline
//! when `propagate_deadline`); the [`ResolvedDeadline`] it returns runs the call and reports
//! [`ResilienceError::Timeout`] when the call's own timeout ran out and
//! [`ResilienceError::DeadlineExceeded`] when its caller's deadline did, or when the deadline
//! had passed before the call started. Which error a passed deadline gives is the core's rule
//! ([`rustkernel_core::resilience::ResolvedDeadline`]), the same on the embassy adapter.
//!
//! Everything reads [`tokio::time::Instant::now`], so tests run on tokio's paused clock. Futures
//! that wait (`execute`, `execute_blocking`) must be polled inside a tokio runtime with time
//! enabled, as [`tokio::time::sleep`] must.
//!
//! ```
//! use std::time::Duration;
//! use rustkernel_tokio::resilience::{DeadlineContext, ResilienceError, current_deadline};
//!
//! # #[tokio::main(flavor = "current_thread", start_paused = true)]
//! # async fn main() {
//! let deadline = DeadlineContext::new(Duration::from_secs(1));
//! let result = deadline
//!     .execute(|| async {
//!         // Nested calls see the deadline, and cannot extend it.
//!         assert_eq!(current_deadline(), Some(deadline));
//!         let child = DeadlineContext::new(Duration::from_secs(60));
//!         assert_eq!(child, deadline);
//!         tokio::time::sleep(Duration::from_secs(5)).await;
//!         Ok::<_, std::io::Error>("too late")
//!     })
//!     .await;
//! assert!(matches!(result, Err(ResilienceError::DeadlineExceeded)));
//! # }
//! ```

use std::cell::Cell;
use std::convert::Infallible;
use std::fmt;
use std::future::Future;
use std::pin::Pin;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::task::{Context, Poll};
use std::time::Duration;

use pin_project_lite::pin_project;
use rustkernel_core::error::{ByClassify, Classifier};
use rustkernel_core::resilience::{
    DeadlineBound, DeadlineContext as CoreDeadline, DeadlineExceeded, ResilienceError,
    ResolvedDeadline as CoreResolved, TimeoutConfig, WireDeadline,
};
use tokio::time::Sleep;

use crate::clock;

thread_local! {
    /// The deadline of the future being polled on this thread, if it runs under one: set by a
    /// [`DeadlineScope`] (and [`with_current`]) for one poll or drop at a time and put back
    /// after, as tokio's task-locals are, so it follows the task from thread to thread. A `Cell`
    /// of a `Copy` value: reading and swapping it cost a few loads and stores, with no borrow
    /// flag and nothing to destroy.
    static CURRENT: Cell<Option<DeadlineContext>> = const { Cell::new(None) };
}

/// Runs `f` with `deadline` as the current deadline, then puts back the one before (also when
/// `f` panics).
#[inline]
fn with_current<R>(deadline: DeadlineContext, f: impl FnOnce() -> R) -> R {
    struct Restore(Option<DeadlineContext>);
    impl Drop for Restore {
        #[inline]
        fn drop(&mut self) {
            CURRENT.with(|current| current.set(self.0));
        }
    }
    let _restore = Restore(CURRENT.with(|current| current.replace(Some(deadline))));
    f()
}

/// The deadline the current task runs under, if it runs under one.
///
/// Set for the whole life of a future run by [`DeadlineContext::execute`] (or
/// [`scope`](DeadlineContext::scope), [`ResolvedDeadline::execute`], the
/// [`DeadlineLayer`](crate::layer::DeadlineLayer)), and `None` elsewhere, including on
/// blocking threads and in tasks spawned from such a future.
#[must_use]
pub fn current_deadline() -> Option<DeadlineContext> {
    CURRENT.with(Cell::get)
}

/// An absolute deadline on tokio's clock: the chapter's `DeadlineContext`.
///
/// A `Copy` wrapper of the core's [`DeadlineContext`](CoreDeadline) whose methods read
/// [`tokio::time::Instant::now`] instead of taking `now`. Ordering compares the instants:
/// the lesser of two contexts is the earlier, stricter one.
///
/// Method families: constructors ([`new`](Self::new), [`detached`](Self::detached),
/// [`at`](Self::at), [`child_with_timeout`](Self::child_with_timeout),
/// [`from_wire`](Self::from_wire)); queries ([`remaining`](Self::remaining),
/// [`is_expired`](Self::is_expired), [`check`](Self::check), [`to_wire`](Self::to_wire),
/// [`deadline`](Self::deadline)); runners ([`execute`](Self::execute),
/// [`execute_blocking`](Self::execute_blocking), [`scope`](Self::scope)).
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct DeadlineContext {
    inner: CoreDeadline,
}

impl DeadlineContext {
    /// A deadline `timeout` from now, but never later than the [current
    /// deadline](current_deadline): inside a call with 500 ms left, `new(10 s)` has 500 ms.
    ///
    /// Use [`detached`](Self::detached) for a deadline that ignores the current one.
    #[must_use]
    pub fn new(timeout: Duration) -> Self {
        Self::detached(timeout).capped_by_current()
    }

    /// A deadline `timeout` from now, whatever the current deadline (for work that outlives
    /// its caller, such as a background refresh). `Duration::MAX` means "never".
    #[must_use]
    pub fn detached(timeout: Duration) -> Self {
        Self::from_core(CoreDeadline::new(clock::now(), timeout))
    }

    /// A deadline at the given tokio instant, rounded down to a whole microsecond.
    #[must_use]
    pub fn at(deadline: tokio::time::Instant) -> Self {
        Self::from_core(CoreDeadline::at(clock::to_core(deadline)))
    }

    /// The runtime form of a core deadline (an instant on [`clock`]'s epoch).
    #[must_use]
    pub const fn from_core(inner: CoreDeadline) -> Self {
        Self { inner }
    }

    /// The core deadline, for the sans-IO state machines.
    #[must_use]
    pub const fn as_core(self) -> CoreDeadline {
        self.inner
    }

    /// The instant the deadline expires, on tokio's clock.
    #[must_use]
    pub fn deadline(self) -> tokio::time::Instant {
        clock::to_tokio(self.inner.deadline())
    }

    /// Time left; zero once the deadline has been reached.
    #[must_use]
    pub fn remaining(self) -> Duration {
        self.inner.remaining(clock::now())
    }

    /// Whether the deadline has been reached.
    #[must_use]
    pub fn is_expired(self) -> bool {
        self.inner.is_expired(clock::now())
    }

    /// `Ok(())` while time remains.
    ///
    /// # Errors
    /// [`DeadlineExceeded`] once the deadline has been reached.
    pub fn check(self) -> Result<(), DeadlineExceeded> {
        self.inner.check(clock::now())
    }

    /// A deadline for a downstream call: `timeout` from now, never later than this one
    /// (nor than the current deadline).
    #[must_use]
    pub fn child_with_timeout(self, timeout: Duration) -> Self {
        Self::from_core(self.inner.child_with_timeout(clock::now(), timeout)).capped_by_current()
    }

    /// The deadline as it crosses the wire: the time that remains now (see the core's
    /// [`WireDeadline`]).
    #[must_use]
    pub fn to_wire(self) -> WireDeadline {
        self.inner.to_wire(clock::now()).into()
    }

    /// A deadline received from the wire (a [`WireDeadline`] or the remaining [`Duration`]),
    /// counted from now on this machine's clock. Not capped by the current deadline.
    #[must_use]
    pub fn from_wire(wire: impl Into<WireDeadline>) -> Self {
        Self::from_core(CoreDeadline::from_wire(
            wire.into().remaining(),
            clock::now(),
        ))
    }

    /// The earlier of this deadline and the current one.
    fn capped_by_current(self) -> Self {
        match current_deadline() {
            Some(current) if current < self => current,
            _ => self,
        }
    }

    /// Runs the future that `f` returns under this deadline (capped by the current one).
    ///
    /// The deadline is the task's [current deadline](current_deadline) while `f` runs and
    /// while its future is polled. Returns the future's own result, its error as
    /// [`ResilienceError::Operation`], or [`ResilienceError::DeadlineExceeded`] as soon as the
    /// deadline passes (the future is then dropped). When the deadline has already passed, `f`
    /// is not called. A result and the deadline arriving together count as the result.
    ///
    /// The operation's error is flattened: when it is itself a guarded call's
    /// [`ResilienceError`], its variants come back one level up (a breaker's `CircuitOpen` stays
    /// `CircuitOpen`), never nested in `Operation(..)`. Its type must be
    /// [`Classify`](rustkernel_core::error::Classify); for another crate's error type use
    /// [`execute_classified`](Self::execute_classified).
    pub fn execute<F, Fut, T, R>(self, f: F) -> DeadlineFuture<Fut>
    where
        F: FnOnce() -> Fut,
        Fut: Future<Output = Result<T, R>>,
        ByClassify: Classifier<R>,
    {
        DeadlineFuture::start(
            self.capped_by_current(),
            DeadlineBound::Parent,
            ByClassify,
            f,
        )
    }

    /// As [`execute`](Self::execute), for an operation whose error is not
    /// [`Classify`](rustkernel_core::error::Classify): `classifier` is a closure
    /// `|e: &E| ErrorKind::..` (or any [`Classifier`]); the error comes back as `Operation(e)`.
    pub fn execute_classified<F, Fut, T, R, C>(self, classifier: C, f: F) -> DeadlineFuture<Fut, C>
    where
        F: FnOnce() -> Fut,
        Fut: Future<Output = Result<T, R>>,
        C: Classifier<R>,
    {
        DeadlineFuture::start(
            self.capped_by_current(),
            DeadlineBound::Parent,
            classifier,
            f,
        )
    }

    /// Runs CPU-bound `work` on tokio's blocking pool under this deadline (capped by the
    /// current one), returning on time even while the work runs on.
    ///
    /// `work` gets a [`CancelFlag`] that is raised when the deadline passes (or when this
    /// future is dropped before the work finished); it should poll the flag and stop early.
    /// Returns the work's result, its error as [`ResilienceError::Operation`], or
    /// [`ResilienceError::DeadlineExceeded`]. Work that has not started by its deadline never
    /// starts: neither when the deadline has already passed, nor when the work waited in the
    /// blocking pool's queue (every thread busy) until after it; it is then skipped, as it is
    /// when this future was dropped before the work started. A panic in `work` resumes on the
    /// caller. If the runtime shuts down before
    /// the work started, the result is [`ResilienceError::Timeout`].
    ///
    /// On a paused clock, note that tokio does not auto-advance time while blocking work runs:
    /// advance it by hand (`tokio::time::advance`).
    pub async fn execute_blocking<F, T, E>(self, work: F) -> Result<T, ResilienceError<E>>
    where
        F: FnOnce(CancelFlag) -> Result<T, E> + Send + 'static,
        T: Send + 'static,
        E: Send + 'static,
    {
        run_blocking(CoreResolved::parent(self.capped_by_current().inner), work).await
    }

    /// Makes this deadline (capped by the current one) the current deadline while `future`
    /// runs, without enforcing it: nested calls see it and size their own deadlines and
    /// retries by it. Use [`execute`](Self::execute) to also stop the future at the deadline.
    pub fn scope<F: Future>(self, future: F) -> DeadlineScope<F> {
        DeadlineScope::new(self.capped_by_current(), future)
    }
}

impl From<CoreDeadline> for DeadlineContext {
    fn from(inner: CoreDeadline) -> Self {
        Self::from_core(inner)
    }
}

impl From<DeadlineContext> for CoreDeadline {
    fn from(deadline: DeadlineContext) -> Self {
        deadline.inner
    }
}

/// A cancellation flag shared between a deadline and the blocking work it runs.
///
/// Cheap to clone (one `Arc`); every clone sees the same flag.
#[derive(Clone, Debug, Default)]
pub struct CancelFlag {
    cancelled: Arc<AtomicBool>,
}

impl CancelFlag {
    /// A flag not raised yet.
    #[must_use]
    pub fn new() -> Self {
        Self::default()
    }

    /// Whether the work should stop: the deadline has passed or the caller gave up.
    #[must_use]
    pub fn is_cancelled(&self) -> bool {
        self.cancelled.load(Ordering::Acquire)
    }

    /// Raises the flag (idempotent).
    pub fn cancel(&self) {
        self.cancelled.store(true, Ordering::Release);
    }
}

/// A deadline's error (which carries no operation error) as the error of any operation.
pub(crate) fn widen<E>(error: ResilienceError<Infallible>) -> ResilienceError<E> {
    error.map_operation(|never| match never {})
}

pin_project! {
    /// The future of [`DeadlineContext::scope`]: `future`, with the deadline current while it is
    /// polled and while it is dropped (so a breaker permit dropped inside it reads it).
    #[must_use = "futures do nothing unless polled"]
    pub struct DeadlineScope<F> {
        deadline: DeadlineContext,
        // `None` only while being dropped.
        #[pin]
        future: Option<F>,
    }

    impl<F> PinnedDrop for DeadlineScope<F> {
        fn drop(this: Pin<&mut Self>) {
            let mut this = this.project();
            if this.future.is_some() {
                let deadline = *this.deadline;
                with_current(deadline, || this.future.set(None));
            }
        }
    }
}

impl<F> DeadlineScope<F> {
    fn new(deadline: DeadlineContext, future: F) -> Self {
        Self {
            deadline,
            future: Some(future),
        }
    }
}

impl<F: Future> Future for DeadlineScope<F> {
    type Output = F::Output;

    #[inline]
    fn poll(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<F::Output> {
        let this = self.project();
        let deadline = *this.deadline;
        match this.future.as_pin_mut() {
            Some(future) => with_current(deadline, || future.poll(cx)),
            // Only while being dropped: never polled.
            None => Poll::Pending,
        }
    }
}

impl<F> fmt::Debug for DeadlineScope<F> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("DeadlineScope")
            .field("deadline", &self.deadline)
            .finish_non_exhaustive()
    }
}

pin_project! {
    /// The future of [`DeadlineContext::execute`] and [`ResolvedDeadline::execute`]: the
    /// operation's result, or the deadline's error once it passes.
    #[must_use = "futures do nothing unless polled"]
    ///
    /// The operation's error comes back flattened by the classifier `C` (by default
    /// [`ByClassify`]: a guarded call's own [`ResilienceError`] is not nested in another).
    pub struct DeadlineFuture<F, C = ByClassify> {
        deadline: DeadlineContext,
        classifier: C,
        #[pin]
        state: State<F>,
    }
}

pin_project! {
    #[project = StateProj]
    enum State<F> {
        Running {
            #[pin]
            inner: DeadlineScope<F>,
            // Created on the first poll that finds the call still running, so building the
            // future needs no runtime, and boxed, so a call that finishes at once neither
            // allocates nor carries (and moves) a timer entry in its state.
            sleep: Option<Pin<Box<Sleep>>>,
            // What set the deadline, for the error when it passes (the core's rule).
            bound: DeadlineBound,
        },
        // The deadline had passed before the call started: the core's error for that.
        Expired { error: ResilienceError<Infallible> },
        Done,
    }
}

impl<F: Future, C> DeadlineFuture<F, C> {
    /// Calls `f` with `deadline` (set by `bound`) current, unless it has passed already.
    pub(crate) fn start(
        deadline: DeadlineContext,
        bound: DeadlineBound,
        classifier: C,
        f: impl FnOnce() -> F,
    ) -> Self {
        Self::start_at(deadline, bound, classifier, clock::now(), f)
    }

    /// As [`start`](Self::start), with the current time already read.
    pub(crate) fn start_at(
        deadline: DeadlineContext,
        bound: DeadlineBound,
        classifier: C,
        now: rustkernel_core::time::Instant,
        f: impl FnOnce() -> F,
    ) -> Self {
        let resolved = CoreResolved {
            context: deadline.inner,
            bound,
        };
        if let Err(error) = resolved.check_start(now) {
            tracing::debug!(
                target: "rustkernel::deadline",
                deadline = %deadline.inner.deadline(),
                "deadline passed before the call started"
            );
            return Self {
                deadline,
                classifier,
                state: State::Expired { error },
            };
        }
        let future = with_current(deadline, f);
        Self {
            deadline,
            classifier,
            state: State::Running {
                inner: DeadlineScope::new(deadline, future),
                sleep: None,
                bound,
            },
        }
    }
}

impl<F, C> DeadlineFuture<F, C> {
    /// The deadline the call runs under.
    #[must_use]
    pub fn deadline(&self) -> DeadlineContext {
        self.deadline
    }
}

impl<F, T, R, C> Future for DeadlineFuture<F, C>
where
    F: Future<Output = Result<T, R>>,
    C: Classifier<R>,
{
    type Output = Result<T, ResilienceError<C::Error>>;

    fn poll(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Self::Output> {
        let mut this = self.project();
        let output = match this.state.as_mut().project() {
            StateProj::Running {
                inner,
                sleep,
                bound,
            } => {
                if let Poll::Ready(result) = inner.poll(cx) {
                    let classifier = &*this.classifier;
                    result.map_err(|error| classifier.flatten(error))
                } else {
                    let sleep = sleep.get_or_insert_with(|| {
                        let at = clock::to_tokio(this.deadline.inner.deadline());
                        Box::pin(tokio::time::sleep_until(at))
                    });
                    match sleep.as_mut().poll(cx) {
                        Poll::Ready(()) => {
                            tracing::debug!(
                                target: "rustkernel::deadline",
                                deadline = %this.deadline.inner.deadline(),
                                ?bound,
                                "deadline passed during the call"
                            );
                            Err(bound.expiry_error())
                        }
                        Poll::Pending => return Poll::Pending,
                    }
                }
            }
            StateProj::Expired { error } => Err(widen(*error)),
            // Polled after completion: there is nothing left to return.
            StateProj::Done => return Poll::Pending,
        };
        this.state.set(State::Done);
        Poll::Ready(output)
    }
}

impl<F, C> fmt::Debug for DeadlineFuture<F, C> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("DeadlineFuture")
            .field("deadline", &self.deadline)
            .finish_non_exhaustive()
    }
}

/// Polls the pinned `future` with `deadline` as the task's current deadline until it finishes
/// (`Some(output)`) or the deadline passes (`None`; the future is then dropped, in place and
/// with `deadline` current, so a breaker permit inside it settles as a timeout). The future is
/// polled in place, never moved: the pipeline nests these, and moving its futures from layer
/// to layer was most of its cost. The timer is made (boxed) only if the first poll finds the
/// future still running. A slot already empty reads as a passed deadline.
pub(crate) async fn poll_until<Fut: Future>(
    deadline: DeadlineContext,
    mut slot: Pin<&mut Option<Fut>>,
) -> Option<Fut::Output> {
    let mut sleep: Option<Pin<Box<Sleep>>> = None;
    std::future::poll_fn(move |cx| {
        let Some(future) = slot.as_mut().as_pin_mut() else {
            return Poll::Ready(None);
        };
        if let Poll::Ready(output) = with_current(deadline, || future.poll(cx)) {
            slot.set(None);
            return Poll::Ready(Some(output));
        }
        let sleep = sleep.get_or_insert_with(|| {
            Box::pin(tokio::time::sleep_until(clock::to_tokio(
                deadline.inner.deadline(),
            )))
        });
        match sleep.as_mut().poll(cx) {
            Poll::Ready(()) => {
                tracing::debug!(
                    target: "rustkernel::deadline",
                    deadline = %deadline.inner.deadline(),
                    "deadline passed during the call"
                );
                with_current(deadline, || slot.set(None));
                Poll::Ready(None)
            }
            Poll::Pending => Poll::Pending,
        }
    })
    .await
}

/// Raises the flag when dropped, unless disarmed: covers the deadline passing and the caller
/// dropping the future alike.
struct CancelOnDrop {
    flag: Option<CancelFlag>,
}

impl CancelOnDrop {
    fn disarm(&mut self) {
        self.flag = None;
    }
}

impl Drop for CancelOnDrop {
    fn drop(&mut self) {
        if let Some(flag) = self.flag.take() {
            flag.cancel();
        }
    }
}

async fn run_blocking<F, T, E>(resolved: CoreResolved, work: F) -> Result<T, ResilienceError<E>>
where
    F: FnOnce(CancelFlag) -> Result<T, E> + Send + 'static,
    T: Send + 'static,
    E: Send + 'static,
{
    resolved.check_start(clock::now())?;
    let deadline = DeadlineContext::from_core(resolved.context);
    let flag = CancelFlag::new();
    let mut guard = CancelOnDrop {
        flag: Some(flag.clone()),
    };
    let mut handle = tokio::task::spawn_blocking(move || {
        // The work may have waited in the pool's queue (every blocking thread busy) past its
        // deadline, or past the caller giving up: work that has not started by then never does.
        if flag.is_cancelled() {
            // Only when this future was dropped: nobody reads the answer.
            return Err(ResilienceError::DeadlineExceeded);
        }
        resolved
            .check_start::<Infallible>(clock::now())
            .map(|()| work(flag))
    });
    let sleep = tokio::time::sleep_until(deadline.deadline());
    tokio::select! {
        biased;
        joined = &mut handle => {
            guard.disarm();
            match joined {
                Ok(Ok(result)) => result.map_err(ResilienceError::Operation),
                Ok(Err(not_started)) => Err(widen(not_started)),
                Err(error) => match error.try_into_panic() {
                    Ok(payload) => std::panic::resume_unwind(payload),
                    Err(_cancelled) => Err(ResilienceError::Timeout),
                },
            }
        }
        () = sleep => {
            tracing::debug!(
                target: "rustkernel::deadline",
                deadline = %deadline.inner.deadline(),
                "deadline passed during blocking work; cancelling it"
            );
            // `guard` raises the flag as it drops; the work runs on, detached.
            Err(resolved.expiry_error())
        }
    }
}

/// A call's deadline as a [`TimeoutConfig`] resolved it, and the bound that set it.
///
/// The runtime twin of the core's [`ResolvedDeadline`](rustkernel_core::resilience::ResolvedDeadline).
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub struct ResolvedDeadline {
    /// The deadline the call runs under.
    pub context: DeadlineContext,
    /// Which bound set it: [`DeadlineBound::Parent`] when the caller's deadline came first.
    pub bound: DeadlineBound,
}

impl ResolvedDeadline {
    /// The core's form (an instant on [`clock`]'s epoch and the bound).
    #[must_use]
    pub const fn as_core(self) -> CoreResolved {
        CoreResolved {
            context: self.context.inner,
            bound: self.bound,
        }
    }

    /// The runtime form of a core resolved deadline (an instant on [`clock`]'s epoch).
    #[must_use]
    pub const fn from_core(resolved: CoreResolved) -> Self {
        Self {
            context: DeadlineContext::from_core(resolved.context),
            bound: resolved.bound,
        }
    }

    /// Runs the future `f` returns under this deadline, exactly (already capped by the
    /// caller's deadline when the config propagates it, and not otherwise).
    ///
    /// As [`DeadlineContext::execute`], except that a deadline running out mid-call reports
    /// [`ResilienceError::Timeout`] when it was the call's own timeout, and
    /// [`ResilienceError::DeadlineExceeded`] when it was the caller's; a deadline already
    /// passed (a long wait in the queue) reports `DeadlineExceeded`.
    pub fn execute<F, Fut, T, R>(self, f: F) -> DeadlineFuture<Fut>
    where
        F: FnOnce() -> Fut,
        Fut: Future<Output = Result<T, R>>,
        ByClassify: Classifier<R>,
    {
        DeadlineFuture::start(self.context, self.bound, ByClassify, f)
    }

    /// As [`DeadlineContext::execute_blocking`], with the errors of
    /// [`execute`](Self::execute).
    pub async fn execute_blocking<F, T, E>(self, work: F) -> Result<T, ResilienceError<E>>
    where
        F: FnOnce(CancelFlag) -> Result<T, E> + Send + 'static,
        T: Send + 'static,
        E: Send + 'static,
    {
        run_blocking(self.as_core(), work).await
    }
}

/// Resolves a [`TimeoutConfig`] against tokio's clock and the [current
/// deadline](current_deadline).
pub trait TimeoutExt {
    /// The deadline of a call that asked for `requested` (or the default timeout) and was
    /// enqueued at `enqueued_at` (on the crate's clock, [`clock::now`]; or now), through the core's [`TimeoutConfig::resolve`]:
    /// the current deadline is the parent when `propagate_deadline` is set, and the queue time
    /// counts when `include_queue_time` is set.
    fn resolve_deadline(
        &self,
        requested: Option<Duration>,
        enqueued_at: Option<rustkernel_core::time::Instant>,
    ) -> ResolvedDeadline;
}

impl TimeoutExt for TimeoutConfig {
    fn resolve_deadline(
        &self,
        requested: Option<Duration>,
        enqueued_at: Option<rustkernel_core::time::Instant>,
    ) -> ResolvedDeadline {
        let now = clock::now();
        let enqueued_at = enqueued_at.unwrap_or(now);
        let parent = current_deadline().map(DeadlineContext::as_core);
        ResolvedDeadline::from_core(self.resolve(requested, parent, enqueued_at, now))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::future::pending;

    const S: Duration = Duration::from_secs(1);

    #[tokio::test(start_paused = true)]
    async fn remaining_counts_down_on_the_paused_clock() {
        let deadline = DeadlineContext::new(10 * S);
        assert_eq!(deadline.remaining(), 10 * S);
        tokio::time::advance(4 * S).await;
        assert_eq!(deadline.remaining(), 6 * S);
        assert_eq!(deadline.check(), Ok(()));
        tokio::time::advance(6 * S).await;
        assert!(deadline.is_expired());
        assert_eq!(deadline.check(), Err(DeadlineExceeded));
        assert_eq!(deadline.remaining(), Duration::ZERO);
    }

    #[tokio::test(start_paused = true)]
    async fn a_future_polled_after_completion_stays_pending() {
        let mut future = Box::pin(DeadlineContext::new(S).execute(pending::<Result<(), ()>>));
        let result = (&mut future).await;
        assert_eq!(result, Err(ResilienceError::DeadlineExceeded));
        let waker = std::task::Waker::noop();
        let mut cx = Context::from_waker(waker);
        assert!(future.as_mut().poll(&mut cx).is_pending());
    }

    #[test]
    fn building_needs_no_runtime() {
        let future = DeadlineContext::detached(S).execute(|| async { Ok::<_, ()>(1) });
        assert!(!future.deadline().is_expired());
        let flag = CancelFlag::new();
        assert!(!flag.is_cancelled());
        flag.clone().cancel();
        assert!(flag.is_cancelled());
    }
}
