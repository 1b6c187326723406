//! [`FrameCodec`]: a tokio-util [`Decoder`] and [`Encoder`] for frames.

use bytes::{Buf, BufMut, Bytes, BytesMut};
use tokio_util::codec::{Decoder, Encoder};

use crate::FrameError;
use crate::frame::{self, DEFAULT_MAX_FRAME_LEN, HEADER_LEN, MAX_ANNOUNCEABLE_LEN};

/// The most the decoder asks the read buffer to grow by in one step while a
/// frame's payload is still arriving.
///
/// tokio-util's codec reserves the whole announced length as soon as it has
/// read a 4-byte header, so a peer can make it allocate the maximum frame size
/// by sending four bytes. Growing in steps no larger than this keeps memory in
/// proportion to the bytes that actually arrive, while still letting large
/// frames be read with few, large reads.
const MAX_RESERVE_STEP: usize = 64 * 1024;

/// Encodes and decodes length-prefixed frames: a 4-byte big-endian length,
/// then that many payload bytes.
///
/// The wire format is byte-compatible with tokio-util's `LengthDelimitedCodec`
/// with its default settings. Decoded frames are the payload alone, without
/// the header.
///
/// ```
/// use bytes::{Bytes, BytesMut};
/// use echo_proto::FrameCodec;
/// use tokio_util::codec::{Decoder, Encoder};
///
/// let mut codec = FrameCodec::new();
/// let mut wire = BytesMut::new();
/// codec.encode(Bytes::from_static(b"hello"), &mut wire)?;
/// assert_eq!(&wire[..], b"\x00\x00\x00\x05hello");
///
/// let frame = codec.decode(&mut wire)?.expect("a whole frame is buffered");
/// assert_eq!(&frame[..], b"hello");
/// # Ok::<(), echo_proto::FrameError>(())
/// ```
///
/// With a `tokio::net::TcpStream`, wrap the stream in
/// [`tokio_util::codec::Framed`] to get a `Stream` of frames and a `Sink` for
/// them.
#[cfg_attr(docsrs, doc(cfg(feature = "codec")))]
#[derive(Debug, Clone)]
pub struct FrameCodec {
    max_decode_len: usize,
    max_encode_len: usize,
    /// The payload length of the frame being decoded, once its header has been
    /// read and removed from the buffer.
    pending_payload_len: Option<usize>,
}

impl FrameCodec {
    /// A codec with the default limit of [`DEFAULT_MAX_FRAME_LEN`] (8 MiB) in
    /// both directions.
    ///
    /// ```
    /// use echo_proto::FrameCodec;
    ///
    /// let codec = FrameCodec::new();
    /// assert_eq!(codec.max_decode_frame_len(), 8 * 1024 * 1024);
    /// ```
    pub fn new() -> Self {
        Self {
            max_decode_len: DEFAULT_MAX_FRAME_LEN,
            max_encode_len: DEFAULT_MAX_FRAME_LEN,
            pending_payload_len: None,
        }
    }

    /// A builder for a codec with other limits.
    ///
    /// ```
    /// use echo_proto::FrameCodec;
    ///
    /// let codec = FrameCodec::builder().max_frame_len(1024).build();
    /// assert_eq!(codec.max_encode_frame_len(), 1024);
    /// ```
    pub fn builder() -> FrameCodecBuilder {
        FrameCodecBuilder::default()
    }

    /// The longest payload the decoder accepts.
    pub fn max_decode_frame_len(&self) -> usize {
        self.max_decode_len
    }

    /// The longest payload the encoder accepts.
    pub fn max_encode_frame_len(&self) -> usize {
        self.max_encode_len
    }

