//! Consistent Overhead Byte Stuffing: bytes with no `0x00` in them, so `0x00` can end a frame.
//!
//! Cheshire and Baker, "Consistent Overhead Byte Stuffing", IEEE/ACM Transactions on
//! Networking 7(2), 1999. The data is cut at each zero; every piece (at most 254 bytes) is
//! written after a code byte that says how far the next zero (or the next code) is. The
//! encoding adds one byte per 254 bytes of data, plus one.
//!
//! Only the encoder is written here: the firmware links it, and the `cobs` crate's encoder
//! measured 60 B more flash. Frames are decoded (on the host) with the crate's decoder, through
//! [`decode_in_place`].

/// Bytes that encoding `len` bytes takes at most, not counting the `0x00` delimiter.
#[must_use]
pub(crate) const fn max_encoded_len(len: usize) -> usize {
    len.saturating_add(len / 254).saturating_add(1)
}

/// Encodes `src` into the front of `dst` (no delimiter) and returns the length written, or
/// `None` when `dst` is too short.
pub(crate) fn encode(src: &[u8], dst: &mut [u8]) -> Option<usize> {
    let mut code_at = 0usize;
    let mut out = 1usize;
    let mut code: u8 = 1;
    *dst.get_mut(code_at)? = 0; // reserved for the first code
    for &byte in src {
        if byte == 0 {
            *dst.get_mut(code_at)? = code;
            code_at = out;
            *dst.get_mut(code_at)? = 0;
            out = out.checked_add(1)?;
            code = 1;
            continue;
        }
        *dst.get_mut(out)? = byte;
        out = out.checked_add(1)?;
        code = code.saturating_add(1);
        if code == 0xFF {
            *dst.get_mut(code_at)? = code;
            code_at = out;
            *dst.get_mut(code_at)? = 0;
            out = out.checked_add(1)?;
            code = 1;
        }
    }
    *dst.get_mut(code_at)? = code;
    Some(out)
}

/// Decodes `buf` (one encoded frame, no delimiter) in place and returns the decoded length, or
/// `None` when it is not valid COBS. The `cobs` crate's decoder stops at a zero; a frame has
/// none, so one before the end makes it invalid.
#[allow(
    dead_code,
    reason = "its caller, decode_frame, needs the serde feature"
)]
pub(crate) fn decode_in_place(buf: &mut [u8]) -> Option<usize> {
    let len = buf.len();
    let report = ::cobs::decode_in_place_report(buf).ok()?;
    (report.src_used == len).then_some(report.dst_used)
}

#[cfg(test)]
#[allow(clippy::indexing_slicing)]
mod tests {
    extern crate std;
    use super::*;
    use std::vec;
    use std::vec::Vec;

    fn round_trip(data: &[u8]) -> Vec<u8> {
        let mut enc = vec![0xAAu8; max_encoded_len(data.len())];
        let n = encode(data, &mut enc).expect("fits");
        assert!(n <= max_encoded_len(data.len()));
        assert!(!enc[..n].contains(&0), "no zero in {:?}", &enc[..n]);
        let mut dec = enc[..n].to_vec();
        let m = decode_in_place(&mut dec).expect("valid");
        dec.truncate(m);
        assert_eq!(dec, data);
        enc[..n].to_vec()
    }

    #[test]
    fn known_vectors_from_the_paper_and_wikipedia() {
        assert_eq!(round_trip(&[]), [0x01]);
        assert_eq!(round_trip(&[0x00]), [0x01, 0x01]);
        assert_eq!(round_trip(&[0x00, 0x00]), [0x01, 0x01, 0x01]);
        assert_eq!(
            round_trip(&[0x11, 0x22, 0x00, 0x33]),
            [0x03, 0x11, 0x22, 0x02, 0x33]
        );
        assert_eq!(round_trip(&[0x11, 0x00, 0x00, 0x00]), [2, 0x11, 1, 1, 1]);
        let long: Vec<u8> = (1..=254u8).collect();
        let enc = round_trip(&long);
        assert_eq!(enc.len(), 256);
        assert_eq!((enc[0], enc[255]), (0xFF, 0x01));
        let mut longer: Vec<u8> = (1..=255u8).collect();
        longer.push(0);
        round_trip(&longer);
    }

    #[test]
    fn every_short_input_round_trips() {
        for len in 0..600usize {
            let data: Vec<u8> = (0..len)
                .map(|i| u8::try_from(i % 7).expect("small") * 40)
                .collect();
            round_trip(&data);
            let nonzero: Vec<u8> = (0..len)
                .map(|i| u8::try_from(i % 250).expect("small") + 1)
                .collect();
            round_trip(&nonzero);
        }
    }

    #[test]
    fn short_destination_is_none() {
        let mut dst = [0u8; 3];
        assert_eq!(encode(&[1, 2, 3], &mut dst), None);
        assert_eq!(encode(&[1, 2], &mut dst), Some(3));
        assert_eq!(encode(&[], &mut []), None);
    }
}
