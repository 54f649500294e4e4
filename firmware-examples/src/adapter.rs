//! A thin local stand-in for `rustkernel-embassy`, with the same names and shapes, driving the
//! core's state machines on embassy's clock. It goes away when the adapter crate is used.

use core::future::Future;

pub use rustkernel_core::error::{Classify, ErrorKind, ResilienceError};

/// Merges a nested [`ResilienceError`] into one level; the inner error wins.
pub fn flatten<E>(error: ResilienceError<ResilienceError<E>>) -> ResilienceError<E> {
    match error {
        ResilienceError::Operation(inner) => inner,
        ResilienceError::CircuitOpen => ResilienceError::CircuitOpen,
        ResilienceError::DeadlineExceeded => ResilienceError::DeadlineExceeded,
        ResilienceError::Timeout => ResilienceError::Timeout,
    }
}

/// embassy's clock in the core's terms.
pub mod time {
    use core::time::Duration;
    use rustkernel_core::time::Instant as CoreInstant;

    /// Now, as the core's instant (microseconds since boot: one embassy tick is 1 µs here).
    #[must_use]
    pub fn now() -> CoreInstant {
        to_core_instant(embassy_time::Instant::now())
    }

    /// embassy's instant as the core's.
    #[must_use]
    pub fn to_core_instant(instant: embassy_time::Instant) -> CoreInstant {
        CoreInstant::from_micros(instant.as_micros())
    }

    /// The core's instant as embassy's.
    #[must_use]
    pub fn to_embassy_instant(instant: CoreInstant) -> embassy_time::Instant {
        embassy_time::Instant::from_micros(instant.as_micros())
    }

    /// The core's duration as embassy's (whole microseconds, saturating).
    #[must_use]
    pub fn to_embassy_duration(duration: Duration) -> embassy_time::Duration {
        embassy_time::Duration::from_micros(rustkernel_core::time::duration_as_micros(duration))
    }
}

/// A circuit breaker shared through a blocking mutex, with `call`.
pub mod breaker {
    use core::cell::RefCell;

    use embassy_sync::blocking_mutex::Mutex;
    use embassy_sync::blocking_mutex::raw::CriticalSectionRawMutex;
    use rustkernel_core::error::{Classify, ConfigError, ResilienceError};
    use rustkernel_core::resilience::{
        CircuitBreaker as CoreBreaker, CircuitBreakerConfig, CircuitBreakerStats, Transition,
    };

    use super::Future;
    use super::time::now;

    /// A breaker that tasks share.
    pub struct CircuitBreaker {
        inner: Mutex<CriticalSectionRawMutex, RefCell<CoreBreaker>>,
    }

    impl CircuitBreaker {
        /// A closed breaker, after validating `config`.
        ///
        /// # Errors
        /// The configuration's [`ConfigError`].
        pub fn try_new(config: CircuitBreakerConfig) -> Result<Self, ConfigError> {
            Ok(Self {
                inner: Mutex::new(RefCell::new(CoreBreaker::try_new(config)?)),
            })
        }

        /// Runs `op` if the breaker admits it and records its outcome; hands every transition
        /// to `observer` (outside the lock).
        ///
        /// # Errors
        /// `CircuitOpen` when refused, `Operation` with `op`'s error.
        pub async fn call_observed<T, E, F, Fut, O>(
            &self,
            op: F,
            mut observer: O,
        ) -> Result<T, ResilienceError<E>>
        where
            F: FnOnce() -> Fut,
            Fut: Future<Output = Result<T, E>>,
            E: Classify,
            O: FnMut(Transition),
        {
            let acquired = self.inner.lock(|cell| cell.borrow_mut().try_acquire(now()));
            let permit = match acquired {
                Ok(permit) => permit,
                Err(rejected) => {
                    if let Some(transition) = rejected.transition {
                        observer(transition);
                    }
                    return Err(ResilienceError::CircuitOpen);
                }
            };
            if let Some(transition) = permit.transition() {
                observer(transition);
            }
            // A dropped call (its future cancelled) would leave the permit unsettled; the
            // breaker's max-wait in half-open recovers the slot.
            let result = op().await;
            let settled = self.inner.lock(|cell| {
                let mut breaker = cell.borrow_mut();
                match &result {
                    Ok(_) => breaker.on_success(permit, now()),
                    Err(error) => breaker.on_failure(permit, error.kind(), now()),
                }
            });
            if let Some(transition) = settled {
                observer(transition);
            }
            result.map_err(ResilienceError::Operation)
        }

