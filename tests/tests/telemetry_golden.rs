//! Golden telemetry: frames the firmware sent at each wire version it has shipped
//! (`tests/golden/telemetry/`, README there), decoded with today's decoder and checked value by
//! value; the newest version's frames are what today's encoder writes, byte for byte. Every
//! recorded version is read (the directories, not a list here, say which), so a change to the
//! frame types that breaks reading any of them fails here; and a hello laid out as the recorded
//! ones reads at any newer version, so a device newer than the host is still seen.
//!
//! The expected values (`frames.jsonl`) were written by the decoder of the commit that made the
//! recording, and are themselves checked against the firmware's own log lines (health and breaker
//! changes, failed jobs, the closing summary), so a decoder that misreads a field fails here.
#![allow(clippy::indexing_slicing, clippy::unwrap_used, clippy::panic)] // tests index what they built, fail loudly

use std::path::PathBuf;

use rustkernel_core::frame::{self, Found, Scanner};
use rustkernel_core::telemetry::{
    self, DELIMITER, JobOutcome, LINE_PREFIX, MAX_FRAME_LEN, TelemetryFrame,
};

/// One recorded run of the firmware at one wire version.
struct Recording {
    version: u8,
    /// The firmware's whole output: log lines for people and `@RK` frame lines.
    log: String,
    /// The frames' bytes, each with its delimiter.
    frames: Vec<Vec<u8>>,
    /// What each frame holds, as the decoder of its time read it.
    expected: Vec<TelemetryFrame>,
}

fn golden_dir() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("golden/telemetry")
}

/// The versions recorded (the directories `v1`, `v2`, ...), oldest first.
fn recorded_versions() -> Vec<u8> {
    let mut versions: Vec<u8> = std::fs::read_dir(golden_dir())
        .unwrap()
        .filter_map(|entry| {
            let name = entry.ok()?.file_name();
            name.to_str()?.strip_prefix('v')?.parse().ok()
        })
        .collect();
    versions.sort_unstable();
    versions
}

fn recording(version: u8) -> Recording {
    let dir = golden_dir().join(format!("v{version}"));
    let read = |name: &str| std::fs::read(dir.join(name)).unwrap();
    let log = String::from_utf8(read("run.log")).unwrap();
    let bin = read("frames.bin");
    let frames: Vec<Vec<u8>> = bin
        .split_inclusive(|&b| b == DELIMITER)
        .map(<[u8]>::to_vec)
        .collect();
    let expected = String::from_utf8(read("frames.jsonl"))
        .unwrap()
        .lines()
        .map(|line| serde_json::from_str(line).unwrap())
        .collect();

    // frames.bin is exactly the log's frame lines, hex-decoded.
    let from_log: Vec<u8> = log
        .lines()
        .filter_map(|line| line.strip_prefix(LINE_PREFIX))
        .flat_map(|hex| {
            (0..hex.len())
                .step_by(2)
                .map(|i| u8::from_str_radix(&hex[i..i + 2], 16).unwrap())
                .collect::<Vec<_>>()
        })
        .collect();
    assert_eq!(from_log, bin, "v{version}: frames.bin is the log's frames");

    Recording {
        version,
        log,
        frames,
        expected,
    }
}

/// The text after the timestamp of each log line that starts with `what`.
fn log_lines<'a>(log: &'a str, what: &str) -> Vec<&'a str> {
    log.lines()
        .filter_map(|line| line.split_once("] "))
        .filter_map(|(_, text)| text.strip_prefix(what))
        .map(str::trim)
        .collect()
}

/// A unit variant's name as serde writes it (`"healthy"`, `"timeout"`).
fn json_name(value: serde_json::Value) -> String {
    value.as_str().unwrap().to_owned()
}

/// The expected values agree with what the firmware logged for people at the same moments.
fn check_against_the_log(rec: &Recording) {
    let v = rec.version;
    assert_eq!(rec.frames.len(), 67, "v{v}: frames recorded");
    assert_eq!(
        rec.expected.len(),
        rec.frames.len(),
        "v{v}: one value per frame"
    );
    assert!(
        matches!(rec.expected[0], TelemetryFrame::Hello { version, .. } if version == v),
        "v{v}: {:?}",
        rec.expected[0]
    );

    let health: Vec<String> = rec
        .expected
        .iter()
        .filter_map(|frame| match frame {
            TelemetryFrame::Health { status, .. } => Some(json_name(serde_json::json!(status))),
            _ => None,
        })
        .collect();
    let logged: Vec<&str> = log_lines(&rec.log, "health")
        .into_iter()
        .map(|text| text.rsplit(' ').next().unwrap())
        .collect();
    assert_eq!(health, logged, "v{v}: health changes");

    let breaker: Vec<String> = rec
        .expected
        .iter()
        .filter_map(|frame| match frame {
            TelemetryFrame::Breaker { transition, .. } => {
                Some(format!("{} -> {}", transition.from, transition.to))
            }
            _ => None,
        })
        .collect();
    let logged: Vec<&str> = log_lines(&rec.log, "breaker")
        .into_iter()
        .map(|text| text.split(" (").next().unwrap())
        .collect();
    assert_eq!(breaker, logged, "v{v}: breaker transitions");

    let failed: Vec<String> = rec
        .expected
        .iter()
        .filter_map(|frame| match frame {
            TelemetryFrame::Job {
                id,
                outcome: JobOutcome::Failed(kind),
                ..
            } => Some(format!(
                "#{id} failed: {}",
                json_name(serde_json::json!(kind))
            )),
            _ => None,
        })
        .collect();
    assert_eq!(failed, log_lines(&rec.log, "job"), "v{v}: failed jobs");

    let Some(TelemetryFrame::Summary(summary)) = rec.expected.last() else {
        panic!("v{v}: the last frame is the summary");
    };
    let done = format!(
        "{} jobs on the accelerator, {} on the MCU, {} failed, {} restarts",
        summary.jobs_ok, summary.fallbacks, summary.jobs_failed, summary.restarts
    );
    assert_eq!(
        log_lines(&rec.log, "done:"),
        [done.as_str()],
        "v{v}: summary"
    );
}

