//! `rustkernel demo [--seed N]`: starts the service in-process on an ephemeral port and drives
//! it over HTTP with a seeded workload through an error burst, a latency spike and a hang,
//! with a live view on a terminal (plain lines otherwise) and a summary table at the end.
//!
//! Deterministic with `--seed`: requests are sent one at a time, the workload and every
//! injected fault come from seeded sequences, and the phases move on by request count or by
//! what the service reports (the breaker's state), never by wall-clock time, so the same seed
//! gives the same outcomes. It takes about 15 seconds (the breaker's open time is 2 s).

use std::collections::BTreeMap;
use std::fmt::Write as _;
use std::io::{IsTerminal, Write as _};
use std::process::ExitCode;
use std::sync::Arc;
use std::time::Duration;

use indicatif::{ProgressBar, ProgressDrawTarget, ProgressStyle};
use rustkernel_core::resilience::CircuitState;
use rustkernel_core::rng::Rng;

use crate::config::{ConfigFile, FaultConfig};
use crate::kernels::{MATMUL, PAGERANK};
use crate::service::{self, AppState, RunningService};

/// One request's outcome, as the demo counts it.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord)]
enum Outcome {
    Ok,
    Failed,
    Rejected,
    Timeout,
    Other,
}

impl Outcome {
    fn of(status: u16) -> Self {
        match status {
            200 => Outcome::Ok,
            500 => Outcome::Failed,
            503 => Outcome::Rejected,
            504 => Outcome::Timeout,
            _ => Outcome::Other,
        }
    }
}

/// Counts per kernel.
#[derive(Clone, Debug, Default)]
struct Tally {
    by_outcome: BTreeMap<Outcome, u32>,
    latencies_ms: Vec<f64>,
}

impl Tally {
    fn count(&self, outcome: Outcome) -> u32 {
        self.by_outcome.get(&outcome).copied().unwrap_or(0)
    }

    fn p50(&self) -> f64 {
        let mut sorted = self.latencies_ms.clone();
        sorted.sort_by(f64::total_cmp);
        sorted.get(sorted.len() / 2).copied().unwrap_or(0.0)
    }
}

/// The demo's workload and its view.
struct Demo {
    base: String,
    client: reqwest::Client,
    state: Arc<AppState>,
    rng: Rng,
    tallies: BTreeMap<&'static str, Tally>,
    view: View,
    phase: &'static str,
}

/// Live view: a redrawn status line on a terminal, plain lines otherwise.
enum View {
    Live(ProgressBar),
    Plain,
}

impl View {
    fn new() -> Self {
        if std::io::stdout().is_terminal() {
            let bar = ProgressBar::with_draw_target(None, ProgressDrawTarget::stdout());
            bar.set_style(
                ProgressStyle::with_template("{spinner} {elapsed:>3} {msg}")
                    .unwrap_or_else(|_| ProgressStyle::default_spinner()),
            );
            bar.enable_steady_tick(Duration::from_millis(100));
            View::Live(bar)
        } else {
            View::Plain
        }
    }

    fn line(&self, text: &str) {
        match self {
            View::Live(bar) => bar.println(text),
            View::Plain => {
                let _ = writeln!(std::io::stdout(), "{text}");
            }
        }
    }

    fn status(&self, text: String) {
        if let View::Live(bar) = self {
            bar.set_message(text);
        }
    }

    fn finish(&self) {
        if let View::Live(bar) = self {
            bar.finish_and_clear();
        }
    }
}

const NO_FAULTS: FaultConfig = FaultConfig {
    error_rate: 0.0,
    latency: Duration::ZERO,
    hang_probability: 0.0,
    seed: 0,
};

/// The demo service's configuration: the development preset with a short breaker timeout, no
/// rate limit, and fault injectors (off) on both kernels.
fn demo_config(seed: u64) -> Result<crate::config::ServiceConfig, crate::config::ConfigError> {
    let text = format!(
        r#"
preset = "development"
[server]
address = "127.0.0.1:0"
drain_timeout = "2s"
[limits]
per_client_rate = 0
max_concurrency = 16
[resilience]
attempt_timeout = "200ms"
[resilience.circuit_breaker]
failure_threshold = 4
success_threshold = 2
timeout = "2s"
[resilience.retry]
max_attempts = 2
backoff = {{ kind = "fixed", delay = "5ms" }}
retryable_errors = ["transient", "timeout"]
[resilience.health_check]
interval = "250ms"
timeout = "200ms"
failure_threshold = 1
success_threshold = 1
[runtime]
check_interval = "250ms"
[kernels."graph/pagerank".faults]
seed = {seed}
[kernels."linalg/matmul".faults]
seed = {seed2}
"#,
        seed2 = seed.wrapping_add(1),
    );
    ConfigFile::parse(&text)?.resolve(None)
}

