//! `HealthProbe` on tokio's paused clock: thresholds, timeouts of hung checks, startup gating,
//! the background runner's schedule, and the JSON of the report.

use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use rustkernel_core::resilience::StartupFailure;
use rustkernel_tokio::health::{ProbeEvent, check_fn};
use rustkernel_tokio::resilience::{
    ComponentEvent, ComponentOptions, Criticality, HealthCheck, HealthCheckResult, HealthProbe,
    HealthProbeConfig, HealthStatus, ProbeRole, ProbeRoles,
};

/// A check whose answer the test flips, recording when it was called (since `t0`).
#[derive(Clone)]
struct Switch {
    healthy: Arc<AtomicBool>,
    calls: Arc<Mutex<Vec<Duration>>>,
    t0: tokio::time::Instant,
    latency: Duration,
}

impl Switch {
    fn new(healthy: bool) -> Self {
        Self {
            healthy: Arc::new(AtomicBool::new(healthy)),
            calls: Arc::new(Mutex::new(Vec::new())),
            t0: tokio::time::Instant::now(),
            latency: Duration::ZERO,
        }
    }

    fn set(&self, healthy: bool) {
        self.healthy.store(healthy, Ordering::SeqCst);
    }

    fn calls(&self) -> Vec<Duration> {
        self.calls.lock().expect("lock").clone()
    }
}

impl HealthCheck for Switch {
    async fn check(&self) -> HealthCheckResult {
        self.calls.lock().expect("lock").push(self.t0.elapsed());
        if !self.latency.is_zero() {
            tokio::time::sleep(self.latency).await;
        }
        if self.healthy.load(Ordering::SeqCst) {
            HealthCheckResult::healthy()
        } else {
            HealthCheckResult::unhealthy("GPU unavailable")
        }
    }
}

fn config() -> HealthProbeConfig {
    HealthProbeConfig {
        interval: Duration::from_secs(10),
        timeout: Duration::from_secs(1),
        failure_threshold: 3,
        success_threshold: 1,
    }
}

/// Sleeps on the paused clock until `t0 + at` (the runtime jumps there, running every timer
/// due before it).
async fn until(t0: tokio::time::Instant, at: Duration) {
    tokio::time::sleep_until(t0 + at).await;
}

fn secs(s: u64) -> Duration {
    Duration::from_secs(s)
}

fn ms(m: u64) -> Duration {
    Duration::from_millis(m)
}

#[tokio::test(start_paused = true)]
async fn failure_threshold_failures_in_a_row_make_a_component_unhealthy() {
    let t0 = tokio::time::Instant::now();
    let probe = HealthProbe::new(config());
    let check = Switch::new(false);
    probe.register("graph/pagerank", check.clone());
    let mut events = probe.subscribe();
    let _runner = probe.spawn();

    // Two failures are not enough (hysteresis): still Unknown.
    until(t0, ms(500)).await;
    assert_eq!(probe.status("graph/pagerank"), Some(HealthStatus::Unknown));
    until(t0, secs(10) + ms(500)).await;
    assert_eq!(probe.status("graph/pagerank"), Some(HealthStatus::Unknown));
    assert!(
        probe.is_live(),
        "unknown liveness is live, as the kubelet assumes"
    );
    assert!(!probe.is_ready(), "unknown readiness is not ready");

    // The third failure in a row turns both probes Unhealthy.
    until(t0, secs(20) + ms(500)).await;
    assert_eq!(
        probe.status("graph/pagerank"),
        Some(HealthStatus::Unhealthy)
    );
    assert!(!probe.is_live() && !probe.is_ready());
    assert_eq!(probe.overall(), HealthStatus::Unhealthy);
    assert_eq!(check.calls(), vec![secs(0), secs(10), secs(20)]);

    let mut changes = Vec::new();
    while let Ok(event) = events.try_recv() {
        changes.push(event);
    }
    let at = rustkernel_tokio::clock::to_core(t0 + secs(20));
    assert_eq!(
        changes,
        [ProbeRole::Liveness, ProbeRole::Readiness].map(|role| ProbeEvent {
            component: "graph/pagerank".into(),
            event: ComponentEvent::StatusChanged {
                role,
                from: HealthStatus::Unknown,
                to: HealthStatus::Unhealthy,
            },
            at,
        })
    );

    // One pass (success_threshold 1) makes it healthy again.
    check.set(true);
    until(t0, secs(30) + ms(500)).await;
    assert_eq!(probe.status("graph/pagerank"), Some(HealthStatus::Healthy));
    assert!(probe.is_live() && probe.is_ready());
}

