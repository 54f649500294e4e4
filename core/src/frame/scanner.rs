//! The delimiter scanner: splits a byte stream, fed in pieces of any size, into frames.

use super::DELIMITER;

/// Where a [`Scanner`] keeps the frame it is collecting: a fixed-capacity `heapless::Vec`, a
/// `Vec` with the `std` feature (grown only as a frame needs, up to the scanner's limit), or a
/// `&mut` to either, so the caller keeps the frame after the scanner is gone.
pub trait FrameBuf {
    /// The bytes held.
    fn bytes(&self) -> &[u8];
    /// The bytes held, to decode in place.
    fn bytes_mut(&mut self) -> &mut [u8];
    /// Appends as many of `bytes` as fit and returns how many that was.
    fn append(&mut self, bytes: &[u8]) -> usize;
    /// Drops every byte.
    fn clear(&mut self);
}

impl<const N: usize> FrameBuf for heapless::Vec<u8, N> {
    fn bytes(&self) -> &[u8] {
        self
    }

    fn bytes_mut(&mut self) -> &mut [u8] {
        self
    }

    fn append(&mut self, bytes: &[u8]) -> usize {
        let n = bytes.len().min(N.saturating_sub(self.len()));
        match bytes.get(..n).map(|fit| self.extend_from_slice(fit)) {
            Some(Ok(())) => n,
            _ => 0,
        }
    }

    fn clear(&mut self) {
        heapless::Vec::clear(self);
    }
}

impl<B: FrameBuf + ?Sized> FrameBuf for &mut B {
    fn bytes(&self) -> &[u8] {
        (**self).bytes()
    }

    fn bytes_mut(&mut self) -> &mut [u8] {
        (**self).bytes_mut()
    }

    fn append(&mut self, bytes: &[u8]) -> usize {
        (**self).append(bytes)
    }

    fn clear(&mut self) {
        (**self).clear();
    }
}

/// What a [`Scanner`] found in the bytes it was fed.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
#[cfg_attr(feature = "defmt", derive(defmt::Format))]
pub enum Found {
    /// A frame ended: its bytes (delimiter excluded) are in [`Scanner::frame`] until the next
    /// push.
    Frame,
    /// The frame outgrew the limit (or the buffer): its first bytes are in [`Scanner::frame`]
    /// until the next push, the rest up to the next delimiter is skipped unread.
    TooLong,
}

/// Splits a byte stream into frames at each delimiter (`0x00`, or the byte given to
/// [`with_delimiter`](Self::with_delimiter)), keeping at most one frame in its [`FrameBuf`].
///
/// Sans-IO: feed it the bytes that arrived ([`push`](Self::push)), in pieces of any size; it
/// says how many it took and whether a frame ended. Delimiters in a row are an idle line, not
/// empty frames. A frame longer than the limit is reported once ([`Found::TooLong`]) and skipped
/// to the next delimiter, where scanning goes on, so memory stays bounded whatever comes in.
/// `read_blocking` (feature `std`) and `rustkernel_tokio::frame::read_frame` drive it from a
/// reader.
///
/// ```
/// use rustkernel_core::frame::{Found, Scanner};
///
/// let mut scanner = Scanner::new(heapless::Vec::<u8, 8>::new(), 4);
/// let mut input: &[u8] = &[1, 2, 0, 0, 9, 9, 9, 9, 9, 0, 3];
/// let mut seen = Vec::new();
/// while !input.is_empty() {
///     let (used, found) = scanner.push(input);
///     input = &input[used..];
///     match found {
///         Some(Found::Frame) => seen.push(scanner.frame().to_vec()),
///         Some(Found::TooLong) => seen.push(b"too long".to_vec()),
///         None => {}
///     }
/// }
/// // The stream ended in the middle of a frame.
/// assert_eq!(scanner.finish().as_deref(), Some(&[3u8][..]));
/// assert_eq!(seen, [vec![1, 2], b"too long".to_vec()]);
/// ```
#[derive(Debug)]
pub struct Scanner<B> {
    buf: B,
    /// The most frame bytes kept: the limit less the delimiter.
    max_body: usize,
    delimiter: u8,
    /// Skipping the rest of a frame that was too long.
    skipping: bool,
    /// `buf` holds what the last push found; the next push starts afresh.
    found: bool,
    /// Stream offset of the next byte to come.
    offset: u64,
    /// Stream offset of the current (or just found) frame's first byte.
    frame_offset: u64,
}

