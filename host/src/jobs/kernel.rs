//! A job's run as a kernel of the tokio [`Supervisor`](rustkernel_tokio::resilience::Supervisor):
//! [`JobKernel`] iterates a [`PageRankRun`] on a blocking thread between checkpoints, writes
//! each checkpoint through its claimed [`JobCheckpoints`], and is the chapter's
//! [`CheckpointableKernel`], so the supervisor restores the newest good checkpoint before its
//! first run (a service that died resumes there) and after each restart (a kernel that
//! panicked resumes there). [`SupervisorCheckpoints`] is the claimed checkpoints as the
//! adapter's [`CheckpointStore`].
//!
//! `run` returns `Ok` whenever the job reached a verdict ([`Outcome`]): finished, cancelled,
//! past its deadline, failed on three checkpoint writes in a row, or stopped for a shutdown.
//! It returns an error only for what a restart may mend (a lost blocking task), which the
//! supervisor's policy then handles.

use std::fmt;
use std::future::Future;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex, PoisonError};
use std::time::{Duration, Instant, SystemTime};

use rustkernel_core::checkpoint::CheckpointError;
use rustkernel_core::error::ErrorKind;
use rustkernel_core::traits::{self, CheckpointableKernel};
use rustkernel_tokio::checkpoint_store::{CheckpointStoreError, LoadedCheckpoint};
use rustkernel_tokio::resilience::{CheckpointStore, SupervisedKernel};
use serde::Serialize;
use serde::de::DeserializeOwned;
use tokio::sync::watch;

use super::metrics::JobMetrics;
use super::record::{CheckpointMark, JobRecord, SkippedNote, unix_ms};
use super::store::{JobCheckpoints, JobStore};
use crate::gpu::{GpuError, GpuExecutor};
use crate::kernels::{
    Advanced, CheckpointEvery, KernelRequest, KernelResponse, PageRankCheckpoint, PageRankInput,
    PageRankOutput, PageRankRun, PageRankSteps,
};

/// Checkpoint writes in a row that may fail before the job does.
pub const MAX_FAILED_WRITES: u32 = 3;

/// A job this service runs: its record as it changes, and the flags that stop it.
#[derive(Debug)]
pub struct LiveJob {
    record: Mutex<JobRecord>,
    cancel: AtomicBool,
    stop: AtomicBool,
    changed: watch::Sender<u64>,
}

impl LiveJob {
    /// A job starting from `record`.
    #[must_use]
    pub fn new(record: JobRecord) -> Self {
        Self {
            record: Mutex::new(record),
            cancel: AtomicBool::new(false),
            stop: AtomicBool::new(false),
            changed: watch::Sender::new(0),
        }
    }

    /// The record now.
    #[must_use]
    pub fn record(&self) -> JobRecord {
        self.lock().clone()
    }

    /// Changes the record and tells the watchers; returns the record after the change.
    pub fn update(&self, change: impl FnOnce(&mut JobRecord)) -> JobRecord {
        let record = {
            let mut record = self.lock();
            change(&mut record);
            record.clone()
        };
        self.changed
            .send_modify(|version| *version = version.wrapping_add(1));
        record
    }

    /// A receiver that sees every change.
    #[must_use]
    pub fn subscribe(&self) -> watch::Receiver<u64> {
        self.changed.subscribe()
    }

    /// Asks the job to stop as cancelled.
    pub fn cancel(&self) {
        self.cancel.store(true, Ordering::SeqCst);
    }

    /// Asks the job to take a checkpoint and stop, to be resumed by the next service.
    pub fn stop(&self) {
        self.stop.store(true, Ordering::SeqCst);
    }

