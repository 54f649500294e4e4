//! Telemetry frames: what a supervisor reports (health, breaker transitions, recovery actions,
//! jobs, a summary), in one versioned wire format that firmware and host share.
//!
//! # Wire format (version [`VERSION`])
//! A frame is the project's one [`frame`] format:
//!
//! ```text
//! COBS( version:u8 | postcard(TelemetryFrame) | crc32c:u32 little-endian ) 0x00
//! ```
//!
//! - `version` is [`VERSION`] when written. A reader accepts every version the project has
//!   shipped ([`READ_VERSIONS`]: fleets upgrade one device at a time) and refuses others with
//!   [`TelemetryError::UnsupportedVersion`] instead of misreading them, but for a newer
//!   version's hello (see [Versions](#versions)). New frame kinds are added at the end of
//!   [`TelemetryFrame`], so an older decoder reports them as [`TelemetryError::Malformed`] and
//!   goes on with the next frame.
//! - The payload is the frame serialized with postcard (varints, enum variants by index).
//! - The CRC is CRC-32C over the version byte and the payload: COBS finds frame boundaries but
//!   detects no corruption, the CRC does. Without `std` it is computed bit by bit (no 1 KiB
//!   table), which is cheap at these frame sizes.
//! - COBS removes every `0x00` from the frame, so a single `0x00` ends it and a receiver that
//!   joins a stream in the middle (or loses bytes) finds the next frame at the next `0x00`.
//!
//! The whole encoded frame, delimiter included, is at most [`MAX_FRAME_LEN`] bytes.
//!
//! # Versions
//! - 2 (today): a breaker's [`Transition`] carries the [`Trip`](crate::resilience::Trip) that
//!   opened it, and a breaker may be `MetricsOnly`.
//! - 1 (until commit `e40d43d`): transitions without a trip; read as transitions whose `trip` is
//!   `None` (a field a version lacks is absent, never invented).
//!
//! Frames the firmware sent at each version are golden test data (`tests/golden/telemetry/`):
//! they decode to the recorded values, and today's encoder writes the version 2 bytes.
//!
//! What every version keeps, so that a device newer than its reader is still seen: the
//! envelope above, and the hello's layout (variant 0, then `version: u8`, `device: u32`,
//! `at_us: u64`; a later version may add fields after them, never change them). A reader
//! therefore checks the CRC of a frame of any version: a frame of a newer version that is a
//! hello decodes, with the version it speaks; any other whole frame of a version not read is
//! [`TelemetryError::UnsupportedVersion`], and a corrupted one [`TelemetryError::CrcMismatch`].
//!
//! Adding version N: record the firmware of version N - 1 first if it is not yet
//! (`tests/golden/telemetry/README.md`); keep the old layout of what changes in a private
//! `vN-1` module read into today's types (as `v1` does: what the old version lacks is `None`,
//! not a made-up value) and route version N - 1 to it in [`decode_frame`]; change the types
//! (new variants at the end of their enums, the hello untouched), then [`VERSION`] and
//! [`READ_VERSIONS`]. The golden tests read every recorded version, so one that no longer reads
//! fails them.
//!
//! # On a text channel
//! A channel that carries text for people as well (semihosting stdout, a console UART) sends
//! each frame as one line: [`LINE_PREFIX`] followed by the encoded frame in lowercase hex,
//! delimiter included (`@RK 0b01...00`), then `\n`. Anything else on the channel is text for
//! people; a decoder looks for the prefix and ignores the rest. A channel for machines only
//! carries the encoded frames back to back, raw.
//!
//! # Example
//! ```
//! # #[cfg(feature = "serde")] {
//! use rustkernel_core::resilience::HealthStatus;
//! use rustkernel_core::telemetry::{self, TelemetryFrame, MAX_FRAME_LEN};
//!
//! let frame = TelemetryFrame::Health { component: 1, status: HealthStatus::Unhealthy, at_us: 1_500 };
//! let mut buf = [0u8; MAX_FRAME_LEN];
//! let wire = telemetry::encode_frame(&frame, &mut buf).unwrap();
//! assert_eq!(wire.last(), Some(&0x00));
//! assert!(!wire[..wire.len() - 1].contains(&0x00));
//!
//! let mut received = [0u8; MAX_FRAME_LEN];
//! received[..wire.len()].copy_from_slice(wire);
//! let len = wire.len();
//! assert_eq!(telemetry::decode_frame(&mut received[..len]), Ok(frame));
//! # }
//! ```

use core::fmt;

