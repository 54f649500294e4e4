//! What one seed decides: the run's length and fault rate, the simulated costs of kernels, and
//! every draw the simulated worker and the clients make, each from its own stream of the seed
//! (so adding a draw to one part does not reshuffle the others).

use std::sync::{Arc, Mutex, PoisonError};
use std::time::Duration;

use rand::{Rng, SeedableRng};
use rand_chacha::ChaCha8Rng;
use rustkernel_host::kernels::{KernelRequest, work_units};

/// Simulated CPU time per unit of kernel work ([`work_units`]).
pub(crate) const CPU_PER_UNIT: Duration = Duration::from_micros(10);
/// Simulated GPU time per unit of kernel work, after [`GPU_LAUNCH`].
pub(crate) const GPU_PER_UNIT: Duration = Duration::from_micros(1);
/// Simulated cost of a GPU kernel launch and its transfers.
pub(crate) const GPU_LAUNCH: Duration = Duration::from_millis(2);

/// What a request costs on the simulated CPU.
pub(crate) fn cpu_cost(request: &KernelRequest) -> Duration {
    CPU_PER_UNIT.saturating_mul(u32::try_from(work_units(request)).unwrap_or(u32::MAX))
}

/// What a request costs on the simulated GPU.
pub(crate) fn gpu_cost(request: &KernelRequest) -> Duration {
    GPU_LAUNCH + GPU_PER_UNIT.saturating_mul(u32::try_from(work_units(request)).unwrap_or(u32::MAX))
}

/// The streams a seed is split into.
#[derive(Clone, Copy, Debug)]
pub(crate) enum Stream {
    /// The simulated worker's faults and timings.
    Worker = 1,
    /// The clients' arrivals, requests, deadlines and disconnects.
    Clients = 2,
    /// Turmoil's own, and the shape of the run.
    Network = 3,
    /// The network's holds between the clients and the service.
    Holds = 4,
}

/// A seeded random stream, shared by the tasks of one part of the simulation. Every draw
/// happens on the simulation's one thread in an order the seed decides.
#[derive(Clone, Debug)]
pub(crate) struct Rand(Arc<Mutex<ChaCha8Rng>>);

impl Rand {
    pub(crate) fn new(seed: u64, stream: Stream) -> Self {
        let mut rng = ChaCha8Rng::seed_from_u64(seed);
        rng.set_stream(stream as u64);
        Self(Arc::new(Mutex::new(rng)))
    }

    pub(crate) fn with<T>(&self, f: impl FnOnce(&mut ChaCha8Rng) -> T) -> T {
        f(&mut self.0.lock().unwrap_or_else(PoisonError::into_inner))
    }

    /// True with probability `p`.
    pub(crate) fn chance(&self, p: f64) -> bool {
        self.with(|rng| rng.random_bool(p.clamp(0.0, 1.0)))
    }

    /// A duration in `[low, high)` (`low` when the range is empty).
    pub(crate) fn between(&self, low: Duration, high: Duration) -> Duration {
        if high <= low {
            return low;
        }
        self.with(|rng| rng.random_range(low..high))
    }

    /// A number in `[low, high]`.
    pub(crate) fn int(&self, low: u32, high: u32) -> u32 {
        self.with(|rng| rng.random_range(low..=high))
    }

    /// A seed for turmoil's own generator.
    pub(crate) fn next_u64(&self) -> u64 {
        self.with(Rng::random)
    }
}

/// The shape of one seed's run.
#[derive(Clone, Copy, Debug)]
pub(crate) struct Shape {
    /// How long clients send requests.
    pub(crate) traffic: Duration,
    /// Until when the worker's faults are drawn (after it, the worker is well).
    pub(crate) faults_until: Duration,
    /// The chance that a worker request, a start-up or a heartbeat carries a fault.
    pub(crate) fault_rate: f64,
    /// The mean time between one client's requests.
    pub(crate) mean_gap: Duration,
}

impl Shape {
    /// Faults for the first 70 % of the traffic; the rest shows the recovery.
    pub(crate) fn for_seed(seed: u64, traffic: Duration) -> Self {
        let rand = Rand::new(seed, Stream::Network);
        // One seed in four is gentle, so that the worker often survives the restart limits
        // and the recovery to a ready worker is seen, not only the GPU path's end.
        let fault_rate = if rand.chance(0.25) {
            0.01
        } else {
            [0.03, 0.08, 0.2][usize::try_from(rand.int(0, 2)).unwrap_or(0)]
        };
        Self {
            traffic,
            faults_until: traffic.mul_f64(0.7),
            fault_rate,
            mean_gap: rand.between(Duration::from_millis(300), Duration::from_millis(1200)),
        }
    }
}
