//! `rustkernel telemetry decode`: finds telemetry frames in a byte stream and prints them.
//!
//! # Framing
//! The frames themselves are the core's wire format (see `rustkernel_core::telemetry`): postcard,
//! a CRC-32C and COBS, each frame ended by `0x00`. Two carriers are read:
//!
//! - [`Framing::Lines`] (the default): a text stream, such as the firmware's semihosting output
//!   or a console UART, where people's log lines and frames mix. Each frame is the marker
//!   `@RK ` followed by the encoded frame in hex; everything else is ignored. The marker is
//!   searched anywhere in a line, so a frame survives text that lacked its newline.
//! - [`Framing::Raw`]: a binary stream of encoded frames back to back (a UART dedicated to
//!   telemetry); it is split at each `0x00`.
//!
//! Both are split by the core's delimiter scanner ([`rustkernel_core::frame::Scanner`]), at
//! `\n` or at `0x00`, which keeps at most one line or one frame in memory.
//!
//! Every candidate frame is decoded on its own: a bad one (corrupted, cut, of another version)
//! is reported with its byte offset in the stream and skipped, and decoding goes on.
//!
//! The service side, `rustkernel serve --telemetry SOURCE`, is in [`ingest`] (what it does with
//! the frames), [`scan`] (the same framings, fed in chunks as they arrive) and [`source`]
//! (where it reads them from).

pub mod ingest;
pub mod scan;
pub mod source;

use std::collections::HashMap;
use std::fmt;
use std::io::{self, BufRead, Write};

use clap::ValueEnum;
use rustkernel_core::frame::{Found, Scanner};
use rustkernel_core::telemetry::{
    self, JobOutcome, LINE_PREFIX, MAX_FRAME_LEN, Summary, TelemetryError, TelemetryFrame,
};

/// How frames are carried in the input.
#[derive(Clone, Copy, Debug, PartialEq, Eq, ValueEnum)]
pub enum Framing {
    /// Text lines; frames are `@RK <hex>` (the firmware's semihosting output).
    Lines,
    /// Raw COBS frames, each ended by a zero byte.
    Raw,
}

/// How decoded frames are printed.
#[derive(Clone, Copy, Debug, PartialEq, Eq, ValueEnum)]
pub enum Format {
    /// One line per frame, for people.
    Text,
    /// One JSON object per line: `{"offset":..,"kind":..,"frame":{..}}`.
    Json,
}

/// What a decoding run saw.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct DecodeStats {
    /// Frames decoded and printed.
    pub frames: u64,
    /// Candidate frames that could not be decoded (reported on the error stream).
    pub bad: u64,
}

/// Why a candidate frame was skipped.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum BadFrame {
    /// The hex after the marker is empty or has an odd number of digits.
    Hex,
    /// The bytes are not a valid frame.
    Frame(TelemetryError),
    /// A line longer than [`MAX_LINE_LEN`]: its tail was skipped unread.
    LineTooLong,
}

/// The longest text line kept in memory; the rest of a longer line is skipped (and reported), so
/// a stream without newlines cannot exhaust memory.
pub const MAX_LINE_LEN: usize = 64 * 1024;

impl fmt::Display for BadFrame {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            BadFrame::Hex => {
                f.write_str("no frame after the marker, or an odd number of hex digits")
            }
            BadFrame::Frame(error) => write!(f, "{error}"),
            BadFrame::LineTooLong => write!(
                f,
                "line longer than {MAX_LINE_LEN} bytes; the rest of it was skipped"
            ),
        }
    }
}

/// Why decoding stopped early.
#[derive(Debug)]
pub enum DecodeError {
    /// Reading the input failed.
    Read(io::Error),
    /// Writing the output failed (a closed pipe is not an error: decoding just stops).
    Write(io::Error),
}

impl fmt::Display for DecodeError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            DecodeError::Read(error) => write!(f, "reading the input: {error}"),
            DecodeError::Write(error) => write!(f, "writing the output: {error}"),
        }
    }
}

impl std::error::Error for DecodeError {}

