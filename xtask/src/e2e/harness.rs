//! The reusable pieces of the scenarios: child processes that are always
//! killed, reads and waits with deadlines, and frame exchanges over a raw
//! `TcpStream`.

use std::borrow::Cow;
use std::ffi::{OsStr, OsString};
use std::fmt;
use std::io::{self, BufRead, BufReader, Read, Write};
use std::net::{Shutdown, SocketAddr, TcpListener, TcpStream};
use std::path::{Path, PathBuf};
use std::process::{Child, ChildStdin, Command, ExitStatus, Stdio};
use std::sync::mpsc::{self, Receiver, RecvTimeoutError};
use std::thread;
use std::time::{Duration, Instant};

use anyhow::{Context, Result, anyhow, bail, ensure};
use echo_proto::frame::DEFAULT_MAX_FRAME_LEN;
use nix::sys::signal::{self, Signal};
use nix::sys::socket::{setsockopt, sockopt};
use nix::unistd::Pid;

/// The shell that scripts run in: the one that lowers the server's file
/// descriptor limit, and in the unit tests the one that stands in for the
/// binaries under test.
const SH: &str = "/bin/sh";

/// How often a wait for a process to exit looks again.
const POLL_INTERVAL: Duration = Duration::from_millis(5);

/// How long to wait for the output of a process killed at its deadline.
const KILLED_OUTPUT_GRACE: Duration = Duration::from_secs(1);

/// Whether an environment variable is one the binaries read: every `ECHO_*`
/// and `RUST_LOG`. They are removed from every child's environment so that
/// the developer's settings cannot change what a scenario tests.
fn is_isolated_env(name: &std::ffi::OsStr) -> bool {
    name == "RUST_LOG" || name.as_encoded_bytes().starts_with(b"ECHO_")
}

/// The start of each line `echo-server` prints once it is listening, one
/// line per listener: `echo-server listening on IP:PORT (KIND)`.
const LISTENING_PREFIX: &str = "echo-server listening on ";

/// The binaries under test.
#[derive(Debug)]
pub(crate) struct Bins {
    pub(crate) server: PathBuf,
    pub(crate) client: PathBuf,
}

/// What a scenario gets: the binaries and its deadline.
#[derive(Debug)]
pub(crate) struct Ctx<'a> {
    pub(crate) bins: &'a Bins,
    /// Every wait in the scenario ends by this instant.
    pub(crate) deadline: Instant,
}

impl Ctx<'_> {
    /// Starts an `echo-server` on a free loopback port, with `extra` arguments,
    /// and waits for the listening line of each listener they ask for.
    pub(crate) fn server(&self, extra: &[&str]) -> Result<Server> {
        Server::start(
            &self.bins.server,
            extra,
            &expected_listeners(extra),
            self.deadline,
        )
    }

    /// Starts an `echo-server` as [`server`](Self::server) does, but allowed
    /// at most `limit` open file descriptors: a shell lowers its limit
    /// (`ulimit -n`) and then becomes the server, so that the pid is the
    /// server's.
    pub(super) fn server_with_fd_limit(&self, limit: u32, extra: &[&str]) -> Result<Server> {
        let script = format!("ulimit -n {limit} && exec \"$0\" \"$@\"");
        let server = self.bins.server.to_string_lossy();
        let mut args = vec!["-c", script.as_str(), &server];
        args.extend_from_slice(extra);
        Server::start(
            Path::new(SH),
            &args,
            &expected_listeners(extra),
            self.deadline,
        )
    }

    /// Starts a server with `extra` arguments and runs `body` with its
    /// address. On failure the server's log is added to the error.
    pub(super) fn with_server(
        &self,
        extra: &[&str],
        body: impl FnOnce(SocketAddr) -> Result<()>,
    ) -> Result<()> {
        let server = self.server(extra)?;
        body(server.addr()).map_err(|error| server.explain(error))
    }

    /// Starts a server with `extra` arguments, runs `body` with it, then stops
    /// it with SIGTERM and checks that it exits 0 without printing anything
    /// more to stdout. Returns its output, for checks on its log. On failure
    /// the server's log is added to the error.
    pub(super) fn with_server_stopped(
        &self,
        extra: &[&str],
        body: impl FnOnce(&Server) -> Result<()>,
    ) -> Result<Output> {
        let server = self.server(extra)?;
        if let Err(error) = body(&server) {
            return Err(server.explain(error));
        }
        let output = server.stop(self.deadline)?;
        output
            .expect(0, b"")
            .context("the server did not exit cleanly after SIGTERM")?;
        Ok(output)
    }

    /// Runs `echo-client --addr ADDR ARGS...` with `stdin` to completion.
    pub(crate) fn client<S: AsRef<OsStr>>(
        &self,
        addr: SocketAddr,
        args: impl IntoIterator<Item = S>,
        stdin: &[u8],
    ) -> Result<Output> {
        self.spawn_client(addr, args, stdin)?.wait(self.deadline)
    }

    /// Starts `echo-client --addr ADDR ARGS...` with `stdin`, without waiting.
    pub(super) fn spawn_client<S: AsRef<OsStr>>(
        &self,
        addr: SocketAddr,
        args: impl IntoIterator<Item = S>,
        stdin: &[u8],
    ) -> Result<Process> {
        let mut all: Vec<OsString> = vec!["--addr".into(), addr.to_string().into()];
        all.extend(args.into_iter().map(|arg| arg.as_ref().to_owned()));
        Process::spawn(&self.bins.client, all, stdin)
    }

    /// Runs `program ARGS...` with empty stdin to completion, waiting at most
    /// `timeout` (and never past the scenario's deadline).
    pub(super) fn run<S: AsRef<OsStr>>(
        &self,
        program: &Path,
        args: impl IntoIterator<Item = S>,
        timeout: Duration,
    ) -> Result<Output> {
        let deadline = self.deadline.min(Instant::now() + timeout);
        Process::spawn(program, args, b"")?.wait(deadline)
    }
}

