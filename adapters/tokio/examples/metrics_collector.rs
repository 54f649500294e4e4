//! A service's resilience figures for Prometheus and for a status page: the collector sits in
//! the application's own `prometheus-client` registry beside its other metrics and reads its
//! sources at each scrape; sources can be the adapter's handles or any function, such as a
//! core breaker the application drives itself, or recovery decisions it receives from edge
//! devices; the same figures come out as one serde value.
//!
//! ```text
//! cargo run -p rustkernel-tokio --example metrics_collector
//! ```

use std::error::Error;
use std::sync::{Arc, Mutex, PoisonError};
use std::time::Duration;

use prometheus_client::encoding::text::encode;
use prometheus_client::metrics::counter::Counter;
use prometheus_client::registry::Registry;
use rustkernel_core::resilience::{CircuitBreaker as CoreBreaker, Recovery};
use rustkernel_tokio::clock;
use rustkernel_tokio::metrics::{
    BreakerMetrics, MetricsSnapshot, RecoveryActionCounts, RecoveryMetrics, ResilienceCollector,
};
use rustkernel_tokio::resilience::{
    CircuitBreaker, CircuitBreakerConfig, ErrorKind, HealthCheckResult, HealthProbe,
    HealthProbeConfig, HealthReport, RecoveryAction, RecoveryPolicy, RecoveryStrategy,
    RestartIntensity, check_fn,
};

/// The lines of a scrape that mention `what`.
fn lines_with<'a>(text: &'a str, what: &str) -> Vec<&'a str> {
    text.lines()
        .filter(|line| !line.starts_with('#') && line.contains(what))
        .collect()
}

#[tokio::main]
async fn main() -> Result<(), Box<dyn Error>> {
    // The application's registry, with a metric of its own.
    let mut registry = Registry::default();
    let requests = Counter::<u64>::default();
    registry.register("app_requests", "Requests served", requests.clone());

    // Its sources: a shared breaker and a health probe (handles read at each scrape) ...
    let breaker = CircuitBreaker::new(CircuitBreakerConfig {
        failure_threshold: 2,
        ..Default::default()
    });
    let probe = HealthProbe::new(HealthProbeConfig::default());
    probe.register(
        "graph/pagerank",
        check_fn(|| async { HealthCheckResult::healthy() }),
    );
    // ... a breaker of the core that the application drives itself on its own thread ...
    let uplink = Arc::new(Mutex::new(
        CoreBreaker::new(CircuitBreakerConfig::default()),
    ));
    // ... and the recovery decisions that edge devices report in their telemetry, counted as
    // they arrive.
    let edge_counts = Arc::new(Mutex::new(RecoveryActionCounts::default()));

    registry.register_collector(Box::new(
        ResilienceCollector::new()
            .with_breaker("graph/pagerank", breaker.clone())
            .with_breaker_stats("uplink", {
                let uplink = Arc::clone(&uplink);
                move || {
                    uplink
                        .lock()
                        .unwrap_or_else(PoisonError::into_inner)
                        .stats()
                }
            })
            .with_health(probe.clone())
            .with_recovery_counts("edge-07/accelerator", {
                let counts = Arc::clone(&edge_counts);
                move || *counts.lock().unwrap_or_else(PoisonError::into_inner)
            }),
    ));

    // Traffic: the kernel fails twice and its breaker opens; the uplink drops a frame.
    for _ in 0..3 {
        requests.inc();
        let _ = breaker
            .call(|| async { Err::<(), _>(ErrorKind::Unavailable) })
            .await;
    }
    {
        let mut uplink = uplink.lock().unwrap_or_else(PoisonError::into_inner);
        let now = clock::now();
        if let Ok(permit) = uplink.try_acquire(now) {
            uplink.on_failure(permit, ErrorKind::Timeout, now);
        }
    }
    let _ = probe.check("graph/pagerank").await;
    // An edge device's recovery machine restarts its accelerator twice, then escalates; the
    // host receives each decision in the device's telemetry and counts it.
    let mut device: Recovery = Recovery::new(
        RecoveryPolicy {
            strategy: RecoveryStrategy::RestartKernel,
            max_restarts: 2,
            restart_delay: Duration::from_millis(100),
            escalation: Some(RecoveryStrategy::Degrade),
        },
        RestartIntensity::default(),
    );
    let mut now = clock::now();
    for _ in 0..3 {
        let action = device.on_failure(now);
        println!("edge-07 reports: {action}");
        edge_counts
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .record(action);
        // The device fails again a little after each restart.
        if let RecoveryAction::Restart { at, .. } = action {
            now = at + Duration::from_millis(10);
        }
    }

    // A scrape: the application's metric and the resilience families, one vocabulary.
    let mut scrape = String::new();
    encode(&mut scrape, &registry)?;
    for what in [
        "app_requests",
        "rustkernel_circuit_breaker_state{",
        "outcome=\"rejected\"",
        "rustkernel_health_ready",
        "kernel=\"edge-07/accelerator\",action=\"restart\"",
        "action=\"escalate\"",
    ] {
        for line in lines_with(&scrape, what) {
            println!("scrape: {line}");
        }
    }

    // The same figures as one value, for a status page or a push to a fleet server.
    let collector = ResilienceCollector::new()
        .with_breaker("graph/pagerank", breaker.clone())
        .with_health_report({
            let probe = probe.clone();
            move || probe.report()
        })
        .with_recovery_counts("edge-07/accelerator", {
            let counts = Arc::clone(&edge_counts);
            move || *counts.lock().unwrap_or_else(PoisonError::into_inner)
        });
    let snapshot: MetricsSnapshot = collector.snapshot();
    for BreakerMetrics { name, stats } in &snapshot.breakers {
        println!(
            "snapshot: breaker {name} {} after {} failures",
            stats.state, stats.failure_count
        );
    }
    for RecoveryMetrics { kernel, counts } in &snapshot.recovery {
        let nonzero: Vec<_> = counts
            .labelled()
            .into_iter()
            .filter(|(_, n)| *n > 0)
            .collect();
        println!(
            "snapshot: {kernel} {} decisions {nonzero:?}",
            counts.total()
        );
    }
    let json = serde_json::to_string(&snapshot)?;
    println!("snapshot as JSON: {} bytes", json.len());
    let back: MetricsSnapshot = serde_json::from_str(&json)?;
    println!("read back equal: {}", back == snapshot);

    // A snapshot built by hand (figures received from elsewhere) has the same text form.
    let health: Option<HealthReport> = snapshot.health.clone();
    let mut by_hand = MetricsSnapshot::new().with_breaker("uplink", {
        uplink
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .stats()
    });
    if let Some(report) = health {
        by_hand = by_hand.with_health(report);
    }
    by_hand = by_hand.with_recovery("edge-07/accelerator", RecoveryActionCounts::default());
    let text = by_hand.to_prometheus();
    for line in lines_with(&text, "uplink").into_iter().take(3) {
        println!("text: {line}");
    }
    Ok(())
}
