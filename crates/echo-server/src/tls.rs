//! TLS: the listener's settings ([`TlsConfig`]), loading and checking the
//! certificate, key and client CA ([`server_config`], free of I/O), the
//! handshake of one connection, and reloading the files on SIGHUP
//! ([`TlsReloader`]).
//!
//! # What an idle TLS connection holds
//!
//! A TLS connection waits for data without its relay buffer, as a plain one
//! does: [`EchoStream::poll_read_ready`] for a TLS stream answers at once
//! when rustls already holds decrypted bytes (or the peer's close_notify),
//! and otherwise waits for the socket. What it keeps while idle is rustls's
//! own session state: the keys, and the buffer of incoming TLS records, which
//! rustls keeps once grown (at most one record, some 16 KiB). That is the
//! price of TLS per connection, on top of what a plain connection holds.

use std::fmt;
use std::io;
use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::sync::{Arc, RwLock};
use std::task::{Context, Poll};
use std::time::Duration;

use rustls::ServerConfig;
use rustls::server::WebPkiClientVerifier;
use rustls_pki_types::pem::PemObject;
use rustls_pki_types::{CertificateDer, PrivateKeyDer};
use tokio::io::{AsyncRead, AsyncWrite};
use tokio_rustls::TlsAcceptor;
use tokio_rustls::server::TlsStream;
use tracing::{info, warn};

use crate::handshake_error::HandshakeError;
use crate::{EchoStream, Metrics};

/// How long a client has to complete its TLS handshake, by default.
pub const DEFAULT_TLS_HANDSHAKE_TIMEOUT: Duration = Duration::from_secs(10);

/// Where and how the server serves TLS, beside its plain listener and in the
/// same mode.
///
/// ```
/// use echo_server::TlsConfig;
///
/// let tls = TlsConfig::new("127.0.0.1:0".parse()?, "cert.pem", "key.pem");
/// assert_eq!(tls.handshake_timeout, echo_server::DEFAULT_TLS_HANDSHAKE_TIMEOUT);
/// assert!(tls.client_ca.is_none());
/// # Ok::<(), std::net::AddrParseError>(())
/// ```
#[derive(Debug, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub struct TlsConfig {
    /// The address of the TLS listener.
    pub listen: SocketAddr,
    /// The certificate chain, PEM: the server's certificate first.
    pub cert: PathBuf,
    /// The private key of the certificate, PEM (PKCS#8, PKCS#1 or SEC1).
    pub key: PathBuf,
    /// If given, clients must present a certificate signed by one of the
    /// certificates in this PEM file (mutual TLS).
    pub client_ca: Option<PathBuf>,
    /// How long a client has to complete its handshake before it is closed.
    pub handshake_timeout: Duration,
}

impl TlsConfig {
    /// TLS on `listen` with the certificate chain and key in these files, no
    /// client certificates, and the default handshake timeout.
    pub fn new(listen: SocketAddr, cert: impl Into<PathBuf>, key: impl Into<PathBuf>) -> Self {
        Self {
            listen,
            cert: cert.into(),
            key: key.into(),
            client_ca: None,
            handshake_timeout: DEFAULT_TLS_HANDSHAKE_TIMEOUT,
        }
    }
}

/// Which of the TLS files an error is about.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[non_exhaustive]
pub enum TlsFile {
    /// The certificate chain (`--tls-cert`).
    Cert,
    /// The private key (`--tls-key`).
    Key,
    /// The CA of client certificates (`--tls-client-ca`).
    ClientCa,
}

impl fmt::Display for TlsFile {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            TlsFile::Cert => "TLS certificate",
            TlsFile::Key => "TLS key",
            TlsFile::ClientCa => "TLS client CA",
        })
    }
}

/// Why the TLS files cannot be used. Each names the file and what is wrong
/// with it.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum TlsError {
    /// The file could not be read.
    #[error("cannot read the {file} file {path}")]
    Read {
        /// Which file.
        file: TlsFile,
        /// Its path.
        path: PathBuf,
        /// What the operating system said.
        source: io::Error,
    },
    /// The file is not PEM, or holds nothing of what it should.
    #[error("the {file} file {path} is not usable PEM: {reason}")]
    Pem {
        /// Which file.
        file: TlsFile,
        /// Its path.
        path: PathBuf,
        /// What is wrong.
        reason: String,
    },
    /// The key is not the certificate's, or not a key rustls can use.
    #[error("the TLS key file {key} does not fit the certificate in {cert}: {reason}")]
    Key {
        /// The certificate chain's path.
        cert: PathBuf,
        /// The key's path.
        key: PathBuf,
        /// What rustls said.
        reason: rustls::Error,
    },
    /// The client CA holds no certificate usable as a trust anchor.
    #[error("the TLS client CA file {path} cannot verify clients: {reason}")]
    ClientCa {
        /// Its path.
        path: PathBuf,
        /// What is wrong.
        reason: String,
    },
}

