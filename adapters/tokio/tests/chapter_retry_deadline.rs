//! The chapter's "Retry with Backoff" and "Deadline Context" snippets, run on tokio's paused
//! clock. Each snippet is pasted as the chapter writes it, with only its `use` lines changed
//! (and `vec![..]` replaced by an array's `.into()`), inside a function that gives it a
//! `kernel`, an `input` and a return type for `?`.

use std::fmt;
use std::sync::atomic::{AtomicU32, Ordering};
use std::time::Duration;

use rustkernel_tokio::resilience::{Classify, ErrorKind};
use tokio::time::Instant;

/// A kernel's error, classified for retry.
#[derive(Clone, Copy, Debug, PartialEq)]
struct KernelError {
    kind: ErrorKind,
}

impl fmt::Display for KernelError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "kernel failed: {}", self.kind)
    }
}

impl std::error::Error for KernelError {}

impl Classify for KernelError {
    fn kind(&self) -> ErrorKind {
        self.kind
    }
}

/// A kernel that fails its first `failures` calls with `kind`, and takes `work` per call.
struct Kernel {
    failures: u32,
    kind: ErrorKind,
    work: Duration,
    calls: AtomicU32,
}

impl Kernel {
    fn new(failures: u32, kind: ErrorKind, work: Duration) -> Self {
        Self {
            failures,
            kind,
            work,
            calls: AtomicU32::new(0),
        }
    }

    async fn execute(&self, input: u64) -> Result<u64, KernelError> {
        let call = self.calls.fetch_add(1, Ordering::SeqCst) + 1;
        tokio::time::sleep(self.work).await;
        if call <= self.failures {
            Err(KernelError { kind: self.kind })
        } else {
            Ok(input * 2)
        }
    }

    fn calls(&self) -> u32 {
        self.calls.load(Ordering::SeqCst)
    }
}

mod retry_with_backoff {
    use super::{Kernel, KernelError};
    use rustkernel_tokio::resilience::{
        BackoffStrategy, ErrorKind, ResilienceError, RetryConfig, RetryExt,
    };
    use std::time::Duration;

    pub(crate) async fn snippet(
        kernel: &Kernel,
        input: u64,
    ) -> Result<u64, ResilienceError<KernelError>> {
        // ---- the chapter's snippet ----
        let config = RetryConfig {
            max_attempts: 3,
            backoff: BackoffStrategy::ExponentialWithJitter {
                initial: Duration::from_millis(100),
                max: Duration::from_secs(10),
                multiplier: 2.0,
            },
            retryable_errors: [ErrorKind::Transient, ErrorKind::Timeout].into(),
        };

        let result = config.execute(|| kernel.execute(input)).await?;
        // ---- end of the snippet ----
        Ok(result)
    }
}

mod deadline_context {
    use super::{Kernel, KernelError};
    use rustkernel_tokio::resilience::DeadlineContext;
    use rustkernel_tokio::resilience::ResilienceError::{self, DeadlineExceeded};
    use std::time::Duration;

    pub(crate) async fn snippet(
        kernel: &Kernel,
        input: u64,
    ) -> Result<(u64, DeadlineContext), ResilienceError<KernelError>> {
        // ---- the chapter's snippet ----
        let deadline = DeadlineContext::new(Duration::from_secs(10));

        // Check remaining time
        if deadline.remaining() < Duration::from_secs(1) {
            return Err(DeadlineExceeded);
        }

        // Execute with deadline
        let result = deadline.execute(|| kernel.execute(input)).await?;

        // Create child deadline for downstream calls
        let child = deadline.child_with_timeout(Duration::from_secs(5));
        // ---- end of the snippet ----
        Ok((result, child))
    }
}

const MS: Duration = Duration::from_millis(1);
const S: Duration = Duration::from_secs(1);

