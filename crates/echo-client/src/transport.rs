//! The three [`Mode`]s of talking to an echo server (framed TCP, raw TCP,
//! UDP) behind one small interface: a [`Sender`] that queues messages and
//! sends them in one go, and a [`Receiver`] that hands back one echo at a time.
//!
//! Everything above this module (the [`Client`](crate::Client), ping, the
//! bench) is written once against that interface and works in every mode.

use std::io;
use std::net::{Ipv4Addr, Ipv6Addr, SocketAddr};
use std::sync::Arc;
use std::time::{Duration, Instant};

use bytes::{Buf, BytesMut};
use echo_proto::FrameError;
use echo_proto::frame::{self, DEFAULT_MAX_FRAME_LEN, HEADER_LEN, Parsed};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::tcp::{OwnedReadHalf, OwnedWriteHalf};
use tokio::net::{TcpStream, UdpSocket};
use tokio_rustls::client::TlsStream;

use crate::error::ClientError;
use crate::mode::{MAX_DATAGRAM_LEN, Mode};
use crate::proxy::ProxyProtocol;
use crate::shared_tls::SharedTls;
use crate::tls::Connector;

/// How much a TCP receiver asks the socket for at least, per read: enough for
/// many small echoes at once, so that pipelined echoes cost one system call
/// per batch.
const READ_CHUNK: usize = 64 * 1024;

/// An open connection (or, for UDP, a connected socket), split in two so that
/// sending and receiving can make progress at the same time.
#[derive(Debug)]
pub(crate) struct Link {
    pub(crate) sender: Sender,
    pub(crate) receiver: Receiver,
    pub(crate) peer: SocketAddr,
    /// How long the TCP connection took to open (zero over UDP), as curl's
    /// `time_connect`.
    pub(crate) connect_time: Duration,
    /// How long the TLS handshake took after it, as curl's
    /// `time_appconnect` less `time_connect`; `None` without TLS.
    pub(crate) handshake_time: Option<Duration>,
}

/// How to open a link: the mode, and over TCP what comes before the first
/// message.
#[derive(Debug, Clone, Copy)]
pub(crate) struct Dial<'a> {
    pub(crate) mode: Mode,
    /// A PROXY protocol header, sent first.
    pub(crate) proxy: Option<&'a ProxyProtocol>,
    /// TLS, after the PROXY header if any.
    pub(crate) tls: Option<&'a Connector>,
}

impl Dial<'_> {
    /// Plain `mode`: nothing before the first message.
    pub(crate) fn plain(mode: Mode) -> Dial<'static> {
        Dial {
            mode,
            proxy: None,
            tls: None,
        }
    }
}

/// Resolves `addr` (anything of the form `HOST:PORT`) to its socket addresses.
pub(crate) async fn resolve(addr: &str) -> Result<Vec<SocketAddr>, ClientError> {
    let resolve_error = |source| ClientError::Resolve {
        addr: addr.to_owned(),
        source,
    };
    let candidates: Vec<SocketAddr> = tokio::net::lookup_host(addr)
        .await
        .map_err(resolve_error)?
        .collect();
    if candidates.is_empty() {
        return Err(resolve_error(io::Error::new(
            io::ErrorKind::NotFound,
            "it resolved to no addresses",
        )));
    }
    Ok(candidates)
}

/// Resolves `addr` and opens a link to the first of its addresses that
/// accepts, all within `timeout`, sending the `proxy` header first if given.
pub(crate) async fn connect(
    addr: &str,
    dial: Dial<'_>,
    timeout: std::time::Duration,
) -> Result<Link, ClientError> {
    tokio::time::timeout(timeout, async {
        let candidates = resolve(addr).await?;
        open(addr, &candidates, dial).await
    })
    .await
    .map_err(|_elapsed| ClientError::connect_timeout(addr, timeout))?
}

