//! Raw and UDP echo, the connection limit and the idle timeout, on real
//! loopback sockets.

mod support;

use std::time::Duration;

use echo_server::{Config, Mode};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::{TcpStream, UdpSocket};

use support::{Running, assert_echo, frame, read_to_end, within};

#[tokio::test]
async fn raw_mode_answers_a_client_that_reads_once() {
    let server = Running::start(Config {
        mode: Mode::Raw,
        ..Config::default()
    })
    .await;
    // The minimal tutorial client: send a message, one recv(1024).
    let mut stream = within(TcpStream::connect(server.addr)).await.unwrap();
    stream.write_all(b"Hello, world").await.unwrap();
    let mut buffer = [0; 1024];
    let n = within(stream.read(&mut buffer)).await.unwrap();
    assert_eq!(&buffer[..n], b"Hello, world");
}

#[tokio::test]
async fn raw_mode_echoes_any_bytes_until_the_client_closes() {
    let server = Running::start(Config {
        mode: Mode::Raw,
        max_frame_len: 4,
        ..Config::default()
    })
    .await;
    let mut stream = within(TcpStream::connect(server.addr)).await.unwrap();
    // What framed mode would take for an oversize header, and then some.
    let input: Vec<u8> = [
        &[0xff; 4][..],
        &(0..=255).collect::<Vec<u8>>(),
        &vec![7; 300_000],
    ]
    .concat();
    let (mut reader, mut writer) = stream.split();
    let writing = async {
        writer.write_all(&input).await.unwrap();
        writer.shutdown().await.unwrap();
    };
    let mut echoed = Vec::new();
    let reading = reader.read_to_end(&mut echoed);
    within(async { tokio::join!(writing, reading) })
        .await
        .1
        .unwrap();
    assert_eq!(echoed, input);
}

#[tokio::test]
async fn udp_answers_each_datagram_with_an_identical_one() {
    let server = Running::start(Config {
        udp: Some("127.0.0.1:0".parse().unwrap()),
        ..Config::default()
    })
    .await;
    let udp_addr = server.udp_addr.expect("a UDP address");
    let client = UdpSocket::bind("127.0.0.1:0").await.unwrap();
    let other = UdpSocket::bind("127.0.0.1:0").await.unwrap();
    let mut buffer = vec![0; 70_000];
    for payload in [
        vec![],
        b"ping".to_vec(),
        vec![0xab; 8 * 1024],
        vec![1; 65_507],
    ] {
        for socket in [&client, &other] {
            socket.send_to(&payload, udp_addr).await.unwrap();
            let (n, from) = within(socket.recv_from(&mut buffer)).await.unwrap();
            assert_eq!(from, udp_addr);
            assert_eq!(
                &buffer[..n],
                &payload[..],
                "a {}-byte datagram",
                payload.len()
            );
        }
    }
    // TCP is served beside it.
    let mut framed = server.framed().await;
    assert_echo(&mut framed, b"tcp too").await;
}

#[tokio::test]
async fn udp_runs_beside_raw_mode_too() {
    let server = Running::start(Config {
        mode: Mode::Raw,
        udp: Some("127.0.0.1:0".parse().unwrap()),
        ..Config::default()
    })
    .await;
    let client = UdpSocket::bind("127.0.0.1:0").await.unwrap();
    client
        .send_to(b"datagram", server.udp_addr.unwrap())
        .await
        .unwrap();
    let mut buffer = [0; 64];
    let (n, _) = within(client.recv_from(&mut buffer)).await.unwrap();
    assert_eq!(&buffer[..n], b"datagram");
}

/// Whether the server serves a new connection: an echo comes back, rather
/// than the connection being closed.
async fn is_served(addr: std::net::SocketAddr) -> bool {
    let Ok(mut stream) = TcpStream::connect(addr).await else {
        return false;
    };
    if stream.write_all(&frame(b"?")).await.is_err() {
        return false;
    }
    let mut echo = [0; 5];
    within(stream.read_exact(&mut echo)).await.is_ok()
}

