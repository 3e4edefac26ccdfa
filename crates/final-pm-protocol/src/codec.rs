//! Newline-delimited framing with a length limit.
//!
//! A peer that never sends a newline must not make us buffer without bound, and
//! one overlong or malformed line must not end the connection: the decoder
//! turns an overlong line into a [`Frame::TooLong`] item (discarding its bytes
//! up to the next newline) instead of an error, because a `FramedRead` stops
//! for good after its decoder's first error.

use std::io;
use std::marker::PhantomData;

use serde::Serialize;
use tokio_util::bytes::{Bytes, BytesMut};
use tokio_util::codec::{Decoder, Encoder};

use crate::MAX_LINE_LENGTH;

/// Buffer capacity kept while an overlong line is being discarded.
const DISCARD_CAPACITY: usize = 64 * 1024;

/// One decoded unit.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Frame {
    /// A complete line without its `\n` (and without a trailing `\r`).
    Line(Bytes),
    /// A line longer than the limit; its bytes were dropped.
    TooLong {
        /// How many bytes the line had (at least), without the newline.
        len: usize,
    },
}

/// Splits a byte stream into lines of at most `max` bytes and writes values as
/// one compact JSON document per line.
#[derive(Debug)]
pub struct JsonLinesCodec<T> {
    max: usize,
    /// How far the buffer was already searched for a newline.
    searched: usize,
    /// Bytes of the current overlong line dropped so far; `Some` while discarding.
    discarding: Option<usize>,
    _out: PhantomData<fn(&T)>,
}

impl<T> JsonLinesCodec<T> {
    /// A codec with the protocol's limit, [`MAX_LINE_LENGTH`].
    pub fn new() -> Self {
        Self::with_max_length(MAX_LINE_LENGTH)
    }

    /// A codec with a custom limit (tests, or peers with other needs).
    pub fn with_max_length(max: usize) -> Self {
        Self {
            max,
            searched: 0,
            discarding: None,
            _out: PhantomData,
        }
    }
}

impl<T> Default for JsonLinesCodec<T> {
    fn default() -> Self {
        Self::new()
    }
}

impl<T> Decoder for JsonLinesCodec<T> {
    type Item = Frame;
    type Error = io::Error;

    fn decode(&mut self, buf: &mut BytesMut) -> io::Result<Option<Frame>> {
        loop {
            if let Some(dropped) = self.discarding {
                match memchr(&buf[..]) {
                    Some(pos) => {
                        let _ = buf.split_to(pos + 1);
                        self.discarding = None;
                        self.searched = 0;
                        return Ok(Some(Frame::TooLong { len: dropped + pos }));
                    }
                    None => {
                        self.discarding = Some(dropped + buf.len());
                        buf.clear();
                        // The buffer grew to the limit (and, growing, to
                        // twice it) before discarding began. Keeping that
                        // allocation would let every client that sends one
                        // overlong line pin it for the connection's life.
                        if buf.capacity() > DISCARD_CAPACITY {
                            *buf = BytesMut::with_capacity(DISCARD_CAPACITY);
                        }
                        return Ok(None);
                    }
                }
            }
            let limit = buf.len().min(self.max + 1);
            match memchr(&buf[self.searched..limit]) {
                Some(offset) => {
                    let pos = self.searched + offset;
                    let mut line = buf.split_to(pos + 1);
                    line.truncate(pos);
                    if line.last() == Some(&b'\r') {
                        line.truncate(pos - 1);
                    }
                    self.searched = 0;
                    return Ok(Some(Frame::Line(line.freeze())));
                }
                None if buf.len() > self.max => {
                    // Over the limit with no newline in sight: start dropping.
                    self.discarding = Some(0);
                    self.searched = 0;
                }
                None => {
                    self.searched = buf.len();
                    return Ok(None);
                }
            }
        }
    }

    fn decode_eof(&mut self, buf: &mut BytesMut) -> io::Result<Option<Frame>> {
        match self.decode(buf)? {
            Some(frame) => Ok(Some(frame)),
            None => {
                // A last line without newline still counts; a half-dropped one
                // is reported as too long.
                if let Some(dropped) = self.discarding.take() {
                    return Ok(Some(Frame::TooLong {
                        len: dropped + buf.len(),
                    }));
                }
                if buf.is_empty() {
                    return Ok(None);
                }
                self.searched = 0;
                let line = buf.split_to(buf.len());
                Ok(Some(Frame::Line(line.freeze())))
            }
        }
    }
}

impl<T: Serialize> Encoder<T> for JsonLinesCodec<T> {
    type Error = io::Error;

