//! The heap an idle connection costs the server, counted allocation by
//! allocation (dhat), for connections that never sent a byte and for
//! connections that echoed once: what load balancers' health checks, port
//! scanners and pooled clients hold open by the thousand.
//!
//! This asserts bytes of memory, never time. It is one test in its own
//! binary because it counts every allocation of the process.

use std::io::{Read, Write};
use std::net::{SocketAddr, TcpStream};
use std::sync::Arc;
use std::time::{Duration, Instant};

use echo_server::{Config, Metrics, Server};

#[global_allocator]
static ALLOCATOR: dhat::Alloc = dhat::Alloc;

const DEADLINE: Duration = Duration::from_secs(30);

/// Connections held open for each measurement.
const CONNECTIONS: usize = 1_000;

/// The connections open, from the server's own metrics.
fn open(metrics: &Metrics) -> u64 {
    metrics
        .encode()
        .lines()
        .find_map(|line| line.strip_prefix("echo_connections_open "))
        .and_then(|value| value.trim().parse().ok())
        .expect("the metrics count open connections")
}

/// Waits until the server has `count` connections open: each accepted and
/// its task started.
fn wait_open(metrics: &Metrics, count: u64) {
    let deadline = Instant::now() + DEADLINE;
    while open(metrics) != count {
        assert!(
            Instant::now() < deadline,
            "{} connections open, not {count}",
            open(metrics)
        );
        std::thread::yield_now();
    }
}

fn echo_once(stream: &mut TcpStream) {
    stream.set_read_timeout(Some(DEADLINE)).unwrap();
    stream.write_all(b"\x00\x00\x00\x01!").unwrap();
    let mut echo = [0; 5];
    stream.read_exact(&mut echo).unwrap();
    assert_eq!(&echo, b"\x00\x00\x00\x01!");
}

/// The heap in use now, in bytes, once the server has settled: the same
/// figure twice in a row a little apart.
fn heap_bytes() -> u64 {
    let mut last = dhat::HeapStats::get().curr_bytes;
    loop {
        std::thread::sleep(Duration::from_millis(20));
        let now = dhat::HeapStats::get().curr_bytes;
        if now == last {
            return now as u64;
        }
        last = now;
    }
}

/// Opens [`CONNECTIONS`] connections, each echoing once first if `echo`,
/// and returns the heap they cost the server per connection.
fn bytes_per_connection(addr: SocketAddr, metrics: &Metrics, echo: bool) -> f64 {
    let before = heap_bytes();
    let mut held = Vec::with_capacity(CONNECTIONS);
    for _ in 0..CONNECTIONS {
        let mut stream = TcpStream::connect(addr).unwrap();
        if echo {
            echo_once(&mut stream);
        }
        held.push(stream);
    }
    wait_open(metrics, CONNECTIONS as u64);
    let after = heap_bytes();
    // The client's own allocations (the vector of streams) are counted too,
    // and are the same for both kinds.
    let per_connection = after.saturating_sub(before) as f64 / CONNECTIONS as f64;
    drop(held);
    wait_open(metrics, 0);
    per_connection
}

/// The most heap an idle connection may cost the server, of either kind.
/// In a release build it is 768 bytes: the connection's task (512 bytes,
/// four 128-byte blocks, as tokio aligns tasks to cache lines) and its
/// registration with the I/O driver (256 bytes). A debug build's tokio
/// `TcpStream` is 8 bytes longer, which takes the task over 512 bytes to the
/// next block: 896. (The test's own vector of streams adds some 4 bytes
/// to both, and the bounds leave 8.) Every byte added to an idle connection's task shows here once it
/// crosses a block. `cargo test --release -p echo-server --test idle_heap`
/// measures the release build.
const MAX_HEAP_PER_CONNECTION: f64 = if cfg!(debug_assertions) { 904.0 } else { 776.0 };

#[test]
fn an_idle_connection_costs_the_server_as_little_heap_whether_it_sent_or_not() {
    let _profiler = dhat::Profiler::builder().testing().build();
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(1)
        .enable_all()
        .build()
        .unwrap();
    let server = runtime
        .block_on(Server::bind(Config {
            listen: SocketAddr::from(([127, 0, 0, 1], 0)),
            ..Config::default()
        }))
        .unwrap();
    let (addr, metrics): (SocketAddr, Arc<Metrics>) =
        (server.local_addr(), Arc::clone(server.metrics()));
    runtime.spawn(server.run(std::future::pending()));

    // One connection first, so that what is allocated once is not counted.
    let mut warm = TcpStream::connect(addr).unwrap();
    echo_once(&mut warm);
    drop(warm);
    wait_open(&metrics, 0);

    let never_sent = bytes_per_connection(addr, &metrics, false);
    let echoed_once = bytes_per_connection(addr, &metrics, true);
    eprintln!(
        "{CONNECTIONS} idle connections: {never_sent:.0} bytes of heap each when they never \
         sent a byte, {echoed_once:.0} after one echo"
    );
    // A connection waiting for its first byte holds no relay buffer (64 KiB
    // of heap, of which a page is touched and shows in the RSS).
    for (kind, bytes) in [("never sent", never_sent), ("echoed once", echoed_once)] {
        assert!(
            bytes <= MAX_HEAP_PER_CONNECTION,
            "{kind}: {bytes:.0} bytes per connection"
        );
    }
}