/// The contents of the TLS files, read but not yet checked. Keeping reading
/// apart from checking lets [`server_config`] be tested without files.
#[derive(Debug, Clone, Copy)]
pub struct TlsPem<'a> {
    /// The certificate chain, PEM.
    pub cert: &'a [u8],
    /// The private key, PEM.
    pub key: &'a [u8],
    /// The client CA certificates, PEM, if clients must present one.
    pub client_ca: Option<&'a [u8]>,
}

/// Builds the rustls configuration from the files' contents (TLS 1.2 and
/// 1.3, the `ring` provider), checking that the key is the certificate's.
/// `config` names the files in errors; nothing is read here.
///
/// # Errors
///
/// [`TlsError::Pem`] when a file holds no certificate or key, or bad PEM;
/// [`TlsError::Key`] when the key does not match the certificate;
/// [`TlsError::ClientCa`] when the client CA holds no usable certificate.
pub fn server_config(pem: TlsPem<'_>, config: &TlsConfig) -> Result<ServerConfig, TlsError> {
    let pem_error = |file, path: &Path, reason: String| TlsError::Pem {
        file,
        path: path.to_owned(),
        reason,
    };
    let chain =
        certificates(pem.cert).map_err(|reason| pem_error(TlsFile::Cert, &config.cert, reason))?;
    let key = PrivateKeyDer::from_pem_slice(pem.key).map_err(|error| {
        pem_error(
            TlsFile::Key,
            &config.key,
            match error {
                rustls_pki_types::pem::Error::NoItemsFound => "it holds no private key".to_owned(),
                other => pem_reason(&other),
            },
        )
    })?;
    let provider = Arc::new(rustls::crypto::ring::default_provider());
    let builder = ServerConfig::builder_with_provider(Arc::clone(&provider))
        .with_protocol_versions(&[&rustls::version::TLS13, &rustls::version::TLS12])
        .expect("the ring provider supports TLS 1.2 and 1.3");
    let builder = match (pem.client_ca, &config.client_ca) {
        (Some(ca), Some(path)) => {
            let ca_error = |reason: String| TlsError::ClientCa {
                path: path.clone(),
                reason,
            };
            let mut roots = rustls::RootCertStore::empty();
            for certificate in certificates(ca).map_err(|reason| TlsError::Pem {
                file: TlsFile::ClientCa,
                path: path.clone(),
                reason,
            })? {
                roots
                    .add(certificate)
                    .map_err(|error| ca_error(error.to_string()))?;
            }
            let verifier = WebPkiClientVerifier::builder_with_provider(Arc::new(roots), provider)
                .build()
                .map_err(|error| ca_error(error.to_string()))?;
            builder.with_client_cert_verifier(verifier)
        }
        _ => builder.with_no_client_auth(),
    };
    builder
        .with_single_cert(chain, key)
        .map_err(|reason| TlsError::Key {
            cert: config.cert.clone(),
            key: config.key.clone(),
            reason,
        })
}

/// Every certificate of a PEM file, at least one.
fn certificates(pem: &[u8]) -> Result<Vec<CertificateDer<'static>>, String> {
    let chain = CertificateDer::pem_slice_iter(pem)
        .collect::<Result<Vec<_>, _>>()
        .map_err(|error| pem_reason(&error))?;
    if chain.is_empty() {
        return Err("it holds no certificate".to_owned());
    }
    Ok(chain)
}

/// What is wrong with a PEM file, in words (the parser's own messages show
/// the offending line as a list of byte values).
fn pem_reason(error: &rustls_pki_types::pem::Error) -> String {
    use rustls_pki_types::pem::Error;
    match error {
        Error::MissingSectionEnd { .. } => "a section has no `-----END` line".to_owned(),
        Error::IllegalSectionStart { line } => format!(
            "a malformed `-----BEGIN` line: {}",
            String::from_utf8_lossy(line)
        ),
        Error::Base64Decode(reason) => format!("bad base64 ({reason})"),
        other => other.to_string(),
    }
}

