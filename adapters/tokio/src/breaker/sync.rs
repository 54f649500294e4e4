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

/// A small number that differs between threads (usually), to pick a counter stripe. Any value is
/// correct: stripes are only there to keep threads off each other's cache lines.
#[cfg(not(loom))]
pub(crate) fn thread_hint() -> usize {
    use std::cell::Cell;
    use std::sync::atomic::AtomicUsize;

    static NEXT: AtomicUsize = AtomicUsize::new(0);
    thread_local! {
        static HINT: Cell<usize> = const { Cell::new(usize::MAX) };
    }
    HINT.with(|hint| {
        let value = hint.get();
        if value != usize::MAX {
            return value;
        }
        // Round robin: the first threads of a process get distinct stripes.
        let value = NEXT.fetch_add(1, Ordering::Relaxed) & (usize::MAX >> 1);
        hint.set(value);
        value
    })
}

/// Under loom every model thread runs on one OS thread, so `std` thread-locals are shared. The
/// hint must be the same in every explored execution (loom replays schedules and expects the
/// same objects touched): the thread's index in the execution, which loom only shows through
/// `Debug` (`ThreadId(n)`); its `Hash` also covers the execution's id.
#[cfg(loom)]
pub(crate) fn thread_hint() -> usize {
    let id = format!("{:?}", loom::thread::current().id());
    id.chars()
        .filter(char::is_ascii_digit)
        .collect::<String>()
        .parse()
        .unwrap_or(0)
}
