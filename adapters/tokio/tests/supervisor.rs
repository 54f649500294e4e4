//! `Supervisor` on tokio's paused clock: restarts after their delays, restore from checkpoints,
//! escalation past the restart intensity to a failover kernel or an operator, replicas and the
//! degraded path.

use std::collections::VecDeque;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use rustkernel_core::resilience::{Escalation, Recovered, RestartBackoff};
use rustkernel_core::time::Instant;
use rustkernel_core::traits::{KernelError, Result as KernelResult};
use rustkernel_tokio::checkpoint_store::FileCheckpointStore;
use rustkernel_tokio::resilience::{
    CheckpointStore, CheckpointableKernel, HealthCheckResult, HealthProbe, HealthProbeConfig,
    KernelSlot, MemoryCheckpointStore, OperatorAlert, RecoveryAction, RecoveryPolicy,
    RecoveryStrategy, ResilienceCollector, RestartIntensity, SupervisedKernel, Supervisor,
    SupervisorExit,
};
use rustkernel_tokio::supervisor::{KernelFailure, SupervisorError, SupervisorEvent};
use tokio::sync::mpsc;

/// One run of a scripted kernel: how long it runs, and whether it then fails.
#[derive(Clone, Copy, Debug)]
enum Run {
    Fail(Duration),
    Complete(Duration),
}

