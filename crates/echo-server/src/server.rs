//! [`Server`]: the listener, the accept loop and graceful shutdown.

use std::future::Future;
use std::io;
use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Instant;

use futures_util::FutureExt;
use tokio::net::{TcpListener, TcpSocket, TcpStream, UdpSocket};
use tokio_util::either::Either;
use tokio_util::sync::CancellationToken;
use tokio_util::task::TaskTracker;
use tracing::field::display;
use tracing::{Instrument, debug, debug_span, info, warn};

use crate::accept::{Acceptor, is_connection_error};
use crate::admin::{Admin, serve_admin};
use crate::connection::{EchoService, Serving};
use crate::connection_end::{ConnectionEnd, ConnectionSummary};
use crate::connection_task::{ConnectionTask, Outcome, Shared, Slot};
use crate::echo_stream::EchoStream;
use crate::handshake_error::HandshakeError;
use crate::listening::{Kind, Listening};
use crate::proxy_protocol::ProxyPolicy;
use crate::tls::{self, TlsError, TlsReloader};
use crate::{Config, Metrics, RejectReason, udp};

/// How many connections may wait in the kernel's accept queue. A burst of
/// connections beyond what the accept loop has taken yet waits here instead
/// of being refused.
const LISTEN_BACKLOG: u32 = 1024;

/// Why the server could not start.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum ServerError {
    /// The listening socket could not be set up on the address.
    #[error("cannot listen on {addr}")]
    Bind {
        /// The address asked for.
        addr: SocketAddr,
        /// What the operating system said.
        source: io::Error,
    },
    /// The TLS files cannot be used.
    #[error(transparent)]
    Tls(#[from] TlsError),
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
    /// The echo listeners, one per worker, all on `local_addr`.
    listeners: Vec<TcpListener>,
    local_addr: SocketAddr,
    udp: Option<(UdpSocket, SocketAddr)>,
    admin_listener: Option<(TcpListener, SocketAddr)>,
    metrics: Arc<Metrics>,
    config: Config,
    /// The TLS listeners (one per worker), their address, and the TLS
    /// configuration they use.
    tls: Option<(Vec<TcpListener>, SocketAddr, TlsReloader)>,
}

impl Server {
    /// Binds the listening socket. The server does not accept connections
    /// until [`run`](Self::run) is awaited, but clients can already connect:
    /// they wait in the accept queue.
    pub async fn bind(config: Config) -> Result<Self, ServerError> {
        let metrics = Arc::new(Metrics::for_instance(&config.instance));
        // The files first: a bad one is the likelier mistake, and it binds
        // nothing.
        let tls = match &config.tls {
            Some(tls) => Some(TlsReloader::load(tls.clone(), Arc::clone(&metrics))?),
            None => None,
        };
        let workers = config.workers.max(1);
        let (listeners, local_addr) = bind_tcp_group(config.listen, workers)?;
        let tls = match tls {
            Some(reloader) => {
                let (listeners, addr) = bind_tcp_group(reloader.config().listen, workers)?;
                Some((listeners, addr, reloader))
            }
            None => None,
        };
        let udp = match config.udp {
            Some(addr) => Some(bind_udp(addr).await?),
            None => None,
        };
        let admin_listener = match config.admin {
            Some(addr) => Some(bind_admin(addr).await?),
            None => None,
        };
        Ok(Self {
            listeners,
            local_addr,
            udp,
            admin_listener,
            metrics,
            config,
            tls,
        })
    }

    /// The address of the admin endpoint (`/metrics`, `/healthz`, `/readyz`,
    /// `/info`), if one was asked for, with the real port.
    ///
    /// ```
    /// use echo_server::{Config, Server};
    /// use std::io::{Read, Write};
    ///
    /// # #[tokio::main(flavor = "current_thread")]
    /// # async fn main() -> Result<(), Box<dyn std::error::Error>> {
    /// let server = Server::bind(Config {
    ///     listen: "127.0.0.1:0".parse()?,
    ///     admin: Some("127.0.0.1:0".parse()?),
    ///     instance: "edge-1".to_owned(),
    ///     ..Config::default()
    /// })
    /// .await?;
    /// let admin = server.admin_addr().expect("an admin endpoint");
    /// let (stop, stopped) = tokio::sync::oneshot::channel::<()>();
    /// let serving = tokio::spawn(server.run(async {
    ///     let _ = stopped.await;
    /// }));
    ///
    /// let info = tokio::task::spawn_blocking(move || {
    ///     let mut stream = std::net::TcpStream::connect(admin)?;
    ///     stream.write_all(b"GET /info HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n")?;
    ///     let mut response = String::new();
    ///     stream.read_to_string(&mut response)?;
    ///     Ok::<_, std::io::Error>(response)
    /// })
    /// .await??;
    /// assert!(info.starts_with("HTTP/1.1 200 OK"));
    /// assert!(info.contains(r#""instance":"edge-1""#));
    ///
    /// stop.send(()).ok();
    /// serving.await?;
    /// # Ok(())
    /// # }
    /// ```
    pub fn admin_addr(&self) -> Option<SocketAddr> {
        self.admin_listener.as_ref().map(|(_, addr)| *addr)
    }

