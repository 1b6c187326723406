//! The `echo-server` binary as a child process, always killed at the end.

use std::io::{BufRead, BufReader, Read};
use std::net::SocketAddr;
use std::process::{Child, Command, ExitStatus, Stdio};
use std::sync::mpsc;
use std::thread;
use std::time::{Duration, Instant};

use nix::sys::signal::{Signal, kill};
use nix::unistd::Pid;

pub const DEADLINE: Duration = Duration::from_secs(10);

/// A running `echo-server`, killed if the test ends early.
pub struct ServerProcess {
    pub child: Child,
    /// The first listener's address.
    pub addr: SocketAddr,
    /// Every `echo-server listening on ADDR (KIND)` line, as (ADDR, KIND).
    pub listeners: Vec<(SocketAddr, String)>,
    stderr: mpsc::Receiver<String>,
}

impl ServerProcess {
    /// Starts the server on an ephemeral port and waits for its listening
    /// lines: one, or two when `--udp` is among the arguments.
    pub fn start(args: &[&str], envs: &[(&str, &str)]) -> ServerProcess {
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
            for line in BufReader::new(stdout).lines() {
                let Ok(line) = line else { break };
                if line_tx.send(line).is_err() {
                    break;
                }
            }
        });
        let mut stderr = child.stderr.take().unwrap();
        let (stderr_tx, stderr_rx) = mpsc::channel();
        thread::spawn(move || {
            let mut text = String::new();
            let _ = stderr.read_to_string(&mut text);
            let _ = stderr_tx.send(text);
        });
        let expected_lines = if args.contains(&"--udp") { 2 } else { 1 };
        let listeners: Vec<(SocketAddr, String)> = (0..expected_lines)
            .map(|_| {
                let line = line_rx.recv_timeout(DEADLINE).expect("a listening line");
                parse_listening_line(&line).unwrap_or_else(|| panic!("unexpected line: {line:?}"))
            })
            .collect();
        ServerProcess {
            child,
            addr: listeners[0].0,
            listeners,
            stderr: stderr_rx,
        }
    }

    /// The server's resident memory now, in KiB.
    pub fn rss_kib(&self) -> u64 {
        self.status_kib("VmRSS:")
    }

    /// The most resident memory the server has had, in KiB.
    pub fn peak_rss_kib(&self) -> u64 {
        self.status_kib("VmHWM:")
    }

    fn status_kib(&self, field: &str) -> u64 {
        let status = std::fs::read_to_string(format!("/proc/{}/status", self.child.id())).unwrap();
        status
            .lines()
            .find_map(|line| line.strip_prefix(field))
            .and_then(|value| value.trim().strip_suffix(" kB"))
            .and_then(|kib| kib.parse().ok())
            .unwrap_or_else(|| panic!("no {field} in /proc status"))
    }

    pub fn send_sigterm(&self) {
        kill(Pid::from_raw(self.child.id() as i32), Signal::SIGTERM).unwrap();
    }

    /// Sends SIGTERM and returns the exit status and everything logged.
    pub fn terminate(self) -> (ExitStatus, String) {
        self.send_sigterm();
        self.wait()
    }

    /// Waits for the server to exit, and returns the exit status and
    /// everything logged.
    pub fn wait(mut self) -> (ExitStatus, String) {
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

/// Splits `echo-server listening on ADDR (KIND)` into its address and kind.
pub fn parse_listening_line(line: &str) -> Option<(SocketAddr, String)> {
    let rest = line.strip_prefix("echo-server listening on ")?;
    let (addr, kind) = rest.split_once(" (")?;
    Some((addr.parse().ok()?, kind.strip_suffix(')')?.to_owned()))
}

pub fn wait_with_deadline(child: &mut Child) -> ExitStatus {
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
pub fn run(args: &[&str]) -> (ExitStatus, String, String) {
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
