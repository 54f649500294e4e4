//! The health monitor on embassy-time's mock clock.

#![allow(clippy::indexing_slicing, reason = "tests index what they just built")]

mod common;

use core::cell::{Cell, RefCell};
use core::time::Duration as StdDuration;
use std::vec::Vec;

use common::{now_ms, run_ms, serial};
use embassy_futures::join::join;
use embassy_futures::select::select;
use embassy_sync::blocking_mutex::raw::{CriticalSectionRawMutex, NoopRawMutex};
use embassy_time::{Duration, Timer};
use rustkernel_core::error::{ConfigError, ConfigField};
use rustkernel_core::resilience::{
    ComponentEvent, ComponentId, Criticality, HealthCheckResult, HealthEvent, HealthProbeConfig,
    HealthStatus, ProbeRole, ProbeRoles, RegistryError, StartupFailure,
};
use rustkernel_embassy::health::{HealthCheck, HealthMonitor, MonitorEvent};

const PROBE: HealthProbeConfig = HealthProbeConfig {
    interval: StdDuration::from_millis(100),
    timeout: StdDuration::from_millis(20),
    failure_threshold: 3,
    success_threshold: 2,
};

static SHARED: HealthMonitor<CriticalSectionRawMutex, 2> = HealthMonitor::new();

/// Runs `monitor` for `ms` virtual milliseconds, returning what it reported with the time.
async fn run_for<C: HealthCheck, const N: usize>(
    monitor: &HealthMonitor<NoopRawMutex, N>,
    checks: &C,
    ms: u64,
) -> Vec<(u64, MonitorEvent)> {
    let mut events = Vec::new();
    let mut observe = |event| events.push((now_ms(), event));
    let _ = select(
        monitor.run(checks, &mut observe),
        Timer::after(Duration::from_millis(ms)),
    )
    .await;
    events
}

fn changes(events: &[(u64, MonitorEvent)]) -> Vec<(u64, ComponentEvent)> {
    events
        .iter()
        .filter_map(|(at, event)| match event {
            MonitorEvent::Health(HealthEvent { event, .. }) => Some((*at, *event)),
            MonitorEvent::Checked { .. } => None,
        })
        .collect()
}

fn check_times(events: &[(u64, MonitorEvent)]) -> Vec<u64> {
    events
        .iter()
        .filter(|(_, event)| matches!(event, MonitorEvent::Checked { .. }))
        .map(|(at, _)| *at)
        .collect()
}

fn liveness_change(from: HealthStatus, to: HealthStatus) -> ComponentEvent {
    ComponentEvent::StatusChanged {
        role: ProbeRole::Liveness,
        from,
        to,
    }
}

#[test]
fn a_failing_component_is_unhealthy_after_failure_threshold_intervals() {
    let _clock = serial();
    let monitor: HealthMonitor<NoopRawMutex, 2> = HealthMonitor::new();
    let gpu = monitor
        .register("gpu", PROBE, Criticality::Critical, ProbeRole::Liveness)
        .expect("registered");
    let statuses = RefCell::new(Vec::new());
    let failing = |component: ComponentId, role: ProbeRole| {
        assert_eq!((component, role), (gpu, ProbeRole::Liveness));
        statuses.borrow_mut().push((now_ms(), monitor.status(gpu)));
        async { HealthCheckResult::unhealthy("no answer to ping") }
    };
    let events = run_ms(run_for(&monitor, &failing, 350));
    // Checks every 100 ms; the third failure in a row (at 200 ms) makes it Unhealthy.
    assert_eq!(check_times(&events), vec![0, 100, 200, 300]);
    assert_eq!(
        changes(&events),
        vec![(
            200,
            liveness_change(HealthStatus::Unknown, HealthStatus::Unhealthy)
        )]
    );
    assert_eq!(
        statuses.into_inner(),
        vec![
            (0, Some(HealthStatus::Unknown)),
            (100, Some(HealthStatus::Unknown)),
            (200, Some(HealthStatus::Unknown)),
            (300, Some(HealthStatus::Unhealthy)),
        ]
    );
    assert!(!monitor.live());
    assert_eq!(monitor.overall(), HealthStatus::Unhealthy);
    assert!(changes(&events)[0].1.needs_recovery());
}

