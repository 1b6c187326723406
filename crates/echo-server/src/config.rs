//! [`Config`]: everything the server can be told.

use std::net::SocketAddr;
use std::time::Duration;

use echo_proto::DEFAULT_ADDR;
use echo_proto::frame::DEFAULT_MAX_FRAME_LEN;

use crate::Delay;
use crate::Mode;
use crate::relay::DEFAULT_RELAY_BUFFER_LEN;
use crate::tls::TlsConfig;

/// How long open connections get to finish after a shutdown request, by default.
pub const DEFAULT_DRAIN_TIMEOUT: Duration = Duration::from_secs(5);

/// How long a connection may make no progress before it is closed, by default.
pub const DEFAULT_IDLE_TIMEOUT: Duration = Duration::from_secs(300);

/// How many connections are served at once, by default.
pub const DEFAULT_MAX_CONNECTIONS: usize = 10_000;

/// The server's settings.
///
/// ```
/// use echo_server::Config;
///
/// let config = Config {
///     listen: "127.0.0.1:0".parse()?,
///     ..Config::default()
/// };
/// assert_eq!(config.max_frame_len, 8 * 1024 * 1024);
/// # Ok::<(), std::net::AddrParseError>(())
/// ```
#[derive(Debug, Clone)]
pub struct Config {
    /// The address to listen on. Port 0 asks the system for a free port.
    pub listen: SocketAddr,
    /// Framed echo or raw RFC 862 echo.
    pub mode: Mode,
    /// Where to serve UDP echo too, if anywhere.
    pub udp: Option<SocketAddr>,
    /// The longest frame payload accepted; a header announcing more closes
    /// the connection.
    pub max_frame_len: usize,
    /// How long open connections get to finish echoing after a shutdown
    /// request before they are closed regardless.
    pub drain_timeout: Duration,
    /// The size of each connection's relay buffer (at least
    /// [`MIN_RELAY_BUFFER_LEN`](crate::MIN_RELAY_BUFFER_LEN), at most
    /// [`MAX_RELAY_BUFFER_LEN`](crate::MAX_RELAY_BUFFER_LEN)), held only
    /// while the connection has data in flight.
    pub relay_buffer_len: usize,
    /// How many connections are served at once; beyond it, new connections
    /// are closed at once.
    pub max_connections: usize,
    /// How long a connection may go without reading or writing a byte before
    /// it is closed.
    pub idle_timeout: Duration,
    // The greeting and the delay.
    /// Whether each TCP connection opens with a greeting (see
    /// [`echo_proto::greeting`]): one frame in framed mode, one line in raw
    /// mode.
    pub greeting: bool,
    /// How long each echo is held back, if at all.
    pub delay: Option<Delay>,
    // The admin endpoint, readiness and the instance name.
    /// Where to serve the admin endpoint (`/metrics`, `/healthz`, `/readyz`,
    /// `/info`), if anywhere.
    pub admin: Option<SocketAddr>,
    /// How long, once a shutdown is requested, the server goes on accepting
    /// and echoing with `/readyz` answering 503, so that load balancers take
    /// it out of rotation before its listener closes. Then the drain starts.
    pub drain_delay: Duration,
    /// The name of this server in `/info` and in the `echo_build_info`
    /// gauge: which server answered. By default, the host name.
    pub instance: String,
    // TLS.
    /// Where to serve TLS too, if anywhere, and with which files.
    pub tls: Option<TlsConfig>,
    // Workers.
    /// How many workers accept and serve TCP connections (at least 1). With
    /// one, every task runs on the runtime [`Server::run`](crate::Server::run)
    /// is awaited on. With more, the server binds a listener per worker on
    /// the same port (`SO_REUSEPORT`: the kernel spreads new connections over
    /// them), and `run` starts a thread per worker beyond the first, each
    /// with a single-threaded runtime of its own that serves the connections
    /// its listener accepts; the caller's runtime is the first worker, and
    /// keeps UDP and the admin endpoint. The connection limit, the metrics
    /// and the drain are the whole server's.
    pub workers: usize,
    // The PROXY protocol.
    /// Whether every TCP connection, plain or TLS, starts with a PROXY
    /// protocol header (v1 or v2, before the TLS handshake), which names the
    /// client a load balancer relays. A connection without a valid header
    /// is closed unserved; see [`ProxyHeaderRejection`](crate::ProxyHeaderRejection).
    pub proxy_protocol: bool,
    /// The peers a PROXY header is taken from: a connection from anywhere
    /// else is closed unserved. By default loopback only
    /// ([`default_proxy_from`](crate::default_proxy_from)).
    pub proxy_from: Vec<ipnet::IpNet>,
}

impl Default for Config {
    fn default() -> Self {
        Self {
            listen: DEFAULT_ADDR,
            mode: Mode::Framed,
            udp: None,
            max_frame_len: DEFAULT_MAX_FRAME_LEN,
            drain_timeout: DEFAULT_DRAIN_TIMEOUT,
            relay_buffer_len: DEFAULT_RELAY_BUFFER_LEN,
            max_connections: DEFAULT_MAX_CONNECTIONS,
            idle_timeout: DEFAULT_IDLE_TIMEOUT,
            // The greeting and the delay.
            greeting: false,
            delay: None,
            // The admin endpoint, readiness and the instance name.
            admin: None,
            drain_delay: Duration::ZERO,
            instance: default_instance(),
            // TLS.
            tls: None,
            // Workers.
            workers: 1,
            // The PROXY protocol.
            proxy_protocol: false,
            proxy_from: crate::default_proxy_from(),
        }
    }
}

/// The default instance name: the host name, or `echo-server` if the host
/// has none that is text.
///
/// ```
/// assert!(!echo_server::default_instance().is_empty());
/// ```
pub fn default_instance() -> String {
    gethostname::gethostname()
        .into_string()
        .ok()
        .filter(|name| !name.is_empty())
        .unwrap_or_else(|| "echo-server".to_owned())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_default_address_serves_this_machine_only() {
        assert!(Config::default().listen.ip().is_loopback());
    }

    #[test]
    fn the_default_instance_is_the_host_name() {
        assert_eq!(Config::default().instance, default_instance());
    }
}
