//! The service's side of the GPU worker: spawn it, send it requests with deadlines, watch its
//! heartbeats, kill and restart it, and fail over to the CPU.
//!
//! One supervisor task owns the worker process. It kills the worker when
//! - a request overruns its deadline plus [`GpuConfig::kill_grace`] (a CUDA kernel cannot be
//!   cancelled, so the process is what gets cancelled);
//! - heartbeats stop for [`GpuConfig::heartbeat_timeout`];
//! - the worker replies that its context is poisoned (a sticky CUDA error);
//! - its bytes do not decode;
//! - NVML reports a hardware Xid for the device;
//!
//! and restarts it under the [`RecoveryPolicy`] and [`RestartIntensity`] of the config, with
//! the core's [`Recovery`] machine deciding when. Past the intensity it stops restarting for
//! one intensity window ("worker crashing"), then tries again with a fresh budget: the GPU is
//! never written off for good.
//!
//! [`GpuExecutor::execute`] gives every request exactly one answer: the worker's result, or,
//! when the worker is down, restarting, shed by the device's breaker, lost mid-request or
//! failed, the CPU implementation's result computed on tokio's blocking pool within the same
//! deadline, or a clear [`GpuError`].
//!
//! # The worker's environment and descriptors
//! The worker starts with a cleared environment (`env_clear`) plus only the variables named
//! in [`GpuConfig::env_passthrough`] (by default `PATH`, `LD_LIBRARY_PATH` and `CUDA_*`): the
//! service's tokens never reach it. It keeps three descriptors, its stdin, stdout and stderr
//! pipes: the standard library opens every descriptor with `O_CLOEXEC` and `Command` sets up
//! only 0, 1 and 2 in the child, so nothing the service opened (sockets, files) is inherited;
//! descriptors the service itself inherited without `O_CLOEXEC` from its parent would pass
//! through `exec`, so the worker closes everything above 2 as its first act
//! ([`close_inherited_fds`](super::worker::close_inherited_fds)). A test reads the running
//! worker's `/proc/<pid>/environ` and `/proc/<pid>/fd`.

use std::path::PathBuf;
use std::process::Stdio;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::time::Duration;

use rustkernel_core::error::{Classify, ErrorKind};
use rustkernel_core::resilience::{
    CircuitBreakerConfig, HealthCheckResult, HealthStatus, Recovery, RecoveryAction,
    RecoveryPolicy, RecoveryStrategy, RestartIntensity,
};
use rustkernel_tokio::clock;
use rustkernel_tokio::resilience::CircuitBreaker;
use tokio::io::{AsyncBufReadExt, AsyncWriteExt, BufReader};
use tokio::process::{Child, Command};
use tokio::sync::{mpsc, oneshot, watch};
use tokio::time::Instant;

use super::nvml::{self, XidClass};
use super::protocol::{self, BackendStatus, HostFrame, WireError, WorkerFrame};
use super::worker::{BackendKind, FaultKind};
use super::{Backend, GpuError};
use crate::kernels::{self, KernelError, KernelRequest, KernelResponse};

/// A fault for the worker to inject (tests only), passed on its command line.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct WorkerFault {
    /// What goes wrong.
    pub kind: FaultKind,
    /// Which request of each faulty worker triggers it (1 = its first).
    pub on_request: u64,
    /// How many workers in a row get the fault (1 = only the first; `u32::MAX` = every one,
    /// a crash loop).
    pub workers: u32,
}

/// How to run and watch the worker.
#[derive(Clone, Debug)]
pub struct GpuConfig {
    /// The `rustkernel-worker` executable.
    pub worker_path: PathBuf,
    /// The worker's backend.
    pub backend: BackendKind,
    /// Where the worker finds the kernels' PTX (for [`BackendKind::Cuda`]).
    pub ptx_dir: Option<PathBuf>,
    /// How often the worker sends a heartbeat.
    pub heartbeat_interval: Duration,
    /// Silence after which the worker is killed; a few intervals.
    pub heartbeat_timeout: Duration,
    /// How long past a request's deadline the worker may still answer before it is killed.
    pub kill_grace: Duration,
    /// How long start-up (`cuInit`, PTX, a tiny kernel) may take before `Hello`.
    pub startup_timeout: Duration,
    /// When to restart a failed worker, how often, and what then.
    pub restart: RecoveryPolicy,
    /// The window restarts are counted in, and their backoff.
    pub intensity: RestartIntensity,
    /// The device's breaker: GPU attempts that fail open it, and an open breaker sends every
    /// request to the CPU until it half-opens.
    pub breaker: CircuitBreakerConfig,
    /// Environment variables the worker keeps (the rest is cleared); a name ending in `*` is
    /// a prefix.
    pub env_passthrough: Vec<String>,
    /// Watch the device with NVML (temperature, throttling, ECC, Xid events).
    pub nvml: bool,
    /// A fault for the worker to inject (tests only).
    pub fault: Option<WorkerFault>,
    /// The longest frame either side reads, in bytes: the service sets it from its request
    /// body limit (a worker that writes bytes without a delimiter costs at most this much).
    pub max_frame_len: usize,
    /// How long to wait before starting a worker again after one reported that its backend
    /// cannot run here (no device, no driver, no PTX): a probe, not a restart loop.
    pub unavailable_retry: Duration,
}

impl GpuConfig {
    /// A config for the worker at `worker_path`: CUDA backend, heartbeats every 100 ms with
    /// a 1 s timeout, 250 ms kill grace, 30 s start-up, restarts 3 times in 60 s 1 s apart,
    /// the default breaker, NVML on.
    #[must_use]
    pub fn new(worker_path: impl Into<PathBuf>) -> Self {
        Self {
            worker_path: worker_path.into(),
            backend: BackendKind::Cuda,
            ptx_dir: None,
            heartbeat_interval: Duration::from_millis(100),
            heartbeat_timeout: Duration::from_secs(1),
            kill_grace: Duration::from_millis(250),
            startup_timeout: Duration::from_secs(30),
            restart: RecoveryPolicy {
                strategy: RecoveryStrategy::RestartKernel,
                max_restarts: 3,
                restart_delay: Duration::from_secs(1),
                escalation: Some(RecoveryStrategy::Degrade),
            },
            intensity: RestartIntensity::default(),
            breaker: CircuitBreakerConfig::DEFAULT,
            env_passthrough: vec!["PATH".into(), "LD_LIBRARY_PATH".into(), "CUDA_*".into()],
            nvml: true,
            fault: None,
            max_frame_len: protocol::MAX_FRAME_LEN,
            unavailable_retry: Duration::from_secs(60),
        }
    }

    /// `rustkernel-worker` in the directory of the running executable (where cargo and an
    /// install put it beside `rustkernel`); `None` when the executable's path is unknown.
    #[must_use]
    pub fn worker_beside_current_exe() -> Option<PathBuf> {
        let exe = std::env::current_exe().ok()?;
        Some(
            exe.parent()?
                .join(format!("rustkernel-worker{}", std::env::consts::EXE_SUFFIX)),
        )
    }

