//! The echo protocol's wire format: length-prefixed frames.
//!
//! A frame is a 4-byte unsigned big-endian length `N`, then exactly `N` payload
//! bytes; `N = 0` is valid. The format is byte-compatible with tokio-util's
//! `LengthDelimitedCodec` at its defaults. The full specification, with test
//! vectors, is the crate's `PROTOCOL.md`, reproduced at the end of this page.
//!
//! # Layout
//!
//! | module | what it holds |
//! |---|---|
//! | [`frame`] | the format itself: header encoding, length checks, constants |
//! | [`FrameCodec`] | a tokio-util [`Decoder`]/[`Encoder`] for frames |
//! | [`JsonCodec`] | typed messages as JSON over the same frames |
//! | [`FrameScanner`] | frame boundaries in a byte stream, for relays that never hold a whole frame |
//! | [`read_frame`], [`write_frame`] | blocking helpers for `std::io` |
//! | [`FrameError`] | the typed error every part returns |
//!
//! Nothing in the crate performs I/O of its own except the blocking helpers,
//! and nothing allocates from a length a peer announced: memory follows the
//! bytes that actually arrive.
//!
//! # Example
//!
//! An echo round trip over TCP with tokio:
//!
//! ```
//! use bytes::Bytes;
//! use echo_proto::FrameCodec;
//! use futures_util::{SinkExt, StreamExt};
//! use tokio::net::{TcpListener, TcpStream};
//! use tokio_util::codec::Framed;
//!
//! # #[tokio::main(flavor = "current_thread")]
//! # async fn main() -> Result<(), Box<dyn std::error::Error>> {
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
//! ```
//!
//! [`Decoder`]: tokio_util::codec::Decoder
//! [`Encoder`]: tokio_util::codec::Encoder
#![doc = ""]
#![doc = include_str!("../PROTOCOL.md")]
#![forbid(unsafe_code)]
#![deny(missing_docs)]

mod blocking;
mod error;
pub mod frame;
mod frame_codec;
mod frame_scanner;
mod json_codec;

pub use blocking::{read_frame, write_frame};
pub use error::FrameError;
pub use frame_codec::{FrameCodec, FrameCodecBuilder};
pub use frame_scanner::{FrameScanner, Scan};
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

/// The README's Rust samples, compiled as doctests so they stay true.
#[cfg(doctest)]
#[doc = include_str!("../../../README.md")]
struct ReadmeDoctests;
