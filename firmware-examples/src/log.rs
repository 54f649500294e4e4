//! A small text logger that does not use `core::fmt`.
//!
//! `core::fmt` with the `Display` impls it drags in costs about 8 KiB of flash in this firmware,
//! a quarter of the 32 KiB goal. [`info!`](crate::info) keeps `format!`'s syntax (`{}` holes,
//! so the same call sites compile against `defmt::info!` in the `defmt` build), but fills the
//! holes at run time through [`LogArg`], which the few types the firmware logs implement by
//! writing their names and digits directly.

use rustkernel_core::error::ErrorKind;
use rustkernel_core::resilience::{
    CircuitState, Escalation, HealthStatus, RecoveryAction, RecoveryStrategy, Transition,
};
use rustkernel_core::time::Instant;

/// The longest log line; longer lines are cut.
pub const LINE_CAPACITY: usize = 160;

/// A log line being written; bytes past [`LINE_CAPACITY`] are dropped.
#[derive(Debug)]
pub struct Line {
    buf: [u8; LINE_CAPACITY],
    len: usize,
}

impl Line {
    /// An empty line.
    #[must_use]
    pub const fn new() -> Self {
        Self {
            buf: [0; LINE_CAPACITY],
            len: 0,
        }
    }

    /// Appends `text`.
    pub fn str(&mut self, text: &str) -> &mut Self {
        self.bytes(text.as_bytes())
    }

    /// Appends one byte.
    pub fn byte(&mut self, byte: u8) -> &mut Self {
        if let Some(slot) = self.buf.get_mut(self.len) {
            *slot = byte;
            self.len += 1;
        }
        self
    }

    /// Appends `value` in decimal, at least `width` digits (zero-padded) when `zeros`, else
    /// right-aligned with spaces to `width`.
    pub fn num(&mut self, value: u64, width: usize, zeros: bool) -> &mut Self {
        let (digits, count) = decimal(value);
        let pad = if zeros { b'0' } else { b' ' };
        for _ in count..width {
            self.byte(pad);
        }
        self.bytes(digits.get(..count).unwrap_or_default())
    }

    /// Appends microseconds as milliseconds with three decimals (`12.345`, `0.012`), the
    /// milliseconds right-aligned with spaces to `width`.
    pub fn millis(&mut self, micros: u64, width: usize) -> &mut Self {
        let (digits, count) = decimal(micros);
        // At least four digits: a whole millisecond, then three decimals.
        let shown = count.max(4);
        let whole = shown - 3;
        for _ in whole..width {
            self.byte(b' ');
        }
        for i in 0..shown {
            if i == whole {
                self.byte(b'.');
            }
            // The first `shown - count` digits are the leading zeros.
            let digit = (i + count)
                .checked_sub(shown)
                .and_then(|at| digits.get(at).copied());
            self.byte(digit.unwrap_or(b'0'));
        }
        self
    }

    fn bytes(&mut self, bytes: &[u8]) -> &mut Self {
        for &byte in bytes {
            self.byte(byte);
        }
        self
    }

    /// The line's bytes.
    #[must_use]
    pub fn as_bytes(&self) -> &[u8] {
        self.buf.get(..self.len).unwrap_or_default()
    }
}

/// The powers of ten a `u64` can hold, largest first.
const POWERS_OF_TEN: [u64; 20] = {
    let mut powers = [1u64; 20];
    let mut i = 19;
    while i > 0 {
        i -= 1;
        // `powers[i + 1] * 10 <= 10^19 < u64::MAX`.
        #[allow(
            clippy::indexing_slicing,
            reason = "evaluated when the firmware is compiled"
        )]
        {
            powers[i] = powers[i + 1] * 10;
        }
    }
    powers
};

/// `value`'s decimal digits (ASCII, most significant first) and how many there are (at least
/// one). By subtracting powers of ten: a Cortex-M has no 64-bit division, and the library's
/// (`__aeabi_uldivmod`) would take about 900 bytes of flash for the log alone.
fn decimal(value: u64) -> ([u8; 20], usize) {
    let mut digits = [0u8; 20];
    let mut count = 0;
    let mut rest = value;
    for power in POWERS_OF_TEN {
        let mut digit = b'0';
        while rest >= power {
            rest -= power;
            digit += 1;
        }
        // Leading zeros are skipped; the last digit is always written.
        if count > 0 || digit != b'0' || power == 1 {
            if let Some(slot) = digits.get_mut(count) {
                *slot = digit;
            }
            count += 1;
        }
    }
    (digits, count)
}

impl Default for Line {
    fn default() -> Self {
        Self::new()
    }
}

/// A value that can fill a `{}` hole of [`info!`](crate::info).
pub trait LogArg {
    /// Writes the value.
    fn log(&self, line: &mut Line);
}

impl LogArg for &str {
    fn log(&self, line: &mut Line) {
        line.str(self);
    }
}

