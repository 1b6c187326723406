//! The `echo-client` binary, run as a user would run it, against the real
//! server in-process and against fake servers.

mod support;

use std::ffi::{OsStr, OsString};
use std::net::SocketAddr;
use std::os::unix::ffi::OsStringExt;
use std::process::ExitStatus;

use echo_server::Mode;
use echo_testkit::{Pipe, Signal, Spawn, deadline};
use support::{
    Fake, UdpFake, echo_server, echo_server_with_max_frame, echo_servers, fake_server,
    refused_addr, udp_fake,
};

/// What a run of the binary left behind.
#[derive(Debug)]
struct Run {
    status: ExitStatus,
    stdout: Vec<u8>,
    stderr: String,
}

/// The binary, run by the test kit: with none of the caller's `ECHO_*`
/// settings or log filter, so that each test states everything it depends
/// on, and killed if the test fails while it runs.
fn client(args: impl IntoIterator<Item = impl AsRef<OsStr>>) -> Spawn {
    Spawn::new(env!("CARGO_BIN_EXE_echo-client")).args(args)
}

/// Runs `client` and waits for it to exit, for no longer than the deadline.
///
/// The wait blocks, so it runs on a thread of its own while this test's
/// runtime goes on serving the servers the client talks to.
async fn execute(client: Spawn) -> Run {
    let output = tokio::task::spawn_blocking(move || client.run(deadline()))
        .await
        .expect("the wait does not panic")
        .expect("the client runs and exits within the deadline");
    Run {
        status: output.status,
        stdout: output.stdout,
        stderr: String::from_utf8_lossy(&output.stderr).into_owned(),
    }
}

/// Runs `client` with `input` on its stdin, then closed.
async fn execute_with_input(client: Spawn, input: &[u8]) -> Run {
    execute(client.stdin(input)).await
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
    assert_eq!(lines[0], format!("connected to {addr} (framed)"));
    assert_eq!(lines[1], "sending 5 bytes");
    assert!(lines[2].starts_with("received 5 bytes in "), "{run:?}");
    assert!(lines[2].ends_with(" ms"), "{run:?}");
}

#[tokio::test]
async fn settings_come_from_the_environment() {
    let addr = echo_server().await;
    let command = client(["hi"])
        .env("ECHO_ADDR", addr.to_string())
        .env("ECHO_VERBOSE", "1");
    let run = execute(command).await;
    run.assert_success(b"hi\n");
    assert!(
        run.stderr
            .starts_with(&format!("connected to {addr} (framed)\n")),
        "{run:?}"
    );

    let command = client(["hi"])
        .env("ECHO_ADDR", addr.to_string())
        .env("ECHO_VERBOSE", "0");
    let run = execute(command).await;
    run.assert_success(b"hi\n");
    assert_eq!(run.stderr, "");

    let command = client(["hi"]).env("ECHO_TIMEOUT", "soon");
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
    let output = tokio::task::spawn_blocking(move || {
        let mut process = client(at(addr, &[]))
            .close_stdout()
            .keep_stdin_open()
            .start()?;
        // One line, and stdin kept open: the client must stop because of
        // stdout, not because its input ended.
        process.write_stdin(b"first\n")?;
        process.wait(deadline())
    })
    .await
    .expect("the wait does not panic")
    .expect("the client exits within the deadline");
    assert_eq!(output.status.code(), Some(0), "{output}");
    assert_eq!(output.stderr_text(), "");
}

// ---- ping ----

impl Run {
    fn stdout_text(&self) -> String {
        String::from_utf8(self.stdout.clone()).expect("the output is UTF-8")
    }

    /// Neither stream has a control character (an escape starts every colour
    /// or cursor movement): the output was not a terminal.
    #[track_caller]
    fn assert_plain(&self) {
        for (name, text) in [
            ("stdout", self.stdout_text()),
            ("stderr", self.stderr.clone()),
        ] {
            assert!(
                !text.chars().any(|c| c.is_control() && c != '\n'),
                "{name} has control characters: {text:?}"
            );
        }
    }
}

