//! Deadlines on tokio's paused clock: enforcement, nesting, blocking work with cancellation,
//! `TimeoutConfig` resolution (queue time, propagation) and the wire form.

use std::cell::Cell;
use std::future::{Future, pending, poll_fn};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, mpsc};
use std::task::Poll;
use std::time::Duration;

use rustkernel_tokio::resilience::{
    CancelFlag, DeadlineBound, DeadlineContext, DeadlineExceeded, ErrorKind, ResilienceError,
    TimeoutConfig, TimeoutExt, WireDeadline, current_deadline,
};
use tokio::sync::oneshot;
use tokio::time::{Instant, advance, sleep};

const MS: Duration = Duration::from_millis(1);
const S: Duration = Duration::from_secs(1);

#[tokio::test(start_paused = true)]
async fn execute_returns_deadline_exceeded_at_the_deadline() {
    let start = Instant::now();
    let result = DeadlineContext::new(S)
        .execute(pending::<Result<(), ErrorKind>>)
        .await;
    assert_eq!(result, Err(ResilienceError::DeadlineExceeded));
    assert_eq!(start.elapsed(), S);
}

#[tokio::test(start_paused = true)]
async fn execute_returns_the_result_in_time() {
    let start = Instant::now();
    let deadline = DeadlineContext::new(S);
    let result = deadline
        .execute(|| async {
            sleep(300 * MS).await;
            Ok::<_, ErrorKind>(7)
        })
        .await;
    assert_eq!(result, Ok(7));
    assert_eq!(start.elapsed(), 300 * MS);
    let result = deadline
        .execute(|| async { Err::<(), _>(ErrorKind::Permanent) })
        .await;
    assert_eq!(
        result,
        Err(ResilienceError::Operation(ErrorKind::Permanent))
    );
    // Finishing exactly at the deadline counts as finishing.
    let result = deadline
        .execute(|| async {
            sleep(700 * MS).await;
            Ok::<_, ErrorKind>(8)
        })
        .await;
    assert_eq!(result, Ok(8));
}

#[tokio::test(start_paused = true)]
async fn nested_calls_see_the_parent_deadline_and_cannot_extend_it() {
    let start = Instant::now();
    let parent = DeadlineContext::new(S);
    assert_eq!(current_deadline(), None);
    let result = parent
        .execute(|| async move {
            assert_eq!(current_deadline(), Some(parent));
            // A fresh deadline and a child asking for more both stop at the parent's.
            assert_eq!(DeadlineContext::new(10 * S), parent);
            assert_eq!(parent.child_with_timeout(10 * S), parent);
            let short = parent.child_with_timeout(200 * MS);
            assert_eq!(short.remaining(), 200 * MS);
            // Even a detached deadline runs no longer than the parent under `execute`.
            let inner = DeadlineContext::detached(10 * S)
                .execute(|| async {
                    assert_eq!(current_deadline(), Some(parent));
                    pending::<Result<(), ErrorKind>>().await
                })
                .await;
            Ok::<_, ResilienceError<ErrorKind>>(inner)
        })
        .await;
    // The inner call ran out at the parent's deadline; the outer call, polling it first,
    // sees its result (a result and the deadline arriving together count as the result).
    assert_eq!(result, Ok(Err(ResilienceError::DeadlineExceeded)));
    assert_eq!(start.elapsed(), S);
    assert_eq!(current_deadline(), None);

    // A shorter child fires first, and the parent carries on.
    let start = Instant::now();
    let parent = DeadlineContext::new(S);
    let result = parent
        .execute(|| async move {
            let child = parent.child_with_timeout(100 * MS);
            let inner = child.execute(pending::<Result<(), ErrorKind>>).await;
            assert_eq!(inner, Err(ResilienceError::DeadlineExceeded));
            assert_eq!(current_deadline(), Some(parent));
            Ok::<_, ErrorKind>("parent continues")
        })
        .await;
    assert_eq!(result, Ok("parent continues"));
    assert_eq!(start.elapsed(), 100 * MS);
}

/// Records the current deadline when dropped.
struct SeesOnDrop(Arc<std::sync::Mutex<Option<Option<DeadlineContext>>>>);

impl Drop for SeesOnDrop {
    fn drop(&mut self) {
        if let Ok(mut seen) = self.0.lock() {
            *seen = Some(current_deadline());
        }
    }
}

