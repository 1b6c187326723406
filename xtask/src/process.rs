//! How xtask runs programs. Every command goes through [`cmd`], which shows
//! it on stderr as a person would type it and hands it to duct; [`Server`]
//! is a program left running while a task works with it (a test kit
//! process, killed when dropped); [`output_by`] runs one to its end within a
//! deadline.

use std::ffi::OsString;
use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::process::Output;
use std::time::Instant;

use anyhow::{Context, Result, bail};
use duct::{Expression, Handle};
use echo_testkit::{Kind, Process, Spawn};
use nix::unistd::Pid;
use serde_json::Value;

/// `program args...`, shown on stderr first. Every command xtask runs is
/// made here or by [`spawn`], right where it runs.
pub(crate) fn cmd<A: Into<OsString>>(
    program: impl Into<OsString>,
    args: impl IntoIterator<Item = A>,
) -> Expression {
    let (program, args) = show(program, args);
    duct::cmd(program, args)
}

/// Shows `program args...` on stderr, as typed, and returns them.
fn show<A: Into<OsString>>(
    program: impl Into<OsString>,
    args: impl IntoIterator<Item = A>,
) -> (OsString, Vec<OsString>) {
    let program = program.into();
    let args: Vec<OsString> = args.into_iter().map(Into::into).collect();
    eprintln!("$ {}", shown(&program, &args));
    (program, args)
}

/// `cargo args...`, with the cargo that runs this xtask, which cargo names
/// in `$CARGO`, so that `cargo +toolchain xtask` uses that toolchain
/// throughout.
pub(crate) fn cargo<A: Into<OsString>>(args: impl IntoIterator<Item = A>) -> Expression {
    cmd(
        std::env::var_os("CARGO").unwrap_or_else(|| "cargo".into()),
        args,
    )
}

/// The command as typed: a program outside the current directory by its
/// name alone (so that `$CARGO`'s path into the toolchain shows as `cargo`),
/// arguments that hold spaces quoted.
fn shown(program: &OsString, args: &[OsString]) -> String {
    let program = Path::new(program);
    let program = match std::env::current_dir() {
        Ok(dir) if program.is_absolute() => program
            .strip_prefix(&dir)
            .ok()
            .or_else(|| program.file_name().map(Path::new))
            .unwrap_or(program),
        _ => program,
    };
    std::iter::once(program.as_os_str())
        .chain(args.iter().map(OsString::as_os_str))
        .map(|part| match part.to_string_lossy() {
            part if part.is_empty() || part.contains(char::is_whitespace) => format!("'{part}'"),
            part => part.into_owned(),
        })
        .collect::<Vec<_>>()
        .join(" ")
}

/// Waits for a started command until `deadline`, killing it if it is still
/// running then. The command must be `unchecked`, so that its output is
/// returned whatever its exit status.
pub(crate) fn finish_by(handle: Handle, deadline: Instant) -> Result<Output> {
    if handle.wait_deadline(deadline)?.is_none() {
        handle.kill()?;
        let output = handle.into_output()?;
        bail!(
            "it was still running at its deadline and was killed; its stderr: {}",
            String::from_utf8_lossy(&output.stderr).trim_end()
        );
    }
    Ok(handle.into_output()?)
}

/// Runs `command` to its end with its output captured, killing it if it is
/// still running at `deadline`.
pub(crate) fn output_by(command: Expression, deadline: Instant) -> Result<Output> {
    let handle = command
        .stdout_capture()
        .stderr_capture()
        .unchecked()
        .start()?;
    finish_by(handle, deadline)
}

/// `command` without the environment variables the binaries read, every
/// `ECHO_*` and `RUST_LOG`, so that the developer's settings cannot change
/// what a task measures or checks.
pub(crate) fn isolated(command: Expression) -> Expression {
    std::env::vars_os()
        .map(|(name, _)| name)
        .filter(|name| name == "RUST_LOG" || name.as_encoded_bytes().starts_with(b"ECHO_"))
        .fold(command, |command, name| command.env_remove(name))
}