    /// Checks the durations, the policy, the intensity and the breaker.
    ///
    /// # Errors
    /// [`GpuError::Config`] naming the problem.
    pub fn validate(&self) -> Result<(), GpuError> {
        let bad = |why: String| Err(GpuError::Config(why));
        if self.heartbeat_interval.is_zero() {
            return bad("heartbeat_interval must be above zero".into());
        }
        if self.heartbeat_timeout <= self.heartbeat_interval {
            return bad(format!(
                "heartbeat_timeout ({:?}) must be longer than heartbeat_interval ({:?})",
                self.heartbeat_timeout, self.heartbeat_interval
            ));
        }
        if self.startup_timeout.is_zero() {
            return bad("startup_timeout must be above zero".into());
        }
        if self.max_frame_len < 1024 {
            return bad(format!(
                "max_frame_len ({} bytes) must be at least 1024",
                self.max_frame_len
            ));
        }
        Recovery::<{ rustkernel_core::resilience::DEFAULT_RESTART_CAPACITY }>::try_new(
            self.restart,
            self.intensity,
        )
        .map_err(|e| GpuError::Config(format!("restart policy: {e}")))?;
        self.breaker
            .validate()
            .map_err(|e| GpuError::Config(format!("breaker: {e}")))?;
        Ok(())
    }

    /// The frame limit for a service whose request bodies are at most `body_limit` bytes: a
    /// request's frame is at most four times its JSON body (the shortest JSON number, `0,`,
    /// is 2 bytes; postcard writes an `f64` in 8), plus COBS's one byte in 254 and room for
    /// the frame's header; a reply is smaller than its request.
    #[must_use]
    pub fn frame_limit_for_body(body_limit: usize) -> usize {
        body_limit
            .saturating_mul(4)
            .saturating_add(body_limit / 50)
            .saturating_add(64 * 1024)
    }

    /// How long a worker may be silent (no heartbeat, no bytes) before the requests waiting
    /// for it fail over to the CPU: three heartbeat intervals or a third of the heartbeat
    /// timeout, whichever is longer, and at most two thirds of the timeout (the kill).
    #[must_use]
    pub fn stall_after(&self) -> Duration {
        (self.heartbeat_interval * 3)
            .max(self.heartbeat_timeout / 3)
            .min(self.heartbeat_timeout * 2 / 3)
    }

    /// The worker's command line for the worker started `generation`-th (0 = the first).
    #[must_use]
    pub fn worker_args(&self, generation: u32) -> Vec<String> {
        let mut args = vec![
            "--backend".to_owned(),
            match self.backend {
                BackendKind::Cpu => "cpu",
                BackendKind::Cuda => "cuda",
            }
            .to_owned(),
            "--heartbeat-ms".to_owned(),
            self.heartbeat_interval.as_millis().max(1).to_string(),
            "--init-timeout-ms".to_owned(),
            self.startup_timeout.as_millis().to_string(),
            "--max-frame-bytes".to_owned(),
            self.max_frame_len.to_string(),
        ];
        if let Some(dir) = &self.ptx_dir {
            args.push("--ptx-dir".into());
            args.push(dir.display().to_string());
        }
        if let Some(fault) = self.fault.filter(|f| generation < f.workers) {
            args.extend([
                "--fault".into(),
                fault.kind.as_str().into(),
                "--fault-on".into(),
                fault.on_request.to_string(),
            ]);
        }
        args
    }

    /// The environment the worker gets: the service's variables that
    /// [`env_passthrough`](Self::env_passthrough) names, nothing else.
    #[must_use]
    pub fn worker_env(&self) -> Vec<(String, String)> {
        std::env::vars()
            .filter(|(name, _)| {
                self.env_passthrough
                    .iter()
                    .any(|keep| match keep.strip_suffix('*') {
                        Some(prefix) => name.starts_with(prefix),
                        None => name == keep,
                    })
            })
            .collect()
    }
}

/// Where the worker is in its life, for health and for `execute`.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum WorkerPhase {
    /// Starting (the first time); requests go to the CPU meanwhile.
    Starting,
    /// Ready: requests go to the worker.
    Ready {
        /// `"cuda"` or `"cpu"`.
        backend: String,
        /// The device.
        device: String,
    },
    /// Failed and waiting for its restart.
    Restarting {
        /// The restart's number since the worker was last healthy for a window.
        attempt: u32,
        /// The last failure.
        reason: String,
    },
    /// The backend says it cannot run here (no device, no PTX); probed again later.
    Unavailable {
        /// The worker's reason.
        reason: String,
    },
    /// Failed more often than the restart intensity allows; probed again after a window.
    Crashing {
        /// The last failure.
        reason: String,
    },
    /// Shut down.
    Stopped,
}

/// What the supervisor publishes about the GPU path: [`GpuExecutor::status`].
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct GpuStatus {
    /// Where the worker is in its life.
    pub phase: WorkerPhase,
    /// A hardware Xid that makes the device unhealthy until a worker starts cleanly again.
    pub hardware_xid: Option<u64>,
    /// Application Xids seen (counted against the kernels, not the device).
    pub application_xids: u64,
    /// Workers started so far (1 after a clean start; each restart adds one).
    pub workers_started: u64,
    /// The current worker's process id.
    pub worker_pid: Option<u32>,
    /// NVML's verdict, `None` when NVML is not asked or has not answered yet.
    pub nvml: Option<nvml::NvmlStatus>,
    /// The worker has been silent (no heartbeat, no bytes) for [`GpuConfig::stall_after`]:
    /// requests go to the CPU until it speaks again or is replaced.
    pub worker_silent: bool,
}

type GpuState = GpuStatus;

/// Why one GPU attempt has no result.
#[derive(Debug)]
enum AttemptError {
    /// The worker's reply was an error.
    Kernel(WireError),
    /// The worker died, was killed, or sent garbage while the request was in flight.
    WorkerLost(String),
    /// No worker to send it to.
    Unavailable(String),
    /// The worker fell silent (no heartbeat, no bytes) while the request waited for it.
    Stalled,
    /// The request waited for the worker until only its CPU run's time was left.
    FailoverDue,
    /// The request's deadline passed before the worker answered.
    Deadline,
}

/// Counts a job from the moment a caller queues it until the supervisor is done with it
/// (answered, skipped or dropped with a dead worker): while any is counted, the worker is
/// busy and a new request would wait behind it.
#[derive(Debug)]
struct Ticket(Arc<AtomicUsize>);

impl Ticket {
    fn new(outstanding: &Arc<AtomicUsize>) -> Self {
        outstanding.fetch_add(1, Ordering::AcqRel);
        Self(outstanding.clone())
    }
}

impl Drop for Ticket {
    fn drop(&mut self) {
        self.0.fetch_sub(1, Ordering::AcqRel);
    }
}

struct Job {
    request: Arc<KernelRequest>,
    deadline: Instant,
    reply: oneshot::Sender<Result<KernelResponse, AttemptError>>,
    ticket: Ticket,
}

