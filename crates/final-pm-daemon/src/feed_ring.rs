//! Shared memory between the daemon and its builtin file-logger, so that
//! the formatted log lines cross from one to the other without a pipe.
//!
//! Why: a pipe costs a copy into the kernel on the writing side and one out
//! of it on the reading side, plus a page allocated and freed for every 4 KiB.
//! Here the daemon formats the lines straight into the ring and the logger
//! writes the file from the mapping: for 2,000,000 lines of 100 bytes
//! (300 MB once formatted) the daemon and its logger used 0.57 s of CPU
//! time instead of 0.83 s through the pipe, and 0.39 s once the lines were
//! formatted in place and counted in the header (bench/README.md, "Log
//! throughput").
//!
//! The ring is a `memfd` that the logger inherits as fd [`RING_FD`] (named
//! by `FINAL_PM_FEED_RING`). Its first page holds one counter, the stream
//! position up to which the logger is done with the data (it stores it
//! after writing the file); the data area follows. The daemon fills a
//! chunk at stream position `start` (at `start % capacity` in the data area,
//! never split across the end: when the room before the end is short, the
//! chunk starts the next turn, and the gap counts as used), then writes a
//! header line `#<start> <len>` on the logger's stdin, or
//! `#<start> <len> <lines>` when the chunk is `lines` formatted lines (one
//! record each), which the logger then writes without looking at them. The
//! logger reads headers and plain lines from stdin in order, so the order
//! of records is the order on stdin. Records that do not fit in the free
//! part of the ring go on stdin as they are, so nothing ever waits for the
//! ring or overwrites data the logger has not written yet.

use std::io;
use std::os::fd::{AsFd, AsRawFd, BorrowedFd, FromRawFd, OwnedFd, RawFd};
use std::sync::atomic::{AtomicU64, Ordering};

use nix::libc;

/// The fd number the logger finds the ring on.
pub(crate) const RING_FD: RawFd = 4;
/// The variable that tells the logger it has a ring (its value: the fd).
pub(crate) const RING_VAR: &str = "FINAL_PM_FEED_RING";
/// Bytes of data: twice what the daemon keeps in flight to a logger, so a
/// chunk nearly always fits (see `logging::FEED_WINDOW`).
const CAPACITY: usize = 2 * 1024 * 1024;
/// The counter's page.
const HEADER: usize = 4096;

/// A shared mapping of a memfd, unmapped on drop.
#[derive(Debug)]
struct Mapping {
    base: *mut u8,
    len: usize,
    fd: OwnedFd,
}

// SAFETY: the mapping is plain memory owned by this value; the pointer is
// only used through `&self`/`&mut self` methods below.
#[allow(unsafe_code)]
unsafe impl Send for Mapping {}

impl Mapping {
    #[allow(unsafe_code)]
    fn map(fd: OwnedFd, len: usize) -> io::Result<Self> {
        // SAFETY: a fresh shared mapping of `len` bytes of a file at least
        // that long; nothing else in this process refers to that range.
        let base = unsafe {
            libc::mmap(
                std::ptr::null_mut(),
                len,
                libc::PROT_READ | libc::PROT_WRITE,
                libc::MAP_SHARED,
                fd.as_raw_fd(),
                0,
            )
        };
        if base == libc::MAP_FAILED {
            return Err(io::Error::last_os_error());
        }
        Ok(Self {
            base: base.cast(),
            len,
            fd,
        })
    }

    /// The counter in the first page.
    #[allow(unsafe_code)]
    fn consumed(&self) -> &AtomicU64 {
        // SAFETY: the mapping is page-aligned and at least a page long, so
        // its first 8 bytes are a valid, aligned u64 for as long as `self`
        // lives; both processes only touch them atomically.
        unsafe { AtomicU64::from_ptr(self.base.cast()) }
    }
}

impl Drop for Mapping {
    #[allow(unsafe_code)]
    fn drop(&mut self) {
        // SAFETY: `base`/`len` are exactly what mmap returned, and no
        // reference into the mapping outlives `self`.
        unsafe {
            libc::munmap(self.base.cast(), self.len);
        }
    }
}

/// The daemon's side: places chunks.
#[derive(Debug)]
pub(crate) struct Ring {
    mapping: Mapping,
    /// The stream position after the last chunk placed.
    next: u64,
    /// Where the chunk being filled starts (see [`Ring::space`]).
    start: u64,
}