use crate::error::ErrorKind;
use crate::frame;
use crate::resilience::circuit_breaker::{CircuitBreakerStats, Transition};
use crate::resilience::health::{ComponentName, HealthStatus};
use crate::resilience::recovery::{RecoveryAction, RecoveryStrategy};

#[cfg(feature = "serde")]
mod newer;
#[cfg(feature = "serde")]
mod v1;

/// The wire format version this crate writes; the first byte of every frame.
pub const VERSION: u8 = 2;

/// Every version this crate reads: each one the project has shipped, oldest first.
pub const READ_VERSIONS: &[u8] = &[1, VERSION];

/// Starts a frame's line on a text channel; the hex of the encoded frame follows.
pub const LINE_PREFIX: &str = "@RK ";

/// Ends every encoded frame; it appears nowhere else in one.
pub const DELIMITER: u8 = frame::DELIMITER;

/// The longest postcard payload any [`TelemetryFrame`] takes (checked by a test against the
/// largest frame of each kind).
pub const MAX_PAYLOAD_LEN: usize = 192;

/// The longest encoded frame, delimiter included: a buffer this long holds any frame.
pub const MAX_FRAME_LEN: usize = frame::max_frame_len(MAX_PAYLOAD_LEN);

/// Breaker counters as a frame carries them: the totals of [`CircuitBreakerStats`].
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Hash)]
#[cfg_attr(feature = "serde", derive(serde::Serialize, serde::Deserialize))]
#[cfg_attr(feature = "defmt", derive(defmt::Format))]
pub struct BreakerCounts {
    /// Calls that succeeded.
    pub successes: u64,
    /// Calls that failed with a recorded error kind.
    pub failures: u64,
    /// Calls refused while open or half-open and full.
    pub rejected: u64,
    /// Failures since the last success while closed.
    pub consecutive_failures: u32,
}

impl From<CircuitBreakerStats> for BreakerCounts {
    fn from(stats: CircuitBreakerStats) -> Self {
        Self {
            successes: stats.success_count,
            failures: stats.failure_count,
            rejected: stats.rejected_count,
            consecutive_failures: stats.consecutive_failures,
        }
    }
}

/// How one job ended.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
#[cfg_attr(feature = "serde", derive(serde::Serialize, serde::Deserialize))]
#[cfg_attr(feature = "serde", serde(rename_all = "snake_case"))]
#[cfg_attr(feature = "defmt", derive(defmt::Format))]
pub enum JobOutcome {
    /// The accelerator computed it.
    Done,
    /// The supervisor computed it itself, on the slower fallback path (degraded mode, or the
    /// accelerator failed the job).
    Fallback,
    /// No result: the job failed with this kind and had no fallback.
    Failed(ErrorKind),
}

/// Totals at the end of a run (or at any point in it), for a dashboard or a test to check.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Hash)]
#[cfg_attr(feature = "serde", derive(serde::Serialize, serde::Deserialize))]
#[cfg_attr(feature = "defmt", derive(defmt::Format))]
pub struct Summary {
    /// Jobs the accelerator computed.
    pub jobs_ok: u32,
    /// Jobs computed on the fallback path.
    pub fallbacks: u32,
    /// Jobs with no result.
    pub jobs_failed: u32,
    /// Attempts retried after a failure.
    pub retries: u32,
    /// Times a breaker opened (from closed or half-open).
    pub breaker_opens: u32,
    /// Half-open cycles started (probe calls admitted after the open time).
    pub half_open_probes: u32,
    /// Times a breaker closed again after being open.
    pub breaker_closes: u32,
    /// Calls a breaker refused.
    pub rejected: u32,
    /// Health status changes reported.
    pub health_changes: u32,
    /// Restarts (resets) carried out.
    pub restarts: u32,
    /// Escalations carried out (each step up the ladder).
    pub escalations: u32,
    /// The last strategy escalated to, if any.
    pub escalated_to: Option<RecoveryStrategy>,
    /// When the summary was taken, in microseconds on the sender's clock.
    pub at_us: u64,
}

