//! [`Serving`]: one connection's echo, a state machine that its task polls.
//!
//! Written by hand rather than as an `async fn`. The compiler's state machine
//! for the echo loop kept every borrow and each branch's locals side by side,
//! and its caller kept the stream and the service a second time: 728 bytes
//! in all, most of what an idle connection costs. Here the connection's parts
//! are held once, and each phase holds only what it needs.
//!
//! The phases, in order: the greeting (with `--greeting`), then reading and
//! writing back in turn until the connection ends, then, if it ended cleanly,
//! shutting down its sending side, and for a drained connection lingering to
//! read what the client still sends (see [`DRAIN_LINGER`]).
//!
//! Nothing here waits for the drain to start. Whoever polls this wakes it
//! when the shutdown token is cancelled (see [`EchoService::serve`] and the
//! server's connection task); it then sees the token cancelled at once.

use std::future::Future;
use std::io;
use std::pin::Pin;
use std::task::{Context, Poll, Waker, ready};
use std::time::Duration;

use echo_proto::FrameError;
use pin_project_lite::pin_project;
use tokio::io::AsyncWrite;
use tokio::time::{Instant, Sleep, sleep};
use tokio_util::io::poll_read_buf;
use tokio_util::sync::CancellationToken;
use tracing::{Level, debug, enabled};

use super::{DRAIN_LINGER, DRAIN_SETTLE, EchoService, describe};
use crate::connection_end::{ConnectionEnd, ConnectionSummary};
use crate::echo_stream::EchoStream;
use crate::relay::{HEADROOM, RelayBuffer};

pin_project! {
    /// Serves the echo on `stream` until the client closes it, it fails, it
    /// stays idle too long, or `shutdown` is cancelled and the connection has
    /// drained; then says how it went.
    ///
    /// The service and the token come from `context`: borrowed, or shared
    /// by a server's connection tasks.
    pub(crate) struct Serving<S, C> {
        // One deadline for the whole connection, pushed back whenever bytes
        // move, rather than a timer per read and per write: pushing a tokio
        // timer later is an atomic store, while a timer per operation costs
        // a clock read and a registration each, on every echo.
        #[pin]
        deadline: Sleep,
        phase: Phase,
        parts: Parts<S, C>,
    }
}

/// Where a connection's serving finds the echo it serves and the token that
/// starts its drain.
pub(crate) trait ServingContext {
    fn service(&self) -> &EchoService;
    fn shutdown(&self) -> &CancellationToken;
}

impl ServingContext for (&EchoService, &CancellationToken) {
    fn service(&self) -> &EchoService {
        self.0
    }

    fn shutdown(&self) -> &CancellationToken {
        self.1
    }
}

/// What the connection is doing.
enum Phase {
    /// Sending the greeting, of which `sent` bytes are out.
    Greeting { sent: usize },
    /// Waiting for the client's bytes.
    Reading,
    /// Writing back what the last read made ready.
    Writing(Echo),
    /// Letting every other task have its turn before reading again. Boxed,
    /// as tokio's yield has no type to name; it is made only after a full
    /// buffer.
    Yielding(Pin<Box<dyn Future<Output = ()> + Send>>),
    /// Telling the client that nothing more is coming, as the connection
    /// ended cleanly (`end`).
    ShuttingDown(ConnectionEnd),
    /// Reading and dropping what a drained client still sends.
    Lingering,
    /// The connection's summary has been returned.
    Done,
}

/// One read's echo, on its way back.
struct Echo {
    /// With `--delay`, the echo's wait. Boxed: only echoes that wait pay for
    /// a timer.
    hold: Option<Pin<Box<Sleep>>>,
    /// How many of the ready bytes are written.
    written: usize,
    /// How many frames the read completed, for the metrics: at most a
    /// quarter of the buffer's length, which is a `u32`.
    frames: u32,
    /// Whether the read filled the buffer.
    filled_buffer: bool,
    /// A header over the limit, after the frames being echoed: the
    /// connection ends once they are written. Boxed: it is rare, and every
    /// echo under way would otherwise hold room for it.
    error: Option<Box<FrameError>>,
}

