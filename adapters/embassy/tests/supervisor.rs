//! The supervisor on embassy-time's mock clock: restarts after the delay, then escalates.

#![allow(clippy::indexing_slicing, reason = "tests index what they just built")]

mod common;

use core::time::Duration as StdDuration;
use std::vec::Vec;

use common::{now_ms, run_ms, serial};
use embassy_futures::join::join;
use embassy_futures::select::select;
use embassy_sync::blocking_mutex::raw::NoopRawMutex;
use embassy_sync::channel::Channel;
use embassy_time::{Duration, Instant, Timer};
use rustkernel_core::resilience::{
    ComponentId, Criticality, Escalation, HealthCheckResult, HealthProbeConfig, HealthStatus,
    ProbeRole, Recovered, Recovery, RecoveryAction, RecoveryPolicy, RecoveryStrategy,
    RestartIntensity,
};
use rustkernel_core::time::Instant as CoreInstant;
use rustkernel_embassy::health::{HealthMonitor, MonitorEvent};
use rustkernel_embassy::supervisor::{RecoveryEffects, Supervisor, SupervisorStep};

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Effect {
    Restart(u32),
    Apply(RecoveryStrategy),
    GiveUp,
    Recovered,
}

/// Records every effect with the virtual time it was carried out.
#[derive(Default)]
struct Log(Vec<(u64, Effect)>);

impl RecoveryEffects for Log {
    async fn restart(&mut self, attempt: u32) {
        self.0.push((now_ms(), Effect::Restart(attempt)));
    }
    async fn apply(&mut self, strategy: RecoveryStrategy) {
        self.0.push((now_ms(), Effect::Apply(strategy)));
    }
    async fn give_up(&mut self) {
        self.0.push((now_ms(), Effect::GiveUp));
    }
    async fn recovered(&mut self) {
        self.0.push((now_ms(), Effect::Recovered));
    }
}

const WINDOW: RestartIntensity = RestartIntensity {
    window: StdDuration::from_secs(10),
    backoff: None,
};

fn restarts(max_restarts: u32, delay_ms: u64, escalation: Option<RecoveryStrategy>) -> Recovery {
    Recovery::try_new(
        RecoveryPolicy {
            strategy: RecoveryStrategy::RestartKernel,
            max_restarts,
            restart_delay: StdDuration::from_millis(delay_ms),
            escalation,
        },
        WINDOW,
    )
    .expect("valid policy")
}

fn ladder() -> Supervisor<2> {
    Supervisor::new([
        restarts(3, 100, Some(RecoveryStrategy::Degrade)),
        restarts(1, 1_000, Some(RecoveryStrategy::NotifyOperator)),
    ])
}

fn step(level: usize, action: RecoveryAction) -> SupervisorStep {
    SupervisorStep { level, action }
}

fn restart_at(ms: u64, attempt: u32) -> RecoveryAction {
    RecoveryAction::Restart {
        at: CoreInstant::from_millis(ms),
        attempt,
    }
}

#[test]
fn restarts_after_the_delay_then_escalates_to_degrade_then_notify() {
    let _clock = serial();
    let mut supervisor = ladder();
    let mut log = Log::default();
    let steps = run_ms(async {
        let mut steps = Vec::new();
        for _ in 0..7 {
            steps.push(supervisor.on_failure(&mut log).await);
            Timer::after(Duration::from_millis(50)).await; // the restarted kernel fails again
        }
        steps
    });
    assert_eq!(
        steps,
        vec![
            step(0, restart_at(100, 1)),
            step(0, restart_at(250, 2)),
            step(0, restart_at(400, 3)),
            step(0, RecoveryAction::Escalate(RecoveryStrategy::Degrade)),
            step(1, restart_at(1_500, 1)),
            step(
                1,
                RecoveryAction::Escalate(RecoveryStrategy::NotifyOperator)
            ),
            step(
                1,
                RecoveryAction::AlreadyEscalated(Escalation::To(RecoveryStrategy::NotifyOperator))
            ),
        ]
    );
    assert_eq!(
        log.0,
        vec![
            (100, Effect::Restart(1)),
            (250, Effect::Restart(2)),
            (400, Effect::Restart(3)),
            (450, Effect::Apply(RecoveryStrategy::Degrade)),
            (1_500, Effect::Restart(1)),
            (1_550, Effect::Apply(RecoveryStrategy::NotifyOperator)),
        ]
    );
    assert_eq!(supervisor.level(), 1);
    assert_eq!(
        supervisor.escalation(),
        Some(Escalation::To(RecoveryStrategy::NotifyOperator))
    );
}