/// The `echo-server` and `echo-client` binaries.
#[derive(Debug)]
pub(crate) struct Bins {
    pub(crate) server: PathBuf,
    pub(crate) client: PathBuf,
}

/// Builds `echo-server` and `echo-client` (the release profile, or the dev
/// one) and finds them where cargo says it put them, whatever the target
/// directory.
pub(crate) fn build_binaries(release: bool) -> Result<Bins> {
    let mut args = vec![
        "build",
        "-p",
        "echo-server",
        "-p",
        "echo-client",
        "--message-format=json-render-diagnostics",
    ];
    if release {
        args.push("--release");
    }
    let messages = cargo(args).read()?;
    let find = |name: &str| {
        messages
            .lines()
            .filter_map(|line| serde_json::from_str::<Value>(line).ok())
            .filter(|message| message["target"]["name"] == name)
            .find_map(|message| message["executable"].as_str().map(PathBuf::from))
            .with_context(|| format!("cargo built no executable `{name}`"))
    };
    Ok(Bins {
        server: find("echo-server")?,
        client: find("echo-client")?,
    })
}

/// `program args...` as a process for the test kit to start, shown on
/// stderr first, as [`cmd`] shows a command. The kit keeps it from every
/// `ECHO_*` variable and `RUST_LOG`, as [`isolated`] does for commands.
pub(crate) fn spawn<A: Into<OsString>>(
    program: impl Into<OsString>,
    args: impl IntoIterator<Item = A>,
) -> Spawn {
    let (program, args) = show(program, args);
    Spawn::new(program).args(args)
}

/// A server left running while a task works with it: the test kit's
/// [`Process`], which collects its output in the background and kills it
/// when dropped, so that no way out of a task leaves it behind, and the
/// address it announced.
#[derive(Debug)]
pub(crate) struct Server {
    process: Process,
    addr: SocketAddr,
}

impl Server {
    /// Starts `spawn` and waits until `deadline` for the address it
    /// listens on, which `listening` reads from its output.
    pub(crate) fn start(
        spawn: Spawn,
        deadline: Instant,
        listening: impl FnOnce(&Process, Instant) -> Result<SocketAddr>,
    ) -> Result<Self> {
        let process = spawn.start()?;
        let addr = listening(&process, deadline)?;
        Ok(Self { process, addr })
    }

    /// Starts an `echo-server` and waits until `deadline` for its listening
    /// line for `kind`.
    pub(crate) fn echo_server(spawn: Spawn, kind: Kind, deadline: Instant) -> Result<Self> {
        Self::start(spawn, deadline, |process, deadline| {
            let [addr] = process.listening([kind], deadline)?;
            Ok(addr)
        })
    }

    pub(crate) fn addr(&self) -> SocketAddr {
        self.addr
    }

    pub(crate) fn pid(&self) -> Pid {
        // A pid is a positive `pid_t`, whatever type std gives it.
        Pid::from_raw(self.process.pid() as i32)
    }

    /// Stops the server with SIGTERM and waits until `deadline` for it to
    /// exit; returns how it exited and what it wrote.
    pub(crate) fn stop(mut self, deadline: Instant) -> Result<echo_testkit::Output> {
        Ok(self.process.stop(deadline)?)
    }
}

/// `GET path` from `addr` over HTTP/1.1, within `deadline`: the whole
/// response, status line first.
pub(crate) fn http_get(addr: SocketAddr, path: &str, deadline: Instant) -> Result<String> {
    use std::io::{Read, Write};
    let left = deadline
        .saturating_duration_since(Instant::now())
        .max(std::time::Duration::from_millis(1));
    let mut stream = std::net::TcpStream::connect_timeout(&addr, left)?;
    stream.set_read_timeout(Some(left))?;
    write!(
        stream,
        "GET {path} HTTP/1.1\r\nHost: {addr}\r\nConnection: close\r\n\r\n"
    )?;
    let mut response = String::new();
    stream.read_to_string(&mut response)?;
    Ok(response)
}

