//! One connection's task: its serving, told when the drain starts, cut short
//! at the drain timeout, and logged and counted when it ends.
//!
//! A future of our own rather than an `async` block around a `select!`: a
//! block that awaits a future it captured keeps it twice, once as it was
//! captured and once as it is awaited, and the serving future is most of an
//! idle connection's memory. For the same reason one waiter serves for both
//! the drain and the drain timeout, one after the other.

use std::future::Future;
use std::net::SocketAddr;
use std::pin::Pin;
use std::sync::Arc;
use std::task::{Context, Poll, ready};
use std::time::{Duration, Instant};

use pin_project_lite::pin_project;
use tokio::sync::Semaphore;
use tokio_util::sync::{CancellationToken, WaitForCancellationFutureOwned};
use tracing::field::display;
use tracing::{info, warn};

use crate::accept::is_connection_error;
use crate::connection::{EchoService, ServingContext};
use crate::connection_end::{ConnectionEnd, ConnectionSummary};
use crate::handshake_error::HandshakeError;

/// What the connection tasks of a server share: the echo, the drain and its
/// timeout, the connection limit, and the clock their start times count
/// from. Each task reaches all of them through one pointer.
#[derive(Debug)]
pub(crate) struct Shared {
    pub(crate) service: EchoService,
    /// Cancelled when the drain starts.
    pub(crate) drain: CancellationToken,
    /// Cancelled when the drain timeout has passed.
    pub(crate) abort: CancellationToken,
    /// One permit per connection served at once.
    pub(crate) limit: Semaphore,
    epoch: Instant,
}

impl Shared {
    pub(crate) fn new(service: EchoService, max_connections: usize) -> Self {
        Self {
            service,
            drain: CancellationToken::new(),
            abort: CancellationToken::new(),
            limit: Semaphore::new(max_connections.min(Semaphore::MAX_PERMITS)),
            epoch: Instant::now(),
        }
    }

    /// Now, in milliseconds on this clock. They wrap around after 49 days,
    /// so only differences of them mean anything: [`elapsed`](Self::elapsed).
    pub(crate) fn now(&self) -> u32 {
        // Wrapping: the low 32 bits.
        self.epoch.elapsed().as_millis() as u32
    }

    /// The time since `started` (from [`now`](Self::now)), for connections
    /// younger than 49 days.
    pub(crate) fn elapsed(&self, started: u32) -> Duration {
        Duration::from_millis(u64::from(self.now().wrapping_sub(started)))
    }
}

impl ServingContext for Arc<Shared> {
    fn service(&self) -> &EchoService {
        &self.service
    }

    fn shutdown(&self) -> &CancellationToken {
        &self.drain
    }
}

/// A connection's place under the connection limit, given back when the
/// connection's task ends (or is dropped with its runtime).
pub(crate) struct Slot(Arc<Shared>);

impl Slot {
    /// Takes a place under the limit, if one is free.
    pub(crate) fn take(shared: &Arc<Shared>) -> Option<Self> {
        // The permit is forgotten and given back by hand: a permit keeps a
        // pointer of its own and a count, and every connection holds one.
        shared.limit.try_acquire().ok()?.forget();
        Some(Self(Arc::clone(shared)))
    }
}

impl Drop for Slot {
    fn drop(&mut self) {
        self.0.limit.add_permits(1);
    }
}

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
    /// Polls `serving` until it ends, or until the drain timeout fires
    /// first; then logs and counts how the connection, from `peer` and
    /// accepted at `started`, ended, and gives its slot back.
    ///
    /// `serving` watches the drain token itself, but does not wait for it:
    /// this task polls it again once the drain has started.
    pub(crate) struct ConnectionTask<F> {
        #[pin]
        serving: F,
        // Waits for the drain, then, once `aborting`, for the drain timeout.
        #[pin]
        waiter: WaitForCancellationFutureOwned,
        aborting: bool,
        slot: Slot,
        peer: SocketAddr,
        // Milliseconds on the shared clock: every idle connection holds
        // this, and an `Instant` is four times the size.
        started: u32,
    }
}

impl<F> ConnectionTask<F> {
    pub(crate) fn new(serving: F, slot: Slot, (peer, started): (SocketAddr, u32)) -> Self {
        Self {
            serving,
            waiter: slot.0.drain.clone().cancelled_owned(),
            aborting: false,
            slot,
            peer,
            started,
        }
    }
}

impl<F: Future<Output = Outcome>> Future for ConnectionTask<F> {
    type Output = ();

    fn poll(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<()> {
        let mut this = self.project();
        let shared = &this.slot.0;
        let end = loop {
            // The serving first: a connection that has just finished is
            // counted as it ended, not as cut short.
            match this.serving.as_mut().poll(cx) {
                Poll::Ready(Outcome::Served { served, client }) => {
                    break closed(served, *this.peer, client, shared.elapsed(*this.started));
                }
                Poll::Ready(Outcome::Ended(end)) => break end,
                Poll::Pending => {}
            }
            ready!(this.waiter.as_mut().poll(cx));
            if *this.aborting {
                warn!(peer = %this.peer, "connection closed unfinished at the drain timeout");
                break ConnectionEnd::Drained;
            }
            // The drain has started: the serving is polled again to see it,
            // and the waiter waits for the drain timeout.
            *this.aborting = true;
            this.waiter.set(shared.abort.clone().cancelled_owned());
        };
        shared.service.metrics().connection_closed(&end);
        Poll::Ready(())
    }
}

/// Logs how a connection from `peer`, accepted `elapsed` ago, ended, with
/// the client first, and returns why.
fn closed(
    served: Result<ConnectionSummary, HandshakeError>,
    peer: SocketAddr,
    client: Option<SocketAddr>,
    elapsed: Duration,
) -> ConnectionEnd {
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
