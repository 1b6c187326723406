//! One client connection: the framed echo loop over any byte stream.

use std::fmt;
use std::io;
use std::time::Duration;

use echo_proto::{FrameError, frame};
use tokio::io::{AsyncRead, AsyncReadExt, AsyncWrite, AsyncWriteExt};
use tokio_util::sync::CancellationToken;
use tracing::{Level, debug, enabled};

use crate::relay::RelayBuffer;

/// How many payload bytes a debug log line shows of each frame.
const PREVIEW_LEN: usize = 32;

/// How long a draining connection between frames waits, once, for data the
/// client has already sent. Data can sit in the socket before the runtime has
/// noticed it, so "nothing to read right now" is not yet proof that nothing
/// was received.
pub const DRAIN_SETTLE: Duration = Duration::from_millis(100);

/// The settings a connection runs with.
#[derive(Debug, Clone)]
pub struct ConnectionSettings {
    /// The longest frame payload accepted.
    pub max_frame_len: usize,
    /// The size of the connection's relay buffer.
    pub relay_buffer_len: usize,
}

/// How a connection ended, and what it carried.
#[derive(Debug)]
pub struct ConnectionSummary {
    /// Frames received and echoed.
    pub frames: u64,
    /// Bytes echoed, headers included.
    pub bytes: u64,
    /// Why the connection ended.
    pub end: ConnectionEnd,
}

/// Why a connection ended.
#[derive(Debug)]
pub enum ConnectionEnd {
    /// The client closed its side and every frame it sent was echoed.
    ClientClosed,
    /// The server is shutting down; every frame received was echoed.
    Drained,
    /// The client broke the protocol (an oversize or truncated frame).
    ProtocolError(FrameError),
    /// The connection failed: reset by the client, or another I/O error.
    Io(io::Error),
}

impl fmt::Display for ConnectionEnd {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            ConnectionEnd::ClientClosed => f.write_str("client closed the connection"),
            ConnectionEnd::Drained => f.write_str("closed for shutdown"),
            ConnectionEnd::ProtocolError(error) => write!(f, "protocol error: {error}"),
            ConnectionEnd::Io(error) => write!(f, "I/O error: {error}"),
        }
    }
}

/// Serves the framed echo protocol on `stream` until the client closes it, it
/// fails, or `shutdown` is cancelled and the connection has drained.
///
/// The stream can be anything that reads and writes bytes: a TCP stream, a TLS
/// stream over one, or an in-memory pipe in tests.
///
/// When `shutdown` is cancelled the connection stops waiting for new frames: it
/// echoes every complete frame it has received, including those already
/// waiting in the stream (given [`DRAIN_SETTLE`] to show up) and the one it
/// is in the middle of, then closes.
pub async fn serve_connection<S>(
    mut stream: S,
    settings: &ConnectionSettings,
    shutdown: &CancellationToken,
) -> ConnectionSummary
where
    S: AsyncRead + AsyncWrite + Unpin,
{
    let mut relay = RelayBuffer::new(settings.relay_buffer_len, settings.max_frame_len);
    let mut bytes = 0;
    let end = relay_frames(&mut stream, &mut relay, &mut bytes, shutdown).await;
    if matches!(
        end,
        ConnectionEnd::ClientClosed | ConnectionEnd::Drained | ConnectionEnd::ProtocolError(_)
    ) {
        // Tell the client nothing more is coming. It may already be gone, and
        // then there is no one left to tell.
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

async fn relay_frames<S>(
    stream: &mut S,
    relay: &mut RelayBuffer,
    bytes_echoed: &mut u64,
    shutdown: &CancellationToken,
) -> ConnectionEnd
where
    S: AsyncRead + AsyncWrite + Unpin,
{
    let mut draining = false;
    let mut settled = false;
    loop {
        let idle = relay.is_idle();
        let read = stream.read_buf(relay.read_target());
        let read_result = if !draining {
            tokio::select! {
                // Data that has already arrived goes first, so that a shutdown
                // never skips frames the client had sent.
                biased;
                result = read => result,
                () = shutdown.cancelled() => {
                    draining = true;
                    continue;
                }
            }
        } else if idle {
            // Draining between frames: take only what has already arrived,
            // giving it a moment to surface the first time.
            let wait = if settled {
                Duration::ZERO
            } else {
                DRAIN_SETTLE
            };
            settled = true;
            match tokio::time::timeout(wait, read).await {
                Ok(result) => result,
                Err(_) => return ConnectionEnd::Drained,
            }
        } else {
            // Draining inside a frame: wait for the rest of it. The server's
            // drain timeout bounds this wait.
            read.await
        };

        let n = match read_result {
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

        let committed = relay.commit_read(n);
        if enabled!(Level::DEBUG) {
            describe_frames(relay);
        }
        if let Err(error) = write_ready(stream, relay, bytes_echoed).await {
            return ConnectionEnd::Io(error);
        }
        if let Err(error) = committed {
            return ConnectionEnd::ProtocolError(error);
        }
    }
}

/// Writes back what the relay has ready, then drops it from the buffer.
async fn write_ready<S>(
    stream: &mut S,
    relay: &mut RelayBuffer,
    bytes_echoed: &mut u64,
) -> io::Result<()>
where
    S: AsyncWrite + Unpin,
{
    let ready = relay.ready();
    if ready.is_empty() {
        return Ok(());
    }
    // One write for everything ready: many pipelined frames cost one syscall.
    stream.write_all(ready).await?;
    // Streams that buffer, such as TLS, need a flush to send; TCP's is free.
    stream.flush().await?;
    *bytes_echoed += ready.len() as u64;
    relay.consume_ready();
    Ok(())
}

/// Logs each frame the last read completed, for people watching the exchange
/// at debug level.
fn describe_frames(relay: &RelayBuffer) {
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
