//! Blocking helpers for [`std::io`] readers and writers.
//!
//! For programs without an async runtime: a `std::net::TcpStream`, a file or a
//! pipe. [`write_frame`] and [`read_frame`] move one frame per call;
//! [`FrameReader`] reads many through one buffer that it reuses.

use std::fmt;
use std::io::{self, IoSlice, Read, Write};
use std::ops::Range;

use crate::FrameError;
use crate::frame::{self, HEADER_LEN, MAX_ANNOUNCEABLE_LEN, Parsed};

/// The most a reader asks its buffer to grow by, beyond the bytes that have
/// arrived, while a frame is still arriving: a header is only a claim, so
/// memory follows the bytes that back it, while large frames still come in
/// few, large reads.
const MAX_GROW_STEP: usize = 64 * 1024;

/// The least buffer a [`FrameReader`] reads into, so that one read can bring
/// many small frames.
const READ_AHEAD_LEN: usize = 8 * 1024;

/// Writes `payload` as one frame.
///
/// The header and payload go out in one vectored write where the writer allows
/// it, so that on a `TcpStream` the header is not sent alone (which, with
/// Nagle's algorithm and delayed acknowledgements, can stall a request-response
/// exchange for tens of milliseconds). Payloads up to `u32::MAX` bytes are
/// accepted.
///
/// ```
/// let mut wire = Vec::new();
/// echo_proto::write_frame(&mut wire, b"hi")?;
/// assert_eq!(wire, b"\x00\x00\x00\x02hi");
/// # Ok::<(), echo_proto::FrameError>(())
/// ```
pub fn write_frame<W: Write + ?Sized>(writer: &mut W, payload: &[u8]) -> Result<(), FrameError> {
    let header = frame::encode_header(payload.len(), MAX_ANNOUNCEABLE_LEN)?;
    let mut slices = [IoSlice::new(&header), IoSlice::new(payload)];
    let mut remaining = &mut slices[..];
    // Skip an empty payload's slice so the loop below ends on the header.
    if payload.is_empty() {
        remaining = &mut remaining[..1];
    }
    while !remaining.is_empty() {
        match writer.write_vectored(remaining) {
            Ok(0) => return Err(io::Error::from(io::ErrorKind::WriteZero).into()),
            Ok(written) => IoSlice::advance_slices(&mut remaining, written),
            Err(error) if error.kind() == io::ErrorKind::Interrupted => {}
            Err(error) => return Err(error.into()),
        }
    }
    Ok(())
}

/// Reads one frame and returns its payload, or `None` if the stream ended
/// cleanly before a new frame began.
///
/// A header announcing more than `max_frame_len` bytes is rejected with
/// [`FrameError::FrameTooLarge`] before anything is allocated for it; the
/// payload buffer then grows with the bytes that actually arrive, not with the
/// length the header claims. A stream that ends inside a frame gives
/// [`FrameError::Truncated`]. Reads interrupted by a signal are retried.
///
/// It never reads past the frame, so calls can follow each other, or other
/// reads, on the same reader. It allocates a new `Vec` for every frame: to
/// read many frames, a [`FrameReader`] reuses one buffer instead.
///
/// ```
/// let wire = b"\x00\x00\x00\x02hi\x00\x00\x00\x00";
/// let mut reader = &wire[..];
/// assert_eq!(echo_proto::read_frame(&mut reader, 1024)?, Some(b"hi".to_vec()));
/// assert_eq!(echo_proto::read_frame(&mut reader, 1024)?, Some(Vec::new()));
/// assert_eq!(echo_proto::read_frame(&mut reader, 1024)?, None);
/// # Ok::<(), echo_proto::FrameError>(())
/// ```
pub fn read_frame<R: Read + ?Sized>(
    reader: &mut R,
    max_frame_len: usize,
) -> Result<Option<Vec<u8>>, FrameError> {
    // Not reading ahead: the bytes past the frame would be lost with the
    // FrameReader, while they belong to the caller's next read.
    let mut frames = FrameReader::with_read_ahead(reader, max_frame_len, false);
    let Some(payload) = frames.next_payload()? else {
        return Ok(None);
    };
    // The buffer holds the header and the payload: keep it, without the
    // header, as the payload's own allocation.
    let mut bytes = frames.buffer;
    bytes.truncate(payload.end);
    bytes.drain(..payload.start);
    Ok(Some(bytes))
}