#[test]
fn a_hung_check_is_cut_at_its_timeout_and_counts_as_a_failure() {
    let _clock = serial();
    let monitor: HealthMonitor<NoopRawMutex, 1> = HealthMonitor::new();
    let gpu = monitor
        .register("gpu", PROBE, Criticality::Critical, ProbeRole::Liveness)
        .expect("registered");
    let hung = |_: ComponentId, _: ProbeRole| async {
        Timer::after(Duration::from_secs(60)).await;
        HealthCheckResult::healthy()
    };
    let events = run_ms(run_for(&monitor, &hung, 250));
    assert_eq!(check_times(&events), vec![20, 120, 220]);
    assert!(events.iter().all(|(_, event)| match event {
        MonitorEvent::Checked {
            timed_out, status, ..
        } => *timed_out && *status == HealthStatus::Unhealthy,
        MonitorEvent::Health(_) => true,
    }));
    assert_eq!(
        changes(&events),
        vec![(
            220,
            liveness_change(HealthStatus::Unknown, HealthStatus::Unhealthy)
        )]
    );
    let timed_out = monitor
        .with_registry(|registry| {
            registry
                .get(gpu)
                .and_then(|entry| entry.health().probe(ProbeRole::Liveness))
                .map(|probe| probe.stats().timed_out)
        })
        .flatten();
    assert_eq!(timed_out, Some(3));
}

#[test]
fn recovery_needs_success_threshold_passes_and_a_reset_wakes_the_monitor() {
    let _clock = serial();
    let monitor: HealthMonitor<NoopRawMutex, 1> = HealthMonitor::new();
    let gpu = monitor
        .register("gpu", PROBE, Criticality::Critical, ProbeRole::Liveness)
        .expect("registered");
    let healthy = Cell::new(false);
    let ping = |_: ComponentId, _: ProbeRole| {
        let ok = healthy.get();
        async move {
            if ok {
                HealthCheckResult::healthy()
            } else {
                HealthCheckResult::unhealthy("down")
            }
        }
    };
    let (events, ()) = run_ms(join(run_for(&monitor, &ping, 600), async {
        Timer::after(Duration::from_millis(250)).await;
        assert_eq!(monitor.status(gpu), Some(HealthStatus::Unhealthy));
        // The component was restarted and works: its probes start over, checked at once.
        healthy.set(true);
        monitor.reset(gpu).expect("known component");
        assert_eq!(monitor.status(gpu), Some(HealthStatus::Unknown));
    }));
    assert_eq!(check_times(&events), vec![0, 100, 200, 250, 350, 450, 550]);
    assert_eq!(
        changes(&events),
        vec![
            (
                200,
                liveness_change(HealthStatus::Unknown, HealthStatus::Unhealthy)
            ),
            (
                350,
                liveness_change(HealthStatus::Unknown, HealthStatus::Healthy)
            ),
        ]
    );
    assert!(monitor.live() && monitor.ready());
}

#[test]
fn a_startup_probe_gates_the_others_and_its_failure_needs_recovery() {
    let _clock = serial();
    let monitor: HealthMonitor<NoopRawMutex, 1> = HealthMonitor::new();
    let gpu = monitor
        .register("gpu", PROBE, Criticality::Critical, ProbeRoles::ALL)
        .expect("registered");
    let roles = RefCell::new(Vec::new());
    let booting = |_: ComponentId, role: ProbeRole| {
        roles.borrow_mut().push(role);
        async { HealthCheckResult::unhealthy("still booting") }
    };
    let events = run_ms(run_for(&monitor, &booting, 1_000));
    assert!(
        roles
            .borrow()
            .iter()
            .all(|role| *role == ProbeRole::Startup)
    );
    assert_eq!(roles.borrow().len(), 3);
    assert_eq!(
        changes(&events),
        vec![(
            200,
            ComponentEvent::StartupFailed(StartupFailure::FailureThreshold)
        )]
    );
    assert!(changes(&events)[0].1.needs_recovery());
    assert!(!monitor.started() && !monitor.live() && !monitor.ready());
    assert_eq!(monitor.status(gpu), Some(HealthStatus::Unhealthy));
}

