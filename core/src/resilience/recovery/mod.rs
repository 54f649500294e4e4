//! Recovery policies: what to do when a kernel fails, with restart intensity and escalation.
//!
//! [`RecoveryPolicy`] is the chapter's policy, field for field. [`RestartIntensity`] adds what a
//! supervisor needs to stop restarting a kernel that keeps failing: the window in which at most
//! `max_restarts` restarts may happen, as Erlang/OTP supervisors count them, and an optional
//! growing delay between successive restarts. [`Recovery`] is the state machine that turns
//! failure and health reports into [`RecoveryAction`]s for an adapter to carry out.
//! [`RecoveryLadder`] chains several of them into escalation levels (restart, then degrade,
//! then notify) and turns each decision into a [`Directive`]: the tokio and embassy supervisors
//! only carry directives out.
//!
//! Files: `mod.rs` (strategy, policy, actions), `backoff.rs`, `intensity.rs` (and validation),
//! `machine.rs` ([`Recovery`]), `ladder.rs` ([`RecoveryLadder`], [`Directive`]), `tests.rs`.
//!
//! ```
//! use core::time::Duration;
//! use rustkernel_core::resilience::{
//!     Recovery, RecoveryAction, RecoveryPolicy, RecoveryStrategy, RestartIntensity,
//! };
//! use rustkernel_core::time::Instant;
//!
//! let policy = RecoveryPolicy {
//!     strategy: RecoveryStrategy::RestartKernel,
//!     max_restarts: 3,
//!     restart_delay: Duration::from_secs(5),
//!     escalation: Some(RecoveryStrategy::NotifyOperator),
//! };
//! let mut recovery: Recovery = Recovery::new(policy, RestartIntensity::default());
//!
//! // Three failures, each after the previous restart came up: three restarts.
//! let mut now = Instant::from_secs(100);
//! for attempt in 1..=3 {
//!     let action = recovery.on_failure(now);
//!     let at = now + Duration::from_secs(5);
//!     assert_eq!(action, RecoveryAction::Restart { at, attempt });
//!     now = at + Duration::from_secs(1);
//! }
//! // The fourth within the window is one too many: escalate.
//! assert_eq!(
//!     recovery.on_failure(now),
//!     RecoveryAction::Escalate(RecoveryStrategy::NotifyOperator)
//! );
//! ```

mod backoff;
mod intensity;
mod ladder;
mod machine;

use core::fmt;
use core::time::Duration;

pub use backoff::RestartBackoff;
pub use intensity::RestartIntensity;
pub use ladder::{Directive, RecoveryLadder, RecoveryStep};
pub use machine::Recovery;

use crate::error::{ConfigError, ConfigField};
use crate::time::Instant;

/// How a failed kernel is recovered; the chapter's five strategies.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
#[cfg_attr(feature = "serde", derive(serde::Serialize, serde::Deserialize))]
#[cfg_attr(feature = "defmt", derive(defmt::Format))]
pub enum RecoveryStrategy {
    /// Restart the failed kernel (after [`RecoveryPolicy::restart_delay`]).
    RestartKernel,
    /// Switch to a replica of the kernel.
    UseReplica,
    /// Continue with reduced functionality (a CPU path instead of the GPU kernel).
    Degrade,
    /// Switch to a backup system.
    Failover,
    /// Alert a human operator.
    NotifyOperator,
}

impl RecoveryStrategy {
    /// Every strategy, in declaration order.
    pub const ALL: [RecoveryStrategy; 5] = [
        RecoveryStrategy::RestartKernel,
        RecoveryStrategy::UseReplica,
        RecoveryStrategy::Degrade,
        RecoveryStrategy::Failover,
        RecoveryStrategy::NotifyOperator,
    ];

    /// The strategy's name as written in configs and logs (`"restart_kernel"`).
    #[must_use]
    pub const fn as_str(self) -> &'static str {
        match self {
            RecoveryStrategy::RestartKernel => "restart_kernel",
            RecoveryStrategy::UseReplica => "use_replica",
            RecoveryStrategy::Degrade => "degrade",
            RecoveryStrategy::Failover => "failover",
            RecoveryStrategy::NotifyOperator => "notify_operator",
        }
    }
}

