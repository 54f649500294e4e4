//! The kernel registry: the kernels the service runs, their inputs and outputs, validation,
//! and their CPU implementations.
//!
//! A request reaches a kernel as JSON (`POST /v1/kernels/{id}/execute`): [`parse_request`]
//! turns the id and body into a validated [`KernelRequest`]. A large input can come as a binary
//! body instead ([`BINARY_CONTENT_TYPE`], docs/binary-body.md): [`parse_request_binary`] turns
//! it into the same request, and [`encode_binary`] writes one. [`run_cpu`] computes a request
//! on the calling thread (the GPU worker runs the same request through CUDA, and falls back to
//! [`run_cpu`] itself). Inputs and outputs are serde types, so the same values travel to the
//! GPU worker in postcard frames.
//!
//! A long PageRank also runs as a [`PageRankRun`], the chapter's
//! [`CheckpointableKernel`](rustkernel_core::traits::CheckpointableKernel): it stops every N
//! iterations or T seconds for a checkpoint and resumes from one to the same bits.
//!
//! ```
//! use rustkernel_host::kernels::{self, KernelResponse};
//!
//! let body = br#"{"num_nodes": 3, "edges": [[0, 1], [1, 2], [2, 0]]}"#;
//! let request = kernels::parse_request(kernels::PAGERANK, body).unwrap();
//! let KernelResponse::PageRank(out) = kernels::run_cpu(&request, &|| false).unwrap() else {
//!     unreachable!()
//! };
//! assert!(out.ranks.iter().all(|r| (r - 1.0 / 3.0).abs() < 1e-9));
//! ```

mod binary;
mod error;
mod matmul;
mod pagerank;
mod pool;
mod resumable;

use serde::{Deserialize, Serialize};

pub use binary::{
    BINARY_CONTENT_TYPE, BINARY_MAGIC, BINARY_VERSION, BinaryError, MATMUL_HEADER_LEN,
    PAGERANK_HEADER_LEN, decode_binary, encode_binary, parse_request_binary,
};
pub use error::KernelError;
pub use matmul::{MAX_MATMUL_N, MatMulInput, MatMulOutput};
pub use pagerank::{
    Csr, MAX_EDGES, MAX_ITERATIONS, MAX_NODES, PageRankInput, PageRankOutput, default_damping,
    default_max_iterations, default_tolerance,
};
pub use pool::{BoxFuture, CpuRunner, INLINE_WORK_UNITS, KernelPool, work_units};
pub use resumable::{Advanced, CheckpointEvery, PageRankCheckpoint, PageRankRun, PageRankSteps};

/// PageRank by power iteration over a directed edge list.
pub const PAGERANK: &str = "graph/pagerank";
/// Dense `n x n` matrix product in `f64`.
pub const MATMUL: &str = "linalg/matmul";
/// Every kernel id the service knows, in a stable order.
pub const KERNEL_IDS: [&str; 2] = [PAGERANK, MATMUL];

/// A validated request for one kernel.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum KernelRequest {
    /// For [`PAGERANK`].
    PageRank(PageRankInput),
    /// For [`MATMUL`].
    MatMul(MatMulInput),
    /// A chunk of a [`PAGERANK`] job, for the GPU worker; never parsed from a client's body.
    PageRankSteps(PageRankSteps),
}

impl KernelRequest {
    /// The id of the kernel this request is for ([`PAGERANK`] or [`MATMUL`]).
    #[must_use]
    pub fn kernel_id(&self) -> &'static str {
        match self {
            KernelRequest::PageRank(_) | KernelRequest::PageRankSteps(_) => PAGERANK,
            KernelRequest::MatMul(_) => MATMUL,
        }
    }
}

/// A kernel's result.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum KernelResponse {
    /// From [`PAGERANK`].
    PageRank(PageRankOutput),
    /// From [`MATMUL`].
    MatMul(MatMulOutput),
    /// From [`KernelRequest::PageRankSteps`]: the checkpoint after the chunk.
    PageRankState(PageRankCheckpoint),
}

impl KernelResponse {
    /// The id of the kernel that produced this response.
    #[must_use]
    pub fn kernel_id(&self) -> &'static str {
        match self {
            KernelResponse::PageRank(_) | KernelResponse::PageRankState(_) => PAGERANK,
            KernelResponse::MatMul(_) => MATMUL,
        }
    }
}

