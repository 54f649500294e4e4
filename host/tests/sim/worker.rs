//! The simulated GPU worker: a [`WorkerTransport`] whose workers are tasks on the service
//! host's runtime, speaking the real protocol over in-memory pipes, with seeded faults:
//! a slow, silent or crashing start-up; per request a crash, a stall shorter or longer than
//! the heartbeat timeout, a hang with heartbeats going on, garbage bytes, a poisoned context,
//! a CUDA error or a slow reply; and, while idle, stalls, crashes and garbage between
//! heartbeats. Faults are drawn only until [`Shape::faults_until`].

use std::io;
use std::sync::Arc;
use std::time::Duration;

use rustkernel_core::error::ErrorKind;
use rustkernel_host::gpu::protocol::{
    self, BackendStatus, HostFrame, PROTOCOL_VERSION, WireError, WorkerFrame,
};
use rustkernel_host::gpu::{GpuConfig, WorkerLink, WorkerProcess, WorkerTransport};
use rustkernel_host::kernels::{self, BoxFuture, KernelRequest};
use tokio::io::{AsyncWriteExt, BufReader, DuplexStream};
use tokio::sync::mpsc;
use tokio::task::JoinHandle;
use tokio::time::{Instant, sleep, sleep_until};

use crate::plan::{self, Rand, Shape};
use crate::record::{HostClock, Shared};

/// Starts simulated workers.
pub(crate) struct SimTransport {
    pub(crate) rand: Rand,
    pub(crate) shape: Shape,
    pub(crate) record: Shared,
    pub(crate) clock: HostClock,
    /// When faults stop, on the host's clock (the shape's, from the service's start).
    pub(crate) faults_until: Duration,
}

/// How a worker's start-up goes.
#[derive(Clone, Copy, Debug)]
enum Startup {
    /// Hello after this long.
    Normal(Duration),
    /// Hello after this long, but longer than a service should wait to listen.
    Slow(Duration),
    /// Never says anything (killed at the start-up timeout).
    Silent,
    /// Dies after this long, before its Hello.
    Crash(Duration),
}

/// A fault a request meets.
#[derive(Clone, Copy, Debug)]
enum RequestFault {
    Crash(Duration),
    /// Silent (no heartbeat, no bytes) for this long, then answers.
    Stall(Duration),
    /// Heartbeats go on; the answer never comes (a kernel spinning on the device).
    Hang,
    Garbage,
    Poisoned,
    CudaError,
    /// Heartbeats go on; the answer comes after this long (a busy device).
    SlowReply(Duration),
}

impl WorkerTransport for SimTransport {
    fn start(&self, config: &GpuConfig, generation: u32) -> io::Result<WorkerLink> {
        let now = self.clock.now();
        let faulty = now < self.faults_until;
        // Start-up faults are drawn more often than the others: the worker starts seldom.
        let startup_rate = (self.shape.fault_rate * 4.0).max(0.25);
        let startup = if faulty && self.rand.chance(startup_rate) {
            match self.rand.int(0, 9) {
                0..=4 => Startup::Slow(
                    self.rand
                        .between(Duration::from_secs(2), config.startup_timeout),
                ),
                5..=7 => Startup::Silent,
                _ => Startup::Crash(
                    self.rand
                        .between(Duration::from_millis(10), Duration::from_secs(1)),
                ),
            }
        } else {
            Startup::Normal(
                self.rand
                    .between(Duration::from_millis(20), Duration::from_millis(300)),
            )
        };
        self.record.event(
            now,
            format!("worker g{generation}: started, start-up {startup:?}"),
        );
        let (service_out, worker_in) = tokio::io::duplex(64 * 1024);
        let (worker_out, service_in) = tokio::io::duplex(64 * 1024);
        let worker = Worker {
            generation,
            rand: self.rand.clone(),
            shape: self.shape,
            record: self.record.clone(),
            clock: self.clock,
            faults_until: self.faults_until,
            heartbeat: config.heartbeat_interval,
            stall_after: config.stall_after(),
            heartbeat_timeout: config.heartbeat_timeout,
            max_frame: config.max_frame_len,
            out: worker_out,
        };
        let task = tokio::spawn(worker.run(startup, worker_in));
        Ok(WorkerLink {
            from_worker: Box::new(service_in),
            to_worker: Box::new(service_out),
            log: None,
            process: Box::new(SimProcess {
                generation,
                task: Some(task),
                status: None,
                record: self.record.clone(),
                clock: self.clock,
            }),
        })
    }
}

