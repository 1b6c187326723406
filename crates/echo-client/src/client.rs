//! [`Client`]: one connection to an echo server, for echoing messages one at
//! a time or many at once.

use std::fmt;
use std::net::SocketAddr;
use std::time::Duration;

use bytes::Bytes;
use echo_proto::FrameError;
use echo_proto::greeting::Greeting;

use crate::error::ClientError;
use crate::greeting;
use crate::mode::Mode;
use crate::proxy::ProxyProtocol;
use crate::tls::TlsOptions;
use crate::transport::{self, Dial, Receiver, Sender};

/// How [`Client::connect_with_options`] connects: everything but the
/// address.
///
/// ```
/// use std::time::Duration;
/// use echo_client::{ConnectOptions, Mode};
///
/// let options = ConnectOptions::default();
/// assert_eq!((options.mode, options.timeout), (Mode::Framed, Duration::from_secs(5)));
/// assert!(options.proxy.is_none() && options.tls.is_none());
/// ```
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ConnectOptions {
    /// How to talk to the server.
    pub mode: Mode,
    /// The bound on resolving and connecting (the TLS handshake included),
    /// and then on each echo.
    pub timeout: Duration,
    /// A PROXY protocol header to send first, as a load balancer would.
    pub proxy: Option<ProxyProtocol>,
    /// TLS, after the PROXY header if there is one.
    pub tls: Option<TlsOptions>,
}

impl Default for ConnectOptions {
    /// Framed, a 5-second timeout, no PROXY header, no TLS.
    fn default() -> Self {
        Self {
            mode: Mode::Framed,
            timeout: Duration::from_secs(5),
            proxy: None,
            tls: None,
        }
    }
}

/// A connection to an echo server.
///
/// The connection is split into a sending half and a receiving half, so that
/// sending and receiving can make progress at the same time. That is what
/// keeps a large message from deadlocking: the server starts echoing a large
/// message before it has received all of it, and stops reading when its
/// echoes are not read, so a client must read while it writes.
///
/// Framed messages are limited to the protocol's default maximum frame length
/// (8 MiB): a longer one is refused before anything is sent.
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
    mode: Mode,
    /// The bound on connecting and on each echo.
    timeout: Duration,
    sender: Sender,
    receiver: Receiver,
    /// How long the TCP connection and the TLS handshake took.
    connect_time: Duration,
    handshake_time: Option<Duration>,
}

