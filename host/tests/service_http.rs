//! The service over real HTTP: every endpoint and status code, the kernels' results, bad input
//! of every kind (after which the server keeps serving), load shedding, the breaker under
//! injected faults, deadlines, and readiness on shutdown.
#![allow(clippy::indexing_slicing, clippy::panic)] // tests index JSON they checked and fail loudly

mod common;

use std::time::Duration;

use common::{CYCLE, MATMUL_2X2, Server, component, sample, start, wait_until};
use rustkernel_core::resilience::CircuitState;
use rustkernel_host::kernels::{KernelResponse, PAGERANK};
use rustkernel_host::service::execute::ExecuteBody;
use rustkernel_host::service::faults::FaultInjector;

const PAGERANK_ROUTE: &str = "/v1/kernels/graph/pagerank/execute";

/// A follow-up good request: the server still serves.
async fn still_serves(server: &Server) {
    let answer = server.execute("linalg/matmul", MATMUL_2X2).await;
    assert_eq!(answer.status, 200, "the server stopped serving: {answer:?}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn probes_answer_200_with_a_small_json_body() {
    let server = start("").await;
    for (path, status) in [
        ("/health/live", "live"),
        ("/health/ready", "ready"),
        ("/health/startup", "started"),
    ] {
        let answer = server.get(path).await;
        assert_eq!(answer.status, 200, "{path}: {answer:?}");
        assert_eq!(answer.json()["status"], status, "{path}: {answer:?}");
        assert!(
            answer
                .header("content-type")
                .is_some_and(|t| t.starts_with("application/json")),
            "{path}: {answer:?}"
        );
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn health_lists_every_component_with_its_details() {
    let server = start("").await;
    // Every component has been checked at least once by the time the service is ready.
    let answer = server.get("/health").await;
    assert_eq!(answer.status, 200, "{answer:?}");
    let health = answer.json();
    assert_eq!(health["status"], "healthy", "{health}");
    assert_eq!(health["live"], true);
    assert_eq!(health["ready"], true);
    assert_eq!(health["started"], true);
    let names: Vec<&str> = health["components"]
        .as_array()
        .expect("components")
        .iter()
        .filter_map(|c| c["name"].as_str())
        .collect();
    assert_eq!(
        names,
        [
            "runtime",
            "service",
            "kernel/graph/pagerank",
            "kernel/linalg/matmul"
        ],
        "{health}"
    );
    for name in names {
        let c = component(&health, name);
        assert_eq!(c["status"], "healthy", "{c}");
        assert!(c["message"].is_string(), "{c}");
        assert!(c["latency_ms"].as_f64().is_some_and(|l| l >= 0.0), "{c}");
        let last = c["last_check"].as_str().unwrap_or_else(|| panic!("{c}"));
        assert!(
            humantime::parse_rfc3339(last).is_ok(),
            "last_check {last:?} is RFC 3339"
        );
        assert!(c["critical"].is_boolean(), "{c}");
        if name.starts_with("kernel/") {
            assert_eq!(c["breaker"]["state"], "closed", "{c}");
            assert!(c["breaker"]["failures"].is_u64(), "{c}");
        } else {
            assert_eq!(c["critical"], true, "{c}");
        }
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn metrics_are_prometheus_text_with_the_documented_names() {
    let server = start(
        r#"
        [kernels."linalg/matmul".faults]
        hang_probability = 1.0
        "#,
    )
    .await;
    assert_eq!(server.execute(PAGERANK, CYCLE).await.status, 200);
    assert_eq!(server.execute(PAGERANK, "{").await.status, 400);
    let timed_out = send_timeout(&server, "linalg/matmul", MATMUL_2X2, "100").await;
    assert_eq!(timed_out.status, 504, "{timed_out:?}");

    let answer = server.get("/metrics").await;
    assert_eq!(answer.status, 200);
    assert!(
        answer
            .header("content-type")
            .is_some_and(|t| t.contains("text")),
        "{answer:?}"
    );
    let text = answer.body;
    let calls = "rustkernel_kernel_calls_total";
    assert_eq!(
        sample(&text, calls, r#"kernel="graph/pagerank",outcome="success""#),
        Some(1.0),
        "{text}"
    );
    assert_eq!(
        sample(
            &text,
            calls,
            r#"kernel="graph/pagerank",outcome="invalid_input""#
        ),
        Some(1.0),
        "{text}"
    );
    assert_eq!(
        sample(&text, calls, r#"kernel="linalg/matmul",outcome="timeout""#),
        Some(1.0),
        "{text}"
    );
    assert_eq!(
        sample(
            &text,
            "rustkernel_deadline_exceeded_total",
            r#"kernel="linalg/matmul""#
        ),
        Some(1.0),
        "{text}"
    );
    assert_eq!(
        sample(
            &text,
            "rustkernel_kernel_duration_seconds_count",
            r#"kernel="graph/pagerank""#
        ),
        Some(2.0),
        "{text}"
    );
    assert!(
        text.contains("rustkernel_kernel_duration_seconds_bucket{le=\"")
            || text.contains(
                "rustkernel_kernel_duration_seconds_bucket{kernel=\"graph/pagerank\",le=\""
            ),
        "a histogram: {text}"
    );
    // The breakers and health come from the tokio adapter's collector, state numbers from the
    // core's table.
    for kernel in ["graph/pagerank", "linalg/matmul"] {
        assert_eq!(
            sample(
                &text,
                "rustkernel_circuit_breaker_state",
                &format!(r#"breaker="{kernel}""#)
            ),
            Some(f64::from(CircuitState::Closed.metric_value())),
            "{text}"
        );
    }
    assert_eq!(
        sample(
            &text,
            "rustkernel_circuit_breaker_calls_total",
            r#"breaker="graph/pagerank",outcome="success""#
        ),
        Some(1.0),
        "{text}"
    );
    assert_eq!(
        sample(&text, "rustkernel_health_status", r#"component="runtime""#),
        Some(0.0),
        "{text}"
    );
    assert!(
        text.lines().any(|l| l == "rustkernel_health_live 1"),
        "{text}"
    );
    for family in [
        "# TYPE rustkernel_kernel_calls counter",
        "# TYPE rustkernel_kernel_duration_seconds histogram",
        "# TYPE rustkernel_kernel_retries counter",
        "# TYPE rustkernel_deadline_exceeded counter",
        "# TYPE rustkernel_circuit_breaker_state gauge",
        "# TYPE rustkernel_circuit_breaker_calls counter",
        "# TYPE rustkernel_circuit_breaker_transitions counter",
        "# TYPE rustkernel_health_status gauge",
        "# TYPE rustkernel_health_ready gauge",
    ] {
        assert!(text.contains(family), "{family} missing from {text}");
    }
    assert!(
        text.contains(&format!(
            "# HELP rustkernel_circuit_breaker_state {}\n",
            CircuitState::METRIC_HELP
        )),
        "{text}"
    );
    // One vocabulary: every family once, none of the service's old breaker names.
    let mut names: Vec<&str> = text
        .lines()
        .filter_map(|line| line.strip_prefix("# TYPE "))
        .filter_map(|rest| rest.split(' ').next())
        .collect();
    let count = names.len();
    names.sort_unstable();
    names.dedup();
    assert_eq!(names.len(), count, "a family twice: {text}");
    assert!(!text.contains("rustkernel_breaker_"), "{text}");
    // Per-kernel counters exist from the start at 0 (so `rate()` and alerts see a series
    // before the first event), for every kernel.
    for kernel in ["graph/pagerank", "linalg/matmul"] {
        let labels = format!(r#"kernel="{kernel}""#);
        assert_eq!(
            sample(&text, "rustkernel_kernel_retries_total", &labels),
            Some(0.0),
            "{text}"
        );
    }
    assert_eq!(
        sample(
            &text,
            "rustkernel_deadline_exceeded_total",
            r#"kernel="graph/pagerank""#
        ),
        Some(0.0),
        "{text}"
    );
    assert!(text.trim_end().ends_with("# EOF"), "{text}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn retries_are_counted() {
    let server = start(
        r#"
        [resilience.retry]
        max_attempts = 2
        backoff = { kind = "fixed", delay = "10ms" }
        [resilience.circuit_breaker]
        failure_threshold = 5
        [kernels."graph/pagerank".faults]
        error_rate = 1.0
        "#,
    )
    .await;
    let answer = server.execute(PAGERANK, CYCLE).await;
    assert_eq!(answer.status, 500, "{answer:?}");
    assert_eq!(answer.error_code(), "kernel_failed", "{answer:?}");
    let metrics = server.metrics().await;
    assert_eq!(
        sample(
            &metrics,
            "rustkernel_kernel_retries_total",
            r#"kernel="graph/pagerank""#
        ),
        Some(1.0),
        "{metrics}"
    );
    assert_eq!(
        sample(
            &metrics,
            "rustkernel_kernel_calls_total",
            r#"kernel="graph/pagerank",outcome="failed""#
        ),
        Some(1.0),
        "{metrics}"
    );
    still_serves(&server).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn pagerank_and_matmul_return_their_results() {
    let server = start("").await;

    // 0 -> 1, and 1 dangling: r0 = 0.5 / 1.425, r1 = 1 - r0.
    let body = r#"{"num_nodes": 2, "edges": [[0, 1]], "tolerance": 1e-13, "max_iterations": 1000}"#;
    let answer = server.execute(PAGERANK, body).await;
    assert_eq!(answer.status, 200, "{answer:?}");
    let parsed: ExecuteBody = serde_json::from_str(&answer.body).expect("an ExecuteBody");
    assert_eq!(parsed.kernel, PAGERANK);
    assert_eq!(parsed.backend, "cpu");
    assert_eq!(parsed.attempts, 1);
    let KernelResponse::PageRank(out) = parsed.result else {
        panic!("not a PageRank result: {}", answer.body)
    };
    let r0 = 0.5 / 1.425;
    assert_eq!(out.ranks.len(), 2);
    assert!((out.ranks[0] - r0).abs() < 1e-9, "{:?}", out.ranks);
    assert!((out.ranks[1] - (1.0 - r0)).abs() < 1e-9, "{:?}", out.ranks);

    let answer = server.execute(PAGERANK, CYCLE).await;
    assert_eq!(answer.status, 200, "{answer:?}");
    let ranks = &answer.json()["result"]["page_rank"]["ranks"];
    for rank in ranks.as_array().expect("ranks") {
        assert!(
            (rank.as_f64().expect("a number") - 1.0 / 3.0).abs() < 1e-9,
            "{ranks}"
        );
    }

    let answer = server.execute("linalg/matmul", MATMUL_2X2).await;
    assert_eq!(answer.status, 200, "{answer:?}");
    let parsed: ExecuteBody = serde_json::from_str(&answer.body).expect("an ExecuteBody");
    let KernelResponse::MatMul(out) = parsed.result else {
        panic!("not a matmul result: {}", answer.body)
    };
    assert_eq!(out.n, 2);
    assert_eq!(out.c, [19.0, 22.0, 43.0, 50.0]);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn bad_input_is_400_and_the_server_keeps_serving() {
    let server = start("").await;
    let cases: [(&str, &str, Vec<u8>); 12] = [
        ("malformed JSON", PAGERANK, b"{\"num_nodes\": 3,".to_vec()),
        ("not JSON at all", PAGERANK, b"hello".to_vec()),
        ("empty body", PAGERANK, Vec::new()),
        (
            "invalid UTF-8",
            PAGERANK,
            b"{\"num_nodes\": 1, \"edges\": [], \"x\": \"\xff\xfe\"}".to_vec(),
        ),
        (
            "a node id out of range",
            PAGERANK,
            br#"{"num_nodes": 2, "edges": [[0, 2]]}"#.to_vec(),
        ),
        (
            "a negative node id",
            PAGERANK,
            br#"{"num_nodes": 2, "edges": [[-1, 0]]}"#.to_vec(),
        ),
        (
            "an empty graph",
            PAGERANK,
            br#"{"num_nodes": 0, "edges": []}"#.to_vec(),
        ),
        (
            "damping over 1",
            PAGERANK,
            br#"{"num_nodes": 2, "edges": [[0, 1]], "damping": 1.5}"#.to_vec(),
        ),
        (
            "negative damping",
            PAGERANK,
            br#"{"num_nodes": 2, "edges": [[0, 1]], "damping": -0.1}"#.to_vec(),
        ),
        (
            "an unknown field",
            PAGERANK,
            br#"{"num_nodes": 2, "edges": [], "alpha": 1}"#.to_vec(),
        ),
        (
            "a matrix of the wrong size",
            "linalg/matmul",
            br#"{"n": 2, "a": [1, 2, 3], "b": [1, 2, 3, 4]}"#.to_vec(),
        ),
        (
            "a zero-sized matrix",
            "linalg/matmul",
            br#"{"n": 0, "a": [], "b": []}"#.to_vec(),
        ),
    ];
    for (what, kernel, body) in cases {
        let answer = server
            .post(&format!("/v1/kernels/{kernel}/execute"), body)
            .await;
        assert_eq!(answer.status, 400, "{what}: {answer:?}");
        assert_eq!(answer.error_code(), "bad_request", "{what}: {answer:?}");
        assert!(
            !answer.json()["message"]
                .as_str()
                .unwrap_or_default()
                .is_empty(),
            "{what}: {answer:?}"
        );
        still_serves(&server).await;
    }
    // Bad input never counts against the breaker.
    assert_eq!(server.breaker_state(PAGERANK).await, "closed");
}

async fn send_timeout(server: &Server, kernel: &str, body: &str, timeout: &str) -> common::Answer {
    common::send(
        server
            .post_builder(&format!("/v1/kernels/{kernel}/execute"), body.to_owned())
            .header("x-request-timeout-ms", timeout),
    )
    .await
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_timeout_header_is_checked_and_clamped() {
    let server = start("").await;
    for bad in ["0", "abc", "-5", "1.5", "", "10ms"] {
        let answer = send_timeout(&server, PAGERANK, CYCLE, bad).await;
        assert_eq!(answer.status, 400, "header {bad:?}: {answer:?}");
        assert_eq!(answer.error_code(), "bad_request", "{answer:?}");
        still_serves(&server).await;
    }
    for huge in ["3600000", "99999999999", &u64::MAX.to_string()] {
        let answer = send_timeout(&server, PAGERANK, CYCLE, huge).await;
        assert_eq!(answer.status, 200, "header {huge:?} is clamped: {answer:?}");
    }
    let answer = send_timeout(&server, PAGERANK, CYCLE, "5000").await;
    assert_eq!(answer.status, 200, "{answer:?}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn unknown_kernels_and_routes_are_404() {
    let server = start("").await;
    for (method, path) in [
        ("POST", "/v1/kernels/graph/nope/execute"),
        ("POST", "/v1/kernels/execute"),
        ("POST", "/v1/kernels/graph/pagerank/run"),
        ("POST", "/v1/admin/kernels/graph/nope/reset"),
        ("POST", "/v1/admin/kernels/graph/pagerank/explode"),
        ("GET", "/nope"),
        ("GET", "/v2/health"),
    ] {
        let request = match method {
            "POST" => server.post_builder(path, CYCLE),
            _ => server.client.get(format!("{}{path}", server.base)),
        };
        let answer = common::send(request).await;
        assert_eq!(answer.status, 404, "{method} {path}: {answer:?}");
        assert_eq!(
            answer.error_code(),
            "not_found",
            "{method} {path}: {answer:?}"
        );
    }
    still_serves(&server).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_body_over_the_limit_is_413() {
    let server = start("[server]\nbody_limit_bytes = 256").await;
    let edges: Vec<[u32; 2]> = (0..100).map(|i| [i, (i + 1) % 100]).collect();
    let big = common::pagerank_body(100, &edges);
    assert!(big.len() > 256);
    let answer = server.post(PAGERANK_ROUTE, big).await;
    assert_eq!(answer.status, 413, "{answer:?}");
    assert_eq!(answer.error_code(), "payload_too_large", "{answer:?}");
    let answer = server.execute(PAGERANK, CYCLE).await;
    assert_eq!(answer.status, 200, "{answer:?}");
}

/// A body declared larger than the limit is refused before any of it is sent: the client
/// sends only the headers, and reads 413. (The timeout guards against a hang: without the
/// early answer the service would wait for the body forever.)
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_declared_body_over_the_limit_is_413_before_any_byte_of_it() {
    use tokio::io::{AsyncReadExt, AsyncWriteExt};
    let server = start("[server]\nbody_limit_bytes = 256").await;
    let address = server.base.trim_start_matches("http://");
    let mut stream = tokio::net::TcpStream::connect(address)
        .await
        .expect("connects");
    let head = format!(
        "POST {PAGERANK_ROUTE} HTTP/1.1\r\nHost: {address}\r\nContent-Type: application/json\r\nContent-Length: 100000000000\r\n\r\n"
    );
    stream.write_all(head.as_bytes()).await.expect("writes");
    let mut answer = Vec::new();
    let mut buf = [0u8; 1024];
    let read = tokio::time::timeout(Duration::from_secs(30), async {
        while !String::from_utf8_lossy(&answer).contains("payload_too_large") {
            let n = stream.read(&mut buf).await.expect("reads");
            if n == 0 {
                break;
            }
            answer.extend_from_slice(&buf[..n]);
        }
    })
    .await;
    let text = String::from_utf8_lossy(&answer);
    assert!(read.is_ok(), "no answer without the body: {text}");
    assert!(text.starts_with("HTTP/1.1 413"), "{text}");
    assert!(text.contains("payload_too_large"), "{text}");
    still_serves(&server).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_concurrency_limit_sheds_with_retry_after_and_recovers() {
    let server = start(
        r#"
        [limits]
        max_concurrency = 1
        [kernels."graph/pagerank".faults]
        latency = "700ms"
        "#,
    )
    .await;
    let slow = {
        let request = server.post_builder(PAGERANK_ROUTE, CYCLE);
        tokio::spawn(common::send(request))
    };
    let state = server.running.state().clone();
    wait_until(
        "the slow request is in flight",
        Duration::from_secs(5),
        || {
            let state = state.clone();
            async move { state.requests_in_flight() == 1 }
        },
    )
    .await;
    let shed = server.execute("linalg/matmul", MATMUL_2X2).await;
    assert_eq!(shed.status, 429, "{shed:?}");
    assert_eq!(shed.error_code(), "shed");
    let retry_after: u64 = shed
        .header("retry-after")
        .and_then(|v| v.parse().ok())
        .unwrap_or_else(|| panic!("Retry-After in seconds: {shed:?}"));
    assert!(retry_after >= 1);

    let slow = slow.await.expect("the slow request's task");
    assert_eq!(slow.status, 200, "{slow:?}");
    still_serves(&server).await;
    let metrics = server.metrics().await;
    assert_eq!(
        sample(
            &metrics,
            "rustkernel_kernel_calls_total",
            r#"kernel="linalg/matmul",outcome="shed""#
        ),
        Some(1.0),
        "{metrics}"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_rate_limit_sheds_with_retry_after_and_recovers() {
    let server = start("[limits]\nper_client_rate = 2\nper_client_burst = 2").await;
    let mut statuses = Vec::new();
    let mut shed = None;
    for _ in 0..6 {
        let answer = server.execute("linalg/matmul", MATMUL_2X2).await;
        statuses.push(answer.status);
        if answer.status == 429 {
            shed = Some(answer);
            break;
        }
    }
    let shed = shed.unwrap_or_else(|| panic!("never rate limited: {statuses:?}"));
    assert_eq!(shed.error_code(), "shed", "{shed:?}");
    assert!(
        shed.header("retry-after")
            .and_then(|v| v.parse::<u64>().ok())
            .is_some_and(|secs| secs >= 1),
        "{shed:?}"
    );
    // Probes are not rate limited.
    assert_eq!(server.get("/health/ready").await.status, 200);
    wait_until(
        "the rate limit lets the client through again",
        Duration::from_secs(5),
        || async { server.execute("linalg/matmul", MATMUL_2X2).await.status == 200 },
    )
    .await;
}

/// A seed whose first three draws fail and whose fourth succeeds, at an error rate of 0.5.
fn seed_fail_fail_fail_ok() -> u64 {
    let config = |seed| rustkernel_host::config::FaultConfig {
        error_rate: 0.5,
        latency: Duration::ZERO,
        hang_probability: 0.0,
        seed,
    };
    (0..10_000)
        .find(|seed| {
            let faults = FaultInjector::new(config(*seed));
            let draws: Vec<bool> = (0..4).map(|_| faults.draw().fail).collect();
            draws == [true, true, true, false]
        })
        .expect("a seed among 10 000")
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_breaker_opens_on_injected_faults_and_closes_after_its_timeout() {
    let seed = seed_fail_fail_fail_ok();
    let server = start(&format!(
        r#"
        [resilience.circuit_breaker]
        failure_threshold = 3
        success_threshold = 1
        timeout = "200ms"
        [kernels."graph/pagerank".faults]
        error_rate = 0.5
        seed = {seed}
        "#
    ))
    .await;
    for call in 1..=3 {
        let answer = server.execute(PAGERANK, CYCLE).await;
        assert_eq!(answer.status, 500, "call {call}: {answer:?}");
        assert_eq!(answer.error_code(), "kernel_failed", "{answer:?}");
    }
    let opened = std::time::Instant::now();
    let open = server.execute(PAGERANK, CYCLE).await;
    assert_eq!(open.status, 503, "{open:?}");
    assert_eq!(open.error_code(), "circuit_open", "{open:?}");
    assert_eq!(open.header("retry-after").as_deref(), Some("1"), "{open:?}");
    // The other kernel is not affected, and the service stays ready.
    still_serves(&server).await;
    assert_eq!(server.get("/health/ready").await.status, 200);
    wait_until(
        "/health shows the open breaker",
        Duration::from_secs(5),
        || async {
            let health = server.health().await;
            let c = component(&health, "kernel/graph/pagerank");
            c["status"] == "unhealthy"
                && c["breaker"]["state"] == "open"
                && health["status"] == "degraded"
        },
    )
    .await;

    // After the breaker's timeout, one probe goes through; the fourth draw succeeds.
    let mut rejected = 0_u32;
    loop {
        let answer = server.execute(PAGERANK, CYCLE).await;
        match answer.status {
            200 => break,
            503 => rejected += 1,
            other => panic!("unexpected {other} while open: {answer:?}"),
        }
        assert!(
            opened.elapsed() < Duration::from_secs(5),
            "the breaker never closed"
        );
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    assert!(
        opened.elapsed() >= Duration::from_millis(200),
        "the probe came before the breaker's timeout"
    );
    assert_eq!(server.breaker_state(PAGERANK).await, "closed");
    assert_eq!(server.execute(PAGERANK, CYCLE).await.status, 200);

    // Every transition is counted, the quick half-open -> closed of the probe included.
    // (closed -> open, open -> half-open, half-open -> closed), read from the breaker; the
    // opening is counted by reason as the service sees it.
    let opening = r#"breaker="graph/pagerank",reason="consecutive_failures""#;
    wait_until("the opening is counted", Duration::from_secs(5), || async {
        sample(
            &server.metrics().await,
            "rustkernel_circuit_breaker_opened_total",
            opening,
        ) == Some(1.0)
    })
    .await;
    let metrics = server.metrics().await;
    let breaker = r#"breaker="graph/pagerank""#;
    assert_eq!(
        sample(
            &metrics,
            "rustkernel_circuit_breaker_transitions_total",
            breaker
        ),
        Some(3.0),
        "{metrics}"
    );
    assert_eq!(
        sample(&metrics, "rustkernel_circuit_breaker_state", breaker),
        Some(0.0),
        "{metrics}"
    );
    assert_eq!(
        sample(
            &metrics,
            "rustkernel_kernel_calls_total",
            r#"kernel="graph/pagerank",outcome="rejected""#
        ),
        Some(f64::from(1 + rejected)),
        "{metrics}"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn operators_force_open_and_reset_a_breaker() {
    let server = start("").await;
    let admin = |action: &str| format!("/v1/admin/kernels/graph/pagerank/{action}");
    let answer = server.post(&admin("force-open"), Vec::new()).await;
    assert_eq!(answer.status, 200, "{answer:?}");
    assert_eq!(answer.json()["breaker"], "forced_open", "{answer:?}");
    let open = server.execute(PAGERANK, CYCLE).await;
    assert_eq!(open.status, 503, "{open:?}");
    assert_eq!(open.error_code(), "circuit_open");
    assert!(open.header("retry-after").is_some(), "{open:?}");
    wait_until("/health shows it", Duration::from_secs(5), || async {
        let c = component(&server.health().await, "kernel/graph/pagerank");
        c["status"] == "unhealthy" && c["breaker"]["state"] == "forced_open"
    })
    .await;

    let answer = server.post(&admin("reset"), Vec::new()).await;
    assert_eq!(answer.status, 200, "{answer:?}");
    assert_eq!(answer.json()["breaker"], "closed", "{answer:?}");
    assert_eq!(server.execute(PAGERANK, CYCLE).await.status, 200);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn every_breaker_open_makes_the_service_not_ready() {
    let server = start("").await;
    for kernel in ["graph/pagerank", "linalg/matmul"] {
        let answer = server
            .post(
                &format!("/v1/admin/kernels/{kernel}/force-open"),
                Vec::new(),
            )
            .await;
        assert_eq!(answer.status, 200, "{answer:?}");
    }
    let answer = server.get("/health/ready").await;
    assert_eq!(answer.status, 503, "{answer:?}");
    assert_eq!(answer.json()["status"], "not_ready", "{answer:?}");
    assert!(
        answer.json()["reason"]
            .as_str()
            .is_some_and(|r| r.contains("circuit breaker")),
        "{answer:?}"
    );
    // Liveness never depends on the kernels.
    assert_eq!(server.get("/health/live").await.status, 200);
    let answer = server
        .post("/v1/admin/kernels/linalg/matmul/reset", Vec::new())
        .await;
    assert_eq!(answer.status, 200);
    assert_eq!(server.get("/health/ready").await.status, 200);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_passed_deadline_is_504_and_frees_the_thread() {
    let server = start(
        r#"
        [kernels."graph/pagerank".faults]
        hang_probability = 1.0
        "#,
    )
    .await;
    let started = std::time::Instant::now();
    let answer = send_timeout(&server, PAGERANK, CYCLE, "100").await;
    assert_eq!(answer.status, 504, "{answer:?}");
    assert_eq!(answer.error_code(), "deadline_exceeded", "{answer:?}");
    assert!(
        started.elapsed() < Duration::from_secs(3),
        "{:?}",
        started.elapsed()
    );
    let pool = server.running.state().pool().clone();
    wait_until(
        "the hung kernel's thread is free",
        Duration::from_secs(5),
        || {
            let pool = pool.clone();
            async move { pool.running() == 0 }
        },
    )
    .await;
    still_serves(&server).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn shutdown_turns_readiness_off_at_once_and_lets_in_flight_requests_finish() {
    let server = start(
        r#"
        [kernels."graph/pagerank".faults]
        latency = "600ms"
        "#,
    )
    .await;
    let address = server.running.local_addr();
    let in_flight = tokio::spawn(common::send(server.post_builder(PAGERANK_ROUTE, CYCLE)));
    let pool = server.running.state().pool().clone();
    wait_until("the slow request runs", Duration::from_secs(5), || {
        let pool = pool.clone();
        async move { pool.running() == 1 }
    })
    .await;

    server.running.begin_shutdown();
    // At once: readiness is 503 `draining` for whoever can still ask, or new connections are
    // refused.
    match server
        .client
        .get(format!("{}/health/ready", server.base))
        .send()
        .await
    {
        Ok(response) => {
            assert_eq!(response.status().as_u16(), 503);
            let body: serde_json::Value = response.json().await.expect("JSON");
            assert_eq!(body["status"], "draining", "{body}");
        }
        Err(error) => assert!(
            error.is_connect() || error.is_request(),
            "neither 503 nor refused: {error}"
        ),
    }
    wait_until(
        "new connections are refused",
        Duration::from_secs(5),
        || async move { !common::accepts(address) },
    )
    .await;

    let finished = in_flight.await.expect("the request's task");
    assert_eq!(finished.status, 200, "{finished:?}");
    let mut running = server.running;
    tokio::time::timeout(Duration::from_secs(5), running.wait())
        .await
        .expect("stops within the drain deadline")
        .expect("stops cleanly");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_rate_limiter_forgets_idle_clients() {
    // Ten per second, no burst: a client's state is back to full 100 ms after its request.
    let server = start("[limits]\nper_client_rate = 10\nper_client_burst = 1").await;
    assert_eq!(
        server.execute("linalg/matmul", MATMUL_2X2).await.status,
        200
    );
    let state = server.running.state().clone();
    let limiter = state.clone();
    assert_eq!(limiter.tracked_clients(), 1, "the client is tracked");
    // Every address ever seen would otherwise stay in memory for good.
    wait_until(
        "the idle client is forgotten",
        Duration::from_secs(5),
        || async { limiter.tracked_clients() == 0 },
    )
    .await;
    assert_eq!(
        server.execute("linalg/matmul", MATMUL_2X2).await.status,
        200
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_rate_breaker_from_the_file_opens_and_says_why() {
    let server = start(
        r#"
        [resilience.circuit_breaker]
        failure_rate_threshold = 0.5
        minimum_calls = 4
        timeout = "60s"
        [kernels."graph/pagerank".faults]
        error_rate = 1.0
        "#,
    )
    .await;
    for _ in 0..4 {
        let answer = server.execute(PAGERANK, CYCLE).await;
        assert_eq!(answer.status, 500, "{answer:?}");
    }
    let open = server.execute(PAGERANK, CYCLE).await;
    assert_eq!(open.error_code(), "circuit_open", "{open:?}");
    wait_until("/health shows the trip", Duration::from_secs(5), || async {
        let c = component(&server.health().await, "kernel/graph/pagerank");
        c["breaker"]["state"] == "open"
            && c["breaker"]["trip"]["reason"] == "failure_rate"
            && c["status"] == "unhealthy"
    })
    .await;
    let c = component(&server.health().await, "kernel/graph/pagerank");
    let trip = &c["breaker"]["trip"];
    assert_eq!(trip["calls"], 4, "{c}");
    assert_eq!(trip["failures"], 4, "{c}");
    assert_eq!(trip["failure_rate"], 1.0, "{c}");
    assert!(
        c["message"]
            .as_str()
            .is_some_and(|m| m.contains("failure_rate: 4 calls, 4 failed")),
        "{c}"
    );
    wait_until("the opening is counted", Duration::from_secs(5), || async {
        sample(
            &server.metrics().await,
            "rustkernel_circuit_breaker_opened_total",
            r#"breaker="graph/pagerank",reason="failure_rate""#,
        ) == Some(1.0)
    })
    .await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_metrics_only_breaker_reports_what_it_would_do_and_never_rejects() {
    let server = start(
        r#"
        [resilience.circuit_breaker]
        failure_rate_threshold = 0.5
        minimum_calls = 4
        mode = "metrics_only"
        [kernels."graph/pagerank".faults]
        error_rate = 1.0
        "#,
    )
    .await;
    // Twelve failures: three windows of four that would each have opened a real breaker, and
    // every call reached the kernel.
    for _ in 0..12 {
        let answer = server.execute(PAGERANK, CYCLE).await;
        assert_eq!(answer.status, 500, "{answer:?}");
        assert_eq!(answer.error_code(), "kernel_failed", "{answer:?}");
    }
    let breaker = r#"breaker="graph/pagerank""#;
    let metrics = server.metrics().await;
    assert_eq!(
        sample(
            &metrics,
            "rustkernel_circuit_breaker_would_open_total",
            breaker
        ),
        Some(3.0),
        "{metrics}"
    );
    assert_eq!(
        sample(
            &metrics,
            "rustkernel_circuit_breaker_trip_reason",
            r#"breaker="graph/pagerank",reason="failure_rate""#
        ),
        Some(1.0),
        "{metrics}"
    );
    assert_eq!(
        sample(&metrics, "rustkernel_circuit_breaker_state", breaker),
        Some(f64::from(CircuitState::MetricsOnly.metric_value())),
        "{metrics}"
    );
    assert_eq!(
        sample(
            &metrics,
            "rustkernel_circuit_breaker_opened_total",
            r#"breaker="graph/pagerank",reason="failure_rate""#
        ),
        None,
        "{metrics}"
    );
    let c = component(&server.health().await, "kernel/graph/pagerank");
    assert_eq!(c["breaker"]["state"], "metrics_only", "{c}");
    assert_eq!(c["breaker"]["would_open"], 3, "{c}");
    assert_eq!(c["breaker"]["trip"]["reason"], "failure_rate", "{c}");
    assert_eq!(c["status"], "healthy", "{c}");

    // An operator turns it into a real breaker, which then opens on the same failures.
    let admin = "/v1/admin/kernels/graph/pagerank/reset";
    assert_eq!(server.post(admin, Vec::new()).await.status, 200);
    for _ in 0..4 {
        assert_eq!(server.execute(PAGERANK, CYCLE).await.status, 500);
    }
    let open = server.execute(PAGERANK, CYCLE).await;
    assert_eq!(open.error_code(), "circuit_open", "{open:?}");
    // ... and back to shadow mode.
    let answer = server
        .post("/v1/admin/kernels/graph/pagerank/metrics-only", Vec::new())
        .await;
    assert_eq!(answer.json()["breaker"], "metrics_only", "{answer:?}");
    assert_eq!(server.execute(PAGERANK, CYCLE).await.status, 500);
}