/// Opens a link to the first of `candidates` that accepts, over TCP with
/// the `proxy` header first if given. `addr` is the address as the user
/// gave it, for error messages.
///
/// There is no timeout here: callers bound the whole of resolving and
/// connecting together.
pub(crate) async fn open(
    addr: &str,
    candidates: &[SocketAddr],
    dial: Dial<'_>,
) -> Result<Link, ClientError> {
    let mut last_error = None;
    let mode = dial.mode;
    for &candidate in candidates {
        tracing::debug!(%addr, %candidate, %mode, "connecting");
        let opened = if mode.is_tcp() {
            match open_tcp(candidate, dial.proxy).await {
                // A TLS handshake that fails is the answer of a server that
                // was reached: the other addresses are not tried.
                Ok((stream, connect_time)) => {
                    return match dial.tls {
                        None => Ok(tcp_link(stream, candidate, mode, connect_time)),
                        Some(tls) => {
                            let started = Instant::now();
                            let stream = tls.handshake(stream, addr).await?;
                            let handshake_time = started.elapsed();
                            Ok(tls_link(
                                stream,
                                candidate,
                                mode,
                                connect_time,
                                handshake_time,
                            ))
                        }
                    };
                }
                Err(error) => Err(error),
            }
        } else {
            open_udp(candidate).await
        };
        match opened {
            Ok(link) => return Ok(link),
            Err(error) => {
                tracing::debug!(%addr, %candidate, %error, "connection failed");
                last_error = Some(error);
            }
        }
    }
    Err(ClientError::Connect {
        addr: addr.to_owned(),
        source: last_error.unwrap_or_else(|| io::Error::other("there was no address to try")),
    })
}

/// Opens a TCP connection to `peer` and sends the `proxy` header on it, if
/// given: the stream, and how long connecting took.
async fn open_tcp(
    peer: SocketAddr,
    proxy: Option<&ProxyProtocol>,
) -> io::Result<(TcpStream, Duration)> {
    let started = Instant::now();
    let mut stream = TcpStream::connect(peer).await?;
    let connect_time = started.elapsed();
    // Each batch of messages is written in one piece, so Nagle's algorithm
    // could only delay it: it would hold a small write back until the
    // previous one was acknowledged, which with delayed acknowledgements
    // costs tens of milliseconds per exchange.
    stream.set_nodelay(true)?;
    if let Some(proxy) = proxy {
        stream
            .write_all(&proxy.header(stream.local_addr()?, peer))
            .await?;
    }
    Ok((stream, connect_time))
}

/// A plain TCP link over `stream`, connected to `peer`.
fn tcp_link(stream: TcpStream, peer: SocketAddr, mode: Mode, connect_time: Duration) -> Link {
    let (read_half, write_half) = stream.into_split();
    stream_link(
        SenderKind::Tcp(write_half),
        StreamRead::Plain(read_half),
        mode,
        peer,
        (connect_time, None),
    )
}

/// A TLS link over `stream`, handshake made.
fn tls_link(
    stream: TlsStream<TcpStream>,
    peer: SocketAddr,
    mode: Mode,
    connect_time: Duration,
    handshake_time: Duration,
) -> Link {
    let shared = SharedTls::new(stream);
    stream_link(
        SenderKind::Tls(shared.clone()),
        StreamRead::Tls(shared),
        mode,
        peer,
        (connect_time, Some(handshake_time)),
    )
}

fn stream_link(
    sender: SenderKind,
    half: StreamRead,
    mode: Mode,
    peer: SocketAddr,
    (connect_time, handshake_time): (Duration, Option<Duration>),
) -> Link {
    let framed = mode == Mode::Framed;
    Link {
        sender: Sender {
            kind: sender,
            framed,
            batch: Vec::new(),
            datagram_ends: Vec::new(),
        },
        receiver: Receiver {
            kind: ReceiverKind::Tcp {
                half,
                framed,
                buffer: BytesMut::new(),
                consumed: 0,
            },
            reads: 0,
        },
        peer,
        connect_time,
        handshake_time,
    }
}

async fn open_udp(peer: SocketAddr) -> io::Result<Link> {
    let local: SocketAddr = if peer.is_ipv4() {
        (Ipv4Addr::UNSPECIFIED, 0).into()
    } else {
        (Ipv6Addr::UNSPECIFIED, 0).into()
    };
    let socket = UdpSocket::bind(local).await?;
    // A connected socket receives only from the server, and learns of an
    // unreachable port through an error instead of through silence.
    socket.connect(peer).await?;
    let socket = Arc::new(socket);
    Ok(Link {
        sender: Sender {
            kind: SenderKind::Udp(Arc::clone(&socket)),
            framed: false,
            batch: Vec::new(),
            datagram_ends: Vec::new(),
        },
        receiver: Receiver {
            kind: ReceiverKind::Udp {
                socket,
                buffer: vec![0; MAX_DATAGRAM_LEN + 1].into_boxed_slice(),
            },
            reads: 0,
        },
        peer,
        connect_time: Duration::ZERO,
        handshake_time: None,
    })
}

