//! The frames between the service and its GPU worker, on the worker's stdin and stdout.
//!
//! # Wire format (version [`PROTOCOL_VERSION`])
//! ```text
//! COBS( version:u8 | postcard(frame) | crc32c:u32 little-endian ) 0x00
//! ```
//! The project's one frame format, written and read by the core's codec
//! ([`rustkernel_core::frame`]: one encoder, one strict decoder, one delimiter scanner whose
//! blocking and async drivers [`read_frame_blocking`] and [`read_frame`] wrap). A frame of
//! another version is refused with [`DecodeError::UnsupportedVersion`] instead of being
//! misread; the worker and the service are built together, so each speaks only its own.
//!
//! Version 2 added the CRC (version 1 had none, the bytes travel over a local pipe): a worker
//! whose memory is corrupted may write bytes that are valid COBS and valid postcard, and the
//! CRC catches them as surely as it catches a flipped bit on a firmware's UART; the pool kills a
//! worker that writes a bad frame.
//!
//! The service sends [`HostFrame`]s: requests with an id and the deadline that remains
//! (relative, in microseconds, since the two processes' clocks are not compared). The worker
//! sends [`WorkerFrame`]s: one [`WorkerFrame::Hello`] once it is ready (or knows it cannot
//! be), a [`WorkerFrame::Heartbeat`] every interval, and one [`WorkerFrame::Reply`] per
//! request, carrying the result or a classified [`WireError`].
//!
//! Decoding never panics: bad bytes are a [`ProtocolError`].

use std::fmt;
use std::io::{self, BufRead};

use rustkernel_core::error::{Classify, ErrorKind};
use rustkernel_core::frame::{self, DecodeError, EncodeError, Found, Scanner};
use rustkernel_core::resilience::WireDeadline;
use serde::de::DeserializeOwned;
use serde::{Deserialize, Serialize};

use crate::kernels::{KernelRequest, KernelResponse};

/// The protocol version this crate writes and reads; the first byte of every decoded frame.
/// Version 2 added the CRC.
pub const PROTOCOL_VERSION: u8 = 2;

/// Ends every frame; it appears nowhere else in one.
pub const DELIMITER: u8 = frame::DELIMITER;

/// The longest encoded frame a reader accepts, delimiter included: room for the largest
/// matmul request (two 8192 x 8192 `f64` matrices, 1 GiB) and its COBS overhead. A stream
/// that runs longer without a delimiter is [`ProtocolError::TooLong`].
pub const MAX_FRAME_LEN: usize = 1_300 * 1024 * 1024;

/// What the service sends to the worker.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub enum HostFrame {
    /// Run a kernel and reply with the same `id`.
    Request {
        /// Chosen by the service; echoed in the reply.
        id: u64,
        /// Time left until the caller's deadline when the frame was written (the core's
        /// relative wire deadline, as gRPC sends it; the same bytes as its microseconds).
        deadline: WireDeadline,
        /// The validated request.
        request: KernelRequest,
    },
    /// Finish the current request, then exit with status 0.
    Shutdown,
}

/// Whether the worker's backend came up.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub enum BackendStatus {
    /// Ready to run kernels.
    Ready {
        /// The backend (`"cpu"` or `"cuda"`).
        backend: String,
        /// The device it runs on, for logs and health messages.
        device: String,
    },
    /// The backend cannot run kernels here; the worker exits after saying so.
    Unavailable {
        /// Why, for the health message (`"no device"`, `"no PTX"`).
        reason: String,
    },
}

/// What the worker sends to the service.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub enum WorkerFrame {
    /// Sent once, after start-up (for CUDA: `cuInit` and a tiny kernel, under a deadline).
    Hello {
        /// The worker's [`PROTOCOL_VERSION`].
        protocol: u8,
        /// The worker's process id, for logs.
        pid: u32,
        /// Whether its backend can run kernels.
        status: BackendStatus,
    },
    /// "Still alive", every heartbeat interval, from a thread of its own: it keeps coming
    /// while a kernel runs, and stops when the process hangs or dies.
    Heartbeat {
        /// Counts up from 0.
        seq: u64,
    },
    /// The answer to the request with this `id`.
    Reply {
        /// The request's id.
        id: u64,
        /// The kernel's output, or why there is none.
        result: Result<KernelResponse, WireError>,
    },
}

