//! `--proxy-protocol`: the PROXY header (HAProxy's PROXY protocol, v1 or v2)
//! every TCP connection then starts with, read before anything else, a TLS
//! handshake included.
//!
//! The header itself is parsed by [`echo_proto::proxy_header`], which does
//! no I/O; here are the policy (which peers may send one, how long they
//! have), the reading, and [`Prefixed`], which hands the bytes that came in
//! the same read as the header to the echo (or to TLS) before the socket's.

use std::fmt;
use std::io;
use std::net::{IpAddr, Ipv4Addr, Ipv6Addr, SocketAddr};
use std::pin::Pin;
use std::task::{Context, Poll};
use std::time::Duration;

use echo_proto::proxy_header::{self, MAX_HEADER_LEN, ProxyHeader, ProxyHeaderError};
use ipnet::{IpNet, Ipv4Net, Ipv6Net};
use tokio::io::{AsyncRead, AsyncReadExt, AsyncWrite, ReadBuf};
use tokio::net::TcpStream;

use crate::echo_stream::EchoStream;

/// The longest a connection may take to send its whole header, unless the
/// idle timeout is shorter.
pub const PROXY_HEADER_TIMEOUT: Duration = Duration::from_secs(5);

/// The first read's room: a version 1 header, or a version 2 one with IPv6
/// addresses and some TLVs, and the first bytes of data behind it. More is
/// made, up to [`MAX_HEADER_LEN`], only as bytes arrive that need it.
const FIRST_READ_LEN: usize = 512;

/// The sources a PROXY header is taken from by default: loopback,
/// `127.0.0.0/8` and `::1/128`.
///
/// ```
/// let loopback: Vec<String> = echo_server::default_proxy_from()
///     .iter()
///     .map(ToString::to_string)
///     .collect();
/// assert_eq!(loopback, ["127.0.0.0/8", "::1/128"]);
/// ```
pub fn default_proxy_from() -> Vec<IpNet> {
    const LOOPBACK_V4: Ipv4Net = Ipv4Net::new_assert(Ipv4Addr::new(127, 0, 0, 0), 8);
    const LOOPBACK_V6: Ipv6Net = Ipv6Net::new_assert(Ipv6Addr::LOCALHOST, 128);
    vec![IpNet::V4(LOOPBACK_V4), IpNet::V6(LOOPBACK_V6)]
}

/// Parses one `--proxy-from` entry: a network in CIDR form
/// (`198.18.0.0/15`) or a single address (`198.18.0.1`, taken as `/32` or
/// `/128`).
///
/// ```
/// use echo_server::parse_proxy_source;
///
/// assert_eq!(parse_proxy_source("198.18.0.0/15")?.to_string(), "198.18.0.0/15");
/// assert_eq!(parse_proxy_source("::1")?.to_string(), "::1/128");
/// assert!(parse_proxy_source("198.18.0.0/33").is_err());
/// # Ok::<(), String>(())
/// ```
pub fn parse_proxy_source(text: &str) -> Result<IpNet, String> {
    let text = text.trim();
    text.parse::<IpNet>()
        .or_else(|_| text.parse::<IpAddr>().map(IpNet::from))
        .map_err(|_| format!("{text:?} is not an IP network (198.18.0.0/15) or address"))
}

/// Why a connection's PROXY header was refused: the connection is closed
/// without an echo.
#[derive(Debug)]
#[non_exhaustive]
pub enum ProxyHeaderRejection {
    /// The peer is not among the trusted sources (`--proxy-from`).
    Untrusted,
    /// What it sent is not a PROXY header, or a broken one.
    Invalid(ProxyHeaderError),
    /// The header was not whole within the time allowed.
    Timeout(Duration),
    /// The peer closed (or reset) the connection after `received` bytes,
    /// before the header was whole.
    Cut {
        /// The bytes received.
        received: usize,
    },
}

impl ProxyHeaderRejection {
    /// The `reason` label of `echo_proxy_header_rejections_total`.
    pub(crate) fn reason(&self) -> &'static str {
        match self {
            ProxyHeaderRejection::Untrusted => "untrusted",
            ProxyHeaderRejection::Invalid(
                ProxyHeaderError::V1TooLong { .. } | ProxyHeaderError::V2TooLong { .. },
            ) => "too_long",
            ProxyHeaderRejection::Invalid(_) => "invalid",
            ProxyHeaderRejection::Timeout(_) => "timeout",
            ProxyHeaderRejection::Cut { .. } => "cut",
        }
    }

    /// Every `reason` label, for the series that exist from the start.
    pub(crate) const REASONS: [&'static str; 5] =
        ["untrusted", "invalid", "too_long", "timeout", "cut"];
}

