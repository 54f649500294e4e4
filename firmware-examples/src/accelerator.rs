//! A simulated accelerator: a task that answers jobs and pings after a scripted fault schedule.
//!
//! The controller talks to it as it would to a coprocessor on a bus: it posts a [`Request`] and
//! waits for the reply with the same sequence number; a reset line ([`Link::reset`]) reboots
//! it. The [`FaultSchedule`] says, by the number of job requests received, when the device
//! fails and how:
//!
//! | Phase | From job request | Jobs | Pings | A reset |
//! |-------|------------------|------|-------|---------|
//! | healthy | 1 | answered in [`JOB_LATENCY`] | healthy | - |
//! | transient burst | `burst_at` | the next `burst_len` fail with `Transient` | healthy | - |
//! | hang | `hang_at` | never answered | never answered | clears it |
//! | permanent fault | `permanent_at` | fail with `Permanent` | unhealthy | does not clear it |
//!
//! The job itself is [`compute`], the same function the controller runs as its fallback.

use core::cell::Cell;

use critical_section::Mutex;
use embassy_futures::select::{Either, select};
use embassy_sync::blocking_mutex::raw::CriticalSectionRawMutex;
use embassy_sync::channel::Channel;
use embassy_sync::signal::Signal;
use embassy_time::{Duration, Timer};
use rustkernel_core::error::ErrorKind;

/// How long the accelerator takes for a job or a ping.
pub const JOB_LATENCY: Duration = Duration::from_micros(800);
/// How long a reset takes before the device takes requests again.
pub const RESET_TIME: Duration = Duration::from_millis(2);

/// What the controller asks.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Request {
    /// Compute [`compute`] of `input`.
    Job {
        /// Matches the reply to the request.
        seq: u32,
        /// The job's input.
        input: u32,
    },
    /// Answer if alive.
    Ping {
        /// Matches the reply to the request.
        seq: u32,
    },
}

/// The answer to a request with the same `seq`.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Reply {
    /// The request's sequence number.
    pub seq: u32,
    /// The job's result (a ping answers `Ok(0)`), or the device's error.
    pub result: Result<u32, ErrorKind>,
}

/// When the device fails, counted in job requests received (1 is the first).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct FaultSchedule {
    /// The first job request of the transient burst.
    pub burst_at: u32,
    /// Job requests that fail with `Transient` in the burst.
    pub burst_len: u32,
    /// The job request from which the device hangs (until a reset).
    pub hang_at: u32,
    /// The job request from which the device has a permanent fault (resets do not help).
    pub permanent_at: u32,
}

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Mode {
    Healthy,
    Hung,
    Broken,
}

/// The wires between the controller and the accelerator; a `static`.
pub struct Link {
    requests: Channel<CriticalSectionRawMutex, Request, 2>,
    job_reply: Signal<CriticalSectionRawMutex, Reply>,
    ping_reply: Signal<CriticalSectionRawMutex, Reply>,
    reset: Signal<CriticalSectionRawMutex, ()>,
    /// Counters in a critical section: the Cortex-M0 has no atomic read-modify-write.
    seq: Mutex<Cell<u32>>,
    resets: Mutex<Cell<u32>>,
}

impl Link {
    /// Unconnected wires.
    #[must_use]
    pub const fn new() -> Self {
        Self {
            requests: Channel::new(),
            job_reply: Signal::new(),
            ping_reply: Signal::new(),
            reset: Signal::new(),
            seq: Mutex::new(Cell::new(0)),
            resets: Mutex::new(Cell::new(0)),
        }
    }

    fn next_seq(&self) -> u32 {
        critical_section::with(|cs| {
            let seq = self.seq.borrow(cs);
            seq.set(seq.get().wrapping_add(1));
            seq.get()
        })
    }

