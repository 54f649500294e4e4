//! A long-running kernel under the tokio supervisor: a PageRank job that checkpoints to disk
//! and crashes (an error, then a panic) resumes from its last good checkpoint; a GPU kernel
//! that keeps failing is degraded to its CPU implementation by an escalation ladder; a kernel
//! that cannot recover pages an operator; and a service shuts its supervisor down.
//!
//! ```text
//! cargo run -p rustkernel-tokio --example supervised_worker
//! ```
//!
//! Runs on the real clock in about a second; its checkpoints go to a temporary directory that
//! it removes at the end.

use std::error::Error;
use std::fmt;
use std::sync::Arc;
use std::sync::atomic::{AtomicU32, Ordering};
use std::time::Duration;

use rustkernel_core::resilience::Recovery;
use rustkernel_core::traits::KernelError;
use rustkernel_tokio::checkpoint_store::{SkipReason, SkippedCheckpoint, StoreOp};
use rustkernel_tokio::resilience::{
    CheckpointStore, CheckpointStoreError, CheckpointableKernel, FileCheckpointStore,
    HealthCheckResult, HealthProbe, HealthProbeConfig, KernelFailure, KernelSlot, LoadedCheckpoint,
    MemoryCheckpointStore, Notifier, OperatorAlert, RecoveryAction, RecoveryLadder, RecoveryPolicy,
    RecoveryStrategy, RestartIntensity, SupervisedKernel, Supervisor, SupervisorExit, check_fn,
};
use rustkernel_tokio::supervisor::{LOG_CAPACITY, SupervisorError, SupervisorEvent};
use serde::{Deserialize, Serialize};
use tokio::sync::mpsc;

/// The job's error: what a GPU runtime reports.
#[derive(Debug, Clone, PartialEq)]
struct DeviceError(&'static str);

impl fmt::Display for DeviceError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.0)
    }
}

/// What a checkpoint holds: how far the iteration got, and the ranks so far.
#[derive(Clone, Debug, Default, Serialize, Deserialize, PartialEq)]
struct Progress {
    step: u64,
    ranks: Vec<f32>,
}

/// PageRank over a small graph, 20 steps, a checkpoint every 5. It fails once at step 7 and
/// panics once at step 13, as a flaky device would.
struct PageRankJob<S> {
    store: S,
    progress: Progress,
    failed_at_7: bool,
    panicked_at_13: bool,
    steps_run: u32,
}

impl<S: CheckpointStore> PageRankJob<S> {
    fn new(store: S) -> Self {
        Self {
            store,
            progress: Progress {
                step: 0,
                ranks: vec![0.25; 4],
            },
            failed_at_7: false,
            panicked_at_13: false,
            steps_run: 0,
        }
    }

    /// One power iteration over the graph 0 -> 1, 0 -> 2, 1 -> 2, 2 -> 0, 3 -> 2.
    fn iterate(&mut self) {
        const EDGES: [(usize, usize); 5] = [(0, 1), (0, 2), (1, 2), (2, 0), (3, 2)];
        const OUT_DEGREE: [f32; 4] = [2.0, 1.0, 1.0, 1.0];
        let mut next = [0.15 / 4.0; 4];
        for (from, to) in EDGES {
            let (Some(rank), Some(degree), Some(slot)) = (
                self.progress.ranks.get(from),
                OUT_DEGREE.get(from),
                next.get_mut(to),
            ) else {
                continue;
            };
            *slot += 0.85 * rank / degree;
        }
        self.progress.ranks = next.to_vec();
        self.progress.step += 1;
        self.steps_run += 1;
    }
}

impl<S: CheckpointStore> SupervisedKernel for PageRankJob<S> {
    type Error = DeviceError;

    async fn run(&mut self) -> Result<(), DeviceError> {
        while self.progress.step < 20 {
            tokio::time::sleep(Duration::from_millis(1)).await;
            self.iterate();
            let step = self.progress.step;
            if step.is_multiple_of(5) {
                self.store
                    .save(step, &self.progress)
                    .await
                    .map_err(|_| DeviceError("checkpoint write failed"))?;
            }
            if step == 7 && !self.failed_at_7 {
                self.failed_at_7 = true;
                return Err(DeviceError("CUDA_ERROR_LAUNCH_FAILED"));
            }
            if step == 13 && !self.panicked_at_13 {
                self.panicked_at_13 = true;
                #[expect(clippy::panic, reason = "the scripted fault: a kernel that panics")]
                {
                    panic!("the ranks of step 13 are gone");
                }
            }
        }
        Ok(())
    }

