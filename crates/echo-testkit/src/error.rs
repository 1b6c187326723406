//! [`Error`]: everything the kit can fail at, each with what it was doing.

use std::fmt;
use std::io;
use std::net::SocketAddr;
use std::path::PathBuf;
use std::time::Duration;

use nix::sys::signal::Signal;

/// A failure of the kit: a binary missing, a process that did not do what
/// was waited for in time, a connection that did not echo what was sent.
///
/// The variants about a process carry its output so far in `output` (empty
/// when there is none to show), so that the message alone says why.
#[derive(thiserror::Error)]
#[non_exhaustive]
pub enum Error {
    /// The binary is not where it should be.
    #[error("there is no `{name}` at {}", path.display())]
    NoBinary {
        /// The binary's name.
        name: String,
        /// Where it was looked for.
        path: PathBuf,
    },
    /// Building the workspace's binaries failed.
    #[error(transparent)]
    Build(#[from] BuildError),
    /// The program could not be started.
    #[error("cannot start {program}: {source}")]
    Spawn {
        /// The program, as given.
        program: String,
        /// Why it could not be started.
        source: io::Error,
    },
    /// The deadline passed before what was waited for happened.
    #[error("gave up waiting for {what} after {waited:?}{output}")]
    Deadline {
        /// What was waited for.
        what: String,
        /// How long it was waited for.
        waited: Duration,
        /// The process's output so far, if a process was waited on.
        output: String,
    },
    /// The process closed its output (it exited, most likely) before it
    /// printed what was waited for.
    #[error("{what} never came: the process closed its output first{output}")]
    Ended {
        /// What was waited for.
        what: String,
        /// The process's output.
        output: String,
    },
    /// The process has been waited for already, so its pid may belong to
    /// another process now and must not be signalled.
    #[error("{name} has exited already: it cannot be sent {signal}")]
    Exited {
        /// The process's name.
        name: String,
        /// The signal that was not sent.
        signal: Signal,
    },
    /// Sending a signal failed.
    #[error("cannot send {signal} to pid {pid}: {source}")]
    Signal {
        /// The process's id.
        pid: u32,
        /// The signal.
        signal: Signal,
        /// Why it failed.
        source: nix::Error,
    },
    /// A file of `/proc` could not be read.
    #[error("cannot read {}: {source}", path.display())]
    Proc {
        /// The file or directory.
        path: PathBuf,
        /// Why it could not be read.
        source: io::Error,
    },
    /// A `/proc/PID/status` file has no such field in kB.
    #[error("{} has no `{field}` in kB", path.display())]
    ProcField {
        /// The file.
        path: PathBuf,
        /// The field, such as `VmRSS`.
        field: String,
    },
    /// A command the kit ran to set something up (`ip`, `nft`) failed.
    #[error("a set-up command failed:{output}")]
    Failed {
        /// The command's name, exit status and output.
        output: String,
    },
    /// A network namespace could not be entered.
    #[error("cannot enter network namespace {name}: {source}")]
    Namespace {
        /// The namespace, as `ip netns` knows it.
        name: String,
        /// Why it could not be entered.
        source: io::Error,
    },
    /// A connection could not be opened.
    #[error("cannot connect to {addr}: {source}")]
    Connect {
        /// Where to.
        addr: SocketAddr,
        /// Why it failed.
        source: io::Error,
    },
    /// Reading or writing a connection failed; a read or write that passed
    /// its deadline fails with [`io::ErrorKind::TimedOut`].
    #[error(transparent)]
    Io(#[from] io::Error),
    /// A frame could not be read or written.
    #[error(transparent)]
    Frame(#[from] echo_proto::FrameError),
    /// An echo is not the frame that was sent.
    #[error(
        "echo {number} of {count} differs from the frame sent: sent {sent} bytes, \
         got {got} bytes, first difference at byte {at}"
    )]
    EchoDiffers {
        /// Which echo, from 1.
        number: usize,
        /// How many echoes were expected.
        count: usize,
        /// The length of the frame sent.
        sent: usize,
        /// The length of the echo.
        got: usize,
        /// The offset of the first byte that differs.
        at: usize,
    },
    /// The connection ended before every echo came back.
    #[error("the connection ended after {received} of {expected} echoes")]
    EchoMissing {
        /// How many echoes came back.
        received: usize,
        /// How many were expected.
        expected: usize,
    },
    /// The connection went on where its end was expected.
    #[error("expected the end of the stream, got {len} more bytes")]
    NotEnded {
        /// How many bytes came instead (a frame's payload, or raw bytes).
        len: usize,
    },
    /// A connection that should be refused was accepted, or failed
    /// otherwise.
    #[error("expected {addr} to refuse a connection, but {outcome}")]
    NotRefused {
        /// Where to.
        addr: SocketAddr,
        /// What happened instead.
        outcome: String,
    },
    /// A thread of the kit's panicked.
    #[error("the {0} thread panicked")]
    Panicked(&'static str),
}

impl fmt::Debug for Error {
    /// The message, as `Display` writes it: a test that unwraps an error
    /// then shows the process's output as lines, not as one escaped string.
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        fmt::Display::fmt(self, f)
    }
}

/// Why the workspace's binaries could not be built.
///
/// Its own type because the outcome of the one build per test process is
/// kept and handed to every test that asks.
#[derive(Debug, Clone, thiserror::Error)]
#[error("could not build the binaries under test with `{command}`: {reason}")]
pub struct BuildError {
    /// The build command, as a person would type it.
    pub command: String,
    /// What went wrong: its exit status and errors, or why it could not run.
    pub reason: String,
}
