//! Where CPU kernels run: [`KernelPool`], a bounded share of tokio's blocking threads, behind
//! [`CpuRunner`], the seam a deterministic simulation replaces (it runs kernels inline, on its
//! own clock, instead of on real threads).
//!
//! The service's own requests and the GPU executor's CPU failover run on the same pool, so the
//! `runtime` component's queue depth counts both and a failover storm cannot take more threads
//! than the service allows.

use std::future::Future;
use std::pin::Pin;
use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::Duration;

use rustkernel_core::resilience::ResilienceError;
use rustkernel_tokio::deadline::{CancelFlag, DeadlineContext, current_deadline};
use tokio::sync::Semaphore;

use super::{KernelError, KernelRequest, KernelResponse, run_cpu};

/// A boxed future, as [`CpuRunner`] returns.
pub type BoxFuture<'a, T> = Pin<Box<dyn Future<Output = T> + Send + 'a>>;

/// Runs a kernel request on the CPU within a deadline. [`KernelPool`] in production; a
/// simulation gives its own (inline, deterministic).
pub trait CpuRunner: Send + Sync + 'static {
    /// Runs `request` within `within` (capped by the current deadline): the result, the
    /// kernel's error, or `DeadlineExceeded` when the deadline passed first (the kernel is
    /// then cancelled at its next check).
    fn run_request(
        &self,
        request: Arc<KernelRequest>,
        within: Duration,
    ) -> BoxFuture<'_, Result<KernelResponse, ResilienceError<KernelError>>>;
}

/// The most work, in [`work_units`], that runs inline on the async worker instead of on the
/// blocking pool: about 10-30 µs of CPU, less than the two thread wake-ups of a pool hop.
pub const INLINE_WORK_UNITS: u64 = 16_384;

/// An upper bound of a request's work: PageRank (nodes + edges) x max iterations (a job's
/// chunk: x its iterations), matmul n³.
#[must_use]
pub fn work_units(request: &KernelRequest) -> u64 {
    match request {
        KernelRequest::PageRank(input) => {
            let per_iteration = u64::from(input.num_nodes)
                .saturating_add(u64::try_from(input.edges.len()).unwrap_or(u64::MAX));
            per_iteration.saturating_mul(u64::from(input.max_iterations.max(1)))
        }
        KernelRequest::MatMul(input) => u64::from(input.n).saturating_pow(3),
        KernelRequest::PageRankSteps(steps) => {
            let per_iteration = u64::from(steps.input.num_nodes)
                .saturating_add(u64::try_from(steps.input.edges.len()).unwrap_or(u64::MAX));
            per_iteration.saturating_mul(u64::from(steps.iterations.max(1)))
        }
    }
}

/// The blocking pool that runs CPU kernels: at most `threads` at once on tokio's blocking
/// threads; the rest wait in a queue whose depth the `runtime` component watches.
#[derive(Debug)]
pub struct KernelPool {
    permits: Arc<Semaphore>,
    queued: AtomicUsize,
    running: Arc<AtomicUsize>,
}

impl KernelPool {
    /// A pool of `threads` blocking threads.
    #[must_use]
    pub fn new(threads: usize) -> Self {
        Self {
            permits: Arc::new(Semaphore::new(threads)),
            queued: AtomicUsize::new(0),
            running: Arc::new(AtomicUsize::new(0)),
        }
    }

    /// Jobs waiting for a thread.
    #[must_use]
    pub fn queued(&self) -> usize {
        self.queued.load(Ordering::Relaxed)
    }

    /// Jobs running.
    #[must_use]
    pub fn running(&self) -> usize {
        self.running.load(Ordering::Relaxed)
    }

    /// Runs `work` on a pool thread under the current deadline: it waits for a thread at most
    /// until the deadline, never starts after it, and gets a [`CancelFlag`] raised when the
    /// deadline passes. The thread stays counted until the work returns.
    ///
    /// # Errors
    /// `DeadlineExceeded` when the deadline passed first; `Operation(e)` with the work's error.
    pub async fn run<T, E, F>(&self, work: F) -> Result<T, ResilienceError<E>>
    where
        F: FnOnce(CancelFlag) -> Result<T, E> + Send + 'static,
        T: Send + 'static,
        E: Send + 'static,
    {
        self.queued.fetch_add(1, Ordering::Relaxed);
        let queue = QueueGuard(&self.queued);
        let permit = self.permits.clone().acquire_owned().await;
        drop(queue);
        let Ok(permit) = permit else {
            // The semaphore is never closed; a closed one means the service is going away.
            return Err(ResilienceError::Timeout);
        };
        let running = self.running.clone();
        let deadline =
            current_deadline().unwrap_or_else(|| DeadlineContext::detached(Duration::MAX));
        deadline
            .execute_blocking(move |cancel| {
                running.fetch_add(1, Ordering::Relaxed);
                let result = work(cancel);
                running.fetch_sub(1, Ordering::Relaxed);
                drop(permit);
                result
            })
            .await
    }
}

/// Takes a job off the queue count when it leaves the queue, however it leaves.
struct QueueGuard<'a>(&'a AtomicUsize);

impl Drop for QueueGuard<'_> {
    fn drop(&mut self) {
        self.0.fetch_sub(1, Ordering::Relaxed);
    }
}

impl CpuRunner for KernelPool {
    fn run_request(
        &self,
        request: Arc<KernelRequest>,
        within: Duration,
    ) -> BoxFuture<'_, Result<KernelResponse, ResilienceError<KernelError>>> {
        Box::pin(
            DeadlineContext::detached(within)
                .scope(self.run(move |cancel| run_cpu(&request, &|| cancel.is_cancelled()))),
        )
    }
}
