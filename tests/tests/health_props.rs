//! Property tests of health probes, startup gating and the component registry.
//!
//! Random sequences of checks, results, timeouts, resets and times (forward, backward and near
//! `u64::MAX`) run through the core and through small reference models written here, and the two
//! must agree after every step. The registry is the only way to drive probes, so one probe and
//! one component are tested as the single component of a registry, read back through its views.

// Indexing in the test and its models is by construction in range; a panic would fail the test.
#![allow(clippy::indexing_slicing)]

use core::time::Duration;

use proptest::prelude::*;

/// Whether a deadline has passed at `now`; a deadline at the last instant (one that saturated)
/// means "never".
fn reached(deadline: u64, now: u64) -> bool {
    deadline != u64::MAX && now >= deadline
}
use rustkernel_core::resilience::health::{
    CheckTicket, ComponentEvent, ComponentHealth, ComponentId, ComponentPhase, Criticality,
    HealthCheckResult, HealthEvent, HealthProbeConfig, HealthRegistry, HealthStatus, IgnoredResult,
    MESSAGE_CAPACITY, ProbeRole, ProbeRoles, ProbeState, RegistryError, StartError, StartupFailure,
};
use rustkernel_core::time::{Instant, duration_as_micros};

// ---------------------------------------------------------------------------------------------
// Strategies
// ---------------------------------------------------------------------------------------------

fn config() -> impl Strategy<Value = HealthProbeConfig> {
    let ordinary = (1u64..=1_000, 1u32..=5, 1u32..=5)
        .prop_flat_map(|(interval, f, s)| (Just(interval), 1..=interval, Just(f), Just(s)))
        .prop_map(|(interval, timeout, f, s)| HealthProbeConfig {
            interval: Duration::from_micros(interval),
            timeout: Duration::from_micros(timeout),
            failure_threshold: f,
            success_threshold: s,
        });
    let interval = prop_oneof![
        Just(Duration::MAX),
        Just(Duration::from_micros(u64::MAX)),
        Just(Duration::from_micros(1)),
        (1u64..=u64::MAX).prop_map(Duration::from_micros),
    ];
    let threshold = prop_oneof![Just(1u32), Just(u32::MAX), 1u32..=u32::MAX];
    let extreme = (interval, any::<bool>(), threshold.clone(), threshold).prop_map(
        |(interval, full, f, s)| HealthProbeConfig {
            interval,
            timeout: if full {
                interval
            } else {
                Duration::from_micros(1)
            },
            failure_threshold: f,
            success_threshold: s,
        },
    );
    prop_oneof![8 => ordinary, 2 => extreme]
}

/// How `now` moves before an input.
#[derive(Clone, Copy, Debug)]
enum Step {
    Forward(u64),
    Backward(u64),
    Jump(u64),
}

fn step() -> impl Strategy<Value = Step> {
    prop_oneof![
        12 => (0u64..=2_000).prop_map(Step::Forward),
        2 => (0u64..=2_000).prop_map(Step::Backward),
        1 => any::<u64>().prop_map(Step::Jump),
        1 => (u64::MAX - 3_000..=u64::MAX).prop_map(Step::Jump),
    ]
}

fn advance(now: u64, step: Step) -> u64 {
    match step {
        Step::Forward(d) => now.saturating_add(d),
        Step::Backward(d) => now.saturating_sub(d),
        Step::Jump(t) => t,
    }
}

fn result_status() -> impl Strategy<Value = HealthStatus> {
    prop_oneof![
        4 => Just(HealthStatus::Healthy),
        2 => Just(HealthStatus::Degraded),
        3 => Just(HealthStatus::Unhealthy),
        1 => Just(HealthStatus::Unknown),
    ]
}

fn role() -> impl Strategy<Value = ProbeRole> {
    prop_oneof![
        Just(ProbeRole::Startup),
        Just(ProbeRole::Liveness),
        Just(ProbeRole::Readiness)
    ]
}

fn micros(d: Duration) -> u64 {
    duration_as_micros(d)
}

fn at(t: u64) -> Instant {
    Instant::from_micros(t)
}

/// Severity written out independently of the crate: Healthy < Degraded < Unknown < Unhealthy.
fn rank(status: HealthStatus) -> u8 {
    match status {
        HealthStatus::Healthy => 0,
        HealthStatus::Degraded => 1,
        HealthStatus::Unknown => 2,
        HealthStatus::Unhealthy => 3,
    }
}

fn worst(a: HealthStatus, b: HealthStatus) -> HealthStatus {
    if rank(b) > rank(a) { b } else { a }
}

// ---------------------------------------------------------------------------------------------
// One component alone in a registry
// ---------------------------------------------------------------------------------------------

/// A registry holding one component: its inputs are the registry's, its state is read through
/// [`ComponentHealth`] and [`ProbeState`], the registry's read-only views.
struct Single {
    registry: HealthRegistry<1>,
    id: ComponentId,
}

impl Single {
    fn new(config: HealthProbeConfig, roles: ProbeRoles, now: u64) -> Result<Self, RegistryError> {
        let mut registry = HealthRegistry::new();
        let id = registry.register("c", config, Criticality::Critical, roles, at(now))?;
        Ok(Self { registry, id })
    }

    fn health(&self) -> &ComponentHealth {
        self.registry.get(self.id).expect("registered").health()
    }

    fn probe(&self, role: ProbeRole) -> &ProbeState {
        self.health().probe(role).expect("the role is registered")
    }

    fn try_start(&mut self, role: ProbeRole, now: u64) -> Result<CheckTicket, StartError> {
        self.registry.try_start(self.id, role, at(now))
    }

    fn on_result(
        &mut self,
        ticket: CheckTicket,
        status: HealthStatus,
        now: u64,
    ) -> Result<Option<ComponentEvent>, IgnoredResult> {
        let event =
            self.registry
                .on_result(ticket, HealthCheckResult::new(status, "r"), at(now))?;
        Ok(event.map(|e| self.event(e)))
    }

    fn poll(&mut self, now: u64) -> Option<ComponentEvent> {
        let event = self.registry.poll(at(now))?;
        Some(self.event(event))
    }

