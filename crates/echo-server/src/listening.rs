//! The lines `echo-server` prints on stdout once it listens, one per
//! listener: `echo-server listening on IP:PORT (KIND)`.
//!
//! Scripts and tests wait for these lines to learn the real port when port 0
//! was asked for, so the format is a contract. It is written and read here
//! only: the binary prints a [`Listening`] with `Display`, and whoever waits
//! for it parses the line back with `FromStr`, which accepts exactly what
//! `Display` writes (no line ending, no surrounding spaces).
//!
//! ```
//! use echo_server::listening::{Kind, Listening};
//!
//! let line = Listening::new("127.0.0.1:4242".parse()?, Kind::Framed);
//! assert_eq!(line.to_string(), "echo-server listening on 127.0.0.1:4242 (framed)");
//!
//! let parsed: Listening = "echo-server listening on [::1]:9999 (udp)".parse()?;
//! assert_eq!(parsed.addr.port(), 9999);
//! assert_eq!(parsed.kind, Kind::Udp);
//! # Ok::<(), Box<dyn std::error::Error>>(())
//! ```

use std::fmt;
use std::net::SocketAddr;
use std::str::FromStr;

use crate::Mode;

/// What every listening line starts with.
const PREFIX: &str = "echo-server listening on ";

/// What a listener serves: the `KIND` in parentheses at the end of its line.
///
/// More kinds may come (TLS listeners), so a `match` on
/// it needs a wildcard arm.
///
/// ```
/// use echo_server::Mode;
/// use echo_server::listening::Kind;
///
/// assert_eq!(Kind::from(Mode::Raw), Kind::Raw);
/// assert_eq!("admin".parse::<Kind>()?, Kind::Admin);
/// // What versions before the admin endpoint printed.
/// assert_eq!("metrics".parse::<Kind>()?, Kind::Metrics);
/// assert_eq!(Kind::Udp.to_string(), "udp");
/// assert!("tcp".parse::<Kind>().is_err());
/// # Ok::<(), echo_server::listening::ParseError>(())
/// ```
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
#[non_exhaustive]
pub enum Kind {
    /// TCP, echoing whole frames (`--mode framed`, the default).
    Framed,
    /// TCP, echoing bytes as they arrive (`--mode raw`).
    Raw,
    /// UDP echo (`--udp`).
    Udp,
    /// The Prometheus endpoint over HTTP, as versions before the admin
    /// endpoint announced it; still parsed, no longer printed.
    Metrics,
    /// The admin endpoint over HTTP (`--admin`, or its synonym `--metrics`).
    Admin,
    /// TLS, echoing whole frames (`--tls-listen`, `--mode framed`).
    FramedTls,
    /// TLS, echoing bytes as they arrive (`--tls-listen`, `--mode raw`).
    RawTls,
}

impl Kind {
    /// Every kind, in the order the server announces its listeners.
    const ALL: [Kind; 7] = [
        Kind::Framed,
        Kind::Raw,
        Kind::FramedTls,
        Kind::RawTls,
        Kind::Udp,
        Kind::Metrics,
        Kind::Admin,
    ];

    /// The kind as its line spells it.
    pub const fn as_str(self) -> &'static str {
        match self {
            Kind::Framed => "framed",
            Kind::Raw => "raw",
            Kind::Udp => "udp",
            Kind::Metrics => "metrics",
            Kind::Admin => "admin",
            Kind::FramedTls => "framed+tls",
            Kind::RawTls => "raw+tls",
        }
    }

    /// The kind of the TLS listener of a server in `mode`.
    ///
    /// ```
    /// use echo_server::Mode;
    /// use echo_server::listening::Kind;
    ///
    /// assert_eq!(Kind::tls(Mode::Raw).to_string(), "raw+tls");
    /// ```
    pub const fn tls(mode: Mode) -> Self {
        match mode {
            Mode::Framed => Kind::FramedTls,
            Mode::Raw => Kind::RawTls,
        }
    }
}

impl From<Mode> for Kind {
    /// The kind of the TCP listener of a server in `mode`.
    fn from(mode: Mode) -> Self {
        match mode {
            Mode::Framed => Kind::Framed,
            Mode::Raw => Kind::Raw,
        }
    }
}

impl fmt::Display for Kind {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

impl FromStr for Kind {
    type Err = ParseError;

    fn from_str(text: &str) -> Result<Self, Self::Err> {
        Kind::ALL
            .into_iter()
            .find(|kind| kind.as_str() == text)
            .ok_or_else(|| ParseError::UnknownKind(text.to_owned()))
    }
}

/// One listening line: where a listener listens and what it serves.
///
/// ```
/// use echo_server::listening::{Kind, Listening};
///
/// let line = "echo-server listening on 127.0.0.1:9100 (admin)";
/// let listening: Listening = line.parse()?;
/// assert_eq!(listening, Listening::new("127.0.0.1:9100".parse()?, Kind::Admin));
/// assert_eq!(listening.to_string(), line);
///
/// // Other lines are errors that say what is wrong.
/// assert!("echo-server listening on 127.0.0.1:9100".parse::<Listening>().is_err());
/// # Ok::<(), Box<dyn std::error::Error>>(())
/// ```
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
#[non_exhaustive]
pub struct Listening {
    /// The address, with the real port when port 0 was asked for.
    pub addr: SocketAddr,
    /// What the listener serves.
    pub kind: Kind,
}

impl Listening {
    /// The line of a `kind` listener on `addr`.
    pub const fn new(addr: SocketAddr, kind: Kind) -> Self {
        Listening { addr, kind }
    }
}

impl fmt::Display for Listening {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{PREFIX}{} ({})", self.addr, self.kind)
    }
}

