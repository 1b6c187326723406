//! [`EchoStream`]: the byte streams the echo can be served on.

use std::io;
use std::task::{Context, Poll};

use tokio::io::{AsyncRead, AsyncWrite};
use tokio::net::TcpStream;

/// A byte stream the echo can be served on.
///
/// Anything that reads and writes bytes qualifies. A stream that can also say
/// when it has data without being read, as a TCP stream can, lets an idle
/// connection give its relay buffer back while it waits, which is what keeps
/// thousands of idle connections cheap.
pub trait EchoStream: AsyncRead + AsyncWrite + Unpin {
    /// Polls until a read would find data, end of stream or an error, without
    /// reading. The default answers at once, so the connection keeps its
    /// buffer while it waits.
    fn poll_read_ready(&mut self, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        let _ = cx;
        Poll::Ready(Ok(()))
    }
}

impl EchoStream for TcpStream {
    fn poll_read_ready(&mut self, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        TcpStream::poll_read_ready(self, cx)
    }
}

impl EchoStream for tokio::io::DuplexStream {}
