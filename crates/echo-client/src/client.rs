//! [`Client`]: one TCP connection to an echo server.

use std::fmt;
use std::io;
use std::net::SocketAddr;
use std::time::Duration;

use bytes::Bytes;
use echo_proto::{FrameCodec, FrameError};
use futures_util::{SinkExt, StreamExt};
use tokio::net::TcpStream;
use tokio::net::tcp::{OwnedReadHalf, OwnedWriteHalf};
use tokio_util::codec::{FramedRead, FramedWrite};

use crate::ClientError;

/// A connection to an echo server.
///
/// The socket is split into a framed reading half and a framed writing half,
/// so that sending and receiving can make progress at the same time. That is
/// what keeps a large message from deadlocking: the server starts echoing a
/// large frame before it has received all of it, and stops reading when its
/// echoes are not read, so a client must read while it writes. The split
/// halves are also what a pipelining client needs later: a writer that runs
/// ahead of a reader.
///
/// Both halves use the protocol's default maximum frame length (8 MiB): a
/// longer message is refused before anything is sent.
///
/// ```
/// use std::time::Duration;
/// use echo_client::Client;
/// # use echo_server::{Config, Server};
///
/// # #[tokio::main(flavor = "current_thread")]
/// # async fn main() -> Result<(), Box<dyn std::error::Error>> {
/// # let config = Config { listen: "127.0.0.1:0".parse()?, ..Config::default() };
/// # let server = Server::bind(config).await?;
/// # let addr = server.local_addr();
/// # tokio::spawn(server.run(std::future::pending()));
/// let mut client = Client::connect(addr, Duration::from_secs(5)).await?;
/// assert_eq!(client.peer_addr(), addr);
/// let echo = client.echo(b"Hello Echo!").await?;
/// assert_eq!(&echo[..], b"Hello Echo!");
/// # Ok(())
/// # }
/// ```
#[derive(Debug)]
pub struct Client {
    /// The address as the caller gave it: every error names it, because that
    /// is what the user typed and will recognise.
    addr: String,
    /// The socket address actually connected to.
    peer: SocketAddr,
    /// The bound on connecting and on each echo.
    timeout: Duration,
    reader: FramedRead<OwnedReadHalf, FrameCodec>,
    writer: FramedWrite<OwnedWriteHalf, FrameCodec>,
}

impl Client {
    /// Connects to the echo server at `addr`.
    ///
    /// `addr` is anything that displays as `HOST:PORT`: a [`SocketAddr`], a
    /// string such as `"127.0.0.1:9999"` or `"localhost:9999"`. A host name
    /// is resolved and each of its addresses is tried in turn. Resolving and
    /// connecting together must finish within `timeout`, which then also
    /// bounds each [`echo`](Client::echo).
    ///
    /// # Errors
    ///
    /// [`ClientError::Resolve`] if `addr` is malformed or does not resolve,
    /// [`ClientError::Connect`] if every address refused or failed, and
    /// [`ClientError::ConnectTimeout`] if the timeout expired first.
    ///
    /// ```
    /// use std::time::Duration;
    /// use echo_client::{Client, ClientError};
    ///
    /// # #[tokio::main(flavor = "current_thread")]
    /// # async fn main() {
    /// let result = Client::connect("no port here", Duration::from_secs(5)).await;
    /// assert!(matches!(result, Err(ClientError::Resolve { .. })));
    /// # }
    /// ```
    pub async fn connect(
        addr: impl fmt::Display,
        timeout: Duration,
    ) -> Result<Client, ClientError> {
        let addr = addr.to_string();
        let (stream, peer) =
            tokio::time::timeout(timeout, open(&addr))
                .await
                .map_err(|_elapsed| ClientError::ConnectTimeout {
                    addr: addr.clone(),
                    waited: timeout,
                })??;
        // Each frame is written in one piece, so Nagle's algorithm could only
        // delay it: it would hold a small frame back until the previous one was
        // acknowledged, which with delayed acknowledgements costs tens of
        // milliseconds per exchange.
        stream.set_nodelay(true).map_err(|source| ClientError::Io {
            addr: addr.clone(),
            source,
        })?;
        tracing::debug!(%addr, %peer, "connected");
        let (read_half, write_half) = stream.into_split();
        Ok(Client {
            addr,
            peer,
            timeout,
            reader: FramedRead::new(read_half, FrameCodec::new()),
            writer: FramedWrite::new(write_half, FrameCodec::new()),
        })
    }

    /// The socket address of the server this client is connected to.
    pub fn peer_addr(&self) -> SocketAddr {
        self.peer
    }