/// Checks that `line` is `<prefix><number><suffix>` for a decimal number
/// with three decimals, and returns the number.
#[track_caller]
fn number_between(line: &str, prefix: &str, suffix: &str) -> f64 {
    let number = line
        .strip_prefix(prefix)
        .and_then(|rest| rest.strip_suffix(suffix))
        .unwrap_or_else(|| panic!("{line:?} is not {prefix:?}…{suffix:?}"));
    assert_eq!(number.split('.').nth(1).map(str::len), Some(3), "{line:?}");
    number
        .parse()
        .unwrap_or_else(|_| panic!("{number:?} in {line:?}"))
}

/// Checks ping's summary lines for `sent` pings all echoed.
#[track_caller]
fn assert_ping_summary(lines: &[&str], addr: SocketAddr, sent: usize) {
    assert_eq!(lines[0], format!("--- {addr} echo statistics ---"));
    let counts = format!("{sent} sent, {sent} received, 0% loss, time ");
    assert!(
        lines[1].starts_with(&counts) && lines[1].ends_with(" ms"),
        "{lines:?}"
    );
    let rtt = lines[2]
        .strip_prefix("rtt min/avg/max/mdev = ")
        .unwrap_or_else(|| panic!("{lines:?}"));
    let (figures, percentiles) = rtt.split_once(" ms, p50 ").expect("p50 after the figures");
    let figures: Vec<f64> = figures.split('/').map(|n| n.parse().unwrap()).collect();
    assert_eq!(figures.len(), 4, "{rtt}");
    let (min, avg, max) = (figures[0], figures[1], figures[2]);
    assert!(min <= avg && avg <= max, "{rtt}");
    let (p50, p99) = percentiles.split_once(" ms, p99 ").expect("p99 after p50");
    let (p50, p99): (f64, f64) = (
        p50.parse().unwrap(),
        p99.trim_end_matches(" ms").parse().unwrap(),
    );
    assert!(min <= p50 && p50 <= p99 && p99 <= max, "{rtt}");
}

#[tokio::test]
async fn ping_prints_a_line_per_echo_then_the_summary() {
    let addr = echo_server().await;
    let run = execute(client(at(addr, &["ping", "-c", "3", "-i", "0"]))).await;
    assert_eq!(run.status.code(), Some(0), "{run:?}");
    assert_eq!(run.stderr, "");
    let stdout = run.stdout_text();
    let lines: Vec<&str> = stdout.lines().collect();
    assert_eq!(lines.len(), 8, "{stdout}");
    assert_eq!(
        lines[0],
        format!("ECHO {addr} (framed): 56 bytes of payload")
    );
    for (seq, line) in (1..=3).zip(&lines[1..4]) {
        let rtt = number_between(
            line,
            &format!("56 bytes from {addr}: seq={seq} time="),
            " ms",
        );
        assert!(rtt > 0.0);
    }
    assert_ping_summary(&lines[4..7], addr, 3);
    // Over TCP, how long connecting took, as curl's time_connect.
    assert!(
        number_between(lines[7], "connect ", " ms") > 0.0,
        "{stdout}"
    );
}

#[tokio::test]
async fn ping_speaks_raw_and_udp() {
    let servers = echo_servers(Mode::Raw).await;
    for (addr, flag, name) in [(servers.tcp, "--raw", "raw"), (servers.udp, "--udp", "udp")] {
        let run = execute(client(at(
            addr,
            &[flag, "ping", "-c", "2", "-i", "0", "-s", "100"],
        )))
        .await;
        assert_eq!(run.status.code(), Some(0), "{run:?}");
        let stdout = run.stdout_text();
        let lines: Vec<&str> = stdout.lines().collect();
        assert_eq!(
            lines[0],
            format!("ECHO {addr} ({name}): 100 bytes of payload")
        );
        assert!(
            lines[1].starts_with(&format!("100 bytes from {addr}: seq=1 time=")),
            "{stdout}"
        );
        assert_ping_summary(&lines[3..], addr, 2);
    }
}

