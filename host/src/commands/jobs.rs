//! `rustkernel jobs submit|status|wait|cancel|list`: the jobs API from the command line
//! (`--url`, default `http://127.0.0.1:8080`; a bearer token from `RUSTKERNEL_TOKEN`).
//!
//! `wait` follows a job until it ends: a progress bar (indicatif) when stderr is a terminal,
//! otherwise a plain line on stderr whenever its state or checkpoint changes; then the job on
//! stdout. `--format json` prints the service's JSON unchanged (stable: fields may be added,
//! never renamed or removed).
//!
//! | Exit code | Meaning |
//! |---|---|
//! | 0 | done (`wait`, `submit --wait`: the job succeeded) |
//! | 1 | `wait`: the job failed |
//! | 2 | usage error (clap's) |
//! | 3 | the service is unreachable, or answered with an error of its own (5xx) or something else than its JSON |
//! | 4 | unknown job |
//! | 5 | `wait`: the job was cancelled |
//! | 6 | refused: a bad job (400), a full queue (429), a job over already (409), no token (401) |
//! | 7 | `wait --timeout` passed first |

use std::fmt::Write as _;
use std::io::{IsTerminal as _, Read as _, Write as _};
use std::path::Path;
use std::process::ExitCode;
use std::time::{Duration, Instant};

use crate::jobs::{JobPage, JobRecord, JobSpec, JobStatus};
use crate::kernels::CheckpointEvery;
use crate::service::error::ErrorBody;

/// How `jobs` prints.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, clap::ValueEnum)]
pub enum JobsFormat {
    /// Lines for people.
    #[default]
    Text,
    /// The service's JSON.
    Json,
}

/// Why a command failed, and its exit code.
#[derive(Debug)]
pub enum JobsError {
    /// No usable answer (3).
    Unreachable(String),
    /// 404 (4).
    NotFound(String),
    /// 400, 401, 409, 429 (6).
    Refused(String),
    /// The input file could not be read (1).
    Input(String),
    /// `wait --timeout` passed (7).
    TimedOut(String),
}

impl JobsError {
    /// The process's exit code for it.
    #[must_use]
    pub fn code(&self) -> u8 {
        match self {
            JobsError::Input(_) => 1,
            JobsError::Unreachable(_) => 3,
            JobsError::NotFound(_) => 4,
            JobsError::Refused(_) => 6,
            JobsError::TimedOut(_) => 7,
        }
    }
}

impl std::fmt::Display for JobsError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            JobsError::Unreachable(why) => write!(f, "service unreachable: {why}"),
            JobsError::NotFound(why) | JobsError::Refused(why) | JobsError::Input(why) => {
                f.write_str(why)
            }
            JobsError::TimedOut(why) => write!(f, "timed out: {why}"),
        }
    }
}

impl std::error::Error for JobsError {}

/// What `jobs submit` sends.
#[derive(Debug)]
pub struct Submit<'a> {
    /// The kernel id.
    pub kernel: &'a str,
    /// The input JSON file, `-` for stdin.
    pub input: &'a Path,
    /// The deadline.
    pub deadline: Option<Duration>,
    /// Iterations between checkpoints.
    pub checkpoint_every: Option<u32>,
    /// Time between checkpoints.
    pub checkpoint_interval: Option<Duration>,
}

/// A client of one service.
#[derive(Debug)]
pub struct Client {
    base: String,
    http: reqwest::Client,
    token: Option<String>,
}

impl Client {
    /// A client of the service at `url`, with `RUSTKERNEL_TOKEN` as its bearer token.
    ///
    /// # Errors
    /// When the HTTP client cannot be built.
    pub fn new(url: &str) -> Result<Self, JobsError> {
        let http = reqwest::Client::builder()
            .timeout(Duration::from_secs(30))
            .build()
            .map_err(|error| JobsError::Unreachable(error.to_string()))?;
        Ok(Self {
            base: format!("{}/v1/jobs", url.trim_end_matches('/')),
            http,
            token: std::env::var("RUSTKERNEL_TOKEN")
                .ok()
                .filter(|t| !t.is_empty()),
        })
    }

    async fn call<T: serde::de::DeserializeOwned>(
        &self,
        request: reqwest::RequestBuilder,
    ) -> Result<T, JobsError> {
        let request = match &self.token {
            Some(token) => request.bearer_auth(token),
            None => request,
        };
        let response = request
            .send()
            .await
            .map_err(|error| JobsError::Unreachable(describe(&error)))?;
        let status = response.status();
        let bytes = response
            .bytes()
            .await
            .map_err(|error| JobsError::Unreachable(describe(&error)))?;
        if status.is_success() {
            return serde_json::from_slice(&bytes)
                .map_err(|error| JobsError::Unreachable(format!("HTTP {status}: {error}")));
        }
        let message = serde_json::from_slice::<ErrorBody>(&bytes)
            .map(|body| body.message)
            .unwrap_or_else(|_| String::from_utf8_lossy(&bytes).into_owned());
        Err(match status.as_u16() {
            404 => JobsError::NotFound(message),
            400 | 401 | 409 | 429 => JobsError::Refused(format!("HTTP {status}: {message}")),
            _ => JobsError::Unreachable(format!("HTTP {status}: {message}")),
        })
    }

