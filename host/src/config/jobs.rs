//! `[jobs]`: long-running kernels as jobs that checkpoint under a directory (see
//! [`crate::jobs`]). Off unless `dir` is set; then every other field has a default.
//!
//! ```toml
//! [jobs]
//! dir = "/var/lib/rustkernel/jobs"  # jobs and their checkpoints; relative: the config file's
//! max_running = 2                   # jobs this service runs at once
//! max_queued = 64                   # queued jobs in the directory; more get 429
//! checkpoint_every = 100            # iterations between checkpoints (0: by time only)
//! checkpoint_interval = "30s"       # and at least this often
//! result_retention = "24h"          # a finished job is removed this long after it ended
//! scan_interval = "1s"              # how often the directory is read for jobs to run
//! ```

use std::num::NonZeroU32;
use std::path::{Path, PathBuf};
use std::time::Duration;

use serde::{Deserialize, Serialize};

use super::{ConfigError, invalid};
use crate::kernels::CheckpointEvery;

/// The most jobs one service runs at once.
pub const MAX_RUNNING_LIMIT: usize = 1024;
/// The largest queue a directory may hold.
pub const MAX_QUEUED_LIMIT: usize = 100_000;

/// `[jobs]` as written.
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct JobsFile {
    /// The jobs directory (unset: the jobs routes are off). Replicas that share it share the
    /// jobs: any answers for any, the checkpoint store's lock decides which runs one.
    pub dir: Option<PathBuf>,
    /// Jobs this service runs at once (default 2, at most 1024).
    pub max_running: Option<usize>,
    /// Jobs waiting in the directory beyond which a submit gets 429 (default 64).
    pub max_queued: Option<usize>,
    /// Iterations between checkpoints when a job does not say (default 100; 0: by time only).
    pub checkpoint_every: Option<u32>,
    /// Time between checkpoints when a job does not say (default 30 s).
    #[serde(default, with = "humantime_serde::option")]
    pub checkpoint_interval: Option<Duration>,
    /// How long a finished job (its record, result and checkpoints) is kept (default 24 h).
    #[serde(default, with = "humantime_serde::option")]
    pub result_retention: Option<Duration>,
    /// How often the directory is read for queued jobs and jobs whose service died (default 1 s).
    #[serde(default, with = "humantime_serde::option")]
    pub scan_interval: Option<Duration>,
}

/// The validated `[jobs]` section.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct JobsConfig {
    /// The jobs directory.
    pub dir: PathBuf,
    /// Jobs this service runs at once.
    pub max_running: usize,
    /// Queued jobs beyond which a submit gets 429.
    pub max_queued: usize,
    /// A job's checkpoint interval when it gives none.
    pub checkpoint_every: CheckpointEvery,
    /// How long a finished job is kept.
    pub result_retention: Duration,
    /// How often the directory is read.
    pub scan_interval: Duration,
}

impl JobsConfig {
    /// The defaults with `dir`.
    #[must_use]
    pub fn new(dir: impl Into<PathBuf>) -> Self {
        Self {
            dir: dir.into(),
            max_running: 2,
            max_queued: 64,
            checkpoint_every: CheckpointEvery::iterations(100).or_after(Duration::from_secs(30)),
            result_retention: Duration::from_secs(24 * 3600),
            scan_interval: Duration::from_secs(1),
        }
    }

    /// The section as a file, every field set (for `config show`).
    #[must_use]
    pub fn to_file(&self) -> JobsFile {
        JobsFile {
            dir: Some(self.dir.clone()),
            max_running: Some(self.max_running),
            max_queued: Some(self.max_queued),
            checkpoint_every: Some(self.checkpoint_every.iterations.map_or(0, NonZeroU32::get)),
            checkpoint_interval: self.checkpoint_every.interval,
            result_retention: Some(self.result_retention),
            scan_interval: Some(self.scan_interval),
        }
    }
}

/// Checks a job's checkpoint interval: some rule, and a time that is not zero.
///
/// # Errors
/// The reason, for the caller to name its field.
pub fn check_checkpoint_every(every: &CheckpointEvery) -> Result<(), String> {
    match (every.iterations, every.interval) {
        (None, None) => Err("set a number of iterations or an interval (or both)".to_owned()),
        (_, Some(interval)) if interval.is_zero() => {
            Err("the interval must be greater than zero".to_owned())
        }
        _ => Ok(()),
    }
}

