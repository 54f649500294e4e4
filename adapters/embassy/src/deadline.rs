//! Deadlines and timeouts on embassy's clock: the chapter's `DeadlineContext::new(timeout)`,
//! `remaining()` and `execute(..)`, built on `embassy_time::with_deadline`.
//!
//! The core's [`DeadlineContext`](CoreDeadline) is one instant and takes `now` in every method;
//! this [`DeadlineContext`] reads embassy's clock instead, and runs futures under the deadline.
//! When the deadline passes, the future is dropped (so a breaker permit it holds is settled as
//! cancelled) and the call returns [`ResilienceError::DeadlineExceeded`].
//!
//! A caller's deadline and a call's own timeout are told apart by the core's rule
//! ([`ResolvedDeadline`](CoreResolved), the same on the tokio adapter):
//! [`execute`](DeadlineContext::execute) reports `DeadlineExceeded` (the caller's time ran out),
//! [`execute_with_timeout`] reports [`ResilienceError::Timeout`] (this call took too long), and
//! [`execute_with_config`] resolves a [`TimeoutConfig`] and reports whichever bound fired. A
//! deadline already passed when the call would start is `DeadlineExceeded` in all three.
//!
//! Deadlines are set with `with_deadline` at a saturated instant, never with embassy's
//! `with_timeout`/`Timer::after`, which panic when `now + timeout` overflows: here
//! `Duration::MAX` means "no deadline".
//!
//! ```
//! use core::time::Duration;
//! use rustkernel_embassy::deadline::DeadlineContext;
//! use rustkernel_embassy::ResilienceError;
//!
//! # embassy_futures::block_on(async {
//! let deadline = DeadlineContext::new(Duration::from_secs(10));
//! assert!(deadline.remaining() <= Duration::from_secs(10));
//! // A downstream call gets at most 5 s, and never more than the parent has left.
//! let child = deadline.child_with_timeout(Duration::from_secs(5));
//! assert!(child <= deadline);
//! let answer = child.execute(|| async { Ok::<u32, ()>(42) }).await;
//! assert_eq!(answer, Ok(42));
//! // An expired deadline does not start the work at all.
//! let expired = DeadlineContext::new(Duration::ZERO);
//! let result = expired.execute(|| async { Ok::<u32, ()>(1) }).await;
//! assert_eq!(result, Err(ResilienceError::DeadlineExceeded));
//! # });
//! ```

use core::convert::Infallible;
use core::future::Future;
use core::time::Duration;

use embassy_time::with_deadline;
use rustkernel_core::error::{ByClassify, Classifier, ResilienceError};
use rustkernel_core::resilience::{
    DeadlineBound, DeadlineContext as CoreDeadline, DeadlineExceeded,
    ResolvedDeadline as CoreResolved, TimeoutConfig, WireDeadline,
};

use crate::time::{deadline_after, now, to_core_duration, to_core_instant, to_embassy_instant};

/// An absolute deadline on embassy's clock, `Copy`, passed down a chain of calls.
///
/// Method families: constructors ([`new`](Self::new) reads the clock, [`at`](Self::at),
/// [`never`](Self::never), [`from_core`](Self::from_core), [`from_wire`](Self::from_wire));
/// queries that read the clock ([`remaining`](Self::remaining),
/// [`is_expired`](Self::is_expired), [`check`](Self::check), [`to_wire`](Self::to_wire),
/// [`child_with_timeout`](Self::child_with_timeout)); and runners
/// ([`execute`](Self::execute) for fallible operations, [`run`](Self::run) for any future).
///
/// Ordering compares the instants: the lesser of two contexts is the earlier, stricter one.
///
/// The instant is kept in embassy ticks, and only durations are converted: a deadline made
/// with [`new`](Self::new) is the tick now plus the timeout rounded up to whole ticks, and
/// [`at`](Self::at) then [`deadline`](Self::deadline) gives back the same tick at every tick
/// rate, however many times a deadline is wrapped again. A round trip through the core's
/// microseconds ([`as_core`](Self::as_core) then [`from_core`](Self::from_core)) is the one
/// that may move it: at a tick rate other than 1 MHz both conversions round up (so a timer
/// never fires early), which can put the deadline one tick later; keep the `DeadlineContext`
/// itself where a deadline is passed on.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash)]
#[cfg_attr(feature = "defmt", derive(defmt::Format))]
pub struct DeadlineContext {
    /// The deadline in embassy ticks since boot; `u64::MAX` is never.
    ticks: u64,
}

