//! Talking to a server under test over blocking TCP, every read and write
//! bounded by a deadline: connecting, exchanging frames and checking their
//! echoes, and the ways a connection ends.
//!
//! ```
//! use std::net::{Shutdown, TcpListener};
//! use echo_testkit::{deadline, wire};
//!
//! // A stand-in server that sends every byte back: a frame echo, to the byte.
//! let listener = TcpListener::bind("127.0.0.1:0")?;
//! let addr = listener.local_addr()?;
//! std::thread::spawn(move || {
//!     let (socket, _) = listener.accept()?;
//!     std::io::copy(&mut &socket, &mut &socket)
//! });
//!
//! let stream = wire::connect(addr, deadline())?;
//! let frames = [b"hello".to_vec(), Vec::new(), wire::pattern(7, 100_000)];
//! wire::echo_all(&stream, &frames, deadline(), |stream| {
//!     Ok(stream.shutdown(Shutdown::Write)?)
//! })?;
//! wire::expect_eof(&stream, deadline())?;
//! # Ok::<(), echo_testkit::Error>(())
//! ```

use std::io::{self, Read, Write};
use std::net::{Shutdown, SocketAddr, TcpListener, TcpStream};
use std::thread;
use std::time::{Duration, Instant};

use echo_proto::frame::DEFAULT_MAX_FRAME_LEN;
use nix::sys::socket::{setsockopt, sockopt};

use crate::error::Error;

/// The time left until `deadline`, for a socket timeout, which cannot be
/// zero: an error once the deadline has passed.
pub fn time_left(deadline: Instant) -> io::Result<Duration> {
    let left = deadline.saturating_duration_since(Instant::now());
    if left.is_zero() {
        Err(io::Error::new(
            io::ErrorKind::TimedOut,
            "the deadline passed",
        ))
    } else {
        Ok(left)
    }
}

/// Connects to `addr` within the deadline.
pub fn connect(addr: SocketAddr, deadline: Instant) -> Result<TcpStream, Error> {
    time_left(deadline)
        .and_then(|left| TcpStream::connect_timeout(&addr, left))
        .map_err(|source| Error::Connect { addr, source })
}

/// A `TcpStream` whose every read and write gives up at the deadline.
///
/// Socket timeouts apply per call, so each call gets the time that is left:
/// that bounds a whole frame of many reads, not only one read.
#[derive(Debug)]
pub struct Deadlined<'a> {
    stream: &'a TcpStream,
    deadline: Instant,
}

impl<'a> Deadlined<'a> {
    /// Wraps `stream`; every read and write gives up at `deadline`.
    pub fn new(stream: &'a TcpStream, deadline: Instant) -> Self {
        Deadlined { stream, deadline }
    }

    /// Reads one frame (of at most the protocol's default maximum), or
    /// `None` at a clean end of the stream.
    pub fn read_frame(&mut self) -> Result<Option<Vec<u8>>, Error> {
        Ok(echo_proto::read_frame(self, DEFAULT_MAX_FRAME_LEN)?)
    }
}

impl Read for Deadlined<'_> {
    fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
        self.stream
            .set_read_timeout(Some(time_left(self.deadline)?))?;
        let mut stream = self.stream;
        stream.read(buf)
    }
}

impl Write for Deadlined<'_> {
    fn write(&mut self, buf: &[u8]) -> io::Result<usize> {
        self.stream
            .set_write_timeout(Some(time_left(self.deadline)?))?;
        let mut stream = self.stream;
        stream.write(buf)
    }

    fn flush(&mut self) -> io::Result<()> {
        let mut stream = self.stream;
        stream.flush()
    }
}

/// The frames' bytes on the wire, back to back.
pub fn encode(frames: &[Vec<u8>]) -> Result<Vec<u8>, Error> {
    let mut wire = Vec::new();
    for frame in frames {
        echo_proto::write_frame(&mut wire, frame)?;
    }
    Ok(wire)
}