impl<B: FrameBuf> Scanner<B> {
    /// A scanner at the start of a stream that splits at `0x00` and accepts frames of at most
    /// `max_len` bytes, delimiter included (as the formats' `MAX_FRAME_LEN`s count them; a
    /// `max_len` below 2 refuses every frame). `buf` is emptied first; a frame longer than it
    /// holds is too long as well.
    #[must_use]
    pub fn new(buf: B, max_len: usize) -> Self {
        Self::with_delimiter(buf, max_len, DELIMITER)
    }

    /// As [`new`](Self::new), splitting at `delimiter` (`b'\n'` splits text into lines of at
    /// most `max_len - 1` bytes).
    #[must_use]
    pub fn with_delimiter(mut buf: B, max_len: usize, delimiter: u8) -> Self {
        buf.clear();
        Self {
            buf,
            max_body: max_len.saturating_sub(1),
            delimiter,
            skipping: false,
            found: false,
            offset: 0,
            frame_offset: 0,
        }
    }

    /// Feeds the next bytes of the stream. Returns how many of them it took (the rest, if any,
    /// comes after what it found: feed it again) and what it found, if anything.
    ///
    /// It takes bytes up to and including the first delimiter, or all of `input` when there is
    /// none; when the frame grows too long, the bytes that still fit. A non-empty `input`
    /// always has at least one byte taken or something found.
    pub fn push(&mut self, input: &[u8]) -> (usize, Option<Found>) {
        if self.found {
            self.found = false;
            self.buf.clear();
            if !self.skipping {
                self.frame_offset = self.offset;
            }
        }
        let (body, ends) = match input.iter().position(|&b| b == self.delimiter) {
            Some(at) => (input.get(..at).unwrap_or_default(), true),
            None => (input, false),
        };
        let through = body.len().saturating_add(usize::from(ends));
        if self.skipping {
            self.advance(through);
            if ends {
                self.skipping = false;
                self.frame_offset = self.offset;
            }
            return (through, None);
        }
        let room = self.max_body.saturating_sub(self.buf.bytes().len());
        let fit = body.get(..room.min(body.len())).unwrap_or_default();
        let kept = self.buf.append(fit);
        if kept < body.len() {
            // Too long for the limit or for the buffer: keep the head, skip the rest.
            self.advance(kept);
            self.skipping = true;
            self.found = true;
            return (kept, Some(Found::TooLong));
        }
        self.advance(through);
        if !ends {
            return (through, None);
        }
        if self.buf.bytes().is_empty() {
            // Delimiters in a row: an idle line.
            self.frame_offset = self.offset;
            return (through, None);
        }
        self.found = true;
        (through, Some(Found::Frame))
    }

    /// The stream ended: the bytes of a frame whose delimiter never came, if there are any
    /// (`None` after a frame, an idle line or a frame too long). The scanner then starts
    /// afresh, as at the start of a stream.
    pub fn finish(&mut self) -> Option<&mut [u8]> {
        let pending = !self.found && !self.skipping && !self.buf.bytes().is_empty();
        if !pending {
            self.buf.clear();
        }
        self.found = pending;
        self.skipping = false;
        pending.then(|| self.buf.bytes_mut())
    }

    /// The frame found by the last push (or the head of the frame too long, or what
    /// [`finish`](Self::finish) gave), to decode in place; what has been collected of the next
    /// frame otherwise.
    pub fn frame(&mut self) -> &mut [u8] {
        self.buf.bytes_mut()
    }

    /// Where the frame of [`frame`](Self::frame) starts in the stream: bytes fed before it.
    #[must_use]
    pub fn frame_offset(&self) -> u64 {
        self.frame_offset
    }

    /// Bytes taken from the stream so far.
    #[must_use]
    pub fn offset(&self) -> u64 {
        self.offset
    }

    /// The longest frame accepted, delimiter included.
    #[must_use]
    pub fn max_len(&self) -> usize {
        self.max_body.saturating_add(1)
    }

    fn advance(&mut self, taken: usize) {
        self.offset = self.offset.saturating_add(taken as u64);
    }
}

#[cfg(test)]
#[allow(clippy::indexing_slicing)] // the tests index what they built
mod tests {
    extern crate std;
    use super::*;
    use std::vec;
    use std::vec::Vec;

    /// Each frame's offset and bytes (`None` for a frame too long).
    type Frames = Vec<(u64, Option<Vec<u8>>)>;