/// Decodes every frame in `input`, printing frames to `out` and bad frames to `err`.
///
/// # Errors
/// [`DecodeError::Read`] when the input cannot be read, [`DecodeError::Write`] when the output
/// cannot be written (but a broken pipe ends decoding quietly, with `Ok`).
pub fn decode_stream<R: BufRead, W: Write, E: Write>(
    input: R,
    framing: Framing,
    format: Format,
    out: &mut W,
    err: &mut E,
) -> Result<DecodeStats, DecodeError> {
    let mut printer = Printer {
        format,
        names: HashMap::new(),
        stats: DecodeStats::default(),
        out,
        err,
    };
    let result = match framing {
        Framing::Lines => scan_lines(input, &mut printer),
        Framing::Raw => scan_raw(input, &mut printer),
    };
    match result {
        Ok(()) => Ok(printer.stats),
        Err(DecodeError::Write(error)) if error.kind() == io::ErrorKind::BrokenPipe => {
            Ok(printer.stats)
        }
        Err(error) => Err(error),
    }
}

fn scan_lines<R: BufRead, W: Write, E: Write>(
    mut input: R,
    printer: &mut Printer<'_, W, E>,
) -> Result<(), DecodeError> {
    let marker = LINE_PREFIX.as_bytes();
    let mut lines = Scanner::with_delimiter(Vec::new(), MAX_LINE_LEN + 1, b'\n');
    loop {
        let found = lines.read_blocking(&mut input).map_err(DecodeError::Read)?;
        let line_start = lines.frame_offset();
        let line: &[u8] = match found {
            Some(Found::Frame) => lines.frame(),
            Some(Found::TooLong) => {
                printer.bad(line_start + MAX_LINE_LEN as u64, BadFrame::LineTooLong)?;
                lines.frame()
            }
            // The stream ended; the last line may lack its newline.
            None => match lines.finish() {
                Some(line) => line,
                None => return Ok(()),
            },
        };
        let mut from = 0;
        while let Some(found) = find(line.get(from..).unwrap_or_default(), marker) {
            let at = from + found;
            let hex_start = at + marker.len();
            let rest = line.get(hex_start..).unwrap_or_default();
            let hex_len = rest.iter().take_while(|b| b.is_ascii_hexdigit()).count();
            let offset = line_start + at as u64;
            let candidate = rest.get(..hex_len).unwrap_or_default();
            match unhex(candidate) {
                Some(mut bytes) => printer.decode(offset, &mut bytes)?,
                None => printer.bad(offset, BadFrame::Hex)?,
            }
            from = hex_start + hex_len;
        }
    }
}

fn scan_raw<R: BufRead, W: Write, E: Write>(
    mut input: R,
    printer: &mut Printer<'_, W, E>,
) -> Result<(), DecodeError> {
    // Delimiters in a row are an idle line, not frames: the scanner skips them.
    let mut frames = Scanner::new(Vec::new(), MAX_FRAME_LEN);
    loop {
        let found = frames
            .read_blocking(&mut input)
            .map_err(DecodeError::Read)?;
        let offset = frames.frame_offset();
        match found {
            Some(Found::Frame) => printer.decode(offset, frames.frame())?,
            Some(Found::TooLong) => {
                printer.bad(offset, BadFrame::Frame(TelemetryError::TooLong))?;
            }
            // The stream ended; the last frame may lack its delimiter.
            None => {
                if let Some(frame) = frames.finish() {
                    printer.decode(offset, frame)?;
                }
                return Ok(());
            }
        }
    }
}

pub(crate) fn find(haystack: &[u8], needle: &[u8]) -> Option<usize> {
    haystack
        .windows(needle.len())
        .position(|window| window == needle)
}

pub(crate) fn unhex(hex: &[u8]) -> Option<Vec<u8>> {
    if hex.is_empty() || !hex.len().is_multiple_of(2) {
        return None;
    }
    hex.chunks_exact(2)
        .map(|pair| {
            let text = std::str::from_utf8(pair).ok()?;
            u8::from_str_radix(text, 16).ok()
        })
        .collect()
}

struct Printer<'a, W, E> {
    format: Format,
    names: HashMap<u8, String>,
    stats: DecodeStats,
    out: &'a mut W,
    err: &'a mut E,
}

