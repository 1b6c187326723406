//! [`SharedTls`]: a link's TLS stream, shared by its sending and receiving
//! halves.
//!
//! `tokio::io::split` would share it too, but its halves only poll: the
//! sending half could not reach rustls between polls. This one can, so that
//! it hands a message to rustls as the parts it is made of (a frame header,
//! an identity, a body borrowed from the bench's pattern), which rustls
//! copies once, into the records it encrypts, instead of the message being
//! built in the send queue first and copied from there.

use std::io;
use std::pin::Pin;
use std::sync::{Arc, Mutex, MutexGuard, PoisonError};
use std::task::{Context, Poll};

use tokio::io::{AsyncRead, AsyncWrite, ReadBuf};
use tokio::net::TcpStream;
use tokio_rustls::client::TlsStream;

/// The largest amount of TLS records that rustls holds unsent for a
/// connection, past which it takes no more plaintext until they are written
/// out: room for a batch of the bench's (64 KiB) and its records' overhead,
/// so that a batch handed over whole is taken whole. (rustls's default,
/// 64 KiB, would leave the last few bytes of a 64 KiB message to a record of
/// their own.)
const SEND_BUFFER_LIMIT: usize = 128 * 1024;

/// A TLS stream behind a lock that each poll, and each write of plaintext,
/// takes for its own duration only: the two halves never wait for each
/// other across an `await`.
#[derive(Debug, Clone)]
pub(crate) struct SharedTls(Arc<Mutex<TlsStream<TcpStream>>>);

impl SharedTls {
    /// Shares `stream`, its handshake made.
    pub(crate) fn new(mut stream: TlsStream<TcpStream>) -> Self {
        stream.get_mut().1.set_buffer_limit(Some(SEND_BUFFER_LIMIT));
        Self(Arc::new(Mutex::new(stream)))
    }

    /// Hands `parts` to rustls, one after the other, as far as it takes
    /// them now (it encrypts them into records, to go out at the next
    /// flush); returns how many bytes it took. Nothing is written to the
    /// socket here.
    pub(crate) fn write_plaintext(&self, parts: &[io::IoSlice<'_>]) -> io::Result<usize> {
        use std::io::Write;
        self.lock().get_mut().1.writer().write_vectored(parts)
    }

    fn lock(&self) -> MutexGuard<'_, TlsStream<TcpStream>> {
        // A panic while the lock was held leaves the stream as it was
        // between two calls into it, which the next one can use.
        self.0.lock().unwrap_or_else(PoisonError::into_inner)
    }
}

impl AsyncRead for SharedTls {
    fn poll_read(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &mut ReadBuf<'_>,
    ) -> Poll<io::Result<()>> {
        Pin::new(&mut *self.lock()).poll_read(cx, buf)
    }
}

impl AsyncWrite for SharedTls {
    fn poll_write(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &[u8],
    ) -> Poll<io::Result<usize>> {
        Pin::new(&mut *self.lock()).poll_write(cx, buf)
    }

    fn poll_write_vectored(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        bufs: &[io::IoSlice<'_>],
    ) -> Poll<io::Result<usize>> {
        Pin::new(&mut *self.lock()).poll_write_vectored(cx, bufs)
    }

    fn is_write_vectored(&self) -> bool {
        self.lock().is_write_vectored()
    }

    fn poll_flush(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        Pin::new(&mut *self.lock()).poll_flush(cx)
    }

    fn poll_shutdown(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        Pin::new(&mut *self.lock()).poll_shutdown(cx)
    }
}