impl FromStr for Listening {
    type Err = ParseError;

    fn from_str(line: &str) -> Result<Self, Self::Err> {
        let rest = line.strip_prefix(PREFIX).ok_or(ParseError::NotListening)?;
        let (addr, kind) = rest
            .strip_suffix(')')
            .and_then(|rest| rest.rsplit_once(" ("))
            .ok_or(ParseError::NoKind)?;
        let addr = addr
            .parse()
            .map_err(|_| ParseError::BadAddr(addr.to_owned()))?;
        Ok(Listening::new(addr, kind.parse()?))
    }
}

/// Why a line is not a listening line.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum ParseError {
    /// The line does not start with `echo-server listening on `.
    #[error("not a listening line: it does not start with `{PREFIX}`")]
    NotListening,
    /// The line does not end with the listener's kind in parentheses.
    #[error("a listening line ends with ` (KIND)`")]
    NoKind,
    /// What stands where the address goes is not `IP:PORT`.
    #[error("`{0}` is not an IP:PORT address")]
    BadAddr(String),
    /// The kind is none this version knows.
    #[error(
        "`{0}` is not a kind of listener (framed, raw, framed+tls, raw+tls, udp, admin or metrics)"
    )]
    UnknownKind(String),
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_kind_round_trips_over_ipv4_and_ipv6() {
        for addr in [
            "127.0.0.1:4242",
            "[::1]:9999",
            "0.0.0.0:1",
            "[fe80::1%2]:80",
        ] {
            for kind in Kind::ALL {
                let listening = Listening::new(addr.parse().unwrap(), kind);
                let line = listening.to_string();
                assert_eq!(line, format!("echo-server listening on {addr} ({kind})"));
                assert_eq!(line.parse(), Ok(listening), "{line}");
            }
        }
    }

    #[test]
    fn the_tcp_kind_follows_the_mode() {
        assert_eq!(Kind::from(Mode::Framed), Kind::Framed);
        assert_eq!(Kind::from(Mode::Raw), Kind::Raw);
        assert_eq!(Kind::tls(Mode::Framed), Kind::FramedTls);
        assert_eq!(Kind::tls(Mode::Raw), Kind::RawTls);
    }

    #[test]
    fn tls_kinds_spell_mode_plus_tls() {
        assert_eq!("framed+tls".parse(), Ok(Kind::FramedTls));
        assert_eq!("raw+tls".parse(), Ok(Kind::RawTls));
        assert_eq!(Kind::FramedTls.to_string(), "framed+tls");
        assert_eq!(
            "tls".parse::<Kind>(),
            Err(ParseError::UnknownKind("tls".to_owned()))
        );
    }

    #[test]
    fn other_lines_are_errors_that_say_why() {
        let parse = |line: &str| line.parse::<Listening>().unwrap_err();
        for (line, error) in [
            ("", ParseError::NotListening),
            (
                "INFO echo-server listening on 127.0.0.1:1 (framed)",
                ParseError::NotListening,
            ),
            ("echo-server listening on 127.0.0.1:1", ParseError::NoKind),
            (
                "echo-server listening on 127.0.0.1:1 (raw",
                ParseError::NoKind,
            ),
            (
                "echo-server listening on 127.0.0.1:1 raw)",
                ParseError::NoKind,
            ),
            (
                "echo-server listening on 127.0.0.1:1 (framed)\n",
                ParseError::NoKind,
            ),
            (
                "echo-server listening on localhost:1 (framed)",
                ParseError::BadAddr("localhost:1".to_owned()),
            ),
            (
                "echo-server listening on 127.0.0.1:99999 (framed)",
                ParseError::BadAddr("127.0.0.1:99999".to_owned()),
            ),
            (
                "echo-server listening on 127.0.0.1 (framed)",
                ParseError::BadAddr("127.0.0.1".to_owned()),
            ),
            (
                "echo-server listening on 127.0.0.1:1 (tcp)",
                ParseError::UnknownKind("tcp".to_owned()),
            ),
            (
                "echo-server listening on 127.0.0.1:1 (Framed)",
                ParseError::UnknownKind("Framed".to_owned()),
            ),
        ] {
            assert_eq!(parse(line), error, "{line:?}");
        }
    }

    #[test]
    fn errors_name_what_is_wrong() {
        assert_eq!(
            ParseError::BadAddr("localhost:1".to_owned()).to_string(),
            "`localhost:1` is not an IP:PORT address"
        );
        assert_eq!(
            ParseError::UnknownKind("tcp".to_owned()).to_string(),
            "`tcp` is not a kind of listener (framed, raw, framed+tls, raw+tls, udp, admin or metrics)"
        );
    }
}