impl<W: Write, E: Write> Printer<'_, W, E> {
    fn decode(&mut self, offset: u64, bytes: &mut [u8]) -> Result<(), DecodeError> {
        if bytes.len() > MAX_FRAME_LEN {
            return self.bad(offset, BadFrame::Frame(TelemetryError::TooLong));
        }
        match telemetry::decode_frame(bytes) {
            Ok(frame) => self.frame(offset, &frame),
            Err(error) => self.bad(offset, BadFrame::Frame(error)),
        }
    }

    fn bad(&mut self, offset: u64, why: BadFrame) -> Result<(), DecodeError> {
        self.stats.bad += 1;
        writeln!(
            self.err,
            "rustkernel: bad frame at offset {offset}: {why} (skipped)"
        )
        .map_err(DecodeError::Write)
    }

    fn frame(&mut self, offset: u64, frame: &TelemetryFrame) -> Result<(), DecodeError> {
        self.stats.frames += 1;
        if let TelemetryFrame::Component { id, name } = frame {
            self.names.insert(*id, name.as_str().to_owned());
        }
        let line = match self.format {
            Format::Text => self.text(frame),
            Format::Json => self.json(offset, frame),
        };
        writeln!(self.out, "{line}").map_err(DecodeError::Write)
    }

    fn name(&self, component: u8) -> String {
        self.names
            .get(&component)
            .cloned()
            .unwrap_or_else(|| format!("#{component}"))
    }

    fn json(&self, offset: u64, frame: &TelemetryFrame) -> String {
        let component = match frame {
            TelemetryFrame::Health { component, .. }
            | TelemetryFrame::Breaker { component, .. }
            | TelemetryFrame::Recovery { component, .. } => Some(self.name(*component)),
            _ => None,
        };
        let mut object = serde_json::Map::new();
        object.insert("offset".into(), offset.into());
        object.insert("kind".into(), frame.kind().into());
        if let Some(name) = component {
            object.insert("component".into(), name.into());
        }
        let value = serde_json::to_value(frame).unwrap_or(serde_json::Value::Null);
        object.insert("frame".into(), value);
        serde_json::Value::Object(object).to_string()
    }

    /// A component's name for the text output, control characters escaped.
    fn text_name(&self, component: u8) -> String {
        escape_controls(&self.name(component))
    }

    fn text(&self, frame: &TelemetryFrame) -> String {
        let (at_us, body) = match frame {
            TelemetryFrame::Hello {
                version,
                device,
                at_us,
            } => (
                Some(*at_us),
                format!("version={version} device={device:#010x}"),
            ),
            TelemetryFrame::Component { id, name } => {
                (None, format!("#{id} = {}", escape_controls(name)))
            }
            TelemetryFrame::Health {
                component,
                status,
                at_us,
            } => (
                Some(*at_us),
                format!("{}: {status}", self.text_name(*component)),
            ),
            TelemetryFrame::Breaker {
                component,
                transition,
                counts,
                at_us,
            } => (
                Some(*at_us),
                format!(
                    "{}: {transition} (successes={} failures={} rejected={} streak={})",
                    self.text_name(*component),
                    counts.successes,
                    counts.failures,
                    counts.rejected,
                    counts.consecutive_failures
                ),
            ),
            TelemetryFrame::Recovery {
                component,
                action,
                at_us,
            } => (
                Some(*at_us),
                format!("{}: {action}", self.text_name(*component)),
            ),
            TelemetryFrame::Job {
                id,
                outcome,
                attempts,
                at_us,
            } => {
                let outcome = match outcome {
                    JobOutcome::Done => "done".to_owned(),
                    JobOutcome::Fallback => "fallback".to_owned(),
                    JobOutcome::Failed(kind) => format!("failed ({kind})"),
                };
                (
                    Some(*at_us),
                    format!("#{id} {outcome}, attempts={attempts}"),
                )
            }
            TelemetryFrame::Summary(summary) => (Some(summary.at_us), summary_text(summary)),
        };
        let time = at_us.map_or_else(String::new, |us| {
            format!("{}.{:06}s", us / 1_000_000, us % 1_000_000)
        });
        format!("{time:>12} {:<9} {body}", frame.kind())
    }
}

/// `text` with its control characters escaped as Rust does (`\n`, `\u{1b}`): names come from
/// the device, and a line break or a terminal escape in one must not break the one line a frame
/// prints, nor act on the terminal.
fn escape_controls(text: &str) -> String {
    text.chars()
        .map(|c| {
            if c.is_control() {
                c.escape_debug().to_string()
            } else {
                c.to_string()
            }
        })
        .collect()
}

