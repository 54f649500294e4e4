//! The GPU worker's side: its command line, its backends and its loop.
//!
//! The worker is a separate process (`rustkernel-worker`) because a CUDA kernel cannot be
//! cancelled and a sticky CUDA error spoils the context until the process exits: the service
//! owns every deadline and kills the worker when one passes. The loop is:
//!
//! 1. bring the backend up (for CUDA: `cuInit`, the PTX, a tiny kernel, under a deadline);
//! 2. send [`WorkerFrame::Hello`] saying whether it is ready; exit with
//!    [`EXIT_UNAVAILABLE`] if it is not;
//! 3. start a heartbeat thread that sends [`WorkerFrame::Heartbeat`] every interval, even
//!    while a kernel runs;
//! 4. read [`HostFrame`]s from stdin and answer each request with one
//!    [`WorkerFrame::Reply`]; after a reply whose error is `poisoned`, exit with
//!    [`EXIT_POISONED`]; at the end of stdin or on [`HostFrame::Shutdown`], exit with 0.
//!
//! The environment is cleared by the service, so everything the worker needs comes on its
//! command line ([`WorkerArgs`]), fault injection for tests included ([`FaultKind`]).

use std::io::{self, BufReader, BufWriter, Write};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use rustkernel_core::error::ErrorKind;

pub use super::args::{
    BackendKind, EXIT_CRASH_FAULT, EXIT_POISONED, EXIT_PROTOCOL, EXIT_UNAVAILABLE, FaultKind,
    WorkerArgs,
};
pub use super::backend::{CpuBackend, GpuBackend, kernel_wire_error};
use super::protocol::{self, BackendStatus, HostFrame, PROTOCOL_VERSION, WireError, WorkerFrame};

/// Frames to stdout, whole, from the loop and the heartbeat thread.
#[derive(Clone)]
struct Out(Arc<Mutex<BufWriter<io::Stdout>>>);

impl Out {
    fn send(&self, frame: &WorkerFrame) -> io::Result<()> {
        let wire = protocol::encode(frame).map_err(io::Error::other)?;
        self.raw(&wire)
    }

    fn raw(&self, bytes: &[u8]) -> io::Result<()> {
        let mut out = self
            .0
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner);
        out.write_all(bytes)?;
        out.flush()
    }
}

/// Runs the worker until its stdin ends; returns the process exit status.
///
/// `init` brings the backend up (it is given the arguments and the start-up deadline); an
/// `Err` is the reason the backend is unavailable, sent in the `Hello` frame.
pub fn run<F>(args: &WorkerArgs, init: F) -> i32
where
    F: FnOnce(&WorkerArgs, Instant) -> Result<Box<dyn GpuBackend>, String>,
{
    close_inherited_fds();
    let out = Out(Arc::new(Mutex::new(BufWriter::new(io::stdout()))));
    let init_deadline = Instant::now() + Duration::from_millis(args.init_timeout_ms);
    let mut backend = match init(args, init_deadline) {
        Ok(backend) => backend,
        Err(reason) => {
            let hello = WorkerFrame::Hello {
                protocol: PROTOCOL_VERSION,
                pid: std::process::id(),
                status: BackendStatus::Unavailable { reason },
            };
            let _ = out.send(&hello);
            return EXIT_UNAVAILABLE;
        }
    };
    let hello = WorkerFrame::Hello {
        protocol: PROTOCOL_VERSION,
        pid: std::process::id(),
        status: BackendStatus::Ready {
            backend: backend.name().into(),
            device: backend.device(),
        },
    };
    if out.send(&hello).is_err() {
        return EXIT_PROTOCOL;
    }
    let heartbeats_stopped = Arc::new(AtomicBool::new(false));
    spawn_heartbeats(
        out.clone(),
        Duration::from_millis(args.heartbeat_ms.max(1)),
        heartbeats_stopped.clone(),
    );

    // `--fault-on 0`: the fault comes right after Hello, before any request (a device that
    // dies as soon as it is used).
    if let Some(fault) = args.fault.filter(|_| args.fault_on == 0)
        && let Some(status) = inject(fault, 0, &out, &heartbeats_stopped, backend.as_mut())
    {
        return status;
    }
    let mut stdin = BufReader::with_capacity(64 * 1024, io::stdin().lock());
    let mut buf = Vec::new();
    let mut served = 0u64;
    loop {
        match protocol::read_frame_blocking(&mut stdin, &mut buf, args.max_frame_bytes) {
            Ok(true) => {}
            Ok(false) => return 0,
            Err(e) => {
                eprintln!("rustkernel-worker: reading stdin: {e}");
                return EXIT_PROTOCOL;
            }
        }
        let frame = match protocol::decode::<HostFrame>(&mut buf) {
            Ok(frame) => frame,
            Err(e) => {
                eprintln!("rustkernel-worker: {e}");
                return EXIT_PROTOCOL;
            }
        };
        let (id, deadline, request) = match frame {
            HostFrame::Shutdown => return 0,
            HostFrame::Request {
                id,
                deadline,
                request,
            } => (id, deadline, request),
        };
        served += 1;
        // The wire deadline counted from the worker's own clock ("none", u64::MAX
        // microseconds, is a year: far enough, and no overflow).
        let now = Instant::now();
        let deadline = now
            .checked_add(deadline.remaining())
            .unwrap_or_else(|| now + Duration::from_secs(365 * 86_400));
        if let Some(fault) = args.fault.filter(|_| served == args.fault_on)
            && let Some(status) = inject(fault, id, &out, &heartbeats_stopped, backend.as_mut())
        {
            return status;
        }
        let result = backend.run(&request, deadline);
        let poisoned = matches!(&result, Err(e) if e.poisoned);
        if out.send(&WorkerFrame::Reply { id, result }).is_err() {
            return EXIT_PROTOCOL;
        }
        if poisoned {
            return EXIT_POISONED;
        }
    }
}

