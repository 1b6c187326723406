//! The servers `cargo xtask bench` measures, the clients that drive them,
//! and the cores they run on.
//!
//! Every server and every client run is pinned to a core of its own with
//! `taskset` when the machine has it and at least two cores, so that the
//! server and the load generator do not compete for one core, and the
//! server's figures are those of one core.

use std::ffi::OsString;
use std::fmt;
use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use anyhow::{Context, Result};
use duct::Expression;
use echo_testkit::{Kind, Pipe, Spawn};
use serde::Serialize;

use super::scenario::Mode;
use crate::process::{self, Bins, Server};

/// How long a server may take to start.
const SERVER_DEADLINE: Duration = Duration::from_secs(30);

/// The core the server runs on, and the one the client runs on.
pub(crate) const SERVER_CPU: usize = 0;
pub(crate) const CLIENT_CPU: usize = 1;

/// Which server is measured.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
pub(crate) enum ServerKind {
    /// The C epoll echo server of `xtask/bench/epoll_echo.c`: one thread,
    /// one 64 KiB buffer, echoing bytes as they arrive.
    #[serde(rename = "C epoll")]
    Reference,
    /// `echo-server`, in the mode that serves the load.
    #[serde(rename = "echo-server")]
    EchoServer,
    /// `echo-server --proxy-protocol`, each connection opening with a PROXY
    /// v2 header from echo-client (`--proxy-protocol v2`), as behind a load
    /// balancer: what the header costs.
    #[serde(rename = "echo-server PROXY")]
    ProxiedEchoServer,
}

/// Which client drives a server.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
pub(crate) enum ClientKind {
    /// `echo-client bench`, which checks every byte and times every echo.
    #[serde(rename = "echo-client")]
    EchoClient,
    /// The C load generator of `xtask/bench/epoll_load.c`: one thread,
    /// epoll, nothing checked or timed. What drives a server hardest from
    /// one core, so that the server is what runs out.
    #[serde(rename = "C load")]
    Reference,
}

/// The name in the table and in JSON, the one serde gives.
impl fmt::Display for ServerKind {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        self.serialize(f)
    }
}

impl fmt::Display for ClientKind {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        self.serialize(f)
    }
}

/// What a bench runs, where and for how long: `echo-server`,
/// `echo-client`, the compiled C reference server and client when asked
/// for, `taskset` if the machine has it and at least two cores to pin to,
/// and how long each measured run sends, after an unmeasured one.
#[derive(Debug)]
pub(crate) struct Lab {
    pub(crate) bins: Bins,
    pub(crate) reference: Option<References>,
    taskset: Option<PathBuf>,
    pub(crate) duration: Duration,
    pub(crate) warmup: Duration,
}

/// The compiled C references.
#[derive(Debug)]
pub(crate) struct References {
    pub(crate) server: PathBuf,
    pub(crate) client: PathBuf,
}

/// Compiles the reference server and client of `xtask/bench` with the
/// system C compiler (`$CC`, or `cc`) into `out_dir`, optimised as C
/// programs would be shipped (`-O2`).
pub(crate) fn build_references(out_dir: &Path) -> Result<References> {
    std::fs::create_dir_all(out_dir)
        .with_context(|| format!("cannot create {}", out_dir.display()))?;
    let compiler = std::env::var_os("CC").unwrap_or_else(|| "cc".into());
    let build = |name: &str| -> Result<PathBuf> {
        let binary = out_dir.join(name);
        let args = format!("-O2 -o {} xtask/bench/{name}.c", binary.display());
        process::cmd(&compiler, args.split_whitespace())
            .run()
            .with_context(|| {
                format!(
                    "could not build xtask/bench/{name}.c with the C compiler `{}` \
                 (install one, or set CC; or leave out --reference)",
                    compiler.to_string_lossy()
                )
            })?;
        Ok(binary)
    };
    Ok(References {
        server: build("epoll_echo")?,
        client: build("epoll_load")?,
    })
}

impl Lab {
    /// The programs, pinned with `taskset` if it is on the `PATH` and this
    /// process may use two cores or more; unpinned otherwise.
    pub(crate) fn new(
        bins: Bins,
        reference: Option<References>,
        (duration, warmup): (Duration, Duration),
    ) -> Self {
        let cores = std::thread::available_parallelism().map_or(1, usize::from);
        let path = std::env::var_os("PATH").unwrap_or_default();
        let taskset = std::env::split_paths(&path)
            .map(|dir| dir.join("taskset"))
            .find(|path| cores >= 2 && path.is_file());
        Self {
            bins,
            reference,
            taskset,
            duration,
            warmup,
        }
    }

    /// The servers measured: the reference if it was built, and echo-server.
    pub(crate) fn servers(&self) -> Vec<ServerKind> {
        let reference = self.reference.is_some().then_some(ServerKind::Reference);
        reference
            .into_iter()
            .chain([ServerKind::EchoServer])
            .collect()
    }

    /// The C references, which must have been built.
    pub(crate) fn reference(&self) -> Result<&References> {
        self.reference
            .as_ref()
            .context("the C references were not built")
    }

    /// Whether programs are pinned.
    pub(crate) fn is_pinned(&self) -> bool {
        self.taskset.is_some()
    }

    /// Says where programs run, for the report.
    pub(crate) fn placement(&self) -> String {
        if self.is_pinned() {
            format!("server on CPU {SERVER_CPU}, client on CPU {CLIENT_CPU} (taskset)")
        } else {
            "unpinned (taskset or a second core is missing): figures are not those of one core"
                .to_owned()
        }
    }

