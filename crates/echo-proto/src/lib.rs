//! The echo protocol's wire format: length-prefixed frames.
//!
//! A frame is a 4-byte unsigned big-endian length `N`, then exactly `N` payload
//! bytes; `N = 0` is valid. The format is byte-compatible with tokio-util's
//! `LengthDelimitedCodec` at its defaults. The full specification, with test
//! vectors, is the crate's `PROTOCOL.md`, reproduced at the end of this page.
//!
//! # Layout
//!
//! | item | what it holds | feature |
//! |---|---|---|
//! | [`frame`] | the format itself: header encoding, length checks, constants, and a borrowed, limit-checked parser over `&[u8]` ([`frame::parse`], [`frame::frames`]) | always |
//! | [`FrameScanner`] | frame boundaries in a byte stream, for relays that never hold a whole frame | always |
//! | [`read_frame`], [`write_frame`], [`FrameReader`] | blocking helpers for `std::io`; the reader reuses one buffer for many frames | always |
//! | [`FrameError`] | the typed error every part returns | always |
//! | [`test_vectors`] | the test vectors of `PROTOCOL.md`, parsed from it, to test any implementation against | always |
//! | [`FrameCodec`], [`FrameCodecBuilder`] | a tokio-util `Decoder`/`Encoder` for frames | `codec` |
//! | [`JsonCodec`], [`JsonCodecError`] | typed messages as JSON over the same frames | `json` |
//! | [`proxy_header`] | the PROXY protocol header (versions 1 and 2) a load balancer sends before a connection's data: an incremental parser and the encoders | always |
//! | [`greeting`] | the optional greeting a server sends as a connection opens: its JSON, its bytes in each mode, and its parser | `greeting` |
//!
//! Nothing in the crate performs I/O of its own except the blocking helpers,
//! and nothing allocates from a length a peer announced: memory follows the
//! bytes that actually arrive.
//!
//! # Features
//!
//! All three are on by default. Without them (`default-features = false`) the
//! crate depends on `thiserror` alone and offers the frame format and its
//! parser, the scanner, the blocking helpers and the test vectors.
//!
//! - `codec`: [`FrameCodec`], for tokio-util's `Framed`, `FramedRead` and
//!   `FramedWrite`; pulls in `tokio-util` and `bytes`.
//! - `json`: [`JsonCodec`], typed messages as JSON; implies `codec` and
//!   pulls in `serde` and `serde_json`.
//! - `greeting`: [`greeting::Greeting`], the optional greeting of
//!   `PROTOCOL.md`; pulls in `serde` and `serde_json`, not the codecs.
//!
//! On docs.rs every feature is on, and each item that needs one says so.
//!
//! # Examples
//!
//! An echo round trip over TCP with tokio (feature `codec`):
//!
//! ```
//! # #[cfg(feature = "codec")]
//! # #[tokio::main(flavor = "current_thread")]
//! # async fn main() -> Result<(), Box<dyn std::error::Error>> {
//! use bytes::Bytes;
//! use echo_proto::FrameCodec;
//! use futures_util::{SinkExt, StreamExt};
//! use tokio::net::{TcpListener, TcpStream};
//! use tokio_util::codec::Framed;
//!
//! // A one-connection echo server, for the example's sake.
//! let listener = TcpListener::bind("127.0.0.1:0").await?;
//! let addr = listener.local_addr()?;
//! tokio::spawn(async move {
//!     let (socket, _) = listener.accept().await?;
//!     let mut frames = Framed::new(socket, FrameCodec::new());
//!     while let Some(frame) = frames.next().await {
//!         frames.send(frame?.freeze()).await?;
//!     }
//!     Ok::<_, echo_proto::FrameError>(())
//! });
//!
//! let mut client = Framed::new(TcpStream::connect(addr).await?, FrameCodec::new());
//! client.send(Bytes::from_static(b"Hello Echo!")).await?;
//! let echo = client.next().await.expect("the server answers")?;
//! assert_eq!(&echo[..], b"Hello Echo!");
//! # Ok(())
//! # }
//! # #[cfg(not(feature = "codec"))]
//! # fn main() {}
//! ```
//!
//! The same without an async runtime: [`write_frame`] sends, and a
//! [`FrameReader`] receives through one buffer that it reuses, however many
//! frames come.
//!
//! ```
//! use std::net::{TcpListener, TcpStream};
//!
//! use echo_proto::{FrameReader, frame::DEFAULT_MAX_FRAME_LEN, write_frame};
//!
//! // A one-connection echo server on a thread, for the example's sake.
//! let listener = TcpListener::bind("127.0.0.1:0")?;
//! let addr = listener.local_addr()?;
//! std::thread::spawn(move || {
//!     let (socket, _) = listener.accept()?;
//!     let mut writer = socket.try_clone()?;
//!     let mut frames = FrameReader::new(socket, DEFAULT_MAX_FRAME_LEN);
//!     while let Some(payload) = frames.read_frame()? {
//!         write_frame(&mut writer, payload)?;
//!     }
//!     Ok::<_, echo_proto::FrameError>(())
//! });
//!
//! let mut client = TcpStream::connect(addr)?;
//! let mut echoes = FrameReader::new(client.try_clone()?, DEFAULT_MAX_FRAME_LEN);
//! for text in ["Hello", "Echo!"] {
//!     write_frame(&mut client, text.as_bytes())?;
//!     assert_eq!(echoes.read_frame()?, Some(text.as_bytes()));
//! }
//! # Ok::<(), Box<dyn std::error::Error>>(())
//! ```
//!
//! A program with its own receive buffer takes the whole frames out of it
//! with [`frame::frames`], which checks each header against the limit and
//! says where it stopped, so that the rest waits for more bytes:
//!
//! ```
//! use echo_proto::frame;
//!
//! let mut buffer = Vec::new();
//! let mut received = Vec::new();
//! // The bytes arrive in pieces that cut frames anywhere.
//! for piece in [&[0, 0, 0][..], &[2, b'h', b'i', 0, 0], &[0, 0]] {
//!     buffer.extend_from_slice(piece);
//!     let mut frames = frame::frames(&buffer, 1024);
//!     for payload in frames.by_ref() {
//!         received.push(payload?.to_vec());
//!     }
//!     let consumed = frames.consumed();
//!     buffer.drain(..consumed);
//! }
//! assert_eq!(received, [b"hi".to_vec(), Vec::new()]);
//! assert!(buffer.is_empty());
//! # Ok::<(), echo_proto::FrameError>(())
//! ```
//!
//! A connection that settles its limits after a handshake changes them on
//! the live codec: see [`FrameCodec::set_max_decode_frame_len`]. An
//! implementation of the protocol, in Rust or not, can be checked against the
//! cases of the specification in [`test_vectors`].
// Without its feature, an item linked from this page is not there to link
// to. The default build has every item, and checks every link.
#![cfg_attr(
    not(all(feature = "json", feature = "greeting")),
    allow(rustdoc::broken_intra_doc_links)
)]
#![doc = ""]
#![doc = include_str!("../PROTOCOL.md")]
#![forbid(unsafe_code)]
#![deny(missing_docs)]
#![cfg_attr(docsrs, feature(doc_cfg))]

