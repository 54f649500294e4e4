//! A client of a remote kernel service over an unreliable link: retries with backoff, a retry
//! budget shared by every caller, the server's retry-after hints, and one deadline that flows
//! from the request through nested calls, across the process boundary, and into CPU-bound work
//! that stops when it passes.
//!
//! ```text
//! cargo run -p rustkernel-tokio --example retry_deadline
//! ```
//!
//! Runs on the real clock in under a second.

use std::error::Error;
use std::fmt;
use std::io;
use std::sync::atomic::{AtomicU32, Ordering};
use std::time::Duration;

use rustkernel_tokio::clock;
use rustkernel_tokio::deadline::{CancelFlag, ResolvedDeadline};
use rustkernel_tokio::resilience::{
    BackoffStrategy, ConfigError, ConfigField, DeadlineBound, DeadlineContext, DeadlineExceeded,
    ErrorKind, Instant, ResilienceError, Retrier, RetryAfterHint, RetryBudgetConfig, RetryConfig,
    RetryExt, SharedRetryBudget, TimeoutConfig, TimeoutExt, WireDeadline, current_deadline,
    io_error_kind,
};
use rustkernel_tokio::retry::NoHint;

/// What the remote service answers when it sheds load: 503 with a Retry-After.
#[derive(Debug)]
struct Busy {
    retry_after: Duration,
}

impl fmt::Display for Busy {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "busy, retry after {} ms", self.retry_after.as_millis())
    }
}

/// The server's own wait replaces the backoff's delay, as an HTTP client honours
/// `Retry-After`.
#[derive(Clone, Copy, Debug)]
struct HonourRetryAfter;

impl RetryAfterHint<Busy> for HonourRetryAfter {
    fn retry_after(&self, error: &Busy) -> Option<Duration> {
        Some(error.retry_after)
    }
}

/// A link that drops the first `drops` calls with `ConnectionReset`.
#[derive(Debug)]
struct Link {
    calls: AtomicU32,
    drops: u32,
}

impl Link {
    const fn new(drops: u32) -> Self {
        Self {
            calls: AtomicU32::new(0),
            drops,
        }
    }

    async fn send(&self, payload: &str) -> Result<String, io::Error> {
        let n = self.calls.fetch_add(1, Ordering::Relaxed);
        tokio::time::sleep(Duration::from_millis(2)).await;
        if n < self.drops {
            Err(io::ErrorKind::ConnectionReset.into())
        } else {
            Ok(format!("{payload}: done after {} attempts", n + 1))
        }
    }
}

/// The remote side: it reads the deadline off the wire and works until it is due.
async fn remote_kernel(wire: WireDeadline, steps: u32) -> Result<u32, ResilienceError<io::Error>> {
    let deadline = DeadlineContext::from_wire(wire);
    println!(
        "  remote: {} ms left on arrival",
        deadline.remaining().as_millis()
    );
    deadline
        .execute(|| async move {
            for _ in 0..steps {
                tokio::time::sleep(Duration::from_millis(10)).await;
            }
            Ok::<_, io::Error>(steps)
        })
        .await
}

/// CPU-bound work that checks its cancel flag between blocks.
fn power_iteration(cancel: &CancelFlag, blocks: u32) -> Result<u32, &'static str> {
    for done in 0..blocks {
        if cancel.is_cancelled() {
            println!("  worker: cancelled after {done} of {blocks} blocks");
            return Err("cancelled");
        }
        std::thread::sleep(Duration::from_millis(5));
    }
    Ok(blocks)
}

fn describe(error: &ConfigError) -> &'static str {
    match error {
        ConfigError::Zero(ConfigField::MaxAttempts) => "max_attempts is zero",
        ConfigError::EmptyRetryableErrors => "nothing is retryable",
        _ => "another mistake",
    }
}