/// Reads frames from a [`Read`] into one buffer that it reuses, and lends out
/// each payload from it.
///
/// It checks headers and reports a short stream exactly as [`read_frame`]
/// does (the two share their code): a header announcing more than the limit is
/// [`FrameError::FrameTooLarge`] before anything is allocated for it, a
/// stream that ends inside a frame is [`FrameError::Truncated`], and reads
/// interrupted by a signal are retried.
///
/// ```
/// use echo_proto::FrameReader;
///
/// let wire = b"\x00\x00\x00\x02hi\x00\x00\x00\x05there";
/// let mut frames = FrameReader::new(&wire[..], 1024);
/// assert_eq!(frames.read_frame()?, Some(&b"hi"[..]));
/// assert_eq!(frames.read_frame()?, Some(&b"there"[..]));
/// assert_eq!(frames.read_frame()?, None);
/// # Ok::<(), echo_proto::FrameError>(())
/// ```
///
/// # Memory
///
/// The buffer grows with the bytes that actually arrive: while a frame is
/// arriving it asks for at most 64 KiB more than the bytes it holds, never
/// for the length a header announces. It keeps its size from frame to frame,
/// so reading frames no larger than one already read allocates nothing. Its
/// length is at most the larger of 8 KiB and the largest frame read so far
/// (header included), and the allocation behind it about twice that at most.
///
/// # Reading ahead
///
/// To save system calls, a read asks for as much as the buffer has room for,
/// so that one read can bring many small frames. What the reader has read
/// past the frames it handed out is
/// [`buffered`](Self::buffered), and the next [`read_frame`](Self::read_frame)
/// starts with it. The rule for a caller who also reads the underlying reader
/// through [`get_mut`](Self::get_mut) (or takes it back with
/// [`into_inner`](Self::into_inner)): those bytes come first, so take
/// [`buffered`](Self::buffered) before reading on, and no byte is lost.
///
/// ```
/// use std::io::Read;
///
/// use echo_proto::FrameReader;
///
/// // A frame, then bytes that are not framed.
/// let wire = b"\x00\x00\x00\x03endraw bytes";
/// let mut frames = FrameReader::new(&wire[..], 1024);
/// assert_eq!(frames.read_frame()?, Some(&b"end"[..]));
///
/// let mut raw = frames.buffered().to_vec();
/// frames.into_inner().read_to_end(&mut raw)?;
/// assert_eq!(raw, b"raw bytes");
/// # Ok::<(), echo_proto::FrameError>(())
/// ```
///
/// # Errors
///
/// An I/O error leaves the bytes read so far in the buffer, so a later call
/// carries on where the failed one stopped: on a socket with a read timeout,
/// a `WouldBlock` or `TimedOut` in the middle of a frame loses nothing. After
/// [`FrameError::FrameTooLarge`] the bad header stays buffered, so every later
/// call fails the same way; after [`FrameError::Truncated`], so does every
/// later call while the reader stays at its end.
pub struct FrameReader<R> {
    reader: R,
    max_frame_len: usize,
    /// Initialised throughout: reads go into `buffer[end..]`, so the bytes of
    /// a grown buffer are zeroed once, and reusing it costs nothing.
    buffer: Vec<u8>,
    /// `buffer[start..end]` holds the bytes read and not yet handed out.
    start: usize,
    end: usize,
    /// Whether a read may ask for more than the frame in progress needs.
    read_ahead: bool,
}

impl<R: Read> FrameReader<R> {
    /// A reader of frames whose payload is at most `max_frame_len` bytes.
    ///
    /// It allocates nothing until the first read.
    pub fn new(reader: R, max_frame_len: usize) -> Self {
        Self::with_read_ahead(reader, max_frame_len, true)
    }

    fn with_read_ahead(reader: R, max_frame_len: usize, read_ahead: bool) -> Self {
        Self {
            reader,
            max_frame_len,
            buffer: Vec::new(),
            start: 0,
            end: 0,
            read_ahead,
        }
    }

    /// Reads the next frame and lends out its payload, or returns `None` if
    /// the stream ended cleanly before a new frame began.
    ///
    /// The payload is borrowed from the reader's buffer until the next call.
    ///
    /// ```
    /// use echo_proto::{FrameError, FrameReader};
    ///
    /// // A frame over the limit of 4 bytes, then a frame cut short.
    /// let mut frames = FrameReader::new(&b"\x00\x00\x00\x05hello"[..], 4);
    /// assert!(matches!(frames.read_frame(), Err(FrameError::FrameTooLarge { len: 5, max: 4 })));
    ///
    /// let mut frames = FrameReader::new(&b"\x00\x00\x00\x05hel"[..], 1024);
    /// assert!(matches!(
    ///     frames.read_frame(),
    ///     Err(FrameError::Truncated { received: 7, expected: 9 })
    /// ));
    /// ```
    pub fn read_frame(&mut self) -> Result<Option<&[u8]>, FrameError> {
        Ok(self.next_payload()?.map(|payload| &self.buffer[payload]))
    }