#[test]
fn version_1_recording_matches_its_log() {
    let rec = recording(1);
    check_against_the_log(&rec);
    // Version 1 breaker transitions carry no trip.
    assert!(rec.expected.iter().all(|frame| !matches!(
        frame,
        TelemetryFrame::Breaker { transition, .. } if transition.trip.is_some()
    )));
}

#[test]
fn version_2_recording_matches_its_log() {
    let rec = recording(2);
    check_against_the_log(&rec);
    let trips = rec
        .expected
        .iter()
        .filter(|frame| {
            matches!(frame, TelemetryFrame::Breaker { transition, .. } if transition.trip.is_some())
        })
        .count();
    assert_eq!(trips, 2, "both openings say why");
}

#[test]
fn every_version_ever_shipped_is_read() {
    assert_eq!(recorded_versions(), [1, 2]);
    // Each recorded version is read, and none that was not recorded; the newest is written.
    assert_eq!(telemetry::READ_VERSIONS, recorded_versions());
    assert_eq!(telemetry::READ_VERSIONS.last(), Some(&telemetry::VERSION));
}

#[test]
fn frames_of_every_version_decode_to_their_values() {
    for version in recorded_versions() {
        let rec = recording(version);
        for (bytes, expected) in rec.frames.iter().zip(&rec.expected) {
            let mut bytes = bytes.clone();
            assert_eq!(
                telemetry::decode_frame(&mut bytes).as_ref(),
                Ok(expected),
                "v{version}"
            );
        }
    }
}

#[test]
fn the_scanner_splits_the_raw_streams_into_the_recorded_frames() {
    for version in recorded_versions() {
        let rec = recording(version);
        let stream = rec.frames.concat();
        for piece in [1, 3, 64, stream.len()] {
            let mut scanner = Scanner::new(Vec::new(), MAX_FRAME_LEN);
            let mut decoded = Vec::new();
            for mut chunk in stream.chunks(piece) {
                while !chunk.is_empty() {
                    let (used, found) = scanner.push(chunk);
                    chunk = &chunk[used..];
                    if let Some(found) = found {
                        assert_eq!(found, Found::Frame);
                        decoded.push(telemetry::decode_frame(scanner.frame()).unwrap());
                    }
                }
            }
            assert_eq!(scanner.finish(), None);
            assert_eq!(decoded, rec.expected, "v{version}, pieces of {piece}");
        }
    }
}

#[test]
fn todays_encoder_writes_the_version_2_bytes() {
    let rec = recording(telemetry::VERSION);
    for (bytes, value) in rec.frames.iter().zip(&rec.expected) {
        let mut buf = [0u8; MAX_FRAME_LEN];
        let wire = telemetry::encode_frame(value, &mut buf).unwrap();
        assert_eq!(wire, &bytes[..], "{value:?}");
    }
}

/// The hello's layout is frozen: every recorded hello is variant 0, the version, the device and
/// the start time, nothing else; laid out so (with or without fields added after them) at any
/// version newer than the host's it still reads, and the device's other frames of that version
/// are refused as such.
#[test]
fn a_hello_laid_out_as_the_recorded_ones_reads_at_any_newer_version() {
    for version in recorded_versions() {
        let rec = recording(version);
        let mut hello = rec.frames[0].clone();
        let opened = frame::open(&mut hello, &[version]).unwrap();
        let ((variant, said, device, at_us), rest) =
            postcard::take_from_bytes::<(u32, u8, u32, u64)>(opened.payload).unwrap();
        assert_eq!((variant, said, rest), (0, version, &[][..]), "v{version}");
        assert_eq!(
            rec.expected[0],
            TelemetryFrame::Hello {
                version,
                device,
                at_us
            }
        );

        for newer in [telemetry::VERSION + 1, u8::MAX] {
            let expected = TelemetryFrame::Hello {
                version: newer,
                device,
                at_us,
            };
            let mut buf = [0u8; MAX_FRAME_LEN];
            let mut wire = frame::encode(newer, &(0u32, newer, device, at_us), &mut buf)
                .unwrap()
                .to_vec();
            assert_eq!(telemetry::decode_frame(&mut wire), Ok(expected.clone()));
            let later = (0u32, newer, device, at_us, 7u16, "a field added later");
            let mut wire = frame::encode(newer, &later, &mut buf).unwrap().to_vec();
            assert_eq!(telemetry::decode_frame(&mut wire), Ok(expected));
            for other in &rec.expected[1..] {
                let mut wire = frame::encode(newer, other, &mut buf).unwrap().to_vec();
                assert_eq!(
                    telemetry::decode_frame(&mut wire),
                    Err(telemetry::TelemetryError::UnsupportedVersion(newer)),
                    "{other:?}"
                );
            }
        }
    }
}