    fn reset(&mut self, now: u64) {
        self.registry.reset(self.id, at(now)).expect("registered");
    }

    fn event(&self, event: HealthEvent) -> ComponentEvent {
        assert_eq!(event.component, self.id);
        event.event
    }
}

/// A liveness probe's status change, as the component reports it.
fn liveness(change: Option<(HealthStatus, HealthStatus)>) -> Option<ComponentEvent> {
    change.map(|(from, to)| ComponentEvent::StatusChanged {
        role: ProbeRole::Liveness,
        from,
        to,
    })
}

/// One probe: a component with a liveness probe only, which runs from the start.
fn single_probe(config: HealthProbeConfig) -> Single {
    Single::new(config, ProbeRole::Liveness.into(), 0).expect("valid config")
}

// ---------------------------------------------------------------------------------------------
// Reference model of one probe
// ---------------------------------------------------------------------------------------------

/// A counted check: it passed with this status, or it failed (bad result or timeout).
#[derive(Clone, Copy, Debug, PartialEq)]
enum Outcome {
    Pass(HealthStatus),
    Fail,
}

/// The probe as a history of outcomes since the last reset; the status is recomputed from the
/// whole history every time: the verdict is set by the LAST point at which a run of equal outcomes
/// reached its threshold; a passing verdict shows the status of the latest passing result.
#[derive(Clone, Debug)]
struct ProbeModel {
    interval: u64,
    timeout: u64,
    failure_threshold: u32,
    success_threshold: u32,
    history: Vec<Outcome>,
    /// (ticket generation, started, deadline) of the running check.
    in_flight: Option<(u64, u64, u64)>,
    due: u64,
    last_generation: u64,
    timed_out: u32,
    ignored: u32,
}

impl ProbeModel {
    fn new(config: &HealthProbeConfig) -> Self {
        Self {
            interval: micros(config.interval),
            timeout: micros(config.timeout),
            failure_threshold: config.failure_threshold,
            success_threshold: config.success_threshold,
            history: Vec::new(),
            in_flight: None,
            due: 0,
            last_generation: 0,
            timed_out: 0,
            ignored: 0,
        }
    }

    fn status(&self) -> HealthStatus {
        let mut verdict: Option<usize> = None;
        let mut run: u64 = 0;
        let mut previous: Option<bool> = None;
        for (i, outcome) in self.history.iter().enumerate() {
            let passed = matches!(outcome, Outcome::Pass(_));
            run = if previous == Some(passed) { run + 1 } else { 1 };
            previous = Some(passed);
            let threshold = if passed {
                self.success_threshold
            } else {
                self.failure_threshold
            };
            if run >= u64::from(threshold) {
                verdict = Some(i);
            }
        }
        match verdict.map(|i| self.history[i]) {
            None => HealthStatus::Unknown,
            Some(Outcome::Fail) => HealthStatus::Unhealthy,
            Some(Outcome::Pass(_)) => self
                .history
                .iter()
                .rev()
                .find_map(|o| match o {
                    Outcome::Pass(s) => Some(*s),
                    Outcome::Fail => None,
                })
                .expect("a passing verdict has a passing result"),
        }
    }

    fn record(&mut self, outcome: Outcome) -> Option<(HealthStatus, HealthStatus)> {
        let before = self.status();
        self.history.push(outcome);
        let after = self.status();
        (before != after).then_some((before, after))
    }

    fn start(&mut self, now: u64) -> Result<u64, ()> {
        if self.in_flight.is_some() {
            return Err(());
        }
        self.last_generation += 1;
        self.in_flight = Some((self.last_generation, now, now.saturating_add(self.timeout)));
        Ok(self.last_generation)
    }

    fn result(
        &mut self,
        generation: u64,
        status: HealthStatus,
        now: u64,
    ) -> Result<Option<(HealthStatus, HealthStatus)>, ()> {
        match self.in_flight {
            Some((g, started, deadline)) if g == generation => {
                self.in_flight = None;
                self.due = started.saturating_add(self.interval);
                if reached(deadline, now) {
                    self.timed_out += 1;
                    Ok(self.record(Outcome::Fail))
                } else if matches!(status, HealthStatus::Healthy | HealthStatus::Degraded) {
                    Ok(self.record(Outcome::Pass(status)))
                } else {
                    Ok(self.record(Outcome::Fail))
                }
            }
            _ => {
                self.ignored += 1;
                Err(())
            }
        }
    }

    fn poll(&mut self, now: u64) -> Option<(HealthStatus, HealthStatus)> {
        match self.in_flight {
            Some((_, started, deadline)) if reached(deadline, now) => {
                self.in_flight = None;
                self.due = started.saturating_add(self.interval);
                self.timed_out += 1;
                self.record(Outcome::Fail)
            }
            _ => None,
        }
    }

    fn reset(&mut self, now: u64) {
        self.history.clear();
        self.in_flight = None;
        self.due = now;
    }

    fn poll_at(&self) -> u64 {
        self.in_flight.map_or(self.due, |(_, _, deadline)| deadline)
    }

    fn is_due(&self, now: u64) -> bool {
        self.in_flight.is_none() && self.due <= now
    }

    /// Longest run of failures in the history.
    fn longest_failure_run(&self) -> u64 {
        let mut best = 0;
        let mut run = 0;
        for o in &self.history {
            run = if *o == Outcome::Fail { run + 1 } else { 0 };
            best = best.max(run);
        }
        best
    }
}

// ---------------------------------------------------------------------------------------------
// Probe: machine vs model
// ---------------------------------------------------------------------------------------------

#[derive(Clone, Debug)]
enum ProbeOp {
    Start(Step),
    /// A result; `stale` picks an old ticket instead of the latest.
    Result(Step, HealthStatus, bool, usize),
    Poll(Step),
    Reset(Step),
    /// Start a check, then answer it `latency` microseconds later.
    Check(Step, u64, HealthStatus),
}