    /// Reads until a whole frame is buffered, hands it out, and returns where
    /// its payload lies in the buffer.
    fn next_payload(&mut self) -> Result<Option<Range<usize>>, FrameError> {
        loop {
            let needed = match frame::parse(&self.buffer[self.start..self.end], self.max_frame_len)?
            {
                Parsed::Frame { payload, frame_len } => {
                    let payload_start = self.start + HEADER_LEN;
                    let payload = payload_start..payload_start + payload.len();
                    self.start += frame_len;
                    return Ok(Some(payload));
                }
                Parsed::Incomplete { needed } => needed,
            };
            if self.fill(needed)? == 0 {
                let received = self.end - self.start;
                if received == 0 {
                    return Ok(None);
                }
                // In u64: a header can announce up to u32::MAX bytes, which
                // with the header overflows a 32-bit usize.
                return Err(FrameError::Truncated {
                    received: received as u64,
                    expected: received as u64 + needed as u64,
                });
            }
        }
    }

    /// Reads more of the frame in progress, which lacks `needed` bytes;
    /// returns how many arrived, 0 at the end of the stream.
    fn fill(&mut self, needed: usize) -> Result<usize, FrameError> {
        // The bytes handed out are done with: move the rest to the front, so
        // that the room behind them is used again. Each byte moves at most
        // once, since the front only moves when a frame is handed out.
        if self.start > 0 {
            self.buffer.copy_within(self.start..self.end, 0);
            self.end -= self.start;
            self.start = 0;
        }
        let wanted = needed.min(MAX_GROW_STEP);
        let mut len = self.end + wanted;
        if self.read_ahead {
            len = len.max(READ_AHEAD_LEN);
        }
        if self.buffer.len() < len {
            self.buffer.resize(len, 0);
        }
        // Without read-ahead, never past the frame in progress.
        let until = if self.read_ahead {
            self.buffer.len()
        } else {
            self.end + wanted
        };
        loop {
            match self.reader.read(&mut self.buffer[self.end..until]) {
                Ok(read) => {
                    self.end += read;
                    return Ok(read);
                }
                Err(error) if error.kind() == io::ErrorKind::Interrupted => {}
                Err(error) => return Err(error.into()),
            }
        }
    }
}

impl<R> FrameReader<R> {
    /// The longest payload the reader accepts.
    ///
    /// ```
    /// let frames = echo_proto::FrameReader::new(std::io::empty(), 1024);
    /// assert_eq!(frames.max_frame_len(), 1024);
    /// ```
    pub fn max_frame_len(&self) -> usize {
        self.max_frame_len
    }

    /// The bytes read from the underlying reader and not handed out yet: the
    /// start of the next frame, or more.
    ///
    /// ```
    /// let wire = b"\x00\x00\x00\x01a\x00\x00";
    /// let mut frames = echo_proto::FrameReader::new(&wire[..], 1024);
    /// frames.read_frame()?;
    /// assert_eq!(frames.buffered(), [0, 0]);
    /// # Ok::<(), echo_proto::FrameError>(())
    /// ```
    pub fn buffered(&self) -> &[u8] {
        &self.buffer[self.start..self.end]
    }

    /// The underlying reader.
    ///
    /// ```
    /// use std::io::Cursor;
    ///
    /// let frames = echo_proto::FrameReader::new(Cursor::new(b"\x00\x00\x00\x00"), 16);
    /// assert_eq!(frames.get_ref().position(), 0);
    /// ```
    pub fn get_ref(&self) -> &R {
        &self.reader
    }

    /// The underlying reader, for example to set a socket's read timeout.
    /// Reading from it directly skips the [`buffered`](Self::buffered)
    /// bytes: see [Reading ahead](Self#reading-ahead).
    ///
    /// ```
    /// use std::net::{TcpListener, TcpStream};
    /// use std::time::Duration;
    ///
    /// let listener = TcpListener::bind("127.0.0.1:0")?;
    /// let stream = TcpStream::connect(listener.local_addr()?)?;
    /// let mut frames = echo_proto::FrameReader::new(stream, 1024);
    /// frames.get_mut().set_read_timeout(Some(Duration::from_secs(5)))?;
    /// # Ok::<(), std::io::Error>(())
    /// ```
    pub fn get_mut(&mut self) -> &mut R {
        &mut self.reader
    }

    /// Gives back the underlying reader. The [`buffered`](Self::buffered)
    /// bytes go with the `FrameReader`: take them first if they matter.
    ///
    /// ```
    /// let frames = echo_proto::FrameReader::new(std::io::empty(), 16);
    /// let _reader: std::io::Empty = frames.into_inner();
    /// ```
    pub fn into_inner(self) -> R {
        self.reader
    }
}

impl<R: fmt::Debug> fmt::Debug for FrameReader<R> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        // The buffer's length, not its bytes: it can hold megabytes.
        f.debug_struct("FrameReader")
            .field("reader", &self.reader)
            .field("max_frame_len", &self.max_frame_len)
            .field("buffered", &self.buffered().len())
            .finish_non_exhaustive()
    }
}
