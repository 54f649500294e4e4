//! `rustkernel health` (the real binary) against a real service: output, JSON shape and every
//! exit code (0 healthy, 1 degraded, 2 unhealthy, 3 unreachable, 4 unknown component).
#![allow(clippy::indexing_slicing, clippy::panic)] // tests index what they checked and fail loudly

mod common;

use std::process::Output;
use std::time::{Duration, Instant};

use common::{Server, run_cli_async, start, start_with};
use rustkernel_host::service::health::{ComponentBody, HealthBody};

fn stdout(output: &Output) -> String {
    String::from_utf8_lossy(&output.stdout).into_owned()
}

fn stderr(output: &Output) -> String {
    String::from_utf8_lossy(&output.stderr).into_owned()
}

async fn health(server: &Server, extra: &[&str]) -> Output {
    let mut args = vec!["health", "--url", &server.base];
    args.extend_from_slice(extra);
    run_cli_async(&args).await
}

/// Checks the table: an overall line, then a header and one row per component, the columns
/// aligned (each column starts at the same offset in every row).
fn check_table(text: &str, components: &[&str]) {
    let lines: Vec<&str> = text.lines().collect();
    let header_at = lines
        .iter()
        .position(|line| line.starts_with("COMPONENT"))
        .unwrap_or_else(|| panic!("no header in {text}"));
    let header = lines[header_at];
    for column in ["COMPONENT", "STATUS", "LATENCY", "LAST CHECK", "DETAIL"] {
        assert!(header.contains(column), "{column} missing from {header:?}");
    }
    let rows = &lines[header_at + 1..];
    assert_eq!(rows.len(), components.len(), "{text}");
    for (row, name) in rows.iter().zip(components) {
        assert!(row.starts_with(name), "{row:?} is not {name}");
        for column in ["STATUS", "LATENCY", "LAST CHECK"] {
            let at = header.find(column).expect("checked");
            let before = &row[..at];
            assert!(
                before.ends_with("  ") && !row[at..].starts_with(' '),
                "column {column} is not aligned in {text}"
            );
        }
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_healthy_service_exits_0_in_every_format() {
    let server = start("").await;
    let all = [
        "runtime",
        "service",
        "kernel/graph/pagerank",
        "kernel/linalg/matmul",
    ];

    let output = health(&server, &[]).await;
    assert_eq!(output.status.code(), Some(0), "{output:?}");
    let text = stdout(&output);
    assert!(text.starts_with("Overall: healthy"), "{text}");
    check_table(&text, &all);
    assert!(text.contains("breaker closed"), "{text}");

    let output = health(&server, &["--format", "json"]).await;
    assert_eq!(output.status.code(), Some(0), "{output:?}");
    let body: HealthBody = serde_json::from_str(&stdout(&output)).expect("the documented shape");
    assert_eq!(body.status.to_string(), "healthy");
    assert!(body.live && body.ready && body.started, "{body:?}");
    let names: Vec<&str> = body.components.iter().map(|c| c.name.as_str()).collect();
    assert_eq!(names, all);
    let raw: serde_json::Value = serde_json::from_str(&stdout(&output)).expect("JSON");
    for key in ["status", "live", "ready", "started", "components"] {
        assert!(raw.get(key).is_some(), "{key} missing: {raw}");
    }
    for key in [
        "name",
        "status",
        "message",
        "latency_ms",
        "last_check",
        "critical",
    ] {
        assert!(
            raw["components"][0].get(key).is_some(),
            "{key} missing: {raw}"
        );
    }

    let output = health(&server, &["--component", "runtime"]).await;
    assert_eq!(output.status.code(), Some(0), "{output:?}");
    check_table(&stdout(&output), &["runtime"]);
    let output = health(&server, &["--component", "runtime", "--format", "json"]).await;
    assert_eq!(output.status.code(), Some(0), "{output:?}");
    let component: ComponentBody = serde_json::from_str(&stdout(&output)).expect("a component");
    assert_eq!(component.name, "runtime");
    assert!(component.critical);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_open_breaker_is_degraded_overall_and_unhealthy_for_its_kernel() {
    let server = start("").await;
    let answer = server
        .post("/v1/admin/kernels/graph/pagerank/force-open", Vec::new())
        .await;
    assert_eq!(answer.status, 200, "{answer:?}");
    let deadline = Instant::now() + Duration::from_secs(5);
    let output = loop {
        let output = health(&server, &[]).await;
        if output.status.code() == Some(1) || Instant::now() > deadline {
            break output;
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    };
    assert_eq!(output.status.code(), Some(1), "degraded: {output:?}");
    let text = stdout(&output);
    assert!(text.starts_with("Overall: degraded"), "{text}");
    assert!(text.contains("breaker forced_open"), "{text}");

    let output = health(&server, &["--component", "kernel/graph/pagerank"]).await;
    assert_eq!(output.status.code(), Some(2), "unhealthy: {output:?}");
    let output = health(&server, &["--component", "kernel/linalg/matmul"]).await;
    assert_eq!(output.status.code(), Some(0), "{output:?}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_stopped_supervisor_is_unhealthy_exit_2() {
    let server = start("").await;
    server.running.state().runtime().set_supervisor_alive(false);
    let deadline = Instant::now() + Duration::from_secs(5);
    let output = loop {
        let output = health(&server, &["--format", "json"]).await;
        if output.status.code() == Some(2) || Instant::now() > deadline {
            break output;
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    };
    assert_eq!(output.status.code(), Some(2), "{output:?}");
    let body: HealthBody = serde_json::from_str(&stdout(&output)).expect("parsed from a 503");
    assert_eq!(body.status.to_string(), "unhealthy");
    assert!(!body.live && !body.ready, "{body:?}");
    let runtime = body
        .components
        .iter()
        .find(|c| c.name == "runtime")
        .expect("runtime");
    assert!(runtime.message.contains("supervisor"), "{runtime:?}");
    assert_eq!(server.get("/health/live").await.status, 503);
    assert_eq!(server.get("/health/ready").await.status, 503);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn unreachable_and_unknown_component_have_their_codes() {
    let url = format!("http://127.0.0.1:{}", common::free_port());
    let output = run_cli_async(&["health", "--url", &url, "--timeout", "2"]).await;
    assert_eq!(output.status.code(), Some(3), "{output:?}");
    assert!(stderr(&output).contains("unreachable"), "{output:?}");

    let server = start("").await;
    // An answer that is not the service's health JSON.
    let wrong = format!("{}/nope", server.base);
    let output = run_cli_async(&["health", "--url", &wrong]).await;
    assert_eq!(output.status.code(), Some(3), "{output:?}");
    assert!(
        stderr(&output).contains("not a rustkernel health answer"),
        "{output:?}"
    );

    let output = health(&server, &["--component", "gpu"]).await;
    assert_eq!(output.status.code(), Some(4), "{output:?}");
    let message = stderr(&output);
    assert!(message.contains("unknown component \"gpu\""), "{message}");
    assert!(
        message.contains("runtime"),
        "lists the known ones: {message}"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_commands_work_with_no_flags_on_the_default_address() {
    let listener = match tokio::net::TcpListener::bind("127.0.0.1:8080").await {
        Ok(listener) => listener,
        Err(error) => {
            eprintln!(
                "SKIPPED: 127.0.0.1:8080 is taken ({error}); the default-address test needs it"
            );
            return;
        }
    };
    let config = common::config("");
    assert_eq!(
        config.address.to_string(),
        "127.0.0.1:8080",
        "the default address"
    );
    let server = common::start_on_listener(config, listener).await;
    for args in [
        &["health"][..],
        &["health", "--format", "json"],
        &["health", "--component", "runtime"],
    ] {
        let output = run_cli_async(args).await;
        assert_eq!(output.status.code(), Some(0), "{args:?}: {output:?}");
    }
    drop(server);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_starved_blocking_pool_turns_runtime_degraded_then_healthy() {
    let server = start_with(common::config(
        r#"
        [runtime]
        blocking_threads = 1
        max_blocking_queue = 1
        check_interval = "100ms"
        [kernels."graph/pagerank".faults]
        latency = "500ms"
        "#,
    ))
    .await;
    let requests: Vec<_> = (0..4)
        .map(|_| {
            tokio::spawn(common::send(
                server.post_builder("/v1/kernels/graph/pagerank/execute", common::CYCLE),
            ))
        })
        .collect();

    let deadline = Instant::now() + Duration::from_secs(5);
    let degraded = loop {
        let output = health(&server, &["--component", "runtime"]).await;
        if output.status.code() == Some(1) {
            break output;
        }
        assert!(
            Instant::now() < deadline,
            "runtime never degraded: {output:?}"
        );
        tokio::time::sleep(Duration::from_millis(20)).await;
    };
    let text = stdout(&degraded);
    assert!(
        text.contains("runtime") && text.contains("degraded"),
        "{text}"
    );
    assert!(
        text.contains("blocking pool saturated") && text.contains("queued"),
        "{text}"
    );

    for request in requests {
        let answer = request.await.expect("the request's task");
        assert_eq!(answer.status, 200, "{answer:?}");
    }
    let deadline = Instant::now() + Duration::from_secs(5);
    loop {
        let output = health(&server, &["--component", "runtime"]).await;
        if output.status.code() == Some(0) {
            break;
        }
        assert!(
            Instant::now() < deadline,
            "runtime never recovered: {output:?}"
        );
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
}