    /// `POST /v1/jobs`.
    ///
    /// # Errors
    /// [`JobsError`].
    pub async fn submit(&self, spec: &JobSpec) -> Result<JobStatus, JobsError> {
        self.call(self.http.post(&self.base).json(spec)).await
    }

    /// `GET /v1/jobs/{id}`.
    ///
    /// # Errors
    /// [`JobsError`].
    pub async fn status(&self, id: &str) -> Result<JobStatus, JobsError> {
        self.call(self.http.get(format!("{}/{id}", self.base)))
            .await
    }

    /// `DELETE /v1/jobs/{id}`.
    ///
    /// # Errors
    /// [`JobsError`].
    pub async fn cancel(&self, id: &str) -> Result<JobStatus, JobsError> {
        self.call(self.http.delete(format!("{}/{id}", self.base)))
            .await
    }

    /// `GET /v1/jobs?after=&limit=`.
    ///
    /// # Errors
    /// [`JobsError`].
    pub async fn list(&self, after: Option<&str>, limit: usize) -> Result<JobPage, JobsError> {
        let mut url = format!("{}?limit={limit}", self.base);
        if let Some(after) = after {
            // Ids are hexadecimal digits and `-`: nothing to escape, and nothing else is one.
            let id = crate::jobs::JobId::parse(after)
                .ok_or_else(|| JobsError::Refused(format!("{after:?} is not a job id")))?;
            let _ = write!(url, "&after={id}");
        }
        self.call(self.http.get(url)).await
    }

