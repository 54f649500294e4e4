//! An edge controller's requests to its accelerator through one pipeline in a `static`: the
//! total deadline, retries, the breaker for each attempt and an attempt timeout, with one flat
//! error and the number of attempts for telemetry; a request that brings its own timeout and
//! its caller's deadline; errors of your own type and of another crate's.
//!
//! ```text
//! cargo run -p rustkernel-embassy --example edge_pipeline
//! ```
//!
//! It runs on the host on embassy-time's mock clock (see `common`); the times it prints are
//! virtual.

mod common;

use core::cell::Cell;
use core::time::Duration;

use common::{now_ms, run};
use embassy_sync::blocking_mutex::raw::{CriticalSectionRawMutex, NoopRawMutex};
use embassy_time::Timer;
use rustkernel_core::resilience::{
    BackoffStrategy, CircuitBreakerConfig, ResilienceConfig, RetryConfig, TimeoutConfig,
};
use rustkernel_embassy::deadline::DeadlineContext;
use rustkernel_embassy::pipeline::{Outcome, RequestDeadline};
use rustkernel_embassy::{
    ByClassify, Classifier, Classify, ConfigError, ErrorKind, OperationError, Pipeline,
    PipelineConfig, ResilienceError,
};

/// The accelerator's own faults, classified for retry and the breaker.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Fault {
    /// A result that failed its checksum: try again.
    Checksum,
    /// The model does not fit: retrying cannot help.
    TooLarge,
}

impl Classify for Fault {
    fn kind(&self) -> ErrorKind {
        match self {
            Fault::Checksum => ErrorKind::Transient,
            Fault::TooLarge => ErrorKind::InvalidInput,
        }
    }
}

/// Another crate's status code (a HAL's `u8`), classified by a type of ours.
struct I2cStatus;

impl Classifier<u8> for I2cStatus {
    type Error = u8;

    fn flatten(&self, error: u8) -> ResilienceError<u8> {
        ResilienceError::Operation(error)
    }

    fn classify(&self, error: &u8) -> ErrorKind {
        match error {
            0x20 => ErrorKind::Unavailable, // NACK on address: the device is gone
            _ => ErrorKind::Transient,      // arbitration lost, bus busy
        }
    }
}

const CONFIG: PipelineConfig = PipelineConfig {
    circuit_breaker: CircuitBreakerConfig {
        failure_threshold: 3,
        timeout: Duration::from_secs(5),
        ..CircuitBreakerConfig::DEFAULT
    },
    retry: RetryConfig {
        max_attempts: 3,
        backoff: BackoffStrategy::Fixed {
            delay: Duration::from_millis(20),
        },
        retryable_errors: rustkernel_core::error::ErrorKindSet::of(&[
            ErrorKind::Transient,
            ErrorKind::Timeout,
        ]),
    },
    timeout: TimeoutConfig {
        default_timeout: Duration::from_millis(500),
        max_timeout: Duration::from_secs(2),
        propagate_deadline: true,
        include_queue_time: true,
    },
    attempt_timeout: Some(Duration::from_millis(100)),
};

/// One pipeline for every task that talks to the accelerator, checked at compile time.
static PIPELINE: Pipeline<CriticalSectionRawMutex> = Pipeline::new(CONFIG, 0x5EED);

/// A scripted accelerator: attempt `n` hangs, fails with a fault, or answers.
struct Accelerator {
    calls: Cell<u32>,
    script: fn(u32) -> Step,
}

#[derive(Clone, Copy)]
enum Step {
    Answer,
    Fail(Fault),
    Hang,
}

impl Accelerator {
    const fn new(script: fn(u32) -> Step) -> Self {
        Self {
            calls: Cell::new(0),
            script,
        }
    }

    async fn run(&self, input: u32) -> Result<u32, Fault> {
        let n = self.calls.get();
        self.calls.set(n + 1);
        Timer::after_millis(5).await;
        match (self.script)(n) {
            Step::Answer => Ok(input + 1),
            Step::Fail(fault) => Err(fault),
            Step::Hang => {
                Timer::after_secs(60).await;
                Ok(0)
            }
        }
    }
}

/// A telemetry line for any outcome.
fn report<T: core::fmt::Debug, E: core::fmt::Debug>(what: &str, outcome: &Outcome<T, E>) {
    println!(
        "[{:>4} ms] {what}: {:?} after {} attempt(s)",
        now_ms(),
        outcome.result,
        outcome.attempts
    );
}

/// The kind a caller logs for an operation's error or a wrapper's, alike.
fn kind_of<R: OperationError>(error: &R) -> ErrorKind {
    error.error_kind()
}

