//! Recovery policies: what to do when a kernel fails, with restart intensity and escalation.
//!
//! [`RecoveryPolicy`] is the chapter's policy, field for field. [`RestartIntensity`] adds what a
//! supervisor needs to stop restarting a kernel that keeps failing: the window in which at most
//! `max_restarts` restarts may happen, as Erlang/OTP supervisors count them, and an optional
//! growing delay between successive restarts. [`Recovery`] is the state machine that turns
//! failure and health reports into [`RecoveryAction`]s for an adapter to carry out.
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

use core::fmt;
use core::time::Duration;

use heapless::Deque;

use crate::error::{ConfigError, ConfigField};
use crate::float::{Parts, scale};
use crate::time::{Instant, duration_as_micros};

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

#[cfg(feature = "defmt")]
impl defmt::Format for RecoveryPolicy {
    fn format(&self, f: defmt::Formatter<'_>) {
        defmt::write!(
            f,
            "RecoveryPolicy {{ strategy: {}, max_restarts: {=u32}, restart_delay_us: {=u64}, escalation: {} }}",
            self.strategy,
            self.max_restarts,
            duration_as_micros(self.restart_delay),
            self.escalation,
        );
    }
}

/// A delay that grows for successive restarts: each restart waits `multiplier` times the
/// previous one, never more than `max`.
///
/// The growth is a multiplication per restart, not a power, so it needs no `powf`. It starts
/// again from [`RecoveryPolicy::restart_delay`] once the kernel has been healthy for a whole
/// [`RestartIntensity::window`] (see [`Recovery::on_healthy`]), as Kubernetes resets its
/// crash-loop back-off after a container ran fine for a while.
#[derive(Clone, Copy, Debug, PartialEq)]
#[cfg_attr(feature = "serde", derive(serde::Serialize, serde::Deserialize))]
pub struct RestartBackoff {
    /// Factor from one restart delay to the next; at least 1.
    pub multiplier: f64,
    /// The longest restart delay.
    pub max: Duration,
}

impl RestartBackoff {
    /// Checks the backoff on its own.
    ///
    /// # Errors
    /// [`ConfigError::NotFinite`] for a NaN or infinite multiplier,
    /// [`ConfigError::MultiplierBelowOne`] for one below 1, and [`ConfigError::Zero`] for a
    /// `max` under one microsecond. The fields are [`ConfigField::RestartBackoffMultiplier`] and
    /// [`ConfigField::RestartBackoffMax`].
    pub fn validate(&self) -> Result<(), ConfigError> {
        let multiplier = Parts::of_f64(self.multiplier);
        if !multiplier.is_finite() {
            return Err(ConfigError::NotFinite(
                ConfigField::RestartBackoffMultiplier,
            ));
        }
        if !multiplier.at_least_one() {
            return Err(ConfigError::MultiplierBelowOne(
                ConfigField::RestartBackoffMultiplier,
            ));
        }
        if duration_as_micros(self.max) == 0 {
            return Err(ConfigError::Zero(ConfigField::RestartBackoffMax));
        }
        Ok(())
    }

    /// The delay after `delay`: `delay * multiplier` (exact, rounded down to the nanosecond),
    /// never less than `delay`, never more than `max` (unless `delay` already was).
    #[must_use]
    pub fn next(&self, delay: Duration) -> Duration {
        if delay >= self.max {
            return delay;
        }
        match Parts::of_f64(self.multiplier) {
            // Refused by `validate`: as before, a product that is no duration means `max`.
            Parts::Nan | Parts::Infinite { .. } => self.max,
            Parts::Finite {
                negative: true,
                mantissa,
                ..
            } if mantissa != 0 && !delay.is_zero() => self.max,
            // Exact, rounded down to the nanosecond; a factor below 1 never shrinks the delay.
            parts => scale(delay, parts.growth(), self.max),
        }
    }
}

impl Default for RestartBackoff {
    /// Doubling, up to one minute.
    fn default() -> Self {
        Self {
            multiplier: 2.0,
            max: Duration::from_secs(60),
        }
    }
}

