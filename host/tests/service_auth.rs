//! Bearer tokens on a real server: who gets in, what stays open, how token files are checked,
//! and the refusal to bind a non-loopback address without tokens.
#![allow(clippy::indexing_slicing, clippy::panic)] // tests index JSON they checked and fail loudly

mod common;

use std::time::Duration;

use common::{CYCLE, Server, TempDir, run_cli, send, start_with};
use rustkernel_host::config::{ConfigFile, ServiceConfig};

const TOKEN: &str = "s3cret-token-0123456789";
const OTHER_TOKEN: &str = "another-token-abcdefghij";
const ROUTE: &str = "/v1/kernels/graph/pagerank/execute";

/// A config file in `dir` whose `[auth]` reads a token file of `mode`.
fn auth_config(dir: &TempDir, mode: u32, extra_auth: &str) -> std::path::PathBuf {
    let tokens = dir.write(
        "tokens",
        &format!("# tokens\n{TOKEN}\n\n{OTHER_TOKEN}\n"),
        mode,
    );
    let text = common::toml_with(&format!(
        "[auth]\ntoken_file = {:?}\n{extra_auth}",
        tokens.display().to_string()
    ));
    dir.write("service.toml", &text, 0o600)
}

async fn start_with_tokens(dir: &TempDir) -> Server {
    let path = auth_config(dir, 0o600, "");
    start_with(ServiceConfig::load(&path).expect("a 0600 token file is accepted")).await
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn only_a_configured_token_runs_a_kernel() {
    let dir = TempDir::new("auth");
    let server = start_with_tokens(&dir).await;

    let bearer = |token: &str| {
        server
            .post_builder(ROUTE, CYCLE)
            .header("authorization", format!("Bearer {token}"))
    };
    let cases = [
        ("no token", server.post_builder(ROUTE, CYCLE)),
        (
            "a wrong token of the same length",
            bearer("s3cret-token-0123456780"),
        ),
        ("a prefix of the token", bearer("s3cret-token-012345678")),
        ("a longer token", bearer("s3cret-token-0123456789x")),
        ("an empty token", bearer("")),
        (
            "a token without the scheme",
            server
                .post_builder(ROUTE, CYCLE)
                .header("authorization", TOKEN),
        ),
        (
            "basic auth",
            server
                .post_builder(ROUTE, CYCLE)
                .basic_auth("user", Some(TOKEN)),
        ),
    ];
    for (what, request) in cases {
        let answer = send(request).await;
        assert_eq!(answer.status, 401, "{what}: {answer:?}");
        assert!(
            answer
                .header("www-authenticate")
                .is_some_and(|v| v.starts_with("Bearer")),
            "{what}: {answer:?}"
        );
        // No detail: the same answer whatever was wrong.
        assert_eq!(answer.json()["error"], "unauthorized", "{what}");
        assert_eq!(answer.json()["message"], "unauthorized", "{what}");
    }
    for token in [TOKEN, OTHER_TOKEN] {
        let answer = send(bearer(token)).await;
        assert_eq!(answer.status, 200, "{answer:?}");
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn probes_and_metrics_stay_open_and_admin_routes_need_the_token() {
    let dir = TempDir::new("auth-open");
    let server = start_with_tokens(&dir).await;
    for path in [
        "/health/live",
        "/health/ready",
        "/health/startup",
        "/health",
        "/metrics",
        "/",
        "/status",
        "/status.json",
    ] {
        let answer = server.get(path).await;
        assert_eq!(answer.status, 200, "{path} is open: {answer:?}");
    }
    let admin = "/v1/admin/kernels/graph/pagerank/force-open";
    let answer = server.post(admin, Vec::new()).await;
    assert_eq!(answer.status, 401, "{answer:?}");
    assert!(answer.header("www-authenticate").is_some());
    // Nothing happened.
    assert_eq!(server.breaker_state("graph/pagerank").await, "closed");
    let answer = send(server.post_builder(admin, Vec::new()).bearer_auth(TOKEN)).await;
    assert_eq!(answer.status, 200, "{answer:?}");
    assert_eq!(server.breaker_state("graph/pagerank").await, "forced_open");
    let reset = "/v1/admin/kernels/graph/pagerank/reset";
    assert_eq!(server.post(reset, Vec::new()).await.status, 401);
    let answer = send(server.post_builder(reset, Vec::new()).bearer_auth(TOKEN)).await;
    assert_eq!(answer.status, 200, "{answer:?}");
    assert_eq!(server.breaker_state("graph/pagerank").await, "closed");
}

#[test]
fn a_token_file_readable_by_others_is_refused_unless_allowed() {
    let dir = TempDir::new("auth-mode");
    let path = auth_config(&dir, 0o644, "");
    let error = ServiceConfig::load(&path).expect_err("a 0644 token file is refused");
    let message = error.to_string();
    assert!(
        message.contains("auth.token_file") && message.contains("readable by group or others"),
        "{message}"
    );
    assert!(message.contains("chmod 600"), "{message}");

    let output = run_cli(&["config", "check", path.to_str().expect("UTF-8")]);
    assert_eq!(output.status.code(), Some(1), "{output:?}");
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert!(stderr.contains("auth.token_file"), "{stderr}");
    assert!(stderr.contains("readable by group or others"), "{stderr}");
    assert!(!stderr.contains(TOKEN), "the token leaked: {stderr}");

    let allowed = auth_config(&dir, 0o644, "allow_readable_token_file = true");
    let config = ServiceConfig::load(&allowed).expect("allowed explicitly");
    assert_eq!(config.auth.tokens.len(), 2);
    let output = run_cli(&["config", "check", allowed.to_str().expect("UTF-8")]);
    assert_eq!(output.status.code(), Some(0), "{output:?}");
    assert!(
        String::from_utf8_lossy(&output.stdout).contains("ok"),
        "{output:?}"
    );
}

#[test]
fn short_tokens_are_refused() {
    let dir = TempDir::new("auth-short");
    let tokens = dir.write("tokens", "short-token\n", 0o600);
    let text = format!("[auth]\ntoken_file = {:?}\n", tokens.display().to_string());
    let error = ConfigFile::parse(&text)
        .expect("parses")
        .resolve(None)
        .expect_err("a 11-character token is refused");
    assert!(
        error.to_string().contains("at least 16 characters"),
        "{error}"
    );
    assert!(
        !error.to_string().contains("short-token"),
        "the token leaked: {error}"
    );
}

#[test]
fn config_show_never_prints_a_token() {
    let dir = TempDir::new("auth-show");
    let path = auth_config(&dir, 0o600, "");
    let output = run_cli(&["config", "show", "--file", path.to_str().expect("UTF-8")]);
    assert_eq!(output.status.code(), Some(0), "{output:?}");
    let stdout = String::from_utf8_lossy(&output.stdout);
    assert!(
        !stdout.contains(TOKEN) && !stdout.contains(OTHER_TOKEN),
        "{stdout}"
    );
    assert!(stdout.contains("token_file"), "{stdout}");
}

#[test]
fn a_non_loopback_address_needs_tokens_or_an_explicit_none() {
    // With no file, and with a file that says nothing about auth.
    let dir = TempDir::new("auth-public");
    let silent = dir.write("service.toml", &common::toml_with(""), 0o600);
    let silent = silent.to_str().expect("UTF-8");
    for args in [
        &["--preset", "development", "--address", "0.0.0.0:0"][..],
        &["--config", silent, "--address", "0.0.0.0:0"],
    ] {
        let mut serve = common::ServeProcess::spawn(args);
        let status = serve.wait_exit(Duration::from_secs(10));
        let log = serve.drain_log();
        assert_eq!(
            status.and_then(|s| s.code()),
            Some(1),
            "serve {args:?} must refuse to start: {log}"
        );
        assert!(log.contains("not a loopback address"), "{log}");
        assert!(log.contains("auth.mode = \"none\""), "{log}");
    }

    // With `mode = "none"` said explicitly, it starts.
    let config = dir.write(
        "service.toml",
        &common::toml_with("[server]\naddress = \"0.0.0.0:0\"\n[auth]\nmode = \"none\""),
        0o600,
    );
    let mut serve = common::ServeProcess::spawn(&["--config", config.to_str().expect("UTF-8")]);
    let address = serve.listening_address(Duration::from_secs(20));
    assert!(address.ip().is_unspecified(), "{address}");
    let live = std::net::SocketAddr::from(([127, 0, 0, 1], address.port()));
    assert!(common::accepts(live), "{}", serve.drain_log());
    serve.terminate();
    let status = serve
        .wait_exit(Duration::from_secs(10))
        .unwrap_or_else(|| panic!("did not stop: {}", serve.drain_log()));
    assert_eq!(status.code(), Some(0), "{status:?}: {}", serve.drain_log());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_status_page_follows_the_health_routes_token_rule() {
    let dir = TempDir::new("auth-status");
    let path = auth_config(&dir, 0o600, "protect_health = true\n");
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0")
        .await
        .expect("binds 127.0.0.1:0");
    let running =
        rustkernel_host::service::start_on(ServiceConfig::load(&path).expect("valid"), listener)
            .await
            .expect("starts");
    let base = format!("http://{}", running.local_addr());
    let client = common::client();
    let with_token = |route: &str| {
        client
            .get(format!("{base}{route}"))
            .header("authorization", format!("Bearer {TOKEN}"))
    };
    common::wait_until("ready", std::time::Duration::from_secs(10), || async {
        send(with_token("/health/ready")).await.status == 200
    })
    .await;
    for route in ["/", "/status", "/status.json", "/health"] {
        let answer = send(client.get(format!("{base}{route}"))).await;
        assert_eq!(answer.status, 401, "{route} needs the token: {answer:?}");
        let answer = send(with_token(route)).await;
        assert_eq!(answer.status, 200, "{route} with the token: {answer:?}");
    }
    running.shutdown().await.expect("stops");
}
