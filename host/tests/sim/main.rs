//! Deterministic simulation of the whole service: the real axum router, the kernels'
//! pipelines and breakers, the health registry, the GPU executor and its supervisor with the
//! core's recovery ladder, all on simulated clocks and a simulated network, against a
//! simulated GPU worker and CPU, with every fault, delay and scheduling choice drawn from one
//! seed. A failing seed prints the command that replays it and the trace that led there.
//!
//! ```text
//! cargo test -p rustkernel-host --test sim                  # the default seeds
//! SIM_SEEDS=200 cargo test -p rustkernel-host --test sim    # more
//! SIM_SEED=17 cargo test -p rustkernel-host --test sim      # one, with its trace
//! SIM_MINUTES=60 SIM_SEED=17 cargo test ...                 # longer traffic per seed
//! SIM_MUTANT=device_faults_to_kernel SIM_EXPECT=fail cargo test ... # a mutant must fail
//! ```
//! The test command builds it with `RUSTFLAGS="--cfg tokio_unstable"` (in a target directory
//! of its own), so that tokio's scheduler takes its seed from the simulation too
//! (`tokio::select!` picks among ready branches at random); without it a seed still decides
//! every fault and delay, and two runs may differ where two branches are ready at once.
//!
//! # turmoil or madsim
//! - **turmoil** (the tokio project's): each host is a tokio current-thread runtime on a
//!   paused clock, stepped by the simulation one tick at a time, on one thread; turmoil's
//!   `net` gives TCP streams and listeners between hosts with seeded latency, loss, holds and
//!   partitions. The code under test stays on stock tokio: only the listener and the
//!   transports are swapped, through the seams the service has ([`service::start_with`],
//!   [`WorkerTransport`], [`CpuRunner`]). It cannot see a thread or a real clock the code
//!   reads (`spawn_blocking`, `std::time`): those have to stay behind seams. Cost: a fixed
//!   tick, every host polled every tick.
//! - **madsim**: replaces tokio itself (and `std::time`, `rand`) under `cfg(madsim)`, so
//!   everything, dependencies included, runs on its deterministic executor with time that
//!   jumps to the next event. It needs every crate built with `--cfg madsim` and tokio patched
//!   to `madsim-tokio` across the dependency tree (axum, hyper, tower and reqwest included),
//!   a second build of the world, and its shims lag tokio's API.
//!
//! turmoil, because the service already has its seams and a stock-tokio build is what runs
//! in production; the simulated network is turmoil's, the worker and the CPU are this
//! module's. The fixed tick is what it costs: [`TICK`] is 1 ms, tokio's timer resolution.
//!
//! # Adding a fault or an invariant
//! A fault: draw it in [`worker`] (the worker's start-up, a request, idle time) or in
//! [`clients`] (what clients do, the network's holds), from that part's [`plan::Rand`], before
//! [`plan::Shape::faults_until`], and put an event in the trace. An invariant: a function in
//! [`check`] over the run's [`record::Record`], listed in [`check::all`]; what it needs that
//! the record lacks, the hosts add to the record.
//!
//! # What it does not cover yet
//! The jobs directory and its checkpoint store (they read `SystemTime` and run on
//! `spawn_blocking`), the edge telemetry sources, clock jumps (nothing in the serving path
//! reads a wall clock; the jobs do) and a full disk: they are not in the simulated world.
//!
//! [`service::start_with`]: rustkernel_host::service::start_with
//! [`WorkerTransport`]: rustkernel_host::gpu::WorkerTransport
//! [`CpuRunner`]: rustkernel_host::kernels::CpuRunner
#![allow(clippy::unwrap_used, clippy::panic, clippy::indexing_slicing)] // a test fails loudly

mod check;
mod clients;
mod cpu;
mod plan;
mod record;
mod worker;
mod world;

use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