#[tokio::test]
async fn ping_counts_lost_echoes_and_succeeds_if_any_came_back() {
    let addr = udp_fake(UdpFake::DropEveryOther).await;
    let args = ["--udp", "--timeout", "0.2", "ping", "-c", "2", "-i", "0"];
    let run = execute(client(at(addr, &args))).await;
    assert_eq!(run.status.code(), Some(0), "{run:?}");
    let stdout = run.stdout_text();
    let lines: Vec<&str> = stdout.lines().collect();
    assert!(
        lines[1].starts_with(&format!("56 bytes from {addr}: seq=1 ")),
        "{stdout}"
    );
    assert_eq!(
        lines[2],
        format!("no echo from {addr} for seq=2 within 200 ms")
    );
    assert!(
        lines[4].starts_with("2 sent, 1 received, 50% loss, time "),
        "{stdout}"
    );
}

#[tokio::test]
async fn ping_fails_when_nothing_comes_back() {
    let addr = fake_server(Fake::Silent).await;
    let run = execute(client(at(
        addr,
        &["--timeout", "0.1", "ping", "-c", "2", "-i", "0"],
    )))
    .await;
    run.assert_failure(&format!("no echo came back from {addr}"));
    let stdout = run.stdout_text();
    assert!(stdout.contains("2 sent, 0 received, 100% loss"), "{stdout}");
    assert!(!stdout.contains("rtt"), "{stdout}");
}

#[tokio::test]
async fn ping_fails_on_a_corrupted_echo() {
    let addr = fake_server(Fake::CorruptOneFrame).await;
    let run = execute(client(at(addr, &["ping", "-c", "5", "-i", "0"]))).await;
    run.assert_failure(&format!(
        "1 echo from {addr} differed from the message sent"
    ));
    let stdout = run.stdout_text();
    assert!(
        stdout.contains(&format!("56 bytes from {addr}: seq=4 time="))
            && stdout.contains(" ms CORRUPTED: first difference at byte 55"),
        "{stdout}"
    );
    assert!(
        stdout.contains("5 sent, 5 received, 0% loss, time "),
        "{stdout}"
    );
    assert!(stdout.contains(", 1 corrupted\n"), "{stdout}");
}

#[tokio::test]
async fn ping_json_is_one_document() {
    let servers = echo_servers(Mode::Framed).await;
    let run = execute(client(at(
        servers.udp,
        &["--udp", "ping", "-c", "3", "-i", "0", "--json"],
    )))
    .await;
    assert_eq!(run.status.code(), Some(0), "{run:?}");
    let json: serde_json::Value =
        serde_json::from_slice(&run.stdout).expect("stdout is one JSON document");
    assert_eq!(json["mode"], "udp");
    assert_eq!(
        (json["sent"].as_u64(), json["received"].as_u64()),
        (Some(3), Some(3))
    );
    assert_eq!(json["loss_percent"], 0.0);
    assert_eq!(json["rtt_us"]["count"], 3);
    let p50 = json["rtt_us"]["p50"].as_f64().unwrap();
    assert!(p50 > 0.0 && p50 <= json["rtt_us"]["max"].as_f64().unwrap());
    assert_eq!(run.stderr, "");
}