/// Reads the files `config` names and builds the rustls configuration.
///
/// # Errors
///
/// [`TlsError::Read`] when a file cannot be read, and those of
/// [`server_config`].
pub fn load(config: &TlsConfig) -> Result<Arc<ServerConfig>, TlsError> {
    let read = |file, path: &Path| {
        std::fs::read(path).map_err(|source| TlsError::Read {
            file,
            path: path.to_owned(),
            source,
        })
    };
    let cert = read(TlsFile::Cert, &config.cert)?;
    let key = read(TlsFile::Key, &config.key)?;
    let client_ca = config
        .client_ca
        .as_deref()
        .map(|path| read(TlsFile::ClientCa, path))
        .transpose()?;
    let pem = TlsPem {
        cert: &cert,
        key: &key,
        client_ca: client_ca.as_deref(),
    };
    server_config(pem, config).map(Arc::new)
}

/// The TLS side of a server: the configuration new handshakes use, which a
/// reload replaces. Clones share it.
///
/// ```no_run
/// # async fn example(server: echo_server::Server) {
/// if let Some(tls) = server.tls_reloader() {
///     // What the binary does on SIGHUP.
///     match tls.reload() {
///         Ok(()) => println!("new handshakes use the new files"),
///         Err(error) => println!("still serving the old files: {error}"),
///     }
/// }
/// # }
/// ```
#[derive(Debug, Clone)]
pub struct TlsReloader {
    shared: Arc<Shared>,
}

#[derive(Debug)]
struct Shared {
    config: TlsConfig,
    current: RwLock<Arc<ServerConfig>>,
    metrics: Arc<Metrics>,
}

impl TlsReloader {
    /// Loads the files once, for a server starting.
    pub(crate) fn load(config: TlsConfig, metrics: Arc<Metrics>) -> Result<Self, TlsError> {
        let current = load(&config)?;
        Ok(Self {
            shared: Arc::new(Shared {
                config,
                current: RwLock::new(current),
                metrics,
            }),
        })
    }

    /// Reads the certificate, key and client CA again. On success new
    /// handshakes use them, while open connections carry on with what they
    /// negotiated; on failure the old ones stay. Either way it is logged and
    /// counted in `echo_tls_reloads_total{result}`.
    ///
    /// # Errors
    ///
    /// Those of [`load`], naming the file and what is wrong with it.
    pub fn reload(&self) -> Result<(), TlsError> {
        let shared = &self.shared;
        match load(&shared.config) {
            Ok(config) => {
                *shared
                    .current
                    .write()
                    .unwrap_or_else(std::sync::PoisonError::into_inner) = config;
                shared.metrics.tls_reloaded(true);
                info!(cert = %shared.config.cert.display(), "TLS files reloaded");
                Ok(())
            }
            Err(error) => {
                shared.metrics.tls_reloaded(false);
                warn!(%error, "TLS reload failed: keeping the previous certificate and key");
                Err(error)
            }
        }
    }

    /// The TLS settings the server was given.
    pub(crate) fn config(&self) -> &TlsConfig {
        &self.shared.config
    }

    /// An acceptor with the current configuration.
    fn acceptor(&self) -> TlsAcceptor {
        let current = self
            .shared
            .current
            .read()
            .unwrap_or_else(std::sync::PoisonError::into_inner);
        TlsAcceptor::from(Arc::clone(&current))
    }

    /// Runs the server's side of the handshake on `stream`, within the
    /// handshake timeout. It takes any stream, so that whatever comes before
    /// TLS on the connection (such as a PROXY protocol header) is read
    /// first, and runs in the connection's own task.
    ///
    /// # Errors
    ///
    /// [`HandshakeError`] when the client does not complete the handshake in
    /// time, or it fails.
    pub(crate) async fn handshake<S>(&self, stream: S) -> Result<TlsStream<S>, HandshakeError>
    where
        S: AsyncRead + AsyncWrite + Unpin + Send,
    {
        let timeout = self.shared.config.handshake_timeout;
        match tokio::time::timeout(timeout, self.acceptor().accept(stream)).await {
            Ok(Ok(stream)) => Ok(stream),
            Ok(Err(error)) => Err(HandshakeError::Failed(error)),
            Err(_elapsed) => Err(HandshakeError::Timeout(timeout)),
        }
    }
}

/// What a completed handshake is worth logging: the protocol version and,
/// with mTLS, the client certificate's subject.
pub(crate) fn describe<S>(stream: &TlsStream<S>) -> (String, Option<String>) {
    let (_, connection) = stream.get_ref();
    let version = connection
        .protocol_version()
        .map_or_else(|| "unknown".to_owned(), |version| format!("{version:?}"));
    let subject = connection
        .peer_certificates()
        .and_then(|chain| chain.first())
        .map(|certificate| subject_of(certificate));
    (version, subject)
}

/// The subject of a DER certificate, as `CN=…, O=…`.
fn subject_of(certificate: &CertificateDer<'_>) -> String {
    match x509_parser::parse_x509_certificate(certificate) {
        Ok((_, parsed)) => parsed.subject().to_string(),
        // rustls has verified it, so it parses; but a log line is no
        // place to fail.
        Err(_) => "(unreadable subject)".to_owned(),
    }
}

