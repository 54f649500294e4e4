//! Long-running kernels as jobs: they checkpoint, survive a crash of their kernel and of
//! their service, and show their progress.
//!
//! A job is a PageRank submitted with `POST /v1/jobs` (see [`crate::service`]); the
//! [`JobRunner`] writes it queued under `[jobs] dir`, starts it when this service has a free
//! slot, and runs it under the tokio adapter's
//! [`Supervisor`](rustkernel_tokio::resilience::Supervisor) as a
//! [`CheckpointableKernel`](rustkernel_core::traits::CheckpointableKernel): every N iterations
//! or T seconds the kernel's state goes to the job's
//! [`FileCheckpointStore`](rustkernel_tokio::resilience::FileCheckpointStore), and the
//! supervisor restores the newest good one before a run. With `[gpu]` the iterations run in
//! the GPU worker, a chunk at a time: the service sends the checkpoint and the number of
//! iterations ([`PageRankSteps`](crate::kernels::PageRankSteps)), the worker answers with the
//! next checkpoint, and the service writes it.
//!
//! # What survives what
//! | Event | What happens |
//! |---|---|
//! | the kernel panics | the supervisor restarts it (at most 3 times a minute) from the newest good checkpoint |
//! | the GPU worker dies or stalls mid-chunk (`[gpu]`) | each chunk carries its checkpoint, so the executor runs the lost chunk on the CPU from it; the restarted worker takes the next ones |
//! | SIGTERM | each running job writes a checkpoint and stays `running`; the next service resumes it there |
//! | SIGKILL, a crash, a lost node | the job stays `running` with no lock held; the next scan of any service sharing the directory resumes it from its newest good checkpoint (at most one interval of work repeated) |
//! | a damaged newest checkpoint | the store passes over it to the one before (two are kept); the record lists it under `skipped_checkpoints` |
//! | a failed checkpoint write (full disk) | the previous checkpoint stays; the record shows `failed_checkpoint_writes` and `last_write_error`; three in a row fail the job |
//! | two services on one directory | the checkpoint store's lock lets one run a job; the other answers for it from the files |
//! | the job's deadline | it fails with `the job's deadline passed`, checked between chunks |
//!
//! # Rooms
//! | File | What it holds |
//! |---|---|
//! | [`lifecycle`] | the states and their transitions, a pure function |
//! | [`record`] | ids, the submit spec, the record kept as `job.json` |
//! | [`store`] | the [`JobStore`] trait the runner holds, and a claimed job's [`JobCheckpoints`] |
//! | `dir_store.rs` | [`DirJobStore`]: the files under `[jobs] dir` |
//! | [`kernel`] | [`JobKernel`](kernel::JobKernel): the job's run under the supervisor |
//! | [`requests`] | what clients ask and the answers: submit checks, refusals, cancel outcomes, pages |
//! | [`runner`] | [`JobRunner`]: admission, scheduling, cancel, retention |
//! | [`metrics`] | the metric families |

mod dir_store;
pub mod kernel;
pub mod lifecycle;
pub mod metrics;
pub mod record;
pub mod requests;
pub mod runner;
pub mod store;

pub use dir_store::{CHECKPOINT_KERNEL_ID, DirJobStore, KEEP_CHECKPOINTS};
pub use lifecycle::{JobEvent, JobState};
pub use metrics::JobMetrics;
pub use record::{JobId, JobRecord, JobSpec, JobStatus};
pub use requests::{CancelError, Cancelled, JobPage, SubmitError};
pub use runner::{JOB_RECOVERY, JobRunner, RunnerOptions};
pub use store::{ClaimError, JobCheckpoints, JobStore, JobStoreError};
