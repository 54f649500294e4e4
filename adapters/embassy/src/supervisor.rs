//! A supervisor: carries out the core ladder's [`Directive`]s, sleeping restart delays with
//! `Timer`, through your [`RecoveryEffects`].
//!
//! The core [`RecoveryLadder`] decides (restart now, escalate to the next level, give up) with
//! restart intensity and hands back a [`Directive`]; this supervisor reads embassy's clock, waits
//! until a restart is due, and carries the directive out through your effects:
//! [`restart`](RecoveryEffects::restart) the component, [`apply`](RecoveryEffects::apply) a
//! strategy (`Degrade`, `NotifyOperator`, `UseReplica`, `Failover`), or
//! [`give_up`](RecoveryEffects::give_up). It decides nothing itself: the tokio supervisor drives
//! the same ladder.
//!
//! # Escalation levels
//! A supervisor holds `L` levels, each a core [`Recovery`] with its own policy, in a
//! [`RecoveryLadder`] (see its rules). Failures go to the current level. When it escalates, its
//! strategy is applied and the next level takes over the following failures; a level whose
//! policy has no escalation (`GiveUp`) hands the same failure to the next level at once. The last
//! level's escalation is final. An escalation ends only after the current level has been quiet
//! for a whole window of its own. So "restart up to 3 times in a minute, then degrade; while
//! degraded, try one slow restart, then notify an operator" is:
//!
//! ```
//! use core::time::Duration;
//! use rustkernel_core::resilience::{
//!     Recovery, RecoveryAction, RecoveryPolicy, RecoveryStrategy, RestartIntensity,
//! };
//! use rustkernel_embassy::supervisor::{RecoveryEffects, Supervisor};
//!
//! let restarts: Recovery = Recovery::try_new(
//!     RecoveryPolicy {
//!         strategy: RecoveryStrategy::RestartKernel,
//!         max_restarts: 3,
//!         restart_delay: Duration::from_millis(100),
//!         escalation: Some(RecoveryStrategy::Degrade),
//!     },
//!     RestartIntensity { window: Duration::from_secs(60), backoff: None },
//! )
//! .expect("valid policy");
//! let degraded: Recovery = Recovery::try_new(
//!     RecoveryPolicy {
//!         strategy: RecoveryStrategy::RestartKernel,
//!         max_restarts: 1,
//!         restart_delay: Duration::from_secs(1),
//!         escalation: Some(RecoveryStrategy::NotifyOperator),
//!     },
//!     RestartIntensity { window: Duration::from_secs(60), backoff: None },
//! )
//! .expect("valid policy");
//! let mut supervisor = Supervisor::new([restarts, degraded]);
//!
//! #[derive(Default)]
//! struct Accelerator { restarts: u32, degraded: bool, operator_called: bool }
//!
//! impl RecoveryEffects for Accelerator {
//!     async fn restart(&mut self, _attempt: u32) {
//!         self.restarts += 1; // pulse the accelerator's reset line, reload its firmware, ...
//!     }
//!     async fn apply(&mut self, strategy: RecoveryStrategy) {
//!         match strategy {
//!             RecoveryStrategy::Degrade => self.degraded = true, // compute on the MCU
//!             RecoveryStrategy::NotifyOperator => self.operator_called = true,
//!             _ => {}
//!         }
//!     }
//! }
//!
//! let mut accelerator = Accelerator::default();
//! # // The mock clock of the doc tests moves 1 ms per round, so the restart delays pass.
//! # let clock = async {
//! #     loop {
//! #         embassy_time::MockDriver::get().advance(embassy_time::Duration::from_millis(1));
//! #         embassy_futures::yield_now().await;
//! #     }
//! # };
//! # let _ = embassy_futures::block_on(embassy_futures::select::select(async {
//! // Each failure is reported after the previous restart came up.
//! for _ in 0..3 {
//!     let step = supervisor.on_failure(&mut accelerator).await;
//!     assert!(matches!(step.action, RecoveryAction::Restart { .. }));
//! }
//! let step = supervisor.on_failure(&mut accelerator).await;
//! assert_eq!(step.action, RecoveryAction::Escalate(RecoveryStrategy::Degrade));
//! assert_eq!(supervisor.level(), 1);
//! assert!(accelerator.degraded && accelerator.restarts == 3);
//! # }, clock));
//! ```
//!
//! Feed it from the health monitor ([`crate::health`]): a `MonitorEvent::Health` whose event
//! `needs_recovery()` is a failure; call [`on_healthy`](Supervisor::on_healthy) when the
//! component reports healthy, so the restart budget and escalations end after a healthy window.
//! A restart should also reset the component's probes (`HealthMonitor::reset`).

use core::fmt;

use embassy_time::Timer;
use rustkernel_core::resilience::{
    Directive, Escalation, Recovered, Recovery, RecoveryAction, RecoveryLadder, RecoveryStrategy,
};
use rustkernel_core::time::Instant as CoreInstant;

use crate::time::{now, to_core_instant, to_embassy_instant};

/// What the supervisor asks of the supervised component. Your implementation talks to the
/// hardware (reset lines, power, a fallback path) and to the operator (a telemetry frame, a LED).
#[allow(
    async_fn_in_trait,
    reason = "embassy executors run futures in place; no Send bound is wanted"
)]
pub trait RecoveryEffects {
    /// Restart the component now (the restart delay has been slept). `attempt` counts restarts
    /// since the level last started afresh, from 1; it is 0 for an uncounted restart, when a
    /// level escalates to `RestartKernel` (which then restarts for as long as it fails).
    async fn restart(&mut self, attempt: u32);

