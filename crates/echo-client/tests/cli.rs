//! The `echo-client` binary, run as a user would run it, against the real
//! server in-process and against fake servers.

mod support;

use std::ffi::{OsStr, OsString};
use std::net::SocketAddr;
use std::os::unix::ffi::OsStringExt;
use std::process::{ExitStatus, Stdio};

use support::{DEADLINE, Fake, echo_server, echo_server_with_max_frame, fake_server, refused_addr};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::process::{Child, Command};
use tokio::time::timeout;

/// What a run of the binary left behind.
#[derive(Debug)]
struct Run {
    status: ExitStatus,
    stdout: Vec<u8>,
    stderr: String,
}

/// The binary, with none of the caller's `ECHO_*` settings or log filter, so
/// that each test states everything it depends on. It is killed if the test
/// drops it, for example when a wait times out.
fn client(args: impl IntoIterator<Item = impl AsRef<OsStr>>) -> Command {
    let mut command = Command::new(env!("CARGO_BIN_EXE_echo-client"));
    command
        .args(args)
        .env_remove("ECHO_ADDR")
        .env_remove("ECHO_TIMEOUT")
        .env_remove("ECHO_VERBOSE")
        .env_remove("RUST_LOG")
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .kill_on_drop(true);
    command
}

/// Runs `command` with `input` on its stdin, then closed, and waits for it
/// to exit, for no longer than the deadline.
async fn execute_with_input(mut command: Command, input: &[u8]) -> Run {
    let mut child = command.spawn().expect("the binary starts");
    let mut stdin = child.stdin.take().expect("stdin is piped");
    let input = input.to_vec();
    tokio::spawn(async move {
        // The client may exit without reading everything (after an error, for
        // instance); the test then checks its exit status, not this write.
        let _ = stdin.write_all(&input).await;
    });
    finish(child).await
}

async fn execute(command: Command) -> Run {
    execute_with_input(command, b"").await
}

async fn finish(child: Child) -> Run {
    let output = timeout(DEADLINE, child.wait_with_output())
        .await
        .expect("the client exits within the deadline")
        .expect("the client's output can be collected");
    Run {
        status: output.status,
        stdout: output.stdout,
        stderr: String::from_utf8_lossy(&output.stderr).into_owned(),
    }
}

/// `--addr ADDR` followed by `args`.
fn at(addr: SocketAddr, args: &[&str]) -> Vec<String> {
    ["--addr".to_owned(), addr.to_string()]
        .into_iter()
        .chain(args.iter().map(|arg| (*arg).to_owned()))
        .collect()
}

impl Run {
    #[track_caller]
    fn assert_success(&self, stdout: &[u8]) {
        assert_eq!(self.status.code(), Some(0), "{self:?}");
        assert_eq!(
            String::from_utf8_lossy(&self.stdout),
            String::from_utf8_lossy(stdout),
            "{self:?}"
        );
        assert_eq!(self.stdout, stdout, "{self:?}");
    }

    /// A runtime failure: exit code 1 and exactly one line on stderr, `error:
    /// ` and then `message`.
    #[track_caller]
    fn assert_failure(&self, message: &str) {
        assert_eq!(self.status.code(), Some(1), "{self:?}");
        assert_eq!(self.stderr, format!("error: {message}\n"), "{self:?}");
    }

    /// A runtime failure whose message starts with `prefix`; the rest is the
    /// operating system's wording.
    #[track_caller]
    fn assert_failure_starting(&self, prefix: &str) {
        assert_eq!(self.status.code(), Some(1), "{self:?}");
        assert!(
            self.stderr.starts_with(&format!("error: {prefix}")),
            "{self:?}"
        );
        assert_eq!(self.stderr.lines().count(), 1, "{self:?}");
        assert!(self.stderr.ends_with('\n'), "{self:?}");
    }

    /// A usage error: clap's message naming `culprit`, exit code 2.
    #[track_caller]
    fn assert_usage_error(&self, culprit: &str) {
        assert_eq!(self.status.code(), Some(2), "{self:?}");
        assert!(self.stderr.starts_with("error: "), "{self:?}");
        assert!(self.stderr.contains(culprit), "{self:?}");
        assert!(self.stdout.is_empty(), "{self:?}");
    }
}

