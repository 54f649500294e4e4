//! One circuit breaker shared by many tasks in front of a flaky dependency: how it opens on a
//! failure rate, how a driver publishes its timers, how probes close it again, what an operator
//! can do to it, and how errors of other crates are classified.
//!
//! ```text
//! cargo run -p rustkernel-tokio --example shared_breaker
//! ```
//!
//! Runs on the real clock in about a second.

use std::error::Error;
use std::io;
use std::sync::Arc;
use std::sync::atomic::{AtomicU32, Ordering};
use std::time::Duration;

use rustkernel_tokio::breaker::{
    CircuitBreaker, ConfiguredWindow, CountWindow, NoWindow, Rejected, SlidingWindow,
    TRANSITION_CAPACITY, TimeWindow, WindowCounts,
};
use rustkernel_tokio::classify;
use rustkernel_tokio::resilience::{
    AfterMaxWait, CircuitBreakerConfig, CircuitBreakerStats, CircuitState, Classify, ErrorKind,
    ErrorKindSet, OpenBackoff, OpenReason, ResilienceError, Transition, Trip,
};

/// The dependency's error: an overloaded model server.
#[derive(Debug, PartialEq)]
struct Overloaded;

impl std::fmt::Display for Overloaded {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("model server overloaded")
    }
}

impl Error for Overloaded {}

impl Classify for Overloaded {
    fn kind(&self) -> ErrorKind {
        ErrorKind::ResourceExhausted
    }
}

/// A model server that fails the calls whose number is in `failing`.
#[derive(Debug, Default)]
struct ModelServer {
    calls: AtomicU32,
}

impl ModelServer {
    async fn infer(&self, failing: impl Fn(u32) -> bool) -> Result<u32, Overloaded> {
        let n = self.calls.fetch_add(1, Ordering::Relaxed);
        tokio::time::sleep(Duration::from_millis(1)).await;
        if failing(n) { Err(Overloaded) } else { Ok(n) }
    }
}

/// One line about any breaker, whatever its window.
fn describe<W: SlidingWindow>(breaker: &CircuitBreaker<W>) -> String {
    let stats: CircuitBreakerStats = breaker.stats();
    let window: WindowCounts = breaker.window_counts();
    format!(
        "{}: {} | {} ok, {} failed, {} rejected, {} slow | window {}/{} failed",
        breaker.name(),
        breaker.state(),
        stats.success_count,
        stats.failure_count,
        stats.rejected_count,
        stats.slow_call_count,
        window.failures,
        window.calls,
    )
}

/// Why the breaker last opened, in words for an operator.
fn opened_because(stats: &CircuitBreakerStats) -> String {
    match stats.trip {
        Some(Trip {
            reason: OpenReason::FailureRate,
            calls,
            failures,
            ..
        }) => format!("{failures} of the last {calls} calls failed"),
        Some(Trip {
            reason: OpenReason::SlowCallRate,
            calls,
            slow,
            ..
        }) => format!("{slow} of the last {calls} calls were slow"),
        Some(trip) => trip.to_string(),
        None => "it has not opened".to_owned(),
    }
}