    /// Sends `payload` as one frame and returns its echo, once the echo has
    /// arrived in full and been checked to be identical.
    ///
    /// Sending and receiving together must finish within the timeout given
    /// to [`connect`](Client::connect). An empty payload is a valid message.
    ///
    /// # Errors
    ///
    /// [`ClientError::Timeout`], [`ClientError::Closed`] if the server closed
    /// the connection first, [`ClientError::Mismatch`] if the echo differs,
    /// [`ClientError::Frame`] if `payload` is longer than the maximum frame
    /// length, and [`ClientError::Io`] for other socket failures.
    ///
    /// ```
    /// use std::time::Duration;
    /// use echo_client::Client;
    /// # use echo_server::{Config, Server};
    ///
    /// # #[tokio::main(flavor = "current_thread")]
    /// # async fn main() -> Result<(), Box<dyn std::error::Error>> {
    /// # let config = Config { listen: "127.0.0.1:0".parse()?, ..Config::default() };
    /// # let server = Server::bind(config).await?;
    /// # let addr = server.local_addr();
    /// # tokio::spawn(server.run(std::future::pending()));
    /// let mut client = Client::connect(addr, Duration::from_secs(5)).await?;
    /// for message in [&b"one"[..], b"", b"\x00\xff binary"] {
    ///     assert_eq!(client.echo(message).await?, message);
    /// }
    /// # Ok(())
    /// # }
    /// ```
    pub async fn echo(&mut self, payload: &[u8]) -> Result<Bytes, ClientError> {
        let Client {
            addr,
            timeout,
            reader,
            writer,
            ..
        } = self;
        let addr: &str = addr;
        let sent_len = payload.len();

        let send = async {
            writer
                .send(payload)
                .await
                .map_err(|error| exchange_error(addr, sent_len, error))
        };
        let receive = async {
            match reader.next().await {
                Some(Ok(frame)) => Ok(frame),
                Some(Err(error)) => Err(exchange_error(addr, sent_len, error)),
                None => Err(closed(addr, sent_len)),
            }
        };
        // Both at once (see the type's documentation for why); the first
        // error ends both, so a server that closes mid-message is reported
        // without waiting for the rest of the message to be written.
        let ((), echo) = tokio::time::timeout(*timeout, async { tokio::try_join!(send, receive) })
            .await
            .map_err(|_elapsed| ClientError::Timeout {
                addr: addr.to_owned(),
                waited: *timeout,
            })??;

        if echo[..] != *payload {
            let first_difference = payload
                .iter()
                .zip(echo.iter())
                .position(|(sent, received)| sent != received)
                .unwrap_or(sent_len.min(echo.len()));
            return Err(ClientError::Mismatch {
                addr: addr.to_owned(),
                sent_len,
                received_len: echo.len(),
                first_difference,
            });
        }
        tracing::trace!(%addr, len = sent_len, "echoed");
        Ok(echo.freeze())
    }
}

/// Resolves `addr` and connects to the first of its addresses that accepts.
async fn open(addr: &str) -> Result<(TcpStream, SocketAddr), ClientError> {
    let candidates =
        tokio::net::lookup_host(addr)
            .await
            .map_err(|source| ClientError::Resolve {
                addr: addr.to_owned(),
                source,
            })?;
    let mut last_error = None;
    for candidate in candidates {
        tracing::debug!(%addr, %candidate, "connecting");
        match TcpStream::connect(candidate).await {
            Ok(stream) => return Ok((stream, candidate)),
            Err(error) => {
                tracing::debug!(%addr, %candidate, %error, "connection failed");
                last_error = Some(error);
            }
        }
    }
    Err(match last_error {
        Some(source) => ClientError::Connect {
            addr: addr.to_owned(),
            source,
        },
        None => ClientError::Resolve {
            addr: addr.to_owned(),
            source: io::Error::new(io::ErrorKind::NotFound, "it resolved to no addresses"),
        },
    })
}

/// Turns a failure while a `sent_len`-byte message was being exchanged into
/// the error that explains it to the user.
///
/// Whichever way the connection ended early (a clean end of stream between
/// frames, an end inside the echo, a reset because the server closed with our
/// bytes unread, a broken pipe while writing), what the user needs to know is
/// the same: the server closed the connection before echoing the message.
fn exchange_error(addr: &str, sent_len: usize, error: FrameError) -> ClientError {
    match error {
        FrameError::Truncated { .. } => closed(addr, sent_len),
        FrameError::Io(source) => match source.kind() {
            io::ErrorKind::ConnectionReset
            | io::ErrorKind::ConnectionAborted
            | io::ErrorKind::BrokenPipe
            | io::ErrorKind::UnexpectedEof => closed(addr, sent_len),
            _ => ClientError::Io {
                addr: addr.to_owned(),
                source,
            },
        },
        source => ClientError::Frame {
            addr: addr.to_owned(),
            source,
        },
    }
}

fn closed(addr: &str, sent_len: usize) -> ClientError {
    ClientError::Closed {
        addr: addr.to_owned(),
        sent_len,
    }
}
