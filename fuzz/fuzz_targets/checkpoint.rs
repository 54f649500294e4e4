//! Checkpoint frames (core/src/checkpoint.rs): any bytes give a checkpoint or a typed error,
//! never a panic; a frame that decodes is exactly what the encoder writes for its header and
//! payload; every single-bit error in a valid frame is detected; and a typed checkpoint that
//! decodes re-encodes to one that decodes to the same value.
//!
//! The input is used twice: as frame bytes, and as a payload the target frames validly, so the
//! typed decoders are reached past the CRC.
#![no_main]

use libfuzzer_sys::fuzz_target;
use rustkernel_core::checkpoint::{self, CheckpointError, FrameHeader, HEADER_LEN};
use rustkernel_core::telemetry::Summary;
use serde::{Deserialize, Serialize};

/// A kernel's checkpoint as a firmware might keep one: numbers, borrowed text, a sequence, an
/// enum, an option.
#[derive(Debug, PartialEq, Serialize, Deserialize)]
struct KernelState<'a> {
    step: u64,
    name: &'a str,
    weights: Vec<i32>,
    mode: Mode,
    last_error: Option<u16>,
    summary: Summary,
}

#[derive(Debug, PartialEq, Serialize, Deserialize)]
enum Mode {
    Idle,
    Running { job: u32 },
    Degraded(u8, bool),
}

/// A value of type `$t` that decodes from `$frame` re-encodes to a frame that decodes to it
/// (a macro: the second decode borrows from another buffer, so `$t`'s lifetime differs).
macro_rules! check_typed {
    ($frame:expr, $t:ty) => {
        if let Ok((header, value)) = checkpoint::decode::<$t>($frame) {
            let mut buf = vec![0u8; $frame.len() + 64];
            let encoded =
                checkpoint::encode(header, &value, &mut buf).expect("a decoded value encodes");
            let again = checkpoint::decode::<$t>(encoded).expect("decodes again");
            assert_eq!(again, (header, value));
        }
    };
}

fn check_frame(frame: &[u8]) {
    let Ok((header, payload)) = checkpoint::decode_raw(frame) else {
        return;
    };
    // The format is canonical: the same header and payload encode to the same bytes.
    let mut buf = vec![0u8; HEADER_LEN + payload.len()];
    let encoded = checkpoint::encode_raw(header, payload, &mut buf).expect("fits");
    assert_eq!(encoded, frame);
    assert_eq!(checkpoint::peek_header(frame), Ok(header));
    assert_eq!(checkpoint::frame_len(frame), Ok(frame.len()));
    assert_eq!(checkpoint::frame_len(&frame[..HEADER_LEN]), Ok(frame.len()));
    check_typed!(frame, KernelState<'_>);
    check_typed!(frame, Summary);
    check_typed!(frame, (u8, &str));
}

fuzz_target!(|data: &[u8]| {
    check_frame(data);
    // Every error path on a prefix of the input, too.
    let _ = checkpoint::frame_len(data);

    // The input as the payload of a valid frame.
    let header = FrameHeader::new(0x5EED_0001, u64::try_from(data.len()).unwrap_or(u64::MAX));
    let mut buf = vec![0u8; HEADER_LEN + data.len()];
    let frame = checkpoint::encode_raw(header, data, &mut buf)
        .expect("fits")
        .to_vec();
    assert_eq!(checkpoint::decode_raw(&frame), Ok((header, data)));
    check_frame(&frame);

    // One flipped bit, chosen by the input, is always caught.
    let seed = data.iter().fold(0usize, |acc, &b| {
        acc.wrapping_mul(31).wrapping_add(usize::from(b))
    });
    let bit = seed % (frame.len() * 8);
    let mut corrupted = frame.clone();
    corrupted[bit / 8] ^= 1 << (bit % 8);
    let error = checkpoint::decode_raw(&corrupted).expect_err("a flipped bit is detected");
    assert!(
        matches!(
            error,
            CheckpointError::BadMagic
                | CheckpointError::UnsupportedVersion(_)
                | CheckpointError::Truncated
                | CheckpointError::LengthMismatch
                | CheckpointError::CrcMismatch
        ),
        "{error:?}"
    );
});
