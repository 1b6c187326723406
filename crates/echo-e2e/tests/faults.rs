//! Fault injection against the real server: clients that misbehave in every
//! way a network or a careless program can, beside a well-behaved client
//! that must keep getting exact echoes the whole time; a storm of
//! connections; SIGTERM under load; and a server out of file descriptors.
//! After each fault the server's open file descriptors (and, after the
//! storm, its memory), read from `/proc`, must come back to where they were.

use std::io::{self, Write};
use std::net::{Shutdown, SocketAddr, TcpStream};
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::thread::{self, JoinHandle};
use std::time::{Duration, Instant};

use anyhow::{Context, Result, anyhow, bail, ensure};
use echo_e2e::start_server;
use echo_testkit::wire::{
    self, Closed, Deadlined, connect, echo_all, encode, expect_closed_silently, expect_eof,
    pattern, read_echoes,
};
use echo_testkit::{Kind, Output, Process, Spawn, binary, deadline, wait_until};

const KIB: usize = 1024;

/// How long the server may take to let go of what a fault cost it, once
/// the fault is over.
const SETTLE_TIMEOUT: Duration = Duration::from_secs(10);

/// How many more file descriptors than before a fault the server may hold
/// once it has settled: none is expected, a couple are allowed for whatever
/// the runtime opens on its own.
const FD_MARGIN: usize = 2;

/// The payload sizes the well-behaved client cycles through: empty, tiny,
/// one just over a header, a page, exactly the server's relay buffer, and
/// one larger than it, which the server relays in pieces.
const WELL_BEHAVED_SIZES: [usize; 6] = [0, 1, 5, 4096, 64 * KIB, 70_000];

/// Sends SIGTERM and checks that the server exits 0 without a panic.
fn stop_cleanly(server: &mut Process, deadline: Instant) -> Output {
    let output = server.stop(deadline).unwrap();
    assert!(output.status.success(), "{output}");
    assert!(!output.stderr_text().contains("panicked"), "{output}");
    output
}

/// Starts a framed server with `args`, runs `fault` against it (given the
/// server, its address and the test's deadline), then stops it cleanly.
fn against_server(args: &[&str], fault: impl FnOnce(&Process, SocketAddr, Instant) -> Result<()>) {
    let deadline = deadline();
    let (mut server, [addr]) = start_server(args, [Kind::Framed], deadline).unwrap();
    fault(&server, addr, deadline).unwrap();
    stop_cleanly(&mut server, deadline);
}

/// The well-behaved client that runs beside every fault: one connection
/// exchanging frames one at a time, in varied sizes, on a thread of its own,
/// checking every echo to the byte.
struct WellBehaved {
    stop: Arc<AtomicBool>,
    echoes: Arc<AtomicU64>,
    thread: Option<JoinHandle<Result<()>>>,
}

impl WellBehaved {
    /// Connects and starts exchanging; returns once the server is serving
    /// it.
    fn start(addr: SocketAddr, deadline: Instant) -> Result<Self> {
        let stream = connect(addr, deadline).context("the well-behaved client")?;
        stream.set_nodelay(true)?;
        let stop = Arc::new(AtomicBool::new(false));
        let echoes = Arc::new(AtomicU64::new(0));
        let thread = {
            let (stop, echoes) = (Arc::clone(&stop), Arc::clone(&echoes));
            thread::spawn(move || exchange_until_stopped(&stream, &stop, &echoes, deadline))
        };
        let mut client = WellBehaved {
            stop,
            echoes,
            thread: Some(thread),
        };
        client
            .expect_progress(deadline)
            .context("before the fault")?;
        Ok(client)
    }

    /// Waits until the client has completed two more exchanges than it had,
    /// which proves that the server is serving it now (one exchange may
    /// already have been under way).
    fn expect_progress(&mut self, deadline: Instant) -> Result<()> {
        let start = self.echoes.load(Ordering::Relaxed);
        let progressed = || self.echoes.load(Ordering::Relaxed) >= start + 2;
        let stopped = || self.thread.as_ref().is_some_and(JoinHandle::is_finished);
        let waited = wait_until(deadline, || progressed() || stopped());
        let now = self.echoes.load(Ordering::Relaxed);
        if progressed() {
            return Ok(());
        }
        if stopped() {
            self.join()?;
            bail!("the well-behaved client stopped after {now} echoes");
        }
        waited.with_context(|| format!("the well-behaved client was stuck at {now} echoes"))
    }

