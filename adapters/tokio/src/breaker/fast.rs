//! The lock-free part of the shared breaker: the state word that admits closed-state calls with
//! one atomic load, and the striped success counter that counts them without a contended write.

use rustkernel_core::resilience::CircuitState;

use super::sync::{AtomicU64, Ordering, owned_stripes, thread_slot};

/// Set in the word while a success must go through the core (it would end a failure streak, or
/// could open a breaker whose window is below `minimum_calls`: see the core's
/// `successes_deferrable_until`).
const NEED_CORE: u64 = 1 << 8;
const TAG_MASK: u64 = 0xff;

/// The state word: `generation << 32 | need_core << 8 | state tag`. Written only under the core's
/// lock, after the core changed; read by anyone.
#[derive(Debug)]
pub(crate) struct StateWord(AtomicU64);

/// What a load of the [`StateWord`] says.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) struct Snapshot(u64);

impl StateWord {
    pub(crate) fn new(snapshot: Snapshot) -> Self {
        Self(AtomicU64::new(snapshot.0))
    }

    #[inline]
    pub(crate) fn load(&self) -> Snapshot {
        Snapshot(self.0.load(Ordering::Acquire))
    }

    /// Publishes the core's state; the caller holds the core's lock.
    pub(crate) fn store(&self, snapshot: Snapshot) {
        self.0.store(snapshot.0, Ordering::Release);
    }
}

/// A cycle (generation) in the high half of a word, `low` (at most 32 bits) in the low half:
/// the layout of the state word and of a permit's ticket, which compare cycles.
#[inline]
pub(crate) const fn pack(generation: u32, low: u64) -> u64 {
    // A widening cast: `u32 as u64`.
    ((generation as u64) << 32) | (low & 0xffff_ffff)
}

/// The cycle of a word made by [`pack`].
#[inline]
pub(crate) const fn generation_of(word: u64) -> u32 {
    #[allow(clippy::cast_possible_truncation, reason = "the high half fits in u32")]
    let generation = (word >> 32) as u32;
    generation
}

const fn tag(state: CircuitState) -> u64 {
    match state {
        CircuitState::Closed => 0,
        CircuitState::Open => 1,
        CircuitState::HalfOpen => 2,
        CircuitState::ForcedOpen => 3,
        CircuitState::Disabled => 4,
        CircuitState::MetricsOnly => 5,
    }
}

impl Snapshot {
    /// Packs a state, its generation, and whether successes must go through the core.
    #[inline]
    pub(crate) const fn new(state: CircuitState, generation: u32, need_core: bool) -> Self {
        let need_core = if need_core { NEED_CORE } else { 0 };
        Self(pack(generation, need_core | tag(state)))
    }

    #[inline]
    pub(crate) const fn state(self) -> CircuitState {
        match self.0 & TAG_MASK {
            0 => CircuitState::Closed,
            1 => CircuitState::Open,
            2 => CircuitState::HalfOpen,
            3 => CircuitState::ForcedOpen,
            4 => CircuitState::Disabled,
            _ => CircuitState::MetricsOnly,
        }
    }

    #[inline]
    pub(crate) const fn generation(self) -> u32 {
        generation_of(self.0)
    }

    /// Whether a call may be admitted without the core: closed, disabled or metrics-only.
    #[inline]
    pub(crate) const fn admits_freely(self) -> bool {
        matches!(self.0 & TAG_MASK, 0 | 4 | 5)
    }

    /// Whether a fast success reported with a permit of cycle `generation` may be counted on
    /// the side and handed to the core later: closed or metrics-only with nothing that needs
    /// the core, or disabled, still in that cycle (a breaker by time also checks the end of its
    /// bucket).
    #[inline]
    pub(crate) const fn success_is_count_only(self, generation: u32) -> bool {
        let closed = Self::new(CircuitState::Closed, generation, false).0;
        let shadow = Self::new(CircuitState::MetricsOnly, generation, false).0;
        let disabled = Self::new(CircuitState::Disabled, generation, false).0;
        self.0 == closed || self.0 == shadow || (self.0 & !NEED_CORE) == disabled
    }
}

/// One counter on its own cache line (128 bytes covers adjacent-line prefetching).
#[derive(Debug)]
#[repr(align(128))]
struct Padded(AtomicU64);

/// A success counter split over cache-line-padded stripes, one per thread slot (see
/// [`thread_slot`]) plus a shared one. A stripe of a slot is only ever written by the thread that
/// holds the slot, so counting is a plain load and store: no locked instruction and no cache
/// line that another thread writes. Threads without a stripe of their own add to the shared one
/// atomically. Reading sums the stripes.
#[derive(Debug)]
pub(crate) struct StripedCounter {
    /// `owned_stripes()` stripes, then the shared one.
    stripes: Box<[Padded]>,
}

impl StripedCounter {
    pub(crate) fn new() -> Self {
        let stripes = (0..=owned_stripes())
            .map(|_| Padded(AtomicU64::new(0)))
            .collect();
        Self { stripes }
    }

