//! Property tests of the telemetry wire format: every frame round-trips, no bytes make the
//! decoder panic, and corruption is reported, not misread.
#![allow(clippy::indexing_slicing, clippy::unwrap_used)] // tests index what they built

use proptest::prelude::*;
use rustkernel_core::error::ErrorKind;
use rustkernel_core::resilience::health::ComponentName;
use rustkernel_core::resilience::{
    CircuitState, Escalation, HealthStatus, OpenReason, RecoveryAction, RecoveryStrategy,
    Transition, Trip,
};
use rustkernel_core::telemetry::{
    self, BreakerCounts, DELIMITER, JobOutcome, MAX_FRAME_LEN, Summary, TelemetryError,
    TelemetryFrame,
};
use rustkernel_core::time::Instant;

// ---------------------------------------------------------------------------------------------
// Generators

fn wide_u64() -> impl Strategy<Value = u64> {
    prop_oneof![Just(0), Just(u64::MAX), 0u64..1_000, any::<u64>()]
}

fn wide_u32() -> impl Strategy<Value = u32> {
    prop_oneof![Just(0), Just(u32::MAX), 0u32..100, any::<u32>()]
}

fn error_kind() -> impl Strategy<Value = ErrorKind> {
    proptest::sample::select(ErrorKind::ALL.to_vec())
}

fn strategy() -> impl Strategy<Value = RecoveryStrategy> {
    proptest::sample::select(RecoveryStrategy::ALL.to_vec())
}

fn health() -> impl Strategy<Value = HealthStatus> {
    proptest::sample::select(HealthStatus::ALL.to_vec())
}

fn circuit_state() -> impl Strategy<Value = CircuitState> {
    proptest::sample::select(vec![
        CircuitState::Closed,
        CircuitState::Open,
        CircuitState::HalfOpen,
        CircuitState::ForcedOpen,
        CircuitState::Disabled,
        CircuitState::MetricsOnly,
    ])
}

fn trip() -> impl Strategy<Value = Option<Trip>> {
    let reason = proptest::sample::select(vec![
        OpenReason::FailureRate,
        OpenReason::SlowCallRate,
        OpenReason::ConsecutiveFailures,
        OpenReason::ProbeFailed,
        OpenReason::HalfOpenTimeout,
        OpenReason::Forced,
    ]);
    proptest::option::of(
        (reason, wide_u32(), wide_u32(), wide_u32(), wide_u32()).prop_map(
            |(reason, calls, failures, slow, consecutive_failures)| Trip {
                reason,
                calls,
                failures,
                slow,
                consecutive_failures,
            },
        ),
    )
}

fn escalation() -> impl Strategy<Value = Escalation> {
    prop_oneof![
        strategy().prop_map(Escalation::To),
        Just(Escalation::GaveUp)
    ]
}

fn action() -> impl Strategy<Value = RecoveryAction> {
    prop_oneof![
        (wide_u64(), wide_u32()).prop_map(|(at, attempt)| RecoveryAction::Restart {
            at: Instant::from_micros(at),
            attempt
        }),
        (wide_u64(), wide_u32()).prop_map(|(at, attempt)| RecoveryAction::RestartPending {
            at: Instant::from_micros(at),
            attempt
        }),
        Just(RecoveryAction::UseReplica),
        Just(RecoveryAction::Degrade),
        Just(RecoveryAction::Failover),
        Just(RecoveryAction::NotifyOperator),
        strategy().prop_map(RecoveryAction::Escalate),
        Just(RecoveryAction::GiveUp),
        escalation().prop_map(RecoveryAction::AlreadyEscalated),
    ]
}

fn name() -> impl Strategy<Value = ComponentName> {
    // Up to 32 bytes of any chars: ASCII, multi-byte, control characters.
    proptest::collection::vec(any::<char>(), 0..32).prop_map(|chars| {
        let mut name = ComponentName::new();
        for c in chars {
            if name.push(c).is_err() {
                break;
            }
        }
        name
    })
}

fn summary() -> impl Strategy<Value = Summary> {
    (
        proptest::collection::vec(wide_u32(), 11),
        proptest::option::of(strategy()),
        wide_u64(),
    )
        .prop_map(|(n, escalated_to, at_us)| Summary {
            jobs_ok: n[0],
            fallbacks: n[1],
            jobs_failed: n[2],
            retries: n[3],
            breaker_opens: n[4],
            half_open_probes: n[5],
            breaker_closes: n[6],
            rejected: n[7],
            health_changes: n[8],
            restarts: n[9],
            escalations: n[10],
            escalated_to,
            at_us,
        })
}