#[tokio::test(start_paused = true)]
async fn a_hung_check_times_out_and_blocks_no_other_component() {
    let t0 = tokio::time::Instant::now();
    let probe = HealthProbe::new(HealthProbeConfig {
        failure_threshold: 1,
        ..config()
    });
    let hung_calls = Arc::new(Mutex::new(0u32));
    let counter = Arc::clone(&hung_calls);
    probe.register(
        "gpu/hung",
        check_fn(move || {
            *counter.lock().expect("lock") += 1;
            std::future::pending::<HealthCheckResult>()
        }),
    );
    let ok = Switch::new(true);
    probe.register("cpu/ok", ok.clone());
    let _runner = probe.spawn();

    // The healthy component answered at once although the other check hangs.
    until(t0, ms(500)).await;
    assert_eq!(probe.status("cpu/ok"), Some(HealthStatus::Healthy));
    assert_eq!(probe.status("gpu/hung"), Some(HealthStatus::Unknown));

    // At `timeout` the hung check counts as a failure.
    until(t0, ms(1_500)).await;
    assert_eq!(probe.status("gpu/hung"), Some(HealthStatus::Unhealthy));
    let report = probe.report();
    let hung = report.component("gpu/hung").expect("registered");
    assert_eq!(hung.message, "timed out");
    assert_eq!(hung.latency, secs(1));

    // Both keep their schedule: every 10 s, the hung one restarted after each timeout.
    until(t0, secs(30) + ms(500)).await;
    assert_eq!(ok.calls(), vec![secs(0), secs(10), secs(20), secs(30)]);
    assert_eq!(*hung_calls.lock().expect("lock"), 4);

    // An on-demand check of the hung component returns after exactly `timeout`.
    let asked = tokio::time::Instant::now();
    let result = probe.check("gpu/hung").await.expect("registered");
    assert_eq!(asked.elapsed(), secs(1));
    assert_eq!(result.status, HealthStatus::Unhealthy);
    assert_eq!(result.message(), "timed out");
    assert_eq!(result.latency, secs(1));
}

#[tokio::test(start_paused = true)]
async fn startup_gates_liveness_and_readiness() {
    let t0 = tokio::time::Instant::now();
    let probe = HealthProbe::new(config());
    let check = Switch::new(false);
    let options = ComponentOptions {
        roles: ProbeRoles::ALL,
        ..ComponentOptions::default()
    };
    probe
        .try_register_with("graph/pagerank", check.clone(), options)
        .expect("registers");
    let mut events = probe.subscribe();
    let _runner = probe.spawn();

    // While starting, only the startup probe runs: one call per interval, not three.
    until(t0, secs(10) + ms(500)).await;
    assert_eq!(check.calls(), vec![secs(0), secs(10)]);
    assert!(!probe.is_started() && !probe.is_ready());
    assert!(probe.is_live(), "a starting component is live");
    assert_eq!(probe.status("graph/pagerank"), Some(HealthStatus::Unknown));

    // Startup passes at 20 s; liveness and readiness start at once, sharing one call.
    check.set(true);
    until(t0, secs(20) + ms(500)).await;
    assert_eq!(check.calls(), vec![secs(0), secs(10), secs(20), secs(20)]);
    assert!(probe.is_started() && probe.is_ready() && probe.is_live());
    assert_eq!(probe.status("graph/pagerank"), Some(HealthStatus::Healthy));
    assert_eq!(
        events.try_recv().expect("started").event,
        ComponentEvent::Started
    );
}

