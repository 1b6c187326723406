//! [`Spawn`] and [`Process`]: a child process with its output collected in
//! the background, waited on with deadlines, and killed when dropped.

use std::ffi::OsStr;
use std::fmt;
use std::io::{Read, Write};
use std::net::SocketAddr;
use std::path::Path;
use std::process::{Child, ChildStderr, ChildStdin, Command, ExitStatus, Stdio};
use std::sync::{Arc, Condvar, Mutex, MutexGuard, PoisonError};
use std::thread;
use std::time::{Duration, Instant};

use echo_server::listening::{Kind, Listening};
use nix::sys::signal::{self, Signal};
use nix::unistd::Pid;

use crate::error::Error;
use crate::{POLL_INTERVAL, procfs};

/// How long a report of a process's output waits for the rest of it, once
/// the process has exited or been killed: its pipes are closed by then, so
/// what it wrote is at hand.
const OUTPUT_GRACE: Duration = Duration::from_secs(1);

/// Whether the child must not inherit the environment variable `name`: the
/// binaries' own settings (`ECHO_*`) and `RUST_LOG`, so that a developer's
/// settings cannot change what a test tests. A test sets what it needs with
/// [`Spawn::env`].
fn is_isolated(name: &OsStr) -> bool {
    name == "RUST_LOG" || name.as_encoded_bytes().starts_with(b"ECHO_")
}

/// A process to start: the program, its arguments, its environment and its
/// standard input.
///
/// Its standard output and error are piped and collected (unless
/// [`close_stdout`](Self::close_stdout) says otherwise); its standard input
/// is the bytes given to [`stdin`](Self::stdin), then closed, or a pipe the
/// test writes to ([`keep_stdin_open`](Self::keep_stdin_open)), or nothing
/// at all.
///
/// ```
/// use echo_testkit::{Spawn, deadline};
///
/// let output = Spawn::new("sh")
///     .args(["-c", "cat; echo \"$GREETING\" >&2; exit 3"])
///     .env("GREETING", "hello")
///     .stdin("piped in")
///     .run(deadline())?;
/// assert_eq!(output.status.code(), Some(3));
/// assert_eq!(output.stdout, b"piped in");
/// assert_eq!(output.stderr_text(), "hello\n");
/// # Ok::<(), echo_testkit::Error>(())
/// ```
#[derive(Debug)]
pub struct Spawn {
    command: Command,
    name: String,
    stdin: Option<Vec<u8>>,
    keep_stdin_open: bool,
    close_stdout: bool,
    stall_stderr: bool,
}

impl Spawn {
    /// A process running `program`, found on `PATH` if it is a bare name.
    ///
    /// It does not inherit `RUST_LOG` nor any `ECHO_*` variable, and it gets
    /// `NO_COLOR=1`, so that what it prints does not depend on who runs the
    /// test.
    pub fn new(program: impl AsRef<OsStr>) -> Spawn {
        let program = program.as_ref();
        let name = Path::new(program)
            .file_name()
            .unwrap_or(program)
            .to_string_lossy()
            .into_owned();
        let mut command = Command::new(program);
        for (variable, _) in std::env::vars_os() {
            if is_isolated(&variable) {
                command.env_remove(variable);
            }
        }
        command.env("NO_COLOR", "1");
        Spawn {
            command,
            name,
            stdin: None,
            keep_stdin_open: false,
            close_stdout: false,
            stall_stderr: false,
        }
    }

    /// A process running the workspace binary `name` (`echo-server`,
    /// `echo-client`), found or built by [`binary::path`](crate::binary::path).
    ///
    /// ```no_run
    /// use echo_testkit::{Spawn, deadline};
    ///
    /// let output = Spawn::bin("echo-server")?.arg("--version").run(deadline())?;
    /// assert!(output.stdout_text().starts_with("echo-server "));
    /// # Ok::<(), echo_testkit::Error>(())
    /// ```
    pub fn bin(name: &str) -> Result<Spawn, Error> {
        Ok(Spawn::new(crate::binary::path(name)?))
    }

