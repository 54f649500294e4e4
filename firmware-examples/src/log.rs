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
        for &byte in text.as_bytes() {
            self.byte(byte);
        }
        self
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
        let mut digits = [0u8; 20];
        let mut n = value;
        let mut count = 0usize;
        loop {
            if let Some(slot) = digits.get_mut(count) {
                // `n % 10 < 10`: the cast cannot truncate.
                *slot = b'0' + u8::try_from(n % 10).unwrap_or(0);
            }
            count += 1;
            n /= 10;
            if n == 0 {
                break;
            }
        }
        let pad = if zeros { "0" } else { " " };
        for _ in count..width {
            self.str(pad);
        }
        for i in (0..count).rev() {
            self.byte(digits.get(i).copied().unwrap_or(b'0'));
        }
        self
    }

    /// Appends microseconds as milliseconds with three decimals (`12.345`).
    pub fn millis(&mut self, micros: u64, width: usize) -> &mut Self {
        self.num(micros / 1_000, width, false)
            .str(".")
            .num(micros % 1_000, 3, true)
    }

    /// The line's bytes.
    #[must_use]
    pub fn as_bytes(&self) -> &[u8] {
        self.buf.get(..self.len).unwrap_or_default()
    }
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
