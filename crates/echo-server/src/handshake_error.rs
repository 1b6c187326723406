//! [`HandshakeError`]: why a TLS handshake did not complete.
//!
//! A leaf of its own, so that the metrics, which count failed handshakes by
//! reason, and the TLS module, which counts its reloads into the metrics, do
//! not import each other.

use std::io;
use std::time::Duration;

/// Why a TLS handshake did not complete.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum HandshakeError {
    /// The client did not complete it within the handshake timeout.
    #[error("TLS handshake not complete after {0:?}")]
    Timeout(Duration),
    /// It failed: the client went away, sent something that is not TLS, or
    /// the two sides could not agree.
    #[error("TLS handshake failed: {0}")]
    Failed(io::Error),
}

impl HandshakeError {
    /// The `reason` label of `echo_tls_handshake_failures_total`.
    pub(crate) fn reason(&self) -> &'static str {
        match self {
            HandshakeError::Timeout(_) => "timeout",
            HandshakeError::Failed(_) => "error",
        }
    }

    /// Every reason, for the series that exist from the start.
    pub(crate) const REASONS: [&'static str; 2] = ["timeout", "error"];
}
