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
    /// Shadow mode, set by an operator (`metrics_only`): every call passes; outcomes are
    /// recorded and evaluated as when closed, and where a closed breaker would open, the breaker
    /// reports it (a [`Transition`] from and to `MetricsOnly` that carries the [`Trip`]) and
    /// stays in this state. How a new threshold is tried in production before it may reject.
    MetricsOnly,
}

impl CircuitState {
    /// Every state, in the order of their [`metric_value`](Self::metric_value)s (0 to 5).
    pub const ALL: [CircuitState; 6] = [
        CircuitState::Closed,
        CircuitState::Open,
        CircuitState::HalfOpen,
        CircuitState::ForcedOpen,
        CircuitState::Disabled,
        CircuitState::MetricsOnly,
    ];

    /// The help text of a state gauge, which names every [`metric_value`](Self::metric_value).
    pub const METRIC_HELP: &'static str = "Circuit breaker state: 0 closed, 1 open, 2 half-open, \
         3 forced open, 4 disabled, 5 metrics-only.";

    /// The state's name as in the chapter's table (`"Closed"`, `"HalfOpen"`).
    #[must_use]
    pub const fn as_str(self) -> &'static str {
        match self {
            CircuitState::Closed => "Closed",
            CircuitState::Open => "Open",
            CircuitState::HalfOpen => "HalfOpen",
            CircuitState::ForcedOpen => "ForcedOpen",
            CircuitState::Disabled => "Disabled",
            CircuitState::MetricsOnly => "MetricsOnly",
        }
    }

    /// The state's name in `snake_case` (`closed`, `open`, `half_open`, `forced_open`,
    /// `disabled`, `metrics_only`), as metric labels, JSON bodies and reports write it.
    #[must_use]
    pub const fn label(self) -> &'static str {
        match self {
            CircuitState::Closed => "closed",
            CircuitState::Open => "open",
            CircuitState::HalfOpen => "half_open",
            CircuitState::ForcedOpen => "forced_open",
            CircuitState::Disabled => "disabled",
            CircuitState::MetricsOnly => "metrics_only",
        }
    }

    /// The state as a gauge's number: 0 closed, 1 open, 2 half-open, 3 forced open, 4
    /// disabled, 5 metrics-only (as [`METRIC_HELP`](Self::METRIC_HELP) says). The one table
    /// every exporter uses, so a dashboard reads every breaker the same way.
    #[must_use]
    pub const fn metric_value(self) -> u8 {
        match self {
            CircuitState::Closed => 0,
            CircuitState::Open => 1,
            CircuitState::HalfOpen => 2,
            CircuitState::ForcedOpen => 3,
            CircuitState::Disabled => 4,
            CircuitState::MetricsOnly => 5,
        }
    }
}

impl fmt::Display for CircuitState {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// A change of state, returned by the input that caused it so the adapter can log or emit it.
///
/// A transition to `Open` or `ForcedOpen` carries the [`Trip`] that caused it. In
/// [`MetricsOnly`](CircuitState::MetricsOnly), a transition from and to `MetricsOnly` with a
/// trip reports that a closed breaker would have opened ([`would_open`](Self::would_open)).
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
#[cfg_attr(feature = "serde", derive(serde::Serialize, serde::Deserialize))]
#[cfg_attr(feature = "defmt", derive(defmt::Format))]
pub struct Transition {
    /// The state before.
    pub from: CircuitState,
    /// The state after.
    pub to: CircuitState,
    /// Why the breaker opened (or, in metrics-only mode, would have): set on transitions to
    /// `Open`, `ForcedOpen` and on metrics-only reports, `None` otherwise.
    pub trip: Option<Trip>,
}

impl Transition {
    /// A transition with no trip (one that does not open the breaker).
    #[must_use]
    pub const fn new(from: CircuitState, to: CircuitState) -> Self {
        Self {
            from,
            to,
            trip: None,
        }
    }

    /// Whether this is a metrics-only report: the breaker would have opened, and did not.
    #[must_use]
    pub const fn would_open(&self) -> bool {
        matches!(
            (self.from, self.to, self.trip),
            (
                CircuitState::MetricsOnly,
                CircuitState::MetricsOnly,
                Some(_)
            )
        )
    }
}

impl fmt::Display for Transition {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        if self.would_open() {
            f.write_str("MetricsOnly (would open)")?;
        } else {
            write!(f, "{} -> {}", self.from, self.to)?;
        }
        match self.trip {
            Some(trip) => write!(f, " ({trip})"),
            None => Ok(()),
        }
    }
}

