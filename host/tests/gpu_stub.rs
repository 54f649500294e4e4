//! The CUDA worker on a machine without a GPU, against the stub libcuda that
//! `scripts/cuda-stub.sh` builds (cuInit answers CUDA_ERROR_NO_DEVICE): the worker says
//! "GPU unavailable: no device", the executor fails over to the CPU, and the service binary
//! does not link libcuda.
//!
//! Skipped, saying so, unless the crate is built with the `cuda` feature and
//! `RUSTKERNEL_CUDA_STUB=1` (set by the script) says the stub is the driver in use.

#![allow(clippy::panic)] // tests fail loudly

#[cfg(feature = "cuda")]
mod with_cuda {
    use std::time::Duration;

    use rustkernel_core::resilience::HealthStatus;
    use rustkernel_host::gpu::{Backend, BackendKind, GpuConfig, GpuExecutor, WorkerPhase};
    use rustkernel_host::kernels::{KernelRequest, KernelResponse, MatMulInput, MatMulOutput};

    fn against_the_stub() -> bool {
        let stub = std::env::var("RUSTKERNEL_CUDA_STUB").is_ok_and(|v| v == "1");
        if !stub {
            eprintln!("skipped: RUSTKERNEL_CUDA_STUB is not 1; run scripts/cuda-stub.sh");
        }
        stub
    }

    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn the_cuda_worker_reports_no_device_and_the_cpu_answers() {
        if !against_the_stub() {
            return;
        }
        let mut config = GpuConfig::new(env!("CARGO_BIN_EXE_rustkernel-worker"));
        config.backend = BackendKind::Cuda;
        config.nvml = false;
        config.startup_timeout = Duration::from_secs(10);
        let executor = GpuExecutor::start(config).await.expect("starts");
        executor
            .wait_for(Duration::from_secs(15), |s| {
                s.phase != WorkerPhase::Starting
            })
            .await;
        assert_eq!(
            executor.phase(),
            WorkerPhase::Unavailable {
                reason: "no device".into()
            },
            "{:?}",
            executor.status()
        );
        let health = executor.health();
        assert_eq!(
            (health.status, health.message()),
            (HealthStatus::Unhealthy, "GPU unavailable: no device")
        );
        let request = KernelRequest::MatMul(MatMulInput {
            n: 2,
            a: vec![1.0, 2.0, 3.0, 4.0],
            b: vec![5.0, 6.0, 7.0, 8.0],
        });
        let (response, backend) = executor
            .execute(request, Duration::from_secs(5))
            .await
            .expect("answers");
        assert_eq!(backend, Backend::Cpu);
        assert_eq!(
            response,
            KernelResponse::MatMul(MatMulOutput {
                n: 2,
                c: vec![19.0, 22.0, 43.0, 50.0]
            })
        );
        executor.shutdown().await;
    }

    /// A machine without the NVIDIA driver: the worker's loader cannot find `libcuda.so.1`
    /// (here: the worker's cleared environment keeps no `LD_LIBRARY_PATH` to the stub) and
    /// exits with 127 before `main`. The executor says so and does not restart it in a loop.
    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn without_a_driver_the_gpu_is_unavailable_without_a_restart_loop() {
        if !against_the_stub() {
            return;
        }
        if std::path::Path::new("/dev/nvidiactl").exists() {
            eprintln!("skipped: this machine has an NVIDIA driver");
            return;
        }
        let mut config = GpuConfig::new(env!("CARGO_BIN_EXE_rustkernel-worker"));
        config.backend = BackendKind::Cuda;
        config.nvml = false;
        config.env_passthrough = Vec::new();
        config.restart.restart_delay = Duration::from_millis(10);
        let executor = GpuExecutor::start(config).await.expect("starts");
        assert!(
            executor
                .wait_for(Duration::from_secs(15), |s| matches!(
                    s.phase,
                    WorkerPhase::Unavailable { .. }
                ))
                .await,
            "{:?}",
            executor.status()
        );
        let health = executor.health();
        assert_eq!(health.status, HealthStatus::Unhealthy);
        assert!(
            health
                .message()
                .starts_with("GPU unavailable: no NVIDIA driver"),
            "{}",
            health.message()
        );
        // A restart loop would have started more workers by now (10 ms apart).
        assert!(
            !executor
                .wait_for(Duration::from_millis(500), |s| s.workers_started > 1)
                .await,
            "{:?}",
            executor.status()
        );
        let request = KernelRequest::MatMul(MatMulInput {
            n: 1,
            a: vec![2.0],
            b: vec![3.0],
        });
        let (response, backend) = executor
            .execute(request, Duration::from_secs(5))
            .await
            .expect("answers");
        assert_eq!(backend, Backend::Cpu);
        assert_eq!(
            response,
            KernelResponse::MatMul(MatMulOutput { n: 1, c: vec![6.0] })
        );
        executor.shutdown().await;
    }

    #[test]
    fn the_worker_links_libcuda_and_the_service_does_not() {
        let needs = |path: &str| {
            let bytes = std::fs::read(path).expect("binary");
            bytes.windows(12).any(|w| w == b"libcuda.so.1")
        };
        assert!(
            needs(env!("CARGO_BIN_EXE_rustkernel-worker")),
            "the cuda worker should link libcuda"
        );
        assert!(
            !needs(env!("CARGO_BIN_EXE_rustkernel")),
            "the service binary links libcuda"
        );
    }
}

#[cfg(not(feature = "cuda"))]
#[test]
fn skipped_without_the_cuda_feature() {
    eprintln!(
        "skipped: rustkernel-host was built without the `cuda` feature; \
         scripts/cuda-stub.sh builds the stub libcuda and runs this test with it"
    );
}
