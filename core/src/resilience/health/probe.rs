//! One probe: schedules checks, times them out and turns results into a status with hysteresis.
//!
//! Only [`ComponentHealth`](super::ComponentHealth) drives a probe; outside the crate a probe is
//! read through [`ComponentHealth::probe`](super::ComponentHealth::probe).

use super::config::HealthProbeConfig;
use super::status::{HealthCheckResult, HealthStatus};
use crate::time::Instant;

/// Names one started check; [`ProbeState::on_result`] counts a result only with the ticket of
/// the check in flight, so a late answer to a check that already timed out changes nothing.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
#[cfg_attr(feature = "serde", derive(serde::Serialize, serde::Deserialize))]
#[cfg_attr(feature = "defmt", derive(defmt::Format))]
pub(crate) struct ProbeTicket {
    /// The number of the check; each [`ProbeState::try_start`] takes the next one.
    pub(crate) generation: u64,
}

/// What the probe waits for: the next check to be due, or the check in flight to answer.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
#[cfg_attr(feature = "serde", derive(serde::Serialize, serde::Deserialize))]
#[cfg_attr(feature = "defmt", derive(defmt::Format))]
pub(crate) enum ProbeTimer {
    /// No check is running; the next one is due at `at` (in the past: due now).
    Due {
        /// When the next check is due.
        at: Instant,
    },
    /// A check is running; it fails at `deadline` unless its result arrives first.
    InFlight {
        /// The ticket its result must carry.
        ticket: ProbeTicket,
        /// When it started.
        started: Instant,
        /// `started + timeout` (saturating): at this instant or later the check has timed out;
        /// [`Instant::MAX`] never comes.
        deadline: Instant,
    },
}

/// A change of a probe's status, returned by the input that caused it.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
#[cfg_attr(feature = "serde", derive(serde::Serialize, serde::Deserialize))]
#[cfg_attr(feature = "defmt", derive(defmt::Format))]
pub(crate) struct ProbeTransition {
    /// The status before.
    pub(crate) from: HealthStatus,
    /// The status after.
    pub(crate) to: HealthStatus,
}

/// Counters of a probe since its component was registered (kept when the component is reset);
/// saturating.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Hash)]
#[cfg_attr(feature = "serde", derive(serde::Serialize, serde::Deserialize))]
#[cfg_attr(feature = "defmt", derive(defmt::Format))]
pub struct ProbeStats {
    /// Checks started.
    pub started: u32,
    /// Results that passed (`Healthy` or `Degraded`) in time.
    pub passed: u32,
    /// Results that failed (`Unhealthy` or `Unknown`) in time.
    pub failed: u32,
    /// Checks that timed out, noticed by a poll or by a late result.
    pub timed_out: u32,
    /// Results refused because their ticket was not the one in flight.
    pub ignored: u32,
}

/// [`ProbeState::try_start`] refused: a check is already running (checks never overlap).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) struct CheckInFlight {
    /// The ticket of the running check.
    pub(crate) ticket: ProbeTicket,
}

/// [`ProbeState::on_result`] ignored a result: its ticket is not the check in flight (the check
/// timed out, the probe was reset, or the ticket is from another probe).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) struct StaleTicket;

/// One probe of a component, with Kubernetes semantics; read it through
/// [`ComponentHealth::probe`](super::ComponentHealth::probe), the
/// [`HealthRegistry`](super::HealthRegistry) drives it.
///
/// # Rules
/// - The status is `Unknown` until a streak of results reaches its threshold; it is never
///   `Unhealthy` before `failure_threshold` failures in a row.
/// - A check passes when its result is `Healthy` or `Degraded`; it fails when its result is
///   `Unhealthy` or `Unknown`, or when it does not answer before `started + timeout`.
/// - `failure_threshold` failures in a row make the status `Unhealthy`; `success_threshold`
///   passes in a row make it passing again. Fewer change nothing (hysteresis), as in the kubelet,
///   which leaves a probe's result unchanged until a run of equal results reaches its threshold.
/// - `Degraded` is a passing result: it ends a failure streak and counts toward the success
///   streak. Once the probe is passing, its status follows the latest passing result at once
///   (`Healthy` <-> `Degraded` has no hysteresis; both serve traffic).
/// - Checks never overlap. The next check is due `interval` after the previous one started.
///
/// # Getters
/// [`status`](Self::status), [`stats`](Self::stats), [`last_result`](Self::last_result),
/// [`is_due`](Self::is_due), [`poll_at`](Self::poll_at) (when the next check is due or the
/// running one times out), ...
#[derive(Clone, Debug, PartialEq, Eq, Hash)]
#[cfg_attr(feature = "serde", derive(serde::Serialize, serde::Deserialize))]
#[cfg_attr(feature = "defmt", derive(defmt::Format))]
pub struct ProbeState {
    config: HealthProbeConfig,
    status: HealthStatus,
    successes: u32,
    failures: u32,
    timer: ProbeTimer,
    generation: u64,
    stats: ProbeStats,
    last: Option<HealthCheckResult>,
}

