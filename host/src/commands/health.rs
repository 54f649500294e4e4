//! `rustkernel health [--url URL] [--format text|json] [--component NAME]`: asks a running
//! service's `GET /health` and exits with a code a monitor can use.
//!
//! | Exit code | Meaning |
//! |---|---|
//! | 0 | healthy |
//! | 1 | degraded |
//! | 2 | unhealthy, or unknown (the service is still starting) |
//! | 3 | unreachable: no answer, or an answer that is not the service's health JSON |
//! | 4 | unknown component (`--component` names none of the service's) |
//! | 2 (clap) | usage error |
//!
//! `--format json` prints the service's `/health` body unchanged (see
//! [`HealthBody`]); with `--component`, that component's
//! object. Both shapes are stable: fields may be added, never renamed or removed.

use std::fmt::Write as _;
use std::io::Write as _;
use std::process::ExitCode;
use std::time::Duration;

use rustkernel_core::resilience::HealthStatus;

use crate::service::health::{ComponentBody, HealthBody};

/// The default service address (`rustkernel serve`'s default).
pub const DEFAULT_URL: &str = "http://127.0.0.1:8080";

/// How `health` prints.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, clap::ValueEnum)]
pub enum HealthFormat {
    /// An aligned table.
    #[default]
    Text,
    /// The service's JSON.
    Json,
}

/// Why the service could not be asked.
#[derive(Debug)]
pub enum HealthError {
    /// No answer (connection refused, timeout).
    Unreachable(String),
    /// An answer that is not the service's health JSON.
    BadAnswer(String),
}

impl std::fmt::Display for HealthError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            HealthError::Unreachable(why) => write!(f, "service unreachable: {why}"),
            HealthError::BadAnswer(why) => write!(f, "not a rustkernel health answer: {why}"),
        }
    }
}

impl std::error::Error for HealthError {}

/// Fetches `GET {url}/health` (with `token` as a bearer token, if given).
///
/// # Errors
/// [`HealthError`] when nothing usable came back.
pub async fn fetch(
    url: &str,
    token: Option<&str>,
    timeout: Duration,
) -> Result<HealthBody, HealthError> {
    let client = reqwest::Client::builder()
        .timeout(timeout)
        .build()
        .map_err(|error| HealthError::Unreachable(error.to_string()))?;
    let mut request = client.get(format!("{}/health", url.trim_end_matches('/')));
    if let Some(token) = token {
        request = request.bearer_auth(token);
    }
    let response = request
        .send()
        .await
        .map_err(|error| HealthError::Unreachable(describe(&error)))?;
    let status = response.status();
    let bytes = response
        .bytes()
        .await
        .map_err(|error| HealthError::Unreachable(describe(&error)))?;
    serde_json::from_slice::<HealthBody>(&bytes)
        .map_err(|error| HealthError::BadAnswer(format!("HTTP {status}: {error}")))
}

/// The error and its causes on one line.
fn describe(error: &dyn std::error::Error) -> String {
    let mut text = error.to_string();
    let mut source = error.source();
    while let Some(cause) = source {
        let _ = write!(text, ": {cause}");
        source = cause.source();
    }
    text
}

/// The exit code of a status.
#[must_use]
pub fn exit_code(status: HealthStatus) -> u8 {
    match status {
        HealthStatus::Healthy => 0,
        HealthStatus::Degraded => 1,
        HealthStatus::Unhealthy | HealthStatus::Unknown => 2,
    }
}

/// Runs the command.
#[must_use]
pub fn run(
    url: &str,
    format: HealthFormat,
    component: Option<&str>,
    timeout: Duration,
) -> ExitCode {
    let runtime = match tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
    {
        Ok(runtime) => runtime,
        Err(error) => {
            super::eprint(format_args!("rustkernel: cannot start a runtime: {error}"));
            return ExitCode::from(3);
        }
    };
    let token = std::env::var("RUSTKERNEL_TOKEN").ok();
    let body = match runtime.block_on(fetch(url, token.as_deref(), timeout)) {
        Ok(body) => body,
        Err(error) => {
            super::eprint(format_args!("rustkernel: {url}: {error}"));
            return ExitCode::from(3);
        }
    };
    let mut out = std::io::stdout().lock();
    if let Some(name) = component {
        let Some(found) = body.components.iter().find(|c| c.name == name) else {
            let known: Vec<&str> = body.components.iter().map(|c| c.name.as_str()).collect();
            super::eprint(format_args!(
                "rustkernel: unknown component {name:?} (known: {})",
                known.join(", ")
            ));
            return ExitCode::from(4);
        };
        let printed = match format {
            HealthFormat::Json => serde_json::to_string_pretty(found)
                .map(|text| text + "\n")
                .unwrap_or_default(),
            HealthFormat::Text => table(std::slice::from_ref(found), None),
        };
        let _ = out.write_all(printed.as_bytes());
        return ExitCode::from(exit_code(found.status));
    }
    let printed = match format {
        HealthFormat::Json => serde_json::to_string_pretty(&body)
            .map(|text| text + "\n")
            .unwrap_or_default(),
        HealthFormat::Text => table(&body.components, Some(&body)),
    };
    let _ = out.write_all(printed.as_bytes());
    ExitCode::from(exit_code(body.status))
}

/// The text table: an overall line (for the whole service), then one aligned row per component.
#[must_use]
pub fn table(components: &[ComponentBody], overall: Option<&HealthBody>) -> String {
    let mut text = String::new();
    if let Some(body) = overall {
        let _ = writeln!(
            text,
            "Overall: {} (live: {}, ready: {}, started: {})",
            body.status,
            yes(body.live),
            yes(body.ready),
            yes(body.started)
        );
        if let Some(reason) = &body.reason {
            let _ = writeln!(text, "Not ready: {reason}");
        }
        text.push('\n');
    }
    let rows: Vec<[String; 5]> = components
        .iter()
        .map(|c| {
            let detail = match (&c.breaker, c.message.is_empty()) {
                (Some(breaker), true) => format!("breaker {}", breaker.state),
                (Some(breaker), false) => format!("breaker {}; {}", breaker.state, c.message),
                (None, _) => c.message.clone(),
            };
            [
                c.name.clone(),
                c.status.to_string(),
                format!("{:.1} ms", c.latency_ms),
                c.last_check.clone().unwrap_or_else(|| "-".to_owned()),
                detail,
            ]
        })
        .collect();
    let header = ["COMPONENT", "STATUS", "LATENCY", "LAST CHECK", "DETAIL"];
    let mut widths = header.map(str::len);
    for row in &rows {
        for (width, cell) in widths.iter_mut().zip(row) {
            *width = (*width).max(cell.chars().count());
        }
    }
    let mut line = |cells: [&str; 5]| {
        let mut row = String::new();
        for (i, (cell, width)) in cells.iter().zip(widths).enumerate() {
            if i + 1 == cells.len() {
                row.push_str(cell);
            } else {
                let _ = write!(row, "{cell:<width$}  ");
            }
        }
        let _ = writeln!(text, "{}", row.trim_end());
    };
    line(header);
    for row in &rows {
        line([&row[0], &row[1], &row[2], &row[3], &row[4]]);
    }
    text
}

fn yes(flag: bool) -> &'static str {
    if flag { "yes" } else { "no" }
}