        /// Counters and rates.
        #[must_use]
        pub fn stats(&self) -> CircuitBreakerStats {
            self.inner.lock(|cell| cell.borrow().stats())
        }
    }

    impl core::fmt::Debug for CircuitBreaker {
        fn fmt(&self, f: &mut core::fmt::Formatter<'_>) -> core::fmt::Result {
            f.debug_struct("CircuitBreaker")
                .field("stats", &self.stats())
                .finish()
        }
    }
}

/// Deadlines and per-call timeouts on embassy's clock.
pub mod deadline {
    use core::time::Duration;

    use embassy_time::with_deadline;
    use rustkernel_core::resilience::DeadlineContext as CoreDeadline;

    use super::time::{now, to_embassy_instant};
    use super::{Future, ResilienceError};

    /// An absolute deadline.
    #[derive(Clone, Copy, Debug, PartialEq, Eq)]
    pub struct DeadlineContext {
        inner: CoreDeadline,
    }

    impl DeadlineContext {
        /// `timeout` from now.
        #[must_use]
        pub fn new(timeout: Duration) -> Self {
            Self {
                inner: CoreDeadline::new(now(), timeout),
            }
        }

        /// The core's deadline.
        #[must_use]
        pub const fn as_core(self) -> CoreDeadline {
            self.inner
        }

        /// Runs `op` under the deadline.
        ///
        /// # Errors
        /// `DeadlineExceeded` when it passed before or during the call.
        pub async fn execute<T, E, F, Fut>(self, op: F) -> Result<T, ResilienceError<E>>
        where
            F: FnOnce() -> Fut,
            Fut: Future<Output = Result<T, E>>,
        {
            if self.inner.check(now()).is_err() {
                return Err(ResilienceError::DeadlineExceeded);
            }
            match with_deadline(to_embassy_instant(self.inner.deadline()), op()).await {
                Ok(result) => result.map_err(ResilienceError::Operation),
                Err(_) => Err(ResilienceError::DeadlineExceeded),
            }
        }
    }

    /// Runs `op` with its own `timeout`.
    ///
    /// # Errors
    /// `Timeout` when it did not finish in time, `Operation` with `op`'s error.
    pub async fn execute_with_timeout<T, E, F, Fut>(
        timeout: Duration,
        op: F,
    ) -> Result<T, ResilienceError<E>>
    where
        F: FnOnce() -> Fut,
        Fut: Future<Output = Result<T, E>>,
    {
        match DeadlineContext::new(timeout).execute(op).await {
            Err(ResilienceError::DeadlineExceeded) => Err(ResilienceError::Timeout),
            other => other,
        }
    }
}

/// Retry with backoff slept on `Timer`.
pub mod retry {
    use embassy_time::Timer;
    use rustkernel_core::error::{Classify, ErrorKind, ResilienceError};
    use rustkernel_core::resilience::{Retry, RetryConfig, RetryDecision};
    use rustkernel_core::rng::Rng;

    use super::Future;
    use super::deadline::DeadlineContext;
    use super::time::{now, to_embassy_instant};

    /// One failed attempt and what came of it.
    #[derive(Clone, Copy, Debug, PartialEq, Eq)]
    pub struct RetryEvent {
        /// The attempt that failed (1 for the first).
        pub attempt: u32,
        /// Its error's kind.
        pub kind: ErrorKind,
        /// Retry at an instant, or give up.
        pub decision: RetryDecision,
    }

    /// Runs an operation again after retryable failures.
    #[derive(Clone, Debug)]
    pub struct Retrier {
        config: RetryConfig,
        rng: Rng,
        deadline: Option<DeadlineContext>,
    }

    impl Retrier {
        /// A retrier for a validated `config`, jitter seeded with `seed`.
        #[must_use]
        pub const fn new(config: RetryConfig, seed: u64) -> Self {
            Self {
                config,
                rng: Rng::new(seed),
                deadline: None,
            }
        }

        /// Every call bounded by `deadline`.
        #[must_use]
        pub const fn with_deadline(mut self, deadline: DeadlineContext) -> Self {
            self.deadline = Some(deadline);
            self
        }