    fn interrupted(&self) -> bool {
        self.cancel.load(Ordering::SeqCst) || self.stop.load(Ordering::SeqCst)
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, JobRecord> {
        self.record.lock().unwrap_or_else(PoisonError::into_inner)
    }
}

/// What a job's run came to.
#[derive(Clone, Debug, PartialEq)]
pub enum Outcome {
    /// The kernel finished.
    Succeeded(PageRankOutput),
    /// The job gave up, for this reason.
    Failed(String),
    /// Cancelled on request.
    Cancelled,
    /// Stopped for a shutdown after a last checkpoint; it stays running, for the next
    /// service to resume.
    Stopped,
}

/// What the supervisor restarts for: the job's blocking task was lost (it panicked).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct JobFault(pub String);

impl fmt::Display for JobFault {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

impl std::error::Error for JobFault {}

/// A job's PageRank under the supervisor.
#[derive(Debug)]
pub struct JobKernel {
    input: Arc<PageRankInput>,
    run: Option<PageRankRun>,
    live: Arc<LiveJob>,
    store: Arc<dyn JobStore>,
    checkpoints: Arc<dyn JobCheckpoints>,
    metrics: JobMetrics,
    every: CheckpointEvery,
    outcome: Option<Outcome>,
    gpu: Option<Arc<GpuExecutor>>,
}

/// Iterations in one chunk sent to the GPU worker when the job checkpoints by time only.
pub const GPU_CHUNK_ITERATIONS: u32 = 100;

/// Where a chunk left the run: the run, where it stopped, and the checkpoint's bytes when one
/// is due.
type Chunk = (
    PageRankRun,
    Advanced,
    Option<Result<Vec<u8>, postcard::Error>>,
);

impl JobKernel {
    /// The kernel of the job `live` over `input`, at iteration 0 until restored.
    ///
    /// # Errors
    /// The input's validation error.
    pub fn new(
        input: Arc<PageRankInput>,
        live: Arc<LiveJob>,
        store: Arc<dyn JobStore>,
        checkpoints: Arc<dyn JobCheckpoints>,
        metrics: JobMetrics,
    ) -> Result<Self, crate::kernels::KernelError> {
        let every = live.record().checkpoint_every;
        Ok(Self {
            run: Some(PageRankRun::new(input.clone())?),
            input,
            live,
            store,
            checkpoints,
            metrics,
            every,
            outcome: None,
            gpu: None,
        })
    }

    /// The same kernel running its chunks through the GPU path (`None`: on the CPU here).
    #[must_use]
    pub fn on_gpu(self, gpu: Option<Arc<GpuExecutor>>) -> Self {
        Self { gpu, ..self }
    }

    /// Iterates on a blocking thread until the run is done, a checkpoint is due (by count or
    /// time) or the job is interrupted.
    async fn chunk_on_cpu(&self, mut run: PageRankRun) -> Result<Chunk, JobFault> {
        let live = self.live.clone();
        let every = self.every;
        tokio::task::spawn_blocking(move || {
            let started = Instant::now();
            let advanced = run.advance(&every, &mut || started.elapsed(), &|| live.interrupted());
            let payload =
                (advanced == Advanced::CheckpointDue).then(|| postcard::to_allocvec(&run.state()));
            (run, advanced, payload)
        })
        .await
        .map_err(|error| JobFault(format!("the job's iterations failed: {error}")))
    }

    /// Sends the next chunk (the checkpoint and N iterations) to the GPU path; its answer is
    /// the next checkpoint. A worker lost mid-chunk is the executor's to handle: it runs the
    /// chunk on the CPU from the same checkpoint.
    async fn chunk_on_gpu(
        &self,
        gpu: &GpuExecutor,
        mut run: PageRankRun,
    ) -> Result<Chunk, JobFault> {
        let iterations = self
            .every
            .iterations
            .map_or(GPU_CHUNK_ITERATIONS, std::num::NonZeroU32::get);
        let steps = PageRankSteps {
            input: (*self.input).clone(),
            from: run.state(),
            iterations,
        };
        // Within the job's deadline (a day when it has none); a chunk cut by it is tried
        // again, or the job fails on its deadline at the next verdict.
        let within = self
            .live
            .record()
            .deadline_at_ms
            .map_or(Duration::from_secs(86_400), |at| {
                Duration::from_millis(at.saturating_sub(unix_ms(SystemTime::now())).max(1))
            });
        match gpu
            .execute(KernelRequest::PageRankSteps(steps), within)
            .await
        {
            Ok((KernelResponse::PageRankState(state), backend)) => {
                run.apply(state)
                    .map_err(|error| JobFault(format!("the worker's checkpoint: {error}")))?;
                self.live
                    .update(|record| record.backend = Some(backend.as_str().to_owned()));
                let advanced = if run.is_done() {
                    Advanced::Done
                } else {
                    Advanced::CheckpointDue
                };
                let payload = (advanced == Advanced::CheckpointDue)
                    .then(|| postcard::to_allocvec(&run.state()));
                Ok((run, advanced, payload))
            }
            Ok((other, _)) => Err(JobFault(format!(
                "the GPU path answered a chunk with a {} response",
                other.kernel_id()
            ))),
            // Back to the verdict: the deadline fails the job, or the chunk goes again.
            Err(GpuError::DeadlineExceeded) => Ok((run, Advanced::Cancelled, None)),
            Err(error) => Err(JobFault(format!("the GPU path failed a chunk: {error}"))),
        }
    }