/// What the next step of a phase is.
enum Step {
    /// Go on to this phase.
    Next(Phase),
    /// The connection is over.
    Done(ConnectionEnd),
}

/// The parts of a connection that every phase shares.
struct Parts<S, C> {
    stream: S,
    context: C,
    relay: RelayBuffer,
    /// Whether the drain has started: no new frames are waited for.
    draining: bool,
    /// Whether the draining connection has had its one wait for data already
    /// sent (see [`DRAIN_SETTLE`]).
    settled: bool,
}

impl<S: EchoStream, C: ServingContext> Serving<S, C> {
    /// The echo on `stream`, ready to be polled. It must be made inside a
    /// tokio runtime, as it makes the connection's timer.
    pub(crate) fn new(context: C, stream: S) -> Self {
        let echo = context.service();
        let relay = RelayBuffer::new(echo.mode, echo.max_frame_len);
        let phase = match echo.greeting {
            Some(_) => Phase::Greeting { sent: 0 },
            None => Phase::Reading,
        };
        Self {
            deadline: sleep(echo.idle_timeout),
            phase,
            parts: Parts {
                stream,
                context,
                relay,
                draining: false,
                settled: false,
            },
        }
    }
}

impl<S: EchoStream, C: ServingContext> Future for Serving<S, C> {
    type Output = ConnectionSummary;

    fn poll(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<ConnectionSummary> {
        let this = self.project();
        let (phase, parts, mut deadline) = (this.phase, this.parts, this.deadline);
        loop {
            let step = match phase {
                Phase::Greeting { sent } => {
                    ready!(parts.poll_greeting(cx, sent, deadline.as_mut()))
                }
                Phase::Reading => ready!(parts.poll_reading(cx, deadline.as_mut())),
                Phase::Writing(echo) => ready!(parts.poll_writing(cx, echo, deadline.as_mut())),
                Phase::Yielding(yielding) => {
                    ready!(yielding.as_mut().poll(cx));
                    Step::Next(parts.start_reading(deadline.as_mut()))
                }
                Phase::ShuttingDown(end) => {
                    let shut_down = ready!(parts.poll_shutdown(cx, deadline.as_mut()));
                    match std::mem::replace(end, ConnectionEnd::ClientClosed) {
                        ConnectionEnd::Drained if shut_down => {
                            deadline.as_mut().reset(Instant::now() + DRAIN_LINGER);
                            Step::Next(Phase::Lingering)
                        }
                        end => Step::Done(end),
                    }
                }
                Phase::Lingering => {
                    ready!(parts.poll_lingering(cx, deadline.as_mut()));
                    Step::Done(ConnectionEnd::Drained)
                }
                Phase::Done => panic!("a connection's serving was polled after it ended"),
            };
            *phase = match step {
                Step::Next(next) => next,
                Step::Done(end) => {
                    *phase = Phase::Done;
                    return Poll::Ready(parts.summary(end));
                }
            };
        }
    }
}

impl<S: EchoStream, C: ServingContext> Parts<S, C> {
    /// Sends the greeting, which must leave within the idle timeout like any
    /// write: a client that reads nothing does not hold the connection open.
    fn poll_greeting(
        &mut self,
        cx: &mut Context<'_>,
        sent: &mut usize,
        mut deadline: Pin<&mut Sleep>,
    ) -> Poll<Step> {
        let service = self.context.service();
        let greeting = service.greeting.as_deref().unwrap_or_default();
        let idle_timeout = service.idle_timeout;
        let sending = poll_write_all(
            &mut self.stream,
            cx,
            greeting,
            sent,
            deadline.as_mut(),
            idle_timeout,
        );
        Poll::Ready(match ready!(sending) {
            Ok(()) => Step::Next(self.start_reading(deadline)),
            Err(end) => self.close(end, deadline),
        })
    }