impl Demo {
    fn faults(&self, kernel: &str, config: FaultConfig) {
        if let Some(injector) = self
            .state
            .kernels
            .get(kernel)
            .and_then(|slot| slot.faults.as_ref())
        {
            injector.reconfigure(config);
        }
    }

    /// A small seeded request body for `kernel`.
    fn body(&mut self, kernel: &str) -> String {
        if kernel == PAGERANK {
            let nodes = 8 + self.rng.next_u64() % 24;
            let mut edges = Vec::new();
            for node in 0..nodes {
                let to = self.rng.next_u64() % nodes;
                edges.push(format!("[{node},{to}]"));
                edges.push(format!("[{node},{}]", (node + 1) % nodes));
            }
            format!("{{\"num_nodes\":{nodes},\"edges\":[{}]}}", edges.join(","))
        } else {
            let n: usize = 4 + usize::try_from(self.rng.next_u64() % 12).unwrap_or(0);
            let values: Vec<String> = (0..n * n)
                .map(|_| format!("{}", self.rng.next_u64() % 10))
                .collect();
            let list = values.join(",");
            format!("{{\"n\":{n},\"a\":[{list}],\"b\":[{list}]}}")
        }
    }

    /// Sends one request; counts and shows it.
    async fn call(&mut self, kernel: &'static str, timeout_ms: Option<u64>) -> Outcome {
        let body = self.body(kernel);
        let mut request = self
            .client
            .post(format!("{}/v1/kernels/{kernel}/execute", self.base))
            .header("content-type", "application/json")
            .body(body);
        if let Some(ms) = timeout_ms {
            request = request.header("x-request-timeout-ms", ms.to_string());
        }
        let started = tokio::time::Instant::now();
        let outcome = match request.send().await {
            Ok(response) => Outcome::of(response.status().as_u16()),
            Err(_) => Outcome::Other,
        };
        let tally = self.tallies.entry(kernel).or_default();
        *tally.by_outcome.entry(outcome).or_default() += 1;
        tally
            .latencies_ms
            .push(started.elapsed().as_secs_f64() * 1000.0);
        self.view.status(self.status_line());
        outcome
    }

    fn breaker(&self, kernel: &str) -> String {
        self.state
            .breaker(kernel)
            .map(|breaker| breaker.state().label().to_owned())
            .unwrap_or_default()
    }

    fn status_line(&self) -> String {
        let mut line = format!("{:<15}", self.phase);
        for kernel in [PAGERANK, MATMUL] {
            let tally = self.tallies.get(kernel).cloned().unwrap_or_default();
            let _ = write!(
                line,
                " | {kernel}: ok {} fail {} 503 {} 504 {} breaker {}",
                tally.count(Outcome::Ok),
                tally.count(Outcome::Failed),
                tally.count(Outcome::Rejected),
                tally.count(Outcome::Timeout),
                self.breaker(kernel)
            );
        }
        let body = service::health::body(&self.state);
        let _ = write!(line, " | health {}", body.status);
        line
    }

    fn begin(&mut self, phase: &'static str, what: &str) {
        self.phase = phase;
        self.view.line(&format!("== {phase}: {what}"));
    }

    fn end_phase(&self) {
        self.view.line(&format!("   {}", self.status_line()));
    }

