//! A supervisor that carries out the core's recovery decisions for a kernel on tokio: restart
//! after the delay, restore the latest checkpoint, switch to a replica, a failover or a
//! degraded implementation, or alert an operator.
//!
//! The core decides everything: a [`RecoveryPolicy`] (or a [`RecoveryLadder`] of several
//! escalation levels, see [`Supervisor::with_ladder`]) turns each failure into a [`Directive`],
//! which the supervisor carries out. A kernel that panics has failed, as a child process that
//! crashes has for an OTP supervisor: the panic is caught at the kernel's future, reported as
//! [`KernelFailure::Panic`] and handled under the policy like an error.
//!
//! ```
//! use std::time::Duration;
//! use rustkernel_tokio::resilience::{
//!     RecoveryPolicy, RecoveryStrategy, RestartIntensity, SupervisedKernel, Supervisor,
//!     SupervisorExit,
//! };
//!
//! /// Fails twice, then finishes.
//! struct Flaky {
//!     failures_left: u32,
//! }
//!
//! impl SupervisedKernel for Flaky {
//!     type Error = &'static str;
//!
//!     async fn run(&mut self) -> Result<(), Self::Error> {
//!         if self.failures_left > 0 {
//!             self.failures_left -= 1;
//!             return Err("CUDA_ERROR_LAUNCH_FAILED");
//!         }
//!         Ok(())
//!     }
//! }
//!
//! # #[tokio::main(flavor = "current_thread", start_paused = true)]
//! # async fn main() {
//! let policy = RecoveryPolicy {
//!     strategy: RecoveryStrategy::RestartKernel,
//!     max_restarts: 3,
//!     restart_delay: Duration::from_secs(5),
//!     escalation: Some(RecoveryStrategy::NotifyOperator),
//! };
//! let mut supervisor =
//!     Supervisor::new("graph/pagerank", Flaky { failures_left: 2 }, policy, RestartIntensity::default());
//! let started = tokio::time::Instant::now();
//! assert_eq!(supervisor.run().await, Ok(SupervisorExit::Completed));
//! assert_eq!(started.elapsed(), Duration::from_secs(10)); // two restarts, 5 s each
//! assert_eq!(supervisor.log().counts().restart, 2);
//! # }
//! ```
//!
//! # What each directive of the core does
//! | [`Directive`] | The supervisor |
//! |---|---|
//! | `Restart { at, .. }` (counted, or uncounted for an escalation to `RestartKernel`) | sleeps until `at` (tokio's clock), calls [`SupervisedKernel::restart`], resets the health probe, restores the latest checkpoint, runs again |
//! | `Pending { at }` | the same, uncounted |
//! | `UseReplica`, `Failover`, `Degrade` (the level's strategy or an escalation) | switches to the kernel given with [`with_replica`](Supervisor::with_replica), [`with_failover`](Supervisor::with_failover) or [`with_degraded`](Supervisor::with_degraded), restores the latest checkpoint into it, runs it; a switch to the kernel already running has nothing left to try: it alerts the operator and stops with [`SupervisorExit::Exhausted`] |
//! | `NotifyOperator` | logs `tracing::error!`, calls the [`Notifier`], stops with [`SupervisorExit::OperatorNotified`] |
//! | `GiveUp`, `Exhausted(GaveUp)` | logs `tracing::error!`, stops with [`SupervisorExit::GaveUp`] |
//! | `Exhausted(To(s))` (what the last escalation set up failed too) | alerts the operator, stops with [`SupervisorExit::Exhausted`] |
//!
//! While a kernel runs, the supervisor tells the core it is healthy when the ladder's
//! [`healthy_at`](RecoveryLadder::healthy_at) comes (a whole window of the current level after
//! the last failure and its restart), so the restart budget starts afresh and escalations end. It stays on a
//! replica, failover or degraded kernel until that one returns, unless it was built
//! [`with_fail_back`](Supervisor::with_fail_back): then the end of the escalation (the ladder
//! back at level 0) stops the alternate and restarts the primary.
//!
//! # Supervising a process
//! A kernel can own a child process (a GPU worker): `run` spawns it and returns when it dies
//! (its future owning the process, killed on drop), `restart` is the default. Three things
//! make that work: [`with_observer`](Supervisor::with_observer) pushes every event to state
//! that users see at once (a health component); [`with_fail_back`](Supervisor::with_fail_back)
//! returns to the process after its degraded alternate stayed quiet; and
//! [`run_until`](Supervisor::run_until) shuts down as OTP does: no restart after the stop
//! signal, and a grace for the running process to exit before it is dropped.

use std::collections::VecDeque;
use std::fmt;
use std::future::Future;
use std::pin::Pin;
use std::sync::{Arc, Mutex, MutexGuard, PoisonError};
use std::time::Duration;

use rustkernel_core::error::{ConfigError, valid_or_panic};
use rustkernel_core::resilience::{
    Directive, Escalation, Recovered, Recovery, RecoveryAction, RecoveryLadder, RecoveryPolicy,
    RecoveryStrategy, RestartIntensity,
};
use rustkernel_core::time::Instant;
use rustkernel_core::traits::CheckpointableKernel;
use serde::Serialize;
use serde::de::DeserializeOwned;

use crate::catch_panic::CatchPanic;
use crate::checkpoint_store::CheckpointStore;
use crate::clock;
use crate::health::HealthProbe;
use crate::metrics::RecoveryActionCounts;

/// How many events a [`SupervisorLog`] keeps; older ones are dropped (the counts go on).
pub const LOG_CAPACITY: usize = 1024;

