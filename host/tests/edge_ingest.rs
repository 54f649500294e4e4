//! `rustkernel serve --telemetry`: the firmware's telemetry fed into a running service through a
//! followed file, TCP (lines and raw framing) and standard input, then `/health` and
//! `/metrics` checked against the firmware's own summary frame.
//!
//! The firmware output is the run recorded in `tests/data/accelerator_supervisor.log`, or
//! `RUSTKERNEL_FIRMWARE_LOG` when set (`scripts/firmware-e2e.sh` sets it to the run it just made
//! under QEMU). [`qemu_firmware_streams_live_into_the_service`] runs the firmware itself under
//! QEMU and streams its output as it comes; it is skipped, saying so, when `qemu-system-arm` is
//! missing.
#![allow(clippy::indexing_slicing, clippy::panic, clippy::unwrap_used)] // a test fails by panicking
#![allow(clippy::float_cmp)] // the values compared are counts, exact in f64

use std::collections::BTreeMap;
use std::io::Write as _;
use std::net::SocketAddr;
use std::path::PathBuf;
use std::process::Stdio;
use std::time::Duration;

use rustkernel_core::resilience::HealthStatus;
use rustkernel_host::config::{ConfigFile, Preset};
use rustkernel_host::service::health::HealthBody;
use rustkernel_host::service::{RunningService, start_on};
use rustkernel_host::telemetry::source::TelemetryFile;
use tokio::io::AsyncWriteExt;
use tokio::net::{TcpListener, TcpStream};

fn firmware_log() -> PathBuf {
    std::env::var_os("RUSTKERNEL_FIRMWARE_LOG").map_or_else(
        || PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("tests/data/accelerator_supervisor.log"),
        PathBuf::from,
    )
}

fn firmware_bytes() -> Vec<u8> {
    std::fs::read(firmware_log()).expect("the firmware log is readable")
}

/// The firmware's `@RK` lines as raw COBS frames back to back.
fn raw_frames(log: &[u8]) -> Vec<u8> {
    let text = String::from_utf8_lossy(log);
    let mut raw = Vec::new();
    for line in text.lines() {
        if let Some(hex) = line.strip_prefix("@RK ") {
            for pair in hex.trim().as_bytes().chunks(2) {
                let digits = std::str::from_utf8(pair).unwrap();
                raw.push(u8::from_str_radix(digits, 16).unwrap());
            }
        }
    }
    raw
}

async fn service(sources: &[String]) -> RunningService {
    let file = ConfigFile {
        preset: Some(Preset::Development),
        telemetry: TelemetryFile {
            sources: Some(sources.iter().map(|s| s.parse().expect(s)).collect()),
            ..TelemetryFile::default()
        },
        ..ConfigFile::default()
    };
    let config = file.resolve(None).expect("valid config");
    let listener = TcpListener::bind("127.0.0.1:0").await.expect("bind");
    start_on(config, listener).await.expect("service starts")
}

async fn get(address: SocketAddr, path: &str) -> String {
    reqwest::get(format!("http://{address}{path}"))
        .await
        .expect("request")
        .text()
        .await
        .expect("body")
}

async fn health(address: SocketAddr) -> HealthBody {
    serde_json::from_str(&get(address, "/health").await).expect("health JSON")
}

/// `name{labels} value` lines of the Prometheus text, as (name, labels, value).
fn samples(text: &str) -> Vec<(String, BTreeMap<String, String>, f64)> {
    text.lines()
        .filter(|line| !line.starts_with('#') && !line.is_empty())
        .filter_map(|line| {
            let (series, value) = line.rsplit_once(' ')?;
            let (name, labels) = match series.split_once('{') {
                Some((name, rest)) => (name, rest.trim_end_matches('}')),
                None => (series, ""),
            };
            let labels = labels
                .split(',')
                .filter_map(|pair| {
                    let (key, value) = pair.split_once('=')?;
                    Some((key.to_owned(), value.trim_matches('"').to_owned()))
                })
                .collect();
            Some((name.to_owned(), labels, value.parse().ok()?))
        })
        .collect()
}

/// The sum of `name` over the series whose labels include every pair of `with`.
fn sum(text: &str, name: &str, with: &[(&str, &str)]) -> f64 {
    samples(text)
        .into_iter()
        .filter(|(n, labels, _)| {
            n == name
                && with
                    .iter()
                    .all(|(k, v)| labels.get(*k).map(String::as_str) == Some(*v))
        })
        .map(|(_, _, value)| value)
        .sum()
}

