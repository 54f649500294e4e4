//! Command-line parsing (clap derive) and dispatch to the subcommands.
//!
//! Exit codes: 0 when the command did its work (for `telemetry decode`: the stream was read to
//! its end, bad frames included); 1 on an I/O error or an invalid configuration; 2 on a usage
//! error (clap's); 3 for `telemetry decode --strict` when a frame was bad or none was found.
//! `rustkernel health` and `rustkernel jobs` have their own codes (see [`commands::health`],
//! [`commands::jobs`]).

use std::fs::File;
use std::io::{self, BufReader};
use std::net::SocketAddr;
use std::path::PathBuf;
use std::process::ExitCode;
use std::time::Duration;

use clap::{Args, Parser, Subcommand};

use crate::commands;
use crate::commands::health::{DEFAULT_URL, HealthFormat};
use crate::commands::jobs::{self as jobs_cli, JobsFormat};
use crate::config::{ConfigFile, Preset};
use crate::telemetry::{self, Format, Framing};

/// rustkernel: resilience tooling for GPU and accelerator kernels.
#[derive(Debug, Parser)]
#[command(name = "rustkernel", version, about)]
pub struct Cli {
    /// What to do.
    #[command(subcommand)]
    pub command: Command,
}

/// The subcommands.
#[derive(Debug, Subcommand)]
pub enum Command {
    /// Run the kernel service (HTTP: health probes, metrics, kernel execution) until SIGTERM.
    Serve(ServeArgs),
    /// Ask a running service for its health; the exit code says how it is.
    Health(HealthArgs),
    /// Submit, follow, cancel and list long-running jobs on a running service.
    Jobs(JobsArgs),
    /// Start the service in-process and drive it through an error burst, a latency spike and a
    /// hang, with a live view and a summary (deterministic for a given seed).
    Demo {
        /// The seed of the workload and of every injected fault.
        #[arg(long, default_value_t = 42)]
        seed: u64,
    },
    /// Show or check the service's configuration.
    #[command(subcommand)]
    Config(ConfigCommand),
    /// Work with telemetry frames from firmware.
    #[command(subcommand)]
    Telemetry(TelemetryCommand),
}

/// Arguments of `rustkernel serve`.
#[derive(Debug, Args)]
pub struct ServeArgs {
    /// A TOML configuration file (see `rustkernel config show` for every field).
    #[arg(long)]
    pub config: Option<PathBuf>,
    /// The preset to run with when no file is given.
    #[arg(long, value_enum, default_value_t = Preset::Production)]
    pub preset: Preset,
    /// Listen on this address instead of the configured one (default 127.0.0.1:8080).
    #[arg(long)]
    pub address: Option<SocketAddr>,
    /// Ingest edge devices' telemetry from SOURCE (repeatable; added to the file's
    /// `[telemetry] sources`): a file followed as it grows, `-` for standard input, or
    /// `tcp://IP:PORT` to listen for devices; `?framing=lines|raw` forces the framing (default:
    /// detected).
    #[arg(long, value_name = "SOURCE")]
    pub telemetry: Vec<crate::telemetry::source::TelemetrySource>,
    /// Run jobs (`/v1/jobs`) with their files under DIR (the file's `[jobs] dir`).
    #[arg(long, value_name = "DIR")]
    pub jobs_dir: Option<PathBuf>,
}

/// Arguments of `rustkernel health`.
#[derive(Debug, Args)]
pub struct HealthArgs {
    /// The service's base URL.
    #[arg(long, default_value = DEFAULT_URL)]
    pub url: String,
    /// How to print: an aligned table, or the service's JSON.
    #[arg(long, value_enum, default_value_t = HealthFormat::Text)]
    pub format: HealthFormat,
    /// Only this component (`runtime`, `kernel/graph/pagerank`, ...).
    #[arg(long)]
    pub component: Option<String>,
    /// How long to wait for the answer, in seconds.
    #[arg(long, default_value_t = 5.0)]
    pub timeout: f64,
}

/// Arguments of `rustkernel jobs` (a bearer token comes from `RUSTKERNEL_TOKEN`).
#[derive(Debug, Args)]
pub struct JobsArgs {
    /// The service's base URL.
    #[arg(long, global = true, default_value = DEFAULT_URL)]
    pub url: String,
    /// How to print: lines, or the service's JSON.
    #[arg(long, global = true, value_enum, default_value_t = JobsFormat::Text)]
    pub format: JobsFormat,
    /// What to do.
    #[command(subcommand)]
    pub command: JobsCommand,
}

