//! [`GpuExecutor`]: the service's handle on the GPU. It runs each request on the worker or,
//! when the worker cannot take it in time, on the CPU, and publishes the GPU path's status.
//!
//! The worker runs under the tokio [`Supervisor`] with the core's recovery ladder
//! ([`GpuConfig::ladder`]): restarts, then a probation on the CPU path, then an operator
//! ([`supervised`](super::supervised) has the worker's side). The supervisor's events are
//! pushed into the status as they happen, so `/health` and the routing of the next request
//! follow the supervisor at once.
//!
//! [`GpuExecutor::execute`] gives every request exactly one answer: the worker's result, or,
//! when the worker is down, restarting, on probation, shed by the device's breaker, lost
//! mid-request or failed, the CPU implementation's result computed within the same deadline
//! (on the [`CpuRunner`] given, the service's blocking pool), or a clear [`GpuError`].

use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::time::Duration;

use rustkernel_core::error::ErrorKind;
use rustkernel_core::resilience::{HealthCheckResult, RecoveryAction, ResilienceError};
use rustkernel_tokio::clock;
use rustkernel_tokio::resilience::CircuitBreaker;
use rustkernel_tokio::supervisor::Supervisor;
use rustkernel_tokio::supervisor::{SupervisorEvent, SupervisorExit, SupervisorLog};
use tokio::sync::{mpsc, oneshot, watch};
use tokio::time::Instant;

use super::costs::CpuCosts;
use super::nvml;
use super::status::{GpuStatus, WorkerPhase};
use super::supervised::{AttemptError, Command_, Job, Shared, Ticket, WorkerKernel};
use super::transport::{PipeTransport, WorkerTransport};
use super::{Backend, GpuConfig, GpuError};
use crate::kernels::{self, CpuRunner, KernelError, KernelPool, KernelRequest, KernelResponse};

/// The service's handle on the GPU: runs kernel requests on the worker, or on the CPU when
/// the GPU path is unavailable, and reports the `gpu` health component.
pub struct GpuExecutor {
    commands: mpsc::Sender<Command_>,
    state: watch::Receiver<GpuStatus>,
    breaker: CircuitBreaker,
    task: tokio::task::JoinHandle<()>,
    stop: watch::Sender<bool>,
    nvml_stop: Arc<AtomicBool>,
    /// Jobs queued or running on the worker ([`Ticket`]).
    outstanding: Arc<AtomicUsize>,
    cpu_costs: CpuCosts,
    cpu: Arc<dyn CpuRunner>,
    log: SupervisorLog<String>,
}

impl std::fmt::Debug for GpuExecutor {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("GpuExecutor")
            .field("status", &*self.state.borrow())
            .field("outstanding", &self.outstanding.load(Ordering::Relaxed))
            .finish_non_exhaustive()
    }
}

impl GpuExecutor {
    /// Validates the config and starts the supervisor, which starts the first worker in the
    /// background: the executor serves at once, on the CPU until the worker says it is ready
    /// (watch [`status`](Self::status) or [`wait_for`](Self::wait_for) to know when). Workers
    /// are processes ([`PipeTransport`]) and CPU runs go to a [`KernelPool`] of one thread per
    /// core; [`start_with`](Self::start_with) takes others.
    ///
    /// # Errors
    /// [`GpuError::Config`] for an invalid config.
    pub async fn start(config: GpuConfig) -> Result<Self, GpuError> {
        let threads = std::thread::available_parallelism().map_or(1, std::num::NonZero::get);
        Self::start_with(
            config,
            Arc::new(PipeTransport),
            Arc::new(KernelPool::new(threads)),
        )
        .await
    }

