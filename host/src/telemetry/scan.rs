//! The framings of [`decode_stream`](super::decode_stream), fed in chunks as bytes arrive: a
//! [`FrameScanner`] keeps what it needs between chunks (at most one line of
//! [`MAX_LINE_LEN`] bytes, or one frame of [`MAX_FRAME_LEN`] bytes, in the core's delimiter
//! [`Scanner`]) and hands out each frame or bad candidate as soon as its end is seen.

use rustkernel_core::frame::{Found, Scanner};
use rustkernel_core::telemetry::{
    self, DELIMITER, LINE_PREFIX, MAX_FRAME_LEN, TelemetryError, TelemetryFrame,
};

use super::source::SourceFraming;
use super::{BadFrame, MAX_LINE_LEN, find, unhex};

/// What the scanner found: a frame, or a candidate that was skipped and why.
pub type Scanned = Result<TelemetryFrame, BadFrame>;

/// The most bytes kept while `auto` has not decided yet (the tail of them: a marker cannot
/// hide in what was dropped, and a raw frame is shorter).
const UNDECIDED_KEEP: usize = 4 * MAX_FRAME_LEN;

#[derive(Debug)]
enum Mode {
    /// `auto` before the first marker or zero byte: the bytes seen so far (their tail).
    Undecided(Vec<u8>),
    /// Text lines, split at `\n`.
    Lines(Scanner<Vec<u8>>),
    /// Raw frames, split at `0x00`.
    Raw(Scanner<Vec<u8>>),
}

/// Splits a byte stream that arrives in chunks into telemetry frames.
///
/// Memory is bounded whatever the input: a line longer than [`MAX_LINE_LEN`] is cut (one
/// [`BadFrame::LineTooLong`]), a raw frame longer than [`MAX_FRAME_LEN`] is one
/// [`TelemetryError::TooLong`], and `auto` keeps a few frames' worth of bytes until it decides.
#[derive(Debug)]
pub struct FrameScanner {
    mode: Mode,
}

impl FrameScanner {
    /// A scanner at the start of a stream.
    #[must_use]
    pub fn new(framing: SourceFraming) -> Self {
        let mode = match framing {
            SourceFraming::Auto => Mode::Undecided(Vec::new()),
            SourceFraming::Lines => {
                Mode::Lines(Scanner::with_delimiter(Vec::new(), MAX_LINE_LEN + 1, b'\n'))
            }
            SourceFraming::Raw => Mode::Raw(Scanner::new(Vec::new(), MAX_FRAME_LEN)),
        };
        Self { mode }
    }

    /// The framing in use: `Auto` until it is decided.
    #[must_use]
    pub fn framing(&self) -> SourceFraming {
        match self.mode {
            Mode::Undecided(_) => SourceFraming::Auto,
            Mode::Lines(_) => SourceFraming::Lines,
            Mode::Raw(_) => SourceFraming::Raw,
        }
    }

    /// Feeds the next bytes of the stream; `out` gets every frame or bad candidate they end.
    pub fn push(&mut self, mut bytes: &[u8], out: &mut impl FnMut(Scanned)) {
        let (scanner, lines) = match &mut self.mode {
            Mode::Undecided(pending) => {
                pending.extend_from_slice(bytes);
                let zero = pending.iter().position(|&b| b == DELIMITER);
                let marker = find(pending, LINE_PREFIX.as_bytes());
                let decided = match (marker, zero) {
                    (Some(m), Some(z)) if m < z => Some(SourceFraming::Lines),
                    (Some(_), None) => Some(SourceFraming::Lines),
                    (_, Some(_)) => Some(SourceFraming::Raw),
                    (None, None) => None,
                };
                match decided {
                    Some(framing) => {
                        let pending = std::mem::take(pending);
                        *self = Self::new(framing);
                        self.push(&pending, out);
                    }
                    None if pending.len() > UNDECIDED_KEEP => {
                        let drop = pending.len() - UNDECIDED_KEEP;
                        pending.drain(..drop);
                    }
                    None => {}
                }
                return;
            }
            Mode::Lines(scanner) => (scanner, true),
            Mode::Raw(scanner) => (scanner, false),
        };
        while !bytes.is_empty() {
            let (used, found) = scanner.push(bytes);
            bytes = bytes.get(used..).unwrap_or_default();
            match (found, lines) {
                (None, _) => {}
                (Some(found), true) => scan_line(scanner.frame(), found == Found::TooLong, out),
                (Some(Found::Frame), false) => out(decode(scanner.frame())),
                (Some(Found::TooLong), false) => out(Err(BadFrame::Frame(TelemetryError::TooLong))),
            }
        }
    }

    /// The stream ended: a line without its newline is scanned, a frame without its zero byte
    /// is decoded (and is bad if it was cut short).
    pub fn finish(&mut self, out: &mut impl FnMut(Scanned)) {
        match &mut self.mode {
            Mode::Undecided(pending) => pending.clear(),
            Mode::Lines(scanner) => {
                if let Some(line) = scanner.finish() {
                    scan_line(line, false, out);
                }
            }
            Mode::Raw(scanner) => {
                if let Some(frame) = scanner.finish() {
                    out(decode(frame));
                }
            }
        }
    }
}

fn scan_line(line: &[u8], cut: bool, out: &mut impl FnMut(Scanned)) {
    if cut {
        out(Err(BadFrame::LineTooLong));
    }
    let marker = LINE_PREFIX.as_bytes();
    let mut from = 0;
    while let Some(found) = find(line.get(from..).unwrap_or_default(), marker) {
        let hex_start = from + found + marker.len();
        let rest = line.get(hex_start..).unwrap_or_default();
        let hex_len = rest.iter().take_while(|b| b.is_ascii_hexdigit()).count();
        match unhex(rest.get(..hex_len).unwrap_or_default()) {
            Some(mut bytes) => out(decode(&mut bytes)),
            None => out(Err(BadFrame::Hex)),
        }
        from = hex_start + hex_len;
    }
}