    /// The address of the TLS listener, if one was asked for, with the real
    /// port.
    pub fn tls_addr(&self) -> Option<SocketAddr> {
        self.tls.as_ref().map(|(_, addr, _)| *addr)
    }

    /// What reloads the TLS certificate, key and client CA (the binary calls
    /// it on SIGHUP), if the server serves TLS. It stays usable while the
    /// server runs.
    pub fn tls_reloader(&self) -> Option<TlsReloader> {
        self.tls.as_ref().map(|(_, _, reloader)| reloader.clone())
    }

    /// The server's metrics, which the endpoint serves (if there is one).
    pub fn metrics(&self) -> &Arc<Metrics> {
        &self.metrics
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

    /// Every listener the server has bound, in the order the binary
    /// announces them: the TCP echo first, then UDP and the admin endpoint if
    /// asked for.
    ///
    /// ```
    /// use echo_server::listening::Kind;
    /// use echo_server::{Config, Server};
    ///
    /// # #[tokio::main(flavor = "current_thread")]
    /// # async fn main() -> Result<(), Box<dyn std::error::Error>> {
    /// let server = Server::bind(Config {
    ///     listen: "127.0.0.1:0".parse()?,
    ///     udp: Some("127.0.0.1:0".parse()?),
    ///     ..Config::default()
    /// })
    /// .await?;
    /// let kinds: Vec<Kind> = server.listeners().iter().map(|line| line.kind).collect();
    /// assert_eq!(kinds, [Kind::Framed, Kind::Udp]);
    /// # Ok(())
    /// # }
    /// ```
    pub fn listeners(&self) -> Vec<Listening> {
        let tcp = Listening::new(self.local_addr, self.config.mode.into());
        let tls = self
            .tls_addr()
            .map(|addr| Listening::new(addr, Kind::tls(self.config.mode)));
        let udp = self.udp_addr().map(|addr| Listening::new(addr, Kind::Udp));
        let admin = self
            .admin_addr()
            .map(|addr| Listening::new(addr, Kind::Admin));
        [Some(tcp), tls, udp, admin].into_iter().flatten().collect()
    }

    /// Serves connections until `shutdown` completes; then `/readyz` answers
    /// 503 at once, the server goes on accepting and echoing for the drain
    /// delay, and then drains: it stops accepting, lets every open connection echo what it has received, and
    /// returns once all have closed or the drain timeout has passed, whichever
    /// comes first. Connections still open then are closed.
    pub async fn run(self, shutdown: impl Future<Output = ()> + Send) {
        let info = self.info();
        let Self {
            mut listeners,
            udp,
            admin_listener,
            metrics,
            config,
            tls,
            ..
        } = self;
        // The endpoint outlives the drain, so that it can be watched.
        let admin_stop = CancellationToken::new();
        let shutting_down = CancellationToken::new();
        let admin_endpoint = admin_listener.map(|(listener, _)| {
            let admin = Admin::new(Arc::clone(&metrics), shutting_down.clone(), info);
            tokio::spawn(serve_admin(listener, Arc::new(admin), admin_stop.clone()))
        });
        let connections = Arc::new(Connections {
            tracker: TaskTracker::new(),
            shared: Arc::new(Shared::new(
                EchoService::with_metrics(&config, Arc::clone(&metrics)),
                config.max_connections,
            )),
            proxy: config.proxy_protocol.then(|| {
                Arc::new(ProxyPolicy::new(
                    config.proxy_from.clone(),
                    config.idle_timeout,
                ))
            }),
        });
        // Datagrams have no connection to drain: UDP stops when the drain
        // starts.
        let udp = udp.map(|(socket, _)| {
            let metrics = Arc::clone(&metrics);
            tokio::spawn(udp::serve_udp(
                socket,
                connections.shared.drain.clone(),
                move |len| {
                    metrics.udp_datagram(len);
                },
            ))
        });

        // Every worker but the first gets a thread, a runtime and its own
        // listeners; this runtime is the first worker.
        let (mut tls_listeners, tls) = tls.map(|(listeners, _, tls)| (listeners, tls)).unzip();
        let stop_accepting = CancellationToken::new();
        let (accepted, mut all_accepted) = tokio::sync::mpsc::channel::<()>(1);
        let mut workers = Vec::new();
        let to_std = |listener: Option<TcpListener>| {
            listener.and_then(|listener| match listener.into_std() {
                Ok(listener) => Some(listener),
                Err(error) => {
                    warn!(%error, "cannot hand a listener to its worker");
                    None
                }
            })
        };
        for index in 1..listeners.len() {
            let worker = Worker {
                index,
                listener: to_std(listeners.pop()),
                tls_listener: to_std(tls_listeners.as_mut().and_then(Vec::pop)),
                tls: tls.clone(),
                connections: Arc::clone(&connections),
                stop_accepting: stop_accepting.clone(),
                accepted: accepted.clone(),
            };
            match worker.spawn() {
                Ok(thread) => workers.push(thread),
                Err(error) => {
                    warn!(%error, "cannot start a worker thread: its listeners are closed")
                }
            }
        }
        drop(accepted);
        let listener = listeners.pop().expect("a server has a listener per worker");
        let tls_listener = tls_listeners.as_mut().and_then(Vec::pop);
        // The accept loop borrows the listener until the drain starts.
        {
            let accepting = async {
                let accept_tls = async {
                    match &tls_listener {
                        Some(listener) => accept_loop(listener, &connections, tls.as_ref()).await,
                        None => std::future::pending().await,
                    }
                };
                tokio::join!(accept_loop(&listener, &connections, None), accept_tls);
            };
            tokio::pin!(accepting);
            tokio::select! {
                () = &mut accepting => {}
                () = shutdown => {}
            }
            // Lame duck: not ready from now on, but still serving, so that load
            // balancers see the 503 and move away before the listener closes.
            shutting_down.cancel();
            if !config.drain_delay.is_zero() {
                info!(drain_delay = ?config.drain_delay, "not ready: serving on until the drain delay passes");
                tokio::select! {
                    () = &mut accepting => {}
                    () = tokio::time::sleep(config.drain_delay) => {}
                }
            }
        }

        // Clients whose connections the kernel has already completed are
        // served, and drained, like the others; once the listener is closed,
        // new clients are refused. Every worker does the same with its own
        // listeners, and the drain starts once all have.
        stop_accepting.cancel();
        accept_waiting(listener, &connections, None);
        if let Some(listener) = tls_listener {
            accept_waiting(listener, &connections, tls.as_ref());
        }
        // It ends when every worker has dropped its sender.
        let _ = all_accepted.recv().await;
        connections.shared.drain.cancel();
        if let Some(udp) = udp {
            // It returns as soon as it sees the cancellation.
            let _ = udp.await;
        }
        let tracker = &connections.tracker;
        tracker.close();
        info!(
            open_connections = tracker.len(),
            "shutting down: draining open connections"
        );
        let started = Instant::now();
        if tokio::time::timeout(config.drain_timeout, tracker.wait())
            .await
            .is_err()
        {
            warn!(
                closed_unfinished = tracker.len(),
                drain_timeout = ?config.drain_timeout,
                "drain timeout passed: closing the connections still open"
            );
            connections.shared.abort.cancel();
            tracker.wait().await;
        }
        // The workers end once the connections have: their runtimes are
        // idle, and the threads about to return.
        let _ = tokio::task::spawn_blocking(move || {
            for worker in workers {
                let _ = worker.join();
            }
        })
        .await;
        admin_stop.cancel();
        if let Some(endpoint) = admin_endpoint {
            let _ = endpoint.await;
        }
        info!(elapsed = ?started.elapsed(), "shutdown complete");
    }
}

impl Server {
    /// What `/info` says of this server, but its uptime: version, instance,
    /// listeners and limits.
    fn info(&self) -> serde_json::Map<String, serde_json::Value> {
        let config = &self.config;
        let listeners: Vec<serde_json::Value> = self
            .listeners()
            .iter()
            .map(|line| serde_json::json!({"addr": line.addr.to_string(), "kind": line.kind.as_str()}))
            .collect();
        let info = serde_json::json!({
            "server": "echo-server",
            "version": env!("CARGO_PKG_VERSION"),
            "instance": config.instance,
            "workers": self.listeners.len(),
            "listeners": listeners,
            // The sources PROXY headers are taken from, if they are.
            "proxy_protocol": config.proxy_protocol.then(|| {
                config.proxy_from.iter().map(ToString::to_string).collect::<Vec<_>>()
            }),
            "limits": {
                "max_frame_len": config.max_frame_len,
                "max_connections": config.max_connections,
                "idle_timeout_secs": config.idle_timeout.as_secs_f64(),
                "drain_timeout_secs": config.drain_timeout.as_secs_f64(),
                "drain_delay_secs": config.drain_delay.as_secs_f64(),
            },
        });
        match info {
            serde_json::Value::Object(map) => map,
            _ => unreachable!("json! of an object is an object"),
        }
    }
}

/// A worker beyond the first: its listeners, served on a thread and a
/// single-threaded runtime of its own.
struct Worker {
    index: usize,
    /// Its listeners, out of the runtime they were bound on.
    listener: Option<std::net::TcpListener>,
    tls_listener: Option<std::net::TcpListener>,
    tls: Option<TlsReloader>,
    connections: Arc<Connections>,
    /// Cancelled when the listeners are to close.
    stop_accepting: CancellationToken,
    /// Dropped once this worker has taken what waited in its listeners'
    /// queues.
    accepted: tokio::sync::mpsc::Sender<()>,
}

impl Worker {
    /// Starts the worker's thread.
    fn spawn(self) -> io::Result<std::thread::JoinHandle<()>> {
        let runtime = tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()?;
        std::thread::Builder::new()
            .name(format!("echo-worker-{}", self.index))
            .spawn(move || runtime.block_on(self.run()))
    }

