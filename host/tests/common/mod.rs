//! Helpers shared by the service's integration tests: a real server started in-process on
//! 127.0.0.1:0, a real HTTP client, the real binary, and event-driven waits (poll a condition
//! until it holds, under an overall timeout; never a fixed long sleep).
#![allow(dead_code)] // each test file uses its own subset
#![allow(unreachable_pub)] // a test helper module, not an API
#![allow(clippy::panic, clippy::indexing_slicing)] // tests index JSON they checked and fail loudly

use std::future::Future;
use std::net::{SocketAddr, TcpListener as StdListener};
use std::path::{Path, PathBuf};
use std::process::{Command, Output};
use std::time::{Duration, Instant};

use rustkernel_host::config::{ConfigFile, ServiceConfig};
use rustkernel_host::service::{self, RunningService};

/// The settings every test starts from: the development preset, one attempt per call (so
/// faults map to calls one to one), a 200 ms breaker timeout, checks every 100 ms, no rate
/// limit, and a generous heartbeat lag (a loaded CI machine must not turn `runtime` degraded).
pub const BASE: &str = r#"
preset = "development"
[server]
drain_timeout = "3s"
[limits]
per_client_rate = 0
[resilience.retry]
max_attempts = 1
[resilience.circuit_breaker]
timeout = "200ms"
[resilience.health_check]
interval = "100ms"
timeout = "50ms"
[runtime]
check_interval = "100ms"
max_heartbeat_lag = "5s"
"#;

/// `BASE` with `extra` merged over it (TOML tables in `extra` replace BASE's keys one by one).
#[must_use]
pub fn toml_with(extra: &str) -> String {
    let mut base: toml::Table = toml::from_str(BASE).expect("BASE is TOML");
    let extra: toml::Table = toml::from_str(extra).expect("the test's TOML parses");
    merge(&mut base, extra);
    toml::to_string(&base).expect("writes")
}

fn merge(into: &mut toml::Table, from: toml::Table) {
    for (key, value) in from {
        match (into.get_mut(&key), value) {
            (Some(toml::Value::Table(left)), toml::Value::Table(right)) => merge(left, right),
            (_, value) => {
                into.insert(key, value);
            }
        }
    }
}

/// A resolved configuration from `BASE` and `extra`.
#[must_use]
pub fn config(extra: &str) -> ServiceConfig {
    ConfigFile::parse(&toml_with(extra))
        .expect("parses")
        .resolve(None)
        .expect("valid")
}

/// A service running in-process, its base URL and a client.
pub struct Server {
    /// The service.
    pub running: RunningService,
    /// `http://127.0.0.1:PORT`.
    pub base: String,
    /// A real HTTP client.
    pub client: reqwest::Client,
}

/// An answer: status, headers, body text.
#[derive(Debug)]
pub struct Answer {
    /// The status code.
    pub status: u16,
    /// The headers.
    pub headers: reqwest::header::HeaderMap,
    /// The body.
    pub body: String,
}

impl Answer {
    /// The body as JSON.
    #[must_use]
    pub fn json(&self) -> serde_json::Value {
        serde_json::from_str(&self.body)
            .unwrap_or_else(|error| panic!("not JSON ({error}): {:?}", self.body))
    }

    /// A header as text.
    #[must_use]
    pub fn header(&self, name: &str) -> Option<String> {
        self.headers
            .get(name)
            .and_then(|value| value.to_str().ok())
            .map(str::to_owned)
    }

    /// The `error` code of an error body.
    #[must_use]
    pub fn error_code(&self) -> String {
        self.json()["error"].as_str().unwrap_or_default().to_owned()
    }
}

/// Starts a service with `BASE` and `extra` on 127.0.0.1:0 and waits until it is ready.
pub async fn start(extra: &str) -> Server {
    start_with(config(extra)).await
}