fn decode(bytes: &mut [u8]) -> Scanned {
    if bytes.len() > MAX_FRAME_LEN {
        return Err(BadFrame::Frame(TelemetryError::TooLong));
    }
    telemetry::decode_frame(bytes).map_err(BadFrame::Frame)
}

#[cfg(test)]
#[allow(clippy::indexing_slicing, clippy::panic)] // tests slice what they built, fail by panicking
mod tests {
    use super::*;
    use proptest::prelude::*;
    use rustkernel_core::resilience::HealthStatus;

    fn wire(frame: &TelemetryFrame) -> Vec<u8> {
        let mut buf = [0u8; MAX_FRAME_LEN];
        telemetry::encode_frame(frame, &mut buf)
            .expect("fits")
            .to_vec()
    }

    fn line(frame: &TelemetryFrame) -> Vec<u8> {
        let hex: String = wire(frame).iter().map(|b| format!("{b:02x}")).collect();
        format!("log text {LINE_PREFIX}{hex}\n").into_bytes()
    }

    fn frame(n: u64) -> TelemetryFrame {
        TelemetryFrame::Health {
            component: 0,
            status: HealthStatus::Degraded,
            at_us: n,
        }
    }

    /// Scans `input` cut into chunks of `size` bytes.
    fn scan(framing: SourceFraming, input: &[u8], size: usize) -> (Vec<TelemetryFrame>, usize) {
        let mut scanner = FrameScanner::new(framing);
        let mut frames = Vec::new();
        let mut bad = 0;
        let mut out = |item: Scanned| match item {
            Ok(frame) => frames.push(frame),
            Err(_) => bad += 1,
        };
        for chunk in input.chunks(size.max(1)) {
            scanner.push(chunk, &mut out);
        }
        scanner.finish(&mut out);
        (frames, bad)
    }

    #[test]
    fn auto_detects_lines_and_raw_in_any_chunking() {
        let mut lines = b"booting\n".to_vec();
        let mut raw = vec![0, 0];
        for n in 0..5 {
            lines.extend(line(&frame(n)));
            raw.extend(wire(&frame(n)));
        }
        let expected: Vec<_> = (0..5).map(frame).collect();
        for size in [1, 2, 3, 7, 64, 4096] {
            assert_eq!(
                scan(SourceFraming::Auto, &lines, size),
                (expected.clone(), 0),
                "lines, chunks of {size}"
            );
            assert_eq!(
                scan(SourceFraming::Auto, &raw, size),
                (expected.clone(), 0),
                "raw, chunks of {size}"
            );
        }
        let mut scanner = FrameScanner::new(SourceFraming::Auto);
        scanner.push(b"no marker yet", &mut |_| {});
        assert_eq!(scanner.framing(), SourceFraming::Auto);
        scanner.push(&line(&frame(1)), &mut |_| {});
        assert_eq!(scanner.framing(), SourceFraming::Lines);
    }

    #[test]
    fn cut_streams_and_long_lines_are_bad_frames_and_scanning_goes_on() {
        let mut input = line(&frame(1));
        input.truncate(input.len() - 10); // cut mid-frame, then a newline
        input.push(b'\n');
        input.extend(vec![b'x'; MAX_LINE_LEN * 2]);
        input.push(b'\n');
        input.extend(line(&frame(2)));
        let (frames, bad) = scan(SourceFraming::Lines, &input, 1000);
        assert_eq!((frames, bad), (vec![frame(2)], 2));

        let mut raw = vec![0x55; MAX_FRAME_LEN * 10];
        raw.push(0);
        raw.extend(wire(&frame(3)));
        raw.extend(&wire(&frame(4))[..6]); // the stream ends mid-frame
        let (frames, bad) = scan(SourceFraming::Raw, &raw, 33);
        assert_eq!((frames, bad), (vec![frame(3)], 2));
    }

    #[test]
    fn undecided_memory_stays_bounded() {
        let mut scanner = FrameScanner::new(SourceFraming::Auto);
        for _ in 0..1000 {
            scanner.push(&[b'a'; 1024], &mut |_| {});
            match &scanner.mode {
                Mode::Undecided(pending) => assert!(pending.len() <= UNDECIDED_KEEP),
                other => panic!("decided on text without a marker: {other:?}"),
            }
        }
    }

    proptest! {
        /// Garbage around and between good frames: every good frame whose bytes survived is
        /// still found, nothing panics, and what is kept stays bounded.
        #[test]
        fn garbage_never_panics_and_good_frames_survive(
            garbage in proptest::collection::vec(any::<u8>(), 0..600),
            cut in 1usize..300,
            framing in prop_oneof![
                Just(SourceFraming::Auto),
                Just(SourceFraming::Lines),
                Just(SourceFraming::Raw),
            ],
        ) {
            // Garbage alone, in any chunking.
            let _ = scan(framing, &garbage, cut);
            // Garbage, a line break / zero byte that ends it, then a good frame.
            let mut lines = garbage.clone();
            lines.push(b'\n');
            lines.extend(line(&frame(9)));
            let (frames, _) = scan(SourceFraming::Lines, &lines, cut);
            prop_assert_eq!(frames.last(), Some(&frame(9)));
            let mut raw = garbage.clone();
            raw.push(0);
            raw.extend(wire(&frame(9)));
            let (frames, _) = scan(SourceFraming::Raw, &raw, cut);
            prop_assert_eq!(frames.last(), Some(&frame(9)));
        }
    }
}
