//! Frames of a version newer than this crate reads. Every version keeps the envelope (the
//! [`frame`](crate::frame) format: version byte, postcard, CRC-32C, COBS) and the hello's
//! layout, so a newer sender's hello still reads: a reader sees the device and the version it
//! speaks, and refuses its other frames as [`UnsupportedVersion`](super::TelemetryError) after
//! their CRC checked out, not as corruption.

use serde::Deserialize;

use super::TelemetryFrame;

/// The hello as every version lays it out: variant 0 of the frame enum, then the sender's
/// version, its device id and when it started, each as postcard writes them. A later version
/// may add fields after these (they are read past), never change or remove them; the golden
/// recordings' hellos hold every version to it (`tests/tests/telemetry_golden.rs`).
#[derive(Deserialize)]
enum Frozen {
    Hello {
        version: u8,
        device: u32,
        at_us: u64,
    },
}

/// Reads the hello of a frame of `version` (newer than this crate's) from its payload: `None`
/// for any other kind of frame, or for a hello whose version disagrees with its frame's.
pub(super) fn hello(version: u8, payload: &[u8]) -> Option<TelemetryFrame> {
    let (
        Frozen::Hello {
            version: said,
            device,
            at_us,
        },
        _later_fields,
    ) = postcard::take_from_bytes::<Frozen>(payload).ok()?;
    (said == version).then_some(TelemetryFrame::Hello {
        version,
        device,
        at_us,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The golden version 2 hello's payload (tests/golden/telemetry/v2/): hello, version 2,
    /// device 0x0a386001, at 57 µs.
    const GOLDEN_V2: [u8; 7] = [0, 2, 0x81, 0xc0, 0xe1, 0x51, 0x39];

    fn as_version(version: u8) -> [u8; 7] {
        let mut payload = GOLDEN_V2;
        payload[1] = version;
        payload
    }

    #[test]
    fn a_newer_hello_reads_with_or_without_later_fields() {
        let expected = |version| {
            Some(TelemetryFrame::Hello {
                version,
                device: 0x0a38_6001,
                at_us: 57,
            })
        };
        assert_eq!(hello(3, &as_version(3)), expected(3));
        assert_eq!(hello(255, &as_version(255)), expected(255));
        let mut longer = as_version(3).to_vec();
        longer.extend_from_slice(&[0x07, 0xff, 0x01]);
        assert_eq!(hello(3, &longer), expected(3));
    }

    #[test]
    fn other_frames_and_odd_hellos_do_not_read() {
        // A health frame's layout, a hello cut short, a hello that names another version.
        assert_eq!(hello(3, &[2, 0, 1, 5]), None);
        assert_eq!(hello(3, &as_version(3)[..4]), None);
        assert_eq!(hello(3, &as_version(4)), None);
        assert_eq!(hello(3, &[]), None);
    }
}
