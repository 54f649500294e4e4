//! A frame for checkpoints at rest or on the wire: a fixed header, a postcard payload and a CRC.
//!
//! A supervisor that keeps a kernel's [checkpoint](crate::traits::CheckpointableKernel) in
//! flash, in a file or in another process needs to know, when it reads the bytes back, that
//! they are a whole checkpoint of the right kernel, written by a format it understands, and not
//! corrupted. The frame answers each of those with a field, and decoding any bytes at all gives
//! either the checkpoint or a typed [`CheckpointError`], never a panic.
//!
//! Everything works in a buffer the caller provides; nothing allocates.
//!
//! A checkpoint is a record at rest (a file, a flash sector), not a frame in a stream, so it
//! keeps this header rather than the COBS framing of the project's [`frame`](crate::frame) codec,
//! whose module docs give the reasons; the two share postcard for the payload and CRC-32C.
//!
//! # Frame layout
//! All integers are little-endian. The header is [`HEADER_LEN`] = 25 bytes:
//!
//! | Offset | Size | Field          | Contents                                                      |
//! |-------:|-----:|----------------|---------------------------------------------------------------|
//! |      0 |    4 | magic          | [`MAGIC`], the ASCII bytes `RKCP` (`52 4B 43 50`)             |
//! |      4 |    1 | version        | [`VERSION`], currently `1`                                    |
//! |      5 |    4 | kernel id      | `u32`, [`FrameHeader::kernel_id`]                             |
//! |      9 |    8 | sequence       | `u64`, [`FrameHeader::sequence`]                              |
//! |     17 |    4 | payload length | `u32`, the number of payload bytes after the header           |
//! |     21 |    4 | CRC            | `u32`, CRC-32C of bytes `0..21` followed by the payload bytes |
//! |     25 |    n | payload        | the checkpoint, serialized with postcard                      |
//!
//! The frame is exactly `25 + n` bytes long. The CRC covers the header (all of it but the CRC
//! field itself) and the payload, so a flipped bit in the kernel id or the sequence number is
//! caught as surely as one in the payload.
//!
//! The CRC is CRC-32C (Castagnoli; the `crc` crate's `CRC_32_ISCSI`): polynomial `0x1EDC6F41`,
//! reflected input and output, initial value and final XOR `0xFFFFFFFF`, check value
//! `0xE3069283` for the ASCII bytes `123456789`. Its generator has an even number of terms, so
//! it catches every error of an odd number of bits, and `x` has an order above 3 000 000
//! modulo it, so it catches every two-bit error in frames under 300 KB: in such frames any
//! error of up to three bits is detected wherever it falls. Many CPUs compute it in hardware
//! (SSE 4.2, ARMv8).
//!
//! # Decoding
//! `decode` (feature `serde`), [`decode_raw`] and [`peek_header`] check, in this order, and
//! stop at the first failure:
//! 1. the bytes present start like [`MAGIC`], else [`CheckpointError::BadMagic`];
//! 2. the version byte is [`VERSION`], else [`CheckpointError::UnsupportedVersion`];
//! 3. the whole header and the declared payload are present, else
//!    [`CheckpointError::Truncated`] (an empty or short input is truncated, not foreign);
//! 4. nothing follows the declared payload, else [`CheckpointError::LengthMismatch`];
//! 5. the CRC matches, else [`CheckpointError::CrcMismatch`];
//! 6. (`decode` only) the payload deserializes as the requested type and uses every payload
//!    byte, else [`CheckpointError::Decode`] or [`CheckpointError::LengthMismatch`].
//!
//! To read a frame from a stream or from flash, read [`HEADER_LEN`] bytes, ask [`frame_len`]
//! how long the whole frame is, then read the rest.
//!
//! # Example
//! [`encode_raw`] frames bytes that are already serialized (with the `serde` feature,
//! `encode` and `decode` also run postcard):
//!
//! ```
//! use rustkernel_core::checkpoint::{self, CheckpointError, FrameHeader, HEADER_LEN};
//!
//! let header = FrameHeader::new(0x0102_0304, 7);
//! let mut buf = [0u8; 64];
//! let frame = checkpoint::encode_raw(header, &[0xAA, 0xBB], &mut buf)?;
//! assert_eq!(frame.len(), HEADER_LEN + 2);
//! assert_eq!(frame[..5], *b"RKCP\x01");
//! assert_eq!(frame[5..9], [0x04, 0x03, 0x02, 0x01]); // kernel id, little-endian
//! assert_eq!(frame[17..21], [2, 0, 0, 0]); // payload length
//!
//! assert_eq!(checkpoint::decode_raw(frame)?, (header, &[0xAA, 0xBB][..]));
//! assert_eq!(checkpoint::peek_header(&frame[..10]), Err(CheckpointError::Truncated));
//! # Ok::<(), CheckpointError>(())
//! ```

