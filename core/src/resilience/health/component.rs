//! One component's probes together: the startup probe gates liveness and readiness.

use core::fmt;

use super::config::HealthProbeConfig;
use super::probe::{ProbeState, ProbeTicket, ProbeTransition};
use super::role::{ProbeRole, ProbeRoles};
use super::status::{HealthCheckResult, HealthStatus};
use crate::error::{ConfigError, ConfigField};
use crate::time::Instant;

/// Why a startup probe failed; either way recovery should act (Kubernetes restarts the container).
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
#[cfg_attr(feature = "serde", derive(serde::Serialize, serde::Deserialize))]
#[cfg_attr(feature = "serde", serde(rename_all = "snake_case"))]
#[cfg_attr(feature = "defmt", derive(defmt::Format))]
pub enum StartupFailure {
    /// No success within `failure_threshold x interval` of the start, whatever the checks did
    /// (none ran, they kept hanging, the adapter stalled).
    Deadline,
    /// `failure_threshold` startup checks failed in a row.
    FailureThreshold,
}

/// Where a component is in its life, as its startup probe sees it.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
#[cfg_attr(feature = "serde", derive(serde::Serialize, serde::Deserialize))]
#[cfg_attr(feature = "defmt", derive(defmt::Format))]
pub enum ComponentPhase {
    /// The startup probe runs; liveness and readiness wait. Startup fails at `deadline`.
    Starting {
        /// Start plus `failure_threshold x interval` (saturating; [`Instant::MAX`] never comes).
        deadline: Instant,
    },
    /// Started (or no startup probe): liveness and readiness run.
    Running,
    /// The startup probe failed; nothing runs until the component is reset
    /// ([`HealthRegistry::reset`](super::HealthRegistry::reset)).
    StartupFailed(StartupFailure),
}

/// What an input changed in a component, returned as a value for the adapter to act on.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
#[cfg_attr(feature = "serde", derive(serde::Serialize, serde::Deserialize))]
#[cfg_attr(feature = "defmt", derive(defmt::Format))]
pub enum ComponentEvent {
    /// The liveness or readiness probe changed status.
    StatusChanged {
        /// Which probe.
        role: ProbeRole,
        /// Its status before.
        from: HealthStatus,
        /// Its status after.
        to: HealthStatus,
    },
    /// The startup probe succeeded: liveness and readiness start now.
    Started,
    /// The startup probe failed: recovery should restart the component.
    StartupFailed(StartupFailure),
}

impl ComponentEvent {
    /// Whether recovery should act: startup failed, or liveness turned `Unhealthy`.
    #[must_use]
    pub const fn needs_recovery(self) -> bool {
        matches!(
            self,
            ComponentEvent::StartupFailed(_)
                | ComponentEvent::StatusChanged {
                    role: ProbeRole::Liveness,
                    to: HealthStatus::Unhealthy,
                    ..
                }
        )
    }
}

/// Why a check could not start.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
#[cfg_attr(feature = "serde", derive(serde::Serialize, serde::Deserialize))]
#[cfg_attr(feature = "defmt", derive(defmt::Format))]
pub enum StartError {
    /// No component has this id (registry only).
    UnknownComponent,
    /// The component has no probe with this role.
    RoleNotRegistered,
    /// The probe does not run now: liveness or readiness before startup succeeded, startup
    /// after it succeeded, failed or passed its deadline.
    NotActive,
    /// A check of this probe is still running.
    InFlight,
}

impl fmt::Display for StartError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            StartError::UnknownComponent => "no such component",
            StartError::RoleNotRegistered => "the component has no probe with this role",
            StartError::NotActive => "the probe does not run in the component's current phase",
            StartError::InFlight => "a check of this probe is still running",
        })
    }
}

impl core::error::Error for StartError {}

/// Why a result was not counted.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
#[cfg_attr(feature = "serde", derive(serde::Serialize, serde::Deserialize))]
#[cfg_attr(feature = "defmt", derive(defmt::Format))]
pub enum IgnoredResult {
    /// No component has this id (registry only).
    UnknownComponent,
    /// The component has no probe with this role.
    RoleNotRegistered,
    /// The probe does not run in the component's current phase (see [`StartError::NotActive`]).
    NotActive,
    /// The ticket is not the check in flight (it timed out, or the component was reset).
    Stale,
}