/// A child process that is killed and reaped when dropped, so that no path
/// out of a scenario (an error, a failed check, a panic) leaves it running.
#[derive(Debug)]
struct KillOnDrop(Child);

impl Drop for KillOnDrop {
    fn drop(&mut self) {
        // Killing a child that has already been reaped is a no-op in std, so
        // this cannot hit another process that reused the pid.
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

/// A running child process, its output collected by threads of their own so
/// that it never blocks on a full pipe.
#[derive(Debug)]
pub(crate) struct Process {
    name: String,
    child: KillOnDrop,
    /// Standard output, one line (with its `\n`) per message; the last piece
    /// lacks the `\n` if the output did not end with one.
    stdout: Receiver<Vec<u8>>,
    /// All of standard error, sent once the child closes it.
    stderr: Receiver<Vec<u8>>,
}

impl Process {
    /// Starts `program` with `args` and writes `stdin` to it, then closes it.
    pub(crate) fn spawn<S: AsRef<OsStr>>(
        program: &Path,
        args: impl IntoIterator<Item = S>,
        stdin: &[u8],
    ) -> Result<Self> {
        let name = program.file_name().map_or_else(
            || program.display().to_string(),
            |name| name.to_string_lossy().into_owned(),
        );
        let mut command = Command::new(program);
        command
            .args(args)
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            // Plain log lines, whatever the terminal, so that checks on the
            // text do not trip over colour codes.
            .env("NO_COLOR", "1");
        for (name, _) in std::env::vars_os() {
            if is_isolated_env(&name) {
                command.env_remove(name);
            }
        }
        let mut child = KillOnDrop(
            command
                .spawn()
                .with_context(|| format!("could not start {}", program.display()))?,
        );
        let pipes = (
            child.0.stdin.take(),
            child.0.stdout.take(),
            child.0.stderr.take(),
        );
        let (Some(stdin_pipe), Some(stdout), Some(stderr)) = pipes else {
            bail!("{name} was started without its standard streams piped");
        };
        feed(stdin_pipe, stdin.to_vec());
        Ok(Process {
            name,
            child,
            stdout: read_lines(stdout),
            stderr: read_all(stderr),
        })
    }

    /// The next line of standard output, with its `\n`, or `None` once the
    /// output has ended.
    pub(crate) fn next_line(&self, deadline: Instant) -> Result<Option<Vec<u8>>> {
        match self.stdout.recv_timeout(remaining(deadline)) {
            Ok(line) => Ok(Some(line)),
            Err(RecvTimeoutError::Disconnected) => Ok(None),
            Err(RecvTimeoutError::Timeout) => {
                bail!("timed out waiting for a line on {}'s stdout", self.name)
            }
        }
    }

    /// The process id, for sending signals.
    pub(crate) fn pid(&self) -> Result<Pid> {
        let id = i32::try_from(self.child.0.id()).context("the process id does not fit a pid_t")?;
        Ok(Pid::from_raw(id))
    }

    /// Waits for the process to exit and collects its output.
    ///
    /// If the deadline passes first, the process is killed and the error
    /// shows what it had written, which usually says where it was stuck.
    pub(crate) fn wait(mut self, deadline: Instant) -> Result<Output> {
        loop {
            if let Some(status) = self.child.0.try_wait()? {
                return self.collect(status, deadline);
            }
            if Instant::now() >= deadline {
                break;
            }
            thread::sleep(POLL_INTERVAL.min(remaining(deadline)));
        }
        let name = self.name.clone();
        let output = self.kill()?;
        bail!("{name} did not exit before the deadline and was killed: {output}")
    }

    /// Kills the process at once and collects what it had written.
    pub(crate) fn kill(mut self) -> Result<Output> {
        self.child.0.kill()?;
        let status = self.child.0.wait()?;
        // Killing it closed its pipes, so its output is at hand: a moment is
        // enough to pick it up.
        self.collect(status, Instant::now() + KILLED_OUTPUT_GRACE)
    }

    /// Gathers the output of a process that has exited.
    fn collect(&self, status: ExitStatus, deadline: Instant) -> Result<Output> {
        let mut stdout = Vec::new();
        while let Some(line) = self.next_line(deadline)? {
            stdout.extend(line);
        }
        let stderr = self
            .stderr
            .recv_timeout(remaining(deadline))
            .map_err(|_| anyhow!("timed out reading {}'s stderr", self.name))?;
        Ok(Output {
            status,
            stdout,
            stderr,
        })
    }
}

/// Writes `bytes` to a child's stdin from a thread, then closes it.
///
/// A thread, because a child may not read its stdin before it writes its
/// output. A write error means the child exited or closed its stdin early,
/// which its exit status and output then show, so it is not reported here.
fn feed(mut stdin: ChildStdin, bytes: Vec<u8>) {
    thread::spawn(move || {
        let _ = stdin.write_all(&bytes);
    });
}

/// Reads `pipe` line by line on a thread of its own and sends each line.
fn read_lines(pipe: impl Read + Send + 'static) -> Receiver<Vec<u8>> {
    let (sender, receiver) = mpsc::channel();
    thread::spawn(move || {
        let mut reader = BufReader::new(pipe);
        loop {
            let mut line = Vec::new();
            match reader.read_until(b'\n', &mut line) {
                Ok(0) | Err(_) => break,
                Ok(_) => {
                    if sender.send(line).is_err() {
                        break;
                    }
                }
            }
        }
    });
    receiver
}

/// Reads `pipe` to its end on a thread of its own and sends all of it.
fn read_all(mut pipe: impl Read + Send + 'static) -> Receiver<Vec<u8>> {
    let (sender, receiver) = mpsc::channel();
    thread::spawn(move || {
        let mut bytes = Vec::new();
        // On a read error, what was read so far is still worth reporting.
        let _ = pipe.read_to_end(&mut bytes);
        let _ = sender.send(bytes);
    });
    receiver
}

/// The time left until `deadline`, zero if it has passed.
fn remaining(deadline: Instant) -> Duration {
    deadline.saturating_duration_since(Instant::now())
}

/// The time left until `deadline`, for a socket timeout, which cannot be
/// zero: an error once the deadline has passed.
pub(super) fn time_left(deadline: Instant) -> io::Result<Duration> {
    let left = remaining(deadline);
    if left.is_zero() {
        Err(io::Error::new(
            io::ErrorKind::TimedOut,
            "the scenario's deadline passed",
        ))
    } else {
        Ok(left)
    }
}

/// How a process ended and what it wrote.
#[derive(Debug)]
pub(crate) struct Output {
    pub(crate) status: ExitStatus,
    pub(crate) stdout: Vec<u8>,
    pub(crate) stderr: Vec<u8>,
}

impl Output {
    /// Standard error as text, with any invalid UTF-8 replaced.
    pub(super) fn stderr_text(&self) -> Cow<'_, str> {
        String::from_utf8_lossy(&self.stderr)
    }

    /// Checks the exit code and the exact standard output.
    pub(super) fn expect(&self, code: i32, stdout: &[u8]) -> Result<()> {
        ensure!(
            self.status.code() == Some(code) && self.stdout == stdout,
            "expected exit code {code} and stdout \"{}\", got {self}",
            stdout.escape_ascii()
        );
        Ok(())
    }

    /// Checks that standard error holds exactly one `error: ` line, that it
    /// contains `needle`, and that nothing panicked.
    pub(super) fn expect_error_line(&self, needle: &str) -> Result<()> {
        check_error_line(&self.stderr_text(), needle)
            .map_err(|cause| anyhow!("{cause}; got {self}"))
    }

    /// Checks that standard error contains `needle`.
    pub(super) fn expect_stderr_contains(&self, needle: &str) -> Result<()> {
        ensure!(
            self.stderr_text().contains(needle),
            "expected stderr to contain {needle:?}, got {self}"
        );
        Ok(())
    }
}

impl fmt::Display for Output {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(
            f,
            "{}, stdout \"{}\", stderr \"{}\"",
            self.status,
            self.stdout.escape_ascii(),
            self.stderr.escape_ascii()
        )
    }
}