/// Without a count, ping runs until Ctrl-C, and then prints its summary.
#[tokio::test]
async fn ping_prints_the_summary_on_ctrl_c() {
    let addr = echo_server().await;
    let output = tokio::task::spawn_blocking(move || {
        let mut ping = client(at(addr, &["ping", "-i", "20"])).start()?;
        // The second reply, so that the signal handler is surely in place.
        ping.wait_for_line(Pipe::Stdout, deadline(), |line| {
            line.contains("bytes from") && line.contains(" seq=2 ")
        })?;
        ping.signal(Signal::SIGINT)?;
        ping.wait(deadline())
    })
    .await
    .expect("the wait does not panic")
    .expect("ping ends on Ctrl-C within the deadline");
    let seen = output.stdout_text();
    assert_eq!(output.status.code(), Some(0), "{output}");
    let summary = seen
        .split_once(&format!("--- {addr} echo statistics ---"))
        .map(|(_, summary)| summary);
    let summary = summary.unwrap_or_else(|| panic!("no summary in {seen:?}"));
    assert!(summary.contains(" received, 0% loss, time "), "{seen}");
}

// ---- bench ----

#[tokio::test]
async fn bench_json_is_one_document_with_every_setting_and_result() {
    let addr = echo_server().await;
    let args = [
        "bench", "-n", "1000", "-c", "3", "-d", "4", "-s", "100", "--json",
    ];
    let run = execute(client(at(addr, &args))).await;
    assert_eq!(run.status.code(), Some(0), "{run:?}");
    assert_eq!(run.stderr, "");
    let json: serde_json::Value =
        serde_json::from_slice(&run.stdout).expect("stdout is one JSON document");
    let parameters = &json["parameters"];
    assert_eq!(parameters["addr"], addr.to_string());
    assert_eq!(parameters["mode"], "framed");
    assert_eq!(
        (
            parameters["connections"].as_u64(),
            parameters["depth"].as_u64()
        ),
        (Some(3), Some(4))
    );
    assert_eq!(
        (parameters["size"].as_u64(), parameters["messages"].as_u64()),
        (Some(100), Some(1000))
    );
    assert_eq!(
        (json["sent"].as_u64(), json["echoed"].as_u64()),
        (Some(1000), Some(1000))
    );
    assert_eq!(json["errors"]["total"], 0);
    assert_eq!(json["connections"]["failed"], 0);
    let latency = &json["latency_us"];
    let figure = |name: &str| {
        latency[name]
            .as_f64()
            .unwrap_or_else(|| panic!("latency_us.{name}"))
    };
    let ordered = ["min", "p50", "p90", "p99", "p99_9", "max"].map(figure);
    assert!(
        ordered.windows(2).all(|pair| pair[0] <= pair[1]),
        "{latency}"
    );
    assert!(json["messages_per_s"].as_f64().unwrap() > 0.0);
    let megabytes = json["megabytes_per_s"].as_f64().unwrap();
    let expected = json["messages_per_s"].as_f64().unwrap() * 100.0 / 1e6;
    assert!(
        (megabytes - expected).abs() <= 1e-9 * expected.max(1.0),
        "{json}"
    );
}

#[tokio::test]
async fn bench_prints_its_settings_intervals_and_results() {
    let addr = echo_server().await;
    let args = ["bench", "-t", "0.45", "-i", "0.1", "-c", "2"];
    let run = execute(client(at(addr, &args))).await;
    assert_eq!(run.status.code(), Some(0), "{run:?}");
    run.assert_plain();
    assert_eq!(run.stderr, "");
    let stdout = run.stdout_text();
    let lines: Vec<&str> = stdout.lines().collect();
    assert_eq!(
        lines[0],
        format!(
            "BENCH {addr} (framed): 2 connections, depth 1, 64-byte messages, for 0.45 s, unpaced"
        )
    );
    assert!(lines[1].starts_with("[  0.0-  0.1 s]  "), "{stdout}");
    assert!(
        lines[1].contains(" msgs/s, ") && lines[1].ends_with(", 0 errors"),
        "{stdout}"
    );
    let results = lines
        .iter()
        .position(|line| *line == format!("--- {addr} bench results ---"));
    let results = &lines[results.unwrap_or_else(|| panic!("no results in {stdout}"))..];
    assert!(results.len() >= 4, "{stdout}");
    assert!(
        results[1].starts_with("messages     ") && results[1].contains(" echoed in "),
        "{stdout}"
    );
    assert!(
        results[2].starts_with("throughput   ") && results[2].ends_with(" MB/s of echoed payload")
    );
    assert!(results[3].starts_with("latency      min ") && results[3].contains(", p99.9 "));
    assert_eq!(results[4], "errors       0");
    assert_eq!(results[5], "connections  2 of 2 connected, 0 failed");
}

