//! The chapter's "Health Checks" snippets ("Health Probe Configuration" and "Health Status"),
//! each with only its `use` lines changed, run against `rustkernel_tokio`.

use std::cell::Cell;
use std::sync::Arc;

use rustkernel_tokio::resilience::HealthCheck;

/// The chapter's kernel, as the probe sees it: a health check. The chapter registers
/// `kernel.clone()`, an `Arc` of it.
#[derive(Default)]
struct PageRankKernel;

impl HealthCheck for PageRankKernel {
    async fn check(&self) -> rustkernel_tokio::resilience::HealthCheckResult {
        rustkernel_tokio::resilience::HealthCheckResult::healthy()
    }
}

#[tokio::test(start_paused = true)]
async fn health_probe_configuration() {
    let kernel = Arc::new(PageRankKernel);

    // ----- the chapter's snippet; `use` lines changed -----
    use rustkernel_tokio::resilience::{HealthProbe, HealthProbeConfig};
    use std::time::Duration;

    let probe = HealthProbe::new(HealthProbeConfig {
        interval: Duration::from_secs(10),
        timeout: Duration::from_secs(5),
        failure_threshold: 3,
        success_threshold: 1,
    });

    // Register kernel for monitoring
    probe.register("graph/pagerank", kernel.clone());

    // Get health status
    let status = probe.check("graph/pagerank").await;
    // ----- end of the snippet -----

    let result = status.expect("registered");
    assert_eq!(
        result.status,
        rustkernel_tokio::resilience::HealthStatus::Healthy
    );
    assert!(probe.is_live() && probe.is_ready());
    assert_eq!(Arc::strong_count(&kernel), 2, "the probe holds a clone");
}

thread_local! {
    static OFFLINE: Cell<bool> = const { Cell::new(false) };
}

fn take_kernel_offline() {
    OFFLINE.with(|offline| offline.set(true));
}

#[test]
// The chapter shadows `result` twice to show the three constructors.
#[allow(unused_variables)]
fn health_status() {
    // ----- the chapter's snippet; `use` lines changed -----
    use rustkernel_tokio::resilience::{HealthCheckResult, HealthStatus};

    let result = HealthCheckResult::healthy();
    let result = HealthCheckResult::degraded("High latency");
    let result = HealthCheckResult::unhealthy("GPU unavailable");

    // Check status
    if result.status == HealthStatus::Unhealthy {
        take_kernel_offline();
    }
    // ----- end of the snippet -----

    assert!(OFFLINE.with(Cell::get));
    assert_eq!(result.message(), "GPU unavailable");
}