    /// Accepts on the worker's listeners until told to stop, takes what
    /// waits in their queues, and keeps the runtime (on which its
    /// connections' tasks run) going until every connection has ended.
    async fn run(self) {
        let register = |listener: Option<std::net::TcpListener>| {
            listener.and_then(|listener| match TcpListener::from_std(listener) {
                Ok(listener) => Some(listener),
                Err(error) => {
                    warn!(worker = self.index, %error, "cannot serve a worker's listener");
                    None
                }
            })
        };
        let (listener, tls_listener) = (register(self.listener), register(self.tls_listener));
        let connections = &self.connections;
        let accepting = async {
            let plain = async {
                match &listener {
                    Some(listener) => accept_loop(listener, connections, None).await,
                    None => std::future::pending().await,
                }
            };
            let tls = async {
                match (&tls_listener, &self.tls) {
                    (Some(listener), Some(tls)) => {
                        accept_loop(listener, connections, Some(tls)).await
                    }
                    _ => std::future::pending().await,
                }
            };
            tokio::join!(plain, tls);
        };
        tokio::select! {
            () = accepting => {}
            () = self.stop_accepting.cancelled() => {}
        }
        if let Some(listener) = listener {
            accept_waiting(listener, connections, None);
        }
        if let Some(listener) = tls_listener {
            accept_waiting(listener, connections, self.tls.as_ref());
        }
        drop(self.accepted);
        connections.tracker.wait().await;
    }
}

/// What the connection tasks of one server share.
struct Connections {
    /// Every connection task, so that shutdown can wait for them.
    tracker: TaskTracker,
    /// The echo, the drain, the limit.
    shared: Arc<Shared>,
    /// With `--proxy-protocol`, who may send a PROXY header and how long
    /// they have.
    proxy: Option<Arc<ProxyPolicy>>,
}

impl Connections {
    /// Serves `stream` on its own task (after a TLS handshake there, if
    /// `tls` is given), or closes it at once if the connection limit is
    /// reached.
    fn serve(&self, stream: TcpStream, peer: SocketAddr, tls: Option<&TlsReloader>) {
        let tls = tls.cloned();
        let metrics = self.shared.service.metrics();
        let Some(slot) = Slot::take(&self.shared) else {
            // Closing at once tells the client where it stands, and costs the
            // connections already open nothing.
            warn!(%peer, "connection refused: the connection limit is reached");
            metrics.connection_rejected(RejectReason::Limit);
            return;
        };
        metrics.connection_accepted();
        let started = self.shared.now();
        let serving = handle(
            stream,
            peer,
            Arc::clone(&self.shared),
            tls,
            self.proxy.clone(),
            started,
        );
        let task = ConnectionTask::new(serving, slot, (peer, started));
        // A span per connection gives debug logs their peer. Only with debug
        // logs on: a span, even a disabled one, is 40 bytes of every idle
        // connection's task, and the info and warn events name the peer
        // themselves.
        if tracing::enabled!(tracing::Level::DEBUG) {
            self.tracker
                .spawn(task.instrument(debug_span!("connection", %peer)));
        } else {
            self.tracker.spawn(task);
        }
    }
}

/// Binds `count` TCP echo listeners on `addr`, all on the same port (the
/// one the system chose, if `addr` asks for port 0): with more than one,
/// each has `SO_REUSEPORT`, and the kernel spreads new connections over
/// them.
///
/// `SO_REUSEPORT` would also let the group join a port that another
/// process's group (a second echo-server, say) already listens on, and
/// share its traffic without a word. So the port is first bound alone,
/// without the option and without listening, which fails if anything
/// holds it; that probe then closes and the group binds the port it found.
fn bind_tcp_group(
    addr: SocketAddr,
    count: usize,
) -> Result<(Vec<TcpListener>, SocketAddr), ServerError> {
    let bind_error = |source| ServerError::Bind { addr, source };
    let probe = bound_socket(addr, false)?;
    if count <= 1 {
        let listener = probe.listen(LISTEN_BACKLOG).map_err(bind_error)?;
        let local_addr = listener.local_addr().map_err(bind_error)?;
        return Ok((vec![listener], local_addr));
    }
    let free_addr = probe.local_addr().map_err(bind_error)?;
    drop(probe);
    let listeners = (0..count)
        .map(|_| {
            bound_socket(free_addr, true)?
                .listen(LISTEN_BACKLOG)
                .map_err(|source| ServerError::Bind {
                    addr: free_addr,
                    source,
                })
        })
        .collect::<Result<_, _>>()?;
    Ok((listeners, free_addr))
}

/// A TCP socket bound to `addr`, with `SO_REUSEPORT` if `reuse_port`.
fn bound_socket(addr: SocketAddr, reuse_port: bool) -> Result<TcpSocket, ServerError> {
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
    if reuse_port {
        socket.set_reuseport(true).map_err(bind_error)?;
    }
    socket.bind(addr).map_err(bind_error)?;
    Ok(socket)
}

/// Binds the admin endpoint's listener.
async fn bind_admin(addr: SocketAddr) -> Result<(TcpListener, SocketAddr), ServerError> {
    let bind_error = |source| ServerError::Bind { addr, source };
    let listener = TcpListener::bind(addr).await.map_err(bind_error)?;
    let local_addr = listener.local_addr().map_err(bind_error)?;
    Ok((listener, local_addr))
}

/// Binds the UDP echo's socket.
async fn bind_udp(addr: SocketAddr) -> Result<(UdpSocket, SocketAddr), ServerError> {
    let bind_error = |source| ServerError::Bind { addr, source };
    let socket = UdpSocket::bind(addr).await.map_err(bind_error)?;
    let local_addr = socket.local_addr().map_err(bind_error)?;
    Ok((socket, local_addr))
}

/// Accepts connections until the task is dropped, each served by its own
/// task, over TLS if `tls` is given. The handshake is not made here but in
/// the connection's task, so that a slow client holds back no other.
async fn accept_loop(listener: &TcpListener, connections: &Connections, tls: Option<&TlsReloader>) {
    let serves = if tls.is_some() {
        "echo over TLS"
    } else {
        "echo"
    };
    let mut acceptor = Acceptor::new(listener, serves);
    loop {
        let (stream, peer) = acceptor.accept().await;
        connections.serve(stream, peer, tls);
    }
}

/// Accepts every connection waiting in the kernel's accept queue, without
/// waiting for more, then closes the listener.
///
/// It asks the socket directly rather than through the runtime, whose idea of
/// whether connections are waiting may lag behind the kernel's.
fn accept_waiting(listener: TcpListener, connections: &Connections, tls: Option<&TlsReloader>) {
    let listener = match listener.into_std() {
        Ok(listener) => listener,
        Err(error) => {
            warn!(%error, "cannot take the connections waiting to be accepted");
            return;
        }
    };
    loop {
        match listener.accept() {
            Ok((stream, peer)) => {
                let stream = stream
                    .set_nonblocking(true)
                    .and_then(|()| TcpStream::from_std(stream));
                match stream {
                    Ok(stream) => connections.serve(stream, peer, tls),
                    Err(error) => {
                        debug!(%peer, %error, "cannot serve a connection accepted at shutdown")
                    }
                }
            }
            Err(error) if error.kind() == io::ErrorKind::WouldBlock => return,
            Err(error) if is_connection_error(&error) => {}
            Err(error) => {
                warn!(%error, "cannot take the connections waiting to be accepted");
                return;
            }
        }
    }
}

/// Serves one accepted connection: its PROXY header first if `proxy` is
/// given, then its TLS handshake if `tls` is; says how it went, for the
/// connection's task to log and count.
///
/// Everything is owned, and nothing is an `async fn` or block that awaits
/// what it was given: such a future keeps its arguments for as long as it
/// lives, beside the serving that took them over, and every idle connection
/// would pay for both.
fn handle(
    stream: TcpStream,
    peer: SocketAddr,
    shared: Arc<Shared>,
    tls: Option<TlsReloader>,
    proxy: Option<Arc<ProxyPolicy>>,
    started: u32,
) -> impl Future<Output = Outcome> + Send + 'static {
    // Echoes are small writes that must leave at once, not wait to be
    // coalesced with data that will never come.
    if let Err(error) = stream.set_nodelay(true) {
        debug!(%error, "cannot set TCP_NODELAY");
    }
    let Some(proxy) = proxy else {
        let serving = serve_connection(stream, peer, None, shared, tls);
        return Either::Left(serving.map(|served| Outcome::Served {
            served,
            client: None,
        }));
    };
    // Boxed: the header's buffer and the prefixed stream are then part of
    // the tasks of proxied connections only.
    Either::Right(Box::pin(async move {
        match proxy.accept(stream, peer).await {
            Ok((stream, header)) => {
                let client = header.addresses.source();
                let served = serve_connection(stream, peer, client, shared, tls).await;
                Outcome::Served { served, client }
            }
            Err(rejection) => {
                let elapsed = shared.elapsed(started);
                warn!(%peer, ?elapsed, "connection closed: {rejection}");
                Outcome::Ended(ConnectionEnd::ProxyHeader(rejection))
            }
        }
    }))
}