/// Polls until the device's summary arrived (the firmware's last frame) and `/health` caught up
/// with the frames before it (the accelerator unhealthy, escalated to the operator); returns the
/// metrics text.
async fn wait_for_summary(address: SocketAddr) -> String {
    for _ in 0..600 {
        let text = get(address, "/metrics").await;
        let caught_up = health(address).await.components.iter().any(|c| {
            c.name.starts_with("edge/")
                && c.name.ends_with("/accelerator")
                && c.status == HealthStatus::Unhealthy
                && c.message.starts_with("escalated to notify_operator")
        });
        if sum(&text, "rustkernel_edge_reported", &[("counter", "jobs_ok")]) > 0.0 && caught_up {
            return text;
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    panic!(
        "no summary frame ingested in 30 s; /metrics:\n{}\n/health:\n{}",
        get(address, "/metrics").await,
        get(address, "/health").await
    );
}

/// `/health` and `/metrics` agree with the device's summary frame.
async fn assert_agrees_with_summary(address: SocketAddr, text: &str, device: &str, clean: bool) {
    let reported = |counter: &str| {
        sum(
            text,
            "rustkernel_edge_reported",
            &[("device", device), ("counter", counter)],
        )
    };
    let counted = |name: &str, with: &[(&str, &str)]| {
        let mut with = with.to_vec();
        with.push(("device", device));
        sum(text, name, &with)
    };
    assert!(reported("restarts") >= 1.0, "{text}");
    assert_eq!(
        counted("rustkernel_edge_restarts_total", &[]),
        reported("restarts"),
        "restarts"
    );
    assert_eq!(
        counted("rustkernel_edge_escalations_total", &[]),
        reported("escalations"),
        "escalations"
    );
    assert_eq!(
        counted(
            "rustkernel_edge_escalations_total",
            &[("strategy", "notify_operator")]
        ),
        1.0,
        "escalated to the operator"
    );
    assert_eq!(
        counted(
            "rustkernel_edge_breaker_transitions_total",
            &[("to", "open")]
        ),
        reported("breaker_opens"),
        "breaker opens"
    );
    assert_eq!(
        counted(
            "rustkernel_edge_breaker_transitions_total",
            &[("from", "open"), ("to", "half_open")]
        ),
        reported("half_open_probes"),
        "half-open probes"
    );
    for (outcome, counter) in [
        ("done", "jobs_ok"),
        ("fallback", "fallbacks"),
        ("failed", "jobs_failed"),
    ] {
        assert_eq!(
            counted(
                "rustkernel_edge_job_outcomes_total",
                &[("outcome", outcome)]
            ),
            reported(counter),
            "{outcome}"
        );
    }
    assert!(
        counted(
            "rustkernel_edge_operator_notified_timestamp_seconds",
            &[("component", "accelerator")]
        ) > 1.0e9
    );
    if clean {
        assert_eq!(
            sum(text, "rustkernel_edge_frames_total", &[("result", "bad")]),
            0.0
        );
    }

    let body = health(address).await;
    let name = format!("edge/{device}/accelerator");
    let component = body
        .components
        .iter()
        .find(|component| component.name == name)
        .unwrap_or_else(|| panic!("no {name} in /health: {body:?}"));
    assert_eq!(component.status, HealthStatus::Unhealthy, "{component:?}");
    assert!(
        component
            .message
            .starts_with("escalated to notify_operator at 20"),
        "{component:?}"
    );
    assert!(!component.critical);
    assert!(
        body.ready,
        "an edge device does not take readiness: {body:?}"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_followed_file_shows_the_firmware_run() {
    let dir = std::env::temp_dir().join(format!("rk-edge-file-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    let path = dir.join("edge.log");
    let log = firmware_bytes();
    // The file grows while the service follows it: the first half now, the rest later.
    let (first, rest) = log.split_at(log.len() / 2);
    std::fs::write(&path, first).unwrap();
    let running = service(&[format!("file:{}", path.display())]).await;
    let address = running.local_addr();
    tokio::time::sleep(Duration::from_millis(300)).await;
    std::fs::OpenOptions::new()
        .append(true)
        .open(&path)
        .unwrap()
        .write_all(rest)
        .unwrap();
    let text = wait_for_summary(address).await;
    assert_agrees_with_summary(address, &text, "0a386001", true).await;
    assert!(sum(&text, "rustkernel_edge_frames_total", &[("result", "ok")]) > 50.0);
    running.shutdown().await.unwrap();
    let _ = std::fs::remove_dir_all(&dir);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn tcp_connections_in_either_framing_show_the_firmware_run_and_garbage_is_counted() {
    let running = service(&["tcp://127.0.0.1:0".to_owned()]).await;
    let address = running.local_addr();
    let edge = running.state().edge().listen_addrs()[0];

    // A connection of garbage first: counted as bad frames, the service carries on.
    let mut garbage = TcpStream::connect(edge).await.unwrap();
    garbage
        .write_all(b"@RK 00ff\n@RK zz\n\x00\x01\x02\x00@RK 0101\n")
        .await
        .unwrap();
    garbage.shutdown().await.unwrap();

    // The firmware's frames, raw (auto-detected), in small writes as a UART bridge would.
    let raw = raw_frames(&firmware_bytes());
    let mut device = TcpStream::connect(edge).await.unwrap();
    for chunk in raw.chunks(17) {
        device.write_all(chunk).await.unwrap();
    }
    device.shutdown().await.unwrap();
    let text = wait_for_summary(address).await;
    assert!(sum(&text, "rustkernel_edge_frames_total", &[("result", "bad")]) >= 3.0);
    // The garbage connection's bad frames aside, the numbers agree with the summary.
    assert_agrees_with_summary(address, &text, "0a386001", false).await;
    running.shutdown().await.unwrap();

    // Lines framing over TCP, to a fresh service.
    let running = service(&["tcp:127.0.0.1:0?framing=lines".to_owned()]).await;
    let edge = running.state().edge().listen_addrs()[0];
    let mut device = TcpStream::connect(edge).await.unwrap();
    device.write_all(&firmware_bytes()).await.unwrap();
    device.shutdown().await.unwrap();
    let text = wait_for_summary(running.local_addr()).await;
    assert_agrees_with_summary(running.local_addr(), &text, "0a386001", true).await;
    running.shutdown().await.unwrap();
}

/// Ends the stream and waits until the service read all of it and closed its end: the streams
/// of one device are then ingested in order (a cut run that ends in a hello, ingested after
/// the clean run, would rightly reset the device).
async fn closed_by_service(mut stream: TcpStream) {
    let _ = stream.shutdown().await;
    let mut sink = Vec::new();
    let _ = tokio::io::AsyncReadExt::read_to_end(&mut stream, &mut sink).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn garbage_and_truncated_streams_never_stop_the_service() {
    let running = service(&["tcp://127.0.0.1:0".to_owned()]).await;
    let address = running.local_addr();
    let edge = running.state().edge().listen_addrs()[0];
    let log = firmware_bytes();
    let raw = raw_frames(&log);
    // A small deterministic generator: the same streams every run.
    let mut seed = 0x2545_f491_4f6c_dd1d_u64;
    let mut next = move || {
        seed ^= seed << 13;
        seed ^= seed >> 7;
        seed ^= seed << 17;
        seed
    };
    for round in 0..24 {
        let mut bytes = if round % 2 == 0 {
            log.clone()
        } else {
            raw.clone()
        };
        // Cut it short, flip some bytes, splice in random bytes.
        let keep = usize::try_from(next() % bytes.len() as u64).unwrap();
        bytes.truncate(keep.max(1));
        for _ in 0..(next() % 20) {
            let at = usize::try_from(next() % bytes.len() as u64).unwrap();
            bytes[at] = next().to_le_bytes()[0];
        }
        let noise: Vec<u8> = (0..(next() % 3000))
            .map(|_| next().to_le_bytes()[0])
            .collect();
        let at = usize::try_from(next() % bytes.len() as u64).unwrap();
        bytes.splice(at..at, noise);
        let mut stream = TcpStream::connect(edge).await.unwrap();
        let _ = stream.write_all(&bytes).await;
        closed_by_service(stream).await;
    }
    // A stream of endless text without a newline, and one of endless non-zero bytes.
    for filler in [b'a', 0x55] {
        let mut stream = TcpStream::connect(edge).await.unwrap();
        for _ in 0..64 {
            if stream.write_all(&[filler; 16 * 1024]).await.is_err() {
                break;
            }
        }
        closed_by_service(stream).await;
    }
    // Then a clean run is still ingested and the service still answers.
    let mut stream = TcpStream::connect(edge).await.unwrap();
    stream.write_all(&log).await.unwrap();
    stream.shutdown().await.unwrap();
    let text = wait_for_summary(address).await;
    assert!(sum(&text, "rustkernel_edge_frames_total", &[("result", "bad")]) > 0.0);
    assert!(sum(&text, "rustkernel_edge_devices", &[]) <= 16.0);
    let body = health(address).await;
    assert!(body.live && body.ready, "{body:?}");
    running.shutdown().await.unwrap();
}

/// The real binary: `rustkernel serve --telemetry -` reads the firmware's output from its
/// standard input, and `rustkernel health --component` shows the edge component.
#[test]
fn the_binary_reads_standard_input_and_health_shows_the_edge_component() {
    use std::io::{BufRead, BufReader};
    let mut child = std::process::Command::new(env!("CARGO_BIN_EXE_rustkernel"))
        .args([
            "serve",
            "--preset",
            "development",
            "--address",
            "127.0.0.1:0",
            "--telemetry",
            "-",
        ])
        .env("RUST_LOG", "info")
        .stdin(Stdio::piped())
        .stderr(Stdio::piped())
        .stdout(Stdio::null())
        .spawn()
        .expect("rustkernel starts");
    let mut stdin = child.stdin.take().unwrap();
    stdin.write_all(&firmware_bytes()).unwrap();
    drop(stdin);
    let stderr = BufReader::new(child.stderr.take().unwrap());
    let mut lines = stderr.lines();
    let mut seen = Vec::new();
    let address = lines
        .by_ref()
        .map_while(Result::ok)
        .find_map(|line| {
            seen.push(line.clone());
            let at = line.find("address=")?;
            line[at + "address=".len()..]
                .split_whitespace()
                .next()?
                .parse::<SocketAddr>()
                .ok()
        })
        .unwrap_or_else(|| {
            panic!(
                "the service logs its address; its log:\n{}",
                seen.join("\n")
            )
        });
    // Keep draining the log so the service never blocks on a full pipe.
    std::thread::spawn(move || lines.for_each(drop));
    let url = format!("http://{address}");
    let mut shown = String::new();
    for _ in 0..300 {
        let output = std::process::Command::new(env!("CARGO_BIN_EXE_rustkernel"))
            .args([
                "health",
                "--url",
                &url,
                "--format",
                "json",
                "--component",
                "edge/0a386001/accelerator",
            ])
            .output()
            .unwrap();
        shown = String::from_utf8_lossy(&output.stdout).into_owned();
        if shown.contains("escalated to notify_operator") {
            break;
        }
        std::thread::sleep(Duration::from_millis(100));
    }
    let _ = child.kill();
    let _ = child.wait();
    assert!(
        shown.contains("escalated to notify_operator at 20"),
        "{shown}"
    );
    assert!(shown.contains("\"unhealthy\""), "{shown}");
}

/// Runs the firmware under QEMU (`cd firmware-examples && cargo run --release`, as
/// `scripts/firmware-e2e.sh` does) and streams its output live into the service over TCP and
/// through a followed file.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn qemu_firmware_streams_live_into_the_service() {
    let qemu = std::process::Command::new("qemu-system-arm")
        .arg("--version")
        .output();
    if !qemu.is_ok_and(|output| output.status.success()) {
        eprintln!(
            "SKIPPED qemu_firmware_streams_live_into_the_service: qemu-system-arm is not \
             installed (scripts/firmware-e2e.sh installs it and runs this test)"
        );
        return;
    }
    let dir = std::env::temp_dir().join(format!("rk-edge-qemu-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    let path = dir.join("qemu.log");
    std::fs::write(&path, b"").unwrap();
    let tcp = service(&["tcp://127.0.0.1:0".to_owned()]).await;
    let file = service(&[format!("{}", path.display())]).await;
    let edge = tcp.state().edge().listen_addrs()[0];
    tokio::time::sleep(Duration::from_millis(200)).await;

    let firmware = PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../firmware-examples");
    let mut child = tokio::process::Command::new("cargo")
        .args(["run", "--release", "-q"])
        .current_dir(&firmware)
        .env_remove("CARGO_TARGET_DIR")
        .stdout(Stdio::piped())
        .stderr(Stdio::inherit())
        .kill_on_drop(true)
        .spawn()
        .expect("cargo runs the firmware");
    let mut stdout = child.stdout.take().unwrap();
    let mut socket = TcpStream::connect(edge).await.unwrap();
    let mut log = tokio::fs::OpenOptions::new()
        .append(true)
        .open(&path)
        .await
        .unwrap();
    let mut buf = vec![0u8; 4096];
    let copy = async {
        loop {
            let n = tokio::io::AsyncReadExt::read(&mut stdout, &mut buf)
                .await
                .unwrap();
            if n == 0 {
                break;
            }
            socket.write_all(&buf[..n]).await.unwrap();
            log.write_all(&buf[..n]).await.unwrap();
        }
    };
    tokio::time::timeout(Duration::from_secs(600), copy)
        .await
        .expect("the firmware run ends within 10 minutes (build included)");
    let status = child.wait().await.unwrap();
    assert!(status.success(), "the firmware exited with {status}");
    socket.shutdown().await.unwrap();
    log.flush().await.unwrap();

    for running in [tcp, file] {
        let address = running.local_addr();
        let text = wait_for_summary(address).await;
        let device = health(address)
            .await
            .components
            .iter()
            .find_map(|c| {
                c.name
                    .strip_prefix("edge/")?
                    .split('/')
                    .next()
                    .map(str::to_owned)
            })
            .expect("an edge device");
        assert_agrees_with_summary(address, &text, &device, true).await;
        running.shutdown().await.unwrap();
    }
    let _ = std::fs::remove_dir_all(&dir);
}
