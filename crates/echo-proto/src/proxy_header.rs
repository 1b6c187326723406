//! The PROXY protocol header (HAProxy's `proxy-protocol.txt`, versions 1
//! and 2): what a load balancer sends before the first byte of a TCP
//! connection it relays, to say whose connection it is.
//!
//! Parsing and encoding only, with no I/O: the server reads bytes as they
//! come and asks [`parse`] after each read, which answers as soon as it can
//! (a header, a need for more bytes, or the first byte that rules a header
//! out), and says how many bytes the header took, so that the bytes after it
//! are the start of the connection's own data. Nothing is allocated, and the
//! most a header can need is [`MAX_HEADER_LEN`] bytes.
//!
//! ```
//! use echo_proto::proxy_header::{self, Addresses};
//!
//! let received = b"PROXY TCP4 198.18.0.1 198.18.0.2 40000 9999\r\n\0\0\0\x02hi";
//! let header = proxy_header::parse(received)?.expect("a whole header");
//! assert_eq!(
//!     header.addresses,
//!     Addresses::Proxied {
//!         source: "198.18.0.1:40000".parse()?,
//!         destination: "198.18.0.2:9999".parse()?,
//!     }
//! );
//! // What follows the header is the connection's own data.
//! assert_eq!(&received[header.len..], b"\0\0\0\x02hi");
//!
//! // Not all there yet: read more and ask again.
//! assert_eq!(proxy_header::parse(b"PROXY TCP4 198.18")?, None);
//! # Ok::<(), Box<dyn std::error::Error>>(())
//! ```
//!
//! The client side writes headers with [`encode_v1`] and [`encode_v2`].

use std::net::{IpAddr, Ipv4Addr, Ipv6Addr, SocketAddr};

/// The 12 bytes a version 2 header starts with.
pub const V2_SIGNATURE: [u8; 12] = *b"\r\n\r\n\0\r\nQUIT\n";

/// The most a version 1 header may be, `\r\n` included (the specification's
/// own limit).
pub const V1_MAX_LEN: usize = 107;

/// The most a version 2 header may be here: its 16 fixed bytes and up to
/// 4,080 bytes of addresses and TLVs. The format allows up to 65,535 after
/// the fixed part, but what load balancers send (addresses and a few TLVs:
/// an ALPN, a host name, a TLS version or a cloud endpoint ID) is far
/// below this, and a server should not hold 64 KiB for each connection
/// that has yet to say who it is.
pub const V2_MAX_LEN: usize = 4096;

/// The most bytes any header may take: enough to read before giving up.
pub const MAX_HEADER_LEN: usize = V2_MAX_LEN;

/// The 16 fixed bytes of a version 2 header.
const V2_FIXED_LEN: usize = 16;

/// The address bytes of each version 2 address family.
const V2_INET_LEN: usize = 12;
const V2_INET6_LEN: usize = 36;

/// The version of the PROXY protocol a header was written in.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Version {
    /// The text form: `PROXY TCP4 … \r\n`.
    V1,
    /// The binary form, which starts with [`V2_SIGNATURE`].
    V2,
}

/// What a header says about the connection.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Addresses {
    /// The connection was relayed for a client: `source` is the client,
    /// `destination` the address it connected to.
    Proxied {
        /// The client's address.
        source: SocketAddr,
        /// The address the client connected to (on the balancer).
        destination: SocketAddr,
    },
    /// The header names no client: a version 2 `LOCAL` command (the
    /// balancer's own connection, such as a health check), a version 1
    /// `UNKNOWN`, or an address family without IP addresses (`AF_UNSPEC`,
    /// `AF_UNIX`). The connection's own addresses apply.
    Local,
}

impl Addresses {
    /// The client's address, if the header names one.
    ///
    /// ```
    /// use echo_proto::proxy_header::Addresses;
    ///
    /// assert_eq!(Addresses::Local.source(), None);
    /// ```
    pub fn source(&self) -> Option<SocketAddr> {
        match self {
            Addresses::Proxied { source, .. } => Some(*source),
            Addresses::Local => None,
        }
    }
}

