//! The frame format: a 4-byte big-endian length, then that many payload bytes.
//!
//! These are the building blocks that the codecs, the [`FrameScanner`] and the
//! blocking helpers share, so that the wire format is written down in exactly
//! one place.
//!
//! For bytes already in memory, [`parse`] says what the start of a buffer
//! holds (a whole frame, or how many more bytes one needs) and [`frames`]
//! walks the whole frames of a buffer and says where it stopped. Both check
//! every header against a limit before looking at its payload, and neither
//! copies or allocates.
//!
//! ```
//! use echo_proto::frame::{self, Parsed};
//!
//! // A receive buffer: one whole frame, then the start of the next one.
//! let buffer = [0, 0, 0, 2, b'h', b'i', 0, 0, 0, 5, b'w', b'o'];
//! let Parsed::Frame { payload, frame_len } = frame::parse(&buffer, 1024)? else {
//!     unreachable!("the buffer starts with a whole frame");
//! };
//! assert_eq!((payload, frame_len), (&b"hi"[..], 6));
//! assert_eq!(frame::parse(&buffer[frame_len..], 1024)?, Parsed::Incomplete { needed: 3 });
//! # Ok::<(), echo_proto::FrameError>(())
//! ```
//!
//! [`FrameScanner`]: crate::FrameScanner

use std::iter::FusedIterator;

use crate::FrameError;

/// The length of a frame header in bytes.
pub const HEADER_LEN: usize = 4;

/// The default limit on a frame's payload length: 8 MiB.
pub const DEFAULT_MAX_FRAME_LEN: usize = 8 * 1024 * 1024;

/// The longest payload a header can announce (`u32::MAX` bytes).
pub const MAX_ANNOUNCEABLE_LEN: usize = u32::MAX as usize;

/// Encodes the header for a payload of `len` bytes, checking `len` against `max`.
///
/// ```
/// use echo_proto::frame;
///
/// assert_eq!(frame::encode_header(5, 1024).unwrap(), [0, 0, 0, 5]);
/// assert!(frame::encode_header(2048, 1024).is_err());
/// ```
pub fn encode_header(len: usize, max: usize) -> Result<[u8; HEADER_LEN], FrameError> {
    check_len(len, max)?;
    let len = u32::try_from(len).map_err(|_| too_large(len, MAX_ANNOUNCEABLE_LEN))?;
    Ok(len.to_be_bytes())
}

/// Reads the payload length announced by a header.
///
/// ```
/// use echo_proto::frame;
///
/// assert_eq!(frame::decode_header([0x00, 0x01, 0x00, 0x00]), 65_536);
/// ```
pub fn decode_header(header: [u8; HEADER_LEN]) -> usize {
    // A u32 always fits in usize on the 32- and 64-bit targets we support.
    u32::from_be_bytes(header) as usize
}

/// Checks a payload length against a limit.
///
/// ```
/// use echo_proto::frame;
///
/// assert!(frame::check_len(16, 16).is_ok());
/// assert!(frame::check_len(17, 16).is_err());
/// ```
pub fn check_len(len: usize, max: usize) -> Result<(), FrameError> {
    if len > max {
        Err(too_large(len, max))
    } else {
        Ok(())
    }
}

fn too_large(len: usize, max: usize) -> FrameError {
    FrameError::FrameTooLarge {
        len: len as u64,
        max: max as u64,
    }
}

/// What [`parse`] found at the start of a buffer.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Parsed<'a> {
    /// A whole frame: its payload, and `frame_len`, the bytes it takes in the
    /// buffer (header + payload).
    Frame {
        /// The frame's payload, borrowed from the buffer.
        payload: &'a [u8],
        /// The frame's length in the buffer, header included: where the next
        /// frame starts.
        frame_len: usize,
    },
    /// Not a whole frame yet: at least `needed` more bytes must arrive (for
    /// the header when it is not complete, else for the payload). The header,
    /// if complete, has already passed the limit.
    Incomplete {
        /// How many more bytes the frame needs, at the least: the rest of the
        /// header, or the rest of the payload. Never 0.
        needed: usize,
    },
}

/// Says what the start of `bytes` holds: a whole frame, or how many more bytes
/// the frame there needs.
///
/// A complete header announcing more than `max_frame_len` bytes is an error,
/// [`FrameError::FrameTooLarge`], whatever follows it. Bytes after the first
/// frame are not looked at. The call costs a few comparisons: it is meant to be
/// called again on a receive buffer each time more bytes arrive.
///
/// ```
/// use echo_proto::FrameError;
/// use echo_proto::frame::{self, Parsed};
///
/// let wire = [0, 0, 0, 3, b'a', b'b', b'c'];
/// assert_eq!(
///     frame::parse(&wire, 16)?,
///     Parsed::Frame { payload: b"abc", frame_len: 7 }
/// );
/// // Cut anywhere, the same bytes say how many more are needed.
/// assert_eq!(frame::parse(&wire[..2], 16)?, Parsed::Incomplete { needed: 2 });
/// assert_eq!(frame::parse(&wire[..5], 16)?, Parsed::Incomplete { needed: 2 });
/// // A header over the limit is rejected as soon as it is whole.
/// assert!(matches!(
///     frame::parse(&wire[..4], 2),
///     Err(FrameError::FrameTooLarge { len: 3, max: 2 })
/// ));
/// # Ok::<(), FrameError>(())
/// ```
pub fn parse(bytes: &[u8], max_frame_len: usize) -> Result<Parsed<'_>, FrameError> {
    let Some((header, rest)) = bytes.split_first_chunk::<HEADER_LEN>() else {
        return Ok(Parsed::Incomplete {
            needed: HEADER_LEN - bytes.len(),
        });
    };
    let len = decode_header(*header);
    check_len(len, max_frame_len)?;
    Ok(match rest.get(..len) {
        // The frame lies inside `bytes`, so its length cannot overflow.
        Some(payload) => Parsed::Frame {
            payload,
            frame_len: HEADER_LEN + len,
        },
        None => Parsed::Incomplete {
            needed: len - rest.len(),
        },
    })
}