impl ProbeState {
    /// A probe in `Unknown` whose first check is due at once, for a configuration the caller
    /// validated ([`HealthProbeConfig::validate`]).
    pub(crate) fn new(config: HealthProbeConfig) -> Self {
        Self {
            config,
            status: HealthStatus::Unknown,
            successes: 0,
            failures: 0,
            timer: ProbeTimer::Due { at: Instant::ZERO },
            generation: 0,
            stats: ProbeStats::default(),
            last: None,
        }
    }

    // ----- inputs -----

    /// Starts a check at `now` (due or not: an on-demand check is fine) and returns its ticket.
    ///
    /// # Errors
    /// [`CheckInFlight`] when a check is already running; its result or timeout comes first.
    pub(crate) fn try_start(&mut self, now: Instant) -> Result<ProbeTicket, CheckInFlight> {
        if let ProbeTimer::InFlight { ticket, .. } = self.timer {
            return Err(CheckInFlight { ticket });
        }
        self.generation = self.generation.wrapping_add(1);
        let ticket = ProbeTicket {
            generation: self.generation,
        };
        self.timer = ProbeTimer::InFlight {
            ticket,
            started: now,
            deadline: now.saturating_add(self.config.timeout),
        };
        self.stats.started = self.stats.started.saturating_add(1);
        Ok(ticket)
    }

    /// Records the result of the check `ticket` at `now`.
    ///
    /// A result that arrives at or after the check's deadline counts as a timeout, whatever it
    /// says; a deadline that saturated at [`Instant::MAX`] is never reached. Returns the status change, if any.
    ///
    /// # Errors
    /// [`StaleTicket`] when `ticket` is not the check in flight; nothing changes but
    /// [`ProbeStats::ignored`].
    pub(crate) fn on_result(
        &mut self,
        ticket: ProbeTicket,
        result: HealthCheckResult,
        now: Instant,
    ) -> Result<Option<ProbeTransition>, StaleTicket> {
        let ProbeTimer::InFlight {
            ticket: running,
            started,
            deadline,
        } = self.timer
        else {
            self.stats.ignored = self.stats.ignored.saturating_add(1);
            return Err(StaleTicket);
        };
        if running != ticket {
            self.stats.ignored = self.stats.ignored.saturating_add(1);
            return Err(StaleTicket);
        }
        self.timer = ProbeTimer::Due {
            at: started.saturating_add(self.config.interval),
        };
        if deadline.is_reached_at(now) {
            return Ok(self.record_timeout(started, now));
        }
        let passed = result.status.is_passing();
        if passed {
            self.stats.passed = self.stats.passed.saturating_add(1);
        } else {
            self.stats.failed = self.stats.failed.saturating_add(1);
        }
        let status = result.status;
        self.last = Some(result);
        Ok(self.count(passed, status))
    }

    /// Notices a check that has not answered by its deadline and counts it as a failure.
    ///
    /// Does nothing before the deadline or when no check runs. Returns the status change, if any.
    pub(crate) fn poll(&mut self, now: Instant) -> Option<ProbeTransition> {
        match self.timer {
            ProbeTimer::InFlight {
                started, deadline, ..
            } if deadline.is_reached_at(now) => {
                self.timer = ProbeTimer::Due {
                    at: started.saturating_add(self.config.interval),
                };
                self.record_timeout(started, now)
            }
            _ => None,
        }
    }

    /// Forgets every result (the component restarted): `Unknown`, no streaks, no last result,
    /// the next check due at `now`. A check in flight is abandoned: its ticket becomes stale.
    /// Counters and ticket numbers go on.
    pub(crate) fn reset(&mut self, now: Instant) {
        self.status = HealthStatus::Unknown;
        self.successes = 0;
        self.failures = 0;
        self.timer = ProbeTimer::Due { at: now };
        self.last = None;
    }

    // ----- getters -----

    /// The probe's status.
    #[must_use]
    pub const fn status(&self) -> HealthStatus {
        self.status
    }

    /// The configuration.
    #[must_use]
    pub const fn config(&self) -> &HealthProbeConfig {
        &self.config
    }

    /// Whether no check runs and the next one is due at or before `now`.
    #[must_use]
    pub fn is_due(&self, now: Instant) -> bool {
        matches!(self.timer, ProbeTimer::Due { at } if at <= now)
    }

    /// Passing checks in a row (0 after a failure).
    #[must_use]
    pub const fn consecutive_successes(&self) -> u32 {
        self.successes
    }

    /// Failed checks in a row (0 after a pass).
    #[must_use]
    pub const fn consecutive_failures(&self) -> u32 {
        self.failures
    }