impl fmt::Display for RecoveryStrategy {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// The chapter's recovery policy: a strategy, how many restarts it may use, and where to go next.
///
/// It has exactly the chapter's four public fields, so the chapter's struct literal compiles.
/// The window those restarts are counted in, and any growth of the delay, live in the companion
/// [`RestartIntensity`].
///
/// `max_restarts`, `restart_delay` and `escalation` only matter with
/// [`RecoveryStrategy::RestartKernel`]; every other strategy is applied on each failure as is.
///
/// The default is the chapter's example: restart up to 3 times, 5 s apart, then notify an
/// operator.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
#[cfg_attr(feature = "serde", derive(serde::Serialize, serde::Deserialize))]
#[cfg_attr(feature = "defmt", derive(defmt::Format))]
pub struct RecoveryPolicy {
    /// What to do when the kernel fails.
    pub strategy: RecoveryStrategy,
    /// The most restarts allowed within [`RestartIntensity::window`]; one more failure escalates.
    pub max_restarts: u32,
    /// How long after a failure the kernel is restarted (the first delay when backoff is on).
    pub restart_delay: Duration,
    /// What to do when the restarts are used up; `None` gives up and leaves the kernel down.
    pub escalation: Option<RecoveryStrategy>,
}

impl RecoveryPolicy {
    /// Checks the policy on its own.
    ///
    /// # Errors
    /// [`ConfigError::Zero`]`(`[`ConfigField::MaxRestarts`]`)` when the strategy is
    /// [`RecoveryStrategy::RestartKernel`] and `max_restarts` is 0: such a policy could never
    /// restart; name the escalation as the strategy instead.
    pub const fn validate(&self) -> Result<(), ConfigError> {
        if matches!(self.strategy, RecoveryStrategy::RestartKernel) && self.max_restarts == 0 {
            return Err(ConfigError::Zero(ConfigField::MaxRestarts));
        }
        Ok(())
    }
}

impl Default for RecoveryPolicy {
    fn default() -> Self {
        Self {
            strategy: RecoveryStrategy::RestartKernel,
            max_restarts: 3,
            restart_delay: Duration::from_secs(5),
            escalation: Some(RecoveryStrategy::NotifyOperator),
        }
    }
}

/// Where a [`Recovery`] went when its restarts ran out.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
#[cfg_attr(feature = "serde", derive(serde::Serialize, serde::Deserialize))]
#[cfg_attr(feature = "defmt", derive(defmt::Format))]
pub enum Escalation {
    /// Escalated to the policy's [`RecoveryPolicy::escalation`].
    To(RecoveryStrategy),
    /// The policy has no escalation: the machine gave up and the kernel stays down.
    GaveUp,
}

impl fmt::Display for Escalation {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Escalation::To(strategy) => write!(f, "escalated to {strategy}"),
            Escalation::GaveUp => f.write_str("gave up"),
        }
    }
}

/// What the adapter should do about a failure; returned by [`Recovery::on_failure`].
///
/// [`RecoveryAction::needs_action`] tells the variants that ask for something new apart from
/// those that only confirm what is already under way.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
#[cfg_attr(feature = "serde", derive(serde::Serialize, serde::Deserialize))]
#[cfg_attr(feature = "defmt", derive(defmt::Format))]
pub enum RecoveryAction {
    /// Restart the kernel at `at` (the failure's `now` plus the restart delay).
    Restart {
        /// When to restart.
        at: Instant,
        /// Which restart this is since the machine last started afresh (1 for the first); it
        /// counts on across windows until the kernel has been healthy for a whole window.
        attempt: u32,
    },
    /// A restart decided earlier is still due at `at`: the failure is about the kernel that
    /// is already down, so nothing new is scheduled and no restart is counted.
    RestartPending {
        /// When the pending restart is due.
        at: Instant,
        /// The pending restart's attempt number.
        attempt: u32,
    },
    /// The policy's strategy is [`RecoveryStrategy::UseReplica`]: switch to a replica.
    UseReplica,
    /// The policy's strategy is [`RecoveryStrategy::Degrade`]: continue with reduced function.
    Degrade,
    /// The policy's strategy is [`RecoveryStrategy::Failover`]: switch to the backup system.
    Failover,
    /// The policy's strategy is [`RecoveryStrategy::NotifyOperator`]: alert an operator.
    NotifyOperator,
    /// This failure went past the restart intensity: stop restarting and carry out the
    /// escalation strategy, once.
    Escalate(RecoveryStrategy),
    /// This failure went past the restart intensity and the policy has no escalation: stop
    /// restarting, leave the kernel down and report it.
    GiveUp,
    /// The machine escalated (or gave up) earlier and stays so until [`Recovery::reset`] or a
    /// healthy window: nothing new to do.
    AlreadyEscalated(Escalation),
}

