//! [`RecoveryLadder`]: escalation through `L` levels, each a [`Recovery`] with its own policy,
//! and the [`Directive`] an adapter carries out for each failure.
//!
//! Both supervisors (tokio and embassy) drive a ladder and only carry out its directives, so
//! "restart up to 3 times in a minute, then degrade; while degraded, try one slow restart, then
//! notify an operator" means the same on a host and on a microcontroller.

use core::fmt;

use super::{
    DEFAULT_RESTART_CAPACITY, Escalation, Recovered, Recovery, RecoveryAction, RecoveryStrategy,
};
use crate::time::Instant;

/// What an adapter carries out for one failure, as the [`RecoveryLadder`] decided it.
///
/// Every variant that brings a kernel up again ([`Directive::restores_checkpoint`]) is followed
/// by restoring the newest good checkpoint into that kernel, where the adapter keeps
/// checkpoints.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
#[cfg_attr(feature = "serde", derive(serde::Serialize, serde::Deserialize))]
#[cfg_attr(feature = "defmt", derive(defmt::Format))]
pub enum Directive {
    /// Restart the kernel that failed at `at`, then restore its newest good checkpoint.
    Restart {
        /// When to restart.
        at: Instant,
        /// The level's restart count ([`RecoveryAction::Restart`]'s attempt); `None` for an
        /// uncounted restart, when a level escalates to [`RecoveryStrategy::RestartKernel`]
        /// (it then restarts after its `restart_delay` for as long as the kernel fails).
        attempt: Option<u32>,
    },
    /// Switch to a replica of the kernel, then restore the newest good checkpoint into it.
    UseReplica,
    /// Switch to the backup system, then restore the newest good checkpoint into it.
    Failover,
    /// Switch to the reduced implementation (a CPU path instead of the GPU kernel), then
    /// restore the newest good checkpoint into it.
    Degrade,
    /// Alert a human operator.
    NotifyOperator,
    /// The restarts ran out, the level has no escalation and no level is left to hand the
    /// failure to: leave the kernel down and report it.
    GiveUp,
    /// Nothing new: a restart decided earlier is still due at `at`, and this failure is about
    /// the kernel it will bring back.
    Pending {
        /// When the pending restart is due.
        at: Instant,
    },
    /// Nothing new: the last level escalated earlier and stays so; what its escalation set up
    /// (a replica, a backup, the degraded path, an alerted operator) failed too, or it gave up.
    Exhausted(Escalation),
}

impl Directive {
    /// The directive that carries out `strategy`; a restart (uncounted) is due at `restart_at`.
    #[must_use]
    pub const fn for_strategy(strategy: RecoveryStrategy, restart_at: Instant) -> Self {
        match strategy {
            RecoveryStrategy::RestartKernel => Directive::Restart {
                at: restart_at,
                attempt: None,
            },
            RecoveryStrategy::UseReplica => Directive::UseReplica,
            RecoveryStrategy::Degrade => Directive::Degrade,
            RecoveryStrategy::Failover => Directive::Failover,
            RecoveryStrategy::NotifyOperator => Directive::NotifyOperator,
        }
    }

    /// The directive for `action`, decided by a level whose uncounted restart would be due at
    /// `restart_at`. This is the one mapping from the core's decisions to what adapters do.
    #[must_use]
    pub const fn for_action(action: RecoveryAction, restart_at: Instant) -> Self {
        match action {
            RecoveryAction::Restart { at, attempt } => Directive::Restart {
                at,
                attempt: Some(attempt),
            },
            RecoveryAction::RestartPending { at, .. } => Directive::Pending { at },
            RecoveryAction::GiveUp => Directive::GiveUp,
            // An escalation to restarts goes on restarting; any other escalation in force has
            // nothing new to offer.
            RecoveryAction::AlreadyEscalated(Escalation::To(RecoveryStrategy::RestartKernel)) => {
                Directive::for_strategy(RecoveryStrategy::RestartKernel, restart_at)
            }
            RecoveryAction::AlreadyEscalated(escalation) => Directive::Exhausted(escalation),
            RecoveryAction::UseReplica => Directive::UseReplica,
            RecoveryAction::Degrade => Directive::Degrade,
            RecoveryAction::Failover => Directive::Failover,
            RecoveryAction::NotifyOperator => Directive::NotifyOperator,
            RecoveryAction::Escalate(strategy) => Directive::for_strategy(strategy, restart_at),
        }
    }

