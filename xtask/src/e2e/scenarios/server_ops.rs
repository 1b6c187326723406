//! Scenarios for running the server in production: raw and UDP echo, the
//! connection limit and the idle timeout, memory under a client that does
//! not read, JSON logs, metrics, and a client written in another language
//! from the protocol's specification alone.

use std::ffi::OsString;
use std::io::{self, Read, Write};
use std::net::{Shutdown, SocketAddr, TcpStream, UdpSocket};
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicU64, Ordering};
use std::thread;
use std::time::{Duration, Instant};

use anyhow::{Context, Result, bail, ensure};

use super::{QUICK_EXIT, Scenario};
use crate::e2e::harness::{
    Closed, Ctx, Deadlined, Listener, connect, describe_difference, echo_all,
    expect_closed_silently, expect_eof, memory_kib, pattern, time_left, write_while_reading,
};

/// This topic's scenarios, in the order they run.
pub(super) const SCENARIOS: &[Scenario] = &[
    Scenario {
        name: "raw-one-recv",
        run: raw_one_recv,
    },
    Scenario {
        name: "udp-datagrams",
        run: udp_datagrams,
    },
    Scenario {
        name: "connection-limit",
        run: connection_limit,
    },
    Scenario {
        name: "idle-timeout",
        run: idle_timeout,
    },
    Scenario {
        name: "non-reading-client-memory",
        run: non_reading_client_memory,
    },
    Scenario {
        name: "metrics-scrape",
        run: metrics_scrape,
    },
    Scenario {
        name: "json-logs",
        run: json_logs,
    },
    Scenario {
        name: "python-interop",
        run: python_interop,
    },
];

const MIB: usize = 1024 * 1024;

/// How long to wait between two looks at something that changes on its own,
/// such as a connection slot becoming free or a counter moving.
const POLL_INTERVAL: Duration = Duration::from_millis(10);

/// How long the server's counters may take to settle after the client has
/// seen the last connection end, since they are updated after it closes.
const SETTLE_TIMEOUT: Duration = Duration::from_secs(5);

fn raw_one_recv(ctx: &Ctx<'_>) -> Result<()> {
    ctx.with_server(&["--mode", "raw"], |addr| {
        let stream = connect(addr, ctx.deadline)?;
        stream.set_nodelay(true)?;
        let mut conn = Deadlined::new(&stream, ctx.deadline);

        // What a classic echo client does: one write, one read of whatever
        // comes back. Framing would add a header, and buffering would hold
        // the bytes back; either fails here.
        conn.write_all(b"Hello, world")?;
        let mut buf = [0; 1024];
        let n = conn.read(&mut buf)?;
        ensure!(
            buf[..n] == *b"Hello, world",
            "expected one recv(1024) to return \"Hello, world\", got \"{}\"",
            buf[..n].escape_ascii()
        );

        // Bytes a framed server would take for a header announcing 4 GiB,
        // every byte value, and more than the socket buffers hold.
        let mut binary = vec![0xff; 4];
        binary.extend(0..=u8::MAX);
        binary.extend(pattern(862, MIB));
        write_while_reading(
            &stream,
            || Ok(Deadlined::new(&stream, ctx.deadline).write_all(&binary)?),
            || {
                let mut echo = vec![0; binary.len()];
                Deadlined::new(&stream, ctx.deadline)
                    .read_exact(&mut echo)
                    .context("reading the echo of the binary bytes")?;
                ensure!(
                    echo == binary,
                    "the binary bytes came back different: {}",
                    describe_difference(&binary, &echo)
                );
                Ok(())
            },
        )?;

        // Half-close: what was sent still comes back, then the end of stream
        // and nothing else.
        let last = b"the last words".to_vec();
        write_while_reading(
            &stream,
            || {
                Deadlined::new(&stream, ctx.deadline).write_all(&last)?;
                Ok(stream.shutdown(Shutdown::Write)?)
            },
            || {
                let mut rest = Vec::new();
                Deadlined::new(&stream, ctx.deadline)
                    .read_to_end(&mut rest)
                    .context("reading to the end after a half-close")?;
                ensure!(
                    rest == last,
                    "after a half-close, expected \"{}\" and the end of stream, got \"{}\"",
                    last.escape_ascii(),
                    rest.escape_ascii()
                );
                Ok(())
            },
        )
    })
}