    /// Adds an argument.
    pub fn arg(mut self, arg: impl AsRef<OsStr>) -> Spawn {
        self.command.arg(arg);
        self
    }

    /// Adds arguments.
    pub fn args<S: AsRef<OsStr>>(mut self, args: impl IntoIterator<Item = S>) -> Spawn {
        self.command.args(args);
        self
    }

    /// Sets an environment variable, the isolated ones included.
    pub fn env(mut self, name: impl AsRef<OsStr>, value: impl AsRef<OsStr>) -> Spawn {
        self.command.env(name, value);
        self
    }

    /// Gives the process these bytes on its standard input, which is then
    /// closed.
    pub fn stdin(mut self, bytes: impl Into<Vec<u8>>) -> Spawn {
        self.stdin = Some(bytes.into());
        self
    }

    /// Gives the process a standard input that stays open, for the test to
    /// write to with [`Process::write_stdin`], until
    /// [`Process::close_stdin`] or the end of the process. Bytes given to
    /// [`stdin`](Self::stdin) are ignored.
    ///
    /// ```
    /// use echo_testkit::{Pipe, Spawn, deadline};
    ///
    /// let mut process = Spawn::new("sh")
    ///     .args(["-c", "read line; echo \"got $line\"; cat"])
    ///     .keep_stdin_open()
    ///     .start()?;
    /// process.write_stdin(b"one\n")?;
    /// process.wait_for_line(Pipe::Stdout, deadline(), |line| line == "got one")?;
    /// // Still reading: only closing its input ends `cat`.
    /// process.write_stdin(b"two\n")?;
    /// process.close_stdin();
    /// assert_eq!(process.wait(deadline())?.stdout_text(), "got one\ntwo\n");
    /// # Ok::<(), echo_testkit::Error>(())
    /// ```
    pub fn keep_stdin_open(mut self) -> Spawn {
        self.keep_stdin_open = true;
        self
    }

    /// Gives the process a standard output whose reading end is closed as
    /// soon as it starts, as `head` closes it once it has read enough: every
    /// write to it fails with a broken pipe (`EPIPE`).
    ///
    /// ```
    /// use echo_testkit::{Spawn, deadline};
    ///
    /// // `yes` writes forever, and stops only when its output is closed.
    /// let output = Spawn::new("yes").close_stdout().run(deadline())?;
    /// assert!(!output.status.success());
    /// assert!(output.stdout.is_empty());
    /// # Ok::<(), echo_testkit::Error>(())
    /// ```
    pub fn close_stdout(mut self) -> Spawn {
        self.close_stdout = true;
        self
    }

    /// Gives the process a standard error that nobody reads, as a stuck
    /// log collector would: once the pipe's buffer (64 KiB on Linux) is
    /// full, its writes block. [`Process::resume_stderr`] starts reading it.
    ///
    /// ```
    /// use echo_testkit::{Pipe, Spawn, deadline};
    ///
    /// let mut process = Spawn::new("sh")
    ///     .args(["-c", "echo held >&2; echo done; sleep 30"])
    ///     .stall_stderr()
    ///     .start()?;
    /// process.wait_for_line(Pipe::Stdout, deadline(), |line| line == "done")?;
    /// assert_eq!(process.stderr_text(), "");
    /// process.resume_stderr();
    /// process.wait_for_line(Pipe::Stderr, deadline(), |line| line == "held")?;
    /// # Ok::<(), echo_testkit::Error>(())
    /// ```
    pub fn stall_stderr(mut self) -> Spawn {
        self.stall_stderr = true;
        self
    }