/// Walks the whole frames at the start of `bytes`, checking each header
/// against `max_frame_len`.
///
/// The iterator yields each frame's payload, in order. It ends at the first
/// frame that is not entirely inside `bytes`, or after yielding the error of a
/// header over the limit; [`Frames::consumed`] and [`Frames::rest`] then say
/// where it stopped, so a caller can keep the rest for when more bytes arrive.
///
/// ```
/// use echo_proto::frame;
///
/// // Two whole frames, then three bytes of a header.
/// let buffer = [0, 0, 0, 2, b'h', b'i', 0, 0, 0, 0, 0, 0, 0];
/// let mut frames = frame::frames(&buffer, 1024);
/// let payloads = frames.by_ref().collect::<Result<Vec<_>, _>>()?;
/// assert_eq!(payloads, [&b"hi"[..], &b""[..]]);
/// assert_eq!(frames.consumed(), 10);
/// assert_eq!(frames.rest(), [0, 0, 0]);
/// # Ok::<(), echo_proto::FrameError>(())
/// ```
///
/// A header over the limit ends the walk with its error; the rest starts at it:
///
/// ```
/// use echo_proto::{frame, FrameError};
///
/// let buffer = [0, 0, 0, 1, b'a', 0, 0, 1, 0];
/// let mut frames = frame::frames(&buffer, 16);
/// assert_eq!(frames.next().transpose()?, Some(&b"a"[..]));
/// assert!(matches!(frames.next(), Some(Err(FrameError::FrameTooLarge { len: 256, max: 16 }))));
/// assert!(frames.next().is_none());
/// assert_eq!((frames.consumed(), frames.rest()), (5, &[0, 0, 1, 0][..]));
/// # Ok::<(), FrameError>(())
/// ```
pub fn frames(bytes: &[u8], max_frame_len: usize) -> Frames<'_> {
    Frames {
        rest: bytes,
        consumed: 0,
        max_frame_len,
        done: false,
    }
}

/// The iterator returned by [`frames`]: the payloads of the whole frames at
/// the start of a buffer, each header checked against a limit.
#[derive(Debug, Clone)]
pub struct Frames<'a> {
    rest: &'a [u8],
    consumed: usize,
    max_frame_len: usize,
    /// Set once an error has been yielded: nothing after a bad header is a frame.
    done: bool,
}

impl<'a> Frames<'a> {
    /// The bytes not yet walked: after the last frame yielded, so starting with
    /// the incomplete frame or the rejected header where the walk stopped (or
    /// will stop).
    pub fn rest(&self) -> &'a [u8] {
        self.rest
    }

    /// How many bytes the frames yielded so far take, headers included: the
    /// offset of [`rest`](Self::rest) in the buffer.
    pub fn consumed(&self) -> usize {
        self.consumed
    }
}

impl<'a> Iterator for Frames<'a> {
    type Item = Result<&'a [u8], FrameError>;

    fn next(&mut self) -> Option<Self::Item> {
        if self.done {
            return None;
        }
        match parse(self.rest, self.max_frame_len) {
            Ok(Parsed::Frame { payload, frame_len }) => {
                self.rest = &self.rest[frame_len..];
                self.consumed += frame_len;
                Some(Ok(payload))
            }
            Ok(Parsed::Incomplete { .. }) => None,
            Err(error) => {
                self.done = true;
                Some(Err(error))
            }
        }
    }
}

impl FusedIterator for Frames<'_> {}

/// Splits a buffer that holds only complete frames into their payloads,
/// without a limit.
///
/// This is a convenience for buffers whose framing was already validated, for
/// example the span a [`FrameScanner`] reported as complete: no header can be
/// over its limit, so there is no error to handle. It stops at the first frame
/// that is not entirely inside `bytes`. For bytes from a peer, use [`frames`],
/// which checks every header against a limit.
///
/// ```
/// use echo_proto::frame;
///
/// let bytes = [0, 0, 0, 2, b'h', b'i', 0, 0, 0, 0];
/// let payloads: Vec<&[u8]> = frame::payloads(&bytes).collect();
/// assert_eq!(payloads, [&b"hi"[..], &b""[..]]);
/// ```
///
/// [`FrameScanner`]: crate::FrameScanner
pub fn payloads(bytes: &[u8]) -> Payloads<'_> {
    Payloads {
        frames: frames(bytes, MAX_ANNOUNCEABLE_LEN),
    }
}

/// The iterator returned by [`payloads`].
#[derive(Debug, Clone)]
pub struct Payloads<'a> {
    frames: Frames<'a>,
}

impl<'a> Iterator for Payloads<'a> {
    type Item = &'a [u8];

    fn next(&mut self) -> Option<&'a [u8]> {
        // No header can announce more than MAX_ANNOUNCEABLE_LEN, so `frames`
        // never yields an error here and none is dropped.
        self.frames.next()?.ok()
    }
}

impl FusedIterator for Payloads<'_> {}
