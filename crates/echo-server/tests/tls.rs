//! The TLS listener in-process: both protocol versions, mutual TLS, the
//! handshake timeout, and reloading the certificate.

mod support;

use std::sync::Arc;
use std::time::Duration;

use echo_server::listening::Kind;
use echo_server::{Config, Metrics, Mode, Server, TlsConfig, TlsReloader};
use echo_testkit::certs::{Ca, CertDir, Issued};
use rustls::pki_types::{CertificateDer, PrivateKeyDer, ServerName, pem::PemObject};
use rustls::{ClientConfig, ProtocolVersion, RootCertStore, SupportedProtocolVersion};
use support::{frame, within};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;
use tokio_rustls::TlsConnector;
use tokio_rustls::client::TlsStream;

/// A TLS server running in the background, with its files in a directory
/// of its own.
struct TlsServer {
    addr: std::net::SocketAddr,
    reloader: TlsReloader,
    metrics: Arc<Metrics>,
    dir: CertDir,
    _stop: tokio::sync::oneshot::Sender<()>,
}

impl TlsServer {
    async fn start(
        issued: &Issued,
        client_ca: Option<&Ca>,
        configure: impl FnOnce(&mut TlsConfig),
    ) -> TlsServer {
        let dir = CertDir::new().unwrap();
        let cert = dir.write("cert.pem", &issued.chain_pem()).unwrap();
        let key = dir.write("key.pem", &issued.key_pem).unwrap();
        let mut tls = TlsConfig::new("127.0.0.1:0".parse().unwrap(), cert, key);
        tls.client_ca = client_ca.map(|ca| dir.write("client-ca.pem", &ca.cert_pem).unwrap());
        configure(&mut tls);
        let server = Server::bind(Config {
            listen: "127.0.0.1:0".parse().unwrap(),
            tls: Some(tls),
            ..Config::default()
        })
        .await
        .unwrap();
        let kinds: Vec<Kind> = server.listeners().iter().map(|line| line.kind).collect();
        assert_eq!(kinds, [Kind::Framed, Kind::FramedTls]);
        let addr = server.tls_addr().unwrap();
        let reloader = server.tls_reloader().unwrap();
        let metrics = Arc::clone(server.metrics());
        let (stop, stopped) = tokio::sync::oneshot::channel::<()>();
        tokio::spawn(server.run(async {
            let _ = stopped.await;
        }));
        TlsServer {
            addr,
            reloader,
            metrics,
            dir,
            _stop: stop,
        }
    }

    /// Connects and completes a handshake as `client`.
    async fn connect(&self, client: ClientConfig) -> std::io::Result<TlsStream<TcpStream>> {
        let tcp = TcpStream::connect(self.addr).await?;
        let name = ServerName::try_from("localhost").unwrap();
        within(TlsConnector::from(Arc::new(client)).connect(name, tcp)).await
    }

    /// Whether the exposition has this sample.
    fn has(&self, sample: &str) -> bool {
        self.metrics.encode().lines().any(|line| line == sample)
    }
}