fn probe_op() -> impl Strategy<Value = ProbeOp> {
    prop_oneof![
        4 => step().prop_map(ProbeOp::Start),
        5 => (step(), result_status(), prop::bool::weighted(0.15), any::<usize>())
            .prop_map(|(s, st, stale, pick)| ProbeOp::Result(s, st, stale, pick)),
        3 => step().prop_map(ProbeOp::Poll),
        1 => step().prop_map(ProbeOp::Reset),
        6 => (step(), 0u64..=1_200, result_status()).prop_map(|(s, l, st)| ProbeOp::Check(s, l, st)),
    ]
}

fn check_probe(probe: &ProbeState, model: &ProbeModel) -> Result<(), TestCaseError> {
    prop_assert_eq!(probe.status(), model.status());
    prop_assert_eq!(probe.poll_at(), Some(at(model.poll_at())));
    prop_assert_eq!(probe.stats().timed_out, model.timed_out);
    prop_assert_eq!(probe.stats().ignored, model.ignored);
    if model.history.is_empty() {
        prop_assert_eq!(probe.status(), HealthStatus::Unknown);
    }
    if model.longest_failure_run() < u64::from(model.failure_threshold) {
        prop_assert_ne!(probe.status(), HealthStatus::Unhealthy);
    }
    Ok(())
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(512))]

    /// Hysteresis thresholds exactly, Unknown until a verdict, timeouts as failures, stale tickets
    /// ignored, scheduling `interval` after each start.
    #[test]
    fn probe_matches_model(
        config in config(),
        start in any::<u64>(),
        ops in prop::collection::vec(probe_op(), 1..120),
    ) {
        // Registered at 0: the first check is due at 0 in both, whatever `start` is.
        let mut single = single_probe(config);
        let mut model = ProbeModel::new(&config);
        let mut now = start;
        // Every ticket issued, with the model's number for the same check.
        let mut tickets: Vec<(CheckTicket, u64)> = Vec::new();
        check_probe(single.probe(ProbeRole::Liveness), &model)?;
        for op in ops {
            match op {
                ProbeOp::Start(s) => {
                    now = advance(now, s);
                    let got = single.try_start(ProbeRole::Liveness, now);
                    let want = model.start(now);
                    prop_assert_eq!(got.map(|_| ()), want.map(|_| ()).map_err(|()| StartError::InFlight));
                    if let (Ok(ticket), Ok(generation)) = (got, want) {
                        tickets.push((ticket, generation));
                    }
                }
                ProbeOp::Result(s, status, stale, pick) => {
                    now = advance(now, s);
                    let Some(&latest) = tickets.last() else { continue };
                    let (ticket, generation) = if stale { tickets[pick % tickets.len()] } else { latest };
                    let got = single.on_result(ticket, status, now);
                    let want = model.result(generation, status, now);
                    prop_assert_eq!(got, want.map(liveness).map_err(|()| IgnoredResult::Stale));
                }
                ProbeOp::Poll(s) => {
                    now = advance(now, s);
                    prop_assert_eq!(single.poll(now), liveness(model.poll(now)));
                }
                ProbeOp::Reset(s) => {
                    now = advance(now, s);
                    single.reset(now);
                    model.reset(now);
                }
                ProbeOp::Check(s, latency, status) => {
                    now = advance(now, s);
                    let got = single.try_start(ProbeRole::Liveness, now);
                    let want = model.start(now);
                    prop_assert_eq!(got.is_ok(), want.is_ok());
                    if let (Ok(ticket), Ok(generation)) = (got, want) {
                        tickets.push((ticket, generation));
                        now = now.saturating_add(latency);
                        let got = single.on_result(ticket, status, now);
                        let want = model.result(generation, status, now);
                        prop_assert_eq!(got.ok(), want.ok().map(liveness));
                    }
                }
            }
            check_probe(single.probe(ProbeRole::Liveness), &model)?;
            prop_assert_eq!(single.probe(ProbeRole::Liveness).is_due(at(now)), model.is_due(now));
        }
    }

    /// Results alone (every check answered in time): the status follows the model exactly.
    #[test]
    fn hysteresis_matches_model(
        f in 1u32..=4,
        s in 1u32..=4,
        statuses in prop::collection::vec(result_status(), 1..100),
    ) {
        let config = HealthProbeConfig {
            interval: Duration::from_secs(1),
            timeout: Duration::from_millis(100),
            failure_threshold: f,
            success_threshold: s,
        };
        let mut single = single_probe(config);
        let mut model = ProbeModel::new(&config);
        for (i, status) in statuses.into_iter().enumerate() {
            let now = u64::try_from(i).expect("small") * 1_000_000;
            let ticket = single.try_start(ProbeRole::Liveness, now).expect("idle");
            let generation = model.start(now).expect("idle");
            let got = single.on_result(ticket, status, now + 1).expect("in flight");
            let want = model.result(generation, status, now + 1).expect("in flight");
            prop_assert_eq!(got, liveness(want));
            let probe = single.probe(ProbeRole::Liveness);
            prop_assert_eq!(probe.status(), model.status());
            let trailing = |pass: bool| {
                model.history.iter().rev().take_while(|o| matches!(o, Outcome::Pass(_)) == pass).count()
            };
            prop_assert_eq!(probe.consecutive_successes() as usize, trailing(true));
            prop_assert_eq!(probe.consecutive_failures() as usize, trailing(false));
        }
    }

    /// With thresholds above one, isolated results never flip the status.
    #[test]
    fn single_results_do_not_flip(
        f in 2u32..=6,
        s in 2u32..=6,
        statuses in prop::collection::vec(result_status(), 1..80),
    ) {
        let config = HealthProbeConfig {
            interval: Duration::from_secs(1),
            timeout: Duration::from_millis(100),
            failure_threshold: f,
            success_threshold: s,
        };
        let mut single = single_probe(config);
        let mut run_pass = 0u32;
        let mut run_fail = 0u32;
        for status in statuses {
            let before = single.probe(ProbeRole::Liveness).status();
            let ticket = single.try_start(ProbeRole::Liveness, 0).expect("idle");
            let change = single.on_result(ticket, status, 0).expect("in flight");
            let passed = matches!(status, HealthStatus::Healthy | HealthStatus::Degraded);
            if passed { run_pass += 1; run_fail = 0; } else { run_fail += 1; run_pass = 0; }
            if let Some(ComponentEvent::StatusChanged { to, .. }) = change {
                match to {
                    HealthStatus::Unhealthy => prop_assert!(run_fail >= f),
                    // Entering a passing state from a non-passing one needs the full run.
                    _ if !matches!(before, HealthStatus::Healthy | HealthStatus::Degraded) => {
                        prop_assert!(run_pass >= s)
                    }
                    _ => prop_assert!(passed),
                }
            }
        }
    }
}

