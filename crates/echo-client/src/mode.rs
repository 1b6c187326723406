//! [`Mode`]: the three ways of talking to an echo server (framed TCP, raw
//! TCP, UDP), their names, and the messages each can carry.

use std::fmt;
use std::str::FromStr;

use echo_proto::frame::{self, DEFAULT_MAX_FRAME_LEN};
use serde::{Deserialize, Serialize};

use crate::payload::ID_LEN;

/// The largest payload of one UDP datagram over IPv4: 65,535 bytes less the
/// IP and UDP headers.
pub const MAX_DATAGRAM_LEN: usize = 65_507;

/// How a client talks to an echo server.
///
/// ```
/// use echo_client::Mode;
///
/// assert_eq!(Mode::default(), Mode::Framed);
/// assert_eq!(Mode::Udp.to_string(), "udp");
/// assert!(Mode::Udp.check_message_len(8).is_err());
///
/// // Names, as on a command line or in a configuration file.
/// assert_eq!("raw".parse::<Mode>(), Ok(Mode::Raw));
/// assert_eq!(
///     "tcp".parse::<Mode>().unwrap_err().to_string(),
///     "unknown mode `tcp`: the modes are framed, raw and udp",
/// );
/// ```
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Default, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Mode {
    /// TCP with the echo protocol's framing: each message is a 4-byte
    /// big-endian length and that many bytes, echoed whole.
    #[default]
    Framed,
    /// TCP without framing (RFC 862): the bytes of a message are sent as they
    /// are, and its echo is complete once as many bytes have come back.
    Raw,
    /// UDP (RFC 862): each message is one datagram, answered by one datagram.
    Udp,
}

impl Mode {
    /// Every mode, in the order they are listed to users.
    pub const ALL: [Mode; 3] = [Mode::Framed, Mode::Raw, Mode::Udp];

    /// The mode's name, as [`Display`](fmt::Display) writes it and
    /// [`FromStr`] reads it: `framed`, `raw` or `udp`.
    pub fn as_str(self) -> &'static str {
        match self {
            Mode::Framed => "framed",
            Mode::Raw => "raw",
            Mode::Udp => "udp",
        }
    }

    /// The shortest message this mode can carry in a test that needs to
    /// tell its echoes apart, as ping and the bench do.
    ///
    /// Over UDP, replies can be lost, duplicated or reordered, so each one
    /// must carry its message's identity: 12 bytes. Over raw TCP, an empty
    /// message has no echo to wait for. Framed TCP can carry empty messages.
    pub fn min_test_message_len(self) -> usize {
        match self {
            Mode::Framed => 0,
            Mode::Raw => 1,
            Mode::Udp => ID_LEN,
        }
    }

    /// The longest message this mode carries: the protocol's default
    /// maximum frame (8 MiB) over TCP, the largest IPv4 datagram over UDP.
    ///
    /// Raw TCP has no limit of its own; the same 8 MiB keeps the client's
    /// buffers bounded.
    pub fn max_message_len(self) -> usize {
        match self {
            Mode::Framed | Mode::Raw => DEFAULT_MAX_FRAME_LEN,
            Mode::Udp => MAX_DATAGRAM_LEN,
        }
    }

    /// Checks that test messages (ping's, the bench's) of `len` bytes suit
    /// this mode, and says why not otherwise.
    ///
    /// # Errors
    ///
    /// A sentence naming the allowed range, when `len` is outside it.
    pub fn check_message_len(self, len: usize) -> Result<(), String> {
        let (min, max) = (self.min_test_message_len(), self.max_message_len());
        if (min..=max).contains(&len) {
            return Ok(());
        }
        let why = match self {
            Mode::Udp if len < min => ", so that each datagram can carry its sequence number",
            Mode::Raw if len < min => ", since an empty message has no echo on a raw stream",
            _ => "",
        };
        Err(format!(
            "{self} messages must be {min} to {max} bytes long{why}; {len} is out of range"
        ))
    }

    /// What goes on a TCP stream before a message of `len` bytes: its frame
    /// header when framed, nothing when raw. `None` over UDP, which has no
    /// stream, and for a message too long to frame.
    pub(crate) fn stream_header(self, len: usize) -> Option<Vec<u8>> {
        match self {
            Mode::Framed => frame::encode_header(len, DEFAULT_MAX_FRAME_LEN)
                .ok()
                .map(Vec::from),
            Mode::Raw => Some(Vec::new()),
            Mode::Udp => None,
        }
    }

    pub(crate) fn is_tcp(self) -> bool {
        matches!(self, Mode::Framed | Mode::Raw)
    }
}

impl fmt::Display for Mode {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

impl FromStr for Mode {
    type Err = ParseModeError;

    /// Reads a mode's [name](Mode::as_str), exactly (case matters).
    fn from_str(name: &str) -> Result<Self, Self::Err> {
        Mode::ALL
            .into_iter()
            .find(|mode| mode.as_str() == name)
            .ok_or_else(|| ParseModeError {
                value: name.to_owned(),
            })
    }
}

/// A name that is not a mode's, given where a [`Mode`] was expected; it
/// names the modes there are.
///
/// ```
/// use echo_client::Mode;
///
/// let error = "carrier-pigeon".parse::<Mode>().unwrap_err();
/// assert_eq!(error.value, "carrier-pigeon");
/// assert_eq!(
///     error.to_string(),
///     "unknown mode `carrier-pigeon`: the modes are framed, raw and udp",
/// );
/// ```
#[derive(Debug, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub struct ParseModeError {
    /// The name as given.
    pub value: String,
}

impl fmt::Display for ParseModeError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "unknown mode `{}`: the modes are ", self.value)?;
        let modes = Mode::ALL;
        for (index, mode) in modes.iter().enumerate() {
            let separator = match modes.len() - index {
                1 => "",
                2 => " and ",
                _ => ", ",
            };
            write!(f, "{mode}{separator}")?;
        }
        Ok(())
    }
}

impl std::error::Error for ParseModeError {}
