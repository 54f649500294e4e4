//! The GPU worker as a kernel of the tokio [`Supervisor`](rustkernel_tokio::supervisor::Supervisor):
//! `WorkerKernel::run` starts a worker through the [`WorkerTransport`], feeds it the jobs
//! the executor queues, watches its heartbeats and deadlines, and returns the moment the
//! worker is lost, with the reason. The supervisor decides what follows, from the core's
//! [`RecoveryLadder`](rustkernel_core::resilience::RecoveryLadder) ([`GpuConfig::ladder`]):
//! restart, then the probation (the same kernel, marked degraded: its worker runs unused
//! while every request goes to the CPU), then an operator.
//!
//! A run ends (an `Err` for the supervisor) when
//! - a request overruns its deadline plus [`GpuConfig::kill_grace`] (a CUDA kernel cannot be
//!   cancelled, so the process is what gets cancelled);
//! - heartbeats stop for [`GpuConfig::heartbeat_timeout`];
//! - the worker replies that its context is poisoned (a sticky CUDA error);
//! - its bytes do not decode, or its frames come out of order;
//! - NVML reports a hardware Xid for the device.
//!
//! A worker whose backend cannot run here (no device, no driver, no PTX) is not a failure:
//! the run stays up, the phase says why, and a worker is tried again after
//! [`GpuConfig::unavailable_retry`].

use std::sync::Arc;
use std::sync::atomic::{AtomicU32, AtomicU64, AtomicUsize, Ordering};
use std::time::Duration;

use rustkernel_core::error::{Classify, ErrorKind};
use rustkernel_core::resilience::{Silence, SilenceConfig, SilencePhase, WireDeadline};
use rustkernel_tokio::clock;
use rustkernel_tokio::supervisor::SupervisedKernel;
use tokio::io::{AsyncBufReadExt, AsyncWriteExt, BufReader};
use tokio::sync::{Mutex, mpsc, oneshot, watch};
use tokio::time::Instant;

use super::GpuConfig;
use super::nvml::{self, XidClass};
use super::protocol::{self, BackendStatus, HostFrame, WireError, WorkerFrame};
use super::status::{GpuStatus, WorkerPhase};
use super::transport::{WorkerLink, WorkerTransport};
use crate::kernels::{KernelRequest, KernelResponse};

/// What every worker the supervisor starts shares: the config, the transport, the queue of
/// jobs and the published status.
pub(super) struct Shared {
    pub(super) config: GpuConfig,
    pub(super) transport: Arc<dyn WorkerTransport>,
    /// The executor's commands; the running kernel holds the lock.
    pub(super) commands: Mutex<mpsc::Receiver<Command_>>,
    pub(super) state: watch::Sender<GpuStatus>,
    generation: AtomicU32,
    next_id: AtomicU64,
}

impl Shared {
    pub(super) fn new(
        config: GpuConfig,
        transport: Arc<dyn WorkerTransport>,
        commands: mpsc::Receiver<Command_>,
        state: watch::Sender<GpuStatus>,
    ) -> Self {
        Self {
            config,
            transport,
            commands: Mutex::new(commands),
            state,
            generation: AtomicU32::new(0),
            next_id: AtomicU64::new(0),
        }
    }
}

/// One GPU worker's lives under the supervisor: the primary serves requests; the degraded
/// kernel (`probation`) runs a worker that gets none, to prove the device before the GPU path
/// takes requests again.
pub(super) struct WorkerKernel {
    shared: Arc<Shared>,
    probation: bool,
}

impl WorkerKernel {
    pub(super) fn new(shared: Arc<Shared>, probation: bool) -> Self {
        Self { shared, probation }
    }
}

impl SupervisedKernel for WorkerKernel {
    type Error = String;

