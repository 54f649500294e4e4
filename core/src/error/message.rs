//! The text of a [`ConfigError`], written by a `const fn` into a fixed buffer: one text for
//! `Display`, for [`valid_or_panic`](super::valid_or_panic) at run time and for
//! [`invalid_const`] when a `const` or `static` is evaluated (where `format!` cannot run).

use super::{ConfigError, ConfigField};

/// Room for the longest message and its `invalid ...: ` prefix.
const CAPACITY: usize = 256;

/// A message being written: bytes of whole `&str`s, so always UTF-8.
pub(super) struct Text {
    bytes: [u8; CAPACITY],
    len: usize,
}

impl Text {
    pub(super) const fn new() -> Self {
        Self {
            bytes: [0; CAPACITY],
            len: 0,
        }
    }

    /// Writes one byte; `false` when the buffer is full.
    const fn put(&mut self, byte: u8) -> bool {
        let Some((_, free)) = self.bytes.split_at_mut_checked(self.len) else {
            return false;
        };
        let Some(slot) = free.first_mut() else {
            return false;
        };
        *slot = byte;
        self.len += 1;
        true
    }

    /// Appends `s` whole, or nothing when it does not fit (no message comes near), so the text
    /// stays UTF-8.
    const fn str(mut self, s: &str) -> Self {
        if s.len() > CAPACITY.saturating_sub(self.len) {
            return self;
        }
        let mut rest = s.as_bytes();
        while let Some((&byte, tail)) = rest.split_first() {
            self.put(byte);
            rest = tail;
        }
        self
    }

    const fn field(self, field: ConfigField) -> Self {
        self.str(field.as_str())
    }

    /// Appends `value` in decimal (ASCII digits: a cut keeps the text UTF-8).
    #[allow(clippy::cast_possible_truncation, reason = "a digit, below 10")]
    const fn number(mut self, value: u64) -> Self {
        let mut unit = 1u64;
        while value / unit >= 10 {
            unit *= 10;
        }
        loop {
            self.put(b'0' + (value / unit % 10) as u8);
            if unit == 1 {
                return self;
            }
            unit /= 10;
        }
    }

    /// Appends the error's message, the one `Display` writes.
    pub(super) const fn error(self, error: &ConfigError) -> Self {
        match *error {
            ConfigError::Zero(field) => self.field(field).str(" must be greater than zero"),
            ConfigError::NotFinite(field) => self.field(field).str(" must be a finite number"),
            ConfigError::MultiplierBelowOne(field) => {
                self.field(field).str(" must be at least 1.0")
            }
            ConfigError::RateOutOfRange(field) => self
                .field(field)
                .str(" must be greater than 0 and at most 1"),
            ConfigError::TooLarge { field, max } => {
                self.field(field).str(" must be at most ").number(max)
            }
            ConfigError::Exceeds { field, limit } => {
                self.field(field).str(" must not exceed ").field(limit)
            }
            ConfigError::EmptyRetryableErrors => self
                .field(ConfigField::RetryableErrors)
                .str(" is empty but retry.max_attempts allows retries"),
            ConfigError::WindowTooSmall { needed, capacity } => self
                .str("failure-rate mode needs a window of at least ")
                .number(needed as u64)
                .str(" calls, the breaker holds ")
                .number(capacity as u64),
            ConfigError::Missing(field) => self
                .field(field)
                .str(" must be set for the breaker's window"),
            ConfigError::NotApplicable(field) => self
                .field(field)
                .str(" is set but the breaker's window does not use it (it needs a TimeWindow)"),
            ConfigError::BucketTooShort { buckets } => self
                .field(ConfigField::WindowDuration)
                .str(" must be at least ")
                .number(buckets as u64)
                .str(" µs: one microsecond per bucket"),
            ConfigError::Requires { field, needs } => self
                .field(field)
                .str(" is set, so ")
                .field(needs)
                .str(" must be set too"),
        }
    }

    pub(super) const fn as_str(&self) -> &str {
        let (written, _) = self.bytes.split_at(self.len);
        match core::str::from_utf8(written) {
            Ok(text) => text,
            // Unreachable: only whole `&str`s and ASCII digits are written.
            Err(_) => "invalid configuration",
        }
    }
}

