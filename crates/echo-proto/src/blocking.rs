//! Blocking helpers for [`std::io`] readers and writers.
//!
//! For programs without an async runtime: a `std::net::TcpStream`, a file or a
//! pipe. Each call moves one frame.

use std::io::{self, IoSlice, Read, Write};

use crate::FrameError;
use crate::frame::{self, HEADER_LEN, MAX_ANNOUNCEABLE_LEN};

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
/// [`FrameError::Truncated`].
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
    let mut header = [0; HEADER_LEN];
    let filled = read_until_full_or_eof(reader, &mut header)?;
    if filled == 0 {
        return Ok(None);
    }
    if filled < HEADER_LEN {
        return Err(FrameError::Truncated {
            received: filled as u64,
            expected: HEADER_LEN as u64,
        });
    }
    let len = frame::decode_header(header);
    frame::check_len(len, max_frame_len)?;

    let mut payload = Vec::new();
    reader.take(len as u64).read_to_end(&mut payload)?;
    if payload.len() < len {
        return Err(FrameError::Truncated {
            received: (HEADER_LEN + payload.len()) as u64,
            expected: (HEADER_LEN + len) as u64,
        });
    }
    Ok(Some(payload))
}

/// Fills `buf` unless the stream ends first; returns how much was filled.
fn read_until_full_or_eof<R: Read + ?Sized>(reader: &mut R, buf: &mut [u8]) -> io::Result<usize> {
    let mut filled = 0;
    while filled < buf.len() {
        match reader.read(&mut buf[filled..]) {
            Ok(0) => break,
            Ok(n) => filled += n,
            Err(error) if error.kind() == io::ErrorKind::Interrupted => {}
            Err(error) => return Err(error),
        }
    }
    Ok(filled)
}