/// `rustkernel jobs ...`
#[derive(Debug, Subcommand)]
pub enum JobsCommand {
    /// Submit a job; prints it (its id first).
    Submit {
        /// The kernel.
        #[arg(long, default_value = crate::kernels::PAGERANK)]
        kernel: String,
        /// The kernel's input as JSON: a file, or `-` for standard input.
        #[arg(long)]
        input: PathBuf,
        /// How long the job may take from now, across restarts (`2h`).
        #[arg(long, value_parser = humantime::parse_duration)]
        deadline: Option<Duration>,
        /// Iterations between checkpoints (default: the service's).
        #[arg(long)]
        checkpoint_every: Option<u32>,
        /// Time between checkpoints (`30s`; default: the service's).
        #[arg(long, value_parser = humantime::parse_duration)]
        checkpoint_interval: Option<Duration>,
        /// Then follow it as `wait` does, and exit as `wait` does.
        #[arg(long)]
        wait: bool,
    },
    /// Show a job: state, progress, last checkpoint, resumes, result.
    Status {
        /// The job's id.
        id: String,
    },
    /// Follow a job until it ends (a progress bar on a terminal); exits 0 when it succeeded,
    /// 1 failed, 5 cancelled.
    Wait {
        /// The job's id.
        id: String,
        /// Give up after this long (exit 7).
        #[arg(long, value_parser = humantime::parse_duration)]
        timeout: Option<Duration>,
        /// How often to ask.
        #[arg(long, value_parser = humantime::parse_duration, default_value = "500ms")]
        poll: Duration,
    },
    /// Cancel a job.
    Cancel {
        /// The job's id.
        id: String,
    },
    /// List jobs, oldest first.
    List {
        /// The most to list.
        #[arg(long, default_value_t = 50)]
        limit: usize,
        /// List those after this id (the `next` of the page before).
        #[arg(long)]
        after: Option<String>,
    },
}

/// `rustkernel config ...`
#[derive(Debug, Subcommand)]
pub enum ConfigCommand {
    /// Print the effective configuration as TOML.
    Show {
        /// A file to apply over its preset.
        #[arg(long)]
        file: Option<PathBuf>,
        /// The preset to show when no file is given.
        #[arg(long, value_enum, default_value_t = Preset::Production)]
        preset: Preset,
    },
    /// Check a configuration file; exits 1 naming the field and the reason.
    Check {
        /// The file.
        file: PathBuf,
    },
}

/// `rustkernel telemetry ...`
#[derive(Debug, Subcommand)]
pub enum TelemetryCommand {
    /// Decode a stream of telemetry frames and print one line per frame.
    ///
    /// Bad frames are reported on stderr with their byte offset and skipped.
    Decode(DecodeArgs),
}

/// Arguments of `rustkernel telemetry decode`.
#[derive(Debug, Args)]
pub struct DecodeArgs {
    /// The stream to read: a file, or `-` for standard input.
    #[arg(default_value = "-")]
    pub input: PathBuf,
    /// How to print the frames.
    #[arg(long, value_enum, default_value_t = Format::Text)]
    pub format: Format,
    /// How frames are carried: `lines` (`@RK <hex>` in a text stream, as the firmware's
    /// semihosting output) or `raw` (binary COBS frames ended by zero bytes).
    #[arg(long, value_enum, default_value_t = Framing::Lines)]
    pub framing: Framing,
    /// Exit with 3 when any frame was bad or none was found.
    #[arg(long)]
    pub strict: bool,
}

/// Runs the parsed command and returns the process's exit code.
#[must_use]
pub fn run(cli: Cli) -> ExitCode {
    match cli.command {
        Command::Serve(args) => serve(&args),
        Command::Health(args) => {
            let timeout = if args.timeout.is_finite() && args.timeout > 0.0 {
                Duration::from_secs_f64(args.timeout.min(3600.0))
            } else {
                report(format_args!(
                    "rustkernel: --timeout must be a positive number of seconds"
                ));
                return ExitCode::from(2);
            };
            commands::health::run(&args.url, args.format, args.component.as_deref(), timeout)
        }
        Command::Jobs(args) => jobs(args),
        Command::Demo { seed } => commands::demo::run(seed),
        Command::Config(ConfigCommand::Show { file, preset }) => {
            commands::config::show(file.as_deref(), preset)
        }
        Command::Config(ConfigCommand::Check { file }) => commands::config::check(&file),
        Command::Telemetry(TelemetryCommand::Decode(args)) => decode(&args),
    }
}

