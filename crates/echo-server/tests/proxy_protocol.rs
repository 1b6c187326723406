//! `--proxy-protocol` in-process: headers of both versions before framed,
//! raw and TLS echo, the bytes that come with them, and every way a header
//! is refused, each closed unserved and counted by its reason.

mod support;

use std::sync::Arc;
use std::time::Duration;

use echo_proto::proxy_header::{self, Addresses};
use echo_server::{Config, Mode, Server, TlsConfig, parse_proxy_source};
use echo_testkit::certs::{Ca, CertDir};
use rustls::pki_types::{CertificateDer, ServerName, pem::PemObject};
use rustls::{ClientConfig, RootCertStore};
use support::{Running, frame, read_to_end, within};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;
use tokio_rustls::TlsConnector;

/// A server that takes PROXY headers from loopback, in `mode`.
async fn proxied_server(mode: Mode) -> Running {
    Running::start(Config {
        mode,
        proxy_protocol: true,
        ..Config::default()
    })
    .await
}

/// A version 1 header for a client at 198.18.0.9:4000.
fn v1_header() -> Vec<u8> {
    proxy_header::encode_v1(
        "198.18.0.9:4000".parse().unwrap(),
        "198.18.0.1:9999".parse().unwrap(),
    )
    .into_bytes()
}

/// A version 2 header for a client at [2001:db8::9]:4000, with two TLVs.
fn v2_header_with_tlvs() -> Vec<u8> {
    let mut header = proxy_header::encode_v2(Addresses::Proxied {
        source: "[2001:db8::9]:4000".parse().unwrap(),
        destination: "[2001:db8::1]:9999".parse().unwrap(),
    });
    // PP2_TYPE_ALPN "h2" and PP2_TYPE_NOOP, 8 bytes more.
    header.extend_from_slice(&[0x01, 0, 2, b'h', b'2', 0x04, 0, 0]);
    let len = u16::from_be_bytes([header[14], header[15]]) + 8;
    header[14..16].copy_from_slice(&len.to_be_bytes());
    header
}

/// The value of the sample `series` in `running`'s metrics.
fn sample(running: &Running, series: &str) -> u64 {
    let text = running.metrics.encode();
    text.lines()
        .find_map(|line| line.strip_prefix(series)?.strip_prefix(' ')?.parse().ok())
        .unwrap_or_else(|| panic!("no {series} in:\n{text}"))
}

/// Waits until `running` has counted `count` PROXY header rejections for
/// `reason`.
#[track_caller]
fn assert_rejections(running: &Running, reason: &str, count: u64) {
    let series = format!("echo_proxy_header_rejections_total{{reason=\"{reason}\"}}");
    echo_testkit::wait_until(echo_testkit::deadline(), || {
        sample(running, &series) == count
    })
    .unwrap_or_else(|_| panic!("{series} is {}, not {count}", sample(running, &series)));
}

#[tokio::test]
async fn data_sent_with_the_header_in_one_write_is_echoed_and_the_header_is_not() {
    for mode in [Mode::Framed, Mode::Raw] {
        let server = proxied_server(mode).await;
        let mut stream = within(TcpStream::connect(server.addr)).await.unwrap();
        let mut sent = v1_header();
        sent.extend_from_slice(&frame(b"with the header"));
        within(stream.write_all(&sent)).await.unwrap();
        stream.shutdown().await.unwrap();
        assert_eq!(
            read_to_end(&mut stream).await,
            frame(b"with the header"),
            "{mode}"
        );
    }
}

#[tokio::test]
async fn a_v2_header_with_tlvs_cut_across_writes_is_read_whole() {
    let server = proxied_server(Mode::Framed).await;
    let mut stream = within(TcpStream::connect(server.addr)).await.unwrap();
    stream.set_nodelay(true).unwrap();
    let header = v2_header_with_tlvs();
    for piece in header.chunks(7) {
        within(stream.write_all(piece)).await.unwrap();
    }
    for payload in [&b"one"[..], b"two"] {
        within(stream.write_all(&frame(payload))).await.unwrap();
        let mut echo = vec![0; 4 + payload.len()];
        within(stream.read_exact(&mut echo)).await.unwrap();
        assert_eq!(echo, frame(payload));
    }
}

#[tokio::test]
async fn a_local_header_and_an_unknown_one_are_served_as_the_connection_itself() {
    let server = proxied_server(Mode::Framed).await;
    for header in [
        proxy_header::encode_v2(Addresses::Local),
        b"PROXY UNKNOWN\r\n".to_vec(),
    ] {
        let mut stream = within(TcpStream::connect(server.addr)).await.unwrap();
        let mut sent = header;
        sent.extend_from_slice(&frame(b"health check"));
        within(stream.write_all(&sent)).await.unwrap();
        stream.shutdown().await.unwrap();
        assert_eq!(read_to_end(&mut stream).await, frame(b"health check"));
    }
}

