//! Allocation-free, `no_std` state machines for the resilience of GPU and accelerator kernels.
//!
//! This crate is the sans-IO core of rustkernel resilience. It is deterministic: it never reads
//! a clock, never sleeps, never locks and never allocates. Time comes in as a
//! [`time::Instant`] argument (`now`), randomness from a seed you pass, and every decision comes
//! back as a value for an adapter to carry out (`rustkernel-tokio` for host services,
//! `rustkernel-embassy` for firmware).
//!
//! Method families on each state machine, in calling order: inputs (`try_acquire(now)`,
//! `on_success(permit, now)`, `on_failure(permit, kind, now)`), getters (`state()`, `stats()`)
//! and outputs (`poll_at()`: when the machine next needs attention).
//!
//!
//! ```
//! use core::time::Duration;
//! use rustkernel_core::resilience::{CircuitBreaker, CircuitBreakerConfig, CircuitState};
//! use rustkernel_core::error::ErrorKind;
//! use rustkernel_core::time::Instant;
//!
//! let mut cb = CircuitBreaker::new(CircuitBreakerConfig {
//!     failure_threshold: 2,
//!     success_threshold: 1,
//!     timeout: Duration::from_secs(30),
//!     ..Default::default()
//! });
//! let t0 = Instant::from_secs(1);
//! for _ in 0..2 {
//!     let permit = cb.try_acquire(t0).expect("closed");
//!     cb.on_failure(permit, ErrorKind::Transient, t0);
//! }
//! assert_eq!(cb.state(), CircuitState::Open);
//! assert!(cb.try_acquire(t0).is_err());
//! // After `timeout` one probe is admitted; its success closes the breaker again.
//! let later = t0 + Duration::from_secs(30);
//! let probe = cb.try_acquire(later).expect("half-open probe");
//! cb.on_success(probe, later);
//! assert_eq!(cb.state(), CircuitState::Closed);
//! ```
//!
//! # Features
//! - `serde`: `Serialize`/`Deserialize` for configs, states, stats and errors.
//! - `defmt`: `defmt::Format` for every public type.
//! - `std`: [`Classify`](error::Classify) for `std::io::Error`, boxed errors and strings.
//!
//! No feature names a runtime: the adapters (`rustkernel-tokio`, `rustkernel-embassy`) bring
//! theirs, and classify their runtime's errors themselves.
#![no_std]
#![forbid(unsafe_code)]
#![deny(missing_docs)]

mod bitset;
pub mod checkpoint;
pub mod error;
mod float;
pub mod frame;
pub mod resilience;
pub mod rng;
pub mod telemetry;
pub mod time;
pub mod traits;