use core::cmp::Ordering;
use core::fmt;

use crc::{CRC_32_ISCSI, Crc};

use crate::error::{Classify, ErrorKind};

/// The first four bytes of every frame: ASCII `RKCP`.
pub const MAGIC: [u8; 4] = *b"RKCP";
/// The frame format version this crate writes and reads.
pub const VERSION: u8 = 1;
/// The length of the header in bytes; the payload starts here.
pub const HEADER_LEN: usize = 25;

const VERSION_AT: usize = 4;
const KERNEL_ID_AT: usize = 5;
const SEQUENCE_AT: usize = 9;
const PAYLOAD_LEN_AT: usize = 17;
const CRC_AT: usize = 21;

/// CRC-32C; a `static` so the 1 KiB table exists once, in read-only memory.
static CASTAGNOLI: Crc<u32> = Crc::<u32>::new(&CRC_32_ISCSI);

/// Which checkpoint a frame holds: the fields the caller chooses when encoding.
///
/// The magic, version, payload length and CRC are filled in by the codec.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Hash)]
#[cfg_attr(feature = "serde", derive(serde::Serialize, serde::Deserialize))]
#[cfg_attr(feature = "defmt", derive(defmt::Format))]
pub struct FrameHeader {
    /// Identifies the kernel the checkpoint belongs to, so a supervisor never restores one
    /// kernel from another's state.
    pub kernel_id: u32,
    /// Increases with every checkpoint of a kernel, so the newest of several can be chosen.
    pub sequence: u64,
}

impl FrameHeader {
    /// A header for checkpoint number `sequence` of kernel `kernel_id`.
    #[must_use]
    pub const fn new(kernel_id: u32, sequence: u64) -> Self {
        Self {
            kernel_id,
            sequence,
        }
    }
}

/// Why a checkpoint frame could not be encoded or decoded.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
#[cfg_attr(feature = "serde", derive(serde::Serialize, serde::Deserialize))]
#[cfg_attr(feature = "defmt", derive(defmt::Format))]
#[non_exhaustive]
pub enum CheckpointError {
    /// Encoding: the buffer cannot hold the header and the payload.
    BufferTooSmall,
    /// Encoding: the payload is longer than the `u32` length field can say.
    PayloadTooLarge,
    /// Decoding: the bytes end before the header, or before the payload the header declares.
    Truncated,
    /// Decoding: the bytes do not start with [`MAGIC`]; they are not a checkpoint frame.
    BadMagic,
    /// Decoding: the frame was written in a format version this crate does not read.
    UnsupportedVersion(u8),
    /// Decoding: bytes follow the declared payload, or the payload holds more than one value.
    LengthMismatch,
    /// Decoding: the CRC does not match the header and payload; the frame is corrupted.
    CrcMismatch,
    /// Encoding: postcard could not serialize the value (for example a sequence of unknown
    /// length).
    Encode,
    /// Decoding: the payload is intact but is not a postcard encoding of the requested type.
    Decode,
}