    /// Stops the client, which closes its connection cleanly, and returns
    /// how many exact echoes it got.
    fn finish(mut self) -> Result<u64> {
        self.stop.store(true, Ordering::Relaxed);
        self.join()?;
        Ok(self.echoes.load(Ordering::Relaxed))
    }

    fn join(&mut self) -> Result<()> {
        match self.thread.take() {
            Some(thread) => thread
                .join()
                .unwrap_or_else(|_| Err(anyhow!("the well-behaved client panicked"))),
            None => Ok(()),
        }
    }
}

impl Drop for WellBehaved {
    /// On a failure elsewhere, tells the thread to stop after its current
    /// exchange rather than keep going until the deadline.
    fn drop(&mut self) {
        self.stop.store(true, Ordering::Relaxed);
    }
}

/// The well-behaved client's loop.
fn exchange_until_stopped(
    stream: &TcpStream,
    stop: &AtomicBool,
    echoes: &AtomicU64,
    deadline: Instant,
) -> Result<()> {
    let mut conn = Deadlined::new(stream, deadline);
    for index in 0u32.. {
        if stop.load(Ordering::Relaxed) {
            break;
        }
        let size = WELL_BEHAVED_SIZES[index as usize % WELL_BEHAVED_SIZES.len()];
        let frame = pattern(index, size);
        echo_proto::write_frame(&mut conn, &frame)
            .with_context(|| format!("the well-behaved client could not send frame {index}"))?;
        let echo = conn
            .read_frame()
            .with_context(|| format!("the well-behaved client, reading echo {index}"))?
            .with_context(|| {
                format!("the server closed the well-behaved client's connection at echo {index}")
            })?;
        ensure!(
            echo == frame,
            "the well-behaved client's echo {index} differs from its frame at byte {}",
            wire::first_difference(&frame, &echo)
        );
        echoes.fetch_add(1, Ordering::Relaxed);
    }
    stream.shutdown(Shutdown::Write)?;
    expect_eof(stream, deadline).context("the well-behaved client, closing")
}

/// Writes as much of `bytes` as the connection takes before it stops taking
/// more for a moment (because the server is not reading, or its echoes are
/// not being read). Either way is fine for a client that is about to
/// misbehave; only other errors are reported.
fn write_what_fits(stream: &TcpStream, bytes: &[u8], deadline: Instant) -> Result<()> {
    stream.set_write_timeout(Some(
        wire::time_left(deadline)?.min(Duration::from_millis(200)),
    ))?;
    let mut writer = stream;
    match writer.write_all(bytes) {
        Err(error) if !is_stall(&error) => Err(error).context("writing to the connection"),
        _ => Ok(()),
    }
}

/// Whether a write failed only because the connection takes no more for
/// now.
fn is_stall(error: &io::Error) -> bool {
    matches!(
        error.kind(),
        io::ErrorKind::WouldBlock | io::ErrorKind::TimedOut
    )
}

/// The wire bytes of a header announcing `len` payload bytes.
fn header(len: usize) -> [u8; 4] {
    u32::try_from(len).unwrap_or(u32::MAX).to_be_bytes()
}

/// Waits until the server holds no more than `at_most` file descriptors,
/// `before` being what it held before the fault.
fn expect_fds_at_most(
    server: &Process,
    at_most: usize,
    before: usize,
    deadline: Instant,
) -> Result<()> {
    let deadline = deadline.min(Instant::now() + SETTLE_TIMEOUT);
    let mut now = usize::MAX;
    wait_until(deadline, || {
        now = server.open_fds().unwrap_or(usize::MAX);
        now <= at_most
    })
    .with_context(|| {
        format!(
            "the server still holds {now} file descriptors, {before} before the fault \
             (at most {at_most} expected once it settles)"
        )
    })
}

