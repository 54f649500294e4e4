//! What a job is on disk and on the wire: its id, what was asked ([`JobSpec`]), and its
//! record ([`JobRecord`]: state, progress, checkpoints, resumes), kept as `job.json` in the
//! job's directory and rewritten at every change of state and every checkpoint.

use std::fmt;
use std::hash::{BuildHasher, Hasher};
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use serde::{Deserialize, Serialize};

use super::lifecycle::JobState;
use crate::kernels::{CheckpointEvery, KernelResponse};

/// The longest job id.
pub const MAX_ID_LEN: usize = 64;

/// A job's id: lowercase hexadecimal digits and `-`, at most [`MAX_ID_LEN`] bytes, so it is a
/// safe file name and a safe URL segment. Made of the submit time and random bits, so ids
/// sort by submit time and replicas never make the same one.
#[derive(Clone, Debug, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
#[serde(try_from = "String", into = "String")]
pub struct JobId(String);

impl JobId {
    /// `text` as an id, if it is one.
    #[must_use]
    pub fn parse(text: &str) -> Option<Self> {
        let valid = !text.is_empty()
            && text.len() <= MAX_ID_LEN
            && text
                .bytes()
                .all(|byte| byte.is_ascii_digit() || (b'a'..=b'f').contains(&byte) || byte == b'-')
            && !text.starts_with('-');
        valid.then(|| Self(text.to_owned()))
    }

    /// A new id for a job submitted at `now`: milliseconds since the epoch, then 64 random
    /// bits (from the OS's seed of the standard library's hasher, a process counter and the
    /// process id).
    #[must_use]
    pub fn generate(now: SystemTime) -> Self {
        static COUNTER: AtomicU64 = AtomicU64::new(0);
        let mut hasher = std::collections::hash_map::RandomState::new().build_hasher();
        hasher.write_u64(COUNTER.fetch_add(1, Ordering::Relaxed));
        hasher.write_u32(std::process::id());
        hasher.write_u128(
            now.duration_since(UNIX_EPOCH)
                .unwrap_or_default()
                .as_nanos(),
        );
        Self(format!("{:012x}-{:016x}", unix_ms(now), hasher.finish()))
    }

    /// The id as text.
    #[must_use]
    pub fn as_str(&self) -> &str {
        &self.0
    }
}

impl fmt::Display for JobId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

impl TryFrom<String> for JobId {
    type Error = String;

    fn try_from(text: String) -> Result<Self, String> {
        Self::parse(&text).ok_or_else(|| format!("{text:?} is not a job id"))
    }
}

impl From<JobId> for String {
    fn from(id: JobId) -> Self {
        id.0
    }
}

/// Milliseconds since the Unix epoch (0 before it).
#[must_use]
pub fn unix_ms(time: SystemTime) -> u64 {
    u64::try_from(
        time.duration_since(UNIX_EPOCH)
            .unwrap_or_default()
            .as_millis(),
    )
    .unwrap_or(u64::MAX)
}

/// The time `ms` milliseconds after the Unix epoch.
#[must_use]
pub fn from_unix_ms(ms: u64) -> SystemTime {
    UNIX_EPOCH + Duration::from_millis(ms)
}

/// What a client asks for: `POST /v1/jobs`'s body.
///
/// ```json
/// {"kernel": "graph/pagerank",
///  "input": {"num_nodes": 3, "edges": [[0, 1], [1, 2], [2, 0]], "max_iterations": 500},
///  "deadline": "1h",
///  "checkpoint": {"iterations": 20, "interval": "30s"}}
/// ```
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct JobSpec {
    /// The kernel id; an iterative one (`graph/pagerank`).
    pub kernel: String,
    /// The kernel's input, as the execute route takes it.
    pub input: serde_json::Value,
    /// How long the job may take from its submit, across restarts; past it the job fails.
    #[serde(default, with = "humantime_serde::option")]
    pub deadline: Option<Duration>,
    /// When it checkpoints (default: `[jobs] checkpoint_every` and `checkpoint_interval`).
    #[serde(default)]
    pub checkpoint: Option<CheckpointEvery>,
}

/// How far a job got.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct Progress {
    /// Iterations done (live on the service that runs it; as of the last checkpoint elsewhere).
    pub iterations_done: u32,
    /// The most iterations it makes (it may converge sooner).
    pub max_iterations: u32,
}

/// The newest checkpoint written.
#[derive(Clone, Copy, Debug, PartialEq, Serialize, Deserialize)]
pub struct CheckpointMark {
    /// The iteration it holds (also its sequence in the store).
    pub iteration: u32,
    /// When it was written, in milliseconds since the Unix epoch.
    pub at_ms: u64,
    /// Its size on disk.
    pub bytes: u64,
    /// How long the write took (encode, write, `fsync`, rename), in milliseconds.
    pub write_ms: f64,
}

/// A checkpoint passed over on a resume, and why.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct SkippedNote {
    /// Its sequence (iteration).
    pub sequence: u64,
    /// Why (a bad CRC, a torn write, ...).
    pub reason: String,
}