    /// Everything `input` holds, fed in pieces of `piece` bytes: frames and the unfinished tail.
    fn scan<B: FrameBuf>(
        scanner: &mut Scanner<B>,
        input: &[u8],
        piece: usize,
    ) -> (Frames, Option<Vec<u8>>) {
        let mut found = Vec::new();
        for mut chunk in input.chunks(piece) {
            while !chunk.is_empty() {
                let (used, event) = scanner.push(chunk);
                chunk = &chunk[used..];
                let at = scanner.frame_offset();
                match event {
                    Some(Found::Frame) => found.push((at, Some(scanner.frame().to_vec()))),
                    Some(Found::TooLong) => found.push((at, None)),
                    None => assert!(used > 0, "no progress"),
                }
            }
        }
        let tail = scanner.finish().map(|t| t.to_vec());
        (found, tail)
    }

    #[test]
    fn frames_in_any_pieces() {
        let input = [0, 1, 2, 0, 0, 0, 3, 0, 4, 5, 6, 7];
        for piece in 1..=input.len() {
            let mut scanner = Scanner::new(heapless::Vec::<u8, 16>::new(), 16);
            assert_eq!(
                scan(&mut scanner, &input, piece),
                (
                    vec![(1, Some(vec![1, 2])), (6, Some(vec![3]))],
                    Some(vec![4, 5, 6, 7])
                ),
                "pieces of {piece}"
            );
            assert_eq!(scanner.offset(), input.len() as u64);
        }
    }

    #[test]
    fn the_limit_counts_the_delimiter_and_a_long_frame_is_skipped_once() {
        // At most 3 bytes and the delimiter.
        let input = [1, 2, 3, 0, 1, 2, 3, 4, 5, 6, 0, 7, 0, 8, 8, 8, 8];
        for piece in 1..=input.len() {
            let mut scanner = Scanner::new(heapless::Vec::<u8, 16>::new(), 4);
            let (found, tail) = scan(&mut scanner, &input, piece);
            assert_eq!(
                found,
                vec![
                    (0, Some(vec![1, 2, 3])),
                    (4, None),
                    (11, Some(vec![7])),
                    (13, None)
                ],
                "pieces of {piece}"
            );
            assert_eq!(tail, None, "a frame too long is not a tail");
        }
        // The head of a frame too long stays readable until the next push.
        let mut scanner = Scanner::new(heapless::Vec::<u8, 16>::new(), 4);
        assert_eq!(scanner.push(&[9, 8, 7, 6, 5]), (3, Some(Found::TooLong)));
        assert_eq!(scanner.frame(), &[9, 8, 7]);
        assert_eq!(scanner.push(&[6, 5]), (2, None));
        assert_eq!(scanner.frame(), &[] as &[u8]);
    }

    #[test]
    fn a_small_buffer_is_a_limit_too() {
        let mut scanner = Scanner::new(heapless::Vec::<u8, 2>::new(), 100);
        assert_eq!(
            scan(&mut scanner, &[1, 2, 0, 1, 2, 3, 0, 4], 3),
            (vec![(0, Some(vec![1, 2])), (3, None)], Some(vec![4]))
        );
        let mut scanner = Scanner::new(heapless::Vec::<u8, 2>::new(), 1);
        assert_eq!(scanner.max_len(), 1);
        assert_eq!(scanner.push(&[1, 0]), (0, Some(Found::TooLong)));
        assert_eq!(scanner.push(&[1, 0]), (2, None));
        assert_eq!(scanner.push(&[0, 0]), (1, None));
    }

    #[test]
    fn other_delimiters_split_lines() {
        let mut scanner = Scanner::with_delimiter(heapless::Vec::<u8, 64>::new(), 5, b'\n');
        let (found, tail) = scan(&mut scanner, b"one\n\ntwo 2\nthree\nfour", 2);
        assert_eq!(
            found,
            vec![(0, Some(b"one".to_vec())), (5, None), (11, None)]
        );
        assert_eq!(tail, Some(b"four".to_vec()));
    }

    #[test]
    fn a_borrowed_buffer_keeps_the_frame() {
        let mut buf = heapless::Vec::<u8, 8>::from_slice(&[7, 7]).expect("fits");
        let mut scanner = Scanner::new(&mut buf, 8);
        assert_eq!(scanner.frame(), &[] as &[u8], "emptied first");
        assert_eq!(scanner.push(&[5, 6, 0, 1]), (3, Some(Found::Frame)));
        assert_eq!(buf.as_slice(), &[5, 6]);
    }
}
