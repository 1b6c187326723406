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
use std::process::Command;
use std::time::Instant;

use anyhow::{Context, Result};
use echo_testkit::{Output, Pipe, Process, Spawn};

use super::scenario::Traffic;

/// The C source of the reference server, from the workspace root.
const REFERENCE_SERVER_SOURCE: &str = "xtask/bench/epoll_echo.c";
/// The C source of the reference client (the load generator), from the
/// workspace root.
const REFERENCE_CLIENT_SOURCE: &str = "xtask/bench/epoll_load.c";

/// The core the server runs on, and the one the client runs on.
pub(crate) const SERVER_CPU: usize = 0;
pub(crate) const CLIENT_CPU: usize = 1;

/// Which server is measured.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum ServerKind {
    /// The C epoll echo server of `xtask/bench/epoll_echo.c`: one thread,
    /// one 64 KiB buffer, echoing bytes as they arrive.
    Reference,
    /// `echo-server`, in the mode that serves the traffic.
    EchoServer,
}

impl ServerKind {
    /// The name in the table and in JSON.
    pub(crate) fn name(self) -> &'static str {
        match self {
            ServerKind::Reference => "C epoll",
            ServerKind::EchoServer => "echo-server",
        }
    }
}

impl fmt::Display for ServerKind {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.name())
    }
}

/// Which client drives a server.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum ClientKind {
    /// `echo-client bench`, which checks every byte and times every echo.
    EchoClient,
    /// The C load generator of `xtask/bench/epoll_load.c`: one thread,
    /// epoll, nothing checked or timed. What drives a server hardest from
    /// one core, so that the server is what runs out.
    Reference,
}

impl ClientKind {
    /// The name in the table and in JSON.
    pub(crate) fn name(self) -> &'static str {
        match self {
            ClientKind::EchoClient => "echo-client",
            ClientKind::Reference => "C load",
        }
    }
}

impl fmt::Display for ClientKind {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.name())
    }
}

/// The programs a bench runs.
#[derive(Debug)]
pub(crate) struct Programs {
    pub(crate) server: PathBuf,
    pub(crate) client: PathBuf,
    /// The compiled reference server and client, when asked for.
    pub(crate) reference: Option<References>,
}

/// The compiled C references.
#[derive(Debug)]
pub(crate) struct References {
    pub(crate) server: PathBuf,
    pub(crate) client: PathBuf,
}

/// Compiles the reference server and client with the system C compiler
/// (`$CC`, or `cc`) into `out_dir`, optimised as C programs would be shipped
/// (`-O2`).
pub(crate) fn build_references(root: &Path, out_dir: &Path) -> Result<References> {
    std::fs::create_dir_all(out_dir)
        .with_context(|| format!("could not create {}", out_dir.display()))?;
    Ok(References {
        server: build_c(root, REFERENCE_SERVER_SOURCE, &out_dir.join("epoll_echo"))?,
        client: build_c(root, REFERENCE_CLIENT_SOURCE, &out_dir.join("epoll_load"))?,
    })
}

/// Compiles the C program `source` into `binary`.
fn build_c(root: &Path, source: &str, binary: &Path) -> Result<PathBuf> {
    let compiler = std::env::var_os("CC").unwrap_or_else(|| "cc".into());
    let mut command = Command::new(&compiler);
    command
        .current_dir(root)
        .args(["-O2", "-o"])
        .arg(binary)
        .arg(source);
    eprintln!("==> {}", crate::show_command(&command));
    crate::run_checked(&mut command).with_context(|| {
        format!(
            "could not build {source} with the C compiler `{}` \
             (install one, or set CC; or leave out --reference)",
            compiler.to_string_lossy()
        )
    })?;
    Ok(binary.to_path_buf())
}

/// How programs are put on a core.
#[derive(Debug, Clone)]
pub(crate) struct Pinning {
    /// `taskset`, if the machine has it and at least two cores to pin to.
    taskset: Option<PathBuf>,
}

impl Pinning {
    /// Pins with `taskset` if it is on the `PATH` and this process may use
    /// two cores or more; otherwise runs everything unpinned.
    pub(crate) fn detect() -> Self {
        let cores = std::thread::available_parallelism().map_or(1, usize::from);
        let taskset = (cores >= 2).then(|| find_on_path("taskset")).flatten();
        Self { taskset }
    }

    /// Whether programs are pinned.
    pub(crate) fn is_pinned(&self) -> bool {
        self.taskset.is_some()
    }

