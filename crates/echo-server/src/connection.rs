//! One client connection: the echo loop over any byte stream.

use std::fmt;
use std::future::poll_fn;
use std::io;
use std::pin::Pin;
use std::sync::Arc;
use std::task::{Context, Poll, Waker};
use std::time::Duration;

use echo_proto::{FrameError, frame};
use tokio::io::{AsyncRead, AsyncReadExt, AsyncWrite, AsyncWriteExt};
use tokio::net::TcpStream;
use tokio::time::{Instant, Sleep, sleep};
use tokio_util::sync::CancellationToken;
use tracing::{Level, debug, enabled};

use crate::Metrics;
use crate::buffer_pool::BufferPool;
use crate::relay::{MIN_RELAY_BUFFER_LEN, RelayBuffer};
use crate::tls::HandshakeError;
use crate::{Config, Mode};

/// How many payload bytes a debug log line shows of each frame.
const PREVIEW_LEN: usize = 32;

/// How long a draining connection between frames waits, once, for data the
/// client has already sent. Data can sit in the socket before the runtime has
/// noticed it, so "nothing to read right now" is not yet proof that nothing
/// was received.
pub const DRAIN_SETTLE: Duration = Duration::from_millis(100);

/// How many spare relay buffers the pool keeps for connections to reuse.
const POOLED_BUFFERS: usize = 64;

/// A byte stream the echo can be served on.
///
/// Anything that reads and writes bytes qualifies. A stream that can also say
/// when it has data without being read, as a TCP stream can, lets an idle
/// connection give its relay buffer back while it waits, which is what keeps
/// thousands of idle connections cheap.
pub trait EchoStream: AsyncRead + AsyncWrite + Unpin {
    /// Polls until a read would find data, end of stream or an error, without
    /// reading. The default answers at once, so the connection keeps its
    /// buffer while it waits.
    fn poll_read_ready(&mut self, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        let _ = cx;
        Poll::Ready(Ok(()))
    }
}

impl EchoStream for TcpStream {
    fn poll_read_ready(&mut self, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        TcpStream::poll_read_ready(self, cx)
    }
}

impl EchoStream for tokio::io::DuplexStream {}

/// How a connection ended, and what it carried.
#[derive(Debug)]
pub struct ConnectionSummary {
    /// Frames received and echoed (0 in raw mode).
    pub frames: u64,
    /// Bytes echoed, headers included.
    pub bytes: u64,
    /// Why the connection ended.
    pub end: ConnectionEnd,
}

/// Why a connection ended.
#[derive(Debug)]
#[non_exhaustive]
pub enum ConnectionEnd {
    /// The client closed its side and every frame it sent was echoed.
    ClientClosed,
    /// The server is shutting down; every frame received was echoed.
    Drained,
    /// Nothing was read or written for the idle timeout.
    IdleTimeout(Duration),
    /// The client broke the protocol (an oversize or truncated frame).
    ProtocolError(FrameError),
    /// The connection failed: reset by the client, or another I/O error.
    Io(io::Error),
    /// The TLS handshake did not complete: nothing was echoed.
    TlsHandshake(HandshakeError),
}

impl fmt::Display for ConnectionEnd {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            ConnectionEnd::ClientClosed => f.write_str("client closed the connection"),
            ConnectionEnd::Drained => f.write_str("closed for shutdown"),
            ConnectionEnd::IdleTimeout(after) => write!(f, "idle for {after:?}"),
            ConnectionEnd::ProtocolError(error) => write!(f, "protocol error: {error}"),
            ConnectionEnd::Io(error) => write!(f, "I/O error: {error}"),
            ConnectionEnd::TlsHandshake(error) => error.fmt(f),
        }
    }
}

/// The echo, as every connection of a server shares it: the settings, the
/// pool of relay buffers and the metrics.
///
/// ```
/// use echo_server::{Config, EchoService};
/// use tokio::io::{AsyncReadExt, AsyncWriteExt};
/// use tokio_util::sync::CancellationToken;
///
/// # #[tokio::main(flavor = "current_thread")]
/// # async fn main() -> std::io::Result<()> {
/// let service = EchoService::new(&Config::default());
/// let (mut client, server_side) = tokio::io::duplex(1024);
/// let serving = tokio::spawn(async move {
///     service.serve(server_side, &CancellationToken::new()).await
/// });
/// client.write_all(b"\x00\x00\x00\x02hi").await?;
/// client.shutdown().await?;
/// let mut echo = Vec::new();
/// client.read_to_end(&mut echo).await?;
/// assert_eq!(echo, b"\x00\x00\x00\x02hi");
/// assert_eq!(serving.await?.frames, 1);
/// # Ok(())
/// # }
/// ```
#[derive(Debug)]
pub struct EchoService {
    mode: Mode,
    max_frame_len: usize,
    idle_timeout: Duration,
    buffers: BufferPool,
    metrics: Arc<Metrics>,
}

