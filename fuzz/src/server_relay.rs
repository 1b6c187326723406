//! The `server_relay` target: the echo server's connection loop, driven over
//! an in-memory stream, must echo what the protocol says and nothing else.
//!
//! The server never buffers a whole frame: it tracks frame boundaries with a
//! [`echo_proto::FrameScanner`] and relays through a fixed buffer, passing a
//! frame larger than the buffer back in pieces. This target checks that
//! policy against the [`Reference`], the same one the decoders are held to:
//!
//! - the echo is a prefix of what was sent;
//! - it holds every complete frame before the first header over the limit;
//! - it holds nothing of a rejected header;
//! - it goes beyond the complete frames only when the stream ends inside a
//!   frame larger than the relay buffer, which may have been relayed in part;
//! - the connection's summary (frames, bytes, why it ended) agrees.
//!
//! The knobs byte chooses the mode (bit 0: raw), the transport (bit 1: one
//! that can say whether data is waiting, as a TCP stream can, so that the
//! connection gives its buffer back between reads) and the in-memory
//! stream's capacity (bits 2 to 7), which decides how the server's reads and
//! writes are cut.

use std::io;
use std::pin::Pin;
use std::task::{Context, Poll, ready};
use std::time::Duration;

use echo_server::{Config, ConnectionEnd, ConnectionSummary, EchoService, EchoStream, Mode};
use tokio::io::{AsyncRead, AsyncReadExt, AsyncWrite, AsyncWriteExt, DuplexStream, ReadBuf};
use tokio_util::sync::CancellationToken;

use crate::input::Input;
use crate::reference::{End, HEADER_LEN, Reference};

/// The relay buffer the server is given: the smallest it allows, so that
/// frames larger than it are cheap for the fuzzer to make.
pub const RELAY_BUFFER_LEN: usize = echo_server::MIN_RELAY_BUFFER_LEN;

/// How long an exchange may take on the runtime's paused clock before it
/// counts as a hang. The clock only moves when every task is waiting, so it
/// costs no real time; it is shorter than the server's idle timeout, so that
/// a hang shows as one rather than as an idle connection closed.
const HANG_TIMEOUT: Duration = Duration::from_secs(60);

/// How many bytes the transport that can say whether data is waiting looks
/// ahead: few, so that its look-ahead often splits headers.
const PEEK_LEN: usize = 3;

/// Checks the server's relay against the reference on one input.
pub fn check(data: &[u8]) {
    let Some(input) = Input::parse(data) else {
        return;
    };
    let mode = if input.knobs & 1 == 0 {
        Mode::Framed
    } else {
        Mode::Raw
    };
    let peeking = input.knobs & 2 != 0;
    let capacity = usize::from(input.knobs >> 2) * 8 + 1;
    let config = Config {
        mode,
        max_frame_len: input.limit(),
        relay_buffer_len: RELAY_BUFFER_LEN,
        ..Config::default()
    };

    let runtime = tokio::runtime::Builder::new_current_thread()
        .enable_time()
        .start_paused(true)
        .build()
        .expect("a current-thread runtime can be built");
    let (echo, summary) = runtime.block_on(async {
        tokio::time::timeout(HANG_TIMEOUT, exchange(&input, &config, peeking, capacity))
            .await
            .expect("the exchange hung")
    });

    match mode {
        Mode::Raw => {
            assert_eq!(echo, input.stream, "raw mode echoes every byte");
            assert!(
                matches!(summary.end, ConnectionEnd::ClientClosed),
                "{summary:?}"
            );
            assert_eq!(summary.frames, 0);
        }
        Mode::Framed => check_framed_echo(&input, &echo, &summary),
    }
    assert_eq!(
        summary.bytes,
        echo.len() as u64,
        "the bytes the summary counts"
    );
}

/// Sends the input's stream to an echo connection chunk by chunk, shuts down
/// the sending side, and reads everything that comes back.
async fn exchange(
    input: &Input<'_>,
    config: &Config,
    peeking: bool,
    capacity: usize,
) -> (Vec<u8>, ConnectionSummary) {
    let service = EchoService::new(config);
    let shutdown = CancellationToken::new();
    let (client, server_side) = tokio::io::duplex(capacity);
    let (mut from_server, mut to_server) = tokio::io::split(client);

    let serve = async {
        if peeking {
            service.serve(Peeking::new(server_side), &shutdown).await
        } else {
            service.serve(server_side, &shutdown).await
        }
    };
    let send = async {
        for chunk in input.chunks() {
            // The server stops reading after a header over the limit and
            // closes: the rest of the stream has nowhere to go.
            if to_server.write_all(chunk).await.is_err() {
                return;
            }
            // Let the server read before the next chunk, so that the chunks
            // arrive as chunks rather than all at once.
            tokio::task::yield_now().await;
        }
        // The server may be gone already, as above.
        let _ = to_server.shutdown().await;
    };
    let receive = async {
        let mut echo = Vec::new();
        from_server
            .read_to_end(&mut echo)
            .await
            .expect("reading an in-memory stream cannot fail");
        echo
    };
    let (summary, (), echo) = tokio::join!(serve, send, receive);
    (echo, summary)
}