/// Starts a service with `config` on 127.0.0.1:0 and waits until it is ready.
pub async fn start_with(config: ServiceConfig) -> Server {
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0")
        .await
        .expect("binds 127.0.0.1:0");
    start_on_listener(config, listener).await
}

/// Starts a service with `config` on `listener` and waits until it is ready.
pub async fn start_on_listener(config: ServiceConfig, listener: tokio::net::TcpListener) -> Server {
    let running = service::start_on(config, listener)
        .await
        .expect("the service starts");
    let server = Server {
        base: format!("http://{}", running.local_addr()),
        running,
        client: client(),
    };
    server.wait_ready().await;
    server
}

/// A client with a short overall timeout, so a stuck test fails instead of hanging.
#[must_use]
pub fn client() -> reqwest::Client {
    reqwest::Client::builder()
        .timeout(Duration::from_secs(20))
        .build()
        .expect("a client")
}

/// Sends `request` and reads the whole answer.
pub async fn send(request: reqwest::RequestBuilder) -> Answer {
    let response = request.send().await.expect("an answer");
    let status = response.status().as_u16();
    let headers = response.headers().clone();
    let body = response.text().await.expect("a body");
    Answer {
        status,
        headers,
        body,
    }
}

impl Server {
    /// `GET path`.
    pub async fn get(&self, path: &str) -> Answer {
        send(self.client.get(format!("{}{path}", self.base))).await
    }

    /// `POST path` with `body` (bytes, sent as `application/json`).
    pub async fn post(&self, path: &str, body: impl Into<Vec<u8>>) -> Answer {
        send(self.post_builder(path, body)).await
    }

    /// A `POST path` request to add headers to.
    pub fn post_builder(&self, path: &str, body: impl Into<Vec<u8>>) -> reqwest::RequestBuilder {
        self.client
            .post(format!("{}{path}", self.base))
            .header("content-type", "application/json")
            .body(body.into())
    }

    /// `POST /v1/kernels/{kernel}/execute` with `body`.
    pub async fn execute(&self, kernel: &str, body: &str) -> Answer {
        self.post(&format!("/v1/kernels/{kernel}/execute"), body.to_owned())
            .await
    }

    /// The `/metrics` text.
    pub async fn metrics(&self) -> String {
        let answer = self.get("/metrics").await;
        assert_eq!(answer.status, 200, "{answer:?}");
        answer.body
    }

    /// Waits until `/health/ready` answers 200.
    pub async fn wait_ready(&self) {
        wait_until("the service is ready", Duration::from_secs(10), || async {
            self.get("/health/ready").await.status == 200
        })
        .await;
    }

    /// The `/health` body.
    pub async fn health(&self) -> serde_json::Value {
        self.get("/health").await.json()
    }

    /// The breaker state of `kernel` as `/health` reports it.
    pub async fn breaker_state(&self, kernel: &str) -> String {
        let health = self.health().await;
        let component = component(&health, &format!("kernel/{kernel}"));
        component["breaker"]["state"]
            .as_str()
            .unwrap_or_default()
            .to_owned()
    }
}

/// The component `name` of a `/health` body.
#[must_use]
pub fn component(health: &serde_json::Value, name: &str) -> serde_json::Value {
    health["components"]
        .as_array()
        .into_iter()
        .flatten()
        .find(|component| component["name"] == name)
        .cloned()
        .unwrap_or_else(|| panic!("no component {name} in {health}"))
}

