//! The synchronisation primitives of the shared breaker: `std`'s, or loom's models of them when
//! the crate is built with `--cfg loom` (see `tests/loom_breaker.rs`).

#[cfg(loom)]
pub(crate) use loom::sync::atomic::{AtomicU64, Ordering};
#[cfg(loom)]
pub(crate) use loom::sync::{Arc, Mutex, MutexGuard};

#[cfg(not(loom))]
pub(crate) use std::sync::atomic::{AtomicU64, Ordering};
#[cfg(not(loom))]
pub(crate) use std::sync::{Arc, Mutex, MutexGuard};

/// The calling thread's counter slot: a small index that no other live thread holds, or `None`
/// while the thread is being torn down. A slot is given back when its thread exits, so slots stay
/// below the largest number of threads alive at once.
///
/// A thread that gets a slot back from the free list synchronises with the thread that gave it
/// back (through the list's lock), so it sees that thread's last writes to the slot's stripes.
#[cfg(not(loom))]
#[inline]
pub(crate) fn thread_slot() -> Option<usize> {
    SLOT.try_with(|slot| slot.0).ok()
}

#[cfg(not(loom))]
static FREE_SLOTS: std::sync::Mutex<Vec<usize>> = std::sync::Mutex::new(Vec::new());
#[cfg(not(loom))]
static NEXT_SLOT: std::sync::atomic::AtomicUsize = std::sync::atomic::AtomicUsize::new(0);

#[cfg(not(loom))]
struct Slot(usize);

#[cfg(not(loom))]
impl Slot {
    /// Once per thread, on its first count: out of line, so the counting path stays small.
    #[cold]
    #[inline(never)]
    fn take() -> Self {
        let free = FREE_SLOTS
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
            .pop();
        Self(free.unwrap_or_else(|| NEXT_SLOT.fetch_add(1, Ordering::Relaxed)))
    }
}

#[cfg(not(loom))]
impl Drop for Slot {
    fn drop(&mut self) {
        FREE_SLOTS
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
            .push(self.0);
    }
}

#[cfg(not(loom))]
thread_local! {
    static SLOT: Slot = Slot::take();
}

/// How many threads get a counter stripe of their own: twice the parallelism, from 8 to 512.
/// Threads beyond (a large blocking pool) share one more stripe.
#[cfg(not(loom))]
pub(crate) fn owned_stripes() -> usize {
    static OWNED: std::sync::OnceLock<usize> = std::sync::OnceLock::new();
    *OWNED.get_or_init(|| {
        std::thread::available_parallelism()
            .map_or(8, std::num::NonZero::get)
            .saturating_mul(2)
            .clamp(8, 512)
    })
}

/// Under loom every model thread runs on one OS thread, so `std` thread-locals are shared; the
/// slot is the thread's index in the explored execution (0 for the model's main thread), the same
/// in every execution as loom needs. Loom only shows it through `Debug` (`ThreadId(n)`): its
/// `Hash` also covers the execution's id.
#[cfg(loom)]
pub(crate) fn thread_slot() -> Option<usize> {
    let id = format!("{:?}", loom::thread::current().id());
    id.chars()
        .filter(char::is_ascii_digit)
        .collect::<String>()
        .parse()
        .ok()
}

/// Models have at most 4 threads; a fifth would share the extra stripe.
#[cfg(loom)]
pub(crate) fn owned_stripes() -> usize {
    4
}
