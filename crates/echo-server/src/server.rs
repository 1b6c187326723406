//! [`Server`]: the listener, the accept loop and graceful shutdown.

use std::future::Future;
use std::io;
use std::net::SocketAddr;
use std::sync::Arc;
use std::time::{Duration, Instant};

use tokio::net::{TcpListener, TcpSocket, TcpStream, UdpSocket};
use tokio::sync::Semaphore;
use tokio_util::sync::CancellationToken;
use tokio_util::task::TaskTracker;
use tracing::{Instrument, debug, error, info, info_span, warn};

use crate::connection::{ConnectionEnd, EchoService};
use crate::{Config, udp};

/// How many connections may wait in the kernel's accept queue. A burst of
/// connections beyond what the accept loop has taken yet waits here instead
/// of being refused.
const LISTEN_BACKLOG: u32 = 1024;

/// The first pause after an accept error that is not about one connection
/// (such as running out of file descriptors); it doubles up to the maximum.
const ACCEPT_BACKOFF_START: Duration = Duration::from_millis(10);
const ACCEPT_BACKOFF_MAX: Duration = Duration::from_secs(1);

/// Why the server could not start.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum ServerError {
    /// The listening socket could not be set up on the address.
    #[error("cannot listen on {addr}: {source}")]
    Bind {
        /// The address asked for.
        addr: SocketAddr,
        /// What the operating system said.
        source: io::Error,
    },
}

/// A framed echo server bound to its address, ready to [`run`](Self::run).
///
/// ```
/// use echo_server::{Config, Server};
///
/// # #[tokio::main(flavor = "current_thread")]
/// # async fn main() -> Result<(), Box<dyn std::error::Error>> {
/// let server = Server::bind(Config {
///     listen: "127.0.0.1:0".parse()?,
///     ..Config::default()
/// })
/// .await?;
/// println!("serving on {}", server.local_addr());
///
/// // Serve until the shutdown future completes; here, at once.
/// server.run(async {}).await;
/// # Ok(())
/// # }
/// ```
#[derive(Debug)]
pub struct Server {
    listener: TcpListener,
    local_addr: SocketAddr,
    udp: Option<(UdpSocket, SocketAddr)>,
    config: Config,
}

impl Server {
    /// Binds the listening socket. The server does not accept connections
    /// until [`run`](Self::run) is awaited, but clients can already connect:
    /// they wait in the accept queue.
    pub async fn bind(config: Config) -> Result<Self, ServerError> {
        let addr = config.listen;
        let bind_error = |source| ServerError::Bind { addr, source };
        let socket = if addr.is_ipv4() {
            TcpSocket::new_v4()
        } else {
            TcpSocket::new_v6()
        }
        .map_err(bind_error)?;
        // A restarted server can bind at once, even while connections of the
        // previous one linger in TIME_WAIT.
        socket.set_reuseaddr(true).map_err(bind_error)?;
        socket.bind(addr).map_err(bind_error)?;
        let listener = socket.listen(LISTEN_BACKLOG).map_err(bind_error)?;
        let local_addr = listener.local_addr().map_err(bind_error)?;
        let udp = match config.udp {
            Some(addr) => Some(bind_udp(addr).await?),
            None => None,
        };
        Ok(Self {
            listener,
            local_addr,
            udp,
            config,
        })
    }

    /// The address of the UDP echo, if one was asked for, with the real port.
    pub fn udp_addr(&self) -> Option<SocketAddr> {
        self.udp.as_ref().map(|(_, addr)| *addr)
    }

    /// The address the server listens on, with the real port when port 0
    /// was asked for.
    pub fn local_addr(&self) -> SocketAddr {
        self.local_addr
    }

    /// Serves connections until `shutdown` completes, then drains: it stops
    /// accepting, lets every open connection echo what it has received, and
    /// returns once all have closed or the drain timeout has passed, whichever
    /// comes first. Connections still open then are closed.
    pub async fn run(self, shutdown: impl Future<Output = ()> + Send) {
        let Self {
            listener,
            udp,
            config,
            ..
        } = self;
        let connections = TaskTracker::new();
        let drain = CancellationToken::new();
        let abort = CancellationToken::new();
        let service = Arc::new(EchoService::new(&config));
        let limit = Arc::new(Semaphore::new(
            config.max_connections.min(Semaphore::MAX_PERMITS),
        ));

        // Datagrams have no connection to drain: UDP stops when the drain
        // starts.
        let udp =
            udp.map(|(socket, _)| tokio::spawn(udp::serve_udp(socket, drain.clone(), |_| {})));

        tokio::select! {
            () = accept_loop(&listener, &connections, &service, &limit, &drain, &abort) => {}
            () = shutdown => {}
        }

        // Stop accepting first: new clients are refused from here on.
        drop(listener);
        drain.cancel();
        if let Some(udp) = udp {
            // It returns as soon as it sees the cancellation.
            let _ = udp.await;
        }
        connections.close();
        let open = connections.len();
        info!(
            open_connections = open,
            "shutting down: draining open connections"
        );
        let started = Instant::now();
        if tokio::time::timeout(config.drain_timeout, connections.wait())
            .await
            .is_err()
        {
            warn!(
                closed_unfinished = connections.len(),
                drain_timeout = ?config.drain_timeout,
                "drain timeout passed: closing the connections still open"
            );
            abort.cancel();
            connections.wait().await;
        }
        info!(elapsed = ?started.elapsed(), "shutdown complete");
    }
}

