//! [`FrameScanner`]: finds frame boundaries in a byte stream without holding
//! any payload.

use crate::FrameError;
use crate::frame::{self, DEFAULT_MAX_FRAME_LEN, HEADER_LEN, MAX_ANNOUNCEABLE_LEN};

/// Follows the frame structure of a byte stream, a chunk at a time, keeping only
/// a few bytes of state.
///
/// A relay, such as the echo server, reads into a fixed-size buffer and needs to
/// know where frames end so that it can pass on whole frames, and which bytes
/// belong to frames whose header it has accepted, without ever holding a whole
/// frame. The scanner tells it both. It performs no I/O, so the same logic
/// serves every transport, and tests and fuzzers drive it directly.
///
/// ```
/// use echo_proto::FrameScanner;
///
/// let mut scanner = FrameScanner::new(1024);
/// // One whole frame ("hi"), then the first byte of the next one's payload.
/// let scan = scanner.scan(&[0, 0, 0, 2, b'h', b'i', 0, 0, 0, 3, b'a']);
/// assert_eq!(scan.frames, 1);
/// assert_eq!(scan.complete_len, 6);
/// assert_eq!(scan.accepted_len, 11);
/// assert!(scan.error.is_none());
///
/// // The rest of the second frame arrives later.
/// let scan = scanner.scan(b"bc");
/// assert_eq!((scan.frames, scan.complete_len), (1, 2));
/// assert!(scanner.is_at_boundary());
/// ```
#[derive(Debug, Clone)]
pub struct FrameScanner {
    // Lengths are kept as `u32`s, the width of the header: a relay holds a
    // scanner for every connection it serves, idle or not.
    max_frame_len: u32,
    state: State,
    frames_total: u64,
}

#[derive(Debug, Clone, Copy)]
enum State {
    /// Collecting a header; `filled` of its bytes have arrived.
    Header { bytes: [u8; HEADER_LEN], filled: u8 },
    /// Inside an accepted frame's payload.
    Payload {
        /// The payload's whole length, to report a truncation.
        len: u32,
        /// Payload bytes still to come.
        remaining: u32,
    },
    /// A header announced more than the limit. Nothing after it is accepted.
    Rejected { len: u32 },
}

const EMPTY_HEADER: State = State::Header {
    bytes: [0; HEADER_LEN],
    filled: 0,
};

/// What [`FrameScanner::scan`] found in one chunk of input.
///
/// Offsets count from the start of the chunk passed to `scan`, and
/// `complete_len <= accepted_len <= chunk.len()` always holds.
#[derive(Debug)]
#[non_exhaustive]
pub struct Scan {
    /// How many frames ended inside the chunk.
    pub frames: usize,
    /// The chunk's bytes up to the end of the last frame that ended inside it,
    /// or 0 when none did. Everything before this offset completes a frame.
    pub complete_len: usize,
    /// The chunk's bytes that belong to frames whose header has been accepted.
    /// Only a header still being collected, or a rejected one, is left out.
    /// A header that straddles chunks is accepted with the chunk that
    /// completes it, whose `accepted_len` covers only its own bytes.
    pub accepted_len: usize,
    /// Set when a header in the chunk (or earlier) announced more than the
    /// limit. Scanning stopped there: everything before `accepted_len` belongs
    /// to good frames, and the bad header starts at `accepted_len` (or, if it
    /// began in an earlier chunk, before this chunk). The scanner rejects every
    /// later chunk.
    pub error: Option<FrameError>,
}

/// A length of at most [`MAX_ANNOUNCEABLE_LEN`] as the `u32` it fits in.
fn narrow(len: usize) -> u32 {
    u32::try_from(len).unwrap_or(u32::MAX)
}

impl FrameScanner {
    /// A scanner that rejects frames whose payload is longer than
    /// `max_frame_len` (clamped to `u32::MAX`).
    pub fn new(max_frame_len: usize) -> Self {
        Self {
            max_frame_len: narrow(max_frame_len.min(MAX_ANNOUNCEABLE_LEN)),
            state: EMPTY_HEADER,
            frames_total: 0,
        }
    }

    /// The limit this scanner enforces.
    pub fn max_frame_len(&self) -> usize {
        self.max_frame_len as usize
    }

    /// How many frames have been completed since the scanner was made.
    pub fn frames_total(&self) -> u64 {
        self.frames_total
    }

    /// Whether the stream so far ends exactly at a frame boundary, so that
    /// closing it now would cut no frame short.
    pub fn is_at_boundary(&self) -> bool {
        matches!(self.state, State::Header { filled: 0, .. })
    }

