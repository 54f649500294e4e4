//! Where the firmware's output goes: telemetry frames and log lines, over Arm semihosting.
//!
//! Semihosting writes reach QEMU's own stdout and stderr (with `-semihosting-config
//! target=native`), byte for byte.
//!
//! - Telemetry: each frame is one text line, `@RK ` and the encoded frame (postcard, CRC-32C,
//!   COBS, see `rustkernel_core::telemetry`) in hex, so that it survives a terminal and mixes
//!   with log lines; `rustkernel telemetry decode` picks the frames out. Plain build: stdout,
//!   next to the log. `defmt` build: stderr, because stdout then carries defmt's binary log.
//! - Log: [`info!`](crate::info) writes a text line with the time since boot on stdout, or,
//!   with the `defmt` feature, a defmt log frame (decode it with `defmt-print -e <elf>`); see
//!   [`log`](crate::log).

use core::cell::Cell;

use cortex_m_semihosting::hio::{self, HostStream};
use critical_section::Mutex;
use rustkernel_core::telemetry::{self, LINE_PREFIX, MAX_FRAME_LEN, TelemetryFrame};

/// The semihosting handles, opened on first use.
static STDOUT: Mutex<Cell<Option<HostStream>>> = Mutex::new(Cell::new(None));
static STDERR: Mutex<Cell<Option<HostStream>>> = Mutex::new(Cell::new(None));

/// The host stream a telemetry line goes to.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Stream {
    Stdout,
    Stderr,
}

fn write(stream: Stream, bytes: &[u8]) {
    critical_section::with(|cs| {
        let cell = match stream {
            Stream::Stdout => STDOUT.borrow(cs),
            Stream::Stderr => STDERR.borrow(cs),
        };
        let handle = cell.get().or_else(|| match stream {
            Stream::Stdout => hio::hstdout().ok(),
            Stream::Stderr => hio::hstderr().ok(),
        });
        if let Some(mut handle) = handle {
            cell.set(Some(handle));
            // Nothing to do about a host that refuses output: the frame is lost, as on a UART.
            let _ = handle.write_all(bytes);
        }
    });
}

/// Telemetry lines go to stdout, or to stderr when stdout carries defmt's binary log.
const TELEMETRY: Stream = if cfg!(feature = "defmt") {
    Stream::Stderr
} else {
    Stream::Stdout
};

/// A line: `@RK `, two hex digits per encoded byte, `\n`.
const LINE_LEN: usize = LINE_PREFIX.len() + 2 * MAX_FRAME_LEN + 1;

/// Encodes `frame` and writes it as one `@RK <hex>` line. Returns `false` when the frame could
/// not be encoded (it never happens for frames within the format's bounds).
pub fn emit(frame: &TelemetryFrame) -> bool {
    let mut encoded = [0u8; MAX_FRAME_LEN];
    let Ok(bytes) = telemetry::encode_frame(frame, &mut encoded) else {
        return false;
    };
    let mut line = [0u8; LINE_LEN];
    let mut len = 0usize;
    let mut put = |byte: u8| {
        if let Some(slot) = line.get_mut(len) {
            *slot = byte;
            len += 1;
        }
    };
    LINE_PREFIX.bytes().for_each(&mut put);
    for &byte in bytes {
        for nibble in [byte >> 4, byte & 0x0F] {
            put(if nibble < 10 { b'0' } else { b'a' - 10 } + nibble);
        }
    }
    put(b'\n');
    write(TELEMETRY, line.get(..len).unwrap_or_default());
    true
}

/// Writes `bytes` to stdout (log lines).
pub fn write_stdout(bytes: &[u8]) {
    write(Stream::Stdout, bytes);
}

/// Writes `text` to stderr at once (for the panic handler and fatal errors).
pub fn write_stderr(text: &str) {
    write(Stream::Stderr, text.as_bytes());
}
