//! Health probes on tokio: checks you write as async functions, run concurrently at the
//! configured interval, each under its own timeout, feeding the core's
//! [`HealthRegistry`].
//!
//! ```
//! use std::sync::Arc;
//! use std::time::Duration;
//! use rustkernel_tokio::resilience::{
//!     HealthCheck, HealthCheckResult, HealthProbe, HealthProbeConfig, HealthStatus,
//! };
//!
//! struct PageRank;
//!
//! impl HealthCheck for PageRank {
//!     async fn check(&self) -> HealthCheckResult {
//!         HealthCheckResult::healthy()
//!     }
//! }
//!
//! # #[tokio::main(flavor = "current_thread", start_paused = true)]
//! # async fn main() {
//! let kernel = Arc::new(PageRank);
//! let probe = HealthProbe::new(HealthProbeConfig {
//!     interval: Duration::from_secs(10),
//!     timeout: Duration::from_secs(5),
//!     failure_threshold: 3,
//!     success_threshold: 1,
//! });
//! probe.register("graph/pagerank", kernel.clone());
//! let result = probe.check("graph/pagerank").await.expect("registered");
//! assert_eq!(result.status, HealthStatus::Healthy);
//!
//! // In a service: check every component every 10 s until the runner is dropped.
//! let runner = probe.spawn();
//! assert!(probe.report().ready);
//! drop(runner);
//! # }
//! ```

mod breaker;
mod report;

use std::fmt;
use std::future::Future;
use std::pin::Pin;
use std::sync::{Arc, Mutex, MutexGuard, PoisonError};
use std::time::Duration;

use crate::clock;
use rustkernel_core::error::{ConfigError, valid_or_panic};
use rustkernel_core::resilience::health::UnknownComponent;
use rustkernel_core::resilience::{
    CheckTicket, ComponentEvent, ComponentId, Criticality, HealthCheckResult, HealthEvent,
    HealthProbeConfig, HealthRegistry, HealthStatus, ProbeRole, ProbeRoles, RegistryError,
};
use rustkernel_core::time::Instant;
use serde::Serialize;
use tokio::sync::{Notify, broadcast};
use tokio::task::{JoinHandle, JoinSet};

pub use breaker::breaker_health;
pub use report::{ComponentReport, HealthReport};

/// How many components one [`HealthProbe`] holds; registering one more is
/// [`RegistryError::Full`].
pub const MAX_COMPONENTS: usize = 64;

/// How many [`ProbeEvent`]s a slow [`HealthProbe::subscribe`]r may fall behind before it
/// misses some (it then gets `RecvError::Lagged`).
pub const EVENT_CAPACITY: usize = 64;

/// A health check you implement for a kernel, a device or a connection.
///
/// Write it as an `async fn`; the future must be `Send` because the probe runs checks on
/// tokio tasks. A check that never finishes is fine: the probe stops waiting after the
/// configured `timeout` and counts a failure. A check should not block its thread, though:
/// put blocking work in `tokio::task::spawn_blocking`.
///
/// `Arc<T>` is a check when `T` is, so `probe.register(name, kernel.clone())` shares a kernel
/// with the probe; [`check_fn`] turns a closure into a check. (The embassy adapter's check
/// takes the component and the probe role instead: with no allocator to hold a check per
/// component, one check serves them all.)
pub trait HealthCheck: Send + Sync + 'static {
    /// Checks once and says how it went. The probe sets the result's latency and
    /// `checked_at`.
    fn check(&self) -> impl Future<Output = HealthCheckResult> + Send;
}

impl<T: HealthCheck> HealthCheck for Arc<T> {
    fn check(&self) -> impl Future<Output = HealthCheckResult> + Send {
        T::check(self)
    }
}

/// A [`HealthCheck`] made of a closure that returns a future; see [`check_fn`].
#[derive(Clone, Copy)]
pub struct FnCheck<F>(F);

impl<F> fmt::Debug for FnCheck<F> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("FnCheck")
    }
}

