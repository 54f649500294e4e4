//! The health of a kernel service, as Kubernetes and an operator see it: a model that takes a
//! while to load behind a startup probe, a cache the service can live without, a component
//! pushed from events instead of polled, a breaker mirrored as a component, and the three
//! probe routes and the `/health` body answered from one registry.
//!
//! ```text
//! cargo run -p rustkernel-tokio --example health_probe
//! ```
//!
//! Runs on the real clock in under a second.

use std::error::Error;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicU32, Ordering};
use std::time::Duration;

use rustkernel_tokio::clock;
use rustkernel_tokio::health::{EVENT_CAPACITY, FnCheck, HealthRunner, MAX_COMPONENTS};
use rustkernel_tokio::resilience::{
    CircuitBreaker, CircuitBreakerConfig, ComponentEvent, ComponentId, ComponentOptions,
    ComponentReport, Criticality, HealthCheck, HealthCheckResult, HealthProbe, HealthProbeConfig,
    HealthReport, HealthStatus, ProbeEvent, ProbeRole, ProbeRoles, RegistryError, UnknownComponent,
    check_fn,
};

/// A model that answers only once its weights are loaded, and can be told to fail: a cheap
/// handle, one for the service and one for the probe.
#[derive(Clone, Debug, Default)]
struct Model(Arc<ModelState>);

#[derive(Debug, Default)]
struct ModelState {
    loaded: AtomicBool,
    broken: AtomicBool,
    checks: AtomicU32,
}

impl HealthCheck for Model {
    async fn check(&self) -> HealthCheckResult {
        let state = &self.0;
        state.checks.fetch_add(1, Ordering::Relaxed);
        if state.broken.load(Ordering::Relaxed) {
            HealthCheckResult::unhealthy("inference returned NaN")
        } else if state.loaded.load(Ordering::Relaxed) {
            HealthCheckResult::healthy()
        } else {
            HealthCheckResult::new(HealthStatus::Unhealthy, "loading weights")
        }
    }
}

/// The three routes a Kubernetes pod spec points at.
fn probe_routes(probe: &HealthProbe) -> String {
    let code = |ok: bool| if ok { 200 } else { 503 };
    format!(
        "/health/startup {} /health/live {} /health/ready {}",
        code(probe.is_started()),
        code(probe.is_live()),
        code(probe.is_ready())
    )
}

fn line(component: &ComponentReport) -> String {
    format!(
        "{:<14} {:<9} live {:<5} ready {:<5} {}{}",
        component.name,
        component.status,
        component.live,
        component.ready,
        component.message,
        if component.critical {
            ""
        } else {
            " (non-critical)"
        }
    )
}

fn event_line(event: &ProbeEvent) -> String {
    let what = match event.event {
        ComponentEvent::StatusChanged { role, from, to } => format!("{role} {from} -> {to}"),
        ComponentEvent::Started => "started".to_owned(),
        other => format!("{other:?}"),
    };
    format!("event at {}: {} {what}", event.at, event.component)
}