// ---------------------------------------------------------------------------------------------
// Component: startup gating vs model
// ---------------------------------------------------------------------------------------------

#[derive(Clone, Copy, Debug, PartialEq)]
enum PhaseModel {
    Starting { deadline: u64 },
    Running,
    Failed(StartupFailure),
}

#[derive(Clone, Debug)]
struct ComponentModel {
    window: u64,
    phase: PhaseModel,
    /// Indexed by role: startup, liveness, readiness.
    probes: [Option<ProbeModel>; 3],
}

fn index(role: ProbeRole) -> usize {
    match role {
        ProbeRole::Startup => 0,
        ProbeRole::Liveness => 1,
        ProbeRole::Readiness => 2,
    }
}

const ROLES: [ProbeRole; 3] = [
    ProbeRole::Startup,
    ProbeRole::Liveness,
    ProbeRole::Readiness,
];

impl ComponentModel {
    fn new(config: &HealthProbeConfig, roles: ProbeRoles, now: u64) -> Self {
        let window = u128::from(micros(config.interval)) * u128::from(config.failure_threshold);
        let mut model = Self {
            // Duration::MAX-sized products saturate at u64::MAX micros, as Instant does.
            window: u64::try_from(window).unwrap_or(u64::MAX),
            phase: PhaseModel::Running,
            probes: ROLES.map(|r| roles.contains(r).then(|| ProbeModel::new(config))),
        };
        model.reset(now);
        model
    }

    fn reset(&mut self, now: u64) {
        self.phase = if self.probes[0].is_some() {
            PhaseModel::Starting {
                deadline: now.saturating_add(self.window),
            }
        } else {
            PhaseModel::Running
        };
        for p in self.probes.iter_mut().flatten() {
            p.reset(now);
        }
    }

    fn active(&self, role: ProbeRole) -> bool {
        self.probes[index(role)].is_some()
            && match self.phase {
                PhaseModel::Starting { .. } => role == ProbeRole::Startup,
                PhaseModel::Running => role != ProbeRole::Startup,
                PhaseModel::Failed(_) => false,
            }
    }

    fn expired(&self, now: u64) -> bool {
        matches!(self.phase, PhaseModel::Starting { deadline } if reached(deadline, now))
    }

    fn expire(&mut self, now: u64) -> Option<ComponentEvent> {
        if self.expired(now) {
            self.phase = PhaseModel::Failed(StartupFailure::Deadline);
            return Some(ComponentEvent::StartupFailed(StartupFailure::Deadline));
        }
        None
    }

    fn event(
        &mut self,
        role: ProbeRole,
        change: Option<(HealthStatus, HealthStatus)>,
        now: u64,
    ) -> Option<ComponentEvent> {
        let (from, to) = change?;
        if role != ProbeRole::Startup {
            return Some(ComponentEvent::StatusChanged { role, from, to });
        }
        match to {
            HealthStatus::Healthy | HealthStatus::Degraded => {
                self.phase = PhaseModel::Running;
                for p in self.probes[1..].iter_mut().flatten() {
                    p.reset(now);
                }
                Some(ComponentEvent::Started)
            }
            HealthStatus::Unhealthy => {
                self.phase = PhaseModel::Failed(StartupFailure::FailureThreshold);
                Some(ComponentEvent::StartupFailed(
                    StartupFailure::FailureThreshold,
                ))
            }
            HealthStatus::Unknown => None,
        }
    }

    fn start(&mut self, role: ProbeRole, now: u64) -> Result<u64, StartError> {
        if self.probes[index(role)].is_none() {
            return Err(StartError::RoleNotRegistered);
        }
        if !self.active(role) || self.expired(now) {
            return Err(StartError::NotActive);
        }
        let probe = self.probes[index(role)].as_mut().expect("registered");
        probe.start(now).map_err(|()| StartError::InFlight)
    }

    fn result(
        &mut self,
        role: ProbeRole,
        generation: u64,
        status: HealthStatus,
        now: u64,
    ) -> Result<Option<ComponentEvent>, IgnoredResult> {
        if let Some(event) = self.expire(now) {
            return Ok(Some(event));
        }
        if self.probes[index(role)].is_none() {
            return Err(IgnoredResult::RoleNotRegistered);
        }
        if !self.active(role) {
            return Err(IgnoredResult::NotActive);
        }
        let probe = self.probes[index(role)].as_mut().expect("registered");
        let change = probe
            .result(generation, status, now)
            .map_err(|()| IgnoredResult::Stale)?;
        Ok(self.event(role, change, now))
    }

    fn poll(&mut self, now: u64) -> Option<ComponentEvent> {
        if let Some(event) = self.expire(now) {
            return Some(event);
        }
        for role in ROLES {
            if !self.active(role) {
                continue;
            }
            let change = self.probes[index(role)].as_mut().and_then(|p| p.poll(now));
            if let Some(event) = self.event(role, change, now) {
                return Some(event);
            }
        }
        None
    }

    fn probe_status(&self, role: ProbeRole) -> Option<HealthStatus> {
        self.probes[index(role)].as_ref().map(ProbeModel::status)
    }

    fn status(&self) -> HealthStatus {
        match self.phase {
            PhaseModel::Starting { .. } => HealthStatus::Unknown,
            PhaseModel::Failed(_) => HealthStatus::Unhealthy,
            PhaseModel::Running => {
                let live = self.probe_status(ProbeRole::Liveness);
                let ready = self.probe_status(ProbeRole::Readiness);
                match (live, ready) {
                    (Some(a), Some(b)) => worst(a, b),
                    (Some(a), None) | (None, Some(a)) => a,
                    (None, None) => self
                        .probe_status(ProbeRole::Startup)
                        .unwrap_or(HealthStatus::Unknown),
                }
            }
        }
    }