fn serve(args: &ServeArgs) -> ExitCode {
    init_logging();
    // `--address` is applied to the file as written, before it is resolved: the address
    // decides whether tokens are required, so an auth mode the loopback default chose must
    // not carry over to another address.
    let file = match &args.config {
        Some(path) => ConfigFile::load(path),
        None => Ok(ConfigFile {
            preset: Some(args.preset),
            ..ConfigFile::default()
        }),
    };
    let config = file.and_then(|mut file| {
        if let Some(address) = args.address {
            file.server.address = Some(address);
        }
        if let Some(dir) = &args.jobs_dir {
            file.jobs.dir = Some(dir.clone());
        }
        if !args.telemetry.is_empty() {
            file.telemetry
                .sources
                .get_or_insert_with(Vec::new)
                .extend(args.telemetry.iter().cloned());
        }
        file.resolve(args.config.as_deref().and_then(std::path::Path::parent))
    });
    match config {
        Ok(config) => commands::serve::run(config),
        Err(error) => {
            report(format_args!("rustkernel: {error}"));
            ExitCode::from(1)
        }
    }
}

fn jobs(args: JobsArgs) -> ExitCode {
    let format = args.format;
    let url = args.url;
    jobs_cli::run(move || async move {
        let client = jobs_cli::Client::new(&url)?;
        match args.command {
            JobsCommand::Submit {
                kernel,
                input,
                deadline,
                checkpoint_every,
                checkpoint_interval,
                wait,
            } => {
                let spec = jobs_cli::spec(&jobs_cli::Submit {
                    kernel: &kernel,
                    input: &input,
                    deadline,
                    checkpoint_every,
                    checkpoint_interval,
                })?;
                let submitted = client.submit(&spec).await?;
                if !wait {
                    jobs_cli::print(&submitted, format);
                    return Ok(0);
                }
                let id = submitted.record.id.to_string();
                let done = jobs_cli::follow(&client, &id, Duration::from_millis(500), None).await?;
                jobs_cli::print(&done, format);
                Ok(jobs_cli::exit_code(&done.record))
            }
            JobsCommand::Status { id } => {
                jobs_cli::print(&client.status(&id).await?, format);
                Ok(0)
            }
            JobsCommand::Wait { id, timeout, poll } => {
                let done = jobs_cli::follow(&client, &id, poll, timeout).await?;
                jobs_cli::print(&done, format);
                Ok(jobs_cli::exit_code(&done.record))
            }
            JobsCommand::Cancel { id } => {
                jobs_cli::print(&client.cancel(&id).await?, format);
                Ok(0)
            }
            JobsCommand::List { limit, after } => {
                let page = client.list(after.as_deref(), limit).await?;
                let text = match format {
                    JobsFormat::Json => {
                        serde_json::to_string_pretty(&page).unwrap_or_default() + "\n"
                    }
                    JobsFormat::Text => {
                        let mut text: String = page
                            .jobs
                            .iter()
                            .map(|record| jobs_cli::line(record) + "\n")
                            .collect();
                        if let Some(next) = &page.next {
                            text.push_str(&format!("(more: --after {next})\n"));
                        }
                        text
                    }
                };
                use std::io::Write as _;
                let _ = io::stdout().write_all(text.as_bytes());
                Ok(0)
            }
        }
    })
}

/// Logs to stderr; `RUST_LOG` filters (default `info`).
fn init_logging() {
    let filter = tracing_subscriber::EnvFilter::try_from_default_env()
        .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new("info"));
    let _ = tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_ansi(std::io::IsTerminal::is_terminal(&std::io::stderr()))
        .with_writer(std::io::stderr)
        .try_init();
}

fn decode(args: &DecodeArgs) -> ExitCode {
    let stdout = io::stdout();
    let stderr = io::stderr();
    let mut out = stdout.lock();
    let mut err = stderr.lock();
    let result = if args.input.as_os_str() == "-" {
        let stdin = io::stdin();
        telemetry::decode_stream(stdin.lock(), args.framing, args.format, &mut out, &mut err)
    } else {
        match File::open(&args.input) {
            Ok(file) => telemetry::decode_stream(
                BufReader::new(file),
                args.framing,
                args.format,
                &mut out,
                &mut err,
            ),
            Err(error) => {
                report(format_args!(
                    "rustkernel: cannot open {}: {error}",
                    args.input.display()
                ));
                return ExitCode::from(1);
            }
        }
    };
    match result {
        Ok(stats) if args.strict && (stats.bad > 0 || stats.frames == 0) => {
            report(format_args!(
                "rustkernel: {} frames decoded, {} bad (--strict)",
                stats.frames, stats.bad
            ));
            ExitCode::from(3)
        }
        Ok(_) => ExitCode::SUCCESS,
        Err(error) => {
            report(format_args!("rustkernel: {error}"));
            ExitCode::from(1)
        }
    }
}

/// Writes one line to stderr; a closed or broken stderr is ignored rather than a panic.
fn report(message: std::fmt::Arguments<'_>) {
    use std::io::Write as _;
    let _ = writeln!(std::io::stderr(), "{message}");
}