/// One telemetry frame. Times (`at_us`) are microseconds on the sender's monotonic clock.
///
/// Components are named by a small number that a [`TelemetryFrame::Component`] frame maps to a
/// name, so the frames that repeat stay small.
#[derive(Clone, Debug, PartialEq, Eq, Hash)]
#[cfg_attr(feature = "serde", derive(serde::Serialize, serde::Deserialize))]
#[cfg_attr(feature = "defmt", derive(defmt::Format))]
pub enum TelemetryFrame {
    /// The sender started: the wire version it speaks and an identifier of the device.
    Hello {
        /// The sender's [`VERSION`].
        version: u8,
        /// Identifies the device (a serial number, a hash of the chip id).
        device: u32,
        /// When it started.
        at_us: u64,
    },
    /// Names component `id` for the frames that follow.
    Component {
        /// The number later frames use.
        id: u8,
        /// Its name.
        name: ComponentName,
    },
    /// A component's health changed.
    Health {
        /// Which component.
        component: u8,
        /// Its status now.
        status: HealthStatus,
        /// When it changed.
        at_us: u64,
    },
    /// A component's circuit breaker changed state.
    Breaker {
        /// Which component the breaker guards.
        component: u8,
        /// From which state to which.
        transition: Transition,
        /// The breaker's counters after the change.
        counts: BreakerCounts,
        /// When it changed.
        at_us: u64,
    },
    /// The supervisor decided a recovery action for a component.
    Recovery {
        /// Which component.
        component: u8,
        /// What it does about it.
        action: RecoveryAction,
        /// When it decided.
        at_us: u64,
    },
    /// A job finished.
    Job {
        /// The job's number.
        id: u32,
        /// How it ended.
        outcome: JobOutcome,
        /// Attempts made on the accelerator (0 when it was not tried).
        attempts: u32,
        /// When it finished.
        at_us: u64,
    },
    /// Totals.
    Summary(Summary),
}

impl TelemetryFrame {
    /// The frame kind's name, as the host prints it (`"breaker"`, `"summary"`).
    #[must_use]
    pub const fn kind(&self) -> &'static str {
        match self {
            TelemetryFrame::Hello { .. } => "hello",
            TelemetryFrame::Component { .. } => "component",
            TelemetryFrame::Health { .. } => "health",
            TelemetryFrame::Breaker { .. } => "breaker",
            TelemetryFrame::Recovery { .. } => "recovery",
            TelemetryFrame::Job { .. } => "job",
            TelemetryFrame::Summary(_) => "summary",
        }
    }
}

/// Why a frame could not be encoded or decoded.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
#[cfg_attr(feature = "serde", derive(serde::Serialize, serde::Deserialize))]
#[cfg_attr(feature = "defmt", derive(defmt::Format))]
#[non_exhaustive]
pub enum TelemetryError {
    /// Encoding: the buffer cannot hold the encoded frame ([`MAX_FRAME_LEN`] always can).
    BufferTooSmall,
    /// Encoding: the serializer refused the frame, or it is longer than [`MAX_PAYLOAD_LEN`].
    Encode,
    /// Decoding: no bytes.
    Empty,
    /// Decoding: longer than [`MAX_FRAME_LEN`], so not one frame.
    TooLong,
    /// Decoding: not a valid COBS encoding (a `0x00` inside, a code pointing past the end).
    Cobs,
    /// Decoding: shorter than a version byte and a CRC.
    Truncated,
    /// Decoding: a whole frame (its CRC matches) of a version none of [`READ_VERSIONS`]: from a
    /// sender newer than this reader when above [`VERSION`] (whose hello still reads).
    UnsupportedVersion(u8),
    /// Decoding: the CRC does not match; the bytes were corrupted.
    CrcMismatch,
    /// Decoding: the CRC matches but the payload is not a frame this version knows.
    Malformed,
    /// Decoding: bytes are left after the frame's payload.
    TrailingBytes,
}

impl fmt::Display for TelemetryError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            TelemetryError::BufferTooSmall => f.write_str("buffer too small for the frame"),
            TelemetryError::Encode => f.write_str("frame could not be serialized"),
            TelemetryError::Empty => f.write_str("empty frame"),
            TelemetryError::TooLong => write!(f, "longer than {MAX_FRAME_LEN} bytes"),
            TelemetryError::Cobs => f.write_str("invalid COBS encoding"),
            TelemetryError::Truncated => f.write_str("frame truncated"),
            TelemetryError::UnsupportedVersion(version) => {
                write!(
                    f,
                    "unsupported frame version {version} (reads 1 to {VERSION})"
                )
            }
            TelemetryError::CrcMismatch => f.write_str("CRC mismatch"),
            TelemetryError::Malformed => f.write_str("malformed payload"),
            TelemetryError::TrailingBytes => f.write_str("trailing bytes after the payload"),
        }
    }
}

impl core::error::Error for TelemetryError {}