#[tokio::test]
async fn sends_each_argument_and_prints_each_echo() {
    let addr = echo_server().await;
    let run = execute(client(at(addr, &["hello", "Hello Echo!", ""]))).await;
    run.assert_success(b"hello\nHello Echo!\n\n");
    assert_eq!(run.stderr, "");
}

#[tokio::test]
async fn sends_arguments_that_are_not_utf8() {
    let addr = echo_server().await;
    let mut args: Vec<OsString> = at(addr, &[]).into_iter().map(OsString::from).collect();
    // Any bytes but NUL, which no command-line argument can hold.
    args.push(OsString::from_vec(b"caf\xe9 \xff\xfe\x80\r".to_vec()));
    let run = execute(client(args)).await;
    run.assert_success(b"caf\xe9 \xff\xfe\x80\r\n");
}

#[tokio::test]
async fn sends_each_line_of_piped_input_silently() {
    let addr = echo_server().await;
    let run = execute_with_input(client(at(addr, &[])), b"a\nb\n").await;
    run.assert_success(b"a\nb\n");
    // No prompt: stdin is a pipe, not a terminal.
    assert_eq!(run.stderr, "");
}

#[tokio::test]
async fn strips_line_endings_and_keeps_empty_and_unterminated_lines() {
    let addr = echo_server().await;
    let run = execute_with_input(client(at(addr, &[])), b"one\r\ntwo\n\n\r\nlast").await;
    run.assert_success(b"one\ntwo\n\n\nlast\n");
}

#[tokio::test]
async fn sends_binary_input_unchanged() {
    let addr = echo_server().await;
    let input = b"\x00\xff\x80\r\x07\n\xfe\x00\n";
    let run = execute_with_input(client(at(addr, &[])), input).await;
    run.assert_success(input);
}

#[tokio::test]
async fn empty_input_sends_nothing_and_succeeds() {
    let addr = echo_server().await;
    let run = execute(client(at(addr, &[]))).await;
    run.assert_success(b"");
    assert_eq!(run.stderr, "");
}

#[tokio::test]
async fn the_send_command_and_double_dash_send_command_names() {
    let addr = echo_server().await;
    for (args, stdout) in [
        (&["send", "send"][..], &b"send\n"[..]),
        (&["--", "send"], b"send\n"),
        (&["hi", "send"], b"hi\nsend\n"),
        (&["send", "--", "-v"], b"-v\n"),
        (&["send", "one", "two"], b"one\ntwo\n"),
    ] {
        let run = execute(client(at(addr, args))).await;
        run.assert_success(stdout);
    }
    // Options also work after the command's name.
    let args = [
        "send".to_owned(),
        "--addr".to_owned(),
        addr.to_string(),
        "x".to_owned(),
    ];
    execute(client(args)).await.assert_success(b"x\n");
}

#[tokio::test]
async fn the_send_command_reads_stdin_without_messages() {
    let addr = echo_server().await;
    let run = execute_with_input(client(at(addr, &["send"])), b"piped\n").await;
    run.assert_success(b"piped\n");
}

#[tokio::test]
async fn verbose_tells_on_stderr_what_happened() {
    let addr = echo_server().await;
    let run = execute(client(at(addr, &["-v", "hello"]))).await;
    run.assert_success(b"hello\n");
    let lines: Vec<&str> = run.stderr.lines().collect();
    assert_eq!(lines.len(), 3, "{run:?}");
    assert_eq!(lines[0], format!("connected to {addr}"));
    assert_eq!(lines[1], "sending 5 bytes");
    assert!(lines[2].starts_with("received 5 bytes in "), "{run:?}");
    assert!(lines[2].ends_with(" ms"), "{run:?}");
}

#[tokio::test]
async fn settings_come_from_the_environment() {
    let addr = echo_server().await;
    let mut command = client(["hi"]);
    command
        .env("ECHO_ADDR", addr.to_string())
        .env("ECHO_VERBOSE", "1");
    let run = execute(command).await;
    run.assert_success(b"hi\n");
    assert!(
        run.stderr.starts_with(&format!("connected to {addr}\n")),
        "{run:?}"
    );

    let mut command = client(["hi"]);
    command
        .env("ECHO_ADDR", addr.to_string())
        .env("ECHO_VERBOSE", "0");
    let run = execute(command).await;
    run.assert_success(b"hi\n");
    assert_eq!(run.stderr, "");

    let mut command = client(["hi"]);
    command.env("ECHO_TIMEOUT", "soon");
    execute(command).await.assert_usage_error("soon");
}

