//! One connection streaming as fast as it can does not hold the others back.

use echo_server::{Config, EchoService, MIN_RELAY_BUFFER_LEN, Mode};
use futures_util::FutureExt;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio_util::sync::CancellationToken;

/// The relay buffer of these tests: the smallest, so that a stream of a few
/// kilobytes is many full buffers.
const BUFFER_LEN: usize = MIN_RELAY_BUFFER_LEN;

/// How many full buffers the streaming client sends at once.
const STREAMED_BUFFERS: usize = 256;

/// On one thread, a client that keeps the server's relay buffer full gets a
/// buffer's worth at a time before the others have their turn: a small frame
/// on another connection is echoed while the stream has barely started,
/// instead of after the runtime's own budget (some hundred operations)
/// forces the streaming connection to pause.
#[tokio::test(flavor = "current_thread")]
async fn a_streaming_client_yields_after_each_full_buffer() {
    let service = std::sync::Arc::new(EchoService::new(&Config {
        mode: Mode::Raw,
        relay_buffer_len: BUFFER_LEN,
        ..Config::default()
    }));
    let shutdown = CancellationToken::new();
    let stream_len = STREAMED_BUFFERS * BUFFER_LEN;
    let (mut streaming, streaming_server) = tokio::io::duplex(2 * stream_len);
    let (mut small, small_server) = tokio::io::duplex(1024);
    // Everything is written before the server runs: the streaming
    // connection always has a full buffer's worth waiting.
    streaming.write_all(&vec![7; stream_len]).await.unwrap();
    small.write_all(b"ping").await.unwrap();

    for stream in [streaming_server, small_server] {
        let (service, shutdown) = (service.clone(), shutdown.clone());
        tokio::spawn(async move { service.serve(stream, &shutdown).await });
    }
    let mut echo = [0; 4];
    small.read_exact(&mut echo).await.unwrap();
    assert_eq!(&echo, b"ping");

    // What the streaming connection had echoed by then.
    let mut streamed_back = vec![0; stream_len];
    let echoed = streaming
        .read(&mut streamed_back)
        .now_or_never()
        .map_or(0, Result::unwrap);
    assert!(
        echoed <= 4 * BUFFER_LEN,
        "the streaming connection relayed {echoed} bytes ({} buffers) before \
         the other was served",
        echoed / BUFFER_LEN
    );
    shutdown.cancel();
}