    /// Waits for the client's bytes, the shutdown and the deadline, in that
    /// order: data that has already arrived goes first, so that a shutdown
    /// never skips frames the client had sent.
    fn poll_reading(&mut self, cx: &mut Context<'_>, mut deadline: Pin<&mut Sleep>) -> Poll<Step> {
        loop {
            match self.poll_read(cx) {
                Poll::Ready(Ok(0)) => {
                    let end = match self.relay.finish() {
                        Ok(()) if self.draining => ConnectionEnd::Drained,
                        Ok(()) => ConnectionEnd::ClientClosed,
                        Err(error) => ConnectionEnd::ProtocolError(error),
                    };
                    return Poll::Ready(self.close(end, deadline));
                }
                Poll::Ready(Ok(n)) => return Poll::Ready(Step::Next(self.echo(n, deadline))),
                Poll::Ready(Err(error)) => {
                    return Poll::Ready(self.close(ConnectionEnd::Io(error), deadline));
                }
                Poll::Pending => {}
            }
            if !self.draining && self.context.shutdown().is_cancelled() {
                self.draining = true;
                self.settle(deadline.as_mut());
                // Once more: the settling wait starts now.
                continue;
            }
            ready!(deadline.as_mut().poll(cx));
            let service = self.context.service();
            let end = if self.draining && self.relay.is_idle() {
                ConnectionEnd::Drained
            } else {
                ConnectionEnd::IdleTimeout(service.idle_timeout)
            };
            return Poll::Ready(self.close(end, deadline));
        }
    }

    /// Reads what has arrived: `Ok(0)` at end of stream.
    ///
    /// A relay with no buffer waits for data before taking one, and gives it
    /// back if the read would block after all: readiness can be stale (the
    /// runtime learns that a socket is empty only by reading it), and a
    /// buffer held across that wait would cost every idle connection its
    /// size, 64 KiB of heap.
    fn poll_read(&mut self, cx: &mut Context<'_>) -> Poll<io::Result<usize>> {
        let buffers = &self.context.service().buffers;
        if self.relay.holds_buffer() {
            return poll_read_buf(
                Pin::new(&mut self.stream),
                cx,
                self.relay.read_target(buffers),
            );
        }
        ready!(self.stream.poll_read_ready(cx))?;
        let read = poll_read_buf(
            Pin::new(&mut self.stream),
            cx,
            self.relay.read_target(buffers),
        );
        if read.is_pending() {
            self.relay.release_if_empty(buffers);
        }
        read
    }

    /// Takes in the `n` bytes just read and starts their echo.
    fn echo(&mut self, n: usize, mut deadline: Pin<&mut Sleep>) -> Phase {
        let service = self.context.service();
        // Bytes arrived: the connection is not idle.
        deadline
            .as_mut()
            .reset(Instant::now() + service.idle_timeout);
        let filled_buffer = self.relay.is_full();
        let frames_before = self.relay.frames();
        let committed = self.relay.commit_read(n);
        if enabled!(Level::DEBUG) {
            describe(&self.relay, n);
        }
        // `--delay`: the echo waits, and so does reading, so that a held
        // echo costs no more memory than one written at once.
        let hold = match &service.delay {
            Some(delay) if !self.relay.ready().is_empty() => delay.timer(),
            _ => None,
        };
        Phase::Writing(Echo {
            hold,
            written: 0,
            frames: u32::try_from(self.relay.frames() - frames_before).unwrap_or(u32::MAX),
            filled_buffer,
            error: committed.err().map(Box::new),
        })
    }

