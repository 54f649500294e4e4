//! The service with `[gpu]` enabled, over real HTTP and a real worker process: the worker's
//! answers come back as `backend: "gpu"`; a worker that cannot use a GPU makes the `gpu`
//! component say why while the CPU path keeps the service ready.
#![allow(clippy::unwrap_used, clippy::panic, clippy::indexing_slicing)] // a test fails loudly

use std::time::Duration;

use rustkernel_host::config::ConfigFile;
use rustkernel_host::service;

async fn start(backend: &str) -> (service::RunningService, String) {
    let worker = env!("CARGO_BIN_EXE_rustkernel-worker");
    let text = format!(
        "[gpu]\nenabled = true\nworker = {worker:?}\nbackend = {backend:?}\nheartbeat_interval = \"50ms\"\n\
         [resilience.health_check]\ninterval = \"100ms\"\ntimeout = \"100ms\"\nfailure_threshold = 1\nsuccess_threshold = 1\n"
    );
    let config = ConfigFile::parse(&text).unwrap().resolve(None).unwrap();
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let running = service::start_on(config, listener).await.unwrap();
    let base = format!("http://{}", running.local_addr());
    (running, base)
}

async fn get_json(client: &reqwest::Client, url: &str) -> (u16, serde_json::Value) {
    let response = client.get(url).send().await.unwrap();
    let status = response.status().as_u16();
    (status, response.json().await.unwrap())
}

/// Polls `/health` until `predicate` holds (real worker processes: real time, bounded).
async fn wait_health(
    client: &reqwest::Client,
    base: &str,
    predicate: impl Fn(&serde_json::Value) -> bool,
) -> serde_json::Value {
    let deadline = tokio::time::Instant::now() + Duration::from_secs(10);
    loop {
        let (_, body) = get_json(client, &format!("{base}/health")).await;
        if predicate(&body) {
            return body;
        }
        assert!(
            tokio::time::Instant::now() < deadline,
            "health never matched: {body}"
        );
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
}

fn gpu_component(body: &serde_json::Value) -> serde_json::Value {
    body["components"]
        .as_array()
        .unwrap()
        .iter()
        .find(|c| c["name"] == "gpu")
        .cloned()
        .unwrap_or(serde_json::Value::Null)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn kernels_run_on_the_worker() {
    let (running, base) = start("cpu").await;
    let client = reqwest::Client::new();
    // The service serves at once; the worker's start-up ends in the background.
    wait_health(&client, &base, |b| gpu_component(b)["status"] == "healthy").await;
    let response = client
        .post(format!("{base}/v1/kernels/linalg/matmul/execute"))
        .body(r#"{"n":2,"a":[1,2,3,4],"b":[5,6,7,8]}"#)
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), 200);
    let body: serde_json::Value = response.json().await.unwrap();
    assert_eq!(body["backend"], "gpu");
    assert_eq!(
        body["result"]["mat_mul"]["c"],
        serde_json::json!([19.0, 22.0, 43.0, 50.0])
    );
    let health = wait_health(&client, &base, |b| gpu_component(b)["status"] == "healthy").await;
    assert_eq!(health["status"], "healthy");

    // The device's breaker is exported as `gpu0` beside the kernels', each family once.
    let metrics = client
        .get(format!("{base}/metrics"))
        .send()
        .await
        .unwrap()
        .text()
        .await
        .unwrap();
    for line in [
        "rustkernel_circuit_breaker_state{breaker=\"gpu0\"} 0",
        "rustkernel_circuit_breaker_state{breaker=\"linalg/matmul\"} 0",
        "rustkernel_health_status{component=\"gpu\"} 0",
        "rustkernel_gpu_up 1",
        "rustkernel_gpu_workers_started_total 1",
        "rustkernel_kernel_fallbacks_total{kernel=\"linalg/matmul\"} 0",
        "rustkernel_recovery_actions_total{kernel=\"gpu0\",action=\"restart\"} 0",
    ] {
        assert!(
            metrics.lines().any(|l| l == line),
            "{line} missing from\n{metrics}"
        );
    }
    assert!(
        metrics
            .lines()
            .any(|l| l.starts_with("rustkernel_circuit_breaker_calls_total{breaker=\"gpu0\",")),
        "{metrics}"
    );
    let mut names: Vec<&str> = metrics
        .lines()
        .filter_map(|line| line.strip_prefix("# TYPE "))
        .filter_map(|rest| rest.split(' ').next())
        .collect();
    let count = names.len();
    names.sort_unstable();
    names.dedup();
    assert_eq!(names.len(), count, "a family twice: {metrics}");
    running.shutdown().await.unwrap();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn without_a_gpu_the_service_fails_over_to_the_cpu_and_stays_ready() {
    // The worker binary of this build has no `cuda` feature: its CUDA backend is unavailable.
    let (running, base) = start("cuda").await;
    let client = reqwest::Client::new();
    let response = client
        .post(format!("{base}/v1/kernels/graph/pagerank/execute"))
        .body(r#"{"num_nodes":3,"edges":[[0,1],[1,2],[2,0]]}"#)
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), 200);
    let body: serde_json::Value = response.json().await.unwrap();
    assert_eq!(body["backend"], "cpu");
    let health = wait_health(&client, &base, |b| {
        gpu_component(b)["status"] == "unhealthy"
    })
    .await;
    let gpu = gpu_component(&health);
    assert!(
        gpu["message"]
            .as_str()
            .unwrap()
            .starts_with("GPU unavailable"),
        "{gpu}"
    );
    assert_eq!(health["status"], "degraded", "{health}");
    let (status, ready) = get_json(&client, &format!("{base}/health/ready")).await;
    assert_eq!((status, ready["status"].as_str()), (200, Some("ready")));
    running.shutdown().await.unwrap();
}

fn component<'a>(body: &'a serde_json::Value, name: &str) -> &'a serde_json::Value {
    body["components"]
        .as_array()
        .unwrap()
        .iter()
        .find(|c| c["name"] == name)
        .unwrap_or(&serde_json::Value::Null)
}