    /// Starts a worker and serves until it is lost (`Err` with why) or shutdown is asked for
    /// (`Ok`). A backend that cannot run here is probed again after
    /// [`GpuConfig::unavailable_retry`] within the same run.
    async fn run(&mut self) -> Result<(), String> {
        let shared = Arc::clone(&self.shared);
        let mut commands = shared.commands.lock().await;
        loop {
            let generation = shared.generation.fetch_add(1, Ordering::Relaxed);
            shared.state.send_modify(|s| s.workers_started += 1);
            let ended = run_worker(&shared, generation, &mut commands, self.probation).await;
            match ended {
                Ended::Shutdown => return Ok(()),
                Ended::Failed(why) => {
                    shared.state.send_modify(|s| {
                        s.last_failure = Some(why.clone());
                        if matches!(s.phase, WorkerPhase::Ready { .. } | WorkerPhase::Starting) {
                            s.phase = WorkerPhase::Restarting {
                                attempt: 0,
                                reason: why.clone(),
                            };
                        }
                    });
                    return Err(why);
                }
                Ended::Unavailable(reason) => {
                    tracing::warn!(target: "rustkernel::gpu", %reason, "GPU unavailable");
                    shared
                        .state
                        .send_modify(|s| s.phase = WorkerPhase::Unavailable { reason });
                    let until = Instant::now() + shared.config.unavailable_retry;
                    if !idle_until(until, &mut commands, &shared.state).await {
                        return Ok(());
                    }
                }
            }
        }
    }
}