/// The check behind [`Output::expect_error_line`].
fn check_error_line(stderr: &str, needle: &str) -> Result<()> {
    ensure!(!stderr.contains("panicked"), "the process panicked");
    let error_lines: Vec<&str> = stderr
        .lines()
        .filter(|line| line.starts_with("error: "))
        .collect();
    match error_lines[..] {
        [line] => ensure!(
            line.contains(needle),
            "the error line does not name {needle:?}: {line:?}"
        ),
        _ => bail!(
            "expected exactly one line starting with \"error: \" on stderr, found {}",
            error_lines.len()
        ),
    }
    Ok(())
}

/// What a listening line says is listening: its `(KIND)`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(super) enum Listener {
    /// TCP, echoing frames (the default `--mode framed`).
    Framed,
    /// TCP, echoing bytes as they arrive (`--mode raw`).
    Raw,
    /// UDP echo (`--udp`).
    Udp,
    /// The metrics endpoint over HTTP (`--metrics`).
    Metrics,
}

impl Listener {
    const ALL: [Listener; 4] = [
        Listener::Framed,
        Listener::Raw,
        Listener::Udp,
        Listener::Metrics,
    ];

    /// The kind as the listening line spells it.
    fn label(self) -> &'static str {
        match self {
            Listener::Framed => "framed",
            Listener::Raw => "raw",
            Listener::Udp => "udp",
            Listener::Metrics => "metrics",
        }
    }
}

impl fmt::Display for Listener {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.label())
    }
}

/// The listeners a server started with `args` announces: its TCP listener
/// first, then the UDP echo and the metrics endpoint if they are asked for.
fn expected_listeners(args: &[&str]) -> Vec<Listener> {
    let tcp = match flag_value(args, "--mode") {
        Some("raw") => Listener::Raw,
        _ => Listener::Framed,
    };
    let optional = [("--udp", Listener::Udp), ("--metrics", Listener::Metrics)];
    std::iter::once(tcp)
        .chain(
            optional
                .into_iter()
                .filter(|(flag, _)| flag_value(args, flag).is_some())
                .map(|(_, listener)| listener),
        )
        .collect()
}

/// The value of `flag` in `args`, given as `--flag VALUE` or `--flag=VALUE`.
fn flag_value<'a>(args: &[&'a str], flag: &str) -> Option<&'a str> {
    args.iter().enumerate().find_map(|(index, arg)| {
        if *arg == flag {
            args.get(index + 1).copied()
        } else {
            arg.strip_prefix(flag)?.strip_prefix('=')
        }
    })
}

/// Lists listeners for messages: `framed, udp`.
fn list(listeners: impl IntoIterator<Item = Listener>) -> String {
    listeners
        .into_iter()
        .map(Listener::label)
        .collect::<Vec<_>>()
        .join(", ")
}