mod blocking;
mod error;
pub mod frame;
#[cfg(feature = "codec")]
mod frame_codec;
mod frame_scanner;
#[cfg(feature = "greeting")]
#[cfg_attr(docsrs, doc(cfg(feature = "greeting")))]
pub mod greeting;
#[cfg(feature = "json")]
mod json_codec;
pub mod proxy_header;
pub mod test_vectors;

pub use blocking::{FrameReader, read_frame, write_frame};
pub use error::FrameError;
#[cfg(feature = "codec")]
pub use frame_codec::{FrameCodec, FrameCodecBuilder};
pub use frame_scanner::{FrameScanner, Scan};
#[cfg(feature = "json")]
pub use json_codec::{JsonCodec, JsonCodecError};

/// The address an echo service uses unless told otherwise: port 9999 on the
/// IPv4 loopback, so that a server started without options serves this
/// machine only. `echo-server` listens there and `echo-client` connects there
/// by default.
///
/// ```
/// assert_eq!(echo_proto::DEFAULT_ADDR.to_string(), "127.0.0.1:9999");
/// assert!(echo_proto::DEFAULT_ADDR.ip().is_loopback());
/// ```
pub const DEFAULT_ADDR: std::net::SocketAddr =
    std::net::SocketAddr::new(std::net::IpAddr::V4(std::net::Ipv4Addr::LOCALHOST), 9999);