fn udp_datagrams(ctx: &Ctx<'_>) -> Result<()> {
    // UDP echo is the same in both modes: the mode is about TCP.
    for mode in ["framed", "raw"] {
        ctx.with_server_stopped(&["--mode", mode, "--udp", "127.0.0.1:0"], |server| {
            udp_echoes(server.addr_of(Listener::Udp)?, ctx.deadline)
        })
        .with_context(|| format!("with --mode {mode}"))?;
    }
    Ok(())
}

/// Checks that `server` answers datagrams of every size to their senders.
fn udp_echoes(server: SocketAddr, deadline: Instant) -> Result<()> {
    let client = udp_client()?;
    // Empty, small, larger than a page, and the largest UDP payload over IPv4.
    for payload in [
        Vec::new(),
        b"ping".to_vec(),
        pattern(8, 8192),
        pattern(65_507, 65_507),
    ] {
        client
            .send_to(&payload, server)
            .with_context(|| format!("could not send a datagram of {} bytes", payload.len()))?;
        expect_datagram(&client, server, &payload, deadline)?;
    }

    // Two clients sending at once each get their own answer.
    let (first, second) = (udp_client()?, udp_client()?);
    first.send_to(b"from the first client", server)?;
    second.send_to(b"from the second client", server)?;
    expect_datagram(&first, server, b"from the first client", deadline)
        .context("the first of two clients")?;
    expect_datagram(&second, server, b"from the second client", deadline)
        .context("the second of two clients")
}

/// A UDP socket on a free loopback port.
fn udp_client() -> Result<UdpSocket> {
    UdpSocket::bind("127.0.0.1:0").context("could not bind a UDP socket to 127.0.0.1:0")
}

/// Receives one datagram on `socket` and checks that `server` sent it and
/// that it holds `expected`.
fn expect_datagram(
    socket: &UdpSocket,
    server: SocketAddr,
    expected: &[u8],
    deadline: Instant,
) -> Result<()> {
    socket.set_read_timeout(Some(time_left(deadline)?))?;
    // One byte more than the largest datagram, so a longer answer would show.
    let mut buf = vec![0; 65_536];
    let (len, from) = socket.recv_from(&mut buf).with_context(|| {
        format!(
            "waiting for the answer to a datagram of {} bytes",
            expected.len()
        )
    })?;
    ensure!(
        from == server,
        "the answer came from {from}, not from the server's {server}"
    );
    ensure!(
        buf[..len] == *expected,
        "a datagram came back different: {}",
        describe_difference(expected, &buf[..len])
    );
    Ok(())
}

fn connection_limit(ctx: &Ctx<'_>) -> Result<()> {
    let echo = |stream: &TcpStream, message: &str| {
        echo_all(stream, &[message.as_bytes().to_vec()], ctx.deadline, |_| {
            Ok(())
        })
    };
    let output = ctx.with_server_stopped(&["--max-connections", "2"], |server| {
        let addr = server.addr();
        // Each echo proves that the server is serving that connection, so
        // the limit is reached before the third one connects.
        let first = connect(addr, ctx.deadline)?;
        echo(&first, "first").context("the first connection")?;
        let second = connect(addr, ctx.deadline)?;
        echo(&second, "second").context("the second connection")?;

        let third = connect(addr, ctx.deadline)?;
        // A frame the server must not answer. The write itself may fail if
        // the server has already reset the connection.
        let _ = Deadlined::new(&third, ctx.deadline).write_all(b"\0\0\0\x05third");
        expect_closed_silently(&third, ctx.deadline)
            .context("the connection over the limit of two")?;

        echo(&first, "first again").context("the first connection, after the third")?;
        echo(&second, "second again").context("the second connection, after the third")?;

        // Once the first is closed, its place is free again. The server frees
        // it just after closing, so a client may be turned away for a moment
        // after it has seen the end of stream.
        first.shutdown(Shutdown::Write)?;
        expect_eof(&first, ctx.deadline)?;
        drop(first);
        served_again(addr, ctx.deadline).context("after one of two connections closed")
    })?;
    output.expect_stderr_contains("connection limit")
}