    /// The payload bytes still to come of the frame in progress, once its
    /// header has been accepted; `None` between frames, inside a header, or
    /// after a rejection.
    ///
    /// ```
    /// use echo_proto::FrameScanner;
    ///
    /// let mut scanner = FrameScanner::new(1024);
    /// scanner.scan(&[0, 0, 0, 5, b'a', b'b']);
    /// assert_eq!(scanner.payload_remaining(), Some(3));
    /// ```
    pub fn payload_remaining(&self) -> Option<usize> {
        match self.state {
            State::Payload { remaining, .. } => Some(remaining as usize),
            State::Header { .. } | State::Rejected { .. } => None,
        }
    }

    /// Scans the next chunk of the stream.
    pub fn scan(&mut self, chunk: &[u8]) -> Scan {
        let mut scan = Scan {
            frames: 0,
            complete_len: 0,
            accepted_len: 0,
            error: None,
        };
        let mut offset = 0;
        if let State::Header { filled: 0, .. } = self.state {
            offset = self.skip_whole_frames(chunk, &mut scan);
        }
        while offset < chunk.len() {
            match &mut self.state {
                State::Rejected { .. } => break,
                State::Header { bytes, filled } => {
                    let have = usize::from(*filled);
                    let take = (HEADER_LEN - have).min(chunk.len() - offset);
                    bytes[have..have + take].copy_from_slice(&chunk[offset..offset + take]);
                    // At most HEADER_LEN: it fits.
                    *filled += take as u8;
                    if usize::from(*filled) < HEADER_LEN {
                        // The header is still incomplete, and so is the chunk.
                        break;
                    }
                    let len = u32::from_be_bytes(*bytes);
                    if len > self.max_frame_len {
                        self.state = State::Rejected { len };
                        scan.error = Some(self.rejection(len));
                        return scan;
                    }
                    offset += take;
                    // The header is accepted. Its bytes that came in earlier
                    // chunks were left out of those chunks' `accepted_len`; a
                    // caller that kept them counts them as accepted now.
                    scan.accepted_len = offset;
                    self.state = State::Payload {
                        len,
                        remaining: len,
                    };
                }
                State::Payload { remaining, .. } => {
                    let take = (*remaining as usize).min(chunk.len() - offset);
                    // At most `remaining`: it fits.
                    *remaining -= take as u32;
                    offset += take;
                    scan.accepted_len = offset;
                }
            }
            if let State::Payload { remaining: 0, .. } = self.state {
                self.state = EMPTY_HEADER;
                self.frames_total += 1;
                scan.frames += 1;
                scan.complete_len = offset;
            }
        }
        if let State::Rejected { len } = self.state {
            scan.error = Some(self.rejection(len));
        }
        scan
    }

    /// The fast path of [`scan`](Self::scan), at a frame boundary: counts the
    /// frames that lie whole in `chunk`, reading their headers straight from
    /// it rather than through the state machine, and returns where the first
    /// frame that does not (or an oversize header) begins. Pipelined small
    /// frames, the common case, take this path only.
    fn skip_whole_frames(&mut self, chunk: &[u8], scan: &mut Scan) -> usize {
        let mut offset = 0;
        while let Some(header) = chunk[offset..].first_chunk::<HEADER_LEN>() {
            let len = frame::decode_header(*header);
            if len > self.max_frame_len as usize {
                // The state machine rejects it, with the error it reports.
                break;
            }
            match HEADER_LEN
                .checked_add(len)
                .and_then(|frame_len| offset.checked_add(frame_len))
                .filter(|&end| end <= chunk.len())
            {
                Some(end) => offset = end,
                None => break,
            }
            scan.frames += 1;
        }
        self.frames_total += scan.frames as u64;
        scan.complete_len = offset;
        scan.accepted_len = offset;
        offset
    }

    /// Declares the end of the stream: an error if it ends inside a frame.
    ///
    /// ```
    /// use echo_proto::{FrameError, FrameScanner};
    ///
    /// let mut scanner = FrameScanner::new(1024);
    /// scanner.scan(&[0, 0, 0, 5, b'a']);
    /// assert!(matches!(
    ///     scanner.finish(),
    ///     Err(FrameError::Truncated { received: 5, expected: 9 })
    /// ));
    /// ```
    pub fn finish(&self) -> Result<(), FrameError> {
        let (received, expected) = match self.state {
            State::Header { filled: 0, .. } => return Ok(()),
            State::Header { filled, .. } => (u64::from(filled), HEADER_LEN as u64),
            State::Payload { len, remaining } => (
                HEADER_LEN as u64 + u64::from(len - remaining),
                HEADER_LEN as u64 + u64::from(len),
            ),
            State::Rejected { len } => return Err(self.rejection(len)),
        };
        Err(FrameError::Truncated { received, expected })
    }

    fn rejection(&self, len: u32) -> FrameError {
        FrameError::FrameTooLarge {
            len: u64::from(len),
            max: u64::from(self.max_frame_len),
        }
    }
}

impl Default for FrameScanner {
    /// A scanner with the default limit of [`DEFAULT_MAX_FRAME_LEN`].
    fn default() -> Self {
        Self::new(DEFAULT_MAX_FRAME_LEN)
    }
}