/// The sending half: messages are queued with [`push`](Sender::push) and sent
/// together by [`flush`](Sender::flush), in one write over TCP.
///
/// The queue's memory is kept from one batch to the next, so a sender that
/// has warmed up allocates nothing.
#[derive(Debug)]
pub(crate) struct Sender {
    kind: SenderKind,
    /// Whether each TCP message gets a frame header.
    framed: bool,
    /// The bytes of the queued messages, in their wire form.
    batch: Vec<u8>,
    /// For UDP: where each queued datagram ends in `batch`.
    datagram_ends: Vec<usize>,
}

#[derive(Debug)]
enum SenderKind {
    Tcp(OwnedWriteHalf),
    Tls(SharedTls),
    Udp(Arc<UdpSocket>),
}

impl Sender {
    /// Queues one message made of `parts`, one after the other.
    ///
    /// # Errors
    ///
    /// [`FrameError::FrameTooLarge`] when a framed message is longer than the
    /// protocol's default maximum (8 MiB); nothing is queued then.
    pub(crate) fn push(&mut self, parts: &[&[u8]]) -> Result<(), FrameError> {
        let len = parts.iter().map(|part| part.len()).sum();
        self.push_with(len, |batch| {
            for part in parts {
                batch.extend_from_slice(part);
            }
        })
    }

    /// Queues one message of `len` bytes, which `write` appends to the
    /// buffer it is given (after the frame header, if any). Writing in place
    /// spares a copy per message, which counts for a bench's small ones.
    ///
    /// # Errors
    ///
    /// As for [`push`](Sender::push).
    pub(crate) fn push_with(
        &mut self,
        len: usize,
        write: impl FnOnce(&mut Vec<u8>),
    ) -> Result<(), FrameError> {
        // Room for the whole message at once, so that the copies do not each
        // check for it.
        self.batch.reserve(HEADER_LEN + len);
        if self.framed {
            let header = frame::encode_header(len, DEFAULT_MAX_FRAME_LEN)?;
            self.batch.extend_from_slice(&header);
        }
        let start = self.batch.len();
        write(&mut self.batch);
        debug_assert_eq!(
            self.batch.len() - start,
            len,
            "the message is as long as announced"
        );
        if let SenderKind::Udp(_) = self.kind {
            self.datagram_ends.push(self.batch.len());
        }
        Ok(())
    }

    /// Sends `head` then `tail`, messages over TCP already in their wire
    /// form (each after its [`stream_header`](Mode::stream_header)), as far
    /// as the connection takes them at once, and queues the rest for
    /// [`flush`](Sender::flush). With nothing queued before them and room in
    /// the socket (or, over TLS, in rustls's buffer of records to send), as
    /// is usual, they are sent (over TLS, encrypted) without being copied
    /// into the queue. Over UDP, where each message must be a datagram of
    /// its own, there is no stream to send them on: they are queued as one.
    ///
    /// # Errors
    ///
    /// When the connection fails; what was not sent is then not queued
    /// either.
    pub(crate) fn send_stream_bytes(&mut self, head: &[u8], tail: &[u8]) -> io::Result<()> {
        self.send_parts([head, tail, &[]])
    }

    /// Sends one message, its `identity` then its `body`, after its frame
    /// header when framed, as [`send_stream_bytes`](Sender::send_stream_bytes)
    /// sends: without a copy into the queue, which for a large message was
    /// most of what sending it cost the client in user space.
    ///
    /// # Errors
    ///
    /// [`FrameError::FrameTooLarge`] as for [`push`](Sender::push), and
    /// [`FrameError::Io`] when the connection fails.
    pub(crate) fn send_message(&mut self, identity: &[u8], body: &[u8]) -> Result<(), FrameError> {
        // Only frames have a header, and a limit.
        let header = self
            .framed
            .then(|| frame::encode_header(identity.len() + body.len(), DEFAULT_MAX_FRAME_LEN))
            .transpose()?;
        let header: &[u8] = header.as_ref().map_or(&[], |header| header);
        Ok(self.send_parts([header, identity, body])?)
    }