/// The ways a client can reset its connection.
#[derive(Debug, Clone, Copy)]
enum ResetAt {
    /// Two bytes into a header.
    Header,
    /// Half-way through a frame that fits the server's relay buffer.
    Payload,
    /// Inside a frame larger than the relay buffer, which the server is
    /// relaying back in pieces that the client does not read.
    LargeFrame,
    /// With many echoes waiting for it: the client wrote frames and read
    /// none of their echoes.
    PendingEchoes,
}

/// How many times each kind of reset is done.
const RESET_ROUNDS: usize = 25;

/// Opens a connection, gets it to the point `at`, and resets it.
fn reset_connection(
    addr: SocketAddr,
    at: ResetAt,
    served_first: bool,
    deadline: Instant,
) -> Result<()> {
    let stream = connect(addr, deadline)?;
    if served_first {
        echo_all(&stream, &[b"served".to_vec()], deadline, |_| Ok(()))?;
    }
    let mut conn = Deadlined::new(&stream, deadline);
    match at {
        ResetAt::Header => conn.write_all(&header(1000)[..2])?,
        ResetAt::Payload => {
            conn.write_all(&header(1000))?;
            conn.write_all(&pattern(1, 500))?;
        }
        ResetAt::LargeFrame => {
            let mut bytes = header(1024 * KIB).to_vec();
            bytes.extend(pattern(2, 256 * KIB));
            write_what_fits(&stream, &bytes, deadline)?;
        }
        ResetAt::PendingEchoes => {
            let frames: Vec<Vec<u8>> = (0..64).map(|i| pattern(i, 4 * KIB)).collect();
            write_what_fits(&stream, &encode(&frames)?, deadline)?;
        }
    }
    Ok(wire::reset(stream)?)
}

#[test]
fn connections_reset_at_any_point_cost_the_server_nothing() {
    against_server(&[], |server, addr, deadline| {
        let mut client = WellBehaved::start(addr, deadline)?;
        let before = server.open_fds()?;
        for round in 0..RESET_ROUNDS {
            for at in [
                ResetAt::Header,
                ResetAt::Payload,
                ResetAt::LargeFrame,
                ResetAt::PendingEchoes,
            ] {
                // Every other time the connection is known to be served
                // before it misbehaves; otherwise the reset may reach the
                // server before it has even accepted the connection.
                let served_first = round % 2 == 0;
                reset_connection(addr, at, served_first, deadline)
                    .with_context(|| format!("round {round}, reset at {at:?}"))?;
            }
        }
        client
            .expect_progress(deadline)
            .context("after the resets")?;
        expect_fds_at_most(server, before + FD_MARGIN, before, deadline)?;
        client.finish()?;
        Ok(())
    });
}

/// How many clients of each kind the half-open test runs.
const HALF_OPEN_CLIENTS: usize = 20;

#[test]
fn half_closed_clients_get_their_echoes_and_are_let_go() {
    let frames = |n: usize| -> Vec<Vec<u8>> {
        (0..3)
            .map(|i| pattern((n * 3 + i) as u32, 100 * i))
            .collect()
    };
    against_server(&[], |server, addr, deadline| {
        let mut client = WellBehaved::start(addr, deadline)?;
        let before = server.open_fds()?;

        // Clients that send whole frames, then half of one, then shut down
        // their sending side: the whole frames come back, then the end of
        // the stream, and nothing of the half frame.
        for n in 0..HALF_OPEN_CLIENTS {
            let stream = connect(addr, deadline)?;
            let mut bytes = encode(&frames(n))?;
            bytes.extend_from_slice(&header(10));
            bytes.extend_from_slice(b"half");
            Deadlined::new(&stream, deadline).write_all(&bytes)?;
            stream.shutdown(Shutdown::Write)?;
            read_echoes(&stream, &frames(n), deadline)
                .and_then(|()| expect_eof(&stream, deadline))
                .with_context(|| format!("client {n}, which half-closed inside a frame"))?;
        }

        // Clients that send whole frames, shut down their sending side, and
        // then go quiet: they neither read nor close. The server must finish
        // with them and let go of their connections all the same.
        let mut quiet = Vec::new();
        for n in 0..HALF_OPEN_CLIENTS {
            let stream = connect(addr, deadline)?;
            Deadlined::new(&stream, deadline).write_all(&encode(&frames(n))?)?;
            stream.shutdown(Shutdown::Write)?;
            quiet.push(stream);
        }
        expect_fds_at_most(server, before + FD_MARGIN, before, deadline)
            .context("with half-closed clients that went quiet")?;
        client
            .expect_progress(deadline)
            .context("after the half-closed clients")?;
        // What the quiet clients never read was all sent.
        for (n, stream) in quiet.iter().enumerate() {
            read_echoes(stream, &frames(n), deadline)
                .and_then(|()| expect_eof(stream, deadline))
                .with_context(|| format!("quiet client {n}"))?;
        }
        client.finish()?;
        Ok(())
    });
}