#[tokio::test]
async fn bench_speaks_raw_and_udp() {
    let servers = echo_servers(Mode::Raw).await;
    for (addr, flag) in [(servers.tcp, "--raw"), (servers.udp, "--udp")] {
        let run = execute(client(at(
            addr,
            &[flag, "bench", "-n", "500", "-d", "8", "--json"],
        )))
        .await;
        assert_eq!(run.status.code(), Some(0), "{run:?}");
        let json: serde_json::Value = serde_json::from_slice(&run.stdout).unwrap();
        assert_eq!(json["parameters"]["mode"], &flag[2..]);
        assert_eq!(
            (json["sent"].as_u64(), json["echoed"].as_u64()),
            (Some(500), Some(500))
        );
        assert_eq!(json["errors"]["total"], 0);
    }
}

/// A server that changes one byte: the bench reports it and fails.
#[tokio::test]
async fn bench_reports_a_corrupted_byte_and_fails() {
    let addr = fake_server(Fake::CorruptOneFrame).await;
    let run = execute(client(at(addr, &["bench", "-n", "100", "--json"]))).await;
    assert_eq!(run.status.code(), Some(1), "{run:?}");
    let json: serde_json::Value =
        serde_json::from_slice(&run.stdout).expect("the report is printed all the same");
    assert_eq!(
        (
            json["errors"]["total"].as_u64(),
            json["errors"]["corrupted"].as_u64()
        ),
        (Some(1), Some(1))
    );
    assert_eq!(json["echoed"], 99);
    assert_eq!(
        run.stderr,
        format!(
            "error: the bench of {addr} found 1 error and 0 failed connections (first: connection 0: \
             the echo of message 3 differs from it at byte 63)\n"
        )
    );
    // And in the human report:
    let run = execute(client(at(addr, &["bench", "-n", "100"]))).await;
    assert_eq!(run.status.code(), Some(1), "{run:?}");
    assert!(
        run.stdout_text()
            .contains("\nerrors       1 (1 corrupted, 0 missing, 0 unexpected)\n"),
        "{run:?}"
    );
}

#[tokio::test]
async fn bench_fails_when_no_connection_opens() {
    let addr = refused_addr().await;
    let run = execute(client(at(addr, &["bench", "-n", "10", "-c", "2"]))).await;
    assert_eq!(run.status.code(), Some(1), "{run:?}");
    assert!(
        run.stdout_text()
            .contains("connections  0 of 2 connected, 2 failed"),
        "{run:?}"
    );
    assert!(run.stderr.starts_with(&format!("error: the bench of {addr} found 0 errors and 2 failed connections (first: cannot connect to {addr}: ")), "{run:?}");
    assert_eq!(run.stderr.lines().count(), 1);
}

#[tokio::test]
async fn ping_and_bench_output_is_plain_when_piped() {
    let addr = echo_server().await;
    for args in [
        &["ping", "-c", "2", "-i", "0"][..],
        &["bench", "-t", "0.3", "-i", "0.1"],
        &["-v", "bench", "-n", "100", "--json"],
    ] {
        let run = execute(client(at(addr, args))).await;
        assert_eq!(run.status.code(), Some(0), "{run:?}");
        run.assert_plain();
    }
}