/// The address `listeners` give for `kind`, if they name it.
fn announced(listeners: &[(Listener, SocketAddr)], kind: Listener) -> Option<SocketAddr> {
    listeners
        .iter()
        .find(|(seen, _)| *seen == kind)
        .map(|&(_, addr)| addr)
}

/// An `echo-server` that is listening, killed when dropped.
#[derive(Debug)]
pub(crate) struct Server {
    process: Process,
    /// Every listener it announced, in the order of the lines.
    listeners: Vec<(Listener, SocketAddr)>,
    /// The first listener expected: the TCP one.
    addr: SocketAddr,
}

impl Server {
    /// Starts `program EXTRA... --listen 127.0.0.1:0` and waits until it has
    /// printed one listening line for each of `expected` (in any order), the
    /// first of which is the one [`addr`](Self::addr) returns. A listening
    /// line for a listener not expected, or a second one for the same
    /// listener, is an error; other lines are skipped.
    ///
    /// The extra arguments come first so that the unit tests can stand a
    /// shell script (`sh -c SCRIPT`) in for the server.
    fn start(
        program: &Path,
        extra: &[&str],
        expected: &[Listener],
        deadline: Instant,
    ) -> Result<Self> {
        let Some(&main) = expected.first() else {
            bail!("a server must be expected to announce at least one listener");
        };
        let args = extra.iter().chain(&["--listen", "127.0.0.1:0"]);
        let process = Process::spawn(program, args, b"")?;
        let mut listeners: Vec<(Listener, SocketAddr)> = Vec::new();
        loop {
            let missing: Vec<Listener> = expected
                .iter()
                .copied()
                .filter(|&kind| announced(&listeners, kind).is_none())
                .collect();
            if missing.is_empty() {
                break;
            }
            // Stops at the end of stdout or at the deadline; either way the
            // wait below reports the server's stderr, killing it first if
            // need be.
            let Ok(Some(line)) = process.next_line(deadline) else {
                let missing = list(missing);
                let output = process.wait(deadline).with_context(|| {
                    format!("echo-server did not print its listening line for {missing}")
                })?;
                bail!(
                    "echo-server exited without printing its listening line for {missing}: {output}"
                )
            };
            let line = String::from_utf8_lossy(&line);
            let Some((addr, kind)) = parse_listening_line(&line) else {
                continue;
            };
            if !expected.contains(&kind) || announced(&listeners, kind).is_some() {
                let output = process.kill()?;
                bail!(
                    "echo-server printed {:?}, but it was expected to announce {} once each: {output}",
                    line.trim_end(),
                    list(expected.iter().copied())
                );
            }
            listeners.push((kind, addr));
        }
        let addr = announced(&listeners, main).context("the main listener was not announced")?;
        Ok(Server {
            process,
            listeners,
            addr,
        })
    }

    /// The address the server listens on for TCP.
    pub(crate) fn addr(&self) -> SocketAddr {
        self.addr
    }

    /// The address of `listener`, which the server must have been started
    /// with.
    pub(super) fn addr_of(&self, listener: Listener) -> Result<SocketAddr> {
        announced(&self.listeners, listener)
            .with_context(|| format!("the server has no {listener} listener"))
    }

    /// The server's process id, for [`terminate`] from another thread.
    pub(crate) fn pid(&self) -> Result<Pid> {
        self.process.pid()
    }

    /// Sends SIGTERM and waits for the server to exit.
    pub(crate) fn stop(self, deadline: Instant) -> Result<Output> {
        terminate(self.pid()?)?;
        self.wait(deadline)
    }

    /// Adds the server's output to a scenario's failure, since its log
    /// usually says why. The server is killed to read the log at once.
    pub(super) fn explain(self, error: anyhow::Error) -> anyhow::Error {
        match self.process.kill() {
            Ok(output) => anyhow!("{error:#}; echo-server, killed to read its log: {output}"),
            Err(kill_error) => anyhow!("{error:#}; echo-server's log is lost: {kill_error:#}"),
        }
    }

    /// Waits for the server to exit, for when it was already told to stop.
    ///
    /// Its output is everything after the listening line.
    pub(super) fn wait(self, deadline: Instant) -> Result<Output> {
        self.process.wait(deadline)
    }
}

/// Sends SIGTERM to `pid`.
///
/// Only call it with the pid of a child that has not been reaped yet, so that
/// the pid cannot belong to another process.
pub(crate) fn terminate(pid: Pid) -> Result<()> {
    signal::kill(pid, Signal::SIGTERM).with_context(|| format!("could not send SIGTERM to {pid}"))
}

/// Parses `echo-server listening on IP:PORT (KIND)`, with or without its
/// line ending.
fn parse_listening_line(line: &str) -> Option<(SocketAddr, Listener)> {
    let (addr, kind) = line
        .trim_end_matches(['\n', '\r'])
        .strip_prefix(LISTENING_PREFIX)?
        .strip_suffix(')')?
        .split_once(" (")?;
    let kind = Listener::ALL
        .into_iter()
        .find(|listener| listener.label() == kind)?;
    Some((addr.parse().ok()?, kind))
}

/// A loopback address where nothing listens: a port the system just handed
/// out and that was released again.
pub(super) fn closed_port() -> Result<SocketAddr> {
    let listener = TcpListener::bind("127.0.0.1:0").context("could not bind 127.0.0.1:0")?;
    Ok(listener.local_addr()?)
}

/// Checks that connecting to `addr` is refused.
pub(super) fn expect_refused(addr: SocketAddr, deadline: Instant) -> Result<()> {
    match TcpStream::connect_timeout(&addr, remaining(deadline).max(Duration::from_millis(1))) {
        Err(error) if error.kind() == io::ErrorKind::ConnectionRefused => Ok(()),
        Err(error) => bail!("expected a refused connection to {addr}, got: {error}"),
        Ok(_) => bail!("a new connection to {addr} was accepted"),
    }
}

