//! A driver for an accelerator behind a link (SPI, UART, a mailbox), as a firmware library:
//! every job goes through a retrier and a circuit breaker of the embassy adapter, both in
//! `static`s or `const`s checked when the firmware is compiled. The firmware gives the driver
//! its link and a seed; the driver gives back results, or one flat [`ResilienceError`].
//!
//! - A link error says what kind of failure it is ([`Classify`]): a CRC error is transient
//!   (retried), a timeout is a timeout (retried), a NACK is permanent (not retried: the
//!   accelerator refused the job), and every one counts against the breaker.
//! - Each attempt has 20 ms; three attempts, 5 ms apart.
//! - The breaker opens when half of the last 20 jobs failed (from 10 on), stays open 2 s, and
//!   decides its half-open cycles on 4 probes.
#![no_std]

use core::future::Future;
use core::time::Duration;

use rustkernel_embassy::resilience::{
    BackoffStrategy, CircuitBreaker, CircuitBreakerConfig, CircuitState, Classify, CountWindow,
    CriticalSectionRawMutex, ErrorKind, ErrorKindSet, ResilienceError, Retrier, RetryConfig,
    ValidRetryConfig, execute_with_timeout,
};

/// The link to the accelerator, implemented by the firmware over its HAL.
pub trait Link {
    /// Sends one job and waits for its answer.
    fn transfer(&self, job: u32) -> impl Future<Output = Result<u32, LinkError>>;
}

/// How a transfer failed.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum LinkError {
    /// The answer's CRC did not match.
    Crc,
    /// No answer in time (the link's own timeout).
    Timeout,
    /// The accelerator refused the job.
    Nack,
}

impl Classify for LinkError {
    fn kind(&self) -> ErrorKind {
        match self {
            LinkError::Crc => ErrorKind::Transient,
            LinkError::Timeout => ErrorKind::Timeout,
            LinkError::Nack => ErrorKind::Permanent,
        }
    }
}

/// Three attempts, 5 ms apart; transient faults and timeouts are retried. An invalid value here
/// fails the build with the field's name.
const RETRY: ValidRetryConfig = ValidRetryConfig::new(RetryConfig {
    max_attempts: 3,
    backoff: BackoffStrategy::Fixed {
        delay: Duration::from_millis(5),
    },
    retryable_errors: ErrorKindSet::of(&[ErrorKind::Transient, ErrorKind::Timeout]),
});

/// Each attempt's time.
const ATTEMPT_TIMEOUT: Duration = Duration::from_millis(20);

/// The accelerator's breaker, shared by every task that uses the driver.
static BREAKER: CircuitBreaker<CriticalSectionRawMutex, CircuitBreakerConfig, CountWindow<20>> =
    CircuitBreaker::with_window(
        CircuitBreakerConfig {
            failure_rate_threshold: Some(0.5),
            minimum_calls: 10,
            timeout: Duration::from_secs(2),
            half_open_max_calls: 1,
            half_open_permitted_calls: Some(4),
            ..CircuitBreakerConfig::DEFAULT
        },
        CountWindow::new(),
    );

/// The driver: a link and the retrier's jitter.
#[derive(Debug)]
pub struct Accelerator<L> {
    link: L,
    retrier: Retrier,
}

impl<L: Link> Accelerator<L> {
    /// A driver over `link`; `seed` spreads retries apart across devices (a serial number).
    pub const fn new(link: L, seed: u64) -> Self {
        Self {
            link,
            retrier: Retrier::from_valid(RETRY, seed),
        }
    }

    /// Runs `job` on the accelerator: retried, each attempt under its timeout and asked of the
    /// breaker first.
    ///
    /// # Errors
    /// `CircuitOpen` while the breaker is open, `Timeout` when the last attempt timed out, or
    /// the last link error.
    pub async fn run(&mut self, job: u32) -> Result<u32, ResilienceError<LinkError>> {
        let link = &self.link;
        self.retrier
            .execute(|| {
                BREAKER.call(|| execute_with_timeout(ATTEMPT_TIMEOUT, || link.transfer(job)))
            })
            .await
    }

    /// The link.
    pub const fn link(&self) -> &L {
        &self.link
    }

    /// The breaker's state (for the firmware's health report).
    #[must_use]
    pub fn state(&self) -> CircuitState {
        BREAKER.state()
    }
}