async fn controller() -> Result<(), ConfigError> {
    println!(
        "pipeline: attempts cut at {:?}, {} attempts, breaker {}, total {:?}",
        PIPELINE.attempt_timeout(),
        PIPELINE.config().retry.max_attempts,
        PIPELINE.breaker().state(),
        PIPELINE.config().timeout.default_timeout
    );

    // A hang is cut at 100 ms and retried; a checksum error is retried.
    let flaky = Accelerator::new(|n| match n {
        0 => Step::Hang,
        1 => Step::Fail(Fault::Checksum),
        _ => Step::Answer,
    });
    let outcome = PIPELINE
        .execute_outcome(&ByClassify, || flaky.run(41))
        .await;
    report("hang, checksum, answer", &outcome);

    // A model that does not fit is not retried; the error comes back as it was.
    let too_large = Accelerator::new(|_| Step::Fail(Fault::TooLarge));
    let result = PIPELINE.execute(|| too_large.run(1)).await;
    println!(
        "[{:>4} ms] too large: {result:?} (kind {})",
        now_ms(),
        result
            .as_ref()
            .map_or_else(kind_of, |_| ErrorKind::Transient)
    );

    // A request that asks for 150 ms, queued 30 ms ago, from a caller with 60 ms left: the
    // caller's deadline is the earlier, and its passing is DeadlineExceeded.
    let queued = embassy_time::Instant::now();
    Timer::after_millis(30).await;
    let caller = DeadlineContext::new(Duration::from_millis(60));
    let hangs = Accelerator::new(|_| Step::Hang);
    let outcome = PIPELINE
        .execute_request(
            RequestDeadline {
                timeout: Some(Duration::from_millis(150)),
                enqueued_at: Some(queued),
                parent: Some(caller),
            },
            &ByClassify,
            || hangs.run(1),
        )
        .await;
    report("caller's deadline first", &outcome);

    // The same request alone: its own timeout runs out, which is a Timeout.
    let outcome = PIPELINE
        .execute_request(
            RequestDeadline {
                timeout: Some(Duration::from_millis(150)),
                ..RequestDeadline::default()
            },
            &ByClassify,
            || hangs.run(1),
        )
        .await;
    report("own timeout", &outcome);

    // A sensor on I2C through a pipeline of its own, built from the development preset at
    // run time, its status codes classified by our type.
    let sensor: Pipeline<NoopRawMutex> = Pipeline::try_new(
        PipelineConfig::from_resilience(&ResilienceConfig::development()),
        7,
    )?;
    let bus = Cell::new(0u32);
    let read = || {
        bus.set(bus.get() + 1);
        let attempt = bus.get();
        async move {
            if attempt == 1 {
                Err(0x38_u8) // arbitration lost
            } else {
                Ok(21.5_f32)
            }
        }
    };
    let outcome = sensor.execute_outcome(&I2cStatus, read).await;
    println!(
        "[{:>4} ms] temperature: {:?} after {} attempt(s)",
        now_ms(),
        outcome.result,
        outcome.attempts
    );
    let gone = sensor
        .execute_outcome(&I2cStatus, || async { Err::<f32, u8>(0x20) })
        .await;
    report("sensor NACK", &gone);

    // A bad request says nothing about the accelerator; hung attempts and checksum errors do.
    // After three in a row the breaker opens, and the pipeline sheds load at once.
    let broken = Accelerator::new(|_| Step::Fail(Fault::Checksum));
    let failed = PIPELINE.execute(|| broken.run(1)).await;
    println!(
        "[{:>4} ms] checksum errors: {failed:?} (the hung attempts before counted too, so the \
         breaker opened during the call)",
        now_ms()
    );
    let shed = PIPELINE.execute(|| flaky.run(1)).await;
    println!(
        "[{:>4} ms] breaker {}: {shed:?}",
        now_ms(),
        PIPELINE.breaker().state()
    );
    let bad = PipelineConfig {
        attempt_timeout: Some(Duration::ZERO),
        ..CONFIG
    };
    if let Err(error) = Pipeline::<NoopRawMutex>::try_new(bad, 1) {
        println!("a zero attempt timeout is refused: {error}");
    }
    Ok(())
}

fn main() {
    match run(controller()) {
        Some(Ok(())) => println!("[{:>4} ms] done", now_ms()),
        Some(Err(error)) => {
            eprintln!("edge_pipeline: {error}");
            std::process::exit(1);
        }
        None => {
            eprintln!("edge_pipeline: still waiting after a virtual hour");
            std::process::exit(1);
        }
    }
}