#[tokio::test(start_paused = true)]
async fn a_scoped_future_has_its_deadline_while_polled_and_dropped_and_only_then() {
    let deadline = DeadlineContext::new(S);
    let seen = Arc::new(std::sync::Mutex::new(None));
    let guard = SeesOnDrop(Arc::clone(&seen));
    let mut scoped = Box::pin(deadline.scope(async move {
        let _guard = guard;
        assert_eq!(current_deadline(), Some(deadline));
        pending::<()>().await;
    }));
    poll_fn(|cx| {
        assert!(scoped.as_mut().poll(cx).is_pending());
        Poll::Ready(())
    })
    .await;
    assert_eq!(current_deadline(), None);
    // Dropped half-way, the future still sees its deadline (a breaker permit inside reads it).
    drop(scoped);
    assert_eq!(
        seen.lock().ok().and_then(|seen| *seen),
        Some(Some(deadline))
    );
    assert_eq!(current_deadline(), None);
    // A poll that panics puts the deadline before it back.
    let outer = DeadlineContext::new(2 * S);
    let inner = DeadlineContext::new(S);
    let panicked = outer
        .scope(async move {
            let mut scoped = Box::pin(inner.scope(async {
                assert_eq!(current_deadline(), Some(inner));
                std::panic::resume_unwind(Box::new("the operation panicked"));
            }));
            let result = std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| {
                let waker = std::task::Waker::noop();
                scoped
                    .as_mut()
                    .poll(&mut std::task::Context::from_waker(waker))
            }));
            (result.is_err(), current_deadline())
        })
        .await;
    assert_eq!(panicked, (true, Some(outer)));
    assert_eq!(current_deadline(), None);
}

#[tokio::test(start_paused = true)]
async fn a_passed_deadline_does_not_start_the_call() {
    let calls = Cell::new(0);
    let deadline = DeadlineContext::new(S);
    advance(S).await;
    assert_eq!(deadline.check(), Err(DeadlineExceeded));
    let result = deadline
        .execute(|| {
            calls.set(calls.get() + 1);
            async { Ok::<_, ErrorKind>(()) }
        })
        .await;
    assert_eq!(result, Err(ResilienceError::DeadlineExceeded));
    assert_eq!(calls.get(), 0);
    let result = deadline
        .execute_blocking(|_cancel| Ok::<_, ErrorKind>(()))
        .await;
    assert_eq!(result, Err(ResilienceError::DeadlineExceeded));
}

/// Blocking work that tells the test it started, waits to be released, and reports whether
/// its cancellation flag was raised by then.
fn gated_work(
    started: oneshot::Sender<CancelFlag>,
    release: mpsc::Receiver<()>,
    seen: mpsc::Sender<bool>,
) -> impl FnOnce(CancelFlag) -> Result<u32, ErrorKind> + Send + 'static {
    move |cancel: CancelFlag| {
        let _ = started.send(cancel.clone());
        let _ = release.recv();
        let _ = seen.send(cancel.is_cancelled());
        if cancel.is_cancelled() {
            Err(ErrorKind::Timeout)
        } else {
            Ok(42)
        }
    }
}

#[tokio::test(start_paused = true)]
async fn execute_blocking_returns_on_time_and_raises_the_flag() {
    let (started_tx, started_rx) = oneshot::channel();
    let (release_tx, release_rx) = mpsc::channel();
    let (seen_tx, seen_rx) = mpsc::channel();
    let start = Instant::now();
    let deadline = DeadlineContext::new(S);
    let call = tokio::spawn(deadline.execute_blocking(gated_work(started_tx, release_rx, seen_tx)));
    let flag = started_rx.await.expect("the work started");
    assert!(!flag.is_cancelled());
    // Blocking work stops tokio's auto-advance: move the clock by hand.
    advance(S).await;
    let result = call.await.expect("the call task ran");
    assert_eq!(result, Err(ResilienceError::DeadlineExceeded));
    assert_eq!(start.elapsed(), S);
    assert!(flag.is_cancelled(), "the deadline raised the flag");
    // Only now is the work released; it sees the raised flag.
    release_tx.send(()).expect("the work waits");
    assert_eq!(seen_rx.recv(), Ok(true));
}

#[tokio::test(start_paused = true)]
async fn execute_blocking_returns_the_work_result_in_time() {
    let (started_tx, started_rx) = oneshot::channel();
    let (release_tx, release_rx) = mpsc::channel();
    let (seen_tx, seen_rx) = mpsc::channel();
    let call = tokio::spawn(
        DeadlineContext::new(S).execute_blocking(gated_work(started_tx, release_rx, seen_tx)),
    );
    let flag = started_rx.await.expect("the work started");
    advance(500 * MS).await;
    release_tx.send(()).expect("the work waits");
    assert_eq!(call.await.expect("the call task ran"), Ok(42));
    assert_eq!(seen_rx.recv(), Ok(false));
    assert!(!flag.is_cancelled(), "finished work is not cancelled");

    let result = DeadlineContext::new(S)
        .execute_blocking(|_cancel| Err::<(), _>(ErrorKind::ResourceExhausted))
        .await;
    assert_eq!(
        result,
        Err(ResilienceError::Operation(ErrorKind::ResourceExhausted))
    );
}

