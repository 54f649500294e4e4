//! A health monitor: runs each registered component's probe checks at their interval, each under
//! its timeout, on the core's [`HealthRegistry`].
//!
//! The core registry decides what is due, notices timeouts and startup deadlines, and turns
//! results into statuses with hysteresis; this monitor reads embassy's clock, runs the checks
//! (your [`HealthCheck`]: an async closure or a type), cuts each at its timeout with
//! `with_deadline`, and sleeps with `Timer` until the registry next needs attention.
//!
//! The registry sits behind an `embassy_sync` blocking mutex, so other tasks (telemetry, the
//! supervisor, a command handler) read [`overall`](HealthMonitor::overall),
//! [`live`](HealthMonitor::live), [`ready`](HealthMonitor::ready) or any component through
//! [`with_registry`](HealthMonitor::with_registry) while [`run`](HealthMonitor::run) is
//! sleeping or checking. [`new`](HealthMonitor::new) is `const`, so the monitor can be a `static`.
//!
//! Every probe keeps its own interval whatever the others do: [`run`](HealthMonitor::run)
//! starts each check when it is due and runs it beside the checks already running (one runner
//! per probe, joined in the monitor's own future; nothing is allocated), so a check that hangs
//! until its timeout delays no other check, and a component's startup deadline cannot run out
//! because another component's check is slow.
//!
//! ```
//! use core::time::Duration;
//! use embassy_sync::blocking_mutex::raw::CriticalSectionRawMutex;
//! use rustkernel_core::resilience::{
//!     ComponentId, Criticality, HealthCheckResult, HealthProbeConfig, HealthStatus, ProbeRole,
//!     ProbeRoles,
//! };
//! use rustkernel_embassy::health::{HealthMonitor, MonitorEvent};
//!
//! static MONITOR: HealthMonitor<CriticalSectionRawMutex, 2> = HealthMonitor::new();
//!
//! # embassy_futures::block_on(async {
//! let accelerator = MONITOR
//!     .register(
//!         "accelerator",
//!         HealthProbeConfig {
//!             interval: Duration::from_millis(100),
//!             timeout: Duration::from_millis(20),
//!             failure_threshold: 3,
//!             success_threshold: 1,
//!         },
//!         Criticality::Critical,
//!         ProbeRole::Liveness,
//!     )
//!     .expect("room for it");
//! // The check: ping the accelerator (here it always answers).
//! let ping = |_component: ComponentId, _role: ProbeRole| async { HealthCheckResult::healthy() };
//! // One round of due checks; a firmware task calls `MONITOR.run(..)` instead, which loops.
//! MONITOR.run_due(&ping, &mut |event: MonitorEvent| { let _ = event; }).await;
//! assert_eq!(MONITOR.status(accelerator), Some(HealthStatus::Healthy));
//! assert!(MONITOR.live() && MONITOR.ready());
//! # });
//! ```

use core::cell::RefCell;
use core::convert::Infallible;
use core::fmt;
use core::future::Future;

use embassy_futures::join::{join, join_array};
use embassy_futures::select::{Either, select};
use embassy_sync::blocking_mutex::Mutex;
use embassy_sync::blocking_mutex::raw::{CriticalSectionRawMutex, NoopRawMutex, RawMutex};
use embassy_sync::signal::Signal;
use embassy_time::{Timer, with_deadline};
use rustkernel_core::resilience::health::UnknownComponent;
use rustkernel_core::resilience::{
    CheckTicket, ComponentId, Criticality, HealthCheckResult, HealthEvent, HealthProbeConfig,
    HealthRegistry, HealthStatus, ProbeRole, ProbeRoles, RegistryError,
};

use crate::time::{now, to_embassy_instant};