fn summary_text(s: &Summary) -> String {
    let escalated = s
        .escalated_to
        .map_or_else(|| "none".to_owned(), |strategy| strategy.to_string());
    format!(
        "jobs_ok={} fallbacks={} jobs_failed={} retries={} breaker_opens={} half_open_probes={} \
         breaker_closes={} rejected={} health_changes={} restarts={} escalations={} escalated_to={escalated}",
        s.jobs_ok,
        s.fallbacks,
        s.jobs_failed,
        s.retries,
        s.breaker_opens,
        s.half_open_probes,
        s.breaker_closes,
        s.rejected,
        s.health_changes,
        s.restarts,
        s.escalations,
    )
}

#[cfg(test)]
#[allow(clippy::indexing_slicing)] // tests slice what they built
mod tests {
    use super::*;
    use rustkernel_core::resilience::HealthStatus;
    use rustkernel_core::telemetry::DELIMITER;

    fn wire(frame: &TelemetryFrame) -> Vec<u8> {
        let mut buf = [0u8; MAX_FRAME_LEN];
        telemetry::encode_frame(frame, &mut buf)
            .expect("fits")
            .to_vec()
    }

    fn line(frame: &TelemetryFrame) -> String {
        let hex: String = wire(frame).iter().map(|b| format!("{b:02x}")).collect();
        format!("{LINE_PREFIX}{hex}\n")
    }

    fn run(input: &[u8], framing: Framing, format: Format) -> (String, String, DecodeStats) {
        let mut out = Vec::new();
        let mut err = Vec::new();
        let stats = decode_stream(input, framing, format, &mut out, &mut err).expect("decodes");
        (
            String::from_utf8(out).expect("utf-8"),
            String::from_utf8(err).expect("utf-8"),
            stats,
        )
    }

    const HEALTH: TelemetryFrame = TelemetryFrame::Health {
        component: 0,
        status: HealthStatus::Unhealthy,
        at_us: 1_234_567,
    };

    #[test]
    fn lines_mix_with_text_and_markers_inside_lines() {
        let input = format!(
            "booting\n{}log without newline{}tail\n",
            line(&HEALTH),
            line(&HEALTH).trim_end()
        );
        let (out, err, stats) = run(input.as_bytes(), Framing::Lines, Format::Text);
        assert_eq!(stats, DecodeStats { frames: 2, bad: 0 }, "{err}");
        assert_eq!(out.lines().count(), 2);
        assert!(
            out.starts_with("   1.234567s health    #0: unhealthy"),
            "{out}"
        );
    }