/// A client trusting `ca`, speaking only `versions`, with `identity` as its
/// certificate if given.
fn client(
    ca: &Ca,
    versions: &[&'static SupportedProtocolVersion],
    identity: Option<&Issued>,
) -> ClientConfig {
    let mut roots = RootCertStore::empty();
    roots
        .add(CertificateDer::from_pem_slice(ca.cert_pem.as_bytes()).unwrap())
        .unwrap();
    let builder =
        ClientConfig::builder_with_provider(Arc::new(rustls::crypto::ring::default_provider()))
            .with_protocol_versions(versions)
            .unwrap()
            .with_root_certificates(roots);
    match identity {
        Some(identity) => builder
            .with_client_auth_cert(
                vec![CertificateDer::from_pem_slice(identity.cert_pem.as_bytes()).unwrap()],
                PrivateKeyDer::from_pem_slice(identity.key_pem.as_bytes()).unwrap(),
            )
            .unwrap(),
        None => builder.with_no_client_auth(),
    }
}

const BOTH: &[&SupportedProtocolVersion] = &[&rustls::version::TLS13, &rustls::version::TLS12];

/// Echoes one frame over `stream` and checks it.
async fn assert_echo(stream: &mut TlsStream<TcpStream>, payload: &[u8]) {
    let sent = frame(payload);
    within(stream.write_all(&sent)).await.unwrap();
    let mut echo = vec![0; sent.len()];
    within(stream.read_exact(&mut echo)).await.unwrap();
    assert_eq!(echo, sent);
}

/// The server's certificate as the client saw it.
fn server_certificate(stream: &TlsStream<TcpStream>) -> Vec<u8> {
    stream.get_ref().1.peer_certificates().unwrap()[0].to_vec()
}

fn der(pem: &str) -> Vec<u8> {
    CertificateDer::from_pem_slice(pem.as_bytes())
        .unwrap()
        .to_vec()
}

#[tokio::test]
async fn tls_1_2_and_1_3_are_both_negotiated_and_echo() {
    let ca = Ca::new("CA");
    let server = TlsServer::start(&ca.issue("localhost"), None, |_| {}).await;
    for (version, expected) in [
        (&rustls::version::TLS12, ProtocolVersion::TLSv1_2),
        (&rustls::version::TLS13, ProtocolVersion::TLSv1_3),
    ] {
        let mut stream = server.connect(client(&ca, &[version], None)).await.unwrap();
        assert_eq!(stream.get_ref().1.protocol_version(), Some(expected));
        assert_echo(&mut stream, b"Hello TLS!").await;
        // Many frames in one write, and one larger than a TLS record.
        let large = vec![7u8; 100_000];
        assert_echo(&mut stream, &large).await;
    }
}

#[tokio::test]
async fn raw_mode_over_tls_is_announced_as_raw_tls_and_echoes_bytes() {
    let ca = Ca::new("CA");
    let issued = ca.issue("localhost");
    let dir = CertDir::new().unwrap();
    let tls = TlsConfig::new(
        "127.0.0.1:0".parse().unwrap(),
        dir.write("cert.pem", &issued.chain_pem()).unwrap(),
        dir.write("key.pem", &issued.key_pem).unwrap(),
    );
    let server = Server::bind(Config {
        listen: "127.0.0.1:0".parse().unwrap(),
        mode: Mode::Raw,
        tls: Some(tls),
        ..Config::default()
    })
    .await
    .unwrap();
    assert_eq!(server.listeners()[1].kind, Kind::RawTls);
    let addr = server.tls_addr().unwrap();
    tokio::spawn(server.run(std::future::pending()));
    let tcp = TcpStream::connect(addr).await.unwrap();
    let connector = TlsConnector::from(Arc::new(client(&ca, BOTH, None)));
    let mut stream = within(connector.connect(ServerName::try_from("localhost").unwrap(), tcp))
        .await
        .unwrap();
    within(stream.write_all(b"raw bytes")).await.unwrap();
    let mut echo = [0; 9];
    within(stream.read_exact(&mut echo)).await.unwrap();
    assert_eq!(&echo, b"raw bytes");
}

#[tokio::test]
async fn mutual_tls_accepts_a_client_the_ca_signed_and_refuses_others() {
    let ca = Ca::new("CA");
    let clients = Ca::new("client CA");
    let server = TlsServer::start(&ca.issue("localhost"), Some(&clients), |_| {}).await;

    let signed = clients.issue("alice");
    let mut stream = server
        .connect(client(&ca, BOTH, Some(&signed)))
        .await
        .unwrap();
    assert_echo(&mut stream, b"mutual").await;

    // Without a certificate, or with one from another CA, the handshake
    // fails. With TLS 1.3 the client learns it at its first read.
    let stranger = Ca::new("other").issue("mallory");
    for identity in [None, Some(&stranger)] {
        let refused = async {
            let mut stream = server.connect(client(&ca, BOTH, identity)).await?;
            stream.write_all(&frame(b"let me in")).await?;
            let mut echo = [0; 1];
            stream.read_exact(&mut echo).await.map(|_| ())
        };
        within(refused).await.unwrap_err();
    }
    let deadline = echo_testkit::deadline();
    echo_testkit::wait_until(deadline, || {
        server.has(r#"echo_tls_handshake_failures_total{reason="error"} 2"#)
    })
    .unwrap();
}

#[tokio::test]
async fn a_client_that_never_completes_its_handshake_is_closed_and_counted_alone() {
    let ca = Ca::new("CA");
    let server = TlsServer::start(&ca.issue("localhost"), None, |tls| {
        tls.handshake_timeout = Duration::from_millis(300);
    })
    .await;
    assert!(server.has(r#"echo_tls_handshake_failures_total{reason="timeout"} 0"#));
    // Connects and says nothing.
    let mut silent = TcpStream::connect(server.addr).await.unwrap();
    // Meanwhile another client is served.
    let mut other = server.connect(client(&ca, BOTH, None)).await.unwrap();
    assert_echo(&mut other, b"not held back").await;
    // The silent one is closed once its time is up.
    let mut rest = Vec::new();
    // It ends (within the deadline), cleanly or with a reset.
    let _ = within(silent.read_to_end(&mut rest)).await;
    assert!(
        rest.is_empty(),
        "nothing is sent to a client that sent no hello"
    );
    echo_testkit::wait_until(echo_testkit::deadline(), || {
        server.has(r#"echo_tls_handshake_failures_total{reason="timeout"} 1"#)
    })
    .unwrap();
    // The other connection is untouched.
    assert_echo(&mut other, b"still here").await;
}

#[tokio::test]
async fn a_reload_serves_new_handshakes_the_new_certificate_and_a_failed_one_keeps_it() {
    let ca = Ca::new("CA");
    let first = ca.issue("localhost");
    let server = TlsServer::start(&first, None, |_| {}).await;
    let mut open = server.connect(client(&ca, BOTH, None)).await.unwrap();
    assert_eq!(server_certificate(&open), der(&first.cert_pem));

    let second = ca.issue("localhost");
    server.dir.write("cert.pem", &second.chain_pem()).unwrap();
    server.dir.write("key.pem", &second.key_pem).unwrap();
    server.reloader.reload().unwrap();
    assert!(server.has(r#"echo_tls_reloads_total{result="ok"} 1"#));
    let fresh = server.connect(client(&ca, BOTH, None)).await.unwrap();
    assert_eq!(server_certificate(&fresh), der(&second.cert_pem));
    // The connection opened before carries on.
    assert_echo(&mut open, b"carrying on").await;

    // A key that is not the certificate's: the reload fails, and the
    // second certificate stays.
    server
        .dir
        .write("key.pem", &ca.issue("localhost").key_pem)
        .unwrap();
    let error = server.reloader.reload().unwrap_err();
    assert!(error.to_string().contains("key.pem"), "{error}");
    // A missing file as well.
    std::fs::remove_file(server.dir.path().join("cert.pem")).unwrap();
    let error = server.reloader.reload().unwrap_err();
    assert!(error.to_string().contains("cert.pem"), "{error}");
    assert!(server.has(r#"echo_tls_reloads_total{result="error"} 2"#));
    let after = server.connect(client(&ca, BOTH, None)).await.unwrap();
    assert_eq!(server_certificate(&after), der(&second.cert_pem));
    assert_echo(&mut open, b"and on").await;
}

#[tokio::test]
async fn a_bad_file_at_start_is_an_error_naming_it() {
    let dir = CertDir::new().unwrap();
    let issued = Ca::new("CA").issue("localhost");
    let cert = dir.write("cert.pem", &issued.chain_pem()).unwrap();
    let key = dir.write("key.pem", "not a key").unwrap();
    let error = Server::bind(Config {
        listen: "127.0.0.1:0".parse().unwrap(),
        tls: Some(TlsConfig::new("127.0.0.1:0".parse().unwrap(), cert, key)),
        ..Config::default()
    })
    .await
    .unwrap_err();
    let message = error.to_string();
    assert!(
        message.contains("key.pem") && message.contains("no private key"),
        "{message}"
    );
}