/// A kernel the [`Supervisor`] runs and recovers.
///
/// Write the methods as `async fn`s; their futures must be `Send` so the supervisor can run on
/// any tokio worker. A kernel that should resume from checkpoints also implements
/// [`CheckpointableKernel`] (see [`Supervisor::with_checkpoints`]). Replica, failover and
/// degraded implementations have the same type: use an enum when they differ.
pub trait SupervisedKernel: Send {
    /// Why the kernel failed; kept typed in the supervisor's [`SupervisorEvent`]s and
    /// [`OperatorAlert`]s (as [`KernelFailure::Error`]), logged with its `Display`.
    type Error: fmt::Display + fmt::Debug + Send + Sync + 'static;

    /// Runs the kernel until it finishes (`Ok`: the supervisor stops) or fails (`Err`, or a
    /// panic: the supervisor asks the recovery policy what to do).
    fn run(&mut self) -> impl Future<Output = Result<(), Self::Error>> + Send;

    /// Gets the kernel ready to run again after a failure (reset the device, reload weights).
    /// The default does nothing. An error or a panic counts as another failure.
    fn restart(&mut self) -> impl Future<Output = Result<(), Self::Error>> + Send {
        async { Ok(()) }
    }
}

/// Which of the supervisor's kernels runs.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, Serialize, serde::Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum KernelSlot {
    /// The kernel the supervisor was built with.
    Primary,
    /// The replica ([`RecoveryStrategy::UseReplica`]).
    Replica,
    /// The backup system ([`RecoveryStrategy::Failover`]).
    Failover,
    /// The reduced implementation ([`RecoveryStrategy::Degrade`]).
    Degraded,
}

impl KernelSlot {
    /// The slot's name (`"primary"`).
    #[must_use]
    pub const fn as_str(self) -> &'static str {
        match self {
            KernelSlot::Primary => "primary",
            KernelSlot::Replica => "replica",
            KernelSlot::Failover => "failover",
            KernelSlot::Degraded => "degraded",
        }
    }

    /// The slot a strategy switches to, if it switches.
    #[must_use]
    pub const fn for_strategy(strategy: RecoveryStrategy) -> Option<Self> {
        match strategy {
            RecoveryStrategy::UseReplica => Some(KernelSlot::Replica),
            RecoveryStrategy::Failover => Some(KernelSlot::Failover),
            RecoveryStrategy::Degrade => Some(KernelSlot::Degraded),
            RecoveryStrategy::RestartKernel | RecoveryStrategy::NotifyOperator => None,
        }
    }
}

impl fmt::Display for KernelSlot {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// Why a supervised kernel failed: its own error, typed, or a panic.
#[derive(Debug)]
pub enum KernelFailure<E> {
    /// The kernel's `run` or `restart` returned this error (shared, so events and alerts that
    /// carry it are cheap to clone).
    Error(Arc<E>),
    /// The kernel's `run` or `restart` panicked; the panic's message.
    Panic(String),
}

impl<E> KernelFailure<E> {
    /// The kernel's error, unless it panicked.
    #[must_use]
    pub fn error(&self) -> Option<&E> {
        match self {
            KernelFailure::Error(error) => Some(error),
            KernelFailure::Panic(_) => None,
        }
    }

    /// Whether the kernel panicked.
    #[must_use]
    pub const fn is_panic(&self) -> bool {
        matches!(self, KernelFailure::Panic(_))
    }
}

impl<E> Clone for KernelFailure<E> {
    fn clone(&self) -> Self {
        match self {
            KernelFailure::Error(error) => KernelFailure::Error(Arc::clone(error)),
            KernelFailure::Panic(message) => KernelFailure::Panic(message.clone()),
        }
    }
}

impl<E: PartialEq> PartialEq for KernelFailure<E> {
    fn eq(&self, other: &Self) -> bool {
        match (self, other) {
            (KernelFailure::Error(a), KernelFailure::Error(b)) => a == b,
            (KernelFailure::Panic(a), KernelFailure::Panic(b)) => a == b,
            _ => false,
        }
    }
}

impl<E: Eq> Eq for KernelFailure<E> {}

impl<E: fmt::Display> fmt::Display for KernelFailure<E> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            KernelFailure::Error(error) => error.fmt(f),
            KernelFailure::Panic(message) => write!(f, "the kernel panicked: {message}"),
        }
    }
}

impl<E: std::error::Error + 'static> std::error::Error for KernelFailure<E> {
    fn source(&self) -> Option<&(dyn std::error::Error + 'static)> {
        match self {
            KernelFailure::Error(error) => Some(&**error),
            KernelFailure::Panic(_) => None,
        }
    }
}

/// As `{"kind": "error" | "panic", "message": "<Display>"}`: the error type needs no
/// `Serialize`.
impl<E: fmt::Display> Serialize for KernelFailure<E> {
    fn serialize<S: serde::Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        use serde::ser::SerializeStruct;
        let mut state = serializer.serialize_struct("KernelFailure", 2)?;
        match self {
            KernelFailure::Error(error) => {
                state.serialize_field("kind", "error")?;
                state.serialize_field("message", &error.to_string())?;
            }
            KernelFailure::Panic(message) => {
                state.serialize_field("kind", "panic")?;
                state.serialize_field("message", message)?;
            }
        }
        state.end()
    }
}

/// What an operator is told.
#[derive(Debug, PartialEq, Eq, Serialize)]
#[serde(bound(serialize = "E: fmt::Display"))]
pub struct OperatorAlert<E = String> {
    /// The supervisor's name.
    pub kernel: String,
    /// The kernel that failed last.
    pub slot: KernelSlot,
    /// Why it failed.
    pub error: KernelFailure<E>,
    /// The core's decision that called for the operator.
    pub action: RecoveryAction,
    /// The escalation level that decided (0 for a supervisor of one policy).
    pub level: usize,
    /// Restarts since that level's budget last started afresh.
    pub restarts: u32,
    /// When, on the supervisor's clock.
    pub at: Instant,
}

impl<E> Clone for OperatorAlert<E> {
    fn clone(&self) -> Self {
        Self {
            kernel: self.kernel.clone(),
            slot: self.slot,
            error: self.error.clone(),
            action: self.action,
            level: self.level,
            restarts: self.restarts,
            at: self.at,
        }
    }
}