/// Polls `condition` every 20 ms until it holds; fails the test after `timeout`.
pub async fn wait_until<F, Fut>(what: &str, timeout: Duration, mut condition: F)
where
    F: FnMut() -> Fut,
    Fut: Future<Output = bool>,
{
    let start = Instant::now();
    loop {
        if condition().await {
            return;
        }
        assert!(
            start.elapsed() < timeout,
            "timed out after {timeout:?} waiting until {what}"
        );
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
}

/// The value of the sample `name{labels}` in Prometheus text (`labels` as written, e.g.
/// `kernel="graph/pagerank",outcome="success"`), or `None` when absent.
#[must_use]
pub fn sample(metrics: &str, name: &str, labels: &str) -> Option<f64> {
    let prefix = format!("{name}{{{labels}}} ");
    metrics
        .lines()
        .find_map(|line| line.strip_prefix(&prefix))
        .and_then(|value| value.split_whitespace().next())
        .and_then(|value| value.parse().ok())
}

/// The PageRank body of a graph.
#[must_use]
pub fn pagerank_body(num_nodes: u32, edges: &[[u32; 2]]) -> String {
    serde_json::json!({ "num_nodes": num_nodes, "edges": edges }).to_string()
}

/// A small valid PageRank body (a 3-cycle).
pub const CYCLE: &str = r#"{"num_nodes": 3, "edges": [[0, 1], [1, 2], [2, 0]]}"#;

/// A small valid matmul body.
pub const MATMUL_2X2: &str = r#"{"n": 2, "a": [1, 2, 3, 4], "b": [5, 6, 7, 8]}"#;

/// The real binary.
#[must_use]
pub fn binary() -> Command {
    Command::new(env!("CARGO_BIN_EXE_rustkernel"))
}

/// Runs the binary with `args` (and `RUSTKERNEL_TOKEN` unset) and collects its output.
#[must_use]
pub fn run_cli(args: &[&str]) -> Output {
    binary()
        .args(args)
        .env_remove("RUSTKERNEL_TOKEN")
        .output()
        .expect("the binary runs")
}

/// Runs the binary from async code without blocking the runtime's workers.
pub async fn run_cli_async(args: &[&str]) -> Output {
    let args: Vec<String> = args.iter().map(|arg| (*arg).to_owned()).collect();
    tokio::task::spawn_blocking(move || {
        let args: Vec<&str> = args.iter().map(String::as_str).collect();
        run_cli(&args)
    })
    .await
    .expect("the command's task")
}

/// A free port on 127.0.0.1: bound to port 0, read, released.
#[must_use]
pub fn free_port() -> u16 {
    let listener = StdListener::bind("127.0.0.1:0").expect("binds");
    listener.local_addr().expect("an address").port()
}

/// A temporary directory removed on drop.
pub struct TempDir(PathBuf);

impl TempDir {
    /// A fresh directory under the system's temp dir.
    #[must_use]
    pub fn new(tag: &str) -> Self {
        static NEXT: std::sync::atomic::AtomicU32 = std::sync::atomic::AtomicU32::new(0);
        let n = NEXT.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
        let path =
            std::env::temp_dir().join(format!("rustkernel-test-{tag}-{}-{n}", std::process::id()));
        let _ = std::fs::remove_dir_all(&path);
        std::fs::create_dir_all(&path).expect("creates a temp dir");
        Self(path)
    }

    /// Its path.
    #[must_use]
    pub fn path(&self) -> &Path {
        &self.0
    }

    /// Writes `name` with `text` and `mode`; returns its path.
    #[must_use]
    pub fn write(&self, name: &str, text: &str, mode: u32) -> PathBuf {
        use std::os::unix::fs::PermissionsExt;
        let path = self.0.join(name);
        std::fs::write(&path, text).expect("writes");
        std::fs::set_permissions(&path, std::fs::Permissions::from_mode(mode)).expect("chmod");
        path
    }
}

impl Drop for TempDir {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.0);
    }
}

/// Whether `address` accepts connections.
#[must_use]
pub fn accepts(address: SocketAddr) -> bool {
    std::net::TcpStream::connect_timeout(&address, Duration::from_millis(200)).is_ok()
}

/// `rustkernel serve` as a child process, its stderr read line by line on a thread.
pub struct ServeProcess {
    /// The child.
    pub child: std::process::Child,
    lines: std::sync::mpsc::Receiver<String>,
    /// Every stderr line read so far (ANSI colours stripped).
    pub log: Vec<String>,
}