/// Connects to `addr` until a connection is served, or the deadline passes.
fn served_again(addr: SocketAddr, deadline: Instant) -> Result<()> {
    loop {
        let stream = connect(addr, deadline)?;
        let attempt = echo_all(&stream, &[b"served again".to_vec()], deadline, |_| Ok(()));
        match attempt {
            Ok(()) => return Ok(()),
            Err(error) if Instant::now() >= deadline => {
                return Err(error.context("no new connection was served before the deadline"));
            }
            Err(_) => thread::sleep(POLL_INTERVAL),
        }
    }
}

fn idle_timeout(ctx: &Ctx<'_>) -> Result<()> {
    ctx.with_server_stopped(&["--idle-timeout", "0.3"], |server| {
        let addr = server.addr();
        let silent = connect(addr, ctx.deadline)?;
        let in_header = connect(addr, ctx.deadline)?;
        Deadlined::new(&in_header, ctx.deadline).write_all(&[0, 0])?;
        let in_payload = connect(addr, ctx.deadline)?;
        // A header announcing 10 bytes, and 4 of them.
        Deadlined::new(&in_payload, ctx.deadline).write_all(b"\0\0\0\x0ahalf")?;

        // Meanwhile a connection that exchanges a message every 100 ms for a
        // second is never idle for the timeout, and stays open. The pauses
        // are the behaviour under test, not a wait for something.
        let active = connect(addr, ctx.deadline)?;
        let started = Instant::now();
        for n in 0.. {
            echo_all(
                &active,
                &[format!("message {n}").into_bytes()],
                ctx.deadline,
                |_| Ok(()),
            )
            .with_context(|| {
                format!(
                    "the active connection, message {n}, {:?} after the first",
                    started.elapsed()
                )
            })?;
            if started.elapsed() >= Duration::from_secs(1) {
                break;
            }
            thread::sleep(Duration::from_millis(100));
        }

        for (name, stream) in [
            ("silent", &silent),
            ("stalled after 2 header bytes", &in_header),
            ("stalled inside a payload", &in_payload),
        ] {
            let closed = expect_closed_silently(stream, ctx.deadline)
                .with_context(|| format!("the {name} connection"))?;
            ensure!(
                closed == Closed::Eof,
                "the {name} connection was reset instead of closed"
            );
        }
        Ok(())
    })?;
    Ok(())
}

/// The frames the non-reading client sends: 32 rounds of one 1 MiB frame,
/// larger than the server's relay buffer, then 256 frames of 4 KiB: 64 MiB
/// of payload in all.
const MEMORY_FRAMES: usize = 32 * 257;

/// How much the server's resident memory may grow under that client. The
/// socket buffers that fill up belong to the kernel; the server itself should
/// hold little more than a relay buffer for the connection.
const MEMORY_GROWTH_LIMIT_KIB: u64 = 8 * 1024;

/// How long the writer must make no progress to count as stalled.
const STALL: Duration = Duration::from_millis(300);

/// Deterministic frames that differ from each other, cheap to make: each
/// starts with its index and goes on with noise taken at an offset of its
/// own, so a lost, repeated or moved frame or byte shows.
struct Workload {
    noise: Vec<u8>,
}

impl Workload {
    fn new() -> Self {
        Workload {
            noise: pattern(0x6d65_6d21, 2 * MIB),
        }
    }

    fn frame(&self, index: usize) -> Vec<u8> {
        let len = if index % 257 == 0 { MIB } else { 4096 };
        let start = (index * 4099) % MIB;
        let index_bytes = u32::try_from(index).unwrap_or(u32::MAX).to_be_bytes();
        index_bytes
            .iter()
            .chain(&self.noise[start..start + len - index_bytes.len()])
            .copied()
            .collect()
    }
}

/// A writer that counts the bytes each write moves, for another thread to
/// watch.
struct Counted<'a, W> {
    inner: W,
    written: &'a AtomicU64,
}