/// The chaos run of issue 25, replayed on the worker's CPU backend: 16 clients with 500 ms
/// deadlines, and the worker stopped (SIGSTOP) for a second under them. The requests
/// waiting for the stalled worker fail over to the CPU; the device's breaker takes the
/// blame; no request gets a 503 or a 504, both kernels' breakers stay closed, and readiness
/// stays 200 throughout.
#[cfg(target_os = "linux")]
#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn a_stalled_worker_is_the_devices_fault_and_the_cpu_serves_its_requests() {
    // The defaults that matter: heartbeats every 100 ms, killed after 1 s of silence.
    let worker = env!("CARGO_BIN_EXE_rustkernel-worker");
    let text = format!(
        "[gpu]\nenabled = true\nworker = {worker:?}\nbackend = \"cpu\"\n\
         [limits]\nper_client_rate = 0\n\
         [resilience.health_check]\ninterval = \"50ms\"\ntimeout = \"50ms\"\nfailure_threshold = 1\nsuccess_threshold = 1\n"
    );
    let config = ConfigFile::parse(&text).unwrap().resolve(None).unwrap();
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let running = service::start_on(config, listener).await.unwrap();
    let base = format!("http://{}", running.local_addr());
    let client = reqwest::Client::new();
    wait_health(&client, &base, |b| gpu_component(b)["status"] == "healthy").await;
    let pid = running.state().gpu().unwrap().worker_pid().unwrap();

    let bodies = [
        (
            "graph/pagerank",
            r#"{"num_nodes":4,"edges":[[0,1],[1,2],[2,3],[3,0],[0,2]]}"#,
        ),
        ("linalg/matmul", r#"{"n":2,"a":[1,2,3,4],"b":[5,6,7,8]}"#),
    ];
    let stop = tokio::time::Instant::now() + Duration::from_millis(2500);
    let mut clients = tokio::task::JoinSet::new();
    for i in 0..16usize {
        let client = client.clone();
        let base = base.clone();
        let (kernel, body) = bodies[i % 2];
        clients.spawn(async move {
            let mut statuses = Vec::new();
            while tokio::time::Instant::now() < stop {
                let response = client
                    .post(format!("{base}/v1/kernels/{kernel}/execute"))
                    .header("x-request-timeout-ms", "500")
                    .body(body)
                    .send()
                    .await
                    .unwrap();
                let status = response.status().as_u16();
                let body: serde_json::Value = response.json().await.unwrap();
                statuses.push((status, body["backend"].as_str().unwrap_or("").to_owned()));
                tokio::time::sleep(Duration::from_millis(10)).await;
            }
            statuses
        });
    }
    // Readiness, polled throughout.
    let probe_client = client.clone();
    let probe_base = base.clone();
    let readiness = tokio::spawn(async move {
        let mut answers = Vec::new();
        while tokio::time::Instant::now() < stop {
            let response = probe_client
                .get(format!("{probe_base}/health/ready"))
                .send()
                .await
                .unwrap();
            answers.push(response.status().as_u16());
            tokio::time::sleep(Duration::from_millis(25)).await;
        }
        answers
    });
    tokio::time::sleep(Duration::from_millis(500)).await;
    let signal = |name: &str| {
        let status = std::process::Command::new("kill")
            .args([name, &pid.to_string()])
            .status()
            .unwrap();
        assert!(status.success(), "kill {name} {pid}");
    };
    signal("-STOP");
    tokio::time::sleep(Duration::from_millis(1000)).await;
    // The supervisor killed it at the heartbeat timeout; a CONT to a dead pid may fail.
    let _ = std::process::Command::new("kill")
        .args(["-CONT", &pid.to_string()])
        .status();

    let mut answers = Vec::new();
    while let Some(statuses) = clients.join_next().await {
        answers.extend(statuses.unwrap());
    }
    let bad: Vec<_> = answers
        .iter()
        .filter(|(status, _)| *status != 200)
        .collect();
    assert!(
        bad.is_empty(),
        "{} of {} failed, the first: {:?}",
        bad.len(),
        answers.len(),
        &bad[..bad.len().min(5)]
    );
    assert!(
        answers.iter().any(|(_, backend)| backend == "cpu"),
        "no failover"
    );
    let ready = readiness.await.unwrap();
    let not_ready = ready.iter().filter(|&&s| s != 200).count();
    assert!(
        !ready.is_empty() && not_ready == 0,
        "{not_ready} of {} probes not 200",
        ready.len()
    );

    let health = get_json(&client, &format!("{base}/health")).await.1;
    for kernel in ["kernel/graph/pagerank", "kernel/linalg/matmul"] {
        assert_eq!(component(&health, kernel)["status"], "healthy", "{health}");
    }
    // The stall was charged to the device: its breaker counted failures.
    let gpu = running.state().gpu().unwrap();
    let stats = gpu.breaker().stats();
    assert!(
        stats.failure_count > 0 || stats.transitions > 0,
        "{stats:?}"
    );
    assert!(
        gpu.workers_started() >= 2,
        "the stalled worker was not replaced"
    );
    running.shutdown().await.unwrap();
}

