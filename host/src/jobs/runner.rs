//! [`JobRunner`]: admits jobs, runs them under the tokio supervisor, cancels them, and keeps
//! the directory tidy.
//!
//! A scheduler task reads the directory every `[jobs] scan_interval` (and at once after a
//! submit or a job's end): it counts the jobs by state, removes finished ones past their
//! retention, and starts, while this service has a free slot (`max_running`), the oldest jobs
//! that are queued, or running with no service holding their lock (their service died). A
//! job starts by claiming its checkpoints ([`JobStore::claim`]): a job another service holds
//! is skipped, so of the services sharing the directory one runs it.
//!
//! One runner per directory in a process: the checkpoint store's lock keeps other processes
//! out, not other runners of the same process.

use std::collections::BTreeMap;
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex, PoisonError};
use std::time::{Duration, SystemTime};

use rustkernel_core::resilience::{RecoveryPolicy, RecoveryStrategy, RestartIntensity};
use rustkernel_tokio::resilience::{Supervisor, SupervisorExit};
use rustkernel_tokio::supervisor::SupervisorEvent;
use tokio::sync::{Notify, OwnedSemaphorePermit, Semaphore, watch};
use tokio::task::JoinHandle;

use super::kernel::{JobKernel, LiveJob, Outcome, SupervisorCheckpoints};
use super::lifecycle::{JOB_STATES, JobEvent, JobState};
use super::metrics::JobMetrics;
use super::record::{JobId, JobRecord, JobSpec, JobStatus, runner_name, unix_ms};
use super::requests::{CancelError, Cancelled, JobPage, SubmitError, parse_spec};
use super::store::{ClaimError, JobCheckpoints, JobStore, JobStoreError};
use crate::config::{JobsConfig, check_checkpoint_every};
use crate::gpu::GpuExecutor;
use crate::kernels::{KernelRequest, KernelResponse};

/// How a job's kernel is restarted when its run fails (a panic): three restarts a second
/// apart within a minute, each from the newest good checkpoint; then the job fails.
pub const JOB_RECOVERY: RecoveryPolicy = RecoveryPolicy {
    strategy: RecoveryStrategy::RestartKernel,
    max_restarts: 3,
    restart_delay: Duration::from_secs(1),
    escalation: None,
};

/// How a [`JobRunner`] runs its jobs' kernels.
#[derive(Clone, Debug)]
pub struct RunnerOptions {
    /// What the supervisor does when a job's kernel fails ([`JOB_RECOVERY`]).
    pub recovery: RecoveryPolicy,
    /// The GPU path (`[gpu]`): each chunk of a job goes to the worker, which answers with the
    /// next checkpoint; a worker that dies or stalls mid-chunk sends the chunk to the CPU
    /// from the same checkpoint. `None`: chunks run on this service's blocking threads.
    pub gpu: Option<Arc<GpuExecutor>>,
}

impl Default for RunnerOptions {
    fn default() -> Self {
        Self {
            recovery: JOB_RECOVERY,
            gpu: None,
        }
    }
}

/// Runs jobs from a [`JobStore`]. A cheap [`Clone`] handle.
#[derive(Clone, Debug)]
pub struct JobRunner {
    inner: Arc<Inner>,
}

/// The jobs running here, and their tasks.
type LiveJobs = BTreeMap<JobId, (Arc<LiveJob>, Option<JoinHandle<()>>)>;

#[derive(Debug)]
struct Inner {
    config: JobsConfig,
    store: Arc<dyn JobStore>,
    metrics: JobMetrics,
    /// The jobs this service runs now.
    live: Mutex<LiveJobs>,
    /// Free slots of `max_running`.
    slots: Arc<Semaphore>,
    /// Queued jobs in the directory as last counted, plus the submits since.
    queued: AtomicUsize,
    /// Claims and cancels one at a time, so a cancel never races a start in this process.
    claiming: tokio::sync::Mutex<()>,
    wake: Notify,
    stopping: AtomicBool,
    changes: watch::Sender<u64>,
    name: String,
    options: RunnerOptions,
}

impl JobRunner {
    /// A runner of `config`'s jobs in `store` with the default [`RunnerOptions`] (the CPU);
    /// [`start`](Self::start) its scheduler.
    #[must_use]
    pub fn new(config: JobsConfig, store: Arc<dyn JobStore>) -> Self {
        Self::with_options(config, store, RunnerOptions::default())
    }

    /// A runner with `options`.
    #[must_use]
    pub fn with_options(
        config: JobsConfig,
        store: Arc<dyn JobStore>,
        options: RunnerOptions,
    ) -> Self {
        Self {
            inner: Arc::new(Inner {
                slots: Arc::new(Semaphore::new(config.max_running)),
                config,
                store,
                metrics: JobMetrics::default(),
                live: Mutex::new(BTreeMap::new()),
                queued: AtomicUsize::new(0),
                claiming: tokio::sync::Mutex::new(()),
                wake: Notify::new(),
                stopping: AtomicBool::new(false),
                changes: watch::Sender::new(0),
                name: runner_name(),
                options,
            }),
        }
    }

    /// The metric families.
    #[must_use]
    pub fn metrics(&self) -> &JobMetrics {
        &self.inner.metrics
    }

    /// The configuration.
    #[must_use]
    pub fn config(&self) -> &JobsConfig {
        &self.inner.config
    }

