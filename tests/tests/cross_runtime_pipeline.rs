//! One configuration through the tokio and the embassy `Pipeline`, over the same scripted
//! operation: both must give the same errors.
//!
//! Each attempt of the operation takes a scripted time, then returns a scripted outcome. The same
//! calls (a request's own timeout, time spent queued, a caller's deadline) run on tokio's paused
//! clock and on embassy-time's mock driver; what each call returned, how many attempts it made,
//! how many times the operation ran and how much virtual time passed must agree, and each
//! scenario also says what that is. Which error a passed deadline gives is the core's rule
//! (`rustkernel_core::resilience::ResolvedDeadline`), called by both adapters. No real sleeps.

use core::time::Duration;
use std::cell::Cell;
use std::future::Future;
use std::pin::pin;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex, MutexGuard};
use std::task::{Context, Poll, Wake, Waker};

use embassy_sync::blocking_mutex::raw::CriticalSectionRawMutex;
use embassy_time::MockDriver;
use rustkernel_core::error::{ByClassify, ErrorKind, ErrorKindSet, ResilienceError};
use rustkernel_core::resilience::{
    BackoffStrategy, CircuitBreakerConfig, PipelineConfig, RetryConfig, TimeoutConfig, WireDeadline,
};

/// The one configuration every scenario runs: attempts cut at 300 ms, three of them 100 ms
/// apart, a 1 s call (2 s at most), the caller's deadline propagated, queue time counted, and
/// a breaker that opens after three failures in a row.
const CONFIG: PipelineConfig = PipelineConfig {
    circuit_breaker: CircuitBreakerConfig {
        failure_threshold: 3,
        timeout: Duration::from_secs(30),
        ..CircuitBreakerConfig::DEFAULT
    },
    retry: RetryConfig {
        max_attempts: 3,
        backoff: BackoffStrategy::Fixed {
            delay: Duration::from_millis(100),
        },
        retryable_errors: ErrorKindSet::of(&[
            ErrorKind::Transient,
            ErrorKind::Timeout,
            ErrorKind::Unavailable,
        ]),
    },
    timeout: TimeoutConfig {
        default_timeout: Duration::from_secs(1),
        max_timeout: Duration::from_secs(2),
        propagate_deadline: true,
        include_queue_time: true,
    },
    attempt_timeout: Some(Duration::from_millis(300)),
};

/// One attempt of the scripted operation: how long it takes, then what it returns.
#[derive(Clone, Copy, Debug)]
struct Step {
    takes: Duration,
    returns: Result<u32, ErrorKind>,
}

const fn step(takes_ms: u64, returns: Result<u32, ErrorKind>) -> Step {
    Step {
        takes: Duration::from_millis(takes_ms),
        returns,
    }
}

/// An attempt that outlasts every deadline here.
const HANGS: Step = step(60_000, Ok(0));

/// One call on the pipeline: what the caller asks for, and the operation's script (attempts
/// take its steps in order; past the end, the last step repeats).
#[derive(Clone, Copy, Debug, Default)]
struct Call {
    /// The request's own timeout (`None`: the configuration's default).
    timeout: Option<Duration>,
    /// How long the request waited in a queue before the call.
    queued: Duration,
    /// The caller's deadline, this long after the call starts.
    parent: Option<Duration>,
    script: &'static [Step],
}

impl Call {
    const fn of(script: &'static [Step]) -> Self {
        Self {
            timeout: None,
            queued: Duration::ZERO,
            parent: None,
            script,
        }
    }

    fn step(&self, index: u32) -> Step {
        let last = self.script.len().saturating_sub(1);
        let at = usize::try_from(index).map_or(last, |index| index.min(last));
        self.script.get(at).copied().unwrap_or(HANGS)
    }
}

/// What one call gave, on either runtime.
#[derive(Clone, Debug, PartialEq, Eq)]
struct Seen {
    result: Result<u32, ResilienceError<ErrorKind>>,
    attempts: u32,
    /// How many times the operation itself ran (breaker rejections do not run it).
    ran: u32,
    /// Virtual time from the call's start to its result.
    took: Duration,
}

const fn seen(
    result: Result<u32, ResilienceError<ErrorKind>>,
    attempts: u32,
    ran: u32,
    took_ms: u64,
) -> Seen {
    Seen {
        result,
        attempts,
        ran,
        took: Duration::from_millis(took_ms),
    }
}

// ---------- tokio, on its paused clock ----------