#[tokio::test]
async fn connections_past_the_limit_are_closed_at_once_and_served_again_later() {
    let server = Running::start(Config {
        max_connections: 2,
        ..Config::default()
    })
    .await;
    let mut first = server.framed().await;
    let mut second = server.framed().await;
    for client in [&mut first, &mut second] {
        assert_echo(client, b"in").await;
    }

    let mut third = within(TcpStream::connect(server.addr)).await.unwrap();
    // The third connection is closed without an answer (or reset, if our
    // frame reached the closed socket).
    let _ = third.write_all(&frame(b"out")).await;
    let mut rest = Vec::new();
    let closed = within(third.read_to_end(&mut rest)).await;
    assert!(
        closed.is_err() || rest.is_empty(),
        "the third connection got {rest:?}"
    );

    // The open ones are unaffected.
    assert_echo(&mut first, b"still").await;

    // Once one closes, new connections are served again.
    drop(second);
    within(async {
        while !is_served(server.addr).await {
            tokio::task::yield_now().await;
        }
    })
    .await;
}

#[tokio::test]
async fn idle_connections_are_closed_however_they_stall() {
    let server = Running::start(Config {
        idle_timeout: Duration::from_millis(200),
        ..Config::default()
    })
    .await;
    // Silent from the start; stalled inside a header; stalled inside a
    // payload (slow-loris).
    for sent in [&[][..], &[0, 0][..], &frame(b"unfinished")[..7]] {
        let mut stream = within(TcpStream::connect(server.addr)).await.unwrap();
        stream.write_all(sent).await.unwrap();
        assert!(read_to_end(&mut stream).await.is_empty(), "after {sent:?}");
    }
}

#[tokio::test]
async fn a_client_that_stops_reading_its_echoes_is_closed_when_idle() {
    let server = Running::start(Config {
        idle_timeout: Duration::from_millis(200),
        ..Config::default()
    })
    .await;
    let stream = within(TcpStream::connect(server.addr)).await.unwrap();
    let (_reader, mut writer) = stream.into_split();
    // Write without ever reading until the server gives up on us: the write
    // fails once the server has closed the connection.
    let chunk = frame(&vec![0; 64 * 1024]);
    let result = within(async {
        loop {
            if let Err(error) = writer.write_all(&chunk).await {
                return error;
            }
        }
    })
    .await;
    assert!(
        matches!(
            result.kind(),
            std::io::ErrorKind::ConnectionReset | std::io::ErrorKind::BrokenPipe
        ),
        "{result}"
    );
}

#[tokio::test]
async fn a_client_that_keeps_talking_is_never_idle() {
    let idle_timeout = Duration::from_millis(500);
    let server = Running::start(Config {
        idle_timeout,
        ..Config::default()
    })
    .await;
    let mut client = server.framed().await;
    // Three times the idle timeout in all, with a message every fifth of it.
    for seq in 0..15 {
        tokio::time::sleep(idle_timeout / 5).await;
        assert_echo(&mut client, format!("message {seq}").as_bytes()).await;
    }
}