fn frame() -> impl Strategy<Value = TelemetryFrame> {
    prop_oneof![
        (any::<u8>(), wide_u32(), wide_u64()).prop_map(|(version, device, at_us)| {
            TelemetryFrame::Hello {
                version,
                device,
                at_us,
            }
        }),
        (any::<u8>(), name()).prop_map(|(id, name)| TelemetryFrame::Component { id, name }),
        (any::<u8>(), health(), wide_u64()).prop_map(|(component, status, at_us)| {
            TelemetryFrame::Health {
                component,
                status,
                at_us,
            }
        }),
        (
            any::<u8>(),
            (circuit_state(), circuit_state(), trip()),
            (wide_u64(), wide_u64(), wide_u64(), wide_u32()),
            wide_u64()
        )
            .prop_map(|(component, (from, to, trip), (s, f, r, c), at_us)| {
                TelemetryFrame::Breaker {
                    component,
                    transition: Transition { from, to, trip },
                    counts: BreakerCounts {
                        successes: s,
                        failures: f,
                        rejected: r,
                        consecutive_failures: c,
                    },
                    at_us,
                }
            }),
        (any::<u8>(), action(), wide_u64()).prop_map(|(component, action, at_us)| {
            TelemetryFrame::Recovery {
                component,
                action,
                at_us,
            }
        }),
        (
            wide_u32(),
            prop_oneof![
                Just(JobOutcome::Done),
                Just(JobOutcome::Fallback),
                error_kind().prop_map(JobOutcome::Failed)
            ],
            wide_u32(),
            wide_u64()
        )
            .prop_map(|(id, outcome, attempts, at_us)| TelemetryFrame::Job {
                id,
                outcome,
                attempts,
                at_us
            }),
        summary().prop_map(TelemetryFrame::Summary),
    ]
}

fn encode(frame: &TelemetryFrame) -> Vec<u8> {
    let mut buf = [0u8; MAX_FRAME_LEN];
    telemetry::encode_frame(frame, &mut buf)
        .expect("a MAX_FRAME_LEN buffer holds any frame")
        .to_vec()
}

/// Splits a stream at each delimiter, as a receiver does, and decodes every piece.
fn decode_stream(stream: &[u8]) -> Vec<Result<TelemetryFrame, TelemetryError>> {
    stream
        .split(|&b| b == DELIMITER)
        .filter(|piece| !piece.is_empty())
        .map(|piece| telemetry::decode_frame(&mut piece.to_vec()))
        .collect()
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(512))]

    /// Encoding then decoding gives the frame back; the encoding is one zero-free block ended by
    /// the only delimiter, within the advertised maximum.
    #[test]
    fn every_frame_round_trips(frame in frame()) {
        let wire = encode(&frame);
        prop_assert!(wire.len() <= MAX_FRAME_LEN);
        prop_assert_eq!(wire.last(), Some(&DELIMITER));
        prop_assert_eq!(wire.iter().filter(|&&b| b == DELIMITER).count(), 1);
        prop_assert_eq!(telemetry::decode_frame(&mut wire.clone()), Ok(frame.clone()));
        // Without the delimiter too.
        prop_assert_eq!(telemetry::decode_frame(&mut wire[..wire.len() - 1].to_vec()), Ok(frame));
    }

    /// A stream of frames split at the delimiters gives the frames back, in order.
    #[test]
    fn streams_split_at_delimiters(frames in proptest::collection::vec(frame(), 0..12)) {
        let stream: Vec<u8> = frames.iter().flat_map(encode).collect();
        let decoded = decode_stream(&stream);
        prop_assert_eq!(decoded, frames.into_iter().map(Ok).collect::<Vec<_>>());
    }

    /// Any bytes at all: a frame or an error, never a panic (and never a frame from a piece
    /// longer than the maximum).
    #[test]
    fn random_bytes_never_panic(mut bytes in proptest::collection::vec(any::<u8>(), 0..400)) {
        let len = bytes.len();
        let result = telemetry::decode_frame(&mut bytes);
        if len > MAX_FRAME_LEN {
            prop_assert_eq!(result, Err(TelemetryError::TooLong));
        }
    }

    /// Random bytes made valid COBS (so the decoder gets past the framing) still never panic,
    /// and without a matching CRC they are refused.
    #[test]
    fn random_cobs_frames_are_refused(body in proptest::collection::vec(1u8..=255, 0..250)) {
        // A zero-free body is its own COBS encoding when prefixed with its length + 1.
        let mut bytes = vec![u8::try_from(body.len() + 1).unwrap_or(u8::MAX)];
        bytes.extend_from_slice(&body);
        if bytes.len() > 255 { bytes.truncate(255); }
        let result = telemetry::decode_frame(&mut bytes);
        prop_assert!(result.is_err(), "random bytes decoded: {:?}", result);
    }

    /// Corrupting a frame (one bit, one byte, a cut, a lost byte) is reported; it never decodes
    /// as some other frame.
    #[test]
    fn corruption_is_reported(
        frame in frame(),
        at in any::<prop::sample::Index>(),
        bit in 0u8..8,
        byte in any::<u8>(),
    ) {
        let wire = encode(&frame);
        let body = &wire[..wire.len() - 1];
        let i = at.index(body.len());

        let mut flipped = body.to_vec();
        flipped[i] ^= 1 << bit;
        prop_assert!(telemetry::decode_frame(&mut flipped).is_err());

        let mut replaced = body.to_vec();
        if replaced[i] != byte {
            replaced[i] = byte;
            prop_assert!(telemetry::decode_frame(&mut replaced).is_err());
        }

        let mut cut = body[..i].to_vec();
        prop_assert!(telemetry::decode_frame(&mut cut).is_err());

        let mut lost = body.to_vec();
        lost.remove(i);
        prop_assert!(telemetry::decode_frame(&mut lost).is_err());
    }

    /// Garbage between frames costs only the garbage: every intact frame is still found.
    #[test]
    fn garbage_between_frames_is_skipped(
        frames in proptest::collection::vec(frame(), 1..6),
        garbage in proptest::collection::vec(proptest::collection::vec(any::<u8>(), 0..40), 6),
    ) {
        let mut stream = Vec::new();
        for (frame, junk) in frames.iter().zip(&garbage) {
            stream.extend_from_slice(junk);
            stream.push(DELIMITER);
            stream.extend(encode(frame));
        }
        let found: Vec<TelemetryFrame> = decode_stream(&stream).into_iter().flatten().collect();
        for frame in &frames {
            prop_assert!(found.contains(frame), "lost {:?}", frame);
        }
    }
}

