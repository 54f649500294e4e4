//! The one frame codec of the project: a version byte, a postcard payload, a CRC-32C, COBS and a
//! `0x00` delimiter, for every byte stream that crosses a boundary (firmware
//! [telemetry](crate::telemetry) to the host, the host service to its GPU worker).
//!
//! # Wire format
//! ```text
//! COBS( version:u8 | postcard(value) | crc32c:u32 little-endian ) 0x00
//! ```
//!
//! - `version` says how to read the payload. A reader names the versions it accepts and
//!   refuses any other with [`DecodeError::UnsupportedVersion`] before it looks further (a later
//!   version may change what follows the version byte), so it never misreads a frame.
//! - The payload is the value serialized with postcard (varints, enum variants by index).
//! - The CRC is CRC-32C (Castagnoli, as in [`checkpoint`](crate::checkpoint); check value
//!   `0xE3069283` for the ASCII bytes `123456789`) over the version byte and the payload: COBS
//!   finds frame boundaries but detects no corruption, the CRC does.
//! - COBS (Consistent Overhead Byte Stuffing) removes every `0x00` from the frame, so a single
//!   `0x00` ends it and a receiver that joins a stream in the middle (or loses bytes) finds the
//!   next frame at the next `0x00`. It adds one byte per 254, plus one
//!   ([`max_frame_len`]).
//!
//! # Encoding, decoding, scanning
//! - `encode` (feature `serde`) writes a frame into a caller's buffer, in one pass: the value
//!   is serialized straight into its COBS encoding while the CRC is computed, with no copy and
//!   no allocation. `encode_vec` (features `serde` and `std`) writes into a `Vec` that grows.
//! - [`open`] checks a received frame in place (COBS, length, version, CRC) and gives its
//!   version and payload; `decode` (feature `serde`) also deserializes the payload, strictly
//!   (every payload byte is used). A reader of several versions opens the frame, then reads the
//!   payload of each version with its own type (`decode_payload`). A reader whose every
//!   version keeps the envelope opens frames of any version with [`open_any_version`].
//! - [`Scanner`] splits a byte stream into frames at the delimiter: a sans-IO state machine fed
//!   whatever bytes arrive, that keeps at most one frame (in a [`FrameBuf`] the caller chooses:
//!   a `heapless::Vec`, or with `std` a `Vec`) and refuses a longer one. `Scanner::read_blocking`
//!   (feature `std`) drives it from a `std::io::BufRead`; `rustkernel-tokio` drives the same
//!   scanner from a tokio `AsyncBufRead`.
//!
//! Any bytes at all give a value or a typed error; nothing here panics or allocates (but the
//! `Vec`s of the `std` feature).
//!
//! # The checkpoint frame keeps its own header
//! [`checkpoint`](crate::checkpoint) frames are records at rest (a file, a flash sector), not
//! frames in a stream, and keep their fixed 25-byte header (magic, version, kernel id, sequence,
//! payload length, CRC) for three reasons:
//! - Nothing has to find their boundaries in a stream, which is all COBS is for; it would cost a
//!   pass over every checkpoint and up to 0.4 % of its size for nothing.
//! - A supervisor picks the newest checkpoint of the right kernel from the headers alone
//!   (`peek_header`), and a reader of flash learns from the first 25 bytes how many more to read
//!   (`frame_len`); a COBS frame's length is known only at its delimiter, and its fields only
//!   after decoding all of it.
//! - The magic `RKCP` tells a checkpoint file from any other file.
//!
//! They share what a frame and a checkpoint have in common: postcard for the payload and
//! CRC-32C over everything but the CRC.
//!
//! # Example
//! ```
//! # #[cfg(feature = "serde")] {
//! use rustkernel_core::frame::{self, DecodeError, Found, Scanner};
//!
//! let mut buf = [0u8; 64];
//! let wire = frame::encode(3, &(7u32, "seven"), &mut buf).unwrap();
//! assert_eq!(wire.last(), Some(&frame::DELIMITER));
//!
//! // A stream cut anywhere: the scanner finds the frame once its delimiter has come.
//! let mut scanner = Scanner::new(heapless::Vec::<u8, 64>::new(), 64);
//! let mut found = None;
//! for piece in wire.chunks(5) {
//!     let (used, event) = scanner.push(piece);
//!     assert_eq!(used, piece.len());
//!     found = found.or(event);
//! }
//! assert_eq!(found, Some(Found::Frame));
//! let value: (u32, &str) = frame::decode(scanner.frame(), 3).unwrap();
//! assert_eq!(value, (7, "seven"));
//!
//! // A reader of version 3 only refuses version 4 before it reads on.
//! let mut buf = [0u8; 64];
//! let mut wire = frame::encode(4, &1u8, &mut buf).unwrap().to_vec();
//! assert_eq!(
//!     frame::decode::<u8>(&mut wire, 3),
//!     Err(DecodeError::UnsupportedVersion(4))
//! );
//! # }
//! ```