    /// [`start`](Self::start) with the seams given: how workers are reached (`transport`) and
    /// where CPU runs go (`cpu`: the service passes its own pool, so failovers share its
    /// threads; a simulation passes inline ones).
    ///
    /// # Errors
    /// [`GpuError::Config`] for an invalid config.
    pub async fn start_with(
        config: GpuConfig,
        transport: Arc<dyn WorkerTransport>,
        cpu: Arc<dyn CpuRunner>,
    ) -> Result<Self, GpuError> {
        config.validate()?;
        let ladder = config.ladder()?;
        let breaker = CircuitBreaker::builder(config.breaker)
            .name("gpu0")
            .try_build()
            .map_err(|e| GpuError::Config(format!("breaker: {e}")))?;
        let (commands, rx) = mpsc::channel(256);
        let (state_tx, state) = watch::channel(GpuStatus::starting());
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
        let grace = config.kill_grace * 2 + Duration::from_secs(1);
        let shared = Arc::new(Shared::new(config, transport, rx, state_tx.clone()));
        let supervisor = Supervisor::with_ladder(
            "gpu0",
            WorkerKernel::new(Arc::clone(&shared), false),
            ladder,
        )
        .with_degraded(WorkerKernel::new(shared, true))
        .with_fail_back()
        .with_observer(move |event| publish(&state_tx, event));
        let log = supervisor.log();
        let (stop, stopped) = watch::channel(false);
        let task = tokio::spawn(supervise(supervisor, stopped, grace));
        Ok(Self {
            commands,
            state,
            breaker,
            task,
            stop,
            nvml_stop,
            outstanding: Arc::new(AtomicUsize::new(0)),
            cpu_costs: CpuCosts::default(),
            cpu,
            log,
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
    /// - A request that finds the worker idle waits for its answer on the same terms; with no
    ///   CPU run to go by yet, at most half of what is left of its deadline (a worker whose
    ///   kernel hangs while its heartbeats go on would otherwise hold it to the deadline).
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
        let usable = self.state.borrow().usable();
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
                // With no CPU run to go by, half the time left is kept for the CPU.
                let failover_at = failover_at.unwrap_or_else(|| now + (deadline - now) / 2);
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
                    #[cfg(sim_mutant = "device_faults_to_kernel")]
                    Err(AttemptError::Stalled | AttemptError::FailoverDue) => {
                        // Mutant (issue 19's first bug, for the simulation to catch): a
                        // stalled or busy worker is answered as the kernel's own timeout,
                        // which the kernel's breaker counts.
                        permit.failure(ErrorKind::Timeout);
                        return Err(GpuError::DeadlineExceeded);
                    }
                    #[cfg(not(sim_mutant = "device_faults_to_kernel"))]
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

    /// Queues `request` for the worker and waits for its answer until `failover_at`, the
    /// deadline, or the worker falling silent, whichever comes first.
    async fn attempt_gpu(
        &self,
        request: Arc<KernelRequest>,
        deadline: Instant,
        failover_at: Instant,
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
        // The worker falling silent or going away sends the request to the CPU at once.
        let mut state = self.state.clone();
        let unusable = async move {
            let silent = state
                .wait_for(|s| !s.usable())
                .await
                .map(|status| status.worker_silent);
            match silent {
                Ok(true) => AttemptError::Stalled,
                Ok(false) => AttemptError::Unavailable("worker down".into()),
                Err(_) => std::future::pending().await,
            }
        };
        let give_up = failover_at.min(deadline);
        tokio::select! {
            biased;
            answer = answer => match answer {
                Err(_) => Err(AttemptError::WorkerLost("supervisor gone".into())),
                Ok(result) => result,
            },
            error = unusable => Err(error),
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
        let within = deadline.saturating_duration_since(started);
        if within.is_zero() {
            return Err(GpuError::DeadlineExceeded);
        }
        let result = match self.cpu.run_request(Arc::clone(&request), within).await {
            Ok(response) => Ok(response),
            Err(
                ResilienceError::DeadlineExceeded
                | ResilienceError::Timeout
                | ResilienceError::Operation(KernelError::Cancelled),
            ) => Err(GpuError::DeadlineExceeded),
            Err(ResilienceError::Operation(error)) => Err(GpuError::Kernel(error)),
            Err(ResilienceError::CircuitOpen) => Err(GpuError::Kernel(KernelError::Failed(
                "the CPU path refused the run".into(),
            ))),
        };
        if result.is_ok() {
            self.cpu_costs.record(&request, started.elapsed());
        }
        result
    }

    /// The `gpu` health component: healthy while the worker is ready (NVML permitting),
    /// degraded while it starts or restarts, unhealthy with the reason while the GPU is
    /// unavailable (`"GPU unavailable: no device"`), on probation past its restart intensity
    /// (`"worker on probation, CPU serves: ..."`), off after the probation failed (`"GPU off,
    /// operator notified: ..."`), or
    /// after a hardware Xid (`"hardware Xid 79"`). The service stays ready meanwhile:
    /// requests fail over to the CPU.
    #[must_use]
    pub fn health(&self) -> HealthCheckResult {
        self.state.borrow().health().at(clock::now())
    }

    /// A receiver of every change of the status, for state that must follow it at once (the
    /// `gpu` health component).
    #[must_use]
    pub fn subscribe(&self) -> watch::Receiver<GpuStatus> {
        self.state.clone()
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

    /// The worker supervisor's record: its events and the count of every recovery decision
    /// (for metrics: `rustkernel_recovery_actions_total{kernel="gpu0"}`).
    #[must_use]
    pub fn supervisor_log(&self) -> SupervisorLog<String> {
        self.log.clone()
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

    /// Stops the worker (a `Shutdown` frame, then a kill after the grace) and the supervisor
    /// (no restart after this).
    pub async fn shutdown(mut self) {
        self.nvml_stop.store(true, Ordering::Relaxed);
        let _ = self.stop.send(true);
        let _ = self.commands.try_send(Command_::Shutdown);
        let _ = (&mut self.task).await;
    }
}

/// Dropped without [`GpuExecutor::shutdown`]: the supervisor is aborted, which kills the
/// worker (`kill_on_drop`), and the NVML watcher stops.
impl Drop for GpuExecutor {
    fn drop(&mut self) {
        self.nvml_stop.store(true, Ordering::Relaxed);
        self.task.abort();
    }
}

/// Runs the supervisor until the executor stops it, then marks the path stopped (or off, when
/// the supervisor ended because an operator was notified).
async fn supervise(
    mut supervisor: Supervisor<WorkerKernel, 2>,
    mut stopped: watch::Receiver<bool>,
    grace: Duration,
) {
    let stop = async move {
        let _ = stopped.wait_for(|stop| *stop).await;
    };
    if let Err(error) = supervisor.run_until(stop, grace).await {
        // Unreachable: the ladder's strategies have their kernels (checked by the config).
        tracing::error!(target: "rustkernel::gpu", %error, "GPU supervisor could not start");
    }
}

/// Follows the supervisor in the published status, as each event happens.
fn publish(state: &watch::Sender<GpuStatus>, event: &SupervisorEvent<String>) {
    let reason = |s: &GpuStatus| s.last_failure.clone().unwrap_or_default();
    match event {
        SupervisorEvent::Failed { error, .. } => {
            let why = error.to_string();
            state.send_modify(|s| s.last_failure = Some(why));
        }
        SupervisorEvent::Decided { action, .. } => {
            tracing::warn!(target: "rustkernel::gpu", %action, "GPU worker down");
            state.send_modify(|s| {
                let reason = reason(s);
                s.worker_silent = false;
                s.phase = match *action {
                    RecoveryAction::Restart { attempt, .. }
                    | RecoveryAction::RestartPending { attempt, .. } => {
                        if matches!(s.phase, WorkerPhase::Degraded { .. }) {
                            // A probation worker restarts; the path stays degraded.
                            return;
                        }
                        WorkerPhase::Restarting { attempt, reason }
                    }
                    RecoveryAction::Degrade
                    | RecoveryAction::Escalate(
                        rustkernel_core::resilience::RecoveryStrategy::Degrade,
                    ) => WorkerPhase::Degraded { reason },
                    _ => WorkerPhase::Off { reason },
                };
            });
        }
        SupervisorEvent::Switched { to, .. } if to.as_str() == "primary" => {
            // Failing back: the probation ended well; a fresh worker starts.
            state.send_modify(|s| s.phase = WorkerPhase::Starting);
        }
        SupervisorEvent::Stopped { exit, .. } => state.send_modify(|s| {
            if !matches!(
                (exit, &s.phase),
                (
                    SupervisorExit::OperatorNotified
                        | SupervisorExit::Exhausted
                        | SupervisorExit::GaveUp,
                    WorkerPhase::Off { .. }
                )
            ) {
                s.phase = WorkerPhase::Stopped;
            }
        }),
        _ => {}
    }
}
