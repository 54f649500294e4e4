//! The scenario both boards run: an edge controller that supervises an accelerator.
//!
//! The controller sends a job to the accelerator every [`JOB_PERIOD`]. Every job runs under a
//! deadline, through a circuit breaker, retried with backoff. A health monitor pings the
//! accelerator; when the pings fail, a supervisor resets it, counting restarts against a
//! restart intensity, escalates to `Degrade` (the controller computes the jobs itself, slower)
//! and, when that does not help either, to `NotifyOperator`.
//!
//! The accelerator (a task, see
//! [`accelerator`](rustkernel_firmware_examples::accelerator)) follows a fault schedule:
//! healthy, a burst of transient errors (retries absorb it), a hang (the breaker opens; a reset
//! clears it; the breaker probes and closes), then a permanent fault (resets do not clear it:
//! degrade, then call the operator). Telemetry frames report every step; the run ends with a
//! summary and exits QEMU with 0 when the scenario went as expected, 1 otherwise.
//!
//! The board (its clock, its interrupt vectors, its device id) is the binary's and
//! [`board`](rustkernel_firmware_examples::board)'s; everything here is the same on both.

use core::cell::{Cell, RefCell};
use core::time::Duration;

use cortex_m_semihosting::debug::{self, EXIT_FAILURE, EXIT_SUCCESS};
use embassy_executor::Spawner;
use embassy_sync::blocking_mutex::Mutex;
use embassy_sync::blocking_mutex::raw::CriticalSectionRawMutex;
use embassy_sync::channel::Channel;
use embassy_time::{Instant, Timer};
use rustkernel_core::error::{ConfigError, ErrorKind, ResilienceError};
use rustkernel_core::resilience::health::ComponentName;
use rustkernel_core::resilience::{
    BackoffStrategy, CircuitBreakerConfig, CircuitState, ComponentEvent, ComponentId,
    ConstBreakerConfig, ConstRetryConfig, Criticality, FixedConfig, HealthCheckResult, HealthEvent,
    HealthProbeConfig, HealthStatus, NoWindow, ProbeRole, Recovery, RecoveryAction, RecoveryPolicy,
    RecoveryStrategy, RestartIntensity, RetryConfig, RetryDecision, Transition,
};
use rustkernel_core::telemetry::{BreakerCounts, JobOutcome, Summary, TelemetryFrame, VERSION};
use rustkernel_embassy::breaker::CircuitBreaker;
use rustkernel_embassy::deadline::{DeadlineContext, execute_with_timeout};
use rustkernel_embassy::health::{HealthMonitor, MonitorEvent};
use rustkernel_embassy::retry::{Retrier, RetryEvent};
use rustkernel_embassy::supervisor::{RecoveryEffects, Supervisor};

use rustkernel_firmware_examples::accelerator::{self, FaultSchedule, Link};
use rustkernel_firmware_examples::{board, info, output};

// ---- the scenario ----------------------------------------------------------------------------

/// When the accelerator fails, counted in job requests (attempts) it receives.
const SCHEDULE: FaultSchedule = FaultSchedule {
    burst_at: 6,
    burst_len: 2,
    hang_at: 13,
    permanent_at: 30,
};
/// A new job every 10 ms.
const JOB_PERIOD: embassy_time::Duration = embassy_time::Duration::from_millis(10);
/// Each job must be done within 40 ms, retries included.
const JOB_DEADLINE: Duration = Duration::from_millis(40);
/// Each attempt on the accelerator may take 8 ms (it normally answers in under 1 ms).
const ATTEMPT_TIMEOUT: Duration = Duration::from_millis(8);
/// Jobs run after the operator was notified, before the summary.
const JOBS_AFTER_NOTIFY: u32 = 3;
/// The run fails if the scenario has not ended by then.
const GIVE_UP_AFTER: embassy_time::Duration = embassy_time::Duration::from_secs(5);

/// The breaker's configuration, as a type: every read of it is a constant, so the code of the
/// modes it leaves off (failure rate, slow calls, open backoff) is not in the firmware.
struct Breaker;