impl fmt::Display for CheckpointError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            CheckpointError::BufferTooSmall => {
                f.write_str("buffer too small for the checkpoint frame")
            }
            CheckpointError::PayloadTooLarge => {
                f.write_str("checkpoint payload longer than a frame can hold")
            }
            CheckpointError::Truncated => f.write_str("checkpoint frame is truncated"),
            CheckpointError::BadMagic => f.write_str("not a checkpoint frame (bad magic)"),
            CheckpointError::UnsupportedVersion(version) => {
                write!(f, "unsupported checkpoint frame version {version}")
            }
            CheckpointError::LengthMismatch => {
                f.write_str("checkpoint frame length does not match its header")
            }
            CheckpointError::CrcMismatch => f.write_str("checkpoint frame is corrupted (bad CRC)"),
            CheckpointError::Encode => f.write_str("checkpoint could not be serialized"),
            CheckpointError::Decode => {
                f.write_str("checkpoint payload is not a value of the requested type")
            }
        }
    }
}

impl core::error::Error for CheckpointError {}

/// Running out of room is [`ErrorKind::ResourceExhausted`], a value postcard cannot encode is
/// [`ErrorKind::Permanent`], and every decoding failure is [`ErrorKind::InvalidInput`]: reading
/// the same bytes again cannot help, so the supervisor should fall back to another checkpoint
/// or a restart.
impl Classify for CheckpointError {
    fn kind(&self) -> ErrorKind {
        match self {
            CheckpointError::BufferTooSmall | CheckpointError::PayloadTooLarge => {
                ErrorKind::ResourceExhausted
            }
            CheckpointError::Encode => ErrorKind::Permanent,
            CheckpointError::Truncated
            | CheckpointError::BadMagic
            | CheckpointError::UnsupportedVersion(_)
            | CheckpointError::LengthMismatch
            | CheckpointError::CrcMismatch
            | CheckpointError::Decode => ErrorKind::InvalidInput,
        }
    }
}

/// The fixed header fields of a frame, parsed but not yet checked against the CRC.
struct Fixed {
    header: FrameHeader,
    payload_len: usize,
    crc: u32,
}

/// `N` bytes of `bytes` from `at`, if they are all there.
fn read<const N: usize>(bytes: &[u8], at: usize) -> Option<[u8; N]> {
    let end = at.checked_add(N)?;
    bytes.get(at..end)?.try_into().ok()
}

/// Steps 1 to 3 of decoding, for the header only: magic, version, header present.
fn parse_fixed(bytes: &[u8]) -> Result<Fixed, CheckpointError> {
    if bytes.iter().zip(MAGIC).any(|(byte, magic)| *byte != magic) {
        return Err(CheckpointError::BadMagic);
    }
    let version = *bytes.get(VERSION_AT).ok_or(CheckpointError::Truncated)?;
    if version != VERSION {
        return Err(CheckpointError::UnsupportedVersion(version));
    }
    let kernel_id = read(bytes, KERNEL_ID_AT).ok_or(CheckpointError::Truncated)?;
    let sequence = read(bytes, SEQUENCE_AT).ok_or(CheckpointError::Truncated)?;
    let payload_len = read(bytes, PAYLOAD_LEN_AT).ok_or(CheckpointError::Truncated)?;
    let crc = read(bytes, CRC_AT).ok_or(CheckpointError::Truncated)?;
    Ok(Fixed {
        header: FrameHeader::new(u32::from_le_bytes(kernel_id), u64::from_le_bytes(sequence)),
        // A length this target cannot address cannot be present in memory either.
        payload_len: usize::try_from(u32::from_le_bytes(payload_len))
            .map_err(|_| CheckpointError::Truncated)?,
        crc: u32::from_le_bytes(crc),
    })
}

/// The CRC of a frame: the header up to the CRC field, then the payload.
fn frame_crc(covered: &[u8], payload: &[u8]) -> u32 {
    let mut digest = CASTAGNOLI.digest();
    digest.update(covered);
    digest.update(payload);
    digest.finalize()
}