    fn live(&self) -> bool {
        match self.phase {
            PhaseModel::Starting { .. } => true,
            PhaseModel::Failed(_) => false,
            PhaseModel::Running => {
                self.probe_status(ProbeRole::Liveness) != Some(HealthStatus::Unhealthy)
            }
        }
    }

    /// Started: the startup probe passed, or, without one, some probe has a result.
    fn started(&self) -> bool {
        self.phase == PhaseModel::Running
            && (self.probes[index(ProbeRole::Startup)].is_some()
                || self
                    .probes
                    .iter()
                    .flatten()
                    .any(|probe| !probe.history.is_empty()))
    }

    fn ready(&self) -> bool {
        self.started()
            && self
                .probe_status(ProbeRole::Readiness)
                .is_none_or(|s| matches!(s, HealthStatus::Healthy | HealthStatus::Degraded))
    }

    fn poll_at(&self) -> Option<u64> {
        let deadline = match self.phase {
            PhaseModel::Starting { deadline } => Some(deadline),
            _ => None,
        };
        ROLES
            .into_iter()
            .filter(|r| self.active(*r))
            .filter_map(|r| self.probes[index(r)].as_ref().map(ProbeModel::poll_at))
            .chain(deadline)
            .min()
    }

    fn due(&self, now: u64) -> Vec<ProbeRole> {
        if self.expired(now) {
            return Vec::new();
        }
        ROLES
            .into_iter()
            .filter(|r| self.active(*r))
            .filter(|r| {
                self.probes[index(*r)]
                    .as_ref()
                    .is_some_and(|p| p.is_due(now))
            })
            .collect()
    }
}

#[derive(Clone, Debug)]
enum ComponentOp {
    Start(Step, ProbeRole),
    Result(Step, ProbeRole, HealthStatus, bool, usize),
    Poll(Step),
    Reset(Step),
}

fn component_op() -> impl Strategy<Value = ComponentOp> {
    prop_oneof![
        4 => (step(), role()).prop_map(|(s, r)| ComponentOp::Start(s, r)),
        6 => (step(), role(), result_status(), prop::bool::weighted(0.15), any::<usize>())
            .prop_map(|(s, r, st, stale, pick)| ComponentOp::Result(s, r, st, stale, pick)),
        3 => step().prop_map(ComponentOp::Poll),
        1 => step().prop_map(ComponentOp::Reset),
    ]
}

fn roles() -> impl Strategy<Value = ProbeRoles> {
    (any::<bool>(), any::<bool>(), any::<bool>())
        .prop_filter("at least one role", |(a, b, c)| *a || *b || *c)
        .prop_map(|(s, l, r)| {
            let mut roles = ProbeRoles::EMPTY;
            for (on, role) in [
                (s, ProbeRole::Startup),
                (l, ProbeRole::Liveness),
                (r, ProbeRole::Readiness),
            ] {
                if on {
                    roles = roles.with(role);
                }
            }
            roles
        })
}