/// What Linux's `/proc` says of process `pid`: its memory, descriptors and
/// CPU time.
pub(crate) fn proc(pid: Pid) -> Result<procfs::process::Process> {
    procfs::process::Process::new(pid.as_raw()).with_context(|| format!("process {pid} is gone"))
}

/// The resident memory of process `pid`, in KiB.
pub(crate) fn rss_kib(pid: Pid) -> Result<u64> {
    proc(pid)?
        .status()?
        .vmrss
        .with_context(|| format!("process {pid} has no VmRSS"))
}

#[cfg(test)]
mod tests {
    use std::time::Duration;

    use super::*;

    fn shows(program: &str, args: &[&str]) -> String {
        let args: Vec<OsString> = args.iter().map(Into::into).collect();
        shown(&program.into(), &args)
    }

    #[test]
    fn shows_commands_as_typed() {
        assert_eq!(
            shows("cargo", &["fmt", "--all", "--", "--check"]),
            "cargo fmt --all -- --check"
        );
        assert_eq!(
            shows("/root/.rustup/toolchains/stable/bin/cargo", &["build"]),
            "cargo build"
        );
        let here = std::env::current_dir().unwrap().join("target/release/x");
        assert_eq!(shows(here.to_str().unwrap(), &[]), "target/release/x");
        assert_eq!(shows("sh", &["-c", "exit 3", ""]), "sh -c 'exit 3' ''");
    }

    fn in_secs(secs: u64) -> Instant {
        Instant::now() + Duration::from_secs(secs)
    }

    #[test]
    fn a_server_is_found_by_its_listening_line_and_stopped_by_sigterm() {
        let script = "trap 'echo stopping >&2; exit 0' TERM; \
                      echo 'starting'; echo 'echo-server listening on 127.0.0.1:5 (framed)'; \
                      while :; do sleep 0.05; done";
        let spawn = spawn("sh", ["-c", script]);
        let server = Server::echo_server(spawn, Kind::Framed, in_secs(30)).unwrap();
        assert_eq!(server.addr(), "127.0.0.1:5".parse().unwrap());
        assert!(rss_kib(server.pid()).unwrap() > 0);
        let output = server.stop(in_secs(30)).unwrap();
        assert!(output.status.success(), "{output}");
        assert_eq!(output.stderr, b"stopping\n");
    }

    #[test]
    fn a_server_that_does_not_listen_is_reported() {
        let exits = spawn("sh", ["-c", "echo 'cannot bind' >&2; exit 1"]);
        let error = Server::echo_server(exits, Kind::Raw, in_secs(30)).unwrap_err();
        let error = format!("{error:#}");
        assert!(
            error.contains("never came") && error.contains("cannot bind"),
            "{error}"
        );
        let hangs = spawn("sleep", ["30"]);
        let deadline = Instant::now() + Duration::from_millis(100);
        let error = Server::echo_server(hangs, Kind::Raw, deadline).unwrap_err();
        let error = format!("{error:#}");
        assert!(error.contains("listening lines (raw)"), "{error}");
    }

    #[test]
    fn a_command_that_outlives_its_deadline_is_killed() {
        let output = output_by(duct::cmd!("sh", "-c", "echo out; exit 3"), in_secs(30)).unwrap();
        assert_eq!(
            (output.status.code(), &output.stdout[..]),
            (Some(3), &b"out\n"[..])
        );
        let started = Instant::now();
        let stuck = duct::cmd!("sh", "-c", "echo 'stuck here' >&2; exec sleep 30");
        let error = output_by(stuck, Instant::now() + Duration::from_millis(200)).unwrap_err();
        assert!(error.to_string().contains("stuck here"), "{error}");
        assert!(started.elapsed() < Duration::from_secs(20));
    }
}
