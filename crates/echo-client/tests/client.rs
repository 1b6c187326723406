//! The library against the real server in-process, and against fake servers
//! that misbehave.

mod common;
mod support;

use std::io;
use std::net::SocketAddr;
use std::time::Duration;

use common::{PATIENT, bounded};
use echo_client::{Client, ClientError};
use echo_proto::FrameError;
use echo_proto::frame::DEFAULT_MAX_FRAME_LEN;
use support::{Fake, echo_server, echo_server_with_max_frame, fake_server, refused_addr};

async fn connect(addr: SocketAddr) -> Client {
    bounded(Client::connect(addr, PATIENT))
        .await
        .expect("the client connects")
}

/// An error with its chain of causes on one line, as the binary prints it.
fn chain(error: ClientError) -> String {
    format!("{:#}", anyhow::Error::new(error))
}

#[tokio::test]
async fn echoes_one_message() {
    let addr = echo_server().await;
    let mut client = connect(addr).await;
    assert_eq!(client.peer_addr(), addr);
    let echo = bounded(client.echo(b"Hello Echo!")).await.unwrap();
    assert_eq!(&echo[..], b"Hello Echo!");
}

#[tokio::test]
async fn echoes_many_messages_in_order_on_one_connection() {
    let mut client = connect(echo_server().await).await;
    for i in 0..500 {
        let message = format!("message {i} {}", "x".repeat(i % 37));
        let echo = bounded(client.echo(message.as_bytes())).await.unwrap();
        assert_eq!(echo, message.as_bytes());
    }
}

#[tokio::test]
async fn echoes_an_empty_message() {
    let mut client = connect(echo_server().await).await;
    let echo = bounded(client.echo(b"")).await.unwrap();
    assert!(echo.is_empty());
    // The connection stays in step: the next message gets its own echo.
    assert_eq!(bounded(client.echo(b"after")).await.unwrap(), &b"after"[..]);
}

#[tokio::test]
async fn echoes_every_byte_value() {
    let mut client = connect(echo_server().await).await;
    let message: Vec<u8> = (0..=255).chain((0..=255).rev()).collect();
    assert_eq!(bounded(client.echo(&message)).await.unwrap(), message);
}

#[tokio::test]
async fn echoes_a_mebibyte() {
    let mut client = connect(echo_server().await).await;
    let message: Vec<u8> = (0..1024 * 1024).map(|i| (i % 251) as u8).collect();
    assert_eq!(bounded(client.echo(&message)).await.unwrap(), message);
}

/// The longest message the protocol allows by default. The server starts
/// echoing it before it has all arrived, so the client has to read while it
/// writes; whether writing first and reading afterwards would deadlock
/// depends on the machine's socket buffer sizes, so this test checks the
/// round trip, not the deadlock.
#[tokio::test]
async fn echoes_a_message_of_the_maximum_length() {
    let mut client = connect(echo_server().await).await;
    let message: Vec<u8> = (0..DEFAULT_MAX_FRAME_LEN)
        .map(|i| (i % 253) as u8)
        .collect();
    assert_eq!(bounded(client.echo(&message)).await.unwrap(), message);
}

#[tokio::test]
async fn refuses_a_message_over_the_maximum_before_sending() {
    let addr = echo_server().await;
    let mut client = connect(addr).await;
    let message = vec![0; DEFAULT_MAX_FRAME_LEN + 1];
    match bounded(client.echo(&message)).await {
        Err(ClientError::Frame {
            addr: named,
            source: FrameError::FrameTooLarge { len, max },
        }) => {
            assert_eq!(named, addr.to_string());
            assert_eq!(
                (len, max),
                (message.len() as u64, DEFAULT_MAX_FRAME_LEN as u64)
            );
        }
        other => panic!("expected a framing error, got {other:?}"),
    }
}

#[tokio::test]
async fn detects_an_echo_that_differs() {
    let addr = fake_server(Fake::Corrupt).await;
    let mut client = connect(addr).await;
    match bounded(client.echo(b"hello")).await {
        Err(ClientError::Mismatch {
            addr: named,
            sent_len,
            received_len,
            first_difference,
        }) => {
            assert_eq!(named, addr.to_string());
            assert_eq!((sent_len, received_len, first_difference), (5, 5, 0));
        }
        other => panic!("expected a mismatch, got {other:?}"),
    }
}

#[tokio::test]
async fn detects_an_echo_longer_than_the_message() {
    let addr = fake_server(Fake::Corrupt).await;
    let mut client = connect(addr).await;
    let error = bounded(client.echo(b"")).await.unwrap_err();
    assert!(
        matches!(
            error,
            ClientError::Mismatch {
                sent_len: 0,
                received_len: 1,
                first_difference: 0,
                ..
            }
        ),
        "{error:?}"
    );
    assert_eq!(
        error.to_string(),
        format!(
            "the echo from {addr} differs from the message sent: 0 bytes sent, 1 received, \
             first difference at byte 0"
        )
    );
}