/// Why a breaker opened.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
#[cfg_attr(feature = "serde", derive(serde::Serialize, serde::Deserialize))]
#[cfg_attr(feature = "defmt", derive(defmt::Format))]
pub enum OpenReason {
    /// The failure rate over the window reached `failure_rate_threshold`.
    FailureRate,
    /// The slow-call rate over the window reached `slow_call_rate_threshold`.
    SlowCallRate,
    /// `failure_threshold` failures in a row (the consecutive mode).
    ConsecutiveFailures,
    /// A half-open probe failed or was slow (probe by probe), or the probes' failure or slow-call
    /// rate reached its threshold (by rate, `half_open_permitted_calls`).
    ProbeFailed,
    /// The half-open cycle outlived `max_wait_in_half_open` (with `AfterMaxWait::Open`).
    HalfOpenTimeout,
    /// An operator forced it open (`force_open`, `force_open_for`, `force_open_until`).
    Forced,
}

impl OpenReason {
    /// The reason's name in `snake_case`, as metrics and reports write it.
    #[must_use]
    pub const fn as_str(self) -> &'static str {
        match self {
            OpenReason::FailureRate => "failure_rate",
            OpenReason::SlowCallRate => "slow_call_rate",
            OpenReason::ConsecutiveFailures => "consecutive_failures",
            OpenReason::ProbeFailed => "probe_failed",
            OpenReason::HalfOpenTimeout => "half_open_timeout",
            OpenReason::Forced => "forced",
        }
    }
}

impl fmt::Display for OpenReason {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// The figures that opened a breaker: its reason and what the window held at that moment (for
/// a half-open trip, the cycle's probes: `calls` probes reported, `failures` and `slow` of them
/// bad). Kept while the breaker is not closed (see [`CircuitBreakerStats::trip`]), so an
/// operator who sees `Open` sees why.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
#[cfg_attr(feature = "serde", derive(serde::Serialize, serde::Deserialize))]
#[cfg_attr(feature = "defmt", derive(defmt::Format))]
pub struct Trip {
    /// Why it opened.
    pub reason: OpenReason,
    /// Outcomes in the window (or probes in the half-open cycle) when it opened.
    pub calls: u32,
    /// Failed ones among them.
    pub failures: u32,
    /// Slow ones among them (failed or not).
    pub slow: u32,
    /// The failure streak when it opened.
    pub consecutive_failures: u32,
}

impl Trip {
    /// `failures / calls` at the trip, or 0.0 with no calls.
    #[must_use]
    pub fn failure_rate(&self) -> f64 {
        rate(self.failures, self.calls)
    }

    /// `slow / calls` at the trip, or 0.0 with no calls.
    #[must_use]
    pub fn slow_call_rate(&self) -> f64 {
        rate(self.slow, self.calls)
    }
}

fn rate(part: u32, whole: u32) -> f64 {
    if whole == 0 {
        0.0
    } else {
        crate::float::ratio_f64(u64::from(part), u64::from(whole))
    }
}

impl fmt::Display for Trip {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self.reason {
            OpenReason::ConsecutiveFailures => {
                write!(f, "{} consecutive failures", self.consecutive_failures)
            }
            OpenReason::Forced => f.write_str("forced open"),
            OpenReason::HalfOpenTimeout => f.write_str("half-open cycle timed out"),
            reason => write!(
                f,
                "{reason}: {} calls, {} failed, {} slow",
                self.calls, self.failures, self.slow
            ),
        }
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
    /// Why the breaker is open, half-open or forced open (the figures of the trip that started
    /// it); in metrics-only mode, the last time it would have opened. `None` while closed or
    /// disabled.
    pub trip: Option<Trip>,
    /// Times a metrics-only breaker would have opened (see [`CircuitState::MetricsOnly`]).
    pub would_open_count: u64,
}

#[cfg(test)]
mod tests {
    use super::CircuitState;

    #[test]
    fn the_state_table_is_one_table() {
        let expected = [
            (CircuitState::Closed, "closed", 0, "0 closed"),
            (CircuitState::Open, "open", 1, "1 open"),
            (CircuitState::HalfOpen, "half_open", 2, "2 half-open"),
            (CircuitState::ForcedOpen, "forced_open", 3, "3 forced open"),
            (CircuitState::Disabled, "disabled", 4, "4 disabled"),
            (
                CircuitState::MetricsOnly,
                "metrics_only",
                5,
                "5 metrics-only",
            ),
        ];
        for (i, (state, label, value, help)) in expected.into_iter().enumerate() {
            assert_eq!(CircuitState::ALL.get(i), Some(&state));
            assert_eq!(state.label(), label);
            assert_eq!(state.metric_value(), value);
            assert_eq!(usize::from(state.metric_value()), i);
            assert!(CircuitState::METRIC_HELP.contains(help), "{help}");
        }
        // The values are usable in const context (a firmware's static table, say).
        const HALF_OPEN: u8 = CircuitState::HalfOpen.metric_value();
        assert_eq!(HALF_OPEN, 2);
    }
}
