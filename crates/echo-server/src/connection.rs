//! One client connection: the echo loop over any byte stream.

use std::borrow::Borrow;
use std::fmt;
use std::future::{Future, poll_fn};
use std::io;
use std::pin::Pin;
use std::sync::Arc;
use std::task::{Context, Waker, ready};
use std::time::Duration;

use echo_proto::frame;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::time::{Instant, Sleep, sleep};
use tokio_util::io::poll_read_buf;
use tokio_util::sync::CancellationToken;
use tracing::{Level, debug, enabled};

use crate::Metrics;
use crate::buffer_pool::BufferPool;
use crate::connection_end::{ConnectionEnd, ConnectionSummary};
use crate::delay::{self, Delay};
use crate::echo_stream::EchoStream;
use crate::greeting;
use crate::relay::{MAX_RELAY_BUFFER_LEN, MIN_RELAY_BUFFER_LEN, RelayBuffer};
use crate::{Config, Mode};

/// How many payload bytes a debug log line shows of each frame.
const PREVIEW_LEN: usize = 32;

/// How long a draining connection between frames waits, once, for data the
/// client has already sent. Data can sit in the socket before the runtime has
/// noticed it, so "nothing to read right now" is not yet proof that nothing
/// was received.
pub const DRAIN_SETTLE: Duration = Duration::from_millis(100);

/// How long a drained connection goes on reading, and dropping, what its
/// client still sends, before it closes (see [`linger`]).
const DRAIN_LINGER: Duration = Duration::from_secs(1);

/// How many spare relay buffers the pool keeps for connections to reuse.
const POOLED_BUFFERS: usize = 64;

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
    /// The greeting's bytes, sent as each connection opens, if asked for.
    greeting: Option<Box<[u8]>>,
    delay: Option<Delay>,
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
                config
                    .relay_buffer_len
                    .clamp(MIN_RELAY_BUFFER_LEN, MAX_RELAY_BUFFER_LEN),
                POOLED_BUFFERS,
            ),
            metrics,
            greeting: greeting::bytes(config),
            delay: config.delay,
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
    pub fn serve<'a, S: EchoStream + 'a>(
        &'a self,
        stream: S,
        shutdown: &'a CancellationToken,
    ) -> impl Future<Output = ConnectionSummary> + 'a {
        serve_on(self, stream, shutdown)
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
            // `--delay`: the echo waits, and so does reading, so that a held
            // echo costs no more memory than one written at once.
            if let Some(delay) = &self.delay {
                if !relay.ready().is_empty() {
                    // Boxed, as the greeting is: its timer is paid for
                    // only by the echoes that wait.
                    Box::pin(delay::hold(delay, deadline.as_mut(), self.idle_timeout)).await;
                }
            }
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
    /// at end of stream.
    ///
    /// A relay with no buffer waits for data before taking one, and gives it
    /// back if the read would block after all: readiness can be stale (the
    /// runtime learns that a socket is empty only by reading it), and a
    /// buffer held across that wait would cost every idle connection its
    /// size, 64 KiB of heap.
    async fn read_some<S: EchoStream>(
        &self,
        stream: &mut S,
        relay: &mut RelayBuffer,
    ) -> io::Result<usize> {
        if relay.holds_buffer() {
            return stream.read_buf(relay.read_target(&self.buffers)).await;
        }
        poll_fn(|cx| {
            ready!(stream.poll_read_ready(cx))?;
            let read = poll_read_buf(Pin::new(&mut *stream), cx, relay.read_target(&self.buffers));
            if read.is_pending() {
                relay.release_if_empty(&self.buffers);
            }
            read
        })
        .await
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

/// [`EchoService::serve`], with the service and the shutdown token held
/// however the caller holds them: borrowed, or owned by a connection's task
/// (an `Arc` and a token of its own). The stream is held here once: an
/// `async fn` keeps its arguments for its whole life, so a caller that
/// awaited this from an `async fn` of its own would hold them twice.
pub(crate) async fn serve_on<S: EchoStream>(
    service: impl Borrow<EchoService>,
    mut stream: S,
    shutdown: impl Borrow<CancellationToken>,
) -> ConnectionSummary {
    let (service, shutdown) = (service.borrow(), shutdown.borrow());
    let mut relay = RelayBuffer::new(service.mode, service.max_frame_len);
    let mut bytes = 0;
    let greeted = match &service.greeting {
        // Boxed, so that its state (a timer among it) is not part of
        // every connection's future, greeting or not.
        Some(greeting) => {
            Box::pin(greeting::send(&mut stream, greeting, service.idle_timeout)).await
        }
        None => Ok(()),
    };
    let end = match greeted {
        Ok(()) => {
            service
                .relay(&mut stream, &mut relay, &mut bytes, shutdown)
                .await
        }
        Err(end) => end,
    };
    relay.release_if_empty(&service.buffers);
    if matches!(
        end,
        ConnectionEnd::ClientClosed | ConnectionEnd::Drained | ConnectionEnd::ProtocolError(_)
    ) {
        // Tell the client nothing more is coming. It may already be gone,
        // and then there is no one left to tell.
        if let Err(error) = stream.shutdown().await {
            debug!(%error, "could not shut down the connection cleanly");
        } else if matches!(end, ConnectionEnd::Drained) {
            // Boxed, as the greeting is: only draining connections pay
            // for its buffer.
            Box::pin(linger(&mut stream)).await;
        }
    }
    ConnectionSummary {
        frames: relay.frames(),
        bytes,
        end,
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

/// Reads and drops what the client still sends after a drained connection
/// has been shut down for writing, until the client closes its side or
/// [`DRAIN_LINGER`] passes.
///
/// A drained connection stops reading at a frame boundary, while the client
/// may still be sending. Closing a socket with bytes unread makes the
/// kernel reset the connection, and a reset throws away the echoes the
/// client has not read yet: every one of them was owed. Waiting for the
/// client's end, or for long enough that it has read them, keeps them.
async fn linger<S: EchoStream>(stream: &mut S) {
    let mut sink = vec![0; 4096];
    let _ = tokio::time::timeout(DRAIN_LINGER, async {
        while let Ok(read) = stream.read(&mut sink).await {
            if read == 0 {
                break;
            }
        }
    })
    .await;
}