impl fmt::Display for IgnoredResult {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            IgnoredResult::UnknownComponent => "no such component",
            IgnoredResult::RoleNotRegistered => "the component has no probe with this role",
            IgnoredResult::NotActive => "the probe does not run in the component's current phase",
            IgnoredResult::Stale => "result for a check that is no longer in flight",
        })
    }
}

impl core::error::Error for IgnoredResult {}

/// The probes of one component, with Kubernetes' startup gating; read it through
/// [`ComponentEntry::health`](super::ComponentEntry::health), the
/// [`HealthRegistry`](super::HealthRegistry) drives it.
///
/// # Rules
/// - With a startup probe the component starts in [`ComponentPhase::Starting`]: only the startup
///   probe is scheduled and accepts results; liveness and readiness are not scheduled, refuse to
///   start ([`StartError::NotActive`]) and ignore results ([`IgnoredResult::NotActive`]).
/// - Startup succeeds when the startup probe passes (`success_threshold` passing checks in a
///   row; `Degraded` passes). Then liveness and readiness start fresh, due at once.
/// - Startup fails when `failure_threshold` startup checks fail in a row, or when it has not
///   succeeded `failure_threshold x interval` after the start (registration or reset). Polls and
///   results apply that deadline before anything else; a startup check cannot start once it
///   passed.
/// - Status: `Unknown` while starting, `Unhealthy` after a failed startup, otherwise the worst
///   of the liveness and readiness probes (the startup probe's own if the component has neither).
///
/// # Getters
/// [`phase`](Self::phase), [`status`](Self::status), [`is_live`](Self::is_live),
/// [`is_ready`](Self::is_ready), [`probe`](Self::probe), ...; outputs
/// [`poll_at`](Self::poll_at) and [`due_roles`](Self::due_roles).
#[derive(Clone, Debug, PartialEq, Eq, Hash)]
#[cfg_attr(feature = "serde", derive(serde::Serialize, serde::Deserialize))]
#[cfg_attr(feature = "defmt", derive(defmt::Format))]
pub struct ComponentHealth {
    config: HealthProbeConfig,
    roles: ProbeRoles,
    phase: ComponentPhase,
    startup: Option<ProbeState>,
    liveness: Option<ProbeState>,
    readiness: Option<ProbeState>,
}

impl ComponentHealth {
    /// A component with probes for `roles`, all sharing `config`, started at `now`.
    ///
    /// # Errors
    /// The error of [`HealthProbeConfig::validate`], or `ConfigError::Zero(ProbeRoles)` when
    /// `roles` is empty.
    pub(crate) fn try_new(
        config: HealthProbeConfig,
        roles: ProbeRoles,
        now: Instant,
    ) -> Result<Self, ConfigError> {
        if roles.is_empty() {
            return Err(ConfigError::Zero(ConfigField::ProbeRoles));
        }
        // Validated once for all roles (each role's probe shares the configuration).
        config.validate()?;
        let probe = |role| roles.contains(role).then(|| ProbeState::new(config));
        let mut component = Self {
            config,
            roles,
            phase: ComponentPhase::Running,
            startup: probe(ProbeRole::Startup),
            liveness: probe(ProbeRole::Liveness),
            readiness: probe(ProbeRole::Readiness),
        };
        component.reset(now);
        Ok(component)
    }

    // ----- inputs -----

    /// Starts a check of the `role` probe at `now`.
    ///
    /// # Errors
    /// [`StartError::RoleNotRegistered`], [`StartError::NotActive`] (gated, see the rules) or
    /// [`StartError::InFlight`].
    pub(crate) fn try_start(
        &mut self,
        role: ProbeRole,
        now: Instant,
    ) -> Result<ProbeTicket, StartError> {
        if !self.roles.contains(role) {
            return Err(StartError::RoleNotRegistered);
        }
        if !self.is_active(role) || self.startup_expired(now) {
            return Err(StartError::NotActive);
        }
        let probe = self.probe_mut(role).ok_or(StartError::RoleNotRegistered)?;
        probe.try_start(now).map_err(|_| StartError::InFlight)
    }

