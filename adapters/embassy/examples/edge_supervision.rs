//! A controller that watches its accelerator and recovers it: a health monitor in a `static`
//! runs the checks (startup, liveness; a non-critical power rail) and feeds its events to a
//! supervisor, which restarts the accelerator, degrades to computing on the MCU when restarts
//! do not help, and leaves degraded mode once the replaced part has been quiet for a window.
//! A fan controller shows a policy that gives up.
//!
//! ```text
//! cargo run -p rustkernel-embassy --example edge_supervision
//! ```
//!
//! It runs on the host on embassy-time's mock clock (see `common`); the times it prints are
//! virtual. On a board the monitor and the supervisor would be two embassy tasks.

mod common;

use core::cell::Cell;
use core::time::Duration;

use common::{now_ms, run};
use embassy_futures::select::select3;
use embassy_sync::blocking_mutex::raw::CriticalSectionRawMutex;
use embassy_sync::channel::Channel;
use embassy_time::Timer;
use rustkernel_core::resilience::{
    ComponentEvent, ComponentId, Criticality, HealthCheckResult, HealthEvent, HealthProbeConfig,
    HealthStatus, ProbeRole, ProbeRoles, Recovery, RecoveryAction, RecoveryLadder, RecoveryPolicy,
    RecoveryStrategy, RestartIntensity,
};
use rustkernel_embassy::health::{HealthCheck, HealthMonitor, MonitorEvent};
use rustkernel_embassy::supervisor::{RecoveryEffects, Supervisor, SupervisorStep};
use rustkernel_embassy::time;

/// The health of two components, shared with every task.
static MONITOR: HealthMonitor<CriticalSectionRawMutex, 2> = HealthMonitor::new();
/// What the monitor saw, for the supervisor task.
static EVENTS: Channel<CriticalSectionRawMutex, MonitorEvent, 16> = Channel::new();

/// The board as the checks and the recovery effects see it.
#[derive(Default)]
struct Board {
    /// When the accelerator last came out of reset.
    booted_at: Cell<u64>,
    /// It stopped answering (a hang a reset clears).
    hung: Cell<bool>,
    /// A bad part: resets do not help until it is replaced.
    bad_part: Cell<bool>,
    /// Computing on the MCU instead.
    degraded: Cell<bool>,
    resets: Cell<u32>,
    rail_millivolts: Cell<u32>,
}

/// The checks of both components, told which one runs (there is no allocator for one check
/// object per component).
struct Checks<'a> {
    board: &'a Board,
    accelerator: ComponentId,
}

impl HealthCheck for Checks<'_> {
    async fn check(&self, component: ComponentId, role: ProbeRole) -> HealthCheckResult {
        let board = self.board;
        if component != self.accelerator {
            let mv = board.rail_millivolts.get();
            return if mv >= 3_200 {
                HealthCheckResult::healthy()
            } else {
                HealthCheckResult::degraded("3V3 rail low")
            };
        }
        if board.degraded.get() {
            return HealthCheckResult::healthy(); // the MCU path answers
        }
        if role == ProbeRole::Startup && now_ms() < board.booted_at.get() + 30 {
            return HealthCheckResult::unhealthy("booting");
        }
        if board.hung.get() || board.bad_part.get() {
            Timer::after_secs(10).await; // no answer: cut at the check's timeout
        }
        HealthCheckResult::healthy()
    }
}

/// What the supervisor does to the board.
struct Effects<'a> {
    board: &'a Board,
    accelerator: ComponentId,
}