/// One health check: asked to check `component`'s `role` probe, it answers with a
/// [`HealthCheckResult`]. The monitor cuts it at the probe's timeout (its future is dropped)
/// and fills in `latency` and `checked_at` from embassy's clock.
///
/// The monitor runs the checks of different probes at the same time (each on its own
/// interval), so a check takes `&self`; keep state that checks change in a `Cell`, a
/// `RefCell` borrowed only between `.await`s, or a blocking mutex.
///
/// Implemented for every `Fn(ComponentId, ProbeRole) -> impl Future<Output =
/// HealthCheckResult>`; implement it on a type when the checks need state of their own.
///
/// The tokio adapter's `HealthCheck::check(&self)` takes no arguments because each component
/// registers its own check object, stored boxed. Without an allocator this monitor holds one
/// check for every component and role, so the check is told which one it runs.
#[allow(
    async_fn_in_trait,
    reason = "embassy executors run futures in place; no Send bound is wanted"
)]
pub trait HealthCheck {
    /// Runs the check of `component`'s `role` probe.
    async fn check(&self, component: ComponentId, role: ProbeRole) -> HealthCheckResult;
}

impl<F, Fut> HealthCheck for F
where
    F: Fn(ComponentId, ProbeRole) -> Fut,
    Fut: Future<Output = HealthCheckResult>,
{
    async fn check(&self, component: ComponentId, role: ProbeRole) -> HealthCheckResult {
        self(component, role).await
    }
}

/// What the monitor reports while it runs, for logs and telemetry.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
#[cfg_attr(feature = "defmt", derive(defmt::Format))]
pub enum MonitorEvent {
    /// A check finished or timed out.
    Checked {
        /// The component checked.
        component: ComponentId,
        /// Its probe.
        role: ProbeRole,
        /// The status the check reported; `Unhealthy` when it timed out.
        status: HealthStatus,
        /// Whether it was cut at its timeout.
        timed_out: bool,
    },
    /// The registry changed: a probe's status, a startup that succeeded or failed. Act on
    /// [`HealthEvent::event`]`.needs_recovery()` (startup failed, liveness unhealthy).
    Health(HealthEvent),
}

/// Runs health checks for up to `N` components, sharing their health with other tasks.
///
/// # Method families
/// - Setup: `const` [`new`](Self::new), [`register`](Self::register).
/// - Running: [`run`](Self::run) (a task's endless loop), [`run_due`](Self::run_due) (one
///   round of what is due now, for callers with their own loop).
/// - Inputs from other tasks: [`reset`](Self::reset) (the component restarted: its probes start
///   over, startup first), [`wake`](Self::wake).
/// - Getters: [`overall`](Self::overall), [`live`](Self::live), [`ready`](Self::ready),
///   [`started`](Self::started), [`status`](Self::status), [`id`](Self::id),
///   [`with_registry`](Self::with_registry) (read anything from the core registry).
/// - Output: [`poll_at`](Self::poll_at), when the registry next needs attention.
pub struct HealthMonitor<M: RawMutex = CriticalSectionRawMutex, const N: usize = 4> {
    registry: Mutex<M, RefCell<HealthRegistry<N>>>,
    wake: Signal<M, ()>,
}

impl<M: RawMutex, const N: usize> HealthMonitor<M, N> {
    /// A monitor with no components; `const` so it can be a `static`. `N` must be positive
    /// (checked at compile time).
    #[must_use]
    pub const fn new() -> Self {
        Self {
            registry: Mutex::new(RefCell::new(HealthRegistry::new())),
            wake: Signal::new(),
        }
    }

    /// Registers a component with probes for `roles`, all using `config`; its startup deadline
    /// counts from now. Wakes a running monitor so the first checks run at once.
    ///
    /// # Errors
    /// The core's [`RegistryError`]: invalid configuration or roles, empty or too long name,
    /// duplicate name, registry full; [`RegistryError::Busy`] when called while the registry
    /// is borrowed (from inside [`with_registry`](Self::with_registry)).
    pub fn register(
        &self,
        name: &str,
        config: HealthProbeConfig,
        criticality: Criticality,
        roles: impl Into<ProbeRoles>,
    ) -> Result<ComponentId, RegistryError> {
        let at = now();
        let roles = roles.into();
        let id = self
            .with_mut(|registry| registry.register(name, config, criticality, roles, at))
            .unwrap_or(Err(RegistryError::Busy))?;
        self.wake();
        Ok(id)
    }