    /// Counters since creation.
    #[must_use]
    pub const fn stats(&self) -> ProbeStats {
        self.stats
    }

    /// The last result counted: as reported, or a made-up `Unhealthy` "timed out" one for a
    /// timeout (its latency is how long the check ran, its `checked_at` when it was noticed).
    #[must_use]
    pub const fn last_result(&self) -> Option<&HealthCheckResult> {
        self.last.as_ref()
    }

    // ----- outputs -----

    /// When the probe next needs attention: the running check's deadline, or when the next
    /// check is due (possibly in the past). Always `Some`; an `Option` like every `poll_at`.
    #[must_use]
    pub const fn poll_at(&self) -> Option<Instant> {
        match self.timer {
            ProbeTimer::Due { at } => Some(at),
            ProbeTimer::InFlight { deadline, .. } => Some(deadline),
        }
    }

    // ----- internals -----

    fn record_timeout(&mut self, started: Instant, now: Instant) -> Option<ProbeTransition> {
        self.stats.timed_out = self.stats.timed_out.saturating_add(1);
        self.last = Some(
            HealthCheckResult::unhealthy("timed out")
                .with_latency(now.saturating_duration_since(started))
                .at(now),
        );
        self.count(false, HealthStatus::Unhealthy)
    }

    /// Applies one counted outcome; `status` is the result's status when it passed.
    fn count(&mut self, passed: bool, status: HealthStatus) -> Option<ProbeTransition> {
        let from = self.status;
        if passed {
            self.failures = 0;
            self.successes = self.successes.saturating_add(1);
            if from.is_passing() || self.successes >= self.config.success_threshold {
                self.status = status;
            }
        } else {
            self.successes = 0;
            self.failures = self.failures.saturating_add(1);
            if self.failures >= self.config.failure_threshold {
                self.status = HealthStatus::Unhealthy;
            }
        }
        (self.status != from).then_some(ProbeTransition {
            from,
            to: self.status,
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use core::time::Duration;

    fn config(failure_threshold: u32, success_threshold: u32) -> HealthProbeConfig {
        HealthProbeConfig {
            interval: Duration::from_secs(10),
            timeout: Duration::from_secs(1),
            failure_threshold,
            success_threshold,
        }
    }

    fn check(
        probe: &mut ProbeState,
        result: HealthCheckResult,
        now: Instant,
    ) -> Option<ProbeTransition> {
        let ticket = probe.try_start(now).expect("idle");
        probe.on_result(ticket, result, now).expect("in flight")
    }

    #[test]
    fn hysteresis_in_both_directions() {
        let mut probe = ProbeState::new(config(3, 2));
        let t = Instant::from_secs(1);
        assert_eq!(
            check(&mut probe, HealthCheckResult::unhealthy("x"), t),
            None
        );
        assert_eq!(
            check(&mut probe, HealthCheckResult::unhealthy("x"), t),
            None
        );
        assert_eq!(probe.status(), HealthStatus::Unknown);
        assert_eq!(
            check(&mut probe, HealthCheckResult::unhealthy("x"), t),
            Some(ProbeTransition {
                from: HealthStatus::Unknown,
                to: HealthStatus::Unhealthy
            })
        );
        // One success does not clear Unhealthy with success_threshold 2.
        assert_eq!(check(&mut probe, HealthCheckResult::healthy(), t), None);
        assert_eq!(probe.status(), HealthStatus::Unhealthy);
        assert_eq!(
            check(&mut probe, HealthCheckResult::degraded("slow"), t),
            Some(ProbeTransition {
                from: HealthStatus::Unhealthy,
                to: HealthStatus::Degraded
            })
        );
        // Passing: Degraded <-> Healthy follows the latest result at once.
        assert!(check(&mut probe, HealthCheckResult::healthy(), t).is_some());
        assert_eq!(probe.status(), HealthStatus::Healthy);
        // Two failures do not make Healthy Unhealthy; a pass in between restarts the count.
        check(&mut probe, HealthCheckResult::unhealthy("x"), t);
        check(&mut probe, HealthCheckResult::unhealthy("x"), t);
        check(&mut probe, HealthCheckResult::degraded("slow"), t);
        assert_eq!(probe.status(), HealthStatus::Degraded);
        check(&mut probe, HealthCheckResult::unhealthy("x"), t);
        check(&mut probe, HealthCheckResult::unhealthy("x"), t);
        assert_eq!(probe.status(), HealthStatus::Degraded);
        check(
            &mut probe,
            HealthCheckResult::new(HealthStatus::Unknown, "?"),
            t,
        );
        assert_eq!(probe.status(), HealthStatus::Unhealthy);
    }

    #[test]
    fn timeouts_fail_and_late_results_are_timeouts() {
        let mut probe = ProbeState::new(config(1, 1));
        let t0 = Instant::from_secs(5);
        let ticket = probe.try_start(t0).expect("idle");
        assert_eq!(probe.try_start(t0), Err(CheckInFlight { ticket }));
        assert_eq!(probe.poll_at(), Some(t0 + Duration::from_secs(1)));
        assert_eq!(probe.poll(t0 + Duration::from_millis(999)), None);
        assert_eq!(
            probe.poll(t0 + Duration::from_secs(1)),
            Some(ProbeTransition {
                from: HealthStatus::Unknown,
                to: HealthStatus::Unhealthy
            })
        );
        assert_eq!(probe.poll_at(), Some(t0 + Duration::from_secs(10)));
        // The answer arrives after all: ignored.
        assert_eq!(
            probe.on_result(
                ticket,
                HealthCheckResult::healthy(),
                t0 + Duration::from_secs(2)
            ),
            Err(StaleTicket)
        );
        assert_eq!(probe.status(), HealthStatus::Unhealthy);
        // A healthy answer that arrives at the deadline without a poll is a timeout too.
        let t1 = t0 + Duration::from_secs(10);
        let ticket = probe.try_start(t1).expect("idle");
        assert_eq!(
            probe.on_result(
                ticket,
                HealthCheckResult::healthy(),
                t1 + Duration::from_secs(1)
            ),
            Ok(None)
        );
        assert_eq!(probe.stats().timed_out, 2);
        assert_eq!(probe.stats().ignored, 1);
        assert_eq!(probe.last_result().map(|r| r.message()), Some("timed out"));
    }

    #[test]
    fn reset_forgets_and_stales_the_running_check() {
        let mut probe = ProbeState::new(config(1, 1));
        check(&mut probe, HealthCheckResult::unhealthy("x"), Instant::ZERO);
        let ticket = probe.try_start(Instant::from_secs(10)).expect("idle");
        probe.reset(Instant::from_secs(11));
        assert_eq!(probe.status(), HealthStatus::Unknown);
        assert!(probe.is_due(Instant::from_secs(11)));
        assert!(probe.last_result().is_none());
        assert_eq!(
            probe.on_result(ticket, HealthCheckResult::healthy(), Instant::from_secs(11)),
            Err(StaleTicket)
        );
        let next = probe.try_start(Instant::from_secs(11)).expect("idle");
        assert_ne!(next, ticket);
    }

    #[test]
    fn extreme_times_saturate() {
        let huge = HealthProbeConfig {
            interval: Duration::MAX,
            timeout: Duration::MAX,
            failure_threshold: u32::MAX,
            success_threshold: u32::MAX,
        };
        let mut probe = ProbeState::new(huge);
        let ticket = probe.try_start(Instant::MAX).expect("idle");
        assert_eq!(probe.poll_at(), Some(Instant::MAX));
        assert_eq!(
            probe.on_result(ticket, HealthCheckResult::healthy(), Instant::ZERO),
            Ok(None)
        );
        assert_eq!(probe.poll_at(), Some(Instant::MAX));
        // A deadline that saturated means "never": not even the last instant times it out.
        let ticket = probe.try_start(Instant::from_micros(7)).expect("idle");
        assert_eq!(probe.poll(Instant::MAX), None);
        assert_eq!(probe.stats().timed_out, 0);
        assert_eq!(
            probe.on_result(ticket, HealthCheckResult::healthy(), Instant::MAX),
            Ok(None)
        );
        assert_eq!(probe.stats().passed, 2);
    }

    #[test]
    fn a_deadline_that_saturates_is_never_reached() {
        let mut probe = ProbeState::new(HealthProbeConfig {
            failure_threshold: 1,
            success_threshold: 1,
            ..HealthProbeConfig::default()
        });
        // Started 0.5 s before the end of the clock with a 1 s timeout: the deadline saturates.
        let started = Instant::MAX - Duration::from_millis(500);
        let ticket = probe.try_start(started).expect("idle");
        assert_eq!(probe.poll(Instant::MAX), None);
        assert_eq!(
            probe.on_result(ticket, HealthCheckResult::healthy(), Instant::MAX),
            Ok(Some(ProbeTransition {
                from: HealthStatus::Unknown,
                to: HealthStatus::Healthy
            }))
        );
        assert_eq!(probe.stats().timed_out, 0);
        // A deadline one microsecond before the end is reached there, as any other.
        let started = Instant::MAX - Duration::from_secs(1) - Duration::from_micros(1);
        probe.try_start(started).expect("idle");
        assert_eq!(probe.poll(Instant::MAX - Duration::from_micros(2)), None);
        assert!(
            probe
                .poll(Instant::MAX - Duration::from_micros(1))
                .is_some()
        );
        assert_eq!(probe.stats().timed_out, 1);
        assert_eq!(probe.status(), HealthStatus::Unhealthy);
    }
}
