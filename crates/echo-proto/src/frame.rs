//! The frame format: a 4-byte big-endian length, then that many payload bytes.
//!
//! These are the building blocks that the codecs, the [`FrameScanner`] and the
//! blocking helpers share, so that the wire format is written down in exactly
//! one place.
//!
//! [`FrameScanner`]: crate::FrameScanner

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

/// Splits a buffer that holds only complete frames into their payloads.
///
/// This is a convenience for buffers whose framing was already validated, for
/// example the span a [`FrameScanner`] reported as complete. It stops at the
/// first frame that is not entirely inside `bytes`.
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
    Payloads { rest: bytes }
}

/// The iterator returned by [`payloads`].
#[derive(Debug, Clone)]
pub struct Payloads<'a> {
    rest: &'a [u8],
}

impl<'a> Iterator for Payloads<'a> {
    type Item = &'a [u8];

    fn next(&mut self) -> Option<&'a [u8]> {
        let (header, rest) = self.rest.split_first_chunk::<HEADER_LEN>()?;
        let len = decode_header(*header);
        let payload = rest.get(..len)?;
        self.rest = &rest[len..];
        Some(payload)
    }
}