    /// Component `id` restarted now: its probes forget their results and start over (startup
    /// first, if it has one). Wakes a running monitor.
    ///
    /// # Errors
    /// [`UnknownComponent`] when no component has this id.
    pub fn reset(&self, id: ComponentId) -> Result<(), UnknownComponent> {
        let at = now();
        self.with_mut(|registry| registry.reset(id, at))
            .unwrap_or(Err(UnknownComponent))?;
        self.wake();
        Ok(())
    }

    /// Makes a sleeping [`run`](Self::run) look at the registry again now.
    pub fn wake(&self) {
        self.wake.signal(());
    }

    /// Runs the checks forever, each probe on its own interval: a scheduler starts every check
    /// when it is due and hands it to that probe's own runner, which runs it under its timeout
    /// while the others go on, then the scheduler sleeps until the registry next needs
    /// attention (or [`wake`](Self::wake) is called). Spawn it as a task.
    ///
    /// A check that hangs therefore delays nothing but itself: other components (and the other
    /// probes of its own component) keep their intervals, and a component's startup deadline
    /// cannot pass because another component's check is slow. The future holds one runner per
    /// possible probe (`3 x N`), each with room for one check future.
    ///
    /// `observer` sees every [`MonitorEvent`]; it runs outside the lock, so it may use the
    /// monitor (and send to channels: forward `needs_recovery()` events to a supervisor).
    pub async fn run<C, O>(&self, checks: &C, observer: &mut O) -> Infallible
    where
        C: HealthCheck,
        O: FnMut(MonitorEvent),
    {
        let observer = RefCell::new(observer);
        let observer = &observer;
        let inboxes: [[Inbox; ROLES]; N] =
            core::array::from_fn(|_| core::array::from_fn(|_| Signal::new()));
        let runners = join_array(inboxes.each_ref().map(|probes| {
            join_array(
                probes
                    .each_ref()
                    .map(|inbox| self.runner(checks, observer, inbox)),
            )
        }));
        // The runners go first, so a check cut at its timeout is reported before the
        // scheduler, woken at the same instant, applies the timeout. Neither ever ends.
        let (_, never) = join(runners, self.schedule(&inboxes, observer)).await;
        never
    }

    /// Runs every check due now, at the same time, each under its timeout, and applies timeouts
    /// and startup deadlines; returns when nothing is left to do at the current time (a
    /// startup that passed makes liveness and readiness due at once: they run too).
    ///
    /// For callers with their own loop; [`run`](Self::run) keeps each probe on its own
    /// interval, which rounds of `run_due` cannot do while one of their checks hangs.
    pub async fn run_due<C, O>(&self, checks: &C, observer: &mut O)
    where
        C: HealthCheck,
        O: FnMut(MonitorEvent),
    {
        let observer = RefCell::new(observer);
        let observer = &observer;
        loop {
            let at = now();
            self.drain_events(at, observer);
            let mut jobs: [[Option<Job>; ROLES]; N] = [[None; ROLES]; N];
            let mut started = false;
            while let Some(job) = self.start_next(at) {
                if let Some(slot) = slot_of(&mut jobs, job.ticket) {
                    *slot = Some(job);
                    started = true;
                }
            }
            if !started {
                return;
            }
            join_array(jobs.map(|probes| {
                join_array(probes.map(|job| async move {
                    if let Some(job) = job {
                        self.run_check(checks, observer, job).await;
                    }
                }))
            }))
            .await;
        }
    }

    /// The service's status: the worst contribution of the components.
    #[must_use]
    pub fn overall(&self) -> HealthStatus {
        self.with(HealthRegistry::overall)
            .unwrap_or(HealthStatus::Unknown)
    }

    /// Every critical component is live.
    #[must_use]
    pub fn live(&self) -> bool {
        self.with(HealthRegistry::live).unwrap_or(false)
    }

    /// Every critical component is ready.
    #[must_use]
    pub fn ready(&self) -> bool {
        self.with(HealthRegistry::ready).unwrap_or(false)
    }

    /// Every critical component has started.
    #[must_use]
    pub fn started(&self) -> bool {
        self.with(HealthRegistry::started).unwrap_or(false)
    }