    /// Writes back what the relay has ready, in as few writes as the socket
    /// allows (many pipelined frames cost one system call, not one each),
    /// then drops it from the buffer.
    fn poll_writing(
        &mut self,
        cx: &mut Context<'_>,
        echo: &mut Echo,
        mut deadline: Pin<&mut Sleep>,
    ) -> Poll<Step> {
        let service = self.context.service();
        if let Some(hold) = &mut echo.hold {
            ready!(hold.as_mut().poll(cx));
            echo.hold = None;
            deadline
                .as_mut()
                .reset(Instant::now() + service.idle_timeout);
        }
        let ready = self.relay.ready();
        if !ready.is_empty() {
            let writing = poll_write_all(
                &mut self.stream,
                cx,
                ready,
                &mut echo.written,
                deadline.as_mut(),
                service.idle_timeout,
            );
            if let Err(end) = ready!(writing) {
                return Poll::Ready(self.close(end, deadline));
            }
            self.relay.consume_ready();
        }
        service
            .metrics
            .echoed(u64::from(echo.frames), echo.written as u64);
        if let Some(error) = echo.error.take() {
            return Poll::Ready(self.close(ConnectionEnd::ProtocolError(*error), deadline));
        }
        if !has_data_waiting(&mut self.stream) {
            // The client has nothing more for now: an idle connection
            // holds no buffer.
            self.relay.release_if_empty(&service.buffers);
        } else if echo.filled_buffer {
            // A client streaming a buffer's worth at a time could keep this
            // task relaying until its socket runs dry, while every other
            // connection on the thread waits: after each full buffer, the
            // others get their turn, as in a round of epoll. (Tokio's yield
            // waits until the runtime has polled for I/O, as a task waking
            // itself would not.)
            return Poll::Ready(Step::Next(Phase::Yielding(Box::pin(
                tokio::task::yield_now(),
            ))));
        }
        Poll::Ready(Step::Next(self.start_reading(deadline)))
    }

    /// Shuts the stream down for writing: `false` if that failed (the client
    /// may already be gone, and then there is no one left to tell).
    fn poll_shutdown(&mut self, cx: &mut Context<'_>, deadline: Pin<&mut Sleep>) -> Poll<bool> {
        let error = match Pin::new(&mut self.stream).poll_shutdown(cx) {
            Poll::Ready(Ok(())) => return Poll::Ready(true),
            Poll::Ready(Err(error)) => error,
            Poll::Pending => {
                ready!(deadline.poll(cx));
                io::ErrorKind::TimedOut.into()
            }
        };
        debug!(%error, "could not shut down the connection cleanly");
        Poll::Ready(false)
    }

    /// Reads and drops what the client still sends after a drained
    /// connection has been shut down for writing, until the client closes
    /// its side or the deadline ([`DRAIN_LINGER`]) passes.
    ///
    /// A drained connection stops reading at a frame boundary, while the
    /// client may still be sending. Closing a socket with bytes unread makes
    /// the kernel reset the connection, and a reset throws away the echoes
    /// the client has not read yet: every one of them was owed. Waiting for
    /// the client's end, or for long enough that it has read them, keeps
    /// them.
    fn poll_lingering(&mut self, cx: &mut Context<'_>, deadline: Pin<&mut Sleep>) -> Poll<()> {
        // The relay is idle, so its buffer is free to read into.
        let sink = self.relay.read_target(&self.context.service().buffers);
        loop {
            let read = poll_read_buf(Pin::new(&mut self.stream), cx, &mut *sink);
            // Back to the headroom alone, as the relay keeps its buffer.
            sink.truncate(HEADROOM);
            match read {
                Poll::Ready(Ok(0) | Err(_)) => return Poll::Ready(()),
                Poll::Ready(Ok(_)) => {}
                Poll::Pending => return deadline.poll(cx),
            }
        }
    }