    /// Runs a job on the accelerator and waits for its answer (for ever, if it hangs: put a
    /// deadline around it).
    ///
    /// # Errors
    /// The device's error.
    pub async fn job(&self, input: u32) -> Result<u32, ErrorKind> {
        let seq = self.next_seq();
        self.job_reply.reset();
        self.requests.send(Request::Job { seq, input }).await;
        loop {
            let reply = self.job_reply.wait().await;
            if reply.seq == seq {
                return reply.result;
            }
        }
    }

    /// Pings the accelerator and waits for its answer (for ever, if it hangs).
    ///
    /// # Errors
    /// The device's error.
    pub async fn ping(&self) -> Result<(), ErrorKind> {
        let seq = self.next_seq();
        self.ping_reply.reset();
        self.requests.send(Request::Ping { seq }).await;
        loop {
            let reply = self.ping_reply.wait().await;
            if reply.seq == seq {
                return reply.result.map(|_| ());
            }
        }
    }

    /// Pulls the reset line: the device reboots and drops what it was doing.
    pub fn reset(&self) {
        critical_section::with(|cs| {
            let resets = self.resets.borrow(cs);
            resets.set(resets.get().wrapping_add(1));
        });
        self.reset.signal(());
    }

    /// Resets so far.
    pub fn resets(&self) -> u32 {
        critical_section::with(|cs| self.resets.borrow(cs).get())
    }
}

impl core::fmt::Debug for Link {
    fn fmt(&self, f: &mut core::fmt::Formatter<'_>) -> core::fmt::Result {
        f.debug_struct("Link")
            .field("queued", &self.requests.len())
            .field("resets", &self.resets())
            .finish_non_exhaustive()
    }
}

impl Default for Link {
    fn default() -> Self {
        Self::new()
    }
}

/// The job: a small hash of the input (the accelerator and the MCU fallback agree on it).
#[must_use]
pub fn compute(input: u32) -> u32 {
    let mut x = input ^ 0x9E37_79B9;
    for _ in 0..4 {
        x ^= x >> 16;
        x = x.wrapping_mul(0x7FEB_352D);
        x ^= x >> 15;
        x = x.wrapping_mul(0x846C_A68B);
    }
    x ^ (x >> 16)
}

/// The device itself: serves `link` after `schedule`, for ever.
pub async fn run(link: &Link, schedule: FaultSchedule) -> ! {
    let mut mode = Mode::Healthy;
    let mut jobs_seen: u32 = 0;
    let mut burst_left: u32 = 0;
    loop {
        let request = match select(link.reset.wait(), link.requests.receive()).await {
            Either::First(()) => {
                Timer::after(RESET_TIME).await;
                link.requests.clear();
                // A reset clears a hang, not a permanent fault.
                if mode == Mode::Hung {
                    mode = Mode::Healthy;
                }
                continue;
            }
            Either::Second(request) => request,
        };
        if let Request::Job { .. } = request {
            jobs_seen = jobs_seen.saturating_add(1);
            if jobs_seen == schedule.burst_at {
                burst_left = schedule.burst_len;
            }
            if jobs_seen == schedule.hang_at {
                mode = Mode::Hung;
            }
            if jobs_seen == schedule.permanent_at {
                mode = Mode::Broken;
            }
        }
        if mode == Mode::Hung {
            continue; // never answers
        }
        Timer::after(JOB_LATENCY).await;
        match request {
            Request::Job { seq, input } => {
                let result = if mode == Mode::Broken {
                    Err(ErrorKind::Permanent)
                } else if burst_left > 0 {
                    burst_left -= 1;
                    Err(ErrorKind::Transient)
                } else {
                    Ok(compute(input))
                };
                link.job_reply.signal(Reply { seq, result });
            }
            Request::Ping { seq } => {
                let result = if mode == Mode::Broken {
                    Err(ErrorKind::Permanent)
                } else {
                    Ok(0)
                };
                link.ping_reply.signal(Reply { seq, result });
            }
        }
    }
}
