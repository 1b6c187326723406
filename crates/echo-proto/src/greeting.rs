//! The greeting: an optional extension of the protocol in which the server,
//! as a connection opens, says who it is before echoing anything.
//!
//! A server sends it only when told to (`echo-server --greeting`), and a
//! client reads it only when told to expect it (`echo-client
//! --expect-greeting`): a client that was not told sees it as an echo of
//! nothing it sent. In framed mode the greeting is one frame; in raw mode it
//! is one line ending in `\n`. Either way it holds a JSON object with at
//! least the fields of [`Greeting`]; see "Greeting" in `PROTOCOL.md`.
//!
//! Everything here is free of I/O: it turns a greeting into the bytes to
//! send, and received bytes back into a greeting.
//!
//! ```
//! use echo_proto::greeting::Greeting;
//!
//! let greeting = Greeting::new("0.1.0", "web-1");
//! let line = greeting.encode_line();
//! assert_eq!(
//!     line,
//!     b"{\"server\":\"echo-server\",\"version\":\"0.1.0\",\"instance\":\"web-1\"}\n"
//! );
//! // The receiver takes the line without its `\n`.
//! assert_eq!(Greeting::parse(&line[..line.len() - 1])?, greeting);
//! # Ok::<(), echo_proto::greeting::GreetingError>(())
//! ```

use serde::{Deserialize, Serialize};

use crate::frame::{self, HEADER_LEN};

/// The `server` field of the greetings `echo-server` sends.
pub const SERVER_NAME: &str = "echo-server";

/// The longest greeting a receiver accepts, in bytes (the JSON object, without
/// its frame header or line ending). A greeting is a few dozen bytes; a limit
/// keeps a client that expects one from buffering without end when the peer
/// sends something else.
pub const MAX_GREETING_LEN: usize = 4096;

/// What a server says about itself as a connection opens.
///
/// In JSON, `{"server": ..., "version": ..., "instance": ...}`. Fields that a
/// later version adds are ignored by [`parse`](Greeting::parse), so that
/// older clients keep understanding newer servers.
#[cfg_attr(docsrs, doc(cfg(feature = "greeting")))]
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Greeting {
    /// The server's implementation: [`SERVER_NAME`] for `echo-server`.
    pub server: String,
    /// The implementation's version, such as `0.1.0`.
    pub version: String,
    /// Which server instance answered, by default its host name: behind a
    /// load balancer, this tells the instances apart.
    pub instance: String,
}