fn on_tokio(calls: &[Call]) -> Vec<Seen> {
    use rustkernel_tokio::resilience::{DeadlineContext, Pipeline, RequestDeadline};
    use tokio::time::{Instant, advance, sleep};

    let runtime = tokio::runtime::Builder::new_current_thread()
        .enable_time()
        .start_paused(true)
        .build()
        .expect("a runtime");
    runtime.block_on(async {
        let pipeline = Pipeline::try_new(CONFIG).expect("valid");
        let mut seen = Vec::new();
        for call in calls {
            let enqueued_at = Instant::now();
            advance(call.queued).await;
            let start = Instant::now();
            let ran = Cell::new(0_u32);
            let op = || {
                let step = call.step(ran.get());
                ran.set(ran.get() + 1);
                async move {
                    if !step.takes.is_zero() {
                        sleep(step.takes).await;
                    }
                    step.returns
                }
            };
            let request = Some(RequestDeadline {
                timeout: call.timeout,
                enqueued_at: Some(rustkernel_tokio::clock::to_core(enqueued_at)),
            });
            let run = pipeline.execute_outcome(request, op);
            let outcome = match call.parent {
                Some(parent) => DeadlineContext::new(parent).scope(run).await,
                None => run.await,
            };
            seen.push(Seen {
                result: outcome.result,
                attempts: outcome.attempts,
                ran: ran.get(),
                took: start.elapsed(),
            });
        }
        seen
    })
}

// ---------- embassy, on the mock driver ----------

/// The mock driver is one global clock: an embassy run takes it for its whole length.
static MOCK_CLOCK: Mutex<()> = Mutex::new(());

fn mock_clock() -> MutexGuard<'static, ()> {
    let guard = MOCK_CLOCK
        .lock()
        .unwrap_or_else(|poisoned| poisoned.into_inner());
    MockDriver::get().reset();
    guard
}

struct Flag(AtomicBool);

impl Wake for Flag {
    fn wake(self: Arc<Self>) {
        self.0.store(true, Ordering::SeqCst);
    }
}

/// Runs `fut` to completion on the mock clock: whenever it is pending and nothing woke it, the
/// clock moves 1 ms forward (every scripted time is whole milliseconds).
fn block_on_mock<F: Future>(fut: F) -> F::Output {
    let flag = Arc::new(Flag(AtomicBool::new(true)));
    let waker = Waker::from(flag.clone());
    let mut cx = Context::from_waker(&waker);
    let mut fut = pin!(fut);
    let start = embassy_time::Instant::now();
    loop {
        if flag.0.swap(false, Ordering::SeqCst) {
            if let Poll::Ready(output) = fut.as_mut().poll(&mut cx) {
                return output;
            }
            continue;
        }
        assert!(
            start.elapsed() < embassy_time::Duration::from_secs(3_600),
            "the call did not finish within a virtual hour"
        );
        MockDriver::get().advance(embassy_time::Duration::from_millis(1));
    }
}

fn embassy_duration(d: Duration) -> embassy_time::Duration {
    embassy_time::Duration::from_micros(u64::try_from(d.as_micros()).unwrap_or(u64::MAX))
}

fn on_embassy(calls: &[Call]) -> Vec<Seen> {
    use embassy_time::{Instant, Timer};
    use rustkernel_embassy::Pipeline;
    use rustkernel_embassy::deadline::DeadlineContext;
    use rustkernel_embassy::pipeline::RequestDeadline;

    let _clock = mock_clock();
    let pipeline: Pipeline<CriticalSectionRawMutex> = Pipeline::try_new(CONFIG, 1).expect("valid");
    let mut seen = Vec::new();
    for call in calls {
        let enqueued_at = Instant::now();
        MockDriver::get().advance(embassy_duration(call.queued));
        let start = Instant::now();
        let ran = Cell::new(0_u32);
        let op = || {
            let step = call.step(ran.get());
            ran.set(ran.get() + 1);
            async move {
                if !step.takes.is_zero() {
                    Timer::after(embassy_duration(step.takes)).await;
                }
                step.returns
            }
        };
        let request = RequestDeadline {
            timeout: call.timeout,
            enqueued_at: Some(enqueued_at),
            parent: call.parent.map(DeadlineContext::new),
        };
        let outcome = block_on_mock(pipeline.execute_request(request, &ByClassify, op));
        seen.push(Seen {
            result: outcome.result,
            attempts: outcome.attempts,
            ran: ran.get(),
            took: Duration::from_micros(start.elapsed().as_micros()),
        });
    }
    seen
}

/// Runs `calls` on one pipeline of each runtime, checks they agree, and returns what they gave.
fn on_both(calls: &[Call]) -> Vec<Seen> {
    let tokio = on_tokio(calls);
    let embassy = on_embassy(calls);
    assert_eq!(tokio, embassy, "tokio (left) and embassy (right) disagree");
    tokio
}

// ---------- scenarios ----------

