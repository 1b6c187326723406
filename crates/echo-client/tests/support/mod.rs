//! Servers for the tests: the real echo server in-process, and small fakes
//! that misbehave in the ways the client must report.

// Each test crate includes this module and uses only a part of it.
#![allow(dead_code)]

use std::net::SocketAddr;
use std::time::Duration;

use bytes::{Bytes, BytesMut};
use echo_proto::FrameCodec;
use echo_server::{Config, Mode, Server};
use futures_util::{SinkExt, StreamExt};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::{TcpListener, TcpStream, UdpSocket};
use tokio_util::codec::Framed;

/// The bound on every wait in the tests. Generous, because a loaded machine
/// can be slow, but finite, so that a bug fails a test instead of hanging it.
pub(crate) const DEADLINE: Duration = Duration::from_secs(30);

/// Starts the real echo server on a free loopback port, serving until the
/// test's runtime ends.
pub(crate) async fn echo_server() -> SocketAddr {
    echo_server_with_max_frame(Config::default().max_frame_len).await
}

/// Starts the real echo server with a small maximum frame length, to test
/// what happens to a longer message.
pub(crate) async fn echo_server_with_max_frame(max_frame_len: usize) -> SocketAddr {
    let config = Config {
        listen: SocketAddr::from(([127, 0, 0, 1], 0)),
        max_frame_len,
        ..Config::default()
    };
    let server = Server::bind(config).await.expect("the echo server binds");
    let addr = server.local_addr();
    tokio::spawn(server.run(std::future::pending()));
    addr
}

/// Starts the real echo server in `mode`, expecting a PROXY protocol header
/// (from loopback) on every connection.
pub(crate) async fn proxied_echo_server(mode: Mode) -> SocketAddr {
    let config = Config {
        listen: SocketAddr::from(([127, 0, 0, 1], 0)),
        mode,
        proxy_protocol: true,
        ..Config::default()
    };
    let server = Server::bind(config).await.expect("the echo server binds");
    let addr = server.local_addr();
    tokio::spawn(server.run(std::future::pending()));
    addr
}

/// The real echo server's addresses, in one of its modes.
#[derive(Debug, Clone, Copy)]
pub(crate) struct Servers {
    /// Framed or raw TCP, as asked.
    pub(crate) tcp: SocketAddr,
    /// UDP echo.
    pub(crate) udp: SocketAddr,
}

/// Starts the real echo server with TCP in `mode` and UDP beside it, on free
/// loopback ports, serving until the test's runtime ends.
pub(crate) async fn echo_servers(mode: Mode) -> Servers {
    let loopback = SocketAddr::from(([127, 0, 0, 1], 0));
    let config = Config {
        listen: loopback,
        mode,
        udp: Some(loopback),
        ..Config::default()
    };
    let server = Server::bind(config).await.expect("the echo server binds");
    let servers = Servers {
        tcp: server.local_addr(),
        udp: server.udp_addr().expect("UDP was asked for"),
    };
    tokio::spawn(server.run(std::future::pending()));
    servers
}

/// The ways a fake server misbehaves.
#[derive(Debug, Clone, Copy)]
pub(crate) enum Fake {
    /// Echoes frames faithfully.
    Echo,
    /// Echoes each frame with its first byte changed (an empty frame gets a
    /// byte added).
    Corrupt,
    /// Reads one frame, then closes the connection without answering.
    CloseAfterReading,
    /// Reads everything and never answers.
    Silent,
    /// Echoes frames faithfully, except for one byte: the last of the
    /// payload of the frame at [`CORRUPTED_FRAME`] (counted from 0) on each
    /// connection.
    CorruptOneFrame,
    /// Echoes raw bytes faithfully (RFC 862), except for the byte at
    /// [`CORRUPTED_BYTE`] of each connection's stream.
    CorruptOneRawByte,
    /// Echoes frames faithfully, and sends one frame more (empty) after the
    /// first echo of each connection.
    ExtraFrame,
    /// Echoes frames faithfully, but stalls for [`STALL`] before echoing the
    /// frame at [`STALLED_FRAME`] (counted from 0) of each connection.
    StallOnce,
    /// Echoes [`ECHOES_BEFORE_CLOSING`] frames of each connection, then reads
    /// one more and closes the connection without echoing it, as a server
    /// that restarts does to the messages in flight.
    CloseAfterEchoes,
    /// Echoes raw bytes faithfully (RFC 862), but only the first
    /// [`RAW_BYTES_BEFORE_CLOSING`] of each connection, then closes it: in
    /// the middle of a message.
    CloseAfterRawBytes,
}