/// An error as the worker reports it: classified, and saying whether the worker's GPU
/// context is still usable.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct WireError {
    /// The failure's kind, as retry and breakers see it.
    pub kind: ErrorKind,
    /// The CUDA context is unusable (a sticky error such as 700, 702, 714 to 719, 214): the
    /// worker exits after this reply and the service starts a fresh one.
    pub poisoned: bool,
    /// The CUDA error code, when there is one.
    pub code: Option<u32>,
    /// What happened, for people.
    pub message: String,
}

impl fmt::Display for WireError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.message)?;
        if let Some(code) = self.code {
            write!(f, " (CUDA error {code})")?;
        }
        if self.poisoned {
            f.write_str(" [context poisoned]")?;
        }
        Ok(())
    }
}

impl std::error::Error for WireError {}

impl Classify for WireError {
    fn kind(&self) -> ErrorKind {
        self.kind
    }
}

/// Why bytes are not a frame, or could not be read or written.
#[derive(Debug)]
pub enum ProtocolError {
    /// The bytes between two delimiters are not a frame of this protocol: not COBS, too short,
    /// another version, a CRC mismatch, or a payload that is no frame (the core's typed error).
    Frame(DecodeError),
    /// A frame could not be encoded (never for this module's frames).
    Encode(EncodeError),
    /// No delimiter within the reader's limit (this many bytes).
    TooLong(usize),
    /// The stream ended in the middle of a frame.
    Truncated,
    /// Reading or writing the pipe failed.
    Io(io::Error),
}

impl fmt::Display for ProtocolError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            ProtocolError::Frame(DecodeError::UnsupportedVersion(v)) => write!(
                f,
                "frame has protocol version {v}, this side speaks {PROTOCOL_VERSION}"
            ),
            ProtocolError::Frame(e) => write!(f, "bad frame: {e}"),
            ProtocolError::Encode(e) => write!(f, "frame not encoded: {e}"),
            ProtocolError::TooLong(limit) => {
                write!(
                    f,
                    "no frame delimiter within the frame limit of {limit} bytes"
                )
            }
            ProtocolError::Truncated => f.write_str("stream ended in the middle of a frame"),
            ProtocolError::Io(e) => write!(f, "pipe error: {e}"),
        }
    }
}

impl std::error::Error for ProtocolError {
    fn source(&self) -> Option<&(dyn std::error::Error + 'static)> {
        match self {
            ProtocolError::Frame(e) => Some(e),
            ProtocolError::Encode(e) => Some(e),
            ProtocolError::Io(e) => Some(e),
            _ => None,
        }
    }
}

/// Bad bytes from the other side are a fault of that side: the service treats them as the
/// worker being unavailable (and replaces it).
impl Classify for ProtocolError {
    fn kind(&self) -> ErrorKind {
        ErrorKind::Unavailable
    }
}

/// Encodes a frame, delimiter included, with the core's codec: the version byte and the
/// postcard body are written straight into their COBS encoding while the CRC is computed, in
/// one pass (a 1 GiB matmul request is not copied into an intermediate buffer first).
///
/// # Errors
/// [`ProtocolError::Encode`] if serde refuses the value (never for this module's frames).
pub fn encode<T: Serialize>(frame: &T) -> Result<Vec<u8>, ProtocolError> {
    frame::encode_vec(PROTOCOL_VERSION, frame).map_err(ProtocolError::Encode)
}

/// The borrowed twin of [`HostFrame::Request`]: the same variant index and fields, so the
/// same bytes, written from a request the service keeps (no clone of its arrays).
#[derive(Serialize)]
enum HostFrameRef<'a> {
    Request {
        id: u64,
        deadline: WireDeadline,
        request: &'a KernelRequest,
    },
}

/// Encodes `HostFrame::Request { id, deadline, request }` without cloning `request`.
///
/// # Errors
/// As [`encode`].
pub fn encode_request(
    id: u64,
    deadline: WireDeadline,
    request: &KernelRequest,
) -> Result<Vec<u8>, ProtocolError> {
    encode(&HostFrameRef::Request {
        id,
        deadline,
        request,
    })
}