    /// Starts the process.
    pub fn start(mut self) -> Result<Process, Error> {
        let stdin = if self.stdin.is_some() || self.keep_stdin_open {
            Stdio::piped()
        } else {
            Stdio::null()
        };
        let mut child = self
            .command
            .stdin(stdin)
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .spawn()
            .map_err(|source| Error::Spawn {
                program: self.command.get_program().to_string_lossy().into_owned(),
                source,
            })?;
        // A thread, because a child may not read its input before it writes
        // its output. A failed write means the child exited or closed its
        // input early, which its status and output then show.
        let open_stdin = if self.keep_stdin_open {
            child.stdin.take()
        } else {
            if let (Some(mut pipe), Some(bytes)) = (child.stdin.take(), self.stdin.take()) {
                thread::spawn(move || {
                    let _ = pipe.write_all(&bytes);
                });
            }
            None
        };
        if self.close_stdout {
            drop(child.stdout.take());
        }
        let stdout = Capture::collect(child.stdout.take());
        let (stderr, stalled_stderr) = if self.stall_stderr {
            (Capture::collect(None::<ChildStderr>), child.stderr.take())
        } else {
            (Capture::collect(child.stderr.take()), None)
        };
        Ok(Process {
            name: self.name,
            child,
            status: None,
            stdin: open_stdin,
            stdout,
            stderr,
            stalled_stderr,
        })
    }

    /// Starts the process and waits for it to exit, as [`Process::wait`]
    /// does.
    pub fn run(self, deadline: Instant) -> Result<Output, Error> {
        self.start()?.wait(deadline)
    }
}

/// A running child process.
///
/// Its standard output and error are read as they come by threads of their
/// own, so it never blocks on a full pipe, and a test can wait for a line
/// while the process runs. Every wait ends at a deadline.
///
/// Dropping it kills the process (SIGKILL) and reaps it, on every way out of
/// a test, a panic included; when the test is panicking, the drop also
/// prints the process's output, which the test harness shows with the
/// failure.
#[derive(Debug)]
pub struct Process {
    name: String,
    child: Child,
    /// Its exit status, once reaped: from then on its pid may be another
    /// process's, and it is never signalled.
    status: Option<ExitStatus>,
    /// Its standard input, when the test keeps it open.
    stdin: Option<ChildStdin>,
    stdout: Arc<Capture>,
    stderr: Arc<Capture>,
    /// Its standard error, held open and unread, with
    /// [`Spawn::stall_stderr`].
    stalled_stderr: Option<ChildStderr>,
}

impl Process {
    /// Starts reading the standard error that [`Spawn::stall_stderr`] left
    /// unread; what was written to it from now on (the pipe's buffer
    /// included) is captured as usual. Does nothing otherwise.
    pub fn resume_stderr(&mut self) {
        if let Some(pipe) = self.stalled_stderr.take() {
            self.stderr = Capture::collect(Some(pipe));
        }
    }

    /// Its process id.
    pub fn pid(&self) -> u32 {
        self.child.id()
    }

    /// Writes `bytes` to its standard input, which
    /// [`Spawn::keep_stdin_open`] kept open.
    ///
    /// Fails if it was not kept open, was closed, or the process stopped
    /// reading it.
    pub fn write_stdin(&mut self, bytes: &[u8]) -> Result<(), Error> {
        let pipe = self.stdin.as_mut().ok_or_else(|| {
            std::io::Error::new(
                std::io::ErrorKind::NotConnected,
                format!("{}'s stdin is not open to the test", self.name),
            )
        })?;
        pipe.write_all(bytes)?;
        Ok(pipe.flush()?)
    }

    /// Closes its standard input: it reads the end of its input.
    pub fn close_stdin(&mut self) {
        self.stdin = None;
    }

    /// Waits until it has printed a listening line (see
    /// [`echo_server::listening`]) for each of `kinds`, and returns their
    /// addresses in the same order.
    ///
    /// Fails if its output ends first, or at the deadline; either error
    /// carries its output.
    ///
    /// ```
    /// use echo_testkit::{Kind, Spawn, deadline};
    ///
    /// let server = Spawn::new("sh")
    ///     .args(["-c", "echo 'echo-server listening on 127.0.0.1:7 (udp)'
    ///                   echo 'echo-server listening on 127.0.0.1:6 (raw)'
    ///                   exec sleep 30"])
    ///     .start()?;
    /// let [tcp, udp] = server.listening([Kind::Raw, Kind::Udp], deadline())?;
    /// assert_eq!((tcp.port(), udp.port()), (6, 7));
    /// # Ok::<(), echo_testkit::Error>(())
    /// ```
    pub fn listening<const N: usize>(
        &self,
        kinds: [Kind; N],
        deadline: Instant,
    ) -> Result<[SocketAddr; N], Error> {
        let what = || {
            let kinds: Vec<&str> = kinds.iter().map(|kind| kind.as_str()).collect();
            format!("{}'s listening lines ({})", self.name, kinds.join(", "))
        };
        self.wait_output(&self.stdout, deadline, what, |bytes| {
            let announced: Vec<Listening> =
                lines(bytes).filter_map(|line| line.parse().ok()).collect();
            let addrs: Vec<SocketAddr> = kinds
                .iter()
                .filter_map(|kind| {
                    announced
                        .iter()
                        .find(|listening| listening.kind == *kind)
                        .map(|listening| listening.addr)
                })
                .collect();
            addrs.try_into().ok()
        })
    }

