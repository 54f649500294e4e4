//! A fixed-capacity registry of named components and the service-wide health it adds up to.

use core::fmt;

use super::component::{ComponentEvent, ComponentHealth, IgnoredResult, StartError};
use super::config::HealthProbeConfig;
use super::probe::ProbeTicket;
use super::role::{ProbeRole, ProbeRoles};
use super::status::{HealthCheckResult, HealthStatus};
use crate::error::ConfigError;
use crate::time::Instant;

/// Bytes a component name may have (`"graph/pagerank"` has 14).
pub const NAME_CAPACITY: usize = 32;

/// A component's name.
pub type ComponentName = heapless::String<NAME_CAPACITY>;

/// How much a component's health counts for the service.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
#[cfg_attr(feature = "serde", derive(serde::Serialize, serde::Deserialize))]
#[cfg_attr(feature = "serde", serde(rename_all = "snake_case"))]
#[cfg_attr(feature = "defmt", derive(defmt::Format))]
pub enum Criticality {
    /// The service cannot work without it: its status, liveness, readiness and startup are the
    /// service's.
    Critical,
    /// The service works without it, worse: when it is anything but healthy the service is
    /// `Degraded`, never `Unhealthy`, not-live, not-ready or not-started.
    NonCritical,
}

/// The handle of a registered component; valid for the registry that returned it.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord)]
#[cfg_attr(feature = "serde", derive(serde::Serialize, serde::Deserialize))]
#[cfg_attr(feature = "defmt", derive(defmt::Format))]
pub struct ComponentId(u32);

impl ComponentId {
    /// The component's position in registration order.
    #[must_use]
    pub const fn index(self) -> u32 {
        self.0
    }
}

/// Why [`HealthRegistry::register`] refused a component.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
#[cfg_attr(feature = "serde", derive(serde::Serialize, serde::Deserialize))]
#[cfg_attr(feature = "defmt", derive(defmt::Format))]
pub enum RegistryError {
    /// The registry holds its capacity `N` of components.
    Full,
    /// A component with this name is registered.
    Duplicate,
    /// The name is empty.
    EmptyName,
    /// The name is longer than [`NAME_CAPACITY`] bytes (names are never cut: they identify).
    NameTooLong,
    /// The configuration or the roles are invalid.
    Invalid(ConfigError),
    /// The registry is in use: an adapter that shares it behind a lock was asked to register
    /// from inside a read of that same registry (for example from the closure of a
    /// `with_registry`). The core itself never returns it; register again once that read ended.
    Busy,
}

impl fmt::Display for RegistryError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            RegistryError::Full => f.write_str("the health registry is full"),
            RegistryError::Duplicate => f.write_str("a component with this name is registered"),
            RegistryError::EmptyName => f.write_str("component names must not be empty"),
            RegistryError::NameTooLong => {
                write!(f, "component names are at most {NAME_CAPACITY} bytes")
            }
            RegistryError::Invalid(error) => write!(f, "invalid component: {error}"),
            RegistryError::Busy => f.write_str(
                "the health registry is in use (register called from inside a read of it); \
                 register after that read",
            ),
        }
    }
}

impl core::error::Error for RegistryError {
    fn source(&self) -> Option<&(dyn core::error::Error + 'static)> {
        match self {
            RegistryError::Invalid(error) => Some(error),
            _ => None,
        }
    }
}

impl From<ConfigError> for RegistryError {
    fn from(error: ConfigError) -> Self {
        RegistryError::Invalid(error)
    }
}

/// [`HealthRegistry::reset`] was given an id the registry does not have.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
#[cfg_attr(feature = "serde", derive(serde::Serialize, serde::Deserialize))]
#[cfg_attr(feature = "defmt", derive(defmt::Format))]
pub struct UnknownComponent;

impl fmt::Display for UnknownComponent {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("no such component")
    }
}

impl core::error::Error for UnknownComponent {}

/// Names one started check of one probe of one component; hand it back with the result.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
#[cfg_attr(feature = "serde", derive(serde::Serialize, serde::Deserialize))]
#[cfg_attr(feature = "defmt", derive(defmt::Format))]
pub struct CheckTicket {
    component: ComponentId,
    role: ProbeRole,
    probe: ProbeTicket,
}

impl CheckTicket {
    /// The component to check.
    #[must_use]
    pub const fn component(self) -> ComponentId {
        self.component
    }