/// A simulated worker's life: its task.
struct SimProcess {
    generation: u32,
    task: Option<JoinHandle<i32>>,
    status: Option<Option<i32>>,
    record: Shared,
    clock: HostClock,
}

impl WorkerProcess for SimProcess {
    fn id(&self) -> Option<u32> {
        Some(10_000 + self.generation)
    }

    fn kill(&mut self) -> BoxFuture<'_, ()> {
        if let Some(task) = &self.task
            && !task.is_finished()
        {
            task.abort();
            self.record.event(
                self.clock.now(),
                format!("worker g{}: killed", self.generation),
            );
        }
        Box::pin(async move {
            let _ = self.wait().await;
        })
    }

    fn wait(&mut self) -> BoxFuture<'_, Option<i32>> {
        Box::pin(async move {
            if let Some(task) = &mut self.task {
                let status = task.await.ok();
                self.task = None;
                self.status = Some(status);
            }
            self.status.flatten()
        })
    }
}

impl Drop for SimProcess {
    fn drop(&mut self) {
        if let Some(task) = &self.task {
            task.abort();
        }
    }
}

struct Worker {
    generation: u32,
    rand: Rand,
    shape: Shape,
    record: Shared,
    clock: HostClock,
    faults_until: Duration,
    heartbeat: Duration,
    stall_after: Duration,
    heartbeat_timeout: Duration,
    max_frame: usize,
    out: DuplexStream,
}

/// A reply the worker will write at `at`, and whether it exits after it.
struct Pending {
    at: Instant,
    frame: WorkerFrame,
    exit_after: bool,
}

impl Worker {
    fn event(&self, what: impl std::fmt::Display) {
        self.record.event(
            self.clock.now(),
            format!("worker g{}: {what}", self.generation),
        );
    }

    fn faulty(&self) -> bool {
        self.clock.now() < self.faults_until
    }

    async fn write(&mut self, frame: &WorkerFrame) -> bool {
        match protocol::encode(frame) {
            Ok(bytes) => self.out.write_all(&bytes).await.is_ok(),
            Err(_) => false,
        }
    }

    /// Runs until the worker exits; its exit status.
    async fn run(mut self, startup: Startup, input: DuplexStream) -> i32 {
        let (frames_tx, mut frames) = mpsc::unbounded_channel();
        let max_frame = self.max_frame;
        let reader = tokio::spawn(async move {
            let mut input = BufReader::new(input);
            let mut buf = Vec::new();
            loop {
                match protocol::read_frame(&mut input, &mut buf, max_frame, || {}).await {
                    Ok(true) => match protocol::decode::<HostFrame>(&mut buf) {
                        Ok(frame) => {
                            if frames_tx.send(frame).is_err() {
                                return;
                            }
                        }
                        Err(_) => return,
                    },
                    _ => return,
                }
            }
        });
        let _reader = AbortOnDrop(reader);
        match startup {
            Startup::Normal(after) | Startup::Slow(after) => sleep(after).await,
            Startup::Silent => std::future::pending::<()>().await,
            Startup::Crash(after) => {
                sleep(after).await;
                self.event("crashed during start-up");
                return 1;
            }
        }
        let hello = WorkerFrame::Hello {
            protocol: PROTOCOL_VERSION,
            pid: 10_000 + self.generation,
            status: BackendStatus::Ready {
                backend: "sim".into(),
                device: "sim0".into(),
            },
        };
        if !self.write(&hello).await {
            return 0;
        }
        let mut seq = 0;
        let mut next_beat = Instant::now() + self.heartbeat;
        let mut silent_until = Instant::now();
        let mut pending: Option<Pending> = None;
        let mut crash_at: Option<Instant> = None;
        loop {
            let reply_at = pending.as_ref().map(|p| p.at.max(silent_until));
            tokio::select! {
                biased;
                () = sleep_until(crash_at.unwrap_or(next_beat)), if crash_at.is_some() => {
                    self.event("crashed");
                    return 1;
                }
                () = sleep_until(reply_at.unwrap_or(next_beat)), if reply_at.is_some() => {
                    if let Some(reply) = pending.take() {
                        if !self.write(&reply.frame).await {
                            return 0;
                        }
                        if reply.exit_after {
                            self.event("exits after a poisoned context");
                            return 3;
                        }
                    }
                }
                () = sleep_until(next_beat) => {
                    next_beat += self.heartbeat;
                    if Instant::now() < silent_until {
                        continue;
                    }
                    if pending.is_none() && self.faulty() && self.rand.chance(self.shape.fault_rate / 50.0) {
                        match self.rand.int(0, 3) {
                            0 => {
                                self.event("crashes while idle");
                                return 1;
                            }
                            1 => {
                                self.event("writes garbage while idle");
                                let _ = self.out.write_all(&[7, 7, 7, 0]).await;
                            }
                            _ => {
                                let stall = self.draw_stall();
                                self.event(format_args!("stalls {stall:?} while idle"));
                                silent_until = Instant::now() + stall;
                                continue;
                            }
                        }
                    }
                    seq += 1;
                    if !self.write(&WorkerFrame::Heartbeat { seq }).await {
                        return 0;
                    }
                }
                frame = frames.recv() => match frame {
                    Some(HostFrame::Request { id, request, .. }) => {
                        let fault = self.draw_fault();
                        if let Some(fault) = fault {
                            self.event(format_args!("request {id}: {fault:?}"));
                        }
                        let now = Instant::now();
                        let cost = plan::gpu_cost(&request);
                        let answer = |result| WorkerFrame::Reply { id, result };
                        pending = match fault {
                            None => Some(Pending { at: now + cost, frame: answer(compute(&request)), exit_after: false }),
                            Some(RequestFault::Crash(after)) => {
                                crash_at = Some(now + after);
                                None
                            }
                            Some(RequestFault::Stall(stall)) => {
                                silent_until = now + stall;
                                Some(Pending { at: now + cost, frame: answer(compute(&request)), exit_after: false })
                            }
                            Some(RequestFault::Hang) => None,
                            Some(RequestFault::Garbage) => {
                                let _ = self.out.write_all(&[0x55, 0x01, 0x02, 0]).await;
                                Some(Pending { at: now + cost, frame: answer(compute(&request)), exit_after: false })
                            }
                            Some(RequestFault::Poisoned) => Some(Pending {
                                at: now + cost,
                                frame: answer(Err(wire_error(ErrorKind::Unavailable, true, 700))),
                                exit_after: true,
                            }),
                            Some(RequestFault::CudaError) => Some(Pending {
                                at: now + cost,
                                frame: answer(Err(wire_error(ErrorKind::Transient, false, 999))),
                                exit_after: false,
                            }),
                            Some(RequestFault::SlowReply(after)) => Some(Pending { at: now + after, frame: answer(compute(&request)), exit_after: false }),
                        };
                    }
                    Some(HostFrame::Shutdown) | None => return 0,
                },
            }
        }
    }

