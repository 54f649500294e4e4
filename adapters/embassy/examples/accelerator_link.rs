//! A controller's calls to its accelerator over a link that drops frames and an accelerator
//! that sometimes hangs: a breaker in a `static` shared by every task, retries with backoff
//! under a deadline and a retry budget, per-call timeouts, deadlines that cross the link, and
//! the clock conversions at the edge between embassy and the core.
//!
//! ```text
//! cargo run -p rustkernel-embassy --example accelerator_link
//! ```
//!
//! It runs on the host on embassy-time's mock clock (see `common`), so a virtual minute passes
//! in milliseconds; the times it prints are virtual.

mod common;

use core::cell::Cell;
use core::time::Duration;

use common::{now_ms, run};
use embassy_sync::blocking_mutex::raw::{CriticalSectionRawMutex, NoopRawMutex};
use embassy_time::Timer;
use rustkernel_core::resilience::{
    BackoffStrategy, CircuitBreaker as CoreBreaker, CircuitBreakerConfig, CountWindow, RetryBudget,
    RetryBudgetConfig, RetryConfig, RetryDecision, TimeWindow, TimeoutConfig, Transition,
    WireDeadline,
};
use rustkernel_embassy::breaker::{CircuitBreaker, ignore_transition};
use rustkernel_embassy::deadline::{DeadlineContext, execute_with_config, execute_with_timeout};
use rustkernel_embassy::retry::{
    NoBudget, Retrier, RetryBudgetSource, RetryEvent, SharedRetryBudget,
};
use rustkernel_embassy::time;
use rustkernel_embassy::{ErrorKind, ResilienceError};

/// The link's own error, as a HAL crate would define it (not `Classify`).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum SpiError {
    Crc,
    NoAck,
}

fn spi_kind(error: &SpiError) -> ErrorKind {
    match error {
        SpiError::Crc => ErrorKind::Transient,
        SpiError::NoAck => ErrorKind::Unavailable,
    }
}

/// The breaker every task shares, checked when the firmware is compiled.
static LINK: CircuitBreaker<CriticalSectionRawMutex> = CircuitBreaker::new(CircuitBreakerConfig {
    failure_threshold: 3,
    timeout: Duration::from_secs(2),
    ..CircuitBreakerConfig::DEFAULT
});

/// One retry budget for every caller of the accelerator: retries add at most 20 %.
static BUDGET: SharedRetryBudget<CriticalSectionRawMutex> =
    SharedRetryBudget::new(RetryBudgetConfig {
        window: Duration::from_secs(10),
        min_retries_per_second: 1,
        retry_ratio: 0.2,
    });

const RETRY: RetryConfig = RetryConfig {
    max_attempts: 4,
    backoff: BackoffStrategy::Exponential {
        initial: Duration::from_millis(10),
        max: Duration::from_millis(80),
        multiplier: 2.0,
    },
    retryable_errors: rustkernel_core::error::ErrorKindSet::of(&[
        ErrorKind::Transient,
        ErrorKind::Timeout,
    ]),
};

/// A scripted accelerator: call `n` fails with `script(n)`, or hangs, or answers.
struct Accelerator {
    calls: Cell<u32>,
    script: fn(u32) -> Option<Fault>,
}

#[derive(Clone, Copy)]
enum Fault {
    Spi(SpiError),
    Hang,
}

impl Accelerator {
    const fn new(script: fn(u32) -> Option<Fault>) -> Self {
        Self {
            calls: Cell::new(0),
            script,
        }
    }

    async fn infer(&self, input: u32) -> Result<u32, SpiError> {
        let n = self.calls.get();
        self.calls.set(n + 1);
        Timer::after_millis(2).await;
        match (self.script)(n) {
            Some(Fault::Spi(error)) => Err(error),
            Some(Fault::Hang) => {
                Timer::after_secs(3_600).await;
                Ok(0)
            }
            None => Ok(input * 2),
        }
    }

    /// The same, its error as a kind (what `Classify` callers return).
    async fn infer_kind(&self, input: u32) -> Result<u32, ErrorKind> {
        self.infer(input).await.map_err(|e| spi_kind(&e))
    }
}

