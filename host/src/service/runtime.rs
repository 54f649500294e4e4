//! The service's own machinery, checked as the `runtime` health component (the blocking pool
//! it watches is [`KernelPool`]).
//!
//! `runtime` is:
//! - **unhealthy** when the heartbeat task has stopped beating (the tokio runtime is stuck or
//!   the task died) or the health runner (the supervisor of every check) has stopped;
//! - **degraded** when a heartbeat came later than `runtime.max_heartbeat_lag`, when more
//!   than `runtime.max_blocking_queue` kernel jobs wait for a blocking thread, or when the
//!   process's open file descriptors or resident memory exceed `runtime.max_open_fds` /
//!   `runtime.max_rss_bytes`;
//! - **healthy** otherwise.

use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::time::Duration;

use std::sync::Mutex;

use rustkernel_core::resilience::{HealthCheckResult, Silence, SilenceConfig, SilencePhase};

use crate::config::RuntimeLimits;
use crate::kernels::KernelPool;

/// Heartbeat, blocking-pool and process figures behind the `runtime` component.
#[derive(Debug)]
pub struct RuntimeMonitor {
    limits: RuntimeLimits,
    /// The latest heartbeat's lateness, in microseconds.
    lag_us: AtomicU64,
    /// How long since the latest heartbeat, judged by the core's [`Silence`]: overdue after
    /// an interval plus the allowed lag, stalled after five intervals plus the lag (at least
    /// a second).
    silence: Mutex<Silence>,
    /// Whether the health runner (which supervises every check) is running.
    supervisor_alive: AtomicBool,
    pool: Arc<KernelPool>,
}

impl RuntimeMonitor {
    /// A monitor of `pool` with `limits`.
    #[must_use]
    pub fn new(limits: RuntimeLimits, pool: Arc<KernelPool>) -> Self {
        Self {
            limits,
            lag_us: AtomicU64::new(0),
            silence: Mutex::new(Silence::new(
                heartbeat_silence(&limits),
                rustkernel_tokio::clock::now(),
            )),
            supervisor_alive: AtomicBool::new(true),
            pool,
        }
    }

    /// The heartbeat loop: ticks every `heartbeat_interval` and records how late each tick
    /// was. Runs until its task is aborted.
    pub async fn heartbeat(self: Arc<Self>) {
        let interval = self.limits.heartbeat_interval;
        let mut next = tokio::time::Instant::now() + interval;
        loop {
            tokio::time::sleep_until(next).await;
            let now = tokio::time::Instant::now();
            let lag = now.saturating_duration_since(next);
            self.lag_us.store(micros(lag), Ordering::Relaxed);
            self.silence()
                .on_heard(rustkernel_tokio::clock::to_core(now));
            next = now + interval;
        }
    }

    /// Records whether the health runner is alive.
    pub fn set_supervisor_alive(&self, alive: bool) {
        self.supervisor_alive.store(alive, Ordering::Relaxed);
    }

    /// Whether the process and its supervisor are alive (for `/health/live`): the health
    /// runner runs and the heartbeat has beaten recently. Never checks a dependency.
    #[must_use]
    pub fn is_live(&self) -> bool {
        self.supervisor_alive.load(Ordering::Relaxed) && self.heartbeat_is_fresh()
    }

    fn heartbeat_is_fresh(&self) -> bool {
        self.heartbeat_phase() != SilencePhase::Lost
    }

    fn heartbeat_phase(&self) -> SilencePhase {
        let mut silence = self.silence();
        silence.poll(rustkernel_tokio::clock::now());
        silence.phase()
    }

    fn silence(&self) -> std::sync::MutexGuard<'_, Silence> {
        self.silence
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
    }

    /// The `runtime` component's check.
    #[must_use]
    pub fn check(&self) -> HealthCheckResult {
        if !self.supervisor_alive.load(Ordering::Relaxed) {
            return HealthCheckResult::unhealthy("health supervisor stopped");
        }
        // An overdue beat (silent) shows as lag when it comes; a stalled one (lost) is
        // unhealthy now.
        if !self.heartbeat_is_fresh() {
            return HealthCheckResult::unhealthy("runtime heartbeat stalled");
        }
        let lag = Duration::from_micros(self.lag_us.load(Ordering::Relaxed));
        if lag > self.limits.max_heartbeat_lag {
            return HealthCheckResult::degraded(&format!(
                "runtime lag {} ms over {} ms",
                lag.as_millis(),
                self.limits.max_heartbeat_lag.as_millis()
            ));
        }
        let queued = self.pool.queued();
        if queued > self.limits.max_blocking_queue {
            return HealthCheckResult::degraded(&format!(
                "blocking pool saturated: {queued} jobs queued (limit {})",
                self.limits.max_blocking_queue
            ));
        }
        if let Some(fds) = open_fds()
            && fds > self.limits.max_open_fds
        {
            return HealthCheckResult::degraded(&format!(
                "{fds} open file descriptors (limit {})",
                self.limits.max_open_fds
            ));
        }
        if let Some(rss) = resident_bytes()
            && rss > self.limits.max_rss_bytes
        {
            return HealthCheckResult::degraded(&format!(
                "resident memory {} MiB (limit {} MiB)",
                rss >> 20,
                self.limits.max_rss_bytes >> 20
            ));
        }
        HealthCheckResult::healthy()
    }
}

/// The runtime heartbeat's thresholds: overdue after an interval plus the allowed lag,
/// stalled after five intervals plus the lag, at least a second.
fn heartbeat_silence(limits: &RuntimeLimits) -> SilenceConfig {
    let overdue = limits
        .heartbeat_interval
        .saturating_add(limits.max_heartbeat_lag)
        .max(Duration::from_millis(1));
    let stalled = limits
        .heartbeat_interval
        .saturating_mul(5)
        .saturating_add(limits.max_heartbeat_lag)
        .max(Duration::from_secs(1))
        .max(overdue);
    SilenceConfig {
        silent_after: overdue,
        lost_after: stalled,
    }
}

fn micros(duration: Duration) -> u64 {
    u64::try_from(duration.as_micros()).unwrap_or(u64::MAX)
}

/// Open file descriptors of this process (Linux: `/proc/self/fd`).
fn open_fds() -> Option<u64> {
    let entries = std::fs::read_dir("/proc/self/fd").ok()?;
    u64::try_from(entries.count()).ok()
}

/// Resident memory of this process in bytes (Linux: `/proc/self/statm`, pages of 4 KiB).
fn resident_bytes() -> Option<u64> {
    let statm = std::fs::read_to_string("/proc/self/statm").ok()?;
    let pages: u64 = statm.split_whitespace().nth(1)?.parse().ok()?;
    Some(pages.saturating_mul(4096))
}