/// Turns `|| async { .. }` into a [`HealthCheck`].
///
/// ```
/// use rustkernel_tokio::health::check_fn;
/// use rustkernel_tokio::resilience::HealthCheckResult;
///
/// let check = check_fn(|| async { HealthCheckResult::degraded("High latency") });
/// # let _ = check;
/// ```
pub fn check_fn<F, Fut>(f: F) -> FnCheck<F>
where
    F: Fn() -> Fut + Send + Sync + 'static,
    Fut: Future<Output = HealthCheckResult> + Send,
{
    FnCheck(f)
}

impl<F, Fut> HealthCheck for FnCheck<F>
where
    F: Fn() -> Fut + Send + Sync + 'static,
    Fut: Future<Output = HealthCheckResult> + Send,
{
    fn check(&self) -> impl Future<Output = HealthCheckResult> + Send {
        (self.0)()
    }
}

/// A check behind a pointer: [`HealthCheck`] returns `impl Future`, which a `dyn` cannot.
type BoxedCheck<'a> = Pin<Box<dyn Future<Output = HealthCheckResult> + Send + 'a>>;

trait ErasedCheck: Send + Sync {
    fn check_boxed(&self) -> BoxedCheck<'_>;
}

impl<T: HealthCheck> ErasedCheck for T {
    fn check_boxed(&self) -> BoxedCheck<'_> {
        Box::pin(self.check())
    }
}

/// How a component is registered: its criticality, its probe roles and, if it differs from
/// the probe's, its configuration.
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct ComponentOptions {
    /// Whether the service needs it ([`Criticality::Critical`]) or works without it.
    pub criticality: Criticality,
    /// Which probes it has. With [`ProbeRole::Startup`], liveness and readiness wait until the
    /// startup probe passed (Kubernetes' startup gating).
    pub roles: ProbeRoles,
    /// Its own interval, timeout and thresholds; `None` takes the probe's.
    pub config: Option<HealthProbeConfig>,
}

impl Default for ComponentOptions {
    /// Critical, with liveness and readiness probes, the probe's configuration.
    fn default() -> Self {
        Self {
            criticality: Criticality::Critical,
            roles: ProbeRoles::of(&[ProbeRole::Liveness, ProbeRole::Readiness]),
            config: None,
        }
    }
}

/// Something that happened to a component, as [`HealthProbe::subscribe`] delivers it; the
/// same event is logged with `tracing`.
#[derive(Clone, Debug, PartialEq, Eq, Serialize)]
pub struct ProbeEvent {
    /// The component's name.
    pub component: String,
    /// What happened: a probe's status changed, startup succeeded or failed.
    pub event: ComponentEvent,
    /// When, on the probe's clock (microseconds since the probe was created).
    pub at: Instant,
}

/// The components, their checks and the core registry behind one lock.
struct State {
    registry: Box<HealthRegistry<MAX_COMPONENTS>>,
    /// The check of component `i` at index `i` (ids are handed out in order, never removed).
    checks: Vec<Arc<dyn ErasedCheck>>,
}

struct Shared {
    config: HealthProbeConfig,
    state: Mutex<State>,
    /// Wakes the runner when a registration, a reset or an on-demand check changed the
    /// schedule.
    wake: Notify,
    events: broadcast::Sender<ProbeEvent>,
}

/// One run of a component's check, answering the probes that were due together.
struct Batch {
    check: Arc<dyn ErasedCheck>,
    timeout: Duration,
    tickets: Vec<CheckTicket>,
}

impl Batch {
    /// Runs the check under its timeout; a check that does not answer in time is an
    /// `Unhealthy` "timed out" result (the core counts it as a timeout either way).
    async fn run(self) -> (Vec<CheckTicket>, HealthCheckResult) {
        let started = tokio::time::Instant::now();
        let result = tokio::time::timeout(self.timeout, self.check.check_boxed())
            .await
            .unwrap_or_else(|_| HealthCheckResult::unhealthy("timed out"));
        let finished = tokio::time::Instant::now();
        let result = result
            .with_latency(finished.saturating_duration_since(started))
            .at(clock::to_core(finished));
        (self.tickets, result)
    }
}

