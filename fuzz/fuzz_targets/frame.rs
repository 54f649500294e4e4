//! The core's frame codec (core/src/frame.rs) and its delimiter scanner, and the GPU worker
//! protocol over them (host/src/gpu/protocol.rs): any bytes give a frame or a typed error,
//! never a panic; the scanner, fed the input in pieces of any size under any limit, finds
//! exactly the frames that splitting at every zero finds; any payload round-trips through the
//! encoder, whose slice and `Vec` forms write the same bytes.
//!
//! The first input byte chooses the scanner's piece size, the second its limit; the rest is
//! the stream (and, as a whole, the frame and the payload).
#![no_main]

use libfuzzer_sys::fuzz_target;
use rustkernel_core::frame::{self, DecodeError, Found, Scanner};
use rustkernel_host::gpu::protocol::{self, HostFrame, WorkerFrame};

/// What splitting at every zero finds, the scanner's way: frames of at most `max_len - 1`
/// bytes, the head of each longer one, runs of zeros skipped, and the unfinished tail.
fn reference(stream: &[u8], max_len: usize) -> (Vec<(Found, Vec<u8>)>, Option<Vec<u8>>) {
    let max_body = max_len.saturating_sub(1);
    let mut pieces: Vec<&[u8]> = stream.split(|&b| b == frame::DELIMITER).collect();
    let tail = pieces
        .pop()
        .filter(|tail| !tail.is_empty() && tail.len() <= max_body);
    let mut found: Vec<(Found, Vec<u8>)> = pieces
        .into_iter()
        .filter(|piece| !piece.is_empty())
        .map(|piece| match piece.len() <= max_body {
            true => (Found::Frame, piece.to_vec()),
            false => (Found::TooLong, piece[..max_body].to_vec()),
        })
        .collect();
    let last = stream
        .split(|&b| b == frame::DELIMITER)
        .last()
        .unwrap_or_default();
    if last.len() > max_body {
        found.push((Found::TooLong, last[..max_body].to_vec()));
    }
    (found, tail.map(<[u8]>::to_vec))
}

fuzz_target!(|data: &[u8]| {
    let (piece, max_len, stream) = match data {
        [piece, max_len, stream @ ..] => {
            (usize::from(*piece).max(1), usize::from(*max_len), stream)
        }
        _ => (1, 16, data),
    };

    // The decoder: a frame, or one of its errors.
    let mut bytes = data.to_vec();
    match frame::open(&mut bytes, &[1, 2]) {
        Ok(opened) => {
            assert!(opened.version == 1 || opened.version == 2);
            assert!(opened.payload.len() + 5 <= data.len());
        }
        Err(DecodeError::UnsupportedVersion(version)) => assert!(version > 2 || version == 0),
        Err(_) => {}
    }
    let _ = protocol::decode::<WorkerFrame>(&mut data.to_vec());
    let _ = protocol::decode::<HostFrame>(&mut data.to_vec());

    // The scanner, in pieces, against the reference.
    let mut scanner = Scanner::new(Vec::new(), max_len);
    let mut found = Vec::new();
    for mut chunk in stream.chunks(piece) {
        while !chunk.is_empty() {
            let (used, event) = scanner.push(chunk);
            assert!(used <= chunk.len());
            assert!(used > 0 || event.is_some(), "no progress");
            chunk = &chunk[used..];
            if let Some(event) = event {
                assert!(scanner.frame().len() < max_len.max(1));
                found.push((event, scanner.frame().to_vec()));
            }
        }
    }
    let tail = scanner.finish().map(|tail| tail.to_vec());
    assert_eq!(scanner.offset(), stream.len() as u64);
    assert_eq!((found, tail), reference(stream, max_len));

    // Any payload round-trips, and both encoders write the same bytes.
    let wire = frame::encode_vec(2, data).expect("a byte slice serializes");
    let mut buf = vec![0u8; frame::max_frame_len(data.len() + 10)];
    assert_eq!(frame::encode(2, data, &mut buf), Ok(&wire[..]));
    assert_eq!(wire.iter().filter(|&&b| b == frame::DELIMITER).count(), 1);
    let mut received = wire.clone();
    assert_eq!(frame::decode::<&[u8]>(&mut received, 2), Ok(data));
    let mut received = wire.clone();
    assert_eq!(
        frame::decode::<&[u8]>(&mut received, 1),
        Err(DecodeError::UnsupportedVersion(2))
    );
});
