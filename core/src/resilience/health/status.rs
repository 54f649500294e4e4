//! What one health check says: a [`HealthStatus`] and the [`HealthCheckResult`] that carries it.

use core::fmt;
use core::time::Duration;

use crate::time::Instant;

/// Bytes a [`HealthCheckResult`] message holds; longer messages are cut at a char boundary.
///
/// 64 bytes fit a sentence such as `"GPU unavailable: CUDA_ERROR_ILLEGAL_ADDRESS on device 3"` and
/// keep a result small enough for a firmware telemetry frame.
pub const MESSAGE_CAPACITY: usize = 64;

/// The fixed-capacity text of a [`HealthCheckResult`].
type HealthMessage = heapless::String<MESSAGE_CAPACITY>;

/// The health of a check, a probe or a component.
///
/// Severity, least to most severe: `Healthy`, `Degraded`, `Unknown`, `Unhealthy` (see
/// [`HealthStatus::worst`]). `Unknown` is worse than `Degraded` because a component nobody has
/// heard from yet cannot be trusted with traffic, and better than `Unhealthy` because nothing has
/// failed yet.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
#[cfg_attr(feature = "serde", derive(serde::Serialize, serde::Deserialize))]
#[cfg_attr(feature = "serde", serde(rename_all = "snake_case"))]
#[cfg_attr(feature = "defmt", derive(defmt::Format))]
pub enum HealthStatus {
    /// Working normally.
    Healthy,
    /// Working, with reduced quality (high latency, a fallback path, a lost replica).
    Degraded,
    /// Not working: failed its checks often enough in a row, or a check said so.
    Unhealthy,
    /// No verdict yet: not checked, or not enough checks in a row to decide.
    Unknown,
}

impl HealthStatus {
    /// Every status, in declaration order.
    pub const ALL: [HealthStatus; 4] = [
        HealthStatus::Healthy,
        HealthStatus::Degraded,
        HealthStatus::Unhealthy,
        HealthStatus::Unknown,
    ];

    /// The status as written in logs and JSON (`"healthy"`, `"degraded"`, ...).
    #[must_use]
    pub const fn as_str(self) -> &'static str {
        match self {
            HealthStatus::Healthy => "healthy",
            HealthStatus::Degraded => "degraded",
            HealthStatus::Unhealthy => "unhealthy",
            HealthStatus::Unknown => "unknown",
        }
    }

    /// Rank for [`HealthStatus::worst`]: 0 `Healthy`, 1 `Degraded`, 2 `Unknown`, 3 `Unhealthy`.
    #[must_use]
    pub const fn severity(self) -> u8 {
        match self {
            HealthStatus::Healthy => 0,
            HealthStatus::Degraded => 1,
            HealthStatus::Unknown => 2,
            HealthStatus::Unhealthy => 3,
        }
    }

    /// The more severe of `self` and `other`.
    #[must_use]
    pub const fn worst(self, other: Self) -> Self {
        if other.severity() > self.severity() {
            other
        } else {
            self
        }
    }

    /// Whether a check with this status passes: `Healthy` or `Degraded`.
    ///
    /// `Unknown` does not pass: a check that cannot tell whether the component works counts as
    /// a failure, like one that does not answer.
    #[must_use]
    pub const fn is_passing(self) -> bool {
        matches!(self, HealthStatus::Healthy | HealthStatus::Degraded)
    }
}

impl fmt::Display for HealthStatus {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// The outcome of one health check, as the chapter builds it.
///
/// ```
/// use core::time::Duration;
/// use rustkernel_core::resilience::{HealthCheckResult, HealthStatus};
/// use rustkernel_core::time::Instant;
///
/// let result = HealthCheckResult::unhealthy("GPU unavailable")
///     .with_latency(Duration::from_millis(3))
///     .at(Instant::from_secs(12));
/// assert!(result.status == HealthStatus::Unhealthy);
/// assert_eq!(result.message(), "GPU unavailable");
/// ```
#[derive(Clone, Debug, PartialEq, Eq, Hash)]
#[cfg_attr(feature = "serde", derive(serde::Serialize, serde::Deserialize))]
#[cfg_attr(feature = "defmt", derive(defmt::Format))]
pub struct HealthCheckResult {
    /// What the check found.
    pub status: HealthStatus,
    /// Why, in at most [`MESSAGE_CAPACITY`] bytes; empty for a plain healthy result
    /// (read it with [`message`](Self::message)).
    message: HealthMessage,
    /// How long the check took; zero unless set with [`HealthCheckResult::with_latency`].
    pub latency: Duration,
    /// When the check finished; [`Instant::ZERO`] unless set with [`HealthCheckResult::at`].
    pub checked_at: Instant,
}

impl HealthCheckResult {
    /// A result with `status` and `message`, cut to [`MESSAGE_CAPACITY`] bytes at a char boundary.
    #[must_use]
    pub fn new(status: HealthStatus, message: &str) -> Self {
        Self {
            status,
            message: truncate(message),
            latency: Duration::ZERO,
            checked_at: Instant::ZERO,
        }
    }

    /// Why: at most [`MESSAGE_CAPACITY`] bytes, empty for a plain healthy result.
    #[must_use]
    pub fn message(&self) -> &str {
        self.message.as_str()
    }

    /// A healthy result with an empty message.
    #[must_use]
    pub fn healthy() -> Self {
        Self::new(HealthStatus::Healthy, "")
    }