    /// Carry out `strategy`: `Degrade`, `NotifyOperator`, `UseReplica` or `Failover`, either as
    /// an escalation (restarts ran out) or because it is the level's own strategy (then on every
    /// failure). Never `RestartKernel`: restarts come through [`restart`](Self::restart).
    async fn apply(&mut self, strategy: RecoveryStrategy);

    /// The last level gave up (its policy has no escalation): the component stays down.
    async fn give_up(&mut self) {}

    /// An escalation ended: the component was healthy for a whole window of the current level
    /// (and of the level it goes back to). Leave degraded mode, clear alerts. The supervisor is
    /// back at the shallowest level whose escalation ended (see [`RecoveryLadder`]).
    async fn recovered(&mut self) {}
}

/// One failure as the supervisor handled it: the core's decision and the level that made it.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
#[cfg_attr(feature = "defmt", derive(defmt::Format))]
pub struct SupervisorStep {
    /// The level (index into the supervisor's levels) that decided.
    pub level: usize,
    /// What it decided; already carried out when the step is returned.
    pub action: RecoveryAction,
}

/// Carries out the recovery directives of a [`RecoveryLadder`] of `L` levels (see the
/// [module docs](self)).
///
/// # Method families
/// - Inputs: [`on_failure`](Self::on_failure) / [`on_failure_at`](Self::on_failure_at) (sleep,
///   act, return the step), [`on_healthy`](Self::on_healthy), [`reset`](Self::reset).
/// - Getters: [`level`](Self::level), [`current`](Self::current), [`levels`](Self::levels),
///   [`ladder`](Self::ladder), [`escalation`](Self::escalation).
///
/// It is owned by one task (`&mut self`); send it failures through an `embassy_sync` channel or
/// signal.
pub struct Supervisor<
    const L: usize,
    const N: usize = { rustkernel_core::resilience::DEFAULT_RESTART_CAPACITY },
> {
    ladder: RecoveryLadder<L, N>,
}

impl<const L: usize, const N: usize> Supervisor<L, N> {
    /// A supervisor at level 0 of `levels` (at least one, checked at compile time).
    #[must_use]
    pub const fn new(levels: [Recovery<N>; L]) -> Self {
        Self::with_ladder(RecoveryLadder::new(levels))
    }

    /// A supervisor that carries out `ladder`'s directives.
    #[must_use]
    pub const fn with_ladder(ladder: RecoveryLadder<L, N>) -> Self {
        Self { ladder }
    }

    /// The component failed now: decide, sleep until a restart is due, carry it out.
    pub async fn on_failure<E: RecoveryEffects>(&mut self, effects: &mut E) -> SupervisorStep {
        self.handle_failure(now(), effects).await
    }

    /// The component failed at `failed_at` (when the failure was seen, which may be earlier
    /// than now if it waited in a queue): a failure seen before a pending restart is about the
    /// component that is already down and restarts nothing (`RestartPending`).
    pub async fn on_failure_at<E: RecoveryEffects>(
        &mut self,
        failed_at: embassy_time::Instant,
        effects: &mut E,
    ) -> SupervisorStep {
        self.handle_failure(to_core_instant(failed_at), effects)
            .await
    }

    /// The component is healthy now. Once the current level has been quiet for a whole window
    /// of its own, its restart budget starts afresh, and escalations whose windows have passed
    /// end: the supervisor returns to the shallowest level whose escalation ended, calling
    /// [`RecoveryEffects::recovered`].
    pub async fn on_healthy<E: RecoveryEffects>(&mut self, effects: &mut E) -> Option<Recovered> {
        let restored = self.ladder.on_healthy(now());
        if let Some(Recovered::FromEscalation(_)) = restored {
            effects.recovered().await;
        }
        restored
    }

    /// Back to level 0 with every budget fresh (an operator fixed the component). Calls no
    /// effect.
    pub fn reset(&mut self) {
        self.ladder.reset();
    }

    /// The current level (0 until the first escalation).
    #[must_use]
    pub const fn level(&self) -> usize {
        self.ladder.level()
    }

    /// The core state machine of the current level.
    #[must_use]
    pub fn current(&self) -> Option<&Recovery<N>> {
        self.ladder.current()
    }

    /// Every level's core state machine.
    #[must_use]
    pub const fn levels(&self) -> &[Recovery<N>; L] {
        self.ladder.levels()
    }

    /// The core ladder that decides.
    #[must_use]
    pub const fn ladder(&self) -> &RecoveryLadder<L, N> {
        &self.ladder
    }

    /// The deepest escalation in force: the current level's, or the one that led to it.
    #[must_use]
    pub fn escalation(&self) -> Option<Escalation> {
        self.ladder.escalation()
    }

    async fn handle_failure<E: RecoveryEffects>(
        &mut self,
        at: CoreInstant,
        effects: &mut E,
    ) -> SupervisorStep {
        let step = self.ladder.on_failure(at);
        match step.directive {
            Directive::Restart { at: due, attempt } => {
                Timer::at(to_embassy_instant(due)).await;
                effects.restart(attempt.unwrap_or(0)).await;
            }
            Directive::UseReplica
            | Directive::Failover
            | Directive::Degrade
            | Directive::NotifyOperator => {
                if let Some(strategy) = step.directive.strategy() {
                    effects.apply(strategy).await;
                }
            }
            Directive::GiveUp => effects.give_up().await,
            // Nothing new: the pending restart is (being) carried out by the call that decided
            // it; an escalation in force stays as it is.
            Directive::Pending { .. } | Directive::Exhausted(_) => {}
        }
        SupervisorStep {
            level: step.level,
            action: step.action,
        }
    }
}

impl<const L: usize, const N: usize> fmt::Debug for Supervisor<L, N> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Supervisor")
            .field("level", &self.level())
            .field("current", &self.current().map(Recovery::state))
            .finish_non_exhaustive()
    }
}