    /// A receiver that sees every submit, start, end and checkpoint of this runner's jobs.
    #[must_use]
    pub fn changes(&self) -> watch::Receiver<u64> {
        self.inner.changes.subscribe()
    }

    /// Jobs running in this service.
    #[must_use]
    pub fn running_here(&self) -> usize {
        self.inner.live().len()
    }

    /// Starts the scheduler: a scan now, then every `scan_interval` or when woken.
    #[must_use]
    pub fn start(&self) -> JoinHandle<()> {
        let runner = self.clone();
        tokio::spawn(async move {
            while !runner.inner.stopping.load(Ordering::SeqCst) {
                runner.scan().await;
                let _ = tokio::time::timeout(
                    runner.inner.config.scan_interval,
                    runner.inner.wake.notified(),
                )
                .await;
            }
        })
    }

    /// Accepts a job: validates its spec and input, checks the queue, writes it queued.
    ///
    /// # Errors
    /// [`SubmitError`].
    pub async fn submit(&self, spec: JobSpec) -> Result<JobRecord, SubmitError> {
        let inner = &self.inner;
        if inner.stopping.load(Ordering::SeqCst) {
            return Err(SubmitError::Draining);
        }
        let (request, max_iterations) = parse_spec(&spec)?;
        let every = spec.checkpoint.unwrap_or(inner.config.checkpoint_every);
        check_checkpoint_every(&every)
            .map_err(|why| SubmitError::Invalid(format!("checkpoint: {why}")))?;
        if spec.deadline == Some(Duration::ZERO) {
            return Err(SubmitError::Invalid(
                "deadline must be greater than zero".to_owned(),
            ));
        }
        let queued = inner.queued.load(Ordering::SeqCst);
        if queued >= inner.config.max_queued + inner.slots.available_permits() {
            return Err(SubmitError::Full {
                queued,
                retry_after: inner.config.scan_interval.max(Duration::from_secs(1)),
            });
        }
        let now = SystemTime::now();
        let record = JobRecord::queued(
            JobId::generate(now),
            &spec.kernel,
            now,
            spec.deadline,
            every,
            max_iterations,
        );
        inner
            .store
            .create(&record, &request)
            .await
            .map_err(SubmitError::Store)?;
        inner.queued.fetch_add(1, Ordering::SeqCst);
        inner.metrics.submitted.inc();
        tracing::info!(job = %record.id, kernel = %record.kernel, "job queued");
        inner.changed();
        inner.wake.notify_one();
        Ok(record)
    }

    /// A job's record (live when it runs here), and its result once it succeeded.
    ///
    /// # Errors
    /// When the store cannot be read.
    pub async fn status(&self, id: &JobId) -> Result<Option<JobStatus>, JobStoreError> {
        let live = self.inner.live().get(id).map(|(job, _)| job.record());
        let record = match live {
            Some(record) => record,
            None => match self.inner.store.record(id).await? {
                Some(record) => record,
                None => return Ok(None),
            },
        };
        let result = if record.state == JobState::Succeeded {
            self.inner.store.result(id).await?
        } else {
            None
        };
        Ok(Some(JobStatus { record, result }))
    }

    /// Up to `limit` jobs after `after`, oldest first.
    ///
    /// # Errors
    /// When the store cannot be read.
    pub async fn list(
        &self,
        after: Option<&JobId>,
        limit: usize,
    ) -> Result<JobPage, JobStoreError> {
        let records = self.inner.store.records().await?;
        let live = self.inner.live();
        let mut jobs: Vec<JobRecord> = records
            .into_iter()
            .filter(|record| after.is_none_or(|after| record.id > *after))
            .take(limit.saturating_add(1))
            .map(|record| match live.get(&record.id) {
                Some((job, _)) => job.record(),
                None => record,
            })
            .collect();
        let next = if jobs.len() > limit {
            jobs.truncate(limit);
            jobs.last().map(|record| record.id.clone())
        } else {
            None
        };
        Ok(JobPage { jobs, next })
    }

    /// Cancels a job: at once when it is queued or its service died, within an iteration when
    /// it runs here, at its next checkpoint when another service runs it.
    ///
    /// # Errors
    /// [`CancelError`].
    pub async fn cancel(&self, id: &JobId) -> Result<Cancelled, CancelError> {
        let inner = &self.inner;
        let _claiming = inner.claiming.lock().await;
        if let Some(job) = inner.live().get(id).map(|(job, _)| job.clone()) {
            job.cancel();
            tracing::info!(job = %id, "cancel asked of a job running here");
            return Ok(Cancelled::Requested(job.record()));
        }
        let record = inner
            .store
            .record(id)
            .await
            .map_err(CancelError::Store)?
            .ok_or(CancelError::NotFound)?;
        if record.state.is_final() {
            return Err(CancelError::Final(Box::new(record)));
        }
        // The marker first: whoever runs the job next sees it.
        inner
            .store
            .request_cancel(id)
            .await
            .map_err(CancelError::Store)?;
        match inner.store.claim(id).await {
            Ok(claim) => {
                let record = inner
                    .store
                    .record(id)
                    .await
                    .map_err(CancelError::Store)?
                    .ok_or(CancelError::NotFound)?;
                let record = inner
                    .finish_record(record, JobEvent::Cancel, None)
                    .await
                    .map_err(CancelError::Final)?;
                drop(claim);
                Ok(Cancelled::Done(record))
            }
            Err(ClaimError::Missing) => Err(CancelError::NotFound),
            Err(error) => {
                tracing::info!(job = %id, %error, "cancel asked of a job another service runs");
                Ok(Cancelled::Requested(record))
            }
        }
    }

