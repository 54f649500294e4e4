//! The frames between the service and its GPU worker, on the worker's stdin and stdout.
//!
//! # Wire format (version [`PROTOCOL_VERSION`])
//! ```text
//! COBS( version:u8 | postcard(frame) ) 0x00
//! ```
//! The project's one frame format (DESIGN.md, "Wire format"): postcard for the payload, COBS
//! so that a single `0x00` ends every frame and a reader that meets garbage finds the next
//! boundary. The version byte comes first; a frame of another version is refused with
//! [`ProtocolError::UnsupportedVersion`] instead of being misread. There is no CRC: the bytes
//! travel over a local pipe, which does not corrupt them; a worker that writes garbage is
//! caught by the decoder (and killed by the pool).
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
use serde::de::DeserializeOwned;
use serde::{Deserialize, Serialize};

use crate::kernels::{KernelRequest, KernelResponse};

/// The protocol version this crate writes and reads; the first byte of every decoded frame.
pub const PROTOCOL_VERSION: u8 = 1;

/// Ends every frame; it appears nowhere else in one.
pub const DELIMITER: u8 = 0x00;

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
        /// Time left until the caller's deadline when the frame was written, in
        /// microseconds (relative, as gRPC sends it).
        deadline_us: u64,
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

/// Why bytes are not a frame.
#[derive(Debug)]
pub enum ProtocolError {
    /// The bytes between two delimiters are not a valid COBS encoding.
    Cobs,
    /// The frame is empty (two delimiters in a row).
    Empty,
    /// The frame has a version this crate does not speak.
    UnsupportedVersion(u8),
    /// The payload is not a frame of this version.
    Malformed(postcard::Error),
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
            ProtocolError::Cobs => f.write_str("frame is not valid COBS"),
            ProtocolError::Empty => f.write_str("empty frame"),
            ProtocolError::UnsupportedVersion(v) => write!(
                f,
                "frame has protocol version {v}, this side speaks {PROTOCOL_VERSION}"
            ),
            ProtocolError::Malformed(e) => write!(f, "malformed frame: {e}"),
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
            ProtocolError::Malformed(e) => Some(e),
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

/// Encodes a frame, delimiter included: the version byte and the postcard body are written
/// straight into their COBS encoding, in one pass (a 1 GiB matmul request is not copied into
/// an intermediate buffer first).
///
/// # Errors
/// [`ProtocolError::Malformed`] if serde refuses the value (never for this module's frames).
pub fn encode<T: Serialize>(frame: &T) -> Result<Vec<u8>, ProtocolError> {
    // A tuple is its fields back to back in postcard: the version byte, then the frame.
    postcard::to_stdvec_cobs(&(PROTOCOL_VERSION, frame)).map_err(ProtocolError::Malformed)
}

/// The borrowed twin of [`HostFrame::Request`]: the same variant index and fields, so the
/// same bytes, written from a request the service keeps (no clone of its arrays).
#[derive(Serialize)]
enum HostFrameRef<'a> {
    Request {
        id: u64,
        deadline_us: u64,
        request: &'a KernelRequest,
    },
}

/// Encodes `HostFrame::Request { id, deadline_us, request }` without cloning `request`.
///
/// # Errors
/// As [`encode`].
pub fn encode_request(
    id: u64,
    deadline_us: u64,
    request: &KernelRequest,
) -> Result<Vec<u8>, ProtocolError> {
    encode(&HostFrameRef::Request {
        id,
        deadline_us,
        request,
    })
}

/// Decodes one frame: the bytes between two delimiters, without the delimiter (a trailing
/// delimiter is tolerated). Decodes in place, so `bytes` is overwritten.
///
/// # Errors
/// [`ProtocolError::Empty`], [`ProtocolError::Cobs`], [`ProtocolError::UnsupportedVersion`],
/// [`ProtocolError::Malformed`] (including trailing bytes after the frame).
pub fn decode<T: DeserializeOwned>(bytes: &mut [u8]) -> Result<T, ProtocolError> {
    let bytes = match bytes.split_last_mut() {
        Some((&mut DELIMITER, rest)) => rest,
        _ => bytes,
    };
    if bytes.is_empty() {
        return Err(ProtocolError::Empty);
    }
    let len = cobs::decode_in_place(bytes).map_err(|_| ProtocolError::Cobs)?;
    let raw = bytes.get(..len).ok_or(ProtocolError::Cobs)?;
    let (&version, payload) = raw.split_first().ok_or(ProtocolError::Empty)?;
    if version != PROTOCOL_VERSION {
        return Err(ProtocolError::UnsupportedVersion(version));
    }
    let (frame, rest) = postcard::take_from_bytes(payload).map_err(ProtocolError::Malformed)?;
    if !rest.is_empty() {
        return Err(ProtocolError::Malformed(
            postcard::Error::DeserializeBadEncoding,
        ));
    }
    Ok(frame)
}