/// The service host's name and port.
const SERVICE: &str = "service";
const PORT: u16 = 8080;
/// Turmoil's step: the millisecond tokio's timers move by, so that the hosts meet on the
/// same instants in every run of a seed (a coarser step is cheaper but puts each run's start
/// at another phase of it).
const TICK: Duration = Duration::from_millis(1);
/// The simulated network's latency, each way.
const NETWORK_LATENCY: Duration = Duration::from_millis(1);
/// How late past its deadline an answer may reach the client: the service documents no
/// grace of its own (it answers by the deadline), so this covers the simulated network's
/// round trips (connection, request, answer) and the ticks they land on.
const ANSWER_GRACE: Duration = Duration::from_millis(50);
/// From the start of the service's start-up until it must answer its probes 200.
const STARTUP_BOUND: Duration = Duration::from_secs(2);
/// From the last fault until the worker is back (or off for good) and its breaker closed:
/// the worker's probation lasts `restart_window` (60 s) and the device breaker stays open
/// 30 s before it tries the worker again.
const RECOVERY_BOUND: Duration = Duration::from_secs(120);
/// Seeds the test command runs (numbers 1 to this), in a release build with tokio's scheduler
/// seeded: 80 seeds (and the first one again) took 74.6 s on the project's two cores
/// (docs/simulation.md has the figures).
const DEFAULT_SEEDS: u64 = 80;
/// Simulated minutes of traffic per seed.
const DEFAULT_MINUTES: u64 = 10;
/// A build without tokio's seeded scheduler (plain `cargo test --workspace`) runs one seed of
/// this many minutes unless told otherwise: a smoke run of the harness; the seeds are the test
/// command's simulation step.
const SMOKE_MINUTES: u64 = 2;

fn env_u64(name: &str) -> Option<u64> {
    let text = std::env::var(name).ok()?;
    match text.trim().parse() {
        Ok(value) => Some(value),
        Err(_) => {
            eprintln!("{name}={text:?} is not a number");
            std::process::exit(2);
        }
    }
}

fn mutant() -> Option<&'static str> {
    if cfg!(sim_mutant = "device_faults_to_kernel") {
        Some("device_faults_to_kernel")
    } else if cfg!(sim_mutant = "startup_waits_for_worker") {
        Some("startup_waits_for_worker")
    } else {
        None
    }
}

/// The command that replays `seed` as this run was built and run.
fn replay_command(seed: u64, minutes: u64) -> String {
    let mut env = Vec::new();
    if let Ok(dir) = std::env::var("CARGO_TARGET_DIR") {
        env.push(format!("CARGO_TARGET_DIR={dir}"));
    }
    if cfg!(tokio_unstable) {
        env.push("RUSTFLAGS=\"--cfg tokio_unstable\"".to_owned());
    }
    if let Some(name) = mutant() {
        env.push(format!("SIM_MUTANT={name}"));
    }
    if minutes != DEFAULT_MINUTES {
        env.push(format!("SIM_MINUTES={minutes}"));
    }
    env.push(format!("SIM_SEED={seed}"));
    format!("{} cargo test -p rustkernel-host --test sim", env.join(" "))
}

/// What one seed came to.
struct SeedResult {
    seed: u64,
    violations: Vec<check::Violation>,
    summary: String,
    report: String,
    fingerprint: u64,
    /// The whole trace, for the determinism check.
    trace: String,
}