    /// Removes the finished jobs whose retention ended by `now`; returns how many.
    pub async fn sweep(&self, now: SystemTime) -> usize {
        match self.inner.store.records().await {
            Ok(records) => self.inner.sweep(&records, now).await,
            Err(error) => {
                tracing::warn!(%error, "cannot list jobs to sweep");
                0
            }
        }
    }

    /// One round of the scheduler: count, sweep, start what fits.
    pub async fn scan(&self) {
        let inner = &self.inner;
        let records = match inner.store.records().await {
            Ok(records) => records,
            Err(error) => {
                tracing::warn!(%error, "cannot list jobs");
                return;
            }
        };
        let counts: Vec<(JobState, usize)> = JOB_STATES
            .iter()
            .map(|state| (*state, records.iter().filter(|r| r.state == *state).count()))
            .collect();
        inner.metrics.set_counts(&counts);
        let queued = counts
            .iter()
            .find(|(state, _)| *state == JobState::Queued)
            .map_or(0, |(_, count)| *count);
        inner.queued.store(queued, Ordering::SeqCst);
        inner.sweep(&records, SystemTime::now()).await;
        for record in records {
            if inner.stopping.load(Ordering::SeqCst) {
                break;
            }
            if record.state.is_final() || inner.live().contains_key(&record.id) {
                continue;
            }
            let Ok(slot) = inner.slots.clone().try_acquire_owned() else {
                break;
            };
            self.try_start(&record.id, slot).await;
        }
        if let Ok(bytes) = inner.store.bytes_on_disk().await {
            inner
                .metrics
                .disk_bytes
                .set(i64::try_from(bytes).unwrap_or(i64::MAX));
        }
    }

    /// Claims job `id` and starts it, unless another service holds it or it is over.
    async fn try_start(&self, id: &JobId, slot: OwnedSemaphorePermit) {
        let inner = &self.inner;
        let _claiming = inner.claiming.lock().await;
        let claim = match inner.store.claim(id).await {
            Ok(claim) => claim,
            Err(ClaimError::Locked | ClaimError::Missing) => return,
            Err(error) => {
                tracing::warn!(job = %id, %error, "cannot claim a job");
                return;
            }
        };
        // Read again under the lock: the service that held it may have finished it.
        let record = match inner.store.record(id).await {
            Ok(Some(record)) if !record.state.is_final() => record,
            Ok(_) => return,
            Err(error) => {
                tracing::warn!(job = %id, %error, "cannot read a claimed job");
                return;
            }
        };
        let event = if record.state == JobState::Running {
            JobEvent::Resume
        } else {
            JobEvent::Start
        };
        let Ok(state) = record.state.on(event) else {
            return;
        };
        let now = unix_ms(SystemTime::now());
        let mut record = record;
        record.state = state;
        record.started_at_ms.get_or_insert(now);
        record.runner = Some(inner.name.clone());
        if let Err(error) = inner.store.write_record(&record).await {
            tracing::warn!(job = %id, %error, "cannot write the job's record");
        }
        tracing::info!(job = %id, ?event, "job started");
        let live = Arc::new(LiveJob::new(record));
        let runner = self.clone();
        let task_live = live.clone();
        inner.live().insert(id.clone(), (live, None));
        let task = tokio::spawn(async move {
            let outcome = runner.supervise(&task_live, claim).await;
            runner.finish(&task_live, outcome).await;
            drop(slot);
        });
        if let Some(entry) = inner.live().get_mut(id) {
            entry.1 = Some(task);
        }
        inner.changed();
    }

    /// Runs a claimed job under the supervisor to its outcome.
    async fn supervise(&self, live: &Arc<LiveJob>, claim: Arc<dyn JobCheckpoints>) -> Outcome {
        let inner = &self.inner;
        let id = live.record().id;
        let input = match inner.store.input(&id).await {
            Ok(KernelRequest::PageRank(input)) => Arc::new(input),
            Ok(other) => {
                return Outcome::Failed(format!("{} is not a job kernel", other.kernel_id()));
            }
            Err(error) => return Outcome::Failed(format!("cannot read the job's input: {error}")),
        };
        let kernel = match JobKernel::new(
            input,
            live.clone(),
            inner.store.clone(),
            claim.clone(),
            inner.metrics.clone(),
        ) {
            Ok(kernel) => Ok(kernel.on_gpu(inner.options.gpu.clone())),
            Err(error) => Err(error),
        };
        let kernel = match kernel {
            Ok(kernel) => kernel,
            Err(error) => return Outcome::Failed(error.to_string()),
        };
        let supervisor = Supervisor::try_new(
            id.as_str(),
            kernel,
            inner.options.recovery,
            RestartIntensity::default(),
        );
        let mut supervisor = match supervisor {
            Ok(supervisor) => {
                supervisor.with_checkpoints(SupervisorCheckpoints::new(claim, live.clone()))
            }
            Err(error) => return Outcome::Failed(error.to_string()),
        };
        let changes = inner.changes.clone();
        let mut seen = live.subscribe();
        let forward = tokio::spawn(async move {
            while seen.changed().await.is_ok() {
                changes.send_modify(|version| *version = version.wrapping_add(1));
            }
        });
        let exit = supervisor.run().await;
        forward.abort();
        match exit {
            Ok(SupervisorExit::Completed) => supervisor
                .kernel(rustkernel_tokio::resilience::KernelSlot::Primary)
                .and_then(JobKernel::outcome)
                .cloned()
                .unwrap_or_else(|| Outcome::Failed("the job ended without an outcome".to_owned())),
            Ok(exit) => {
                let last =
                    supervisor
                        .log()
                        .events()
                        .into_iter()
                        .rev()
                        .find_map(|event| match event {
                            SupervisorEvent::Failed { error, .. } => Some(error.to_string()),
                            _ => None,
                        });
                Outcome::Failed(format!(
                    "the job's kernel kept failing ({exit}): {}",
                    last.unwrap_or_default()
                ))
            }
            Err(error) => Outcome::Failed(error.to_string()),
        }
    }