    /// As [`try_start`](Self::try_start), but a check in flight gives its own ticket: a result
    /// recorded with it supersedes that check, whose answer is then ignored as stale.
    pub(crate) fn start_or_supersede(
        &mut self,
        role: ProbeRole,
        now: Instant,
    ) -> Result<ProbeTicket, StartError> {
        match self.try_start(role, now) {
            Err(StartError::InFlight) => {
                let probe = self.probe_mut(role).ok_or(StartError::RoleNotRegistered)?;
                match probe.try_start(now) {
                    Ok(ticket) | Err(super::probe::CheckInFlight { ticket }) => Ok(ticket),
                }
            }
            other => other,
        }
    }

    /// Records the result of check `ticket` of the `role` probe at `now`.
    ///
    /// If the startup deadline has passed, that comes first: the result is dropped and
    /// `StartupFailed(Deadline)` returned.
    ///
    /// # Errors
    /// Why the result was not counted; nothing changed then.
    pub(crate) fn on_result(
        &mut self,
        role: ProbeRole,
        ticket: ProbeTicket,
        result: HealthCheckResult,
        now: Instant,
    ) -> Result<Option<ComponentEvent>, IgnoredResult> {
        if let Some(event) = self.expire_startup(now) {
            return Ok(Some(event));
        }
        if !self.roles.contains(role) {
            return Err(IgnoredResult::RoleNotRegistered);
        }
        if !self.is_active(role) {
            return Err(IgnoredResult::NotActive);
        }
        let probe = self
            .probe_mut(role)
            .ok_or(IgnoredResult::RoleNotRegistered)?;
        let transition = probe
            .on_result(ticket, result, now)
            .map_err(|_| IgnoredResult::Stale)?;
        Ok(transition.and_then(|transition| self.apply(role, transition, now)))
    }

    /// Applies the startup deadline and the timeouts of running checks at `now`.
    ///
    /// Returns the first event; call again until it returns `None`, which means nothing is left
    /// to do at `now`.
    pub(crate) fn poll(&mut self, now: Instant) -> Option<ComponentEvent> {
        if let Some(event) = self.expire_startup(now) {
            return Some(event);
        }
        for role in ProbeRole::ALL {
            if !self.is_active(role) {
                continue;
            }
            let transition = self.probe_mut(role).and_then(|probe| probe.poll(now));
            if let Some(event) = transition.and_then(|t| self.apply(role, t, now)) {
                return Some(event);
            }
        }
        None
    }

    /// The component restarted at `now`: every probe forgets its results, checks in flight go
    /// stale, and startup (if the component has a startup probe) begins again with a new deadline.
    pub(crate) fn reset(&mut self, now: Instant) {
        self.phase = if self.startup.is_some() {
            ComponentPhase::Starting {
                deadline: now.saturating_add(self.config.startup_window()),
            }
        } else {
            ComponentPhase::Running
        };
        for probe in [&mut self.startup, &mut self.liveness, &mut self.readiness]
            .into_iter()
            .flatten()
        {
            probe.reset(now);
        }
    }

    // ----- getters -----

    /// The configuration all of the component's probes share.
    #[must_use]
    pub const fn config(&self) -> &HealthProbeConfig {
        &self.config
    }

    /// The roles the component has probes for.
    #[must_use]
    pub const fn roles(&self) -> ProbeRoles {
        self.roles
    }

    /// Where the component is in its life.
    #[must_use]
    pub const fn phase(&self) -> ComponentPhase {
        self.phase
    }

    /// The probe with `role`, if the component has one.
    #[must_use]
    pub const fn probe(&self, role: ProbeRole) -> Option<&ProbeState> {
        match role {
            ProbeRole::Startup => self.startup.as_ref(),
            ProbeRole::Liveness => self.liveness.as_ref(),
            ProbeRole::Readiness => self.readiness.as_ref(),
        }
    }