/// Alerts a human operator (a pager, a chat webhook, a ticket); the supervisor also logs every
/// alert with `tracing::error!`. `E` is the supervised kernel's error type.
///
/// `tokio::sync::mpsc::UnboundedSender<OperatorAlert<E>>` is a notifier, handy for tests and
/// for forwarding alerts to a task of your own.
pub trait Notifier<E = String>: Send + Sync + 'static {
    /// Sends `alert`. The supervisor waits for it before stopping, so keep it short or
    /// hand the alert to a task.
    fn notify(&self, alert: &OperatorAlert<E>) -> impl Future<Output = ()> + Send;
}

impl<E, T: Notifier<E>> Notifier<E> for Arc<T> {
    fn notify(&self, alert: &OperatorAlert<E>) -> impl Future<Output = ()> + Send {
        T::notify(self, alert)
    }
}

impl<E: Send + Sync + 'static> Notifier<E>
    for tokio::sync::mpsc::UnboundedSender<OperatorAlert<E>>
{
    async fn notify(&self, alert: &OperatorAlert<E>) {
        // A closed receiver is an operator who left; the tracing event remains.
        let _ = self.send(alert.clone());
    }
}

type BoxFuture<'a, T> = Pin<Box<dyn Future<Output = T> + Send + 'a>>;

trait ErasedNotifier<E>: Send + Sync {
    fn notify_boxed<'a>(&'a self, alert: &'a OperatorAlert<E>) -> BoxFuture<'a, ()>;
}

impl<E, T: Notifier<E>> ErasedNotifier<E> for T {
    fn notify_boxed<'a>(&'a self, alert: &'a OperatorAlert<E>) -> BoxFuture<'a, ()> {
        Box::pin(self.notify(alert))
    }
}

/// What restoring a checkpoint came to.
enum RestoreOutcome {
    Restored(u64),
    NoCheckpoint,
    Failed(String),
}

trait Restore<K>: Send + Sync {
    fn restore<'a>(&'a self, kernel: &'a mut K) -> BoxFuture<'a, RestoreOutcome>;
}

struct StoreRestorer<S> {
    store: S,
}

impl<S, K> Restore<K> for StoreRestorer<S>
where
    S: CheckpointStore,
    K: CheckpointableKernel + Send,
    K::Checkpoint: DeserializeOwned + Send + 'static,
{
    fn restore<'a>(&'a self, kernel: &'a mut K) -> BoxFuture<'a, RestoreOutcome> {
        Box::pin(async move {
            match self.store.load_latest::<K::Checkpoint>().await {
                Ok(Some(loaded)) => match kernel.restore(loaded.value).await {
                    Ok(()) => RestoreOutcome::Restored(loaded.sequence),
                    Err(error) => RestoreOutcome::Failed(error.to_string()),
                },
                Ok(None) => RestoreOutcome::NoCheckpoint,
                Err(error) => RestoreOutcome::Failed(error.to_string()),
            }
        })
    }
}

/// Why the supervisor stopped.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum SupervisorExit {
    /// The kernel's `run` returned `Ok`.
    Completed,
    /// The restarts ran out and the policy has no escalation: the kernel stays down.
    GaveUp,
    /// An operator was alerted (`NotifyOperator`); the kernel stays down.
    OperatorNotified,
    /// The kernel the policy escalated to failed too; an operator was alerted.
    Exhausted,
    /// [`run_until`](Supervisor::run_until)'s stop signal came: nothing more was started, and
    /// a kernel still running after the grace period was dropped.
    Stopped,
}

impl fmt::Display for SupervisorExit {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            SupervisorExit::Completed => "completed",
            SupervisorExit::GaveUp => "gave up",
            SupervisorExit::OperatorNotified => "operator notified",
            SupervisorExit::Exhausted => "no fallback left",
            SupervisorExit::Stopped => "stopped on request",
        })
    }
}

/// Why [`Supervisor::run`] could not start.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum SupervisorError {
    /// The policy names a strategy (its own or its escalation) that needs a kernel the
    /// supervisor was not given.
    MissingKernel {
        /// The strategy.
        strategy: RecoveryStrategy,
        /// The slot it needs.
        slot: KernelSlot,
    },
}

impl fmt::Display for SupervisorError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            SupervisorError::MissingKernel { strategy, slot } => {
                write!(
                    f,
                    "the recovery policy uses {strategy} but no {slot} kernel was given"
                )
            }
        }
    }
}

impl std::error::Error for SupervisorError {}

