//! [`ConnectionEnd`]: why a connection ended, and [`ConnectionSummary`]: what it carried.
//!
//! A leaf of its own, so that both the connection loop, which decides how a
//! connection ends, and the metrics, which count the ends by reason, can name it
//! without importing each other.

use std::fmt;
use std::io;
use std::time::Duration;

use echo_proto::FrameError;

use crate::handshake_error::HandshakeError;
use crate::proxy_protocol::ProxyHeaderRejection;

/// How a connection ended, and what it carried.
#[derive(Debug)]
pub struct ConnectionSummary {
    /// Frames received and echoed (0 in raw mode).
    pub frames: u64,
    /// Bytes echoed, headers included.
    pub bytes: u64,
    /// Why the connection ended.
    pub end: ConnectionEnd,
}

/// Why a connection ended.
#[derive(Debug)]
#[non_exhaustive]
pub enum ConnectionEnd {
    /// The client closed its side and every frame it sent was echoed.
    ClientClosed,
    /// The server is shutting down; every frame received was echoed.
    Drained,
    /// Nothing was read or written for the idle timeout.
    IdleTimeout(Duration),
    /// The client broke the protocol (an oversize or truncated frame).
    ProtocolError(FrameError),
    /// The connection failed: reset by the client, or another I/O error.
    Io(io::Error),
    /// The TLS handshake did not complete: nothing was echoed.
    TlsHandshake(HandshakeError),
    /// With `--proxy-protocol`, the connection's PROXY header was refused:
    /// nothing was echoed.
    ProxyHeader(ProxyHeaderRejection),
}

impl fmt::Display for ConnectionEnd {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            ConnectionEnd::ClientClosed => f.write_str("client closed the connection"),
            ConnectionEnd::Drained => f.write_str("closed for shutdown"),
            ConnectionEnd::IdleTimeout(after) => write!(f, "idle for {after:?}"),
            ConnectionEnd::ProtocolError(error) => write!(f, "protocol error: {error}"),
            ConnectionEnd::Io(error) => write!(f, "I/O error: {error}"),
            ConnectionEnd::TlsHandshake(error) => error.fmt(f),
            ConnectionEnd::ProxyHeader(rejection) => rejection.fmt(f),
        }
    }
}