#[tokio::main]
async fn main() -> Result<(), Box<dyn Error>> {
    // The chapter's form: the config runs the operation.
    let config = RetryConfig {
        max_attempts: 4,
        backoff: BackoffStrategy::Exponential {
            initial: Duration::from_millis(5),
            max: Duration::from_millis(40),
            multiplier: 2.0,
        },
        retryable_errors: [ErrorKind::Transient, ErrorKind::Unavailable].into(),
    };
    let link = Link::new(2);
    let reply = config.execute(|| link.send("pagerank")).await?;
    println!("RetryConfig::execute: {reply}");
    println!(
        "ConnectionReset is {}, ConnectionRefused {}",
        io_error_kind(io::ErrorKind::ConnectionReset),
        io_error_kind(io::ErrorKind::ConnectionRefused)
    );

    // A config from a file: checked before the service starts.
    let broken = RetryConfig {
        max_attempts: 0,
        ..config
    };
    if let Err(error) = Retrier::try_new(broken) {
        println!("retry config rejected: {error} ({})", describe(&error));
    }

    // Every caller of one callee shares a budget: retries add at most 10 % to the traffic.
    let budget = SharedRetryBudget::try_new(RetryBudgetConfig {
        window: Duration::from_secs(10),
        min_retries_per_second: 1,
        retry_ratio: 0.1,
    })?;
    let retrier: Retrier<NoHint> = Retrier::new(config).seed(7).budget(budget.clone());
    println!(
        "budget: {} retries available, ratio {}",
        budget.available(),
        budget.config().retry_ratio
    );
    let flaky = Link::new(100); // a callee that is down
    let mut refused = 0;
    for _ in 0..5 {
        if retrier.execute(|| flaky.send("matmul")).await.is_err() {
            refused += 1;
        }
    }
    println!(
        "a dead callee: {refused} calls failed after {} attempts in all (not 5 x {}); \
         {} retries left in the shared budget of {:?}",
        flaky.calls.load(Ordering::Relaxed),
        retrier.config().max_attempts,
        retrier
            .shared_budget()
            .map_or(0, SharedRetryBudget::available),
        retrier.config().backoff,
    );
    // A caller outside the retrier (a hedged request) takes from the same budget.
    budget.deposit();
    println!("hedge allowed: {}", budget.try_withdraw());

    // The server says how long to wait; its error type is another crate's, so a closure
    // classifies it.
    let shedding = AtomicU32::new(0);
    let hinted = Retrier::new(config)
        .retry_after(HonourRetryAfter)
        .classify_with(|_: &Busy| ErrorKind::Unavailable);
    let started = tokio::time::Instant::now();
    let result = hinted
        .execute(|| async {
            if shedding.fetch_add(1, Ordering::Relaxed) == 0 {
                Err(Busy {
                    retry_after: Duration::from_millis(60),
                })
            } else {
                Ok("served")
            }
        })
        .await;
    println!(
        "503 Retry-After 60 ms: {result:?} after {} ms",
        started.elapsed().as_millis()
    );

    // A request arrives with 100 ms; the service's timeout config turns it into a deadline.
    let timeouts = TimeoutConfig {
        default_timeout: Duration::from_millis(200),
        max_timeout: Duration::from_secs(1),
        propagate_deadline: true,
        include_queue_time: true,
    };
    let enqueued = tokio::time::Instant::now();
    let resolved: ResolvedDeadline = timeouts.resolve_deadline(
        Some(Duration::from_millis(100)),
        Some(rustkernel_tokio::clock::to_core(enqueued)),
    );
    println!(
        "request deadline: {} ms, set by {:?}",
        resolved.context.remaining().as_millis(),
        resolved.bound
    );
    let outcome = resolved
        .execute(|| async {
            let deadline = current_deadline().ok_or(ErrorKind::Permanent)?;
            // A nested call asks for 5 s and is held to what is left.
            let child = deadline.child_with_timeout(Duration::from_secs(5));
            println!(
                "  nested call: {} ms left, not 5000 (expired: {})",
                child.remaining().as_millis(),
                child.is_expired()
            );
            // The remote side gets the remaining time on the wire and stops at it.
            let wire = child.to_wire();
            remote_kernel(wire, 3).await.map_err(|e| e.kind())
        })
        .await;
    println!("within the deadline: {outcome:?}");

    // A call whose caller has only 15 ms: the caller's deadline is what runs out.
    let caller = DeadlineContext::new(Duration::from_millis(15));
    let nested = caller
        .scope(async {
            let resolved = timeouts.resolve_deadline(None, None);
            println!(
                "  nested resolve: bound {:?} (default 200 ms capped by the caller)",
                resolved.bound
            );
            let future = resolved.execute(|| async {
                // The remote side hears of the caller's deadline, not of a fresh one.
                let wire = current_deadline().map(DeadlineContext::to_wire);
                remote_kernel(wire.unwrap_or_default(), 5).await
            });
            println!(
                "  the call's deadline: {} ms from now",
                future.deadline().remaining().as_millis()
            );
            future.await
        })
        .await;
    println!("caller's deadline passed: {nested:?}");
    if resolved.bound == DeadlineBound::Requested {
        println!("(the first request's own timeout was the earliest bound)");
    }

    // CPU-bound work runs on the blocking pool; the call returns at the deadline and the work
    // sees its flag.
    let blocking = DeadlineContext::new(Duration::from_millis(30))
        .execute_blocking(|cancel| power_iteration(&cancel, 100))
        .await;
    println!("blocking work: {blocking:?}");
    tokio::time::sleep(Duration::from_millis(10)).await; // let the worker print
    // The resolved form of the same thing: its own timeout is a Timeout.
    let own = timeouts
        .resolve_deadline(Some(Duration::from_millis(20)), None)
        .execute_blocking(|cancel| power_iteration(&cancel, 100))
        .await;
    println!("blocking work past its own timeout: {own:?}");
    tokio::time::sleep(Duration::from_millis(10)).await;
    // A flag can be raised by hand (a client disconnected).
    let hung_up = CancelFlag::new();
    hung_up.cancel();
    println!("client gone: {:?}", power_iteration(&hung_up, 10));

    // Another crate's error type under a deadline: a closure gives its kind.
    let absolute = DeadlineContext::at(tokio::time::Instant::now() + Duration::from_millis(5));
    let slow = absolute
        .execute_classified(
            |_: &Busy| ErrorKind::Unavailable,
            || async {
                tokio::time::sleep(Duration::from_millis(50)).await;
                Ok::<_, Busy>(())
            },
        )
        .await;
    println!("execute_classified past the deadline: {slow:?}");
    let check: Result<(), DeadlineExceeded> = absolute.check();
    println!("check after it passed: {check:?}");

    // The core's view, for code that is runtime-free (a frame encoder, the embassy side).
    let core = absolute.as_core();
    let back = DeadlineContext::from_core(core);
    println!(
        "core deadline at {} on the adapter's clock (its epoch is the core's {}); \
         round trip equal: {}",
        core.deadline(),
        clock::to_core(clock::epoch()),
        back == absolute
    );
    println!(
        "a received WireDeadline of 0 us is expired: {}; Instant::ZERO is the epoch: {}",
        WireDeadline::default().is_expired(),
        clock::to_tokio(Instant::ZERO) == clock::epoch()
    );
    let resolved_core = resolved.as_core();
    println!(
        "resolved deadline in the core: bound {:?}, same after a round trip: {}",
        resolved_core.bound,
        ResolvedDeadline::from_core(resolved_core) == resolved
    );

    // Cheap timestamps for hot paths (a tick of the OS clock, 1 to 4 ms, coarser).
    clock::calibrate_coarse();
    let (precise, coarse) = (clock::now(), clock::coarse_now());
    println!(
        "coarse clock behind the precise one by {} us (never ahead: {})",
        precise.saturating_duration_since(coarse).as_micros(),
        coarse <= precise
    );
    Ok(())
}