impl RecoveryEffects for Effects<'_> {
    async fn restart(&mut self, attempt: u32) {
        let board = self.board;
        board.resets.set(board.resets.get() + 1);
        board.booted_at.set(now_ms());
        board.hung.set(false);
        // Its probes start over, startup first.
        let _ = MONITOR.reset(self.accelerator);
        println!("[{:>5} ms]   reset pulse, attempt {attempt}", now_ms());
    }

    async fn apply(&mut self, strategy: RecoveryStrategy) {
        match strategy {
            RecoveryStrategy::Degrade => {
                // The MCU path is a fresh start for the component's probes.
                self.board.degraded.set(true);
                let _ = MONITOR.reset(self.accelerator);
            }
            RecoveryStrategy::NotifyOperator => println!("  telemetry: operator needed"),
            _ => {}
        }
        println!("[{:>5} ms]   {strategy}", now_ms());
        MONITOR.wake();
    }

    async fn recovered(&mut self) {
        self.board.degraded.set(false);
        let _ = MONITOR.reset(self.accelerator);
        println!(
            "[{:>5} ms]   quiet for a window: back on the accelerator",
            now_ms()
        );
    }
}

fn log_step(step: SupervisorStep) {
    let what = match step.action {
        RecoveryAction::Restart { attempt, .. } => format!("restart #{attempt}"),
        other => other.to_string(),
    };
    println!(
        "[{:>5} ms] supervisor level {}: {what}",
        now_ms(),
        step.level
    );
}

fn log_event(event: &MonitorEvent) {
    match event {
        MonitorEvent::Health(HealthEvent { component, event }) => {
            let name = if Some(*component) == MONITOR.id("accelerator") {
                "accelerator"
            } else {
                "power"
            };
            let what = match event {
                ComponentEvent::StatusChanged { role, from, to } => {
                    format!("{role} {from} -> {to}")
                }
                ComponentEvent::Started => "started".to_owned(),
                other => format!("{other:?}"),
            };
            println!("[{:>5} ms] {name}: {what}", now_ms());
        }
        MonitorEvent::Checked {
            timed_out: true,
            role,
            status,
            ..
        } => println!("[{:>5} ms]   {role} check timed out: {status}", now_ms()),
        MonitorEvent::Checked { .. } => {}
    }
}

/// The accelerator's faults over time, and the technician who replaces the part.
async fn scenario(board: &Board) {
    Timer::after_millis(300).await;
    println!("[{:>5} ms] -- the accelerator hangs", now_ms());
    board.hung.set(true);
    Timer::after_millis(700).await;
    println!("[{:>5} ms] -- its memory fails for good", now_ms());
    board.bad_part.set(true);
    board.rail_millivolts.set(3_050);
    Timer::after_millis(800).await;
    println!("[{:>5} ms] -- a technician replaces it", now_ms());
    board.bad_part.set(false);
    board.hung.set(false);
    board.rail_millivolts.set(3_300);
    Timer::after_millis(2_700).await;
}

async fn supervise(supervisor: &mut Supervisor<2>, effects: &mut Effects<'_>) {
    loop {
        let event = EVENTS.receive().await;
        match event {
            MonitorEvent::Health(HealthEvent { component, event })
                if component == effects.accelerator && event.needs_recovery() =>
            {
                log_step(supervisor.on_failure(effects).await);
            }
            MonitorEvent::Checked {
                component,
                role: ProbeRole::Liveness,
                status: HealthStatus::Healthy,
                ..
            } if component == effects.accelerator => {
                if let Some(recovered) = supervisor.on_healthy(effects).await {
                    println!("[{:>5} ms] supervisor: {recovered:?}", now_ms());
                }
            }
            _ => {}
        }
    }
}

fn policy(max_restarts: u32, escalation: Option<RecoveryStrategy>) -> RecoveryPolicy {
    RecoveryPolicy {
        strategy: RecoveryStrategy::RestartKernel,
        max_restarts,
        restart_delay: Duration::from_millis(50),
        escalation,
    }
}