    /// Writes a job's outcome and lets it go.
    async fn finish(&self, live: &Arc<LiveJob>, outcome: Outcome) {
        let inner = &self.inner;
        let record = live.record();
        let id = record.id.clone();
        let (event, error) = match outcome {
            Outcome::Succeeded(output) => {
                match inner
                    .store
                    .write_result(&id, &KernelResponse::PageRank(output))
                    .await
                {
                    Ok(()) => (Some(JobEvent::Succeed), None),
                    Err(error) => (
                        Some(JobEvent::Fail),
                        Some(format!("cannot write the result: {error}")),
                    ),
                }
            }
            Outcome::Failed(reason) => (Some(JobEvent::Fail), Some(reason)),
            Outcome::Cancelled => (Some(JobEvent::Cancel), None),
            Outcome::Stopped => (None, None),
        };
        match event {
            Some(event) => {
                if let Ok(record) = inner.finish_record(record, event, error).await {
                    live.update(|live| *live = record);
                }
            }
            None => {
                if let Err(error) = inner.store.write_record(&record).await {
                    tracing::warn!(job = %id, %error, "cannot write the job's record");
                }
                tracing::info!(job = %id, iteration = record.progress.iterations_done, "job stopped for the shutdown; the next service resumes it");
            }
        }
        inner.live().remove(&id);
        inner.changed();
        inner.wake.notify_one();
    }

    /// Stops the scheduler and every job (each takes a checkpoint and stays running, for
    /// the next service to resume), waiting up to `grace` for them.
    pub async fn shutdown(&self, grace: Duration) {
        let inner = &self.inner;
        inner.stopping.store(true, Ordering::SeqCst);
        inner.wake.notify_one();
        let tasks: Vec<JoinHandle<()>> = {
            let mut live = inner.live();
            live.values_mut()
                .filter_map(|(job, task)| {
                    job.stop();
                    task.take()
                })
                .collect()
        };
        let all = futures_join(tasks);
        if tokio::time::timeout(grace, all).await.is_err() {
            tracing::warn!(
                ?grace,
                "jobs still running at the end of the grace; they resume from their last checkpoint"
            );
        }
    }
}

/// Waits for every task.
async fn futures_join(tasks: Vec<JoinHandle<()>>) {
    for task in tasks {
        let _ = task.await;
    }
}

impl Inner {
    fn live(&self) -> std::sync::MutexGuard<'_, LiveJobs> {
        self.live.lock().unwrap_or_else(PoisonError::into_inner)
    }

    fn changed(&self) {
        self.changes
            .send_modify(|version| *version = version.wrapping_add(1));
    }

    /// Moves `record` to its final state by `event` and writes it; the record as it was when
    /// the lifecycle refuses.
    async fn finish_record(
        &self,
        mut record: JobRecord,
        event: JobEvent,
        error: Option<String>,
    ) -> Result<JobRecord, Box<JobRecord>> {
        let Ok(state) = record.state.on(event) else {
            return Err(Box::new(record));
        };
        record.state = state;
        record.finished_at_ms = Some(unix_ms(SystemTime::now()));
        record.error = error;
        if let Err(error) = self.store.write_record(&record).await {
            tracing::warn!(job = %record.id, %error, "cannot write the job's final record");
        }
        tracing::info!(job = %record.id, state = %record.state, error = record.error.as_deref().unwrap_or(""), "job finished");
        Ok(record)
    }

    async fn sweep(&self, records: &[JobRecord], now: SystemTime) -> usize {
        let retention = u64::try_from(self.config.result_retention.as_millis()).unwrap_or(u64::MAX);
        let now = unix_ms(now);
        let mut removed = 0;
        for record in records {
            let expired = record.state.is_final()
                && record
                    .finished_at_ms
                    .is_some_and(|at| at.saturating_add(retention) <= now);
            if !expired {
                continue;
            }
            match self.store.remove(&record.id).await {
                Ok(()) => {
                    removed += 1;
                    tracing::info!(job = %record.id, "finished job removed after its retention");
                }
                Err(error) => {
                    tracing::warn!(job = %record.id, %error, "cannot remove a finished job")
                }
            }
        }
        removed
    }
}

#[cfg(test)]
mod tests {
    #![allow(clippy::indexing_slicing, clippy::panic)] // tests index what they built and fail loudly