/// Panics with `invalid {what}: {error}`, the message of
/// [`valid_or_panic`](super::valid_or_panic), from a `const fn`: in a `const` or `static` the
/// build fails with it, naming the field and its rule. The body of the adapters' `const`
/// constructors:
///
/// ```compile_fail
/// use rustkernel_core::error::{ConfigError, ConfigField, invalid_const};
/// const fn checked(threshold: u32) -> u32 {
///     if threshold == 0 {
///         invalid_const(
///             "circuit breaker configuration",
///             &ConfigError::Zero(ConfigField::FailureThreshold),
///         )
///     }
///     threshold
/// }
/// // error: evaluation panicked: invalid circuit breaker configuration:
/// //        circuit_breaker.failure_threshold must be greater than zero
/// const THRESHOLD: u32 = checked(0);
/// ```
///
/// # Panics
/// Always: that is what it is for.
#[allow(clippy::panic, reason = "the `const` twin of valid_or_panic")]
#[track_caller]
pub const fn invalid_const(what: &str, error: &ConfigError) -> ! {
    let text = Text::new().str("invalid ").str(what).str(": ").error(error);
    panic!("{}", text.as_str())
}

#[cfg(test)]
mod tests {
    extern crate std;
    use std::format;
    use std::string::{String, ToString};

    use super::{ConfigError, ConfigField, invalid_const};

    /// Each variant's text, written with `format!` as `Display` wrote it before it went through
    /// the `const` writer.
    fn by_format(error: &ConfigError) -> String {
        match *error {
            ConfigError::Zero(field) => format!("{field} must be greater than zero"),
            ConfigError::NotFinite(field) => format!("{field} must be a finite number"),
            ConfigError::MultiplierBelowOne(field) => format!("{field} must be at least 1.0"),
            ConfigError::RateOutOfRange(field) => {
                format!("{field} must be greater than 0 and at most 1")
            }
            ConfigError::TooLarge { field, max } => format!("{field} must be at most {max}"),
            ConfigError::Exceeds { field, limit } => format!("{field} must not exceed {limit}"),
            ConfigError::EmptyRetryableErrors => {
                "retry.retryable_errors is empty but retry.max_attempts allows retries".to_string()
            }
            ConfigError::WindowTooSmall { needed, capacity } => format!(
                "failure-rate mode needs a window of at least {needed} calls, the breaker holds {capacity}"
            ),
            ConfigError::Missing(field) => format!("{field} must be set for the breaker's window"),
            ConfigError::NotApplicable(field) => format!(
                "{field} is set but the breaker's window does not use it (it needs a TimeWindow)"
            ),
            ConfigError::BucketTooShort { buckets } => format!(
                "circuit_breaker.window_duration must be at least {buckets} µs: one microsecond per bucket"
            ),
            ConfigError::Requires { field, needs } => {
                format!("{field} is set, so {needs} must be set too")
            }
        }
    }

    #[test]
    fn every_message_reads_as_format_writes_it() {
        let fields = [
            ConfigField::FailureThreshold,
            ConfigField::FailureRateThreshold,
            ConfigField::HalfOpenPermittedCalls,
            ConfigField::RestartBackoffMultiplier,
            ConfigField::LostAfter,
        ];
        let numbers = [0u32, 7, 10, 65_535, u32::MAX];
        let mut errors = std::vec![ConfigError::EmptyRetryableErrors];
        let others = fields.iter().cycle().skip(1);
        for ((&field, &other), &n) in fields.iter().zip(others).zip(numbers.iter()) {
            errors.extend([
                ConfigError::Zero(field),
                ConfigError::NotFinite(field),
                ConfigError::MultiplierBelowOne(field),
                ConfigError::RateOutOfRange(field),
                ConfigError::TooLarge {
                    field,
                    max: u64::from(n),
                },
                ConfigError::TooLarge {
                    field,
                    max: u64::MAX - u64::from(n),
                },
                ConfigError::Exceeds {
                    field,
                    limit: other,
                },
                ConfigError::WindowTooSmall {
                    needed: n,
                    capacity: u32::MAX - n,
                },
                ConfigError::Missing(field),
                ConfigError::NotApplicable(field),
                ConfigError::BucketTooShort { buckets: n },
                ConfigError::Requires {
                    field,
                    needs: other,
                },
            ]);
        }
        for error in errors {
            assert_eq!(error.to_string(), by_format(&error));
        }
    }

    #[test]
    #[should_panic(
        expected = "invalid circuit breaker configuration: circuit_breaker.failure_rate_threshold \
                    must be greater than 0 and at most 1"
    )]
    fn invalid_const_panics_with_the_field_and_its_rule() {
        invalid_const(
            "circuit breaker configuration",
            &ConfigError::RateOutOfRange(ConfigField::FailureRateThreshold),
        )
    }
}