    /// Sends `parts`, one after the other, as far as the connection takes
    /// them at once, and queues the rest (see
    /// [`send_stream_bytes`](Sender::send_stream_bytes)).
    fn send_parts(&mut self, parts: [&[u8]; 3]) -> io::Result<()> {
        let slices = parts.map(io::IoSlice::new);
        let written = match &self.kind {
            // Bytes queued before these must go first.
            SenderKind::Tcp(half) if self.batch.is_empty() => {
                match try_write_parts(half, &parts, &slices) {
                    Ok(written) => written,
                    Err(error) if error.kind() == io::ErrorKind::WouldBlock => 0,
                    Err(error) => return Err(error),
                }
            }
            // rustls encrypts them into records now; the flush writes those.
            SenderKind::Tls(tls) if self.batch.is_empty() => tls.write_plaintext(&slices)?,
            SenderKind::Tcp(_) | SenderKind::Tls(_) | SenderKind::Udp(_) => 0,
        };
        let mut skip = written;
        for part in parts {
            let sent = skip.min(part.len());
            self.batch.extend_from_slice(&part[sent..]);
            skip -= sent;
        }
        if let SenderKind::Udp(_) = self.kind {
            self.datagram_ends.push(self.batch.len());
        }
        Ok(())
    }

    /// Sends every queued message.
    ///
    /// Not cancel-safe: dropping the future part way leaves part of a batch
    /// sent, and the connection out of step. Callers give up on the
    /// connection when they cancel a flush.
    pub(crate) async fn flush(&mut self) -> io::Result<()> {
        match &mut self.kind {
            SenderKind::Tcp(half) => half.write_all(&self.batch).await?,
            SenderKind::Tls(half) => {
                half.write_all(&self.batch).await?;
                half.flush().await?;
            }
            SenderKind::Udp(socket) => {
                let mut start = 0;
                for &end in &self.datagram_ends {
                    match socket.send(&self.batch[start..end]).await {
                        Ok(_) => {}
                        // Dropped by this host before it left, by a firewall
                        // rule. That is a lost datagram, as one dropped
                        // further along the path would be, and the reader
                        // counts it lost when its reply does not come.
                        Err(error) if is_local_drop(&error) => {
                            tracing::debug!(%error, "a datagram was dropped before it left");
                        }
                        Err(error) => {
                            self.datagram_ends.clear();
                            self.batch.clear();
                            return Err(error);
                        }
                    }
                    start = end;
                }
                self.datagram_ends.clear();
            }
        }
        self.batch.clear();
        Ok(())
    }

    /// Tells the server that nothing more will be sent: a TCP half-close,
    /// after which a server that follows the protocol echoes what it has and
    /// closes. Nothing happens over UDP, which has no such signal.
    pub(crate) async fn finish(&mut self) -> io::Result<()> {
        match &mut self.kind {
            SenderKind::Tcp(half) => half.shutdown().await,
            SenderKind::Tls(half) => half.shutdown().await,
            SenderKind::Udp(_) => Ok(()),
        }
    }
}

/// Writes `parts` (and their `slices`) to `half` as far as it takes them
/// now. Where only one part has bytes, as a span of the bench's ring that
/// does not wrap, it is written with `send(2)`, not `writev(2)`: the
/// kernel's vectored path copies in and checks the array of slices before
/// it sends, which costs a fanin echo a measurable share of its time.
fn try_write_parts(
    half: &OwnedWriteHalf,
    parts: &[&[u8]; 3],
    slices: &[io::IoSlice<'_>; 3],
) -> io::Result<usize> {
    match lone_part(parts) {
        Some([]) => Ok(0),
        Some(part) => half.try_write(part),
        None => half.try_write_vectored(slices),
    }
}

/// The one part of `parts` that has bytes, or an empty one if none has:
/// `None` when several have.
fn lone_part<'a>(parts: &[&'a [u8]]) -> Option<&'a [u8]> {
    let mut with_bytes = parts.iter().filter(|part| !part.is_empty());
    match (with_bytes.next(), with_bytes.next()) {
        (None, _) => Some(&[]),
        (Some(&part), None) => Some(part),
        (Some(_), Some(_)) => None,
    }
}