    /// The probe to run.
    #[must_use]
    pub const fn role(self) -> ProbeRole {
        self.role
    }
}

/// A [`ComponentEvent`] and the component it happened to.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
#[cfg_attr(feature = "serde", derive(serde::Serialize, serde::Deserialize))]
#[cfg_attr(feature = "defmt", derive(defmt::Format))]
pub struct HealthEvent {
    /// The component.
    pub component: ComponentId,
    /// What happened.
    pub event: ComponentEvent,
}

/// One registered component: its name, criticality and probes.
#[derive(Clone, Debug, PartialEq, Eq, Hash)]
#[cfg_attr(feature = "serde", derive(serde::Serialize, serde::Deserialize))]
#[cfg_attr(feature = "defmt", derive(defmt::Format))]
pub struct ComponentEntry {
    id: ComponentId,
    name: ComponentName,
    criticality: Criticality,
    health: ComponentHealth,
}

impl ComponentEntry {
    /// Its id.
    #[must_use]
    pub const fn id(&self) -> ComponentId {
        self.id
    }

    /// Its name.
    #[must_use]
    pub fn name(&self) -> &str {
        self.name.as_str()
    }

    /// Its criticality.
    #[must_use]
    pub const fn criticality(&self) -> Criticality {
        self.criticality
    }

    /// Its probes.
    #[must_use]
    pub const fn health(&self) -> &ComponentHealth {
        &self.health
    }

    /// Its own status ([`ComponentHealth::status`]).
    #[must_use]
    pub fn status(&self) -> HealthStatus {
        self.health.status()
    }

    /// What it adds to [`HealthRegistry::overall`]: its status if critical; if not, `Healthy`
    /// when healthy and `Degraded` otherwise.
    #[must_use]
    pub fn contribution(&self) -> HealthStatus {
        let status = self.status();
        match (self.criticality, status) {
            (Criticality::Critical, _) | (Criticality::NonCritical, HealthStatus::Healthy) => {
                status
            }
            (Criticality::NonCritical, _) => HealthStatus::Degraded,
        }
    }
}

/// Up to `N` named components and the service's health: the state behind `/health/live`,
/// `/health/ready`, `/health/startup` and `/health`.
///
/// # Rules
/// - [`overall`](Self::overall) is the worst [`contribution`](ComponentEntry::contribution):
///   critical components count with their status, a non-critical one can make the service
///   `Degraded` but never `Unhealthy` or `Unknown`. An empty registry is `Healthy`.
/// - [`live`](Self::live), [`ready`](Self::ready) and [`started`](Self::started) hold when every
///   critical component is live, ready or started ([`ComponentHealth`] has the per-component
///   rules); non-critical components never turn them false. All three hold for an empty registry.
///
/// # Method families
/// - inputs: [`register`](Self::register), [`try_start`](Self::try_start) /
///   [`start_due`](Self::start_due), [`on_result`](Self::on_result), [`poll`](Self::poll)
///   (timeouts and startup deadlines), [`reset`](Self::reset) (the component restarted);
/// - getters: [`overall`](Self::overall), [`live`](Self::live), [`ready`](Self::ready),
///   [`started`](Self::started), [`get`](Self::get), [`id`](Self::id) (routing by name),
///   [`iter`](Self::iter), ...;
/// - outputs: [`poll_at`](Self::poll_at) (the minimum over components) and
///   [`due`](Self::due).
///
/// ```
/// use rustkernel_core::resilience::{
///     Criticality, HealthCheckResult, HealthProbeConfig, HealthRegistry, HealthStatus, ProbeRole,
///     ProbeRoles,
/// };
/// use rustkernel_core::time::Instant;
///
/// let mut registry = HealthRegistry::<4>::new();
/// let t0 = Instant::from_secs(1);
/// let gpu = registry
///     .register("graph/pagerank", HealthProbeConfig::default(), Criticality::Critical, ProbeRoles::ALL, t0)
///     .unwrap();
/// assert!(!registry.started() && registry.overall() == HealthStatus::Unknown);
///
/// // The adapter's loop: start what is due, run the checks, hand the results back.
/// let ticket = registry.start_due(t0).unwrap();
/// assert_eq!((ticket.component(), ticket.role()), (gpu, ProbeRole::Startup));
/// registry.on_result(ticket, HealthCheckResult::healthy(), t0).unwrap();
/// assert!(registry.started());
/// while let Some(ticket) = registry.start_due(t0) {
///     registry.on_result(ticket, HealthCheckResult::healthy(), t0).unwrap();
/// }
/// assert!(registry.live() && registry.ready());
/// assert_eq!(registry.overall(), HealthStatus::Healthy);
/// assert_eq!(registry.poll_at(), Some(t0 + core::time::Duration::from_secs(10)));
/// ```
#[derive(Clone, Debug, PartialEq, Eq, Hash)]
#[cfg_attr(feature = "serde", derive(serde::Serialize, serde::Deserialize))]
#[cfg_attr(feature = "defmt", derive(defmt::Format))]
pub struct HealthRegistry<const N: usize> {
    components: heapless::Vec<ComponentEntry, N>,
}

