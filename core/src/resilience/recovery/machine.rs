//! [`Recovery`]: the state machine of one recovery policy.

use core::time::Duration;

use super::{
    DEFAULT_RESTART_CAPACITY, Escalation, Recovered, RecoveryAction, RecoveryPolicy, RecoveryState,
    RecoveryStrategy, RestartIntensity,
};
use crate::error::{ConfigError, valid_or_panic};
use crate::time::{Instant, duration_as_micros};

/// The recovery state machine: failures and health reports in, [`RecoveryAction`]s out.
///
/// Built from a [`RecoveryPolicy`] and a [`RestartIntensity`]. It remembers the times of the
/// restarts in the current window, at most `N` of them, so `max_restarts` may be at most `N`.
///
/// # Method families
/// - Inputs: [`on_failure`](Self::on_failure) (what to do now),
///   [`on_healthy`](Self::on_healthy) (the kernel is healthy), [`poll`](Self::poll)
///   (call at [`poll_at`](Self::poll_at)), [`reset`](Self::reset).
/// - Getters: [`state`](Self::state), [`escalation`](Self::escalation),
///   [`restarts_in_window`](Self::restarts_in_window),
///   [`remaining_restarts`](Self::remaining_restarts), [`attempt`](Self::attempt),
///   [`next_restart_delay`](Self::next_restart_delay), [`policy`](Self::policy),
///   [`intensity`](Self::intensity).
/// - Output: [`poll_at`](Self::poll_at), when the machine's answers next change with time alone.
///
/// # Semantics
/// - **Intensity** (OTP's): a restart is counted at the `now` of the failure that decided it and
///   forgotten once `window` has passed since then (a restart at `t` is in the window at `now`
///   while `now - t < window`, in whole microseconds). A failure with fewer than
///   `max_restarts` restarts in the window restarts; the first failure with `max_restarts`
///   already in the window escalates.
/// - **Pending restarts**: a failure reported before the pending restart's `at` is about the
///   kernel that is already down; it gets [`RecoveryAction::RestartPending`] and is not counted.
/// - **Escalation is sticky**: after [`RecoveryAction::Escalate`] or [`RecoveryAction::GiveUp`]
///   every failure gets [`RecoveryAction::AlreadyEscalated`] until [`reset`](Self::reset), or
///   until [`on_healthy`](Self::on_healthy) reports the kernel healthy a whole window after the
///   last failure. Restarts aging out of the window do not end an escalation: the adapter
///   carried it out (failed over, called an operator) and only a healthy kernel or a deliberate
///   reset brings the policy back.
/// - **Backoff and attempts**: each restart's delay is the previous one times the multiplier,
///   capped. The delay and the attempt number start afresh only when
///   [`on_healthy`](Self::on_healthy) reports the kernel healthy a whole window after the last
///   failure and its restart, or on [`reset`](Self::reset). The machine cannot see between
///   inputs: "healthy for a whole window" means no failure was reported in it and the kernel is
///   healthy at the end.
/// - **Other strategies** ([`RecoveryStrategy::UseReplica`], [`RecoveryStrategy::Degrade`],
///   [`RecoveryStrategy::Failover`], [`RecoveryStrategy::NotifyOperator`]) are answered with
///   their action on every failure; they count nothing.
/// - **Time**: a `now` earlier than one already seen counts as the latest seen, so the machine's
///   clock never goes back; all arithmetic saturates.
#[derive(Clone, Debug)]
pub struct Recovery<const N: usize = DEFAULT_RESTART_CAPACITY> {
    policy: RecoveryPolicy,
    intensity: RestartIntensity,
    /// Decision times of the restarts still in the window, oldest first (sorted, since the
    /// machine's clock never goes back).
    restarts: RestartTimes<N>,
    state: RecoveryState,
    /// Restarts since the machine last started afresh.
    attempt: u32,
    /// The delay the next restart gets.
    next_delay: Duration,
    /// From when the kernel counts as healthy: after the last failure and its restart.
    quiet_since: Instant,
    /// The latest `now` seen.
    latest: Instant,
}