/// A whole header, as [`parse`] found it.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct ProxyHeader {
    /// The version it was written in.
    pub version: Version,
    /// What it says about the connection.
    pub addresses: Addresses,
    /// The bytes it took: the connection's own data starts after them.
    pub len: usize,
    /// Where its TLVs (version 2's type-length-value extensions) are, as a
    /// range of the bytes parsed: empty for version 1. [`tlvs`] goes through
    /// them.
    pub tlvs: std::ops::Range<usize>,
}

/// Why bytes are not a PROXY header, with what was found.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum ProxyHeaderError {
    /// The bytes start as neither version does.
    #[error("no PROXY header: the connection starts with byte {byte:#04x}, at offset {offset}")]
    NotAHeader {
        /// The first byte that differs from both versions' starts.
        byte: u8,
        /// Where it is.
        offset: usize,
    },
    /// A version 1 header with no `\r\n` within [`V1_MAX_LEN`] bytes.
    #[error("PROXY v1 header longer than {max} bytes")]
    V1TooLong {
        /// The limit, [`V1_MAX_LEN`].
        max: usize,
    },
    /// A version 1 header that breaks its grammar.
    #[error("malformed PROXY v1 header: {what}")]
    V1Malformed {
        /// What is wrong, in words.
        what: &'static str,
    },
    /// A version 2 header whose version nibble is not 2.
    #[error("PROXY v2 header with version {version}, not 2")]
    V2Version {
        /// The version found.
        version: u8,
    },
    /// A version 2 command other than `LOCAL` (0) and `PROXY` (1).
    #[error("PROXY v2 header with unknown command {command}")]
    V2Command {
        /// The command found.
        command: u8,
    },
    /// A version 2 address family or transport protocol that does not
    /// exist.
    #[error("PROXY v2 header with unknown address family and protocol byte {byte:#04x}")]
    V2Family {
        /// The family-and-protocol byte found.
        byte: u8,
    },
    /// A version 2 header announcing more than [`V2_MAX_LEN`] bytes.
    #[error("PROXY v2 header of {len} bytes, over the limit of {max}")]
    V2TooLong {
        /// The length it announced, the 16 fixed bytes included.
        len: usize,
        /// The limit, [`V2_MAX_LEN`].
        max: usize,
    },
    /// A version 2 `PROXY` header too short for the addresses of its
    /// family.
    #[error(
        "PROXY v2 header with {len} bytes of addresses, short of the {needed} its family needs"
    )]
    V2AddressesCut {
        /// The bytes after the fixed part.
        len: usize,
        /// What the family needs.
        needed: usize,
    },
    /// A version 2 TLV that runs past the end of the header.
    #[error("PROXY v2 header with a TLV at offset {offset} that runs past its end")]
    V2TlvCut {
        /// Where the TLV starts, from the start of the header.
        offset: usize,
    },
}

/// Parses the PROXY header at the start of `received`: `Ok(Some(header))`
/// once it is whole, `Ok(None)` while every byte so far fits a header but it
/// is not whole yet, and an error as soon as a byte rules a header out.
///
/// At most [`MAX_HEADER_LEN`] bytes are looked at: a caller that has that
/// many and still gets `Ok(None)` cannot, but may stop reading.
///
/// ```
/// use echo_proto::proxy_header::{self, ProxyHeaderError};
///
/// // A client that speaks first without a header is found out at once.
/// assert!(matches!(
///     proxy_header::parse(b"\0\0\0\x02hi"),
///     Err(ProxyHeaderError::NotAHeader { offset: 0, .. })
/// ));
/// ```
pub fn parse(received: &[u8]) -> Result<Option<ProxyHeader>, ProxyHeaderError> {
    match received.first() {
        None => Ok(None),
        Some(b'P') => parse_v1(received),
        Some(b'\r') => parse_v2(received),
        Some(&byte) => Err(ProxyHeaderError::NotAHeader { byte, offset: 0 }),
    }
}

