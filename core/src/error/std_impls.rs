//! [`Classify`] for the standard library's errors (feature `std`).
//!
//! No runtime is named here: tokio's `Elapsed` is classified by the tokio adapter
//! (`rustkernel_tokio::classify`).

extern crate alloc;
extern crate std;

use alloc::boxed::Box;
use alloc::string::String;
use std::io;

use super::{Classify, ErrorKind};

/// The [`ErrorKind`] of an [`io::ErrorKind`]; the table `Classify for io::Error` uses.
///
/// | `io::ErrorKind` | kind | why |
/// |---|---|---|
/// | `TimedOut` | `Timeout` | the peer did not answer in time |
/// | `Interrupted`, `WouldBlock`, `ConnectionReset`, `ConnectionAborted`, `BrokenPipe`, `UnexpectedEof`, `WriteZero` | `Transient` | the same call may well succeed again |
/// | `ConnectionRefused`, `NotConnected`, `AddrNotAvailable`, `AddrInUse`, `NetworkUnreachable`, `HostUnreachable`, `NetworkDown`, `ResourceBusy` | `Unavailable` | the callee is down or unreachable |
/// | `OutOfMemory`, `StorageFull`, `QuotaExceeded`, `FileTooLarge` | `ResourceExhausted` | out of memory, disk or quota |
/// | `InvalidInput`, `InvalidData`, `InvalidFilename`, `ArgumentListTooLong` | `InvalidInput` | the request itself is wrong |
/// | `NotFound`, `PermissionDenied`, `AlreadyExists`, `Unsupported`, `ReadOnlyFilesystem`, `NotADirectory`, `IsADirectory`, `DirectoryNotEmpty`, `CrossesDevices`, `TooManyLinks`, `NotSeekable` | `Permanent` | repeating the call cannot fix it |
/// | anything else (`Other`, kinds added later) | `Transient` | the safe default: retried, and counted by breakers |
#[must_use]
pub fn io_error_kind(kind: io::ErrorKind) -> ErrorKind {
    use io::ErrorKind as Io;
    match kind {
        Io::TimedOut => ErrorKind::Timeout,
        Io::ConnectionRefused
        | Io::NotConnected
        | Io::AddrNotAvailable
        | Io::AddrInUse
        | Io::NetworkUnreachable
        | Io::HostUnreachable
        | Io::NetworkDown
        | Io::ResourceBusy => ErrorKind::Unavailable,
        Io::OutOfMemory | Io::StorageFull | Io::QuotaExceeded | Io::FileTooLarge => {
            ErrorKind::ResourceExhausted
        }
        Io::InvalidInput | Io::InvalidData | Io::InvalidFilename | Io::ArgumentListTooLong => {
            ErrorKind::InvalidInput
        }
        Io::NotFound
        | Io::PermissionDenied
        | Io::AlreadyExists
        | Io::Unsupported
        | Io::ReadOnlyFilesystem
        | Io::NotADirectory
        | Io::IsADirectory
        | Io::DirectoryNotEmpty
        | Io::CrossesDevices
        | Io::TooManyLinks
        | Io::NotSeekable => ErrorKind::Permanent,
        _ => ErrorKind::Transient,
    }
}

/// By the error's [`io::ErrorKind`], see [`io_error_kind`].
impl Classify for io::Error {
    fn kind(&self) -> ErrorKind {
        io_error_kind(io::Error::kind(self))
    }
}

/// By [`std_error_kind`]: an [`io::Error`] inside is classified as one, anything else is
/// transient.
impl Classify for Box<dyn std::error::Error + Send + Sync> {
    fn kind(&self) -> ErrorKind {
        std_error_kind(self.as_ref())
    }
}

/// As for `Box<dyn Error + Send + Sync>`.
impl Classify for Box<dyn std::error::Error> {
    fn kind(&self) -> ErrorKind {
        std_error_kind(self.as_ref())
    }
}

/// The [`ErrorKind`] of any standard error: an [`io::Error`] by its kind ([`io_error_kind`]),
/// anything else [`ErrorKind::Transient`]. The rule of `Classify` for boxed errors, for a
/// runtime adapter to build on (the tokio adapter adds tokio's `Elapsed` as a timeout).
#[must_use]
pub fn std_error_kind(error: &(dyn std::error::Error + 'static)) -> ErrorKind {
    match error.downcast_ref::<io::Error>() {
        Some(io) => Classify::kind(io),
        None => ErrorKind::Transient,
    }
}

/// A message as the error: transient.
impl Classify for String {}

/// A message as the error: transient.
impl Classify for &'static str {}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn io_errors_classify_by_their_kind() {
        let cases = [
            (io::ErrorKind::TimedOut, ErrorKind::Timeout),
            (io::ErrorKind::ConnectionReset, ErrorKind::Transient),
            (io::ErrorKind::ConnectionRefused, ErrorKind::Unavailable),
            (io::ErrorKind::OutOfMemory, ErrorKind::ResourceExhausted),
            (io::ErrorKind::InvalidData, ErrorKind::InvalidInput),
            (io::ErrorKind::NotFound, ErrorKind::Permanent),
            (io::ErrorKind::Other, ErrorKind::Transient),
        ];
        for (io_kind, kind) in cases {
            assert_eq!(
                Classify::kind(&io::Error::from(io_kind)),
                kind,
                "{io_kind:?}"
            );
        }
    }

    #[test]
    fn boxed_errors_look_inside() {
        let boxed: Box<dyn std::error::Error + Send + Sync> =
            Box::new(io::Error::from(io::ErrorKind::PermissionDenied));
        assert_eq!(boxed.kind(), ErrorKind::Permanent);
        let other: Box<dyn std::error::Error + Send + Sync> = "no idea".into();
        assert_eq!(other.kind(), ErrorKind::Transient);
    }
}