/// Health probes for named components, run on tokio: the chapter's `HealthProbe`.
///
/// A cheap [`Clone`] handle: clones share the components. Register each component with its
/// [`HealthCheck`], then either ask on demand ([`check`](Self::check)) or let a runner
/// ([`spawn`](Self::spawn) or [`run`](Self::run)) check every component at its `interval`.
/// Each check runs on its own task under its own `timeout`, so a hung check delays no other.
/// Results go into the core's [`HealthRegistry`], which applies the thresholds (hysteresis),
/// startup gating and criticality; [`report`](Self::report) reads it for `/health`.
///
/// Every status change is logged with `tracing` (target `rustkernel_tokio::health`; `warn`
/// when a probe turns unhealthy, `error` when startup fails, `info` otherwise) and sent to
/// [`subscribe`](Self::subscribe)rs.
///
/// Times are read from tokio's clock, so tests run on the paused clock.
#[derive(Clone)]
pub struct HealthProbe {
    shared: Arc<Shared>,
}

impl fmt::Debug for HealthProbe {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let state = self.shared.lock();
        f.debug_struct("HealthProbe")
            .field("config", &self.shared.config)
            .field("components", &state.registry.len())
            .field("overall", &state.registry.overall())
            .finish_non_exhaustive()
    }
}

impl HealthProbe {
    /// A probe with no components; `config` is every component's unless it brings its own.
    ///
    /// The probe's clock starts now on tokio's clock: build it inside the runtime that runs it
    /// (a paused test runtime has its own clock).
    ///
    /// # Errors
    /// The error of [`HealthProbeConfig::validate`].
    pub fn try_new(config: HealthProbeConfig) -> Result<Self, ConfigError> {
        config.validate()?;
        let (events, _) = broadcast::channel(EVENT_CAPACITY);
        Ok(Self {
            shared: Arc::new(Shared {
                config,
                state: Mutex::new(State {
                    registry: Box::new(HealthRegistry::new()),
                    checks: Vec::new(),
                }),
                wake: Notify::new(),
                events,
            }),
        })
    }

    /// [`HealthProbe::try_new`] for a configuration known to be valid.
    ///
    /// # Panics
    /// When `config` is invalid, with the message of the [`ConfigError`].
    #[must_use]
    #[track_caller]
    pub fn new(config: HealthProbeConfig) -> Self {
        valid_or_panic(Self::try_new(config), "HealthProbeConfig")
    }

    /// The configuration components get unless they bring their own.
    #[must_use]
    pub fn config(&self) -> HealthProbeConfig {
        self.shared.config
    }

    // ----- registration -----

    /// Registers `check` as component `name` with the default [`ComponentOptions`] (critical,
    /// liveness and readiness probes).
    ///
    /// # Panics
    /// When [`try_register`](Self::try_register) fails: an empty, too long or duplicate name,
    /// or more than [`MAX_COMPONENTS`] components.
    #[track_caller]
    #[allow(clippy::panic)] // the documented twin of `try_register`
    pub fn register(&self, name: &str, check: impl HealthCheck) -> ComponentId {
        match self.try_register(name, check) {
            Ok(id) => id,
            Err(error) => panic!("cannot register health check {name:?}: {error}"),
        }
    }

    /// Registers `check` as component `name` with the default [`ComponentOptions`].
    ///
    /// # Errors
    /// The [`RegistryError`] of the core registry.
    pub fn try_register(
        &self,
        name: &str,
        check: impl HealthCheck,
    ) -> Result<ComponentId, RegistryError> {
        self.try_register_with(name, check, ComponentOptions::default())
    }

    /// Registers `check` as component `name` with `options`. Its first checks are due at once
    /// (its startup deadline, with a startup probe, counts from now).
    ///
    /// # Errors
    /// The [`RegistryError`] of the core registry: invalid configuration or no roles, empty
    /// or too long name, duplicate name, or the probe is full.
    pub fn try_register_with(
        &self,
        name: &str,
        check: impl HealthCheck,
        options: ComponentOptions,
    ) -> Result<ComponentId, RegistryError> {
        let config = options.config.unwrap_or(self.shared.config);
        let now = clock::now();
        let mut state = self.shared.lock();
        let id = state
            .registry
            .register(name, config, options.criticality, options.roles, now)?;
        state.checks.push(Arc::new(check));
        drop(state);
        self.shared.wake.notify_one();
        tracing::debug!(component = name, "health check registered");
        Ok(id)
    }