/// Goes through the TLVs of `header`, found in `received` (the bytes it was
/// parsed from), as `(type, value)` pairs. [`parse`] has checked that they
/// fit.
///
/// ```
/// use echo_proto::proxy_header::{self, Addresses};
///
/// let addresses = Addresses::Proxied {
///     source: "198.18.0.1:40000".parse()?,
///     destination: "198.18.0.2:9999".parse()?,
/// };
/// let mut bytes = proxy_header::encode_v2(addresses);
/// // One TLV of type 0x04 (PP2_TYPE_NOOP), 2 bytes: the length grows by 5.
/// bytes.extend_from_slice(&[0x04, 0, 2, 7, 7]);
/// let len = u16::from_be_bytes([bytes[14], bytes[15]]) + 5;
/// bytes[14..16].copy_from_slice(&len.to_be_bytes());
/// let header = proxy_header::parse(&bytes)?.unwrap();
/// let tlvs: Vec<_> = proxy_header::tlvs(&header, &bytes).collect();
/// assert_eq!(tlvs, [(0x04, &[7, 7][..])]);
/// # Ok::<(), Box<dyn std::error::Error>>(())
/// ```
pub fn tlvs<'a>(header: &ProxyHeader, received: &'a [u8]) -> impl Iterator<Item = (u8, &'a [u8])> {
    let mut rest = received.get(header.tlvs.clone()).unwrap_or_default();
    std::iter::from_fn(move || {
        let (&[kind, high, low], after) = rest.split_first_chunk::<3>()?;
        let len = usize::from(u16::from_be_bytes([high, low]));
        let value = after.get(..len)?;
        rest = &after[len..];
        Some((kind, value))
    })
}

/// Checks that the bytes so far are a start of `expected`: the first one that
/// is not, as an error.
fn check_prefix(received: &[u8], expected: &[u8]) -> Result<(), ProxyHeaderError> {
    match received
        .iter()
        .zip(expected)
        .position(|(got, want)| got != want)
    {
        Some(offset) => Err(ProxyHeaderError::NotAHeader {
            byte: received[offset],
            offset,
        }),
        None => Ok(()),
    }
}

fn parse_v1(received: &[u8]) -> Result<Option<ProxyHeader>, ProxyHeaderError> {
    const START: &[u8] = b"PROXY ";
    let malformed = |what| ProxyHeaderError::V1Malformed { what };
    check_prefix(received, START)?;
    let window = &received[..received.len().min(V1_MAX_LEN)];
    let Some(newline) = window.iter().position(|&byte| byte == b'\n') else {
        return if received.len() >= V1_MAX_LEN {
            Err(ProxyHeaderError::V1TooLong { max: V1_MAX_LEN })
        } else {
            Ok(None)
        };
    };
    let line = window[..newline]
        .strip_suffix(b"\r")
        .ok_or_else(|| malformed("the line ends in \\n without \\r"))?;
    if !line.is_ascii() {
        return Err(malformed("a byte that is not ASCII"));
    }
    // ASCII is UTF-8, so the default never comes up.
    let line = std::str::from_utf8(&line[START.len()..]).unwrap_or_default();
    let mut fields = line.split(' ');
    let addresses = match fields.next() {
        // Whatever follows UNKNOWN is to be ignored.
        Some("UNKNOWN") => Addresses::Local,
        Some(family @ ("TCP4" | "TCP6")) => {
            let mut next = |what| fields.next().ok_or_else(|| malformed(what));
            let source = next("no source address")?;
            let destination = next("no destination address")?;
            let source_port = next("no source port")?;
            let destination_port = next("no destination port")?;
            if fields.next().is_some() {
                return Err(malformed("more than four fields after the protocol"));
            }
            let ip = |text: &str| -> Result<IpAddr, ProxyHeaderError> {
                if family == "TCP4" {
                    text.parse::<Ipv4Addr>()
                        .map(IpAddr::V4)
                        .map_err(|_| malformed("an address that is not IPv4, after TCP4"))
                } else {
                    text.parse::<Ipv6Addr>()
                        .map(IpAddr::V6)
                        .map_err(|_| malformed("an address that is not IPv6, after TCP6"))
                }
            };
            Addresses::Proxied {
                source: SocketAddr::new(ip(source)?, port(source_port)?),
                destination: SocketAddr::new(ip(destination)?, port(destination_port)?),
            }
        }
        _ => return Err(malformed("a protocol other than TCP4, TCP6 and UNKNOWN")),
    };
    Ok(Some(ProxyHeader {
        version: Version::V1,
        addresses,
        len: newline + 1,
        tlvs: 0..0,
    }))
}