/// Decodes one frame: the bytes between two delimiters, without the delimiter (a trailing
/// delimiter is tolerated). Decodes in place, so `bytes` is overwritten.
///
/// # Errors
/// [`ProtocolError::Frame`] with the core decoder's reason: empty, not COBS, truncated, another
/// version, a CRC mismatch, a malformed payload or bytes after it.
pub fn decode<T: DeserializeOwned>(bytes: &mut [u8]) -> Result<T, ProtocolError> {
    frame::decode(bytes, PROTOCOL_VERSION).map_err(ProtocolError::Frame)
}

/// What the scanner's driver said, as this module's API says it: `Ok(true)` with the frame in
/// the scanner's buffer, `Ok(false)` at a clean end of stream.
fn outcome<B: frame::FrameBuf>(
    found: Option<Found>,
    scanner: &mut Scanner<B>,
) -> Result<bool, ProtocolError> {
    match found {
        Some(Found::Frame) => Ok(true),
        Some(Found::TooLong) => Err(ProtocolError::TooLong(scanner.max_len())),
        None if scanner.finish().is_some() => Err(ProtocolError::Truncated),
        None => Ok(false),
    }
}

/// Reads the next frame's bytes (delimiter excluded) from a blocking reader into `buf`, at
/// most `max_len` bytes with the delimiter ([`MAX_FRAME_LEN`] when no smaller limit is
/// configured), with the core's scanner. Delimiters in a row are skipped.
///
/// Returns `Ok(false)` at a clean end of stream (nothing read since the last frame).
///
/// # Errors
/// [`ProtocolError::TooLong`], [`ProtocolError::Truncated`], [`ProtocolError::Io`].
pub fn read_frame_blocking<R: BufRead>(
    reader: &mut R,
    buf: &mut Vec<u8>,
    max_len: usize,
) -> Result<bool, ProtocolError> {
    let mut scanner = Scanner::new(buf, max_len);
    let found = scanner.read_blocking(reader).map_err(ProtocolError::Io)?;
    outcome(found, &mut scanner)
}

/// Reads the next frame's bytes (delimiter excluded) from an async reader into `buf`; the
/// async twin of [`read_frame_blocking`], over the same scanner
/// ([`rustkernel_tokio::frame::read_frame`]). `progress` is called after every chunk read, so
/// a caller can tell a worker that is writing a large frame from one that is silent.
///
/// # Errors
/// As [`read_frame_blocking`].
pub async fn read_frame<R: tokio::io::AsyncBufRead + Unpin>(
    reader: &mut R,
    buf: &mut Vec<u8>,
    max_len: usize,
    mut progress: impl FnMut(),
) -> Result<bool, ProtocolError> {
    let mut scanner = Scanner::new(buf, max_len);
    let found = rustkernel_tokio::frame::read_frame(reader, &mut scanner, |_| progress())
        .await
        .map_err(ProtocolError::Io)?;
    outcome(found, &mut scanner)
}

#[cfg(test)]
#[allow(clippy::indexing_slicing, clippy::panic)] // tests index what they built and fail loudly
mod tests {
    use proptest::prelude::*;

    use super::*;
    use crate::kernels::{MatMulInput, MatMulOutput, PageRankInput};

    fn frames() -> Vec<WorkerFrame> {
        vec![
            WorkerFrame::Hello {
                protocol: PROTOCOL_VERSION,
                pid: 42,
                status: BackendStatus::Unavailable {
                    reason: "no device".into(),
                },
            },
            WorkerFrame::Heartbeat { seq: 0 },
            WorkerFrame::Reply {
                id: 7,
                result: Ok(KernelResponse::MatMul(MatMulOutput { n: 1, c: vec![0.0] })),
            },
            WorkerFrame::Reply {
                id: u64::MAX,
                result: Err(WireError {
                    kind: ErrorKind::Permanent,
                    poisoned: true,
                    code: Some(700),
                    message: "illegal address".into(),
                }),
            },
        ]
    }