/// One thing the supervisor did, with when it did it (on its clock: microseconds since its
/// first [`run`](Supervisor::run)).
///
/// `E` is the supervised kernel's error type, kept typed in [`SupervisorEvent::Failed`] and
/// in alerts.
#[derive(Debug, PartialEq, Serialize)]
#[serde(rename_all = "snake_case", bound(serialize = "E: fmt::Display"))]
pub enum SupervisorEvent<E = String> {
    /// `run` started the kernel in `slot`.
    Started {
        /// When.
        at: Instant,
        /// Which kernel.
        slot: KernelSlot,
    },
    /// The kernel in `slot` failed (its `run` or its `restart` returned an error or
    /// panicked).
    Failed {
        /// When.
        at: Instant,
        /// Which kernel.
        slot: KernelSlot,
        /// Why: the kernel's error, or its panic.
        error: KernelFailure<E>,
    },
    /// The core decided what to do about the failure.
    Decided {
        /// When.
        at: Instant,
        /// The escalation level that decided (0 for a supervisor of one policy).
        level: usize,
        /// The decision.
        action: RecoveryAction,
    },
    /// The kernel in `slot` was restarted.
    Restarted {
        /// When.
        at: Instant,
        /// Which kernel.
        slot: KernelSlot,
        /// The core's attempt number; `None` for an uncounted restart (an escalation to
        /// `RestartKernel`, or a restart that was already pending).
        attempt: Option<u32>,
    },
    /// The latest good checkpoint was restored into the kernel in `slot`.
    Restored {
        /// When.
        at: Instant,
        /// Which kernel.
        slot: KernelSlot,
        /// The checkpoint's sequence.
        sequence: u64,
    },
    /// Restoring failed; the kernel runs from its own state.
    RestoreFailed {
        /// When.
        at: Instant,
        /// Which kernel.
        slot: KernelSlot,
        /// Why.
        error: String,
    },
    /// The supervisor switched kernels.
    Switched {
        /// When.
        at: Instant,
        /// The kernel that failed.
        from: KernelSlot,
        /// The kernel that runs now.
        to: KernelSlot,
    },
    /// An operator was alerted.
    OperatorNotified {
        /// The alert.
        alert: OperatorAlert<E>,
    },
    /// The kernel ran a whole restart window without failing: the budget starts afresh, or an
    /// escalation ended (the supervisor keeps running the kernel it switched to, unless it was
    /// built [`with_fail_back`](Supervisor::with_fail_back)).
    Recovered {
        /// When.
        at: Instant,
        /// What the core restored.
        recovered: Recovered,
    },
    /// `run` returned.
    Stopped {
        /// When.
        at: Instant,
        /// Why.
        exit: SupervisorExit,
    },
}

impl<E> Clone for SupervisorEvent<E> {
    fn clone(&self) -> Self {
        match self {
            Self::Started { at, slot } => Self::Started {
                at: *at,
                slot: *slot,
            },
            Self::Failed { at, slot, error } => Self::Failed {
                at: *at,
                slot: *slot,
                error: error.clone(),
            },
            Self::Decided { at, level, action } => Self::Decided {
                at: *at,
                level: *level,
                action: *action,
            },
            Self::Restarted { at, slot, attempt } => Self::Restarted {
                at: *at,
                slot: *slot,
                attempt: *attempt,
            },
            Self::Restored { at, slot, sequence } => Self::Restored {
                at: *at,
                slot: *slot,
                sequence: *sequence,
            },
            Self::RestoreFailed { at, slot, error } => Self::RestoreFailed {
                at: *at,
                slot: *slot,
                error: error.clone(),
            },
            Self::Switched { at, from, to } => Self::Switched {
                at: *at,
                from: *from,
                to: *to,
            },
            Self::OperatorNotified { alert } => Self::OperatorNotified {
                alert: alert.clone(),
            },
            Self::Recovered { at, recovered } => Self::Recovered {
                at: *at,
                recovered: *recovered,
            },
            Self::Stopped { at, exit } => Self::Stopped {
                at: *at,
                exit: *exit,
            },
        }
    }
}

/// A function told of every event as it happens ([`Supervisor::with_observer`]).
type Observer<E> = Arc<dyn Fn(&SupervisorEvent<E>) + Send + Sync>;

struct LogInner<E> {
    events: VecDeque<SupervisorEvent<E>>,
    counts: RecoveryActionCounts,
    observers: Vec<Observer<E>>,
}

impl<E: fmt::Debug> fmt::Debug for LogInner<E> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("LogInner")
            .field("events", &self.events)
            .field("counts", &self.counts)
            .field("observers", &self.observers.len())
            .finish()
    }
}

impl<E> Default for LogInner<E> {
    fn default() -> Self {
        Self {
            events: VecDeque::new(),
            counts: RecoveryActionCounts::default(),
            observers: Vec::new(),
        }
    }
}

/// The supervisor's record: its last [`LOG_CAPACITY`] events and the count of every decision
/// of the core, for tests and for metrics. A cheap [`Clone`] handle that stays valid while
/// the supervisor runs on another task. `E` is the supervised kernel's error type.
#[derive(Debug)]
pub struct SupervisorLog<E = String> {
    inner: Arc<Mutex<LogInner<E>>>,
}

impl<E> Clone for SupervisorLog<E> {
    fn clone(&self) -> Self {
        Self {
            inner: Arc::clone(&self.inner),
        }
    }
}

impl<E> Default for SupervisorLog<E> {
    fn default() -> Self {
        Self {
            inner: Arc::new(Mutex::new(LogInner::default())),
        }
    }
}

impl<E> SupervisorLog<E> {
    /// The events kept, oldest first.
    #[must_use]
    pub fn events(&self) -> Vec<SupervisorEvent<E>> {
        self.lock().events.iter().cloned().collect()
    }

    /// How many of each [`RecoveryAction`] the core decided, since the supervisor was built.
    #[must_use]
    pub fn counts(&self) -> RecoveryActionCounts {
        self.lock().counts
    }

    fn push(&self, event: SupervisorEvent<E>) {
        let observers = {
            let inner = self.lock();
            inner.observers.clone()
        };
        // Observers run outside the lock, so one that reads the log does not deadlock.
        for observer in &observers {
            observer(&event);
        }
        let mut inner = self.lock();
        if let SupervisorEvent::Decided { action, .. } = &event {
            inner.counts.record(*action);
        }
        if inner.events.len() >= LOG_CAPACITY {
            inner.events.pop_front();
        }
        inner.events.push_back(event);
    }

    fn observe(&self, observer: Observer<E>) {
        self.lock().observers.push(observer);
    }

    fn lock(&self) -> MutexGuard<'_, LogInner<E>> {
        self.inner.lock().unwrap_or_else(PoisonError::into_inner)
    }
}

struct Kernels<K> {
    primary: K,
    replica: Option<K>,
    failover: Option<K>,
    degraded: Option<K>,
}