/// Who ran when: (kernel name, time since the test started).
type Runs = Arc<Mutex<Vec<(&'static str, Duration)>>>;

/// A kernel that plays a script of runs; with the script empty it completes at once.
struct Scripted {
    name: &'static str,
    script: VecDeque<Run>,
    runs: Runs,
    t0: tokio::time::Instant,
    restarts: u32,
}

impl Scripted {
    fn new(name: &'static str, script: &[Run], runs: &Runs) -> Self {
        Self {
            name,
            script: script.iter().copied().collect(),
            runs: Arc::clone(runs),
            t0: tokio::time::Instant::now(),
            restarts: 0,
        }
    }
}

impl SupervisedKernel for Scripted {
    type Error = String;

    async fn run(&mut self) -> Result<(), String> {
        self.runs
            .lock()
            .expect("lock")
            .push((self.name, self.t0.elapsed()));
        match self.script.pop_front() {
            Some(Run::Fail(after)) => {
                tokio::time::sleep(after).await;
                Err(format!("{} lost its device", self.name))
            }
            Some(Run::Complete(after)) => {
                tokio::time::sleep(after).await;
                Ok(())
            }
            None => Ok(()),
        }
    }

    async fn restart(&mut self) -> Result<(), String> {
        self.restarts += 1;
        Ok(())
    }
}

fn secs(s: u64) -> Duration {
    Duration::from_secs(s)
}

fn runs() -> Runs {
    Arc::new(Mutex::new(Vec::new()))
}

fn taken(runs: &Runs) -> Vec<(&'static str, Duration)> {
    runs.lock().expect("lock").clone()
}

/// The chapter's policy: restart after 5 s, at most 3 times, then notify an operator.
fn chapter_policy() -> RecoveryPolicy {
    RecoveryPolicy {
        strategy: RecoveryStrategy::RestartKernel,
        max_restarts: 3,
        restart_delay: secs(5),
        escalation: Some(RecoveryStrategy::NotifyOperator),
    }
}

fn restarts(events: &[SupervisorEvent]) -> Vec<(Instant, Option<u32>)> {
    events
        .iter()
        .filter_map(|event| match event {
            SupervisorEvent::Restarted { at, attempt, .. } => Some((*at, *attempt)),
            _ => None,
        })
        .collect()
}

const FAIL_NOW: Run = Run::Fail(Duration::ZERO);

#[tokio::test(start_paused = true)]
async fn failures_restart_after_the_delay_on_the_virtual_clock() {
    let t0 = rustkernel_tokio::clock::now();
    let runs = runs();
    let kernel = Scripted::new(
        "gpu",
        &[FAIL_NOW, Run::Fail(secs(2)), Run::Complete(secs(1))],
        &runs,
    );
    let mut supervisor = Supervisor::new(
        "graph/pagerank",
        kernel,
        chapter_policy(),
        RestartIntensity::default(),
    );
    assert_eq!(supervisor.run().await, Ok(SupervisorExit::Completed));

    // Fails at 0, restarted at 5; fails at 7, restarted at 12; completes at 13.
    assert_eq!(
        taken(&runs),
        vec![("gpu", secs(0)), ("gpu", secs(5)), ("gpu", secs(12))]
    );
    let events = supervisor.log().events();
    assert_eq!(
        restarts(&events),
        vec![((t0 + secs(5)), Some(1)), ((t0 + secs(12)), Some(2))]
    );
    assert_eq!(
        supervisor
            .kernel(KernelSlot::Primary)
            .expect("primary")
            .restarts,
        2
    );
    assert!(matches!(
        events.last(),
        Some(SupervisorEvent::Stopped {
            exit: SupervisorExit::Completed,
            ..
        })
    ));
    let counts = supervisor.log().counts();
    assert_eq!((counts.restart, counts.total()), (2, 2));
}

#[tokio::test(start_paused = true)]
async fn restart_delays_grow_with_the_intensitys_backoff() {
    let runs = runs();
    let kernel = Scripted::new("gpu", &[FAIL_NOW, FAIL_NOW, FAIL_NOW], &runs);
    let intensity = RestartIntensity {
        window: secs(120),
        backoff: Some(RestartBackoff {
            multiplier: 2.0,
            max: secs(60),
        }),
    };
    let mut supervisor = Supervisor::new("gpu", kernel, chapter_policy(), intensity);
    assert_eq!(supervisor.run().await, Ok(SupervisorExit::Completed));
    // Delays 5, 10, 20.
    let starts: Vec<Duration> = taken(&runs).into_iter().map(|(_, t)| t).collect();
    assert_eq!(starts, vec![secs(0), secs(5), secs(15), secs(35)]);
}

#[tokio::test(start_paused = true)]
async fn past_the_restart_intensity_the_operator_is_notified() {
    let t0 = rustkernel_tokio::clock::now();
    let runs = runs();
    let kernel = Scripted::new("gpu", &[FAIL_NOW; 10], &runs);
    let (notifier, mut alerts) = mpsc::unbounded_channel::<OperatorAlert>();
    let mut supervisor = Supervisor::new(
        "graph/pagerank",
        kernel,
        chapter_policy(),
        RestartIntensity::default(),
    )
    .with_notifier(notifier);
    assert_eq!(supervisor.run().await, Ok(SupervisorExit::OperatorNotified));

    // Three restarts, then the fourth failure within the window escalates, at 15 s.
    assert_eq!(taken(&runs).len(), 4);
    let alert = alerts.try_recv().expect("alerted");
    assert_eq!(
        alert,
        OperatorAlert {
            kernel: "graph/pagerank".into(),
            slot: KernelSlot::Primary,
            error: KernelFailure::Error(Arc::new("gpu lost its device".to_owned())),
            action: RecoveryAction::Escalate(RecoveryStrategy::NotifyOperator),
            level: 0,
            restarts: 3,
            at: (t0 + secs(15)),
        }
    );
    assert!(alerts.try_recv().is_err(), "one alert");
    let counts = supervisor.log().counts();
    assert_eq!((counts.restart, counts.escalate), (3, 1));

    // The same counts, scraped through the metrics collector.
    let mut registry = prometheus_client::registry::Registry::default();
    registry.register_collector(Box::new(
        ResilienceCollector::new().with_supervisor("graph/pagerank", supervisor.log()),
    ));
    let mut text = String::new();
    prometheus_client::encoding::text::encode(&mut text, &registry).expect("encode");
    for line in [
        "rustkernel_recovery_actions_total{kernel=\"graph/pagerank\",action=\"restart\"} 3",
        "rustkernel_recovery_actions_total{kernel=\"graph/pagerank\",action=\"escalate\"} 1",
        "rustkernel_recovery_actions_total{kernel=\"graph/pagerank\",action=\"give_up\"} 0",
    ] {
        assert!(
            text.lines().any(|l| l == line),
            "{line} missing from\n{text}"
        );
    }
}

#[tokio::test(start_paused = true)]
async fn past_the_restart_intensity_without_escalation_the_supervisor_gives_up() {
    let runs = runs();
    let kernel = Scripted::new("gpu", &[FAIL_NOW; 10], &runs);
    let policy = RecoveryPolicy {
        escalation: None,
        ..chapter_policy()
    };
    let mut supervisor = Supervisor::new("gpu", kernel, policy, RestartIntensity::default());
    assert_eq!(supervisor.run().await, Ok(SupervisorExit::GaveUp));
    assert_eq!(taken(&runs).len(), 4);
    assert_eq!(supervisor.log().counts().give_up, 1);
}

#[tokio::test(start_paused = true)]
async fn escalation_fails_over_to_the_backup_kernel() {
    let t0 = rustkernel_tokio::clock::now();
    let runs = runs();
    let primary = Scripted::new("gpu", &[FAIL_NOW; 10], &runs);
    let backup = Scripted::new("cpu", &[Run::Complete(secs(3))], &runs);
    let policy = RecoveryPolicy {
        escalation: Some(RecoveryStrategy::Failover),
        ..chapter_policy()
    };
    let mut supervisor = Supervisor::new(
        "graph/pagerank",
        primary,
        policy,
        RestartIntensity::default(),
    )
    .with_failover(backup);
    // On its own task (the supervisor is `Send`), watched through its log meanwhile.
    let log = supervisor.log();
    let task = tokio::spawn(async move {
        let exit = supervisor.run().await;
        (exit, supervisor)
    });
    tokio::time::sleep(secs(12)).await;
    assert_eq!(
        log.counts().restart,
        3,
        "restarted at 5 and 10, restart due at 15"
    );
    let (exit, supervisor) = task.await.expect("no panic");
    assert_eq!(exit, Ok(SupervisorExit::Completed));
    assert_eq!(
        taken(&runs),
        vec![
            ("gpu", secs(0)),
            ("gpu", secs(5)),
            ("gpu", secs(10)),
            ("gpu", secs(15)),
            ("cpu", secs(15)),
        ]
    );
    assert_eq!(supervisor.active_slot(), KernelSlot::Failover);
    assert!(
        supervisor
            .log()
            .events()
            .contains(&SupervisorEvent::Switched {
                at: (t0 + secs(15)),
                from: KernelSlot::Primary,
                to: KernelSlot::Failover,
            })
    );
}

#[tokio::test(start_paused = true)]
async fn a_failing_backup_leaves_nothing_to_try_and_alerts_the_operator() {
    let t0 = rustkernel_tokio::clock::now();
    let runs = runs();
    let primary = Scripted::new("gpu", &[FAIL_NOW; 10], &runs);
    let backup = Scripted::new("cpu", &[Run::Fail(secs(1))], &runs);
    let policy = RecoveryPolicy {
        escalation: Some(RecoveryStrategy::Failover),
        ..chapter_policy()
    };
    let (notifier, mut alerts) = mpsc::unbounded_channel();
    let mut supervisor = Supervisor::new(
        "graph/pagerank",
        primary,
        policy,
        RestartIntensity::default(),
    )
    .with_failover(backup)
    .with_notifier(notifier);
    assert_eq!(supervisor.run().await, Ok(SupervisorExit::Exhausted));
    let alert = alerts.try_recv().expect("alerted");
    assert_eq!(alert.slot, KernelSlot::Failover);
    assert_eq!(
        alert.action,
        RecoveryAction::AlreadyEscalated(Escalation::To(RecoveryStrategy::Failover))
    );
    assert_eq!(alert.at, (t0 + secs(16)));
}

#[tokio::test(start_paused = true)]
async fn the_degrade_strategy_switches_to_the_degraded_kernel_at_once() {
    let runs = runs();
    let primary = Scripted::new("gpu", &[Run::Fail(secs(4))], &runs);
    let degraded = Scripted::new("cpu", &[Run::Complete(secs(1))], &runs);
    let policy = RecoveryPolicy {
        strategy: RecoveryStrategy::Degrade,
        ..chapter_policy()
    };
    let mut supervisor = Supervisor::new(
        "graph/pagerank",
        primary,
        policy,
        RestartIntensity::default(),
    )
    .with_degraded(degraded);
    assert_eq!(supervisor.run().await, Ok(SupervisorExit::Completed));
    assert_eq!(taken(&runs), vec![("gpu", secs(0)), ("cpu", secs(4))]);
    assert_eq!(supervisor.active_slot(), KernelSlot::Degraded);
    assert_eq!(supervisor.log().counts().degrade, 1);
}

#[tokio::test(start_paused = true)]
async fn the_replica_strategy_switches_once_then_has_nothing_left() {
    let runs = runs();
    let primary = Scripted::new("gpu0", &[FAIL_NOW], &runs);
    let replica = Scripted::new("gpu1", &[Run::Fail(secs(2))], &runs);
    let policy = RecoveryPolicy {
        strategy: RecoveryStrategy::UseReplica,
        escalation: None,
        ..chapter_policy()
    };
    let mut supervisor = Supervisor::new(
        "graph/pagerank",
        primary,
        policy,
        RestartIntensity::default(),
    )
    .with_replica(replica);
    assert_eq!(supervisor.run().await, Ok(SupervisorExit::Exhausted));
    assert_eq!(taken(&runs), vec![("gpu0", secs(0)), ("gpu1", secs(0))]);
    assert_eq!(supervisor.log().counts().use_replica, 2);
}

#[tokio::test(start_paused = true)]
async fn a_missing_fallback_kernel_is_refused_before_anything_runs() {
    let runs = runs();
    let primary = Scripted::new("gpu", &[FAIL_NOW], &runs);
    let policy = RecoveryPolicy {
        escalation: Some(RecoveryStrategy::Degrade),
        ..chapter_policy()
    };
    let mut supervisor = Supervisor::new("gpu", primary, policy, RestartIntensity::default());
    assert_eq!(
        supervisor.run().await,
        Err(SupervisorError::MissingKernel {
            strategy: RecoveryStrategy::Degrade,
            slot: KernelSlot::Degraded,
        })
    );
    assert!(taken(&runs).is_empty());
}

#[tokio::test(start_paused = true)]
async fn a_healthy_window_starts_the_restart_budget_afresh() {
    let t0 = rustkernel_tokio::clock::now();
    let runs = runs();
    // Fails at 0; restarted at 5, runs 100 s, fails at 105; restarted at 110.
    let kernel = Scripted::new("gpu", &[FAIL_NOW, Run::Fail(secs(100))], &runs);
    let policy = RecoveryPolicy {
        max_restarts: 1,
        ..chapter_policy()
    };
    let mut supervisor = Supervisor::new("gpu", kernel, policy, RestartIntensity::default());
    assert_eq!(supervisor.run().await, Ok(SupervisorExit::Completed));
    let events = supervisor.log().events();
    assert!(events.contains(&SupervisorEvent::Recovered {
        at: (t0 + secs(65)),
        recovered: Recovered::Budget,
    }));
    // The second restart is attempt 1 again: the budget started afresh.
    assert_eq!(
        restarts(&events),
        vec![((t0 + secs(5)), Some(1)), ((t0 + secs(110)), Some(1))]
    );
}

#[tokio::test(start_paused = true)]
async fn restarts_reset_the_health_probe_of_the_kernel() {
    let probe = HealthProbe::new(HealthProbeConfig::default());
    probe.register(
        "graph/pagerank",
        rustkernel_tokio::health::check_fn(|| async { HealthCheckResult::healthy() }),
    );
    probe.check("graph/pagerank").await.expect("registered");
    assert!(probe.is_ready());
    let runs = runs();
    let kernel = Scripted::new("gpu", &[FAIL_NOW, Run::Complete(secs(1))], &runs);
    let mut supervisor =
        Supervisor::new("gpu", kernel, chapter_policy(), RestartIntensity::default())
            .with_health_probe(probe.clone(), "graph/pagerank");
    assert_eq!(supervisor.run().await, Ok(SupervisorExit::Completed));
    assert!(!probe.is_ready(), "the restarted kernel is judged afresh");
}

// ---------------------------------------------------------------------------------------------
// Checkpoints

/// An iterative kernel that saves a checkpoint after each step and fails once at `fail_at`;
/// a restart loses its state, as a GPU reset would.
struct Iterative<S> {
    progress: u64,
    store: S,
    fail_at: Option<u64>,
    finish_at: u64,
    restored: Vec<u64>,
}

impl<S: CheckpointStore> SupervisedKernel for Iterative<S> {
    type Error = String;

    async fn run(&mut self) -> Result<(), String> {
        loop {
            if self.progress == self.finish_at {
                return Ok(());
            }
            tokio::time::sleep(secs(1)).await;
            self.progress += 1;
            self.store
                .save(self.progress, &self.progress)
                .await
                .map_err(|error| error.to_string())?;
            if self.fail_at == Some(self.progress) {
                self.fail_at = None;
                return Err("device lost".into());
            }
        }
    }

    async fn restart(&mut self) -> Result<(), String> {
        self.progress = 0;
        Ok(())
    }
}

impl<S: CheckpointStore> CheckpointableKernel for Iterative<S> {
    type Checkpoint = u64;

    async fn checkpoint(&self) -> KernelResult<u64> {
        Ok(self.progress)
    }

    async fn restore(&mut self, checkpoint: u64) -> KernelResult<()> {
        if checkpoint > self.finish_at {
            return Err(KernelError::new(
                rustkernel_core::error::ErrorKind::InvalidInput,
            ));
        }
        self.progress = checkpoint;
        self.restored.push(checkpoint);
        Ok(())
    }
}

#[tokio::test(start_paused = true)]
async fn a_restarted_kernel_resumes_from_its_latest_checkpoint() {
    let t0 = rustkernel_tokio::clock::now();
    let store = MemoryCheckpointStore::try_new(1, 3).expect("valid");
    let kernel = Iterative {
        progress: 0,
        store: store.clone(),
        fail_at: Some(4),
        finish_at: 10,
        restored: Vec::new(),
    };
    let mut supervisor = Supervisor::new(
        "iter",
        kernel,
        chapter_policy(),
        RestartIntensity::default(),
    )
    .with_checkpoints(store.clone());
    let started = tokio::time::Instant::now();
    assert_eq!(supervisor.run().await, Ok(SupervisorExit::Completed));

    let kernel = supervisor.kernel(KernelSlot::Primary).expect("primary");
    assert_eq!(kernel.progress, 10);
    assert_eq!(kernel.restored, vec![4], "resumed at step 4, not from 0");
    // 4 steps, 5 s restart delay, 6 more steps: nothing was recomputed.
    assert_eq!(started.elapsed(), secs(15));
    assert!(
        supervisor
            .log()
            .events()
            .contains(&SupervisorEvent::Restored {
                at: (t0 + secs(9)),
                slot: KernelSlot::Primary,
                sequence: 4,
            })
    );
    assert_eq!(store.sequences(), vec![8, 9, 10]);
}

#[tokio::test(start_paused = true)]
async fn a_new_process_resumes_from_the_newest_good_checkpoint_on_disk() {
    let dir = std::env::temp_dir().join(format!("rk-supervisor-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&dir);
    let store = FileCheckpointStore::open(&dir, 2, 3).await.expect("opens");
    // A previous process saved steps 1..=3 and died while step 3 was being damaged.
    for step in 1..=3u64 {
        store.save(step, &step).await.expect("saved");
    }
    let newest = store.path_of(3);
    let mut bytes = std::fs::read(&newest).expect("reads");
    bytes.truncate(bytes.len() - 1);
    std::fs::write(&newest, bytes).expect("writes");

    let kernel = Iterative {
        progress: 0,
        store: store.clone(),
        fail_at: None,
        finish_at: 5,
        restored: Vec::new(),
    };
    let mut supervisor = Supervisor::new(
        "iter",
        kernel,
        chapter_policy(),
        RestartIntensity::default(),
    )
    .with_checkpoints(store.clone());
    assert_eq!(supervisor.run().await, Ok(SupervisorExit::Completed));
    let kernel = supervisor.kernel(KernelSlot::Primary).expect("primary");
    assert_eq!(kernel.restored, vec![2]);
    assert_eq!(kernel.progress, 5);
    let latest = store.load_latest::<u64>().await.expect("ok").expect("some");
    assert_eq!((latest.sequence, latest.value), (5, 5));
    std::fs::remove_dir_all(&dir).expect("cleans up");
}

#[tokio::test(start_paused = true)]
async fn a_failed_restore_is_logged_and_the_kernel_runs_from_its_own_state() {
    let store = MemoryCheckpointStore::try_new(1, 3).expect("valid");
    // A checkpoint this kernel refuses (beyond its end).
    store.save(7, &99u64).await.expect("saved");
    let kernel = Iterative {
        progress: 0,
        store: store.clone(),
        fail_at: None,
        finish_at: 2,
        restored: Vec::new(),
    };
    let mut supervisor = Supervisor::new(
        "iter",
        kernel,
        chapter_policy(),
        RestartIntensity::default(),
    )
    .with_checkpoints(store);
    assert_eq!(supervisor.run().await, Ok(SupervisorExit::Completed));
    assert!(
        supervisor
            .log()
            .events()
            .iter()
            .any(|event| matches!(event, SupervisorEvent::RestoreFailed { .. }))
    );
    assert_eq!(
        supervisor
            .kernel(KernelSlot::Primary)
            .expect("primary")
            .progress,
        2
    );
}

// ---------------------------------------------------------------------------------------------
// Panics

/// A kernel with a bug: its `run` indexes an empty `Vec`, which panics.
struct Buggy {
    data: Vec<u32>,
    runs: u32,
}

impl SupervisedKernel for Buggy {
    type Error = String;

    #[allow(clippy::indexing_slicing, reason = "the bug under test")]
    async fn run(&mut self) -> Result<(), String> {
        self.runs += 1;
        let first = self.data[0];
        std::hint::black_box(first);
        Ok(())
    }
}

/// A panicking kernel is a failed kernel, as for an OTP supervisor: the supervisor survives,
/// restarts it under the policy and escalates past the restart intensity.
#[tokio::test(start_paused = true)]
async fn a_panicking_kernel_is_restarted_under_the_policy_then_escalates() {
    let (notifier, mut alerts) = mpsc::unbounded_channel();
    let mut supervisor = Supervisor::new(
        "buggy",
        Buggy {
            data: Vec::new(),
            runs: 0,
        },
        chapter_policy(),
        RestartIntensity::default(),
    )
    .with_notifier(notifier);
    let log = supervisor.log();
    let task = tokio::spawn(async move {
        let exit = supervisor.run().await;
        (exit, supervisor)
    });
    let (exit, supervisor) = task.await.expect("the supervisor survives a kernel panic");
    assert_eq!(exit, Ok(SupervisorExit::OperatorNotified));
    assert_eq!(
        supervisor
            .kernel(KernelSlot::Primary)
            .expect("primary")
            .runs,
        4,
        "the first run and three restarts"
    );
    let counts = log.counts();
    assert_eq!((counts.restart, counts.escalate), (3, 1));
    // The panic is reported typed, as its own variant, with its message.
    let panic = KernelFailure::Panic("index out of bounds: the len is 0 but the index is 0".into());
    let failures: Vec<KernelFailure<String>> = log
        .events()
        .into_iter()
        .filter_map(|event| match event {
            SupervisorEvent::Failed { error, .. } => Some(error),
            _ => None,
        })
        .collect();
    assert_eq!(failures, vec![panic.clone(); 4]);
    let alert = alerts.try_recv().expect("the operator was alerted");
    assert_eq!(alert.error, panic);
    assert!(alert.error.is_panic() && alert.error.error().is_none());
}

/// A kernel whose `restart` panics: that restart is another failure, counted by the policy.
struct PanicsOnRestart;

impl SupervisedKernel for PanicsOnRestart {
    type Error = String;

    async fn run(&mut self) -> Result<(), String> {
        Err("fault".into())
    }

    #[allow(clippy::panic, reason = "the panic under test")]
    async fn restart(&mut self) -> Result<(), String> {
        panic!("reset line stuck")
    }
}

#[tokio::test(start_paused = true)]
async fn a_panicking_restart_is_another_failure() {
    let policy = RecoveryPolicy {
        escalation: None,
        ..chapter_policy()
    };
    let mut supervisor = Supervisor::new("x", PanicsOnRestart, policy, RestartIntensity::default());
    assert_eq!(supervisor.run().await, Ok(SupervisorExit::GaveUp));
    let events = supervisor.log().events();
    let failures: Vec<String> = events
        .iter()
        .filter_map(|event| match event {
            SupervisorEvent::Failed { error, .. } => Some(error.to_string()),
            _ => None,
        })
        .collect();
    assert_eq!(
        failures,
        vec![
            "fault",
            "the kernel panicked: reset line stuck",
            "the kernel panicked: reset line stuck",
            "the kernel panicked: reset line stuck",
        ]
    );
}

// ---------------------------------------------------------------------------------------------
// Typed errors

/// A kernel error that is neither `Clone` nor a string.
#[derive(Debug, PartialEq, Eq)]
struct DeviceLost {
    device: u32,
}

impl std::fmt::Display for DeviceLost {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "device {} lost", self.device)
    }
}

impl std::error::Error for DeviceLost {}

struct Typed;

impl SupervisedKernel for Typed {
    type Error = DeviceLost;

    async fn run(&mut self) -> Result<(), DeviceLost> {
        Err(DeviceLost { device: 7 })
    }
}

#[tokio::test(start_paused = true)]
async fn kernel_errors_stay_typed_in_events_and_alerts() {
    let (notifier, mut alerts) = mpsc::unbounded_channel::<OperatorAlert<DeviceLost>>();
    let policy = RecoveryPolicy {
        max_restarts: 1,
        ..chapter_policy()
    };
    let mut supervisor = Supervisor::new("typed", Typed, policy, RestartIntensity::default())
        .with_notifier(notifier);
    assert_eq!(supervisor.run().await, Ok(SupervisorExit::OperatorNotified));
    let alert = alerts.try_recv().expect("alerted");
    assert_eq!(alert.error.error(), Some(&DeviceLost { device: 7 }));
    let source = std::error::Error::source(&alert.error).expect("the kernel's error is the source");
    assert_eq!(source.to_string(), "device 7 lost");
    assert!(supervisor.log().events().iter().any(|event| matches!(
        event,
        SupervisorEvent::Failed { error: KernelFailure::Error(error), .. } if **error == DeviceLost { device: 7 }
    )));
    let json = serde_json::to_value(&alert).expect("serializes");
    assert_eq!(
        json.get("error"),
        Some(&serde_json::json!({ "kind": "error", "message": "device 7 lost" }))
    );
}

// ---------------------------------------------------------------------------------------------
// Escalation levels

/// "Restart up to 3 times, then degrade; while degraded, restart once, then notify an
/// operator": the ladder of the core, carried out on tokio.
#[tokio::test(start_paused = true)]
async fn a_ladder_restarts_degrades_restarts_the_degraded_kernel_then_notifies() {
    use rustkernel_core::resilience::{Recovery, RecoveryLadder};

    let runs = runs();
    let primary = Scripted::new("gpu", &[FAIL_NOW; 10], &runs);
    let degraded = Scripted::new("cpu", &[Run::Fail(secs(1)), Run::Fail(secs(2))], &runs);
    let level = |max_restarts, delay, escalation| {
        Recovery::try_new(
            RecoveryPolicy {
                strategy: RecoveryStrategy::RestartKernel,
                max_restarts,
                restart_delay: secs(delay),
                escalation: Some(escalation),
            },
            RestartIntensity::default(),
        )
        .expect("valid policy")
    };
    let ladder = RecoveryLadder::new([
        level(3, 5, RecoveryStrategy::Degrade),
        level(1, 10, RecoveryStrategy::NotifyOperator),
    ]);
    let (notifier, mut alerts) = mpsc::unbounded_channel();
    let mut supervisor = Supervisor::with_ladder("graph/pagerank", primary, ladder)
        .with_degraded(degraded)
        .with_notifier(notifier);
    assert_eq!(supervisor.run().await, Ok(SupervisorExit::OperatorNotified));
    // gpu at 0, 5, 10, 15; fails at 15 and degrades; cpu fails at 16, restarts at 26, fails at
    // 28: level 1's one restart is used, it notifies.
    assert_eq!(
        taken(&runs),
        vec![
            ("gpu", secs(0)),
            ("gpu", secs(5)),
            ("gpu", secs(10)),
            ("gpu", secs(15)),
            ("cpu", secs(15)),
            ("cpu", secs(26)),
        ]
    );
    assert_eq!(supervisor.active_slot(), KernelSlot::Degraded);
    assert_eq!(supervisor.ladder().level(), 1);
    let alert = alerts.try_recv().expect("alerted");
    assert_eq!(
        (alert.level, alert.slot, alert.action, alert.restarts),
        (
            1,
            KernelSlot::Degraded,
            RecoveryAction::Escalate(RecoveryStrategy::NotifyOperator),
            1
        )
    );
    let decided: Vec<usize> = supervisor
        .log()
        .events()
        .iter()
        .filter_map(|event| match event {
            SupervisorEvent::Decided { level, .. } => Some(*level),
            _ => None,
        })
        .collect();
    assert_eq!(decided, vec![0, 0, 0, 0, 1, 1]);
}

/// Restart 3 times in 60 s, then degrade; the degraded kernel on probation for a window.
fn probation_ladder() -> rustkernel_core::resilience::RecoveryLadder<2> {
    use rustkernel_core::resilience::{Recovery, RecoveryLadder};
    let level = |max_restarts, delay, escalation| {
        Recovery::try_new(
            RecoveryPolicy {
                strategy: RecoveryStrategy::RestartKernel,
                max_restarts,
                restart_delay: secs(delay),
                escalation: Some(escalation),
            },
            RestartIntensity {
                window: secs(60),
                backoff: None,
            },
        )
        .expect("valid policy")
    };
    RecoveryLadder::new([
        level(3, 5, RecoveryStrategy::Degrade),
        level(1, 10, RecoveryStrategy::NotifyOperator),
    ])
}

/// With fail-back, the end of the escalation (a quiet window on the degraded kernel) brings
/// the primary back; without it, the degraded kernel stays until it returns. An observer sees
/// every event the log keeps, in order, as it happens.
#[tokio::test(start_paused = true)]
async fn fail_back_returns_to_the_primary_after_a_quiet_window() {
    let runs = runs();
    let primary = Scripted::new(
        "gpu",
        &[
            FAIL_NOW,
            FAIL_NOW,
            FAIL_NOW,
            FAIL_NOW,
            Run::Complete(secs(1)),
        ],
        &runs,
    );
    let degraded = Scripted::new("cpu", &[Run::Complete(secs(1000))], &runs);
    let seen = Arc::new(Mutex::new(Vec::new()));
    let observed = Arc::clone(&seen);
    let mut supervisor = Supervisor::with_ladder("gpu0", primary, probation_ladder())
        .with_degraded(degraded)
        .with_fail_back()
        .with_observer(move |event| observed.lock().expect("lock").push(event.clone()));
    assert_eq!(supervisor.run().await, Ok(SupervisorExit::Completed));
    // gpu fails at 0, 5, 10, 15 and degrades at 15; a window (60 s) later both levels are
    // quiet: the escalation ends and the gpu runs again, and completes.
    assert_eq!(
        taken(&runs),
        vec![
            ("gpu", secs(0)),
            ("gpu", secs(5)),
            ("gpu", secs(10)),
            ("gpu", secs(15)),
            ("cpu", secs(15)),
            ("gpu", secs(75)),
        ]
    );
    assert_eq!(supervisor.active_slot(), KernelSlot::Primary);
    assert_eq!(supervisor.ladder().level(), 0);
    let events = supervisor.log().events();
    assert!(events.iter().any(|event| matches!(
        event,
        SupervisorEvent::Switched {
            from: KernelSlot::Degraded,
            to: KernelSlot::Primary,
            ..
        }
    )));
    assert!(events.iter().any(|event| matches!(
        event,
        SupervisorEvent::Recovered {
            recovered: Recovered::FromEscalation(Escalation::To(RecoveryStrategy::Degrade)),
            ..
        }
    )));
    assert_eq!(*seen.lock().expect("lock"), events);

    // The same script without fail-back: the degraded kernel runs until it completes.
    let runs = self::runs();
    let primary = Scripted::new("gpu", &[FAIL_NOW; 4], &runs);
    let degraded = Scripted::new("cpu", &[Run::Complete(secs(1000))], &runs);
    let mut supervisor =
        Supervisor::with_ladder("gpu0", primary, probation_ladder()).with_degraded(degraded);
    assert_eq!(supervisor.run().await, Ok(SupervisorExit::Completed));
    assert_eq!(taken(&runs).last(), Some(&("cpu", secs(15))));
    assert_eq!(supervisor.active_slot(), KernelSlot::Degraded);
}

/// A kernel that returns when told to stop through its own channel, or ignores it.
struct Stoppable {
    stop: tokio::sync::watch::Receiver<bool>,
    obeys: bool,
    runs: u32,
}

impl SupervisedKernel for Stoppable {
    type Error = String;

    async fn run(&mut self) -> Result<(), String> {
        self.runs += 1;
        if self.runs == 1 {
            return Err("first run fails".into());
        }
        if self.obeys {
            let _ = self.stop.wait_for(|stop| *stop).await;
            tokio::time::sleep(Duration::from_millis(100)).await; // a graceful exit takes time
            return Ok(());
        }
        std::future::pending().await
    }
}

/// `run_until`: a stop during a restart's delay starts nothing more; a running kernel gets its
/// grace, and one that does not return in it is dropped.
#[tokio::test(start_paused = true)]
async fn run_until_stops_between_runs_at_once_and_gives_a_running_kernel_its_grace() {
    let (tell, stop) = tokio::sync::watch::channel(false);
    let signal = |mut stop: tokio::sync::watch::Receiver<bool>| async move {
        let _ = stop.wait_for(|stop| *stop).await;
    };
    let policy = chapter_policy(); // restart after 5 s
    let intensity = RestartIntensity::default();

    // Stopped 1 s into the 5 s restart delay: no restart.
    let kernel = Stoppable {
        stop: stop.clone(),
        obeys: true,
        runs: 0,
    };
    let mut supervisor = Supervisor::new("k", kernel, policy, intensity);
    let started = tokio::time::Instant::now();
    let teller = tell.clone();
    tokio::spawn(async move {
        tokio::time::sleep(secs(1)).await;
        let _ = teller.send(true);
    });
    let exit = supervisor.run_until(signal(stop.clone()), secs(2)).await;
    assert_eq!(exit, Ok(SupervisorExit::Stopped));
    assert_eq!(started.elapsed(), secs(1));
    assert_eq!(
        supervisor.kernel(KernelSlot::Primary).map(|k| k.runs),
        Some(1)
    );
    assert!(restarts(&supervisor.log().events()).is_empty());

    // Stopped while running: a kernel that obeys completes within the grace.
    let _ = tell.send(false);
    let kernel = Stoppable {
        stop: stop.clone(),
        obeys: true,
        runs: 0,
    };
    let mut supervisor = Supervisor::new("k", kernel, policy, intensity);
    let teller = tell.clone();
    tokio::spawn(async move {
        tokio::time::sleep(secs(6)).await;
        let _ = teller.send(true);
    });
    let started = tokio::time::Instant::now();
    let exit = supervisor.run_until(signal(stop.clone()), secs(2)).await;
    assert_eq!(exit, Ok(SupervisorExit::Completed));
    assert_eq!(started.elapsed(), secs(6) + Duration::from_millis(100));

    // One that ignores it is dropped when the grace ends.
    let _ = tell.send(false);
    let kernel = Stoppable {
        stop: stop.clone(),
        obeys: false,
        runs: 0,
    };
    let mut supervisor = Supervisor::new("k", kernel, policy, intensity);
    let teller = tell.clone();
    tokio::spawn(async move {
        tokio::time::sleep(secs(6)).await;
        let _ = teller.send(true);
    });
    let started = tokio::time::Instant::now();
    let exit = supervisor.run_until(signal(stop.clone()), secs(2)).await;
    assert_eq!(exit, Ok(SupervisorExit::Stopped));
    assert_eq!(started.elapsed(), secs(8));
}

/// Every level's strategies and escalations need their kernels before anything runs.
#[tokio::test(start_paused = true)]
async fn a_ladder_needing_a_missing_kernel_is_refused() {
    use rustkernel_core::resilience::{Recovery, RecoveryLadder};

    let runs = runs();
    let restarts: Recovery = Recovery::new(chapter_policy(), RestartIntensity::default());
    let failover: Recovery = Recovery::new(
        RecoveryPolicy {
            strategy: RecoveryStrategy::Failover,
            ..chapter_policy()
        },
        RestartIntensity::default(),
    );
    let mut supervisor = Supervisor::with_ladder(
        "x",
        Scripted::new("gpu", &[FAIL_NOW], &runs),
        RecoveryLadder::new([restarts, failover]),
    );
    assert_eq!(
        supervisor.run().await,
        Err(SupervisorError::MissingKernel {
            strategy: RecoveryStrategy::Failover,
            slot: KernelSlot::Failover,
        })
    );
}

// ---------------------------------------------------------------------------------------------
// Validation

/// `ResilienceConfig::validate` accepts exactly the recovery settings the supervisor accepts,
/// and a `max_restarts` of `u32::MAX` is refused (at once: the capacity is checked first).
#[test]
fn config_validation_agrees_with_the_supervisor() {
    use rustkernel_core::error::{ConfigError, ConfigField};
    use rustkernel_core::resilience::ResilienceConfig;

    let base = ResilienceConfig::production();
    let restart = |max_restarts, delay_ms| RecoveryPolicy {
        max_restarts,
        restart_delay: Duration::from_millis(delay_ms),
        ..chapter_policy()
    };
    let window = |s| RestartIntensity {
        window: secs(s),
        backoff: None,
    };
    let growing = |s| RestartIntensity {
        window: secs(s),
        backoff: Some(RestartBackoff {
            multiplier: 2.0,
            max: secs(60),
        }),
    };
    let cases = [
        (restart(3, 5_000), window(60)),
        (restart(3, 5_000), window(15)),
        (restart(3, 5_000), growing(35)),
        (restart(3, 5_000), growing(36)),
        (restart(8, 0), window(1)),
        (restart(9, 0), window(1)),
        (restart(9, 1_000), window(3_600)),
        (restart(u32::MAX, 0), window(60)),
        (restart(u32::MAX, 5_000), growing(u64::MAX)),
        (restart(0, 5_000), window(60)),
        (restart(2, 0), growing(60)),
        (
            RecoveryPolicy {
                strategy: RecoveryStrategy::Degrade,
                max_restarts: u32::MAX,
                ..chapter_policy()
            },
            window(1),
        ),
    ];
    for (recovery, restart_intensity) in cases {
        let config = ResilienceConfig {
            recovery,
            restart_intensity,
            ..base
        };
        let supervisor = Supervisor::try_new(
            "x",
            Scripted::new("gpu", &[], &runs()),
            recovery,
            restart_intensity,
        );
        assert_eq!(
            config.validate().err(),
            supervisor.err(),
            "{recovery:?} {restart_intensity:?}"
        );
    }
    let huge = ResilienceConfig {
        recovery: restart(u32::MAX, 0),
        restart_intensity: window(60),
        ..base
    };
    assert_eq!(
        huge.validate(),
        Err(ConfigError::TooLarge {
            field: ConfigField::MaxRestarts,
            max: 8,
        })
    );
}