impl From<frame::DecodeError> for TelemetryError {
    fn from(error: frame::DecodeError) -> Self {
        match error {
            frame::DecodeError::Empty => TelemetryError::Empty,
            frame::DecodeError::Cobs => TelemetryError::Cobs,
            frame::DecodeError::Truncated => TelemetryError::Truncated,
            frame::DecodeError::UnsupportedVersion(version) => {
                TelemetryError::UnsupportedVersion(version)
            }
            frame::DecodeError::CrcMismatch => TelemetryError::CrcMismatch,
            frame::DecodeError::TrailingBytes => TelemetryError::TrailingBytes,
            // `Malformed`, and whatever the codec learns to refuse later.
            _ => TelemetryError::Malformed,
        }
    }
}

/// Encodes `frame` into the front of `buf` (see the [wire format](self#wire-format-version-version))
/// and returns the encoded bytes, `0x00` delimiter included.
///
/// # Errors
/// [`TelemetryError::BufferTooSmall`] when `buf` cannot hold the frame (a buffer of
/// [`MAX_FRAME_LEN`] bytes always can), [`TelemetryError::Encode`] when postcard refuses it or
/// it is longer than [`MAX_FRAME_LEN`].
#[cfg(feature = "serde")]
pub fn encode_frame<'b>(
    frame: &TelemetryFrame,
    buf: &'b mut [u8],
) -> Result<&'b [u8], TelemetryError> {
    // No frame is longer than MAX_FRAME_LEN: where that much room was given, a frame that
    // does not fit is one the format refuses, not a buffer too small.
    let room = buf.len().min(MAX_FRAME_LEN);
    let roomy = room == MAX_FRAME_LEN;
    let buf = buf.get_mut(..room).ok_or(TelemetryError::BufferTooSmall)?;
    frame::encode(VERSION, frame, buf).map_err(|error| match error {
        frame::EncodeError::BufferTooSmall if !roomy => TelemetryError::BufferTooSmall,
        _ => TelemetryError::Encode,
    })
}

/// Decodes one encoded frame of any of [`READ_VERSIONS`], in place: `bytes` are the frame as
/// received, with or without its trailing `0x00` delimiter, and are overwritten by the
/// decoding. The hello of a newer version reads too, as a [`TelemetryFrame::Hello`] whose
/// `version` is above [`VERSION`] (see [Versions](self#versions)).
///
/// Any bytes at all give a frame or a [`TelemetryError`]; nothing panics.
///
/// # Errors
/// In the order checked: [`TelemetryError::Empty`], [`TelemetryError::TooLong`],
/// [`TelemetryError::Cobs`], [`TelemetryError::Truncated`], [`TelemetryError::CrcMismatch`],
/// [`TelemetryError::UnsupportedVersion`] (a whole frame of a version not read, a newer hello
/// aside), [`TelemetryError::Malformed`], [`TelemetryError::TrailingBytes`].
#[cfg(feature = "serde")]
pub fn decode_frame(bytes: &mut [u8]) -> Result<TelemetryFrame, TelemetryError> {
    let end = match bytes.last() {
        Some(&DELIMITER) => bytes.len().saturating_sub(1),
        _ => bytes.len(),
    };
    if end >= MAX_FRAME_LEN {
        return Err(TelemetryError::TooLong);
    }
    // Every version keeps the envelope: the CRC tells a frame of another version from noise.
    let opened = frame::open_any_version(bytes)?;
    let decoded = match opened.version {
        1 => v1::decode(opened.payload),
        VERSION => frame::decode_payload(opened.payload),
        newer if newer > VERSION => {
            return newer::hello(newer, opened.payload)
                .ok_or(TelemetryError::UnsupportedVersion(newer));
        }
        other => return Err(TelemetryError::UnsupportedVersion(other)),
    };
    Ok(decoded?)
}

#[cfg(all(test, feature = "serde"))]
#[allow(clippy::indexing_slicing)] // the tests index frames they built themselves
mod tests {
    extern crate std;
    use super::*;
    use crate::resilience::CircuitState;
    use crate::time::Instant;
    use std::string::ToString;
    use std::vec::Vec;

    /// CRC-32C and COBS from their crates, not from the codec: the tests check the documented
    /// layout, not the codec against itself.
    static CRC32C: crc::Crc<u32> = crc::Crc::<u32>::new(&crc::CRC_32_ISCSI);

    mod cobs {
        pub(super) fn decode_in_place(buf: &mut [u8]) -> Option<usize> {
            ::cobs::decode_in_place(buf).ok()
        }

