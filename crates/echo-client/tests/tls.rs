//! The client over TLS against the real server's `--tls-listen`: the CA
//! trusted, the name checked, client certificates, `--tls-insecure`, the
//! errors when verification fails, and the connect and handshake times
//! reported apart. Certificates are made for each test (rcgen).

mod common;
mod support;

use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::time::Duration;

use common::bounded;
use echo_client::bench::{self, BenchConfig, Stop};
use echo_client::{Client, ClientError, ConnectOptions, TlsOptions};
use echo_server::{Config, Server, TlsConfig};
use echo_testkit::certs::{Ca, CertDir, ServerCertFiles};
use echo_testkit::{Spawn, deadline};

/// A TLS server, its CA, and the directory of their files.
struct TlsServer {
    addr: SocketAddr,
    ca: Ca,
    dir: CertDir,
    ca_file: PathBuf,
}

/// Starts a server whose TLS listener has a certificate for `localhost`,
/// requiring client certificates signed by its CA if `mutual`.
async fn tls_server(mutual: bool) -> TlsServer {
    let ServerCertFiles {
        ca,
        dir,
        cert,
        key,
        ca_file,
    } = ServerCertFiles::new("localhost").unwrap();
    let mut tls = TlsConfig::new("127.0.0.1:0".parse().unwrap(), cert, key);
    if mutual {
        tls.client_ca = Some(ca_file.clone());
    }
    let server = Server::bind(Config {
        listen: "127.0.0.1:0".parse().unwrap(),
        tls: Some(tls),
        ..Config::default()
    })
    .await
    .unwrap();
    let addr = server.tls_addr().unwrap();
    tokio::spawn(server.run(std::future::pending()));
    TlsServer {
        addr,
        ca,
        dir,
        ca_file,
    }
}

/// `HOST:PORT` with the name the certificate was made for.
fn localhost(addr: SocketAddr) -> String {
    format!("localhost:{}", addr.port())
}

fn trusting(ca: &Path) -> TlsOptions {
    TlsOptions {
        ca: Some(ca.to_path_buf()),
        ..TlsOptions::default()
    }
}

async fn connect(addr: &str, tls: TlsOptions) -> Result<Client, ClientError> {
    let options = ConnectOptions {
        tls: Some(tls),
        ..ConnectOptions::default()
    };
    bounded(Client::connect_with_options(addr, &options)).await
}

#[tokio::test]
async fn echoes_over_tls_with_the_ca_trusted_and_times_the_handshake_apart() {
    let server = tls_server(false).await;
    let mut client = connect(&localhost(server.addr), trusting(&server.ca_file))
        .await
        .unwrap();
    assert_eq!(&client.echo(b"over TLS").await.unwrap()[..], b"over TLS");
    assert!(client.connect_time() > Duration::ZERO);
    assert!(client.tls_handshake_time().unwrap() > Duration::ZERO);
}

#[tokio::test]
async fn a_certificate_that_does_not_verify_is_a_handshake_error_saying_why() {
    let server = tls_server(false).await;
    // Another CA than the one that signed the server's certificate.
    let dir = CertDir::new().unwrap();
    let other = dir.write("other.pem", &Ca::new("other").cert_pem).unwrap();
    let error = connect(&localhost(server.addr), trusting(&other))
        .await
        .unwrap_err();
    let text = format!("{:#}", anyhow::Error::new(error));
    assert!(text.contains("TLS handshake with localhost:"), "{text}");
    assert!(text.contains("UnknownIssuer"), "{text}");
    // The right CA, the wrong name.
    let tls = TlsOptions {
        server_name: Some("echo.example".to_owned()),
        ..trusting(&server.ca_file)
    };
    let text = format!(
        "{:#}",
        anyhow::Error::new(connect(&localhost(server.addr), tls).await.unwrap_err())
    );
    assert!(
        text.contains("not valid for name \"echo.example\""),
        "{text}"
    );
    // Insecure takes any certificate.
    let insecure = TlsOptions {
        insecure: true,
        ..TlsOptions::default()
    };
    let mut client = connect(&server.addr.to_string(), insecure).await.unwrap();
    assert_eq!(
        &client.echo(b"unverified").await.unwrap()[..],
        b"unverified"
    );
}