    /// Changes the longest payload the decoder accepts, on a codec in use:
    /// through [`Framed::codec_mut`], for example, once a handshake has
    /// settled what the peer may send. Values above `u32::MAX` are clamped to
    /// it.
    ///
    /// The new limit applies from the next header the decoder reads, even if
    /// its bytes are already buffered. A frame whose header was accepted
    /// before the change is finished under the limit that accepted it: the
    /// decoder has already taken that header out of the buffer, and cutting
    /// the frame short would leave the stream out of step.
    ///
    /// ```
    /// use bytes::Bytes;
    /// use echo_proto::{FrameCodec, FrameError};
    /// use futures_util::{SinkExt, StreamExt};
    /// use tokio_util::codec::Framed;
    ///
    /// # #[tokio::main(flavor = "current_thread")]
    /// # async fn main() -> Result<(), FrameError> {
    /// let (client, server) = tokio::io::duplex(4096);
    /// let mut client = Framed::new(client, FrameCodec::new());
    /// let mut server = Framed::new(server, FrameCodec::builder().max_frame_len(16).build());
    ///
    /// // A short greeting under the first limit...
    /// client.send(Bytes::from_static(b"hello")).await?;
    /// assert_eq!(&server.next().await.expect("a frame")?[..], b"hello");
    ///
    /// // ...after which the server accepts larger frames.
    /// server.codec_mut().set_max_decode_frame_len(1024);
    /// client.send(Bytes::from(vec![0; 1000])).await?;
    /// assert_eq!(server.next().await.expect("a frame")?.len(), 1000);
    ///
    /// // Lowered again, the limit judges the next header.
    /// server.codec_mut().set_max_decode_frame_len(8);
    /// client.send(Bytes::from_static(b"too long now")).await?;
    /// assert!(matches!(
    ///     server.next().await,
    ///     Some(Err(FrameError::FrameTooLarge { len: 12, max: 8 }))
    /// ));
    /// # Ok(())
    /// # }
    /// ```
    ///
    /// [`Framed::codec_mut`]: tokio_util::codec::Framed::codec_mut
    pub fn set_max_decode_frame_len(&mut self, len: usize) {
        self.max_decode_len = len.min(MAX_ANNOUNCEABLE_LEN);
    }

    /// Changes the longest payload the encoder accepts, on a codec in use.
    /// Values above `u32::MAX` are clamped to it.
    ///
    /// It applies from the next payload encoded; frames already encoded into
    /// the output are left as they are.
    ///
    /// ```
    /// use bytes::BytesMut;
    /// use echo_proto::{FrameCodec, FrameError};
    /// use tokio_util::codec::Encoder;
    ///
    /// let mut codec = FrameCodec::new();
    /// let mut wire = BytesMut::new();
    /// codec.encode(&b"four"[..], &mut wire)?;
    /// codec.set_max_encode_frame_len(3);
    /// assert!(matches!(
    ///     codec.encode(&b"four"[..], &mut wire),
    ///     Err(FrameError::FrameTooLarge { len: 4, max: 3 })
    /// ));
    /// assert_eq!(&wire[..], b"\x00\x00\x00\x04four");
    /// # Ok::<(), FrameError>(())
    /// ```
    pub fn set_max_encode_frame_len(&mut self, len: usize) {
        self.max_encode_len = len.min(MAX_ANNOUNCEABLE_LEN);
    }

    fn encode_slice(&self, payload: &[u8], dst: &mut BytesMut) -> Result<(), FrameError> {
        // Check the size before reserving anything.
        let header = frame::encode_header(payload.len(), self.max_encode_len)?;
        dst.reserve(HEADER_LEN + payload.len());
        dst.put_slice(&header);
        dst.put_slice(payload);
        Ok(())
    }
}

impl Default for FrameCodec {
    fn default() -> Self {
        Self::new()
    }
}

impl Decoder for FrameCodec {
    type Item = BytesMut;
    type Error = FrameError;

    fn decode(&mut self, src: &mut BytesMut) -> Result<Option<BytesMut>, FrameError> {
        let payload_len = match self.pending_payload_len {
            Some(len) => len,
            None => {
                // The cheap check first: is a whole header here?
                let Some(header) = src.first_chunk::<HEADER_LEN>() else {
                    return Ok(None);
                };
                let len = frame::decode_header(*header);
                // Reject before touching the buffer, so an oversize header costs
                // nothing.
                frame::check_len(len, self.max_decode_len)?;
                src.advance(HEADER_LEN);
                self.pending_payload_len = Some(len);
                len
            }
        };

        if src.len() < payload_len {
            // Ask for room for the next piece of the payload, never for more than
            // MAX_RESERVE_STEP at once: the peer has only promised the rest.
            let missing = payload_len - src.len();
            src.reserve(missing.min(MAX_RESERVE_STEP));
            return Ok(None);
        }

        self.pending_payload_len = None;
        Ok(Some(src.split_to(payload_len)))
    }