enum Command_ {
    Job(Job),
    Xid(u64),
    Shutdown,
}

/// Recent CPU run times per kernel, as nanoseconds per unit of work
/// ([`work_units`](crate::service::execute::work_units)), for the failover decision: a request
/// may wait for the worker only while what is left of its deadline still covers the p90 of
/// its kernel's CPU runs, scaled to its size (plus a quarter and [`COST_MARGIN`]).
#[derive(Debug, Default)]
struct CpuCosts {
    /// Indexed by [`kernel_index`].
    kernels: [std::sync::Mutex<CostRing>; 2],
}

/// The last [`COST_SAMPLES`] costs of one kernel, oldest overwritten first.
#[derive(Debug, Default)]
struct CostRing {
    ns_per_unit: [f64; COST_SAMPLES],
    len: usize,
    next: usize,
}

const COST_SAMPLES: usize = 32;

/// Added to the scaled p90 (with a quarter of it) for the hop to the blocking pool and the
/// scheduling noise a p90 of small runs does not show.
const COST_MARGIN: Duration = Duration::from_millis(2);

fn kernel_index(request: &KernelRequest) -> usize {
    match request {
        KernelRequest::PageRank(_) => 0,
        KernelRequest::MatMul(_) => 1,
    }
}

impl CpuCosts {
    fn ring(&self, request: &KernelRequest) -> Option<std::sync::MutexGuard<'_, CostRing>> {
        self.kernels.get(kernel_index(request)).map(|ring| {
            ring.lock()
                .unwrap_or_else(std::sync::PoisonError::into_inner)
        })
    }

    /// Notes a successful CPU run of `request` that took `elapsed`.
    fn record(&self, request: &KernelRequest, elapsed: Duration) {
        let units = crate::service::execute::work_units(request).max(1);
        #[allow(clippy::cast_precision_loss)] // a cost estimate; 2^52 units is far off
        let cost = elapsed.as_nanos() as f64 / units as f64;
        if let Some(mut ring) = self.ring(request) {
            let at = ring.next;
            if let Some(slot) = ring.ns_per_unit.get_mut(at) {
                *slot = cost;
            }
            ring.next = (at + 1) % COST_SAMPLES;
            ring.len = (ring.len + 1).min(COST_SAMPLES);
        }
    }

    /// The p90 of the kernel's recent CPU runs scaled to `request`'s size; `None` before the
    /// kernel's first CPU run.
    fn estimate(&self, request: &KernelRequest) -> Option<Duration> {
        let ring = self.ring(request)?;
        let mut costs: Vec<f64> = ring.ns_per_unit.get(..ring.len)?.to_vec();
        drop(ring);
        if costs.is_empty() {
            return None;
        }
        costs.sort_by(f64::total_cmp);
        // The nearest-rank p90: the smallest cost at or above 90 % of the samples.
        let rank = (costs.len() * 9).div_ceil(10).max(1) - 1;
        let p90 = costs.get(rank).copied()?;
        #[allow(clippy::cast_precision_loss)]
        let units = crate::service::execute::work_units(request).max(1) as f64;
        let run = Duration::from_secs_f64((p90 * units / 1e9).clamp(0.0, 3.6e6));
        Some(run + run / 4 + COST_MARGIN)
    }
}

/// The service's handle on the GPU: runs kernel requests on the worker, or on the CPU when
/// the GPU path is unavailable, and reports the `gpu` health component.
#[derive(Debug)]
pub struct GpuExecutor {
    commands: mpsc::Sender<Command_>,
    state: watch::Receiver<GpuState>,
    breaker: CircuitBreaker,
    supervisor: tokio::task::JoinHandle<()>,
    nvml_stop: Arc<AtomicBool>,
    /// Jobs queued or running on the worker ([`Ticket`]).
    outstanding: Arc<AtomicUsize>,
    cpu_costs: CpuCosts,
}

impl std::fmt::Debug for Command_ {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(match self {
            Command_::Job(_) => "Job",
            Command_::Xid(_) => "Xid",
            Command_::Shutdown => "Shutdown",
        })
    }
}

impl GpuExecutor {
    /// Validates the config and starts the supervisor, which starts the first worker in the
    /// background: the executor serves at once, on the CPU until the worker says it is ready
    /// (watch [`status`](Self::status) or [`wait_for`](Self::wait_for) to know when).
    ///
    /// # Errors
    /// [`GpuError::Config`] for an invalid config.
    pub async fn start(config: GpuConfig) -> Result<Self, GpuError> {
        config.validate()?;
        let breaker = CircuitBreaker::builder(config.breaker)
            .name("gpu0")
            .try_build()
            .map_err(|e| GpuError::Config(format!("breaker: {e}")))?;
        let (commands, rx) = mpsc::channel(256);
        let (state_tx, state) = watch::channel(GpuState {
            phase: WorkerPhase::Starting,
            hardware_xid: None,
            application_xids: 0,
            workers_started: 0,
            worker_pid: None,
            nvml: None,
            worker_silent: false,
        });
        let nvml_stop = Arc::new(AtomicBool::new(false));
        if config.nvml {
            let xids = commands.clone();
            let statuses = state_tx.clone();
            nvml::spawn_watcher(
                move |xid| {
                    let _ = xids.try_send(Command_::Xid(xid));
                },
                move |status| statuses.send_modify(|s| s.nvml = Some(status)),
                nvml_stop.clone(),
            );
        }
        let supervisor = tokio::spawn(supervise(config, rx, state_tx));
        Ok(Self {
            commands,
            state,
            breaker,
            supervisor,
            nvml_stop,
            outstanding: Arc::new(AtomicUsize::new(0)),
            cpu_costs: CpuCosts::default(),
        })
    }

