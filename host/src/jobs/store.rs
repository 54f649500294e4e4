//! Where jobs live: the [`JobStore`] the runner holds as a trait object (a directory in
//! production, [`DirJobStore`](super::DirJobStore); in tests, a directory behind a disk
//! that fails on cue), and the [`JobCheckpoints`] of one claimed job.
//!
//! Claiming a job ([`JobStore::claim`]) takes the checkpoint store's lock, so that of the
//! services sharing a directory one runs a job at a time; the claim lasts as long as the
//! returned [`JobCheckpoints`] does.

use std::fmt;
use std::io;
use std::sync::Arc;

use rustkernel_tokio::checkpoint_store::{CheckpointStoreError, LoadedCheckpoint};

use super::record::{JobId, JobRecord};
use crate::kernels::{BoxFuture, KernelRequest, KernelResponse};

/// Why the job store failed.
#[derive(Debug)]
pub enum JobStoreError {
    /// A file could not be read or written.
    Io {
        /// What the store was doing (`write job.json of 0190…`).
        what: String,
        /// Why.
        source: io::Error,
    },
    /// A file is there but is not what it should be.
    Corrupt {
        /// Which file.
        what: String,
        /// Why.
        message: String,
    },
}

impl JobStoreError {
    /// An I/O error while doing `what`.
    pub fn io(what: impl Into<String>, source: io::Error) -> Self {
        JobStoreError::Io {
            what: what.into(),
            source,
        }
    }

    /// Whether it is a missing file.
    #[must_use]
    pub fn is_not_found(&self) -> bool {
        matches!(self, JobStoreError::Io { source, .. } if source.kind() == io::ErrorKind::NotFound)
    }
}

impl fmt::Display for JobStoreError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            JobStoreError::Io { what, source } => write!(f, "cannot {what}: {source}"),
            JobStoreError::Corrupt { what, message } => write!(f, "{what} is damaged: {message}"),
        }
    }
}

impl std::error::Error for JobStoreError {
    fn source(&self) -> Option<&(dyn std::error::Error + 'static)> {
        match self {
            JobStoreError::Io { source, .. } => Some(source),
            JobStoreError::Corrupt { .. } => None,
        }
    }
}

/// Why a job could not be claimed.
#[derive(Debug)]
pub enum ClaimError {
    /// Another service holds its lock: it runs the job.
    Locked,
    /// The job is gone (removed after its retention).
    Missing,
    /// The checkpoint store could not be opened.
    Store(CheckpointStoreError),
}

impl fmt::Display for ClaimError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            ClaimError::Locked => f.write_str("another service runs the job"),
            ClaimError::Missing => f.write_str("the job is gone"),
            ClaimError::Store(error) => write!(f, "cannot open the job's checkpoints: {error}"),
        }
    }
}

impl std::error::Error for ClaimError {}

/// A store's answer.
pub type StoreFuture<'a, T> = BoxFuture<'a, Result<T, JobStoreError>>;

/// Jobs, their inputs, results and checkpoints. Object safe: the runner holds an
/// `Arc<dyn JobStore>`.
pub trait JobStore: Send + Sync + fmt::Debug + 'static {
    /// Writes a new job: its input, then its record (a job is visible once its record is).
    fn create<'a>(&'a self, record: &'a JobRecord, input: &'a KernelRequest)
    -> StoreFuture<'a, ()>;

    /// Replaces a job's record, atomically.
    fn write_record<'a>(&'a self, record: &'a JobRecord) -> StoreFuture<'a, ()>;

    /// A job's record; `None` when there is no such job.
    fn record<'a>(&'a self, id: &'a JobId) -> StoreFuture<'a, Option<JobRecord>>;

    /// Every job's record, by id (so by submit time). Damaged records are skipped and logged.
    fn records(&self) -> StoreFuture<'_, Vec<JobRecord>>;

    /// A job's input.
    fn input<'a>(&'a self, id: &'a JobId) -> StoreFuture<'a, KernelRequest>;

    /// Writes a job's result, atomically.
    fn write_result<'a>(&'a self, id: &'a JobId, result: &'a KernelResponse)
    -> StoreFuture<'a, ()>;

    /// A job's result, once written.
    fn result<'a>(&'a self, id: &'a JobId) -> StoreFuture<'a, Option<KernelResponse>>;

    /// Marks a job for cancelling, for the service that runs it to see.
    fn request_cancel<'a>(&'a self, id: &'a JobId) -> StoreFuture<'a, ()>;

    /// Whether a cancel was asked for.
    fn cancel_requested<'a>(&'a self, id: &'a JobId) -> StoreFuture<'a, bool>;

    /// Removes a job and everything of it.
    fn remove<'a>(&'a self, id: &'a JobId) -> StoreFuture<'a, ()>;

    /// The bytes the jobs take on disk.
    fn bytes_on_disk(&self) -> StoreFuture<'_, u64>;

    /// Claims a job to run it: its checkpoints, locked against other services until the
    /// returned value (and its clones) is dropped.
    fn claim<'a>(
        &'a self,
        id: &'a JobId,
    ) -> BoxFuture<'a, Result<Arc<dyn JobCheckpoints>, ClaimError>>;
}

/// The checkpoints of one claimed job: frames of the core's codec, as bytes the caller
/// encoded. Restore falls back past damaged ones to the newest good one.
pub trait JobCheckpoints: Send + Sync + fmt::Debug {
    /// Saves `payload` as checkpoint `sequence`; returns its size on disk. When it fails, the
    /// checkpoints saved before are untouched.
    fn save(
        &self,
        sequence: u64,
        payload: Vec<u8>,
    ) -> BoxFuture<'_, Result<u64, CheckpointStoreError>>;

    /// The newest good checkpoint, and the newer ones that were not good.
    fn load_latest(
        &self,
    ) -> BoxFuture<'_, Result<Option<LoadedCheckpoint<Vec<u8>>>, CheckpointStoreError>>;
}
