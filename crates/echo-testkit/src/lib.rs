//! The one way this workspace's tests run its binaries: start `echo-server`
//! or `echo-client` (or any program) as a child process, wait for its
//! listening lines, collect its output, signal it, wait for it to exit, read
//! its memory and open descriptors, and never leave it running.
//!
//! | item | what it does |
//! |---|---|
//! | [`Spawn`] | a process to start: program, arguments, environment, stdin |
//! | [`Process`] | a running child: output collected in the background, [listening lines](Process::listening), signals, [`wait`](Process::wait) with a deadline, `/proc` readings, killed on drop |
//! | [`binary`] | where the workspace's binaries are, built once per test process if `ECHO_BIN_DIR` does not name them |
//! | [`certs`] | test certificates made with rcgen: a CA, server and client certificates, a directory to write them to |
//! | [`wire`] | blocking TCP with deadlines: frames sent and their echoes checked, resets, refused connections |
//! | [`procfs`] | memory and descriptors of a process known by its pid |
//! | [`netns`] | network namespaces of the test's own, joined by veth pairs, their links impaired with nftables, removed on drop |
//! | [`wait_until`] | polls a condition until it holds or a deadline passes, instead of sleeping |
//!
//! Every wait takes a deadline, an [`Instant`]; [`deadline`] gives one
//! [`TIMEOUT`] from now. It is all synchronous (std threads), so it serves
//! plain `#[test]`s as well as the blocking parts of tokio tests.
//!
//! # Example
//!
//! ```no_run
//! use echo_testkit::{Kind, Spawn, deadline, wire};
//!
//! let mut server = Spawn::bin("echo-server")?
//!     .args(["--listen", "127.0.0.1:0"])
//!     .env("RUST_LOG", "info")
//!     .start()?;
//! let [addr] = server.listening([Kind::Framed], deadline())?;
//! let stream = wire::connect(addr, deadline())?;
//! wire::echo_all(&stream, &[b"Hello Echo!".to_vec()], deadline(), |_| Ok(()))?;
//! let output = server.stop(deadline())?;
//! assert!(output.status.success());
//! assert!(output.stderr_text().contains("shutdown requested"));
//! # Ok::<(), echo_testkit::Error>(())
//! ```
#![forbid(unsafe_code)]
#![deny(missing_docs)]

pub mod binary;
pub mod certs;
mod error;
pub mod netns;
mod process;
pub mod procfs;
pub mod wire;

use std::thread;
use std::time::{Duration, Instant};

pub use echo_server::listening::Kind;
pub use error::{BuildError, Error};
pub use nix::sys::signal::Signal;
pub use process::{Output, Pipe, Process, Spawn};

/// How long a test waits for any one thing by default: long enough for a
/// loaded CI machine, short enough that a hang fails the test rather than
/// the whole run.
pub const TIMEOUT: Duration = Duration::from_secs(30);

/// How often a poll looks again.
const POLL_INTERVAL: Duration = Duration::from_millis(5);

/// The instant [`TIMEOUT`] from now.
///
/// ```
/// assert!(echo_testkit::deadline() > std::time::Instant::now());
/// ```
pub fn deadline() -> Instant {
    Instant::now() + TIMEOUT
}

/// Waits until `condition` holds, looking again every few milliseconds, and
/// fails at the deadline: the way to wait for something that changes on its
/// own (a counter, a file descriptor count) without guessing a sleep.
///
/// ```
/// use std::time::{Duration, Instant};
/// use echo_testkit::{deadline, wait_until};
///
/// let start = Instant::now();
/// wait_until(deadline(), || start.elapsed() >= Duration::from_millis(20))?;
///
/// let soon = Instant::now() + Duration::from_millis(20);
/// assert!(wait_until(soon, || false).is_err());
/// # Ok::<(), echo_testkit::Error>(())
/// ```
pub fn wait_until(deadline: Instant, mut condition: impl FnMut() -> bool) -> Result<(), Error> {
    let started = Instant::now();
    loop {
        if condition() {
            return Ok(());
        }
        let left = deadline.saturating_duration_since(Instant::now());
        if left.is_zero() {
            return Err(Error::Deadline {
                what: "a condition to hold".to_owned(),
                waited: started.elapsed(),
                output: String::new(),
            });
        }
        thread::sleep(POLL_INTERVAL.min(left));
    }
}