    use std::collections::VecDeque;
    use std::io;

    use rustkernel_tokio::checkpoint_store::{CheckpointStoreError, LoadedCheckpoint, StoreOp};

    use super::*;
    use crate::jobs::DirJobStore;
    use crate::jobs::store::StoreFuture;
    use crate::kernels::{self, BoxFuture, CheckpointEvery, PageRankInput, PageRankRun};

    /// A checkpoint write's fate.
    #[derive(Clone, Copy, Debug, PartialEq, Eq)]
    enum Disk {
        Ok,
        Full,
        Panic,
    }

    /// A directory behind a disk whose checkpoint writes follow a script (then succeed), and
    /// that can hold every write at a gate until the test opens it.
    #[derive(Debug, Default)]
    struct Script {
        writes: Mutex<VecDeque<Disk>>,
        gate: Option<Arc<Semaphore>>,
    }

    #[derive(Debug)]
    struct FlakyDisk {
        dir: DirJobStore,
        script: Arc<Script>,
    }

    #[derive(Debug)]
    struct FlakyCheckpoints {
        inner: Arc<dyn JobCheckpoints>,
        script: Arc<Script>,
    }

    impl JobCheckpoints for FlakyCheckpoints {
        fn save(
            &self,
            sequence: u64,
            payload: Vec<u8>,
        ) -> BoxFuture<'_, Result<u64, CheckpointStoreError>> {
            Box::pin(async move {
                if let Some(gate) = &self.script.gate {
                    gate.acquire().await.expect("open").forget();
                }
                let fate = self
                    .script
                    .writes
                    .lock()
                    .expect("lock")
                    .pop_front()
                    .unwrap_or(Disk::Ok);
                match fate {
                    Disk::Ok => self.inner.save(sequence, payload).await,
                    Disk::Full => Err(CheckpointStoreError::Io {
                        op: StoreOp::Write,
                        kind: io::ErrorKind::StorageFull,
                    }),
                    Disk::Panic => panic!("the disk driver panicked"),
                }
            })
        }