/// Closes every descriptor above 2 the worker was started with.
///
/// The service's own descriptors are close-on-exec (the standard library opens them so), but
/// a descriptor the service itself inherited without that flag from its parent (a shell's
/// redirect, a supervisor's pipe) would pass on to the worker; the worker closes them before
/// doing anything else, so it holds exactly its stdin, stdout and stderr. Linux only (it lists
/// `/proc/self/fd`); elsewhere a no-op.
pub fn close_inherited_fds() {
    #[cfg(target_os = "linux")]
    {
        let fds: Vec<i32> = std::fs::read_dir("/proc/self/fd")
            .map(|dir| {
                dir.filter_map(|entry| entry.ok()?.file_name().to_str()?.parse().ok())
                    .filter(|&fd: &i32| fd > 2)
                    .collect()
            })
            .unwrap_or_default();
        // The directory's own descriptor is in the list and already closed: EBADF, ignored.
        for fd in fds {
            let _ = nix::unistd::close(fd);
        }
    }
}

fn spawn_heartbeats(out: Out, interval: Duration, stopped: Arc<AtomicBool>) {
    std::thread::spawn(move || {
        let mut seq = 0u64;
        loop {
            std::thread::sleep(interval);
            if stopped.load(Ordering::Relaxed) {
                continue;
            }
            if out.send(&WorkerFrame::Heartbeat { seq }).is_err() {
                return;
            }
            seq = seq.wrapping_add(1);
        }
    });
}