/// Parses a JSON body for the kernel `kernel_id` and validates it.
///
/// # Errors
/// [`KernelError::UnknownKernel`] for an id not in [`KERNEL_IDS`], [`KernelError::BadRequest`]
/// for a body that is not JSON of the kernel's input shape (unknown fields included), and
/// [`KernelError::InvalidInput`] for a well-formed input that [`validate`] refuses.
pub fn parse_request(kernel_id: &str, json_body: &[u8]) -> Result<KernelRequest, KernelError> {
    let request = match kernel_id {
        PAGERANK => KernelRequest::PageRank(from_json(json_body)?),
        MATMUL => KernelRequest::MatMul(from_json(json_body)?),
        other => return Err(KernelError::UnknownKernel(other.to_owned())),
    };
    validate(&request)?;
    Ok(request)
}

fn from_json<T: serde::de::DeserializeOwned>(body: &[u8]) -> Result<T, KernelError> {
    serde_json::from_slice(body).map_err(|e| KernelError::BadRequest(e.to_string()))
}

/// Checks a request's values: node ids in range, a non-empty graph, a finite damping factor in
/// `[0, 1]`, matrix sizes that match `n`, and every size within its bound.
///
/// # Errors
/// [`KernelError::InvalidInput`] naming the first problem found.
pub fn validate(request: &KernelRequest) -> Result<(), KernelError> {
    match request {
        KernelRequest::PageRank(input) => pagerank::validate(input),
        KernelRequest::MatMul(input) => matmul::validate(input),
        KernelRequest::PageRankSteps(steps) => resumable::validate_steps(steps),
    }
}

/// Runs a request on the CPU, on the calling thread.
///
/// `cancelled` is polled between iterations (PageRank) or row blocks (matmul); once it
/// returns `true` the run stops with [`KernelError::Cancelled`]. Run this on a blocking
/// thread (`tokio::task::spawn_blocking`), not on an async worker.
///
/// # Errors
/// [`KernelError::InvalidInput`] when the request does not pass [`validate`] (it is checked
/// again here, so an unvalidated request is never indexed out of range), and
/// [`KernelError::Cancelled`].
pub fn run_cpu(
    request: &KernelRequest,
    cancelled: &dyn Fn() -> bool,
) -> Result<KernelResponse, KernelError> {
    validate(request)?;
    match request {
        KernelRequest::PageRank(input) => {
            pagerank::run(input, cancelled).map(KernelResponse::PageRank)
        }
        KernelRequest::MatMul(input) => matmul::run(input, cancelled).map(KernelResponse::MatMul),
        KernelRequest::PageRankSteps(steps) => {
            resumable::run_steps(steps, cancelled).map(KernelResponse::PageRankState)
        }
    }
}

#[cfg(test)]
#[allow(clippy::indexing_slicing, clippy::panic)] // tests index what they built and fail loudly
mod tests {
    use super::*;

    #[test]
    fn unknown_kernel_is_typed() {
        assert_eq!(
            parse_request("graph/nope", b"{}"),
            Err(KernelError::UnknownKernel("graph/nope".into()))
        );
    }

    #[test]
    fn malformed_json_and_wrong_shape_are_bad_requests() {
        for body in [
            &b"{"[..],
            b"[]",
            br#"{"num_nodes": "x", "edges": []}"#,
            br#"{"num_nodes": 1, "edges": [], "extra": 1}"#,
        ] {
            let err = parse_request(PAGERANK, body).expect_err("bad body");
            assert!(matches!(err, KernelError::BadRequest(_)), "{err:?}");
        }
        let err = parse_request(MATMUL, br#"{"n": 1, "a": [1]}"#).expect_err("missing b");
        assert!(
            matches!(err, KernelError::BadRequest(ref m) if m.contains('b')),
            "{err:?}"
        );
    }

    #[test]
    fn defaults_fill_in_pagerank_parameters() {
        let req = parse_request(PAGERANK, br#"{"num_nodes": 2, "edges": [[0, 1]]}"#).expect("ok");
        let KernelRequest::PageRank(input) = req else {
            panic!("pagerank")
        };
        assert_eq!(input.max_iterations, 100);
        assert!((input.damping - 0.85).abs() < f64::EPSILON);
        assert!((input.tolerance - 1e-10).abs() < f64::EPSILON);
    }

    #[test]
    fn request_and_response_know_their_kernel() {
        let req = parse_request(MATMUL, br#"{"n": 1, "a": [2], "b": [3]}"#).expect("ok");
        assert_eq!(req.kernel_id(), MATMUL);
        let resp = run_cpu(&req, &|| false).expect("runs");
        assert_eq!(resp.kernel_id(), MATMUL);
        assert_eq!(
            resp,
            KernelResponse::MatMul(MatMulOutput { n: 1, c: vec![6.0] })
        );
    }

    #[test]
    fn run_cpu_validates_again() {
        let req = KernelRequest::MatMul(MatMulInput {
            n: 2,
            a: vec![1.0],
            b: vec![1.0; 4],
        });
        assert!(matches!(
            run_cpu(&req, &|| false),
            Err(KernelError::InvalidInput(_))
        ));
    }
}