#[tokio::test]
async fn reports_a_server_that_closes_before_echoing() {
    let addr = fake_server(Fake::CloseAfterReading).await;
    let mut client = connect(addr).await;
    let error = bounded(client.echo(b"seventeen bytes!!"))
        .await
        .unwrap_err();
    assert!(
        matches!(error, ClientError::Closed { sent_len: 17, .. }),
        "{error:?}"
    );
    assert_eq!(
        chain(error),
        format!("{addr} closed the connection before echoing a 17-byte message")
    );
}

/// The real server closes the connection on a frame over its maximum, after
/// echoing the frames before it.
#[tokio::test]
async fn reports_a_message_over_the_servers_maximum_as_closed() {
    let addr = echo_server_with_max_frame(16).await;
    let mut client = connect(addr).await;
    assert_eq!(
        bounded(client.echo(b"sixteen bytes ok")).await.unwrap(),
        &b"sixteen bytes ok"[..]
    );
    let error = bounded(client.echo(&[b'x'; 17])).await.unwrap_err();
    assert!(
        matches!(error, ClientError::Closed { sent_len: 17, .. }),
        "{error:?}"
    );
}

/// Larger than the server's maximum and than the socket buffers: the server
/// closes with most of the message unread, which the client sees as a reset
/// or a broken pipe rather than a clean end of stream.
#[tokio::test]
async fn reports_a_large_message_over_the_servers_maximum_as_closed() {
    let addr = echo_server_with_max_frame(1024).await;
    let mut client = connect(addr).await;
    let message = vec![b'x'; 4 * 1024 * 1024];
    let error = bounded(client.echo(&message)).await.unwrap_err();
    assert!(
        matches!(error, ClientError::Closed { sent_len, .. } if sent_len == message.len()),
        "{error:?}"
    );
}

#[tokio::test]
async fn reports_a_refused_connection() {
    let addr = refused_addr().await;
    let error = bounded(Client::connect(addr, PATIENT)).await.unwrap_err();
    match &error {
        ClientError::Connect {
            addr: named,
            source,
        } => {
            assert_eq!(*named, addr.to_string());
            assert_eq!(source.kind(), io::ErrorKind::ConnectionRefused);
        }
        other => panic!("expected a connection error, got {other:?}"),
    }
    let message = chain(error);
    assert!(
        message.starts_with(&format!("cannot connect to {addr}: ")),
        "{message}"
    );
}

#[tokio::test]
async fn times_out_when_no_echo_comes() {
    let addr = fake_server(Fake::Silent).await;
    let waited = Duration::from_millis(200);
    let mut client = bounded(Client::connect(addr, waited)).await.unwrap();
    let error = bounded(client.echo(b"anyone there?")).await.unwrap_err();
    assert!(
        matches!(&error, ClientError::Timeout { waited: w, .. } if *w == waited),
        "{error:?}"
    );
    assert_eq!(chain(error), format!("no echo from {addr} within 200ms"));
}

/// A listener whose accept queue is full drops new connection requests, so
/// connecting to it hangs until the timeout.
#[tokio::test]
async fn times_out_when_the_connection_is_not_accepted() {
    let socket = tokio::net::TcpSocket::new_v4().unwrap();
    socket.bind(SocketAddr::from(([127, 0, 0, 1], 0))).unwrap();
    let addr = socket.local_addr().unwrap();
    // Never accepted: the queue of length 0 (really 1 on Linux) fills up.
    let _listener = socket.listen(0).unwrap();
    let waited = Duration::from_millis(200);
    let mut queued = Vec::new();
    let error = loop {
        match bounded(Client::connect(addr, waited)).await {
            Ok(client) => queued.push(client),
            Err(error) => break error,
        }
        assert!(queued.len() < 16, "the accept queue never filled up");
    };
    assert!(
        matches!(&error, ClientError::ConnectTimeout { waited: w, .. } if *w == waited),
        "{error:?}"
    );
    assert_eq!(
        chain(error),
        format!("cannot connect to {addr} within 200ms")
    );
}

#[tokio::test]
async fn rejects_an_address_without_a_port() {
    let error = bounded(Client::connect("localhost", PATIENT))
        .await
        .unwrap_err();
    assert!(
        matches!(&error, ClientError::Resolve { addr, .. } if addr == "localhost"),
        "{error:?}"
    );
    assert!(chain(error).starts_with("cannot resolve localhost: "));
}

/// A host name is resolved, and each of its addresses tried: `localhost` may
/// come first as `::1`, where nothing listens, before `127.0.0.1`.
#[tokio::test]
async fn connects_by_host_name() {
    let addr = echo_server().await;
    let name = format!("localhost:{}", addr.port());
    let mut client = bounded(Client::connect(&name, PATIENT)).await.unwrap();
    assert_eq!(client.peer_addr(), addr);
    assert_eq!(
        bounded(client.echo(b"by name")).await.unwrap(),
        &b"by name"[..]
    );
}