/// Serves `stream`, from `peer` for `client` if a PROXY header named one,
/// after its TLS handshake if `tls` is given, and logs its opening.
fn serve_connection<S: EchoStream + Send + 'static>(
    stream: S,
    peer: SocketAddr,
    client: Option<SocketAddr>,
    shared: Arc<Shared>,
    tls: Option<TlsReloader>,
) -> impl Future<Output = Result<ConnectionSummary, HandshakeError>> + Send + 'static {
    match tls {
        None => {
            info!(client = client.map(display), %peer, "connection opened");
            Either::Left(Serving::new(shared, stream).map(Ok))
        }
        // Boxed: the TLS session (some kilobytes) would otherwise be part of
        // every connection's task, plain ones included.
        Some(tls) => Either::Right(Box::pin(serve_tls(stream, peer, client, shared, tls))),
    }
}

/// Makes the TLS handshake on `stream`, logs the connection, and serves it.
async fn serve_tls<S: EchoStream + Send>(
    stream: S,
    peer: SocketAddr,
    client: Option<SocketAddr>,
    shared: Arc<Shared>,
    tls: TlsReloader,
) -> Result<ConnectionSummary, HandshakeError> {
    let stream = tls.handshake(stream).await?;
    let (version, subject) = tls::describe(&stream);
    let client = client.map(display);
    match subject {
        Some(subject) => info!(client, %peer, tls = version, %subject, "connection opened"),
        None => info!(client, %peer, tls = version, "connection opened"),
    }
    Ok(Serving::new(shared, stream).await)
}
