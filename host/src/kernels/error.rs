//! The one error type of the kernels.

use std::fmt;

use rustkernel_core::error::{Classify, ErrorKind};

/// Why a kernel request was refused or did not finish.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum KernelError {
    /// No kernel has this id.
    UnknownKernel(String),
    /// The body is not JSON of the kernel's input shape (syntax, types, missing or unknown
    /// fields), or not a binary body of its layout (a
    /// [`BinaryError`](super::BinaryError)).
    BadRequest(String),
    /// The input is well formed but its values are not acceptable: a node id out of range, an
    /// empty graph, a non-finite or out-of-range damping factor, a size mismatch, a size over
    /// its bound.
    InvalidInput(String),
    /// The caller cancelled the run (its deadline passed).
    Cancelled,
    /// The kernel failed while running.
    Failed(String),
}

impl fmt::Display for KernelError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            KernelError::UnknownKernel(id) => write!(
                f,
                "unknown kernel `{id}` (known: {})",
                super::KERNEL_IDS.join(", ")
            ),
            KernelError::BadRequest(why) => write!(f, "bad request body: {why}"),
            KernelError::InvalidInput(why) => write!(f, "invalid input: {why}"),
            KernelError::Cancelled => f.write_str("kernel run cancelled"),
            KernelError::Failed(why) => write!(f, "kernel failed: {why}"),
        }
    }
}

impl std::error::Error for KernelError {}

/// Request problems are [`ErrorKind::InvalidInput`] (never retried, never count against a
/// breaker), a cancellation is a [`ErrorKind::Timeout`], a failure is
/// [`ErrorKind::Transient`].
impl Classify for KernelError {
    fn kind(&self) -> ErrorKind {
        match self {
            KernelError::UnknownKernel(_)
            | KernelError::BadRequest(_)
            | KernelError::InvalidInput(_) => ErrorKind::InvalidInput,
            KernelError::Cancelled => ErrorKind::Timeout,
            KernelError::Failed(_) => ErrorKind::Transient,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn kinds_and_messages() {
        let cases = [
            (
                KernelError::UnknownKernel("x/y".into()),
                ErrorKind::InvalidInput,
                "unknown kernel `x/y` (known: graph/pagerank, linalg/matmul)",
            ),
            (
                KernelError::BadRequest("eof".into()),
                ErrorKind::InvalidInput,
                "bad request body: eof",
            ),
            (
                KernelError::InvalidInput("n is 0".into()),
                ErrorKind::InvalidInput,
                "invalid input: n is 0",
            ),
            (
                KernelError::Cancelled,
                ErrorKind::Timeout,
                "kernel run cancelled",
            ),
            (
                KernelError::Failed("boom".into()),
                ErrorKind::Transient,
                "kernel failed: boom",
            ),
        ];
        for (err, kind, msg) in cases {
            assert_eq!(err.kind(), kind);
            assert_eq!(err.to_string(), msg);
        }
    }
}