/// Writes the header for `payload` into `head`, which is [`HEADER_LEN`] bytes long.
fn write_header(head: &mut [u8], header: FrameHeader, payload_len: u32, payload: &[u8]) {
    let mut covered = [0u8; CRC_AT];
    let fields = MAGIC
        .into_iter()
        .chain([VERSION])
        .chain(header.kernel_id.to_le_bytes())
        .chain(header.sequence.to_le_bytes())
        .chain(payload_len.to_le_bytes());
    for (dst, src) in covered.iter_mut().zip(fields) {
        *dst = src;
    }
    let crc = frame_crc(&covered, payload);
    for (dst, src) in head
        .iter_mut()
        .zip(covered.into_iter().chain(crc.to_le_bytes()))
    {
        *dst = src;
    }
}

/// How long the frame that starts `prefix` is, header included, from its first
/// [`HEADER_LEN`] bytes.
///
/// Only the magic, the version and the length are checked; the CRC needs the whole frame (see
/// [`peek_header`]).
///
/// # Errors
/// [`CheckpointError::BadMagic`], [`CheckpointError::UnsupportedVersion`], or
/// [`CheckpointError::Truncated`] when `prefix` is shorter than the header.
pub fn frame_len(prefix: &[u8]) -> Result<usize, CheckpointError> {
    let fixed = parse_fixed(prefix)?;
    HEADER_LEN
        .checked_add(fixed.payload_len)
        .ok_or(CheckpointError::Truncated)
}

/// Checks a whole frame, CRC included, and returns its header without deserializing the
/// payload.
///
/// # Errors
/// Any decoding error of the [module's list](self#decoding) but [`CheckpointError::Decode`].
pub fn peek_header(bytes: &[u8]) -> Result<FrameHeader, CheckpointError> {
    decode_raw(bytes).map(|(header, _)| header)
}

/// Checks a whole frame and returns its header and its payload bytes, not deserialized.
///
/// # Errors
/// Any decoding error of the [module's list](self#decoding) but [`CheckpointError::Decode`].
pub fn decode_raw(bytes: &[u8]) -> Result<(FrameHeader, &[u8]), CheckpointError> {
    let fixed = parse_fixed(bytes)?;
    let covered = bytes.get(..CRC_AT).ok_or(CheckpointError::Truncated)?;
    let payload = bytes.get(HEADER_LEN..).ok_or(CheckpointError::Truncated)?;
    match payload.len().cmp(&fixed.payload_len) {
        Ordering::Less => return Err(CheckpointError::Truncated),
        Ordering::Greater => return Err(CheckpointError::LengthMismatch),
        Ordering::Equal => {}
    }
    if frame_crc(covered, payload) != fixed.crc {
        return Err(CheckpointError::CrcMismatch);
    }
    Ok((fixed.header, payload))
}

/// Frames `payload`, bytes already serialized, into the front of `buf`; returns the frame.
///
/// # Errors
/// [`CheckpointError::BufferTooSmall`] when `buf` is shorter than [`HEADER_LEN`] plus the
/// payload, [`CheckpointError::PayloadTooLarge`] when the payload is over `u32::MAX` bytes.
pub fn encode_raw<'b>(
    header: FrameHeader,
    payload: &[u8],
    buf: &'b mut [u8],
) -> Result<&'b [u8], CheckpointError> {
    let payload_len = u32::try_from(payload.len()).map_err(|_| CheckpointError::PayloadTooLarge)?;
    let total = HEADER_LEN
        .checked_add(payload.len())
        .ok_or(CheckpointError::PayloadTooLarge)?;
    let frame = buf
        .get_mut(..total)
        .ok_or(CheckpointError::BufferTooSmall)?;
    let (head, body) = frame
        .split_at_mut_checked(HEADER_LEN)
        .ok_or(CheckpointError::BufferTooSmall)?;
    for (dst, src) in body.iter_mut().zip(payload) {
        *dst = *src;
    }
    write_header(head, header, payload_len, payload);
    Ok(frame)
}