    /// Runs `request` within `deadline`: on the worker when it is ready and the device's
    /// breaker admits the call, otherwise on the CPU (tokio's blocking pool) with what is left
    /// of the deadline.
    ///
    /// # Failure attribution
    /// Whatever goes wrong on the way to and inside the worker is the device's: its breaker
    /// (`gpu0`) counts it, and the request fails over to the CPU. The caller (the kernel's
    /// own breaker) sees only what the kernel did: a result, a kernel error, or a deadline
    /// the kernel itself ran out.
    /// - A request waits for a busy worker (one running or holding queued requests) only
    ///   while what is left of its deadline covers its CPU run: the p90 of the kernel's recent
    ///   CPU runs, scaled to the request's size. With no CPU run to go by yet, it does not
    ///   wait at all. Past that point it fails over (the device's breaker counts a timeout).
    /// - A worker silent for [`GpuConfig::stall_after`] (no heartbeat, no bytes) sends every
    ///   request waiting for it to the CPU at once, well before the heartbeat timeout kills
    ///   it; new requests go to the CPU until it speaks again.
    /// - A worker that dies, is killed, sends garbage or replies with a CUDA error: CPU
    ///   failover (the device's breaker counts it).
    ///
    /// The device has one worker, which runs one request at a time (a GPU runs one kernel of
    /// this size at a time anyway); the CPU is the second path, and the rules above keep a
    /// stalled worker from holding requests that the CPU can serve.
    ///
    /// Returns the response and the path that computed it.
    ///
    /// # Errors
    /// [`GpuError::InvalidInput`] for a request [`kernels::validate`] refuses,
    /// [`GpuError::DeadlineExceeded`] when the deadline passes first, and
    /// [`GpuError::Kernel`] when the CPU kernel itself fails.
    pub async fn execute(
        &self,
        request: KernelRequest,
        deadline: Duration,
    ) -> Result<(KernelResponse, Backend), GpuError> {
        let now = Instant::now();
        let deadline = now + deadline;
        kernels::validate(&request).map_err(GpuError::InvalidInput)?;
        let request = Arc::new(request);
        let usable = {
            let state = self.state.borrow();
            matches!(state.phase, WorkerPhase::Ready { .. }) && !state.worker_silent
        };
        if usable && let Ok(permit) = self.breaker.try_acquire() {
            let failover_at = self
                .cpu_costs
                .estimate(&request)
                .map(|cpu| deadline.checked_sub(cpu).unwrap_or(now).max(now));
            let busy = self.outstanding.load(Ordering::Acquire) > 0;
            if busy && failover_at.is_none_or(|at| at <= now) {
                // Waiting behind the worker would leave the CPU no time (or nothing tells how
                // long the CPU takes yet): the CPU serves it now. Nothing was tried.
                drop(permit);
            } else {
                match self
                    .attempt_gpu(request.clone(), deadline, failover_at)
                    .await
                {
                    Ok(response) => {
                        permit.success();
                        return Ok((response, Backend::Gpu));
                    }
                    Err(AttemptError::Deadline) => {
                        permit.failure(ErrorKind::Timeout);
                        return Err(GpuError::DeadlineExceeded);
                    }
                    Err(AttemptError::Kernel(e)) if e.kind == ErrorKind::Timeout => {
                        permit.failure(ErrorKind::Timeout);
                        return Err(GpuError::DeadlineExceeded);
                    }
                    Err(error @ (AttemptError::Stalled | AttemptError::FailoverDue)) => {
                        tracing::debug!(target: "rustkernel::gpu", ?error, "worker too slow for the deadline; CPU failover");
                        permit.failure(ErrorKind::Timeout);
                    }
                    Err(AttemptError::Kernel(e)) => {
                        tracing::debug!(target: "rustkernel::gpu", error = %e, "GPU attempt failed; CPU failover");
                        permit.failure(e.kind);
                    }
                    Err(AttemptError::WorkerLost(why)) => {
                        tracing::debug!(target: "rustkernel::gpu", %why, "worker lost mid-request; CPU failover");
                        permit.failure(ErrorKind::Unavailable);
                    }
                    // Nothing was tried: says nothing about the device.
                    Err(AttemptError::Unavailable(why)) => {
                        tracing::debug!(target: "rustkernel::gpu", %why, "no worker; CPU failover");
                        drop(permit);
                    }
                }
            }
        }
        self.run_cpu(request, deadline)
            .await
            .map(|r| (r, Backend::Cpu))
    }

    /// Queues `request` for the worker and waits for its answer until `failover_at` (when
    /// set), the deadline, or the worker falling silent, whichever comes first.
    async fn attempt_gpu(
        &self,
        request: Arc<KernelRequest>,
        deadline: Instant,
        failover_at: Option<Instant>,
    ) -> Result<KernelResponse, AttemptError> {
        let (reply, answer) = oneshot::channel();
        let job = Command_::Job(Job {
            request,
            deadline,
            reply,
            ticket: Ticket::new(&self.outstanding),
        });
        if self.commands.try_send(job).is_err() {
            return Err(AttemptError::Unavailable("worker queue full".into()));
        }
        let mut state = self.state.clone();
        let silent = async move {
            if state.wait_for(|s| s.worker_silent).await.is_err() {
                std::future::pending::<()>().await;
            }
        };
        let give_up = failover_at.map_or(deadline, |at| at.min(deadline));
        tokio::select! {
            biased;
            answer = answer => match answer {
                Err(_) => Err(AttemptError::WorkerLost("supervisor gone".into())),
                Ok(result) => result,
            },
            () = silent => Err(AttemptError::Stalled),
            () = tokio::time::sleep_until(give_up) => Err(if give_up < deadline {
                AttemptError::FailoverDue
            } else {
                AttemptError::Deadline
            }),
        }
    }

    /// Runs `request` on the CPU within `deadline` and notes how long a success took.
    async fn run_cpu(
        &self,
        request: Arc<KernelRequest>,
        deadline: Instant,
    ) -> Result<KernelResponse, GpuError> {
        let started = Instant::now();
        let result = run_cpu_within(request.clone(), deadline).await;
        if result.is_ok() {
            self.cpu_costs.record(&request, started.elapsed());
        }
        result
    }

    /// The `gpu` health component: healthy while the worker is ready (NVML permitting),
    /// degraded while it starts or restarts, unhealthy with the reason while the GPU is
    /// unavailable (`"GPU unavailable: no device"`), crashing past its restart intensity
    /// (`"worker crashing: ..."`), or after a hardware Xid (`"hardware Xid 79"`). The service
    /// stays ready meanwhile: requests fail over to the CPU.
    #[must_use]
    pub fn health(&self) -> HealthCheckResult {
        let state = self.state.borrow().clone();
        let result = state_health(&state);
        result.at(clock::now())
    }

    /// The GPU path's status, for `/health` details, metrics and tests.
    #[must_use]
    pub fn status(&self) -> GpuStatus {
        self.state.borrow().clone()
    }

    /// The worker's phase.
    #[must_use]
    pub fn phase(&self) -> WorkerPhase {
        self.state.borrow().phase.clone()
    }

    /// Workers started so far (1 after a clean start; each restart adds one).
    #[must_use]
    pub fn workers_started(&self) -> u64 {
        self.state.borrow().workers_started
    }

    /// The running worker's process id, if one runs.
    #[must_use]
    pub fn worker_pid(&self) -> Option<u32> {
        self.state.borrow().worker_pid
    }

    /// Application Xids seen so far (13, 31, 43, 45, 68, 109: faults of a kernel, not of the
    /// device).
    #[must_use]
    pub fn application_xids(&self) -> u64 {
        self.state.borrow().application_xids
    }

    /// Waits until the status satisfies `predicate`, at most `timeout`; whether it did.
    pub async fn wait_for(
        &self,
        timeout: Duration,
        mut predicate: impl FnMut(&GpuStatus) -> bool,
    ) -> bool {
        let mut state = self.state.clone();
        tokio::time::timeout(timeout, state.wait_for(|s| predicate(s)))
            .await
            .is_ok_and(|r| r.is_ok())
    }

    /// The device's breaker (for metrics).
    #[must_use]
    pub fn breaker(&self) -> &CircuitBreaker {
        &self.breaker
    }