impl<const N: usize> HealthRegistry<N> {
    /// An empty registry; `N` must be positive (checked at compile time).
    #[must_use]
    pub const fn new() -> Self {
        const {
            assert!(
                N > 0,
                "a HealthRegistry needs room for at least one component"
            )
        };
        Self {
            components: heapless::Vec::new(),
        }
    }

    // ----- inputs -----

    /// Registers the component `name` with probes for `roles`, all using `config`, started at
    /// `now` (its startup deadline counts from here).
    ///
    /// # Errors
    /// [`RegistryError::Invalid`] (bad config or no roles), [`RegistryError::EmptyName`],
    /// [`RegistryError::NameTooLong`], [`RegistryError::Duplicate`], [`RegistryError::Full`],
    /// checked in that order.
    pub fn register(
        &mut self,
        name: &str,
        config: HealthProbeConfig,
        criticality: Criticality,
        roles: impl Into<ProbeRoles>,
        now: Instant,
    ) -> Result<ComponentId, RegistryError> {
        let health = ComponentHealth::try_new(config, roles.into(), now)?;
        if name.is_empty() {
            return Err(RegistryError::EmptyName);
        }
        let name = ComponentName::try_from(name).map_err(|_| RegistryError::NameTooLong)?;
        if self.id(&name).is_some() {
            return Err(RegistryError::Duplicate);
        }
        let index = u32::try_from(self.components.len()).map_err(|_| RegistryError::Full)?;
        let id = ComponentId(index);
        self.components
            .push(ComponentEntry {
                id,
                name,
                criticality,
                health,
            })
            .map_err(|_| RegistryError::Full)?;
        Ok(id)
    }

    /// Starts a check of the `role` probe of component `id` at `now`.
    ///
    /// # Errors
    /// [`StartError::UnknownComponent`], or the component's refusal: the role is not
    /// registered, not active in the component's phase, or a check of it is still running.
    pub fn try_start(
        &mut self,
        id: ComponentId,
        role: ProbeRole,
        now: Instant,
    ) -> Result<CheckTicket, StartError> {
        let entry = self.entry_mut(id).ok_or(StartError::UnknownComponent)?;
        let probe = entry.health.try_start(role, now)?;
        Ok(CheckTicket {
            component: id,
            role,
            probe,
        })
    }

    /// A ticket for a result pushed by an event rather than returned by a check (a breaker's
    /// transition, a drain): as [`try_start`](Self::try_start), except that when a check of
    /// the probe is in flight, its ticket is returned, so the pushed result supersedes that
    /// check and the check's own answer is ignored as stale when it comes.
    ///
    /// # Errors
    /// As [`try_start`](Self::try_start), except [`StartError::InFlight`].
    pub fn start_push(
        &mut self,
        id: ComponentId,
        role: ProbeRole,
        now: Instant,
    ) -> Result<CheckTicket, StartError> {
        let entry = self.entry_mut(id).ok_or(StartError::UnknownComponent)?;
        let probe = entry.health.start_or_supersede(role, now)?;
        Ok(CheckTicket {
            component: id,
            role,
            probe,
        })
    }

    /// Starts the first check due at `now`, in registration then role order, if any.
    ///
    /// Call it until it returns `None` to start everything that is due.
    pub fn start_due(&mut self, now: Instant) -> Option<CheckTicket> {
        let (id, role) = self.due(now).next()?;
        self.try_start(id, role, now).ok()
    }