#[tokio::test(start_paused = true)]
async fn retry_snippet_retries_transient_failures() {
    use rustkernel_tokio::resilience::ResilienceError;
    let kernel = Kernel::new(2, ErrorKind::Transient, 10 * MS);
    let start = Instant::now();
    assert_eq!(retry_with_backoff::snippet(&kernel, 21).await, Ok(42));
    assert_eq!(kernel.calls(), 3);
    // Three 10 ms calls and two jittered waits of at most 100 and 200 ms.
    let elapsed = start.elapsed();
    assert!(elapsed >= 30 * MS && elapsed <= 330 * MS, "{elapsed:?}");

    // Timeouts are retried too; after three attempts the last real error comes back.
    let kernel = Kernel::new(10, ErrorKind::Timeout, 10 * MS);
    assert_eq!(
        retry_with_backoff::snippet(&kernel, 1).await,
        Err(ResilienceError::Operation(KernelError {
            kind: ErrorKind::Timeout
        }))
    );
    assert_eq!(kernel.calls(), 3);
}

#[tokio::test(start_paused = true)]
async fn retry_snippet_does_not_retry_other_kinds() {
    use rustkernel_tokio::resilience::ResilienceError;
    let kernel = Kernel::new(1, ErrorKind::InvalidInput, 10 * MS);
    let start = Instant::now();
    assert_eq!(
        retry_with_backoff::snippet(&kernel, 1).await,
        Err(ResilienceError::Operation(KernelError {
            kind: ErrorKind::InvalidInput
        }))
    );
    assert_eq!(kernel.calls(), 1);
    assert_eq!(start.elapsed(), 10 * MS);
}

#[tokio::test(start_paused = true)]
async fn retry_snippet_errors_work_with_question_mark_into_box_dyn_error() {
    async fn caller(kernel: &Kernel) -> Result<u64, Box<dyn std::error::Error + Send + Sync>> {
        Ok(retry_with_backoff::snippet(kernel, 5).await?)
    }
    let kernel = Kernel::new(5, ErrorKind::Permanent, MS);
    let error = caller(&kernel).await.err().map(|e| e.to_string());
    assert_eq!(
        error.as_deref(),
        Some("operation failed: kernel failed: permanent")
    );
}

#[tokio::test(start_paused = true)]
async fn deadline_snippet_runs_the_kernel_and_derives_a_child() {
    let kernel = Kernel::new(0, ErrorKind::Transient, 2 * S);
    let start = Instant::now();
    let (result, child) = deadline_context::snippet(&kernel, 21)
        .await
        .expect("in time");
    assert_eq!(result, 42);
    assert_eq!(start.elapsed(), 2 * S);
    // Eight seconds were left; the child asked for five.
    assert_eq!(child.remaining(), 5 * S);
}

#[tokio::test(start_paused = true)]
async fn deadline_snippet_stops_a_slow_kernel_at_the_deadline() {
    use rustkernel_tokio::resilience::ResilienceError;
    let kernel = Kernel::new(0, ErrorKind::Transient, 60 * S);
    let start = Instant::now();
    let result = deadline_context::snippet(&kernel, 1).await;
    assert_eq!(result, Err(ResilienceError::DeadlineExceeded));
    assert_eq!(start.elapsed(), 10 * S);

    let failing = Kernel::new(1, ErrorKind::Unavailable, MS);
    assert_eq!(
        deadline_context::snippet(&failing, 1).await,
        Err(ResilienceError::Operation(KernelError {
            kind: ErrorKind::Unavailable
        }))
    );
}

#[tokio::test(start_paused = true)]
async fn deadline_snippet_inside_a_short_caller_returns_early() {
    use rustkernel_tokio::resilience::{DeadlineContext, ResilienceError};
    // The caller has half a second left: the snippet's 10 s deadline cannot outlive it, so
    // its "less than a second remains" check returns at once, without running the kernel.
    let kernel = Kernel::new(0, ErrorKind::Transient, MS);
    let caller = DeadlineContext::new(500 * MS);
    let result = caller
        .execute(|| deadline_context::snippet(&kernel, 1))
        .await;
    // Flat: the inner deadline's error is the outer call's, one level.
    assert_eq!(result, Err(ResilienceError::DeadlineExceeded));
    assert_eq!(kernel.calls(), 0);
}