/// Why one GPU attempt has no result.
#[derive(Debug)]
pub(super) enum AttemptError {
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
pub(super) struct Ticket(Arc<AtomicUsize>);

impl Ticket {
    pub(super) fn new(outstanding: &Arc<AtomicUsize>) -> Self {
        outstanding.fetch_add(1, Ordering::AcqRel);
        Self(outstanding.clone())
    }
}

impl Drop for Ticket {
    fn drop(&mut self) {
        self.0.fetch_sub(1, Ordering::AcqRel);
    }
}

pub(super) struct Job {
    pub(super) request: Arc<KernelRequest>,
    pub(super) deadline: Instant,
    pub(super) reply: oneshot::Sender<Result<KernelResponse, AttemptError>>,
    pub(super) ticket: Ticket,
}

pub(super) enum Command_ {
    Job(Job),
    Xid(u64),
    Shutdown,
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

async fn idle_until(
    until: Instant,
    commands: &mut mpsc::Receiver<Command_>,
    state: &watch::Sender<GpuStatus>,
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
pub(super) fn note_xid(state: &watch::Sender<GpuStatus>, xid: u64) -> bool {
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
        deadline: WireDeadline,
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
        KernelRequest::PageRankSteps(steps) => steps
            .input
            .edges
            .len()
            .saturating_mul(10)
            .saturating_add(steps.from.ranks.len().saturating_mul(9)),
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
            deadline,
            request,
        } => {
            if encoded_size_estimate(&request) <= ENCODE_INLINE_BYTES {
                return protocol::encode_request(id, deadline, &request).map_err(|e| e.to_string());
            }
            tokio::task::spawn_blocking(move || protocol::encode_request(id, deadline, &request))
                .await
                .map_err(|e| format!("encoding task: {e}"))?
                .map_err(|e| e.to_string())
        }
    }
}

async fn run_worker(
    shared: &Shared,
    generation: u32,
    commands: &mut mpsc::Receiver<Command_>,
    probation: bool,
) -> Ended {
    let config = &shared.config;
    let state = &shared.state;
    let link = match shared.transport.start(config, generation) {
        Ok(link) => link,
        Err(e) => {
            return Ended::Unavailable(format!(
                "cannot start {}: {e}",
                config.worker_path.display()
            ));
        }
    };
    let WorkerLink {
        from_worker,
        to_worker: mut stdin,
        log,
        mut process,
    } = link;
    let liveness = Arc::new(Liveness::new());
    let (events_tx, mut events) = mpsc::unbounded_channel();
    let reader_events = events_tx.clone();
    let reader_liveness = liveness.clone();
    let max_frame = config.max_frame_len;
    let reader = tokio::spawn(async move {
        let mut stdout = BufReader::with_capacity(64 * 1024, from_worker);
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
    let pid = process.id().unwrap_or(0);
    state.send_modify(|s| s.worker_pid = process.id());
    let log_task = log.map(|log| {
        tokio::spawn(async move {
            let mut lines = BufReader::new(log).lines();
            while let Ok(Some(line)) = lines.next_line().await {
                tracing::info!(target: "rustkernel::gpu::worker", pid, "{line}");
            }
        })
    });

    let mut ended = serve(
        shared,
        &outgoing,
        &mut events,
        &liveness,
        commands,
        probation,
    )
    .await;

    if matches!(ended, Ended::Shutdown) {
        let _ = outgoing.send(Outgoing::Shutdown).await;
        drop(outgoing);
        let _ = tokio::time::timeout(config.kill_grace, writer).await;
        if tokio::time::timeout(config.kill_grace, process.wait())
            .await
            .is_err()
        {
            process.kill().await;
        }
    } else {
        drop(outgoing);
        writer.abort();
        // A worker that exited by itself (its stdout closed) is reaped for its status first;
        // one still running is killed.
        if tokio::time::timeout(Duration::from_millis(100), process.wait())
            .await
            .is_err()
        {
            process.kill().await;
        }
    }
    let status = process.wait().await;
    if let Ended::Failed(why) = &ended
        && status == Some(EXIT_LIBRARY_MISSING)
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
    if let Some(task) = log_task {
        task.abort();
    }
    tracing::debug!(target: "rustkernel::gpu", ?status, "GPU worker gone");
    ended
}

async fn serve(
    shared: &Shared,
    outgoing: &mpsc::Sender<Outgoing>,
    events: &mut mpsc::UnboundedReceiver<Event>,
    liveness: &Liveness,
    commands: &mut mpsc::Receiver<Command_>,
    probation: bool,
) -> Ended {
    let config = &shared.config;
    let state = &shared.state;
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
                    state.send_modify(|s| {
                        // A worker on probation runs unused: the phase stays degraded.
                        if !probation {
                            s.phase = WorkerPhase::Ready { backend, device };
                        }
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
    // Silent (no heartbeat, no bytes) for `stall_after`: waiting requests go to the CPU;
    // for the heartbeat timeout: the worker is killed. The core's `Silence` judges both.
    let mut silence = Silence::new(
        SilenceConfig {
            silent_after: config.stall_after(),
            lost_after: config.heartbeat_timeout,
        },
        clock::to_core(liveness.last()),
    );
    loop {
        // A worker heard again after a silence is talking: `on_heard` says so (and `poll`,
        // finding it talking already, says nothing more), unless it is silent again by now.
        let heard = silence.on_heard(clock::to_core(liveness.last()));
        match silence.poll(clock::now()).or(heard) {
            Some(SilencePhase::Lost) => {
                let why = format!("no heartbeat for {:?}", config.heartbeat_timeout);
                lost(&mut in_flight, &why);
                return Ended::Failed(why);
            }
            Some(SilencePhase::Silent) => {
                tracing::debug!(target: "rustkernel::gpu", stall_after = ?config.stall_after(), "worker silent");
                state.send_modify(|s| s.worker_silent = true);
            }
            Some(SilencePhase::Talking) => state.send_modify(|s| s.worker_silent = false),
            None => {}
        }
        let kill_at = in_flight.as_ref().map(|j| j.kill_at);
        let wake_at = silence.poll_at().map_or_else(clock::never, clock::to_tokio);
        tokio::select! {
            () = tokio::time::sleep_until(wake_at) => {}
            () = tokio::time::sleep_until(kill_at.unwrap_or_else(clock::never)), if kill_at.is_some() => {
                let why = format!("request overran its deadline by {:?}", config.kill_grace);
                lost(&mut in_flight, &why);
                return Ended::Failed(why);
            }
            event = events.recv() => {
                match event {
                Some(Event::Frame(WorkerFrame::Heartbeat { .. })) => liveness.beat(),
                Some(Event::Frame(WorkerFrame::Reply { id, result })) => {
                    liveness.beat();
                    if in_flight.as_ref().is_some_and(|j| j.id == id) {
                        let poisoned = match &result {
                            Err(e) if e.poisoned => Some(e.to_string()),
                            _ => None,
                        };
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
                    let id = shared.next_id.fetch_add(1, Ordering::Relaxed);
                    let out = Outgoing::Request {
                        id,
                        deadline: WireDeadline::from_remaining(job.deadline.saturating_duration_since(now)),
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
