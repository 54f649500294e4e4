//! `rustkernel config show` and `rustkernel config check FILE`.

use std::io::Write;
use std::path::Path;
use std::process::ExitCode;

use crate::config::{Preset, ServiceConfig};

/// Prints the effective configuration (a file over its preset, or a preset) as TOML.
#[must_use]
pub fn show(file: Option<&Path>, preset: Preset) -> ExitCode {
    let config = match file {
        Some(path) => ServiceConfig::load(path),
        None => ServiceConfig::preset(preset),
    };
    let text = config.and_then(|config| config.to_file().to_toml());
    match text {
        Ok(text) => {
            let _ = std::io::stdout().write_all(text.as_bytes());
            ExitCode::SUCCESS
        }
        Err(error) => {
            super::eprint(format_args!("rustkernel: {error}"));
            ExitCode::from(1)
        }
    }
}

/// Checks a file; prints `ok` or the first error (naming the field) and exits non-zero.
#[must_use]
pub fn check(path: &Path) -> ExitCode {
    match ServiceConfig::load(path) {
        Ok(_) => {
            let _ = writeln!(std::io::stdout(), "{}: ok", path.display());
            ExitCode::SUCCESS
        }
        Err(error) => {
            super::eprint(format_args!("rustkernel: {error}"));
            ExitCode::from(1)
        }
    }
}