    /// Whether the `role` probe runs in the current phase.
    #[must_use]
    pub const fn is_active(&self, role: ProbeRole) -> bool {
        if !self.roles.contains(role) {
            return false;
        }
        matches!(
            (self.phase, role),
            (ComponentPhase::Starting { .. }, ProbeRole::Startup)
                | (
                    ComponentPhase::Running,
                    ProbeRole::Liveness | ProbeRole::Readiness
                )
        )
    }

    /// The component's status (see the rules).
    #[must_use]
    pub fn status(&self) -> HealthStatus {
        match self.phase {
            ComponentPhase::Starting { .. } => HealthStatus::Unknown,
            ComponentPhase::StartupFailed(_) => HealthStatus::Unhealthy,
            ComponentPhase::Running => [&self.liveness, &self.readiness]
                .into_iter()
                .flatten()
                .map(ProbeState::status)
                .reduce(HealthStatus::worst)
                .or_else(|| self.startup.as_ref().map(ProbeState::status))
                .unwrap_or(HealthStatus::Unknown),
        }
    }

    /// Whether the component has started: its startup probe passed, or, without one, it
    /// answered its first check (a component nobody has heard from has not started).
    #[must_use]
    pub fn is_started(&self) -> bool {
        matches!(self.phase, ComponentPhase::Running)
            && (self.startup.is_some() || self.has_answered())
    }

    /// Whether any of its probes has a result (since it was registered or last reset).
    #[must_use]
    pub fn has_answered(&self) -> bool {
        [&self.startup, &self.liveness, &self.readiness]
            .into_iter()
            .flatten()
            .any(|probe| probe.last_result().is_some())
    }

    /// Kubernetes' liveness: false after a failed startup or while the liveness probe is
    /// `Unhealthy`; true while starting and while liveness is `Unknown` (as the kubelet assumes).
    #[must_use]
    pub fn is_live(&self) -> bool {
        match self.phase {
            ComponentPhase::Starting { .. } => true,
            ComponentPhase::StartupFailed(_) => false,
            ComponentPhase::Running => self
                .liveness
                .as_ref()
                .is_none_or(|probe| probe.status() != HealthStatus::Unhealthy),
        }
    }

    /// Kubernetes' readiness: started, and the readiness probe (if any) is passing; `Unknown`
    /// is not ready.
    #[must_use]
    pub fn is_ready(&self) -> bool {
        self.is_started()
            && self
                .readiness
                .as_ref()
                .is_none_or(|probe| probe.status().is_passing())
    }

    // ----- outputs -----

    /// The active probes whose next check is due at `now`.
    #[must_use]
    pub fn due_roles(&self, now: Instant) -> ProbeRoles {
        if self.startup_expired(now) {
            return ProbeRoles::EMPTY;
        }
        ProbeRole::ALL
            .into_iter()
            .filter(|role| self.is_active(*role))
            .filter(|role| self.probe(*role).is_some_and(|probe| probe.is_due(now)))
            .collect()
    }

    /// When the component next needs attention: the earliest check due or deadline among its
    /// active probes, and the startup deadline while starting. `None` after a failed startup.
    #[must_use]
    pub fn poll_at(&self) -> Option<Instant> {
        let startup_deadline = match self.phase {
            ComponentPhase::Starting { deadline } => Some(deadline),
            _ => None,
        };
        ProbeRole::ALL
            .into_iter()
            .filter(|role| self.is_active(*role))
            .filter_map(|role| self.probe(role).and_then(ProbeState::poll_at))
            .chain(startup_deadline)
            .min()
    }

    // ----- internals -----

    fn probe_mut(&mut self, role: ProbeRole) -> Option<&mut ProbeState> {
        match role {
            ProbeRole::Startup => self.startup.as_mut(),
            ProbeRole::Liveness => self.liveness.as_mut(),
            ProbeRole::Readiness => self.readiness.as_mut(),
        }
    }

    fn startup_expired(&self, now: Instant) -> bool {
        matches!(self.phase, ComponentPhase::Starting { deadline } if deadline.is_reached_at(now))
    }

    fn expire_startup(&mut self, now: Instant) -> Option<ComponentEvent> {
        self.startup_expired(now).then(|| {
            self.phase = ComponentPhase::StartupFailed(StartupFailure::Deadline);
            ComponentEvent::StartupFailed(StartupFailure::Deadline)
        })
    }

