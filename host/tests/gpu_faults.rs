//! The GPU executor against real worker processes (the worker's CPU backend stands in for the
//! GPU; no GPU is needed): every injected fault ends in a restart or a CPU failover, within
//! the deadline, with every request answered exactly once and with its own result.
//!
//! These tests run real processes on tokio's real clock, with short heartbeats (20 ms) and
//! timeouts generous enough for a loaded machine; they assert outcomes, never latencies.

// Tests fail loudly, index what they built, and compare small integers held in f64 (exact).
#![allow(clippy::panic, clippy::indexing_slicing, clippy::float_cmp)]

use std::collections::HashSet;
use std::time::{Duration, Instant};

use rustkernel_core::resilience::{
    HealthStatus, RecoveryPolicy, RecoveryStrategy, RestartIntensity,
};
use rustkernel_host::gpu::{
    Backend, BackendKind, FaultKind, GpuConfig, GpuError, GpuExecutor, WorkerFault, WorkerPhase,
};
use rustkernel_host::kernels::{
    self, KernelRequest, KernelResponse, MatMulInput, MatMulOutput, PageRankInput,
};

const WORKER: &str = env!("CARGO_BIN_EXE_rustkernel-worker");
const DEADLINE: Duration = Duration::from_secs(5);
const PATIENCE: Duration = Duration::from_secs(10);

fn config(fault: Option<WorkerFault>) -> GpuConfig {
    let mut config = GpuConfig::new(WORKER);
    config.backend = BackendKind::Cpu;
    config.heartbeat_interval = Duration::from_millis(20);
    config.heartbeat_timeout = Duration::from_millis(300);
    config.kill_grace = Duration::from_millis(50);
    config.startup_timeout = Duration::from_secs(5);
    config.restart = RecoveryPolicy {
        strategy: RecoveryStrategy::RestartKernel,
        max_restarts: 3,
        restart_delay: Duration::from_millis(20),
        escalation: Some(RecoveryStrategy::Degrade),
    };
    config.intensity = RestartIntensity {
        window: Duration::from_secs(60),
        backoff: None,
    };
    config.nvml = false;
    config.fault = fault;
    config
}

fn fault(kind: FaultKind) -> Option<WorkerFault> {
    Some(WorkerFault {
        kind,
        on_request: 1,
        workers: 1,
    })
}

/// `[x] * [1]`: each request's answer names its request.
fn scalar(x: f64) -> KernelRequest {
    KernelRequest::MatMul(MatMulInput {
        n: 1,
        a: vec![x],
        b: vec![1.0],
    })
}

fn scalar_of(response: &KernelResponse) -> f64 {
    match response {
        KernelResponse::MatMul(MatMulOutput { c, .. }) => c[0],
        other => panic!("not a matmul: {other:?}"),
    }
}

fn pagerank() -> KernelRequest {
    let edges: Vec<[u32; 2]> = (0..50u32)
        .flat_map(|i| [[i, (i + 1) % 50], [i, (i * 7) % 50]])
        .collect();
    KernelRequest::PageRank(PageRankInput {
        num_nodes: 50,
        edges,
        damping: 0.85,
        max_iterations: 100,
        tolerance: 1e-12,
    })
}

/// Waits for the `workers`-th worker to be ready.
async fn ready_nth(executor: &GpuExecutor, workers: u64) {
    assert!(
        executor
            .wait_for(PATIENCE, |s| s.workers_started == workers
                && matches!(s.phase, WorkerPhase::Ready { .. }))
            .await,
        "worker {workers} not ready: {:?}",
        executor.status()
    );
}

async fn ready(executor: &GpuExecutor) {
    ready_nth(executor, 1).await;
}