    /// Records the result of the check `ticket` at `now`, routed to its component and probe.
    ///
    /// # Errors
    /// Why the result was not counted ([`IgnoredResult`]); nothing changed then. A startup
    /// deadline that passed comes first: the result is dropped and `StartupFailed(Deadline)`
    /// returned.
    pub fn on_result(
        &mut self,
        ticket: CheckTicket,
        result: HealthCheckResult,
        now: Instant,
    ) -> Result<Option<HealthEvent>, IgnoredResult> {
        let entry = self
            .entry_mut(ticket.component)
            .ok_or(IgnoredResult::UnknownComponent)?;
        let event = entry
            .health
            .on_result(ticket.role, ticket.probe, result, now)?;
        Ok(event.map(|event| HealthEvent {
            component: ticket.component,
            event,
        }))
    }

    /// Applies timeouts and startup deadlines at `now`; returns the first event.
    ///
    /// Call it until it returns `None`: then nothing is left to do at `now`.
    pub fn poll(&mut self, now: Instant) -> Option<HealthEvent> {
        self.components.iter_mut().find_map(|entry| {
            entry.health.poll(now).map(|event| HealthEvent {
                component: entry.id,
                event,
            })
        })
    }

    /// Component `id` restarted at `now` (recovery acted): every probe forgets its results,
    /// checks in flight go stale, and startup (if the component has a startup probe) begins
    /// again with a new deadline.
    ///
    /// # Errors
    /// [`UnknownComponent`] when the registry has no such component.
    pub fn reset(&mut self, id: ComponentId, now: Instant) -> Result<(), UnknownComponent> {
        let entry = self.entry_mut(id).ok_or(UnknownComponent)?;
        entry.health.reset(now);
        Ok(())
    }

    // ----- getters -----

    /// The id of the component called `name`.
    #[must_use]
    pub fn id(&self, name: &str) -> Option<ComponentId> {
        self.components
            .iter()
            .find(|entry| entry.name == name)
            .map(|entry| entry.id)
    }

    /// The component `id`.
    #[must_use]
    pub fn get(&self, id: ComponentId) -> Option<&ComponentEntry> {
        let index = usize::try_from(id.0).ok()?;
        self.components.get(index)
    }

    /// The component called `name`.
    #[must_use]
    pub fn get_by_name(&self, name: &str) -> Option<&ComponentEntry> {
        self.components.iter().find(|entry| entry.name == name)
    }

    /// The components, in registration order.
    pub fn iter(&self) -> impl Iterator<Item = &ComponentEntry> {
        self.components.iter()
    }

    /// How many components are registered.
    #[must_use]
    pub fn len(&self) -> usize {
        self.components.len()
    }

    /// Whether no component is registered.
    #[must_use]
    pub fn is_empty(&self) -> bool {
        self.components.is_empty()
    }

    /// How many components the registry can hold: `N`.
    #[must_use]
    pub const fn capacity(&self) -> usize {
        N
    }

    /// The service's status: the worst contribution (see the rules).
    #[must_use]
    pub fn overall(&self) -> HealthStatus {
        self.components
            .iter()
            .map(ComponentEntry::contribution)
            .fold(HealthStatus::Healthy, HealthStatus::worst)
    }

    /// `/health/live`: every critical component is live.
    #[must_use]
    pub fn live(&self) -> bool {
        self.critical().all(|entry| entry.health.is_live())
    }

    /// `/health/ready`: every critical component is ready.
    #[must_use]
    pub fn ready(&self) -> bool {
        self.critical().all(|entry| entry.health.is_ready())
    }

    /// `/health/startup`: every critical component has started.
    #[must_use]
    pub fn started(&self) -> bool {
        self.critical().all(|entry| entry.health.is_started())
    }

    // ----- outputs -----

    /// When the registry next needs attention: the earliest [`ComponentHealth::poll_at`].
    #[must_use]
    pub fn poll_at(&self) -> Option<Instant> {
        self.components
            .iter()
            .filter_map(|entry| entry.health.poll_at())
            .min()
    }