impl ConstBreakerConfig for Breaker {
    /// Three failures in a row open the breaker for 60 ms; two good probes close it.
    const CONFIG: CircuitBreakerConfig = CircuitBreakerConfig {
        failure_threshold: 3,
        success_threshold: 2,
        timeout: Duration::from_millis(60),
        half_open_max_calls: 1,
        failure_rate_threshold: None,
        minimum_calls: 10,
        slow_call_duration: None,
        slow_call_rate_threshold: 1.0,
        max_wait_in_half_open: Duration::from_millis(100),
        open_backoff: None,
        ignored_errors: rustkernel_core::error::ErrorKindSet::of(&[ErrorKind::InvalidInput]),
        ..CircuitBreakerConfig::DEFAULT
    };
}

/// Three attempts, 2 ms apart; transient errors and timeouts are retried, the rest are not.
/// A type, like the breaker's: checked when the firmware is compiled, and every read of it is a
/// constant, so the backoff strategies it does not use (growth, jitter) are not in the firmware.
struct Jobs;

impl ConstRetryConfig for Jobs {
    const CONFIG: RetryConfig = RetryConfig {
        max_attempts: 3,
        backoff: BackoffStrategy::Fixed {
            delay: Duration::from_millis(2),
        },
        retryable_errors: rustkernel_core::error::ErrorKindSet::of(&[
            ErrorKind::Transient,
            ErrorKind::Timeout,
        ]),
    };
}

/// A ping every 20 ms that must answer within 5 ms; two failures make the accelerator unhealthy.
const PROBE: HealthProbeConfig = HealthProbeConfig {
    interval: Duration::from_millis(20),
    timeout: Duration::from_millis(5),
    failure_threshold: 2,
    success_threshold: 1,
};

/// Level 0: up to 2 resets within a second, then degrade.
const RESTARTS: RecoveryPolicy = RecoveryPolicy {
    strategy: RecoveryStrategy::RestartKernel,
    max_restarts: 2,
    restart_delay: Duration::from_millis(5),
    escalation: Some(RecoveryStrategy::Degrade),
};
/// Level 1, while degraded: one more reset, then call the operator.
const DEGRADED: RecoveryPolicy = RecoveryPolicy {
    strategy: RecoveryStrategy::RestartKernel,
    max_restarts: 1,
    restart_delay: Duration::from_millis(10),
    escalation: Some(RecoveryStrategy::NotifyOperator),
};
const INTENSITY: RestartIntensity = RestartIntensity {
    window: Duration::from_secs(1),
    backoff: None,
};

// The configurations are checked when the firmware is compiled: an invalid one fails the build
// (the breaker's and the retry policy's when their statics are built).
const _: () = assert!(INTENSITY.validate().is_ok());
const _: () = assert!(RESTARTS.validate().is_ok() && DEGRADED.validate().is_ok());
/// The two recovery levels, built (and so checked against each other and the window) when the
/// firmware is compiled. Each remembers at most 2 restart times: `max_restarts` is at most 2.
const LEVELS: [Recovery<2>; 2] = [
    checked(Recovery::try_new(RESTARTS, INTENSITY)),
    checked(Recovery::try_new(DEGRADED, INTENSITY)),
];

/// The machine of a valid recovery level; an invalid one stops the build.
#[allow(
    clippy::panic,
    reason = "only called in `const` items: the panic is a compile error, never a run-time one"
)]
const fn checked(level: Result<Recovery<2>, ConfigError>) -> Recovery<2> {
    match level {
        Ok(level) => level,
        Err(_) => panic!("invalid recovery policy"),
    }
}

/// The accelerator's number in telemetry frames.
const ACCELERATOR: u8 = 0;
/// This device, in the `Hello` frame: the board's.
const DEVICE_ID: u32 = board::DEVICE_ID;

// ---- shared state ----------------------------------------------------------------------------

