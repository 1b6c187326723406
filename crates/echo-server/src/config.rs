//! [`Config`]: everything the server can be told.

use std::fmt;
use std::net::SocketAddr;
use std::time::Duration;

use echo_proto::DEFAULT_ADDR;
use echo_proto::frame::DEFAULT_MAX_FRAME_LEN;

use crate::relay::DEFAULT_RELAY_BUFFER_LEN;
use crate::tls::TlsConfig;

/// How long open connections get to finish after a shutdown request, by default.
pub const DEFAULT_DRAIN_TIMEOUT: Duration = Duration::from_secs(5);

/// How long a connection may make no progress before it is closed, by default.
pub const DEFAULT_IDLE_TIMEOUT: Duration = Duration::from_secs(300);

/// How many connections are served at once, by default.
pub const DEFAULT_MAX_CONNECTIONS: usize = 10_000;

/// What the server does with the bytes of a TCP connection.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, clap::ValueEnum)]
pub enum Mode {
    /// Length-prefixed frames, echoed whole: the echo protocol.
    #[default]
    Framed,
    /// RFC 862: every byte is sent back as it arrives, with no framing.
    Raw,
}

impl fmt::Display for Mode {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            Mode::Framed => "framed",
            Mode::Raw => "raw",
        })
    }
}

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
    /// Where to serve Prometheus metrics at `/metrics`, if anywhere.
    pub metrics: Option<SocketAddr>,
    /// The longest frame payload accepted; a header announcing more closes
    /// the connection.
    pub max_frame_len: usize,
    /// How long open connections get to finish echoing after a shutdown
    /// request before they are closed regardless.
    pub drain_timeout: Duration,
    /// The size of each connection's relay buffer (at least
    /// [`MIN_RELAY_BUFFER_LEN`](crate::MIN_RELAY_BUFFER_LEN)), held only while
    /// the connection has data in flight.
    pub relay_buffer_len: usize,
    /// How many connections are served at once; beyond it, new connections
    /// are closed at once.
    pub max_connections: usize,
    /// How long a connection may go without reading or writing a byte before
    /// it is closed.
    pub idle_timeout: Duration,
    // TLS (issue #13).
    /// Where to serve TLS too, if anywhere, and with which files.
    pub tls: Option<TlsConfig>,
}

impl Default for Config {
    fn default() -> Self {
        Self {
            listen: DEFAULT_ADDR,
            mode: Mode::Framed,
            udp: None,
            metrics: None,
            max_frame_len: DEFAULT_MAX_FRAME_LEN,
            drain_timeout: DEFAULT_DRAIN_TIMEOUT,
            relay_buffer_len: DEFAULT_RELAY_BUFFER_LEN,
            max_connections: DEFAULT_MAX_CONNECTIONS,
            idle_timeout: DEFAULT_IDLE_TIMEOUT,
            // TLS (issue #13).
            tls: None,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_default_address_serves_this_machine_only() {
        assert!(Config::default().listen.ip().is_loopback());
    }
}