    #[inline]
    pub(crate) fn increment(&self) {
        let owned = self.stripes.len().saturating_sub(1);
        match thread_slot() {
            Some(slot) if slot < owned => {
                if let Some(stripe) = self.stripes.get(slot) {
                    // Only this thread writes this stripe: no read-modify-write needed.
                    let count = stripe.0.load(Ordering::Relaxed);
                    stripe.0.store(count.wrapping_add(1), Ordering::Relaxed);
                }
            }
            _ => {
                if let Some(shared) = self.stripes.last() {
                    shared.0.fetch_add(1, Ordering::Relaxed);
                }
            }
        }
    }

    /// The sum of the stripes (saturating). Exact once the counting threads are quiet (joined,
    /// or synchronised with); while they run, a value some of them have already passed.
    pub(crate) fn sum(&self) -> u64 {
        self.stripes.iter().fold(0u64, |sum, stripe| {
            sum.saturating_add(stripe.0.load(Ordering::Relaxed))
        })
    }
}

#[cfg(all(test, not(loom)))]
mod tests {
    use super::*;

    #[test]
    fn snapshot_round_trips_every_state_and_generation_edge() {
        for state in [
            CircuitState::Closed,
            CircuitState::Open,
            CircuitState::HalfOpen,
            CircuitState::ForcedOpen,
            CircuitState::Disabled,
            CircuitState::MetricsOnly,
        ] {
            for generation in [0, 1, 0x8000_0000, u32::MAX] {
                for need_core in [false, true] {
                    let snapshot = Snapshot::new(state, generation, need_core);
                    assert_eq!(snapshot.state(), state);
                    assert_eq!(snapshot.generation(), generation);
                    assert_eq!(
                        snapshot.admits_freely(),
                        matches!(
                            state,
                            CircuitState::Closed
                                | CircuitState::Disabled
                                | CircuitState::MetricsOnly
                        )
                    );
                }
            }
        }
    }

    #[test]
    fn only_a_closed_word_needing_no_core_or_a_disabled_word_of_the_same_cycle_counts_successes_alone()
     {
        let closed = Snapshot::new(CircuitState::Closed, 7, false);
        assert!(closed.success_is_count_only(7));
        assert!(!closed.success_is_count_only(6));
        assert!(!Snapshot::new(CircuitState::Closed, 7, true).success_is_count_only(7));
        assert!(Snapshot::new(CircuitState::Disabled, 7, true).success_is_count_only(7));
        assert!(!Snapshot::new(CircuitState::Disabled, 8, false).success_is_count_only(7));
        assert!(!Snapshot::new(CircuitState::HalfOpen, 7, false).success_is_count_only(7));
        assert!(!Snapshot::new(CircuitState::Open, 7, false).success_is_count_only(7));
        assert!(Snapshot::new(CircuitState::MetricsOnly, 7, false).success_is_count_only(7));
        assert!(!Snapshot::new(CircuitState::MetricsOnly, 7, true).success_is_count_only(7));
    }

    #[test]
    fn striped_counter_sums_every_thread_even_beyond_the_owned_stripes() {
        let counter = StripedCounter::new();
        // More threads at once than stripes of their own: the rest share the last stripe.
        let threads = owned_stripes() + 8;
        let start = std::sync::Barrier::new(threads);
        std::thread::scope(|scope| {
            for _ in 0..threads {
                scope.spawn(|| {
                    // Take a slot while every thread is alive.
                    let _ = thread_slot();
                    start.wait();
                    for _ in 0..1_000 {
                        counter.increment();
                    }
                });
            }
        });
        assert_eq!(counter.sum(), 1_000 * threads as u64);
        assert!(
            counter
                .stripes
                .last()
                .is_some_and(|shared| shared.0.load(Ordering::Relaxed) > 0)
        );
    }

    #[test]
    fn slots_are_unique_among_live_threads_and_reused_after_exit() {
        let start = std::sync::Barrier::new(8);
        let slots: Vec<Option<usize>> = std::thread::scope(|scope| {
            let handles: Vec<_> = (0..8)
                .map(|_| {
                    scope.spawn(|| {
                        let slot = thread_slot();
                        // Hold the slot until every thread has one.
                        start.wait();
                        slot
                    })
                })
                .collect();
            handles.into_iter().filter_map(|h| h.join().ok()).collect()
        });
        let mut unique: Vec<usize> = slots.iter().flatten().copied().collect();
        unique.sort_unstable();
        unique.dedup();
        assert_eq!(unique.len(), 8);
        // Slots come back when threads exit: 200 threads one after another (while other tests
        // run their own threads) never need 200 slots.
        let most = (0..200)
            .filter_map(|_| std::thread::spawn(thread_slot).join().ok().flatten())
            .max();
        assert!(most.is_some_and(|slot| slot < 150), "{most:?}");
    }
}
