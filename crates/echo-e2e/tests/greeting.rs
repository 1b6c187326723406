//! `echo-server --greeting` and `echo-client --expect-greeting` between the
//! real binaries, in framed and raw mode; and `--delay`, timed by the
//! test's own clock.

use std::net::SocketAddr;
use std::time::{Duration, Instant};

use echo_e2e::{client, start_server};
use echo_proto::greeting::Greeting;
use echo_testkit::wire::{self, Deadlined};
use echo_testkit::{Kind, Output, deadline};

/// The instance a greeting server at `addr` names, read by the test itself
/// from a connection of its own, in `mode`'s encoding.
fn instance_of(addr: SocketAddr, raw: bool, deadline: Instant) -> String {
    let stream = wire::connect(addr, deadline).unwrap();
    let json = if raw {
        let mut line = Vec::new();
        let mut byte = [0];
        let mut conn = Deadlined::new(&stream, deadline);
        while byte != *b"\n" {
            std::io::Read::read_exact(&mut conn, &mut byte).unwrap();
            line.push(byte[0]);
        }
        line.pop();
        line
    } else {
        Deadlined::new(&stream, deadline)
            .read_frame()
            .unwrap()
            .expect("a greeting frame")
    };
    Greeting::parse(&json).unwrap().instance
}

fn assert_success(output: &Output) {
    assert_eq!(output.status.code(), Some(0), "{output}");
    assert!(!output.stderr_text().contains("error"), "{output}");
}

#[test]
fn the_client_reads_the_greeting_and_names_the_instance_in_each_mode() {
    let deadline = deadline();
    for (server_args, kind, client_flag) in [
        (&["--greeting"][..], Kind::Framed, None),
        (&["--greeting", "--mode", "raw"], Kind::Raw, Some("--raw")),
    ] {
        let (_server, [addr]) = start_server(server_args, [kind], deadline).unwrap();
        let instance = instance_of(addr, client_flag.is_some(), deadline);
        let named = format!("greeted by instance {instance} (echo-server ");

        let output = client(addr)
            .unwrap()
            .args(client_flag)
            .args(["--expect-greeting", "-v", "hello"])
            .run(deadline)
            .unwrap();
        assert_success(&output);
        assert_eq!(output.stdout_text(), "hello\n", "{output}");
        assert!(output.stderr_text().contains(&named), "{output}");

        // ping, through the environment variable this time.
        let output = client(addr)
            .unwrap()
            .args(client_flag)
            .env("ECHO_EXPECT_GREETING", "1")
            .args(["-v", "ping", "-c", "2", "-i", "10"])
            .run(deadline)
            .unwrap();
        assert_success(&output);
        assert!(output.stderr_text().contains(&named), "{output}");

        let output = client(addr)
            .unwrap()
            .args(client_flag)
            .args([
                "--expect-greeting",
                "bench",
                "-c",
                "3",
                "-n",
                "300",
                "--json",
            ])
            .run(deadline)
            .unwrap();
        assert_success(&output);
        let report: serde_json::Value = serde_json::from_str(&output.stdout_text()).unwrap();
        assert_eq!(report["instances"][&instance]["connections"], 3, "{output}");
        assert_eq!(report["instances"][&instance]["echoed"], 300, "{output}");
    }
}

#[test]
fn expecting_a_greeting_from_a_server_without_one_fails_within_the_timeout() {
    let deadline = deadline();
    let (_server, [addr]) = start_server(&[], [Kind::Framed], deadline).unwrap();
    let started = Instant::now();
    let output = client(addr)
        .unwrap()
        .args(["--expect-greeting", "--timeout", "0.3", "hi"])
        .run(deadline)
        .unwrap();
    let took = started.elapsed();
    assert_eq!(output.status.code(), Some(1), "{output}");
    assert!(output.stdout.is_empty(), "{output}");
    let stderr = output.stderr_text();
    assert_eq!(
        stderr.trim_end(),
        format!("error: no greeting from {addr}: none came within 300ms"),
        "{output}"
    );
    assert!(took >= Duration::from_millis(300), "{took:?}");
}

#[test]
fn a_client_not_told_of_the_greeting_sees_unexpected_data() {
    let deadline = deadline();
    let (_server, [addr]) =
        start_server(&["--greeting", "--mode", "raw"], [Kind::Raw], deadline).unwrap();
    let output = client(addr)
        .unwrap()
        .args(["--raw", "hi"])
        .run(deadline)
        .unwrap();
    assert_eq!(output.status.code(), Some(1), "{output}");
    assert!(
        output
            .stderr_text()
            .contains("differs from the message sent"),
        "{output}"
    );
}

#[test]
fn the_server_greets_when_its_environment_says_so_and_udp_is_refused_at_once() {
    let deadline = deadline();
    let server = echo_testkit::Spawn::bin("echo-server")
        .unwrap()
        .args(["--listen", "127.0.0.1:0"])
        .env("ECHO_GREETING", "true")
        .start()
        .unwrap();
    let [addr] = server.listening([Kind::Framed], deadline).unwrap();
    assert!(!instance_of(addr, false, deadline).is_empty());

    let output = client(addr)
        .unwrap()
        .args(["--udp", "--expect-greeting", "ping"])
        .run(deadline)
        .unwrap();
    assert_eq!(output.status.code(), Some(2), "{output}");
    assert!(output.stderr_text().contains("not UDP"), "{output}");
}

#[test]
fn a_delayed_echo_takes_at_least_the_delay() {
    let deadline = deadline();
    let delay = Duration::from_millis(200);
    let (_server, [addr]) = start_server(&["--delay", "200ms"], [Kind::Framed], deadline).unwrap();
    let stream = wire::connect(addr, deadline).unwrap();
    for payload in [b"one".to_vec(), b"two".to_vec()] {
        let sent = Instant::now();
        wire::echo_all(&stream, &[payload], deadline, |_| Ok(())).unwrap();
        assert!(sent.elapsed() >= delay, "{:?}", sent.elapsed());
    }
    // The range form, through the environment.
    let server = echo_testkit::Spawn::bin("echo-server")
        .unwrap()
        .args(["--listen", "127.0.0.1:0"])
        .env("ECHO_DELAY", "50ms..100ms")
        .start()
        .unwrap();
    let [addr] = server.listening([Kind::Framed], deadline).unwrap();
    let stream = wire::connect(addr, deadline).unwrap();
    let sent = Instant::now();
    wire::echo_all(&stream, &[b"ranged".to_vec()], deadline, |_| Ok(())).unwrap();
    assert!(
        sent.elapsed() >= Duration::from_millis(50),
        "{:?}",
        sent.elapsed()
    );
}