        pub(super) fn encode(src: &[u8], dst: &mut [u8]) -> Option<usize> {
            ::cobs::try_encode(src, dst).ok()
        }
    }

    fn encode(frame: &TelemetryFrame) -> Vec<u8> {
        let mut buf = [0u8; MAX_FRAME_LEN];
        encode_frame(frame, &mut buf).expect("fits").to_vec()
    }

    fn largest_frames() -> Vec<TelemetryFrame> {
        let mut name = ComponentName::new();
        for _ in 0..name.capacity() {
            name.push('\u{7f}').expect("fits");
        }
        std::vec![
            TelemetryFrame::Hello {
                version: u8::MAX,
                device: u32::MAX,
                at_us: u64::MAX,
            },
            TelemetryFrame::Component { id: u8::MAX, name },
            TelemetryFrame::Health {
                component: u8::MAX,
                status: HealthStatus::Unknown,
                at_us: u64::MAX,
            },
            TelemetryFrame::Breaker {
                component: u8::MAX,
                transition: Transition::new(CircuitState::Disabled, CircuitState::ForcedOpen),
                counts: BreakerCounts {
                    successes: u64::MAX,
                    failures: u64::MAX,
                    rejected: u64::MAX,
                    consecutive_failures: u32::MAX,
                },
                at_us: u64::MAX,
            },
            TelemetryFrame::Recovery {
                component: u8::MAX,
                action: RecoveryAction::RestartPending {
                    at: Instant::MAX,
                    attempt: u32::MAX,
                },
                at_us: u64::MAX,
            },
            TelemetryFrame::Job {
                id: u32::MAX,
                outcome: JobOutcome::Failed(ErrorKind::InvalidInput),
                attempts: u32::MAX,
                at_us: u64::MAX,
            },
            TelemetryFrame::Summary(Summary {
                jobs_ok: u32::MAX,
                fallbacks: u32::MAX,
                jobs_failed: u32::MAX,
                retries: u32::MAX,
                breaker_opens: u32::MAX,
                half_open_probes: u32::MAX,
                breaker_closes: u32::MAX,
                rejected: u32::MAX,
                health_changes: u32::MAX,
                restarts: u32::MAX,
                escalations: u32::MAX,
                escalated_to: Some(RecoveryStrategy::NotifyOperator),
                at_us: u64::MAX,
            }),
        ]
    }

    #[test]
    fn the_largest_frames_fit_and_round_trip() {
        for frame in largest_frames() {
            let mut payload = [0u8; 512];
            let len = postcard::to_slice(&frame, &mut payload)
                .expect("fits")
                .len();
            assert!(len <= MAX_PAYLOAD_LEN, "{} takes {len}", frame.kind());
            let mut wire = encode(&frame);
            assert!(wire.len() <= MAX_FRAME_LEN);
            assert_eq!(wire.iter().filter(|&&b| b == 0).count(), 1);
            assert_eq!(decode_frame(&mut wire), Ok(frame));
        }
    }

    #[test]
    fn the_delimiter_is_optional_when_decoding() {
        let frame = TelemetryFrame::Health {
            component: 2,
            status: HealthStatus::Degraded,
            at_us: 77,
        };
        let mut wire = encode(&frame);
        wire.pop();
        assert_eq!(decode_frame(&mut wire), Ok(frame));
    }

    #[test]
    fn the_layout_is_version_payload_crc() {
        let frame = TelemetryFrame::Hello {
            version: VERSION,
            device: 7,
            at_us: 0,
        };
        let mut wire = encode(&frame);
        assert_eq!(wire.pop(), Some(DELIMITER));
        let len = cobs::decode_in_place(&mut wire[..]).expect("valid");
        // version 2, variant 0, version 2, device 7, at 0, then the CRC: no zero inside but the
        // `at_us` varint, so COBS has work to do.
        assert_eq!(&wire[..5], &[VERSION, 0, VERSION, 7, 0]);
        assert_eq!(len, 9);
        let crc = CRC32C.checksum(&wire[..5]);
        assert_eq!(&wire[5..9], &crc.to_le_bytes());
        // CRC-32C's check value, as in the checkpoint module.
        assert_eq!(CRC32C.checksum(b"123456789"), 0xE306_9283);
    }