fn log_retry(event: RetryEvent) {
    let next = match event.decision {
        RetryDecision::RetryAt(at) => format!("retry at {} ms", at.as_micros() / 1_000),
        RetryDecision::GiveUp(reason) => format!("give up: {reason}"),
    };
    println!(
        "    [{:>4} ms] attempt {} failed ({}): {next}",
        now_ms(),
        event.attempt,
        event.kind
    );
}

/// A transition a command caused, or none.
fn show(transition: Option<Transition>) -> String {
    transition.map_or_else(|| "no change".to_owned(), |t| t.to_string())
}

fn log_transition(transition: Transition) {
    println!("    [{:>4} ms] breaker {transition}", now_ms());
}

/// Any retrier's settings, budget or not.
fn describe<B: RetryBudgetSource>(name: &str, retrier: &Retrier<B>) {
    println!(
        "{name}: up to {} attempts, deadline {}",
        retrier.config().max_attempts,
        retrier.deadline().map_or("none".to_owned(), |d| format!(
            "in {} ms",
            d.remaining().as_millis()
        ))
    );
}

async fn controller() -> Result<(), ConfigOrLogic> {
    // Retries with backoff and a budget, under a 1 s deadline for the whole call; CRC errors
    // are retried, a missing ACK is not.
    let crc_twice = Accelerator::new(|n| (n < 2).then_some(Fault::Spi(SpiError::Crc)));
    let plain: Retrier<NoBudget> = Retrier::try_new(RETRY, 0x00C0_FFEE)?;
    describe("plain retrier", &plain);
    let mut retrier = plain
        .with_deadline(DeadlineContext::new(Duration::from_secs(1)))
        .with_budget(&BUDGET);
    describe("link retrier", &retrier);
    let answer = retrier
        .execute_classified(&spi_kind, || crc_twice.infer(21), log_retry)
        .await;
    println!("[{:>4} ms] two CRC errors, then {answer:?}", now_ms());
    let no_ack = Accelerator::new(|_| Some(Fault::Spi(SpiError::NoAck)));
    let answer = retrier
        .execute_classified(&spi_kind, || no_ack.infer(1), log_retry)
        .await;
    println!("[{:>4} ms] no ACK is not retried: {answer:?}", now_ms());
    println!(
        "budget: {} retries available; a hedged send may go: {}",
        BUDGET.available(),
        BUDGET.try_withdraw()
    );
    BUDGET.deposit();
    // A budget from a configuration read at boot, and one a task kept to itself (the core's)
    // now shared with a second task, with what it has counted.
    let from_flash = RetryBudgetConfig {
        retry_ratio: 0.5,
        ..RetryBudgetConfig::default()
    };
    let sensor_budget: SharedRetryBudget<NoopRawMutex> = SharedRetryBudget::try_new(from_flash)?;
    let mut own = RetryBudget::new(from_flash);
    own.deposit(time::now());
    let shared: SharedRetryBudget<NoopRawMutex> = SharedRetryBudget::from_core(own);
    println!(
        "budgets from flash: {} retries available, {} after one request",
        sensor_budget.available(),
        shared.available()
    );

    // The breaker around each attempt: three failed calls open it for 2 s.
    let down = Accelerator::new(|_| Some(Fault::Spi(SpiError::NoAck)));
    for _ in 0..4 {
        let result = LINK
            .call_classified(&spi_kind, || down.infer(1), log_transition)
            .await;
        let what = match result {
            Err(ResilienceError::CircuitOpen) => "rejected without touching the link".to_owned(),
            other => format!("{other:?}"),
        };
        println!("[{:>4} ms] link call: {what}", now_ms());
    }
    println!(
        "breaker {} after {} failures; probes again at {:?} ms",
        LINK.state(),
        LINK.stats().failure_count,
        LINK.poll_at().map(|at| at.as_millis())
    );
    // A driver task sleeps until the breaker's timer is due, then publishes the state.
    if let Some(at) = LINK.poll_at() {
        Timer::at(at).await;
    }
    println!("[{:>4} ms] after poll: {}", now_ms(), show(LINK.poll()));
    // A probe settled by hand (a DMA transfer whose completion comes from an interrupt).
    match LINK.acquire_observed(log_transition) {
        Ok(call) => {
            println!("probe permit: {:?}", call.permit().map(|p| p.generation()));
            call.success();
        }
        Err(rejected) => println!("probe refused: {rejected}"),
    }
    let retry_ok = Accelerator::new(|_| None);
    let answer = LINK.call(|| retry_ok.infer_kind(4)).await;
    println!("[{:>4} ms] {answer:?}, breaker {}", now_ms(), LINK.state());

    // A call through the breaker and a retrier at once: the retrier sees the breaker's error.
    let mut quick = Retrier::new(RETRY, 7).without_deadline();
    let once = Accelerator::new(|n| (n == 0).then_some(Fault::Spi(SpiError::Crc)));
    let answer = quick
        .execute_observed(|| LINK.call(|| once.infer_kind(5)), log_retry)
        .await;
    println!("[{:>4} ms] breaker inside retry: {answer:?}", now_ms());
    let answer = quick.execute(|| retry_ok.infer_kind(6)).await;
    println!("retry without events: {answer:?}");

    // A hung accelerator: each call gets its own 50 ms, and a hung call frees its probe slot.
    let hangs = Accelerator::new(|_| Some(Fault::Hang));
    let answer = execute_with_timeout(Duration::from_millis(50), || hangs.infer_kind(1)).await;
    println!("[{:>4} ms] hung call: {answer:?}", now_ms());
    match LINK.acquire() {
        Ok(call) => {
            // The call was abandoned before it was sent: neither success nor failure.
            println!("cancelled: {}", show(call.cancel()));
        }
        Err(rejected) => println!("refused: {rejected}"),
    }
    match LINK.acquire() {
        Ok(call) => println!(
            "a failure by hand: {}",
            show(call.failure(ErrorKind::Timeout))
        ),
        Err(rejected) => println!("refused: {rejected}"),
    }

    // Deadlines: the caller's 300 ms; a child call gets at most 100 ms of it.
    let request = DeadlineContext::new(Duration::from_millis(300));
    let child = request.child_with_timeout(Duration::from_millis(100));
    println!(
        "request: {} ms left, child {} ms (at {} ms on embassy's clock)",
        request.remaining().as_millis(),
        child.remaining().as_millis(),
        child.deadline().as_millis()
    );
    let answer = child.execute(|| retry_ok.infer_kind(7)).await;
    println!("child call: {answer:?}");
    let late = child.execute_classified(&spi_kind, || hangs.infer(1)).await;
    println!(
        "[{:>4} ms] hung child: {late:?}; expired {}, check {:?}",
        now_ms(),
        child.is_expired(),
        child.check()
    );
    // A wire deadline: the accelerator gets the time that remains, not our clock.
    let wire: WireDeadline = request.to_wire();
    let remote = DeadlineContext::from_wire(wire);
    println!(
        "on the wire: {} us left; the far side's deadline {} ms from its now",
        wire.remaining_micros,
        remote.remaining().as_millis()
    );
    let raced = request.run(Timer::after_millis(500)).await;
    println!(
        "[{:>4} ms] a 500 ms wait under the request: {raced:?}",
        now_ms()
    );
    let resolved = execute_with_config(
        &TimeoutConfig::default(),
        Some(Duration::from_millis(40)),
        Some(DeadlineContext::never()),
        embassy_time::Instant::now(),
        || hangs.infer_kind(1),
    )
    .await;
    println!(
        "[{:>4} ms] its own 40 ms from a TimeoutConfig: {resolved:?}",
        now_ms()
    );
    let at = DeadlineContext::at(time::deadline_after(Duration::from_millis(5)));
    let core = at.as_core();
    println!(
        "a deadline in the core's terms: {} (equal after a round trip: {})",
        core.deadline(),
        DeadlineContext::from_core(core) == at
    );

    // More breakers: a failure-rate breaker over the last 10 calls (const), one over 5 s of
    // time from a configuration read at boot, one restored from the core's state, and one
    // local to a task (no locking).
    static RATE: CircuitBreaker<CriticalSectionRawMutex, CircuitBreakerConfig, CountWindow<10>> =
        CircuitBreaker::with_window(
            CircuitBreakerConfig {
                failure_rate_threshold: Some(0.5),
                minimum_calls: 4,
                ..CircuitBreakerConfig::DEFAULT
            },
            CountWindow::new(),
        );
    for n in 0..4 {
        let _ = RATE
            .call(|| async move {
                if n % 2 == 0 {
                    Err(ErrorKind::Transient)
                } else {
                    Ok(n)
                }
            })
            .await;
    }
    println!("failure-rate breaker after 2 of 4 failed: {}", RATE.state());
    let from_flash = CircuitBreakerConfig {
        failure_rate_threshold: Some(0.5),
        window_duration: Some(Duration::from_secs(5)),
        ..CircuitBreakerConfig::DEFAULT
    };
    let by_time: CircuitBreaker<NoopRawMutex, _, TimeWindow<5>> =
        CircuitBreaker::try_with_window(from_flash, TimeWindow::new())?;
    let bad = CircuitBreakerConfig {
        failure_threshold: 0,
        ..CircuitBreakerConfig::DEFAULT
    };
    match CircuitBreaker::<NoopRawMutex>::try_new(bad) {
        Err(error) => println!("a zero threshold from flash: {error}"),
        Ok(_) => return Err(ConfigOrLogic::Logic("a zero threshold was accepted")),
    }
    let mut core = CoreBreaker::new(CircuitBreakerConfig::DEFAULT);
    core.force_open();
    let restored: CircuitBreaker<NoopRawMutex> = CircuitBreaker::from_core(core);
    println!(
        "time-window breaker {}; restored breaker {}",
        by_time.state(),
        restored.state()
    );

    // Operator commands from the maintenance port.
    let local: CircuitBreaker<NoopRawMutex> = CircuitBreaker::new(CircuitBreakerConfig::DEFAULT);
    for (command, transition) in [
        (
            "force open for 1 s",
            local.force_open_for(Duration::from_secs(1)),
        ),
        ("force open", local.force_open()),
        ("disable", local.disable()),
        ("metrics only", local.metrics_only()),
        ("reset", local.reset()),
    ] {
        println!("  {command}: {}", show(transition));
    }
    let _ = local
        .call_observed(|| retry_ok.infer_kind(1), ignore_transition)
        .await;

    // The edge between the clocks.
    let now = time::now();
    let embassy_now = time::to_embassy_instant(now);
    println!(
        "now: core {now}, embassy {} ticks; 1.5 us is {} ticks, back {:?}; 1000 ticks = {} us",
        embassy_now.as_ticks(),
        time::to_embassy_duration(Duration::from_nanos(1_500)).as_ticks(),
        time::to_core_duration(embassy_time::Duration::from_ticks(1_000)),
        time::ticks_to_micros(1_000)
    );
    println!(
        "250 us is {} ticks; the core's instant of embassy's now: {}",
        time::micros_to_ticks(250),
        time::to_core_instant(embassy_time::Instant::now())
    );
    Ok(())
}

/// Why the example stopped early.
enum ConfigOrLogic {
    Config(rustkernel_embassy::ConfigError),
    Logic(&'static str),
}

impl core::fmt::Display for ConfigOrLogic {
    fn fmt(&self, f: &mut core::fmt::Formatter<'_>) -> core::fmt::Result {
        match self {
            Self::Config(error) => write!(f, "invalid configuration: {error}"),
            Self::Logic(what) => f.write_str(what),
        }
    }
}

impl From<rustkernel_embassy::ConfigError> for ConfigOrLogic {
    fn from(error: rustkernel_embassy::ConfigError) -> Self {
        Self::Config(error)
    }
}

fn main() {
    match run(controller()) {
        Some(Ok(())) => println!("[{:>4} ms] done", now_ms()),
        Some(Err(error)) => {
            eprintln!("accelerator_link: {error}");
            std::process::exit(1);
        }
        None => {
            eprintln!("accelerator_link: still waiting after a virtual hour");
            std::process::exit(1);
        }
    }
}