/// Whether a failed send means that this host dropped the datagram rather
/// than that the socket failed: Linux fails the send of a datagram that a
/// netfilter rule dropped with `EPERM`.
fn is_local_drop(error: &io::Error) -> bool {
    error.kind() == io::ErrorKind::PermissionDenied
}

/// The receiving half: hands back one echo at a time, from a buffer that
/// holds everything that has arrived, so that many echoes that came in one
/// read cost one system call.
#[derive(Debug)]
pub(crate) struct Receiver {
    kind: ReceiverKind,
    /// How many reads brought data so far.
    reads: u64,
}

#[derive(Debug)]
enum ReceiverKind {
    Tcp {
        half: StreamRead,
        framed: bool,
        buffer: BytesMut,
        /// How much of the front of `buffer` has been handed out already.
        /// It is dropped just before the next read rather than after each
        /// echo: moving the buffer's start once per read, not once per echo.
        consumed: usize,
    },
    Udp {
        socket: Arc<UdpSocket>,
        /// One byte longer than any datagram, so that a datagram that filled
        /// it would be known to be too long rather than silently cut.
        buffer: Box<[u8]>,
    },
}

impl Receiver {
    /// How many reads have brought data so far. Echoes handed out between
    /// two changes of this count came in the same read, at the same time:
    /// a caller that times them needs to read the clock only once.
    pub(crate) fn reads(&self) -> u64 {
        self.reads
    }

    /// What has arrived on a TCP stream and not been handed out yet, as it
    /// came: whole echoes first, then perhaps part of one. Always empty over
    /// UDP.
    pub(crate) fn buffered_bytes(&self) -> &[u8] {
        match &self.kind {
            ReceiverKind::Tcp {
                buffer, consumed, ..
            } => &buffer[*consumed..],
            ReceiverKind::Udp { .. } => &[],
        }
    }

    /// Counts the first `len` of the [`buffered_bytes`](Self::buffered_bytes)
    /// as handed out: a caller that has dealt with whole echoes there in one
    /// go skips them.
    pub(crate) fn skip_buffered(&mut self, len: usize) {
        if let ReceiverKind::Tcp {
            buffer, consumed, ..
        } = &mut self.kind
        {
            *consumed = (*consumed + len).min(buffer.len());
        }
    }

    /// Waits for the next echo and returns it.
    ///
    /// What an echo is depends on the mode: the next frame's payload
    /// (framed), the next `raw_len` bytes (raw: the length of the message
    /// whose echo is awaited), or the next datagram (UDP). `Ok(None)` means
    /// that the server closed the connection cleanly between echoes.
    ///
    /// Cancel-safe: if the future is dropped before it returns, no data is
    /// lost, and the next call picks up where this one stopped.
    ///
    /// # Errors
    ///
    /// [`FrameError::FrameTooLarge`] when a frame header announces more than
    /// 8 MiB, [`FrameError::Truncated`] when the stream ends inside an echo,
    /// and [`FrameError::Io`] when the socket fails.
    pub(crate) async fn next_echo(&mut self, raw_len: usize) -> Result<Option<&[u8]>, FrameError> {
        match &mut self.kind {
            ReceiverKind::Tcp {
                half,
                framed,
                buffer,
                consumed,
            } => loop {
                let wanted = match buffered(buffer, consumed, *framed, raw_len)? {
                    Buffered::Echo(start, end) => return Ok(Some(&buffer[start..end])),
                    Buffered::Wanted(wanted) => wanted,
                };
                if !refill(half, buffer, consumed, &mut self.reads, wanted).await? {
                    return Ok(None);
                }
            },
            ReceiverKind::Udp { socket, buffer } => {
                let len = socket.recv(buffer).await?;
                self.reads += 1;
                Ok(Some(&buffer[..len]))
            }
        }
    }

