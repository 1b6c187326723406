//! `--greeting` and `--delay`, in-process. The delay's tests run on tokio's
//! paused clock: time moves only when every task waits, straight to the
//! next timer, so "at least the delay" and "not held back by another
//! connection's delay" are exact, not subject to a loaded machine's timing.

mod support;

use std::io;
use std::pin::Pin;
use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::task::{Context, Poll};
use std::time::Duration;

use echo_proto::greeting::{Greeting, SERVER_NAME};
use echo_server::{Config, ConnectionEnd, Delay, EchoService, EchoStream, Mode};
use tokio::io::{
    AsyncBufReadExt, AsyncRead, AsyncReadExt, AsyncWrite, AsyncWriteExt, BufReader, DuplexStream,
    ReadBuf,
};
use tokio::net::TcpStream;
use tokio::time::Instant;
use tokio_util::sync::CancellationToken;

use support::{Running, frame, within};

/// Reads one frame's payload from `stream`.
async fn read_frame(stream: &mut (impl AsyncRead + Unpin)) -> Vec<u8> {
    let mut header = [0; 4];
    stream.read_exact(&mut header).await.unwrap();
    let mut payload = vec![0; u32::from_be_bytes(header) as usize];
    stream.read_exact(&mut payload).await.unwrap();
    payload
}

fn greeting_config(mode: Mode) -> Config {
    Config {
        mode,
        greeting: true,
        ..Config::default()
    }
}

#[tokio::test]
async fn framed_connections_open_with_a_greeting_frame_then_echo() {
    let server = Running::start(Config {
        instance: "web-7".to_owned(),
        ..greeting_config(Mode::Framed)
    })
    .await;
    let mut stream = within(TcpStream::connect(server.addr)).await.unwrap();
    let greeting = Greeting::parse(&within(read_frame(&mut stream)).await).unwrap();
    assert_eq!(greeting.server, SERVER_NAME);
    assert_eq!(greeting.version, env!("CARGO_PKG_VERSION"));
    assert_eq!(greeting.instance, "web-7");
    stream
        .write_all(&frame(b"after the greeting"))
        .await
        .unwrap();
    assert_eq!(within(read_frame(&mut stream)).await, b"after the greeting");
}

#[tokio::test]
async fn raw_connections_open_with_a_greeting_line_then_echo() {
    let server = Running::start(greeting_config(Mode::Raw)).await;
    let stream = within(TcpStream::connect(server.addr)).await.unwrap();
    let mut stream = BufReader::new(stream);
    let mut line = Vec::new();
    within(stream.read_until(b'\n', &mut line)).await.unwrap();
    let json = line
        .strip_suffix(b"\n")
        .expect("the greeting ends its line");
    assert_eq!(Greeting::parse(json).unwrap().server, SERVER_NAME);
    stream.write_all(b"raw bytes").await.unwrap();
    let mut echo = [0; 9];
    within(stream.read_exact(&mut echo)).await.unwrap();
    assert_eq!(&echo, b"raw bytes");
}

#[tokio::test]
async fn without_the_flag_nothing_comes_before_the_echo() {
    let service = EchoService::new(&Config::default());
    let (mut client, server_side) = tokio::io::duplex(1024);
    let serving =
        tokio::spawn(async move { service.serve(server_side, &CancellationToken::new()).await });
    client.write_all(&frame(b"x")).await.unwrap();
    client.shutdown().await.unwrap();
    let mut received = Vec::new();
    within(client.read_to_end(&mut received)).await.unwrap();
    assert_eq!(received, frame(b"x"));
    assert!(matches!(
        serving.await.unwrap().end,
        ConnectionEnd::ClientClosed
    ));
}

/// A service with `delay`, as a server configures each connection's.
fn delayed(delay: &str, idle_timeout: Duration) -> Arc<EchoService> {
    Arc::new(EchoService::new(&Config {
        delay: Some(delay.parse::<Delay>().unwrap()),
        idle_timeout,
        ..Config::default()
    }))
}

/// Serves one in-memory connection on `service`; returns the client's end.
fn connect(service: &Arc<EchoService>) -> DuplexStream {
    let (client, server_side) = tokio::io::duplex(1024);
    let service = Arc::clone(service);
    tokio::spawn(async move { service.serve(server_side, &CancellationToken::new()).await });
    client
}

#[tokio::test(start_paused = true)]
async fn an_echo_takes_at_least_the_delay() {
    let service = delayed("300ms", Duration::from_secs(300));
    let mut client = connect(&service);
    for payload in [&b"one"[..], b"two"] {
        let sent = Instant::now();
        client.write_all(&frame(payload)).await.unwrap();
        assert_eq!(read_frame(&mut client).await, payload);
        // The paused clock jumps straight to the server's timer: exactly
        // the delay, each time.
        assert_eq!(sent.elapsed(), Duration::from_millis(300));
    }
}