use core::fmt;

mod cobs;
mod scanner;

#[cfg(feature = "std")]
mod blocking;

#[cfg(all(feature = "serde", feature = "std"))]
pub use blocking::encode_vec;
pub use scanner::{Found, FrameBuf, Scanner};

/// Ends every encoded frame; it appears nowhere else in one.
pub const DELIMITER: u8 = 0x00;

/// Bytes a frame adds to its payload before COBS: the version byte and the CRC.
const ENVELOPE_LEN: usize = 1 + CRC_LEN;

/// Bytes of the CRC at the end of a frame.
const CRC_LEN: usize = 4;

/// The longest encoded frame, delimiter included, whose payload takes `payload_len` bytes: a
/// buffer this long holds any such frame.
#[must_use]
pub const fn max_frame_len(payload_len: usize) -> usize {
    cobs::max_encoded_len(payload_len.saturating_add(ENVELOPE_LEN)).saturating_add(1)
}

/// The CRC's implementation: bit by bit without `std` (frames are short there, and a table
/// would cost flash), sixteen 1 KiB tables at a time with it (GPU frames run to a gigabyte).
/// Both compute the same CRC.
#[cfg(feature = "std")]
type CrcImpl = crc::Table<16>;
#[cfg(not(feature = "std"))]
type CrcImpl = crc::NoTable;

/// CRC-32C (`CRC_32_ISCSI`).
static CRC32C: crc::Crc<u32, CrcImpl> = crc::Crc::<u32, CrcImpl>::new(&crc::CRC_32_ISCSI);

/// Why a value could not be encoded.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
#[cfg_attr(feature = "defmt", derive(defmt::Format))]
#[non_exhaustive]
pub enum EncodeError {
    /// The buffer cannot hold the encoded frame.
    BufferTooSmall,
    /// The serializer refused the value (postcard cannot write a sequence of unknown length).
    Serialize,
}

impl fmt::Display for EncodeError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            EncodeError::BufferTooSmall => f.write_str("buffer too small for the frame"),
            EncodeError::Serialize => f.write_str("value could not be serialized"),
        }
    }
}

impl core::error::Error for EncodeError {}

/// Why bytes are not a frame, in the order [`open`] and `decode` check.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
#[cfg_attr(feature = "defmt", derive(defmt::Format))]
#[non_exhaustive]
pub enum DecodeError {
    /// No bytes (or only the delimiter).
    Empty,
    /// Not a valid COBS encoding (a `0x00` inside, a code pointing past the end).
    Cobs,
    /// The version byte is none of those the reader accepts.
    UnsupportedVersion(u8),
    /// Shorter than a version byte and a CRC.
    Truncated,
    /// The CRC does not match: the bytes were corrupted.
    CrcMismatch,
    /// The CRC matches but the payload is not a value of the type read.
    Malformed,
    /// Bytes are left after the payload's value.
    TrailingBytes,
}