/// Sends all `frames` in one burst, calls `after_write`, and checks that
/// each frame comes back identical and in order.
///
/// The burst is written while the echoes are read, so it may be larger than
/// the socket buffers hold.
pub fn echo_all(
    stream: &TcpStream,
    frames: &[Vec<u8>],
    deadline: Instant,
    after_write: impl FnOnce(&TcpStream) -> Result<(), Error> + Send,
) -> Result<(), Error> {
    let wire = encode(frames)?;
    write_while_reading(
        stream,
        || {
            Deadlined::new(stream, deadline).write_all(&wire)?;
            after_write(stream)
        },
        || read_echoes(stream, frames, deadline),
    )
}

/// Runs `write` on a second thread while `read` reads the answers on this
/// one, and returns what `read` returns.
///
/// Two threads, because a burst larger than the socket buffers would
/// otherwise deadlock, the server waiting for its echoes to be read and the
/// client for its burst to be. Both must bound their waits, as
/// [`Deadlined`] does.
pub fn write_while_reading<T>(
    stream: &TcpStream,
    write: impl FnOnce() -> Result<(), Error> + Send,
    read: impl FnOnce() -> Result<T, Error>,
) -> Result<T, Error> {
    thread::scope(|scope| {
        let writer = scope.spawn(write);
        let read = read();
        if read.is_err() {
            // Unblock a writer stuck on a full socket buffer: no one will
            // read what it still has to send.
            let _ = stream.shutdown(Shutdown::Both);
        }
        let written = writer.join().unwrap_or(Err(Error::Panicked("writer")));
        // A read failure explains a write failure (or follows from it, and
        // then the write error says why): the read's comes first.
        let value = read?;
        written?;
        Ok(value)
    })
}

/// Reads one echo per frame of `frames` and compares each with its frame.
pub fn read_echoes(stream: &TcpStream, frames: &[Vec<u8>], deadline: Instant) -> Result<(), Error> {
    let mut reader = Deadlined::new(stream, deadline);
    for (index, sent) in frames.iter().enumerate() {
        let Some(echo) = reader.read_frame()? else {
            return Err(Error::EchoMissing {
                received: index,
                expected: frames.len(),
            });
        };
        if echo != *sent {
            return Err(Error::EchoDiffers {
                number: index + 1,
                count: frames.len(),
                sent: sent.len(),
                got: echo.len(),
                at: first_difference(sent, &echo),
            });
        }
    }
    Ok(())
}

/// Where two byte strings first differ: the first byte that differs, or the
/// end of the shorter one.
pub fn first_difference(a: &[u8], b: &[u8]) -> usize {
    a.iter()
        .zip(b)
        .position(|(x, y)| x != y)
        .unwrap_or(a.len().min(b.len()))
}

/// Checks that the peer closes the stream cleanly, at a frame boundary,
/// with no further frame.
pub fn expect_eof(stream: &TcpStream, deadline: Instant) -> Result<(), Error> {
    match Deadlined::new(stream, deadline).read_frame()? {
        None => Ok(()),
        Some(frame) => Err(Error::NotEnded { len: frame.len() }),
    }
}

/// How the peer closed a connection.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Closed {
    /// A clean end of the stream.
    Eof,
    /// A reset, which is what closing a socket with unread data sends.
    Reset,
}

/// Waits for the peer to close `stream`, and checks that it sends nothing
/// before it does.
pub fn expect_closed_silently(stream: &TcpStream, deadline: Instant) -> Result<Closed, Error> {
    let mut buf = [0; 1024];
    match Deadlined::new(stream, deadline).read(&mut buf) {
        Ok(0) => Ok(Closed::Eof),
        Ok(len) => Err(Error::NotEnded { len }),
        Err(error)
            if matches!(
                error.kind(),
                io::ErrorKind::ConnectionReset | io::ErrorKind::ConnectionAborted
            ) =>
        {
            Ok(Closed::Reset)
        }
        Err(error) => Err(error.into()),
    }
}

/// Closes `stream` with a reset instead of the orderly end of the stream:
/// with `SO_LINGER` on and a timeout of zero, closing a socket sends RST and
/// drops whatever it still had to send.
pub fn reset(stream: TcpStream) -> Result<(), Error> {
    let abort = nix::libc::linger {
        l_onoff: 1,
        l_linger: 0,
    };
    setsockopt(&stream, sockopt::Linger, &abort).map_err(io::Error::from)?;
    drop(stream);
    Ok(())
}