    /// The status of component `id`.
    #[must_use]
    pub fn status(&self, id: ComponentId) -> Option<HealthStatus> {
        self.with(|registry| registry.get(id).map(|entry| entry.status()))
            .flatten()
    }

    /// The id of the component called `name`.
    #[must_use]
    pub fn id(&self, name: &str) -> Option<ComponentId> {
        self.with(|registry| registry.id(name)).flatten()
    }

    /// When the registry next needs attention, on embassy's clock.
    #[must_use]
    pub fn poll_at(&self) -> Option<embassy_time::Instant> {
        self.with(HealthRegistry::poll_at)
            .flatten()
            .map(to_embassy_instant)
    }

    /// Reads the core registry under the lock (keep `f` short: it runs in the lock).
    ///
    /// `None` only if the registry is already borrowed, which needs `f` to call back into the
    /// monitor.
    pub fn with_registry<R>(&self, f: impl FnOnce(&HealthRegistry<N>) -> R) -> Option<R> {
        self.with(f)
    }

    /// The scheduler of [`run`](Self::run): applies timeouts and deadlines, starts what is due
    /// and hands each check to its probe's inbox, then sleeps until the registry next needs
    /// attention or something (a runner that finished, a registration, `wake`) woke it.
    async fn schedule<O: FnMut(MonitorEvent)>(
        &self,
        inboxes: &[[Inbox; ROLES]; N],
        observer: &RefCell<&mut O>,
    ) -> Infallible {
        loop {
            // Reset before reading the registry: a change after this read wakes the wait.
            self.wake.reset();
            let at = now();
            self.drain_events(at, observer);
            while let Some(job) = self.start_next(at) {
                if let Some(inbox) = inbox_of(inboxes, job.ticket) {
                    inbox.signal(job);
                }
            }
            let soonest = embassy_time::Instant::from_ticks(
                embassy_time::Instant::now().as_ticks().saturating_add(1),
            );
            // Never earlier than the next tick: a due check that could not start must not turn
            // this loop into a busy one.
            let next = self
                .poll_at()
                .unwrap_or(embassy_time::Instant::MAX)
                .max(soonest);
            select(Timer::at(next), self.wake.wait()).await;
        }
    }

    /// The runner of one probe in [`run`](Self::run): runs each check handed to it, then wakes
    /// the scheduler (the result may make other checks due). A newer check of the same probe
    /// replaces the running one, whose ticket the registry no longer accepts (the component was
    /// reset).
    async fn runner<C: HealthCheck, O: FnMut(MonitorEvent)>(
        &self,
        checks: &C,
        observer: &RefCell<&mut O>,
        inbox: &Inbox,
    ) -> Infallible {
        let mut job = inbox.wait().await;
        loop {
            match select(self.run_check(checks, observer, job), inbox.wait()).await {
                Either::First(()) => {
                    self.wake();
                    job = inbox.wait().await;
                }
                Either::Second(newer) => job = newer,
            }
        }
    }

    /// Starts the next check due at `at`, with its deadline.
    fn start_next(&self, at: rustkernel_core::time::Instant) -> Option<Job> {
        self.with_mut(|registry| {
            let ticket = registry.start_due(at)?;
            let timeout = registry
                .get(ticket.component())
                .map(|entry| entry.health().config().timeout)?;
            Some(Job {
                ticket,
                started: at,
                deadline: at.saturating_add(timeout),
            })
        })
        .flatten()
    }

    /// Runs one started check under its deadline and records what came of it.
    async fn run_check<C: HealthCheck, O: FnMut(MonitorEvent)>(
        &self,
        checks: &C,
        observer: &RefCell<&mut O>,
        job: Job,
    ) {
        let Job {
            ticket,
            started,
            deadline,
        } = job;
        let answer = with_deadline(
            to_embassy_instant(deadline),
            checks.check(ticket.component(), ticket.role()),
        )
        .await;
        let finished = now();
        // An answer at or after the deadline counts as a timeout in the core too.
        let answer = answer.ok().filter(|_| finished < deadline);
        match answer {
            Some(mut result) => {
                result.latency = finished.saturating_duration_since(started);
                result.checked_at = finished;
                self.record(ticket, result, observer);
            }
            None => {
                emit(observer, checked(ticket, HealthStatus::Unhealthy, true));
                self.drain_events(finished, observer);
            }
        }
    }