fn run_seed(seed: u64, minutes: u64) -> SeedResult {
    let traffic = Duration::from_secs(minutes * 60);
    let (record, shape) = match world::run(seed, traffic) {
        Ok(done) => done,
        Err(why) => {
            return SeedResult {
                seed,
                violations: vec![check::Violation {
                    at: Duration::ZERO,
                    invariant: "the simulation runs",
                    what: why,
                }],
                summary: String::new(),
                report: String::new(),
                fingerprint: 0,
                trace: String::new(),
            };
        }
    };
    let violations = check::all(&record, &shape);
    let count = |f: &dyn Fn(&record::Outcome) -> bool| {
        record
            .requests
            .iter()
            .filter(|r| r.outcome.as_ref().is_some_and(f))
            .count()
    };
    let on = |backend: &'static str| move |o: &record::Outcome| matches!(o, record::Outcome::Answered { status: 200, backend: Some(b), .. } if b == backend);
    let workers = record
        .trace
        .iter()
        .filter(|(_, what)| what.contains(": started, start-up"))
        .count();
    let summary = format!(
        "fault rate {:.2}, {} requests: {} on the GPU, {} on the CPU, {} hung up; {workers} workers, ended {}",
        shape.fault_rate,
        record.requests.len(),
        count(&on("gpu")),
        count(&on("cpu")),
        count(&|o| matches!(o, record::Outcome::Disconnected(_))),
        record.samples.last().map_or("?", |s| s.phase.as_str()),
    );
    let report = violations.first().map_or_else(String::new, |first| {
        format!(
            "trace up to a second after the first violation (its last 40 service and worker events, its last 25 client events):\n{}",
            record.trace_text(first.at, 40, 25)
        )
    });
    SeedResult {
        seed,
        violations,
        summary,
        report,
        fingerprint: record.fingerprint(),
        trace: record
            .canonical_trace()
            .iter()
            .map(|(at, what)| format!("{:>10.3}s  {what}\n", at.as_secs_f64()))
            .collect(),
    }
}