/// How many clients connect and send nothing.
const SILENT_CLIENTS: usize = 100;

/// How many clients stop inside a frame, and how many never read.
const STALLED_CLIENTS: usize = 10;
const NON_READING_CLIENTS: usize = 4;

/// The most a non-reading client writes while waiting for the connection to
/// stop taking its frames.
const NON_READING_MAX: usize = 64 * KIB * KIB;

/// Writes frames that the client will never read the echoes of, until the
/// connection stops taking them: the server is then blocked writing echoes.
fn fill(stream: &TcpStream, n: usize, deadline: Instant) -> Result<()> {
    stream.set_write_timeout(Some(
        wire::time_left(deadline)?.min(Duration::from_millis(200)),
    ))?;
    let frame = encode(&[pattern(n as u32, 64 * KIB)])?;
    let mut written = 0;
    let mut writer = stream;
    while written < NON_READING_MAX {
        match writer.write(&frame) {
            Ok(n) => written += n,
            Err(error) if is_stall(&error) => return Ok(()),
            Err(error) => return Err(error).context("writing frames"),
        }
    }
    bail!("the connection took {written} bytes without its echoes being read and did not stop")
}

#[test]
fn idle_clients_of_every_kind_are_closed_at_the_idle_timeout() {
    against_server(&["--idle-timeout", "1"], |server, addr, deadline| {
        let mut client = WellBehaved::start(addr, deadline)?;
        let before = server.open_fds()?;

        let silent = (0..SILENT_CLIENTS)
            .map(|_| connect(addr, deadline))
            .collect::<Result<Vec<_>, _>>()?;
        let mut stalled = Vec::new();
        for n in 0..STALLED_CLIENTS {
            let stream = connect(addr, deadline)?;
            let mut bytes = header(1000).to_vec();
            bytes.extend(pattern(n as u32, 10 * n));
            Deadlined::new(&stream, deadline).write_all(&bytes)?;
            stalled.push(stream);
        }
        let mut non_reading = Vec::new();
        for n in 0..NON_READING_CLIENTS {
            let stream = connect(addr, deadline)?;
            fill(&stream, n, deadline).with_context(|| format!("non-reading client {n}"))?;
            non_reading.push(stream);
        }
        client
            .expect_progress(deadline)
            .context("beside the idle clients")?;

        // At the idle timeout the server lets every one of them go, though
        // none of them has closed.
        expect_fds_at_most(server, before + FD_MARGIN, before, deadline)
            .context("with idle clients")?;
        for (n, stream) in silent.iter().chain(&stalled).enumerate() {
            let closed = expect_closed_silently(stream, deadline)
                .with_context(|| format!("idle client {n}"))?;
            ensure!(
                closed == Closed::Eof,
                "idle client {n} was reset instead of closed"
            );
        }
        client
            .expect_progress(deadline)
            .context("after the idle clients were closed")?;
        client.finish()?;
        Ok(())
    });
}

/// How many connections the storm opens and closes, and on how many
/// threads.
const STORM_CONNECTIONS: usize = 5_000;
const STORM_THREADS: usize = 4;

/// How much the server's resident memory may stay above where it was before
/// the storm, once the storm is over.
const STORM_RSS_MARGIN_KIB: u64 = 8 * 1024;

/// How many more file descriptors than before the storm the server may hold
/// once it is over.
const STORM_FD_MARGIN: usize = 5;