    /// A stall shorter than the heartbeat timeout (the requests waiting fail over; the worker
    /// is kept) or longer (it is killed).
    fn draw_stall(&self) -> Duration {
        if self.rand.chance(0.5) {
            self.rand.between(
                self.stall_after + Duration::from_millis(50),
                self.heartbeat_timeout - Duration::from_millis(100),
            )
        } else {
            self.rand.between(
                self.heartbeat_timeout + Duration::from_millis(100),
                Duration::from_secs(5),
            )
        }
    }

    fn draw_fault(&self) -> Option<RequestFault> {
        if !self.faulty() || !self.rand.chance(self.shape.fault_rate) {
            return None;
        }
        Some(match self.rand.int(0, 7) {
            0 => RequestFault::Crash(self.rand.between(Duration::ZERO, Duration::from_millis(50))),
            1 => RequestFault::Stall(self.draw_stall()),
            2 => RequestFault::Hang,
            3 => RequestFault::Garbage,
            4 => RequestFault::Poisoned,
            5 => RequestFault::CudaError,
            6 => RequestFault::SlowReply(
                self.rand
                    .between(Duration::from_millis(200), Duration::from_secs(3)),
            ),
            _ => RequestFault::Stall(self.draw_stall()),
        })
    }
}

fn compute(request: &KernelRequest) -> Result<kernels::KernelResponse, WireError> {
    kernels::run_cpu(request, &|| false).map_err(|e| WireError {
        kind: ErrorKind::InvalidInput,
        poisoned: false,
        code: None,
        message: e.to_string(),
    })
}

fn wire_error(kind: ErrorKind, poisoned: bool, code: u32) -> WireError {
    WireError {
        kind,
        poisoned,
        code: Some(code),
        message: "simulated CUDA error".into(),
    }
}

/// Aborts a task when dropped.
pub(crate) struct AbortOnDrop<T>(pub JoinHandle<T>);

impl<T> Drop for AbortOnDrop<T> {
    fn drop(&mut self) {
        self.0.abort();
    }
}

/// Keeps `Arc` in use for the transport's handle (the service holds it as a trait object).
pub(crate) fn transport(t: SimTransport) -> Arc<dyn WorkerTransport> {
    Arc::new(t)
}