    fn encode(&mut self, item: T, dst: &mut BytesMut) -> io::Result<()> {
        // Into a `Vec` first: serde_json writes a message in many small
        // pieces (every quote, key and comma), which a `Vec` appends inline,
        // while `BytesMut`'s writer takes a call and a capacity check for
        // each; for an `info` of 50 processes that was a third of encoding.
        let mut line = Vec::with_capacity(256);
        serde_json::to_writer(&mut line, &item).map_err(io::Error::other)?;
        line.push(b'\n');
        dst.extend_from_slice(&line);
        Ok(())
    }
}

/// The first newline: with SIMD, since an `info` of 50 processes is ~19 KB
/// to search (a byte-at-a-time loop took 1% of a whole `final-pm show`).
fn memchr(haystack: &[u8]) -> Option<usize> {
    memchr::memchr(b'\n', haystack)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn decode_all(codec: &mut JsonLinesCodec<()>, chunks: &[&[u8]]) -> Vec<Frame> {
        let mut buf = BytesMut::new();
        let mut out = Vec::new();
        for chunk in chunks {
            buf.extend_from_slice(chunk);
            while let Some(frame) = codec.decode(&mut buf).unwrap() {
                out.push(frame);
            }
        }
        if let Some(frame) = codec.decode_eof(&mut buf).unwrap() {
            out.push(frame);
        }
        out
    }

    fn line(s: &str) -> Frame {
        Frame::Line(Bytes::copy_from_slice(s.as_bytes()))
    }

    #[test]
    fn lines_split_across_reads_are_joined() {
        let mut codec = JsonLinesCodec::with_max_length(100);
        let frames = decode_all(&mut codec, &[b"{\"ty", b"pe\":1}\n{\"a\"", b":2}\r\n"]);
        assert_eq!(frames, vec![line("{\"type\":1}"), line("{\"a\":2}")]);
    }

    #[test]
    fn blank_lines_are_empty_frames() {
        let mut codec = JsonLinesCodec::with_max_length(100);
        assert_eq!(
            decode_all(&mut codec, &[b"\n\nx\n"]),
            vec![line(""), line(""), line("x")]
        );
    }

    #[test]
    fn overlong_line_is_dropped_and_the_next_line_survives() {
        let mut codec = JsonLinesCodec::with_max_length(8);
        let frames = decode_all(&mut codec, &[b"0123456789", b"abcdef", b"ghi\nok\n"]);
        assert_eq!(frames, vec![Frame::TooLong { len: 19 }, line("ok")]);
    }

    #[test]
    fn line_of_exactly_the_limit_passes() {
        let mut codec = JsonLinesCodec::with_max_length(4);
        assert_eq!(
            decode_all(&mut codec, &[b"abcd\nabcde\n"]),
            vec![line("abcd"), Frame::TooLong { len: 5 }]
        );
    }

    #[test]
    fn invalid_utf8_is_passed_through_for_the_caller_to_refuse() {
        let mut codec = JsonLinesCodec::with_max_length(16);
        let frames = decode_all(&mut codec, &[b"\xff\xfe\n"]);
        assert_eq!(frames, vec![Frame::Line(Bytes::from_static(b"\xff\xfe"))]);
    }

    #[test]
    fn unterminated_last_line_is_returned_at_eof() {
        let mut codec = JsonLinesCodec::with_max_length(16);
        assert_eq!(
            decode_all(&mut codec, &[b"a\nbc"]),
            vec![line("a"), line("bc")]
        );
    }

    #[test]
    fn buffer_never_holds_more_than_the_limit_while_discarding() {
        let mut codec: JsonLinesCodec<()> = JsonLinesCodec::with_max_length(8);
        let mut buf = BytesMut::new();
        for _ in 0..1000 {
            buf.extend_from_slice(&[b'x'; 64]);
            assert_eq!(codec.decode(&mut buf).unwrap(), None);
            assert!(buf.len() <= 64);
        }
    }

    #[test]
    fn discarding_gives_back_the_memory_of_the_overlong_line() {
        let mut codec: JsonLinesCodec<()> = JsonLinesCodec::with_max_length(1024 * 1024);
        let mut buf = BytesMut::new();
        for _ in 0..40 {
            buf.extend_from_slice(&[b'y'; 64 * 1024]);
            assert_eq!(codec.decode(&mut buf).unwrap(), None);
        }
        assert!(buf.capacity() <= DISCARD_CAPACITY, "{}", buf.capacity());
        buf.extend_from_slice(b"y\n{}\n");
        assert_eq!(
            codec.decode(&mut buf).unwrap(),
            Some(Frame::TooLong {
                len: 40 * 64 * 1024 + 1
            })
        );
        assert_eq!(codec.decode(&mut buf).unwrap(), Some(line("{}")));
    }

    #[test]
    fn encoder_writes_one_compact_line() {
        let mut codec = JsonLinesCodec::new();
        let mut buf = BytesMut::new();
        codec
            .encode(serde_json::json!({"type": "info"}), &mut buf)
            .unwrap();
        assert_eq!(&buf[..], b"{\"type\":\"info\"}\n");
    }
}