impl<K> Kernels<K> {
    fn get(&self, slot: KernelSlot) -> Option<&K> {
        match slot {
            KernelSlot::Primary => Some(&self.primary),
            KernelSlot::Replica => self.replica.as_ref(),
            KernelSlot::Failover => self.failover.as_ref(),
            KernelSlot::Degraded => self.degraded.as_ref(),
        }
    }

    fn get_mut(&mut self, slot: KernelSlot) -> Option<&mut K> {
        match slot {
            KernelSlot::Primary => Some(&mut self.primary),
            KernelSlot::Replica => self.replica.as_mut(),
            KernelSlot::Failover => self.failover.as_mut(),
            KernelSlot::Degraded => self.degraded.as_mut(),
        }
    }
}

/// How a run of the active kernel ended.
enum Ran<E> {
    /// The kernel returned (or panicked).
    Returned(Result<(), KernelFailure<E>>),
    /// The ladder ended the escalation that switched away from the primary ([`Supervisor::with_fail_back`]).
    FailBack,
    /// The stop signal came and the kernel did not return `Ok` within the grace.
    Stopped,
}

/// The stop signal of [`Supervisor::run_until`], fused: once it fired, it stays fired.
struct Stop<'a> {
    signal: Option<Pin<&'a mut (dyn Future<Output = ()> + Send + 'a)>>,
    grace: Duration,
}

impl Stop<'_> {
    /// Completes when the signal fires (at once if it already did).
    async fn fired(&mut self) {
        if let Some(signal) = &mut self.signal {
            signal.as_mut().await;
            self.signal = None;
        }
    }

    fn has_fired(&self) -> bool {
        self.signal.is_none()
    }
}

/// What to do after a failure was handled.
enum Step<E> {
    /// Run the active kernel.
    Run,
    /// Getting it ready failed too: handle this failure.
    Failed(KernelFailure<E>),
    /// Stop.
    Exit(SupervisorExit),
}

/// Runs a kernel and carries out the core's recovery directives when it fails.
///
/// Build it with [`new`](Self::new) (one [`RecoveryPolicy`]) or
/// [`with_ladder`](Self::with_ladder) (`L` escalation levels), add what the policies need
/// ([`with_replica`], [`with_failover`], [`with_degraded`], [`with_notifier`],
/// [`with_checkpoints`], [`with_health_probe`]), then `run().await` it, on its own task if you
/// like. The [module docs](self) list what each directive does.
///
/// Delays are slept on tokio's clock, so tests run on the paused clock; the supervisor's clock
/// (the `at` of its events) starts at its first [`run`](Self::run).
///
/// [`with_replica`]: Self::with_replica
/// [`with_failover`]: Self::with_failover
/// [`with_degraded`]: Self::with_degraded
/// [`with_notifier`]: Self::with_notifier
/// [`with_checkpoints`]: Self::with_checkpoints
/// [`with_health_probe`]: Self::with_health_probe
pub struct Supervisor<K: SupervisedKernel, const L: usize = 1> {
    name: String,
    ladder: RecoveryLadder<L>,
    kernels: Kernels<K>,
    active: KernelSlot,
    notifier: Option<Box<dyn ErasedNotifier<K::Error>>>,
    restorer: Option<Box<dyn Restore<K>>>,
    health: Option<(HealthProbe, String)>,
    log: SupervisorLog<K::Error>,
    fail_back: bool,
}

impl<K: SupervisedKernel, const L: usize> fmt::Debug for Supervisor<K, L> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Supervisor")
            .field("name", &self.name)
            .field("active", &self.active)
            .field("level", &self.ladder.level())
            .field("recovery", &self.ladder.current().map(Recovery::state))
            .field("checkpoints", &self.restorer.is_some())
            .field("notifier", &self.notifier.is_some())
            .field("fail_back", &self.fail_back)
            .finish_non_exhaustive()
    }
}

impl<K: SupervisedKernel> Supervisor<K> {
    /// A supervisor called `name` (for logs and alerts) of `kernel` under `policy`, its
    /// restarts counted as `intensity` says.
    ///
    /// # Errors
    /// The error of [`Recovery::try_new`]: an invalid policy or intensity, or `max_restarts`
    /// above [`DEFAULT_RESTART_CAPACITY`](rustkernel_core::resilience::DEFAULT_RESTART_CAPACITY).
    /// [`ResilienceConfig::validate`](rustkernel_core::resilience::ResilienceConfig::validate)
    /// accepts exactly the policies this accepts.
    pub fn try_new(
        name: impl Into<String>,
        kernel: K,
        policy: RecoveryPolicy,
        intensity: RestartIntensity,
    ) -> Result<Self, ConfigError> {
        let recovery = Recovery::try_new(policy, intensity)?;
        Ok(Self::with_ladder(name, kernel, recovery.into()))
    }

    /// [`Supervisor::try_new`] for a configuration known to be valid.
    ///
    /// # Panics
    /// When [`Supervisor::try_new`] fails, with the message of the [`ConfigError`].
    #[must_use]
    #[track_caller]
    pub fn new(
        name: impl Into<String>,
        kernel: K,
        policy: RecoveryPolicy,
        intensity: RestartIntensity,
    ) -> Self {
        valid_or_panic(
            Self::try_new(name, kernel, policy, intensity),
            "supervisor configuration",
        )
    }

    /// The core's recovery state machine (the supervisor's only level).
    #[must_use]
    pub fn recovery(&self) -> &Recovery {
        let [recovery] = self.ladder.levels();
        recovery
    }
}

impl<K: SupervisedKernel, const L: usize> Supervisor<K, L> {
    /// A supervisor called `name` of `kernel` that carries out `ladder`'s directives: "restart
    /// up to 3 times, then degrade; while degraded, restart once more, then notify an
    /// operator" is a ladder of two levels. Each level's restarts restart the kernel that runs
    /// then (the degraded one, after a switch).
    #[must_use]
    pub fn with_ladder(name: impl Into<String>, kernel: K, ladder: RecoveryLadder<L>) -> Self {
        Self {
            name: name.into(),
            ladder,
            kernels: Kernels {
                primary: kernel,
                replica: None,
                failover: None,
                degraded: None,
            },
            active: KernelSlot::Primary,
            notifier: None,
            restorer: None,
            health: None,
            log: SupervisorLog::default(),
            fail_back: false,
        }
    }