/// A version 1 port: decimal, 0 to 65535, without leading zeros.
fn port(text: &str) -> Result<u16, ProxyHeaderError> {
    let canonical = !text.is_empty()
        && text.len() <= 5
        && text.bytes().all(|byte| byte.is_ascii_digit())
        && (text == "0" || !text.starts_with('0'));
    canonical
        .then(|| text.parse().ok())
        .flatten()
        .ok_or(ProxyHeaderError::V1Malformed {
            what: "a port that is not a decimal number from 0 to 65535",
        })
}

fn parse_v2(received: &[u8]) -> Result<Option<ProxyHeader>, ProxyHeaderError> {
    check_prefix(received, &V2_SIGNATURE)?;
    let Some(fixed) = received.first_chunk::<V2_FIXED_LEN>() else {
        return Ok(None);
    };
    let version = fixed[12] >> 4;
    if version != 2 {
        return Err(ProxyHeaderError::V2Version { version });
    }
    let proxied = match fixed[12] & 0x0f {
        0 => false,
        1 => true,
        command => return Err(ProxyHeaderError::V2Command { command }),
    };
    let family = fixed[13];
    // The high nibble: AF_UNSPEC, AF_INET, AF_INET6 or AF_UNIX; the low one:
    // UNSPEC, STREAM or DGRAM.
    if family >> 4 > 3 || family & 0x0f > 2 {
        return Err(ProxyHeaderError::V2Family { byte: family });
    }
    let rest_len = usize::from(u16::from_be_bytes([fixed[14], fixed[15]]));
    let len = V2_FIXED_LEN + rest_len;
    if len > V2_MAX_LEN {
        return Err(ProxyHeaderError::V2TooLong {
            len,
            max: V2_MAX_LEN,
        });
    }
    let address_len = match family >> 4 {
        1 => V2_INET_LEN,
        2 => V2_INET6_LEN,
        // AF_UNSPEC has no addresses; AF_UNIX's are paths, which are no
        // client address for an IP service, so its 216 bytes count as TLVs'
        // room would not: they are skipped with them below.
        _ => 0,
    };
    // LOCAL's addresses, if any, are to be ignored, whatever their length.
    if proxied && rest_len < address_len {
        return Err(ProxyHeaderError::V2AddressesCut {
            len: rest_len,
            needed: address_len,
        });
    }
    let Some(header) = received.get(..len) else {
        return Ok(None);
    };
    let addresses = match (proxied, family >> 4) {
        (true, 1) => {
            let at = &header[V2_FIXED_LEN..];
            let ip = |from: usize| IpAddr::from(<[u8; 4]>::try_from(&at[from..from + 4]).unwrap());
            let port = |from: usize| u16::from_be_bytes([at[from], at[from + 1]]);
            Addresses::Proxied {
                source: SocketAddr::new(ip(0), port(8)),
                destination: SocketAddr::new(ip(4), port(10)),
            }
        }
        (true, 2) => {
            let at = &header[V2_FIXED_LEN..];
            let ip =
                |from: usize| IpAddr::from(<[u8; 16]>::try_from(&at[from..from + 16]).unwrap());
            let port = |from: usize| u16::from_be_bytes([at[from], at[from + 1]]);
            Addresses::Proxied {
                source: SocketAddr::new(ip(0), port(32)),
                destination: SocketAddr::new(ip(16), port(34)),
            }
        }
        _ => Addresses::Local,
    };
    // TLVs follow the IP addresses; for LOCAL and the families without IP
    // addresses, whatever follows the fixed part is skipped whole.
    let tlvs = if proxied && address_len > 0 {
        V2_FIXED_LEN + address_len..len
    } else {
        len..len
    };
    check_tlvs(header, tlvs.clone())?;
    Ok(Some(ProxyHeader {
        version: Version::V2,
        addresses,
        len,
        tlvs,
    }))
}