impl fmt::Display for DecodeError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            DecodeError::Empty => f.write_str("empty frame"),
            DecodeError::Cobs => f.write_str("invalid COBS encoding"),
            DecodeError::Truncated => f.write_str("frame truncated"),
            DecodeError::UnsupportedVersion(version) => {
                write!(f, "unsupported frame version {version}")
            }
            DecodeError::CrcMismatch => f.write_str("CRC mismatch"),
            DecodeError::Malformed => f.write_str("malformed payload"),
            DecodeError::TrailingBytes => f.write_str("trailing bytes after the payload"),
        }
    }
}

impl core::error::Error for DecodeError {}

/// A frame whose COBS, version and CRC checked out: what [`open`] gives.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub struct Frame<'a> {
    /// The version byte: one of those the reader accepts ([`open`]), or any
    /// ([`open_any_version`]).
    pub version: u8,
    /// The postcard payload, CRC removed.
    pub payload: &'a [u8],
}

/// Encodes `value` as a frame of `version` into the front of `buf` and returns the encoded
/// bytes, `0x00` delimiter included. One pass, no copy: the value is serialized straight into
/// its COBS encoding.
///
/// # Errors
/// [`EncodeError::BufferTooSmall`] when `buf` cannot hold the frame (a buffer of
/// [`max_frame_len`] of the payload's length always can), [`EncodeError::Serialize`] when
/// postcard refuses the value.
#[cfg(feature = "serde")]
pub fn encode<'b, T: serde::Serialize + ?Sized>(
    version: u8,
    value: &T,
    buf: &'b mut [u8],
) -> Result<&'b [u8], EncodeError> {
    let out = encode_into(version, value, cobs::SliceSink { buf, len: 0 })?;
    let cobs::SliceSink { buf, len } = out;
    let buf: &'b [u8] = buf;
    buf.get(..len).ok_or(EncodeError::BufferTooSmall)
}

/// Encodes a frame onto the end of `out`, delimiter included, and gives `out` back.
#[cfg(feature = "serde")]
fn encode_into<S: cobs::Sink, T: serde::Serialize + ?Sized>(
    version: u8,
    value: &T,
    mut out: S,
) -> Result<S, EncodeError> {
    let cobs = cobs::Encoder::start(&mut out).ok_or(EncodeError::BufferTooSmall)?;
    let framer = Framer {
        out,
        cobs,
        crc: CRC32C.digest(),
        stage: [0; STAGE],
        staged: 0,
    };
    // A tuple is its fields back to back in postcard: the version byte, then the value.
    postcard::serialize_with_flavor(&(version, value), framer).map_err(|error| match error {
        postcard::Error::SerializeBufferFull => EncodeError::BufferTooSmall,
        _ => EncodeError::Serialize,
    })
}

/// Bytes the encoder gathers before it runs them through the CRC and COBS: postcard writes a
/// few bytes at a time, and the table CRC and the COBS runs go faster over longer pieces
/// (a 64 MiB GPU request encodes in about half the time). None without `std`, where frames are
/// short and the buffer would take stack and flash.
#[cfg(feature = "serde")]
const STAGE: usize = if cfg!(feature = "std") { 4096 } else { 0 };

/// A postcard flavor that feeds every serialized byte to the CRC and to the COBS encoder, and
/// ends the frame (CRC, last code, delimiter) when serialization is done.
#[cfg(feature = "serde")]
struct Framer<S> {
    out: S,
    cobs: cobs::Encoder,
    crc: crc::Digest<'static, u32, CrcImpl>,
    stage: [u8; STAGE],
    staged: usize,
}

#[cfg(feature = "serde")]
impl<S: cobs::Sink> Framer<S> {
    /// Runs `data` through the CRC and COBS.
    fn emit(&mut self, data: &[u8]) -> Option<()> {
        self.crc.update(data);
        self.cobs.write(&mut self.out, data)
    }

    /// Runs the gathered bytes through the CRC and COBS.
    fn flush(&mut self) -> Option<()> {
        let staged = self.staged;
        self.staged = 0;
        let Self {
            out,
            cobs,
            crc,
            stage,
            ..
        } = self;
        let data = stage.get(..staged)?;
        crc.update(data);
        cobs.write(out, data)
    }
}