static LINK: Link = Link::new();
/// The breaker in front of the accelerator, over its configuration type (checked when the
/// firmware is compiled, zero bytes of RAM).
static BREAKER: CircuitBreaker<CriticalSectionRawMutex, FixedConfig<Breaker>> =
    CircuitBreaker::from_const(NoWindow);
/// Health of the one component, the accelerator.
static MONITOR: HealthMonitor<CriticalSectionRawMutex, 1> = HealthMonitor::new();
/// Health changes, from the monitor to the supervisor.
static HEALTH_EVENTS: Channel<CriticalSectionRawMutex, HealthStatus, 4> = Channel::new();
/// Where the escalation stands: 0 normal, 1 degraded, 2 operator notified.
static LADDER: Mutex<CriticalSectionRawMutex, Cell<u8>> = Mutex::new(Cell::new(0));
/// The running totals of the summary frame.
static TOTALS: Mutex<CriticalSectionRawMutex, RefCell<Summary>> =
    Mutex::new(RefCell::new(Summary {
        jobs_ok: 0,
        fallbacks: 0,
        jobs_failed: 0,
        retries: 0,
        breaker_opens: 0,
        half_open_probes: 0,
        breaker_closes: 0,
        rejected: 0,
        health_changes: 0,
        restarts: 0,
        escalations: 0,
        escalated_to: None,
        at_us: 0,
    }));

fn count(update: impl FnOnce(&mut Summary)) {
    TOTALS.lock(|totals| update(&mut totals.borrow_mut()));
}

fn ladder() -> u8 {
    LADDER.lock(Cell::get)
}

fn now_us() -> u64 {
    Instant::now().as_micros()
}

/// Ends the run: QEMU exits with 1.
pub fn fail(why: &str) -> ! {
    output::write_stderr("accelerator_supervisor: FAILED: ");
    output::write_stderr(why);
    output::write_stderr("\n");
    loop {
        debug::exit(EXIT_FAILURE);
    }
}

// ---- the tasks -------------------------------------------------------------------------------

#[embassy_executor::task]
async fn accelerator_task() -> ! {
    accelerator::run(&LINK, SCHEDULE).await
}

/// Pings the accelerator at the probe's interval; reports each change of its health.
#[embassy_executor::task]
async fn health_task() -> ! {
    let ping = |_: ComponentId, _: ProbeRole| async {
        match LINK.ping().await {
            Ok(()) => HealthCheckResult::healthy(),
            Err(kind) => HealthCheckResult::unhealthy(kind.as_str()),
        }
    };
    let mut observer = |event: MonitorEvent| {
        let MonitorEvent::Health(HealthEvent {
            event: ComponentEvent::StatusChanged { from, to, .. },
            ..
        }) = event
        else {
            return;
        };
        info!("health   accelerator {} -> {}", from, to);
        count(|t| t.health_changes += 1);
        output::emit(&TelemetryFrame::Health {
            component: ACCELERATOR,
            status: to,
            at_us: now_us(),
        });
        if HEALTH_EVENTS.try_send(to).is_err() {
            info!("health   event queue full, change dropped");
        }
    };
    match MONITOR.run(&ping, &mut observer).await {}
}

/// What the supervisor does to the accelerator and the controller.
struct Effects {
    /// The accelerator in the health monitor.
    accelerator: ComponentId,
}

impl Effects {
    /// The accelerator was reset or the supervisor changed course: its probe starts over, so
    /// that the next decision rests on fresh evidence.
    fn reprobe(&self) {
        if MONITOR.reset(self.accelerator).is_err() {
            info!("health   accelerator not registered");
        }
    }
}

impl RecoveryEffects for Effects {
    async fn restart(&mut self, attempt: u32) {
        info!("recovery resetting the accelerator (attempt {})", attempt);
        count(|t| t.restarts += 1);
        LINK.reset();
        Timer::after(accelerator::RESET_TIME).await;
        self.reprobe();
    }