#[cfg(feature = "defmt")]
impl defmt::Format for RestartBackoff {
    fn format(&self, f: defmt::Formatter<'_>) {
        defmt::write!(
            f,
            "RestartBackoff {{ multiplier: {=f64}, max_us: {=u64} }}",
            self.multiplier,
            duration_as_micros(self.max),
        );
    }
}

/// Restart intensity: the window in which at most [`RecoveryPolicy::max_restarts`] restarts
/// may happen, and an optional growing delay between them.
///
/// This is the restart intensity of Erlang/OTP supervisors: "if more than MaxR restarts occur
/// within MaxT seconds, the supervisor terminates all child processes and then itself", with
/// `max_restarts` as MaxR (`intensity`) and `window` as MaxT (`period`); OTP's defaults are an
/// intensity of 1 within a period of 5 s (STDLIB `supervisor` manual,
/// <https://www.erlang.org/doc/apps/stdlib/supervisor.html>). Where OTP terminates the
/// supervisor, [`Recovery`] escalates to [`RecoveryPolicy::escalation`].
///
/// The default window is 60 s, not OTP's 5 s: OTP restarts at once, while the chapter's policy
/// waits [`RecoveryPolicy::restart_delay`] (5 s) before each restart, so a 5 s window could never
/// hold two of its restarts. [`RestartIntensity::otp`] gives OTP's period.
#[derive(Clone, Copy, Debug, PartialEq)]
#[cfg_attr(feature = "serde", derive(serde::Serialize, serde::Deserialize))]
pub struct RestartIntensity {
    /// The sliding window restarts are counted in; a restart is forgotten once `window` has
    /// passed since it was decided.
    pub window: Duration,
    /// Growth of the delay for successive restarts; `None` keeps every delay at
    /// [`RecoveryPolicy::restart_delay`].
    pub backoff: Option<RestartBackoff>,
}

impl RestartIntensity {
    /// OTP's default period, 5 s, with no backoff. Pair it with `max_restarts: 1` and a zero
    /// `restart_delay` for OTP's default supervisor.
    #[must_use]
    pub const fn otp() -> Self {
        Self {
            window: Duration::from_secs(5),
            backoff: None,
        }
    }

    /// Checks the intensity on its own.
    ///
    /// # Errors
    /// [`ConfigError::Zero`]`(`[`ConfigField::RestartWindow`]`)` for a window under one
    /// microsecond, and the errors of [`RestartBackoff::validate`].
    pub fn validate(&self) -> Result<(), ConfigError> {
        if duration_as_micros(self.window) == 0 {
            return Err(ConfigError::Zero(ConfigField::RestartWindow));
        }
        if let Some(backoff) = &self.backoff {
            backoff.validate()?;
        }
        Ok(())
    }

    /// Checks the intensity together with the policy it counts restarts for; this is what
    /// [`Recovery::try_new`] runs, apart from the capacity check.
    ///
    /// # Errors
    /// Those of [`RecoveryPolicy::validate`] and [`RestartIntensity::validate`], and, with
    /// [`RecoveryStrategy::RestartKernel`]:
    /// - with backoff, [`ConfigError::Zero`]`(`[`ConfigField::RestartDelay`]`)` for a zero delay
    ///   (it could never grow) and [`ConfigError::Exceeds`] `{ RestartDelay, RestartBackoffMax }`
    ///   for a delay above the cap;
    /// - [`ConfigError::Exceeds`] `{ RestartDelay, RestartWindow }` when the delays of
    ///   `max_restarts` successive restarts add up to the window or more. A failure reported
    ///   while a restart is pending is not counted (see [`RecoveryAction::RestartPending`]), so
    ///   such a policy could never see `max_restarts + 1` failures within the window and would
    ///   restart forever without escalating.
    pub fn validate_with(&self, policy: &RecoveryPolicy) -> Result<(), ConfigError> {
        policy.validate()?;
        self.validate()?;
        if policy.strategy != RecoveryStrategy::RestartKernel {
            return Ok(());
        }
        if let Some(backoff) = &self.backoff {
            if duration_as_micros(policy.restart_delay) == 0 {
                return Err(ConfigError::Zero(ConfigField::RestartDelay));
            }
            if policy.restart_delay > backoff.max {
                return Err(ConfigError::Exceeds {
                    field: ConfigField::RestartDelay,
                    limit: ConfigField::RestartBackoffMax,
                });
            }
        }
        // The shortest span from the first of `max_restarts` restarts to the failure after the
        // last: the sum of their delays, as the machine will compute them.
        let window = duration_as_micros(self.window);
        let mut delay = policy.restart_delay;
        let mut span: u64 = 0;
        for _ in 0..policy.max_restarts {
            span = span.saturating_add(duration_as_micros(delay));
            if span >= window {
                return Err(ConfigError::Exceeds {
                    field: ConfigField::RestartDelay,
                    limit: ConfigField::RestartWindow,
                });
            }
            if let Some(backoff) = &self.backoff {
                delay = backoff.next(delay);
            }
        }
        Ok(())
    }
}