fn main() {
    let told = ["SIM_SEED", "SIM_SEEDS", "SIM_MINUTES", "SIM_EXPECT"]
        .iter()
        .any(|name| std::env::var_os(name).is_some());
    let smoke = !cfg!(tokio_unstable) && !told;
    let minutes = env_u64("SIM_MINUTES")
        .unwrap_or(if smoke {
            SMOKE_MINUTES
        } else {
            DEFAULT_MINUTES
        })
        .max(1);
    let expect_failure = std::env::var("SIM_EXPECT").is_ok_and(|v| v == "fail");
    let seeds: Vec<u64> = match env_u64("SIM_SEED") {
        Some(seed) => vec![seed],
        None if smoke => vec![1],
        None => (1..=env_u64("SIM_SEEDS").unwrap_or(DEFAULT_SEEDS)).collect(),
    };
    if smoke {
        println!(
            "sim: a smoke run (one seed, {SMOKE_MINUTES} minutes); the seeds run in the test command's simulation step, or with SIM_SEEDS=N"
        );
    }
    let threads = env_u64("SIM_THREADS").unwrap_or(2).clamp(1, 64);
    println!(
        "sim: {} seed(s) x {minutes} simulated minutes of traffic, {threads} thread(s){}{}",
        seeds.len(),
        mutant().map_or_else(String::new, |m| format!(", mutant {m}")),
        if cfg!(tokio_unstable) {
            ", tokio's scheduler seeded"
        } else {
            ", tokio's scheduler not seeded (build with --cfg tokio_unstable for exact replays)"
        },
    );
    let started = Instant::now();

    // The first seed twice: the same seed must give the same trace (with tokio's scheduler
    // seeded; without it, `select!` picks at random among ready branches).
    let mut determinism_failure = None;
    if cfg!(tokio_unstable) && seeds.len() > 1 && !expect_failure {
        let first = seeds[0];
        let a = std::thread::spawn(move || run_seed(first, minutes));
        let b = std::thread::spawn(move || run_seed(first, minutes));
        let (a, b) = (a.join().unwrap(), b.join().unwrap());
        if a.fingerprint == b.fingerprint {
            println!(
                "sim: seed {first} twice: the same trace ({:016x})",
                a.fingerprint
            );
        } else {
            let differ = a
                .trace
                .lines()
                .zip(b.trace.lines())
                .position(|(x, y)| x != y)
                .unwrap_or(0);
            let line = |t: &str| t.lines().nth(differ).unwrap_or("(end)").to_owned();
            let dir = std::path::Path::new(env!("CARGO_TARGET_TMPDIR"));
            let _ = std::fs::write(dir.join(format!("sim-{first}-a.trace")), &a.trace);
            let _ = std::fs::write(dir.join(format!("sim-{first}-b.trace")), &b.trace);
            determinism_failure = Some(format!(
                "seed {first} twice gave two traces: the simulation is not deterministic; they part at line {differ}:\n  {}\n  {}\n(both in {})",
                line(&a.trace),
                line(&b.trace),
                dir.display()
            ));
        }
    }

    let next = Arc::new(AtomicU64::new(0));
    let stop = Arc::new(AtomicBool::new(false));
    let results = Arc::new(Mutex::new(Vec::new()));
    let seeds = Arc::new(seeds);
    let workers: Vec<_> = (0..threads)
        .map(|_| {
            let (next, stop, results, seeds) =
                (next.clone(), stop.clone(), results.clone(), seeds.clone());
            std::thread::spawn(move || {
                while !stop.load(Ordering::SeqCst) {
                    let index = next.fetch_add(1, Ordering::SeqCst);
                    let Some(&seed) = usize::try_from(index).ok().and_then(|i| seeds.get(i)) else {
                        return;
                    };
                    let wall = Instant::now();
                    let result = run_seed(seed, minutes);
                    let verdict = if result.violations.is_empty() {
                        "ok".to_owned()
                    } else {
                        format!("FAILED ({} violations)", result.violations.len())
                    };
                    println!(
                        "sim: seed {seed}: {verdict} in {:.1}s wall; {}; trace {:016x}",
                        wall.elapsed().as_secs_f64(),
                        result.summary,
                        result.fingerprint
                    );
                    if expect_failure && !result.violations.is_empty() {
                        stop.store(true, Ordering::SeqCst);
                    }
                    results.lock().unwrap().push(result);
                }
            })
        })
        .collect();
    for worker in workers {
        worker.join().unwrap();
    }
    let wall = started.elapsed();
    let mut results = std::mem::take(&mut *results.lock().unwrap());
    results.sort_by_key(|r| r.seed);
    if let [one] = results.as_slice() {
        // One seed (a replay): its whole trace, to read.
        let path = std::path::Path::new(env!("CARGO_TARGET_TMPDIR"))
            .join(format!("sim-{}.trace", one.seed));
        if std::fs::write(&path, &one.trace).is_ok() {
            println!("sim: the whole trace is in {}", path.display());
        }
    }
    let failed: Vec<&SeedResult> = results
        .iter()
        .filter(|r| !r.violations.is_empty())
        .collect();
    let simulated = Duration::from_secs(minutes * 60).as_secs_f64() * results.len() as f64;
    println!(
        "sim: {} seed(s) in {:.1}s wall: {:.3} simulated hours of traffic per wall second",
        results.len(),
        wall.as_secs_f64(),
        simulated / 3600.0 / wall.as_secs_f64().max(1e-9),
    );
    for result in &failed {
        println!("\nsim: seed {} FAILED:", result.seed);
        for v in result.violations.iter().take(5) {
            println!(
                "  at {:.3}s: {}: {}",
                v.at.as_secs_f64(),
                v.invariant,
                v.what
            );
        }
        if result.violations.len() > 5 {
            println!("  ... and {} more", result.violations.len() - 5);
        }
        println!("{}", result.report);
        println!("replay: {}", replay_command(result.seed, minutes));
    }
    if expect_failure {
        match failed.first() {
            Some(first) => {
                println!(
                    "sim: the mutant {} was caught by seed {} ({} seed(s) run)",
                    mutant().unwrap_or("(none)"),
                    first.seed,
                    results.len()
                );
                println!("1 passed, 0 failed");
            }
            None => {
                println!(
                    "sim: the mutant {} survived {} seed(s)",
                    mutant().unwrap_or("(none)"),
                    results.len()
                );
                println!("0 passed, 1 failed");
                std::process::exit(1);
            }
        }
        return;
    }
    if let Some(why) = &determinism_failure {
        println!("\nsim: {why}");
    }
    println!(
        "{} passed, {} failed",
        results.len() - failed.len(),
        failed.len() + usize::from(determinism_failure.is_some())
    );
    if !failed.is_empty() || determinism_failure.is_some() {
        std::process::exit(1);
    }
}
