//! A job's states and the transitions between them, as a pure function: the runner asks
//! [`JobState::on`] before it writes a state, so no code path can, say, revive a cancelled job.
//!
//! ```text
//!            start                 succeed
//!  queued ──────────▶ running ─────────────▶ succeeded
//!    │  │               │  ▲ resume (a service died; another, or the same one restarted,
//!    │  │               │  │        runs it again from its newest good checkpoint)
//!    │  │               ├──┘
//!    │  │ fail          │ fail
//!    │  └──────────▶ failed ◀───┘
//!    │ cancel           │ cancel
//!    └──────────▶ cancelled ◀──┘
//! ```
//! `succeeded`, `failed` and `cancelled` are final: every event is refused there.

use std::fmt;

use serde::{Deserialize, Serialize};

/// Where a job is in its life.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum JobState {
    /// Accepted and waiting for a service with a free slot.
    Queued,
    /// A service runs it (or ran it and died: the next one resumes it).
    Running,
    /// Finished; its result is kept for the retention time.
    Succeeded,
    /// Gave up: a deadline, three failed checkpoint writes in a row, a kernel that kept failing.
    Failed,
    /// Cancelled on request.
    Cancelled,
}

/// Every state, in order.
pub const JOB_STATES: [JobState; 5] = [
    JobState::Queued,
    JobState::Running,
    JobState::Succeeded,
    JobState::Failed,
    JobState::Cancelled,
];

/// What happens to a job.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum JobEvent {
    /// A service claimed a queued job and starts it.
    Start,
    /// A service claimed a running job whose service died, and resumes it.
    Resume,
    /// The kernel finished.
    Succeed,
    /// The job gave up.
    Fail,
    /// Someone cancelled it.
    Cancel,
}

/// An event the job's state does not allow.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Refused {
    /// The state.
    pub state: JobState,
    /// The event.
    pub event: JobEvent,
}

impl fmt::Display for Refused {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "a {} job cannot {:?}", self.state, self.event)
    }
}

impl std::error::Error for Refused {}

impl JobState {
    /// The state's name (`"running"`).
    #[must_use]
    pub const fn as_str(self) -> &'static str {
        match self {
            JobState::Queued => "queued",
            JobState::Running => "running",
            JobState::Succeeded => "succeeded",
            JobState::Failed => "failed",
            JobState::Cancelled => "cancelled",
        }
    }

    /// Whether nothing more happens to the job.
    #[must_use]
    pub const fn is_final(self) -> bool {
        matches!(
            self,
            JobState::Succeeded | JobState::Failed | JobState::Cancelled
        )
    }

    /// The state after `event`.
    ///
    /// # Errors
    /// [`Refused`] when the state does not allow it.
    pub const fn on(self, event: JobEvent) -> Result<JobState, Refused> {
        match (self, event) {
            (JobState::Queued, JobEvent::Start) | (JobState::Running, JobEvent::Resume) => {
                Ok(JobState::Running)
            }
            (JobState::Running, JobEvent::Succeed) => Ok(JobState::Succeeded),
            (JobState::Queued | JobState::Running, JobEvent::Fail) => Ok(JobState::Failed),
            (JobState::Queued | JobState::Running, JobEvent::Cancel) => Ok(JobState::Cancelled),
            (state, event) => Err(Refused { state, event }),
        }
    }
}

impl fmt::Display for JobState {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

#[cfg(test)]
mod tests {
    use proptest::prelude::*;

    use super::*;

    const EVENTS: [JobEvent; 5] = [
        JobEvent::Start,
        JobEvent::Resume,
        JobEvent::Succeed,
        JobEvent::Fail,
        JobEvent::Cancel,
    ];

    /// The reference model: a job is a flag "has it started" and an outcome, nothing else.
    #[derive(Clone, Copy, Debug, Default)]
    struct Model {
        started: bool,
        outcome: Option<JobState>,
    }

    impl Model {
        fn state(self) -> JobState {
            match (self.outcome, self.started) {
                (Some(outcome), _) => outcome,
                (None, true) => JobState::Running,
                (None, false) => JobState::Queued,
            }
        }

        /// Whether `event` changes the model, and how.
        fn apply(&mut self, event: JobEvent) -> bool {
            if self.outcome.is_some() {
                return false;
            }
            match event {
                JobEvent::Start if !self.started => self.started = true,
                JobEvent::Resume if self.started => {}
                JobEvent::Succeed if self.started => self.outcome = Some(JobState::Succeeded),
                JobEvent::Fail => self.outcome = Some(JobState::Failed),
                JobEvent::Cancel => self.outcome = Some(JobState::Cancelled),
                _ => return false,
            }
            true
        }
    }

    #[test]
    fn the_table() {
        use JobEvent::{Cancel, Fail, Resume, Start, Succeed};
        use JobState::{Cancelled, Failed, Queued, Running, Succeeded};
        assert_eq!(Queued.on(Start), Ok(Running));
        assert_eq!(Running.on(Resume), Ok(Running));
        assert_eq!(Running.on(Succeed), Ok(Succeeded));
        assert_eq!(Queued.on(Cancel), Ok(Cancelled));
        assert_eq!(Running.on(Fail), Ok(Failed));
        assert!(Queued.on(Succeed).is_err());
        assert!(Queued.on(Resume).is_err());
        assert!(Running.on(Start).is_err());
        for state in [Succeeded, Failed, Cancelled] {
            assert!(state.is_final());
            for event in EVENTS {
                assert_eq!(state.on(event), Err(Refused { state, event }));
            }
        }
        assert_eq!(
            Cancelled.on(Cancel).expect_err("final").to_string(),
            "a cancelled job cannot Cancel"
        );
    }

    proptest! {
        /// Any sequence of events: the machine agrees with the model at every step, a final
        /// state never changes, `succeeded` is reached only through `running`, and a refused
        /// event leaves the state as it was.
        #[test]
        fn the_lifecycle_agrees_with_its_model(
            events in proptest::collection::vec(proptest::sample::select(EVENTS.to_vec()), 0..40)
        ) {
            let mut model = Model::default();
            let mut state = JobState::Queued;
            let mut seen_running = false;
            let mut final_state: Option<JobState> = None;
            for event in events {
                let allowed = model.apply(event);
                match state.on(event) {
                    Ok(next) => {
                        prop_assert!(allowed, "{state} {event:?} allowed, the model refuses");
                        state = next;
                    }
                    Err(refused) => {
                        prop_assert!(!allowed, "{state} {event:?} refused, the model allows");
                        prop_assert_eq!(refused, Refused { state, event });
                    }
                }
                prop_assert_eq!(state, model.state());
                seen_running |= state == JobState::Running;
                if state == JobState::Succeeded {
                    prop_assert!(seen_running);
                }
                if let Some(done) = final_state {
                    prop_assert_eq!(state, done);
                }
                if state.is_final() {
                    final_state = Some(state);
                }
            }
        }
    }
}