    /// A degraded result: working, with reduced quality.
    #[must_use]
    pub fn degraded(message: &str) -> Self {
        Self::new(HealthStatus::Degraded, message)
    }

    /// An unhealthy result: the check failed.
    #[must_use]
    pub fn unhealthy(message: &str) -> Self {
        Self::new(HealthStatus::Unhealthy, message)
    }

    /// The result with its latency set.
    #[must_use]
    pub fn with_latency(mut self, latency: Duration) -> Self {
        self.latency = latency;
        self
    }

    /// The result with the instant it was taken set.
    #[must_use]
    pub fn at(mut self, checked_at: Instant) -> Self {
        self.checked_at = checked_at;
        self
    }
}

impl Default for HealthCheckResult {
    /// [`HealthCheckResult::healthy`].
    fn default() -> Self {
        Self::healthy()
    }
}

/// `healthy`, or `degraded: High latency` when there is a message.
impl fmt::Display for HealthCheckResult {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        if self.message.is_empty() {
            write!(f, "{}", self.status)
        } else {
            write!(f, "{}: {}", self.status, self.message)
        }
    }
}

/// The longest prefix of `text` that fits in a [`HealthMessage`], ending on a char boundary.
fn truncate(text: &str) -> HealthMessage {
    let mut message = HealthMessage::new();
    for c in text.chars() {
        if message.push(c).is_err() {
            break;
        }
    }
    message
}

#[cfg(test)]
mod tests {
    extern crate std;
    use super::*;
    use std::string::{String, ToString};

    #[test]
    fn chapter_constructors_set_status_and_message() {
        assert_eq!(HealthCheckResult::healthy().status, HealthStatus::Healthy);
        assert!(HealthCheckResult::healthy().message.is_empty());
        let degraded = HealthCheckResult::degraded("High latency");
        assert_eq!(degraded.status, HealthStatus::Degraded);
        assert_eq!(degraded.message, "High latency");
        assert!(HealthCheckResult::unhealthy("GPU unavailable").status == HealthStatus::Unhealthy);
        assert_eq!(degraded.to_string(), "degraded: High latency");
        assert_eq!(HealthCheckResult::healthy().to_string(), "healthy");
    }

    #[test]
    fn long_messages_are_cut_on_a_char_boundary() {
        let ascii = "x".repeat(100);
        assert_eq!(
            HealthCheckResult::unhealthy(&ascii).message.len(),
            MESSAGE_CAPACITY
        );

        // Two-byte chars: 32 of them fill 64 bytes exactly.
        let two = "é".repeat(40);
        let cut = HealthCheckResult::unhealthy(&two).message;
        assert_eq!(cut.len(), 64);
        assert_eq!(cut.chars().count(), 32);

        // One ASCII byte first: the 32nd two-byte char would end at byte 65, so it is dropped.
        let shifted = String::from("a") + &two;
        let cut = HealthCheckResult::unhealthy(&shifted).message;
        assert_eq!(cut.len(), 63);
        assert!(shifted.starts_with(cut.as_str()));

        // Four-byte chars with an offset of 3: 3 + 15 * 4 = 63, the 16th would need 67.
        let four = String::from("abc") + &"🦀".repeat(20);
        let cut = HealthCheckResult::unhealthy(&four).message;
        assert_eq!(cut.len(), 63);
        assert!(cut.ends_with('🦀'));

        let short = "GPU unavailable";
        assert_eq!(HealthCheckResult::unhealthy(short).message, short);
        assert_eq!(HealthCheckResult::unhealthy("").message, "");
    }

    #[test]
    fn worst_follows_severity() {
        use HealthStatus::*;
        assert_eq!(Healthy.worst(Degraded), Degraded);
        assert_eq!(Degraded.worst(Unknown), Unknown);
        assert_eq!(Unknown.worst(Unhealthy), Unhealthy);
        assert_eq!(Unhealthy.worst(Healthy), Unhealthy);
        for a in HealthStatus::ALL {
            assert_eq!(a.worst(a), a);
            for b in HealthStatus::ALL {
                assert_eq!(a.worst(b), b.worst(a));
            }
        }
        assert!(Healthy.is_passing() && Degraded.is_passing());
        assert!(!Unhealthy.is_passing() && !Unknown.is_passing());
    }

    #[test]
    fn display_is_lower_case() {
        let names: std::vec::Vec<_> = HealthStatus::ALL.iter().map(|s| s.to_string()).collect();
        assert_eq!(names, ["healthy", "degraded", "unhealthy", "unknown"]);
    }

    #[cfg(feature = "serde")]
    #[test]
    fn result_and_status_round_trip() {
        let result = HealthCheckResult::degraded("High latency: 250 µs over budget")
            .with_latency(Duration::from_micros(1_250))
            .at(Instant::from_secs(42));
        let mut buf = [0u8; 128];
        let bytes = postcard::to_slice(&result, &mut buf).expect("fits");
        assert_eq!(
            postcard::from_bytes::<HealthCheckResult>(bytes).expect("decodes"),
            result
        );
        for status in HealthStatus::ALL {
            let bytes = postcard::to_slice(&status, &mut buf).expect("fits");
            assert_eq!(
                postcard::from_bytes::<HealthStatus>(bytes).expect("decodes"),
                status
            );
        }
        assert_eq!(
            serde_json::to_string(&HealthStatus::Unhealthy).expect("json"),
            "\"unhealthy\""
        );
    }
}