/// How many frames [`Fake::CloseAfterEchoes`] echoes on a connection.
pub(crate) const ECHOES_BEFORE_CLOSING: usize = 25;

/// How many bytes [`Fake::CloseAfterRawBytes`] echoes on a connection.
pub(crate) const RAW_BYTES_BEFORE_CLOSING: usize = 1000;

/// The frame before which [`Fake::StallOnce`] stalls.
pub(crate) const STALLED_FRAME: usize = 10;

/// How long [`Fake::StallOnce`] stalls. The stall is the behaviour under
/// test, not a wait for anything.
pub(crate) const STALL: Duration = Duration::from_millis(300);

/// The frame whose payload [`Fake::CorruptOneFrame`] damages.
pub(crate) const CORRUPTED_FRAME: usize = 3;

/// The byte of the stream that [`Fake::CorruptOneRawByte`] damages.
pub(crate) const CORRUPTED_BYTE: usize = 100;

/// A listener on a free loopback port, and its address.
async fn loopback_listener() -> (TcpListener, SocketAddr) {
    let listener = TcpListener::bind("127.0.0.1:0")
        .await
        .expect("a free loopback port binds");
    let addr = listener
        .local_addr()
        .expect("a bound listener has an address");
    (listener, addr)
}

/// Starts a fake server on a free loopback port, serving until the test's
/// runtime ends.
pub(crate) async fn fake_server(fake: Fake) -> SocketAddr {
    let (listener, addr) = loopback_listener().await;
    tokio::spawn(async move {
        while let Ok((socket, _)) = listener.accept().await {
            tokio::spawn(serve_fake(fake, socket));
        }
    });
    addr
}

async fn serve_fake(fake: Fake, mut socket: TcpStream) {
    if let Fake::CorruptOneRawByte | Fake::CloseAfterRawBytes = fake {
        let (mut seen, mut buffer) = (0, vec![0; 4096]);
        while let Ok(read) = socket.read(&mut buffer).await {
            if read == 0 {
                break;
            }
            let mut echo = &mut buffer[..read];
            if let Fake::CloseAfterRawBytes = fake {
                let left = RAW_BYTES_BEFORE_CLOSING - seen;
                echo = &mut echo[..read.min(left)];
            } else if (seen..seen + read).contains(&CORRUPTED_BYTE) {
                echo[CORRUPTED_BYTE - seen] ^= 0x01;
            }
            seen += echo.len();
            if socket.write_all(echo).await.is_err() || seen == RAW_BYTES_BEFORE_CLOSING {
                break;
            }
        }
        return;
    }
    let mut frames = Framed::new(socket, FrameCodec::new());
    match fake {
        Fake::CorruptOneRawByte | Fake::CloseAfterRawBytes => unreachable!("served above"),
        Fake::CloseAfterEchoes => {
            for _ in 0..ECHOES_BEFORE_CLOSING {
                let Some(Ok(frame)) = frames.next().await else {
                    return;
                };
                if frames.send(frame.freeze()).await.is_err() {
                    return;
                }
            }
            // Dropping the socket after the frame closes the connection.
            let _ = frames.next().await;
        }
        Fake::Echo | Fake::CorruptOneFrame | Fake::ExtraFrame | Fake::StallOnce => {
            let mut count = 0;
            while let Some(Ok(mut frame)) = frames.next().await {
                if matches!(fake, Fake::StallOnce) && count == STALLED_FRAME {
                    tokio::time::sleep(STALL).await;
                }
                if matches!(fake, Fake::CorruptOneFrame) && count == CORRUPTED_FRAME {
                    if let Some(last) = frame.last_mut() {
                        *last ^= 0x01;
                    }
                }
                if frames.send(frame.freeze()).await.is_err() {
                    break;
                }
                if matches!(fake, Fake::ExtraFrame)
                    && count == 0
                    && frames.send(Bytes::new()).await.is_err()
                {
                    break;
                }
                count += 1;
            }
        }
        Fake::Corrupt => {
            while let Some(Ok(frame)) = frames.next().await {
                if frames.send(corrupt(frame)).await.is_err() {
                    break;
                }
            }
        }
        Fake::CloseAfterReading => {
            // Dropping the socket after the frame closes the connection.
            let _ = frames.next().await;
        }
        Fake::Silent => while let Some(Ok(_)) = frames.next().await {},
    }
}