#[tokio::main]
async fn main() -> Result<(), Box<dyn Error>> {
    // Every component is checked every 20 ms under a 10 ms timeout; two failures make it
    // unhealthy, one success healthy again.
    let config = HealthProbeConfig {
        interval: Duration::from_millis(20),
        timeout: Duration::from_millis(10),
        failure_threshold: 2,
        success_threshold: 1,
    };
    let zero_interval = HealthProbeConfig {
        interval: Duration::ZERO,
        ..config
    };
    if let Err(error) = HealthProbe::try_new(zero_interval) {
        println!("probe config rejected: {error}");
    }
    let probe = HealthProbe::new(config);
    println!(
        "a probe holds {MAX_COMPONENTS} components and {EVENT_CAPACITY} unread events; \
         checks every {:?}",
        probe.config().interval
    );
    let mut events = probe.subscribe();

    // The model: critical, with a startup probe that gates liveness and readiness, and 5
    // tries to start (5 failures in a row also make it not live).
    let model = Model::default();
    let model_id: ComponentId = probe.try_register_with(
        "model/resnet",
        model.clone(),
        ComponentOptions {
            criticality: Criticality::Critical,
            roles: ProbeRoles::of(&[
                ProbeRole::Startup,
                ProbeRole::Liveness,
                ProbeRole::Readiness,
            ]),
            config: Some(HealthProbeConfig {
                failure_threshold: 5,
                ..config
            }),
        },
    )?;
    // A cache: the service works without it, slower (readiness only, non-critical).
    let cache_up = Arc::new(AtomicBool::new(true));
    let cache: FnCheck<_> = check_fn({
        let up = Arc::clone(&cache_up);
        move || {
            let up = up.load(Ordering::Relaxed);
            async move {
                if up {
                    HealthCheckResult::healthy()
                } else {
                    HealthCheckResult::degraded("cache unreachable: serving from disk")
                }
            }
        }
    });
    probe.try_register_with(
        "cache",
        cache,
        ComponentOptions {
            criticality: Criticality::NonCritical,
            roles: ProbeRoles::of(&[ProbeRole::Readiness]),
            ..ComponentOptions::default()
        },
    )?;
    // A dependency that sometimes hangs: a check that does not answer in time is a failure.
    let store_hangs = Arc::new(AtomicBool::new(false));
    probe.register(
        "feature-store",
        check_fn({
            let hangs = Arc::clone(&store_hangs);
            move || {
                let hangs = hangs.load(Ordering::Relaxed);
                async move {
                    if hangs {
                        tokio::time::sleep(Duration::from_secs(1)).await;
                    }
                    HealthCheckResult::healthy()
                }
            }
        }),
    );
    // A component pushed from events, not polled: the service itself, not ready while it
    // drains (readiness only: draining must not get the pod restarted).
    probe.try_register_with(
        "service",
        check_fn(|| async { HealthCheckResult::healthy() }),
        ComponentOptions {
            roles: ProbeRoles::of(&[ProbeRole::Readiness]),
            ..ComponentOptions::default()
        },
    )?;
    // A kernel's breaker mirrored as a component: an open breaker makes the service degraded
    // and sends traffic elsewhere; it does not get the pod restarted.
    let breaker = CircuitBreaker::new(CircuitBreakerConfig {
        failure_threshold: 1,
        timeout: Duration::from_secs(30),
        ..Default::default()
    });
    let mirror = probe.mirror_breaker(
        "kernel/resnet",
        breaker.clone(),
        ComponentOptions {
            criticality: Criticality::NonCritical,
            roles: ProbeRoles::of(&[ProbeRole::Readiness]),
            ..ComponentOptions::default()
        },
    )?;
    println!(
        "components: {:?} (model id {model_id:?})",
        probe.components()
    );

    // Typos and mistakes are typed errors, not statuses.
    match probe.try_register("cache", check_fn(|| async { HealthCheckResult::healthy() })) {
        Err(RegistryError::Duplicate) => println!("a second 'cache': duplicate"),
        other => println!("a second 'cache': {other:?}"),
    }
    let typo: Result<_, UnknownComponent> = probe.check("cahce").await;
    println!("check('cahce'): {typo:?}");

    // The runner checks everything at its interval until stopped.
    let runner: HealthRunner = probe.spawn();
    tokio::time::sleep(Duration::from_millis(50)).await;
    println!("while the weights load: {}", probe_routes(&probe));
    model.0.loaded.store(true, Ordering::Relaxed);
    tokio::time::sleep(Duration::from_millis(50)).await;
    println!("after they loaded:      {}", probe_routes(&probe));

    // Push: the service starts draining; readiness follows at once, no check interval later.
    probe.record("service", HealthCheckResult::unhealthy("draining"))?;
    probe.record("service", HealthCheckResult::unhealthy("draining"))?;
    println!("draining:               {}", probe_routes(&probe));
    probe.record("service", HealthCheckResult::healthy())?;

    // The breaker opens: its component follows the transition, not the next check.
    let _ = breaker
        .call(|| async { Err::<(), _>(rustkernel_tokio::resilience::ErrorKind::Unavailable) })
        .await;
    tokio::time::sleep(Duration::from_millis(5)).await;
    println!(
        "breaker open: kernel/resnet is {:?}, overall {}; {}",
        probe.status("kernel/resnet"),
        probe.overall(),
        probe_routes(&probe)
    );

    // A hung dependency, checked on demand: the caller gets "timed out" after 10 ms.
    store_hangs.store(true, Ordering::Relaxed);
    let hung = probe.check("feature-store").await?;
    println!(
        "feature-store on demand: {} '{}' after {:?}",
        hung.status,
        hung.message(),
        hung.latency
    );
    store_hangs.store(false, Ordering::Relaxed);

    // The cache goes away: the service is degraded, still ready.
    cache_up.store(false, Ordering::Relaxed);
    let on_demand = probe.check("cache").await?;
    println!(
        "cache checked on demand: {} '{}' in {:?}; overall {}",
        on_demand.status,
        on_demand.message(),
        on_demand.latency,
        probe.overall()
    );

    // The body of /health, as JSON.
    tokio::time::sleep(Duration::from_millis(40)).await;
    let report: HealthReport = probe.report();
    println!("/health: {}", serde_json::to_string(&report)?);
    for component in &report.components {
        println!("  {}", line(component));
    }
    if let Some(cache) = report.component("cache") {
        println!("  the cache's last check took {:?}", cache.latency);
    }

    // The model breaks; recovery restarts it and resets its probes (startup included).
    model.0.broken.store(true, Ordering::Relaxed);
    tokio::time::sleep(Duration::from_millis(150)).await;
    println!("model broken:           {}", probe_routes(&probe));
    model.0.broken.store(false, Ordering::Relaxed);
    probe.reset("model/resnet")?;
    tokio::time::sleep(Duration::from_millis(40)).await;
    println!("model restarted:        {}", probe_routes(&probe));
    if let Some(at) = probe.checked_at("model/resnet") {
        println!(
            "model last checked {:?} ago ({} checks in all)",
            clock::to_tokio(probe.now()).saturating_duration_since(clock::to_tokio(at)),
            model.0.checks.load(Ordering::Relaxed)
        );
    }

    // What happened, from the event stream.
    while let Ok(event) = events.try_recv() {
        if !matches!(
            event.event,
            ComponentEvent::StatusChanged {
                from: HealthStatus::Unknown,
                ..
            }
        ) {
            println!("  {}", event_line(&event));
        }
    }

    println!("runner finished before stop: {}", runner.is_finished());
    runner.stop();
    mirror.abort();

    // A service with its own shutdown signal runs the probe inside its select loop.
    let (stop, mut stopped) = tokio::sync::watch::channel(false);
    let own_loop = tokio::spawn({
        let probe = probe.clone();
        async move {
            tokio::select! {
                () = probe.run() => {}
                _ = stopped.changed() => {}
            }
        }
    });
    tokio::time::sleep(Duration::from_millis(30)).await;
    stop.send(true)?;
    own_loop.await?;
    println!("own loop stopped; overall {}", probe.overall());
    Ok(())
}