impl<const N: usize> Recovery<N> {
    /// A machine for `policy` with restarts counted as `intensity` says.
    ///
    /// # Errors
    /// Those of [`RestartIntensity::validate_for`] with capacity `N`: first
    /// [`ConfigError::TooLarge`] `{ field: MaxRestarts, max: N }` when a restart policy's
    /// `max_restarts` exceeds `N`, then those of [`RestartIntensity::validate_with`].
    pub const fn try_new(
        policy: RecoveryPolicy,
        intensity: RestartIntensity,
    ) -> Result<Self, ConfigError> {
        if let Err(error) = intensity.validate_for(&policy, N) {
            return Err(error);
        }
        Ok(Self {
            policy,
            intensity,
            restarts: RestartTimes::EMPTY,
            state: RecoveryState::Normal,
            attempt: 0,
            next_delay: policy.restart_delay,
            quiet_since: Instant::ZERO,
            latest: Instant::ZERO,
        })
    }

    /// Like [`Recovery::try_new`], for configurations known to be valid.
    ///
    /// # Panics
    /// When [`Recovery::try_new`] returns an error; the panic message is the error's.
    #[must_use]
    #[track_caller]
    pub fn new(policy: RecoveryPolicy, intensity: RestartIntensity) -> Self {
        valid_or_panic(Self::try_new(policy, intensity), "recovery configuration")
    }

    // ----- inputs -----

    /// The kernel failed at `now`: what to do about it.
    ///
    /// See the type's docs for the rules; the action says exactly what to carry out.
    pub fn on_failure(&mut self, now: Instant) -> RecoveryAction {
        let now = self.advance(now);
        self.quiet_since = self.quiet_since.max(now);
        match self.policy.strategy {
            RecoveryStrategy::RestartKernel => {}
            RecoveryStrategy::UseReplica => return RecoveryAction::UseReplica,
            RecoveryStrategy::Degrade => return RecoveryAction::Degrade,
            RecoveryStrategy::Failover => return RecoveryAction::Failover,
            RecoveryStrategy::NotifyOperator => return RecoveryAction::NotifyOperator,
        }
        match self.state {
            RecoveryState::Escalated { escalation, .. } => {
                return RecoveryAction::AlreadyEscalated(escalation);
            }
            RecoveryState::RestartScheduled { at, attempt } => {
                return RecoveryAction::RestartPending { at, attempt };
            }
            RecoveryState::Normal => {}
        }
        let in_window = self.restarts.len;
        let allowed = usize::try_from(self.policy.max_restarts).unwrap_or(usize::MAX);
        if in_window >= allowed {
            let (escalation, action) = match self.policy.escalation {
                Some(strategy) => (Escalation::To(strategy), RecoveryAction::Escalate(strategy)),
                None => (Escalation::GaveUp, RecoveryAction::GiveUp),
            };
            self.state = RecoveryState::Escalated {
                escalation,
                since: now,
            };
            return action;
        }
        self.restarts.push_back(now);
        let delay = self.next_delay;
        if let Some(backoff) = &self.intensity.backoff {
            self.next_delay = backoff.next(delay);
        }
        self.attempt = self.attempt.saturating_add(1);
        let attempt = self.attempt;
        let at = now.saturating_add(delay);
        self.quiet_since = self.quiet_since.max(at);
        self.state = if at > now {
            RecoveryState::RestartScheduled { at, attempt }
        } else {
            RecoveryState::Normal
        };
        RecoveryAction::Restart { at, attempt }
    }

