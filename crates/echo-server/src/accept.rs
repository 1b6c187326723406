//! [`Acceptor`]: accepting connections without stopping or spinning on errors.

use std::io;
use std::net::SocketAddr;
use std::time::Duration;

use tokio::net::{TcpListener, TcpStream};
use tracing::{debug, error};

/// The first pause after an accept error that is not about one connection
/// (such as running out of file descriptors); it doubles up to the maximum.
const BACKOFF_START: Duration = Duration::from_millis(10);
const BACKOFF_MAX: Duration = Duration::from_secs(1);

/// Accepts connections from a listener, riding out errors.
#[derive(Debug)]
pub(crate) struct Acceptor<'a> {
    listener: &'a TcpListener,
    /// What the listener serves, for the logs.
    serves: &'static str,
    backoff: Duration,
}

impl<'a> Acceptor<'a> {
    pub(crate) fn new(listener: &'a TcpListener, serves: &'static str) -> Self {
        Self {
            listener,
            serves,
            backoff: BACKOFF_START,
        }
    }

    /// The next connection. Errors about a single connection are skipped;
    /// errors about the server's resources are logged and retried after a
    /// pause that grows, so that running out of file descriptors slows the
    /// server down instead of stopping it or making it spin.
    ///
    /// Dropping the future at any point loses no connection.
    pub(crate) async fn accept(&mut self) -> (TcpStream, SocketAddr) {
        loop {
            match self.listener.accept().await {
                Ok(accepted) => {
                    self.backoff = BACKOFF_START;
                    return accepted;
                }
                Err(error) if is_connection_error(&error) => {
                    debug!(%error, serves = self.serves, "a connection failed before it was accepted");
                }
                Err(error) => {
                    error!(%error, serves = self.serves, retry_in = ?self.backoff, "cannot accept connections");
                    tokio::time::sleep(self.backoff).await;
                    self.backoff = (self.backoff * 2).min(BACKOFF_MAX);
                }
            }
        }
    }
}

/// Whether an error concerns one connection (the peer went away) rather than
/// the server.
pub(crate) fn is_connection_error(error: &io::Error) -> bool {
    matches!(
        error.kind(),
        io::ErrorKind::ConnectionRefused
            | io::ErrorKind::ConnectionAborted
            | io::ErrorKind::ConnectionReset
            | io::ErrorKind::BrokenPipe
            | io::ErrorKind::UnexpectedEof
    )
}
