//! `rustkernel telemetry decode` run as a process on good, corrupt and truncated streams.
#![allow(clippy::indexing_slicing)] // tests index what they built

use std::io::Write;
use std::process::{Command, Output, Stdio};

use rustkernel_core::error::ErrorKind;
use rustkernel_core::resilience::health::ComponentName;
use rustkernel_core::resilience::{
    CircuitState, HealthStatus, RecoveryAction, RecoveryStrategy, Transition,
};
use rustkernel_core::telemetry::{
    self, BreakerCounts, JobOutcome, LINE_PREFIX, MAX_FRAME_LEN, Summary, TelemetryFrame,
};
use rustkernel_core::time::Instant;

fn frames() -> Vec<TelemetryFrame> {
    let mut name = ComponentName::new();
    name.push_str("accelerator").expect("fits");
    vec![
        TelemetryFrame::Hello {
            version: telemetry::VERSION,
            device: 0xC0FFEE,
            at_us: 0,
        },
        TelemetryFrame::Component { id: 0, name },
        TelemetryFrame::Breaker {
            component: 0,
            transition: Transition::new(CircuitState::Closed, CircuitState::Open),
            counts: BreakerCounts {
                successes: 4,
                failures: 3,
                rejected: 0,
                consecutive_failures: 3,
            },
            at_us: 40_000,
        },
        TelemetryFrame::Health {
            component: 0,
            status: HealthStatus::Unhealthy,
            at_us: 41_000,
        },
        TelemetryFrame::Recovery {
            component: 0,
            action: RecoveryAction::Restart {
                at: Instant::from_micros(46_000),
                attempt: 1,
            },
            at_us: 41_000,
        },
        TelemetryFrame::Job {
            id: 9,
            outcome: JobOutcome::Failed(ErrorKind::Timeout),
            attempts: 3,
            at_us: 42_000,
        },
        TelemetryFrame::Summary(Summary {
            jobs_ok: 5,
            restarts: 1,
            escalations: 2,
            escalated_to: Some(RecoveryStrategy::NotifyOperator),
            at_us: 90_000,
            ..Summary::default()
        }),
    ]
}

fn wire(frame: &TelemetryFrame) -> Vec<u8> {
    let mut buf = [0u8; MAX_FRAME_LEN];
    telemetry::encode_frame(frame, &mut buf)
        .expect("fits")
        .to_vec()
}

fn hex(bytes: &[u8]) -> String {
    bytes.iter().map(|b| format!("{b:02x}")).collect()
}

/// The firmware's semihosting output: log lines and `@RK` frame lines.
fn text_stream() -> Vec<String> {
    let mut lines = vec!["rustkernel accelerator_supervisor: starting".to_owned()];
    for frame in frames() {
        lines.push(format!("[log] {}", frame.kind()));
        lines.push(format!("{LINE_PREFIX}{}", hex(&wire(&frame))));
    }
    lines
}

fn rustkernel(args: &[&str], stdin: &[u8]) -> Output {
    let mut child = Command::new(env!("CARGO_BIN_EXE_rustkernel"))
        .args(args)
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("starts");
    child
        .stdin
        .take()
        .expect("piped")
        .write_all(stdin)
        .expect("writes");
    child.wait_with_output().expect("runs")
}

fn text(bytes: &[u8]) -> String {
    String::from_utf8(bytes.to_vec()).expect("utf-8")
}

#[test]
fn good_stream_as_text() {
    let input = text_stream().join("\n") + "\n";
    let output = rustkernel(&["telemetry", "decode"], input.as_bytes());
    assert!(output.status.success());
    let stdout = text(&output.stdout);
    let lines: Vec<&str> = stdout.lines().collect();
    assert_eq!(lines.len(), frames().len(), "{stdout}");
    assert!(lines[0].contains("hello") && lines[0].contains("device=0x00c0ffee"));
    assert!(
        lines[2]
            .contains("accelerator: Closed -> Open (successes=4 failures=3 rejected=0 streak=3)"),
        "{}",
        lines[2]
    );
    assert!(lines[4].contains("accelerator: restart at 0.046000s (attempt 1)"));
    assert!(lines[5].contains("#9 failed (timeout), attempts=3"));
    assert!(lines[6].contains("escalated_to=notify_operator"));
    assert_eq!(text(&output.stderr), "");
}