impl EchoService {
    /// The echo as `config` describes it (its mode, frame limit, relay buffer
    /// size and idle timeout), counting into metrics of its own.
    pub fn new(config: &Config) -> Self {
        Self::with_metrics(config, Arc::new(Metrics::new()))
    }

    /// The echo as `config` describes it, counting what it echoes into
    /// `metrics`.
    pub fn with_metrics(config: &Config, metrics: Arc<Metrics>) -> Self {
        Self {
            mode: config.mode,
            max_frame_len: config.max_frame_len,
            idle_timeout: config.idle_timeout,
            buffers: BufferPool::new(
                config.relay_buffer_len.max(MIN_RELAY_BUFFER_LEN),
                POOLED_BUFFERS,
            ),
            metrics,
        }
    }

    /// The metrics this echo counts into.
    pub fn metrics(&self) -> &Arc<Metrics> {
        &self.metrics
    }

    /// Serves the echo on `stream` until the client closes it, it fails, it
    /// stays idle too long, or `shutdown` is cancelled and the connection has
    /// drained.
    ///
    /// When `shutdown` is cancelled the connection stops waiting for new
    /// frames: it echoes every complete frame it has received, including those
    /// already waiting in the stream (given [`DRAIN_SETTLE`] to show up) and
    /// the one it is in the middle of, then closes.
    pub async fn serve<S: EchoStream>(
        &self,
        mut stream: S,
        shutdown: &CancellationToken,
    ) -> ConnectionSummary {
        let mut relay = RelayBuffer::new(self.mode, self.max_frame_len);
        let mut bytes = 0;
        let end = self
            .relay(&mut stream, &mut relay, &mut bytes, shutdown)
            .await;
        relay.release_if_empty(&self.buffers);
        if matches!(
            end,
            ConnectionEnd::ClientClosed | ConnectionEnd::Drained | ConnectionEnd::ProtocolError(_)
        ) {
            // Tell the client nothing more is coming. It may already be gone,
            // and then there is no one left to tell.
            if let Err(error) = stream.shutdown().await {
                debug!(%error, "could not shut down the connection cleanly");
            }
        }
        ConnectionSummary {
            frames: relay.frames(),
            bytes,
            end,
        }
    }

    async fn relay<S: EchoStream>(
        &self,
        stream: &mut S,
        relay: &mut RelayBuffer,
        bytes_echoed: &mut u64,
        shutdown: &CancellationToken,
    ) -> ConnectionEnd {
        // One deadline for the whole connection, pushed back whenever bytes
        // move, rather than a timer per read and per write: pushing a tokio
        // timer later is an atomic store, while a timer per operation costs
        // a clock read and a registration each, on every echo.
        let deadline = sleep(self.idle_timeout);
        tokio::pin!(deadline);
        let mut draining = false;
        let mut settled = false;
        loop {
            let idle = relay.is_idle();
            if draining && idle {
                // Draining between frames, only what has already arrived is
                // taken (see DRAIN_SETTLE).
                let wait = if settled {
                    Duration::ZERO
                } else {
                    DRAIN_SETTLE
                };
                settled = true;
                deadline.as_mut().reset(Instant::now() + wait);
            }
            let outcome = tokio::select! {
                // Data that has already arrived goes first, so that a
                // shutdown never skips frames the client had sent.
                biased;
                outcome = self.read_some(stream, relay) => outcome,
                // A waiter made afresh for each wait, not kept for the whole
                // connection: kept, it would sit in every idle connection's
                // state, which measured 240 bytes more per connection, for a
                // registration that costs little next to a wakeup.
                () = shutdown.cancelled(), if !draining => {
                    draining = true;
                    continue;
                }
                () = &mut deadline => {
                    return if draining && idle {
                        ConnectionEnd::Drained
                    } else {
                        ConnectionEnd::IdleTimeout(self.idle_timeout)
                    };
                }
            };

            let n = match outcome {
                Ok(0) => {
                    return match relay.finish() {
                        Ok(()) if draining => ConnectionEnd::Drained,
                        Ok(()) => ConnectionEnd::ClientClosed,
                        Err(error) => ConnectionEnd::ProtocolError(error),
                    };
                }
                Ok(n) => n,
                Err(error) => return ConnectionEnd::Io(error),
            };
            // Bytes arrived: the connection is not idle.
            deadline.as_mut().reset(Instant::now() + self.idle_timeout);

            let filled_buffer = relay.is_full();
            let frames_before = relay.frames();
            let committed = relay.commit_read(n);
            if enabled!(Level::DEBUG) {
                describe(relay, n);
            }
            let frames = relay.frames() - frames_before;
            match self.write_ready(stream, relay, deadline.as_mut()).await {
                Ok(written) => {
                    *bytes_echoed += written;
                    self.metrics.echoed(frames, written);
                }
                Err(end) => return end,
            }
            if let Err(error) = committed {
                return ConnectionEnd::ProtocolError(error);
            }
            if !has_data_waiting(stream) {
                // The client has nothing more for now: an idle connection
                // holds no buffer.
                relay.release_if_empty(&self.buffers);
            } else if filled_buffer {
                // A client streaming a buffer's worth at a time could keep
                // this task relaying until its socket runs dry, while every
                // other connection on the thread waits: after each full
                // buffer, the others get their turn, as in a round of epoll.
                tokio::task::yield_now().await;
            }
        }
    }