/// Reads the next frame's bytes (delimiter excluded) from a blocking reader into `buf`, at
/// most `max_len` bytes ([`MAX_FRAME_LEN`] when no smaller limit is configured).
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
    buf.clear();
    loop {
        let available = match reader.fill_buf() {
            Ok(bytes) => bytes,
            Err(e) if e.kind() == io::ErrorKind::Interrupted => continue,
            Err(e) => return Err(ProtocolError::Io(e)),
        };
        if available.is_empty() {
            return if buf.is_empty() {
                Ok(false)
            } else {
                Err(ProtocolError::Truncated)
            };
        }
        let (taken, done) = match available.iter().position(|&b| b == DELIMITER) {
            Some(at) => (at + 1, true),
            None => (available.len(), false),
        };
        let chunk = available.get(..taken).unwrap_or_default();
        buf.extend_from_slice(chunk.strip_suffix(&[DELIMITER]).unwrap_or(chunk));
        reader.consume(taken);
        if buf.len() >= max_len {
            return Err(ProtocolError::TooLong(max_len));
        }
        if done {
            return Ok(true);
        }
    }
}

/// Reads the next frame's bytes (delimiter excluded) from an async reader into `buf`; the
/// async twin of [`read_frame_blocking`]. `progress` is called after every chunk read, so a
/// caller can tell a worker that is writing a large frame from one that is silent.
///
/// # Errors
/// As [`read_frame_blocking`].
pub async fn read_frame<R: tokio::io::AsyncBufRead + Unpin>(
    reader: &mut R,
    buf: &mut Vec<u8>,
    max_len: usize,
    mut progress: impl FnMut(),
) -> Result<bool, ProtocolError> {
    use tokio::io::AsyncBufReadExt;
    buf.clear();
    loop {
        let available = reader.fill_buf().await.map_err(ProtocolError::Io)?;
        if available.is_empty() {
            return if buf.is_empty() {
                Ok(false)
            } else {
                Err(ProtocolError::Truncated)
            };
        }
        let (taken, done) = match available.iter().position(|&b| b == DELIMITER) {
            Some(at) => (at + 1, true),
            None => (available.len(), false),
        };
        let chunk = available.get(..taken).unwrap_or_default();
        buf.extend_from_slice(chunk.strip_suffix(&[DELIMITER]).unwrap_or(chunk));
        reader.consume(taken);
        progress();
        if buf.len() >= max_len {
            return Err(ProtocolError::TooLong(max_len));
        }
        if done {
            return Ok(true);
        }
    }
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
            deadline_us: 5_000,
            request: KernelRequest::PageRank(PageRankInput {
                num_nodes: 2,
                edges: vec![[0, 1]],
                damping: 0.85,
                max_iterations: 10,
                tolerance: 0.0,
            }),
        };
        let mut wire = encode(&request).expect("encodes");
        // The one-pass encoding is the COBS of the version byte and the postcard body.
        let mut raw = vec![PROTOCOL_VERSION];
        raw.extend(postcard::to_stdvec(&request).expect("ser"));
        let mut two_pass = cobs::encode_vec(&raw);
        two_pass.push(DELIMITER);
        assert_eq!(wire, two_pass);
        // The borrowed request frame writes the same bytes as the owned one.
        let HostFrame::Request { request: inner, .. } = &request else {
            panic!("a request");
        };
        assert_eq!(encode_request(1, 5_000, inner).expect("encodes"), wire);
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

    #[test]
    fn bad_bytes_are_typed_errors() {
        assert!(matches!(
            decode::<WorkerFrame>(&mut []),
            Err(ProtocolError::Empty)
        ));
        assert!(matches!(
            decode::<WorkerFrame>(&mut [0]),
            Err(ProtocolError::Empty)
        ));
        assert!(matches!(
            decode::<WorkerFrame>(&mut [5, 1]),
            Err(ProtocolError::Cobs)
        ));
        // Version 9, then a heartbeat's bytes.
        let mut wire = cobs::encode_vec(&[9, 1, 0]);
        assert!(matches!(
            decode::<WorkerFrame>(&mut wire),
            Err(ProtocolError::UnsupportedVersion(9))
        ));
        // Right version, unknown variant.
        let mut wire = cobs::encode_vec(&[PROTOCOL_VERSION, 77]);
        assert!(matches!(
            decode::<WorkerFrame>(&mut wire),
            Err(ProtocolError::Malformed(_))
        ));
        // A valid frame with a byte too many.
        let mut raw = vec![PROTOCOL_VERSION];
        raw.extend(postcard::to_stdvec(&WorkerFrame::Heartbeat { seq: 3 }).expect("ser"));
        raw.push(1);
        let mut wire = cobs::encode_vec(&raw);
        assert!(matches!(
            decode::<WorkerFrame>(&mut wire),
            Err(ProtocolError::Malformed(_))
        ));
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
            ProtocolError::UnsupportedVersion(2).to_string(),
            "frame has protocol version 2, this side speaks 1"
        );
        assert_eq!(ProtocolError::Cobs.kind(), ErrorKind::Unavailable);
    }

    proptest! {
        #[test]
        fn garbage_never_panics(mut bytes in proptest::collection::vec(any::<u8>(), 0..300)) {
            let _ = decode::<WorkerFrame>(&mut bytes.clone());
            let _ = decode::<HostFrame>(&mut bytes);
        }

        #[test]
        fn matmul_requests_round_trip(n in 1u32..6, id in any::<u64>(), deadline_us in any::<u64>()) {
            let len = (n * n) as usize;
            let a: Vec<f64> = (0..len).map(|i| i as f64 - 3.5).collect();
            let frame = HostFrame::Request { id, deadline_us, request: KernelRequest::MatMul(MatMulInput { n, a: a.clone(), b: a }) };
            let mut wire = encode(&frame).expect("encodes");
            prop_assert_eq!(decode::<HostFrame>(&mut wire).expect("decodes"), frame);
        }
    }
}
