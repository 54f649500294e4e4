//! What the frame codec does with `std`: a `Vec` as the scanner's buffer and as the encoder's
//! output, and the blocking driver of the scanner.

extern crate alloc;
extern crate std;

use alloc::vec::Vec;
use std::io::{self, BufRead};

use super::cobs::Sink;
use super::{Found, FrameBuf, Scanner};

/// Grows as the frame needs; the scanner's limit bounds it.
impl FrameBuf for Vec<u8> {
    fn bytes(&self) -> &[u8] {
        self
    }

    fn bytes_mut(&mut self) -> &mut [u8] {
        self
    }

    fn append(&mut self, bytes: &[u8]) -> usize {
        self.extend_from_slice(bytes);
        bytes.len()
    }

    fn clear(&mut self) {
        Vec::clear(self);
    }
}

impl Sink for Vec<u8> {
    fn written(&self) -> usize {
        self.len()
    }

    fn append(&mut self, bytes: &[u8]) -> Option<()> {
        self.extend_from_slice(bytes);
        Some(())
    }

    fn set(&mut self, at: usize, byte: u8) -> Option<()> {
        *self.get_mut(at)? = byte;
        Some(())
    }
}

/// Encodes `value` as a frame of `version` into a new `Vec`, delimiter included: the same bytes
/// as [`encode`](super::encode), in one pass, with no buffer to size beforehand.
///
/// # Errors
/// [`EncodeError::Serialize`](super::EncodeError::Serialize) when postcard refuses the value.
#[cfg(feature = "serde")]
pub fn encode_vec<T: serde::Serialize + ?Sized>(
    version: u8,
    value: &T,
) -> Result<Vec<u8>, super::EncodeError> {
    super::encode_into(version, value, Vec::new())
}

impl<B: FrameBuf> Scanner<B> {
    /// Reads from `reader` until the scanner finds something, and says what
    /// ([`frame`](Self::frame) holds it); `None` when the stream ends first, and then
    /// [`finish`](Self::finish) gives the frame it cut short, if any. Reads only up to the
    /// delimiter: what follows stays in `reader` for the next call.
    ///
    /// # Errors
    /// The reader's errors but `Interrupted`, which is retried.
    pub fn read_blocking<R: BufRead + ?Sized>(
        &mut self,
        reader: &mut R,
    ) -> io::Result<Option<Found>> {
        loop {
            let available = match reader.fill_buf() {
                Ok(bytes) => bytes,
                Err(error) if error.kind() == io::ErrorKind::Interrupted => continue,
                Err(error) => return Err(error),
            };
            if available.is_empty() {
                return Ok(None);
            }
            let (used, found) = self.push(available);
            reader.consume(used);
            if found.is_some() {
                return Ok(found);
            }
        }
    }
}

#[cfg(test)]
#[allow(clippy::indexing_slicing)] // the tests index what they built
mod tests {
    use super::*;
    use alloc::vec;

    #[test]
    fn reads_frames_one_at_a_time_and_leaves_the_rest() {
        let stream = [1, 2, 0, 0, 3, 3, 3, 3, 3, 0, 4, 0, 5];
        let mut reader = io::BufReader::with_capacity(3, &stream[..]);
        let mut scanner = Scanner::new(Vec::new(), 4);
        let mut seen = Vec::new();
        while let Some(found) = scanner.read_blocking(&mut reader).expect("memory") {
            seen.push((found, scanner.frame().to_vec()));
        }
        assert_eq!(
            seen,
            [
                (Found::Frame, vec![1, 2]),
                (Found::TooLong, vec![3, 3, 3]),
                (Found::Frame, vec![4]),
            ]
        );
        assert_eq!(scanner.finish().map(|tail| tail.to_vec()), Some(vec![5]));
        assert_eq!(scanner.read_blocking(&mut reader).expect("memory"), None);
        assert_eq!(scanner.finish(), None);

        // Only up to the delimiter is read.
        let mut reader = &[7u8, 0, 8, 0][..];
        let mut scanner = Scanner::new(Vec::new(), 4);
        assert_eq!(
            scanner.read_blocking(&mut reader).expect("memory"),
            Some(Found::Frame)
        );
        assert_eq!(reader, &[8, 0]);
    }

    #[test]
    fn a_vec_grows_only_as_the_frame_needs() {
        let mut scanner = Scanner::new(Vec::new(), 1 << 30);
        let mut reader = &[9u8; 100][..];
        assert_eq!(scanner.read_blocking(&mut reader).expect("memory"), None);
        let tail = scanner.finish().expect("a tail");
        assert_eq!(tail.len(), 100);
    }

    #[cfg(feature = "serde")]
    #[test]
    fn encode_vec_writes_what_encode_writes() {
        let value = (vec![0u8; 700], "text", 1.5f64);
        let wire = encode_vec(2, &value).expect("encodes");
        let mut buf = vec![0u8; crate::frame::max_frame_len(720)];
        assert_eq!(crate::frame::encode(2, &value, &mut buf), Ok(&wire[..]));
        let mut received = wire.clone();
        let decoded: (Vec<u8>, &str, f64) =
            crate::frame::decode(&mut received, 2).expect("decodes");
        assert_eq!(decoded, value);
    }
}