    /// Waits until it has printed a line on `pipe` for which `matches`
    /// holds, and returns that line (without its line ending). A line
    /// printed before the call counts.
    ///
    /// ```
    /// use echo_testkit::{Pipe, Spawn, deadline};
    ///
    /// let process = Spawn::new("sh")
    ///     .args(["-c", "echo starting >&2; echo 'ready on 5' >&2; exec sleep 30"])
    ///     .start()?;
    /// let line = process.wait_for_line(Pipe::Stderr, deadline(), |line| line.starts_with("ready"))?;
    /// assert_eq!(line, "ready on 5");
    /// # Ok::<(), echo_testkit::Error>(())
    /// ```
    pub fn wait_for_line(
        &self,
        pipe: Pipe,
        deadline: Instant,
        mut matches: impl FnMut(&str) -> bool,
    ) -> Result<String, Error> {
        let capture = match pipe {
            Pipe::Stdout => &self.stdout,
            Pipe::Stderr => &self.stderr,
        };
        let what = || format!("a certain line on {}'s {pipe}", self.name);
        self.wait_output(capture, deadline, what, |bytes| {
            lines(bytes).find(|line| matches(line))
        })
    }

    /// Waits until `found` finds something in what `capture` holds, and
    /// turns the end of the output or the deadline into an error about
    /// `what`.
    fn wait_output<T>(
        &self,
        capture: &Capture,
        deadline: Instant,
        what: impl FnOnce() -> String,
        found: impl FnMut(&[u8]) -> Option<T>,
    ) -> Result<T, Error> {
        let started = Instant::now();
        match capture.wait_for(deadline, found) {
            Waited::Found(value) => Ok(value),
            Waited::Ended => Err(Error::Ended {
                what: what(),
                output: self.report(Instant::now() + OUTPUT_GRACE),
            }),
            Waited::Deadline => Err(Error::Deadline {
                what: what(),
                waited: started.elapsed(),
                output: self.report(Instant::now()),
            }),
        }
    }

    /// What it has written to stdout so far, as text (invalid UTF-8
    /// replaced).
    pub fn stdout_text(&self) -> String {
        String::from_utf8_lossy(&self.stdout.bytes()).into_owned()
    }

    /// What it has written to stderr so far, as text (invalid UTF-8
    /// replaced).
    pub fn stderr_text(&self) -> String {
        String::from_utf8_lossy(&self.stderr.bytes()).into_owned()
    }

    /// Sends it `signal`.
    ///
    /// Fails once it has been waited for, since its pid may then be another
    /// process's.
    pub fn signal(&self, signal: Signal) -> Result<(), Error> {
        if self.status.is_some() {
            return Err(Error::Exited {
                name: self.name.clone(),
                signal,
            });
        }
        let pid = self.pid();
        let send = |source| Error::Signal {
            pid,
            signal,
            source,
        };
        let raw = i32::try_from(pid).map_err(|_| send(nix::Error::ESRCH))?;
        signal::kill(Pid::from_raw(raw), signal).map_err(send)
    }

    /// Sends it SIGTERM, the polite request to stop.
    pub fn terminate(&self) -> Result<(), Error> {
        self.signal(Signal::SIGTERM)
    }