/// Binds the UDP echo's socket.
async fn bind_udp(addr: SocketAddr) -> Result<(UdpSocket, SocketAddr), ServerError> {
    let bind_error = |source| ServerError::Bind { addr, source };
    let socket = UdpSocket::bind(addr).await.map_err(bind_error)?;
    let local_addr = socket.local_addr().map_err(bind_error)?;
    Ok((socket, local_addr))
}

/// Accepts connections forever, each served by its own task. Errors about a
/// single connection are skipped; errors about the server's resources are
/// retried after a pause that grows, so that running out of file descriptors
/// slows the server down instead of stopping it or spinning.
async fn accept_loop(
    listener: &TcpListener,
    connections: &TaskTracker,
    service: &Arc<EchoService>,
    limit: &Arc<Semaphore>,
    drain: &CancellationToken,
    abort: &CancellationToken,
) {
    let mut backoff = ACCEPT_BACKOFF_START;
    loop {
        match listener.accept().await {
            Ok((stream, peer)) => {
                backoff = ACCEPT_BACKOFF_START;
                let Ok(permit) = Arc::clone(limit).try_acquire_owned() else {
                    // Closing at once tells the client where it stands, and
                    // costs the connections already open nothing.
                    warn!(%peer, "connection refused: the connection limit is reached");
                    drop(stream);
                    continue;
                };
                let service = Arc::clone(service);
                let drain = drain.clone();
                let abort = abort.clone();
                connections.spawn(
                    async move {
                        tokio::select! {
                            () = handle(stream, &service, &drain) => {}
                            () = abort.cancelled() => warn!("connection closed unfinished at the drain timeout"),
                        }
                        drop(permit);
                    }
                    .instrument(info_span!("connection", %peer)),
                );
            }
            Err(error) if is_connection_error(&error) => {
                debug!(%error, "a connection failed before it was accepted");
            }
            Err(error) => {
                error!(%error, retry_in = ?backoff, "cannot accept connections");
                tokio::time::sleep(backoff).await;
                backoff = (backoff * 2).min(ACCEPT_BACKOFF_MAX);
            }
        }
    }
}

/// Serves one accepted connection and logs how it went.
async fn handle(stream: TcpStream, service: &EchoService, drain: &CancellationToken) {
    // Echoes are small writes that must leave at once, not wait to be
    // coalesced with data that will never come.
    if let Err(error) = stream.set_nodelay(true) {
        debug!(%error, "cannot set TCP_NODELAY");
    }
    info!("connection opened");
    let started = Instant::now();
    let summary = service.serve(stream, drain).await;
    let elapsed = started.elapsed();
    let (frames, bytes) = (summary.frames, summary.bytes);
    match &summary.end {
        ConnectionEnd::ClientClosed | ConnectionEnd::Drained => {
            info!(
                frames,
                bytes,
                ?elapsed,
                "connection closed: {}",
                summary.end
            );
        }
        ConnectionEnd::Io(error) if is_connection_error(error) => {
            info!(
                frames,
                bytes,
                ?elapsed,
                "connection closed: {}",
                summary.end
            );
        }
        ConnectionEnd::IdleTimeout(_) | ConnectionEnd::ProtocolError(_) | ConnectionEnd::Io(_) => {
            warn!(
                frames,
                bytes,
                ?elapsed,
                "connection closed: {}",
                summary.end
            );
        }
    }
}

/// Whether an error concerns one connection (the peer went away) rather than
/// the server.
fn is_connection_error(error: &io::Error) -> bool {
    matches!(
        error.kind(),
        io::ErrorKind::ConnectionRefused
            | io::ErrorKind::ConnectionAborted
            | io::ErrorKind::ConnectionReset
            | io::ErrorKind::BrokenPipe
            | io::ErrorKind::UnexpectedEof
    )
}