/// Sends `bytes` (then closes the sending side if `close`), and checks that
/// the server closes the connection without echoing anything.
async fn assert_refused(server: &Running, bytes: &[u8], close: bool) {
    let mut stream = within(TcpStream::connect(server.addr)).await.unwrap();
    within(stream.write_all(bytes)).await.unwrap();
    if close {
        stream.shutdown().await.unwrap();
    }
    let mut echoed = Vec::new();
    // The server may reset rather than close: unread bytes were in its
    // socket. Either way nothing was echoed.
    let _ = within(stream.read_to_end(&mut echoed)).await;
    assert!(echoed.is_empty(), "echoed {echoed:?}");
}

#[tokio::test]
async fn a_connection_without_a_valid_header_is_closed_unserved_and_counted_by_reason() {
    let server = Running::start(Config {
        proxy_protocol: true,
        // The header's time is the idle timeout's, when that is shorter.
        idle_timeout: Duration::from_millis(300),
        ..Config::default()
    })
    .await;
    // No header at all: a frame where the header should be.
    assert_refused(&server, &frame(b"no header"), false).await;
    // A broken one, found out at its first bad byte.
    assert_refused(&server, b"PROXY TCP4 1.2.3.4 1.2.3.4 99999 1\r\n", false).await;
    assert_rejections(&server, "invalid", 2);
    // Too long: 107 bytes and no end of line.
    let mut long = b"PROXY UNKNOWN ".to_vec();
    long.resize(107, b'x');
    assert_refused(&server, &long, false).await;
    assert_rejections(&server, "too_long", 1);
    // Cut: the client closes before the header is whole.
    assert_refused(&server, &v1_header()[..20], true).await;
    assert_rejections(&server, "cut", 1);
    // Never whole: the header's time runs out.
    assert_refused(&server, &v1_header()[..20], false).await;
    assert_rejections(&server, "timeout", 1);
    assert_eq!(
        sample(
            &server,
            "echo_connections_closed_total{reason=\"proxy_header\"}"
        ),
        5
    );
    // None of it touched a connection that sent a good header.
    let mut stream = within(TcpStream::connect(server.addr)).await.unwrap();
    let mut sent = v1_header();
    sent.extend_from_slice(&frame(b"still served"));
    within(stream.write_all(&sent)).await.unwrap();
    stream.shutdown().await.unwrap();
    assert_eq!(read_to_end(&mut stream).await, frame(b"still served"));
}

#[tokio::test]
async fn a_header_from_a_source_not_trusted_is_refused_even_when_valid() {
    let server = Running::start(Config {
        proxy_protocol: true,
        proxy_from: vec![parse_proxy_source("198.18.0.0/15").unwrap()],
        ..Config::default()
    })
    .await;
    let mut sent = v1_header();
    sent.extend_from_slice(&frame(b"from loopback"));
    assert_refused(&server, &sent, false).await;
    assert_rejections(&server, "untrusted", 1);
}

#[tokio::test]
async fn the_header_comes_before_the_tls_handshake() {
    let ca = Ca::new("CA");
    let issued = ca.issue("localhost");
    let dir = CertDir::new().unwrap();
    let cert = dir.write("cert.pem", &issued.chain_pem()).unwrap();
    let key = dir.write("key.pem", &issued.key_pem).unwrap();
    let server = Server::bind(Config {
        listen: "127.0.0.1:0".parse().unwrap(),
        tls: Some(TlsConfig::new("127.0.0.1:0".parse().unwrap(), cert, key)),
        proxy_protocol: true,
        ..Config::default()
    })
    .await
    .unwrap();
    let addr = server.tls_addr().unwrap();
    let (_stop, stopped) = tokio::sync::oneshot::channel::<()>();
    tokio::spawn(server.run(async {
        let _ = stopped.await;
    }));

    let mut roots = RootCertStore::empty();
    roots
        .add(CertificateDer::from_pem_slice(ca.cert_pem.as_bytes()).unwrap())
        .unwrap();
    let client =
        ClientConfig::builder_with_provider(Arc::new(rustls::crypto::ring::default_provider()))
            .with_safe_default_protocol_versions()
            .unwrap()
            .with_root_certificates(roots)
            .with_no_client_auth();
    let mut tcp = within(TcpStream::connect(addr)).await.unwrap();
    within(tcp.write_all(&v2_header_with_tlvs())).await.unwrap();
    let name = ServerName::try_from("localhost").unwrap();
    let mut tls = within(TlsConnector::from(Arc::new(client)).connect(name, tcp))
        .await
        .unwrap();
    within(tls.write_all(&frame(b"over TLS, proxied")))
        .await
        .unwrap();
    let mut echo = vec![0; 4 + 17];
    within(tls.read_exact(&mut echo)).await.unwrap();
    assert_eq!(echo, frame(b"over TLS, proxied"));
}
