//! Properties of the checkpoint frame codec (`rustkernel_core::checkpoint`) and of the
//! `CheckpointableKernel` trait, checked against a small reference model written from the
//! documented frame layout: a bitwise CRC-32C, a byte-by-byte frame builder and a decoder that
//! follows the documented order of checks.
// Tests index frames they built and cast lengths they chose small.
#![allow(clippy::indexing_slicing, clippy::cast_possible_truncation)]

use proptest::prelude::*;
use rustkernel_core::checkpoint::{self, CheckpointError, FrameHeader, HEADER_LEN, MAGIC, VERSION};
use rustkernel_core::error::{Classify, ErrorKind, ErrorKindSet};
use rustkernel_core::traits::{CheckpointableKernel, KernelError, Result};

// ---------------------------------------------------------------------------------------------
// Reference model
// ---------------------------------------------------------------------------------------------

/// CRC-32C, one bit at a time: reflected polynomial 0x82F63B78, init and final XOR all ones.
fn ref_crc32c(chunks: &[&[u8]]) -> u32 {
    let mut crc = u32::MAX;
    for byte in chunks.iter().flat_map(|chunk| chunk.iter()) {
        crc ^= u32::from(*byte);
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

/// The frame the module doc describes, built field by field.
fn ref_frame(header: FrameHeader, payload: &[u8]) -> Vec<u8> {
    let mut frame = Vec::new();
    frame.extend_from_slice(b"RKCP");
    frame.push(1);
    frame.extend_from_slice(&header.kernel_id.to_le_bytes());
    frame.extend_from_slice(&header.sequence.to_le_bytes());
    frame.extend_from_slice(&(payload.len() as u32).to_le_bytes());
    let crc = ref_crc32c(&[&frame, payload]);
    frame.extend_from_slice(&crc.to_le_bytes());
    frame.extend_from_slice(payload);
    frame
}

fn le32(bytes: &[u8]) -> u32 {
    u32::from_le_bytes(bytes.try_into().expect("4 bytes"))
}

/// The documented decoding order, written as plainly as possible.
fn ref_decode(bytes: &[u8]) -> std::result::Result<(FrameHeader, &[u8]), CheckpointError> {
    let n = bytes.len();
    let m = n.min(4);
    if bytes[..m] != b"RKCP"[..m] {
        return Err(CheckpointError::BadMagic);
    }
    if n < 5 {
        return Err(CheckpointError::Truncated);
    }
    if bytes[4] != 1 {
        return Err(CheckpointError::UnsupportedVersion(bytes[4]));
    }
    if n < 25 {
        return Err(CheckpointError::Truncated);
    }
    let kernel_id = le32(&bytes[5..9]);
    let sequence = u64::from_le_bytes(bytes[9..17].try_into().expect("8 bytes"));
    let payload_len = u64::from(le32(&bytes[17..21]));
    let crc = le32(&bytes[21..25]);
    let present = (n - 25) as u64;
    if present < payload_len {
        return Err(CheckpointError::Truncated);
    }
    if present > payload_len {
        return Err(CheckpointError::LengthMismatch);
    }
    if ref_crc32c(&[&bytes[..21], &bytes[25..]]) != crc {
        return Err(CheckpointError::CrcMismatch);
    }
    Ok((FrameHeader::new(kernel_id, sequence), &bytes[25..]))
}

fn raw(header: FrameHeader, payload: &[u8]) -> Vec<u8> {
    let mut buf = vec![0u8; HEADER_LEN + payload.len()];
    checkpoint::encode_raw(header, payload, &mut buf)
        .expect("exact fit")
        .to_vec()
}

/// Every fallible entry point on the same bytes; none may panic, and the checks on a whole
/// frame must agree with each other and with the reference.
fn check_all_entry_points(bytes: &[u8]) {
    let expected = ref_decode(bytes);
    assert_eq!(checkpoint::decode_raw(bytes), expected);
    assert_eq!(
        checkpoint::peek_header(bytes),
        expected.map(|(header, _)| header)
    );
    let _ = checkpoint::frame_len(bytes);
    let _ = checkpoint::decode::<u8>(bytes);
    let _ = checkpoint::decode::<&str>(bytes);
    let _ = checkpoint::decode::<(u64, Vec<u8>, Option<bool>)>(bytes);
    let _ = checkpoint::decode::<ErrorKindSet>(bytes);
    let typed = checkpoint::decode::<Vec<u16>>(bytes);
    // Decoding never succeeds where the frame checks failed.
    if expected.is_err() {
        assert_eq!(typed.map(|(header, _)| header), expected.map(|(h, _)| h));
    }
}

// ---------------------------------------------------------------------------------------------
// Exhaustive and fixed-input tests
// ---------------------------------------------------------------------------------------------

const HEADER: FrameHeader = FrameHeader::new(0xDEAD_BEEF, 42);

#[test]
fn frame_matches_reference_layout() {
    let payload = [0u8, 1, 2, 0xFF, 0x80];
    assert_eq!(raw(HEADER, &payload), ref_frame(HEADER, &payload));
    assert_eq!(MAGIC, *b"RKCP");
    assert_eq!(VERSION, 1);
    assert_eq!(HEADER_LEN, 25);
    assert_eq!(ref_crc32c(&[b"123456789"]), 0xE306_9283);
}

/// Flips every bit of every byte of a small frame; each flip gives the error its field calls
/// for, never `Ok` and never a panic.
#[test]
fn every_single_bit_flip_is_a_typed_error() {
    let mut buf = [0u8; 64];
    let frame = checkpoint::encode(HEADER, &(7u16, "ok"), &mut buf)
        .expect("fits")
        .to_vec();
    let mut flips = 0;
    for byte in 0..frame.len() {
        for bit in 0..8 {
            let mut bad = frame.clone();
            bad[byte] ^= 1 << bit;
            let expected = match byte {
                0..4 => CheckpointError::BadMagic,
                4 => CheckpointError::UnsupportedVersion(VERSION ^ (1 << bit)),
                17..21 if bad[byte] > frame[byte] => CheckpointError::Truncated,
                17..21 => CheckpointError::LengthMismatch,
                _ => CheckpointError::CrcMismatch,
            };
            assert_eq!(
                checkpoint::decode::<(u16, &str)>(&bad),
                Err(expected),
                "byte {byte} bit {bit}"
            );
            assert_eq!(checkpoint::peek_header(&bad), Err(expected));
            check_all_entry_points(&bad);
            flips += 1;
        }
    }
    assert_eq!(flips, frame.len() * 8);
}

#[test]
fn truncation_at_every_length_is_truncated() {
    let mut buf = [0u8; 64];
    let frame = checkpoint::encode(HEADER, &[1u32, 2, 3], &mut buf).expect("fits");
    for len in 0..frame.len() {
        let prefix = &frame[..len];
        assert_eq!(
            checkpoint::decode::<[u32; 3]>(prefix),
            Err(CheckpointError::Truncated),
            "{len}"
        );
        let expected_len = if len < HEADER_LEN {
            Err(CheckpointError::Truncated)
        } else {
            Ok(frame.len())
        };
        assert_eq!(checkpoint::frame_len(prefix), expected_len, "{len}");
        check_all_entry_points(prefix);
    }
    assert_eq!(
        checkpoint::decode::<[u32; 3]>(frame),
        Ok((HEADER, [1, 2, 3]))
    );
}

#[test]
fn extension_by_any_byte_is_a_length_mismatch() {
    let frame = raw(HEADER, b"abc");
    for extra in [0u8, 1, 0xFF] {
        let mut long = frame.clone();
        long.push(extra);
        assert_eq!(
            checkpoint::decode_raw(&long),
            Err(CheckpointError::LengthMismatch)
        );
    }
}

#[test]
fn foreign_bytes_are_typed_errors() {
    let mut postcard_buf = [0u8; 16];
    let bare_postcard = postcard::to_slice(&(1u32, 2u32), &mut postcard_buf)
        .expect("fits")
        .to_vec();
    let cases: Vec<(Vec<u8>, CheckpointError)> = vec![
        (Vec::new(), CheckpointError::Truncated),
        (b"R".to_vec(), CheckpointError::Truncated),
        (b"RKCP".to_vec(), CheckpointError::Truncated),
        (vec![0; 64], CheckpointError::BadMagic),
        (vec![0xFF; 64], CheckpointError::BadMagic),
        (br#"{"kernel":"x"}"#.to_vec(), CheckpointError::BadMagic),
        (b"\x7fELF\x02\x01\x01".to_vec(), CheckpointError::BadMagic),
        (bare_postcard, CheckpointError::BadMagic),
        (b"rkcp\x01".to_vec(), CheckpointError::BadMagic),
        (b"RKCP\x00".to_vec(), CheckpointError::UnsupportedVersion(0)),
        (
            b"RKCP\xFF".to_vec(),
            CheckpointError::UnsupportedVersion(0xFF),
        ),
        (
            // A header that declares 4 GiB of payload and brings none.
            {
                let mut frame = raw(HEADER, &[]);
                frame[17..21].copy_from_slice(&u32::MAX.to_le_bytes());
                frame
            },
            CheckpointError::Truncated,
        ),
    ];
    for (bytes, expected) in cases {
        assert_eq!(checkpoint::decode_raw(&bytes), Err(expected), "{bytes:?}");
        assert_eq!(checkpoint::decode::<u8>(&bytes), Err(expected));
        check_all_entry_points(&bytes);
    }
}

/// A frame of a future version, with a valid CRC, is refused by its version, not its CRC.
#[test]
fn a_newer_version_is_unsupported() {
    let mut frame = ref_frame(HEADER, b"v2");
    frame[4] = 2;
    let crc = ref_crc32c(&[&frame[..21], &frame[25..]]);
    frame[21..25].copy_from_slice(&crc.to_le_bytes());
    assert_eq!(
        checkpoint::peek_header(&frame),
        Err(CheckpointError::UnsupportedVersion(2))
    );
}

#[test]
fn each_encode_error() {
    let mut small = [0u8; HEADER_LEN + 1];
    assert_eq!(
        checkpoint::encode(HEADER, &1000u32, &mut small),
        Err(CheckpointError::BufferTooSmall)
    );
    assert_eq!(
        checkpoint::encode_raw(HEADER, &[1, 2], &mut small),
        Err(CheckpointError::BufferTooSmall)
    );
    // `CheckpointError::Encode` needs a type postcard refuses, which needs a hand-written
    // `Serialize`; the core's unit tests cover it.
}

#[test]
fn each_decode_error_of_the_payload() {
    let mut buf = [0u8; 64];
    let frame = checkpoint::encode(HEADER, &2u8, &mut buf).expect("fits");
    assert_eq!(
        checkpoint::decode::<bool>(frame),
        Err(CheckpointError::Decode)
    );
    let frame = checkpoint::encode(HEADER, &[0xFFu8, 0xFE], &mut buf).expect("fits");
    assert_eq!(
        checkpoint::decode::<&str>(frame),
        Err(CheckpointError::Decode)
    );
    let frame = checkpoint::encode(HEADER, &(1u8, 2u8), &mut buf).expect("fits");
    assert_eq!(
        checkpoint::decode::<u8>(frame),
        Err(CheckpointError::LengthMismatch)
    );
}

#[test]
fn errors_display_classify_and_round_trip() {
    let all = [
        CheckpointError::BufferTooSmall,
        CheckpointError::PayloadTooLarge,
        CheckpointError::Truncated,
        CheckpointError::BadMagic,
        CheckpointError::UnsupportedVersion(3),
        CheckpointError::LengthMismatch,
        CheckpointError::CrcMismatch,
        CheckpointError::Encode,
        CheckpointError::Decode,
    ];
    let mut messages: Vec<String> = all.iter().map(ToString::to_string).collect();
    messages.sort();
    messages.dedup();
    assert_eq!(messages.len(), all.len(), "messages are distinct");
    for error in all {
        let expected_kind = match error {
            CheckpointError::BufferTooSmall | CheckpointError::PayloadTooLarge => {
                ErrorKind::ResourceExhausted
            }
            CheckpointError::Encode => ErrorKind::Permanent,
            _ => ErrorKind::InvalidInput,
        };
        assert_eq!(error.kind(), expected_kind, "{error}");
        let mut buf = [0u8; 8];
        let bytes = postcard::to_slice(&error, &mut buf).expect("fits");
        assert_eq!(postcard::from_bytes::<CheckpointError>(bytes), Ok(error));
    }
}

// ---------------------------------------------------------------------------------------------
// The trait, with the codec in between checkpoint and restore
// ---------------------------------------------------------------------------------------------

fn block_on<F: Future>(future: F) -> F::Output {
    let mut future = std::pin::pin!(future);
    let mut cx = std::task::Context::from_waker(std::task::Waker::noop());
    (0..1000)
        .find_map(|_| match future.as_mut().poll(&mut cx) {
            std::task::Poll::Ready(output) => Some(output),
            std::task::Poll::Pending => None,
        })
        .expect("ready")
}

#[derive(Debug, Default, PartialEq)]
struct Accumulator {
    sums: Vec<i64>,
    steps: u64,
}

/// A tuple, so it has serde impls without this crate depending on serde.
type AccumulatorCheckpoint = (Vec<i64>, u64);

impl CheckpointableKernel for Accumulator {
    type Checkpoint = AccumulatorCheckpoint;

    async fn checkpoint(&self) -> Result<Self::Checkpoint> {
        Ok((self.sums.clone(), self.steps))
    }

    async fn restore(&mut self, checkpoint: Self::Checkpoint) -> Result<()> {
        (self.sums, self.steps) = checkpoint;
        Ok(())
    }
}

/// What a supervisor does: checkpoint, frame, later unframe and restore; a codec error
/// becomes a `KernelError` of the same kind.
fn save(kernel: &Accumulator, header: FrameHeader, buf: &mut [u8]) -> Result<usize> {
    let state = block_on(kernel.checkpoint())?;
    let frame = checkpoint::encode(header, &state, buf).map_err(|e| KernelError::new(e.kind()))?;
    Ok(frame.len())
}

fn load(kernel: &mut Accumulator, bytes: &[u8]) -> Result<FrameHeader> {
    let (header, state): (FrameHeader, AccumulatorCheckpoint) =
        checkpoint::decode(bytes).map_err(|e| KernelError::new(e.kind()))?;
    block_on(kernel.restore(state))?;
    Ok(header)
}

// ---------------------------------------------------------------------------------------------
// Properties
// ---------------------------------------------------------------------------------------------

fn header() -> impl Strategy<Value = FrameHeader> {
    (any::<u32>(), any::<u64>())
        .prop_map(|(kernel_id, sequence)| FrameHeader::new(kernel_id, sequence))
}

type Payload = (
    u32,
    Vec<u8>,
    Option<i64>,
    String,
    bool,
    u128,
    Vec<(u16, bool)>,
);

fn payload() -> impl Strategy<Value = Payload> {
    (
        any::<u32>(),
        prop::collection::vec(any::<u8>(), 0..200),
        any::<Option<i64>>(),
        ".{0,40}",
        any::<bool>(),
        any::<u128>(),
        prop::collection::vec(any::<(u16, bool)>(), 0..20),
    )
}

/// A valid frame, then damaged in one of several ways (or not at all).
fn damaged_frame() -> impl Strategy<Value = Vec<u8>> {
    (
        header(),
        prop::collection::vec(any::<u8>(), 0..64),
        prop::collection::vec((any::<usize>(), any::<u8>()), 0..4),
        any::<usize>(),
        prop::collection::vec(any::<u8>(), 0..4),
        0..4u8,
    )
        .prop_map(|(header, payload, edits, cut, tail, how)| {
            let mut frame = ref_frame(header, &payload);
            match how {
                0 => {
                    for (at, value) in edits {
                        let at = at % frame.len();
                        frame[at] = value;
                    }
                }
                1 => frame.truncate(cut % (frame.len() + 1)),
                2 => frame.extend_from_slice(&tail),
                _ => {}
            }
            frame
        })
}

proptest! {
    #[test]
    fn random_payloads_round_trip(header in header(), value in payload()) {
        let mut buf = vec![0u8; 1024];
        let frame = checkpoint::encode(header, &value, &mut buf).expect("fits").to_vec();
        // The frame is the reference framing of postcard's bytes.
        let mut payload_buf = vec![0u8; 1024];
        let payload = postcard::to_slice(&value, &mut payload_buf).expect("fits");
        prop_assert_eq!(&frame, &ref_frame(header, payload));
        prop_assert_eq!(checkpoint::frame_len(&frame), Ok(frame.len()));
        prop_assert_eq!(checkpoint::peek_header(&frame), Ok(header));
        prop_assert_eq!(checkpoint::decode_raw(&frame), Ok((header, &*payload)));
        let (decoded_header, decoded): (FrameHeader, Payload) =
            checkpoint::decode(&frame).expect("decodes");
        prop_assert_eq!(decoded_header, header);
        prop_assert_eq!(decoded, value);
    }

    #[test]
    fn borrowed_payloads_round_trip(header in header(), text in ".{0,60}") {
        let mut buf = vec![0u8; 512];
        let frame = checkpoint::encode(header, text.as_str(), &mut buf).expect("fits");
        let (decoded_header, decoded): (FrameHeader, &str) =
            checkpoint::decode(frame).expect("decodes");
        prop_assert_eq!(decoded_header, header);
        prop_assert_eq!(decoded, text.as_str());
    }

    /// Every buffer shorter than the frame is refused with `BufferTooSmall`, without panicking,
    /// and the exact size is enough.
    #[test]
    fn encode_needs_exactly_the_frame_length(header in header(), value in payload()) {
        let mut buf = vec![0u8; 1024];
        let needed = checkpoint::encode(header, &value, &mut buf).expect("fits").len();
        for len in 0..needed {
            prop_assert_eq!(
                checkpoint::encode(header, &value, &mut buf[..len]),
                Err(CheckpointError::BufferTooSmall)
            );
        }
        prop_assert_eq!(checkpoint::encode(header, &value, &mut buf[..needed]).map(<[u8]>::len), Ok(needed));
    }

    #[test]
    fn raw_framing_matches_reference(header in header(), payload in prop::collection::vec(any::<u8>(), 0..300), spare in 0..8usize) {
        let mut buf = vec![0xA5u8; HEADER_LEN + payload.len() + spare];
        let frame = checkpoint::encode_raw(header, &payload, &mut buf).expect("fits");
        let expected = ref_frame(header, &payload);
        prop_assert_eq!(frame, expected.as_slice());
        prop_assert_eq!(checkpoint::decode_raw(frame), Ok((header, payload.as_slice())));
    }

    /// CRC-32C's generator has an even number of terms (it catches any odd number of flipped
    /// bits) and `x` has order above 3 000 000 modulo it (it catches any two flipped bits in
    /// frames this small), so one, two or three flipped bits anywhere are always caught, by a
    /// header check or by the CRC.
    #[test]
    fn up_to_three_bit_flips_are_always_caught(
        header in header(),
        payload in prop::collection::vec(any::<u8>(), 0..300),
        flips in prop::collection::btree_set(any::<usize>(), 1..=3),
    ) {
        let frame = raw(header, &payload);
        let bits = frame.len() * 8;
        let positions: std::collections::BTreeSet<usize> = flips.iter().map(|f| f % bits).collect();
        let mut bad = frame.clone();
        for position in &positions {
            bad[position / 8] ^= 1 << (position % 8);
        }
        prop_assert!(checkpoint::decode_raw(&bad).is_err(), "{:?}", positions);
        check_all_entry_points(&bad);
    }

    #[test]
    fn random_bytes_never_panic_and_match_the_reference(bytes in prop::collection::vec(any::<u8>(), 0..128)) {
        check_all_entry_points(&bytes);
    }

    /// Random bytes behind a valid magic and version reach the length and CRC checks.
    #[test]
    fn random_bytes_after_a_valid_prefix(rest in prop::collection::vec(any::<u8>(), 0..128)) {
        let bytes = [&MAGIC[..], &[VERSION], &rest].concat();
        check_all_entry_points(&bytes);
    }

    #[test]
    fn damaged_frames_never_panic_and_match_the_reference(frame in damaged_frame()) {
        check_all_entry_points(&frame);
    }

    /// Checkpoint, frame, unframe, restore: the kernel ends in the state it was saved in.
    #[test]
    fn kernel_state_survives_the_codec(
        sums in prop::collection::vec(any::<i64>(), 0..50),
        steps in any::<u64>(),
        header in header(),
    ) {
        let original = Accumulator { sums, steps };
        let mut buf = vec![0u8; 1024];
        let len = save(&original, header, &mut buf).expect("fits");
        let mut restored = Accumulator::default();
        prop_assert_eq!(load(&mut restored, &buf[..len]), Ok(header));
        prop_assert_eq!(&restored, &original);
        // A damaged copy is refused as invalid input and leaves the kernel unchanged.
        let mut bad = buf[..len].to_vec();
        bad[len - 1] ^= 0x10;
        let before = Accumulator { sums: restored.sums.clone(), steps: restored.steps };
        prop_assert_eq!(
            load(&mut restored, &bad).map_err(|e| e.kind()),
            Err(ErrorKind::InvalidInput)
        );
        prop_assert_eq!(restored, before);
    }
}

#[test]
fn serde_types_round_trip_through_postcard() {
    let mut buf = [0u8; 32];
    let header = FrameHeader::new(u32::MAX, u64::MAX);
    let bytes = postcard::to_slice(&header, &mut buf).expect("fits");
    assert_eq!(postcard::from_bytes::<FrameHeader>(bytes), Ok(header));
    let error = KernelError::new(ErrorKind::Timeout).with_code(9);
    let bytes = postcard::to_slice(&error, &mut buf).expect("fits");
    assert_eq!(postcard::from_bytes::<KernelError>(bytes), Ok(error));
}
