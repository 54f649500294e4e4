//! Consistent Overhead Byte Stuffing: bytes with no `0x00` in them, so `0x00` can end a frame.
//!
//! Cheshire and Baker, "Consistent Overhead Byte Stuffing", IEEE/ACM Transactions on
//! Networking 7(2), 1999. The data is cut at each zero; every piece (at most 254 bytes) is
//! written after a code byte that says how far the next zero (or the next code) is. The
//! encoding adds one byte per 254 bytes of data, plus one.
//!
//! The encoder is written here, as a stream ([`Encoder`]) so that the frame codec serializes
//! straight into the encoding in one pass, without a copy of the frame; the firmware links it
//! (the `cobs` crate's encoder measured 60 B more flash). Frames are decoded with the crate's
//! decoder, through [`decode_in_place`], which is strict about a zero inside a frame.
//!
//! The file stands alone (no `crate::` paths): the fuzz crate compiles it again to fuzz
//! exactly this code.

/// Bytes that encoding `len` bytes takes at most, not counting the `0x00` delimiter.
#[must_use]
pub(crate) const fn max_encoded_len(len: usize) -> usize {
    len.saturating_add(len / 254).saturating_add(1)
}

/// Where an [`Encoder`] writes: bytes are appended, and a block's code byte is written back
/// into the place kept for it once the block is complete. `None` means no room.
pub(crate) trait Sink {
    /// Bytes written so far.
    fn written(&self) -> usize;
    /// Appends `bytes`, all or none.
    fn append(&mut self, bytes: &[u8]) -> Option<()>;
    /// Overwrites the byte at `at` (below [`written`](Self::written)).
    fn set(&mut self, at: usize, byte: u8) -> Option<()>;
}

/// A caller's slice, filled from the front.
pub(crate) struct SliceSink<'b> {
    /// The slice.
    pub(crate) buf: &'b mut [u8],
    /// Bytes written at its front.
    pub(crate) len: usize,
}

impl Sink for SliceSink<'_> {
    fn written(&self) -> usize {
        self.len
    }

    fn append(&mut self, bytes: &[u8]) -> Option<()> {
        let end = self.len.checked_add(bytes.len())?;
        self.buf.get_mut(self.len..end)?.copy_from_slice(bytes);
        self.len = end;
        Some(())
    }

    fn set(&mut self, at: usize, byte: u8) -> Option<()> {
        *self.buf.get_mut(at)? = byte;
        Some(())
    }
}

/// Encodes a stream of bytes as it comes, in pieces of any size.
pub(crate) struct Encoder {
    /// Where the open block's code byte goes.
    code_at: usize,
    /// The open block's code: one more than its data bytes so far.
    code: u8,
}

impl Encoder {
    /// Opens the first block at the end of `out`.
    pub(crate) fn start(out: &mut impl Sink) -> Option<Self> {
        let code_at = out.written();
        out.append(&[0])?; // kept for the code
        Some(Self { code_at, code: 1 })
    }

    /// Encodes `bytes` onto `out`.
    pub(crate) fn write(&mut self, out: &mut impl Sink, mut bytes: &[u8]) -> Option<()> {
        while !bytes.is_empty() {
            // Data bytes the open block still takes (a block holds at most 254).
            let room = usize::from(0xFF_u8.saturating_sub(self.code));
            let window = bytes.get(..room.min(bytes.len()))?;
            let (run, zero) = match window.iter().position(|&b| b == 0) {
                Some(at) => (at, true),
                None => (window.len(), false),
            };
            out.append(bytes.get(..run)?)?;
            self.code = self.code.saturating_add(u8::try_from(run).ok()?);
            if zero || self.code == 0xFF {
                self.close(out)?;
            }
            bytes = bytes.get(run.saturating_add(usize::from(zero))..)?;
        }
        Some(())
    }

    /// Closes the last block; `out` then holds the whole encoding (no delimiter).
    pub(crate) fn finish(self, out: &mut impl Sink) -> Option<()> {
        out.set(self.code_at, self.code)
    }

    /// Writes the open block's code and opens the next block.
    fn close(&mut self, out: &mut impl Sink) -> Option<()> {
        out.set(self.code_at, self.code)?;
        self.code_at = out.written();
        out.append(&[0])?;
        self.code = 1;
        Some(())
    }
}

/// Encodes `src` into the front of `dst` (no delimiter) and returns the length written, or
/// `None` when `dst` is too short.
#[allow(
    dead_code,
    reason = "the frame codec streams; tests and the fuzz crate call this"
)]
pub(crate) fn encode(src: &[u8], dst: &mut [u8]) -> Option<usize> {
    let mut out = SliceSink { buf: dst, len: 0 };
    let mut encoder = Encoder::start(&mut out)?;
    encoder.write(&mut out, src)?;
    encoder.finish(&mut out)?;
    Some(out.len)
}

/// Decodes `buf` (one encoded frame, no delimiter) in place and returns the decoded length, or
/// `None` when it is not valid COBS. The `cobs` crate's decoder stops at a zero; a frame has
/// none, so one before the end makes it invalid.
#[allow(
    dead_code,
    reason = "its caller, the frame decoder, needs the serde feature"
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

    /// The one-shot encoder this module had before it streamed: the stream must write its
    /// bytes exactly (telemetry on the wire does not change).
    fn one_shot(src: &[u8]) -> Vec<u8> {
        let mut dst = vec![0u8];
        let mut code_at = 0usize;
        let mut code: u8 = 1;
        for &byte in src {
            if byte == 0 {
                dst[code_at] = code;
                code_at = dst.len();
                dst.push(0);
                code = 1;
                continue;
            }
            dst.push(byte);
            code += 1;
            if code == 0xFF {
                dst[code_at] = code;
                code_at = dst.len();
                dst.push(0);
                code = 1;
            }
        }
        dst[code_at] = code;
        dst
    }

    fn round_trip(data: &[u8]) -> Vec<u8> {
        let mut enc = vec![0xAAu8; max_encoded_len(data.len())];
        let n = encode(data, &mut enc).expect("fits");
        assert!(n <= max_encoded_len(data.len()));
        assert!(!enc[..n].contains(&0), "no zero in {:?}", &enc[..n]);
        assert_eq!(enc[..n], one_shot(data), "{data:?}");
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
    fn the_stream_in_any_pieces_writes_the_same_bytes() {
        let data: Vec<u8> = (0..1_500usize)
            .map(|i| {
                if i % 301 == 0 {
                    0
                } else {
                    u8::try_from(i % 255).expect("small") + 1
                }
            })
            .collect();
        let mut whole = vec![0u8; max_encoded_len(data.len())];
        let n = encode(&data, &mut whole).expect("fits");
        for piece in [1, 2, 7, 253, 254, 255, 1000] {
            let mut buf = vec![0u8; max_encoded_len(data.len())];
            let mut out = SliceSink {
                buf: &mut buf,
                len: 0,
            };
            let mut encoder = Encoder::start(&mut out).expect("room");
            for chunk in data.chunks(piece) {
                encoder.write(&mut out, chunk).expect("room");
            }
            encoder.finish(&mut out).expect("room");
            let len = out.len;
            assert_eq!(&buf[..len], &whole[..n], "pieces of {piece}");
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