impl LogArg for u32 {
    fn log(&self, line: &mut Line) {
        line.num(u64::from(*self), 0, false);
    }
}

impl LogArg for u64 {
    fn log(&self, line: &mut Line) {
        line.num(*self, 0, false);
    }
}

impl LogArg for usize {
    fn log(&self, line: &mut Line) {
        line.num(u64::try_from(*self).unwrap_or(u64::MAX), 0, false);
    }
}

impl LogArg for ErrorKind {
    fn log(&self, line: &mut Line) {
        line.str(self.as_str());
    }
}

impl LogArg for CircuitState {
    fn log(&self, line: &mut Line) {
        line.str(self.as_str());
    }
}

impl LogArg for Transition {
    fn log(&self, line: &mut Line) {
        line.str(self.from.as_str())
            .str(" -> ")
            .str(self.to.as_str());
        if let Some(trip) = self.trip {
            line.str(" (").str(trip.reason.as_str()).str(")");
        }
    }
}

impl LogArg for HealthStatus {
    fn log(&self, line: &mut Line) {
        line.str(self.as_str());
    }
}

impl LogArg for RecoveryStrategy {
    fn log(&self, line: &mut Line) {
        line.str(self.as_str());
    }
}

impl LogArg for Instant {
    fn log(&self, line: &mut Line) {
        line.millis(self.as_micros(), 0).str(" ms");
    }
}

impl LogArg for Escalation {
    fn log(&self, line: &mut Line) {
        match self {
            Escalation::To(strategy) => line.str("escalated to ").str(strategy.as_str()),
            Escalation::GaveUp => line.str("gave up"),
        };
    }
}

impl LogArg for RecoveryAction {
    fn log(&self, line: &mut Line) {
        match self {
            RecoveryAction::Restart { at, attempt } => {
                line.str("restart at ");
                at.log(line);
                line.str(" (attempt ")
                    .num(u64::from(*attempt), 0, false)
                    .str(")");
            }
            RecoveryAction::RestartPending { at, attempt } => {
                line.str("restart pending at ");
                at.log(line);
                line.str(" (attempt ")
                    .num(u64::from(*attempt), 0, false)
                    .str(")");
            }
            RecoveryAction::UseReplica => {
                line.str("use replica");
            }
            RecoveryAction::Degrade => {
                line.str("degrade");
            }
            RecoveryAction::Failover => {
                line.str("fail over");
            }
            RecoveryAction::NotifyOperator => {
                line.str("notify operator");
            }
            RecoveryAction::Escalate(strategy) => {
                line.str("escalate to ").str(strategy.as_str());
            }
            RecoveryAction::GiveUp => {
                line.str("give up");
            }
            RecoveryAction::AlreadyEscalated(escalation) => {
                line.str("already ");
                escalation.log(line);
            }
        }
    }
}

/// Fills the `{}` holes of `template` with `args`, in order, after a `[  12.345 ms] ` time
/// stamp, and writes the line. Extra holes stay empty; extra arguments are dropped. Only `{}`
/// is a hole (no `{{` escapes, no format specs).
pub fn log_line(template: &str, args: &[&dyn LogArg]) {
    let mut line = Line::new();
    line.str("[")
        .millis(embassy_time::Instant::now().as_micros(), 6)
        .str(" ms] ");
    let mut args = args.iter();
    let mut bytes = template.as_bytes().iter().peekable();
    while let Some(&byte) = bytes.next() {
        if byte == b'{' && bytes.peek() == Some(&&b'}') {
            bytes.next();
            if let Some(arg) = args.next() {
                arg.log(&mut line);
            }
        } else {
            line.byte(byte);
        }
    }
    line.str("\n");
    crate::output::write_stdout(line.as_bytes());
}

#[cfg(feature = "defmt")]
#[doc(hidden)]
pub use defmt as __defmt;

/// Logs a line: `info!("breaker {}", transition)`. Text over semihosting (holes filled through
/// [`LogArg`]), or a defmt frame with the `defmt` feature (arguments then need
/// `defmt::Format`, which every core type has).
#[cfg(not(feature = "defmt"))]
#[macro_export]
macro_rules! info {
    ($template:literal $(, $arg:expr)* $(,)?) => {
        $crate::log::log_line($template, &[$(&$arg as &dyn $crate::log::LogArg),*])
    };
}

/// Logs a line: `info!("breaker {}", transition)`. Text over semihosting (holes filled through
/// [`LogArg`]), or a defmt frame with the `defmt` feature (arguments then need
/// `defmt::Format`, which every core type has).
#[cfg(feature = "defmt")]
#[macro_export]
macro_rules! info {
    ($($arg:tt)*) => {
        $crate::log::__defmt::info!($($arg)*)
    };
}

#[cfg(feature = "defmt")]
defmt::timestamp!("{=u64:us}", embassy_time::Instant::now().as_micros());