    /// Sends it SIGTERM and waits for it to exit, as [`wait`](Self::wait)
    /// does.
    ///
    /// ```
    /// use echo_testkit::{Pipe, Spawn, deadline};
    ///
    /// let mut process = Spawn::new("sh")
    ///     .args(["-c", "trap 'echo bye; exit 0' TERM; echo up; while :; do sleep 0.01; done"])
    ///     .start()?;
    /// process.wait_for_line(Pipe::Stdout, deadline(), |line| line == "up")?;
    /// let output = process.stop(deadline())?;
    /// assert!(output.status.success());
    /// assert_eq!(output.stdout_text(), "up\nbye\n");
    /// # Ok::<(), echo_testkit::Error>(())
    /// ```
    pub fn stop(&mut self, deadline: Instant) -> Result<Output, Error> {
        self.terminate()?;
        self.wait(deadline)
    }

    /// Kills it with SIGKILL and returns how it ended and what it wrote.
    pub fn kill(&mut self) -> Result<Output, Error> {
        if self.status.is_none() {
            self.child.kill()?;
        }
        self.wait(Instant::now() + OUTPUT_GRACE)
    }

    /// Waits for it to exit and to close its output, and returns its exit
    /// status and all it wrote.
    ///
    /// At the deadline it is left running (the drop kills it) and the error
    /// carries its output so far.
    pub fn wait(&mut self, deadline: Instant) -> Result<Output, Error> {
        let started = Instant::now();
        let status = loop {
            if let Some(status) = self.status {
                break status;
            }
            if let Some(status) = self.child.try_wait()? {
                self.status = Some(status);
                break status;
            }
            if Instant::now() >= deadline {
                return Err(Error::Deadline {
                    what: format!("{} (pid {}) to exit", self.name, self.pid()),
                    waited: started.elapsed(),
                    output: self.report(Instant::now()),
                });
            }
            thread::sleep(POLL_INTERVAL.min(deadline.saturating_duration_since(Instant::now())));
        };
        // The pipes close when it exits, unless a process it started holds
        // them open.
        for (capture, stream) in [(&self.stdout, "stdout"), (&self.stderr, "stderr")] {
            if matches!(capture.wait_for(deadline, |_| None::<()>), Waited::Deadline) {
                return Err(Error::Deadline {
                    what: format!("{} to close its {stream} after it exited", self.name),
                    waited: started.elapsed(),
                    output: self.report(Instant::now()),
                });
            }
        }
        Ok(Output {
            status,
            stdout: self.stdout.bytes(),
            stderr: self.stderr.bytes(),
        })
    }

    /// Its resident memory now, in KiB (`VmRSS` of `/proc/PID/status`).
    pub fn rss_kib(&self) -> Result<u64, Error> {
        procfs::memory_kib(self.pid(), "VmRSS")
    }

    /// The most resident memory it has had, in KiB (`VmHWM`).
    pub fn peak_rss_kib(&self) -> Result<u64, Error> {
        procfs::memory_kib(self.pid(), "VmHWM")
    }

    /// How many file descriptors it has open now.
    pub fn open_fds(&self) -> Result<usize, Error> {
        procfs::open_fds(self.pid())
    }

    /// Its name, pid, and output so far, for a failure message; waits for
    /// the rest of the output until `deadline` if the process has ended.
    fn report(&self, deadline: Instant) -> String {
        for capture in [&self.stdout, &self.stderr] {
            capture.wait_for(deadline, |_| None::<()>);
        }
        format!(
            "\n--- {name} (pid {pid}) stdout ---\n{}\n--- {name} (pid {pid}) stderr ---\n{}",
            String::from_utf8_lossy(&self.stdout.bytes()).trim_end(),
            String::from_utf8_lossy(&self.stderr.bytes()).trim_end(),
            name = self.name,
            pid = self.pid(),
        )
    }
}

impl fmt::Display for Process {
    /// Its name, pid, and all it has written so far.
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.report(Instant::now()).trim_start())
    }
}

