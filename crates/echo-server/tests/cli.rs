//! The `echo-server` binary as users run it: its stdout line, exit codes,
//! signals and logs.

mod support;

use std::io::{Read, Write};
use std::net::SocketAddr;

use echo_server::listening::Listening;
use echo_testkit::wire::{self, Deadlined};
use echo_testkit::{Kind, Output, deadline};
use support::{binary, server_process};

fn echo(addr: SocketAddr, payload: &[u8]) -> Option<Vec<u8>> {
    let stream = wire::connect(addr, deadline()).unwrap();
    let mut conn = Deadlined::new(&stream, deadline());
    echo_proto::write_frame(&mut conn, payload).unwrap();
    echo_proto::read_frame(&mut conn, usize::MAX).unwrap()
}

/// Runs the binary with `args` to its end.
fn run(args: &[&str]) -> Output {
    binary().args(args).run(deadline()).unwrap()
}

/// Starts the server with `args` and `envs`, has it echo `payload` on the
/// port it announced, stops it with SIGTERM, checks that it exits 0, and
/// returns what it logged.
fn log_of_one_echo(args: &[&str], envs: &[(&str, &str)], payload: &[u8]) -> String {
    let (mut server, addr) = server_process(args, envs);
    assert_ne!(addr.port(), 0, "the real port is announced");
    assert_eq!(echo(addr, payload).as_deref(), Some(payload));
    let output = server.stop(deadline()).unwrap();
    assert_eq!(output.status.code(), Some(0), "{output}");
    output.stderr_text()
}

#[test]
fn announces_its_address_and_exits_0_on_sigterm() {
    let stderr = log_of_one_echo(&[], &[], b"Hello Echo!");
    assert!(stderr.contains("shutdown requested"), "{stderr}");
}

#[test]
fn announces_each_listener_with_its_kind() {
    let mut server = binary()
        .args([
            "--listen",
            "127.0.0.1:0",
            "--mode",
            "raw",
            "--udp",
            "127.0.0.1:0",
        ])
        .start()
        .unwrap();
    let addrs = server
        .listening([Kind::Raw, Kind::Udp], deadline())
        .unwrap();
    assert!(addrs.iter().all(|addr| addr.port() != 0), "{addrs:?}");
    let lines: Vec<Listening> = server
        .stdout_text()
        .lines()
        .map(|line| line.parse().unwrap())
        .collect();
    let kinds: Vec<Kind> = lines.iter().map(|listening| listening.kind).collect();
    assert_eq!(
        kinds,
        [Kind::Raw, Kind::Udp],
        "in this order, and nothing else"
    );
    let output = server.stop(deadline()).unwrap();
    assert_eq!(output.status.code(), Some(0), "{output}");
}

