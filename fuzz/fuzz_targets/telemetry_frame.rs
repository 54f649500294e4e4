//! Telemetry frames (core/src/telemetry.rs, `decode_frame`, over the core's frame codec): any
//! bytes give a frame or a typed error, never a panic, and a frame that decodes (of any version
//! read) re-encodes to a frame that decodes to it.
//!
//! The input is used twice: as wire bytes, and as a postcard payload that the target wraps in a
//! valid version, CRC and COBS, so the payload decoder is reached past the CRC.
#![no_main]

use libfuzzer_sys::fuzz_target;
use rustkernel_core::telemetry::{
    self, DELIMITER, MAX_FRAME_LEN, MAX_PAYLOAD_LEN, TelemetryError, TelemetryFrame,
};

/// Re-encodes `frame` and checks the encoding decodes to it again.
fn round_trip(frame: &TelemetryFrame) {
    let mut buf = [0u8; MAX_FRAME_LEN];
    let wire = telemetry::encode_frame(frame, &mut buf).expect("a decoded frame encodes");
    assert_eq!(wire.last(), Some(&DELIMITER));
    assert!(!wire[..wire.len() - 1].contains(&DELIMITER));
    let mut again = wire.to_vec();
    assert_eq!(telemetry::decode_frame(&mut again).as_ref(), Ok(frame));
}

fuzz_target!(|data: &[u8]| {
    let mut bytes = data.to_vec();
    if let Ok(frame) = telemetry::decode_frame(&mut bytes) {
        round_trip(&frame);
    }

    let mut wire = rustkernel_fuzz::wire_frame(data);
    match telemetry::decode_frame(&mut wire) {
        Ok(frame) => round_trip(&frame),
        // A payload too long for the format may be refused as such.
        Err(TelemetryError::TooLong) => assert!(data.len() > MAX_PAYLOAD_LEN),
        // A well-framed payload gets past COBS, the version and the CRC.
        Err(error) => assert!(
            matches!(
                error,
                TelemetryError::Malformed | TelemetryError::TrailingBytes
            ),
            "{error:?} for a well-framed payload"
        ),
    }
});