/// Checks that the TLVs in `header[range]` end exactly where it does.
fn check_tlvs(header: &[u8], range: std::ops::Range<usize>) -> Result<(), ProxyHeaderError> {
    let mut offset = range.start;
    while offset < range.end {
        let cut = ProxyHeaderError::V2TlvCut { offset };
        if range.end - offset < 3 {
            return Err(cut);
        }
        let value_len = usize::from(u16::from_be_bytes([header[offset + 1], header[offset + 2]]));
        offset += 3 + value_len;
        if offset > range.end {
            return Err(cut);
        }
    }
    Ok(())
}

/// The version 1 header for a connection from `source` to `destination`
/// (both IPv4 or both IPv6; otherwise `UNKNOWN`, as the specification has
/// it).
///
/// ```
/// use echo_proto::proxy_header;
///
/// let header = proxy_header::encode_v1(
///     "198.18.0.1:40000".parse()?,
///     "198.18.0.2:9999".parse()?,
/// );
/// assert_eq!(header, "PROXY TCP4 198.18.0.1 198.18.0.2 40000 9999\r\n");
/// # Ok::<(), Box<dyn std::error::Error>>(())
/// ```
pub fn encode_v1(source: SocketAddr, destination: SocketAddr) -> String {
    let family = match (source, destination) {
        (SocketAddr::V4(_), SocketAddr::V4(_)) => "TCP4",
        (SocketAddr::V6(_), SocketAddr::V6(_)) => "TCP6",
        _ => return "PROXY UNKNOWN\r\n".to_owned(),
    };
    format!(
        "PROXY {family} {} {} {} {}\r\n",
        source.ip(),
        destination.ip(),
        source.port(),
        destination.port()
    )
}

/// The version 2 header (over TCP, no TLVs) for `addresses`: a `PROXY`
/// command with their family, or for [`Addresses::Local`] a `LOCAL` command
/// with no address (`AF_UNSPEC`). Source and destination of different
/// families are written as IPv6, the IPv4 one mapped.
///
/// ```
/// use echo_proto::proxy_header::{self, Addresses};
///
/// let addresses = Addresses::Proxied {
///     source: "198.18.0.1:40000".parse()?,
///     destination: "198.18.0.2:9999".parse()?,
/// };
/// let bytes = proxy_header::encode_v2(addresses);
/// assert_eq!(bytes.len(), 16 + 12);
/// assert_eq!(proxy_header::parse(&bytes)?.unwrap().addresses, addresses);
/// # Ok::<(), Box<dyn std::error::Error>>(())
/// ```
pub fn encode_v2(addresses: Addresses) -> Vec<u8> {
    let mut bytes = V2_SIGNATURE.to_vec();
    match addresses {
        Addresses::Local => bytes.extend_from_slice(&[0x20, 0x00, 0, 0]),
        Addresses::Proxied {
            source,
            destination,
        } => match (source.ip(), destination.ip()) {
            (IpAddr::V4(from), IpAddr::V4(to)) => {
                bytes.extend_from_slice(&[0x21, 0x11, 0, V2_INET_LEN as u8]);
                bytes.extend_from_slice(&from.octets());
                bytes.extend_from_slice(&to.octets());
                bytes.extend_from_slice(&source.port().to_be_bytes());
                bytes.extend_from_slice(&destination.port().to_be_bytes());
            }
            (from, to) => {
                let v6 = |ip: IpAddr| match ip {
                    IpAddr::V4(ip) => ip.to_ipv6_mapped(),
                    IpAddr::V6(ip) => ip,
                };
                bytes.extend_from_slice(&[0x21, 0x21, 0, V2_INET6_LEN as u8]);
                bytes.extend_from_slice(&v6(from).octets());
                bytes.extend_from_slice(&v6(to).octets());
                bytes.extend_from_slice(&source.port().to_be_bytes());
                bytes.extend_from_slice(&destination.port().to_be_bytes());
            }
        },
    }
    bytes
}