    async fn apply(&mut self, strategy: RecoveryStrategy) {
        match strategy {
            RecoveryStrategy::Degrade => {
                info!("recovery degrade: jobs now run on the MCU");
                LADDER.lock(|l| l.set(l.get().max(1)));
            }
            RecoveryStrategy::NotifyOperator => {
                info!("recovery operator notified: the accelerator needs service");
                LADDER.lock(|l| l.set(2));
            }
            other => info!("recovery {} is not available on this board", other),
        }
        self.reprobe();
    }
}

/// Turns health changes into recovery: unhealthy is a failure, healthy may end an escalation.
#[embassy_executor::task]
async fn supervisor_task(accelerator: ComponentId) -> ! {
    let mut supervisor = Supervisor::new(LEVELS);
    let mut effects = Effects { accelerator };
    loop {
        match HEALTH_EVENTS.receive().await {
            HealthStatus::Unhealthy => {
                let step = supervisor.on_failure(&mut effects).await;
                info!("recovery level {}: {}", step.level, step.action);
                if let RecoveryAction::Escalate(strategy) = step.action {
                    count(|t| {
                        t.escalations += 1;
                        t.escalated_to = Some(strategy);
                    });
                }
                if step.action.needs_action() {
                    output::emit(&TelemetryFrame::Recovery {
                        component: ACCELERATOR,
                        action: step.action,
                        at_us: now_us(),
                    });
                }
            }
            HealthStatus::Healthy | HealthStatus::Degraded => {
                if supervisor.on_healthy(&mut effects).await.is_some() {
                    info!("recovery healthy for a whole window: restart budget restored");
                }
            }
            HealthStatus::Unknown => {}
        }
    }
}

// ---- the controller --------------------------------------------------------------------------

fn on_transition(transition: Transition) {
    info!("breaker  {}", transition);
    count(|t| match (transition.from, transition.to) {
        (_, CircuitState::Open) => t.breaker_opens += 1,
        (_, CircuitState::HalfOpen) => t.half_open_probes += 1,
        (CircuitState::HalfOpen, CircuitState::Closed) => t.breaker_closes += 1,
        _ => {}
    });
    output::emit(&TelemetryFrame::Breaker {
        component: ACCELERATOR,
        transition,
        counts: BreakerCounts::from(BREAKER.stats()),
        at_us: now_us(),
    });
}

fn on_retry(event: RetryEvent) {
    if let RetryDecision::RetryAt(_) = event.decision {
        count(|t| t.retries += 1);
        info!(
            "retry    attempt {} failed ({}), retrying",
            event.attempt, event.kind
        );
    }
}

/// Runs job `id` on the accelerator (deadline, breaker, retry) or, degraded, on the MCU.
async fn run_job(id: u32) -> (JobOutcome, u32) {
    let input = id.wrapping_mul(0x0101_0101);
    let expected = accelerator::compute(input);
    if ladder() >= 1 {
        return (JobOutcome::Fallback, 0);
    }
    let mut attempts = 0u32;
    // A retrier per job, its jitter seeded from the device and the job.
    let retrier = Retrier::from_const::<Jobs>(u64::from(DEVICE_ID) << 32 | u64::from(id));
    let result = retrier
        .with_deadline(DeadlineContext::new(JOB_DEADLINE))
        .execute_observed(
            || {
                attempts += 1;
                async {
                    BREAKER
                        .call_observed(
                            || execute_with_timeout(ATTEMPT_TIMEOUT, || LINK.job(input)),
                            on_transition,
                        )
                        .await
                }
            },
            on_retry,
        )
        .await;
    let outcome = match result {
        Ok(value) if value == expected => JobOutcome::Done,
        Ok(_) => JobOutcome::Failed(ErrorKind::InvalidInput),
        Err(ResilienceError::CircuitOpen) => {
            count(|t| t.rejected += 1);
            JobOutcome::Failed(ErrorKind::Unavailable)
        }
        Err(error) => JobOutcome::Failed(error.kind()),
    };
    (outcome, attempts)
}