fn check_framed_echo(input: &Input<'_>, echo: &[u8], summary: &ConnectionSummary) {
    let reference = Reference::parse(input.stream, input.limit());
    assert!(
        input.stream.starts_with(echo),
        "the echo is not a prefix of the stream: {} bytes echoed",
        echo.len()
    );
    let complete = reference.complete_len();
    assert!(
        echo.len() >= complete,
        "only {} of the {complete} bytes of complete frames were echoed",
        echo.len()
    );
    let partial_allowed = matches!(
        reference.end,
        End::InPayload { len, .. } if HEADER_LEN + len > RELAY_BUFFER_LEN
    );
    if !partial_allowed {
        assert_eq!(
            echo.len(),
            complete,
            "bytes beyond the complete frames were echoed (the stream ends {:?})",
            reference.end
        );
    }
    assert_eq!(
        summary.frames,
        reference.frames.len() as u64,
        "the frames counted"
    );

    let end = &summary.end;
    let expected = match reference.end {
        End::Clean => matches!(end, ConnectionEnd::ClientClosed),
        End::InHeader { start } => is_truncated(end, reference.total - start, HEADER_LEN),
        End::InPayload { start, len } => {
            is_truncated(end, reference.total - start, HEADER_LEN + len)
        }
        End::TooLarge { len, .. } => matches!(
            end,
            ConnectionEnd::ProtocolError(echo_proto::FrameError::FrameTooLarge { len: got, max })
                if *got == len as u64 && *max == reference.limit as u64
        ),
    };
    assert!(
        expected,
        "the connection ended with {end:?}, the stream with {:?}",
        reference.end
    );
}

fn is_truncated(end: &ConnectionEnd, received: usize, expected: usize) -> bool {
    matches!(
        end,
        ConnectionEnd::ProtocolError(echo_proto::FrameError::Truncated { received: r, expected: e })
            if *r == received as u64 && *e == expected as u64
    )
}

/// An in-memory stream that can say whether data is waiting, as a TCP
/// stream can: it reads a few bytes ahead and hands them out first.
#[derive(Debug)]
struct Peeking {
    inner: DuplexStream,
    ahead: [u8; PEEK_LEN],
    /// `ahead[start..end]` is read ahead and not handed out yet.
    start: usize,
    end: usize,
    /// Whether the look-ahead found the end of the stream.
    eof: bool,
}

impl Peeking {
    fn new(inner: DuplexStream) -> Self {
        Self {
            inner,
            ahead: [0; PEEK_LEN],
            start: 0,
            end: 0,
            eof: false,
        }
    }
}

impl AsyncRead for Peeking {
    fn poll_read(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &mut ReadBuf<'_>,
    ) -> Poll<io::Result<()>> {
        let this = &mut *self;
        if this.start < this.end {
            let n = (this.end - this.start).min(buf.remaining());
            buf.put_slice(&this.ahead[this.start..this.start + n]);
            this.start += n;
            return Poll::Ready(Ok(()));
        }
        if this.eof {
            return Poll::Ready(Ok(()));
        }
        Pin::new(&mut this.inner).poll_read(cx, buf)
    }
}

impl AsyncWrite for Peeking {
    fn poll_write(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &[u8],
    ) -> Poll<io::Result<usize>> {
        Pin::new(&mut self.inner).poll_write(cx, buf)
    }

    fn poll_flush(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        Pin::new(&mut self.inner).poll_flush(cx)
    }

    fn poll_shutdown(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        Pin::new(&mut self.inner).poll_shutdown(cx)
    }
}

impl EchoStream for Peeking {
    fn poll_read_ready(&mut self, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        if self.start < self.end || self.eof {
            return Poll::Ready(Ok(()));
        }
        let mut ahead = ReadBuf::new(&mut self.ahead);
        ready!(Pin::new(&mut self.inner).poll_read(cx, &mut ahead))?;
        let n = ahead.filled().len();
        (self.start, self.end, self.eof) = (0, n, n == 0);
        Poll::Ready(Ok(()))
    }
}
