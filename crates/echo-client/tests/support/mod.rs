//! Servers for the tests: the real echo server in-process, and small fakes
//! that misbehave in the ways the client must report.

use std::net::SocketAddr;
use std::time::Duration;

use bytes::{Bytes, BytesMut};
use echo_proto::FrameCodec;
use echo_server::{Config, Server};
use futures_util::{SinkExt, StreamExt};
use tokio::net::{TcpListener, TcpStream};
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

/// The ways a fake server misbehaves.
#[derive(Debug, Clone, Copy)]
pub(crate) enum Fake {
    /// Echoes each frame with its first byte changed (an empty frame gets a
    /// byte added).
    Corrupt,
    /// Reads one frame, then closes the connection without answering.
    CloseAfterReading,
    /// Reads everything and never answers.
    Silent,
}

/// Starts a fake server on a free loopback port, serving until the test's
/// runtime ends.
pub(crate) async fn fake_server(fake: Fake) -> SocketAddr {
    let listener = TcpListener::bind("127.0.0.1:0")
        .await
        .expect("the fake binds");
    let addr = listener
        .local_addr()
        .expect("a bound listener has an address");
    tokio::spawn(async move {
        while let Ok((socket, _)) = listener.accept().await {
            tokio::spawn(serve_fake(fake, socket));
        }
    });
    addr
}

async fn serve_fake(fake: Fake, socket: TcpStream) {
    let mut frames = Framed::new(socket, FrameCodec::new());
    match fake {
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

/// A loopback address where nothing listens: a port that was free a moment
/// ago, bound and released.
pub(crate) async fn refused_addr() -> SocketAddr {
    let listener = TcpListener::bind("127.0.0.1:0")
        .await
        .expect("a free port binds");
    listener
        .local_addr()
        .expect("a bound listener has an address")
}
