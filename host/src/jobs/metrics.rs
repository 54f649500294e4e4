//! The job runner's metric families, registered into the service's registry at start-up.
//!
//! | Metric | Type | Labels | What |
//! |---|---|---|---|
//! | `rustkernel_jobs` | gauge | `state` | jobs in the directory by state, as of the last scan (every `[jobs] scan_interval`) |
//! | `rustkernel_jobs_submitted_total` | counter | | jobs accepted by this service |
//! | `rustkernel_job_checkpoints_written_total` | counter | | checkpoints written by this service |
//! | `rustkernel_job_checkpoint_write_failures_total` | counter | | checkpoint writes that failed (the job kept its previous one) |
//! | `rustkernel_job_checkpoint_write_seconds` | histogram | | how long a checkpoint write took (encode, write, `fsync`, rename, prune) |
//! | `rustkernel_job_resumes_total` | counter | | jobs this service resumed from a checkpoint |
//! | `rustkernel_jobs_disk_bytes` | gauge | | bytes under `[jobs] dir`, as of the last scan |

use std::time::Duration;

use prometheus_client::encoding::EncodeLabelSet;
use prometheus_client::metrics::counter::Counter;
use prometheus_client::metrics::family::Family;
use prometheus_client::metrics::gauge::Gauge;
use prometheus_client::metrics::histogram::Histogram;
use prometheus_client::registry::Registry;

use super::lifecycle::{JOB_STATES, JobState};

/// The state label.
#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct StateLabels {
    /// `queued`, `running`, `succeeded`, `failed` or `cancelled`.
    pub state: &'static str,
}

/// The job runner's families; clones share them.
#[derive(Clone, Debug)]
pub struct JobMetrics {
    /// Jobs by state.
    pub jobs: Family<StateLabels, Gauge>,
    /// Jobs accepted.
    pub submitted: Counter,
    /// Checkpoints written.
    pub checkpoints_written: Counter,
    /// Checkpoint writes that failed.
    pub checkpoint_write_failures: Counter,
    /// Checkpoint write latency.
    pub checkpoint_write_seconds: Histogram,
    /// Resumes from a checkpoint.
    pub resumes: Counter,
    /// Bytes on disk.
    pub disk_bytes: Gauge,
}

impl Default for JobMetrics {
    fn default() -> Self {
        let metrics = Self {
            jobs: Family::default(),
            submitted: Counter::default(),
            checkpoints_written: Counter::default(),
            checkpoint_write_failures: Counter::default(),
            // 1 ms to about 33 s.
            checkpoint_write_seconds: Histogram::new(
                prometheus_client::metrics::histogram::exponential_buckets(0.001, 2.0, 16),
            ),
            resumes: Counter::default(),
            disk_bytes: Gauge::default(),
        };
        for state in JOB_STATES {
            let _ = metrics.jobs.get_or_create(&StateLabels {
                state: state.as_str(),
            });
        }
        metrics
    }
}

impl JobMetrics {
    /// Registers every family under `registry` (give it the `rustkernel` sub-registry).
    pub fn register(&self, registry: &mut Registry) {
        registry.register(
            "jobs",
            "Jobs in the jobs directory by state, as of the last scan",
            self.jobs.clone(),
        );
        registry.register(
            "jobs_submitted",
            "Jobs accepted by this service",
            self.submitted.clone(),
        );
        registry.register(
            "job_checkpoints_written",
            "Job checkpoints written by this service",
            self.checkpoints_written.clone(),
        );
        registry.register(
            "job_checkpoint_write_failures",
            "Job checkpoint writes that failed (the job kept its previous checkpoint)",
            self.checkpoint_write_failures.clone(),
        );
        registry.register(
            "job_checkpoint_write_seconds",
            "How long a job checkpoint write took",
            self.checkpoint_write_seconds.clone(),
        );
        registry.register(
            "job_resumes",
            "Jobs this service resumed from a checkpoint",
            self.resumes.clone(),
        );
        registry.register(
            "jobs_disk_bytes",
            "Bytes under the jobs directory, as of the last scan",
            self.disk_bytes.clone(),
        );
    }

    /// Records a checkpoint write.
    pub fn observe_write(&self, took: Duration, ok: bool) {
        self.checkpoint_write_seconds.observe(took.as_secs_f64());
        if ok {
            self.checkpoints_written.inc();
        } else {
            self.checkpoint_write_failures.inc();
        }
    }

    /// Sets the by-state gauge from `counts` (one per [`JOB_STATES`] entry).
    pub fn set_counts(&self, counts: &[(JobState, usize)]) {
        for state in JOB_STATES {
            let count = counts
                .iter()
                .find(|(seen, _)| *seen == state)
                .map_or(0, |(_, count)| *count);
            self.jobs
                .get_or_create(&StateLabels {
                    state: state.as_str(),
                })
                .set(i64::try_from(count).unwrap_or(i64::MAX));
        }
    }
}
