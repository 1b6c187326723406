//! [`TlsOptions`]: echo over TLS (a server's `--tls-listen`), with rustls:
//! which certificates to trust, the name to check, a client certificate for
//! mutual TLS, and, when asked for, no verification at all.

use std::path::{Path, PathBuf};
use std::sync::Arc;

use rustls::client::danger::{HandshakeSignatureValid, ServerCertVerified, ServerCertVerifier};
use rustls::pki_types::pem::PemObject;
use rustls::pki_types::{CertificateDer, PrivateKeyDer, ServerName, UnixTime};
use rustls::{ClientConfig, DigitallySignedStruct, RootCertStore, SignatureScheme};
use serde::{Deserialize, Serialize};
use tokio::net::TcpStream;
use tokio_rustls::TlsConnector;
use tokio_rustls::client::TlsStream;

use crate::error::ClientError;

/// How a client speaks TLS to the server: by default it trusts the system's
/// root certificates and checks the certificate against the host of the
/// address it was given.
///
/// ```
/// use echo_client::TlsOptions;
///
/// let tls = TlsOptions {
///     ca: Some("ca.pem".into()),
///     server_name: Some("echo.example".to_owned()),
///     ..TlsOptions::default()
/// };
/// assert!(!tls.insecure);
/// ```
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct TlsOptions {
    /// Trust the CA certificates in this PEM file instead of the system's
    /// roots.
    #[serde(default)]
    pub ca: Option<PathBuf>,
    /// The name sent in SNI and checked against the certificate; by default
    /// the host of the address (a name, or an IP address).
    #[serde(default)]
    pub server_name: Option<String>,
    /// A certificate chain (PEM) to present, for a server that requires
    /// client certificates; with [`key`](Self::key).
    #[serde(default)]
    pub cert: Option<PathBuf>,
    /// The private key of [`cert`](Self::cert) (PEM).
    #[serde(default)]
    pub key: Option<PathBuf>,
    /// Accept any certificate, verifying nothing: for a test server whose
    /// certificate is at hand nowhere else. Never the default.
    #[serde(default)]
    pub insecure: bool,
}

/// What makes each TLS connection of a client: built once from
/// [`TlsOptions`], the files read then.
#[derive(Clone)]
pub(crate) struct Connector {
    connector: TlsConnector,
    name: ServerName<'static>,
}

impl std::fmt::Debug for Connector {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Connector")
            .field("name", &self.name)
            .finish_non_exhaustive()
    }
}

impl Connector {
    /// Makes the TLS handshake on `tcp`, connected to `addr` (as given, for
    /// errors).
    pub(crate) async fn handshake(
        &self,
        tcp: TcpStream,
        addr: &str,
    ) -> Result<TlsStream<TcpStream>, ClientError> {
        self.connector
            .connect(self.name.clone(), tcp)
            .await
            .map_err(|source| ClientError::TlsHandshake {
                addr: addr.to_owned(),
                source,
            })
    }
}

impl TlsOptions {
    /// The connector these options describe, for connections to `addr`
    /// (`HOST:PORT`, whose host is the default server name).
    ///
    /// # Errors
    ///
    /// [`ClientError::TlsSetup`] naming the file or the setting that cannot
    /// be used.
    pub(crate) fn connector(&self, addr: &str) -> Result<Connector, ClientError> {
        let setup = |reason: String| ClientError::TlsSetup { reason };
        let provider = Arc::new(rustls::crypto::ring::default_provider());
        let builder = ClientConfig::builder_with_provider(Arc::clone(&provider))
            .with_safe_default_protocol_versions()
            .map_err(|error| setup(error.to_string()))?;
        let builder = if self.insecure {
            builder
                .dangerous()
                .with_custom_certificate_verifier(Arc::new(AcceptAnything(provider)))
        } else {
            builder.with_root_certificates(self.roots()?)
        };
        let config = match (&self.cert, &self.key) {
            (Some(cert), Some(key)) => builder
                .with_client_auth_cert(certificates(cert)?, private_key(key)?)
                .map_err(|error| {
                    setup(format!(
                        "the key in {} does not fit the certificate in {}: {error}",
                        key.display(),
                        cert.display()
                    ))
                })?,
            (None, None) => builder.with_no_client_auth(),
            _ => {
                return Err(setup(
                    "a client certificate needs its key, and a key its certificate".to_owned(),
                ));
            }
        };
        let name = self
            .server_name
            .clone()
            .unwrap_or_else(|| host_of(addr).to_owned());
        let name = ServerName::try_from(name.clone())
            .map_err(|_| setup(format!("{name:?} is not a DNS name or an IP address")))?;
        Ok(Connector {
            connector: TlsConnector::from(Arc::new(config)),
            name,
        })
    }