        /// Runs `op` until it succeeds or the core gives up; `observer` sees each failure.
        ///
        /// # Errors
        /// The last attempt's error, or `DeadlineExceeded`.
        pub async fn execute_observed<T, E, F, Fut, O>(
            &mut self,
            mut op: F,
            mut observer: O,
        ) -> Result<T, ResilienceError<E>>
        where
            F: FnMut() -> Fut,
            Fut: Future<Output = Result<T, E>>,
            E: Classify,
            O: FnMut(RetryEvent),
        {
            let seed = self.rng.next_u64();
            let deadline = self.deadline.map(|d| d.as_core().deadline());
            let Ok(mut retry) = Retry::try_new(&self.config, seed, now(), deadline) else {
                return op().await.map_err(ResilienceError::Operation);
            };
            loop {
                let outcome = match self.deadline {
                    Some(deadline) => deadline.execute(&mut op).await,
                    None => op().await.map_err(ResilienceError::Operation),
                };
                let error = match outcome {
                    Ok(value) => return Ok(value),
                    Err(ResilienceError::Operation(error)) => error,
                    Err(other) => return Err(other),
                };
                let kind = error.kind();
                let attempt = retry.attempts();
                let decision = retry.on_failure(kind, now(), None, None);
                observer(RetryEvent {
                    attempt,
                    kind,
                    decision,
                });
                match decision {
                    RetryDecision::RetryAt(at) => Timer::at(to_embassy_instant(at)).await,
                    RetryDecision::GiveUp(_) => return Err(ResilienceError::Operation(error)),
                }
            }
        }
    }
}

/// A health monitor for one component: runs its probe at its interval, under its timeout.
pub mod health {
    use core::cell::RefCell;

    use embassy_futures::select::select;
    use embassy_sync::blocking_mutex::Mutex;
    use embassy_sync::blocking_mutex::raw::CriticalSectionRawMutex;
    use embassy_sync::signal::Signal;
    use embassy_time::{Timer, with_deadline};
    use rustkernel_core::resilience::health::{ProbeTimer, ProbeTransition};
    use rustkernel_core::resilience::{
        HealthCheckResult, HealthProbeConfig, HealthStatus, ProbeState,
    };

    use super::Future;
    use super::time::{now, to_embassy_instant};

    /// Runs one probe; other tasks read its status and reset it.
    pub struct HealthMonitor {
        probe: Mutex<CriticalSectionRawMutex, RefCell<Option<ProbeState>>>,
        wake: Signal<CriticalSectionRawMutex, ()>,
    }

    impl HealthMonitor {
        /// A monitor with no probe yet (`const`, for a `static`).
        #[must_use]
        pub const fn new() -> Self {
            Self {
                probe: Mutex::new(RefCell::new(None)),
                wake: Signal::new(),
            }
        }

        /// Sets up the probe.
        ///
        /// # Errors
        /// The configuration's error.
        pub fn register(
            &self,
            config: HealthProbeConfig,
        ) -> Result<(), rustkernel_core::error::ConfigError> {
            let probe = ProbeState::try_new(config)?;
            self.probe.lock(|cell| *cell.borrow_mut() = Some(probe));
            Ok(())
        }

        /// The component restarted: its probe starts over (`Unknown`, a check due now).
        pub fn reset(&self) {
            let at = now();
            self.probe.lock(|cell| {
                if let Some(probe) = cell.borrow_mut().as_mut() {
                    probe.reset(at);
                }
            });
            self.wake.signal(());
        }

        /// The probe's status.
        #[must_use]
        pub fn status(&self) -> HealthStatus {
            self.probe.lock(|cell| {
                cell.borrow()
                    .as_ref()
                    .map_or(HealthStatus::Unknown, ProbeState::status)
            })
        }