    /// The replica [`RecoveryStrategy::UseReplica`] switches to.
    #[must_use]
    pub fn with_replica(mut self, kernel: K) -> Self {
        self.kernels.replica = Some(kernel);
        self
    }

    /// The backup [`RecoveryStrategy::Failover`] switches to.
    #[must_use]
    pub fn with_failover(mut self, kernel: K) -> Self {
        self.kernels.failover = Some(kernel);
        self
    }

    /// The reduced implementation [`RecoveryStrategy::Degrade`] switches to (a CPU path for a
    /// GPU kernel).
    #[must_use]
    pub fn with_degraded(mut self, kernel: K) -> Self {
        self.kernels.degraded = Some(kernel);
        self
    }

    /// Who [`RecoveryStrategy::NotifyOperator`] alerts, besides the `tracing::error!` event.
    #[must_use]
    pub fn with_notifier(mut self, notifier: impl Notifier<K::Error>) -> Self {
        self.notifier = Some(Box::new(notifier));
        self
    }

    /// Resets component `component` of `probe` whenever the supervisor restarts or switches
    /// the kernel, so its probes (startup first) judge the new run afresh.
    #[must_use]
    pub fn with_health_probe(mut self, probe: HealthProbe, component: impl Into<String>) -> Self {
        self.health = Some((probe, component.into()));
        self
    }

    /// Switches back to the primary kernel when the escalation that switched away from it
    /// ends: when the ladder, after quiet windows, is back at level 0 while a replica,
    /// failover or degraded kernel runs. The running kernel is dropped (its future is
    /// cancelled), the primary is restarted ([`SupervisedKernel::restart`]), gets the latest
    /// checkpoint and runs; a [`SupervisorEvent::Switched`] records it. Without this, the
    /// supervisor stays on the kernel it switched to until that one returns.
    ///
    /// For a kernel whose alternate is a reduced mode of the same resource (a GPU worker
    /// watched on probation while a CPU path serves), this is what "de-escalate after a quiet
    /// window" means.
    #[must_use]
    pub fn with_fail_back(mut self) -> Self {
        self.fail_back = true;
        self
    }

    /// Calls `observer` with every [`SupervisorEvent`] as it happens, on the supervisor's
    /// task, before it is logged: for state that must follow the supervisor at once (a
    /// health component, a status shown to users). Keep it short; it must not block.
    #[must_use]
    pub fn with_observer(
        self,
        observer: impl Fn(&SupervisorEvent<K::Error>) + Send + Sync + 'static,
    ) -> Self {
        self.log.observe(Arc::new(observer));
        self
    }

    // ----- getters -----

    /// The supervisor's name.
    #[must_use]
    pub fn name(&self) -> &str {
        &self.name
    }

    /// Which kernel runs (or ran last).
    #[must_use]
    pub fn active_slot(&self) -> KernelSlot {
        self.active
    }

    /// The kernel in `slot`, if the supervisor has one.
    #[must_use]
    pub fn kernel(&self, slot: KernelSlot) -> Option<&K> {
        self.kernels.get(slot)
    }

    /// The kernel in `slot`, mutably.
    #[must_use]
    pub fn kernel_mut(&mut self, slot: KernelSlot) -> Option<&mut K> {
        self.kernels.get_mut(slot)
    }

    /// The core's escalation ladder (one level for a supervisor built from one policy).
    #[must_use]
    pub const fn ladder(&self) -> &RecoveryLadder<L> {
        &self.ladder
    }

    /// The record of what the supervisor did; clone it before moving the supervisor to a task.
    #[must_use]
    pub fn log(&self) -> SupervisorLog<K::Error> {
        self.log.clone()
    }

    // ----- running -----

    /// Runs the active kernel (the primary at first) and recovers it as the policy says, until
    /// it completes or recovery ends (see [`SupervisorExit`]).
    ///
    /// If checkpoints are configured, the latest good one is restored before the first run too,
    /// so a service that crashed resumes where its kernel was. `run` may be called again after
    /// it returned; the core's state (restart budget, escalation) carries over.
    ///
    /// # Errors
    /// [`SupervisorError::MissingKernel`] before anything runs, when the policy's strategy or
    /// escalation needs a kernel that was not given.
    pub async fn run(&mut self) -> Result<SupervisorExit, SupervisorError> {
        self.run_until(std::future::pending(), Duration::ZERO).await
    }

    /// [`run`](Self::run) until `stop` completes, then stop as an OTP supervisor shuts a child
    /// down: nothing more is started (a restart or switch that was due is dropped), and a
    /// kernel that is running gets `grace` to return by itself (tell it to through its own
    /// channel, as a process gets a shutdown request) before its future is dropped. Returns
    /// [`SupervisorExit::Completed`] when the kernel returned `Ok` within the grace,
    /// [`SupervisorExit::Stopped`] otherwise.
    ///
    /// # Errors
    /// As [`run`](Self::run).
    pub async fn run_until(
        &mut self,
        stop: impl Future<Output = ()> + Send,
        grace: Duration,
    ) -> Result<SupervisorExit, SupervisorError> {
        self.check_kernels()?;
        let stop = std::pin::pin!(stop);
        let mut stop = Stop {
            signal: Some(stop),
            grace,
        };
        let at = clock::now();
        tracing::info!(kernel = %self.name, slot = %self.active, "supervisor started");
        self.log.push(SupervisorEvent::Started {
            at,
            slot: self.active,
        });
        self.restore_active().await;
        loop {
            let mut step = match self.run_active(&mut stop).await {
                Ran::Returned(Ok(())) => return Ok(self.stop(SupervisorExit::Completed)),
                Ran::Stopped => return Ok(self.stop(SupervisorExit::Stopped)),
                Ran::Returned(Err(error)) => Step::Failed(error),
                Ran::FailBack => self.fail_back(&mut stop).await,
            };
            loop {
                match step {
                    Step::Run if stop.has_fired() => {
                        return Ok(self.stop(SupervisorExit::Stopped));
                    }
                    Step::Run => break,
                    Step::Failed(error) => step = self.handle_failure(error, &mut stop).await,
                    Step::Exit(exit) => return Ok(self.stop(exit)),
                }
            }
        }
    }