    /// Waits for the next line of a TCP stream and returns it without its
    /// `\n`. Once more than `max_len` bytes have come without one, they are
    /// returned as they are, for the caller to find too long. `Ok(None)`
    /// means that the stream ended cleanly before anything came, and always
    /// over UDP, which has no lines.
    ///
    /// # Errors
    ///
    /// [`FrameError::Truncated`] when the stream ends inside a line, and
    /// [`FrameError::Io`] when the socket fails.
    pub(crate) async fn next_line(&mut self, max_len: usize) -> Result<Option<&[u8]>, FrameError> {
        let ReceiverKind::Tcp {
            half,
            buffer,
            consumed,
            ..
        } = &mut self.kind
        else {
            return Ok(None);
        };
        loop {
            let pending = &buffer[*consumed..];
            let line = match pending.iter().position(|&byte| byte == b'\n') {
                Some(end) => Some((end, end + 1)),
                None if pending.len() > max_len => Some((pending.len(), pending.len())),
                None => None,
            };
            if let Some((end, next)) = line {
                let start = *consumed;
                *consumed += next;
                return Ok(Some(&buffer[start..start + end]));
            }
            // One byte more than what is there: the end of the line.
            let wanted = buffer.len() - *consumed + 1;
            if !refill(half, buffer, consumed, &mut self.reads, wanted).await? {
                return Ok(None);
            }
        }
    }

    /// The next echo if it has already arrived in full, without waiting or
    /// reading: `None` if it has not (and always over UDP, where each
    /// datagram takes a read). A caller that handles the echoes of one read
    /// in a loop saves a trip through the runtime per echo.
    ///
    /// # Errors
    ///
    /// [`FrameError::FrameTooLarge`] when a frame header announces more than
    /// 8 MiB.
    pub(crate) fn buffered_echo(&mut self, raw_len: usize) -> Option<Result<&[u8], FrameError>> {
        match &mut self.kind {
            ReceiverKind::Tcp {
                framed,
                buffer,
                consumed,
                ..
            } => match buffered(buffer, consumed, *framed, raw_len) {
                Ok(Buffered::Echo(start, end)) => Some(Ok(&buffer[start..end])),
                Ok(Buffered::Wanted(_)) => None,
                Err(error) => Some(Err(error)),
            },
            ReceiverKind::Udp { .. } => None,
        }
    }
}

/// Drops the `consumed` front of `buffer`, reads what has arrived into it
/// and counts the read, the caller waiting for `wanted` bytes in all (once
/// the front is dropped): `Ok(true)` if bytes came, `Ok(false)` at an end
/// of stream with nothing left over, and [`FrameError::Truncated`] at an
/// end inside those bytes.
async fn refill(
    half: &mut StreamRead,
    buffer: &mut BytesMut,
    consumed: &mut usize,
    reads: &mut u64,
    wanted: usize,
) -> Result<bool, FrameError> {
    buffer.advance(std::mem::take(consumed));
    buffer.reserve(wanted.saturating_sub(buffer.len()).max(READ_CHUNK));
    let read = half.read_buf(buffer).await?;
    *reads += 1;
    if read > 0 {
        Ok(true)
    } else if buffer.is_empty() {
        Ok(false)
    } else {
        Err(FrameError::Truncated {
            received: buffer.len() as u64,
            expected: wanted as u64,
        })
    }
}

/// The reading half of a TCP stream, plain or TLS.
#[derive(Debug)]
enum StreamRead {
    Plain(OwnedReadHalf),
    Tls(SharedTls),
}

impl StreamRead {
    async fn read_buf(&mut self, buffer: &mut BytesMut) -> io::Result<usize> {
        match self {
            StreamRead::Plain(half) => half.read_buf(buffer).await,
            StreamRead::Tls(half) => half.read_buf(buffer).await,
        }
    }
}

/// What a TCP receiver's buffer holds.
enum Buffered {
    /// A whole echo, at `buffer[start..end]`.
    Echo(usize, usize),
    /// Not a whole echo yet: once the consumed bytes are dropped, the buffer
    /// must grow to this length.
    Wanted(usize),
}

/// Finds the next echo in `buffer` after its first `consumed` bytes, which
/// were handed out already, and counts it as handed out: the next frame's
/// payload when `framed`, else the next `raw_len` bytes.
fn buffered(
    buffer: &BytesMut,
    consumed: &mut usize,
    framed: bool,
    raw_len: usize,
) -> Result<Buffered, FrameError> {
    let pending = &buffer[*consumed..];
    let (start, wanted) = if framed {
        match frame::parse(pending, DEFAULT_MAX_FRAME_LEN)? {
            Parsed::Frame { frame_len, .. } => (HEADER_LEN, frame_len),
            Parsed::Incomplete { needed } => return Ok(Buffered::Wanted(pending.len() + needed)),
        }
    } else {
        (0, raw_len)
    };
    if pending.len() < wanted {
        return Ok(Buffered::Wanted(wanted));
    }
    let echo = Buffered::Echo(*consumed + start, *consumed + wanted);
    *consumed += wanted;
    Ok(echo)
}

