//! `--expect-greeting` in the library: the greeting read first from a real
//! server in each TCP mode, the errors when none comes or it is not one, and
//! the bench's counts per instance.

mod common;
mod support;

use std::net::SocketAddr;
use std::time::{Duration, Instant};

use common::{PATIENT, bounded};
use echo_client::bench::{self, BenchConfig, Stop};
use echo_client::{Client, ClientError, Mode};
use echo_server::{Config, Server};
use tokio::io::AsyncWriteExt;
use tokio::net::TcpListener;

/// An in-process server on a free port, greeting when `greeting` is set.
async fn server(mode: echo_server::Mode, greeting: bool) -> SocketAddr {
    let server = Server::bind(Config {
        listen: "127.0.0.1:0".parse().unwrap(),
        mode,
        greeting,
        ..Config::default()
    })
    .await
    .unwrap();
    let addr = server.local_addr();
    tokio::spawn(server.run(std::future::pending()));
    addr
}

#[tokio::test]
async fn the_greeting_is_read_first_in_each_tcp_mode_then_echoes_follow() {
    for (server_mode, mode) in [
        (echo_server::Mode::Framed, Mode::Framed),
        (echo_server::Mode::Raw, Mode::Raw),
    ] {
        let addr = server(server_mode, true).await;
        let mut client = bounded(Client::connect_with(addr, mode, PATIENT))
            .await
            .unwrap();
        let greeting = bounded(client.read_greeting()).await.unwrap();
        assert_eq!(greeting.server, "echo-server", "{mode}");
        assert!(!greeting.instance.is_empty(), "{mode}");
        let echo = bounded(client.echo(b"after")).await.unwrap();
        assert_eq!(&echo[..], b"after", "{mode}");
    }
}

#[tokio::test]
async fn a_server_that_does_not_greet_fails_within_the_timeout() {
    let addr = server(echo_server::Mode::Framed, false).await;
    let timeout = Duration::from_millis(200);
    let mut client = bounded(Client::connect_with(addr, Mode::Framed, timeout))
        .await
        .unwrap();
    let started = Instant::now();
    let error = bounded(client.read_greeting()).await.unwrap_err();
    assert!(started.elapsed() >= timeout);
    assert!(matches!(error, ClientError::NoGreeting { .. }), "{error:?}");
    assert_eq!(
        error.to_string(),
        format!("no greeting from {addr}: none came within 200ms")
    );
}

/// A server that sends `first` as each connection opens, then closes.
async fn sends_first(first: &'static [u8]) -> SocketAddr {
    let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    tokio::spawn(async move {
        while let Ok((mut stream, _)) = listener.accept().await {
            let _ = stream.write_all(first).await;
        }
    });
    addr
}

#[tokio::test]
async fn what_is_wrong_with_a_bad_greeting_is_named() {
    for (first, mode, expected) in [
        (
            &b"\x00\x00\x00\x05hello"[..],
            Mode::Framed,
            "expected value",
        ),
        (
            b"{\"server\":\"x\"}\n",
            Mode::Raw,
            "missing field `version`",
        ),
        (
            b"{\"server\":\"x\"",
            Mode::Raw,
            "the connection ended inside it",
        ),
        (b"", Mode::Framed, "the connection ended before one came"),
    ] {
        let addr = sends_first(first).await;
        let mut client = bounded(Client::connect_with(addr, mode, PATIENT))
            .await
            .unwrap();
        let error = bounded(client.read_greeting()).await.unwrap_err();
        let text = format!("{:#}", anyhow::Error::new(error));
        assert!(text.contains(expected), "{first:?}: {text}");
    }
}

#[tokio::test]
async fn udp_has_no_greeting() {
    let socket = tokio::net::UdpSocket::bind("127.0.0.1:0").await.unwrap();
    let addr = socket.local_addr().unwrap();
    let mut client = bounded(Client::connect_with(addr, Mode::Udp, PATIENT))
        .await
        .unwrap();
    let error = bounded(client.read_greeting()).await.unwrap_err();
    assert!(
        matches!(error, ClientError::InvalidSetting { .. }),
        "{error:?}"
    );
}

#[tokio::test]
async fn the_bench_counts_connections_and_echoes_per_instance() {
    let addr = server(echo_server::Mode::Framed, true).await;
    let config = BenchConfig {
        addr: addr.to_string(),
        connections: 4,
        depth: 8,
        stop: Stop::Messages(400),
        expect_greeting: true,
        ..BenchConfig::default()
    };
    let report = bounded(bench::run(&config)).await.unwrap();
    assert!(report.succeeded(), "{report}");
    // One server: one instance, with every connection and every echo.
    assert_eq!(report.instances.len(), 1, "{report}");
    let (name, counts) = report.instances.iter().next().unwrap();
    assert_eq!((counts.connections, counts.echoed), (4, 400));
    assert!(
        report
            .to_string()
            .contains(&format!("instance     {name}: 4 connections, 400 echoed"))
    );
    let json: serde_json::Value = serde_json::from_str(&report.to_json()).unwrap();
    assert_eq!(json["instances"][name]["connections"], 4);
    assert_eq!(json["instances"][name]["echoed"], 400);
    assert_eq!(json["parameters"]["expect_greeting"], true);

    // Without greetings, there are no instances to show.
    let plain = BenchConfig {
        expect_greeting: false,
        addr: server(echo_server::Mode::Framed, false).await.to_string(),
        ..config.clone()
    };
    let report = bounded(bench::run(&plain)).await.unwrap();
    assert!(report.instances.is_empty());
    assert!(!report.to_json().contains("\"instances\""));
}

#[tokio::test]
async fn a_bench_expecting_a_greeting_from_a_server_without_one_fails_its_connections() {
    let addr = server(echo_server::Mode::Raw, false).await;
    let config = BenchConfig {
        addr: addr.to_string(),
        mode: Mode::Raw,
        connections: 2,
        stop: Stop::Messages(10),
        timeout: Duration::from_millis(200),
        expect_greeting: true,
        ..BenchConfig::default()
    };
    let report = bounded(bench::run(&config)).await.unwrap();
    assert_eq!(report.connections.failed, 2, "{report}");
    let first = report.first_error.unwrap_or_default();
    assert!(first.contains("no greeting from"), "{first}");
}