#[cfg(feature = "serde")]
impl<S: cobs::Sink> postcard::ser_flavors::Flavor for Framer<S> {
    type Output = S;

    fn try_extend(&mut self, data: &[u8]) -> postcard::Result<()> {
        let full = || postcard::Error::SerializeBufferFull;
        if STAGE == 0 {
            return self.emit(data).ok_or_else(full);
        }
        let end = self.staged.saturating_add(data.len());
        if end > STAGE {
            self.flush().ok_or_else(full)?;
            if data.len() >= STAGE {
                return self.emit(data).ok_or_else(full);
            }
        }
        let at = self.staged;
        self.stage
            .get_mut(at..at.saturating_add(data.len()))
            .ok_or_else(full)?
            .copy_from_slice(data);
        self.staged = at.saturating_add(data.len());
        Ok(())
    }

    fn try_push(&mut self, data: u8) -> postcard::Result<()> {
        self.try_extend(&[data])
    }

    fn finalize(mut self) -> postcard::Result<S> {
        let flushed = if STAGE == 0 { Some(()) } else { self.flush() };
        let Framer {
            mut out,
            mut cobs,
            crc,
            ..
        } = self;
        let ended = flushed
            .and_then(|()| cobs.write(&mut out, &crc.finalize().to_le_bytes()))
            .and_then(|()| cobs.finish(&mut out))
            .and_then(|()| out.append(&[DELIMITER]));
        ended
            .map(|()| out)
            .ok_or(postcard::Error::SerializeBufferFull)
    }
}

/// Checks one received frame, in place: `bytes` are the frame as received, with or without its
/// trailing delimiter, and are overwritten by the COBS decoding. Gives the frame's version
/// (one of `versions`) and its payload.
///
/// # Errors
/// In the order checked: [`DecodeError::Empty`], [`DecodeError::Cobs`],
/// [`DecodeError::UnsupportedVersion`] (as soon as there is a version byte, before the length
/// and the CRC: another version may be laid out otherwise), [`DecodeError::Truncated`] (shorter
/// than a version byte and a CRC), [`DecodeError::CrcMismatch`].
pub fn open<'a>(bytes: &'a mut [u8], versions: &[u8]) -> Result<Frame<'a>, DecodeError> {
    open_if(bytes, |version| versions.contains(&version))
}

/// Checks one received frame like [`open`], whatever its version: COBS, length and CRC. For a
/// reader whose every version keeps this envelope, so that it can tell a whole frame of a
/// version it does not read from a corrupted one, and read what all its versions share (a
/// newer telemetry sender's hello, see [`telemetry`](crate::telemetry#versions)).
///
/// # Errors
/// In the order checked: [`DecodeError::Empty`], [`DecodeError::Cobs`],
/// [`DecodeError::Truncated`], [`DecodeError::CrcMismatch`]; never
/// [`DecodeError::UnsupportedVersion`].
pub fn open_any_version(bytes: &mut [u8]) -> Result<Frame<'_>, DecodeError> {
    open_if(bytes, |_| true)
}

/// [`open`], with the versions read as a test on the version byte.
fn open_if(bytes: &mut [u8], reads: impl Fn(u8) -> bool) -> Result<Frame<'_>, DecodeError> {
    let end = match bytes.last() {
        Some(&DELIMITER) => bytes.len().saturating_sub(1),
        _ => bytes.len(),
    };
    let bytes = bytes.get_mut(..end).ok_or(DecodeError::Empty)?;
    if bytes.is_empty() {
        return Err(DecodeError::Empty);
    }
    let len = cobs::decode_in_place(bytes).ok_or(DecodeError::Cobs)?;
    let bytes: &[u8] = bytes;
    let raw = bytes.get(..len).ok_or(DecodeError::Cobs)?;
    let (&version, rest) = raw.split_first().ok_or(DecodeError::Truncated)?;
    if !reads(version) {
        return Err(DecodeError::UnsupportedVersion(version));
    }
    let crc_at = rest
        .len()
        .checked_sub(CRC_LEN)
        .ok_or(DecodeError::Truncated)?;
    let (payload, crc) = rest
        .split_at_checked(crc_at)
        .ok_or(DecodeError::Truncated)?;
    let body = raw.get(..=crc_at).ok_or(DecodeError::Truncated)?;
    let sent: [u8; CRC_LEN] = crc.try_into().map_err(|_| DecodeError::Truncated)?;
    if CRC32C.checksum(body) != u32::from_le_bytes(sent) {
        return Err(DecodeError::CrcMismatch);
    }
    Ok(Frame { version, payload })
}

