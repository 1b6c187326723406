//! The `echo-server` binary as users run it: its stdout line, exit codes,
//! signals and logs.

use std::io::{BufRead, BufReader, Read, Write};
use std::net::{SocketAddr, TcpStream};
use std::process::{Child, Command, ExitStatus, Stdio};
use std::sync::mpsc;
use std::thread;
use std::time::{Duration, Instant};

use nix::sys::signal::{Signal, kill};
use nix::unistd::Pid;

const DEADLINE: Duration = Duration::from_secs(10);

/// A running `echo-server`, killed if the test ends early.
struct ServerProcess {
    child: Child,
    addr: SocketAddr,
    stderr: mpsc::Receiver<String>,
}

impl ServerProcess {
    fn start(args: &[&str], envs: &[(&str, &str)]) -> ServerProcess {
        let mut child = Command::new(env!("CARGO_BIN_EXE_echo-server"))
            .args(["--listen", "127.0.0.1:0"])
            .args(args)
            .envs(envs.iter().copied())
            .stdin(Stdio::null())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .spawn()
            .expect("start echo-server");
        let stdout = child.stdout.take().unwrap();
        let (line_tx, line_rx) = mpsc::channel();
        thread::spawn(move || {
            let mut line = String::new();
            let _ = BufReader::new(stdout).read_line(&mut line);
            let _ = line_tx.send(line);
        });
        let mut stderr = child.stderr.take().unwrap();
        let (stderr_tx, stderr_rx) = mpsc::channel();
        thread::spawn(move || {
            let mut text = String::new();
            let _ = stderr.read_to_string(&mut text);
            let _ = stderr_tx.send(text);
        });
        let mut server = ServerProcess {
            child,
            addr: "0.0.0.0:0".parse().unwrap(),
            stderr: stderr_rx,
        };
        let line = line_rx.recv_timeout(DEADLINE).expect("the listening line");
        let addr = line
            .strip_prefix("echo-server listening on ")
            .and_then(|rest| rest.strip_suffix(" (framed)\n"))
            .unwrap_or_else(|| panic!("unexpected first line: {line:?}"));
        server.addr = addr.parse().expect("a socket address");
        server
    }

    fn send_sigterm(&self) {
        kill(Pid::from_raw(self.child.id() as i32), Signal::SIGTERM).unwrap();
    }

    /// Sends SIGTERM and returns the exit status and everything logged.
    fn terminate(self) -> (ExitStatus, String) {
        self.send_sigterm();
        self.wait()
    }

    /// Waits for the server to exit, and returns the exit status and
    /// everything logged.
    fn wait(mut self) -> (ExitStatus, String) {
        let status = wait_with_deadline(&mut self.child);
        let stderr = self.stderr.recv_timeout(DEADLINE).expect("stderr closes");
        (status, stderr)
    }
}

