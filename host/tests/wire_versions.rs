//! Every telemetry wire version the project shipped, as a user meets it: the firmware's
//! recorded runs of each version (`tests/golden/telemetry/`) through the real binary's
//! `rustkernel telemetry decode` and `rustkernel serve --telemetry FILE`; and a device whose
//! firmware is newer than the host, which is still seen.
#![allow(clippy::indexing_slicing, clippy::panic, clippy::unwrap_used)] // a test fails by panicking
#![allow(clippy::float_cmp)] // the values compared are counts, exact in f64

mod common;

use std::path::PathBuf;
use std::time::Duration;

use common::{ServeProcess, TempDir, client, component, run_cli, wait_until};
use rustkernel_core::frame;
use rustkernel_core::telemetry::{self, MAX_FRAME_LEN, TelemetryFrame};

/// A file of the recording of wire `version`.
fn golden(version: u8, name: &str) -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR"))
        .join("../tests/golden/telemetry")
        .join(format!("v{version}"))
        .join(name)
}

/// What each recorded frame holds, as the decoder of its time read it.
fn recorded_values(version: u8) -> Vec<TelemetryFrame> {
    std::fs::read_to_string(golden(version, "frames.jsonl"))
        .unwrap()
        .lines()
        .map(|line| serde_json::from_str(line).unwrap())
        .collect()
}

fn text(bytes: &[u8]) -> String {
    String::from_utf8(bytes.to_vec()).unwrap()
}

/// The sum of the samples of `name` whose labels contain every one of `labels` (`k="v"`).
fn sum(metrics: &str, name: &str, labels: &[&str]) -> f64 {
    metrics
        .lines()
        .filter(|line| line.starts_with(&format!("{name}{{")))
        .filter(|line| labels.iter().all(|label| line.contains(label)))
        .filter_map(|line| line.rsplit_once(' ')?.1.parse::<f64>().ok())
        .sum()
}

#[test]
fn telemetry_decode_reads_every_recorded_version() {
    for &version in telemetry::READ_VERSIONS {
        let values = recorded_values(version);
        let log = golden(version, "run.log");
        let bin = golden(version, "frames.bin");
        for args in [
            vec![log.to_str().unwrap(), "--format", "json", "--strict"],
            vec![
                bin.to_str().unwrap(),
                "--framing",
                "raw",
                "--format",
                "json",
                "--strict",
            ],
        ] {
            let mut all = vec!["telemetry", "decode"];
            all.extend(&args);
            let output = run_cli(&all);
            assert!(output.status.success(), "v{version} {args:?}: {output:?}");
            assert_eq!(text(&output.stderr), "", "v{version} {args:?}");
            let decoded: Vec<TelemetryFrame> = text(&output.stdout)
                .lines()
                .map(|line| {
                    let value: serde_json::Value = serde_json::from_str(line).unwrap();
                    serde_json::from_value(value["frame"].clone()).unwrap()
                })
                .collect();
            assert_eq!(decoded, values, "v{version} {args:?}");
        }

        // What a version lacks is absent: version 1 breakers say nothing of a trip, in JSON
        // (null) and in text (no reason after the transition); version 2 ones say why.
        let output = run_cli(&["telemetry", "decode", log.to_str().unwrap()]);
        let stdout = text(&output.stdout);
        let opened: Vec<&str> = stdout
            .lines()
            .filter(|line| line.contains("breaker") && line.contains("Closed -> Open"))
            .collect();
        assert_eq!(opened.len(), 2, "v{version}: {stdout}");
        for line in opened {
            let says_why = line.contains("Closed -> Open (3 consecutive failures)");
            assert_eq!(says_why, version >= 2, "v{version}: {line}");
        }
        let trips = text(
            &run_cli(&[
                "telemetry",
                "decode",
                log.to_str().unwrap(),
                "--format",
                "json",
            ])
            .stdout,
        );
        let breakers: Vec<serde_json::Value> = trips
            .lines()
            .map(|line| serde_json::from_str::<serde_json::Value>(line).unwrap())
            .filter(|value| value["kind"] == "breaker")
            .collect();
        assert_eq!(breakers.len(), 4);
        let with_trip = breakers
            .iter()
            .filter(|value| !value["frame"]["Breaker"]["transition"]["trip"].is_null())
            .count();
        assert_eq!(with_trip, if version >= 2 { 2 } else { 0 }, "v{version}");
    }
}