/// Deserializes a payload from [`open`] as a `T`, strictly: every byte must be used.
///
/// # Errors
/// [`DecodeError::Malformed`] when the bytes are not a `T`, [`DecodeError::TrailingBytes`] when
/// bytes are left after it.
#[cfg(feature = "serde")]
pub fn decode_payload<'a, T: serde::Deserialize<'a>>(payload: &'a [u8]) -> Result<T, DecodeError> {
    let (value, rest) =
        postcard::take_from_bytes::<T>(payload).map_err(|_| DecodeError::Malformed)?;
    if !rest.is_empty() {
        return Err(DecodeError::TrailingBytes);
    }
    Ok(value)
}

/// Decodes one received frame of `version`, in place ([`open`], then [`decode_payload`]).
///
/// # Errors
/// Those of [`open`] (a frame of another version is [`DecodeError::UnsupportedVersion`]), then
/// those of [`decode_payload`].
#[cfg(feature = "serde")]
pub fn decode<'a, T: serde::Deserialize<'a>>(
    bytes: &'a mut [u8],
    version: u8,
) -> Result<T, DecodeError> {
    decode_payload(open(bytes, &[version])?.payload)
}

#[cfg(test)]
#[allow(clippy::indexing_slicing)] // the tests index frames they built themselves
mod tests {
    extern crate std;
    use super::*;
    use std::string::ToString;
    use std::vec::Vec;

    /// `version | payload | crc` wrapped in COBS and a delimiter, built without the encoder.
    fn by_hand(version: u8, payload: &[u8]) -> Vec<u8> {
        let mut raw = Vec::from([version]);
        raw.extend_from_slice(payload);
        let crc = CRC32C.checksum(&raw);
        raw.extend_from_slice(&crc.to_le_bytes());
        let mut wire = std::vec![0u8; cobs::max_encoded_len(raw.len()) + 1];
        let n = cobs::encode(&raw, &mut wire).expect("fits");
        wire.truncate(n);
        wire.push(DELIMITER);
        wire
    }

    #[test]
    fn crc_is_crc32c() {
        assert_eq!(CRC32C.checksum(b"123456789"), 0xE306_9283);
    }

    #[cfg(feature = "serde")]
    #[test]
    fn encode_writes_the_layout_and_decode_reads_it() {
        let value = (300u16, -2i8, [0u8; 3], "zero");
        let mut room = [0u8; 32];
        let payload = postcard::to_slice(&value, &mut room).expect("ser").to_vec();
        let wire = by_hand(9, &payload);
        let mut buf = [0u8; 64];
        assert_eq!(encode(9, &value, &mut buf), Ok(&wire[..]));
        assert!(wire.len() <= max_frame_len(payload.len()));
        assert_eq!(wire.iter().filter(|&&b| b == DELIMITER).count(), 1);

        let mut received = wire.clone();
        let frame = open(&mut received, &[1, 9]).expect("opens");
        assert_eq!((frame.version, frame.payload), (9, &payload[..]));
        let mut received = wire.clone();
        assert_eq!(decode(&mut received, 9), Ok(value));
        // The delimiter is optional.
        let mut received = wire[..wire.len() - 1].to_vec();
        assert_eq!(decode(&mut received, 9), Ok(value));
    }

