//! The out-of-bounds fault kernel on a real GPU: a sticky 700, and the context is lost. It
//! gets a test binary (a process) of its own, since it spoils the context of the process it
//! runs in. Passes with a note where `cuInit` finds no device (the stub libcuda, no GPU). The
//! hang kernel never returns, so it is exercised only through the service, which kills the
//! worker (the worker's `--fault gpu-hang`).

#![cfg(feature = "cust")]
#![allow(clippy::panic)]

use std::time::{Duration, Instant};

use rustkernel_cuda::{CUDA_ERROR_ILLEGAL_ADDRESS, CudaDevice, DeviceFault, InitError, PtxSource};

#[test]
fn an_out_of_bounds_store_is_a_sticky_illegal_address() {
    let device = match CudaDevice::init(
        PtxSource::Embedded,
        Instant::now() + Duration::from_secs(60),
    ) {
        Ok(device) => device,
        Err(InitError::NoDevice) => {
            eprintln!("skipped: no CUDA device");
            return;
        }
        Err(e) => panic!("CUDA start-up failed: {e}"),
    };
    let e = device.inject(DeviceFault::OutOfBounds);
    assert_eq!(e.code, CUDA_ERROR_ILLEGAL_ADDRESS, "{e}");
    assert!(e.is_sticky(), "{e}");
    // Every later call fails: the context is lost until the process exits.
    let later = device
        .matmul(1, &[1.0], &[1.0])
        .expect_err("a lost context");
    assert!(later.is_sticky(), "{later}");
}