#[cfg(test)]
mod tests {
    use std::time::Duration;

    use tokio::io::AsyncReadExt;
    use tokio::net::TcpListener;

    use super::*;

    /// The bound on every wait here.
    const DEADLINE: Duration = Duration::from_secs(30);

    /// Far more than the kernel buffers of a connection whose peer reads
    /// nothing can hold (at most some megabytes on Linux).
    const MORE_THAN_BUFFERED: usize = 16 << 20;

    /// A sender in `mode` over a loopback connection, and the peer's end of
    /// it, which reads nothing until asked.
    async fn sender_and_peer(mode: Mode) -> (Sender, TcpStream) {
        let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
        let addr = listener.local_addr().unwrap();
        let (stream, connect_time) = open_tcp(addr, None).await.unwrap();
        let link = tcp_link(stream, addr, mode, connect_time);
        let (peer, _) = listener.accept().await.unwrap();
        (link.sender, peer)
    }

    /// Flushes `sender` and half-closes it while `peer` reads to the end;
    /// returns what the peer read.
    async fn flush_to(mut sender: Sender, mut peer: TcpStream) -> Vec<u8> {
        let reading = tokio::spawn(async move {
            let mut received = Vec::new();
            peer.read_to_end(&mut received).await.map(|_| received)
        });
        tokio::time::timeout(DEADLINE, async {
            sender.flush().await?;
            sender.finish().await
        })
        .await
        .expect("the flush ends")
        .unwrap();
        tokio::time::timeout(DEADLINE, reading)
            .await
            .expect("the peer reads to the end")
            .unwrap()
            .unwrap()
    }

    #[tokio::test]
    async fn what_the_socket_does_not_take_at_once_is_flushed_after_it_in_order() {
        let (mut sender, peer) = sender_and_peer(Mode::Raw).await;

        let head: Vec<u8> = (0..MORE_THAN_BUFFERED).map(|i| (i % 251) as u8).collect();
        sender.send_stream_bytes(&head, b"tail").unwrap();
        assert!(
            !sender.batch.is_empty(),
            "a peer that reads nothing took it all"
        );
        // Queued bytes go first, so these wait behind them.
        sender.send_stream_bytes(b"more", b"").unwrap();
        assert!(sender.batch.ends_with(b"tailmore"));

        let received = flush_to(sender, peer).await;
        assert_eq!(received.len(), MORE_THAN_BUFFERED + 8);
        assert!(received == [&head[..], b"tailmore"].concat());
    }

    #[test]
    fn a_span_in_one_part_is_found_wherever_the_part_is_and_several_are_not() {
        assert_eq!(lone_part(&[b"head", b"", b""]), Some(&b"head"[..]));
        assert_eq!(lone_part(&[b"", b"tail", b""]), Some(&b"tail"[..]));
        assert_eq!(lone_part(&[b"", b"", b"body"]), Some(&b"body"[..]));
        assert_eq!(lone_part(&[b"", b"", b""]), Some(&b""[..]));
        assert_eq!(lone_part(&[b"head", b"", b"body"]), None);
    }

    #[tokio::test]
    async fn bytes_in_one_part_or_in_none_are_sent_as_they_are_without_the_queue() {
        let (mut sender, peer) = sender_and_peer(Mode::Raw).await;
        // One part with bytes, wherever it is, goes in a write of its own.
        sender.send_stream_bytes(b"head", b"").unwrap();
        sender.send_stream_bytes(b"", b"tail").unwrap();
        sender.send_stream_bytes(b"", b"").unwrap();
        assert!(sender.batch.is_empty(), "{:?}", sender.batch);

        assert_eq!(flush_to(sender, peer).await, b"headtail");
    }

