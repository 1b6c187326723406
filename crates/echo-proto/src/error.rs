//! The error type shared by every part of the crate.

use std::io;

/// Everything that can go wrong while reading or writing frames.
///
/// Unlike tokio-util's `LengthDelimitedCodec`, whose length errors arrive as an
/// opaque [`io::Error`] that callers must downcast, every protocol failure here
/// is its own variant and carries the numbers that explain it.
///
/// ```
/// use echo_proto::FrameError;
///
/// // A header announcing a 1000-byte payload, to a reader whose limit is 16.
/// let mut input = &[0x00, 0x00, 0x03, 0xe8][..];
/// match echo_proto::read_frame(&mut input, 16) {
///     Err(FrameError::FrameTooLarge { len, max }) => assert_eq!((len, max), (1000, 16)),
///     other => panic!("unexpected: {other:?}"),
/// }
/// ```
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum FrameError {
    /// A frame is longer than the configured maximum.
    ///
    /// When decoding, `len` is the length announced by the peer's header and
    /// nothing has been allocated for it. When encoding, `len` is the length of
    /// the payload the caller tried to send.
    #[error("frame of {len} bytes exceeds the maximum of {max} bytes")]
    FrameTooLarge {
        /// The payload length that was announced or offered.
        len: u64,
        /// The limit in force.
        max: u64,
    },

    /// The stream ended in the middle of a frame.
    ///
    /// `expected` is the whole frame's length in bytes, header included, or
    /// just the header's length when the header itself was cut short.
    #[error("stream ended inside a frame: {received} of {expected} bytes received")]
    Truncated {
        /// How many bytes of the frame arrived.
        received: u64,
        /// How many bytes the frame needed.
        expected: u64,
    },

    /// The underlying reader or writer failed. It displays as the I/O error
    /// itself, so that an error chain names the cause once.
    #[error(transparent)]
    Io(#[from] io::Error),
}

impl FrameError {
    /// A short, stable name for the kind of error, fit for a metric label or a
    /// log field.
    ///
    /// ```
    /// use echo_proto::FrameError;
    ///
    /// let error = FrameError::Truncated { received: 2, expected: 4 };
    /// assert_eq!(error.kind(), "truncated");
    /// ```
    pub fn kind(&self) -> &'static str {
        match self {
            FrameError::FrameTooLarge { .. } => "frame_too_large",
            FrameError::Truncated { .. } => "truncated",
            FrameError::Io(_) => "io",
        }
    }
}