    async fn restart(&mut self) -> Result<(), DeviceError> {
        println!("    (device reset before the restart)");
        Ok(())
    }
}

impl<S: CheckpointStore> CheckpointableKernel for PageRankJob<S> {
    type Checkpoint = Progress;

    async fn checkpoint(&self) -> Result<Progress, KernelError> {
        Ok(self.progress.clone())
    }

    async fn restore(&mut self, checkpoint: Progress) -> Result<(), KernelError> {
        println!("    resuming from step {}", checkpoint.step);
        self.progress = checkpoint;
        Ok(())
    }
}

/// A tiled matrix multiply with a GPU and a CPU implementation. The GPU fails at tile 3 every
/// time (a device with a bad memory bank); the CPU path is slower and works. Both save their
/// progress, so a switch resumes where the other stopped.
struct MatMul {
    device: Device,
    store: Option<MemoryCheckpointStore>,
    tiles_done: u64,
    launches: Arc<AtomicU32>,
}

#[derive(Clone, Copy, Debug, PartialEq)]
enum Device {
    Gpu,
    Cpu,
}

impl MatMul {
    fn new(device: Device) -> Self {
        Self {
            device,
            store: None,
            tiles_done: 0,
            launches: Arc::new(AtomicU32::new(0)),
        }
    }

    fn saving_to(mut self, store: &MemoryCheckpointStore) -> Self {
        self.store = Some(store.clone());
        self
    }
}

impl SupervisedKernel for MatMul {
    type Error = DeviceError;

    async fn run(&mut self) -> Result<(), DeviceError> {
        if self.device == Device::Gpu {
            self.launches.fetch_add(1, Ordering::Relaxed);
        }
        while self.tiles_done < 8 {
            tokio::time::sleep(Duration::from_millis(1)).await;
            if self.device == Device::Gpu && self.tiles_done >= 3 {
                return Err(DeviceError("CUDA_ERROR_ECC_UNCORRECTABLE"));
            }
            self.tiles_done += 1;
            if let Some(store) = &self.store {
                store
                    .save(self.tiles_done, &self.tiles_done)
                    .await
                    .map_err(|_| DeviceError("checkpoint failed"))?;
            }
        }
        Ok(())
    }
}

impl CheckpointableKernel for MatMul {
    type Checkpoint = u64;

    async fn checkpoint(&self) -> Result<u64, KernelError> {
        Ok(self.tiles_done)
    }

    async fn restore(&mut self, tiles_done: u64) -> Result<(), KernelError> {
        self.tiles_done = tiles_done;
        Ok(())
    }
}

/// Pages an operator: here, prints the page and forwards it to the on-call channel.
struct Pager {
    on_call: mpsc::UnboundedSender<String>,
}

impl Notifier<DeviceError> for Pager {
    async fn notify(&self, alert: &OperatorAlert<DeviceError>) {
        let cause = match &alert.error {
            failure if failure.is_panic() => format!("panic: {failure}"),
            failure => failure
                .error()
                .map_or_else(|| failure.to_string(), ToString::to_string),
        };
        let page = format!(
            "PAGE {}: {} kernel failed ({cause}) after {} restart(s) at level {}; decided {:?}",
            alert.kernel, alert.slot, alert.restarts, alert.level, alert.action
        );
        let _ = self.on_call.send(page);
    }
}

fn print_event(event: &SupervisorEvent<DeviceError>) {
    let line = match event {
        SupervisorEvent::Started { slot, .. } => format!("started the {slot} kernel"),
        SupervisorEvent::Failed { slot, error, .. } => format!("{slot} failed: {error}"),
        SupervisorEvent::Decided { level, action, .. } => match action {
            RecoveryAction::Restart { attempt, .. } => {
                format!("level {level}: restart, attempt {attempt}")
            }
            other => format!("level {level}: {other}"),
        },
        SupervisorEvent::Restarted { slot, .. } => format!("restarted the {slot} kernel"),
        SupervisorEvent::Restored { sequence, .. } => format!("restored checkpoint {sequence}"),
        SupervisorEvent::Switched { from, to, .. } => format!("switched {from} -> {to}"),
        SupervisorEvent::Stopped { exit, .. } => format!("stopped: {exit}"),
        other => format!("{other:?}"),
    };
    println!("  supervisor: {line}");
}

#[tokio::main]
async fn main() -> Result<(), Box<dyn Error>> {
    let dir = std::env::temp_dir().join(format!("rustkernel-supervised-{}", std::process::id()));
    let result = run(&dir).await;
    let _ = std::fs::remove_dir_all(&dir);
    result
}

