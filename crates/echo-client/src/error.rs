//! [`ClientError`]: everything that can go wrong talking to an echo server.

use std::io;
use std::time::Duration;

use echo_proto::FrameError;

/// Why a [`Client`](crate::Client) call failed.
///
/// Every variant names the address the client was asked to reach, exactly as
/// it was given to [`Client::connect`](crate::Client::connect), so that a
/// message makes sense on its own.
///
/// The message of an error describes that error alone; the lower-level cause,
/// if any, is its [`source`](std::error::Error::source). To print one line
/// with everything, walk the chain, for example with `anyhow`'s `{:#}`:
///
/// ```
/// use std::io;
/// use echo_client::ClientError;
///
/// let error = ClientError::Connect {
///     addr: "127.0.0.1:1".to_owned(),
///     source: io::Error::new(io::ErrorKind::ConnectionRefused, "Connection refused"),
/// };
/// assert_eq!(error.to_string(), "cannot connect to 127.0.0.1:1");
/// assert_eq!(
///     format!("{:#}", anyhow::Error::new(error)),
///     "cannot connect to 127.0.0.1:1: Connection refused",
/// );
/// ```
///
/// After any error the connection may be out of step with the server (an echo
/// may still be on its way), so drop the client and connect again.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum ClientError {
    /// The address could not be turned into a socket address: it is not of
    /// the form `HOST:PORT`, or the host name did not resolve.
    #[error("cannot resolve {addr}")]
    Resolve {
        /// The address as given.
        addr: String,
        /// Why the lookup failed.
        source: io::Error,
    },

    /// Every address the name resolved to refused or failed the connection.
    #[error("cannot connect to {addr}")]
    Connect {
        /// The address as given.
        addr: String,
        /// Why the last connection attempt failed.
        source: io::Error,
    },

    /// Resolving the address and connecting took longer than the timeout.
    #[error("cannot connect to {addr} within {waited:?}")]
    ConnectTimeout {
        /// The address as given.
        addr: String,
        /// The timeout that expired.
        waited: Duration,
    },

    /// A message was not echoed in full within the timeout.
    #[error("no echo from {addr} within {waited:?}")]
    Timeout {
        /// The address as given.
        addr: String,
        /// The timeout that expired.
        waited: Duration,
    },

    /// The server closed (or reset) the connection before the echo arrived in
    /// full, for example because the message was larger than the server's
    /// maximum frame length.
    #[error("{addr} closed the connection before echoing a {sent_len}-byte message")]
    Closed {
        /// The address as given.
        addr: String,
        /// The length of the message whose echo never arrived.
        sent_len: usize,
    },

    /// The echo differs from the message that was sent.
    #[error(
        "the echo from {addr} differs from the message sent: {sent_len} bytes sent, \
         {received_len} received, first difference at byte {first_difference}"
    )]
    Mismatch {
        /// The address as given.
        addr: String,
        /// The length of the message sent.
        sent_len: usize,
        /// The length of the echo received.
        received_len: usize,
        /// The offset of the first byte that differs; when one is a prefix of
        /// the other, the length of the shorter.
        first_difference: usize,
    },

    /// A frame broke the protocol's rules: a message longer than the maximum
    /// frame length (8 MiB) was offered, or the server announced an echo
    /// longer than that.
    #[error("framing error on the connection to {addr}")]
    Frame {
        /// The address as given.
        addr: String,
        /// What was wrong with the frame.
        source: FrameError,
    },

    /// Nothing answers UDP at the address: a datagram sent there was refused
    /// (the host answered that no socket listens on that port).
    #[error("nothing answers UDP at {addr}")]
    Unreachable {
        /// The address as given.
        addr: String,
        /// The refusal, as the operating system reported it.
        source: io::Error,
    },

    /// A setting of a measurement is out of range, for example a bench with
    /// no connections, or UDP messages too short to carry their sequence
    /// number.
    #[error("invalid setting: {reason}")]
    InvalidSetting {
        /// What is wrong, naming the setting.
        reason: String,
    },

    /// The server sent more than echoes of what it was sent: bytes, frames
    /// or datagrams that answer no message.
    #[error("{addr} sent data that echoes no message sent")]
    Unexpected {
        /// The address as given.
        addr: String,
    },

    /// A greeting was expected (see [`echo_proto::greeting`]) and none came:
    /// not within the timeout, or the connection ended first.
    #[error("no greeting from {addr}: {why}")]
    NoGreeting {
        /// The address as given.
        addr: String,
        /// What happened instead, in words.
        why: String,
    },

    /// What came first on the connection is not a greeting: not a JSON
    /// object with the greeting's fields.
    #[error("{addr} sent something other than a greeting")]
    BadGreeting {
        /// The address as given.
        addr: String,
        /// What was wrong with it.
        source: echo_proto::greeting::GreetingError,
    },

    /// The TLS settings cannot be used: a file that is missing or holds no
    /// certificate or key, a key that does not fit its certificate, a server
    /// name that is neither a DNS name nor an IP address.
    #[error("cannot set up TLS: {reason}")]
    TlsSetup {
        /// What is wrong, naming the file or the setting.
        reason: String,
    },

    /// The TLS handshake failed: the server's certificate did not verify
    /// (an unknown issuer, another name, expired), the server wanted a
    /// client certificate, or it does not speak TLS.
    #[error("TLS handshake with {addr} failed")]
    TlsHandshake {
        /// The address as given.
        addr: String,
        /// Why, as rustls said it.
        source: io::Error,
    },

    /// Reading or writing the socket failed for a reason other than the
    /// server closing it.
    #[error("I/O error on the connection to {addr}")]
    Io {
        /// The address as given.
        addr: String,
        /// The underlying error.
        source: io::Error,
    },
}