/// A loopback address where nothing listens: a port the system just handed
/// out and took back.
pub fn closed_port() -> Result<SocketAddr, Error> {
    Ok(TcpListener::bind("127.0.0.1:0")?.local_addr()?)
}

/// Checks that connecting to `addr` is refused.
pub fn expect_refused(addr: SocketAddr, deadline: Instant) -> Result<(), Error> {
    let refused = |outcome: String| Error::NotRefused { addr, outcome };
    match connect(addr, deadline) {
        Err(Error::Connect { source, .. }) if source.kind() == io::ErrorKind::ConnectionRefused => {
            Ok(())
        }
        Err(error) => Err(refused(format!("the connection failed otherwise: {error}"))),
        Ok(_) => Err(refused("it was accepted".to_owned())),
    }
}

/// `len` deterministic bytes that start with `seed`'s four big-endian bytes,
/// so that payloads of four bytes or more made from different seeds differ.
///
/// ```
/// use echo_testkit::wire::pattern;
///
/// assert_eq!(pattern(0x0102_0304, 4), [1, 2, 3, 4]);
/// assert_eq!(pattern(7, 4096), pattern(7, 4096));
/// assert_ne!(pattern(7, 4096), pattern(8, 4096));
/// ```
pub fn pattern(seed: u32, len: usize) -> Vec<u8> {
    // xorshift64: cheap, and varied enough that a shifted or repeated chunk
    // in an echo does not compare equal by accident.
    let mut state = u64::from(seed).wrapping_mul(0x9E37_79B9_7F4A_7C15) | 1;
    let noise = std::iter::from_fn(move || {
        state ^= state << 13;
        state ^= state >> 7;
        state ^= state << 17;
        Some(state.to_le_bytes()[0])
    });
    seed.to_be_bytes()
        .into_iter()
        .chain(noise)
        .take(len)
        .collect()
}

/// An HTTP response, read to its end.
#[derive(Debug)]
pub struct HttpResponse {
    /// The status code, such as `200`.
    pub status: String,
    /// The body.
    pub body: String,
}