#[tokio::test]
async fn ping_and_bench_usage_errors_exit_with_code_2() {
    for (args, culprit) in [
        (&["--udp", "ping", "--size", "4"][..], "sequence number"),
        (
            &["--raw", "bench", "--size", "0"],
            "raw messages must be 1 to",
        ),
        (&["ping", "-c", "0"], "at least 1"),
        (&["ping", "-i", "-5"], "more than 0 milliseconds"),
        (&["bench", "-n", "0"], "at least 1"),
        (&["bench", "-t", "1", "-n", "5"], "cannot be used with"),
        (&["bench", "--rate", "0"], "more than 0 messages per second"),
        (&["bench", "--depth", "lots"], "whole number"),
        (&["--raw", "--udp", "ping"], "cannot be used with"),
        (&["--mode", "carrier-pigeon", "ping"], "carrier-pigeon"),
        (&["--transport", "carrier-pigeon", "ping"], "carrier-pigeon"),
    ] {
        execute(client(args)).await.assert_usage_error(culprit);
    }
}

#[tokio::test]
async fn ping_and_bench_settings_come_from_the_environment() {
    let servers = echo_servers(Mode::Framed).await;
    let command = client(["bench"])
        .env("ECHO_ADDR", servers.udp.to_string())
        .env("ECHO_MODE", "udp")
        .env("ECHO_MESSAGES", "50")
        .env("ECHO_CONNECTIONS", "2")
        .env("ECHO_DEPTH", "3")
        .env("ECHO_SIZE", "20")
        .env("ECHO_JSON", "1");
    let run = execute(command).await;
    assert_eq!(run.status.code(), Some(0), "{run:?}");
    let json: serde_json::Value = serde_json::from_slice(&run.stdout).unwrap();
    let parameters = &json["parameters"];
    assert_eq!(parameters["mode"], "udp");
    assert_eq!(
        [
            &parameters["messages"],
            &parameters["connections"],
            &parameters["depth"],
            &parameters["size"]
        ],
        [50, 2, 3, 20]
    );

    let command = client(["ping"])
        .env("ECHO_ADDR", servers.tcp.to_string())
        .env("ECHO_COUNT", "2")
        .env("ECHO_INTERVAL", "0")
        .env("ECHO_SIZE", "9");
    let run = execute(command).await;
    assert_eq!(run.status.code(), Some(0), "{run:?}");
    assert!(run.stdout_text().contains("2 sent, 2 received"), "{run:?}");
    assert!(
        run.stdout_text()
            .starts_with(&format!("ECHO {} (framed): 9 bytes", servers.tcp))
    );
}

#[tokio::test]
async fn ping_and_bench_help_shows_every_default_and_environment_variable() {
    for (command, expected) in [
        (
            "ping",
            &[
                "[env: ECHO_COUNT=]",
                "[default: until interrupted]",
                "[env: ECHO_INTERVAL=]",
                "[default: 1000]",
                "[env: ECHO_SIZE=]",
                "[default: 56]",
                "[env: ECHO_JSON=]",
                "[env: ECHO_MODE=]",
                "[default: framed]",
                "--raw",
                "--udp",
                "Examples:",
            ][..],
        ),
        (
            "bench",
            &[
                "[env: ECHO_CONNECTIONS=]",
                "[env: ECHO_SIZE=]",
                "[default: 64]",
                "[env: ECHO_DEPTH=]",
                "[env: ECHO_DURATION=]",
                "[default: 10]",
                "[env: ECHO_MESSAGES=]",
                "[env: ECHO_WARMUP=]",
                "[default: 0]",
                "[env: ECHO_RATE=]",
                "[default: as fast as the echoes allow]",
                "[env: ECHO_REPORT_INTERVAL=]",
                "--reconnect",
                "[env: ECHO_RECONNECT=]",
                "[env: ECHO_JSON=]",
                "[env: ECHO_TIMEOUT=]",
                "Examples:",
            ],
        ),
    ] {
        let run = execute(client([command, "--help"])).await;
        assert_eq!(run.status.code(), Some(0), "{run:?}");
        let help = run.stdout_text();
        for expected in expected {
            assert!(
                help.contains(expected),
                "{expected:?} missing from {command} --help:\n{help}"
            );
        }
    }
}

