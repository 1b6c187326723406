//! Test certificates, made when a test runs (with rcgen), never checked in:
//! a [`Ca`] issues server and client certificates, and [`CertDir`] writes
//! them where a binary under test can read them.
//!
//! ```
//! use echo_testkit::certs::{Ca, CertDir};
//!
//! let ca = Ca::new("echo test CA");
//! let server = ca.issue("localhost");
//! assert!(server.cert_pem.starts_with("-----BEGIN CERTIFICATE-----"));
//! let dir = CertDir::new()?;
//! let cert = dir.write("server.pem", &server.chain_pem())?;
//! assert!(cert.exists());
//! # Ok::<(), std::io::Error>(())
//! ```

use std::io;
use std::net::IpAddr;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicU32, Ordering};

use rcgen::{
    BasicConstraints, CertificateParams, DistinguishedName, DnType, IsCa, Issuer, KeyPair, SanType,
};

/// A certificate authority that signs test certificates.
#[derive(Debug)]
pub struct Ca {
    issuer: Issuer<'static, KeyPair>,
    /// The CA's own certificate, PEM: what a peer trusts.
    pub cert_pem: String,
}

/// A certificate and its key, issued by a [`Ca`].
#[derive(Debug, Clone)]
pub struct Issued {
    /// The certificate, PEM.
    pub cert_pem: String,
    /// Its private key, PEM (PKCS#8).
    pub key_pem: String,
    /// The certificate of the CA that signed it, PEM.
    pub ca_pem: String,
}

impl Issued {
    /// The chain a server presents: its certificate, then the CA's.
    pub fn chain_pem(&self) -> String {
        format!("{}{}", self.cert_pem, self.ca_pem)
    }
}

impl Ca {
    /// A new CA, its subject's common name `name`.
    pub fn new(name: &str) -> Ca {
        let key = KeyPair::generate().expect("rcgen makes a key");
        let mut params = CertificateParams::default();
        params.distinguished_name = subject(name);
        params.is_ca = IsCa::Ca(BasicConstraints::Unconstrained);
        let cert = params.self_signed(&key).expect("rcgen signs a CA");
        Ca {
            issuer: Issuer::new(params, key),
            cert_pem: cert.pem(),
        }
    }

    /// A certificate for `name` (a DNS name, or an IP address), its common
    /// name `name` too, usable by a server or a client.
    pub fn issue(&self, name: &str) -> Issued {
        let key = KeyPair::generate().expect("rcgen makes a key");
        let mut params = CertificateParams::default();
        params.distinguished_name = subject(name);
        params.subject_alt_names = vec![match name.parse::<IpAddr>() {
            Ok(ip) => SanType::IpAddress(ip),
            Err(_) => SanType::DnsName(name.try_into().expect("a valid DNS name")),
        }];
        let cert = params
            .signed_by(&key, &self.issuer)
            .expect("rcgen signs a certificate");
        Issued {
            cert_pem: cert.pem(),
            key_pem: key.serialize_pem(),
            ca_pem: self.cert_pem.clone(),
        }
    }
}

/// A subject with only a common name.
fn subject(name: &str) -> DistinguishedName {
    let mut subject = DistinguishedName::new();
    subject.push(DnType::CommonName, name);
    subject
}

/// A directory of its own under the system's temporary directory, removed
/// on drop, for files a binary under test reads.
#[derive(Debug)]
pub struct CertDir {
    path: PathBuf,
}

impl CertDir {
    /// Makes the directory.
    ///
    /// # Errors
    ///
    /// When it cannot be made.
    pub fn new() -> io::Result<CertDir> {
        static NEXT: AtomicU32 = AtomicU32::new(0);
        let path = std::env::temp_dir().join(format!(
            "echo-testkit-{}-{}",
            std::process::id(),
            NEXT.fetch_add(1, Ordering::Relaxed)
        ));
        std::fs::create_dir_all(&path)?;
        Ok(CertDir { path })
    }

    /// The directory.
    pub fn path(&self) -> &Path {
        &self.path
    }

    /// Writes `contents` to the file `name` in the directory, replacing it
    /// whole (a new file renamed over the old one, as a deployment would),
    /// and returns its path.
    ///
    /// # Errors
    ///
    /// When the file cannot be written.
    pub fn write(&self, name: &str, contents: &str) -> io::Result<PathBuf> {
        let path = self.path.join(name);
        let staging = self.path.join(format!(".{name}.new"));
        std::fs::write(&staging, contents)?;
        std::fs::rename(&staging, &path)?;
        Ok(path)
    }
}

impl Drop for CertDir {
    fn drop(&mut self) {
        // Nothing to do about a directory that cannot be removed; it is in
        // the temporary directory.
        let _ = std::fs::remove_dir_all(&self.path);
    }
}

/// A server's certificate files for `name`, issued by a CA of their own and
/// written to a [`CertDir`]: what most TLS tests start from.
///
/// ```
/// use echo_testkit::certs::ServerCertFiles;
///
/// let files = ServerCertFiles::new("localhost")?;
/// assert!(files.cert.exists() && files.key.exists() && files.ca_file.exists());
/// let client = files.ca.issue("client");
/// assert_eq!(client.ca_pem, files.ca.cert_pem);
/// # Ok::<(), std::io::Error>(())
/// ```
#[derive(Debug)]
pub struct ServerCertFiles {
    /// The CA that issued the certificate, to issue more (client
    /// certificates, a renewal).
    pub ca: Ca,
    /// The directory the files are in, removed on drop.
    pub dir: CertDir,
    /// The chain the server presents (`cert.pem`).
    pub cert: PathBuf,
    /// Its private key (`key.pem`).
    pub key: PathBuf,
    /// The CA's certificate, for a client to trust (`ca.pem`).
    pub ca_file: PathBuf,
}

impl ServerCertFiles {
    /// A new CA, a certificate for `name` from it, and the three files.
    ///
    /// # Errors
    ///
    /// When the directory or a file cannot be written.
    pub fn new(name: &str) -> io::Result<ServerCertFiles> {
        let ca = Ca::new("echo test CA");
        let issued = ca.issue(name);
        let dir = CertDir::new()?;
        Ok(ServerCertFiles {
            cert: dir.write("cert.pem", &issued.chain_pem())?,
            key: dir.write("key.pem", &issued.key_pem)?,
            ca_file: dir.write("ca.pem", &ca.cert_pem)?,
            ca,
            dir,
        })
    }
}