impl DeadlineContext {
    /// A deadline `timeout` from now (`Duration::MAX` and other overflowing timeouts mean
    /// "never").
    #[must_use]
    pub fn new(timeout: Duration) -> Self {
        Self::at(deadline_after(timeout))
    }

    /// A deadline at an embassy instant (`embassy_time::Instant::MAX` means "never"), kept to
    /// the tick.
    #[must_use]
    pub const fn at(deadline: embassy_time::Instant) -> Self {
        Self {
            ticks: deadline.as_ticks(),
        }
    }

    /// No deadline: [`embassy_time::Instant::MAX`], the core's
    /// [`Instant::MAX`](rustkernel_core::time::Instant::MAX).
    #[must_use]
    pub const fn never() -> Self {
        Self::at(embassy_time::Instant::MAX)
    }

    /// Wraps a core deadline (whose instant must come from this adapter's clock, [`now`]),
    /// rounded up to a whole tick.
    #[must_use]
    pub const fn from_core(inner: CoreDeadline) -> Self {
        Self::at(to_embassy_instant(inner.deadline()))
    }

    /// The core deadline, to hand to core state machines (`Retry`, `TimeoutConfig::resolve`):
    /// the instant in microseconds, rounded up as [`now`] is, so the core sees the deadline
    /// reached at the tick it is due, not before.
    #[must_use]
    pub const fn as_core(self) -> CoreDeadline {
        CoreDeadline::at(to_core_instant(self.deadline()))
    }

    /// The deadline on embassy's clock, the tick it was made with.
    #[must_use]
    pub const fn deadline(self) -> embassy_time::Instant {
        embassy_time::Instant::from_ticks(self.ticks)
    }

    /// Time left (whole microseconds, rounded down); zero once the deadline has been reached.
    #[must_use]
    pub fn remaining(self) -> Duration {
        let now = embassy_time::Instant::now().as_ticks();
        to_core_duration(embassy_time::Duration::from_ticks(
            self.ticks.saturating_sub(now),
        ))
    }

    /// Whether the deadline has been reached.
    #[must_use]
    pub fn is_expired(self) -> bool {
        embassy_time::Instant::now().as_ticks() >= self.ticks
    }

    /// `Ok(())` while time remains.
    ///
    /// # Errors
    /// [`DeadlineExceeded`] once the deadline has been reached (converts with `?` into
    /// [`ResilienceError::DeadlineExceeded`]).
    pub fn check(self) -> Result<(), DeadlineExceeded> {
        if self.is_expired() {
            Err(DeadlineExceeded)
        } else {
            Ok(())
        }
    }

    /// A deadline for a downstream call: `timeout` from now, never later than this one.
    #[must_use]
    pub fn child_with_timeout(self, timeout: Duration) -> Self {
        self.min(Self::new(timeout))
    }

    /// The deadline as it crosses a boundary: the time that remains now (relative, as gRPC
    /// sends it, since the receiver's clock has another epoch).
    #[must_use]
    pub fn to_wire(self) -> WireDeadline {
        WireDeadline::from_remaining(self.remaining())
    }

    /// A deadline received from a boundary: `wire.remaining()` from now.
    #[must_use]
    pub fn from_wire(wire: WireDeadline) -> Self {
        Self::new(wire.remaining())
    }