impl Client {
    /// Connects to the echo server at `addr` over framed TCP, the echo
    /// protocol; see [`connect_with`](Client::connect_with) for the others.
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
        Self::connect_with(addr, Mode::Framed, timeout).await
    }

    /// Connects to the echo server at `addr` in `mode`.
    ///
    /// Over UDP nothing is exchanged until the first message: "connecting"
    /// resolves the address and fixes the socket's peer, so an absent server
    /// shows up at the first echo, as [`ClientError::Unreachable`] or a
    /// timeout.
    ///
    /// # Errors
    ///
    /// As for [`connect`](Client::connect).
    ///
    /// ```
    /// use std::time::Duration;
    /// use echo_client::{Client, Mode};
    /// # use echo_server::{Config, Server};
    ///
    /// # #[tokio::main(flavor = "current_thread")]
    /// # async fn main() -> Result<(), Box<dyn std::error::Error>> {
    /// # let server = Server::bind(Config {
    /// #     listen: "127.0.0.1:0".parse()?,
    /// #     mode: echo_server::Mode::Raw,
    /// #     udp: Some("127.0.0.1:0".parse()?),
    /// #     ..Config::default()
    /// # }).await?;
    /// # let (tcp, udp) = (server.local_addr(), server.udp_addr().expect("UDP is on"));
    /// # tokio::spawn(server.run(std::future::pending()));
    /// // RFC 862 over TCP: no framing.
    /// let mut raw = Client::connect_with(tcp, Mode::Raw, Duration::from_secs(5)).await?;
    /// assert_eq!(&raw.echo(b"raw bytes").await?[..], b"raw bytes");
    ///
    /// // RFC 862 over UDP: one datagram each way.
    /// let mut udp = Client::connect_with(udp, Mode::Udp, Duration::from_secs(5)).await?;
    /// assert_eq!(&udp.echo(b"a datagram").await?[..], b"a datagram");
    /// # Ok(())
    /// # }
    /// ```
    pub async fn connect_with(
        addr: impl fmt::Display,
        mode: Mode,
        timeout: Duration,
    ) -> Result<Client, ClientError> {
        Self::open(addr.to_string(), Dial::plain(mode), timeout).await
    }

    /// Connects to the echo server at `addr` as `options` say: the mode and
    /// the timeout, and over TCP a PROXY protocol header first, TLS, or
    /// both (the header first, as a load balancer sends it).
    ///
    /// # Errors
    ///
    /// [`ClientError::InvalidSetting`] for a PROXY header or TLS over UDP,
    /// [`ClientError::TlsSetup`] for TLS files that cannot be used,
    /// [`ClientError::TlsHandshake`] when the handshake fails (a
    /// certificate that does not verify, say), and otherwise as for
    /// [`connect`](Client::connect).
    ///
    /// ```
    /// use std::time::Duration;
    /// use echo_client::{Client, ConnectOptions, ProxyProtocol, ProxyVersion};
    /// # use echo_server::{Config, Server};
    ///
    /// # #[tokio::main(flavor = "current_thread")]
    /// # async fn main() -> Result<(), Box<dyn std::error::Error>> {
    /// # let server = Server::bind(Config {
    /// #     listen: "127.0.0.1:0".parse()?,
    /// #     proxy_protocol: true,
    /// #     ..Config::default()
    /// # }).await?;
    /// # let addr = server.local_addr();
    /// # tokio::spawn(server.run(std::future::pending()));
    /// // A server started with --proxy-protocol, which takes headers from
    /// // loopback.
    /// let options = ConnectOptions {
    ///     proxy: Some(ProxyProtocol {
    ///         version: ProxyVersion::V2,
    ///         source: Some("198.18.0.9:4000".parse()?),
    ///     }),
    ///     ..ConnectOptions::default()
    /// };
    /// let mut client = Client::connect_with_options(addr, &options).await?;
    /// assert_eq!(&client.echo(b"via a balancer").await?[..], b"via a balancer");
    /// # Ok(())
    /// # }
    /// ```
    pub async fn connect_with_options(
        addr: impl fmt::Display,
        options: &ConnectOptions,
    ) -> Result<Client, ClientError> {
        let addr = addr.to_string();
        if !options.mode.is_tcp() && (options.proxy.is_some() || options.tls.is_some()) {
            return Err(ClientError::InvalidSetting {
                reason: "a PROXY header and TLS go over TCP (framed or raw), not UDP".to_owned(),
            });
        }
        let tls = options
            .tls
            .as_ref()
            .map(|tls| tls.connector(&addr))
            .transpose()?;
        let dial = Dial {
            mode: options.mode,
            proxy: options.proxy.as_ref(),
            tls: tls.as_ref(),
        };
        Self::open(addr, dial, options.timeout).await
    }

    async fn open(addr: String, dial: Dial<'_>, timeout: Duration) -> Result<Client, ClientError> {
        let mode = dial.mode;
        let link = transport::connect(&addr, dial, timeout).await?;
        tracing::debug!(%addr, peer = %link.peer, %mode, "connected");
        Ok(Client {
            addr,
            peer: link.peer,
            mode,
            timeout,
            sender: link.sender,
            receiver: link.receiver,
            connect_time: link.connect_time,
            handshake_time: link.handshake_time,
        })
    }

    /// How long the TCP connection took to open, as curl's `time_connect`;
    /// zero over UDP, which opens nothing.
    pub fn connect_time(&self) -> Duration {
        self.connect_time
    }

    /// How long the TLS handshake took after the connection opened, as
    /// curl's `time_appconnect` less `time_connect`; `None` without TLS.
    pub fn tls_handshake_time(&self) -> Option<Duration> {
        self.handshake_time
    }

    /// Reads the greeting that a server told to greet (`echo-server
    /// --greeting`) opens each connection with, and says who answered. Call
    /// it first, before any echo, and only when the server is known to
    /// greet: the greeting is an extension of the protocol that nothing on
    /// the wire announces. It must arrive within the timeout given to
    /// [`connect`](Client::connect).
    ///
    /// # Errors
    ///
    /// [`ClientError::NoGreeting`] if none came in time or the connection
    /// ended first, [`ClientError::BadGreeting`] if the first frame (or, in
    /// raw mode, line) is not a greeting, and [`ClientError::InvalidSetting`]
    /// over UDP, where there is no connection to greet.
    ///
    /// ```
    /// use std::time::Duration;
    /// use echo_client::{Client, ClientError};
    /// # use echo_server::{Config, Server};
    ///
    /// # #[tokio::main(flavor = "current_thread")]
    /// # async fn main() -> Result<(), Box<dyn std::error::Error>> {
    /// # let server = Server::bind(Config {
    /// #     listen: "127.0.0.1:0".parse()?,
    /// #     greeting: true,
    /// #     ..Config::default()
    /// # }).await?;
    /// # let addr = server.local_addr();
    /// # tokio::spawn(server.run(std::future::pending()));
    /// // A server started with --greeting.
    /// let mut client = Client::connect(addr, Duration::from_secs(5)).await?;
    /// let greeting = client.read_greeting().await?;
    /// assert_eq!(greeting.server, "echo-server");
    /// println!("served by {}", greeting.instance);
    /// assert_eq!(&client.echo(b"hi").await?[..], b"hi");
    /// # Ok(())
    /// # }
    /// ```
    pub async fn read_greeting(&mut self) -> Result<Greeting, ClientError> {
        greeting::receive(&mut self.receiver, &self.addr, self.mode, self.timeout).await
    }

    /// The socket address of the server this client is connected to.
    pub fn peer_addr(&self) -> SocketAddr {
        self.peer
    }

    /// The mode this client speaks.
    pub fn mode(&self) -> Mode {
        self.mode
    }

    /// The address as the caller gave it, which every error names.
    pub(crate) fn addr(&self) -> &str {
        &self.addr
    }

    /// What an exchange needs at once: the address and timeout its errors
    /// name, the mode, and both halves. [`pipeline`](Client::pipeline) uses
    /// them, and so does the [`Pinger`](crate::ping::Pinger), which times one
    /// message at a time and must tell late echoes from current ones.
    pub(crate) fn parts(&mut self) -> (&str, Mode, Duration, &mut Sender, &mut Receiver) {
        (
            &self.addr,
            self.mode,
            self.timeout,
            &mut self.sender,
            &mut self.receiver,
        )
    }

    /// Sends `payload` as one message and returns its echo, once the echo has
    /// arrived in full and been checked to be identical.
    ///
    /// Sending and receiving together must finish within the timeout given
    /// to [`connect`](Client::connect). An empty payload is a valid message;
    /// over raw TCP its echo is empty and nothing is exchanged.
    ///
    /// # Errors
    ///
    /// [`ClientError::Timeout`], [`ClientError::Closed`] if the server closed
    /// the connection first, [`ClientError::Mismatch`] if the echo differs,
    /// [`ClientError::Frame`] if a framed `payload` is longer than the
    /// maximum frame length, [`ClientError::Unreachable`] if nothing answers
    /// UDP at the address, and [`ClientError::Io`] for other socket failures.
    /// After an error, drop the client: an echo may still be on its way.
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
        let mut echoes = self.pipeline(&[payload]).await?;
        Ok(echoes.pop().expect("one message has one echo"))
    }

    /// Sends every payload, one message each, all at once without waiting for
    /// echoes in between, and returns their echoes in the same order, once
    /// every one has arrived and been checked to be identical to its message.
    ///
    /// Pipelining spares a round trip per message. The messages are written
    /// together (in one write over TCP), so memory for all of them is needed
    /// at once. Each echo must arrive within the timeout given to
    /// [`connect`](Client::connect) of the one before it (or of the start).
    ///
    /// Over UDP, replies may come back in any order: each reply is matched
    /// to a message with the same content that has not had its echo yet. Many
    /// datagrams sent at once can overflow a server's socket buffer and be
    /// lost, which shows up as a timeout.
    ///
    /// # Errors
    ///
    /// As for [`echo`](Client::echo); the first failure ends the exchange.
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
    /// let messages: Vec<String> = (0..100).map(|i| format!("message {i}")).collect();
    /// let echoes = client.pipeline(&messages).await?;
    /// assert_eq!(echoes.len(), 100);
    /// assert_eq!(&echoes[42][..], b"message 42");
    /// # Ok(())
    /// # }
    /// ```
    pub async fn pipeline<P: AsRef<[u8]>>(
        &mut self,
        payloads: &[P],
    ) -> Result<Vec<Bytes>, ClientError> {
        let (addr, mode, timeout, sender, receiver) = self.parts();
        for payload in payloads {
            sender
                .push(&[payload.as_ref()])
                .map_err(|source| ClientError::exchange(addr, payload.as_ref().len(), source))?;
        }
        // The length named if the connection ends early: the first message's.
        let first_len = payloads.first().map_or(0, |payload| payload.as_ref().len());

        let send = async {
            sender
                .flush()
                .await
                .map_err(|error| ClientError::exchange(addr, first_len, FrameError::Io(error)))
        };
        let receive = async {
            let mut echoes: Vec<Option<Bytes>> = vec![None; payloads.len()];
            for _ in 0..payloads.len() {
                // Over raw TCP an echo is as long as its message; echoes come
                // back in order there, so the next one awaited is the first
                // still missing.
                let next = echoes.iter().position(Option::is_none).unwrap_or(0);
                let expected = payloads[next].as_ref();
                let echo = tokio::time::timeout(timeout, receiver.next_echo(expected.len()))
                    .await
                    .map_err(|_elapsed| ClientError::timeout(addr, timeout))?
                    .map_err(|error| ClientError::exchange(addr, expected.len(), error))?
                    .ok_or_else(|| ClientError::closed(addr, expected.len()))?;
                // Over UDP, a reply answers whichever unanswered message has
                // the same content; over TCP, echoes are in order.
                let answered = if mode == Mode::Udp {
                    (next..payloads.len())
                        .find(|&i| echoes[i].is_none() && payloads[i].as_ref() == echo)
                } else {
                    Some(next).filter(|_| expected == echo)
                };
                match answered {
                    Some(i) => echoes[i] = Some(Bytes::copy_from_slice(echo)),
                    None => return Err(ClientError::mismatch(addr, expected, echo)),
                }
            }
            Ok(echoes.into_iter().flatten().collect())
        };
        // Both at once (see the type's documentation for why); the first
        // error ends both, so a server that closes mid-message is reported
        // without waiting for the rest of the message to be written.
        let ((), echoes) = tokio::try_join!(send, receive)?;
        tracing::trace!(%addr, messages = payloads.len(), "echoed");
        Ok(echoes)
    }
}