impl Drop for Process {
    fn drop(&mut self) {
        if self.status.is_none() {
            // Killing and reaping a child that has exited on its own is
            // harmless: it has not been reaped, so its pid is still its own.
            let _ = self.child.kill();
            let _ = self.child.wait();
        }
        if thread::panicking() {
            eprintln!("{}", self.report(Instant::now() + OUTPUT_GRACE));
        }
    }
}

/// One of a process's output streams.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Pipe {
    /// Standard output, where the binaries write data and listening lines.
    Stdout,
    /// Standard error, where they write logs and errors.
    Stderr,
}

impl fmt::Display for Pipe {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            Pipe::Stdout => "stdout",
            Pipe::Stderr => "stderr",
        })
    }
}

/// How a process ended and all it wrote.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Output {
    /// Its exit status.
    pub status: ExitStatus,
    /// All it wrote to stdout.
    pub stdout: Vec<u8>,
    /// All it wrote to stderr.
    pub stderr: Vec<u8>,
}

impl Output {
    /// Its stdout as text, invalid UTF-8 replaced.
    pub fn stdout_text(&self) -> String {
        String::from_utf8_lossy(&self.stdout).into_owned()
    }

    /// Its stderr as text, invalid UTF-8 replaced.
    pub fn stderr_text(&self) -> String {
        String::from_utf8_lossy(&self.stderr).into_owned()
    }
}

impl fmt::Display for Output {
    /// The status and both streams, escaped onto one line each.
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(
            f,
            "{}\n--- stdout ---\n{}\n--- stderr ---\n{}",
            self.status,
            self.stdout.escape_ascii(),
            self.stderr.escape_ascii()
        )
    }
}

/// The complete lines of `bytes`, without their line endings; a last line
/// without `\n` is not complete yet. Invalid UTF-8 is replaced.
fn lines(bytes: &[u8]) -> impl Iterator<Item = String> + '_ {
    let complete = bytes
        .iter()
        .rposition(|&byte| byte == b'\n')
        .map_or(0, |end| end + 1);
    bytes[..complete]
        .split_inclusive(|&byte| byte == b'\n')
        .map(|line| {
            let line = line.strip_suffix(b"\n").unwrap_or(line);
            let line = line.strip_suffix(b"\r").unwrap_or(line);
            String::from_utf8_lossy(line).into_owned()
        })
}

/// What a wait on a [`Capture`] came to.
enum Waited<T> {
    Found(T),
    /// The stream ended without it.
    Ended,
    Deadline,
}

/// One output stream of a child, collected by a thread of its own.
#[derive(Debug, Default)]
struct Capture {
    state: Mutex<Captured>,
    /// Told whenever bytes arrive or the stream ends.
    changed: Condvar,
}

#[derive(Debug, Default)]
struct Captured {
    bytes: Vec<u8>,
    ended: bool,
}

impl Capture {
    /// Starts reading `pipe` to its end on a thread of its own. A missing
    /// pipe counts as an empty stream that has ended.
    fn collect(pipe: Option<impl Read + Send + 'static>) -> Arc<Capture> {
        let capture = Arc::new(Capture::default());
        let Some(mut pipe) = pipe else {
            capture.lock().ended = true;
            return capture;
        };
        let writer = Arc::clone(&capture);
        thread::spawn(move || {
            let mut buf = [0; 8192];
            loop {
                // A read error ends the stream as its end would: what was
                // read before it is kept.
                let read = pipe.read(&mut buf).unwrap_or(0);
                let mut state = writer.lock();
                if read == 0 {
                    state.ended = true;
                } else {
                    state.bytes.extend_from_slice(&buf[..read]);
                }
                let ended = state.ended;
                drop(state);
                writer.changed.notify_all();
                if ended {
                    break;
                }
            }
        });
        capture
    }