/// Serializes `value` with postcard and frames it into the front of `buf`; returns the frame.
///
/// The value is written straight into `buf` after the header: no second buffer is needed.
///
/// ```
/// use rustkernel_core::checkpoint::{self, CheckpointError, FrameHeader};
///
/// let state: (u32, [f32; 3]) = (12, [0.5, 1.5, 2.5]);
/// let mut buf = [0u8; 64];
/// let frame = checkpoint::encode(FrameHeader::new(3, 1), &state, &mut buf)?;
/// let (header, restored): (FrameHeader, (u32, [f32; 3])) = checkpoint::decode(frame)?;
/// assert_eq!((header.kernel_id, header.sequence), (3, 1));
/// assert_eq!(restored, state);
/// # Ok::<(), CheckpointError>(())
/// ```
///
/// # Errors
/// [`CheckpointError::BufferTooSmall`] when the frame does not fit in `buf`,
/// [`CheckpointError::PayloadTooLarge`] when the payload would be over `u32::MAX` bytes, and
/// [`CheckpointError::Encode`] when postcard cannot serialize the value.
#[cfg(feature = "serde")]
pub fn encode<'b, T: serde::Serialize + ?Sized>(
    header: FrameHeader,
    value: &T,
    buf: &'b mut [u8],
) -> Result<&'b [u8], CheckpointError> {
    let max_payload = usize::try_from(u32::MAX).unwrap_or(usize::MAX);
    let (head, body) = buf
        .split_at_mut_checked(HEADER_LEN)
        .ok_or(CheckpointError::BufferTooSmall)?;
    let capped = body.len() > max_payload;
    let room = body.len().min(max_payload);
    let body = body
        .get_mut(..room)
        .ok_or(CheckpointError::BufferTooSmall)?;
    let used = match postcard::to_slice(value, body) {
        Ok(written) => written.len(),
        Err(postcard::Error::SerializeBufferFull) if capped => {
            return Err(CheckpointError::PayloadTooLarge);
        }
        Err(postcard::Error::SerializeBufferFull) => return Err(CheckpointError::BufferTooSmall),
        Err(_) => return Err(CheckpointError::Encode),
    };
    let payload = body.get(..used).ok_or(CheckpointError::Encode)?;
    let payload_len = u32::try_from(used).map_err(|_| CheckpointError::PayloadTooLarge)?;
    write_header(head, header, payload_len, payload);
    let total = HEADER_LEN
        .checked_add(used)
        .ok_or(CheckpointError::PayloadTooLarge)?;
    let buf: &'b [u8] = buf;
    buf.get(..total).ok_or(CheckpointError::BufferTooSmall)
}

/// Checks a whole frame and deserializes its payload as `T`.
///
/// `T` may borrow from `bytes` (`&str`, `&[u8]`): postcard decodes without copying.
///
/// # Errors
/// Any error of the [module's list](self#decoding).
#[cfg(feature = "serde")]
pub fn decode<'a, T: serde::Deserialize<'a>>(
    bytes: &'a [u8],
) -> Result<(FrameHeader, T), CheckpointError> {
    let (header, payload) = decode_raw(bytes)?;
    let (value, rest) =
        postcard::take_from_bytes::<T>(payload).map_err(|_| CheckpointError::Decode)?;
    if !rest.is_empty() {
        return Err(CheckpointError::LengthMismatch);
    }
    Ok((header, value))
}

#[cfg(test)]
#[allow(clippy::indexing_slicing)] // the tests index frames they built themselves
mod tests {
    extern crate std;
    use super::*;
    use std::string::ToString;
    use std::vec::Vec;

    const HEADER: FrameHeader = FrameHeader::new(0x0102_0304, 0x1122_3344_5566_7788);

    fn raw_frame(payload: &[u8]) -> Vec<u8> {
        let mut buf = [0u8; 128];
        encode_raw(HEADER, payload, &mut buf)
            .expect("fits")
            .to_vec()
    }

    #[test]
    fn crc_is_castagnoli() {
        assert_eq!(CASTAGNOLI.checksum(b"123456789"), 0xE306_9283);
    }

    /// The two facts the module doc uses to claim every error of up to three bits is caught.
    #[test]
    fn generator_catches_every_error_of_up_to_three_bits() {
        let generator: u64 = (1 << 32) | u64::from(CRC_32_ISCSI.poly);
        assert_eq!(generator.count_ones() % 2, 0, "even number of terms");
        // x^k mod generator never returns to 1 for k up to 3 000 000.
        let mut power: u64 = 1;
        for _ in 0..3_000_000 {
            power <<= 1;
            if power >> 32 != 0 {
                power ^= generator;
            }
            assert_ne!(power, 1);
        }
    }