// ---- merge ----

#[tokio::test]
async fn merge_refuses_missing_unreadable_and_foreign_files_clearly() {
    execute(client(["merge"]))
        .await
        .assert_usage_error("<FILE>");
    let missing = std::env::temp_dir().join(format!("no-such-report-{}.json", std::process::id()));
    let run = execute(client([OsString::from("merge"), missing.clone().into()])).await;
    run.assert_failure_starting(&format!("cannot read {}: ", missing.display()));

    let not_a_report =
        std::env::temp_dir().join(format!("not-a-report-{}.json", std::process::id()));
    std::fs::write(&not_a_report, "{\"echoed\": 5}").unwrap();
    let run = execute(client([
        OsString::from("merge"),
        not_a_report.clone().into(),
    ]))
    .await;
    std::fs::remove_file(&not_a_report).unwrap();
    run.assert_failure_starting(&format!(
        "{} is not a bench report: ",
        not_a_report.display()
    ));
}

#[tokio::test]
async fn merge_help_shows_its_environment_variable() {
    let run = execute(client(["merge", "--help"])).await;
    assert_eq!(run.status.code(), Some(0), "{run:?}");
    let help = run.stdout_text();
    for expected in [
        "Usage: echo-client merge [OPTIONS] <FILE>...",
        "[env: ECHO_JSON=]",
        "Examples:",
    ] {
        assert!(
            help.contains(expected),
            "{expected:?} missing from:\n{help}"
        );
    }
}

/// `--proxy-protocol v1|v2` opens the connection with a PROXY header that
/// names `--proxy-source`, before the first message; a fake balancer-side
/// server reads it, then echoes.
#[tokio::test]
async fn the_proxy_header_names_the_source_asked_for_and_comes_first() {
    use echo_proto::proxy_header;
    use tokio::io::{AsyncReadExt, AsyncWriteExt};
    for version in ["v1", "v2"] {
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let addr = listener.local_addr().unwrap();
        let fake = tokio::spawn(async move {
            let (mut stream, _) = listener.accept().await.unwrap();
            let mut received = Vec::new();
            let header = loop {
                let mut chunk = [0; 256];
                let read = stream.read(&mut chunk).await.unwrap();
                assert_ne!(read, 0, "closed before a whole header");
                received.extend_from_slice(&chunk[..read]);
                if let Some(header) = proxy_header::parse(&received).unwrap() {
                    break header;
                }
            };
            // The rest is the first frame: echo it.
            let mut rest = received.split_off(header.len);
            while rest.len() < 4
                || rest.len() < 4 + u32::from_be_bytes(rest[..4].try_into().unwrap()) as usize
            {
                let mut chunk = [0; 256];
                let read = stream.read(&mut chunk).await.unwrap();
                rest.extend_from_slice(&chunk[..read]);
            }
            stream.write_all(&rest).await.unwrap();
            header.addresses.source()
        });
        let run = execute(client(at(
            addr,
            &[
                "--proxy-protocol",
                version,
                "--proxy-source",
                "198.18.0.9:4000",
                "hello",
            ],
        )))
        .await;
        assert!(run.status.success(), "{}", run.stderr);
        assert_eq!(run.stdout, b"hello\n");
        assert_eq!(
            fake.await.unwrap(),
            Some("198.18.0.9:4000".parse().unwrap()),
            "{version}"
        );
    }
    // Over UDP: a usage error.
    let run = execute(client(["--udp", "--proxy-protocol", "v2", "ping"])).await;
    assert_eq!(run.status.code(), Some(2), "{}", run.stderr);
    assert!(run.stderr.contains("--proxy-protocol"), "{}", run.stderr);
    let run = execute(client(["--proxy-source", "198.18.0.9:1", "x"])).await;
    assert_eq!(run.status.code(), Some(2), "{}", run.stderr);
}