    fn record<O: FnMut(MonitorEvent)>(
        &self,
        ticket: CheckTicket,
        result: HealthCheckResult,
        observer: &RefCell<&mut O>,
    ) {
        let status = result.status;
        let at = result.checked_at;
        let outcome = self.with_mut(|registry| registry.on_result(ticket, result, at));
        // A result the registry refused (stale, startup deadline first) is not a check.
        if let Some(Ok(event)) = outcome {
            emit(observer, checked(ticket, status, false));
            if let Some(event) = event {
                emit(observer, MonitorEvent::Health(event));
            }
        }
        self.drain_events(at, observer);
    }

    /// Applies timeouts and startup deadlines due at `at`, reporting each event.
    fn drain_events<O: FnMut(MonitorEvent)>(
        &self,
        at: rustkernel_core::time::Instant,
        observer: &RefCell<&mut O>,
    ) {
        while let Some(event) = self.with_mut(|registry| registry.poll(at)).flatten() {
            emit(observer, MonitorEvent::Health(event));
        }
    }

    fn with<R>(&self, f: impl FnOnce(&HealthRegistry<N>) -> R) -> Option<R> {
        self.registry
            .lock(|cell| cell.try_borrow().ok().map(|registry| f(&registry)))
    }

    fn with_mut<R>(&self, f: impl FnOnce(&mut HealthRegistry<N>) -> R) -> Option<R> {
        self.registry.lock(|cell| {
            cell.try_borrow_mut()
                .ok()
                .map(|mut registry| f(&mut registry))
        })
    }
}

/// How many probe roles a component can have: one runner each.
const ROLES: usize = ProbeRole::ALL.len();

/// Where the scheduler hands a started check to its probe's runner.
type Inbox = Signal<NoopRawMutex, Job>;

/// A started check: its ticket, when it started and when it times out (core clock).
#[derive(Clone, Copy)]
struct Job {
    ticket: CheckTicket,
    started: rustkernel_core::time::Instant,
    deadline: rustkernel_core::time::Instant,
}

/// The runner inbox of the probe that `ticket` checks.
fn inbox_of<const N: usize>(inboxes: &[[Inbox; ROLES]; N], ticket: CheckTicket) -> Option<&Inbox> {
    let component = usize::try_from(ticket.component().index()).ok()?;
    inboxes
        .get(component)?
        .get(usize::from(ticket.role() as u8))
}

/// The slot of the probe that `ticket` checks in a round of [`HealthMonitor::run_due`].
fn slot_of<const N: usize>(
    jobs: &mut [[Option<Job>; ROLES]; N],
    ticket: CheckTicket,
) -> Option<&mut Option<Job>> {
    let component = usize::try_from(ticket.component().index()).ok()?;
    jobs.get_mut(component)?
        .get_mut(usize::from(ticket.role() as u8))
}

/// Hands `event` to the observer shared by the scheduler and the runners (never re-entered:
/// nothing here calls the observer from inside the observer).
fn emit<O: FnMut(MonitorEvent)>(observer: &RefCell<&mut O>, event: MonitorEvent) {
    if let Ok(mut observer) = observer.try_borrow_mut() {
        observer(event);
    }
}

fn checked(ticket: CheckTicket, status: HealthStatus, timed_out: bool) -> MonitorEvent {
    MonitorEvent::Checked {
        component: ticket.component(),
        role: ticket.role(),
        status,
        timed_out,
    }
}

impl<M: RawMutex, const N: usize> Default for HealthMonitor<M, N> {
    fn default() -> Self {
        Self::new()
    }
}

impl<M: RawMutex, const N: usize> fmt::Debug for HealthMonitor<M, N> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("HealthMonitor")
            .field("overall", &self.overall())
            .field("components", &self.with(HealthRegistry::len))
            .finish_non_exhaustive()
    }
}