/// Connects to `addr` within the deadline.
pub(crate) fn connect(addr: SocketAddr, deadline: Instant) -> Result<TcpStream> {
    TcpStream::connect_timeout(&addr, remaining(deadline).max(Duration::from_millis(1)))
        .with_context(|| format!("could not connect to {addr}"))
}

/// A `TcpStream` whose every read and write gives up at the deadline.
///
/// Socket timeouts apply per call, so each call gets the time that is left,
/// which bounds a whole multi-read frame, not just one read.
#[derive(Debug)]
pub(super) struct Deadlined<'a> {
    stream: &'a TcpStream,
    deadline: Instant,
}

impl<'a> Deadlined<'a> {
    /// Wraps `stream`; every read and write gives up at `deadline`.
    pub(super) fn new(stream: &'a TcpStream, deadline: Instant) -> Self {
        Self { stream, deadline }
    }

    /// Reads one frame, or `None` at a clean end of stream.
    pub(super) fn read_frame(&mut self) -> Result<Option<Vec<u8>>> {
        Ok(echo_proto::read_frame(self, DEFAULT_MAX_FRAME_LEN)?)
    }
}

impl Read for Deadlined<'_> {
    fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
        self.stream
            .set_read_timeout(Some(time_left(self.deadline)?))?;
        let mut stream = self.stream;
        stream.read(buf)
    }
}

impl Write for Deadlined<'_> {
    fn write(&mut self, buf: &[u8]) -> io::Result<usize> {
        self.stream
            .set_write_timeout(Some(time_left(self.deadline)?))?;
        let mut stream = self.stream;
        stream.write(buf)
    }

    fn flush(&mut self) -> io::Result<()> {
        let mut stream = self.stream;
        stream.flush()
    }
}

/// The frames' bytes on the wire, back to back.
pub(super) fn encode(frames: &[Vec<u8>]) -> Result<Vec<u8>> {
    let mut wire = Vec::new();
    for frame in frames {
        echo_proto::write_frame(&mut wire, frame)?;
    }
    Ok(wire)
}

/// Sends all `frames` in one write burst, calls `after_write`, and checks
/// that each frame comes back identical and in order.
pub(crate) fn echo_all(
    stream: &TcpStream,
    frames: &[Vec<u8>],
    deadline: Instant,
    after_write: impl FnOnce(&TcpStream) -> Result<()> + Send,
) -> Result<()> {
    let wire = encode(frames)?;
    write_while_reading(
        stream,
        || {
            Deadlined::new(stream, deadline)
                .write_all(&wire)
                .context("could not send the frames")?;
            after_write(stream)
        },
        || read_echoes(stream, frames, deadline),
    )
}

/// Runs `write` on a second thread while `read` reads the answers on this
/// one, and returns what `read` returns.
///
/// Two threads, because a burst larger than the socket buffers would
/// otherwise deadlock: the server waiting for us to read and us waiting for
/// it to read. Both must bound their waits, as [`Deadlined`] does.
pub(super) fn write_while_reading<T>(
    stream: &TcpStream,
    write: impl FnOnce() -> Result<()> + Send,
    read: impl FnOnce() -> Result<T>,
) -> Result<T> {
    thread::scope(|scope| {
        let writer = scope.spawn(write);
        let read = read();
        if read.is_err() {
            // Unblock a writer stuck on a full socket buffer: no one will
            // read what it still has to send.
            let _ = stream.shutdown(Shutdown::Both);
        }
        let written = writer
            .join()
            .unwrap_or_else(|_| Err(anyhow!("the writer thread panicked")));
        // A read failure explains a write failure (or follows from it, in
        // which case the write error says why), so report the read first.
        let value = read?;
        written?;
        Ok(value)
    })
}

/// Reads one echo per frame of `frames` and compares it with the frame.
fn read_echoes(stream: &TcpStream, frames: &[Vec<u8>], deadline: Instant) -> Result<()> {
    let mut reader = Deadlined::new(stream, deadline);
    for (index, sent) in frames.iter().enumerate() {
        let echo = reader
            .read_frame()
            .with_context(|| format!("reading echo {} of {}", index + 1, frames.len()))?;
        let Some(echo) = echo else {
            bail!(
                "the connection ended after {index} of {} echoes",
                frames.len()
            );
        };
        if echo != *sent {
            bail!(
                "echo {} of {} differs from the frame sent: {}",
                index + 1,
                frames.len(),
                describe_difference(sent, &echo)
            );
        }
    }
    Ok(())
}

/// Says how two payloads differ, briefly enough for one line.
pub(super) fn describe_difference(sent: &[u8], echo: &[u8]) -> String {
    let first = sent
        .iter()
        .zip(echo)
        .position(|(a, b)| a != b)
        .unwrap_or(sent.len().min(echo.len()));
    format!(
        "sent {} bytes, got {} bytes, first difference at byte {first}",
        sent.len(),
        echo.len()
    )
}

/// Checks that the peer closes the stream cleanly, with no further frame.
pub(crate) fn expect_eof(stream: &TcpStream, deadline: Instant) -> Result<()> {
    match Deadlined::new(stream, deadline)
        .read_frame()
        .context("waiting for the server to close the connection")?
    {
        None => Ok(()),
        Some(frame) => bail!(
            "expected the connection to end, got another frame of {} bytes",
            frame.len()
        ),
    }
}

/// How the server closed a connection.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(super) enum Closed {
    /// A clean end of stream.
    Eof,
    /// A reset, which is what closing a socket with unread data sends.
    Reset,
}