    /// The component `name` restarted (recovery acted): its probes forget their results and
    /// start over, startup included; checks in flight are ignored when they answer.
    ///
    /// # Errors
    /// [`UnknownComponent`] when no component has this name.
    pub fn reset(&self, name: &str) -> Result<(), UnknownComponent> {
        let now = clock::now();
        let mut state = self.shared.lock();
        let id = state.registry.id(name).ok_or(UnknownComponent)?;
        state.registry.reset(id, now)?;
        drop(state);
        self.shared.wake.notify_one();
        tracing::info!(component = name, "health probes reset");
        Ok(())
    }

    // ----- checks -----

    /// Checks component `name` now and returns the result (the chapter's
    /// `let status = probe.check("graph/pagerank").await`).
    ///
    /// The check runs under the component's `timeout`; if it does not answer in time the
    /// result is `Unhealthy` with the message `"timed out"`. Its latency and `checked_at` are
    /// set by the probe. The result also counts for each of the component's active probes
    /// that has no check in flight, exactly as a scheduled check would (so it moves their
    /// thresholds and their next due time); for a probe whose check is in flight it only
    /// answers the caller.
    ///
    /// # Errors
    /// [`UnknownComponent`] when no component has this name: a typed error rather than an
    /// `Unknown` status, so a typo is not mistaken for a component nobody has heard from.
    pub async fn check(&self, name: &str) -> Result<HealthCheckResult, UnknownComponent> {
        let batch = {
            let now = clock::now();
            let mut state = self.shared.lock();
            let id = state.registry.id(name).ok_or(UnknownComponent)?;
            let roles = state
                .registry
                .get(id)
                .map(|entry| entry.health().roles())
                .unwrap_or_default();
            let tickets = roles
                .iter()
                .filter_map(|role| state.registry.try_start(id, role, now).ok())
                .collect();
            state.batch(id, tickets).ok_or(UnknownComponent)?
        };
        let (tickets, result) = batch.run().await;
        self.shared.record(&tickets, &result);
        self.shared.wake.notify_one();
        Ok(result)
    }

    /// Records `result` for component `name` now, as if its check had just returned it: a
    /// push, for a component that changes on events (a breaker's transition, a drain, a
    /// worker's status) rather than only when polled, so the registry and every probe route
    /// follow the event at once. It counts for each active probe of the component, as a
    /// check's result would; a check in flight is superseded (its answer, taken before the
    /// event, is ignored). The component's thresholds apply as to any result.
    ///
    /// # Errors
    /// [`UnknownComponent`] when no component has this name.
    pub fn record(&self, name: &str, result: HealthCheckResult) -> Result<(), UnknownComponent> {
        let now = clock::now();
        let tickets: Vec<CheckTicket> = {
            let mut state = self.shared.lock();
            let id = state.registry.id(name).ok_or(UnknownComponent)?;
            let roles = state
                .registry
                .get(id)
                .map(|entry| entry.health().roles())
                .unwrap_or_default();
            roles
                .iter()
                .filter_map(|role| state.registry.start_push(id, role, now).ok())
                .collect()
        };
        self.shared.record(&tickets, &result.at(now));
        self.shared.wake.notify_one();
        Ok(())
    }

    /// Runs the probe: applies timeouts and startup deadlines, and starts each component's
    /// check when one of its probes is due, every check on its own task under its own timeout.
    ///
    /// Never returns; drop the future (or use [`spawn`](Self::spawn) and drop the guard) to
    /// stop. Checks still running are then cancelled.
    pub async fn run(self) {
        let shared = self.shared;
        let mut running: JoinSet<(Vec<CheckTicket>, HealthCheckResult)> = JoinSet::new();
        loop {
            let now = clock::now();
            let (batches, next) = shared.start_due(now);
            for batch in batches {
                running.spawn(batch.run());
            }
            // `poll_at` is after `now` once everything due was started; never spin if not.
            let wake_at = next.map_or_else(clock::never, |at| {
                clock::to_tokio(at).max(tokio::time::Instant::now() + Duration::from_millis(1))
            });
            tokio::select! {
                () = tokio::time::sleep_until(wake_at) => {}
                () = shared.wake.notified() => {}
                Some(joined) = running.join_next() => match joined {
                    Ok((tickets, result)) => shared.record(&tickets, &result),
                    // The core times the lost check out at its deadline.
                    Err(error) => tracing::warn!(%error, "health check task failed"),
                },
            }
        }
    }