impl<S: EchoStream + Send> EchoStream for TlsStream<S> {
    /// Ready at once when rustls holds decrypted bytes, or the peer's
    /// close_notify, that a read would return; otherwise ready when the
    /// socket is. Asking the socket alone would leave plaintext rustls has
    /// already decrypted waiting for bytes that may never come.
    fn poll_read_ready(&mut self, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        let (inner, connection) = self.get_mut();
        if !connection.wants_read() {
            return Poll::Ready(Ok(()));
        }
        inner.poll_read_ready(cx)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn config() -> TlsConfig {
        TlsConfig::new("127.0.0.1:0".parse().unwrap(), "chain.pem", "key.pem")
    }

    /// A server certificate chain for `localhost`, its key, and its CA.
    fn chain() -> (String, String, String) {
        let issued = echo_testkit::certs::Ca::new("test CA").issue("localhost");
        (issued.chain_pem(), issued.key_pem, issued.ca_pem)
    }

    #[test]
    fn a_good_chain_and_its_key_load_with_and_without_a_client_ca() {
        let (cert, key, ca) = chain();
        let pem = TlsPem {
            cert: cert.as_bytes(),
            key: key.as_bytes(),
            client_ca: None,
        };
        server_config(pem, &config()).unwrap();
        let mtls = TlsConfig {
            client_ca: Some("ca.pem".into()),
            ..config()
        };
        let pem = TlsPem {
            client_ca: Some(ca.as_bytes()),
            ..pem
        };
        server_config(pem, &mtls).unwrap();
    }

    #[test]
    fn a_key_that_is_not_the_certificates_is_refused_naming_both_files() {
        let (cert, _, _) = chain();
        let (_, other, _) = chain();
        let pem = TlsPem {
            cert: cert.as_bytes(),
            key: other.as_bytes(),
            client_ca: None,
        };
        let error = server_config(pem, &config()).unwrap_err();
        assert!(matches!(error, TlsError::Key { .. }), "{error:?}");
        let message = error.to_string();
        assert!(
            message.contains("key.pem") && message.contains("chain.pem"),
            "{message}"
        );
    }

    #[test]
    fn bad_pem_names_the_file_and_what_is_wrong() {
        let (cert, key, _) = chain();
        // The chain's last certificate without its END line.
        let cut = &cert[..cert.rfind("-----END").unwrap()];
        for (cert, key, file, says) in [
            (
                "not pem at all",
                key.as_str(),
                TlsFile::Cert,
                "no certificate",
            ),
            (cut, key.as_str(), TlsFile::Cert, "END"),
            (cert.as_str(), "", TlsFile::Key, "no private key"),
            (cert.as_str(), cert.as_str(), TlsFile::Key, "no private key"),
        ] {
            let pem = TlsPem {
                cert: cert.as_bytes(),
                key: key.as_bytes(),
                client_ca: None,
            };
            let error = server_config(pem, &config()).unwrap_err();
            let TlsError::Pem { file: found, .. } = &error else {
                panic!("not a PEM error: {error:?}");
            };
            assert_eq!(*found, file);
            let message = error.to_string();
            let path = if file == TlsFile::Cert {
                "chain.pem"
            } else {
                "key.pem"
            };
            assert!(
                message.contains(path) && message.contains(says),
                "{message}"
            );
        }
    }

    #[test]
    fn a_client_ca_without_certificates_is_refused() {
        let (cert, key, _) = chain();
        let mtls = TlsConfig {
            client_ca: Some("ca.pem".into()),
            ..config()
        };
        let pem = TlsPem {
            cert: cert.as_bytes(),
            key: key.as_bytes(),
            client_ca: Some(b"nothing here"),
        };
        let error = server_config(pem, &mtls).unwrap_err();
        assert!(
            matches!(&error, TlsError::Pem { file: TlsFile::ClientCa, path, .. } if path == Path::new("ca.pem")),
            "{error:?}"
        );
    }

    #[test]
    fn a_missing_file_is_an_error_naming_it() {
        let missing = TlsConfig::new(
            "127.0.0.1:0".parse().unwrap(),
            "/nonexistent/echo-cert.pem",
            "/nonexistent/echo-key.pem",
        );
        let error = load(&missing).unwrap_err();
        assert!(
            matches!(
                &error,
                TlsError::Read {
                    file: TlsFile::Cert,
                    ..
                }
            ),
            "{error:?}"
        );
        assert!(
            error.to_string().contains("/nonexistent/echo-cert.pem"),
            "{error}"
        );
    }
}