#[test]
fn json_logs_are_one_object_per_line() {
    let stderr = log_of_one_echo(&["--log-format", "json"], &[("RUST_LOG", "info")], b"hi");
    let lines: Vec<&str> = stderr.lines().collect();
    assert!(lines.len() >= 3, "{stderr}");
    for line in lines {
        let object: serde_json::Value =
            serde_json::from_str(line).unwrap_or_else(|error| panic!("{error}: {line}"));
        assert!(object["level"].is_string(), "{line}");
        assert!(object["fields"]["message"].is_string(), "{line}");
    }
    assert!(
        stderr.contains(r#""message":"connection opened""#),
        "{stderr}"
    );
}

#[test]
fn logs_connections_but_never_payloads_at_the_default_level() {
    let stderr = log_of_one_echo(&[], &[("RUST_LOG", "info")], b"secret-payload");
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
    let stderr = log_of_one_echo(&[], &[("RUST_LOG", "debug")], b"peek\x00\xff");
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
        let (mut server, addr) = server_process(args, envs);
        assert_eq!(echo(addr, b"four").as_deref(), Some(&b"four"[..]));
        assert_eq!(echo(addr, b"five!"), None, "closed without an echo");
        let stderr = server.stop(deadline()).unwrap().stderr_text();
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
    let output = run(&["--listen", &addr]);
    let (stdout, stderr) = (output.stdout_text(), output.stderr_text());
    assert_eq!(output.status.code(), Some(1), "{output}");
    assert!(stdout.is_empty(), "{stdout}");
    assert_eq!(stderr.lines().count(), 1, "{stderr}");
    assert!(
        stderr.starts_with(&format!(
            "error: cannot listen on {addr}: Address already in use"
        )),
        "{stderr}"
    );
}

#[test]
fn a_bad_delay_is_a_usage_error_that_names_it() {
    let output = run(&["--delay", "30"]);
    assert_eq!(output.status.code(), Some(2), "{output}");
    assert!(
        output.stderr_text().contains("`30` has no unit"),
        "{output}"
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
        let output = run(args);
        let stderr = output.stderr_text();
        assert_eq!(output.status.code(), Some(2), "{args:?}: {stderr}");
        assert!(stderr.contains("error:"), "{args:?}: {stderr}");
        assert!(!stderr.contains("panicked"), "{args:?}: {stderr}");
    }
}

#[test]
fn help_shows_every_default_and_env_var() {
    let output = run(&["--help"]);
    let stdout = output.stdout_text();
    assert_eq!(output.status.code(), Some(0), "{output}");
    for expected in [
        "[env: ECHO_LISTEN=]",
        "[default: 127.0.0.1:9999]",
        "[env: ECHO_MAX_FRAME=]",
        "[default: 8388608]",
        "[env: ECHO_DRAIN_TIMEOUT=]",
        "[default: 5]",
        "[env: ECHO_MODE=]",
        "[default: framed]",
        "[env: ECHO_UDP=]",
        "[env: ECHO_ADMIN=]",
        "[env: ECHO_DRAIN_DELAY=]",
        "[env: ECHO_INSTANCE=]",
        "[env: ECHO_MAX_CONNECTIONS=]",
        "[default: 10000]",
        "[env: ECHO_IDLE_TIMEOUT=]",
        "[default: 300]",
        "[env: ECHO_LOG_FORMAT=]",
        "[default: text]",
        "[env: ECHO_GREETING=]",
        "[env: ECHO_DELAY=]",
        "[default: no delay]",
        "[env: ECHO_TLS_LISTEN=]",
        "[env: ECHO_TLS_HANDSHAKE_TIMEOUT=]",
        "[env: ECHO_WORKERS=]",
        "Default: one per core",
        "[env: ECHO_RUNTIME=]",
        "[default: shared]",
        "[env: ECHO_PROXY_PROTOCOL=]",
        "[env: ECHO_PROXY_FROM=]",
        "[default: 127.0.0.0/8,::1/128]",
    ] {
        assert!(stdout.contains(expected), "missing {expected}: {stdout}");
    }
}

#[test]
fn sigterm_lets_a_client_finish_its_frame() {
    let (mut server, addr) = server_process(&[], &[]);
    let stream = wire::connect(addr, deadline()).unwrap();
    let mut stream = Deadlined::new(&stream, deadline());
    // The connection is being served once an exchange on it succeeds.
    echo_proto::write_frame(&mut stream, b"ping").unwrap();
    assert!(echo_proto::read_frame(&mut stream, 16).unwrap().is_some());

    let bytes = [&8u32.to_be_bytes()[..], b"complete"].concat();
    stream.write_all(&bytes[..6]).unwrap();
    server.terminate().unwrap();
    stream.write_all(&bytes[6..]).unwrap();
    let mut echoed = Vec::new();
    stream.read_to_end(&mut echoed).unwrap();
    assert_eq!(echoed, bytes);
    let output = server.wait(deadline()).unwrap();
    assert_eq!(output.status.code(), Some(0), "{output}");
}

/// With `--proxy-protocol`, the client a header names is the one in the
/// logs, beside the real peer; a connection refused for its header is
/// logged with the real peer and why.
#[test]
fn the_announced_client_is_logged_beside_the_real_peer() {
    let (mut server, addr) = server_process(&["--proxy-protocol"], &[("RUST_LOG", "info")]);
    let header = echo_proto::proxy_header::encode_v1(
        "198.18.0.9:4000".parse().unwrap(),
        "198.18.0.1:9999".parse().unwrap(),
    );
    let stream = wire::connect(addr, deadline()).unwrap();
    let mut conn = Deadlined::new(&stream, deadline());
    conn.write_all(header.as_bytes()).unwrap();
    echo_proto::write_frame(&mut conn, b"proxied").unwrap();
    assert_eq!(
        echo_proto::read_frame(&mut conn, 64).unwrap().as_deref(),
        Some(&b"proxied"[..])
    );
    drop(stream);
    // No header: refused, with the reason.
    let stream = wire::connect(addr, deadline()).unwrap();
    let mut conn = Deadlined::new(&stream, deadline());
    echo_proto::write_frame(&mut conn, b"no header").unwrap();
    let mut rest = Vec::new();
    let _ = conn.read_to_end(&mut rest);
    assert!(rest.is_empty(), "{rest:?}");
    let peer = stream.local_addr().unwrap();
    server
        .wait_for_line(echo_testkit::Pipe::Stderr, deadline(), |line| {
            line.contains(&format!("peer={peer}")) && line.contains("connection closed")
        })
        .unwrap();
    let output = server.stop(deadline()).unwrap();
    let stderr = output.stderr_text();
    let opened = stderr
        .lines()
        .find(|line| line.contains("connection opened"))
        .unwrap_or_else(|| panic!("{stderr}"));
    assert!(
        opened.contains("client=198.18.0.9:4000 peer=127.0.0.1:"),
        "{opened}"
    );
    let refused = stderr
        .lines()
        .find(|line| line.contains(&format!("peer={peer}")))
        .unwrap_or_else(|| panic!("{stderr}"));
    assert!(
        refused.contains("WARN") && refused.contains("no PROXY header"),
        "{refused}"
    );
}

/// A server whose stderr nobody reads (a stuck log collector) goes on
/// serving: its logs queue, then lines are dropped and counted, and once
/// stderr is read again it says how many were lost.
#[test]
fn a_stuck_stderr_costs_log_lines_not_service() {
    let mut server = binary()
        .args(["--listen", "127.0.0.1:0", "--admin", "127.0.0.1:0"])
        // Debug logs a line per frame: far more than the pipe and the
        // queue hold.
        .env("RUST_LOG", "debug")
        .stall_stderr()
        .start()
        .unwrap();
    let [addr, admin] = server
        .listening([Kind::Framed, Kind::Admin], deadline())
        .unwrap();
    let frames: Vec<Vec<u8>> = (0..40_000u32).map(|i| i.to_be_bytes().to_vec()).collect();
    let stream = wire::connect(addr, deadline()).unwrap();
    wire::echo_all(&stream, &frames, deadline(), |_| Ok(())).unwrap();
    // Another client is served as well, after all of that.
    assert_eq!(
        echo(addr, b"still serving").as_deref(),
        Some(&b"still serving"[..])
    );
    let dropped = |body: &str| -> u64 {
        body.lines()
            .find_map(|line| {
                line.strip_prefix("echo_log_lines_dropped_total ")?
                    .parse()
                    .ok()
            })
            .unwrap_or_else(|| panic!("no echo_log_lines_dropped_total in:\n{body}"))
    };
    echo_testkit::wait_until(deadline(), || {
        dropped(&wire::http_get(admin, "/metrics", deadline()).body) > 0
    })
    .unwrap();
    server.resume_stderr();
    server
        .wait_for_line(echo_testkit::Pipe::Stderr, deadline(), |line| {
            line.contains("log lines lost: stderr was not read fast enough")
        })
        .unwrap();
    let output = server.stop(deadline()).unwrap();
    assert_eq!(output.status.code(), Some(0), "{output}");
}

/// `--instance` names the server on every log line, text or JSON, whatever
/// the level or the event.
#[test]
fn every_log_line_names_the_instance() {
    let stderr = log_of_one_echo(&["--instance", "edge-7"], &[("RUST_LOG", "debug")], b"hi");
    assert!(stderr.lines().count() >= 4, "{stderr}");
    for line in stderr.lines() {
        assert!(line.ends_with(" instance=edge-7"), "{line}");
    }
    let stderr = log_of_one_echo(
        &["--instance", "edge 7", "--log-format", "json"],
        &[("RUST_LOG", "info")],
        b"hi",
    );
    for line in stderr.lines() {
        let object: serde_json::Value = serde_json::from_str(line).unwrap();
        assert_eq!(object["instance"], "edge 7", "{line}");
    }
}

/// Thousands of connections come and go, each logged as it opens and
/// closes, while nobody reads the server's stderr: every one is served
/// (written straight to the pipe, the lines would fill it after about
/// 64 KiB and stop the server).
#[test]
fn thousands_of_connections_are_served_while_nobody_reads_the_logs() {
    let server = binary()
        .args(["--listen", "127.0.0.1:0"])
        .env("RUST_LOG", "info")
        .stall_stderr()
        .start()
        .unwrap();
    let [addr] = server.listening([Kind::Framed], deadline()).unwrap();
    for i in 0..3_000u32 {
        let payload = i.to_be_bytes();
        assert_eq!(
            echo(addr, &payload).as_deref(),
            Some(&payload[..]),
            "connection {i}"
        );
    }
}