    /// Spawns [`run`](Self::run) on the current tokio runtime; dropping the guard stops it.
    ///
    /// # Panics
    /// Outside a tokio runtime, as `tokio::spawn` does.
    #[must_use = "dropping the runner stops the probe"]
    pub fn spawn(&self) -> HealthRunner {
        HealthRunner {
            handle: tokio::spawn(self.clone().run()),
        }
    }

    /// Events from now on: status changes, startups and failed startups.
    #[must_use]
    pub fn subscribe(&self) -> broadcast::Receiver<ProbeEvent> {
        self.shared.events.subscribe()
    }

    // ----- getters -----

    /// The health of the service and of every component (the body of `/health`).
    #[must_use]
    pub fn report(&self) -> HealthReport {
        HealthReport::from_registry(&self.shared.lock().registry)
    }

    /// The status of component `name`, `None` when there is no such component.
    #[must_use]
    pub fn status(&self, name: &str) -> Option<HealthStatus> {
        self.shared
            .lock()
            .registry
            .get_by_name(name)
            .map(|entry| entry.status())
    }

    /// When component `name`'s latest check finished, on the crate's clock
    /// ([`clock::to_tokio`] turns it into a tokio instant); `None` before its first check or
    /// when there is no such component.
    #[must_use]
    pub fn checked_at(&self, name: &str) -> Option<Instant> {
        let state = self.shared.lock();
        let health = state.registry.get_by_name(name)?.health();
        health
            .roles()
            .iter()
            .filter_map(|role| health.probe(role).and_then(|probe| probe.last_result()))
            .map(|result| result.checked_at)
            .max()
    }

    /// The service's status: the worst contribution of its components.
    #[must_use]
    pub fn overall(&self) -> HealthStatus {
        self.shared.lock().registry.overall()
    }

    /// `/health/live`: every critical component is live.
    #[must_use]
    pub fn is_live(&self) -> bool {
        self.shared.lock().registry.live()
    }

    /// `/health/ready`: every critical component is ready.
    #[must_use]
    pub fn is_ready(&self) -> bool {
        self.shared.lock().registry.ready()
    }

    /// `/health/startup`: every critical component has started.
    #[must_use]
    pub fn is_started(&self) -> bool {
        self.shared.lock().registry.started()
    }

    /// The names of the components, in registration order.
    #[must_use]
    pub fn components(&self) -> Vec<String> {
        self.shared
            .lock()
            .registry
            .iter()
            .map(|entry| entry.name().to_owned())
            .collect()
    }

    /// Now on the probe's clock: the `at` of its events and the `checked_at` of its results.
    #[must_use]
    pub fn now(&self) -> Instant {
        clock::now()
    }
}