#[cfg(test)]
mod tests {
    use super::*;

    fn proxied(source: &str, destination: &str) -> Addresses {
        Addresses::Proxied {
            source: source.parse().unwrap(),
            destination: destination.parse().unwrap(),
        }
    }

    /// Every way of cutting `bytes` short asks for more, and the whole
    /// parses to `expected`.
    #[track_caller]
    fn assert_parses(bytes: &[u8], expected: Addresses) -> ProxyHeader {
        for cut in 0..bytes.len() {
            assert_eq!(parse(&bytes[..cut]), Ok(None), "cut at {cut}");
        }
        let mut with_data = bytes.to_vec();
        with_data.extend_from_slice(b"\0\0\0\x01x");
        let header = parse(&with_data).unwrap().expect("a whole header");
        assert_eq!(header.addresses, expected);
        assert_eq!(header.len, bytes.len());
        header
    }

    #[test]
    fn v1_headers_of_every_family() {
        assert_parses(
            b"PROXY TCP4 198.18.0.1 198.18.0.2 40000 9999\r\n",
            proxied("198.18.0.1:40000", "198.18.0.2:9999"),
        );
        assert_parses(
            b"PROXY TCP6 2001:db8::1 ::1 0 65535\r\n",
            proxied("[2001:db8::1]:0", "[::1]:65535"),
        );
        assert_parses(b"PROXY UNKNOWN\r\n", Addresses::Local);
        assert_parses(
            b"PROXY UNKNOWN ffff:f::1 ffff:f::2 1 2\r\n",
            Addresses::Local,
        );
    }

    #[test]
    fn the_longest_v1_header_parses_and_one_byte_more_is_too_long() {
        let longest = b"PROXY TCP6 ffff:ffff:ffff:ffff:ffff:ffff:ffff:ffff \
            ffff:ffff:ffff:ffff:ffff:ffff:ffff:ffff 65535 65535\r\n";
        assert_eq!(longest.len(), 104);
        assert_parses(
            longest,
            proxied(
                "[ffff:ffff:ffff:ffff:ffff:ffff:ffff:ffff]:65535",
                "[ffff:ffff:ffff:ffff:ffff:ffff:ffff:ffff]:65535",
            ),
        );
        let mut unknown = b"PROXY UNKNOWN ".to_vec();
        unknown.resize(V1_MAX_LEN - 2, b'x');
        unknown.extend_from_slice(b"\r\n");
        assert_parses(&unknown, Addresses::Local);
        let mut too_long = b"PROXY UNKNOWN ".to_vec();
        too_long.resize(V1_MAX_LEN, b'x');
        assert_eq!(
            parse(&too_long),
            Err(ProxyHeaderError::V1TooLong { max: V1_MAX_LEN })
        );
    }

    #[test]
    fn bad_v1_headers_say_what_is_wrong() {
        let cases: [(&[u8], &str); 10] = [
            (
                b"PROXY TCP4 198.18.0.1 198.18.0.2 40000 9999\n",
                "without \\r",
            ),
            (b"PROXY TCP5 1.2.3.4 1.2.3.4 1 2\r\n", "a protocol other"),
            (b"PROXY TCP4 ::1 1.2.3.4 1 2\r\n", "not IPv4"),
            (b"PROXY TCP6 1.2.3.4 ::1 1 2\r\n", "not IPv6"),
            (b"PROXY TCP4 1.2.3.4 1.2.3.4 65536 2\r\n", "a port"),
            (b"PROXY TCP4 1.2.3.4 1.2.3.4 080 2\r\n", "a port"),
            (b"PROXY TCP4 1.2.3.4 1.2.3.4 -1 2\r\n", "a port"),
            (b"PROXY TCP4 1.2.3.4 1.2.3.4 1\r\n", "no destination port"),
            (b"PROXY TCP4 1.2.3.4 1.2.3.4 1 2 3\r\n", "more than four"),
            (b"PROXY TCP4 1.2.3.4  1.2.3.4 1 2\r\n", "more than four"),
        ];
        for (bytes, expected) in cases {
            let error = parse(bytes).expect_err(&String::from_utf8_lossy(bytes));
            assert!(
                matches!(error, ProxyHeaderError::V1Malformed { .. })
                    && error.to_string().contains(expected),
                "{:?}: {error}",
                String::from_utf8_lossy(bytes)
            );
        }
        assert!(matches!(
            parse("PROXY TCP4 1.2.3.4 1.2.3.é 1 2\r\n".as_bytes()),
            Err(ProxyHeaderError::V1Malformed { what }) if what.contains("ASCII")
        ));
    }