    /// Reports an Xid event for the device, as the NVML watcher does: application Xids are
    /// counted, a hardware Xid marks the device unhealthy and restarts the worker (its clean
    /// start-up is the check that clears the mark). Public for other monitors and for tests.
    pub fn report_xid(&self, xid: u64) {
        let _ = self.commands.try_send(Command_::Xid(xid));
    }

    /// Stops the worker (a `Shutdown` frame, then a kill after the grace) and the supervisor.
    pub async fn shutdown(mut self) {
        self.nvml_stop.store(true, Ordering::Relaxed);
        let _ = self.commands.send(Command_::Shutdown).await;
        let _ = (&mut self.supervisor).await;
    }
}

/// Dropped without [`GpuExecutor::shutdown`]: the supervisor is aborted, which kills the
/// worker (`kill_on_drop`), and the NVML watcher stops.
impl Drop for GpuExecutor {
    fn drop(&mut self) {
        self.nvml_stop.store(true, Ordering::Relaxed);
        self.supervisor.abort();
    }
}

fn state_health(state: &GpuState) -> HealthCheckResult {
    if let Some(xid) = state.hardware_xid {
        return HealthCheckResult::unhealthy(&format!("hardware Xid {xid}"));
    }
    match &state.phase {
        WorkerPhase::Starting => HealthCheckResult::degraded("GPU worker starting"),
        WorkerPhase::Ready { backend, device } => match &state.nvml {
            Some(nvml::NvmlStatus::Unknown(why)) => {
                HealthCheckResult::new(HealthStatus::Healthy, &format!("unknown: {why}"))
            }
            Some(nvml::NvmlStatus::Degraded(why)) => HealthCheckResult::degraded(why),
            Some(nvml::NvmlStatus::Ok(summary)) => HealthCheckResult::new(
                HealthStatus::Healthy,
                &format!("ready: {backend} on {device}; {summary}"),
            ),
            None => HealthCheckResult::new(
                HealthStatus::Healthy,
                &format!("ready: {backend} on {device}"),
            ),
        },
        WorkerPhase::Restarting { attempt, reason } => {
            HealthCheckResult::degraded(&format!("worker restarting (#{attempt}): {reason}"))
        }
        WorkerPhase::Unavailable { reason } => {
            HealthCheckResult::unhealthy(&format!("GPU unavailable: {reason}"))
        }
        WorkerPhase::Crashing { reason } => {
            HealthCheckResult::unhealthy(&format!("worker crashing: {reason}"))
        }
        WorkerPhase::Stopped => HealthCheckResult::unhealthy("GPU executor stopped"),
    }
}

/// Runs `request` on the CPU on tokio's blocking pool; cancels it at `deadline`.
async fn run_cpu_within(
    request: Arc<KernelRequest>,
    deadline: Instant,
) -> Result<KernelResponse, GpuError> {
    if Instant::now() >= deadline {
        return Err(GpuError::DeadlineExceeded);
    }
    let cancel = Arc::new(AtomicBool::new(false));
    let flag = cancel.clone();
    let std_deadline = deadline.into_std();
    let task = tokio::task::spawn_blocking(move || {
        kernels::run_cpu(&request, &|| {
            flag.load(Ordering::Relaxed) || std::time::Instant::now() >= std_deadline
        })
    });
    match tokio::time::timeout_at(deadline, task).await {
        Err(_) => {
            cancel.store(true, Ordering::Relaxed);
            Err(GpuError::DeadlineExceeded)
        }
        Ok(Err(join)) => Err(GpuError::Kernel(KernelError::Failed(format!(
            "CPU kernel task: {join}"
        )))),
        Ok(Ok(Err(KernelError::Cancelled))) => Err(GpuError::DeadlineExceeded),
        Ok(Ok(Err(e))) => Err(GpuError::Kernel(e)),
        Ok(Ok(Ok(response))) => Ok(response),
    }
}

/// How one worker's life ended.
enum Ended {
    /// It failed (the reason is for health and logs); restart under the policy.
    Failed(String),
    /// Its backend cannot run here (no device, no driver, no PTX): probed again after
    /// [`GpuConfig::unavailable_retry`], without counting as a restart.
    Unavailable(String),
    /// Shutdown was asked for.
    Shutdown,
}

/// The exit status of a process whose dynamic loader could not find a library it links
/// (`libcuda.so.1` for the CUDA worker on a machine without the NVIDIA driver).
const EXIT_LIBRARY_MISSING: i32 = 127;

async fn supervise(
    config: GpuConfig,
    mut commands: mpsc::Receiver<Command_>,
    state: watch::Sender<GpuState>,
) {
    let mut recovery: Recovery = Recovery::new(config.restart, config.intensity);
    let mut generation = 0u32;
    let mut next_id = 0u64;
    loop {
        state.send_modify(|s| s.workers_started += 1);
        let ended = run_worker(
            &config,
            generation,
            &mut commands,
            &state,
            &mut recovery,
            &mut next_id,
        )
        .await;
        generation = generation.saturating_add(1);
        let now = clock::now();
        let (until, phase, escalated) = match ended {
            Ended::Shutdown => break,
            // Not a crash: restarting sooner would find the same machine.
            Ended::Unavailable(reason) => (
                Instant::now() + config.unavailable_retry,
                WorkerPhase::Unavailable { reason },
                false,
            ),
            Ended::Failed(reason) => match recovery.on_failure(now) {
                RecoveryAction::Restart { at, attempt }
                | RecoveryAction::RestartPending { at, attempt } => (
                    clock::to_tokio(at),
                    WorkerPhase::Restarting { attempt, reason },
                    false,
                ),
                _ => (
                    clock::to_tokio(now.saturating_add(config.intensity.window)),
                    WorkerPhase::Crashing { reason },
                    true,
                ),
            },
        };
        tracing::warn!(target: "rustkernel::gpu", ?phase, "GPU worker down");
        state.send_modify(|s| {
            s.phase = phase;
            s.worker_silent = false;
        });
        if !idle_until(until, &mut commands, &state).await {
            break;
        }
        if escalated {
            // A window without a worker has passed: probe again with a fresh budget rather
            // than writing the GPU off for good.
            recovery.reset();
        }
    }
    state.send_modify(|s| s.phase = WorkerPhase::Stopped);
}

/// Waits until `until` with no worker, answering jobs with `Unavailable` (their callers fail
/// over to the CPU); `false` on shutdown.
async fn idle_until(
    until: Instant,
    commands: &mut mpsc::Receiver<Command_>,
    state: &watch::Sender<GpuState>,
) -> bool {
    let sleep = tokio::time::sleep_until(until);
    tokio::pin!(sleep);
    loop {
        tokio::select! {
            () = &mut sleep => return true,
            cmd = commands.recv() => match cmd {
                None | Some(Command_::Shutdown) => return false,
                Some(Command_::Job(job)) => {
                    let _ = job.reply.send(Err(AttemptError::Unavailable("worker down".into())));
                }
                Some(Command_::Xid(xid)) => {
                    note_xid(state, xid);
                }
            },
        }
    }
}