/// Sends `GET PATH` to `addr` with `Connection: close` and reads the
/// response to the end of the stream. It panics on any failure: it is for
/// tests, which want the failure's text.
///
/// ```no_run
/// let addr = "127.0.0.1:9898".parse()?;
/// let response = echo_testkit::wire::http_get(addr, "/readyz", echo_testkit::deadline());
/// assert_eq!(response.status, "200");
/// # Ok::<(), std::net::AddrParseError>(())
/// ```
pub fn http_get(addr: SocketAddr, path: &str, deadline: Instant) -> HttpResponse {
    let stream = connect(addr, deadline).unwrap();
    let mut conn = Deadlined::new(&stream, deadline);
    write!(
        conn,
        "GET {path} HTTP/1.1\r\nHost: {addr}\r\nConnection: close\r\n\r\n"
    )
    .unwrap();
    let mut response = String::new();
    conn.read_to_string(&mut response).unwrap();
    let (head, body) = response
        .split_once("\r\n\r\n")
        .unwrap_or_else(|| panic!("no end of head: {response:?}"));
    let status = head.split(' ').nth(1).unwrap_or_default().to_owned();
    HttpResponse {
        status,
        body: body.to_owned(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::deadline;

    /// A one-connection server that sends back every byte it gets, after
    /// passing it through `corrupt`; a byte-for-byte echo is a frame echo.
    fn byte_echo(corrupt: fn(&mut [u8])) -> SocketAddr {
        let listener = TcpListener::bind("127.0.0.1:0").unwrap();
        let addr = listener.local_addr().unwrap();
        thread::spawn(move || {
            let (mut socket, _) = listener.accept().unwrap();
            let mut buf = [0; 8192];
            loop {
                match socket.read(&mut buf) {
                    Ok(0) | Err(_) => break,
                    Ok(n) => {
                        corrupt(&mut buf[..n]);
                        if socket.write_all(&buf[..n]).is_err() {
                            break;
                        }
                    }
                }
            }
        });
        addr
    }

    #[test]
    fn echo_all_accepts_an_exact_echo_of_a_burst_larger_than_the_buffers() {
        let stream = connect(byte_echo(|_| {}), deadline()).unwrap();
        let frames: Vec<Vec<u8>> = (0..200).map(|i| pattern(i, 4096)).collect();
        echo_all(&stream, &frames, deadline(), |stream| {
            Ok(stream.shutdown(Shutdown::Write)?)
        })
        .unwrap();
        expect_eof(&stream, deadline()).unwrap();
    }

    #[test]
    fn echo_all_reports_where_an_echo_differs() {
        let stream = connect(
            byte_echo(|bytes| {
                if let Some(last) = bytes.last_mut() {
                    *last ^= 0xff;
                }
            }),
            deadline(),
        )
        .unwrap();
        let error = echo_all(&stream, &[b"hello".to_vec()], deadline(), |_| Ok(())).unwrap_err();
        assert_eq!(
            error.to_string(),
            "echo 1 of 1 differs from the frame sent: sent 5 bytes, got 5 bytes, \
             first difference at byte 4"
        );
    }

    #[test]
    fn a_connection_that_ends_early_is_missing_echoes() {
        let listener = TcpListener::bind("127.0.0.1:0").unwrap();
        let stream = connect(listener.local_addr().unwrap(), deadline()).unwrap();
        drop(listener.accept().unwrap());
        let error = read_echoes(&stream, &[b"a".to_vec(), b"b".to_vec()], deadline()).unwrap_err();
        assert_eq!(
            error.to_string(),
            "the connection ended after 0 of 2 echoes"
        );
        assert!(matches!(
            expect_closed_silently(&stream, deadline()),
            Ok(Closed::Eof | Closed::Reset)
        ));
    }

    #[test]
    fn reads_give_up_at_the_deadline() {
        // A listener that accepts (through the backlog) but never answers.
        let listener = TcpListener::bind("127.0.0.1:0").unwrap();
        let soon = Instant::now() + Duration::from_millis(200);
        let stream = connect(listener.local_addr().unwrap(), soon).unwrap();
        let error = Deadlined::new(&stream, soon).read_frame().unwrap_err();
        let kind = match &error {
            Error::Frame(echo_proto::FrameError::Io(io)) => Some(io.kind()),
            _ => None,
        };
        assert!(
            matches!(
                kind,
                Some(io::ErrorKind::WouldBlock | io::ErrorKind::TimedOut)
            ),
            "{error}"
        );
        assert!(time_left(soon).is_err());
    }

    #[test]
    fn refused_connections_are_told_from_accepted_ones() {
        expect_refused(closed_port().unwrap(), deadline()).unwrap();
        let listener = TcpListener::bind("127.0.0.1:0").unwrap();
        let error = expect_refused(listener.local_addr().unwrap(), deadline()).unwrap_err();
        assert!(
            error.to_string().ends_with("but it was accepted"),
            "{error}"
        );
    }

    #[test]
    fn a_reset_reaches_the_peer_as_a_reset() {
        let listener = TcpListener::bind("127.0.0.1:0").unwrap();
        let stream = connect(listener.local_addr().unwrap(), deadline()).unwrap();
        let (accepted, _) = listener.accept().unwrap();
        reset(stream).unwrap();
        assert_eq!(
            expect_closed_silently(&accepted, deadline()).unwrap(),
            Closed::Reset
        );
    }

    #[test]
    fn patterns_are_deterministic_and_distinct() {
        assert_eq!(pattern(1, 3), [0, 0, 0]);
        assert_eq!(pattern(1, 0), Vec::<u8>::new());
        assert_eq!(pattern(3, 4096).len(), 4096);
        assert_ne!(pattern(7, 100)[4..], pattern(8, 100)[4..]);
        assert_eq!(first_difference(b"abcd", b"abXd"), 2);
        assert_eq!(first_difference(b"abcd", b"ab"), 2);
        assert_eq!(first_difference(b"same", b"same"), 4);
    }
}