#[test]
fn registration_errors_are_typed_and_a_static_monitor_works() {
    let _clock = serial();
    let first = SHARED.register("a", PROBE, Criticality::Critical, ProbeRole::Readiness);
    assert!(first.is_ok());
    assert_eq!(
        SHARED.register("a", PROBE, Criticality::Critical, ProbeRole::Readiness),
        Err(RegistryError::Duplicate)
    );
    assert_eq!(
        SHARED.register(
            "b",
            HealthProbeConfig {
                failure_threshold: 0,
                ..PROBE
            },
            Criticality::Critical,
            ProbeRole::Readiness
        ),
        Err(RegistryError::Invalid(ConfigError::Zero(
            ConfigField::ProbeFailureThreshold
        )))
    );
    assert!(
        SHARED
            .register("b", PROBE, Criticality::NonCritical, ProbeRole::Readiness)
            .is_ok()
    );
    assert_eq!(
        SHARED.register("c", PROBE, Criticality::Critical, ProbeRole::Readiness),
        Err(RegistryError::Full)
    );
    assert_eq!(SHARED.id("b").map(ComponentId::index), Some(1));
    // Not ready until checked; one round of checks makes both ready (success_threshold 2
    // needs two rounds).
    assert!(!SHARED.ready());
    let ok = |_: ComponentId, _: ProbeRole| async { HealthCheckResult::healthy() };
    let mut ignore = |_: MonitorEvent| {};
    run_ms(SHARED.run_due(&ok, &mut ignore));
    assert!(!SHARED.ready());
    assert_eq!(SHARED.poll_at().map(|at| at.as_millis()), Some(100));
    run_ms(async {
        Timer::after(Duration::from_millis(100)).await;
        SHARED.run_due(&ok, &mut ignore).await;
    });
    assert!(SHARED.ready());
    assert_eq!(SHARED.overall(), HealthStatus::Healthy);
}

// ----- one hung check must not starve the others (issue 15) -----

/// A's probe: checked every second, cut at `timeout`.
fn slow_probe(timeout_ms: u64) -> HealthProbeConfig {
    HealthProbeConfig {
        interval: StdDuration::from_secs(1),
        timeout: StdDuration::from_millis(timeout_ms),
        failure_threshold: 3,
        success_threshold: 1,
    }
}

/// Registers A (liveness, interval 1 s, `a_timeout_ms`, a check that never returns) and then B
/// (`b_roles`, interval 100 ms, timeout 20 ms, answers at once), runs the monitor for 3 s and
/// returns B's id and the events.
fn hung_a_then_b(
    a_timeout_ms: u64,
    b_roles: ProbeRoles,
) -> (ComponentId, Vec<(u64, MonitorEvent)>) {
    let monitor: HealthMonitor<NoopRawMutex, 2> = HealthMonitor::new();
    let a = monitor
        .register(
            "a",
            slow_probe(a_timeout_ms),
            Criticality::Critical,
            ProbeRole::Liveness,
        )
        .expect("registered");
    let b = monitor
        .register("b", PROBE, Criticality::Critical, b_roles)
        .expect("registered");
    let checks = |component: ComponentId, _: ProbeRole| async move {
        if component == a {
            core::future::pending::<()>().await;
        }
        HealthCheckResult::healthy()
    };
    let events = run_ms(run_for(&monitor, &checks, 3_000));
    (b, events)
}

fn checks_of(events: &[(u64, MonitorEvent)], of: ComponentId) -> Vec<u64> {
    events
        .iter()
        .filter(|(_, event)| {
            matches!(event, MonitorEvent::Checked { component, .. } if *component == of)
        })
        .map(|(at, _)| *at)
        .collect()
}

fn every_100_ms_below_3_s() -> Vec<u64> {
    (0..30).map(|n| n * 100).collect()
}

#[test]
fn a_hung_check_does_not_delay_other_components() {
    let _clock = serial();
    let (b, events) = hung_a_then_b(1_000, ProbeRole::Liveness.into());
    let b_checks: Vec<u64> = checks_of(&events, b)
        .into_iter()
        .filter(|at| *at < 3_000)
        .collect();
    assert_eq!(b_checks, every_100_ms_below_3_s());
    // A timed out at 1 s and 2 s, each a checked-and-timed-out event.
    let a_timeouts: Vec<u64> = events
        .iter()
        .filter_map(|(at, event)| match event {
            MonitorEvent::Checked {
                component,
                timed_out: true,
                ..
            } if *component != b => Some(*at),
            _ => None,
        })
        .filter(|at| *at < 3_000)
        .collect();
    assert_eq!(a_timeouts, vec![1_000, 2_000]);
}