/// Checks the totals against what the scenario must have produced.
fn verdict(totals: &Summary, resets: u32) -> Result<(), &'static str> {
    let checks: [(bool, &'static str); 10] = [
        (totals.jobs_ok >= 10, "too few jobs done by the accelerator"),
        (totals.retries >= 2, "the transient burst was not retried"),
        (totals.breaker_opens >= 2, "the breaker did not open twice"),
        (totals.half_open_probes >= 1, "the breaker never probed"),
        (totals.breaker_closes >= 1, "the breaker never closed again"),
        (
            totals.restarts == 3,
            "expected 3 restarts (2, then 1 while degraded)",
        ),
        (resets == totals.restarts, "resets and restarts disagree"),
        (totals.escalations == 2, "expected 2 escalations"),
        (
            totals.escalated_to == Some(RecoveryStrategy::NotifyOperator),
            "the operator was not notified",
        ),
        (
            totals.fallbacks >= JOBS_AFTER_NOTIFY,
            "no jobs ran on the fallback",
        ),
    ];
    match checks.iter().find(|(ok, _)| !ok) {
        Some((_, why)) => Err(why),
        None => Ok(()),
    }
}

/// Runs the scenario on a board whose clock runs ([`board::start`]); ends QEMU with 0 when it
/// went as expected, 1 otherwise.
pub async fn run(spawner: Spawner) -> ! {
    info!(
        "rustkernel accelerator_supervisor on {}: starting",
        board::NAME
    );

    output::emit(&TelemetryFrame::Hello {
        version: VERSION,
        device: DEVICE_ID,
        at_us: now_us(),
    });
    let mut name = ComponentName::new();
    if name.push_str("accelerator").is_ok() {
        output::emit(&TelemetryFrame::Component {
            id: ACCELERATOR,
            name,
        });
    }

    let Ok(accelerator) = MONITOR.register(
        "accelerator",
        PROBE,
        Criticality::Critical,
        ProbeRole::Liveness,
    ) else {
        fail("cannot register the accelerator's probe");
    };

    match (
        accelerator_task(),
        health_task(),
        supervisor_task(accelerator),
    ) {
        (Ok(accelerator), Ok(health), Ok(supervisor)) => {
            spawner.spawn(accelerator);
            spawner.spawn(health);
            spawner.spawn(supervisor);
        }
        _ => fail("cannot spawn a task"),
    }

    let started = Instant::now();
    let mut next = started;
    let mut id = 0u32;
    let mut after_notify = 0u32;
    loop {
        id = id.wrapping_add(1);
        let (outcome, attempts) = run_job(id).await;
        match outcome {
            JobOutcome::Done => count(|t| t.jobs_ok += 1),
            JobOutcome::Fallback => count(|t| t.fallbacks += 1),
            JobOutcome::Failed(kind) => {
                count(|t| t.jobs_failed += 1);
                info!("job      #{} failed: {}", id, kind);
            }
        }
        output::emit(&TelemetryFrame::Job {
            id,
            outcome,
            attempts,
            at_us: now_us(),
        });
        if ladder() >= 2 {
            after_notify += 1;
            if after_notify >= JOBS_AFTER_NOTIFY {
                break;
            }
        }
        if Instant::now() - started > GIVE_UP_AFTER {
            fail("the scenario did not end in time");
        }
        // The next period; periods missed while a job ran are skipped, not made up in a burst.
        next = (next + JOB_PERIOD).max(Instant::now());
        Timer::at(next).await;
    }

    let mut totals = TOTALS.lock(|t| *t.borrow());
    totals.at_us = now_us();
    output::emit(&TelemetryFrame::Summary(totals));
    match verdict(&totals, LINK.resets()) {
        Ok(()) => {
            info!(
                "done: {} jobs on the accelerator, {} on the MCU, {} failed, {} restarts",
                totals.jobs_ok, totals.fallbacks, totals.jobs_failed, totals.restarts
            );
            loop {
                debug::exit(EXIT_SUCCESS);
            }
        }
        Err(why) => fail(why),
    }
}