#[tokio::test(start_paused = true)]
async fn a_failed_startup_is_not_live_until_the_component_is_reset() {
    let t0 = tokio::time::Instant::now();
    let probe = HealthProbe::new(config());
    let check = Switch::new(false);
    let options = ComponentOptions {
        roles: ProbeRoles::of(&[ProbeRole::Startup, ProbeRole::Liveness]),
        ..ComponentOptions::default()
    };
    probe
        .try_register_with("graph/pagerank", check.clone(), options)
        .expect("registers");
    let mut events = probe.subscribe();
    let _runner = probe.spawn();

    until(t0, secs(20) + ms(500)).await;
    assert!(!probe.is_live() && !probe.is_started());
    assert_eq!(
        events.try_recv().expect("failed").event,
        ComponentEvent::StartupFailed(StartupFailure::FailureThreshold)
    );
    // Nothing runs after a failed startup.
    until(t0, secs(60)).await;
    assert_eq!(check.calls().len(), 3);

    // Recovery restarted the component: startup begins again, at once.
    check.set(true);
    probe.reset("graph/pagerank").expect("registered");
    until(t0, secs(60) + ms(500)).await;
    assert!(probe.is_live() && probe.is_started());
    assert_eq!(check.calls().len(), 5, "startup, then liveness");
}

#[tokio::test(start_paused = true)]
async fn the_runner_checks_at_each_interval_and_stops_when_dropped() {
    let t0 = tokio::time::Instant::now();
    let probe = HealthProbe::new(config());
    let check = Switch::new(true);
    probe.register("graph/pagerank", check.clone());
    let runner = probe.spawn();
    until(t0, secs(25)).await;
    assert_eq!(check.calls(), vec![secs(0), secs(10), secs(20)]);

    // A component registered later is checked at once, then at its own interval.
    let late = Switch::new(true);
    probe.register("graph/late", late.clone());
    until(t0, secs(45) + ms(500)).await;
    assert_eq!(late.calls(), vec![ms(0), secs(10), secs(20)]);
    assert_eq!(check.calls().len(), 5);

    assert!(!runner.is_finished());
    runner.stop();
    until(t0, secs(100)).await;
    assert_eq!(check.calls().len(), 5, "no check after the runner stopped");
}

#[tokio::test(start_paused = true)]
async fn on_demand_checks_count_like_scheduled_ones() {
    let probe = HealthProbe::new(config());
    let check = Switch::new(false);
    probe.register("graph/pagerank", check.clone());
    for _ in 0..2 {
        let result = probe.check("graph/pagerank").await.expect("registered");
        assert_eq!(result.status, HealthStatus::Unhealthy);
        assert_eq!(probe.status("graph/pagerank"), Some(HealthStatus::Unknown));
    }
    let _ = probe.check("graph/pagerank").await.expect("registered");
    assert_eq!(
        probe.status("graph/pagerank"),
        Some(HealthStatus::Unhealthy)
    );
}

/// A pushed result moves the registry at once, without running the check, and counts under
/// the component's thresholds like any other; the probe routes follow it.
#[tokio::test(start_paused = true)]
async fn a_pushed_result_moves_the_registry_at_once() {
    let probe = HealthProbe::new(config());
    let check = Switch::new(true);
    let once = HealthProbeConfig {
        failure_threshold: 1,
        ..config()
    };
    probe
        .try_register_with(
            "service",
            check.clone(),
            ComponentOptions {
                criticality: Criticality::Critical,
                roles: ProbeRoles::of(&[ProbeRole::Readiness]),
                config: Some(once),
            },
        )
        .expect("registered");
    probe
        .record("service", HealthCheckResult::unhealthy("draining"))
        .expect("registered");
    assert_eq!(probe.status("service"), Some(HealthStatus::Unhealthy));
    assert!(!probe.is_ready());
    assert_eq!(
        probe
            .report()
            .component("service")
            .map(|c| c.message.clone()),
        Some("draining".to_owned())
    );
    assert!(check.calls().is_empty(), "a push runs no check");
    probe
        .record("service", HealthCheckResult::healthy())
        .expect("registered");
    assert!(probe.is_ready());
    // With a threshold of 3, one pushed failure is not enough.
    probe.register("gpu", Switch::new(true));
    probe
        .record("gpu", HealthCheckResult::unhealthy("worker lost"))
        .expect("registered");
    assert_eq!(probe.status("gpu"), Some(HealthStatus::Unknown));
    assert!(probe.record("nope", HealthCheckResult::healthy()).is_err());
}

