//! End-to-end tests of echo: the real `echo-server` and `echo-client`
//! binaries, run as processes by [`echo_testkit`] and driven over loopback.
//!
//! They are ordinary `#[test]`s in `tests/`, one file per topic, so `cargo
//! test -p echo-e2e` (or `cargo nextest run -p echo-e2e`) runs them, and
//! `cargo xtask e2e [--release] [FILTER]...` builds the binaries and runs
//! them against those:
//!
//! | file | what it checks |
//! |---|---|
//! | `cli.rs` | both binaries as users run them: echoes through the real server, usage errors (exit 2), runtime failures (exit 1) |
//! | `client_tools.rs` | `echo-client ping` and `bench` against the server in each mode, and `merge` of two benches run at once (their histograms read by Python's `hdrh`) |
//! | `server_ops.rs` | the metrics endpoint scraped over HTTP, and a Python client written from PROTOCOL.md |
//! | `greeting.rs` | `--greeting` and `--expect-greeting` in framed and raw mode (the instance named, the bench's counts per instance, a server that does not greet), and `--delay` timed by the test's clock |
//! | `ipv6.rs` | every listener kind on `[::1]` and `[::]`, and the client reaching `[::1]:PORT` (skipped without an IPv6 loopback) |
//! | `admin.rs` | the admin endpoint of the binary: readiness through a lame-duck drain, `--admin` and `--metrics`, a real Prometheus scraping it |
//! | `tls.rs` | the TLS listener against independent peers (`openssl s_client`, Python's `ssl`), its usage errors, and SIGHUP reloading its certificate |
//! | `deploy.rs` | the Dockerfile (hadolint) and the Kubernetes manifests (kubernetes-validate), and the binaries started with the command lines they hold |
//! | `lossy_link.rs` | a link that drops 5% of the client's packets (network namespaces, nftables; as root): the UDP bench measures the loss, TCP stays exact |
//! | `faults.rs` | misbehaving clients, a connection storm, SIGTERM under load and a server out of file descriptors, with the server's descriptors and memory read from `/proc` |
//!
//! What a crate's own tests cover in-process is not repeated here: these
//! tests need the real processes (their exit codes, signals, `/proc`, the
//! wire between two binaries). Every server binds port 0 on 127.0.0.1 (or
//! on `[::1]` and `[::]` for the IPv6 tests, whose traffic stays on `[::1]`,
//! or on 198.18.0.0/15 inside network namespaces the test made),
//! every wait has a deadline, and every process is killed when its test
//! ends, however it ends.
//!
//! This library holds what the test files share.
#![forbid(unsafe_code)]
#![deny(missing_docs)]

use std::net::SocketAddr;
use std::path::PathBuf;
use std::time::Instant;

use echo_testkit::{Error, Kind, Process, Spawn};

/// Starts `echo-server --listen 127.0.0.1:0 ARGS...` and waits until it has
/// announced a listener of each of `kinds`; returns the process and their
/// addresses, in the order of `kinds`.
///
/// ```no_run
/// use echo_e2e::start_server;
/// use echo_testkit::Kind;
///
/// let (server, [tcp, udp]) = start_server(
///     &["--mode", "raw", "--udp", "127.0.0.1:0"],
///     [Kind::Raw, Kind::Udp],
///     echo_testkit::deadline(),
/// )?;
/// assert_ne!(tcp.port(), udp.port());
/// # drop(server);
/// # Ok::<(), echo_testkit::Error>(())
/// ```
pub fn start_server<const N: usize>(
    args: &[&str],
    kinds: [Kind; N],
    deadline: Instant,
) -> Result<(Process, [SocketAddr; N]), Error> {
    let args = ["--listen", "127.0.0.1:0"].iter().chain(args);
    start_server_with(args, kinds, deadline)
}

/// Starts `echo-server ARGS...`, with no argument of its own (so `args`
/// must say where to listen), and waits until it has announced a listener
/// of each of `kinds`, as [`start_server`] does.
///
/// ```no_run
/// use echo_e2e::start_server_with;
/// use echo_testkit::Kind;
///
/// let (server, [addr]) =
///     start_server_with(["--listen", "[::1]:0"], [Kind::Framed], echo_testkit::deadline())?;
/// assert!(addr.is_ipv6());
/// # drop(server);
/// # Ok::<(), echo_testkit::Error>(())
/// ```
pub fn start_server_with<const N: usize, S: AsRef<std::ffi::OsStr>>(
    args: impl IntoIterator<Item = S>,
    kinds: [Kind; N],
    deadline: Instant,
) -> Result<(Process, [SocketAddr; N]), Error> {
    let server = Spawn::bin("echo-server")?.args(args).start()?;
    let addrs = server.listening(kinds, deadline)?;
    Ok((server, addrs))
}

/// `echo-client --addr ADDR`, for the caller to add its arguments to.
///
/// ```no_run
/// # let addr = echo_testkit::wire::closed_port()?;
/// let output = echo_e2e::client(addr)?.arg("hello").run(echo_testkit::deadline())?;
/// assert_eq!(output.status.code(), Some(1));
/// # Ok::<(), echo_testkit::Error>(())
/// ```
pub fn client(addr: SocketAddr) -> Result<Spawn, Error> {
    Ok(Spawn::bin("echo-client")?.args(["--addr".to_owned(), addr.to_string()]))
}

pub use echo_testkit::wire::{HttpResponse, http_get};

/// The first `program` in the directories of `PATH`, for tests that need a
/// tool (python3, openssl) and skip, saying so, without it.
///
/// ```
/// assert!(echo_e2e::find_on_path("no-such-program-here").is_none());
/// ```
pub fn find_on_path(program: &str) -> Option<PathBuf> {
    std::env::split_paths(&std::env::var_os("PATH")?)
        .map(|dir| dir.join(program))
        .find(|path| path.is_file())
}

/// A loopback address whose port was free a moment ago, for a tool that
/// cannot listen on port 0 and say which port it got (Prometheus, HAProxy).
///
/// ```
/// assert_ne!(echo_e2e::free_port().port(), 0);
/// ```
pub fn free_port() -> SocketAddr {
    std::net::TcpListener::bind("127.0.0.1:0")
        .and_then(|listener| listener.local_addr())
        .expect("a free loopback port")
}