async fn run(dir: &std::path::Path) -> Result<(), Box<dyn Error>> {
    // The supervisor catches a kernel's panic; print it as one line instead of a backtrace.
    std::panic::set_hook(Box::new(|info| {
        let message = info.payload().downcast_ref::<&str>().copied();
        println!("    (panic: {})", message.unwrap_or("a kernel panicked"));
    }));
    // 1. The job: restart on failure (20 ms later), at most 3 times a minute, then page.
    let store = Arc::new(FileCheckpointStore::open(dir, 0x00C0_FFEE, 3).await?);
    println!(
        "checkpoints of kernel {:08x} in {} (keeping {}), files like {}",
        store.kernel_id(),
        store.dir().display(),
        store.keep_last(),
        FileCheckpointStore::file_name(store.kernel_id(), 5)
    );
    let probe = HealthProbe::new(HealthProbeConfig::default());
    probe.register(
        "graph/pagerank",
        check_fn(|| async { HealthCheckResult::healthy() }),
    );
    let (on_call, mut pages) = mpsc::unbounded_channel();
    let policy = RecoveryPolicy {
        strategy: RecoveryStrategy::RestartKernel,
        max_restarts: 3,
        restart_delay: Duration::from_millis(20),
        escalation: Some(RecoveryStrategy::NotifyOperator),
    };
    let broken_policy = RecoveryPolicy {
        max_restarts: 0,
        ..policy
    };
    if let Err(error) = Supervisor::try_new(
        "misconfigured",
        PageRankJob::new(Arc::clone(&store)),
        broken_policy,
        RestartIntensity::default(),
    ) {
        println!("policy rejected: {error}");
    }
    let mut supervisor = Supervisor::new(
        "graph/pagerank",
        PageRankJob::new(Arc::clone(&store)),
        policy,
        RestartIntensity::default(),
    )
    .with_checkpoints(Arc::clone(&store))
    .with_health_probe(probe.clone(), "graph/pagerank")
    .with_notifier(Pager {
        on_call: on_call.clone(),
    })
    .with_observer(print_event);
    let exit = supervisor.run().await?;
    let job = supervisor.kernel(KernelSlot::Primary).ok_or("no primary")?;
    println!(
        "job {}: {exit} with {} steps run for 20 (ranks {:.3?}); {} restarts, {} left in the window",
        supervisor.name(),
        job.steps_run,
        job.progress.ranks,
        supervisor.log().counts().restart,
        supervisor
            .recovery()
            .remaining_restarts(rustkernel_tokio::clock::now()),
    );
    println!(
        "checkpoints on disk: {:?}; its health component, reset at each restart: {:?}",
        store.sequences().await?,
        probe.status("graph/pagerank")
    );

    // A torn write (the machine lost power mid-save): restore skips it for the newest good one.
    std::fs::write(store.path_of(25), b"half a frame")?;
    let latest: Option<LoadedCheckpoint<Progress>> = store.load_latest().await?;
    if let Some(latest) = latest {
        for SkippedCheckpoint { sequence, reason } in &latest.skipped {
            let why = match reason {
                SkipReason::Codec(error) => format!("corrupt ({error})"),
                other => other.to_string(),
            };
            println!("restore skipped checkpoint {sequence}: {why}");
        }
        println!(
            "restored checkpoint {} at step {}",
            latest.sequence, latest.value.step
        );
    }
    println!(
        "other processes are kept out by {}",
        FileCheckpointStore::lock_file_name(store.kernel_id())
    );
    match FileCheckpointStore::open(dir, 1, 0).await {
        Err(CheckpointStoreError::KeepLastZero) => println!("keep_last 0 refused"),
        other => println!("keep_last 0: {other:?}"),
    }
    let not_a_dir = dir.join("not-a-directory");
    std::fs::write(&not_a_dir, b"")?;
    if let Err(CheckpointStoreError::Io { op, kind }) =
        FileCheckpointStore::open(not_a_dir.join("checkpoints"), 1, 1).await
    {
        println!(
            "a store under a file: {} failed ({kind}); {}",
            op.as_str(),
            if op == StoreOp::CreateDir {
                "the directory could not be made"
            } else {
                "another step failed"
            }
        );
    }

    // 2. A GPU kernel: restart twice, then degrade to the CPU path; on the CPU path restart
    //    once more, then page. Its checkpoints need not survive the process.
    let tiles = MemoryCheckpointStore::try_new(2, 1)?;
    let quick = RestartIntensity::default();
    let ladder = RecoveryLadder::new([
        Recovery::new(
            RecoveryPolicy {
                strategy: RecoveryStrategy::RestartKernel,
                max_restarts: 2,
                restart_delay: Duration::from_millis(5),
                escalation: Some(RecoveryStrategy::Degrade),
            },
            quick,
        ),
        Recovery::new(
            RecoveryPolicy {
                strategy: RecoveryStrategy::RestartKernel,
                max_restarts: 1,
                restart_delay: Duration::from_millis(5),
                escalation: Some(RecoveryStrategy::NotifyOperator),
            },
            quick,
        ),
    ]);
    let mut gpu = Supervisor::with_ladder(
        "gpu0/matmul",
        MatMul::new(Device::Gpu).saving_to(&tiles),
        ladder,
    )
    .with_degraded(MatMul::new(Device::Cpu).saving_to(&tiles))
    .with_fail_back()
    .with_checkpoints(tiles.clone());
    let exit = gpu.run().await?;
    let launches = gpu
        .kernel(KernelSlot::Primary)
        .map_or(0, |gpu| gpu.launches.load(Ordering::Relaxed));
    let cpu_tiles = gpu
        .kernel(KernelSlot::Degraded)
        .map_or(0, |cpu| cpu.tiles_done);
    println!(
        "gpu0/matmul: {exit} on the {} kernel after {launches} GPU launches; it resumed at \
         tile 3 and reached {cpu_tiles} (ladder at level {}, checkpoints kept: {:?})",
        gpu.active_slot(),
        gpu.ladder().level(),
        tiles.sequences()
    );
    // The device was replaced: the next run starts the GPU kernel from scratch.
    if let Some(primary) = gpu.kernel_mut(KernelSlot::Primary) {
        primary.tiles_done = 0;
        primary.device = Device::Cpu;
    }
    let counts = gpu.log().counts();
    println!(
        "decisions: {} restarts, {} escalations, {} degrades",
        counts.restart, counts.escalate, counts.degrade
    );

    // 3. A kernel that cannot recover: restarts, then an operator is paged.
    let mut hopeless = Supervisor::new(
        "graph/bfs",
        MatMul::new(Device::Gpu),
        RecoveryPolicy {
            strategy: RecoveryStrategy::RestartKernel,
            max_restarts: 1,
            restart_delay: Duration::from_millis(5),
            escalation: Some(RecoveryStrategy::NotifyOperator),
        },
        RestartIntensity::default(),
    )
    .with_notifier(Pager { on_call });
    let exit = hopeless.run().await?;
    println!("graph/bfs: {exit}");
    while let Ok(page) = pages.try_recv() {
        println!("  {page}");
    }
    let failures = hopeless
        .log()
        .events()
        .into_iter()
        .filter_map(|event| match event {
            SupervisorEvent::Failed { error, .. } => Some(error),
            _ => None,
        })
        .collect::<Vec<KernelFailure<DeviceError>>>();
    println!(
        "graph/bfs failed {} times, panics among them: {}; the log keeps {LOG_CAPACITY} events",
        failures.len(),
        failures.iter().filter(|f| f.is_panic()).count()
    );

    // 4. Switch to a replica, then fail over: a policy that names a kernel the supervisor lacks
    //    is refused before anything runs.
    let replicated = RecoveryPolicy {
        strategy: RecoveryStrategy::UseReplica,
        max_restarts: 1,
        restart_delay: Duration::ZERO,
        escalation: Some(RecoveryStrategy::Failover),
    };
    let mut lacking = Supervisor::new(
        "graph/sssp",
        MatMul::new(Device::Gpu),
        replicated,
        RestartIntensity::default(),
    );
    if let Err(SupervisorError::MissingKernel { strategy, slot }) = lacking.run().await {
        println!(
            "graph/sssp refused: {strategy} needs a {} kernel (for_strategy: {:?})",
            slot.as_str(),
            KernelSlot::for_strategy(strategy)
        );
    }
    let mut replicated = lacking
        .with_replica(MatMul::new(Device::Cpu))
        .with_failover(MatMul::new(Device::Cpu));
    let exit: SupervisorExit = replicated.run().await?;
    println!(
        "graph/sssp with a replica and a failover: {exit} on the {} kernel",
        replicated.active_slot()
    );

    // 5. Shutdown: no new restarts after the signal, and a grace for the running kernel.
    let mut serving = Supervisor::new(
        "serve/loop",
        MatMul::new(Device::Cpu),
        RecoveryPolicy::default(),
        RestartIntensity::default(),
    );
    let exit = serving
        .run_until(
            tokio::time::sleep(Duration::from_millis(1)),
            Duration::from_millis(10),
        )
        .await?;
    println!("serve/loop at shutdown: {exit}");
    Ok(())
}