/// Resolves `[jobs]`; `base` is the config file's directory (a relative `dir` is read from it).
pub(crate) fn resolve(
    file: &JobsFile,
    base: Option<&Path>,
) -> Result<Option<JobsConfig>, ConfigError> {
    let Some(dir) = &file.dir else {
        let set = file != &JobsFile::default();
        return if set {
            Err(invalid(
                "jobs.dir",
                "must be set to use the other [jobs] fields",
            ))
        } else {
            Ok(None)
        };
    };
    if dir.as_os_str().is_empty() {
        return Err(invalid("jobs.dir", "must not be empty"));
    }
    let dir = match base {
        Some(base) if dir.is_relative() => base.join(dir),
        _ => dir.clone(),
    };
    let mut config = JobsConfig::new(dir);
    if let Some(max_running) = file.max_running {
        if max_running == 0 || max_running > MAX_RUNNING_LIMIT {
            return Err(invalid(
                "jobs.max_running",
                format!("must be from 1 to {MAX_RUNNING_LIMIT}, not {max_running}"),
            ));
        }
        config.max_running = max_running;
    }
    if let Some(max_queued) = file.max_queued {
        if max_queued > MAX_QUEUED_LIMIT {
            return Err(invalid(
                "jobs.max_queued",
                format!("must be at most {MAX_QUEUED_LIMIT}, not {max_queued}"),
            ));
        }
        config.max_queued = max_queued;
    }
    if let Some(every) = file.checkpoint_every {
        config.checkpoint_every.iterations = NonZeroU32::new(every);
    }
    if let Some(interval) = file.checkpoint_interval {
        config.checkpoint_every.interval = Some(interval);
    }
    check_checkpoint_every(&config.checkpoint_every).map_err(|reason| {
        let field = if file.checkpoint_interval == Some(Duration::ZERO) {
            "jobs.checkpoint_interval"
        } else {
            "jobs.checkpoint_every"
        };
        invalid(field, reason)
    })?;
    if let Some(retention) = file.result_retention {
        if retention.is_zero() {
            return Err(invalid(
                "jobs.result_retention",
                "must be greater than zero",
            ));
        }
        config.result_retention = retention;
    }
    if let Some(scan) = file.scan_interval {
        if scan.is_zero() {
            return Err(invalid("jobs.scan_interval", "must be greater than zero"));
        }
        config.scan_interval = scan;
    }
    Ok(Some(config))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn parse(text: &str) -> Result<Option<JobsConfig>, ConfigError> {
        let file: JobsFile = toml::from_str(text).expect("parses");
        resolve(&file, Some(Path::new("/etc/rustkernel")))
    }

    #[test]
    fn off_without_a_dir_and_defaults_with_one() {
        assert_eq!(parse("").expect("valid"), None);
        let config = parse("dir = \"jobs\"").expect("valid").expect("on");
        assert_eq!(config, JobsConfig::new("/etc/rustkernel/jobs"));
        assert_eq!(config.checkpoint_every.iterations, NonZeroU32::new(100));
        let again = resolve(&config.to_file(), None).expect("valid");
        assert_eq!(again, Some(config));
    }

    #[test]
    fn fields_apply_and_bad_values_name_their_field() {
        let config = parse(
            "dir = \"/d\"\nmax_running = 3\nmax_queued = 0\ncheckpoint_every = 0\ncheckpoint_interval = \"5s\"\nresult_retention = \"1h\"\nscan_interval = \"250ms\"",
        )
        .expect("valid")
        .expect("on");
        assert_eq!(config.max_running, 3);
        assert_eq!(config.max_queued, 0);
        assert_eq!(
            config.checkpoint_every,
            CheckpointEvery {
                iterations: None,
                interval: Some(Duration::from_secs(5)),
            }
        );
        assert_eq!(config.result_retention, Duration::from_secs(3600));
        assert_eq!(config.scan_interval, Duration::from_millis(250));
        for (text, field) in [
            ("max_running = 1", "jobs.dir"),
            ("dir = \"\"", "jobs.dir"),
            ("dir = \"/d\"\nmax_running = 0", "jobs.max_running"),
            ("dir = \"/d\"\nmax_running = 5000", "jobs.max_running"),
            ("dir = \"/d\"\nmax_queued = 1000000", "jobs.max_queued"),
            (
                "dir = \"/d\"\ncheckpoint_interval = \"0s\"",
                "jobs.checkpoint_interval",
            ),
            (
                "dir = \"/d\"\nresult_retention = \"0s\"",
                "jobs.result_retention",
            ),
            ("dir = \"/d\"\nscan_interval = \"0s\"", "jobs.scan_interval"),
        ] {
            let error = parse(text).expect_err(text).to_string();
            assert!(error.contains(field), "{text}: {error}");
        }
    }
}
