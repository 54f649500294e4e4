//! The service's commands: `serve`, `health`, `jobs`, `config`, `demo`.

pub mod config;
pub mod demo;
pub mod health;
pub mod jobs;
pub mod serve;

/// Writes one line to stderr; a closed or broken stderr is ignored rather than a panic.
pub(crate) fn eprint(message: std::fmt::Arguments<'_>) {
    use std::io::Write as _;
    let _ = writeln!(std::io::stderr(), "{message}");
}