#[tokio::test(start_paused = true)]
async fn dropping_execute_blocking_raises_the_flag() {
    let (started_tx, started_rx) = oneshot::channel();
    let (release_tx, release_rx) = mpsc::channel();
    let (seen_tx, seen_rx) = mpsc::channel();
    let call = tokio::spawn(
        DeadlineContext::new(S).execute_blocking(gated_work(started_tx, release_rx, seen_tx)),
    );
    let flag = started_rx.await.expect("the work started");
    call.abort();
    assert!(call.await.is_err_and(|e| e.is_cancelled()));
    assert!(flag.is_cancelled());
    release_tx.send(()).expect("the work waits");
    assert_eq!(seen_rx.recv(), Ok(true));
}

/// Work still queued for the blocking pool when its deadline passes never starts: with the
/// only blocking thread held past the deadline, the queued job's closure never runs.
#[test]
fn blocking_work_queued_past_its_deadline_never_starts() {
    let runtime = tokio::runtime::Builder::new_current_thread()
        .max_blocking_threads(1)
        .enable_time()
        .start_paused(true)
        .build()
        .expect("a runtime");
    runtime.block_on(async {
        // The only blocking thread runs work that waits to be released.
        let (started_tx, started_rx) = oneshot::channel();
        let (release_tx, release_rx) = mpsc::channel();
        let (seen_tx, seen_rx) = mpsc::channel();
        let holder = tokio::spawn(
            DeadlineContext::detached(60 * S)
                .execute_blocking(gated_work(started_tx, release_rx, seen_tx)),
        );
        started_rx.await.expect("the holder started");

        // A second job waits in the pool's queue behind it.
        let ran = Arc::new(AtomicBool::new(false));
        let work = {
            let ran = Arc::clone(&ran);
            move |_cancel: CancelFlag| {
                ran.store(true, Ordering::SeqCst);
                Ok::<_, ErrorKind>(())
            }
        };
        let mut queued = Box::pin(DeadlineContext::detached(S).execute_blocking(work));
        // One poll submits the work to the pool (the deadline has not passed yet).
        poll_fn(|cx| {
            assert!(queued.as_mut().poll(cx).is_pending());
            Poll::Ready(())
        })
        .await;

        // Its deadline passes while it is still queued (blocking work stops auto-advance).
        advance(S).await;
        assert_eq!(queued.await, Err(ResilienceError::DeadlineExceeded));

        // The holder finishes; the pool runs its queue in order, so once a job submitted
        // after the queued one has run, the queued one has had its turn.
        release_tx.send(()).expect("the holder waits");
        assert_eq!(holder.await.expect("the holder task ran"), Ok(42));
        assert_eq!(seen_rx.recv(), Ok(false));
        tokio::task::spawn_blocking(|| ())
            .await
            .expect("the pool runs");
        assert!(
            !ran.load(Ordering::SeqCst),
            "work that had not started by its deadline started later"
        );
    });
}

fn config(propagate_deadline: bool, include_queue_time: bool) -> TimeoutConfig {
    TimeoutConfig {
        default_timeout: 5 * S,
        max_timeout: 30 * S,
        propagate_deadline,
        include_queue_time,
    }
}

/// An operation that takes `d` and succeeds.
async fn takes(d: Duration) -> Result<&'static str, ErrorKind> {
    sleep(d).await;
    Ok("done")
}

#[tokio::test(start_paused = true)]
async fn include_queue_time_counts_the_wait_in_the_queue() {
    let enqueued_at = Instant::now();
    advance(2 * S).await;

    let counted = config(true, true)
        .resolve_deadline(None, Some(rustkernel_tokio::clock::to_core(enqueued_at)));
    assert_eq!(counted.context.remaining(), 3 * S);
    assert_eq!(counted.bound, DeadlineBound::Default);
    let ignored = config(true, false)
        .resolve_deadline(None, Some(rustkernel_tokio::clock::to_core(enqueued_at)));
    assert_eq!(ignored.context.remaining(), 5 * S);

    // A 4 s call: too long once the queue time counts (its own timeout: `Timeout`).
    let start = Instant::now();
    assert_eq!(
        counted.execute(|| takes(4 * S)).await,
        Err(ResilienceError::Timeout)
    );
    assert_eq!(start.elapsed(), 3 * S);
    let resolved = config(true, false).resolve_deadline(
        None,
        Some(rustkernel_tokio::clock::to_core(enqueued_at + 3 * S)),
    );
    assert_eq!(resolved.execute(|| takes(4 * S)).await, Ok("done"));

    // Queued past the whole timeout: not started at all.
    let stale = Instant::now() - 6 * S;
    let resolved = config(true, true)
        .resolve_deadline(Some(4 * S), Some(rustkernel_tokio::clock::to_core(stale)));
    assert_eq!(resolved.bound, DeadlineBound::Requested);
    let calls = Cell::new(0);
    let result = resolved
        .execute(|| {
            calls.set(1);
            takes(Duration::ZERO)
        })
        .await;
    assert_eq!(result, Err(ResilienceError::DeadlineExceeded));
    assert_eq!(calls.get(), 0);
}

