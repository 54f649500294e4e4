//! `rustkernel serve` as a real process: SIGTERM drains in-flight requests and exits 0 within
//! the drain deadline, whenever it arrives.
#![allow(clippy::indexing_slicing, clippy::panic)] // tests fail loudly

mod common;

use std::net::SocketAddr;
use std::time::{Duration, Instant};

use common::{CYCLE, MATMUL_2X2, ServeProcess, TempDir, send, toml_with};

/// The tests here run one at a time: each takes a free port by binding port 0 and releasing
/// it, and two at once could be handed the same one.
static ONE_AT_A_TIME: tokio::sync::Mutex<()> = tokio::sync::Mutex::const_new(());

/// Writes a config listening on a free loopback port; returns its path and the address.
fn config_file(dir: &TempDir, extra: &str) -> (std::path::PathBuf, SocketAddr) {
    let port = common::free_port();
    let address = SocketAddr::from(([127, 0, 0, 1], port));
    let text = toml_with(&format!("[server]\naddress = \"{address}\"\n{extra}"));
    (dir.write("service.toml", &text, 0o600), address)
}

/// Starts `rustkernel serve` on a free port and waits until it logs that it listens there;
/// takes another port if something else took this one in between.
fn spawn_serve(dir: &TempDir, extra: &str) -> (ServeProcess, SocketAddr) {
    for _ in 0..5 {
        let (config, address) = config_file(dir, extra);
        let mut serve = ServeProcess::spawn(&["--config", config.to_str().expect("UTF-8")]);
        if serve
            .wait_for_line("listening", Duration::from_secs(20))
            .is_some()
        {
            return (serve, address);
        }
        let log = serve.drain_log();
        assert!(log.contains("cannot listen"), "did not start: {log}");
    }
    panic!("no free port in 5 tries");
}

fn url(address: SocketAddr, path: &str) -> String {
    format!("http://{address}{path}")
}