    fn apply(
        &mut self,
        role: ProbeRole,
        transition: ProbeTransition,
        now: Instant,
    ) -> Option<ComponentEvent> {
        match role {
            ProbeRole::Startup if transition.to.is_passing() => {
                self.phase = ComponentPhase::Running;
                for probe in [&mut self.liveness, &mut self.readiness]
                    .into_iter()
                    .flatten()
                {
                    probe.reset(now);
                }
                Some(ComponentEvent::Started)
            }
            ProbeRole::Startup if transition.to == HealthStatus::Unhealthy => {
                self.phase = ComponentPhase::StartupFailed(StartupFailure::FailureThreshold);
                Some(ComponentEvent::StartupFailed(
                    StartupFailure::FailureThreshold,
                ))
            }
            ProbeRole::Startup => None,
            ProbeRole::Liveness | ProbeRole::Readiness => Some(ComponentEvent::StatusChanged {
                role,
                from: transition.from,
                to: transition.to,
            }),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use core::time::Duration;

    const ALL: ProbeRoles = ProbeRoles::ALL;

    fn config() -> HealthProbeConfig {
        HealthProbeConfig::default() // 10 s, 1 s, 3, 1
    }

    fn secs(s: u64) -> Instant {
        Instant::from_secs(s)
    }

    fn component(config: HealthProbeConfig, roles: ProbeRoles, now: Instant) -> ComponentHealth {
        ComponentHealth::try_new(config, roles, now).expect("valid")
    }

    fn check(
        component: &mut ComponentHealth,
        role: ProbeRole,
        result: HealthCheckResult,
        now: Instant,
    ) -> Result<Option<ComponentEvent>, IgnoredResult> {
        let ticket = component.try_start(role, now).expect("startable");
        component.on_result(role, ticket, result, now)
    }

    #[test]
    fn empty_roles_are_refused() {
        assert_eq!(
            ComponentHealth::try_new(config(), ProbeRoles::EMPTY, secs(0)),
            Err(ConfigError::Zero(ConfigField::ProbeRoles))
        );
    }

    #[test]
    fn liveness_and_readiness_wait_for_startup() {
        let mut c = component(config(), ALL, secs(100));
        assert_eq!(c.status(), HealthStatus::Unknown);
        assert!(c.is_live() && !c.is_ready() && !c.is_started());
        assert_eq!(c.due_roles(secs(100)), ProbeRoles::from(ProbeRole::Startup));
        assert_eq!(
            c.try_start(ProbeRole::Liveness, secs(100)),
            Err(StartError::NotActive)
        );
        assert_eq!(c.poll_at(), Some(secs(100)));
        assert_eq!(
            check(
                &mut c,
                ProbeRole::Startup,
                HealthCheckResult::degraded("warming"),
                secs(101)
            ),
            Ok(Some(ComponentEvent::Started))
        );
        assert_eq!(
            c.due_roles(secs(101)),
            [ProbeRole::Liveness, ProbeRole::Readiness].into()
        );
        assert_eq!(
            c.try_start(ProbeRole::Startup, secs(101)),
            Err(StartError::NotActive)
        );
        assert_eq!(c.status(), HealthStatus::Unknown);
        assert!(c.is_live() && !c.is_ready() && c.is_started());
        assert_eq!(
            check(
                &mut c,
                ProbeRole::Readiness,
                HealthCheckResult::healthy(),
                secs(101)
            ),
            Ok(Some(ComponentEvent::StatusChanged {
                role: ProbeRole::Readiness,
                from: HealthStatus::Unknown,
                to: HealthStatus::Healthy
            }))
        );
        assert!(c.is_ready());
        assert_eq!(c.status(), HealthStatus::Unknown); // liveness has not answered yet
        check(
            &mut c,
            ProbeRole::Liveness,
            HealthCheckResult::healthy(),
            secs(101),
        )
        .expect("counted");
        assert_eq!(c.status(), HealthStatus::Healthy);
    }

    #[test]
    fn a_startup_deadline_that_saturates_is_never_reached() {
        // Created 10 s before the end of the clock with a 30 s startup window.
        let created = Instant::MAX - Duration::from_secs(10);
        let mut c = component(config(), ALL, created);
        assert_eq!(
            c.phase(),
            ComponentPhase::Starting {
                deadline: Instant::MAX
            }
        );
        assert_eq!(c.poll(Instant::MAX), None);
        assert_eq!(
            c.due_roles(Instant::MAX),
            ProbeRoles::from(ProbeRole::Startup)
        );
        assert_eq!(
            check(
                &mut c,
                ProbeRole::Startup,
                HealthCheckResult::healthy(),
                Instant::MAX
            ),
            Ok(Some(ComponentEvent::Started))
        );
        assert!(c.is_started());
    }

    #[test]
    fn startup_fails_at_its_deadline() {
        let mut c = component(config(), ALL, secs(100));
        assert_eq!(
            c.phase(),
            ComponentPhase::Starting {
                deadline: secs(130)
            }
        );
        assert_eq!(c.poll(secs(129)), None);
        assert_eq!(
            c.try_start(ProbeRole::Startup, secs(130)),
            Err(StartError::NotActive)
        );
        assert_eq!(c.due_roles(secs(130)), ProbeRoles::EMPTY);
        assert_eq!(
            c.poll(secs(130)),
            Some(ComponentEvent::StartupFailed(StartupFailure::Deadline))
        );
        assert!(c.poll(secs(130)).is_none());
        assert_eq!(c.status(), HealthStatus::Unhealthy);
        assert!(!c.is_live() && !c.is_ready());
        assert_eq!(c.poll_at(), None);
        c.reset(secs(200));
        assert_eq!(
            c.phase(),
            ComponentPhase::Starting {
                deadline: secs(230)
            }
        );
    }

    #[test]
    fn startup_fails_after_threshold_failures() {
        let mut c = component(config(), ALL, secs(0));
        let fail = || HealthCheckResult::unhealthy("no GPU");
        assert_eq!(check(&mut c, ProbeRole::Startup, fail(), secs(0)), Ok(None));
        assert_eq!(
            check(&mut c, ProbeRole::Startup, fail(), secs(10)),
            Ok(None)
        );
        let event = check(&mut c, ProbeRole::Startup, fail(), secs(20));
        assert_eq!(
            event,
            Ok(Some(ComponentEvent::StartupFailed(
                StartupFailure::FailureThreshold
            )))
        );
        assert!(
            event
                .ok()
                .flatten()
                .is_some_and(ComponentEvent::needs_recovery)
        );
    }

    #[test]
    fn late_results_after_reset_are_stale() {
        let roles = ProbeRoles::of(&[ProbeRole::Liveness]);
        let mut c = component(config(), roles, secs(0));
        // Nobody has heard from it yet: not started, so not ready.
        assert!(!c.is_started() && !c.is_ready() && !c.has_answered());
        let ticket = c.try_start(ProbeRole::Liveness, secs(0)).expect("running");
        c.reset(secs(0));
        assert_eq!(
            c.on_result(
                ProbeRole::Liveness,
                ticket,
                HealthCheckResult::healthy(),
                secs(0)
            ),
            Err(IgnoredResult::Stale)
        );
        assert_eq!(
            c.try_start(ProbeRole::Readiness, secs(0)),
            Err(StartError::RoleNotRegistered)
        );
    }

    #[test]
    fn liveness_timeouts_surface_through_poll() {
        let roles = ProbeRoles::of(&[ProbeRole::Liveness]);
        let one = HealthProbeConfig {
            failure_threshold: 1,
            ..config()
        };
        let mut c = component(one, roles, secs(0));
        c.try_start(ProbeRole::Liveness, secs(0)).expect("running");
        assert_eq!(c.poll_at(), Some(secs(1)));
        let event = c.poll(secs(1) + Duration::from_micros(5));
        assert_eq!(
            event,
            Some(ComponentEvent::StatusChanged {
                role: ProbeRole::Liveness,
                from: HealthStatus::Unknown,
                to: HealthStatus::Unhealthy
            })
        );
        assert!(event.is_some_and(ComponentEvent::needs_recovery));
        assert!(!c.is_live());
    }
}