/// With the default options (liveness and readiness, no startup probe), the probe has not
/// started until every critical component answered its first check.
#[tokio::test(start_paused = true)]
async fn is_started_waits_for_every_first_check() {
    let probe = HealthProbe::new(config());
    let gpu = Switch::new(true);
    let cpu = Switch::new(false);
    probe.register("gpu", gpu.clone());
    probe.register("cpu", cpu.clone());
    assert!(
        !probe.is_started() && !probe.is_ready(),
        "nobody was heard from"
    );
    assert!(
        probe.is_live(),
        "liveness assumes life until told otherwise"
    );
    let _ = probe.check("gpu").await.expect("registered");
    assert!(!probe.is_started(), "cpu has not answered yet");
    let _ = probe.check("cpu").await.expect("registered");
    assert!(
        probe.is_started(),
        "both answered (one unhealthy: started, not ready)"
    );
    assert!(probe.report().components.iter().all(|c| c.started));
    // A reset is a restart: started again only once it answers again.
    probe.reset("cpu").expect("registered");
    assert!(!probe.is_started());
}

/// A component that mirrors a breaker follows each transition as it happens.
#[tokio::test(start_paused = true)]
async fn a_mirrored_breaker_moves_its_component_on_every_transition() {
    use rustkernel_tokio::resilience::{CircuitBreaker, CircuitBreakerConfig};
    let probe = HealthProbe::new(config());
    let breaker = CircuitBreaker::new(CircuitBreakerConfig::default());
    let mirror = probe
        .mirror_breaker(
            "kernel/graph/pagerank",
            breaker.clone(),
            ComponentOptions {
                criticality: Criticality::NonCritical,
                roles: ProbeRoles::of(&[ProbeRole::Readiness]),
                config: None,
            },
        )
        .expect("registered");
    let status = || probe.status("kernel/graph/pagerank");
    assert_eq!(status(), Some(HealthStatus::Unknown));
    let settle = || async {
        for _ in 0..8 {
            tokio::task::yield_now().await;
        }
    };
    breaker.force_open();
    settle().await;
    assert_eq!(status(), Some(HealthStatus::Unhealthy));
    let report = probe.report();
    let component = report.component("kernel/graph/pagerank").expect("listed");
    assert_eq!(
        component.message,
        "circuit breaker forced open by an operator"
    );
    breaker.reset();
    settle().await;
    assert_eq!(status(), Some(HealthStatus::Healthy));
    mirror.abort();
}

#[tokio::test(start_paused = true)]
async fn the_report_serializes_to_the_documented_json() {
    let probe = HealthProbe::new(config());
    let mut slow = Switch::new(false);
    slow.latency = ms(3);
    probe
        .try_register_with(
            "graph/pagerank",
            slow.clone(),
            ComponentOptions {
                config: Some(HealthProbeConfig {
                    failure_threshold: 1,
                    ..config()
                }),
                ..ComponentOptions::default()
            },
        )
        .expect("registers");
    probe
        .try_register_with(
            "cache/warm",
            check_fn(|| async { HealthCheckResult::degraded("High latency") }),
            ComponentOptions {
                criticality: Criticality::NonCritical,
                ..ComponentOptions::default()
            },
        )
        .expect("registers");
    probe.check("graph/pagerank").await.expect("registered");
    probe.check("cache/warm").await.expect("registered");

    let json = serde_json::to_value(probe.report()).expect("serializes");
    assert_eq!(
        json,
        serde_json::json!({
            "live": false,
            "ready": false,
            "started": true,
            "overall": "unhealthy",
            "components": [
                {
                    "name": "graph/pagerank",
                    "status": "unhealthy",
                    "message": "GPU unavailable",
                    "latency_ms": 3.0,
                    "critical": true,
                    "live": false,
                    "ready": false,
                    "started": true
                },
                {
                    "name": "cache/warm",
                    "status": "degraded",
                    "message": "High latency",
                    "latency_ms": 0.0,
                    "critical": false,
                    "live": true,
                    "ready": true,
                    "started": true
                }
            ]
        })
    );
    let back: rustkernel_tokio::resilience::HealthReport =
        serde_json::from_value(json).expect("deserializes");
    assert_eq!(back, probe.report());

    // Only the non-critical component failing: the service is degraded but ready.
    slow.set(true);
    probe.check("graph/pagerank").await.expect("registered");
    let report = probe.report();
    assert!(report.live && report.ready);
    assert_eq!(report.overall, HealthStatus::Degraded);
}