    fn check_kernels(&self) -> Result<(), SupervisorError> {
        for level in self.ladder.levels() {
            let policy = level.policy();
            for strategy in core::iter::once(policy.strategy).chain(policy.escalation) {
                if let Some(slot) = KernelSlot::for_strategy(strategy)
                    && self.kernels.get(slot).is_none()
                {
                    return Err(SupervisorError::MissingKernel { strategy, slot });
                }
            }
        }
        Ok(())
    }

    /// Runs the active kernel until it returns or panics, telling the core it is healthy
    /// whenever the ladder's `healthy_at` comes; with fail-back, until the ladder is back at
    /// level 0 while an alternate runs.
    async fn run_active(&mut self, stop: &mut Stop<'_>) -> Ran<K::Error> {
        let Self {
            kernels,
            active,
            ladder,
            log,
            name,
            fail_back,
            ..
        } = self;
        let Some(kernel) = kernels.get_mut(*active) else {
            // Unreachable: only slots that hold a kernel become active.
            return Ran::Returned(Ok(()));
        };
        let failed = |result: Result<Result<(), K::Error>, String>| match result {
            Ok(Ok(())) => Ok(()),
            Ok(Err(error)) => Err(KernelFailure::Error(Arc::new(error))),
            Err(message) => Err(KernelFailure::Panic(message)),
        };
        let run = CatchPanic::new(kernel.run());
        tokio::pin!(run);
        loop {
            let healthy_at = ladder.healthy_at().map(clock::to_tokio);
            tokio::select! {
                result = &mut run => return Ran::Returned(failed(result)),
                () = tokio::time::sleep_until(healthy_at.unwrap_or_else(clock::never)),
                    if healthy_at.is_some() =>
                {
                    let at = clock::now();
                    if let Some(recovered) = ladder.on_healthy(at) {
                        tracing::info!(kernel = %name, ?recovered, level = ladder.level(), "kernel healthy for a whole restart window");
                        log.push(SupervisorEvent::Recovered { at, recovered });
                        if *fail_back && ladder.level() == 0 && *active != KernelSlot::Primary {
                            return Ran::FailBack;
                        }
                    }
                }
                () = stop.fired(), if !stop.has_fired() => {
                    tracing::info!(kernel = %name, grace = ?stop.grace, "stop asked; the kernel has its grace to return");
                    return match tokio::time::timeout(stop.grace, &mut run).await {
                        Ok(result @ Ok(Ok(()))) => Ran::Returned(failed(result)),
                        _ => Ran::Stopped,
                    };
                }
            }
        }
    }

    /// The escalation that switched away from the primary ended: restart the primary and run
    /// it again.
    async fn fail_back(&mut self, stop: &mut Stop<'_>) -> Step<K::Error> {
        let at = clock::now();
        let from = self.active;
        tracing::info!(kernel = %self.name, %from, "escalation over: failing back to the primary");
        self.log.push(SupervisorEvent::Switched {
            at,
            from,
            to: KernelSlot::Primary,
        });
        self.active = KernelSlot::Primary;
        self.restart(clock::now(), None, stop).await
    }

    async fn handle_failure(
        &mut self,
        error: KernelFailure<K::Error>,
        stop: &mut Stop<'_>,
    ) -> Step<K::Error> {
        let at = clock::now();
        tracing::warn!(kernel = %self.name, slot = %self.active, %error, "supervised kernel failed");
        self.log.push(SupervisorEvent::Failed {
            at,
            slot: self.active,
            error: error.clone(),
        });
        let step = self.ladder.on_failure(at);
        let (level, action) = (step.level, step.action);
        tracing::info!(kernel = %self.name, level, %action, directive = %step.directive, "recovery decided");
        self.log
            .push(SupervisorEvent::Decided { at, level, action });
        match step.directive {
            Directive::Restart { at, attempt } => self.restart(at, attempt, stop).await,
            Directive::Pending { at } => self.restart(at, None, stop).await,
            Directive::GiveUp | Directive::Exhausted(Escalation::GaveUp) => {
                tracing::error!(kernel = %self.name, %error, "restarts exhausted and no escalation: the kernel stays down");
                Step::Exit(SupervisorExit::GaveUp)
            }
            Directive::NotifyOperator => {
                self.notify(at, level, action, error).await;
                Step::Exit(SupervisorExit::OperatorNotified)
            }
            Directive::Exhausted(Escalation::To(_)) => {
                self.notify(at, level, action, error).await;
                Step::Exit(SupervisorExit::Exhausted)
            }
            Directive::UseReplica | Directive::Failover | Directive::Degrade => {
                match step.directive.strategy().and_then(KernelSlot::for_strategy) {
                    Some(slot) if slot != self.active && self.kernels.get(slot).is_some() => {
                        self.switch(slot).await
                    }
                    _ => {
                        self.notify(at, level, action, error).await;
                        Step::Exit(SupervisorExit::Exhausted)
                    }
                }
            }
        }
    }