    /// The checks due at `now`, as `(component, role)`, in registration then role order.
    pub fn due(&self, now: Instant) -> impl Iterator<Item = (ComponentId, ProbeRole)> + '_ {
        self.components.iter().flat_map(move |entry| {
            let id = entry.id;
            entry
                .health
                .due_roles(now)
                .iter()
                .map(move |role| (id, role))
        })
    }

    // ----- internals -----

    fn entry_mut(&mut self, id: ComponentId) -> Option<&mut ComponentEntry> {
        let index = usize::try_from(id.0).ok()?;
        self.components.get_mut(index)
    }

    fn critical(&self) -> impl Iterator<Item = &ComponentEntry> {
        self.components
            .iter()
            .filter(|entry| entry.criticality == Criticality::Critical)
    }
}

impl<const N: usize> Default for HealthRegistry<N> {
    fn default() -> Self {
        Self::new()
    }
}

#[cfg(test)]
mod tests {
    extern crate std;
    use super::super::StartupFailure;
    use super::*;
    use crate::error::ConfigField;
    use core::time::Duration;

    fn config() -> HealthProbeConfig {
        HealthProbeConfig {
            failure_threshold: 1,
            ..HealthProbeConfig::default()
        }
    }

    fn secs(s: u64) -> Instant {
        Instant::from_secs(s)
    }

    fn live_only() -> ProbeRoles {
        ProbeRoles::from(ProbeRole::Liveness)
    }

    #[test]
    fn a_pushed_result_supersedes_the_check_in_flight() {
        let mut registry = HealthRegistry::<2>::new();
        let id = registry
            .register(
                "service",
                config(),
                Criticality::Critical,
                live_only(),
                secs(0),
            )
            .expect("valid");
        let running = registry
            .try_start(id, ProbeRole::Liveness, secs(0))
            .expect("valid");
        assert_eq!(
            registry.try_start(id, ProbeRole::Liveness, secs(0)),
            Err(StartError::InFlight)
        );
        let pushed = registry
            .start_push(id, ProbeRole::Liveness, secs(0))
            .expect("valid");
        registry
            .on_result(pushed, HealthCheckResult::unhealthy("draining"), secs(0))
            .expect("valid");
        assert!(!registry.live());
        // The check that was running answers with what it saw before the event: ignored.
        assert!(
            registry
                .on_result(running, HealthCheckResult::healthy(), secs(0))
                .is_err()
        );
        assert!(!registry.live());
        assert_eq!(
            registry.start_push(ComponentId(7), ProbeRole::Liveness, secs(0)),
            Err(StartError::UnknownComponent)
        );
    }

    #[test]
    fn register_refuses_full_duplicate_and_bad_names() {
        let mut registry = HealthRegistry::<2>::new();
        let a = registry
            .register(
                "graph/pagerank",
                config(),
                Criticality::Critical,
                live_only(),
                secs(0),
            )
            .expect("room");
        assert_eq!(
            registry.register(
                "graph/pagerank",
                config(),
                Criticality::NonCritical,
                live_only(),
                secs(0)
            ),
            Err(RegistryError::Duplicate)
        );
        assert_eq!(
            registry.register("", config(), Criticality::Critical, live_only(), secs(0)),
            Err(RegistryError::EmptyName)
        );
        let long = "k".repeat(NAME_CAPACITY + 1);
        assert_eq!(
            registry.register(&long, config(), Criticality::Critical, live_only(), secs(0)),
            Err(RegistryError::NameTooLong)
        );
        let exact = "k".repeat(NAME_CAPACITY);
        let b = registry
            .register(
                &exact,
                config(),
                Criticality::Critical,
                live_only(),
                secs(0),
            )
            .expect("32 bytes fit");
        assert_eq!(
            registry.register(
                "third",
                config(),
                Criticality::Critical,
                live_only(),
                secs(0)
            ),
            Err(RegistryError::Full)
        );
        let bad = HealthProbeConfig {
            interval: Duration::ZERO,
            ..config()
        };
        assert_eq!(
            registry.register("x", bad, Criticality::Critical, live_only(), secs(0)),
            Err(RegistryError::Invalid(ConfigError::Zero(
                ConfigField::ProbeInterval
            )))
        );
        assert_eq!(
            registry.register(
                "x",
                config(),
                Criticality::Critical,
                ProbeRoles::EMPTY,
                secs(0)
            ),
            Err(RegistryError::Invalid(ConfigError::Zero(
                ConfigField::ProbeRoles
            )))
        );
        assert_eq!((registry.len(), registry.capacity()), (2, 2));
        assert_eq!(registry.id("graph/pagerank"), Some(a));
        assert_eq!(registry.id(&exact), Some(b));
        assert_eq!(registry.id("nope"), None);
        assert_eq!(
            registry.get(b).map(ComponentEntry::name),
            Some(exact.as_str())
        );
    }