    /// The state, whether or not a holder of the lock panicked: the bytes
    /// are only ever appended to, so they are whole either way.
    fn lock(&self) -> MutexGuard<'_, Captured> {
        self.state.lock().unwrap_or_else(PoisonError::into_inner)
    }

    fn bytes(&self) -> Vec<u8> {
        self.lock().bytes.clone()
    }

    /// Waits until `found` finds something in the bytes, the stream ends,
    /// or the deadline passes, whichever comes first.
    fn wait_for<T>(
        &self,
        deadline: Instant,
        mut found: impl FnMut(&[u8]) -> Option<T>,
    ) -> Waited<T> {
        let mut state = self.lock();
        loop {
            if let Some(value) = found(&state.bytes) {
                return Waited::Found(value);
            }
            if state.ended {
                return Waited::Ended;
            }
            let left = deadline.saturating_duration_since(Instant::now());
            if left.is_zero() {
                return Waited::Deadline;
            }
            state = self
                .changed
                .wait_timeout(state, left)
                .unwrap_or_else(PoisonError::into_inner)
                .0;
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::deadline;

    fn sh(script: &str) -> Spawn {
        Spawn::new("sh").args(["-c", script])
    }

    fn soon() -> Instant {
        Instant::now() + Duration::from_millis(200)
    }

    #[test]
    fn collects_binary_output_and_the_exit_status() {
        let output = sh("printf 'a\\000\\377\\nno newline'; printf 'to stderr' >&2; exit 3")
            .run(deadline())
            .unwrap();
        assert_eq!(output.status.code(), Some(3));
        assert_eq!(output.stdout, b"a\x00\xff\nno newline");
        assert_eq!(output.stderr, b"to stderr");
        assert!(
            output.to_string().contains("a\\x00\\xff\\nno newline"),
            "{output}"
        );
    }

    #[test]
    fn feeds_stdin_and_closes_it() {
        let bytes = b"in\x00\xff\nno newline";
        let output = sh("cat").stdin(&bytes[..]).run(deadline()).unwrap();
        assert_eq!(output.stdout, bytes);
        // Without stdin bytes, stdin is empty rather than left open.
        assert_eq!(sh("cat").run(deadline()).unwrap().stdout, b"");
    }

    #[test]
    fn isolates_the_binaries_settings_from_the_caller() {
        // Whatever the caller's environment holds, the child sees none of
        // the isolated variables but those set for it.
        let output = sh("echo \"[$RUST_LOG][$NO_COLOR][$ECHO_SET]\"")
            .env("ECHO_SET", "kept")
            .run(deadline())
            .unwrap();
        assert_eq!(output.stdout_text(), "[][1][kept]\n");
        assert!(is_isolated(OsStr::new("ECHO_MODE")));
        assert!(is_isolated(OsStr::new("RUST_LOG")));
        assert!(!is_isolated(OsStr::new("PATH")));
        assert!(!is_isolated(OsStr::new("MY_ECHO_X")));
    }

    #[test]
    fn a_program_that_cannot_start_is_an_error_naming_it() {
        let error = Spawn::new("/nonexistent/program").start().unwrap_err();
        assert!(
            error
                .to_string()
                .starts_with("cannot start /nonexistent/program: "),
            "{error}"
        );
    }

    #[test]
    fn waits_for_a_line_while_the_process_runs() {
        let process = sh("echo one; sleep 0.1; echo two; exec sleep 30")
            .start()
            .unwrap();
        assert_eq!(
            process
                .wait_for_line(Pipe::Stdout, deadline(), |line| line == "two")
                .unwrap(),
            "two"
        );
        assert_eq!(process.stdout_text(), "one\ntwo\n");
        // A line printed earlier is found at once.
        assert_eq!(
            process
                .wait_for_line(Pipe::Stdout, soon(), |line| line.starts_with('o'))
                .unwrap(),
            "one"
        );
    }

    #[test]
    fn a_line_that_never_comes_is_a_deadline_error_with_the_output() {
        let process = sh("echo 'still starting' >&2; exec sleep 30")
            .start()
            .unwrap();
        process
            .wait_for_line(Pipe::Stderr, deadline(), |line| line == "still starting")
            .unwrap();
        let error = process
            .wait_for_line(Pipe::Stderr, soon(), |line| line == "ready")
            .unwrap_err();
        let message = error.to_string();
        assert!(matches!(error, Error::Deadline { .. }), "{message}");
        assert!(
            message.contains("a certain line on sh's stderr"),
            "{message}"
        );
        assert!(message.contains("still starting"), "{message}");
    }

    #[test]
    fn a_line_after_which_the_output_ends_is_an_ended_error() {
        let process = sh("echo 'error: cannot bind' >&2; exit 1").start().unwrap();
        let error = process.listening([Kind::Framed], deadline()).unwrap_err();
        let message = error.to_string();
        assert!(matches!(error, Error::Ended { .. }), "{message}");
        assert!(message.contains("listening lines (framed)"), "{message}");
        assert!(message.contains("error: cannot bind"), "{message}");
    }

    #[test]
    fn finds_every_listening_line_asked_for_in_any_order() {
        let process = sh("echo 'echo-server listening on 127.0.0.1:7 (udp)'; \
                          echo 'a line in between'; \
                          echo 'echo-server listening on [::1]:8 (metrics)'; \
                          echo 'echo-server listening on 127.0.0.1:6 (raw)'; \
                          exec sleep 30")
        .start()
        .unwrap();
        let [metrics, raw] = process
            .listening([Kind::Metrics, Kind::Raw], deadline())
            .unwrap();
        assert_eq!(metrics, "[::1]:8".parse().unwrap());
        assert_eq!(raw, "127.0.0.1:6".parse().unwrap());
        let error = process.listening([Kind::Framed], soon()).unwrap_err();
        assert!(matches!(error, Error::Deadline { .. }), "{error}");
    }

    #[test]
    fn splits_complete_lines_only() {
        let all: Vec<String> = lines(b"a\r\n\nb\xff\nunfinished").collect();
        assert_eq!(all, ["a", "", "b\u{fffd}"]);
        assert_eq!(lines(b"no newline").count(), 0);
        assert_eq!(lines(b"").count(), 0);
    }

    #[test]
    fn sigterm_stops_a_process_that_traps_it() {
        let mut process = sh("trap 'echo stopping >&2; exit 0' TERM; echo up; \
                              while :; do sleep 0.01; done")
        .start()
        .unwrap();
        process
            .wait_for_line(Pipe::Stdout, deadline(), |line| line == "up")
            .unwrap();
        let output = process.stop(deadline()).unwrap();
        assert!(output.status.success(), "{output}");
        assert_eq!(output.stderr_text(), "stopping\n");
        // Once reaped, its pid is not its own any more: no more signals.
        let error = process.terminate().unwrap_err();
        assert!(matches!(error, Error::Exited { .. }), "{error}");
        assert!(process.wait(soon()).unwrap().status.success());
    }

    #[test]
    fn kill_ends_a_process_that_ignores_sigterm() {
        use std::os::unix::process::ExitStatusExt;

        let mut process = sh("trap '' TERM; echo up; while :; do sleep 0.01; done")
            .start()
            .unwrap();
        process
            .wait_for_line(Pipe::Stdout, deadline(), |line| line == "up")
            .unwrap();
        process.terminate().unwrap();
        let error = process.wait(soon()).unwrap_err();
        assert!(error.to_string().contains("sh (pid"), "{error}");
        assert!(error.to_string().contains("to exit"), "{error}");
        let output = process.kill().unwrap();
        assert_eq!(output.status.signal(), Some(Signal::SIGKILL as i32));
    }

    #[test]
    fn dropping_a_process_kills_it_even_in_a_panic() {
        let process = sh("exec sleep 30").start().unwrap();
        let pid = Pid::from_raw(i32::try_from(process.pid()).unwrap());
        let panicked = std::panic::catch_unwind(std::panic::AssertUnwindSafe(move || {
            let _process = process;
            panic!("a failing test");
        }));
        assert!(panicked.is_err());
        // Killed and reaped: the pid is gone.
        assert_eq!(signal::kill(pid, None), Err(nix::Error::ESRCH));
    }

    #[test]
    fn reads_its_memory_and_descriptors() {
        let process = sh("exec sleep 30").start().unwrap();
        assert!(process.rss_kib().unwrap() > 0);
        assert!(process.peak_rss_kib().unwrap() >= process.rss_kib().unwrap());
        // At least stdin, stdout and stderr.
        assert!(process.open_fds().unwrap() >= 3);
    }
}
