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