#[test]
fn good_stream_as_json_from_a_file() {
    let dir = std::env::temp_dir().join(format!("rustkernel-decode-{}", std::process::id()));
    std::fs::create_dir_all(&dir).expect("temp dir");
    let path = dir.join("run.log");
    std::fs::write(&path, text_stream().join("\r\n")).expect("writes");
    let output = rustkernel(
        &[
            "telemetry",
            "decode",
            path.to_str().expect("utf-8 path"),
            "--format",
            "json",
            "--strict",
        ],
        b"",
    );
    std::fs::remove_dir_all(&dir).ok();
    assert!(output.status.success(), "{}", text(&output.stderr));
    let stdout = text(&output.stdout);
    let values: Vec<serde_json::Value> = stdout
        .lines()
        .map(|line| serde_json::from_str(line).expect("one JSON object per line"))
        .collect();
    assert_eq!(values.len(), frames().len());
    let kinds: Vec<&str> = values
        .iter()
        .map(|v| v["kind"].as_str().expect("kind"))
        .collect();
    assert_eq!(
        kinds,
        [
            "hello",
            "component",
            "breaker",
            "health",
            "recovery",
            "job",
            "summary"
        ]
    );
    assert_eq!(values[2]["component"], "accelerator");
    assert_eq!(values[2]["frame"]["Breaker"]["transition"]["to"], "Open");
    assert_eq!(values[6]["frame"]["Summary"]["escalations"], 2);
    // The JSON frame is the serde form of the core's type: it reads back as the same frame.
    for (value, frame) in values.iter().zip(frames()) {
        let back: TelemetryFrame = serde_json::from_value(value["frame"].clone()).expect("frame");
        assert_eq!(back, frame);
    }
}

#[test]
fn corrupt_frames_are_reported_with_offsets_and_skipped() {
    let mut lines = text_stream();
    // Flip one hex digit in the breaker frame (line 6), and break the hex of the health one.
    let breaker = &mut lines[6];
    let i = LINE_PREFIX.len() + 6;
    let flipped = if &breaker[i..=i] == "0" { "1" } else { "0" };
    breaker.replace_range(i..=i, flipped);
    lines[8].push('f'); // odd number of digits
    let input = lines.join("\n") + "\n";
    let breaker_offset: usize = lines[..6].iter().map(|l| l.len() + 1).sum();
    let output = rustkernel(
        &["telemetry", "decode", "-", "--format", "json"],
        input.as_bytes(),
    );
    assert!(output.status.success());
    let stdout = text(&output.stdout);
    assert_eq!(stdout.lines().count(), frames().len() - 2, "{stdout}");
    assert!(!stdout.contains("\"breaker\""));
    let stderr = text(&output.stderr);
    assert_eq!(stderr.lines().count(), 2, "{stderr}");
    assert!(
        stderr.contains(&format!("bad frame at offset {breaker_offset}:")),
        "{stderr}"
    );
    // --strict turns bad frames into a failing exit code.
    let strict = rustkernel(&["telemetry", "decode", "--strict"], input.as_bytes());
    assert_eq!(strict.status.code(), Some(3));
}

#[test]
fn truncated_stream_keeps_every_whole_frame() {
    let input = text_stream().join("\n");
    // Cut in the middle of the last frame's hex.
    let cut = &input[..input.len() - 10];
    let output = rustkernel(&["telemetry", "decode"], cut.as_bytes());
    assert!(output.status.success());
    assert_eq!(text(&output.stdout).lines().count(), frames().len() - 1);
    let stderr = text(&output.stderr);
    assert_eq!(stderr.lines().count(), 1, "{stderr}");
    assert!(stderr.contains("bad frame at offset"));
}

#[test]
fn raw_cobs_stream_with_garbage() {
    let mut input = vec![0x13, 0x37, 0x00];
    for frame in frames() {
        input.extend(wire(&frame));
    }
    let mut corrupt = wire(&frames()[3]);
    corrupt[2] ^= 0x40;
    input.extend(corrupt);
    input.extend(&wire(&frames()[0])[..4]);
    let output = rustkernel(
        &[
            "telemetry",
            "decode",
            "--framing",
            "raw",
            "--format",
            "json",
        ],
        &input,
    );
    assert!(output.status.success());
    assert_eq!(text(&output.stdout).lines().count(), frames().len());
    assert_eq!(text(&output.stderr).lines().count(), 3);
}

#[test]
fn random_bytes_never_crash_the_decoder() {
    // A deterministic xorshift stream, with markers sprinkled in.
    let mut state = 0x9E37_79B9_7F4A_7C15u64;
    let mut input = Vec::new();
    for i in 0..20_000 {
        state ^= state << 13;
        state ^= state >> 7;
        state ^= state << 17;
        input.push(state.to_le_bytes()[0]);
        if i % 500 == 0 {
            input.extend_from_slice(LINE_PREFIX.as_bytes());
        }
    }
    for framing in ["lines", "raw"] {
        let output = rustkernel(&["telemetry", "decode", "--framing", framing], &input);
        assert!(output.status.success(), "{framing}: {:?}", output.status);
    }
}

#[test]
fn io_errors_and_usage_errors_exit_non_zero() {
    let missing = rustkernel(&["telemetry", "decode", "/nonexistent/rustkernel.log"], b"");
    assert_eq!(missing.status.code(), Some(1));
    assert!(text(&missing.stderr).contains("cannot open"));
    let usage = rustkernel(&["telemetry", "decode", "--format", "xml"], b"");
    assert_eq!(usage.status.code(), Some(2));
    let empty = rustkernel(&["telemetry", "decode", "--strict"], b"");
    assert_eq!(empty.status.code(), Some(3));
    let empty = rustkernel(&["telemetry", "decode"], b"");
    assert_eq!(empty.status.code(), Some(0));
}