#[tokio::test(start_paused = true)]
async fn one_connection_s_delay_does_not_hold_back_another_s_echo() {
    let service = delayed("300ms", Duration::from_secs(300));
    let (mut first, mut second) = (connect(&service), connect(&service));
    let started = Instant::now();
    first.write_all(&frame(b"first")).await.unwrap();
    // The second connection's echo is asked for while the first's is held.
    tokio::time::sleep(Duration::from_millis(100)).await;
    second.write_all(&frame(b"second")).await.unwrap();
    assert_eq!(read_frame(&mut second).await, b"second");
    // Its own delay from when it asked, not behind the first's: 400 ms, not
    // the 600 ms that echoes held back one after the other would take.
    assert_eq!(started.elapsed(), Duration::from_millis(400));
    assert_eq!(read_frame(&mut first).await, b"first");
    assert_eq!(
        started.elapsed(),
        Duration::from_millis(400),
        "the first's echo, written at 300 ms, was waiting to be read"
    );
}

#[tokio::test(start_paused = true)]
async fn a_range_draws_each_delay_inside_it() {
    let service = delayed("100ms..200ms", Duration::from_secs(300));
    let mut client = connect(&service);
    for _ in 0..20 {
        let sent = Instant::now();
        client.write_all(&frame(b"x")).await.unwrap();
        read_frame(&mut client).await;
        let took = sent.elapsed();
        assert!(
            (Duration::from_millis(100)..=Duration::from_millis(200)).contains(&took),
            "{took:?}"
        );
    }
}

#[tokio::test(start_paused = true)]
async fn a_delay_longer_than_the_idle_timeout_does_not_make_the_connection_idle() {
    let service = delayed("3s", Duration::from_secs(1));
    let mut client = connect(&service);
    client.write_all(&frame(b"slow")).await.unwrap();
    assert_eq!(read_frame(&mut client).await, b"slow");
    // And the connection stays open to be used again.
    client.write_all(&frame(b"again")).await.unwrap();
    assert_eq!(read_frame(&mut client).await, b"again");
}

/// An in-memory stream that counts the bytes the server reads from it.
struct CountedReads {
    stream: DuplexStream,
    read: Arc<AtomicUsize>,
}

impl AsyncRead for CountedReads {
    fn poll_read(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &mut ReadBuf<'_>,
    ) -> Poll<io::Result<()>> {
        let before = buf.filled().len();
        let polled = Pin::new(&mut self.stream).poll_read(cx, buf);
        let read = buf.filled().len() - before;
        self.read.fetch_add(read, Ordering::Relaxed);
        polled
    }
}

impl AsyncWrite for CountedReads {
    fn poll_write(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &[u8],
    ) -> Poll<io::Result<usize>> {
        Pin::new(&mut self.stream).poll_write(cx, buf)
    }

    fn poll_flush(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        Pin::new(&mut self.stream).poll_flush(cx)
    }

    fn poll_shutdown(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        Pin::new(&mut self.stream).poll_shutdown(cx)
    }
}

impl EchoStream for CountedReads {}

#[tokio::test(start_paused = true)]
async fn while_an_echo_is_held_the_connection_reads_nothing_more() {
    let service = delayed("300ms", Duration::from_secs(300));
    let (mut client, server_side) = tokio::io::duplex(1024);
    let read = Arc::new(AtomicUsize::new(0));
    let stream = CountedReads {
        stream: server_side,
        read: Arc::clone(&read),
    };
    let serving =
        tokio::spawn(async move { service.serve(stream, &CancellationToken::new()).await });
    let (first, second) = (frame(b"first"), frame(b"second"));
    client.write_all(&first).await.unwrap();
    tokio::time::sleep(Duration::from_millis(100)).await;
    assert_eq!(
        read.load(Ordering::Relaxed),
        first.len(),
        "the first frame is read"
    );
    client.write_all(&second).await.unwrap();
    tokio::time::sleep(Duration::from_millis(100)).await;
    assert_eq!(
        read.load(Ordering::Relaxed),
        first.len(),
        "the second frame waits in the stream while the first echo is held"
    );
    assert_eq!(read_frame(&mut client).await, b"first");
    assert_eq!(read_frame(&mut client).await, b"second");
    assert_eq!(read.load(Ordering::Relaxed), first.len() + second.len());
    client.shutdown().await.unwrap();
    assert_eq!(serving.await.unwrap().frames, 2);
}