/// One storm thread's share: connect and close at once, and every fourth
/// time send a frame first, whose echo finds the client gone.
fn storm(addr: SocketAddr, worker: usize, deadline: Instant) -> Result<()> {
    for n in 0..STORM_CONNECTIONS / STORM_THREADS {
        let stream = connect(addr, deadline)
            .with_context(|| format!("storm thread {worker}, connection {n}"))?;
        if n % 4 == 0 {
            // The server may already have seen the connection close.
            let _ = (&stream).write_all(b"\0\0\0\x05storm");
        }
        drop(stream);
    }
    Ok(())
}

#[test]
fn a_storm_of_connections_leaves_no_descriptor_or_memory_behind() {
    against_server(&[], |server, addr, deadline| {
        let mut client = WellBehaved::start(addr, deadline)?;
        let fds_before = server.open_fds()?;
        let rss_before = server.rss_kib()?;

        thread::scope(|scope| -> Result<()> {
            let storm: Vec<_> = (0..STORM_THREADS)
                .map(|worker| scope.spawn(move || storm(addr, worker, deadline)))
                .collect();
            let progress = client.expect_progress(deadline).context("during the storm");
            for worker in storm {
                worker
                    .join()
                    .unwrap_or_else(|_| Err(anyhow!("a storm thread panicked")))?;
            }
            progress
        })?;
        client
            .expect_progress(deadline)
            .context("after the storm")?;

        // Once the storm is over, the server gives back what it took.
        let (mut fds, mut rss) = (0, 0);
        wait_until(deadline.min(Instant::now() + SETTLE_TIMEOUT), || {
            fds = server.open_fds().unwrap_or(usize::MAX);
            rss = server.rss_kib().unwrap_or(u64::MAX);
            fds <= fds_before + STORM_FD_MARGIN && rss <= rss_before + STORM_RSS_MARGIN_KIB
        })
        .with_context(|| {
            format!(
                "after {STORM_CONNECTIONS} connections were opened and closed, the server holds \
                 {fds} file descriptors ({fds_before} before, at most +{STORM_FD_MARGIN} allowed) \
                 and VmRSS is {rss} KiB ({rss_before} KiB before, at most \
                 +{STORM_RSS_MARGIN_KIB} KiB allowed)"
            )
        })?;
        client.finish()?;
        Ok(())
    });
}

/// How many connections pipeline frames when SIGTERM comes.
const LOAD_CONNECTIONS: usize = 4;

/// How many echoes each connection must have had before the signal, so that
/// the load is well under way.
const LOAD_WARM_UP: u64 = 20;

/// The payload sizes of the load, in turn: from empty to larger than the
/// server's relay buffer.
const LOAD_SIZES: [usize; 8] = [0, 1, 17, 1000, 4096, 70_000, 300, 64 * KIB];

/// The frame that connection `connection` sends `index`-th.
fn load_frame(connection: usize, index: u64) -> Vec<u8> {
    let seed = (connection as u64) << 24 | (index & 0xff_ffff);
    pattern(
        u32::try_from(seed).unwrap_or(u32::MAX),
        LOAD_SIZES[(index % LOAD_SIZES.len() as u64) as usize],
    )
}

#[test]
fn load_frames_differ_by_connection_and_index_and_repeat_exactly() {
    assert_eq!(load_frame(1, 5), load_frame(1, 5));
    assert_ne!(load_frame(1, 4), load_frame(2, 4));
    assert_ne!(load_frame(1, 4), load_frame(1, 4 + LOAD_SIZES.len() as u64));
    let sizes: Vec<usize> = (0..8).map(|i| load_frame(0, i).len()).collect();
    assert_eq!(sizes, LOAD_SIZES);
}

/// Writes connection `c`'s frames back to back until told to stop, counting
/// each one once it is wholly written.
fn write_load(
    stream: &TcpStream,
    c: usize,
    stop: &AtomicBool,
    written: &AtomicU64,
    deadline: Instant,
) -> Result<()> {
    let mut conn = Deadlined::new(stream, deadline);
    for index in 0.. {
        if stop.load(Ordering::Relaxed) {
            return Ok(());
        }
        if let Err(error) = echo_proto::write_frame(&mut conn, &load_frame(c, index)) {
            // A frame begun before the stop but not fully sent before the
            // signal is owed nothing: the draining server may close at the
            // frame boundary before it, and the write then fails.
            if stop.load(Ordering::Relaxed) {
                return Ok(());
            }
            return Err(error).with_context(|| format!("writing frame {index}"));
        }
        written.fetch_add(1, Ordering::Relaxed);
    }
    Ok(())
}

