//! Command-line parsing (clap derive) and dispatch to the subcommands.
//!
//! Exit codes: 0 when the command did its work (for `telemetry decode`: the stream was read to
//! its end, bad frames included); 1 on an I/O error; 2 on a usage error (clap's); 3 for
//! `telemetry decode --strict` when a frame was bad or none was found.

use std::fs::File;
use std::io::{self, BufReader};
use std::path::PathBuf;
use std::process::ExitCode;

use clap::{Args, Parser, Subcommand};

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
    /// Work with telemetry frames from firmware.
    #[command(subcommand)]
    Telemetry(TelemetryCommand),
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
        Command::Telemetry(TelemetryCommand::Decode(args)) => decode(&args),
    }
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