/// The idle deadline counts from the last byte moved, read or written: a
/// frame that arrives after a long silence and then cannot be echoed (the
/// client is not reading) gets the whole idle timeout from its arrival.
#[tokio::test(start_paused = true)]
async fn the_idle_timeout_counts_from_the_last_byte_read() {
    use echo_server::{ConnectionEnd, EchoService};
    use tokio::time::Instant;
    use tokio_util::sync::CancellationToken;

    let idle_timeout = Duration::from_secs(10);
    let service = EchoService::new(&Config {
        idle_timeout,
        ..Config::default()
    });
    // A pipe of 64 bytes each way: the first echo fills it.
    let (mut client, server_side) = tokio::io::duplex(64);
    let started = Instant::now();
    let serving =
        tokio::spawn(async move { service.serve(server_side, &CancellationToken::new()).await });
    client.write_all(&frame(&[1; 60])).await.unwrap();
    tokio::time::sleep(Duration::from_secs(9)).await;
    // The echo of this one has no room to go: the server waits to write it.
    client.write_all(&frame(b"late")).await.unwrap();
    let arrived = Instant::now();
    let summary = serving.await.unwrap();
    assert!(
        matches!(summary.end, ConnectionEnd::IdleTimeout(after) if after == idle_timeout),
        "{:?}",
        summary.end
    );
    let waited = arrived.elapsed();
    assert!(
        waited >= idle_timeout && waited < idle_timeout + Duration::from_secs(1),
        "closed {waited:?} after the last frame arrived ({:?} after the start)",
        started.elapsed()
    );
}

/// A stream whose shutdown never completes, as a TLS stream's can when its
/// close_notify finds no room because the client reads nothing.
struct StuckShutdown(tokio::io::DuplexStream);

impl tokio::io::AsyncRead for StuckShutdown {
    fn poll_read(
        mut self: std::pin::Pin<&mut Self>,
        cx: &mut std::task::Context<'_>,
        buf: &mut tokio::io::ReadBuf<'_>,
    ) -> std::task::Poll<std::io::Result<()>> {
        std::pin::Pin::new(&mut self.0).poll_read(cx, buf)
    }
}

impl tokio::io::AsyncWrite for StuckShutdown {
    fn poll_write(
        mut self: std::pin::Pin<&mut Self>,
        cx: &mut std::task::Context<'_>,
        buf: &[u8],
    ) -> std::task::Poll<std::io::Result<usize>> {
        std::pin::Pin::new(&mut self.0).poll_write(cx, buf)
    }

    fn poll_flush(
        mut self: std::pin::Pin<&mut Self>,
        cx: &mut std::task::Context<'_>,
    ) -> std::task::Poll<std::io::Result<()>> {
        std::pin::Pin::new(&mut self.0).poll_flush(cx)
    }

    fn poll_shutdown(
        self: std::pin::Pin<&mut Self>,
        _: &mut std::task::Context<'_>,
    ) -> std::task::Poll<std::io::Result<()>> {
        std::task::Poll::Pending
    }
}

impl echo_server::EchoStream for StuckShutdown {}

#[tokio::test(start_paused = true)]
async fn shutting_down_a_finished_connection_waits_no_longer_than_the_idle_timeout() {
    use echo_server::{ConnectionEnd, EchoService};
    use tokio::time::Instant;
    use tokio_util::sync::CancellationToken;

    let idle_timeout = Duration::from_secs(10);
    let service = EchoService::new(&Config {
        idle_timeout,
        ..Config::default()
    });
    let (mut client, server_side) = tokio::io::duplex(1024);
    let serving = tokio::spawn(async move {
        service
            .serve(StuckShutdown(server_side), &CancellationToken::new())
            .await
    });
    client.write_all(&frame(b"last")).await.unwrap();
    client.shutdown().await.unwrap();
    let mut echo = vec![0; frame(b"last").len()];
    client.read_exact(&mut echo).await.unwrap();
    assert_eq!(echo, frame(b"last"));
    let closed = Instant::now();
    // On the paused clock, a shutdown without a bound would never end.
    let summary = tokio::time::timeout(10 * idle_timeout, serving)
        .await
        .expect("the serving ended")
        .unwrap();
    assert!(
        matches!(summary.end, ConnectionEnd::ClientClosed),
        "{:?}",
        summary.end
    );
    assert_eq!((summary.frames, summary.bytes), (1, 8));
    let waited = closed.elapsed();
    assert!(
        waited >= idle_timeout && waited < idle_timeout + Duration::from_secs(1),
        "gave up on the shutdown after {waited:?}"
    );
}