/// Carries out a fault; `Some(status)` when the worker is to exit with it. The device faults
/// go to the backend first ([`GpuBackend::inject_fault`]); without a device they stand in as
/// [`FaultKind::Poisoned`] and [`FaultKind::Hang`] do.
fn inject(
    fault: FaultKind,
    id: u64,
    out: &Out,
    heartbeats_stopped: &AtomicBool,
    backend: &mut dyn GpuBackend,
) -> Option<i32> {
    if let Some(error) = backend.inject_fault(fault) {
        let _ = out.send(&WorkerFrame::Reply {
            id,
            result: Err(error),
        });
        return Some(EXIT_POISONED);
    }
    match fault {
        FaultKind::Crash => {
            let wire = protocol::encode(&WorkerFrame::Reply {
                id,
                result: Err(WireError {
                    kind: ErrorKind::Transient,
                    poisoned: false,
                    code: None,
                    message: "crash".into(),
                }),
            })
            .unwrap_or_default();
            let _ = out.raw(wire.get(..wire.len() / 2).unwrap_or_default());
            Some(EXIT_CRASH_FAULT)
        }
        FaultKind::Hang | FaultKind::GpuHang => loop {
            std::thread::sleep(Duration::from_secs(3600));
        },
        FaultKind::Garbage => {
            let _ = out.raw(&[0xFF, 0x13, 0x37, 0x42, 0x00]);
            None
        }
        FaultKind::SlowHeartbeats => {
            heartbeats_stopped.store(true, Ordering::Relaxed);
            loop {
                std::thread::sleep(Duration::from_secs(3600));
            }
        }
        FaultKind::Poisoned | FaultKind::GpuOutOfBounds => {
            let reply = WorkerFrame::Reply {
                id,
                result: Err(WireError {
                    kind: ErrorKind::Permanent,
                    poisoned: true,
                    code: Some(700),
                    message: "CUDA_ERROR_ILLEGAL_ADDRESS: an illegal memory access was encountered (injected)".into(),
                }),
            };
            let _ = out.send(&reply);
            Some(EXIT_POISONED)
        }
    }
}

/// Starts the CPU backend; the `init` for [`run`] when `--backend cpu`.
///
/// # Errors
/// Never; the signature matches [`run`]'s `init`.
pub fn init_cpu(_args: &WorkerArgs, _deadline: Instant) -> Result<Box<dyn GpuBackend>, String> {
    Ok(Box::new(CpuBackend))
}

/// Starts the CUDA backend; the `init` for [`run`] when `--backend cuda`.
///
/// # Errors
/// Why the GPU cannot be used (`"no device"`, `"no PTX"`, a CUDA error), or, in a worker
/// built without the `cuda` feature, that it was.
pub fn init_cuda(args: &WorkerArgs, deadline: Instant) -> Result<Box<dyn GpuBackend>, String> {
    #[cfg(feature = "cuda")]
    {
        super::cuda_backend::init(args, deadline)
    }
    #[cfg(not(feature = "cuda"))]
    {
        let _ = (args, deadline);
        Err("worker built without CUDA (the `cuda` feature)".into())
    }
}

#[cfg(test)]
mod tests {
    use clap::Parser;

    use super::*;
    use crate::kernels::{KernelRequest, KernelResponse, MatMulInput, MatMulOutput};

    #[test]
    fn command_line_parses_every_fault() {
        let args = WorkerArgs::try_parse_from([
            "w",
            "--backend",
            "cpu",
            "--heartbeat-ms",
            "20",
            "--fault",
            "slow-heartbeats",
            "--fault-on",
            "2",
        ])
        .expect("parses");
        assert_eq!(args.fault, Some(FaultKind::SlowHeartbeats));
        assert_eq!((args.heartbeat_ms, args.fault_on), (20, 2));
        for kind in [
            FaultKind::Crash,
            FaultKind::Hang,
            FaultKind::Garbage,
            FaultKind::SlowHeartbeats,
            FaultKind::Poisoned,
            FaultKind::GpuOutOfBounds,
            FaultKind::GpuHang,
        ] {
            let args = WorkerArgs::try_parse_from(["w", "--fault", kind.as_str()]).expect("parses");
            assert_eq!(args.fault, Some(kind));
        }
        assert!(WorkerArgs::try_parse_from(["w", "--fault", "nope"]).is_err());
    }

    #[test]
    fn cpu_backend_runs_and_times_out() {
        let mut backend = CpuBackend;
        let request = KernelRequest::MatMul(MatMulInput {
            n: 1,
            a: vec![2.0],
            b: vec![4.0],
        });
        let far = Instant::now() + Duration::from_secs(60);
        assert_eq!(
            backend.run(&request, far),
            Ok(KernelResponse::MatMul(MatMulOutput { n: 1, c: vec![8.0] }))
        );
        let past = Instant::now();
        let err = backend.run(&request, past).expect_err("deadline passed");
        assert_eq!((err.kind, err.poisoned), (ErrorKind::Timeout, false));
    }
}
