//! Embassy adapter of rustkernel resilience: the chapter's async API for firmware.
//!
#![doc = include_str!("../QUICKSTART.md")]
//!
//! ## The adapter
//!
//! `rustkernel-core` holds the state machines and never reads a clock; this crate owns the
//! clock (`embassy_time`), the locks (`embassy_sync` blocking mutexes, generic over
//! [`RawMutex`](embassy_sync::blocking_mutex::raw::RawMutex) so the caller picks the cost) and
//! the sleeping (`Timer`, `with_deadline`). It is `no_std`, allocates nothing, has no `unsafe`
//! and does not panic outside constructors documented under `# Panics`.
//!
//! | Module | What it gives |
//! |--------|---------------|
//! | [`resilience`] | everything below and the core's configs, errors and windows, from one place |
//! | [`time`] | `embassy_time::Instant`/`Duration` to the core's and back, [`time::now`] |
//! | [`breaker`] | [`CircuitBreaker`](breaker::CircuitBreaker): `call(|| fut).await`, shareable in a `static` |
//! | [`retry`] | [`Retrier`](retry::Retrier): retry with backoff slept on `Timer`, [`SharedRetryBudget`](retry::SharedRetryBudget) |
//! | [`pipeline`] | [`Pipeline`]: deadline, retry, breaker and attempt timeout composed, in a `static` |
//! | [`deadline`] | [`DeadlineContext`](deadline::DeadlineContext): `execute(|| fut)` under a deadline; per-call timeouts |
//! | [`health`] | [`HealthMonitor`](health::HealthMonitor): runs probe checks at their interval under their timeout |
//! | [`supervisor`] | [`Supervisor`](supervisor::Supervisor): carries out recovery actions (restart, degrade, notify) |
//!
//! # Putting them together
//! [`Pipeline`] composes them in a `static`: the total deadline, retry, the
//! breaker for each attempt and an attempt timeout, with one flat [`ResilienceError`] (see
//! [`pipeline`] for the order and why). Composed by hand, the wrappers flatten too: an operation
//! that returns a guarded call's `ResilienceError` gives one level back, so matching
//! `ResilienceError::CircuitOpen` at the top sees the breaker's rejection.
//!
//! ```
//! use core::time::Duration;
//! use embassy_sync::blocking_mutex::raw::CriticalSectionRawMutex;
//! use rustkernel_core::error::ErrorKind;
//! use rustkernel_core::resilience::{BackoffStrategy, CircuitBreakerConfig, RetryConfig};
//! use rustkernel_embassy::breaker::CircuitBreaker;
//! use rustkernel_embassy::deadline::{DeadlineContext, execute_with_timeout};
//! use rustkernel_embassy::retry::Retrier;
//! use rustkernel_embassy::ResilienceError;
//!
//! static BREAKER: CircuitBreaker<CriticalSectionRawMutex> =
//!     CircuitBreaker::new(CircuitBreakerConfig { failure_threshold: 3, ..CircuitBreakerConfig::DEFAULT });
//!
//! async fn accelerator_job(input: u32) -> Result<u32, ErrorKind> {
//!     Ok(input * 2)
//! }
//!
//! # embassy_futures::block_on(async {
//! let mut retrier = Retrier::new(
//!     RetryConfig {
//!         max_attempts: 3,
//!         backoff: BackoffStrategy::Fixed { delay: Duration::from_millis(10) },
//!         retryable_errors: [ErrorKind::Transient, ErrorKind::Timeout, ErrorKind::Unavailable].into(),
//!     },
//!     0x1234,
//! )
//! .with_deadline(DeadlineContext::new(Duration::from_secs(1)));
//! // One level: the retrier flattens the breaker's error, the breaker the timeout's.
//! let result: Result<u32, ResilienceError<ErrorKind>> = retrier
//!     .execute(|| BREAKER.call(|| execute_with_timeout(Duration::from_millis(100), || accelerator_job(21))))
//!     .await;
//! assert_eq!(result, Ok(42));
//! # });
//! ```
//!
//! # Time
//! The core's [`Instant`](rustkernel_core::time::Instant) here counts microseconds since boot,
//! converted from embassy's ticks without rounding to milliseconds; see [`time`] for rounding
//! and saturation. Everything reads `embassy_time::Instant::now()`, so the firmware must link an
//! embassy time driver; host tests use embassy-time's `mock-driver` (this crate enables it only
//! as a dev-dependency).
//!
//! # Targets
//! Nothing here uses atomics: all sharing goes through `embassy_sync` blocking mutexes, so the
//! crate builds for Cortex-M0 (`thumbv6m-none-eabi`, no compare-and-swap) as for Cortex-M4F
//! (`thumbv7em-none-eabihf`). A binary that uses `CriticalSectionRawMutex` (the default) links a
//! `critical-section` implementation (`cortex-m` with `critical-section-single-core`, or the
//! HAL's); the library build needs none. With a 1 MHz embassy tick (`tick-hz-1_000_000`) the
//! clock conversions are plain copies; other tick rates use one 128-bit multiply and divide.
//!
//! # Features
//! - `defmt`: `defmt::Format` for this crate's types, and the core's `defmt` feature.
#![no_std]
#![forbid(unsafe_code)]
#![deny(missing_docs)]

pub mod breaker;
pub mod deadline;
pub mod health;
pub mod pipeline;
pub mod resilience;
pub mod retry;
pub mod supervisor;
pub mod time;

pub use pipeline::Pipeline;
pub use rustkernel_core::error::{
    ByClassify, Classifier, Classify, ConfigError, ErrorKind, OperationError, ResilienceError,
};
pub use rustkernel_core::resilience::PipelineConfig;
