//! Traits a kernel implements to take part in recovery, and the error they return.
//!
//! The chapter's checkpointing example compiles as written once its `use` line names
//! [`CheckpointableKernel`] and this module's [`Result`]:
//!
//! ```
//! use rustkernel_core::traits::{CheckpointableKernel, Result};
//!
//! struct MyKernel {
//!     state: Vec<f32>,
//! }
//!
//! struct MyCheckpoint {
//!     state: Vec<f32>,
//! }
//!
//! impl CheckpointableKernel for MyKernel {
//!     type Checkpoint = MyCheckpoint;
//!
//!     async fn checkpoint(&self) -> Result<Self::Checkpoint> {
//!         Ok(MyCheckpoint { state: self.state.clone() })
//!     }
//!
//!     async fn restore(&mut self, checkpoint: Self::Checkpoint) -> Result<()> {
//!         self.state = checkpoint.state;
//!         Ok(())
//!     }
//! }
//!
//! // An adapter (tokio, embassy) normally awaits these; a no-op waker is enough here because
//! // the futures never wait.
//! fn block_on<F: Future>(future: F) -> F::Output {
//!     let mut future = core::pin::pin!(future);
//!     let mut cx = core::task::Context::from_waker(core::task::Waker::noop());
//!     loop {
//!         if let core::task::Poll::Ready(output) = future.as_mut().poll(&mut cx) {
//!             return output;
//!         }
//!     }
//! }
//!
//! let mut kernel = MyKernel { state: vec![1.0, 2.0] };
//! let saved = block_on(kernel.checkpoint())?;
//! kernel.state.clear();
//! block_on(kernel.restore(saved))?;
//! assert_eq!(kernel.state, [1.0, 2.0]);
//! # Ok::<(), rustkernel_core::traits::KernelError>(())
//! ```

use core::fmt;

use crate::error::{Classify, ErrorKind};

/// The result of a kernel operation; the error defaults to [`KernelError`].
pub type Result<T, E = KernelError> = core::result::Result<T, E>;

/// Why a kernel operation (a checkpoint, a restore) failed.
///
/// A small `Copy` value: the [`ErrorKind`] tells a supervisor what to do next (retry a
/// [`ErrorKind::Transient`] failure, give up on a [`ErrorKind::Permanent`] one), and `code` is
/// a kernel-defined detail for logs, `0` when there is none.
///
/// ```
/// use rustkernel_core::error::ErrorKind;
/// use rustkernel_core::traits::KernelError;
///
/// let error = KernelError::new(ErrorKind::ResourceExhausted).with_code(7);
/// assert_eq!(error.to_string(), "kernel error 7 (resource_exhausted)");
/// ```
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
#[cfg_attr(feature = "serde", derive(serde::Serialize, serde::Deserialize))]
#[cfg_attr(feature = "defmt", derive(defmt::Format))]
pub struct KernelError {
    /// What kind of failure it was.
    pub kind: ErrorKind,
    /// A kernel-defined detail code; `0` means none.
    pub code: u32,
}

impl KernelError {
    /// An error of `kind` with no detail code.
    #[must_use]
    pub const fn new(kind: ErrorKind) -> Self {
        Self { kind, code: 0 }
    }

    /// The same error with a kernel-defined detail code.
    #[must_use]
    pub const fn with_code(self, code: u32) -> Self {
        Self { code, ..self }
    }
}

impl From<ErrorKind> for KernelError {
    fn from(kind: ErrorKind) -> Self {
        Self::new(kind)
    }
}

impl Classify for KernelError {
    fn kind(&self) -> ErrorKind {
        self.kind
    }
}

impl fmt::Display for KernelError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        if self.code == 0 {
            write!(f, "kernel error ({})", self.kind)
        } else {
            write!(f, "kernel error {} ({})", self.code, self.kind)
        }
    }
}

impl core::error::Error for KernelError {}

/// A kernel whose state can be saved and later restored, so recovery can resume it where it
/// stopped instead of starting over.
///
/// Restoring a checkpoint and then taking one must give back an equal checkpoint; a supervisor
/// relies on that when it restores after a restart.
///
/// # Why `impl Future + Send` rather than `async fn`
/// The methods are declared as returning `impl Future<Output = ..> + Send`, and implementors
/// write plain `async fn`s, as in the chapter (see the [module example](self)). The `Send`
/// bound lets an adapter that is generic over the kernel, such as a tokio supervisor, spawn the
/// future on a multi-threaded runtime. It means the kernel must be `Sync` for
/// [`checkpoint`](Self::checkpoint) and `Send` for [`restore`](Self::restore), and the
/// checkpoint `Send`, so state held across an `.await` must be `Send` too; for firmware on a
/// single-threaded executor this holds for plain data.
///
/// To turn a checkpoint into bytes for flash or the wire, see [`crate::checkpoint`].
pub trait CheckpointableKernel {
    /// The saved state.
    type Checkpoint;