    /// The strategy the directive carries out: [`RecoveryStrategy::RestartKernel`] for
    /// [`Directive::Restart`]; `None` for [`Directive::GiveUp`], [`Directive::Pending`] and
    /// [`Directive::Exhausted`].
    #[must_use]
    pub const fn strategy(self) -> Option<RecoveryStrategy> {
        match self {
            Directive::Restart { .. } => Some(RecoveryStrategy::RestartKernel),
            Directive::UseReplica => Some(RecoveryStrategy::UseReplica),
            Directive::Failover => Some(RecoveryStrategy::Failover),
            Directive::Degrade => Some(RecoveryStrategy::Degrade),
            Directive::NotifyOperator => Some(RecoveryStrategy::NotifyOperator),
            Directive::GiveUp | Directive::Pending { .. } | Directive::Exhausted(_) => None,
        }
    }

    /// Whether a kernel comes up after this directive (a restart or a switch), so the newest
    /// good checkpoint is restored into it.
    #[must_use]
    pub const fn restores_checkpoint(self) -> bool {
        matches!(
            self,
            Directive::Restart { .. }
                | Directive::UseReplica
                | Directive::Failover
                | Directive::Degrade
        )
    }

    /// Whether the directive asks for something new; `false` for [`Directive::Pending`] and
    /// [`Directive::Exhausted`].
    #[must_use]
    pub const fn needs_action(self) -> bool {
        !matches!(self, Directive::Pending { .. } | Directive::Exhausted(_))
    }
}

impl fmt::Display for Directive {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Directive::Restart {
                at,
                attempt: Some(attempt),
            } => write!(f, "restart at {at} (attempt {attempt})"),
            Directive::Restart { at, attempt: None } => write!(f, "restart at {at} (uncounted)"),
            Directive::UseReplica => f.write_str("use replica"),
            Directive::Failover => f.write_str("fail over"),
            Directive::Degrade => f.write_str("degrade"),
            Directive::NotifyOperator => f.write_str("notify operator"),
            Directive::GiveUp => f.write_str("give up"),
            Directive::Pending { at } => write!(f, "restart pending at {at}"),
            Directive::Exhausted(escalation) => write!(f, "nothing left ({escalation})"),
        }
    }
}

/// One failure as the ladder handled it.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
#[cfg_attr(feature = "serde", derive(serde::Serialize, serde::Deserialize))]
#[cfg_attr(feature = "defmt", derive(defmt::Format))]
pub struct RecoveryStep {
    /// The level (index into the ladder) that decided.
    pub level: usize,
    /// What that level's [`Recovery`] decided.
    pub action: RecoveryAction,
    /// What the adapter carries out.
    pub directive: Directive,
}

/// Escalation through `L` levels, each a [`Recovery`] with its own policy and intensity.
///
/// # Rules
/// - **Failures** go to the current level (0 until the first escalation). When it escalates,
///   its escalation is carried out and the next level takes the following failures, its quiet
///   window counting from the escalation. A level whose policy has no escalation
///   ([`RecoveryAction::GiveUp`]) hands the same failure to the next level at once. The last
///   level's escalation is final until a healthy window or [`reset`](Self::reset).
/// - Escalated levels above the current one hear every failure too, so their own quiet window
///   counts from the latest failure.
/// - **De-escalation**: [`on_healthy`](Self::on_healthy) restores nothing until the *current*
///   level has gone a whole window of its own without a failure, counted from its last failure
///   or the restart that followed it, or from when it took over. Only then do the levels above
///   it that have been quiet for their own windows end their escalations, and the ladder goes
///   back to the shallowest of them. So a component that went down again while a deeper level
///   restarted it is never declared recovered the moment it comes back.
/// - With one level the ladder is exactly its [`Recovery`].
///
/// # Method families
/// - Inputs: [`on_failure`](Self::on_failure), [`on_healthy`](Self::on_healthy),
///   [`poll`](Self::poll), [`reset`](Self::reset).
/// - Getters: [`level`](Self::level), [`current`](Self::current), [`levels`](Self::levels),
///   [`escalation`](Self::escalation).
/// - Outputs: [`poll_at`](Self::poll_at) (call [`poll`](Self::poll) then),
///   [`healthy_at`](Self::healthy_at) (when a healthy kernel next restores something).
#[derive(Clone, Debug)]
pub struct RecoveryLadder<const L: usize, const N: usize = DEFAULT_RESTART_CAPACITY> {
    levels: [Recovery<N>; L],
    level: usize,
}

impl<const L: usize, const N: usize> RecoveryLadder<L, N> {
    /// A ladder at level 0 of `levels` (at least one, checked at compile time).
    #[must_use]
    pub const fn new(levels: [Recovery<N>; L]) -> Self {
        const { assert!(L > 0, "a recovery ladder needs at least one level") };
        Self { levels, level: 0 }
    }

    // ----- inputs -----