/// The errors that more than one part of the client reports, built here so
/// that each is worded and classified once.
impl ClientError {
    /// The error for a connection that ended before a `sent_len`-byte
    /// message was echoed.
    pub(crate) fn closed(addr: &str, sent_len: usize) -> ClientError {
        ClientError::Closed {
            addr: addr.to_owned(),
            sent_len,
        }
    }

    /// Turns a failure while a `sent_len`-byte message was being exchanged
    /// into the error that explains it to the user.
    ///
    /// Whichever way a connection ended early (a clean end of stream between
    /// echoes, an end inside an echo, a reset because the server closed with
    /// our bytes unread, a broken pipe while writing), what the user needs to
    /// know is the same: the server closed the connection before echoing the
    /// message.
    pub(crate) fn exchange(addr: &str, sent_len: usize, error: FrameError) -> ClientError {
        match error {
            FrameError::Truncated { .. } => ClientError::closed(addr, sent_len),
            FrameError::Io(source) => match source.kind() {
                io::ErrorKind::ConnectionReset
                | io::ErrorKind::ConnectionAborted
                | io::ErrorKind::BrokenPipe
                | io::ErrorKind::UnexpectedEof => ClientError::closed(addr, sent_len),
                // Over UDP, the ICMP answer to a datagram sent to a closed port.
                io::ErrorKind::ConnectionRefused => ClientError::Unreachable {
                    addr: addr.to_owned(),
                    source,
                },
                _ => ClientError::Io {
                    addr: addr.to_owned(),
                    source,
                },
            },
            source => ClientError::Frame {
                addr: addr.to_owned(),
                source,
            },
        }
    }

    /// The error for an echo that is not the message `sent`.
    pub(crate) fn mismatch(addr: &str, sent: &[u8], echo: &[u8]) -> ClientError {
        let first_difference = sent
            .iter()
            .zip(echo)
            .position(|(sent, received)| sent != received)
            .unwrap_or(sent.len().min(echo.len()));
        ClientError::Mismatch {
            addr: addr.to_owned(),
            sent_len: sent.len(),
            received_len: echo.len(),
            first_difference,
        }
    }

    /// The error for an echo that did not come within `waited`.
    pub(crate) fn timeout(addr: &str, waited: Duration) -> ClientError {
        ClientError::Timeout {
            addr: addr.to_owned(),
            waited,
        }
    }

    /// The error for resolving and connecting that took longer than
    /// `waited`.
    pub(crate) fn connect_timeout(addr: &str, waited: Duration) -> ClientError {
        ClientError::ConnectTimeout {
            addr: addr.to_owned(),
            waited,
        }
    }
}

/// An error and its chain of causes on one line, separated by `: `, as the
/// binary prints errors.
pub(crate) fn describe(error: &dyn std::error::Error) -> String {
    let mut text = error.to_string();
    let mut source = error.source();
    while let Some(cause) = source {
        text.push_str(": ");
        text.push_str(&cause.to_string());
        source = cause.source();
    }
    text
}