    /// Captures the kernel's state.
    ///
    /// # Errors
    /// A [`KernelError`] when the state cannot be captured now (for example a device that is
    /// busy: [`ErrorKind::Transient`]).
    fn checkpoint(&self) -> impl Future<Output = Result<Self::Checkpoint>> + Send;

    /// Replaces the kernel's state with a checkpoint taken earlier.
    ///
    /// # Errors
    /// A [`KernelError`] when the checkpoint cannot be applied (for example one from an
    /// incompatible version: [`ErrorKind::InvalidInput`]).
    fn restore(&mut self, checkpoint: Self::Checkpoint) -> impl Future<Output = Result<()>> + Send;
}

#[cfg(test)]
mod tests {
    extern crate std;
    use super::*;
    use core::pin::pin;
    use core::task::{Context, Poll, Waker};
    use std::string::ToString;

    /// Polls until ready; the futures here are ready at once, and a bound keeps a bug from hanging.
    fn block_on<F: Future>(future: F) -> F::Output {
        let mut future = pin!(future);
        let mut cx = Context::from_waker(Waker::noop());
        (0..1000)
            .find_map(|_| match future.as_mut().poll(&mut cx) {
                Poll::Ready(output) => Some(output),
                Poll::Pending => None,
            })
            .expect("future completes")
    }

    #[derive(Debug, Default)]
    struct Counter {
        count: u64,
        busy: bool,
    }

    #[derive(Debug, PartialEq)]
    struct CounterCheckpoint {
        count: u64,
    }

    impl CheckpointableKernel for Counter {
        type Checkpoint = CounterCheckpoint;

        async fn checkpoint(&self) -> Result<CounterCheckpoint> {
            if self.busy {
                return Err(KernelError::new(ErrorKind::Transient).with_code(1));
            }
            Ok(CounterCheckpoint { count: self.count })
        }

        async fn restore(&mut self, checkpoint: CounterCheckpoint) -> Result<()> {
            if checkpoint.count == u64::MAX {
                return Err(ErrorKind::InvalidInput.into());
            }
            self.count = checkpoint.count;
            Ok(())
        }
    }

    /// What a generic adapter needs: the futures of any implementor are `Send`.
    fn spawnable<K: CheckpointableKernel>(
        kernel: &K,
    ) -> impl Future<Output = Result<K::Checkpoint>> + Send + '_ {
        kernel.checkpoint()
    }

    #[test]
    fn checkpoint_then_restore_gives_the_state_back() {
        let mut kernel = Counter {
            count: 41,
            busy: false,
        };
        let saved = block_on(spawnable(&kernel)).expect("not busy");
        kernel.count = 0;
        block_on(kernel.restore(saved)).expect("valid checkpoint");
        assert_eq!(kernel.count, 41);
        assert_eq!(
            block_on(kernel.checkpoint()),
            Ok(CounterCheckpoint { count: 41 })
        );
    }

    #[test]
    fn failures_are_typed_and_classified() {
        let mut kernel = Counter {
            count: 3,
            busy: true,
        };
        let error = block_on(kernel.checkpoint()).expect_err("busy");
        assert_eq!(error.kind(), ErrorKind::Transient);
        assert_eq!(error.code, 1);
        let error =
            block_on(kernel.restore(CounterCheckpoint { count: u64::MAX })).expect_err("refused");
        assert_eq!(error, KernelError::new(ErrorKind::InvalidInput));
        assert_eq!(kernel.count, 3);
    }

    #[test]
    fn errors_read_well() {
        assert_eq!(
            KernelError::new(ErrorKind::Permanent).to_string(),
            "kernel error (permanent)"
        );
        assert_eq!(
            KernelError::from(ErrorKind::Timeout)
                .with_code(42)
                .to_string(),
            "kernel error 42 (timeout)"
        );
    }

    #[cfg(feature = "serde")]
    #[test]
    fn error_round_trips_through_postcard() {
        let error = KernelError::new(ErrorKind::Unavailable).with_code(u32::MAX);
        let mut buf = [0u8; 16];
        let bytes = postcard::to_slice(&error, &mut buf).expect("fits");
        assert_eq!(
            postcard::from_bytes::<KernelError>(bytes).expect("decodes"),
            error
        );
    }
}