    /// What the run came to; `None` until `run` returned `Ok`.
    #[must_use]
    pub fn outcome(&self) -> Option<&Outcome> {
        self.outcome.as_ref()
    }

    /// A verdict reached between chunks: cancelled (by flag or by the directory's marker),
    /// past the deadline, or stopped for a shutdown (after a last checkpoint).
    async fn verdict(&mut self) -> Option<Outcome> {
        let record = self.live.record();
        if self.live.cancel.load(Ordering::SeqCst)
            || self
                .store
                .cancel_requested(&record.id)
                .await
                .unwrap_or(false)
        {
            return Some(Outcome::Cancelled);
        }
        if record.deadline_passed(SystemTime::now()) {
            return Some(Outcome::Failed("the job's deadline passed".to_owned()));
        }
        if self.live.stop.load(Ordering::SeqCst) {
            let saved = record.last_checkpoint.map(|mark| mark.iteration);
            if let Some(run) = &self.run
                && saved != Some(run.iteration())
                && run.iteration() > 0
            {
                let iteration = run.iteration();
                if let Ok(payload) = postcard::to_allocvec(&run.state()) {
                    let _ = self.write_checkpoint(iteration, payload).await;
                }
            }
            return Some(Outcome::Stopped);
        }
        None
    }

    /// Writes checkpoint `iteration`; after [`MAX_FAILED_WRITES`] failures in a row, the
    /// reason to fail the job.
    async fn write_checkpoint(&self, iteration: u32, payload: Vec<u8>) -> Result<(), String> {
        let started = Instant::now();
        let saved = self.checkpoints.save(u64::from(iteration), payload).await;
        let took = started.elapsed();
        self.metrics.observe_write(took, saved.is_ok());
        let record = self.live.update(|record| match &saved {
            Ok(bytes) => {
                record.last_checkpoint = Some(CheckpointMark {
                    iteration,
                    at_ms: unix_ms(SystemTime::now()),
                    bytes: *bytes,
                    write_ms: took.as_secs_f64() * 1000.0,
                });
                record.checkpoints_written = record.checkpoints_written.saturating_add(1);
                record.failed_checkpoint_writes = 0;
                record.last_write_error = None;
            }
            Err(error) => {
                record.failed_checkpoint_writes = record.failed_checkpoint_writes.saturating_add(1);
                record.last_write_error =
                    Some(format!("checkpoint of iteration {iteration}: {error}"));
            }
        });
        if let Err(error) = self.store.write_record(&record).await {
            tracing::warn!(job = %record.id, %error, "cannot write the job's record");
        }
        match saved {
            Ok(_) => Ok(()),
            Err(error) => {
                tracing::warn!(job = %record.id, iteration, %error, failed_in_a_row = record.failed_checkpoint_writes, "a checkpoint write failed; the job keeps its previous checkpoint");
                if record.failed_checkpoint_writes >= MAX_FAILED_WRITES {
                    Err(format!(
                        "{MAX_FAILED_WRITES} checkpoint writes in a row failed, the last: {error}"
                    ))
                } else {
                    Ok(())
                }
            }
        }
    }
}

impl SupervisedKernel for JobKernel {
    type Error = JobFault;

    async fn run(&mut self) -> Result<(), JobFault> {
        loop {
            if let Some(outcome) = self.verdict().await {
                self.outcome = Some(outcome);
                return Ok(());
            }
            let Some(run) = self.run.take() else {
                return Err(JobFault("the job's state was lost".to_owned()));
            };
            let (run, advanced, payload) = match self.gpu.clone() {
                Some(gpu) => self.chunk_on_gpu(&gpu, run).await?,
                None => {
                    self.live
                        .update(|record| record.backend = Some("cpu".to_owned()));
                    self.chunk_on_cpu(run).await?
                }
            };
            let iteration = run.iteration();
            self.live
                .update(|record| record.progress.iterations_done = iteration);
            match advanced {
                Advanced::Done => {
                    self.outcome = Some(Outcome::Succeeded(run.output()));
                    self.run = Some(run);
                    return Ok(());
                }
                Advanced::CheckpointDue => {
                    self.run = Some(run);
                    let written = match payload {
                        Some(Ok(payload)) => self.write_checkpoint(iteration, payload).await,
                        _ => Err("the checkpoint could not be encoded".to_owned()),
                    };
                    if let Err(reason) = written {
                        self.outcome = Some(Outcome::Failed(reason));
                        return Ok(());
                    }
                }
                Advanced::Cancelled => self.run = Some(run),
            }
        }
    }