/// Reads connection `c`'s echoes until the server closes it, checking each:
/// the stream must end cleanly between two whole echoes. Returns how many
/// came back.
fn read_load(stream: &TcpStream, c: usize, echoed: &AtomicU64, deadline: Instant) -> Result<u64> {
    let mut conn = Deadlined::new(stream, deadline);
    for index in 0.. {
        let echo = conn.read_frame().with_context(|| {
            format!("reading echo {index}: a partial echo, or the connection failed")
        })?;
        let Some(echo) = echo else {
            return Ok(index);
        };
        let frame = load_frame(c, index);
        ensure!(
            echo == frame,
            "echo {index} differs from its frame at byte {}",
            wire::first_difference(&frame, &echo)
        );
        echoed.fetch_add(1, Ordering::Relaxed);
    }
    unreachable!("the loop above only ends by returning")
}

#[test]
fn sigterm_under_load_echoes_every_frame_sent_before_it() {
    let deadline = deadline();
    let (mut server, [addr]) = start_server(&[], [Kind::Framed], deadline).unwrap();
    let load = || -> Result<()> {
        let streams = (0..LOAD_CONNECTIONS)
            .map(|_| connect(addr, deadline))
            .collect::<Result<Vec<_>, _>>()?;
        let stop = AtomicBool::new(false);
        let written: Vec<AtomicU64> = (0..LOAD_CONNECTIONS).map(|_| AtomicU64::new(0)).collect();
        let echoed: Vec<AtomicU64> = (0..LOAD_CONNECTIONS).map(|_| AtomicU64::new(0)).collect();
        thread::scope(|scope| -> Result<()> {
            let (stop, written, echoed) = (&stop, &written, &echoed);
            let writers: Vec<_> = streams
                .iter()
                .enumerate()
                .map(|(c, stream)| {
                    scope.spawn(move || write_load(stream, c, stop, &written[c], deadline))
                })
                .collect();
            let readers: Vec<_> = streams
                .iter()
                .enumerate()
                .map(|(c, stream)| scope.spawn(move || read_load(stream, c, &echoed[c], deadline)))
                .collect();

            let warmed_up = wait_until(deadline, || {
                echoed
                    .iter()
                    .all(|n| n.load(Ordering::Relaxed) >= LOAD_WARM_UP)
            })
            .with_context(|| {
                let counts: Vec<u64> = echoed.iter().map(|n| n.load(Ordering::Relaxed)).collect();
                format!("the load never got going: echoes per connection {counts:?}")
            });
            // No new frame is begun from here on; the ones being written
            // are finished. Every frame whose write had returned by now was
            // fully sent before the signal.
            stop.store(true, Ordering::Relaxed);
            let sent_before: Vec<u64> = written.iter().map(|n| n.load(Ordering::Relaxed)).collect();
            let signalled = warmed_up.and_then(|()| Ok(server.terminate()?));
            if signalled.is_err() {
                // Unblock the readers, since the server will not close.
                for stream in &streams {
                    let _ = stream.shutdown(Shutdown::Both);
                }
            }
            let mut failures = Vec::new();
            for (c, writer) in writers.into_iter().enumerate() {
                if let Err(error) = writer
                    .join()
                    .unwrap_or_else(|_| Err(anyhow!("the writer panicked")))
                {
                    failures.push(format!("connection {c}: {error:#}"));
                }
            }
            for (c, reader) in readers.into_iter().enumerate() {
                match reader
                    .join()
                    .unwrap_or_else(|_| Err(anyhow!("the reader panicked")))
                {
                    Ok(got) if got >= sent_before[c] => {}
                    Ok(got) => failures.push(format!(
                        "connection {c}: {} frames were sent before SIGTERM, only {got} came back",
                        sent_before[c]
                    )),
                    Err(error) => failures.push(format!("connection {c}: {error:#}")),
                }
            }
            signalled?;
            ensure!(failures.is_empty(), "{}", failures.join("; "));
            Ok(())
        })
    };
    load().unwrap();
    let output = server.wait(deadline).unwrap();
    assert!(output.status.success(), "{output}");
    assert!(
        !output.stderr_text().contains("drain timeout passed"),
        "the drain did not finish within the drain timeout: {output}"
    );
    wire::expect_refused(addr, deadline).unwrap();
}

