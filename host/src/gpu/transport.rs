//! How the service reaches a worker: [`WorkerTransport`] starts one and hands back its byte
//! streams and a handle on its life ([`WorkerLink`]). [`PipeTransport`] (production) spawns
//! `rustkernel-worker` and talks over its stdin and stdout; a deterministic simulation gives
//! its own transport (an in-memory worker over `tokio::io::duplex`) and runs the same
//! supervisor, deadlines and failover against it.
//!
//! # The worker's environment and descriptors
//! [`PipeTransport`] starts the worker with a cleared environment (`env_clear`) plus only the
//! variables named in [`GpuConfig::env_passthrough`] (by default `PATH`, `LD_LIBRARY_PATH` and
//! `CUDA_*`): the service's tokens never reach it. It keeps three descriptors, its stdin,
//! stdout and stderr pipes: the standard library opens every descriptor with `O_CLOEXEC` and
//! `Command` sets up only 0, 1 and 2 in the child, so nothing the service opened (sockets,
//! files) is inherited; descriptors the service itself inherited without `O_CLOEXEC` from its
//! parent would pass through `exec`, so the worker closes everything above 2 as its first act
//! ([`close_inherited_fds`](super::worker::close_inherited_fds)). A test reads the running
//! worker's `/proc/<pid>/environ` and `/proc/<pid>/fd`.

use std::fmt;
use std::io;
use std::process::Stdio;

use tokio::io::{AsyncRead, AsyncWrite};
use tokio::process::{Child, Command};

use super::GpuConfig;
use crate::kernels::BoxFuture;

/// Starts workers. One transport serves every worker the supervisor starts.
pub trait WorkerTransport: Send + Sync + 'static {
    /// Starts worker number `generation` (0 = the first) as `config` says and connects to it.
    ///
    /// # Errors
    /// Why it could not start (an executable that is missing is reported to users as the GPU
    /// path being unavailable, not as a crash).
    fn start(&self, config: &GpuConfig, generation: u32) -> io::Result<WorkerLink>;
}

/// A started worker: its frames in both directions, its log lines, and its life.
pub struct WorkerLink {
    /// The worker's frames (its stdout).
    pub from_worker: Box<dyn AsyncRead + Send + Unpin>,
    /// The service's frames (its stdin); dropping it tells the worker to exit.
    pub to_worker: Box<dyn AsyncWrite + Send + Unpin>,
    /// The worker's log lines (its stderr), logged by the service; `None` for none.
    pub log: Option<Box<dyn AsyncRead + Send + Unpin>>,
    /// The worker's life: its id, kill and wait.
    pub process: Box<dyn WorkerProcess>,
}

impl fmt::Debug for WorkerLink {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("WorkerLink")
            .field("id", &self.process.id())
            .finish_non_exhaustive()
    }
}

/// A running worker's life. Dropping it must end the worker (a process is killed).
pub trait WorkerProcess: Send {
    /// The process id, while it runs (`None` for a worker that is not a process).
    fn id(&self) -> Option<u32>;
    /// Ends the worker now (`SIGKILL` for a process); harmless when it already ended.
    fn kill(&mut self) -> BoxFuture<'_, ()>;
    /// Waits until the worker has ended: its exit code, `None` when it had none (killed by a
    /// signal) or it cannot be known.
    fn wait(&mut self) -> BoxFuture<'_, Option<i32>>;
}

/// Spawns `rustkernel-worker` ([`GpuConfig::worker_path`]) with [`GpuConfig::worker_args`]
/// and [`GpuConfig::worker_env`], its stdin, stdout and stderr piped, killed when dropped.
#[derive(Clone, Copy, Debug, Default)]
pub struct PipeTransport;

impl WorkerTransport for PipeTransport {
    fn start(&self, config: &GpuConfig, generation: u32) -> io::Result<WorkerLink> {
        let mut child = Command::new(&config.worker_path)
            .args(config.worker_args(generation))
            .env_clear()
            .envs(config.worker_env())
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .kill_on_drop(true)
            .spawn()?;
        let (Some(stdin), Some(stdout), Some(stderr)) =
            (child.stdin.take(), child.stdout.take(), child.stderr.take())
        else {
            // Unreachable: all three were asked for; `kill_on_drop` ends the child.
            return Err(io::Error::other("the worker's pipes are missing"));
        };
        Ok(WorkerLink {
            from_worker: Box::new(stdout),
            to_worker: Box::new(stdin),
            log: Some(Box::new(stderr)),
            process: Box::new(ChildProcess(child)),
        })
    }
}

/// A child process as a [`WorkerProcess`].
struct ChildProcess(Child);

impl WorkerProcess for ChildProcess {
    fn id(&self) -> Option<u32> {
        self.0.id()
    }

    fn kill(&mut self) -> BoxFuture<'_, ()> {
        Box::pin(async move {
            let _ = self.0.kill().await;
        })
    }

    fn wait(&mut self) -> BoxFuture<'_, Option<i32>> {
        Box::pin(async move { self.0.wait().await.ok().and_then(|status| status.code()) })
    }
}