#[tokio::test(start_paused = true)]
async fn propagate_deadline_decides_whether_the_parent_caps_the_call() {
    let parent = DeadlineContext::new(S);
    parent
        .scope(async move {
            let start = Instant::now();
            let capped = config(true, false).resolve_deadline(None, None);
            assert_eq!(
                (capped.context, capped.bound),
                (parent, DeadlineBound::Parent)
            );
            // The caller's deadline ran out: `DeadlineExceeded`, at 1 s.
            assert_eq!(
                capped.execute(|| takes(2 * S)).await,
                Err(ResilienceError::DeadlineExceeded)
            );
            assert_eq!(start.elapsed(), S);

            let start = Instant::now();
            let free = config(false, false).resolve_deadline(None, None);
            assert_eq!(free.bound, DeadlineBound::Default);
            assert_eq!(free.context.remaining(), 5 * S);
            // Not capped: the call sees its own deadline and runs its 2 s.
            let result = free
                .execute(|| async move {
                    assert_eq!(current_deadline(), Some(free.context));
                    takes(2 * S).await
                })
                .await;
            assert_eq!(result, Ok("done"));
            assert_eq!(start.elapsed(), 2 * S);

            // Requests are cut to the maximum, and a requested timeout is honoured.
            let long = config(false, false).resolve_deadline(Some(3_600 * S), None);
            assert_eq!(long.bound, DeadlineBound::MaxTimeout);
            assert_eq!(long.context.remaining(), 30 * S);
        })
        .await;
}

#[tokio::test(start_paused = true)]
async fn the_wire_form_carries_the_remaining_time() {
    let deadline = DeadlineContext::new(10 * S);
    advance(3 * S).await;
    let wire = deadline.to_wire();
    assert_eq!(wire, WireDeadline::from_remaining(7 * S));
    let mut buf = [0u8; 16];
    let bytes = postcard::to_slice(&wire, &mut buf).expect("fits");
    let received: WireDeadline = postcard::from_bytes(bytes).expect("decodes");
    // On a shared clock the round trip is exact.
    assert_eq!(DeadlineContext::from_wire(received), deadline);
    // Received later, it counts from the receiver's now.
    advance(S).await;
    assert_eq!(DeadlineContext::from_wire(received).remaining(), 7 * S);
    assert_eq!(DeadlineContext::from_wire(2 * S).remaining(), 2 * S);
    // Expired deadlines travel as zero and arrive expired.
    advance(10 * S).await;
    assert_eq!(deadline.to_wire().remaining_micros, 0);
    assert!(DeadlineContext::from_wire(deadline.to_wire()).is_expired());
}

#[tokio::test(start_paused = true)]
async fn instants_convert_both_ways() {
    let at = Instant::now() + 1_500 * MS;
    let deadline = DeadlineContext::at(at);
    // Rounded down to a whole microsecond, never later than asked.
    assert!(deadline.deadline() <= at);
    assert!(at - deadline.deadline() < Duration::from_micros(1));
    assert_eq!(deadline.remaining(), 1_500 * MS);
    assert_eq!(DeadlineContext::from_core(deadline.as_core()), deadline);
    assert!(DeadlineContext::new(S) < DeadlineContext::new(2 * S));
    // `Duration::MAX` means never.
    let never = DeadlineContext::detached(Duration::MAX);
    advance(3_600 * S).await;
    assert!(!never.is_expired());
    let result = never
        .execute(|| async { Ok::<_, ErrorKind>(1) })
        .await
        .map_err(|e: ResilienceError<ErrorKind>| e);
    assert_eq!(result, Ok(1));
    let nested: Result<u8, ResilienceError<ResilienceError<ErrorKind>>> =
        Err(ResilienceError::Operation(ResilienceError::Timeout));
    assert_eq!(
        nested.map_err(ResilienceError::flatten),
        Err(ResilienceError::Timeout)
    );
}
