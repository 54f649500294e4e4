//! COBS (the core's streaming encoder, core/src/frame/cobs.rs, and the `cobs` crate decoder it uses): decoding any bytes never panics, what decodes re-encodes
//! to bytes that decode to the same data, and any data round-trips through the encoder.
#![no_main]

use libfuzzer_sys::fuzz_target;
use rustkernel_fuzz::cobs;

/// Encodes `data`, checks the encoding, and returns it.
fn encode_checked(data: &[u8]) -> Vec<u8> {
    let max = cobs::max_encoded_len(data.len());
    let mut enc = vec![0xAA; max];
    let len = cobs::encode(data, &mut enc).expect("max_encoded_len bytes always hold the encoding");
    assert!(len <= max);
    enc.truncate(len);
    assert!(!enc.contains(&0), "a zero in the encoding of {data:?}");
    // One byte short of the encoding is refused, without a panic.
    let mut short = vec![0u8; len - 1];
    assert_eq!(cobs::encode(data, &mut short), None);
    enc
}

fn decode(enc: &[u8]) -> Option<Vec<u8>> {
    let mut buf = enc.to_vec();
    let len = cobs::decode_in_place(&mut buf)?;
    assert!(len <= enc.len(), "decoded data longer than its encoding");
    buf.truncate(len);
    Some(buf)
}

fuzz_target!(|data: &[u8]| {
    // Arbitrary bytes as an encoding.
    if let Some(decoded) = decode(data) {
        assert!(!data.contains(&0), "decoded bytes that hold a zero");
        let again = encode_checked(&decoded);
        assert_eq!(decode(&again).as_deref(), Some(&decoded[..]));
    }
    // Arbitrary bytes as data.
    let enc = encode_checked(data);
    assert_eq!(decode(&enc).as_deref(), Some(data));
});