impl fmt::Display for ProxyHeaderRejection {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            ProxyHeaderRejection::Untrusted => {
                f.write_str("a PROXY header is not taken from this peer (see --proxy-from)")
            }
            ProxyHeaderRejection::Invalid(error) => error.fmt(f),
            ProxyHeaderRejection::Timeout(after) => {
                write!(f, "no whole PROXY header within {after:?}")
            }
            ProxyHeaderRejection::Cut { received } => write!(
                f,
                "closed by the peer after {received} bytes, before its PROXY header was whole"
            ),
        }
    }
}

impl std::error::Error for ProxyHeaderRejection {}

/// Which peers may send a PROXY header, and how long they have.
#[derive(Debug, Clone)]
pub(crate) struct ProxyPolicy {
    trusted: Vec<IpNet>,
    timeout: Duration,
}

impl ProxyPolicy {
    /// Headers from `trusted` sources, each whole within
    /// [`PROXY_HEADER_TIMEOUT`] or `idle_timeout`, whichever is shorter.
    pub(crate) fn new(trusted: Vec<IpNet>, idle_timeout: Duration) -> Self {
        Self {
            trusted,
            timeout: PROXY_HEADER_TIMEOUT.min(idle_timeout),
        }
    }

    /// Whether `peer` may send a header. An IPv4 peer on a dual-stack
    /// listener, seen as `::ffff:a.b.c.d`, is judged as the IPv4 address.
    fn trusts(&self, peer: IpAddr) -> bool {
        let peer = peer.to_canonical();
        self.trusted.iter().any(|net| net.contains(&peer))
    }

    /// Reads the header `stream` starts with, from `peer`: the header, and
    /// the stream that yields the bytes after it (those read with it first).
    pub(crate) async fn accept(
        &self,
        mut stream: TcpStream,
        peer: SocketAddr,
    ) -> Result<(Prefixed<TcpStream>, ProxyHeader), ProxyHeaderRejection> {
        if !self.trusts(peer.ip()) {
            return Err(ProxyHeaderRejection::Untrusted);
        }
        let read = tokio::time::timeout(self.timeout, read_header(&mut stream));
        let (header, received) = read
            .await
            .map_err(|_elapsed| ProxyHeaderRejection::Timeout(self.timeout))??;
        let rest = received[header.len..].to_vec();
        if tracing::enabled!(tracing::Level::DEBUG) {
            for (kind, value) in proxy_header::tlvs(&header, &received) {
                tracing::debug!(%peer, tlv_type = kind, tlv_len = value.len(), "PROXY header TLV skipped");
            }
        }
        Ok((Prefixed::new(rest, stream), header))
    }
}

/// Reads until `stream` has sent a whole header or something that rules one
/// out: the header, and every byte read (the header's and those after it).
async fn read_header(
    stream: &mut TcpStream,
) -> Result<(ProxyHeader, Vec<u8>), ProxyHeaderRejection> {
    let mut received = Vec::with_capacity(FIRST_READ_LEN);
    loop {
        if received.len() == received.capacity() {
            // Room for what a header may still need, grown with what came,
            // never with what a header announces.
            let more = received.len().min(MAX_HEADER_LEN - received.len());
            received.reserve_exact(more.max(1));
        }
        let cut = ProxyHeaderRejection::Cut {
            received: received.len(),
        };
        match stream.read_buf(&mut received).await {
            Ok(0) => return Err(cut),
            Ok(_) => {}
            Err(error) if error.kind() == io::ErrorKind::Interrupted => continue,
            Err(_) => return Err(cut),
        }
        match proxy_header::parse(&received) {
            Ok(Some(header)) => return Ok((header, received)),
            Ok(None) => {}
            Err(error) => return Err(ProxyHeaderRejection::Invalid(error)),
        }
    }
}

/// A stream that yields `prefix` before the bytes of `inner`: the data that
/// arrived in the same read as a PROXY header. Writes go straight to
/// `inner`.
#[derive(Debug)]
pub(crate) struct Prefixed<S> {
    prefix: Vec<u8>,
    /// How much of `prefix` has been read.
    taken: usize,
    inner: S,
}

