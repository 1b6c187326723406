//! The `echo-server` binary as users run it: its stdout line, exit codes,
//! signals and logs.

mod support;

use std::io::{Read, Write};
use std::net::{SocketAddr, TcpStream};

use support::process::{DEADLINE, ServerProcess, run};

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
fn announces_each_listener_with_its_kind() {
    let server = ServerProcess::start(&["--mode", "raw", "--udp", "127.0.0.1:0"], &[]);
    let kinds: Vec<&str> = server
        .listeners
        .iter()
        .map(|(_, kind)| kind.as_str())
        .collect();
    assert_eq!(kinds, ["raw", "udp"]);
    assert!(server.listeners.iter().all(|(addr, _)| addr.port() != 0));
    let (status, _) = server.terminate();
    assert_eq!(status.code(), Some(0));
}

#[test]
fn json_logs_are_one_object_per_line() {
    let server = ServerProcess::start(&["--log-format", "json"], &[("RUST_LOG", "info")]);
    echo(server.addr, b"hi");
    let (_, stderr) = server.terminate();
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
        stderr.starts_with(&format!(
            "error: cannot listen on {addr}: Address already in use"
        )),
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
        "[env: ECHO_MODE=]",
        "[default: framed]",
        "[env: ECHO_UDP=]",
        "[env: ECHO_METRICS=]",
        "[env: ECHO_MAX_CONNECTIONS=]",
        "[default: 10000]",
        "[env: ECHO_IDLE_TIMEOUT=]",
        "[default: 300]",
        "[env: ECHO_LOG_FORMAT=]",
        "[default: text]",
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
