//! Helpers the fuzz targets share: COBS, and building valid telemetry frames around arbitrary
//! payloads so that a target can reach the payload decoder past the CRC.

/// The core's own COBS module (its encoder, and its strict use of the `cobs` crate's decoder),
/// compiled again here: it is private to the core, and including its
/// source fuzzes exactly the code the core runs, without widening the core's API.
#[path = "../../core/src/frame/cobs.rs"]
#[allow(dead_code, unreachable_pub)]
mod core_cobs;

use rustkernel_core::telemetry::{DELIMITER, LINE_PREFIX, VERSION};

/// CRC-32C, as the telemetry wire format documents it; computed here independently of the
/// core so that the targets check the documented format, not the core against itself.
static CRC32C: crc::Crc<u32> = crc::Crc::<u32>::new(&crc::CRC_32_ISCSI);

/// The core's COBS functions (its encoder, and the crate decoder it uses).
pub mod cobs {
    /// Bytes that encoding `len` bytes takes at most, not counting the delimiter.
    pub fn max_encoded_len(len: usize) -> usize {
        super::core_cobs::max_encoded_len(len)
    }

    /// Encodes `src` into the front of `dst`; `None` when `dst` is too short.
    pub fn encode(src: &[u8], dst: &mut [u8]) -> Option<usize> {
        super::core_cobs::encode(src, dst)
    }

    /// Decodes `buf` in place and returns the decoded length; `None` when it is not valid COBS.
    pub fn decode_in_place(buf: &mut [u8]) -> Option<usize> {
        super::core_cobs::decode_in_place(buf)
    }
}

/// The wire bytes of a telemetry frame whose postcard payload is `payload`, whatever those bytes
/// are: `COBS(version | payload | crc32c) 0x00`, the core's frame format (core/src/frame.rs)
/// built here without its encoder.
pub fn wire_frame(payload: &[u8]) -> Vec<u8> {
    let mut raw = Vec::with_capacity(payload.len() + 5);
    raw.push(VERSION);
    raw.extend_from_slice(payload);
    raw.extend_from_slice(&CRC32C.checksum(&raw).to_le_bytes());
    let mut wire = vec![0u8; cobs::max_encoded_len(raw.len()) + 1];
    let len = cobs::encode(&raw, &mut wire).expect("the buffer holds the longest encoding");
    wire.truncate(len);
    wire.push(DELIMITER);
    wire
}

/// `frame` (wire bytes) as a line of a text channel: `@RK <hex>\n`.
pub fn wire_line(wire: &[u8]) -> Vec<u8> {
    let mut line = LINE_PREFIX.as_bytes().to_vec();
    for byte in wire {
        line.extend_from_slice(format!("{byte:02x}").as_bytes());
    }
    line.push(b'\n');
    line
}
