//! The server's memory, read from /proc, under clients that would make a
//! careless server grow: one that never reads its echoes, and many that sit
//! idle. These assert bytes of memory, not time.

mod support;

use std::io::{Read, Write};
use std::net::TcpStream;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::thread;
use std::time::{Duration, Instant};

use echo_testkit::{deadline, wait_until};
use support::{DEADLINE, server_process};

const MIB: u64 = 1024 * 1024;

/// Frame `index`'s payload: alternately 1 MiB (larger than the relay buffer)
/// and 4 KiB, filled with a pattern that makes any lost or moved byte show.
fn payload(index: usize) -> Vec<u8> {
    let len = if index % 2 == 0 { 1 << 20 } else { 4096 };
    (0..len).map(|i| (i * 31 + index * 7) as u8).collect()
}

#[test]
fn a_client_that_writes_64_mib_without_reading_costs_the_server_little() {
    let (server, addr) = server_process(&[], &[("RUST_LOG", "warn")]);
    let mut stream = TcpStream::connect(addr).unwrap();
    stream.set_read_timeout(Some(DEADLINE)).unwrap();
    echo_proto::write_frame(&mut stream, b"warm up").unwrap();
    echo_proto::read_frame(&mut stream, 64).unwrap();
    let baseline = server.rss_kib().unwrap();

    // 64 frames of 1 MiB and 64 of 4 KiB: a little over 64 MiB.
    let frames = 128;
    let written = Arc::new(AtomicU64::new(0));
    let mut writer = stream.try_clone().unwrap();
    let progress = Arc::clone(&written);
    let writing = thread::spawn(move || {
        for index in 0..frames {
            let payload = payload(index);
            echo_proto::write_frame(&mut writer, &payload).unwrap();
            progress.fetch_add(payload.len() as u64 + 4, Ordering::Relaxed);
        }
    });

    // Wait until TCP flow control has stopped the writer: no progress for a
    // while, well before everything is written.
    let mut last = (u64::MAX, Instant::now());
    wait_until(deadline(), || {
        let now = written.load(Ordering::Relaxed);
        if now != last.0 {
            last = (now, Instant::now());
        }
        last.1.elapsed() > Duration::from_millis(300)
    })
    .expect("the writer stalls");
    assert!(
        written.load(Ordering::Relaxed) < 32 * MIB,
        "the server kept reading"
    );
    let while_stalled = server.rss_kib().unwrap();

    // Now read: every byte comes back, in order.
    for index in 0..frames {
        let echo = echo_proto::read_frame(&mut stream, 2 << 20)
            .unwrap()
            .expect("an echo");
        assert!(echo == payload(index), "frame {index} came back different");
    }
    writing.join().unwrap();

    let growth_stalled = while_stalled.saturating_sub(baseline);
    let growth_peak = server.peak_rss_kib().unwrap().saturating_sub(baseline);
    eprintln!(
        "RSS growth: {growth_stalled} KiB while the client did not read, {growth_peak} KiB at peak"
    );
    assert!(
        growth_stalled < 8 * 1024,
        "grew {growth_stalled} KiB while the client did not read"
    );
    assert!(growth_peak < 8 * 1024, "grew {growth_peak} KiB at peak");
}

#[test]
fn an_idle_connection_costs_under_2_kib() {
    let connections = idle_connection_budget();
    // At the default log level, as users run it; the limit leaves room for
    // the warm-up connection.
    let (server, addr) = server_process(&["--max-connections", "20000"], &[("RUST_LOG", "info")]);
    let mut warm = TcpStream::connect(addr).unwrap();
    exchange(&mut warm);
    let baseline = server.rss_kib().unwrap();

    // Each connection echoes one frame, so it has certainly been accepted and
    // served, then sits idle.
    let mut idle = Vec::with_capacity(connections);
    for _ in 0..connections {
        let mut stream = TcpStream::connect(addr).unwrap();
        exchange(&mut stream);
        idle.push(stream);
    }
    let per_connection =
        (server.rss_kib().unwrap().saturating_sub(baseline)) as f64 * 1024.0 / connections as f64;
    eprintln!("{connections} idle connections: {per_connection:.0} bytes of server RSS each");
    assert!(
        per_connection < 2048.0,
        "{per_connection:.0} bytes per idle connection"
    );

    // And they are all still served.
    for stream in idle.iter_mut().step_by(97) {
        exchange(stream);
    }
}

fn exchange(stream: &mut TcpStream) {
    stream.set_read_timeout(Some(DEADLINE)).unwrap();
    stream.write_all(b"\x00\x00\x00\x01!").unwrap();
    let mut echo = [0; 5];
    stream.read_exact(&mut echo).unwrap();
    assert_eq!(&echo, b"\x00\x00\x00\x01!");
}

/// How many idle connections this process can hold: 10,000, or fewer if the
/// file descriptor limit cannot be raised that far (the server, a child,
/// inherits the raised limit).
fn idle_connection_budget() -> usize {
    use nix::sys::resource::{Resource, getrlimit, setrlimit};
    let wanted = 10_000 + 100;
    let (soft, hard) = getrlimit(Resource::RLIMIT_NOFILE).unwrap();
    if soft < wanted {
        let raised = wanted.min(hard);
        setrlimit(Resource::RLIMIT_NOFILE, raised, hard).unwrap();
    }
    let (soft, _) = getrlimit(Resource::RLIMIT_NOFILE).unwrap();
    let budget = (soft.saturating_sub(100) as usize).min(10_000);
    assert!(
        budget >= 1_000,
        "the file descriptor limit ({soft}) is too low to measure"
    );
    budget
}