    #[test]
    fn bytes_that_start_as_no_header_are_refused_at_the_first_that_differs() {
        assert_eq!(
            parse(b"PROXX"),
            Err(ProxyHeaderError::NotAHeader {
                byte: b'X',
                offset: 4
            })
        );
        assert_eq!(
            parse(b"\r\n\r\n\0\r\nQUIZ"),
            Err(ProxyHeaderError::NotAHeader {
                byte: b'Z',
                offset: 10
            })
        );
        assert_eq!(
            parse(b"GET / HTTP/1.1\r\n"),
            Err(ProxyHeaderError::NotAHeader {
                byte: b'G',
                offset: 0
            })
        );
        // A TLS ClientHello, sent without the header the server expects.
        assert!(matches!(
            parse(&[0x16, 0x03, 0x01]),
            Err(ProxyHeaderError::NotAHeader { byte: 0x16, .. })
        ));
    }

    #[test]
    fn v2_headers_of_every_family() {
        let v4 = proxied("198.18.0.1:40000", "198.18.0.2:9999");
        let bytes = encode_v2(v4);
        assert_parses(&bytes, v4);
        let v6 = proxied("[2001:db8::1]:1", "[2001:db8::2]:2");
        assert_parses(&encode_v2(v6), v6);
        let local = encode_v2(Addresses::Local);
        assert_eq!(local.len(), 16);
        assert_parses(&local, Addresses::Local);
    }

    /// A v2 header with the given command, family byte and the bytes after
    /// the fixed part.
    fn v2(command: u8, family: u8, rest: &[u8]) -> Vec<u8> {
        let mut bytes = V2_SIGNATURE.to_vec();
        bytes.extend_from_slice(&[0x20 | command, family]);
        bytes.extend_from_slice(&(rest.len() as u16).to_be_bytes());
        bytes.extend_from_slice(rest);
        bytes
    }

    #[test]
    fn v2_local_unspec_and_unix_name_no_client() {
        // LOCAL with IPv4 addresses, which are ignored; and with none at all
        // although the family says IPv4.
        assert_parses(&v2(0, 0x11, &[1; 12]), Addresses::Local);
        assert_parses(&v2(0, 0x11, &[]), Addresses::Local);
        // PROXY with AF_UNSPEC, and with AF_UNIX paths.
        assert_parses(&v2(1, 0x00, &[]), Addresses::Local);
        assert_parses(&v2(1, 0x31, &[0; 216]), Addresses::Local);
    }

    #[test]
    fn v2_tlvs_are_skipped_and_can_be_listed() {
        let mut rest = vec![198, 18, 0, 1, 198, 18, 0, 2, 0x9c, 0x40, 0x27, 0x0f];
        rest.extend_from_slice(&[0x01, 0, 2, b'h', b'2', 0x04, 0, 0]);
        let bytes = v2(1, 0x11, &rest);
        let header = assert_parses(&bytes, proxied("198.18.0.1:40000", "198.18.0.2:9999"));
        let listed: Vec<_> = tlvs(&header, &bytes).collect();
        assert_eq!(listed, [(0x01, &b"h2"[..]), (0x04, &[][..])]);
    }

