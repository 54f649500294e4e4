//! Round trip to the GPU worker: a request frame out, a reply frame in, with a trivial kernel
//! (a 1 x 1 matmul on the worker's CPU backend), 10,000 times; prints p50 and p99.
//!
//! ```text
//! cargo build --release -p rustkernel-host --bin rustkernel-worker
//! cargo run --release -p rustkernel-host --example worker_roundtrip
//! ```
//!
//! Two measurements: `executor` is `GpuExecutor::execute` (validation, the breaker, the
//! supervisor task, the pipes, the worker); `pipe` is the frames alone over the worker's
//! pipes from a blocking thread, the floor under it.

#![allow(
    clippy::unwrap_used,
    clippy::indexing_slicing,
    clippy::cast_possible_truncation
)] // an example

use std::io::{BufReader, Write};
use std::path::PathBuf;
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use rustkernel_host::gpu::protocol::{self, HostFrame, WorkerFrame};
use rustkernel_host::gpu::{Backend, BackendKind, GpuConfig, GpuExecutor};
use rustkernel_host::kernels::{KernelRequest, MatMulInput};

const CALLS: usize = 10_000;
const WARM_UP: usize = 1_000;

fn worker_path() -> PathBuf {
    let exe = std::env::current_exe().unwrap();
    // target/<profile>/examples/worker_roundtrip -> target/<profile>/rustkernel-worker
    exe.parent()
        .unwrap()
        .parent()
        .unwrap()
        .join("rustkernel-worker")
}

fn request() -> KernelRequest {
    KernelRequest::MatMul(MatMulInput {
        n: 1,
        a: vec![2.0],
        b: vec![3.0],
    })
}

fn report(name: &str, mut samples: Vec<Duration>) {
    samples.sort_unstable();
    let at = |q: f64| samples[((samples.len() as f64 - 1.0) * q).round() as usize];
    let mean = samples.iter().sum::<Duration>() / samples.len() as u32;
    println!(
        "{name:>8}: p50 {:>7.1} us  p99 {:>7.1} us  mean {:>7.1} us  max {:>8.1} us  ({} calls)",
        at(0.50).as_secs_f64() * 1e6,
        at(0.99).as_secs_f64() * 1e6,
        mean.as_secs_f64() * 1e6,
        at(1.0).as_secs_f64() * 1e6,
        samples.len()
    );
}

fn pipe_round_trips(worker: &PathBuf) -> Vec<Duration> {
    let mut child = Command::new(worker)
        .args(["--backend", "cpu", "--heartbeat-ms", "1000"])
        .env_clear()
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .spawn()
        .unwrap();
    let mut stdin = child.stdin.take().unwrap();
    let mut stdout = BufReader::new(child.stdout.take().unwrap());
    let mut buf = Vec::new();
    assert!(protocol::read_frame_blocking(&mut stdout, &mut buf, protocol::MAX_FRAME_LEN).unwrap()); // Hello
    let mut samples = Vec::with_capacity(CALLS);
    for id in 0..(WARM_UP + CALLS) as u64 {
        let frame = HostFrame::Request {
            id,
            deadline: rustkernel_core::resilience::WireDeadline::from_remaining(
                Duration::from_secs(1),
            ),
            request: request(),
        };
        let started = Instant::now();
        stdin.write_all(&protocol::encode(&frame).unwrap()).unwrap();
        loop {
            assert!(
                protocol::read_frame_blocking(&mut stdout, &mut buf, protocol::MAX_FRAME_LEN)
                    .unwrap()
            );
            if let WorkerFrame::Reply { id: got, result } = protocol::decode(&mut buf).unwrap() {
                assert_eq!(got, id);
                assert!(result.is_ok());
                break;
            }
        }
        if id >= WARM_UP as u64 {
            samples.push(started.elapsed());
        }
    }
    drop(stdin);
    child.wait().unwrap();
    samples
}

#[tokio::main]
async fn main() {
    let worker = worker_path();
    assert!(
        worker.exists(),
        "build the worker first: cargo build --release -p rustkernel-host --bin rustkernel-worker"
    );
    let mut config = GpuConfig::new(&worker);
    config.backend = BackendKind::Cpu;
    config.nvml = false;
    let executor = GpuExecutor::start(config).await.unwrap();
    // The executor serves at once (on the CPU); the round trip is the worker's, so wait for it.
    assert!(
        executor
            .wait_for(Duration::from_secs(30), |s| matches!(
                s.phase,
                rustkernel_host::gpu::WorkerPhase::Ready { .. }
            ))
            .await,
        "worker not ready: {:?}",
        executor.status()
    );
    let mut samples = Vec::with_capacity(CALLS);
    for i in 0..WARM_UP + CALLS {
        let started = Instant::now();
        let (_, backend) = executor
            .execute(request(), Duration::from_secs(1))
            .await
            .unwrap();
        if i >= WARM_UP {
            samples.push(started.elapsed());
        }
        assert_eq!(backend, Backend::Gpu, "the worker answered");
    }
    executor.shutdown().await;
    report("executor", samples);
    let pipe = tokio::task::spawn_blocking(move || pipe_round_trips(&worker))
        .await
        .unwrap();
    report("pipe", pipe);
}