    #[test]
    fn bad_hex_is_reported_with_its_offset() {
        let input = format!("ab\n@RK 123\n@RK \n{}", line(&HEALTH));
        let (out, err, stats) = run(input.as_bytes(), Framing::Lines, Format::Json);
        assert_eq!(stats, DecodeStats { frames: 1, bad: 2 });
        assert!(err.contains("offset 3:"), "{err}");
        assert!(err.contains("offset 11:"), "{err}");
        assert!(out.contains(r#""kind":"health""#), "{out}");
        assert!(out.contains(r#""offset":16"#), "{out}");
    }

    #[test]
    fn raw_frames_split_at_zero_and_idle_zeros_are_skipped() {
        let mut input = vec![0, 0];
        input.extend(wire(&HEALTH));
        input.extend([0x55, 0x66, 0x00, 0x00]);
        input.extend(wire(&HEALTH));
        input.extend(&wire(&HEALTH)[..5]); // cut at the end of the stream
        let (out, err, stats) = run(&input, Framing::Raw, Format::Text);
        assert_eq!(stats, DecodeStats { frames: 2, bad: 2 }, "{err}");
        assert_eq!(out.lines().count(), 2);
    }

    #[test]
    fn an_endless_line_is_cut_and_reported_and_later_frames_still_decode() {
        let mut input = vec![b'a'; MAX_LINE_LEN * 3];
        input.push(b'\n');
        input.extend_from_slice(line(&HEALTH).as_bytes());
        let (out, err, stats) = run(&input, Framing::Lines, Format::Text);
        assert_eq!(stats, DecodeStats { frames: 1, bad: 1 }, "{err}");
        assert!(err.contains("line longer than"), "{err}");
        assert_eq!(out.lines().count(), 1);
        // A line of exactly the limit is not cut.
        let mut input = vec![b'a'; MAX_LINE_LEN];
        input.push(b'\n');
        assert_eq!(
            run(&input, Framing::Lines, Format::Text).2,
            DecodeStats { frames: 0, bad: 0 }
        );
    }

    #[test]
    fn an_endless_raw_chunk_is_one_too_long_frame() {
        let mut input = vec![0x55; MAX_FRAME_LEN * 100];
        input.push(DELIMITER);
        input.extend_from_slice(&wire(&HEALTH));
        let (out, err, stats) = run(&input, Framing::Raw, Format::Text);
        assert_eq!(stats, DecodeStats { frames: 1, bad: 1 }, "{err}");
        assert_eq!(out.lines().count(), 1);
    }

    /// What the firmware sent at each wire version (tests/golden/telemetry/): every frame
    /// decodes, from the log and from the raw bytes alike.
    #[test]
    fn golden_recordings_of_every_version_decode() {
        let recordings: [(&[u8], &[u8]); 2] = [
            (
                include_bytes!("../../tests/golden/telemetry/v1/run.log"),
                include_bytes!("../../tests/golden/telemetry/v1/frames.bin"),
            ),
            (
                include_bytes!("../../tests/golden/telemetry/v2/run.log"),
                include_bytes!("../../tests/golden/telemetry/v2/frames.bin"),
            ),
        ];
        for (log, bin) in recordings {
            let (lines, err, stats) = run(log, Framing::Lines, Format::Json);
            assert_eq!(stats, DecodeStats { frames: 67, bad: 0 }, "{err}");
            let (raw, err, stats) = run(bin, Framing::Raw, Format::Json);
            assert_eq!(stats, DecodeStats { frames: 67, bad: 0 }, "{err}");
            // The same frames, at their own offsets.
            let frames = |out: &str| -> Vec<serde_json::Value> {
                out.lines()
                    .map(|line| serde_json::from_str::<serde_json::Value>(line).expect("json"))
                    .map(|value| value["frame"].clone())
                    .collect()
            };
            assert_eq!(frames(&lines), frames(&raw));
        }
    }

    #[test]
    fn names_from_component_frames_are_used() {
        let mut name = rustkernel_core::resilience::health::ComponentName::new();
        name.push_str("npu").expect("fits");
        let input = format!(
            "{}{}",
            line(&TelemetryFrame::Component { id: 0, name }),
            line(&HEALTH)
        );
        let (out, _, _) = run(input.as_bytes(), Framing::Lines, Format::Json);
        assert!(out.contains(r#""component":"npu""#), "{out}");
        let (out, _, _) = run(input.as_bytes(), Framing::Lines, Format::Text);
        assert!(out.contains("npu: unhealthy"), "{out}");
    }

    /// Found by the `host_stream` fuzz target: a component name is the device's text, and a
    /// newline in it printed as a line break, so one frame became several output lines (a
    /// device could forge frames in the text output, or send terminal escapes).
    #[test]
    fn control_characters_in_names_are_escaped_in_text_output() {
        let mut name = rustkernel_core::resilience::health::ComponentName::new();
        name.push_str("np\nu\n   9.999999s fake\u{1b}[2J")
            .expect("fits");
        let input = format!(
            "{}{}",
            line(&TelemetryFrame::Component { id: 0, name }),
            line(&HEALTH)
        );
        let (out, _, stats) = run(input.as_bytes(), Framing::Lines, Format::Text);
        assert_eq!(stats.frames, 2);
        assert_eq!(out.lines().count(), 2, "{out}");
        assert!(
            out.contains(r"#0 = np\nu\n   9.999999s fake\u{1b}[2J"),
            "{out}"
        );
        assert!(
            out.contains(r"np\nu\n   9.999999s fake\u{1b}[2J: unhealthy"),
            "{out}"
        );
        assert!(!out.contains('\u{1b}'), "{out}");
        // JSON escapes by itself and keeps the name as sent.
        let (out, _, _) = run(input.as_bytes(), Framing::Lines, Format::Json);
        assert_eq!(out.lines().count(), 2, "{out}");
        assert!(
            out.contains(r#""component":"np\nu\n   9.999999s fake\u001b[2J""#),
            "{out}"
        );
    }
}