    /// The echo is over: the buffer goes back, and a connection that ended
    /// cleanly is shut down, within the idle timeout like any write, to tell
    /// the client nothing more is coming.
    fn close(&mut self, end: ConnectionEnd, mut deadline: Pin<&mut Sleep>) -> Step {
        let service = self.context.service();
        self.relay.release_if_empty(&service.buffers);
        match end {
            ConnectionEnd::ClientClosed
            | ConnectionEnd::Drained
            | ConnectionEnd::ProtocolError(_) => {
                deadline
                    .as_mut()
                    .reset(Instant::now() + service.idle_timeout);
                Step::Next(Phase::ShuttingDown(end))
            }
            end => Step::Done(end),
        }
    }

    /// Goes back to reading; a draining connection with nothing in hand
    /// waits only for what has already arrived (see [`DRAIN_SETTLE`]).
    fn start_reading(&mut self, deadline: Pin<&mut Sleep>) -> Phase {
        self.settle(deadline);
        Phase::Reading
    }

    /// Sets the deadline of a draining connection between frames: the first
    /// time [`DRAIN_SETTLE`] from now, then now.
    fn settle(&mut self, deadline: Pin<&mut Sleep>) {
        if self.draining && self.relay.is_idle() {
            let wait = if self.settled {
                Duration::ZERO
            } else {
                DRAIN_SETTLE
            };
            self.settled = true;
            deadline.reset(Instant::now() + wait);
        }
    }

    /// The connection's summary, its buffer given back.
    fn summary(&mut self, end: ConnectionEnd) -> ConnectionSummary {
        self.relay.release_if_empty(&self.context.service().buffers);
        ConnectionSummary {
            frames: self.relay.frames(),
            bytes: self.relay.bytes_echoed(),
            end,
        }
    }
}

/// Writes `bytes` from `*written` on, then flushes: each step must make
/// progress before `deadline`, which every write that makes progress after a
/// wait pushes back by `idle_timeout` (a client that stops reading its
/// echoes is idle too).
fn poll_write_all<S: AsyncWrite + Unpin>(
    stream: &mut S,
    cx: &mut Context<'_>,
    bytes: &[u8],
    written: &mut usize,
    mut deadline: Pin<&mut Sleep>,
    idle_timeout: Duration,
) -> Poll<Result<(), ConnectionEnd>> {
    let idle = || ConnectionEnd::IdleTimeout(idle_timeout);
    while *written < bytes.len() {
        match Pin::new(&mut *stream).poll_write(cx, &bytes[*written..]) {
            Poll::Ready(Ok(0)) => {
                return Poll::Ready(Err(ConnectionEnd::Io(io::ErrorKind::WriteZero.into())));
            }
            Poll::Ready(Ok(n)) => {
                let first = *written == 0;
                *written += n;
                // Bytes sent after a wait for room in the socket: the
                // connection is not idle. (A first write that sends
                // everything follows the read at once, and the deadline
                // already counts from there.)
                if !(first && *written == bytes.len()) {
                    deadline.as_mut().reset(Instant::now() + idle_timeout);
                }
            }
            Poll::Ready(Err(error)) => return Poll::Ready(Err(ConnectionEnd::Io(error))),
            Poll::Pending => {
                ready!(deadline.as_mut().poll(cx));
                return Poll::Ready(Err(idle()));
            }
        }
    }
    // Streams that buffer, such as TLS, need a flush to send; TCP's is free.
    match Pin::new(stream).poll_flush(cx) {
        Poll::Ready(flushed) => Poll::Ready(flushed.map_err(ConnectionEnd::Io)),
        Poll::Pending => {
            ready!(deadline.poll(cx));
            Poll::Ready(Err(idle()))
        }
    }
}

/// Whether a read would find something right now, without waiting.
fn has_data_waiting<S: EchoStream>(stream: &mut S) -> bool {
    // A waker that does nothing: this only asks, and whoever waits next
    // registers its own.
    let mut cx = Context::from_waker(Waker::noop());
    stream.poll_read_ready(&mut cx).is_ready()
}