    /// The kernel is healthy at `now`.
    ///
    /// When no failure was reported for a whole window before `now` (counted from the last
    /// failure, or from its restart's `at` when that is later), the restart count, the backoff
    /// delay and the attempt number start afresh and any escalation ends; the return value
    /// says what was restored. Otherwise, or when there was nothing to restore, `None`.
    pub fn on_healthy(&mut self, now: Instant) -> Option<Recovered> {
        let now = self.advance(now);
        if !self.elapsed(self.quiet_since, now) {
            return None;
        }
        let restored = match self.state {
            RecoveryState::Escalated { escalation, .. } => Recovered::FromEscalation(escalation),
            RecoveryState::Normal | RecoveryState::RestartScheduled { .. } => {
                if self.attempt == 0 && self.restarts.len == 0 {
                    return None;
                }
                Recovered::Budget
            }
        };
        self.start_afresh();
        Some(restored)
    }

    /// Time passed: call at [`poll_at`](Self::poll_at) (any time is harmless). Forgets the
    /// restarts that left the window and counts a restart whose `at` has come as done.
    pub fn poll(&mut self, now: Instant) {
        let _ = self.advance(now);
    }

    /// Back under the policy with a fresh budget, whatever the state: for an operator who
    /// fixed the kernel, or an adapter that recovered it by other means.
    pub fn reset(&mut self) {
        self.start_afresh();
    }

    // ----- getters -----

    /// The policy the machine was built with.
    #[must_use]
    pub const fn policy(&self) -> &RecoveryPolicy {
        &self.policy
    }

    /// The restart intensity the machine was built with.
    #[must_use]
    pub const fn intensity(&self) -> &RestartIntensity {
        &self.intensity
    }

    /// The state as of the latest input.
    #[must_use]
    pub const fn state(&self) -> RecoveryState {
        self.state
    }

    /// The current escalation level: `None` while under the policy.
    #[must_use]
    pub const fn escalation(&self) -> Option<Escalation> {
        match self.state {
            RecoveryState::Escalated { escalation, .. } => Some(escalation),
            RecoveryState::Normal | RecoveryState::RestartScheduled { .. } => None,
        }
    }

    /// Restarts within the window at `now` (a `now` before the latest input counts as it).
    #[must_use]
    pub fn restarts_in_window(&self, now: Instant) -> u32 {
        let now = now.max(self.latest);
        let count = self
            .restarts
            .as_slice()
            .iter()
            .filter(|&&at| !self.elapsed(at, now))
            .count();
        u32::try_from(count).unwrap_or(u32::MAX)
    }

    /// Restarts still allowed within the window at `now`; 0 while escalated.
    #[must_use]
    pub fn remaining_restarts(&self, now: Instant) -> u32 {
        if self.escalation().is_some() || self.policy.strategy != RecoveryStrategy::RestartKernel {
            return 0;
        }
        self.policy
            .max_restarts
            .saturating_sub(self.restarts_in_window(now))
    }

    /// Restarts since the machine last started afresh; the last [`RecoveryAction::Restart`]'s
    /// attempt.
    #[must_use]
    pub const fn attempt(&self) -> u32 {
        self.attempt
    }

    /// The delay the next restart will get.
    #[must_use]
    pub const fn next_restart_delay(&self) -> Duration {
        self.next_delay
    }

    /// When [`on_healthy`](Self::on_healthy) can next restore something: a whole window after
    /// the last failure and its restart. `None` when there is nothing to restore (no restart
    /// counted, no escalation), or when that time is past [`Instant::MAX`].
    #[must_use]
    pub fn healthy_at(&self) -> Option<Instant> {
        let nothing = self.attempt == 0 && self.restarts.len == 0;
        if nothing && self.escalation().is_none() {
            return None;
        }
        self.quiet_until()
    }

    // ----- output -----

    /// When the machine's answers next change with time alone: the pending restart's `at`, or
    /// when the oldest restart in the window leaves it, whichever is first. `None` when nothing
    /// is pending or remembered, and while escalated (only [`on_healthy`](Self::on_healthy) or
    /// [`reset`](Self::reset) change an escalation). Call [`poll`](Self::poll) then.
    #[must_use]
    pub fn poll_at(&self) -> Option<Instant> {
        let leaves = self.restarts.front().and_then(|oldest| {
            oldest
                .as_micros()
                .checked_add(self.window_micros())
                .map(Instant::from_micros)
        });
        match self.state {
            RecoveryState::Escalated { .. } => None,
            RecoveryState::RestartScheduled { at, .. } => {
                Some(leaves.map_or(at, |leaves| leaves.min(at)))
            }
            RecoveryState::Normal => leaves,
        }
    }