/// Waits for the server to close `stream`, and checks that it sends nothing
/// before it does.
pub(super) fn expect_closed_silently(stream: &TcpStream, deadline: Instant) -> Result<Closed> {
    let mut buf = [0; 1024];
    match Deadlined::new(stream, deadline).read(&mut buf) {
        Ok(0) => Ok(Closed::Eof),
        Ok(n) => bail!(
            "expected the server to close the connection without a word, got \"{}\"",
            buf[..n].escape_ascii()
        ),
        Err(error)
            if matches!(
                error.kind(),
                io::ErrorKind::ConnectionReset | io::ErrorKind::ConnectionAborted
            ) =>
        {
            Ok(Closed::Reset)
        }
        Err(error) => Err(error).context("waiting for the server to close the connection"),
    }
}

/// Closes `stream` with a reset instead of the orderly end of stream: with
/// SO_LINGER on and a timeout of zero, closing a socket sends RST and drops
/// whatever it still had to send.
pub(crate) fn reset(stream: TcpStream) -> Result<()> {
    let abort = nix::libc::linger {
        l_onoff: 1,
        l_linger: 0,
    };
    setsockopt(&stream, sockopt::Linger, &abort).context("could not set SO_LINGER to 0")?;
    drop(stream);
    Ok(())
}

/// How many file descriptors `pid` has open, from `/proc/PID/fd`.
pub(crate) fn open_fds(pid: Pid) -> Result<usize> {
    let path = format!("/proc/{pid}/fd");
    let entries = std::fs::read_dir(&path).with_context(|| format!("could not read {path}"))?;
    Ok(entries.count())
}

/// Reads a `/proc/PID/status` field given in kB, such as `VmRSS`, in KiB.
pub(crate) fn memory_kib(pid: Pid, field: &str) -> Result<u64> {
    let path = format!("/proc/{pid}/status");
    let status =
        std::fs::read_to_string(&path).with_context(|| format!("could not read {path}"))?;
    parse_status_kib(&status, field).with_context(|| format!("{path} has no {field} in kB"))
}

/// Finds `FIELD:   1234 kB` in the text of a `/proc/PID/status` file.
fn parse_status_kib(status: &str, field: &str) -> Option<u64> {
    status.lines().find_map(|line| {
        let value = line.strip_prefix(field)?.strip_prefix(':')?;
        value.trim().strip_suffix(" kB")?.trim().parse().ok()
    })
}