#[tokio::test]
async fn a_server_that_requires_client_certificates_takes_one_its_ca_signed() {
    let server = tls_server(true).await;
    let identity = server.ca.issue("client");
    let cert = server.dir.write("client.pem", &identity.cert_pem).unwrap();
    let key = server
        .dir
        .write("client-key.pem", &identity.key_pem)
        .unwrap();
    let tls = TlsOptions {
        cert: Some(cert),
        key: Some(key),
        ..trusting(&server.ca_file)
    };
    let mut client = connect(&localhost(server.addr), tls).await.unwrap();
    assert_eq!(&client.echo(b"mutual").await.unwrap()[..], b"mutual");
    // Without one: the server refuses. In TLS 1.3 the refusal may come with
    // the first read rather than with the handshake.
    let result = async {
        let mut client = connect(&localhost(server.addr), trusting(&server.ca_file)).await?;
        client.echo(b"anonymous").await
    }
    .await;
    assert!(result.is_err(), "{result:?}");
}

#[tokio::test]
async fn a_bench_over_tls_reports_connect_and_handshake_times() {
    let server = tls_server(false).await;
    let report = bounded(bench::run(&BenchConfig {
        addr: localhost(server.addr),
        connections: 3,
        depth: 8,
        stop: Stop::Messages(3_000),
        tls: Some(trusting(&server.ca_file)),
        ..BenchConfig::default()
    }))
    .await
    .unwrap();
    assert!(report.succeeded(), "{report}");
    assert_eq!(report.echoed, 3_000);
    assert_eq!(report.connect_time.unwrap().count, 3);
    assert_eq!(report.tls_handshake_time.unwrap().count, 3);
    let text = report.to_string();
    assert!(text.contains("TLS handshake p50"), "{text}");
    let json: serde_json::Value = serde_json::from_str(&report.to_json()).unwrap();
    assert!(json["tls_handshake_time_us"]["p50"].as_f64().unwrap() > 0.0);
}

/// A bench's large messages go to rustls from their parts, and one larger
/// than what rustls holds unsent for a connection (128 KiB) is taken in
/// part, the rest queued: every echo still comes back as it was sent, which
/// the bench checks byte for byte.
#[tokio::test]
async fn a_bench_over_tls_echoes_messages_larger_than_rustls_takes_at_once() {
    let server = tls_server(false).await;
    for size in [65_536, 300_000] {
        let report = bounded(bench::run(&BenchConfig {
            addr: localhost(server.addr),
            connections: 2,
            depth: 3,
            size,
            stop: Stop::Messages(60),
            tls: Some(trusting(&server.ca_file)),
            ..BenchConfig::default()
        }))
        .await
        .unwrap();
        assert!(report.succeeded(), "{size} B: {report}");
        assert_eq!(report.echoed, 60, "{size} B: {report}");
    }
}

/// The binary: `--tls-ca` verifies, and a certificate that does not is one
/// `error:` line, exit 1; `--tls-insecure` warns.
#[tokio::test]
async fn the_cli_speaks_tls_and_says_why_a_certificate_is_refused() {
    let server = tls_server(false).await;
    let addr = localhost(server.addr);
    let run = |args: Vec<String>| async move {
        let spawn = Spawn::new(env!("CARGO_BIN_EXE_echo-client")).args(args);
        tokio::task::spawn_blocking(move || spawn.run(deadline()))
            .await
            .unwrap()
            .unwrap()
    };
    let ca = server.ca_file.display().to_string();
    let output = run(vec![
        "--addr".into(),
        addr.clone(),
        "--tls-ca".into(),
        ca,
        "ping".into(),
        "-c".into(),
        "2".into(),
        "-i".into(),
        "0".into(),
    ])
    .await;
    assert_eq!(output.status.code(), Some(0), "{output}");
    assert!(
        output.stdout_text().contains(", TLS handshake "),
        "{output}"
    );
    // System roots: the test CA is not among them.
    let output = run(vec![
        "--addr".into(),
        addr.clone(),
        "--tls".into(),
        "hi".into(),
    ])
    .await;
    assert_eq!(output.status.code(), Some(1), "{output}");
    let stderr = output.stderr_text();
    assert_eq!(stderr.lines().count(), 1, "{stderr}");
    assert!(
        stderr.starts_with("error: TLS handshake with localhost:")
            && stderr.contains("invalid peer certificate"),
        "{stderr}"
    );
    let output = run(vec![
        "--addr".into(),
        addr,
        "--tls-insecure".into(),
        "hi".into(),
    ])
    .await;
    assert_eq!(output.status.code(), Some(0), "{output}");
    assert_eq!(output.stdout_text(), "hi\n");
    assert!(
        output.stderr_text().contains("warning: --tls-insecure"),
        "{output}"
    );
}