impl RecoveryAction {
    /// Whether the action asks the adapter for something new; `false` for
    /// [`RecoveryAction::RestartPending`] and [`RecoveryAction::AlreadyEscalated`].
    #[must_use]
    pub const fn needs_action(self) -> bool {
        !matches!(
            self,
            RecoveryAction::RestartPending { .. } | RecoveryAction::AlreadyEscalated(_)
        )
    }

    /// The strategy the action stands for: [`RecoveryStrategy::RestartKernel`] for a restart
    /// (pending or not), the policy's own strategy, the escalation's, or the escalation in
    /// force; `None` for [`RecoveryAction::GiveUp`] and an escalation that gave up.
    #[must_use]
    pub const fn strategy(self) -> Option<RecoveryStrategy> {
        match self {
            RecoveryAction::Restart { .. } | RecoveryAction::RestartPending { .. } => {
                Some(RecoveryStrategy::RestartKernel)
            }
            RecoveryAction::UseReplica => Some(RecoveryStrategy::UseReplica),
            RecoveryAction::Degrade => Some(RecoveryStrategy::Degrade),
            RecoveryAction::Failover => Some(RecoveryStrategy::Failover),
            RecoveryAction::NotifyOperator => Some(RecoveryStrategy::NotifyOperator),
            RecoveryAction::Escalate(strategy)
            | RecoveryAction::AlreadyEscalated(Escalation::To(strategy)) => Some(strategy),
            RecoveryAction::GiveUp | RecoveryAction::AlreadyEscalated(Escalation::GaveUp) => None,
        }
    }
}

impl fmt::Display for RecoveryAction {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            RecoveryAction::Restart { at, attempt } => {
                write!(f, "restart at {at} (attempt {attempt})")
            }
            RecoveryAction::RestartPending { at, attempt } => {
                write!(f, "restart pending at {at} (attempt {attempt})")
            }
            RecoveryAction::UseReplica => f.write_str("use replica"),
            RecoveryAction::Degrade => f.write_str("degrade"),
            RecoveryAction::Failover => f.write_str("fail over"),
            RecoveryAction::NotifyOperator => f.write_str("notify operator"),
            RecoveryAction::Escalate(strategy) => write!(f, "escalate to {strategy}"),
            RecoveryAction::GiveUp => f.write_str("give up"),
            RecoveryAction::AlreadyEscalated(escalation) => write!(f, "already {escalation}"),
        }
    }
}

/// Where a [`Recovery`] stands, as of its latest input.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
#[cfg_attr(feature = "serde", derive(serde::Serialize, serde::Deserialize))]
#[cfg_attr(feature = "defmt", derive(defmt::Format))]
pub enum RecoveryState {
    /// Under the policy, no restart pending.
    Normal,
    /// A restart is due at `at`.
    RestartScheduled {
        /// When the restart is due.
        at: Instant,
        /// Its attempt number.
        attempt: u32,
    },
    /// The restart intensity was exceeded at `since`.
    Escalated {
        /// Where the machine went.
        escalation: Escalation,
        /// The failure that escalated.
        since: Instant,
    },
}

/// What [`Recovery::on_healthy`] restored after a whole healthy window.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
#[cfg_attr(feature = "serde", derive(serde::Serialize, serde::Deserialize))]
#[cfg_attr(feature = "defmt", derive(defmt::Format))]
pub enum Recovered {
    /// The restart count and the backoff delay start afresh.
    Budget,
    /// The machine left this escalation and is back under its policy, with a fresh budget.
    FromEscalation(Escalation),
}

/// How many restart times a [`Recovery`] remembers unless told otherwise; the largest
/// `max_restarts` it accepts.
pub const DEFAULT_RESTART_CAPACITY: usize = 8;

#[cfg(test)]
mod tests;