    #[test]
    fn layout_is_as_documented() {
        let frame = raw_frame(&[0xAB, 0xCD, 0xEF]);
        let mut expected = Vec::new();
        expected.extend_from_slice(b"RKCP");
        expected.push(1);
        expected.extend_from_slice(&[0x04, 0x03, 0x02, 0x01]);
        expected.extend_from_slice(&[0x88, 0x77, 0x66, 0x55, 0x44, 0x33, 0x22, 0x11]);
        expected.extend_from_slice(&[3, 0, 0, 0]);
        let crc = CASTAGNOLI.checksum(&[expected.as_slice(), &[0xAB, 0xCD, 0xEF]].concat());
        expected.extend_from_slice(&crc.to_le_bytes());
        expected.extend_from_slice(&[0xAB, 0xCD, 0xEF]);
        assert_eq!(frame, expected);
        assert_eq!(frame.len(), HEADER_LEN + 3);
    }

    #[test]
    fn raw_round_trip_and_header_helpers() {
        let frame = raw_frame(b"state");
        assert_eq!(decode_raw(&frame), Ok((HEADER, &b"state"[..])));
        assert_eq!(peek_header(&frame), Ok(HEADER));
        assert_eq!(frame_len(&frame), Ok(frame.len()));
        assert_eq!(frame_len(&frame[..HEADER_LEN]), Ok(frame.len()));
        let empty = raw_frame(&[]);
        assert_eq!(decode_raw(&empty), Ok((HEADER, &[][..])));
    }

    #[test]
    fn buffer_too_small() {
        let mut buf = [0u8; HEADER_LEN + 2];
        assert_eq!(
            encode_raw(HEADER, &[1, 2, 3], &mut buf),
            Err(CheckpointError::BufferTooSmall)
        );
        assert_eq!(
            encode_raw(HEADER, &[], &mut buf[..HEADER_LEN - 1]),
            Err(CheckpointError::BufferTooSmall)
        );
        assert!(encode_raw(HEADER, &[1, 2], &mut buf).is_ok());
    }

    #[test]
    fn truncated() {
        let frame = raw_frame(b"xyz");
        for len in 0..frame.len() {
            assert_eq!(
                decode_raw(&frame[..len]),
                Err(CheckpointError::Truncated),
                "{len}"
            );
        }
    }

    #[test]
    fn bad_magic() {
        let mut frame = raw_frame(b"xyz");
        frame[2] = b'X';
        assert_eq!(decode_raw(&frame), Err(CheckpointError::BadMagic));
        assert_eq!(decode_raw(b"{}"), Err(CheckpointError::BadMagic));
        assert_eq!(frame_len(b"RKX"), Err(CheckpointError::BadMagic));
    }

    #[test]
    fn unsupported_version() {
        let mut frame = raw_frame(b"xyz");
        frame[VERSION_AT] = 2;
        assert_eq!(
            decode_raw(&frame),
            Err(CheckpointError::UnsupportedVersion(2))
        );
        assert_eq!(
            frame_len(b"RKCP\x00"),
            Err(CheckpointError::UnsupportedVersion(0))
        );
    }

    #[test]
    fn length_mismatch() {
        let mut frame = raw_frame(b"xyz");
        frame.push(0);
        assert_eq!(decode_raw(&frame), Err(CheckpointError::LengthMismatch));
    }

    #[test]
    fn crc_mismatch() {
        let mut frame = raw_frame(b"xyz");
        frame[HEADER_LEN] ^= 0x01;
        assert_eq!(decode_raw(&frame), Err(CheckpointError::CrcMismatch));
        let mut frame = raw_frame(b"xyz");
        frame[SEQUENCE_AT] ^= 0x80;
        assert_eq!(peek_header(&frame), Err(CheckpointError::CrcMismatch));
    }