    #[test]
    fn each_check_has_its_error() {
        let frame = TelemetryFrame::Job {
            id: 3,
            outcome: JobOutcome::Done,
            attempts: 1,
            at_us: 1_000,
        };
        assert_eq!(decode_frame(&mut []), Err(TelemetryError::Empty));
        assert_eq!(decode_frame(&mut [0]), Err(TelemetryError::Empty));
        assert_eq!(
            decode_frame(&mut [1u8; MAX_FRAME_LEN]),
            Err(TelemetryError::TooLong)
        );
        assert_eq!(decode_frame(&mut [5, 1, 0, 0]), Err(TelemetryError::Cobs));
        // A run past the end; a zero inside the frame, at its start or after a valid prefix.
        assert_eq!(decode_frame(&mut [5, 0x11]), Err(TelemetryError::Cobs));
        assert_eq!(decode_frame(&mut [0, 2, 1]), Err(TelemetryError::Cobs));
        assert_eq!(
            decode_frame(&mut [3, 0x11, 0x22, 0, 2, 0x33]),
            Err(TelemetryError::Cobs)
        );
        assert_eq!(
            decode_frame(&mut [4, 1, 2, 3]),
            Err(TelemetryError::Truncated)
        );

        // Another version, with a CRC that matches: a later one (a hello cut short), or none
        // ever shipped.
        for version in [VERSION + 1, 0] {
            let mut raw = [version, 0, 0, 0, 0, 0];
            let crc = CRC32C.checksum(&raw[..2]);
            raw[2..].copy_from_slice(&crc.to_le_bytes());
            let mut wire = [0u8; 16];
            let n = cobs::encode(&raw, &mut wire).expect("fits");
            assert_eq!(
                decode_frame(&mut wire[..n]),
                Err(TelemetryError::UnsupportedVersion(version))
            );
        }

        let mut wire = encode(&frame);
        let at = wire.len() / 2;
        wire[at] ^= 0x10;
        assert_eq!(decode_frame(&mut wire), Err(TelemetryError::CrcMismatch));

        // A valid CRC over a payload that is no frame (variant 200), or a frame with a tail.
        for (payload, error) in [
            (&[200u8][..], TelemetryError::Malformed),
            (&[5, 3, 0, 1, 0, 9][..], TelemetryError::TrailingBytes),
        ] {
            let mut raw = Vec::from([VERSION]);
            raw.extend_from_slice(payload);
            let crc = CRC32C.checksum(&raw);
            raw.extend_from_slice(&crc.to_le_bytes());
            let mut wire = [0u8; 32];
            let n = cobs::encode(&raw, &mut wire).expect("fits");
            assert_eq!(decode_frame(&mut wire[..n]), Err(error));
        }
    }

    #[test]
    fn a_newer_senders_hello_reads_and_its_other_frames_are_unsupported() {
        let newer = VERSION + 1;
        let mut buf = [0u8; MAX_FRAME_LEN];
        let hello = TelemetryFrame::Hello {
            version: newer,
            device: 0x0a38_6001,
            at_us: 9,
        };
        let mut wire = frame::encode(newer, &hello, &mut buf)
            .expect("fits")
            .to_vec();
        assert_eq!(decode_frame(&mut wire), Ok(hello));
        let health = TelemetryFrame::Health {
            component: 0,
            status: HealthStatus::Healthy,
            at_us: 10,
        };
        let mut wire = frame::encode(newer, &health, &mut buf)
            .expect("fits")
            .to_vec();
        assert_eq!(
            decode_frame(&mut wire),
            Err(TelemetryError::UnsupportedVersion(newer))
        );
        // A frame whose version byte was corrupted is corrupted, not of another version.
        let mut wire = encode(&health);
        wire[1] = 9;
        assert_eq!(decode_frame(&mut wire), Err(TelemetryError::CrcMismatch));
    }

    #[test]
    fn small_buffers_are_refused() {
        let frame = largest_frames().remove(6);
        let needed = encode(&frame).len();
        for len in 0..needed {
            let mut buf = std::vec![0u8; len];
            assert_eq!(
                encode_frame(&frame, &mut buf),
                Err(TelemetryError::BufferTooSmall)
            );
        }
    }

    #[test]
    fn errors_and_kinds_read_well() {
        assert_eq!(
            TelemetryError::UnsupportedVersion(9).to_string(),
            "unsupported frame version 9 (reads 1 to 2)"
        );
        assert_eq!(TelemetryError::CrcMismatch.to_string(), "CRC mismatch");
        let kinds: Vec<&str> = largest_frames().iter().map(TelemetryFrame::kind).collect();
        assert_eq!(
            kinds,
            [
                "hello",
                "component",
                "health",
                "breaker",
                "recovery",
                "job",
                "summary"
            ]
        );
    }
}