    /// The kernel failed at `now`: which level decides, what it decided, and what to carry out.
    pub fn on_failure(&mut self, now: Instant) -> RecoveryStep {
        for level in self.levels.iter_mut().take(self.level) {
            let _ = level.on_failure(now);
        }
        let mut index = self.level;
        loop {
            let next = index.saturating_add(1);
            let has_next = next < L;
            let Some(level) = self.levels.get_mut(index) else {
                // Unreachable: the level is always below `L`.
                return RecoveryStep {
                    level: index,
                    action: RecoveryAction::GiveUp,
                    directive: Directive::GiveUp,
                };
            };
            let action = level.on_failure(now);
            let clock = level.clock();
            let restart_at = clock.saturating_add(level.policy().restart_delay);
            match action {
                RecoveryAction::GiveUp if has_next => {
                    // No escalation of its own: the next level handles this very failure.
                    self.level = next;
                    index = next;
                    continue;
                }
                RecoveryAction::Escalate(_) if has_next => {
                    self.level = next;
                    if let Some(deeper) = self.levels.get_mut(next) {
                        deeper.quiet_from(clock);
                    }
                }
                _ => {}
            }
            return RecoveryStep {
                level: index,
                action,
                directive: Directive::for_action(action, restart_at),
            };
        }
    }

    /// The kernel is healthy at `now`.
    ///
    /// Nothing is restored until the current level has been quiet for a whole window of its
    /// own (see the type's rules). Then the current level's budget starts afresh, and the
    /// levels above it whose own windows have passed end their escalations: the ladder goes
    /// back to the shallowest of them, resetting it and every deeper level. Returns the
    /// escalation that ended ([`Recovered::FromEscalation`] of the level the ladder went back
    /// to), else what the current level restored, else `None`.
    pub fn on_healthy(&mut self, now: Instant) -> Option<Recovered> {
        let current = self.level;
        let quiet = self
            .levels
            .get(current)
            .is_some_and(|level| level.quiet_through(now));
        if !quiet {
            self.poll(now);
            return None;
        }
        let mut answer = None;
        let mut back_to = None;
        for (index, level) in self
            .levels
            .iter_mut()
            .enumerate()
            .take(current.saturating_add(1))
        {
            let restored = level.on_healthy(now);
            if let Some(Recovered::FromEscalation(_)) = restored
                && back_to.is_none()
            {
                back_to = Some(index);
                answer = restored;
            }
            if index == current {
                answer = answer.or(restored);
            }
        }
        if let Some(index) = back_to {
            for level in self.levels.iter_mut().skip(index) {
                level.reset();
            }
            self.level = index;
        }
        answer
    }

    /// Time passed: call at [`poll_at`](Self::poll_at) (any time is harmless).
    pub fn poll(&mut self, now: Instant) {
        for level in &mut self.levels {
            level.poll(now);
        }
    }

    /// Back to level 0 with every budget fresh (an operator fixed the kernel).
    pub fn reset(&mut self) {
        for level in &mut self.levels {
            level.reset();
        }
        self.level = 0;
    }

    // ----- getters -----

    /// The current level (0 until the first escalation).
    #[must_use]
    pub const fn level(&self) -> usize {
        self.level
    }

    /// The current level's state machine (always `Some`; an `Option` only to avoid indexing).
    #[must_use]
    pub fn current(&self) -> Option<&Recovery<N>> {
        self.levels.get(self.level)
    }

    /// Every level's state machine.
    #[must_use]
    pub const fn levels(&self) -> &[Recovery<N>; L] {
        &self.levels
    }

    /// The deepest escalation in force: the current level's, or the one that led to it.
    #[must_use]
    pub fn escalation(&self) -> Option<Escalation> {
        self.levels
            .iter()
            .take(self.level.saturating_add(1))
            .rev()
            .find_map(Recovery::escalation)
    }

    // ----- outputs -----

    /// When the answers of some level next change with time alone; see [`Recovery::poll_at`].
    #[must_use]
    pub fn poll_at(&self) -> Option<Instant> {
        self.levels.iter().filter_map(Recovery::poll_at).min()
    }

    /// When [`on_healthy`](Self::on_healthy) can next restore something, if the kernel stays
    /// healthy until then: not before the current level's quiet window has passed, and then as
    /// soon as the current level or an escalated level above it has something to restore.
    /// `None` when nothing is to be restored.
    #[must_use]
    pub fn healthy_at(&self) -> Option<Instant> {
        let current = self.current()?;
        let gate = current.quiet_until()?;
        let mut next = current.healthy_at();
        for level in self.levels.iter().take(self.level) {
            next = match (next, level.healthy_at()) {
                (Some(a), Some(b)) => Some(a.min(b)),
                (a, b) => a.or(b),
            };
        }
        next.map(|at| at.max(gate))
    }
}

impl<const N: usize> From<Recovery<N>> for RecoveryLadder<1, N> {
    /// A ladder of one level: exactly that machine.
    fn from(recovery: Recovery<N>) -> Self {
        Self::new([recovery])
    }
}