    #[cfg(feature = "serde")]
    #[test]
    fn small_buffers_are_refused_and_every_length_that_fits_works() {
        let value = &[0x55u8; 600][..]; // COBS block boundaries on the way
        let needed = max_frame_len(600 + 2);
        let mut buf = std::vec![0u8; needed];
        let len = encode(1, &value, &mut buf).expect("fits").len();
        for short in 0..len {
            assert_eq!(
                encode(1, &value, &mut buf[..short]),
                Err(EncodeError::BufferTooSmall),
                "{short}"
            );
        }
        let mut wire = encode(1, &value, &mut buf[..len]).expect("fits").to_vec();
        assert_eq!(decode(&mut wire, 1), Ok(value));
    }

    #[cfg(feature = "serde")]
    #[test]
    fn a_value_postcard_refuses_is_a_serialize_error() {
        struct Unsized;
        impl serde::Serialize for Unsized {
            fn serialize<S: serde::Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
                use serde::ser::SerializeSeq;
                s.serialize_seq(None)?.end()
            }
        }
        let mut buf = [0u8; 16];
        assert_eq!(encode(1, &Unsized, &mut buf), Err(EncodeError::Serialize));
    }

    #[test]
    fn each_check_has_its_error() {
        assert_eq!(open(&mut [], &[1]), Err(DecodeError::Empty));
        assert_eq!(open(&mut [0], &[1]), Err(DecodeError::Empty));
        assert_eq!(open(&mut [5, 1, 0, 0], &[1]), Err(DecodeError::Cobs));
        assert_eq!(open(&mut [5, 0x11], &[1]), Err(DecodeError::Cobs));
        assert_eq!(open(&mut [0, 2, 1], &[1]), Err(DecodeError::Cobs));
        assert_eq!(open(&mut [4, 1, 2, 3], &[1]), Err(DecodeError::Truncated));
        assert_eq!(open(&mut [1], &[1]), Err(DecodeError::Truncated));
        // A short frame of another version is refused by its version.
        assert_eq!(
            open(&mut [4, 9, 2, 3], &[1]),
            Err(DecodeError::UnsupportedVersion(9))
        );
        // Another version, with a CRC that would match: refused before the CRC.
        assert_eq!(
            open(&mut by_hand(2, &[7]), &[1]),
            Err(DecodeError::UnsupportedVersion(2))
        );
        assert_eq!(
            open(&mut by_hand(2, &[7]), &[]),
            Err(DecodeError::UnsupportedVersion(2))
        );
        let mut wire = by_hand(1, &[7, 8, 9]);
        wire[2] ^= 0x10;
        assert_eq!(open(&mut wire, &[1]), Err(DecodeError::CrcMismatch));
        // Read whatever its version, a frame is still checked to its CRC.
        assert_eq!(
            open_any_version(&mut by_hand(2, &[7])),
            Ok(Frame {
                version: 2,
                payload: &[7]
            })
        );
        assert_eq!(
            open_any_version(&mut [4, 9, 2, 3]),
            Err(DecodeError::Truncated)
        );
        let mut wire = by_hand(9, &[7, 8, 9]);
        wire[1] ^= 0x01; // the version byte: 9 becomes 8
        assert_eq!(open_any_version(&mut wire), Err(DecodeError::CrcMismatch));
        // No payload at all is a frame (of a unit value).
        assert_eq!(
            open(&mut by_hand(1, &[]), &[1]),
            Ok(Frame {
                version: 1,
                payload: &[]
            })
        );
    }

    #[cfg(feature = "serde")]
    #[test]
    fn payload_errors() {
        assert_eq!(
            decode::<bool>(&mut by_hand(1, &[7]), 1),
            Err(DecodeError::Malformed)
        );
        assert_eq!(
            decode::<bool>(&mut by_hand(1, &[1, 1]), 1),
            Err(DecodeError::TrailingBytes)
        );
        assert_eq!(decode::<bool>(&mut by_hand(1, &[1]), 1), Ok(true));
    }

    #[test]
    fn errors_read_well() {
        assert_eq!(
            DecodeError::UnsupportedVersion(9).to_string(),
            "unsupported frame version 9"
        );
        assert_eq!(DecodeError::CrcMismatch.to_string(), "CRC mismatch");
        assert_eq!(
            EncodeError::BufferTooSmall.to_string(),
            "buffer too small for the frame"
        );
    }
}