#[test]
fn a_failure_seen_before_the_pending_restart_restarts_nothing() {
    let _clock = serial();
    let mut supervisor = ladder();
    let mut log = Log::default();
    run_ms(async {
        let seen_during_delay = Instant::from_millis(60);
        assert_eq!(
            supervisor.on_failure(&mut log).await,
            step(0, restart_at(100, 1))
        );
        // Queued while the supervisor slept: about the kernel that was already down.
        let stale = supervisor.on_failure_at(seen_during_delay, &mut log).await;
        assert_eq!(
            stale.action,
            RecoveryAction::RestartPending {
                at: CoreInstant::from_millis(100),
                attempt: 1
            }
        );
    });
    assert_eq!(log.0, vec![(100, Effect::Restart(1))]);
}

#[test]
fn a_healthy_window_ends_the_escalation() {
    let _clock = serial();
    let mut supervisor = ladder();
    let mut log = Log::default();
    run_ms(async {
        for _ in 0..4 {
            let _ = supervisor.on_failure(&mut log).await;
        }
        assert_eq!(supervisor.level(), 1);
        // Healthy, but not yet for a whole window after the escalating failure (at 300 ms).
        Timer::after(Duration::from_secs(9)).await;
        assert_eq!(supervisor.on_healthy(&mut log).await, None);
        assert_eq!(supervisor.level(), 1);
        Timer::after(Duration::from_secs(1)).await;
        assert_eq!(
            supervisor.on_healthy(&mut log).await,
            Some(Recovered::FromEscalation(Escalation::To(
                RecoveryStrategy::Degrade
            )))
        );
        assert_eq!(supervisor.level(), 0);
        // A fresh budget: three restarts again.
        assert_eq!(
            supervisor.on_failure(&mut log).await.action,
            restart_at(10_400, 1)
        );
    });
    assert_eq!(log.0[4], (10_300, Effect::Recovered));
    assert_eq!(supervisor.current().map(Recovery::attempt), Some(1));
}

#[test]
fn a_level_without_escalation_hands_the_failure_on_and_the_last_gives_up() {
    let _clock = serial();
    let notify = Recovery::try_new(
        RecoveryPolicy {
            strategy: RecoveryStrategy::NotifyOperator,
            max_restarts: 0,
            restart_delay: StdDuration::ZERO,
            escalation: None,
        },
        WINDOW,
    )
    .expect("valid policy");
    let mut handed_on = Supervisor::new([restarts(1, 10, None), notify]);
    let mut alone = Supervisor::new([restarts(1, 10, None)]);
    let mut log = Log::default();
    run_ms(async {
        assert_eq!(
            handed_on.on_failure(&mut log).await,
            step(0, restart_at(10, 1))
        );
        assert_eq!(
            handed_on.on_failure(&mut log).await,
            step(1, RecoveryAction::NotifyOperator)
        );
        assert_eq!(alone.on_failure(&mut log).await, step(0, restart_at(20, 1)));
        assert_eq!(
            alone.on_failure(&mut log).await,
            step(0, RecoveryAction::GiveUp)
        );
    });
    assert_eq!(
        log.0,
        vec![
            (10, Effect::Restart(1)),
            (10, Effect::Apply(RecoveryStrategy::NotifyOperator)),
            (20, Effect::Restart(1)),
            (20, Effect::GiveUp),
        ]
    );
    alone.reset();
    assert_eq!(alone.escalation(), None);
}