    /// Polls the job every `poll` until it is over; `progress` sees each answer.
    ///
    /// # Errors
    /// [`JobsError`]; [`JobsError::TimedOut`] after `timeout`.
    pub async fn wait(
        &self,
        id: &str,
        poll: Duration,
        timeout: Option<Duration>,
        mut progress: impl FnMut(&JobStatus),
    ) -> Result<JobStatus, JobsError> {
        let started = Instant::now();
        loop {
            let status = self.status(id).await?;
            progress(&status);
            if status.record.state.is_final() {
                return Ok(status);
            }
            if timeout.is_some_and(|timeout| started.elapsed() >= timeout) {
                return Err(JobsError::TimedOut(format!(
                    "job {id} is still {}",
                    status.record.state
                )));
            }
            tokio::time::sleep(poll).await;
        }
    }
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

/// The spec `jobs submit` sends.
///
/// # Errors
/// [`JobsError::Input`] when the input cannot be read or is not JSON.
pub fn spec(submit: &Submit<'_>) -> Result<JobSpec, JobsError> {
    let mut text = String::new();
    let read = if submit.input.as_os_str() == "-" {
        std::io::stdin().read_to_string(&mut text).map(|_| ())
    } else {
        std::fs::read_to_string(submit.input).map(|read| text = read)
    };
    read.map_err(|error| {
        JobsError::Input(format!("cannot read {}: {error}", submit.input.display()))
    })?;
    let input = serde_json::from_str(&text).map_err(|error| {
        JobsError::Input(format!("{} is not JSON: {error}", submit.input.display()))
    })?;
    let checkpoint = (submit.checkpoint_every.is_some() || submit.checkpoint_interval.is_some())
        .then(|| CheckpointEvery {
            iterations: submit.checkpoint_every.and_then(std::num::NonZeroU32::new),
            interval: submit.checkpoint_interval,
        });
    Ok(JobSpec {
        kernel: submit.kernel.to_owned(),
        input,
        deadline: submit.deadline,
        checkpoint,
    })
}

/// A job as lines for people.
#[must_use]
pub fn render(status: &JobStatus) -> String {
    let record = &status.record;
    let mut out = String::new();
    let _ = writeln!(out, "job         {}", record.id);
    let _ = writeln!(out, "kernel      {}", record.kernel);
    let _ = writeln!(out, "state       {}", record.state);
    let _ = writeln!(out, "progress    {}", progress(record));
    if let Some(mark) = record.last_checkpoint {
        let _ = writeln!(
            out,
            "checkpoint  iteration {} at {}, {} bytes, written in {:.1} ms",
            mark.iteration,
            time(mark.at_ms),
            mark.bytes,
            mark.write_ms
        );
    }
    if record.failed_checkpoint_writes > 0 {
        let _ = writeln!(
            out,
            "failing     {} checkpoint writes in a row: {}",
            record.failed_checkpoint_writes,
            record.last_write_error.as_deref().unwrap_or("?")
        );
    }
    if record.resumes > 0 {
        let _ = writeln!(
            out,
            "resumes     {} (the last from iteration {})",
            record.resumes,
            record
                .resumed_from
                .map_or_else(|| "?".to_owned(), |it| it.to_string())
        );
    }
    for skipped in &record.skipped_checkpoints {
        let _ = writeln!(
            out,
            "skipped     checkpoint {}: {}",
            skipped.sequence, skipped.reason
        );
    }
    if let Some(runner) = &record.runner {
        let _ = writeln!(out, "runner      {runner}");
    }
    if let Some(error) = &record.error {
        let _ = writeln!(out, "error       {error}");
    }
    out
}

fn progress(record: &JobRecord) -> String {
    let done = record.progress.iterations_done;
    let max = record.progress.max_iterations.max(1);
    format!(
        "{done}/{} iterations ({:.0}%)",
        record.progress.max_iterations,
        f64::from(done) * 100.0 / f64::from(max)
    )
}

fn time(ms: u64) -> String {
    humantime::format_rfc3339_millis(crate::jobs::record::from_unix_ms(ms)).to_string()
}

/// One line of a job, for `list` and `wait`'s plain progress.
#[must_use]
pub fn line(record: &JobRecord) -> String {
    let checkpoint = record.last_checkpoint.map_or_else(String::new, |mark| {
        format!(", checkpoint {}", mark.iteration)
    });
    format!(
        "{}  {:<9}  {}  {}{checkpoint}",
        record.id,
        record.state.as_str(),
        record.kernel,
        progress(record)
    )
}

/// The exit code of a job's end state.
#[must_use]
pub fn exit_code(record: &JobRecord) -> u8 {
    match record.state {
        crate::jobs::JobState::Succeeded => 0,
        crate::jobs::JobState::Failed => 1,
        crate::jobs::JobState::Cancelled => 5,
        // Not over: only after a timeout, which has its own code.
        crate::jobs::JobState::Queued | crate::jobs::JobState::Running => 7,
    }
}

/// Prints `status` in `format` on stdout.
pub fn print(status: &JobStatus, format: JobsFormat) {
    let text = match format {
        JobsFormat::Text => render(status),
        JobsFormat::Json => serde_json::to_string_pretty(status).unwrap_or_default() + "\n",
    };
    let _ = std::io::stdout().write_all(text.as_bytes());
}

/// Follows job `id` to its end with a bar on a terminal, plain lines otherwise.
///
/// # Errors
/// [`JobsError`].
pub async fn follow(
    client: &Client,
    id: &str,
    poll: Duration,
    timeout: Option<Duration>,
) -> Result<JobStatus, JobsError> {
    if std::io::stderr().is_terminal() {
        let bar = indicatif::ProgressBar::new(0);
        bar.set_style(
            indicatif::ProgressStyle::with_template(
                "{spinner} {prefix} [{bar:30}] {pos}/{len} {msg}",
            )
            .unwrap_or_else(|_| indicatif::ProgressStyle::default_bar())
            .progress_chars("=> "),
        );
        bar.set_prefix(id.to_owned());
        let result = client
            .wait(id, poll, timeout, |status| {
                let record = &status.record;
                bar.set_length(u64::from(record.progress.max_iterations));
                bar.set_position(u64::from(record.progress.iterations_done));
                let checkpoint = record.last_checkpoint.map_or_else(String::new, |mark| {
                    format!(" checkpoint {}", mark.iteration)
                });
                bar.set_message(format!("{}{checkpoint}", record.state));
                bar.tick();
            })
            .await;
        bar.finish_and_clear();
        result
    } else {
        let mut last = String::new();
        client
            .wait(id, poll, timeout, |status| {
                let record = &status.record;
                let key = format!(
                    "{} {:?} {}",
                    record.state,
                    record.last_checkpoint.map(|mark| mark.iteration),
                    record.resumes
                );
                if key != last {
                    super::eprint(format_args!("{}", line(record)));
                    last = key;
                }
            })
            .await
    }
}

/// Runs an async command on a small runtime and maps its result to an exit code.
#[must_use]
pub fn run<F>(command: impl FnOnce() -> F) -> ExitCode
where
    F: Future<Output = Result<u8, JobsError>>,
{
    let runtime = match tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
    {
        Ok(runtime) => runtime,
        Err(error) => {
            super::eprint(format_args!(
                "rustkernel: cannot start the runtime: {error}"
            ));
            return ExitCode::from(3);
        }
    };
    match runtime.block_on(command()) {
        Ok(code) => ExitCode::from(code),
        Err(error) => {
            super::eprint(format_args!("rustkernel: {error}"));
            ExitCode::from(error.code())
        }
    }
}