/// Why received bytes are not a greeting.
#[cfg_attr(docsrs, doc(cfg(feature = "greeting")))]
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum GreetingError {
    /// More bytes than [`MAX_GREETING_LEN`] (in raw mode: without a `\n`).
    #[error("the greeting is longer than {max} bytes ({len} received)")]
    TooLong {
        /// How many bytes were received, or announced by a frame header.
        len: usize,
        /// The limit, [`MAX_GREETING_LEN`].
        max: usize,
    },
    /// The bytes are not a JSON object with the greeting's fields, each a
    /// string; the message says which part is wrong.
    #[error("the greeting is not the JSON object expected: {0}")]
    Json(#[from] serde_json::Error),
}

impl Greeting {
    /// The greeting of `echo-server` at `version`, answering as `instance`.
    pub fn new(version: impl Into<String>, instance: impl Into<String>) -> Self {
        Self {
            server: SERVER_NAME.to_owned(),
            version: version.into(),
            instance: instance.into(),
        }
    }

    /// The JSON object, on one line: JSON escapes every line break inside
    /// strings, so the text never holds a `\n`.
    fn json(&self) -> Vec<u8> {
        serde_json::to_vec(self).expect("a greeting is strings only, always serializable")
    }

    /// The greeting as framed mode sends it: one frame holding the JSON.
    ///
    /// ```
    /// use echo_proto::greeting::Greeting;
    ///
    /// let wire = Greeting::new("1.0", "a").encode_framed();
    /// let (len, json) = wire.split_at(4);
    /// assert_eq!(u32::from_be_bytes(len.try_into()?) as usize, json.len());
    /// assert_eq!(Greeting::parse(json)?.instance, "a");
    /// # Ok::<(), Box<dyn std::error::Error>>(())
    /// ```
    pub fn encode_framed(&self) -> Vec<u8> {
        let json = self.json();
        let header = frame::encode_header(json.len(), frame::MAX_ANNOUNCEABLE_LEN)
            .expect("a greeting is far shorter than a frame can be");
        let mut wire = Vec::with_capacity(HEADER_LEN + json.len());
        wire.extend_from_slice(&header);
        wire.extend_from_slice(&json);
        wire
    }

    /// The greeting as raw mode sends it: the JSON on one line, ending in
    /// `\n`.
    ///
    /// ```
    /// use echo_proto::greeting::Greeting;
    ///
    /// let line = Greeting::new("1.0", "a").encode_line();
    /// assert!(line.ends_with(b"}\n"));
    /// assert_eq!(line.iter().filter(|&&byte| byte == b'\n').count(), 1);
    /// ```
    pub fn encode_line(&self) -> Vec<u8> {
        let mut line = self.json();
        line.push(b'\n');
        line
    }

    /// Reads a greeting from `json`: a frame's payload, or a line without
    /// its line ending (a `\r` before the `\n` is allowed and ignored).
    ///
    /// # Errors
    ///
    /// [`GreetingError::TooLong`] beyond [`MAX_GREETING_LEN`] bytes, and
    /// [`GreetingError::Json`] when the bytes are not a JSON object whose
    /// `server`, `version` and `instance` are strings.
    ///
    /// ```
    /// use echo_proto::greeting::Greeting;
    ///
    /// let greeting = Greeting::parse(br#"{"server":"x","version":"2","instance":"b","zone":"eu"}"#)?;
    /// assert_eq!((greeting.server.as_str(), greeting.instance.as_str()), ("x", "b"));
    ///
    /// let error = Greeting::parse(br#"{"server":"x","version":"2"}"#).unwrap_err();
    /// assert!(error.to_string().contains("missing field `instance`"), "{error}");
    /// let error = Greeting::parse(b"hello").unwrap_err();
    /// assert!(error.to_string().starts_with("the greeting is not the JSON object expected"));
    /// # Ok::<(), echo_proto::greeting::GreetingError>(())
    /// ```
    pub fn parse(json: &[u8]) -> Result<Greeting, GreetingError> {
        if json.len() > MAX_GREETING_LEN {
            return Err(GreetingError::TooLong {
                len: json.len(),
                max: MAX_GREETING_LEN,
            });
        }
        let json = json.strip_suffix(b"\r").unwrap_or(json);
        Ok(serde_json::from_slice(json)?)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn both_encodings_parse_back_to_the_greeting() {
        let greeting = Greeting::new("0.1.0", "line\nbreak \"quoted\" é");
        let framed = greeting.encode_framed();
        assert_eq!(Greeting::parse(&framed[HEADER_LEN..]).unwrap(), greeting);
        let line = greeting.encode_line();
        assert_eq!(line.iter().filter(|&&byte| byte == b'\n').count(), 1);
        assert_eq!(Greeting::parse(&line[..line.len() - 1]).unwrap(), greeting);
        assert_eq!(
            Greeting::parse(b"{\"server\":\"s\",\"version\":\"v\",\"instance\":\"i\"}\r")
                .unwrap()
                .instance,
            "i"
        );
    }

    #[test]
    fn what_is_wrong_is_named() {
        let error = |json: &[u8]| Greeting::parse(json).unwrap_err().to_string();
        assert!(error(b"").contains("EOF"));
        assert!(error(b"[1]").contains("invalid type"));
        assert!(
            error(br#"{"server":"s","version":1,"instance":"i"}"#).contains("expected a string")
        );
        assert!(error(br#"{"version":"1","instance":"i"}"#).contains("missing field `server`"));
        let long = vec![b' '; MAX_GREETING_LEN + 1];
        assert_eq!(
            error(&long),
            format!("the greeting is longer than {MAX_GREETING_LEN} bytes (4097 received)")
        );
    }
}