async fn controller() -> Option<()> {
    let board = Board::default();
    board.rail_millivolts.set(3_300);
    let probes = HealthProbeConfig {
        interval: Duration::from_millis(50),
        timeout: Duration::from_millis(20),
        failure_threshold: 2,
        success_threshold: 1,
    };
    let accelerator = MONITOR
        .register(
            "accelerator",
            probes,
            Criticality::Critical,
            ProbeRoles::of(&[ProbeRole::Startup, ProbeRole::Liveness]),
        )
        .ok()?;
    let power = MONITOR
        .register(
            "power",
            probes,
            Criticality::NonCritical,
            ProbeRole::Readiness,
        )
        .ok()?;
    let checks = Checks {
        board: &board,
        accelerator,
    };
    let mut observe = |event: MonitorEvent| {
        log_event(&event);
        let _ = EVENTS.try_send(event);
    };

    // A self-test at boot: one round of the checks that are due.
    MONITOR.run_due(&checks, &mut observe).await;
    println!(
        "[{:>5} ms] after the self-test: started {}, live {}, ready {}; next check at {:?} ms",
        now_ms(),
        MONITOR.started(),
        MONITOR.live(),
        MONITOR.ready(),
        MONITOR.poll_at().map(|at| at.as_millis())
    );

    // Restart twice a second at most, then compute on the MCU; while degraded, restart once
    // more, then call the operator.
    let window = RestartIntensity {
        window: Duration::from_secs(1),
        backoff: None,
    };
    let ladder = RecoveryLadder::new([
        Recovery::new(policy(2, Some(RecoveryStrategy::Degrade)), window),
        Recovery::new(policy(1, Some(RecoveryStrategy::NotifyOperator)), window),
    ]);
    let mut supervisor = Supervisor::with_ladder(ladder);
    let mut effects = Effects {
        board: &board,
        accelerator,
    };
    let _ = select3(
        MONITOR.run(&checks, &mut observe),
        supervise(&mut supervisor, &mut effects),
        scenario(&board),
    )
    .await;

    println!(
        "[{:>5} ms] at the end: level {} of {}, escalation {:?}, {} resets, degraded {}",
        now_ms(),
        supervisor.level(),
        supervisor.levels().len(),
        supervisor.escalation(),
        board.resets.get(),
        board.degraded.get()
    );
    println!(
        "accelerator {:?}, power {:?}, overall {}; the ladder's level-0 budget: {:?} restarts \
         in the window",
        MONITOR.status(accelerator),
        MONITOR.status(power),
        MONITOR.overall(),
        supervisor
            .current()
            .map(|level| level.remaining_restarts(time::now()))
    );
    let names = MONITOR.with_registry(|registry| {
        registry
            .iter()
            .map(|entry| format!("{} ({:?})", entry.name(), entry.criticality()))
            .collect::<Vec<_>>()
    });
    println!(
        "registry: {names:?}; ladder at level {}",
        supervisor.ladder().level()
    );

    // A fan controller: restart once, then give up (the fan stays off, the board throttles).
    struct Fan {
        gave_up: bool,
    }
    impl RecoveryEffects for Fan {
        async fn restart(&mut self, _attempt: u32) {}
        async fn apply(&mut self, _strategy: RecoveryStrategy) {}
        async fn give_up(&mut self) {
            self.gave_up = true;
        }
    }
    let mut fan = Fan { gave_up: false };
    let mut fan_supervisor: Supervisor<1> =
        Supervisor::new([Recovery::new(policy(1, None), window)]);
    // Failures seen by an interrupt handler and queued: reported with when they happened.
    let seen = embassy_time::Instant::now();
    let first = fan_supervisor.on_failure_at(seen, &mut fan).await;
    Timer::after_millis(100).await;
    let second = fan_supervisor
        .on_failure_at(embassy_time::Instant::now(), &mut fan)
        .await;
    log_step(first);
    log_step(second);
    println!(
        "fan: gave up {}, escalation {:?}",
        fan.gave_up,
        fan_supervisor.escalation()
    );
    fan_supervisor.reset();
    println!(
        "fan after an operator's reset: level {}, escalation {:?}",
        fan_supervisor.level(),
        fan_supervisor.escalation()
    );
    Some(())
}

fn main() {
    match run(controller()) {
        Some(Some(())) => println!("[{:>5} ms] done", now_ms()),
        _ => {
            eprintln!("edge_supervision: the scenario did not finish");
            std::process::exit(1);
        }
    }
}