#[tokio::test]
async fn a_refused_connection_is_one_error_line_and_exit_code_1() {
    let addr = refused_addr().await;
    let run = execute(client(at(addr, &["hi"]))).await;
    run.assert_failure_starting(&format!("cannot connect to {addr}: "));
    assert!(run.stdout.is_empty());
}

#[tokio::test]
async fn a_malformed_address_is_an_error_naming_it() {
    let run = execute(client(["--addr", "no-port", "hi"])).await;
    run.assert_failure_starting("cannot resolve no-port: ");
}

#[tokio::test]
async fn a_silent_server_times_out() {
    let addr = fake_server(Fake::Silent).await;
    let run = execute(client(at(addr, &["--timeout", "0.2", "hi"]))).await;
    run.assert_failure(&format!("no echo from {addr} within 200ms"));
    assert!(run.stdout.is_empty());
}

#[tokio::test]
async fn a_server_closing_early_is_an_error_after_the_earlier_echoes() {
    let addr = echo_server_with_max_frame(16).await;
    let run = execute(client(at(
        addr,
        &["fits", "seventeen bytes!!", "never sent"],
    )))
    .await;
    run.assert_failure(&format!(
        "{addr} closed the connection before echoing a 17-byte message"
    ));
    assert_eq!(run.stdout, b"fits\n");

    let addr = fake_server(Fake::CloseAfterReading).await;
    let run = execute(client(at(addr, &["hello"]))).await;
    run.assert_failure(&format!(
        "{addr} closed the connection before echoing a 5-byte message"
    ));
}

#[tokio::test]
async fn a_different_echo_is_an_error() {
    let addr = fake_server(Fake::Corrupt).await;
    let run = execute(client(at(addr, &["hello"]))).await;
    run.assert_failure(&format!(
        "the echo from {addr} differs from the message sent: 5 bytes sent, 5 received, \
         first difference at byte 0"
    ));
    assert!(run.stdout.is_empty());
}

#[tokio::test]
async fn usage_errors_exit_with_code_2() {
    for (args, culprit) in [
        (&["--timeout", "0", "x"][..], "--timeout"),
        (&["--timeout", "-1", "x"], "more than 0 seconds"),
        (&["--timeout", "NaN", "x"], "more than 0 seconds"),
        (&["--timeout", "five", "x"], "expected a number of seconds"),
        (&["--bogus"], "--bogus"),
        (&["--addr"], "--addr"),
    ] {
        execute(client(args)).await.assert_usage_error(culprit);
    }
}

#[tokio::test]
async fn help_shows_every_default_and_environment_variable() {
    let run = execute(client(["--help"])).await;
    assert_eq!(run.status.code(), Some(0), "{run:?}");
    let help = String::from_utf8(run.stdout).unwrap();
    for expected in [
        "Usage: echo-client [OPTIONS] [MESSAGE]...",
        "echo-client [OPTIONS] <COMMAND>",
        "send",
        "[env: ECHO_ADDR=]",
        "[default: 127.0.0.1:9999]",
        "[env: ECHO_TIMEOUT=]",
        "[default: 5]",
        "[env: ECHO_VERBOSE=]",
        "[default: off]",
        "Examples:",
    ] {
        assert!(
            help.contains(expected),
            "{expected:?} missing from:\n{help}"
        );
    }
}

/// When whatever reads stdout goes away (as `head -1` does), the client stops
/// quietly with success instead of failing on the broken pipe.
#[tokio::test]
async fn a_closed_stdout_ends_the_client_quietly() {
    let addr = echo_server().await;
    let mut child = client(at(addr, &[])).spawn().expect("the binary starts");
    drop(child.stdout.take());
    let mut stdin = child.stdin.take().expect("stdin is piped");
    let mut stderr = child.stderr.take().expect("stderr is piped");
    // One line, and stdin kept open: the client must stop because of stdout,
    // not because its input ended.
    stdin.write_all(b"first\n").await.unwrap();
    let status = timeout(DEADLINE, child.wait())
        .await
        .expect("the client exits within the deadline")
        .unwrap();
    let mut errors = String::new();
    stderr.read_to_string(&mut errors).await.unwrap();
    assert_eq!(status.code(), Some(0), "stderr: {errors}");
    assert_eq!(errors, "");
    drop(stdin);
}