fn check_component(c: &ComponentHealth, m: &ComponentModel, now: u64) -> Result<(), TestCaseError> {
    let phase = match c.phase() {
        ComponentPhase::Starting { deadline } => PhaseModel::Starting {
            deadline: deadline.as_micros(),
        },
        ComponentPhase::Running => PhaseModel::Running,
        ComponentPhase::StartupFailed(why) => PhaseModel::Failed(why),
    };
    prop_assert_eq!(phase, m.phase);
    prop_assert_eq!(c.status(), m.status());
    prop_assert_eq!(c.is_live(), m.live());
    prop_assert_eq!(c.is_ready(), m.ready());
    prop_assert_eq!(c.is_started(), m.started());
    prop_assert_eq!(c.poll_at(), m.poll_at().map(at));
    prop_assert_eq!(c.due_roles(at(now)).iter().collect::<Vec<_>>(), m.due(now));
    for role in ROLES {
        if let (Some(p), Some(pm)) = (c.probe(role), m.probes[index(role)].as_ref()) {
            prop_assert_eq!(p.status(), pm.status());
        }
    }
    // Gating, stated directly: while starting, only the startup probe is scheduled, and the
    // component never reads Unhealthy.
    if let ComponentPhase::Starting { deadline } = c.phase() {
        prop_assert!(!c.is_active(ProbeRole::Liveness) && !c.is_active(ProbeRole::Readiness));
        prop_assert!(c.poll_at().is_some_and(|t| t <= deadline));
        prop_assert_ne!(c.status(), HealthStatus::Unhealthy);
    }
    Ok(())
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(512))]

    /// Liveness and readiness are neither scheduled nor counted until startup succeeds; startup
    /// fails on its deadline or its failure threshold; resets start over.
    #[test]
    fn component_matches_model(
        config in config(),
        roles in roles(),
        start in any::<u64>(),
        ops in prop::collection::vec(component_op(), 1..150),
    ) {
        let mut c = Single::new(config, roles, start).expect("valid");
        let mut m = ComponentModel::new(&config, roles, start);
        let mut now = start;
        // Every ticket ever issued, with the model's number for the same check, so stale ones
        // can be replayed.
        let mut tickets: Vec<(CheckTicket, u64)> = Vec::new();
        check_component(c.health(), &m, now)?;
        for op in ops {
            match op {
                ComponentOp::Start(s, role) => {
                    now = advance(now, s);
                    let was_starting = matches!(c.health().phase(), ComponentPhase::Starting { .. });
                    let got = c.try_start(role, now);
                    let want = m.start(role, now);
                    prop_assert_eq!(got.map(|_| ()), want.map(|_| ()));
                    if was_starting && role != ProbeRole::Startup && roles.contains(role) {
                        prop_assert_eq!(got, Err(StartError::NotActive));
                    }
                    if let (Ok(ticket), Ok(generation)) = (got, want) {
                        prop_assert_eq!(ticket.role(), role);
                        tickets.push((ticket, generation));
                    }
                }
                ComponentOp::Result(s, role, status, stale, pick) => {
                    now = advance(now, s);
                    let ticket = tickets.iter().rev().find(|(t, _)| t.role() == role).copied();
                    let Some(latest) = ticket else { continue };
                    let (ticket, generation) = if stale { tickets[pick % tickets.len()] } else { latest };
                    let role = ticket.role();
                    let starting = matches!(c.health().phase(), ComponentPhase::Starting { .. });
                    let got = c.on_result(ticket, status, now);
                    let want = m.result(role, generation, status, now);
                    prop_assert_eq!(got, want);
                    if starting && role != ProbeRole::Startup {
                        // Ignored, or the startup deadline that came first.
                        prop_assert!(matches!(
                            got,
                            Err(_) | Ok(Some(ComponentEvent::StartupFailed(StartupFailure::Deadline)))
                        ));
                    }
                }
                ComponentOp::Poll(s) => {
                    now = advance(now, s);
                    // Draining terminates: at most one event per probe plus the deadline.
                    for _ in 0..5 {
                        let got = c.poll(now);
                        prop_assert_eq!(got, m.poll(now));
                        if got.is_none() {
                            break;
                        }
                    }
                    prop_assert_eq!(c.poll(now), None);
                    prop_assert_eq!(m.poll(now), None);
                }
                ComponentOp::Reset(s) => {
                    now = advance(now, s);
                    c.reset(now);
                    m.reset(now);
                }
            }
            check_component(c.health(), &m, now)?;
        }
    }

    /// A startup probe that never succeeds fails exactly `failure_threshold x interval` after the
    /// start, not a microsecond earlier (never, when that saturates at the last instant), and
    /// liveness/readiness never run before.
    #[test]
    fn startup_deadline_fires_at_threshold_times_interval(
        config in config(),
        start in any::<u64>(),
        polls in prop::collection::vec(step(), 1..60),
    ) {
        let mut c = Single::new(config, ProbeRoles::ALL, start).expect("valid");
        let window = u128::from(micros(config.interval)) * u128::from(config.failure_threshold);
        let deadline = u64::try_from(u128::from(start) + window).unwrap_or(u64::MAX);
        prop_assert_eq!(c.health().phase(), ComponentPhase::Starting { deadline: at(deadline) });
        let mut now = start;
        let mut fired = false;
        for s in polls {
            now = advance(now, s);
            prop_assert!(c.health().due_roles(at(now)).iter().all(|r| r == ProbeRole::Startup));
            let event = c.poll(now);
            if fired {
                prop_assert_eq!(event, None);
            } else if reached(deadline, now) {
                prop_assert_eq!(event, Some(ComponentEvent::StartupFailed(StartupFailure::Deadline)));
                prop_assert!(event.is_some_and(ComponentEvent::needs_recovery));
                fired = true;
            } else {
                prop_assert_eq!(event, None);
                let health = c.health();
                prop_assert_eq!(health.status(), HealthStatus::Unknown);
                prop_assert!(health.is_live() && !health.is_ready() && !health.is_started());
            }
        }
        prop_assert_eq!(
            c.health().phase() == ComponentPhase::StartupFailed(StartupFailure::Deadline),
            fired
        );
        // One microsecond before the deadline is never a failure.
        let mut fresh = Single::new(config, ProbeRoles::ALL, start).expect("valid");
        if deadline > start {
            prop_assert_eq!(fresh.poll(deadline - 1), None);
        }
        prop_assert_eq!(
            fresh.poll(deadline),
            (deadline != u64::MAX).then_some(ComponentEvent::StartupFailed(StartupFailure::Deadline))
        );
    }
}

// ---------------------------------------------------------------------------------------------
// Registry: overall, live, ready, started
// ---------------------------------------------------------------------------------------------

#[derive(Clone, Copy, Debug)]
enum StartupState {
    /// No startup probe.
    None,
    Starting,
    Started,
    Failed,
}

#[derive(Clone, Debug)]
struct Spec {
    critical: bool,
    startup: StartupState,
    /// Liveness and readiness: absent, present without a result, or present with one result.
    liveness: Option<Option<HealthStatus>>,
    readiness: Option<Option<HealthStatus>>,
}

fn spec() -> impl Strategy<Value = Spec> {
    let startup = prop_oneof![
        Just(StartupState::None),
        Just(StartupState::Starting),
        Just(StartupState::Started),
        Just(StartupState::Failed),
    ];
    let probe = || prop::option::of(prop::option::of(result_status()));
    (any::<bool>(), startup, probe(), probe())
        .prop_filter("at least one role", |(_, s, l, r)| {
            !matches!(s, StartupState::None) || l.is_some() || r.is_some()
        })
        .prop_map(|(critical, startup, liveness, readiness)| Spec {
            critical,
            startup,
            liveness,
            readiness,
        })
}

/// What a probe with at most one result reads, thresholds 1: the result if it passes,
/// `Unhealthy` if it fails, `Unknown` without one.
fn one_result(result: Option<HealthStatus>) -> HealthStatus {
    match result {
        None => HealthStatus::Unknown,
        Some(s @ (HealthStatus::Healthy | HealthStatus::Degraded)) => s,
        Some(_) => HealthStatus::Unhealthy,
    }
}

impl Spec {
    fn roles(&self) -> ProbeRoles {
        let mut roles = ProbeRoles::EMPTY;
        if !matches!(self.startup, StartupState::None) {
            roles = roles.with(ProbeRole::Startup);
        }
        if self.liveness.is_some() {
            roles = roles.with(ProbeRole::Liveness);
        }
        if self.readiness.is_some() {
            roles = roles.with(ProbeRole::Readiness);
        }
        roles
    }

    fn running(&self) -> bool {
        matches!(self.startup, StartupState::None | StartupState::Started)
    }

    fn status(&self) -> HealthStatus {
        match self.startup {
            StartupState::Starting => HealthStatus::Unknown,
            StartupState::Failed => HealthStatus::Unhealthy,
            _ => {
                let probes: Vec<_> = [self.liveness, self.readiness]
                    .into_iter()
                    .flatten()
                    .map(one_result)
                    .collect();
                // Started with a healthy startup result when it has no other probe.
                probes
                    .into_iter()
                    .reduce(worst)
                    .unwrap_or(HealthStatus::Healthy)
            }
        }
    }

