//! [`Mode`]: what the server does with the bytes of a TCP connection.

use std::fmt;

/// What the server does with the bytes of a TCP connection.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, clap::ValueEnum)]
pub enum Mode {
    /// Length-prefixed frames, echoed whole: the echo protocol.
    #[default]
    Framed,
    /// RFC 862: every byte is sent back as it arrives, with no framing.
    Raw,
}

impl fmt::Display for Mode {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            Mode::Framed => "framed",
            Mode::Raw => "raw",
        })
    }
}