/// Records an Xid; `true` for a hardware Xid (the worker must go).
fn note_xid(state: &watch::Sender<GpuState>, xid: u64) -> bool {
    match nvml::classify_xid(xid) {
        XidClass::Application => {
            state.send_modify(|s| s.application_xids += 1);
            false
        }
        XidClass::Hardware => {
            state.send_modify(|s| s.hardware_xid = Some(xid));
            true
        }
    }
}

/// Events from the reader and writer tasks.
enum Event {
    Frame(WorkerFrame),
    Bad(protocol::ProtocolError),
    Eof,
    /// Writing to the worker's stdin failed.
    WriteFailed(String),
}

/// What the writer task sends to the worker.
enum Outgoing {
    Request {
        id: u64,
        deadline_us: u64,
        request: Arc<KernelRequest>,
    },
    Shutdown,
}

struct InFlight {
    id: u64,
    kill_at: Instant,
    reply: oneshot::Sender<Result<KernelResponse, AttemptError>>,
    ticket: Ticket,
}

impl InFlight {
    /// Answers the caller. The worker is free first: a caller that sends its next request as
    /// soon as it has this answer must not find the worker still counted busy.
    fn answer(self, result: Result<KernelResponse, AttemptError>) {
        drop(self.ticket);
        let _ = self.reply.send(result);
    }
}

/// When the worker last showed life: a frame, or any bytes of one (a large reply takes
/// longer to write than the heartbeat timeout, and its heartbeats wait behind it). Written by
/// the reader task, read by the supervisor.
#[derive(Debug)]
struct Liveness {
    base: Instant,
    micros: std::sync::atomic::AtomicU64,
}

impl Liveness {
    fn new() -> Self {
        Self {
            base: Instant::now(),
            micros: std::sync::atomic::AtomicU64::new(0),
        }
    }

    fn beat(&self) {
        let micros = u64::try_from(self.base.elapsed().as_micros()).unwrap_or(u64::MAX);
        self.micros.fetch_max(micros, Ordering::Relaxed);
    }

    fn last(&self) -> Instant {
        self.base + Duration::from_micros(self.micros.load(Ordering::Relaxed))
    }
}

/// Requests larger than this (an estimate of their encoding, in bytes) are encoded on the
/// blocking pool rather than on the async worker thread.
const ENCODE_INLINE_BYTES: usize = 1 << 20;

fn encoded_size_estimate(request: &KernelRequest) -> usize {
    match request {
        KernelRequest::PageRank(input) => input.edges.len().saturating_mul(10),
        KernelRequest::MatMul(input) => input
            .a
            .len()
            .saturating_add(input.b.len())
            .saturating_mul(9),
    }
}

async fn encode_outgoing(out: Outgoing) -> Result<Vec<u8>, String> {
    match out {
        Outgoing::Shutdown => protocol::encode(&HostFrame::Shutdown).map_err(|e| e.to_string()),
        Outgoing::Request {
            id,
            deadline_us,
            request,
        } => {
            if encoded_size_estimate(&request) <= ENCODE_INLINE_BYTES {
                return protocol::encode_request(id, deadline_us, &request)
                    .map_err(|e| e.to_string());
            }
            tokio::task::spawn_blocking(move || protocol::encode_request(id, deadline_us, &request))
                .await
                .map_err(|e| format!("encoding task: {e}"))?
                .map_err(|e| e.to_string())
        }
    }
}

fn spawn_worker(config: &GpuConfig, generation: u32) -> std::io::Result<Child> {
    let mut command = Command::new(&config.worker_path);
    command
        .args(config.worker_args(generation))
        .env_clear()
        .envs(config.worker_env())
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .kill_on_drop(true);
    command.spawn()
}

async fn run_worker(
    config: &GpuConfig,
    generation: u32,
    commands: &mut mpsc::Receiver<Command_>,
    state: &watch::Sender<GpuState>,
    recovery: &mut Recovery,
    next_id: &mut u64,
) -> Ended {
    let mut child = match spawn_worker(config, generation) {
        Ok(child) => child,
        Err(e) => {
            return Ended::Unavailable(format!(
                "cannot start {}: {e}",
                config.worker_path.display()
            ));
        }
    };
    let (Some(mut stdin), Some(stdout), Some(stderr)) =
        (child.stdin.take(), child.stdout.take(), child.stderr.take())
    else {
        let _ = child.kill().await;
        return Ended::Failed("worker pipes missing".into());
    };
    let liveness = Arc::new(Liveness::new());
    let (events_tx, mut events) = mpsc::unbounded_channel();
    let reader_events = events_tx.clone();
    let reader_liveness = liveness.clone();
    let max_frame = config.max_frame_len;
    let reader = tokio::spawn(async move {
        let mut stdout = BufReader::with_capacity(64 * 1024, stdout);
        let mut buf = Vec::new();
        loop {
            let read =
                protocol::read_frame(&mut stdout, &mut buf, max_frame, || reader_liveness.beat())
                    .await;
            let event = match read {
                Ok(true) => match protocol::decode::<WorkerFrame>(&mut buf) {
                    Ok(frame) => Event::Frame(frame),
                    Err(e) => Event::Bad(e),
                },
                // A frame cut short by the end of the stream: the worker died while writing.
                Ok(false) | Err(protocol::ProtocolError::Truncated) => Event::Eof,
                Err(e) => Event::Bad(e),
            };
            let last = !matches!(event, Event::Frame(_));
            if reader_events.send(event).is_err() || last {
                return;
            }
        }
    });
    // The writer owns stdin, so that writing a large request never keeps the supervisor from
    // reading heartbeats, replies and commands.
    let (outgoing, mut to_write) = mpsc::channel::<Outgoing>(2);
    let writer = tokio::spawn(async move {
        while let Some(out) = to_write.recv().await {
            let written = match encode_outgoing(out).await {
                Ok(wire) => match stdin.write_all(&wire).await {
                    Ok(()) => stdin.flush().await.map_err(|e| e.to_string()),
                    Err(e) => Err(e.to_string()),
                },
                Err(e) => Err(e),
            };
            if let Err(why) = written {
                let _ = events_tx.send(Event::WriteFailed(format!("writing to the worker: {why}")));
                return;
            }
        }
        // Dropping stdin closes the pipe: the worker reads its end and exits.
    });
    let pid = child.id().unwrap_or(0);
    state.send_modify(|s| s.worker_pid = child.id());
    let stderr_task = tokio::spawn(async move {
        let mut lines = BufReader::new(stderr).lines();
        while let Ok(Some(line)) = lines.next_line().await {
            tracing::info!(target: "rustkernel::gpu::worker", pid, "{line}");
        }
    });

    let mut ended = serve(
        config,
        &outgoing,
        &mut events,
        &liveness,
        commands,
        state,
        recovery,
        next_id,
    )
    .await;

    if matches!(ended, Ended::Shutdown) {
        let _ = outgoing.send(Outgoing::Shutdown).await;
        drop(outgoing);
        let _ = tokio::time::timeout(config.kill_grace, writer).await;
        if tokio::time::timeout(config.kill_grace, child.wait())
            .await
            .is_err()
        {
            let _ = child.kill().await;
        }
    } else {
        drop(outgoing);
        writer.abort();
        // A worker that exited by itself (its stdout closed) is reaped for its status first;
        // one still running is killed.
        if tokio::time::timeout(Duration::from_millis(100), child.wait())
            .await
            .is_err()
        {
            let _ = child.kill().await;
        }
    }
    let status = child.wait().await.ok();
    if let Ended::Failed(why) = &ended
        && status.and_then(|s| s.code()) == Some(EXIT_LIBRARY_MISSING)
    {
        tracing::debug!(target: "rustkernel::gpu", %why, "worker could not load a library");
        ended = Ended::Unavailable(
            "no NVIDIA driver (the worker cannot load the CUDA driver library, libcuda; exit status 127)".into(),
        );
    }
    state.send_modify(|s| {
        s.worker_pid = None;
        s.worker_silent = false;
    });
    reader.abort();
    stderr_task.abort();
    tracing::debug!(target: "rustkernel::gpu", ?status, "GPU worker gone");
    ended
}