impl Drop for ServerProcess {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

fn wait_with_deadline(child: &mut Child) -> ExitStatus {
    let start = Instant::now();
    loop {
        if let Some(status) = child.try_wait().unwrap() {
            return status;
        }
        assert!(
            start.elapsed() < DEADLINE,
            "the process did not exit in time"
        );
        thread::sleep(Duration::from_millis(10));
    }
}

/// Runs the binary to completion with a deadline: status, stdout, stderr.
fn run(args: &[&str]) -> (ExitStatus, String, String) {
    let mut child = Command::new(env!("CARGO_BIN_EXE_echo-server"))
        .args(args)
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    let status = wait_with_deadline(&mut child);
    let mut stdout = String::new();
    let mut stderr = String::new();
    child
        .stdout
        .take()
        .unwrap()
        .read_to_string(&mut stdout)
        .unwrap();
    child
        .stderr
        .take()
        .unwrap()
        .read_to_string(&mut stderr)
        .unwrap();
    (status, stdout, stderr)
}

fn echo(addr: SocketAddr, payload: &[u8]) -> Option<Vec<u8>> {
    let mut stream = TcpStream::connect(addr).unwrap();
    stream.set_read_timeout(Some(DEADLINE)).unwrap();
    echo_proto::write_frame(&mut stream, payload).unwrap();
    echo_proto::read_frame(&mut stream, usize::MAX).unwrap()
}

#[test]
fn announces_its_address_and_exits_0_on_sigterm() {
    let server = ServerProcess::start(&[], &[]);
    assert_ne!(server.addr.port(), 0, "the real port is announced");
    assert_eq!(
        echo(server.addr, b"Hello Echo!").as_deref(),
        Some(&b"Hello Echo!"[..])
    );
    let (status, stderr) = server.terminate();
    assert_eq!(status.code(), Some(0), "{stderr}");
    assert!(stderr.contains("shutdown requested"), "{stderr}");
}

#[test]
fn logs_connections_but_never_payloads_at_the_default_level() {
    let server = ServerProcess::start(&[], &[("RUST_LOG", "info")]);
    echo(server.addr, b"secret-payload");
    let (_, stderr) = server.terminate();
    assert!(stderr.contains("connection opened"), "{stderr}");
    assert!(stderr.contains("frames=1 bytes=18"), "{stderr}");
    assert!(!stderr.contains("secret-payload"), "{stderr}");
    assert!(
        !stderr.contains('\x1b'),
        "no colour codes when stderr is not a terminal"
    );
}

#[test]
fn logs_each_frame_with_an_escaped_preview_at_debug_level() {
    let server = ServerProcess::start(&[], &[("RUST_LOG", "debug")]);
    echo(server.addr, b"peek\x00\xff");
    let (_, stderr) = server.terminate();
    assert!(
        stderr.contains(r#"len=6 payload="peek\x00\xff""#),
        "{stderr}"
    );
}

#[test]
fn the_max_frame_flag_and_its_env_var_are_enforced() {
    for (args, envs) in [
        (&["--max-frame", "4"][..], &[][..]),
        (&[][..], &[("ECHO_MAX_FRAME", "4")][..]),
    ] {
        let server = ServerProcess::start(args, envs);
        assert_eq!(echo(server.addr, b"four").as_deref(), Some(&b"four"[..]));
        assert_eq!(echo(server.addr, b"five!"), None, "closed without an echo");
        let (_, stderr) = server.terminate();
        assert!(
            stderr.contains("frame of 5 bytes exceeds the maximum of 4 bytes"),
            "{stderr}"
        );
        assert!(
            stderr.contains("peer=127.0.0.1:"),
            "the log names the peer: {stderr}"
        );
    }
}

#[test]
fn a_taken_address_is_one_clear_error_and_exit_1() {
    let taken = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let addr = taken.local_addr().unwrap().to_string();
    let (status, stdout, stderr) = run(&["--listen", &addr]);
    assert_eq!(status.code(), Some(1));
    assert!(stdout.is_empty(), "{stdout}");
    assert_eq!(stderr.lines().count(), 1, "{stderr}");
    assert!(
        stderr.starts_with(&format!("error: cannot listen on {addr}: ")),
        "{stderr}"
    );
}

#[test]
fn usage_errors_exit_2() {
    for args in [
        &["--listen", "nonsense"][..],
        &["--max-frame", "4294967296"],
        &["--drain-timeout", "-1"],
        &["--no-such-flag"],
    ] {
        let (status, _, stderr) = run(args);
        assert_eq!(status.code(), Some(2), "{args:?}: {stderr}");
        assert!(stderr.contains("error:"), "{args:?}: {stderr}");
        assert!(!stderr.contains("panicked"), "{args:?}: {stderr}");
    }
}

#[test]
fn help_shows_every_default_and_env_var() {
    let (status, stdout, _) = run(&["--help"]);
    assert_eq!(status.code(), Some(0));
    for expected in [
        "[env: ECHO_LISTEN=]",
        "[default: 127.0.0.1:9999]",
        "[env: ECHO_MAX_FRAME=]",
        "[default: 8388608]",
        "[env: ECHO_DRAIN_TIMEOUT=]",
        "[default: 5]",
    ] {
        assert!(stdout.contains(expected), "missing {expected}: {stdout}");
    }
}

#[test]
fn sigterm_lets_a_client_finish_its_frame() {
    let server = ServerProcess::start(&[], &[]);
    let mut stream = TcpStream::connect(server.addr).unwrap();
    stream.set_read_timeout(Some(DEADLINE)).unwrap();
    // The connection is being served once an exchange on it succeeds.
    echo_proto::write_frame(&mut stream, b"ping").unwrap();
    assert!(echo_proto::read_frame(&mut stream, 16).unwrap().is_some());

    let wire = [&8u32.to_be_bytes()[..], b"complete"].concat();
    stream.write_all(&wire[..6]).unwrap();
    server.send_sigterm();
    stream.write_all(&wire[6..]).unwrap();
    let mut echoed = Vec::new();
    stream.read_to_end(&mut echoed).unwrap();
    assert_eq!(echoed, wire);
    let (status, stderr) = server.wait();
    assert_eq!(status.code(), Some(0), "{stderr}");
}