impl<W: Write> Write for Counted<'_, W> {
    fn write(&mut self, buf: &[u8]) -> io::Result<usize> {
        let n = self.inner.write(buf)?;
        self.written.fetch_add(n as u64, Ordering::Relaxed);
        Ok(n)
    }

    fn flush(&mut self) -> io::Result<()> {
        self.inner.flush()
    }
}

fn non_reading_client_memory(ctx: &Ctx<'_>) -> Result<()> {
    let workload = Workload::new();
    ctx.with_server_stopped(&[], |server| {
        let pid = server.pid()?;
        let stream = connect(server.addr(), ctx.deadline)?;
        // The warm-up makes the server set up what any connection needs,
        // including a relay buffer filled by a frame larger than it.
        echo_all(
            &stream,
            &[b"warm up".to_vec(), pattern(1, MIB)],
            ctx.deadline,
            |_| Ok(()),
        )
        .context("the warm-up echo")?;
        let baseline = memory_kib(pid, "VmRSS")?;

        let written = AtomicU64::new(0);
        let (stalled_at, while_stalled) = write_while_reading(
            &stream,
            || {
                let mut out = Counted {
                    inner: Deadlined::new(&stream, ctx.deadline),
                    written: &written,
                };
                for index in 0..MEMORY_FRAMES {
                    echo_proto::write_frame(&mut out, &workload.frame(index))
                        .with_context(|| format!("could not send frame {index}"))?;
                }
                Ok(())
            },
            || {
                let stalled_at = wait_for_stall(&written, ctx.deadline)?;
                let while_stalled = memory_kib(pid, "VmRSS")?;
                // Now read: every frame comes back, in order.
                let mut reader = Deadlined::new(&stream, ctx.deadline);
                for index in 0..MEMORY_FRAMES {
                    let sent = workload.frame(index);
                    let echo = reader
                        .read_frame()
                        .with_context(|| format!("reading echo {index}"))?
                        .with_context(|| format!("the connection ended before echo {index}"))?;
                    ensure!(
                        echo == sent,
                        "echo {index} differs from the frame sent: {}",
                        describe_difference(&sent, &echo)
                    );
                }
                Ok((stalled_at, while_stalled))
            },
        )?;
        let peak = memory_kib(pid, "VmHWM")?;
        check_growth(baseline, while_stalled, peak, stalled_at)
    })?;
    Ok(())
}

/// Waits until `written` has not moved for [`STALL`], and returns it.
fn wait_for_stall(written: &AtomicU64, deadline: Instant) -> Result<u64> {
    let mut last = (written.load(Ordering::Relaxed), Instant::now());
    loop {
        thread::sleep(POLL_INTERVAL);
        let now = written.load(Ordering::Relaxed);
        if now != last.0 {
            last = (now, Instant::now());
        } else if last.1.elapsed() >= STALL {
            return Ok(now);
        }
        ensure!(
            Instant::now() < deadline,
            "the client's writes never stalled: {now} bytes written by the deadline"
        );
    }
}

/// Checks the server's memory growth from `baseline` (all in KiB), both
/// while the client's writes were stalled and at the peak.
fn check_growth(baseline: u64, while_stalled: u64, peak: u64, stalled_at: u64) -> Result<()> {
    let limit = MEMORY_GROWTH_LIMIT_KIB;
    let stalled_growth = while_stalled.saturating_sub(baseline);
    let peak_growth = peak.saturating_sub(baseline);
    ensure!(
        stalled_growth < limit && peak_growth < limit,
        "the server's memory grew too much under a client that wrote {} MiB without reading: \
         VmRSS {baseline} KiB after the warm-up, {while_stalled} KiB while the writes were \
         stalled (+{stalled_growth} KiB), VmHWM {peak} KiB at the end (+{peak_growth} KiB); \
         the limit is +{limit} KiB",
        stalled_at / MIB as u64
    );
    Ok(())
}

/// The options the metrics scenario starts the server with.
const METRICS_ARGS: [&str; 8] = [
    "--metrics",
    "127.0.0.1:0",
    "--udp",
    "127.0.0.1:0",
    "--max-connections",
    "1",
    "--max-frame",
    "16",
];