    fn contribution(&self) -> HealthStatus {
        match (self.critical, self.status()) {
            (true, s) => s,
            (false, HealthStatus::Healthy) => HealthStatus::Healthy,
            (false, _) => HealthStatus::Degraded,
        }
    }

    fn live(&self) -> bool {
        match self.startup {
            StartupState::Starting => true,
            StartupState::Failed => false,
            _ => self.liveness.map(one_result) != Some(HealthStatus::Unhealthy),
        }
    }

    /// Started: the startup probe passed, or, without one, a liveness or readiness result came.
    fn started(&self) -> bool {
        match self.startup {
            StartupState::Started => true,
            StartupState::None => {
                matches!(self.liveness, Some(Some(_))) || matches!(self.readiness, Some(Some(_)))
            }
            StartupState::Starting | StartupState::Failed => false,
        }
    }

    fn ready(&self) -> bool {
        self.started()
            && self
                .readiness
                .map(one_result)
                .is_none_or(|s| matches!(s, HealthStatus::Healthy | HealthStatus::Degraded))
    }
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(512))]

    /// The service is the worst critical component; a non-critical one degrades it at most;
    /// live/ready/started look at critical components only.
    #[test]
    fn registry_aggregates_by_criticality(specs in prop::collection::vec(spec(), 0..=8)) {
        let config = HealthProbeConfig {
            interval: Duration::from_secs(10),
            timeout: Duration::from_secs(1),
            failure_threshold: 1,
            success_threshold: 1,
        };
        let t0 = Instant::from_secs(1_000);
        let mut registry = HealthRegistry::<8>::new();
        for (i, spec) in specs.iter().enumerate() {
            let criticality = if spec.critical { Criticality::Critical } else { Criticality::NonCritical };
            let name = format!("kernel/{i}");
            let id = registry.register(&name, config, criticality, spec.roles(), t0).expect("room");
            match spec.startup {
                StartupState::Started => {
                    let t = registry.try_start(id, ProbeRole::Startup, t0).expect("due");
                    let event = registry.on_result(t, HealthCheckResult::healthy(), t0).expect("counted");
                    prop_assert_eq!(event, Some(HealthEvent { component: id, event: ComponentEvent::Started }));
                }
                StartupState::Failed => {
                    let t = registry.try_start(id, ProbeRole::Startup, t0).expect("due");
                    registry.on_result(t, HealthCheckResult::unhealthy("no"), t0).expect("counted");
                }
                StartupState::None | StartupState::Starting => {}
            }
            for (role, probe) in [(ProbeRole::Liveness, spec.liveness), (ProbeRole::Readiness, spec.readiness)] {
                if let Some(Some(status)) = probe {
                    match registry.try_start(id, role, t0) {
                        Ok(t) => {
                            prop_assert!(spec.running());
                            registry.on_result(t, HealthCheckResult::new(status, "s"), t0).expect("counted");
                        }
                        Err(e) => {
                            prop_assert!(!spec.running());
                            prop_assert_eq!(e, StartError::NotActive);
                        }
                    }
                }
            }
        }
        // Liveness/readiness results for components not running were refused: they read as if
        // they had no result.
        let adjusted: Vec<Spec> = specs
            .iter()
            .map(|s| Spec {
                liveness: s.liveness.map(|r| r.filter(|_| s.running())),
                readiness: s.readiness.map(|r| r.filter(|_| s.running())),
                ..s.clone()
            })
            .collect();
        for (entry, spec) in registry.iter().zip(&adjusted) {
            prop_assert_eq!(entry.status(), spec.status());
            prop_assert_eq!(entry.contribution(), spec.contribution());
        }
        let critical = || adjusted.iter().filter(|s| s.critical);
        let overall = adjusted.iter().map(Spec::contribution).fold(HealthStatus::Healthy, worst);
        prop_assert_eq!(registry.overall(), overall);
        prop_assert_eq!(registry.live(), critical().all(Spec::live));
        prop_assert_eq!(registry.ready(), critical().all(Spec::ready));
        prop_assert_eq!(registry.started(), critical().all(Spec::started));
        // Non-critical components never make the service Unhealthy, Unknown, or anything but live,
        // ready and started.
        if critical().count() == 0 {
            prop_assert!(matches!(registry.overall(), HealthStatus::Healthy | HealthStatus::Degraded));
            prop_assert!(registry.live() && registry.ready() && registry.started());
        }
    }
}

// ---------------------------------------------------------------------------------------------
// Registry under abuse: nothing panics, poll drains, poll_at is the minimum
// ---------------------------------------------------------------------------------------------

#[derive(Clone, Debug)]
enum RegistryOp {
    Register(u8, HealthProbeConfig, bool, ProbeRoles),
    StartDue(Step),
    Start(Step, usize, ProbeRole),
    Result(Step, usize, HealthStatus),
    Poll(Step),
    Reset(Step, usize),
}