    fn decode_eof(&mut self, src: &mut BytesMut) -> Result<Option<BytesMut>, FrameError> {
        if let Some(frame) = self.decode(src)? {
            return Ok(Some(frame));
        }
        let (received, expected) = match self.pending_payload_len {
            None if src.is_empty() => return Ok(None),
            None => (src.len(), HEADER_LEN),
            Some(len) => (HEADER_LEN + src.len(), HEADER_LEN + len),
        };
        // Leave the codec clean in case the caller keeps using it.
        self.pending_payload_len = None;
        src.clear();
        Err(FrameError::Truncated {
            received: received as u64,
            expected: expected as u64,
        })
    }
}

impl Encoder<Bytes> for FrameCodec {
    type Error = FrameError;

    fn encode(&mut self, payload: Bytes, dst: &mut BytesMut) -> Result<(), FrameError> {
        self.encode_slice(&payload, dst)
    }
}

impl Encoder<BytesMut> for FrameCodec {
    type Error = FrameError;

    fn encode(&mut self, payload: BytesMut, dst: &mut BytesMut) -> Result<(), FrameError> {
        self.encode_slice(&payload, dst)
    }
}

impl Encoder<&[u8]> for FrameCodec {
    type Error = FrameError;

    fn encode(&mut self, payload: &[u8], dst: &mut BytesMut) -> Result<(), FrameError> {
        self.encode_slice(payload, dst)
    }
}

/// Configures a [`FrameCodec`]. Made by [`FrameCodec::builder`].
#[cfg_attr(docsrs, doc(cfg(feature = "codec")))]
#[derive(Debug, Clone, Default)]
pub struct FrameCodecBuilder {
    /// The codec being configured: the builder sets its limits through the
    /// same setters as a codec in use, so that both clamp alike.
    codec: FrameCodec,
}

impl FrameCodecBuilder {
    /// Sets the longest payload accepted, for **both** decoding and encoding.
    ///
    /// Values above `u32::MAX` are clamped to it, the most a header can say.
    ///
    /// ```
    /// use echo_proto::FrameCodec;
    ///
    /// let codec = FrameCodec::builder().max_frame_len(64).build();
    /// assert_eq!((codec.max_decode_frame_len(), codec.max_encode_frame_len()), (64, 64));
    /// ```
    pub fn max_frame_len(self, len: usize) -> Self {
        self.max_decode_frame_len(len).max_encode_frame_len(len)
    }

    /// Sets the longest payload accepted when **decoding**. A header announcing
    /// more is rejected with [`FrameError::FrameTooLarge`] before anything is
    /// allocated for it.
    ///
    /// ```
    /// use echo_proto::FrameCodec;
    ///
    /// let codec = FrameCodec::builder().max_decode_frame_len(1024).build();
    /// assert_eq!(codec.max_decode_frame_len(), 1024);
    /// assert_eq!(codec.max_encode_frame_len(), 8 * 1024 * 1024);
    /// ```
    pub fn max_decode_frame_len(mut self, len: usize) -> Self {
        self.codec.set_max_decode_frame_len(len);
        self
    }

    /// Sets the longest payload accepted when **encoding**. Encoding a longer
    /// payload fails with [`FrameError::FrameTooLarge`] and writes nothing.
    ///
    /// ```
    /// use bytes::BytesMut;
    /// use echo_proto::{FrameCodec, FrameError};
    /// use tokio_util::codec::Encoder;
    ///
    /// let mut codec = FrameCodec::builder().max_encode_frame_len(2).build();
    /// let mut wire = BytesMut::new();
    /// let result = codec.encode(&b"abc"[..], &mut wire);
    /// assert!(matches!(result, Err(FrameError::FrameTooLarge { len: 3, max: 2 })));
    /// assert!(wire.is_empty());
    /// ```
    pub fn max_encode_frame_len(mut self, len: usize) -> Self {
        self.codec.set_max_encode_frame_len(len);
        self
    }

    /// Builds the codec.
    pub fn build(self) -> FrameCodec {
        self.codec
    }
}