/// `len` deterministic bytes that start with `seed`'s four big-endian bytes,
/// so that payloads of four bytes or more made from different seeds differ.
pub(crate) fn pattern(seed: u32, len: usize) -> Vec<u8> {
    // xorshift64: cheap, and varied enough that a shifted or repeated chunk in
    // an echo does not compare equal by accident.
    let mut state = u64::from(seed).wrapping_mul(0x9E37_79B9_7F4A_7C15) | 1;
    let noise = std::iter::from_fn(move || {
        state ^= state << 13;
        state ^= state >> 7;
        state ^= state << 17;
        Some(state.to_le_bytes()[0])
    });
    seed.to_be_bytes()
        .into_iter()
        .chain(noise)
        .take(len)
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_the_listening_lines() {
        let parsed = |line| parse_listening_line(line).map(|(addr, kind)| (addr.to_string(), kind));
        let expected = |addr: &str, kind| Some((addr.to_owned(), kind));
        assert_eq!(
            parsed("echo-server listening on 127.0.0.1:4242 (framed)\n"),
            expected("127.0.0.1:4242", Listener::Framed)
        );
        assert_eq!(
            parsed("echo-server listening on [::1]:9999 (raw)\r\n"),
            expected("[::1]:9999", Listener::Raw)
        );
        assert_eq!(
            parsed("echo-server listening on 127.0.0.1:1 (udp)"),
            expected("127.0.0.1:1", Listener::Udp)
        );
        assert_eq!(
            parsed("echo-server listening on 127.0.0.1:9100 (metrics)\n"),
            expected("127.0.0.1:9100", Listener::Metrics)
        );
    }

    #[test]
    fn rejects_other_lines() {
        for line in [
            "",
            "echo-server listening on 127.0.0.1:4242\n",
            "echo-server listening on 127.0.0.1:4242 (tcp)\n",
            "echo-server listening on 127.0.0.1:4242 (framed\n",
            "echo-server listening on 127.0.0.1:4242 framed)\n",
            "echo-server listening on localhost:4242 (framed)\n",
            "echo-server listening on 127.0.0.1:99999 (framed)\n",
            "echo-server listening on 127.0.0.1 (framed)\n",
            "INFO echo-server listening on 127.0.0.1:4242 (framed)\n",
        ] {
            assert_eq!(parse_listening_line(line), None, "{line:?}");
        }
    }

    #[test]
    fn expects_a_listening_line_per_listener_asked_for() {
        use Listener::{Framed, Metrics, Raw, Udp};
        assert_eq!(expected_listeners(&[]), [Framed]);
        assert_eq!(expected_listeners(&["--max-frame", "16"]), [Framed]);
        assert_eq!(expected_listeners(&["--mode", "framed"]), [Framed]);
        assert_eq!(expected_listeners(&["--mode", "raw"]), [Raw]);
        assert_eq!(expected_listeners(&["--mode=raw"]), [Raw]);
        assert_eq!(
            expected_listeners(&["--udp", "127.0.0.1:0", "--mode", "raw"]),
            [Raw, Udp]
        );
        assert_eq!(
            expected_listeners(&["--metrics=127.0.0.1:0", "--udp", "127.0.0.1:0"]),
            [Framed, Udp, Metrics]
        );
        // A flag's name inside another word is not that flag.
        assert_eq!(expected_listeners(&["--udpx", "1"]), [Framed]);
    }

    #[test]
    fn reads_memory_fields_of_proc_status() {
        let status = "Name:\techo-server\nVmHWM:\t    9876 kB\nVmRSS:\t    5432 kB\n";
        assert_eq!(parse_status_kib(status, "VmRSS"), Some(5432));
        assert_eq!(parse_status_kib(status, "VmHWM"), Some(9876));
        assert_eq!(parse_status_kib(status, "VmSwap"), None);
        assert_eq!(parse_status_kib(status, "Name"), None);
        let own = Pid::from_raw(i32::try_from(std::process::id()).unwrap());
        assert!(memory_kib(own, "VmRSS").unwrap() > 0);
    }

    #[test]
    fn error_line_check() {
        let addr = "127.0.0.1:7";
        assert!(
            check_error_line("error: could not connect to 127.0.0.1:7: refused\n", addr).is_ok()
        );
        // Log lines around the error line are allowed.
        assert!(
            check_error_line(
                "2025 INFO starting\nerror: binding 127.0.0.1:7: in use\n",
                addr
            )
            .is_ok()
        );
        let missing = check_error_line("error: refused\n", addr).unwrap_err();
        assert!(missing.to_string().contains("does not name"), "{missing}");
        let none = check_error_line("refused\n", addr).unwrap_err();
        assert!(none.to_string().contains("found 0"), "{none}");
        let two = check_error_line("error: 127.0.0.1:7\nerror: again\n", addr).unwrap_err();
        assert!(two.to_string().contains("found 2"), "{two}");
        let panic = "thread 'main' panicked at src/main.rs:1:1\nerror: 127.0.0.1:7\n";
        assert!(check_error_line(panic, addr).is_err());
    }

    fn in_secs(secs: u64) -> Instant {
        Instant::now() + Duration::from_secs(secs)
    }

    #[test]
    fn a_process_gets_its_stdin_and_gives_its_output_and_status() {
        let script = "cat; printf 'to stderr' >&2; exit 3";
        let output = Process::spawn(Path::new(SH), ["-c", script], b"in\x00\xff\nno newline")
            .unwrap()
            .wait(in_secs(30))
            .unwrap();
        assert_eq!(output.status.code(), Some(3));
        assert_eq!(output.stdout, b"in\x00\xff\nno newline");
        assert_eq!(output.stderr, b"to stderr");
        assert!(output.expect(3, b"in\x00\xff\nno newline").is_ok());
        let error = output.expect(0, b"").unwrap_err().to_string();
        assert!(error.contains("expected exit code 0"), "{error}");
    }

    #[test]
    fn a_process_that_outlives_its_deadline_is_killed() {
        let script = "printf 'stuck here' >&2; exec sleep 30";
        let process = Process::spawn(Path::new(SH), ["-c", script], b"").unwrap();
        let pid = process.pid().unwrap();
        let started = Instant::now();
        let error = process
            .wait(Instant::now() + Duration::from_millis(100))
            .unwrap_err();
        assert!(
            error
                .to_string()
                .contains("did not exit before the deadline"),
            "{error}"
        );
        assert!(started.elapsed() < Duration::from_secs(20));
        // The guard killed and reaped it: the pid is gone.
        assert_eq!(signal::kill(pid, None), Err(nix::errno::Errno::ESRCH));
    }

    #[test]
    fn a_server_is_found_by_its_listening_line_and_stopped_by_sigterm() {
        // Arguments after the script become $0, $1, ...: the fake server
        // ignores them. It sets its trap before it says it is listening, as
        // a real server installs its signal handler before it binds.
        let script = "trap 'echo stopping >&2; exit 0' TERM; \
                      echo 'echo-server listening on 127.0.0.1:5 (framed)'; \
                      while :; do sleep 0.05; done";
        let server = Server::start(
            Path::new(SH),
            &["-c", script],
            &[Listener::Framed],
            in_secs(30),
        )
        .unwrap();
        assert_eq!(server.addr(), "127.0.0.1:5".parse().unwrap());
        let output = server.stop(in_secs(30)).unwrap();
        assert!(output.expect(0, b"").is_ok(), "{output}");
        assert!(
            output.expect_stderr_contains("stopping").is_ok(),
            "{output}"
        );
    }

    #[test]
    fn a_server_that_exits_without_listening_is_reported_with_its_stderr() {
        let script = "echo 'error: cannot bind' >&2; exit 1";
        let error = Server::start(
            Path::new(SH),
            &["-c", script],
            &[Listener::Framed],
            in_secs(30),
        )
        .unwrap_err();
        let error = error.to_string();
        assert!(
            error.contains("without printing its listening line for framed"),
            "{error}"
        );
        assert!(error.contains("error: cannot bind"), "{error}");
    }

    #[test]
    fn a_server_that_never_listens_is_killed_and_reported_with_its_stderr() {
        let script = "printf 'still starting' >&2; exec sleep 30";
        let deadline = Instant::now() + Duration::from_millis(200);
        let error = Server::start(
            Path::new(SH),
            &["-c", script],
            &[Listener::Framed],
            deadline,
        )
        .unwrap_err();
        let error = format!("{error:#}");
        assert!(
            error.contains("did not print its listening line for framed"),
            "{error}"
        );
        assert!(error.contains("was killed"), "{error}");
        assert!(error.contains("still starting"), "{error}");
    }

    #[test]
    fn a_server_is_found_by_all_its_listening_lines_in_any_order() {
        let script = "echo 'echo-server listening on 127.0.0.1:7 (udp)'; \
                      echo 'a line in between'; \
                      echo 'echo-server listening on 127.0.0.1:8 (metrics)'; \
                      echo 'echo-server listening on 127.0.0.1:6 (raw)'; \
                      exec sleep 30";
        let expected = [Listener::Raw, Listener::Udp, Listener::Metrics];
        let server = Server::start(Path::new(SH), &["-c", script], &expected, in_secs(30)).unwrap();
        assert_eq!(server.addr(), "127.0.0.1:6".parse().unwrap());
        assert_eq!(
            server.addr_of(Listener::Udp).unwrap(),
            "127.0.0.1:7".parse().unwrap()
        );
        assert_eq!(
            server.addr_of(Listener::Metrics).unwrap(),
            "127.0.0.1:8".parse().unwrap()
        );
        let error = server.addr_of(Listener::Framed).unwrap_err();
        assert_eq!(error.to_string(), "the server has no framed listener");
    }

    #[test]
    fn a_server_that_lacks_or_adds_a_listener_is_reported() {
        let framed_only = "echo 'echo-server listening on 127.0.0.1:6 (framed)'";
        let expected = [Listener::Framed, Listener::Udp];
        let error =
            Server::start(Path::new(SH), &["-c", framed_only], &expected, in_secs(30)).unwrap_err();
        let error = format!("{error:#}");
        assert!(error.contains("listening line for udp"), "{error}");

        let wrong_mode = "echo 'echo-server listening on 127.0.0.1:6 (framed)'; exec sleep 30";
        let error = Server::start(
            Path::new(SH),
            &["-c", wrong_mode],
            &[Listener::Raw],
            in_secs(30),
        )
        .unwrap_err();
        let error = format!("{error:#}");
        assert!(
            error.contains("expected to announce raw once each"),
            "{error}"
        );
    }

    #[test]
    fn patterns_are_deterministic_and_distinct() {
        assert_eq!(pattern(7, 100), pattern(7, 100));
        assert_ne!(pattern(7, 100), pattern(8, 100));
        assert_eq!(pattern(1, 3), [0, 0, 0]);
        assert_eq!(pattern(1, 0), Vec::<u8>::new());
        assert_eq!(pattern(0x0102_0304, 4), [1, 2, 3, 4]);
        assert_eq!(pattern(3, 4096).len(), 4096);
    }

    #[test]
    fn describes_differences() {
        assert_eq!(
            describe_difference(b"abcd", b"abXd"),
            "sent 4 bytes, got 4 bytes, first difference at byte 2"
        );
        assert_eq!(
            describe_difference(b"abcd", b"ab"),
            "sent 4 bytes, got 2 bytes, first difference at byte 2"
        );
    }

    /// A one-connection server that sends back every byte it gets, after
    /// passing it through `corrupt`; a byte-for-byte echo is a frame echo.
    fn byte_echo(corrupt: fn(&mut [u8])) -> SocketAddr {
        let listener = TcpListener::bind("127.0.0.1:0").unwrap();
        let addr = listener.local_addr().unwrap();
        thread::spawn(move || {
            let (mut socket, _) = listener.accept().unwrap();
            let mut buf = [0; 8192];
            loop {
                match socket.read(&mut buf) {
                    Ok(0) | Err(_) => break,
                    Ok(n) => {
                        corrupt(&mut buf[..n]);
                        if socket.write_all(&buf[..n]).is_err() {
                            break;
                        }
                    }
                }
            }
        });
        addr
    }

    #[test]
    fn echo_all_accepts_an_exact_echo_of_a_large_burst() {
        let deadline = Instant::now() + Duration::from_secs(30);
        let stream = connect(byte_echo(|_| {}), deadline).unwrap();
        let frames: Vec<Vec<u8>> = (0..200).map(|i| pattern(i, 4096)).collect();
        echo_all(&stream, &frames, deadline, |stream| {
            Ok(stream.shutdown(Shutdown::Write)?)
        })
        .unwrap();
        expect_eof(&stream, deadline).unwrap();
    }

    #[test]
    fn echo_all_reports_a_corrupted_echo() {
        let deadline = Instant::now() + Duration::from_secs(30);
        let stream = connect(
            byte_echo(|bytes| {
                if let Some(last) = bytes.last_mut() {
                    *last ^= 0xff;
                }
            }),
            deadline,
        )
        .unwrap();
        let error = echo_all(&stream, &[b"hello".to_vec()], deadline, |_| Ok(())).unwrap_err();
        assert!(
            error.to_string().contains("echo 1 of 1 differs"),
            "{error:#}"
        );
    }

    #[test]
    fn reads_give_up_at_the_deadline() {
        // A listener that accepts (through the backlog) but never answers.
        let listener = TcpListener::bind("127.0.0.1:0").unwrap();
        let deadline = Instant::now() + Duration::from_millis(200);
        let stream = connect(listener.local_addr().unwrap(), deadline).unwrap();
        let error = Deadlined::new(&stream, deadline).read_frame().unwrap_err();
        let kind = error
            .downcast_ref::<echo_proto::FrameError>()
            .map(|e| match e {
                echo_proto::FrameError::Io(io) => io.kind(),
                _ => io::ErrorKind::Other,
            });
        assert!(
            matches!(
                kind,
                Some(io::ErrorKind::WouldBlock | io::ErrorKind::TimedOut)
            ),
            "{error:#}"
        );
    }

    #[test]
    fn refused_connections_are_recognised() {
        let deadline = Instant::now() + Duration::from_secs(10);
        expect_refused(closed_port().unwrap(), deadline).unwrap();
        let listener = TcpListener::bind("127.0.0.1:0").unwrap();
        assert!(expect_refused(listener.local_addr().unwrap(), deadline).is_err());
    }
}