    /// Reads what has arrived, waiting for it as long as it takes: `Ok(0)`
    /// at end of stream. A relay with no buffer waits for data before taking
    /// one.
    async fn read_some<S: EchoStream>(
        &self,
        stream: &mut S,
        relay: &mut RelayBuffer,
    ) -> io::Result<usize> {
        if !relay.holds_buffer() {
            poll_fn(|cx| stream.poll_read_ready(cx)).await?;
        }
        stream.read_buf(relay.read_target(&self.buffers)).await
    }

    /// Writes back what the relay has ready, then drops it from the buffer.
    /// Each write must make progress before `deadline`, which every write
    /// that makes progress after a wait pushes back: a client that stops
    /// reading its echoes is idle too.
    async fn write_ready<S: EchoStream>(
        &self,
        stream: &mut S,
        relay: &mut RelayBuffer,
        mut deadline: Pin<&mut Sleep>,
    ) -> Result<u64, ConnectionEnd> {
        let ready = relay.ready();
        if ready.is_empty() {
            return Ok(0);
        }
        let idle = ConnectionEnd::IdleTimeout(self.idle_timeout);
        // Everything ready goes out in as few writes as the socket allows:
        // many pipelined frames cost one system call, not one each.
        let mut written = 0;
        while written < ready.len() {
            let result = tokio::select! {
                biased;
                result = stream.write(&ready[written..]) => result,
                () = &mut deadline => return Err(idle),
            };
            match result {
                Ok(0) => return Err(ConnectionEnd::Io(io::ErrorKind::WriteZero.into())),
                Ok(n) => {
                    let first = written == 0;
                    written += n;
                    // Bytes sent after a wait for room in the socket: the
                    // connection is not idle. (A first write that sends
                    // everything follows the read at once, and the deadline
                    // already counts from there.)
                    if !(first && written == ready.len()) {
                        deadline.as_mut().reset(Instant::now() + self.idle_timeout);
                    }
                }
                Err(error) => return Err(ConnectionEnd::Io(error)),
            }
        }
        // Streams that buffer, such as TLS, need a flush to send; TCP's is free.
        tokio::select! {
            biased;
            flushed = stream.flush() => flushed.map_err(ConnectionEnd::Io)?,
            () = &mut deadline => return Err(idle),
        }
        relay.consume_ready();
        Ok(written as u64)
    }
}

/// Whether a read would find something right now, without waiting.
fn has_data_waiting<S: EchoStream>(stream: &mut S) -> bool {
    // A waker that does nothing: this only asks, and whoever waits next
    // registers its own.
    let mut cx = Context::from_waker(Waker::noop());
    stream.poll_read_ready(&mut cx).is_ready()
}

/// Logs what the last read brought, for people watching the exchange at
/// debug level.
fn describe(relay: &RelayBuffer, read: usize) {
    if !relay.is_framed() {
        // In raw mode everything read is ready, and nothing else is.
        debug!(len = read, bytes = %Preview(relay.ready()), "bytes received");
        return;
    }
    if let Some(len) = relay.large_frame_started() {
        debug!(
            len,
            "frame received, larger than the relay buffer: echoing it as it arrives"
        );
    }
    for payload in frame::payloads(relay.whole_frames()) {
        debug!(len = payload.len(), payload = %Preview(payload), "frame received");
    }
}

/// The start of a payload, escaped so that binary data prints safely.
struct Preview<'a>(&'a [u8]);

impl fmt::Display for Preview<'_> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let shown = &self.0[..self.0.len().min(PREVIEW_LEN)];
        write!(f, "\"{}\"", shown.escape_ascii())?;
        if self.0.len() > PREVIEW_LEN {
            f.write_str("...")?;
        }
        Ok(())
    }
}