/// `text` without ANSI escape sequences.
#[must_use]
pub fn strip_ansi(text: &str) -> String {
    let mut out = String::with_capacity(text.len());
    let mut chars = text.chars();
    while let Some(c) = chars.next() {
        if c == '\u{1b}' {
            // CSI: ESC [ ... final byte in @..~
            if chars.next() == Some('[') {
                for c in chars.by_ref() {
                    if ('@'..='~').contains(&c) {
                        break;
                    }
                }
            }
        } else {
            out.push(c);
        }
    }
    out
}

impl ServeProcess {
    /// Starts `rustkernel serve ARGS`.
    #[must_use]
    pub fn spawn(args: &[&str]) -> Self {
        let mut child = binary()
            .arg("serve")
            .args(args)
            .env("NO_COLOR", "1")
            .env("RUST_LOG", "info")
            .stdin(std::process::Stdio::null())
            .stdout(std::process::Stdio::null())
            .stderr(std::process::Stdio::piped())
            .spawn()
            .expect("the binary starts");
        let stderr = child.stderr.take().expect("stderr is piped");
        let (send, lines) = std::sync::mpsc::channel();
        std::thread::spawn(move || {
            use std::io::BufRead;
            for line in std::io::BufReader::new(stderr).lines() {
                let Ok(line) = line else { break };
                if send.send(strip_ansi(&line)).is_err() {
                    break;
                }
            }
        });
        Self {
            child,
            lines,
            log: Vec::new(),
        }
    }

    /// Waits for a stderr line containing `needle`; `None` after `timeout` or at the end of
    /// stderr.
    pub fn wait_for_line(&mut self, needle: &str, timeout: Duration) -> Option<String> {
        let deadline = Instant::now() + timeout;
        if let Some(line) = self.log.iter().find(|line| line.contains(needle)) {
            return Some(line.clone());
        }
        loop {
            let left = deadline.checked_duration_since(Instant::now())?;
            let line = self.lines.recv_timeout(left).ok()?;
            self.log.push(line.clone());
            if line.contains(needle) {
                return Some(line);
            }
        }
    }

    /// The address the service logged it listens on.
    pub fn listening_address(&mut self, timeout: Duration) -> SocketAddr {
        let line = self
            .wait_for_line("listening", timeout)
            .unwrap_or_else(|| panic!("the service never listened: {:#?}", self.log));
        line.split_whitespace()
            .find_map(|word| word.strip_prefix("address="))
            .and_then(|address| address.parse().ok())
            .unwrap_or_else(|| panic!("no address in {line:?}"))
    }

    /// Sends SIGTERM.
    pub fn terminate(&self) {
        let status = Command::new("kill")
            .arg("-TERM")
            .arg(self.child.id().to_string())
            .status()
            .expect("kill runs");
        assert!(status.success(), "kill -TERM failed");
    }

    /// Waits for the process to exit; `None` after `timeout`.
    pub fn wait_exit(&mut self, timeout: Duration) -> Option<std::process::ExitStatus> {
        let deadline = Instant::now() + timeout;
        loop {
            if let Some(status) = self.child.try_wait().expect("try_wait") {
                // Read stderr to its end, so the log is complete.
                while let Ok(line) = self.lines.recv_timeout(Duration::from_secs(5)) {
                    self.log.push(line);
                }
                return Some(status);
            }
            if Instant::now() >= deadline {
                return None;
            }
            std::thread::sleep(Duration::from_millis(20));
        }
    }

    /// Every stderr line read so far and any still buffered, for failure messages.
    pub fn drain_log(&mut self) -> String {
        while let Ok(line) = self.lines.try_recv() {
            self.log.push(line);
        }
        self.log.join("\n")
    }
}

impl Drop for ServeProcess {
    fn drop(&mut self) {
        if matches!(self.child.try_wait(), Ok(None)) {
            let _ = self.child.kill();
            let _ = self.child.wait();
        }
    }
}
