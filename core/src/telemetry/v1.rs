//! Wire version 1, as the firmware sent it until version 2 (commit `e40d43d`): the frames of
//! today but for the breaker's, whose transition carried no [`Trip`](crate::resilience::Trip)
//! and whose states had no `MetricsOnly`. Read into today's types, with no trip; the recorded
//! frames are golden test data (`tests/golden/telemetry/v1/`).

use serde::Deserialize;

use super::{BreakerCounts, JobOutcome, Summary, TelemetryFrame};
use crate::resilience::circuit_breaker::{CircuitState, Transition};
use crate::resilience::health::{ComponentName, HealthStatus};
use crate::resilience::recovery::RecoveryAction;

/// [`CircuitState`] of version 1: the same variants in the same order, less `MetricsOnly`.
#[derive(Deserialize)]
enum State {
    Closed,
    Open,
    HalfOpen,
    ForcedOpen,
    Disabled,
}

impl From<State> for CircuitState {
    fn from(state: State) -> Self {
        match state {
            State::Closed => CircuitState::Closed,
            State::Open => CircuitState::Open,
            State::HalfOpen => CircuitState::HalfOpen,
            State::ForcedOpen => CircuitState::ForcedOpen,
            State::Disabled => CircuitState::Disabled,
        }
    }
}

/// [`Transition`] of version 1: from and to, no trip.
#[derive(Deserialize)]
struct TransitionV1 {
    from: State,
    to: State,
}

/// [`TelemetryFrame`] of version 1: the same variants in the same order; only `Breaker`'s
/// transition differs.
#[derive(Deserialize)]
enum Frame {
    Hello {
        version: u8,
        device: u32,
        at_us: u64,
    },
    Component {
        id: u8,
        name: ComponentName,
    },
    Health {
        component: u8,
        status: HealthStatus,
        at_us: u64,
    },
    Breaker {
        component: u8,
        transition: TransitionV1,
        counts: BreakerCounts,
        at_us: u64,
    },
    Recovery {
        component: u8,
        action: RecoveryAction,
        at_us: u64,
    },
    Job {
        id: u32,
        outcome: JobOutcome,
        attempts: u32,
        at_us: u64,
    },
    Summary(Summary),
}

impl From<Frame> for TelemetryFrame {
    fn from(frame: Frame) -> Self {
        match frame {
            Frame::Hello {
                version,
                device,
                at_us,
            } => TelemetryFrame::Hello {
                version,
                device,
                at_us,
            },
            Frame::Component { id, name } => TelemetryFrame::Component { id, name },
            Frame::Health {
                component,
                status,
                at_us,
            } => TelemetryFrame::Health {
                component,
                status,
                at_us,
            },
            Frame::Breaker {
                component,
                transition,
                counts,
                at_us,
            } => TelemetryFrame::Breaker {
                component,
                transition: Transition::new(transition.from.into(), transition.to.into()),
                counts,
                at_us,
            },
            Frame::Recovery {
                component,
                action,
                at_us,
            } => TelemetryFrame::Recovery {
                component,
                action,
                at_us,
            },
            Frame::Job {
                id,
                outcome,
                attempts,
                at_us,
            } => TelemetryFrame::Job {
                id,
                outcome,
                attempts,
                at_us,
            },
            Frame::Summary(summary) => TelemetryFrame::Summary(summary),
        }
    }
}

/// Reads a version 1 payload.
pub(super) fn decode(payload: &[u8]) -> Result<TelemetryFrame, crate::frame::DecodeError> {
    crate::frame::decode_payload::<Frame>(payload).map(TelemetryFrame::from)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_version_1_breaker_frame_reads_without_a_trip() {
        // Breaker, component 2, Closed -> Open, counts 4/3/0/3, at 1000 µs.
        let payload = [3, 2, 0, 1, 4, 3, 0, 3, 0xE8, 0x07];
        assert_eq!(
            decode(&payload),
            Ok(TelemetryFrame::Breaker {
                component: 2,
                transition: Transition::new(CircuitState::Closed, CircuitState::Open),
                counts: BreakerCounts {
                    successes: 4,
                    failures: 3,
                    rejected: 0,
                    consecutive_failures: 3,
                },
                at_us: 1_000,
            })
        );
        // MetricsOnly (5) did not exist in version 1.
        let payload = [3, 2, 0, 5, 4, 3, 0, 3, 0xE8, 0x07];
        assert_eq!(decode(&payload), Err(crate::frame::DecodeError::Malformed));
        // Today's layout (a trip option after the states) leaves bytes over in version 1.
        let payload = [3, 2, 0, 1, 0, 4, 3, 0, 3, 0xE8, 0x07];
        assert_eq!(
            decode(&payload),
            Err(crate::frame::DecodeError::TrailingBytes)
        );
    }
}
