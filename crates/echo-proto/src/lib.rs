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
//!
//! Nothing in the crate performs I/O of its own except the blocking helpers,
//! and nothing allocates from a length a peer announced: memory follows the
//! bytes that actually arrive.
//!
//! # Features
//!
//! Both are on by default. Without them (`default-features = false`) the
//! crate depends on `thiserror` alone and offers the frame format, the
//! scanner and the blocking helpers.
//!
//! - `codec`: [`FrameCodec`], for tokio-util's `Framed`, `FramedRead` and
//!   `FramedWrite`; pulls in `tokio-util` and `bytes`.
//! - `json`: [`JsonCodec`], typed messages as JSON; implies `codec` and
//!   pulls in `serde` and `serde_json`.
//!
//! On docs.rs every feature is on, and each item that needs one says so.
//!
//! # Example
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
// Without its feature, an item linked from this page is not there to link
// to. The default build has every item, and checks every link.
#![cfg_attr(not(feature = "json"), allow(rustdoc::broken_intra_doc_links))]
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
#[cfg(feature = "json")]
mod json_codec;
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