    #[test]
    fn frames_round_trip_and_end_with_the_only_zero() {
        for frame in frames() {
            let mut wire = encode(&frame).expect("encodes");
            assert_eq!(wire.last(), Some(&DELIMITER));
            assert!(!wire[..wire.len() - 1].contains(&DELIMITER));
            assert_eq!(decode::<WorkerFrame>(&mut wire).expect("decodes"), frame);
        }
        let request = HostFrame::Request {
            id: 1,
            deadline: WireDeadline::from_remaining(std::time::Duration::from_millis(5)),
            request: KernelRequest::PageRank(PageRankInput {
                num_nodes: 2,
                edges: vec![[0, 1]],
                damping: 0.85,
                max_iterations: 10,
                tolerance: 0.0,
            }),
        };
        let mut wire = encode(&request).expect("encodes");
        // The core's frame: the COBS of the version byte, the postcard body and its CRC-32C.
        let mut raw = cobs::decode_vec(&wire[..wire.len() - 1]).expect("COBS");
        let crc = raw.split_off(raw.len() - 4);
        assert_eq!(raw[0], PROTOCOL_VERSION);
        assert_eq!(raw[1..], postcard::to_stdvec(&request).expect("ser"));
        let castagnoli = crc_32c(&raw);
        assert_eq!(crc, castagnoli.to_le_bytes());
        // The borrowed request frame writes the same bytes as the owned one.
        let HostFrame::Request { request: inner, .. } = &request else {
            panic!("a request");
        };
        assert_eq!(
            encode_request(
                1,
                WireDeadline {
                    remaining_micros: 5_000
                },
                inner
            )
            .expect("encodes"),
            wire
        );
        assert_eq!(decode::<HostFrame>(&mut wire).expect("decodes"), request);
    }

    #[tokio::test]
    async fn a_stream_without_a_delimiter_stops_at_the_limit_and_reports_progress() {
        let stream = vec![0x55; 1000];
        let mut reader = tokio::io::BufReader::with_capacity(64, stream.as_slice());
        let mut buf = Vec::new();
        let mut chunks = 0;
        let result = read_frame(&mut reader, &mut buf, 256, || chunks += 1).await;
        assert!(
            matches!(result, Err(ProtocolError::TooLong(256))),
            "{result:?}"
        );
        assert_eq!(chunks, 4);
        let mut blocking = io::BufReader::with_capacity(64, stream.as_slice());
        assert!(matches!(
            read_frame_blocking(&mut blocking, &mut buf, 100),
            Err(ProtocolError::TooLong(100))
        ));
    }

    /// CRC-32C bit by bit, as its definition says (reflected polynomial `0x82F63B78`): the
    /// test checks the documented format, not the codec against itself.
    fn crc_32c(bytes: &[u8]) -> u32 {
        let mut crc = !0u32;
        for &byte in bytes {
            crc ^= u32::from(byte);
            for _ in 0..8 {
                crc = if crc & 1 == 1 {
                    (crc >> 1) ^ 0x82F6_3B78
                } else {
                    crc >> 1
                };
            }
        }
        !crc
    }

    fn decode_error(wire: &mut [u8]) -> DecodeError {
        match decode::<WorkerFrame>(wire) {
            Err(ProtocolError::Frame(error)) => error,
            other => panic!("{other:?}"),
        }
    }

    #[test]
    fn bad_bytes_are_typed_errors() {
        assert_eq!(crc_32c(b"123456789"), 0xE306_9283);
        assert_eq!(decode_error(&mut []), DecodeError::Empty);
        assert_eq!(decode_error(&mut [0]), DecodeError::Empty);
        assert_eq!(decode_error(&mut [5, 1]), DecodeError::Cobs);
        // A version 1 heartbeat (no CRC then): refused by its version.
        let mut wire = cobs::encode_vec(&[1, 1, 0]);
        assert_eq!(decode_error(&mut wire), DecodeError::UnsupportedVersion(1));
        // Version 9, then a heartbeat's bytes.
        let mut wire = frame::encode_vec(9, &WorkerFrame::Heartbeat { seq: 0 }).expect("enc");
        assert_eq!(decode_error(&mut wire), DecodeError::UnsupportedVersion(9));
        // Right version, unknown variant.
        let mut wire = frame::encode_vec(PROTOCOL_VERSION, &77u8).expect("enc");
        assert_eq!(decode_error(&mut wire), DecodeError::Malformed);
        // A valid frame with a byte too many.
        let heartbeat = (WorkerFrame::Heartbeat { seq: 3 }, 1u8);
        let mut wire = frame::encode_vec(PROTOCOL_VERSION, &heartbeat).expect("enc");
        assert_eq!(decode_error(&mut wire), DecodeError::TrailingBytes);
        // One flipped bit anywhere in a reply is caught.
        let wire = encode(&frames()[3]).expect("encodes");
        for at in 0..wire.len() - 1 {
            for bit in 0..8 {
                let mut bad = wire.clone();
                bad[at] ^= 1 << bit;
                assert!(
                    decode::<WorkerFrame>(&mut bad).is_err(),
                    "byte {at} bit {bit}"
                );
            }
        }
    }