/// Waits for the first worker to say that its backend cannot run here.
async fn unavailable(executor: &GpuExecutor) {
    assert!(
        executor
            .wait_for(PATIENCE, |s| matches!(
                s.phase,
                WorkerPhase::Unavailable { .. }
            ))
            .await,
        "not unavailable: {:?}",
        executor.status()
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_clean_worker_answers_with_the_cpu_kernels_result() {
    let executor = GpuExecutor::start(config(None)).await.expect("starts");
    ready(&executor).await;
    let health = executor.health();
    assert_eq!(
        (health.status, health.message()),
        (HealthStatus::Healthy, "ready: cpu on host CPU")
    );
    let request = pagerank();
    let (response, backend) = executor
        .execute(request.clone(), DEADLINE)
        .await
        .expect("answers");
    assert_eq!(backend, Backend::Gpu);
    assert_eq!(
        response,
        kernels::run_cpu(&request, &|| false).expect("cpu")
    );
    assert_eq!(executor.workers_started(), 1);
    executor.shutdown().await;
}

/// One fault on the first request of the first worker: that request is answered by the CPU
/// within its deadline, the worker is replaced, and the next request runs on the new worker.
async fn fails_over_then_recovers(kind: FaultKind) {
    let executor = GpuExecutor::start(config(fault(kind)))
        .await
        .expect("starts");
    ready(&executor).await;
    let started = Instant::now();
    let (response, backend) = executor
        .execute(scalar(7.0), DEADLINE)
        .await
        .unwrap_or_else(|e| panic!("{kind:?}: {e}"));
    assert!(
        started.elapsed() < DEADLINE,
        "{kind:?}: answered after the deadline"
    );
    assert_eq!(
        (scalar_of(&response), backend),
        (7.0, Backend::Cpu),
        "{kind:?}"
    );
    ready_nth(&executor, 2).await;
    let (response, backend) = executor
        .execute(scalar(8.0), DEADLINE)
        .await
        .expect("answers");
    assert_eq!(
        (scalar_of(&response), backend),
        (8.0, Backend::Gpu),
        "{kind:?}"
    );
    executor.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_crash_mid_request_fails_over_and_restarts() {
    fails_over_then_recovers(FaultKind::Crash).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn garbage_bytes_fail_over_and_restart() {
    fails_over_then_recovers(FaultKind::Garbage).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_poisoned_context_fails_over_and_restarts() {
    fails_over_then_recovers(FaultKind::Poisoned).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn stopped_heartbeats_fail_over_and_restart() {
    fails_over_then_recovers(FaultKind::SlowHeartbeats).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_hung_kernel_times_out_and_the_worker_is_replaced() {
    let executor = GpuExecutor::start(config(fault(FaultKind::Hang)))
        .await
        .expect("starts");
    ready(&executor).await;
    let deadline = Duration::from_millis(400);
    let started = Instant::now();
    let answer = executor.execute(scalar(1.0), deadline).await;
    let took = started.elapsed();
    // With no CPU run to go by yet, the request waits for the worker half of its time, then
    // the CPU answers it.
    let (response, backend) = answer.expect("the CPU answers");
    assert_eq!((scalar_of(&response), backend), (1.0, Backend::Cpu));
    assert!(
        took >= deadline / 2 && took < deadline,
        "answered after {took:?}"
    );
    // Killed at the deadline plus the grace, then restarted.
    ready_nth(&executor, 2).await;
    let (response, backend) = executor
        .execute(scalar(2.0), DEADLINE)
        .await
        .expect("answers");
    assert_eq!((scalar_of(&response), backend), (2.0, Backend::Gpu));
    executor.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn concurrent_requests_through_a_crash_each_get_their_own_answer_once() {
    // The third request the first worker sees crashes it.
    let fault = Some(WorkerFault {
        kind: FaultKind::Crash,
        on_request: 3,
        workers: 1,
    });
    let executor = GpuExecutor::start(config(fault)).await.expect("starts");
    ready(&executor).await;
    let executor = std::sync::Arc::new(executor);
    let mut calls = tokio::task::JoinSet::new();
    for i in 0..40u32 {
        let executor = executor.clone();
        calls.spawn(async move { (i, executor.execute(scalar(f64::from(i)), DEADLINE).await) });
    }
    let answers = calls.join_all().await;
    let mut seen = HashSet::new();
    let mut backends = HashSet::new();
    for (i, answer) in answers {
        let (response, backend) = answer.unwrap_or_else(|e| panic!("request {i}: {e}"));
        assert_eq!(
            scalar_of(&response),
            f64::from(i),
            "request {i} got another's answer"
        );
        assert!(seen.insert(i));
        backends.insert(backend);
    }
    assert_eq!(seen.len(), 40);
    assert!(
        backends.contains(&Backend::Cpu),
        "the crash forced a failover"
    );
    std::sync::Arc::into_inner(executor)
        .expect("no other owner")
        .shutdown()
        .await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_crash_loop_degrades_to_the_cpu_with_a_worker_on_probation() {
    let fault = Some(WorkerFault {
        kind: FaultKind::Crash,
        on_request: 1,
        workers: u32::MAX,
    });
    let executor = GpuExecutor::start(config(fault)).await.expect("starts");
    // Each worker crashes on its first request: 3 restarts are allowed, the 4th failure
    // escalates.
    for i in 0..4u32 {
        ready_nth(&executor, u64::from(i) + 1).await;
        let (response, backend) = executor
            .execute(scalar(f64::from(i)), DEADLINE)
            .await
            .expect("answers");
        assert_eq!(
            (scalar_of(&response), backend),
            (f64::from(i), Backend::Cpu)
        );
    }
    assert!(
        executor
            .wait_for(PATIENCE, |s| matches!(
                s.phase,
                WorkerPhase::Degraded { .. }
            ))
            .await,
        "{:?}",
        executor.status()
    );
    let health = executor.health();
    assert_eq!(health.status, HealthStatus::Unhealthy);
    assert!(
        health
            .message()
            .starts_with("worker on probation, CPU serves: worker exited"),
        "{}",
        health.message()
    );
    // Still served, on the CPU, at once.
    let (response, backend) = executor
        .execute(scalar(9.0), DEADLINE)
        .await
        .expect("answers");
    assert_eq!((scalar_of(&response), backend), (9.0, Backend::Cpu));
    executor.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn after_a_crash_loop_the_gpu_is_probed_again_and_comes_back() {
    // Four workers in a row crash on their first request: the fourth failure is one past
    // the 3 restarts allowed, so the GPU path degrades: the fifth worker runs on probation,
    // unused, while the CPU serves; it stays up for a window, the escalation ends, and a
    // sixth worker takes requests again.
    let mut config = config(Some(WorkerFault {
        kind: FaultKind::Crash,
        on_request: 1,
        workers: 4,
    }));
    config.intensity = RestartIntensity {
        window: Duration::from_secs(4),
        backoff: None,
    };
    config.probation.restart_delay = Duration::from_secs(1);
    let executor = GpuExecutor::start(config).await.expect("starts");
    for i in 0..4u32 {
        ready_nth(&executor, u64::from(i) + 1).await;
        let (_, backend) = executor
            .execute(scalar(1.0), DEADLINE)
            .await
            .expect("answers");
        assert_eq!(backend, Backend::Cpu);
    }
    assert!(
        executor
            .wait_for(PATIENCE, |s| matches!(
                s.phase,
                WorkerPhase::Degraded { .. }
            ))
            .await,
        "{:?}",
        executor.status()
    );
    let (_, backend) = executor
        .execute(scalar(1.0), DEADLINE)
        .await
        .expect("answers");
    assert_eq!(backend, Backend::Cpu, "on probation, the CPU serves");
    ready_nth(&executor, 6).await;
    assert_eq!(executor.health().status, HealthStatus::Healthy);
    let (response, backend) = executor
        .execute(scalar(5.0), DEADLINE)
        .await
        .expect("answers");
    assert_eq!((scalar_of(&response), backend), (5.0, Backend::Gpu));
    executor.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_device_that_dies_on_probation_too_turns_the_gpu_path_off() {
    // Every worker crashes right after it says it is ready: 3 restarts, then probation; the
    // probation worker crashes, is restarted once, crashes again: the operator is notified
    // and the GPU path stays off, while every request is answered on the CPU.
    let mut config = config(Some(WorkerFault {
        kind: FaultKind::Crash,
        on_request: 0,
        workers: u32::MAX,
    }));
    config.probation.restart_delay = Duration::from_millis(20);
    let executor = GpuExecutor::start(config).await.expect("starts");
    assert!(
        executor
            .wait_for(PATIENCE, |s| matches!(s.phase, WorkerPhase::Off { .. }))
            .await,
        "{:?}",
        executor.status()
    );
    // 4 primary workers and 2 on probation.
    assert_eq!(executor.workers_started(), 6);
    let health = executor.health();
    assert_eq!(health.status, HealthStatus::Unhealthy);
    assert!(
        health.message().starts_with("GPU off, operator notified: "),
        "{}",
        health.message()
    );
    let (response, backend) = executor
        .execute(scalar(3.0), DEADLINE)
        .await
        .expect("answers");
    assert_eq!((scalar_of(&response), backend), (3.0, Backend::Cpu));
    executor.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_missing_worker_binary_leaves_the_cpu_path() {
    let mut config = config(None);
    config.worker_path = "/nonexistent/rustkernel-worker".into();
    let executor = GpuExecutor::start(config).await.expect("starts");
    unavailable(&executor).await;
    let health = executor.health();
    assert_eq!(health.status, HealthStatus::Unhealthy);
    assert!(
        health
            .message()
            .starts_with("GPU unavailable: cannot start"),
        "{}",
        health.message()
    );
    let (response, backend) = executor
        .execute(scalar(3.0), DEADLINE)
        .await
        .expect("answers");
    assert_eq!((scalar_of(&response), backend), (3.0, Backend::Cpu));
    executor.shutdown().await;
}

#[cfg(not(feature = "cuda"))]
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_worker_without_cuda_says_so_and_the_cpu_answers() {
    let mut config = config(None);
    config.backend = BackendKind::Cuda;
    let executor = GpuExecutor::start(config).await.expect("starts");
    unavailable(&executor).await;
    assert_eq!(
        executor.health().message(),
        "GPU unavailable: worker built without CUDA (the `cuda` feature)"
    );
    let (_, backend) = executor
        .execute(scalar(1.0), DEADLINE)
        .await
        .expect("answers");
    assert_eq!(backend, Backend::Cpu);
    executor.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn invalid_requests_are_refused_before_any_path() {
    let executor = GpuExecutor::start(config(None)).await.expect("starts");
    let bad = KernelRequest::MatMul(MatMulInput {
        n: 2,
        a: vec![1.0],
        b: vec![1.0; 4],
    });
    assert!(matches!(
        executor.execute(bad, DEADLINE).await,
        Err(GpuError::InvalidInput(_))
    ));
    executor.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_hardware_xid_restarts_the_worker_and_clears_on_a_clean_start() {
    let executor = GpuExecutor::start(config(None)).await.expect("starts");
    ready(&executor).await;
    executor.report_xid(13); // an application Xid: counted, nothing else
    executor.report_xid(79); // fallen off the bus: unhealthy, worker replaced
    ready_nth(&executor, 2).await;
    assert_eq!(executor.application_xids(), 1);
    assert_eq!(executor.workers_started(), 2);
    // The fresh worker's clean start is the check that clears the Xid.
    assert_eq!(
        executor.health().status,
        HealthStatus::Healthy,
        "{}",
        executor.health().message()
    );
    executor.shutdown().await;
}

#[cfg(target_os = "linux")]
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_worker_gets_a_cleared_environment_and_only_its_pipes() {
    let executor = GpuExecutor::start(config(None)).await.expect("starts");
    ready(&executor).await;
    let pid = executor.worker_pid().expect("a worker runs");
    let environ = std::fs::read(format!("/proc/{pid}/environ")).expect("environ");
    let names: Vec<String> = environ
        .split(|&b| b == 0)
        .filter(|v| !v.is_empty())
        .map(|v| {
            String::from_utf8_lossy(v)
                .split('=')
                .next()
                .unwrap_or("")
                .to_owned()
        })
        .collect();
    for name in &names {
        assert!(
            name == "PATH" || name == "LD_LIBRARY_PATH" || name.starts_with("CUDA_"),
            "the worker inherited {name}"
        );
    }
    // The test process has variables such as these (cargo sets the first); the worker must not.
    assert!(!names.iter().any(|n| n == "CARGO_PKG_NAME" || n == "HOME"));
    let mut fds: Vec<u32> = std::fs::read_dir(format!("/proc/{pid}/fd"))
        .expect("fd dir")
        .filter_map(|e| e.ok()?.file_name().to_str()?.parse().ok())
        .collect();
    fds.sort_unstable();
    let links: Vec<String> = fds
        .iter()
        .map(|fd| {
            format!(
                "{fd} -> {:?}",
                std::fs::read_link(format!("/proc/{pid}/fd/{fd}"))
            )
        })
        .collect();
    assert_eq!(
        fds,
        vec![0, 1, 2],
        "the worker holds descriptors beyond its pipes: {links:?}"
    );
    executor.shutdown().await;
}