#[tokio::main]
async fn main() -> Result<(), Box<dyn Error>> {
    // A configuration from a file is checked before it is used.
    let typo = CircuitBreakerConfig {
        failure_rate_threshold: Some(1.5),
        ..Default::default()
    };
    match CircuitBreaker::try_new(typo) {
        Err(error) => println!("config rejected: {error}"),
        Ok(_) => return Err("a 150 % failure rate was accepted".into()),
    }

    // Open at half of the last 20 calls failing, once 10 are in; doubling open times.
    let config = CircuitBreakerConfig {
        failure_rate_threshold: Some(0.5),
        minimum_calls: 10,
        timeout: Duration::from_millis(50),
        success_threshold: 2,
        half_open_max_calls: 2,
        open_backoff: Some(OpenBackoff {
            multiplier: 2.0,
            max: Duration::from_secs(1),
        }),
        after_max_wait_in_half_open: AfterMaxWait::Open,
        ignored_errors: ErrorKindSet::from([ErrorKind::InvalidInput]),
        ..Default::default()
    };
    let breaker = CircuitBreaker::builder(config)
        .name("model-server")
        .window(CountWindow::<20>::new())
        .try_build()?;

    // Every transition, in order (the receiver holds TRANSITION_CAPACITY unread ones), and the
    // latest state for whoever only needs that.
    let mut transitions = breaker.subscribe_transitions();
    let log = tokio::spawn(async move {
        let mut seen: Vec<Transition> = Vec::new();
        while let Ok(transition) = transitions.recv().await {
            println!("  transition: {transition}");
            seen.push(transition);
        }
        seen
    });
    let mut state = breaker.subscribe();
    println!("transition log holds {TRANSITION_CAPACITY} unread transitions");

    // Eight tasks share the breaker (a cheap clone); the server starts failing after 8 calls.
    let server = Arc::new(ModelServer::default());
    let mut tasks = Vec::new();
    for _ in 0..8 {
        let (breaker, server) = (breaker.clone(), Arc::clone(&server));
        tasks.push(tokio::spawn(async move {
            let (mut ok, mut failed, mut rejected) = (0, 0, 0);
            for _ in 0..4 {
                match breaker.call(|| server.infer(|n| n >= 8)).await {
                    Ok(_) => ok += 1,
                    Err(ResilienceError::Operation(Overloaded)) => failed += 1,
                    Err(ResilienceError::CircuitOpen) => rejected += 1,
                    Err(other) => return Err(format!("unexpected {other:?}")),
                }
            }
            Ok((ok, failed, rejected))
        }));
    }
    let (mut ok, mut failed, mut rejected) = (0, 0, 0);
    for task in tasks {
        let (o, f, r) = task.await??;
        (ok, failed, rejected) = (ok + o, failed + f, rejected + r);
    }
    println!("32 calls from 8 tasks: {ok} ok, {failed} overloaded, {rejected} rejected");
    state.changed().await?;
    println!("watched state: {}", *state.borrow_and_update());
    println!("{}", describe(&breaker));
    println!("opened because {}", opened_because(&breaker.stats()));

    // An HTTP front end answers 503 with Retry-After while the breaker is open.
    if let Some(wait) = breaker.retry_after() {
        println!("Retry-After: {} ms", wait.as_millis());
    }
    match breaker.try_acquire() {
        Err(Rejected {
            state, retry_at, ..
        }) => println!(
            "try_acquire refused by {state}, retry at {} on the adapter's clock",
            retry_at.map_or_else(|| "no time".to_owned(), |at| at.to_string())
        ),
        Ok(_) => return Err("an open breaker admitted a call".into()),
    }

    // A driver publishes the state as soon as the open time ends, without waiting for a call.
    while breaker.state() == CircuitState::Open {
        let due = breaker.poll_at().ok_or("an open breaker has no timer")?;
        tokio::time::sleep_until(due).await;
        breaker.poll();
    }
    println!("after the open time: {}", breaker.state());

    // Half-open: each probe holds a slot; the server has recovered.
    let healthy = |_| false;
    let probe = breaker.try_acquire().map_err(|r| r.to_string())?;
    println!(
        "probe admitted: is_probe {}, cycle {}",
        probe.is_probe(),
        probe.generation()
    );
    probe.run(server.infer(healthy)).await?;
    // An owned permit can move into a spawned task (as a tower response future holds one).
    let owned = breaker.try_acquire_owned().map_err(|r| r.to_string())?;
    let probing = owned.is_probe();
    let result = tokio::spawn({
        let server = Arc::clone(&server);
        async move {
            let result = server.infer(healthy).await;
            match &result {
                Ok(_) => owned.success(),
                Err(error) => owned.failure(error.kind()),
            }
            result
        }
    })
    .await?;
    println!("owned probe (is_probe {probing}): {result:?}");
    println!("{}", describe(&breaker));

    // Another crate's errors: a classifier instead of a Classify impl.
    let timed = breaker.classify_with(classify::elapsed);
    let slow = timed
        .call(|| tokio::time::timeout(Duration::from_millis(5), std::future::pending::<u32>()))
        .await;
    println!(
        "tokio timeout through {}: {slow:?} (kind {})",
        timed.breaker().name(),
        slow.as_ref()
            .map_or_else(|e| e.kind_with(classify::elapsed), |_| ErrorKind::Transient)
    );
    let refused = io::Error::from(io::ErrorKind::ConnectionRefused);
    let boxed: Box<dyn Error + Send + Sync> = Box::new(io::Error::other("disk full"));
    println!(
        "io::Error {} -> {}, boxed {} -> {}",
        refused,
        classify::std_error(&refused),
        boxed,
        classify::boxed(&boxed)
    );

    // Operator controls: a maintenance window, an outage plan, a kill switch, a reset.
    let pushed = breaker.force_open_for(Duration::from_millis(20));
    println!("maintenance: {:?}", pushed.map(|t| t.to_string()));
    println!(
        "Retry-After during maintenance: {} ms",
        breaker.retry_after().unwrap_or_default().as_millis()
    );
    let until = tokio::time::Instant::now() + Duration::from_millis(10);
    breaker.force_open_until(until);
    tokio::time::sleep_until(until).await;
    breaker.poll();
    println!("after the planned outage: {}", breaker.state());
    breaker.disable();
    let passed = breaker.call(|| server.infer(|_| true)).await;
    println!(
        "disabled: a failing call still passes through ({passed:?}), state {}",
        breaker.state()
    );
    breaker.reset();
    println!(
        "reset: {} (failure rate threshold {:?})",
        breaker.state(),
        breaker.config().failure_rate_threshold
    );
    // A caller's bad request is not the server's fault: an ignored kind counts for nothing.
    let failures = breaker.stats().failure_count;
    let bad = breaker
        .call(|| async { Err::<(), _>(ErrorKind::InvalidInput) })
        .await;
    println!(
        "bad request {bad:?}: failures still {} (was {failures})",
        breaker.stats().failure_count
    );

    // Slow calls over a window by time, timed on the coarse clock (cheap reads, ms resolution).
    let slow_config = CircuitBreakerConfig {
        slow_call_duration: Some(Duration::from_millis(20)),
        slow_call_rate_threshold: 0.5,
        minimum_calls: 4,
        window_duration: Some(Duration::from_secs(1)),
        timeout: Duration::from_millis(50),
        ..Default::default()
    };
    let by_time = CircuitBreaker::builder(slow_config)
        .name("slow-model")
        .window(TimeWindow::<10>::new())
        .coarse_clock()
        .build();
    for _ in 0..4 {
        let result = by_time
            .call(|| async {
                tokio::time::sleep(Duration::from_millis(30)).await;
                Ok::<_, Overloaded>(())
            })
            .await;
        if result.is_err() {
            break;
        }
    }
    println!("{}", describe(&by_time));
    println!("opened because {}", opened_because(&by_time.stats()));

    // A breaker whose mode comes from a configuration file: one type for every mode.
    let from_file = CircuitBreakerConfig {
        failure_threshold: 3,
        ..Default::default()
    };
    let configured = CircuitBreaker::builder(from_file)
        .name("configured")
        .window(ConfiguredWindow::<100, 10>::new())
        .build();
    let consecutive: CircuitBreaker<NoWindow> = CircuitBreaker::new(from_file);
    for _ in 0..3 {
        let _ = configured.call(|| async { Err::<(), _>(Overloaded) }).await;
        let _ = consecutive
            .call(|| async { Err::<(), _>(Overloaded) })
            .await;
    }
    println!("{}", describe(&configured));
    println!("{}", describe(&consecutive));

    drop(breaker);
    drop(timed);
    let seen = log.await?;
    println!("{} transitions logged for model-server", seen.len());
    Ok(())
}