/// The device-fault switch from the config file, on the worker's CPU backend (which stands
/// in for the out-of-bounds store with the same sticky 700): the faulty request is served by
/// the CPU, the poisoned worker is replaced, and the next request runs on the new worker.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_device_fault_from_the_config_fails_over_and_the_worker_is_replaced() {
    let worker = env!("CARGO_BIN_EXE_rustkernel-worker");
    let text = format!(
        "[gpu]\nenabled = true\nworker = {worker:?}\nbackend = \"cpu\"\nheartbeat_interval = \"50ms\"\n\
         restart_delay = \"20ms\"\nfault = {{ kind = \"gpu-oob\" }}\n\
         [resilience.health_check]\ninterval = \"100ms\"\ntimeout = \"100ms\"\nfailure_threshold = 1\nsuccess_threshold = 1\n"
    );
    let config = ConfigFile::parse(&text).unwrap().resolve(None).unwrap();
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let running = service::start_on(config, listener).await.unwrap();
    let base = format!("http://{}", running.local_addr());
    let client = reqwest::Client::new();
    wait_health(&client, &base, |b| gpu_component(b)["status"] == "healthy").await;
    let execute = || async {
        let response = client
            .post(format!("{base}/v1/kernels/linalg/matmul/execute"))
            .body(r#"{"n":2,"a":[1,2,3,4],"b":[5,6,7,8]}"#)
            .send()
            .await
            .unwrap();
        assert_eq!(response.status(), 200);
        let body: serde_json::Value = response.json().await.unwrap();
        assert_eq!(
            body["result"]["mat_mul"]["c"],
            serde_json::json!([19.0, 22.0, 43.0, 50.0])
        );
        body["backend"].as_str().unwrap().to_owned()
    };
    assert_eq!(execute().await, "cpu");
    let gpu = running.state().gpu().unwrap();
    assert!(
        gpu.wait_for(Duration::from_secs(10), |s| s.workers_started == 2
            && matches!(s.phase, rustkernel_host::gpu::WorkerPhase::Ready { .. }))
            .await,
        "{:?}",
        gpu.status()
    );
    assert_eq!(execute().await, "gpu");
    running.shutdown().await.unwrap();
}
