//! [`ProxyProtocol`]: opening each TCP connection with a PROXY protocol
//! header, as a load balancer does, to test a server that expects one
//! (`echo-server --proxy-protocol`) or a path that passes one on.

use std::fmt;
use std::net::SocketAddr;
use std::str::FromStr;

use echo_proto::proxy_header::{self, Addresses};
use serde::{Deserialize, Serialize};

/// The version of the PROXY protocol header to send.
///
/// ```
/// use echo_client::ProxyVersion;
///
/// assert_eq!("v2".parse::<ProxyVersion>(), Ok(ProxyVersion::V2));
/// assert_eq!(ProxyVersion::V1.to_string(), "v1");
/// assert!("v3".parse::<ProxyVersion>().is_err());
/// ```
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum ProxyVersion {
    /// The text header: `PROXY TCP4 … \r\n`.
    V1,
    /// The binary header.
    V2,
}

impl fmt::Display for ProxyVersion {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            ProxyVersion::V1 => "v1",
            ProxyVersion::V2 => "v2",
        })
    }
}

/// A name that is not a PROXY protocol version.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("unknown PROXY protocol version `{0}`: the versions are v1 and v2")]
pub struct ParseProxyVersionError(String);

impl FromStr for ProxyVersion {
    type Err = ParseProxyVersionError;

    fn from_str(name: &str) -> Result<Self, Self::Err> {
        match name {
            "v1" | "1" => Ok(ProxyVersion::V1),
            "v2" | "2" => Ok(ProxyVersion::V2),
            other => Err(ParseProxyVersionError(other.to_owned())),
        }
    }
}

/// The PROXY protocol header each TCP connection opens with, before
/// anything else (a TLS handshake, a greeting, the first message).
///
/// ```
/// use echo_client::{ProxyProtocol, ProxyVersion};
///
/// let proxy = ProxyProtocol {
///     version: ProxyVersion::V1,
///     source: Some("198.18.0.9:4000".parse()?),
/// };
/// let header = proxy.header("127.0.0.1:50000".parse()?, "127.0.0.1:9999".parse()?);
/// assert_eq!(header, b"PROXY TCP4 198.18.0.9 127.0.0.1 4000 9999\r\n");
/// # Ok::<(), std::net::AddrParseError>(())
/// ```
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
pub struct ProxyProtocol {
    /// The header's version.
    pub version: ProxyVersion,
    /// The client the header names; `None`: the connection's own local
    /// address, as a transparent balancer would name it.
    pub source: Option<SocketAddr>,
}

impl ProxyProtocol {
    /// The header for a connection from `local` to `peer`: it names
    /// [`source`](Self::source) (or `local`) as the client and `peer` as
    /// the address connected to.
    pub fn header(&self, local: SocketAddr, peer: SocketAddr) -> Vec<u8> {
        let source = self.source.unwrap_or(local);
        match self.version {
            ProxyVersion::V1 => proxy_header::encode_v1(source, peer).into_bytes(),
            ProxyVersion::V2 => proxy_header::encode_v2(Addresses::Proxied {
                source,
                destination: peer,
            }),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn headers_name_the_source_or_the_local_address() {
        let (local, peer) = (
            "127.0.0.1:50000".parse().unwrap(),
            "127.0.0.1:9999".parse().unwrap(),
        );
        let v2 = ProxyProtocol {
            version: ProxyVersion::V2,
            source: None,
        };
        let parsed = proxy_header::parse(&v2.header(local, peer))
            .unwrap()
            .unwrap();
        assert_eq!(
            parsed.addresses,
            Addresses::Proxied {
                source: local,
                destination: peer
            }
        );
        let v1 = ProxyProtocol {
            version: ProxyVersion::V1,
            source: Some("[2001:db8::9]:1".parse().unwrap()),
        };
        // An IPv6 client through an IPv4 connection: v1 cannot say it.
        assert_eq!(v1.header(local, peer), b"PROXY UNKNOWN\r\n");
    }
}