impl Ring {
    /// A new, empty ring.
    #[allow(unsafe_code)]
    pub(crate) fn create() -> io::Result<Self> {
        // SAFETY: the name is a valid C string; the flags are valid.
        let raw = unsafe { libc::memfd_create(c"final-pm-feed".as_ptr(), libc::MFD_CLOEXEC) };
        if raw < 0 {
            return Err(io::Error::last_os_error());
        }
        // SAFETY: memfd_create returned a new fd that nothing else owns.
        let fd = unsafe { OwnedFd::from_raw_fd(raw) };
        let len = HEADER + CAPACITY;
        nix::unistd::ftruncate(&fd, len as i64).map_err(io::Error::from)?;
        Ok(Self {
            mapping: Mapping::map(fd, len)?,
            next: 0,
            start: 0,
        })
    }

    /// The memfd, for the logger to inherit.
    pub(crate) fn fd(&self) -> BorrowedFd<'_> {
        self.mapping.fd.as_fd()
    }

    /// The free part of the ring where the next chunk goes, to be filled
    /// from its start and then [`commit`](Self::commit)ted: the room after
    /// the last chunk, or at the start of the next turn when that is larger
    /// and the room here is under `want` bytes. Empty when the logger is a
    /// whole ring behind.
    #[allow(unsafe_code)]
    pub(crate) fn space(&mut self, want: usize) -> &mut [u8] {
        let capacity = CAPACITY as u64;
        // Nothing at or after `limit` may be written: the logger has not
        // written it out yet, one turn before.
        let limit = self.mapping.consumed().load(Ordering::Acquire) + capacity;
        let mut start = self.next;
        let turn_end = start + (capacity - start % capacity);
        let here = turn_end.min(limit).saturating_sub(start);
        if here < want as u64 && limit > turn_end && (limit - turn_end).min(capacity) > here {
            start = turn_end;
        }
        let len = (start + (capacity - start % capacity))
            .min(limit)
            .saturating_sub(start) as usize;
        self.start = start;
        let offset = HEADER + (start % capacity) as usize;
        // SAFETY: `offset + len` is within the mapping (the range does not
        // cross the end of the data area), the logger is done with it (it
        // is below `limit`) and reads it only after the header that
        // `commit` makes for it, and `&mut self` keeps it to one writer.
        unsafe { std::slice::from_raw_parts_mut(self.mapping.base.add(offset), len) }
    }

    /// Hands the first `len` bytes of the last [`space`](Self::space) to
    /// the logger: returns the header line to send for them, which counts
    /// `lines` if given (see the module docs).
    pub(crate) fn commit(&mut self, len: usize, lines: Option<u64>) -> String {
        let start = self.start;
        self.next = start + len as u64;
        match lines {
            Some(lines) => format!("#{start} {len} {lines}\n"),
            None => format!("#{start} {len}\n"),
        }
    }

    /// Copies `chunk` into the ring if it fits; returns its header.
    #[cfg(test)]
    pub(crate) fn put(&mut self, chunk: &[u8], lines: Option<u64>) -> Option<String> {
        let space = self.space(chunk.len());
        if chunk.is_empty() || space.len() < chunk.len() {
            return None;
        }
        space[..chunk.len()].copy_from_slice(chunk);
        Some(self.commit(chunk.len(), lines))
    }
}

/// A chunk the logger found in the ring.
#[derive(Debug, PartialEq, Eq)]
pub(crate) struct Chunk<'a> {
    pub(crate) data: &'a [u8],
    /// Its end: the logger is [`done`](RingReader::done) with it there.
    pub(crate) end: u64,
    /// How many formatted lines it is, if the daemon said.
    pub(crate) lines: Option<u64>,
}

/// The logger's side: reads chunks and says when it is done with them.
#[derive(Debug)]
pub(crate) struct RingReader {
    mapping: Mapping,
}

impl RingReader {
    /// The ring the daemon passed as `fd`.
    pub(crate) fn open(fd: OwnedFd) -> io::Result<Self> {
        let len = nix::sys::stat::fstat(&fd).map_err(io::Error::from)?.st_size;
        if len != (HEADER + CAPACITY) as i64 {
            return Err(io::Error::new(
                io::ErrorKind::InvalidData,
                format!("the feed ring has {len} bytes, not {}", HEADER + CAPACITY),
            ));
        }
        Ok(Self {
            mapping: Mapping::map(fd, HEADER + CAPACITY)?,
        })
    }