/// Polls the service until the recorded run's last frames show, then checks what it shows.
async fn wait_for_the_recorded_run(base: &str) -> (serde_json::Value, String) {
    let http = client();
    let get = |path: &str| {
        let request = http.get(format!("{base}{path}"));
        async move { request.send().await.unwrap().text().await.unwrap() }
    };
    wait_until(
        "the recorded run shows in /health and /metrics",
        Duration::from_secs(30),
        || async {
            let health: serde_json::Value = serde_json::from_str(&get("/health").await).unwrap();
            let escalated = health["components"]
                .as_array()
                .into_iter()
                .flatten()
                .any(|c| {
                    c["name"] == "edge/0a386001/accelerator"
                        && c["message"]
                            .as_str()
                            .is_some_and(|m| m.starts_with("escalated to notify_operator"))
                });
            let metrics = get("/metrics").await;
            escalated && sum(&metrics, "rustkernel_edge_frames_total", &[]) >= 67.0
        },
    )
    .await;
    let health = serde_json::from_str(&get("/health").await).unwrap();
    (health, get("/metrics").await)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn serve_shows_the_device_of_every_recorded_version() {
    for &version in telemetry::READ_VERSIONS {
        let log = golden(version, "run.log");
        let mut serve = ServeProcess::spawn(&[
            "--preset",
            "development",
            "--address",
            "127.0.0.1:0",
            "--telemetry",
            log.to_str().unwrap(),
        ]);
        let address = serve.listening_address(Duration::from_secs(30));
        let (health, metrics) = wait_for_the_recorded_run(&format!("http://{address}")).await;

        let accelerator = component(&health, "edge/0a386001/accelerator");
        assert_eq!(
            accelerator["status"], "unhealthy",
            "v{version}: {accelerator}"
        );
        let frames = |result: &str| {
            sum(
                &metrics,
                "rustkernel_edge_frames_total",
                &[&format!("result=\"{result}\"")],
            )
        };
        assert_eq!(frames("ok"), 67.0, "v{version}: {metrics}");
        for result in ["bad", "unsupported_version", "no_hello", "refused"] {
            assert_eq!(frames(result), 0.0, "v{version} {result}: {metrics}");
        }
        assert_eq!(
            sum(
                &metrics,
                "rustkernel_edge_reported",
                &["device=\"0a386001\"", "counter=\"jobs_ok\""]
            ),
            24.0,
            "v{version}"
        );
        let log = serve.drain_log();
        assert!(!log.contains("unsupported"), "v{version}: {log}");
        assert!(!log.contains("newer than"), "v{version}: {log}");
    }
}

/// The recorded version 2 run as a device one version newer than the host would send it: the
/// same frames at version `VERSION + 1`, the hello laid out as every version lays it out.
fn newer_run() -> Vec<u8> {
    let newer = telemetry::VERSION + 1;
    let mut bytes = Vec::new();
    for value in recorded_values(2) {
        let value = match value {
            TelemetryFrame::Hello { device, at_us, .. } => TelemetryFrame::Hello {
                version: newer,
                device,
                at_us,
            },
            other => other,
        };
        let mut buf = [0u8; MAX_FRAME_LEN];
        bytes.extend_from_slice(frame::encode(newer, &value, &mut buf).unwrap());
    }
    bytes
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_device_newer_than_the_host_is_seen_its_frames_counted_and_logged_once() {
    let newer = telemetry::VERSION + 1;
    let dir = TempDir::new("newer-firmware");
    let path = dir.path().join("newer.bin");
    // Two runs: the device restarts, and says hello again.
    let run = newer_run();
    std::fs::write(&path, [run.clone(), run].concat()).unwrap();

    // `telemetry decode` shows its hellos and reports the rest as of a version it does not read.
    let output = run_cli(&[
        "telemetry",
        "decode",
        "--framing",
        "raw",
        path.to_str().unwrap(),
    ]);
    assert!(output.status.success(), "{output:?}");
    let stdout = text(&output.stdout);
    assert_eq!(stdout.lines().count(), 2, "{stdout}");
    assert!(
        stdout
            .lines()
            .all(|line| line.contains(&format!("hello     version={newer} device=0x0a386001"))),
        "{stdout}"
    );
    let stderr = text(&output.stderr);
    assert_eq!(stderr.lines().count(), 2 * 66, "{stderr}");
    assert!(
        stderr
            .lines()
            .all(|line| line.contains(&format!("unsupported frame version {newer}"))),
        "{stderr}"
    );

    let mut serve = ServeProcess::spawn(&[
        "--preset",
        "development",
        "--address",
        "127.0.0.1:0",
        "--telemetry",
        path.to_str().unwrap(),
    ]);
    let address = serve.listening_address(Duration::from_secs(30));
    let base = format!("http://{address}");
    let http = client();
    let get = |path: &str| {
        let request = http.get(format!("{base}{path}"));
        async move { request.send().await.unwrap().text().await.unwrap() }
    };
    wait_until(
        "every frame is counted",
        Duration::from_secs(30),
        || async { sum(&get("/metrics").await, "rustkernel_edge_frames_total", &[]) >= 134.0 },
    )
    .await;
    let metrics = get("/metrics").await;
    let frames = |result: &str| {
        sum(
            &metrics,
            "rustkernel_edge_frames_total",
            &[&format!("result=\"{result}\"")],
        )
    };
    assert_eq!(frames("ok"), 2.0, "{metrics}");
    assert_eq!(frames("unsupported_version"), 132.0, "{metrics}");
    assert_eq!(frames("bad"), 0.0, "{metrics}");

    let message = format!("firmware newer than host (version {newer})");
    wait_until(
        "the device shows in /health",
        Duration::from_secs(30),
        || async {
            let health: serde_json::Value = serde_json::from_str(&get("/health").await).unwrap();
            health["components"]
                .as_array()
                .into_iter()
                .flatten()
                .any(|c| c["name"] == "edge/0a386001" && c["message"] == message.as_str())
        },
    )
    .await;
    let health: serde_json::Value = serde_json::from_str(&get("/health").await).unwrap();
    let device = component(&health, "edge/0a386001");
    assert_eq!(device["status"], "degraded", "{device}");
    assert_eq!(health["ready"], true, "{health}");

    let log = serve.drain_log();
    let warnings = log
        .lines()
        .filter(|line| line.contains("newer than this host"))
        .count();
    assert_eq!(warnings, 1, "logged once per device: {log}");
}
