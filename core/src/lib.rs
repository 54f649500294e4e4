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
//! # Features
//! - `serde`: `Serialize`/`Deserialize` for configs, states, stats and errors.
//! - `defmt`: `defmt::Format` for every public type.
#![no_std]
#![forbid(unsafe_code)]
#![deny(missing_docs)]

pub mod error;
pub mod resilience;
pub mod rng;
pub mod time;