    #[test]
    fn bad_v2_headers_say_what_is_wrong() {
        let mut bytes = v2(1, 0x11, &[0; 12]);
        bytes[12] = 0x11;
        assert_eq!(
            parse(&bytes),
            Err(ProxyHeaderError::V2Version { version: 1 })
        );
        assert_eq!(
            parse(&v2(2, 0x11, &[0; 12])),
            Err(ProxyHeaderError::V2Command { command: 2 })
        );
        assert_eq!(
            parse(&v2(1, 0x41, &[0; 12])),
            Err(ProxyHeaderError::V2Family { byte: 0x41 })
        );
        assert_eq!(
            parse(&v2(1, 0x13, &[0; 12])),
            Err(ProxyHeaderError::V2Family { byte: 0x13 })
        );
        assert_eq!(
            parse(&v2(1, 0x21, &[0; 12])),
            Err(ProxyHeaderError::V2AddressesCut {
                len: 12,
                needed: 36
            })
        );
        let mut tlv_cut = vec![0; 12];
        tlv_cut.extend_from_slice(&[0x01, 0, 5, 1]);
        assert_eq!(
            parse(&v2(1, 0x11, &tlv_cut)),
            Err(ProxyHeaderError::V2TlvCut { offset: 28 })
        );
    }

    #[test]
    fn a_v2_header_over_the_limit_is_refused_before_its_bytes_arrive() {
        let mut fixed = V2_SIGNATURE.to_vec();
        fixed.extend_from_slice(&[0x21, 0x11, 0xff, 0xff]);
        assert_eq!(
            parse(&fixed),
            Err(ProxyHeaderError::V2TooLong {
                len: 16 + 65535,
                max: V2_MAX_LEN
            })
        );
        let largest = v2(1, 0x11, &{
            let mut rest = vec![0; 12];
            let tlv_len = V2_MAX_LEN - 16 - 12 - 3;
            rest.extend_from_slice(&[0x04]);
            rest.extend_from_slice(&(tlv_len as u16).to_be_bytes());
            rest.resize(rest.len() + tlv_len, 0);
            rest
        });
        assert_eq!(largest.len(), V2_MAX_LEN);
        assert_eq!(parse(&largest).unwrap().unwrap().len, V2_MAX_LEN);
    }

    #[test]
    fn v1_encoding_round_trips_and_mixed_families_are_unknown() {
        for (source, destination) in [
            ("198.18.0.1:1", "198.18.0.2:2"),
            ("[2001:db8::1]:1", "[2001:db8::2]:2"),
        ] {
            let addresses = proxied(source, destination);
            let text = encode_v1(source.parse().unwrap(), destination.parse().unwrap());
            assert_parses(text.as_bytes(), addresses);
        }
        let mixed = encode_v1("198.18.0.1:1".parse().unwrap(), "[::1]:2".parse().unwrap());
        assert_eq!(mixed, "PROXY UNKNOWN\r\n");
    }

    #[test]
    fn v2_encoding_of_mixed_families_maps_ipv4_into_ipv6() {
        let addresses = proxied("198.18.0.1:1", "[2001:db8::2]:2");
        let header = parse(&encode_v2(addresses)).unwrap().unwrap();
        assert_eq!(
            header.addresses,
            proxied("[::ffff:198.18.0.1]:1", "[2001:db8::2]:2")
        );
    }

    #[test]
    fn no_prefix_of_any_input_panics_or_reads_past_the_limit() {
        // A sweep over headers with one byte changed, anywhere, to anything
        // that matters to the grammar.
        let seeds = [
            encode_v1(
                "198.18.0.1:1".parse().unwrap(),
                "198.18.0.2:2".parse().unwrap(),
            )
            .into_bytes(),
            encode_v2(proxied("[2001:db8::1]:1", "[2001:db8::2]:2")),
        ];
        for seed in seeds {
            for at in 0..seed.len() {
                for byte in [0, 1, b' ', b'\r', b'\n', 0x7f, 0xff] {
                    let mut bytes = seed.clone();
                    bytes[at] = byte;
                    if let Ok(Some(header)) = parse(&bytes) {
                        assert!(header.len <= bytes.len().min(MAX_HEADER_LEN));
                    }
                }
            }
        }
    }
}