/// The wiring the firmware uses: the monitor's `needs_recovery` events go through a channel to
/// the supervisor task, whose restart resets the component's probes.
#[test]
fn the_monitor_and_the_supervisor_restart_a_hung_accelerator() {
    let _clock = serial();
    let monitor: HealthMonitor<NoopRawMutex, 1> = HealthMonitor::new();
    let probe = HealthProbeConfig {
        interval: StdDuration::from_millis(100),
        timeout: StdDuration::from_millis(20),
        failure_threshold: 2,
        success_threshold: 1,
    };
    let gpu = monitor
        .register("gpu", probe, Criticality::Critical, ProbeRole::Liveness)
        .expect("registered");
    let failures: Channel<NoopRawMutex, Instant, 4> = Channel::new();
    let hung = core::cell::Cell::new(true);

    struct Accelerator<'a> {
        monitor: &'a HealthMonitor<NoopRawMutex, 1>,
        gpu: ComponentId,
        hung: &'a core::cell::Cell<bool>,
        restarted_at: Vec<u64>,
    }
    impl RecoveryEffects for Accelerator<'_> {
        async fn restart(&mut self, _attempt: u32) {
            self.hung.set(false);
            self.restarted_at.push(now_ms());
            let _ = self.monitor.reset(self.gpu);
        }
        async fn apply(&mut self, _strategy: RecoveryStrategy) {}
    }
    let mut accelerator = Accelerator {
        monitor: &monitor,
        gpu,
        hung: &hung,
        restarted_at: Vec::new(),
    };
    let mut supervisor = Supervisor::new([restarts(3, 50, Some(RecoveryStrategy::Degrade))]);

    let ping = |_: ComponentId, _: ProbeRole| {
        let hung = hung.get();
        async move {
            if hung {
                Timer::after(Duration::from_secs(1)).await;
            }
            HealthCheckResult::healthy()
        }
    };
    let mut forward = |event: MonitorEvent| {
        if let MonitorEvent::Health(health) = event
            && health.event.needs_recovery()
        {
            let _ = failures.try_send(Instant::now());
        }
    };
    let supervise = async {
        loop {
            let failed_at = failures.receive().await;
            let _ = supervisor.on_failure_at(failed_at, &mut accelerator).await;
        }
    };
    run_ms(select(
        join(monitor.run(&ping, &mut forward), supervise),
        Timer::after(Duration::from_millis(400)),
    ));
    // Timeouts at 20 and 120 ms: Unhealthy at 120; restart 50 ms later; healthy at once.
    assert_eq!(accelerator.restarted_at, vec![170]);
    assert_eq!(monitor.status(gpu), Some(HealthStatus::Healthy));
    assert!(monitor.live());
}

/// Issue 15: a level may leave its escalation only once the current level has been quiet for a
/// whole window of its own. Level 0 (1 restart, 10 ms, 1 s window) escalates to Degrade; level
/// 1 (1 restart after 2 s, 10 s window) restarts the component, which comes up at 2010 ms.
/// Level 0's window since its last failure has passed by then, but the component has been up
/// for 0 s: `recovered()` must wait for level 1's 10 s window, until 12010 ms.
#[test]
fn de_escalation_waits_for_the_current_levels_quiet_window() {
    let _clock = serial();
    let level0 = Recovery::try_new(
        RecoveryPolicy {
            strategy: RecoveryStrategy::RestartKernel,
            max_restarts: 1,
            restart_delay: StdDuration::from_millis(10),
            escalation: Some(RecoveryStrategy::Degrade),
        },
        RestartIntensity {
            window: StdDuration::from_secs(1),
            backoff: None,
        },
    )
    .expect("valid policy");
    let level1 = Recovery::try_new(
        RecoveryPolicy {
            strategy: RecoveryStrategy::RestartKernel,
            max_restarts: 1,
            restart_delay: StdDuration::from_secs(2),
            escalation: Some(RecoveryStrategy::NotifyOperator),
        },
        WINDOW,
    )
    .expect("valid policy");
    let mut supervisor: Supervisor<2> = Supervisor::new([level0, level1]);
    let mut log = Log::default();
    let healthy = run_ms(async {
        for _ in 0..3 {
            let _ = supervisor.on_failure(&mut log).await;
        }
        // The restart of level 1 just completed: up for 0 s.
        let mut healthy = vec![(now_ms(), supervisor.on_healthy(&mut log).await)];
        Timer::at(Instant::from_millis(12_009)).await;
        healthy.push((now_ms(), supervisor.on_healthy(&mut log).await));
        Timer::at(Instant::from_millis(12_010)).await;
        healthy.push((now_ms(), supervisor.on_healthy(&mut log).await));
        healthy
    });
    assert_eq!(
        healthy,
        vec![
            (2_010, None),
            (12_009, None),
            (
                12_010,
                Some(Recovered::FromEscalation(Escalation::To(
                    RecoveryStrategy::Degrade
                )))
            ),
        ]
    );
    assert_eq!(
        log.0,
        vec![
            (10, Effect::Restart(1)),
            (10, Effect::Apply(RecoveryStrategy::Degrade)),
            (2_010, Effect::Restart(1)),
            (12_010, Effect::Recovered),
        ]
    );
    assert_eq!(supervisor.level(), 0);
}
