//! A TCP telemetry source that a misbehaving network cannot wedge, as a user meets it: a
//! service on real sockets closes an idle connection after `telemetry.idle_timeout` and refuses
//! one over `max_connections`, and `/metrics` counts both; `rustkernel config` shows and checks
//! the setting. (The accept loop's rules, replacement included, are tested on tokio's paused
//! clock in `host/src/telemetry/ingest/tcp.rs`.)
#![allow(clippy::indexing_slicing, clippy::panic, clippy::unwrap_used)] // a test fails by panicking

mod common;

use std::net::SocketAddr;
use std::time::Duration;

use common::{TempDir, run_cli, sample, start, wait_until};
use tokio::io::AsyncReadExt;
use tokio::net::{TcpSocket, TcpStream};

async fn connect_from(ip: &str, to: SocketAddr) -> TcpStream {
    let socket = TcpSocket::new_v4().unwrap();
    socket
        .bind(SocketAddr::new(ip.parse().unwrap(), 0))
        .unwrap();
    socket.connect(to).await.unwrap()
}

/// Reads until the service closes its end; fails the test after `within`.
async fn closed_within(stream: &mut TcpStream, within: Duration) {
    let mut sink = Vec::new();
    tokio::time::timeout(within, stream.read_to_end(&mut sink))
        .await
        .expect("the service closes the connection")
        .ok();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn idle_and_refused_connections_are_closed_and_counted() {
    let server = start(
        r#"
        [telemetry]
        sources = ["tcp://127.0.0.1:0"]
        max_connections = 1
        idle_timeout = "1s"
        "#,
    )
    .await;
    let edge = server.running.state().edge().listen_addrs()[0];
    let source = format!("source=\"tcp://{edge}\"");

    // Connected, sending nothing: it holds the one slot...
    let mut idle = connect_from("127.0.0.1", edge).await;
    wait_until(
        "the connection is open",
        Duration::from_secs(10),
        || async {
            sample(
                &server.metrics().await,
                "rustkernel_edge_connections",
                &source,
            ) == Some(1.0)
        },
    )
    .await;
    // ... so one from another address is refused at once ...
    let mut refused = connect_from("127.0.0.2", edge).await;
    closed_within(&mut refused, Duration::from_secs(5)).await;
    // ... until the idle one is closed after idle_timeout.
    closed_within(&mut idle, Duration::from_secs(10)).await;

    let closed = |reason: &str| format!("{source},reason=\"{reason}\"");
    wait_until("both are counted", Duration::from_secs(10), || async {
        let metrics = server.metrics().await;
        sample(
            &metrics,
            "rustkernel_edge_connections_closed_total",
            &closed("idle"),
        ) == Some(1.0)
            && sample(&metrics, "rustkernel_edge_connections", &source) == Some(0.0)
    })
    .await;
    let metrics = server.metrics().await;
    assert_eq!(
        sample(
            &metrics,
            "rustkernel_edge_connections_closed_total",
            &closed("refused")
        ),
        Some(1.0),
        "{metrics}"
    );
    assert!(metrics.contains("# TYPE rustkernel_edge_connections_closed counter"));

    // The slot is free again.
    let _device = connect_from("127.0.0.2", edge).await;
    wait_until(
        "the new connection is open",
        Duration::from_secs(10),
        || async {
            sample(
                &server.metrics().await,
                "rustkernel_edge_connections",
                &source,
            ) == Some(1.0)
        },
    )
    .await;
    server.running.shutdown().await.unwrap();
}

#[test]
fn config_shows_and_checks_the_idle_timeout() {
    let shown = run_cli(&["config", "show"]);
    assert!(shown.status.success(), "{shown:?}");
    let text = String::from_utf8(shown.stdout).unwrap();
    let telemetry = text
        .split("[telemetry]")
        .nth(1)
        .unwrap_or_else(|| panic!("no [telemetry] in {text}"));
    assert!(telemetry.contains("idle_timeout = \"5m\""), "{text}");

    let dir = TempDir::new("idle-timeout");
    let file = dir.write("bad.toml", "[telemetry]\nidle_timeout = \"100ms\"\n", 0o644);
    let checked = run_cli(&["config", "check", file.to_str().unwrap()]);
    assert_eq!(checked.status.code(), Some(1), "{checked:?}");
    let stderr = String::from_utf8(checked.stderr).unwrap();
    assert!(stderr.contains("telemetry.idle_timeout"), "{stderr}");
}
