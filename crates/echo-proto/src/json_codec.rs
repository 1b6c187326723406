//! [`JsonCodec`]: typed messages as JSON, one per frame.

use std::io;
use std::marker::PhantomData;

use bytes::{BufMut, BytesMut};
use serde::Serialize;
use serde::de::DeserializeOwned;
use tokio_util::codec::{Decoder, Encoder};

use crate::frame::{self, HEADER_LEN};
use crate::{FrameCodec, FrameError};

/// Encodes and decodes values of type `T` as JSON documents, one per frame.
///
/// It sits on top of a [`FrameCodec`], whose limits it keeps: build it with
/// [`JsonCodec::with_frame_codec`] to change them.
///
/// ```
/// use bytes::BytesMut;
/// use echo_proto::JsonCodec;
/// use serde::{Deserialize, Serialize};
/// use tokio_util::codec::{Decoder, Encoder};
///
/// #[derive(Debug, PartialEq, Serialize, Deserialize)]
/// struct Greeting {
///     text: String,
/// }
///
/// let mut codec = JsonCodec::<Greeting>::new();
/// let mut wire = BytesMut::new();
/// codec.encode(&Greeting { text: "hi".into() }, &mut wire)?;
/// assert_eq!(&wire[..], b"\x00\x00\x00\x0d{\"text\":\"hi\"}");
///
/// let greeting = codec.decode(&mut wire)?.expect("a whole frame is buffered");
/// assert_eq!(greeting, Greeting { text: "hi".into() });
/// # Ok::<(), echo_proto::JsonCodecError>(())
/// ```
#[cfg_attr(docsrs, doc(cfg(feature = "json")))]
#[derive(Debug)]
pub struct JsonCodec<T> {
    frames: FrameCodec,
    // `fn() -> T` keeps the codec Send and Sync whatever T is: it never holds one.
    _message: PhantomData<fn() -> T>,
}

/// Why a [`JsonCodec`] failed.
#[cfg_attr(docsrs, doc(cfg(feature = "json")))]
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum JsonCodecError {
    /// The framing failed: a frame too large, a truncated stream, or I/O.
    #[error(transparent)]
    Frame(#[from] FrameError),
    /// A frame did not hold valid JSON for the expected type, or a value
    /// could not be serialized.
    #[error("invalid JSON message: {0}")]
    Json(#[from] serde_json::Error),
}

impl From<io::Error> for JsonCodecError {
    fn from(error: io::Error) -> Self {
        JsonCodecError::Frame(FrameError::Io(error))
    }
}

impl<T> JsonCodec<T> {
    /// A codec with the default frame limits.
    pub fn new() -> Self {
        Self::with_frame_codec(FrameCodec::new())
    }

    /// A codec that frames its messages with `frames`, and so keeps its limits.
    ///
    /// ```
    /// use echo_proto::{FrameCodec, JsonCodec};
    ///
    /// let codec = JsonCodec::<serde_json::Value>::with_frame_codec(
    ///     FrameCodec::builder().max_frame_len(4096).build(),
    /// );
    /// assert_eq!(codec.frame_codec().max_decode_frame_len(), 4096);
    /// ```
    pub fn with_frame_codec(frames: FrameCodec) -> Self {
        Self {
            frames,
            _message: PhantomData,
        }
    }

    /// The frame codec underneath.
    pub fn frame_codec(&self) -> &FrameCodec {
        &self.frames
    }

    /// The frame codec underneath, to change its limits on a codec in use;
    /// see [`FrameCodec::set_max_decode_frame_len`] for when a change takes
    /// effect.
    ///
    /// ```
    /// use echo_proto::JsonCodec;
    /// use tokio_util::codec::Framed;
    ///
    /// # #[tokio::main(flavor = "current_thread")]
    /// # async fn main() {
    /// let (stream, _peer) = tokio::io::duplex(64);
    /// let mut messages = Framed::new(stream, JsonCodec::<serde_json::Value>::new());
    /// messages.codec_mut().frame_codec_mut().set_max_decode_frame_len(4096);
    /// assert_eq!(messages.codec().frame_codec().max_decode_frame_len(), 4096);
    /// # }
    /// ```
    pub fn frame_codec_mut(&mut self) -> &mut FrameCodec {
        &mut self.frames
    }
}

impl<T> Default for JsonCodec<T> {
    fn default() -> Self {
        Self::new()
    }
}

impl<T> Clone for JsonCodec<T> {
    fn clone(&self) -> Self {
        Self::with_frame_codec(self.frames.clone())
    }
}

impl<T: DeserializeOwned> Decoder for JsonCodec<T> {
    type Item = T;
    type Error = JsonCodecError;

    fn decode(&mut self, src: &mut BytesMut) -> Result<Option<T>, JsonCodecError> {
        match self.frames.decode(src)? {
            Some(payload) => Ok(Some(serde_json::from_slice(&payload)?)),
            None => Ok(None),
        }
    }

    fn decode_eof(&mut self, src: &mut BytesMut) -> Result<Option<T>, JsonCodecError> {
        match self.frames.decode_eof(src)? {
            Some(payload) => Ok(Some(serde_json::from_slice(&payload)?)),
            None => Ok(None),
        }
    }
}

impl<T: Serialize> Encoder<&T> for JsonCodec<T> {
    type Error = JsonCodecError;

    fn encode(&mut self, message: &T, dst: &mut BytesMut) -> Result<(), JsonCodecError> {
        // Serialize straight into the output after a placeholder header, then
        // fill the header in: no intermediate buffer. On any failure the output
        // is put back as it was, so a failed message leaves no partial frame.
        let start = dst.len();
        dst.put_slice(&[0; HEADER_LEN]);
        let result = serde_json::to_writer(dst.writer(), message)
            .map_err(JsonCodecError::from)
            .and_then(|()| {
                let len = dst.len() - start - HEADER_LEN;
                Ok(frame::encode_header(
                    len,
                    self.frames.max_encode_frame_len(),
                )?)
            });
        match result {
            Ok(header) => {
                dst[start..start + HEADER_LEN].copy_from_slice(&header);
                Ok(())
            }
            Err(error) => {
                dst.truncate(start);
                Err(error)
            }
        }
    }
}

impl<T: Serialize> Encoder<T> for JsonCodec<T> {
    type Error = JsonCodecError;

    fn encode(&mut self, message: T, dst: &mut BytesMut) -> Result<(), JsonCodecError> {
        self.encode(&message, dst)
    }
}