fn corrupt(mut frame: BytesMut) -> Bytes {
    match frame.first_mut() {
        Some(byte) => *byte ^= 0x20,
        None => frame.extend_from_slice(b"!"),
    }
    frame.freeze()
}

/// Starts a server that echoes frames on the first connection it accepts,
/// until it has echoed `echoes` of them, and then closes the connection and
/// its listener: every later connection is refused.
pub(crate) async fn one_connection_server(echoes: usize) -> SocketAddr {
    let (listener, addr) = loopback_listener().await;
    tokio::spawn(async move {
        let Ok((socket, _)) = listener.accept().await else {
            return;
        };
        drop(listener);
        let mut frames = Framed::new(socket, FrameCodec::new());
        for _ in 0..echoes {
            let Some(Ok(frame)) = frames.next().await else {
                return;
            };
            if frames.send(frame.freeze()).await.is_err() {
                return;
            }
        }
    });
    addr
}

/// Starts a server that reads its first connection and never answers it,
/// and echoes frames faithfully on every later one: a backend that hangs,
/// then is replaced.
pub(crate) async fn silent_first_server() -> SocketAddr {
    let (listener, addr) = loopback_listener().await;
    tokio::spawn(async move {
        let mut fake = Fake::Silent;
        while let Ok((socket, _)) = listener.accept().await {
            tokio::spawn(serve_fake(fake, socket));
            fake = Fake::Echo;
        }
    });
    addr
}

/// A loopback address where nothing listens: a port that was free a moment
/// ago, bound and released.
pub(crate) async fn refused_addr() -> SocketAddr {
    loopback_listener().await.1
}

/// The ways a fake UDP echo server misbehaves.
#[derive(Debug, Clone, Copy)]
pub(crate) enum UdpFake {
    /// Answers the 1st, 3rd, 5th... datagram it receives, and drops the others.
    DropEveryOther,
    /// Answers every datagram twice.
    Duplicate,
    /// Holds the 1st, 3rd, 5th... datagram back until the next one comes,
    /// and answers that one first: every other reply comes out of order.
    SwapPairs,
}

/// Starts a fake UDP echo server on a free loopback port, serving until the
/// test's runtime ends.
pub(crate) async fn udp_fake(fake: UdpFake) -> SocketAddr {
    let socket = UdpSocket::bind("127.0.0.1:0")
        .await
        .expect("the fake binds");
    let addr = socket.local_addr().expect("a bound socket has an address");
    tokio::spawn(async move {
        let mut buffer = vec![0; 65_536];
        let mut received = 0_u64;
        let mut held: Option<Vec<u8>> = None;
        while let Ok((len, peer)) = socket.recv_from(&mut buffer).await {
            received += 1;
            let copies = match fake {
                UdpFake::DropEveryOther => u64::from(received % 2 == 1),
                UdpFake::Duplicate => 2,
                UdpFake::SwapPairs => match held.take() {
                    None => {
                        held = Some(buffer[..len].to_vec());
                        0
                    }
                    Some(earlier) => {
                        let _ = socket.send_to(&buffer[..len], peer).await;
                        let _ = socket.send_to(&earlier, peer).await;
                        0
                    }
                },
            };
            for _ in 0..copies {
                let _ = socket.send_to(&buffer[..len], peer).await;
            }
        }
    });
    addr
}

/// A loopback UDP port where nothing listens: one that was free a moment ago.
pub(crate) async fn closed_udp_port() -> SocketAddr {
    let socket = UdpSocket::bind("127.0.0.1:0")
        .await
        .expect("a free port binds");
    socket.local_addr().expect("a bound socket has an address")
}