/// Every single-bit flip of every byte of a few frames is caught, exhaustively.
#[test]
fn every_single_bit_flip_is_caught() {
    let frames = [
        TelemetryFrame::Hello {
            version: telemetry::VERSION,
            device: 0xC0FFEE,
            at_us: 0,
        },
        TelemetryFrame::Breaker {
            component: 0,
            transition: Transition::new(CircuitState::Closed, CircuitState::Open),
            counts: BreakerCounts {
                successes: 10,
                failures: 3,
                rejected: 0,
                consecutive_failures: 3,
            },
            at_us: 123_456,
        },
        TelemetryFrame::Summary(Summary {
            jobs_ok: 20,
            escalated_to: Some(RecoveryStrategy::NotifyOperator),
            at_us: 9_999_999,
            ..Summary::default()
        }),
    ];
    for frame in frames {
        let wire = encode(&frame);
        for i in 0..wire.len() {
            for bit in 0..8 {
                let mut flipped = wire.clone();
                flipped[i] ^= 1 << bit;
                // A flip that makes a zero splits the frame: decode each piece as a receiver would.
                for piece in decode_stream(&flipped) {
                    assert!(
                        piece.is_err(),
                        "byte {i} bit {bit} of {frame:?} decoded as {piece:?}"
                    );
                }
            }
        }
    }
}

/// A whole frame of another version is refused as such, not misread; a frame whose version byte
/// was corrupted is refused by its CRC.
#[test]
fn other_versions_are_refused() {
    let frame = TelemetryFrame::Health {
        component: 1,
        status: HealthStatus::Healthy,
        at_us: 5,
    };
    let mut buf = [0u8; MAX_FRAME_LEN];
    let mut other = rustkernel_core::frame::encode(9, &frame, &mut buf)
        .expect("fits")
        .to_vec();
    assert_eq!(
        telemetry::decode_frame(&mut other),
        Err(TelemetryError::UnsupportedVersion(9))
    );
    // The first COBS block starts with the version byte (it is not zero).
    let mut corrupted = encode(&frame);
    corrupted[1] = 9;
    assert_eq!(
        telemetry::decode_frame(&mut corrupted),
        Err(TelemetryError::CrcMismatch)
    );
}

/// Each serde type of the module round-trips through postcard alone, too.
#[test]
fn parts_round_trip_through_postcard() {
    let mut buf = [0u8; 64];
    let counts = BreakerCounts {
        successes: 1,
        failures: 2,
        rejected: 3,
        consecutive_failures: 4,
    };
    let bytes = postcard::to_slice(&counts, &mut buf).expect("fits");
    assert_eq!(
        postcard::from_bytes::<BreakerCounts>(bytes).expect("decodes"),
        counts
    );
    for outcome in [
        JobOutcome::Done,
        JobOutcome::Fallback,
        JobOutcome::Failed(ErrorKind::Timeout),
    ] {
        let bytes = postcard::to_slice(&outcome, &mut buf).expect("fits");
        assert_eq!(
            postcard::from_bytes::<JobOutcome>(bytes).expect("decodes"),
            outcome
        );
    }
    let error = TelemetryError::UnsupportedVersion(3);
    let bytes = postcard::to_slice(&error, &mut buf).expect("fits");
    assert_eq!(
        postcard::from_bytes::<TelemetryError>(bytes).expect("decodes"),
        error
    );
}