    #[test]
    fn unknown_ids_are_refused() {
        let mut big = HealthRegistry::<3>::new();
        for name in ["a", "b", "c"] {
            big.register(name, config(), Criticality::Critical, live_only(), secs(0))
                .expect("room");
        }
        let foreign = big.id("c").expect("registered");
        let mut small = HealthRegistry::<1>::new();
        assert_eq!(
            small.try_start(foreign, ProbeRole::Liveness, secs(0)),
            Err(StartError::UnknownComponent)
        );
        assert_eq!(small.reset(foreign, secs(0)), Err(UnknownComponent));
        let ticket = big
            .try_start(foreign, ProbeRole::Liveness, secs(0))
            .expect("due");
        assert_eq!(
            small.on_result(ticket, HealthCheckResult::healthy(), secs(0)),
            Err(IgnoredResult::UnknownComponent)
        );
        assert!(small.get(foreign).is_none());
    }

    #[test]
    fn non_critical_components_only_degrade() {
        let mut registry = HealthRegistry::<2>::new();
        let core = registry
            .register(
                "core",
                config(),
                Criticality::Critical,
                live_only(),
                secs(0),
            )
            .expect("room");
        let cache = registry
            .register(
                "cache",
                config(),
                Criticality::NonCritical,
                ProbeRoles::ALL,
                secs(0),
            )
            .expect("room");
        assert_eq!(registry.overall(), HealthStatus::Unknown);
        let ticket = registry
            .try_start(core, ProbeRole::Liveness, secs(0))
            .expect("due");
        registry
            .on_result(ticket, HealthCheckResult::healthy(), secs(0))
            .expect("counted");
        // The cache is still starting: Unknown, which only degrades.
        assert_eq!(registry.overall(), HealthStatus::Degraded);
        assert!(registry.live() && registry.ready() && registry.started());
        // Its startup fails: still only Degraded, and the service stays live and ready.
        assert_eq!(
            registry.poll(secs(10)),
            Some(HealthEvent {
                component: cache,
                event: ComponentEvent::StartupFailed(StartupFailure::Deadline)
            })
        );
        assert_eq!(registry.poll(secs(10)), None);
        assert_eq!(
            registry.get(cache).map(ComponentEntry::status),
            Some(HealthStatus::Unhealthy)
        );
        assert_eq!(registry.overall(), HealthStatus::Degraded);
        assert!(registry.live() && registry.ready() && registry.started());
        // The critical one times out: Unhealthy and not live.
        registry
            .try_start(core, ProbeRole::Liveness, secs(10))
            .expect("due");
        assert_eq!(registry.poll_at(), Some(secs(11)));
        assert!(registry.poll(secs(11)).is_some());
        assert_eq!(registry.overall(), HealthStatus::Unhealthy);
        assert!(!registry.live() && registry.ready());
        registry.reset(cache, secs(12)).expect("known");
        assert_eq!(
            registry.get(cache).map(ComponentEntry::status),
            Some(HealthStatus::Unknown)
        );
    }

    #[test]
    fn empty_registry_is_healthy() {
        let registry = HealthRegistry::<1>::default();
        assert_eq!(registry.overall(), HealthStatus::Healthy);
        assert!(registry.live() && registry.ready() && registry.started());
        assert_eq!(registry.poll_at(), None);
        assert!(registry.is_empty());
    }

    #[cfg(feature = "serde")]
    #[test]
    fn registry_round_trips() {
        let mut registry = HealthRegistry::<2>::new();
        let id = registry
            .register(
                "gpu",
                config(),
                Criticality::Critical,
                ProbeRoles::ALL,
                secs(3),
            )
            .expect("room");
        let ticket = registry
            .try_start(id, ProbeRole::Startup, secs(3))
            .expect("due");
        registry
            .on_result(ticket, HealthCheckResult::degraded("slow"), secs(4))
            .expect("counted");
        let mut buf = [0u8; 512];
        let bytes = postcard::to_slice(&registry, &mut buf).expect("fits");
        let back: HealthRegistry<2> = postcard::from_bytes(bytes).expect("decodes");
        assert_eq!(back, registry);
    }
}