async fn wait_ready(client: &reqwest::Client, address: SocketAddr, serve: &mut ServeProcess) {
    let deadline = Instant::now() + Duration::from_secs(20);
    loop {
        if let Ok(response) = client.get(url(address, "/health/ready")).send().await
            && response.status() == 200
        {
            return;
        }
        assert!(
            Instant::now() < deadline,
            "never ready: {}",
            serve.drain_log()
        );
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
}

/// A PageRank request from a second client, sent again while it is shed (a probe of
/// [`wait_in_flight`] may hold the only slot at that moment); returns the first answer that
/// is not 429.
async fn send_until_admitted(address: SocketAddr) -> common::Answer {
    let client = common::client();
    let deadline = Instant::now() + Duration::from_secs(5);
    loop {
        let answer = send(
            client
                .post(url(address, "/v1/kernels/graph/pagerank/execute"))
                .body(CYCLE),
        )
        .await;
        if answer.status != 429 || Instant::now() > deadline {
            return answer;
        }
        tokio::time::sleep(Duration::from_millis(5)).await;
    }
}

/// Waits until a kernel request is in flight: with `max_concurrency = 1`, others are shed.
async fn wait_in_flight(client: &reqwest::Client, address: SocketAddr) {
    let deadline = Instant::now() + Duration::from_secs(5);
    loop {
        let probe = send(
            client
                .post(url(address, "/v1/kernels/linalg/matmul/execute"))
                .body(MATMUL_2X2),
        )
        .await;
        if probe.status == 429 {
            return;
        }
        assert!(
            Instant::now() < deadline,
            "the slow request never started: {probe:?}"
        );
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sigterm_drains_the_in_flight_request_and_exits_0() {
    let _one = ONE_AT_A_TIME.lock().await;
    let dir = TempDir::new("sigterm");
    let (mut serve, address) = spawn_serve(
        &dir,
        r#"
        drain_timeout = "5s"
        [limits]
        max_concurrency = 1
        [kernels."graph/pagerank".faults]
        latency = "1s"
        "#,
    );
    let client = common::client();
    wait_ready(&client, address, &mut serve).await;

    // Its own client (connection): a second user.
    let slow = tokio::spawn(send_until_admitted(address));
    wait_in_flight(&client, address).await;

    let signalled = Instant::now();
    serve.terminate();
    // New requests: readiness says draining, or the connection is refused.
    let deadline = Instant::now() + Duration::from_secs(5);
    loop {
        let fresh = reqwest::Client::new();
        match fresh.get(url(address, "/health/ready")).send().await {
            Ok(response) if response.status() == 503 => {
                let body: serde_json::Value = response.json().await.expect("JSON");
                assert_eq!(body["status"], "draining", "{body}");
                break;
            }
            Ok(response) => assert_eq!(response.status(), 200, "before the signal landed"),
            Err(error) => {
                assert!(error.is_connect() || error.is_request(), "{error}");
                break;
            }
        }
        assert!(Instant::now() < deadline, "readiness never turned off");
        tokio::time::sleep(Duration::from_millis(10)).await;
    }

    let finished = slow.await.expect("the request's task");
    assert_eq!(
        finished.status, 200,
        "the in-flight request completes: {finished:?}"
    );
    let status = tokio::task::block_in_place(|| serve.wait_exit(Duration::from_secs(10)))
        .unwrap_or_else(|| panic!("did not exit: {}", serve.drain_log()));
    assert_eq!(status.code(), Some(0), "{status:?}: {}", serve.drain_log());
    assert!(
        signalled.elapsed() < Duration::from_secs(5),
        "exited after the drain deadline: {:?}",
        signalled.elapsed()
    );
    let log = serve.drain_log();
    assert!(log.contains("draining"), "{log}");
    assert!(log.contains("stopped"), "{log}");
}

#[test]
fn sigterm_as_soon_as_the_port_accepts_still_drains_and_exits_0() {
    // The window between binding the port and installing the signal handlers is short: try a
    // few times.
    let _one = ONE_AT_A_TIME.blocking_lock();
    for round in 0..5 {
        let dir = TempDir::new("sigterm-early");
        let (config, address) = config_file(&dir, "");
        let mut serve = ServeProcess::spawn(&["--config", config.to_str().expect("UTF-8")]);
        let deadline = Instant::now() + Duration::from_secs(20);
        while !common::accepts(address) {
            assert!(
                Instant::now() < deadline,
                "never listened: {}",
                serve.drain_log()
            );
            std::thread::sleep(Duration::from_millis(1));
        }
        serve.terminate();
        let status = serve
            .wait_exit(Duration::from_secs(10))
            .unwrap_or_else(|| panic!("did not exit: {}", serve.drain_log()));
        if status.code() == Some(1) && serve.drain_log().contains("cannot listen") {
            continue; // something else took the port
        }
        assert_eq!(
            status.code(),
            Some(0),
            "round {round}: killed by the signal instead of draining: {status:?}: {}",
            serve.drain_log()
        );
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_hung_kernel_does_not_outlive_the_drain_deadline() {
    let _one = ONE_AT_A_TIME.lock().await;
    let dir = TempDir::new("sigterm-hang");
    let (mut serve, address) = spawn_serve(
        &dir,
        r#"
        drain_timeout = "300ms"
        [limits]
        max_concurrency = 1
        [kernels."graph/pagerank".faults]
        hang_probability = 1.0
        "#,
    );
    let client = common::client();
    wait_ready(&client, address, &mut serve).await;
    // Hangs until its 5 s default deadline (the development preset's).
    let hung = tokio::spawn(send_until_admitted(address));
    wait_in_flight(&client, address).await;
    let signalled = Instant::now();
    serve.terminate();
    let status = tokio::task::block_in_place(|| serve.wait_exit(Duration::from_secs(10)))
        .unwrap_or_else(|| panic!("did not exit: {}", serve.drain_log()));
    assert_eq!(status.code(), Some(0), "{status:?}: {}", serve.drain_log());
    assert!(
        signalled.elapsed() < Duration::from_secs(3),
        "the hung kernel kept the process for {:?}",
        signalled.elapsed()
    );
    let log = serve.drain_log();
    assert!(log.contains("drain deadline passed"), "{log}");
    let _ = hung.await;
}