impl Default for RestartIntensity {
    /// A 60 s window without backoff (see the type's docs for why not OTP's 5 s).
    fn default() -> Self {
        Self {
            window: Duration::from_secs(60),
            backoff: None,
        }
    }
}

#[cfg(feature = "defmt")]
impl defmt::Format for RestartIntensity {
    fn format(&self, f: defmt::Formatter<'_>) {
        defmt::write!(
            f,
            "RestartIntensity {{ window_us: {=u64}, backoff: {} }}",
            duration_as_micros(self.window),
            self.backoff,
        );
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

/// The recovery state machine: failures and health reports in, [`RecoveryAction`]s out.
///
/// Built from a [`RecoveryPolicy`] and a [`RestartIntensity`]. It remembers the times of the
/// restarts in the current window, at most `N` of them, so `max_restarts` may be at most `N`.
///
/// # Method families
/// - Inputs: [`on_failure`](Self::on_failure) (what to do now),
///   [`on_healthy`](Self::on_healthy) (the kernel is healthy), [`on_timeout`](Self::on_timeout)
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
    restarts: Deque<Instant, N>,
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
    /// Those of [`RestartIntensity::validate_with`], and [`ConfigError::TooLarge`]
    /// `{ field: MaxRestarts, max: N }` when `max_restarts` exceeds the capacity `N`.
    pub fn try_new(
        policy: RecoveryPolicy,
        intensity: RestartIntensity,
    ) -> Result<Self, ConfigError> {
        intensity.validate_with(&policy)?;
        let fits = usize::try_from(policy.max_restarts).is_ok_and(|max| max <= N);
        if !fits {
            return Err(ConfigError::TooLarge {
                field: ConfigField::MaxRestarts,
                max: u64::try_from(N).unwrap_or(u64::MAX),
            });
        }
        Ok(Self {
            policy,
            intensity,
            restarts: Deque::new(),
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
    #[allow(clippy::panic)] // documented: `try_new` is the non-panicking twin
    pub fn new(policy: RecoveryPolicy, intensity: RestartIntensity) -> Self {
        match Self::try_new(policy, intensity) {
            Ok(recovery) => recovery,
            Err(error) => panic!("invalid recovery configuration: {error}"),
        }
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
        let in_window = self.restarts.len();
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
        if self.restarts.is_full() {
            // Unreachable: `max_restarts <= N` and the window was just pruned. Forget the
            // oldest rather than fail.
            let _ = self.restarts.pop_front();
        }
        let _ = self.restarts.push_back(now);
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
                if self.attempt == 0 && self.restarts.is_empty() {
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
    pub fn on_timeout(&mut self, now: Instant) {
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

    // ----- output -----

    /// When the machine's answers next change with time alone: the pending restart's `at`, or
    /// when the oldest restart in the window leaves it, whichever is first. `None` when nothing
    /// is pending or remembered, and while escalated (only [`on_healthy`](Self::on_healthy) or
    /// [`reset`](Self::reset) change an escalation). Call [`on_timeout`](Self::on_timeout) then.
    #[must_use]
    pub fn poll_at(&self) -> Option<Instant> {
        let leaves = self.restarts.front().and_then(|&oldest| {
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
        while let Some(&oldest) = self.restarts.front() {
            if !self.elapsed(oldest, now) {
                break;
            }
            let _ = self.restarts.pop_front();
        }
        if let RecoveryState::RestartScheduled { at, .. } = self.state
            && now >= at
        {
            self.state = RecoveryState::Normal;
        }
        now
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

#[cfg(test)]
mod tests {
    extern crate std;
    use super::*;
    use std::string::ToString;

    fn secs(s: u64) -> Duration {
        Duration::from_secs(s)
    }

    fn chapter_policy() -> RecoveryPolicy {
        RecoveryPolicy {
            strategy: RecoveryStrategy::RestartKernel,
            max_restarts: 3,
            restart_delay: Duration::from_secs(5),
            escalation: Some(RecoveryStrategy::NotifyOperator),
        }
    }

    fn immediate(max_restarts: u32, escalation: Option<RecoveryStrategy>) -> RecoveryPolicy {
        RecoveryPolicy {
            strategy: RecoveryStrategy::RestartKernel,
            max_restarts,
            restart_delay: Duration::ZERO,
            escalation,
        }
    }

    #[test]
    fn chapter_literal_is_the_default_and_builds() {
        assert_eq!(chapter_policy(), RecoveryPolicy::default());
        assert_eq!(chapter_policy().validate(), Ok(()));
        let recovery: Recovery = Recovery::new(chapter_policy(), RestartIntensity::default());
        assert_eq!(recovery.state(), RecoveryState::Normal);
        assert_eq!(recovery.remaining_restarts(Instant::ZERO), 3);
        assert_eq!(recovery.poll_at(), None);
    }

    #[test]
    fn validation_names_the_field() {
        let zero = RecoveryPolicy {
            max_restarts: 0,
            ..chapter_policy()
        };
        assert_eq!(
            zero.validate(),
            Err(ConfigError::Zero(ConfigField::MaxRestarts))
        );
        // Other strategies do not restart, so zero restarts is fine for them.
        let degrade = RecoveryPolicy {
            strategy: RecoveryStrategy::Degrade,
            ..zero
        };
        assert_eq!(degrade.validate(), Ok(()));

        let no_window = RestartIntensity {
            window: Duration::from_nanos(999),
            backoff: None,
        };
        assert_eq!(
            no_window.validate(),
            Err(ConfigError::Zero(ConfigField::RestartWindow))
        );

        for (multiplier, error) in [
            (
                f64::NAN,
                ConfigError::NotFinite(ConfigField::RestartBackoffMultiplier),
            ),
            (
                f64::INFINITY,
                ConfigError::NotFinite(ConfigField::RestartBackoffMultiplier),
            ),
            (
                0.5,
                ConfigError::MultiplierBelowOne(ConfigField::RestartBackoffMultiplier),
            ),
            (
                -2.0,
                ConfigError::MultiplierBelowOne(ConfigField::RestartBackoffMultiplier),
            ),
        ] {
            let backoff = RestartBackoff {
                multiplier,
                max: secs(60),
            };
            assert_eq!(backoff.validate(), Err(error));
            let intensity = RestartIntensity {
                window: secs(600),
                backoff: Some(backoff),
            };
            assert_eq!(
                Recovery::<8>::try_new(chapter_policy(), intensity).err(),
                Some(error)
            );
        }
        let no_cap = RestartBackoff {
            multiplier: 2.0,
            max: Duration::ZERO,
        };
        assert_eq!(
            no_cap.validate(),
            Err(ConfigError::Zero(ConfigField::RestartBackoffMax))
        );
    }

    #[test]
    fn validation_of_the_pair() {
        let backoff = |max| RestartIntensity {
            window: secs(600),
            backoff: Some(RestartBackoff {
                multiplier: 2.0,
                max,
            }),
        };
        assert_eq!(
            backoff(secs(4)).validate_with(&chapter_policy()),
            Err(ConfigError::Exceeds {
                field: ConfigField::RestartDelay,
                limit: ConfigField::RestartBackoffMax,
            })
        );
        assert_eq!(
            backoff(secs(4)).validate_with(&immediate(3, None)),
            Err(ConfigError::Zero(ConfigField::RestartDelay))
        );
        assert_eq!(backoff(secs(60)).validate_with(&chapter_policy()), Ok(()));

        // 3 restarts 5 s apart span 15 s: a 15 s window can never see a fourth failure.
        let window = |s| RestartIntensity {
            window: secs(s),
            backoff: None,
        };
        let unreachable = Err(ConfigError::Exceeds {
            field: ConfigField::RestartDelay,
            limit: ConfigField::RestartWindow,
        });
        assert_eq!(window(15).validate_with(&chapter_policy()), unreachable);
        assert_eq!(window(16).validate_with(&chapter_policy()), Ok(()));
        // With doubling, 5 + 10 + 20 = 35 s.
        let doubling = |s| RestartIntensity {
            window: secs(s),
            backoff: Some(RestartBackoff::default()),
        };
        assert_eq!(doubling(35).validate_with(&chapter_policy()), unreachable);
        assert_eq!(doubling(36).validate_with(&chapter_policy()), Ok(()));
        // OTP's default supervisor.
        assert_eq!(
            RestartIntensity::otp().validate_with(&immediate(1, None)),
            Ok(())
        );
        // Non-restart strategies ignore the restart fields.
        let failover = RecoveryPolicy {
            strategy: RecoveryStrategy::Failover,
            max_restarts: u32::MAX,
            restart_delay: Duration::MAX,
            escalation: None,
        };
        assert_eq!(window(1).validate_with(&failover), Ok(()));
    }

    #[test]
    fn capacity_bounds_max_restarts() {
        let policy = immediate(9, None);
        assert_eq!(
            Recovery::<8>::try_new(policy, RestartIntensity::default()).err(),
            Some(ConfigError::TooLarge {
                field: ConfigField::MaxRestarts,
                max: 8,
            })
        );
        assert!(Recovery::<9>::try_new(policy, RestartIntensity::default()).is_ok());
    }

    #[test]
    #[should_panic(expected = "recovery.max_restarts must be greater than zero")]
    fn new_panics_with_the_message() {
        let _: Recovery = Recovery::new(immediate(0, None), RestartIntensity::default());
    }

    #[test]
    fn restarts_then_escalates_then_stays_escalated() {
        let mut r: Recovery = Recovery::new(chapter_policy(), RestartIntensity::default());
        let t0 = Instant::from_secs(10);
        assert_eq!(
            r.on_failure(t0),
            RecoveryAction::Restart {
                at: t0 + secs(5),
                attempt: 1
            }
        );
        assert_eq!(r.poll_at(), Some(t0 + secs(5)));
        // A second report before the restart is not a new failure.
        let pending = r.on_failure(t0 + secs(1));
        assert_eq!(
            pending,
            RecoveryAction::RestartPending {
                at: t0 + secs(5),
                attempt: 1
            }
        );
        assert!(!pending.needs_action());
        assert_eq!(r.restarts_in_window(t0 + secs(1)), 1);
        r.on_timeout(t0 + secs(5));
        assert_eq!(r.state(), RecoveryState::Normal);
        assert_eq!(r.poll_at(), Some(t0 + secs(60)));

        assert!(matches!(
            r.on_failure(t0 + secs(6)),
            RecoveryAction::Restart { attempt: 2, .. }
        ));
        assert!(matches!(
            r.on_failure(t0 + secs(12)),
            RecoveryAction::Restart { attempt: 3, .. }
        ));
        assert_eq!(r.remaining_restarts(t0 + secs(18)), 0);
        let escalate = r.on_failure(t0 + secs(18));
        assert_eq!(
            escalate,
            RecoveryAction::Escalate(RecoveryStrategy::NotifyOperator)
        );
        assert!(escalate.needs_action());
        assert_eq!(
            r.escalation(),
            Some(Escalation::To(RecoveryStrategy::NotifyOperator))
        );
        assert_eq!(r.poll_at(), None);
        // Sticky, even once the restarts have left the window.
        assert_eq!(
            r.on_failure(t0 + secs(1_000)),
            RecoveryAction::AlreadyEscalated(Escalation::To(RecoveryStrategy::NotifyOperator))
        );
        // Healthy, but not yet for a whole window since the last failure.
        assert_eq!(r.on_healthy(t0 + secs(1_059)), None);
        assert_eq!(
            r.on_healthy(t0 + secs(1_060)),
            Some(Recovered::FromEscalation(Escalation::To(
                RecoveryStrategy::NotifyOperator
            )))
        );
        assert_eq!(r.escalation(), None);
        assert!(matches!(
            r.on_failure(t0 + secs(1_061)),
            RecoveryAction::Restart { attempt: 1, .. }
        ));
    }

    #[test]
    fn no_escalation_gives_up_and_reset_restores() {
        let mut r: Recovery<2> = Recovery::new(immediate(1, None), RestartIntensity::otp());
        let t = Instant::from_secs(1);
        assert_eq!(
            r.on_failure(t),
            RecoveryAction::Restart { at: t, attempt: 1 }
        );
        assert_eq!(r.state(), RecoveryState::Normal);
        assert_eq!(r.on_failure(t + secs(4)), RecoveryAction::GiveUp);
        assert_eq!(
            r.on_failure(t + secs(5)),
            RecoveryAction::AlreadyEscalated(Escalation::GaveUp)
        );
        r.reset();
        assert_eq!(r.escalation(), None);
        assert_eq!(
            r.on_failure(t + secs(6)),
            RecoveryAction::Restart {
                at: t + secs(6),
                attempt: 1
            }
        );
    }

    #[test]
    fn restarts_age_out_of_the_window() {
        let mut r: Recovery<2> = Recovery::new(immediate(1, None), RestartIntensity::otp());
        let t = Instant::from_secs(100);
        assert!(matches!(r.on_failure(t), RecoveryAction::Restart { .. }));
        assert_eq!(r.poll_at(), Some(t + secs(5)));
        // Exactly a window later the first restart is forgotten: OTP's one-restart-per-5-s
        // supervisor restarts forever at that pace.
        assert_eq!(
            r.on_failure(t + secs(5)),
            RecoveryAction::Restart {
                at: t + secs(5),
                attempt: 2
            }
        );
        assert_eq!(r.restarts_in_window(t + secs(5)), 1);
        assert_eq!(r.restarts_in_window(t + secs(10)), 0);
        r.on_timeout(t + secs(10));
        assert_eq!(r.poll_at(), None);
        // Healthy for a window: the attempt count starts afresh.
        assert_eq!(r.on_healthy(t + secs(10)), Some(Recovered::Budget));
        assert_eq!(r.on_healthy(t + secs(20)), None);
        assert_eq!(r.attempt(), 0);
    }

    #[test]
    #[allow(clippy::panic)] // a test reports a wrong action by failing
    fn backoff_grows_to_the_cap_and_resets_when_healthy() {
        let policy = RecoveryPolicy {
            max_restarts: 8,
            restart_delay: secs(1),
            ..chapter_policy()
        };
        let intensity = RestartIntensity {
            window: secs(3_600),
            backoff: Some(RestartBackoff {
                multiplier: 3.0,
                max: secs(20),
            }),
        };
        let mut r: Recovery = Recovery::new(policy, intensity);
        let mut now = Instant::ZERO;
        let mut delays = std::vec::Vec::new();
        for _ in 0..5 {
            match r.on_failure(now) {
                RecoveryAction::Restart { at, .. } => {
                    delays.push(at - now);
                    now = at;
                }
                other => panic!("expected a restart, got {other:?}"),
            }
        }
        assert_eq!(delays, [secs(1), secs(3), secs(9), secs(20), secs(20)]);
        assert_eq!(r.on_healthy(now + secs(3_599)), None);
        assert_eq!(r.on_healthy(now + secs(3_600)), Some(Recovered::Budget));
        assert_eq!(r.next_restart_delay(), secs(1));
    }

    #[test]
    fn other_strategies_answer_directly() {
        for (strategy, action) in [
            (RecoveryStrategy::UseReplica, RecoveryAction::UseReplica),
            (RecoveryStrategy::Degrade, RecoveryAction::Degrade),
            (RecoveryStrategy::Failover, RecoveryAction::Failover),
            (
                RecoveryStrategy::NotifyOperator,
                RecoveryAction::NotifyOperator,
            ),
        ] {
            let policy = RecoveryPolicy {
                strategy,
                ..chapter_policy()
            };
            let mut r: Recovery = Recovery::new(policy, RestartIntensity::default());
            for s in 0..20 {
                assert_eq!(r.on_failure(Instant::from_secs(s)), action);
            }
            assert_eq!(r.poll_at(), None);
            assert_eq!(r.remaining_restarts(Instant::ZERO), 0);
            assert_eq!(r.on_healthy(Instant::MAX), None);
        }
    }

    #[test]
    fn extremes_saturate() {
        let policy = RecoveryPolicy {
            restart_delay: Duration::from_micros(u64::MAX - 1),
            max_restarts: 1,
            ..chapter_policy()
        };
        let intensity = RestartIntensity {
            window: Duration::MAX,
            backoff: Some(RestartBackoff {
                multiplier: f64::MAX,
                max: Duration::MAX,
            }),
        };
        let mut r: Recovery<1> = Recovery::new(policy, intensity);
        assert_eq!(
            r.on_failure(Instant::MAX),
            RecoveryAction::Restart {
                at: Instant::MAX,
                attempt: 1
            }
        );
        assert_eq!(r.next_restart_delay(), Duration::MAX);
        // Time going backwards counts as the latest time seen.
        assert_eq!(
            r.on_failure(Instant::ZERO),
            RecoveryAction::Escalate(RecoveryStrategy::NotifyOperator)
        );
        assert_eq!(r.on_healthy(Instant::ZERO), None);
        assert_eq!(r.restarts_in_window(Instant::ZERO), 1);
    }

    #[test]
    fn display_reads_well() {
        assert_eq!(
            RecoveryStrategy::RestartKernel.to_string(),
            "restart_kernel"
        );
        assert_eq!(
            RecoveryAction::Restart {
                at: Instant::from_secs(2),
                attempt: 1
            }
            .to_string(),
            "restart at 2.000000s (attempt 1)"
        );
        assert_eq!(
            RecoveryAction::Escalate(RecoveryStrategy::Failover).to_string(),
            "escalate to failover"
        );
        assert_eq!(
            RecoveryAction::AlreadyEscalated(Escalation::GaveUp).to_string(),
            "already gave up"
        );
    }

    #[cfg(feature = "serde")]
    #[test]
    fn round_trips_through_postcard() {
        fn round_trip<T>(value: T)
        where
            T: serde::Serialize + serde::de::DeserializeOwned + PartialEq + core::fmt::Debug,
        {
            let mut buf = [0u8; 64];
            let bytes = postcard::to_slice(&value, &mut buf).expect("fits");
            assert_eq!(postcard::from_bytes::<T>(bytes).expect("decodes"), value);
        }
        round_trip(chapter_policy());
        for strategy in RecoveryStrategy::ALL {
            round_trip(strategy);
        }
        round_trip(RestartIntensity {
            window: secs(60),
            backoff: Some(RestartBackoff::default()),
        });
        round_trip(RecoveryAction::Restart {
            at: Instant::MAX,
            attempt: u32::MAX,
        });
        round_trip(RecoveryAction::AlreadyEscalated(Escalation::GaveUp));
        round_trip(RecoveryState::Escalated {
            escalation: Escalation::To(RecoveryStrategy::Failover),
            since: Instant::from_secs(3),
        });
        round_trip(Recovered::Budget);
    }
}