impl Shared {
    /// The state, even if a thread panicked while holding it (nothing here panics under the
    /// lock, and the registry is valid after any completed call).
    fn lock(&self) -> MutexGuard<'_, State> {
        self.state.lock().unwrap_or_else(PoisonError::into_inner)
    }

    /// Applies timeouts and deadlines at `now`, starts every due probe (one batch per
    /// component) and returns the batches and when to come back.
    fn start_due(&self, now: Instant) -> (Vec<Batch>, Option<Instant>) {
        let mut events = Vec::new();
        let mut batches = Vec::new();
        let next = {
            let mut state = self.lock();
            while let Some(event) = state.registry.poll(now) {
                events.push(state.named(event, now));
            }
            let mut due: Vec<(ComponentId, Vec<CheckTicket>)> = Vec::new();
            while let Some(ticket) = state.registry.start_due(now) {
                match due.iter_mut().find(|(id, _)| *id == ticket.component()) {
                    Some((_, tickets)) => tickets.push(ticket),
                    None => due.push((ticket.component(), vec![ticket])),
                }
            }
            batches.extend(
                due.into_iter()
                    .filter_map(|(id, tickets)| state.batch(id, tickets)),
            );
            state.registry.poll_at()
        };
        self.emit(events);
        (batches, next)
    }

    /// Hands `result` to the probes of `tickets` at its `checked_at`.
    fn record(&self, tickets: &[CheckTicket], result: &HealthCheckResult) {
        let now = result.checked_at;
        let events = {
            let mut state = self.lock();
            let mut events = Vec::new();
            for ticket in tickets {
                match state.registry.on_result(*ticket, result.clone(), now) {
                    Ok(Some(event)) => events.push(state.named(event, now)),
                    Ok(None) => {}
                    // Timed out by `poll` first, or the component was reset: already handled.
                    Err(ignored) => tracing::debug!(%ignored, "late health check result ignored"),
                }
            }
            events
        };
        self.emit(events);
    }

    /// Logs and broadcasts `events`; called without the lock.
    fn emit(&self, events: Vec<ProbeEvent>) {
        for event in events {
            log_event(&event);
            // No subscriber is fine.
            let _ = self.events.send(event);
        }
    }
}

impl State {
    /// A batch running the check of `id` for `tickets`, under the component's timeout.
    fn batch(&self, id: ComponentId, tickets: Vec<CheckTicket>) -> Option<Batch> {
        let entry = self.registry.get(id)?;
        let check = self.checks.get(usize::try_from(id.index()).ok()?)?.clone();
        Some(Batch {
            check,
            timeout: entry.health().config().timeout,
            tickets,
        })
    }

    fn named(&self, event: HealthEvent, at: Instant) -> ProbeEvent {
        ProbeEvent {
            component: self
                .registry
                .get(event.component)
                .map(|entry| entry.name().to_owned())
                .unwrap_or_default(),
            event: event.event,
            at,
        }
    }
}

fn log_event(event: &ProbeEvent) {
    let component = event.component.as_str();
    match event.event {
        ComponentEvent::StatusChanged { role, from, to } if to == HealthStatus::Unhealthy => {
            tracing::warn!(component, %role, %from, %to, "health probe status changed");
        }
        ComponentEvent::StatusChanged { role, from, to } => {
            tracing::info!(component, %role, %from, %to, "health probe status changed");
        }
        ComponentEvent::Started => tracing::info!(component, "component started"),
        ComponentEvent::StartupFailed(reason) => {
            tracing::error!(component, ?reason, "component failed to start");
        }
    }
}

/// The task of a spawned [`HealthProbe::run`]; dropping it stops the probe.
#[derive(Debug)]
pub struct HealthRunner {
    handle: JoinHandle<()>,
}

impl HealthRunner {
    /// Stops the probe now (as dropping the guard does).
    pub fn stop(self) {
        drop(self);
    }

    /// Whether the runner stopped (it only stops when aborted or when its runtime shuts down).
    #[must_use]
    pub fn is_finished(&self) -> bool {
        self.handle.is_finished()
    }
}

impl Drop for HealthRunner {
    fn drop(&mut self) {
        self.handle.abort();
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test(start_paused = true)]
    async fn unknown_component_is_a_typed_error() {
        let probe = HealthProbe::new(HealthProbeConfig::default());
        assert_eq!(probe.check("nope").await, Err(UnknownComponent));
        assert_eq!(probe.reset("nope"), Err(UnknownComponent));
        assert_eq!(probe.status("nope"), None);
    }

    #[test]
    fn invalid_config_is_refused() {
        let config = HealthProbeConfig {
            failure_threshold: 0,
            ..HealthProbeConfig::default()
        };
        assert!(HealthProbe::try_new(config).is_err());
    }

    #[tokio::test(start_paused = true)]
    async fn duplicate_names_are_refused() {
        let probe = HealthProbe::new(HealthProbeConfig::default());
        let ok = || check_fn(|| async { HealthCheckResult::healthy() });
        assert!(probe.try_register("a", ok()).is_ok());
        assert_eq!(probe.try_register("a", ok()), Err(RegistryError::Duplicate));
        assert_eq!(probe.try_register("", ok()), Err(RegistryError::EmptyName));
    }
}
