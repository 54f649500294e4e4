//! Frames of the core's codec read from a tokio stream: the async driver of the core's
//! [`Scanner`], twin of its blocking `Scanner::read_blocking`.
//!
//! ```
//! use rustkernel_core::frame::{self, Found, Scanner};
//! use rustkernel_tokio::frame::read_frame;
//!
//! # #[tokio::main(flavor = "current_thread")]
//! # async fn main() -> std::io::Result<()> {
//! let mut stream = frame::encode_vec(1, &"hello").expect("encodes");
//! stream.extend(frame::encode_vec(1, &"world").expect("encodes"));
//! let mut reader = tokio::io::BufReader::new(&stream[..]);
//!
//! let mut scanner = Scanner::new(Vec::new(), 64);
//! let mut words = Vec::new();
//! while let Some(found) = read_frame(&mut reader, &mut scanner, |_| {}).await? {
//!     assert_eq!(found, Found::Frame);
//!     words.push(frame::decode::<&str>(scanner.frame(), 1).expect("decodes").to_owned());
//! }
//! assert_eq!(words, ["hello", "world"]);
//! assert_eq!(scanner.finish(), None); // the stream ended between frames
//! # Ok(())
//! # }
//! ```

use std::io;

use rustkernel_core::frame::{Found, FrameBuf, Scanner};
use tokio::io::{AsyncBufRead, AsyncBufReadExt};

/// Reads from `reader` until `scanner` finds something, and says what
/// ([`Scanner::frame`] holds it); `None` when the stream ends first, and then
/// [`Scanner::finish`] gives the frame it cut short, if any. Reads only up to the delimiter:
/// what follows stays in `reader` for the next call.
///
/// `progress` is called with the bytes taken after every chunk, so a caller can tell a peer
/// that is writing a large frame from one that is silent.
///
/// Cancel safe between chunks: bytes taken are in the scanner, so a `read_frame` dropped at an
/// `.await` and called again with the same scanner loses nothing.
///
/// # Errors
/// The reader's errors but `Interrupted`, which is retried.
pub async fn read_frame<R, B>(
    reader: &mut R,
    scanner: &mut Scanner<B>,
    mut progress: impl FnMut(usize),
) -> io::Result<Option<Found>>
where
    R: AsyncBufRead + Unpin + ?Sized,
    B: FrameBuf,
{
    loop {
        let available = match reader.fill_buf().await {
            Ok(bytes) => bytes,
            Err(error) if error.kind() == io::ErrorKind::Interrupted => continue,
            Err(error) => return Err(error),
        };
        if available.is_empty() {
            return Ok(None);
        }
        let (used, found) = scanner.push(available);
        reader.consume(used);
        progress(used);
        if found.is_some() {
            return Ok(found);
        }
    }
}

#[cfg(test)]
#[allow(clippy::indexing_slicing)] // the tests index what they built
mod tests {
    use super::*;

    /// The same stream through the blocking and the async driver, in small reads: the same
    /// findings, the same tails.
    #[tokio::test]
    async fn the_async_driver_finds_what_the_blocking_one_finds() {
        let stream = [1u8, 2, 0, 0, 3, 3, 3, 3, 3, 3, 0, 4, 0, 5, 5];
        let mut blocking = std::io::BufReader::with_capacity(3, &stream[..]);
        let mut sync_scanner = Scanner::new(Vec::new(), 5);
        let mut expected = Vec::new();
        while let Some(found) = sync_scanner.read_blocking(&mut blocking).expect("memory") {
            expected.push((found, sync_scanner.frame().to_vec()));
        }

        let mut reader = tokio::io::BufReader::with_capacity(3, &stream[..]);
        let mut scanner = Scanner::new(Vec::new(), 5);
        let mut seen = Vec::new();
        let mut taken = 0;
        while let Some(found) = read_frame(&mut reader, &mut scanner, |n| taken += n)
            .await
            .expect("memory")
        {
            seen.push((found, scanner.frame().to_vec()));
        }
        assert_eq!(seen, expected);
        assert_eq!(
            seen,
            [
                (Found::Frame, vec![1, 2]),
                (Found::TooLong, vec![3, 3, 3, 3]),
                (Found::Frame, vec![4]),
            ]
        );
        assert_eq!(taken, stream.len());
        assert_eq!(scanner.finish(), sync_scanner.finish());
    }

    #[tokio::test]
    async fn progress_comes_with_every_chunk_of_a_long_frame() {
        let stream = vec![0x55u8; 1000];
        let mut reader = tokio::io::BufReader::with_capacity(64, &stream[..]);
        let mut scanner = Scanner::new(Vec::new(), 257);
        let mut chunks = 0;
        let found = read_frame(&mut reader, &mut scanner, |_| chunks += 1).await;
        assert_eq!(found.expect("memory"), Some(Found::TooLong));
        assert_eq!(scanner.frame().len(), 256);
        assert_eq!(chunks, 5, "four whole chunks, then the rest of the limit");
    }
}