        fn load_latest(
            &self,
        ) -> BoxFuture<'_, Result<Option<LoadedCheckpoint<Vec<u8>>>, CheckpointStoreError>>
        {
            self.inner.load_latest()
        }
    }

    impl JobStore for FlakyDisk {
        fn create<'a>(
            &'a self,
            record: &'a JobRecord,
            input: &'a KernelRequest,
        ) -> StoreFuture<'a, ()> {
            self.dir.create(record, input)
        }
        fn write_record<'a>(&'a self, record: &'a JobRecord) -> StoreFuture<'a, ()> {
            self.dir.write_record(record)
        }
        fn record<'a>(&'a self, id: &'a JobId) -> StoreFuture<'a, Option<JobRecord>> {
            self.dir.record(id)
        }
        fn records(&self) -> StoreFuture<'_, Vec<JobRecord>> {
            self.dir.records()
        }
        fn input<'a>(&'a self, id: &'a JobId) -> StoreFuture<'a, KernelRequest> {
            self.dir.input(id)
        }
        fn write_result<'a>(
            &'a self,
            id: &'a JobId,
            result: &'a KernelResponse,
        ) -> StoreFuture<'a, ()> {
            self.dir.write_result(id, result)
        }
        fn result<'a>(&'a self, id: &'a JobId) -> StoreFuture<'a, Option<KernelResponse>> {
            self.dir.result(id)
        }
        fn request_cancel<'a>(&'a self, id: &'a JobId) -> StoreFuture<'a, ()> {
            self.dir.request_cancel(id)
        }
        fn cancel_requested<'a>(&'a self, id: &'a JobId) -> StoreFuture<'a, bool> {
            self.dir.cancel_requested(id)
        }
        fn remove<'a>(&'a self, id: &'a JobId) -> StoreFuture<'a, ()> {
            self.dir.remove(id)
        }
        fn bytes_on_disk(&self) -> StoreFuture<'_, u64> {
            self.dir.bytes_on_disk()
        }
        fn claim<'a>(
            &'a self,
            id: &'a JobId,
        ) -> BoxFuture<'a, Result<Arc<dyn JobCheckpoints>, ClaimError>> {
            Box::pin(async move {
                let inner = self.dir.claim(id).await?;
                Ok(Arc::new(FlakyCheckpoints {
                    inner,
                    script: self.script.clone(),
                }) as Arc<dyn JobCheckpoints>)
            })
        }
    }

    struct Fixture {
        _temp: tempfile::TempDir,
        dir: DirJobStore,
        script: Arc<Script>,
    }

    impl Fixture {
        fn new(writes: &[Disk], gated: bool) -> Self {
            let temp = tempfile::tempdir().expect("a temp dir");
            let dir = DirJobStore::open(temp.path().join("jobs")).expect("opens");
            Self {
                _temp: temp,
                dir,
                script: Arc::new(Script {
                    writes: Mutex::new(writes.iter().copied().collect()),
                    gate: gated.then(|| Arc::new(Semaphore::new(0))),
                }),
            }
        }

        fn runner(&self, max_running: usize, max_queued: usize) -> JobRunner {
            let config = JobsConfig {
                max_running,
                max_queued,
                ..JobsConfig::new(self.dir.dir())
            };
            JobRunner::new(
                config,
                Arc::new(FlakyDisk {
                    dir: self.dir.clone(),
                    script: self.script.clone(),
                }),
            )
        }

        fn open_gate(&self, writes: usize) {
            if let Some(gate) = &self.script.gate {
                gate.add_permits(writes);
            }
        }
    }

    /// A PageRank that runs `iterations` iterations (no early stop).
    fn input(iterations: u32) -> PageRankInput {
        PageRankInput {
            num_nodes: 6,
            edges: vec![[0, 1], [1, 2], [2, 0], [3, 2], [4, 5], [5, 3], [2, 4]],
            damping: 0.85,
            max_iterations: iterations,
            tolerance: 0.0,
        }
    }

    fn spec(input: &PageRankInput, every: u32) -> JobSpec {
        JobSpec {
            kernel: kernels::PAGERANK.to_owned(),
            input: serde_json::to_value(input).expect("JSON"),
            deadline: None,
            checkpoint: Some(CheckpointEvery::iterations(every)),
        }
    }

    fn uninterrupted(input: &PageRankInput) -> KernelResponse {
        kernels::run_cpu(&KernelRequest::PageRank(input.clone()), &|| false).expect("runs")
    }

    /// The uninterrupted result of the job's input as stored (parsed from JSON at submit,
    /// which may round the damping factor's last bit: the reference must use the same).
    async fn stored_uninterrupted(fixture: &Fixture, id: &JobId) -> KernelResponse {
        let request = fixture.dir.input(id).await.expect("reads");
        kernels::run_cpu(&request, &|| false).expect("runs")
    }

    /// Waits (on the runner's change signal, not a clock) until job `id`'s status holds.
    async fn wait_for(
        runner: &JobRunner,
        id: &JobId,
        what: &str,
        holds: impl Fn(&JobStatus) -> bool,
    ) -> JobStatus {
        let mut changes = runner.changes();
        let waiting = async {
            loop {
                if let Some(status) = runner.status(id).await.expect("reads")
                    && holds(&status)
                {
                    return status;
                }
                changes.changed().await.expect("the runner lives");
            }
        };
        tokio::time::timeout(Duration::from_secs(20), waiting)
            .await
            .unwrap_or_else(|_| panic!("timed out waiting until {what}"))
    }

    fn is(state: JobState) -> impl Fn(&JobStatus) -> bool {
        move |status| status.record.state == state
    }

    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn a_job_runs_to_the_uninterrupted_result_with_its_checkpoints() {
        let fixture = Fixture::new(&[], false);
        let runner = fixture.runner(1, 4);
        let scheduler = runner.start();
        let input = input(50);
        let record = runner.submit(spec(&input, 10)).await.expect("accepted");
        assert_eq!(record.state, JobState::Queued);
        assert_eq!(record.progress.max_iterations, 50);
        let done = wait_for(&runner, &record.id, "it succeeded", is(JobState::Succeeded)).await;
        assert_eq!(
            done.result,
            Some(stored_uninterrupted(&fixture, &record.id).await)
        );
        assert_eq!(done.record.progress.iterations_done, 50);
        assert_eq!(
            done.record.checkpoints_written, 4,
            "10, 20, 30, 40: the 50th is the result"
        );
        assert_eq!(
            done.record.last_checkpoint.map(|mark| mark.iteration),
            Some(40)
        );
        assert_eq!(done.record.resumes, 0);
        assert!(done.record.finished_at_ms.is_some());
        assert_eq!(runner.metrics().checkpoints_written.get(), 4);
        // The record on disk says the same.
        let on_disk = fixture
            .dir
            .record(&record.id)
            .await
            .expect("reads")
            .expect("there");
        assert_eq!(on_disk.state, JobState::Succeeded);
        scheduler.abort();
    }

    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn a_full_disk_keeps_the_previous_checkpoint_and_fails_the_job_after_three_in_a_row() {
        // Two failures, a good write, then three failures.
        let script = [
            Disk::Ok,
            Disk::Full,
            Disk::Full,
            Disk::Ok,
            Disk::Full,
            Disk::Full,
            Disk::Full,
        ];
        let fixture = Fixture::new(&script, false);
        let runner = fixture.runner(1, 4);
        let scheduler = runner.start();
        let record = runner.submit(spec(&input(100), 1)).await.expect("accepted");
        let failed = wait_for(&runner, &record.id, "it failed", is(JobState::Failed))
            .await
            .record;
        let error = failed.error.clone().expect("a reason");
        assert!(
            error.contains("3 checkpoint writes in a row failed"),
            "{error}"
        );
        assert!(error.contains("no storage space"), "{error}");
        assert_eq!(failed.failed_checkpoint_writes, 3);
        assert!(
            failed
                .last_write_error
                .as_deref()
                .is_some_and(|e| e.contains("iteration 7")),
            "{failed:?}"
        );
        assert_eq!(failed.checkpoints_written, 2);
        assert_eq!(failed.last_checkpoint.map(|mark| mark.iteration), Some(4));
        assert_eq!(runner.metrics().checkpoint_write_failures.get(), 5);
        // The good checkpoint of iteration 4 is still there.
        let claim = fixture.dir.claim(&record.id).await.expect("free again");
        let loaded = claim.load_latest().await.expect("loads").expect("some");
        assert_eq!(loaded.sequence, 4);
        scheduler.abort();
    }

    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn a_job_whose_service_died_resumes_from_its_newest_good_checkpoint() {
        let fixture = Fixture::new(&[], false);
        let input = input(60);
        // What the dead service left: the job running, checkpoints of iterations 10 and 20,
        // the newest with a flipped byte.
        let mut record = JobRecord::queued(
            JobId::generate(SystemTime::now()),
            kernels::PAGERANK,
            SystemTime::now(),
            None,
            CheckpointEvery::iterations(10),
            60,
        );
        record.state = JobState::Running;
        fixture
            .dir
            .create(&record, &KernelRequest::PageRank(input.clone()))
            .await
            .expect("created");
        let mut run = PageRankRun::new(Arc::new(input.clone())).expect("valid");
        let claim = fixture.dir.claim(&record.id).await.expect("claims");
        for _ in 0..2 {
            let _ = run.advance(
                &CheckpointEvery::iterations(10),
                &mut || Duration::ZERO,
                &|| false,
            );
            let payload = postcard::to_allocvec(&run.state()).expect("encodes");
            claim
                .save(u64::from(run.iteration()), payload)
                .await
                .expect("saved");
        }
        drop(claim);
        let newest = fixture.dir.job_dir(&record.id).join(
            rustkernel_tokio::resilience::FileCheckpointStore::file_name(
                crate::jobs::CHECKPOINT_KERNEL_ID,
                20,
            ),
        );
        let mut bytes = std::fs::read(&newest).expect("reads");
        bytes[40] ^= 0x10;
        std::fs::write(&newest, bytes).expect("writes");

        let runner = fixture.runner(1, 4);
        let scheduler = runner.start();
        let done = wait_for(&runner, &record.id, "it succeeded", is(JobState::Succeeded)).await;
        assert_eq!(done.result, Some(uninterrupted(&input)));
        assert_eq!(done.record.resumes, 1);
        assert_eq!(
            done.record.resumed_from,
            Some(10),
            "the damaged 20 was passed over"
        );
        assert_eq!(
            done.record.skipped_checkpoints.len(),
            1,
            "{:?}",
            done.record.skipped_checkpoints
        );
        assert_eq!(done.record.skipped_checkpoints[0].sequence, 20);
        assert!(
            done.record.skipped_checkpoints[0].reason.contains("CRC"),
            "{:?}",
            done.record.skipped_checkpoints
        );
        assert_eq!(runner.metrics().resumes.get(), 1);
        scheduler.abort();
    }

    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn cancel_a_queued_job_and_a_running_one() {
        let fixture = Fixture::new(&[], true);
        let runner = fixture.runner(1, 4);
        // No scheduler yet: the job stays queued.
        let queued = runner.submit(spec(&input(10), 1)).await.expect("accepted");
        match runner.cancel(&queued.id).await {
            Ok(Cancelled::Done(record)) => assert_eq!(record.state, JobState::Cancelled),
            other => panic!("{other:?}"),
        }
        assert!(matches!(
            runner.cancel(&queued.id).await,
            Err(CancelError::Final(_))
        ));
        assert!(matches!(
            runner.cancel(&JobId::parse("0abc").expect("id")).await,
            Err(CancelError::NotFound)
        ));

        let scheduler = runner.start();
        let running = runner
            .submit(spec(&input(1000), 1))
            .await
            .expect("accepted");
        // Its first checkpoint write waits at the gate: the job is running.
        let _ = wait_for(&runner, &running.id, "it runs", |status| {
            status.record.progress.iterations_done >= 1
        })
        .await;
        assert!(matches!(
            runner.cancel(&running.id).await,
            Ok(Cancelled::Requested(_))
        ));
        fixture.open_gate(1000);
        let cancelled = wait_for(
            &runner,
            &running.id,
            "it is cancelled",
            is(JobState::Cancelled),
        )
        .await;
        assert!(cancelled.record.progress.iterations_done < 1000);
        assert_eq!(cancelled.result, None);
        // The queued one was never started.
        let status = runner
            .status(&queued.id)
            .await
            .expect("reads")
            .expect("there");
        assert_eq!(status.record.started_at_ms, None);
        scheduler.abort();
    }

    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn a_shutdown_checkpoints_the_job_and_the_next_runner_resumes_it() {
        let fixture = Fixture::new(&[], true);
        let input = input(300);
        let first = fixture.runner(1, 4);
        let scheduler = first.start();
        let record = first.submit(spec(&input, 50)).await.expect("accepted");
        let _ = wait_for(&first, &record.id, "it runs", |status| {
            status.record.progress.iterations_done >= 50
        })
        .await;
        // The 50th iteration's checkpoint waits at the gate; the shutdown comes meanwhile.
        fixture.open_gate(1000);
        first.shutdown(Duration::from_secs(10)).await;
        scheduler.abort();
        let stopped = fixture
            .dir
            .record(&record.id)
            .await
            .expect("reads")
            .expect("there");
        assert_eq!(
            stopped.state,
            JobState::Running,
            "left for the next service"
        );
        let saved = stopped.last_checkpoint.expect("a checkpoint").iteration;
        assert_eq!(
            saved, stopped.progress.iterations_done,
            "the shutdown's checkpoint is of the last iteration"
        );
        assert!(matches!(
            first.submit(spec(&input, 50)).await,
            Err(SubmitError::Draining)
        ));

        let second = fixture.runner(1, 4);
        let scheduler = second.start();
        let done = wait_for(&second, &record.id, "it succeeded", is(JobState::Succeeded)).await;
        assert_eq!(
            done.result,
            Some(stored_uninterrupted(&fixture, &record.id).await)
        );
        assert_eq!(done.record.resumes, 1);
        assert_eq!(done.record.resumed_from, Some(saved));
        scheduler.abort();
    }

    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn the_queue_is_bounded_specs_are_checked_and_old_results_go() {
        let fixture = Fixture::new(&[], false);
        let runner = fixture.runner(1, 1);
        // Room: one queued plus one free slot.
        let first = runner.submit(spec(&input(5), 1)).await.expect("accepted");
        let _second = runner.submit(spec(&input(5), 1)).await.expect("accepted");
        match runner.submit(spec(&input(5), 1)).await {
            Err(SubmitError::Full {
                queued: 2,
                retry_after,
            }) => {
                assert!(retry_after >= Duration::from_secs(1));
            }
            other => panic!("{other:?}"),
        }
        let mut bad = vec![
            (
                JobSpec {
                    kernel: "linalg/matmul".to_owned(),
                    ..spec(&input(5), 1)
                },
                "not a job kernel",
            ),
            (
                JobSpec {
                    kernel: "graph/nope".to_owned(),
                    ..spec(&input(5), 1)
                },
                "unknown kernel",
            ),
            (
                JobSpec {
                    input: serde_json::json!({"num_nodes": 0, "edges": []}),
                    ..spec(&input(5), 1)
                },
                "empty",
            ),
            (
                JobSpec {
                    input: serde_json::json!({"edges": 1}),
                    ..spec(&input(5), 1)
                },
                "input",
            ),
            (
                JobSpec {
                    deadline: Some(Duration::ZERO),
                    ..spec(&input(5), 1)
                },
                "deadline",
            ),
        ];
        bad.push((
            JobSpec {
                checkpoint: Some(CheckpointEvery::default()),
                ..spec(&input(5), 1)
            },
            "checkpoint",
        ));
        for (spec, needle) in bad {
            match runner.submit(spec).await {
                Err(SubmitError::Invalid(why)) => assert!(why.contains(needle), "{why}"),
                other => panic!("{needle}: {other:?}"),
            }
        }

        let scheduler = runner.start();
        let done = wait_for(&runner, &first.id, "it succeeded", is(JobState::Succeeded)).await;
        let finished = from_ms(done.record.finished_at_ms.expect("finished"));
        let retention = runner.config().result_retention;
        assert_eq!(
            runner
                .sweep(finished + retention - Duration::from_millis(1))
                .await,
            0
        );
        let page = runner.list(None, 1).await.expect("lists");
        assert_eq!(page.jobs.len(), 1);
        assert_eq!(page.jobs[0].id, first.id);
        let rest = runner.list(page.next.as_ref(), 10).await.expect("lists");
        assert_eq!((rest.jobs.len(), rest.next), (1, None));
        let _ = wait_for(
            &runner,
            &rest.jobs[0].id,
            "the second succeeded",
            is(JobState::Succeeded),
        )
        .await;
        scheduler.abort();
        let far = SystemTime::now() + retention + Duration::from_secs(1);
        assert_eq!(runner.sweep(far).await, 2);
        assert!(runner.status(&first.id).await.expect("reads").is_none());
    }

    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn a_job_past_its_deadline_fails() {
        let fixture = Fixture::new(&[], false);
        let runner = fixture.runner(1, 4);
        let scheduler = runner.start();
        let record = runner
            .submit(JobSpec {
                deadline: Some(Duration::from_nanos(1)),
                ..spec(&input(10), 1)
            })
            .await
            .expect("accepted");
        let failed = wait_for(&runner, &record.id, "it failed", is(JobState::Failed)).await;
        assert_eq!(
            failed.record.error.as_deref(),
            Some("the job's deadline passed")
        );
        scheduler.abort();
    }

    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn a_kernel_that_panics_is_restarted_by_the_supervisor_from_its_checkpoint() {
        let fixture = Fixture::new(&[Disk::Ok, Disk::Ok, Disk::Panic], false);
        let config = JobsConfig {
            max_running: 1,
            ..JobsConfig::new(fixture.dir.dir())
        };
        let runner = JobRunner::with_options(
            config,
            Arc::new(FlakyDisk {
                dir: fixture.dir.clone(),
                script: fixture.script.clone(),
            }),
            RunnerOptions {
                recovery: RecoveryPolicy {
                    restart_delay: Duration::from_millis(1),
                    ..JOB_RECOVERY
                },
                gpu: None,
            },
        );
        let scheduler = runner.start();
        let input = input(100);
        let record = runner.submit(spec(&input, 10)).await.expect("accepted");
        let done = wait_for(&runner, &record.id, "it succeeded", is(JobState::Succeeded)).await;
        assert_eq!(
            done.result,
            Some(stored_uninterrupted(&fixture, &record.id).await)
        );
        assert_eq!(done.record.resumes, 1, "{:?}", done.record);
        assert_eq!(
            done.record.resumed_from,
            Some(20),
            "the checkpoint before the panic"
        );
        scheduler.abort();
    }

    fn from_ms(ms: u64) -> SystemTime {
        super::super::record::from_unix_ms(ms)
    }
}
