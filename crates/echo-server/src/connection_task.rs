//! One connection's task: its serving, cut short at the drain timeout, and
//! logged and counted when it ends.
//!
//! A future of our own rather than an `async` block around a `select!`: a
//! block that awaits a future it captured keeps it twice, once as it was
//! captured and once as it is awaited, and the serving future is most of an
//! idle connection's memory.

use std::future::Future;
use std::net::SocketAddr;
use std::pin::Pin;
use std::sync::Arc;
use std::task::{Context, Poll, ready};
use std::time::Instant;

use pin_project_lite::pin_project;
use tokio::sync::OwnedSemaphorePermit;
use tokio_util::sync::WaitForCancellationFutureOwned;
use tracing::field::display;
use tracing::{info, warn};

use crate::Metrics;
use crate::accept::is_connection_error;
use crate::connection_end::{ConnectionEnd, ConnectionSummary};
use crate::handshake_error::HandshakeError;

/// How a connection's serving ended.
pub(crate) enum Outcome {
    /// It was served, for `client` if a PROXY header named one, or its TLS
    /// handshake failed.
    Served {
        served: Result<ConnectionSummary, HandshakeError>,
        client: Option<SocketAddr>,
    },
    /// It ended before it was served (its PROXY header was refused), and
    /// has been logged.
    Ended(ConnectionEnd),
}

pin_project! {
    /// Polls `serving` until it ends, or until `abort` (the drain timeout)
    /// fires first; then logs and counts how the connection, from `peer`
    /// and accepted at `started`, ended, and gives its permit back.
    pub(crate) struct ConnectionTask<F> {
        #[pin]
        serving: F,
        #[pin]
        abort: WaitForCancellationFutureOwned,
        permit: Option<OwnedSemaphorePermit>,
        metrics: Arc<Metrics>,
        peer: SocketAddr,
        started: Instant,
    }
}

impl<F> ConnectionTask<F> {
    pub(crate) fn new(
        serving: F,
        abort: WaitForCancellationFutureOwned,
        permit: OwnedSemaphorePermit,
        metrics: Arc<Metrics>,
        (peer, started): (SocketAddr, Instant),
    ) -> Self {
        Self {
            serving,
            abort,
            permit: Some(permit),
            metrics,
            peer,
            started,
        }
    }
}

impl<F: Future<Output = Outcome>> Future for ConnectionTask<F> {
    type Output = ();

    fn poll(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<()> {
        let this = self.project();
        // The serving first: a connection that has just finished is counted
        // as it ended, not as cut short.
        let end = match this.serving.poll(cx) {
            Poll::Ready(Outcome::Served { served, client }) => {
                closed(served, *this.peer, client, *this.started)
            }
            Poll::Ready(Outcome::Ended(end)) => end,
            Poll::Pending => {
                ready!(this.abort.poll(cx));
                warn!(peer = %this.peer, "connection closed unfinished at the drain timeout");
                ConnectionEnd::Drained
            }
        };
        this.metrics.connection_closed(&end);
        this.permit.take();
        Poll::Ready(())
    }
}

/// Logs how a connection from `peer`, accepted at `started`, ended, with
/// the client first, and returns why.
fn closed(
    served: Result<ConnectionSummary, HandshakeError>,
    peer: SocketAddr,
    client: Option<SocketAddr>,
    started: Instant,
) -> ConnectionEnd {
    let elapsed = started.elapsed();
    let client = client.map(display);
    let summary = match served {
        Ok(summary) => summary,
        Err(error) => {
            warn!(client, %peer, ?elapsed, "connection closed: {error}");
            return ConnectionEnd::TlsHandshake(error);
        }
    };
    let (frames, bytes, end) = (summary.frames, summary.bytes, &summary.end);
    // A client leaving, even abruptly, is ordinary; the server closing on a
    // client is worth a warning.
    let ordinary = match end {
        ConnectionEnd::ClientClosed | ConnectionEnd::Drained => true,
        ConnectionEnd::Io(error) => is_connection_error(error),
        _ => false,
    };
    if ordinary {
        info!(client, %peer, frames, bytes, ?elapsed, "connection closed: {end}");
    } else {
        warn!(client, %peer, frames, bytes, ?elapsed, "connection closed: {end}");
    }
    summary.end
}
