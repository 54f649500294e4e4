//! What a run leaves behind: the trace of its events (printed when a seed fails), what every
//! client request came to, the readiness probes, the service's state as the sampler saw it
//! change, and the final `/metrics`. The invariants ([`check`](super::check)) read it after
//! the run.

use std::fmt::Write as _;
use std::sync::{Arc, Mutex, MutexGuard, PoisonError};
use std::time::Duration;

/// A host's clock: simulated time since it was started (every host starts at step 0 and
/// turmoil moves their clocks in step, so two hosts that start one at the same moment agree).
#[derive(Clone, Copy, Debug)]
pub(crate) struct HostClock(tokio::time::Instant);

impl HostClock {
    /// Call first thing in the host.
    pub(crate) fn start() -> Self {
        Self(tokio::time::Instant::now())
    }

    pub(crate) fn now(self) -> Duration {
        self.0.elapsed()
    }

    /// Sleeps until `at` on this clock.
    pub(crate) async fn sleep_until(self, at: Duration) {
        tokio::time::sleep_until(self.0 + at).await;
    }
}

/// What one client request came to.
#[derive(Clone, Debug)]
pub(crate) enum Outcome {
    /// A response: its status, the backend it names (200 only), when it was complete.
    Answered {
        status: u16,
        backend: Option<String>,
        elapsed: Duration,
    },
    /// The client went away on purpose after this long (no answer is owed).
    Disconnected(#[allow(dead_code)] Duration),
    /// The connection failed or the answer did not come within the client's patience.
    NoAnswer(String),
}

/// One client request.
#[derive(Clone, Debug)]
pub(crate) struct Request {
    pub(crate) id: u64,
    pub(crate) kernel: &'static str,
    pub(crate) sent_at: Duration,
    pub(crate) deadline: Duration,
    pub(crate) cpu_cost: Duration,
    pub(crate) outcome: Option<Outcome>,
}

/// One readiness probe: when, and its status (`None`: no answer within a second).
#[derive(Clone, Copy, Debug)]
pub(crate) struct Probe {
    pub(crate) at: Duration,
    pub(crate) status: Option<u16>,
}

/// The service's state as the sampler saw it, from `at` until the next sample.
#[derive(Clone, Debug, PartialEq, Eq)]
pub(crate) struct Sample {
    pub(crate) at: Duration,
    /// `(kernel id, breaker state)` for every kernel.
    pub(crate) kernel_breakers: Vec<(&'static str, String)>,
    /// The device breaker's state.
    pub(crate) device_breaker: String,
    /// The worker's phase (`Ready`, `Restarting`, `Off`, ...), its name only.
    pub(crate) phase: String,
}

#[derive(Debug, Default)]
pub(crate) struct Record {
    pub(crate) trace: Vec<(Duration, String)>,
    pub(crate) requests: Vec<Request>,
    pub(crate) probes: Vec<Probe>,
    pub(crate) samples: Vec<Sample>,
    /// When the service's start begins, from the simulation's start (set by the service host
    /// first thing: the moment both hosts start at, and from which every other time in the
    /// record counts).
    pub(crate) launched_at: Option<Duration>,
    /// `/metrics` after the traffic.
    pub(crate) metrics: Option<String>,
    /// When the network between the clients and the service held every message (from, until).
    pub(crate) holds: Vec<(Duration, Duration)>,
}

/// The record, shared by the hosts (all on the simulation's thread).
#[derive(Clone, Debug, Default)]
pub(crate) struct Shared(Arc<Mutex<Record>>);

impl Shared {
    pub(crate) fn lock(&self) -> MutexGuard<'_, Record> {
        self.0.lock().unwrap_or_else(PoisonError::into_inner)
    }

    pub(crate) fn event(&self, at: Duration, what: impl Into<String>) {
        self.lock().trace.push((at, what.into()));
    }

    /// Takes the record out once the simulation is over.
    pub(crate) fn take(&self) -> Record {
        std::mem::take(&mut *self.lock())
    }
}

impl Record {
    /// How long the network held messages between `from` and `until`: what it can add to an
    /// exchange in that time (a message sent during a hold arrives when it ends).
    pub(crate) fn held_within(&self, from: Duration, until: Duration) -> Duration {
        self.holds
            .iter()
            .map(|&(start, end)| end.min(until).saturating_sub(start.max(from)))
            .sum()
    }

    /// The trace up to a second after `until`: its last `service` events (the service, the
    /// worker, the probes) and its last `client` events (the requests), in order.
    pub(crate) fn trace_text(&self, until: Duration, service: usize, client: usize) -> String {
        let end = self
            .trace
            .iter()
            .position(|(t, _)| *t > until + Duration::from_secs(1))
            .unwrap_or(self.trace.len());
        let shown = self.trace.get(..end).unwrap_or_default();
        let is_client = |what: &str| what.starts_with("client ");
        let mut keep = vec![false; shown.len()];
        for (wanted, clients) in [(service, false), (client, true)] {
            let mut left = wanted;
            for (i, (_, what)) in shown.iter().enumerate().rev() {
                if left == 0 {
                    break;
                }
                if is_client(what) == clients {
                    keep[i] = true;
                    left -= 1;
                }
            }
        }
        let mut out = String::new();
        let mut skipped = false;
        for ((at, what), keep) in shown.iter().zip(keep) {
            if keep {
                if skipped {
                    out.push_str("  ...\n");
                    skipped = false;
                }
                let _ = writeln!(out, "  {:>10.3}s  {what}", at.as_secs_f64());
            } else {
                skipped = true;
            }
        }
        out
    }

    /// The trace with the events of one instant in a fixed order: two runs of a seed meet the
    /// same events at the same instants, but the hosts' tasks woken at one instant (two
    /// answers delivered in one step) may run in another order.
    pub(crate) fn canonical_trace(&self) -> Vec<(Duration, String)> {
        let mut trace = self.trace.clone();
        trace.sort();
        trace
    }

    /// A fingerprint of the whole trace (FNV-1a, over [`canonical_trace`]), to tell two runs
    /// of a seed apart.
    ///
    /// [`canonical_trace`]: Self::canonical_trace
    pub(crate) fn fingerprint(&self) -> u64 {
        let mut hash: u64 = 0xcbf2_9ce4_8422_2325;
        for (at, what) in &self.canonical_trace() {
            for byte in at.as_micros().to_le_bytes().iter().chain(what.as_bytes()) {
                hash ^= u64::from(*byte);
                hash = hash.wrapping_mul(0x0100_0000_01b3);
            }
        }
        hash
    }
}