        /// Runs checks for ever, handing status changes to `observer`.
        pub async fn run<C, Fut, O>(&self, mut check: C, mut observer: O) -> !
        where
            C: FnMut() -> Fut,
            Fut: Future<Output = HealthCheckResult>,
            O: FnMut(ProbeTransition),
        {
            loop {
                let started = self.probe.lock(|cell| {
                    let mut probe = cell.borrow_mut();
                    let probe = probe.as_mut()?;
                    let at = now();
                    if !probe.is_due(at) {
                        return None;
                    }
                    let ticket = probe.try_start(at).ok()?;
                    match probe.timer() {
                        ProbeTimer::InFlight { deadline, .. } => Some((ticket, deadline)),
                        ProbeTimer::Due { .. } => None,
                    }
                });
                if let Some((ticket, deadline)) = started {
                    let answer = with_deadline(to_embassy_instant(deadline), check()).await;
                    let transition = self.probe.lock(|cell| {
                        let mut probe = cell.borrow_mut();
                        let probe = probe.as_mut()?;
                        match answer {
                            Ok(result) => probe.on_result(ticket, result, now()).ok().flatten(),
                            Err(_) => probe.poll(now()),
                        }
                    });
                    if let Some(transition) = transition {
                        observer(transition);
                    }
                }
                let next = self
                    .probe
                    .lock(|cell| cell.borrow().as_ref().and_then(ProbeState::poll_at));
                if let Some(at) = next {
                    select(Timer::at(to_embassy_instant(at)), self.wake.wait()).await;
                } else {
                    self.wake.wait().await;
                }
            }
        }
    }

    impl core::fmt::Debug for HealthMonitor {
        fn fmt(&self, f: &mut core::fmt::Formatter<'_>) -> core::fmt::Result {
            f.debug_struct("HealthMonitor")
                .field("status", &self.status())
                .finish_non_exhaustive()
        }
    }

    impl Default for HealthMonitor {
        fn default() -> Self {
            Self::new()
        }
    }
}

/// Carries out recovery decisions of escalation levels.
pub mod supervisor {
    use embassy_time::Timer;
    use rustkernel_core::resilience::{Recovered, Recovery, RecoveryAction, RecoveryStrategy};

    use super::time::{now, to_embassy_instant};

    /// What the supervisor asks of the supervised component.
    #[allow(async_fn_in_trait)]
    pub trait RecoveryEffects {
        /// Restart it now (the delay has been slept).
        async fn restart(&mut self, attempt: u32);
        /// Carry out `strategy` (an escalation, or the level's own strategy).
        async fn apply(&mut self, strategy: RecoveryStrategy);
    }

    /// One failure as handled: the level that decided and its decision.
    #[derive(Clone, Copy, Debug, PartialEq, Eq)]
    pub struct SupervisorStep {
        /// The level that decided.
        pub level: usize,
        /// What it decided (already carried out).
        pub action: RecoveryAction,
    }

    /// `L` escalation levels; each escalation moves to the next.
    #[derive(Debug)]
    pub struct Supervisor<const L: usize> {
        levels: [Recovery; L],
        level: usize,
    }

    impl<const L: usize> Supervisor<L> {
        /// Starts at level 0.
        #[must_use]
        pub const fn new(levels: [Recovery; L]) -> Self {
            Self { levels, level: 0 }
        }

        /// The current level.
        #[must_use]
        pub const fn level(&self) -> usize {
            self.level
        }

        /// The component failed now: decide, sleep a restart delay, act.
        pub async fn on_failure<E: RecoveryEffects>(&mut self, effects: &mut E) -> SupervisorStep {
            let at = now();
            let level = self.level;
            let Some(recovery) = self.levels.get_mut(level) else {
                return SupervisorStep {
                    level,
                    action: RecoveryAction::GiveUp,
                };
            };
            let action = recovery.on_failure(at);
            match action {
                RecoveryAction::Restart { at, attempt } => {
                    Timer::at(to_embassy_instant(at)).await;
                    effects.restart(attempt).await;
                }
                RecoveryAction::Escalate(strategy) => {
                    effects.apply(strategy).await;
                    if level.saturating_add(1) < L {
                        self.level = level.saturating_add(1);
                    }
                }
                RecoveryAction::Degrade => effects.apply(RecoveryStrategy::Degrade).await,
                RecoveryAction::NotifyOperator => {
                    effects.apply(RecoveryStrategy::NotifyOperator).await;
                }
                RecoveryAction::UseReplica => effects.apply(RecoveryStrategy::UseReplica).await,
                RecoveryAction::Failover => effects.apply(RecoveryStrategy::Failover).await,
                RecoveryAction::GiveUp
                | RecoveryAction::RestartPending { .. }
                | RecoveryAction::AlreadyEscalated(_) => {}
            }
            SupervisorStep { level, action }
        }

        /// The component is healthy now.
        pub fn on_healthy(&mut self) -> Option<Recovered> {
            let at = now();
            self.levels
                .get_mut(self.level)
                .and_then(|recovery| recovery.on_healthy(at))
        }
    }
}
