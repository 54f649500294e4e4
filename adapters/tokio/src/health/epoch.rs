//! The health probe's and the supervisor's view of the clock: [`crate::clock`], behind a small
//! `Copy` handle so their code reads `epoch.now()`.

use rustkernel_core::time::Instant;

use crate::clock;

/// A handle on the crate's one clock bridge ([`crate::clock`]).
#[derive(Clone, Copy, Debug)]
pub(crate) struct Epoch;

impl Epoch {
    /// The handle.
    pub(crate) fn new() -> Self {
        Self
    }

    /// Now, as the core counts it.
    pub(crate) fn now(self) -> Instant {
        clock::now()
    }

    /// `at` as the core counts it.
    pub(crate) fn instant_at(self, at: tokio::time::Instant) -> Instant {
        clock::to_core(at)
    }

    /// The tokio instant of the core's `at`; instants beyond tokio's range become "never"
    /// (about thirty years after the epoch).
    pub(crate) fn to_tokio(self, at: Instant) -> tokio::time::Instant {
        clock::to_tokio(at)
    }
}

/// "Never" for a tokio timer.
pub(crate) fn far_future() -> tokio::time::Instant {
    clock::to_tokio(Instant::MAX)
}