    /// Sleeps until `at` (or the stop), restarts the active kernel and restores its
    /// checkpoint.
    async fn restart(
        &mut self,
        at: Instant,
        attempt: Option<u32>,
        stop: &mut Stop<'_>,
    ) -> Step<K::Error> {
        tokio::select! {
            () = tokio::time::sleep_until(clock::to_tokio(at)) => {}
            () = stop.fired() => return Step::Exit(SupervisorExit::Stopped),
        }
        let slot = self.active;
        let Some(kernel) = self.kernels.get_mut(slot) else {
            return Step::Exit(SupervisorExit::Exhausted);
        };
        match CatchPanic::new(kernel.restart()).await {
            Ok(Ok(())) => {}
            Ok(Err(error)) => return Step::Failed(KernelFailure::Error(Arc::new(error))),
            Err(message) => return Step::Failed(KernelFailure::Panic(message)),
        }
        let at = clock::now();
        tracing::info!(kernel = %self.name, %slot, ?attempt, "kernel restarted");
        self.log
            .push(SupervisorEvent::Restarted { at, slot, attempt });
        self.began().await;
        Step::Run
    }

    /// Makes `to` the active kernel and restores its checkpoint.
    async fn switch(&mut self, to: KernelSlot) -> Step<K::Error> {
        let at = clock::now();
        let from = self.active;
        tracing::warn!(kernel = %self.name, %from, %to, "switching kernels");
        self.log.push(SupervisorEvent::Switched { at, from, to });
        self.active = to;
        self.began().await;
        Step::Run
    }

    /// A (re)started kernel: its health probe starts over and it gets the latest checkpoint.
    async fn began(&mut self) {
        if let Some((probe, component)) = &self.health
            && let Err(error) = probe.reset(component)
        {
            tracing::warn!(kernel = %self.name, component = %component, %error, "cannot reset the health probe");
        }
        self.restore_active().await;
    }

    async fn restore_active(&mut self) {
        let slot = self.active;
        let (Some(restorer), Some(kernel)) = (&self.restorer, self.kernels.get_mut(slot)) else {
            return;
        };
        let outcome = restorer.restore(kernel).await;
        let at = clock::now();
        match outcome {
            RestoreOutcome::Restored(sequence) => {
                tracing::info!(kernel = %self.name, %slot, sequence, "checkpoint restored");
                self.log
                    .push(SupervisorEvent::Restored { at, slot, sequence });
            }
            RestoreOutcome::NoCheckpoint => {
                tracing::debug!(kernel = %self.name, %slot, "no checkpoint to restore");
            }
            RestoreOutcome::Failed(error) => {
                tracing::warn!(kernel = %self.name, %slot, %error, "cannot restore a checkpoint");
                self.log
                    .push(SupervisorEvent::RestoreFailed { at, slot, error });
            }
        }
    }

    async fn notify(
        &mut self,
        at: Instant,
        level: usize,
        action: RecoveryAction,
        error: KernelFailure<K::Error>,
    ) {
        let alert = OperatorAlert {
            kernel: self.name.clone(),
            slot: self.active,
            error,
            action,
            level,
            restarts: self.ladder.levels().get(level).map_or(0, Recovery::attempt),
            at,
        };
        tracing::error!(
            kernel = %alert.kernel,
            slot = %alert.slot,
            error = %alert.error,
            action = %alert.action,
            level = alert.level,
            restarts = alert.restarts,
            "operator attention needed"
        );
        if let Some(notifier) = &self.notifier {
            notifier.notify_boxed(&alert).await;
        }
        self.log.push(SupervisorEvent::OperatorNotified { alert });
    }

    fn stop(&mut self, exit: SupervisorExit) -> SupervisorExit {
        let at = clock::now();
        tracing::info!(kernel = %self.name, %exit, "supervisor stopped");
        self.log.push(SupervisorEvent::Stopped { at, exit });
        exit
    }
}

impl<K, const L: usize> Supervisor<K, L>
where
    K: SupervisedKernel + CheckpointableKernel + 'static,
    K::Checkpoint: DeserializeOwned + Send + 'static,
{
    /// Restores the latest good checkpoint from `store` into every kernel the supervisor
    /// (re)starts, the first run included. The kernel saves its checkpoints itself (give it a
    /// clone of the store); a failed restore is logged and the kernel runs from its own state.
    #[must_use]
    pub fn with_checkpoints(mut self, store: impl CheckpointStore) -> Self {
        self.restorer = Some(Box::new(StoreRestorer { store }));
        self
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    struct Done;

    impl SupervisedKernel for Done {
        type Error = String;

        async fn run(&mut self) -> Result<(), String> {
            Ok(())
        }
    }

    #[tokio::test(start_paused = true)]
    async fn a_kernel_that_completes_stops_the_supervisor() {
        let mut supervisor = Supervisor::new(
            "done",
            Done,
            RecoveryPolicy::default(),
            RestartIntensity::default(),
        );
        assert_eq!(supervisor.run().await, Ok(SupervisorExit::Completed));
        let events = supervisor.log().events();
        assert!(matches!(
            events.as_slice(),
            [
                SupervisorEvent::Started { .. },
                SupervisorEvent::Stopped {
                    exit: SupervisorExit::Completed,
                    ..
                }
            ]
        ));
    }

    #[tokio::test(start_paused = true)]
    async fn a_policy_needing_a_missing_kernel_is_refused() {
        let policy = RecoveryPolicy {
            strategy: RecoveryStrategy::Failover,
            ..RecoveryPolicy::default()
        };
        let mut supervisor = Supervisor::new("x", Done, policy, RestartIntensity::default());
        assert_eq!(
            supervisor.run().await,
            Err(SupervisorError::MissingKernel {
                strategy: RecoveryStrategy::Failover,
                slot: KernelSlot::Failover
            })
        );
    }

    #[test]
    fn invalid_policies_are_config_errors() {
        let policy = RecoveryPolicy {
            max_restarts: 0,
            ..RecoveryPolicy::default()
        };
        assert!(Supervisor::try_new("x", Done, policy, RestartIntensity::default()).is_err());
    }
}