    /// Runs `op` under the deadline.
    ///
    /// `op` is not called when the deadline has already passed. If its future is still running
    /// when the deadline passes, it is dropped.
    ///
    /// # Errors
    /// [`ResilienceError::DeadlineExceeded`] when the deadline passed before or during the call;
    /// [`ResilienceError::Operation`] with `op`'s own error.
    ///
    /// A guarded call's own [`ResilienceError`] is flattened (one level comes back); the
    /// error type must be [`Classify`](rustkernel_core::error::Classify) (use
    /// [`execute_classified`](Self::execute_classified) otherwise).
    pub async fn execute<T, R, F, Fut>(
        self,
        op: F,
    ) -> Result<T, ResilienceError<<ByClassify as Classifier<R>>::Error>>
    where
        F: FnOnce() -> Fut,
        Fut: Future<Output = Result<T, R>>,
        ByClassify: Classifier<R>,
    {
        self.execute_classified(&ByClassify, op).await
    }

    /// [`execute`](Self::execute) with the error handed to `classifier` (a closure
    /// `|e: &E| ErrorKind::..` keeps any error type as it is).
    ///
    /// # Errors
    /// As [`execute`](Self::execute).
    pub async fn execute_classified<T, R, F, Fut, K>(
        self,
        classifier: &K,
        op: F,
    ) -> Result<T, ResilienceError<K::Error>>
    where
        F: FnOnce() -> Fut,
        Fut: Future<Output = Result<T, R>>,
        K: Classifier<R>,
    {
        run_resolved(self.resolved(), classifier, op).await
    }

    /// Runs any future under the deadline (it is polled at least once unless the deadline has
    /// already passed).
    ///
    /// # Errors
    /// [`DeadlineExceeded`] when the deadline passed before or during the future.
    pub async fn run<F: Future>(self, fut: F) -> Result<F::Output, DeadlineExceeded> {
        self.run_op(|| fut).await
    }

    pub(crate) async fn run_op<F, Fut>(self, op: F) -> Result<Fut::Output, DeadlineExceeded>
    where
        F: FnOnce() -> Fut,
        Fut: Future,
    {
        self.check()?;
        with_deadline(self.deadline(), op())
            .await
            .map_err(|_| DeadlineExceeded)
    }

    /// This deadline as the caller's bound of a call, to the tick.
    pub(crate) const fn resolved(self) -> Resolved {
        Resolved {
            core: CoreResolved::parent(self.as_core()),
            at: self.deadline(),
        }
    }
}

/// A resolved deadline (the core's, with its bound) and the tick it fires at.
#[derive(Clone, Copy, Debug)]
pub(crate) struct Resolved {
    pub(crate) core: CoreResolved,
    pub(crate) at: embassy_time::Instant,
}

impl Resolved {
    /// `core`, resolved from the caller's deadline `parent` if it had one: when that deadline
    /// is the bound, it fires at the caller's own tick (not moved by the round trip through
    /// microseconds); any other bound at the core's instant rounded up to a whole tick.
    pub(crate) const fn new(core: CoreResolved, parent: Option<DeadlineContext>) -> Self {
        let at = match parent {
            Some(parent)
                if matches!(core.bound, DeadlineBound::Parent)
                    && core.context.deadline().as_micros()
                        == parent.as_core().deadline().as_micros() =>
            {
                parent.deadline()
            }
            _ => to_embassy_instant(core.context.deadline()),
        };
        Self { core, at }
    }
}

/// Runs `op` under `resolved`, with the core's errors for a deadline that passed before the call
/// started ([`CoreResolved::check_start`]: `op` is not called) or while it ran
/// ([`CoreResolved::expiry_error`]: its future is dropped).
pub(crate) async fn run_resolved_op<F, Fut>(
    resolved: Resolved,
    op: F,
) -> Result<Fut::Output, ResilienceError<Infallible>>
where
    F: FnOnce() -> Fut,
    Fut: Future,
{
    resolved.core.check_start(now())?;
    run_until(resolved, op()).await
}