    /// `program args...` on `cpu`, without the environment the binaries
    /// read.
    pub(crate) fn cmd<A: Into<OsString>>(
        &self,
        cpu: usize,
        program: &Path,
        args: impl IntoIterator<Item = A>,
    ) -> Expression {
        let (program, args) = self.pinned(cpu, program, args);
        process::isolated(process::cmd(program, args))
    }

    /// `program args...` on `cpu`, as a process for the test kit to start
    /// (and kill when dropped).
    pub(crate) fn spawn_pinned<A: Into<OsString>>(
        &self,
        cpu: usize,
        program: &Path,
        args: impl IntoIterator<Item = A>,
    ) -> Spawn {
        let (program, args) = self.pinned(cpu, program, args);
        process::spawn(program, args)
    }

    /// The program and arguments that run `program args...` on `cpu`:
    /// through taskset when programs are pinned.
    fn pinned<A: Into<OsString>>(
        &self,
        cpu: usize,
        program: &Path,
        args: impl IntoIterator<Item = A>,
    ) -> (OsString, Vec<OsString>) {
        let args = args.into_iter().map(Into::into);
        match &self.taskset {
            Some(taskset) => {
                let pin = ["-c".into(), cpu.to_string().into(), program.into()];
                (taskset.into(), pin.into_iter().chain(args).collect())
            }
            None => (program.into(), args.collect()),
        }
    }

    /// Starts echo-server on a free loopback port, serving `mode` with
    /// `extra` arguments, free to use every core, and waits until it says it
    /// is listening.
    pub(crate) fn start_unpinned(&self, mode: Mode, extra: &[&str]) -> Result<Server> {
        let mode_arg = mode.to_string();
        let args = [&["--listen", "127.0.0.1:0", "--mode", &mode_arg], extra].concat();
        let spawn = process::spawn(&self.bins.server, args);
        Server::echo_server(spawn, kind_of(mode), Instant::now() + SERVER_DEADLINE)
            .context("starting echo-server unpinned")
    }

    /// Starts `kind` on a free loopback port, serving `mode` with `extra`
    /// arguments, pinned to the server's core, and waits until it says it
    /// is listening.
    pub(crate) fn start(&self, kind: ServerKind, mode: Mode, extra: &[&str]) -> Result<Server> {
        let deadline = Instant::now() + SERVER_DEADLINE;
        let started = match kind {
            // The reference echoes bytes, whatever the mode; it takes the port.
            ServerKind::Reference => {
                let (program, args) = self.pinned(SERVER_CPU, &self.reference()?.server, ["0"]);
                Server::start(
                    process::spawn(program, args),
                    deadline,
                    |process, deadline| {
                        let line = process.wait_for_line(Pipe::Stdout, deadline, |line| {
                            reference_addr(line).is_some()
                        })?;
                        reference_addr(&line).context("the line chosen for its address has none")
                    },
                )
            }
            ServerKind::EchoServer | ServerKind::ProxiedEchoServer => {
                let mode_arg = mode.to_string();
                let proxy: &[&str] = match kind {
                    ServerKind::ProxiedEchoServer => &["--proxy-protocol"],
                    _ => &[],
                };
                let args = [
                    &["--listen", "127.0.0.1:0", "--mode", &mode_arg],
                    proxy,
                    extra,
                ]
                .concat();
                let (program, args) = self.pinned(SERVER_CPU, &self.bins.server, args);
                Server::echo_server(process::spawn(program, args), kind_of(mode), deadline)
            }
        };
        started.with_context(|| format!("starting {kind}"))
    }
}

/// The listening line's kind of echo-server in `mode`.
fn kind_of(mode: Mode) -> Kind {
    match mode {
        Mode::Framed => Kind::Framed,
        Mode::Raw => Kind::Raw,
    }
}

/// The address in the C reference server's one line, `epoll_echo listening
/// on 127.0.0.1:PORT` (printed by `xtask/bench/epoll_echo.c`).
fn reference_addr(line: &str) -> Option<SocketAddr> {
    line.strip_prefix("epoll_echo listening on ")?.parse().ok()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn pinning_prefixes_taskset_only_when_pinned() {
        // `echo` stands in for taskset, to show the arguments it gets.
        let bins = || Bins {
            server: PathBuf::new(),
            client: PathBuf::new(),
        };
        let unpinned = Lab {
            taskset: None,
            ..Lab::new(bins(), None, (Duration::ZERO, Duration::ZERO))
        };
        let pinned = Lab {
            taskset: Some(PathBuf::from("echo")),
            ..Lab::new(bins(), None, (Duration::ZERO, Duration::ZERO))
        };
        let command = pinned.cmd(1, Path::new("echo-server"), ["--mode", "raw"]);
        assert_eq!(command.read().unwrap(), "-c 1 echo-server --mode raw");
        assert_eq!(
            unpinned.cmd(1, Path::new("echo"), ["raw"]).read().unwrap(),
            "raw"
        );
        assert!(pinned.placement().contains("CPU 1"));
        assert!(unpinned.placement().contains("unpinned"));
        assert_eq!(unpinned.servers(), [ServerKind::EchoServer]);
        assert!(unpinned.reference().is_err());
    }

    #[test]
    fn reads_the_reference_servers_listening_line() {
        let addr = reference_addr("epoll_echo listening on 127.0.0.1:4321");
        assert_eq!(addr, Some("127.0.0.1:4321".parse().unwrap()));
        assert_eq!(
            reference_addr("echo-server listening on 127.0.0.1:4321 (raw)"),
            None
        );
        assert_eq!(reference_addr("epoll_echo listening on nowhere"), None);
    }
}
