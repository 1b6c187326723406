//! Pipelined frames are echoed in batches: one read takes in many frames and
//! one write sends back all the complete ones, with no allocation per frame.
//!
//! This asserts counts (write calls, heap allocations), never time. It is one
//! test in its own binary because it counts every allocation of the process.

use std::io;
use std::pin::Pin;
use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::task::{Context, Poll};
use std::time::Duration;

use echo_server::{Config, EchoService, EchoStream};
use tokio::io::{AsyncRead, AsyncReadExt, AsyncWrite, AsyncWriteExt, ReadBuf};
use tokio::net::{TcpListener, TcpStream};
use tokio_util::sync::CancellationToken;

#[global_allocator]
static ALLOCATOR: dhat::Alloc = dhat::Alloc;

const DEADLINE: Duration = Duration::from_secs(10);

/// A TCP stream that counts the server's reads and writes: each is one
/// system call.
struct Counted {
    stream: TcpStream,
    reads: Arc<AtomicUsize>,
    writes: Arc<AtomicUsize>,
}

impl AsyncRead for Counted {
    fn poll_read(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &mut ReadBuf<'_>,
    ) -> Poll<io::Result<()>> {
        let polled = Pin::new(&mut self.stream).poll_read(cx, buf);
        if polled.is_ready() {
            self.reads.fetch_add(1, Ordering::Relaxed);
        }
        polled
    }
}

impl AsyncWrite for Counted {
    fn poll_write(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &[u8],
    ) -> Poll<io::Result<usize>> {
        let polled = Pin::new(&mut self.stream).poll_write(cx, buf);
        if polled.is_ready() {
            self.writes.fetch_add(1, Ordering::Relaxed);
        }
        polled
    }

    fn poll_flush(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        Pin::new(&mut self.stream).poll_flush(cx)
    }

    fn poll_shutdown(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        Pin::new(&mut self.stream).poll_shutdown(cx)
    }
}

impl EchoStream for Counted {
    fn poll_read_ready(&mut self, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        self.stream.poll_read_ready(cx)
    }
}

#[tokio::test(flavor = "current_thread")]
async fn pipelined_frames_cost_one_write_per_batch_and_no_allocation_each() {
    let _profiler = dhat::Profiler::builder().testing().build();

    let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let mut client = TcpStream::connect(listener.local_addr().unwrap())
        .await
        .unwrap();
    client.set_nodelay(true).unwrap();
    let (server_side, _) = listener.accept().await.unwrap();
    let reads = Arc::new(AtomicUsize::new(0));
    let writes = Arc::new(AtomicUsize::new(0));
    let counted = Counted {
        stream: server_side,
        reads: Arc::clone(&reads),
        writes: Arc::clone(&writes),
    };
    let service = EchoService::new(&Config::default());
    let serving =
        tokio::spawn(async move { service.serve(counted, &CancellationToken::new()).await });

    // 32 frames of 64 bytes, sent in one write: a pipelining client's burst.
    const FRAMES: usize = 32;
    let burst: Vec<u8> = (0..FRAMES)
        .flat_map(|i| {
            let mut frame = 64u32.to_be_bytes().to_vec();
            frame.extend(std::iter::repeat_n(i as u8, 64));
            frame
        })
        .collect();
    let mut echo = vec![0; burst.len()];
    let mut round = async || {
        client.write_all(&burst).await.unwrap();
        tokio::time::timeout(DEADLINE, client.read_exact(&mut echo))
            .await
            .unwrap()
            .unwrap();
        assert!(echo == burst, "the echo differs from the burst");
    };

    // The first round warms up: the relay buffer is allocated once.
    round().await;
    const ROUNDS: usize = 200;
    let writes_before = writes.load(Ordering::Relaxed);
    let reads_before = reads.load(Ordering::Relaxed);
    let blocks_before = dhat::HeapStats::get().total_blocks;
    for _ in 0..ROUNDS {
        round().await;
    }
    let allocations = dhat::HeapStats::get().total_blocks - blocks_before;
    let writes = writes.load(Ordering::Relaxed) - writes_before;
    let reads = reads.load(Ordering::Relaxed) - reads_before;
    eprintln!(
        "{ROUNDS} bursts of {FRAMES} frames: {writes} writes, {reads} reads, {allocations} allocations"
    );

    // A batch can arrive in more than one piece now and then, so allow some
    // slack, but far fewer calls than frames.
    assert!(
        writes <= 2 * ROUNDS,
        "{writes} writes for {ROUNDS} bursts of {FRAMES} frames"
    );
    assert!(reads <= 3 * ROUNDS, "{reads} reads for {ROUNDS} bursts");
    assert!(
        allocations < ROUNDS as u64,
        "{allocations} allocations for {} frames",
        ROUNDS * FRAMES
    );

    drop(client);
    let summary = tokio::time::timeout(DEADLINE, serving)
        .await
        .unwrap()
        .unwrap();
    assert_eq!(summary.frames, ((ROUNDS + 1) * FRAMES) as u64);
}