impl<S> Prefixed<S> {
    fn new(prefix: Vec<u8>, inner: S) -> Self {
        Self {
            prefix,
            taken: 0,
            inner,
        }
    }

    fn has_prefix(&self) -> bool {
        self.taken < self.prefix.len()
    }
}

impl<S: AsyncRead + Unpin> AsyncRead for Prefixed<S> {
    fn poll_read(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &mut ReadBuf<'_>,
    ) -> Poll<io::Result<()>> {
        let this = self.get_mut();
        if this.has_prefix() {
            let rest = &this.prefix[this.taken..];
            let len = rest.len().min(buf.remaining());
            buf.put_slice(&rest[..len]);
            this.taken += len;
            if !this.has_prefix() {
                // Its memory goes back at once, not with the connection.
                this.prefix = Vec::new();
                this.taken = 0;
            }
            return Poll::Ready(Ok(()));
        }
        Pin::new(&mut this.inner).poll_read(cx, buf)
    }
}

impl<S: AsyncWrite + Unpin> AsyncWrite for Prefixed<S> {
    fn poll_write(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &[u8],
    ) -> Poll<io::Result<usize>> {
        Pin::new(&mut self.get_mut().inner).poll_write(cx, buf)
    }

    fn poll_write_vectored(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        bufs: &[io::IoSlice<'_>],
    ) -> Poll<io::Result<usize>> {
        Pin::new(&mut self.get_mut().inner).poll_write_vectored(cx, bufs)
    }

    fn is_write_vectored(&self) -> bool {
        self.inner.is_write_vectored()
    }

    fn poll_flush(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        Pin::new(&mut self.get_mut().inner).poll_flush(cx)
    }

    fn poll_shutdown(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        Pin::new(&mut self.get_mut().inner).poll_shutdown(cx)
    }
}

impl<S: EchoStream> EchoStream for Prefixed<S> {
    /// Ready at once while bytes of the prefix are left to read.
    fn poll_read_ready(&mut self, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        if self.has_prefix() {
            Poll::Ready(Ok(()))
        } else {
            self.inner.poll_read_ready(cx)
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn loopback_is_trusted_by_default_and_nothing_else() {
        let policy = ProxyPolicy::new(default_proxy_from(), Duration::from_secs(300));
        for trusted in ["127.0.0.1", "127.200.0.9", "::1", "::ffff:127.0.0.1"] {
            assert!(policy.trusts(trusted.parse().unwrap()), "{trusted}");
        }
        for untrusted in ["198.18.0.1", "::2", "10.0.0.1", "::ffff:198.18.0.1"] {
            assert!(!policy.trusts(untrusted.parse().unwrap()), "{untrusted}");
        }
    }

    #[test]
    fn the_header_timeout_is_the_idle_timeout_when_that_is_shorter() {
        let short = ProxyPolicy::new(Vec::new(), Duration::from_secs(1));
        assert_eq!(short.timeout, Duration::from_secs(1));
        let long = ProxyPolicy::new(Vec::new(), Duration::from_secs(300));
        assert_eq!(long.timeout, PROXY_HEADER_TIMEOUT);
    }

    #[test]
    fn every_rejection_has_a_reason_label_of_its_own_list() {
        let rejections = [
            ProxyHeaderRejection::Untrusted,
            ProxyHeaderRejection::Invalid(ProxyHeaderError::NotAHeader { byte: 0, offset: 0 }),
            ProxyHeaderRejection::Invalid(ProxyHeaderError::V1TooLong { max: 107 }),
            ProxyHeaderRejection::Timeout(Duration::from_secs(5)),
            ProxyHeaderRejection::Cut { received: 3 },
        ];
        let reasons: Vec<&str> = rejections
            .iter()
            .map(|rejection| rejection.reason())
            .collect();
        assert_eq!(reasons, ProxyHeaderRejection::REASONS);
    }

    #[tokio::test]
    async fn the_prefix_is_read_first_then_the_stream() {
        let (mut client, server) = tokio::io::duplex(64);
        let mut stream = Prefixed::new(b"abc".to_vec(), server);
        tokio::io::AsyncWriteExt::write_all(&mut client, b"def")
            .await
            .unwrap();
        drop(client);
        let mut read = Vec::new();
        stream.read_to_end(&mut read).await.unwrap();
        assert_eq!(read, b"abcdef");
        assert!(stream.prefix.capacity() == 0, "the prefix's memory is kept");
    }
}