#[test]
fn success_and_a_retried_transient_failure() {
    const FIRST: &[Step] = &[step(50, Ok(7))];
    const SECOND: &[Step] = &[step(50, Err(ErrorKind::Transient)), step(50, Ok(8))];
    assert_eq!(
        on_both(&[Call::of(FIRST), Call::of(SECOND)]),
        [seen(Ok(7), 1, 1, 50), seen(Ok(8), 2, 2, 200)]
    );
}

#[test]
fn a_permanent_error_comes_back_as_it_is_without_retries() {
    const SCRIPT: &[Step] = &[step(10, Err(ErrorKind::Permanent))];
    assert_eq!(
        on_both(&[Call::of(SCRIPT)]),
        [seen(
            Err(ResilienceError::Operation(ErrorKind::Permanent)),
            1,
            1,
            10
        )]
    );
}

/// Attempts cut at 300 ms, retried after 100 ms; the third would end after the call's own 1 s,
/// which cuts it: the call's own deadline is a `Timeout`.
#[test]
fn the_calls_own_deadline_passing_is_a_timeout() {
    assert_eq!(
        on_both(&[Call::of(&[HANGS])]),
        [seen(Err(ResilienceError::Timeout), 3, 3, 1_000)]
    );
}

/// The caller's deadline (500 ms) comes before the call's own: its passing is the caller's
/// `DeadlineExceeded`, not the call's `Timeout`. A later caller's deadline changes nothing.
#[test]
fn a_callers_deadline_passing_is_deadline_exceeded() {
    let early = Call {
        parent: Some(Duration::from_millis(500)),
        ..Call::of(&[HANGS])
    };
    let late = Call {
        parent: Some(Duration::from_secs(5)),
        ..Call::of(&[HANGS])
    };
    assert_eq!(
        on_both(&[early]),
        [seen(Err(ResilienceError::DeadlineExceeded), 2, 2, 500)]
    );
    assert_eq!(
        on_both(&[late]),
        [seen(Err(ResilienceError::Timeout), 3, 3, 1_000)]
    );
    // On one pipeline, the breaker remembers the first call's two failures (its second attempt,
    // cut by the caller's deadline, counts as a timeout too): the second call's first cut
    // attempt makes three in a row, and its next two attempts are rejected.
    assert_eq!(
        on_both(&[early, late]),
        [
            seen(Err(ResilienceError::DeadlineExceeded), 2, 2, 500),
            seen(Err(ResilienceError::CircuitOpen), 3, 1, 500),
        ]
    );
}

/// A call with no time left when it would start is not attempted: queued longer than its
/// whole timeout, or sent with a zero deadline on the wire.
#[test]
fn a_call_with_no_time_left_is_deadline_exceeded_and_never_runs() {
    const QUICK: &[Step] = &[step(1, Ok(1))];
    let queued = Call {
        queued: Duration::from_millis(1_500),
        ..Call::of(QUICK)
    };
    let nothing_left = Call {
        timeout: Some(WireDeadline::from_remaining(Duration::ZERO).remaining()),
        ..Call::of(QUICK)
    };
    let expired = seen(Err(ResilienceError::DeadlineExceeded), 0, 0, 0);
    assert_eq!(on_both(&[queued, nothing_left]), [expired.clone(), expired]);
    // Queued, but with time left: the rest of the 1 s.
    let some_left = Call {
        queued: Duration::from_millis(900),
        ..Call::of(&[HANGS])
    };
    assert_eq!(
        on_both(&[some_left]),
        [seen(Err(ResilienceError::Timeout), 1, 1, 100)]
    );
}

/// A request for an hour is cut to `max_timeout` (2 s); here the attempts run out first, and
/// the last attempt's own timeout comes back.
#[test]
fn a_long_request_is_clamped_and_attempt_timeouts_are_timeouts() {
    let long = Call {
        timeout: Some(Duration::from_secs(3_600)),
        ..Call::of(&[HANGS])
    };
    assert_eq!(
        on_both(&[long]),
        [seen(Err(ResilienceError::Timeout), 3, 3, 1_100)]
    );
}

/// Three failures open the breaker: the next call's attempts are rejected without running, and
/// the rejection is the top-level error.
#[test]
fn an_open_breaker_rejects_the_next_call() {
    const FAILS: &[Step] = &[step(10, Err(ErrorKind::Unavailable))];
    assert_eq!(
        on_both(&[Call::of(FAILS), Call::of(FAILS)]),
        [
            seen(
                Err(ResilienceError::Operation(ErrorKind::Unavailable)),
                3,
                3,
                230
            ),
            seen(Err(ResilienceError::CircuitOpen), 3, 0, 200),
        ]
    );
}