    /// Waits until `kernel`'s breaker is no longer open (it probes after its open time).
    async fn wait_half_open(&self, kernel: &str) {
        let deadline = tokio::time::Instant::now() + Duration::from_secs(10);
        while self.breaker(kernel) == CircuitState::Open.label()
            && tokio::time::Instant::now() < deadline
        {
            if let Some(breaker) = self
                .state
                .kernels
                .get(kernel)
                .and_then(|s| s.pipeline.breaker())
            {
                breaker.poll();
            }
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
    }
}

/// Runs the demo; exit code 0 when it completed.
#[must_use]
pub fn run(seed: u64) -> ExitCode {
    let runtime = match tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
    {
        Ok(runtime) => runtime,
        Err(error) => {
            super::eprint(format_args!("rustkernel: cannot start a runtime: {error}"));
            return ExitCode::from(1);
        }
    };
    runtime.block_on(async move {
        match demo(seed).await {
            Ok(()) => ExitCode::SUCCESS,
            Err(error) => {
                super::eprint(format_args!("rustkernel demo: {error}"));
                ExitCode::from(1)
            }
        }
    })
}

async fn demo(seed: u64) -> Result<(), Box<dyn std::error::Error>> {
    let config = demo_config(seed)?;
    let listener = tokio::net::TcpListener::bind(config.address).await?;
    let running: RunningService = service::start_on(config, listener).await?;
    let base = format!("http://{}", running.local_addr());
    let client = reqwest::Client::builder()
        .timeout(Duration::from_secs(10))
        .build()?;
    // Ready before the workload starts.
    let ready_by = tokio::time::Instant::now() + Duration::from_secs(10);
    while client
        .get(format!("{base}/health/ready"))
        .send()
        .await
        .map(|r| r.status().as_u16())
        .unwrap_or(0)
        != 200
    {
        if tokio::time::Instant::now() > ready_by {
            return Err("the service did not become ready".into());
        }
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    let mut demo = Demo {
        base: base.clone(),
        client,
        state: running.state().clone(),
        rng: Rng::new(seed),
        tallies: BTreeMap::new(),
        view: View::new(),
        phase: "start",
    };
    demo.view.line(&format!(
        "rustkernel demo: service on {base}, seed {seed}; kernels {PAGERANK} and {MATMUL}"
    ));

    demo.begin("steady", "40 requests, no faults");
    for i in 0..40 {
        demo.call(if i % 2 == 0 { PAGERANK } else { MATMUL }, None)
            .await;
    }
    demo.end_phase();

    demo.begin(
        "error burst",
        "pagerank fails 70 % of calls: retries, then its breaker opens",
    );
    demo.faults(
        PAGERANK,
        FaultConfig {
            error_rate: 0.7,
            seed,
            ..NO_FAULTS
        },
    );
    for _ in 0..24 {
        demo.call(PAGERANK, None).await;
    }
    demo.end_phase();

    demo.begin(
        "recovery",
        "faults off; after the open time the breaker probes and closes",
    );
    demo.faults(PAGERANK, NO_FAULTS);
    demo.wait_half_open(PAGERANK).await;
    for i in 0..20 {
        demo.call(if i % 2 == 0 { PAGERANK } else { MATMUL }, None)
            .await;
    }
    demo.end_phase();

    demo.begin(
        "latency spike",
        "matmul takes 150 ms: fine under a 1 s deadline, 504 under 100 ms",
    );
    demo.faults(
        MATMUL,
        FaultConfig {
            latency: Duration::from_millis(150),
            seed,
            ..NO_FAULTS
        },
    );
    for _ in 0..6 {
        demo.call(MATMUL, Some(1000)).await;
    }
    for _ in 0..4 {
        demo.call(MATMUL, Some(100)).await;
    }
    demo.faults(MATMUL, NO_FAULTS);
    demo.end_phase();

    demo.begin(
        "hang",
        "pagerank hangs: every call is cut at its 300 ms deadline",
    );
    demo.faults(
        PAGERANK,
        FaultConfig {
            hang_probability: 1.0,
            seed,
            ..NO_FAULTS
        },
    );
    for _ in 0..6 {
        demo.call(PAGERANK, Some(300)).await;
    }
    demo.end_phase();

    demo.begin("recovered", "faults off; the breakers close again");
    demo.faults(PAGERANK, NO_FAULTS);
    demo.wait_half_open(PAGERANK).await;
    for i in 0..20 {
        demo.call(if i % 2 == 0 { PAGERANK } else { MATMUL }, None)
            .await;
    }
    demo.end_phase();
    demo.view.finish();

    let summary = summary(&demo);
    let _ = std::io::stdout().write_all(summary.as_bytes());
    running.shutdown().await?;
    Ok(())
}

/// The summary table: per kernel outcomes, median latency, breaker transitions; then health.
fn summary(demo: &Demo) -> String {
    let mut text = String::from("\nSummary\n");
    let _ = writeln!(
        text,
        "{:<16} {:>5} {:>5} {:>6} {:>5} {:>5} {:>9} {:>12}  BREAKER",
        "KERNEL", "OK", "500", "503", "504", "OTHER", "P50 MS", "TRANSITIONS"
    );
    for kernel in [PAGERANK, MATMUL] {
        let tally = demo.tallies.get(kernel).cloned().unwrap_or_default();
        let transitions = demo
            .state
            .kernels
            .get(kernel)
            .and_then(|slot| slot.pipeline.breaker())
            .map_or(0, |breaker| breaker.stats().transitions);
        let _ = writeln!(
            text,
            "{:<16} {:>5} {:>5} {:>6} {:>5} {:>5} {:>9.1} {:>12}  {}",
            kernel,
            tally.count(Outcome::Ok),
            tally.count(Outcome::Failed),
            tally.count(Outcome::Rejected),
            tally.count(Outcome::Timeout),
            tally.count(Outcome::Other),
            tally.p50(),
            transitions,
            demo.breaker(kernel)
        );
    }
    let body = service::health::body(&demo.state);
    let _ = writeln!(text, "\nHealth: {}", body.status);
    text.push_str(&super::health::table(&body.components, None));
    text
}