    /// The chunk of header `#<start> <len> [<lines>]` (`line` without its
    /// newline), and its end; `None` for a malformed header or one outside
    /// the ring.
    #[allow(unsafe_code)]
    pub(crate) fn chunk(&self, line: &[u8]) -> Option<Chunk<'_>> {
        let text = std::str::from_utf8(line.strip_prefix(b"#")?).ok()?;
        let mut fields = text.split(' ');
        let start: u64 = fields.next()?.parse().ok()?;
        let len: usize = fields.next()?.parse().ok()?;
        let lines = match fields.next() {
            Some(lines) => Some(lines.parse().ok()?),
            None => None,
        };
        if fields.next().is_some() {
            return None;
        }
        let offset = (start % CAPACITY as u64) as usize;
        if len == 0 || offset + len > CAPACITY {
            return None;
        }
        // SAFETY: within the mapping (checked above). The daemon wrote this
        // range before sending its header and does not write it again
        // until `done` moves past it.
        let data =
            unsafe { std::slice::from_raw_parts(self.mapping.base.add(HEADER + offset), len) };
        Some(Chunk {
            data,
            end: start + len as u64,
            lines,
        })
    }

    /// The logger is done with everything before stream position `end`.
    pub(crate) fn done(&self, end: u64) {
        self.mapping.consumed().store(end, Ordering::Release);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn reader_of(ring: &Ring) -> RingReader {
        let fd = ring.fd().try_clone_to_owned().unwrap();
        RingReader::open(fd).unwrap()
    }

    #[test]
    fn chunks_arrive_as_written_and_turn_at_the_end() {
        let mut ring = Ring::create().unwrap();
        let reader = reader_of(&ring);
        let big = vec![b'a'; CAPACITY / 2 + 1];
        let header = ring.put(&big, None).unwrap();
        assert_eq!(header, format!("#0 {}\n", big.len()));
        let chunk = reader.chunk(header.trim_end().as_bytes()).unwrap();
        let end = big.len() as u64;
        assert_eq!(
            chunk,
            Chunk {
                data: &big[..],
                end,
                lines: None
            }
        );
        // A second half-ring does not fit before the end: it waits for the
        // logger, then goes to the start of the next turn.
        assert_eq!(ring.put(&big, None), None);
        reader.done(end);
        let other = vec![b'b'; CAPACITY / 2 + 1];
        let header = ring.put(&other, Some(7)).unwrap();
        assert_eq!(header, format!("#{CAPACITY} {} 7\n", other.len()));
        let chunk = reader.chunk(header.trim_end().as_bytes()).unwrap();
        assert_eq!((chunk.data, chunk.lines), (&other[..], Some(7)));
    }

    #[test]
    fn a_full_ring_refuses_until_the_logger_is_done() {
        let mut ring = Ring::create().unwrap();
        let reader = reader_of(&ring);
        let quarter = vec![b'q'; CAPACITY / 4];
        let mut ends = Vec::new();
        for _ in 0..4 {
            let header = ring.put(&quarter, None).unwrap();
            ends.push(reader.chunk(header.trim_end().as_bytes()).unwrap().end);
        }
        assert_eq!(ring.put(b"x\n", None), None);
        reader.done(ends[0]);
        assert!(ring.put(b"x\n", None).is_some());
        assert_eq!(
            ring.put(&vec![0; CAPACITY + 1], None),
            None,
            "larger than the ring"
        );
    }

    #[test]
    fn bad_headers_are_refused() {
        let ring = Ring::create().unwrap();
        let reader = reader_of(&ring);
        for line in [
            "#",
            "#1",
            "#x 2",
            "#0 0",
            "#0 1 x",
            "#0 1 2 3",
            &format!("#0 {}", CAPACITY + 1),
            "[not a header",
        ] {
            assert!(reader.chunk(line.as_bytes()).is_none(), "{line}");
        }
        let wrong = nix::unistd::pipe().unwrap().0;
        assert!(RingReader::open(wrong).is_err());
    }
}