/// The file descriptor limit the fd-exhaustion test gives the server: room
/// for a few dozen connections.
const FD_LIMIT: usize = 64;

/// How many connections beyond the limit wait to be accepted.
const WAITING: usize = 8;

/// How many more served connections than waiting ones are closed, so that
/// a brand-new connection finds room too.
const SPARE: usize = 4;

/// Has each of `streams` echo a frame; `when` says when, for a failure.
fn echo_on_each(streams: &[TcpStream], when: &str, deadline: Instant) -> Result<()> {
    for (n, stream) in streams.iter().enumerate() {
        let frame = format!("connection {n}, {when}").into_bytes();
        echo_all(stream, &[frame], deadline, |_| Ok(()))
            .with_context(|| format!("connection {n}, {when}"))?;
    }
    Ok(())
}

#[test]
fn a_server_out_of_file_descriptors_serves_on_and_recovers() {
    let deadline = deadline();
    // A shell lowers the limit and then becomes the server, so that the pid
    // is the server's.
    let server = binary::path("echo-server").unwrap();
    let mut server = Spawn::new("sh")
        .args(["-c", &format!("ulimit -n {FD_LIMIT} && exec \"$0\" \"$@\"")])
        .arg(server)
        .args(["--listen", "127.0.0.1:0"])
        .start()
        .unwrap();
    let [addr] = server.listening([Kind::Framed], deadline).unwrap();
    let exhaust = || -> Result<()> {
        let mut client = WellBehaved::start(addr, deadline)?;
        let before = server.open_fds()?;
        ensure!(
            before + WAITING + SPARE < FD_LIMIT,
            "the server already holds {before} of its {FD_LIMIT} file descriptors"
        );
        // As many connections as the server has descriptors left, and some
        // more, one after the other, so that it accepts them in this order.
        // The kernel completes them all: the last ones wait in its queue.
        let room = FD_LIMIT - before;
        let mut served = (0..room)
            .map(|_| connect(addr, deadline))
            .collect::<Result<Vec<_>, _>>()?;
        let waiting = (0..WAITING)
            .map(|_| connect(addr, deadline))
            .collect::<Result<Vec<_>, _>>()?;
        wait_until(deadline, || {
            server.open_fds().is_ok_and(|fds| fds >= FD_LIMIT)
        })
        .context("the server never ran out of file descriptors")?;

        // Out of descriptors, the server goes on serving what it has.
        echo_on_each(&served, "accepted before the limit", deadline)?;
        client
            .expect_progress(deadline)
            .context("with the server out of file descriptors")?;

        // Frames from the waiting connections are answered once there is
        // room again: close more served connections than there are waiting.
        for (n, stream) in waiting.iter().enumerate() {
            Deadlined::new(stream, deadline)
                .write_all(&encode(&[format!("waiting {n}").into_bytes()])?)?;
        }
        served.truncate(room - WAITING - SPARE);
        for (n, stream) in waiting.iter().enumerate() {
            read_echoes(stream, &[format!("waiting {n}").into_bytes()], deadline)
                .with_context(|| format!("connection {n} beyond the limit, once there was room"))?;
        }
        let fresh = connect(addr, deadline)?;
        echo_all(&fresh, &[b"fresh".to_vec()], deadline, |_| Ok(()))
            .context("a new connection, once there was room")?;
        echo_on_each(&served, "after the recovery", deadline)?;
        client.finish()?;
        Ok(())
    };
    exhaust().unwrap();
    let output = stop_cleanly(&mut server, deadline);
    for needle in [
        "cannot accept connections",
        "Too many open files",
        "retry_in",
    ] {
        assert!(output.stderr_text().contains(needle), "{needle}: {output}");
    }
}
