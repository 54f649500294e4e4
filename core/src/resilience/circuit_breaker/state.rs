//! Breaker states, transitions and statistics.

use core::fmt;

/// The state of a circuit breaker; the same names everywhere (Display, serde, defmt).
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
#[cfg_attr(feature = "serde", derive(serde::Serialize, serde::Deserialize))]
#[cfg_attr(feature = "defmt", derive(defmt::Format))]
pub enum CircuitState {
    /// Normal operation: calls pass and outcomes are counted.
    Closed,
    /// Failures crossed the threshold: calls are rejected until the open time ends.
    Open,
    /// Testing recovery: a limited number of probe calls pass.
    HalfOpen,
    /// Held open by an operator (`force_open`) until `reset`.
    ForcedOpen,
    /// Switched off by an operator (`disable`): every call passes, nothing changes state.
    Disabled,
}

impl CircuitState {
    /// The state's name as in the chapter's table (`"Closed"`, `"HalfOpen"`).
    #[must_use]
    pub const fn as_str(self) -> &'static str {
        match self {
            CircuitState::Closed => "Closed",
            CircuitState::Open => "Open",
            CircuitState::HalfOpen => "HalfOpen",
            CircuitState::ForcedOpen => "ForcedOpen",
            CircuitState::Disabled => "Disabled",
        }
    }
}

impl fmt::Display for CircuitState {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// A change of state, returned by the input that caused it so the adapter can log or emit it.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
#[cfg_attr(feature = "serde", derive(serde::Serialize, serde::Deserialize))]
#[cfg_attr(feature = "defmt", derive(defmt::Format))]
pub struct Transition {
    /// The state before.
    pub from: CircuitState,
    /// The state after.
    pub to: CircuitState,
}

impl fmt::Display for Transition {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{} -> {}", self.from, self.to)
    }
}

/// Counters and rates of a breaker, as the chapter's monitoring section reads them.
///
/// Counters are totals since the breaker was built (`reset` does not clear them, so they
/// export as monotonic metrics). Results reported with stale permits are counted here even
/// though they change no state.
#[derive(Clone, Copy, Debug, PartialEq)]
#[cfg_attr(feature = "serde", derive(serde::Serialize, serde::Deserialize))]
#[cfg_attr(feature = "defmt", derive(defmt::Format))]
pub struct CircuitBreakerStats {
    /// The current state.
    pub state: CircuitState,
    /// Calls that failed with a recorded error kind.
    pub failure_count: u64,
    /// Calls that succeeded (slow ones included).
    pub success_count: u64,
    /// Calls refused because the breaker was open or half-open and full.
    pub rejected_count: u64,
    /// Calls that took at least `slow_call_duration`, failed or not
    /// (`slow_success_count + slow_failure_count`).
    pub slow_call_count: u64,
    /// Successful calls that took at least `slow_call_duration` (also in `success_count`).
    pub slow_success_count: u64,
    /// Failed calls that took at least `slow_call_duration` (also in `failure_count`).
    pub slow_failure_count: u64,
    /// Failures since the last success while closed.
    pub consecutive_failures: u32,
    /// State changes so far (wraps after `u32::MAX`).
    pub transitions: u32,
    /// `success_count / (success_count + failure_count)`, or 1.0 before any call finished.
    pub success_rate: f64,
}