    #[test]
    fn blocking_reader_splits_frames_and_reports_truncation() {
        let mut stream = Vec::new();
        for frame in frames() {
            stream.extend(encode(&frame).expect("encodes"));
        }
        stream.extend_from_slice(&[3, 1]); // a frame cut short
        let mut reader = io::BufReader::with_capacity(7, stream.as_slice());
        let mut buf = Vec::new();
        for frame in frames() {
            assert!(read_frame_blocking(&mut reader, &mut buf, MAX_FRAME_LEN).expect("reads"));
            assert_eq!(decode::<WorkerFrame>(&mut buf).expect("decodes"), frame);
        }
        assert!(matches!(
            read_frame_blocking(&mut reader, &mut buf, MAX_FRAME_LEN),
            Err(ProtocolError::Truncated)
        ));
        let mut empty: &[u8] = &[];
        assert!(!read_frame_blocking(&mut empty, &mut buf, MAX_FRAME_LEN).expect("clean end"));
    }

    #[tokio::test]
    async fn async_reader_matches_the_blocking_one() {
        let mut stream = Vec::new();
        for frame in frames() {
            stream.extend(encode(&frame).expect("encodes"));
        }
        let mut reader = tokio::io::BufReader::with_capacity(5, stream.as_slice());
        let mut buf = Vec::new();
        for frame in frames() {
            assert!(
                read_frame(&mut reader, &mut buf, MAX_FRAME_LEN, || {})
                    .await
                    .expect("reads")
            );
            assert_eq!(decode::<WorkerFrame>(&mut buf).expect("decodes"), frame);
        }
        assert!(
            !read_frame(&mut reader, &mut buf, MAX_FRAME_LEN, || {})
                .await
                .expect("clean end")
        );
    }

    #[test]
    fn errors_display_and_classify() {
        let e = WireError {
            kind: ErrorKind::Permanent,
            poisoned: true,
            code: Some(700),
            message: "illegal address".into(),
        };
        assert_eq!(
            e.to_string(),
            "illegal address (CUDA error 700) [context poisoned]"
        );
        assert_eq!(e.kind(), ErrorKind::Permanent);
        assert_eq!(
            ProtocolError::Frame(DecodeError::UnsupportedVersion(1)).to_string(),
            "frame has protocol version 1, this side speaks 2"
        );
        assert_eq!(
            ProtocolError::Frame(DecodeError::CrcMismatch).to_string(),
            "bad frame: CRC mismatch"
        );
        assert_eq!(
            ProtocolError::Frame(DecodeError::Cobs).kind(),
            ErrorKind::Unavailable
        );
    }

    proptest! {
        #[test]
        fn garbage_never_panics(mut bytes in proptest::collection::vec(any::<u8>(), 0..300)) {
            let _ = decode::<WorkerFrame>(&mut bytes.clone());
            let _ = decode::<HostFrame>(&mut bytes);
        }

        #[test]
        fn matmul_requests_round_trip(n in 1u32..6, id in any::<u64>(), remaining_micros in any::<u64>()) {
            let len = (n * n) as usize;
            let a: Vec<f64> = (0..len).map(|i| i as f64 - 3.5).collect();
            let frame = HostFrame::Request { id, deadline: WireDeadline { remaining_micros }, request: KernelRequest::MatMul(MatMulInput { n, a: a.clone(), b: a }) };
            let mut wire = encode(&frame).expect("encodes");
            prop_assert_eq!(decode::<HostFrame>(&mut wire).expect("decodes"), frame);
        }
    }
}