    #[tokio::test]
    async fn a_message_sent_from_its_parts_gets_its_frame_header_and_keeps_its_order() {
        let (mut sender, peer) = sender_and_peer(Mode::Framed).await;
        // One that the socket takes at once is not copied into the queue.
        sender.send_message(b"id", b"small").unwrap();
        assert!(sender.batch.is_empty(), "{:?}", sender.batch);

        // Two of the largest frames are more than the socket takes at once,
        // so that the rest is queued from the middle of a body, and the next
        // message waits behind it.
        let body: Vec<u8> = (0..DEFAULT_MAX_FRAME_LEN - 2)
            .map(|i| (i % 251) as u8)
            .collect();
        sender.send_message(b"id", &body).unwrap();
        sender.send_message(b"id", &body).unwrap();
        assert!(
            !sender.batch.is_empty(),
            "a peer that reads nothing took it all"
        );
        sender.send_message(b"", b"next").unwrap();

        let received = flush_to(sender, peer).await;
        let large = [
            &u32::try_from(DEFAULT_MAX_FRAME_LEN).unwrap().to_be_bytes()[..],
            b"id",
            &body,
        ]
        .concat();
        let small = [&7u32.to_be_bytes()[..], b"idsmall"].concat();
        let expected = [&small[..], &large, &large, &4u32.to_be_bytes(), b"next"].concat();
        assert_eq!(received.len(), expected.len());
        assert!(received == expected);
    }

    #[tokio::test]
    async fn over_tls_a_message_goes_to_rustls_from_its_parts_not_through_the_queue() {
        let files = echo_testkit::certs::ServerCertFiles::new("localhost").unwrap();
        let server = echo_server::Server::bind(echo_server::Config {
            listen: "127.0.0.1:0".parse().unwrap(),
            tls: Some(echo_server::TlsConfig::new(
                "127.0.0.1:0".parse().unwrap(),
                files.cert.clone(),
                files.key.clone(),
            )),
            ..echo_server::Config::default()
        })
        .await
        .unwrap();
        let addr = server.tls_addr().unwrap().to_string();
        tokio::spawn(server.run(std::future::pending()));
        let connector = crate::TlsOptions {
            ca: Some(files.ca_file.clone()),
            server_name: Some("localhost".to_owned()),
            ..crate::TlsOptions::default()
        }
        .connector(&addr)
        .unwrap();
        let dial = Dial {
            tls: Some(&connector),
            ..Dial::plain(Mode::Framed)
        };
        let mut link = connect(&addr, dial, DEADLINE).await.unwrap();

        // A 64 KiB message and its header fit in what rustls holds unsent.
        let body: Vec<u8> = (0..64 * 1024).map(|i| (i % 251) as u8).collect();
        link.sender.send_message(b"id", &body).unwrap();
        assert!(link.sender.batch.is_empty(), "rustls took it all");
        tokio::time::timeout(DEADLINE, link.sender.flush())
            .await
            .expect("the flush ends")
            .unwrap();
        let echo = tokio::time::timeout(DEADLINE, link.receiver.next_echo(0))
            .await
            .expect("the echo comes")
            .unwrap()
            .unwrap();
        assert!(echo == [&b"id"[..], &body].concat());
    }

    #[tokio::test]
    async fn a_message_too_long_to_frame_is_refused_and_nothing_is_queued() {
        let (mut sender, _peer) = sender_and_peer(Mode::Framed).await;
        let body = vec![0; DEFAULT_MAX_FRAME_LEN];
        let error = sender.send_message(b"id", &body).unwrap_err();
        let max = DEFAULT_MAX_FRAME_LEN as u64;
        assert!(
            matches!(error, FrameError::FrameTooLarge { len, max: limit } if len == max + 2 && limit == max),
            "{error:?}"
        );
        assert!(sender.batch.is_empty());
    }

    #[tokio::test]
    async fn stream_bytes_over_udp_are_one_datagram() {
        let peer = UdpSocket::bind("127.0.0.1:0").await.unwrap();
        let mut sender = open_udp(peer.local_addr().unwrap()).await.unwrap().sender;
        sender.send_stream_bytes(b"ab", b"cd").unwrap();
        tokio::time::timeout(DEADLINE, sender.flush())
            .await
            .expect("a datagram is sent at once")
            .unwrap();
        let mut buffer = [0; 16];
        let len = tokio::time::timeout(DEADLINE, peer.recv(&mut buffer))
            .await
            .expect("the datagram arrives")
            .unwrap();
        assert_eq!(&buffer[..len], b"abcd");
    }
}
