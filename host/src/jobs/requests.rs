//! What clients ask of the [`JobRunner`](super::JobRunner) and its answers: a submit's
//! checks and refusals, a cancel's outcomes, a page of the list.

use std::time::Duration;

use super::record::{JobId, JobRecord, JobSpec};
use super::store::JobStoreError;
use crate::kernels::{self, KERNEL_IDS, KernelRequest};

/// Why a job was not accepted.
#[derive(Debug)]
pub enum SubmitError {
    /// The spec or its input is invalid (400).
    Invalid(String),
    /// The queue is full (429).
    Full {
        /// Jobs queued.
        queued: usize,
        /// When to try again.
        retry_after: Duration,
    },
    /// The service is shutting down (503).
    Draining,
    /// The store failed (500).
    Store(JobStoreError),
}

impl std::fmt::Display for SubmitError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            SubmitError::Invalid(why) => f.write_str(why),
            SubmitError::Full { queued, .. } => {
                write!(f, "{queued} jobs are queued, the limit")
            }
            SubmitError::Draining => f.write_str("the service is shutting down"),
            SubmitError::Store(error) => write!(f, "cannot store the job: {error}"),
        }
    }
}

impl std::error::Error for SubmitError {}

/// What a cancel did.
#[derive(Debug)]
pub enum Cancelled {
    /// The job was queued, or running here or nowhere: it is cancelled now (or within an
    /// iteration, when it runs here).
    Done(JobRecord),
    /// Another service runs it: it will see the request at its next checkpoint.
    Requested(JobRecord),
}

/// Why a cancel did nothing.
#[derive(Debug)]
pub enum CancelError {
    /// No such job (404).
    NotFound,
    /// The job is over already (409).
    Final(Box<JobRecord>),
    /// The store failed (500).
    Store(JobStoreError),
}

/// A page of jobs, oldest first.
#[derive(Clone, Debug, PartialEq, serde::Serialize, serde::Deserialize)]
pub struct JobPage {
    /// The jobs (without results).
    pub jobs: Vec<JobRecord>,
    /// Pass as `after` for the next page; `None` on the last.
    pub next: Option<JobId>,
}

/// The validated request of a spec, and its iteration cap.
pub(super) fn parse_spec(spec: &JobSpec) -> Result<(KernelRequest, u32), SubmitError> {
    if spec.kernel != kernels::PAGERANK {
        return Err(SubmitError::Invalid(
            if KERNEL_IDS.contains(&spec.kernel.as_str()) {
                format!(
                    "{} is not a job kernel (jobs run iterative kernels: {}); run it with POST /v1/kernels/{}/execute",
                    spec.kernel,
                    kernels::PAGERANK,
                    spec.kernel
                )
            } else {
                format!(
                    "unknown kernel {:?} (jobs run {})",
                    spec.kernel,
                    kernels::PAGERANK
                )
            },
        ));
    }
    let bytes = serde_json::to_vec(&spec.input)
        .map_err(|error| SubmitError::Invalid(format!("input: {error}")))?;
    let request = kernels::parse_request(&spec.kernel, &bytes)
        .map_err(|error| SubmitError::Invalid(format!("input: {error}")))?;
    let max_iterations = match &request {
        KernelRequest::PageRank(input) => input.max_iterations,
        KernelRequest::MatMul(_) | KernelRequest::PageRankSteps(_) => 1,
    };
    Ok((request, max_iterations))
}
