//! Writes the committed seed corpora, `seeds/<target>/`, with the real encoders: a few valid
//! inputs and a few corrupt ones per target. Run from `fuzz/`: `cargo run --example seeds`.
//! Inputs the fuzzer found (crashes fixed since) are committed there too, named `regression-*`;
//! this program leaves them alone.

use std::fs;
use std::path::Path;

use rustkernel_core::checkpoint::{self, FrameHeader};
use rustkernel_core::resilience::health::ComponentName;
use rustkernel_core::resilience::recovery::{RecoveryAction, RecoveryStrategy};
use rustkernel_core::resilience::{CircuitState, ErrorKind, HealthStatus, Transition};
use rustkernel_core::telemetry::{
    self, BreakerCounts, JobOutcome, MAX_FRAME_LEN, Summary, TelemetryFrame,
};
use rustkernel_core::time::Instant;
use rustkernel_fuzz::{cobs, wire_frame, wire_line};

fn write(target: &str, name: &str, bytes: &[u8]) {
    let dir = Path::new("seeds").join(target);
    fs::create_dir_all(&dir).expect("create the seed directory");
    fs::write(dir.join(name), bytes).expect("write a seed");
}

fn frames() -> Vec<TelemetryFrame> {
    let mut name = ComponentName::new();
    name.push_str("accelerator").expect("fits");
    vec![
        TelemetryFrame::Hello {
            version: telemetry::VERSION,
            device: 0xC0FF_EE00,
            at_us: 4,
        },
        TelemetryFrame::Component { id: 1, name },
        TelemetryFrame::Health {
            component: 1,
            status: HealthStatus::Healthy,
            at_us: 3_054,
        },
        TelemetryFrame::Breaker {
            component: 1,
            transition: Transition::new(CircuitState::Closed, CircuitState::Open),
            counts: BreakerCounts {
                successes: 7,
                failures: 5,
                rejected: 0,
                consecutive_failures: 5,
            },
            at_us: 120_000,
        },
        TelemetryFrame::Recovery {
            component: 1,
            action: RecoveryAction::Restart {
                at: Instant::from_micros(250_000),
                attempt: 1,
            },
            at_us: 150_000,
        },
        TelemetryFrame::Job {
            id: 9,
            outcome: JobOutcome::Failed(ErrorKind::Timeout),
            attempts: 3,
            at_us: 160_000,
        },
        TelemetryFrame::Summary(Summary {
            jobs_ok: 40,
            fallbacks: 2,
            retries: 6,
            breaker_opens: 1,
            escalated_to: Some(RecoveryStrategy::Degrade),
            at_us: 1_000_000,
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

fn main() {
    // COBS: encodings of a few data, and invalid encodings.
    for (name, data) in [
        ("empty", vec![]),
        ("zeros", vec![0, 0, 0]),
        ("mixed", vec![0x11, 0x22, 0x00, 0x33, 0x00]),
        ("run-254", (1..=254u8).collect()),
    ] {
        let mut enc = vec![0u8; cobs::max_encoded_len(data.len())];
        let len = cobs::encode(&data, &mut enc).expect("fits");
        write("cobs", &format!("valid-{name}"), &enc[..len]);
    }
    write("cobs", "corrupt-code-past-end", &[0x05, 0x11]);
    write("cobs", "corrupt-zero-inside", &[0x03, 0x11, 0x00]);

    // Telemetry frames: one of each kind, and corrupted ones.
    let frames = frames();
    for frame in &frames {
        write(
            "telemetry_frame",
            &format!("valid-{}", frame.kind()),
            &wire(frame),
        );
    }
    let health = wire(&frames[2]);
    let mut flipped = health.clone();
    flipped[3] ^= 0x10;
    write("telemetry_frame", "corrupt-bit-flip", &flipped);
    write(
        "telemetry_frame",
        "corrupt-truncated",
        &health[..health.len() / 2],
    );
    let mut version = wire_frame(&[]);
    version[1] = telemetry::VERSION + 1; // the version byte of a frame with no zero before it
    write("telemetry_frame", "corrupt-version", &version);
    // Frames the firmware sent at wire version 1 (tests/golden/telemetry/): one of each kind.
    let golden = fs::read("../tests/golden/telemetry/v1/frames.bin").expect("golden frames");
    let mut kinds = Vec::new();
    for frame in golden.split_inclusive(|&b| b == 0) {
        let kind = telemetry::decode_frame(&mut frame.to_vec())
            .expect("a golden frame decodes")
            .kind();
        if !kinds.contains(&kind) {
            kinds.push(kind);
            write("telemetry_frame", &format!("golden-v1-{kind}"), frame);
        }
    }

    // The frame codec: the piece size and the limit, then a stream of frames, idle zeros, a
    // frame too long for the limit and an unfinished one.
    let mut stream = vec![3u8, 40, 0, 0];
    for frame in &frames {
        stream.extend_from_slice(&wire(frame));
    }
    stream.extend_from_slice(&[0x55; 50]);
    stream.extend_from_slice(&[0, 0x11, 0x22]);
    write("frame", "stream", &stream);
    write("frame", "one-frame", &wire(&frames[3]));
    let mut tiny = stream.clone();
    tiny[..2].copy_from_slice(&[1, 1]);
    write("frame", "limit-one", &tiny);
    write(
        "telemetry_frame",
        "corrupt-unknown-kind",
        &wire_frame(&[0x07, 0x01]),
    );

    // Checkpoint frames: raw and typed payloads, and corrupted ones.
    let header = FrameHeader::new(0x0102_0304, 7);
    let mut buf = [0u8; 256];
    let raw = checkpoint::encode_raw(header, b"state", &mut buf)
        .expect("fits")
        .to_vec();
    write("checkpoint", "valid-raw", &raw);
    let typed = checkpoint::encode(header, &(3u8, "npu"), &mut buf)
        .expect("fits")
        .to_vec();
    write("checkpoint", "valid-tuple", &typed);
    let summary = checkpoint::encode(header, &Summary::default(), &mut buf)
        .expect("fits")
        .to_vec();
    write("checkpoint", "valid-summary", &summary);
    let mut crc = raw.clone();
    crc[27] ^= 1; // a payload byte
    write("checkpoint", "corrupt-crc", &crc);
    write("checkpoint", "corrupt-truncated", &raw[..raw.len() - 1]);
    let mut magic = raw.clone();
    magic[0] = b'X';
    write("checkpoint", "corrupt-magic", &magic);

    // Host streams: the first byte is the target's flags (bit 0 raw, bit 1 JSON, bit 2 recipe).
    let mut lines = vec![0u8];
    lines.extend_from_slice(b"[     0.004 ms] booting\n");
    for frame in &frames {
        lines.extend_from_slice(&wire_line(&wire(frame)));
    }
    lines.extend_from_slice(b"log without newline@RK 0301\n@RK 12345\n");
    write("host_stream", "lines-text", &lines);
    lines[0] = 0b010;
    write("host_stream", "lines-json", &lines);
    let mut raw_stream = vec![0b011u8, 0, 0];
    for frame in &frames {
        raw_stream.extend_from_slice(&wire(frame));
    }
    raw_stream.extend_from_slice(&[0x55, 0x66, 0x00]);
    write("host_stream", "raw-json", &raw_stream);
    raw_stream[0] = 0b001;
    write("host_stream", "raw-text", &raw_stream);
    // A recipe: a component frame, text, a health frame.
    let mut recipe = vec![0b100u8];
    for (frame, text) in [(&frames[1], &b"text"[..]), (&frames[2], &b""[..])] {
        let wire = wire(frame);
        let mut decoded = wire[..wire.len() - 1].to_vec();
        let len = cobs::decode_in_place(&mut decoded).expect("valid");
        // The payload is the decoded frame without its version byte and CRC.
        let body = &decoded[1..len - 4];
        recipe.push(0x80 | u8::try_from(body.len()).expect("short"));
        recipe.extend_from_slice(body);
        recipe.push(u8::try_from(text.len()).expect("short"));
        recipe.extend_from_slice(text);
    }
    write("host_stream", "recipe", &recipe);
}