fn registry_op() -> impl Strategy<Value = RegistryOp> {
    prop_oneof![
        2 => (0u8..8, config(), any::<bool>(), roles())
            .prop_map(|(n, c, crit, r)| RegistryOp::Register(n, c, crit, r)),
        3 => step().prop_map(RegistryOp::StartDue),
        2 => (step(), any::<usize>(), role()).prop_map(|(s, i, r)| RegistryOp::Start(s, i, r)),
        4 => (step(), any::<usize>(), result_status()).prop_map(|(s, i, st)| RegistryOp::Result(s, i, st)),
        3 => step().prop_map(RegistryOp::Poll),
        1 => (step(), any::<usize>()).prop_map(|(s, i)| RegistryOp::Reset(s, i)),
    ]
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(384))]

    #[test]
    fn registry_never_panics_and_stays_consistent(
        start in any::<u64>(),
        ops in prop::collection::vec(registry_op(), 1..150),
    ) {
        let mut registry = HealthRegistry::<4>::new();
        let mut now = start;
        let mut ids = Vec::new();
        let mut tickets = Vec::new();
        for op in ops {
            match op {
                RegistryOp::Register(n, config, critical, roles) => {
                    let criticality = if critical { Criticality::Critical } else { Criticality::NonCritical };
                    let before = registry.len();
                    match registry.register(&format!("c{n}"), config, criticality, roles, at(now)) {
                        Ok(id) => {
                            prop_assert_eq!(registry.len(), before + 1);
                            prop_assert_eq!(registry.id(&format!("c{n}")), Some(id));
                            ids.push(id);
                        }
                        Err(_) => prop_assert_eq!(registry.len(), before),
                    }
                }
                RegistryOp::StartDue(s) => {
                    now = advance(now, s);
                    // Each component has at most three probes: the loop ends.
                    for _ in 0..=(3 * registry.capacity()) {
                        match registry.start_due(at(now)) {
                            Some(t) => tickets.push(t),
                            None => break,
                        }
                    }
                    prop_assert_eq!(registry.start_due(at(now)), None);
                    prop_assert_eq!(registry.due(at(now)).count(), 0);
                }
                RegistryOp::Start(s, i, role) => {
                    now = advance(now, s);
                    if let Some(&id) = ids.get(i % ids.len().max(1))
                        && let Ok(t) = registry.try_start(id, role, at(now))
                    {
                        tickets.push(t);
                    }
                }
                RegistryOp::Result(s, i, status) => {
                    now = advance(now, s);
                    if let Some(&t) = tickets.get(i % tickets.len().max(1)) {
                        let _ = registry.on_result(t, HealthCheckResult::new(status, "é🦀"), at(now));
                    }
                }
                RegistryOp::Poll(s) => {
                    now = advance(now, s);
                    let mut events = 0;
                    while registry.poll(at(now)).is_some() {
                        events += 1;
                        prop_assert!(events <= 4 * registry.capacity(), "poll does not drain");
                    }
                }
                RegistryOp::Reset(s, i) => {
                    now = advance(now, s);
                    if let Some(&id) = ids.get(i % ids.len().max(1)) {
                        prop_assert_eq!(registry.reset(id, at(now)), Ok(()));
                    }
                }
            }
            let min = registry.iter().filter_map(|e| e.health().poll_at()).min();
            prop_assert_eq!(registry.poll_at(), min);
            let overall = registry.overall();
            let worst_critical = registry
                .iter()
                .filter(|e| e.criticality() == Criticality::Critical)
                .map(|e| e.status())
                .fold(HealthStatus::Healthy, worst);
            prop_assert!(rank(overall) >= rank(worst_critical));
            if overall == HealthStatus::Unhealthy {
                prop_assert_eq!(worst_critical, HealthStatus::Unhealthy);
            }
            let _ = (registry.live(), registry.ready(), registry.started());
        }
    }
}

// ---------------------------------------------------------------------------------------------
// Messages and serde
// ---------------------------------------------------------------------------------------------

proptest! {
    #![proptest_config(ProptestConfig::with_cases(512))]

    /// Messages are the longest prefix that fits, cut on a char boundary.
    #[test]
    fn messages_truncate_on_char_boundaries(text in any::<String>(), pad in 0usize..70) {
        let text = "a".repeat(pad) + &text;
        let result = HealthCheckResult::unhealthy(&text);
        let message = result.message();
        prop_assert!(message.len() <= MESSAGE_CAPACITY);
        prop_assert!(text.starts_with(message));
        if message.len() < text.len() {
            let next = text[message.len()..].chars().next().expect("more text");
            prop_assert!(message.len() + next.len_utf8() > MESSAGE_CAPACITY);
        }
    }

    /// Results, statuses and configs survive postcard.
    #[test]
    fn postcard_round_trips(
        status in result_status(),
        text in any::<String>(),
        latency in any::<u64>(),
        checked in any::<u64>(),
        config in config(),
    ) {
        let mut buf = [0u8; 256];
        let result = HealthCheckResult::new(status, &text)
            .with_latency(Duration::from_micros(latency))
            .at(at(checked));
        let bytes = postcard::to_slice(&result, &mut buf).expect("fits");
        prop_assert_eq!(postcard::from_bytes::<HealthCheckResult>(bytes).expect("decodes"), result);
        let bytes = postcard::to_slice(&status, &mut buf).expect("fits");
        prop_assert_eq!(postcard::from_bytes::<HealthStatus>(bytes).expect("decodes"), status);
        let bytes = postcard::to_slice(&config, &mut buf).expect("fits");
        prop_assert_eq!(postcard::from_bytes::<HealthProbeConfig>(bytes).expect("decodes"), config);
    }
}

#[test]
fn registry_limits() {
    let config = HealthProbeConfig::default();
    let mut registry = HealthRegistry::<2>::new();
    let roles = ProbeRoles::ALL;
    let a = registry
        .register(
            "graph/pagerank",
            config,
            Criticality::Critical,
            roles,
            Instant::ZERO,
        )
        .expect("room");
    assert_eq!(
        registry.register(
            "graph/pagerank",
            config,
            Criticality::Critical,
            roles,
            Instant::ZERO
        ),
        Err(rustkernel_core::resilience::RegistryError::Duplicate)
    );
    registry
        .register(
            "graph/louvain",
            config,
            Criticality::NonCritical,
            roles,
            Instant::ZERO,
        )
        .expect("room");
    assert_eq!(
        registry.register(
            "graph/bfs",
            config,
            Criticality::Critical,
            roles,
            Instant::ZERO
        ),
        Err(rustkernel_core::resilience::RegistryError::Full)
    );
    assert_eq!(registry.id("graph/pagerank"), Some(a));
    assert_eq!(registry.len(), 2);
}

#[test]
fn chapter_snippets_compile() {
    let probe_config = HealthProbeConfig {
        interval: Duration::from_secs(10),
        timeout: Duration::from_secs(5),
        failure_threshold: 3,
        success_threshold: 1,
    };
    assert_eq!(probe_config.validate(), Ok(()));
    let _ = HealthCheckResult::healthy();
    let _ = HealthCheckResult::degraded("High latency");
    let result = HealthCheckResult::unhealthy("GPU unavailable");
    assert!(result.status == HealthStatus::Unhealthy);
    let _: rustkernel_core::resilience::HealthCheckConfig =
        rustkernel_core::resilience::HealthCheckConfig::production();
}