#[allow(clippy::too_many_arguments)] // the supervisor's state, lent for one worker's life
async fn serve(
    config: &GpuConfig,
    outgoing: &mpsc::Sender<Outgoing>,
    events: &mut mpsc::UnboundedReceiver<Event>,
    liveness: &Liveness,
    commands: &mut mpsc::Receiver<Command_>,
    state: &watch::Sender<GpuState>,
    recovery: &mut Recovery,
    next_id: &mut u64,
) -> Ended {
    // Start-up: wait for Hello, answering jobs with Unavailable meanwhile.
    let startup = tokio::time::sleep(config.startup_timeout);
    tokio::pin!(startup);
    loop {
        tokio::select! {
            () = &mut startup => {
                return Ended::Failed(format!("no Hello within {:?}", config.startup_timeout));
            }
            event = events.recv() => match event {
                Some(Event::Frame(WorkerFrame::Hello { status: BackendStatus::Ready { backend, device }, .. })) => {
                    recovery.on_healthy(clock::now());
                    state.send_modify(|s| {
                        s.phase = WorkerPhase::Ready { backend, device };
                        // A clean start (cuInit and a kernel) is the check that clears a
                        // hardware Xid.
                        s.hardware_xid = None;
                    });
                    break;
                }
                Some(Event::Frame(WorkerFrame::Hello { status: BackendStatus::Unavailable { reason }, .. })) => {
                    return Ended::Unavailable(reason);
                }
                Some(Event::Frame(WorkerFrame::Heartbeat { .. })) => {}
                Some(Event::Frame(other)) => {
                    return Ended::Failed(format!("unexpected frame before Hello: {other:?}"));
                }
                Some(Event::Bad(e)) => return Ended::Failed(format!("undecodable bytes from the worker: {e}")),
                Some(Event::WriteFailed(why)) => return Ended::Failed(why),
                Some(Event::Eof) | None => return Ended::Failed("worker exited during start-up".into()),
            },
            cmd = commands.recv() => match cmd {
                None | Some(Command_::Shutdown) => return Ended::Shutdown,
                Some(Command_::Job(job)) => {
                    let _ = job.reply.send(Err(AttemptError::Unavailable("worker starting".into())));
                }
                Some(Command_::Xid(xid)) => { note_xid(state, xid); }
            },
        }
    }

    liveness.beat();
    let mut in_flight: Option<InFlight> = None;
    let lost = |in_flight: &mut Option<InFlight>, why: &str| {
        if let Some(job) = in_flight.take() {
            job.answer(Err(AttemptError::WorkerLost(why.to_owned())));
        }
    };
    let stall_after = config.stall_after();
    loop {
        let kill_at = in_flight.as_ref().map(|j| j.kill_at);
        let alive_at = liveness.last();
        let silent = state.borrow().worker_silent;
        tokio::select! {
            () = tokio::time::sleep_until(alive_at + config.heartbeat_timeout) => {
                if liveness.last() > alive_at {
                    continue; // bytes arrived meanwhile
                }
                let why = format!("no heartbeat for {:?}", config.heartbeat_timeout);
                lost(&mut in_flight, &why);
                return Ended::Failed(why);
            }
            () = tokio::time::sleep_until(alive_at + stall_after), if !silent => {
                if liveness.last() == alive_at {
                    // Requests waiting for it go to the CPU now; the kill comes at the
                    // heartbeat timeout.
                    tracing::debug!(target: "rustkernel::gpu", ?stall_after, "worker silent");
                    state.send_modify(|s| s.worker_silent = true);
                }
            }
            () = tokio::time::sleep_until(kill_at.unwrap_or_else(clock::never)), if kill_at.is_some() => {
                let why = format!("request overran its deadline by {:?}", config.kill_grace);
                lost(&mut in_flight, &why);
                return Ended::Failed(why);
            }
            event = events.recv() => {
                if silent {
                    state.send_modify(|s| s.worker_silent = false);
                }
                match event {
                Some(Event::Frame(WorkerFrame::Heartbeat { .. })) => liveness.beat(),
                Some(Event::Frame(WorkerFrame::Reply { id, result })) => {
                    liveness.beat();
                    if in_flight.as_ref().is_some_and(|j| j.id == id) {
                        let poisoned = match &result {
                            Err(e) if e.poisoned => Some(e.to_string()),
                            _ => None,
                        };
                        if result.is_ok() {
                            recovery.on_healthy(clock::now());
                        }
                        if let Some(job) = in_flight.take() {
                            job.answer(result.map_err(AttemptError::Kernel));
                        }
                        if let Some(why) = poisoned {
                            return Ended::Failed(format!("CUDA context poisoned: {why}"));
                        }
                    } else {
                        tracing::debug!(target: "rustkernel::gpu", id, "reply to no request in flight, dropped");
                    }
                }
                Some(Event::Frame(other)) => {
                    let why = format!("unexpected frame: {other:?}");
                    lost(&mut in_flight, &why);
                    return Ended::Failed(why);
                }
                Some(Event::Bad(e)) => {
                    let why = format!("undecodable bytes from the worker: {e}");
                    lost(&mut in_flight, &why);
                    return Ended::Failed(why);
                }
                Some(Event::WriteFailed(why)) => {
                    lost(&mut in_flight, &why);
                    return Ended::Failed(why);
                }
                Some(Event::Eof) | None => {
                    let why = "worker exited".to_owned();
                    lost(&mut in_flight, &why);
                    return Ended::Failed(why);
                }
                }
            },
            cmd = commands.recv(), if in_flight.is_none() => match cmd {
                None | Some(Command_::Shutdown) => return Ended::Shutdown,
                Some(Command_::Xid(xid)) => {
                    if note_xid(state, xid) {
                        return Ended::Failed(format!("hardware Xid {xid}"));
                    }
                }
                Some(Command_::Job(job)) => {
                    let now = Instant::now();
                    if now >= job.deadline || job.reply.is_closed() {
                        // Its caller failed over or gave up: the worker is spared the work.
                        let _ = job.reply.send(Err(AttemptError::Deadline));
                        continue;
                    }
                    let id = *next_id;
                    *next_id = next_id.wrapping_add(1);
                    let remaining = job.deadline.saturating_duration_since(now);
                    let out = Outgoing::Request {
                        id,
                        deadline_us: u64::try_from(remaining.as_micros()).unwrap_or(u64::MAX),
                        request: job.request,
                    };
                    if outgoing.send(out).await.is_err() {
                        let why = "the writer to the worker stopped".to_owned();
                        let _ = job.reply.send(Err(AttemptError::WorkerLost(why.clone())));
                        return Ended::Failed(why);
                    }
                    in_flight = Some(InFlight {
                        id,
                        kill_at: job.deadline + config.kill_grace,
                        reply: job.reply,
                        ticket: job.ticket,
                    });
                }
            },
        }
    }
}