    /// The program and leading arguments that run `program` on `cpu`.
    pub(crate) fn command(&self, cpu: usize, program: &Path) -> (PathBuf, Vec<OsString>) {
        match &self.taskset {
            Some(taskset) => (
                taskset.clone(),
                vec!["-c".into(), cpu.to_string().into(), program.into()],
            ),
            None => (program.to_path_buf(), Vec::new()),
        }
    }

    /// Says where programs run, for the report.
    pub(crate) fn describe(&self) -> String {
        if self.is_pinned() {
            format!("server on CPU {SERVER_CPU}, client on CPU {CLIENT_CPU} (taskset)")
        } else {
            "unpinned (taskset or a second core is missing): figures are not those of one core"
                .to_owned()
        }
    }
}

/// The first `name` in a directory of `PATH`.
fn find_on_path(name: &str) -> Option<PathBuf> {
    std::env::split_paths(&std::env::var_os("PATH")?)
        .map(|dir| dir.join(name))
        .find(|path| path.is_file())
}

/// A server under measurement, killed when dropped.
#[derive(Debug)]
pub(crate) struct RunningServer {
    process: Process,
    addr: SocketAddr,
}

impl RunningServer {
    /// Starts `kind` on a free loopback port, serving `traffic`, pinned to
    /// the server's core, and waits until it says it is listening.
    pub(crate) fn start(
        kind: ServerKind,
        traffic: Traffic,
        programs: &Programs,
        pinning: &Pinning,
        extra: &[&str],
        deadline: Instant,
    ) -> Result<Self> {
        let (binary, args): (&Path, Vec<&str>) = match kind {
            ServerKind::Reference => (
                &programs
                    .reference
                    .as_ref()
                    .context("the reference server was not built")?
                    .server,
                vec!["0"],
            ),
            ServerKind::EchoServer => (
                &programs.server,
                [
                    &["--listen", "127.0.0.1:0", "--mode", traffic.name()][..],
                    extra,
                ]
                .concat(),
            ),
        };
        let (program, mut all_args) = pinning.command(SERVER_CPU, binary);
        all_args.extend(args.iter().map(OsString::from));
        let process = Spawn::new(&program).args(all_args).start()?;
        let line = process
            .wait_for_line(Pipe::Stdout, deadline, |line| {
                parse_listening_line(line).is_some()
            })
            .with_context(|| format!("{kind} did not say it was listening"))?;
        let addr = parse_listening_line(&line).context("the listening line changed")?;
        Ok(Self { process, addr })
    }

    pub(crate) fn addr(&self) -> SocketAddr {
        self.addr
    }

    pub(crate) fn pid(&self) -> u32 {
        self.process.pid()
    }

    /// Stops the server with SIGTERM and waits for it to exit.
    pub(crate) fn stop(mut self, deadline: Instant) -> Result<Output> {
        Ok(self.process.stop(deadline)?)
    }
}

/// The address in a line such as `echo-server listening on 127.0.0.1:9999
/// (framed)` or `epoll_echo listening on 127.0.0.1:9999`.
fn parse_listening_line(line: &str) -> Option<SocketAddr> {
    let (_, rest) = line.split_once("listening on ")?;
    rest.split_whitespace().next()?.parse().ok()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_both_servers_listening_lines() {
        let addr: SocketAddr = "127.0.0.1:4321".parse().unwrap();
        assert_eq!(
            parse_listening_line("echo-server listening on 127.0.0.1:4321 (framed)\n"),
            Some(addr)
        );
        assert_eq!(
            parse_listening_line("epoll_echo listening on 127.0.0.1:4321\n"),
            Some(addr)
        );
        assert_eq!(parse_listening_line("starting\n"), None);
        assert_eq!(parse_listening_line("listening on nowhere\n"), None);
    }

    #[test]
    fn pinning_prefixes_taskset_only_when_pinned() {
        let program = Path::new("/bin/echo-server");
        let unpinned = Pinning { taskset: None };
        assert_eq!(
            unpinned.command(1, program),
            (program.to_path_buf(), Vec::new())
        );
        let pinned = Pinning {
            taskset: Some(PathBuf::from("/usr/bin/taskset")),
        };
        let (taskset, args) = pinned.command(1, program);
        assert_eq!(taskset, Path::new("/usr/bin/taskset"));
        assert_eq!(args, ["-c", "1", "/bin/echo-server"]);
        assert!(pinned.describe().contains("CPU 1"));
        assert!(unpinned.describe().contains("unpinned"));
    }
}