/// A job's record: `job.json`, and the body of `GET /v1/jobs/{id}` (with the result).
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct JobRecord {
    /// The id.
    pub id: JobId,
    /// The kernel id.
    pub kernel: String,
    /// Where it is in its life.
    pub state: JobState,
    /// When it was submitted (ms since the Unix epoch).
    pub submitted_at_ms: u64,
    /// When it first started.
    #[serde(default)]
    pub started_at_ms: Option<u64>,
    /// When it reached a final state.
    #[serde(default)]
    pub finished_at_ms: Option<u64>,
    /// When it fails if not done.
    #[serde(default)]
    pub deadline_at_ms: Option<u64>,
    /// When it checkpoints.
    pub checkpoint_every: CheckpointEvery,
    /// How far it got.
    pub progress: Progress,
    /// The newest checkpoint written.
    #[serde(default)]
    pub last_checkpoint: Option<CheckpointMark>,
    /// Checkpoints written, over all its runs.
    #[serde(default)]
    pub checkpoints_written: u64,
    /// Checkpoint writes that failed in a row (0 after a good one; the job fails at 3).
    #[serde(default)]
    pub failed_checkpoint_writes: u32,
    /// Why the last failed checkpoint write failed.
    #[serde(default)]
    pub last_write_error: Option<String>,
    /// Times it was resumed from a checkpoint (after its service or kernel died).
    #[serde(default)]
    pub resumes: u32,
    /// The iteration of the checkpoint its last resume started from.
    #[serde(default)]
    pub resumed_from: Option<u32>,
    /// Newer checkpoints its last resume passed over (damaged ones).
    #[serde(default)]
    pub skipped_checkpoints: Vec<SkippedNote>,
    /// Which service runs or ran it (`host:pid`).
    #[serde(default)]
    pub runner: Option<String>,
    /// Where its last chunk of iterations ran: `cpu` (the service's threads, or the CPU
    /// failover of the GPU path) or `gpu` (the GPU worker).
    #[serde(default)]
    pub backend: Option<String>,
    /// Why it failed.
    #[serde(default)]
    pub error: Option<String>,
}

impl JobRecord {
    /// A queued job's record.
    #[must_use]
    pub fn queued(
        id: JobId,
        kernel: &str,
        submitted: SystemTime,
        deadline: Option<Duration>,
        checkpoint_every: CheckpointEvery,
        max_iterations: u32,
    ) -> Self {
        Self {
            id,
            kernel: kernel.to_owned(),
            state: JobState::Queued,
            submitted_at_ms: unix_ms(submitted),
            started_at_ms: None,
            finished_at_ms: None,
            deadline_at_ms: deadline
                .map(|deadline| unix_ms(submitted.checked_add(deadline).unwrap_or(submitted))),
            checkpoint_every,
            progress: Progress {
                iterations_done: 0,
                max_iterations,
            },
            last_checkpoint: None,
            checkpoints_written: 0,
            failed_checkpoint_writes: 0,
            last_write_error: None,
            resumes: 0,
            resumed_from: None,
            skipped_checkpoints: Vec::new(),
            runner: None,
            backend: None,
            error: None,
        }
    }

    /// Whether the deadline passed at `now`.
    #[must_use]
    pub fn deadline_passed(&self, now: SystemTime) -> bool {
        self.deadline_at_ms.is_some_and(|at| unix_ms(now) >= at)
    }
}

/// A job as `GET /v1/jobs/{id}` answers: its record, and its result once it succeeded.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct JobStatus {
    /// The record.
    #[serde(flatten)]
    pub record: JobRecord,
    /// The result, once it succeeded.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub result: Option<KernelResponse>,
}

/// Who this process is, for [`JobRecord::runner`]: `host:pid`.
#[must_use]
pub fn runner_name() -> String {
    let host = std::env::var("HOSTNAME")
        .ok()
        .filter(|name| !name.is_empty())
        .or_else(|| {
            std::fs::read_to_string("/etc/hostname")
                .ok()
                .map(|name| name.trim().to_owned())
        })
        .filter(|name| !name.is_empty())
        .unwrap_or_else(|| "localhost".to_owned());
    format!("{host}:{}", std::process::id())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ids_are_safe_sort_by_time_and_differ() {
        let early = JobId::generate(from_unix_ms(1_000));
        let late = JobId::generate(from_unix_ms(2_000));
        assert!(early < late);
        assert_ne!(JobId::generate(from_unix_ms(1_000)), early);
        assert_eq!(JobId::parse(early.as_str()), Some(early.clone()));
        for bad in ["", "../etc", "ABC", "a/b", "-a", &"a".repeat(65), "x y"] {
            assert_eq!(JobId::parse(bad), None, "{bad:?}");
        }
        let json = serde_json::to_string(&early).expect("writes");
        assert_eq!(serde_json::from_str::<JobId>(&json).expect("reads"), early);
        assert!(serde_json::from_str::<JobId>("\"../x\"").is_err());
    }

    #[test]
    fn a_record_round_trips_and_knows_its_deadline() {
        let submitted = from_unix_ms(10_000);
        let record = JobRecord::queued(
            JobId::generate(submitted),
            "graph/pagerank",
            submitted,
            Some(Duration::from_secs(5)),
            CheckpointEvery::iterations(3),
            100,
        );
        assert_eq!(record.deadline_at_ms, Some(15_000));
        assert!(!record.deadline_passed(from_unix_ms(14_999)));
        assert!(record.deadline_passed(from_unix_ms(15_000)));
        let json = serde_json::to_string(&record).expect("writes");
        assert_eq!(
            serde_json::from_str::<JobRecord>(&json).expect("reads"),
            record
        );
    }

    #[test]
    fn a_spec_reads_human_durations_and_refuses_unknown_fields() {
        let spec: JobSpec = serde_json::from_str(
            r#"{"kernel": "graph/pagerank", "input": {"num_nodes": 1, "edges": []},
                "deadline": "1h", "checkpoint": {"iterations": 5, "interval": "10s"}}"#,
        )
        .expect("reads");
        assert_eq!(spec.deadline, Some(Duration::from_secs(3600)));
        assert_eq!(
            spec.checkpoint,
            Some(CheckpointEvery::iterations(5).or_after(Duration::from_secs(10)))
        );
        assert!(
            serde_json::from_str::<JobSpec>(r#"{"kernel": "x", "input": 1, "nope": 1}"#).is_err()
        );
    }
}