impl Classify for AttemptError {
    fn kind(&self) -> ErrorKind {
        match self {
            AttemptError::Kernel(e) => e.kind,
            AttemptError::WorkerLost(_) | AttemptError::Unavailable(_) => ErrorKind::Unavailable,
            AttemptError::Stalled | AttemptError::FailoverDue | AttemptError::Deadline => {
                ErrorKind::Timeout
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn faults_go_only_to_the_workers_they_name() {
        let mut config = GpuConfig::new("/bin/false");
        config.backend = BackendKind::Cpu;
        config.fault = Some(WorkerFault {
            kind: FaultKind::Crash,
            on_request: 2,
            workers: 1,
        });
        let first = config.worker_args(0).join(" ");
        assert!(first.contains("--fault crash --fault-on 2"), "{first}");
        assert!(!config.worker_args(1).join(" ").contains("--fault"));
        assert!(
            first.starts_with("--backend cpu --heartbeat-ms 100"),
            "{first}"
        );
    }

    fn pagerank(nodes: u32, edges: usize) -> KernelRequest {
        KernelRequest::PageRank(crate::kernels::PageRankInput {
            num_nodes: nodes,
            edges: vec![[0, 1]; edges],
            damping: 0.85,
            max_iterations: 10,
            tolerance: 1e-9,
        })
    }

    #[test]
    fn cpu_cost_is_the_p90_of_recent_runs_scaled_to_the_request() {
        let costs = CpuCosts::default();
        let small = pagerank(90, 10); // (90 + 10) x 10 = 1,000 units
        assert_eq!(costs.estimate(&small), None, "no history, no estimate");
        // 1 ns per unit nine times, 10 ns once: the nearest-rank p90 of ten is the ninth.
        for _ in 0..9 {
            costs.record(&small, Duration::from_micros(1));
        }
        costs.record(&small, Duration::from_micros(10));
        let run = Duration::from_micros(1);
        assert_eq!(costs.estimate(&small), Some(run + run / 4 + COST_MARGIN));
        // Ten times the work, ten times the run.
        let large = pagerank(900, 100);
        let run = Duration::from_micros(10);
        assert_eq!(costs.estimate(&large), Some(run + run / 4 + COST_MARGIN));
        // Matmul keeps its own history.
        let matmul = KernelRequest::MatMul(crate::kernels::MatMulInput {
            n: 1,
            a: vec![1.0],
            b: vec![1.0],
        });
        assert_eq!(costs.estimate(&matmul), None);
        // Only the last 32 runs count.
        for _ in 0..COST_SAMPLES {
            costs.record(&small, Duration::from_micros(3));
        }
        let run = Duration::from_micros(3);
        assert_eq!(costs.estimate(&small), Some(run + run / 4 + COST_MARGIN));
    }

    #[test]
    fn the_frame_limit_follows_the_body_limit() {
        let config = GpuConfig::new("w");
        assert_eq!(config.max_frame_len, protocol::MAX_FRAME_LEN);
        let limit = GpuConfig::frame_limit_for_body(16 * 1024 * 1024);
        assert!(
            limit > 4 * 16 * 1024 * 1024 && limit < 5 * 16 * 1024 * 1024,
            "{limit}"
        );
        let mut config = GpuConfig::new("w");
        config.max_frame_len = 10;
        assert!(
            matches!(config.validate(), Err(GpuError::Config(m)) if m.contains("max_frame_len"))
        );
        let args = GpuConfig::new("w").worker_args(0).join(" ");
        assert!(
            args.contains(&format!("--max-frame-bytes {}", protocol::MAX_FRAME_LEN)),
            "{args}"
        );
    }

    #[test]
    fn a_worker_is_called_silent_well_before_it_is_killed() {
        let mut config = GpuConfig::new("w");
        assert_eq!(config.stall_after(), Duration::from_secs(1) / 3);
        config.heartbeat_interval = Duration::from_millis(20);
        config.heartbeat_timeout = Duration::from_millis(300);
        assert_eq!(config.stall_after(), Duration::from_millis(100));
        config.heartbeat_interval = Duration::from_millis(100);
        config.heartbeat_timeout = Duration::from_millis(150);
        assert_eq!(config.stall_after(), Duration::from_millis(100));
    }

    #[test]
    fn config_validation_names_the_problem() {
        let mut config = GpuConfig::new("w");
        assert!(config.validate().is_ok());
        config.heartbeat_timeout = config.heartbeat_interval;
        assert!(
            matches!(config.validate(), Err(GpuError::Config(m)) if m.contains("heartbeat_timeout"))
        );
        let mut config = GpuConfig::new("w");
        config.restart.max_restarts = 10_000;
        assert!(
            matches!(config.validate(), Err(GpuError::Config(m)) if m.contains("restart policy"))
        );
    }

    #[test]
    fn health_messages_say_why() {
        let mut state = GpuState {
            phase: WorkerPhase::Unavailable {
                reason: "no device".into(),
            },
            hardware_xid: None,
            application_xids: 0,
            workers_started: 1,
            worker_pid: None,
            nvml: None,
            worker_silent: false,
        };
        let h = state_health(&state);
        assert_eq!(
            (h.status, h.message()),
            (HealthStatus::Unhealthy, "GPU unavailable: no device")
        );
        state.phase = WorkerPhase::Ready {
            backend: "cuda".into(),
            device: "H200".into(),
        };
        state.nvml = Some(nvml::NvmlStatus::Unknown("NVML not found".into()));
        let h = state_health(&state);
        assert_eq!(
            (h.status, h.message()),
            (HealthStatus::Healthy, "unknown: NVML not found")
        );
        state.hardware_xid = Some(79);
        let h = state_health(&state);
        assert_eq!(
            (h.status, h.message()),
            (HealthStatus::Unhealthy, "hardware Xid 79")
        );
        state.hardware_xid = None;
        state.phase = WorkerPhase::Crashing {
            reason: "worker exited".into(),
        };
        assert_eq!(
            state_health(&state).message(),
            "worker crashing: worker exited"
        );
    }
}