#[test]
fn a_hung_check_of_another_component_cannot_fail_a_startup() {
    let _clock = serial();
    let (b, events) = hung_a_then_b(1_000, [ProbeRole::Startup, ProbeRole::Liveness].into());
    let b_changes: Vec<(u64, ComponentEvent)> = events
        .iter()
        .filter_map(|(at, event)| match event {
            MonitorEvent::Health(HealthEvent { component, event }) if *component == b => {
                Some((*at, *event))
            }
            _ => None,
        })
        .collect();
    // Startup passes at its second check (success_threshold 2), then liveness runs.
    assert_eq!(
        b_changes.iter().take(2).copied().collect::<Vec<_>>(),
        vec![
            (100, ComponentEvent::Started),
            (
                200,
                liveness_change(HealthStatus::Unknown, HealthStatus::Healthy)
            ),
        ]
    );
    assert!(!b_changes.iter().any(|(_, event)| event.needs_recovery()));
    let b_checks: Vec<u64> = checks_of(&events, b)
        .into_iter()
        .filter(|at| *at < 3_000)
        .collect();
    // Startup at 0 and 100; liveness at once on start (100) and every 100 ms after.
    let mut expected = vec![0];
    expected.extend(
        every_100_ms_below_3_s()
            .into_iter()
            .skip(1)
            .flat_map(|at| if at == 100 { vec![100, 100] } else { vec![at] }),
    );
    assert_eq!(b_checks, expected);
}

#[test]
fn a_check_cut_before_the_interval_still_does_not_delay_others() {
    let _clock = serial();
    let (b, events) = hung_a_then_b(900, ProbeRole::Liveness.into());
    let b_checks: Vec<u64> = checks_of(&events, b)
        .into_iter()
        .filter(|at| *at < 3_000)
        .collect();
    assert_eq!(b_checks, every_100_ms_below_3_s());
}

#[test]
fn register_inside_a_registry_read_is_busy_not_full() {
    let _clock = serial();
    let monitor: HealthMonitor<NoopRawMutex, 2> = HealthMonitor::new();
    let inside = monitor.with_registry(|registry| {
        assert!(registry.is_empty());
        monitor.register("gpu", PROBE, Criticality::Critical, ProbeRole::Liveness)
    });
    assert_eq!(inside, Some(Err(RegistryError::Busy)));
    assert!(
        RegistryError::Busy.to_string().contains("in use"),
        "the message says why"
    );
    // Once the read is over the same registration works.
    assert!(
        monitor
            .register("gpu", PROBE, Criticality::Critical, ProbeRole::Liveness)
            .is_ok()
    );
}

#[test]
fn a_reset_replaces_a_hung_check_at_once() {
    let _clock = serial();
    let monitor: HealthMonitor<NoopRawMutex, 1> = HealthMonitor::new();
    let gpu = monitor
        .register(
            "gpu",
            HealthProbeConfig {
                timeout: StdDuration::from_millis(50),
                success_threshold: 1,
                ..PROBE
            },
            Criticality::Critical,
            ProbeRole::Liveness,
        )
        .expect("registered");
    let hung = Cell::new(true);
    let ping = |_: ComponentId, _: ProbeRole| {
        let hung = hung.get();
        async move {
            if hung {
                core::future::pending::<()>().await;
            }
            HealthCheckResult::healthy()
        }
    };
    let (events, ()) = run_ms(join(run_for(&monitor, &ping, 150), async {
        Timer::after(Duration::from_millis(10)).await;
        // Restarted while its first check hangs: the new check runs now, not after the old
        // one's timeout at 50 ms.
        hung.set(false);
        monitor.reset(gpu).expect("known component");
    }));
    assert_eq!(check_times(&events), vec![10, 110]);
    assert_eq!(
        changes(&events),
        vec![(
            10,
            liveness_change(HealthStatus::Unknown, HealthStatus::Healthy)
        )]
    );
}