    // ----- internals -----

    /// Moves the machine's clock to `now` (never back), forgets restarts that left the window
    /// and counts a due restart as done. Returns the clock.
    fn advance(&mut self, now: Instant) -> Instant {
        let now = now.max(self.latest);
        self.latest = now;
        while let Some(oldest) = self.restarts.front() {
            if !self.elapsed(oldest, now) {
                break;
            }
            self.restarts.pop_front();
        }
        if let RecoveryState::RestartScheduled { at, .. } = self.state
            && now >= at
        {
            self.state = RecoveryState::Normal;
        }
        now
    }

    /// Whether the kernel has gone a whole window without a failure (or a restart) by `now`;
    /// for the ladder, which asks before it lets any level de-escalate.
    pub(super) fn quiet_through(&self, now: Instant) -> bool {
        self.elapsed(self.quiet_since, now.max(self.latest))
    }

    /// The kernel's quiet time starts no earlier than `now`: the ladder just handed this level
    /// the kernel, so its window counts from here.
    pub(super) fn quiet_from(&mut self, now: Instant) {
        let now = self.advance(now);
        self.quiet_since = self.quiet_since.max(now);
    }

    /// When the kernel's current quiet window ends; `None` past [`Instant::MAX`].
    pub(super) fn quiet_until(&self) -> Option<Instant> {
        self.quiet_since
            .as_micros()
            .checked_add(self.window_micros())
            .map(Instant::from_micros)
    }

    /// The machine's clock: the latest `now` seen.
    pub(super) const fn clock(&self) -> Instant {
        self.latest
    }

    /// Whether a whole window has passed from `since` to `now`.
    fn elapsed(&self, since: Instant, now: Instant) -> bool {
        now.as_micros().saturating_sub(since.as_micros()) >= self.window_micros()
    }

    fn window_micros(&self) -> u64 {
        duration_as_micros(self.intensity.window)
    }

    fn start_afresh(&mut self) {
        self.restarts.clear();
        self.state = RecoveryState::Normal;
        self.attempt = 0;
        self.next_delay = self.policy.restart_delay;
    }
}

/// The decision times of the restarts still in the window, oldest first, in a plain array: a
/// `heapless::Deque` has a destructor, and a type with one cannot be built and unwrapped from a
/// `Result` in `const`, which is how firmware checks its recovery levels when it is compiled.
/// `N` is a handful (`max_restarts`), so shifting on removal costs nothing worth a ring.
#[derive(Clone, Copy, Debug)]
struct RestartTimes<const N: usize> {
    times: [Instant; N],
    /// How many of `times` are in use, at most `N`.
    len: usize,
}

impl<const N: usize> RestartTimes<N> {
    const EMPTY: Self = Self {
        times: [Instant::ZERO; N],
        len: 0,
    };

    fn as_slice(&self) -> &[Instant] {
        self.times.get(..self.len).unwrap_or(&[])
    }

    fn front(&self) -> Option<Instant> {
        self.as_slice().first().copied()
    }

    fn pop_front(&mut self) {
        if self.len > 0 {
            // Moves the oldest to the end, past `len` (`copy_within` would link `memmove`).
            for i in 1..self.len.min(N) {
                self.times.swap(i - 1, i);
            }
            self.len -= 1;
        }
    }

    /// Appends `at`; when full (unreachable: `max_restarts <= N` and the window was just
    /// pruned), forgets the oldest rather than fail.
    fn push_back(&mut self, at: Instant) {
        if self.len == N {
            self.pop_front();
        }
        if let Some(slot) = self.times.get_mut(self.len) {
            *slot = at;
            self.len += 1;
        }
    }

    fn clear(&mut self) {
        self.len = 0;
    }
}