/// Polls `fut` until it finishes or `resolved`'s deadline passes (then it is dropped, with the
/// core's [`CoreResolved::expiry_error`]), for work inside a call that has already started.
/// The future is polled before the deadline is looked at, as on the tokio adapter.
pub(crate) async fn run_until<F: Future>(
    resolved: Resolved,
    fut: F,
) -> Result<F::Output, ResilienceError<Infallible>> {
    with_deadline(resolved.at, fut)
        .await
        .map_err(|_| resolved.core.expiry_error())
}

/// [`run_resolved_op`] for a fallible operation, its error flattened by `classifier`.
pub(crate) async fn run_resolved<T, R, F, Fut, K>(
    resolved: Resolved,
    classifier: &K,
    op: F,
) -> Result<T, ResilienceError<K::Error>>
where
    F: FnOnce() -> Fut,
    Fut: Future<Output = Result<T, R>>,
    K: Classifier<R>,
{
    match run_resolved_op(resolved, op).await {
        Ok(result) => result.map_err(|error| classifier.flatten(error)),
        Err(error) => Err(widen(error)),
    }
}

/// A deadline's error (which carries no operation error) as the error of any operation.
pub(crate) fn widen<E>(error: ResilienceError<Infallible>) -> ResilienceError<E> {
    error.map_operation(|never| match never {})
}

impl From<CoreDeadline> for DeadlineContext {
    fn from(inner: CoreDeadline) -> Self {
        Self::from_core(inner)
    }
}

impl From<DeadlineContext> for CoreDeadline {
    fn from(deadline: DeadlineContext) -> Self {
        deadline.as_core()
    }
}

/// Runs `op` with its own `timeout` (`Duration::MAX`: none).
///
/// # Errors
/// [`ResilienceError::Timeout`] when the call did not finish in time (its future is dropped);
/// [`ResilienceError::DeadlineExceeded`] when there was no time to start it (a zero timeout);
/// [`ResilienceError::Operation`] with `op`'s own error.
pub async fn execute_with_timeout<T, R, F, Fut>(
    timeout: Duration,
    op: F,
) -> Result<T, ResilienceError<<ByClassify as Classifier<R>>::Error>>
where
    F: FnOnce() -> Fut,
    Fut: Future<Output = Result<T, R>>,
    ByClassify: Classifier<R>,
{
    let own = DeadlineContext::new(timeout);
    let own = Resolved {
        core: CoreResolved {
            context: own.as_core(),
            bound: DeadlineBound::Requested,
        },
        at: own.deadline(),
    };
    run_resolved(own, &ByClassify, op).await
}

/// Runs `op` under the deadline that `config` resolves from its `requested` timeout, its
/// caller's `parent` deadline and the instant it was queued (`enqueued_at`, on embassy's clock;
/// pass `Instant::now()` for a call that was not queued). See [`TimeoutConfig::resolve`].
///
/// # Errors
/// [`ResilienceError::DeadlineExceeded`] when the parent's deadline fired (it was the earlier
/// bound) or the deadline had passed before the call could start (queued too long),
/// [`ResilienceError::Timeout`] when the call's own timeout fired, and
/// [`ResilienceError::Operation`] with `op`'s own error.
pub async fn execute_with_config<T, R, F, Fut>(
    config: &TimeoutConfig,
    requested: Option<Duration>,
    parent: Option<DeadlineContext>,
    enqueued_at: embassy_time::Instant,
    op: F,
) -> Result<T, ResilienceError<<ByClassify as Classifier<R>>::Error>>
where
    F: FnOnce() -> Fut,
    Fut: Future<Output = Result<T, R>>,
    ByClassify: Classifier<R>,
{
    let resolved = config.resolve(
        requested,
        parent.map(DeadlineContext::as_core),
        to_core_instant(enqueued_at),
        now(),
    );
    run_resolved(Resolved::new(resolved, parent), &ByClassify, op).await
}
