//! IPv6: every listener kind (framed and raw TCP, UDP, admin) on `[::1]`
//! and on `[::]`, and the client connecting to `[::1]:PORT`, between the
//! real binaries. On a machine without an IPv6 loopback each test prints a
//! SKIPPED line and returns.

use std::net::{Ipv6Addr, SocketAddr};

use echo_e2e::{client, http_get};
use echo_testkit::{Kind, Output, Process, Spawn, deadline};

/// Whether this machine can listen on the IPv6 loopback; if not, says so on
/// stderr for the test `name`.
fn has_ipv6_loopback(name: &str) -> bool {
    match std::net::TcpListener::bind((Ipv6Addr::LOCALHOST, 0)) {
        Ok(_) => true,
        Err(error) => {
            eprintln!("SKIPPED {name}: this machine has no IPv6 loopback ([::1]: {error})");
            false
        }
    }
}

/// Starts `echo-server ARGS...` and waits for its listeners of `kinds`.
fn server<const N: usize, S: AsRef<std::ffi::OsStr>>(
    args: impl IntoIterator<Item = S>,
    kinds: [Kind; N],
) -> (Process, [SocketAddr; N]) {
    echo_e2e::start_server_with(args, kinds, deadline()).unwrap()
}

fn assert_echoed(output: &Output, message: &str) {
    assert_eq!(output.status.code(), Some(0), "{output}");
    assert_eq!(output.stdout_text(), format!("{message}\n"), "{output}");
}

#[test]
fn every_listener_serves_on_the_ipv6_loopback() {
    if !has_ipv6_loopback("every_listener_serves_on_the_ipv6_loopback") {
        return;
    }
    let deadline = deadline();
    let (_framed, [tcp, udp, metrics]) = server(
        [
            "--listen", "[::1]:0", "--udp", "[::1]:0", "--admin", "[::1]:0",
        ],
        [Kind::Framed, Kind::Udp, Kind::Admin],
    );
    for addr in [tcp, udp, metrics] {
        assert_eq!(addr.ip(), Ipv6Addr::LOCALHOST, "{addr}");
    }
    let output = client(tcp)
        .unwrap()
        .arg("framed over IPv6")
        .run(deadline)
        .unwrap();
    assert_echoed(&output, "framed over IPv6");
    let output = client(udp)
        .unwrap()
        .args(["--udp", "udp over IPv6"])
        .run(deadline)
        .unwrap();
    assert_echoed(&output, "udp over IPv6");

    let response = http_get(metrics, "/metrics", deadline);
    assert_eq!(response.status, "200", "{response:?}");
    assert!(
        response.body.contains("echo_frames_echoed_total 1"),
        "{response:?}"
    );

    let (_raw, [raw]) = server(["--listen", "[::1]:0", "--mode", "raw"], [Kind::Raw]);
    let output = client(raw)
        .unwrap()
        .args(["--raw", "raw over IPv6"])
        .run(deadline)
        .unwrap();
    assert_echoed(&output, "raw over IPv6");
}

#[test]
fn the_unspecified_ipv6_address_is_reached_through_the_loopback() {
    if !has_ipv6_loopback("the_unspecified_ipv6_address_is_reached_through_the_loopback") {
        return;
    }
    let deadline = deadline();
    let (_server, [tcp, udp]) = server(
        ["--listen", "[::]:0", "--udp", "[::]:0"],
        [Kind::Framed, Kind::Udp],
    );
    assert_eq!(tcp.ip(), Ipv6Addr::UNSPECIFIED, "{tcp}");
    // Test traffic stays on the loopback, whatever the server listens on.
    let loopback = |addr: SocketAddr| SocketAddr::from((Ipv6Addr::LOCALHOST, addr.port()));
    // The client takes the address as typed, brackets and all.
    let output = Spawn::bin("echo-client")
        .unwrap()
        .args(["--addr", &format!("[::1]:{}", tcp.port()), "bracketed"])
        .run(deadline)
        .unwrap();
    assert_echoed(&output, "bracketed");
    let output = client(loopback(udp))
        .unwrap()
        .args(["--udp", "ping", "-c", "2", "-i", "10"])
        .run(deadline)
        .unwrap();
    assert_eq!(output.status.code(), Some(0), "{output}");
    let output = client(loopback(tcp))
        .unwrap()
        .args(["bench", "-c", "2", "-n", "100"])
        .run(deadline)
        .unwrap();
    assert_eq!(output.status.code(), Some(0), "{output}");
}
