//! One client connection: the echo loop over any byte stream.

use std::fmt;
use std::sync::Arc;
use std::time::Duration;

use echo_proto::frame;
use tokio_util::sync::CancellationToken;
use tracing::debug;

use crate::Metrics;
use crate::buffer_pool::BufferPool;
use crate::connection_end::ConnectionSummary;
use crate::delay::Delay;
use crate::echo_stream::EchoStream;
use crate::greeting;
use crate::relay::{MAX_RELAY_BUFFER_LEN, MIN_RELAY_BUFFER_LEN, RelayBuffer, pooled_len};
use crate::{Config, Mode};

mod serving;

pub(crate) use serving::{Serving, ServingContext};

/// How many payload bytes a debug log line shows of each frame.
const PREVIEW_LEN: usize = 32;

/// How long a draining connection between frames waits, once, for data the
/// client has already sent. Data can sit in the socket before the runtime has
/// noticed it, so "nothing to read right now" is not yet proof that nothing
/// was received.
pub const DRAIN_SETTLE: Duration = Duration::from_millis(100);

/// How long a drained connection goes on reading, and dropping, what its
/// client still sends, before it closes.
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
                pooled_len(
                    config
                        .relay_buffer_len
                        .clamp(MIN_RELAY_BUFFER_LEN, MAX_RELAY_BUFFER_LEN),
                ),
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
    pub async fn serve<S: EchoStream>(
        &self,
        stream: S,
        shutdown: &CancellationToken,
    ) -> ConnectionSummary {
        // Made at the first poll, inside the runtime, which its timer needs.
        let serving = Serving::new((self, shutdown), stream);
        tokio::pin!(serving);
        tokio::select! {
            biased;
            summary = &mut serving => return summary,
            () = shutdown.cancelled() => {}
        }
        // The drain has started: the serving sees it, and goes on to the
        // end.
        serving.await
    }
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