    async fn restart(&mut self) -> Result<(), JobFault> {
        if self.run.is_none() {
            self.run = Some(
                PageRankRun::new(self.input.clone())
                    .map_err(|error| JobFault(error.to_string()))?,
            );
        }
        Ok(())
    }
}

/// A checkpoint restored into the job: a resume, counted.
impl CheckpointableKernel for JobKernel {
    type Checkpoint = PageRankCheckpoint;

    async fn checkpoint(&self) -> traits::Result<PageRankCheckpoint> {
        self.run
            .as_ref()
            .map(PageRankRun::state)
            .ok_or(traits::KernelError::new(ErrorKind::Unavailable))
    }

    async fn restore(&mut self, checkpoint: PageRankCheckpoint) -> traits::Result<()> {
        let run = match self.run.as_mut() {
            Some(run) => run,
            None => self.run.insert(
                PageRankRun::new(self.input.clone())
                    .map_err(|_| traits::KernelError::new(ErrorKind::InvalidInput))?,
            ),
        };
        let iteration = checkpoint.iteration;
        run.restore(checkpoint).await?;
        self.metrics.resumes.inc();
        let record = self.live.update(|record| {
            record.resumes = record.resumes.saturating_add(1);
            record.resumed_from = Some(iteration);
            record.progress.iterations_done = iteration;
        });
        tracing::info!(job = %record.id, iteration, resumes = record.resumes, "job resumed from a checkpoint");
        Ok(())
    }
}

/// A claimed job's checkpoints as the adapter's [`CheckpointStore`], for
/// [`Supervisor::with_checkpoints`](rustkernel_tokio::resilience::Supervisor::with_checkpoints):
/// values through postcard, and the damaged checkpoints a restore passed over noted in the
/// job's record.
#[derive(Clone, Debug)]
pub struct SupervisorCheckpoints {
    inner: Arc<dyn JobCheckpoints>,
    live: Arc<LiveJob>,
}

impl SupervisorCheckpoints {
    /// `inner`, noting skipped checkpoints in `live`.
    #[must_use]
    pub fn new(inner: Arc<dyn JobCheckpoints>, live: Arc<LiveJob>) -> Self {
        Self { inner, live }
    }
}

impl CheckpointStore for SupervisorCheckpoints {
    fn save<T: Serialize + Sync + ?Sized>(
        &self,
        sequence: u64,
        value: &T,
    ) -> impl Future<Output = Result<(), CheckpointStoreError>> + Send {
        let payload = postcard::to_allocvec(value)
            .map_err(|_| CheckpointStoreError::Codec(CheckpointError::Encode));
        let inner = self.inner.clone();
        async move { inner.save(sequence, payload?).await.map(|_| ()) }
    }

    fn load_latest<T: DeserializeOwned + Send + 'static>(
        &self,
    ) -> impl Future<Output = Result<Option<LoadedCheckpoint<T>>, CheckpointStoreError>> + Send
    {
        let inner = self.inner.clone();
        let live = self.live.clone();
        async move {
            let Some(loaded) = inner.load_latest().await? else {
                return Ok(None);
            };
            if !loaded.skipped.is_empty() {
                let notes: Vec<SkippedNote> = loaded
                    .skipped
                    .iter()
                    .map(|skipped| SkippedNote {
                        sequence: skipped.sequence,
                        reason: skipped.reason.to_string(),
                    })
                    .collect();
                let record = live.update(|record| record.skipped_checkpoints = notes);
                tracing::warn!(job = %record.id, skipped = ?record.skipped_checkpoints, resumed_from = loaded.sequence, "damaged checkpoints passed over");
            }
            let value = postcard::from_bytes(&loaded.value)
                .map_err(|_| CheckpointStoreError::Codec(CheckpointError::Decode))?;
            Ok(Some(LoadedCheckpoint {
                sequence: loaded.sequence,
                value,
                skipped: loaded.skipped,
            }))
        }
    }
}