    /// The certificates to trust: the `ca` file's, or the system's.
    fn roots(&self) -> Result<RootCertStore, ClientError> {
        let mut roots = RootCertStore::empty();
        match &self.ca {
            Some(ca) => {
                for certificate in certificates(ca)? {
                    roots
                        .add(certificate)
                        .map_err(|error| ClientError::TlsSetup {
                            reason: format!(
                                "{} holds a CA certificate that cannot be used: {error}",
                                ca.display()
                            ),
                        })?;
                }
            }
            None => {
                let found = rustls_native_certs::load_native_certs();
                for certificate in found.certs {
                    // One unusable certificate of the system's does not make
                    // the others unusable.
                    let _ = roots.add(certificate);
                }
                if roots.is_empty() {
                    return Err(ClientError::TlsSetup {
                        reason: "this system has no root certificates to trust; give --tls-ca"
                            .to_owned(),
                    });
                }
            }
        }
        Ok(roots)
    }
}

/// The host of `HOST:PORT`, without the brackets of an IPv6 address.
fn host_of(addr: &str) -> &str {
    let host = addr.rsplit_once(':').map_or(addr, |(host, _port)| host);
    host.strip_prefix('[')
        .and_then(|host| host.strip_suffix(']'))
        .unwrap_or(host)
}

/// The certificates of a PEM file, at least one.
fn certificates(path: &Path) -> Result<Vec<CertificateDer<'static>>, ClientError> {
    let unusable = |what: String| ClientError::TlsSetup {
        reason: format!("{}: {what}", path.display()),
    };
    let certificates = CertificateDer::pem_file_iter(path)
        .map_err(|error| unusable(error.to_string()))?
        .collect::<Result<Vec<_>, _>>()
        .map_err(|error| unusable(error.to_string()))?;
    if certificates.is_empty() {
        return Err(unusable("no certificate in it".to_owned()));
    }
    Ok(certificates)
}

/// The private key of a PEM file.
fn private_key(path: &Path) -> Result<PrivateKeyDer<'static>, ClientError> {
    PrivateKeyDer::from_pem_file(path).map_err(|error| ClientError::TlsSetup {
        reason: format!("{}: no usable private key: {error}", path.display()),
    })
}

/// `--tls-insecure`: every certificate is taken, every signature checked
/// with the provider's algorithms only so that the handshake completes.
#[derive(Debug)]
struct AcceptAnything(Arc<rustls::crypto::CryptoProvider>);

impl ServerCertVerifier for AcceptAnything {
    fn verify_server_cert(
        &self,
        _end_entity: &CertificateDer<'_>,
        _intermediates: &[CertificateDer<'_>],
        _server_name: &ServerName<'_>,
        _ocsp_response: &[u8],
        _now: UnixTime,
    ) -> Result<ServerCertVerified, rustls::Error> {
        Ok(ServerCertVerified::assertion())
    }

    fn verify_tls12_signature(
        &self,
        message: &[u8],
        cert: &CertificateDer<'_>,
        dss: &DigitallySignedStruct,
    ) -> Result<HandshakeSignatureValid, rustls::Error> {
        rustls::crypto::verify_tls12_signature(
            message,
            cert,
            dss,
            &self.0.signature_verification_algorithms,
        )
    }

    fn verify_tls13_signature(
        &self,
        message: &[u8],
        cert: &CertificateDer<'_>,
        dss: &DigitallySignedStruct,
    ) -> Result<HandshakeSignatureValid, rustls::Error> {
        rustls::crypto::verify_tls13_signature(
            message,
            cert,
            dss,
            &self.0.signature_verification_algorithms,
        )
    }

    fn supported_verify_schemes(&self) -> Vec<SignatureScheme> {
        self.0.signature_verification_algorithms.supported_schemes()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_default_server_name_is_the_host_of_the_address() {
        assert_eq!(host_of("echo.example:9999"), "echo.example");
        assert_eq!(host_of("[::1]:9999"), "::1");
        assert_eq!(host_of("127.0.0.1:9999"), "127.0.0.1");
    }

    #[test]
    fn unusable_settings_are_errors_naming_them() {
        let missing = TlsOptions {
            ca: Some("/no/such/ca.pem".into()),
            ..TlsOptions::default()
        };
        let error = missing.connector("127.0.0.1:1").unwrap_err().to_string();
        assert!(error.contains("/no/such/ca.pem"), "{error}");
        let half = TlsOptions {
            cert: Some("cert.pem".into()),
            insecure: true,
            ..TlsOptions::default()
        };
        let error = half.connector("127.0.0.1:1").unwrap_err().to_string();
        assert!(error.contains("needs its key"), "{error}");
    }
}
