//! The simulated CPU: a [`CpuRunner`] that takes the request's modelled cost in simulated time
//! ([`plan::cpu_cost`]) on the runtime it is called from, then computes the real answer
//! inline. No thread, no real clock: the same seed gives the same timings. It has no
//! contention (as many cores as requests), so whether a request fits its deadline on the CPU
//! is known exactly.

use std::sync::Arc;
use std::time::Duration;

use rustkernel_core::resilience::ResilienceError;
use rustkernel_host::kernels::{
    self, BoxFuture, CpuRunner, KernelError, KernelRequest, KernelResponse,
};
use rustkernel_tokio::deadline::current_deadline;

use crate::plan;

#[derive(Debug)]
pub(crate) struct SimCpu;

impl CpuRunner for SimCpu {
    fn run_request(
        &self,
        request: Arc<KernelRequest>,
        within: Duration,
    ) -> BoxFuture<'_, Result<KernelResponse, ResilienceError<KernelError>>> {
        let within = current_deadline().map_or(within, |d| d.remaining().min(within));
        Box::pin(async move {
            let cost = plan::cpu_cost(&request);
            if cost > within {
                tokio::time::sleep(within).await;
                return Err(ResilienceError::DeadlineExceeded);
            }
            tokio::time::sleep(cost).await;
            kernels::run_cpu(&request, &|| false).map_err(ResilienceError::Operation)
        })
    }
}