    #[test]
    fn every_single_bit_flip_is_caught() {
        let frame = raw_frame(b"abc");
        for byte in 0..frame.len() {
            for bit in 0..8 {
                let mut bad = frame.clone();
                bad[byte] ^= 1 << bit;
                assert!(decode_raw(&bad).is_err(), "byte {byte} bit {bit}");
            }
        }
    }

    #[test]
    fn errors_read_well_and_classify() {
        assert_eq!(
            CheckpointError::UnsupportedVersion(9).to_string(),
            "unsupported checkpoint frame version 9"
        );
        assert_eq!(
            CheckpointError::BufferTooSmall.kind(),
            ErrorKind::ResourceExhausted
        );
        assert_eq!(CheckpointError::CrcMismatch.kind(), ErrorKind::InvalidInput);
        assert_eq!(CheckpointError::Encode.kind(), ErrorKind::Permanent);
    }

    #[cfg(feature = "serde")]
    mod serde_codec {
        use super::*;

        #[test]
        fn round_trips_values_and_borrows() {
            let mut buf = [0u8; 64];
            let value = (7u8, -3i64, Some(2.5f64), [true, false]);
            let frame = encode(HEADER, &value, &mut buf).expect("fits");
            assert_eq!(decode(frame), Ok((HEADER, value)));

            let frame = encode(HEADER, "kernel state", &mut buf).expect("fits");
            let (_, text): (FrameHeader, &str) = decode(frame).expect("decodes");
            assert_eq!(text, "kernel state");
        }

        #[test]
        fn encode_matches_raw_framing_of_postcard_bytes() {
            let value = (u32::MAX, 1u16);
            let mut payload = [0u8; 16];
            let payload = postcard::to_slice(&value, &mut payload).expect("fits");
            let mut buf = [0u8; 64];
            let frame = encode(HEADER, &value, &mut buf).expect("fits").to_vec();
            assert_eq!(frame, raw_frame(payload));
        }

        #[test]
        fn encode_buffer_too_small() {
            let mut buf = [0u8; HEADER_LEN + 3];
            assert_eq!(
                encode(HEADER, &[1u8, 2, 3, 4], &mut buf),
                Err(CheckpointError::BufferTooSmall)
            );
            assert_eq!(
                encode(HEADER, &(), &mut buf[..HEADER_LEN - 1]),
                Err(CheckpointError::BufferTooSmall)
            );
        }

        #[test]
        fn encode_error() {
            /// A sequence of unknown length, which postcard refuses.
            struct Unsized;
            impl serde::Serialize for Unsized {
                fn serialize<S: serde::Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
                    use serde::ser::SerializeSeq;
                    s.serialize_seq(None)?.end()
                }
            }
            let mut buf = [0u8; 64];
            assert_eq!(
                encode(HEADER, &Unsized, &mut buf),
                Err(CheckpointError::Encode)
            );
        }

        #[test]
        fn decode_errors() {
            let mut buf = [0u8; 64];
            let frame = encode(HEADER, &7u8, &mut buf).expect("fits");
            assert_eq!(decode::<bool>(frame), Err(CheckpointError::Decode));
            assert_eq!(
                decode::<u32>(&frame[..HEADER_LEN]),
                Err(CheckpointError::Truncated)
            );
            let frame = encode(HEADER, &(1u8, 2u8), &mut buf).expect("fits");
            assert_eq!(decode::<u8>(frame), Err(CheckpointError::LengthMismatch));
            assert_eq!(decode::<(u8, u8, u8)>(frame), Err(CheckpointError::Decode));
        }

        #[test]
        fn types_round_trip_through_postcard() {
            let mut buf = [0u8; 32];
            let bytes = postcard::to_slice(&HEADER, &mut buf).expect("fits");
            assert_eq!(postcard::from_bytes::<FrameHeader>(bytes), Ok(HEADER));
            for error in [
                CheckpointError::UnsupportedVersion(200),
                CheckpointError::CrcMismatch,
            ] {
                let bytes = postcard::to_slice(&error, &mut buf).expect("fits");
                assert_eq!(postcard::from_bytes::<CheckpointError>(bytes), Ok(error));
            }
        }
    }
}