fn metrics_scrape(ctx: &Ctx<'_>) -> Result<()> {
    let help = ctx.run(&ctx.bins.server, ["--help"], QUICK_EXIT)?;
    ensure!(help.status.success(), "echo-server --help failed: {help}");
    ensure!(
        String::from_utf8_lossy(&help.stdout).contains("--metrics"),
        "echo-server has no --metrics option: its --help does not mention it"
    );

    ctx.with_server_stopped(&METRICS_ARGS, |server| {
        let addr = server.addr();
        let metrics = server.addr_of(Listener::Metrics)?;

        // Before anything happens, every series is there, at zero.
        let first = http_get(metrics, "/metrics", ctx.deadline)?;
        first.expect_status("200")?;
        ensure!(
            sample(&first.body, "echo_connections_accepted_total") == Some(0.0),
            "the first scrape does not show 0 connections accepted: {:?}",
            first.body
        );

        // An oversize frame (16 bytes at most) on the first connection.
        let oversize = connect(addr, ctx.deadline)?;
        let _ = Deadlined::new(&oversize, ctx.deadline).write_all(b"\0\0\0\x11");
        expect_closed_silently(&oversize, ctx.deadline).context("the oversize frame")?;
        drop(oversize);

        // Three echoes of 5 bytes on the next. With a limit of one, it is
        // turned away until the server has freed the first one's place,
        // which it does just after closing it: each time counts.
        let mut limit_rejections = 0;
        let echoing = loop {
            let stream = connect(addr, ctx.deadline)?;
            match echo_all(&stream, &[b"one..".to_vec()], ctx.deadline, |_| Ok(())) {
                Ok(()) => break stream,
                Err(error) if Instant::now() >= ctx.deadline => {
                    return Err(error.context("no second connection was served"));
                }
                Err(_) => {
                    limit_rejections += 1;
                    thread::sleep(POLL_INTERVAL);
                }
            }
        };
        echo_all(
            &echoing,
            &[b"two..".to_vec(), b"three".to_vec()],
            ctx.deadline,
            |_| Ok(()),
        )?;

        // While it is open, the limit turns another connection away.
        let turned_away = connect(addr, ctx.deadline)?;
        expect_closed_silently(&turned_away, ctx.deadline)
            .context("a connection over the limit of one")?;
        limit_rejections += 1;

        echoing.shutdown(Shutdown::Write)?;
        expect_eof(&echoing, ctx.deadline)?;

        // One datagram of 7 bytes.
        let udp = udp_client()?;
        let udp_server = server.addr_of(Listener::Udp)?;
        udp.send_to(b"counted", udp_server)?;
        expect_datagram(&udp, udp_server, b"counted", ctx.deadline)?;

        let expected: [(&str, f64); 14] = [
            ("echo_connections_open", 0.0),
            ("echo_connections_accepted_total", 2.0),
            (
                r#"echo_connections_rejected_total{reason="limit"}"#,
                f64::from(limit_rejections),
            ),
            (r#"echo_connections_rejected_total{reason="idle"}"#, 0.0),
            (
                r#"echo_connections_rejected_total{reason="protocol_error"}"#,
                1.0,
            ),
            (
                r#"echo_connections_closed_total{reason="client_closed"}"#,
                1.0,
            ),
            (
                r#"echo_connections_closed_total{reason="protocol_error"}"#,
                1.0,
            ),
            (
                r#"echo_connections_closed_total{reason="idle_timeout"}"#,
                0.0,
            ),
            ("echo_frames_echoed_total", 3.0),
            ("echo_bytes_echoed_total", 3.0 * (4.0 + 5.0)),
            (r#"echo_protocol_errors_total{kind="frame_too_large"}"#, 1.0),
            (r#"echo_protocol_errors_total{kind="truncated"}"#, 0.0),
            ("echo_udp_datagrams_total", 1.0),
            ("echo_udp_bytes_total", 7.0),
        ];
        expect_samples(metrics, &expected, ctx.deadline)?;

        http_get(metrics, "/nothing-here", ctx.deadline)?
            .expect_status("404")
            .context("GET /nothing-here")
    })?;
    Ok(())
}

/// Scrapes `metrics` until every sample has its expected value, which it
/// must reach within [`SETTLE_TIMEOUT`]: the server counts a connection's end
/// just after the client has seen it.
fn expect_samples(metrics: SocketAddr, expected: &[(&str, f64)], deadline: Instant) -> Result<()> {
    let settle_deadline = deadline.min(Instant::now() + SETTLE_TIMEOUT);
    loop {
        let scrape = http_get(metrics, "/metrics", deadline)?;
        scrape.expect_status("200")?;
        ensure!(
            scrape.body.ends_with("# EOF\n"),
            "the exposition does not end with \"# EOF\": {:?}",
            scrape.body
        );
        let wrong: Vec<String> = expected
            .iter()
            .filter_map(|&(series, value)| {
                let got = sample(&scrape.body, series);
                (got != Some(value)).then(|| match got {
                    Some(got) => format!("{series} is {got}, expected {value}"),
                    None => format!("{series} is missing, expected {value}"),
                })
            })
            .collect();
        if wrong.is_empty() {
            return Ok(());
        }
        if Instant::now() >= settle_deadline {
            bail!(
                "the metrics do not match what the scenario did: {}; the scrape was {:?}",
                wrong.join("; "),
                scrape.body
            );
        }
        thread::sleep(POLL_INTERVAL);
    }
}

/// The value of `series` (a metric name with its labels, as the exposition
/// writes them) in an exposition, if it is there.
fn sample(exposition: &str, series: &str) -> Option<f64> {
    exposition.lines().find_map(|line| {
        let value = line.strip_prefix(series)?.strip_prefix(' ')?;
        // A timestamp may follow the value.
        value.split(' ').next()?.parse().ok()
    })
}

/// An HTTP response, read to its end.
#[derive(Debug)]
struct HttpResponse {
    /// The first line, such as `HTTP/1.1 200 OK`.
    status_line: String,
    body: String,
}

impl HttpResponse {
    fn expect_status(&self, code: &str) -> Result<()> {
        ensure!(
            self.status_line.split(' ').nth(1) == Some(code),
            "expected HTTP status {code}, got {:?} with body {:?}",
            self.status_line,
            self.body
        );
        Ok(())
    }
}

/// Sends `GET PATH` to `addr` and reads the response to the end of stream,
/// since the server closes after each response.
fn http_get(addr: SocketAddr, path: &str, deadline: Instant) -> Result<HttpResponse> {
    let stream = connect(addr, deadline)?;
    let mut conn = Deadlined::new(&stream, deadline);
    write!(
        conn,
        "GET {path} HTTP/1.1\r\nHost: {addr}\r\nConnection: close\r\n\r\n"
    )
    .with_context(|| format!("could not send GET {path} to {addr}"))?;
    let mut response = Vec::new();
    conn.read_to_end(&mut response)
        .with_context(|| format!("reading the response to GET {path}"))?;
    let response = String::from_utf8(response)
        .with_context(|| format!("the response to GET {path} is not UTF-8"))?;
    let Some((head, body)) = response.split_once("\r\n\r\n") else {
        bail!("the response to GET {path} has no end of head: {response:?}");
    };
    Ok(HttpResponse {
        status_line: head.lines().next().unwrap_or_default().to_owned(),
        body: body.to_owned(),
    })
}

fn json_logs(ctx: &Ctx<'_>) -> Result<()> {
    let output = ctx.with_server_stopped(&["--log-format", "json"], |server| {
        let stream = connect(server.addr(), ctx.deadline)?;
        echo_all(&stream, &[b"logged".to_vec()], ctx.deadline, |stream| {
            Ok(stream.shutdown(Shutdown::Write)?)
        })?;
        expect_eof(&stream, ctx.deadline)
    })?;
    let log = output.stderr_text();
    ensure!(!log.trim().is_empty(), "the server logged nothing");
    if let Some(line) = log.lines().find(|line| !is_json_log_line(line)) {
        bail!("a log line is not a JSON object with a level: {line:?}");
    }
    ensure!(
        log.lines().any(|line| line.contains("connection opened")),
        "no log line says \"connection opened\": {log:?}"
    );
    Ok(())
}

/// Whether `line` looks like one JSON log record: an object with a level.
/// A shallow check, enough to tell JSON logs from text ones without a JSON
/// parser.
fn is_json_log_line(line: &str) -> bool {
    line.starts_with('{') && line.ends_with('}') && line.contains("\"level\":")
}

/// How long the Python client may take. Its socket timeouts are shorter.
const INTEROP_TIMEOUT: Duration = Duration::from_secs(20);

fn python_interop(ctx: &Ctx<'_>) -> Result<()> {
    let Some(python) = find_on_path("python3") else {
        bail!("python3 is not on PATH: this scenario runs a Python client against the server");
    };
    let script = Path::new(env!("CARGO_MANIFEST_DIR")).join("interop/framed_client.py");
    ctx.with_server(&[], |addr| {
        let args: [OsString; 3] = [
            script.clone().into(),
            addr.ip().to_string().into(),
            addr.port().to_string().into(),
        ];
        ctx.run(&python, args, INTEROP_TIMEOUT)?
            .expect(0, b"ok\n")
            .context("the Python client written from PROTOCOL.md")
    })
}

/// The first `program` in the directories of `PATH`.
fn find_on_path(program: &str) -> Option<PathBuf> {
    std::env::split_paths(&std::env::var_os("PATH")?)
        .map(|dir| dir.join(program))
        .find(|path| path.is_file())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn finds_samples_in_an_exposition() {
        let exposition = "# TYPE echo_frames_echoed counter\n\
                          echo_frames_echoed_total 3\n\
                          echo_connections_rejected_total{reason=\"limit\"} 1\n\
                          echo_connections_open 0 1700000000\n\
                          # EOF\n";
        assert_eq!(sample(exposition, "echo_frames_echoed_total"), Some(3.0));
        assert_eq!(
            sample(
                exposition,
                r#"echo_connections_rejected_total{reason="limit"}"#
            ),
            Some(1.0)
        );
        assert_eq!(sample(exposition, "echo_connections_open"), Some(0.0));
        // A name that is only the start of another is not that series.
        assert_eq!(sample(exposition, "echo_frames_echoed"), None);
        assert_eq!(sample(exposition, "echo_bytes_echoed_total"), None);
    }

    #[test]
    fn tells_json_log_lines_from_text_ones() {
        assert!(is_json_log_line(
            r#"{"timestamp":"x","level":"INFO","fields":{"message":"connection opened"}}"#
        ));
        assert!(!is_json_log_line(
            "2025-01-01T00:00:00Z  INFO connection opened"
        ));
        assert!(!is_json_log_line(r#"{"message":"no level"}"#));
        assert!(!is_json_log_line(r#"{"level":"INFO""#));
    }

    #[test]
    fn workload_frames_are_distinct_and_sized() {
        let workload = Workload::new();
        let sizes: usize = (0..MEMORY_FRAMES)
            .map(|index| if index % 257 == 0 { MIB } else { 4096 })
            .sum();
        assert_eq!(sizes, 64 * MIB);
        assert_eq!(workload.frame(0).len(), MIB);
        assert_eq!(workload.frame(1).len(), 4096);
        assert_eq!(workload.frame(MEMORY_FRAMES - 1).len(), 4096);
        assert_ne!(workload.frame(1), workload.frame(2));
        assert_ne!(workload.frame(1)[4..], workload.frame(2)[4..]);
        assert_eq!(workload.frame(5), workload.frame(5));
    }

    #[test]
    fn memory_growth_is_checked_while_stalled_and_at_the_peak() {
        assert!(check_growth(10_000, 12_000, 14_000, 0).is_ok());
        let stalled = check_growth(10_000, 19_000, 19_000, 20 * MIB as u64).unwrap_err();
        assert!(stalled.to_string().contains("+9000 KiB"), "{stalled}");
        assert!(stalled.to_string().contains("wrote 20 MiB"), "{stalled}");
        assert!(check_growth(10_000, 11_000, 30_000, 0).is_err());
    }
}
