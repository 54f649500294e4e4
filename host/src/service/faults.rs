//! Seeded fault injection per kernel (off by default): errors, added latency and hangs, so
//! operators and tests can rehearse failures. Faults are drawn in call order from the kernel's
//! own seeded sequence, so a run with a fixed seed and a fixed order of calls repeats.

use std::sync::Mutex;
use std::time::Duration;

use rustkernel_core::rng::Rng;
use rustkernel_tokio::deadline::CancelFlag;

use crate::config::FaultConfig;

/// What one call draws.
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct Fault {
    /// Sleep this long first (checking the cancel flag).
    pub latency: Duration,
    /// Then hang until cancelled.
    pub hang: bool,
    /// Then fail with an injected transient error.
    pub fail: bool,
}

/// The fault sequence of one kernel.
#[derive(Debug)]
pub struct FaultInjector {
    state: Mutex<(FaultConfig, Rng)>,
}

impl FaultInjector {
    /// A sequence seeded by `config.seed`.
    #[must_use]
    pub fn new(config: FaultConfig) -> Self {
        Self {
            state: Mutex::new((config, Rng::new(config.seed))),
        }
    }

    /// Replaces the faults (and restarts the sequence from the new seed): how a rehearsal
    /// moves from one phase to the next.
    pub fn reconfigure(&self, config: FaultConfig) {
        *self.lock() = (config, Rng::new(config.seed));
    }

    /// The current faults.
    #[must_use]
    pub fn config(&self) -> FaultConfig {
        self.lock().0
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, (FaultConfig, Rng)> {
        self.state
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
    }

    /// The faults of the next call.
    pub fn draw(&self) -> Fault {
        let mut state = self.lock();
        let (config, rng) = &mut *state;
        let hang = unit(rng) < config.hang_probability;
        let fail = unit(rng) < config.error_rate;
        Fault {
            latency: config.latency,
            hang,
            fail,
        }
    }
}

/// A uniform draw in [0, 1).
fn unit(rng: &mut Rng) -> f64 {
    // 53 random bits as the mantissa of a double in [0, 1).
    #[allow(clippy::cast_precision_loss)]
    let bits = (rng.next_u64() >> 11) as f64;
    bits / (1_u64 << 53) as f64
}

impl Fault {
    /// Carries the fault out on a blocking thread: sleeps, then hangs until `cancel` is raised.
    /// Returns `true` when the call should go on to run (not cancelled meanwhile).
    pub fn apply(self, cancel: &CancelFlag) -> bool {
        if !self.latency.is_zero() && !sleep_unless_cancelled(self.latency, cancel) {
            return false;
        }
        if self.hang {
            while !cancel.is_cancelled() {
                std::thread::sleep(Duration::from_millis(1));
            }
            return false;
        }
        true
    }
}

/// Sleeps `total` in small steps; `false` when cancelled first.
fn sleep_unless_cancelled(total: Duration, cancel: &CancelFlag) -> bool {
    let step = Duration::from_millis(1);
    let deadline = std::time::Instant::now() + total;
    loop {
        if cancel.is_cancelled() {
            return false;
        }
        let now = std::time::Instant::now();
        if now >= deadline {
            return true;
        }
        std::thread::sleep(step.min(deadline - now));
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn rates_hold_and_seeds_repeat() {
        let config = FaultConfig {
            error_rate: 0.3,
            latency: Duration::ZERO,
            hang_probability: 0.0,
            seed: 42,
        };
        let a = FaultInjector::new(config);
        let b = FaultInjector::new(config);
        let draws: Vec<Fault> = (0..10_000).map(|_| a.draw()).collect();
        let again: Vec<Fault> = (0..10_000).map(|_| b.draw()).collect();
        assert_eq!(draws, again);
        let failed = draws.iter().filter(|fault| fault.fail).count();
        assert!((2_700..3_300).contains(&failed), "{failed}");
        assert!(draws.iter().all(|fault| !fault.hang));
    }
}
